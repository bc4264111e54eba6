/*-------------------------------------------------------------------------
 *
 * privacy.c
 *	  Data minimisation: what cleanup keeps of ended sessions and of events
 *	  once they are older than sessmgr.pii_retention (docs/privacy.md).
 *
 * Addresses are cut to their network (IPv4 /24, IPv6 /48), the place to
 * its country (region, city, coordinates and accuracy dropped; the
 * caller's free-text location replaced by the country), the raw user agent
 * to its label ("Chrome 120 on Windows"), and the client hints and device
 * names of ended sessions are dropped; the personal keys of an event's
 * details go too.  What analytics count (country, browser, OS, device type,
 * the event itself) stays.  A row once minimised is left alone: running it
 * again changes nothing.
 *
 * sessmgr.cleanup() calls SessmgrMinimisePersonalData() after its own
 * passes, and it works the same way: a bounded batch per transaction, in key
 * order, locking only the rows it changes, with SKIP LOCKED.  Events are
 * walked in (occurred_at, id) order from where the last run stopped (kept in
 * sessmgr.privacy_progress, written in each batch's transaction), so a run
 * reads only the events that came of age since the previous one.  Ended
 * sessions are minimised only while sessmgr.retention is longer than
 * sessmgr.pii_retention; otherwise cleanup deletes them first.
 *
 * Ended sessions are final (the trigger sessions_guard_ended refuses to
 * change them); SessmgrMinimisingSessions() tells it that the one UPDATE
 * running is this minimisation, which changes no column it protects.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "sessmgr.h"

/* an address cut to its network: IPv4 /24, IPv6 /48 (a shorter mask stays) */
#define PRIVACY_NETWORK_SQL(ip) \
	"pg_catalog.network(pg_catalog.set_masklen(" ip ", LEAST(pg_catalog.masklen(" ip "), " \
	"CASE pg_catalog.family(" ip ") WHEN 4 THEN 24 ELSE 48 END)))::pg_catalog.inet"

/* whether an address is more precise than its network */
#define PRIVACY_PRECISE_SQL(ip) \
	"(" ip " IS NOT NULL AND pg_catalog.masklen(" ip ") OPERATOR(pg_catalog.>) " \
	"CASE pg_catalog.family(" ip ") WHEN 4 THEN 24 ELSE 48 END)"

/* the keys of an event's details that name a place, an address or a device */
#define PRIVACY_DETAIL_KEYS \
	"'{ip,ips,address,network,city,region,location,latitude,longitude," \
	"accuracy_radius_km,time_zone,user_agent,client_hints,device_name}'::pg_catalog.text[]"

/*
 * An event's details without those keys, at the top level and in the
 * objects one level down (a suspicious login's previous place, say).
 */
#define PRIVACY_DETAILS_SQL(d) \
	"(SELECT pg_catalog.jsonb_object_agg(k.key, CASE pg_catalog.jsonb_typeof(k.value)" \
	" WHEN 'object' THEN k.value OPERATOR(pg_catalog.-) " PRIVACY_DETAIL_KEYS \
	" ELSE k.value END)" \
	" FROM pg_catalog.jsonb_each(" d " OPERATOR(pg_catalog.-) " PRIVACY_DETAIL_KEYS ") k)"

/* whether an event's details still hold such a key */
#define PRIVACY_DETAILS_PERSONAL_SQL(d) \
	"(pg_catalog.jsonb_typeof(" d ") OPERATOR(pg_catalog.=) 'object' AND (" \
	d " OPERATOR(pg_catalog.?|) " PRIVACY_DETAIL_KEYS " OR EXISTS (SELECT FROM pg_catalog.jsonb_each(" d ") k" \
	" WHERE pg_catalog.jsonb_typeof(k.value) OPERATOR(pg_catalog.=) 'object'" \
	"   AND k.value OPERATOR(pg_catalog.?|) " PRIVACY_DETAIL_KEYS ")))"

/* set while the minimising UPDATE of ended sessions runs */
static bool minimising_sessions = false;

/* For sessions_guard_ended: an ended session is being minimised. */
bool
SessmgrMinimisingSessions(void)
{
	return minimising_sessions;
}

/*
 * The UPDATE of one batch of ended sessions, with the guard trigger told
 * about it; the flag is reset however the statement ends.
 */
static uint64
minimise_sessions_batch(SPIPlanPtr *plan, const char *sql, Datum *values, const Oid *types)
{
	volatile uint64 processed = 0;

	minimising_sessions = true;
	PG_TRY();
	{
		processed = SessmgrRun(plan, sql, 5, types, values, NULL, SPI_OK_UPDATE);
	}
	PG_FINALLY();
	{
		minimising_sessions = false;
	}
	PG_END_TRY();
	return processed;
}

/*
 * Minimise the sessions that ended before cutoff, walking the table in
 * (expires_at, id) order up to the highest expiry seen at the start.
 */
static int64
minimise_sessions(SessmgrBatching *batching, TimestampTz cutoff)
{
	static SPIPlanPtr end_plan = NULL;
	static SPIPlanPtr chunk_plan = NULL;
	static SPIPlanPtr update_plan = NULL;
	Oid			chunk_types[4] = {TIMESTAMPTZOID, UUIDOID, TIMESTAMPTZOID, INT8OID};
	Oid			update_types[5] = {TIMESTAMPTZOID, UUIDOID, TIMESTAMPTZOID, UUIDOID,
	TIMESTAMPTZOID};
	MemoryContext run_context = CurrentMemoryContext;
	SessmgrOwnerContext octx;
	pg_uuid_t	first_id;
	pg_uuid_t	last_id;
	pg_uuid_t  *from_id;
	TimestampTz from_at = DT_NOBEGIN;
	TimestampTz end_at;
	bool		isnull;
	bool		last = false;
	int64		minimised = 0;

	memset(&first_id, 0, sizeof(first_id));
	memset(&last_id, 0xff, sizeof(last_id));
	from_id = &first_id;

	SessmgrEnterOwnerMode(&octx);
	SessmgrRun(&end_plan, "SELECT pg_catalog.max(expires_at) FROM sessmgr.sessions",
			   0, NULL, NULL, NULL, SPI_OK_SELECT);
	end_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
	SessmgrLeaveOwnerMode(&octx);
	if (isnull)
		return 0;

	while (!last)
	{
		Datum		values[5];
		TimestampTz to_at;
		pg_uuid_t  *to_id;

		SessmgrEnterOwnerMode(&octx);
		values[0] = TimestampTzGetDatum(from_at);
		values[1] = UUIDPGetDatum(from_id);
		values[2] = TimestampTzGetDatum(end_at);
		values[3] = Int64GetDatum(*batching->batch_rows - 1);
		SessmgrRun(&chunk_plan,
				   "SELECT s.expires_at, s.id FROM sessmgr.sessions s"
				   " WHERE (s.expires_at, s.id) OPERATOR(pg_catalog.>) ($1, $2)"
				   "   AND s.expires_at OPERATOR(pg_catalog.<=) $3"
				   " ORDER BY s.expires_at, s.id"
				   " OFFSET $4 LIMIT 1",
				   4, chunk_types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed == 1)
		{
			MemoryContext old = MemoryContextSwitchTo(run_context);

			to_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull));
			to_id = palloc(sizeof(pg_uuid_t));
			*to_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 2, &isnull));
			MemoryContextSwitchTo(old);
		}
		else
		{
			to_at = end_at;
			to_id = &last_id;
			last = true;
		}

		values[2] = TimestampTzGetDatum(to_at);
		values[3] = UUIDPGetDatum(to_id);
		values[4] = TimestampTzGetDatum(cutoff);
		minimised += minimise_sessions_batch(&update_plan,
											 "UPDATE sessmgr.sessions s SET"
											 " ip = " PRIVACY_NETWORK_SQL("s.ip") ","
											 " user_agent = s.device,"
											 " location = s.country,"
											 " region = NULL, city = NULL,"
											 " latitude = NULL, longitude = NULL,"
											 " accuracy_radius_km = NULL,"
											 " client_hints = NULL, device_name = NULL"
											 " WHERE s.id OPERATOR(pg_catalog.=) ANY (ARRAY("
											 "   SELECT x.id FROM sessmgr.sessions x"
											 "    WHERE (x.expires_at, x.id) OPERATOR(pg_catalog.>) ($1, $2)"
											 "      AND (x.expires_at, x.id) OPERATOR(pg_catalog.<=) ($3, $4)"
											 "      AND (x.revoked_at OPERATOR(pg_catalog.<) $5"
											 "           OR x.expires_at OPERATOR(pg_catalog.<) $5"
											 "           OR x.last_active_at OPERATOR(pg_catalog.+) x.idle_timeout"
											 "              OPERATOR(pg_catalog.<) $5)"
											 "      AND (" PRIVACY_PRECISE_SQL("x.ip")
											 "           OR x.user_agent IS DISTINCT FROM x.device"
											 "           OR x.location IS DISTINCT FROM x.country"
											 "           OR x.region IS NOT NULL OR x.city IS NOT NULL"
											 "           OR x.latitude IS NOT NULL OR x.longitude IS NOT NULL"
											 "           OR x.accuracy_radius_km IS NOT NULL"
											 "           OR x.client_hints IS NOT NULL OR x.device_name IS NOT NULL)"
											 "      FOR UPDATE OF x SKIP LOCKED))",
											 values, update_types);
		SessmgrLeaveOwnerMode(&octx);
		batching->next_batch(batching->run);
		if (from_id != &first_id)
			pfree(from_id);
		from_at = to_at;
		from_id = to_id;
	}
	return minimised;
}

/*
 * Minimise the events that occurred before cutoff, from where the last run
 * stopped, recording in each batch's transaction how far it got.
 */
static int64
minimise_events(SessmgrBatching *batching, TimestampTz cutoff)
{
	static SPIPlanPtr start_plan = NULL;
	static SPIPlanPtr chunk_plan = NULL;
	static SPIPlanPtr update_plan = NULL;
	static SPIPlanPtr progress_plan = NULL;
	Oid			chunk_types[4] = {TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID, INT8OID};
	Oid			update_types[4] = {TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID, INT8OID};
	SessmgrOwnerContext octx;
	TimestampTz from_at = DT_NOBEGIN;
	int64		from_id = PG_INT64_MIN;
	bool		isnull;
	bool		last = false;
	int64		minimised = 0;

	SessmgrEnterOwnerMode(&octx);
	SessmgrRun(&start_plan,
			   "SELECT p.events_done_at, p.events_done_id FROM sessmgr.privacy_progress p",
			   0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		from_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
		from_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 2, &isnull));
	}
	SessmgrLeaveOwnerMode(&octx);

	while (!last && from_at < cutoff)
	{
		Datum		values[4];
		TimestampTz to_at;
		int64		to_id;

		/*
		 * One run at a time minimises events: a second cleanup running at
		 * the same time leaves them to the first rather than wait for its
		 * progress row (the lock goes with each batch's transaction).
		 */
		if (!ConditionalLockRelationOid(get_relname_relid("privacy_progress",
														  SessmgrGetCatalog()->namespace),
										ShareRowExclusiveLock))
			break;

		SessmgrEnterOwnerMode(&octx);
		values[0] = TimestampTzGetDatum(from_at);
		values[1] = Int64GetDatum(from_id);
		values[2] = TimestampTzGetDatum(cutoff);
		values[3] = Int64GetDatum(*batching->batch_rows - 1);
		SessmgrRun(&chunk_plan,
				   "SELECT e.occurred_at, e.id FROM sessmgr.session_events e"
				   " WHERE (e.occurred_at, e.id) OPERATOR(pg_catalog.>) ($1, $2)"
				   "   AND e.occurred_at OPERATOR(pg_catalog.<) $3"
				   " ORDER BY e.occurred_at, e.id"
				   " OFFSET $4 LIMIT 1",
				   4, chunk_types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed == 1)
		{
			to_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull));
			to_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 2, &isnull));
		}
		else
		{
			/* the rest up to the cutoff; later events with that time come next run */
			to_at = cutoff;
			to_id = PG_INT64_MIN;
			last = true;
		}

		values[2] = TimestampTzGetDatum(to_at);
		values[3] = Int64GetDatum(to_id);
		minimised += SessmgrRun(&update_plan,
								"UPDATE sessmgr.session_events e SET"
								" ip = " PRIVACY_NETWORK_SQL("e.ip") ","
								" user_agent = e.device,"
								" region = NULL, city = NULL,"
								" latitude = NULL, longitude = NULL,"
								" accuracy_radius_km = NULL,"
								" details = CASE WHEN " PRIVACY_DETAILS_PERSONAL_SQL("e.details")
								"   THEN coalesce(" PRIVACY_DETAILS_SQL("e.details") ", '{}'::pg_catalog.jsonb)"
								"   ELSE e.details END"
								" WHERE e.id OPERATOR(pg_catalog.=) ANY (ARRAY("
								"   SELECT x.id FROM sessmgr.session_events x"
								"    WHERE (x.occurred_at, x.id) OPERATOR(pg_catalog.>) ($1, $2)"
								"      AND (x.occurred_at, x.id) OPERATOR(pg_catalog.<=) ($3, $4)"
								"      AND (" PRIVACY_PRECISE_SQL("x.ip")
								"           OR x.user_agent IS DISTINCT FROM x.device"
								"           OR x.region IS NOT NULL OR x.city IS NOT NULL"
								"           OR x.latitude IS NOT NULL OR x.longitude IS NOT NULL"
								"           OR x.accuracy_radius_km IS NOT NULL"
								"           OR " PRIVACY_DETAILS_PERSONAL_SQL("x.details") ")"
								"      FOR UPDATE OF x SKIP LOCKED))",
								4, update_types, values, NULL, SPI_OK_UPDATE);

		/* how far this batch got, committed with it */
		SessmgrRun(&progress_plan,
				   "INSERT INTO sessmgr.privacy_progress AS p (events_done_at, events_done_id)"
				   " VALUES ($3, $4)"
				   " ON CONFLICT (singleton) DO UPDATE"
				   "   SET events_done_at = excluded.events_done_at,"
				   "       events_done_id = excluded.events_done_id"
				   "  WHERE (p.events_done_at, p.events_done_id) OPERATOR(pg_catalog.<)"
				   "        (excluded.events_done_at, excluded.events_done_id)",
				   4, update_types, values, NULL, SPI_OK_INSERT);
		SessmgrLeaveOwnerMode(&octx);
		batching->next_batch(batching->run);
		from_at = to_at;
		from_id = to_id;
	}
	return minimised;
}

/*
 * Minimise what is older than sessmgr.pii_retention: ended sessions (when
 * cleanup keeps them that long) and events.  Called by sessmgr.cleanup()
 * between batches of its own, inside its SPI connection; returns how many
 * rows it changed.
 */
int64
SessmgrMinimisePersonalData(SessmgrBatching *batching)
{
	TimestampTz cutoff = GetCurrentTimestamp() - (int64) sessmgr_pii_retention * USECS_PER_SEC;
	int64		minimised = 0;

	if (sessmgr_retention > sessmgr_pii_retention)
		minimised += minimise_sessions(batching, cutoff);
	minimised += minimise_events(batching, cutoff);
	elog(DEBUG1, "sessmgr cleanup: minimised " INT64_FORMAT " rows", minimised);
	return minimised;
}

/*-------------------------------------------------------------------------
 *
 * feed.c
 *	  The audit trail as a feed for SIEMs: sessmgr.events_since(), and the
 *	  statement trigger on sessmgr.session_events that makes its cursor safe.
 *
 * A log shipper polls events_since(cursor) and moves its cursor to the last
 * event.sequence (the event's id) it received.  Ids come from the identity
 * sequence of session_events, allocated when a row is inserted, long before
 * the inserting transaction commits.  A reader that returned every visible
 * row above the cursor would, sooner or later, return id 11 while id 10 was
 * still in flight, move the cursor past 10, and lose it for good when it
 * commits.  The feed therefore returns rows only up to a horizon below which
 * nothing can commit any more.
 *
 * The writers: before its first event row, every transaction that inserts
 * into session_events (sessmgr's triggers and functions, an administrator's
 * INSERT or COPY) publishes a lower bound of the ids it can get: the
 * BEFORE INSERT ... FOR EACH STATEMENT trigger reads the sequence (its next
 * id is at least last_value + 1) and takes a transaction-scoped lock whose
 * tag carries that bound.  The tag is of the advisory type but with a fourth
 * field of its own (SESSMGR_FEED_LOCK_FIELD4) that no SQL advisory lock
 * function can produce (they use 1 and 2), and the lock is taken in share
 * mode only, so nothing ever waits for it.  One lock per transaction is
 * enough, since ids only grow; a subtransaction that aborts releases the
 * lock it took, and the next statement takes a new one (LockHeldByMe).
 * The trigger fires before the statement computes any id: statement
 * triggers fire before ModifyTable pulls its first row, and COPY FROM fires
 * them before it reads its first line.
 *
 * The reader, events_since():
 *   1. M := the sequence's last value (not transactional);
 *   2. B := the lowest bound in any such lock held now (pg_locks);
 *   3. takes a new snapshot and returns visible rows with
 *      after_id < id <= min(M, B - 1).
 * Why nothing below the horizon can commit later: take a row with id i <=
 * min(M, B - 1) of a transaction W that commits.  i <= M, so W got i before
 * step 1; when it got i, W (or the subtransaction inserting, or one of its
 * parents) already held a feed lock with a bound b <= i, taken by this
 * statement's trigger or an earlier one (a lock whose subtransaction rolled
 * back went with that subtransaction's rows, and the next statement took a
 * new one).  Since row i commits, so does the holder, and W keeps the lock
 * until after its commit is visible (locks are released after
 * ProcArrayEndTransaction, and after COMMIT PREPARED's; PREPARE hands them
 * to the prepared transaction).  Had W still held it at step 2, B <= b <= i,
 * contradicting i <= B - 1.  So W released it
 * before step 2, its commit was visible before step 3, and i is in the
 * snapshot.  This needs: ids handed out in order (the sequence has CACHE 1,
 * the identity default, checked on every read; a larger cache lets each
 * backend hand out a private range), a snapshot taken after step 2 (READ
 * COMMITTED: each SPI statement takes a new one; REPEATABLE READ and
 * SERIALIZABLE fix it at the transaction's first statement, so the feed
 * refuses them), and a primary (a standby sees neither the primary's locks
 * nor its exact sequence position).
 *
 * Not covered: rows inserted with an explicit id (OVERRIDING SYSTEM VALUE,
 * restores); those are the table owner's business.
 *
 * sessmgr.refresh_metrics() computes the same horizon in SQL from pg_locks
 * (advisory locks with objsubid SESSMGR_FEED_LOCK_FIELD4, the bound in
 * classid and objid): the tag's layout is shared with it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_sequence.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "sessmgr.h"

/*
 * The fourth field of the feed's lock tags (pg_locks.objsubid 24149); SQL
 * advisory locks use 1 and 2.  sessmgr.refresh_metrics() reads it too.
 */
#define SESSMGR_FEED_LOCK_FIELD4	0x5e55

/* at most this many events per call */
#define SESSMGR_FEED_MAX_ROWS		10000

/* the lock this backend took last; still ours while LockHeldByMe says so */
static LOCKTAG feed_lock;
static bool feed_lock_taken = false;

/* The identity sequence of sessmgr.session_events in namespace nsp. */
static Oid
feed_sequence(Oid nsp)
{
	Oid			seqid = get_relname_relid("session_events_id_seq", nsp);

	if (!OidIsValid(seqid) || get_rel_relkind(seqid) != RELKIND_SEQUENCE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sequence sessmgr.session_events_id_seq is missing"),
				 errhint("Reinstall the sessmgr extension.")));
	return seqid;
}

/*
 * The lowest id the sequence can hand out from now on, and in *last the
 * highest it has handed out (its last value; the lowest minus one before its
 * first nextval).  Read as the owner of the extension's tables: the role
 * inserting an event, or reading the feed, need not have rights on the
 * sequence.
 */
static int64
feed_next_id(Oid nsp, int64 *last)
{
	Oid			seqid = feed_sequence(nsp);
	LOCAL_FCINFO(fcinfo, 1);
	Oid			save_userid;
	int			save_sec_context;
	Datum		value;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(SessmgrGetCatalog()->owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(seqid);
	fcinfo->args[0].isnull = false;
	value = pg_sequence_last_value(fcinfo);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	if (!fcinfo->isnull)
	{
		*last = DatumGetInt64(value);
		return *last < PG_INT64_MAX ? *last + 1 : *last;
	}
	else
	{
		/* no nextval since creation or a reset: the sequence's minimum */
		HeapTuple	tp = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqid));
		int64		min;

		if (!HeapTupleIsValid(tp))
			elog(ERROR, "cache lookup failed for sequence %u", seqid);
		min = ((Form_pg_sequence) GETSTRUCT(tp))->seqmin;
		ReleaseSysCache(tp);
		*last = min > PG_INT64_MIN ? min - 1 : min;
		return min;
	}
}

/* The tag of the feed lock carrying bound, in this database. */
static void
feed_lock_tag(LOCKTAG *tag, int64 bound)
{
	uint64		u = (uint64) bound;

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (u >> 32), (uint32) u,
						 SESSMGR_FEED_LOCK_FIELD4);
}

/*
 * sessmgr.session_events_feed_guard() RETURNS trigger
 *
 * BEFORE INSERT FOR EACH STATEMENT on sessmgr.session_events: publish the
 * lowest id this transaction can still get, once per transaction (see the
 * file header).
 */
PG_FUNCTION_INFO_V1(sessmgr_session_events_feed_guard);
Datum
sessmgr_session_events_feed_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	LOCKTAG		tag;
	int64		last;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired BEFORE INSERT FOR EACH STATEMENT",
						"session_events_feed_guard")));

	/* ids only grow: the bound published first still holds */
	if (feed_lock_taken && LockHeldByMe(&feed_lock, ShareLock))
		return PointerGetDatum(NULL);

	feed_lock_tag(&tag, feed_next_id(RelationGetNamespace(trigdata->tg_relation), &last));
	(void) LockAcquire(&tag, ShareLock, false, false);
	feed_lock = tag;
	feed_lock_taken = true;
	return PointerGetDatum(NULL);
}

/*
 * The lowest bound published by a transaction of this database that has
 * not ended (prepared transactions included), or PG_INT64_MAX if none.
 */
static int64
feed_lowest_published_bound(void)
{
	LockData   *locks = GetLockStatusData();
	int64		lowest = PG_INT64_MAX;

	for (int i = 0; i < locks->nelements; i++)
	{
		const LOCKTAG *tag = &locks->locks[i].locktag;
		int64		bound;

		if (tag->locktag_type != LOCKTAG_ADVISORY ||
			tag->locktag_lockmethodid != USER_LOCKMETHOD ||
			tag->locktag_field4 != SESSMGR_FEED_LOCK_FIELD4 ||
			tag->locktag_field1 != MyDatabaseId)
			continue;
		bound = (int64) (((uint64) tag->locktag_field2 << 32) | (uint64) tag->locktag_field3);
		lowest = Min(lowest, bound);
	}
	return lowest;
}

/* Refuse a sequence whose ids may come out of order (see the file header). */
static void
feed_check_sequence(Oid nsp)
{
	Oid			seqid = feed_sequence(nsp);
	HeapTuple	tp = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqid));
	Form_pg_sequence seq;
	bool		ordered;

	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for sequence %u", seqid);
	seq = (Form_pg_sequence) GETSTRUCT(tp);
	ordered = seq->seqcache == 1 && seq->seqincrement > 0;
	ReleaseSysCache(tp);
	if (!ordered)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the event ids are not handed out in order"),
				 errdetail("The event feed needs sequence sessmgr.session_events_id_seq with CACHE 1 and a positive increment."),
				 errhint("Run ALTER SEQUENCE sessmgr.session_events_id_seq CACHE 1 INCREMENT 1.")));
}

/*
 * One event as an Elastic Common Schema document (docs/monitoring.md has the
 * mapping).  Absent values are left out, and so are objects left empty
 * (NULLIF's = is pg_catalog's: owner mode pins search_path).
 */
#define OBJ "NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object("
#define END_OBJ ")), '{}'::jsonb)"

#define FEED_QUERY \
	"SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(" \
	"  '@timestamp', pg_catalog.to_char(pg_catalog.timezone('UTC', e.occurred_at)," \
	"                                   'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')," \
	"  'ecs', pg_catalog.jsonb_build_object('version', '8.11.0')," \
	"  'event', pg_catalog.jsonb_build_object(" \
	"      'kind', 'event', 'module', 'sessmgr', 'dataset', 'sessmgr.audit'," \
	"      'action', e.event," \
	"      'category', CASE e.event" \
	"          WHEN 'issue' THEN '[\"authentication\", \"session\"]'" \
	"          WHEN 'reauthenticate' THEN '[\"authentication\", \"session\"]'" \
	"          WHEN 'session_confirmed' THEN '[\"authentication\", \"session\"]'" \
	"          WHEN 'login_failed' THEN '[\"authentication\"]'" \
	"          WHEN 'suspicious_login' THEN '[\"authentication\", \"intrusion_detection\"]'" \
	"          WHEN 'account_locked' THEN '[\"iam\"]'" \
	"          WHEN 'account_unlocked' THEN '[\"iam\"]'" \
	"          WHEN 'erased' THEN '[\"iam\"]'" \
	"          ELSE '[\"session\"]' END::jsonb," \
	"      'type', CASE e.event" \
	"          WHEN 'issue' THEN '[\"start\"]'" \
	"          WHEN 'login_failed' THEN '[\"start\"]'" \
	"          WHEN 'revoke' THEN '[\"end\"]'" \
	"          WHEN 'evict' THEN '[\"end\"]'" \
	"          WHEN 'expire' THEN '[\"end\"]'" \
	"          WHEN 'account_locked' THEN '[\"user\", \"change\"]'" \
	"          WHEN 'account_unlocked' THEN '[\"user\", \"change\"]'" \
	"          WHEN 'erased' THEN '[\"user\", \"deletion\"]'" \
	"          ELSE '[\"info\"]' END::jsonb," \
	"      'outcome', CASE e.event WHEN 'login_failed' THEN 'failure' ELSE 'success' END," \
	"      'reason', e.reason," \
	"      'sequence', e.id)," \
	"  'user', pg_catalog.jsonb_build_object('id', e.user_id)," \
	"  'source', " OBJ \
	"      'ip', pg_catalog.host(e.ip)," \
	"      'geo', " OBJ \
	"          'country_iso_code', e.country_code, 'country_name', e.country," \
	"          'region_name', e.region, 'city_name', e.city," \
	"          'location', CASE WHEN e.latitude IS NOT NULL AND e.longitude IS NOT NULL" \
	"                           THEN pg_catalog.jsonb_build_object('lat', e.latitude, 'lon', e.longitude)" \
	"                      END" END_OBJ "," \
	"      'as', " OBJ "'number', e.asn" END_OBJ END_OBJ "," \
	"  'user_agent', " OBJ \
	"      'original', e.user_agent," \
	"      'name', e.browser," \
	"      'os', " OBJ "'name', e.os" END_OBJ END_OBJ "," \
	"  'sessmgr', " OBJ \
	"      'session', " OBJ "'id', e.session_id" END_OBJ "," \
	"      'actor', " OBJ "'role', e.actor, 'user_id', e.actor_user_id" END_OBJ "," \
	"      'device', " OBJ "'label', e.device, 'type', e.device_type" END_OBJ "," \
	"      'geo', " OBJ "'accuracy_radius_km', e.accuracy_radius_km" END_OBJ "," \
	"      'details', e.details" END_OBJ \
	"))" \
	"  FROM sessmgr.session_events e" \
	" WHERE e.id OPERATOR(pg_catalog.>) $1 AND e.id OPERATOR(pg_catalog.<=) $2" \
	" ORDER BY e.id" \
	" LIMIT $3"

/*
 * sessmgr.events_since(after_id bigint, max_rows integer DEFAULT 1000)
 *     RETURNS SETOF jsonb
 *
 * The events after after_id (NULL: from the oldest kept), in id order, at
 * most max_rows, up to the horizon below which no event can still commit
 * (see the file header).  An empty result means nothing new yet.
 */
PG_FUNCTION_INFO_V1(sessmgr_events_since);
Datum
sessmgr_events_since(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			types[3] = {INT8OID, INT8OID, INT4OID};
	Datum		values[3];
	int64		after_id = PG_ARGISNULL(0) ? PG_INT64_MIN : PG_GETARG_INT64(0);
	int32		max_rows;
	int64		last;
	int64		horizon;
	Oid			nsp;
	SessmgrOwnerContext octx;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_rows must not be null")));
	max_rows = PG_GETARG_INT32(1);
	if (max_rows < 1 || max_rows > SESSMGR_FEED_MAX_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be between 1 and %d", SESSMGR_FEED_MAX_ROWS)));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the event feed cannot be read on a standby"),
				 errdetail("A standby cannot tell which event ids are still in flight on the primary."),
				 errhint("Poll sessmgr.events_since() on the primary.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("the event feed must be read at isolation level READ COMMITTED"),
				 errdetail("A transaction snapshot taken before the feed's horizon could miss events below it."),
				 errhint("Call sessmgr.events_since() in a READ COMMITTED transaction.")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	nsp = SessmgrGetCatalog()->namespace;
	feed_check_sequence(nsp);

	/* 1. the highest id handed out; 2. the lowest one still in flight */
	(void) feed_next_id(nsp, &last);
	horizon = feed_lowest_published_bound();
	horizon = Min(last, horizon > PG_INT64_MIN ? horizon - 1 : horizon);
	if (after_id >= horizon)
		return (Datum) 0;

	/* 3. a new snapshot, taken by this statement (READ COMMITTED) */
	SessmgrOwnerBegin(&octx);
	values[0] = Int64GetDatum(after_id);
	values[1] = Int64GetDatum(horizon);
	values[2] = Int32GetDatum(max_rows);
	SessmgrRun(&plan, FEED_QUERY, 3, types, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		doc = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &doc, &isnull);
	}
	SessmgrOwnerEnd(&octx);

	return (Datum) 0;
}

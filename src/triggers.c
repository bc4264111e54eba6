/*-------------------------------------------------------------------------
 *
 * triggers.c
 *	  The triggers of sessmgr.sessions: the per-user cap, the finality of
 *	  ended sessions, and the audit trail.
 *
 * They are triggers rather than code in issue() and revoke() so that a
 * direct INSERT or UPDATE by an administrator obeys the same rules.
 *
 * The cap cannot be raced.  Before counting a user's sessions, the insert
 * takes and updates the user's row in sessmgr.session_owners.  Under READ
 * COMMITTED that row lock queues concurrent issuers for the same user and
 * the count that follows, run with a fresh snapshot, sees every session
 * committed before the lock was granted.  Under REPEATABLE READ and
 * SERIALIZABLE the snapshot may predate the lock; but every issuer updates
 * the row, so a transaction whose snapshot missed another's session gets a
 * serialization failure on the row instead of a wrong count.  (A lock alone,
 * advisory or FOR UPDATE, would not: it does not conflict with an older
 * snapshot.)  Revocations update the row too, so an issuer whose snapshot
 * missed a revocation fails the same way rather than over-counting.
 *
 * Lock order: every statement that changes a session row (issue, the cap's
 * evictions, revoke, revoke_all, the activity touch of validation) first
 * locks the user's session_owners row, then session rows.  One order means
 * no deadlock between, say, a login evicting a session and a logout of the
 * same session.  Cleanup (src/cleanup.c) is the exception that proves it
 * harmless: it locks only ended sessions and owner rows, always with SKIP
 * LOCKED, so it never waits for a row lock and cannot close a cycle.
 *
 * Every ending (revocation or eviction) is announced with NOTIFY on the
 * channel sessmgr_session_ended, delivered when the transaction commits,
 * with a JSON payload naming the event, session, user and reason.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "tcop/pquery.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "sessmgr.h"

/* the NOTIFY channel of session endings; documented in the README */
#define SESSMGR_ENDED_CHANNEL	"sessmgr_session_ended"

static TriggerData *
check_trigger_call(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired as a row trigger", name)));
	return trigdata;
}

/*
 * The number of a column the triggers read, refusing a table that lacks it
 * (a column dropped or renamed by hand) rather than reading garbage.
 */
static int
required_column(TupleDesc desc, const char *name)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table sessmgr.sessions has no usable column \"%s\"", name),
				 errhint("Reinstall the sessmgr extension.")));
	return attnum;
}

static Datum
get_attr(HeapTuple tuple, Relation rel, const char *name, bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(rel);

	return heap_getattr(tuple, required_column(desc, name), desc, isnull);
}

/*
 * Whether rows are arriving in rel through COPY FROM rel: a restore of a
 * dump (pg_restore and plain pg_dump scripts load the extension's tables
 * with COPY) or the owner's bulk load; only the table's owner may COPY into
 * it.  Such rows are history, not new sessions: the cap and the audit trail
 * leave them alone, and the dump's own session_owners and session_events
 * rows arrive the same way.  Nothing else counts: a COPY ... TO of a query
 * that calls sessmgr (COPY (SELECT * FROM sessmgr.issue(...)) TO STDOUT), or
 * a COPY into another table whose trigger does, obeys the cap and is
 * audited like any other call.
 */
bool
SessmgrLoadingByCopy(Relation rel)
{
	PlannedStmt *stmt;
	CopyStmt   *copy;

	if (ActivePortal == NULL || ActivePortal->commandTag != CMDTAG_COPY ||
		list_length(ActivePortal->stmts) != 1)
		return false;
	stmt = linitial_node(PlannedStmt, ActivePortal->stmts);
	if (stmt->commandType != CMD_UTILITY || stmt->utilityStmt == NULL ||
		!IsA(stmt->utilityStmt, CopyStmt))
		return false;
	copy = (CopyStmt *) stmt->utilityStmt;
	if (!copy->is_from || copy->relation == NULL)
		return false;
	return RangeVarGetRelid(copy->relation, NoLock, true) == RelationGetRelid(rel);
}

/*
 * sessmgr.sessions_enforce_cap() RETURNS trigger
 *
 * BEFORE INSERT: make room for, or refuse, a user's next session according
 * to sessmgr.max_sessions and sessmgr.cap_policy.
 */
PG_FUNCTION_INFO_V1(sessmgr_sessions_enforce_cap);
Datum
sessmgr_sessions_enforce_cap(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr owner_plan = NULL;
	static SPIPlanPtr oldest_plan = NULL;
	static SPIPlanPtr idle_plan = NULL;
	static SPIPlanPtr evict_plan = NULL;
	TriggerData *trigdata = check_trigger_call(fcinfo, "sessions_enforce_cap");
	HeapTuple	tuple = trigdata->tg_trigtuple;
	Relation	rel = trigdata->tg_relation;
	Oid			owner_types[2] = {TEXTOID, TIMESTAMPTZOID};
	Oid			evict_types[2] = {UUIDOID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;
	SessmgrOwnerContext octx;
	uint64		active;

	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "sessions_enforce_cap must be fired BEFORE INSERT");

	/* restored history is not a new session (see SessmgrLoadingByCopy) */
	if (SessmgrLoadingByCopy(rel))
		return PointerGetDatum(tuple);

	/* a row without a user, or already ended, is for the constraints */
	values[0] = get_attr(tuple, rel, "user_id", &isnull);
	if (isnull)
		return PointerGetDatum(tuple);
	(void) get_attr(tuple, rel, "revoked_at", &isnull);
	if (!isnull)
		return PointerGetDatum(tuple);
	values[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());

	SessmgrOwnerBegin(&octx);

	/* serialize with every other issuer for this user; see the file header */
	SessmgrRun(&owner_plan,
			   "INSERT INTO sessmgr.session_owners AS o"
			   "       (user_id, sessions_issued, last_issued_at)"
			   " VALUES ($1, 1, $2)"
			   " ON CONFLICT (user_id) DO UPDATE"
			   "   SET sessions_issued = o.sessions_issued OPERATOR(pg_catalog.+) 1,"
			   "       last_issued_at = EXCLUDED.last_issued_at",
			   2, owner_types, values, NULL, SPI_OK_INSERT);

	/* the user's active sessions, the first to go first */
#define ACTIVE_SESSIONS_OF_USER \
	"SELECT id FROM sessmgr.sessions" \
	" WHERE user_id OPERATOR(pg_catalog.=) $1" \
	"   AND " SESSMGR_LIVE_SQL("", "$2")
	SessmgrRun(sessmgr_cap_policy == SESSMGR_CAP_EVICT_IDLE ? &idle_plan : &oldest_plan,
			   sessmgr_cap_policy == SESSMGR_CAP_EVICT_IDLE ?
			   ACTIVE_SESSIONS_OF_USER " ORDER BY last_active_at, created_at, id" :
			   ACTIVE_SESSIONS_OF_USER " ORDER BY created_at, id",
			   2, owner_types, values, NULL, SPI_OK_SELECT);
	active = SPI_processed;

	if (active >= (uint64) sessmgr_max_sessions)
	{
		uint64		excess = active - sessmgr_max_sessions + 1;
		SPITupleTable *victims = SPI_tuptable;
		Datum		evict_values[2];

		if (sessmgr_cap_policy == SESSMGR_CAP_REJECT)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("too many active sessions"),
					 errdetail("The user already has %d active sessions, the most allowed.",
							   sessmgr_max_sessions),
					 errhint("End one of the user's sessions, then try again.")));

		evict_values[1] = values[1];
		for (uint64 i = 0; i < excess; i++)
		{
			evict_values[0] = SPI_getbinval(victims->vals[i], victims->tupdesc, 1, &isnull);
			SessmgrRun(&evict_plan,
					   "UPDATE sessmgr.sessions"
					   "   SET revoked_at = pg_catalog.clock_timestamp(), revoke_reason = 'cap'"
					   " WHERE id OPERATOR(pg_catalog.=) $1"
					   "   AND revoked_at IS NULL",
					   2, evict_types, evict_values, NULL, SPI_OK_UPDATE);
		}
	}

	SessmgrOwnerEnd(&octx);
	return PointerGetDatum(tuple);
}

/*
 * sessmgr.sessions_guard_ended() RETURNS trigger
 *
 * BEFORE UPDATE: an ended session (revoked, past its absolute lifetime or
 * idle past its timeout) is never changed again, and no session ever changes
 * its identity, owner or lifetimes.
 */
PG_FUNCTION_INFO_V1(sessmgr_sessions_guard_ended);
Datum
sessmgr_sessions_guard_ended(PG_FUNCTION_ARGS)
{
	static const char *const fixed[] = {
		"id", "user_id", "created_at", "expires_at", "idle_timeout", "remember"
	};
	TriggerData *trigdata = check_trigger_call(fcinfo, "sessions_guard_ended");
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTuple	oldtup = trigdata->tg_trigtuple;
	HeapTuple	newtup = trigdata->tg_newtuple;
	bool		revoked_null;
	bool		isnull;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		elog(ERROR, "sessions_guard_ended must be fired BEFORE UPDATE");

	(void) get_attr(oldtup, rel, "revoked_at", &revoked_null);
	/* cleanup's minimisation (privacy.c) is the one change an ended session takes */
	if (!SessmgrMinimisingSessions() &&
		!SessmgrSessionIsLive(now, !revoked_null,
							  DatumGetTimestampTz(get_attr(oldtup, rel, "expires_at", &isnull)),
							  DatumGetTimestampTz(get_attr(oldtup, rel, "last_active_at", &isnull)),
							  SessmgrIntervalUsecs(DatumGetIntervalP(get_attr(oldtup, rel,
																			  "idle_timeout",
																			  &isnull)))))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot modify an ended session"),
				 errdetail("Revoked and expired sessions are final.")));

	for (size_t i = 0; i < lengthof(fixed); i++)
	{
		int			attnum = required_column(desc, fixed[i]);
		Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
		bool		old_null;
		bool		new_null;
		Datum		old_value = heap_getattr(oldtup, attnum, desc, &old_null);
		Datum		new_value = heap_getattr(newtup, attnum, desc, &new_null);

		if (old_null != new_null ||
			(!old_null && !datumIsEqual(old_value, new_value, att->attbyval, att->attlen)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot change column \"%s\" of a session", fixed[i]),
					 errhint("Revoke the session and issue a new one.")));
	}

	return PointerGetDatum(newtup);
}

/*
 * Announce that a session ended, for application caches and websocket
 * servers.  NOTIFY delivers at commit, never for a transaction that rolls
 * back.  The payload holds ids and the reason, never a token or its hash;
 * with user ids of at most 256 bytes and reasons of 64 it stays far below
 * NOTIFY's 8000-byte limit.
 */
static void
notify_ended(const char *event, Datum session_id, Datum user_id, Datum reason)
{
	StringInfoData payload;

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"event\":");
	escape_json(&payload, event);
	appendStringInfoString(&payload, ",\"session_id\":");
	escape_json(&payload, DatumGetCString(DirectFunctionCall1(uuid_out, session_id)));
	appendStringInfoString(&payload, ",\"user_id\":");
	escape_json(&payload, TextDatumGetCString(user_id));
	appendStringInfoString(&payload, ",\"reason\":");
	escape_json(&payload, TextDatumGetCString(reason));
	appendStringInfoChar(&payload, '}');

	Async_Notify(SESSMGR_ENDED_CHANNEL, payload.data);
	pfree(payload.data);
}

/*
 * sessmgr.sessions_audit() RETURNS trigger
 *
 * AFTER INSERT, and AFTER UPDATE that ends a session: write the event row in
 * the same transaction, naming the role the client ran as (SessmgrActor) and
 * the user of the session it had authenticated with, if any, and announce
 * an ending (see notify_ended).
 */
/* the columns an issue event copies from its session, after the first seven */
static const char *const issue_columns[] = {
	"user_agent", "device", "browser", "os", "device_type", "country_code",
	"country", "region", "city", "latitude", "longitude", "accuracy_radius_km", "asn"
};

/*
 * then an ending's details: when the session was created and whether it was
 * remembered, so that its duration outlives the row (sessmgr.session_durations)
 */
#define AUDIT_END_ARG (7 + lengthof(issue_columns))
#define AUDIT_NARGS (AUDIT_END_ARG + 2)

PG_FUNCTION_INFO_V1(sessmgr_sessions_audit);
Datum
sessmgr_sessions_audit(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	TriggerData *trigdata = check_trigger_call(fcinfo, "sessions_audit");
	Relation	rel = trigdata->tg_relation;
	HeapTuple	tuple;
	Oid			types[AUDIT_NARGS] = {
		TEXTOID, UUIDOID, TEXTOID, TEXTOID, NAMEOID, INETOID, TEXTOID,
		/* an issue's user agent, device and place */
		TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, FLOAT8OID, FLOAT8OID, INT4OID, INT8OID,
		/* an ending's created_at and remember */
		TIMESTAMPTZOID, BOOLOID
	};
	Datum		values[AUDIT_NARGS];
	char		nulls[AUDIT_NARGS];
	const char *event;
	const char *actor_user_id = SessmgrIdentityUserId();
	bool		isnull;
	char	   *actor;
	NameData	actor_name;

	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		elog(ERROR, "sessions_audit must be fired AFTER INSERT or UPDATE");

	/* a restore brings its own events (see SessmgrLoadingByCopy) */
	if (SessmgrLoadingByCopy(rel))
		return PointerGetDatum(NULL);

	memset(nulls, ' ', sizeof(nulls));
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		tuple = trigdata->tg_trigtuple;
		event = "issue";
		values[3] = (Datum) 0;
		nulls[3] = 'n';
		for (size_t i = 0; i < lengthof(issue_columns); i++)
		{
			values[7 + i] = get_attr(tuple, rel, issue_columns[i], &isnull);
			nulls[7 + i] = isnull ? 'n' : ' ';
		}
		nulls[AUDIT_END_ARG] = nulls[AUDIT_END_ARG + 1] = 'n';
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		Datum		reason;

		tuple = trigdata->tg_newtuple;
		reason = get_attr(tuple, rel, "revoke_reason", &isnull);
		if (isnull)
			return PointerGetDatum(NULL);	/* not an ending */
		event = strcmp(TextDatumGetCString(reason), "cap") == 0 ? "evict" : "revoke";
		values[3] = reason;
		for (size_t i = 0; i < lengthof(issue_columns); i++)
		{
			values[7 + i] = (Datum) 0;
			nulls[7 + i] = 'n';
		}
		values[AUDIT_END_ARG] = get_attr(tuple, rel, "created_at", &isnull);
		values[AUDIT_END_ARG + 1] = get_attr(tuple, rel, "remember", &isnull);
	}
	else
		elog(ERROR, "sessions_audit must be fired AFTER INSERT or UPDATE");

	actor = GetUserNameFromId(SessmgrActor(), true);
	namestrcpy(&actor_name, actor ? actor : "?");

	values[0] = CStringGetTextDatum(event);
	values[1] = get_attr(tuple, rel, "id", &isnull);
	values[2] = get_attr(tuple, rel, "user_id", &isnull);
	values[4] = NameGetDatum(&actor_name);
	values[5] = get_attr(tuple, rel, "ip", &isnull);
	if (isnull)
		nulls[5] = 'n';
	if (actor_user_id != NULL)
		values[6] = CStringGetTextDatum(actor_user_id);
	else
		nulls[6] = 'n';

	SessmgrRunAsOwner(&plan,
					  "INSERT INTO sessmgr.session_events"
					  " (event, session_id, user_id, reason, actor, ip, actor_user_id,"
					  "  user_agent, device, browser, os, device_type, country_code,"
					  "  country, region, city, latitude, longitude, accuracy_radius_km, asn,"
					  "  details)"
					  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
					  "         $14, $15, $16, $17, $18, $19, $20,"
					  "         CASE WHEN $21 IS NOT NULL THEN pg_catalog.jsonb_build_object("
					  "           'session_created_at', $21, 'remember', $22) END)",
					  AUDIT_NARGS, types, values, nulls, SPI_OK_INSERT);

	if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		notify_ended(event, values[1], values[2], values[3]);

	return PointerGetDatum(NULL);
}

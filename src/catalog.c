/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Where the extension's tables are, and acting as their owner.
 *
 * The OIDs and attribute numbers of sessmgr.sessions are looked up once per
 * backend and forgotten on any relcache invalidation of the table or its
 * primary key (DROP EXTENSION, ALTER TABLE, ...).
 *
 * sessmgr's functions are not SECURITY DEFINER.  Where they must write the
 * extension's tables, they switch to the tables' owner for the duration of
 * their own fixed, schema-qualified statements, as PostgreSQL's RI triggers
 * do, and switch back.  This keeps the hot paths free of the per-call cost of
 * a SECURITY DEFINER function with a SET clause, and lets the audit trail
 * record the role that really called.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "sessmgr.h"

static SessmgrCatalog catalog;
static bool catalog_valid = false;

static void
catalog_invalidate(Datum arg, Oid relid)
{
	if (!catalog_valid)
		return;
	if (relid == InvalidOid || relid == catalog.sessions ||
		relid == catalog.sessions_pkey)
		catalog_valid = false;
}

/* Register the callbacks; called once from _PG_init. */
void
SessmgrCatalogInit(void)
{
	CacheRegisterRelcacheCallback(catalog_invalidate, (Datum) 0);
}

static AttrNumber
required_attnum(Oid relid, const char *name, Oid type)
{
	AttrNumber	attnum = get_attnum(relid, name);

	if (attnum == InvalidAttrNumber || get_atttype(relid, attnum) != type)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table sessmgr.sessions has no usable column \"%s\"", name),
				 errhint("Reinstall the sessmgr extension.")));
	return attnum;
}

/*
 * The extension's catalog entries, looked up on first use in a backend and
 * after any invalidation.
 */
const SessmgrCatalog *
SessmgrGetCatalog(void)
{
	Oid			extoid;
	Oid			nsp;
	Oid			relid;
	Oid			pkey;
	SessmgrCatalog c;

	if (catalog_valid)
		return &catalog;

	extoid = get_extension_oid("sessmgr", true);
	if (!OidIsValid(extoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"sessmgr\" is not installed in this database")));

	nsp = get_namespace_oid("sessmgr", false);	/* the control file fixes it */
	relid = get_relname_relid("sessions", nsp);
	pkey = get_relname_relid("sessions_pkey", nsp);
	if (!OidIsValid(relid) || !OidIsValid(pkey) ||
		get_rel_relkind(relid) != RELKIND_RELATION ||
		get_rel_relkind(pkey) != RELKIND_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table sessmgr.sessions or its primary key is missing"),
				 errhint("Reinstall the sessmgr extension.")));

	memset(&c, 0, sizeof(c));
	c.namespace = nsp;
	c.sessions = relid;
	c.sessions_pkey = pkey;
	{
		HeapTuple	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

		if (!HeapTupleIsValid(tp))
			elog(ERROR, "cache lookup failed for relation %u", relid);
		c.owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
		ReleaseSysCache(tp);
	}
	c.att_id = required_attnum(relid, "id", UUIDOID);
	c.att_user_id = required_attnum(relid, "user_id", TEXTOID);
	c.att_token_hash = required_attnum(relid, "token_hash", BYTEAOID);
	c.att_last_active_at = required_attnum(relid, "last_active_at", TIMESTAMPTZOID);
	c.att_expires_at = required_attnum(relid, "expires_at", TIMESTAMPTZOID);
	c.att_idle_timeout = required_attnum(relid, "idle_timeout", INTERVALOID);
	c.att_revoked_at = required_attnum(relid, "revoked_at", TIMESTAMPTZOID);
	c.att_token_gen = required_attnum(relid, "token_gen", INT8OID);
	c.att_prev_token_gen = required_attnum(relid, "prev_token_gen", INT8OID);
	c.att_last_needed = Max(Max(Max(c.att_id, c.att_user_id),
								Max(c.att_token_hash, c.att_last_active_at)),
							Max(Max(c.att_expires_at, c.att_idle_timeout),
								Max(c.att_revoked_at, c.att_token_gen)));
	c.att_last_needed = Max(c.att_last_needed, c.att_prev_token_gen);

	catalog = c;
	catalog_valid = true;
	return &catalog;
}

/*
 * Act as the owner of the extension's tables until SessmgrRestoreUser.
 *
 * Like amcheck, the owner's statements run with settings of their own, not
 * the caller's: search_path is pinned to pg_catalog, pg_temp for the
 * duration, so that no statement run with the owner's rights (ours, or a
 * trigger an administrator added to one of the tables) can be steered to a
 * caller's functions or operators.  An error in between needs no cleanup
 * here: (sub)transaction abort restores the user id and the settings.
 */
void
SessmgrBecomeOwner(SessmgrOwnerContext *ctx)
{
	const SessmgrCatalog *cat = SessmgrGetCatalog();

	GetUserIdAndSecContext(&ctx->save_userid, &ctx->save_sec_context);
	SetUserIdAndSecContext(cat->owner,
						   ctx->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);
	ctx->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

void
SessmgrRestoreUser(SessmgrOwnerContext *ctx)
{
	AtEOXact_GUC(true, ctx->save_nestlevel);
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec_context);
}

/*
 * The role to record as having done something: the role the client's
 * session runs as, that is the login role or the one it switched to with
 * SET ROLE (PostgREST's role of the request).  Owner mode and SECURITY
 * DEFINER functions in between do not change it.
 */
Oid
SessmgrActor(void)
{
	return GetOuterUserId();
}

/*
 * Prepare a statement once per backend and keep the plan.  Must be called
 * inside SPI_connect.
 */
SPIPlanPtr
SessmgrPreparePlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*cache = plan;
	}
	return *cache;
}

/*
 * Lock a user's row in sessmgr.session_owners: the first lock any change to
 * the user's sessions takes (see the lock order in triggers.c).  values are
 * the user id and the current time.
 *
 * - USER_LOCK_SHARE: an activity touch; touches of one user's sessions do
 *   not wait for each other.
 * - USER_LOCK_EXCLUSIVE: a refresh, which may go on to revoke (reuse): it
 *   takes the strongest lock it may need first, so that it never upgrades
 *   a share lock while holding a session row (two refreshes of one token
 *   would deadlock).
 * - USER_LOCK_REVOKE: a revocation updates the row, so that an issuer whose
 *   snapshot predates it fails instead of counting a revoked session.
 *
 * Call inside SPI, as the owner.
 */
void
SessmgrLockUserRow(Datum *values, SessmgrUserLock mode)
{
	static SPIPlanPtr plans[3] = {NULL, NULL, NULL};
	static const char *const sql[3] = {
		[USER_LOCK_SHARE] =
		"SELECT 1 FROM sessmgr.session_owners"
		" WHERE user_id OPERATOR(pg_catalog.=) $1"
		"   FOR SHARE",
		[USER_LOCK_EXCLUSIVE] =
		"SELECT 1 FROM sessmgr.session_owners"
		" WHERE user_id OPERATOR(pg_catalog.=) $1"
		"   FOR NO KEY UPDATE",
		[USER_LOCK_REVOKE] =
		"UPDATE sessmgr.session_owners"
		"   SET last_revoked_at = $2"
		" WHERE user_id OPERATOR(pg_catalog.=) $1",
	};
	Oid			types[2] = {TEXTOID, TIMESTAMPTZOID};

	SessmgrPreparePlan(&plans[mode], sql[mode], mode == USER_LOCK_REVOKE ? 2 : 1, types);
	SessmgrExecPlan(plans[mode], values, NULL,
					mode == USER_LOCK_REVOKE ? SPI_OK_UPDATE : SPI_OK_SELECT);
}

/* Run a prepared statement; elog on an SPI failure, which cannot happen. */
void
SessmgrExecPlan(SPIPlanPtr plan, Datum *values, const char *nulls, int expected)
{
	int			rc = SPI_execute_plan(plan, values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute_plan returned %s", SPI_result_code_string(rc));
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
 * Run fn(arg) in a subtransaction.  Returns NULL when it succeeded; when it
 * raised an error, rolls the subtransaction back and returns a copy of the
 * error for the caller to judge (rethrow, or report and go on).
 */
ErrorData *
SessmgrTryInSubtransaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);

	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();

	return edata;
}

/* An interval as microseconds, with a month counted as 30 days. */
int64
SessmgrIntervalUsecs(const Interval *interval)
{
	return interval->time +
		(interval->day + (int64) interval->month * DAYS_PER_MONTH) * USECS_PER_DAY;
}

/*
 * Whether a session with these attributes is active at time now: not
 * revoked, within its absolute lifetime, and active within its idle timeout.
 */
bool
SessmgrSessionIsLive(TimestampTz now, bool revoked, TimestampTz expires_at,
					 TimestampTz last_active_at, const Interval *idle_timeout)
{
	if (revoked || now >= expires_at)
		return false;
	return now < last_active_at + SessmgrIntervalUsecs(idle_timeout);
}

/*
 * Refuse an argument longer than max_bytes, judged by its size before any
 * detoasting (a 10 MB argument is refused without being read).  The error
 * names the argument, never its value.
 */
void
SessmgrCheckText(Datum value, const char *what, int max_bytes)
{
	if (toast_raw_datum_size(value) - VARHDRSZ > (Size) max_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long", what),
				 errdetail("The limit is %d bytes.", max_bytes)));
}

/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Where the extension's tables are, acting as their owner, and running
 *	  sessmgr's own statements.
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

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"
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

/*
 * The library and the extension's SQL must be of one version: the C code
 * expects the tables of its own version.  Between "make install" of a new
 * library and ALTER EXTENSION sessmgr UPDATE, every call says so instead of
 * failing on a missing column.  The install and update scripts themselves
 * run before the version is recorded, so they are let through.
 */
static void
check_extension_version(Oid extoid)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	if (creating_extension)
		return;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (version != NULL && strcmp(version, SESSMGR_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sessmgr library version %s does not match the installed extension version %s",
						SESSMGR_VERSION, version),
				 errhint("Run ALTER EXTENSION sessmgr UPDATE.")));
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
	check_extension_version(extoid);

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

	/*
	 * The step-up columns (src/stepup.c) are at the end of the row and read
	 * only by authenticate() and the pre-request check, never by validate():
	 * not part of att_last_needed.  Optional, so that a backend of the new
	 * library still works on a table not yet updated.
	 */
	c.att_authenticated_at = get_attnum(relid, "authenticated_at");
	if (c.att_authenticated_at != InvalidAttrNumber &&
		get_atttype(relid, c.att_authenticated_at) != TIMESTAMPTZOID)
		c.att_authenticated_at = InvalidAttrNumber;
	c.att_aal = get_attnum(relid, "aal");
	if (c.att_aal != InvalidAttrNumber && get_atttype(relid, c.att_aal) != INT2OID)
		c.att_aal = InvalidAttrNumber;

	catalog = c;
	catalog_valid = true;
	return &catalog;
}

/*
 * Owner mode: act as the owner of the extension's tables until
 * SessmgrLeaveOwnerMode.
 *
 * Like amcheck, the owner's statements run with settings of their own, not
 * the caller's: search_path is pinned to pg_catalog, pg_temp for the
 * duration, so that no statement run with the owner's rights (ours, or a
 * trigger an administrator added to one of the tables) can be steered to a
 * caller's functions or operators.  An error in between needs no cleanup
 * here: (sub)transaction abort restores the user id and the settings.
 */
void
SessmgrEnterOwnerMode(SessmgrOwnerContext *ctx)
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
SessmgrLeaveOwnerMode(SessmgrOwnerContext *ctx)
{
	AtEOXact_GUC(true, ctx->save_nestlevel);
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec_context);
}

/* Owner mode with SPI connected: the frame of every owner's statement. */
void
SessmgrOwnerBegin(SessmgrOwnerContext *ctx)
{
	SessmgrEnterOwnerMode(ctx);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
SessmgrOwnerEnd(SessmgrOwnerContext *ctx)
{
	SPI_finish();
	SessmgrLeaveOwnerMode(ctx);
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
 * Run one of sessmgr's fixed statements inside SPI: prepared on first use
 * and kept in *plan for the backend, then executed with values and nulls
 * (SPI's ' '/'n' convention, NULL for none).  Anything but the expected
 * SPI result is an internal error.  Returns the number of rows processed;
 * the rows are in SPI_tuptable.
 */
uint64
SessmgrRun(SPIPlanPtr *plan, const char *sql, int nargs, const Oid *argtypes,
		   Datum *values, const char *nulls, int expected)
{
	int			rc;

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, (Oid *) argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}
	rc = SPI_execute_plan(*plan, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan returned %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* SessmgrRun for one statement on its own: owner mode, SPI, the statement. */
uint64
SessmgrRunAsOwner(SPIPlanPtr *plan, const char *sql, int nargs, const Oid *argtypes,
				  Datum *values, const char *nulls, int expected)
{
	SessmgrOwnerContext octx;
	uint64		processed;

	SessmgrOwnerBegin(&octx);
	processed = SessmgrRun(plan, sql, nargs, argtypes, values, nulls, expected);
	SessmgrOwnerEnd(&octx);
	return processed;
}

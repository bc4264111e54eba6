/*-------------------------------------------------------------------------
 *
 * schedule.c
 *	  Having pg_cron run the cleanup on a schedule:
 *	  sessmgr.schedule_cleanup(), sessmgr.unschedule_cleanup(), and the event
 *	  trigger that unschedules the job when the extension is dropped.
 *
 * pg_cron keeps its jobs in one database (cron.database_name).  When sessmgr
 * lives in that database the job is registered through SPI, in the caller's
 * transaction.  Otherwise a short-lived background worker connects to the
 * pg_cron database as the calling role and calls cron.schedule_in_database()
 * there; that takes effect at once, whatever becomes of the caller's
 * transaction.  pg_cron is looked up at run time, never required.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "sessmgr.h"

/* what the pg_cron job runs, and the prefix of its name */
#define CLEANUP_COMMAND			"CALL sessmgr.cleanup()"
#define CLEANUP_JOB_PREFIX		"sessmgr_cleanup_"

/*
 * The call a background worker makes in the pg_cron database gives up after
 * CRON_STATEMENT_TIMEOUT (a lock held on cron.job, say), and the backend
 * waiting for it gives up after CRON_WAIT_MS whatever the worker is doing:
 * the wait can happen at pre-commit of a DROP EXTENSION.
 */
#define CRON_STATEMENT_TIMEOUT	"10s"
#define CRON_WAIT_MS			20000

PGDLLEXPORT void sessmgr_cron_worker_main(Datum main_arg);

typedef enum CronOperation
{
	CRON_SCHEDULE,
	CRON_UNSCHEDULE
} CronOperation;

/*
 * One call of pg_cron's functions, to be made in the pg_cron database: in
 * this backend, or by a background worker through dynamic shared memory.
 */
typedef struct CronRequest
{
	/* what to do */
	CronOperation operation;
	Oid			cron_database;	/* where pg_cron keeps its jobs */
	Oid			role;			/* whom to do it as */
	char		job_name[NAMEDATALEN + sizeof(CLEANUP_JOB_PREFIX)];
	char		database[NAMEDATALEN];	/* where the job runs */
	char		schedule[256];
	bool		missing_ok;		/* no pg_cron there: nothing to unschedule */

	/* what came of it */
	bool		done;
	bool		failed;
	int64		result;			/* job id, or how many jobs were removed */
	int			sqlerrcode;
	char		message[512];
	char		detail[512];
	char		hint[512];
} CronRequest;

/*
 * The pg_cron database, or NULL if pg_cron is not loaded.  pg_cron defines
 * cron.database_name when it is preloaded; a placeholder with that name
 * (set in a file, without the library) does not count.
 */
static const char *
cron_database_name(void)
{
	int			flags = GetConfigOptionFlags("cron.database_name", true);

	if (flags & GUC_CUSTOM_PLACEHOLDER)
		return NULL;
	return GetConfigOption("cron.database_name", true, false);
}

static void
cron_not_loaded(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("pg_cron is not loaded"),
			 errdetail("The cleanup job is scheduled with pg_cron, which is not in shared_preload_libraries."),
			 errhint("Install pg_cron and add it to shared_preload_libraries, or run \"%s\" from another scheduler.",
					 CLEANUP_COMMAND)));
}

/*
 * The job's name: one cleanup job per database (and scheduling role).
 * pg_cron's job names are of type name, so a long database name is cut.
 */
static void
fill_job(CronRequest *req)
{
	char	   *dbname = get_database_name(MyDatabaseId);
	char		job_name[sizeof(req->job_name)];

	strlcpy(req->database, dbname, sizeof(req->database));
	snprintf(job_name, sizeof(job_name), "%s%s", CLEANUP_JOB_PREFIX, dbname);
	job_name[pg_mbcliplen(job_name, strlen(job_name), NAMEDATALEN - 1)] = '\0';
	strlcpy(req->job_name, job_name, sizeof(req->job_name));
}

/*
 * Make the call in the current database, which must be the pg_cron one.
 * Statements are schema-qualified: in this backend they run under the
 * caller's search_path.
 */
static int64
run_cron_request(const CronRequest *req)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	bool		isnull;
	int64		result;
	int			rc;

	if (!OidIsValid(get_extension_oid("pg_cron", true)))
	{
		if (req->missing_ok)
			return 0;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"pg_cron\" is not installed in database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errhint("Run CREATE EXTENSION pg_cron in database \"%s\", the one named by cron.database_name.",
						 get_database_name(MyDatabaseId))));
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	values[0] = CStringGetTextDatum(req->job_name);
	if (req->operation == CRON_SCHEDULE)
	{
		rc = SPI_execute("SELECT pg_catalog.to_regprocedure("
						 "'cron.schedule_in_database(pg_catalog.text,pg_catalog.text,"
						 "pg_catalog.text,pg_catalog.text,pg_catalog.text,pg_catalog.bool)')"
						 " IS NOT NULL", true, 1);
		if (rc != SPI_OK_SELECT ||
			!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("pg_cron has no function cron.schedule_in_database"),
					 errhint("Update pg_cron to version 1.4 or later (ALTER EXTENSION pg_cron UPDATE).")));

		values[1] = CStringGetTextDatum(req->schedule);
		values[2] = CStringGetTextDatum(CLEANUP_COMMAND);
		values[3] = CStringGetTextDatum(req->database);
		rc = SPI_execute_with_args("SELECT cron.schedule_in_database($1, $2, $3, $4)",
								   4, types, values, NULL, false, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "calling pg_cron failed: %s", SPI_result_code_string(rc));
		result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

		/*
		 * pg_cron updates a job of the same name and role in place, but not
		 * its database: make sure a name cut short did not hit another
		 * database's job.
		 */
		values[0] = Int64GetDatum(result);
		types[0] = INT8OID;
		rc = SPI_execute_with_args("SELECT j.database FROM cron.job j"
								   " WHERE j.jobid OPERATOR(pg_catalog.=) $1",
								   1, types, values, NULL, false, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "pg_cron job " INT64_FORMAT " vanished", result);
		{
			char	   *database = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
																	 SPI_tuptable->tupdesc,
																	 1, &isnull));

			if (strcmp(database, req->database) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("pg_cron job \"%s\" runs in database \"%s\"",
								req->job_name, database),
						 errhint("Unschedule that job first; long database names are cut to fit pg_cron's job names.")));
		}
		SPI_finish();
		return result;
	}
	else
	{
		values[1] = CStringGetTextDatum(req->database);
		rc = SPI_execute_with_args("SELECT pg_catalog.count(cron.unschedule(j.jobid))"
								   "  FROM cron.job j"
								   " WHERE j.jobname OPERATOR(pg_catalog.=) $1"
								   "   AND j.database OPERATOR(pg_catalog.=) $2",
								   2, types, values, NULL, false, 1);
	}
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "calling pg_cron failed: %s", SPI_result_code_string(rc));
	result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return result;
}

/*
 * Entry point of the background worker that makes a CronRequest's call in
 * the pg_cron database and reports the outcome through shared memory.
 */
void
sessmgr_cron_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	CronRequest *req;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map dynamic shared memory segment")));
	req = dsm_segment_address(seg);

	BackgroundWorkerInitializeConnectionByOid(req->cron_database, req->role, 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "sessmgr: calling pg_cron");
	PG_TRY();
	{
		int64		result;

		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET,
								 true, 0, false);
		(void) set_config_option("statement_timeout", CRON_STATEMENT_TIMEOUT,
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET,
								 true, 0, false);
		result = run_cron_request(req);
		PopActiveSnapshot();
		CommitTransactionCommand();
		req->result = result;
		req->done = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		req->sqlerrcode = edata->sqlerrcode;
		strlcpy(req->message, edata->message ? edata->message : "", sizeof(req->message));
		strlcpy(req->detail, edata->detail ? edata->detail : "", sizeof(req->detail));
		strlcpy(req->hint, edata->hint ? edata->hint : "", sizeof(req->hint));
		req->failed = true;
		req->done = true;
		PG_RE_THROW();
	}
	PG_END_TRY();

	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}

/*
 * Wait until the worker has stopped, at most CRON_WAIT_MS; stop it and
 * return false if it has not by then.
 */
static bool
wait_for_worker(BackgroundWorkerHandle *handle)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CRON_WAIT_MS);

	for (;;)
	{
		pid_t		pid;
		long		remaining;
		BgwHandleStatus status = GetBackgroundWorkerPid(handle, &pid);

		if (status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED)
			return status == BGWH_STOPPED;
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
		{
			TerminateBackgroundWorker(handle);
			return false;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(remaining, 1000), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Have a background worker make the call in the pg_cron database and wait
 * for it, at most CRON_WAIT_MS.  Fills *req with the outcome; returns false, with a reason in
 * req->message, if the worker could not be started or did not report.
 * Raises no error of its own, so that it can be used at pre-commit.
 */
static bool
run_cron_request_elsewhere(CronRequest *req)
{
	dsm_segment *seg;
	CronRequest *shared;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	seg = dsm_create(sizeof(CronRequest), 0);
	shared = dsm_segment_address(seg);
	memcpy(shared, req, sizeof(CronRequest));

	memset(&worker, 0, sizeof(worker));
	snprintf(worker.bgw_name, BGW_MAXLEN, "sessmgr pg_cron call for database %s",
			 req->database);
	snprintf(worker.bgw_type, BGW_MAXLEN, "sessmgr pg_cron call");
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "sessmgr");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "sessmgr_cron_worker_main");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_detach(seg);
		req->sqlerrcode = ERRCODE_INSUFFICIENT_RESOURCES;
		strlcpy(req->message, "could not start a background worker", sizeof(req->message));
		strlcpy(req->hint, "Raise max_worker_processes.", sizeof(req->hint));
		return false;
	}

	if (!wait_for_worker(handle))
	{
		req->sqlerrcode = ERRCODE_QUERY_CANCELED;
		snprintf(req->message, sizeof(req->message),
				 "timed out calling pg_cron in database \"%s\"",
				 get_database_name(req->cron_database));
		snprintf(req->detail, sizeof(req->detail),
				 "The background worker that calls pg_cron there did not finish within %d seconds and was stopped.",
				 CRON_WAIT_MS / 1000);
		strlcpy(req->hint, "See the server log.", sizeof(req->hint));
	}
	else if (shared->done)
		memcpy(req, shared, sizeof(CronRequest));
	else
	{
		req->sqlerrcode = ERRCODE_CONNECTION_FAILURE;
		snprintf(req->message, sizeof(req->message),
				 "could not reach database \"%s\"", get_database_name(req->cron_database));
		strlcpy(req->detail, "The background worker that calls pg_cron there exited without a result.",
				sizeof(req->detail));
		strlcpy(req->hint, "See the server log.", sizeof(req->hint));
	}
	dsm_detach(seg);
	return req->done;
}

/* Raise the error a CronRequest failed with, if it did. */
static void
rethrow_cron_error(const CronRequest *req)
{
	ereport(ERROR,
			(errcode(req->sqlerrcode),
			 errmsg_internal("%s", req->message),
			 req->detail[0] ? errdetail_internal("%s", req->detail) : 0,
			 req->hint[0] ? errhint("%s", req->hint) : 0,
			 errcontext("calling pg_cron in database \"%s\"",
						get_database_name(req->cron_database))));
}

/*
 * Make a CronRequest's call wherever pg_cron is, raising any error.
 */
static int64
call_cron(CronRequest *req)
{
	const char *cron_db = cron_database_name();
	HeapTuple	roletup;
	bool		can_login;

	if (cron_db == NULL)
		cron_not_loaded();
	req->cron_database = get_database_oid(cron_db, true);
	if (!OidIsValid(req->cron_database))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("database \"%s\" named by cron.database_name does not exist", cron_db)));

	/* pg_cron connects as the role that scheduled the job; so do we */
	req->role = GetUserId();
	roletup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(req->role));
	if (!HeapTupleIsValid(roletup))
		elog(ERROR, "cache lookup failed for role %u", req->role);
	can_login = ((Form_pg_authid) GETSTRUCT(roletup))->rolcanlogin;
	ReleaseSysCache(roletup);
	if (!can_login)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" cannot log in", GetUserNameFromId(req->role, false)),
				 errdetail("pg_cron runs a job by logging in as the role that scheduled it."),
				 errhint("Call this function as a role with LOGIN.")));

	if (req->cron_database == MyDatabaseId)
		return run_cron_request(req);

	if (!run_cron_request_elsewhere(req) || req->failed)
		rethrow_cron_error(req);
	return req->result;
}

/* A removal of the cleanup job in another database, waiting for commit. */
static struct
{
	bool		pending;
	int			nest_level;
	CronRequest request;
} deferred_unschedule;

static bool xact_callbacks_registered = false;

static void
unschedule_elsewhere_now(void)
{
	CronRequest *req = &deferred_unschedule.request;

	deferred_unschedule.pending = false;
	if (!run_cron_request_elsewhere(req) || req->failed)
		ereport(WARNING,
				(errcode(req->sqlerrcode),
				 errmsg("could not unschedule the sessmgr cleanup job \"%s\"", req->job_name),
				 errdetail_internal("%s", req->message),
				 errhint("In database \"%s\", run: SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = '%s';",
						 get_database_name(req->cron_database), req->job_name)));
}

/*
 * After DROP EXTENSION sessmgr, remove the job from the pg_cron database
 * only if the transaction is about to commit: that removal cannot be rolled
 * back, and a DROP that fails (a dependent object, ROLLBACK) must leave the
 * cleanup job in place.
 */
static void
cleanup_xact_callback(XactEvent event, void *arg)
{
	if (!deferred_unschedule.pending)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			unschedule_elsewhere_now();
			break;
		case XACT_EVENT_PRE_PREPARE:
			deferred_unschedule.pending = false;
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot PREPARE a transaction that dropped extension sessmgr"),
					 errdetail("Its cleanup job in the pg_cron database could not be removed at commit.")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			deferred_unschedule.pending = false;
			break;
		default:
			break;
	}
}

static void
cleanup_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && deferred_unschedule.pending &&
		deferred_unschedule.nest_level >= GetCurrentTransactionNestLevel())
		deferred_unschedule.pending = false;
}

/*
 * sessmgr.schedule_cleanup(schedule text DEFAULT '*5 * * * *') RETURNS bigint
 *
 * Register (or reschedule) the pg_cron job that runs CALL sessmgr.cleanup()
 * in this database; returns the job id.
 */
PG_FUNCTION_INFO_V1(sessmgr_schedule_cleanup);
Datum
sessmgr_schedule_cleanup(PG_FUNCTION_ARGS)
{
	CronRequest req;
	text	   *schedule;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schedule must not be null")));
	schedule = PG_GETARG_TEXT_PP(0);
	if (VARSIZE_ANY_EXHDR(schedule) >= sizeof(req.schedule))
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("schedule is too long"),
				 errdetail("The limit is %d bytes.", (int) sizeof(req.schedule) - 1)));

	for (size_t i = 0; i < VARSIZE_ANY_EXHDR(schedule); i++)
	{
		unsigned char c = VARDATA_ANY(schedule)[i];

		if (c < 0x20 || c == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("schedule must not contain control characters"),
					 errdetail("A schedule is one line, such as \"*/5 * * * *\" or \"30 seconds\".")));
	}

	memset(&req, 0, sizeof(req));
	req.operation = CRON_SCHEDULE;
	fill_job(&req);
	text_to_cstring_buffer(schedule, req.schedule, sizeof(req.schedule));

	/* a DROP and re-CREATE in this transaction must not lose the new job */
	deferred_unschedule.pending = false;
	PG_RETURN_INT64(call_cron(&req));
}

/*
 * sessmgr.unschedule_cleanup() RETURNS boolean
 *
 * Remove this database's cleanup job from pg_cron; false if there was none.
 */
PG_FUNCTION_INFO_V1(sessmgr_unschedule_cleanup);
Datum
sessmgr_unschedule_cleanup(PG_FUNCTION_ARGS)
{
	CronRequest req;

	memset(&req, 0, sizeof(req));
	req.operation = CRON_UNSCHEDULE;
	fill_job(&req);
	PG_RETURN_BOOL(call_cron(&req) > 0);
}

/*
 * Unschedule the job in this database (the pg_cron one) as part of the
 * dropping transaction.  A failure here must not prevent the DROP: it
 * becomes a warning.
 */
static void
run_cron_request_in_subtransaction(void *arg)
{
	(void) run_cron_request((CronRequest *) arg);
}

static void
unschedule_here_or_warn(CronRequest *req)
{
	ErrorData  *edata = SessmgrTryInSubtransaction(run_cron_request_in_subtransaction, req);

	if (edata == NULL)
		return;
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("could not unschedule the sessmgr cleanup job \"%s\"", req->job_name),
			 errdetail_internal("%s", edata->message),
			 errhint("Run: SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = '%s';",
					 req->job_name)));
	FreeErrorData(edata);
}

/*
 * sessmgr.unschedule_cleanup_on_drop() RETURNS event_trigger
 *
 * ddl_command_start of DROP EXTENSION: when sessmgr itself is being dropped,
 * remove its cleanup job, so that pg_cron is not left running a command
 * that no longer exists.  In the pg_cron database the removal is part of
 * the DROP's transaction; elsewhere it happens at commit.
 */
PG_FUNCTION_INFO_V1(sessmgr_unschedule_cleanup_on_drop);
Datum
sessmgr_unschedule_cleanup_on_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	DropStmt   *stmt;
	ListCell   *lc;
	bool		dropping_sessmgr = false;
	const char *cron_db;
	CronRequest req;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "unschedule_cleanup_on_drop must be fired as an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, DropStmt))
		PG_RETURN_VOID();
	stmt = (DropStmt *) trigdata->parsetree;
	if (stmt->removeType != OBJECT_EXTENSION)
		PG_RETURN_VOID();
	foreach(lc, stmt->objects)
	{
		if (strcmp(strVal(lfirst(lc)), "sessmgr") == 0)
			dropping_sessmgr = true;
	}
	if (!dropping_sessmgr)
		PG_RETURN_VOID();

	cron_db = cron_database_name();
	if (cron_db == NULL)
		PG_RETURN_VOID();		/* no pg_cron, no job */

	memset(&req, 0, sizeof(req));
	req.operation = CRON_UNSCHEDULE;
	req.missing_ok = true;
	req.role = GetUserId();
	req.cron_database = get_database_oid(cron_db, true);
	if (!OidIsValid(req.cron_database))
		PG_RETURN_VOID();
	fill_job(&req);

	if (req.cron_database == MyDatabaseId)
		unschedule_here_or_warn(&req);
	else
	{
		if (!xact_callbacks_registered)
		{
			RegisterXactCallback(cleanup_xact_callback, NULL);
			RegisterSubXactCallback(cleanup_subxact_callback, NULL);
			xact_callbacks_registered = true;
		}
		deferred_unschedule.request = req;
		deferred_unschedule.nest_level = GetCurrentTransactionNestLevel();
		deferred_unschedule.pending = true;
	}
	PG_RETURN_VOID();
}

/*-------------------------------------------------------------------------
 *
 * cleanup.c
 *	  Removing what has outlived its retention (sessmgr.cleanup), and
 *	  having pg_cron do that on a schedule (sessmgr.schedule_cleanup,
 *	  sessmgr.unschedule_cleanup, and the event trigger that unschedules the
 *	  job when the extension is dropped).
 *
 * Cleanup walks each table once per run, in key order, a bounded batch per
 * transaction: sessions by (expires_at, id), events by (occurred_at, id),
 * session owners by user_id.  A batch examines at most batch_size rows, so a
 * run over N rows costs one pass over N rows however few of them go.  It
 * locks only the rows it deletes, with SKIP LOCKED, so it never waits for a
 * row lock: it cannot take part in a deadlock, whatever the lock order of
 * the other writers (see src/triggers.c), and a row somebody is working on
 * is simply left for the next run.  Two runs at once split the work.
 *
 * A session goes when it ended (revoked, past its absolute lifetime, or idle
 * past its idle timeout) more than sessmgr.retention before the run
 * started.  The condition is evaluated again on the latest row version when
 * the row is locked, so a session whose activity a concurrent validation
 * recorded is never deleted.  Each batch runs under READ COMMITTED whatever
 * the default isolation, so that recheck sees committed changes instead of
 * failing with a serialization error.
 *
 * A user's row in sessmgr.session_owners serializes the cap and every other
 * change to the user's sessions, so it must never go while the user has a
 * live session.  Cleanup locks candidate rows (no live session, nothing
 * issued or revoked within the retention) and then, in a later statement
 * whose READ COMMITTED snapshot postdates the lock, deletes those that still
 * have no live session.  An issuer takes that row lock before it inserts, so
 * every session that could count is either visible to that statement or
 * waits for the deletion and then creates the row afresh.
 *
 * pg_cron keeps its jobs in one database (cron.database_name).  When sessmgr
 * lives in that database the job is registered through SPI, in the caller's
 * transaction.  Otherwise a short-lived background worker connects to the
 * pg_cron database as the calling role and calls cron.schedule_in_database()
 * there; that takes effect at once, whatever becomes of the caller's
 * transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/resource.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "sessmgr.h"

#define CLEANUP_MAX_BATCH		100000

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

/* ------------------------------------------------------------------------
 * sessmgr.cleanup()
 * ------------------------------------------------------------------------
 */

/*
 * A batch that stays open longer than this makes the next one half the
 * size; one that takes less than half of it makes the next a quarter
 * larger, up to the caller's batch_size.  Growth is gentle because on a
 * machine short of CPU a transaction's wall time grows faster than its work
 * (a longer one is preempted more often): doubling a 25 ms batch was seen to
 * give 170 ms.  The first batch of each pass is small (CLEANUP_FIRST_BATCH
 * rows: it also pays for planning and cold caches).
 */
#define CLEANUP_BATCH_TARGET_MS	30
#define CLEANUP_FIRST_BATCH		100
#define CLEANUP_MIN_BATCH		10

typedef struct CleanupRun
{
	bool		atomic;			/* inside a transaction block: no commits */
	int64		batch_size;		/* the most rows a batch examines */
	int64		batch_rows;		/* rows the current batch examines */
	TimestampTz batch_started;
	int64		batch_cpu_us;	/* CPU time used when it started (DEBUG1 only) */
	int64		run_id;
	TimestampTz sessions_before;	/* sessions that ended before this go */
	TimestampTz events_before;	/* events that occurred before this go */
	int64		sessions_removed;
	int64		events_removed;
	int64		owners_removed;
	MemoryContext batch_context;	/* reset after every batch */
} CleanupRun;

/*
 * End the current batch: commit it and start the next transaction under
 * READ COMMITTED (see the file header) with synchronous_commit off, sizing
 * the next batch by how long this one took.  Inside a transaction block
 * there is nothing to commit; the whole run is one transaction, in batches
 * of batch_size.
 */
static void
next_batch(CleanupRun *run)
{
	TimestampTz now;
	int64		elapsed_ms;

	MemoryContextReset(run->batch_context);
	if (run->atomic)
	{
		run->batch_rows = run->batch_size;
		return;
	}
	SPI_commit();
	if (XactIsoLevel != XACT_READ_COMMITTED)
		(void) set_config_option("transaction_isolation", "read committed",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
								 true, 0, false);

	/*
	 * A batch lost in a crash is only done again by the next run: there is
	 * no reason to keep its locks while the commit record is flushed.
	 */
	(void) set_config_option("synchronous_commit", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);

	now = GetCurrentTimestamp();
	elapsed_ms = (now - run->batch_started) / 1000;
	if (elapsed_ms > CLEANUP_BATCH_TARGET_MS)
		run->batch_rows = Max(run->batch_rows / 2, Min(run->batch_size, CLEANUP_MIN_BATCH));
	else if (elapsed_ms < CLEANUP_BATCH_TARGET_MS / 2)
		run->batch_rows = Min(run->batch_rows + run->batch_rows / 4 + 1, run->batch_size);
	run->batch_started = now;
	if (message_level_is_interesting(DEBUG1))
	{
		struct rusage ru;
		int64		cpu_us;

		getrusage(RUSAGE_SELF, &ru);
		cpu_us = (int64) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
			ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
		elog(DEBUG1, "sessmgr cleanup: transaction took " INT64_FORMAT " ms (" INT64_FORMAT " ms on CPU), next batch " INT64_FORMAT " rows",
			 elapsed_ms, (cpu_us - run->batch_cpu_us) / 1000, run->batch_rows);
		run->batch_cpu_us = cpu_us;
	}
}

/*
 * A pass over the next table starts small again: its first batch also
 * plans its statements and reads pages nothing else has read lately.
 */
static void
start_pass(CleanupRun *run, const char *table)
{
	if (!run->atomic)
		run->batch_rows = Min(run->batch_size, CLEANUP_FIRST_BATCH);
	elog(DEBUG1, "sessmgr cleanup: pass over %s, first batch " INT64_FORMAT " rows",
		 table, run->batch_rows);
}

/* Write the counts so far into the run's row, in the batch's transaction. */
static void
record_progress(CleanupRun *run, bool finished)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', finished ? ' ' : 'n'};

	values[0] = Int64GetDatum(run->run_id);
	values[1] = Int64GetDatum(run->sessions_removed);
	values[2] = Int64GetDatum(run->events_removed);
	values[3] = Int64GetDatum(run->owners_removed);
	values[4] = TimestampTzGetDatum(GetCurrentTimestamp());
	SessmgrPreparePlan(&plan,
					   "UPDATE sessmgr.cleanup_runs"
					   "   SET sessions_removed = $2, events_removed = $3,"
					   "       owners_removed = $4, finished_at = $5"
					   " WHERE id OPERATOR(pg_catalog.=) $1",
					   5, types);
	SessmgrExecPlan(plan, values, nulls, SPI_OK_UPDATE);
}

/*
 * Start a run: fix the cutoffs from the settings and the transaction's start
 * time, and record the run.  Returns the highest expires_at of any session
 * (the end of the sessions pass) in *sessions_end, false if there is none.
 */
static bool
start_run(CleanupRun *run, Oid actor, TimestampTz *sessions_end)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr end_plan = NULL;
	Oid			types[2] = {TIMESTAMPTZOID, NAMEOID};
	Datum		values[2];
	NameData	actor_name;
	char	   *name = GetUserNameFromId(actor, true);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	bool		isnull;

	run->sessions_before = now - (int64) sessmgr_retention * USECS_PER_SEC;
	run->events_before = now - (int64) sessmgr_event_retention * USECS_PER_SEC;

	namestrcpy(&actor_name, name ? name : "?");
	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[1] = NameGetDatum(&actor_name);
	SessmgrPreparePlan(&insert_plan,
					   "INSERT INTO sessmgr.cleanup_runs (started_at, actor)"
					   " VALUES ($1, $2) RETURNING id",
					   2, types);
	SessmgrExecPlan(insert_plan, values, NULL, SPI_OK_INSERT_RETURNING);
	run->run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));

	/*
	 * Sessions issued after this point cannot have ended before the cutoff;
	 * stopping at the highest expiry seen now lets a run finish however fast
	 * sessions are issued meanwhile.
	 */
	SessmgrPreparePlan(&end_plan,
					   "SELECT pg_catalog.max(expires_at) FROM sessmgr.sessions",
					   0, NULL);
	SessmgrExecPlan(end_plan, NULL, NULL, SPI_OK_SELECT);
	*sessions_end = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1,
													  &isnull));
	return !isnull;
}

/*
 * A pass over a table in (timestamp, id) order: sessions by (expires_at, id),
 * events by (occurred_at, id).  Each batch finds where it ends, run->
 * batch_rows keys on (chunk_sql, or the end of the pass), then deletes the
 * rows in that key range that qualify and nobody has locked (delete_sql).
 *
 * chunk_sql takes ($1, $2) = the previous batch's end key, $3 = the end
 * of the pass, $4 = the offset of the batch's last key, and returns that
 * key.  delete_sql takes ($1, $2] .. ($3, $4] as the key range and $5 =
 * the cutoff.
 */
typedef struct KeysetPass
{
	const char *table;
	const char *chunk_sql;
	const char *delete_sql;
	SPIPlanPtr *chunk_plan;
	SPIPlanPtr *delete_plan;
	Oid			id_type;
	Datum		first_id;		/* below every id */
	Datum		last_id;		/* above every id */
	TimestampTz end_at;			/* the pass ends at (end_at, last_id) */
	TimestampTz cutoff;
	int64	   *removed;
} KeysetPass;

static void
cleanup_keyset_pass(CleanupRun *run, const KeysetPass *pass)
{
	MemoryContext run_context = CurrentMemoryContext;
	Oid			chunk_types[4] = {TIMESTAMPTZOID, pass->id_type, TIMESTAMPTZOID, INT8OID};
	Oid			delete_types[5] = {TIMESTAMPTZOID, pass->id_type, TIMESTAMPTZOID,
	pass->id_type, TIMESTAMPTZOID};
	int16		id_len;
	bool		id_byval;
	TimestampTz from_at = DT_NOBEGIN;
	Datum		from_id = pass->first_id;
	bool		last = false;

	get_typlenbyval(pass->id_type, &id_len, &id_byval);
	start_pass(run, pass->table);
	while (!last)
	{
		SessmgrOwnerContext octx;
		Datum		values[5];
		TimestampTz to_at;
		Datum		to_id;
		bool		isnull;

		SessmgrBecomeOwner(&octx);

		/* where this batch ends: batch_rows keys on, or the end of the pass */
		values[0] = TimestampTzGetDatum(from_at);
		values[1] = from_id;
		values[2] = TimestampTzGetDatum(pass->end_at);
		values[3] = Int64GetDatum(run->batch_rows - 1);
		SessmgrPreparePlan(pass->chunk_plan, pass->chunk_sql, 4, chunk_types);
		SessmgrExecPlan(*pass->chunk_plan, values, NULL, SPI_OK_SELECT);
		if (SPI_processed == 1)
		{
			HeapTuple	row = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			MemoryContext old = MemoryContextSwitchTo(run_context);

			to_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 1, &isnull));
			to_id = datumCopy(SPI_getbinval(row, desc, 2, &isnull), id_byval, id_len);
			MemoryContextSwitchTo(old);
		}
		else
		{
			to_at = pass->end_at;
			to_id = pass->last_id;
			last = true;
		}

		/* delete the ones that qualify and nobody has locked */
		values[2] = TimestampTzGetDatum(to_at);
		values[3] = to_id;
		values[4] = TimestampTzGetDatum(pass->cutoff);
		SessmgrPreparePlan(pass->delete_plan, pass->delete_sql, 5, delete_types);
		SessmgrExecPlan(*pass->delete_plan, values, NULL, SPI_OK_DELETE);
		if (SPI_processed > 0)
		{
			*pass->removed += SPI_processed;
			record_progress(run, false);
		}

		SessmgrRestoreUser(&octx);
		next_batch(run);
		if (!id_byval && from_id != pass->first_id)
			pfree(DatumGetPointer(from_id));
		from_at = to_at;
		from_id = to_id;
	}
}

/*
 * Remove the sessions that ended before run->sessions_before, those issued
 * up to the highest expiry seen at the start of the run.
 */
static void
cleanup_sessions(CleanupRun *run, TimestampTz sessions_end)
{
	static SPIPlanPtr chunk_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	pg_uuid_t	first_id;
	pg_uuid_t	last_id;
	KeysetPass	pass;

	memset(&first_id, 0, sizeof(first_id));
	memset(&last_id, 0xff, sizeof(last_id));
	pass.table = "sessions";
	pass.chunk_sql =
		"SELECT s.expires_at, s.id FROM sessmgr.sessions s"
		" WHERE (s.expires_at, s.id) OPERATOR(pg_catalog.>) ($1, $2)"
		"   AND s.expires_at OPERATOR(pg_catalog.<=) $3"
		" ORDER BY s.expires_at, s.id"
		" OFFSET $4 LIMIT 1";
	pass.delete_sql =
		"DELETE FROM sessmgr.sessions"
		" WHERE id OPERATOR(pg_catalog.=) ANY (ARRAY("
		"   SELECT s.id FROM sessmgr.sessions s"
		"    WHERE (s.expires_at, s.id) OPERATOR(pg_catalog.>) ($1, $2)"
		"      AND (s.expires_at, s.id) OPERATOR(pg_catalog.<=) ($3, $4)"
		"      AND (s.revoked_at OPERATOR(pg_catalog.<) $5"
		"           OR s.expires_at OPERATOR(pg_catalog.<) $5"
		"           OR s.last_active_at OPERATOR(pg_catalog.+) s.idle_timeout"
		"              OPERATOR(pg_catalog.<) $5)"
		"      FOR UPDATE OF s SKIP LOCKED))";
	pass.chunk_plan = &chunk_plan;
	pass.delete_plan = &delete_plan;
	pass.id_type = UUIDOID;
	pass.first_id = UUIDPGetDatum(&first_id);
	pass.last_id = UUIDPGetDatum(&last_id);
	pass.end_at = sessions_end;
	pass.cutoff = run->sessions_before;
	pass.removed = &run->sessions_removed;
	cleanup_keyset_pass(run, &pass);
}

/* Remove the audit events older than run->events_before. */
static void
cleanup_events(CleanupRun *run)
{
	static SPIPlanPtr chunk_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	KeysetPass	pass;

	pass.table = "session_events";
	pass.chunk_sql =
		"SELECT e.occurred_at, e.id FROM sessmgr.session_events e"
		" WHERE (e.occurred_at, e.id) OPERATOR(pg_catalog.>) ($1, $2)"
		"   AND e.occurred_at OPERATOR(pg_catalog.<) $3"
		" ORDER BY e.occurred_at, e.id"
		" OFFSET $4 LIMIT 1";
	pass.delete_sql =
		"DELETE FROM sessmgr.session_events"
		" WHERE id OPERATOR(pg_catalog.=) ANY (ARRAY("
		"   SELECT e.id FROM sessmgr.session_events e"
		"    WHERE (e.occurred_at, e.id) OPERATOR(pg_catalog.>) ($1, $2)"
		"      AND (e.occurred_at, e.id) OPERATOR(pg_catalog.<=) ($3, $4)"
		"      AND e.occurred_at OPERATOR(pg_catalog.<) $5"
		"      FOR UPDATE OF e SKIP LOCKED))";
	pass.chunk_plan = &chunk_plan;
	pass.delete_plan = &delete_plan;
	pass.id_type = INT8OID;
	pass.first_id = Int64GetDatum(PG_INT64_MIN);
	pass.last_id = Int64GetDatum(PG_INT64_MAX);
	pass.end_at = run->events_before;
	pass.cutoff = run->events_before;
	pass.removed = &run->events_removed;
	cleanup_keyset_pass(run, &pass);
}

/*
 * Remove the session_owners rows of users with no live session and nothing
 * issued or revoked within the retention, one batch of at most batch_size
 * rows (in user_id order) per transaction.  See the file header for why the
 * rows are locked in one statement and deleted in the next.
 */
static void
cleanup_owners(CleanupRun *run)
{
	static SPIPlanPtr chunk_plan = NULL;
	static SPIPlanPtr end_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	Oid			chunk_types[2] = {TEXTOID, INT8OID};
	Oid			lock_types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Oid			delete_types[1] = {TEXTARRAYOID};
	MemoryContext run_context = CurrentMemoryContext;
	text	   *from_key = cstring_to_text("");
	bool		last = false;

	start_pass(run, "session_owners");
	while (!last)
	{
		SessmgrOwnerContext octx;
		Datum		values[3];
		Datum	   *locked;
		text	   *to_key = NULL;
		bool		isnull;
		uint64		nlocked;

		SessmgrBecomeOwner(&octx);

		values[0] = PointerGetDatum(from_key);
		values[1] = Int64GetDatum(run->batch_rows - 1);
		SessmgrPreparePlan(&chunk_plan,
						   "SELECT o.user_id FROM sessmgr.session_owners o"
						   " WHERE o.user_id OPERATOR(pg_catalog.>) $1"
						   " ORDER BY o.user_id"
						   " OFFSET $2 LIMIT 1",
						   2, chunk_types);
		SessmgrExecPlan(chunk_plan, values, NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
		{
			/* the last batch ends at the highest user id */
			last = true;
			SessmgrPreparePlan(&end_plan,
							   "SELECT pg_catalog.max(o.user_id) FROM sessmgr.session_owners o",
							   0, NULL);
			SessmgrExecPlan(end_plan, NULL, NULL, SPI_OK_SELECT);
		}
		{
			Datum		key = SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
			{
				MemoryContext old = MemoryContextSwitchTo(run_context);

				to_key = DatumGetTextPCopy(key);
				MemoryContextSwitchTo(old);
			}
		}

		nlocked = 0;
		if (to_key != NULL)
		{
			/* lock the candidates nobody else is working on */
			values[1] = PointerGetDatum(to_key);
			values[2] = TimestampTzGetDatum(run->sessions_before);
			SessmgrPreparePlan(&lock_plan,
							   "SELECT o.user_id FROM sessmgr.session_owners o"
							   " WHERE o.user_id OPERATOR(pg_catalog.>) $1"
							   "   AND o.user_id OPERATOR(pg_catalog.<=) $2"
							   "   AND GREATEST(o.last_issued_at, o.last_revoked_at)"
							   "       OPERATOR(pg_catalog.<) $3"
							   "   AND NOT EXISTS (SELECT FROM sessmgr.sessions s"
							   "        WHERE s.user_id OPERATOR(pg_catalog.=) o.user_id"
							   "          AND s.revoked_at IS NULL"
							   "          AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()"
							   "          AND s.last_active_at OPERATOR(pg_catalog.+) s.idle_timeout"
							   "              OPERATOR(pg_catalog.>) pg_catalog.now())"
							   " FOR UPDATE OF o SKIP LOCKED",
							   3, lock_types);
			SessmgrExecPlan(lock_plan, values, NULL, SPI_OK_SELECT);
			nlocked = SPI_processed;
		}

		if (nlocked > 0)
		{
			MemoryContext old = MemoryContextSwitchTo(run->batch_context);
			ArrayType  *array;

			locked = palloc(sizeof(Datum) * nlocked);
			for (uint64 i = 0; i < nlocked; i++)
				locked[i] = PointerGetDatum(DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[i],
																			SPI_tuptable->tupdesc,
																			1, &isnull)));
			array = construct_array(locked, (int) nlocked, TEXTOID, -1, false, TYPALIGN_INT);
			MemoryContextSwitchTo(old);

			/* a fresh snapshot, taken while we hold the locks */
			values[0] = PointerGetDatum(array);
			SessmgrPreparePlan(&delete_plan,
							   "DELETE FROM sessmgr.session_owners o"
							   " WHERE o.user_id OPERATOR(pg_catalog.=) ANY ($1)"
							   "   AND NOT EXISTS (SELECT FROM sessmgr.sessions s"
							   "        WHERE s.user_id OPERATOR(pg_catalog.=) o.user_id"
							   "          AND s.revoked_at IS NULL"
							   "          AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()"
							   "          AND s.last_active_at OPERATOR(pg_catalog.+) s.idle_timeout"
							   "              OPERATOR(pg_catalog.>) pg_catalog.now())",
							   1, delete_types);
			SessmgrExecPlan(delete_plan, values, NULL, SPI_OK_DELETE);
			if (SPI_processed > 0)
			{
				run->owners_removed += SPI_processed;
				record_progress(run, false);
			}
		}

		SessmgrRestoreUser(&octx);
		next_batch(run);
		if (to_key == NULL)
			break;
		pfree(from_key);
		from_key = to_key;
	}
	pfree(from_key);
}

/* Forget the runs older than the event retention, and finish this one. */
static void
finish_run(CleanupRun *run)
{
	static SPIPlanPtr prune_plan = NULL;
	Oid			types[2] = {TIMESTAMPTZOID, INT8OID};
	Datum		values[2];
	SessmgrOwnerContext octx;

	SessmgrBecomeOwner(&octx);
	values[0] = TimestampTzGetDatum(run->events_before);
	values[1] = Int64GetDatum(run->run_id);
	SessmgrPreparePlan(&prune_plan,
					   "DELETE FROM sessmgr.cleanup_runs"
					   " WHERE started_at OPERATOR(pg_catalog.<) $1"
					   "   AND id OPERATOR(pg_catalog.<>) $2",
					   2, types);
	SessmgrExecPlan(prune_plan, values, NULL, SPI_OK_DELETE);
	record_progress(run, true);
	SessmgrRestoreUser(&octx);
}

/*
 * sessmgr.cleanup(batch_size integer DEFAULT 1000,
 *				   INOUT sessions_removed bigint DEFAULT NULL,
 *				   INOUT events_removed bigint DEFAULT NULL,
 *				   INOUT owners_removed bigint DEFAULT NULL)
 *
 * A procedure: called on its own (CALL outside a transaction block, as
 * pg_cron does) every batch commits by itself; inside a transaction block
 * the whole run is part of that transaction.  Returns how many rows of each
 * kind it removed and records the run in sessmgr.cleanup_runs.
 */
PG_FUNCTION_INFO_V1(sessmgr_cleanup);
Datum
sessmgr_cleanup(PG_FUNCTION_ARGS)
{
	CleanupRun	run;
	Oid			actor = GetUserId();
	TimestampTz sessions_end;
	bool		any_sessions;
	SessmgrOwnerContext octx;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("batch size must not be null")));
	if (PG_GETARG_INT32(0) < 1 || PG_GETARG_INT32(0) > CLEANUP_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size must be between 1 and %d", CLEANUP_MAX_BATCH)));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "sessmgr.cleanup must return a record");
	desc = BlessTupleDesc(desc);

	memset(&run, 0, sizeof(run));
	run.batch_size = PG_GETARG_INT32(0);
	run.batch_rows = run.batch_size;
	run.batch_started = GetCurrentTimestamp();
	run.atomic = !(fcinfo->context != NULL && IsA(fcinfo->context, CallContext) &&
				   !castNode(CallContext, fcinfo->context)->atomic);
	run.batch_context = AllocSetContextCreate(CurrentMemoryContext,
											  "sessmgr cleanup batch",
											  ALLOCSET_DEFAULT_SIZES);

	if (SPI_connect_ext(run.atomic ? 0 : SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* the run starts in a transaction of its own, under READ COMMITTED */
	next_batch(&run);
	SessmgrBecomeOwner(&octx);
	any_sessions = start_run(&run, actor, &sessions_end);
	SessmgrRestoreUser(&octx);
	next_batch(&run);

	if (any_sessions)
		cleanup_sessions(&run, sessions_end);
	cleanup_events(&run);
	cleanup_owners(&run);
	finish_run(&run);

	SPI_finish();
	MemoryContextDelete(run.batch_context);

	values[0] = Int64GetDatum(run.sessions_removed);
	values[1] = Int64GetDatum(run.events_removed);
	values[2] = Int64GetDatum(run.owners_removed);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* ------------------------------------------------------------------------
 * Scheduling with pg_cron
 * ------------------------------------------------------------------------
 */

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

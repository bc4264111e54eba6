/*-------------------------------------------------------------------------
 *
 * cleanup.c
 *	  Removing what has outlived its retention: sessmgr.cleanup().  Having
 *	  pg_cron run it on a schedule is schedule.c's business.
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/resource.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "sessmgr.h"

#define CLEANUP_MAX_BATCH		100000

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
	SessmgrRun(&plan,
			   "UPDATE sessmgr.cleanup_runs"
			   "   SET sessions_removed = $2, events_removed = $3,"
			   "       owners_removed = $4, finished_at = $5"
			   " WHERE id OPERATOR(pg_catalog.=) $1",
			   5, types, values, nulls, SPI_OK_UPDATE);
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
	SessmgrRun(&insert_plan,
			   "INSERT INTO sessmgr.cleanup_runs (started_at, actor)"
			   " VALUES ($1, $2) RETURNING id",
			   2, types, values, NULL, SPI_OK_INSERT_RETURNING);
	run->run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));

	/*
	 * Sessions issued after this point cannot have ended before the cutoff;
	 * stopping at the highest expiry seen now lets a run finish however fast
	 * sessions are issued meanwhile.
	 */
	SessmgrRun(&end_plan,
			   "SELECT pg_catalog.max(expires_at) FROM sessmgr.sessions",
			   0, NULL, NULL, NULL, SPI_OK_SELECT);
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
		int64		removed;

		SessmgrEnterOwnerMode(&octx);

		/* where this batch ends: batch_rows keys on, or the end of the pass */
		values[0] = TimestampTzGetDatum(from_at);
		values[1] = from_id;
		values[2] = TimestampTzGetDatum(pass->end_at);
		values[3] = Int64GetDatum(run->batch_rows - 1);
		SessmgrRun(pass->chunk_plan,
				   pass->chunk_sql,
				   4, chunk_types, values, NULL, SPI_OK_SELECT);
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

		/* delete the ones that qualify and nobody has locked; how many */
		values[2] = TimestampTzGetDatum(to_at);
		values[3] = to_id;
		values[4] = TimestampTzGetDatum(pass->cutoff);
		SessmgrRun(pass->delete_plan,
				   pass->delete_sql,
				   5, delete_types, values, NULL, SPI_OK_SELECT);
		removed = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));
		if (removed > 0)
		{
			*pass->removed += removed;
			record_progress(run, false);
		}

		SessmgrLeaveOwnerMode(&octx);
		next_batch(run);
		if (!id_byval && from_id != pass->first_id)
			pfree(DatumGetPointer(from_id));
		from_at = to_at;
		from_id = to_id;
	}
}

/*
 * Remove the sessions that ended before run->sessions_before, those issued
 * up to the highest expiry seen at the start of the run.  A session that
 * timed out leaves an expire event, stamped with the time it ended and
 * holding what sessmgr.session_durations needs (revocations and evictions
 * have their events already); it commits with the removal.
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
		"WITH gone AS ("
		" DELETE FROM sessmgr.sessions"
		" WHERE id OPERATOR(pg_catalog.=) ANY (ARRAY("
		"   SELECT s.id FROM sessmgr.sessions s"
		"    WHERE (s.expires_at, s.id) OPERATOR(pg_catalog.>) ($1, $2)"
		"      AND (s.expires_at, s.id) OPERATOR(pg_catalog.<=) ($3, $4)"
		"      AND (s.revoked_at OPERATOR(pg_catalog.<) $5"
		"           OR s.expires_at OPERATOR(pg_catalog.<) $5"
		"           OR s.last_active_at OPERATOR(pg_catalog.+) s.idle_timeout"
		"              OPERATOR(pg_catalog.<) $5)"
		"      FOR UPDATE OF s SKIP LOCKED))"
		" RETURNING id, user_id, ip, created_at, remember, revoked_at, expires_at,"
		"           last_active_at OPERATOR(pg_catalog.+) idle_timeout AS idle_end"
		"), expired AS ("
		" INSERT INTO sessmgr.session_events"
		"        (occurred_at, event, session_id, user_id, reason, actor, ip, details)"
		" SELECT LEAST(g.expires_at, g.idle_end), 'expire', g.id, g.user_id,"
		"        CASE WHEN g.idle_end OPERATOR(pg_catalog.<) g.expires_at"
		"             THEN 'idle' ELSE 'absolute' END,"
		"        session_user, g.ip,"
		"        pg_catalog.jsonb_build_object('session_created_at', g.created_at,"
		"                                      'remember', g.remember)"
		"   FROM gone g"
		"  WHERE g.revoked_at IS NULL"
		")"
		" SELECT pg_catalog.count(*) FROM gone";
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
		"WITH gone AS ("
		" DELETE FROM sessmgr.session_events"
		" WHERE id OPERATOR(pg_catalog.=) ANY (ARRAY("
		"   SELECT e.id FROM sessmgr.session_events e"
		"    WHERE (e.occurred_at, e.id) OPERATOR(pg_catalog.>) ($1, $2)"
		"      AND (e.occurred_at, e.id) OPERATOR(pg_catalog.<=) ($3, $4)"
		"      AND e.occurred_at OPERATOR(pg_catalog.<) $5"
		"      FOR UPDATE OF e SKIP LOCKED))"
		" RETURNING 1)"
		" SELECT pg_catalog.count(*) FROM gone";
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

		SessmgrEnterOwnerMode(&octx);

		values[0] = PointerGetDatum(from_key);
		values[1] = Int64GetDatum(run->batch_rows - 1);
		SessmgrRun(&chunk_plan,
				   "SELECT o.user_id FROM sessmgr.session_owners o"
				   " WHERE o.user_id OPERATOR(pg_catalog.>) $1"
				   " ORDER BY o.user_id"
				   " OFFSET $2 LIMIT 1",
				   2, chunk_types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
		{
			/* the last batch ends at the highest user id */
			last = true;
			SessmgrRun(&end_plan,
					   "SELECT pg_catalog.max(o.user_id) FROM sessmgr.session_owners o",
					   0, NULL, NULL, NULL, SPI_OK_SELECT);
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
			SessmgrRun(&lock_plan,
					   "SELECT o.user_id FROM sessmgr.session_owners o"
					   " WHERE o.user_id OPERATOR(pg_catalog.>) $1"
					   "   AND o.user_id OPERATOR(pg_catalog.<=) $2"
					   "   AND GREATEST(o.last_issued_at, o.last_revoked_at)"
					   "       OPERATOR(pg_catalog.<) $3"
					   "   AND NOT EXISTS (SELECT FROM sessmgr.sessions s"
					   "        WHERE s.user_id OPERATOR(pg_catalog.=) o.user_id"
					   "          AND " SESSMGR_LIVE_SQL("s.", "pg_catalog.now()") ")"
					   " FOR UPDATE OF o SKIP LOCKED",
					   3, lock_types, values, NULL, SPI_OK_SELECT);
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
			SessmgrRun(&delete_plan,
					   "DELETE FROM sessmgr.session_owners o"
					   " WHERE o.user_id OPERATOR(pg_catalog.=) ANY ($1)"
					   "   AND NOT EXISTS (SELECT FROM sessmgr.sessions s"
					   "        WHERE s.user_id OPERATOR(pg_catalog.=) o.user_id"
					   "          AND " SESSMGR_LIVE_SQL("s.", "pg_catalog.now()") ")",
					   1, delete_types, values, NULL, SPI_OK_DELETE);
			if (SPI_processed > 0)
			{
				run->owners_removed += SPI_processed;
				record_progress(run, false);
			}
		}

		SessmgrLeaveOwnerMode(&octx);
		next_batch(run);
		if (to_key == NULL)
			break;
		pfree(from_key);
		from_key = to_key;
	}
	pfree(from_key);
}

/*
 * Roll the events of each UTC day that has ended up into the analytics
 * tables (sessmgr.analytics_roll_up; docs/monitoring.md, "Analytics"), a day
 * per transaction, dropping the roll-ups older than the events.
 */
static void
cleanup_analytics(CleanupRun *run)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TIMESTAMPTZOID};
	bool		more = true;

	start_pass(run, "analytics");
	while (more)
	{
		SessmgrOwnerContext octx;
		Datum		values[1];
		bool		isnull;

		SessmgrEnterOwnerMode(&octx);
		values[0] = TimestampTzGetDatum(run->events_before);
		SessmgrRun(&plan, "SELECT sessmgr.analytics_roll_up($1)",
				   1, types, values, NULL, SPI_OK_SELECT);
		more = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
		SessmgrLeaveOwnerMode(&octx);
		next_batch(run);
	}
}

/* SessmgrBatching's callback: cleanup's own batch boundary. */
static void
cleanup_next_batch(void *run)
{
	next_batch((CleanupRun *) run);
}

/*
 * Remove the failed-login counters forgotten after sessmgr.login_failure_window
 * (src/throttle.c), a batch per transaction.
 */
static void
cleanup_login_attempts(CleanupRun *run)
{
	Datum		cursor[2] = {(Datum) 0, (Datum) 0};
	int64		removed = 0;
	bool		more = true;

	start_pass(run, "login_attempts");
	while (more)
	{
		more = SessmgrThrottleCleanup(run->batch_rows, cursor, &removed);
		next_batch(run);
	}
	elog(DEBUG1, "sessmgr cleanup: " INT64_FORMAT " failed-login counters removed", removed);
}

/* Forget the runs older than the event retention, and finish this one. */
static void
finish_run(CleanupRun *run)
{
	static SPIPlanPtr prune_plan = NULL;
	Oid			types[2] = {TIMESTAMPTZOID, INT8OID};
	Datum		values[2];
	SessmgrOwnerContext octx;

	SessmgrEnterOwnerMode(&octx);
	values[0] = TimestampTzGetDatum(run->events_before);
	values[1] = Int64GetDatum(run->run_id);
	SessmgrRun(&prune_plan,
			   "DELETE FROM sessmgr.cleanup_runs"
			   " WHERE started_at OPERATOR(pg_catalog.<) $1"
			   "   AND id OPERATOR(pg_catalog.<>) $2",
			   2, types, values, NULL, SPI_OK_DELETE);
	record_progress(run, true);
	SessmgrLeaveOwnerMode(&octx);
}

/*
 * Take the session figures and roll the events up into the counters that
 * sessmgr.metrics() serves until the next run (sessmgr.refresh_metrics(),
 * docs/monitoring.md#metrics): one more read of every session row.  It does
 * nothing while another run's refresh is under way.
 */
static void
refresh_metrics(void)
{
	static SPIPlanPtr plan = NULL;

	SessmgrRun(&plan, "SELECT sessmgr.refresh_metrics()",
			   0, NULL, NULL, NULL, SPI_OK_SELECT);
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
	SessmgrEnterOwnerMode(&octx);
	any_sessions = start_run(&run, actor, &sessions_end);
	SessmgrLeaveOwnerMode(&octx);
	next_batch(&run);

	/* the monitoring figures, before anything is removed */
	SessmgrEnterOwnerMode(&octx);
	refresh_metrics();
	SessmgrLeaveOwnerMode(&octx);
	next_batch(&run);

	if (any_sessions)
		cleanup_sessions(&run, sessions_end);
	cleanup_events(&run);
	cleanup_analytics(&run);
	cleanup_owners(&run);
	cleanup_login_attempts(&run);
	{
		/* suspicious logins' profiles and devices (risk.c) */
		text	   *cursor = NULL;

		start_pass(&run, "login_profiles, known_devices");
		while (SessmgrRiskCleanup(run.events_before, run.batch_rows, &cursor))
			next_batch(&run);
	}
	{
		/* what is kept, minimised after sessmgr.pii_retention (privacy.c) */
		SessmgrBatching batching = {cleanup_next_batch, &run, &run.batch_rows};

		start_pass(&run, "minimisation");
		(void) SessmgrMinimisePersonalData(&batching);
	}
	finish_run(&run);

	SPI_finish();
	MemoryContextDelete(run.batch_context);

	values[0] = Int64GetDatum(run.sessions_removed);
	values[1] = Int64GetDatum(run.events_removed);
	values[2] = Int64GetDatum(run.owners_removed);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

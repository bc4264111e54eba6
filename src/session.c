/*-------------------------------------------------------------------------
 *
 * session.c
 *	  Reading a session row on the hot path, judging it, and recording
 *	  activity on it.
 *
 * Token validation and access-token verification both come down to one
 * primary-key probe of sessmgr.sessions.  The probe goes directly through
 * the index AM (no SPI, no planner) with the statement's snapshot, and
 * copies out the few columns the checks need.
 *
 * Recording activity is the only write, made at most once per
 * sessmgr.touch_interval, and never in a read-only transaction or on a hot
 * standby.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "sessmgr.h"

/*
 * An open primary-key scan of sessmgr.sessions.  A one-off fetch opens and
 * closes one.  A set-returning caller in a query keeps one for the whole
 * query and only rescans it per call, as the executor's nested-loop index
 * scan does: see SessmgrFetchSessionForQuery.
 */
typedef struct SessionProbe
{
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	MemoryContext mcxt;			/* holds the scan */
	/* the rest is for a kept probe */
	FmgrInfo   *flinfo;			/* whose fn_extra points here */
	ResourceOwner owner;		/* holds the relations */
	bool		open;
	dlist_node	node;			/* in kept_probes while open */
} SessionProbe;

/* fn_extra after the first call of a query, before a probe is kept */
static char called_once;

/* the kept probes that are open, for the resource-release callback */
static dlist_head kept_probes = DLIST_STATIC_INIT(kept_probes);
static bool release_callback_registered = false;

static void
probe_open(SessionProbe *p)
{
	const SessmgrCatalog *cat = SessmgrGetCatalog();

	p->mcxt = CurrentMemoryContext;
	p->rel = table_open(cat->sessions, AccessShareLock);
	p->idx = index_open(cat->sessions_pkey, AccessShareLock);
	p->slot = table_slot_create(p->rel, NULL);
	/* each fetch gives the scan its snapshot (probe_fetch) */
	p->scan = index_beginscan(p->rel, p->idx, InvalidSnapshot, 1, 0);
}

static void
probe_close(SessionProbe *p)
{
	index_endscan(p->scan);
	ExecDropSingleTupleTableSlot(p->slot);
	index_close(p->idx, NoLock);
	table_close(p->rel, NoLock);
}

static bool
probe_fetch(SessionProbe *p, const pg_uuid_t *id, SessmgrSessionRow *row)
{
	const SessmgrCatalog *cat = SessmgrGetCatalog();
	TupleTableSlot *slot = p->slot;
	ScanKeyData skey;
	bool		found;
	MemoryContext oldcontext;
	Snapshot	snapshot;

	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(id));

	/*
	 * Read with the active snapshot, as a fresh scan would, registered for
	 * as long as the scan holds it: only during this fetch.
	 */
	snapshot = RegisterSnapshot(ActiveSnapshotSet() ?
								GetActiveSnapshot() : GetTransactionSnapshot());
	p->scan->xs_snapshot = snapshot;

	/*
	 * The access method allocates some scan state lazily (btree's array of
	 * killed items), in the current context: make that the scan's, so that
	 * it lives as long as the scan does.
	 */
	oldcontext = MemoryContextSwitchTo(p->mcxt);
	index_rescan(p->scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(p->scan, ForwardScanDirection, slot);
	MemoryContextSwitchTo(oldcontext);

	if (found)
	{
		bool		isnull;
		Datum		d;

		slot_getsomeattrs(slot, cat->att_last_needed);

		row->id = *id;

		d = slot_getattr(slot, cat->att_token_hash, &isnull);
		row->has_hash = false;
		if (!isnull)
		{
			bytea	   *hash = DatumGetByteaPP(d);

			if (VARSIZE_ANY_EXHDR(hash) == SESSMGR_HASH_LEN)
			{
				memcpy(row->token_hash, VARDATA_ANY(hash), SESSMGR_HASH_LEN);
				row->has_hash = true;
			}
		}

		d = slot_getattr(slot, cat->att_user_id, &isnull);
		text_to_cstring_buffer(DatumGetTextPP(d), row->user_id, sizeof(row->user_id));

		(void) slot_getattr(slot, cat->att_revoked_at, &isnull);
		row->revoked = !isnull;
		row->expires_at = DatumGetTimestampTz(slot_getattr(slot, cat->att_expires_at, &isnull));
		row->last_active_at = DatumGetTimestampTz(slot_getattr(slot, cat->att_last_active_at, &isnull));
		row->idle_usecs = SessmgrIntervalUsecs(DatumGetIntervalP(slot_getattr(slot, cat->att_idle_timeout, &isnull)));
		row->token_gen = DatumGetInt64(slot_getattr(slot, cat->att_token_gen, &isnull));
		d = slot_getattr(slot, cat->att_prev_token_gen, &isnull);
		row->has_prev_gen = !isnull;
		row->prev_token_gen = isnull ? 0 : DatumGetInt64(d);

		/* the step-up columns, at the end of the row: only when asked */
		row->has_stepup = false;
		if (row->want_stepup && cat->att_authenticated_at != InvalidAttrNumber &&
			cat->att_aal != InvalidAttrNumber)
		{
			Datum		at = slot_getattr(slot, cat->att_authenticated_at, &isnull);

			if (!isnull)
			{
				bool		aal_null;
				Datum		aal = slot_getattr(slot, cat->att_aal, &aal_null);

				if (!aal_null)
				{
					row->authenticated_at = DatumGetTimestampTz(at);
					row->aal = DatumGetInt16(aal);
					row->has_stepup = true;
				}
			}
		}
	}

	/* no buffer pin and no snapshot between calls */
	ExecClearTuple(slot);
	table_index_fetch_reset(p->scan->xs_heapfetch);
	p->scan->xs_snapshot = InvalidSnapshot;
	UnregisterSnapshot(snapshot);

	return found;
}

/*
 * Fetch the session with the given id.  Returns false if there is none
 * visible to the statement's snapshot.
 */
bool
SessmgrFetchSession(const pg_uuid_t *id, SessmgrSessionRow *row)
{
	SessionProbe p;
	bool		found;

	probe_open(&p);
	found = probe_fetch(&p, id, row);
	probe_close(&p);
	return found;
}

/*
 * Lifetime of a kept probe.
 *
 * It lives in the query's memory (fn_mcxt of a set-returning call) and holds
 * relation references in the resource owner that ran the query's first call.
 * Whichever of the two goes first ends it:
 *
 * - the query ends normally: its memory is deleted (ExecutorEnd) while the
 *   transaction is in progress and the owner still there; the probe is
 *   closed properly, under its owner;
 * - the transaction or subtransaction aborts: the owner is released, or the
 *   memory is deleted during the abort.  Either way the probe is only
 *   forgotten, without calling into the access method: the owner's release
 *   drops the relation references and any buffer pin itself, and the scan's
 *   memory goes with the query's.
 *
 * The executor's rescan of a FunctionScan (once per outer row of a nested
 * loop) runs expression-context shutdown callbacks, so those cannot carry
 * the probe across calls; the memory context can.
 */
static void
probe_forget(SessionProbe *p)
{
	p->open = false;
	dlist_delete(&p->node);
	p->flinfo->fn_extra = &called_once;
}

static void
probe_memory_reset(void *arg)
{
	SessionProbe *p = (SessionProbe *) arg;
	ResourceOwner save = CurrentResourceOwner;

	if (!p->open)
		return;
	probe_forget(p);
	if (!IsTransactionState())
		return;					/* aborting: the owner cleans up */
	CurrentResourceOwner = p->owner;
	probe_close(p);
	CurrentResourceOwner = save;
}

static void
probe_release_callback(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
					   void *arg)
{
	dlist_mutable_iter iter;

	if (phase != RESOURCE_RELEASE_BEFORE_LOCKS)
		return;
	dlist_foreach_modify(iter, &kept_probes)
	{
		SessionProbe *p = dlist_container(SessionProbe, node, iter.cur);

		if (p->owner == CurrentResourceOwner)
			probe_forget(p);
	}
}

/* Open a probe and keep it for the query flinfo belongs to (see above). */
static SessionProbe *
probe_keep(FmgrInfo *flinfo)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(flinfo->fn_mcxt);
	SessionProbe *p;
	MemoryContextCallback *cb;

	if (!release_callback_registered)
	{
		RegisterResourceReleaseCallback(probe_release_callback, NULL);
		release_callback_registered = true;
	}
	p = palloc0(sizeof(SessionProbe));
	cb = palloc0(sizeof(MemoryContextCallback));
	probe_open(p);
	MemoryContextSwitchTo(oldcontext);

	p->flinfo = flinfo;
	p->owner = CurrentResourceOwner;
	p->open = true;
	dlist_push_head(&kept_probes, &p->node);
	cb->func = probe_memory_reset;
	cb->arg = p;
	MemoryContextRegisterResetCallback(flinfo->fn_mcxt, cb);
	flinfo->fn_extra = p;
	return p;
}

/*
 * The same as SessmgrFetchSession, for a set-returning function called once
 * per row of a query: the second call opens the scan and keeps it in
 * fn_extra until the query ends, so each further call costs an index
 * rescan, not two relation opens and a scan set-up.  (The first call
 * fetches on its own: a query that validates one token, the common case,
 * pays nothing for keeping.)
 *
 * Only a set-returning call keeps a probe: its FmgrInfo lives in the
 * query's memory.  A scalar call can sit in expression state that outlives
 * the statement (a PL/pgSQL simple expression) and fetches with a fresh
 * scan.
 */
bool
SessmgrFetchSessionForQuery(FunctionCallInfo fcinfo, const pg_uuid_t *id,
							SessmgrSessionRow *row)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	FmgrInfo   *flinfo = fcinfo->flinfo;
	SessionProbe *p;

	if (flinfo == NULL || rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		return SessmgrFetchSession(id, row);

	/* the first call of a query fetches on its own: many queries make one */
	if (flinfo->fn_extra == NULL)
	{
		flinfo->fn_extra = &called_once;
		return SessmgrFetchSession(id, row);
	}

	if (flinfo->fn_extra == &called_once)
		p = probe_keep(flinfo);
	else
	{
		p = (SessionProbe *) flinfo->fn_extra;
		if (p->owner != CurrentResourceOwner)
			return SessmgrFetchSession(id, row);	/* not ours to use here */
	}

	return probe_fetch(p, id, row);
}

/* An interval as microseconds, with a month counted as 30 days. */
int64
SessmgrIntervalUsecs(const Interval *interval)
{
	return interval->time +
		(interval->day + (int64) interval->month * DAYS_PER_MONTH) * USECS_PER_DAY;
}

/*
 * The rule of a live session, the one place it is written in C (the SQL
 * twin is sessmgr.session_is_live()): not revoked, within its absolute
 * lifetime, and active within its idle timeout, at time now.
 */
bool
SessmgrSessionIsLive(TimestampTz now, bool revoked, TimestampTz expires_at,
					 TimestampTz last_active_at, int64 idle_usecs)
{
	return !revoked && now < expires_at && now < last_active_at + idle_usecs;
}

/* Whether a fetched session is active at time now. */
bool
SessmgrSessionRowIsLive(const SessmgrSessionRow *row, TimestampTz now)
{
	return SessmgrSessionIsLive(now, row->revoked, row->expires_at,
								row->last_active_at, row->idle_usecs);
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

	SessmgrRun(&plans[mode],
			   sql[mode],
			   mode == USER_LOCK_REVOKE ? 2 : 1, types, values, NULL, 
			   mode == USER_LOCK_REVOKE ? SPI_OK_UPDATE : SPI_OK_SELECT);
}

/* The one answer to a session id that is not the caller's to act on. */
void
SessmgrInvalidSessionId(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid session id")));
}

/*
 * The first step of every change a caller asks for by session id: whose
 * session it is (*owner, valid until SPI_finish) and whether it is live at
 * now.  With user_id, the session must be that user's: an unknown session
 * and another user's raise the same "invalid session id", so a caller learns
 * nothing about other users' sessions.  Call inside SPI, as the owner.
 */
bool
SessmgrReadSessionOwner(Datum session_id, text *user_id, TimestampTz now, Datum *owner)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	text	   *owner_text;

	values[0] = session_id;
	if (SessmgrRun(&plan,
				   "SELECT user_id, revoked_at IS NOT NULL, expires_at,"
				   "       last_active_at, idle_timeout"
				   "  FROM sessmgr.sessions"
				   " WHERE id OPERATOR(pg_catalog.=) $1",
				   1, types, values, NULL, SPI_OK_SELECT) != 1)
		SessmgrInvalidSessionId();
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*owner = SPI_getbinval(row, desc, 1, &isnull);
	owner_text = DatumGetTextPP(*owner);
	if (user_id != NULL &&
		(VARSIZE_ANY_EXHDR(owner_text) != VARSIZE_ANY_EXHDR(user_id) ||
		 memcmp(VARDATA_ANY(owner_text), VARDATA_ANY(user_id),
				VARSIZE_ANY_EXHDR(user_id)) != 0))
		SessmgrInvalidSessionId();
	return SessmgrSessionIsLive(now,
								DatumGetBool(SPI_getbinval(row, desc, 2, &isnull)),
								DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &isnull)),
								DatumGetTimestampTz(SPI_getbinval(row, desc, 4, &isnull)),
								SessmgrIntervalUsecs(DatumGetIntervalP(SPI_getbinval(row, desc, 5,
																					 &isnull))));
}

/*
 * Record activity: one UPDATE of last_active_at, after share-locking the
 * user's row (the lock order of triggers.c).  Returns false if the session
 * turned out to have ended meanwhile (a revocation that committed while we
 * waited for a lock), in which case the caller must treat it as invalid.
 */
static bool
touch_now(const SessmgrSessionRow *row, TimestampTz now)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, TIMESTAMPTZOID};
	Datum		values[2];
	Datum		owner_values[2];
	SessmgrOwnerContext octx;
	bool		touched;

	values[0] = UUIDPGetDatum(&row->id);
	values[1] = TimestampTzGetDatum(now);
	owner_values[0] = CStringGetTextDatum(row->user_id);
	owner_values[1] = values[1];

	SessmgrOwnerBegin(&octx);
	SessmgrLockUserRow(owner_values, USER_LOCK_SHARE);
	SessmgrRun(&plan,
			   "UPDATE sessmgr.sessions"
			   "   SET last_active_at = GREATEST(last_active_at, $2)"
			   " WHERE id OPERATOR(pg_catalog.=) $1"
			   "   AND revoked_at IS NULL",
			   2, argtypes, values, NULL, SPI_OK_UPDATE);
	touched = (SPI_processed == 1);
	SessmgrOwnerEnd(&octx);

	return touched;
}

/*
 * Slide a live session's activity window if the last recorded activity is
 * older than sessmgr.touch_interval.  Returns whether the session is still
 * valid.
 *
 * Under READ COMMITTED the update simply waits for and rechecks a concurrent
 * writer.  Under REPEATABLE READ and SERIALIZABLE a row changed since our
 * snapshot raises a serialization failure; the update runs in a
 * subtransaction, which we drop in that case, answering from our snapshot
 * as every other read in the transaction does.
 */
typedef struct TouchArgs
{
	const SessmgrSessionRow *row;
	TimestampTz now;
	bool		touched;
} TouchArgs;

static void
touch_in_subtransaction(void *arg)
{
	TouchArgs  *t = (TouchArgs *) arg;

	t->touched = touch_now(t->row, t->now);
}

bool
SessmgrTouchIfDue(const SessmgrSessionRow *row, TimestampTz now)
{
	TouchArgs	t;
	ErrorData  *edata;

	if (now - row->last_active_at < (int64) sessmgr_touch_interval * USECS_PER_SEC ||
		RecoveryInProgress() || XactReadOnly)
		return true;

	if (!IsolationUsesXactSnapshot())
		return touch_now(row, now);

	t.row = row;
	t.now = now;
	t.touched = true;
	edata = SessmgrTryInSubtransaction(touch_in_subtransaction, &t);
	if (edata != NULL)
	{
		if (edata->sqlerrcode != ERRCODE_T_R_SERIALIZATION_FAILURE)
			ReThrowError(edata);
		FreeErrorData(edata);
		return true;
	}
	return t.touched;
}

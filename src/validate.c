/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  The per-request check of a session token: sessmgr.validate() and
 *	  sessmgr.authenticate().
 *
 * This is the hot path.  A check is one primary-key probe of
 * sessmgr.sessions made directly through the index AM (no SPI, no planner),
 * a SHA-256 and a constant-time compare.  It writes only when the recorded
 * activity is older than sessmgr.touch_interval, so steady-state validation
 * is read-only, and it never writes in a read-only transaction or on a hot
 * standby.  A bad token of any shape gives "invalid", never an error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "sessmgr.h"

typedef struct ValidSession
{
	pg_uuid_t	id;
	char		user_id[SESSMGR_MAX_USER_ID_BYTES + 1];
	TimestampTz expires_at;
} ValidSession;

static bool touch_session(const ValidSession *session, TimestampTz now);

/*
 * Record activity on a session.  Returns false if the session turned out to
 * have ended meanwhile (a revocation that committed while we waited for its
 * row lock), in which case the token is not valid.
 */
static bool
touch_session_now(const ValidSession *session, TimestampTz now)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, TIMESTAMPTZOID};
	Datum		values[2];
	Datum		owner_values[2];
	SessmgrOwnerContext octx;
	bool		touched;

	values[0] = UUIDPGetDatum(&session->id);
	values[1] = TimestampTzGetDatum(now);
	owner_values[0] = CStringGetTextDatum(session->user_id);
	owner_values[1] = values[1];

	SessmgrBecomeOwner(&octx);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SessmgrLockOwner(owner_values, false);
	SessmgrPreparePlan(&plan,
					   "UPDATE sessmgr.sessions"
					   "   SET last_active_at = GREATEST(last_active_at, $2)"
					   " WHERE id OPERATOR(pg_catalog.=) $1"
					   "   AND revoked_at IS NULL",
					   2, argtypes);
	SessmgrExecPlan(plan, values, NULL, SPI_OK_UPDATE);
	touched = (SPI_processed == 1);

	SPI_finish();
	SessmgrRestoreUser(&octx);
	return touched;
}

/*
 * Record activity on a session, without letting a concurrent update turn
 * validation into an error.  Under READ COMMITTED the update simply waits
 * for and rechecks a concurrent writer.  Under REPEATABLE READ and
 * SERIALIZABLE a row changed since our snapshot raises a serialization
 * failure; we run the update in a subtransaction, drop it in that case and
 * answer from our snapshot, as every other read in the transaction does.
 */
static bool
touch_session(const ValidSession *session, TimestampTz now)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		touched = true;

	if (!IsolationUsesXactSnapshot())
		return touch_session_now(session, now);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);

	PG_TRY();
	{
		touched = touch_session_now(session, now);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		if (edata->sqlerrcode != ERRCODE_T_R_SERIALIZATION_FAILURE)
			ReThrowError(edata);
		FreeErrorData(edata);
		touched = true;
	}
	PG_END_TRY();

	return touched;
}

/*
 * Check a token.  Fills *result and returns true when the token names an
 * active session and its secret matches; returns false for anything else,
 * including input that is not a token at all.
 */
static bool
check_token(Datum token_datum, ValidSession *result)
{
	const SessmgrCatalog *cat;
	SessmgrToken token;
	uint8		hash[SESSMGR_HASH_LEN];
	text	   *token_text;
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData skey;
	Snapshot	snapshot;
	TimestampTz now;
	TimestampTz last_active_at = 0;
	bool		valid = false;

	/* refuse anything of the wrong size before detoasting it */
	if (toast_raw_datum_size(token_datum) != VARHDRSZ + SESSMGR_TOKEN_LEN)
		return false;

	token_text = DatumGetTextPP(token_datum);
	if (!SessmgrTokenDecode(VARDATA_ANY(token_text),
							VARSIZE_ANY_EXHDR(token_text), &token))
		return false;

	cat = SessmgrGetCatalog();
	now = GetCurrentTransactionStartTimestamp();
	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();

	rel = table_open(cat->sessions, AccessShareLock);
	idx = index_open(cat->sessions_pkey, AccessShareLock);
	slot = table_slot_create(rel, NULL);

	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_UUID_EQ,
				UUIDPGetDatum(&token.id));
	scan = index_beginscan(rel, idx, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);

	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		stored_hash;
		bytea	   *stored;

		slot_getsomeattrs(slot, cat->att_last_needed);
		stored_hash = slot_getattr(slot, cat->att_token_hash, &isnull);
		stored = isnull ? NULL : DatumGetByteaPP(stored_hash);
		SessmgrTokenHash(&token, hash);

		if (stored != NULL &&
			VARSIZE_ANY_EXHDR(stored) == SESSMGR_HASH_LEN &&
			SessmgrConstantTimeEqual((const uint8 *) VARDATA_ANY(stored),
									 hash, SESSMGR_HASH_LEN))
		{
			bool		not_revoked;
			Interval   *idle;
			text	   *user_id;

			(void) slot_getattr(slot, cat->att_revoked_at, &not_revoked);
			result->expires_at =
				DatumGetTimestampTz(slot_getattr(slot, cat->att_expires_at, &isnull));
			last_active_at =
				DatumGetTimestampTz(slot_getattr(slot, cat->att_last_active_at, &isnull));
			idle = DatumGetIntervalP(slot_getattr(slot, cat->att_idle_timeout, &isnull));

			if (SessmgrSessionIsLive(now, !not_revoked, result->expires_at,
									 last_active_at, idle))
			{
				user_id = DatumGetTextPP(slot_getattr(slot, cat->att_user_id, &isnull));
				text_to_cstring_buffer(user_id, result->user_id,
									   sizeof(result->user_id));
				result->id = token.id;
				valid = true;
			}
		}
	}

	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	explicit_bzero(&token, sizeof(token));

	/* slide the activity window, at most once per touch interval */
	if (valid &&
		now - last_active_at >= (int64) sessmgr_touch_interval * USECS_PER_SEC &&
		!RecoveryInProgress() && !XactReadOnly)
		valid = touch_session(result, now);

	return valid;
}

/*
 * sessmgr.validate(token text)
 *	 RETURNS TABLE (session_id uuid, user_id text, expires_at timestamptz)
 *
 * One row for a token of an active session, none for anything else.
 */
PG_FUNCTION_INFO_V1(sessmgr_validate);
Datum
sessmgr_validate(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"session_id", "user_id", "expires_at"};
	static const Oid types[] = {UUIDOID, TEXTOID, TIMESTAMPTZOID};
	static TupleDesc result_desc = NULL;
	ValidSession session;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	SessmgrBeginResult(fcinfo);
	if (PG_ARGISNULL(0) || !check_token(PG_GETARG_DATUM(0), &session))
		PG_RETURN_NULL();		/* the empty set */

	if (result_desc == NULL)
		result_desc = SessmgrResultDesc(3, names, types);

	values[0] = UUIDPGetDatum(&session.id);
	values[1] = CStringGetTextDatum(session.user_id);
	values[2] = TimestampTzGetDatum(session.expires_at);
	SessmgrReturnRow(fcinfo, result_desc, values, nulls);
	PG_RETURN_NULL();
}

/*
 * sessmgr.authenticate(token text) RETURNS text
 *
 * Validate a token and, when it is valid, make its user and session the
 * transaction's identity (sessmgr.current_user_id() and
 * sessmgr.current_session_id()).  Returns the user id, or NULL after
 * clearing any identity set earlier in the transaction.
 */
PG_FUNCTION_INFO_V1(sessmgr_authenticate);
Datum
sessmgr_authenticate(PG_FUNCTION_ARGS)
{
	ValidSession session;

	if (PG_ARGISNULL(0) || !check_token(PG_GETARG_DATUM(0), &session))
	{
		SessmgrClearIdentity();
		PG_RETURN_NULL();
	}

	SessmgrSetIdentity(session.user_id, &session.id);
	PG_RETURN_TEXT_P(cstring_to_text(session.user_id));
}

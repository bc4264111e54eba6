/*-------------------------------------------------------------------------
 *
 * revoke.c
 *	  Ending sessions: sessmgr.revoke() and sessmgr.revoke_all().
 *
 * Revocation is final (the table's triggers refuse to touch an ended
 * session again) and audited (the trigger writes the event).  A session that
 * is unknown and one that belongs to somebody else give exactly the same
 * error, so a caller learns nothing about other users' sessions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "sessmgr.h"

/*
 * The reasons sessmgr writes itself, each with a meaning of its own in the
 * audit trail: cap (an eviction, logged as event "evict"), token_reuse (a
 * stolen refresh token: alerting keys on it) and erased (an erasure of the
 * user).  A caller may not write them.
 */
static const char *const reserved_reasons[] = {"cap", "token_reuse", "erased"};

/* A revocation reason must be a short, non-empty word or phrase. */
static text *
check_reason(FunctionCallInfo fcinfo, int argno)
{
	text	   *reason;
	int			len;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("revocation reason must not be null")));
	SessmgrCheckText(PG_GETARG_DATUM(argno), "revocation reason", SESSMGR_MAX_REASON_BYTES);
	reason = PG_GETARG_TEXT_PP(argno);
	if (VARSIZE_ANY_EXHDR(reason) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("revocation reason must not be empty")));
	len = VARSIZE_ANY_EXHDR(reason);
	for (size_t i = 0; i < lengthof(reserved_reasons); i++)
		if ((size_t) len == strlen(reserved_reasons[i]) &&
			memcmp(VARDATA_ANY(reason), reserved_reasons[i], len) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("revocation reason is reserved"),
					 errdetail("The reasons cap, token_reuse and erased are written by sessmgr itself.")));
	return reason;
}

/*
 * End one session; with a user id (user_arg >= 0), only that user's.
 * Returns true if this call ended it, false if it had already ended.
 */
static bool
revoke_one(FunctionCallInfo fcinfo, int user_arg, int reason_arg)
{
	static SPIPlanPtr revoke_plan = NULL;
	Oid			revoke_types[3] = {UUIDOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[3];
	Datum		owner_values[2];
	text	   *reason;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	SessmgrOwnerContext octx;
	bool		revoked = false;
	Datum		owner;

	reason = check_reason(fcinfo, reason_arg);
	if (PG_ARGISNULL(0))
		SessmgrInvalidSessionId();

	values[0] = PG_GETARG_DATUM(0);
	values[1] = TimestampTzGetDatum(now);
	values[2] = PointerGetDatum(reason);

	SessmgrOwnerBegin(&octx);

	/* whose session is it, and is it still live?  An ended one stays ended. */
	if (SessmgrReadSessionOwner(values[0],
								user_arg >= 0 ? PG_GETARG_TEXT_PP(user_arg) : NULL,
								now, &owner))
	{
		/* the user's row first (see the lock order in triggers.c) */
		owner_values[0] = owner;
		owner_values[1] = values[1];
		SessmgrLockUserRow(owner_values, USER_LOCK_REVOKE);

		/* then the session, unless it ended while we waited */
		SessmgrRun(&revoke_plan,
				   "UPDATE sessmgr.sessions"
				   "   SET revoked_at = pg_catalog.clock_timestamp(), revoke_reason = $3"
				   " WHERE id OPERATOR(pg_catalog.=) $1"
				   "   AND " SESSMGR_LIVE_SQL("", "$2"),
				   3, revoke_types, values, NULL, SPI_OK_UPDATE);
		revoked = (SPI_processed == 1);
	}

	SessmgrOwnerEnd(&octx);
	return revoked;
}

/*
 * sessmgr.revoke(session_id uuid, user_id text, reason text DEFAULT 'logout')
 *	 RETURNS boolean
 *
 * End one of a user's sessions.  The user id is required: a session that is
 * not that user's is as invalid as an unknown one.
 */
PG_FUNCTION_INFO_V1(sessmgr_revoke);
Datum
sessmgr_revoke(PG_FUNCTION_ARGS)
{
	(void) SessmgrCheckUserId(fcinfo, 1, true,
							  "Administrators end any session with sessmgr.revoke_any().");
	PG_RETURN_BOOL(revoke_one(fcinfo, 1, 2));
}

/*
 * sessmgr.revoke_any(session_id uuid, reason text DEFAULT 'admin')
 *	 RETURNS boolean
 *
 * End any session, whoever's it is: for administrators, granted separately
 * from revoke().
 */
PG_FUNCTION_INFO_V1(sessmgr_revoke_any);
Datum
sessmgr_revoke_any(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(revoke_one(fcinfo, -1, 1));
}

/*
 * sessmgr.revoke_all(user_id text, except_session uuid, reason text)
 *	 RETURNS integer
 *
 * End every active session of a user, optionally but one (the caller's
 * own).  Takes the user's lock first, so that a session issued concurrently
 * is either ended here or issued after this call, never missed half-way.
 * Returns how many sessions it ended.
 */
PG_FUNCTION_INFO_V1(sessmgr_revoke_all);
Datum
sessmgr_revoke_all(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr revoke_plan = NULL;
	Oid			revoke_types[4] = {TEXTOID, TIMESTAMPTZOID, TEXTOID, UUIDOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	text	   *reason;
	SessmgrOwnerContext octx;
	uint64		count;

	(void) SessmgrCheckUserId(fcinfo, 0, false, NULL);
	reason = check_reason(fcinfo, 2);

	values[0] = PG_GETARG_DATUM(0);
	values[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	values[2] = PointerGetDatum(reason);
	if (PG_ARGISNULL(1))
	{
		values[3] = (Datum) 0;
		nulls[3] = 'n';
	}
	else
		values[3] = PG_GETARG_DATUM(1);

	SessmgrOwnerBegin(&octx);

	SessmgrLockUserRow(values, USER_LOCK_REVOKE);

	SessmgrRun(&revoke_plan,
			   "UPDATE sessmgr.sessions"
			   "   SET revoked_at = pg_catalog.clock_timestamp(), revoke_reason = $3"
			   " WHERE user_id OPERATOR(pg_catalog.=) $1"
			   "   AND " SESSMGR_LIVE_SQL("", "$2")
			   "   AND ($4 IS NULL OR id OPERATOR(pg_catalog.<>) $4)",
			   4, revoke_types, values, nulls, SPI_OK_UPDATE);
	count = SPI_processed;

	SessmgrOwnerEnd(&octx);
	PG_RETURN_INT32((int32) count);
}

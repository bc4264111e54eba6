/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  The per-request check of a session token: sessmgr.validate() and
 *	  sessmgr.authenticate().
 *
 * This is the hot path.  A check is one primary-key probe of
 * sessmgr.sessions (session.c), a SHA-256 and a constant-time compare.  It
 * writes only when the recorded activity is older than
 * sessmgr.touch_interval, so steady-state validation is read-only, and it
 * never writes in a read-only transaction or on a hot standby.  A bad token
 * of any shape gives "invalid", never an error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "sessmgr.h"

/*
 * Check a token.  Fills *row and returns true when the token names an active
 * session and its secret matches; returns false for anything else,
 * including input that is not a token at all.
 */
static bool
check_token(FunctionCallInfo fcinfo, Datum token_datum, SessmgrSessionRow *row)
{
	SessmgrToken token;
	uint8		hash[SESSMGR_HASH_LEN];
	text	   *token_text;
	TimestampTz now;
	bool		valid;

	/* refuse anything of the wrong size before detoasting it */
	if (toast_raw_datum_size(token_datum) != VARHDRSZ + SESSMGR_TOKEN_LEN)
		return false;

	token_text = DatumGetTextPP(token_datum);
	if (!SessmgrTokenDecode(VARDATA_ANY(token_text),
							VARSIZE_ANY_EXHDR(token_text), &token))
		return false;

	if (!SessmgrFetchSessionForQuery(fcinfo, &token.id, row))
	{
		explicit_bzero(&token, sizeof(token));
		return false;
	}

	SessmgrTokenHash(&token, hash);
	explicit_bzero(&token, sizeof(token));
	now = GetCurrentTransactionStartTimestamp();

	valid = row->has_hash &&
		SessmgrConstantTimeEqual(row->token_hash, hash, SESSMGR_HASH_LEN) &&
		SessmgrSessionRowIsLive(row, now);

	/* slide the activity window, at most once per touch interval */
	return valid && SessmgrTouchIfDue(row, now);
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
	SessmgrSessionRow session;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	session.want_stepup = false;	/* validate's hot path: not the step-up columns */

	SessmgrBeginResult(fcinfo);
	if (PG_ARGISNULL(0) || !check_token(fcinfo, PG_GETARG_DATUM(0), &session))
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
	SessmgrSessionRow session;

	/* the same probe reads the step-up columns for the identity (stepup.c) */
	session.want_stepup = true;
	if (PG_ARGISNULL(0) || !check_token(fcinfo, PG_GETARG_DATUM(0), &session))
	{
		SessmgrClearIdentity();
		PG_RETURN_NULL();
	}

	SessmgrSetIdentity(session.user_id, &session.id);
	SessmgrSetIdentityStepUp(session.has_stepup, session.authenticated_at, session.aal);
	PG_RETURN_TEXT_P(cstring_to_text(session.user_id));
}

/*-------------------------------------------------------------------------
 *
 * refresh.c
 *	  sessmgr.refresh(): rotating the session token, with reuse detection.
 *
 * Refreshing trades the presented session token for a new one and a new
 * access token.  A token that has been superseded by a refresh can still be
 * refreshed for sessmgr.refresh_grace after it was superseded (several tabs
 * refreshing with the same token at once); each such refresh rotates the
 * session's current token again, so the session keeps one line of tokens.
 * Presenting a token superseded longer than the grace ago means two parties
 * hold the session's tokens: the session is revoked (reason token_reuse) and
 * the caller told so by a status, not an error, so that the revocation
 * commits.
 *
 * The answer is decided by the token's hash first: a secret the session
 * never had is "invalid" whatever state the session is in, so a guesser
 * learns nothing about it.  Superseded hashes go to sessmgr.retired_tokens
 * (the newest RETIRED_TOKENS_KEPT per session), so reuse is only ever
 * detected for a token the session really had.
 *
 * Concurrency: a refresh locks the user's row (exclusively: it may go on to
 * revoke) and then the session row, like every writer (see triggers.c).
 * Refreshes of one session queue on the user's row and never upgrade a lock
 * they hold, so any number of them run without deadlock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "sessmgr.h"

typedef enum RefreshStatus
{
	REFRESH_OK,
	REFRESH_INVALID,
	REFRESH_EXPIRED,
	REFRESH_REUSE_DETECTED
} RefreshStatus;

static const char *const status_names[] = {"ok", "invalid", "expired", "reuse_detected"};

/*
 * Superseded token hashes kept per session for reuse detection: about a day
 * of refreshes every 15 minutes.  Older ones are forgotten; presenting one is
 * "invalid" rather than "reuse_detected".
 */
#define RETIRED_TOKENS_KEPT 100

typedef struct LockedSession
{
	char		user_id[SESSMGR_MAX_USER_ID_BYTES + 1];
	bool		revoked;
	bool		live;
	bool		has_prev;
	uint8		token_hash[SESSMGR_HASH_LEN];
	uint8		prev_token_hash[SESSMGR_HASH_LEN];
	int64		token_gen;
	int64		prev_token_gen;
	TimestampTz rotated_at;
	TimestampTz expires_at;
	SessmgrStepUpClaims stepup;	/* the access token's auth_time, aal, amr */
	char		amr_json[512];	/* at most 16 methods of 16 bytes */
} LockedSession;

static bool
copy_hash(Datum d, bool isnull, uint8 *out)
{
	bytea	   *b;

	if (isnull)
		return false;
	b = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(b) != SESSMGR_HASH_LEN)
		return false;
	memcpy(out, VARDATA_ANY(b), SESSMGR_HASH_LEN);
	return true;
}

/*
 * Lock the session (after its user's row) and read what the refresh
 * decides on.  Returns false if there is no such session.
 */
static bool
lock_session(const pg_uuid_t *id, TimestampTz now, LockedSession *s)
{
	static SPIPlanPtr read_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	Oid			types[2] = {UUIDOID, TIMESTAMPTZOID};
	Datum		values[2];
	Datum		owner_values[2];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;

	values[0] = UUIDPGetDatum(id);
	values[1] = TimestampTzGetDatum(now);

	SessmgrRun(&read_plan,
			   "SELECT user_id FROM sessmgr.sessions"
			   " WHERE id OPERATOR(pg_catalog.=) $1",
			   1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return false;
	owner_values[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	owner_values[1] = values[1];
	SessmgrLockUserRow(owner_values, USER_LOCK_EXCLUSIVE);

	SessmgrRun(&lock_plan,
			   "SELECT user_id, revoked_at IS NOT NULL, "
			   SESSMGR_LIVE_SQL("", "$2") ","
			   "       token_hash, prev_token_hash, token_gen, rotated_at, expires_at,"
			   "       prev_token_gen, authenticated_at, aal,"
			   "       pg_catalog.array_to_json(amr)::pg_catalog.text"
			   "  FROM sessmgr.sessions"
			   " WHERE id OPERATOR(pg_catalog.=) $1"
			   "   FOR UPDATE",
			   2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return false;

	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(row, desc, 1, &isnull)),
						   s->user_id, sizeof(s->user_id));
	s->revoked = DatumGetBool(SPI_getbinval(row, desc, 2, &isnull));
	s->live = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
	(void) copy_hash(SPI_getbinval(row, desc, 4, &isnull), isnull, s->token_hash);
	{
		Datum		d = SPI_getbinval(row, desc, 5, &isnull);

		s->has_prev = copy_hash(d, isnull, s->prev_token_hash);
	}
	s->token_gen = DatumGetInt64(SPI_getbinval(row, desc, 6, &isnull));
	{
		Datum		d = SPI_getbinval(row, desc, 7, &isnull);

		s->rotated_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
	}
	s->expires_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 8, &isnull));
	{
		Datum		d = SPI_getbinval(row, desc, 9, &isnull);

		s->prev_token_gen = isnull ? 0 : DatumGetInt64(d);
	}
	s->stepup.auth_time = DatumGetTimestampTz(SPI_getbinval(row, desc, 10, &isnull));
	s->stepup.aal = DatumGetInt16(SPI_getbinval(row, desc, 11, &isnull));
	{
		/* copied out of SPI's memory: the token is signed after SPI_finish */
		char	   *amr = SPI_getvalue(row, desc, 12);

		strlcpy(s->amr_json, amr ? amr : "[]", sizeof(s->amr_json));
		s->stepup.amr_json = s->amr_json;
	}
	return true;
}

static bytea *
hash_datum(const uint8 *hash)
{
	bytea	   *h = palloc(VARHDRSZ + SESSMGR_HASH_LEN);

	SET_VARSIZE(h, VARHDRSZ + SESSMGR_HASH_LEN);
	memcpy(VARDATA(h), hash, SESSMGR_HASH_LEN);
	return h;
}

/*
 * Whether a hash is one the session retired earlier; sets *superseded_at to
 * when it stopped being the session's token.
 */
static bool
is_retired(const pg_uuid_t *id, const uint8 *hash, TimestampTz *superseded_at)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {BYTEAOID, UUIDOID};
	Datum		values[2];
	bool		isnull;

	values[0] = PointerGetDatum(hash_datum(hash));
	values[1] = UUIDPGetDatum(id);

	SessmgrRun(&plan,
			   "SELECT retired_at FROM sessmgr.retired_tokens"
			   " WHERE token_hash OPERATOR(pg_catalog.=) $1"
			   "   AND session_id OPERATOR(pg_catalog.=) $2",
			   2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*superseded_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

/*
 * Replace the session's token: the current one becomes the previous one,
 * the previous one is retired.  Refreshing counts as activity.
 */
static void
rotate(const pg_uuid_t *id, const LockedSession *s, const uint8 *new_hash,
	   int64 new_gen, TimestampTz now)
{
	static SPIPlanPtr retire_plan = NULL;
	static SPIPlanPtr prune_plan = NULL;
	static SPIPlanPtr rotate_plan = NULL;
	Oid			retire_types[4] = {BYTEAOID, UUIDOID, TIMESTAMPTZOID, INT8OID};
	Oid			prune_types[2] = {UUIDOID, INT4OID};
	Oid			rotate_types[4] = {UUIDOID, BYTEAOID, INT8OID, TIMESTAMPTZOID};
	Datum		values[4];

	if (s->has_prev)
	{
		/* the previous token was superseded by the last rotation */
		values[0] = PointerGetDatum(hash_datum(s->prev_token_hash));
		values[1] = UUIDPGetDatum(id);
		values[2] = TimestampTzGetDatum(s->rotated_at != DT_NOBEGIN ?
										s->rotated_at : GetCurrentTimestamp());
		values[3] = Int64GetDatum(s->prev_token_gen);
		SessmgrRun(&retire_plan,
				   "INSERT INTO sessmgr.retired_tokens"
				   " (token_hash, session_id, retired_at, token_gen) VALUES ($1, $2, $3, $4)"
				   " ON CONFLICT DO NOTHING",
				   4, retire_types, values, NULL, SPI_OK_INSERT);

		/* keep the newest RETIRED_TOKENS_KEPT */
		values[0] = UUIDPGetDatum(id);
		values[1] = Int32GetDatum(RETIRED_TOKENS_KEPT);
		SessmgrRun(&prune_plan,
				   "DELETE FROM sessmgr.retired_tokens r"
				   " WHERE r.session_id OPERATOR(pg_catalog.=) $1"
				   "   AND r.retired_at OPERATOR(pg_catalog.<)"
				   "       (SELECT k.retired_at FROM sessmgr.retired_tokens k"
				   "         WHERE k.session_id OPERATOR(pg_catalog.=) $1"
				   "         ORDER BY k.retired_at DESC"
				   "        OFFSET $2 OPERATOR(pg_catalog.-) 1 LIMIT 1)",
				   2, prune_types, values, NULL, SPI_OK_DELETE);
	}

	values[0] = UUIDPGetDatum(id);
	values[1] = PointerGetDatum(hash_datum(new_hash));
	values[2] = Int64GetDatum(new_gen);
	values[3] = TimestampTzGetDatum(now);
	SessmgrRun(&rotate_plan,
			   "UPDATE sessmgr.sessions"
			   "   SET prev_token_hash = token_hash,"
			   "       prev_token_gen = token_gen,"
			   "       token_hash = $2,"
			   "       token_gen = $3,"
			   "       rotated_at = pg_catalog.clock_timestamp(),"
			   "       last_active_at = GREATEST(last_active_at, $4)"
			   " WHERE id OPERATOR(pg_catalog.=) $1",
			   4, rotate_types, values, NULL, SPI_OK_UPDATE);
}

/* Revoke the session whose token was reused; the trigger audits it. */
static void
revoke_for_reuse(const pg_uuid_t *id, const char *user_id, TimestampTz now)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	Datum		owner_values[2];

	owner_values[0] = CStringGetTextDatum(user_id);
	owner_values[1] = TimestampTzGetDatum(now);
	SessmgrLockUserRow(owner_values, USER_LOCK_REVOKE);

	values[0] = UUIDPGetDatum(id);
	SessmgrRun(&plan,
			   "UPDATE sessmgr.sessions"
			   "   SET revoked_at = pg_catalog.clock_timestamp(),"
			   "       revoke_reason = 'token_reuse'"
			   " WHERE id OPERATOR(pg_catalog.=) $1"
			   "   AND revoked_at IS NULL",
			   1, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * Whether gen is the tag of one of the session's retired tokens (the newest
 * RETIRED_TOKENS_KEPT).  Access tokens minted with such a token keep
 * working until they expire: several tabs refreshing at once each rotate the
 * session, and the first tab's new access token must not die two rotations
 * later, a moment after it was handed out.  Off the hot path: access tokens
 * of the current and the previous token are judged from the session row.
 */
bool
SessmgrGenWasRetired(const pg_uuid_t *id, int64 gen)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {UUIDOID, INT8OID};
	Datum		values[2];

	values[0] = UUIDPGetDatum(id);
	values[1] = Int64GetDatum(gen);
	return SessmgrRunAsOwner(&plan,
							 "SELECT 1 FROM sessmgr.retired_tokens"
							 " WHERE session_id OPERATOR(pg_catalog.=) $1"
							 "   AND token_gen OPERATOR(pg_catalog.=) $2",
							 2, types, values, NULL, SPI_OK_SELECT) > 0;
}

/*
 * What a refresh with this token hash comes to, with the session locked and
 * read into *s.  The hash is judged first (see the file header).
 */
static RefreshStatus
decide(const pg_uuid_t *id, const uint8 *hash, TimestampTz now, LockedSession *s)
{
	TimestampTz superseded_at;

	if (!lock_session(id, now, s))
		return REFRESH_INVALID;
	if (SessmgrConstantTimeEqual(hash, s->token_hash, SESSMGR_HASH_LEN))
		superseded_at = DT_NOEND;	/* the current token */
	else if (s->has_prev &&
			 SessmgrConstantTimeEqual(hash, s->prev_token_hash, SESSMGR_HASH_LEN))
		superseded_at = s->rotated_at;
	else if (!is_retired(id, hash, &superseded_at))
		return REFRESH_INVALID; /* a secret this session never had */

	if (s->revoked)
		return REFRESH_INVALID;
	if (!s->live)
		return REFRESH_EXPIRED;
	if (superseded_at == DT_NOEND ||
		GetCurrentTimestamp() - superseded_at <= (int64) sessmgr_refresh_grace * USECS_PER_SEC)
		return REFRESH_OK;
	return REFRESH_REUSE_DETECTED;
}

/*
 * sessmgr.refresh(token text)
 *	 RETURNS TABLE (status text, session_id uuid, token text,
 *					access_token text, expires_at timestamptz)
 *
 * Always one row.  status is ok (with the new token and access token),
 * invalid, expired or reuse_detected (the session has just been revoked).
 */
PG_FUNCTION_INFO_V1(sessmgr_refresh);
Datum
sessmgr_refresh(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {
		"status", "session_id", "token", "access_token", "expires_at"
	};
	static const Oid types[] = {TEXTOID, UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	static TupleDesc result_desc = NULL;
	RefreshStatus status = REFRESH_INVALID;
	SessmgrToken token;
	uint8		hash[SESSMGR_HASH_LEN];
	uint8		new_hash[SESSMGR_HASH_LEN];
	char		new_token[SESSMGR_TOKEN_LEN + 1];
	char	   *access_token = NULL;
	int64		new_gen = 0;
	LockedSession s;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz access_expires;
	pg_uuid_t	session_id;
	Datum		result[5];
	bool		nulls[5] = {false, true, true, true, true};
	text	   *arg;

	SessmgrBeginResult(fcinfo);
	if (result_desc == NULL)
		result_desc = SessmgrResultDesc(5, names, types);

	if (PG_ARGISNULL(0) ||
		toast_raw_datum_size(PG_GETARG_DATUM(0)) != VARHDRSZ + SESSMGR_TOKEN_LEN ||
		(arg = PG_GETARG_TEXT_PP(0),
		 !SessmgrTokenDecode(VARDATA_ANY(arg), VARSIZE_ANY_EXHDR(arg), &token)))
	{
		result[0] = CStringGetTextDatum(status_names[REFRESH_INVALID]);
		SessmgrReturnRow(fcinfo, result_desc, result, nulls);
		PG_RETURN_NULL();
	}

	SessmgrTokenHash(&token, hash);
	session_id = token.id;

	{
		SessmgrOwnerContext octx;

		SessmgrOwnerBegin(&octx);

		status = decide(&token.id, hash, now, &s);
		if (status == REFRESH_OK)
		{
			SessmgrTokenNewSecret(&token);
			SessmgrTokenHash(&token, new_hash);
			SessmgrTokenEncode(&token, new_token);
			new_gen = SessmgrRandomGen();
			rotate(&token.id, &s, new_hash, new_gen, now);
		}
		else if (status == REFRESH_REUSE_DETECTED)
			revoke_for_reuse(&token.id, s.user_id, now);

		SessmgrOwnerEnd(&octx);
	}

	result[0] = CStringGetTextDatum(status_names[status]);
	if (status != REFRESH_INVALID)
	{
		result[1] = UUIDPGetDatum(&session_id);
		nulls[1] = false;
	}
	if (status == REFRESH_OK)
	{
		access_token = SessmgrJwtSign(s.user_id, &session_id, new_gen, s.expires_at, &s.stepup,
									  &access_expires);
		result[2] = CStringGetTextDatum(new_token);
		result[3] = CStringGetTextDatum(access_token);
		result[4] = TimestampTzGetDatum(s.expires_at);
		nulls[2] = nulls[3] = nulls[4] = false;
		explicit_bzero(new_token, sizeof(new_token));
	}
	explicit_bzero(&token, sizeof(token));

	SessmgrReturnRow(fcinfo, result_desc, result, nulls);
	PG_RETURN_NULL();
}

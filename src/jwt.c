/*-------------------------------------------------------------------------
 *
 * jwt.c
 *	  Access tokens: HS256/HS384/HS512 JSON Web Tokens signed and verified in
 *	  C, and the signing keys.
 *
 * An access token carries sub (user id), sid (session id), gen (the tag of
 * the session token it was minted with), role, iat, exp and, when
 * configured, aud and iss.  Verification accepts it only while its session
 * is active and its gen is the tag of one of the session's tokens (the
 * current or previous one, read from the session row, or a retired one): a
 * token minted in a transaction that rolled back carries a tag that was
 * never stored, so it never verifies, and revoking a session kills its
 * access tokens at once.
 *
 * Keys live in sessmgr.signing_keys, readable by the extension only.  Each
 * backend caches the usable keys with their HMAC pads precomputed; a
 * statement-level trigger on the table invalidates the cache cluster-wide.
 * The algorithm is a property of the key: the header's alg must equal it,
 * and never chooses how a token is checked.  "none" has no key.
 *
 * Verification never raises for a bad token.  Untrusted JSON is bounded in
 * size and nesting before it is parsed with the non-throwing JSON lexer
 * (parse.c, which is fuzzed on its own).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "access/detoast.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "sessmgr.h"

#define JWT_LEEWAY_SECS		30
#define KID_MAX_LEN			64
#define MAC_MAX_LEN			64


typedef struct JwtAlgorithm
{
	const char *name;
	const EVP_MD *(*md) (void);
	int			mac_len;
	int			block_len;
} JwtAlgorithm;

static const JwtAlgorithm algorithms[] = {
	{"HS256", EVP_sha256, 32, 64},
	{"HS384", EVP_sha384, 48, 128},
	{"HS512", EVP_sha512, 64, 128},
};

typedef struct SigningKey
{
	char		kid[KID_MAX_LEN + 1];
	const JwtAlgorithm *alg;
	EVP_MD_CTX *inner;			/* digest state after the inner pad */
	EVP_MD_CTX *outer;			/* digest state after the outer pad */
	char	   *header;			/* base64url of this key's JWT header */
	TimestampTz signs_from;		/* verifies at once, signs from then on */
} SigningKey;

/* usable keys, latest signs_from first: the first one due signs */
static SigningKey *keys = NULL;
static int	nkeys = 0;
static bool keys_valid = false;
static Oid	keys_relid = InvalidOid;
static EVP_MD_CTX *work_ctx = NULL;

static void
keys_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == keys_relid)
		keys_valid = false;
}

/* Register the cache invalidation callback; called once from _PG_init. */
void
SessmgrJwtInit(void)
{
	CacheRegisterRelcacheCallback(keys_invalidate, (Datum) 0);
}

static const JwtAlgorithm *
find_algorithm(const char *name)
{
	for (size_t i = 0; i < lengthof(algorithms); i++)
		if (strcmp(algorithms[i].name, name) == 0)
			return &algorithms[i];
	return NULL;
}

static void
openssl_failed(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("could not compute an HMAC")));
}

/* Precompute the HMAC inner and outer digest states of a key (RFC 2104). */
static void
prepare_key(SigningKey *key, const uint8 *secret, int secret_len)
{
	uint8		block[128];
	uint8		pad[128];
	const EVP_MD *md = key->alg->md();
	int			block_len = key->alg->block_len;
	unsigned int digest_len;

	memset(block, 0, sizeof(block));
	if (secret_len > block_len)
	{
		if (EVP_Digest(secret, secret_len, block, &digest_len, md, NULL) != 1)
			openssl_failed();
	}
	else
		memcpy(block, secret, secret_len);

	key->inner = EVP_MD_CTX_new();
	key->outer = EVP_MD_CTX_new();
	if (key->inner == NULL || key->outer == NULL)
		openssl_failed();

	for (int i = 0; i < block_len; i++)
		pad[i] = block[i] ^ 0x36;
	if (EVP_DigestInit_ex(key->inner, md, NULL) != 1 ||
		EVP_DigestUpdate(key->inner, pad, block_len) != 1)
		openssl_failed();
	for (int i = 0; i < block_len; i++)
		pad[i] = block[i] ^ 0x5c;
	if (EVP_DigestInit_ex(key->outer, md, NULL) != 1 ||
		EVP_DigestUpdate(key->outer, pad, block_len) != 1)
		openssl_failed();

	explicit_bzero(block, sizeof(block));
	explicit_bzero(pad, sizeof(pad));
}

/* HMAC of data with a prepared key; out must hold MAC_MAX_LEN bytes. */
static void
hmac(const SigningKey *key, const char *data, size_t len, uint8 *out)
{
	uint8		inner_digest[MAC_MAX_LEN];
	unsigned int n;

	if (work_ctx == NULL && (work_ctx = EVP_MD_CTX_new()) == NULL)
		openssl_failed();

	if (EVP_MD_CTX_copy_ex(work_ctx, key->inner) != 1 ||
		EVP_DigestUpdate(work_ctx, data, len) != 1 ||
		EVP_DigestFinal_ex(work_ctx, inner_digest, &n) != 1 ||
		EVP_MD_CTX_copy_ex(work_ctx, key->outer) != 1 ||
		EVP_DigestUpdate(work_ctx, inner_digest, n) != 1 ||
		EVP_DigestFinal_ex(work_ctx, out, &n) != 1)
		openssl_failed();
}

static void
free_keys(void)
{
	for (int i = 0; i < nkeys; i++)
	{
		EVP_MD_CTX_free(keys[i].inner);
		EVP_MD_CTX_free(keys[i].outer);
		if (keys[i].header != NULL)
			pfree(keys[i].header);
	}
	if (keys != NULL)
		pfree(keys);
	keys = NULL;
	nkeys = 0;
}

/* Load the usable signing keys, newest first, unless cached. */
static void
load_keys(void)
{
	static SPIPlanPtr plan = NULL;
	SessmgrOwnerContext octx;
	MemoryContext oldcontext;

	if (keys_valid)
		return;

	free_keys();
	keys_relid = get_relname_relid("signing_keys", SessmgrGetCatalog()->namespace);

	SessmgrOwnerBegin(&octx);
	SessmgrRun(&plan,
			   "SELECT kid, alg, secret, signs_from FROM sessmgr.signing_keys"
			   " WHERE retired_at IS NULL"
			   " ORDER BY signs_from DESC, created_at, kid",
			   0, NULL, NULL, NULL, SPI_OK_SELECT);

	oldcontext = MemoryContextSwitchTo(TopMemoryContext);
	keys = palloc0(sizeof(SigningKey) * Max(SPI_processed, 1));
	MemoryContextSwitchTo(oldcontext);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		SigningKey *key = &keys[nkeys];
		bool		isnull;
		char	   *kid = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));
		char	   *alg = TextDatumGetCString(SPI_getbinval(tuple, desc, 2, &isnull));
		bytea	   *secret = DatumGetByteaPP(SPI_getbinval(tuple, desc, 3, &isnull));
		StringInfoData header;
		char	   *encoded;

		key->signs_from = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 4, &isnull));
		key->alg = find_algorithm(alg);
		if (key->alg == NULL || strlen(kid) > KID_MAX_LEN)
			continue;			/* the table's checks make this impossible */
		strlcpy(key->kid, kid, sizeof(key->kid));

		/*
		 * Count the key before it holds anything: if preparing it fails half
		 * way, free_keys (at the next load) still frees what it got.
		 */
		nkeys++;
		prepare_key(key, (const uint8 *) VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret));

		initStringInfo(&header);
		appendStringInfo(&header, "{\"alg\":\"%s\",\"kid\":", key->alg->name);
		escape_json(&header, key->kid);
		appendStringInfoString(&header, ",\"typ\":\"JWT\"}");
		encoded = MemoryContextAlloc(TopMemoryContext, header.len * 4 / 3 + 4);
		SessmgrBase64UrlEncode((const uint8 *) header.data, header.len, encoded);
		key->header = encoded;
	}

	SessmgrOwnerEnd(&octx);
	keys_valid = true;
}

/*
 * The key with this kid, or with a NULL kid the signing key: the unretired
 * key with the latest signs_from that is due (ties go to the older key, so
 * the key CREATE EXTENSION made in a database a dump was then restored into
 * does not displace the restored ones; see rotate_signing_key).
 */
static const SigningKey *
find_key(const char *kid)
{
	load_keys();
	if (kid == NULL)
	{
		TimestampTz now = GetCurrentTimestamp();

		for (int i = 0; i < nkeys; i++)
			if (keys[i].signs_from <= now)
				return &keys[i];
		return NULL;
	}
	for (int i = 0; i < nkeys; i++)
		if (strcmp(keys[i].kid, kid) == 0)
			return &keys[i];
	return NULL;
}

static int64
unix_seconds(TimestampTz t)
{
	return t / USECS_PER_SEC +
		(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

/*
 * Mint an access token for a session.  Its lifetime is
 * sessmgr.access_token_ttl, cut short by the session's absolute lifetime.
 * Returns the token and sets *expires_at.
 */
char *
SessmgrJwtSign(const char *user_id, const pg_uuid_t *session_id, int64 token_gen,
			   TimestampTz session_expires_at, const SessmgrStepUpClaims *stepup,
			   TimestampTz *expires_at)
{
	const SigningKey *key = find_key(NULL);
	TimestampTz now = GetCurrentTimestamp();
	int64		iat = unix_seconds(now);
	int64		exp = Min(iat + sessmgr_access_token_ttl, unix_seconds(session_expires_at));
	StringInfoData payload;
	StringInfoData jwt;
	char	   *sid = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(session_id)));
	uint8		mac[MAC_MAX_LEN];

	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no signing key for access tokens"),
				 errhint("Create one with sessmgr.rotate_signing_key().")));

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"sub\":");
	escape_json(&payload, user_id);
	appendStringInfo(&payload, ",\"sid\":\"%s\",\"gen\":\"%016llx\",\"role\":",
					 sid, (unsigned long long) token_gen);
	escape_json(&payload, sessmgr_jwt_role);
	appendStringInfo(&payload, ",\"iat\":" INT64_FORMAT ",\"exp\":" INT64_FORMAT, iat, exp);
	/* step-up, for clients and other services; sessmgr reads the live row */
	if (stepup != NULL)
		appendStringInfo(&payload, ",\"auth_time\":" INT64_FORMAT ",\"aal\":%d,\"amr\":%s",
						 unix_seconds(stepup->auth_time), stepup->aal,
						 stepup->amr_json ? stepup->amr_json : "[]");
	if (sessmgr_jwt_audience[0] != '\0')
	{
		appendStringInfoString(&payload, ",\"aud\":");
		escape_json(&payload, sessmgr_jwt_audience);
	}
	if (sessmgr_jwt_issuer[0] != '\0')
	{
		appendStringInfoString(&payload, ",\"iss\":");
		escape_json(&payload, sessmgr_jwt_issuer);
	}
	appendStringInfoChar(&payload, '}');

	initStringInfo(&jwt);
	appendStringInfoString(&jwt, key->header);
	appendStringInfoChar(&jwt, '.');
	enlargeStringInfo(&jwt, payload.len * 4 / 3 + 4);
	jwt.len += SessmgrBase64UrlEncode((const uint8 *) payload.data, payload.len,
									  jwt.data + jwt.len);

	hmac(key, jwt.data, jwt.len, mac);
	appendStringInfoChar(&jwt, '.');
	enlargeStringInfo(&jwt, MAC_MAX_LEN * 4 / 3 + 4);
	jwt.len += SessmgrBase64UrlEncode(mac, key->alg->mac_len, jwt.data + jwt.len);

	*expires_at = (exp - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
	return jwt.data;
}

/*
 * Check the claims of an access token against the clock, the configured
 * audience and issuer, and the state of its session; touch the session
 * when due.  Fills *row.
 */
static bool
claims_check_out(const JwtFields *claims, SessmgrSessionRow *row)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	double		now_secs = (double) unix_seconds(GetCurrentTimestamp());
	pg_uuid_t	sid;
	int64		gen;

	if (!claims->has_exp || now_secs > claims->exp + JWT_LEEWAY_SECS)
		return false;
	if (claims->has_nbf && now_secs < claims->nbf - JWT_LEEWAY_SECS)
		return false;
	if (claims->has_iat && claims->iat > now_secs + JWT_LEEWAY_SECS)
		return false;
	if (sessmgr_jwt_audience[0] != '\0' && !claims->aud_matches)
		return false;
	if (sessmgr_jwt_issuer[0] != '\0' &&
		(claims->iss == NULL || strcmp(claims->iss, sessmgr_jwt_issuer) != 0))
		return false;

	if (claims->sid == NULL || claims->sub == NULL || claims->gen == NULL ||
		!SessmgrParseUuid(claims->sid, &sid) || !SessmgrParseGen(claims->gen, &gen))
		return false;
	if (!SessmgrFetchSession(&sid, row) ||
		!SessmgrSessionRowIsLive(row, now) ||
		strcmp(row->user_id, claims->sub) != 0 ||
		!(gen == row->token_gen || (row->has_prev_gen && gen == row->prev_token_gen) ||
		  SessmgrGenWasRetired(&sid, gen)))
		return false;

	return SessmgrTouchIfDue(row, now);
}

/*
 * Verify an access token: its signature with the key its header names, the
 * key's algorithm, its times, audience and issuer, and its session (live,
 * and the token's gen one the session had; session.c).  Returns the
 * payload's JSON text (NUL-terminated) and fills *claims and *row when the
 * token checks out, NULL otherwise.  Never raises for a bad token.
 */
char *
SessmgrJwtVerify(const char *s, int len, JwtFields *claims, SessmgrSessionRow *row)
{
	const char *dot1;
	const char *dot2;
	char	   *header;
	char	   *payload;
	int			header_len;
	int			payload_len;
	uint8		sig[MAC_MAX_LEN + 4];
	uint8		mac[MAC_MAX_LEN];
	int			sig_len;
	JwtFields	hdr;
	const SigningKey *key;

	dot1 = memchr(s, '.', len);
	if (dot1 == NULL)
		return NULL;
	dot2 = memchr(dot1 + 1, '.', len - (dot1 + 1 - s));
	if (dot2 == NULL || dot1 == s || dot2 == dot1 + 1 || dot2 == s + len - 1 ||
		memchr(dot2 + 1, '.', len - (dot2 + 1 - s)) != NULL)
		return NULL;

	/* the header picks the key; the key, not the header, fixes the algorithm */
	header = SessmgrJwtDecodeSegment(s, dot1 - s, &header_len);
	if (header == NULL ||
		!SessmgrJwtParseFields(header, header_len, sessmgr_jwt_audience,
							   JSON_ASCII_ESCAPES_ONLY, &hdr) ||
		hdr.alg == NULL || hdr.has_crit)
		return NULL;			/* crit: extensions we do not know (RFC 7515) */
	key = find_key(hdr.kid);
	if (key == NULL || strcmp(hdr.alg, key->alg->name) != 0)
		return NULL;

	sig_len = SessmgrBase64UrlDecode(dot2 + 1, len - (dot2 + 1 - s), sig, sizeof(sig));
	if (sig_len != key->alg->mac_len)
		return NULL;
	hmac(key, s, dot2 - s, mac);
	if (!SessmgrConstantTimeEqual(mac, sig, sig_len))
		return NULL;

	payload = SessmgrJwtDecodeSegment(dot1 + 1, dot2 - (dot1 + 1), &payload_len);
	if (payload == NULL ||
		!SessmgrJwtParseFields(payload, payload_len, sessmgr_jwt_audience,
							   JSON_ASCII_ESCAPES_ONLY, claims) ||
		!claims_check_out(claims, row))
		return NULL;

	return payload;
}

/*
 * sessmgr.verify_access_token(jwt text) RETURNS jsonb
 *
 * The claims of an access token whose signature, algorithm, times,
 * audience, issuer and session all check out; NULL for anything else.
 */
PG_FUNCTION_INFO_V1(sessmgr_verify_access_token);
Datum
sessmgr_verify_access_token(PG_FUNCTION_ARGS)
{
	SessmgrSessionRow row;
	JwtFields	claims;
	char	   *payload;
	text	   *jwt;

	row.want_stepup = false;

	if (PG_ARGISNULL(0) ||
		toast_raw_datum_size(PG_GETARG_DATUM(0)) > VARHDRSZ + JWT_MAX_LEN)
		PG_RETURN_NULL();

	jwt = PG_GETARG_TEXT_PP(0);
	payload = SessmgrJwtVerify(VARDATA_ANY(jwt), VARSIZE_ANY_EXHDR(jwt), &claims, &row);
	if (payload == NULL)
		PG_RETURN_NULL();

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(payload)));
}

/*
 * sessmgr.signing_keys_changed() RETURNS trigger
 *
 * After any change to sessmgr.signing_keys: make every backend reload its
 * key cache once the change commits.
 */
PG_FUNCTION_INFO_V1(sessmgr_signing_keys_changed);
Datum
sessmgr_signing_keys_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"signing_keys_changed\" must be fired as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * sessmgr.rotate_signing_key(algorithm text DEFAULT 'HS256',
 *							  signs_from timestamptz DEFAULT NULL) RETURNS text
 *
 * Add a new key.  It verifies at once (and is in sessmgr.jwks()), and signs
 * from signs_from on: now by default, or later, so that PostgREST can be
 * given the new key set before the first token signed with it.  Older keys
 * keep verifying until retired.  Returns the new key's kid.
 */
PG_FUNCTION_INFO_V1(sessmgr_rotate_signing_key);
Datum
sessmgr_rotate_signing_key(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, BYTEAOID, TIMESTAMPTZOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	const char *alg_name = PG_ARGISNULL(0) ? "HS256" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	const JwtAlgorithm *alg = find_algorithm(alg_name);
	uint8		kid_raw[9];
	char		kid[16];
	bytea	   *secret;

	if (alg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported signing algorithm"),
				 errhint("Use HS256, HS384 or HS512.")));

	secret = palloc(VARHDRSZ + 64);
	SET_VARSIZE(secret, VARHDRSZ + 64);
	if (!pg_strong_random(kid_raw, sizeof(kid_raw)) ||
		!pg_strong_random(VARDATA(secret), 64))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random signing key")));
	SessmgrBase64UrlEncode(kid_raw, sizeof(kid_raw), kid);

	values[0] = CStringGetTextDatum(kid);
	values[1] = CStringGetTextDatum(alg->name);
	values[2] = PointerGetDatum(secret);
	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
		values[3] = PG_GETARG_DATUM(1);
	else
		values[3] = TimestampTzGetDatum(GetCurrentTimestamp());

	SessmgrRunAsOwner(&plan,
					  "INSERT INTO sessmgr.signing_keys (kid, alg, secret, signs_from)"
					  " VALUES ($1, $2, $3, $4)",
					  4, types, values, nulls, SPI_OK_INSERT);

	explicit_bzero(VARDATA(secret), 64);
	PG_RETURN_TEXT_P(cstring_to_text(kid));
}

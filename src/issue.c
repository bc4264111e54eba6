/*-------------------------------------------------------------------------
 *
 * issue.c
 *	  sessmgr.issue(): minting a session for an authenticated user.
 *
 * The caller has already checked the user's credentials.  issue() mints a
 * token, stores its hash with the session's metadata and lifetimes, and
 * returns the token; it is never shown again.  The per-user cap and the
 * audit event are the table's triggers' business (triggers.c), so a plain
 * INSERT obeys them too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "sessmgr.h"

#define ISSUE_NARGS 28

/* issue_from_request's device cookies are 64 hex digits */
#define ISSUE_MAX_DEVICE_COOKIE_BYTES 128

/*
 * sessmgr.issue(user_id text, device_name text, user_agent text, ip inet,
 *				 location text, remember boolean, metadata jsonb,
 *				 client_hints jsonb, device_cookie text)
 *	 RETURNS TABLE (session_id uuid, token text, expires_at timestamptz,
 *					access_token text)
 */
PG_FUNCTION_INFO_V1(sessmgr_issue);
Datum
sessmgr_issue(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"session_id", "token", "expires_at", "access_token"};
	static const Oid types[] = {UUIDOID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
	static TupleDesc result_desc = NULL;
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[ISSUE_NARGS] = {
		UUIDOID, BYTEAOID, TIMESTAMPTZOID, INTERVALOID, TIMESTAMPTZOID,
		BOOLOID, TEXTOID, TEXTOID, TEXTOID, INETOID, TEXTOID, JSONBOID, INT8OID,
		/* the device and the place */
		TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		FLOAT8OID, FLOAT8OID, INT4OID, INT8OID, JSONBOID,
		/* suspicious logins (risk.c): the reasons, the assurance level */
		TEXTARRAYOID, INT2OID
	};
	Datum		values[ISSUE_NARGS];
	char		nulls[ISSUE_NARGS];
	SessmgrToken token;
	uint8		hash[SESSMGR_HASH_LEN];
	bytea	   *hash_datum;
	char		token_text[SESSMGR_TOKEN_LEN + 1];
	bool		remember;
	int			idle_secs;
	int			absolute_secs;
	Interval   *idle;
	TimestampTz now;
	TimestampTz expires_at;
	int64		token_gen;
	Datum		result[4];
	bool		result_nulls[4] = {false, false, false, false};
	char	   *user_id;
	TimestampTz access_expires;
	SessmgrStepUpClaims stepup;
	Jsonb	   *client_hints = NULL;
	SessmgrDevice device;
	SessmgrPlace place;
	int			login_failures;	/* the account's recent failed logins */
	text	   *device_cookie = NULL;
	SessmgrRisk *risk;

	SessmgrBeginResult(fcinfo);

	/* check the arguments; errors name them but never echo their values */
	(void) SessmgrCheckUserId(fcinfo, 0, false, NULL);
	if (!PG_ARGISNULL(1))
		SessmgrCheckText(PG_GETARG_DATUM(1), "device name", SESSMGR_MAX_NAME_BYTES);
	if (!PG_ARGISNULL(2))
		SessmgrCheckText(PG_GETARG_DATUM(2), "user agent", SESSMGR_MAX_USER_AGENT_BYTES);
	if (!PG_ARGISNULL(4))
		SessmgrCheckText(PG_GETARG_DATUM(4), "location", SESSMGR_MAX_NAME_BYTES);
	remember = PG_ARGISNULL(5) ? false : PG_GETARG_BOOL(5);
	if (!PG_ARGISNULL(6))
	{
		Jsonb	   *metadata = PG_GETARG_JSONB_P(6);

		if (!JB_ROOT_IS_OBJECT(metadata) || JB_ROOT_IS_SCALAR(metadata))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("metadata must be a JSON object")));
		if (VARSIZE(metadata) - VARHDRSZ > SESSMGR_MAX_METADATA_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("metadata is too long"),
					 errdetail("The limit is %d bytes.", SESSMGR_MAX_METADATA_BYTES)));
	}
	if (PG_NARGS() > 7 && !PG_ARGISNULL(7))
	{
		SessmgrCheckText(PG_GETARG_DATUM(7), "client hints", SESSMGR_MAX_METADATA_BYTES);
		client_hints = PG_GETARG_JSONB_P(7);
		if (!JB_ROOT_IS_OBJECT(client_hints) || JB_ROOT_IS_SCALAR(client_hints))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("client hints must be a JSON object")));
	}
	if (PG_NARGS() > 8 && !PG_ARGISNULL(8))
	{
		SessmgrCheckText(PG_GETARG_DATUM(8), "device cookie", ISSUE_MAX_DEVICE_COOKIE_BYTES);
		device_cookie = PG_GETARG_TEXT_PP(8);
	}
	SessmgrCheckSettings(remember);

	/* refused while the account is locked or delayed (throttle.c) */
	login_failures = SessmgrThrottleBeforeIssue(PG_GETARG_DATUM(0),
												PG_ARGISNULL(3) ? NULL : PG_GETARG_INET_PP(3));

	/* what a person recognises the session by: its device and its place */
	SessmgrDeriveDevicePlace(PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2),
							 PG_ARGISNULL(3) ? NULL : PG_GETARG_INET_PP(3),
							 client_hints, &device, &place);

	/* mint the token and the session's lifetimes */
	SessmgrTokenGenerate(&token);
	SessmgrTokenHash(&token, hash);
	SessmgrTokenEncode(&token, token_text);
	explicit_bzero(&token.secret, sizeof(token.secret));
	token_gen = SessmgrRandomGen();

	/*
	 * The wall clock rather than the transaction start, so that sessions
	 * issued in one transaction still have an order for evict_oldest.
	 */
	now = GetCurrentTimestamp();
	idle_secs = remember ? sessmgr_remember_idle_timeout : sessmgr_idle_timeout;
	absolute_secs = remember ? sessmgr_remember_absolute_timeout : sessmgr_absolute_timeout;
	expires_at = now + (int64) absolute_secs * USECS_PER_SEC;

	/* an idle timeout is an exact duration, never calendar days */
	idle = palloc0(sizeof(Interval));
	idle->time = (int64) idle_secs * USECS_PER_SEC;

	hash_datum = palloc(VARHDRSZ + SESSMGR_HASH_LEN);
	SET_VARSIZE(hash_datum, VARHDRSZ + SESSMGR_HASH_LEN);
	memcpy(VARDATA(hash_datum), hash, SESSMGR_HASH_LEN);

	memset(nulls, ' ', sizeof(nulls));
	values[0] = UUIDPGetDatum(&token.id);
	values[1] = PointerGetDatum(hash_datum);
	values[2] = TimestampTzGetDatum(now);
	values[3] = IntervalPGetDatum(idle);
	values[4] = TimestampTzGetDatum(expires_at);
	values[5] = BoolGetDatum(remember);
	values[6] = PG_GETARG_DATUM(0);
	for (int i = 1; i <= 4; i++)
	{
		/* device_name, user_agent, ip, location */
		values[6 + i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[6 + i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[11] = PG_ARGISNULL(6) ?
		DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")) : PG_GETARG_DATUM(6);
	values[12] = Int64GetDatum(token_gen);

	/* the caller's location wins; otherwise "City, Country" from the place */
	if (PG_ARGISNULL(4))
	{
		const char *city = place.city;
		const char *country = place.country;

		if (city != NULL && country != NULL)
			SessmgrTextParam(values, nulls, 10, psprintf("%s, %s", city, country));
		else
			SessmgrTextParam(values, nulls, 10, city != NULL ? city : country);
		if (nulls[10] == ' ')
			SessmgrCheckText(values[10], "location", SESSMGR_MAX_NAME_BYTES);
	}
	SessmgrDevicePlaceParams(&device, &place, values, nulls, 13);
	values[25] = client_hints != NULL ? JsonbPGetDatum(client_hints) : (Datum) 0;
	nulls[25] = client_hints != NULL ? ' ' : 'n';

	/*
	 * Suspicious logins: compare this login with the user's history (risk.c;
	 * locks the user's profile row, before the cap trigger's owner row).
	 */
	risk = SessmgrRiskAssess(PG_GETARG_DATUM(0), &device, &place, device_cookie,
							 login_failures, now);
	values[26] = SessmgrRiskReasons(risk);
	values[27] = Int16GetDatum((int16) SessmgrRiskAal(risk));

	SessmgrRunAsOwner(&plan,
					  "INSERT INTO sessmgr.sessions"
					  " (id, token_hash, created_at, last_active_at, idle_timeout,"
					  "  expires_at, remember, user_id, device_name, user_agent, ip,"
					  "  location, metadata, token_gen, device, browser, os, device_type,"
					  "  country_code, country, region, city, latitude, longitude,"
					  "  accuracy_radius_km, asn, client_hints, authenticated_at, risk, aal)"
					  " VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
					  "         $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26,"
					  "         $3, $27, $28)",
					  ISSUE_NARGS, argtypes, values, nulls, SPI_OK_INSERT);

	/* remember this login; announce it if it was suspicious */
	SessmgrRiskRecord(risk, PG_GETARG_DATUM(0), &token.id,
					  PG_ARGISNULL(3) ? NULL : PG_GETARG_INET_PP(3), &device, &place);

	/* a successful login resets the account's and the pair's failures */
	SessmgrThrottleAfterIssue(PG_GETARG_DATUM(0), PG_ARGISNULL(3) ? NULL : PG_GETARG_INET_PP(3),
							  login_failures);

	user_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (result_desc == NULL)
		result_desc = SessmgrResultDesc(4, names, types);
	result[0] = UUIDPGetDatum(&token.id);
	result[1] = CStringGetTextDatum(token_text);
	result[2] = TimestampTzGetDatum(expires_at);
	stepup.auth_time = DatumGetTimestampTz(values[2]);	/* authenticated_at */
	stepup.aal = SessmgrRiskAal(risk);
	stepup.amr_json = "[]";
	result[3] = CStringGetTextDatum(SessmgrJwtSign(user_id, &token.id, token_gen,
												   expires_at, &stepup, &access_expires));
	SessmgrReturnRow(fcinfo, result_desc, result, result_nulls);
	explicit_bzero(token_text, sizeof(token_text));

	PG_RETURN_NULL();
}

/*-------------------------------------------------------------------------
 *
 * request.c
 *	  The PostgREST pre-request check: sessmgr_api.pre_request().
 *
 * PostgREST verifies an access token's signature and expiry itself, then
 * sets request.jwt.claims and calls the db-pre-request function before the
 * request's own SQL.  This function verifies the access token of the
 * request's Authorization header once more (one HMAC: the claims alone
 * could have been set by anyone who can log in as the authenticator) and
 * checks it against its session, so a revoked, expired or idle session's
 * access tokens stop working at once; it costs one primary-key probe.  It
 * writes only the throttled activity touch, never in a read-only
 * transaction (GET requests).
 *
 * When the request carries a live session, the session becomes the
 * transaction's identity (sessmgr.current_user_id(), for row-level
 * security), exactly as sessmgr.authenticate() does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "sessmgr.h"

/*
 * The error PostgREST turns into "401 Unauthorized" with this body and a
 * WWW-Authenticate header (SQLSTATE PGRST: message is the body, detail the
 * status and headers).
 */
static void
reject_request(void)
{
	SessmgrClearIdentity();
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE('P', 'G', 'R', 'S', 'T')),
			 errmsg("{\"code\":\"SM401\",\"message\":\"session has ended\","
					"\"details\":null,"
					"\"hint\":\"Refresh the access token or sign in again.\"}"),
			 errdetail("{\"status\":401,\"headers\":{\"WWW-Authenticate\":"
					   "\"Bearer error=\\\"invalid_token\\\", "
					   "error_description=\\\"session has ended\\\"\"}}")));
}

/*
 * The access token of the request's Authorization header ("Bearer <token>"),
 * or NULL.  PostgREST passes the request's headers, names lower-cased, as
 * JSON in request.headers.
 */
static const char *
request_bearer_token(int *len)
{
	const char *headers = GetConfigOption("request.headers", true, false);
	int			headers_len;

	if (headers == NULL || headers[0] == '\0')
		return NULL;
	headers_len = strlen(headers);
	return SessmgrBearerToken(SessmgrJsonGetMember(pnstrdup(headers, headers_len),
												   headers_len, "authorization",
												   JSON_ASCII_ESCAPES_ONLY),
							  len);
}

/*
 * The claims PostgREST put in request.jwt.claims, parsed; false when they
 * are there but unreadable.  Without claims, *claims is all empty.
 */
static bool
request_claims(JwtFields *claims)
{
	const char *json = GetConfigOption("request.jwt.claims", true, false);
	int			len;

	memset(claims, 0, sizeof(*claims));
	if (json == NULL || json[0] == '\0')
		return true;
	len = strlen(json);
	return len <= JWT_MAX_LEN &&
		SessmgrJwtParseFields(pnstrdup(json, len), len, sessmgr_jwt_audience,
							  JSON_ASCII_ESCAPES_ONLY, claims);
}

/*
 * sessmgr_api.pre_request() RETURNS void
 *
 * Let the request through when it carries a valid access token of a live
 * session (which becomes the transaction's identity), or when it is
 * anonymous; raise the 401 error otherwise.
 *
 * The request is judged by the access token it really carries, not by the
 * claims it was handed: anyone who can log in as the authenticator can set
 * request.jwt.claims to whatever they like.  Without a token of ours it goes
 * on only as anonymous: claims that carry a session id or the role
 * sessmgr.jwt_role are refused (a token of ours that did not verify, or
 * claims set by hand).  A token of another issuer for another role, which
 * PostgREST accepted with a key of its own, goes on without an identity.
 */
PG_FUNCTION_INFO_V1(sessmgr_pre_request);
Datum
sessmgr_pre_request(PG_FUNCTION_ARGS)
{
	JwtFields	claims;
	JwtFields	token_claims;
	SessmgrSessionRow row;
	const char *bearer;
	int			bearer_len = 0;

	/* what PostgREST handed us: the claims and the Authorization header */
	if (!request_claims(&claims))
		reject_request();
	bearer = request_bearer_token(&bearer_len);
	row.want_stepup = true;		/* for the identity's freshness (stepup.c) */

	/* the token itself: sessmgr's keys, its times, its live session */
	if (bearer != NULL && bearer_len <= JWT_MAX_LEN &&
		SessmgrJwtVerify(bearer, bearer_len, &token_claims, &row) != NULL)
	{
		/* the claims, when given, must be this token's */
		if ((claims.sid != NULL && strcmp(claims.sid, token_claims.sid) != 0) ||
			(claims.sub != NULL && strcmp(claims.sub, token_claims.sub) != 0))
			reject_request();
		SessmgrSetIdentity(row.user_id, &row.id);
		SessmgrSetIdentityStepUp(row.has_stepup, row.authenticated_at, row.aal);
		PG_RETURN_VOID();
	}

	/* no token of ours: anonymous, or refused */
	if (claims.sid != NULL ||
		(claims.role != NULL && strcmp(claims.role, sessmgr_jwt_role) == 0))
		reject_request();
	SessmgrClearIdentity();
	PG_RETURN_VOID();
}

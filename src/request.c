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
#include "mb/pg_wchar.h"
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
 * sessmgr_api.pre_request() RETURNS void
 *
 * Let the request through when it is anonymous or its session is active;
 * raise the 401 error otherwise.
 */
PG_FUNCTION_INFO_V1(sessmgr_pre_request);
Datum
sessmgr_pre_request(PG_FUNCTION_ARGS)
{
	const char *claims = GetConfigOption("request.jwt.claims", true, false);
	const char *headers = GetConfigOption("request.headers", true, false);
	const char *bearer = NULL;
	int			bearer_len = 0;
	SessmgrSessionRow row;
	bool		has_session;

	if (headers != NULL && headers[0] != '\0')
	{
		int			len = strlen(headers);

		bearer = SessmgrBearerToken(SessmgrJsonGetMember(pnstrdup(headers, len), len,
														 "authorization",
														 GetDatabaseEncoding() != PG_UTF8),
									&bearer_len);
	}

	if (!SessmgrCheckRequest(claims, bearer, bearer_len, &has_session, &row))
	{
		SessmgrClearIdentity();
		reject_request();
	}

	if (has_session)
		SessmgrSetIdentity(row.user_id, &row.id);
	else
		SessmgrClearIdentity();

	PG_RETURN_VOID();
}

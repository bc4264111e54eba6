/*-------------------------------------------------------------------------
 *
 * stepup.c
 *	  Step-up: when and how strongly a session's user last proved who they
 *	  are, and the freshness checks that policies and functions make
 *	  against the live session (docs/stepup.md).
 *
 * A session row carries authenticated_at (the issue time at issuance), aal
 * (1 for one factor, 2 for two, 3 for a hardware-bound one, as in NIST SP
 * 800-63B; 0 for a session not confirmed yet) and amr (RFC 8176 methods).
 * sessmgr.reauthenticate() updates them; authenticate() and the pre-request
 * check read authenticated_at and aal in the probe that validates the
 * session (session.c), so auth_age(), current_aal(), is_fresh() and
 * require_fresh() read backend memory (identity.c): no second probe, and
 * they work on a hot standby.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "sessmgr.h"

#define STEPUP_MAX_METHOD_BYTES	16
#define STEPUP_MAX_AMR			16	/* sessions_amr_check */
#define STEPUP_MAX_AAL			3

/* An authentication method: an RFC 8176 value or the like, [a-z]{2,16}. */
static text *
check_method(FunctionCallInfo fcinfo, int argno)
{
	text	   *method;
	const char *p;
	int			len;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("authentication method must not be null")));
	SessmgrCheckText(PG_GETARG_DATUM(argno), "authentication method",
					 STEPUP_MAX_METHOD_BYTES);
	method = PG_GETARG_TEXT_PP(argno);
	p = VARDATA_ANY(method);
	len = VARSIZE_ANY_EXHDR(method);
	if (len < 2)
		goto bad;
	for (int i = 0; i < len; i++)
		if (p[i] < 'a' || p[i] > 'z')
			goto bad;
	return method;

bad:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid authentication method"),
			 errhint("Use an RFC 8176 value such as pwd, otp, hwk, swk, sms, mfa, pin, fpt or face: 2 to 16 lower-case letters.")));
	return NULL;				/* not reached */
}

static int
check_aal(int32 aal, const char *what)
{
	if (aal < 1 || aal > STEPUP_MAX_AAL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 1 and %d", what, STEPUP_MAX_AAL)));
	return aal;
}

/*
 * sessmgr.reauthenticate(session_id uuid, user_id text, method text DEFAULT
 *						  'pwd', aal integer DEFAULT NULL) RETURNS timestamptz
 *
 * The application verified the user again (a password, a code, a passkey):
 * record it on the session.  authenticated_at becomes now, the method joins
 * amr, aal rises to the given level (at least 1: a confirmed session; never
 * lowered).  Refused like revoke() for another user's, an unknown or an
 * ended session.  Writes a reauthenticate event; returns the new time.
 */
PG_FUNCTION_INFO_V1(sessmgr_reauthenticate);
Datum
sessmgr_reauthenticate(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr update_plan = NULL;
	static SPIPlanPtr event_plan = NULL;
	Oid			update_types[4] = {UUIDOID, TIMESTAMPTZOID, TEXTOID, INT2OID};
	Oid			event_types[5] = {UUIDOID, TEXTOID, TEXTOID, NAMEOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Datum		owner_values[2];
	Datum		event_values[5];
	char		event_nulls[5] = {' ', ' ', ' ', ' ', ' '};
	text	   *user_id;
	text	   *method;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	SessmgrOwnerContext octx;
	const char *actor_user_id = SessmgrIdentityUserId();
	char	   *actor;
	NameData	actor_name;
	int			new_aal;
	pg_uuid_t	session_id;

	user_id = SessmgrCheckUserId(fcinfo, 1, true,
								 "Pass the user id of the session.");
	method = check_method(fcinfo, 2);
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
		values[3] = Int16GetDatum((int16) check_aal(PG_GETARG_INT32(3), "aal"));
	else
	{
		values[3] = (Datum) 0;
		nulls[3] = 'n';
	}
	if (PG_ARGISNULL(0))
		SessmgrInvalidSessionId();
	session_id = *PG_GETARG_UUID_P(0);

	values[0] = PG_GETARG_DATUM(0);
	values[1] = TimestampTzGetDatum(now);
	values[2] = PointerGetDatum(method);

	SessmgrOwnerBegin(&octx);

	/* whose session is it, and is it still live? */
	if (!SessmgrReadSessionOwner(values[0], user_id, now, &owner_values[0]))
		SessmgrInvalidSessionId();
	event_values[1] = owner_values[0];

	/* the user's row first (the lock order of triggers.c) */
	owner_values[1] = values[1];
	SessmgrLockUserRow(owner_values, USER_LOCK_SHARE);

	/* then the session, unless it ended while we waited */
	SessmgrRun(&update_plan,
			   "UPDATE sessmgr.sessions"
			   "   SET authenticated_at = $2,"
			   "       amr = CASE WHEN $3 OPERATOR(pg_catalog.=) ANY (amr)"
			   "                    OR pg_catalog.cardinality(amr) OPERATOR(pg_catalog.>=) "
			   CppAsString2(STEPUP_MAX_AMR)
			   "                  THEN amr"
			   "                  ELSE amr OPERATOR(pg_catalog.||) $3 END,"
			   "       aal = pg_catalog.int2larger(aal,"
			   "                 COALESCE($4, 1::pg_catalog.int2))"
			   " WHERE id OPERATOR(pg_catalog.=) $1"
			   "   AND " SESSMGR_LIVE_SQL("", "$2")
			   " RETURNING aal",
			   4, update_types, values, nulls, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed != 1)
		SessmgrInvalidSessionId();
	{
		bool		isnull;

		new_aal = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* the audit trail: the method is the event's reason */
	actor = GetUserNameFromId(SessmgrActor(), true);
	namestrcpy(&actor_name, actor ? actor : "?");
	event_values[0] = values[0];
	event_values[2] = PointerGetDatum(method);
	event_values[3] = NameGetDatum(&actor_name);
	if (actor_user_id != NULL)
		event_values[4] = CStringGetTextDatum(actor_user_id);
	else
		event_nulls[4] = 'n';
	SessmgrRun(&event_plan,
			   "INSERT INTO sessmgr.session_events"
			   " (event, session_id, user_id, reason, actor, actor_user_id)"
			   " VALUES ('reauthenticate', $1, $2, $3, $4, $5)",
			   5, event_types, event_values, event_nulls, SPI_OK_INSERT);

	SessmgrOwnerEnd(&octx);

	/* the transaction's own session counts at once */
	SessmgrIdentityReauthenticated(&session_id, now, new_aal);

	PG_RETURN_TIMESTAMPTZ(now);
}

/* The identity's authentication age in microseconds; false without one. */
static bool
identity_age(int64 *age_usecs, int *aal)
{
	TimestampTz at;

	if (!SessmgrIdentityStepUp(&at, aal))
		return false;
	*age_usecs = GetCurrentTransactionStartTimestamp() - at;
	if (*age_usecs < 0)
		*age_usecs = 0;
	return true;
}

/*
 * sessmgr.auth_age() RETURNS interval
 *
 * Time since the current session last authenticated; NULL without one.
 */
PG_FUNCTION_INFO_V1(sessmgr_auth_age);
Datum
sessmgr_auth_age(PG_FUNCTION_ARGS)
{
	int64		age;
	int			aal;
	Interval   *result;

	if (!identity_age(&age, &aal))
		PG_RETURN_NULL();
	result = palloc0(sizeof(Interval));
	result->time = age;
	PG_RETURN_INTERVAL_P(result);
}

/*
 * sessmgr.current_aal() RETURNS integer
 *
 * The current session's assurance level: 0 when unconfirmed, NULL without
 * a session.
 */
PG_FUNCTION_INFO_V1(sessmgr_current_aal);
Datum
sessmgr_current_aal(PG_FUNCTION_ARGS)
{
	TimestampTz at;
	int			aal;

	if (!SessmgrIdentityStepUp(&at, &aal))
		PG_RETURN_NULL();
	PG_RETURN_INT32(aal);
}

/*
 * Whether the identity authenticated within max_age at level min_aal or
 * above.  *age_ok and *aal_ok say which part is missing.
 */
static bool
fresh(Interval *max_age, int32 min_aal, bool *age_ok, bool *aal_ok)
{
	int64		age;
	int			aal;

	check_aal(min_aal, "min_aal");
	if (!identity_age(&age, &aal))
	{
		*age_ok = *aal_ok = false;
		return false;
	}
	*age_ok = age <= SessmgrIntervalUsecs(max_age);
	*aal_ok = aal >= 1 && aal >= min_aal;
	return *age_ok && *aal_ok;
}

/*
 * sessmgr.is_fresh(max_age interval, min_aal integer DEFAULT 1) RETURNS boolean
 *
 * For USING and WITH CHECK: the current session authenticated within max_age
 * at level min_aal or above.  False without a session or for an unconfirmed
 * one.  Strict.
 */
PG_FUNCTION_INFO_V1(sessmgr_is_fresh);
Datum
sessmgr_is_fresh(PG_FUNCTION_ARGS)
{
	bool		age_ok;
	bool		aal_ok;

	PG_RETURN_BOOL(fresh(PG_GETARG_INTERVAL_P(0), PG_GETARG_INT32(1),
						 &age_ok, &aal_ok));
}

/*
 * sessmgr.require_fresh(max_age interval, min_aal integer DEFAULT 1)
 *	 RETURNS void
 *
 * Raise the step-up error unless is_fresh(max_age, min_aal).  SQLSTATE
 * PGRST, which PostgREST turns into HTTP 401 with the body in the message
 * and RFC 9470's WWW-Authenticate challenge in the detail (max_age in
 * seconds; acr_values when the level is what is missing).
 */
PG_FUNCTION_INFO_V1(sessmgr_require_fresh);
Datum
sessmgr_require_fresh(PG_FUNCTION_ARGS)
{
	Interval   *max_age;
	int32		min_aal;
	bool		age_ok;
	bool		aal_ok;
	int64		max_secs;
	char		acr[64];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_age and min_aal must not be null")));
	max_age = PG_GETARG_INTERVAL_P(0);
	min_aal = PG_GETARG_INT32(1);
	if (fresh(max_age, min_aal, &age_ok, &aal_ok))
		PG_RETURN_VOID();

	max_secs = SessmgrIntervalUsecs(max_age) / USECS_PER_SEC;
	if (max_secs < 0)
		max_secs = 0;
	acr[0] = '\0';
	if (!aal_ok)
		snprintf(acr, sizeof(acr), ", acr_values=\\\"aal%d\\\"", (int) min_aal);

	ereport(ERROR,
			(errcode(MAKE_SQLSTATE('P', 'G', 'R', 'S', 'T')),
			 errmsg("{\"code\":\"SM401\",\"message\":\"insufficient user authentication\","
					"\"details\":\"Authentication within %lld seconds at level %d is required.\","
					"\"hint\":\"Authenticate again and retry.\"}",
					(long long) max_secs, (int) min_aal),
			 errdetail("{\"status\":401,\"headers\":{\"WWW-Authenticate\":"
					   "\"Bearer error=\\\"insufficient_user_authentication\\\", "
					   "error_description=\\\"authentication within %lld seconds at level %d is required\\\", "
					   "max_age=%lld%s\"}}",
					   (long long) max_secs, (int) min_aal, (long long) max_secs, acr)));
	PG_RETURN_VOID();
}

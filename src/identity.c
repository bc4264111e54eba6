/*-------------------------------------------------------------------------
 *
 * identity.c
 *	  The transaction-local identity set by sessmgr.authenticate().
 *
 * The identity lives in backend memory, not in a GUC, so that no role can
 * forge it with SET or set_config(); only a successful authenticate() sets
 * it.  It is forgotten when the transaction ends, however it ends, and when
 * the subtransaction that set it aborts, so a connection shared through a
 * transaction-pooling pooler never carries one client's identity into
 * another client's transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "sessmgr.h"

static bool identity_set = false;
static int	identity_level = 0;
static char identity_user_id[SESSMGR_MAX_USER_ID_BYTES + 1];
static pg_uuid_t identity_session_id;

/* step-up (stepup.c): captured by the same probe that set the identity */
static bool identity_has_stepup = false;
static TimestampTz identity_authenticated_at;
static int	identity_aal = 0;

/*
 * The administrator acting through sessmgr_admin_api (their JWT's sub),
 * recorded as actor_user_id of the events their calls write when no
 * session identity is set.  Never an identity: current_user_id() and
 * row-level security do not see it.
 */
static bool admin_actor_set = false;
static int	admin_actor_level = 0;
static char admin_actor[SESSMGR_MAX_USER_ID_BYTES + 1];

static void
identity_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			SessmgrClearIdentity();
			break;
		default:
			break;
	}
}

static void
identity_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	if (admin_actor_set && event == SUBXACT_EVENT_ABORT_SUB &&
		admin_actor_level >= GetCurrentTransactionNestLevel())
		admin_actor_set = false;
	else if (admin_actor_set && event == SUBXACT_EVENT_COMMIT_SUB &&
			 admin_actor_level >= GetCurrentTransactionNestLevel())
		admin_actor_level = GetCurrentTransactionNestLevel() - 1;

	if (!identity_set || identity_level < GetCurrentTransactionNestLevel())
		return;

	if (event == SUBXACT_EVENT_ABORT_SUB)
		SessmgrClearIdentity();
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		identity_level = GetCurrentTransactionNestLevel() - 1;	/* now the parent's */
}

/* Register the callbacks; called once from _PG_init. */
void
SessmgrIdentityInit(void)
{
	RegisterXactCallback(identity_xact_callback, NULL);
	RegisterSubXactCallback(identity_subxact_callback, NULL);
}

void
SessmgrSetIdentity(const char *user_id, const pg_uuid_t *session_id)
{
	size_t		len = strlen(user_id);

	/* the sessions table refuses longer user ids, so this cannot happen */
	if (len > SESSMGR_MAX_USER_ID_BYTES)
		elog(ERROR, "user id too long for sessmgr identity");

	memcpy(identity_user_id, user_id, len + 1);
	identity_session_id = *session_id;
	identity_level = GetCurrentTransactionNestLevel();
	identity_set = true;
	identity_has_stepup = false;
}

/* When and at which level the identity's session last authenticated. */
void
SessmgrSetIdentityStepUp(bool known, TimestampTz authenticated_at, int aal)
{
	identity_has_stepup = known && identity_set;
	identity_authenticated_at = authenticated_at;
	identity_aal = aal;
}

/* reauthenticate() of the identity's own session counts at once */
void
SessmgrIdentityReauthenticated(const pg_uuid_t *session_id,
							   TimestampTz authenticated_at, int aal)
{
	if (identity_set && identity_has_stepup &&
		memcmp(session_id, &identity_session_id, sizeof(pg_uuid_t)) == 0)
	{
		identity_authenticated_at = authenticated_at;
		identity_aal = aal;
	}
}

/*
 * The identity's step-up state: false without an identity (or before the
 * update added the columns).
 */
bool
SessmgrIdentityStepUp(TimestampTz *authenticated_at, int *aal)
{
	if (!identity_set || !identity_has_stepup)
		return false;
	*authenticated_at = identity_authenticated_at;
	*aal = identity_aal;
	return true;
}

void
SessmgrClearIdentity(void)
{
	identity_set = false;
	identity_level = 0;
	identity_user_id[0] = '\0';
	identity_has_stepup = false;
	identity_aal = 0;
	memset(&identity_session_id, 0, sizeof(identity_session_id));
	admin_actor_set = false;
	admin_actor_level = 0;
	admin_actor[0] = '\0';
}

/*
 * The user authenticated in this transaction, else the administrator acting
 * through sessmgr_admin_api, or NULL (for the audit trail's actor_user_id).
 */
const char *
SessmgrIdentityUserId(void)
{
	if (identity_set)
		return identity_user_id;
	return admin_actor_set ? admin_actor : NULL;
}

/*
 * sessmgr.audit_actor(OUT actor name, OUT actor_user_id text)
 *
 * What the audit trail records as the actor of an event written now (for
 * the events sessmgr writes in SQL: forget_user's erased event).
 */
PG_FUNCTION_INFO_V1(sessmgr_audit_actor);
Datum
sessmgr_audit_actor(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	char	   *actor = GetUserNameFromId(SessmgrActor(), true);
	const char *actor_user_id = SessmgrIdentityUserId();
	NameData   *name = palloc0(sizeof(NameData));

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "sessmgr.audit_actor must return a record");
	namestrcpy(name, actor ? actor : "?");
	values[0] = NameGetDatum(name);
	if (actor_user_id != NULL)
		values[1] = CStringGetTextDatum(actor_user_id);
	else
		nulls[1] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/*
 * sessmgr.set_admin_actor(admin_id text) RETURNS void
 *
 * For the sessmgr_admin_api wrappers (not executable by PUBLIC): the events
 * the rest of the transaction writes name admin_id as actor_user_id, unless
 * a session identity is set; an id over 256 bytes is cut to 256.  NULL
 * or empty clears it.  Forgotten when the
 * transaction (or the subtransaction that set it) ends.
 */
PG_FUNCTION_INFO_V1(sessmgr_set_admin_actor);
Datum
sessmgr_set_admin_actor(PG_FUNCTION_ARGS)
{
	text	   *id;
	int			len;

	admin_actor_set = false;
	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	/* a longer id (a JWT's sub) is cut on a character boundary: read no more */
	id = DatumGetTextPSlice(PG_GETARG_DATUM(0), 0, SESSMGR_MAX_USER_ID_BYTES);
	len = pg_mbcliplen(VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id), SESSMGR_MAX_USER_ID_BYTES);
	if (len == 0)
		PG_RETURN_VOID();
	memcpy(admin_actor, VARDATA_ANY(id), len);
	admin_actor[len] = '\0';
	admin_actor_level = GetCurrentTransactionNestLevel();
	admin_actor_set = true;
	PG_RETURN_VOID();
}

/*
 * sessmgr.current_user_id() RETURNS text
 *
 * The user authenticated in this transaction, or NULL.
 */
PG_FUNCTION_INFO_V1(sessmgr_current_user_id);
Datum
sessmgr_current_user_id(PG_FUNCTION_ARGS)
{
	if (!identity_set)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(identity_user_id));
}

/*
 * sessmgr.current_session_id() RETURNS uuid
 *
 * The session authenticated in this transaction, or NULL.
 */
PG_FUNCTION_INFO_V1(sessmgr_current_session_id);
Datum
sessmgr_current_session_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *result;

	if (!identity_set)
		PG_RETURN_NULL();
	result = palloc(sizeof(pg_uuid_t));
	*result = identity_session_id;
	PG_RETURN_UUID_P(result);
}

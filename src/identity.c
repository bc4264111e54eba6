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

#include "access/xact.h"
#include "fmgr.h"
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
}

/* The user authenticated in this transaction, or NULL (for the audit trail). */
const char *
SessmgrIdentityUserId(void)
{
	return identity_set ? identity_user_id : NULL;
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

/*-------------------------------------------------------------------------
 *
 * sessmgr.h
 *	  Declarations shared by the sessmgr source files.
 *
 * sessmgr keeps user sessions in the table sessmgr.sessions.  The C code
 * owns the hot paths (token minting and checking, the per-user cap, the
 * audit trail) and reaches the extension's tables with the rights of their
 * owner, the way PostgreSQL's own referential-integrity triggers do, so that
 * application roles need EXECUTE on the functions and nothing else.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SESSMGR_H
#define SESSMGR_H

#include "postgres.h"

#include "access/attnum.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "parse.h"

/* limits on what a session row may hold, in bytes; the table checks them too */
#define SESSMGR_MAX_USER_ID_BYTES		256
#define SESSMGR_MAX_NAME_BYTES			256
#define SESSMGR_MAX_USER_AGENT_BYTES	2048
#define SESSMGR_MAX_METADATA_BYTES		8192
#define SESSMGR_MAX_REASON_BYTES		64

/* token.c (parsing and encoding: parse.h) */
extern void SessmgrTokenGenerate(SessmgrToken *token);
extern void SessmgrTokenNewSecret(SessmgrToken *token);
extern int64 SessmgrRandomGen(void);
extern void SessmgrTokenHash(const SessmgrToken *token, uint8 *hash);
extern bool SessmgrConstantTimeEqual(const uint8 *a, const uint8 *b, size_t len);
extern void SessmgrSha256(const uint8 *data, size_t len, uint8 *out);

/* guc.c */
typedef enum SessmgrCapPolicy
{
	SESSMGR_CAP_EVICT_OLDEST,
	SESSMGR_CAP_EVICT_IDLE,
	SESSMGR_CAP_REJECT
} SessmgrCapPolicy;

extern int	sessmgr_max_sessions;
extern int	sessmgr_cap_policy;
extern int	sessmgr_idle_timeout;
extern int	sessmgr_absolute_timeout;
extern int	sessmgr_remember_idle_timeout;
extern int	sessmgr_remember_absolute_timeout;
extern int	sessmgr_touch_interval;
extern int	sessmgr_retention;
extern int	sessmgr_event_retention;
extern int	sessmgr_pii_retention;
extern char *sessmgr_jwt_role;
extern char *sessmgr_jwt_audience;
extern char *sessmgr_jwt_issuer;
extern int	sessmgr_access_token_ttl;
extern int	sessmgr_refresh_grace;
extern int	sessmgr_trusted_proxies;
extern char *sessmgr_user_agent_regexes;
extern int	sessmgr_user_agent_cache_size;
extern char *sessmgr_geoip_database;
extern char *sessmgr_geoip_asn_database;
extern int	sessmgr_location_headers;
extern int	sessmgr_login_pair_free_failures;
extern int	sessmgr_login_account_free_failures;
extern int	sessmgr_login_address_free_failures;
extern int	sessmgr_login_first_delay;	/* ms */
extern int	sessmgr_login_max_delay;	/* ms */
extern int	sessmgr_login_failure_window;	/* s */
extern int	sessmgr_login_lockout_failures;
extern int	sessmgr_max_travel_speed;
extern int	sessmgr_suspicious_login_policy;
extern int	sessmgr_suspicious_after_failures;

/* sessmgr.suspicious_login_policy: what a suspicious login leads to (risk.c) */
typedef enum SessmgrRiskPolicy
{
	SESSMGR_RISK_POLICY_OFF,
	SESSMGR_RISK_POLICY_FLAG,
	SESSMGR_RISK_POLICY_STEP_UP
} SessmgrRiskPolicy;

/* sessmgr.location_headers: whose location headers a request's place comes from */
typedef enum SessmgrLocationHeaders
{
	SESSMGR_LOCATION_HEADERS_NONE,
	SESSMGR_LOCATION_HEADERS_CLOUDFLARE,
	SESSMGR_LOCATION_HEADERS_CLOUDFRONT
} SessmgrLocationHeaders;

extern void SessmgrDefineSettings(void);
extern void SessmgrCheckSettings(bool remember);

/* catalog.c */
typedef struct SessmgrCatalog
{
	Oid			namespace;
	Oid			sessions;
	Oid			sessions_pkey;
	Oid			owner;
	AttrNumber	att_id;
	AttrNumber	att_user_id;
	AttrNumber	att_token_hash;
	AttrNumber	att_last_active_at;
	AttrNumber	att_expires_at;
	AttrNumber	att_idle_timeout;
	AttrNumber	att_revoked_at;
	AttrNumber	att_token_gen;
	AttrNumber	att_prev_token_gen;
	AttrNumber	att_last_needed;	/* highest of the above */
	AttrNumber	att_authenticated_at;	/* step-up (stepup.c): read on demand, */
	AttrNumber	att_aal;		/* InvalidAttrNumber before the update */
} SessmgrCatalog;

typedef struct SessmgrOwnerContext
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} SessmgrOwnerContext;

typedef enum SessmgrUserLock
{
	USER_LOCK_SHARE,
	USER_LOCK_EXCLUSIVE,
	USER_LOCK_REVOKE
} SessmgrUserLock;

extern void SessmgrCatalogInit(void);
extern const SessmgrCatalog *SessmgrGetCatalog(void);
extern void SessmgrEnterOwnerMode(SessmgrOwnerContext *ctx);
extern void SessmgrLeaveOwnerMode(SessmgrOwnerContext *ctx);
extern void SessmgrOwnerBegin(SessmgrOwnerContext *ctx);
extern void SessmgrOwnerEnd(SessmgrOwnerContext *ctx);
extern Oid	SessmgrActor(void);
extern uint64 SessmgrRun(SPIPlanPtr *plan, const char *sql, int nargs,
						 const Oid *argtypes, Datum *values, const char *nulls,
						 int expected);
extern uint64 SessmgrRunAsOwner(SPIPlanPtr *plan, const char *sql, int nargs,
								const Oid *argtypes, Datum *values,
								const char *nulls, int expected);

/* args.c */
extern void SessmgrCheckText(Datum value, const char *what, int max_bytes);
extern text *SessmgrCheckUserId(FunctionCallInfo fcinfo, int argno, bool allow_empty,
								const char *hint);

/* subxact.c */
extern ErrorData *SessmgrTryInSubtransaction(void (*fn) (void *arg), void *arg);

/* throttle.c: failed logins, their delays and the account lock */
extern int	SessmgrThrottleBeforeIssue(Datum user_id, inet *ip);
extern void SessmgrThrottleAfterIssue(Datum user_id, inet *ip, int failures);
extern bool SessmgrThrottleCleanup(int64 batch_rows, Datum *cursor, int64 *removed);

/*
 * The live-session rule in sessmgr's own SQL: a call of the SQL function
 * sessmgr.session_is_live() (written once, in the install script) on the
 * columns of the sessions row alias a, at time at.
 */
#define SESSMGR_LIVE_SQL(a, at) \
	"sessmgr.session_is_live(" a "revoked_at, " a "expires_at, " \
	a "last_active_at, " a "idle_timeout, " at ")"

/* session.c */
typedef struct SessmgrSessionRow
{
	pg_uuid_t	id;
	char		user_id[SESSMGR_MAX_USER_ID_BYTES + 1];
	bool		has_hash;
	uint8		token_hash[SESSMGR_HASH_LEN];
	bool		revoked;
	TimestampTz expires_at;
	TimestampTz last_active_at;
	int64		idle_usecs;
	int64		token_gen;
	bool		has_prev_gen;
	int64		prev_token_gen;
	/* step-up columns: read only when want_stepup is set before the fetch */
	bool		want_stepup;
	bool		has_stepup;
	TimestampTz authenticated_at;
	int			aal;
} SessmgrSessionRow;

extern bool SessmgrFetchSession(const pg_uuid_t *id, SessmgrSessionRow *row);
extern bool SessmgrFetchSessionForQuery(FunctionCallInfo fcinfo, const pg_uuid_t *id,
										SessmgrSessionRow *row);
extern int64 SessmgrIntervalUsecs(const Interval *interval);
extern bool SessmgrSessionIsLive(TimestampTz now, bool revoked, TimestampTz expires_at,
								 TimestampTz last_active_at, int64 idle_usecs);
extern bool SessmgrSessionRowIsLive(const SessmgrSessionRow *row, TimestampTz now);
extern void SessmgrLockUserRow(Datum *values, SessmgrUserLock mode);
extern void SessmgrInvalidSessionId(void) pg_attribute_noreturn();
extern bool SessmgrReadSessionOwner(Datum session_id, text *user_id, TimestampTz now,
									Datum *owner);
extern bool SessmgrTouchIfDue(const SessmgrSessionRow *row, TimestampTz now);

/* triggers.c */
extern bool SessmgrLoadingByCopy(Relation rel);

/* result.c */
extern TupleDesc SessmgrResultDesc(int natts, const char *const *names,
								   const Oid *types);
extern void SessmgrBeginResult(FunctionCallInfo fcinfo);
extern void SessmgrReturnRow(FunctionCallInfo fcinfo, TupleDesc desc,
							 Datum *values, bool *nulls);

/* jwt.c */
#define JWT_MAX_LEN			8192	/* longest access token or claims we read */

/*
 * Outside a UTF8 database the JSON lexer raises an error for a \u escape it
 * cannot convert to the database encoding: refuse such escapes beforehand.
 */
#define JSON_ASCII_ESCAPES_ONLY	(GetDatabaseEncoding() != PG_UTF8)


/* an access token's step-up claims (auth_time, aal, amr; stepup.c) */
typedef struct SessmgrStepUpClaims
{
	TimestampTz auth_time;
	int			aal;
	const char *amr_json;		/* a JSON array of strings */
} SessmgrStepUpClaims;

extern void SessmgrJwtInit(void);
extern char *SessmgrJwtSign(const char *user_id, const pg_uuid_t *session_id,
							int64 token_gen, TimestampTz session_expires_at,
							const SessmgrStepUpClaims *stepup,
							TimestampTz *expires_at);
extern char *SessmgrJwtVerify(const char *s, int len, JwtFields *claims,
							  SessmgrSessionRow *row);

/* refresh.c */
extern bool SessmgrGenWasRetired(const pg_uuid_t *id, int64 gen);

/* useragent.c: what a person recognises a device by (NULL fields: unknown) */
typedef struct SessmgrDevice
{
	char	   *browser;
	char	   *browser_version;
	char	   *os;
	char	   *os_version;
	char	   *device;
	char	   *device_type;	/* desktop, mobile, tablet, bot or other */
	char	   *label;			/* "Chrome 120 on Windows" */
} SessmgrDevice;

extern bool SessmgrDescribeUserAgent(const char *user_agent, int len, Jsonb *client_hints,
									 SessmgrDevice *device);

/* geoip.c: where an address is (NULL fields, -1 numbers: unknown) */
typedef struct SessmgrPlace
{
	char	   *country_code;
	char	   *country;
	char	   *region;
	char	   *city;
	bool		has_coordinates;
	double		latitude;
	double		longitude;
	int			accuracy_radius_km;
	int64		asn;
	char	   *as_organization;
	char	   *time_zone;		/* IANA name, from the database's location */
} SessmgrPlace;

extern void SessmgrGeolocate(const inet *ip, SessmgrPlace *place);
extern void SessmgrLocateRequest(const inet *ip, SessmgrPlace *place);

/* devices.c */
extern void SessmgrTextParam(Datum *values, char *nulls, int i, const char *s);
extern const Oid SessmgrDevicePlaceTypes[12];
extern void SessmgrDevicePlaceParams(const SessmgrDevice *device, const SessmgrPlace *place,
									 Datum *values, char *nulls, int first);
extern void SessmgrDeriveDevicePlace(text *user_agent, inet *ip, Jsonb *client_hints,
									 SessmgrDevice *device, SessmgrPlace *place);

/* risk.c: suspicious logins, judged at issue() */
typedef struct SessmgrRisk SessmgrRisk;

extern SessmgrRisk *SessmgrRiskAssess(Datum user_id, const SessmgrDevice *device,
									  const SessmgrPlace *place, text *device_cookie,
									  int login_failures, TimestampTz now);
extern Datum SessmgrRiskReasons(const SessmgrRisk *risk);
extern int	SessmgrRiskAal(const SessmgrRisk *risk);
extern void SessmgrRiskRecord(SessmgrRisk *risk, Datum user_id, const pg_uuid_t *session_id,
							  inet *ip, const SessmgrDevice *device, const SessmgrPlace *place);
extern bool SessmgrRiskCleanup(TimestampTz before, int64 batch_rows, text **cursor);

/* privacy.c: minimisation, run by cleanup between its own batches */
typedef struct SessmgrBatching
{
	void		(*next_batch) (void *run);	/* commit this batch, start the next */
	void	   *run;
	const int64 *batch_rows;	/* rows the next batch may examine */
} SessmgrBatching;

extern int64 SessmgrMinimisePersonalData(SessmgrBatching *batching);
extern bool SessmgrMinimisingSessions(void);

/* identity.c */
extern void SessmgrIdentityInit(void);
extern void SessmgrSetIdentity(const char *user_id, const pg_uuid_t *session_id);
extern void SessmgrSetIdentityStepUp(bool known, TimestampTz authenticated_at, int aal);
extern void SessmgrIdentityReauthenticated(const pg_uuid_t *session_id,
										   TimestampTz authenticated_at, int aal);
extern bool SessmgrIdentityStepUp(TimestampTz *authenticated_at, int *aal);
extern void SessmgrClearIdentity(void);
extern const char *SessmgrIdentityUserId(void);

#endif							/* SESSMGR_H */

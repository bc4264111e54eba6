/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The sessmgr.* settings.
 *
 * Every setting that decides how long a session lives or how many a user may
 * hold is PGC_SUSET: an application role cannot loosen them with SET.
 * Defaults follow NIST SP 800-63B rev. 4: an ordinary session meets AAL2
 * (24 hours absolute, 1 hour idle), a remembered device AAL1 (30 days
 * absolute, 7 days idle).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "sessmgr.h"

#define SECS_PER_DAY_INT	86400
#define MAX_LIFETIME_SECS	(366 * SECS_PER_DAY_INT)

int			sessmgr_max_sessions = 15;
int			sessmgr_cap_policy = SESSMGR_CAP_EVICT_OLDEST;
int			sessmgr_idle_timeout = 3600;
int			sessmgr_absolute_timeout = SECS_PER_DAY_INT;
int			sessmgr_remember_idle_timeout = 7 * SECS_PER_DAY_INT;
int			sessmgr_remember_absolute_timeout = 30 * SECS_PER_DAY_INT;
int			sessmgr_touch_interval = 60;
int			sessmgr_retention = 7 * SECS_PER_DAY_INT;
int			sessmgr_event_retention = 90 * SECS_PER_DAY_INT;
int			sessmgr_pii_retention = 30 * SECS_PER_DAY_INT;
char	   *sessmgr_jwt_role = NULL;
char	   *sessmgr_jwt_audience = NULL;
char	   *sessmgr_jwt_issuer = NULL;
int			sessmgr_access_token_ttl = 900;
int			sessmgr_refresh_grace = 10;
int			sessmgr_trusted_proxies = 0;
char	   *sessmgr_user_agent_regexes = NULL;
int			sessmgr_user_agent_cache_size = 4096;
char	   *sessmgr_geoip_database = NULL;
char	   *sessmgr_geoip_asn_database = NULL;
int			sessmgr_location_headers = SESSMGR_LOCATION_HEADERS_NONE;
int			sessmgr_login_pair_free_failures = 5;
int			sessmgr_login_account_free_failures = 20;
int			sessmgr_login_address_free_failures = 100;
int			sessmgr_login_first_delay = 1000;
int			sessmgr_login_max_delay = 15 * 60 * 1000;
int			sessmgr_login_failure_window = 12 * 3600;
int			sessmgr_login_lockout_failures = 100;
int			sessmgr_max_travel_speed = 900;
int			sessmgr_suspicious_login_policy = SESSMGR_RISK_POLICY_FLAG;
int			sessmgr_suspicious_after_failures = 10;

static const struct config_enum_entry suspicious_login_policy_options[] = {
	{"off", SESSMGR_RISK_POLICY_OFF, false},
	{"flag", SESSMGR_RISK_POLICY_FLAG, false},
	{"step_up", SESSMGR_RISK_POLICY_STEP_UP, false},
	{NULL, 0, false}
};

static const struct config_enum_entry cap_policy_options[] = {
	{"evict_oldest", SESSMGR_CAP_EVICT_OLDEST, false},
	{"evict_idle", SESSMGR_CAP_EVICT_IDLE, false},
	{"reject", SESSMGR_CAP_REJECT, false},
	{NULL, 0, false}
};

/*
 * When a superuser SETs an idle timeout in a session, refuse one longer than
 * the absolute lifetime of the same kind of session.  Values from files and
 * ALTER SYSTEM/DATABASE/ROLE ... SET (checked with PGC_S_TEST) are applied
 * one at a time in no useful order, so for those the pair is checked when a
 * session is issued (SessmgrCheckSettings).
 */
static bool
check_pair(int idle, int absolute, GucSource source,
		   const char *idle_name, const char *absolute_name)
{
	if (source != PGC_S_SESSION || idle <= absolute)
		return true;

	GUC_check_errdetail("%s must not be longer than %s.", idle_name, absolute_name);
	return false;
}

static bool
check_idle_timeout(int *newval, void **extra, GucSource source)
{
	return check_pair(*newval, sessmgr_absolute_timeout, source,
					  "sessmgr.idle_timeout", "sessmgr.absolute_timeout");
}

static bool
check_absolute_timeout(int *newval, void **extra, GucSource source)
{
	return check_pair(sessmgr_idle_timeout, *newval, source,
					  "sessmgr.idle_timeout", "sessmgr.absolute_timeout");
}

static bool
check_remember_idle_timeout(int *newval, void **extra, GucSource source)
{
	return check_pair(*newval, sessmgr_remember_absolute_timeout, source,
					  "sessmgr.remember_idle_timeout",
					  "sessmgr.remember_absolute_timeout");
}

static bool
check_remember_absolute_timeout(int *newval, void **extra, GucSource source)
{
	return check_pair(sessmgr_remember_idle_timeout, *newval, source,
					  "sessmgr.remember_idle_timeout",
					  "sessmgr.remember_absolute_timeout");
}

/* A role name for the role claim: not empty, fits in a name. */
static bool
check_jwt_role(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0' || strlen(*newval) >= NAMEDATALEN)
	{
		GUC_check_errdetail("sessmgr.jwt_role must be a role name.");
		return false;
	}
	return true;
}

/* An audience or issuer: empty (not checked) or a short string. */
static bool
check_claim_value(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strlen(*newval) > 256)
	{
		GUC_check_errdetail("The value is limited to 256 bytes.");
		return false;
	}
	return true;
}

/* '' (shown for none) and none: no location headers are read */
static const struct config_enum_entry location_headers_options[] = {
	{"", SESSMGR_LOCATION_HEADERS_NONE, true},
	{"none", SESSMGR_LOCATION_HEADERS_NONE, false},
	{"cloudflare", SESSMGR_LOCATION_HEADERS_CLOUDFLARE, false},
	{"cloudfront", SESSMGR_LOCATION_HEADERS_CLOUDFRONT, false},
	{NULL, 0, false}
};

/* A file name: empty (none) or a path that fits in MAXPGPATH. */
static bool
check_file_path(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strlen(*newval) >= MAXPGPATH)
	{
		GUC_check_errdetail("The file name is limited to %d bytes.", MAXPGPATH - 1);
		return false;
	}
	return true;
}

/* The rules file: empty (no parsing) or a path that fits in MAXPGPATH. */
static bool
check_user_agent_regexes(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strlen(*newval) >= MAXPGPATH)
	{
		GUC_check_errdetail("The file name is limited to %d bytes.", MAXPGPATH - 1);
		return false;
	}
	return true;
}

/*
 * When a superuser SETs the delays of failed logins in a session, refuse a
 * first delay longer than the maximum (from files, as for the timeouts, the
 * maximum simply caps every delay).
 */
static bool
check_login_first_delay(int *newval, void **extra, GucSource source)
{
	return check_pair(*newval, sessmgr_login_max_delay, source,
					  "sessmgr.login_first_delay", "sessmgr.login_max_delay");
}

static bool
check_login_max_delay(int *newval, void **extra, GucSource source)
{
	return check_pair(sessmgr_login_first_delay, *newval, source,
					  "sessmgr.login_first_delay", "sessmgr.login_max_delay");
}

/* Define the settings; called once from _PG_init. */
void
SessmgrDefineSettings(void)
{
	DefineCustomIntVariable("sessmgr.max_sessions",
							"Maximum number of active sessions per user.",
							NULL,
							&sessmgr_max_sessions,
							15, 1, 10000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("sessmgr.cap_policy",
							 "What issuing a session beyond sessmgr.max_sessions does.",
							 "evict_oldest revokes the oldest session, evict_idle the least "
							 "recently active one, reject refuses the new session.",
							 &sessmgr_cap_policy,
							 SESSMGR_CAP_EVICT_OLDEST, cap_policy_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.idle_timeout",
							"A session ends after this long without activity.",
							NULL,
							&sessmgr_idle_timeout,
							3600, 1, MAX_LIFETIME_SECS,
							PGC_SUSET, GUC_UNIT_S,
							check_idle_timeout, NULL, NULL);

	DefineCustomIntVariable("sessmgr.absolute_timeout",
							"A session ends this long after it was issued, whatever its activity.",
							NULL,
							&sessmgr_absolute_timeout,
							SECS_PER_DAY_INT, 1, MAX_LIFETIME_SECS,
							PGC_SUSET, GUC_UNIT_S,
							check_absolute_timeout, NULL, NULL);

	DefineCustomIntVariable("sessmgr.remember_idle_timeout",
							"Idle timeout of a session issued with remember => true.",
							NULL,
							&sessmgr_remember_idle_timeout,
							7 * SECS_PER_DAY_INT, 1, MAX_LIFETIME_SECS,
							PGC_SUSET, GUC_UNIT_S,
							check_remember_idle_timeout, NULL, NULL);

	DefineCustomIntVariable("sessmgr.remember_absolute_timeout",
							"Absolute lifetime of a session issued with remember => true.",
							NULL,
							&sessmgr_remember_absolute_timeout,
							30 * SECS_PER_DAY_INT, 1, MAX_LIFETIME_SECS,
							PGC_SUSET, GUC_UNIT_S,
							check_remember_absolute_timeout, NULL, NULL);

	DefineCustomIntVariable("sessmgr.touch_interval",
							"Minimum time between two writes of a session's last activity.",
							"Validation within this interval of the last recorded activity "
							"writes nothing.",
							&sessmgr_touch_interval,
							60, 0, SECS_PER_DAY_INT,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.retention",
							"How long ended sessions are kept before cleanup removes them.",
							"Ended sessions are kept for audit and for refresh-token reuse "
							"detection.",
							&sessmgr_retention,
							7 * SECS_PER_DAY_INT, 0, 10 * MAX_LIFETIME_SECS,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.event_retention",
							"How long audit events are kept before cleanup removes them.",
							NULL,
							&sessmgr_event_retention,
							90 * SECS_PER_DAY_INT, 0, 10 * MAX_LIFETIME_SECS,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	/*
	 * Minimisation (privacy.c) can only apply to what is still kept: with
	 * pii_retention >= event_retention events are deleted whole before they
	 * would be minimised, which is allowed (docs/privacy.md).
	 */
	DefineCustomIntVariable("sessmgr.pii_retention",
							"How long addresses, places and user agents of ended sessions and events are kept in full.",
							"After it cleanup cuts addresses to their network (IPv4 /24, IPv6 /48), places to "
							"the country and user agents to their label.",
							&sessmgr_pii_retention,
							30 * SECS_PER_DAY_INT, 0, 10 * MAX_LIFETIME_SECS,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("sessmgr.jwt_role",
							   "The role claim of access tokens: the database role PostgREST switches to.",
							   NULL,
							   &sessmgr_jwt_role,
							   "authenticated",
							   PGC_SUSET, 0,
							   check_jwt_role, NULL, NULL);

	DefineCustomIntVariable("sessmgr.access_token_ttl",
							"Lifetime of access tokens.",
							"An access token never outlives its session's absolute lifetime.",
							&sessmgr_access_token_ttl,
							900, 1, SECS_PER_DAY_INT,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("sessmgr.jwt_audience",
							   "The aud claim of access tokens; when set, verification requires it.",
							   NULL,
							   &sessmgr_jwt_audience,
							   "",
							   PGC_SUSET, 0,
							   check_claim_value, NULL, NULL);

	DefineCustomStringVariable("sessmgr.jwt_issuer",
							   "The iss claim of access tokens; when set, verification requires it.",
							   NULL,
							   &sessmgr_jwt_issuer,
							   "",
							   PGC_SUSET, 0,
							   check_claim_value, NULL, NULL);

	DefineCustomIntVariable("sessmgr.refresh_grace",
							"How long the immediately previous session token can still be refreshed.",
							"Lets two tabs that refresh at the same time both succeed.",
							&sessmgr_refresh_grace,
							10, 0, 300,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.trusted_proxies",
							"Number of reverse proxies in front of PostgREST that append to X-Forwarded-For.",
							"The client address of a request is the hop that many places from the "
							"right; 0 records no address.",
							&sessmgr_trusted_proxies,
							0, 0, 16,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("sessmgr.geoip_database",
							   "MaxMind DB file (GeoIP2 City or Country layout) that places addresses.",
							   "Empty: no lookups. A relative path is relative to the data directory. "
							   "The file is mapped once per backend and again when it is replaced.",
							   &sessmgr_geoip_database,
							   "",
							   PGC_SUSET, 0,
							   check_file_path, NULL, NULL);

	DefineCustomStringVariable("sessmgr.geoip_asn_database",
							   "MaxMind DB file (GeoLite2 ASN layout) that gives an address's autonomous system.",
							   "Empty: no lookups.",
							   &sessmgr_geoip_asn_database,
							   "",
							   PGC_SUSET, 0,
							   check_file_path, NULL, NULL);

	DefineCustomEnumVariable("sessmgr.location_headers",
							 "Take a request's place from the location headers of this CDN.",
							 "cloudflare or cloudfront; read only when sessmgr.trusted_proxies > 0.",
							 &sessmgr_location_headers,
							 SESSMGR_LOCATION_HEADERS_NONE, location_headers_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("sessmgr.user_agent_regexes",
							   "uap-core's regexes.yaml: the rules sessmgr.parse_user_agent applies.",
							   "Empty: no parsing. Read on a backend's first parse, and again when the "
							   "file is replaced.",
							   &sessmgr_user_agent_regexes,
							   "/usr/share/uap-core/regexes.yaml",
							   PGC_SUSET, 0,
							   check_user_agent_regexes, NULL, NULL);

	DefineCustomIntVariable("sessmgr.user_agent_cache_size",
							"Parsed user agents each backend remembers.",
							"0 turns the cache off.",
							&sessmgr_user_agent_cache_size,
							4096, 0, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	/* suspicious logins (risk.c, docs/protecting-accounts.md) */
	DefineCustomEnumVariable("sessmgr.suspicious_login_policy",
							 "What a suspicious login leads to.",
							 "off: no checks; flag: record and announce it; step_up: also "
							 "start the session unconfirmed (aal 0) until it re-authenticates.",
							 &sessmgr_suspicious_login_policy,
							 SESSMGR_RISK_POLICY_FLAG, suspicious_login_policy_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.max_travel_speed",
							"Fastest plausible travel between two logins, in km/h.",
							"Faster (after subtracting both places' accuracy radii) is "
							"impossible_travel.",
							&sessmgr_max_travel_speed,
							900, 1, 100000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.suspicious_after_failures",
							"Recent failed attempts on an account that make its next login "
							"suspicious (after_failures).",
							"0 turns the check off.",
							&sessmgr_suspicious_after_failures,
							10, 0, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	/*
	 * Failed logins (throttle.c, docs/protecting-accounts.md).  The free
	 * allowances let a person mistype a few times without a delay; the pair
	 * (one account from one network) is the tightest because that is where a
	 * guesser works, the account's allows for its owner on several devices,
	 * the address's for many people behind one NAT.  Delays double from the
	 * first up to the maximum; NIST SP 800-63B limits consecutive failures
	 * on an account to at most 100, hence the lockout's range.
	 */
	DefineCustomIntVariable("sessmgr.login_pair_free_failures",
							"Failed logins on one account from one network before delays start.",
							"A network is an IPv4 address or an IPv6 /64.",
							&sessmgr_login_pair_free_failures,
							5, 0, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.login_account_free_failures",
							"Failed logins on one account from anywhere before delays start.",
							NULL,
							&sessmgr_login_account_free_failures,
							20, 0, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.login_address_free_failures",
							"Failed logins from one network across accounts before delays start.",
							"Counts credential stuffing: one network trying many accounts.",
							&sessmgr_login_address_free_failures,
							100, 0, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.login_first_delay",
							"Delay after the first failed login beyond a free allowance.",
							"Each further failure doubles it, up to sessmgr.login_max_delay; "
							"0 turns delays off.",
							&sessmgr_login_first_delay,
							1000, 0, 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS,
							check_login_first_delay, NULL, NULL);

	DefineCustomIntVariable("sessmgr.login_max_delay",
							"Longest delay between failed logins.",
							NULL,
							&sessmgr_login_max_delay,
							15 * 60 * 1000, 0, SECS_PER_DAY_INT * 1000,
							PGC_SUSET, GUC_UNIT_MS,
							check_login_max_delay, NULL, NULL);

	DefineCustomIntVariable("sessmgr.login_failure_window",
							"Failed logins are forgotten this long after a key's last one.",
							"A locked account's are kept until sessmgr.unlock_account.",
							&sessmgr_login_failure_window,
							12 * 3600, 1, 30 * SECS_PER_DAY_INT,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sessmgr.login_lockout_failures",
							"Consecutive failed logins that lock an account until sessmgr.unlock_account.",
							"At most 100 (NIST SP 800-63B).",
							&sessmgr_login_lockout_failures,
							100, 1, 100,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("sessmgr");
}

/*
 * Refuse to issue a session under contradictory settings for its kind
 * (remembered or not): an idle timeout longer than the absolute lifetime, or
 * a touch interval so long that an active session would idle out between two
 * recorded activities.
 */
void
SessmgrCheckSettings(bool remember)
{
	int			idle = remember ? sessmgr_remember_idle_timeout : sessmgr_idle_timeout;
	int			absolute = remember ? sessmgr_remember_absolute_timeout : sessmgr_absolute_timeout;

	if (idle > absolute)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 remember ?
				 errmsg("sessmgr.remember_idle_timeout must not be longer than sessmgr.remember_absolute_timeout") :
				 errmsg("sessmgr.idle_timeout must not be longer than sessmgr.absolute_timeout"),
				 errhint("Ask a superuser to correct the sessmgr settings.")));

	if (sessmgr_touch_interval >= idle)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sessmgr.touch_interval must be shorter than the idle timeouts"),
				 errhint("Ask a superuser to correct the sessmgr settings.")));
}

/*-------------------------------------------------------------------------
 *
 * useragent.h
 *	  User agents: uap-core's rules (uarules.c) and what sessmgr makes of
 *	  their answer, refined by User-Agent Client Hints (uadevice.c).
 *
 * uarules.c and uadevice.c read attacker-controlled text and use nothing
 * from the backend, only libc, libyaml and PCRE2, so the same files are
 * compiled into the extension and into the fuzz harnesses under fuzz/.
 * Nothing in them raises: bad input gives "Other", a bad rules file an error
 * message.  Include postgres.h (or postgres_fe.h) first.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SESSMGR_USERAGENT_H
#define SESSMGR_USERAGENT_H

/* longest user agent parsed (the column limit); a longer one is "Other" */
#define UAP_MAX_INPUT		2048
/* longest field of a result, in bytes; longer ones are cut */
#define UAP_FIELD_MAX		255

/*
 * The fields of uap-core's answer, as its test suites name them: the user
 * agent (user_agent_parsers), the OS (os_parsers), the device
 * (device_parsers).
 */
typedef enum UapField
{
	UAP_UA_FAMILY,
	UAP_UA_MAJOR,
	UAP_UA_MINOR,
	UAP_UA_PATCH,
	UAP_OS_FAMILY,
	UAP_OS_MAJOR,
	UAP_OS_MINOR,
	UAP_OS_PATCH,
	UAP_OS_PATCH_MINOR,
	UAP_DEVICE_FAMILY,
	UAP_DEVICE_BRAND,
	UAP_DEVICE_MODEL,
	UAP_NFIELDS
} UapField;

/* uap-core's answer: each field NULL or a string in buf (UapGet) */
typedef struct UapResult
{
	int16		off[UAP_NFIELDS];	/* offset in buf, -1 for NULL */
	int			used;
	bool		gave_up;		/* the match effort ran out on this input */
	char		buf[UAP_NFIELDS * (UAP_FIELD_MAX + 1)];
} UapResult;

static inline const char *
UapGet(const UapResult *result, UapField field)
{
	return result->off[field] < 0 ? NULL : result->buf + result->off[field];
}

typedef struct UapRules UapRules;

/* what a loaded rule set has done so far */
typedef struct UapRulesStats
{
	int			rules;			/* expressions in the file */
	int			unfiltered;		/* ... without a literal to prefilter them by */
	int			compiled;		/* ... compiled so far */
	int			broken;			/* ... PCRE2 refused */
} UapRulesStats;

extern UapRules *UapRulesLoad(const char *yaml, size_t len, char *err, size_t errlen);
extern void UapRulesFree(UapRules *rules);
extern void UapRulesGetStats(const UapRules *rules, UapRulesStats *stats);
extern void UapParse(UapRules *rules, const char *ua, size_t len, UapResult *result);
extern void UapParseUnfiltered(UapRules *rules, const char *ua, size_t len,
							   UapResult *result);
extern void UapResultOther(UapResult *result);

/*
 * User-Agent Client Hints, parsed from the structured-header values of
 * Sec-CH-UA, Sec-CH-UA-Mobile, Sec-CH-UA-Platform and
 * Sec-CH-UA-Platform-Version (RFC 8941).  A header that does not parse is
 * ignored as a whole, as RFC 8941 says.
 */
#define UA_HINT_TEXT_MAX	64
#define UA_HINT_VALUE_MAX	1024	/* a longer header value is ignored */

typedef enum UaHintHeader
{
	UA_HINT_BRANDS,				/* sec-ch-ua */
	UA_HINT_MOBILE,				/* sec-ch-ua-mobile */
	UA_HINT_PLATFORM,			/* sec-ch-ua-platform */
	UA_HINT_PLATFORM_VERSION,	/* sec-ch-ua-platform-version */
	UA_NHINTS
} UaHintHeader;

extern const char *const UaHintHeaderNames[UA_NHINTS];

typedef struct UaHints
{
	/* sec-ch-ua: the first brand that is not GREASE or "Chromium" */
	char		brand[UA_HINT_TEXT_MAX + 1];	/* empty if none */
	char		brand_version[UA_HINT_TEXT_MAX + 1];	/* its v, or empty */
	int			mobile;			/* sec-ch-ua-mobile: 1, 0, or -1 if absent */
	char		platform[UA_HINT_TEXT_MAX + 1]; /* empty if absent */
	int			nversion;		/* parts of the platform version, 0 if absent */
	int			version[3];
} UaHints;

extern void UaHintsInit(UaHints *hints);
extern void UaHintsSet(UaHints *hints, UaHintHeader header, const char *value, size_t len);
extern int	UaHintsKey(const UaHints *hints, char *out, size_t outlen);

/* what a person and a listing read about a user agent */
#define UA_DEVICE_TEXT_MAX	(2 * UAP_FIELD_MAX + 64)

typedef struct UaDevice
{
	bool		known;			/* false: no answer at all (no rules); all NULL */
	char		browser[UAP_FIELD_MAX + 1];
	char		browser_version[UA_DEVICE_TEXT_MAX + 1];	/* "" is NULL */
	char		os[UAP_FIELD_MAX + 1];
	char		os_version[UA_DEVICE_TEXT_MAX + 1];	/* "" is NULL */
	char		device[UAP_FIELD_MAX + 1];
	const char *device_type;	/* desktop, mobile, tablet, bot, other */
	char		label[UA_DEVICE_TEXT_MAX + 1];	/* "" is NULL */
} UaDevice;

extern void UaDescribe(const UapResult *uap, const char *ua, size_t len,
					   const UaHints *hints, UaDevice *device);

#endif							/* SESSMGR_USERAGENT_H */

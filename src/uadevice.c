/*-------------------------------------------------------------------------
 *
 * uadevice.c
 *	  What sessmgr makes of uap-core's answer: User-Agent Client Hints,
 *	  the device type and the label a person reads.
 *
 * The client hints are the structured-header values (RFC 8941) of
 * Sec-CH-UA, Sec-CH-UA-Mobile, Sec-CH-UA-Platform and
 * Sec-CH-UA-Platform-Version as the browser sent them.  They are untrusted:
 * every value is parsed strictly and a header that does not parse, or is
 * longer than UA_HINT_VALUE_MAX, is ignored as a whole.
 *
 * The rules (docs/devices.md says the same for people):
 *
 * Refinement by client hints
 *	- browser: when uap-core says Chrome, Chrome Mobile or Chromium, the
 *	  first brand of Sec-CH-UA that is neither GREASE ("Not=A?Brand" and
 *	  its kin) nor "Chromium" names the browser, unless it is "Google
 *	  Chrome": "Microsoft Edge" is Edge (Edge Mobile), "Opera" Opera (Opera
 *	  Mobile), "Brave", "Vivaldi", "Yandex"/"YaBrowser" (Yandex Browser) and
 *	  "Samsung Internet" are uap-core's names, any other brand is taken as
 *	  sent; its v parameter is then the browser version.
 *	- os_version: only when Sec-CH-UA-Platform names the OS uap-core found
 *	  ("Windows", "macOS" for Mac OS X, "Android"), from
 *	  Sec-CH-UA-Platform-Version.  Windows: the user agent must carry the
 *	  frozen "Windows NT 10.0"; platform version 13 and above is 11, 1 to 12
 *	  is 10, 0.1 7, 0.2 8 and 0.3 8.1.  macOS and Android: the version as
 *	  sent.
 *
 * device_type, the first that applies
 *	- bot: uap-core's device family is Spider (its bot patterns);
 *	- other: a television (a device family with "TV" in it, brand
 *	  Generic_Inettv);
 *	- mobile: Sec-CH-UA-Mobile is ?1;
 *	- tablet: the device family is iPad, Kindle or a tablet by uap-core
 *	  (brand Generic_Android_Tablet, family Generic Tablet), or the OS is
 *	  Android and the user agent is a browser's ("Mozilla/") without the
 *	  "Mobile" token, or Android with Sec-CH-UA-Mobile ?0;
 *	- mobile: the device family is iPhone, iPod, Generic Smartphone or
 *	  Generic Feature Phone, or the OS is a phone OS (iOS, Android, Windows
 *	  Phone, BlackBerry OS, KaiOS, Symbian, ...);
 *	- desktop: the OS is a desktop OS (Windows, Mac OS X, Linux and its
 *	  distributions, Chrome OS, the BSDs, Solaris);
 *	- other: everything else (tools, libraries, TVs, consoles, unknown).
 *
 * label
 *	- browser part: the browser family and the first part of its version
 *	  ("Chrome 120"); without an OS part (tools, libraries, bots) the first
 *	  two parts, the second left out when it is 0 ("curl 8.4"); nothing
 *	  when the browser is Other.
 *	- OS part: the OS family, "macOS" for Mac OS X, and the first two parts
 *	  of its version, the second left out when it is 0 ("iOS 17.1",
 *	  "Android 14"); no version when it is frozen and no client hint gave
 *	  the real one: Windows 10 ("Windows NT 10.0" is also Windows 11), Mac
 *	  OS X 10.15 (every macOS since), Android 10 with device model K (the
 *	  reduced user agent), and never for Chrome OS (a build number); nothing
 *	  when the OS is Other.
 *	- "<browser part> on <OS part>", or the part there is; with neither,
 *	  the device family unless it is Other; otherwise NULL.
 *
 * Nothing here raises or reads past the given lengths; the fuzz harness
 * fuzz_client_hints runs it under ASan/UBSan.
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <ctype.h>

#include "useragent.h"

#define UA_MAX_BRANDS		16	/* more members and Sec-CH-UA is ignored */

const char *const UaHintHeaderNames[UA_NHINTS] = {
	"sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform", "sec-ch-ua-platform-version"
};

/* ---- RFC 8941 structured field values ---- */

typedef struct SfParser
{
	const char *p;
	const char *end;
} SfParser;

static void
sf_skip_sp(SfParser *sf)
{
	while (sf->p < sf->end && *sf->p == ' ')
		sf->p++;
}

static void
sf_skip_ows(SfParser *sf)
{
	while (sf->p < sf->end && (*sf->p == ' ' || *sf->p == '\t'))
		sf->p++;
}

/* sf-string into out (at most outmax bytes plus NUL; NULL: skip it); false if malformed or too long. */
static bool
sf_string(SfParser *sf, char *out, size_t outmax)
{
	size_t		n = 0;

	if (sf->p >= sf->end || *sf->p != '"')
		return false;
	sf->p++;
	while (sf->p < sf->end)
	{
		unsigned char c = (unsigned char) *sf->p++;

		if (c == '"')
		{
			if (out != NULL)
				out[n] = '\0';
			return true;
		}
		if (c == '\\')
		{
			if (sf->p >= sf->end || (*sf->p != '"' && *sf->p != '\\'))
				return false;
			c = (unsigned char) *sf->p++;
		}
		else if (c < 0x20 || c > 0x7E)
			return false;
		if (out != NULL)
		{
			if (n >= outmax)
				return false;
			out[n++] = (char) c;
		}
	}
	return false;				/* no closing quote */
}

static bool
is_tchar(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A bare item (string, token, number, boolean, byte sequence), skipped. */
static bool
sf_bare_item(SfParser *sf)
{
	unsigned char c;

	if (sf->p >= sf->end)
		return false;
	c = (unsigned char) *sf->p;
	if (c == '"')
		return sf_string(sf, NULL, 0);
	if (c == '?')
	{
		if (sf->p + 1 >= sf->end || (sf->p[1] != '0' && sf->p[1] != '1'))
			return false;
		sf->p += 2;
		return true;
	}
	if (c == '-' || isdigit(c))
	{
		int			digits = 0,
					frac = -1;

		if (c == '-')
			sf->p++;
		while (sf->p < sf->end && (isdigit((unsigned char) *sf->p) || *sf->p == '.'))
		{
			if (*sf->p == '.')
			{
				if (frac >= 0 || digits == 0 || digits > 12)
					return false;
				frac = 0;
			}
			else if (frac >= 0)
				frac++;
			else
				digits++;
			sf->p++;
		}
		return digits > 0 && digits <= 15 && frac != 0 && frac <= 3;
	}
	if (c == ':')
	{
		sf->p++;
		while (sf->p < sf->end && *sf->p != ':')
		{
			c = (unsigned char) *sf->p++;
			if (!isalnum(c) && c != '+' && c != '/' && c != '=')
				return false;
		}
		if (sf->p >= sf->end)
			return false;
		sf->p++;
		return true;
	}
	if (isalpha(c) || c == '*')
	{
		sf->p++;
		while (sf->p < sf->end &&
			   (is_tchar((unsigned char) *sf->p) || *sf->p == ':' || *sf->p == '/'))
			sf->p++;
		return true;
	}
	return false;
}

/*
 * Parameters (";key[=value]"...); the string value of the parameter v, if
 * any, goes into v (at most vmax bytes).
 */
static bool
sf_parameters(SfParser *sf, char *v, size_t vmax)
{
	if (v != NULL)
		v[0] = '\0';
	while (sf->p < sf->end && *sf->p == ';')
	{
		const char *key;
		size_t		keylen;

		sf->p++;
		sf_skip_sp(sf);
		key = sf->p;
		if (sf->p >= sf->end || !(islower((unsigned char) *sf->p) || *sf->p == '*'))
			return false;
		while (sf->p < sf->end &&
			   (islower((unsigned char) *sf->p) || isdigit((unsigned char) *sf->p) ||
				(*sf->p != '\0' && strchr("_-.*", *sf->p) != NULL)))
			sf->p++;
		keylen = sf->p - key;
		if (sf->p < sf->end && *sf->p == '=')
		{
			sf->p++;
			if (keylen == 1 && key[0] == 'v' && v != NULL && sf->p < sf->end && *sf->p == '"')
			{
				if (!sf_string(sf, v, vmax))
					return false;
			}
			else if (!sf_bare_item(sf))
				return false;
		}
	}
	return true;
}

/* The whole value is one sf-string item (parameters ignored) into out. */
static bool
sf_item_string(const char *value, size_t len, char *out, size_t outmax)
{
	SfParser	sf = {value, value + len};

	sf_skip_sp(&sf);
	if (!sf_string(&sf, out, outmax) || !sf_parameters(&sf, NULL, 0))
		return false;
	sf_skip_sp(&sf);
	return sf.p == sf.end;
}

/* A GREASE brand: "Not" ... "Brand" with separators, as Chromium makes them. */
static bool
brand_is_grease(const char *brand)
{
	size_t		len = strlen(brand);

	return len >= 8 && len <= 24 && strncmp(brand, "Not", 3) == 0 &&
		strcmp(brand + len - 5, "Brand") == 0;
}

/*
 * Sec-CH-UA: a list of brand strings with a v parameter; keep the first
 * brand that is neither GREASE nor Chromium.
 */
static bool
parse_brands(const char *value, size_t len, UaHints *hints)
{
	SfParser	sf = {value, value + len};
	char		brand[UA_HINT_TEXT_MAX + 1];
	char		version[UA_HINT_TEXT_MAX + 1];
	int			members = 0;
	bool		found = false;

	sf_skip_sp(&sf);
	while (sf.p < sf.end)
	{
		if (++members > UA_MAX_BRANDS)
			return false;
		if (!sf_string(&sf, brand, UA_HINT_TEXT_MAX) ||
			!sf_parameters(&sf, version, UA_HINT_TEXT_MAX))
			return false;
		if (!found && brand[0] != '\0' && !brand_is_grease(brand) &&
			strcmp(brand, "Chromium") != 0)
		{
			found = true;
			strcpy(hints->brand, brand);
			/* a version is digits and dots, or nothing */
			if (strspn(version, "0123456789.") == strlen(version) && isdigit((unsigned char) version[0]))
				strcpy(hints->brand_version, version);
			else
				hints->brand_version[0] = '\0';
		}
		sf_skip_ows(&sf);
		if (sf.p >= sf.end)
			break;
		if (*sf.p != ',')
			return false;
		sf.p++;
		sf_skip_ows(&sf);
		if (sf.p >= sf.end)
			return false;		/* a trailing comma */
	}
	if (!found)
	{
		hints->brand[0] = '\0';
		hints->brand_version[0] = '\0';
	}
	return true;
}

/* Sec-CH-UA-Platform-Version: "major[.minor[.patch]]", each at most 6 digits. */
static bool
parse_platform_version(const char *value, size_t len, UaHints *hints)
{
	char		text[UA_HINT_TEXT_MAX + 1];
	const char *p = text;
	int			n = 0;

	if (!sf_item_string(value, len, text, UA_HINT_TEXT_MAX) || text[0] == '\0')
		return false;
	for (;;)
	{
		int			digits = 0,
					part = 0;

		while (isdigit((unsigned char) *p) && digits < 7)
		{
			part = part * 10 + (*p++ - '0');
			digits++;
		}
		if (digits == 0 || digits > 6 || n == 3)
			return false;
		hints->version[n++] = part;
		if (*p == '\0')
			break;
		if (*p++ != '.')
			return false;
	}
	hints->nversion = n;
	return true;
}

void
UaHintsInit(UaHints *hints)
{
	memset(hints, 0, sizeof(*hints));
	hints->mobile = -1;
}

/*
 * Take one header's value (exactly as sent, len bytes, no NUL needed).  A
 * value that does not parse leaves that hint unset.
 */
void
UaHintsSet(UaHints *hints, UaHintHeader header, const char *value, size_t len)
{
	if (value == NULL || len > UA_HINT_VALUE_MAX || memchr(value, '\0', len) != NULL)
		return;
	switch (header)
	{
		case UA_HINT_BRANDS:
			if (!parse_brands(value, len, hints))
			{
				hints->brand[0] = '\0';
				hints->brand_version[0] = '\0';
			}
			break;
		case UA_HINT_MOBILE:
			{
				SfParser	sf = {value, value + len};

				sf_skip_sp(&sf);
				if (sf.end - sf.p >= 2 && sf.p[0] == '?' && (sf.p[1] == '0' || sf.p[1] == '1'))
				{
					int			mobile = sf.p[1] - '0';

					sf.p += 2;
					if (sf_parameters(&sf, NULL, 0))
					{
						sf_skip_sp(&sf);
						if (sf.p == sf.end)
							hints->mobile = mobile;
					}
				}
				break;
			}
		case UA_HINT_PLATFORM:
			if (!sf_item_string(value, len, hints->platform, UA_HINT_TEXT_MAX))
				hints->platform[0] = '\0';
			break;
		case UA_HINT_PLATFORM_VERSION:
			if (!parse_platform_version(value, len, hints))
				hints->nversion = 0;
			break;
		case UA_NHINTS:
			break;
	}
}

/*
 * The hints as a short string for a cache key (two sets of headers that
 * give the same hints give the same key); returns its length.
 */
int
UaHintsKey(const UaHints *hints, char *out, size_t outlen)
{
	int			n = snprintf(out, outlen, "%s\x1f%s\x1f%d\x1f%s\x1f%d.%d.%d.%d",
							 hints->brand, hints->brand_version, hints->mobile,
							 hints->platform, hints->nversion, hints->version[0],
							 hints->version[1], hints->version[2]);

	return n < 0 ? 0 : (n >= (int) outlen ? (int) outlen - 1 : n);
}

/* ---- describing ---- */

typedef struct Buf
{
	char	   *s;
	size_t		cap;			/* bytes, NUL included */
	size_t		len;
} Buf;

static void
buf_init(Buf *b, char *s, size_t cap)
{
	b->s = s;
	b->cap = cap;
	b->len = 0;
	s[0] = '\0';
}

/* Append, cutting on a UTF-8 character boundary when full. */
static void
buf_add(Buf *b, const char *s, size_t len)
{
	if (b->len + len + 1 > b->cap)
	{
		len = b->cap - b->len - 1;
		while (len > 0 && ((unsigned char) s[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(b->s + b->len, s, len);
	b->len += len;
	b->s[b->len] = '\0';
}

static void
buf_adds(Buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static bool
streq(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

static bool
in_list(const char *s, const char *const *list)
{
	for (int i = 0; s != NULL && list[i] != NULL; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* Join the version fields first..last of uap's answer with dots, up to the first missing one. */
static void
join_version(const UapResult *uap, UapField first, UapField last, char *out, size_t cap)
{
	Buf			b;

	buf_init(&b, out, cap);
	for (int f = (int) first; f <= (int) last; f++)
	{
		const char *part = UapGet(uap, (UapField) f);

		if (part == NULL || part[0] == '\0')
			break;
		if (f > (int) first)
			buf_adds(&b, ".");
		buf_adds(&b, part);
	}
}

/*
 * The first part of a dotted version, and the second unless it is 0 or
 * parts is 1.
 */
static void
short_version(const char *version, int parts, Buf *b)
{
	const char *dot = strchr(version, '.');
	const char *second;
	size_t		second_len;

	if (dot == NULL)
	{
		buf_adds(b, version);
		return;
	}
	buf_add(b, version, dot - version);
	if (parts < 2)
		return;
	second = dot + 1;
	second_len = strcspn(second, ".");
	if (second_len == 0 || strspn(second, "0") == second_len)
		return;
	buf_adds(b, ".");
	buf_add(b, second, second_len);
}

static const char *const chromium_families[] = {
	"Chrome", "Chrome Mobile", "Chromium", NULL
};

static const char *const phone_os[] = {
	"iOS", "Android", "Windows Phone", "Windows Mobile", "BlackBerry OS", "KaiOS",
	"Symbian OS", "Symbian^3", "Symbian^3 Anna", "Symbian^3 Belle", "Nokia Series 40",
	"Nokia Series 30 Plus", "Firefox OS", "Sailfish", "Bada", "Ubuntu Touch", "MeeGo",
	"Maemo", "HarmonyOS", "Brew MP", "BREW", NULL
};

static const char *const desktop_os[] = {
	"Windows", "Mac OS X", "Mac OS", "Linux", "Ubuntu", "Kubuntu", "Xubuntu", "Lubuntu",
	"Debian", "Fedora", "Red Hat", "CentOS", "SUSE", "openSUSE", "Mint", "Linux Mint",
	"Gentoo", "Arch Linux", "Slackware", "Mandriva", "Mageia", "PCLinuxOS", "Manjaro",
	"elementary OS", "Chrome OS", "FreeBSD", "OpenBSD", "NetBSD", "BSD", "DragonFly",
	"Solaris", "SunOS", "Haiku", "BeOS", "OS/2", "AIX", "HP-UX", "IRIX", "SerenityOS",
	NULL
};

static const char *const phone_devices[] = {
	"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone", NULL
};

/* A brand of Sec-CH-UA as uap-core names the browser. */
static const char *
brand_family(const char *brand, bool mobile)
{
	if (strcmp(brand, "Microsoft Edge") == 0)
		return mobile ? "Edge Mobile" : "Edge";
	if (strcmp(brand, "Opera") == 0)
		return mobile ? "Opera Mobile" : "Opera";
	if (strcmp(brand, "Yandex") == 0 || strcmp(brand, "YaBrowser") == 0)
		return "Yandex Browser";
	return brand;
}

static const char *
device_type(const UapResult *uap, const char *ua, size_t len, const UaHints *hints)
{
	const char *os = UapGet(uap, UAP_OS_FAMILY);
	const char *device = UapGet(uap, UAP_DEVICE_FAMILY);
	const char *brand = UapGet(uap, UAP_DEVICE_BRAND);
	bool		android = streq(os, "Android");
	bool		browser_ua = len >= 8 && memcmp(ua, "Mozilla/", 8) == 0;
	bool		mobile_token = false;

	for (size_t i = 0; i + 6 <= len && !mobile_token; i++)
		mobile_token = memcmp(ua + i, "Mobile", 6) == 0;

	if (streq(device, "Spider"))
		return "bot";
	if (device != NULL && strstr(device, "TV") != NULL)
		return "other";
	if (streq(brand, "Generic_Inettv"))
		return "other";
	if (hints != NULL && hints->mobile == 1)
		return "mobile";
	if (device != NULL &&
		(strncmp(device, "iPad", 4) == 0 || strncmp(device, "Kindle", 6) == 0 ||
		 strcmp(device, "Generic Tablet") == 0))
		return "tablet";
	if (streq(brand, "Generic_Android_Tablet") || streq(os, "BlackBerry Tablet OS"))
		return "tablet";
	if (android && ((browser_ua && !mobile_token) || (hints != NULL && hints->mobile == 0)))
		return "tablet";
	if (in_list(device, phone_devices) || in_list(os, phone_os))
		return "mobile";
	if (in_list(os, desktop_os))
		return "desktop";
	return "other";
}

/*
 * Describe a user agent: uap-core's answer for ua (len bytes), refined by
 * the client hints (NULL: none), as the columns of parse_user_agent.
 */
void
UaDescribe(const UapResult *uap, const char *ua, size_t len, const UaHints *hints,
		   UaDevice *out)
{
	const char *browser = UapGet(uap, UAP_UA_FAMILY);
	const char *os = UapGet(uap, UAP_OS_FAMILY);
	const char *os_major = UapGet(uap, UAP_OS_MAJOR);
	const char *os_minor = UapGet(uap, UAP_OS_MINOR);
	const char *model = UapGet(uap, UAP_DEVICE_MODEL);
	bool		os_version_real = false;	/* from a client hint */
	bool		os_version_frozen;
	bool		has_browser;
	bool		has_os;
	Buf			b;

	memset(out, 0, sizeof(*out));
	out->known = true;
	snprintf(out->browser, sizeof(out->browser), "%s", browser ? browser : "Other");
	join_version(uap, UAP_UA_MAJOR, UAP_UA_PATCH, out->browser_version,
				 sizeof(out->browser_version));
	snprintf(out->os, sizeof(out->os), "%s", os ? os : "Other");
	join_version(uap, UAP_OS_MAJOR, UAP_OS_PATCH_MINOR, out->os_version,
				 sizeof(out->os_version));
	snprintf(out->device, sizeof(out->device), "%s",
			 UapGet(uap, UAP_DEVICE_FAMILY) ? UapGet(uap, UAP_DEVICE_FAMILY) : "Other");
	out->device_type = device_type(uap, ua, len, hints);

	if (hints != NULL && hints->brand[0] != '\0' && in_list(browser, chromium_families) &&
		strcmp(hints->brand, "Google Chrome") != 0)
	{
		snprintf(out->browser, sizeof(out->browser), "%s",
				 brand_family(hints->brand, streq(browser, "Chrome Mobile")));
		if (hints->brand_version[0] != '\0')
			snprintf(out->browser_version, sizeof(out->browser_version), "%s",
					 hints->brand_version);
	}

	if (hints != NULL && hints->nversion > 0)
	{
		const int  *v = hints->version;

		if (strcmp(hints->platform, "Windows") == 0 && streq(os, "Windows") &&
			streq(os_major, "10") && os_minor == NULL)
		{
			const char *windows = NULL;

			if (v[0] >= 13)
				windows = "11";
			else if (v[0] >= 1)
				windows = "10";
			else if (hints->nversion >= 2 && v[1] >= 1 && v[1] <= 3)
				windows = v[1] == 1 ? "7" : v[1] == 2 ? "8" : "8.1";
			if (windows != NULL)
			{
				strcpy(out->os_version, windows);
				os_version_real = true;
			}
		}
		else if ((strcmp(hints->platform, "macOS") == 0 && streq(os, "Mac OS X") && v[0] >= 10) ||
				 (strcmp(hints->platform, "Android") == 0 && streq(os, "Android") && v[0] >= 1))
		{
			buf_init(&b, out->os_version, sizeof(out->os_version));
			for (int i = 0; i < hints->nversion; i++)
			{
				char		part[16];

				snprintf(part, sizeof(part), i == 0 ? "%d" : ".%d", v[i]);
				buf_adds(&b, part);
			}
			os_version_real = true;
		}
	}

	os_version_frozen = !os_version_real &&
		((streq(os, "Windows") && streq(os_major, "10") && os_minor == NULL) ||
		 (streq(os, "Mac OS X") && streq(os_major, "10") && streq(os_minor, "15")) ||
		 (streq(os, "Android") && streq(os_major, "10") && os_minor == NULL &&
		  streq(model, "K")) ||
		 streq(os, "Chrome OS"));

	has_browser = strcmp(out->browser, "Other") != 0;
	has_os = strcmp(out->os, "Other") != 0;
	buf_init(&b, out->label, sizeof(out->label));
	if (has_browser)
	{
		buf_adds(&b, out->browser);
		if (out->browser_version[0] != '\0')
		{
			buf_adds(&b, " ");
			short_version(out->browser_version, has_os ? 1 : 2, &b);
		}
	}
	if (has_os)
	{
		if (has_browser)
			buf_adds(&b, " on ");
		buf_adds(&b, strcmp(out->os, "Mac OS X") == 0 ? "macOS" : out->os);
		if (out->os_version[0] != '\0' && !os_version_frozen)
		{
			buf_adds(&b, " ");
			short_version(out->os_version, 2, &b);
		}
	}
	if (!has_browser && !has_os && strcmp(out->device, "Other") != 0)
		buf_adds(&b, out->device);
}

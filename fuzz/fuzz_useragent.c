/*-------------------------------------------------------------------------
 *
 * fuzz_useragent.c
 *	  libFuzzer target: UapParse() with uap-core's rules (src/uarules.c),
 *	  and UaDescribe() of its answer (src/uadevice.c).
 *
 * The rules are loaded once from UAP_REGEXES (default uap-core's
 * /usr/share/uap-core/regexes.yaml).  The input is a user agent.  Invariants:
 * every field is NUL-terminated, at most UAP_FIELD_MAX bytes and, for an
 * input of valid UTF-8, valid UTF-8; the family fields are never NULL; the
 * prefilter changes nothing (the same input parsed with every expression
 * tried gives the same answer, unless the effort bound cut either short);
 * the description's label and device type are set and bounded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "mb/pg_wchar.h"

#include "fuzz_common.h"
#include "useragent.h"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static UapRules *rules;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *path = getenv("UAP_REGEXES") ? getenv("UAP_REGEXES") :
		"/usr/share/uap-core/regexes.yaml";
	FILE	   *f = fopen(path, "rb");
	static char yaml[16 * 1024 * 1024];
	size_t		len;
	char		err[256];

	if (f == NULL)
	{
		fprintf(stderr, "fuzz_useragent: cannot open %s\n", path);
		exit(1);
	}
	len = fread(yaml, 1, sizeof(yaml), f);
	fclose(f);
	rules = UapRulesLoad(yaml, len, err, sizeof(err));
	if (rules == NULL)
	{
		fprintf(stderr, "fuzz_useragent: %s: %s\n", path, err);
		exit(1);
	}
	return 0;
}

static bool
valid_utf8(const char *s, size_t len)
{
	return pg_encoding_verifymbstr(PG_UTF8, s, (int) len) == (int) len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static UapResult filtered,
				unfiltered;
	static UaDevice device;
	const char *ua = (const char *) data;
	bool		utf8 = valid_utf8(ua, size);

	UapParse(rules, ua, size, &filtered);
	for (int f = 0; f < UAP_NFIELDS; f++)
	{
		const char *s = UapGet(&filtered, (UapField) f);

		if (f == UAP_UA_FAMILY || f == UAP_OS_FAMILY || f == UAP_DEVICE_FAMILY)
			FUZZ_CHECK(s != NULL && s[0] != '\0');
		if (s == NULL)
			continue;
		FUZZ_CHECK(strlen(s) <= UAP_FIELD_MAX);
		FUZZ_CHECK(!utf8 || valid_utf8(s, strlen(s)));
	}

	if (size <= UAP_MAX_INPUT)
	{
		UapParseUnfiltered(rules, ua, size, &unfiltered);
		if (!filtered.gave_up && !unfiltered.gave_up)
			for (int f = 0; f < UAP_NFIELDS; f++)
			{
				const char *a = UapGet(&filtered, (UapField) f);
				const char *b = UapGet(&unfiltered, (UapField) f);

				FUZZ_CHECK((a == NULL) == (b == NULL));
				FUZZ_CHECK(a == NULL || strcmp(a, b) == 0);
			}
	}

	UaDescribe(&filtered, ua, size, NULL, &device);
	FUZZ_CHECK(device.known && device.device_type != NULL);
	FUZZ_CHECK(strlen(device.label) <= UA_DEVICE_TEXT_MAX);
	FUZZ_CHECK(!utf8 || valid_utf8(device.label, strlen(device.label)));
	fuzz_reset();
	return 0;
}

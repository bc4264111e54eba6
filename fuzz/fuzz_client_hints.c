/*-------------------------------------------------------------------------
 *
 * fuzz_client_hints.c
 *	  libFuzzer target: the User-Agent Client Hints parsers (UaHintsSet in
 *	  src/uadevice.c) and the description they refine.
 *
 * The first byte picks a reduced user agent (Windows, macOS, Android) whose
 * uap-core answer is made once at start-up; the rest is split at newlines
 * into the values of Sec-CH-UA, Sec-CH-UA-Mobile, Sec-CH-UA-Platform and
 * Sec-CH-UA-Platform-Version.  Invariants: a brand, brand version and
 * platform are printable ASCII within UA_HINT_TEXT_MAX, a brand version is
 * digits and dots, the platform version has 0 to 3 parts of at most 6
 * digits, mobile is -1, 0 or 1; the label is bounded and NUL-terminated.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "fuzz_common.h"
#include "useragent.h"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const reduced[] = {
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
};
static UapResult answers[3];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *path = getenv("UAP_REGEXES") ? getenv("UAP_REGEXES") :
		"/usr/share/uap-core/regexes.yaml";
	FILE	   *f = fopen(path, "rb");
	static char yaml[16 * 1024 * 1024];
	size_t		len;
	char		err[256];
	UapRules   *rules;

	if (f == NULL)
	{
		fprintf(stderr, "fuzz_client_hints: cannot open %s\n", path);
		exit(1);
	}
	len = fread(yaml, 1, sizeof(yaml), f);
	fclose(f);
	rules = UapRulesLoad(yaml, len, err, sizeof(err));
	if (rules == NULL)
	{
		fprintf(stderr, "fuzz_client_hints: %s: %s\n", path, err);
		exit(1);
	}
	for (int i = 0; i < 3; i++)
		UapParse(rules, reduced[i], strlen(reduced[i]), &answers[i]);
	UapRulesFree(rules);
	return 0;
}

static bool
printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static UaDevice device;
	UaHints		hints;
	const char *p = (const char *) data + (size > 0 ? 1 : 0);
	const char *end = (const char *) data + size;
	int			which = size > 0 ? data[0] % 3 : 0;
	char		key[512];

	UaHintsInit(&hints);
	for (int h = 0; h < UA_NHINTS && p <= end; h++)
	{
		const char *nl = memchr(p, '\n', end - p);
		const char *stop = nl ? nl : end;
		/* an exact-size heap copy, so that ASan sees any read past it */
		char	   *value = fuzz_cstring((const uint8_t *) p, stop - p);

		UaHintsSet(&hints, (UaHintHeader) h, value, stop - p);
		p = stop + 1;
	}
	FUZZ_CHECK(strlen(hints.brand) <= UA_HINT_TEXT_MAX && printable(hints.brand));
	FUZZ_CHECK(strlen(hints.brand_version) <= UA_HINT_TEXT_MAX);
	FUZZ_CHECK(strspn(hints.brand_version, "0123456789.") == strlen(hints.brand_version));
	FUZZ_CHECK(hints.brand_version[0] == '\0' || hints.brand[0] != '\0');
	FUZZ_CHECK(strlen(hints.platform) <= UA_HINT_TEXT_MAX && printable(hints.platform));
	FUZZ_CHECK(hints.nversion >= 0 && hints.nversion <= 3);
	for (int i = 0; i < hints.nversion; i++)
		FUZZ_CHECK(hints.version[i] >= 0 && hints.version[i] <= 999999);
	FUZZ_CHECK(hints.mobile >= -1 && hints.mobile <= 1);
	FUZZ_CHECK(UaHintsKey(&hints, key, sizeof(key)) < (int) sizeof(key));

	UaDescribe(&answers[which], reduced[which], strlen(reduced[which]), &hints, &device);
	FUZZ_CHECK(device.device_type != NULL);
	FUZZ_CHECK(strlen(device.label) <= UA_DEVICE_TEXT_MAX && device.label[0] != '\0');
	fuzz_reset();
	return 0;
}

/*-------------------------------------------------------------------------
 *
 * fuzz_uuid.c
 *	  libFuzzer target: SessmgrParseUuid() and SessmgrParseGen(), which read
 *	  the sid and gen claims of access tokens.
 *
 * The input, NUL-terminated as the JSON lexer hands claims over (a NUL byte
 * inside ends the string early, as it would there), goes to both parsers.
 * Whatever they accept must print back to the input: the uuid in
 * 8-4-4-4-12 hex digits (either case), the tag in 16 lower-case hex digits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <ctype.h>

#include "fuzz_common.h"
#include "parse.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = fuzz_cstring(data, size);
	pg_uuid_t	uuid;
	int64		gen;
	char		buf[64];

	if (SessmgrParseUuid(text, &uuid))
	{
		const unsigned char *u = uuid.data;

		snprintf(buf, sizeof(buf),
				 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
				 "%02x%02x%02x%02x%02x%02x",
				 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
				 u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
		FUZZ_CHECK(strlen(text) == 36);
		for (int i = 0; i < 36; i++)
			FUZZ_CHECK(tolower((unsigned char) text[i]) == buf[i]);
	}

	if (SessmgrParseGen(text, &gen))
	{
		snprintf(buf, sizeof(buf), "%016llx", (unsigned long long) gen);
		FUZZ_CHECK(strcmp(buf, text) == 0);
	}

	fuzz_reset();
	return 0;
}

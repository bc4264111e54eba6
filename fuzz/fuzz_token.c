/*-------------------------------------------------------------------------
 *
 * fuzz_token.c
 *	  libFuzzer target: SessmgrTokenDecode(), the parser of every session
 *	  token presented to validate, authenticate, refresh and logout.
 *
 * Any bytes of any length go in.  Besides ASan/UBSan cleanliness, the
 * decoder must accept only the canonical text form: whatever it accepts
 * encodes back (SessmgrTokenEncode) to exactly the input.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "fuzz_common.h"
#include "parse.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so that ASan sees any read past the length */
	char	   *text = fuzz_cstring(data, size);
	SessmgrToken token;
	char		encoded[SESSMGR_TOKEN_LEN + 1];

	if (SessmgrTokenDecode(text, size, &token))
	{
		FUZZ_CHECK(size == SESSMGR_TOKEN_LEN);
		SessmgrTokenEncode(&token, encoded);
		FUZZ_CHECK(strlen(encoded) == SESSMGR_TOKEN_LEN);
		FUZZ_CHECK(memcmp(encoded, text, SESSMGR_TOKEN_LEN) == 0);
	}

	fuzz_reset();
	return 0;
}

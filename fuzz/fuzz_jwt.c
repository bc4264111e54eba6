/*-------------------------------------------------------------------------
 *
 * fuzz_jwt.c
 *	  libFuzzer target: the path of an untrusted compact JWT through
 *	  sessmgr.verify_access_token() up to the HMAC, and the claims after it.
 *
 * The input is split into header.payload.signature exactly as verify_token()
 * in src/jwt.c does (the split is copied here), then each segment goes
 * through the same calls: SessmgrJwtDecodeSegment() and
 * SessmgrJwtParseFields() for the header and the payload,
 * SessmgrBase64UrlDecode() into the same fixed-size buffer for the
 * signature.  The server checks the signature before it parses the
 * payload; the harness parses it regardless, so forged payloads are
 * covered too.  Inputs over 8 kB are dropped, as verify_access_token drops
 * them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "fuzz_common.h"
#include "parse.h"

#define JWT_MAX_LEN		8192
#define MAC_MAX_LEN		64		/* as in src/jwt.c */

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
parse_segment(const char *start, int len)
{
	int			outlen = -1;
	char	   *json = SessmgrJwtDecodeSegment(start, len, &outlen);
	JwtFields	f;

	if (json == NULL)
		return;
	FUZZ_CHECK(outlen >= 0 && outlen <= len);
	FUZZ_CHECK(json[outlen] == '\0');
	(void) SessmgrJwtParseFields(json, outlen, "", false, &f);
	(void) SessmgrJwtParseFields(json, outlen, "", true, &f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *s;
	int			len = (int) size;
	const char *dot1;
	const char *dot2;
	uint8		sig[MAC_MAX_LEN + 4];
	int			sig_len;

	if (size > JWT_MAX_LEN)
		return 0;
	s = fuzz_cstring(data, size);

	/* the split of verify_token() */
	dot1 = memchr(s, '.', len);
	if (dot1 == NULL)
		goto done;
	dot2 = memchr(dot1 + 1, '.', len - (dot1 + 1 - s));
	if (dot2 == NULL || dot1 == s || dot2 == dot1 + 1 || dot2 == s + len - 1 ||
		memchr(dot2 + 1, '.', len - (dot2 + 1 - s)) != NULL)
		goto done;

	parse_segment(s, dot1 - s);
	sig_len = SessmgrBase64UrlDecode(dot2 + 1, len - (dot2 + 1 - s), sig, sizeof(sig));
	FUZZ_CHECK(sig_len <= (int) sizeof(sig));
	parse_segment(dot1 + 1, dot2 - (dot1 + 1));

done:
	fuzz_reset();
	return 0;
}

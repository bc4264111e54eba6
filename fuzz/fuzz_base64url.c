/*-------------------------------------------------------------------------
 *
 * fuzz_base64url.c
 *	  libFuzzer target: SessmgrBase64UrlDecode() and SessmgrBase64UrlEncode(),
 *	  which read the three segments of every access token.
 *
 * The first input byte picks the room in the output buffer (0 to 255 bytes,
 * or "exactly enough" for 255), the rest is the text to decode into a heap
 * buffer of exactly that size, so ASan sees any write past it.  A decoded
 * result must fit, have the length unpadded base64url implies, and encode
 * back to exactly the input (only canonical text is accepted).  The same
 * bytes, taken as binary, must survive an encode/decode round trip.
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
	int			len;
	int			dstlen;
	int			implied;
	int			n;
	char	   *src;
	uint8	   *dst;

	if (size < 1 || size > 1 << 16)
		return 0;
	len = (int) size - 1;
	src = fuzz_cstring(data + 1, len);
	implied = (len / 4) * 3 + ((len % 4) ? (len % 4) - 1 : 0);
	dstlen = data[0] == 255 ? implied : data[0];

	/* decode untrusted text */
	dst = palloc(Max(dstlen, 1));
	n = SessmgrBase64UrlDecode(src, len, dst, dstlen);
	FUZZ_CHECK(n >= -1);
	if (n >= 0)
	{
		char	   *again = palloc(4 * ((n + 2) / 3) + 1);

		FUZZ_CHECK(len % 4 != 1);
		FUZZ_CHECK(n <= dstlen);
		FUZZ_CHECK(n == implied);
		FUZZ_CHECK(SessmgrBase64UrlEncode(dst, n, again) == len);
		FUZZ_CHECK(memcmp(again, src, len) == 0);
	}

	/* encode arbitrary bytes, then decode them again */
	{
		char	   *text = palloc(4 * ((len + 2) / 3) + 1);
		uint8	   *back = palloc(Max(len, 1));
		int			tlen = SessmgrBase64UrlEncode((const uint8 *) src, len, text);

		FUZZ_CHECK(tlen == (len / 3) * 4 + ((len % 3) ? (len % 3) + 1 : 0));
		FUZZ_CHECK(text[tlen] == '\0');
		FUZZ_CHECK(SessmgrBase64UrlDecode(text, tlen, back, len) == len);
		FUZZ_CHECK(memcmp(back, src, len) == 0);
	}

	fuzz_reset();
	return 0;
}

/*-------------------------------------------------------------------------
 *
 * token.c
 *	  Minting, encoding, decoding and hashing of session tokens.
 *
 * A token is the prefix "sessmgr_" and 64 base64url characters (no padding)
 * carrying the 16-byte session id followed by a 32-byte secret.  The prefix
 * lets secret scanners find leaked tokens; the id is a non-secret selector
 * that finds the row by primary key; the secret is never stored, only
 * SHA-256(id || secret), which is compared in constant time.  A token carries
 * no user data.
 *
 * The decoder reads untrusted input and is written to be fuzzed on its own:
 * it depends on nothing but its arguments.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "sessmgr.h"

static const char base64url_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* reverse table; -1 marks characters outside the alphabet */
static const int8 base64url_value[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/*
 * Fill a token with fresh randomness from pg_strong_random().  The id gets
 * the UUID version 4 and variant bits so that it is a well-formed uuid; that
 * leaves 122 random bits in the id and 256 in the secret.  A failure of the
 * random source is an error: a session must never get a guessable token.
 */
void
SessmgrTokenGenerate(SessmgrToken *token)
{
	if (!pg_strong_random(token->id.data, SESSMGR_ID_LEN) ||
		!pg_strong_random(token->secret, SESSMGR_SECRET_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random session token"),
				 errdetail("The strong random number source failed.")));

	token->id.data[6] = (token->id.data[6] & 0x0f) | 0x40;
	token->id.data[8] = (token->id.data[8] & 0x3f) | 0x80;
}

/* A fresh secret for an existing session id: the rotation of a refresh. */
void
SessmgrTokenNewSecret(SessmgrToken *token)
{
	if (!pg_strong_random(token->secret, SESSMGR_SECRET_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random session token"),
				 errdetail("The strong random number source failed.")));
}

/*
 * A random tag for a token generation, carried by the access tokens minted
 * with it.  A tag minted in a transaction that rolled back is never stored,
 * so access tokens carrying it never verify.
 */
int64
SessmgrRandomGen(void)
{
	int64		gen;

	if (!pg_strong_random(&gen, sizeof(gen)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random token generation")));
	return gen;
}

/*
 * Write the text form of a token into out, which must have room for
 * SESSMGR_TOKEN_LEN + 1 bytes.
 */
void
SessmgrTokenEncode(const SessmgrToken *token, char *out)
{
	uint8		raw[SESSMGR_TOKEN_RAW_LEN];
	char	   *p = out;

	memcpy(raw, token->id.data, SESSMGR_ID_LEN);
	memcpy(raw + SESSMGR_ID_LEN, token->secret, SESSMGR_SECRET_LEN);

	memcpy(p, SESSMGR_TOKEN_PREFIX, SESSMGR_TOKEN_PREFIX_LEN);
	p += SESSMGR_TOKEN_PREFIX_LEN;

	for (int i = 0; i < SESSMGR_TOKEN_RAW_LEN; i += 3)
	{
		uint32		chunk = (raw[i] << 16) | (raw[i + 1] << 8) | raw[i + 2];

		*p++ = base64url_alphabet[(chunk >> 18) & 0x3f];
		*p++ = base64url_alphabet[(chunk >> 12) & 0x3f];
		*p++ = base64url_alphabet[(chunk >> 6) & 0x3f];
		*p++ = base64url_alphabet[chunk & 0x3f];
	}
	*p = '\0';

	explicit_bzero(raw, sizeof(raw));
}

/*
 * Parse the text form of a token.  Returns false, without reading past len
 * bytes, for anything that is not exactly a well-formed token.
 */
bool
SessmgrTokenDecode(const char *text, size_t len, SessmgrToken *token)
{
	uint8		raw[SESSMGR_TOKEN_RAW_LEN];
	const unsigned char *p;
	uint8	   *out = raw;

	if (len != SESSMGR_TOKEN_LEN ||
		memcmp(text, SESSMGR_TOKEN_PREFIX, SESSMGR_TOKEN_PREFIX_LEN) != 0)
		return false;

	p = (const unsigned char *) text + SESSMGR_TOKEN_PREFIX_LEN;
	for (int i = 0; i < 16; i++)
	{
		int			a = base64url_value[p[0]];
		int			b = base64url_value[p[1]];
		int			c = base64url_value[p[2]];
		int			d = base64url_value[p[3]];
		uint32		chunk;

		if ((a | b | c | d) < 0)
			return false;
		chunk = (a << 18) | (b << 12) | (c << 6) | d;
		*out++ = (chunk >> 16) & 0xff;
		*out++ = (chunk >> 8) & 0xff;
		*out++ = chunk & 0xff;
		p += 4;
	}

	memcpy(token->id.data, raw, SESSMGR_ID_LEN);
	memcpy(token->secret, raw + SESSMGR_ID_LEN, SESSMGR_SECRET_LEN);
	explicit_bzero(raw, sizeof(raw));
	return true;
}

/*
 * SHA-256 with one digest context kept for the life of the backend, so that
 * the hot path allocates nothing.
 */
void
SessmgrSha256(const uint8 *data, size_t len, uint8 *out)
{
	static EVP_MD_CTX *ctx = NULL;
	static const EVP_MD *md = NULL;
	unsigned int outlen = 0;

	if (ctx == NULL)
	{
		md = EVP_sha256();
		ctx = EVP_MD_CTX_new();
		if (ctx == NULL || md == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not allocate a SHA-256 context")));
	}

	if (EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
		EVP_DigestUpdate(ctx, data, len) != 1 ||
		EVP_DigestFinal_ex(ctx, out, &outlen) != 1 ||
		outlen != SESSMGR_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 digest")));
}

/*
 * base64url without padding (RFC 7515), for access tokens and key sets.
 * Encoding writes 4 * ceil(len / 3) bytes at most, plus a terminating zero;
 * returns the length written.
 */
int
SessmgrBase64UrlEncode(const uint8 *src, int len, char *dst)
{
	char	   *p = dst;
	int			i;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		chunk = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];

		*p++ = base64url_alphabet[(chunk >> 18) & 0x3f];
		*p++ = base64url_alphabet[(chunk >> 12) & 0x3f];
		*p++ = base64url_alphabet[(chunk >> 6) & 0x3f];
		*p++ = base64url_alphabet[chunk & 0x3f];
	}
	if (len - i == 1)
	{
		uint32		chunk = src[i] << 16;

		*p++ = base64url_alphabet[(chunk >> 18) & 0x3f];
		*p++ = base64url_alphabet[(chunk >> 12) & 0x3f];
	}
	else if (len - i == 2)
	{
		uint32		chunk = (src[i] << 16) | (src[i + 1] << 8);

		*p++ = base64url_alphabet[(chunk >> 18) & 0x3f];
		*p++ = base64url_alphabet[(chunk >> 12) & 0x3f];
		*p++ = base64url_alphabet[(chunk >> 6) & 0x3f];
	}
	*p = '\0';
	return p - dst;
}

/*
 * Decode unpadded base64url into dst, which has room for dstlen bytes.
 * Returns the decoded length, or -1 for anything that is not canonical
 * unpadded base64url (padding, other characters, a dangling character, or
 * nonzero bits left over) or would not fit.
 */
int
SessmgrBase64UrlDecode(const char *src, int len, uint8 *dst, int dstlen)
{
	const unsigned char *p = (const unsigned char *) src;
	int			outlen = (len / 4) * 3 + ((len % 4) ? (len % 4) - 1 : 0);
	uint8	   *out = dst;
	int			i;

	if (len % 4 == 1 || outlen > dstlen)
		return -1;

	for (i = 0; i + 3 < len; i += 4)
	{
		int			a = base64url_value[p[i]];
		int			b = base64url_value[p[i + 1]];
		int			c = base64url_value[p[i + 2]];
		int			d = base64url_value[p[i + 3]];
		uint32		chunk;

		if ((a | b | c | d) < 0)
			return -1;
		chunk = (a << 18) | (b << 12) | (c << 6) | d;
		*out++ = (chunk >> 16) & 0xff;
		*out++ = (chunk >> 8) & 0xff;
		*out++ = chunk & 0xff;
	}
	if (len - i == 2)
	{
		int			a = base64url_value[p[i]];
		int			b = base64url_value[p[i + 1]];

		if ((a | b) < 0 || (b & 0x0f) != 0)
			return -1;
		*out++ = (a << 2) | (b >> 4);
	}
	else if (len - i == 3)
	{
		int			a = base64url_value[p[i]];
		int			b = base64url_value[p[i + 1]];
		int			c = base64url_value[p[i + 2]];

		if ((a | b | c) < 0 || (c & 0x03) != 0)
			return -1;
		*out++ = (a << 2) | (b >> 4);
		*out++ = ((b & 0x0f) << 4) | (c >> 2);
	}
	return out - dst;
}

/*
 * Parse a uuid in its canonical text form (8-4-4-4-12 hex digits) without
 * raising an error, for identifiers read from untrusted claims.
 */
bool
SessmgrParseUuid(const char *text, pg_uuid_t *uuid)
{
	int			j = 0;

	if (strlen(text) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		int			c = (unsigned char) text[i];
		int			d;

		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (c != '-')
				return false;
			continue;
		}
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		if (j % 2 == 0)
			uuid->data[j / 2] = d << 4;
		else
			uuid->data[j / 2] |= d;
		j++;
	}
	return true;
}

/* The stored form of a token: SHA-256 over the id and the secret. */
void
SessmgrTokenHash(const SessmgrToken *token, uint8 *hash)
{
	uint8		raw[SESSMGR_TOKEN_RAW_LEN];

	memcpy(raw, token->id.data, SESSMGR_ID_LEN);
	memcpy(raw + SESSMGR_ID_LEN, token->secret, SESSMGR_SECRET_LEN);
	SessmgrSha256(raw, sizeof(raw), hash);
	explicit_bzero(raw, sizeof(raw));
}

/*
 * Compare two secrets of the same length in time that does not depend on
 * where they differ.
 */
bool
SessmgrConstantTimeEqual(const uint8 *a, const uint8 *b, size_t len)
{
	volatile uint8 diff = 0;

	for (size_t i = 0; i < len; i++)
		diff |= a[i] ^ b[i];

	return diff == 0;
}

/*-------------------------------------------------------------------------
 *
 * token.c
 *	  Minting and hashing of session tokens (their text form is encoded and
 *	  decoded in parse.c).
 *
 * A token is the prefix "sessmgr_" and 64 base64url characters (no padding)
 * carrying the 16-byte session id followed by a 32-byte secret.  The prefix
 * lets secret scanners find leaked tokens; the id is a non-secret selector
 * that finds the row by primary key; the secret is never stored, only
 * SHA-256(id || secret), which is compared in constant time.  A token carries
 * no user data.
 *
 * The decoder reads untrusted input; it lives in parse.c, which depends on
 * nothing in the backend and is fuzzed on its own (fuzz/).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "sessmgr.h"

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
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
		/* fetched once: EVP_sha256() would be looked up, under a lock, per use */
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
		md = EVP_sha256();
#endif
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

/*-------------------------------------------------------------------------
 *
 * parse.h
 *	  The parsers of untrusted text: session tokens, base64url, uuids and
 *	  token generations, and the JSON of access-token headers and claims.
 *
 * parse.c uses nothing from the backend, only what frontend code has
 * (libpgcommon's JSON lexer and encoding checks), so the same code is
 * compiled into the extension and into the fuzz harnesses under fuzz/.
 * Include postgres.h (or postgres_fe.h) first.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SESSMGR_PARSE_H
#define SESSMGR_PARSE_H

#include "utils/uuid.h"

/*
 * Tokens look like "sessmgr_" followed by 64 base64url characters that
 * encode 48 bytes: the 16-byte session id (the non-secret selector) and a
 * 32-byte secret.  Only SHA-256(id || secret) is stored.
 */
#define SESSMGR_TOKEN_PREFIX		"sessmgr_"
#define SESSMGR_TOKEN_PREFIX_LEN	8
#define SESSMGR_ID_LEN				UUID_LEN
#define SESSMGR_SECRET_LEN			32
#define SESSMGR_HASH_LEN			32
#define SESSMGR_TOKEN_RAW_LEN		(SESSMGR_ID_LEN + SESSMGR_SECRET_LEN)
#define SESSMGR_TOKEN_LEN			(SESSMGR_TOKEN_PREFIX_LEN + 64)

typedef struct SessmgrToken
{
	pg_uuid_t	id;
	uint8		secret[SESSMGR_SECRET_LEN];
} SessmgrToken;

/*
 * The members of an access token's header or claims that sessmgr reads.
 * The claims we need are top-level members; aud may be an array of strings.
 * The strings point into memory allocated by the JSON lexer.
 */
typedef struct JwtFields
{
	int			depth;
	bool		bad;
	bool		top_is_object;
	const char *field;			/* current top-level member */
	const char *audience;		/* the aud that matches (sessmgr.jwt_audience) */
	/* header */
	char	   *alg;
	char	   *kid;
	/* payload */
	char	   *sub;
	char	   *sid;
	char	   *gen;
	char	   *iss;
	char	   *role;
	bool		has_exp;
	bool		has_nbf;
	bool		has_iat;
	double		exp;
	double		nbf;
	double		iat;
	bool		has_aud;
	bool		aud_matches;
	bool		has_crit;		/* a header's crit: extensions we do not know */
} JwtFields;

extern void SessmgrTokenEncode(const SessmgrToken *token, char *out);
extern bool SessmgrTokenDecode(const char *text, size_t len, SessmgrToken *token);
extern int	SessmgrBase64UrlEncode(const uint8 *src, int len, char *dst);
extern int	SessmgrBase64UrlDecode(const char *src, int len, uint8 *dst, int dstlen);
extern bool SessmgrParseUuid(const char *text, pg_uuid_t *uuid);
extern bool SessmgrParseGen(const char *text, int64 *gen);
extern bool SessmgrJsonTextAcceptable(const char *text, int len,
									  bool ascii_escapes_only);
extern bool SessmgrJwtParseFields(char *text, int len, const char *audience,
								  bool ascii_escapes_only, JwtFields *fields);
extern char *SessmgrJwtDecodeSegment(const char *start, int len, int *outlen);
extern bool SessmgrJsonGetMembers(char *text, int len, const char *const *keys,
								  int nkeys, char **values, bool ascii_escapes_only);
extern char *SessmgrJsonGetMember(char *text, int len, const char *key,
								  bool ascii_escapes_only);
extern const char *SessmgrBearerToken(const char *header, int *len);

#endif							/* SESSMGR_PARSE_H */

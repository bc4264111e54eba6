/*-------------------------------------------------------------------------
 *
 * parse.c
 *	  The parsers of untrusted text: session tokens, base64url, uuids and
 *	  token generations, and the JSON of access-token headers and claims.
 *
 * Everything here reads attacker-controlled input and returns false (or -1,
 * or NULL) for anything malformed, without raising and without reading past
 * the given length.  It uses nothing from the backend, only what frontend
 * code has (palloc, libpgcommon's JSON lexer and encoding checks), so the
 * same file is compiled into the extension and, with FRONTEND defined, into
 * the libFuzzer harnesses under fuzz/.
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <ctype.h>
#include <math.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "parse.h"

#define JWT_MAX_DEPTH		8
#define JWT_MAX_NUMBER_LEN	32
#define JWT_MAX_NUMBER_EXPONENT 1000	/* numeric_in refuses beyond */

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

/* Whether we are inside the value of the top-level member aud. */
static bool
in_aud(const JwtFields *f)
{
	return f->depth >= 1 && f->field != NULL && strcmp(f->field, "aud") == 0;
}

static void
fields_object_start(void *state)
{
	JwtFields  *f = state;

	if (f->depth == 0)
		f->top_is_object = true;
	else if (in_aud(f))
		f->bad = true;			/* aud is a string or an array of strings */
	f->depth++;
}

static void
fields_object_end(void *state)
{
	((JwtFields *) state)->depth--;
}

static void
fields_array_start(void *state)
{
	JwtFields  *f = state;

	if (f->depth == 0)
		f->bad = true;
	f->depth++;
}

static void
fields_array_end(void *state)
{
	((JwtFields *) state)->depth--;
}

static void
fields_field_start(void *state, char *fname, bool isnull)
{
	JwtFields  *f = state;

	if (f->depth == 1)
	{
		f->field = fname;
		if (strcmp(fname, "crit") == 0)
			f->has_crit = true;
	}
}

static void
set_string(JwtFields *f, char **target, char *token, JsonTokenType type)
{
	if (type != JSON_TOKEN_STRING || *target != NULL)
		f->bad = true;			/* wrong type, or a duplicate member */
	else
		*target = token;
}

static void
set_number(JwtFields *f, bool *has, double *target, char *token, JsonTokenType type)
{
	char	   *end;
	double		v;

	if (type != JSON_TOKEN_NUMBER || *has)
	{
		f->bad = true;
		return;
	}
	errno = 0;
	v = strtod(token, &end);
	if (*end != '\0' || errno != 0 || !isfinite(v))
	{
		f->bad = true;
		return;
	}
	*has = true;
	*target = v;
}

/*
 * Whether jsonb can hold a JSON number without an error: at most
 * JWT_MAX_NUMBER_LEN characters and an exponent within what numeric_in
 * accepts (it refuses beyond 1000, so 1e999999 would raise).
 */
static bool
number_is_safe(const char *token)
{
	const char *e;
	long		exponent;

	if (strlen(token) > JWT_MAX_NUMBER_LEN)
		return false;
	e = strpbrk(token, "eE");
	if (e == NULL)
		return true;
	errno = 0;
	exponent = strtol(e + 1, NULL, 10);
	return errno == 0 && exponent >= -JWT_MAX_NUMBER_EXPONENT &&
		exponent <= JWT_MAX_NUMBER_EXPONENT;
}

static void
fields_scalar(void *state, char *token, JsonTokenType type)
{
	JwtFields  *f = state;
	const char *field = f->field;

	if (type == JSON_TOKEN_NUMBER && !number_is_safe(token))
	{
		f->bad = true;			/* keeps the later jsonb conversion safe */
		return;
	}
	if (f->depth == 0)
	{
		f->bad = true;			/* a bare scalar, not an object */
		return;
	}
	if (field == NULL)
		return;

	if (f->depth == 2 && strcmp(field, "aud") == 0)
	{
		/* an element of an aud array */
		if (type != JSON_TOKEN_STRING)
			f->bad = true;
		else if (strcmp(token, f->audience) == 0)
			f->aud_matches = true;
		return;
	}
	if (f->depth != 1)
		return;

	if (strcmp(field, "alg") == 0)
		set_string(f, &f->alg, token, type);
	else if (strcmp(field, "kid") == 0)
		set_string(f, &f->kid, token, type);
	else if (strcmp(field, "sub") == 0)
		set_string(f, &f->sub, token, type);
	else if (strcmp(field, "sid") == 0)
		set_string(f, &f->sid, token, type);
	else if (strcmp(field, "gen") == 0)
		set_string(f, &f->gen, token, type);
	else if (strcmp(field, "iss") == 0)
		set_string(f, &f->iss, token, type);
	else if (strcmp(field, "role") == 0)
		set_string(f, &f->role, token, type);
	else if (strcmp(field, "exp") == 0)
		set_number(f, &f->has_exp, &f->exp, token, type);
	else if (strcmp(field, "nbf") == 0)
		set_number(f, &f->has_nbf, &f->nbf, token, type);
	else if (strcmp(field, "iat") == 0)
		set_number(f, &f->has_iat, &f->iat, token, type);
	else if (strcmp(field, "aud") == 0)
	{
		if (type != JSON_TOKEN_STRING || f->has_aud)
			f->bad = true;
		else if (strcmp(token, f->audience) == 0)
			f->aud_matches = true;
		f->has_aud = true;
	}
}

static void
fields_aud_array_start(void *state)
{
	JwtFields  *f = state;

	if (f->depth == 1 && in_aud(f))
	{
		if (f->has_aud)
			f->bad = true;
		f->has_aud = true;
	}
	else if (in_aud(f))
		f->bad = true;			/* an array in the aud array */
	fields_array_start(state);
}

/*
 * Whether the \uXXXX escape starting at p (n bytes left) stands for an ASCII
 * character, U+0001 to U+007F (U+0000 the JSON lexer refuses by itself).
 */
static bool
ascii_escape(const char *p, int n)
{
	return n >= 6 && p[0] == '\\' && p[1] == 'u' && p[2] == '0' && p[3] == '0' &&
		p[4] >= '0' && p[4] <= '7' && isxdigit((unsigned char) p[5]);
}

/*
 * Whether text is a JSON object we are willing to parse: valid UTF-8 without
 * NUL bytes, nested at most JWT_MAX_DEPTH deep (the JSON parser recurses and
 * would raise "stack depth limit exceeded" on hostile nesting).
 *
 * With ascii_escapes_only, a \u escape of a character beyond ASCII is refused
 * too: in a database whose encoding is not UTF8 the backend's JSON lexer
 * converts such a character to that encoding and raises an error where it
 * cannot (any of them in SQL_ASCII).
 */
bool
SessmgrJsonTextAcceptable(const char *text, int len, bool ascii_escapes_only)
{
	int			depth = 0;
	bool		in_string = false;

	if (memchr(text, '\0', len) != NULL ||
		pg_encoding_verifymbstr(PG_UTF8, text, len) != len)
		return false;

	for (int i = 0; i < len; i++)
	{
		char		c = text[i];

		if (in_string)
		{
			if (c == '\\')
			{
				if (ascii_escapes_only && i + 1 < len && text[i + 1] == 'u' &&
					!ascii_escape(text + i, len - i))
					return false;
				i++;
			}
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
		{
			if (++depth > JWT_MAX_DEPTH)
				return false;
		}
		else if (c == '}' || c == ']')
			depth--;
	}
	return true;
}

/*
 * Parse a JSON object into fields; false for anything unacceptable.  An aud
 * claim matches when it is, or an array holding, the string audience.
 * ascii_escapes_only: see SessmgrJsonTextAcceptable.
 */
bool
SessmgrJwtParseFields(char *text, int len, const char *audience,
					  bool ascii_escapes_only, JwtFields *fields)
{
	JsonLexContext *lex;
	JsonSemAction sem;

	memset(fields, 0, sizeof(*fields));
	fields->audience = audience;
	if (!SessmgrJsonTextAcceptable(text, len, ascii_escapes_only))
		return false;

	memset(&sem, 0, sizeof(sem));
	sem.semstate = fields;
	sem.object_start = fields_object_start;
	sem.object_end = fields_object_end;
	sem.array_start = fields_aud_array_start;
	sem.array_end = fields_array_end;
	sem.object_field_start = fields_field_start;
	sem.scalar = fields_scalar;

	lex = makeJsonLexContextCstringLen(text, len, PG_UTF8, true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
		return false;
	return fields->top_is_object && !fields->bad;
}

typedef struct MemberSearch
{
	int			depth;
	const char *const *keys;
	int			nkeys;
	int			current;		/* the key of the current top-level member, or -1 */
	char	  **values;
} MemberSearch;

static void
member_nest(void *state)
{
	((MemberSearch *) state)->depth++;
}

static void
member_unnest(void *state)
{
	((MemberSearch *) state)->depth--;
}

static void
member_field_start(void *state, char *fname, bool isnull)
{
	MemberSearch *m = state;

	if (m->depth != 1)
		return;
	m->current = -1;
	for (int i = 0; i < m->nkeys; i++)
		if (m->keys[i] != NULL && strcmp(fname, m->keys[i]) == 0)
			m->current = i;
}

static void
member_scalar(void *state, char *token, JsonTokenType type)
{
	MemberSearch *m = state;

	if (m->depth == 1 && m->current >= 0 && type == JSON_TOKEN_STRING &&
		m->values[m->current] == NULL)
		m->values[m->current] = token;
}

/*
 * The string values of the top-level members keys[0 .. nkeys - 1] of a JSON
 * object (the first one of each, if a key repeats; NULL where a key is
 * absent, NULL, or not a string), in one pass: for request.headers.  Returns
 * false, with every value NULL, when the text is not acceptable JSON (see
 * SessmgrJsonTextAcceptable).
 */
bool
SessmgrJsonGetMembers(char *text, int len, const char *const *keys, int nkeys,
					  char **values, bool ascii_escapes_only)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	MemberSearch m;

	memset(values, 0, sizeof(char *) * nkeys);
	if (!SessmgrJsonTextAcceptable(text, len, ascii_escapes_only))
		return false;
	memset(&m, 0, sizeof(m));
	m.keys = keys;
	m.nkeys = nkeys;
	m.current = -1;
	m.values = values;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &m;
	sem.object_start = member_nest;
	sem.object_end = member_unnest;
	sem.array_start = member_nest;
	sem.array_end = member_unnest;
	sem.object_field_start = member_field_start;
	sem.scalar = member_scalar;

	lex = makeJsonLexContextCstringLen(text, len, PG_UTF8, true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
	{
		memset(values, 0, sizeof(char *) * nkeys);
		return false;
	}
	return true;
}

/* The string value of one top-level member (SessmgrJsonGetMembers), or NULL. */
char *
SessmgrJsonGetMember(char *text, int len, const char *key, bool ascii_escapes_only)
{
	char	   *value;

	(void) SessmgrJsonGetMembers(text, len, &key, 1, &value, ascii_escapes_only);
	return value;
}

/*
 * The token of an HTTP Authorization header value "Bearer <token>" (the
 * scheme in any case, RFC 7235), or NULL for any other value.  Sets *len.
 */
const char *
SessmgrBearerToken(const char *header, int *len)
{
	const char *p;

	if (header == NULL || pg_strncasecmp(header, "bearer ", 7) != 0)
		return NULL;
	p = header + 7;
	while (*p == ' ')
		p++;
	*len = strlen(p);
	while (*len > 0 && p[*len - 1] == ' ')
		(*len)--;
	return *len > 0 ? p : NULL;
}

/* Decode one base64url segment of a token into a NUL-terminated string. */
char *
SessmgrJwtDecodeSegment(const char *start, int len, int *outlen)
{
	char	   *buf = palloc(len * 3 / 4 + 4);
	int			n = SessmgrBase64UrlDecode(start, len, (uint8 *) buf, len * 3 / 4 + 3);

	if (n < 0)
		return NULL;
	buf[n] = '\0';
	*outlen = n;
	return buf;
}

/*
 * Parse the gen claim: exactly 16 lower-case hex digits, the tag of the
 * session token an access token was minted with.
 */
bool
SessmgrParseGen(const char *text, int64 *gen)
{
	uint64		v = 0;

	if (strlen(text) != 16)
		return false;
	for (int i = 0; i < 16; i++)
	{
		int			c = text[i];
		int			d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return false;
		v = (v << 4) | d;
	}
	*gen = (int64) v;
	return true;
}

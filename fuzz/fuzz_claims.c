/*-------------------------------------------------------------------------
 *
 * fuzz_claims.c
 *	  libFuzzer target: SessmgrJwtParseFields() and SessmgrJsonTextAcceptable(),
 *	  the readers of access-token headers and claims (sessmgr_api.pre_request
 *	  hands them request.jwt.claims as is, verify_access_token the decoded
 *	  header before any signature check).
 *
 * Inputs longer than 8 kB are dropped, as both callers drop them.  Besides
 * ASan/UBSan cleanliness:
 *   - an accepted object has top-level members of the right types, finite
 *     numbers, and strings that are valid UTF-8 without NUL bytes;
 *   - the pre-scan is the only guard against deep nesting (the backend's
 *     recursive JSON parser would raise "stack depth limit exceeded"), so
 *     whenever it accepts a text, the parser must never get deeper than 8
 *     levels on it, whether or not the text turns out to be valid JSON;
 *   - with ascii_escapes_only (databases not in UTF8, where the backend's
 *     lexer raises for a \u escape it cannot convert) it accepts a subset,
 *     and the parser decodes no escape into a character beyond ASCII: the
 *     strings it hands over hold no more non-ASCII bytes than the input.
 * Both an empty and a configured audience are tried.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <math.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "fuzz_common.h"
#include "parse.h"

#define MAX_INPUT		8192
#define MAX_DEPTH		8

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct DepthState
{
	int			depth;
	int			max_depth;
} DepthState;

static void
depth_push(void *state)
{
	DepthState *s = state;

	if (++s->depth > s->max_depth)
		s->max_depth = s->depth;
}

static void
depth_pop(void *state)
{
	((DepthState *) state)->depth--;
}

typedef struct StringState
{
	size_t		non_ascii;
} StringState;

static size_t
count_non_ascii(const char *s, size_t len)
{
	size_t		n = 0;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char) s[i] >= 0x80)
			n++;
	return n;
}

static void
string_field(void *state, char *fname, bool isnull)
{
	((StringState *) state)->non_ascii += count_non_ascii(fname, strlen(fname));
}

static void
string_scalar(void *state, char *token, JsonTokenType type)
{
	if (type == JSON_TOKEN_STRING)
		((StringState *) state)->non_ascii += count_non_ascii(token, strlen(token));
}

/* non-ASCII bytes in the field names and strings the parser hands over */
static size_t
parser_non_ascii(char *text, int len)
{
	StringState state = {0};
	JsonSemAction sem;
	JsonLexContext *lex;

	memset(&sem, 0, sizeof(sem));
	sem.semstate = &state;
	sem.object_field_start = string_field;
	sem.scalar = string_scalar;
	lex = makeJsonLexContextCstringLen(text, len, PG_UTF8, true);
	(void) pg_parse_json(lex, &sem);
	return state.non_ascii;
}

/* how deep the real parser nests on text, valid JSON or not */
static int
parser_depth(char *text, int len)
{
	DepthState	state = {0, 0};
	JsonSemAction sem;
	JsonLexContext *lex;

	memset(&sem, 0, sizeof(sem));
	sem.semstate = &state;
	sem.object_start = depth_push;
	sem.object_end = depth_pop;
	sem.array_start = depth_push;
	sem.array_end = depth_pop;
	lex = makeJsonLexContextCstringLen(text, len, PG_UTF8, true);
	(void) pg_parse_json(lex, &sem);
	return state.max_depth;
}

static void
check_string(const char *s)
{
	if (s != NULL)
		FUZZ_CHECK(pg_encoding_verifymbstr(PG_UTF8, s, strlen(s)) == (int) strlen(s));
}

static void
check_fields(char *text, int len, const char *audience, bool ascii_escapes_only)
{
	JwtFields	f;

	if (!SessmgrJwtParseFields(text, len, audience, ascii_escapes_only, &f))
		return;
	FUZZ_CHECK(f.top_is_object && !f.bad && f.depth == 0);
	FUZZ_CHECK(f.audience == audience);
	FUZZ_CHECK(!f.has_exp || isfinite(f.exp));
	FUZZ_CHECK(!f.has_nbf || isfinite(f.nbf));
	FUZZ_CHECK(!f.has_iat || isfinite(f.iat));
	FUZZ_CHECK(!f.aud_matches || f.has_aud);
	check_string(f.alg);
	check_string(f.kid);
	check_string(f.sub);
	check_string(f.sid);
	check_string(f.gen);
	check_string(f.iss);
	check_string(f.role);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text;
	bool		acceptable;
	bool		ascii_acceptable;

	if (size > MAX_INPUT)
		return 0;

	/* NUL-terminated, as both callers pass it */
	text = fuzz_cstring(data, size);
	acceptable = SessmgrJsonTextAcceptable(text, size, false);
	if (acceptable)
		FUZZ_CHECK(parser_depth(text, size) <= MAX_DEPTH);
	ascii_acceptable = SessmgrJsonTextAcceptable(text, size, true);
	if (ascii_acceptable)
	{
		FUZZ_CHECK(acceptable);
		FUZZ_CHECK(parser_non_ascii(text, size) <= count_non_ascii(text, size));
	}

	check_fields(text, size, "", false);
	check_fields(text, size, "https://api.example.com", true);

	fuzz_reset();
	return 0;
}

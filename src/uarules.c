/*-------------------------------------------------------------------------
 *
 * uarules.c
 *	  uap-core's rules: regexes.yaml read with libyaml, matched with PCRE2.
 *
 * The rules are applied as uap-core's specification says: the lists
 * user_agent_parsers, os_parsers and device_parsers are tried in order, the
 * first expression that matches decides, $1..$9 in a replacement stand for
 * the groups, regex_flag 'i' makes an expression case-insensitive.  Where
 * the specification leaves details open (empty groups, trimming, an
 * expression whose family comes out empty) this follows the reference
 * implementation the test suites are checked with, Python's ua_parser.
 *
 * Loading reads the file and compiles nothing.  Each expression is reduced
 * to the literal strings any match must contain (an AND of ORs of
 * lower-cased literals, as the fast uap ports do with FilteredRE2 or
 * Aho-Corasick); a parse finds which literals occur in the user agent with
 * one pass over it (a trigram index) and runs only the expressions whose
 * literals are all there, compiling each (PCRE2, JIT) the first time it is
 * needed.  The prefilter is conservative: it only skips expressions that
 * cannot match.
 *
 * The effort is bounded: user agents longer than UAP_MAX_INPUT are not
 * read, each match has a match limit and a small JIT stack, and an input
 * that exhausts them more than UAP_MAX_EXHAUSTED times is given up on (the
 * parts not decided yet are "Other").
 *
 * Everything is allocated with malloc and freed by UapRulesFree; nothing
 * here raises or reads past the given lengths (the fuzz harness
 * fuzz_useragent runs it under ASan/UBSan).
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <ctype.h>
#include <limits.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yaml.h>

#include "useragent.h"

#define UAP_KINDS			3	/* user agent, os, device */
#define UAP_REPLACEMENTS	5	/* replacement fields of a rule, at most */
#define UAP_MATCH_LIMIT		100000	/* pcre2 match limit per expression */
#define UAP_DEPTH_LIMIT		1000	/* backtracking depth (interpreter) */
#define UAP_HEAP_LIMIT		1024	/* KiB of heap per match (interpreter) */
#define UAP_JIT_STACK		(64 * 1024)
#define UAP_MAX_EXHAUSTED	2	/* limit hits before an input is given up */
#define UAP_TIME_BUDGET_US	50000	/* ... or this long spent on it */
#define UAP_CLOCK_EVERY		16	/* matches between two looks at the clock */
#define UAP_OVECTOR_PAIRS	32
#define UAP_MAX_RULES		100000
#define UAP_MIN_ATOM		3	/* shortest literal worth filtering by */
#define UAP_MAX_ATOM		64
#define UAP_MAX_OR			256 /* alternatives in one requirement */
#define UAP_MAX_AND			6	/* requirements kept per expression */
#define UAP_MAX_EXACT		16	/* strings of an exact set */
#define UAP_MAX_DEPTH		16	/* group nesting the analysis follows */
#define UAP_BUCKETS			4096	/* trigram index */

typedef enum UapKind
{
	UAP_KIND_UA,
	UAP_KIND_OS,
	UAP_KIND_DEVICE
} UapKind;

static const char *const kind_names[UAP_KINDS] = {
	"user_agent_parsers", "os_parsers", "device_parsers"
};

/* the replacement keys of each kind, in the order of UapRule.repl */
static const char *const repl_names[UAP_KINDS][UAP_REPLACEMENTS] = {
	{"family_replacement", "v1_replacement", "v2_replacement", "v3_replacement", NULL},
	{"os_replacement", "os_v1_replacement", "os_v2_replacement", "os_v3_replacement",
	"os_v4_replacement"},
	{"device_replacement", "brand_replacement", "model_replacement", NULL, NULL}
};

typedef struct UapRule
{
	char	   *regex;
	bool		caseless;		/* regex_flag: 'i' */
	char	   *repl[UAP_REPLACEMENTS];	/* NULL when absent or empty */
	int			req_first;		/* requirements: rules->reqs[req_first..] */
	int			nreqs;
	pcre2_code *code;			/* compiled on first use */
	bool		broken;			/* PCRE2 refused it: never matches */
	uint32		ngroups;
} UapRule;

/* one requirement: at least one of the atoms occurs */
typedef struct UapReq
{
	int			first;			/* rules->req_atoms[first..first+n) */
	int			n;
} UapReq;

struct UapRules
{
	UapRule    *rules[UAP_KINDS];
	int			nrules[UAP_KINDS];
	int			maxrules[UAP_KINDS];

	UapReq	   *reqs;
	int			nreqs;
	int			maxreqs;
	int		   *req_atoms;
	int			nreq_atoms;
	int			maxreq_atoms;

	/* distinct lower-cased literals, chained by the hash of their first bytes */
	char	  **atoms;
	int		   *atom_len;
	int		   *atom_next;
	int			natoms;
	int			maxatoms;
	int			bucket[UAP_BUCKETS];
	uint8	   *seen;			/* per parse: which atoms occur */

	pcre2_match_context *mctx;
	pcre2_match_data *md;
	pcre2_jit_stack *jit_stack;
	int			compiled;
	int			broken;
	int			unfiltered;
};

/* ---- small helpers ---- */

static inline unsigned char
lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static inline int
trigram(const unsigned char *p)
{
	return ((p[0] * 961) + (p[1] * 31) + p[2]) & (UAP_BUCKETS - 1);
}

/* Grow *array (of *max elements of size elsize) to hold n; false if out of memory. */
static bool
grow(void **array, int *max, int n, size_t elsize)
{
	int			newmax;
	void	   *p;

	if (n <= *max)
		return true;
	newmax = *max < 16 ? 16 : *max * 2;
	while (newmax < n)
		newmax *= 2;
	p = realloc(*array, (size_t) newmax * elsize);
	if (p == NULL)
		return false;
	*array = p;
	*max = newmax;
	return true;
}

static char *
strndup_checked(const char *s, size_t len)
{
	char	   *p = malloc(len + 1);

	if (p != NULL)
	{
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* ---- the literal analysis of an expression ---- */

/*
 * What must occur in any match of (part of) an expression: an AND of
 * requirements, each an OR of lower-cased literals, as RE2's prefilter
 * works it out.  Along the way a part made only of literals, small
 * character classes, optional pieces and alternations of those is tracked
 * as the exact set of (lower-cased) strings it can match, so that
 * "LGE?[ -]" still yields {"lg ", "lg-", "lge ", "lge-"}.  Literals shorter
 * than UAP_MIN_ATOM are not worth requiring.  Atoms point into the
 * analyzer's arena.
 */
typedef struct AReq
{
	int			n;
	const char *s[UAP_MAX_OR];
	int			len[UAP_MAX_OR];
} AReq;

typedef struct AStrs
{
	int			n;
	uint8		len[UAP_MAX_EXACT];
	char		s[UAP_MAX_EXACT][UAP_MAX_ATOM];
} AStrs;

typedef struct AInfo
{
	bool		exact;			/* matches exactly one of strs */
	AStrs		strs;
	int			n;				/* requirements, all needed */
	AReq		r[UAP_MAX_AND];
} AInfo;

/* working space of one nesting depth, kept from one expression to the next */
typedef struct AScratch
{
	AStrs		cur;			/* analyze_sequence */
	AStrs		atom;
	AStrs		tmp;
	AInfo		sub;
	AInfo		branch;			/* analyze_alternation */
	AReq		merged;
} AScratch;

typedef struct Analyzer
{
	const char *p;				/* next character of the expression */
	const char *end;
	bool		bad;			/* something not understood: no filter */
	char		arena[8192];
	int			arena_used;
	AInfo		top;
	AScratch   *level[UAP_MAX_DEPTH + 1];
} Analyzer;

/* The working space of depth, allocated on first use; NULL if out of memory. */
static AScratch *
scratch(Analyzer *a, int depth)
{
	if (a->level[depth] == NULL)
		a->level[depth] = malloc(sizeof(AScratch));
	return a->level[depth];
}

/* weakest literal of a requirement: how selective it is */
static int
req_score(const AReq *r)
{
	int			score = INT_MAX;

	for (int i = 0; i < r->n; i++)
		if (r->len[i] < score)
			score = r->len[i];
	return score * 1000 - r->n;
}

/* Copies that move only the used part of the (large) structs. */
static void
req_copy(AReq *dst, const AReq *src)
{
	dst->n = src->n;
	memcpy(dst->s, src->s, src->n * sizeof(src->s[0]));
	memcpy(dst->len, src->len, src->n * sizeof(src->len[0]));
}

static void
strs_copy(AStrs *dst, const AStrs *src)
{
	dst->n = src->n;
	for (int i = 0; i < src->n; i++)
	{
		dst->len[i] = src->len[i];
		memcpy(dst->s[i], src->s[i], src->len[i]);
	}
}

static void
info_copy(AInfo *dst, const AInfo *src)
{
	dst->exact = src->exact;
	strs_copy(&dst->strs, &src->strs);
	dst->n = src->n;
	for (int i = 0; i < src->n; i++)
		req_copy(&dst->r[i], &src->r[i]);
}

/* Add a requirement to info, keeping the UAP_MAX_AND most selective. */
static void
info_add(AInfo *info, const AReq *r)
{
	int			worst = -1;

	if (r->n == 0)
		return;
	if (info->n < UAP_MAX_AND)
	{
		req_copy(&info->r[info->n++], r);
		return;
	}
	for (int i = 0; i < info->n; i++)
		if (worst < 0 || req_score(&info->r[i]) < req_score(&info->r[worst]))
			worst = i;
	if (req_score(r) > req_score(&info->r[worst]))
		req_copy(&info->r[worst], r);
}

static void
strs_set1(AStrs *set, const char *s, int len)
{
	set->n = 1;
	set->len[0] = len;
	memcpy(set->s[0], s, len);
}

/* Add s to set unless there; false if the set is full. */
static bool
strs_add(AStrs *set, const char *s, int len)
{
	for (int i = 0; i < set->n; i++)
		if (set->len[i] == len && memcmp(set->s[i], s, len) == 0)
			return true;
	if (set->n == UAP_MAX_EXACT || len > UAP_MAX_ATOM)
		return false;
	set->len[set->n] = len;
	memcpy(set->s[set->n], s, len);
	set->n++;
	return true;
}

/* out = a x b (every string of a followed by one of b); false if too big. */
static bool
strs_cross(const AStrs *a, const AStrs *b, AStrs *out)
{
	out->n = 0;
	for (int i = 0; i < a->n; i++)
		for (int j = 0; j < b->n; j++)
		{
			char		buf[2 * UAP_MAX_ATOM];

			if (a->len[i] + b->len[j] > UAP_MAX_ATOM)
				return false;
			memcpy(buf, a->s[i], a->len[i]);
			memcpy(buf + a->len[i], b->s[j], b->len[j]);
			if (!strs_add(out, buf, a->len[i] + b->len[j]))
				return false;
		}
	return true;
}

/* Require one of the strings of set, if all are long enough; set becomes {""}. */
static void
commit_strs(Analyzer *a, AInfo *info, AStrs *set)
{
	AReq		req;
	AReq	   *r = &req;
	bool		ok = true;

	for (int i = 0; i < set->n && ok; i++)
		ok = set->len[i] >= UAP_MIN_ATOM &&
			a->arena_used + set->len[i] + 1 <= (int) sizeof(a->arena);
	if (ok && set->n > 0)
	{
		r->n = 0;
		for (int i = 0; i < set->n; i++)
		{
			char	   *s = a->arena + a->arena_used;

			memcpy(s, set->s[i], set->len[i]);
			s[set->len[i]] = '\0';
			a->arena_used += set->len[i] + 1;
			r->s[r->n] = s;
			r->len[r->n] = set->len[i];
			r->n++;
		}
		info_add(info, r);
	}
	strs_set1(set, "", 0);
}

/*
 * Read a quantifier at a->p, if any: *min and *max (-1: unbounded).  A brace
 * that does not start a valid quantifier is a literal for PCRE2 and is left.
 */
static bool
read_quantifier(Analyzer *a, int *min, int *max)
{
	const char *p = a->p;

	if (p >= a->end)
		return false;
	if (*p == '?' || *p == '*' || *p == '+')
	{
		*min = (*p == '+') ? 1 : 0;
		*max = (*p == '?') ? 1 : -1;
		p++;
	}
	else if (*p == '{')
	{
		int			lo = 0,
					hi;
		const char *q = p + 1;

		if (q >= a->end || !isdigit((unsigned char) *q))
			return false;
		while (q < a->end && isdigit((unsigned char) *q))
		{
			if (lo < 100000)
				lo = lo * 10 + (*q - '0');
			q++;
		}
		hi = lo;
		if (q < a->end && *q == ',')
		{
			q++;
			hi = -1;
			if (q < a->end && isdigit((unsigned char) *q))
			{
				hi = 0;
				while (q < a->end && isdigit((unsigned char) *q))
				{
					if (hi < 100000)
						hi = hi * 10 + (*q - '0');
					q++;
				}
			}
		}
		if (q >= a->end || *q != '}')
			return false;
		*min = lo;
		*max = hi;
		p = q + 1;
	}
	else
		return false;
	/* lazy or possessive */
	if (p < a->end && (*p == '?' || *p == '+'))
		p++;
	a->p = p;
	return true;
}

/*
 * A character class starting at a->p ('['): skip it; true with its members
 * in set when it is a short list of plain characters (no ranges, negation,
 * escapes of classes).
 */
static bool
read_class(Analyzer *a, AStrs *set)
{
	const char *q = a->p + 1;
	bool		plain = true;

	set->n = 0;
	if (q < a->end && *q == '^')
	{
		plain = false;
		q++;
	}
	if (q < a->end && *q == ']')
	{
		if (!strs_add(set, "]", 1))
			plain = false;
		q++;
	}
	while (q < a->end && *q != ']')
	{
		char		c;

		if (*q == '\\')
		{
			if (q + 1 >= a->end)
				break;
			c = q[1];
			if ((unsigned char) c >= 0x80 || isalnum((unsigned char) c))
				plain = false;
			q += 2;
		}
		else if (*q == '[' && q + 1 < a->end && q[1] == ':')
		{
			const char *close = q + 2;

			while (close + 1 < a->end && !(close[0] == ':' && close[1] == ']'))
				close++;
			if (close + 1 >= a->end)
				break;
			plain = false;
			q = close + 2;
			continue;
		}
		else
		{
			c = *q;
			if ((unsigned char) c >= 0x80 ||
				(q + 2 < a->end && q[1] == '-' && q[2] != ']'))
				plain = false;	/* non-ASCII, or a range */
			q++;
		}
		c = (char) lower((unsigned char) c);
		if (plain && !strs_add(set, &c, 1))
			plain = false;
	}
	if (q >= a->end)
	{
		a->bad = true;
		return false;
	}
	a->p = q + 1;
	return plain && set->n > 0 && set->n <= 8;
}

static void analyze_alternation(Analyzer *a, AInfo *out, int depth);

/* A sequence of atoms up to '|', ')' or the end. */
static void
analyze_sequence(Analyzer *a, AInfo *out, int depth)
{
	AScratch   *sc = scratch(a, depth);
	AStrs	   *cur,
			   *atom,
			   *tmp;
	AInfo	   *sub;
	bool		exact = true;

	out->n = 0;
	out->exact = false;
	out->strs.n = 0;
	if (sc == NULL)
	{
		a->bad = true;
		return;
	}
	cur = &sc->cur;
	atom = &sc->atom;
	tmp = &sc->tmp;
	sub = &sc->sub;
	strs_set1(cur, "", 0);
	while (a->p < a->end && !a->bad && *a->p != '|' && *a->p != ')')
	{
		bool		is_exact = false;	/* the atom matches one of *atom */
		bool		is_group = false;	/* non-exact group: sub's requirements */
		int			min = 1,
					max = 1;
		unsigned char c = (unsigned char) *a->p;

		if (c == '\\')
		{
			unsigned char e;

			if (a->p + 1 >= a->end)
			{
				a->bad = true;
				break;
			}
			e = (unsigned char) a->p[1];
			a->p += 2;
			if (e != '\0' && strchr("dDwWsShHvVNR", e) != NULL)
				;				/* some character */
			else if (e != '\0' && strchr("bBAzZG", e) != NULL)
			{
				is_exact = true;	/* zero-width: keeps neighbours adjacent */
				strs_set1(atom, "", 0);
			}
			else if (e < 0x80 && !isalnum(e))
			{
				char		l = (char) lower(e);

				is_exact = true;
				strs_set1(atom, &l, 1);
			}
			else
			{
				/* \x, \p, back references, \Q...: not followed */
				a->bad = true;
				break;
			}
		}
		else if (c == '[')
			is_exact = read_class(a, atom);
		else if (c == '(')
		{
			a->p++;
			if (a->p < a->end && *a->p == '?')
			{
				if (a->p + 1 < a->end && a->p[1] == ':')
					a->p += 2;
				else
				{
					/* lookaround, inline options, named groups: not followed */
					a->bad = true;
					break;
				}
			}
			if (depth >= UAP_MAX_DEPTH)
			{
				a->bad = true;
				break;
			}
			analyze_alternation(a, sub, depth + 1);
			if (a->bad || a->p >= a->end || *a->p != ')')
			{
				a->bad = true;
				break;
			}
			a->p++;
			if (sub->exact)
			{
				is_exact = true;
				strs_copy(atom, &sub->strs);
			}
			else
				is_group = true;
		}
		else if (c == '.')
			a->p++;
		else if (c == '^' || c == '$')
		{
			a->p++;
			is_exact = true;
			strs_set1(atom, "", 0);
		}
		else if (c == '*' || c == '+' || c == '?')
		{
			/* a quantifier with nothing to repeat */
			a->bad = true;
			break;
		}
		else if (c >= 0x80)
		{
			/* a multibyte character: one atom, not a literal here */
			a->p++;
			while (a->p < a->end && ((unsigned char) *a->p & 0xC0) == 0x80)
				a->p++;
		}
		else
		{
			char		l = (char) lower(c);

			a->p++;
			is_exact = true;
			strs_set1(atom, &l, 1);
		}
		if (a->bad)
			break;

		read_quantifier(a, &min, &max);

		if (is_exact && min == 1 && max == 1)
		{
			if (strs_cross(cur, atom, tmp))
				strs_copy(cur, tmp);
			else
			{
				commit_strs(a, out, cur);
				strs_copy(cur, atom);
			}
		}
		else if (is_exact && min == 0 && max == 1)
		{
			/* optional: either what came before, or it followed by this */
			bool		fits = strs_cross(cur, atom, tmp);

			for (int i = 0; fits && i < cur->n; i++)
				fits = strs_add(tmp, cur->s[i], cur->len[i]);
			if (fits)
				strs_copy(cur, tmp);
			else
			{
				commit_strs(a, out, cur);
				exact = false;
			}
		}
		else if (is_exact && min >= 1)
		{
			/* repeated: the first copy follows what came before, the last precedes what follows */
			if (strs_cross(cur, atom, tmp))
				strs_copy(cur, tmp);
			commit_strs(a, out, cur);
			strs_copy(cur, atom);
			exact = false;
		}
		else
		{
			/* optional, or not a literal: what came before ends here */
			commit_strs(a, out, cur);
			exact = false;
			if (is_group && min >= 1)
				for (int i = 0; i < sub->n; i++)
					info_add(out, &sub->r[i]);
		}
	}
	if (exact && !a->bad)
	{
		out->exact = true;
		strs_copy(&out->strs, cur);
	}
	commit_strs(a, out, cur);
}

/*
 * Branches separated by '|': a match of the whole matches one branch, so
 * the best requirement of each branch, ORed together, is required.
 */
static void
analyze_alternation(Analyzer *a, AInfo *out, int depth)
{
	AInfo	   *branch;
	AReq	   *merged;
	bool		unconstrained = false;

	analyze_sequence(a, out, depth);
	if (a->bad || a->p >= a->end || *a->p != '|')
		return;

	if (scratch(a, depth) == NULL)
	{
		a->bad = true;
		return;
	}
	branch = &a->level[depth]->branch;
	merged = &a->level[depth]->merged;
	merged->n = 0;
	info_copy(branch, out);
	for (;;)
	{
		int			best = -1;

		/* the exact set of the whole: the union of the branches' */
		if (out->exact && branch != NULL && branch->exact)
		{
			for (int i = 0; i < branch->strs.n && out->exact; i++)
				out->exact = strs_add(&out->strs, branch->strs.s[i], branch->strs.len[i]);
		}
		else
			out->exact = false;

		if (branch->n == 0)
			unconstrained = true;
		else
		{
			for (int i = 0; i < branch->n; i++)
				if (best < 0 || req_score(&branch->r[i]) > req_score(&branch->r[best]))
					best = i;
			for (int i = 0; i < branch->r[best].n; i++)
			{
				if (merged->n == UAP_MAX_OR)
				{
					unconstrained = true;
					break;
				}
				merged->s[merged->n] = branch->r[best].s[i];
				merged->len[merged->n] = branch->r[best].len[i];
				merged->n++;
			}
		}
		if (a->bad || a->p >= a->end || *a->p != '|')
			break;
		a->p++;
		analyze_sequence(a, branch, depth);
	}
	out->n = 0;
	if (!unconstrained && !a->bad)
		info_add(out, merged);
}

/* ---- loading ---- */

/* The index of the atom s (interned, lower-cased already), or -1 (out of memory). */
static int
intern_atom(UapRules *rules, const char *s, int len)
{
	int			b = trigram((const unsigned char *) s);
	char	   *copy;

	for (int i = rules->bucket[b]; i >= 0; i = rules->atom_next[i])
		if (rules->atom_len[i] == len && memcmp(rules->atoms[i], s, len) == 0)
			return i;

	if (!grow((void **) &rules->atoms, &rules->maxatoms, rules->natoms + 1, sizeof(char *)))
		return -1;
	/* the parallel arrays grow with atoms; keep their capacity equal */
	{
		int			max = rules->maxatoms;
		int		   *len_arr = realloc(rules->atom_len, (size_t) max * sizeof(int));

		if (len_arr == NULL)
			return -1;
		rules->atom_len = len_arr;
		len_arr = realloc(rules->atom_next, (size_t) max * sizeof(int));
		if (len_arr == NULL)
			return -1;
		rules->atom_next = len_arr;
	}
	copy = strndup_checked(s, len);
	if (copy == NULL)
		return -1;
	rules->atoms[rules->natoms] = copy;
	rules->atom_len[rules->natoms] = len;
	rules->atom_next[rules->natoms] = rules->bucket[b];
	rules->bucket[b] = rules->natoms;
	return rules->natoms++;
}

/* Work out the prefilter of a rule; false if out of memory. */
static bool
add_requirements(UapRules *rules, UapRule *rule, Analyzer *a)
{
	AInfo	   *info = &a->top;
	bool		ok = true;

	rule->req_first = rules->nreqs;
	rule->nreqs = 0;
	{
		a->p = rule->regex;
		a->end = rule->regex + strlen(rule->regex);
		a->bad = false;
		a->arena_used = 0;
		analyze_alternation(a, info, 0);
		if (a->p != a->end)
			a->bad = true;		/* an unbalanced ')' */
	}
	for (int i = 0; ok && !a->bad && i < info->n; i++)
	{
		UapReq	   *req;

		if (!grow((void **) &rules->reqs, &rules->maxreqs, rules->nreqs + 1,
				  sizeof(UapReq)) ||
			!grow((void **) &rules->req_atoms, &rules->maxreq_atoms,
				  rules->nreq_atoms + info->r[i].n, sizeof(int)))
		{
			ok = false;
			break;
		}
		req = &rules->reqs[rules->nreqs];
		req->first = rules->nreq_atoms;
		req->n = info->r[i].n;
		for (int j = 0; ok && j < info->r[i].n; j++)
		{
			int			atom = intern_atom(rules, info->r[i].s[j], info->r[i].len[j]);

			if (atom < 0)
				ok = false;
			else
				rules->req_atoms[rules->nreq_atoms++] = atom;
		}
		if (ok)
		{
			rules->nreqs++;
			rule->nreqs++;
		}
	}
	if (ok && rule->nreqs == 0)
		rules->unfiltered++;
	return ok;
}

typedef struct YamlReader
{
	yaml_parser_t parser;
	yaml_event_t event;
	bool		have_event;
	char	   *err;
	size_t		errlen;
	Analyzer   *analyzer;		/* for the prefilter of each rule */
} YamlReader;

/* The next event, in r->event; false (and r->err set) at an error. */
static bool
next_event(YamlReader *r)
{
	if (r->have_event)
		yaml_event_delete(&r->event);
	r->have_event = false;
	if (!yaml_parser_parse(&r->parser, &r->event))
	{
		snprintf(r->err, r->errlen, "YAML error at line %lu: %s",
				 (unsigned long) r->parser.problem_mark.line + 1,
				 r->parser.problem ? r->parser.problem : "unknown problem");
		return false;
	}
	r->have_event = true;
	if (r->event.type == YAML_ALIAS_EVENT)
	{
		snprintf(r->err, r->errlen, "YAML aliases are not supported (line %lu)",
				 (unsigned long) r->event.start_mark.line + 1);
		return false;
	}
	return true;
}

static bool
expect_event(YamlReader *r, yaml_event_type_t type, const char *what)
{
	if (!next_event(r))
		return false;
	if (r->event.type != type)
	{
		snprintf(r->err, r->errlen, "expected %s at line %lu", what,
				 (unsigned long) r->event.start_mark.line + 1);
		return false;
	}
	return true;
}

/* Skip the node whose first event is the current one. */
static bool
skip_node(YamlReader *r)
{
	int			depth = 0;

	for (;;)
	{
		switch (r->event.type)
		{
			case YAML_SEQUENCE_START_EVENT:
			case YAML_MAPPING_START_EVENT:
				depth++;
				break;
			case YAML_SEQUENCE_END_EVENT:
			case YAML_MAPPING_END_EVENT:
				depth--;
				break;
			default:
				break;
		}
		if (depth <= 0)
			return true;
		if (!next_event(r))
			return false;
	}
}

static bool
scalar_is(const yaml_event_t *e, const char *s)
{
	return e->data.scalar.length == strlen(s) &&
		memcmp(e->data.scalar.value, s, e->data.scalar.length) == 0;
}

/* Read one rule (a mapping) of a list; the MAPPING_START is the current event. */
static bool
read_rule(UapRules *rules, YamlReader *r, UapKind kind)
{
	UapRule    *rule;
	unsigned long line = (unsigned long) r->event.start_mark.line + 1;

	if (rules->nrules[kind] >= UAP_MAX_RULES)
	{
		snprintf(r->err, r->errlen, "more than %d rules in %s", UAP_MAX_RULES, kind_names[kind]);
		return false;
	}
	if (!grow((void **) &rules->rules[kind], &rules->maxrules[kind], rules->nrules[kind] + 1,
			  sizeof(UapRule)))
	{
		snprintf(r->err, r->errlen, "out of memory");
		return false;
	}
	rule = &rules->rules[kind][rules->nrules[kind]++];
	memset(rule, 0, sizeof(*rule));

	for (;;)
	{
		char	  **target = NULL;
		bool		is_flag = false;

		if (!next_event(r))
			return false;
		if (r->event.type == YAML_MAPPING_END_EVENT)
			break;
		if (r->event.type != YAML_SCALAR_EVENT)
		{
			snprintf(r->err, r->errlen, "expected a key at line %lu",
					 (unsigned long) r->event.start_mark.line + 1);
			return false;
		}
		if (scalar_is(&r->event, "regex"))
			target = &rule->regex;
		else if (scalar_is(&r->event, "regex_flag"))
			is_flag = true;
		else
			for (int i = 0; i < UAP_REPLACEMENTS; i++)
				if (repl_names[kind][i] != NULL && scalar_is(&r->event, repl_names[kind][i]))
					target = &rule->repl[i];

		if (!next_event(r))
			return false;
		if (r->event.type != YAML_SCALAR_EVENT)
		{
			if (target != NULL || is_flag)
			{
				snprintf(r->err, r->errlen, "expected a string at line %lu",
						 (unsigned long) r->event.start_mark.line + 1);
				return false;
			}
			if (!skip_node(r))
				return false;
			continue;
		}
		if (is_flag)
			rule->caseless = scalar_is(&r->event, "i");
		else if (target != NULL)
		{
			if (memchr(r->event.data.scalar.value, '\0', r->event.data.scalar.length) != NULL)
			{
				snprintf(r->err, r->errlen, "a NUL character at line %lu",
						 (unsigned long) r->event.start_mark.line + 1);
				return false;
			}
			free(*target);
			*target = NULL;
			/* an empty replacement is no replacement (as in the reference) */
			if (r->event.data.scalar.length > 0 || target == &rule->regex)
			{
				*target = strndup_checked((const char *) r->event.data.scalar.value,
										  r->event.data.scalar.length);
				if (*target == NULL)
				{
					snprintf(r->err, r->errlen, "out of memory");
					return false;
				}
			}
		}
	}
	if (rule->regex == NULL)
	{
		snprintf(r->err, r->errlen, "a rule of %s without regex at line %lu",
				 kind_names[kind], line);
		return false;
	}
	if (!add_requirements(rules, rule, r->analyzer))
	{
		snprintf(r->err, r->errlen, "out of memory");
		return false;
	}
	return true;
}

static bool
read_document(UapRules *rules, YamlReader *r)
{
	if (!expect_event(r, YAML_STREAM_START_EVENT, "a YAML stream") ||
		!expect_event(r, YAML_DOCUMENT_START_EVENT, "a YAML document") ||
		!expect_event(r, YAML_MAPPING_START_EVENT, "a mapping"))
		return false;
	for (;;)
	{
		int			kind = -1;

		if (!next_event(r))
			return false;
		if (r->event.type == YAML_MAPPING_END_EVENT)
			break;
		if (r->event.type != YAML_SCALAR_EVENT)
		{
			snprintf(r->err, r->errlen, "expected a key at line %lu",
					 (unsigned long) r->event.start_mark.line + 1);
			return false;
		}
		for (int k = 0; k < UAP_KINDS; k++)
			if (scalar_is(&r->event, kind_names[k]))
				kind = k;
		if (!next_event(r))
			return false;
		if (kind < 0)
		{
			if (!skip_node(r))
				return false;
			continue;
		}
		if (r->event.type != YAML_SEQUENCE_START_EVENT)
		{
			snprintf(r->err, r->errlen, "%s is not a list (line %lu)", kind_names[kind],
					 (unsigned long) r->event.start_mark.line + 1);
			return false;
		}
		for (;;)
		{
			if (!next_event(r))
				return false;
			if (r->event.type == YAML_SEQUENCE_END_EVENT)
				break;
			if (r->event.type != YAML_MAPPING_START_EVENT)
			{
				snprintf(r->err, r->errlen, "expected a rule at line %lu",
						 (unsigned long) r->event.start_mark.line + 1);
				return false;
			}
			if (!read_rule(rules, r, (UapKind) kind))
				return false;
		}
	}
	for (int k = 0; k < UAP_KINDS; k++)
		if (rules->nrules[k] == 0)
		{
			snprintf(r->err, r->errlen, "no %s", kind_names[k]);
			return false;
		}
	return true;
}

/*
 * Read a regexes.yaml held in memory.  Compiles nothing.  Returns NULL, with
 * a message in err, for a file that is not one.
 */
UapRules *
UapRulesLoad(const char *yaml, size_t len, char *err, size_t errlen)
{
	UapRules   *rules = calloc(1, sizeof(UapRules));
	YamlReader	r;
	bool		ok;
	int			natoms_bytes;

	if (rules == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memset(rules->bucket, -1, sizeof(rules->bucket));

	memset(&r, 0, sizeof(r));
	r.err = err;
	r.errlen = errlen;
	r.analyzer = calloc(1, sizeof(Analyzer));
	if (r.analyzer == NULL || !yaml_parser_initialize(&r.parser))
	{
		snprintf(err, errlen, "out of memory");
		free(r.analyzer);
		free(rules);
		return NULL;
	}
	yaml_parser_set_input_string(&r.parser, (const unsigned char *) yaml, len);
	ok = read_document(rules, &r);
	if (r.have_event)
		yaml_event_delete(&r.event);
	yaml_parser_delete(&r.parser);
	for (int i = 0; i <= UAP_MAX_DEPTH; i++)
		free(r.analyzer->level[i]);
	free(r.analyzer);
	if (!ok)
	{
		UapRulesFree(rules);
		return NULL;
	}

	natoms_bytes = (rules->natoms + 7) / 8 + 1;
	rules->seen = malloc(natoms_bytes);
	rules->mctx = pcre2_match_context_create(NULL);
	rules->md = pcre2_match_data_create(UAP_OVECTOR_PAIRS, NULL);
	rules->jit_stack = pcre2_jit_stack_create(32 * 1024, UAP_JIT_STACK, NULL);
	if (rules->seen == NULL || rules->mctx == NULL || rules->md == NULL)
	{
		snprintf(err, errlen, "out of memory");
		UapRulesFree(rules);
		return NULL;
	}
	pcre2_set_match_limit(rules->mctx, UAP_MATCH_LIMIT);
	pcre2_set_depth_limit(rules->mctx, UAP_DEPTH_LIMIT);
	pcre2_set_heap_limit(rules->mctx, UAP_HEAP_LIMIT);
	if (rules->jit_stack != NULL)
		pcre2_jit_stack_assign(rules->mctx, NULL, rules->jit_stack);
	return rules;
}

void
UapRulesFree(UapRules *rules)
{
	if (rules == NULL)
		return;
	for (int k = 0; k < UAP_KINDS; k++)
	{
		for (int i = 0; i < rules->nrules[k]; i++)
		{
			UapRule    *rule = &rules->rules[k][i];

			free(rule->regex);
			for (int j = 0; j < UAP_REPLACEMENTS; j++)
				free(rule->repl[j]);
			if (rule->code)
				pcre2_code_free(rule->code);
		}
		free(rules->rules[k]);
	}
	for (int i = 0; i < rules->natoms; i++)
		free(rules->atoms[i]);
	free(rules->atoms);
	free(rules->atom_len);
	free(rules->atom_next);
	free(rules->reqs);
	free(rules->req_atoms);
	free(rules->seen);
	if (rules->md)
		pcre2_match_data_free(rules->md);
	if (rules->mctx)
		pcre2_match_context_free(rules->mctx);
	if (rules->jit_stack)
		pcre2_jit_stack_free(rules->jit_stack);
	free(rules);
}

void
UapRulesGetStats(const UapRules *rules, UapRulesStats *stats)
{
	stats->rules = rules->nrules[0] + rules->nrules[1] + rules->nrules[2];
	stats->unfiltered = rules->unfiltered;
	stats->compiled = rules->compiled;
	stats->broken = rules->broken;
}

/* ---- matching ---- */

/* Compile a rule on first use; false if PCRE2 refuses it (it then never matches). */
static bool
compile_rule(UapRules *rules, UapRule *rule)
{
	int			errcode;
	PCRE2_SIZE	erroffset;
	uint32		options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;

	if (rule->code != NULL)
		return true;
	if (rule->broken)
		return false;
	if (rule->caseless)
		options |= PCRE2_CASELESS;
	rule->code = pcre2_compile((PCRE2_SPTR) rule->regex, PCRE2_ZERO_TERMINATED, options,
							   &errcode, &erroffset, NULL);
	if (rule->code == NULL)
	{
		rule->broken = true;
		rules->broken++;
		return false;
	}
	/* without JIT (no memory, no JIT support) the interpreter runs it */
	(void) pcre2_jit_compile(rule->code, PCRE2_JIT_COMPLETE);
	if (pcre2_pattern_info(rule->code, PCRE2_INFO_CAPTURECOUNT, &rule->ngroups) != 0)
		rule->ngroups = 0;
	rules->compiled++;
	return true;
}

/* per-parse state */
typedef struct Matcher
{
	UapRules   *rules;
	const char *subject;
	size_t		len;
	bool		prefilter;		/* skip expressions whose literals are missing */
	bool		nonascii;		/* the input has bytes the ASCII folding misses */
	int			exhausted;		/* matches that ran out of effort */
	int			runs;			/* expressions run */
	struct timespec start;
	PCRE2_SIZE *ov;
	uint32		ngroups;		/* of the matched rule */
	uint32		nset;			/* pairs of ov set by the match */
} Matcher;

static int64
elapsed_us(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64) (now.tv_sec - start->tv_sec) * 1000000 +
		(now.tv_nsec - start->tv_nsec) / 1000;
}

static bool
rule_is_candidate(const Matcher *m, const UapRule *rule)
{
	const UapRules *rules = m->rules;

	if (!m->prefilter || (rule->caseless && m->nonascii))
		return true;
	for (int i = 0; i < rule->nreqs; i++)
	{
		const UapReq *req = &rules->reqs[rule->req_first + i];
		bool		found = false;

		for (int j = 0; j < req->n && !found; j++)
		{
			int			atom = rules->req_atoms[req->first + j];

			found = (rules->seen[atom >> 3] & (1 << (atom & 7))) != 0;
		}
		if (!found)
			return false;
	}
	return true;
}

/* Run a rule; true if it matched (m->ov then holds the groups). */
static bool
match_rule(Matcher *m, UapRule *rule)
{
	int			rc;

	if (m->exhausted > UAP_MAX_EXHAUSTED || !rule_is_candidate(m, rule) ||
		!compile_rule(m->rules, rule))
		return false;
	if (++m->runs % UAP_CLOCK_EVERY == 0 && elapsed_us(&m->start) > UAP_TIME_BUDGET_US)
	{
		m->exhausted = UAP_MAX_EXHAUSTED + 1;
		return false;
	}
	rc = pcre2_match(rule->code, (PCRE2_SPTR) m->subject, m->len, 0, 0, m->rules->md,
					 m->rules->mctx);
	if (rc < 0)
	{
		if (rc != PCRE2_ERROR_NOMATCH)
			m->exhausted++;		/* match, depth, heap or JIT stack limit */
		return false;
	}
	m->ov = pcre2_get_ovector_pointer(m->rules->md);
	m->nset = rc == 0 ? UAP_OVECTOR_PAIRS : (uint32) rc;
	m->ngroups = rule->ngroups;
	return true;
}

/* Group n of the last match: false if it did not take part. */
static bool
group(const Matcher *m, uint32 n, const char **s, size_t *len)
{
	if (n == 0 || n > m->ngroups || n >= m->nset || m->ov[2 * n] == PCRE2_UNSET)
		return false;
	*s = m->subject + m->ov[2 * n];
	*len = m->ov[2 * n + 1] - m->ov[2 * n];
	return true;
}

/* Cut len so that s[0..len) ends on a UTF-8 character boundary within max bytes. */
static size_t
utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	len = max;
	while (len > 0 && ((unsigned char) s[len] & 0xC0) == 0x80)
		len--;
	return len;
}

static void
set_field(UapResult *result, UapField field, const char *s, size_t len)
{
	len = utf8_cut(s, len, UAP_FIELD_MAX);
	result->off[field] = (int16) result->used;
	memcpy(result->buf + result->used, s, len);
	result->buf[result->used + len] = '\0';
	result->used += len + 1;
}

static void
set_group(UapResult *result, UapField field, const Matcher *m, uint32 n, bool empty_is_null)
{
	const char *s;
	size_t		len;

	if (group(m, n, &s, &len) && !(empty_is_null && len == 0))
		set_field(result, field, s, len);
	else
		result->off[field] = -1;
}

/*
 * A replacement with $1..$9 replaced by their groups (a group that did not
 * take part is empty; $0 is the last group, as in the reference), then
 * trimmed; NULL when empty.  only_dollar1: the user agent family, where the
 * reference replaces $1 only and does not trim.
 */
static void
set_replacement(UapResult *result, UapField field, const Matcher *m, const char *repl,
				bool only_dollar1)
{
	char		out[UAP_FIELD_MAX + 1];
	size_t		n = 0;
	const char *start;

	for (const char *p = repl; *p != '\0' && n < UAP_FIELD_MAX; p++)
	{
		if (p[0] == '$' && p[1] >= '0' && p[1] <= '9' && (!only_dollar1 || p[1] == '1'))
		{
			uint32		g = p[1] == '0' ? m->ngroups : (uint32) (p[1] - '0');
			const char *s;
			size_t		len;

			if (group(m, g, &s, &len))
			{
				len = utf8_cut(s, len, UAP_FIELD_MAX - n);
				memcpy(out + n, s, len);
				n += len;
			}
			p++;
		}
		else
			out[n++] = *p;
	}
	n = utf8_cut(out, n, UAP_FIELD_MAX);
	start = out;
	if (!only_dollar1)
	{
		while (n > 0 && isspace((unsigned char) *start))
		{
			start++;
			n--;
		}
		while (n > 0 && isspace((unsigned char) start[n - 1]))
			n--;
		if (n == 0)
		{
			result->off[field] = -1;
			return;
		}
	}
	set_field(result, field, start, n);
}

static bool
field_empty(const UapResult *result, UapField field)
{
	return result->off[field] < 0 || result->buf[result->off[field]] == '\0';
}

static void
set_other(UapResult *result, UapField family, int nfields)
{
	set_field(result, family, "Other", 5);
	for (int i = 1; i < nfields; i++)
		result->off[family + i] = -1;
}

static void
parse_user_agent(Matcher *m, UapResult *result)
{
	UapRules   *rules = m->rules;

	for (int i = 0; i < rules->nrules[UAP_KIND_UA]; i++)
	{
		UapRule    *rule = &rules->rules[UAP_KIND_UA][i];
		int			used = result->used;

		if (!match_rule(m, rule))
			continue;
		if (rule->repl[0] != NULL)
			set_replacement(result, UAP_UA_FAMILY, m, rule->repl[0], true);
		else
			set_group(result, UAP_UA_FAMILY, m, 1, false);
		if (field_empty(result, UAP_UA_FAMILY))
		{
			result->used = used;
			continue;
		}
		for (int f = 1; f <= 3; f++)
		{
			if (rule->repl[f] != NULL)
				set_field(result, UAP_UA_FAMILY + f, rule->repl[f], strlen(rule->repl[f]));
			else
				set_group(result, UAP_UA_FAMILY + f, m, f + 1, true);
		}
		return;
	}
	set_other(result, UAP_UA_FAMILY, 4);
}

static void
parse_os(Matcher *m, UapResult *result)
{
	UapRules   *rules = m->rules;

	for (int i = 0; i < rules->nrules[UAP_KIND_OS]; i++)
	{
		UapRule    *rule = &rules->rules[UAP_KIND_OS][i];
		int			used = result->used;

		if (!match_rule(m, rule))
			continue;
		if (rule->repl[0] != NULL)
			set_replacement(result, UAP_OS_FAMILY, m, rule->repl[0], false);
		else
			set_group(result, UAP_OS_FAMILY, m, 1, false);
		if (field_empty(result, UAP_OS_FAMILY))
		{
			result->used = used;
			continue;
		}
		for (int f = 1; f <= 4; f++)
		{
			if (rule->repl[f] != NULL)
				set_replacement(result, UAP_OS_FAMILY + f, m, rule->repl[f], false);
			else
				set_group(result, UAP_OS_FAMILY + f, m, f + 1, false);
		}
		return;
	}
	set_other(result, UAP_OS_FAMILY, 5);
}

static void
parse_device(Matcher *m, UapResult *result)
{
	UapRules   *rules = m->rules;

	for (int i = 0; i < rules->nrules[UAP_KIND_DEVICE]; i++)
	{
		UapRule    *rule = &rules->rules[UAP_KIND_DEVICE][i];
		int			used = result->used;

		if (!match_rule(m, rule))
			continue;
		if (rule->repl[0] != NULL)
			set_replacement(result, UAP_DEVICE_FAMILY, m, rule->repl[0], false);
		else
			set_group(result, UAP_DEVICE_FAMILY, m, 1, false);
		if (field_empty(result, UAP_DEVICE_FAMILY))
		{
			result->used = used;
			continue;
		}
		if (rule->repl[1] != NULL)
			set_replacement(result, UAP_DEVICE_BRAND, m, rule->repl[1], false);
		else
			result->off[UAP_DEVICE_BRAND] = -1;
		if (rule->repl[2] != NULL)
			set_replacement(result, UAP_DEVICE_MODEL, m, rule->repl[2], false);
		else
			set_group(result, UAP_DEVICE_MODEL, m, 1, false);
		return;
	}
	set_other(result, UAP_DEVICE_FAMILY, 3);
}

/* The answer for an input that is not parsed: "Other" everywhere. */
void
UapResultOther(UapResult *result)
{
	result->used = 0;
	result->gave_up = false;
	set_other(result, UAP_UA_FAMILY, 4);
	set_other(result, UAP_OS_FAMILY, 5);
	set_other(result, UAP_DEVICE_FAMILY, 3);
}

static void
parse(UapRules *rules, const char *ua, size_t len, UapResult *result, bool prefilter)
{
	Matcher		m;
	unsigned char folded[UAP_MAX_INPUT];
	int			natoms_bytes = (rules->natoms + 7) / 8 + 1;

	UapResultOther(result);
	if (len == 0 || len > UAP_MAX_INPUT || memchr(ua, '\0', len) != NULL)
		return;

	memset(&m, 0, sizeof(m));
	m.rules = rules;
	m.subject = ua;
	m.len = len;
	m.prefilter = prefilter;
	clock_gettime(CLOCK_MONOTONIC, &m.start);

	/* which literals occur: one pass over the lower-cased input */
	for (size_t i = 0; i < len; i++)
	{
		folded[i] = lower((unsigned char) ua[i]);
		if (folded[i] >= 0x80)
			m.nonascii = true;
	}
	memset(rules->seen, 0, natoms_bytes);
	for (size_t i = 0; i + UAP_MIN_ATOM <= len; i++)
	{
		for (int a = rules->bucket[trigram(folded + i)]; a >= 0; a = rules->atom_next[a])
		{
			int			alen = rules->atom_len[a];

			if ((size_t) alen <= len - i && memcmp(rules->atoms[a], folded + i, alen) == 0)
				rules->seen[a >> 3] |= 1 << (a & 7);
		}
	}

	result->used = 0;
	parse_user_agent(&m, result);
	parse_os(&m, result);
	parse_device(&m, result);
	result->gave_up = m.exhausted > UAP_MAX_EXHAUSTED;
}

/*
 * Parse a user agent of len bytes (not NUL-terminated).  Longer than
 * UAP_MAX_INPUT, or containing a NUL byte, it is "Other".
 */
void
UapParse(UapRules *rules, const char *ua, size_t len, UapResult *result)
{
	parse(rules, ua, len, result, true);
}

/* The same without the prefilter (every expression is tried): for tests. */
void
UapParseUnfiltered(UapRules *rules, const char *ua, size_t len, UapResult *result)
{
	parse(rules, ua, len, result, false);
}

/*-------------------------------------------------------------------------
 *
 * useragent.c
 *	  sessmgr.parse_user_agent(): devices from user agents with uap-core's
 *	  rules, per backend, loaded lazily and cached.
 *
 * The rules file (sessmgr.user_agent_regexes, uap-core's regexes.yaml) is
 * read on the first parse in a backend, so a backend that never parses pays
 * nothing; expressions are compiled when a user agent first needs them
 * (uarules.c).  The file is looked at again at most once a second, by its
 * identity (device, inode, size, modification time), so a replaced file
 * (a package upgrade) or a changed setting takes effect without a restart.
 * A bounded LRU cache (sessmgr.user_agent_cache_size entries) keeps the
 * descriptions of recent user agents, so a repeated one costs a hash
 * lookup.
 *
 * Bad input never raises: NULL, empty, longer than 2048 bytes (judged
 * before detoasting), or anything the rules do not know gives "Other";
 * malformed client hints are ignored.  A rules file that cannot be read is
 * an error for parse_user_agent and, for issuance (missing_ok), a warning
 * once and NULLs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "access/detoast.h"
#include "catalog/namespace.h"
#include "catalog/pg_type_d.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/ilist.h"
#include "mb/pg_wchar.h"
#include "portability/instr_time.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "sessmgr.h"
#include "useragent.h"

#define UA_RULES_MAX_BYTES	(16 * 1024 * 1024)	/* a bigger rules file is refused */
#define UA_HINTS_MAX_BYTES	65536	/* bigger client_hints are ignored unread */
#define UA_RECHECK_SECONDS	1.0 /* how often the rules file is looked at */
#define UA_CACHE_BUCKETS	8192
#define UA_NCOLUMNS			7

/* the rules of this backend and the file they came from */
static UapRules *ua_rules = NULL;
static char *ua_rules_path = NULL;	/* the setting they were loaded for */
static char *ua_rules_error = NULL;	/* why they could not be, or NULL */
static bool ua_rules_error_warned = false;
static struct stat ua_rules_stat;
static bool ua_rules_stat_ok = false;
static instr_time ua_rules_checked;

/* the cache: hash buckets and an LRU list of entries in ua_cache_cxt */
typedef struct UaCacheEntry
{
	dlist_node	lru;
	struct UaCacheEntry *next;	/* in its bucket */
	uint32		hash;
	int			keylen;
	int16		off[UA_NCOLUMNS];	/* in data after the key, -1 for NULL */
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* key, then the columns */
} UaCacheEntry;

static MemoryContext ua_cache_cxt = NULL;
static UaCacheEntry **ua_cache_buckets = NULL;
static dlist_head ua_cache_lru = DLIST_STATIC_INIT(ua_cache_lru);
static int	ua_cache_count = 0;

/* Forget every cached description. */
static void
cache_reset(void)
{
	if (ua_cache_cxt != NULL)
		MemoryContextReset(ua_cache_cxt);
	ua_cache_buckets = NULL;
	dlist_init(&ua_cache_lru);
	ua_cache_count = 0;
}

static void
cache_evict_oldest(void)
{
	UaCacheEntry *victim = dlist_container(UaCacheEntry, lru, dlist_tail_node(&ua_cache_lru));
	UaCacheEntry **link = &ua_cache_buckets[victim->hash % UA_CACHE_BUCKETS];

	while (*link != victim)
		link = &(*link)->next;
	*link = victim->next;
	dlist_delete(&victim->lru);
	pfree(victim);
	ua_cache_count--;
}

static UaCacheEntry *
cache_lookup(const char *key, int keylen, uint32 hash)
{
	if (ua_cache_buckets == NULL)
		return NULL;
	for (UaCacheEntry *e = ua_cache_buckets[hash % UA_CACHE_BUCKETS]; e != NULL; e = e->next)
		if (e->hash == hash && e->keylen == keylen && memcmp(e->data, key, keylen) == 0)
		{
			dlist_move_head(&ua_cache_lru, &e->lru);
			return e;
		}
	return NULL;
}

/* Remember the columns for key, evicting the least recently used beyond the limit. */
static void
cache_store(const char *key, int keylen, uint32 hash, char *const *columns)
{
	UaCacheEntry *e;
	Size		size = offsetof(UaCacheEntry, data) + keylen;
	char	   *p;

	if (sessmgr_user_agent_cache_size <= 0)
	{
		if (ua_cache_count > 0)
			cache_reset();
		return;
	}
	if (ua_cache_cxt == NULL)
		ua_cache_cxt = AllocSetContextCreate(TopMemoryContext, "sessmgr user agent cache",
											 ALLOCSET_DEFAULT_SIZES);
	if (ua_cache_buckets == NULL)
		ua_cache_buckets = MemoryContextAllocZero(ua_cache_cxt,
												  UA_CACHE_BUCKETS * sizeof(UaCacheEntry *));
	while (ua_cache_count >= sessmgr_user_agent_cache_size && ua_cache_count > 0)
		cache_evict_oldest();

	for (int i = 0; i < UA_NCOLUMNS; i++)
		if (columns[i] != NULL)
			size += strlen(columns[i]) + 1;
	e = MemoryContextAlloc(ua_cache_cxt, size);
	e->hash = hash;
	e->keylen = keylen;
	memcpy(e->data, key, keylen);
	p = e->data + keylen;
	for (int i = 0; i < UA_NCOLUMNS; i++)
	{
		if (columns[i] == NULL)
			e->off[i] = -1;
		else
		{
			size_t		len = strlen(columns[i]);

			e->off[i] = (int16) (p - (e->data + keylen));
			memcpy(p, columns[i], len + 1);
			p += len + 1;
		}
	}
	e->next = ua_cache_buckets[hash % UA_CACHE_BUCKETS];
	ua_cache_buckets[hash % UA_CACHE_BUCKETS] = e;
	dlist_push_head(&ua_cache_lru, &e->lru);
	ua_cache_count++;
}

/* Drop the rules, their error and the cache. */
static void
rules_forget(void)
{
	UapRulesFree(ua_rules);
	ua_rules = NULL;
	if (ua_rules_error != NULL)
		pfree(ua_rules_error);
	ua_rules_error = NULL;
	ua_rules_error_warned = false;
	ua_rules_stat_ok = false;
	cache_reset();
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Read and load the rules file; on failure remember why. */
static void
rules_load(const char *path, const struct stat *st, bool stat_ok, int stat_errno)
{
	char		err[256];
	char	   *yaml = NULL;
	FILE	   *file;
	size_t		len = 0;
	UapRules   *loaded = NULL;

	err[0] = '\0';
	if (!stat_ok)
		snprintf(err, sizeof(err), "Could not stat file \"%s\": %s.", path,
				 strerror(stat_errno));
	else if (!S_ISREG(st->st_mode))
		snprintf(err, sizeof(err), "\"%s\" is not a regular file.", path);
	else if (st->st_size > UA_RULES_MAX_BYTES)
		snprintf(err, sizeof(err), "File \"%s\" is larger than %d bytes.", path,
				 UA_RULES_MAX_BYTES);
	else if ((file = AllocateFile(path, PG_BINARY_R)) == NULL)
		snprintf(err, sizeof(err), "Could not open file \"%s\": %m.", path);
	else
	{
		yaml = palloc(st->st_size + 1);
		len = fread(yaml, 1, st->st_size + 1, file);
		if (ferror(file))
			snprintf(err, sizeof(err), "Could not read file \"%s\": %m.", path);
		else if (len > (size_t) st->st_size)
			snprintf(err, sizeof(err), "File \"%s\" changed while it was read.", path);
		FreeFile(file);
	}
	if (err[0] == '\0')
	{
		char		yaml_err[200];

		loaded = UapRulesLoad(yaml, len, yaml_err, sizeof(yaml_err));
		if (loaded == NULL)
			snprintf(err, sizeof(err), "File \"%s\": %s.", path, yaml_err);
	}
	if (yaml != NULL)
		pfree(yaml);

	rules_forget();
	ua_rules = loaded;
	if (loaded == NULL)
		ua_rules_error = MemoryContextStrdup(TopMemoryContext, err);
	ua_rules_stat_ok = stat_ok;
	if (stat_ok)
		ua_rules_stat = *st;
}

/*
 * The rules to parse with: NULL when parsing is off (an empty setting) or
 * the file could not be loaded (then ua_rules_error says why).
 */
static UapRules *
rules_get(void)
{
	const char *path = sessmgr_user_agent_regexes ? sessmgr_user_agent_regexes : "";
	instr_time	now;
	struct stat st;
	bool		stat_ok;
	int			stat_errno = 0;

	if (ua_rules_path == NULL || strcmp(ua_rules_path, path) != 0)
	{
		rules_forget();
		if (ua_rules_path != NULL)
			pfree(ua_rules_path);
		ua_rules_path = MemoryContextStrdup(TopMemoryContext, path);
		INSTR_TIME_SET_ZERO(ua_rules_checked);
	}
	if (path[0] == '\0')
		return NULL;

	INSTR_TIME_SET_CURRENT(now);
	if (!INSTR_TIME_IS_ZERO(ua_rules_checked))
	{
		instr_time	since = now;

		INSTR_TIME_SUBTRACT(since, ua_rules_checked);
		if (INSTR_TIME_GET_DOUBLE(since) < UA_RECHECK_SECONDS)
			return ua_rules;
	}
	ua_rules_checked = now;

	stat_ok = stat(path, &st) == 0;
	if (!stat_ok)
		stat_errno = errno;
	if ((ua_rules != NULL || ua_rules_error != NULL) &&
		stat_ok == ua_rules_stat_ok && (!stat_ok || same_file(&st, &ua_rules_stat)))
		return ua_rules;
	rules_load(path, &st, stat_ok, stat_errno);
	return ua_rules;
}

/* Text as UTF-8 for the rules (palloc'd when converted). */
static char *
to_utf8(const char *s, int len, int *outlen)
{
	char	   *converted;

	if (GetDatabaseEncoding() == PG_UTF8 || GetDatabaseEncoding() == PG_SQL_ASCII)
	{
		*outlen = len;
		return (char *) s;
	}
	converted = (char *) pg_server_to_any(s, len, PG_UTF8);
	*outlen = converted == s ? len : (int) strlen(converted);
	return converted;
}

/*
 * A column (UTF-8) as a string of the database encoding, cut before the
 * first character that encoding cannot hold.
 */
static char *
from_utf8(const char *s)
{
	int			len = strlen(s);
	int			enc = GetDatabaseEncoding();
	bool		ascii = true;
	unsigned char *out;
	Oid			proc;
	int			done;

	if (enc == PG_UTF8 || enc == PG_SQL_ASCII)
		return pstrdup(s);
	for (int i = 0; i < len && ascii; i++)
		ascii = !IS_HIGHBIT_SET(s[i]);
	if (ascii)
		return pstrdup(s);
	proc = FindDefaultConversionProc(PG_UTF8, enc);
	if (!OidIsValid(proc))
		return pstrdup("");
	out = palloc((Size) len * MAX_CONVERSION_GROWTH + 1);
	done = pg_do_encoding_conversion_buf(proc, PG_UTF8, enc, (unsigned char *) s, len,
										 out, len * MAX_CONVERSION_GROWTH + 1, true);
	(void) done;
	return (char *) out;
}

/*
 * The hints of a client_hints object: each header a string member named in
 * lower case; anything else is ignored.
 */
static void
hints_from_jsonb(Jsonb *jb, UaHints *hints)
{
	if (!JB_ROOT_IS_OBJECT(jb))
		return;
	for (int i = 0; i < UA_NHINTS; i++)
	{
		JsonbValue	v;

		if (getKeyJsonValueFromContainer(&jb->root, UaHintHeaderNames[i],
										 strlen(UaHintHeaderNames[i]), &v) != NULL &&
			v.type == jbvString)
			UaHintsSet(hints, (UaHintHeader) i, v.val.string.val, v.val.string.len);
	}
}

/*
 * Describe a user agent (ua, len bytes of the database encoding; NULL for
 * none) with its client hints (NULL for none).  The columns, palloc'd, NULL
 * for NULL, are browser, browser_version, os, os_version, device,
 * device_type, label.  When the rules file cannot be loaded this raises an
 * error, or with missing_ok warns once and returns false with every column
 * NULL; with parsing off (an empty sessmgr.user_agent_regexes) it returns
 * false too.
 */
static bool
describe(const char *ua, int len, const UaHints *hints, bool missing_ok,
		 char **columns)
{
	UapRules   *rules = rules_get();
	char		hints_key[4 * UA_HINT_TEXT_MAX + 64];
	int			hints_len;
	char	   *key;
	int			keylen;
	int			u8len = 0;
	char	   *u8 = NULL;
	uint32		hash;
	UaCacheEntry *e;
	UapResult  *uap;
	UaDevice   *dev;

	memset(columns, 0, UA_NCOLUMNS * sizeof(char *));
	if (rules == NULL)
	{
		if (ua_rules_error == NULL)
			return false;		/* parsing is off */
		if (!missing_ok)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("could not load the user agent rules"),
					 errdetail("%s", ua_rules_error),
					 errhint("Install uap-core's regexes.yaml (Debian package uap-core) or point sessmgr.user_agent_regexes at a copy.")));
		if (!ua_rules_error_warned)
		{
			ua_rules_error_warned = true;
			ereport(WARNING,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("could not load the user agent rules"),
					 errdetail("%s", ua_rules_error),
					 errhint("Install uap-core's regexes.yaml (Debian package uap-core) or point sessmgr.user_agent_regexes at a copy.")));
		}
		return false;
	}

	if (ua != NULL && len > 0 && len <= UAP_MAX_INPUT)
		u8 = to_utf8(ua, len, &u8len);
	if (u8len > UAP_MAX_INPUT)
		u8len = 0;				/* grew past the limit in UTF-8: Other */

	/* the key: the user agent, a NUL, the hints that count */
	hints_len = UaHintsKey(hints, hints_key, sizeof(hints_key));
	keylen = u8len + 1 + hints_len;
	key = palloc(keylen);
	if (u8len > 0)
		memcpy(key, u8, u8len);
	key[u8len] = '\0';
	memcpy(key + u8len + 1, hints_key, hints_len);
	hash = hash_bytes((const unsigned char *) key, keylen);

	e = cache_lookup(key, keylen, hash);
	if (e != NULL)
	{
		for (int i = 0; i < UA_NCOLUMNS; i++)
			if (e->off[i] >= 0)
				columns[i] = from_utf8(e->data + e->keylen + e->off[i]);
		pfree(key);
		return true;
	}

	uap = palloc(sizeof(UapResult));
	dev = palloc(sizeof(UaDevice));
	if (u8len > 0)
		UapParse(rules, u8, u8len, uap);
	else
		UapResultOther(uap);
	UaDescribe(uap, u8len > 0 ? u8 : "", u8len, hints, dev);
	{
		char	   *found[UA_NCOLUMNS] = {
			dev->browser,
			dev->browser_version[0] ? dev->browser_version : NULL,
			dev->os,
			dev->os_version[0] ? dev->os_version : NULL,
			dev->device,
			(char *) dev->device_type,
			dev->label[0] ? dev->label : NULL
		};

		cache_store(key, keylen, hash, found);
		for (int i = 0; i < UA_NCOLUMNS; i++)
			if (found[i] != NULL)
				columns[i] = from_utf8(found[i]);
	}
	pfree(uap);
	pfree(dev);
	pfree(key);
	return true;
}

/*
 * For issuance: describe the user agent (len bytes, NULL for none) with its
 * client hints (an object of header values, NULL for none) into device.
 * Never raises for bad input; while the rules file cannot be loaded, warns
 * once and returns false with every field NULL (so does an empty
 * sessmgr.user_agent_regexes, without the warning).
 */
bool
SessmgrDescribeUserAgent(const char *user_agent, int len, Jsonb *client_hints,
						 SessmgrDevice *device)
{
	UaHints		hints;
	char	   *columns[UA_NCOLUMNS];
	bool		ok;

	UaHintsInit(&hints);
	if (client_hints != NULL)
		hints_from_jsonb(client_hints, &hints);
	if (user_agent == NULL || len > UAP_MAX_INPUT)
		len = 0;
	ok = describe(user_agent, len, &hints, true, columns);
	device->browser = columns[0];
	device->browser_version = columns[1];
	device->os = columns[2];
	device->os_version = columns[3];
	device->device = columns[4];
	device->device_type = columns[5];
	device->label = columns[6];
	return ok;
}

/*
 * sessmgr.parse_user_agent(user_agent text, client_hints jsonb DEFAULT NULL)
 *   RETURNS TABLE (browser text, browser_version text, os text,
 *                  os_version text, device text, device_type text, label text)
 */
PG_FUNCTION_INFO_V1(sessmgr_parse_user_agent);
Datum
sessmgr_parse_user_agent(PG_FUNCTION_ARGS)
{
	static TupleDesc desc = NULL;
	static const char *const names[UA_NCOLUMNS] = {
		"browser", "browser_version", "os", "os_version", "device", "device_type", "label"
	};
	static const Oid types[UA_NCOLUMNS] = {
		TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID
	};
	UaHints		hints;
	char	   *columns[UA_NCOLUMNS];
	Datum		values[UA_NCOLUMNS];
	bool		nulls[UA_NCOLUMNS];
	const char *ua = NULL;
	int			len = 0;

	SessmgrBeginResult(fcinfo);
	if (desc == NULL)
		desc = SessmgrResultDesc(UA_NCOLUMNS, names, types);

	/* longer than the limit: not even read */
	if (!PG_ARGISNULL(0) &&
		toast_raw_datum_size(PG_GETARG_DATUM(0)) - VARHDRSZ <= (Size) UAP_MAX_INPUT)
	{
		text	   *t = PG_GETARG_TEXT_PP(0);

		ua = VARDATA_ANY(t);
		len = VARSIZE_ANY_EXHDR(t);
	}
	UaHintsInit(&hints);
	/* bigger than any set of headers: not even read */
	if (!PG_ARGISNULL(1) && toast_raw_datum_size(PG_GETARG_DATUM(1)) <= UA_HINTS_MAX_BYTES)
		hints_from_jsonb(PG_GETARG_JSONB_P(1), &hints);

	describe(ua, len, &hints, false, columns);
	for (int i = 0; i < UA_NCOLUMNS; i++)
	{
		nulls[i] = columns[i] == NULL;
		values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(columns[i]);
	}
	SessmgrReturnRow(fcinfo, desc, values, nulls);
	PG_RETURN_NULL();
}

/*
 * Not in the extension's scripts: uap-core's own answer, for the test that
 * checks it against uap-core's test suites (test/t/060_user_agents.pl
 * creates a function for it).  An array of the twelve fields the suites
 * name: user agent family, major, minor, patch; OS family, major, minor,
 * patch, patch_minor; device family, brand, model.  filtered false runs
 * every expression (no prefilter), to check that the prefilter changes
 * nothing.
 */
PG_FUNCTION_INFO_V1(sessmgr_uap_parts);
Datum
sessmgr_uap_parts(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	bool		filtered = PG_NARGS() < 2 || PG_ARGISNULL(1) || PG_GETARG_BOOL(1);
	UapRules   *rules = rules_get();
	UapResult  *uap = palloc(sizeof(UapResult));
	Datum		values[UAP_NFIELDS];
	bool		nulls[UAP_NFIELDS];
	int			dims[1] = {UAP_NFIELDS};
	int			lbs[1] = {1};
	int			u8len;
	char	   *u8;

	if (rules == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not load the user agent rules"),
				 ua_rules_error ? errdetail("%s", ua_rules_error) : 0));
	u8 = to_utf8(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &u8len);
	if (filtered)
		UapParse(rules, u8, u8len, uap);
	else
		UapParseUnfiltered(rules, u8, u8len, uap);
	for (int i = 0; i < UAP_NFIELDS; i++)
	{
		const char *s = UapGet(uap, (UapField) i);

		nulls[i] = s == NULL;
		values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(from_utf8(s));
	}
	PG_RETURN_ARRAYTYPE_P(construct_md_array(values, nulls, 1, dims, lbs, TEXTOID, -1,
											 false, TYPALIGN_INT));
}

/*-------------------------------------------------------------------------
 *
 * geoip.c
 *	  Places: where an address is, from a MaxMind DB file, and where a
 *	  request comes from, from the location headers of a CDN in front.
 *
 * sessmgr.geoip_database names a City or Country database in the GeoIP2
 * layout (MaxMind GeoIP2/GeoLite2, DB-IP lite) and sessmgr.geoip_asn_database
 * an optional ASN database; libmaxminddb reads them.  Each backend maps a file
 * the first time it looks an address up, and maps it again when the setting
 * changes or the file is replaced (its device, inode, size or modification
 * time differ; checked at most once a second), so monthly updates need no
 * restart.  Nothing here ever touches the network.
 *
 * Lookups never fail: private, loopback, link-local and other non-public
 * addresses are never looked up, an address a database does not hold gives
 * NULLs, and a missing, unreadable or damaged file gives NULLs plus one
 * WARNING per backend (again only when the file changes and is still bad),
 * so that issuing a session never depends on a database file.
 *
 * Behind a CDN (sessmgr.location_headers = cloudflare or cloudfront, and only
 * when sessmgr.trusted_proxies > 0) the edge's location headers, as PostgREST
 * passes them in request.headers, give the place; they are untrusted text,
 * checked value by value, and a bad value is dropped, never an error.  The
 * edge wins for the place; the database fills what the edge left out only
 * where it agrees with the edge; the ASN comes from the ASN database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <maxminddb.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sessmgr.h"

/* longest name (country, region, city, AS organization) kept, in bytes */
#define PLACE_MAX_NAME_BYTES	200

/* longest request.headers read for the location headers */
#define PLACE_MAX_HEADERS_BYTES	(256 * 1024)

/* how often the file behind a setting is checked for a replacement */
#define GEODB_CHECK_INTERVAL	USECS_PER_SEC

/* ---- the database files ---- */

/*
 * One database setting and the file it names, as this backend last saw it.
 * The identity of the file (device, inode, size, modification time) tells a
 * replacement; a file that could not be opened is remembered by its identity
 * too, so that it is warned about once and tried again only once it changed.
 */
typedef struct GeoDb
{
	const char *setting;		/* the setting's name, for messages */
	char	   *path;			/* the value the state below belongs to */
	bool		open;			/* mmdb is open */
	bool		failed;			/* the file could not be used; warned */
	int			failed_errno;	/* stat's errno when it failed there, else 0 */
	bool		damaged_warned; /* a lookup in the open file found damage */
	struct stat st;				/* identity of the file opened or failed */
	TimestampTz checked_at;
	MMDB_s		mmdb;
} GeoDb;

static GeoDb city_db = {.setting = "sessmgr.geoip_database"};
static GeoDb asn_db = {.setting = "sessmgr.geoip_asn_database"};

static void
geodb_close(GeoDb *db)
{
	if (db->open)
		MMDB_close(&db->mmdb);
	db->open = false;
	db->damaged_warned = false;
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Forget db's file and remember that it could not be used (after a WARNING). */
static void
geodb_fail(GeoDb *db, const struct stat *st, int stat_errno)
{
	geodb_close(db);
	db->failed = true;
	db->failed_errno = stat_errno;
	if (st != NULL)
		db->st = *st;
	else
		memset(&db->st, 0, sizeof(db->st));
}

/* Open the file db->path (whose identity is st), replacing what db had open. */
static void
geodb_open(GeoDb *db, const struct stat *st)
{
	MMDB_s		mmdb;
	int			rc;

	geodb_close(db);
	if (!S_ISREG(st->st_mode))
	{
		ereport(WARNING,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("GeoIP database \"%s\" is not a regular file", db->path),
				 errdetail("%s names it; lookups in it give NULL until it is fixed.",
						   db->setting)));
		geodb_fail(db, st, 0);
		return;
	}
	rc = MMDB_open(db->path, MMDB_MODE_MMAP, &mmdb);
	if (rc != MMDB_SUCCESS)
	{
		ereport(WARNING,
				(errcode(rc == MMDB_FILE_OPEN_ERROR || rc == MMDB_IO_ERROR ?
						 ERRCODE_IO_ERROR : ERRCODE_DATA_CORRUPTED),
				 errmsg("could not open GeoIP database \"%s\": %s",
						db->path, MMDB_strerror(rc)),
				 errdetail("%s names it; lookups in it give NULL until it is fixed.",
						   db->setting)));
		geodb_fail(db, st, 0);
		return;
	}
	db->mmdb = mmdb;
	db->open = true;
	db->failed = false;
	db->failed_errno = 0;
	db->st = *st;
}

/*
 * The open database of a setting whose value is path, or NULL (no setting,
 * or a file that cannot be used).  Maps the file on first use, and again when
 * the setting changed or, checked at most once every GEODB_CHECK_INTERVAL,
 * the file was replaced.
 */
static MMDB_s *
geodb_get(GeoDb *db, const char *path)
{
	TimestampTz now;
	struct stat st;

	if (path == NULL || path[0] == '\0')
	{
		if (db->path != NULL)
		{
			geodb_close(db);
			pfree(db->path);
			db->path = NULL;
			db->failed = false;
		}
		return NULL;
	}

	now = GetCurrentTimestamp();
	if (db->path == NULL || strcmp(db->path, path) != 0)
	{
		geodb_close(db);
		if (db->path != NULL)
			pfree(db->path);
		db->path = MemoryContextStrdup(TopMemoryContext, path);
		db->failed = false;
	}
	else if (now >= db->checked_at && now - db->checked_at < GEODB_CHECK_INTERVAL)
		return db->open ? &db->mmdb : NULL;
	db->checked_at = now;

	if (stat(db->path, &st) != 0)
	{
		int			save_errno = errno;

		if (!db->failed || db->failed_errno != save_errno)
		{
			errno = save_errno;
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not open GeoIP database \"%s\": %m", db->path),
					 errdetail("%s names it; lookups in it give NULL until it is fixed.",
							   db->setting)));
		}
		geodb_fail(db, NULL, save_errno);
		return NULL;
	}
	if (db->open ? !same_file(&st, &db->st) :
		(!db->failed || db->failed_errno != 0 || !same_file(&st, &db->st)))
		geodb_open(db, &st);
	return db->open ? &db->mmdb : NULL;
}

/* One WARNING per opened file when its data turns out to be damaged. */
static void
geodb_damaged(GeoDb *db, int rc)
{
	if (db->damaged_warned)
		return;
	db->damaged_warned = true;
	ereport(WARNING,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("GeoIP database \"%s\" is damaged: %s", db->path, MMDB_strerror(rc)),
			 errdetail("%s names it; lookups that reach the damage give NULL.",
					   db->setting)));
}

/* ---- addresses ---- */

typedef struct Network
{
	uint8		addr[16];
	int			bits;
} Network;

/*
 * Addresses that are never looked up: they name no place (RFC 6890's
 * special-purpose registries, except the documentation networks, which the
 * tests use).  IPv4-mapped IPv6 addresses are judged as IPv4.
 */
static const Network non_public_v4[] = {
	{{0, 0, 0, 0}, 8},			/* "this network" */
	{{10, 0, 0, 0}, 8},			/* private */
	{{100, 64, 0, 0}, 10},		/* shared address space (carrier-grade NAT) */
	{{127, 0, 0, 0}, 8},		/* loopback */
	{{169, 254, 0, 0}, 16},		/* link-local */
	{{172, 16, 0, 0}, 12},		/* private */
	{{192, 168, 0, 0}, 16},		/* private */
	{{198, 18, 0, 0}, 15},		/* benchmarking */
	{{224, 0, 0, 0}, 4},		/* multicast */
	{{240, 0, 0, 0}, 4},		/* reserved, broadcast */
};

static const Network non_public_v6[] = {
	{{0}, 128},					/* unspecified */
	{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128},	/* loopback */
	{{0xfc}, 7},				/* unique local */
	{{0xfe, 0x80}, 10},			/* link-local */
	{{0xfe, 0xc0}, 10},			/* site-local (deprecated) */
	{{0xff}, 8},				/* multicast */
};

static bool
in_network(const uint8 *addr, const Network *net)
{
	int			full = net->bits / 8;
	int			rest = net->bits % 8;

	if (memcmp(addr, net->addr, full) != 0)
		return false;
	return rest == 0 ||
		((addr[full] ^ net->addr[full]) & (uint8) (0xff << (8 - rest))) == 0;
}

/*
 * The socket address to look ip up by, or false when it is not to be looked
 * up (NULL, or not a public address).  The netmask of an inet is ignored.
 */
static bool
lookup_address(const inet *ip, struct sockaddr_storage *ss)
{
	static const uint8 v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	const uint8 *addr;
	bool		v4;

	if (ip == NULL)
		return false;
	addr = ip_addr(ip);
	v4 = ip_family(ip) == PGSQL_AF_INET;
	if (!v4 && memcmp(addr, v4mapped, sizeof(v4mapped)) == 0)
	{
		addr += sizeof(v4mapped);
		v4 = true;
	}

	memset(ss, 0, sizeof(*ss));
	if (v4)
	{
		struct sockaddr_in *sin = (struct sockaddr_in *) ss;

		for (size_t i = 0; i < lengthof(non_public_v4); i++)
			if (in_network(addr, &non_public_v4[i]))
				return false;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, addr, 4);
	}
	else
	{
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;

		for (size_t i = 0; i < lengthof(non_public_v6); i++)
			if (in_network(addr, &non_public_v6[i]))
				return false;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, addr, 16);
	}
	return true;
}

/* ---- values, from a database or a header: untrusted either way ---- */

static Oid	utf8_to_server_proc = InvalidOid;

/*
 * A name given as UTF-8 bytes, in the database encoding; NULL when it is
 * empty, longer than PLACE_MAX_NAME_BYTES, not valid UTF-8, holds a control
 * character, a line separator or a bidirectional override (which could
 * make a label read differently), or cannot be written in the database
 * encoding.
 */
static char *
place_name(const char *s, int len)
{
	int			server = GetDatabaseEncoding();
	char	   *out;

	if (len <= 0 || len > PLACE_MAX_NAME_BYTES ||
		pg_verify_mbstr_len(PG_UTF8, s, len, true) < 0)
		return NULL;
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		unsigned char c1 = i + 1 < len ? (unsigned char) s[i + 1] : 0;
		unsigned char c2 = i + 2 < len ? (unsigned char) s[i + 2] : 0;

		/* C0 controls, DEL, C1 controls (U+0080..U+009F: C2 80..C2 9F) */
		if (c < 0x20 || c == 0x7f || (c == 0xc2 && c1 < 0xa0))
			return NULL;
		/* line and paragraph separators, bidirectional overrides and isolates */
		if (c == 0xe2 && ((c1 == 0x80 && c2 >= 0xa8 && c2 <= 0xae) ||
						  (c1 == 0x81 && c2 >= 0xa6 && c2 <= 0xa9)))
			return NULL;
	}

	if (server == PG_UTF8 || server == PG_SQL_ASCII)
		return pnstrdup(s, len);

	if (!OidIsValid(utf8_to_server_proc))
	{
		utf8_to_server_proc = FindDefaultConversionProc(PG_UTF8, server);
		if (!OidIsValid(utf8_to_server_proc))
			return NULL;
	}
	out = palloc((Size) len * MAX_CONVERSION_GROWTH + 1);
	if (pg_do_encoding_conversion_buf(utf8_to_server_proc, PG_UTF8, server,
									  (unsigned char *) s, len,
									  (unsigned char *) out,
									  len * MAX_CONVERSION_GROWTH + 1, true) != len)
		return NULL;
	return out;
}

/* A country code: two ASCII capitals, and not one of the "unknown" codes. */
static bool
valid_country_code(const char *s, int len)
{
	if (len != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z')
		return false;
	/* XX: Cloudflare's "no country"; ZZ: CLDR's unknown region */
	return !(s[0] == s[1] && (s[0] == 'X' || s[0] == 'Z'));
}

static bool
valid_coordinates(double latitude, double longitude)
{
	return isfinite(latitude) && isfinite(longitude) &&
		latitude >= -90.0 && latitude <= 90.0 &&
		longitude >= -180.0 && longitude <= 180.0;
}

static void
place_init(SessmgrPlace *place)
{
	memset(place, 0, sizeof(*place));
	place->accuracy_radius_km = -1;
	place->asn = -1;
}

/* ---- lookups ---- */

static const char *const path_country_code[] = {"country", "iso_code", NULL};
static const char *const path_country[] = {"country", "names", "en", NULL};
static const char *const path_region[] = {"subdivisions", "0", "names", "en", NULL};
static const char *const path_city[] = {"city", "names", "en", NULL};
static const char *const path_latitude[] = {"location", "latitude", NULL};
static const char *const path_longitude[] = {"location", "longitude", NULL};
static const char *const path_accuracy[] = {"location", "accuracy_radius", NULL};
static const char *const path_time_zone[] = {"location", "time_zone", NULL};
static const char *const path_asn[] = {"autonomous_system_number", NULL};
static const char *const path_as_org[] = {"autonomous_system_organization", NULL};

/* The value at path in entry, if there is one; damage is warned about. */
static bool
get_value(GeoDb *db, MMDB_entry_s *entry, const char *const *path, MMDB_entry_data_s *data)
{
	int			rc = MMDB_aget_value(entry, data, path);

	if (rc == MMDB_SUCCESS)
		return data->has_data;
	if (rc != MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR)
		geodb_damaged(db, rc);
	return false;
}

static char *
get_name(GeoDb *db, MMDB_entry_s *entry, const char *const *path)
{
	MMDB_entry_data_s data;

	if (!get_value(db, entry, path, &data) || data.type != MMDB_DATA_TYPE_UTF8_STRING)
		return NULL;
	return place_name(data.utf8_string, (int) Min(data.data_size, PLACE_MAX_NAME_BYTES + 1));
}

static bool
get_double(GeoDb *db, MMDB_entry_s *entry, const char *const *path, double *value)
{
	MMDB_entry_data_s data;

	if (!get_value(db, entry, path, &data))
		return false;
	if (data.type == MMDB_DATA_TYPE_DOUBLE)
		*value = data.double_value;
	else if (data.type == MMDB_DATA_TYPE_FLOAT)
		*value = data.float_value;
	else
		return false;
	return true;
}

/* An unsigned integer up to 2^32 - 1, or -1. */
static int64
get_uint32(GeoDb *db, MMDB_entry_s *entry, const char *const *path)
{
	MMDB_entry_data_s data;

	if (!get_value(db, entry, path, &data))
		return -1;
	switch (data.type)
	{
		case MMDB_DATA_TYPE_UINT16:
			return data.uint16;
		case MMDB_DATA_TYPE_UINT32:
			return data.uint32;
		case MMDB_DATA_TYPE_INT32:
			return data.int32 >= 0 ? data.int32 : -1;
		case MMDB_DATA_TYPE_UINT64:
			return data.uint64 <= PG_UINT32_MAX ? (int64) data.uint64 : -1;
		default:
			return -1;
	}
}

/* The record of the address in db, if it has one. */
static bool
lookup(GeoDb *db, MMDB_s *mmdb, const struct sockaddr_storage *ss, MMDB_entry_s *entry)
{
	int			rc = MMDB_SUCCESS;
	MMDB_lookup_result_s result;

	result = MMDB_lookup_sockaddr(mmdb, (const struct sockaddr *) ss, &rc);
	if (rc == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR)
		return false;
	if (rc != MMDB_SUCCESS)
	{
		geodb_damaged(db, rc);
		return false;
	}
	*entry = result.entry;
	return result.found_entry;
}

/*
 * Where the address ip is, by the databases of sessmgr.geoip_database and
 * sessmgr.geoip_asn_database; NULL fields (and -1 numbers) for what they do
 * not know.  ip may be NULL.  Never raises an error for a bad file or address.
 */
void
SessmgrGeolocate(const inet *ip, SessmgrPlace *place)
{
	struct sockaddr_storage ss;
	MMDB_entry_s entry;
	MMDB_s	   *mmdb;

	place_init(place);
	if (!lookup_address(ip, &ss))
		return;

	mmdb = geodb_get(&city_db, sessmgr_geoip_database);
	if (mmdb != NULL && lookup(&city_db, mmdb, &ss, &entry))
	{
		MMDB_entry_data_s data;

		if (get_value(&city_db, &entry, path_country_code, &data) &&
			data.type == MMDB_DATA_TYPE_UTF8_STRING &&
			valid_country_code(data.utf8_string, (int) Min(data.data_size, 3)))
		{
			place->country_code = pnstrdup(data.utf8_string, 2);
			place->country = get_name(&city_db, &entry, path_country);
		}
		place->region = get_name(&city_db, &entry, path_region);
		place->city = get_name(&city_db, &entry, path_city);
		if (get_double(&city_db, &entry, path_latitude, &place->latitude) &&
			get_double(&city_db, &entry, path_longitude, &place->longitude) &&
			valid_coordinates(place->latitude, place->longitude))
		{
			int64		radius = get_uint32(&city_db, &entry, path_accuracy);

			place->has_coordinates = true;
			place->accuracy_radius_km = radius <= 20038 ? (int) radius : -1;
		}
		else
			place->latitude = place->longitude = 0;
		/* the IANA time zone ("Europe/Paris"), for the local time of a login */
		place->time_zone = get_name(&city_db, &entry, path_time_zone);
	}

	mmdb = geodb_get(&asn_db, sessmgr_geoip_asn_database);
	if (mmdb != NULL && lookup(&asn_db, mmdb, &ss, &entry))
	{
		place->asn = get_uint32(&asn_db, &entry, path_asn);
		if (place->asn == 0)
			place->asn = -1;	/* AS 0 is reserved: no AS */
		if (place->asn > 0)
			place->as_organization = get_name(&asn_db, &entry, path_as_org);
	}
}

/* ---- the location headers of a CDN ---- */

enum
{
	HDR_COUNTRY,
	HDR_COUNTRY_NAME,
	HDR_REGION,
	HDR_REGION_CODE,
	HDR_CITY,
	HDR_LATITUDE,
	HDR_LONGITUDE,
	HDR_ASN,
	HDR_COUNT
};

/* the header of each vendor for each field (NULL: the vendor sends none) */
static const char *const cloudflare_headers[HDR_COUNT] = {
	"cf-ipcountry", NULL, "cf-region", "cf-region-code", "cf-ipcity",
	"cf-iplatitude", "cf-iplongitude", NULL
};
static const char *const cloudfront_headers[HDR_COUNT] = {
	"cloudfront-viewer-country", "cloudfront-viewer-country-name",
	"cloudfront-viewer-country-region-name", "cloudfront-viewer-country-region",
	"cloudfront-viewer-city", "cloudfront-viewer-latitude",
	"cloudfront-viewer-longitude", "cloudfront-viewer-asn"
};

/*
 * Read the vendor's headers from request.headers into values (NULL where
 * absent); false when there are none to read.
 */
static bool
read_location_headers(const char *const *names, char **values)
{
	const char *headers = GetConfigOption("request.headers", true, false);
	int			len;

	if (headers == NULL || headers[0] == '\0')
		return false;
	len = strlen(headers);
	if (len > PLACE_MAX_HEADERS_BYTES)
		return false;
	return SessmgrJsonGetMembers(pnstrdup(headers, len), len, names, HDR_COUNT, values,
								 JSON_ASCII_ESCAPES_ONLY);
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A header's name value, decoded as its vendor encodes what is not ASCII,
 * in the database encoding; NULL for anything else.  Cloudflare writes each
 * byte of the UTF-8 encoding as \u00XX ("S\u00c3\u00a3o Paulo"), CloudFront
 * as %XX (RFC 3986).  The raw value must be printable ASCII; surrounding
 * spaces are dropped.
 */
static char *
header_name(const char *value, int vendor)
{
	int			len;
	char	   *buf;
	int			n = 0;

	if (value == NULL)
		return NULL;
	len = strlen(value);
	if (len > 6 * PLACE_MAX_NAME_BYTES)
		return NULL;
	while (len > 0 && value[0] == ' ')
		value++, len--;
	while (len > 0 && value[len - 1] == ' ')
		len--;

	buf = palloc(len + 1);
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) value[i];
		int			hi,
					lo;

		if (c < 0x20 || c > 0x7e)
			return NULL;
		if (vendor == SESSMGR_LOCATION_HEADERS_CLOUDFLARE && c == '\\')
		{
			/* \u00XX */
			if (i + 5 >= len || value[i + 1] != 'u' || value[i + 2] != '0' ||
				value[i + 3] != '0' ||
				(hi = hex_value(value[i + 4])) < 0 || (lo = hex_value(value[i + 5])) < 0)
				return NULL;
			buf[n++] = (char) (hi << 4 | lo);
			i += 5;
		}
		else if (vendor == SESSMGR_LOCATION_HEADERS_CLOUDFRONT && c == '%')
		{
			if (i + 2 >= len ||
				(hi = hex_value(value[i + 1])) < 0 || (lo = hex_value(value[i + 2])) < 0)
				return NULL;
			buf[n++] = (char) (hi << 4 | lo);
			i += 2;
		}
		else
			buf[n++] = (char) c;
	}
	return place_name(buf, n);
}

/*
 * A coordinate header: a plain decimal number ("-23.5475"; no exponent,
 * no hex, no inf or nan), at most 3 integer and 12 fractional digits.
 */
static bool
header_coordinate(const char *value, double *result)
{
	const char *p = value;
	int			digits = 0;
	int			fraction = 0;

	if (value == NULL)
		return false;
	if (*p == '-' || *p == '+')
		p++;
	while (*p >= '0' && *p <= '9')
		p++, digits++;
	if (*p == '.')
	{
		p++;
		while (*p >= '0' && *p <= '9')
			p++, fraction++;
		if (fraction == 0)
			return false;
	}
	if (*p != '\0' || digits == 0 || digits > 3 || fraction > 12)
		return false;
	*result = strtod(value, NULL);
	return true;
}

/* An AS number header: 1 to 4294967295, digits only; -1 otherwise. */
static int64
header_asn(const char *value)
{
	int64		asn = 0;
	int			n = 0;

	if (value == NULL)
		return -1;
	for (const char *p = value; *p != '\0'; p++, n++)
	{
		if (*p < '0' || *p > '9' || n >= 10)
			return -1;
		asn = asn * 10 + (*p - '0');
	}
	return n > 0 && asn >= 1 && asn <= PG_UINT32_MAX ? asn : -1;
}

/* Two names of a place are the same (English names from the same source). */
static bool
same_name(const char *a, const char *b)
{
	return a != NULL && b != NULL && pg_strcasecmp(a, b) == 0;
}

/*
 * Where the current request comes from: the location headers of the CDN of
 * sessmgr.location_headers (only when sessmgr.trusted_proxies > 0), completed
 * by the databases' answer for ip, the request's client address (may be NULL).
 *
 * The edge wins for the place: its country, region, city and coordinates
 * are taken whenever they are valid.  The database fills a field the edge
 * left out only where it agrees with the edge: the country's name when it
 * puts ip in the same country; the region, city, coordinates and accuracy
 * radius when, besides, the region and city the edge named (if any) are the
 * database's too.  The accuracy radius describes the database's coordinates,
 * so it is NULL with the edge's.  The ASN is the ASN database's, else
 * CloudFront's cloudfront-viewer-asn.  Without a valid country header the
 * edge says nothing about the place, which is then the database's alone.
 */
void
SessmgrLocateRequest(const inet *ip, SessmgrPlace *place)
{
	SessmgrPlace db;
	const char *const *names;
	char	   *values[HDR_COUNT];
	int			vendor = sessmgr_location_headers;
	double		latitude,
				longitude;
	const char *country;
	char	   *region_name;

	SessmgrGeolocate(ip, &db);
	*place = db;
	if (vendor == SESSMGR_LOCATION_HEADERS_NONE || sessmgr_trusted_proxies <= 0)
		return;
	names = vendor == SESSMGR_LOCATION_HEADERS_CLOUDFLARE ?
		cloudflare_headers : cloudfront_headers;
	if (!read_location_headers(names, values))
		return;

	if (place->asn < 0)
		place->asn = header_asn(values[HDR_ASN]);
	country = values[HDR_COUNTRY];
	if (country == NULL || !valid_country_code(country, strlen(country)))
		return;

	/* the edge's place */
	place->country_code = pstrdup(country);
	place->country = header_name(values[HDR_COUNTRY_NAME], vendor);
	region_name = header_name(values[HDR_REGION], vendor);
	place->region = region_name != NULL ? region_name :
		header_name(values[HDR_REGION_CODE], vendor);
	place->city = header_name(values[HDR_CITY], vendor);
	place->has_coordinates =
		header_coordinate(values[HDR_LATITUDE], &latitude) &&
		header_coordinate(values[HDR_LONGITUDE], &longitude) &&
		valid_coordinates(latitude, longitude);
	place->latitude = place->has_coordinates ? latitude : 0;
	place->longitude = place->has_coordinates ? longitude : 0;
	place->accuracy_radius_km = -1;
	place->time_zone = NULL;

	/* what the database adds where it agrees */
	if (db.country_code == NULL || strcmp(db.country_code, country) != 0)
		return;
	if (place->country == NULL)
		place->country = db.country;
	if ((region_name != NULL && !same_name(region_name, db.region)) ||
		(place->city != NULL && !same_name(place->city, db.city)))
		return;
	if (place->region == NULL)
		place->region = db.region;
	if (place->city == NULL)
		place->city = db.city;
	place->time_zone = db.time_zone;
	if (!place->has_coordinates && db.has_coordinates)
	{
		place->has_coordinates = true;
		place->latitude = db.latitude;
		place->longitude = db.longitude;
		place->accuracy_radius_km = db.accuracy_radius_km;
	}
}

/* ---- the SQL functions ---- */

#define PLACE_NATTS 9

static TupleDesc
place_desc(void)
{
	static TupleDesc desc = NULL;

	if (desc == NULL)
	{
		static const char *const names[PLACE_NATTS] = {
			"country_code", "country", "region", "city", "latitude", "longitude",
			"accuracy_radius_km", "asn", "as_organization"
		};
		static const Oid types[PLACE_NATTS] = {
			TEXTOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID, FLOAT8OID,
			INT4OID, INT8OID, TEXTOID
		};

		desc = SessmgrResultDesc(PLACE_NATTS, names, types);
	}
	return desc;
}

static void
set_text(Datum *values, bool *nulls, int i, const char *s)
{
	nulls[i] = s == NULL;
	values[i] = s != NULL ? CStringGetTextDatum(s) : (Datum) 0;
}

static void
return_place(FunctionCallInfo fcinfo, const SessmgrPlace *place)
{
	Datum		values[PLACE_NATTS];
	bool		nulls[PLACE_NATTS];

	set_text(values, nulls, 0, place->country_code);
	set_text(values, nulls, 1, place->country);
	set_text(values, nulls, 2, place->region);
	set_text(values, nulls, 3, place->city);
	values[4] = Float8GetDatum(place->latitude);
	values[5] = Float8GetDatum(place->longitude);
	nulls[4] = nulls[5] = !place->has_coordinates;
	values[6] = Int32GetDatum(place->accuracy_radius_km);
	nulls[6] = place->accuracy_radius_km < 0;
	values[7] = Int64GetDatum(place->asn);
	nulls[7] = place->asn < 0;
	set_text(values, nulls, 8, place->as_organization);
	SessmgrReturnRow(fcinfo, place_desc(), values, nulls);
}

/*
 * sessmgr.geolocate(ip inet)
 *	 RETURNS TABLE (country_code text, country text, region text, city text,
 *					latitude double precision, longitude double precision,
 *					accuracy_radius_km integer, asn bigint, as_organization text)
 *
 * Where ip is, by the GeoIP databases: always one row, NULLs for what is
 * not known.
 */
PG_FUNCTION_INFO_V1(sessmgr_geolocate);
Datum
sessmgr_geolocate(PG_FUNCTION_ARGS)
{
	SessmgrPlace place;

	SessmgrBeginResult(fcinfo);
	SessmgrGeolocate(PG_ARGISNULL(0) ? NULL : PG_GETARG_INET_PP(0), &place);
	return_place(fcinfo, &place);
	PG_RETURN_NULL();
}

/*
 * sessmgr.request_location(ip inet)
 *	 RETURNS TABLE (the columns of sessmgr.geolocate)
 *
 * Where the current PostgREST request comes from: the CDN's location headers
 * completed by the databases' answer for ip, the request's client address
 * (sessmgr.request_ip()).  See SessmgrLocateRequest.
 */
PG_FUNCTION_INFO_V1(sessmgr_request_location);
Datum
sessmgr_request_location(PG_FUNCTION_ARGS)
{
	SessmgrPlace place;

	SessmgrBeginResult(fcinfo);
	SessmgrLocateRequest(PG_ARGISNULL(0) ? NULL : PG_GETARG_INET_PP(0), &place);
	return_place(fcinfo, &place);
	PG_RETURN_NULL();
}

/*-------------------------------------------------------------------------
 *
 * risk.c
 *	  Suspicious logins: at issue(), in the issuing transaction, compare the
 *	  new login with what the user's earlier logins left behind, record the
 *	  reasons on the session, and announce a suspicious one
 *	  (docs/protecting-accounts.md).
 *
 * What is remembered per user is kept small and read by key, so that the
 * checks cost two index probes and the bookkeeping two upserts, however long
 * the user's history: sessmgr.login_profiles (one row per user: number of
 * logins, the last login's time and place, the countries and networks seen,
 * the local times of the last 30 logins) and sessmgr.known_devices (one row
 * per user and device: the SHA-256 of the device cookie, or of the
 * browser/OS/device-type combination for clients without one).
 *
 * The reasons (text, in sessions.risk):
 *	 new_device			the device cookie (else the combination) was never seen
 *						for this user, or only in suspicious logins not confirmed
 *	 new_country		a country the user's logins never came from
 *	 new_network		an autonomous system (ASN) the user's logins never came from
 *	 impossible_travel	from the previous login's place, faster than
 *						sessmgr.max_travel_speed (after subtracting both accuracy
 *						radii; ignored when either place is unknown)
 *	 after_failures		at least sessmgr.suspicious_after_failures recent failed
 *						attempts on the account (throttling's count)
 *	 unusual_time		the local time of day is over three hours from every one
 *						of the last 30 logins (once the user has 10)
 *
 * A login is suspicious (an event, a NOTIFY, and under the step_up policy an
 * unconfirmed session) for new_country, impossible_travel or after_failures,
 * or for new_device together with new_network; new_device, new_network and
 * unusual_time alone are only recorded.  A user's first login has no
 * reasons at all.  A suspicious login teaches nothing: its country, network
 * and device become known only when the user confirms the session
 * (sessmgr.confirm_session) or a later ordinary login comes from them.
 *
 * Lock order: issue() locks the user's session_owners row first, like every
 * writer of sessions (src/triggers.c), then the profile row (FOR UPDATE, so
 * that two logins of one user judge in turn); the cap trigger then finds the
 * session_owners row already held, and the device row is upserted last.  confirm_session
 * takes session_owners, the session, then the device and profile rows, like
 * every writer of sessions (src/triggers.c); nothing takes the profile row
 * while holding a device row, so there is no cycle.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "sessmgr.h"

/* the NOTIFY channel of suspicious logins; documented in the README */
#define RISK_CHANNEL			"sessmgr_security"

#define RISK_MAX_KNOWN			32	/* countries, networks remembered per user */
#define RISK_MAX_MINUTES		30	/* login times remembered per user */
#define RISK_MIN_LOGINS_TIME	10	/* logins before unusual_time is judged */
#define RISK_UNUSUAL_MINUTES	180 /* "far" from every earlier login time */
#define RISK_UNKNOWN_RADIUS_KM	50	/* an unknown accuracy radius counts as */
#define RISK_EARTH_RADIUS_KM	6371.0088
#define RISK_MAX_REASONS		6
#define RISK_MAX_TZ_BYTES		64

/* the cookie issue_from_request keeps: 32 random bytes, base64url */
#define RISK_MAX_COOKIE_BYTES	128

struct SessmgrRisk
{
	bool		checked;		/* the policy is not off */
	bool		first;			/* the user's first login */
	int			nreasons;
	const char *reasons[RISK_MAX_REASONS];
	bool		suspicious;
	int			failures;

	/* the device */
	uint8		device_key[SESSMGR_HASH_LEN];
	const char *device_kind;	/* cookie or agent */

	/* the profile as read, for the bookkeeping and the event */
	int64		logins;
	TimestampTz now;
	int			local_minute;
	Datum		countries;		/* text[], or 0 */
	Datum		networks;		/* int8[], or 0 */
	Datum		minutes;		/* int2[], or 0 */
	bool		has_previous;
	TimestampTz previous_at;
	char	   *previous_country_code;
	char	   *previous_city;
	bool		previous_has_coordinates;
	double		previous_latitude;
	double		previous_longitude;
	int			previous_radius_km;
	bool		has_travel;
	double		distance_km;
	double		hours;
	double		speed_kmh;
};

static void
add_reason(SessmgrRisk *risk, const char *reason)
{
	Assert(risk->nreasons < RISK_MAX_REASONS);
	risk->reasons[risk->nreasons++] = reason;
}

static bool
has_reason(const SessmgrRisk *risk, const char *reason)
{
	for (int i = 0; i < risk->nreasons; i++)
		if (strcmp(risk->reasons[i], reason) == 0)
			return true;
	return false;
}

/*
 * The key a device is remembered by: SHA-256 of its cookie, or of its
 * browser, OS and device type (NULLs included: "no user agent" is a
 * combination too).  The prefixes keep the two kinds apart.
 */
static void
device_key(text *cookie, const SessmgrDevice *device, uint8 *key, const char **kind)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (cookie != NULL)
	{
		appendStringInfoString(&buf, "cookie\n");
		appendBinaryStringInfo(&buf, VARDATA_ANY(cookie), VARSIZE_ANY_EXHDR(cookie));
		*kind = "cookie";
	}
	else
	{
		appendStringInfo(&buf, "agent\n%s\n%s\n%s",
						 device->browser ? device->browser : "",
						 device->os ? device->os : "",
						 device->device_type ? device->device_type : "");
		*kind = "agent";
	}
	SessmgrSha256((const uint8 *) buf.data, buf.len, key);
	explicit_bzero(buf.data, buf.len);
	pfree(buf.data);
}

/* Great-circle distance in km between two points (haversine). */
static double
distance_km(double lat1, double lon1, double lat2, double lon2)
{
	double		p1 = lat1 * M_PI / 180.0;
	double		p2 = lat2 * M_PI / 180.0;
	double		dp = (lat2 - lat1) * M_PI / 180.0;
	double		dl = (lon2 - lon1) * M_PI / 180.0;
	double		a = sin(dp / 2) * sin(dp / 2) +
		cos(p1) * cos(p2) * sin(dl / 2) * sin(dl / 2);

	return 2 * RISK_EARTH_RADIUS_KM * asin(sqrt(Min(1.0, a)));
}

/*
 * The minute of the day of t at a place: in its IANA time zone when the
 * geolocation database named one this server knows, else in UTC.
 */
static int
local_minute(TimestampTz t, const char *time_zone)
{
	pg_tz	   *tz = NULL;
	struct pg_tm tm;
	fsec_t		fsec;
	int			offset;

	if (time_zone != NULL && strlen(time_zone) < RISK_MAX_TZ_BYTES &&
		strspn(time_zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			   "0123456789/_+-") == strlen(time_zone) &&
		strstr(time_zone, "..") == NULL && time_zone[0] != '/')
		tz = pg_tzset(time_zone);
	if (tz != NULL && timestamp2tm(t, &offset, &tm, &fsec, NULL, tz) == 0)
		return tm.tm_hour * 60 + tm.tm_min;
	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) == 0)
		return tm.tm_hour * 60 + tm.tm_min;
	return 0;
}

/* Whether minute is more than RISK_UNUSUAL_MINUTES from each of minutes[]. */
static bool
unusual_minute(int minute, Datum minutes)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(minutes), INT2OID, 2, true, TYPALIGN_SHORT,
					  &elems, &nulls, &n);
	if (n < RISK_MIN_LOGINS_TIME)
		return false;
	for (int i = 0; i < n; i++)
	{
		int			d;

		if (nulls[i])
			continue;
		d = abs(minute - DatumGetInt16(elems[i])) % 1440;
		if (Min(d, 1440 - d) <= RISK_UNUSUAL_MINUTES)
			return false;
	}
	return true;
}

/* Whether the text[] or int8[] array holds the value. */
static bool
array_has_text(Datum array, const char *value)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && strcmp(TextDatumGetCString(elems[i]), value) == 0)
			return true;
	return false;
}

static bool
array_has_int8(Datum array, int64 value)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(array), INT8OID, 8, FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && DatumGetInt64(elems[i]) == value)
			return true;
	return false;
}

static int
known_count(Datum array)
{
	ArrayType  *a = DatumGetArrayTypeP(array);

	return ARR_NDIM(a) == 1 ? ARR_DIMS(a)[0] : 0;
}

/*
 * The array with value appended (unless it holds it already), the oldest
 * elements dropped to keep at most max: a copy in the current context.
 */
static Datum
array_remember(Datum array, Oid type, Datum value, bool present, int max)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems = NULL;
	bool	   *nulls = NULL;
	int			n = 0;
	Datum	   *out;
	int			first;
	int			nout;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	if (array != (Datum) 0)
		deconstruct_array(DatumGetArrayTypeP(array), type, typlen, typbyval, typalign,
						  &elems, &nulls, &n);
	out = palloc(sizeof(Datum) * (n + 1));
	nout = 0;
	first = present ? Max(0, n - max) : Max(0, n + 1 - max);
	for (int i = first; i < n; i++)
		if (!nulls[i])
			out[nout++] = elems[i];
	if (!present)
		out[nout++] = value;
	return PointerGetDatum(construct_array(out, nout, type, typlen, typbyval, typalign));
}

/*
 * SessmgrTryInSubtransaction's shape of SessmgrLockUserRow.  A user's first
 * logins find no row to lock: the row is created first (the cap trigger's
 * upsert then counts the session), so that concurrent first logins queue
 * here rather than meet in the cap trigger's insert after each took other
 * rows (a deadlock cap_storm showed).
 */
static void
lock_user_row(void *arg)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};

	SessmgrRun(&plan,
			   "INSERT INTO sessmgr.session_owners (user_id) VALUES ($1)"
			   " ON CONFLICT (user_id) DO NOTHING",
			   1, types, (Datum *) arg, NULL, SPI_OK_INSERT);
	SessmgrLockUserRow((Datum *) arg, USER_LOCK_EXCLUSIVE);
}

/*
 * The user's session_owners row before the profile: the one lock order of
 * every writer of sessions (src/triggers.c).  Under REPEATABLE READ and
 * SERIALIZABLE a row changed since the snapshot cannot be locked; then the
 * cap trigger judges it (a concurrent issue or revocation fails the login
 * there, a cleanup that removed the row lets it be created afresh), so the
 * serialization failure of the lock itself is dropped with its
 * subtransaction.
 */
static void
lock_user_first(Datum *values)
{
	ErrorData  *edata;

	if (!IsolationUsesXactSnapshot())
	{
		lock_user_row(values);
		return;
	}
	edata = SessmgrTryInSubtransaction(lock_user_row, values);
	if (edata != NULL)
	{
		if (edata->sqlerrcode != ERRCODE_T_R_SERIALIZATION_FAILURE)
			ReThrowError(edata);
		FreeErrorData(edata);
	}
}

/*
 * Judge a new login of user_id, issued at now with device, place, the
 * device cookie (NULL: none) and the account's recent failed attempts, and
 * lock the user's rows until the transaction ends.  Costs two statements:
 * the lock of the session_owners row, then the profile row by its key with
 * the device row by its key.  Under the
 * policy off, judges nothing and reads nothing.
 */
SessmgrRisk *
SessmgrRiskAssess(Datum user_id, const SessmgrDevice *device, const SessmgrPlace *place,
				  text *device_cookie, int login_failures, TimestampTz now)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTOID, BYTEAOID};
	Datum		values[2];
	SessmgrRisk *risk = palloc0(sizeof(SessmgrRisk));
	SessmgrOwnerContext octx;
	bytea	   *key;
	bool		known_device = false;
	MemoryContext caller = CurrentMemoryContext;

	risk->now = now;
	risk->failures = login_failures;
	if (sessmgr_suspicious_login_policy == SESSMGR_RISK_POLICY_OFF)
		return risk;
	risk->checked = true;

	if (device_cookie != NULL)
	{
		SessmgrCheckText(PointerGetDatum(device_cookie), "device cookie",
						 RISK_MAX_COOKIE_BYTES);
		if (VARSIZE_ANY_EXHDR(device_cookie) == 0)
			device_cookie = NULL;
	}
	device_key(device_cookie, device, risk->device_key, &risk->device_kind);
	risk->local_minute = local_minute(now, place->time_zone);

	key = palloc(VARHDRSZ + SESSMGR_HASH_LEN);
	SET_VARSIZE(key, VARHDRSZ + SESSMGR_HASH_LEN);
	memcpy(VARDATA(key), risk->device_key, SESSMGR_HASH_LEN);
	values[0] = user_id;
	values[1] = PointerGetDatum(key);

	SessmgrOwnerBegin(&octx);
	lock_user_first(values);
	SessmgrRun(&plan,
			   "SELECT p.logins, p.last_login_at, p.last_country_code, p.last_city,"
			   "       p.last_latitude, p.last_longitude, p.last_accuracy_radius_km,"
			   "       p.countries, p.networks, p.login_minutes,"
			   "       EXISTS (SELECT FROM sessmgr.known_devices d"
			   "                WHERE d.user_id OPERATOR(pg_catalog.=) p.user_id"
			   "                  AND d.device_key OPERATOR(pg_catalog.=) $2"
			   "                  AND d.trusted)"
			   "  FROM sessmgr.login_profiles p"
			   " WHERE p.user_id OPERATOR(pg_catalog.=) $1"
			   "   FOR UPDATE OF p",
			   2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(caller);
		bool		isnull;
		bool		lat_null,
					lon_null;
		Datum		d;

		risk->logins = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		risk->has_previous = true;
		risk->previous_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 2, &isnull));
		d = SPI_getbinval(row, desc, 3, &isnull);
		risk->previous_country_code = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(row, desc, 4, &isnull);
		risk->previous_city = isnull ? NULL : TextDatumGetCString(d);
		risk->previous_latitude = DatumGetFloat8(SPI_getbinval(row, desc, 5, &lat_null));
		risk->previous_longitude = DatumGetFloat8(SPI_getbinval(row, desc, 6, &lon_null));
		risk->previous_has_coordinates = !lat_null && !lon_null;
		d = SPI_getbinval(row, desc, 7, &isnull);
		risk->previous_radius_km = isnull ? -1 : DatumGetInt32(d);
		risk->countries = PointerGetDatum(DatumGetArrayTypePCopy(SPI_getbinval(row, desc, 8, &isnull)));
		risk->networks = PointerGetDatum(DatumGetArrayTypePCopy(SPI_getbinval(row, desc, 9, &isnull)));
		risk->minutes = PointerGetDatum(DatumGetArrayTypePCopy(SPI_getbinval(row, desc, 10, &isnull)));
		known_device = DatumGetBool(SPI_getbinval(row, desc, 11, &isnull));
		MemoryContextSwitchTo(old);
	}
	SessmgrOwnerEnd(&octx);

	/* a user's first login is never suspicious: there is nothing to compare */
	if (risk->logins <= 0)
	{
		risk->first = true;
		return risk;
	}

	if (!known_device)
		add_reason(risk, "new_device");
	if (place->country_code != NULL && known_count(risk->countries) > 0 &&
		!array_has_text(risk->countries, place->country_code))
		add_reason(risk, "new_country");
	if (place->asn >= 0 && known_count(risk->networks) > 0 &&
		!array_has_int8(risk->networks, place->asn))
		add_reason(risk, "new_network");

	/* how fast the user would have had to travel from the previous login */
	if (place->has_coordinates && risk->previous_has_coordinates)
	{
		double		km = distance_km(risk->previous_latitude, risk->previous_longitude,
									 place->latitude, place->longitude);
		double		radii = (risk->previous_radius_km >= 0 ?
							 risk->previous_radius_km : RISK_UNKNOWN_RADIUS_KM) +
			(place->accuracy_radius_km >= 0 ?
			 place->accuracy_radius_km : RISK_UNKNOWN_RADIUS_KM);

		risk->has_travel = true;
		risk->distance_km = Max(0.0, km - radii);
		risk->hours = Max(0.0, (double) (now - risk->previous_at) / USECS_PER_HOUR);
		risk->speed_kmh = risk->distance_km <= 0 ? 0 :
			risk->hours > 0 ? risk->distance_km / risk->hours : INFINITY;
		if (risk->speed_kmh > sessmgr_max_travel_speed)
			add_reason(risk, "impossible_travel");
	}

	if (sessmgr_suspicious_after_failures > 0 &&
		login_failures >= sessmgr_suspicious_after_failures)
		add_reason(risk, "after_failures");

	if (risk->logins >= RISK_MIN_LOGINS_TIME &&
		unusual_minute(risk->local_minute, risk->minutes))
		add_reason(risk, "unusual_time");

	risk->suspicious = has_reason(risk, "new_country") ||
		has_reason(risk, "impossible_travel") ||
		has_reason(risk, "after_failures") ||
		(has_reason(risk, "new_device") && has_reason(risk, "new_network"));
	return risk;
}

/* The reasons as a text[] datum, for sessions.risk. */
Datum
SessmgrRiskReasons(const SessmgrRisk *risk)
{
	Datum		elems[RISK_MAX_REASONS];

	for (int i = 0; i < risk->nreasons; i++)
		elems[i] = CStringGetTextDatum(risk->reasons[i]);
	return PointerGetDatum(construct_array(elems, risk->nreasons, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/* The assurance level the session starts at: 0 (unconfirmed) or 1. */
int
SessmgrRiskAal(const SessmgrRisk *risk)
{
	return risk->suspicious &&
		sessmgr_suspicious_login_policy == SESSMGR_RISK_POLICY_STEP_UP ? 0 : 1;
}

static void
json_key(StringInfo buf, const char *key, bool *first)
{
	if (!*first)
		appendStringInfoChar(buf, ',');
	*first = false;
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
}

static void
json_text(StringInfo buf, const char *key, const char *value, bool *first)
{
	json_key(buf, key, first);
	if (value != NULL)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
}

static void
json_reasons(StringInfo buf, const SessmgrRisk *risk, bool *first)
{
	json_key(buf, "reasons", first);
	appendStringInfoChar(buf, '[');
	for (int i = 0; i < risk->nreasons; i++)
	{
		if (i > 0)
			appendStringInfoChar(buf, ',');
		escape_json(buf, risk->reasons[i]);
	}
	appendStringInfoChar(buf, ']');
}

/* A finite number as JSON, rounded to one decimal; null otherwise. */
static void
json_number(StringInfo buf, const char *key, double value, bool *first)
{
	json_key(buf, key, first);
	if (isfinite(value))
		appendStringInfo(buf, "%.1f", round(value * 10) / 10);
	else
		appendStringInfoString(buf, "null");
}

/* The details of a suspicious_login event: the reasons and the facts. */
static char *
event_details(const SessmgrRisk *risk, const SessmgrDevice *device,
			  const SessmgrPlace *place)
{
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	json_reasons(&buf, risk, &first);
	json_text(&buf, "policy",
			  sessmgr_suspicious_login_policy == SESSMGR_RISK_POLICY_STEP_UP ?
			  "step_up" : "flag", &first);
	json_text(&buf, "device", device->label, &first);
	json_text(&buf, "device_kind", risk->device_kind, &first);
	/* the device's key (a hash), which confirm_session trusts */
	json_key(&buf, "device_key", &first);
	appendStringInfoChar(&buf, '"');
	for (int i = 0; i < SESSMGR_HASH_LEN; i++)
		appendStringInfo(&buf, "%02x", risk->device_key[i]);
	appendStringInfoChar(&buf, '"');
	json_text(&buf, "country_code", place->country_code, &first);
	json_text(&buf, "city", place->city, &first);
	json_key(&buf, "asn", &first);
	if (place->asn >= 0)
		appendStringInfo(&buf, INT64_FORMAT, place->asn);
	else
		appendStringInfoString(&buf, "null");
	json_key(&buf, "local_time", &first);
	appendStringInfo(&buf, "\"%02d:%02d\"", risk->local_minute / 60, risk->local_minute % 60);
	json_text(&buf, "time_zone", place->time_zone, &first);
	json_key(&buf, "failures", &first);
	appendStringInfo(&buf, "%d", risk->failures);
	json_key(&buf, "previous", &first);
	{
		bool		pfirst = true;

		appendStringInfoChar(&buf, '{');
		json_text(&buf, "at", timestamptz_to_str(risk->previous_at), &pfirst);
		json_text(&buf, "country_code", risk->previous_country_code, &pfirst);
		json_text(&buf, "city", risk->previous_city, &pfirst);
		if (risk->previous_has_coordinates)
		{
			json_key(&buf, "latitude", &pfirst);
			appendStringInfo(&buf, "%.4f", risk->previous_latitude);
			json_key(&buf, "longitude", &pfirst);
			appendStringInfo(&buf, "%.4f", risk->previous_longitude);
		}
		if (risk->previous_radius_km >= 0)
		{
			json_key(&buf, "accuracy_radius_km", &pfirst);
			appendStringInfo(&buf, "%d", risk->previous_radius_km);
		}
		appendStringInfoChar(&buf, '}');
	}
	if (risk->has_travel)
	{
		json_number(&buf, "distance_km", risk->distance_km, &first);
		json_number(&buf, "hours", risk->hours, &first);
		json_number(&buf, "speed_kmh", risk->speed_kmh, &first);
		json_key(&buf, "max_travel_speed", &first);
		appendStringInfo(&buf, "%d", sessmgr_max_travel_speed);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Announce a suspicious login at commit on RISK_CHANNEL: event, user_id,
 * session_id, reasons, ip, country, device label; never a token.  The
 * user id (256 bytes at most), the labels and names (a few hundred bytes at
 * most) keep it well below NOTIFY's 8000-byte limit.
 */
static void
notify_suspicious(Datum user_id, const pg_uuid_t *session_id, const char *ip,
				  const SessmgrRisk *risk, const SessmgrDevice *device,
				  const SessmgrPlace *place)
{
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	json_text(&buf, "event", "suspicious_login", &first);
	json_text(&buf, "user_id", TextDatumGetCString(user_id), &first);
	json_text(&buf, "session_id",
			  DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(session_id))),
			  &first);
	json_reasons(&buf, risk, &first);
	json_text(&buf, "ip", ip, &first);
	json_text(&buf, "country", place->country != NULL ? place->country : place->country_code,
			  &first);
	json_text(&buf, "device", device->label, &first);
	appendStringInfoChar(&buf, '}');
	Async_Notify(RISK_CHANNEL, buf.data);
	pfree(buf.data);
}

/*
 * After the session's INSERT: remember the login (profile and device: two
 * upserts by key) and, for a suspicious one, write the suspicious_login
 * event and announce it at commit.  A suspicious login leaves its country,
 * network and device unknown (see the file header).
 */
void
SessmgrRiskRecord(SessmgrRisk *risk, Datum user_id, const pg_uuid_t *session_id,
				  inet *ip, const SessmgrDevice *device, const SessmgrPlace *place)
{
	static SPIPlanPtr profile_plan = NULL;
	static SPIPlanPtr device_plan = NULL;
	static SPIPlanPtr event_plan = NULL;
	Oid			profile_types[10] = {
		TEXTOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, FLOAT8OID, FLOAT8OID, INT4OID,
		TEXTARRAYOID, INT8ARRAYOID, INT2ARRAYOID
	};
	Oid			device_types[10] = {
		TEXTOID, BYTEAOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		TIMESTAMPTZOID, UUIDOID, BOOLOID
	};
	Oid			event_types[11] = {
		UUIDOID, TEXTOID, NAMEOID, INETOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID, JSONBOID
	};
	Datum		values[12];
	char		nulls[12];
	SessmgrOwnerContext octx;
	bytea	   *key;
	bool		learn = !risk->suspicious;

	if (!risk->checked)
		return;

	/* the profile: what the next login is compared with */
	memset(nulls, ' ', sizeof(nulls));
	values[0] = user_id;
	values[1] = TimestampTzGetDatum(risk->now);
	SessmgrTextParam(values, nulls, 2, place->country_code);
	SessmgrTextParam(values, nulls, 3, place->city);
	values[4] = Float8GetDatum(place->latitude);
	values[5] = Float8GetDatum(place->longitude);
	nulls[4] = nulls[5] = place->has_coordinates ? ' ' : 'n';
	values[6] = Int32GetDatum(place->accuracy_radius_km);
	nulls[6] = place->accuracy_radius_km >= 0 ? ' ' : 'n';
	values[7] = place->country_code == NULL || !learn ?
		(risk->countries != (Datum) 0 ? risk->countries :
		 array_remember((Datum) 0, TEXTOID, (Datum) 0, true, RISK_MAX_KNOWN)) :
		array_remember(risk->countries, TEXTOID, CStringGetTextDatum(place->country_code),
					   risk->countries != (Datum) 0 &&
					   array_has_text(risk->countries, place->country_code),
					   RISK_MAX_KNOWN);
	values[8] = place->asn < 0 || !learn ?
		(risk->networks != (Datum) 0 ? risk->networks :
		 array_remember((Datum) 0, INT8OID, (Datum) 0, true, RISK_MAX_KNOWN)) :
		array_remember(risk->networks, INT8OID, Int64GetDatum(place->asn),
					   risk->networks != (Datum) 0 &&
					   array_has_int8(risk->networks, place->asn),
					   RISK_MAX_KNOWN);
	values[9] = array_remember(risk->minutes, INT2OID, Int16GetDatum(risk->local_minute),
							   false, RISK_MAX_MINUTES);

	SessmgrOwnerBegin(&octx);
	SessmgrRun(&profile_plan,
			   "INSERT INTO sessmgr.login_profiles AS p"
			   " (user_id, logins, first_login_at, last_login_at, last_country_code,"
			   "  last_city, last_latitude, last_longitude, last_accuracy_radius_km,"
			   "  countries, networks, login_minutes)"
			   " VALUES ($1, 1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
			   " ON CONFLICT (user_id) DO UPDATE"
			   "   SET logins = p.logins OPERATOR(pg_catalog.+) 1,"
			   "       last_login_at = EXCLUDED.last_login_at,"
			   "       last_country_code = EXCLUDED.last_country_code,"
			   "       last_city = EXCLUDED.last_city,"
			   "       last_latitude = EXCLUDED.last_latitude,"
			   "       last_longitude = EXCLUDED.last_longitude,"
			   "       last_accuracy_radius_km = EXCLUDED.last_accuracy_radius_km,"
			   "       countries = EXCLUDED.countries,"
			   "       networks = EXCLUDED.networks,"
			   "       login_minutes = EXCLUDED.login_minutes",
			   10, profile_types, values, nulls, SPI_OK_INSERT);

	/* the device: known from now on, unless this login was suspicious */
	key = palloc(VARHDRSZ + SESSMGR_HASH_LEN);
	SET_VARSIZE(key, VARHDRSZ + SESSMGR_HASH_LEN);
	memcpy(VARDATA(key), risk->device_key, SESSMGR_HASH_LEN);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = user_id;
	values[1] = PointerGetDatum(key);
	values[2] = CStringGetTextDatum(risk->device_kind);
	SessmgrTextParam(values, nulls, 3, device->label);
	SessmgrTextParam(values, nulls, 4, device->browser);
	SessmgrTextParam(values, nulls, 5, device->os);
	SessmgrTextParam(values, nulls, 6, device->device_type);
	values[7] = TimestampTzGetDatum(risk->now);
	values[8] = UUIDPGetDatum(session_id);
	values[9] = BoolGetDatum(learn);
	SessmgrRun(&device_plan,
			   "INSERT INTO sessmgr.known_devices AS d"
			   " (user_id, device_key, kind, label, browser, os, device_type,"
			   "  first_seen_at, last_seen_at, last_session_id, trusted)"
			   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)"
			   " ON CONFLICT (user_id, device_key) DO UPDATE"
			   "   SET label = EXCLUDED.label, browser = EXCLUDED.browser,"
			   "       os = EXCLUDED.os, device_type = EXCLUDED.device_type,"
			   "       last_seen_at = EXCLUDED.last_seen_at,"
			   "       last_session_id = EXCLUDED.last_session_id,"
			   "       trusted = d.trusted OR EXCLUDED.trusted",
			   10, device_types, values, nulls, SPI_OK_INSERT);

	if (risk->suspicious)
	{
		const char *actor_user_id = SessmgrIdentityUserId();
		char	   *actor = GetUserNameFromId(SessmgrActor(), true);
		NameData	actor_name;
		char	   *ip_text = NULL;

		namestrcpy(&actor_name, actor ? actor : "?");
		memset(nulls, ' ', sizeof(nulls));
		values[0] = UUIDPGetDatum(session_id);
		values[1] = user_id;
		values[2] = NameGetDatum(&actor_name);
		if (ip != NULL)
		{
			values[3] = InetPGetDatum(ip);
			ip_text = DatumGetCString(DirectFunctionCall1(inet_out, values[3]));
		}
		else
			nulls[3] = 'n';
		SessmgrTextParam(values, nulls, 4, actor_user_id);
		SessmgrTextParam(values, nulls, 5, device->label);
		SessmgrTextParam(values, nulls, 6, place->country_code);
		SessmgrTextParam(values, nulls, 7, place->country);
		SessmgrTextParam(values, nulls, 8, place->city);
		SessmgrTextParam(values, nulls, 9, place->region);
		values[10] = DirectFunctionCall1(jsonb_in,
										 CStringGetDatum(event_details(risk, device, place)));
		SessmgrRun(&event_plan,
				   "INSERT INTO sessmgr.session_events"
				   " (event, session_id, user_id, actor, ip, actor_user_id, device,"
				   "  country_code, country, city, region, details)"
				   " VALUES ('suspicious_login', $1, $2, $3, $4, $5, $6, $7, $8, $9,"
				   "         $10, $11)",
				   11, event_types, values, nulls, SPI_OK_INSERT);
		notify_suspicious(user_id, session_id, ip_text, risk, device, place);
	}
	SessmgrOwnerEnd(&octx);
}

/*
 * sessmgr.confirm_session(session_id uuid, user_id text) RETURNS boolean
 *
 * "This was me": clear the risk of one of user_id's live sessions, make its
 * device, country and network known, and write a session_confirmed event.
 * Refused like revoke() (22023 invalid session id) for another user's, an
 * unknown or an ended session.  Returns whether the session had any risk.
 * The session's assurance level is left alone: an unconfirmed session
 * (policy step_up) still needs sessmgr.reauthenticate.
 */
PG_FUNCTION_INFO_V1(sessmgr_confirm_session);
Datum
sessmgr_confirm_session(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr session_plan = NULL;
	static SPIPlanPtr device_plan = NULL;
	static SPIPlanPtr profile_plan = NULL;
	static SPIPlanPtr event_plan = NULL;
	Oid			types[4] = {UUIDOID, TIMESTAMPTZOID, TEXTOID, NAMEOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Datum		owner_values[2];
	text	   *user_id;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	SessmgrOwnerContext octx;
	const char *actor_user_id = SessmgrIdentityUserId();
	char	   *actor;
	NameData	actor_name;
	bool		had_risk;
	bool		isnull;

	user_id = SessmgrCheckUserId(fcinfo, 1, true, "Pass the user id of the session.");
	if (PG_ARGISNULL(0))
		SessmgrInvalidSessionId();
	values[0] = PG_GETARG_DATUM(0);
	values[1] = TimestampTzGetDatum(now);

	SessmgrOwnerBegin(&octx);

	/* whose session is it, and is it still live? */
	if (!SessmgrReadSessionOwner(values[0], user_id, now, &owner_values[0]))
		SessmgrInvalidSessionId();
	values[2] = owner_values[0];

	/* the user's row first (the lock order of triggers.c), then the session */
	owner_values[1] = values[1];
	SessmgrLockUserRow(owner_values, USER_LOCK_SHARE);
	SessmgrRun(&session_plan,
			   "UPDATE sessmgr.sessions s"
			   "   SET risk = '{}'"
			   "  FROM (SELECT id, risk FROM sessmgr.sessions"
			   "         WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE) o"
			   " WHERE s.id OPERATOR(pg_catalog.=) o.id"
			   "   AND " SESSMGR_LIVE_SQL("s.", "$2")
			   " RETURNING pg_catalog.cardinality(o.risk) OPERATOR(pg_catalog.>) 0,"
			   "           s.country_code, s.asn",
			   2, types, values, NULL, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed != 1)
		SessmgrInvalidSessionId();
	had_risk = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										  1, &isnull));
	{
		Oid			ptypes[3] = {TEXTOID, TEXTOID, INT8OID};
		Datum		pvalues[3];
		char		pnulls[3] = {' ', ' ', ' '};

		pvalues[0] = values[2];
		pvalues[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (isnull)
			pnulls[1] = 'n';
		pvalues[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		if (isnull)
			pnulls[2] = 'n';

		/*
		 * The device it was issued on: the one its suspicious_login event
		 * names, or the one it was the last session of.
		 */
		SessmgrRun(&device_plan,
				   "UPDATE sessmgr.known_devices"
				   "   SET trusted = true, confirmed_at = $2"
				   " WHERE user_id OPERATOR(pg_catalog.=) $3"
				   "   AND (last_session_id OPERATOR(pg_catalog.=) $1"
				   "        OR device_key OPERATOR(pg_catalog.=) ANY (ARRAY("
				   "             SELECT pg_catalog.decode(e.details OPERATOR(pg_catalog.->>) 'device_key', 'hex')"
				   "               FROM sessmgr.session_events e"
				   "              WHERE e.session_id OPERATOR(pg_catalog.=) $1"
				   "                AND e.event OPERATOR(pg_catalog.=) 'suspicious_login')))",
				   3, types, values, NULL, SPI_OK_UPDATE);

		/* its country and network (the newest RISK_MAX_KNOWN are kept) */
		SessmgrRun(&profile_plan,
				   "UPDATE sessmgr.login_profiles p"
				   "   SET countries = CASE WHEN $2 IS NULL"
				   "                          OR $2 OPERATOR(pg_catalog.=) ANY (p.countries)"
				   "                        THEN p.countries"
				   "                        ELSE (p.countries OPERATOR(pg_catalog.||) $2)"
				   "                             [greatest(1, pg_catalog.cardinality(p.countries)"
				   "                                          OPERATOR(pg_catalog.-) "
				   CppAsString2(RISK_MAX_KNOWN) " OPERATOR(pg_catalog.+) 2):]"
				   "                   END,"
				   "       networks = CASE WHEN $3 IS NULL"
				   "                         OR $3 OPERATOR(pg_catalog.=) ANY (p.networks)"
				   "                       THEN p.networks"
				   "                       ELSE (p.networks OPERATOR(pg_catalog.||) $3)"
				   "                            [greatest(1, pg_catalog.cardinality(p.networks)"
				   "                                         OPERATOR(pg_catalog.-) "
				   CppAsString2(RISK_MAX_KNOWN) " OPERATOR(pg_catalog.+) 2):]"
				   "                  END"
				   " WHERE p.user_id OPERATOR(pg_catalog.=) $1",
				   3, ptypes, pvalues, pnulls, SPI_OK_UPDATE);
	}

	actor = GetUserNameFromId(SessmgrActor(), true);
	namestrcpy(&actor_name, actor ? actor : "?");
	values[1] = CStringGetTextDatum(actor_user_id != NULL ? actor_user_id : "");
	nulls[1] = actor_user_id != NULL ? ' ' : 'n';
	values[3] = NameGetDatum(&actor_name);
	{
		Oid			etypes[4] = {UUIDOID, TEXTOID, TEXTOID, NAMEOID};

		SessmgrRun(&event_plan,
				   "INSERT INTO sessmgr.session_events"
				   " (event, session_id, user_id, actor, actor_user_id)"
				   " VALUES ('session_confirmed', $1, $3, $4, $2)",
				   4, etypes, values, nulls, SPI_OK_INSERT);
	}
	SessmgrOwnerEnd(&octx);

	PG_RETURN_BOOL(had_risk);
}

/*
 * One batch of cleanup (src/cleanup.c): forget the profiles of users whose
 * last login is older than before, and the devices last seen before it,
 * among the users after *cursor (NULL: from the first) up to batch_rows
 * profiles on; rows somebody has locked wait for the next run.  Advances
 * *cursor (allocated in the caller's context); returns false when the pass
 * is over.  Call inside SPI, outside owner mode.
 */
bool
SessmgrRiskCleanup(TimestampTz before, int64 batch_rows, text **cursor)
{
	static SPIPlanPtr chunk_plan = NULL;
	static SPIPlanPtr profiles_plans[2] = {NULL, NULL};
	static SPIPlanPtr devices_plans[2] = {NULL, NULL};
	/* [0]: up to the batch's last user; [1]: the last batch, to the end */
	static const char *const profiles_sql[2] = {
		"DELETE FROM sessmgr.login_profiles"
		" WHERE user_id OPERATOR(pg_catalog.=) ANY (ARRAY("
		"   SELECT p.user_id FROM sessmgr.login_profiles p"
		"    WHERE p.user_id OPERATOR(pg_catalog.>) $1"
		"      AND p.user_id OPERATOR(pg_catalog.<=) $2"
		"      AND p.last_login_at OPERATOR(pg_catalog.<) $3"
		"      FOR UPDATE OF p SKIP LOCKED))",
		"DELETE FROM sessmgr.login_profiles"
		" WHERE user_id OPERATOR(pg_catalog.=) ANY (ARRAY("
		"   SELECT p.user_id FROM sessmgr.login_profiles p"
		"    WHERE p.user_id OPERATOR(pg_catalog.>) $1"
		"      AND p.last_login_at OPERATOR(pg_catalog.<) $3"
		"      FOR UPDATE OF p SKIP LOCKED))",
	};
	static const char *const devices_sql[2] = {
		"DELETE FROM sessmgr.known_devices"
		" WHERE (user_id, device_key) IN ("
		"   SELECT d.user_id, d.device_key FROM sessmgr.known_devices d"
		"    WHERE d.user_id OPERATOR(pg_catalog.>) $1"
		"      AND d.user_id OPERATOR(pg_catalog.<=) $2"
		"      AND d.last_seen_at OPERATOR(pg_catalog.<) $3"
		"      FOR UPDATE OF d SKIP LOCKED)",
		"DELETE FROM sessmgr.known_devices"
		" WHERE (user_id, device_key) IN ("
		"   SELECT d.user_id, d.device_key FROM sessmgr.known_devices d"
		"    WHERE d.user_id OPERATOR(pg_catalog.>) $1"
		"      AND d.last_seen_at OPERATOR(pg_catalog.<) $3"
		"      FOR UPDATE OF d SKIP LOCKED)",
	};
	Oid			chunk_types[2] = {TEXTOID, INT8OID};
	Oid			delete_types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	MemoryContext caller = CurrentMemoryContext;
	SessmgrOwnerContext octx;
	bool		more;
	bool		isnull;
	Datum		end;
	text	   *to = NULL;

	SessmgrEnterOwnerMode(&octx);
	values[0] = *cursor != NULL ? PointerGetDatum(*cursor) : CStringGetTextDatum("");
	values[1] = Int64GetDatum(batch_rows - 1);

	/*
	 * Where the batch ends: the nearer of each table's batch_rows-th user
	 * after the cursor (each read from its primary key, batch_rows entries),
	 * else the end of both.
	 */
	SessmgrRun(&chunk_plan,
			   "SELECT LEAST("
			   " (SELECT p.user_id FROM sessmgr.login_profiles p"
			   "   WHERE p.user_id OPERATOR(pg_catalog.>) $1"
			   "   ORDER BY p.user_id OFFSET $2 LIMIT 1),"
			   " (SELECT d.user_id FROM sessmgr.known_devices d"
			   "   WHERE d.user_id OPERATOR(pg_catalog.>) $1"
			   "   ORDER BY d.user_id OFFSET $2 LIMIT 1))",
			   2, chunk_types, values, NULL, SPI_OK_SELECT);
	end = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	more = !isnull;
	if (more)
	{
		MemoryContext old = MemoryContextSwitchTo(caller);

		to = DatumGetTextPCopy(end);
		MemoryContextSwitchTo(old);
		values[1] = PointerGetDatum(to);
	}
	else
		values[1] = values[0];	/* not read by the plans of the last batch */
	values[2] = TimestampTzGetDatum(before);

	SessmgrRun(&profiles_plans[more ? 0 : 1], profiles_sql[more ? 0 : 1],
			   3, delete_types, values, NULL, SPI_OK_DELETE);
	SessmgrRun(&devices_plans[more ? 0 : 1], devices_sql[more ? 0 : 1],
			   3, delete_types, values, NULL, SPI_OK_DELETE);
	SessmgrLeaveOwnerMode(&octx);

	if (*cursor != NULL)
		pfree(*cursor);
	*cursor = to;
	return more;
}

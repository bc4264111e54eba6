/*-------------------------------------------------------------------------
 *
 * throttle.c
 *	  Failed logins: counting them, delaying and locking, and the refusal in
 *	  issue() (docs/protecting-accounts.md).
 *
 * The application reports each failed login with sessmgr.login_failed().
 * A failure counts against up to three keys, one row each in
 * sessmgr.login_attempts, primary key (user_id, network):
 *
 *	 pair		(user id, network)		the account from one network
 *	 account	(user id, 0.0.0.0/0)	the account from anywhere
 *	 address	('', network)			the network, across accounts
 *
 * A network is an IPv4 address (/32) or an IPv6 /64, the block one client
 * usually holds; an IPv4-mapped IPv6 address counts as its IPv4 address.
 * The empty user id, which no session can have, stands for "any account".
 * Once a key's failures exceed its free allowance, each further failure
 * delays the next attempt by sessmgr.login_first_delay doubled per failure
 * up to sessmgr.login_max_delay; sessmgr.login_lockout_failures consecutive
 * failures lock the account until sessmgr.unlock_account().  Failures are
 * forgotten sessmgr.login_failure_window after a key's last one (never while
 * the account is locked).  sessmgr knows nothing of accounts, so an unknown
 * user id is counted exactly like a known one.
 *
 * One failure is one statement: an INSERT ... ON CONFLICT DO UPDATE of the
 * keys' rows, in primary key order (the address row sorts first, then the
 * account row, then the pair row; every writer here locks them in that
 * order, so failures and the resets of issue() cannot deadlock), which
 * computes the new counts, delays and lock in the rows themselves and
 * returns them.  Under READ COMMITTED that is exact by itself: the upsert
 * waits for a concurrent failure's row lock and then updates the latest row
 * version.  Under REPEATABLE READ and SERIALIZABLE the same wait ends in
 * "could not serialize access due to concurrent update", because the row
 * changed after the transaction's snapshot.  A failure must not be lost to
 * that, so there the statement runs in a subtransaction with a snapshot
 * taken just before it (as PostgreSQL's foreign-key checks read with the
 * latest snapshot) and is run again, a bounded number of times, when it
 * meets a serialization failure: every committed failure is counted exactly
 * once, at every isolation level.  SERIALIZABLE adds SSI's own failures,
 * which no snapshot resolves: the upsert reads the rows it updates, so it
 * takes predicate locks (on the page, as a failure's rows usually share
 * one), and concurrent failures for one account or network form the
 * read/write dependency cycles SSI refuses ("could not serialize access due
 * to read/write dependencies among transactions").  Such a transaction is
 * rolled back, its failure with it, and its caller retries it, as every
 * caller at that level must; what commits is counted exactly once.
 *
 * issue() calls SessmgrThrottleBeforeIssue(), which refuses while the
 * account is locked (SM423) or the pair or the account is delayed (SM429),
 * and after the new session's INSERT SessmgrThrottleAfterIssue(), which
 * deletes the pair's and the account's rows: a successful login resets
 * them.  For a user without failures that is one index probe and no write.
 *
 * Failures are reported as login_failed events, at most one per account
 * and network a minute (the row remembers when it last wrote one and how
 * many failures it has not reported since), then account_locked and
 * account_unlocked.  Locking is announced with NOTIFY on sessmgr_security.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/snapmgr.h"

#include "sessmgr.h"

/* the NOTIFY channel of security events; shared with src/risk.c */
#define SESSMGR_SECURITY_CHANNEL	"sessmgr_security"

/* at most one login_failed event per account and network this often */
#define THROTTLE_EVENT_INTERVAL_SECS	60

/* delays double this many times at most (2^40 ms is 35 years) */
#define THROTTLE_DELAY_STEPS		41

/* how often a failure is tried again after a serialization failure */
#define THROTTLE_MAX_TRIES			1000

/* the SQLSTATEs of issue()'s refusals, after the HTTP statuses they suggest */
#define ERRCODE_SESSMGR_DELAYED		MAKE_SQLSTATE('S', 'M', '4', '2', '9')
#define ERRCODE_SESSMGR_LOCKED		MAKE_SQLSTATE('S', 'M', '4', '2', '3')

/* the keys a failure counts against, in primary key order */
typedef enum ThrottleKey
{
	KEY_ADDRESS,
	KEY_ACCOUNT,
	KEY_PAIR,
	NUM_KEYS
} ThrottleKey;

/* what a statement returned about one key's row */
typedef struct ThrottleRow
{
	bool		found;
	int			failures;
	bool		delayed;
	TimestampTz delayed_until;
	bool		locked;
	TimestampTz locked_at;
	TimestampTz last_failed_at;
	bool		event_due;		/* login_failed: this failure writes the event */
	int			event_failures; /* ... reporting this many */
} ThrottleRow;

/*
 * The network an address counts by, as a cidr: an IPv4 address, or the /64
 * of an IPv6 address; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is its
 * IPv4 address, so that a dual-stack listener does not lump every IPv4
 * client into one /64.
 */
static Datum
network_of(const inet *ip)
{
	inet	   *net = (inet *) palloc0(sizeof(inet));
	const unsigned char *a = ip_addr(ip);
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (ip_family(ip) == PGSQL_AF_INET6 && memcmp(a, mapped, sizeof(mapped)) != 0)
	{
		ip_family(net) = PGSQL_AF_INET6;
		ip_bits(net) = 64;
		memcpy(ip_addr(net), a, 8);
	}
	else
	{
		ip_family(net) = PGSQL_AF_INET;
		ip_bits(net) = 32;
		memcpy(ip_addr(net), ip_family(ip) == PGSQL_AF_INET6 ? a + 12 : a, 4);
	}
	SET_INET_VARSIZE(net);
	return InetPGetDatum(net);
}

/* 0.0.0.0/0: the network of an account's own key, "every address" */
static Datum
any_network(void)
{
	inet	   *net = (inet *) palloc0(sizeof(inet));

	ip_family(net) = PGSQL_AF_INET;
	ip_bits(net) = 0;
	SET_INET_VARSIZE(net);
	return InetPGetDatum(net);
}

/* An interval of usecs microseconds (never days or months). */
static Interval *
interval_usecs(int64 usecs)
{
	Interval   *result = palloc0(sizeof(Interval));

	result->time = usecs;
	return result;
}

/*
 * "Locked": the largest interval.  PostgreSQL 17 and later call exactly
 * this value 'infinity'; PostgreSQL 15 and 16, which have no infinite
 * intervals, print it as 178956970 years 7 mons 2147483647 days
 * 2562047788:00:54.775807, and it compares greater than any other interval.
 */
static Interval *
interval_infinite(void)
{
	Interval   *result = palloc0(sizeof(Interval));

	result->month = PG_INT32_MAX;
	result->day = PG_INT32_MAX;
	result->time = PG_INT64_MAX;
	return result;
}

/* The window's start: failures before it are forgotten. */
static TimestampTz
window_start(TimestampTz now)
{
	return now - (int64) sessmgr_login_failure_window * USECS_PER_SEC;
}

/* The delay after the failures-th failure on a key with free free failures. */
static int64
delay_usecs(int failures, int free)
{
	int			doublings;
	int64		delay;

	if (failures <= free || sessmgr_login_first_delay == 0)
		return 0;
	doublings = Min(failures - free - 1, THROTTLE_DELAY_STEPS - 1);
	delay = (int64) sessmgr_login_first_delay * 1000;
	while (doublings-- > 0 && delay < (int64) sessmgr_login_max_delay * 1000)
		delay *= 2;
	return Min(delay, (int64) sessmgr_login_max_delay * 1000);
}

/*
 * The delays after the 1st, 2nd, ... THROTTLE_DELAY_STEPS-th failure beyond
 * a key's free ones, as an interval[] for the failure's statement (the last
 * holds for every later one): a subscript there instead of arithmetic.
 */
static ArrayType *
delay_steps(void)
{
	Datum		steps[THROTTLE_DELAY_STEPS];

	for (int i = 0; i < THROTTLE_DELAY_STEPS; i++)
		steps[i] = IntervalPGetDatum(interval_usecs(delay_usecs(i + 1, 0)));
	return construct_array(steps, THROTTLE_DELAY_STEPS, INTERVALOID, sizeof(Interval),
						   false, TYPALIGN_DOUBLE);
}

/* A failure reason: a short, non-empty word or phrase. */
static void
check_reason(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("failure reason must not be null")));
	SessmgrCheckText(PG_GETARG_DATUM(argno), "failure reason", SESSMGR_MAX_REASON_BYTES);
	if (VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(argno)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("failure reason must not be empty")));
}

/* ------------------------------------------------------------------------
 * Exact writes at every isolation level
 * ------------------------------------------------------------------------
 */

typedef struct ExactStatement
{
	SPIPlanPtr	plan;
	Datum	   *values;
	const char *nulls;
	int			expected;
	void		(*collect) (void *arg);	/* reads SPI_tuptable, or NULL */
	void	   *collect_arg;
	uint64		processed;
} ExactStatement;

/*
 * Whether an error is the "concurrent update" (or delete) kind of
 * serialization failure, which a fresh snapshot resolves.  SSI's failure
 * ("read/write dependencies among transactions") has the same SQLSTATE but
 * dooms the transaction: trying again would fail again.  It is the one that
 * carries a "Reason code" detail (untranslated, errdetail_internal).
 */
static bool
is_concurrent_update(const ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE &&
		(edata->detail == NULL || strncmp(edata->detail, "Reason code", 11) != 0);
}

/* One try: the statement with a snapshot taken now, and its rows collected. */
static void
run_with_latest_snapshot(void *arg)
{
	ExactStatement *stmt = (ExactStatement *) arg;
	int			rc;

	rc = SPI_execute_snapshot(stmt->plan, stmt->values, stmt->nulls,
							  GetLatestSnapshot(), InvalidSnapshot,
							  false, true, 0);
	if (rc != stmt->expected)
		elog(ERROR, "SPI_execute_snapshot returned %s", SPI_result_code_string(rc));
	stmt->processed = SPI_processed;
	if (stmt->collect != NULL)
		stmt->collect(stmt->collect_arg);
}

/*
 * Run one of this file's writes exactly once, at any isolation level (see
 * the file header); SPI connected, in owner mode.  collect, if not NULL, is
 * called with the statement's rows in SPI_tuptable.
 */
static uint64
run_exact(SPIPlanPtr *plan, const char *sql, int nargs, const Oid *argtypes,
		  Datum *values, const char *nulls, int expected,
		  void (*collect) (void *arg), void *collect_arg)
{
	ExactStatement stmt;

	if (!IsolationUsesXactSnapshot())
	{
		uint64		processed = SessmgrRun(plan, sql, nargs, argtypes, values, nulls,
										   expected);

		if (collect != NULL)
			collect(collect_arg);
		return processed;
	}

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, (Oid *) argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}
	stmt.plan = *plan;
	stmt.values = values;
	stmt.nulls = nulls;
	stmt.expected = expected;
	stmt.collect = collect;
	stmt.collect_arg = collect_arg;
	for (int tries = 1;; tries++)
	{
		ErrorData  *edata;

		CHECK_FOR_INTERRUPTS();
		edata = SessmgrTryInSubtransaction(run_with_latest_snapshot, &stmt);
		if (edata == NULL)
			return stmt.processed;
		if (!is_concurrent_update(edata) || tries >= THROTTLE_MAX_TRIES)
			ReThrowError(edata);
		FreeErrorData(edata);
	}
}

/* ------------------------------------------------------------------------
 * Reading the keys
 * ------------------------------------------------------------------------
 */

/* The columns every read returns, in this order. */
#define READ_COLUMNS(a) \
	"(" a ".user_id OPERATOR(pg_catalog.=) ''), (pg_catalog.masklen(" a ".network) OPERATOR(pg_catalog.=) 0)," \
	" " a ".failures, " a ".delayed_until, " a ".locked_at, " a ".last_failed_at"

/* Which key a row returned by a statement is: by its first two columns. */
static ThrottleKey
row_key(HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;

	if (DatumGetBool(SPI_getbinval(tuple, desc, 1, &isnull)))
		return KEY_ADDRESS;
	if (DatumGetBool(SPI_getbinval(tuple, desc, 2, &isnull)))
		return KEY_ACCOUNT;
	return KEY_PAIR;
}

/* Fill rows[] from SPI_tuptable, whose columns start with READ_COLUMNS. */
static void
collect_rows(void *arg)
{
	ThrottleRow *rows = (ThrottleRow *) arg;
	TupleDesc	desc = SPI_tuptable->tupdesc;

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		ThrottleRow *row = &rows[row_key(tuple, desc)];
		bool		isnull;
		Datum		d;

		row->found = true;
		row->failures = DatumGetInt32(SPI_getbinval(tuple, desc, 3, &isnull));
		d = SPI_getbinval(tuple, desc, 4, &isnull);
		row->delayed = !isnull;
		row->delayed_until = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tuple, desc, 5, &isnull);
		row->locked = !isnull;
		row->locked_at = isnull ? 0 : DatumGetTimestampTz(d);
		row->last_failed_at = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 6, &isnull));
		if (desc->natts >= 8)
		{
			d = SPI_getbinval(tuple, desc, 7, &isnull);
			row->event_due = !isnull && DatumGetTimestampTz(d) == row->last_failed_at;
			row->event_failures = DatumGetInt32(SPI_getbinval(tuple, desc, 8, &isnull));
		}
	}
}

/*
 * Read the keys of user_id (and of ip's network, if not NULL; and of that
 * network across accounts if with_address) with the transaction's snapshot:
 * at most three probes of the primary key, each on the whole key, so that
 * the cached generic plan cannot but use it.  (One scan with user_id =
 * ANY(...) AND network = ANY(...) was planned, once the statistics knew the
 * empty user id of the address keys to be common, as a scan of every
 * address key filtered by network.)  SPI connected, in owner mode.
 */
static void
read_keys(Datum user_id, const inet *ip, bool with_address, ThrottleRow *rows)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, CIDROID, CIDROID, BOOLOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	memset(rows, 0, sizeof(ThrottleRow) * NUM_KEYS);
	values[0] = user_id;
	values[1] = ip != NULL ? network_of(ip) : (Datum) 0;
	nulls[1] = ip != NULL ? ' ' : 'n';
	values[2] = any_network();
	values[3] = BoolGetDatum(with_address && ip != NULL);
	SessmgrRun(&plan,
			   "SELECT " READ_COLUMNS("a") " FROM sessmgr.login_attempts a"
			   " WHERE a.user_id OPERATOR(pg_catalog.=) $1 AND a.network OPERATOR(pg_catalog.=) $3"
			   " UNION ALL"
			   " SELECT " READ_COLUMNS("p") " FROM sessmgr.login_attempts p"
			   " WHERE p.user_id OPERATOR(pg_catalog.=) $1 AND p.network OPERATOR(pg_catalog.=) $2"
			   " UNION ALL"
			   " SELECT " READ_COLUMNS("n") " FROM sessmgr.login_attempts n"
			   " WHERE $4 AND n.user_id OPERATOR(pg_catalog.=) '' AND n.network OPERATOR(pg_catalog.=) $2",
			   4, types, values, nulls, SPI_OK_SELECT);
	collect_rows(rows);
}

/*
 * The wait a key's row imposes at now: -1 when it locks the account, else
 * the microseconds until its delay ends (0: none, or forgotten).
 */
static int64
row_wait(const ThrottleRow *row, TimestampTz now)
{
	if (!row->found)
		return 0;
	if (row->locked)
		return -1;
	if (row->last_failed_at <= window_start(now) || !row->delayed ||
		row->delayed_until <= now)
		return 0;
	return row->delayed_until - now;
}

/* The failures a key's row counts at now (0 when forgotten). */
static int
row_failures(const ThrottleRow *row, TimestampTz now)
{
	if (!row->found)
		return 0;
	if (!row->locked && row->last_failed_at <= window_start(now))
		return 0;
	return row->failures;
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------
 */

/*
 * Write an account event (session_id NULL) in the caller's transaction,
 * naming the role that called (SessmgrActor) and the user it had
 * authenticated as, as the session triggers do (src/triggers.c), and the
 * attempt's device and place as an issue event does.  SPI connected, in
 * owner mode.
 */
static void
write_event(const char *event, Datum user_id, const char *reason, inet *ip,
			text *user_agent, const char *details,
			const SessmgrDevice *device, const SessmgrPlace *place)
{
	static SPIPlanPtr plan = NULL;
#define EVENT_NARGS 20
	Oid			types[EVENT_NARGS] = {
		TEXTOID, TEXTOID, TEXTOID, NAMEOID, INETOID, TEXTOID, TEXTOID, JSONBOID
	};
	Datum		values[EVENT_NARGS];
	char		nulls[EVENT_NARGS];
	const char *actor_user_id = SessmgrIdentityUserId();
	char	   *actor = GetUserNameFromId(SessmgrActor(), true);
	NameData	actor_name;

	memcpy(types + 8, SessmgrDevicePlaceTypes, sizeof(SessmgrDevicePlaceTypes));
	memset(nulls, ' ', sizeof(nulls));
	namestrcpy(&actor_name, actor ? actor : "?");
	values[0] = CStringGetTextDatum(event);
	values[1] = user_id;
	SessmgrTextParam(values, nulls, 2, reason);
	values[3] = NameGetDatum(&actor_name);
	values[4] = ip != NULL ? InetPGetDatum(ip) : (Datum) 0;
	nulls[4] = ip != NULL ? ' ' : 'n';
	SessmgrTextParam(values, nulls, 5, actor_user_id);
	values[6] = user_agent != NULL ? PointerGetDatum(user_agent) : (Datum) 0;
	nulls[6] = user_agent != NULL ? ' ' : 'n';
	values[7] = DirectFunctionCall1(jsonb_in, CStringGetDatum(details));
	SessmgrDevicePlaceParams(device, place, values, nulls, 8);

	SessmgrRun(&plan,
			   "INSERT INTO sessmgr.session_events"
			   " (event, session_id, user_id, reason, actor, ip, actor_user_id,"
			   "  user_agent, details, device, browser, os, device_type, country_code,"
			   "  country, region, city, latitude, longitude, accuracy_radius_km, asn)"
			   " VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
			   "         $14, $15, $16, $17, $18, $19, $20)",
			   EVENT_NARGS, types, values, nulls, SPI_OK_INSERT);
}

/*
 * Announce a locked account on sessmgr_security at commit, in the shape of
 * risk.c's suspicious_login: event, user_id, ip, country, device of the
 * attempt that locked it, and the count; never a secret.  Far below
 * NOTIFY's 8000-byte limit (user ids are at most 256 bytes, the names a few
 * hundred).
 */
static void
notify_locked(Datum user_id, const inet *ip, int failures,
			  const SessmgrDevice *device, const SessmgrPlace *place)
{
	const char *country = place->country != NULL ? place->country : place->country_code;

	StringInfoData payload;

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"event\":\"account_locked\",\"user_id\":");
	escape_json(&payload, TextDatumGetCString(user_id));
	appendStringInfoString(&payload, ",\"ip\":");
	if (ip != NULL)
		escape_json(&payload, DatumGetCString(DirectFunctionCall1(inet_out,
																  InetPGetDatum(ip))));
	else
		appendStringInfoString(&payload, "null");
	appendStringInfoString(&payload, ",\"country\":");
	if (country != NULL)
		escape_json(&payload, country);
	else
		appendStringInfoString(&payload, "null");
	appendStringInfoString(&payload, ",\"device\":");
	if (device->label != NULL)
		escape_json(&payload, device->label);
	else
		appendStringInfoString(&payload, "null");
	appendStringInfo(&payload, ",\"failures\":%d}", failures);
	Async_Notify(SESSMGR_SECURITY_CHANNEL, payload.data);
	pfree(payload.data);
}

/* ------------------------------------------------------------------------
 * SQL-callable functions
 * ------------------------------------------------------------------------
 */

/*
 * sessmgr.login_delay(user_id text, ip inet DEFAULT NULL) RETURNS interval
 *
 * How long the next attempt must wait: the longest delay of the keys that
 * apply, '0' when it may be made now, the largest interval ('infinity')
 * while the account is locked.  Writes nothing.
 */
PG_FUNCTION_INFO_V1(sessmgr_login_delay);
Datum
sessmgr_login_delay(PG_FUNCTION_ARGS)
{
	ThrottleRow rows[NUM_KEYS];
	SessmgrOwnerContext octx;
	TimestampTz now;
	int64		wait = 0;

	(void) SessmgrCheckUserId(fcinfo, 0, false, NULL);
	SessmgrOwnerBegin(&octx);
	read_keys(PG_GETARG_DATUM(0), PG_ARGISNULL(1) ? NULL : PG_GETARG_INET_PP(1), true, rows);
	SessmgrOwnerEnd(&octx);

	now = GetCurrentTimestamp();
	for (int k = 0; k < NUM_KEYS; k++)
	{
		int64		w = row_wait(&rows[k], now);

		if (w < 0)
			PG_RETURN_INTERVAL_P(interval_infinite());
		wait = Max(wait, w);
	}
	PG_RETURN_INTERVAL_P(interval_usecs(wait));
}

/*
 * The SET list of a failure's upsert: the proposed row (EXCLUDED) is the
 * row as it would be inserted; o is the existing one.  $3 is 0.0.0.0/0 (the
 * account key), $4 the failure's time, $5 the window's start, $6 the time
 * before which the key's last event is over a minute old, $7..$9 the free
 * failures of the pair, account and address keys, $10 the delays after the
 * 1st, 2nd, ... failure beyond them (delay_steps), $12 the lockout.  EXCLUDED.event_at is set only on
 * the key whose row reports the failures (the pair, or the account without
 * an address).
 */
#define FAILURE_FRESH \
	"(o.locked_at IS NOT NULL OR o.last_failed_at OPERATOR(pg_catalog.>) $5)"
#define FAILURE_COUNT \
	"(CASE WHEN " FAILURE_FRESH \
	" THEN LEAST(o.failures, 2147483646) OPERATOR(pg_catalog.+) 1 ELSE 1 END)"
#define FAILURE_FREE \
	"(CASE WHEN o.user_id OPERATOR(pg_catalog.=) '' THEN $9" \
	" WHEN o.network OPERATOR(pg_catalog.=) $3 THEN $8 ELSE $7 END)"
#define FAILURE_EVENT_DUE \
	"(EXCLUDED.event_at IS NOT NULL AND" \
	" (o.event_at IS NULL OR o.event_at OPERATOR(pg_catalog.<=) $6))"
#define FAILURE_SET \
	" ON CONFLICT (user_id, network) DO UPDATE SET" \
	"  failures = " FAILURE_COUNT "," \
	"  first_failed_at = CASE WHEN " FAILURE_FRESH " THEN o.first_failed_at ELSE $4 END," \
	"  last_failed_at = $4," \
	"  delayed_until = CASE WHEN " FAILURE_COUNT " OPERATOR(pg_catalog.>) " FAILURE_FREE \
	"    THEN $4 OPERATOR(pg_catalog.+) $10[LEAST(" FAILURE_COUNT " OPERATOR(pg_catalog.-) " \
	FAILURE_FREE ", " CppAsString2(THROTTLE_DELAY_STEPS) ")] END," \
	"  locked_at = CASE WHEN o.locked_at IS NOT NULL THEN o.locked_at" \
	"    WHEN o.network OPERATOR(pg_catalog.=) $3" \
	"     AND " FAILURE_COUNT " OPERATOR(pg_catalog.>=) $12 THEN $4 END," \
	"  event_at = CASE WHEN " FAILURE_EVENT_DUE " THEN $4 ELSE o.event_at END," \
	"  event_failures = CASE WHEN " FAILURE_EVENT_DUE \
	"    THEN o.unreported OPERATOR(pg_catalog.+) 1 ELSE o.event_failures END," \
	"  unreported = CASE WHEN " FAILURE_EVENT_DUE " THEN 0" \
	"    WHEN EXCLUDED.event_at IS NOT NULL THEN o.unreported OPERATOR(pg_catalog.+) 1" \
	"    ELSE o.unreported END" \
	" RETURNING " READ_COLUMNS("o") ", o.event_at, o.event_failures"

/* the insert's columns; VALUES rows: $13..$15 delayed_until, $16 locked_at */
#define FAILURE_INSERT \
	"INSERT INTO sessmgr.login_attempts AS o" \
	" (user_id, network, failures, first_failed_at, last_failed_at, delayed_until," \
	"  locked_at, event_at, event_failures, unreported) VALUES "

#define FAILURE_NARGS 16

/*
 * sessmgr.login_failed(user_id text, ip inet DEFAULT NULL,
 *						user_agent text DEFAULT NULL,
 *						reason text DEFAULT 'bad_credentials') RETURNS interval
 *
 * Record a failed login against the account, the pair and the address (no
 * address: the account only) and return the new delay (login_delay's
 * answer right after it).
 */
PG_FUNCTION_INFO_V1(sessmgr_login_failed);
Datum
sessmgr_login_failed(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan_ip = NULL;
	static SPIPlanPtr plan_no_ip = NULL;
	Oid			types[FAILURE_NARGS] = {
		TEXTOID, CIDROID, CIDROID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
		INT4OID, INT4OID, INT4OID, INTERVALARRAYOID, INTERVALOID, INT4OID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID
	};
	Datum		values[FAILURE_NARGS];
	char		nulls[FAILURE_NARGS];
	static const int *const free_of[NUM_KEYS] = {
		&sessmgr_login_address_free_failures,
		&sessmgr_login_account_free_failures,
		&sessmgr_login_pair_free_failures
	};
	ThrottleRow rows[NUM_KEYS];
	Datum		user_id;
	inet	   *ip;
	text	   *user_agent;
	char	   *reason;
	TimestampTz now;
	SessmgrOwnerContext octx;
	int64		wait = 0;
	bool		locked = false;
	bool		derived = false;
	SessmgrDevice device;
	SessmgrPlace place;

	(void) SessmgrCheckUserId(fcinfo, 0, false, NULL);
	if (!PG_ARGISNULL(2))
		SessmgrCheckText(PG_GETARG_DATUM(2), "user agent", SESSMGR_MAX_USER_AGENT_BYTES);
	check_reason(fcinfo, 3);
	user_id = PG_GETARG_DATUM(0);
	ip = PG_ARGISNULL(1) ? NULL : PG_GETARG_INET_PP(1);
	user_agent = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	reason = text_to_cstring(PG_GETARG_TEXT_PP(3));

	now = GetCurrentTimestamp();
	memset(nulls, ' ', sizeof(nulls));
	values[0] = user_id;
	values[1] = ip != NULL ? network_of(ip) : (Datum) 0;
	nulls[1] = ip != NULL ? ' ' : 'n';
	values[2] = any_network();
	values[3] = TimestampTzGetDatum(now);
	values[4] = TimestampTzGetDatum(window_start(now));
	values[5] = TimestampTzGetDatum(now - (int64) THROTTLE_EVENT_INTERVAL_SECS * USECS_PER_SEC);
	values[6] = Int32GetDatum(sessmgr_login_pair_free_failures);
	values[7] = Int32GetDatum(sessmgr_login_account_free_failures);
	values[8] = Int32GetDatum(sessmgr_login_address_free_failures);
	values[9] = PointerGetDatum(delay_steps());
	nulls[10] = 'n';			/* unused */
	values[11] = Int32GetDatum(sessmgr_login_lockout_failures);
	/* a first failure: its delay (a key with no free failures) and lock */
	for (int k = 0; k < NUM_KEYS; k++)
	{
		int			i = 12 + (NUM_KEYS - 1 - k);	/* $13 pair, $14 account, $15 address */
		int64		d = delay_usecs(1, *free_of[k]);

		values[i] = TimestampTzGetDatum(now + d);
		nulls[i] = d > 0 ? ' ' : 'n';
	}
	values[15] = TimestampTzGetDatum(now);
	nulls[15] = sessmgr_login_lockout_failures <= 1 ? ' ' : 'n';

	memset(rows, 0, sizeof(rows));
	SessmgrOwnerBegin(&octx);
	if (ip != NULL)
		run_exact(&plan_ip,
				  FAILURE_INSERT
				  " ('', $2, 1, $4, $4, $15, NULL, NULL, 0, 0),"
				  " ($1, $3, 1, $4, $4, $14, $16, NULL, 0, 0),"
				  " ($1, $2, 1, $4, $4, $13, NULL, $4, 1, 0)"
				  FAILURE_SET,
				  FAILURE_NARGS, types, values, nulls, SPI_OK_INSERT_RETURNING,
				  collect_rows, rows);
	else
		run_exact(&plan_no_ip,
				  FAILURE_INSERT
				  " ($1, $3, 1, $4, $4, $14, $16, $4, 1, 0)"
				  FAILURE_SET,
				  FAILURE_NARGS, types, values, nulls, SPI_OK_INSERT_RETURNING,
				  collect_rows, rows);

	for (int k = 0; k < NUM_KEYS; k++)
	{
		int64		w = row_wait(&rows[k], now);

		if (w < 0)
			locked = true;
		else
			wait = Max(wait, w);
	}

	/* the event of this account and network, if its minute has passed */
	for (int k = 0; k < NUM_KEYS; k++)
	{
		StringInfoData details;

		if (!rows[k].found || !rows[k].event_due)
			continue;
		if (!derived)
		{
			SessmgrDeriveDevicePlace(user_agent, ip, NULL, &device, &place);
			derived = true;
		}
		initStringInfo(&details);
		appendStringInfo(&details,
						 "{\"failures\": %d, \"account_failures\": %d",
						 rows[k].event_failures, rows[KEY_ACCOUNT].failures);
		if (ip != NULL)
			appendStringInfo(&details,
							 ", \"pair_failures\": %d, \"address_failures\": %d",
							 rows[KEY_PAIR].failures, rows[KEY_ADDRESS].failures);
		appendStringInfo(&details, ", \"delay_seconds\": %s}",
						 locked ? "null" :
						 psprintf("%.3f", (double) wait / USECS_PER_SEC));
		write_event("login_failed", user_id, reason, ip, user_agent, details.data,
					&device, &place);
	}

	/* the failure that locked the account */
	if (rows[KEY_ACCOUNT].locked && rows[KEY_ACCOUNT].locked_at == now)
	{
		if (!derived)
			SessmgrDeriveDevicePlace(user_agent, ip, NULL, &device, &place);
		write_event("account_locked", user_id, reason, ip, user_agent,
					psprintf("{\"failures\": %d}", rows[KEY_ACCOUNT].failures),
					&device, &place);
		notify_locked(user_id, ip, rows[KEY_ACCOUNT].failures, &device, &place);
	}
	SessmgrOwnerEnd(&octx);

	if (locked)
		PG_RETURN_INTERVAL_P(interval_infinite());
	PG_RETURN_INTERVAL_P(interval_usecs(wait));
}

/*
 * sessmgr.login_failures(user_id text) RETURNS integer
 *
 * The account's consecutive failures within the window (those before a
 * lock are never forgotten); 0 when none.
 */
PG_FUNCTION_INFO_V1(sessmgr_login_failures);
Datum
sessmgr_login_failures(PG_FUNCTION_ARGS)
{
	ThrottleRow rows[NUM_KEYS];
	SessmgrOwnerContext octx;

	(void) SessmgrCheckUserId(fcinfo, 0, false, NULL);
	SessmgrOwnerBegin(&octx);
	read_keys(PG_GETARG_DATUM(0), NULL, false, rows);
	SessmgrOwnerEnd(&octx);
	PG_RETURN_INT32(row_failures(&rows[KEY_ACCOUNT], GetCurrentTimestamp()));
}

/*
 * sessmgr.unlock_account(user_id text) RETURNS boolean
 *
 * Clear the account's failures, delays and lock, and those of its pairs
 * (the addresses' own counts stay); true if there was anything to clear,
 * then with an account_unlocked event naming the administrator.
 */
PG_FUNCTION_INFO_V1(sessmgr_unlock_account);
Datum
sessmgr_unlock_account(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	SessmgrOwnerContext octx;
	TimestampTz now = GetCurrentTimestamp();
	ThrottleRow rows[NUM_KEYS];
	uint64		cleared;
	SessmgrDevice device;
	SessmgrPlace place;

	(void) SessmgrCheckUserId(fcinfo, 0, false, NULL);
	values[0] = PG_GETARG_DATUM(0);
	memset(rows, 0, sizeof(rows));

	SessmgrOwnerBegin(&octx);
	/* in primary key order, like every writer: the account row first */
	run_exact(&plan,
			  "DELETE FROM sessmgr.login_attempts a"
			  " WHERE a.user_id OPERATOR(pg_catalog.=) $1"
			  " RETURNING " READ_COLUMNS("a"),
			  1, types, values, NULL, SPI_OK_DELETE_RETURNING,
			  collect_rows, rows);
	cleared = SPI_processed;
	if (cleared > 0)
	{
		memset(&device, 0, sizeof(device));
		SessmgrDeriveDevicePlace(NULL, NULL, NULL, &device, &place);
		write_event("account_unlocked", values[0], NULL, NULL, NULL,
					psprintf("{\"failures\": %d, \"locked\": %s}",
							 row_failures(&rows[KEY_ACCOUNT], now),
							 rows[KEY_ACCOUNT].locked ? "true" : "false"),
					&device, &place);
	}
	SessmgrOwnerEnd(&octx);

	PG_RETURN_BOOL(cleared > 0);
}

/* ------------------------------------------------------------------------
 * issue()'s hooks
 * ------------------------------------------------------------------------
 */

/*
 * Whether the last SessmgrThrottleBeforeIssue found a row of the pair or
 * the account (live or forgotten): the pair's row can outlive the account's
 * (a success from another network resets only the account and that pair).
 */
static bool reset_due = false;

/*
 * Before issue() inserts a session for user_id from ip (NULL: unknown):
 * refuse while the account is locked (SM423) or the pair or the account is
 * delayed (SM429, the remaining wait in the detail).  Returns the account's
 * consecutive failures within the window, 0 when none.  A probe of the
 * primary key per key (the account's, the pair's), nothing written.
 */
int
SessmgrThrottleBeforeIssue(Datum user_id, inet *ip)
{
	ThrottleRow rows[NUM_KEYS];
	SessmgrOwnerContext octx;
	TimestampTz now;
	int64		wait = 0;

	SessmgrOwnerBegin(&octx);
	read_keys(user_id, ip, false, rows);
	SessmgrOwnerEnd(&octx);
	reset_due = rows[KEY_ACCOUNT].found || rows[KEY_PAIR].found;

	now = GetCurrentTimestamp();
	for (int k = KEY_ACCOUNT; k <= KEY_PAIR; k++)
	{
		int64		w = row_wait(&rows[k], now);

		if (w < 0)
			ereport(ERROR,
					(errcode(ERRCODE_SESSMGR_LOCKED),
					 errmsg("account is locked"),
					 errdetail("The account has had %d consecutive failed login attempts.",
							   rows[k].failures),
					 errhint("An administrator unlocks it with sessmgr.unlock_account().")));
		wait = Max(wait, w);
	}
	if (wait > 0)
	{
		int64		secs = (wait + USECS_PER_SEC - 1) / USECS_PER_SEC;

		ereport(ERROR,
				(errcode(ERRCODE_SESSMGR_DELAYED),
				 errmsg("too many failed login attempts"),
				 errdetail("The next attempt is allowed in " INT64_FORMAT " seconds.", secs)));
	}
	return row_failures(&rows[KEY_ACCOUNT], now);
}

/*
 * After issue() inserted the session: a successful login resets the pair's
 * and the account's failures (the address's stay: one success from a
 * network says nothing of its other accounts).  failures is what
 * SessmgrThrottleBeforeIssue returned; when it found no row of either,
 * there is nothing to do.
 */
void
SessmgrThrottleAfterIssue(Datum user_id, inet *ip, int failures)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {TEXTOID, CIDROID, CIDROID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	SessmgrOwnerContext octx;

	if (failures <= 0 && !reset_due)
		return;
	reset_due = false;
	values[0] = user_id;
	values[1] = any_network();
	values[2] = ip != NULL ? network_of(ip) : (Datum) 0;
	nulls[2] = ip != NULL ? ' ' : 'n';

	SessmgrOwnerBegin(&octx);
	/* an index scan: the account row, then the pair's, as every writer locks them */
	run_exact(&plan,
			  "DELETE FROM sessmgr.login_attempts a"
			  " WHERE a.user_id OPERATOR(pg_catalog.=) $1"
			  "   AND (a.network OPERATOR(pg_catalog.=) $2 OR a.network OPERATOR(pg_catalog.=) $3)"
			  "   AND a.locked_at IS NULL",
			  3, types, values, nulls, SPI_OK_DELETE, NULL, NULL);
	SessmgrOwnerEnd(&octx);
}

/* ------------------------------------------------------------------------
 * Cleanup
 * ------------------------------------------------------------------------
 */

/*
 * One batch of cleanup (src/cleanup.c): remove the rows whose last failure
 * is older than the window and that do not lock an account, among the keys
 * after cursor (cursor[0] == 0: from the first; cursor[0..1] are the user id
 * and the network of the last key examined, allocated in the caller's
 * context) up to batch_rows keys on, in primary key order; rows somebody
 * has locked are skipped (SKIP LOCKED), so cleanup never waits for a
 * failure being recorded.  Adds the rows removed to *removed and advances
 * cursor; returns false when the pass is over.  Call inside SPI, outside
 * owner mode.
 */
bool
SessmgrThrottleCleanup(int64 batch_rows, Datum *cursor, int64 *removed)
{
	static SPIPlanPtr chunk_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	Oid			chunk_types[3] = {TEXTOID, CIDROID, INT8OID};
	Oid			delete_types[5] = {TEXTOID, CIDROID, TEXTOID, CIDROID, TIMESTAMPTZOID};
	MemoryContext caller = CurrentMemoryContext;
	SessmgrOwnerContext octx;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		more;
	bool		isnull;

	SessmgrEnterOwnerMode(&octx);
	/* ('', 0.0.0.0/0) precedes every key */
	values[0] = cursor[0] != (Datum) 0 ? cursor[0] : CStringGetTextDatum("");
	values[1] = cursor[0] != (Datum) 0 ? cursor[1] : any_network();
	values[2] = Int64GetDatum(batch_rows - 1);

	/* where the batch ends: batch_rows keys on, else the end */
	SessmgrRun(&chunk_plan,
			   "SELECT a.user_id, a.network FROM sessmgr.login_attempts a"
			   " WHERE (a.user_id, a.network) OPERATOR(pg_catalog.>) ($1, $2)"
			   " ORDER BY a.user_id, a.network"
			   " OFFSET $3 LIMIT 1",
			   3, chunk_types, values, NULL, SPI_OK_SELECT);
	more = SPI_processed == 1;
	if (more)
	{
		MemoryContext old = MemoryContextSwitchTo(caller);

		values[2] = datumCopy(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull),
							  false, -1);
		values[3] = datumCopy(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 2, &isnull),
							  false, -1);
		MemoryContextSwitchTo(old);
	}
	else
		nulls[2] = nulls[3] = 'n';
	values[4] = TimestampTzGetDatum(window_start(GetCurrentTimestamp()));

	SessmgrRun(&delete_plan,
			   "WITH forgotten AS ("
			   "   SELECT a.user_id, a.network FROM sessmgr.login_attempts a"
			   "    WHERE (a.user_id, a.network) OPERATOR(pg_catalog.>) ($1, $2)"
			   "      AND ($3 IS NULL OR (a.user_id, a.network) OPERATOR(pg_catalog.<=) ($3, $4))"
			   "      AND a.last_failed_at OPERATOR(pg_catalog.<=) $5"
			   "      AND a.locked_at IS NULL"
			   "      FOR UPDATE OF a SKIP LOCKED)"
			   " DELETE FROM sessmgr.login_attempts d USING forgotten f"
			   "  WHERE d.user_id OPERATOR(pg_catalog.=) f.user_id"
			   "    AND d.network OPERATOR(pg_catalog.=) f.network",
			   5, delete_types, values, nulls, SPI_OK_DELETE);
	*removed += SPI_processed;
	SessmgrLeaveOwnerMode(&octx);

	if (cursor[0] != (Datum) 0)
	{
		pfree(DatumGetPointer(cursor[0]));
		pfree(DatumGetPointer(cursor[1]));
	}
	cursor[0] = more ? values[2] : (Datum) 0;
	cursor[1] = more ? values[3] : (Datum) 0;
	return more;
}

#!/usr/bin/env bash
# bench/analytics.sh: the analytics functions over 90 days of history (issue 15:
# each under a second for 100,000 users and 10 million events, because it reads
# roll-ups and an index range, not the whole table).
#
#   bash bench/analytics.sh [--quick]
#
# Builds, on a throwaway cluster, 90 whole UTC days plus today of history for
# 100,000 users: 4 million logins with their countries and devices, their
# revocations, evictions and expiries (durations log-uniform, 20% remembered),
# suspicious logins, failed logins and re-authentications, 10 million events in
# all, in time order; the sessions of the last 7 days (sessmgr.retention) and
# the live ones in sessmgr.sessions.  Rows are generated with generate_series
# and inserted directly with the triggers off (as the audit trigger and cleanup
# would have written them); the secondary indexes of session_events are dropped
# for the load and built again.  Then:
#   1. each function with since = now() - 90 days before anything is rolled up
#      (the baseline: it reads every event of the 90 days);
#   2. the roll-up, as cleanup runs it (sessmgr.analytics_roll_up, a day per
#      transaction), timed;
#   3. each function again, 7 runs in one backend (median and first), and a few
#      other shapes (weekly buckets, hourly buckets over 2 days: raw events);
#   4. the plans of the statements inside each function (auto_explain), summed
#      up as the relations each reads and how many rows.
# Unless --quick (100x fewer rows; figures mean nothing), writes the
# "analytics" section of bench/RESULTS.md.  Hold the build lock while it runs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh
# shellcheck source=bench/results_section.bash
source bench/results_section.bash

USERS=100000
LOGINS=4000000
EVENTS=10000000
RUNS=7
QUICK=0
if [[ "${1:-}" == --quick ]]; then
	USERS=1000; LOGINS=40000; EVENTS=100000; RUNS=3; QUICK=1
fi

sessmgr_ensure_packages
sessmgr_build_install
started=$SECONDS
sessmgr_cluster_start "shared_buffers = 2GB" "work_mem = 64MB" "maintenance_work_mem = 1GB" \
	"max_wal_size = 16GB" "checkpoint_timeout = 30min" "synchronous_commit = off"
psql_at() { sessmgr_psql -At "$@"; }
thousands() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }

sessmgr_log "bench analytics: building $EVENTS events for $USERS users"
t0=$SECONDS
sessmgr_psql <<SQL
CREATE EXTENSION sessmgr;
SELECT setseed(0.42);
-- the sessions of 90 days and today: who, where, on what, how and when they ended
CREATE UNLOGGED TABLE bench_sessions AS
WITH g AS (
    SELECT i, (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '90 days') AT TIME ZONE 'UTC' AS t0
      FROM generate_series(1, $LOGINS) i
), s AS (
    SELECT i,
           md5(i::text)::uuid AS id,
           floor($USERS * power(random(), 1.5))::int AS u,
           t0 + (now() - t0) * ((i - 1)::float8 / $LOGINS) AS start_at,
           random() < 0.2 AS remember,
           random() AS how, random() AS r1, random() AS r2, random() AS r3
      FROM g
), k AS (
    SELECT s.*,
           CASE WHEN how < 0.50 THEN 'logout' WHEN how < 0.55 THEN 'logout_all'
                WHEN how < 0.57 THEN 'admin' WHEN how < 0.58 THEN 'token_reuse'
                WHEN how < 0.63 THEN 'cap' WHEN how < 0.93 THEN 'idle' ELSE 'absolute' END AS kind,
           CASE WHEN r2 < 0.9 THEN u % 20 ELSE floor(r3 * 20)::int END AS place,
           CASE WHEN r3 < 0.8 THEN u % 12 ELSE floor(r2 * 12)::int END AS device
      FROM s
)
SELECT k.i, k.id, 'user-' || k.u AS user_id, k.start_at, k.remember, k.kind,
       k.start_at + make_interval(secs =>
           CASE WHEN k.kind = 'cap' THEN exp(ln(3600) + k.r1 * ln(72))
                WHEN k.kind = 'idle' THEN CASE WHEN k.remember THEN 7 * 86400 ELSE 1800 END
                                          + exp(k.r1 * ln(28800))
                WHEN k.kind = 'absolute' THEN CASE WHEN k.remember THEN 30 * 86400 ELSE 86400 END
                ELSE exp(ln(60) + k.r1 * ln(720)) END) AS end_at,
       (ARRAY['US','DE','FR','GB','IN','BR','JP','CA','ES','IT','NL','PL','SE','MX','AU','KR','TR','ZA','NG','AR'])[k.place + 1] AS country_code,
       (ARRAY['United States','Germany','France','United Kingdom','India','Brazil','Japan','Canada','Spain','Italy','Netherlands','Poland','Sweden','Mexico','Australia','South Korea','Turkey','South Africa','Nigeria','Argentina'])[k.place + 1] AS country,
       (ARRAY['Chrome','Chrome','Safari','Firefox','Edge','Chrome Mobile','Mobile Safari','Samsung Internet','Chrome','Firefox','Opera','Chrome Mobile'])[k.device + 1] AS browser,
       (ARRAY['Windows','Mac OS X','Mac OS X','Windows','Windows','Android','iOS','Android','Linux','Linux','Windows','iOS'])[k.device + 1] AS os,
       (ARRAY['Desktop','Desktop','Desktop','Desktop','Desktop','Mobile','Mobile','Mobile','Desktop','Desktop','Desktop','Tablet'])[k.device + 1] AS device_type,
       k.r2 < 0.05 AS suspicious
  FROM k;
CREATE INDEX ON bench_sessions (start_at);
CREATE INDEX ON bench_sessions (end_at);
-- failed logins and re-authentications make up the rest of the events
CREATE UNLOGGED TABLE bench_other AS
WITH n AS (
    SELECT $EVENTS - (SELECT count(*) FROM bench_sessions)                              -- issue
                   - (SELECT count(*) FROM bench_sessions WHERE suspicious)              -- suspicious
                   - (SELECT count(*) FROM bench_sessions WHERE end_at <= now()
                        AND NOT (kind IN ('idle', 'absolute') AND end_at >= now() - interval '7 days'))
           AS rest,
           (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '90 days') AT TIME ZONE 'UTC' AS t0
)
SELECT t0 + (now() - t0) * random() AS at,
       CASE WHEN i % 2 = 0 THEN 'login_failed' ELSE 'reauthenticate' END AS event,
       'user-' || floor($USERS * random())::int AS user_id,
       1 + floor(power(random(), 3) * 10)::int AS failures
  FROM n, generate_series(1, n.rest) i;
CREATE INDEX ON bench_other (at);

-- load without the secondary indexes of session_events, then build them again
CREATE TABLE bench_indexes AS
SELECT indexname, indexdef FROM pg_indexes
 WHERE schemaname = 'sessmgr' AND tablename = 'session_events' AND indexname <> 'session_events_pkey';
DO \$\$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM bench_indexes LOOP
        EXECUTE format('DROP INDEX sessmgr.%I', r.indexname);
    END LOOP;
END
\$\$;
SQL
sessmgr_psql <<'SQL'
SET session_replication_role = replica;
DO $$
DECLARE
    d timestamptz := (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '90 days') AT TIME ZONE 'UTC';
    kept timestamptz := now() - interval '7 days';
BEGIN
    WHILE d < now() LOOP
        INSERT INTO sessmgr.session_events
               (occurred_at, event, session_id, user_id, reason, actor, country_code, country,
                browser, os, device_type, details)
        SELECT * FROM (
            SELECT s.start_at, 'issue', s.id, s.user_id, NULL::text, 'bench'::name,
                   s.country_code, s.country, s.browser, s.os, s.device_type, NULL::jsonb
              FROM bench_sessions s WHERE s.start_at >= d AND s.start_at < d + interval '24 hours'
            UNION ALL
            SELECT s.start_at + interval '1 second', 'suspicious_login', s.id, s.user_id, NULL, 'bench',
                   s.country_code, s.country, NULL, NULL, NULL, '{"reasons": ["new_country"]}'
              FROM bench_sessions s WHERE s.suspicious AND s.start_at >= d AND s.start_at < d + interval '24 hours'
            UNION ALL
            -- endings: revoke and evict events; expiries of the sessions cleanup removed
            SELECT s.end_at,
                   CASE s.kind WHEN 'cap' THEN 'evict' WHEN 'idle' THEN 'expire'
                               WHEN 'absolute' THEN 'expire' ELSE 'revoke' END,
                   s.id, s.user_id, s.kind, 'bench', NULL, NULL, NULL, NULL, NULL,
                   jsonb_build_object('session_created_at', s.start_at, 'remember', s.remember)
              FROM bench_sessions s
             WHERE s.end_at >= d AND s.end_at < d + interval '24 hours' AND s.end_at <= now()
               AND NOT (s.kind IN ('idle', 'absolute') AND s.end_at >= kept)
            UNION ALL
            SELECT o.at, o.event, NULL, o.user_id,
                   CASE WHEN o.event = 'login_failed' THEN 'bad_credentials' END, 'bench',
                   NULL, NULL, NULL, NULL, NULL,
                   CASE WHEN o.event = 'login_failed' THEN jsonb_build_object('failures', o.failures) END
              FROM bench_other o WHERE o.at >= d AND o.at < d + interval '24 hours'
        ) x ORDER BY 1;
        COMMIT;
        d := d + interval '24 hours';
    END LOOP;
END
$$;
-- the sessions of the last 7 days and the live ones
INSERT INTO sessmgr.sessions (id, user_id, token_hash, created_at, last_active_at, expires_at,
                              idle_timeout, remember, revoked_at, revoke_reason,
                              country_code, country, browser, os, device_type)
SELECT s.id, s.user_id, sha256(s.id::text::bytea), s.start_at,
       CASE WHEN s.end_at > now() THEN now()
            WHEN s.kind = 'idle' THEN s.end_at - i.t
            WHEN s.kind = 'absolute' THEN s.end_at - interval '1 hour'
            ELSE s.start_at END,
       CASE WHEN s.end_at > now() THEN greatest(s.end_at, now() + interval '1 day')
            WHEN s.kind = 'absolute' THEN s.end_at
            ELSE s.end_at + interval '30 days' END,
       CASE WHEN s.kind = 'idle' AND s.end_at <= now() THEN i.t ELSE interval '23 hours' END,
       s.remember,
       CASE WHEN s.kind NOT IN ('idle', 'absolute') AND s.end_at <= now() THEN s.end_at END,
       CASE WHEN s.kind NOT IN ('idle', 'absolute') AND s.end_at <= now() THEN s.kind END,
       s.country_code, s.country, s.browser, s.os, s.device_type
  FROM bench_sessions s,
       LATERAL (SELECT CASE WHEN s.remember THEN interval '168 hours' ELSE interval '30 minutes' END AS t) i
 WHERE s.end_at >= now() - interval '7 days';
RESET session_replication_role;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM bench_indexes LOOP
        EXECUTE r.indexdef;
    END LOOP;
END
$$;
DROP TABLE bench_sessions, bench_other, bench_indexes;
VACUUM ANALYZE sessmgr.session_events;
VACUUM ANALYZE sessmgr.sessions;
SQL
build_s=$((SECONDS - t0))
read -r n_events n_sessions n_users n_logins < <(psql_at -F ' ' -c "SELECT (SELECT count(*) FROM sessmgr.session_events), (SELECT count(*) FROM sessmgr.sessions), (SELECT count(DISTINCT user_id) FROM sessmgr.session_events WHERE event = 'issue'), (SELECT count(*) FROM sessmgr.session_events WHERE event = 'issue')")
sessmgr_log "bench analytics: built in ${build_s}s: $n_events events ($n_logins logins by $n_users users), $n_sessions session rows"

# The statements timed: label|SQL
QUERIES=(
	"login_activity(90 days)|SELECT count(*) FROM sessmgr.login_activity(now() - interval '90 days')"
	"session_durations(90 days)|SELECT count(*) FROM sessmgr.session_durations(now() - interval '90 days')"
	"login_geography(90 days)|SELECT count(*) FROM sessmgr.login_geography(now() - interval '90 days')"
	"device_usage(90 days)|SELECT count(*) FROM sessmgr.device_usage(now() - interval '90 days')"
)
EXTRA=(
	"login_activity(90 days, '7 days')|SELECT count(*) FROM sessmgr.login_activity(now() - interval '90 days', '7 days')"
	"login_geography(7 days)|SELECT count(*) FROM sessmgr.login_geography(now() - interval '7 days')"
	"login_activity(2 days, '1 hour'): raw events|SELECT count(*) FROM sessmgr.login_activity(now() - interval '2 days', '1 hour')"
)

# time each statement RUNS times in one backend: "first median" in seconds
time_runs() {
	local sql="$1" runs="$2"
	psql_at <<SQL
CREATE TEMP TABLE t (n int, secs float8);
DO \$\$
DECLARE t0 timestamptz; x bigint;
BEGIN
    FOR n IN 1..$runs LOOP
        t0 := clock_timestamp();
        EXECUTE \$q\$$sql\$q\$ INTO x;
        INSERT INTO t VALUES (n, extract(epoch FROM clock_timestamp() - t0));
    END LOOP;
END
\$\$;
SELECT round((SELECT secs FROM t WHERE n = 1)::numeric, 3) || ' ' ||
       round((percentile_disc(0.5) WITHIN GROUP (ORDER BY secs))::numeric, 3) FROM t;
SQL
}

declare -A raw first median
for q in "${QUERIES[@]}"; do
	label="${q%%|*}"
	read -r f _ < <(time_runs "${q#*|}" 1)
	raw[$label]=$f
	sessmgr_log "bench analytics: before the roll-up: $label ${f}s"
done

t0=$SECONDS
days="$(psql_at <<'SQL'
CREATE TEMP TABLE days (n int);
DO $$
DECLARE n int := 0;
BEGIN
    WHILE sessmgr.analytics_roll_up(now() - interval '90 days') LOOP
        n := n + 1;
        COMMIT;
    END LOOP;
    INSERT INTO days VALUES (n);
END
$$;
SELECT n FROM days;
SQL
)"
rollup_s=$((SECONDS - t0))
read -r rollup_rows < <(psql_at -c "SELECT (SELECT count(*) FROM sessmgr.analytics_days) + (SELECT count(*) FROM sessmgr.analytics_returns) + (SELECT count(*) FROM sessmgr.analytics_places) + (SELECT count(*) FROM sessmgr.analytics_devices) + (SELECT count(*) FROM sessmgr.analytics_durations) + (SELECT count(*) FROM sessmgr.analytics_user_days) + (SELECT count(*) FROM sessmgr.analytics_user_places) + (SELECT count(*) FROM sessmgr.analytics_user_devices)")
sessmgr_psql -q -c "VACUUM ANALYZE"
sessmgr_log "bench analytics: rolled up $days days in ${rollup_s}s ($rollup_rows roll-up rows)"

for q in "${QUERIES[@]}" "${EXTRA[@]}"; do
	label="${q%%|*}"
	read -r f m < <(time_runs "${q#*|}" "$RUNS")
	first[$label]=$f; median[$label]=$m
	sessmgr_log "bench analytics: $label: first ${f}s, median ${m}s"
done

# the statements inside each function, with their plans (auto_explain)
plans="$SESSMGR_TMP/plans.txt"
: >"$plans"
for q in "${QUERIES[@]}"; do
	label="${q%%|*}"
	{
		echo "### $label"
		sessmgr_psql -X -c "LOAD 'auto_explain'" \
			-c "SET auto_explain.log_min_duration = 0" \
			-c "SET auto_explain.log_nested_statements = on" \
			-c "SET auto_explain.log_analyze = on" \
			-c "SET auto_explain.log_timing = off" \
			-c "SET auto_explain.log_format = json" \
			-c "SET client_min_messages = log" \
			-c "${q#*|}" 2>&1 >/dev/null
	} >>"$plans"
done
summary="$(python3 - "$plans" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
out = []
for block in re.split(r'^### ', text, flags=re.M)[1:]:
    label, _, body = block.partition('\n')
    reads = {}
    for m in re.finditer(r'LOG:  duration: ([0-9.]+) ms  plan:\n', body):
        try:
            plan, _ = json.JSONDecoder().raw_decode(body[m.end():].lstrip())
        except ValueError:
            continue
        def walk(node):
            rel = node.get('Relation Name')
            if rel:
                how = node['Node Type'] + (' ' + node['Index Name'] if 'Index Name' in node else '')
                key = '%s (%s)' % (rel, how)
                # rows the scan read: those it returned and those its filter removed
                read = int(node.get('Actual Rows', 0)) + int(node.get('Rows Removed by Filter', 0)) \
                    + int(node.get('Rows Removed by Index Recheck', 0))
                reads[key] = reads.get(key, 0) + read * int(node.get('Actual Loops', 1))
            for c in node.get('Plans', []):
                walk(c)
        walk(plan['Plan'])
    parts = ['%s: %s rows' % (k, format(v, ',')) for k, v in sorted(reads.items(), key=lambda kv: -kv[1])]
    out.append('| %s | %s |' % (label, '; '.join(parts)))
print('\n'.join(out))
PY
)"
cp "$plans" "${TMPDIR:-/tmp}/sessmgr-bench-analytics-plans.txt" 2>/dev/null || true

total_s=$((SECONDS - started))
echo "analytics over $n_events events ($n_logins logins, $n_users users): built in ${build_s}s, roll-up of $days days ${rollup_s}s, run ${total_s}s"
rows=""
verdict_all=PASS
for q in "${QUERIES[@]}"; do
	label="${q%%|*}"
	v=PASS; awk -v s="${median[$label]}" 'BEGIN { exit !(s >= 1.0) }' && { v=MISS; verdict_all=MISS; }
	ratio="$(awk -v a="${median[$label]}" -v b="${raw[$label]}" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')"
	echo "  $label: ${median[$label]}s (first ${first[$label]}s; from the events alone ${raw[$label]}s: ${ratio}x) $v"
	rows+="| \`$label\` | ${median[$label]} s | ${first[$label]} s | ${raw[$label]} s | ${ratio}x | < 1 s | $v |"$'\n'
done
for q in "${EXTRA[@]}"; do
	label="${q%%|*}"
	echo "  $label: ${median[$label]}s (first ${first[$label]}s)"
	rows+="| \`$label\` | ${median[$label]} s | ${first[$label]} s | | | | |"$'\n'
done
echo "$summary"
[[ $QUICK -eq 1 ]] && exit 0

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
bench_write_section analytics "$(cat <<EOF2
<!-- analytics: written by bench/analytics.sh; the rest of this file by bench/run.sh -->
## Analytics over 90 days of history

\`bash bench/analytics.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $commit, 2 cores shared with
other jobs: absolute times are noisy): $(thousands "$n_events") events over 90 whole UTC days and
today ($(thousands "$n_logins") logins by $(thousands "$n_users") users, their endings, suspicious
and failed logins, re-authentications) and $(thousands "$n_sessions") session rows (the last 7 days
and the live ones), built in ${build_s} s. Cleanup's roll-up of the $days whole days took
${rollup_s} s ($(thousands "$rollup_rows") roll-up rows); today stays in the events. Each function with
\`since = now() - interval '90 days'\`, $RUNS runs in one backend; "events alone" is the same call
before the roll-up, when it reads every event of the 90 days (the baseline):

| call | median | first run | events alone | ratio | target | result |
|---|---|---|---|---|---|---|
${rows}
What the statements inside each function read (auto_explain with ANALYZE: for each scan
the rows it returned plus those its filter removed, summed over the statements and loops;
the events read are today's, through \`session_events_occurred_at_idx\`):

| function | relations read (rows) |
|---|---|
${summary}
<!-- /analytics -->
EOF2
)"
sessmgr_log "bench analytics: wrote the section of bench/RESULTS.md"

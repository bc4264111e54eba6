#!/usr/bin/env bash
# bench/metrics.sh: what one Prometheus scrape of monitoring/postgres_exporter.yml
# costs with 100,000 sessions, against a bare SELECT 1 per query and against
# sessmgr.stats() (which reads every session row), in the same run (issue 15: the
# scrape must be cheap enough for every 15 seconds).
#
#   bash bench/metrics.sh [--quick]
#
# The data: 100,000 sessions of 40,000 users (85,000 live, 15,000 ended within
# the retention), 100,000 issue events over the last week plus 15,000
# revocations and 5,000 failed logins, 25,920 cleanup runs (90 days of a run
# every 5 minutes); CALL sessmgr.cleanup() takes the snapshot and rolls the
# events up; then 3,000 events of "the last 5 minutes" (10 logins a second) that
# every scrape counts itself.  One backend runs ROUNDS x BLOCKS blocks, each
# block once: the exporter's queries (read from the YAML file, one EXECUTE
# each), as many bare SELECT 1, and SELECT * FROM sessmgr.stats(), the order
# alternating, timed with clock_timestamp(); per round the summed times.  Also
# the time of the refresh cleanup runs once per run.  Unless --quick, writes
# bench/RESULTS.md's "metrics" section.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh
# shellcheck source=bench/results_section.bash
source bench/results_section.bash

ROUNDS=5
BLOCKS=40
QUICK=0
[[ "${1:-}" == --quick ]] && { ROUNDS=3; BLOCKS=5; QUICK=1; }

sessmgr_ensure_packages
sessmgr_build_install
work="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-bench-metrics.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
sessmgr_cluster_start "shared_buffers = 512MB"

# the exporter's queries, exactly as the file has them, as rows of a table
python3 - monitoring/postgres_exporter.yml >"$work/queries.sql" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
print("CREATE TABLE bench_queries (name text PRIMARY KEY, q text NOT NULL);")
for name, spec in doc.items():
    print("INSERT INTO bench_queries VALUES ('%s', $q$%s$q$);" % (name, spec['query'].strip()))
PY
chmod 644 "$work/queries.sql"

sessmgr_log "bench metrics: loading 100,000 sessions and 120,000 events"
sessmgr_psql -q <<'SQL'
CREATE EXTENSION sessmgr;
SET session_replication_role = replica;
-- 100,000 sessions of 40,000 users, issued within the last 6 days; every
-- seventh ended (revoked or expired) within the retention
INSERT INTO sessmgr.sessions (id, created_at, last_active_at, expires_at, idle_timeout,
                              remember, token_hash, user_id, revoked_at, revoke_reason)
SELECT gen_random_uuid(), now() - a.age, now() - a.age / 10,
       now() - a.age + CASE WHEN g % 7 = 3 THEN a.age / 2 ELSE interval '30 days' END,
       interval '168 hours', g % 5 = 0, sha256(int8send(g)), 'user' || (g % 40000),
       CASE WHEN g % 7 = 1 THEN now() - a.age / 3 END,
       CASE WHEN g % 7 = 1 THEN (ARRAY['logout', 'logout_all', 'admin'])[1 + g % 3] END
  FROM generate_series(1, 100000) g,
       LATERAL (SELECT make_interval(secs => (g * 5.1839) % 518400) AS age) a;
INSERT INTO sessmgr.session_owners (user_id, sessions_issued, last_issued_at)
SELECT user_id, count(*), max(created_at) FROM sessmgr.sessions GROUP BY user_id;
-- the events of the week
INSERT INTO sessmgr.session_events (occurred_at, event, session_id, user_id, reason, actor)
SELECT created_at, 'issue', id, user_id, NULL, 'app' FROM sessmgr.sessions;
INSERT INTO sessmgr.session_events (occurred_at, event, session_id, user_id, reason, actor)
SELECT revoked_at, 'revoke', id, user_id, revoke_reason, 'app' FROM sessmgr.sessions
 WHERE revoked_at IS NOT NULL;
INSERT INTO sessmgr.session_events (occurred_at, event, user_id, reason, actor, details)
SELECT now() - make_interval(secs => g * 100), 'login_failed', 'user' || (g % 40000),
       'bad_credentials', 'app', jsonb_build_object('failures', 1 + g % 3)
  FROM generate_series(1, 5000) g;
-- 90 days of cleanup runs, every 5 minutes
INSERT INTO sessmgr.cleanup_runs (started_at, finished_at, sessions_removed, events_removed,
                                  owners_removed, actor)
SELECT now() - make_interval(mins => 5 * g), now() - make_interval(mins => 5 * g) + interval '2 seconds',
       g % 50, g % 70, g % 3, 'postgres'
  FROM generate_series(1, 25920) g;
RESET session_replication_role;
VACUUM ANALYZE;
SQL
sessmgr_psql -q -c 'CALL sessmgr.cleanup()' >/dev/null
# the events since the run: 5 minutes of 10 logins a second, counted by every scrape
sessmgr_psql -q -c "
	INSERT INTO sessmgr.session_events (event, user_id, actor)
	SELECT 'issue', 'user' || (g % 40000), 'app' FROM generate_series(1, 3000) g" -c 'VACUUM ANALYZE sessmgr.session_events'
sessmgr_psql -q -f "$work/queries.sql"
nq="$(sessmgr_psql -At -c 'SELECT count(*) FROM bench_queries')"
facts="$(sessmgr_psql -At -F ' ' -c "
	SELECT (SELECT count(*) FROM sessmgr.sessions), m.active_sessions, m.users_with_sessions,
	       (SELECT count(*) FROM sessmgr.session_events),
	       (SELECT count(*) FROM sessmgr.session_events
	         WHERE id > (SELECT through_event_id FROM sessmgr.metrics_snapshot)),
	       round((m.snapshot_duration_seconds * 1000)::numeric, 1),
	       pg_size_pretty(pg_table_size('sessmgr.sessions'))
	  FROM sessmgr.metrics() m")"
read -r n_sessions n_live n_users n_events n_tail refresh_ms sessions_size <<<"$facts"
sessmgr_log "bench metrics: $n_sessions sessions ($n_live live, $n_users users, $sessions_size), $n_events events ($n_tail after the roll-up), $nq queries in the file; the refresh in cleanup took $refresh_ms ms"

sessions_pages="$(sessmgr_psql -At -c "SELECT pg_relation_size('sessmgr.sessions') / 8192")"

# what one scrape and one stats() read, from the transaction's own table statistics:
# sequential scans, and rows read (returned by sequential scans, fetched through the
# table's indexes or by bitmap scans)
reads="$(sessmgr_psql -At <<'SQL'
BEGIN;
CREATE TEMP TABLE seen (side text, relname text, seq bigint, rows bigint);
CREATE FUNCTION pg_temp.note(side text) RETURNS void LANGUAGE sql AS $f$
    INSERT INTO seen
    SELECT side, c.relname, pg_stat_get_xact_numscans(c.oid),
           pg_stat_get_xact_tuples_returned(c.oid) + pg_stat_get_xact_tuples_fetched(c.oid)
           + coalesce((SELECT sum(pg_stat_get_xact_tuples_fetched(i.indexrelid))::bigint
                         FROM pg_index i WHERE i.indrelid = c.oid), 0)
      FROM pg_class c
     WHERE c.relnamespace = 'sessmgr'::regnamespace AND c.relkind = 'r'
$f$;
SELECT pg_temp.note('before');
DO $d$ DECLARE q record; n bigint; BEGIN
    FOR q IN SELECT * FROM bench_queries LOOP
        EXECUTE 'SELECT count(*) FROM (' || q.q || ') x' INTO n;
    END LOOP;
END $d$;
SELECT pg_temp.note('scrape');
SELECT count(*) FROM sessmgr.stats();
SELECT pg_temp.note('stats');
SELECT a.relname, b.seq - a.seq, b.rows - a.rows, c.seq - b.seq, c.rows - b.rows
  FROM seen a JOIN seen b USING (relname) JOIN seen c USING (relname)
 WHERE a.side = 'before' AND b.side = 'scrape' AND c.side = 'stats'
   AND (c.rows - a.rows > 0 OR c.seq - a.seq > 0)
 ORDER BY a.relname;
ROLLBACK;
SQL
)"
reads_rows=""
scrape_session_seq=""
while IFS='|' read -r rel sseq srows tseq trows; do
	[[ -n "$trows" ]] || continue
	reads_rows+="| \`$rel\` | $sseq | $srows | $tseq | $trows |"$'\n'
	[[ "$rel" == sessions ]] && scrape_session_seq="$sseq"
	sessmgr_log "bench metrics: $rel: one scrape $sseq seq scans, $srows rows read; stats() $tseq seq scans, $trows rows read"
done <<<"$(grep '|' <<<"$reads")"

out="$(sessmgr_psql -At <<SQL
CREATE TEMP TABLE times (round int, side text, secs float8);
DO \$\$
DECLARE
    r int; b int; s text; t0 timestamptz; q record; n bigint;
    sides text[];
BEGIN
    FOR r IN 1..$ROUNDS LOOP
        FOR b IN 1..$BLOCKS LOOP
            sides := CASE WHEN b % 2 = 0 THEN ARRAY['scrape', 'select1', 'stats']
                          ELSE ARRAY['stats', 'select1', 'scrape'] END;
            FOREACH s IN ARRAY sides LOOP
                t0 := clock_timestamp();
                IF s = 'scrape' THEN
                    FOR q IN SELECT * FROM bench_queries LOOP
                        EXECUTE 'SELECT count(*) FROM (' || q.q || ') x' INTO n;
                    END LOOP;
                ELSIF s = 'select1' THEN
                    FOR q IN SELECT * FROM bench_queries LOOP
                        EXECUTE 'SELECT count(*) FROM (SELECT 1) x' INTO n;
                    END LOOP;
                ELSE
                    PERFORM * FROM sessmgr.stats();
                END IF;
                INSERT INTO times VALUES (r, s, extract(epoch FROM clock_timestamp() - t0));
            END LOOP;
        END LOOP;
    END LOOP;
END
\$\$;
SELECT t.round,
       round((1000 * sum(secs) FILTER (WHERE side = 'scrape') / $BLOCKS)::numeric, 3),
       round((1000 * sum(secs) FILTER (WHERE side = 'select1') / $BLOCKS)::numeric, 3),
       round((1000 * sum(secs) FILTER (WHERE side = 'stats') / $BLOCKS)::numeric, 1)
  FROM times t GROUP BY t.round ORDER BY t.round;
SQL
)"
# every scrape above counted the same events since the roll-up itself
n_tail_now="$(sessmgr_psql -At -c "SELECT count(*) FROM sessmgr.session_events
	WHERE id > (SELECT through_event_id FROM sessmgr.metrics_snapshot)")"
if [[ "$n_tail_now" != "$n_tail" ]]; then
	sessmgr_err "the events after the roll-up changed during the measurement: $n_tail, now $n_tail_now"
	exit 1
fi

# the refresh again, 3 times, for its cost (cleanup runs it once per run); last, since
# it rolls up the events the scrapes above counted themselves
refresh_times="$(sessmgr_psql -At -c "
	CREATE TEMP TABLE r (ms float8);
	DO \$\$ DECLARE t0 timestamptz; BEGIN
	  FOR i IN 1..3 LOOP t0 := clock_timestamp(); PERFORM sessmgr.refresh_metrics();
	    INSERT INTO r VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000); END LOOP; END \$\$;
	SELECT string_agg(round(ms::numeric, 1)::text, ' ' ORDER BY ms) FROM r")"
refresh_ms="$(awk '{ print $2 }' <<<"$refresh_times")"
sessmgr_log "bench metrics: refresh_metrics() x3: $refresh_times ms"
declare -a rs rb rst rr
while IFS='|' read -r r s b st; do
	[[ -n "$st" ]] || continue
	rs+=("$s"); rb+=("$b"); rst+=("$st")
	rr+=("$(awk -v a="$st" -v b="$s" 'BEGIN { printf "%.0f", a / b }')")
	sessmgr_log "bench metrics: round $r: scrape $s ms, $nq x SELECT 1 $b ms, stats() $st ms"
done <<<"$out"

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ms="$(median "${rs[@]}")"
mb="$(median "${rb[@]}")"
mst="$(median "${rst[@]}")"
mr="$(median "${rr[@]}")"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "one scrape ($nq queries): $ms ms; $nq x SELECT 1: $mb ms; stats(): $mst ms (stats() / scrape: ${mr}x); refresh in cleanup: $refresh_ms ms"
[[ $QUICK -eq 1 ]] && exit 0

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
bench_write_section metrics "$(cat <<EOF2
<!-- metrics: written by bench/metrics.sh; the rest of this file by bench/run.sh -->
## Metrics: one Prometheus scrape

\`bash bench/metrics.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $commit; load average
$load: the 2-core machine is shared with other work, absolute times are noisy): $n_sessions
sessions ($n_live live, of $n_users users; the table is $sessions_size), $n_events audit events of
which $n_tail came after the last cleanup run, 25,920 cleanup runs. One backend; $ROUNDS rounds of
$BLOCKS blocks, each running once, in alternating order, the $nq queries of
\`monitoring/postgres_exporter.yml\`, as many \`SELECT 1\`, and \`sessmgr.stats()\` (server time,
without the round trips; median of the rounds):

| | time | rounds (ms) |
|---|---|---|
| one scrape: the exporter's $nq queries | $ms ms | ${rs[*]} |
| $nq x \`SELECT 1\` | $mb ms | ${rb[*]} |
| \`SELECT * FROM sessmgr.stats()\` | $mst ms | ${rst[*]} |

\`stats()\` costs ${mr}x a scrape (per round: ${rr[*]}): it reads all $sessions_pages pages of the sessions
table, a scrape none of them (it counts the $n_tail events written since the last cleanup run itself).
A scrape every 15 s takes about $(awk -v m="$ms" 'BEGIN { printf "%.2f", m / 150 }')% of one core. The figures that need every session row are taken by
\`sessmgr.refresh_metrics()\`, which cleanup runs once per run: $refresh_ms ms here (median of 3:
$refresh_times ms).

What one scrape and one \`stats()\` read, by table (the transaction's own statistics: sequential
scans, and rows returned by them or fetched through the table's indexes):

| table | scrape: seq scans | scrape: rows read | \`stats()\`: seq scans | \`stats()\`: rows read |
|---|---|---|---|---|
${reads_rows%$'\n'}
<!-- /metrics -->
EOF2
)"
sessmgr_log "bench metrics: wrote the section of bench/RESULTS.md"

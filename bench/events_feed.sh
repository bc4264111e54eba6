#!/usr/bin/env bash
# bench/events_feed.sh: what the SIEM feed's trigger costs the writers, and
# what a poll costs.
#
#   bash bench/events_feed.sh [--quick]
#
# The feed's statement trigger on sessmgr.session_events (src/feed.c) reads
# the event id sequence and takes one share lock per inserting transaction.
# Two pgbench scripts, 8 clients, each run with the trigger enabled and with
# it disabled (ALTER TABLE ... DISABLE TRIGGER, as superuser, between runs),
# interleaved (A B, B A, ...) so that a drift in the machine's load favours
# neither side:
#   issue:  sessmgr.issue() for a random user (one event per transaction);
#   insert: a bare one-row INSERT INTO sessmgr.session_events, where the
#           trigger's share of the work is largest.
# Every run starts from empty tables.  Then the poll: events_since(cursor,
# 1000) over the events the last run left, in one backend.  Prints the
# medians and, unless --quick, writes them into bench/RESULTS.md's
# "events_feed" section.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh
# shellcheck source=bench/results_section.bash
source bench/results_section.bash

ROUNDS=4
SECS=10
QUICK=0
[[ "${1:-}" == --quick ]] && { ROUNDS=2; SECS=3; QUICK=1; }
CLIENTS=8
NUSERS=10000

sessmgr_ensure_packages
sessmgr_build_install
work="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-bench-feed.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
sessmgr_cluster_start
sessmgr_psql -c 'CREATE EXTENSION sessmgr' \
	-c "ALTER DATABASE postgres SET sessmgr.max_sessions = 10000"

cat >"$work/issue.sql" <<'SQL'
\set u random(0, :nusers - 1)
SELECT session_id FROM sessmgr.issue('u' || :u);
SQL
cat >"$work/insert.sql" <<'SQL'
\set u random(0, :nusers - 1)
INSERT INTO sessmgr.session_events (event, user_id, actor) VALUES ('erased', 'u' || :u, 'bench');
SQL

guard() {
	sessmgr_psql -q -c "ALTER TABLE sessmgr.session_events $1 TRIGGER session_events_feed_guard"
}
run() {
	# every run starts from empty tables, so that neither side inherits a larger one
	sessmgr_psql -q -c 'TRUNCATE sessmgr.sessions, sessmgr.session_events, sessmgr.session_owners, sessmgr.retired_tokens'
	sessmgr_as_pg "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECS" \
		-D nusers="$NUSERS" -f "$work/$1.sql" postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A med_on med_off med_ratio all_ratios
for script in issue insert; do
	guard 'ENABLE ALWAYS'; run "$script" >/dev/null   # warm up both sides once
	guard DISABLE; run "$script" >/dev/null
	on=(); off=(); ratios=()
	for ((r = 1; r <= ROUNDS; r++)); do
		if ((r % 2)); then
			guard 'ENABLE ALWAYS'; a="$(run "$script")"; guard DISABLE; b="$(run "$script")"
		else
			guard DISABLE; b="$(run "$script")"; guard 'ENABLE ALWAYS'; a="$(run "$script")"
		fi
		on+=("$a"); off+=("$b")
		ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')")
		sessmgr_log "bench events feed: $script round $r: with the trigger $a tps, without $b tps"
	done
	guard 'ENABLE ALWAYS'
	med_on[$script]="$(median "${on[@]}")"
	med_off[$script]="$(median "${off[@]}")"
	med_ratio[$script]="$(median "${ratios[@]}")"
	all_ratios[$script]="${ratios[*]}"
done

# the poll: 1000 events a call, walking the table from the start, one backend
nevents="$(sessmgr_psql -At -c 'SELECT count(*) FROM sessmgr.session_events')"
poll_ms="$(sessmgr_psql -At 2>&1 <<'SQL' | sed -n 's/^NOTICE:  //p'
DO $$
DECLARE
    cursor_id bigint := 0;
    calls int := 0;
    t0 timestamptz := clock_timestamp();
    last bigint;
BEGIN
    LOOP
        SELECT max((d->'event'->>'sequence')::bigint) INTO last
          FROM sessmgr.events_since(cursor_id, 1000) d;
        EXIT WHEN last IS NULL OR calls >= 200;
        cursor_id := last;
        calls := calls + 1;
    END LOOP;
    RAISE NOTICE '%', round((extract(epoch FROM clock_timestamp() - t0) * 1000 / greatest(calls, 1))::numeric, 2);
END
$$;
SQL
)"

# one backend, one event a transaction, synchronous_commit off so that the
# WAL flush does not drown the difference: microseconds a transaction, the
# trigger enabled and disabled in turn, BACKEND_ROUNDS interleaved rounds
BACKEND_ROUNDS=10
BACKEND_N=2000
[[ $QUICK -eq 1 ]] && { BACKEND_ROUNDS=2; BACKEND_N=500; }
sessmgr_psql -q -c 'TRUNCATE sessmgr.sessions, sessmgr.session_events, sessmgr.session_owners, sessmgr.retired_tokens'
backend="$(sessmgr_psql -At -v rounds="$BACKEND_ROUNDS" -v n="$BACKEND_N" <<'SQL'
SET synchronous_commit = off;
CREATE TEMP TABLE feed_times (what text, side text, round int, us double precision);
SET bench.rounds = :'rounds';
SET bench.n = :'n';
DO $$
DECLARE
    rounds int := current_setting('bench.rounds')::int;
    n int := current_setting('bench.n')::int;
    side text;
    t0 timestamptz;
BEGIN
    FOR r IN 1..rounds LOOP
        FOREACH side IN ARRAY CASE WHEN r % 2 = 1 THEN '{on,off}'::text[] ELSE '{off,on}'::text[] END LOOP
            EXECUTE format('ALTER TABLE sessmgr.session_events %s TRIGGER session_events_feed_guard',
                           CASE side WHEN 'on' THEN 'ENABLE ALWAYS' ELSE 'DISABLE' END);
            COMMIT;
            t0 := clock_timestamp();
            FOR i IN 1..n LOOP
                INSERT INTO sessmgr.session_events (event, user_id, actor) VALUES ('erased', 'u', 'bench');
                COMMIT;
            END LOOP;
            INSERT INTO feed_times VALUES ('insert', side, r, extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
            COMMIT;
            t0 := clock_timestamp();
            FOR i IN 1..n LOOP
                PERFORM sessmgr.issue('u' || (i % 1000));
                COMMIT;
            END LOOP;
            INSERT INTO feed_times VALUES ('issue', side, r, extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
            COMMIT;
        END LOOP;
    END LOOP;
    EXECUTE 'ALTER TABLE sessmgr.session_events ENABLE ALWAYS TRIGGER session_events_feed_guard';
END
$$;
-- per what: median us with and without, median of the rounds' differences and ratios
SELECT string_agg(format('%s %s %s %s %s', what, round(on_us::numeric, 1), round(off_us::numeric, 1),
                         round(diff::numeric, 1), round(ratio::numeric, 3)), ' ' ORDER BY what)
  FROM (SELECT what,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.us) AS on_us,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY b.us) AS off_us,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.us - b.us) AS diff,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY b.us / a.us) AS ratio
          FROM feed_times a JOIN feed_times b USING (what, round)
         WHERE a.side = 'on' AND b.side = 'off'
         GROUP BY what) x;
SQL
)"
# "insert ON OFF DIFF RATIO issue ON OFF DIFF RATIO" (alphabetical: insert first)
read -r _ b_ins_on b_ins_off b_ins_diff b_ins_ratio _ b_iss_on b_iss_off b_iss_diff b_iss_ratio <<<"$backend"

summary="issue: ${med_on[issue]} tps with the trigger, ${med_off[issue]} without, ${med_ratio[issue]}x; bare event INSERT: ${med_on[insert]} vs ${med_off[insert]} tps, ${med_ratio[insert]}x; events_since(cursor, 1000): $poll_ms ms a call over $nevents events; one backend: issue ${b_iss_on} us vs ${b_iss_off} us a transaction (+${b_iss_diff} us, ${b_iss_ratio}x), INSERT ${b_ins_on} vs ${b_ins_off} us (+${b_ins_diff} us, ${b_ins_ratio}x)"
echo "$summary ($CLIENTS clients, $ROUNDS rounds of ${SECS}s, interleaved)"
[[ $QUICK -eq 1 ]] && exit 0

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
bench_write_section events_feed "$(cat <<EOF2
<!-- events_feed: written by bench/events_feed.sh; the rest of this file by bench/run.sh -->
## The SIEM feed: its trigger's cost to writers, and a poll

\`bash bench/events_feed.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $commit; $CLIENTS pgbench
clients, $ROUNDS rounds of ${SECS} s, the feed's trigger enabled and disabled in turn, interleaved
A B / B A; a 2-core machine shared with other jobs, so single rounds are noisy): the
statement trigger on \`session_events\` that publishes each writing transaction's lowest
possible event id (src/feed.c).

| measurement | with the trigger | without | ratio (median of rounds) |
|---|---|---|---|
| \`issue()\` (one event a transaction) | ${med_on[issue]} tps | ${med_off[issue]} tps | ${med_ratio[issue]}x (rounds: ${all_ratios[issue]}) |
| one-row \`INSERT INTO session_events\` | ${med_on[insert]} tps | ${med_off[insert]} tps | ${med_ratio[insert]}x (rounds: ${all_ratios[insert]}) |

In one backend, one event a transaction, \`synchronous_commit = off\` (so that the WAL
flush does not drown the difference), $BACKEND_ROUNDS interleaved rounds of $BACKEND_N transactions a
side; the trigger's cost is the difference (median of the rounds' differences); the rate
ratio is the rate with the trigger over the rate without (median of the rounds):

| measurement | with the trigger | without | difference | rate ratio |
|---|---|---|---|---|
| \`issue()\` | ${b_iss_on} µs | ${b_iss_off} µs | ${b_iss_diff} µs | ${b_iss_ratio}x |
| one-row \`INSERT INTO session_events\` | ${b_ins_on} µs | ${b_ins_off} µs | ${b_ins_diff} µs | ${b_ins_ratio}x |

A poll, \`events_since(cursor, 1000)\`, walking the $nevents events the last run left from the
start, in one backend: $poll_ms ms a call (1000 documents).
<!-- /events_feed -->
EOF2
)"
sessmgr_log "bench events feed: wrote the section of bench/RESULTS.md"

#!/usr/bin/env bash
# bench/admin_search.sh: what a page of the administrators' session search
# (sessmgr.search_sessions, GET /rpc/sessions of sessmgr_admin_api) costs with
# 300,000 sessions, against counting the active sessions once (the least that a
# console which loads every session before paging, Keycloak's, has to read), in
# the same run (issue 15: the admin view never loads all sessions).
#
#   bash bench/admin_search.sh [--quick]
#
# The data: 300,000 sessions of 100,000 users issued within the last day, 90%
# live; 20 countries, three device types, 1 in 200 with a risk reason.  One
# backend runs ROUNDS x BLOCKS blocks, each block once each: the first page of
# 100 live sessions, a page of 100 from the middle (its cursor taken once), the
# first page of one country's sessions (5%), the first page of the risky ones
# (0.5%), and SELECT count(*) FROM sessmgr.active_sessions; the order
# alternating, timed with clock_timestamp().  Unless --quick, writes
# bench/RESULTS.md's "admin_search" section.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh
# shellcheck source=bench/results_section.bash
source bench/results_section.bash

ROUNDS=5
BLOCKS=20
QUICK=0
[[ "${1:-}" == --quick ]] && { ROUNDS=2; BLOCKS=3; QUICK=1; }

sessmgr_ensure_packages
sessmgr_build_install
sessmgr_cluster_start "shared_buffers = 512MB"

sessmgr_log "bench admin_search: loading 300,000 sessions"
sessmgr_psql -q <<'SQL'
CREATE EXTENSION sessmgr;
SET session_replication_role = replica;
INSERT INTO sessmgr.sessions (id, created_at, last_active_at, expires_at, idle_timeout,
                              remember, token_hash, user_id, revoked_at, revoke_reason,
                              country_code, device_type, risk)
SELECT gen_random_uuid(), now() - a.age, now() - a.age / 10, now() - a.age + interval '1 day',
       interval '48 hours', false, sha256(int8send(g)), 'user' || (g % 100000),
       CASE WHEN g % 10 = 3 THEN now() - a.age / 2 END,
       CASE WHEN g % 10 = 3 THEN 'logout' END,
       'C' || (g % 20), (ARRAY['desktop', 'mobile', 'tablet'])[1 + g % 3],
       CASE WHEN g % 200 = 7 THEN '{new_country}'::text[] ELSE '{}' END
  FROM generate_series(1, 300000) g,
       LATERAL (SELECT make_interval(secs => (g * 0.2837) % 86000) AS age) a;
RESET session_replication_role;
VACUUM ANALYZE;
SQL

facts="$(sessmgr_psql -At -F ' ' -c "
	SELECT (SELECT count(*) FROM sessmgr.sessions), (SELECT count(*) FROM sessmgr.active_sessions),
	       (sessmgr.search_sessions() ->> 'estimated_total'),
	       pg_size_pretty(pg_table_size('sessmgr.sessions'))")"
read -r n_sessions n_live n_estimate sessions_size <<<"$facts"
sessmgr_log "bench admin_search: $n_sessions sessions ($n_live live, estimated $n_estimate, $sessions_size)"

# the plan of a first page, as search_sessions builds it
plan="$(sessmgr_psql -At -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)
	SELECT s.id FROM sessmgr.sessions s
	 WHERE s.expires_at > now()
	   AND sessmgr.session_is_live(s.revoked_at, s.expires_at, s.last_active_at, s.idle_timeout, now())
	 ORDER BY s.expires_at DESC, s.id DESC LIMIT 100")"

out="$(sessmgr_psql -At <<SQL
CREATE TEMP TABLE times (round int, side text, secs float8);
CREATE TEMP TABLE mid AS
SELECT s.expires_at, s.id FROM sessmgr.active_sessions s
 ORDER BY s.expires_at DESC, s.id DESC OFFSET $n_live / 2 LIMIT 1;
DO \$\$
DECLARE
    r int; b int; s text; t0 timestamptz; n bigint; j jsonb;
    m record;
    sides text[] := ARRAY['first', 'middle', 'country', 'risky', 'count'];
BEGIN
    SELECT * INTO m FROM mid;
    FOR r IN 1..$ROUNDS LOOP
        FOR b IN 1..$BLOCKS LOOP
            IF b % 2 = 0 THEN
                sides := ARRAY['count', 'risky', 'country', 'middle', 'first'];
            ELSE
                sides := ARRAY['first', 'middle', 'country', 'risky', 'count'];
            END IF;
            FOREACH s IN ARRAY sides LOOP
                t0 := clock_timestamp();
                IF s = 'first' THEN
                    j := sessmgr.search_sessions(max_rows => 100);
                ELSIF s = 'middle' THEN
                    j := sessmgr.search_sessions(max_rows => 100, after_expires_at => m.expires_at,
                                                 after_id => m.id);
                ELSIF s = 'country' THEN
                    j := sessmgr.search_sessions(country_code => 'C7', max_rows => 100);
                ELSIF s = 'risky' THEN
                    j := sessmgr.search_sessions(risk => 'any', max_rows => 100);
                ELSE
                    SELECT count(*) INTO n FROM sessmgr.active_sessions;
                END IF;
                IF s <> 'count' AND jsonb_array_length(j -> 'sessions') <> 100 THEN
                    RAISE EXCEPTION 'page % has % sessions', s, jsonb_array_length(j -> 'sessions');
                END IF;
                INSERT INTO times VALUES (r, s, extract(epoch FROM clock_timestamp() - t0));
            END LOOP;
        END LOOP;
    END LOOP;
END
\$\$;
SELECT t.round,
       round((1000 * sum(secs) FILTER (WHERE side = 'first') / $BLOCKS)::numeric, 2),
       round((1000 * sum(secs) FILTER (WHERE side = 'middle') / $BLOCKS)::numeric, 2),
       round((1000 * sum(secs) FILTER (WHERE side = 'country') / $BLOCKS)::numeric, 2),
       round((1000 * sum(secs) FILTER (WHERE side = 'risky') / $BLOCKS)::numeric, 2),
       round((1000 * sum(secs) FILTER (WHERE side = 'count') / $BLOCKS)::numeric, 2)
  FROM times t GROUP BY t.round ORDER BY t.round;
SQL
)"

rows=""
while IFS='|' read -r round first middle country risky count; do
	[[ -n "$count" ]] || continue
	rows+="| $round | $first | $middle | $country | $risky | $count |"$'\n'
	sessmgr_log "bench admin_search: round $round: first page $first ms, middle $middle ms, country $country ms, risky $risky ms; count(*) of active sessions $count ms"
done <<<"$out"
medians="$(python3 - "$out" <<'PY'
import statistics, sys
cols = list(zip(*[l.split('|')[1:] for l in sys.argv[1].splitlines() if l.count('|') == 5]))
meds = [statistics.median(float(x) for x in c) for c in cols]
print(' '.join('%.2f' % m for m in meds), ' '.join('%.3f' % (m / meds[4]) for m in meds[:4]))
PY
)"
read -r m_first m_middle m_country m_risky m_count r_first r_middle r_country r_risky <<<"$medians"
sessmgr_log "bench admin_search: medians: first $m_first ms (${r_first}x a count), middle $m_middle ms (${r_middle}x), country $m_country ms (${r_country}x), risky $m_risky ms (${r_risky}x), count $m_count ms"

if [[ "$QUICK" == 1 ]]; then
	exit 0
fi
section="<!-- admin_search: written by bench/admin_search.sh -->
## Administrators' session search (bench/admin_search.sh)

$n_sessions sessions ($n_live live, $sessions_size; planner's estimated total for the
unfiltered search $n_estimate: the planner multiplies the selectivities of the liveness
conditions as if they were independent, so it is an order of magnitude, not a count)
of 100,000 users. One backend, $ROUNDS rounds of $BLOCKS
blocks, each block one of each, order alternating; milliseconds per call. The machine
has 2 cores shared with other jobs: the figures are noisy, the ratios less so.

| Round | First page (100) | Middle page (100) | Country (5%), first page | Risky (0.5%), first page | count(*) of active sessions |
|---|---|---|---|---|---|
${rows}
Medians: first page $m_first ms (${r_first}x one count of the active sessions),
middle page $m_middle ms (${r_middle}x), one country $m_country ms (${r_country}x),
risky sessions $m_risky ms (${r_risky}x); count $m_count ms. A page reads about
\`max_rows\` index entries (more for a selective filter: it reads the index until a
page of matches), never every session. The first page's plan:

\`\`\`text
$plan
\`\`\`
<!-- /admin_search -->"
bench_write_section admin_search "$section"
sessmgr_log "bench admin_search: bench/RESULTS.md section admin_search written"

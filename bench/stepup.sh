#!/usr/bin/env bash
# bench/stepup.sh: what sessmgr.is_fresh() in a row-level security policy adds
# to the scan it guards (issue 14: at most 5%).
#
#   bash bench/stepup.sh [--quick]
#
# Three tables of the same 1,000 rows, all the user's, read by a role without
# BYPASSRLS after sessmgr.authenticate():
#   plain:  USING (owner = sessmgr.current_user_id())
#   fresh:  USING (owner = sessmgr.current_user_id() AND sessmgr.is_fresh('10 min'))
#   initp:  the same with (SELECT sessmgr.is_fresh('10 min')): evaluated once
# Each pgbench transaction authenticates once, then counts the table 10 times.
# One client, rounds interleaved (plain fresh initp, then reversed), median of
# the per-round ratios; unless --quick, writes bench/RESULTS.md's "stepup" section.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh
# shellcheck source=bench/results_section.bash
source bench/results_section.bash

ROUNDS=7
BLOCKS=200
QUICK=0
[[ "${1:-}" == --quick ]] && { ROUNDS=3; BLOCKS=10; QUICK=1; }

sessmgr_ensure_packages
sessmgr_build_install
work="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-bench-stepup.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
sessmgr_cluster_start

sessmgr_psql -q <<'SQL'
CREATE EXTENSION sessmgr;
CREATE ROLE stepup_bench LOGIN;
GRANT USAGE ON SCHEMA sessmgr TO stepup_bench;
GRANT EXECUTE ON FUNCTION sessmgr.authenticate(text), sessmgr.current_user_id(),
      sessmgr.is_fresh(interval, integer) TO stepup_bench;
CREATE TABLE plain (owner text NOT NULL, payload text NOT NULL);
INSERT INTO plain SELECT 'bench', md5(i::text) FROM generate_series(1, 1000) i;
CREATE TABLE fresh AS TABLE plain;
CREATE TABLE initp AS TABLE plain;
ALTER TABLE plain ENABLE ROW LEVEL SECURITY;
ALTER TABLE fresh ENABLE ROW LEVEL SECURITY;
ALTER TABLE initp ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON plain USING (owner = sessmgr.current_user_id());
CREATE POLICY p ON fresh USING (owner = sessmgr.current_user_id() AND sessmgr.is_fresh('10 min'));
CREATE POLICY p ON initp USING (owner = sessmgr.current_user_id() AND (SELECT sessmgr.is_fresh('10 min')));
GRANT SELECT ON plain, fresh, initp TO stepup_bench;
VACUUM ANALYZE plain, fresh, initp;
SQL
token="$(sessmgr_psql -At -c "SELECT token FROM sessmgr.issue('bench')")"
# One backend, one transaction (the identity lasts as long): ROUNDS x BLOCKS short
# blocks of 20 scans of each table, the order alternating, timed with
# clock_timestamp(); per round the ratio of the summed times.  Short interleaved
# blocks keep a drift in the machine's load (other jobs on a shared runner) out
# of the ratios.
sessmgr_psql -q -c 'SELECT 1' >/dev/null
out="$(sessmgr_as_pg "$PG_BIN/psql" -X -h "$PGHOST" -p "$PGPORT" -U stepup_bench -d postgres -Atq -v ON_ERROR_STOP=1 <<SQL
BEGIN;
SELECT sessmgr.authenticate('$token') IS NOT NULL;
CREATE TEMP TABLE times (round int, t text, secs float8);
DO \$\$
DECLARE
    r int; b int; k int; n bigint; t text; t0 timestamptz;
    tabs text[];
BEGIN
    FOR r IN 1..$ROUNDS LOOP
        FOR b IN 1..$BLOCKS LOOP
            tabs := CASE WHEN b % 2 = 0 THEN ARRAY['plain', 'fresh', 'initp'] ELSE ARRAY['initp', 'fresh', 'plain'] END;
            FOREACH t IN ARRAY tabs LOOP
                t0 := clock_timestamp();
                FOR k IN 1..20 LOOP
                    EXECUTE format('SELECT count(*) FROM %I', t) INTO n;
                    IF n <> 1000 THEN RAISE 'the guarded scan of % sees % rows', t, n; END IF;
                END LOOP;
                INSERT INTO times VALUES (r, t, extract(epoch FROM clock_timestamp() - t0));
            END LOOP;
        END LOOP;
    END LOOP;
END
\$\$;
SELECT times.round, round((sum(secs) FILTER (WHERE t = 'fresh') / sum(secs) FILTER (WHERE t = 'plain'))::numeric, 3),
       round((sum(secs) FILTER (WHERE t = 'initp') / sum(secs) FILTER (WHERE t = 'plain'))::numeric, 3),
       round((1000 * 20 * $BLOCKS / sum(secs) FILTER (WHERE t = 'plain'))::numeric)
  FROM times GROUP BY times.round ORDER BY times.round;
COMMIT;
SQL
)"
declare -a rf ri
while IFS='|' read -r r f i rps; do
	[[ -n "$rps" ]] || continue
	rf+=("$f"); ri+=("$i")
	sessmgr_log "bench stepup: round $r: per-row is_fresh ${f}x, once ${i}x (plain: $rps rows/s)"
done <<<"$out"

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mf="$(median "${rf[@]}")"
mi="$(median "${ri[@]}")"
vf=PASS; awk -v r="$mf" 'BEGIN { exit !(r > 1.05) }' && vf=MISS
vi=PASS; awk -v r="$mi" 'BEGIN { exit !(r > 1.05) }' && vi=MISS
echo "is_fresh per row: ${mf}x the scan's time ($vf); (SELECT is_fresh(...)) once: ${mi}x ($vi); target <= 1.05x ($ROUNDS rounds of $BLOCKS interleaved blocks)"
[[ $QUICK -eq 1 ]] && exit 0

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
bench_write_section stepup "$(cat <<EOF2
<!-- stepup: written by bench/stepup.sh; the rest of this file by bench/run.sh -->
## Step-up: is_fresh() in a row-level security policy

\`bash bench/stepup.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $commit): one backend, one
transaction after \`sessmgr.authenticate()\`, as a role subject to the policies; $ROUNDS rounds of
$BLOCKS blocks, each block counting each 1,000-row table 20 times, the order alternating.
Time of the scans relative to the policy \`owner = sessmgr.current_user_id()\` alone
(median of the rounds' ratios):

| policy adds | time ratio | rounds | target | result |
|---|---|---|---|---|
| \`AND sessmgr.is_fresh('10 min')\` (evaluated per row) | ${mf}x | ${rf[*]} | ≤ 1.05x | $vf |
| \`AND (SELECT sessmgr.is_fresh('10 min'))\` (evaluated once) | ${mi}x | ${ri[*]} | ≤ 1.05x | $vi |
<!-- /stepup -->
EOF2
)"
sessmgr_log "bench stepup: wrote the section of bench/RESULTS.md"

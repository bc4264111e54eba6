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

ROUNDS=6
SECS=8
QUICK=0
[[ "${1:-}" == --quick ]] && { ROUNDS=2; SECS=3; QUICK=1; }

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

for t in plain fresh initp; do
	{
		echo 'BEGIN;'
		echo 'SELECT sessmgr.authenticate(:tok);'
		for _ in $(seq 10); do echo "SELECT count(*) FROM $t;"; done
		echo 'END;'
	} >"$work/$t.sql"
done
check="$(sessmgr_as_pg "$PG_BIN/psql" -h "$PGHOST" -p "$PGPORT" -U stepup_bench -d postgres -At \
	-c "SELECT sessmgr.authenticate('$token') IS NOT NULL AS ok; SELECT count(*) FROM fresh")"
[[ "$check" == *1000 ]] || { echo "bench stepup: the guarded scan does not see its 1000 rows: $check" >&2; exit 1; }

run() {
	sessmgr_as_pg "$PG_BIN/pgbench" -h "$PGHOST" -p "$PGPORT" -U stepup_bench -n -M prepared -c 1 -T "$SECS" \
		-D tok="$token" -f "$work/$1.sql" postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}

run plain >/dev/null; run fresh >/dev/null; run initp >/dev/null   # warm up
declare -a rf ri
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then
		p="$(run plain)"; f="$(run fresh)"; i="$(run initp)"
	else
		i="$(run initp)"; f="$(run fresh)"; p="$(run plain)"
	fi
	# cost ratio: time per transaction with the check / without = tps plain / tps checked
	rf+=("$(awk -v a="$p" -v b="$f" 'BEGIN { printf "%.3f", a / b }')")
	ri+=("$(awk -v a="$p" -v b="$i" 'BEGIN { printf "%.3f", a / b }')")
	sessmgr_log "bench stepup: round $r: plain $p tps, is_fresh per row $f tps, is_fresh once $i tps"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mf="$(median "${rf[@]}")"
mi="$(median "${ri[@]}")"
vf=PASS; awk -v r="$mf" 'BEGIN { exit !(r > 1.05) }' && vf=MISS
vi=PASS; awk -v r="$mi" 'BEGIN { exit !(r > 1.05) }' && vi=MISS
echo "is_fresh per row: ${mf}x the scan's time ($vf); (SELECT is_fresh(...)) once: ${mi}x ($vi); target <= 1.05x ($ROUNDS rounds of ${SECS}s, interleaved)"
[[ $QUICK -eq 1 ]] && exit 0

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
bench_write_section stepup "$(cat <<EOF2
<!-- stepup: written by bench/stepup.sh; the rest of this file by bench/run.sh -->
## Step-up: is_fresh() in a row-level security policy

\`bash bench/stepup.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $commit; one pgbench client,
$ROUNDS rounds of ${SECS} s, interleaved): a transaction authenticates once and counts a
1,000-row table ten times, as a role subject to its policy. Time per transaction
relative to the policy \`owner = sessmgr.current_user_id()\` alone (median of rounds):

| policy adds | time ratio | rounds | target | result |
|---|---|---|---|---|
| \`AND sessmgr.is_fresh('10 min')\` (evaluated per row) | ${mf}x | ${rf[*]} | ≤ 1.05x | $vf |
| \`AND (SELECT sessmgr.is_fresh('10 min'))\` (evaluated once) | ${mi}x | ${ri[*]} | ≤ 1.05x | $vi |
<!-- /stepup -->
EOF2
)"
sessmgr_log "bench stepup: wrote the section of bench/RESULTS.md"

#!/usr/bin/env bash
# bench/issue_risk.sh: what the suspicious-login checks add to issue() (issue
# 13: at most 30% slower) for a user with 15 live sessions and 1,000 events.
#
#   bash bench/issue_risk.sh [--quick]
#
# One pgbench client logs the same user in again and again (Chrome on Windows,
# from an address the test GeoIP databases place in Lagos), each login its own
# transaction; the cap (15) evicts the oldest session each time.  The same
# run, rounds interleaved A B / B A, compares sessmgr.suspicious_login_policy =
# flag (the default: the profile and device read, judged and written back)
# with off (no checks: issue() as before the feature).  Between rounds the
# user's events are trimmed back to 1,000.  Unless --quick, writes
# bench/RESULTS.md's "issue_risk" section.
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
geo="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-bench-geo.XXXXXX")"
work="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-bench-risk.XXXXXX")"
trap 'rm -rf "$geo" "$work"' EXIT
perl test/make_geoip_db.pl "$geo" >/dev/null
chmod 755 "$geo" "$work"
chmod 644 "$geo"/*.mmdb
sessmgr_cluster_start "sessmgr.geoip_database = '$geo/sessmgr-test-City.mmdb'" \
	"sessmgr.geoip_asn_database = '$geo/sessmgr-test-ASN.mmdb'"

UA='Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'
sessmgr_psql -q <<SQL
CREATE EXTENSION sessmgr;
-- the user: 15 live sessions (the cap), then 1,000 events in all
SELECT count(s.session_id) FROM generate_series(1, 15) i
 CROSS JOIN LATERAL (SELECT * FROM sessmgr.issue('bench', user_agent => '$UA', ip => '192.0.2.10') WHERE i > 0) s;
INSERT INTO sessmgr.session_events (event, session_id, user_id, actor, ip, device, country_code)
SELECT 'issue', gen_random_uuid(), 'bench', current_user, '192.0.2.10', 'Chrome 120 on Windows', 'NG'
  FROM generate_series(1, 1000 - (SELECT count(*) FROM sessmgr.session_events WHERE user_id = 'bench'));
-- other users' rows around it
SELECT count(*) FROM generate_series(1, 2000) i, sessmgr.issue('other' || i, user_agent => '$UA', ip => '198.51.100.20');
VACUUM ANALYZE;
SQL

cat >"$work/login.sql" <<SQL
SELECT session_id FROM sessmgr.issue('bench', user_agent => '$UA', ip => '192.0.2.10'::inet);
SQL

run() {
	local policy="$1"
	sessmgr_as_pg env PGOPTIONS="-c sessmgr.suspicious_login_policy=$policy" \
		"$PG_BIN/pgbench" -n -M prepared -c 1 -j 1 -T "$SECS" -f "$work/login.sql" postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}

trim() {
	sessmgr_psql -q -c "DELETE FROM sessmgr.session_events WHERE user_id = 'bench' AND id NOT IN
	    (SELECT id FROM sessmgr.session_events WHERE user_id = 'bench' ORDER BY id DESC LIMIT 1000)" \
		-c 'VACUUM sessmgr.session_events, sessmgr.sessions, sessmgr.session_owners, sessmgr.login_profiles, sessmgr.known_devices'
}

run off >/dev/null   # warm up both sides once
run flag >/dev/null
trim
declare -a off_tps flag_tps ratios
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then
		o="$(run off)"; trim; f="$(run flag)"; trim
	else
		f="$(run flag)"; trim; o="$(run off)"; trim
	fi
	off_tps+=("$o"); flag_tps+=("$f")
	ratios+=("$(awk -v f="$f" -v o="$o" 'BEGIN { printf "%.3f", o / f }')")
	sessmgr_log "bench issue_risk: round $r: policy off $o tps, flag $f tps"
done
facts="$(sessmgr_psql -At -c "SELECT (SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = 'bench') || ' live sessions, '
    || (SELECT count(*) FROM sessmgr.session_events WHERE user_id = 'bench') || ' events, '
    || (SELECT logins FROM sessmgr.login_profiles WHERE user_id = 'bench') || ' logins in the profile'")"

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mo="$(median "${off_tps[@]}")"
mf="$(median "${flag_tps[@]}")"
mr="$(median "${ratios[@]}")"
verdict=PASS
awk -v r="$mr" 'BEGIN { exit !(r > 1.30) }' && verdict=MISS
echo "issue with the risk checks: $mf tps; without (policy off): $mo tps; time ratio ${mr}x (target <= 1.30x): $verdict ($ROUNDS rounds of ${SECS}s, interleaved; at the end: $facts)"
[[ $QUICK -eq 1 ]] && exit 0

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
bench_write_section issue_risk "$(cat <<EOF2
<!-- issue_risk: written by bench/issue_risk.sh; the rest of this file by bench/run.sh -->
## Suspicious-login checks in issue()

\`bash bench/issue_risk.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $commit; one pgbench
client, each login its own transaction, $ROUNDS rounds of ${SECS} s, the two sides interleaved
A B / B A; test GeoIP databases configured): one user with 15 live sessions (each login
evicts the oldest) and 1,000 events (trimmed back between rounds; at the end: $facts),
logging in again and again with the same browser from the same place, among 2,000 other
users. Time per login with \`sessmgr.suspicious_login_policy = flag\` (the default: one
read of the user's profile and device by key, the judgement, two upserts) relative to
\`off\` (no checks):

| measurement | flag | off | time ratio (median of rounds) | target | result |
|---|---|---|---|---|---|
| issue, 1 client | $mf tps | $mo tps | ${mr}x (rounds: ${ratios[*]}) | ≤ 1.30x | $verdict |

The checks never read the user's sessions or events, so the figure does not grow
with them. A suspicious login costs one more INSERT (the event) and a NOTIFY; an
ordinary one, measured here, does not. The machine has 2 cores shared with other
jobs: single rounds vary, the median of the interleaved ratios is the figure.
<!-- /issue_risk -->
EOF2
)"
sessmgr_log "bench issue_risk: wrote the section of bench/RESULTS.md"

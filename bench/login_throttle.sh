#!/usr/bin/env bash
# bench/login_throttle.sh: what recording and reading failed logins cost
# (issue 13: login_failed and login_delay at least 0.7x the rate of a plain
# INSERT ... ON CONFLICT DO UPDATE of the same row, at 8 clients).
#
#   bash bench/login_throttle.sh [--quick]
#
# Workloads, 8 pgbench clients, -M prepared, run interleaved (each round in
# turn forwards and backwards, so that a drift in the machine's load favours
# no side), on a throwaway cluster:
#   upsert:        the baseline: INSERT ... ON CONFLICT DO UPDATE of one row
#                  of a table shaped like sessmgr.login_attempts (its primary
#                  key, the counter, the times), each client its own key;
#   upsert3:       the same for three rows in one statement (the keys one
#                  failure counts against: pair, account, address);
#   login_failed:  sessmgr.login_failed(user, address), each client its own
#                  account and address (a guesser at work: the rows exist,
#                  the delay grows, one login_failed event a minute);
#   login_delay:   sessmgr.login_delay(user, address) on those keys;
#   read:          the baseline read: the three rows of upsert3 by key.
#   failed_spread: login_failed for a random account (of 100,000) from a
#                  random address (of 65,536): nearly every failure is a new
#                  pair, so it inserts its rows and writes its event.
# Prints the median tps of each and the median per-round ratios and, unless
# --quick, writes bench/RESULTS.md's "login_throttle" section.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh
# shellcheck source=bench/results_section.bash
source bench/results_section.bash

ROUNDS=4
SECS=8
QUICK=0
[[ "${1:-}" == --quick ]] && { ROUNDS=2; SECS=3; QUICK=1; }
CLIENTS=8
WORKLOADS=(upsert upsert3 login_failed login_delay read failed_spread)

sessmgr_ensure_packages
sessmgr_build_install
work="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-bench-throttle.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
sessmgr_cluster_start

sessmgr_psql -q <<'SQL'
CREATE EXTENSION sessmgr;
CREATE TABLE attempts (
    user_id         text        NOT NULL,
    network         cidr        NOT NULL,
    failures        integer     NOT NULL,
    first_failed_at timestamptz NOT NULL,
    last_failed_at  timestamptz NOT NULL,
    delayed_until   timestamptz,
    locked_at       timestamptz,
    event_at        timestamptz,
    event_failures  integer     NOT NULL DEFAULT 0,
    unreported      integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, network)
) WITH (fillfactor = 80);
SQL

cat >"$work/upsert.sql" <<'SQL'
INSERT INTO attempts AS o (user_id, network, failures, first_failed_at, last_failed_at)
VALUES ('g' || :client_id, ('198.51.100.' || :client_id)::cidr, 1, now(), now())
ON CONFLICT (user_id, network) DO UPDATE
   SET failures = o.failures + 1, last_failed_at = EXCLUDED.last_failed_at;
SQL
cat >"$work/upsert3.sql" <<'SQL'
INSERT INTO attempts AS o (user_id, network, failures, first_failed_at, last_failed_at)
VALUES ('', ('198.51.100.' || :client_id)::cidr, 1, now(), now()),
       ('g' || :client_id, '0.0.0.0/0', 1, now(), now()),
       ('g' || :client_id, ('198.51.100.' || :client_id)::cidr, 1, now(), now())
ON CONFLICT (user_id, network) DO UPDATE
   SET failures = o.failures + 1, last_failed_at = EXCLUDED.last_failed_at;
SQL
cat >"$work/read.sql" <<'SQL'
SELECT max(failures) FROM attempts
 WHERE user_id = ANY (ARRAY['g' || :client_id, ''])
   AND network = ANY (ARRAY[('198.51.100.' || :client_id)::cidr, '0.0.0.0/0']);
SQL
cat >"$work/login_failed.sql" <<'SQL'
SELECT sessmgr.login_failed('g' || :client_id, ('198.51.100.' || :client_id)::inet);
SQL
cat >"$work/login_delay.sql" <<'SQL'
SELECT sessmgr.login_delay('g' || :client_id, ('198.51.100.' || :client_id)::inet);
SQL
cat >"$work/failed_spread.sql" <<'SQL'
\set u random(1, 100000)
\set a random(0, 255)
\set b random(0, 255)
SELECT sessmgr.login_failed('s' || :u, ('10.1.' || :a || '.' || :b)::inet);
SQL

run() {
	sessmgr_as_pg "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECS" \
		-f "$work/$1.sql" postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p'
}

for w in "${WORKLOADS[@]}"; do run "$w" >/dev/null; done # warm up, create the rows
declare -A tps
for ((r = 1; r <= ROUNDS; r++)); do
	order=("${WORKLOADS[@]}")
	if ((r % 2 == 0)); then
		order=()
		for ((i = ${#WORKLOADS[@]} - 1; i >= 0; i--)); do order+=("${WORKLOADS[i]}"); done
	fi
	line="round $r:"
	for w in "${order[@]}"; do
		t="$(run "$w")"
		[[ -n "$t" ]] || { sessmgr_err "pgbench ($w) gave no tps"; exit 1; }
		tps[$w]+="$t "
		line+=" $w $t"
	done
	sessmgr_log "bench login_throttle: $line"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# the median of the per-round ratios a/b
ratio() {
	local -a a b rs=()
	read -r -a a <<<"${tps[$1]}"
	read -r -a b <<<"${tps[$2]}"
	for ((i = 0; i < ${#a[@]}; i++)); do
		rs+=("$(awk -v x="${a[i]}" -v y="${b[i]}" 'BEGIN { printf "%.2f", x / y }')")
	done
	median "${rs[@]}"
}
declare -A med
for w in "${WORKLOADS[@]}"; do
	# shellcheck disable=SC2086
	med[$w]="$(median ${tps[$w]})"
done
verdict() { awk -v r="$1" 'BEGIN { print (r >= 0.7) ? "PASS" : "MISS" }'; }
r_failed="$(ratio login_failed upsert)"
r_failed3="$(ratio login_failed upsert3)"
r_delay="$(ratio login_delay upsert)"
r_delay_read="$(ratio login_delay read)"
r_spread="$(ratio failed_spread upsert)"
v_failed="$(verdict "$r_failed")"
v_delay="$(verdict "$r_delay")"
echo "login_failed ${r_failed}x a plain one-row upsert ($v_failed), ${r_failed3}x the same three rows;" \
	"login_delay ${r_delay}x the upsert ($v_delay), ${r_delay_read}x a plain read of the rows;" \
	"login_failed spread over new pairs ${r_spread}x the upsert;" \
	"tps: $(for w in "${WORKLOADS[@]}"; do printf '%s %s, ' "$w" "${med[$w]}"; done)" \
	"($CLIENTS clients, $ROUNDS rounds of ${SECS}s, interleaved)"
[[ $QUICK -eq 1 ]] && exit 0

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
bench_write_section login_throttle "$(cat <<EOF2
<!-- login_throttle: written by bench/login_throttle.sh; the rest of this file by bench/run.sh -->
## Failed logins: login_failed() and login_delay()

\`bash bench/login_throttle.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $commit; $CLIENTS pgbench
clients, -M prepared, $ROUNDS rounds of ${SECS} s, the workloads interleaved, forwards and backwards;
a 2-core machine shared with other jobs: single figures move by 10-20%, the ratios less).
The baseline is a plain \`INSERT ... ON CONFLICT DO UPDATE\` of one row of a table shaped like
\`sessmgr.login_attempts\`, each client its own key; the guessers below likewise fail each on
their own account and address (the rows exist, the delay grows, one event a minute).

| measurement | tps (median) | ratio (median of rounds) | target | result |
|---|---|---|---|---|
| plain upsert of one row (baseline) | ${med[upsert]} | 1 | | |
| plain upsert of the three rows of a failure | ${med[upsert3]} | $(ratio upsert3 upsert)x | | |
| plain read of those rows by key | ${med[read]} | $(ratio read upsert)x | | |
| \`login_failed(user, ip)\` | ${med[login_failed]} | ${r_failed}x the upsert; ${r_failed3}x the three-row upsert | ≥ 0.7x | $v_failed |
| \`login_delay(user, ip)\` | ${med[login_delay]} | ${r_delay}x the upsert; ${r_delay_read}x the plain read | ≥ 0.7x | $v_delay |
| \`login_failed\` from new pairs (insert, event, device and place) | ${med[failed_spread]} | ${r_spread}x the upsert | | |

\`login_failed\` writes the three rows a failure counts against (pair, account, address) in one
statement, through SPI and as the tables' owner; a failure from a new account and address also
inserts them and writes its \`login_failed\` event (with the address's place; no user agent here),
which the last row measures.
<!-- /login_throttle -->
EOF2
)"
sessmgr_log "bench login_throttle: wrote the section of bench/RESULTS.md"

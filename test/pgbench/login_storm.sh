#!/usr/bin/env bash
# test/pgbench/login_storm.sh: 32 clients record failed logins for one account
# as fast as they can, from four addresses; every committed failure must be
# counted exactly once (src/throttle.c), under READ COMMITTED, REPEATABLE READ
# and SERIALIZABLE.
#
# Run by test/run.sh with PGHOST, PGPORT, PGUSER and PGDATABASE exported (a
# superuser; PGDATABASE is only used to create and drop the storm database)
# and PG_BIN set.  Creates its own database and drops it at the end; takes
# about 25 s.
#
# Each pass records failures for its own account.  pgbench reports how many
# transactions committed; the account's row must count exactly that many,
# the four pair rows and the four address rows must add up to it, and the
# account is locked once (sessmgr.login_lockout_failures = 100): one
# account_locked event.
#
# Under REPEATABLE READ a failure that meets a concurrent one is tried again
# inside login_failed (with a fresh snapshot), so that pass expects no failed
# transaction at all.  Under SERIALIZABLE the same happens, but SSI sees more:
# the upsert reads the row it updates, so it takes a predicate lock, and a
# failure's three rows usually share a page, so the lock covers the page;
# concurrent failures for one account then form the read/write dependency
# cycles SSI refuses, and many fail with 40001 ("read/write dependencies
# among transactions").  Those transactions are rolled back (their failure
# is not counted) and the caller retries them: pgbench --max-tries.  What
# commits is counted exactly once.  The last pass also reads first
# (login_delay, then login_failed, in one transaction).
#
# Prints one result line; exits non-zero on any violation.
set -euo pipefail

# shellcheck source=test/pgbench/storm_lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/storm_lib.bash"
storm_init login_storm

CLIENTS=32
THREADS=2
SECONDS_PER_PASS=5

started=$SECONDS

storm_create_db
psql_storm -c "CREATE EXTENSION sessmgr"

# Run one pass: $1 names it (and the account), $2 the isolation level, $3 the
# transaction's SQL; the rest are extra pgbench options.  Sets pass_tx,
# pass_failed, pass_retried, pass_tps.
run_pass() {
	local name="$1" level="$2" sql="$3" rc=0 out
	shift 3
	out="$WORK/pgbench-$name.out"
	printf '%s\n' '\set n random(1, 4)' "$sql" >"$WORK/$name.sql"
	PGOPTIONS="-c default_transaction_isolation=${level// /\\ }" \
		"$PG_BIN/pgbench" -n -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_PER_PASS" \
		-f "$WORK/$name.sql" "$@" "$DB" >"$out" 2>&1 || rc=$?
	if [[ $rc -ne 0 ]]; then
		cat "$out" >&2
		fail "pgbench ($name) exited with status $rc"
	fi
	pass_tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")"
	pass_failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
	pass_failed="${pass_failed:-0}"
	pass_retried="$(sed -n 's/^number of transactions retried: \([0-9]*\).*/\1/p' "$out")"
	pass_retried="${pass_retried:-0}"
	pass_tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")"
	if [[ -z "$pass_tx" || -z "$pass_tps" ]]; then
		cat "$out" >&2
		fail "could not read the pgbench ($name) report"
	fi
	[[ "$pass_tx" -gt 0 ]] || fail "pgbench ($name) processed no transaction"
}

# Check the counts of account $1 against $2 committed failures.
check() {
	local user="$1" committed="$2" row account pairs addresses locked_events locked
	row="$(psql_storm -At -F ' ' -v user="$user" <<'SQL'
SELECT (SELECT coalesce(sum(failures), 0) FROM sessmgr.login_attempts
         WHERE user_id = :'user' AND masklen(network) = 0),
       (SELECT coalesce(sum(failures), 0) FROM sessmgr.login_attempts
         WHERE user_id = :'user' AND masklen(network) > 0),
       (SELECT coalesce(sum(failures), 0) FROM sessmgr.login_attempts
         WHERE user_id = '' AND network <<= '198.51.100.0/24'),
       (SELECT count(*) FROM sessmgr.session_events
         WHERE user_id = :'user' AND event = 'account_locked'),
       (SELECT count(*) FROM sessmgr.login_attempts
         WHERE user_id = :'user' AND locked_at IS NOT NULL);
SQL
)"
	read -r account pairs addresses locked_events locked <<<"$row"
	[[ "$account" -eq "$committed" ]] ||
		fail "$user: the account counts $account failures, pgbench committed $committed"
	[[ "$pairs" -eq "$committed" ]] ||
		fail "$user: the pairs count $pairs failures, pgbench committed $committed"
	[[ "$addresses" -eq "$committed" ]] ||
		fail "$user: the addresses count $addresses failures, pgbench committed $committed"
	if [[ "$committed" -ge 100 ]]; then
		[[ "$locked" -eq 1 && "$locked_events" -eq 1 ]] ||
			fail "$user: locked $locked, $locked_events account_locked events (expected 1 and 1)"
	fi
	# the next pass starts with the addresses at zero
	psql_storm -c "DELETE FROM sessmgr.login_attempts WHERE user_id = ''"
}

FAIL_SQL="SELECT sessmgr.login_failed('%s', ('198.51.100.' || :n)::inet, 'storm', 'bad_password');"
READ_SQL="SELECT sessmgr.login_delay('%s', ('198.51.100.' || :n)::inet);"
result=""
for level in "read committed" "repeatable read" "serializable"; do
	name="storm-${level// /-}"
	# shellcheck disable=SC2059
	if [[ "$level" == serializable ]]; then
		run_pass "$name" "$level" "$(printf "$FAIL_SQL" "$name")" -M prepared \
			--max-tries=1000 --failures-detailed
	else
		run_pass "$name" "$level" "$(printf "$FAIL_SQL" "$name")" -M prepared
		[[ "$pass_failed" -eq 0 ]] || fail "$level: $pass_failed failed transactions"
	fi
	check "$name" "$pass_tx"
	result+="$level: $pass_tx failures counted exactly ($pass_tps tps, $pass_retried retried, $pass_failed failed); "
done

# SERIALIZABLE with a read in the transaction: SSI may fail some; pgbench retries
name="storm-serializable-read"
# shellcheck disable=SC2059
run_pass "$name" serializable "$(printf "BEGIN;\n$READ_SQL\n$FAIL_SQL\nCOMMIT;" "$name" "$name")" \
	-M prepared --max-tries=1000 --failures-detailed
check "$name" "$pass_tx"
result+="serializable after a read: $pass_tx counted exactly, $pass_retried retried, $pass_failed failed"

echo "login_storm: ok: $result; $((SECONDS - started))s"

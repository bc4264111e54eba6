#!/usr/bin/env bash
# test/pgbench/cap_storm.sh: 32 clients issue sessions for one user as fast as
# they can; the per-user cap (sessmgr.max_sessions = 5) must hold at every
# commit, under READ COMMITTED and under REPEATABLE READ.
#
# Run by test/run.sh with PGHOST, PGPORT, PGUSER and PGDATABASE exported (a
# superuser; PGDATABASE is only used to create and drop the storm database)
# and PG_BIN set.  Creates its own database and drops it at the end.
#
# The monitor: a deferred constraint trigger on sessmgr.sessions that, at
# commit of every issuing transaction, records how many active sessions the
# user has.  At that moment the transaction still holds the user's row lock in
# sessmgr.session_owners, so no other issuance for the user can commit in
# between and the count is exact.  Were the cap broken, or racy, a commit
# would see more than 5.
#
# Prints one result line; exits non-zero on any violation.
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
CAP=5
STORM_USER='storm-user'
CLIENTS=32
THREADS=2
SECONDS_PER_PASS=5
DB="sessmgr_storm_$$"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-storm.XXXXXX")"
MAINT_DB="${PGDATABASE:-postgres}"

psql_maint() {
	"$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -d "$MAINT_DB" "$@"
}
psql_storm() {
	"$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -d "$DB" "$@"
}

cleanup() {
	local rc=$?
	set +e
	psql_maint -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
		echo "cap_storm: could not drop database $DB" >&2
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT

fail() {
	echo "cap_storm: FAIL: $*" >&2
	exit 1
}

started=$SECONDS

psql_maint -c "CREATE DATABASE $DB"
psql_storm <<SQL
CREATE EXTENSION sessmgr;
ALTER DATABASE $DB SET sessmgr.max_sessions = $CAP;

-- test-only monitor: the user's exact active count at each issuing commit
CREATE TABLE public.storm_max (n int NOT NULL);

CREATE FUNCTION public.storm_count() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS \$\$
BEGIN
    INSERT INTO public.storm_max (n)
    SELECT count(*) FROM sessmgr.active_sessions a WHERE a.user_id = NEW.user_id;
    RETURN NULL;
END
\$\$;

CREATE CONSTRAINT TRIGGER storm_monitor
    AFTER INSERT ON sessmgr.sessions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION public.storm_count();
SQL

# The cap really is 5 in new connections to the storm database.
cap_seen="$(psql_storm -At -c "SELECT sessmgr.current_user_id()" \
	-c "SELECT current_setting('sessmgr.max_sessions')" | tail -n 1)"
[[ "$cap_seen" == "$CAP" ]] || fail "sessmgr.max_sessions is '$cap_seen' in the storm database, not $CAP"

cat >"$WORK/issue.sql" <<SQL
SELECT session_id FROM sessmgr.issue('$STORM_USER', 'bench');
SQL

# Run one pgbench pass; $1 names it, the rest are extra pgbench options.
# Sets pass_tx, pass_failed, pass_tps.
run_pass() {
	local name="$1" out rc
	shift
	out="$WORK/pgbench-$name.out"
	rc=0
	"$PG_BIN/pgbench" -n -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_PER_PASS" \
		-f "$WORK/issue.sql" "$@" "$DB" >"$out" 2>&1 || rc=$?
	if [[ $rc -ne 0 ]]; then
		cat "$out" >&2
		fail "pgbench ($name) exited with status $rc"
	fi
	pass_tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")"
	pass_failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
	pass_tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")"
	pass_failed="${pass_failed:-0}"
	if [[ -z "$pass_tx" || -z "$pass_tps" ]]; then
		cat "$out" >&2
		fail "could not read the pgbench ($name) report"
	fi
	if [[ "$pass_tx" -le 0 ]]; then
		cat "$out" >&2
		fail "pgbench ($name) processed no transaction"
	fi
}

# Check every invariant over everything committed so far; $1 names the pass.
check() {
	local name="$1" row
	row="$(psql_storm -At -F ' ' <<SQL
SELECT (SELECT coalesce(max(n), -1) FROM public.storm_max),
       (SELECT count(*) FROM public.storm_max),
       (SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = '$STORM_USER'),
       (SELECT count(*) FROM sessmgr.sessions WHERE user_id = '$STORM_USER'),
       (SELECT count(*) FROM sessmgr.sessions
         WHERE user_id = '$STORM_USER' AND revoked_at IS NOT NULL
           AND revoke_reason IS DISTINCT FROM 'cap'),
       (SELECT count(*) FROM sessmgr.session_events
         WHERE user_id = '$STORM_USER' AND event = 'issue'),
       (SELECT count(*) FROM sessmgr.session_events
         WHERE user_id = '$STORM_USER' AND event = 'evict'),
       (SELECT coalesce(sum(sessions_issued), 0) FROM sessmgr.session_owners
         WHERE user_id = '$STORM_USER');
SQL
)"
	read -r max_seen monitored active rows other_ends issues evicts issued <<<"$row"
	[[ "$max_seen" -ge 1 ]] || fail "$name: the monitor recorded nothing"
	[[ "$max_seen" -le "$CAP" ]] ||
		fail "$name: a commit saw $max_seen active sessions for one user (cap $CAP)"
	[[ "$active" -le "$CAP" ]] || fail "$name: $active active sessions at the end (cap $CAP)"
	[[ "$issues" -eq "$rows" ]] ||
		fail "$name: $issues issue events for $rows sessions rows"
	[[ "$monitored" -eq "$rows" ]] ||
		fail "$name: the monitor ran at $monitored commits for $rows sessions rows"
	[[ "$issued" -eq "$rows" ]] ||
		fail "$name: session_owners counts $issued issuances for $rows sessions rows"
	[[ "$other_ends" -eq 0 ]] ||
		fail "$name: $other_ends sessions ended otherwise than by the cap"
	[[ "$evicts" -eq $((rows - active)) ]] ||
		fail "$name: $evicts evict events, but $((rows - active)) sessions were evicted"
	[[ "$rows" -eq "$expected_rows" ]] ||
		fail "$name: $rows sessions rows, but pgbench committed $expected_rows issuances"
}

# Pass 1: READ COMMITTED, simple protocol.  No error is expected at all.
run_pass rc
rc_tx=$pass_tx rc_tps=$pass_tps rc_failed=$pass_failed
[[ "$rc_failed" -eq 0 ]] || fail "read committed: $rc_failed failed transactions"
expected_rows=$rc_tx
check "read committed"
rc_max=$max_seen

# Pass 2: REPEATABLE READ, prepared statements.  An issuer whose snapshot
# predates another's commit gets a serialization failure (40001) on the
# user's row; pgbench retries those (--max-tries) and counts the ones that
# still fail.  Any other error aborts a client and fails the pass.
[[ "$(PGOPTIONS='-c default_transaction_isolation=repeatable\ read' \
	psql_storm -At -c 'SHOW transaction_isolation')" == "repeatable read" ]] ||
	fail "PGOPTIONS did not select repeatable read"
PGOPTIONS='-c default_transaction_isolation=repeatable\ read' \
	run_pass rr -M prepared --max-tries=10 --failures-detailed
rr_tx=$pass_tx rr_tps=$pass_tps rr_failed=$pass_failed
rr_serialization="$(sed -n 's/^number of serialization failures: \([0-9]*\).*/\1/p' "$WORK/pgbench-rr.out")"
rr_retried="$(sed -n 's/^number of transactions retried: \([0-9]*\).*/\1/p' "$WORK/pgbench-rr.out")"
expected_rows=$((rc_tx + rr_tx))
check "repeatable read"

elapsed=$((SECONDS - started))
echo "cap_storm: ok: cap $CAP held; read committed: $rc_tx transactions, $rc_tps tps, max active at commit $rc_max;" \
	"repeatable read: $rr_tx transactions, $rr_tps tps, ${rr_retried:-0} retried, $rr_failed failed" \
	"(${rr_serialization:-0} serialization failures), max active at commit $max_seen;" \
	"$rows sessions, $active active; ${elapsed}s"

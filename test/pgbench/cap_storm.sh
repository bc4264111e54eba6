#!/usr/bin/env bash
# test/pgbench/cap_storm.sh: 32 clients issue sessions for one user as fast as
# they can; the per-user cap (sessmgr.max_sessions = 5) must hold at every
# commit, under READ COMMITTED and under REPEATABLE READ.
#
# Run by test/run.sh with PGHOST, PGPORT, PGUSER and PGDATABASE exported (a
# superuser; PGDATABASE is only used to create and drop the storm database)
# and PG_BIN set.  Creates its own database and drops it at the end; takes
# about 12 s.
#
# The monitor: a deferred constraint trigger on sessmgr.sessions that, at
# commit of every issuing transaction, records how many active sessions the
# user has.  At that moment the transaction still holds the user's row lock in
# sessmgr.session_owners, so no other issuance for the user can commit in
# between and the count is exact.  Were the cap broken, or racy, a commit
# would see more than 5.
#
# The monitor's count goes by the committing transaction's snapshot, which
# under REPEATABLE READ is exact only if the cap itself works (an issuer whose
# snapshot missed another's commit must have failed).  So each monitor row
# also records the commit order (a sequence drawn under the same lock) and the
# transaction id, and the check replays the commits: each adds its one session
# and ends those whose revoked row version it wrote.  The replayed count must
# never exceed 5 and must equal what the monitor saw at every commit.
#
# Each pass issues for its own user, so that both start from no session: with
# a full quota every issuance evicts and conflicts on its victim's row, which
# would hide a cap that serializes badly while the user is below the cap.
#
# Prints one result line; exits non-zero on any violation.
set -euo pipefail

# shellcheck source=test/pgbench/storm_lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/storm_lib.bash"
storm_init cap_storm

CAP=5
CLIENTS=32
THREADS=2
SECONDS_PER_PASS=5
RR_OPTIONS='-c default_transaction_isolation=repeatable\ read'

started=$SECONDS

storm_create_db
psql_storm <<SQL
CREATE EXTENSION sessmgr;
ALTER DATABASE $DB SET sessmgr.max_sessions = $CAP;

-- test-only monitor: the user's exact active count at each issuing commit
CREATE SEQUENCE public.storm_commit_seq;
CREATE TABLE public.storm_max (
    n       int    NOT NULL,    -- the user's active sessions at commit
    user_id text   NOT NULL,
    seq     bigint NOT NULL DEFAULT nextval('public.storm_commit_seq'),   -- commit order
    xid     xid8   NOT NULL DEFAULT pg_current_xact_id()    -- the issuing transaction
);

CREATE FUNCTION public.storm_count() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS \$\$
BEGIN
    INSERT INTO public.storm_max (n, user_id)
    SELECT count(*), NEW.user_id FROM sessmgr.active_sessions a WHERE a.user_id = NEW.user_id;
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
[[ "$cap_seen" == "$CAP" ]] ||
	fail "sessmgr.max_sessions is '$cap_seen' in the storm database, not $CAP"

# Run one pgbench pass: $1 names it, $2 is the user, the rest are extra
# pgbench options.  Sets pass_tx, pass_failed, pass_tps, pass_out.
run_pass() {
	local name="$1" user="$2" rc=0
	shift 2
	pass_out="$WORK/pgbench-$name.out"
	printf "SELECT session_id FROM sessmgr.issue('%s', 'bench');\n" "$user" >"$WORK/issue-$name.sql"
	"$PG_BIN/pgbench" -n -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_PER_PASS" \
		-f "$WORK/issue-$name.sql" "$@" "$DB" >"$pass_out" 2>&1 || rc=$?
	if [[ $rc -ne 0 ]]; then
		cat "$pass_out" >&2
		fail "pgbench ($name) exited with status $rc"
	fi
	pass_tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$pass_out")"
	pass_failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$pass_out")"
	pass_failed="${pass_failed:-0}"
	pass_tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$pass_out")"
	if [[ -z "$pass_tx" || -z "$pass_tps" ]]; then
		cat "$pass_out" >&2
		fail "could not read the pgbench ($name) report"
	fi
	if [[ "$pass_tx" -le 0 ]]; then
		cat "$pass_out" >&2
		fail "pgbench ($name) processed no transaction"
	fi
}

# Check every invariant for one user: $1 names the pass, $2 is the user, $3
# the number of issuances pgbench committed.  Sets max_seen, rows, active.
check() {
	local name="$1" user="$2" expected_rows="$3" row
	local monitored other_ends issues evicts issued max_replayed disagreements
	row="$(psql_storm -At -F ' ' -v user="$user" <<'SQL'
WITH evictions AS (
    -- a transaction that ended a session wrote its current row version
    SELECT s.xmin AS evictor, count(*) AS k
      FROM sessmgr.sessions s
     WHERE s.user_id = :'user' AND s.revoked_at IS NOT NULL
     GROUP BY s.xmin
), replay AS (
    -- the commits in order: each adds its one session and ends those it evicted
    SELECT m.n, sum(1 - coalesce(e.k, 0)) OVER (ORDER BY m.seq) AS replayed
      FROM public.storm_max m
      LEFT JOIN evictions e ON e.evictor = xid(m.xid)
     WHERE m.user_id = :'user'
)
SELECT (SELECT coalesce(max(n), -1) FROM replay),
       (SELECT count(*) FROM replay),
       (SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = :'user'),
       (SELECT count(*) FROM sessmgr.sessions WHERE user_id = :'user'),
       (SELECT count(*) FROM sessmgr.sessions
         WHERE user_id = :'user' AND revoked_at IS NOT NULL
           AND revoke_reason IS DISTINCT FROM 'cap'),
       (SELECT count(*) FROM sessmgr.session_events WHERE user_id = :'user' AND event = 'issue'),
       (SELECT count(*) FROM sessmgr.session_events WHERE user_id = :'user' AND event = 'evict'),
       (SELECT coalesce(sum(sessions_issued), 0) FROM sessmgr.session_owners
         WHERE user_id = :'user'),
       (SELECT coalesce(max(replayed), -1) FROM replay),
       (SELECT count(*) FROM replay WHERE replayed <> n);
SQL
)"
	read -r max_seen monitored active rows other_ends issues evicts issued \
		max_replayed disagreements <<<"$row"
	[[ "$max_seen" -ge 1 ]] || fail "$name: the monitor recorded nothing"
	[[ "$max_seen" -le "$CAP" ]] ||
		fail "$name: a commit saw $max_seen active sessions for one user (cap $CAP)"
	[[ "$max_replayed" -le "$CAP" ]] ||
		fail "$name: replaying the commits gives $max_replayed active sessions (cap $CAP)"
	[[ "$disagreements" -eq 0 ]] ||
		fail "$name: at $disagreements commits the monitor's count differs from the replay"
	[[ "$active" -le "$CAP" ]] || fail "$name: $active active sessions at the end (cap $CAP)"
	[[ "$issues" -eq "$rows" ]] || fail "$name: $issues issue events for $rows sessions rows"
	[[ "$rows" -eq "$expected_rows" ]] ||
		fail "$name: $rows sessions rows, but pgbench committed $expected_rows issuances"
	[[ "$monitored" -eq "$rows" ]] ||
		fail "$name: the monitor ran at $monitored commits for $rows sessions rows"
	[[ "$issued" -eq "$rows" ]] ||
		fail "$name: session_owners counts $issued issuances for $rows sessions rows"
	[[ "$other_ends" -eq 0 ]] || fail "$name: $other_ends sessions ended otherwise than by the cap"
	[[ "$evicts" -eq $((rows - active)) ]] ||
		fail "$name: $evicts evict events, but $((rows - active)) sessions were evicted"
}

# Pass 1: READ COMMITTED, simple protocol.  No error is expected at all.
run_pass rc storm-user
rc_tx=$pass_tx rc_tps=$pass_tps
[[ "$pass_failed" -eq 0 ]] || fail "read committed: $pass_failed failed transactions"
check "read committed" storm-user "$rc_tx"
rc_max=$max_seen rc_rows=$rows rc_active=$active

# Pass 2: REPEATABLE READ, prepared statements.  An issuer whose snapshot
# predates another's commit gets a serialization failure (40001) on the
# user's row; pgbench retries those (--max-tries) and counts the ones that
# still fail.  Any other error aborts a client and fails the pass.
[[ "$(PGOPTIONS="$RR_OPTIONS" psql_storm -At -c 'SHOW transaction_isolation')" == "repeatable read" ]] ||
	fail "PGOPTIONS did not select repeatable read"
PGOPTIONS="$RR_OPTIONS" run_pass rr storm-user-rr -M prepared --max-tries=10 --failures-detailed
rr_tx=$pass_tx rr_tps=$pass_tps rr_failed=$pass_failed
rr_serialization="$(sed -n 's/^number of serialization failures: \([0-9]*\).*/\1/p' "$pass_out")"
rr_retried="$(sed -n 's/^number of transactions retried: \([0-9]*\).*/\1/p' "$pass_out")"
check "repeatable read" storm-user-rr "$rr_tx"

echo "cap_storm: ok: cap $CAP held;" \
	"read committed: $rc_tx transactions, $rc_tps tps, max active at commit $rc_max" \
	"($rc_rows sessions, $rc_active active);" \
	"repeatable read: $rr_tx transactions, $rr_tps tps, ${rr_retried:-0} retried," \
	"$rr_failed failed (${rr_serialization:-0} serialization failures)," \
	"max active at commit $max_seen ($rows sessions, $active active); $((SECONDS - started))s"

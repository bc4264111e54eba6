#!/usr/bin/env bash
# test/pgbench/cleanup_storm.sh: cleanup running flat out while sessions are
# issued, revoked and validated; then the figures of a large cleanup.
#
# Run by test/run.sh with PGHOST, PGPORT, PGUSER and PGDATABASE exported (a
# superuser; PGDATABASE is only used to create and drop the storm database)
# and PG_BIN set.  Creates its own database and drops it at the end.
#
# Part 1, the storm (retention 0, sessions that live 3 seconds, a touch on
# every validation, at most 3 sessions per user): 8 clients issue for 200
# users, end all their sessions now and then, and validate the tokens of 50
# remembered "keeper" sessions, each validation required to succeed; one
# more client runs CALL sessmgr.cleanup(batch_size => 100) back to back.
# Test-only monitors turn any broken promise into an error in the offending
# transaction:
#   - a BEFORE DELETE trigger on sessions refuses to delete a live session;
#   - a deferred trigger on session_owners refuses, at commit and with a
#     fresh snapshot, to delete the row of a user who has a live session
#     (the lock that serializes the user's sessions would be gone).
# Any error fails the test.  At the end every keeper still validates, every
# user with a live session has its owner row, and cleanup removed sessions
# and owner rows while all this went on.
#
# Part 2, the figures (printed, not judged): 100,000 sessions that ended 8
# days ago are removed by one CALL sessmgr.cleanup(), once on an idle server
# and once while 4 clients validate keeper tokens.  The run log gives rows
# per second; pgbench's per-transaction log gives validation latency before
# and during the cleanup.
#
# Prints one result line; exits non-zero on any violation.
set -euo pipefail

# shellcheck source=test/pgbench/storm_lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/storm_lib.bash"
storm_init cleanup_storm

STORM_SECONDS=10
BACKLOG=100000

# Check a pgbench report: exit status 0, transactions done, none failed.
check_pgbench() {
	local name="$1" out="$2" rc="$3" tx failed
	if [[ "$rc" -ne 0 ]]; then
		cat "$out" >&2
		fail "pgbench ($name) exited with status $rc"
	fi
	tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")"
	failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
	[[ -n "$tx" && "$tx" -gt 0 ]] || {
		cat "$out" >&2
		fail "pgbench ($name) processed no transaction"
	}
	[[ "${failed:-0}" -eq 0 ]] || {
		cat "$out" >&2
		fail "pgbench ($name): $failed failed transactions"
	}
	echo "$tx"
}

started=$SECONDS
storm_create_db
psql_storm <<SQL
CREATE EXTENSION sessmgr;
ALTER DATABASE $DB SET sessmgr.retention = 0;
ALTER DATABASE $DB SET sessmgr.absolute_timeout = '3s';
ALTER DATABASE $DB SET sessmgr.idle_timeout = '2s';
ALTER DATABASE $DB SET sessmgr.touch_interval = 0;
ALTER DATABASE $DB SET sessmgr.max_sessions = 3;

-- 50 remembered sessions (30 days) that must stay valid throughout
CREATE TABLE public.storm_keepers (k int PRIMARY KEY, session_id uuid, token text);
INSERT INTO public.storm_keepers
SELECT n, i.session_id, i.token
  FROM generate_series(1, 50) n, sessmgr.issue('keeper-' || n, remember => true) i;
-- their owner rows look idle: only a live session may keep them
UPDATE sessmgr.session_owners SET last_issued_at = now() - interval '1 day';

-- monitor: cleanup never deletes a live session
CREATE FUNCTION public.storm_no_live_delete() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS \$\$
BEGIN
    IF OLD.revoked_at IS NULL AND OLD.expires_at > now()
       AND OLD.last_active_at + OLD.idle_timeout > now() THEN
        RAISE EXCEPTION 'a live session of % was deleted', OLD.user_id;
    END IF;
    RETURN OLD;
END
\$\$;
CREATE TRIGGER storm_no_live_delete BEFORE DELETE ON sessmgr.sessions
    FOR EACH ROW EXECUTE FUNCTION public.storm_no_live_delete();

-- monitor: the owner row of a user with a live session is never deleted
CREATE FUNCTION public.storm_owner_kept() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM sessmgr.session_owners o WHERE o.user_id = OLD.user_id)
       AND EXISTS (SELECT FROM sessmgr.sessions s
                    WHERE s.user_id = OLD.user_id AND s.revoked_at IS NULL
                      AND s.expires_at > now() AND s.last_active_at + s.idle_timeout > now()) THEN
        RAISE EXCEPTION 'the owner row of % was deleted while it had a live session', OLD.user_id;
    END IF;
    RETURN NULL;
END
\$\$;
CREATE CONSTRAINT TRIGGER storm_owner_kept AFTER DELETE ON sessmgr.session_owners
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION public.storm_owner_kept();
SQL

cat >"$WORK/issue.sql" <<'SQL'
\set u random(1, 200)
SELECT count(*) FROM sessmgr.issue('u' || :u, 'bench');
SQL
cat >"$WORK/revoke.sql" <<'SQL'
\set u random(1, 200)
SELECT sessmgr.revoke_all('u' || :u);
SQL
cat >"$WORK/validate.sql" <<'SQL'
\set k random(1, 50)
SELECT 1 / count(*) AS must_be_valid
  FROM public.storm_keepers t, sessmgr.validate(t.token) v WHERE t.k = :k;
SQL
cat >"$WORK/cleanup.sql" <<'SQL'
CALL sessmgr.cleanup(batch_size => 100);
SQL

# ---- part 1: the storm ----------------------------------------------------
rc_work=0
rc_clean=0
"$PG_BIN/pgbench" -n -c 8 -j 2 -T "$STORM_SECONDS" \
	-f "$WORK/issue.sql@5" -f "$WORK/revoke.sql@1" -f "$WORK/validate.sql@10" \
	"$DB" >"$WORK/work.out" 2>&1 &
work_pid=$!
"$PG_BIN/pgbench" -n -c 1 -T "$STORM_SECONDS" -f "$WORK/cleanup.sql" \
	"$DB" >"$WORK/clean.out" 2>&1 || rc_clean=$?
wait "$work_pid" || rc_work=$?
work_tx="$(check_pgbench workload "$WORK/work.out" "$rc_work")"
clean_runs="$(check_pgbench cleanup "$WORK/clean.out" "$rc_clean")"

read -r valid_keepers keeper_owners orphans removed owners_removed unfinished <<<"$(psql_storm -At -F ' ' <<'SQL'
SELECT (SELECT count(*) FROM public.storm_keepers t, sessmgr.validate(t.token) v),
       (SELECT count(*) FROM sessmgr.session_owners WHERE user_id LIKE 'keeper-%'),
       (SELECT count(DISTINCT a.user_id) FROM sessmgr.active_sessions a
         WHERE NOT EXISTS (SELECT FROM sessmgr.session_owners o WHERE o.user_id = a.user_id)),
       (SELECT coalesce(sum(sessions_removed), 0) FROM sessmgr.cleanup_runs),
       (SELECT coalesce(sum(owners_removed), 0) FROM sessmgr.cleanup_runs),
       (SELECT count(*) FROM sessmgr.cleanup_runs WHERE finished_at IS NULL);
SQL
)"
[[ "$valid_keepers" -eq 50 ]] || fail "only $valid_keepers of 50 keeper sessions still validate"
[[ "$keeper_owners" -eq 50 ]] || fail "only $keeper_owners of 50 keepers still have their owner row"
[[ "$orphans" -eq 0 ]] || fail "$orphans users have a live session but no owner row"
[[ "$removed" -gt 0 ]] || fail "cleanup removed no session during the storm"
[[ "$owners_removed" -gt 0 ]] || fail "cleanup removed no owner row during the storm"
[[ "$unfinished" -eq 0 ]] || fail "$unfinished cleanup runs did not finish"

# ---- part 2: the figures --------------------------------------------------
# $BACKLOG sessions that ended 8 days ago, for 50,000 users
add_backlog() {
	psql_storm <<SQL
SET session_replication_role = replica;
INSERT INTO sessmgr.sessions (id, created_at, last_active_at, expires_at, idle_timeout,
                              token_hash, user_id, revoked_at, revoke_reason)
SELECT gen_random_uuid(), now() - interval '9 days', now() - interval '8 days 1 hour',
       now() + interval '21 days', interval '1 hour', sha256(n::text::bytea),
       'bulk-' || (n % 50000), now() - interval '8 days', 'logout'
  FROM generate_series(1, $BACKLOG) n;
RESET session_replication_role;
VACUUM ANALYZE sessmgr.sessions;
SQL
}
# the last run's removed sessions and seconds
last_run() {
	psql_storm -At -F ' ' -c "
SELECT sessions_removed, round(extract(epoch FROM finished_at - started_at), 3)
  FROM sessmgr.cleanup_runs ORDER BY id DESC LIMIT 1"
}

psql_storm <<SQL
ALTER DATABASE $DB RESET ALL;
DROP TRIGGER storm_no_live_delete ON sessmgr.sessions;
DROP TRIGGER storm_owner_kept ON sessmgr.session_owners;
SQL

# alone
add_backlog
psql_storm -c 'CALL sessmgr.cleanup()' >/dev/null
read -r alone_removed alone_seconds <<<"$(last_run)"
[[ "$alone_removed" -ge "$BACKLOG" ]] ||
	fail "the large cleanup removed $alone_removed of $BACKLOG sessions"

# while 4 clients validate: 4 seconds alone, then long enough to cover the
# cleanup (it may run slower than alone)
add_backlog
measure_seconds="$(awk -v s="$alone_seconds" 'BEGIN { printf "%d", 4 + 2 * s + 2 }')"
(cd "$WORK" && "$PG_BIN/pgbench" -n -c 4 -j 2 -T "$measure_seconds" -l --log-prefix=vlog \
	-f "$WORK/validate.sql" "$DB" >"$WORK/measure.out" 2>&1) &
measure_pid=$!
sleep 4
clean_start="$(date +%s.%N)"
psql_storm -c 'CALL sessmgr.cleanup()' >/dev/null
clean_end="$(date +%s.%N)"
rc_measure=0
wait "$measure_pid" || rc_measure=$?
check_pgbench measure "$WORK/measure.out" "$rc_measure" >/dev/null
read -r bulk_removed bulk_seconds <<<"$(last_run)"
[[ "$bulk_removed" -ge "$BACKLOG" ]] ||
	fail "the large cleanup under load removed $bulk_removed of $BACKLOG sessions"

# pgbench log lines: client tx latency_us script epoch_s epoch_us.  Sort
# the validations by the time they finished: before the cleanup (after a
# second of warm-up) or while it ran.
cat "$WORK"/vlog.* | awk '{ printf "%d.%06d %d\n", $5, $6, $3 }' | sort -n >"$WORK/lat"
first="$(head -n 1 "$WORK/lat" | cut -d' ' -f1)"
last="$(tail -n 1 "$WORK/lat" | cut -d' ' -f1)"
clean_end="$(awk -v e="$clean_end" -v l="$last" 'BEGIN { printf "%.6f", (l < e) ? l : e }')"
awk -v f="$first" -v s="$clean_start" '$1 >= f + 1 && $1 < s { print $2 }' "$WORK/lat" |
	sort -n >"$WORK/lat.before"
awk -v s="$clean_start" -v e="$clean_end" '$1 >= s && $1 <= e { print $2 }' "$WORK/lat" |
	sort -n >"$WORK/lat.during"
# print: count, average, p95 (microseconds), per second over $2 seconds
summary() {
	awk -v secs="$2" '{ v[NR] = $1; sum += $1 }
		END { if (NR == 0) { print "0 0 0 0"; exit }
		      i = int(NR * 0.95); if (i < 1) i = 1
		      printf "%d %.0f %d %.0f\n", NR, sum / NR, v[i], NR / secs }' "$1"
}
before_secs="$(awk -v f="$first" -v s="$clean_start" 'BEGIN { printf "%.3f", s - f - 1 }')"
during_secs="$(awk -v s="$clean_start" -v e="$clean_end" 'BEGIN { printf "%.3f", e - s }')"
read -r before_n before_avg before_p95 before_tps <<<"$(summary "$WORK/lat.before" "$before_secs")"
read -r during_n during_avg during_p95 during_tps <<<"$(summary "$WORK/lat.during" "$during_secs")"
[[ "$before_n" -gt 0 && "$during_n" -gt 0 ]] ||
	fail "no validation logged before ($before_n) or during ($during_n) the cleanup"

elapsed=$((SECONDS - started))
echo "cleanup_storm: ok: storm ${STORM_SECONDS}s: $work_tx issue/revoke/validate transactions and" \
	"$clean_runs cleanup runs, no error; $removed sessions and $owners_removed owner rows removed," \
	"no live session or live user's owner row lost, all 50 keepers valid;" \
	"large cleanup alone: $alone_removed ended sessions in ${alone_seconds}s" \
	"($(awk -v n="$alone_removed" -v s="$alone_seconds" 'BEGIN { printf "%.0f", n / s }') rows/s);" \
	"while 4 clients validate: $bulk_removed in ${bulk_seconds}s" \
	"($(awk -v n="$bulk_removed" -v s="$bulk_seconds" 'BEGIN { printf "%.0f", n / s }') rows/s);" \
	"validate before: $before_n calls in ${before_secs}s, avg ${before_avg} us, p95 ${before_p95} us, ${before_tps}/s;" \
	"during: $during_n calls in ${during_secs}s, avg ${during_avg} us, p95 ${during_p95} us, ${during_tps}/s; ${elapsed}s"

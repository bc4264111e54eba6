#!/usr/bin/env bash
# test/pgbench/refresh_storm.sh: 50 clients refresh the same refresh token at
# the same moment (50 tabs of one browser waking up), as in the audit's
# reproduction (pgbench -n -M extended -c N -t 1 -D tok=...).  Within
# sessmgr.refresh_grace every refresh must succeed: no deadlock (40P01), no
# reuse_detected, and the session must stay live with one line of tokens:
# exactly one current token, which validates, and every superseded one
# refreshable only within the grace.
#
# Run by test/run.sh with PGHOST, PGPORT, PGUSER and PGDATABASE exported (a
# superuser) and PG_BIN set.  Creates its own database and drops it at the
# end.  Prints one result line; exits non-zero on any violation.
set -euo pipefail

# shellcheck source=test/pgbench/storm_lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/storm_lib.bash"
storm_init refresh_storm

CLIENTS=50
ROUNDS=3
started=$SECONDS

storm_create_db
psql_storm <<SQL
CREATE EXTENSION sessmgr;
-- the storm must fit in the grace window whatever the machine's load
ALTER DATABASE $DB SET sessmgr.refresh_grace = '5min';
CREATE TABLE public.storm_result (round int, status text, has_token boolean);
SQL

cat >"$WORK/refresh.sql" <<'SQL'
INSERT INTO public.storm_result
SELECT :round, r.status, r.token IS NOT NULL FROM sessmgr.refresh(:tok) r;
SQL

for ((round = 1; round <= ROUNDS; round++)); do
	# each round starts from the current token of the previous one, so later
	# rounds refresh a session that already has a previous and retired tokens
	if ((round == 1)); then
		tok="$(psql_storm -At -c "SELECT token FROM sessmgr.issue('storm_user', 'tab')")"
	else
		tok="$(psql_storm -At -c "SELECT r.token FROM sessmgr.refresh('$tok') r")"
	fi
	# -t 1 per client; every client connects first, then they all go at once
	if ! timeout 120 "$PG_BIN/pgbench" -n -M extended -c "$CLIENTS" -j 2 -t 1 \
		-D "tok=$tok" -D "round=$round" -f "$WORK/refresh.sql" "$DB" \
		>"$WORK/pgbench_$round.log" 2>&1; then
		cat "$WORK/pgbench_$round.log" >&2
		fail "round $round: pgbench failed or ran over 120 s (see its output above)"
	fi
	if grep -q 'deadlock\|40P01' "$WORK/pgbench_$round.log"; then
		cat "$WORK/pgbench_$round.log" >&2
		fail "round $round: a deadlock"
	fi
done

summary="$(psql_storm -At -F ' ' -c "
SELECT round, status, count(*) FROM public.storm_result GROUP BY 1, 2 ORDER BY 1, 2")"
echo "$summary" | sed 's/^/refresh_storm: round /'
bad="$(psql_storm -At -c "SELECT count(*) FROM public.storm_result WHERE status <> 'ok' OR NOT has_token")"
total="$(psql_storm -At -c "SELECT count(*) FROM public.storm_result")"
[[ "$total" == "$((CLIENTS * ROUNDS))" ]] || fail "$total refreshes recorded, expected $((CLIENTS * ROUNDS))"
[[ "$bad" == 0 ]] || fail "$bad of $total refreshes did not answer ok with a new token"

# one live session with one line of tokens
read -r revoked retired <<<"$(psql_storm -At -F ' ' -c "
SELECT s.revoked_at IS NOT NULL, (SELECT count(*) FROM sessmgr.retired_tokens r WHERE r.session_id = s.id)
  FROM sessmgr.sessions s WHERE s.user_id = 'storm_user'")"
[[ "$revoked" == f ]] || fail "the session was revoked"
[[ "$retired" -le 100 ]] || fail "$retired retired tokens kept, more than 100"
# the newest token is the only current one: refreshing it works, and after
# that none of the storm's tokens is current any more
live="$(psql_storm -At -c "SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = 'storm_user'")"
[[ "$live" == 1 ]] || fail "$live active sessions for the user, expected 1"
events="$(psql_storm -At -c "SELECT count(*) FROM sessmgr.session_events WHERE user_id = 'storm_user' AND event <> 'issue'")"
[[ "$events" == 0 ]] || fail "$events revoke events: the storm ended the session"

echo "refresh_storm: ok: $CLIENTS clients x $ROUNDS rounds refreshing one token at once: all ok, no deadlock, session live, $retired retired tokens kept; $((SECONDS - started))s"

#!/usr/bin/env bash
# test/demo_http.sh: the end of `make demo` - the same flow over HTTP, through the real
# PostgREST 12.0.2 (test/ensure_postgrest.sh).
#
# On the demo's cluster (PGHOST/PGPORT/SESSMGR_TMP from test/lib.sh's
# sessmgr_cluster_start; run alone, it builds, installs and starts one itself) it
# creates the database app, applies the code blocks of docs/postgrest.md
# (database setup, login function, configuration file), adds one user, starts
# PostgREST on a free loopback port and shows each curl command with its answer:
# login, a wrong password (401) until the delay (429), my_sessions, refresh,
# revoke_other_sessions, logout, and the 401 after it.
# PostgREST is stopped on exit, whatever happens.
# shellcheck disable=SC2016,SC2034  # the curl commands are printed as written, then evaluated
# shellcheck disable=SC2119  # sessmgr_cluster_start takes optional conf lines
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh

if [[ -z "${SESSMGR_TMP:-}" || -z "${PGHOST:-}" ]]; then
	sessmgr_ensure_packages
	sessmgr_build_install
	sessmgr_cluster_start
	sessmgr_psql -c 'CREATE EXTENSION IF NOT EXISTS sessmgr' >/dev/null
fi

READY_TIMEOUT=30
postgrest_bin="$(bash test/ensure_postgrest.sh)"
pgrst_dir="$SESSMGR_TMP/postgrest"
mkdir -p "$pgrst_dir"
conf="$pgrst_dir/postgrest.conf"
log="$pgrst_dir/postgrest.log"
pgrst_pid=""

# Print the first ```$2 block under "## $1" of docs/postgrest.md.
readme_block() {
	awk -v heading="## $1" -v fence="\`\`\`$2" '
		/^## / { in_sub = ($0 == heading) }
		in_sub && !done && $0 == fence { copying = 1; next }
		copying && $0 == "```" { copying = 0; done = 1 }
		copying { print }
	' docs/postgrest.md
}

stop_postgrest() {
	if [[ -n "$pgrst_pid" ]] && kill -0 "$pgrst_pid" 2>/dev/null; then
		kill -TERM "$pgrst_pid" 2>/dev/null || true
		local i
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pgrst_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pgrst_pid" 2>/dev/null || true
		wait "$pgrst_pid" 2>/dev/null || true
		sessmgr_log "http demo: PostgREST stopped"
	fi
	pgrst_pid=""
}

# EXIT trap: stop PostgREST, then let test/lib.sh stop the cluster it started (if any).
on_exit() {
	local rc=$?
	set +e
	stop_postgrest
	if [[ $rc -ne 0 && -f "$log" ]]; then
		echo "--- PostgREST's log ($log) ---" >&2
		tail -n 40 "$log" >&2
	fi
	if [[ -n "${_SESSMGR_TRAP_SET:-}" ]]; then
		(exit "$rc")
		_sessmgr_on_exit
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- docs/postgrest.md's database setup and login function -----------------------------
sessmgr_log "http demo: CREATE DATABASE app; docs/postgrest.md's database setup and login function"
for heading in 'Database setup' 'The login function'; do
	block="$(readme_block "$heading" sql)"
	if [[ -z "$block" ]]; then
		sessmgr_err "docs/postgrest.md has no sql block under \"## $heading\""
		exit 1
	fi
	if [[ "$heading" == 'Database setup' ]]; then
		sessmgr_psql -c 'CREATE DATABASE app'
	fi
	printf '%s\n' "$block" | sessmgr_psql -d app -f - >/dev/null
done
# a first delay of 30 s instead of 1 s, so that the demo's 429 cannot run out before it is shown
sessmgr_psql -d app -c "ALTER DATABASE app SET sessmgr.login_first_delay = '30s'" >/dev/null
# docs/postgrest.md's way of adding a user
sessmgr_psql -d app -v email='alice@example.com' -v password='correct horse' >/dev/null <<'SQL'
INSERT INTO api.users (email, password_hash)
VALUES (lower(:'email'), extensions.crypt(:'password', extensions.gen_salt('bf', 8)));
SQL

# --- docs/postgrest.md's configuration file ------------------------------------------------
# jwt-secret: docs/postgrest.md's psql command; db-uri: this cluster; db-tx-end uncommented
secret_query="$(readme_block 'PostgREST configuration' sh | sed -n 's/.*-c "\(SELECT [^"]*\)".*/\1/p')"
secret_line="$(sessmgr_psql -AtX -d app -c "$secret_query")"
write_config() {
	local port=$1 admin_port=$2
	readme_block 'PostgREST configuration' ini | SECRET_LINE="$secret_line" \
		DB_URI="postgres://authenticator@/app?host=$PGHOST&port=$PGPORT" perl -pe '
			s/^db-uri\s*=.*$/db-uri             = "$ENV{DB_URI}"/;
			s/^jwt-secret\s*=.*$/$ENV{SECRET_LINE}/;
			s/^#\s*(db-tx-end\s*=)/$1/;
		' >"$conf"
	cat >>"$conf" <<-EOF
		server-host        = "127.0.0.1"
		server-port        = $port
		admin-server-port  = $admin_port
		log-level          = "info"
	EOF
	chmod 600 "$conf"
	if [[ $EUID -eq 0 ]]; then
		chown postgres:postgres "$pgrst_dir" "$conf"
	fi
}

# --- start PostgREST (as postgres when root), bounded wait for /ready ------------------------
start_postgrest() {
	local attempt port admin_port deadline
	for ((attempt = 1; attempt <= 3; attempt++)); do
		port="$(_sessmgr_free_port)"
		admin_port="$(_sessmgr_free_port)"
		write_config "$port" "$admin_port"
		if [[ $EUID -eq 0 ]]; then
			(cd "$pgrst_dir" && exec runuser -u postgres -- "$postgrest_bin" "$conf") >>"$log" 2>&1 &
		else
			"$postgrest_bin" "$conf" >>"$log" 2>&1 &
		fi
		pgrst_pid=$!
		deadline=$((SECONDS + READY_TIMEOUT))
		while ((SECONDS < deadline)); do
			if ! kill -0 "$pgrst_pid" 2>/dev/null; then
				break
			fi
			if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$admin_port/ready" 2>/dev/null; then
				API="http://127.0.0.1:$port"
				sessmgr_log "http demo: PostgREST $("$postgrest_bin" --version | head -n 1) ready on $API (log: $log)"
				return 0
			fi
			sleep 0.1
		done
		if kill -0 "$pgrst_pid" 2>/dev/null; then
			sessmgr_err "PostgREST did not answer 200 on http://127.0.0.1:$admin_port/ready within ${READY_TIMEOUT}s"
			return 1
		fi
		wait "$pgrst_pid" 2>/dev/null || true
		pgrst_pid=""
		if ! grep -qi 'in use' "$log"; then
			break
		fi
	done
	sessmgr_err "PostgREST exited before answering on its admin port /ready"
	return 1
}
start_postgrest

# --- the flow, over HTTP ---------------------------------------------------------------------

# Print a curl command as written (variables unexpanded), run it, print the answer
# without the Date, Server, Transfer-Encoding and Content-Range headers, tokens
# shortened to their first and last characters, and check its HTTP status is $1. The body is kept in $ANSWER.
show() {
	local want=$1 cmd=$2 out status
	echo
	echo "\$ $cmd"
	out="$(eval "$cmd" | tr -d '\r')"
	printf '%s\n' "$out" | grep -v -i '^\(date\|server\|transfer-encoding\|content-range\):' |
		perl -pe 's/(eyJ[A-Za-z0-9_-]{8})[A-Za-z0-9_.-]+([A-Za-z0-9_-]{6})/$1…$2/g;
			s/(sessmgr_[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{54}([A-Za-z0-9_-]{6})/$1…$2/g'
	ANSWER="$(printf '%s\n' "$out" | awk 'body { print } /^$/ { body = 1 }')"
	status="$(printf '%s\n' "$out" | sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p')"
	if [[ "$status" != "$want" ]]; then
		sessmgr_err "expected HTTP $want, got ${status:-no answer}"
		exit 1
	fi
}

# a field of the JSON object in $ANSWER
field() {
	printf '%s' "$ANSWER" | FIELD=$1 perl -MJSON::PP -0777 -ne 'print decode_json($_)->{$ENV{FIELD}} // ""'
}

export API
echo
echo "=== 10. Over HTTP: the real PostgREST in front of sessmgr (docs/postgrest.md) ==="
echo "API=$API"

echo
echo "--- log in on the laptop (POST /rpc/login, the login function of docs/postgrest.md, in schema api)"
show 200 'curl -sS -i "$API/rpc/login" -H "Content-Type: application/json" -H "User-Agent: Firefox on the laptop" -H "X-Forwarded-For: 203.0.113.7" -d "{\"email\": \"alice@example.com\", \"password\": \"correct horse\"}"'
ACCESS="$(field access_token)"
REFRESH="$(field refresh_token)"
echo "ACCESS=<access_token>  REFRESH=<refresh_token>"

echo
echo "--- and on the phone"
show 200 'curl -sS -i "$API/rpc/login" -H "Content-Type: application/json" -H "User-Agent: Safari on the phone" -d "{\"email\": \"alice@example.com\", \"password\": \"correct horse\"}"'
PHONE_ACCESS="$(field access_token)"

echo
echo "--- a wrong password: 401, the same answer as an unknown email; the failure is recorded (committed)"
show 401 'curl -sS -i "$API/rpc/login" -H "Content-Type: application/json" -H "X-Forwarded-For: 198.51.100.23" -d "{\"email\": \"alice@example.com\", \"password\": \"wrong\"}"'
free="$(sessmgr_psql -AtX -d app -c "LOAD 'sessmgr'" -c 'SHOW sessmgr.login_pair_free_failures')"
echo
echo "--- $free more from that address: past sessmgr.login_pair_free_failures ($free) each failure delays the next attempt,"
echo "--- so even the right password now gets 429 with Retry-After (it is not checked)"
for ((i = 1; i <= free; i++)); do
	curl -sS -o /dev/null -w '%{http_code} ' "$API/rpc/login" -H "Content-Type: application/json" -H "X-Forwarded-For: 198.51.100.23" \
		-d '{"email": "alice@example.com", "password": "wrong"}'
done
echo
show 429 'curl -sS -i "$API/rpc/login" -H "Content-Type: application/json" -H "X-Forwarded-For: 198.51.100.23" -d "{\"email\": \"alice@example.com\", \"password\": \"correct horse\"}"'

echo
echo "--- the laptop lists alice's sessions (GET /rpc/my_sessions, schema sessmgr_api)"
show 200 'curl -sS -i "$API/rpc/my_sessions" -H "Accept-Profile: sessmgr_api" -H "Authorization: Bearer $ACCESS"'

echo
echo "--- the laptop refreshes (POST /rpc/refresh, anonymous, the refresh token in the body)"
show 200 'curl -sS -i "$API/rpc/refresh" -H "Content-Profile: sessmgr_api" -H "Content-Type: application/json" -d "{\"refresh_token\": \"$REFRESH\"}"'
ACCESS="$(field access_token)"
REFRESH="$(field refresh_token)"
echo "ACCESS=<new access_token>  REFRESH=<new refresh_token>"

echo
echo "--- the laptop signs out every other device (POST /rpc/revoke_other_sessions)"
show 200 'curl -sS -i "$API/rpc/revoke_other_sessions" -H "Content-Profile: sessmgr_api" -H "Content-Type: application/json" -H "Authorization: Bearer $ACCESS" -d "{}"'

echo
echo "--- the phone's access token is refused at once (401 from sessmgr_api.pre_request)"
show 401 'curl -sS -i "$API/rpc/my_sessions" -H "Accept-Profile: sessmgr_api" -H "Authorization: Bearer $PHONE_ACCESS"'

echo
echo "--- the laptop logs out (POST /rpc/logout): 204, the cookie cleared"
show 204 'curl -sS -i "$API/rpc/logout" -H "Content-Profile: sessmgr_api" -H "Content-Type: application/json" -H "Authorization: Bearer $ACCESS" -d "{}"'

echo
echo "--- after logout, the same access token: 401"
show 401 'curl -sS -i "$API/rpc/my_sessions" -H "Accept-Profile: sessmgr_api" -H "Authorization: Bearer $ACCESS"'
echo
echo "--- and the refresh token: 401 {\"status\": \"invalid\"}"
show 401 'curl -sS -i "$API/rpc/refresh" -H "Content-Profile: sessmgr_api" -H "Content-Type: application/json" -d "{\"refresh_token\": \"$REFRESH\"}"'

echo
sessmgr_log "http demo: done"

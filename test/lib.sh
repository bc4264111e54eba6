# shellcheck shell=bash
# test/lib.sh: shared helpers for the sessmgr shell harness (make demo, make test).
#
# Source it from a bash script running with `set -euo pipefail`:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   sessmgr_ensure_packages; sessmgr_build_install; sessmgr_cluster_start
#   sessmgr_psql -c 'SELECT 1'
# Sourcing it changes no shell options and starts nothing; the first
# sessmgr_cluster_start installs an EXIT trap (plus INT/TERM -> exit) that stops
# every cluster it started and removes their temp dirs (KEEP_TMP=1 keeps them
# when the script exits non-zero).
#
# The checkout may be unreadable for the postgres OS user (a root clone under
# /root, any mode-700 directory): nothing run as postgres reads from it, and
# the clusters live under a temp dir postgres can reach (sessmgr_tmp_base).
# Every wait is bounded: pg_ctl waits SESSMGR_PG_CTL_TIMEOUT seconds (default
# 120), and sessmgr_run_bounded gives a command a time limit and, when it runs
# out, says what it waited for and what the shared cluster's backends were doing.

if [[ -n "${_SESSMGR_LIB_LOADED:-}" ]]; then
	return 0
fi
_SESSMGR_LIB_LOADED=1

# Repository root (the directory holding the Makefile).
SESSMGR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SESSMGR_ROOT

export PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
export PG_CONFIG="$PG_BIN/pg_config"

# Debian packages the harness needs (server, headers, pg_cron, pgTAP, TAP deps;
# DBD::Pg, Crypt::JWT and pgbouncer for the TAP tests in test/t/).
SESSMGR_PACKAGES=(
	postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgtap
	libtap-parser-sourcehandler-pgtap-perl libipc-run-perl libdbd-pg-perl libcrypt-jwt-perl
	pgbouncer make gcc curl
	# PCRE2, libyaml and uap-core's rules for src/useragent.c; the YAML reader for its
	# test (test/t/060_user_agents.pl) and Python's ua_parser for its bench
	libpcre2-dev libyaml-dev uap-core libyaml-libyaml-perl python3-ua-parser
	# libmaxminddb for src/geoip.c; the MaxMind DB writer and mmdblookup for test/make_geoip_db.pl
	libmaxminddb-dev libmaxmind-db-writer-perl mmdb-bin
	# the real Prometheus postgres_exporter for test/t/070_postgres_exporter.pl (its
	# service is not needed: the test starts the binary on a loopback port of its own)
	prometheus-postgres-exporter
)

_SESSMGR_DIRS=()         # temp dirs of the clusters started by this shell
_SESSMGR_TRAP_SET=""

# Print one progress line.
sessmgr_log() {
	printf 'sessmgr: %s\n' "$*"
}

# Print an error line to stderr.
sessmgr_err() {
	printf 'sessmgr: ERROR: %s\n' "$*" >&2
}

# Run a command as root: directly when we are root, via sudo otherwise.
sessmgr_as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	else
		sudo "$@"
	fi
}

# Run a command as the OS user owning the clusters (postgres when root), from a dir it can read.
sessmgr_as_pg() {
	local cwd="${SESSMGR_TMP:-/}"
	if [[ $EUID -eq 0 ]]; then
		(cd "$cwd" && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# Print the directory to make temp dirs in: $TMPDIR, or /tmp when we are root and
# the postgres user cannot reach $TMPDIR (say TMPDIR=/root/tmp).
sessmgr_tmp_base() {
	local base="${TMPDIR:-/tmp}"
	if [[ $EUID -eq 0 && "$base" != /tmp ]] &&
		! (cd / && runuser -u postgres -- test -x "$base" -a -w "$base") 2>/dev/null; then
		sessmgr_log "TMPDIR $base is not usable by the postgres user: temp dirs go to /tmp" >&2
		base=/tmp
	fi
	printf '%s\n' "$base"
}

# Run a command with a time limit: sessmgr_run_bounded SECONDS WHAT COMMAND...
# Its status is the command's; when the limit runs out the command (and all it
# started) is stopped, a line says "gave up after N s waiting for WHAT", the
# shared cluster's busy backends are listed (query, wait event, blocking pids)
# and then terminated so that later suites are not stuck behind them; status 124.
sessmgr_run_bounded() {
	local limit="$1" what="$2" rc=0
	shift 2
	timeout --kill-after=15 "$limit" "$@" || rc=$?
	if [[ $rc -ne 124 && $rc -ne 137 ]]; then
		return "$rc"
	fi
	sessmgr_err "gave up after $limit s waiting for $what (command: $*)"
	if [[ -n "${SESSMGR_TMP:-}" && -n "${PGHOST:-}" ]]; then
		echo "--- backends of the shared cluster still busy when the time ran out ---" >&2
		"$PG_BIN/psql" -X -q -d postgres -P pager=off -c "
			SELECT pid, datname, application_name AS app, state,
			       wait_event_type || ':' || wait_event AS waiting_on,
			       pg_blocking_pids(pid) AS blocked_by,
			       round(extract(epoch FROM clock_timestamp() - query_start)) AS secs,
			       left(regexp_replace(query, '\s+', ' ', 'g'), 200) AS query
			  FROM pg_stat_activity
			 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
			   AND state <> 'idle'
			 ORDER BY query_start" >&2 2>&1 || true
		"$PG_BIN/psql" -X -q -At -d postgres -c "
			SELECT count(pg_terminate_backend(pid)) || ' backends terminated'
			  FROM pg_stat_activity
			 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" >&2 2>&1 || true
	fi
	return 124
}

# Install the missing packages of SESSMGR_PACKAGES (apt-get update only if something is missing).
sessmgr_ensure_packages() {
	local missing=() p status log
	for p in "${SESSMGR_PACKAGES[@]}"; do
		status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
		if [[ "$status" != "install ok installed" ]]; then
			missing+=("$p")
		fi
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		sessmgr_log "packages: all ${#SESSMGR_PACKAGES[@]} required packages already installed"
		return 0
	fi
	log="$(mktemp "${TMPDIR:-/tmp}/sessmgr-apt.XXXXXX")"
	sessmgr_log "packages: apt-get update (log: $log)"
	if ! sessmgr_as_root env DEBIAN_FRONTEND=noninteractive apt-get update >"$log" 2>&1; then
		sessmgr_err "apt-get update failed:"
		cat "$log" >&2
		return 1
	fi
	sessmgr_log "packages: installing ${missing[*]}"
	if ! sessmgr_as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
		sessmgr_err "apt-get install failed:"
		cat "$log" >&2
		return 1
	fi
	rm -f "$log"
	sessmgr_log "packages: installed ${#missing[@]} package(s)"
}

# Build the extension and install it into $PG_CONFIG's server (compiler output is shown).
sessmgr_build_install() {
	local make_args=(--no-print-directory -C "$SESSMGR_ROOT" PG_CONFIG="$PG_CONFIG")
	sessmgr_log "build: make PG_CONFIG=$PG_CONFIG"
	make "${make_args[@]}" -j"$(nproc 2>/dev/null || echo 2)"
	sessmgr_log "build: make PG_CONFIG=$PG_CONFIG install"
	sessmgr_as_root make "${make_args[@]}" -s install
}

# Print a TCP port in 20000-60000 on which nothing listens on 127.0.0.1.
_sessmgr_free_port() {
	local i port
	for ((i = 0; i < 200; i++)); do
		port=$(( ((RANDOM << 15) | RANDOM) % 40001 + 20000 ))
		if ! (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	sessmgr_err "no free TCP port found in 20000-60000"
	return 1
}

# Start a throwaway cluster; arguments are extra postgresql.conf lines. Exports PGHOST PGPORT PGUSER PGDATABASE SESSMGR_TMP.
sessmgr_cluster_start() {
	local dir port attempt pg_ctl_timeout="${SESSMGR_PG_CTL_TIMEOUT:-120}"
	dir="$(mktemp -d "$(sessmgr_tmp_base)/sessmgr.XXXXXX")"
	_SESSMGR_DIRS+=("$dir")
	if [[ -z "$_SESSMGR_TRAP_SET" ]]; then
		trap _sessmgr_on_exit EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
		_SESSMGR_TRAP_SET=1
	fi
	chmod 755 "$dir"
	if [[ $EUID -eq 0 ]]; then
		chown postgres:postgres "$dir"
	fi
	export SESSMGR_TMP="$dir"

	if ! sessmgr_as_pg "$PG_BIN/initdb" -D "$dir/data" --auth=trust --username=postgres \
		-E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
		sessmgr_err "initdb failed:"
		cat "$dir/initdb.log" >&2
		return 1
	fi

	port="$(_sessmgr_free_port)"
	{
		echo ""
		echo "# --- added by test/lib.sh (sessmgr harness) ---"
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = 'pg_cron'"
		echo "cron.database_name = 'postgres'"
		echo "max_connections = 100"
		echo "log_min_messages = warning"
		echo "max_prepared_transactions = 10"
		if [[ $# -gt 0 ]]; then
			echo "# --- extra lines from the caller ---"
			printf '%s\n' "$@"
		fi
	} >>"$dir/data/postgresql.conf"

	# Another process may grab the port between the probe and the bind: retry.
	for ((attempt = 1; ; attempt++)); do
		if sessmgr_as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
			-t "$pg_ctl_timeout" -s start >>"$dir/pg_ctl.log" 2>&1; then
			break
		fi
		if ((attempt < 5)) && grep -q 'could not bind\|could not create any TCP/IP sockets' \
			"$dir/server.log" 2>/dev/null; then
			port="$(_sessmgr_free_port)"
			sed -i "s/^port = [0-9]*\$/port = $port/" "$dir/data/postgresql.conf"
			continue
		fi
		sessmgr_err "cluster in $dir did not start (pg_ctl waits up to $pg_ctl_timeout s" \
			"for it to accept connections; SESSMGR_PG_CTL_TIMEOUT):"
		cat "$dir/pg_ctl.log" >&2
		tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
		return 1
	done

	export PGHOST="$dir" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
	sessmgr_log "cluster: started on 127.0.0.1:$port (socket dir and data in $dir)"
}

# Stop one cluster (default: $SESSMGR_TMP) and remove its temp dir; $2 is the exit status deciding KEEP_TMP.
sessmgr_cluster_stop() {
	local dir="${1:-${SESSMGR_TMP:-}}" rc="${2:-0}" d rest=()
	[[ -n "$dir" ]] || return 0
	local keep=0
	if [[ "$rc" -ne 0 && "${KEEP_TMP:-0}" == 1 ]]; then
		keep=1
		if [[ -f "$dir/server.log" ]]; then
			echo "--- tail of $dir/server.log ---" >&2
			tail -n 40 "$dir/server.log" >&2
		fi
	fi
	if [[ -f "$dir/data/postmaster.pid" ]]; then
		local out timeout="${SESSMGR_PG_CTL_TIMEOUT:-120}"
		if ! out="$(SESSMGR_TMP="$dir" sessmgr_as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast \
			-w -t "$timeout" -s stop 2>&1)"; then
			sessmgr_err "the cluster in $dir did not stop within $timeout s (pg_ctl -m fast):" \
				"${out:-no output}; stopping it with -m immediate"
			SESSMGR_TMP="$dir" sessmgr_as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate \
				-w -t "$timeout" -s stop >&2 2>&1 || sessmgr_err "could not stop the cluster in $dir"
		fi
	fi
	if [[ $keep -eq 1 ]]; then
		sessmgr_log "cluster: stopped, kept $dir (KEEP_TMP=1)" >&2
	else
		rm -rf "$dir"
		if [[ "$rc" -ne 0 && -n "$dir" ]]; then
			sessmgr_log "cluster: removed $dir; rerun with KEEP_TMP=1 to keep it and see the server log" >&2
		fi
	fi
	for d in ${_SESSMGR_DIRS[@]+"${_SESSMGR_DIRS[@]}"}; do
		[[ "$d" == "$dir" ]] || rest+=("$d")
	done
	_SESSMGR_DIRS=(${rest[@]+"${rest[@]}"})
	if [[ "${SESSMGR_TMP:-}" == "$dir" ]]; then
		unset SESSMGR_TMP
	fi
}

# EXIT trap: stop every cluster this shell started, keep the exit status.
_sessmgr_on_exit() {
	local rc=$? d
	set +e
	for d in ${_SESSMGR_DIRS[@]+"${_SESSMGR_DIRS[@]}"}; do
		sessmgr_cluster_stop "$d" "$rc"
	done
	exit "$rc"
}

# psql with no psqlrc, stop on the first error, quiet.
sessmgr_psql() {
	"$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q "$@"
}

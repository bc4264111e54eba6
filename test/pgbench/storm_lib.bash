# test/pgbench/storm_lib.bash: what the storm scripts share; sourced by them,
# not run (test/run.sh runs test/pgbench/*.sh only).
#
#   storm_init NAME   sets DB (a fresh name for the storm's own database),
#                     MAINT_DB, WORK (a temp dir) and PG_BIN, and makes sure
#                     both are gone when the script exits, however it exits.
#   storm_create_db   creates DB, where no statement of the storm's role waits
#                     for a lock more than STORM_LOCK_TIMEOUT (default 60s) nor
#                     runs more than STORM_STATEMENT_TIMEOUT (default 300s): a
#                     stuck storm fails with "canceling statement due to lock
#                     timeout" (or statement timeout) naming what waited.
# Then: psql_maint and psql_storm run psql on the maintenance database and
# the storm's database, stopping at the first error; fail prints
# "NAME: FAIL: ..." and exits 1.  Any other failing command is named too:
# "NAME: FAIL: <command> exited with status S in <function> (<file>:<line>), called from ...".
# shellcheck shell=bash

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
MAINT_DB="${PGDATABASE:-postgres}"

storm_init() {
	STORM_NAME="$1"
	DB="sessmgr_${STORM_NAME}_$$"
	WORK="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-${STORM_NAME//_/-}.XXXXXX")"
	STORM_FAILED_AT=""
	trap _storm_exit EXIT
	set -E # the ERR trap fires inside functions too, where set -e stops the script
	trap '_storm_err "$?" "$BASH_COMMAND"' ERR
}

# ERR trap: remember the failing command and where it was called from.
_storm_err() {
	local rc="$1" cmd="$2" i where=""
	for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
		where+="${where:+, called from }${FUNCNAME[i]} ($(basename "${BASH_SOURCE[i]}"):${BASH_LINENO[i - 1]})"
	done
	STORM_FAILED_AT="$cmd exited with status $rc in $where"
}

# The settings are the role's in DB, so that ALTER DATABASE DB RESET ALL keeps them.
storm_create_db() {
	psql_maint -c "CREATE DATABASE $DB" \
		-c "ALTER ROLE CURRENT_USER IN DATABASE $DB SET lock_timeout = '${STORM_LOCK_TIMEOUT:-60s}'" \
		-c "ALTER ROLE CURRENT_USER IN DATABASE $DB SET statement_timeout = '${STORM_STATEMENT_TIMEOUT:-300s}'"
}

psql_maint() {
	"$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -d "$MAINT_DB" "$@"
}

psql_storm() {
	"$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -d "$DB" "$@"
}

fail() {
	echo "$STORM_NAME: FAIL: $*" >&2
	exit 1
}

_storm_exit() {
	local rc=$?
	set +e
	if [[ $rc -ne 0 && -n "$STORM_FAILED_AT" ]]; then
		echo "$STORM_NAME: FAIL: $STORM_FAILED_AT" >&2
	fi
	psql_maint -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
		echo "$STORM_NAME: could not drop database $DB" >&2
	rm -rf "$WORK"
	exit "$rc"
}

# test/pgbench/storm_lib.bash: what the storm scripts share; sourced by them,
# not run (test/run.sh runs test/pgbench/*.sh only).
#
#   storm_init NAME   sets DB (a fresh name for the storm's own database),
#                     MAINT_DB, WORK (a temp dir) and PG_BIN, and makes sure
#                     both are gone when the script exits, however it exits.
# Then: psql_maint and psql_storm run psql on the maintenance database and
# the storm's database, stopping at the first error; fail prints
# "NAME: FAIL: ..." and exits 1.
# shellcheck shell=bash

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
MAINT_DB="${PGDATABASE:-postgres}"

storm_init() {
	STORM_NAME="$1"
	DB="sessmgr_${STORM_NAME}_$$"
	WORK="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-${STORM_NAME//_/-}.XXXXXX")"
	trap _storm_exit EXIT
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
	psql_maint -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
		echo "$STORM_NAME: could not drop database $DB" >&2
	rm -rf "$WORK"
	exit "$rc"
}

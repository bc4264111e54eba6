#!/usr/bin/env bash
# test/run.sh: `make test` - install what is missing, build and install sessmgr,
# start a throwaway cluster and run every test suite against it.
#
#   bash test/run.sh                     all suites
#   bash test/run.sh regress pgtap ...   only these (regress isolation pgtap pgbench tap fuzz
#                                        scripts anywhere)
#
# Each suite records pass/fail and the run keeps going; a suite whose directory
# holds no tests yet is skipped with a note. The last line is "N passed, N failed"
# (suites actually run) and the exit status is non-zero if any suite failed.
# KEEP_TMP=1 keeps the temp dirs of a failed run; PROVE_FLAGS adds prove options (tap).
# Narrowing a suite: REGRESS_TESTS="01_issue 04_cap", ISOLATION_TESTS="lock_order",
# PGTAP_TESTS='test/pgtap/settings.sql', PGBENCH_TESTS='test/pgbench/cap_storm.sh',
# TAP_TESTS='test/t/041_*.pl test/t/025_*.pl' (globs for the last three).
#
# The checkout may be one the postgres OS user cannot read (CI clones as root under
# /root): nothing that runs as postgres reads it, and the anywhere suite
# (test/check_anywhere.sh) proves it by running a subset from a mode-700 copy.
#
# Every wait is bounded.  Each suite's command gets SESSMGR_TEST_TIMEOUT seconds
# (default 900; each pgbench script on its own); when they run out the command is
# stopped, "gave up after N s waiting for ..." names it, and the shared cluster's
# busy backends are listed.  Each TAP test file gets TAP_TEST_TIMEOUT seconds
# (default 900, test/tap_exec.sh) and each psql call in it PG_TEST_TIMEOUT_DEFAULT
# (default 180, test/perl/SessmgrTapLimits.pm).  A failing suite on the shared
# cluster prints what its server logged meanwhile; a failing TAP test prints its
# failed checks, the tail of its regress_log and of its servers' logs.
# shellcheck disable=SC2119  # sessmgr_cluster_start takes optional conf lines
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh

ALL_SUITES=(regress isolation pgtap pgbench tap fuzz scripts anywhere)
SHARED_CLUSTER_SUITES=" regress isolation pgtap pgbench "
PGXS_TEST_DIR=/usr/lib/postgresql/15/lib/pgxs/src/test
TEST_TIMEOUT="${SESSMGR_TEST_TIMEOUT:-900}"

# Print the usage and exit with status $1.
usage() {
	echo "usage: bash test/run.sh [regress|isolation|pgtap|pgbench|tap|fuzz|scripts|anywhere]..." >&2
	exit "$1"
}

# Print the files matching globs (one argument, space-separated), one per line, nothing if none match.
files_matching() {
	local patterns p
	read -r -a patterns <<<"$1"
	for p in ${patterns[@]+"${patterns[@]}"}; do
		compgen -G "$p" || true
	done | sort -u
}

# Print why suite $1 is skipped, or nothing if it has tests to run.
skip_reason() {
	case "$1" in
	regress) [[ -n "$(files_matching 'sql/*.sql')" ]] || echo "no sql/*.sql yet" ;;
	isolation) [[ -n "$(files_matching 'test/isolation/specs/*.spec')" ]] ||
		echo "no test/isolation/specs/*.spec yet" ;;
	pgtap) [[ -n "$(files_matching "${PGTAP_TESTS:-test/pgtap/*.sql}")" ]] ||
		echo "no ${PGTAP_TESTS:-test/pgtap/*.sql} yet" ;;
	pgbench) [[ -n "$(files_matching "${PGBENCH_TESTS:-test/pgbench/*.sh}")" ]] ||
		echo "no ${PGBENCH_TESTS:-test/pgbench/*.sh} yet" ;;
	tap) [[ -n "$(files_matching 'test/t/*.pl')" ]] || echo "no test/t/*.pl yet" ;;
	fuzz) [[ -n "$(files_matching 'fuzz/corpus/*/*')" ]] || echo "no fuzz/corpus/*/* yet" ;;
	scripts) [[ -n "$(files_matching 'sessmgr--*.sql')" ]] || echo "no sessmgr--*.sql yet" ;;
	anywhere) [[ -f test/check_anywhere.sh ]] || echo "no test/check_anywhere.sh yet" ;;
	esac
}

# pg_regress suites from sql/ and expected/ (PGXS installcheck with REGRESS only; TAP_TESTS=
# because PGXS would run prove itself if our TAP_TESTS came in from the environment).
# Then the files of NO_PG_CRON_REGRESS again, on a second cluster without pg_cron: they
# have an expected output for each case (10_hostile_cron.out, 10_hostile_cron_1.out),
# and make installcheck must pass on a server without pg_cron too.
NO_PG_CRON_REGRESS="10_hostile_cron"
suite_regress() {
	local tests="${REGRESS_TESTS:-}" rc=0 t nocron=()
	local make_args=(--no-print-directory PG_CONFIG="$PG_CONFIG" installcheck ISOLATION= TAP_TESTS=)
	rm -f regression.diffs regression.out
	if ! sessmgr_run_bounded "$TEST_TIMEOUT" "pg_regress (sql/)" \
		make "${make_args[@]}" ${tests:+"REGRESS=$tests"}; then
		if [[ -f regression.diffs ]]; then
			echo "--- regression.diffs ---"
			cat regression.diffs
		fi
		rc=1
	fi
	for t in $NO_PG_CRON_REGRESS; do
		if [[ -f "sql/$t.sql" && (-z "$tests" || " $tests " == *" $t "*) ]]; then
			nocron+=("$t")
		fi
	done
	[[ ${#nocron[@]} -gt 0 ]] || return "$rc"
	echo "--- ${nocron[*]} again, on a cluster without pg_cron ---"
	rm -f regression.diffs regression.out
	if ! (
		_SESSMGR_TRAP_SET="" _SESSMGR_DIRS=()
		sessmgr_cluster_start "shared_preload_libraries = ''"
		sessmgr_run_bounded "$TEST_TIMEOUT" "pg_regress (${nocron[*]}, without pg_cron)" \
			make "${make_args[@]}" "REGRESS=${nocron[*]}"
	); then
		if [[ -f regression.diffs ]]; then
			echo "--- regression.diffs (without pg_cron) ---"
			cat regression.diffs
		fi
		rc=1
	fi
	return "$rc"
}

# Isolation specs from test/isolation/specs (PGXS installcheck with ISOLATION only).
suite_isolation() {
	local narrow=()
	if [[ -n "${ISOLATION_TESTS:-}" ]]; then
		narrow=("ISOLATION=$ISOLATION_TESTS")
	fi
	rm -f output_iso/regression.diffs output_iso/regression.out
	if ! sessmgr_run_bounded "$TEST_TIMEOUT" "pg_isolation_regress (test/isolation/)" \
		make --no-print-directory PG_CONFIG="$PG_CONFIG" installcheck REGRESS= TAP_TESTS= \
		${narrow[@]+"${narrow[@]}"}; then
		if [[ -f output_iso/regression.diffs ]]; then
			echo "--- output_iso/regression.diffs ---"
			cat output_iso/regression.diffs
		fi
		return 1
	fi
}

# pgTAP files from test/pgtap (PGTAP_TESTS), run by pg_prove in a fresh database sessmgr_tap.
suite_pgtap() {
	local files
	mapfile -t files < <(files_matching "${PGTAP_TESTS:-test/pgtap/*.sql}")
	sessmgr_run_bounded 120 "psql to create the database sessmgr_tap" \
		"$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -c 'SET client_min_messages = warning' \
		-c 'DROP DATABASE IF EXISTS sessmgr_tap' -c 'CREATE DATABASE sessmgr_tap'
	sessmgr_run_bounded 120 "psql to create the extensions pgtap and sessmgr in sessmgr_tap" \
		"$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -d sessmgr_tap \
		-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION sessmgr'
	sessmgr_run_bounded "$TEST_TIMEOUT" "pg_prove (${files[*]})" \
		pg_prove --psql-bin "$PG_BIN/psql" -d sessmgr_tap "${files[@]}"
}

# pgbench storm scripts test/pgbench/*.sh (PGBENCH_TESTS), each run with bash; all run even if one fails.
suite_pgbench() {
	local f files failed=0
	mapfile -t files < <(files_matching "${PGBENCH_TESTS:-test/pgbench/*.sh}")
	for f in "${files[@]}"; do
		echo "--- $f ---"
		if sessmgr_run_bounded "$TEST_TIMEOUT" "$f" bash "$f" </dev/null; then
			echo "--- $f: ok ---"
		else
			echo "--- $f: FAILED ---"
			failed=1
		fi
	done
	return "$failed"
}

# Perl TAP tests test/t/*.pl (PostgreSQL::Test::Cluster), run as postgres when we are root.
# The checkout may be unreadable for postgres (a root clone under /root, any mode-700
# directory): the tests run from a copy staged in the run's temporary directory, with
# what they need from outside the repository (the real PostgREST, the 0.1.0 library for
# the upgrade test) prepared here, each only when a selected test uses it. TAP_TESTS
# (e.g. "test/t/041_*.pl") narrows the files. Each file runs through test/tap_exec.sh
# (TAP_TEST_TIMEOUT); when files fail, their failed checks and log tails are printed.
suite_tap() {
	local files testdir rc=0 f checkout postgrest_bin release_dir failed_files name log
	mapfile -t files < <(files_matching "${TAP_TESTS:-test/t/*.pl}")
	if [[ ${#files[@]} -eq 0 ]]; then
		echo "no TAP test matches ${TAP_TESTS:-test/t/*.pl}" >&2
		return 1
	fi
	testdir="$(mktemp -d "$(sessmgr_tmp_base)/sessmgr-tap.XXXXXX")"
	chmod 755 "$testdir"
	checkout="$testdir/checkout"
	mkdir -p "$checkout"
	tar -C "$SESSMGR_ROOT" --exclude=./.git --exclude=./fuzz/build --exclude=./results \
		--exclude=./output_iso -cf - . | tar -C "$checkout" -xf -
	local envs=(
		"PATH=$PG_BIN:/usr/local/bin:/usr/bin:/bin"
		"PERL5LIB=$PGXS_TEST_DIR/perl:$checkout/test/perl"
		"PG_REGRESS=$PGXS_TEST_DIR/regress/pg_regress"
		"PG_CONFIG=$PG_CONFIG"
		"PG_BIN=$PG_BIN"
		"TESTDIR=$testdir"
		"LANG=C.UTF-8"
	)
	if grep -q POSTGREST_BIN "${files[@]}"; then
		postgrest_bin="$(sessmgr_run_bounded 600 "test/ensure_postgrest.sh (PostgREST for the TAP tests)" \
			bash test/ensure_postgrest.sh)"
		envs+=("POSTGREST_BIN=$postgrest_bin")
	fi
	if grep -q SESSMGR_RELEASE_LIB_0_1_0 "${files[@]}"; then
		release_dir="$testdir/release-0.1.0"
		sessmgr_run_bounded 600 "test/build_release.sh (the 0.1.0 library for the TAP tests)" \
			bash test/build_release.sh 0.1.0 "$release_dir"
		envs+=("SESSMGR_RELEASE_LIB_0_1_0=$release_dir/sessmgr.so")
	fi
	local v prove_flags=()
	read -r -a prove_flags <<<"${PROVE_FLAGS:-}"
	for v in PG_TEST_EXTRA PG_TEST_NOCLEAN PG_TEST_TIMEOUT_DEFAULT TAP_TEST_TIMEOUT; do
		if [[ -n "${!v:-}" ]]; then
			envs+=("$v=${!v}")
		fi
	done
	local run_as=()
	if [[ $EUID -eq 0 ]]; then
		chown -R postgres:postgres "$testdir"
		envs+=("HOME=$(getent passwd postgres | cut -d: -f6)")
		run_as=(runuser -u postgres --)
	else
		envs+=("HOME=$HOME")
	fi
	# prove's output is kept to find the failed files; the pipe keeps prove's status
	(cd "$checkout" && ${run_as[@]+"${run_as[@]}"} env -i "${envs[@]}" \
		prove --exec "bash test/tap_exec.sh" ${prove_flags[@]+"${prove_flags[@]}"} "${files[@]}") 2>&1 |
		tee "$testdir/prove.out" || rc=$?
	if [[ $rc -ne 0 ]]; then
		# the files prove reports as failed; all selected ones if it said none (a bail-out)
		mapfile -t failed_files < <(sed -n 's/^\(test\/t\/[^ ]*\.pl\) *(Wstat: .*/\1/p' "$testdir/prove.out" | sort -u)
		if [[ ${#failed_files[@]} -eq 0 ]]; then
			failed_files=("${files[@]}")
		fi
		for f in "${failed_files[@]}"; do
			name="$(basename "$f" .pl)"
			log="$testdir/tmp_check/log/regress_log_$name"
			echo "=== diagnostics of $f ==="
			if [[ -f "$log" ]]; then
				echo "--- $f: failed checks and their diagnostics (regress_log_$name) ---"
				grep -E -A 15 'not ok [0-9]|Bail out!|gave up|stopped by SIG|Looks like|^[^#]* at .* line [0-9]+\.?$' \
					"$log" | head -n 200 || true
				echo "--- $f: last 50 lines of regress_log_$name ---"
				tail -n 50 "$log"
			else
				echo "--- $f: no regress_log_$name (the test did not get to start) ---"
			fi
			for log in "$testdir"/tmp_check/log/"${name}"_*.log; do
				[[ -f "$log" ]] || continue
				echo "--- $f: last 40 lines of its server log $(basename "$log") ---"
				tail -n 40 "$log"
			done
		done
	fi
	if [[ $rc -ne 0 && "${KEEP_TMP:-0}" == 1 ]]; then
		echo "kept $testdir (KEEP_TMP=1)"
	else
		rm -rf "$testdir"
	fi
	return "$rc"
}

# The libFuzzer harnesses (fuzz/run.sh), built with ASan/UBSan, run once over their corpus.
suite_fuzz() {
	sessmgr_run_bounded "$TEST_TIMEOUT" "fuzz/run.sh replay" bash fuzz/run.sh replay
}

# Security lint of the extension scripts (test/check_scripts.sh).
suite_scripts() {
	sessmgr_run_bounded "$TEST_TIMEOUT" "test/check_scripts.sh" bash test/check_scripts.sh
}

# A quick subset of the suites and make demo from a mode-700 copy of this checkout
# (test/check_anywhere.sh).
suite_anywhere() {
	sessmgr_run_bounded "$TEST_TIMEOUT" "test/check_anywhere.sh" bash test/check_anywhere.sh
}

suites=()
if [[ $# -eq 0 ]]; then
	suites=("${ALL_SUITES[@]}")
else
	for arg in "$@"; do
		case "$arg" in
		-h | --help) usage 0 ;;
		regress | isolation | pgtap | pgbench | tap | fuzz | scripts | anywhere) suites+=("$arg") ;;
		*)
			echo "unknown suite: $arg" >&2
			usage 2
			;;
		esac
	done
fi

sessmgr_ensure_packages
sessmgr_build_install

# The shared cluster serves regress, isolation, pgtap and pgbench; tap and anywhere start
# their own clusters, fuzz and scripts need none.
for s in "${suites[@]}"; do
	if [[ "$SHARED_CLUSTER_SUITES" == *" $s "* && -z "$(skip_reason "$s")" ]]; then
		sessmgr_cluster_start
		break
	fi
done

passed=0
failed=0
failed_names=()
skipped_names=()
for s in "${suites[@]}"; do
	reason="$(skip_reason "$s")"
	if [[ -n "$reason" ]]; then
		echo "=== suite $s: SKIPPED ($reason) ==="
		skipped_names+=("$s")
		continue
	fi
	echo "=== suite $s ==="
	log_offset=""
	if [[ "$SHARED_CLUSTER_SUITES" == *" $s "* && -f "${SESSMGR_TMP:-}/server.log" ]]; then
		log_offset="$(stat -c %s "$SESSMGR_TMP/server.log")"
	fi
	set +e
	(
		set -e
		"suite_$s"
	)
	rc=$?
	set -e
	if [[ $rc -eq 0 ]]; then
		echo "=== suite $s: PASSED ==="
		passed=$((passed + 1))
	else
		if [[ -n "$log_offset" ]]; then
			echo "--- what the shared cluster logged during suite $s (last 100 lines;" \
				"$SESSMGR_TMP/server.log) ---"
			tail -c +"$((log_offset + 1))" "$SESSMGR_TMP/server.log" | tail -n 100
		fi
		echo "=== suite $s: FAILED (exit $rc) ==="
		failed=$((failed + 1))
		failed_names+=("$s")
	fi
done

echo
if [[ ${#skipped_names[@]} -gt 0 ]]; then
	echo "skipped (no tests yet): ${skipped_names[*]}"
fi
if [[ ${#failed_names[@]} -gt 0 ]]; then
	echo "failed suites: ${failed_names[*]}"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

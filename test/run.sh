#!/usr/bin/env bash
# test/run.sh: `make test` - install what is missing, build and install sessmgr,
# start a throwaway cluster and run every test suite against it.
#
#   bash test/run.sh                     all suites
#   bash test/run.sh regress pgtap ...   only these (regress isolation pgtap pgbench tap fuzz scripts)
#
# Each suite records pass/fail and the run keeps going; a suite whose directory
# holds no tests yet is skipped with a note. The last line is "N passed, N failed"
# (suites actually run) and the exit status is non-zero if any suite failed.
# KEEP_TMP=1 keeps the temp dirs of a failed run; PROVE_FLAGS adds prove options (tap).
# shellcheck disable=SC2119  # sessmgr_cluster_start takes optional conf lines
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh

ALL_SUITES=(regress isolation pgtap pgbench tap fuzz scripts)
PGXS_TEST_DIR=/usr/lib/postgresql/15/lib/pgxs/src/test

# Print the usage and exit with status $1.
usage() {
	echo "usage: bash test/run.sh [regress|isolation|pgtap|pgbench|tap|fuzz|scripts]..." >&2
	exit "$1"
}

# Print the files matching a glob, one per line, nothing if none match.
files_matching() {
	compgen -G "$1" | sort || true
}

# Print why suite $1 is skipped, or nothing if it has tests to run.
skip_reason() {
	case "$1" in
	regress) [[ -n "$(files_matching 'sql/*.sql')" ]] || echo "no sql/*.sql yet" ;;
	isolation) [[ -n "$(files_matching 'test/isolation/specs/*.spec')" ]] ||
		echo "no test/isolation/specs/*.spec yet" ;;
	pgtap) [[ -n "$(files_matching 'test/pgtap/*.sql')" ]] || echo "no test/pgtap/*.sql yet" ;;
	pgbench) [[ -n "$(files_matching 'test/pgbench/*.sh')" ]] || echo "no test/pgbench/*.sh yet" ;;
	tap) [[ -n "$(files_matching 'test/t/*.pl')" ]] || echo "no test/t/*.pl yet" ;;
	fuzz) [[ -n "$(files_matching 'fuzz/corpus/*/*')" ]] || echo "no fuzz/corpus/*/* yet" ;;
	scripts) [[ -n "$(files_matching 'sessmgr--*.sql')" ]] || echo "no sessmgr--*.sql yet" ;;
	esac
}

# pg_regress suites from sql/ and expected/ (PGXS installcheck with REGRESS only).
suite_regress() {
	rm -f regression.diffs regression.out
	if ! make --no-print-directory PG_CONFIG="$PG_CONFIG" installcheck ISOLATION=; then
		if [[ -f regression.diffs ]]; then
			echo "--- regression.diffs ---"
			cat regression.diffs
		fi
		return 1
	fi
}

# Isolation specs from test/isolation/specs (PGXS installcheck with ISOLATION only).
suite_isolation() {
	rm -f output_iso/regression.diffs output_iso/regression.out
	if ! make --no-print-directory PG_CONFIG="$PG_CONFIG" installcheck REGRESS=; then
		if [[ -f output_iso/regression.diffs ]]; then
			echo "--- output_iso/regression.diffs ---"
			cat output_iso/regression.diffs
		fi
		return 1
	fi
}

# pgTAP files from test/pgtap, run by pg_prove in a fresh database sessmgr_tap.
suite_pgtap() {
	local files
	mapfile -t files < <(files_matching 'test/pgtap/*.sql')
	sessmgr_psql -c 'SET client_min_messages = warning' \
		-c 'DROP DATABASE IF EXISTS sessmgr_tap' -c 'CREATE DATABASE sessmgr_tap'
	sessmgr_psql -d sessmgr_tap -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION sessmgr'
	pg_prove --psql-bin "$PG_BIN/psql" -d sessmgr_tap "${files[@]}"
}

# pgbench storm scripts test/pgbench/*.sh, each run with bash; all run even if one fails.
suite_pgbench() {
	local f files failed=0
	mapfile -t files < <(files_matching 'test/pgbench/*.sh')
	for f in "${files[@]}"; do
		echo "--- $f ---"
		if bash "$f" </dev/null; then
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
# the upgrade test) prepared here. TAP_TESTS (e.g. "test/t/041_*.pl") narrows the files.
suite_tap() {
	local files testdir rc=0 f checkout postgrest_bin release_dir
	mapfile -t files < <(files_matching "${TAP_TESTS:-test/t/*.pl}")
	if [[ ${#files[@]} -eq 0 ]]; then
		echo "no TAP test matches ${TAP_TESTS:-test/t/*.pl}" >&2
		return 1
	fi
	testdir="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-tap.XXXXXX")"
	chmod 755 "$testdir"
	checkout="$testdir/checkout"
	mkdir -p "$checkout"
	tar -C "$SESSMGR_ROOT" --exclude=./.git --exclude=./fuzz/build --exclude=./results \
		--exclude=./output_iso -cf - . | tar -C "$checkout" -xf -
	postgrest_bin="$(bash test/ensure_postgrest.sh)"
	release_dir="$testdir/release-0.1.0"
	bash test/build_release.sh 0.1.0 "$release_dir"
	local envs=(
		"PATH=$PG_BIN:/usr/local/bin:/usr/bin:/bin"
		"PERL5LIB=$PGXS_TEST_DIR/perl"
		"PG_REGRESS=$PGXS_TEST_DIR/regress/pg_regress"
		"PG_CONFIG=$PG_CONFIG"
		"PG_BIN=$PG_BIN"
		"TESTDIR=$testdir"
		"LANG=C.UTF-8"
		"POSTGREST_BIN=$postgrest_bin"
		"SESSMGR_RELEASE_LIB_0_1_0=$release_dir/sessmgr.so"
	)
	local v prove_flags=()
	read -r -a prove_flags <<<"${PROVE_FLAGS:-}"
	for v in PG_TEST_EXTRA PG_TEST_NOCLEAN PG_TEST_TIMEOUT_DEFAULT; do
		if [[ -n "${!v:-}" ]]; then
			envs+=("$v=${!v}")
		fi
	done
	if [[ $EUID -eq 0 ]]; then
		chown -R postgres:postgres "$testdir"
		envs+=("HOME=$(getent passwd postgres | cut -d: -f6)")
		(cd "$checkout" && runuser -u postgres -- env -i "${envs[@]}" \
			prove ${prove_flags[@]+"${prove_flags[@]}"} "${files[@]}") || rc=$?
	else
		envs+=("HOME=$HOME")
		(cd "$checkout" && env -i "${envs[@]}" \
			prove ${prove_flags[@]+"${prove_flags[@]}"} "${files[@]}") || rc=$?
	fi
	if [[ $rc -ne 0 ]]; then
		for f in "$testdir"/tmp_check/log/regress_log_* "$testdir"/tmp_check/log/*.log; do
			[[ -f "$f" ]] || continue
			echo "--- tail of $f ---"
			tail -n 60 "$f"
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
	bash fuzz/run.sh replay
}

# Security lint of the extension scripts (test/check_scripts.sh).
suite_scripts() {
	bash test/check_scripts.sh
}

suites=()
if [[ $# -eq 0 ]]; then
	suites=("${ALL_SUITES[@]}")
else
	for arg in "$@"; do
		case "$arg" in
		-h | --help) usage 0 ;;
		regress | isolation | pgtap | pgbench | tap | fuzz | scripts) suites+=("$arg") ;;
		*)
			echo "unknown suite: $arg" >&2
			usage 2
			;;
		esac
	done
fi

sessmgr_ensure_packages
sessmgr_build_install

# The shared cluster serves every suite but tap (which starts its own clusters), fuzz and scripts.
for s in "${suites[@]}"; do
	if [[ "$s" != tap && "$s" != fuzz && "$s" != scripts && -z "$(skip_reason "$s")" ]]; then
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

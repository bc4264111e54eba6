#!/usr/bin/env bash
# test/check_anywhere.sh: `make test` and `make demo` work from a checkout the
# postgres OS user cannot read (CI clones as root under /root; any mode-700
# directory).  Run by test/run.sh's anywhere suite.
#
# Copies the working tree as it is (uncommitted edits and .git included:
# test/build_release.sh builds old releases from git history; not fuzz/build
# nor test output) into a fresh mode-700 directory, checks that postgres
# really cannot read it, and runs there, as root:
#   - test/run.sh with one test of each suite that involves a server:
#     regress (ANYWHERE_REGRESS, default 01_issue), isolation
#     (ANYWHERE_ISOLATION, default lock_order), pgtap (ANYWHERE_PGTAP, default
#     test/pgtap/settings.sql), tap (ANYWHERE_TAP, default
#     test/t/041_cleanup_without_pg_cron.pl); it must end "4 passed, 0 failed";
#   - test/demo.sh (make demo), which must end "demo: done".
# Their output is shown only when they fail.  Prints one line per step with
# its time; exits non-zero on any failure.  As another user than root there is
# nothing to prove (every cluster runs as that user): it says so and passes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh

if [[ $EUID -ne 0 ]]; then
	echo "check_anywhere: not root: the clusters run as $(id -un), who can read this checkout;" \
		"nothing to prove"
	exit 0
fi

started=$SECONDS
base="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-anywhere.XXXXXX")"
trap 'rm -rf "$base"' EXIT
chmod 700 "$base"
copy="$base/checkout"

fail() {
	echo "check_anywhere: FAIL: $*" >&2
	exit 1
}

# Show a step's output when it failed.
show() {
	echo "--- output of $1 (in $copy) ---"
	cat "$2"
	echo "--- end of output of $1 ---"
}

mkdir "$copy"
tar -C . --exclude=./fuzz/build --exclude=./results --exclude=./output_iso \
	--exclude=./tmp_check --exclude=./regression.diffs --exclude=./regression.out -cf - . |
	tar -C "$copy" -xpf -
if runuser -u postgres -- test -r "$copy/Makefile" 2>/dev/null; then
	fail "postgres can read $copy/Makefile: this check would prove nothing"
fi
echo "check_anywhere: copied the checkout to $copy (mode 700, unreadable for postgres)" \
	"in $((SECONDS - started)) s"

# The copy's runs start their own clusters: nothing of this run's may leak in.
clean_env=(env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u SESSMGR_TMP -u TAP_TESTS
	-u REGRESS_TESTS -u ISOLATION_TESTS -u PGTAP_TESTS -u PROVE_FLAGS)

step=$SECONDS
rc=0
(cd "$copy" && "${clean_env[@]}" \
	REGRESS_TESTS="${ANYWHERE_REGRESS:-01_issue}" \
	ISOLATION_TESTS="${ANYWHERE_ISOLATION:-lock_order}" \
	PGTAP_TESTS="${ANYWHERE_PGTAP:-test/pgtap/settings.sql}" \
	TAP_TESTS="${ANYWHERE_TAP:-test/t/041_cleanup_without_pg_cron.pl}" \
	bash test/run.sh regress isolation pgtap tap) >"$base/run.out" 2>&1 || rc=$?
summary="$(tail -n 1 "$base/run.out")"
if [[ $rc -ne 0 || "$summary" != "4 passed, 0 failed" ]]; then
	show "test/run.sh regress isolation pgtap tap" "$base/run.out"
	fail "test/run.sh from the mode-700 copy: exit $rc, last line '$summary' (want '4 passed, 0 failed')"
fi
echo "check_anywhere: test/run.sh regress isolation pgtap tap (one test each): $summary" \
	"in $((SECONDS - step)) s"

step=$SECONDS
rc=0
(cd "$copy" && "${clean_env[@]}" bash test/demo.sh) >"$base/demo.out" 2>&1 || rc=$?
if [[ $rc -ne 0 ]] || ! grep -q '^sessmgr: demo: done$' "$base/demo.out"; then
	show "test/demo.sh" "$base/demo.out"
	fail "make demo from the mode-700 copy: exit $rc, no 'demo: done'"
fi
echo "check_anywhere: make demo (test/demo.sh): done in $((SECONDS - step)) s"
echo "check_anywhere: ok in $((SECONDS - started)) s"

#!/usr/bin/env bash
# test/tap_exec.sh FILE: run one TAP test file for test/run.sh's tap suite
# (prove --exec "bash test/tap_exec.sh"), from the staged checkout, with a time
# limit on the whole file.
#
# The test runs as `perl -MSessmgrTapLimits FILE` (test/perl/SessmgrTapLimits.pm:
# a time limit on each psql call, and INT/TERM end the test through its END
# blocks, which stop its servers).  After TAP_TEST_TIMEOUT seconds (default 900)
# it gets SIGINT, 30 s later SIGKILL; then this script says it gave up and on
# what, stops any server of the test still running (pg_ctl -m immediate on the
# data dirs under $TESTDIR/tmp_check) and exits 124.
set -uo pipefail

file="$1"
limit="${TAP_TEST_TIMEOUT:-900}"
name="$(basename "$file" .pl)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

rc=0
timeout --signal=INT --kill-after=30 "$limit" \
	perl -I"$here/perl" -MSessmgrTapLimits "$file" || rc=$?
if [[ $rc -ne 124 && $rc -ne 137 ]]; then
	exit "$rc"
fi

log="${TESTDIR:-.}/tmp_check/log/regress_log_$name"
last="$(grep -E '(^|\) )(not )?ok [0-9]+' "$log" 2>/dev/null | tail -n 1 | sed 's/^\[[^]]*\]([^)]*) //')"
message="# $file: gave up after $limit s (TAP_TEST_TIMEOUT): the test was still running;
#   the last check it reported: ${last:-none}
#   what it was doing is at the end of $log"
echo "$message" >&2
if [[ -f "$log" ]]; then
	echo "$message" >>"$log"
fi
for pid_file in "${TESTDIR:-.}"/tmp_check/t_"${name}"_*_data/pgdata/postmaster.pid; do
	[[ -f "$pid_file" ]] || continue
	datadir="$(dirname "$pid_file")"
	echo "# $file: stopping the server it left running in $datadir" >&2
	pg_ctl -D "$datadir" -m immediate -w -t 60 -s stop >&2 2>&1 || true
done
exit 124

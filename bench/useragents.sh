#!/usr/bin/env bash
# bench/useragents.sh: what sessmgr.parse_user_agent() costs, side by side with
# Python's ua_parser (Debian python3-ua-parser: the same uap-core rules, the
# reference implementation of their test suites) on the same strings, in one run.
#
#   bash bench/useragents.sh            measure, print, and write the "User agents"
#                                       section of bench/RESULTS.md (between its markers)
#   bash bench/useragents.sh --quick    one round, fewer repeats; RESULTS.md is not written
#
# The strings are the 1425 user agents of uap-core's tests/test_ua.yaml.
# Uncached: the cost of one parse (user agent, OS and device, as both sides do),
# for each string the mean of REPEATS parses of it, and the median over the
# strings; sessmgr with its cache off (sessmgr.user_agent_cache_size = 0) after
# one pass over all strings has compiled the expressions they need, called as
# SQL (one query of REPEATS calls per string, timed with clock_timestamp() in a
# PL/pgSQL loop: the call overhead of SQL is in the figure); Python with
# ua_parser's parse functions called directly (its cache bypassed), timed with
# perf_counter.  ROUNDS rounds, the sides alternating; the ratio is the median
# of the per-round ratios.  First parse: in a fresh backend that has loaded
# sessmgr (reading regexes.yaml, compiling what the string needs), against
# Python importing ua_parser (which reads regexes.yaml and compiles every
# expression) and parsing once, both in a fresh process, COLD times each.
# Cached: one query of CACHED_CALLS calls with the same user agent.
# Python is /usr/bin/python3 (Debian's modules), whatever python3 PATH finds.
# shellcheck disable=SC2016  # SQL in single quotes is meant literally
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh
# shellcheck source=bench/results_section.bash
source bench/results_section.bash

QUICK=0
for arg in "$@"; do
	case "$arg" in
	--quick) QUICK=1 ;;
	-h | --help)
		sed -n '2,8p' "$0"
		exit 0
		;;
	*)
		echo "usage: bash bench/useragents.sh [--quick]" >&2
		exit 2
		;;
	esac
done

ROUNDS=3
REPEATS=20
COLD=10
CACHED_CALLS=200000
if [[ $QUICK -eq 1 ]]; then
	ROUNDS=1
	REPEATS=3
	COLD=3
	CACHED_CALLS=20000
fi
# targets (issue 12)
T_UNCACHED=10                  # Python / sessmgr per uncached user agent, at least
T_CACHED_US=2                  # µs per cached repeat, at most
PYTHON=/usr/bin/python3
TESTS=/usr/share/uap-core/tests/test_ua.yaml
started=$SECONDS

step() {
	sessmgr_log "bench useragents [$((SECONDS - started))s]: $*"
}

q() {
	sessmgr_as_pg "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d uabench "$@"
}

sessmgr_ensure_packages
sessmgr_build_install
sessmgr_cluster_start "jit = off"

work="$SESSMGR_TMP/uabench"
sessmgr_as_pg mkdir -p "$work"
# the strings, one per line as COPY text (tabs, newlines and backslashes escaped)
"$PYTHON" - "$TESTS" >"$SESSMGR_TMP/ua.tsv" <<'PY'
import sys, yaml
cases = yaml.load(open(sys.argv[1]), Loader=yaml.CSafeLoader)["test_cases"]
for i, c in enumerate(cases, 1):
    s = c["user_agent_string"]
    s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    print(f"{i}\t{s}")
PY
chmod 644 "$SESSMGR_TMP/ua.tsv"
count="$(wc -l <"$SESSMGR_TMP/ua.tsv")"

sessmgr_as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE uabench'
step "loading $count user agents of test_ua.yaml"
q <<SQL
CREATE EXTENSION sessmgr;
CREATE SCHEMA uabench;
CREATE TABLE uabench.uas (n integer PRIMARY KEY, ua text NOT NULL);
COPY uabench.uas FROM '$SESSMGR_TMP/ua.tsv';
CREATE TABLE uabench.timings (side text, run int, n int, us float8);
-- per string: the mean wall time of one call over $REPEATS calls in one query
CREATE PROCEDURE uabench.uncached(run int, repeats int) LANGUAGE plpgsql AS \$\$
DECLARE
    r record;
    t0 timestamptz;
    got bigint;
BEGIN
    SET LOCAL sessmgr.user_agent_cache_size = 0;
    FOR r IN SELECT n, ua FROM uabench.uas ORDER BY n LOOP
        t0 := clock_timestamp();
        SELECT count(p.browser) INTO got
          FROM generate_series(1, repeats) g,
               sessmgr.parse_user_agent(CASE WHEN g > 0 THEN r.ua END) p;
        INSERT INTO uabench.timings
        VALUES ('sessmgr', run, r.n,
                extract(epoch FROM clock_timestamp() - t0) * 1e6 / repeats);
    END LOOP;
END
\$\$;
SQL

# Python's side: per string, the mean of REPEATS full parses; one line "n<TAB>us" each
py_uncached() {
	"$PYTHON" - "$TESTS" "$REPEATS" <<'PY'
import sys, time, yaml
from ua_parser import user_agent_parser as p
cases = yaml.load(open(sys.argv[1]), Loader=yaml.CSafeLoader)["test_cases"]
repeats = int(sys.argv[2])
def parse(ua):
    # what sessmgr computes: user agent, OS and device, without ua_parser's cache
    return p._ParseUserAgent(ua, {}), p._ParseOS(ua, {}), p._ParseDevice(ua, {})
for c in cases:
    parse(c["user_agent_string"])
for i, c in enumerate(cases, 1):
    ua = c["user_agent_string"]
    t0 = time.perf_counter()
    for _ in range(repeats):
        parse(ua)
    print(f"{i}\t{(time.perf_counter() - t0) * 1e6 / repeats:.3f}")
PY
}

step "uncached: $ROUNDS rounds of $count strings x $REPEATS parses per side"
# every expression the strings need compiled first (the cache is off in the procedure)
q -c "SELECT count(p.label) FROM uabench.uas u, sessmgr.parse_user_agent(u.ua) p" >/dev/null
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then
		order=(sessmgr python)
	else
		order=(python sessmgr)
	fi
	for side in "${order[@]}"; do
		if [[ $side == sessmgr ]]; then
			q -c "CALL uabench.uncached($r, $REPEATS)"
		else
			py_uncached | sed "s/^/python\t$r\t/" >"$SESSMGR_TMP/py.tsv"
			chmod 644 "$SESSMGR_TMP/py.tsv"
			q -c "COPY uabench.timings FROM '$SESSMGR_TMP/py.tsv'"
		fi
	done
done

step "first parse: $COLD fresh backends and $COLD fresh Python processes"
for ((r = 1; r <= COLD; r++)); do
	q <<SQL
LOAD 'sessmgr';
DO \$\$BEGIN PERFORM 1; END\$\$;
DO \$\$
DECLARE
    t0 timestamptz := clock_timestamp();
    label text;
BEGIN
    SELECT p.label INTO label FROM uabench.uas u, sessmgr.parse_user_agent(u.ua) p WHERE u.n = $r * 97;
    INSERT INTO uabench.timings VALUES ('sessmgr_first', $r, $r * 97,
                                        extract(epoch FROM clock_timestamp() - t0) * 1e6);
END
\$\$;
SQL
	ua="$(q -c "SELECT ua FROM uabench.uas WHERE n = $r * 97")"
	"$PYTHON" - "$ua" "$r" >>"$SESSMGR_TMP/pyfirst.tsv" <<'PY'
import sys, time
t0 = time.perf_counter()
from ua_parser import user_agent_parser as p
p.Parse(sys.argv[1])
print(f"python_first\t{sys.argv[2]}\t0\t{(time.perf_counter() - t0) * 1e6:.1f}")
PY
done
chmod 644 "$SESSMGR_TMP/pyfirst.tsv"
q -c "COPY uabench.timings FROM '$SESSMGR_TMP/pyfirst.tsv'"

step "cached: $CACHED_CALLS calls with one user agent"
cached_us="$(q <<SQL
SELECT count(*) FROM sessmgr.parse_user_agent((SELECT ua FROM uabench.uas WHERE n = 700));
SELECT clock_timestamp() AS t0 \gset
SELECT count(p.label) FROM generate_series(1, $CACHED_CALLS) g,
       sessmgr.parse_user_agent(CASE WHEN g > 0 THEN (SELECT ua FROM uabench.uas WHERE n = 700) END) p \gset
SELECT round((extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1e6 / $CACHED_CALLS)::numeric, 2);
SQL
)"
cached_us="$(tail -n 1 <<<"$cached_us")"

median() {
	q -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us)::numeric, $2) FROM uabench.timings WHERE side = '$1'"
}
# per round: the median over the strings; then the median over the rounds
round_median() {
	q -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY m)::numeric, 2)
	        FROM (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) AS m
	                FROM uabench.timings WHERE side = '$1' GROUP BY run) x"
}
sm_us="$(round_median sessmgr)"
py_us="$(round_median python)"
ratio="$(q -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.m / s.m)::numeric, 1)
                 FROM (SELECT run, percentile_cont(0.5) WITHIN GROUP (ORDER BY us) AS m
                         FROM uabench.timings WHERE side = 'sessmgr' GROUP BY run) s
                 JOIN (SELECT run, percentile_cont(0.5) WITHIN GROUP (ORDER BY us) AS m
                         FROM uabench.timings WHERE side = 'python' GROUP BY run) p USING (run)")"
sm_mean="$(q -c "SELECT round(avg(us)::numeric, 2) FROM uabench.timings WHERE side = 'sessmgr'")"
py_mean="$(q -c "SELECT round(avg(us)::numeric, 2) FROM uabench.timings WHERE side = 'python'")"
sm_p99="$(q -c "SELECT round(percentile_cont(0.99) WITHIN GROUP (ORDER BY us)::numeric, 1) FROM uabench.timings WHERE side = 'sessmgr'")"
py_p99="$(q -c "SELECT round(percentile_cont(0.99) WITHIN GROUP (ORDER BY us)::numeric, 1) FROM uabench.timings WHERE side = 'python'")"
sm_first="$(median sessmgr_first 0)"
py_first="$(median python_first 0)"
first_ratio="$(q -c "SELECT round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FROM uabench.timings WHERE side = 'python_first')::numeric
                               / (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FROM uabench.timings WHERE side = 'sessmgr_first')::numeric, 1)")"
verdict() {
	if [[ "$(q -c "SELECT $1")" == t ]]; then echo met; else echo missed; fi
}
v_uncached="$(verdict "$ratio >= $T_UNCACHED")"
v_cached="$(verdict "$cached_us < $T_CACHED_US")"
uap="$(dpkg-query -W -f='${Version}' uap-core 2>/dev/null || true)"
pyua="$(dpkg-query -W -f='${Version}' python3-ua-parser 2>/dev/null || true)"
pcre="$(dpkg-query -W -f='${Version}' libpcre2-8-0 2>/dev/null || true)"

section="$(
	cat <<EOF
<!-- useragents: written by bench/useragents.sh; the rest of this file by bench/run.sh -->
## User agents: sessmgr.parse_user_agent() against Python's ua_parser

Written by \`bash bench/useragents.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $(git rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n "$(git status --porcelain -- src 2>/dev/null)" ]] && echo ' (with uncommitted changes to src/)'), uap-core ${uap:-?}, python3-ua-parser ${pyua:-?} (/usr/bin/python3), PCRE2 ${pcre:-?}, $(nproc) CPUs.
The $count user agents of uap-core's tests/test_ua.yaml; one parse is user agent,
OS and device on both sides. Uncached: per string the mean of $REPEATS parses, the
median over the strings, median of $ROUNDS interleaved rounds; sessmgr as SQL calls
with its cache off once the strings' expressions are compiled (the SQL call overhead
is in the figure), Python calling ua_parser's parse functions directly.

| measurement | sessmgr | Python ua_parser | ratio | target |
|---|---|---|---|---|
| uncached, per user agent (median) | $sm_us µs | $py_us µs | ${ratio}x faster | ≥ ${T_UNCACHED}x: $v_uncached |
| uncached, mean / p99 over all rounds | $sm_mean / $sm_p99 µs | $py_mean / $py_p99 µs | | |
| first parse in a fresh process (sessmgr: backend after \`LOAD 'sessmgr'\`; Python: import and parse), median of $COLD | $sm_first µs | $py_first µs | ${first_ratio}x faster | |
| cached repeat, per call ($CACHED_CALLS calls of one user agent in one query) | $cached_us µs | | | < ${T_CACHED_US} µs: $v_cached |

sessmgr's first parse reads regexes.yaml (libyaml) and compiles, with PCRE2's JIT,
only the expressions whose literals occur in the string; Python's import compiles
all of them. Wall-clock times on a shared machine: the ratios are what count.
<!-- /useragents -->
EOF
)"
echo
echo "$section"

if [[ $QUICK -eq 1 ]]; then
	step "--quick: bench/RESULTS.md not written"
	exit 0
fi
bench_write_section useragents "$section"
step "wrote the User agents section of bench/RESULTS.md"

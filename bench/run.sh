#!/usr/bin/env bash
# bench/run.sh: `make bench` - install what is missing, build and install sessmgr,
# start a throwaway cluster, load sessions, run every measurement side by side with
# its baseline, print the ratios and write bench/RESULTS.md.
#
#   bash bench/run.sh                  100k and 1M sessions (about 10 minutes on 2 cores)
#   bash bench/run.sh --scale-10m      also 10M sessions (shared_buffers 8GB; about 25 minutes)
#   bash bench/run.sh --quick          tiny sizes and short runs, to try the suite out
#                                      (the figures mean nothing; RESULTS.md is not written)
#   make bench BENCH_ARGS=--scale-10m
#
# Every comparison runs its two sides interleaved (A B, B A, ...: the order
# alternates every round) in the same cluster at the same time, and the
# verdict uses the median of the per-round ratios: on a shared, noisy machine the
# ratios are what count, not the absolute figures.  The baselines are in
# bench/baselines.sql, the pgbench scripts in bench/pgbench/.
# KEEP_TMP=1 keeps the cluster of a failed run.
# shellcheck disable=SC2016  # SQL in single quotes is meant literally
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh

usage() {
	echo "usage: bash bench/run.sh [--scale-10m] [--quick]" >&2
	exit "$1"
}

SCALE_10M=0
QUICK=0
for arg in "$@"; do
	case "$arg" in
	--scale-10m) SCALE_10M=1 ;;
	--quick) QUICK=1 ;;
	-h | --help) usage 0 ;;
	*) usage 2 ;;
	esac
done

# ---- sizes and durations ----
SCALES=(100000 1000000)        # sessions; validate is measured at each
MAIN_SCALE=1000000             # where everything else is measured
SAMPLE=200000                  # tokens per in-query measurement and pgbench sample
JWT_SAMPLE=50000               # access tokens per JWT measurement
ISSUE_CALLS=20000              # issues in the one-query issue measurement
ROUNDS=5                       # in-query rounds per side
PGB_ROUNDS=4                   # pgbench rounds per side (even: as many A B as B A)
PGB_SECS=10                    # seconds per pgbench run
CLIENTS=8
THREADS=2
STORM_CLIENTS=32
STORM_SECS=10
ENDED=1000000                  # ended sessions for cleanup to remove
CLEANUP_IDLE_SECS=15
SHARED_BUFFERS=2GB
if [[ $SCALE_10M -eq 1 ]]; then
	SCALES+=(10000000)
	SHARED_BUFFERS=8GB
fi
if [[ $QUICK -eq 1 ]]; then
	SCALES=(10000 100000)
	MAIN_SCALE=100000
	SAMPLE=20000
	JWT_SAMPLE=5000
	ISSUE_CALLS=2000
	ROUNDS=3
	PGB_ROUNDS=2
	PGB_SECS=3
	STORM_SECS=3
	ENDED=100000
	CLEANUP_IDLE_SECS=5
fi
TOUCH_INTERVAL=50min           # bench/baselines.sql's baselines hard-code the same
CAP=15                         # sessmgr.max_sessions, the default

# ---- targets (issue 5) ----
T_VALIDATE_FLOOR=1.25          # validate / floor, at most
T_VALIDATE_PLPGSQL=1.8         # plpgsql / validate, at least
T_VALIDATE_TPS=0.9             # validate tps / floor tps, at least
T_VERIFY=15                    # plpgsql verify / sessmgr verify, at least
T_PRE_REQUEST=1.3              # per-request cost / floor cost, at most
T_ISSUE=0.5                    # issue tps / insert tps, at least
T_CLEANUP_P99=2                # p99 during cleanup / idle p99, at most
T_CLEANUP_LOCK_MS=200          # longest cleanup transaction, at most
T_SCALE=1.5                    # validate per call, largest / smallest scale, at most

BENCH_CONF=(
	"shared_buffers = $SHARED_BUFFERS"
	"effective_cache_size = 16GB"
	"work_mem = 64MB"
	"maintenance_work_mem = 1GB"
	"max_wal_size = 16GB"
	"checkpoint_timeout = 30min"
	"jit = off"
	"log_min_messages = log"
	"log_lock_waits = on"
	"deadlock_timeout = 200ms"
)
# Per-session settings of the in-query measurements: one index probe per
# token on both sides (see the "Method" section of RESULTS.md).
INQUERY_SETTINGS="SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_memoize = off; SET max_parallel_workers_per_gather = 0;"

DB=bench
WORK=""
started=$SECONDS
RESULT_ROWS=()                 # markdown rows of the summary table
NOTES=()                       # paragraphs for RESULTS.md
ROW_VERDICTS=()

bpsql() {
	sessmgr_psql -d "$DB" "$@"
}

# One value from one query.
bval() {
	bpsql -At -c "$1"
}

step() {
	sessmgr_log "bench [$((SECONDS - started))s]: $*"
}

fail() {
	sessmgr_err "bench: $*"
	exit 1
}

# Add a row to the summary: measurement, sessmgr, baseline, ratio, target, verdict.
add_row() {
	RESULT_ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |")
	ROW_VERDICTS+=("$6")
	printf 'bench: %-58s %-26s %-30s %-10s %-12s %s\n' "$1" "$2" "$3" "$4" "$5" "$6"
}

# ---- in-query measurements ----

# Print one bench.clock() call.
clock_sql() {
	local measure="$1" label="$2" run="$3" calls="$4" query="$5"
	printf 'SELECT bench.clock(%s, %s, %d, %d, $q$%s$q$);\n' \
		"'$measure'" "'$label'" "$run" "$calls" "$query"
}

# inquery MEASURE CALLS LABEL QUERY [LABEL QUERY]...: one warm-up run of each
# query, then ROUNDS rounds of all of them, the order reversed every other
# round, in one session; bench.clock() checks each count equals CALLS.
inquery() {
	local measure="$1" calls="$2" r i
	shift 2
	local labels=() queries=()
	while (($#)); do
		labels+=("$1")
		queries+=("$2")
		shift 2
	done
	{
		echo "$INQUERY_SETTINGS"
		for i in "${!labels[@]}"; do
			clock_sql "$measure" "${labels[i]}" 0 "$calls" "${queries[i]}"
		done
		for ((r = 1; r <= ROUNDS; r++)); do
			if ((r % 2)); then
				for ((i = 0; i < ${#labels[@]}; i++)); do
					clock_sql "$measure" "${labels[i]}" "$r" "$calls" "${queries[i]}"
				done
			else
				for ((i = ${#labels[@]} - 1; i >= 0; i--)); do
					clock_sql "$measure" "${labels[i]}" "$r" "$calls" "${queries[i]}"
				done
			fi
		done
	} | bpsql >/dev/null
}

# Median cost per call of a label, in microseconds, formatted.
us_per_call() {
	bval "SELECT round((bench.median_ms('$1', '$2') * 1000 / $3)::numeric, 2)"
}

# Median of the per-round ratios a / b, formatted.
ratio_ms() {
	bval "SELECT round(bench.median_ratio_ms('$1', '$2', '$3')::numeric, 2)"
}

# ---- pgbench measurements ----

# pgbench_pair MEASURE CLIENTS SECS LABEL_A SCRIPT_A LABEL_B SCRIPT_B [pgbench options]:
# PGB_ROUNDS rounds of A then B, or B then A every other round (prepared
# statements), tps into bench.tps.
pgbench_pair() {
	local measure="$1" clients="$2" secs="$3" la="$4" sa="$5" lb="$6" sb="$7" r label script order
	shift 7
	for ((r = 1; r <= PGB_ROUNDS; r++)); do
		# A B, then B A: a drift in the machine's load during a round does
		# not always favour the same side
		if ((r % 2)); then order=("$la" "$lb"); else order=("$lb" "$la"); fi
		for label in "${order[@]}"; do
			if [[ "$label" == "$la" ]]; then script="$sa"; else script="$sb"; fi
			run_pgbench "$measure" "$label" "$r" "$clients" "$secs" "$script" "$@"
		done
	done
}

# One pgbench run; records its tps (without connection time) and fails on any
# failed transaction.
run_pgbench() {
	local measure="$1" label="$2" run="$3" clients="$4" secs="$5" script="$6" out tps failed
	shift 6
	out="$WORK/pgbench-$measure-$label-$run.out"
	out="${out// /_}"
	if ! "$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$THREADS" -T "$secs" \
		-D sample="$SAMPLE" -D nusers="$((MAIN_SCALE / 5))" -f "$script" "$@" "$DB" >"$out" 2>&1; then
		cat "$out" >&2
		fail "pgbench ($measure, $label) failed"
	fi
	tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")"
	failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
	if [[ -z "$tps" ]]; then
		cat "$out" >&2
		fail "could not read the pgbench report ($measure, $label)"
	fi
	if [[ "${failed:-0}" -ne 0 ]]; then
		cat "$out" >&2
		fail "pgbench ($measure, $label): $failed failed transactions"
	fi
	bval "INSERT INTO bench.tps VALUES ('$measure', '$label', $run, $tps)" >/dev/null
	step "  $measure / $label, round $run: $tps tps"
}

# ---- data ----

# Bring sessmgr.sessions up to $1 live sessions (from $2 loaded before).
load_sessions() {
	local to="$1" from="$2"
	step "loading sessions $((from + 1)) to $to"
	bpsql -v lo="$((from + 1))" -v hi="$to" -f bench/load.sql
	bpsql -c 'VACUUM (ANALYZE) sessmgr.sessions' -c 'VACUUM (ANALYZE) sessmgr.session_owners'
}

# Draw the sample for $1 loaded sessions, warm the cache, checkpoint.
prepare_sample() {
	step "sampling $SAMPLE tokens of $1 sessions"
	bpsql -v nsessions="$1" -v sample="$SAMPLE" -v jwt_sample="$JWT_SAMPLE" -f bench/sample.sql
	local n
	n="$(bval 'SELECT count(*) FROM bench.tokens')"
	[[ "$n" -eq "$SAMPLE" ]] || fail "the sample has $n tokens, not $SAMPLE"
	warm_cache
}

warm_cache() {
	bpsql -At >/dev/null <<-'SQL'
		SELECT pg_prewarm(c.oid) FROM pg_class c
		 WHERE c.relnamespace IN ('sessmgr'::regnamespace, 'bench'::regnamespace)
		   AND c.relkind IN ('r', 'i');
		CHECKPOINT;
	SQL
}

# Heap (with TOAST, FSM, VM) and index bytes per session.
bytes_per_session() {
	bval "SELECT round(pg_table_size('sessmgr.sessions') / count(*)::numeric) || ' + '
	           || round(pg_indexes_size('sessmgr.sessions') / count(*)::numeric) || ' = '
	           || round(pg_total_relation_size('sessmgr.sessions') / count(*)::numeric)
	        FROM sessmgr.sessions"
}

# ---- the queries ----

Q_SCAN='SELECT count(t.id) FROM bench.tokens t'
Q_FLOOR='SELECT count(x.user_id) FROM bench.tokens t CROSS JOIN LATERAL (SELECT s.id, s.user_id, s.expires_at FROM sessmgr.sessions s WHERE s.id = t.id OFFSET 0) x'
Q_VALIDATE='SELECT count(v.user_id) FROM bench.tokens t CROSS JOIN LATERAL sessmgr.validate(t.token) v'
Q_PLPGSQL='SELECT count(v.user_id) FROM bench.tokens t CROSS JOIN LATERAL bench.plpgsql_validate(t.token) v'

# ===========================================================================

sessmgr_ensure_packages
sessmgr_build_install

SO_BUILT="$(sha256sum "$SESSMGR_ROOT/sessmgr.so" | cut -d' ' -f1)"
SO_INSTALLED_PATH="$("$PG_CONFIG" --pkglibdir)/sessmgr.so"
so_installed() {
	sha256sum "$SO_INSTALLED_PATH" | cut -d' ' -f1
}
[[ "$(so_installed)" == "$SO_BUILT" ]] || fail "the installed sessmgr.so is not the one just built"

sessmgr_cluster_start "${BENCH_CONF[@]}"
WORK="$SESSMGR_TMP/work"
mkdir -p "$WORK"
chmod 777 "$WORK"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

step "creating database $DB"
sessmgr_psql -c "CREATE DATABASE $DB"
bpsql -c "ALTER DATABASE $DB SET sessmgr.touch_interval = '$TOUCH_INTERVAL'"
bpsql -c 'CREATE EXTENSION sessmgr' -c 'CREATE EXTENSION pgcrypto' -c 'CREATE EXTENSION pg_prewarm'
bpsql -f bench/baselines.sql
# The baselines agree with sessmgr: its token and access token pass them, and
# the SQL signer gives its access token byte for byte.
check="$(bval "SELECT bench.jwt_sign(convert_from(bench.base64url_decode(split_part(i.access_token, '.', 2)), 'UTF8'),
                                      k.kid, k.secret) = i.access_token
               AND bench.plpgsql_verify_access_token(i.access_token) IS NOT NULL
               AND (SELECT count(*) FROM bench.plpgsql_validate(i.token)) = 1
          FROM sessmgr.issue('bench-check') i, sessmgr.signing_keys k
         WHERE k.retired_at IS NULL")"
[[ "$check" == t ]] || fail "the baselines do not agree with sessmgr on a token it issued"

# ---- scales: validate per call at each number of sessions ----
loaded=0
declare -A SCALE_US SCALE_FLOOR_US SCALE_BYTES
for scale in "${SCALES[@]}"; do
	load_sessions "$scale" "$loaded"
	loaded=$scale
	prepare_sample "$scale"
	SCALE_BYTES[$scale]="$(bytes_per_session)"

	if [[ "$scale" -eq "$MAIN_SCALE" ]]; then
		# ---- validate in one query, with both baselines ----
		step "validate in one query: $ROUNDS rounds of $SAMPLE calls (scan, floor, validate, PL/pgSQL)"
		inquery "validate" "$SAMPLE" \
			scan "$Q_SCAN" floor "$Q_FLOOR" validate "$Q_VALIDATE" plpgsql "$Q_PLPGSQL"
		m="validate"

		bpsql -At >"$WORK/plans.txt" <<-SQL
			$INQUERY_SETTINGS
			\\echo '-- the floor'
			EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, COSTS OFF) $Q_FLOOR;
			\\echo '-- sessmgr.validate'
			EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, COSTS OFF) $Q_VALIDATE;
		SQL

		# ---- access tokens: verify and sign in one query ----
		step "access tokens in one query: $ROUNDS rounds of $JWT_SAMPLE verifications and signatures"
		inquery "verify" "$JWT_SAMPLE" \
			sessmgr "SELECT count(sessmgr.verify_access_token(t.jwt)) FROM bench.jwt_tokens t" \
			plpgsql "SELECT count(bench.plpgsql_verify_access_token(t.jwt)) FROM bench.jwt_tokens t" \
			signature "SELECT count(*) FROM bench.jwt_tokens t WHERE bench.jwt_signature_ok(t.jwt, (SELECT secret FROM sessmgr.signing_keys WHERE retired_at IS NULL ORDER BY signs_from DESC LIMIT 1))"
		inquery "sign" "$JWT_SAMPLE" \
			plpgsql "SELECT count(bench.plpgsql_sign_access_token(t.user_id, t.id, t.token_gen, t.expires_at)) FROM bench.jwt_tokens t"
	fi

	if [[ "$scale" -eq "$MAIN_SCALE" ]]; then
		scale_measure=validate
	else
		scale_measure="scale-$scale"
		step "validate at $scale sessions: $ROUNDS rounds of $SAMPLE calls (floor, validate)"
		inquery "$scale_measure" "$SAMPLE" floor "$Q_FLOOR" validate "$Q_VALIDATE"
	fi
	SCALE_US[$scale]="$(us_per_call "$scale_measure" validate "$SAMPLE")"
	SCALE_FLOOR_US[$scale]="$(us_per_call "$scale_measure" floor "$SAMPLE")"

	if [[ "$scale" -eq "$MAIN_SCALE" ]]; then
		# ---- pgbench: validate, the pre-request check ----
		step "validate through pgbench: $PGB_ROUNDS rounds of ${PGB_SECS}s per side, $CLIENTS clients"
		pgbench_pair "validate-tps" "$CLIENTS" "$PGB_SECS" \
			validate bench/pgbench/validate.sql floor bench/pgbench/validate_bare.sql
		step "pre-request check through pgbench: $PGB_ROUNDS rounds of ${PGB_SECS}s per side"
		pgbench_pair "pre-request" "$CLIENTS" "$PGB_SECS" \
			pre_request bench/pgbench/pre_request.sql floor bench/pgbench/pre_request_bare.sql

		# ---- issue ----
		step "copying sessmgr.sessions for the INSERT baseline"
		bpsql <<-'SQL'
			CREATE TABLE bench.sessions_copy (LIKE sessmgr.sessions INCLUDING ALL);
			INSERT INTO bench.sessions_copy SELECT * FROM sessmgr.sessions;
			VACUUM (ANALYZE) bench.sessions_copy;
		SQL
		warm_cache
		step "issue in one query: $ROUNDS rounds of $ISSUE_CALLS calls (issue, INSERT)"
		inquery "issue-1q" "$ISSUE_CALLS" \
			issue "SELECT count(*) FROM generate_series(0, $ISSUE_CALLS - 1) g CROSS JOIN LATERAL sessmgr.issue('iq' || g, 'laptop', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', '203.0.113.10', 'Berlin', false, '{\"app\": \"web\"}') i" \
			insert "WITH i AS (INSERT INTO bench.sessions_copy (id, token_hash, created_at, last_active_at, idle_timeout, expires_at, remember, user_id, device_name, user_agent, ip, location, metadata, token_gen) SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())), now(), now(), interval '1 hour', now() + interval '1 day', false, 'iq' || g, 'laptop', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', '203.0.113.10', 'Berlin', '{\"app\": \"web\"}', (random() * 9e18)::bigint FROM generate_series(0, $ISSUE_CALLS - 1) g RETURNING 1) SELECT count(*) FROM i"
		step "issue through pgbench: $PGB_ROUNDS rounds of ${PGB_SECS}s per side, $CLIENTS clients, synchronous_commit = off"
		PGOPTIONS="-c synchronous_commit=off" pgbench_pair "issue" "$CLIENTS" "$PGB_SECS" \
			issue bench/pgbench/issue.sql insert bench/pgbench/issue_insert.sql

		# ---- the sign cost inside issue, by profile ----
		SIGN_SHARE=""
		if perf record -q -e cpu-clock -o "$WORK/perf-probe.data" true >/dev/null 2>&1; then
			step "profiling issue for the share of access-token signing"
			PGAPPNAME=bench_sign bpsql -c 'SELECT pg_sleep(1)' \
				-c "SELECT count(*) FROM generate_series(0, $ISSUE_CALLS - 1) g CROSS JOIN LATERAL sessmgr.issue('ip' || g, 'laptop') i" >/dev/null &
			sign_psql=$!
			pid=""
			for _ in $(seq 50); do
				pid="$(bval "SELECT pid FROM pg_stat_activity WHERE application_name = 'bench_sign'")"
				[[ -n "$pid" ]] && break
				sleep 0.05
			done
			if [[ -n "$pid" ]]; then
				perf record -q -e cpu-clock -F 2999 --call-graph dwarf,16384 -p "$pid" \
					-o "$WORK/perf-issue.data" >/dev/null 2>&1 &
				perf_pid=$!
				wait "$sign_psql"
				kill -INT "$perf_pid" 2>/dev/null || true
				wait "$perf_pid" 2>/dev/null || true
				perf report -i "$WORK/perf-issue.data" --children --stdio --sort symbol \
					-g none --percent-limit 0 2>/dev/null >"$WORK/perf-issue.txt" || true
				SIGN_SHARE="$(awk '$4 == "SessmgrJwtSign" { sub("%", "", $1); print $1; exit }' "$WORK/perf-issue.txt")"
			else
				wait "$sign_psql"
			fi
		fi

		# ---- issue storm ----
		step "issue storm: $STORM_CLIENTS clients on one user for ${STORM_SECS}s, cap $CAP"
		bpsql <<-'SQL'
			CREATE CONSTRAINT TRIGGER bench_storm_monitor
			    AFTER INSERT ON sessmgr.sessions
			    DEFERRABLE INITIALLY DEFERRED
			    FOR EACH ROW WHEN (NEW.user_id = 'storm-user')
			    EXECUTE FUNCTION bench.storm_count();
		SQL
		out="$WORK/pgbench-storm.out"
		"$PG_BIN/pgbench" -n -c "$STORM_CLIENTS" -j "$THREADS" -T "$STORM_SECS" \
			-f bench/pgbench/storm.sql "$DB" >"$out" 2>&1 || {
			cat "$out" >&2
			fail "pgbench (storm) failed"
		}
		bpsql -c 'DROP TRIGGER bench_storm_monitor ON sessmgr.sessions'
		STORM_TX="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")"
		STORM_TPS="$(sed -n 's/^tps = \([0-9]*\).* (without initial connection time)$/\1/p' "$out")"
		read -r STORM_COMMITS STORM_MAX STORM_OVER STORM_ACTIVE STORM_ROWS <<<"$(bval "
			SELECT (SELECT count(*) FROM bench.storm_counts),
			       (SELECT coalesce(max(n), -1) FROM bench.storm_counts),
			       (SELECT count(*) FROM bench.storm_counts WHERE n > $CAP),
			       (SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = 'storm-user'),
			       (SELECT count(*) FROM sessmgr.sessions WHERE user_id = 'storm-user')" | tr '|' ' ')"
		[[ "$STORM_COMMITS" -eq "$STORM_TX" && "$STORM_ROWS" -eq "$STORM_TX" ]] ||
			fail "storm: pgbench committed $STORM_TX issues, the monitor saw $STORM_COMMITS, the table has $STORM_ROWS"
	fi
done

# ---- cleanup of ended sessions while validate runs ----
CLEANUP_KIND="$(bval "SELECT prokind FROM pg_proc WHERE pronamespace = 'sessmgr'::regnamespace AND proname = 'cleanup' LIMIT 1")"
CLEANUP_DONE=0
if [[ -n "$CLEANUP_KIND" ]]; then
	step "cleanup: loading $ENDED ended sessions"
	bpsql -v count="$ENDED" -f bench/load_ended.sql
	bpsql -c 'VACUUM (ANALYZE) sessmgr.sessions' -c 'VACUUM (ANALYZE) sessmgr.session_owners'
	warm_cache
	ended_before="$(bval "SELECT count(*) FROM sessmgr.sessions WHERE user_id LIKE 'e%'")"
	# validate alone, with per-transaction latencies, in 5 s runs like below
	# (each run's new connections pay their first calls' setup in both cases)
	step "cleanup: validate alone for ${CLEANUP_IDLE_SECS}s"
	# 5 s of validate through pgbench, latencies logged as $WORK/$1.*
	validate_5s() {
		(cd "$WORK" && "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$THREADS" -T 5 \
			-D sample="$SAMPLE" -l --log-prefix="$1" -f "$SESSMGR_ROOT/bench/pgbench/validate.sql" "$DB" \
			>"$WORK/pgbench-$1.out" 2>&1) || {
			cat "$WORK/pgbench-$1.out" >&2
			fail "pgbench ($2) failed"
		}
	}
	for ((chunk = 1; chunk * 5 <= CLEANUP_IDLE_SECS; chunk++)); do
		validate_5s "idle$chunk" "validate alone"
	done
	# cleanup, its transactions watched, while validate runs in 5 s chunks
	step "cleanup: CALL sessmgr.cleanup() while validate runs"
	lines_before="$(wc -l <"$SESSMGR_TMP/server.log")"
	bpsql -c "CALL bench.watch_transactions('bench_cleanup', 3600)" &
	watch_pid=$!
	if [[ "$CLEANUP_KIND" == p ]]; then cleanup_sql='CALL sessmgr.cleanup()'; else cleanup_sql='SELECT sessmgr.cleanup()'; fi
	cleanup_t0="$(date +%s.%N)"
	PGAPPNAME=bench_cleanup PGOPTIONS="-c client_min_messages=debug1" bpsql -c "$cleanup_sql" >"$WORK/cleanup.out" 2>&1 &
	cleanup_pid=$!
	chunk=0
	while kill -0 "$cleanup_pid" 2>/dev/null; do
		chunk=$((chunk + 1))
		validate_5s "during$chunk" "validate during cleanup"
	done
	wait "$cleanup_pid" || {
		cat "$WORK/cleanup.out" >&2
		fail "sessmgr.cleanup failed"
	}
	cleanup_t1="$(date +%s.%N)"
	wait "$watch_pid" || true
	ended_after="$(bval "SELECT count(*) FROM sessmgr.sessions WHERE user_id LIKE 'e%'")"
	CLEANUP_SECS="$(awk -v a="$cleanup_t0" -v b="$cleanup_t1" 'BEGIN { printf "%.1f", b - a }')"
	CLEANUP_REMOVED=$((ended_before - ended_after))
	p99() {
		awk -v t0="${2:-0}" -v t1="${3:-1e18}" '{ t = $5 + $6 / 1e6; if (t >= t0 && t <= t1) print $3 }' "${@:4}" |
			sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } i = int(NR * 0.99); if (i < 1) i = 1; printf "%.0f %d\n", a[i], NR }'
	}
	read -r IDLE_P99 IDLE_N <<<"$(p99 idle 0 1e18 "$WORK"/idle*.[0-9]*)"
	read -r BUSY_P99 BUSY_N <<<"$(p99 during "$cleanup_t0" "$cleanup_t1" "$WORK"/during*.[0-9]*)"
	read -r LOCK_MS LOCK_CPU_MS LOCK_WAIT_MS XACTS XACT_P50_MS LOCK_NTH XACT_CPU_MAX XACT_P99_MS XACT_P999_MS XACT_OVER <<<"$(bval "
		SELECT round(w.open_ms), round(w.cpu_ms), round(w.wait_ms), a.n, round(a.p50), w.nth, round(a.cpu_max),
		       round(a.p99), round(a.p999), a.over
		  FROM (SELECT *, row_number() OVER (ORDER BY xact_start) AS nth
		          FROM bench.watched_transactions) w,
		       (SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY open_ms) AS p50,
		               percentile_cont(0.99) WITHIN GROUP (ORDER BY open_ms) AS p99,
		               percentile_cont(0.999) WITHIN GROUP (ORDER BY open_ms) AS p999,
		               count(*) FILTER (WHERE open_ms > $T_CLEANUP_LOCK_MS) AS over,
		               max(cpu_ms) AS cpu_max
		          FROM bench.watched_transactions) a
		 ORDER BY w.open_ms DESC LIMIT 1" | tr '|' ' ')"
	# the cleanup's own account of its batches (DEBUG1): the slowest, and where
	read -r OWN_N OWN_MAX OWN_MAX_CPU OWN_MAX_WHERE <<<"$(awk '
		/sessmgr cleanup: pass over/ { pass = $0; sub(/.*pass over /, "", pass); sub(/,.*/, "", pass); k = 0; next }
		/sessmgr cleanup: transaction took/ {
			line = $0; sub(/.*took /, "", line); split(line, f, " ")
			cpu = $0; sub(/.*\(/, "", cpu); split(cpu, c, " ")
			n++; k++
			if (f[1] + 0 > max) { max = f[1] + 0; maxcpu = c[1]; where = (pass == "" ? "start" : pass "#" k) }
		}
		END { printf "%d %d %d %s\n", n, max, maxcpu, (where == "" ? "none" : where) }' "$WORK/cleanup.out")"
	LOCK_WAITS="$(tail -n +"$((lines_before + 1))" "$SESSMGR_TMP/server.log" | grep -c 'still waiting for' || true)"
	CLEANUP_DONE=1
fi

LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
SO_CHANGED=0
[[ "$(so_installed)" == "$SO_BUILT" ]] || SO_CHANGED=1

# ===========================================================================
# The summary

m=validate
v_us="$(us_per_call $m validate "$SAMPLE")"
f_us="$(us_per_call $m floor "$SAMPLE")"
p_us="$(us_per_call $m plpgsql "$SAMPLE")"
s_us="$(us_per_call $m scan "$SAMPLE")"
r_floor="$(ratio_ms $m validate floor)"
r_pl="$(ratio_ms $m plpgsql validate)"
net="$(bval "SELECT round(((bench.median_ms('$m','validate') - bench.median_ms('$m','scan')) / (bench.median_ms('$m','floor') - bench.median_ms('$m','scan')))::numeric, 2)")"
verdict() { # value op target
	bval "SELECT CASE WHEN $1 $2 $3 THEN 'PASS' ELSE 'MISS' END"
}

echo
add_row "validate in one query, $SAMPLE random tokens of $MAIN_SCALE sessions, vs floor" \
	"$v_us µs/call" "floor $f_us µs/call" "${r_floor}x" "≤ ${T_VALIDATE_FLOOR}x" "$(verdict "$r_floor" "<=" $T_VALIDATE_FLOOR)"
add_row "validate in one query, vs PL/pgSQL" \
	"$v_us µs/call" "PL/pgSQL $p_us µs/call" "${r_pl}x faster" "≥ ${T_VALIDATE_PLPGSQL}x faster" "$(verdict "$r_pl" ">=" $T_VALIDATE_PLPGSQL)"
tv="$(bval "SELECT round(bench.median_tps('validate-tps','validate')::numeric)")"
tf="$(bval "SELECT round(bench.median_tps('validate-tps','floor')::numeric)")"
rt="$(bval "SELECT round(bench.median_ratio_tps('validate-tps','validate','floor')::numeric, 2)")"
add_row "validate through pgbench ($CLIENTS clients, -j $THREADS, prepared)" \
	"$tv tps" "floor $tf tps" "${rt}x" "≥ ${T_VALIDATE_TPS}x" "$(verdict "$rt" ">=" $T_VALIDATE_TPS)"
jv="$(us_per_call verify sessmgr "$JWT_SAMPLE")"
jp="$(us_per_call verify plpgsql "$JWT_SAMPLE")"
js="$(us_per_call verify signature "$JWT_SAMPLE")"
rj="$(ratio_ms verify plpgsql sessmgr)"
add_row "access token verify in one query ($JWT_SAMPLE tokens)" \
	"$jv µs/call" "PL/pgSQL + pgcrypto $jp µs/call" "${rj}x faster" "≥ ${T_VERIFY}x faster" "$(verdict "$rj" ">=" $T_VERIFY)"
# verify includes the session's primary-key probe: it cannot beat the floor
ceiling="$(bval "SELECT round(((bench.median_ms('verify','plpgsql') / $JWT_SAMPLE) / (bench.median_ms('validate','floor') / $SAMPLE))::numeric, 1)")"
issue_us="$(us_per_call issue-1q issue "$ISSUE_CALLS")"
insert_us="$(us_per_call issue-1q insert "$ISSUE_CALLS")"
sp="$(us_per_call sign plpgsql "$JWT_SAMPLE")"
if [[ -n "$SIGN_SHARE" ]]; then
	sign_us="$(bval "SELECT round(($SIGN_SHARE / 100.0 * $issue_us)::numeric, 2)")"
	rs="$(bval "SELECT round(($sp / nullif($sign_us, 0))::numeric, 1)")"
	add_row "access token sign (share of issue, by profile)" \
		"≈ $sign_us µs/call ($SIGN_SHARE% of issue)" "PL/pgSQL + pgcrypto $sp µs/call" "≈ ${rs}x faster" "(none)" "info"
else
	add_row "access token sign" "inside issue: $issue_us µs/call in all" \
		"PL/pgSQL + pgcrypto $sp µs/call" "n/a" "(none)" "info"
fi
pq="$(bval "SELECT round(bench.median_tps('pre-request','pre_request')::numeric)")"
pf="$(bval "SELECT round(bench.median_tps('pre-request','floor')::numeric)")"
rp="$(bval "SELECT round((1 / bench.median_ratio_tps('pre-request','pre_request','floor'))::numeric, 2)")"
add_row "pre-request check per request (pgbench, $CLIENTS clients)" \
	"$pq tps" "floor $pf tps" "${rp}x the cost" "≤ ${T_PRE_REQUEST}x" "$(verdict "$rp" "<=" $T_PRE_REQUEST)"
ii="$(bval "SELECT round(bench.median_tps('issue','issue')::numeric)")"
ib="$(bval "SELECT round(bench.median_tps('issue','insert')::numeric)")"
ri="$(bval "SELECT round(bench.median_ratio_tps('issue','issue','insert')::numeric, 2)")"
add_row "issue, $CLIENTS clients on distinct users, cap enforced" \
	"$ii tps" "plain INSERT $ib tps" "${ri}x" "≥ ${T_ISSUE}x" "$(verdict "$ri" ">=" $T_ISSUE)"
ri1="$(ratio_ms issue-1q issue insert)"
add_row "issue in one query ($ISSUE_CALLS calls, one backend)" \
	"$issue_us µs/call" "plain INSERT $insert_us µs/call" "${ri1}x the cost" "(none)" "info"
add_row "issue storm: $STORM_CLIENTS clients on one user, ${STORM_SECS}s" \
	"$STORM_COMMITS commits, max $STORM_MAX active" "cap $CAP" "$STORM_OVER over the cap" "0" \
	"$(verdict "$STORM_OVER" "=" 0)"
if [[ $CLEANUP_DONE -eq 1 ]]; then
	[[ "$IDLE_P99" =~ ^[0-9]+$ && "$BUSY_P99" =~ ^[0-9]+$ ]] || fail "cleanup: no validate latencies were logged"
	rc="$(bval "SELECT round(($BUSY_P99 / $IDLE_P99::numeric), 2)")"
	add_row "cleanup of $CLEANUP_REMOVED ended sessions (${CLEANUP_SECS}s) while validate runs" \
		"validate p99 $BUSY_P99 µs" "validate alone: p99 $IDLE_P99 µs" "${rc}x" "≤ ${T_CLEANUP_P99}x" "$(verdict "$rc" "<=" $T_CLEANUP_P99)"
	add_row "cleanup: longest transaction (lock hold), lock waits over 200 ms" \
		"$LOCK_MS ms ($LOCK_CPU_MS ms on CPU, $LOCK_WAIT_MS ms waiting for one), $LOCK_WAITS waits" \
		"$XACTS transactions: median $XACT_P50_MS ms, p99 $XACT_P99_MS ms, $XACT_OVER over ${T_CLEANUP_LOCK_MS} ms" "" "≤ ${T_CLEANUP_LOCK_MS} ms, 0" \
		"$(bval "SELECT CASE WHEN $LOCK_MS <= $T_CLEANUP_LOCK_MS AND $LOCK_WAITS = 0 THEN 'PASS' ELSE 'MISS' END")"
else
	add_row "cleanup of 1M ended sessions while validate runs" \
		"not measured" "" "" "p99 ≤ ${T_CLEANUP_P99}x, locks ≤ ${T_CLEANUP_LOCK_MS} ms" "skipped"
fi
first="${SCALES[0]}"
last="${SCALES[-1]}"
rs_scale="$(bval "SELECT round((${SCALE_US[$last]} / ${SCALE_US[$first]})::numeric, 2)")"
rs_floor="$(bval "SELECT round((${SCALE_FLOOR_US[$last]} / ${SCALE_FLOOR_US[$first]})::numeric, 2)")"
add_row "scale $first -> $last sessions: validate per call" \
	"${SCALE_US[$first]} -> ${SCALE_US[$last]} µs" "floor ${SCALE_FLOOR_US[$first]} -> ${SCALE_FLOOR_US[$last]} µs (${rs_floor}x)" \
	"${rs_scale}x" "≤ ${T_SCALE}x" "$(verdict "$rs_scale" "<=" $T_SCALE)"
echo

if [[ $QUICK -eq 1 ]]; then
	step "--quick: done; bench/RESULTS.md not written"
	exit 0
fi

# ===========================================================================
# bench/RESULTS.md

# the sections other scripts write (between <!-- name: ... --> and
# <!-- /name -->: bench/geolocate.sh, bench/useragents.sh, ...) are kept
kept_sections="$(awk '/^<!-- [a-z_]+: /{keep=1} keep{print} /^<!-- \/[a-z_]+ -->/{keep=0; print ""}' \
	bench/RESULTS.md 2>/dev/null || true)"

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
mem="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
pgversion="$(bval 'SELECT version()')"
commit="$(git -C "$SESSMGR_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$SESSMGR_ROOT" status --porcelain -- src sessmgr--*.sql 2>/dev/null)" ]]; then
	commit="$commit (with uncommitted changes to src/ or the install script)"
fi
passed=0
missed=0
for v in "${ROW_VERDICTS[@]}"; do
	case "$v" in
	PASS) passed=$((passed + 1)) ;;
	MISS) missed=$((missed + 1)) ;;
	esac
done

{
	echo "# sessmgr benchmark results"
	echo
	echo "Written by \`make bench$([[ $SCALE_10M -eq 1 ]] && echo ' BENCH_ARGS=--scale-10m')\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $commit;"
	echo "$passed targets met, $missed missed. Every figure is the median of several"
	echo "interleaved runs; each ratio is the median of the per-round ratios of the two"
	echo "sides, measured back to back in the same cluster. In-query costs are the on-CPU"
	echo "time of the backend running the query (Linux \`/proc/self/schedstat\`), divided by"
	echo "the calls: on a shared machine, elapsed time also counts the time the backend"
	echo "waited for a CPU (elapsed medians are in \"All runs\")."
	echo
	echo "## Machine"
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| CPUs (\`nproc\`) | $(nproc) |"
	echo "| CPU | $cpu |"
	echo "| memory | $mem |"
	echo "| PostgreSQL | $pgversion |"
	echo "| load average (1, 5, 15 min) | $LOAD_START at the start, $LOAD_END at the end (the machine is shared: absolute figures are noisy, ratios count) |"
	echo "| run time | $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s |"
	echo
	echo "Settings added to the throwaway cluster's postgresql.conf (everything else is"
	echo "the default, including \`fsync = on\` and \`synchronous_commit = on\`):"
	echo
	echo '```'
	printf '%s\n' "${BENCH_CONF[@]}"
	echo '```'
	echo
	echo "\`jit = off\` keeps a per-query compilation cost out of the 200k-row queries;"
	echo "\`max_wal_size\` and \`checkpoint_timeout\` keep checkpoints out of the"
	echo "measurements (the script checkpoints after each load); \`log_lock_waits\` with"
	echo "\`deadlock_timeout = 200ms\` logs every lock wait over 200 ms (cleanup target)."
	echo "The benchmark database sets \`sessmgr.touch_interval = '$TOUCH_INTERVAL'\` so that"
	echo "every validation in the run is the steady-state, read-only one (a session last"
	echo "recorded active within the touch interval); the PL/pgSQL baselines use the same"
	echo "interval. The issue measurement through pgbench runs both sides with"
	echo "\`synchronous_commit = off\` (set per connection), so that it compares CPU and WAL"
	echo "work rather than the latency of the shared disk's flush."
	echo
	echo "## Results"
	echo
	echo "| measurement | sessmgr | baseline | ratio | target | result |"
	echo "|---|---|---|---|---|---|"
	printf '%s\n' "${RESULT_ROWS[@]}"
	echo
	echo "Bytes per session (heap with TOAST, FSM and VM + indexes = total):"
	echo
	echo "| sessions | bytes per session | validate µs/call | floor µs/call | validate / floor |"
	echo "|---|---|---|---|---|"
	for scale in "${SCALES[@]}"; do
		echo "| $scale | ${SCALE_BYTES[$scale]} | ${SCALE_US[$scale]} | ${SCALE_FLOOR_US[$scale]} | $(bval "SELECT round((${SCALE_US[$scale]} / ${SCALE_FLOOR_US[$scale]})::numeric, 2)") |"
	done
	echo
	echo "From $first to $last sessions the bare primary-key lookup itself grows ${rs_floor}x per"
	echo "call (the index and the heap outgrow the CPU caches, so each probe misses them more"
	echo "often); validate, that lookup plus a fixed amount of work per call, grows ${rs_scale}x,"
	echo "and its ratio to the floor goes from $(bval "SELECT round((${SCALE_US[$first]} / ${SCALE_FLOOR_US[$first]})::numeric, 2)")x to $(bval "SELECT round((${SCALE_US[$last]} / ${SCALE_FLOOR_US[$last]})::numeric, 2)")x."
	if [[ $SCALE_10M -eq 0 ]]; then
		echo
		echo "The 10-million-session scale runs with \`make bench BENCH_ARGS=--scale-10m\`;"
		echo "this run's scale figure covers $first -> $last sessions."
	fi
	echo
	echo "In the validate query, a scan of the $SAMPLE-token sample alone (the part both"
	echo "sides share) takes $s_us µs per row; net of it, validate costs ${net}x the floor."
	echo "Access-token verification includes the same primary-key probe of the session as"
	echo "the floor, so no implementation can be more than ${ceiling}x faster than the PL/pgSQL"
	echo "verify here (its cost divided by the floor's, $f_us µs per probe). The signature"
	echo "check alone, pgjwt-style in SQL (no claims, no session), costs $js µs per token."
	echo
	echo "## Method"
	echo
	echo "- **Data.** Sessions are inserted directly into \`sessmgr.sessions\` with the"
	echo "  token hashes sessmgr would store (\`bench/load.sql\`; tokens follow from a number,"
	echo "  \`bench.token()\`), five per user, with the per-row cap and audit triggers"
	echo "  disabled for the bulk INSERT only (in its transaction) and the users'"
	echo "  \`session_owners\` rows inserted alongside; then \`VACUUM (ANALYZE)\`,"
	echo "  \`pg_prewarm\` of every table and index (warm cache) and a checkpoint. The"
	echo "  sample (\`bench/sample.sql\`) is $SAMPLE sessions drawn at random (without"
	echo "  replacement when there are enough; at 100k sessions with replacement), numbered"
	echo "  in random order."
	echo "- **In one query** (per call = median query time / calls): each side counts rows"
	echo "  over the same sample in the same order, e.g."
	echo "  \`$Q_VALIDATE\` against the floor"
	echo "  \`$Q_FLOOR\`."
	echo "  With \`$INQUERY_SETTINGS\`"
	echo "  the floor is a nested loop doing one primary-key index probe per token, exactly"
	echo "  the access validate makes (plans below). One warm-up run of each side, then $ROUNDS"
	echo "  rounds, the order reversed every other round; every run must count every token"
	echo "  as valid."
	echo "- **pgbench** (\`bench/pgbench/\`): \`-M prepared -c $CLIENTS -j $THREADS -T $PGB_SECS\`,"
	echo "  $PGB_ROUNDS rounds of A then B. Both sides of a pair fetch the token (or claims)"
	echo "  $PGB_ROUNDS rounds, A then B and B then A in turn. Both sides of a pair fetch the token (or claims)"
	echo "  lookup. The pre-request pair is a PostgREST GET request: a READ ONLY transaction"
	echo "  that sets \`request.jwt.claims\` with \`set_config\`, then calls"
	echo "  \`sessmgr_api.pre_request()\` or does the bare primary-key lookup; its ratio is"
	echo "  the cost per request (inverse tps)."
	echo "- **Access tokens** are minted in SQL with pgcrypto (\`bench.plpgsql_sign_access_token\`)"
	echo "  with sessmgr's current key; sessmgr must accept all of them. The PL/pgSQL verify"
	echo "  checks what sessmgr checks: signature, exp/nbf/iat, the session (live, sub, gen)."
	echo "  sessmgr has no standalone signing function: \`issue\` signs the access token it"
	echo "  returns. The sign figure is the share of \`SessmgrJwtSign\` (with its callees) in a"
	echo "  CPU profile (\`perf record -e cpu-clock --call-graph dwarf\`) of one backend"
	echo "  running $ISSUE_CALLS issues, times issue's cost per call."
	echo "- **Issue**: through pgbench, \`sessmgr.issue()\` for a random one of the $((MAIN_SCALE / 5))"
	echo "  loaded users (the cap trigger locks the user's row and counts the user's sessions;"
	echo "  nobody reaches the cap) against a plain INSERT of the same row into"
	echo "  \`bench.sessions_copy\`, created \`LIKE sessmgr.sessions INCLUDING ALL\` (same columns,"
	echo "  constraints and indexes, no triggers) and filled with the same rows first. In one"
	echo "  query, $ISSUE_CALLS users of their own get one session each per run (so that no"
	echo "  loaded session is evicted by the cap)."
	echo "- **Issue storm**: $STORM_CLIENTS clients issue for one user (cap $CAP, evict_oldest) for"
	echo "  ${STORM_SECS}s under READ COMMITTED. A deferred constraint trigger records, at each"
	echo "  issuing commit, the user's active sessions (the idea of"
	echo "  \`test/pgbench/cap_storm.sh\`: the committing transaction still holds the user's"
	echo "  \`session_owners\` row lock, so the count is exact); $STORM_TX commits, $STORM_TPS tps,"
	echo "  $STORM_ACTIVE active at the end."
	echo "- **Cleanup**: $ENDED sessions that ended 40 days ago are loaded; validate runs"
	echo "  through pgbench alone for ${CLEANUP_IDLE_SECS}s, then in 5 s runs while \`sessmgr.cleanup\`"
	echo "  runs; p99 of per-transaction latencies (\`pgbench -l\`) inside the cleanup's time"
	echo "  window against the idle p99. The cleanup backend's open transaction is sampled"
	echo "  every 10 ms (\`bench.watch_transactions\`): its longest transaction bounds how long"
	echo "  it holds any lock; lock waits over 200 ms are counted in the server log."
	if [[ $CLEANUP_DONE -eq 0 ]]; then
		echo "  **Skipped in this run:** this build has no \`sessmgr.cleanup\` (issue 4 is not"
		echo "  merged yet). The measurement is wired and runs as soon as it exists."
	else
		echo "  This run: $CLEANUP_REMOVED sessions removed in ${CLEANUP_SECS}s by \`$cleanup_sql\`"
		echo "  ($XACTS transactions seen, median $XACT_P50_MS ms open; the longest (number $LOCK_NTH) was"
		echo "  open $LOCK_MS ms, of which the backend spent $LOCK_CPU_MS ms on a CPU and $LOCK_WAIT_MS ms"
		echo "  waiting in the run queue for one; no transaction used more than $XACT_CPU_MAX ms of"
		echo "  CPU; p99 $XACT_P99_MS ms, p99.9 $XACT_P999_MS ms, $XACT_OVER over $T_CLEANUP_LOCK_MS ms); validate transactions:"
		echo "  $IDLE_N alone, $BUSY_N during the cleanup. The cleanup's own DEBUG1 account of its"
		echo "  $OWN_N committed batches (the final transaction, which records the run, is not in it):"
		echo "  the slowest took $OWN_MAX ms ($OWN_MAX_CPU ms on CPU), batch $OWN_MAX_WHERE (table#batch)."
	fi
	echo "- **Scale**: the same in-query validate and floor measurement after loading"
	echo "  $(printf '%s, ' "${SCALES[@]}" | sed 's/, $//') sessions (each scale adds to the previous one)."
	if [[ $SO_CHANGED -eq 1 ]]; then
		echo
		echo "**Warning:** the installed \`sessmgr.so\` changed during the run (another build was"
		echo "installed on this machine meanwhile); connections opened after that used it."
	fi
	for n in ${NOTES[@]+"${NOTES[@]}"}; do
		echo
		echo "$n"
	done
	echo
	echo "## Plans of the validate measurement ($MAIN_SCALE sessions)"
	echo
	echo '```'
	cat "$WORK/plans.txt"
	echo '```'
	echo
	echo "## All runs"
	echo
	echo "| measurement | side | runs | CPU min | CPU median | CPU max | elapsed median |"
	echo "|---|---|---|---|---|---|---|"
	bval "SELECT string_agg(format('| %s | %s | %s | %s ms | %s ms | %s ms | %s ms |', measure, label, runs,
	                               round(lo::numeric, 1), round(bench.median_ms(measure, label)::numeric, 1),
	                               round(hi::numeric, 1), round(bench.median_wall_ms(measure, label)::numeric, 1)),
	                        E'\n' ORDER BY measure, label)
	        FROM (SELECT measure, label, count(*) AS runs, min(ms) AS lo, max(ms) AS hi
	                FROM bench.timings GROUP BY measure, label) t"
	echo
	echo "| measurement | side | runs | min | median | max |"
	echo "|---|---|---|---|---|---|"
	bval "SELECT string_agg(format('| %s | %s | %s | %s tps | %s tps | %s tps |', measure, label, runs,
	                               round(lo::numeric), round(bench.median_tps(measure, label)::numeric),
	                               round(hi::numeric)), E'\n' ORDER BY measure, label)
	        FROM (SELECT measure, label, count(*) AS runs, min(tps) AS lo, max(tps) AS hi
	                FROM bench.tps GROUP BY measure, label) t"
	if [[ -n "${SIGN_SHARE:-}" ]]; then
		echo
		echo "## Profile of issue (inclusive share of CPU samples, top entries)"
		echo
		echo '```'
		# named symbols only (the server's static functions show as addresses)
		awk '/^ +[0-9]/ && $4 !~ /^0x/ && n++ < 30' "$WORK/perf-issue.txt"
		echo '```'
	fi
	if [[ -n "$kept_sections" ]]; then
		echo
		printf '%s\n' "$kept_sections"
	fi
} >bench/RESULTS.md

step "wrote bench/RESULTS.md: $passed targets met, $missed missed"

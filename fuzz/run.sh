#!/usr/bin/env bash
# fuzz/run.sh: libFuzzer harnesses for the parsers of untrusted text (src/parse.c).
#
#   bash fuzz/run.sh [fuzz] [target...]   build, then fuzz each target FUZZ_SECONDS (make fuzz)
#   bash fuzz/run.sh replay [target...]   build, then run the checked-in corpus once (make test)
#   bash fuzz/run.sh build                only build
#
# Targets: token base64url uuid claims jwt useragent client_hints (fuzz/fuzz_<target>.c).
# Each is built with clang -fsanitize=fuzzer,address,undefined against src/parse.c (and the
# user agent parsers src/uarules.c, src/uadevice.c with PCRE2 and libyaml) compiled with FRONTEND
# and libpgcommon/libpgport from postgresql-server-dev-15.
#
# fuzz: inputs that add coverage go to fuzz/build/corpus/<target> (the checked-in seeds
# in fuzz/corpus/<target> are read, never written); crashes to fuzz/build/crashes/.
# Environment: FUZZ_SECONDS (default 60 per target), FUZZ_FLAGS (more libFuzzer options),
# FUZZ_BUILD (build directory, default fuzz/build),
# FUZZ_MERGE=1 (merge what a run found back into fuzz/corpus/<target> afterwards).
# The last line of each target's run is libFuzzer's final status (execs, cov, ft).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh

ALL_TARGETS=(token base64url uuid claims jwt useragent client_hints)
BUILD="${FUZZ_BUILD:-fuzz/build}"
CC="${FUZZ_CC:-clang-14}"

# Print the usage and exit with status $1.
usage() {
	echo "usage: bash fuzz/run.sh [fuzz|replay|build] [${ALL_TARGETS[*]}]..." >&2
	exit "$1"
}

# Install clang and its fuzzer/sanitizer runtimes when missing (and the server headers).
ensure_toolchain() {
	# shellcheck disable=SC2034  # read by sessmgr_ensure_packages
	SESSMGR_PACKAGES=(clang-14 libclang-rt-14-dev postgresql-server-dev-15 libpcre2-dev libyaml-dev uap-core)
	sessmgr_ensure_packages
}

# Build fuzz/build/fuzz_<target> for every target.
build() {
	local inc pkglib t flags
	inc="$("$PG_CONFIG" --includedir-server)"
	pkglib="$("$PG_CONFIG" --pkglibdir)"
	mkdir -p "$BUILD"
	# the extension's own code-generation flags (-fwrapv: signed overflow wraps in PostgreSQL)
	flags=(-g -O1 -fno-omit-frame-pointer -fwrapv -fno-strict-aliasing
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
		-Wall -Wextra -Wno-unused-parameter -Wno-ignored-attributes -Werror
		-DFRONTEND -Isrc -Ifuzz -I"$inc")
	for t in "${ALL_TARGETS[@]}"; do
		"$CC" "${flags[@]}" -o "$BUILD/fuzz_$t" "fuzz/fuzz_$t.c" fuzz/fuzz_common.c src/parse.c \
			src/uarules.c src/uadevice.c \
			"$pkglib/libpgcommon.a" "$pkglib/libpgport.a" -lpcre2-8 -lyaml -lm
	done
	sessmgr_log "fuzz: built ${ALL_TARGETS[*]} in $BUILD"
}

# libFuzzer options per target: JSON and JWTs get dictionaries and room for 8 kB inputs.
target_flags() {
	case "$1" in
	claims) echo "-max_len=8192 -dict=fuzz/dict/claims.dict" ;;
	jwt) echo "-max_len=8192 -dict=fuzz/dict/jwt.dict" ;;
	token | uuid) echo "-max_len=256" ;;
	base64url) echo "-max_len=1024" ;;
	useragent) echo "-max_len=2100" ;;
	client_hints) echo "-max_len=4096" ;;
	esac
}

# Run every corpus input of the targets once; fail on any crash or broken invariant.
replay() {
	local t failed=0 log
	for t in "$@"; do
		log="$BUILD/replay_$t.log"
		if UBSAN_OPTIONS=print_stacktrace=1 "$BUILD/fuzz_$t" -runs=0 "fuzz/corpus/$t" >"$log" 2>&1; then
			echo "fuzz replay $t: ok, $(find "fuzz/corpus/$t" -type f | wc -l) inputs;" \
				"$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)"
		else
			echo "fuzz replay $t: FAILED"
			tail -n 40 "$log"
			failed=1
		fi
	done
	return "$failed"
}

# Fuzz each target for FUZZ_SECONDS; fail if any target found a crash.
fuzz() {
	local t failed=0 log seconds="${FUZZ_SECONDS:-60}" extra=() tflags=()
	read -r -a extra <<<"${FUZZ_FLAGS:-}"
	mkdir -p "$BUILD/crashes"
	for t in "$@"; do
		mkdir -p "$BUILD/corpus/$t"
		log="$BUILD/fuzz_$t.log"
		read -r -a tflags <<<"$(target_flags "$t")"
		sessmgr_log "fuzz: $t for ${seconds}s (log: $log)"
		if UBSAN_OPTIONS=print_stacktrace=1 "$BUILD/fuzz_$t" -max_total_time="$seconds" \
			-print_final_stats=1 -artifact_prefix="$BUILD/crashes/$t-" "${tflags[@]}" \
			${extra[@]+"${extra[@]}"} "$BUILD/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
			echo "fuzz $t: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)"
			if [[ "${FUZZ_MERGE:-0}" == 1 ]]; then
				"$BUILD/fuzz_$t" -merge=1 "${tflags[@]}" "fuzz/corpus/$t" "$BUILD/corpus/$t" \
					>"$BUILD/merge_$t.log" 2>&1
				echo "fuzz $t: merged into fuzz/corpus/$t ($(find "fuzz/corpus/$t" -type f | wc -l) inputs)"
			fi
		else
			echo "fuzz $t: CRASH or broken invariant, reproducer in $BUILD/crashes/:"
			grep -E 'ERROR|invariant failed|runtime error|Test unit written' "$log" | head -n 10
			failed=1
		fi
	done
	return "$failed"
}

mode=fuzz
if [[ $# -gt 0 && ( "$1" == fuzz || "$1" == replay || "$1" == build ) ]]; then
	mode="$1"
	shift
elif [[ $# -gt 0 && ( "$1" == -h || "$1" == --help ) ]]; then
	usage 0
fi
targets=()
for arg in "$@"; do
	case " ${ALL_TARGETS[*]} " in
	*" $arg "*) targets+=("$arg") ;;
	*)
		echo "unknown fuzz target: $arg" >&2
		usage 2
		;;
	esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
	targets=("${ALL_TARGETS[@]}")
fi

ensure_toolchain
build
case "$mode" in
fuzz) fuzz "${targets[@]}" ;;
replay) replay "${targets[@]}" ;;
build) ;;
esac

#!/usr/bin/env bash
# bench/geolocate.sh: what sessmgr.geolocate() costs per call, side by side with a
# bare primary-key lookup of a session row, in one throwaway cluster.
#
#   bash bench/geolocate.sh            measure, print, and write the "Places" section
#                                      of bench/RESULTS.md (between its markers)
#   bash bench/geolocate.sh --quick    fewer calls and rounds; RESULTS.md is not written
#
# The databases are the test ones (test/make_geoip_db.pl, City + ASN).  Warm: one
# query of CALLS calls per side (addresses spread over the four documentation
# networks, IPv4 and IPv6, each a hit in both databases; sessions picked at random
# among SESSIONS), ROUNDS rounds, the sides alternating A B, B A, ...; the cost is
# the on-CPU time of the backend (/proc/self/schedstat) divided by the calls, and
# the ratio the median of the per-round ratios.  Cold: the first call in a fresh
# backend that has loaded sessmgr (geolocate maps both files then; the lookup
# loads the table's and index's relcache entries), against the second call, in
# COLD_BACKENDS backends per side; each figure is one statement's on-CPU time
# (statement overhead included, the same on both sides).  And the cost of
# mapping the files alone: the first call once the settings name them minus
# the second, after calls without files have warmed the catalog caches.
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
		sed -n '2,9p' "$0"
		exit 0
		;;
	*)
		echo "usage: bash bench/geolocate.sh [--quick]" >&2
		exit 2
		;;
	esac
done

SESSIONS=1000000
CALLS=200000
ROUNDS=6
COLD_BACKENDS=20
if [[ $QUICK -eq 1 ]]; then
	SESSIONS=100000
	CALLS=20000
	ROUNDS=2
	COLD_BACKENDS=4
fi
started=$SECONDS

step() {
	sessmgr_log "bench geolocate [$((SECONDS - started))s]: $*"
}

q() {
	sessmgr_as_pg "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d geobench "$@"
}

sessmgr_ensure_packages
sessmgr_build_install
sessmgr_cluster_start "jit = off" "shared_buffers = 512MB"

dbdir="$SESSMGR_TMP/geoip"
sessmgr_as_pg mkdir -p "$dbdir"
sessmgr_as_pg perl "$SESSMGR_ROOT/test/make_geoip_db.pl" "$dbdir" >/dev/null
sessmgr_as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE geobench'
q -c "ALTER DATABASE geobench SET sessmgr.geoip_database = '$dbdir/sessmgr-test-City.mmdb'" \
	-c "ALTER DATABASE geobench SET sessmgr.geoip_asn_database = '$dbdir/sessmgr-test-ASN.mmdb'"

step "loading $SESSIONS session rows and $CALLS addresses and ids"
q <<SQL
CREATE EXTENSION sessmgr;
CREATE SCHEMA geobench;
CREATE FUNCTION geobench.cpu_ns() RETURNS bigint LANGUAGE sql VOLATILE
    RETURN split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint;
-- rows shaped like sessmgr.sessions' hot columns
CREATE TABLE geobench.sessions (id uuid PRIMARY KEY, user_id text NOT NULL,
                                expires_at timestamptz NOT NULL);
INSERT INTO geobench.sessions
SELECT md5('s' || g)::uuid, 'user-' || (g % 100000), now() + interval '1 day'
  FROM generate_series(1, $SESSIONS) g;
-- what each call works on: an address and a random session id
CREATE TABLE geobench.work (n integer PRIMARY KEY, ip inet NOT NULL, id uuid NOT NULL);
INSERT INTO geobench.work
SELECT g,
       CASE g % 4 WHEN 0 THEN ('192.0.2.' || (g % 256))::inet
                  WHEN 1 THEN ('198.51.100.' || (g % 256))::inet
                  WHEN 2 THEN ('203.0.113.' || (g % 256))::inet
                  ELSE ('2001:db8:' || to_hex(g % 65535) || '::' || to_hex(g % 4096))::inet END,
       md5('s' || (1 + floor(random() * $SESSIONS)::int))::uuid
  FROM generate_series(1, $CALLS) g;
VACUUM ANALYZE geobench.sessions;
VACUUM ANALYZE geobench.work;
CREATE TABLE geobench.timings (side text, run int, ns bigint);
SQL

Q_GEO='SELECT count(g.city) FROM geobench.work w CROSS JOIN LATERAL sessmgr.geolocate(w.ip) g'
Q_PK='SELECT count(x.user_id) FROM geobench.work w CROSS JOIN LATERAL (SELECT s.user_id, s.expires_at FROM geobench.sessions s WHERE s.id = w.id OFFSET 0) x'

# One measured query in its own connection (warmed by the same query first):
# records side, run, and on-CPU ns; checks every call found its row.
measure() {
	local side="$1" run="$2" query="$3"
	q <<SQL
SELECT ($query) AS warm \gset
SELECT geobench.cpu_ns() AS c0 \gset
SELECT ($query) AS got \gset
INSERT INTO geobench.timings SELECT '$side', $run, geobench.cpu_ns() - :c0;
SELECT CASE WHEN :got = $CALLS THEN 'ok' ELSE 'bench: $side counted ' || :got || ' of $CALLS' END;
SQL
}

step "warm: $ROUNDS rounds of $CALLS calls per side"
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then
		order=(geolocate pk)
	else
		order=(pk geolocate)
	fi
	for side in "${order[@]}"; do
		if [[ $side == geolocate ]]; then
			res="$(measure geolocate "$r" "$Q_GEO")"
		else
			res="$(measure pk "$r" "$Q_PK")"
		fi
		[[ "$res" == ok ]] || {
			sessmgr_err "$res"
			exit 1
		}
	done
done

# In a fresh backend that has loaded sessmgr: the first and the second call
# (cold_*_first, cold_*_second); then, for geolocate, the first and second call
# once the settings name the files, after calls without them have warmed every
# catalog cache (map_first, map_second: their difference is what mapping the
# two files and the first lookups in them cost).
cold() {
	local side="$1" run="$2" call
	if [[ $side == cold_geolocate ]]; then
		call="SELECT count(*) FROM sessmgr.geolocate('192.0.2.1')"
	else
		call="SELECT count(*) FROM geobench.sessions WHERE id = md5('s1')::uuid"
	fi
	q <<SQL
LOAD 'sessmgr';
SELECT geobench.cpu_ns() AS c0 \gset
$call \gset
SELECT geobench.cpu_ns() AS c1 \gset
$call \gset
SELECT geobench.cpu_ns() AS c2 \gset
INSERT INTO geobench.timings VALUES ('${side}_first', $run, :c1 - :c0), ('${side}_second', $run, :c2 - :c1);
SQL
	[[ $side == cold_geolocate ]] || return 0
	q <<SQL
LOAD 'sessmgr';
SET sessmgr.geoip_database = '';
SET sessmgr.geoip_asn_database = '';
$call \gset
$call \gset
RESET sessmgr.geoip_database;
RESET sessmgr.geoip_asn_database;
SELECT geobench.cpu_ns() AS c0 \gset
$call \gset
SELECT geobench.cpu_ns() AS c1 \gset
$call \gset
SELECT geobench.cpu_ns() AS c2 \gset
INSERT INTO geobench.timings VALUES ('map_first', $run, :c1 - :c0), ('map_second', $run, :c2 - :c1);
SQL
}

step "cold: the first call in $COLD_BACKENDS fresh backends per side"
for ((r = 1; r <= COLD_BACKENDS; r++)); do
	cold cold_geolocate "$r"
	cold cold_pk "$r"
done

us() {
	q -c "SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ns) / 1000.0 / $2)::numeric, 2) FROM geobench.timings WHERE side = '$1'"
}
geo_us="$(us geolocate "$CALLS")"
pk_us="$(us pk "$CALLS")"
ratio="$(q -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY g.ns::float8 / p.ns)::numeric, 2)
                 FROM geobench.timings g JOIN geobench.timings p USING (run)
                WHERE g.side = 'geolocate' AND p.side = 'pk'")"
cg1="$(us cold_geolocate_first 1)"
cg2="$(us cold_geolocate_second 1)"
cp1="$(us cold_pk_first 1)"
cp2="$(us cold_pk_second 1)"
map_us="$(q -c "SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY f.ns - s.ns) / 1000.0)::numeric, 2)
                  FROM geobench.timings f JOIN geobench.timings s USING (run)
                 WHERE f.side = 'map_first' AND s.side = 'map_second'")"
lib="$(dpkg-query -W -f='${Version}' libmaxminddb0 2>/dev/null || true)"

section="$(
	cat <<EOF
<!-- geolocate: written by bench/geolocate.sh; the rest of this file by bench/run.sh -->
## Places: sessmgr.geolocate() per call

Written by \`bash bench/geolocate.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), sessmgr $(git rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n "$(git status --porcelain -- src 2>/dev/null)" ]] && echo ' (with uncommitted changes to src/)'), libmaxminddb ${lib:-?}, $(nproc) CPUs.
The test databases of test/make_geoip_db.pl (City and ASN); every call is a hit in
both (IPv4 and IPv6 addresses of the four documentation networks) and returns all
nine columns. On-CPU time of the backend, median of $ROUNDS interleaved rounds of
$CALLS calls per side; the bare lookup is a primary-key probe of a $SESSIONS-row
table shaped like sessmgr.sessions, in the same kind of query.

| measurement | geolocate | bare primary-key lookup | ratio |
|---|---|---|---|
| warm, per call, in one query | $geo_us µs | $pk_us µs | ${ratio}x |
| first call in a fresh backend (one statement; geolocate maps both files) | $cg1 µs | $cp1 µs | |
| second call in that backend (one statement) | $cg2 µs | $cp2 µs | |
| mapping both files: first call with the files minus the second, catalog caches warm | $map_us µs | | |

Cold figures are medians over $COLD_BACKENDS fresh backends per side, each after
\`LOAD 'sessmgr'\`; a statement's figure includes its parse, plan and executor
overhead and, for a first statement, the catalog lookups of a fresh backend. The
test databases are a few kB; a real GeoLite2-City file (about 60 MB) is mapped
the same way (mapping does not read it) but its lookups touch pages that may
not be in memory yet, and a search walks the same 128-bit tree depth at most.
<!-- /geolocate -->
EOF
)"
echo
echo "$section"

if [[ $QUICK -eq 1 ]]; then
	step "--quick: bench/RESULTS.md not written"
	exit 0
fi
bench_write_section geolocate "$section"
step "wrote the Places section of bench/RESULTS.md"

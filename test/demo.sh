#!/usr/bin/env bash
# test/demo.sh: `make demo` - install what is missing, build and install sessmgr,
# then walk through test/demo.sql on a throwaway cluster that is removed afterwards,
# and through the same flow over HTTP with the real PostgREST (test/demo_http.sh).
# shellcheck disable=SC2119  # sessmgr_cluster_start takes optional conf lines
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh

sessmgr_ensure_packages
sessmgr_build_install

# a small GeoIP database of the documentation networks placed in real cities
# (never a download), readable by the cluster's postgres user
geo_dir="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-demo-geo.XXXXXX")"
trap 'rm -rf "$geo_dir"' EXIT
perl test/make_geoip_db.pl "$geo_dir" >/dev/null
chmod 755 "$geo_dir"
chmod 644 "$geo_dir"/*.mmdb
sessmgr_cluster_start \
	"sessmgr.geoip_database = '$geo_dir/sessmgr-test-City.mmdb'" \
	"sessmgr.geoip_asn_database = '$geo_dir/sessmgr-test-ASN.mmdb'"

sessmgr_log "demo: CREATE EXTENSION sessmgr"
sessmgr_psql -c 'CREATE EXTENSION sessmgr'

sessmgr_log "demo: running test/demo.sql"
# demo.sql prints a UTF-8 ellipsis; keep the table columns aligned whatever the locale.
PGCLIENTENCODING=UTF8 sessmgr_psql -f test/demo.sql

# the same flow over HTTP, through the real PostgREST (docs/postgrest.md)
bash test/demo_http.sh
sessmgr_log "demo: done"

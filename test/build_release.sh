#!/usr/bin/env bash
# test/build_release.sh VERSION OUTDIR: build the shared library of a released
# sessmgr version from the repository's git history, leaving OUTDIR/sessmgr.so.
#
#   bash test/build_release.sh 0.1.0 /tmp/release-0.1.0
#
# The release's Makefile, sessmgr.control and src/ are taken from its commit
# with git archive and built with PGXS (PG_CONFIG, default
# /usr/lib/postgresql/15/bin/pg_config) in OUTDIR/build-<commit>; nothing
# outside OUTDIR is written and nothing is installed.  test/run.sh's tap suite
# calls it before the TAP tests; test/t/031_upgrade.pl runs the 0.1.0 SQL
# functions against the library it leaves (SESSMGR_RELEASE_LIB_0_1_0).
#
# A second call with the same OUTDIR, commit and server version only checks
# the stamp and returns.  The release commits are listed below; a tag
# v<VERSION> (or <VERSION>) is used for a version not listed.
set -euo pipefail

# version -> the commit that holds its released sources
declare -A RELEASE_COMMITS=(
	[0.1.0]=5f83108
)

die() {
	printf 'build_release.sh: ERROR: %s\n' "$*" >&2
	exit 1
}

[[ $# -eq 2 ]] || die "usage: bash test/build_release.sh VERSION OUTDIR"
version="$1"
outdir="$2"
[[ "$version" =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "not a version: '$version'"
[[ -n "$outdir" ]] || die "OUTDIR is empty"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
[[ -x "$PG_CONFIG" ]] || die "pg_config not found at $PG_CONFIG (install postgresql-server-dev-15 or set PG_CONFIG)"
command -v git >/dev/null || die "git is not installed: the $version library is built from the repository's git history"

# The checkout may belong to another user than the one running this (root in
# test/run.sh): git must not refuse it as "dubious ownership".
g() {
	git -c safe.directory="$root" -C "$root" "$@"
}

if ! g rev-parse --git-dir >/dev/null 2>&1; then
	die "$root is not a git checkout (no .git): the $version library is built from git history;" \
		"use a clone of the repository, not an exported source tree"
fi

ref="${RELEASE_COMMITS[$version]:-}"
if [[ -z "$ref" ]]; then
	for t in "v$version" "$version"; do
		if g rev-parse -q --verify "refs/tags/$t^{commit}" >/dev/null; then
			ref="$t"
			break
		fi
	done
	[[ -n "$ref" ]] || die "unknown release $version: add its commit to RELEASE_COMMITS in test/build_release.sh (or tag it v$version)"
fi
if ! commit="$(g rev-parse -q --verify "$ref^{commit}" 2>/dev/null)"; then
	if [[ "$(g rev-parse --is-shallow-repository 2>/dev/null)" == true ]]; then
		die "commit $ref of release $version is not in this shallow clone: run 'git fetch --unshallow' (CI: fetch-depth 0)"
	fi
	die "commit $ref of release $version is not in the git history of $root"
fi

# the commit must really be that release
released="$(g show "$commit:sessmgr.control" 2>/dev/null |
	sed -n "s/^default_version *= *'\(.*\)'.*/\1/p")" ||
	die "commit $commit has no sessmgr.control"
[[ "$released" == "$version" ]] ||
	die "commit $commit is version '$released', not $version (fix RELEASE_COMMITS in test/build_release.sh)"

mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
pg_version="$("$PG_CONFIG" --version)"
stamp="$outdir/sessmgr.so.built-from"
want="$version $commit $pg_version"
if [[ -f "$outdir/sessmgr.so" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	echo "build_release.sh: $outdir/sessmgr.so is sessmgr $version ($commit), already built"
	exit 0
fi

build="$outdir/build-$commit"
rm -rf "$build"
mkdir -p "$build"
g archive --format=tar "$commit" Makefile sessmgr.control src | tar -C "$build" -xf - ||
	die "git archive of $commit failed"

log="$build/build.log"
echo "build_release.sh: building sessmgr $version (commit ${commit:0:12}) with $pg_version in $build"
if ! make --no-print-directory -C "$build" PG_CONFIG="$PG_CONFIG" \
	-j"$(nproc 2>/dev/null || echo 2)" sessmgr.so >"$log" 2>&1; then
	cat "$log" >&2
	die "building sessmgr $version failed (log above, kept in $log)"
fi
[[ -f "$build/sessmgr.so" ]] || die "the build of sessmgr $version left no sessmgr.so"

# readable by the server's OS user (the tap suite hands OUTDIR to postgres)
install -m 0644 "$build/sessmgr.so" "$outdir/sessmgr.so.tmp"
mv -f "$outdir/sessmgr.so.tmp" "$outdir/sessmgr.so"
printf '%s\n' "$want" >"$stamp"
rm -rf "$build/src" "$build/sessmgr.so"
echo "build_release.sh: $outdir/sessmgr.so is sessmgr $version ($commit)"

#!/usr/bin/env bash
# fuzz/seed_corpus.sh: (re)write the seed corpus fuzz/corpus/<target>/seed-* .
#
#   bash fuzz/seed_corpus.sh
#
# Real tokens, session ids, token generations and access tokens (HS256, HS384,
# HS512, with audience and issuer, after a refresh, for awkward user ids) come
# from sessmgr itself on a throwaway cluster, which is removed afterwards, so
# the secrets in them open nothing. Hand-made edge cases sit next to them.
# Files found by fuzzing (fuzz/run.sh with FUZZ_MERGE=1) are named by their
# SHA-1 and left alone; crash reproducers are named crash-*.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh

C=fuzz/corpus
for t in token base64url uuid claims jwt; do
	mkdir -p "$C/$t"
	rm -f "$C/$t"/seed-*
done

# seed <target> <name> <printf format> [args]: write one seed file
seed() {
	local target="$1" name="$2" fmt="$3"
	shift 3
	# shellcheck disable=SC2059  # the format is the point
	printf -- "$fmt" "$@" >"$C/$target/seed-$name"
}

# b64url <text>: unpadded base64url of a string
b64url() {
	printf '%s' "$1" | basenc --base64url -w0 | tr -d '='
}

# nest <open> <close> <n> <inner>: inner wrapped n times
nest() {
	local s="$4" i
	for ((i = 0; i < $3; i++)); do
		s="$1$s$2"
	done
	printf '%s' "$s"
}

# --- real values from a throwaway cluster ---------------------------------
sessmgr_ensure_packages
sessmgr_build_install
sessmgr_cluster_start
sessmgr_psql -c 'CREATE EXTENSION sessmgr'
real="$(mktemp -d "${TMPDIR:-/tmp}/sessmgr-seed.XXXXXX")"
chmod 777 "$real"
# one line per value: kind|name|value
sessmgr_psql -At -F'|' <<'SQL' >"$real/values"
CREATE TEMP TABLE s (name text, session_id uuid, token text, access_token text);
INSERT INTO s SELECT 'plain', session_id, token, access_token
  FROM sessmgr.issue('alice', 'laptop', 'Mozilla/5.0', '203.0.113.10', 'Berlin');
SET sessmgr.jwt_audience = 'https://api.example.com';
SET sessmgr.jwt_issuer = 'https://auth.example.com';
SELECT sessmgr.rotate_signing_key('HS384') \gset
INSERT INTO s SELECT 'aud-iss-hs384', session_id, token, access_token
  FROM sessmgr.issue(E'\u00fcn\u00efc\u00f8d\u00e9 "quoted" \\ back/slash\ttab', remember => true);
SELECT sessmgr.rotate_signing_key('HS512') \gset
INSERT INTO s SELECT 'long-user-hs512', session_id, token, access_token
  FROM sessmgr.issue(repeat('u', 256));
INSERT INTO s SELECT 'refreshed', r.session_id, r.token, r.access_token
  FROM s, sessmgr.refresh(s.token) r WHERE s.name = 'plain';
SELECT 'token', name, token FROM s;
SELECT 'uuid', name, session_id FROM s;
SELECT 'gen', name, lpad(to_hex(token_gen), 16, '0') FROM s JOIN sessmgr.sessions x ON x.id = s.session_id;
SELECT 'jwt', name, access_token FROM s;
SELECT 'header', name, convert_from(decode(rpad(translate(split_part(access_token, '.', 1), '-_', '+/'),
           (length(split_part(access_token, '.', 1)) + 3) / 4 * 4, '='), 'base64'), 'UTF8') FROM s;
SELECT 'claims', name, convert_from(decode(rpad(translate(split_part(access_token, '.', 2), '-_', '+/'),
           (length(split_part(access_token, '.', 2)) + 3) / 4 * 4, '='), 'base64'), 'UTF8') FROM s;
SELECT 'sig', name, split_part(access_token, '.', 3) FROM s;
SELECT 'header64', name, split_part(access_token, '.', 1) FROM s;
SQL

while IFS='|' read -r kind name value; do
	case "$kind" in
	token) seed token "real-$name" '%s' "$value" ;;
	uuid) seed uuid "real-sid-$name" '%s' "$value" ;;
	gen) seed uuid "real-gen-$name" '%s' "$value" ;;
	jwt) seed jwt "real-$name" '%s' "$value" ;;
	header) seed claims "real-header-$name" '%s' "$value" ;;
	claims) seed claims "real-claims-$name" '%s' "$value" ;;
	sig) seed base64url "real-sig-$name" '\377%s' "$value" ;;
	header64) seed base64url "real-header-$name" '\377%s' "$value" ;;
	esac
done <"$real/values"
rm -rf "$real"
sessmgr_cluster_stop

tok="$(cat "$C/token/seed-real-plain")"
body="${tok#sessmgr_}"
jwt="$(cat "$C/jwt/seed-real-plain")"
h="${jwt%%.*}"
rest="${jwt#*.}"
p="${rest%%.*}"
sig="${rest#*.}"
claims="$(cat "$C/claims/seed-real-claims-plain")"

# --- token: SessmgrTokenDecode --------------------------------------------
seed token empty ''
seed token prefix-only 'sessmgr_'
seed token short '%s' "${tok:0:71}"
seed token long '%s=' "$tok"
seed token upper-prefix 'SESSMGR_%s' "$body"
seed token other-prefix 'sessmgx_%s' "$body"
seed token std-alphabet 'sessmgr_%s' "$(printf '%s' "$body" | tr -- '-_' '+/' | sed 's/^./+/')"
seed token padding 'sessmgr_%s=' "${body:0:63}"
seed token nul-inside 'sessmgr_%s\000%s' "${body:0:30}" "${body:31}"
seed token high-bytes 'sessmgr_%s\303\251' "${body:0:62}"
seed token space 'sessmgr_%s ' "${body:0:63}"
seed token all-A 'sessmgr_%s' "$(printf 'A%.0s' {1..64})"
seed token all-underscore 'sessmgr_%s' "$(printf '_%.0s' {1..64})"

# --- base64url: first byte is the output room (255: exactly enough) --------
seed base64url empty '\377'
seed base64url one-char '\377A'
seed base64url two-canonical '\377AQ'
seed base64url two-noncanonical '\377AB'
seed base64url three-canonical '\377AAE'
seed base64url three-noncanonical '\377AAB'
seed base64url four '\377AAAA'
seed base64url five '\377AAAAA'
seed base64url padded '\377AA=='
seed base64url std-alphabet '\377+/+/'
seed base64url space '\377AA AA'
seed base64url nul '\377AA\000A'
seed base64url high-bytes '\377\303\251AA'
seed base64url no-room '\000%s' "$sig"
seed base64url room-one-short '\037%s' "$sig"
seed base64url room-68-sig '\104%s' "$sig"
seed base64url payload '\377%s' "$p"

# --- uuid and gen: SessmgrParseUuid, SessmgrParseGen ----------------------
sid="$(cat "$C/uuid/seed-real-sid-plain")"
seed uuid upper '%s' "${sid^^}"
seed uuid no-dashes '%s' "${sid//-/}"
seed uuid braces '{%s}' "$sid"
seed uuid short '%s' "${sid:0:35}"
seed uuid long '%s0' "$sid"
seed uuid dash-moved '%s-%s' "${sid:0:7}" "${sid:9}"
seed uuid nul-inside '%s\000%s' "${sid:0:10}" "${sid:11}"
seed uuid non-hex '%sg%s' "${sid:0:35}" ''
seed uuid nil '00000000-0000-0000-0000-000000000000'
seed uuid max 'ffffffff-ffff-ffff-ffff-ffffffffffff'
seed uuid gen-upper '0123456789ABCDEF'
seed uuid gen-short '0123456789abcde'
seed uuid gen-long '0123456789abcdef0'
seed uuid gen-max 'ffffffffffffffff'
seed uuid gen-sign '-123456789abcdef'
seed uuid empty ''

# --- claims: SessmgrJwtParseFields, SessmgrJsonTextAcceptable -------------
seed claims empty ''
seed claims empty-object '{}'
seed claims array '[]'
seed claims scalar-string '"sub"'
seed claims scalar-number '1'
seed claims null 'null'
seed claims trailing '%s{}' "$claims"
seed claims unterminated '{"sub":"alice'
seed claims backslash-end '{"sub":"alice\\'
seed claims escaped-quote '{"sub":"a\\"}","x":[[[[[[[[[[]]]]]]]]]]}'
seed claims depth-8 '%s' "$(nest '{"a":' '}' 8 '1')"
seed claims depth-9 '%s' "$(nest '{"a":' '}' 9 '1')"
seed claims array-depth-9 '{"aud":%s}' "$(nest '[' ']' 8 '"x"')"
seed claims depth-in-string '{"a":"%s"}' "$(printf '[%.0s' {1..40})"
seed claims close-first '}}}}}}}}}}{%s' "$(printf '[%.0s' {1..20})"
seed claims duplicate-sub '{"sub":"a","sub":"b"}'
seed claims duplicate-exp '{"exp":1,"exp":2}'
seed claims wrong-types '{"sub":1,"exp":"1","aud":true,"sid":null,"gen":[],"role":{}}'
seed claims aud-array '{"aud":["x","https://api.example.com"],"exp":1}'
seed claims aud-array-number '{"aud":["x",1]}'
seed claims aud-twice '{"aud":"x","aud":["y"]}'
seed claims aud-nested '{"aud":[["https://api.example.com"]]}'
seed claims number-huge '{"exp":1e400}'
seed claims number-tiny '{"exp":1e-400}'
seed claims number-long '{"exp":%s}' "$(printf '1%.0s' {1..33})"
seed claims number-32 '{"exp":%s}' "$(printf '1%.0s' {1..32})"
seed claims number-neg-zero '{"exp":-0,"nbf":-0.0e0,"iat":0.5}'
seed claims number-nan '{"exp":NaN,"nbf":Infinity}'
seed claims number-hex '{"exp":0x10}'
seed claims number-lead-zero '{"exp":0123}'
seed claims escape-unicode '{"sub":"\\u00fc\\u00e9","role":"\\ud83d\\ude00"}'
seed claims escape-nul '{"sub":"a\\u0000b"}'
seed claims escape-ascii '{"role":"anon","sub":"\\u0041\\u007F\\u007e"}'
seed claims escape-u0080 '{"role":"anon","sub":"\\u0080"}'
seed claims escape-cut '{"role":"anon","sub":"\\u00'
seed claims escape-lone-high '{"sub":"\\ud800"}'
seed claims escape-lone-low '{"sub":"\\udc00x"}'
seed claims escape-bad '{"sub":"\\x41"}'
seed claims escape-short '{"sub":"\\u12"}'
seed claims raw-nul '{"sub":"a\000b"}'
seed claims raw-control '{"sub":"a\001\nb"}'
seed claims invalid-utf8 '{"sub":"\303("}'
seed claims overlong-utf8 '{"sub":"\300\257"}'
seed claims surrogate-utf8 '{"sub":"\355\240\200"}'
seed claims beyond-unicode '{"sub":"\364\220\200\200"}'
seed claims bom '\357\273\277{"sub":"a"}'
seed claims whitespace ' \t\r\n{ "sub" : "a" , "exp" : 1 } \n'
seed claims nested-claims '{"x":{"sub":"a","aud":"b","exp":"c"},"sub":"s"}'
seed claims anonymous '{"role":"anon","exp":1}'
seed claims our-role-no-sid '{"role":"authenticated","exp":1}'
seed claims header-none '{"alg":"none","typ":"JWT"}'
seed claims header-alg-null '{"alg":null,"kid":null}'
seed claims long-string '{"sub":"%s"}' "$(printf 'x%.0s' {1..4000})"
seed claims many-members '{%s"z":0}' "$(for i in {1..300}; do printf '"k%d":%d,' "$i" "$i"; done)"

# --- jwt: the split, the segment decoding, header and claims --------------
seed jwt alg-none '%s.%s.' "$(b64url '{"alg":"none","typ":"JWT"}')" "$p"
seed jwt alg-none-sig '%s.%s.%s' "$(b64url '{"alg":"none","typ":"JWT"}')" "$p" "$sig"
seed jwt two-segments '%s.%s' "$h" "$p"
seed jwt four-segments '%s.%s.%s.%s' "$h" "$p" "$sig" "$sig"
seed jwt empty-header '.%s.%s' "$p" "$sig"
seed jwt empty-payload '%s..%s' "$h" "$sig"
seed jwt dots '...'
seed jwt dot '.'
seed jwt padded '%s=.%s==.%s=' "$h" "$p" "$sig"
seed jwt std-alphabet '%s.%s.%s' "$h" "$(printf '%s' "$p" | tr -- '-_' '+/')" "$sig"
seed jwt tampered-payload '%s.%sA.%s' "$h" "${p:0:${#p}-1}" "$sig"
seed jwt long-sig '%s.%s.%s%s' "$h" "$p" "$sig" "$sig"
seed jwt header-array '%s.%s.%s' "$(b64url '[{"alg":"HS256"}]')" "$p" "$sig"
seed jwt header-deep '%s.%s.%s' "$(b64url "$(nest '{"a":' '}' 12 '{"alg":"HS256"}')")" "$p" "$sig"
seed jwt header-escapes '%s.%s.%s' "$(b64url '{"alg":"HS\u0032\u0035\u0036","kid":"\u00e9\ud83d\ude00"}')" "$p" "$sig"
seed jwt header-invalid-utf8 '%s.%s.%s' "$(printf '{"alg":"\303("}' | basenc --base64url -w0 | tr -d '=')" "$p" "$sig"
seed jwt header-nul '%s.%s.%s' "$(printf '{"alg":"HS256"}\000' | basenc --base64url -w0 | tr -d '=')" "$p" "$sig"
seed jwt kid-unknown '%s.%s.%s' "$(b64url '{"alg":"HS256","kid":"nope","typ":"JWT"}')" "$p" "$sig"
seed jwt whitespace ' %s.%s.%s ' "$h" "$p" "$sig"

for t in token base64url uuid claims jwt; do
	sessmgr_log "corpus: $t: $(find "$C/$t" -name 'seed-*' | wc -l) seeds, $(find "$C/$t" -type f | wc -l) files"
done

--
-- Access tokens (JWT), refresh rotation, signing keys, the pre-request check
--
CREATE EXTENSION IF NOT EXISTS pgcrypto;
\set SHOW_CONTEXT never

-- base64url helpers and an independent HS256/384/512 signer (pgcrypto)
CREATE FUNCTION b64url(bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT rtrim(translate(encode($1, 'base64'), E'+/\n', '-_'), '=')
$$;
CREATE FUNCTION unb64url(text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT decode(translate($1, '-_', '+/') || repeat('=', (4 - length($1) % 4) % 4), 'base64')
$$;
CREATE FUNCTION jwt_part(token text, n int) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT convert_from(unb64url(split_part(token, '.', n)), 'UTF8')::jsonb
$$;
CREATE FUNCTION current_key() RETURNS bytea LANGUAGE sql AS $$
    SELECT unb64url(sessmgr.jwks() -> 'keys' -> 0 ->> 'k')
$$;
CREATE FUNCTION mint(header jsonb, payload jsonb, key bytea DEFAULT current_key(),
                     hash text DEFAULT 'sha256')
RETURNS text LANGUAGE sql AS $$
    SELECT b64url(convert_to(header::text, 'UTF8')) || '.' ||
           b64url(convert_to(payload::text, 'UTF8')) || '.' ||
           b64url(hmac(convert_to(b64url(convert_to(header::text, 'UTF8')) || '.' ||
                                  b64url(convert_to(payload::text, 'UTF8')), 'UTF8'),
                       key, hash))
$$;

CREATE TEMP TABLE a AS SELECT * FROM sessmgr.issue('tess', 'laptop');
SELECT access_token AS at, token AS rt, session_id AS sid FROM a \gset

-- the access token: a JWT with the current key's kid, HS256, and the claims
SELECT jwt_part(:'at', 1) - 'kid' AS header,
       jwt_part(:'at', 1) ->> 'kid' = (sessmgr.jwks() -> 'keys' -> 0 ->> 'kid') AS current_kid;
SELECT p ->> 'sub' AS sub, p ->> 'sid' = :'sid' AS sid_matches, p ->> 'role' AS role,
       (p ->> 'exp')::bigint - (p ->> 'iat')::bigint AS lifetime,
       length(p ->> 'gen') AS gen_length,
       abs((p ->> 'iat')::bigint - extract(epoch FROM clock_timestamp())) < 60 AS iat_now,
       p ? 'aud' AS has_aud, p ? 'iss' AS has_iss
  FROM (SELECT jwt_part(:'at', 2) AS p) x;
-- the signature is plain HS256 over header.payload with the JWKS key
SELECT mint(jwt_part(:'at', 1), jwt_part(:'at', 2)) IS NOT NULL AS minted,
       split_part(:'at', '.', 3) =
       b64url(hmac(convert_to(split_part(:'at', '.', 1) || '.' || split_part(:'at', '.', 2), 'UTF8'),
                   current_key(), 'sha256')) AS signature_matches;

-- verify: the claims for a good token
SELECT sessmgr.verify_access_token(:'at') = jwt_part(:'at', 2) AS verified;
-- a token minted independently with the same key and claims verifies too
SELECT sessmgr.verify_access_token(mint(jwt_part(:'at', 1), jwt_part(:'at', 2))) IS NOT NULL
       AS independent_token;

-- everything else: NULL, never an error
SELECT sessmgr.verify_access_token(NULL) IS NULL AS null_token,
       sessmgr.verify_access_token('') IS NULL AS empty,
       sessmgr.verify_access_token('garbage') IS NULL AS garbage,
       sessmgr.verify_access_token('a.b.c') IS NULL AS three_junk_parts,
       sessmgr.verify_access_token('..') IS NULL AS dots,
       sessmgr.verify_access_token(:'at' || '.') IS NULL AS four_parts,
       sessmgr.verify_access_token(split_part(:'at', '.', 1) || '.' ||
                                   split_part(:'at', '.', 2) || '.') IS NULL AS no_signature,
       sessmgr.verify_access_token(repeat(:'at', 200)) IS NULL AS huge,
       sessmgr.verify_access_token(repeat('x', 10 * 1024 * 1024)) IS NULL AS ten_megabytes,
       sessmgr.verify_access_token(:'rt') IS NULL AS session_token_is_not_access_token;
-- tampering
SELECT sessmgr.verify_access_token(split_part(:'at', '.', 1) || '.' ||
           b64url(convert_to((jwt_part(:'at', 2) || '{"sub": "mallory"}')::text, 'UTF8')) || '.' ||
           split_part(:'at', '.', 3)) IS NULL AS payload_tampered,
       sessmgr.verify_access_token(left(:'at', -2) ||
           CASE WHEN right(:'at', 2) = 'AA' THEN 'AB' ELSE 'AA' END) IS NULL AS signature_tampered,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1), jwt_part(:'at', 2) || '{"sub": "mallory"}'))
           IS NULL AS resigned_for_another_user,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1), jwt_part(:'at', 2), 'wrong key'::bytea))
           IS NULL AS wrong_key;
-- algorithms: none, one the key does not have, and the header never picks
SELECT sessmgr.verify_access_token(b64url('{"alg":"none","typ":"JWT"}'::bytea) || '.' ||
           split_part(:'at', '.', 2) || '.') IS NULL AS alg_none,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1) || '{"alg": "none"}', jwt_part(:'at', 2)))
           IS NULL AS alg_none_signed,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1) || '{"alg": "HS512"}', jwt_part(:'at', 2),
                                        hash => 'sha512')) IS NULL AS hs512_with_hs256_key,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1) || '{"alg": "RS256"}', jwt_part(:'at', 2)))
           IS NULL AS rs256,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1) || '{"kid": "nope"}', jwt_part(:'at', 2)))
           IS NULL AS unknown_kid,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1) - 'kid', jwt_part(:'at', 2)))
           IS NOT NULL AS no_kid_means_current_key;
-- malformed JSON inside a validly signed token
SELECT sessmgr.verify_access_token(mint(jwt_part(:'at', 1), '[1, 2]')) IS NULL AS payload_array,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1), '"just a string"')) IS NULL AS payload_string,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1),
           jwt_part(:'at', 2) || jsonb_build_object('note', repeat('[', 50))))
           IS NOT NULL AS brackets_inside_strings_are_data,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1),
           jwt_part(:'at', 2) || jsonb_build_object('deep',
               (repeat('[', 20) || repeat(']', 20))::jsonb))) IS NULL AS nested_too_deep,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1), jwt_part(:'at', 2) || '{"exp": "soon"}'))
           IS NULL AS exp_not_a_number,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1), jwt_part(:'at', 2) || '{"exp": 1e400}'))
           IS NULL AS exp_overflow,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1), jwt_part(:'at', 2) - 'exp'))
           IS NULL AS no_exp,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1), jwt_part(:'at', 2) - 'sid'))
           IS NULL AS no_sid,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1), jwt_part(:'at', 2) || '{"sid": "x"}'))
           IS NULL AS bad_sid,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1), jwt_part(:'at', 2) || '{"gen": "0000000000000000"}'))
           IS NULL AS wrong_gen;
-- the audit's findings: a number numeric cannot hold gives NULL, not an
-- error; a crit header is refused (RFC 7515: no extension is understood);
-- aud must be a string or an array of strings, never an object
CREATE FUNCTION mint_text(header text, payload text, key bytea DEFAULT current_key())
RETURNS text LANGUAGE sql AS $$
    SELECT b64url(convert_to(header, 'UTF8')) || '.' || b64url(convert_to(payload, 'UTF8')) || '.' ||
           b64url(hmac(convert_to(b64url(convert_to(header, 'UTF8')) || '.' ||
                                  b64url(convert_to(payload, 'UTF8')), 'UTF8'), key, 'sha256'))
$$;
SELECT sessmgr.verify_access_token(mint_text(jwt_part(:'at', 1)::text,
           rtrim(jwt_part(:'at', 2)::text, '}') || ', "x": 1e999999}')) IS NULL AS huge_exponent,
       sessmgr.verify_access_token(mint_text(jwt_part(:'at', 1)::text,
           rtrim(jwt_part(:'at', 2)::text, '}') || ', "x": -2.5E-1001}')) IS NULL AS tiny_exponent,
       sessmgr.verify_access_token(mint_text(jwt_part(:'at', 1)::text,
           rtrim(jwt_part(:'at', 2)::text, '}') || ', "x": 1e1000}')) ->> 'x' IS NOT NULL AS exponent_1000_is_data,
       sessmgr.verify_access_token(mint(jwt_part(:'at', 1) || '{"crit": ["exp"]}', jwt_part(:'at', 2)))
           IS NULL AS crit_header;
SET sessmgr.jwt_audience = 'my-api';
CREATE TEMP TABLE aud_shapes AS SELECT * FROM sessmgr.issue('tess', 'aud-shapes');
SELECT sessmgr.verify_access_token(mint(jwt_part(access_token, 1),
           jwt_part(access_token, 2) || '{"aud": {"x": "my-api"}}')) IS NULL AS aud_object,
       sessmgr.verify_access_token(mint(jwt_part(access_token, 1),
           jwt_part(access_token, 2) || '{"aud": [["my-api"]]}')) IS NULL AS aud_nested_array,
       sessmgr.verify_access_token(mint(jwt_part(access_token, 1),
           jwt_part(access_token, 2) || '{"aud": ["x", {"y": "my-api"}]}')) IS NULL AS aud_object_in_array,
       sessmgr.verify_access_token(mint(jwt_part(access_token, 1),
           jwt_part(access_token, 2) || '{"aud": ["x", "my-api"]}')) IS NOT NULL AS aud_array_still_matches
  FROM aud_shapes;
RESET sessmgr.jwt_audience;
-- deep nesting is refused before parsing (no stack-depth error)
SELECT sessmgr.verify_access_token(
           b64url(convert_to(repeat('[', 100000), 'UTF8')) || '.' ||
           split_part(:'at', '.', 2) || '.' || split_part(:'at', '.', 3)) IS NULL AS deep_header;

-- times, with 30 seconds of leeway as PostgREST
CREATE FUNCTION with_times(token text, exp_offset int, nbf_offset int DEFAULT NULL,
                           iat_offset int DEFAULT 0) RETURNS text
LANGUAGE sql AS $$
    SELECT mint(jwt_part(token, 1), jwt_part(token, 2) || jsonb_strip_nulls(jsonb_build_object(
        'exp', extract(epoch FROM clock_timestamp())::bigint + exp_offset,
        'nbf', extract(epoch FROM clock_timestamp())::bigint + nbf_offset,
        'iat', extract(epoch FROM clock_timestamp())::bigint + iat_offset)))
$$;
SELECT sessmgr.verify_access_token(with_times(:'at', -10)) IS NOT NULL AS expired_within_leeway,
       sessmgr.verify_access_token(with_times(:'at', -60)) IS NULL AS expired,
       sessmgr.verify_access_token(with_times(:'at', 600, 10)) IS NOT NULL AS nbf_within_leeway,
       sessmgr.verify_access_token(with_times(:'at', 600, 120)) IS NULL AS not_yet_valid,
       sessmgr.verify_access_token(with_times(:'at', 600, NULL, 120)) IS NULL AS issued_in_future;

-- audience and issuer, when configured
SET sessmgr.jwt_audience = 'my-api';
SET sessmgr.jwt_issuer = 'https://auth.example';
SELECT sessmgr.verify_access_token(:'at') IS NULL AS token_without_aud_refused;
CREATE TEMP TABLE aud AS SELECT * FROM sessmgr.issue('tess', 'aud');
SELECT jwt_part(access_token, 2) ->> 'aud' AS aud, jwt_part(access_token, 2) ->> 'iss' AS iss,
       sessmgr.verify_access_token(access_token) IS NOT NULL AS verified
  FROM aud;
SELECT sessmgr.verify_access_token(mint(jwt_part(access_token, 1),
           jwt_part(access_token, 2) || '{"aud": ["other", "my-api"]}')) IS NOT NULL AS aud_in_array,
       sessmgr.verify_access_token(mint(jwt_part(access_token, 1),
           jwt_part(access_token, 2) || '{"aud": "other"}')) IS NULL AS wrong_aud,
       sessmgr.verify_access_token(mint(jwt_part(access_token, 1),
           jwt_part(access_token, 2) || '{"iss": "https://evil.example"}')) IS NULL AS wrong_iss
  FROM aud;
RESET sessmgr.jwt_audience;
RESET sessmgr.jwt_issuer;

-- the role claim follows sessmgr.jwt_role
SET sessmgr.jwt_role = 'web_user';
SELECT jwt_part(access_token, 2) ->> 'role' AS role FROM sessmgr.issue('tess', 'role');
RESET sessmgr.jwt_role;
SET sessmgr.jwt_role = '';

-- an access token never outlives its session
BEGIN;
SET LOCAL sessmgr.idle_timeout = '5min';
SET LOCAL sessmgr.absolute_timeout = '5min';
SELECT (jwt_part(access_token, 2) ->> 'exp')::bigint = floor(extract(epoch FROM expires_at))
       AS capped_at_session_end
  FROM sessmgr.issue('tess', 'short');
COMMIT;

-- revoking the session kills its access tokens at once
SELECT sessmgr.verify_access_token(access_token) IS NOT NULL AS before_revoke FROM aud;
SELECT sessmgr.revoke_any(session_id) FROM aud;
SELECT sessmgr.verify_access_token(access_token) IS NULL AS after_revoke FROM aud;

--
-- refresh
--
SELECT status, session_id = :'sid' AS same_session, token <> :'rt' AS new_token,
       access_token <> :'at' AS new_access_token,
       expires_at = (SELECT expires_at FROM a) AS lifetime_not_extended
  FROM sessmgr.refresh(:'rt') \gset r1_
\echo :r1_status :r1_same_session :r1_new_token :r1_new_access_token :r1_lifetime_not_extended
SELECT token AS rt2, access_token AS at2 FROM sessmgr.refresh(:'rt') \gset
-- (that was the previous token, within the grace window: rotated again)
SELECT count(*) AS new_token_valid FROM sessmgr.validate(:'rt2');
SELECT count(*) AS old_token_valid FROM sessmgr.validate(:'rt');
SELECT sessmgr.verify_access_token(:'at2') IS NOT NULL AS new_access_token_valid,
       jwt_part(:'at2', 2) ->> 'gen' <> jwt_part(:'at', 2) ->> 'gen' AS new_gen;
-- a made-up secret for the session's id is invalid, and harms nobody
SELECT status FROM sessmgr.refresh(test_token(:'sid', sha256('made up'::bytea)));
SELECT count(*) AS still_valid FROM sessmgr.validate(:'rt2');
-- bad input
SELECT status, session_id IS NULL AS no_id, token IS NULL AS no_token
  FROM sessmgr.refresh(NULL);
SELECT status FROM sessmgr.refresh('');
SELECT status FROM sessmgr.refresh(repeat('x', 1024 * 1024));
SELECT status FROM sessmgr.refresh(:'at2');
-- three tabs refreshing with the same token: the original token, now two
-- rotations old, was superseded within sessmgr.refresh_grace: ok, rotated again
SELECT status, token AS rt3 FROM sessmgr.refresh(:'rt') \gset
\echo :status
SELECT count(*) AS rt3_valid FROM sessmgr.validate(:'rt3');
-- and the access tokens handed to the other tabs keep working until they
-- expire: the first one's token is two rotations old now
SELECT sessmgr.verify_access_token(:'at') IS NOT NULL AS first_tab_access_token_verifies,
       sessmgr.verify_access_token(:'at2') IS NOT NULL AS second_tab_access_token_verifies;
-- ... after the grace window it is reuse, and the session is revoked
SET sessmgr.refresh_grace = 0;
SELECT status, token IS NULL AS no_token FROM sessmgr.refresh(:'rt');
RESET sessmgr.refresh_grace;
SELECT revoke_reason FROM sessmgr.sessions WHERE id = :'sid';
SELECT count(*) AS valid_after_reuse FROM sessmgr.validate(:'rt3');
SELECT sessmgr.verify_access_token(:'at2') IS NULL AS access_token_dead;
SELECT event, reason FROM sessmgr.session_events WHERE session_id = :'sid' ORDER BY id;
-- and refreshing a revoked session is invalid
SELECT status FROM sessmgr.refresh(:'rt3');
-- each refresh keeps the newest 100 superseded tokens of its session
SELECT token AS b0 FROM sessmgr.issue('tess', 'bounded') \gset
CREATE TEMP TABLE chain (n int, token text);
INSERT INTO chain VALUES (0, :'b0');
DO $$
DECLARE t text := (SELECT token FROM chain WHERE n = 0);
BEGIN
    FOR i IN 1..150 LOOP
        SELECT r.token INTO t FROM sessmgr.refresh(t) r;
        INSERT INTO chain VALUES (i, t);
    END LOOP;
END $$;
SELECT count(*) AS retired_kept FROM sessmgr.retired_tokens
 WHERE session_id = (SELECT session_id FROM sessmgr.validate((SELECT token FROM chain WHERE n = 150)));
SET sessmgr.refresh_grace = 0;
-- one of the newest 100 is reuse; a token from before them is only invalid
SELECT status FROM sessmgr.refresh((SELECT token FROM chain WHERE n = 10));
SELECT status FROM sessmgr.refresh((SELECT token FROM chain WHERE n = 100));
RESET sessmgr.refresh_grace;

-- the previous token after the grace window is reuse too
SELECT token AS g0 FROM sessmgr.issue('tess', 'grace') \gset
SELECT token AS g1 FROM sessmgr.refresh(:'g0') \gset
SET sessmgr.refresh_grace = 0;
SELECT status FROM sessmgr.refresh(:'g0');
RESET sessmgr.refresh_grace;

-- an expired session cannot be refreshed
SELECT make_session('tess', now() - interval '3 hours', now() - interval '2 hours',
                    now() + interval '1 day') AS idle_rt \gset
SELECT status, session_id IS NOT NULL AS has_id FROM sessmgr.refresh(:'idle_rt');
-- but a made-up secret for it is invalid, not expired: the hash is judged
-- first, so a guesser learns nothing about the session's state
SELECT status, session_id IS NULL AS no_id
  FROM sessmgr.refresh(test_token((SELECT session_id FROM sessmgr.session_events
                                    WHERE event = 'issue' ORDER BY id DESC LIMIT 1),
                                  sha256('made up'::bytea)));

--
-- signing keys
--
SELECT jsonb_array_length(sessmgr.jwks() -> 'keys') AS keys,
       (sessmgr.jwks() -> 'keys' -> 0) - 'k' - 'kid' AS key_shape,
       length(unb64url(sessmgr.jwks() -> 'keys' -> 0 ->> 'k')) AS secret_bytes;
SELECT token AS kt, access_token AS kat FROM sessmgr.issue('tess', 'keys') \gset
SELECT sessmgr.rotate_signing_key('HS512') AS new_kid \gset
SELECT jsonb_array_length(sessmgr.jwks() -> 'keys') AS keys;
SELECT access_token AS kat2 FROM sessmgr.refresh(:'kt') \gset
SELECT jwt_part(:'kat2', 1) ->> 'alg' AS alg, jwt_part(:'kat2', 1) ->> 'kid' = :'new_kid' AS new_kid,
       sessmgr.verify_access_token(:'kat2') IS NOT NULL AS new_key_verifies,
       sessmgr.verify_access_token(:'kat') IS NOT NULL AS old_key_still_verifies;
SELECT sessmgr.retire_signing_key(jwt_part(:'kat', 1) ->> 'kid') AS retired;
SELECT sessmgr.verify_access_token(:'kat') IS NULL AS retired_key_refused,
       sessmgr.verify_access_token(:'kat2') IS NOT NULL AS current_key_verifies;
SELECT sqlstate_of(format('SELECT sessmgr.retire_signing_key(%L)', :'new_kid')) AS last_key;
SELECT sqlstate_of($$SELECT sessmgr.rotate_signing_key('RS256')$$) AS unsupported;
SELECT sqlstate_of($$SELECT sessmgr.rotate_signing_key('none')$$) AS none_alg;
SELECT sessmgr.retire_signing_key('no such kid') AS unknown_kid,
       sessmgr.retire_signing_key(NULL) AS null_kid;
-- publish first, sign later: a key due in an hour verifies at once but does
-- not sign yet (PostgREST can be given the new JWKS before it matters)
SELECT sessmgr.rotate_signing_key('HS256', now() + interval '1 hour') AS future_kid \gset
SELECT jsonb_array_length(sessmgr.jwks() -> 'keys') AS keys_published,
       sessmgr.jwks() -> 'keys' -> 0 ->> 'kid' = :'future_kid' AS listed_first;
SELECT jwt_part(access_token, 1) ->> 'kid' = :'new_kid' AS still_signed_by_current
  FROM sessmgr.issue('tess', 'future');
SELECT sessmgr.verify_access_token(mint(jwt_part(:'kat2', 1) || jsonb_build_object('kid', :'future_kid', 'alg', 'HS256'),
                                        jwt_part(:'kat2', 2),
                                        unb64url(sessmgr.jwks() -> 'keys' -> 0 ->> 'k'))) IS NOT NULL
       AS future_key_verifies;
-- the key that signs now cannot be retired while the other one is not due
SELECT sqlstate_of(format('SELECT sessmgr.retire_signing_key(%L)', :'new_kid')) AS not_due_yet;

--
-- the PostgREST pre-request check
--
-- what PostgREST sets for a request with "Authorization: Bearer <token>"
CREATE FUNCTION as_request(token text) RETURNS boolean LANGUAGE sql AS $$
    SELECT set_config('request.jwt.claims', coalesce(jwt_part(token, 2)::text, ''), true) IS NOT NULL
       AND set_config('request.headers',
                      json_build_object('user-agent', 'psql',
                                        'authorization', 'Bearer ' || token)::text, true) IS NOT NULL
$$;
SELECT token AS pt, access_token AS pat, session_id AS psid FROM sessmgr.issue('tess', 'api') \gset
BEGIN;
SELECT as_request(:'pat');
SELECT sessmgr_api.pre_request();
SELECT sessmgr.current_user_id(), sessmgr.current_session_id() = :'psid' AS session_set;
COMMIT;
-- the scheme is case-insensitive (RFC 7235)
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'bearer ' || :'pat')::text, true) IS NOT NULL;
SELECT sessmgr_api.pre_request();
SELECT sessmgr.current_user_id();
COMMIT;
-- anonymous requests pass, without identity
BEGIN;
SELECT set_config('request.jwt.claims', '{"role": "anon"}', true) IS NOT NULL;
SELECT sessmgr_api.pre_request();
SELECT sessmgr.current_user_id() IS NULL AS anonymous;
COMMIT;
BEGIN;
SELECT sessmgr_api.pre_request();
COMMIT;
-- a token of our role without a session is refused
BEGIN;
SELECT set_config('request.jwt.claims', '{"role": "authenticated", "sub": "tess"}', true) IS NOT NULL;
SELECT sessmgr_api.pre_request();
ROLLBACK;
-- claims set by hand, without the access token they came from, are refused:
-- anyone who can log in as the authenticator can set them
BEGIN;
SELECT set_config('request.jwt.claims', jwt_part(:'pat', 2)::text, true) IS NOT NULL;
SELECT sqlstate_of('SELECT sessmgr_api.pre_request()') AS claims_without_token;
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', jwt_part(:'pat', 2)::text, true) IS NOT NULL,
       set_config('request.headers', '{"authorization": "Bearer not.a.token"}', true) IS NOT NULL;
SELECT sqlstate_of('SELECT sessmgr_api.pre_request()') AS claims_with_junk_token;
ROLLBACK;
-- ... and so are claims that name another session than the token's
SELECT access_token AS oat FROM sessmgr.issue('tess', 'other') \gset
BEGIN;
SELECT as_request(:'oat');
SELECT set_config('request.jwt.claims', jwt_part(:'pat', 2)::text, true) IS NOT NULL;
SELECT sqlstate_of('SELECT sessmgr_api.pre_request()') AS claims_of_another_session;
ROLLBACK;
-- an expired token (with any exp in the claims) is refused: the token's own exp counts
BEGIN;
SELECT as_request(mint(jwt_part(:'pat', 1),
                       jwt_part(:'pat', 2) || jsonb_build_object('exp', extract(epoch FROM now())::bigint - 3600)));
SELECT set_config('request.jwt.claims', (jwt_part(:'pat', 2) || '{"exp": 9999999999}')::text, true) IS NOT NULL;
SELECT sqlstate_of('SELECT sessmgr_api.pre_request()') AS expired_token;
ROLLBACK;
-- a token signed with a key sessmgr does not have is refused
BEGIN;
SELECT as_request(mint(jwt_part(:'pat', 1), jwt_part(:'pat', 2), 'not our key'::bytea));
SELECT sqlstate_of('SELECT sessmgr_api.pre_request()') AS foreign_signature;
ROLLBACK;
-- a revoked session is refused with PostgREST's 401 error
SELECT sessmgr.revoke_any(:'psid');
BEGIN;
SELECT as_request(:'pat');
SELECT sqlstate_of('SELECT sessmgr_api.pre_request()');
ROLLBACK;
-- works in a read-only transaction (GET requests)
SELECT access_token AS rat FROM sessmgr.issue('tess', 'ro') \gset
BEGIN READ ONLY;
SELECT as_request(:'rat');
SELECT sessmgr_api.pre_request();
SELECT sessmgr.current_user_id();
COMMIT;

-- refresh and logout refuse a request that asks to be rolled back
-- (Prefer: tx=rollback): a reuse revocation must commit, so nobody may try
-- a refresh token for free
SELECT token AS txt FROM sessmgr.issue('tess', 'tx') \gset
BEGIN;
SELECT set_config('request.headers', '{"prefer": "return=representation, tx=rollback"}', true) IS NOT NULL;
SELECT sqlstate_of(format('SELECT sessmgr_api.refresh(%L)', :'txt')) AS refresh_rolled_back,
       sqlstate_of(format('SELECT sessmgr_api.logout(%L)', :'txt')) AS logout_rolled_back;
SELECT set_config('request.headers', '{"prefer": "tx=commit"}', true) IS NOT NULL;
SELECT sessmgr_api.refresh(:'txt') ->> 'status' AS refresh_committed;
COMMIT;

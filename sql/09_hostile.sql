--
-- Hostile input for every exposed function of sessmgr and sessmgr_api
--
-- NULLs, empty strings, 10 MB values, SQL-injection strings, control
-- characters, wrong types, invalid UTF-8 and NUL attempts, hostile PostgREST
-- request settings and out-of-range settings.  Each gives a documented error
-- or the "invalid" answer, never a crash: every statement after one is proof
-- that the server is still up.  The functions are listed from pg_proc, so a
-- function added later is called here too and shows up in the diff.
-- Nothing printed is a token, uuid or timestamp.
--
\set SHOW_CONTEXT never
LOAD 'sessmgr';
CREATE SCHEMA hostile;
SET search_path = hostile, public;

-- SQLSTATE and message of a statement's error, like sql/01_issue.sql's; a
-- message over 100 characters is cut and its length shown (so an error that
-- echoes a huge argument stands out), other than printable ASCII shows as ?
CREATE FUNCTION sqlstate_of(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(left(SQLERRM, 100), '[^\x20-\x7e]', '?', 'g') ||
           CASE WHEN length(SQLERRM) > 100
                THEN format('... (%s characters)', length(SQLERRM)) ELSE '' END;
END
$$;

-- every function of the extension, one row per argument position (0 for none)
CREATE VIEW functions AS
SELECT p.oid::regprocedure AS fn, n.nspname, p.proname, p.proargtypes::oid[] AS argtypes,
       p.proargnames, p.prorettype = 'trigger'::regtype AS is_trigger
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'sessmgr';

-- "SELECT f(...)" with argument pos set to the SQL expression val, the others NULL
CREATE FUNCTION call_with(f regprocedure, pos int, val text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('SELECT %I.%I(%s)', fn.nspname, fn.proname,
                  coalesce(string_agg(CASE WHEN a.ord = pos THEN val ELSE 'NULL' END
                                      || '::' || format_type(a.t, NULL), ', ' ORDER BY a.ord), ''))
      FROM functions fn
      LEFT JOIN LATERAL unnest(fn.argtypes) WITH ORDINALITY AS a(t, ord) ON true
     WHERE fn.fn = f
     GROUP BY fn.nspname, fn.proname
$$;

-- the functions whose answer depends on whether pg_cron is preloaded: the
-- loops below leave them to sql/10_hostile_cron.sql, so this file passes on
-- any server
CREATE VIEW cron_functions AS
SELECT fn FROM functions
 WHERE nspname = 'sessmgr' AND proname IN ('schedule_cleanup', 'unschedule_cleanup');

-- sqlstate_of(call_with(...)), or a pointer to 10_hostile_cron for those
CREATE FUNCTION try_call(f regprocedure, pos int, val text) RETURNS text
LANGUAGE sql AS $$
    SELECT CASE WHEN f IN (SELECT fn FROM cron_functions) THEN 'see 10_hostile_cron'
                ELSE sqlstate_of(call_with(f, pos, val)) END
$$;

-- the hostile strings
CREATE TABLE strings (name text PRIMARY KEY, v text NOT NULL);
INSERT INTO strings VALUES
    ('injection', $q$'; DROP TABLE sessmgr.sessions; --$q$),
    ('injection_2', $q$Robert'); DROP TABLE sessmgr.session_events;--$q$),
    ('injection_3', $q$" OR 1=1; SELECT pg_sleep(10); -- $$ \$q$),
    ('control', E'line\nbreak\ttab\rreturn\bback\u0001\u007f'),
    ('unicode', E'\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9 \u202eright-to-left \U0001F600 \ufeff');
-- a 10 MB value as stored (compressed in TOAST); inline repeat() gives one in memory
CREATE TABLE huge AS SELECT repeat('x', 10 * 1024 * 1024) AS v;
SELECT length(v) AS huge_length, pg_column_size(v) < 1024 * 1024 AS stored_compressed FROM huge;

------------------------------------------------------------------------------
-- The functions.  A new function appears here and in every list below.
------------------------------------------------------------------------------
SELECT fn, is_trigger FROM functions ORDER BY fn::text COLLATE "C";

------------------------------------------------------------------------------
-- Every function with every argument NULL
------------------------------------------------------------------------------
SELECT fn, try_call(fn, 0, NULL) AS all_null
  FROM functions ORDER BY fn::text COLLATE "C";
SELECT 'up' AS server;

------------------------------------------------------------------------------
-- Every text argument of every function: empty, 10 MB (in memory and as
-- stored), SQL injection, control characters, exotic Unicode; the other
-- arguments NULL
------------------------------------------------------------------------------
CREATE TABLE text_args AS
SELECT fn, a.ord::int AS pos,
       coalesce(fn_args.proargnames[a.ord], '$' || a.ord) AS arg
  FROM functions fn_args
  CROSS JOIN LATERAL unnest(fn_args.argtypes) WITH ORDINALITY AS a(t, ord)
 WHERE a.t = 'text'::regtype;

SELECT fn, arg,
       try_call(fn, pos, quote_literal('')) AS empty,
       try_call(fn, pos, 'repeat(''x'', 10 * 1024 * 1024)') AS huge_in_memory,
       try_call(fn, pos, '(SELECT v FROM hostile.huge)') AS huge_stored
  FROM text_args ORDER BY fn::text COLLATE "C", pos;
SELECT 'up' AS server;

SELECT fn, arg,
       try_call(fn, pos, quote_literal((SELECT v FROM strings WHERE name = 'injection')))
           AS injection,
       try_call(fn, pos, quote_literal((SELECT v FROM strings WHERE name = 'control')))
           AS control,
       try_call(fn, pos, quote_literal((SELECT v FROM strings WHERE name = 'unicode')))
           AS unicode
  FROM text_args ORDER BY fn::text COLLATE "C", pos;
SELECT 'up' AS server;

------------------------------------------------------------------------------
-- Every function as a role with USAGE but no EXECUTE: permission denied
------------------------------------------------------------------------------
CREATE ROLE sessmgr_regress_hostile;
GRANT USAGE ON SCHEMA sessmgr, sessmgr_api, sessmgr_admin_api, hostile TO sessmgr_regress_hostile;
GRANT SELECT ON functions TO sessmgr_regress_hostile;
SET ROLE sessmgr_regress_hostile;
SELECT fn, sqlstate_of(call_with(fn, 0, NULL)) AS without_grant
  FROM functions ORDER BY fn::text COLLATE "C";
RESET ROLE;
SELECT 'up' AS server;

------------------------------------------------------------------------------
-- The documented errors, argument by argument, with the others valid
------------------------------------------------------------------------------
-- issue: one argument over its limit or malformed at a time
SELECT sqlstate_of($$SELECT sessmgr.issue(repeat('x', 10 * 1024 * 1024))$$) AS user_id,
       sqlstate_of($$SELECT sessmgr.issue('hostile-u', repeat('x', 10 * 1024 * 1024))$$) AS device_name,
       sqlstate_of($$SELECT sessmgr.issue('hostile-u', NULL, repeat('x', 10 * 1024 * 1024))$$) AS user_agent,
       sqlstate_of($$SELECT sessmgr.issue('hostile-u', location => (SELECT v FROM hostile.huge))$$) AS location;
SELECT sqlstate_of($$SELECT sessmgr.issue('hostile-u', metadata => jsonb_build_object('k', (SELECT v FROM hostile.huge)))$$)
           AS huge_metadata,
       sqlstate_of($$SELECT sessmgr.issue('hostile-u', metadata => '[]')$$) AS array_metadata,
       sqlstate_of($$SELECT sessmgr.issue('hostile-u', metadata => 'null')$$) AS json_null_metadata,
       sqlstate_of($$SELECT sessmgr.issue('hostile-u', metadata => '"x"')$$) AS string_metadata;
-- limits count bytes, not characters: 128 two-byte characters fit, 129 do not
SELECT sqlstate_of($$SELECT sessmgr.issue(repeat(E'\u00e9', 128))$$) AS user_id_256_bytes,
       sqlstate_of($$SELECT sessmgr.issue(repeat(E'\u00e9', 129))$$) AS user_id_258_bytes;
-- deep nesting in metadata is jsonb's own business, before sessmgr sees it
SELECT sqlstate_of($$SELECT sessmgr.issue('hostile-u', metadata => (repeat('[', 100000) || repeat(']', 100000))::jsonb)$$)
           AS deep_metadata;
-- nothing of the failed calls was stored
SELECT count(*) AS hostile_u_sessions FROM sessmgr.sessions WHERE user_id = 'hostile-u';

-- revoke and revoke_all
CREATE TABLE s AS SELECT session_id FROM sessmgr.issue('hostile-r');
SELECT sqlstate_of($$SELECT sessmgr.revoke(NULL, 'hostile-r')$$) AS null_id,
       sqlstate_of($$SELECT sessmgr.revoke(gen_random_uuid(), 'hostile-r')$$) AS unknown_id,
       sqlstate_of(format('SELECT sessmgr.revoke(%L, %L)', (SELECT session_id FROM s), 'hostile-other'))
           AS other_users_session,
       sqlstate_of(format('SELECT sessmgr.revoke(%L, repeat(''x'', 10 * 1024 * 1024))', (SELECT session_id FROM s)))
           AS huge_user_id;
-- the user id is required: ending anyone's session is revoke_any's job
SELECT sqlstate_of(format('SELECT sessmgr.revoke(%L, NULL)', (SELECT session_id FROM s))) AS null_user_id,
       sqlstate_of(format('SELECT sessmgr.revoke(%L)', (SELECT session_id FROM s))) AS no_user_id,
       sqlstate_of($$SELECT sessmgr.revoke_any(NULL)$$) AS any_null_id,
       sqlstate_of($$SELECT sessmgr.revoke_any(gen_random_uuid())$$) AS any_unknown_id;
SELECT sqlstate_of(format('SELECT sessmgr.revoke(%L, %L, reason => NULL)', (SELECT session_id FROM s), 'hostile-r')) AS null_reason,
       sqlstate_of(format('SELECT sessmgr.revoke(%L, %L, reason => %L)', (SELECT session_id FROM s), 'hostile-r', '')) AS empty_reason,
       sqlstate_of(format('SELECT sessmgr.revoke(%L, %L, reason => repeat(''r'', 65))', (SELECT session_id FROM s), 'hostile-r'))
           AS reason_65_bytes,
       sqlstate_of(format('SELECT sessmgr.revoke(%L, %L, reason => (SELECT v FROM hostile.huge))', (SELECT session_id FROM s), 'hostile-r'))
           AS huge_reason,
       sqlstate_of(format('SELECT sessmgr.revoke_any(%L, reason => (SELECT v FROM hostile.huge))', (SELECT session_id FROM s)))
           AS any_huge_reason;
-- the reasons sessmgr writes itself cannot be forged (an "evict", a theft alarm)
SELECT sqlstate_of(format('SELECT sessmgr.revoke(%L, %L, %L)', (SELECT session_id FROM s), 'hostile-r', 'cap')) AS cap,
       sqlstate_of(format('SELECT sessmgr.revoke(%L, %L, %L)', (SELECT session_id FROM s), 'hostile-r', 'token_reuse')) AS token_reuse,
       sqlstate_of(format('SELECT sessmgr.revoke_any(%L, %L)', (SELECT session_id FROM s), 'erased')) AS any_erased,
       sqlstate_of($$SELECT sessmgr.revoke_all('hostile-r', reason => 'cap')$$) AS all_cap;
SELECT sqlstate_of($$SELECT sessmgr.revoke_all(NULL)$$) AS null_user,
       sqlstate_of($$SELECT sessmgr.revoke_all('')$$) AS empty_user,
       sqlstate_of($$SELECT sessmgr.revoke_all(repeat('x', 10 * 1024 * 1024))$$) AS huge_user,
       sqlstate_of($$SELECT sessmgr.revoke_all('hostile-r', reason => NULL)$$) AS null_reason,
       sqlstate_of($$SELECT sessmgr.revoke_all('hostile-r', reason => repeat('r', 10 * 1024 * 1024))$$) AS huge_reason;
-- the session outlived all of that
SELECT count(*) AS still_active FROM sessmgr.active_sessions WHERE user_id = 'hostile-r';

-- token readers: "invalid", never an error
SELECT (SELECT count(*) FROM sessmgr.validate((SELECT v FROM huge))) AS validate_stored_huge,
       sessmgr.authenticate((SELECT v FROM huge)) IS NULL AS authenticate_stored_huge,
       (SELECT status FROM sessmgr.refresh((SELECT v FROM huge))) AS refresh_stored_huge,
       sessmgr.verify_access_token((SELECT v FROM huge)) IS NULL AS verify_stored_huge;
SELECT (SELECT count(*) FROM sessmgr.validate('sessmgr_' || repeat(E'\u00e9', 32))) AS multibyte_72_bytes,
       (SELECT status FROM sessmgr.refresh('sessmgr_' || repeat(E'\u00e9', 32))) AS refresh_multibyte,
       (SELECT status FROM sessmgr.refresh('sessmgr_' || repeat('A', 64))) AS refresh_all_zero_token,
       sessmgr.verify_access_token(repeat('.', 8192)) IS NULL AS only_dots,
       sessmgr.verify_access_token('eyJ9.eyJ9.' || repeat('A', 8000)) IS NULL AS long_signature;

-- signing keys (the unsupported algorithm is named in the error, whatever its size)
SELECT sqlstate_of($$SELECT sessmgr.rotate_signing_key('')$$) AS empty_alg,
       sqlstate_of($$SELECT sessmgr.rotate_signing_key('none')$$) AS none,
       sqlstate_of($$SELECT sessmgr.rotate_signing_key('hs256')$$) AS lower_case,
       sqlstate_of($$SELECT sessmgr.rotate_signing_key('RS256')$$) AS rs256;
SELECT sqlstate_of($$SELECT sessmgr.rotate_signing_key(repeat('x', 10 * 1024 * 1024))$$) AS huge_alg;
SELECT sqlstate_of($$SELECT sessmgr.retire_signing_key('')$$) AS empty_kid,
       sqlstate_of($$SELECT sessmgr.retire_signing_key(repeat('x', 10 * 1024 * 1024))$$) AS huge_kid,
       sqlstate_of(format('SELECT sessmgr.retire_signing_key(%L)', (SELECT v FROM strings WHERE name = 'injection')))
           AS injection_kid;
SELECT count(*) > 0 AS usable_keys, bool_and(length(k ->> 'k') = 86) AS keys_intact
  FROM jsonb_array_elements(sessmgr.jwks() -> 'keys') k;
SELECT 'up' AS server;

------------------------------------------------------------------------------
-- SQL injection: stored verbatim, nothing executed
------------------------------------------------------------------------------
CREATE TABLE inj AS
SELECT x.session_id, x.token, x.access_token
  FROM strings u, strings d, strings a, strings l,
       LATERAL sessmgr.issue(u.v, d.v, a.v, NULL, l.v, false,
                             jsonb_build_object('note', u.v)) x
 WHERE u.name = 'injection' AND d.name = 'injection_2' AND a.name = 'injection_3'
   AND l.name = 'control';
SELECT to_regclass('sessmgr.sessions') IS NOT NULL AS sessions_table_exists,
       to_regclass('sessmgr.session_events') IS NOT NULL AS events_table_exists;
SELECT s.user_id = (SELECT v FROM strings WHERE name = 'injection') AS user_id_verbatim,
       s.device_name = (SELECT v FROM strings WHERE name = 'injection_2') AS device_verbatim,
       s.user_agent = (SELECT v FROM strings WHERE name = 'injection_3') AS agent_verbatim,
       s.location = (SELECT v FROM strings WHERE name = 'control') AS location_verbatim,
       s.metadata ->> 'note' = s.user_id AS metadata_verbatim
  FROM inj JOIN sessmgr.sessions s ON s.id = inj.session_id;
-- it works as any user id: validate, list, refresh, access token, revoke
SELECT v.user_id = (SELECT v FROM strings WHERE name = 'injection') AS validates
  FROM inj, sessmgr.validate(inj.token) v;
SELECT l.device_name = (SELECT v FROM strings WHERE name = 'injection_2') AS listed_verbatim, l.is_current
  FROM inj, sessmgr.list_sessions((SELECT v FROM strings WHERE name = 'injection'), inj.session_id) l;
SELECT sessmgr.verify_access_token(access_token) ->> 'sub' = (SELECT v FROM strings WHERE name = 'injection')
           AS access_token_sub_verbatim
  FROM inj;
SELECT sessmgr.revoke(session_id, (SELECT v FROM strings WHERE name = 'injection'),
                      (SELECT left(v, 64) FROM strings WHERE name = 'injection_2')) AS revoked
  FROM inj;
SELECT e.reason = (SELECT left(v, 64) FROM strings WHERE name = 'injection_2') AS reason_verbatim,
       e.user_id = (SELECT v FROM strings WHERE name = 'injection') AS event_user_verbatim
  FROM inj JOIN sessmgr.session_events e ON e.session_id = inj.session_id AND e.event = 'revoke';
SELECT sessmgr.revoke_all((SELECT v FROM strings WHERE name = 'injection_3'),
                          reason => (SELECT v FROM strings WHERE name = 'injection')) AS revoked_none;
SELECT count(*) > 0 AS sessions_still_there FROM sessmgr.sessions;
SELECT 'up' AS server;

------------------------------------------------------------------------------
-- Wrong types, invalid UTF-8 and NUL bytes: PostgreSQL stops them before
-- any sessmgr code runs
------------------------------------------------------------------------------
SELECT sqlstate_of($$SELECT sessmgr.validate(42)$$) AS integer_token,
       sqlstate_of($$SELECT sessmgr.issue(ARRAY['a'])$$) AS array_user;
SELECT sqlstate_of($$SELECT sessmgr.revoke('not-a-uuid', 'x')$$) AS bad_uuid,
       sqlstate_of($$SELECT sessmgr.issue('u', ip => 'not an address')$$) AS bad_inet,
       sqlstate_of($$SELECT sessmgr.issue('u', remember => 'maybe')$$) AS bad_boolean,
       sqlstate_of($$SELECT sessmgr.issue('u', metadata => '{not json')$$) AS bad_jsonb,
       sqlstate_of($$SELECT sessmgr.set_session_cookie('t', 'yesterday-ish')$$) AS bad_timestamptz;
-- invalid UTF-8 never becomes text: not from bytes, not from a literal
SELECT sqlstate_of($$SELECT sessmgr.validate(convert_from('\xc328'::bytea, 'UTF8'))$$) AS from_bytes,
       sqlstate_of($$SELECT sessmgr.validate(convert_from('\xff'::bytea, 'SQL_ASCII'))$$) AS from_sql_ascii,
       sqlstate_of($$SELECT sessmgr.issue(E'\xc3\x28')$$) AS literal,
       sqlstate_of($$SELECT sessmgr.issue(E'\xed\xa0\x80')$$) AS surrogate_bytes,
       sqlstate_of($$SELECT sessmgr.issue(U&'\D800')$$) AS surrogate_escape;
-- a NUL byte cannot be in a text value at all
SELECT sqlstate_of($$SELECT sessmgr.issue('a' || chr(0) || 'b')$$) AS chr_0,
       sqlstate_of($$SELECT sessmgr.validate(E'sessmgr_\x00')$$) AS escape_x00,
       sqlstate_of($$SELECT sessmgr.validate(E'sessmgr_\u0000')$$) AS escape_u0000,
       sqlstate_of($$SELECT sessmgr.validate(convert_from('\x00'::bytea, 'UTF8'))$$) AS from_bytes,
       sqlstate_of($$SELECT sessmgr.issue('u', metadata => '{"k": "\u0000"}')$$) AS in_jsonb;
SELECT 'up' AS server;

------------------------------------------------------------------------------
-- Hostile PostgREST request settings (any role can set request.*)
------------------------------------------------------------------------------
-- request.jwt.claims for the pre-request check: 401 or anonymous, never another error
CREATE FUNCTION pre_request_with(claims text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('request.jwt.claims', claims, true);
    RETURN sqlstate_of('SELECT sessmgr_api.pre_request()');
END
$$;
SELECT c.name, left(pre_request_with(c.claims), 60) AS pre_request
  FROM (VALUES
    ('empty', ''),
    ('not json', 'not json'),
    ('array', '[1, 2]'),
    ('deep, under 8 kB', repeat('{"a":', 1000) || '1' || repeat('}', 1000)),
    ('deep, over 8 kB', repeat('[', 100000) || repeat(']', 100000)),
    ('huge', '{"role": "authenticated", "x": "' || repeat('x', 10 * 1024 * 1024) || '"}'),
    ('just over 8 kB', '{"role": "anon", "x": "' || repeat('x', 8192) || '"}'),
    ('anonymous', '{"role": "anon"}'),
    ('our role, no sid', '{"role": "authenticated"}'),
    ('unknown sid', '{"role": "authenticated", "sub": "x", "exp": 9999999999, "gen": "0000000000000000", "sid": "00000000-0000-4000-8000-000000000000"}'),
    ('injection sub', format('{"role": "authenticated", "sub": %s, "sid": "x", "exp": 9999999999}',
                             to_json((SELECT v FROM strings WHERE name = 'injection'))::text)),
    ('sid not a uuid', '{"role": "authenticated", "sid": "''; DROP TABLE x; --", "exp": 9999999999}'),
    ('exp overflow', '{"role": "authenticated", "sid": "00000000-0000-4000-8000-000000000000", "exp": 1e999}'),
    ('unicode escapes', '{"role": "\u0061uthenticated", "sub": "\u00e9\ud83d\ude00"}'),
    ('lone surrogate', '{"role": "anon", "sub": "\ud800"}'),
    ('escaped NUL', '{"role": "anon", "sub": "\u0000"}')
  ) AS c(name, claims);
SELECT sessmgr.current_user_id() IS NULL AS no_identity_left;

-- request.headers: junk JSON is an error of the request, not a crash; a
-- forged client address is ignored unless trusted, and refused when malformed
SELECT set_config('request.headers', 'not json', false) IS NOT NULL AS set;
SELECT sqlstate_of($$SELECT sessmgr.issue_from_request('hostile-h')$$) AS issue_junk_headers,
       sessmgr.request_ip() IS NULL AS ip_untrusted;
SET sessmgr.trusted_proxies = 1;
SELECT h.name, sqlstate_of(format('SELECT set_config(''request.headers'', %L, false)', h.headers)) AS set,
       sessmgr.request_ip() AS ip
  FROM (VALUES
    ('not json', 'not json'),
    ('client then proxy hop', '{"x-forwarded-for": "198.51.100.7, 10.0.0.1"}'),
    ('injection', '{"x-forwarded-for": "1.2.3.4''; DROP TABLE x; --"}'),
    ('not an address', '{"x-forwarded-for": "999.1.1.1"}'),
    ('ipv6', '{"x-forwarded-for": "2001:db8::1"}'),
    ('huge', '{"x-forwarded-for": "' || repeat('1', 10 * 1024 * 1024) || '"}'),
    ('array', '{"x-forwarded-for": ["1.2.3.4"]}')
  ) AS h(name, headers)
 ORDER BY h.name COLLATE "C";
RESET sessmgr.trusted_proxies;
-- a huge user agent is cut to the column's limit
SELECT set_config('request.headers', json_build_object('user-agent', repeat('a', 10 * 1024 * 1024))::text, false)
       IS NOT NULL AS set;
SELECT sessmgr.issue_from_request('hostile-h')::jsonb ->> 'status' AS status;
SELECT length(user_agent) AS stored_agent_length FROM sessmgr.sessions WHERE user_id = 'hostile-h';
SELECT set_config('request.headers', '', false) IS NOT NULL AS reset;

-- request.cookies for refresh and logout
SELECT c.name, sqlstate_of(format('SELECT set_config(''request.cookies'', %L, false)', c.cookies)) AS set,
       sqlstate_of('SELECT sessmgr_api.refresh()') AS refresh,
       sqlstate_of('SELECT sessmgr_api.logout()') AS logout
  FROM (VALUES
    ('not json', 'not json'),
    ('no cookie', '{}'),
    ('junk cookie', '{"__Host-sessmgr_refresh": "junk"}'),
    ('huge cookie', '{"__Host-sessmgr_refresh": "' || repeat('x', 10 * 1024 * 1024) || '"}'),
    ('number cookie', '{"__Host-sessmgr_refresh": 42}')
  ) AS c(name, cookies)
 ORDER BY c.name COLLATE "C";
SELECT set_config('request.cookies', '', false) IS NOT NULL AS reset;
SELECT sessmgr_api.refresh('junk')::jsonb AS refresh_junk,
       current_setting('response.status', true) AS response_status;
SELECT sessmgr_api.refresh((SELECT v FROM huge))::jsonb AS refresh_huge;

-- the endpoints that need an identity refuse without one, whatever the argument
SELECT sqlstate_of($$SELECT sessmgr_api.my_sessions()$$) AS my_sessions,
       sqlstate_of($$SELECT sessmgr_api.revoke_session(gen_random_uuid())$$) AS revoke_session,
       sqlstate_of($$SELECT sessmgr_api.revoke_other_sessions()$$) AS revoke_other_sessions;
-- with one, a session id that is not the caller's is the same 404 as NULL
BEGIN;
CREATE TABLE api AS SELECT token FROM sessmgr.issue('hostile-api');
SELECT sessmgr.authenticate(token) IS NOT NULL AS authenticated FROM api;
SELECT sqlstate_of($$SELECT sessmgr_api.revoke_session(NULL)$$) AS null_id,
       sqlstate_of(format('SELECT sessmgr_api.revoke_session(%L)', (SELECT session_id FROM s))) AS other_users;
COMMIT;
SELECT 'up' AS server;

-- the administrators' endpoints read the administrator from request.jwt.claims:
-- junk there is an error of the request; a sub of any JSON type is text,
-- cut to 256 bytes; nothing of it becomes an identity
BEGIN;
SET LOCAL request.jwt.claims = 'not json';
SELECT sqlstate_of($$SELECT sessmgr_admin_api.revoke_user_sessions('hostile-admin', 'x')$$) AS junk_claims;
SET LOCAL request.jwt.claims = '{"sub": {"nested": [1, 2]}}';
SELECT sessmgr_admin_api.revoke_user_sessions('hostile-admin', 'x') AS object_sub;
SELECT sessmgr.current_user_id() IS NULL AS no_identity;
COMMIT;
BEGIN;
SELECT set_config('request.jwt.claims', json_build_object('sub', repeat('a', 10 * 1024 * 1024))::text, true) IS NOT NULL AS huge_sub_set;
CREATE TABLE admin_s AS SELECT session_id FROM sessmgr.issue('hostile-admin');
SELECT sessmgr_admin_api.revoke_session(session_id, 'huge sub') AS huge_sub FROM admin_s;
COMMIT;
SELECT octet_length(actor_user_id) AS huge_sub_cut_to FROM sessmgr.session_events
 WHERE session_id = (SELECT session_id FROM admin_s) AND event = 'revoke';
-- another user's data never shows: a search or an export for one user id
-- holds nothing of the others, whatever the id looks like
SELECT count(*) AS other_users_rows
  FROM strings, LATERAL jsonb_array_elements(sessmgr.search_sessions(user_id => strings.v, state => 'all') -> 'sessions') x
 WHERE x ->> 'user_id' <> strings.v;
SELECT bool_and(sessmgr.export_user(strings.v) ->> 'user_id' = strings.v
                AND NOT sessmgr.export_user(strings.v)::text LIKE '%hostile-admin%') AS exports_only_theirs
  FROM strings;
SELECT 'up' AS server;

------------------------------------------------------------------------------
-- Out-of-range settings: refused by their checks, the old value stays.
-- (PostgreSQL itself rounds 1.5 for an integer and matches enum values in any
-- case; sessmgr.jwt_role only has to be a non-empty name.)
------------------------------------------------------------------------------
SELECT s.name, s.value,
       sqlstate_of(format('SET %s = %L', s.name, s.value)) AS result
  FROM (VALUES
    ('sessmgr.max_sessions', '0'), ('sessmgr.max_sessions', '10001'),
    ('sessmgr.max_sessions', '-2147483648'), ('sessmgr.max_sessions', '99999999999999999999'),
    ('sessmgr.max_sessions', '1.5'), ('sessmgr.max_sessions', 'many'),
    ('sessmgr.cap_policy', ''), ('sessmgr.cap_policy', 'EVICT_OLDEST'),
    ('sessmgr.cap_policy', 'evict_oldest; DROP TABLE x'),
    ('sessmgr.idle_timeout', '0'), ('sessmgr.idle_timeout', '-1s'),
    ('sessmgr.idle_timeout', '1000000000000000d'), ('sessmgr.idle_timeout', '1 fortnight'),
    ('sessmgr.absolute_timeout', '0'), ('sessmgr.absolute_timeout', '30min'),
    ('sessmgr.remember_idle_timeout', '-1'), ('sessmgr.remember_absolute_timeout', '1s'),
    ('sessmgr.touch_interval', '-1'), ('sessmgr.touch_interval', '9999999999999'),
    ('sessmgr.access_token_ttl', '0'), ('sessmgr.access_token_ttl', '-5min'),
    ('sessmgr.refresh_grace', '-1'), ('sessmgr.refresh_grace', '6min'),
    ('sessmgr.retention', '-1'), ('sessmgr.event_retention', '-1'),
    ('sessmgr.trusted_proxies', '-1'),
    ('sessmgr.jwt_role', ''), ('sessmgr.jwt_role', 'x"; DROP TABLE x; --'),
    ('sessmgr.jwt_audience', repeat('a', 257)), ('sessmgr.jwt_issuer', repeat('i', 257))
  ) AS s(name, value)
 ORDER BY s.name COLLATE "C", s.value COLLATE "C";
SELECT sqlstate_of($$SET sessmgr.jwt_role = $$ || quote_literal(repeat('r', 10 * 1024 * 1024))) AS huge_role;
SELECT name, setting FROM pg_settings
 WHERE name IN ('sessmgr.max_sessions', 'sessmgr.cap_policy', 'sessmgr.idle_timeout', 'sessmgr.jwt_role')
 ORDER BY name COLLATE "C";
-- issuing still works with the settings as they are
SELECT count(*) AS issued FROM sessmgr.issue('hostile-settings');
RESET sessmgr.max_sessions;
RESET sessmgr.cap_policy;
RESET sessmgr.jwt_role;
SELECT 'up' AS server;

-- COPY counts as a restore only when it loads sessmgr.sessions itself
-- (COPY sessmgr.sessions FROM ..., which only the owner may run).  A role
-- with nothing but EXECUTE on issue and revoke_all gets no way around the
-- cap and the audit trail through COPY ... TO of a call, a view or a
-- function, or through COPY FROM into a table of its own whose trigger issues.
SET sessmgr.max_sessions = 2;
SET sessmgr.cap_policy = 'reject';
CREATE ROLE sessmgr_regress_copier;
GRANT USAGE ON SCHEMA sessmgr TO sessmgr_regress_copier;
GRANT EXECUTE ON FUNCTION sessmgr.issue(text, text, text, inet, text, boolean, jsonb, jsonb, text),
                          sessmgr.revoke_all(text, uuid, text) TO sessmgr_regress_copier;
GRANT USAGE, CREATE ON SCHEMA hostile TO sessmgr_regress_copier;
SET ROLE sessmgr_regress_copier;
COPY (SELECT count(*) FROM sessmgr.issue('copy-u')) TO STDOUT;
COPY (SELECT count(*) FROM sessmgr.issue('copy-u')) TO STDOUT;
COPY (SELECT count(*) FROM sessmgr.issue('copy-u')) TO STDOUT;
CREATE VIEW hostile.issuing AS SELECT * FROM sessmgr.issue('copy-u');
COPY (SELECT count(*) FROM hostile.issuing) TO STDOUT;
CREATE FUNCTION hostile.issue_one() RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM sessmgr.issue('copy-u') $$;
COPY (SELECT hostile.issue_one()) TO STDOUT;
CREATE TABLE hostile.logins (user_id text);
CREATE FUNCTION hostile.logins_issue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM sessmgr.issue(NEW.user_id); RETURN NEW; END $$;
CREATE TRIGGER logins_issue BEFORE INSERT ON hostile.logins
    FOR EACH ROW EXECUTE FUNCTION hostile.logins_issue();
COPY hostile.logins FROM STDIN;
copy-w
copy-w
\.
COPY hostile.logins FROM STDIN;
copy-w
\.
RESET ROLE;
SELECT user_id, count(*) AS active
  FROM sessmgr.active_sessions WHERE user_id LIKE 'copy-%' GROUP BY user_id ORDER BY user_id;
SELECT user_id, count(*) AS issue_events
  FROM sessmgr.session_events WHERE user_id LIKE 'copy-%' AND event = 'issue'
 GROUP BY user_id ORDER BY user_id;
SET ROLE sessmgr_regress_copier;
COPY (SELECT sessmgr.revoke_all('copy-u')) TO STDOUT;
RESET ROLE;
SELECT count(*) AS revoke_events, min(actor::text) = 'sessmgr_regress_copier' AS actor_is_copier
  FROM sessmgr.session_events WHERE user_id = 'copy-u' AND event = 'revoke';
RESET sessmgr.max_sessions;
RESET sessmgr.cap_policy;
DROP VIEW hostile.issuing;
DROP FUNCTION hostile.issue_one();
DROP TABLE hostile.logins;
DROP FUNCTION hostile.logins_issue();
REVOKE ALL ON SCHEMA sessmgr, hostile FROM sessmgr_regress_copier;
REVOKE ALL ON FUNCTION sessmgr.issue(text, text, text, inet, text, boolean, jsonb, jsonb, text),
                       sessmgr.revoke_all(text, uuid, text) FROM sessmgr_regress_copier;
DROP ROLE sessmgr_regress_copier;

-- refresh_devices: batch sizes out of range, NULL
SELECT sqlstate_of('CALL sessmgr.refresh_devices(NULL)') AS null_batch,
       sqlstate_of('CALL sessmgr.refresh_devices(0)') AS zero_batch,
       sqlstate_of('CALL sessmgr.refresh_devices(100001)') AS huge_batch;
-- issue: client hints that are not an object, or too long
SELECT sqlstate_of($$SELECT sessmgr.issue('hostile-ch', client_hints => '[1]')$$) AS hints_array,
       sqlstate_of($$SELECT sessmgr.issue('hostile-ch', client_hints => jsonb_build_object('sec-ch-ua', repeat('x', 20000)))$$) AS hints_huge,
       sqlstate_of($$SELECT sessmgr.issue('hostile-ch', user_agent => repeat('(a+)+', 400), client_hints => '{"sec-ch-ua": "\"x"}')$$) AS bomb_ua;

-- events_since: max_rows NULL or out of range; any cursor is fine; a
-- transaction snapshot (taken before the feed's horizon) is refused
SELECT sqlstate_of('SELECT sessmgr.events_since(0, NULL)') AS null_rows,
       sqlstate_of('SELECT sessmgr.events_since(0, -1)') AS negative_rows,
       sqlstate_of('SELECT sessmgr.events_since(0, 2147483647)') AS huge_rows;
SELECT sqlstate_of('SELECT sessmgr.events_since(-9223372036854775808, 1)') AS min_cursor,
       sqlstate_of('SELECT sessmgr.events_since(9223372036854775807, 10000)') AS max_cursor;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT sqlstate_of('SELECT sessmgr.events_since(0)') AS repeatable_read;
ROLLBACK;

-- analytics: a bucket that is zero, negative, in months, too long or too
-- short: a clear error at once (and never more than 10,000 buckets: 16_analytics)
SELECT sqlstate_of($$SELECT * FROM sessmgr.login_activity(now(), '0')$$) AS zero_bucket,
       sqlstate_of($$SELECT * FROM sessmgr.login_activity(now(), '-1 day')$$) AS negative_bucket,
       sqlstate_of($$SELECT * FROM sessmgr.login_activity(now(), '1 mon')$$) AS month_bucket,
       sqlstate_of($$SELECT * FROM sessmgr.login_activity(now(), '1000000 days')$$) AS huge_bucket,
       sqlstate_of($$SELECT * FROM sessmgr.login_activity(now(), '1 microsecond')$$) AS tiny_bucket;
SELECT sqlstate_of($$SELECT * FROM sessmgr.login_activity('infinity')$$) AS future,
       sqlstate_of($$SELECT * FROM sessmgr.session_durations('-infinity')$$) AS durations_all,
       sqlstate_of($$SELECT * FROM sessmgr.login_geography('-infinity')$$) AS geography_all,
       sqlstate_of($$SELECT * FROM sessmgr.device_usage('infinity')$$) AS devices_future;

-- suspicious logins: a huge device cookie is refused without being read;
-- confirm_session answers another user's session id like an unknown one;
-- security_events of a huge or hostile user id is just empty
SELECT sqlstate_of($$SELECT sessmgr.issue('hostile', device_cookie => repeat('x', 10000000))$$) AS huge_cookie,
       sqlstate_of($$SELECT sessmgr.issue('hostile', device_cookie => E'\x01\n\x7f')$$) AS control_cookie;
SELECT sqlstate_of(format($$SELECT sessmgr.confirm_session(%L, 'hostile-not-the-owner')$$,
                          (SELECT id FROM sessmgr.sessions ORDER BY created_at LIMIT 1))) AS other_users_session,
       sqlstate_of($$SELECT sessmgr.confirm_session(NULL, NULL)$$) AS all_null;
SELECT count(*) AS huge_user_events FROM sessmgr.security_events(repeat('x', 10000000));
-- (the corpus above issued sessions for this user id)
SELECT count(*) AS injection_user_events FROM sessmgr.security_events($$'; DROP TABLE sessmgr.sessions; --$$, '-infinity');

-- a column renamed (or dropped) by hand: the triggers refuse to read it by a
-- bad column number
BEGIN;
ALTER TABLE sessmgr.sessions RENAME COLUMN ip TO ip_renamed;
SELECT sqlstate_of($$INSERT INTO sessmgr.sessions (id, token_hash, expires_at, idle_timeout, user_id)
                     VALUES (gen_random_uuid(), sha256('x'::bytea), now() + interval '1 day',
                             interval '1 hour', 'hostile-dropped')$$) AS dropped_column;
ROLLBACK;

-- the extension's tables are all still there
SELECT c.relname
  FROM pg_class c
 WHERE c.relnamespace = 'sessmgr'::regnamespace AND c.relkind IN ('r', 'v')
 ORDER BY c.relname COLLATE "C";

RESET search_path;
DROP SCHEMA hostile CASCADE;
REVOKE USAGE ON SCHEMA sessmgr, sessmgr_api, sessmgr_admin_api FROM sessmgr_regress_hostile;
DROP ROLE sessmgr_regress_hostile;

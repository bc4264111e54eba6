-- test/pgtap/privileges.sql: what application, administrator and unprivileged
-- roles can and cannot do with sessmgr.
--
-- The application role gets exactly the grants the README documents:
--   GRANT USAGE ON SCHEMA sessmgr TO app;
--   GRANT EXECUTE ON FUNCTION sessmgr.issue, validate, authenticate,
--       current_user_id, current_session_id, list_sessions, revoke,
--       revoke_all TO app;
-- the administrator role USAGE plus SELECT on sessmgr.active_sessions and
-- sessmgr.session_events.  Everything runs in one transaction that is rolled
-- back, so the roles below disappear again (role names are cluster-wide, hence
-- the sessmgr_tap_ prefix).
BEGIN;
SELECT plan(89);

CREATE ROLE sessmgr_tap_app NOLOGIN;
CREATE ROLE sessmgr_tap_admin NOLOGIN;
CREATE ROLE sessmgr_tap_nobody NOLOGIN;	-- PUBLIC's rights only

GRANT USAGE ON SCHEMA sessmgr TO sessmgr_tap_app;
GRANT EXECUTE ON FUNCTION
    sessmgr.issue(text, text, text, inet, text, boolean, jsonb, jsonb, text),
    sessmgr.validate(text),
    sessmgr.authenticate(text),
    sessmgr.current_user_id(),
    sessmgr.current_session_id(),
    sessmgr.list_sessions(text, uuid),
    sessmgr.revoke(uuid, text, text),
    sessmgr.revoke_all(text, uuid, text)
  TO sessmgr_tap_app;

GRANT USAGE ON SCHEMA sessmgr TO sessmgr_tap_admin;
GRANT SELECT ON sessmgr.active_sessions, sessmgr.session_events TO sessmgr_tap_admin;

-- scratch space every role may use to pass tokens between statements
CREATE TEMP TABLE tap_tokens (k text PRIMARY KEY, session_id uuid, token text);
GRANT ALL ON tap_tokens TO PUBLIC;

------------------------------------------------------------------------------
-- The settings cannot be loosened by the application role.
------------------------------------------------------------------------------

-- Before the library is loaded in this backend, SET of a sessmgr.* name only
-- makes a placeholder, which PostgreSQL 15 drops (with a WARNING) when the
-- library loads because the role that set it lacks the privilege.  If the
-- library happens to be loaded already, the SET fails with 42501 instead.
-- Either way the effective value must stay the default.
SET LOCAL client_min_messages = error;
SET LOCAL ROLE sessmgr_tap_app;
DO $$
BEGIN
    PERFORM pg_catalog.set_config('sessmgr.max_sessions', '1000', true);
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END
$$;
SELECT lives_ok($$SELECT sessmgr.current_user_id()$$,
    'app can call sessmgr.current_user_id() (this loads the library)');
RESET ROLE;
RESET client_min_messages;
SELECT is(current_setting('sessmgr.max_sessions'), '15',
    'a sessmgr.max_sessions placeholder set by app before the library loaded is dropped');

SET LOCAL ROLE sessmgr_tap_app;
SELECT throws_ok($$SET sessmgr.max_sessions = 1000$$, '42501', NULL,
    'app cannot SET sessmgr.max_sessions');
SELECT throws_ok($$SET LOCAL sessmgr.max_sessions = 1000$$, '42501', NULL,
    'app cannot SET LOCAL sessmgr.max_sessions');
SELECT throws_ok($$SELECT pg_catalog.set_config('sessmgr.max_sessions', '1000', false)$$,
    '42501', NULL, 'app cannot set_config() sessmgr.max_sessions');
SELECT throws_ok($$SET sessmgr.cap_policy = 'evict_idle'$$, '42501', NULL,
    'app cannot SET sessmgr.cap_policy');
SELECT throws_ok($$SET sessmgr.idle_timeout = '2h'$$, '42501', NULL,
    'app cannot SET sessmgr.idle_timeout');
SELECT throws_ok($$SET sessmgr.absolute_timeout = '2d'$$, '42501', NULL,
    'app cannot SET sessmgr.absolute_timeout');
SELECT throws_ok($$SET sessmgr.remember_idle_timeout = '8d'$$, '42501', NULL,
    'app cannot SET sessmgr.remember_idle_timeout');
SELECT throws_ok($$SET sessmgr.remember_absolute_timeout = '60d'$$, '42501', NULL,
    'app cannot SET sessmgr.remember_absolute_timeout');
SELECT throws_ok($$SET sessmgr.touch_interval = '30s'$$, '42501', NULL,
    'app cannot SET sessmgr.touch_interval');
-- and every sessmgr.* setting there is, including ones added later
RESET ROLE;
CREATE FUNCTION pg_temp.tap_settable_sessmgr_settings() RETURNS SETOF text
    LANGUAGE plpgsql
AS $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT name, setting FROM pg_catalog.pg_settings
              WHERE name LIKE 'sessmgr.%' ORDER BY name
    LOOP
        BEGIN
            PERFORM pg_catalog.set_config(s.name, s.setting, true);
            RETURN NEXT s.name;         -- the SET went through
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;
        END;
    END LOOP;
END
$$;
SET LOCAL ROLE sessmgr_tap_app;
SELECT is_empty($$SELECT * FROM pg_temp.tap_settable_sessmgr_settings()$$,
    'app can set no sessmgr.* setting at all');
RESET ROLE;
SELECT cmp_ok((SELECT count(*) FROM pg_settings WHERE name LIKE 'sessmgr.%'), '>=', 7::bigint,
    'the loop above had the sessmgr.* settings to try');
SELECT is(current_setting('sessmgr.max_sessions'), '15',
    'sessmgr.max_sessions is unchanged after the attempts');

------------------------------------------------------------------------------
-- The application role reaches the data only through the functions.
------------------------------------------------------------------------------
SET LOCAL ROLE sessmgr_tap_app;

SELECT throws_ok($$SELECT * FROM sessmgr.sessions$$, '42501', NULL,
    'app cannot SELECT sessmgr.sessions');
SELECT throws_ok($$SELECT token_hash FROM sessmgr.sessions$$, '42501', NULL,
    'app cannot SELECT sessmgr.sessions.token_hash');
SELECT throws_ok($$SELECT * FROM sessmgr.session_events$$, '42501', NULL,
    'app cannot SELECT sessmgr.session_events');
SELECT throws_ok($$SELECT * FROM sessmgr.session_owners$$, '42501', NULL,
    'app cannot SELECT sessmgr.session_owners');
SELECT throws_ok($$SELECT * FROM sessmgr.active_sessions$$, '42501', NULL,
    'app cannot SELECT sessmgr.active_sessions');

SELECT lives_ok(
    $$INSERT INTO tap_tokens
      SELECT 'a', session_id, token
        FROM sessmgr.issue('sessmgr_tap_u1', 'laptop', 'Mozilla/5.0', '192.0.2.10')$$,
    'app can issue a session');
SELECT lives_ok(
    $$INSERT INTO tap_tokens
      SELECT 'b', session_id, token
        FROM sessmgr.issue('sessmgr_tap_u1', 'phone', NULL, '192.0.2.11', remember => true)$$,
    'app can issue a remembered session');
SELECT lives_ok(
    $$INSERT INTO tap_tokens
      SELECT 'c', session_id, token FROM sessmgr.issue('sessmgr_tap_u2')$$,
    'app can issue a session for another user');

SELECT results_eq(
    $$SELECT session_id, user_id FROM sessmgr.validate((SELECT token FROM tap_tokens WHERE k = 'a'))$$,
    $$SELECT session_id, 'sessmgr_tap_u1'::text FROM tap_tokens WHERE k = 'a'$$,
    'app can validate a token');
SELECT is_empty(
    $$SELECT * FROM sessmgr.validate('sessmgr_' || repeat('A', 64))$$,
    'validate() of an unknown token returns no row');
SELECT is(sessmgr.authenticate((SELECT token FROM tap_tokens WHERE k = 'b')), 'sessmgr_tap_u1',
    'app can authenticate a token');
SELECT is(sessmgr.current_user_id(), 'sessmgr_tap_u1',
    'app can read current_user_id()');
SELECT is(sessmgr.current_session_id(), (SELECT session_id FROM tap_tokens WHERE k = 'b'),
    'app can read current_session_id()');

SELECT results_eq(
    $$SELECT id, is_current, is_remembered, device_name
        FROM sessmgr.list_sessions('sessmgr_tap_u1', (SELECT session_id FROM tap_tokens WHERE k = 'b'))
       ORDER BY device_name$$,
    $$SELECT session_id, k = 'b', k = 'b',
             CASE k WHEN 'a' THEN 'laptop' ELSE 'phone' END
        FROM tap_tokens WHERE k IN ('a', 'b')
       ORDER BY 4$$,
    'app can list a user''s sessions, current and remembered ones marked');

SELECT throws_ok(
    $$SELECT sessmgr.revoke((SELECT session_id FROM tap_tokens WHERE k = 'c'), 'sessmgr_tap_u1')$$,
    '22023', 'invalid session id',
    'app cannot revoke, in the name of one user, another user''s session');
SELECT is(sessmgr.revoke((SELECT session_id FROM tap_tokens WHERE k = 'a'), 'sessmgr_tap_u1', 'logout'),
    true, 'app can revoke its user''s session');
SELECT is(sessmgr.revoke((SELECT session_id FROM tap_tokens WHERE k = 'a'), 'sessmgr_tap_u1', 'logout'),
    false, 'revoking it again ends nothing');
SELECT is_empty(
    $$SELECT * FROM sessmgr.validate((SELECT token FROM tap_tokens WHERE k = 'a'))$$,
    'the revoked token no longer validates');
SELECT is(sessmgr.revoke_all('sessmgr_tap_u2'), 1, 'app can revoke_all a user''s sessions');

-- no direct writes either
SELECT throws_ok($$UPDATE sessmgr.sessions SET revoked_at = now(), revoke_reason = 'x'$$,
    '42501', NULL, 'app cannot UPDATE sessmgr.sessions');
SELECT throws_ok($$DELETE FROM sessmgr.sessions$$, '42501', NULL,
    'app cannot DELETE FROM sessmgr.sessions');
SELECT throws_ok(
    $$INSERT INTO sessmgr.sessions (id, expires_at, idle_timeout, token_hash, user_id)
      VALUES (gen_random_uuid(), now() + interval '1 day', interval '1 hour',
              sha256('x'), 'sessmgr_tap_u1')$$,
    '42501', NULL, 'app cannot INSERT INTO sessmgr.sessions');
SELECT throws_ok($$DELETE FROM sessmgr.session_events$$, '42501', NULL,
    'app cannot DELETE FROM sessmgr.session_events');
SELECT throws_ok(
    $$INSERT INTO sessmgr.session_events (event, session_id, user_id, actor)
      VALUES ('revoke', gen_random_uuid(), 'sessmgr_tap_u1', 'someone')$$,
    '42501', NULL, 'app cannot forge an event');
SELECT throws_ok($$UPDATE sessmgr.session_owners SET sessions_issued = 0$$, '42501', NULL,
    'app cannot UPDATE sessmgr.session_owners');

RESET ROLE;

------------------------------------------------------------------------------
-- The audit trail names the role that called sessmgr.
------------------------------------------------------------------------------
SELECT results_eq(
    $$SELECT e.event, e.actor::text COLLATE "default", e.reason
        FROM sessmgr.session_events e
       WHERE e.user_id IN ('sessmgr_tap_u1', 'sessmgr_tap_u2')
       ORDER BY e.id$$,
    $$VALUES ('issue', 'sessmgr_tap_app', NULL::text),
             ('issue', 'sessmgr_tap_app', NULL),
             ('issue', 'sessmgr_tap_app', NULL),
             ('revoke', 'sessmgr_tap_app', 'logout'),
             ('revoke', 'sessmgr_tap_app', 'logout_all')$$,
    'events written through app record actor = the app role');

------------------------------------------------------------------------------
-- Tokens are stored only as SHA-256(id || secret).
------------------------------------------------------------------------------
CREATE TEMP TABLE tap_token_parts AS
SELECT k,
       token,
       substr(token, 9) AS body,
       substr(token, 9 + 24) AS secret_text,	-- base64url chars that encode only secret bytes
       decode(translate(substr(token, 9), '-_', '+/'), 'base64') AS raw
  FROM tap_tokens;

SELECT is(
    (SELECT count(*)::int FROM tap_token_parts
      WHERE token ~ '^sessmgr_[A-Za-z0-9_-]{64}$' AND length(raw) = 48
        AND substr(raw, 1, 16) = decode(replace(
                (SELECT session_id FROM tap_tokens t WHERE t.k = tap_token_parts.k)::text,
                '-', ''), 'hex')),
    3, 'every token is sessmgr_ + 64 base64url chars carrying the session id, then the secret');
SELECT is(
    (SELECT count(*)::int FROM tap_token_parts p JOIN sessmgr.sessions s
        ON s.id = (SELECT session_id FROM tap_tokens t WHERE t.k = p.k)
      WHERE s.token_hash = sha256(p.raw)),
    3, 'sessions.token_hash is SHA-256 of the decoded token');
SELECT is(
    (SELECT count(*)::int FROM sessmgr.sessions s, tap_token_parts p
      WHERE s::text LIKE '%' || p.secret_text || '%'
         OR s::text LIKE '%' || encode(substr(p.raw, 17), 'hex') || '%'
         OR s::text LIKE '%' || encode(substr(p.raw, 17), 'base64') || '%'),
    0, 'no secret part of a token appears in any column of sessmgr.sessions');
SELECT is(
    (SELECT count(*)::int FROM sessmgr.session_events e, tap_token_parts p
      WHERE e::text LIKE '%' || p.secret_text || '%'
         OR e::text LIKE '%' || encode(substr(p.raw, 17), 'hex') || '%'),
    0, 'no secret part of a token appears in any column of sessmgr.session_events');
SELECT is(
    (SELECT count(*)::int FROM sessmgr.session_owners o, tap_token_parts p
      WHERE o::text LIKE '%' || p.secret_text || '%'),
    0, 'no secret part of a token appears in sessmgr.session_owners');
-- a control for the search itself: the secret is found where it is
SELECT is(
    (SELECT count(*)::int FROM tap_tokens t, tap_token_parts p
      WHERE t.k = p.k AND t::text LIKE '%' || p.secret_text || '%'),
    3, 'the same search finds the secret in a row that does hold the token');

------------------------------------------------------------------------------
-- The administrator role reads the view and the audit trail, nothing else.
------------------------------------------------------------------------------
SET LOCAL ROLE sessmgr_tap_admin;
SELECT results_eq(
    $$SELECT id FROM sessmgr.active_sessions WHERE user_id = 'sessmgr_tap_u1'$$,
    $$SELECT session_id FROM tap_tokens WHERE k = 'b'$$,
    'admin can read sessmgr.active_sessions');
SELECT hasnt_column('sessmgr', 'active_sessions', 'token_hash',
    'sessmgr.active_sessions has no token_hash column');
SELECT isnt_empty($$SELECT * FROM sessmgr.session_events WHERE user_id = 'sessmgr_tap_u1'$$,
    'admin can read sessmgr.session_events');
SELECT throws_ok($$SELECT token_hash FROM sessmgr.sessions$$, '42501', NULL,
    'admin cannot SELECT sessmgr.sessions (token hashes)');
SELECT throws_ok($$SELECT * FROM sessmgr.session_owners$$, '42501', NULL,
    'admin cannot SELECT sessmgr.session_owners');
SELECT throws_ok($$DELETE FROM sessmgr.session_events$$, '42501', NULL,
    'admin cannot DELETE FROM sessmgr.session_events');
SELECT throws_ok($$SELECT * FROM sessmgr.issue('sessmgr_tap_u1')$$, '42501', NULL,
    'admin cannot issue');
SELECT throws_ok($$SELECT * FROM sessmgr.events_since(0)$$, '42501', NULL,
    'admin cannot read the SIEM feed without EXECUTE on events_since');
RESET ROLE;
GRANT EXECUTE ON FUNCTION sessmgr.events_since(bigint, integer) TO sessmgr_tap_admin;
SET LOCAL ROLE sessmgr_tap_admin;
SELECT lives_ok($$SELECT count(*) FROM sessmgr.events_since(0)$$,
    'admin with EXECUTE on events_since reads the feed (no right on the sequence needed)');
SELECT is_empty($$SELECT 1 FROM sessmgr.events_since(0) d WHERE d->'user'->>'id' = 'sessmgr_tap_u1'$$,
    'the feed holds back events this transaction has not committed yet');
RESET ROLE;

------------------------------------------------------------------------------
-- The analytics are for administrators: the application role cannot run
-- them, an administrator granted EXECUTE can (they read the roll-ups and the
-- events as their owner).
------------------------------------------------------------------------------
GRANT EXECUTE ON FUNCTION sessmgr.login_activity(timestamptz, interval),
                          sessmgr.session_durations(timestamptz),
                          sessmgr.login_geography(timestamptz),
                          sessmgr.device_usage(timestamptz)
  TO sessmgr_tap_admin;
SET LOCAL ROLE sessmgr_tap_app;
SELECT throws_ok($$SELECT * FROM sessmgr.login_activity(now() - interval '1 day')$$, '42501', NULL,
    'app cannot run login_activity');
SELECT throws_ok($$SELECT * FROM sessmgr.session_durations(now() - interval '1 day')$$, '42501', NULL,
    'app cannot run session_durations');
SELECT throws_ok($$SELECT * FROM sessmgr.login_geography(now() - interval '1 day')$$, '42501', NULL,
    'app cannot run login_geography');
SELECT throws_ok($$SELECT * FROM sessmgr.device_usage(now() - interval '1 day')$$, '42501', NULL,
    'app cannot run device_usage');
RESET ROLE;
SET LOCAL ROLE sessmgr_tap_admin;
SELECT cmp_ok((SELECT count(*) FROM sessmgr.login_activity(now() - interval '1 day')), '>=', 1::bigint,
    'an administrator granted EXECUTE runs login_activity');
SELECT lives_ok($$SELECT * FROM sessmgr.session_durations(now() - interval '1 day')$$,
    'an administrator granted EXECUTE runs session_durations');
SELECT lives_ok($$SELECT * FROM sessmgr.login_geography(now() - interval '1 day')$$,
    'an administrator granted EXECUTE runs login_geography');
SELECT lives_ok($$SELECT * FROM sessmgr.device_usage(now() - interval '1 day')$$,
    'an administrator granted EXECUTE runs device_usage');
RESET ROLE;

------------------------------------------------------------------------------
-- Failed logins: the login function's role records and reads them with
-- EXECUTE on login_failed and login_delay, never touches the table, and
-- cannot unlock; an administrator granted EXECUTE can.
------------------------------------------------------------------------------
SET LOCAL ROLE sessmgr_tap_app;
SELECT throws_ok($$SELECT sessmgr.login_failed('sessmgr_tap_u9', '192.0.2.9')$$, '42501', NULL,
    'app cannot record a failed login without EXECUTE on login_failed');
RESET ROLE;
GRANT EXECUTE ON FUNCTION sessmgr.login_failed(text, inet, text, text),
                          sessmgr.login_delay(text, inet)
  TO sessmgr_tap_app;
GRANT EXECUTE ON FUNCTION sessmgr.login_failures(text), sessmgr.unlock_account(text)
  TO sessmgr_tap_admin;
SET LOCAL ROLE sessmgr_tap_app;
SELECT is(sessmgr.login_failed('sessmgr_tap_u9', '192.0.2.9'), '0'::interval,
    'app with EXECUTE on login_failed records a failure (the table is the extension''s)');
SELECT is(sessmgr.login_delay('sessmgr_tap_u9', '192.0.2.9'), '0'::interval,
    'app with EXECUTE on login_delay reads the delay');
SELECT throws_ok($$SELECT count(*) FROM sessmgr.login_attempts$$, '42501', NULL,
    'app cannot read sessmgr.login_attempts');
SELECT throws_ok($$SELECT sessmgr.unlock_account('sessmgr_tap_u9')$$, '42501', NULL,
    'app cannot unlock an account');
RESET ROLE;
SET LOCAL ROLE sessmgr_tap_admin;
SELECT is(sessmgr.login_failures('sessmgr_tap_u9'), 1,
    'an administrator granted EXECUTE reads the account''s failures');
SELECT ok(sessmgr.unlock_account('sessmgr_tap_u9'),
    'an administrator granted EXECUTE unlocks the account');
RESET ROLE;

------------------------------------------------------------------------------
-- Nothing is for PUBLIC.
------------------------------------------------------------------------------
SELECT cmp_ok(
    (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'sessmgr'),
    '>=', 11::bigint, 'the schema holds the extension''s functions (the checks below are not vacuous)');
SELECT is(
    (SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'sessmgr' AND p.proname <> 'session_is_live'
        AND has_function_privilege('sessmgr_tap_nobody', p.oid, 'EXECUTE')),
    0, 'no function in schema sessmgr but session_is_live is executable by a role without grants');
SELECT is(
    (SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'sessmgr' AND p.proname <> 'session_is_live'
        AND has_function_privilege('public', p.oid, 'EXECUTE')),
    0, 'no function in schema sessmgr but session_is_live (a pure predicate) is executable by PUBLIC');
SELECT is(
    (SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'sessmgr' AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
        AND has_table_privilege('sessmgr_tap_nobody', c.oid,
                'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')),
    0, 'no table or view in schema sessmgr is accessible to a role without grants');
SELECT is(
    (SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'sessmgr' AND c.relkind = 'S'
        AND CASE WHEN c.relkind = 'S'	-- the function errors on anything else
                 THEN has_sequence_privilege('sessmgr_tap_nobody', c.oid, 'USAGE, SELECT, UPDATE')
            END),
    0, 'no sequence in schema sessmgr is accessible to a role without grants');
SELECT ok(NOT has_schema_privilege('sessmgr_tap_nobody', 'sessmgr', 'USAGE, CREATE'),
    'a role without grants has neither USAGE nor CREATE on schema sessmgr');
SET LOCAL ROLE sessmgr_tap_nobody;
SELECT throws_ok($$SELECT * FROM sessmgr.issue('sessmgr_tap_u1')$$, '42501', NULL,
    'a role without grants cannot issue');
SELECT throws_ok($$SELECT * FROM sessmgr.validate((SELECT token FROM tap_tokens WHERE k = 'b'))$$,
    '42501', NULL, 'a role without grants cannot validate');
RESET ROLE;
-- even with USAGE on the schema, EXECUTE is still needed
GRANT USAGE ON SCHEMA sessmgr TO sessmgr_tap_nobody;
SET LOCAL ROLE sessmgr_tap_nobody;
SELECT throws_ok($$SELECT sessmgr.revoke_all('sessmgr_tap_u1')$$, '42501', NULL,
    'a role with only USAGE on the schema cannot execute revoke_all');
SELECT throws_ok($$SELECT * FROM sessmgr.list_sessions('sessmgr_tap_u1')$$, '42501', NULL,
    'a role with only USAGE on the schema cannot execute list_sessions');
RESET ROLE;

------------------------------------------------------------------------------
-- SECURITY DEFINER functions pin their search_path.
------------------------------------------------------------------------------
SELECT isnt_empty(
    $$SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'sessmgr' AND p.prosecdef$$,
    'schema sessmgr has SECURITY DEFINER functions (list_sessions at least)');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'sessmgr' AND p.prosecdef
         AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)$$,
    'every SECURITY DEFINER function in sessmgr has search_path=pg_catalog, pg_temp');

------------------------------------------------------------------------------
-- The administrators' API (sessmgr_admin_api): nothing for PUBLIC, every
-- wrapper SECURITY DEFINER with a pinned search_path; the application role
-- gets nothing of it; the documented grant block is enough for the
-- administrators' role.
------------------------------------------------------------------------------
SELECT is(
    (SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'sessmgr_admin_api'
        AND (has_function_privilege('public', p.oid, 'EXECUTE')
             OR has_function_privilege('sessmgr_tap_nobody', p.oid, 'EXECUTE'))),
    0, 'no function in schema sessmgr_admin_api is executable by PUBLIC');
SELECT ok(NOT has_schema_privilege('public', 'sessmgr_admin_api', 'USAGE, CREATE'),
    'PUBLIC has neither USAGE nor CREATE on schema sessmgr_admin_api');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'sessmgr_admin_api'
         AND (NOT p.prosecdef
              OR NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false))$$,
    'every function in sessmgr_admin_api is SECURITY DEFINER with search_path=pg_catalog, pg_temp');
CREATE ROLE sessmgr_tap_session_admin NOLOGIN;
GRANT USAGE ON SCHEMA sessmgr_admin_api TO sessmgr_tap_session_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sessmgr_admin_api TO sessmgr_tap_session_admin;
SET LOCAL ROLE sessmgr_tap_app;
SELECT throws_ok($$SELECT sessmgr_admin_api.sessions()$$, '42501', NULL,
    'app cannot call the administrators'' API');
RESET ROLE;
SET LOCAL ROLE sessmgr_tap_session_admin;
SELECT lives_ok($$SELECT sessmgr_admin_api.stats()$$,
    'the administrators'' role calls the API with the documented grants only');
SELECT throws_ok($$SELECT sessmgr.forget_user('sessmgr_tap_u1')$$, '42501', NULL,
    'the administrators'' role cannot call sessmgr itself');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

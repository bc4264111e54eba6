--
-- Step-up: reauthenticate(), auth_age(), current_aal(), is_fresh() and
-- require_fresh() against the live session (docs/stepup.md)
--
CREATE TEMP TABLE su AS SELECT * FROM sessmgr.issue('sue', 'laptop');
CREATE TEMP TABLE su_other AS SELECT * FROM sessmgr.issue('otto', 'phone');
SELECT session_id AS sue_id, token AS sue_token FROM su \gset
SELECT session_id AS otto_id, token AS otto_token FROM su_other \gset

-- at issuance: authenticated at the issue time, one factor, no method yet
SELECT authenticated_at = created_at AS at_issue, aal, amr
  FROM sessmgr.sessions WHERE id = :'sue_id';

-- without a session: NULL age and level, not fresh, require_fresh refuses
SELECT sessmgr.auth_age() AS age, sessmgr.current_aal() AS aal,
       sessmgr.is_fresh('10 min') AS fresh;
SELECT sqlstate_of($$SELECT sessmgr.require_fresh('10 min')$$);

-- an application table guarded by two policies
CREATE ROLE stepup_app NOLOGIN;
GRANT USAGE ON SCHEMA sessmgr TO stepup_app;
GRANT EXECUTE ON FUNCTION sessmgr.authenticate(text), sessmgr.current_user_id(),
      sessmgr.is_fresh(interval, integer), sessmgr.current_aal(), sessmgr.auth_age(),
      sessmgr.require_fresh(interval, integer) TO stepup_app;
CREATE TABLE stepup_payment (owner text, card text);
CREATE TABLE stepup_secret (owner text, secret text);
INSERT INTO stepup_payment VALUES ('sue', '4111 ... 1111'), ('otto', '5500 ... 0004');
INSERT INTO stepup_secret VALUES ('sue', 'recovery codes'), ('otto', 'otto codes');
ALTER TABLE stepup_payment ENABLE ROW LEVEL SECURITY;
ALTER TABLE stepup_secret ENABLE ROW LEVEL SECURITY;
CREATE POLICY recent ON stepup_payment
    USING (owner = sessmgr.current_user_id() AND sessmgr.is_fresh('10 min'))
    WITH CHECK (owner = sessmgr.current_user_id() AND sessmgr.is_fresh('10 min'));
CREATE POLICY second_factor ON stepup_secret
    USING (owner = sessmgr.current_user_id() AND sessmgr.is_fresh('1 h', 2));
GRANT SELECT, INSERT ON stepup_payment, stepup_secret TO stepup_app;

CREATE FUNCTION stepup_view(token text)
RETURNS TABLE (payments bigint, secrets bigint, aal integer, fresh_age boolean) LANGUAGE sql AS $$
    SELECT sessmgr.authenticate(token);
    SELECT (SELECT count(*) FROM stepup_payment), (SELECT count(*) FROM stepup_secret),
           sessmgr.current_aal(), sessmgr.auth_age() < '10 min';
$$;
GRANT EXECUTE ON FUNCTION stepup_view(text) TO stepup_app;

-- fresh after issuance: the one-factor policy lets sue see her row, the
-- second-factor one does not
BEGIN;
SET LOCAL ROLE stepup_app;
SELECT * FROM stepup_view(:'sue_token');
ROLLBACK;

-- stale: signed in 20 minutes ago
UPDATE sessmgr.sessions SET authenticated_at = now() - interval '20 min' WHERE id = :'sue_id';
BEGIN;
SET LOCAL ROLE stepup_app;
SELECT * FROM stepup_view(:'sue_token');
SELECT sqlstate_of($$INSERT INTO stepup_payment VALUES ('sue', 'new card')$$) AS stale_insert;
SELECT sqlstate_of($$SELECT sessmgr.require_fresh('10 min')$$) AS stale_require;
ROLLBACK;

-- require_fresh's error: the PostgREST body and RFC 9470 challenge
DO $$
BEGIN
    PERFORM sessmgr.authenticate((SELECT token FROM su));
    PERFORM sessmgr.require_fresh('10 min', 2);
EXCEPTION WHEN SQLSTATE 'PGRST' THEN
    DECLARE m text; d text;
    BEGIN
        GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
        RAISE NOTICE 'message: %', m;
        RAISE NOTICE 'detail: %', d;
    END;
END $$;
DO $$
BEGIN
    PERFORM sessmgr.authenticate((SELECT token FROM su));
    PERFORM sessmgr.require_fresh('10 min');
EXCEPTION WHEN SQLSTATE 'PGRST' THEN
    DECLARE d text;
    BEGIN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
        RAISE NOTICE 'detail: %', d;
    END;
END $$;

-- re-authenticating with the password makes it fresh again (one factor)
SELECT sessmgr.reauthenticate(:'sue_id', 'sue') = now() AS reauthenticated;
SELECT aal, amr FROM sessmgr.sessions WHERE id = :'sue_id';
BEGIN;
SET LOCAL ROLE stepup_app;
SELECT * FROM stepup_view(:'sue_token');
INSERT INTO stepup_payment VALUES ('sue', 'new card');
ROLLBACK;

-- a second factor raises the level: the secret is visible
SELECT sessmgr.reauthenticate(:'sue_id', 'sue', 'otp', 2) IS NOT NULL AS second_factor;
SELECT aal, amr FROM sessmgr.sessions WHERE id = :'sue_id';
BEGIN;
SET LOCAL ROLE stepup_app;
SELECT * FROM stepup_view(:'sue_token');
SELECT sessmgr.require_fresh('1 h', 2) AS required;
ROLLBACK;

-- a password again never lowers the level, and adds no duplicate method
SELECT sessmgr.reauthenticate(:'sue_id', 'sue', 'pwd', 1) IS NOT NULL AS again;
SELECT aal, amr FROM sessmgr.sessions WHERE id = :'sue_id';

-- the level needs a recent authentication too: an hour later, level 2 is stale
UPDATE sessmgr.sessions SET authenticated_at = now() - interval '2 h' WHERE id = :'sue_id';
BEGIN;
SET LOCAL ROLE stepup_app;
SELECT * FROM stepup_view(:'sue_token');
ROLLBACK;

-- re-authentication in the transaction that authenticated counts at once
BEGIN;
SELECT sessmgr.authenticate(:'sue_token') IS NOT NULL AS authenticated;
SELECT sessmgr.is_fresh('10 min') AS before;
SELECT sessmgr.reauthenticate(:'sue_id', 'sue', 'hwk', 3) IS NOT NULL AS passkey;
SELECT sessmgr.is_fresh('10 min', 3) AS after, sessmgr.current_aal() AS aal,
       sessmgr.auth_age() AS age;
ROLLBACK;

-- right after issue, in the same transaction: a passkey login is aal 2 at once
BEGIN;
CREATE TEMP TABLE pk AS SELECT * FROM sessmgr.issue('sue', 'passkey device');
SELECT sessmgr.reauthenticate((SELECT session_id FROM pk), 'sue', 'hwk', 2) = now() AS at_login;
SELECT s.aal, s.amr, s.authenticated_at = now() AS at_now
  FROM sessmgr.sessions s JOIN pk ON s.id = pk.session_id;
ROLLBACK;

-- the audit trail
SELECT event, reason, actor IS NOT NULL AS has_actor
  FROM sessmgr.session_events WHERE session_id = :'sue_id' ORDER BY id;

-- an unconfirmed session (aal 0, as issue 13's step_up policy starts one):
-- no level at all until reauthenticate
UPDATE sessmgr.sessions SET aal = 0, authenticated_at = now() WHERE id = :'otto_id';
BEGIN;
SET LOCAL ROLE stepup_app;
SELECT * FROM stepup_view(:'otto_token');
SELECT sessmgr.is_fresh('10 min', 1) AS fresh1, sessmgr.is_fresh('1 year', 1) AS fresh_year;
SELECT sqlstate_of($$SELECT sessmgr.require_fresh('10 min')$$) LIKE 'PGRST%' AS refused;
ROLLBACK;
SELECT sessmgr.reauthenticate(:'otto_id', 'otto', 'pwd') IS NOT NULL AS confirmed;
SELECT aal, amr FROM sessmgr.sessions WHERE id = :'otto_id';

-- refusals: another user's, unknown, NULL and ended sessions look the same
SELECT sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L)', :'otto_id', 'sue')) AS others,
       sqlstate_of($$SELECT sessmgr.reauthenticate('00000000-0000-4000-8000-000000000000', 'sue')$$)
         AS unknown,
       sqlstate_of($$SELECT sessmgr.reauthenticate(NULL, 'sue')$$) AS null_id;
SELECT sessmgr.revoke(:'otto_id', 'otto') AS revoked;
SELECT sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L)', :'otto_id', 'otto')) AS ended;

-- hostile inputs
SELECT sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, NULL)', :'sue_id')) AS null_user,
       sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L, NULL)', :'sue_id', 'sue')) AS null_method;
SELECT sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L, %L)', :'sue_id', 'sue', repeat('a', 100000))) AS huge_method,
       sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L, %L)', :'sue_id', 'sue', 'PWD')) AS upper_method,
       sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L, %L)', :'sue_id', 'sue', 'p')) AS short_method,
       sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L, %L)', :'sue_id', 'sue', E'pw\\u0000d')) AS nul_method,
       sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L, %L)', :'sue_id', 'sue', 'p w d')) AS space_method;
SELECT sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L, %L, 0)', :'sue_id', 'sue', 'otp')) AS aal0,
       sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L, %L, 4)', :'sue_id', 'sue', 'otp')) AS aal4,
       sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L, %L, -2147483648)', :'sue_id', 'sue', 'otp')) AS aal_min;
SELECT sqlstate_of(format('SELECT sessmgr.reauthenticate(%L, %L)', :'sue_id', repeat('u', 300))) AS huge_user;
SELECT sessmgr.is_fresh(NULL) AS null_age, sessmgr.is_fresh('10 min', NULL) AS null_aal;
SELECT sqlstate_of($$SELECT sessmgr.is_fresh('10 min', 0)$$) AS min_aal0,
       sqlstate_of($$SELECT sessmgr.is_fresh('10 min', 4)$$) AS min_aal4,
       sqlstate_of($$SELECT sessmgr.require_fresh(NULL)$$) AS require_null,
       sqlstate_of($$SELECT sessmgr.require_fresh('10 min', 9)$$) AS require_aal9;
BEGIN;
SELECT sessmgr.authenticate(:'sue_token') IS NOT NULL AS authenticated;
SELECT sessmgr.is_fresh('-1 h') AS negative, sessmgr.is_fresh('1000 years') AS long_age;
ROLLBACK;
-- the methods a session keeps are bounded
SELECT count(sessmgr.reauthenticate(:'sue_id', 'sue', m)) AS calls
  FROM (SELECT 'm' || chr(97 + i) || chr(97 + i) AS m FROM generate_series(0, 20) i) x;
SELECT cardinality(amr) AS methods_kept FROM sessmgr.sessions WHERE id = :'sue_id';

-- access tokens carry auth_time, aal and amr (for clients; sessmgr reads the row)
CREATE TEMP TABLE jt AS SELECT * FROM sessmgr.issue('jo', 'laptop');
SELECT p ->> 'aal' AS aal, p -> 'amr' AS amr,
       (p ->> 'auth_time')::bigint = floor(extract(epoch FROM s.authenticated_at))::bigint AS auth_time
  FROM jt, sessmgr.sessions s, jwt_part(jt.access_token, 2) p WHERE s.id = jt.session_id;
SELECT sessmgr.reauthenticate(session_id, 'jo', 'otp', 2) IS NOT NULL AS second_factor FROM jt;
SELECT r.status, p ->> 'aal' AS aal, p -> 'amr' AS amr,
       (p ->> 'auth_time')::bigint = floor(extract(epoch FROM now()))::bigint AS auth_time
  FROM jt, sessmgr.refresh(jt.token) r, jwt_part(r.access_token, 2) p;

-- nothing is granted to PUBLIC
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'sessmgr'::regnamespace
   AND p.proname IN ('reauthenticate', 'auth_age', 'current_aal', 'is_fresh', 'require_fresh')
 ORDER BY 1;

DROP TABLE stepup_payment, stepup_secret;
DROP FUNCTION stepup_view(text);
REVOKE ALL ON SCHEMA sessmgr FROM stepup_app;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA sessmgr FROM stepup_app;
DROP ROLE stepup_app;

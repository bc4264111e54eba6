-- test/pgtap/events.sql: the audit trail in sessmgr.session_events.
--
-- One event per issuance, revocation and cap eviction, written by the table's
-- triggers in the same transaction, naming the role that called sessmgr.
BEGIN;
SELECT plan(35);

CREATE ROLE sessmgr_tap_ev_app NOLOGIN;
GRANT USAGE ON SCHEMA sessmgr TO sessmgr_tap_ev_app;
GRANT EXECUTE ON FUNCTION
    sessmgr.issue(text, text, text, inet, text, boolean, jsonb, jsonb, text),
    sessmgr.validate(text),
    sessmgr.authenticate(text),
    sessmgr.revoke(uuid, text, text),
    sessmgr.revoke_all(text, uuid, text)
  TO sessmgr_tap_ev_app;

CREATE TEMP TABLE tap_s (k text PRIMARY KEY, session_id uuid, token text);
GRANT ALL ON tap_s TO PUBLIC;

-- events of the test users only, for comparisons
CREATE TEMP VIEW tap_ev AS
SELECT e.id, e.occurred_at, e.event, e.session_id, e.user_id, e.reason,
       e.actor::text COLLATE "default" AS actor, e.ip
  FROM sessmgr.session_events e
 WHERE e.user_id LIKE 'sessmgr_tap_ev_%';

SELECT is_empty($$SELECT * FROM tap_ev$$, 'no events for the test users yet');

------------------------------------------------------------------------------
-- issue
------------------------------------------------------------------------------
SET LOCAL ROLE sessmgr_tap_ev_app;
INSERT INTO tap_s SELECT 'i1', session_id, token
  FROM sessmgr.issue('sessmgr_tap_ev_u1', 'laptop', 'Mozilla/5.0', '198.51.100.7');
RESET ROLE;

SELECT results_eq(
    $$SELECT event, session_id, user_id, reason, actor, ip,
             occurred_at BETWEEN now() AND clock_timestamp() FROM tap_ev$$,
    $$SELECT 'issue', session_id, 'sessmgr_tap_ev_u1', NULL::text, 'sessmgr_tap_ev_app',
             inet '198.51.100.7', true
        FROM tap_s WHERE k = 'i1'$$,
    'issue() writes exactly one issue event: session, user, no reason, calling role, ip');

INSERT INTO tap_s SELECT 'i2', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u1');
SELECT results_eq(
    $$SELECT event, actor, ip FROM tap_ev WHERE session_id = (SELECT session_id FROM tap_s WHERE k = 'i2')$$,
    $$VALUES ('issue', current_user::text COLLATE "default", NULL::inet)$$,
    'an issuance by the superuser names it, with a NULL ip when none was given');

------------------------------------------------------------------------------
-- validation writes no event, neither does a touch
------------------------------------------------------------------------------
SET LOCAL sessmgr.touch_interval = 0;
SELECT isnt_empty($$SELECT * FROM sessmgr.validate((SELECT token FROM tap_s WHERE k = 'i1'))$$,
    'the token validates');
UPDATE sessmgr.sessions SET last_active_at = last_active_at + interval '1 second'
 WHERE id = (SELECT session_id FROM tap_s WHERE k = 'i1');
RESET sessmgr.touch_interval;
SELECT is((SELECT count(*)::int FROM tap_ev), 2, 'validation and activity updates write no event');

------------------------------------------------------------------------------
-- revoke
------------------------------------------------------------------------------
SET LOCAL ROLE sessmgr_tap_ev_app;
SELECT is(sessmgr.revoke((SELECT session_id FROM tap_s WHERE k = 'i1'), 'sessmgr_tap_ev_u1',
                         'password_change'),
    true, 'revoke() ends the session');
SELECT is(sessmgr.revoke((SELECT session_id FROM tap_s WHERE k = 'i1'), 'sessmgr_tap_ev_u1', 'again'),
    false, 'revoke() of an ended session ends nothing');
SELECT throws_ok($$SELECT sessmgr.revoke(gen_random_uuid(), 'sessmgr_tap_ev_u1')$$, '22023', 'invalid session id',
    'revoke() of an unknown session fails');
RESET ROLE;

SELECT results_eq(
    $$SELECT event, reason, actor, ip FROM tap_ev
       WHERE session_id = (SELECT session_id FROM tap_s WHERE k = 'i1') ORDER BY id$$,
    $$VALUES ('issue', NULL::text, 'sessmgr_tap_ev_app', inet '198.51.100.7'),
             ('revoke', 'password_change', 'sessmgr_tap_ev_app', inet '198.51.100.7')$$,
    'revoke() writes one revoke event with its reason; the repeated and failed calls write none');
SELECT is(
    (SELECT revoke_reason FROM sessmgr.sessions WHERE id = (SELECT session_id FROM tap_s WHERE k = 'i1')),
    'password_change', 'the session row carries the same reason');

-- a revocation by a direct UPDATE obeys the same rules
UPDATE sessmgr.sessions SET revoked_at = now(), revoke_reason = 'admin'
 WHERE id = (SELECT session_id FROM tap_s WHERE k = 'i2');
SELECT results_eq(
    $$SELECT event, reason, actor FROM tap_ev
       WHERE session_id = (SELECT session_id FROM tap_s WHERE k = 'i2') ORDER BY id$$,
    $$VALUES ('issue', NULL::text, current_user::text COLLATE "default"), ('revoke', 'admin', current_user::text COLLATE "default")$$,
    'a revocation by a direct UPDATE is audited too, naming the role that ran it');

------------------------------------------------------------------------------
-- eviction by the cap
------------------------------------------------------------------------------
SET LOCAL sessmgr.max_sessions = 2;
SET LOCAL ROLE sessmgr_tap_ev_app;
INSERT INTO tap_s SELECT 'c1', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u2', ip => '203.0.113.1');
INSERT INTO tap_s SELECT 'c2', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u2', ip => '203.0.113.2');
INSERT INTO tap_s SELECT 'c3', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u2', ip => '203.0.113.3');
RESET ROLE;

SELECT results_eq(
    $$SELECT e.event, s.k, e.reason, e.actor, e.ip
        FROM tap_ev e JOIN tap_s s USING (session_id)
       WHERE e.user_id = 'sessmgr_tap_ev_u2' ORDER BY e.id$$,
    $$VALUES ('issue', 'c1', NULL::text, 'sessmgr_tap_ev_app', inet '203.0.113.1'),
             ('issue', 'c2', NULL, 'sessmgr_tap_ev_app', '203.0.113.2'),
             ('evict', 'c1', 'cap', 'sessmgr_tap_ev_app', '203.0.113.1'),
             ('issue', 'c3', NULL, 'sessmgr_tap_ev_app', '203.0.113.3')$$,
    'the third issuance under max_sessions = 2 evicts the oldest: one evict event, reason cap, before the issue');
SELECT results_eq(
    $$SELECT s.k, x.revoke_reason FROM sessmgr.sessions x JOIN tap_s s ON s.session_id = x.id
       WHERE x.user_id = 'sessmgr_tap_ev_u2' ORDER BY s.k$$,
    $$VALUES ('c1', 'cap'::text), ('c2', NULL), ('c3', NULL)$$,
    'the evicted session is revoked with reason cap; the others are active');

-- evict_idle: the least recently active one goes, whatever its age
SET LOCAL sessmgr.cap_policy = 'evict_idle';
UPDATE sessmgr.sessions SET last_active_at = last_active_at + interval '1 minute'
 WHERE id = (SELECT session_id FROM tap_s WHERE k = 'c2');
INSERT INTO tap_s SELECT 'c4', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u2');
SELECT results_eq(
    $$SELECT e.event, s.k, e.reason FROM tap_ev e JOIN tap_s s USING (session_id)
       WHERE e.user_id = 'sessmgr_tap_ev_u2' AND s.k IN ('c3', 'c4') ORDER BY e.id$$,
    $$VALUES ('issue', 'c3', NULL::text), ('evict', 'c3', 'cap'), ('issue', 'c4', NULL)$$,
    'evict_idle evicts the least recently active session, with an evict event');

-- lowering the cap evicts as many as needed at the next issuance, one event each
SET LOCAL sessmgr.cap_policy = 'evict_oldest';
SET LOCAL sessmgr.max_sessions = 5;
INSERT INTO tap_s SELECT 'c5', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u2');
INSERT INTO tap_s SELECT 'c6', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u2');
SET LOCAL sessmgr.max_sessions = 1;
INSERT INTO tap_s SELECT 'c7', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u2');
SELECT results_eq(
    $$SELECT s.k FROM tap_ev e JOIN tap_s s USING (session_id)
       WHERE e.user_id = 'sessmgr_tap_ev_u2' AND e.event = 'evict' AND s.k IN ('c2', 'c4', 'c5', 'c6')
       ORDER BY e.id$$,
    $$VALUES ('c2'), ('c4'), ('c5'), ('c6')$$,
    'an issuance under max_sessions = 1 evicts all four active sessions, oldest first, one event each');
SELECT is((SELECT count(*)::int FROM sessmgr.active_sessions WHERE user_id = 'sessmgr_tap_ev_u2'), 1,
    'one active session is left');

------------------------------------------------------------------------------
-- a refused issuance (cap_policy = reject) writes nothing
------------------------------------------------------------------------------
SET LOCAL sessmgr.cap_policy = 'reject';
SET LOCAL sessmgr.max_sessions = 1;
CREATE TEMP TABLE tap_before AS
SELECT (SELECT count(*) FROM sessmgr.session_events) AS events,
       (SELECT count(*) FROM sessmgr.sessions) AS sessions,
       (SELECT sessions_issued FROM sessmgr.session_owners WHERE user_id = 'sessmgr_tap_ev_u2') AS issued;
SET LOCAL ROLE sessmgr_tap_ev_app;
SELECT throws_ok($$SELECT * FROM sessmgr.issue('sessmgr_tap_ev_u2')$$, '53400', 'too many active sessions',
    'with cap_policy = reject, an issuance beyond the cap fails with 53400');
RESET ROLE;
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM sessmgr.session_events),
             (SELECT count(*) FROM sessmgr.sessions),
             (SELECT sessions_issued FROM sessmgr.session_owners WHERE user_id = 'sessmgr_tap_ev_u2')$$,
    $$SELECT events, sessions, issued FROM tap_before$$,
    'the refused issuance left no event, no session and no issuance count');
SELECT is((SELECT count(*)::int FROM sessmgr.active_sessions WHERE user_id = 'sessmgr_tap_ev_u2'), 1,
    'and evicted nothing');
RESET sessmgr.cap_policy;
RESET sessmgr.max_sessions;

------------------------------------------------------------------------------
-- revoke_all
------------------------------------------------------------------------------
INSERT INTO tap_s SELECT 'r' || g, session_id, token
  FROM generate_series(1, 4) g, sessmgr.issue('sessmgr_tap_ev_u3', 'device ' || g);
SELECT is(
    sessmgr.revoke((SELECT session_id FROM tap_s WHERE k = 'r1'), 'sessmgr_tap_ev_u3'), true,
    'one of four sessions is revoked first');
SET LOCAL ROLE sessmgr_tap_ev_app;
SELECT is(
    sessmgr.revoke_all('sessmgr_tap_ev_u3', (SELECT session_id FROM tap_s WHERE k = 'r4')), 2,
    'revoke_all() except the current session ends the two others');
RESET ROLE;
SELECT results_eq(
    $$SELECT s.k, e.reason, e.actor FROM tap_ev e JOIN tap_s s USING (session_id)
       WHERE e.user_id = 'sessmgr_tap_ev_u3' AND e.event = 'revoke' ORDER BY s.k$$,
    $$VALUES ('r1', 'logout'::text, current_user::text COLLATE "default"),
             ('r2', 'logout_all', 'sessmgr_tap_ev_app'),
             ('r3', 'logout_all', 'sessmgr_tap_ev_app')$$,
    'revoke_all() writes one revoke event per session it ended, none for the excepted or already ended one');
SELECT is(sessmgr.revoke_all('sessmgr_tap_ev_u3', reason => 'account_locked'), 1,
    'revoke_all() with a reason ends the last one');
SELECT results_eq(
    $$SELECT s.k, e.reason FROM tap_ev e JOIN tap_s s USING (session_id)
       WHERE e.user_id = 'sessmgr_tap_ev_u3' AND e.event = 'revoke' AND s.k = 'r4'$$,
    $$VALUES ('r4', 'account_locked'::text)$$,
    'its event carries the reason given');
SELECT is(sessmgr.revoke_all('sessmgr_tap_ev_u3'), 0, 'revoke_all() with nothing left ends nothing');
SELECT is((SELECT count(*)::int FROM tap_ev WHERE user_id = 'sessmgr_tap_ev_u3' AND event = 'revoke'), 4,
    'and writes no event');

------------------------------------------------------------------------------
-- events belong to the transaction that caused them
------------------------------------------------------------------------------
SAVEPOINT before_issue;
INSERT INTO tap_s SELECT 't1', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u4');
SELECT is((SELECT count(*)::int FROM tap_ev WHERE user_id = 'sessmgr_tap_ev_u4'), 1,
    'inside the savepoint the issue event is there');
ROLLBACK TO SAVEPOINT before_issue;
SELECT results_eq(
    $$SELECT (SELECT count(*)::int FROM tap_ev WHERE user_id = 'sessmgr_tap_ev_u4'),
             (SELECT count(*)::int FROM sessmgr.sessions WHERE user_id = 'sessmgr_tap_ev_u4'),
             (SELECT count(*)::int FROM tap_s WHERE k = 't1')$$,
    $$VALUES (0, 0, 0)$$,
    'ROLLBACK TO SAVEPOINT removes the event together with the session');

INSERT INTO tap_s SELECT 't2', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u4');
SAVEPOINT before_revoke;
SELECT is(sessmgr.revoke_any((SELECT session_id FROM tap_s WHERE k = 't2')), true,
    'revoke() inside a savepoint');
ROLLBACK TO SAVEPOINT before_revoke;
SELECT results_eq(
    $$SELECT (SELECT string_agg(event, ',' ORDER BY id) FROM tap_ev WHERE user_id = 'sessmgr_tap_ev_u4'),
             (SELECT revoked_at IS NULL FROM sessmgr.sessions WHERE user_id = 'sessmgr_tap_ev_u4')$$,
    $$VALUES ('issue', true)$$,
    'rolling back a revocation removes its event and the session is active again');


------------------------------------------------------------------------------
-- the actor is the role the client runs as, through SECURITY DEFINER
-- wrappers (the sessmgr_api endpoints are such wrappers), and actor_user_id
-- the user of the session it authenticated with
------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.definer_revoke_all(u text) RETURNS integer
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT sessmgr.revoke_all(u, NULL::uuid, 'logout_all'::text) $$;
GRANT EXECUTE ON FUNCTION pg_temp.definer_revoke_all(text) TO sessmgr_tap_ev_app;
INSERT INTO tap_s SELECT 'a1', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u5');
INSERT INTO tap_s SELECT 'a2', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u5');
SET LOCAL ROLE sessmgr_tap_ev_app;
SELECT is(pg_temp.definer_revoke_all('sessmgr_tap_ev_u5'), 2, 'a SECURITY DEFINER wrapper ends the sessions');
RESET ROLE;
SELECT results_eq(
    $$SELECT DISTINCT tap_ev.actor, e.actor_user_id FROM tap_ev JOIN sessmgr.session_events e USING (id)
       WHERE tap_ev.user_id = 'sessmgr_tap_ev_u5' AND tap_ev.event = 'revoke'$$,
    $$VALUES ('sessmgr_tap_ev_app'::text COLLATE "default", NULL::text)$$,
    'their events name the calling role, not the wrapper''s owner, and no session user');

INSERT INTO tap_s SELECT 'a3', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u6');
INSERT INTO tap_s SELECT 'a4', session_id, token FROM sessmgr.issue('sessmgr_tap_ev_u6');
SET LOCAL ROLE sessmgr_tap_ev_app;
SELECT is(sessmgr.authenticate((SELECT token FROM tap_s WHERE k = 'a3')), 'sessmgr_tap_ev_u6',
    'the app authenticates a request of u6');
SELECT is(sessmgr.revoke((SELECT session_id FROM tap_s WHERE k = 'a4'), 'sessmgr_tap_ev_u6'), true,
    'and ends u6''s other session');
RESET ROLE;
SELECT results_eq(
    $$SELECT tap_ev.actor, e.actor_user_id FROM tap_ev JOIN sessmgr.session_events e USING (id)
       WHERE tap_ev.session_id = (SELECT session_id FROM tap_s WHERE k = 'a4') AND tap_ev.event = 'revoke'$$,
    $$VALUES ('sessmgr_tap_ev_app'::text COLLATE "default", 'sessmgr_tap_ev_u6'::text)$$,
    'the event names the role and the authenticated user');

SELECT * FROM finish();
ROLLBACK;

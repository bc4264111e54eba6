-- test/pgtap/settings.sql: the sessmgr.* settings, their defaults and checks,
-- and the lifetimes issue() really gives sessions.
BEGIN;
SELECT plan(49);

-- The settings exist only once the library is loaded in this backend.
LOAD 'sessmgr';

------------------------------------------------------------------------------
-- Defaults, as SHOW and current_setting() print them.
------------------------------------------------------------------------------
SELECT is(current_setting('sessmgr.max_sessions'), '15', 'max_sessions defaults to 15');
SELECT is(current_setting('sessmgr.cap_policy'), 'evict_oldest', 'cap_policy defaults to evict_oldest');
SELECT is(current_setting('sessmgr.idle_timeout'), '1h', 'idle_timeout defaults to 1h');
SELECT is(current_setting('sessmgr.absolute_timeout'), '1d', 'absolute_timeout defaults to 1d');
SELECT is(current_setting('sessmgr.remember_idle_timeout'), '7d', 'remember_idle_timeout defaults to 7d');
SELECT is(current_setting('sessmgr.remember_absolute_timeout'), '30d',
    'remember_absolute_timeout defaults to 30d');
SELECT is(current_setting('sessmgr.touch_interval'), '1min', 'touch_interval defaults to 1min');

SELECT results_eq(
    $$SELECT name, setting, coalesce(unit, ''), boot_val, min_val, max_val, context
        FROM pg_settings
       WHERE name IN ('sessmgr.absolute_timeout', 'sessmgr.cap_policy', 'sessmgr.idle_timeout',
                      'sessmgr.max_sessions', 'sessmgr.remember_absolute_timeout',
                      'sessmgr.remember_idle_timeout', 'sessmgr.touch_interval')
       ORDER BY name$$,
    $$VALUES ('sessmgr.absolute_timeout', '86400', 's', '86400', '1', '31622400', 'superuser'),
             ('sessmgr.cap_policy', 'evict_oldest', '', 'evict_oldest', NULL, NULL, 'superuser'),
             ('sessmgr.idle_timeout', '3600', 's', '3600', '1', '31622400', 'superuser'),
             ('sessmgr.max_sessions', '15', '', '15', '1', '10000', 'superuser'),
             ('sessmgr.remember_absolute_timeout', '2592000', 's', '2592000', '1', '31622400', 'superuser'),
             ('sessmgr.remember_idle_timeout', '604800', 's', '604800', '1', '31622400', 'superuser'),
             ('sessmgr.touch_interval', '60', 's', '60', '0', '86400', 'superuser')$$,
    'pg_settings: the session settings, their raw values, bounds and PGC_SUSET context');
SELECT is_empty(
    $$SELECT name, context FROM pg_settings WHERE name LIKE 'sessmgr.%' AND context <> 'superuser'$$,
    'every sessmgr.* setting, present and future, can be changed by superusers only');
SELECT results_eq(
    $$SELECT enumvals FROM pg_settings WHERE name = 'sessmgr.cap_policy'$$,
    $$VALUES ('{evict_oldest,evict_idle,reject}'::text[])$$,
    'cap_policy accepts evict_oldest, evict_idle and reject');

------------------------------------------------------------------------------
-- Out-of-range values.
------------------------------------------------------------------------------
SELECT throws_ok($$SET sessmgr.max_sessions = 0$$, '22023', NULL, 'max_sessions = 0 is rejected');
SELECT throws_ok($$SET sessmgr.max_sessions = -1$$, '22023', NULL, 'max_sessions = -1 is rejected');
SELECT throws_ok($$SET sessmgr.max_sessions = 10001$$, '22023', NULL, 'max_sessions = 10001 is rejected');
SELECT throws_ok($$SET sessmgr.idle_timeout = 0$$, '22023', NULL, 'idle_timeout = 0 is rejected');
SELECT throws_ok($$SET sessmgr.idle_timeout = '-1s'$$, '22023', NULL, 'idle_timeout < 0 is rejected');
SELECT throws_ok($$SET sessmgr.idle_timeout = '0.4s'$$, '22023', NULL,
    'idle_timeout that rounds to 0 s is rejected');
SELECT throws_ok($$SET sessmgr.absolute_timeout = 0$$, '22023', NULL, 'absolute_timeout = 0 is rejected');
SELECT throws_ok($$SET sessmgr.absolute_timeout = '-1h'$$, '22023', NULL,
    'absolute_timeout < 0 is rejected');
SELECT throws_ok($$SET sessmgr.absolute_timeout = '367d'$$, '22023', NULL,
    'absolute_timeout beyond 366 days is rejected');
SELECT throws_ok($$SET sessmgr.remember_idle_timeout = 0$$, '22023', NULL,
    'remember_idle_timeout = 0 is rejected');
SELECT throws_ok($$SET sessmgr.remember_absolute_timeout = 0$$, '22023', NULL,
    'remember_absolute_timeout = 0 is rejected');
SELECT throws_ok($$SET sessmgr.remember_absolute_timeout = '-30d'$$, '22023', NULL,
    'remember_absolute_timeout < 0 is rejected');
SELECT throws_ok($$SET sessmgr.touch_interval = '-1s'$$, '22023', NULL,
    'touch_interval < 0 is rejected');
SELECT throws_ok($$SET sessmgr.touch_interval = '2d'$$, '22023', NULL,
    'touch_interval beyond one day is rejected');
SELECT lives_ok($$SET LOCAL sessmgr.touch_interval = 0$$, 'touch_interval = 0 (touch on every validation) is allowed');
RESET sessmgr.touch_interval;
SELECT throws_ok($$SET sessmgr.cap_policy = 'lru'$$, '22023', NULL, 'an unknown cap_policy is rejected');
SELECT throws_ok($$SET sessmgr.cap_policy = ''$$, '22023', NULL, 'an empty cap_policy is rejected');
SELECT throws_ok($$SET sessmgr.foo = 1$$, '42602', NULL,
    'an unknown sessmgr.foo is rejected: sessmgr is a reserved prefix');
SELECT throws_ok($$SELECT set_config('sessmgr.max_session', '5', false)$$, '42602', NULL,
    'a misspelt sessmgr.* name is rejected by set_config() too');

------------------------------------------------------------------------------
-- An idle timeout longer than the absolute lifetime, when SET.
------------------------------------------------------------------------------
SELECT throws_ok($$SET sessmgr.absolute_timeout = '30min'$$, '22023', NULL,
    'absolute_timeout shorter than the current idle_timeout (1h) is rejected');
SELECT throws_ok($$SET sessmgr.idle_timeout = '25h'$$, '22023', NULL,
    'idle_timeout longer than the current absolute_timeout (1d) is rejected');
SELECT throws_ok($$SET sessmgr.remember_absolute_timeout = '6d'$$, '22023', NULL,
    'remember_absolute_timeout shorter than remember_idle_timeout (7d) is rejected');
SELECT throws_ok($$SET sessmgr.remember_idle_timeout = '31d'$$, '22023', NULL,
    'remember_idle_timeout longer than remember_absolute_timeout (30d) is rejected');
SELECT lives_ok($$SET LOCAL sessmgr.idle_timeout = '1d'$$,
    'idle_timeout equal to absolute_timeout is allowed');
RESET sessmgr.idle_timeout;
SELECT is(current_setting('sessmgr.idle_timeout'), '1h', 'the rejected values left idle_timeout alone');

------------------------------------------------------------------------------
-- issue() refuses contradictory settings the check hooks cannot see.  A
-- function's SET clause is undone without a check when the function returns,
-- while a set_config(..., false) made inside it stays: that leaves idle
-- longer than absolute.  (Values from postgresql.conf and ALTER ROLE/DATABASE
-- ... SET reach the same state at connection time, which one pgTAP
-- connection cannot show.)
------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.tap_loosen_idle() RETURNS text LANGUAGE sql
    SET sessmgr.absolute_timeout = '30h'
AS $$SELECT pg_catalog.set_config('sessmgr.idle_timeout', '25h', false)$$;
CREATE FUNCTION pg_temp.tap_loosen_remember_idle() RETURNS text LANGUAGE sql
    SET sessmgr.remember_absolute_timeout = '60d'
AS $$SELECT pg_catalog.set_config('sessmgr.remember_idle_timeout', '40d', false)$$;

SELECT is(pg_temp.tap_loosen_idle(), '25h', 'a function sets idle_timeout = 25h under its own absolute 30h');
SELECT is(current_setting('sessmgr.idle_timeout') || ' / ' || current_setting('sessmgr.absolute_timeout'),
    '25h / 1d', 'after it returns, idle_timeout (25h) is longer than absolute_timeout (1d)');
SELECT throws_ok($$SELECT * FROM sessmgr.issue('sessmgr_tap_u1')$$, '22023',
    'sessmgr.idle_timeout must not be longer than sessmgr.absolute_timeout',
    'issue() refuses idle_timeout > absolute_timeout');
RESET sessmgr.idle_timeout;

SELECT is(pg_temp.tap_loosen_remember_idle(), '40d',
    'a function sets remember_idle_timeout = 40d under its own remember_absolute 60d');
SELECT throws_ok($$SELECT * FROM sessmgr.issue('sessmgr_tap_u1', remember => true)$$, '22023',
    'sessmgr.remember_idle_timeout must not be longer than sessmgr.remember_absolute_timeout',
    'issue() refuses remember_idle_timeout > remember_absolute_timeout');
RESET sessmgr.remember_idle_timeout;

-- touch_interval has no check hook: only issue() can refuse it
SET LOCAL sessmgr.touch_interval = '1h';
SELECT throws_ok($$SELECT * FROM sessmgr.issue('sessmgr_tap_u1')$$, '22023',
    'sessmgr.touch_interval must be shorter than the idle timeouts',
    'issue() refuses touch_interval = idle_timeout');
RESET sessmgr.touch_interval;

SELECT is((SELECT count(*)::int FROM sessmgr.sessions WHERE user_id = 'sessmgr_tap_u1'), 0,
    'the refused issuances stored nothing');

------------------------------------------------------------------------------
-- The lifetimes issue() gives sessions.
------------------------------------------------------------------------------
CREATE TEMP TABLE tap_issued (k text, session_id uuid, expires_at timestamptz);
INSERT INTO tap_issued SELECT 'normal', session_id, expires_at FROM sessmgr.issue('sessmgr_tap_u1');
INSERT INTO tap_issued SELECT 'remember', session_id, expires_at
  FROM sessmgr.issue('sessmgr_tap_u1', remember => true);

SELECT results_eq(
    $$SELECT i.k, s.expires_at - s.created_at, s.idle_timeout::text, s.remember,
             s.expires_at = i.expires_at,
             s.created_at BETWEEN now() AND clock_timestamp(),
             s.last_active_at = s.created_at
        FROM tap_issued i JOIN sessmgr.sessions s ON s.id = i.session_id
       ORDER BY i.k$$,
    $$VALUES ('normal', interval '24 hours', '01:00:00', false, true, true, true),
             ('remember', interval '720 hours', '168:00:00', true, true, true, true)$$,
    'normal: expires after 24h, idle 01:00:00; remembered: 30 days (720h), idle 168:00:00');
SELECT ok(
    (SELECT expires_at BETWEEN now() + interval '24 hours' AND clock_timestamp() + interval '24 hours'
       FROM tap_issued WHERE k = 'normal'),
    'a normal session expires at now() + 24h');
SELECT ok(
    (SELECT expires_at BETWEEN now() + interval '30 days' AND clock_timestamp() + interval '30 days'
       FROM tap_issued WHERE k = 'remember'),
    'a remembered session expires at now() + 30 days');
SELECT is(
    (SELECT date_part('day', idle_timeout) + date_part('month', idle_timeout)
       FROM sessmgr.sessions s JOIN tap_issued i ON s.id = i.session_id WHERE i.k = 'remember'),
    0::double precision, 'the 7-day idle timeout is stored as hours, not calendar days');

-- changed settings apply to sessions issued afterwards, and only to them
SET LOCAL sessmgr.absolute_timeout = '2h';
SET LOCAL sessmgr.idle_timeout = '10min';
-- lowering both: the idle one first, or the check hook refuses the pair
SET LOCAL sessmgr.remember_idle_timeout = '36h';
SET LOCAL sessmgr.remember_absolute_timeout = '3d';
INSERT INTO tap_issued SELECT 'normal2', session_id, expires_at FROM sessmgr.issue('sessmgr_tap_u1');
INSERT INTO tap_issued SELECT 'remember2', session_id, expires_at
  FROM sessmgr.issue('sessmgr_tap_u1', remember => true);
SELECT results_eq(
    $$SELECT i.k, s.expires_at - s.created_at, s.idle_timeout::text
        FROM tap_issued i JOIN sessmgr.sessions s ON s.id = i.session_id
       ORDER BY i.k$$,
    $$VALUES ('normal', interval '24 hours', '01:00:00'),
             ('normal2', interval '2 hours', '00:10:00'),
             ('remember', interval '720 hours', '168:00:00'),
             ('remember2', interval '72 hours', '36:00:00')$$,
    'changed settings apply to new sessions only');

-- the stored lifetimes are what validate() and the view go by
SELECT is(
    (SELECT count(*)::int FROM sessmgr.active_sessions WHERE user_id = 'sessmgr_tap_u1'), 4,
    'all four sessions are active');
SELECT is(
    (SELECT count(*)::int FROM sessmgr.list_sessions('sessmgr_tap_u1') l
       JOIN tap_issued i ON i.session_id = l.id
      WHERE l.is_remembered = (i.k LIKE 'remember%') AND l.expires_at = i.expires_at),
    4, 'list_sessions() reports the same expiry and remember flag');

SELECT * FROM finish();
ROLLBACK;

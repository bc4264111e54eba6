--
-- Settings: superuser-only, checked values, defaults
--
-- a value an application role SET before the library was loaded in its
-- backend is not taken when the library loads
CREATE ROLE sessmgr_regress_early;
SET ROLE sessmgr_regress_early;
SET sessmgr.max_sessions = 1000;
RESET ROLE;
LOAD 'sessmgr';
SHOW sessmgr.max_sessions;
DROP ROLE sessmgr_regress_early;

SELECT name, setting, unit, context, vartype
  FROM pg_settings WHERE name LIKE 'sessmgr.%' ORDER BY name;
SHOW sessmgr.idle_timeout;
SHOW sessmgr.absolute_timeout;
SHOW sessmgr.remember_idle_timeout;
SHOW sessmgr.remember_absolute_timeout;
SHOW sessmgr.touch_interval;

-- nonsense is refused
SET sessmgr.max_sessions = 0;
SET sessmgr.max_sessions = -1;
SET sessmgr.idle_timeout = -1;
SET sessmgr.idle_timeout = 0;
SET sessmgr.touch_interval = '-1s';
SET sessmgr.cap_policy = 'evict_random';
SET sessmgr.no_such_setting = 1;
-- an idle timeout longer than the absolute lifetime
SET sessmgr.idle_timeout = '2d';
SET sessmgr.absolute_timeout = '30min';
SET sessmgr.remember_idle_timeout = '60d';
SET sessmgr.remember_absolute_timeout = '1d';
-- consistent changes are fine, in the right order
SET sessmgr.absolute_timeout = '2d';
SET sessmgr.idle_timeout = '2d';
RESET sessmgr.idle_timeout;
RESET sessmgr.absolute_timeout;

-- contradictions the SET check cannot see (files, ALTER ROLE/DATABASE) are
-- caught when issuing: here through a function's SET clauses
CREATE FUNCTION issue_with_bad_settings() RETURNS text LANGUAGE sql
    SET sessmgr.touch_interval = '2h'
AS $$ SELECT token FROM sessmgr.issue('settings-user') $$;
SELECT issue_with_bad_settings();
DROP FUNCTION issue_with_bad_settings();

-- settings changed in a session shape the sessions issued there
BEGIN;
SET LOCAL sessmgr.absolute_timeout = '2h';
SET LOCAL sessmgr.idle_timeout = '15min';
CREATE TEMP TABLE st AS SELECT * FROM sessmgr.issue('settings-user');
SELECT s.expires_at - s.created_at AS lifetime, s.idle_timeout
  FROM st JOIN sessmgr.sessions s ON s.id = st.session_id;
COMMIT;

-- an application role cannot change any of them
CREATE ROLE sessmgr_regress_app;
SET ROLE sessmgr_regress_app;
SET sessmgr.max_sessions = 1000;
SET sessmgr.cap_policy = evict_oldest;
SET sessmgr.absolute_timeout = '1y';
SET sessmgr.touch_interval = 0;
SELECT set_config('sessmgr.idle_timeout', '100d', true);
RESET ROLE;
DROP ROLE sessmgr_regress_app;

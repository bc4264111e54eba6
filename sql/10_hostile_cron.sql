--
-- Hostile input for the functions that call pg_cron: sessmgr.schedule_cleanup
-- and sessmgr.unschedule_cleanup (sql/09_hostile.sql leaves them here)
--
-- Their answer depends on the server: expected/10_hostile_cron.out is for
-- pg_cron preloaded (shared_preload_libraries, as test/run.sh's cluster has
-- it) but not created in cron.database_name; expected/10_hostile_cron_1.out
-- for a server without pg_cron.  Either way every call gives a documented
-- error and the server stays up.  The name of the pg_cron database in a
-- message shows as (cron.database_name).
--
\set SHOW_CONTEXT never
LOAD 'sessmgr';
CREATE SCHEMA hostile_cron;
SET search_path = hostile_cron, public;

-- which expected output this is
SELECT 'pg_cron' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
           AS pg_cron_preloaded;

-- SQLSTATE and message of a statement's error, like sql/09_hostile.sql's
CREATE FUNCTION sqlstate_of(statement text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    cron_db text := coalesce(current_setting('cron.database_name', true), '');
    msg text;
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    msg := CASE WHEN cron_db = '' THEN SQLERRM
                ELSE replace(SQLERRM, format('"%s"', cron_db), '(cron.database_name)') END;
    RETURN SQLSTATE || ': ' || regexp_replace(left(msg, 100), '[^\x20-\x7e]', '?', 'g') ||
           CASE WHEN length(msg) > 100
                THEN format('... (%s characters)', length(msg)) ELSE '' END;
END
$$;

CREATE TABLE strings (name text PRIMARY KEY, v text NOT NULL);
INSERT INTO strings VALUES
    ('empty', ''),
    ('valid', '*/5 * * * *'),
    ('injection', $q$'; DROP TABLE sessmgr.sessions; --$q$),
    ('cron injection', $q$* * * * *'); SELECT cron.unschedule(1); --$q$),
    ('control', E'line\nbreak\ttab\rreturn\bback\u0001\u007f'),
    ('unicode', E'\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9 \u202eright-to-left \U0001F600 \ufeff');
CREATE TABLE huge AS SELECT repeat('x', 10 * 1024 * 1024) AS v;

-- schedule_cleanup: NULL and over-long schedules are refused before pg_cron
-- is asked; the others reach the pg_cron check
SELECT sqlstate_of('SELECT sessmgr.schedule_cleanup(NULL)') AS null_schedule,
       sqlstate_of($$SELECT sessmgr.schedule_cleanup(repeat('x', 10 * 1024 * 1024))$$) AS huge_in_memory,
       sqlstate_of('SELECT sessmgr.schedule_cleanup((SELECT v FROM hostile_cron.huge))') AS huge_stored;
SELECT name, sqlstate_of(format('SELECT sessmgr.schedule_cleanup(%L)', v)) AS schedule_cleanup
  FROM strings ORDER BY name COLLATE "C";
SELECT sqlstate_of('SELECT sessmgr.schedule_cleanup()') AS default_schedule;
SELECT 'up' AS server;

-- unschedule_cleanup
SELECT sqlstate_of('SELECT sessmgr.unschedule_cleanup()') AS unschedule_cleanup;
SELECT 'up' AS server;

-- nothing was scheduled, nothing was dropped
SELECT to_regclass('sessmgr.sessions') IS NOT NULL AS sessions_table_exists;

RESET search_path;
DROP SCHEMA hostile_cron CASCADE;

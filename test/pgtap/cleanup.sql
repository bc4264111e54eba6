-- test/pgtap/cleanup.sql: the health figures of sessmgr.stats(), the cleanup
-- run log, and the catalog promises of cleanup (privileges, HOT touches).
--
-- Everything runs in one transaction, so now() is one instant for the data
-- and for stats(), and every figure is exact.
BEGIN;
SELECT plan(27);

------------------------------------------------------------------------------
-- catalog
------------------------------------------------------------------------------
SELECT is(
    (SELECT count(*)::int FROM pg_index i
      WHERE i.indrelid = 'sessmgr.sessions'::regclass
        AND (i.indkey::int2[] @> ARRAY[(SELECT attnum FROM pg_attribute
                                         WHERE attrelid = 'sessmgr.sessions'::regclass
                                           AND attname = 'last_active_at')]
             OR pg_get_expr(i.indexprs, i.indrelid) ~ 'last_active_at'
             OR pg_get_expr(i.indpred, i.indrelid) ~ 'last_active_at')),
    0, 'no index of sessmgr.sessions involves last_active_at, so the activity touch stays HOT');

SELECT ok(NOT has_function_privilege('public', 'sessmgr.cleanup(integer, bigint, bigint, bigint)', 'EXECUTE'),
    'PUBLIC cannot run cleanup');
SELECT ok(NOT has_function_privilege('public', 'sessmgr.stats()', 'EXECUTE'),
    'PUBLIC cannot read stats');
SELECT ok(NOT has_function_privilege('public', 'sessmgr.schedule_cleanup(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'sessmgr.unschedule_cleanup()', 'EXECUTE'),
    'PUBLIC cannot schedule or unschedule');
SELECT ok(NOT has_table_privilege('public', 'sessmgr.cleanup_runs', 'SELECT')
          AND NOT has_table_privilege('public', 'sessmgr.cleanup_runs', 'INSERT'),
    'PUBLIC has no access to the cleanup log');
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc p
      WHERE p.pronamespace = 'sessmgr'::regnamespace AND p.prosecdef
        AND p.proname IN ('cleanup', 'stats', 'schedule_cleanup', 'unschedule_cleanup',
                          'unschedule_cleanup_on_drop')),
    ARRAY['stats'], 'of the cleanup functions only stats() is SECURITY DEFINER');
SELECT is(
    (SELECT proconfig FROM pg_proc WHERE oid = 'sessmgr.stats()'::regprocedure),
    ARRAY['search_path=pg_catalog, pg_temp'], '... with its search_path pinned');
SELECT is(
    (SELECT evtevent || ' ' || evtenabled::text || ' ' || array_to_string(evttags, ',')
       FROM pg_event_trigger WHERE evtname = 'sessmgr_unschedule_cleanup_on_drop'),
    'ddl_command_start O DROP EXTENSION',
    'the event trigger that unschedules the job fires at the start of DROP EXTENSION');
SELECT is(
    (SELECT count(*)::int FROM pg_depend
      WHERE classid = 'pg_event_trigger'::regclass AND deptype = 'e'
        AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sessmgr')),
    1, '... and belongs to the extension');

------------------------------------------------------------------------------
-- a known set of sessions, written around the triggers
------------------------------------------------------------------------------
SET LOCAL session_replication_role = replica;
INSERT INTO sessmgr.sessions (id, created_at, last_active_at, expires_at, idle_timeout,
                              remember, token_hash, user_id, revoked_at, revoke_reason)
SELECT gen_random_uuid(), now() - v.age, now() - v.idle_for, now() - v.age + v.lifetime,
       v.idle, v.idle > interval '1 hour', sha256(v.user_id::bytea || v.age::text::bytea),
       v.user_id, now() - v.revoked_ago, v.reason
  FROM (VALUES
    -- live: ann 3, bob 1 (remembered, issued 10 days ago), cat 1
    ('tap-cl-ann', interval '3 hours',  interval '1 min',   interval '1 day',  interval '1 hour',   NULL::interval, NULL),
    ('tap-cl-ann', interval '2 hours',  interval '1 min',   interval '1 day',  interval '1 hour',   NULL, NULL),
    ('tap-cl-ann', interval '1 hour',   interval '1 min',   interval '1 day',  interval '1 hour',   NULL, NULL),
    ('tap-cl-bob', interval '10 days',  interval '1 day',   interval '30 days', interval '168 hours', NULL, NULL),
    ('tap-cl-cat', interval '5 hours',  interval '10 min',  interval '1 day',  interval '1 hour',   NULL, NULL),
    -- ended within 24 hours: logout, cap, idle timeout, absolute lifetime
    ('tap-cl-dan', interval '4 hours',  interval '2 hours', interval '1 day',  interval '1 hour',   interval '1 hour', 'logout'),
    ('tap-cl-dan', interval '5 hours',  interval '3 hours', interval '1 day',  interval '1 hour',   interval '2 hours', 'cap'),
    ('tap-cl-eve', interval '6 hours',  interval '90 min', interval '1 day',  interval '1 hour',   NULL, NULL),
    ('tap-cl-eve', interval '27 hours', interval '3 hours 10 min', interval '1 day', interval '1 hour', NULL, NULL),
    -- ended long ago: revoked 8 days ago and expired 10 days ago (past the
    -- 7-day retention), idle since 2 days (not)
    ('tap-cl-fay', interval '9 days',   interval '8 days 1 hour', interval '1 day 12 hours', interval '1 hour', interval '8 days', 'logout'),
    ('tap-cl-fay', interval '11 days',  interval '10 days 1 hour', interval '1 day', interval '1 hour', NULL, NULL),
    ('tap-cl-fay', interval '3 days',   interval '3 days',  interval '30 days', interval '24 hours', NULL, NULL)
  ) v(user_id, age, idle_for, lifetime, idle, revoked_ago, reason);
SET LOCAL session_replication_role = origin;

SELECT is(
    (SELECT row(active_sessions, users_with_active_sessions, max_sessions_per_user,
                p50_sessions_per_user, p95_sessions_per_user)::text FROM sessmgr.stats()),
    '(5,3,3,1,2.8)',
    'active sessions 5 of 3 users; per user: max 3, p50 1, p95 2.8');
SELECT is((SELECT oldest_active_session_created_at FROM sessmgr.stats()),
    now() - interval '10 days', 'the oldest active session was issued 10 days ago');
SELECT is((SELECT ended_last_24h FROM sessmgr.stats()),
    '{"revoked": {"cap": 1, "logout": 1}, "idle_timeout": 1, "absolute_timeout": 1}'::jsonb,
    'sessions ended in the last 24 hours, by how and why');
SELECT is((SELECT row(sessions_rows, sessions_awaiting_cleanup)::text FROM sessmgr.stats()),
    '(12,2)', '12 session rows, 2 of them ended longer ago than the retention');
SELECT ok((SELECT sessions_table_bytes > 0 AND sessions_index_bytes > 0
                  AND events_table_bytes > 0 AND events_index_bytes > 0
                  AND owners_table_bytes > 0
             FROM sessmgr.stats()), 'table and index sizes');
SELECT ok((SELECT sessions_dead_tuples >= 0 AND events_dead_tuples >= 0
                  AND owners_dead_tuples >= 0 FROM sessmgr.stats()), 'dead tuples');
SELECT is((SELECT notification_queue_usage FROM sessmgr.stats()), 0::float8,
    'the NOTIFY queue is empty');
SELECT is(
    (SELECT row(last_cleanup_started_at, last_cleanup_finished_at,
                last_cleanup_sessions_removed)::text FROM sessmgr.stats()),
    '(,,)', 'no cleanup has run yet');

------------------------------------------------------------------------------
-- a run (inside this transaction: no batch commits), and its log
------------------------------------------------------------------------------
CREATE TEMP TABLE tap_run AS SELECT NULL::bigint AS s, NULL::bigint AS e, NULL::bigint AS o;
DO $$
DECLARE
    removed_s bigint; removed_e bigint; removed_o bigint;
BEGIN
    CALL sessmgr.cleanup(100, removed_s, removed_e, removed_o);
    UPDATE tap_run SET s = removed_s, e = removed_e, o = removed_o;
END
$$;
SELECT is((SELECT row(s, e, o)::text FROM tap_run), '(2,0,0)',
    'cleanup removes the 2 sessions past retention (called from PL/pgSQL)');
SELECT is(
    (SELECT string_agg(user_id, ',' ORDER BY user_id) FROM sessmgr.sessions
      WHERE user_id = 'tap-cl-fay'),
    'tap-cl-fay', '... and keeps the third session of that user');
SELECT is(
    (SELECT row(sessions_removed, events_removed, owners_removed, actor)::text
       FROM sessmgr.cleanup_runs ORDER BY id DESC LIMIT 1),
    '(2,0,0,postgres)', 'the run is logged with what it removed and who ran it');
SELECT ok(
    (SELECT started_at <= finished_at FROM sessmgr.cleanup_runs ORDER BY id DESC LIMIT 1),
    '... and when');
SELECT is(
    (SELECT row(last_cleanup_sessions_removed, last_cleanup_events_removed,
                last_cleanup_owners_removed, sessions_awaiting_cleanup, sessions_rows)::text
       FROM sessmgr.stats()),
    '(2,0,0,0,10)', 'stats() reports the last run, and nothing is left awaiting cleanup');
SELECT ok((SELECT last_cleanup_finished_at IS NOT NULL FROM sessmgr.stats()),
    '... with the time it finished');

-- the log keeps runs for sessmgr.event_retention
UPDATE sessmgr.cleanup_runs SET started_at = started_at - interval '91 days',
                                finished_at = finished_at - interval '91 days';
CALL sessmgr.cleanup();
SELECT is((SELECT count(*)::int FROM sessmgr.cleanup_runs), 1,
    'a run forgets the runs older than the event retention');
SELECT is((SELECT started_at >= now() FROM sessmgr.cleanup_runs), true,
    '... and keeps itself');

-- a run that failed never finishes; stats() reports the last one that did
INSERT INTO sessmgr.cleanup_runs (started_at, actor) VALUES (now(), 'crashed');
SELECT is((SELECT last_cleanup_finished_at = (SELECT max(finished_at) FROM sessmgr.cleanup_runs)
             FROM sessmgr.stats()), true,
    'stats() skips a run that never finished');
SELECT is((SELECT count(*)::int FROM sessmgr.cleanup_runs WHERE finished_at IS NULL), 1,
    '... which stays in the log with no finish time');

SELECT * FROM finish();
ROLLBACK;

-- test/pgtap/metrics.sql: the metrics for Prometheus (sessmgr.metrics(),
-- metrics_events(), metrics_tables(), refresh_metrics()) against a known data
-- set, and the grants a monitoring role needs.
--
-- Everything runs in one transaction that is rolled back: the tables are
-- emptied first, the data set is written around the triggers, and now() is
-- one instant for the data and for the figures, so every figure is exact.
BEGIN;
SELECT plan(35);

SET LOCAL client_min_messages = warning;
TRUNCATE sessmgr.sessions, sessmgr.session_events, sessmgr.session_owners,
         sessmgr.cleanup_runs, sessmgr.metrics_snapshot, sessmgr.metrics_counters CASCADE;
RESET client_min_messages;

------------------------------------------------------------------------------
-- before any refresh: no session figures, counters from the events alone
------------------------------------------------------------------------------
SELECT is((SELECT row(snapshot_timestamp_seconds, active_sessions, users_with_sessions,
                      logins_total, cleanup_last_finished_timestamp_seconds)::text
             FROM sessmgr.metrics()),
    '(0,,,0,0)', 'nothing yet: no snapshot (time 0), no session figures, no counts, no cleanup run');

------------------------------------------------------------------------------
-- a known set of sessions, written around the triggers
--   alice 3 live (1 remembered), bob 2 live, carol 1 live + 1 revoked an hour
--   ago, dave 1 revoked 8 days ago and erin 1 expired 10 days ago (both past
--   the 7-day retention: awaiting cleanup)
------------------------------------------------------------------------------
SET LOCAL session_replication_role = replica;
INSERT INTO sessmgr.sessions (id, created_at, last_active_at, expires_at, idle_timeout,
                              remember, token_hash, user_id, revoked_at, revoke_reason)
SELECT gen_random_uuid(), now() - v.age, now() - v.age, now() - v.age + v.lifetime,
       interval '12 hours', v.remember, sha256(convert_to(v.user_id || v.n, 'UTF8')),
       v.user_id, now() - v.revoked_ago, v.reason
  FROM (VALUES
        ('alice', 1, interval '1 hour',  interval '1 day',  true,  NULL::interval, NULL),
        ('alice', 2, interval '2 hours', interval '1 day',  false, NULL, NULL),
        ('alice', 3, interval '3 hours', interval '1 day',  false, NULL, NULL),
        ('bob',   1, interval '4 hours', interval '1 day',  false, NULL, NULL),
        ('bob',   2, interval '5 hours', interval '1 day',  false, NULL, NULL),
        ('carol', 1, interval '6 hours', interval '1 day',  false, NULL, NULL),
        ('carol', 2, interval '2 hours', interval '1 day',  false, interval '1 hour', 'logout'),
        ('dave',  1, interval '9 days',  interval '30 days', false, interval '8 days', 'logout'),
        ('erin',  1, interval '11 days', interval '1 day',  false, NULL, NULL))
       AS v(user_id, n, age, lifetime, remember, revoked_ago, reason);

-- events an hour old ...
INSERT INTO sessmgr.session_events (occurred_at, event, user_id, reason, actor, details)
SELECT now() - interval '1 hour', v.event, 'u' || row_number() OVER (), v.reason, 'tap', v.details
  FROM (VALUES ('issue', NULL, NULL::jsonb), ('issue', NULL, NULL), ('issue', NULL, NULL),
               ('issue', NULL, NULL), ('revoke', 'logout', NULL), ('revoke', 'logout', NULL),
               ('revoke', 'token_reuse', NULL), ('evict', 'cap', NULL),
               ('login_failed', 'bad_credentials', '{"failures": 5, "account_failures": 5}'),
               ('login_failed', 'bad_credentials', NULL),
               ('suspicious_login', NULL, '{"reasons": ["new_country"]}'),
               ('account_locked', NULL, NULL))
       AS v(event, reason, details);
-- ... and events of this very moment
INSERT INTO sessmgr.session_events (occurred_at, event, user_id, reason, actor, details)
SELECT clock_timestamp(), v.event, 'u' || row_number() OVER (), v.reason, 'tap', v.details
  FROM (VALUES ('issue', NULL, NULL::jsonb), ('issue', NULL, NULL), ('revoke', 'admin', NULL),
               ('login_failed', 'bad_credentials', '{"failures": 3}'))
       AS v(event, reason, details);

-- cleanup runs: one that failed two hours ago, one that finished 10 minutes
-- ago after 2 seconds, one running since a minute ago
INSERT INTO sessmgr.cleanup_runs (started_at, finished_at, sessions_removed, events_removed,
                                  owners_removed, actor)
VALUES (now() - interval '2 hours', NULL, 7, 0, 0, 'tap'),
       (now() - interval '10 minutes', now() - interval '10 minutes' + interval '2 seconds',
        3, 4, 5, 'tap'),
       (now() - interval '1 minute', NULL, 0, 0, 0, 'tap');
RESET session_replication_role;

------------------------------------------------------------------------------
-- counters before the first refresh: every event is in the scrape's tail
------------------------------------------------------------------------------
SELECT is((SELECT row(logins_total, failed_logins_total, suspicious_logins_total,
                      account_lockouts_total, revocations_total, evictions_total)::text
             FROM sessmgr.metrics()),
    '(6,9,1,1,4,1)',
    'counters from the events: 6 logins, 9 failed logins (5 + 1 + 3), 1 suspicious, 1 lockout, 4 revocations, 1 eviction');
SELECT is((SELECT string_agg(event || '/' || reason || '=' || total, ' ' ORDER BY event, reason)
             FROM sessmgr.metrics_events()),
    'account_locked/=1 evict/cap=1 issue/=6 login_failed/bad_credentials=9 revoke/admin=1 revoke/logout=2 revoke/token_reuse=1 suspicious_login/=1',
    'metrics_events(): by event and reason ('''' for none), login_failed weighted by details.failures');

------------------------------------------------------------------------------
-- the refresh cleanup runs: session figures, and the counters rolled up
------------------------------------------------------------------------------
SELECT ok(sessmgr.refresh_metrics(), 'refresh_metrics() takes the snapshot');
SELECT is((SELECT row(active_sessions, remembered_sessions, users_with_sessions,
                      max_sessions_per_user, session_rows, sessions_awaiting_cleanup)::text
             FROM sessmgr.metrics()),
    '(6,1,3,3,9,2)',
    'snapshot: 6 live sessions (1 remembered) of 3 users, at most 3 per user, 9 rows, 2 past retention');
SELECT is((SELECT row(round(p50_sessions_per_user::numeric, 6), round(p90_sessions_per_user::numeric, 6),
                      round(p99_sessions_per_user::numeric, 6))::text
             FROM sessmgr.metrics()),
    '(2.000000,2.800000,2.980000)', 'sessions per user over users with one: p50 2, p90 2.8, p99 2.98 (of 1, 2, 3)');
SELECT is((SELECT oldest_active_session_created_seconds FROM sessmgr.metrics()),
    extract(epoch FROM now() - interval '6 hours')::double precision,
    'the oldest live session is carol''s, 6 hours old');
SELECT ok((SELECT snapshot_timestamp_seconds BETWEEN extract(epoch FROM now())
                                                 AND extract(epoch FROM clock_timestamp())
             FROM sessmgr.metrics()),
    'the snapshot''s time is when the refresh ran');
SELECT ok((SELECT snapshot_age_seconds >= 0 AND snapshot_duration_seconds >= 0 FROM sessmgr.metrics()),
    'its age and duration are known');
SELECT is((SELECT row(retention, event_retention)::text FROM sessmgr.metrics_snapshot),
    '(168:00:00,2160:00:00)', 'the snapshot records the retention settings it judged by');
SELECT is((SELECT through_event_id FROM sessmgr.metrics_snapshot),
    (SELECT max(id) FROM sessmgr.session_events),
    'the counters took in every event (no other transaction is writing any)');
SELECT is((SELECT string_agg(event || '/' || reason || '=' || total, ' ' ORDER BY event, reason)
             FROM sessmgr.metrics_counters),
    'account_locked/=1 evict/cap=1 issue/=6 login_failed/bad_credentials=9 revoke/admin=1 revoke/logout=2 revoke/token_reuse=1 suspicious_login/=1',
    'metrics_counters holds them all');
SELECT is((SELECT row(logins_total, failed_logins_total, suspicious_logins_total,
                      account_lockouts_total, revocations_total, evictions_total)::text
             FROM sessmgr.metrics()),
    '(6,9,1,1,4,1)', 'the totals are the same after the roll-up (counters plus the tail)');

-- the events go (as after sessmgr.event_retention, or erasure): the counters stay
DELETE FROM sessmgr.session_events;
SELECT is((SELECT row(logins_total, failed_logins_total, revocations_total)::text
             FROM sessmgr.metrics()),
    '(6,9,4)', 'counters do not go down when cleanup removes the events they counted');
SELECT is((SELECT string_agg(event || '/' || reason || '=' || total, ' ' ORDER BY event, reason)
             FROM sessmgr.metrics_events()),
    'account_locked/=1 evict/cap=1 issue/=6 login_failed/bad_credentials=9 revoke/admin=1 revoke/logout=2 revoke/token_reuse=1 suspicious_login/=1',
    '... nor does metrics_events()');
SELECT ok(sessmgr.refresh_metrics(), 'a second refresh');
SELECT is((SELECT string_agg(event || '/' || reason || '=' || total, ' ' ORDER BY event, reason)
             FROM sessmgr.metrics_events()),
    'account_locked/=1 evict/cap=1 issue/=6 login_failed/bad_credentials=9 revoke/admin=1 revoke/logout=2 revoke/token_reuse=1 suspicious_login/=1',
    '... counts nothing twice');

-- a new login now: in the scrape at once, not in the snapshot's session figures
SELECT count(*) AS issued FROM sessmgr.issue('frank') \gset
SELECT is((SELECT row(logins_total, active_sessions)::text FROM sessmgr.metrics()),
    '(7,6)', 'a login counts at once; active sessions wait for the next refresh');
SELECT ok(sessmgr.refresh_metrics(), 'a third refresh');
SELECT is((SELECT row(logins_total, active_sessions, users_with_sessions)::text FROM sessmgr.metrics()),
    '(7,7,4)', '... takes it in');

------------------------------------------------------------------------------
-- cleanup figures, read at scrape time
------------------------------------------------------------------------------
SELECT is((SELECT row(cleanup_last_started_timestamp_seconds
                      = extract(epoch FROM now() - interval '10 minutes'),
                      cleanup_last_finished_timestamp_seconds
                      = extract(epoch FROM now() - interval '10 minutes' + interval '2 seconds'),
                      cleanup_last_duration_seconds, cleanup_last_sessions_removed,
                      cleanup_last_events_removed, cleanup_last_owners_removed)::text
             FROM sessmgr.metrics()),
    '(t,t,2,3,4,5)', 'the last finished cleanup run: its start, end, duration and counts');
SELECT is((SELECT row(cleanup_running, cleanup_unfinished_runs)::text FROM sessmgr.metrics()),
    '(1,1)', 'one run running (started a minute ago), one that never finished (two hours ago)');
SELECT is((SELECT sessions_cleanup_overdue_seconds FROM sessmgr.metrics()),
    extract(epoch FROM interval '3 days')::double precision,
    'erin''s session expired 10 days ago: 3 days past the 7-day retention, not removed');
SELECT is((SELECT events_cleanup_overdue_seconds FROM sessmgr.metrics()),
    0::double precision, 'no event is past the 90-day event retention');
SELECT is((SELECT notification_queue_usage FROM sessmgr.metrics()), 0::double precision,
    'the NOTIFY queue is empty');

------------------------------------------------------------------------------
-- table figures
------------------------------------------------------------------------------
SELECT is((SELECT array_agg(table_name ORDER BY table_name) FROM sessmgr.metrics_tables()),
    (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
      WHERE c.relnamespace = 'sessmgr'::regnamespace AND c.relkind = 'r'),
    'metrics_tables(): one row per sessmgr table');
SELECT is((SELECT row(table_bytes = pg_table_size('sessmgr.sessions'),
                      index_bytes = pg_indexes_size('sessmgr.sessions'),
                      dead_tuples = pg_stat_get_dead_tuples('sessmgr.sessions'::regclass))::text
             FROM sessmgr.metrics_tables() WHERE table_name = 'sessions'),
    '(t,t,t)', '... with the sizes and dead tuples of each');

------------------------------------------------------------------------------
-- grants: a monitoring role gets EXECUTE on the three readers, nothing else
------------------------------------------------------------------------------
SELECT is((SELECT count(*)::int FROM unnest(ARRAY['sessmgr.metrics()', 'sessmgr.metrics_events()',
                                                  'sessmgr.metrics_tables()', 'sessmgr.refresh_metrics()'])
                                     AS f(sig)
            WHERE has_function_privilege('public', f.sig, 'EXECUTE')),
    0, 'PUBLIC cannot execute any of the metrics functions');
SELECT ok(NOT has_table_privilege('public', 'sessmgr.metrics_snapshot', 'SELECT')
          AND NOT has_table_privilege('public', 'sessmgr.metrics_counters', 'SELECT'),
    'PUBLIC cannot read the snapshot or the counters');

CREATE ROLE sessmgr_tap_monitor NOLOGIN;
GRANT USAGE ON SCHEMA sessmgr TO sessmgr_tap_monitor;
GRANT EXECUTE ON FUNCTION sessmgr.metrics(), sessmgr.metrics_events(), sessmgr.metrics_tables()
  TO sessmgr_tap_monitor;
SET LOCAL ROLE sessmgr_tap_monitor;
SELECT is((SELECT logins_total FROM sessmgr.metrics()), 7::bigint,
    'the monitoring role reads metrics()');
SELECT is((SELECT sum(total)::int FROM sessmgr.metrics_events() WHERE event = 'revoke'), 4,
    '... metrics_events()');
SELECT cmp_ok((SELECT count(*)::int FROM sessmgr.metrics_tables()), '>=', 8,
    '... and metrics_tables()');
SELECT throws_ok($$SELECT sessmgr.refresh_metrics()$$, '42501', NULL,
    '... but cannot refresh');
SELECT throws_ok($$SELECT * FROM sessmgr.stats()$$, '42501', NULL,
    '... nor call stats() (it reads every session row)');
SELECT throws_ok($$SELECT * FROM sessmgr.metrics_counters$$, '42501', NULL,
    '... nor read the tables');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

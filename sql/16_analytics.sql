--
-- Analytics: login_activity, session_durations, login_geography and
-- device_usage against a known data set, before, during and after the
-- roll-ups (the figures must not change), then cleanup's part: the expire
-- events it writes when it removes a session that timed out, and the end
-- events' details that durations need.
--
-- The data set is ten whole UTC days before today plus today, written as the
-- triggers and cleanup write them (sessions and events inserted directly,
-- triggers off): every timestamp is an offset from since, today's UTC
-- midnight minus ten days, and everything runs in one transaction that is
-- rolled back, so the rest of the suite's data is neither seen nor changed.
--
\set SHOW_CONTEXT never
LOAD 'sessmgr';
BEGIN;
SET LOCAL timezone = 'UTC';
SET LOCAL sessmgr.event_retention = '3650d';
SELECT (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '10 days') AT TIME ZONE 'UTC' AS since \gset
-- nothing else in the history
DELETE FROM sessmgr.retired_tokens;
DELETE FROM sessmgr.sessions;
DELETE FROM sessmgr.session_events;
DELETE FROM sessmgr.analytics_days;
DELETE FROM sessmgr.analytics_returns;
DELETE FROM sessmgr.analytics_user_days;
DELETE FROM sessmgr.analytics_places;
DELETE FROM sessmgr.analytics_user_places;
DELETE FROM sessmgr.analytics_devices;
DELETE FROM sessmgr.analytics_user_devices;
DELETE FROM sessmgr.analytics_durations;

-- the sessions: login time (hours after since), place, device, and how and
-- when they ended (hours after since): by an event (revoke, evict, expire)
-- or, for a timeout cleanup has not removed yet, by the row alone
CREATE TEMP TABLE an_sessions (
    n int, user_id text, at_h numeric, remember boolean, country_code text, country text,
    browser text, os text, device_type text, end_kind text, end_h numeric, by_row boolean);
INSERT INTO an_sessions VALUES
    -- day 0
    ( 1, 'an-u1',   8,    false, 'DE', 'Germany', 'Chrome',  'Windows', 'Desktop', 'logout',  32,     false),
    ( 2, 'an-u1',  20,    false, 'DE', 'Germany', 'Chrome',  'Windows', 'Desktop', 'idle',    20.5,   false),
    ( 3, 'an-u2',   9,    true,  'DE', 'Germany', 'Firefox', 'Linux',   'Desktop', 'idle',    57,     true),
    ( 4, 'an-u3',  10,    false, 'FR', 'France',  'Safari',  'iOS',     'Mobile',  'logout',  10 + 1/6.0, false),
    -- day 1
    ( 5, 'an-u1',  31,    false, 'DE', 'Germany', 'Chrome',  'Windows', 'Desktop', 'cap',     79,     false),
    ( 6, 'an-u4',  36,    false, NULL, NULL,      NULL,      NULL,      NULL,      'idle',    36.5,   true),
    -- day 2: nothing; day 3
    ( 7, 'an-u2',  78,    false, 'US', 'United States', 'Firefox', 'Linux', 'Desktop', 'absolute', 90, false),
    ( 8, 'an-u3',  83,    false, 'FR', 'France',  'Safari',  'iOS',     'Mobile',  'logout',  83 + 1/6.0, false),
    ( 9, 'an-u3',  87,    false, 'FR', 'France',  'Safari',  'iOS',     'Mobile',  'logout',  87 + 1/3.0, false),
    (10, 'an-u5',  88,    false, 'US', 'United States', 'Chrome', 'Android', 'Mobile', 'token_reuse', 89, false),
    -- days 4 to 7
    (11, 'an-u1', 104,    false, 'DE', 'Germany', 'Chrome',  'Windows', 'Desktop', 'idle',    104.5,  true),
    (12, 'an-u1', 128,    false, 'DE', 'Germany', 'Chrome',  'Windows', 'Desktop', 'idle',    128.5,  false),
    (13, 'an-u1', 152,    true,  'DE', 'Germany', 'Chrome',  'Windows', 'Desktop', 'logout',  158,    false),
    (14, 'an-u1', 176,    false, 'DE', 'Germany', 'Chrome',  'Windows', 'Desktop', 'absolute', 188,   true),
    (15, 'an-u2', 177,    false, 'DE', 'Germany', 'Firefox', 'Linux',   'Desktop', 'admin',   201,    false),
    -- day 8: nothing; day 9, then today (day 10): still live
    (16, 'an-u3', 226,    false, 'FR', 'France',  'Safari',  'iOS',     'Mobile',  NULL,      NULL,   true),
    (17, 'an-u1', 240,    false, 'DE', 'Germany', 'Chrome',  'Windows', 'Desktop', NULL,      NULL,   true),
    (18, 'an-u6', 240.0003, false, 'JP', 'Japan', 'Edge',    'Windows', 'Desktop', NULL,      NULL,   true);

CREATE TEMP TABLE an_ids AS
SELECT n, gen_random_uuid() AS id, :'since'::timestamptz + make_interval(secs => at_h * 3600) AS at,
       :'since'::timestamptz + make_interval(secs => end_h * 3600) AS end_at
  FROM an_sessions;

SET LOCAL session_replication_role = replica;
-- the rows still in sessions: timed out (not removed yet) or live
INSERT INTO sessmgr.sessions (id, user_id, token_hash, created_at, last_active_at, expires_at,
                              idle_timeout, remember, country_code, country, browser, os, device_type)
SELECT i.id, s.user_id, sha256(i.id::text::bytea), i.at,
       CASE WHEN s.end_kind = 'idle' THEN i.end_at - interval '20 minutes'
            WHEN s.end_kind IS NULL THEN now() ELSE i.at END,
       CASE WHEN s.end_kind = 'absolute' THEN i.end_at
            WHEN s.end_kind IS NULL THEN now() + interval '1 day' ELSE i.at + interval '30 days' END,
       CASE WHEN s.end_kind = 'idle' THEN interval '20 minutes' ELSE interval '23 hours' END,
       s.remember, s.country_code, s.country, s.browser, s.os, s.device_type
  FROM an_sessions s JOIN an_ids i USING (n)
 WHERE s.by_row;
-- the issue event of every session
INSERT INTO sessmgr.session_events (occurred_at, event, session_id, user_id, actor,
                                    country_code, country, browser, os, device_type)
SELECT i.at, 'issue', i.id, s.user_id, current_user, s.country_code, s.country, s.browser, s.os, s.device_type
  FROM an_sessions s JOIN an_ids i USING (n);
-- the end events: revoke and evict (the audit trigger), expire (cleanup)
INSERT INTO sessmgr.session_events (occurred_at, event, session_id, user_id, reason, actor, details)
SELECT i.end_at,
       CASE s.end_kind WHEN 'cap' THEN 'evict' WHEN 'idle' THEN 'expire' WHEN 'absolute' THEN 'expire'
                       ELSE 'revoke' END,
       i.id, s.user_id, s.end_kind, current_user,
       jsonb_build_object('session_created_at', i.at, 'remember', s.remember)
  FROM an_sessions s JOIN an_ids i USING (n)
 WHERE s.end_kind IS NOT NULL AND NOT s.by_row;
-- failed logins (details.failures: attempts since the last event; none: 1)
INSERT INTO sessmgr.session_events (occurred_at, event, user_id, reason, actor, details)
VALUES (:'since'::timestamptz + interval '12 hours', 'login_failed', 'an-u1', 'bad_credentials', current_user, '{"failures": 3}'),
       (:'since'::timestamptz + interval '84 hours', 'login_failed', 'an-u9', 'bad_credentials', current_user, '{"failures": 1}'),
       (:'since'::timestamptz + interval '84 hours 5 minutes', 'login_failed', 'an-u9', 'bad_credentials', current_user, '{"failures": 5}'),
       (:'since'::timestamptz + interval '229 hours', 'login_failed', 'an-u9', 'bad_credentials', current_user, NULL),
       (:'since'::timestamptz + interval '240 hours 2 seconds', 'login_failed', 'an-u9', 'bad_credentials', current_user, '{"failures": 2}');
-- suspicious logins: one with its country, one that takes its session's
INSERT INTO sessmgr.session_events (occurred_at, event, session_id, user_id, actor, country_code, country, details)
SELECT i.at + interval '1 second', 'suspicious_login', i.id, s.user_id, current_user,
       CASE WHEN s.n = 10 THEN s.country_code END, CASE WHEN s.n = 10 THEN s.country END,
       '{"reasons": ["new_country"]}'
  FROM an_sessions s JOIN an_ids i USING (n)
 WHERE s.n IN (10, 16);
RESET session_replication_role;

-- the figures, under a time zone that is not UTC (they must not depend on it)
CREATE TEMP TABLE an_figures (stage text, fn text, row_text text);
CREATE FUNCTION pg_temp.an_take(stage text, since timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    SET LOCAL timezone = 'America/New_York';
    INSERT INTO an_figures
    SELECT stage, 'activity', format('%s %s', (extract(epoch FROM a.bucket_start - since) / 86400)::int,
                                     row(a.logins, a.users, a.failed_logins, a.suspicious_logins,
                                         a.revocations, a.evictions))
      FROM sessmgr.login_activity(since) a;
    INSERT INTO an_figures
    SELECT stage, 'activity since day 3 noon', format('%s %s', (extract(epoch FROM a.bucket_start - since) / 86400)::int,
                                     row(a.logins, a.users, a.failed_logins, a.suspicious_logins,
                                         a.revocations, a.evictions))
      FROM sessmgr.login_activity(since + interval '84 hours') a;
    INSERT INTO an_figures SELECT stage, 'durations', d::text FROM sessmgr.session_durations(since) d;
    INSERT INTO an_figures SELECT stage, 'durations since day 3 noon', d::text
      FROM sessmgr.session_durations(since + interval '84 hours') d;
    INSERT INTO an_figures SELECT stage, 'geography', g::text FROM sessmgr.login_geography(since) g;
    INSERT INTO an_figures SELECT stage, 'geography since day 3 noon', g::text
      FROM sessmgr.login_geography(since + interval '84 hours') g;
    INSERT INTO an_figures SELECT stage, 'devices', d::text FROM sessmgr.device_usage(since) d;
    INSERT INTO an_figures SELECT stage, 'devices since day 3 noon', d::text
      FROM sessmgr.device_usage(since + interval '84 hours') d;
    SET LOCAL timezone = 'UTC';
END
$$;

-- 1. nothing rolled up yet: every figure from the events and sessions
SELECT pg_temp.an_take('events', :'since');
SELECT fn, row_text FROM an_figures WHERE stage = 'events' ORDER BY fn, row_text COLLATE "C";

-- 2. days 0 to 3 rolled up (the oldest event's day first), the rest from the events
SELECT sessmgr.analytics_roll_up('-infinity') FROM generate_series(1, 4);
SELECT (extract(epoch FROM (day::timestamp AT TIME ZONE 'UTC') - :'since') / 86400)::int AS day,
       logins, failed_logins, suspicious_logins, revocations, evictions
  FROM sessmgr.analytics_days ORDER BY day;
SELECT pg_temp.an_take('days 0-3', :'since');

-- 3. everything up to yesterday: today is never rolled up before it ends
SELECT count(*) AS days_rolled_up FROM generate_series(1, 20) WHERE sessmgr.analytics_roll_up('-infinity');
SELECT max(day) = (now() AT TIME ZONE 'UTC')::date - 1 AS up_to_yesterday FROM sessmgr.analytics_days;
SELECT pg_temp.an_take('days 0-9', :'since');

-- the same figures at every stage
CREATE FUNCTION pg_temp.an_differences(stage text) RETURNS bigint
LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM (SELECT fn, row_text FROM an_figures WHERE an_figures.stage = $1
                                  EXCEPT ALL
                                  SELECT fn, row_text FROM an_figures WHERE an_figures.stage = 'events') x)
         + (SELECT count(*) FROM (SELECT fn, row_text FROM an_figures WHERE an_figures.stage = 'events'
                                  EXCEPT ALL
                                  SELECT fn, row_text FROM an_figures WHERE an_figures.stage = $1) y)
$$;
SELECT stage, count(*) AS figures, pg_temp.an_differences(stage) AS differences
  FROM an_figures GROUP BY stage ORDER BY stage;

-- buckets of several days or hours (aligned to UTC midnight, 2001-01-01):
-- exactly what a plain count of the events gives
CREATE FUNCTION pg_temp.an_reference(since timestamptz, bucket interval)
RETURNS TABLE (bucket_start timestamptz, logins bigint, users bigint, failed_logins bigint,
               suspicious_logins bigint, revocations bigint, evictions bigint)
LANGUAGE sql AS $$
    WITH b AS (
        SELECT generate_series(date_bin(bucket, since, '2001-01-01 00:00+00'),
                               date_bin(bucket, now(), '2001-01-01 00:00+00'), bucket) AS bs
    )
    SELECT b.bs,
           count(*) FILTER (WHERE e.event = 'issue'),
           count(DISTINCT e.user_id) FILTER (WHERE e.event = 'issue'),
           coalesce(sum(coalesce((e.details ->> 'failures')::bigint, 1)) FILTER (WHERE e.event = 'login_failed'), 0)::bigint,
           count(*) FILTER (WHERE e.event = 'suspicious_login'),
           count(*) FILTER (WHERE e.event = 'revoke'),
           count(*) FILTER (WHERE e.event = 'evict')
      FROM b LEFT JOIN sessmgr.session_events e
        ON e.occurred_at >= b.bs AND e.occurred_at < b.bs + bucket
     GROUP BY b.bs
$$;
SELECT bucket, count(*) > 1 AS several, sum((f).logins) > 0 AS some_logins,
       count(*) FILTER (WHERE r IS DISTINCT FROM f) AS differ
  FROM (VALUES ('2 days'::interval), ('3 days'), ('7 days'), ('6 hours'), ('90 minutes')) v(bucket),
       LATERAL (SELECT r, f
                  FROM pg_temp.an_reference(:'since'::timestamptz + interval '30 hours', v.bucket) r
                  FULL JOIN sessmgr.login_activity(:'since'::timestamptz + interval '30 hours', v.bucket) f
                    ON f.bucket_start = r.bucket_start) x
 GROUP BY bucket ORDER BY bucket;

-- bad arguments: a clear error, never a long computation
CREATE FUNCTION pg_temp.an_error(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT pg_temp.an_error(s) AS error
  FROM (VALUES ($$SELECT * FROM sessmgr.login_activity(NULL)$$),
               ($$SELECT * FROM sessmgr.login_activity(now(), NULL)$$),
               ($$SELECT * FROM sessmgr.login_activity(now(), '0')$$),
               ($$SELECT * FROM sessmgr.login_activity(now(), '-1 day')$$),
               ($$SELECT * FROM sessmgr.login_activity(now(), '1 mon')$$),
               ($$SELECT * FROM sessmgr.login_activity(now(), '100 years')$$),
               ($$SELECT * FROM sessmgr.login_activity(now(), '3661 days')$$),
               ($$SELECT * FROM sessmgr.login_activity(now(), '0.5 seconds')$$),
               ($$SELECT * FROM sessmgr.login_activity(now() - interval '30 days', '1 second')$$),
               ($$SELECT * FROM sessmgr.session_durations(NULL)$$),
               ($$SELECT * FROM sessmgr.login_geography(NULL)$$),
               ($$SELECT * FROM sessmgr.device_usage(NULL)$$)) v(s);
-- since in the future: nothing; since -infinity: from the first event
SELECT (SELECT count(*) FROM sessmgr.login_activity('infinity')) AS future_buckets,
       (SELECT count(*) FROM sessmgr.login_activity('-infinity')) AS all_buckets,
       (SELECT count(*) FROM sessmgr.session_durations('infinity')) AS future_kinds,
       (SELECT sum(logins) FROM sessmgr.login_geography('-infinity')) AS all_logins;

-- 4. cleanup removes the sessions that timed out more than a day ago (the
-- live ones and s16 stay), writing their expire events at the time they
-- ended; the figures do not change
SET LOCAL sessmgr.retention = '1d';
CALL sessmgr.cleanup();
SELECT s.n, e.reason, e.occurred_at = i.end_at AS at_end,
       (e.details ->> 'session_created_at')::timestamptz = i.at AS created_at,
       (e.details ->> 'remember')::boolean = s.remember AS remember
  FROM sessmgr.session_events e JOIN an_ids i ON i.id = e.session_id JOIN an_sessions s USING (n)
 WHERE e.event = 'expire' AND s.by_row
 ORDER BY s.n;
SELECT count(*) AS sessions_left FROM sessmgr.sessions;
SELECT pg_temp.an_take('after cleanup', :'since');
SELECT pg_temp.an_differences('after cleanup') AS differences;

-- 5. the audit trigger's end events carry what durations need
SET LOCAL sessmgr.max_sessions = 1;
SELECT session_id AS an_first FROM sessmgr.issue('an-live', remember => true) \gset
SELECT session_id AS an_second FROM sessmgr.issue('an-live') \gset
SELECT sessmgr.revoke(:'an_second', 'an-live');
SELECT e.event, e.reason,
       (e.details ->> 'session_created_at')::timestamptz = s.created_at AS created_at,
       (e.details ->> 'remember')::boolean AS remember
  FROM sessmgr.session_events e JOIN sessmgr.sessions s ON s.id = e.session_id
 WHERE e.user_id = 'an-live' AND e.event IN ('revoke', 'evict')
 ORDER BY e.id;
SELECT kind, ended FROM sessmgr.session_durations(now()) ORDER BY kind COLLATE "C";
ROLLBACK;

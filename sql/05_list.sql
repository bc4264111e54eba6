--
-- sessmgr.list_sessions() and the sessmgr.active_sessions view
--
CREATE TEMP TABLE ls (device text, session_id uuid, token text);
INSERT INTO ls SELECT 'laptop', session_id, token
  FROM sessmgr.issue('lisa', 'laptop', 'Firefox', '203.0.113.10', 'Berlin');
INSERT INTO ls SELECT 'phone', session_id, token
  FROM sessmgr.issue('lisa', 'phone', 'Safari', '198.51.100.7', 'Berlin', true);
INSERT INTO ls SELECT 'tablet', session_id, token
  FROM sessmgr.issue('lisa', 'tablet', 'Chrome', '192.0.2.44', 'Hamburg');
INSERT INTO ls SELECT 'revoked', session_id, token FROM sessmgr.issue('lisa', 'old');
SELECT sessmgr.revoke_any(session_id) FROM ls WHERE device = 'revoked';
SELECT make_session('lisa', now() - interval '3 hours', now() - interval '2 hours',
                    now() + interval '1 day') IS NOT NULL AS idle_session;
SELECT session_id AS laptop_id FROM ls WHERE device = 'laptop' \gset

-- the phone was used most recently, the tablet before it
BEGIN;
SET LOCAL sessmgr.touch_interval = 0;
SELECT count(*) FROM ls, sessmgr.validate(ls.token) WHERE device = 'tablet';
COMMIT;
BEGIN;
SET LOCAL sessmgr.touch_interval = 0;
SELECT count(*) FROM ls, sessmgr.validate(ls.token) WHERE device = 'phone';
COMMIT;

-- active sessions only, most recently active first, this device marked
SELECT device_name, user_agent, ip, location, is_current, is_remembered,
       expires_at > now() AS in_future, last_active_at >= created_at AS consistent
  FROM sessmgr.list_sessions('lisa', :'laptop_id');
-- without a current session nothing is marked
SELECT count(*) FILTER (WHERE is_current) AS marked FROM sessmgr.list_sessions('lisa');
-- a session id of somebody else marks nothing and shows nothing of theirs
SELECT count(*) FILTER (WHERE is_current) AS marked
  FROM sessmgr.list_sessions('lisa', (SELECT id FROM sessmgr.active_sessions
                                      WHERE user_id <> 'lisa' LIMIT 1));
-- unknown and NULL users have no sessions
SELECT count(*) FROM sessmgr.list_sessions('nobody');
SELECT count(*) FROM sessmgr.list_sessions(NULL);

-- the admin view: every user's active sessions, without token hashes
SELECT count(DISTINCT user_id) > 5 AS many_users,
       bool_and(expires_at > now()) AS all_live
  FROM sessmgr.active_sessions;
SELECT device_name FROM sessmgr.active_sessions WHERE user_id = 'lisa' ORDER BY device_name;
SELECT attname FROM pg_attribute
 WHERE attrelid = 'sessmgr.active_sessions'::regclass AND attnum > 0 ORDER BY attnum;

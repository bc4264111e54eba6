--
-- The per-user cap: sessmgr.max_sessions and sessmgr.cap_policy
--
-- errors raised inside the cap trigger would show the internal INSERT as context
\set SHOW_CONTEXT never
SET sessmgr.max_sessions = 3;

-- evict_oldest (the default): the oldest-created session goes, reason 'cap'
CREATE TEMP TABLE capped (n int, session_id uuid, token text);
INSERT INTO capped SELECT g, i.session_id, i.token
  FROM generate_series(1, 5) g, LATERAL sessmgr.issue('cap-oldest', 'device ' || g) i;
SELECT c.n, count(x.*) AS valid
  FROM capped c LEFT JOIN LATERAL sessmgr.validate(c.token) x ON true
 GROUP BY c.n ORDER BY c.n;
SELECT c.n, s.revoke_reason
  FROM capped c JOIN sessmgr.sessions s ON s.id = c.session_id ORDER BY c.n;
SELECT event, count(*) FROM sessmgr.session_events
 WHERE user_id = 'cap-oldest' GROUP BY event ORDER BY event;

-- ended sessions do not count: after a logout there is room without eviction
SELECT sessmgr.revoke(session_id, 'cap-oldest') FROM capped WHERE n = 4;
INSERT INTO capped SELECT 6, session_id, token FROM sessmgr.issue('cap-oldest', 'device 6');
SELECT c.n FROM capped c JOIN sessmgr.active_sessions a ON a.id = c.session_id ORDER BY c.n;
-- expired and idle sessions do not count either
SELECT make_session('cap-expired', now() - interval '2 days', now() - interval '1 hour',
                    now() - interval '1 minute') IS NOT NULL AS made;
SELECT make_session('cap-expired', now() - interval '3 hours', now() - interval '2 hours',
                    now() + interval '1 day') IS NOT NULL AS made;
SELECT make_session('cap-expired', now() - interval '3 hours', now() - interval '2 hours',
                    now() + interval '1 day') IS NOT NULL AS made;
SELECT count(*) AS issued FROM generate_series(1, 3) g, LATERAL sessmgr.issue('cap-expired', 'device ' || g) i;
SELECT count(*) FILTER (WHERE revoke_reason = 'cap') AS evicted,
       count(*) AS rows
  FROM sessmgr.sessions WHERE user_id = 'cap-expired';

-- evict_idle: the least recently active session goes
SET sessmgr.cap_policy = evict_idle;
SELECT make_session('cap-idle', now() - interval '50 minutes', now() - interval '1 minute',
                    now() + interval '1 day') AS a_token \gset
SELECT make_session('cap-idle', now() - interval '40 minutes', now() - interval '30 minutes',
                    now() + interval '1 day') AS b_token \gset
SELECT make_session('cap-idle', now() - interval '30 minutes', now() - interval '5 minutes',
                    now() + interval '1 day') AS c_token \gset
SELECT count(*) FROM sessmgr.issue('cap-idle', 'new');
SELECT count(*) AS oldest_but_active FROM sessmgr.validate(:'a_token');
SELECT count(*) AS least_recently_active FROM sessmgr.validate(:'b_token');
SELECT count(*) AS other FROM sessmgr.validate(:'c_token');

-- reject: issuance fails with 53400 and a hint, nothing is evicted or written
SET sessmgr.cap_policy = reject;
SELECT count(*) FROM generate_series(1, 3) g, LATERAL sessmgr.issue('cap-reject', 'device ' || g) i;
SELECT count(*) AS events_before FROM sessmgr.session_events WHERE user_id = 'cap-reject' \gset
SELECT count(*) FROM sessmgr.issue('cap-reject', 'one too many');
SELECT sqlstate_of($$SELECT sessmgr.issue('cap-reject')$$);
SELECT count(*) AS active FROM sessmgr.active_sessions WHERE user_id = 'cap-reject';
SELECT count(*) - :events_before AS new_events
  FROM sessmgr.session_events WHERE user_id = 'cap-reject';
-- after the user ends a session, the next login succeeds
SELECT sessmgr.revoke(id, 'cap-reject')
  FROM sessmgr.active_sessions WHERE user_id = 'cap-reject'
 ORDER BY created_at LIMIT 1;
SELECT count(*) FROM sessmgr.issue('cap-reject', 'after logout');

-- a direct INSERT obeys the cap too
SELECT sqlstate_of($$SELECT make_session('cap-reject', now(), now(), now() + interval '1 hour')$$);
RESET sessmgr.cap_policy;
SELECT make_session('cap-reject', now(), now(), now() + interval '1 hour') IS NOT NULL AS made;
SELECT count(*) AS active FROM sessmgr.active_sessions WHERE user_id = 'cap-reject';

-- the cap is per user: other users are unaffected
SELECT count(*) FROM generate_series(1, 3) g, LATERAL sessmgr.issue('cap-other', 'device ' || g) i;
SELECT user_id, count(*) FROM sessmgr.active_sessions
 WHERE user_id LIKE 'cap-%' GROUP BY user_id ORDER BY user_id;

-- session_owners counts issuances
SELECT user_id, sessions_issued FROM sessmgr.session_owners
 WHERE user_id LIKE 'cap-%' ORDER BY user_id;

-- the default cap is 15
RESET sessmgr.max_sessions;
SELECT count(*) FROM generate_series(1, 20) g, LATERAL sessmgr.issue('cap-default', 'device ' || g) i;
SELECT count(*) AS active FROM sessmgr.active_sessions WHERE user_id = 'cap-default';

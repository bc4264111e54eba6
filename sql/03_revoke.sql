--
-- sessmgr.revoke(), revoke_any() and revoke_all(): final, audited, no leaks
--
CREATE TEMP TABLE rv AS
SELECT d.device, i.*
  FROM unnest(ARRAY['laptop', 'phone', 'tablet']) WITH ORDINALITY d(device, n),
       LATERAL sessmgr.issue('rita', d.device) i
 ORDER BY d.n;
CREATE TEMP TABLE other AS SELECT * FROM sessmgr.issue('oscar', 'desktop');
SELECT session_id AS phone_id, token AS phone_token FROM rv WHERE device = 'phone' \gset
SELECT session_id AS laptop_id, token AS laptop_token FROM rv WHERE device = 'laptop' \gset
SELECT session_id AS oscar_id, token AS oscar_token FROM other \gset

-- revoke one session of one's own: true once, then false
SELECT sessmgr.revoke(:'phone_id', 'rita') AS revoked;
SELECT count(*) AS phone_still_valid FROM sessmgr.validate(:'phone_token');
SELECT sessmgr.revoke(:'phone_id', 'rita') AS revoked_again;
SELECT revoke_reason, revoked_at IS NOT NULL AS ended
  FROM sessmgr.sessions WHERE id = :'phone_id';

-- someone else's session and an unknown id give the same error, and the
-- other user's session is untouched
SELECT sqlstate_of(format('SELECT sessmgr.revoke(%L, %L)', :'oscar_id', 'rita')) AS others,
       sqlstate_of($$SELECT sessmgr.revoke('00000000-0000-4000-8000-000000000000', 'rita')$$)
         AS unknown,
       sqlstate_of($$SELECT sessmgr.revoke(NULL, 'rita')$$) AS null_id;
SELECT count(*) AS oscar_still_valid FROM sessmgr.validate(:'oscar_token');
-- an already-ended session of someone else still looks unknown
SELECT sessmgr.revoke(:'phone_id', 'oscar');

-- a reason is required and short
SELECT sqlstate_of(format('SELECT sessmgr.revoke(%L, %L, NULL)', :'laptop_id', 'rita'));
SELECT sqlstate_of(format('SELECT sessmgr.revoke(%L, %L, %L)', :'laptop_id', 'rita', ''));
SELECT sqlstate_of(format('SELECT sessmgr.revoke(%L, %L, %L)', :'laptop_id', 'rita',
                          repeat('r', 65)));
SELECT sqlstate_of($$SELECT sessmgr.revoke_all(NULL)$$);
SELECT sqlstate_of($$SELECT sessmgr.revoke_all('rita', reason => NULL)$$);

-- revoke_any (administrators) ends any session, with a reason
SELECT sessmgr.revoke_any(:'oscar_id', reason => 'admin: suspicious') AS admin_revoked;
SELECT revoke_reason FROM sessmgr.sessions WHERE id = :'oscar_id';

-- revoke all but the current session
SELECT sessmgr.revoke_all('rita', :'laptop_id') AS ended_others;
SELECT device, count(x.*) AS valid
  FROM rv LEFT JOIN LATERAL sessmgr.validate(rv.token) x ON true
 GROUP BY device ORDER BY device;
SELECT sessmgr.revoke_all('rita', :'laptop_id') AS nothing_left;
-- and then all
SELECT sessmgr.revoke_all('rita') AS ended_all;
SELECT count(*) AS rita_active FROM sessmgr.active_sessions WHERE user_id = 'rita';
-- a user nobody has heard of
SELECT sessmgr.revoke_all('nobody') AS none;

-- expired and idle sessions are already ended: revoke says false, revoke_all skips them
SELECT make_session('ivan', now() - interval '2 days', now() - interval '1 minute',
                    now() - interval '1 second') AS expired_token \gset
SELECT make_session('ivan', now() - interval '3 hours', now() - interval '2 hours',
                    now() + interval '1 day') AS idle_token \gset
SELECT sessmgr.revoke(s.id, 'ivan') AS revoked_expired
  FROM sessmgr.sessions s WHERE s.user_id = 'ivan' ORDER BY s.expires_at;
SELECT sessmgr.revoke_all('ivan') AS revoked_expired;

-- every ending wrote one event, with the reason and the calling role
SELECT e.event, e.reason, count(*), bool_and(e.actor = current_user) AS actor_is_caller
  FROM sessmgr.session_events e
 WHERE e.user_id IN ('rita', 'oscar') AND e.event <> 'issue'
 GROUP BY e.event, e.reason ORDER BY e.event, e.reason;
SELECT count(*) = count(DISTINCT session_id) AS at_most_one_ending_per_session
  FROM sessmgr.session_events WHERE event IN ('revoke', 'evict');

-- revocation is final, even for the table's owner
SELECT sqlstate_of(format('UPDATE sessmgr.sessions SET revoked_at = NULL, revoke_reason = NULL
                           WHERE id = %L', :'phone_id')) AS unrevoke;
UPDATE sessmgr.sessions SET revoke_reason = 'rewritten' WHERE id = :'phone_id';
UPDATE sessmgr.sessions SET last_active_at = now() WHERE id = :'phone_id';
UPDATE sessmgr.sessions SET last_active_at = now() WHERE user_id = 'ivan';
-- and a live session keeps its identity, owner and lifetimes
SELECT session_id AS live_id FROM sessmgr.issue('lena') \gset
UPDATE sessmgr.sessions SET user_id = 'mallory' WHERE id = :'live_id';
UPDATE sessmgr.sessions SET expires_at = expires_at + interval '1 year' WHERE id = :'live_id';
UPDATE sessmgr.sessions SET idle_timeout = '100 hours' WHERE id = :'live_id';
UPDATE sessmgr.sessions SET created_at = now() - interval '1 day' WHERE id = :'live_id';
UPDATE sessmgr.sessions SET id = gen_random_uuid() WHERE id = :'live_id';
UPDATE sessmgr.sessions SET remember = true WHERE id = :'live_id';
-- while activity and metadata may change
UPDATE sessmgr.sessions SET device_name = 'renamed', last_active_at = now()
 WHERE id = :'live_id';
-- a revocation needs a reason
SELECT sqlstate_of(format('UPDATE sessmgr.sessions SET revoked_at = now() WHERE id = %L',
                          :'live_id')) AS no_reason;
-- a direct UPDATE that ends a session is audited too
UPDATE sessmgr.sessions SET revoked_at = now(), revoke_reason = 'direct' WHERE id = :'live_id';
SELECT event, reason, actor = current_user AS actor_is_caller
  FROM sessmgr.session_events WHERE session_id = :'live_id' ORDER BY id;

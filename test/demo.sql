-- test/demo.sql: guided tour of sessmgr for user 'alice', run by test/demo.sh
-- (`make demo`) right after CREATE EXTENSION sessmgr on a throwaway cluster.
-- Tokens are secrets: only their first 16 characters are ever printed.
\set ON_ERROR_STOP 1
\pset border 2
\pset null '(null)'
\x off

\echo
\echo '=== 1. Allow at most 3 concurrent sessions per user (for this demo) ==='
SET sessmgr.max_sessions = 3;
SHOW sessmgr.max_sessions;

\echo
\echo '=== 2. alice signs in on three devices ==='
SELECT session_id AS laptop_id, token AS laptop_token, expires_at AS laptop_expires
  FROM sessmgr.issue(user_id => 'alice', device_name => 'laptop',
                     user_agent => 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                     ip => '192.0.2.10') \gset
SELECT session_id AS phone_id, token AS phone_token, expires_at AS phone_expires
  FROM sessmgr.issue(user_id => 'alice', device_name => 'phone',
                     user_agent => 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
                     ip => '198.51.100.7', remember => true) \gset
SELECT session_id AS tablet_id, token AS tablet_token, expires_at AS tablet_expires
  FROM sessmgr.issue(user_id => 'alice', device_name => 'tablet',
                     user_agent => 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0',
                     ip => '203.0.113.44',
                     client_hints => '{"sec-ch-ua": "\"Chromium\";v=\"120\", \"Microsoft Edge\";v=\"120\"", "sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"15.0.0\""}') \gset
SELECT device, session_id, left(token, 16) || '…' AS token, expires_at
  FROM (VALUES ('laptop', :'laptop_id'::uuid, :'laptop_token', :'laptop_expires'::timestamptz),
               ('phone',  :'phone_id'::uuid,  :'phone_token',  :'phone_expires'::timestamptz),
               ('tablet', :'tablet_id'::uuid, :'tablet_token', :'tablet_expires'::timestamptz))
       AS issued(device, session_id, token, expires_at);

\echo
\echo '=== 3. "Where am I signed in?" as seen from the laptop: devices and places ==='
\echo '    (derived at issuance from the user agent, client hints and the address)'
SELECT device_name, device, device_type, location, country_code, ip, is_current, is_remembered
  FROM sessmgr.list_sessions('alice', :'laptop_id')
 ORDER BY created_at;

\echo
\echo '=== 4. validate(): the laptop presents its token ==='
SELECT * FROM sessmgr.validate(:'laptop_token');

\echo
\echo '=== 5. authenticate() sets the identity for the rest of the transaction ==='
BEGIN;
SELECT sessmgr.authenticate(:'laptop_token') AS authenticated_as;
SELECT sessmgr.current_user_id(), sessmgr.current_session_id();
COMMIT;

\echo
\echo '=== 6. alice signs the phone out; its token no longer validates (0 rows) ==='
SELECT sessmgr.revoke(:'phone_id', 'alice') AS revoked;
SELECT * FROM sessmgr.validate(:'phone_token');

\echo
\echo '=== 7. "Sign out everywhere else": everything but the laptop is revoked ==='
SELECT sessmgr.revoke_all('alice', :'laptop_id') AS revoked_count;
SELECT id, device_name, location, is_current, created_at
  FROM sessmgr.list_sessions('alice', :'laptop_id')
 ORDER BY created_at;

\echo
\echo '=== 8. Four more sign-ins: the cap of 3 evicts the oldest sessions ==='
SELECT session_id AS s1_id, token AS s1_token
  FROM sessmgr.issue('alice', 'desktop', 'Firefox', '203.0.113.11', 'Berlin') \gset
SELECT session_id AS s2_id, token AS s2_token
  FROM sessmgr.issue('alice', 'work-laptop', 'Edge', '203.0.113.12', 'Potsdam') \gset
SELECT session_id AS s3_id, token AS s3_token
  FROM sessmgr.issue('alice', 'smart-tv', 'Tizen', '198.51.100.20', 'Berlin') \gset
SELECT session_id AS s4_id, token AS s4_token
  FROM sessmgr.issue('alice', 'kiosk', 'Chrome', '192.0.2.80', 'Hamburg') \gset
SELECT device, session_id, left(token, 16) || '…' AS token
  FROM (VALUES ('desktop',     :'s1_id'::uuid, :'s1_token'),
               ('work-laptop', :'s2_id'::uuid, :'s2_token'),
               ('smart-tv',    :'s3_id'::uuid, :'s3_token'),
               ('kiosk',       :'s4_id'::uuid, :'s4_token'))
       AS issued(device, session_id, token);
\echo 'alice''s sessions now: at most 3, the oldest were evicted'
SELECT id, device_name, user_agent, location, created_at
  FROM sessmgr.list_sessions('alice')
 ORDER BY created_at;
\echo 'The audit trail:'
SELECT event, reason, session_id FROM sessmgr.session_events ORDER BY id;

\echo
\echo '=== 9. Admin view: every active session ==='
SELECT user_id, device_name, ip, created_at FROM sessmgr.active_sessions ORDER BY created_at;

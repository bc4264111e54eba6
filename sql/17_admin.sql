--
-- The administrators' functions and API: session search with keyset
-- pagination, one user's sessions, audited revocation with the
-- administrator's identity, erasure (forget_user), access (export_user),
-- and cleanup's minimisation after sessmgr.pii_retention.
--
-- Users are named adm-*; rows other files left behind never match the
-- filters used here.  Nothing printed is a token, uuid or timestamp.
--
\set SHOW_CONTEXT never
LOAD 'sessmgr';
SET client_min_messages = warning;

-- SQLSTATE and message of a statement's error
CREATE FUNCTION adm_err(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE TABLE adm_tokens (k text PRIMARY KEY, session_id uuid, token text);

------------------------------------------------------------------------------
-- Session search: filters, keyset pages, estimated total
------------------------------------------------------------------------------
-- 25 live sessions of 5 users in the made-up countries XA/XB, devices
-- desktop/mobile; two of them risky; 3 more that ended (revoked)
INSERT INTO adm_tokens
SELECT 'search-' || i, s.session_id, s.token
  FROM generate_series(1, 28) i,
       LATERAL sessmgr.issue('adm-search-' || (i % 5), ip => ('192.0.2.' || i)::inet) s;
UPDATE sessmgr.sessions s
   SET country_code = CASE WHEN t.k::text ~ '[02468]$' THEN 'XA' ELSE 'XB' END,
       device_type = CASE WHEN right(t.k, 1) IN ('1', '2', '3') THEN 'mobile' ELSE 'desktop' END,
       risk = CASE WHEN t.k IN ('search-7', 'search-8') THEN '{new_country}'::text[]
                   WHEN t.k = 'search-9' THEN '{new_device,unusual_time}'::text[]
                   ELSE '{}' END
  FROM adm_tokens t WHERE t.session_id = s.id;
SELECT sessmgr.revoke_any(session_id, 'test') FROM adm_tokens
 WHERE k IN ('search-26', 'search-27', 'search-28');
ANALYZE sessmgr.sessions;

-- the whole picture, for comparison
SELECT count(*) FILTER (WHERE country_code = 'XA') AS xa,
       count(*) FILTER (WHERE country_code = 'XB') AS xb,
       count(*) FILTER (WHERE device_type = 'mobile') AS mobile,
       count(*) FILTER (WHERE cardinality(risk) > 0) AS risky,
       count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked
  FROM sessmgr.sessions WHERE user_id LIKE 'adm-search-%';

-- pages of 4 of the XA and XB sessions walk every live one exactly once,
-- latest expiry first, however many pages
CREATE FUNCTION adm_walk(country text, page_size int, st text DEFAULT 'active')
RETURNS TABLE (pages int, rows_seen int, distinct_ids int, ordered boolean, last_next jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    res jsonb;
    cur_at timestamptz;
    cur_id uuid;
    ids uuid[] := '{}';
    keys text[] := '{}';
BEGIN
    pages := 0;
    LOOP
        res := sessmgr.search_sessions(country_code => country, state => st,
                                       after_expires_at => cur_at, after_id => cur_id,
                                       max_rows => page_size);
        pages := pages + 1;
        ids := ids || ARRAY(SELECT (x ->> 'id')::uuid FROM jsonb_array_elements(res -> 'sessions') x);
        keys := keys || ARRAY(SELECT (x ->> 'expires_at') || ' ' || (x ->> 'id')
                                FROM jsonb_array_elements(res -> 'sessions') x);
        EXIT WHEN res -> 'next' = 'null'::jsonb OR pages > 50;
        cur_at := (res #>> '{next,after_expires_at}')::timestamptz;
        cur_id := (res #>> '{next,after_id}')::uuid;
    END LOOP;
    rows_seen := cardinality(ids);
    distinct_ids := (SELECT count(DISTINCT x) FROM unnest(ids) x);
    -- descending (expires_at, id), as the cursor says
    ordered := (SELECT coalesce(bool_and(a.k > b.k), true) FROM unnest(keys) WITH ORDINALITY a(k, n)
                  JOIN unnest(keys) WITH ORDINALITY b(k, n) ON b.n = a.n + 1);
    last_next := res -> 'next';
    RETURN NEXT;
END
$$;
SELECT 'XA' AS country, * FROM adm_walk('XA', 4);
SELECT 'XB' AS country, * FROM adm_walk('XB', 4);
SELECT 'XB ended' AS country, * FROM adm_walk('XB', 4, 'ended');
SELECT 'XA all, pages of 1' AS country, * FROM adm_walk('XA', 1, 'all');
-- a page holds what the filters say and nothing else
SELECT x ->> 'state' AS state, x ->> 'country_code' AS country_code, x ->> 'device_type' AS device_type,
       x -> 'risk' AS risk, x ? 'token_hash' AS has_token_hash, x ? 'user_agent' AS has_user_agent
  FROM jsonb_array_elements(sessmgr.search_sessions(country_code => 'XB', device_type => 'mobile',
                                                    max_rows => 100) -> 'sessions') x
 ORDER BY 1, 2, 3, 4::text;
SELECT jsonb_array_length(sessmgr.search_sessions(risk => 'any', country_code => 'XB', max_rows => 100) -> 'sessions') AS any_risk_xb,
       jsonb_array_length(sessmgr.search_sessions(risk => 'new_country', country_code => 'XA', max_rows => 100) -> 'sessions') AS new_country_xa,
       jsonb_array_length(sessmgr.search_sessions(risk => 'unusual_time', country_code => 'XB',
                                                  max_rows => 100) -> 'sessions') AS unusual_time_xb,
       jsonb_array_length(sessmgr.search_sessions(user_id => 'adm-search-3', max_rows => 100) -> 'sessions') AS user_3_live,
       jsonb_array_length(sessmgr.search_sessions(user_id => 'adm-search-3', state => 'all', max_rows => 100) -> 'sessions') AS user_3_all;
-- the estimate is the planner's: a number, for a filter too
SELECT jsonb_typeof(sessmgr.search_sessions() -> 'estimated_total') AS estimate_type,
       (sessmgr.search_sessions(country_code => 'XA') ->> 'estimated_total')::bigint >= 1 AS xa_estimate_positive,
       sessmgr.search_sessions(country_code => 'no such') -> 'sessions' AS none_found,
       sessmgr.search_sessions(country_code => 'no such') -> 'next' AS no_next;
-- filters are values, never SQL
SELECT jsonb_array_length(sessmgr.search_sessions(user_id => $$' OR true OR '$$) -> 'sessions') AS injection_user,
       jsonb_array_length(sessmgr.search_sessions(risk => $$x'] OR true --$$) -> 'sessions') AS injection_risk;
-- bad arguments
SELECT adm_err($$SELECT sessmgr.search_sessions(max_rows => 0)$$);
SELECT adm_err($$SELECT sessmgr.search_sessions(max_rows => 1001)$$);
SELECT adm_err($$SELECT sessmgr.search_sessions(max_rows => NULL)$$);
SELECT adm_err($$SELECT sessmgr.search_sessions(state => 'gone')$$);
SELECT adm_err($$SELECT sessmgr.search_sessions(after_id => gen_random_uuid())$$);
SELECT adm_err($$SELECT sessmgr.search_sessions(user_id => repeat('u', 257))$$);
SELECT adm_err($$SELECT sessmgr.search_sessions(country_code => repeat('c', 10 * 1024 * 1024))$$);

------------------------------------------------------------------------------
-- One user's sessions and events (the admin API's user_sessions)
------------------------------------------------------------------------------
SELECT jsonb_array_length(r -> 'sessions') AS sessions,
       (SELECT count(*) FROM jsonb_array_elements(r -> 'sessions') x WHERE (x ->> 'is_active')::boolean) AS active,
       (SELECT bool_and(x ->> 'user_id' = 'adm-search-3') FROM jsonb_array_elements(r -> 'sessions') x) AS only_theirs,
       (SELECT bool_or(x ? 'token_hash' OR x ? 'prev_token_hash') FROM jsonb_array_elements(r -> 'sessions') x) AS hashes,
       jsonb_array_length(r -> 'events') AS events,
       (SELECT bool_and(x ->> 'user_id' = 'adm-search-3') FROM jsonb_array_elements(r -> 'events') x) AS events_only_theirs
  FROM sessmgr_admin_api.user_sessions('adm-search-3') r;
SELECT jsonb_array_length(sessmgr_admin_api.user_sessions('adm-search-3', 2) -> 'events') AS two_events,
       sessmgr_admin_api.user_sessions('adm-nobody') AS nobody;
SELECT adm_err($$SELECT sessmgr_admin_api.user_sessions(NULL)$$);
SELECT adm_err($$SELECT sessmgr_admin_api.user_sessions('adm-search-3', -1)$$);
SELECT adm_err($$SELECT sessmgr_admin_api.user_sessions('adm-search-3', NULL)$$);

------------------------------------------------------------------------------
-- Audited administration: the request role as actor, the JWT's sub as
-- actor_user_id, the reason as given
------------------------------------------------------------------------------
-- without PostgREST claims: the login role, no administrator id
SELECT sessmgr_admin_api.revoke_session(session_id, 'suspected theft') FROM adm_tokens WHERE k = 'search-1';
SELECT event, reason, actor = current_user AS actor_is_me, actor_user_id
  FROM sessmgr.session_events
 WHERE session_id = (SELECT session_id FROM adm_tokens WHERE k = 'search-1') AND event = 'revoke';
-- as PostgREST calls it: request.jwt.claims carry the administrator's sub
BEGIN;
SELECT set_config('request.jwt.claims', '{"role": "session_admin", "sub": "admin-ada"}', true);
SELECT sessmgr_admin_api.revoke_session(session_id, 'ticket 4711') FROM adm_tokens WHERE k = 'search-2';
SELECT sessmgr_admin_api.revoke_session(session_id, 'again') FROM adm_tokens WHERE k = 'search-2';
SELECT sessmgr_admin_api.revoke_user_sessions('adm-search-4', 'account closed');
COMMIT;
SELECT event, reason, actor_user_id, count(*)
  FROM sessmgr.session_events
 WHERE event = 'revoke'
   AND (session_id = (SELECT session_id FROM adm_tokens WHERE k = 'search-2')
        OR user_id = 'adm-search-4')
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
-- the administrator's id does not outlive the transaction
SELECT sessmgr.revoke_any(session_id, 'later') FROM adm_tokens WHERE k = 'search-5';
SELECT reason, actor_user_id FROM sessmgr.session_events
 WHERE session_id = (SELECT session_id FROM adm_tokens WHERE k = 'search-5') AND event = 'revoke';
-- nor a subtransaction that failed
BEGIN;
SAVEPOINT a;
SELECT set_config('request.jwt.claims', '{"sub": "admin-bob"}', true);
SELECT sessmgr_admin_api.revoke_session(NULL, NULL);
ROLLBACK TO SAVEPOINT a;
SELECT sessmgr.revoke_any(session_id, 'after savepoint') FROM adm_tokens WHERE k = 'search-6';
COMMIT;
SELECT reason, actor_user_id FROM sessmgr.session_events
 WHERE session_id = (SELECT session_id FROM adm_tokens WHERE k = 'search-6') AND event = 'revoke';
-- an administrator id longer than a user id is cut to 256 bytes
BEGIN;
SELECT sessmgr.set_admin_actor(repeat('a', 300));
SELECT sessmgr.revoke_any(session_id, 'long admin') FROM adm_tokens WHERE k = 'search-10';
COMMIT;
SELECT octet_length(actor_user_id) FROM sessmgr.session_events
 WHERE session_id = (SELECT session_id FROM adm_tokens WHERE k = 'search-10') AND event = 'revoke';
-- reasons are required; reserved reasons stay reserved; an unknown session is an error
SELECT adm_err($$SELECT sessmgr_admin_api.revoke_session(gen_random_uuid(), NULL)$$);
SELECT adm_err($$SELECT sessmgr_admin_api.revoke_session(gen_random_uuid(), 'erased')$$);
SELECT adm_err($$SELECT sessmgr_admin_api.revoke_session(gen_random_uuid(), 'no such session')$$) AS unknown;
SELECT adm_err($$SELECT sessmgr_admin_api.revoke_user_sessions('adm-search-0', NULL)$$);
SELECT adm_err($$SELECT sessmgr_admin_api.revoke_user_sessions(NULL, 'why')$$);
SELECT adm_err($$SELECT sessmgr_admin_api.unlock_account('adm-search-0', NULL)$$);
SELECT adm_err($$SELECT sessmgr_admin_api.unlock_account('adm-search-0', repeat('r', 65))$$);
SELECT adm_err($$SELECT sessmgr_admin_api.forget_user('adm-search-0', NULL)$$);

-- stats() as JSON
SELECT jsonb_typeof(sessmgr_admin_api.stats()) AS stats, sessmgr_admin_api.stats() ? 'active_sessions' AS has_active;

------------------------------------------------------------------------------
-- Right of access: export_user
------------------------------------------------------------------------------
INSERT INTO adm_tokens
SELECT 'alice-' || i, s.session_id, s.token
  FROM generate_series(1, 3) i,
       LATERAL sessmgr.issue('adm-alice', device_name => 'Alice''s laptop ' || i,
                             user_agent => 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                             ip => '203.0.113.77', metadata => '{"plan": "pro"}') s;
INSERT INTO adm_tokens
SELECT 'bob-' || i, s.session_id, s.token
  FROM generate_series(1, 2) i, LATERAL sessmgr.issue('adm-bob', ip => '198.51.100.9', device_name => 'bob ' || i) s;
-- a refresh leaves a retired token behind
UPDATE adm_tokens t SET token = r.token
  FROM sessmgr.refresh((SELECT token FROM adm_tokens WHERE k = 'alice-1')) r
 WHERE t.k = 'alice-1' AND r.status = 'ok';
UPDATE adm_tokens t SET token = r.token
  FROM sessmgr.refresh((SELECT token FROM adm_tokens WHERE k = 'alice-1')) r
 WHERE t.k = 'alice-1' AND r.status = 'ok';
SELECT sessmgr.revoke(session_id, 'adm-alice') FROM adm_tokens WHERE k = 'alice-3';
-- two failed logins: the account's counter, the account-and-network pair's, the network's
SELECT sessmgr.login_failed('adm-alice', '198.18.7.77') > '0' AS delayed FROM generate_series(1, 2);
-- the analytics' per-user rows, as a roll-up of earlier days would have left them
INSERT INTO sessmgr.analytics_user_days VALUES ('adm-alice', '2026-01-02'), ('adm-bob', '2026-01-02');
INSERT INTO sessmgr.analytics_user_places VALUES ('XU', 'adm-alice', '2026-01-02 10:00+00'), ('XU', 'adm-bob', '2026-01-02 10:00+00');
INSERT INTO sessmgr.analytics_user_devices VALUES ('Chrome', 'Linux', 'desktop', 'adm-alice', '2026-01-02 10:00+00');

SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(x) k) AS sections,
       x ->> 'user_id' AS user_id,
       jsonb_array_length(x -> 'sessions') AS sessions,
       jsonb_array_length(x -> 'events') AS events,
       x -> 'account' ->> 'sessions_issued' AS issued,
       x::text LIKE '%token_hash%' OR x::text LIKE '%token_gen%' OR x::text LIKE '%device_key%' AS token_material,
       jsonb_array_length(x -> 'login_attempts') AS login_counters,
       jsonb_array_length(x -> 'known_devices') AS known_devices,
       x::text LIKE '%adm-bob%' OR x::text LIKE '%198.51.100.9%' AS bobs_data,
       (SELECT array_agg(DISTINCT e ->> 'event' ORDER BY e ->> 'event') FROM jsonb_array_elements(x -> 'events') e) AS event_kinds,
       x #>> '{sessions,0,device_name}' AS device_name,
       x #>> '{sessions,0,ip}' AS ip,
       x #> '{sessions,0,metadata}' AS metadata
  FROM sessmgr.export_user('adm-alice') x;
SELECT sessmgr.export_user('adm-alice') -> 'analytics' AS analytics;
SELECT sessmgr.export_user('adm-nobody') - 'exported_at' AS nobody;
SELECT sessmgr_admin_api.export_user('adm-alice') - 'exported_at' = sessmgr.export_user('adm-alice') - 'exported_at'
       AS api_same;
SELECT adm_err($$SELECT sessmgr.export_user(NULL)$$);
SELECT adm_err($$SELECT sessmgr.export_user('')$$);
SELECT adm_err($$SELECT sessmgr.export_user(repeat('x', 10 * 1024 * 1024))$$);

------------------------------------------------------------------------------
-- Right to erasure: forget_user
------------------------------------------------------------------------------
CREATE TABLE adm_before AS
SELECT (SELECT count(*) FROM sessmgr.sessions WHERE user_id = 'adm-bob') AS bob_sessions,
       (SELECT count(*) FROM sessmgr.session_events WHERE user_id = 'adm-bob') AS bob_events,
       (SELECT count(*) FROM sessmgr.retired_tokens t JOIN sessmgr.sessions s ON s.id = t.session_id
         WHERE s.user_id = 'adm-alice') AS alice_retired,
       (SELECT count(*) FROM sessmgr.sessions WHERE user_id = 'adm-alice') AS alice_sessions,
       (SELECT count(*) FROM sessmgr.session_events WHERE user_id = 'adm-alice') AS alice_events;
SELECT * FROM adm_before;
SELECT max(id) AS adm_last_event FROM sessmgr.session_events \gset
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "admin-ada"}', true);
SELECT sessmgr_admin_api.forget_user('adm-alice', 'GDPR request 17') AS rows_removed;
COMMIT;
-- nothing about alice is left: no session, event, owner row, token
SELECT (SELECT count(*) FROM sessmgr.sessions WHERE user_id = 'adm-alice') AS sessions,
       (SELECT count(*) FROM sessmgr.session_events WHERE user_id = 'adm-alice'
           OR actor_user_id = 'adm-alice' OR details::text LIKE '%adm-alice%') AS events,
       (SELECT count(*) FROM sessmgr.session_owners WHERE user_id = 'adm-alice') AS owners,
       (SELECT count(*) FROM sessmgr.retired_tokens t
         WHERE t.session_id IN (SELECT session_id FROM adm_tokens WHERE k LIKE 'alice-%')) AS retired_tokens,
       (SELECT count(*) FROM sessmgr.analytics_user_days WHERE user_id = 'adm-alice')
       + (SELECT count(*) FROM sessmgr.analytics_user_places WHERE user_id = 'adm-alice')
       + (SELECT count(*) FROM sessmgr.analytics_user_devices WHERE user_id = 'adm-alice') AS analytics_rows,
       (SELECT count(*) FROM sessmgr.analytics_user_days WHERE user_id = 'adm-bob')
       + (SELECT count(*) FROM sessmgr.analytics_user_places WHERE user_id = 'adm-bob') AS bobs_analytics_rows;
-- the network's own counter (across accounts) is not about her and stays
SELECT count(*) AS login_counters_left, min(failures) AS network_failures
  FROM sessmgr.login_attempts WHERE network = '198.18.7.77/32' OR user_id = 'adm-alice';
-- her tokens no longer work
SELECT count(*) AS valid_tokens FROM adm_tokens t, LATERAL sessmgr.validate(t.token) v WHERE t.k LIKE 'alice-%';
-- one erased event, naming nobody: the administrator, the reason, the counts
SELECT event, user_id = '' AS no_user, session_id IS NULL AS no_session, reason,
       actor = current_user AS actor_is_me, actor_user_id, ip IS NULL AS no_ip,
       details
  FROM sessmgr.session_events WHERE event = 'erased' AND reason = 'GDPR request 17';
-- bob is untouched
SELECT (SELECT count(*) FROM sessmgr.sessions WHERE user_id = 'adm-bob') = b.bob_sessions AS bob_sessions_kept,
       (SELECT count(*) FROM sessmgr.session_events WHERE user_id = 'adm-bob') = b.bob_events AS bob_events_kept,
       (SELECT count(*) FROM adm_tokens t, LATERAL sessmgr.validate(t.token) v WHERE t.k LIKE 'bob-%') AS bob_valid
  FROM adm_before b;
-- forgetting again, or somebody unknown, removes nothing but still leaves its trace
SELECT sessmgr.forget_user('adm-alice') AS again, sessmgr.forget_user('adm-nobody') AS nobody;
SELECT event, user_id, reason, details FROM sessmgr.session_events
 WHERE id > :adm_last_event AND event = 'erased' ORDER BY id;
-- a user who forgets themselves through an application is not named by the trace either
INSERT INTO adm_tokens SELECT 'carol', s.session_id, s.token FROM sessmgr.issue('adm-carol') s;
BEGIN;
SELECT sessmgr.authenticate(token) IS NOT NULL AS authenticated FROM adm_tokens WHERE k = 'carol';
SELECT sessmgr.forget_user('adm-carol', 'self-service') > 0 AS removed;
COMMIT;
SELECT user_id, actor_user_id, reason FROM sessmgr.session_events
 WHERE event = 'erased' AND reason = 'self-service';
SELECT adm_err($$SELECT sessmgr.forget_user(NULL)$$);
SELECT adm_err($$SELECT sessmgr.forget_user('')$$);
SELECT adm_err($$SELECT sessmgr.forget_user(repeat('x', 257))$$);
SELECT adm_err($$SELECT sessmgr.forget_user('adm-bob', repeat('r', 65))$$);
SELECT (SELECT count(*) FROM sessmgr.sessions WHERE user_id = 'adm-bob') AS bob_still_there;

------------------------------------------------------------------------------
-- Minimisation after sessmgr.pii_retention
------------------------------------------------------------------------------
SHOW sessmgr.pii_retention;
-- sessions are kept longer than pii_retention here, so that cleanup
-- minimises ended sessions too (by default it deletes them first)
SET sessmgr.retention = '60d';
INSERT INTO adm_tokens
SELECT 'pii-' || v.k, s.session_id, s.token
  FROM (VALUES ('v4-old', '203.0.113.77'::inet), ('v6-old', '2001:db8:1234:5678::1'),
               ('v4-new', '192.0.2.200'), ('live', '198.51.100.200'), ('none-old', NULL)) v(k, ip),
       LATERAL sessmgr.issue('adm-pii', device_name => 'Dana''s phone',
                             user_agent => 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                             ip => v.ip, location => 'Springfield, Utopia',
                             client_hints => '{"sec-ch-ua-mobile": "?0"}') s;
-- a place, as a GeoIP database would have given it
UPDATE sessmgr.sessions s
   SET country_code = 'XU', country = 'Utopia', region = 'North', city = 'Springfield',
       latitude = 12.5, longitude = -7.25, accuracy_radius_km = 20, asn = 64500
  FROM adm_tokens t WHERE t.k LIKE 'pii-%' AND t.session_id = s.id;
UPDATE sessmgr.session_events e
   SET country_code = 'XU', country = 'Utopia', region = 'North', city = 'Springfield',
       latitude = 12.5, longitude = -7.25, accuracy_radius_km = 20, asn = 64500
  FROM adm_tokens t WHERE t.k LIKE 'pii-%' AND t.session_id = e.session_id;
SELECT sessmgr.revoke(session_id, 'adm-pii') FROM adm_tokens WHERE k IN ('pii-v4-old', 'pii-v6-old', 'pii-v4-new', 'pii-none-old');
-- a suspicious_login event with a previous place in its details, and an account event
INSERT INTO sessmgr.session_events (event, session_id, user_id, actor, ip, user_agent, details)
SELECT 'suspicious_login', session_id, 'adm-pii', current_user, '203.0.113.77', 'curl/8.0',
       '{"reasons": ["impossible_travel"], "city": "Springfield", "country_code": "XU", "time_zone": "Etc/UTC",
         "previous": {"at": "x", "country_code": "XV", "city": "Shelbyville", "latitude": 1.5, "longitude": 2.5, "accuracy_radius_km": 5},
         "speed_kmh": 5000}'
  FROM adm_tokens WHERE k = 'pii-v4-old';
-- ended and old: v4-old, v6-old, none-old 40 days ago; v4-new 10 days ago
-- (ended sessions are final: the ages are written with the triggers off)
SET session_replication_role = replica;
UPDATE sessmgr.sessions s
   SET created_at = now() - interval '41 days', authenticated_at = now() - interval '41 days',
       last_active_at = now() - interval '40 days', revoked_at = now() - interval '40 days',
       expires_at = now() - interval '40 days'
  FROM adm_tokens t WHERE t.k IN ('pii-v4-old', 'pii-v6-old', 'pii-none-old') AND t.session_id = s.id;
UPDATE sessmgr.sessions s
   SET created_at = now() - interval '11 days', authenticated_at = now() - interval '11 days',
       last_active_at = now() - interval '10 days', revoked_at = now() - interval '10 days',
       expires_at = now() - interval '10 days'
  FROM adm_tokens t WHERE t.k = 'pii-v4-new' AND t.session_id = s.id;
UPDATE sessmgr.session_events e
   SET occurred_at = occurred_at - CASE WHEN t.k = 'pii-v4-new' THEN interval '10 days'
                                        ELSE interval '40 days' END
  FROM adm_tokens t WHERE t.k LIKE 'pii-%' AND t.k <> 'pii-live' AND t.session_id = e.session_id;
RESET session_replication_role;
-- runs of the files before this one have already minimised up to 30 days ago;
-- these events were made old after that, so start over
DELETE FROM sessmgr.privacy_progress;

CALL sessmgr.cleanup();
CREATE VIEW adm_pii_sessions AS
SELECT t.k, s.ip, s.user_agent, s.device, s.location, s.country_code, s.country, s.region, s.city,
       s.latitude, s.longitude, s.accuracy_radius_km, s.asn, s.client_hints, s.device_name, s.metadata
  FROM adm_tokens t JOIN sessmgr.sessions s ON s.id = t.session_id
 WHERE t.k LIKE 'pii-%';
SELECT * FROM adm_pii_sessions ORDER BY k;
CREATE VIEW adm_pii_events AS
SELECT t.k, e.event, e.ip, e.user_agent, e.device, e.country_code, e.country, e.region, e.city,
       e.latitude, e.longitude, e.accuracy_radius_km, e.asn,
       CASE WHEN e.event = 'suspicious_login' THEN e.details END AS details
  FROM adm_tokens t JOIN sessmgr.session_events e ON e.session_id = t.session_id
 WHERE t.k LIKE 'pii-%';
SELECT * FROM adm_pii_events ORDER BY k, event;
SELECT k, details FROM adm_pii_events WHERE event = 'suspicious_login';
-- (pii_retention is exact seconds: 30 days = 720 hours, DST or not)
SELECT events_done_at <= now() - interval '720 hours' AS watermark_at_cutoff,
       events_done_at > now() - interval '721 hours' AS watermark_recent
  FROM sessmgr.privacy_progress;
-- a second run changes nothing: not a value, not a row version
CREATE TABLE adm_snapshot AS
SELECT s.id, s.xmin::text AS x, s::text AS row FROM sessmgr.sessions s WHERE s.user_id = 'adm-pii'
UNION ALL
SELECT NULL, e.xmin::text, e::text FROM sessmgr.session_events e WHERE e.user_id = 'adm-pii';
DELETE FROM sessmgr.privacy_progress;
CALL sessmgr.cleanup();
SELECT count(*) AS rows_changed_by_second_run FROM (
    SELECT s.xmin::text AS x, s::text AS row FROM sessmgr.sessions s WHERE s.user_id = 'adm-pii'
    UNION ALL
    SELECT e.xmin::text, e::text FROM sessmgr.session_events e WHERE e.user_id = 'adm-pii'
    EXCEPT
    SELECT x, row FROM adm_snapshot) d;
-- the analytics' columns stayed: country, browser, OS, device type
SELECT count(*) FILTER (WHERE country_code = 'XU') AS with_country,
       count(*) FILTER (WHERE browser IS NOT NULL) AS with_browser,
       count(*) AS issue_events
  FROM sessmgr.session_events WHERE user_id = 'adm-pii' AND event = 'issue';
-- ended sessions are still final for everything else
SELECT adm_err(format($$UPDATE sessmgr.sessions SET city = 'x' WHERE id = %L$$,
                      (SELECT session_id FROM adm_tokens WHERE k = 'pii-v4-new')));
-- sessmgr.retention at 1 day: the ended sessions go whole; pii_retention 0:
-- every event is minimised at once, but a live session's own row is not
SET sessmgr.pii_retention = '0';
SET sessmgr.retention = '1d';
CALL sessmgr.cleanup();
SELECT k, ip, city, device_name FROM adm_pii_sessions ORDER BY k;
SELECT k, event, ip, city FROM adm_pii_events WHERE k = 'pii-live' ORDER BY k;
RESET sessmgr.retention;
RESET sessmgr.pii_retention;
-- the setting is the superuser's
CREATE ROLE sessmgr_regress_adm_app;
SET ROLE sessmgr_regress_adm_app;
SELECT adm_err($$SET sessmgr.pii_retention = '365d'$$);
RESET ROLE;

------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; the documented grant block for the
-- administrators' role; a user's role gets nothing of it
------------------------------------------------------------------------------
SELECT p.oid::regprocedure AS fn
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'sessmgr_admin_api'
   AND (has_function_privilege('public', p.oid, 'EXECUTE')
        OR NOT p.prosecdef
        OR NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false));
SELECT has_schema_privilege('public', 'sessmgr_admin_api', 'USAGE') AS public_usage,
       has_function_privilege('public', 'sessmgr.forget_user(text, text)', 'EXECUTE') AS public_forget,
       has_function_privilege('public', 'sessmgr.set_admin_actor(text)', 'EXECUTE') AS public_set_admin;
CREATE ROLE sessmgr_regress_session_admin NOLOGIN;
GRANT USAGE ON SCHEMA sessmgr_admin_api TO sessmgr_regress_session_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sessmgr_admin_api TO sessmgr_regress_session_admin;
GRANT USAGE ON SCHEMA sessmgr_admin_api TO sessmgr_regress_adm_app;
GRANT SELECT ON adm_tokens TO sessmgr_regress_session_admin, sessmgr_regress_adm_app;
GRANT EXECUTE ON FUNCTION adm_err(text) TO sessmgr_regress_session_admin, sessmgr_regress_adm_app;
SET ROLE sessmgr_regress_session_admin;
SELECT jsonb_array_length(sessmgr_admin_api.sessions(country_code => 'XA') -> 'sessions') > 0 AS admin_searches;
SELECT sessmgr_admin_api.revoke_session(session_id, 'by the admin role') FROM adm_tokens WHERE k = 'search-11';
SELECT adm_err($$SELECT * FROM sessmgr.sessions$$) AS admin_table;
SELECT adm_err($$SELECT sessmgr.forget_user('adm-bob')$$) AS admin_core_function;
SELECT adm_err($$SELECT sessmgr.set_admin_actor('me')$$) AS admin_set_actor;
RESET ROLE;
SELECT actor, reason FROM sessmgr.session_events
 WHERE session_id = (SELECT session_id FROM adm_tokens WHERE k = 'search-11') AND event = 'revoke';
SET ROLE sessmgr_regress_adm_app;
SELECT adm_err($$SELECT sessmgr_admin_api.sessions()$$) AS app_sessions;
SELECT adm_err($$SELECT sessmgr_admin_api.forget_user('adm-bob', 'x')$$) AS app_forget;
SELECT adm_err($$SELECT sessmgr_admin_api.export_user('adm-bob')$$) AS app_export;
RESET ROLE;
REVOKE ALL ON SCHEMA sessmgr_admin_api FROM sessmgr_regress_session_admin, sessmgr_regress_adm_app;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA sessmgr_admin_api FROM sessmgr_regress_session_admin;
DROP OWNED BY sessmgr_regress_session_admin, sessmgr_regress_adm_app;
DROP ROLE sessmgr_regress_session_admin;
DROP ROLE sessmgr_regress_adm_app;

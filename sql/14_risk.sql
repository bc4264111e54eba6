--
-- Suspicious logins (src/risk.c, docs/protecting-accounts.md): the reasons
-- issue() records on a session, which of them make a login suspicious (a
-- suspicious_login event), the policies, confirm_session and the listings.
-- Places come from a CDN's location headers (CloudFront's, which carry the
-- AS number too); test/t/063_risk.pl covers the GeoIP databases, accuracy
-- radii, time zones, NOTIFY and the device cookie.
--
\set SHOW_CONTEXT never
CREATE FUNCTION risk_err(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

SET sessmgr.trusted_proxies = 1;
SET sessmgr.location_headers = 'cloudfront';

-- A login of uid with a user agent from a place (NULL country: no place),
-- optionally with a device cookie; returns the session's id.
CREATE FUNCTION risk_login(uid text, ua text, country text, lat float8, lon float8,
                           asn bigint, cookie text DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    sid uuid;
BEGIN
    PERFORM set_config('request.headers',
        CASE WHEN country IS NULL THEN '{}' ELSE
        json_build_object('cloudfront-viewer-country', country,
                          'cloudfront-viewer-latitude', lat::text,
                          'cloudfront-viewer-longitude', lon::text,
                          'cloudfront-viewer-asn', asn::text)::text END, false);
    SELECT session_id INTO sid FROM sessmgr.issue(uid, user_agent => ua, device_cookie => cookie);
    PERFORM set_config('request.headers', '', false);
    RETURN sid;
END
$$;

-- what a session shows: its risk and level, and whether a suspicious_login event names it
CREATE FUNCTION risk_of(sid uuid, OUT risk text[], OUT aal smallint, OUT flagged boolean)
LANGUAGE sql AS $$
    SELECT s.risk, s.aal,
           EXISTS (SELECT FROM sessmgr.session_events e
                    WHERE e.session_id = s.id AND e.event = 'suspicious_login')
      FROM sessmgr.sessions s WHERE s.id = sid
$$;

\set chrome 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'
\set firefox 'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0'
\set iphone 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1'

-- Paris and Marseille (660 km apart), both in France, on AS 3215; Lyon on AS 12322
SELECT risk_login('risk_alice', :'chrome', 'FR', 48.8566, 2.3522, 3215) AS first \gset
-- 1. a user's first login is never suspicious, and teaches the profile
SELECT * FROM risk_of(:'first');
SELECT logins, countries, networks, cardinality(login_minutes) AS minutes,
       last_country_code, last_latitude IS NOT NULL AS has_place
  FROM sessmgr.login_profiles WHERE user_id = 'risk_alice';
SELECT kind, label, trusted, last_session_id = :'first' AS this_session
  FROM sessmgr.known_devices WHERE user_id = 'risk_alice';

-- 2. the same device from the same place: nothing
SELECT * FROM risk_of(risk_login('risk_alice', :'chrome', 'FR', 48.8566, 2.3522, 3215));

-- 3. a new device alone is recorded, not suspicious
SELECT * FROM risk_of(risk_login('risk_alice', :'firefox', 'FR', 48.8566, 2.3522, 3215));
-- and it is known from then on
SELECT * FROM risk_of(risk_login('risk_alice', :'firefox', 'FR', 48.8566, 2.3522, 3215));

-- 4. a new network alone (same city, another provider): recorded, not suspicious
SELECT * FROM risk_of(risk_login('risk_alice', :'chrome', 'FR', 48.8566, 2.3522, 12322));

-- 5. a new device on a new network: suspicious
SELECT risk_login('risk_alice', :'iphone', 'FR', 48.8566, 2.3522, 64500) AS dev_net \gset
SELECT * FROM risk_of(:'dev_net');
-- a suspicious login teaches nothing: the device and network are still new
SELECT * FROM risk_of(risk_login('risk_alice', :'iphone', 'FR', 48.8566, 2.3522, 64500));

-- 6. a new country (no coordinates, so no travel to judge): suspicious
SELECT risk_login('risk_alice', :'chrome', 'BE', NULL, NULL, 3215) AS belgium \gset
SELECT * FROM risk_of(:'belgium');
SELECT details -> 'reasons' AS reasons, details ->> 'country_code' AS country,
       details -> 'previous' ->> 'country_code' AS previous_country,
       details ->> 'policy' AS policy, details ->> 'device' AS device
  FROM sessmgr.session_events WHERE session_id = :'belgium' AND event = 'suspicious_login';

-- 7. impossible travel: Paris, then Marseille 10 minutes later (no accuracy
-- radii from a CDN: 50 km each are subtracted); 2 hours later is plausible
SELECT risk_login('risk_alice', :'chrome', 'FR', 48.8566, 2.3522, 3215) IS NOT NULL AS in_paris;
UPDATE sessmgr.login_profiles SET last_login_at = now() - interval '10 minutes'
 WHERE user_id = 'risk_alice';
SELECT risk_login('risk_alice', :'chrome', 'FR', 43.2965, 5.3698, 3215) AS travel \gset
SELECT * FROM risk_of(:'travel');
SELECT (details ->> 'distance_km')::float8 BETWEEN 555 AND 565 AS distance_after_radii,
       (details ->> 'speed_kmh')::float8 > 900 AS too_fast,
       details -> 'previous' ->> 'latitude' AS previous_latitude
  FROM sessmgr.session_events WHERE session_id = :'travel' AND event = 'suspicious_login';
SELECT risk_login('risk_alice', :'chrome', 'FR', 48.8566, 2.3522, 3215) IS NOT NULL AS back_in_paris;
UPDATE sessmgr.login_profiles SET last_login_at = now() - interval '2 hours'
 WHERE user_id = 'risk_alice';
SELECT * FROM risk_of(risk_login('risk_alice', :'chrome', 'FR', 43.2965, 5.3698, 3215));
-- a faster plane than the default 900 km/h makes 10 minutes plausible
SET sessmgr.max_travel_speed = 5000;
UPDATE sessmgr.login_profiles SET last_login_at = now() - interval '10 minutes'
 WHERE user_id = 'risk_alice';
SELECT * FROM risk_of(risk_login('risk_alice', :'chrome', 'FR', 48.8566, 2.3522, 3215));
RESET sessmgr.max_travel_speed;

-- 8. an unknown place is ignored: no travel is judged to or from it
UPDATE sessmgr.login_profiles SET last_login_at = now() - interval '1 minute'
 WHERE user_id = 'risk_alice';
SELECT * FROM risk_of(risk_login('risk_alice', :'chrome', NULL, NULL, NULL, NULL));
SELECT last_latitude IS NULL AS no_previous_place FROM sessmgr.login_profiles WHERE user_id = 'risk_alice';
SELECT * FROM risk_of(risk_login('risk_alice', :'chrome', 'FR', 43.2965, 5.3698, 3215));

-- 9. unusual time: only once the user has 10 logins; risk_alice has more, and
-- her remembered login times (UTC here: a CDN gives no time zone) are set
-- 12 hours from now
SELECT logins >= 10 AS ten_logins FROM sessmgr.login_profiles WHERE user_id = 'risk_alice';
UPDATE sessmgr.login_profiles
   SET login_minutes = array_fill(((extract(hour FROM now() AT TIME ZONE 'UTC')::int + 12) % 24 * 60)::smallint, ARRAY[30])
 WHERE user_id = 'risk_alice';
SELECT risk_login('risk_alice', :'chrome', 'FR', 43.2965, 5.3698, 3215) AS odd_hour \gset
-- recorded, never suspicious on its own
SELECT * FROM risk_of(:'odd_hour');
-- within three hours of one earlier login is usual
UPDATE sessmgr.login_profiles
   SET login_minutes = login_minutes[1:9] || ((extract(hour FROM now() AT TIME ZONE 'UTC')::int + 2) % 24 * 60)::smallint
 WHERE user_id = 'risk_alice';
SELECT * FROM risk_of(risk_login('risk_alice', :'chrome', 'FR', 43.2965, 5.3698, 3215));
-- risk_bob has 3 logins: his times are not judged yet
SELECT count(risk_login('risk_bob', :'chrome', 'FR', 48.8566, 2.3522, 3215)) FROM generate_series(1, 3);
UPDATE sessmgr.login_profiles
   SET login_minutes = array_fill(((extract(hour FROM now() AT TIME ZONE 'UTC')::int + 12) % 24 * 60)::smallint, ARRAY[3])
 WHERE user_id = 'risk_bob';
SELECT * FROM risk_of(risk_login('risk_bob', :'chrome', 'FR', 48.8566, 2.3522, 3215));

-- 10. the device cookie: a returning browser is recognised by it, a new one is new
SELECT * FROM risk_of(risk_login('risk_carol', :'chrome', 'FR', 48.8566, 2.3522, 3215, repeat('a', 64)));
SELECT * FROM risk_of(risk_login('risk_carol', :'chrome', 'FR', 48.8566, 2.3522, 3215, repeat('a', 64)));
SELECT * FROM risk_of(risk_login('risk_carol', :'chrome', 'FR', 48.8566, 2.3522, 3215, repeat('b', 64)));
-- only its hash is kept
SELECT kind, device_key = sha256(convert_to(E'cookie\n' || repeat('a', 64), 'UTF8')) AS hashed
  FROM sessmgr.known_devices WHERE user_id = 'risk_carol' ORDER BY first_seen_at LIMIT 1;
SELECT count(*) AS raw_cookie_stored FROM sessmgr.known_devices
 WHERE user_id = 'risk_carol' AND position(convert_to(repeat('a', 64), 'UTF8') IN device_key) > 0;
SELECT risk_err($$SELECT sessmgr.issue('risk_carol', device_cookie => repeat('x', 129))$$);

-- after_failures: the account's recent failed attempts (throttling's count,
-- sessmgr.login_failed; from ten addresses, so that no pair is delayed)
SELECT * FROM risk_of(risk_login('risk_frank', :'chrome', 'FR', 48.8566, 2.3522, 3215));
SELECT count(sessmgr.login_failed('risk_frank', ('192.0.2.' || i)::inet)) FROM generate_series(1, 9) i;
SELECT * FROM risk_of(risk_login('risk_frank', :'chrome', 'FR', 48.8566, 2.3522, 3215));
SELECT count(sessmgr.login_failed('risk_frank', ('192.0.2.' || i)::inet)) FROM generate_series(1, 10) i;
SELECT risk_login('risk_frank', :'chrome', 'FR', 48.8566, 2.3522, 3215) AS failed_before \gset
SELECT * FROM risk_of(:'failed_before');
SELECT details ->> 'failures' AS failures FROM sessmgr.session_events
 WHERE session_id = :'failed_before' AND event = 'suspicious_login';
-- a successful login reset the count
SELECT * FROM risk_of(risk_login('risk_frank', :'chrome', 'FR', 48.8566, 2.3522, 3215));
-- 0 turns the check off
SET sessmgr.suspicious_after_failures = 0;
SELECT count(sessmgr.login_failed('risk_frank', ('192.0.2.' || i)::inet)) FROM generate_series(1, 10) i;
SELECT * FROM risk_of(risk_login('risk_frank', :'chrome', 'FR', 48.8566, 2.3522, 3215));
RESET sessmgr.suspicious_after_failures;

-- 11. confirm_session ("this was me") clears the risk and remembers the
-- device, country and network
SELECT sessmgr.confirm_session(:'dev_net', 'risk_alice') AS had_risk;
SELECT * FROM risk_of(:'dev_net');
SELECT event, actor IS NOT NULL AS has_actor FROM sessmgr.session_events
 WHERE session_id = :'dev_net' ORDER BY id;
SELECT trusted, confirmed_at IS NOT NULL AS confirmed FROM sessmgr.known_devices
 WHERE user_id = 'risk_alice' AND browser = 'Mobile Safari';
SELECT 64500 = ANY (networks) AS network_known FROM sessmgr.login_profiles WHERE user_id = 'risk_alice';
SELECT * FROM risk_of(risk_login('risk_alice', :'iphone', 'FR', 43.2965, 5.3698, 64500));
SELECT sessmgr.confirm_session(:'belgium', 'risk_alice') AS had_risk;
SELECT 'BE' = ANY (countries) AS country_known FROM sessmgr.login_profiles WHERE user_id = 'risk_alice';
SELECT * FROM risk_of(risk_login('risk_alice', :'chrome', 'BE', NULL, NULL, 3215));
-- again: nothing left to clear
SELECT sessmgr.confirm_session(:'belgium', 'risk_alice') AS had_risk;

-- 12. another user's, an unknown, a NULL and an ended session: the same answer
SELECT risk_err(format($$SELECT sessmgr.confirm_session(%L, 'risk_bob')$$, :'belgium'));
SELECT risk_err($$SELECT sessmgr.confirm_session('00000000-0000-0000-0000-000000000000', 'risk_alice')$$);
SELECT risk_err($$SELECT sessmgr.confirm_session(NULL, 'risk_alice')$$);
SELECT risk_err($$SELECT sessmgr.confirm_session(gen_random_uuid(), NULL)$$);
SELECT sessmgr.revoke(:'travel', 'risk_alice');
SELECT risk_err(format($$SELECT sessmgr.confirm_session(%L, 'risk_alice')$$, :'travel'));

-- 13. policy step_up: a suspicious login starts unconfirmed (aal 0) and is
-- not fresh until it re-authenticates; an ordinary one is level 1
SET sessmgr.suspicious_login_policy = 'step_up';
CREATE TEMP TABLE stepped AS
SELECT * FROM sessmgr.issue('risk_alice', user_agent => :'chrome', device_cookie => repeat('c', 64));
SELECT * FROM risk_of((SELECT session_id FROM stepped));
SELECT set_config('request.headers', json_build_object('cloudfront-viewer-country', 'JP')::text, false) IS NOT NULL AS in_japan;
CREATE TEMP TABLE stepped_up AS
SELECT * FROM sessmgr.issue('risk_alice', user_agent => :'chrome');
SELECT set_config('request.headers', '', false) IS NOT NULL AS reset;
SELECT * FROM risk_of((SELECT session_id FROM stepped_up));
SELECT details ->> 'policy' AS policy FROM sessmgr.session_events
 WHERE session_id = (SELECT session_id FROM stepped_up) AND event = 'suspicious_login';
-- the access token says so too
SELECT (convert_from(decode(translate(split_part(access_token, '.', 2), '-_', '+/')
        || repeat('=', (4 - length(split_part(access_token, '.', 2)) % 4) % 4), 'base64'), 'UTF8')::json ->> 'aal') AS token_aal
  FROM stepped_up;
BEGIN;
SELECT sessmgr.authenticate(token) IS NOT NULL AS signed_in FROM stepped_up;
SELECT sessmgr.current_aal() AS aal, sessmgr.is_fresh('1 hour') AS fresh;
SELECT risk_err($$SELECT sessmgr.require_fresh('1 hour')$$);
COMMIT;
SELECT sessmgr.reauthenticate(session_id, 'risk_alice') IS NOT NULL AS reauthenticated FROM stepped_up;
BEGIN;
SELECT sessmgr.authenticate(token) IS NOT NULL AS signed_in FROM stepped_up;
SELECT sessmgr.current_aal() AS aal, sessmgr.is_fresh('1 hour') AS fresh;
COMMIT;
RESET sessmgr.suspicious_login_policy;

-- 14. policy off: no checks and nothing remembered (the benchmarks' baseline)
SET sessmgr.suspicious_login_policy = 'off';
SELECT logins AS before FROM sessmgr.login_profiles WHERE user_id = 'risk_alice' \gset
SELECT * FROM risk_of(risk_login('risk_alice', :'iphone', 'NZ', -36.85, 174.76, 9999));
SELECT logins = :before AS unchanged FROM sessmgr.login_profiles WHERE user_id = 'risk_alice';
SELECT risk_login('risk_dave', :'chrome', 'FR', 48.8566, 2.3522, 3215) IS NOT NULL AS issued;
SELECT count(*) AS dave_profiles FROM sessmgr.login_profiles WHERE user_id = 'risk_dave';
RESET sessmgr.suspicious_login_policy;

-- 15. the listings show the risk
SELECT risk FROM sessmgr.list_sessions('risk_alice') WHERE id = :'odd_hour';
SELECT risk FROM sessmgr.active_sessions WHERE id = :'odd_hour';

-- 16. security_events: sign-ins with device, place and risk; suspicious
-- logins and confirmations; newest first
SELECT event, device, country_code, risk, failures IS NULL AS no_failures
  FROM sessmgr.security_events('risk_alice')
 WHERE session_id IN (:'dev_net', :'belgium')
 ORDER BY occurred_at, event;
SELECT count(*) AS nothing_before_now FROM sessmgr.security_events('risk_alice', now() + interval '1 hour');
SELECT count(*) AS nobody FROM sessmgr.security_events('nobody');
-- failed attempts recorded by throttling (written here as the owner would):
-- how many, when, from where
INSERT INTO sessmgr.session_events (event, user_id, actor, ip, details)
VALUES ('login_failed', 'risk_alice', current_user, '192.0.2.1', '{"failures": 3}');
SELECT event, ip, country_code, failures FROM sessmgr.security_events('risk_alice') WHERE event = 'login_failed';

-- 17. PostgREST: my_security_events and confirm_session for the caller
CREATE FUNCTION risk_api(token text, call text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    PERFORM sessmgr.authenticate(token);
    EXECUTE call INTO r;
    RETURN coalesce(r, 'ok');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
CREATE TEMP TABLE api AS SELECT * FROM sessmgr.issue('risk_erin', user_agent => :'chrome');
SELECT risk_login('risk_erin', :'chrome', 'US', 40.71, -74.01, 7018) IS NOT NULL AS first_place;
SELECT risk_login('risk_erin', :'iphone', 'CA', 43.65, -79.38, 577) AS erin_odd \gset
SELECT * FROM risk_of(:'erin_odd');
SELECT risk_api(token, 'SELECT string_agg(event, '','' ORDER BY occurred_at, event) FROM sessmgr_api.my_security_events()') FROM api;
-- another user's session id: 404, exactly like revoke_session
SELECT risk_api(token, format('SELECT sessmgr_api.confirm_session(%L)', :'first')) FROM api;
SELECT risk_api(token, format('SELECT sessmgr_api.confirm_session(%L)', :'erin_odd')) FROM api;
SELECT * FROM risk_of(:'erin_odd');
-- a suspicious session cannot clear its own flag
SELECT set_config('request.headers', json_build_object('cloudfront-viewer-country', 'MX')::text, false) IS NOT NULL AS in_mexico;
CREATE TEMP TABLE erin_mexico AS SELECT * FROM sessmgr.issue('risk_erin', user_agent => :'firefox');
SELECT set_config('request.headers', '', false) IS NOT NULL AS reset;
SELECT * FROM risk_of((SELECT session_id FROM erin_mexico));
SELECT risk_api(token, format('SELECT sessmgr_api.confirm_session(%L)', session_id)) FROM erin_mexico;
-- an unconfirmed session (policy step_up) cannot vouch for any
SET sessmgr.suspicious_login_policy = 'step_up';
SELECT set_config('request.headers', json_build_object('cloudfront-viewer-country', 'PE')::text, false) IS NOT NULL AS in_peru;
CREATE TEMP TABLE erin_peru AS SELECT * FROM sessmgr.issue('risk_erin', user_agent => :'firefox');
SELECT set_config('request.headers', '', false) IS NOT NULL AS reset;
RESET sessmgr.suspicious_login_policy;
SELECT risk_api(p.token, format('SELECT sessmgr_api.confirm_session(%L)', m.session_id))
  FROM erin_peru p, erin_mexico m;
-- without a session
SELECT risk_err($$SELECT sessmgr_api.confirm_session(gen_random_uuid())$$);
SELECT risk_err($$SELECT * FROM sessmgr_api.my_security_events()$$);

-- 18. cleanup forgets profiles and devices older than the event retention
UPDATE sessmgr.login_profiles SET last_login_at = now() - interval '200 days' WHERE user_id = 'risk_bob';
UPDATE sessmgr.known_devices SET last_seen_at = now() - interval '200 days' WHERE user_id IN ('risk_bob', 'risk_carol');
CALL sessmgr.cleanup(batch_size => 2) \g /dev/null
SELECT user_id, count(*) FROM sessmgr.login_profiles WHERE user_id LIKE 'risk%' GROUP BY user_id ORDER BY user_id;
SELECT user_id, count(*) FROM sessmgr.known_devices WHERE user_id LIKE 'risk%' GROUP BY user_id ORDER BY user_id;

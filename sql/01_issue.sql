--
-- sessmgr.issue(): tokens, stored form, metadata, lifetimes, bad input
--
-- a token as sessmgr encodes it, built independently from its parts
CREATE FUNCTION test_token(id uuid, secret bytea) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'sessmgr_' || translate(encode(uuid_send(id) || secret, 'base64'), '+/', '-_')
$$;

-- the SQLSTATE and message of a statement's error, for asserting error codes
CREATE FUNCTION sqlstate_of(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE TEMP TABLE t AS
SELECT * FROM sessmgr.issue('alice', 'laptop', 'Mozilla/5.0 Firefox', '203.0.113.10',
                            'Berlin', false, '{"app": "web"}');

-- the token: recognisable prefix, 64 base64url characters, nothing else
SELECT token ~ '^sessmgr_[A-Za-z0-9_-]{64}$' AS well_formed,
       length(token) AS length
  FROM t;

-- it carries the session id as selector, and no user data
SELECT substr(decode(translate(substr(token, 9), '-_', '+/'), 'base64'), 1, 16)
         = uuid_send(session_id) AS selector_is_session_id,
       position(convert_to('alice', 'UTF8') IN
                decode(translate(substr(token, 9), '-_', '+/'), 'base64')) = 0
         AS no_user_id_inside
  FROM t;

-- stored: SHA-256 of id || secret, never the token or its secret
SELECT s.token_hash = sha256(decode(translate(substr(t.token, 9), '-_', '+/'), 'base64'))
         AS hash_matches,
       position(convert_to(t.token, 'UTF8') IN s.token_hash) = 0 AS token_not_in_hash,
       s::text NOT LIKE '%' || substr(t.token, 9) || '%' AS token_not_in_row
  FROM t JOIN sessmgr.sessions s ON s.id = t.session_id;

-- metadata is kept as given
SELECT s.user_id, s.device_name, s.user_agent, s.ip, s.location, s.remember,
       s.metadata, s.revoked_at IS NULL AS live
  FROM t JOIN sessmgr.sessions s ON s.id = t.session_id;

-- lifetimes: 24 hours absolute, 1 hour idle; remembered: 30 days, 7 days
SELECT s.expires_at - s.created_at AS lifetime, s.idle_timeout,
       t.expires_at = s.expires_at AS returned_expiry_matches,
       s.created_at = s.last_active_at AS fresh
  FROM t JOIN sessmgr.sessions s ON s.id = t.session_id;

-- (a statement does not see rows its own function call inserted: join later)
CREATE TEMP TABLE r AS SELECT * FROM sessmgr.issue('alice', remember => true);
SELECT s.expires_at - s.created_at AS lifetime, s.idle_timeout, s.remember
  FROM r JOIN sessmgr.sessions s ON s.id = r.session_id;

-- the id is a version 4 uuid; two sessions never share id or token
SELECT substr(session_id::text, 15, 1) AS version,
       substr(session_id::text, 20, 1) IN ('8', '9', 'a', 'b') AS variant
  FROM t;
SELECT count(DISTINCT token) AS tokens, count(DISTINCT session_id) AS ids
  FROM (SELECT (sessmgr.issue('carol')).* FROM generate_series(1, 10)) x;

-- issue works from the select list and with only the user id
SELECT (sessmgr.issue('dave')).token LIKE 'sessmgr_%' AS ok;

-- NULL metadata means an empty object, NULL remember means false
TRUNCATE r;
INSERT INTO r SELECT * FROM sessmgr.issue('erin', metadata => NULL, remember => NULL);
SELECT s.metadata, s.remember
  FROM r JOIN sessmgr.sessions s ON s.id = r.session_id;

-- bad input: clear errors, naming the argument but never echoing it
SELECT sqlstate_of($$SELECT sessmgr.issue(NULL)$$) AS null_user,
       sqlstate_of($$SELECT sessmgr.issue('')$$) AS empty_user,
       sqlstate_of($$SELECT sessmgr.issue(repeat('u', 257))$$) AS long_user,
       sqlstate_of($$SELECT sessmgr.issue('x', metadata => '[]')$$) AS array_metadata;
SELECT * FROM sessmgr.issue(NULL);
SELECT * FROM sessmgr.issue('');
SELECT * FROM sessmgr.issue(repeat('u', 257));
SELECT * FROM sessmgr.issue('frank', device_name => repeat('d', 257));
SELECT * FROM sessmgr.issue('frank', user_agent => repeat('a', 2049));
SELECT * FROM sessmgr.issue('frank', location => repeat('l', 257));
SELECT * FROM sessmgr.issue('frank', metadata => '[1, 2]');
SELECT * FROM sessmgr.issue('frank', metadata => '"scalar"');
SELECT * FROM sessmgr.issue('frank', metadata => jsonb_build_object('k', repeat('m', 9000)));
SELECT * FROM sessmgr.issue('frank', ip => 'not an address');
-- limits are inclusive
SELECT count(*) FROM sessmgr.issue(repeat('u', 256), repeat('d', 256), repeat('a', 2048),
                                   '::1', repeat('l', 256));
-- nothing of the failed calls was stored
SELECT count(*) AS frank_sessions FROM sessmgr.sessions WHERE user_id = 'frank';

-- every issuance left exactly one event
SELECT count(*) = (SELECT count(*) FROM sessmgr.sessions) AS one_event_per_session
  FROM sessmgr.session_events WHERE event = 'issue';
SELECT e.event, e.user_id, e.reason, e.actor = current_user AS actor_is_caller, e.ip
  FROM t JOIN sessmgr.session_events e ON e.session_id = t.session_id;

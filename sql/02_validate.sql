--
-- sessmgr.validate() and sessmgr.authenticate(): the per-request check
--
-- A session inserted directly with chosen timestamps, for expiry tests.
-- Returns its token, built independently of sessmgr's encoder.
CREATE FUNCTION make_session(p_user text, p_created timestamptz,
                             p_last_active timestamptz, p_expires timestamptz,
                             p_idle interval DEFAULT '1 hour')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_id     uuid  := gen_random_uuid();
    v_secret bytea := sha256(convert_to(random()::text || clock_timestamp()::text, 'UTF8'));
BEGIN
    INSERT INTO sessmgr.sessions (id, token_hash, created_at, last_active_at,
                                  expires_at, idle_timeout, user_id)
    VALUES (v_id, sha256(uuid_send(v_id) || v_secret), p_created, p_last_active,
            p_expires, p_idle, p_user);
    RETURN test_token(v_id, v_secret);
END
$$;

CREATE TEMP TABLE v AS SELECT * FROM sessmgr.issue('victor', 'phone');

-- a valid token: one row, the right session and user
SELECT x.session_id = v.session_id AS same_session, x.user_id,
       x.expires_at = v.expires_at AS same_expiry
  FROM v, sessmgr.validate(v.token) x;
SELECT count(*) FROM v, sessmgr.validate(v.token);
-- also in the select list
SELECT (sessmgr.validate(token)).user_id FROM v;

-- a directly inserted session validates with the independently built token
SELECT make_session('vera', now() - interval '1 minute', now(), now() + interval '1 day')
       AS vera_token \gset
SELECT user_id FROM sessmgr.validate(:'vera_token');

-- anything else: zero rows, never an error
SELECT count(*) AS null_token FROM sessmgr.validate(NULL);
SELECT count(*) AS empty FROM sessmgr.validate('');
SELECT count(*) AS garbage FROM sessmgr.validate('garbage');
SELECT count(*) AS prefix_only FROM sessmgr.validate('sessmgr_');
SELECT count(*) AS wrong_prefix FROM v, sessmgr.validate('SESSMGR_' || substr(token, 9));
SELECT count(*) AS bad_alphabet FROM v, sessmgr.validate(substr(token, 1, 71) || '=');
SELECT count(*) AS base64_not_url FROM v, sessmgr.validate('sessmgr_' || repeat('+/', 32));
SELECT count(*) AS trailing_space FROM v, sessmgr.validate(token || ' ');
SELECT count(*) AS leading_space FROM v, sessmgr.validate(' ' || token);
SELECT count(*) AS truncated FROM v, sessmgr.validate(substr(token, 1, 71));
SELECT count(*) AS multibyte FROM sessmgr.validate('sessmgr_' || repeat('é', 64));
SELECT count(*) AS one_megabyte FROM v, sessmgr.validate(token || repeat('A', 1024 * 1024));
SELECT count(*) AS ten_megabytes FROM sessmgr.validate(repeat('sessmgr_', 1310720));
SELECT count(*) AS control_chars
  FROM sessmgr.validate('sessmgr_' || repeat(chr(1), 64));
-- the right id with a wrong secret
SELECT count(*) AS wrong_secret
  FROM v, sessmgr.validate(substr(token, 1, 30) ||
                           CASE WHEN substr(token, 31, 1) = 'A' THEN 'B' ELSE 'A' END ||
                           substr(token, 32));
-- a well-formed token of a session that does not exist
SELECT count(*) AS unknown_session
  FROM sessmgr.validate(test_token(gen_random_uuid(), sha256('x'::bytea)));
-- the type system refuses what is not text before sessmgr sees it
SELECT count(*) FROM sessmgr.validate(42);
SELECT count(*) FROM sessmgr.validate('{}'::jsonb);

-- ended sessions are not valid (a statement sees the sessions table as of
-- its start, so each session is made in a statement of its own)
SELECT make_session('vera', now() - interval '2 days', now() - interval '1 minute',
                    now() - interval '1 second') AS expired_token \gset
SELECT make_session('vera', now() - interval '3 hours', now() - interval '61 minutes',
                    now() + interval '1 day') AS idle_token \gset
SELECT make_session('vera', now() - interval '3 hours', now() - interval '59 minutes',
                    now() + interval '1 day') AS almost_idle_token \gset
SELECT count(*) AS past_absolute_lifetime FROM sessmgr.validate(:'expired_token');
SELECT count(*) AS idle_too_long FROM sessmgr.validate(:'idle_token');
SELECT count(*) AS just_inside_idle_timeout FROM sessmgr.validate(:'almost_idle_token');

-- sliding activity: a touch at most once per sessmgr.touch_interval (60 s)
SELECT make_session('walt-stale', now() - interval '1 hour', now() - interval '5 minutes',
                    now() + interval '1 day') AS stale_token \gset
SELECT make_session('walt-fresh', now() - interval '1 hour', now() - interval '10 seconds',
                    now() + interval '1 day') AS fresh_token \gset
BEGIN;
SELECT count(*) FROM sessmgr.validate(:'stale_token');
SELECT count(*) FROM sessmgr.validate(:'fresh_token');
SELECT user_id, last_active_at = now() AS touched
  FROM sessmgr.sessions WHERE user_id LIKE 'walt-%' ORDER BY user_id;
COMMIT;

-- no touch in a read-only transaction, yet the token is valid there
SELECT make_session('xena', now() - interval '1 hour', now() - interval '5 minutes',
                    now() + interval '1 day') AS ro_token \gset
BEGIN TRANSACTION READ ONLY;
SELECT count(*) AS valid_read_only FROM sessmgr.validate(:'ro_token');
SELECT sessmgr.authenticate(:'ro_token') AS authenticated_read_only;
COMMIT;
SELECT last_active_at < now() - interval '4 minutes' AS untouched
  FROM sessmgr.sessions WHERE user_id = 'xena';

-- touch_interval = 0 writes on every validation
BEGIN;
SET LOCAL sessmgr.touch_interval = 0;
SELECT count(*) FROM sessmgr.validate(:'fresh_token');
SELECT last_active_at = now() AS touched_now
  FROM sessmgr.sessions WHERE user_id = 'walt-fresh';
COMMIT;

-- under REPEATABLE READ the touch runs too
SELECT make_session('yuri', now() - interval '1 hour', now() - interval '5 minutes',
                    now() + interval '1 day') AS rr_token \gset
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM sessmgr.validate(:'rr_token');
COMMIT;
SELECT last_active_at > now() - interval '1 minute' AS touched_rr
  FROM sessmgr.sessions WHERE user_id = 'yuri';

-- many tokens in one query
CREATE TEMP TABLE zoe AS SELECT (sessmgr.issue('zoe', 'd' || g)).* FROM generate_series(1, 10) g;
SELECT count(*) AS valid_of_10, count(DISTINCT x.session_id) AS distinct_sessions
  FROM zoe, LATERAL sessmgr.validate(zoe.token) x
 WHERE x.session_id = zoe.session_id;

-- A set-returning call keeps its index scan for the whole query (one rescan
-- per outer row).  Every way a query can end must release it cleanly: any
-- leaked relation reference or buffer pin would show as a WARNING here.
CREATE TEMP TABLE zoe_n AS SELECT row_number() OVER () AS n, token, session_id FROM zoe;
-- an error in the middle of the query, at top level
SELECT count(*) FROM zoe_n z, LATERAL sessmgr.validate(z.token) x
 WHERE 1 / (z.n - 5) IS NOT NULL;
-- an error in the middle of the query, caught by a subtransaction
DO $$
DECLARE c bigint;
BEGIN
  BEGIN
    SELECT count(*) INTO c FROM zoe_n z, LATERAL sessmgr.validate(z.token) x
     WHERE 1 / (z.n - 5) IS NOT NULL;
  EXCEPTION WHEN division_by_zero THEN
    RAISE NOTICE 'caught %', SQLERRM;
  END;
  SELECT count(*) INTO c FROM zoe_n z, LATERAL sessmgr.validate(z.token) x;
  RAISE NOTICE 'then validated %', c;
END
$$;
-- a cursor fetched piecemeal, with other validating queries in between
BEGIN;
DECLARE zc CURSOR FOR
  SELECT z.n, x.user_id FROM zoe_n z, LATERAL sessmgr.validate(z.token) x;
FETCH 3 FROM zc;
SELECT count(*) AS meanwhile FROM zoe_n z, LATERAL sessmgr.validate(z.token) x;
-- a revocation after the cursor opened is not in its snapshot ...
SELECT sessmgr.revoke_any(session_id) FROM zoe_n WHERE n = 5;
FETCH 3 FROM zc;
-- ... but is in a new statement's
SELECT count(*) AS after_revoke FROM zoe_n z, LATERAL sessmgr.validate(z.token) x;
SAVEPOINT s;
FETCH 2 FROM zc;
ROLLBACK TO SAVEPOINT s;
FETCH 1 FROM zc;
-- a cursor opened and fetched inside a subtransaction that rolls back
SAVEPOINT t;
DECLARE zd CURSOR FOR SELECT x.user_id FROM zoe_n z, LATERAL sessmgr.validate(z.token) x;
FETCH 2 FROM zd;
ROLLBACK TO SAVEPOINT t;
-- a fetch that fails inside a subtransaction
DECLARE ze CURSOR FOR
  SELECT z.n FROM zoe_n z, LATERAL sessmgr.validate(z.token) x
   WHERE 1 / (z.n - 8) IS NOT NULL;
SAVEPOINT u;
FETCH 9 FROM ze;
ROLLBACK TO SAVEPOINT u;
CLOSE ze;
-- a cursor left open (one row to go) at commit
COMMIT;
-- a cursor held over the commit
BEGIN;
DECLARE zh CURSOR WITH HOLD FOR
  SELECT z.n FROM zoe_n z, LATERAL sessmgr.validate(z.token) x ORDER BY z.n;
FETCH 2 FROM zh;
COMMIT;
FETCH ALL FROM zh;
CLOSE zh;
-- an SQL function that validates in FROM, called per row of another query
CREATE FUNCTION zoe_valid(tok text) RETURNS bigint LANGUAGE sql
  AS $$ SELECT count(*) FROM sessmgr.validate(tok) $$;
SELECT sum(zoe_valid(z.token)) AS valid_by_function FROM zoe_n z;
DROP FUNCTION zoe_valid(text);

--
-- authenticate: identity for the rest of the transaction
--
SELECT sessmgr.current_user_id() IS NULL AS no_identity,
       sessmgr.current_session_id() IS NULL AS no_session;
BEGIN;
SELECT sessmgr.authenticate(token) FROM v;
SELECT sessmgr.current_user_id(),
       sessmgr.current_session_id() = (SELECT session_id FROM v) AS session_matches;
-- a failed authenticate clears the identity
SELECT sessmgr.authenticate('garbage') IS NULL AS refused;
SELECT sessmgr.current_user_id() IS NULL AS cleared;
SELECT sessmgr.authenticate(token) IS NOT NULL FROM v;
COMMIT;
-- gone with the transaction (a pooled connection's next client sees nothing)
SELECT sessmgr.current_user_id() IS NULL AS cleared_at_commit;
BEGIN;
SELECT sessmgr.authenticate(token) IS NOT NULL FROM v;
ROLLBACK;
SELECT sessmgr.current_user_id() IS NULL AS cleared_at_rollback;
-- an identity set in a subtransaction that rolls back is forgotten
BEGIN;
SAVEPOINT a;
SELECT sessmgr.authenticate(token) IS NOT NULL FROM v;
ROLLBACK TO SAVEPOINT a;
SELECT sessmgr.current_user_id() IS NULL AS cleared_by_rollback_to;
SAVEPOINT b;
SELECT sessmgr.authenticate(token) IS NOT NULL FROM v;
RELEASE SAVEPOINT b;
SELECT sessmgr.current_user_id() AS kept_after_release;
SAVEPOINT c;
ROLLBACK TO SAVEPOINT c;
SELECT sessmgr.current_user_id() AS kept_after_unrelated_rollback;
COMMIT;
-- it cannot be forged through settings
SELECT set_config('sessmgr.current_user_id', 'mallory', false);
SELECT sessmgr.authenticate(NULL) IS NULL AS null_token;

-- usable in row-level security
SELECT token AS victor_token FROM v \gset
CREATE TABLE notes (owner text, body text);
INSERT INTO notes VALUES ('victor', 'victor''s note'), ('vera', 'vera''s note');
CREATE ROLE sessmgr_regress_reader;
GRANT SELECT ON notes TO sessmgr_regress_reader;
GRANT USAGE ON SCHEMA sessmgr TO sessmgr_regress_reader;
GRANT EXECUTE ON FUNCTION sessmgr.authenticate(text), sessmgr.current_user_id()
    TO sessmgr_regress_reader;
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_owner ON notes USING (owner = sessmgr.current_user_id());
BEGIN;
SET LOCAL ROLE sessmgr_regress_reader;
SELECT body FROM notes;
SELECT sessmgr.authenticate(:'victor_token');
SELECT body FROM notes;
COMMIT;
DROP TABLE notes;
DROP OWNED BY sessmgr_regress_reader;
DROP ROLE sessmgr_regress_reader;

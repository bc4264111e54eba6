--
-- Failed logins: login_failed(), login_delay(), login_failures(),
-- unlock_account(), and issue()'s refusal (src/throttle.c,
-- docs/protecting-accounts.md)
--

-- the SQLSTATE, message, detail (its numbers as N) and hint of an error
CREATE FUNCTION throttle_error(statement text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    state text; msg text; detail text; hint text;
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN concat_ws(' / ', state || ': ' || msg,
                     nullif(regexp_replace(detail, '[0-9]+', 'N', 'g'), ''),
                     nullif(hint, ''));
END
$$;

-- the number of seconds in an error's detail
CREATE FUNCTION throttle_wait(statement text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE statement;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN substring(detail FROM '[0-9]+')::integer;
END
$$;

-- the keys of a user (and of the networks it failed from), oldest first
CREATE VIEW throttle_keys AS
SELECT user_id, network, failures, delayed_until IS NOT NULL AS delayed,
       locked_at IS NOT NULL AS locked
  FROM sessmgr.login_attempts;

-- nothing recorded: no delay, no failures, and reading writes nothing
SELECT sessmgr.login_delay('tina', '198.51.100.7') AS delay,
       sessmgr.login_delay('tina') AS delay_no_ip,
       sessmgr.login_failures('tina') AS failures;
SELECT count(*) AS rows FROM sessmgr.login_attempts;

-- the settings (defined once the library is loaded) and their defaults
SELECT name, setting, unit, context FROM pg_settings
 WHERE name LIKE 'sessmgr.login%' ORDER BY name;

-- first delays of a minute, so that no check of a remaining wait below
-- depends on how fast the test runs
SET sessmgr.login_first_delay = '1min';

-- the pair: 5 free failures, then a delay doubling from the first
SELECT i, sessmgr.login_failed('tina', '198.51.100.7', 'Mozilla/5.0', 'bad_password') AS delay
  FROM generate_series(1, 8) i;

-- one row per key: the address across accounts, the account, the pair
SELECT * FROM throttle_keys ORDER BY user_id, network;

-- the pair waits (about 4 min); the account from elsewhere and the address
-- for another account do not
SELECT sessmgr.login_delay('tina', '198.51.100.7') BETWEEN '3 min' AND '4 min' AS pair_waits,
       sessmgr.login_delay('tina', '198.51.100.8') AS other_network,
       sessmgr.login_delay('tina') AS account,
       sessmgr.login_delay('uma', '198.51.100.7') AS other_account,
       sessmgr.login_failures('tina') AS failures;

-- issue() refuses the pair while it waits, with the wait in the detail
SELECT throttle_error($$SELECT sessmgr.issue('tina', NULL, NULL, '198.51.100.7')$$) AS refused;
SELECT throttle_wait($$SELECT sessmgr.issue('tina', NULL, NULL, '198.51.100.7')$$)
       BETWEEN 180 AND 240 AS wait_in_detail;
SELECT count(*) AS tina_sessions FROM sessmgr.sessions WHERE user_id = 'tina';

-- a login from another network succeeds and resets the account's count; the
-- waiting pair and the address's count stay
SELECT count(*) AS issued FROM sessmgr.issue('tina', NULL, NULL, '198.51.100.8');
SELECT * FROM throttle_keys ORDER BY user_id, network;
SELECT sessmgr.login_failures('tina') AS failures,
       sessmgr.login_delay('tina', '198.51.100.7') > '0' AS pair_still_waits;

-- once the pair's delay is over, a login from it resets the pair too
UPDATE sessmgr.login_attempts SET delayed_until = now() - interval '1 s'
 WHERE user_id = 'tina';
SELECT count(*) AS issued FROM sessmgr.issue('tina', NULL, NULL, '198.51.100.7');
SELECT * FROM throttle_keys ORDER BY user_id, network;
DELETE FROM sessmgr.login_attempts;

-- the delay doubles from sessmgr.login_first_delay (1 s by default) up to
-- sessmgr.login_max_delay (15 min)
RESET sessmgr.login_first_delay;
WITH f AS MATERIALIZED (
    SELECT i, sessmgr.login_failed('wanda', '198.51.100.20') AS delay
      FROM generate_series(1, 18) i)
SELECT * FROM f WHERE i >= 5;
DELETE FROM sessmgr.login_attempts;
SET sessmgr.login_first_delay = '1min';

-- the account: 20 free failures from anywhere, each network free on its own
WITH f AS MATERIALIZED (
    SELECT i, sessmgr.login_failed('vera', ('203.0.113.' || i)::inet) AS delay
      FROM generate_series(1, 23) i)
SELECT * FROM f WHERE i >= 19;
SELECT sessmgr.login_delay('vera', '203.0.113.200') BETWEEN '3 min' AND '4 min' AS account_waits,
       sessmgr.login_failures('vera') AS failures;
SELECT throttle_error($$SELECT sessmgr.issue('vera', NULL, NULL, '203.0.113.200')$$) AS refused;
SELECT throttle_error($$SELECT sessmgr.issue('vera')$$) AS refused_without_address;
DELETE FROM sessmgr.login_attempts;

-- the address across accounts (credential stuffing): 100 free failures, one
-- per account here
WITH f AS MATERIALIZED (
    SELECT i, sessmgr.login_failed('stuffed' || i, '192.0.2.66') AS delay
      FROM generate_series(1, 102) i)
SELECT * FROM f WHERE i >= 99;
-- a fresh account from that address waits too, from another address it does not
SELECT sessmgr.login_delay('never-seen', '192.0.2.66') BETWEEN '1 min' AND '2 min' AS address_waits,
       sessmgr.login_delay('never-seen', '192.0.2.67') AS elsewhere;
-- issue() does not refuse on the address's count: it is the pair's and the account's
SELECT count(*) AS issued FROM sessmgr.issue('stuffed1', NULL, NULL, '192.0.2.66');
SELECT failures FROM sessmgr.login_attempts WHERE user_id = '' AND network = '192.0.2.66';
DELETE FROM sessmgr.login_attempts;

-- IPv6 counts by /64; an IPv4-mapped address is its IPv4 address
SELECT i, sessmgr.login_failed('xavi',
           CASE WHEN i % 2 = 0 THEN '2001:db8:1:2::1' ELSE '2001:db8:1:2:ffff:ffff:ffff:fffe' END::inet)
       AS delay
  FROM generate_series(1, 6) i;
SELECT sessmgr.login_delay('xavi', '2001:db8:1:2:abcd::1') > '0' AS same_64_waits,
       sessmgr.login_delay('xavi', '2001:db8:1:3::1') AS next_64;
SELECT sessmgr.login_failed('xavi', '::ffff:198.51.100.99') AS mapped;
SELECT sessmgr.login_failed('xavi', '198.51.100.99/24') AS masked;
SELECT * FROM throttle_keys ORDER BY user_id, network;
DELETE FROM sessmgr.login_attempts;

RESET sessmgr.login_first_delay;

-- without an address only the account counts
SELECT sessmgr.login_failed('walt') AS delay;
SELECT * FROM throttle_keys ORDER BY user_id, network;

-- the window: failures are forgotten 12 h after a key's last one
SELECT sessmgr.login_failed('walt') AS delay;
UPDATE sessmgr.login_attempts
   SET first_failed_at = first_failed_at - interval '13 h',
       last_failed_at = last_failed_at - interval '13 h';
SELECT sessmgr.login_failures('walt') AS forgotten;
SELECT sessmgr.login_failed('walt') AS delay;
SELECT failures, first_failed_at = last_failed_at AS counting_again FROM sessmgr.login_attempts;
-- ... and cleanup removes forgotten keys
UPDATE sessmgr.login_attempts
   SET first_failed_at = first_failed_at - interval '13 h',
       last_failed_at = last_failed_at - interval '13 h';
SELECT sessmgr.login_failed('yoko', '198.51.100.30') AS delay;
CALL sessmgr.cleanup() \gset cleanup_
SELECT * FROM throttle_keys ORDER BY user_id, network;
-- a shorter window, set by a superuser
SET sessmgr.login_failure_window = '1h';
UPDATE sessmgr.login_attempts
   SET first_failed_at = first_failed_at - interval '61 min',
       last_failed_at = last_failed_at - interval '61 min';
SELECT sessmgr.login_failures('yoko') AS forgotten;
RESET sessmgr.login_failure_window;
DELETE FROM sessmgr.login_attempts;

-- events: login_failed at most once a minute per account and network, with
-- the count since the previous one
SELECT sessmgr.login_failed('zed', '198.51.100.40', 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0')
  FROM generate_series(1, 3);
SELECT event, session_id, user_id, reason, actor = current_user AS actor_is_caller, ip,
       user_agent IS NOT NULL AS has_user_agent, details
  FROM sessmgr.session_events WHERE user_id = 'zed' ORDER BY id;
UPDATE sessmgr.login_attempts SET event_at = event_at - interval '61 s' WHERE user_id = 'zed';
SELECT sessmgr.login_failed('zed', '198.51.100.40', NULL, 'bad_otp');
SELECT event, reason, ip, details
  FROM sessmgr.session_events WHERE user_id = 'zed' ORDER BY id;
-- another network of the same account has its own minute
SELECT sessmgr.login_failed('zed', '198.51.100.41');
SELECT count(*) AS events FROM sessmgr.session_events WHERE user_id = 'zed';
DELETE FROM sessmgr.login_attempts;

-- the lock: sessmgr.login_lockout_failures consecutive failures (3 here)
SET sessmgr.login_lockout_failures = 3;
SELECT i, sessmgr.login_failed('yann', ('198.51.100.' || (50 + i))::inet) > '100 years' AS locked
  FROM generate_series(1, 4) i;
SELECT sessmgr.login_failed('yann', '198.51.100.60') AS largest_interval;
SELECT sessmgr.login_delay('yann') > '100 years' AS locked,
       sessmgr.login_delay('yann', '198.51.100.99') > '100 years' AS locked_from_anywhere,
       sessmgr.login_failures('yann') AS failures;
SELECT throttle_error($$SELECT sessmgr.issue('yann', NULL, NULL, '198.51.100.99')$$) AS refused;
SELECT event, reason, ip, details FROM sessmgr.session_events
 WHERE user_id = 'yann' AND event = 'account_locked';
-- the window does not unlock it
UPDATE sessmgr.login_attempts
   SET first_failed_at = first_failed_at - interval '13 h',
       last_failed_at = last_failed_at - interval '13 h'
 WHERE user_id = 'yann';
CALL sessmgr.cleanup() \gset cleanup_
SELECT sessmgr.login_delay('yann') > '100 years' AS still_locked,
       sessmgr.login_failures('yann') AS failures;
-- unlock_account clears the account and its pairs, not the addresses
SELECT sessmgr.unlock_account('yann') AS unlocked;
SELECT sessmgr.unlock_account('yann') AS nothing_left;
SELECT sessmgr.unlock_account('nobody') AS never_failed;
SELECT * FROM throttle_keys WHERE user_id = 'yann';
SELECT event, reason, actor = current_user AS actor_is_caller, ip, details
  FROM sessmgr.session_events WHERE user_id = 'yann' AND event = 'account_unlocked';
SELECT count(*) AS issued FROM sessmgr.issue('yann', NULL, NULL, '198.51.100.99');
RESET sessmgr.login_lockout_failures;
DELETE FROM sessmgr.login_attempts;

-- unknown accounts count exactly like known ones
SELECT sessmgr.login_failed('tina', '198.51.100.70') AS known,
       sessmgr.login_failed('no-such-user', '198.51.100.71') AS unknown;
SELECT user_id, failures FROM sessmgr.login_attempts WHERE user_id <> '' ORDER BY user_id, network;
DELETE FROM sessmgr.login_attempts;

-- the settings: superuser only, checked
SET sessmgr.login_first_delay = '20min';
SET sessmgr.login_lockout_failures = 101;
SET sessmgr.login_max_delay = '500ms';
SET sessmgr.login_first_delay = 0;
SELECT sessmgr.login_failed('off', '198.51.100.80') FROM generate_series(1, 7);
RESET sessmgr.login_first_delay;
DELETE FROM sessmgr.login_attempts;

-- bad input: errors name the argument, never echo it
SELECT throttle_error($$SELECT sessmgr.login_failed(NULL)$$) AS null_user,
       throttle_error($$SELECT sessmgr.login_failed('')$$) AS empty_user,
       throttle_error($$SELECT sessmgr.login_failed(repeat('u', 257))$$) AS long_user;
SELECT throttle_error($$SELECT sessmgr.login_failed('u', NULL, repeat('a', 2049))$$) AS long_agent,
       throttle_error($$SELECT sessmgr.login_failed('u', NULL, NULL, NULL)$$) AS null_reason,
       throttle_error($$SELECT sessmgr.login_failed('u', NULL, NULL, '')$$) AS empty_reason,
       throttle_error($$SELECT sessmgr.login_failed('u', NULL, NULL, repeat('r', 65))$$) AS long_reason;
SELECT throttle_error($$SELECT sessmgr.login_delay(NULL)$$) AS null_user,
       throttle_error($$SELECT sessmgr.login_delay(repeat('u', 10000000))$$) AS huge_user,
       sessmgr.login_delay('u', NULL) AS null_ip;
SELECT throttle_error($$SELECT sessmgr.login_failures(NULL)$$) AS null_user,
       throttle_error($$SELECT sessmgr.unlock_account('')$$) AS empty_user;
SELECT count(*) AS nothing_recorded FROM sessmgr.login_attempts;

-- nobody but the extension reads or writes the table
SELECT has_table_privilege('public', 'sessmgr.login_attempts', 'SELECT') AS public_reads,
       has_function_privilege('public', 'sessmgr.login_failed(text, inet, text, text)', 'EXECUTE')
       AS public_executes;

TRUNCATE sessmgr.session_events, sessmgr.sessions, sessmgr.retired_tokens, sessmgr.session_owners;
DROP VIEW throttle_keys;
DROP FUNCTION throttle_error(text);
DROP FUNCTION throttle_wait(text);

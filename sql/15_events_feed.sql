--
-- The SIEM feed: sessmgr.events_since() (src/feed.c, docs/monitoring.md)
--
-- Ids, timestamps and session ids differ between runs: documents show
-- placeholders for them, and they are checked against the table instead.  The
-- concurrent half (an in-flight id is never skipped) is
-- test/isolation/specs/events_feed.spec.
--
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.err(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
RESET client_min_messages;

-- the events before this file's
SELECT coalesce(max(id), 0) AS base FROM sessmgr.session_events \gset

-- a document with placeholders for what changes from run to run
CREATE FUNCTION pg_temp.stable(d jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT CASE WHEN y #> '{sessmgr,details,session_created_at}' IS NULL THEN y
                ELSE jsonb_set(y, '{sessmgr,details,session_created_at}', '"(time)"') END
      FROM (SELECT CASE WHEN d #> '{sessmgr,session,id}' IS NULL THEN x
                        ELSE jsonb_set(x, '{sessmgr,session,id}', '"(uuid)"') END AS y
              FROM jsonb_set(jsonb_set(d, '{@timestamp}', '"(time)"'), '{event,sequence}', '"(id)"') AS x) s
$$;

------------------------------------------------------------------------------
-- One document per kind of event sessmgr writes
------------------------------------------------------------------------------
SET sessmgr.max_sessions = 1;
CREATE TEMP TABLE feed_s AS
SELECT * FROM sessmgr.issue('feed-ann', 'laptop',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
    '192.0.2.10');
SELECT session_id AS s1 FROM feed_s \gset
SELECT sessmgr.reauthenticate(:'s1', 'feed-ann', 'otp', 2) IS NOT NULL AS reauthenticated;
-- the cap of one evicts s1
INSERT INTO feed_s SELECT * FROM sessmgr.issue('feed-ann', 'phone');
SELECT session_id AS s2 FROM feed_s WHERE session_id <> :'s1' \gset
SELECT sessmgr.revoke(:'s2', 'feed-ann');
RESET sessmgr.max_sessions;

-- what sessmgr does not write itself yet, or only with a GeoIP database:
-- rows as their writers store them
INSERT INTO sessmgr.session_events
    (event, session_id, user_id, actor, ip, user_agent, device, browser, os,
     device_type, country_code, country, region, city, latitude, longitude,
     accuracy_radius_km, asn, details)
VALUES ('issue', gen_random_uuid(), 'feed-bob', 'app', '2001:db8::1',
        'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)', 'Mobile Safari on iOS',
        'Mobile Safari', 'iOS', 'mobile', 'DE', 'Germany', 'Berlin', 'Berlin',
        52.52, 13.405, 20, 64496, NULL);
INSERT INTO sessmgr.session_events (event, user_id, reason, actor, ip, details) VALUES
    ('login_failed', 'feed-bob', 'bad_credentials', 'anon', '198.51.100.7', '{"failures": 3}'),
    ('account_locked', 'feed-bob', 'too_many_failures', 'anon', NULL, '{"failures": 100}'),
    ('account_unlocked', 'feed-bob', 'admin', 'admin', NULL, NULL);
INSERT INTO sessmgr.session_events (event, session_id, user_id, reason, actor, actor_user_id, details) VALUES
    ('suspicious_login', gen_random_uuid(), 'feed-bob', NULL, 'anon', NULL,
     '{"reasons": ["new_country", "impossible_travel"]}'),
    ('session_confirmed', gen_random_uuid(), 'feed-bob', NULL, 'authenticated', 'feed-bob', NULL),
    ('expire', gen_random_uuid(), 'feed-bob', 'idle', 'postgres', NULL, NULL);
INSERT INTO sessmgr.session_events (event, user_id, actor) VALUES ('erased', 'feed-bob', 'admin');

SELECT d->'event'->>'action' AS action, pg_temp.stable(d) AS document
  FROM sessmgr.events_since(:base) AS d;

-- the varying fields: the cursor, the time in UTC, the session
SELECT count(*) AS events,
       bool_and((d->'event'->>'sequence')::bigint = e.id) AS sequence_is_id,
       bool_and(d->>'@timestamp' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$') AS utc_format,
       bool_and((d->>'@timestamp')::timestamptz = date_trunc('microseconds', e.occurred_at)) AS timestamp_is_occurred_at,
       bool_and((d->'sessmgr'->'session'->>'id')::uuid IS NOT DISTINCT FROM e.session_id) AS session_id
  FROM sessmgr.events_since(:base) AS d
  JOIN sessmgr.session_events e ON e.id = (d->'event'->>'sequence')::bigint;
-- whatever the session's time zone
SET TimeZone = 'America/Los_Angeles';
SELECT d->>'@timestamp' = to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS utc
  FROM sessmgr.events_since(:base, 1) AS d
  JOIN sessmgr.session_events e ON e.id = (d->'event'->>'sequence')::bigint;
RESET TimeZone;

------------------------------------------------------------------------------
-- Paging: in id order, max_rows at a time, nothing twice, nothing left out
------------------------------------------------------------------------------
CREATE TEMP TABLE feed_pages (page int, seq bigint);
SELECT set_config('feed.base', :'base', false) IS NOT NULL AS cursor_set;
DO $$
DECLARE
    cursor_id bigint := current_setting('feed.base')::bigint;
    page int := 0;
    n int;
BEGIN
    LOOP
        page := page + 1;
        INSERT INTO feed_pages
        SELECT page, (d->'event'->>'sequence')::bigint FROM sessmgr.events_since(cursor_id, 4) d;
        GET DIAGNOSTICS n = ROW_COUNT;
        EXIT WHEN n = 0 OR page > 10;
        SELECT max(seq) INTO cursor_id FROM feed_pages;
    END LOOP;
END
$$;
SELECT page, count(*) AS events FROM feed_pages GROUP BY page ORDER BY page;
SELECT array_agg(seq ORDER BY page, seq) = (SELECT array_agg(id ORDER BY id) FROM sessmgr.session_events WHERE id > :base)
       AS all_in_order_once
  FROM feed_pages;
-- past the end: nothing; NULL or a negative cursor: from the oldest event
SELECT count(*) AS past_end FROM sessmgr.events_since((SELECT max(id) FROM sessmgr.session_events));
SELECT (SELECT (d->'event'->>'sequence')::bigint FROM sessmgr.events_since(NULL, 1) d)
       = (SELECT min(id) FROM sessmgr.session_events) AS null_is_oldest,
       (SELECT (d->'event'->>'sequence')::bigint FROM sessmgr.events_since(-5, 1) d)
       = (SELECT min(id) FROM sessmgr.session_events) AS negative_is_oldest,
       (SELECT count(*) FROM sessmgr.events_since(NULL)) = least(1000, (SELECT count(*) FROM sessmgr.session_events))
       AS default_max_rows;

------------------------------------------------------------------------------
-- Bad input
------------------------------------------------------------------------------
SELECT pg_temp.err('SELECT sessmgr.events_since(0, NULL)') AS null_max_rows,
       pg_temp.err('SELECT sessmgr.events_since(0, 0)') AS zero,
       pg_temp.err('SELECT sessmgr.events_since(0, -1)') AS negative;
SELECT pg_temp.err('SELECT sessmgr.events_since(0, 10001)') AS over_limit,
       pg_temp.err('SELECT sessmgr.events_since(0, 2147483647)') AS huge,
       pg_temp.err('SELECT sessmgr.events_since(9223372036854775807, 10000)') AS max_cursor;
-- a snapshot older than the horizon: refused
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.err('SELECT sessmgr.events_since(0)') AS repeatable_read;
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT pg_temp.err('SELECT sessmgr.events_since(0)') AS serializable;
ROLLBACK;
-- ids handed out of order (a sequence cache): refused
BEGIN;
ALTER SEQUENCE sessmgr.session_events_id_seq CACHE 10;
SELECT pg_temp.err('SELECT sessmgr.events_since(0)') AS cached_sequence;
ROLLBACK;

------------------------------------------------------------------------------
-- The writers' side: one lock per transaction, taken before the first id
------------------------------------------------------------------------------
CREATE VIEW pg_temp.feed_locks AS
SELECT ((l.classid::bigint << 32) | l.objid::bigint) AS bound
  FROM pg_locks l
 WHERE l.locktype = 'advisory' AND l.objsubid = 24149 AND l.pid = pg_backend_pid()
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database());

BEGIN;
SELECT count(*) AS locks_before FROM pg_temp.feed_locks;
INSERT INTO sessmgr.session_events (event, user_id, actor) VALUES ('erased', 'feed-tx', 'admin');
INSERT INTO sessmgr.session_events (event, user_id, actor)
SELECT 'erased', 'feed-tx-' || i, 'admin' FROM generate_series(1, 3) i;
SELECT sessmgr.issue('feed-tx') IS NOT NULL AS issued;
-- one lock for the five events, its bound the first id of the transaction
SELECT count(*) AS locks, min(bound) = (SELECT min(id) FROM sessmgr.session_events WHERE user_id LIKE 'feed-tx%')
       AS bound_is_first_id
  FROM pg_temp.feed_locks;
-- the transaction's own uncommitted events are not in the feed
SELECT count(*) FILTER (WHERE d->'user'->>'id' LIKE 'feed-tx%') AS own_uncommitted
  FROM sessmgr.events_since(:base) d;
COMMIT;
SELECT count(*) AS locks_after_commit FROM pg_temp.feed_locks;
SELECT count(*) FILTER (WHERE d->'user'->>'id' LIKE 'feed-tx%') AS committed
  FROM sessmgr.events_since(:base) d;

-- a subtransaction that rolls back releases its lock; the next insert takes another
BEGIN;
SAVEPOINT a;
INSERT INTO sessmgr.session_events (event, user_id, actor) VALUES ('erased', 'feed-sub', 'admin');
SELECT count(*) AS locks_in_savepoint FROM pg_temp.feed_locks;
ROLLBACK TO SAVEPOINT a;
SELECT count(*) AS locks_after_rollback_to FROM pg_temp.feed_locks;
INSERT INTO sessmgr.session_events (event, user_id, actor) VALUES ('erased', 'feed-sub', 'admin');
SELECT count(*) AS locks, min(bound) <= (SELECT min(id) FROM sessmgr.session_events WHERE user_id = 'feed-sub')
       AS bound_below_id
  FROM pg_temp.feed_locks;
-- a subtransaction that commits hands its lock to the transaction
SAVEPOINT b;
RELEASE SAVEPOINT b;
SAVEPOINT c;
INSERT INTO sessmgr.session_events (event, user_id, actor) VALUES ('erased', 'feed-sub-c', 'admin');
RELEASE SAVEPOINT c;
SELECT count(*) AS locks_after_release FROM pg_temp.feed_locks;
ROLLBACK;

-- COPY, and sessions replicating (session_replication_role = replica), too
BEGIN;
COPY sessmgr.session_events (event, user_id, actor) FROM stdin;
erased	feed-copy	admin
\.
SELECT count(*) AS locks_after_copy FROM pg_temp.feed_locks;
ROLLBACK;
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO sessmgr.session_events (event, user_id, actor) VALUES ('erased', 'feed-replica', 'admin');
SELECT count(*) AS locks_as_replica FROM pg_temp.feed_locks;
ROLLBACK;

-- no SQL advisory lock can be taken for one of the feed's
BEGIN;
SELECT pg_advisory_xact_lock(0), pg_advisory_xact_lock(0, 0);
SELECT count(*) AS feed_locks FROM pg_temp.feed_locks;
ROLLBACK;

DELETE FROM sessmgr.session_events WHERE id > :base;
DELETE FROM sessmgr.sessions WHERE user_id = ANY ('{feed-ann,feed-tx}');
DELETE FROM sessmgr.session_owners WHERE user_id = ANY ('{feed-ann,feed-tx}');

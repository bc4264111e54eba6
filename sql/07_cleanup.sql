--
-- Cleanup: ended sessions past sessmgr.retention, events past
-- sessmgr.event_retention, idle session_owners rows; the run log and stats()
--
-- The earlier files leave sessions behind, so every check compares what
-- cleanup did with what a plain query over the whole table predicts.

-- bad arguments
CALL sessmgr.cleanup(0);
CALL sessmgr.cleanup(100001);
CALL sessmgr.cleanup(NULL);
SELECT sessmgr.schedule_cleanup(NULL);
SELECT sessmgr.schedule_cleanup(repeat('*', 300));

-- Ended means revoked, past the absolute lifetime, or idle past the idle
-- timeout, whichever came first; live means none of them.
CREATE FUNCTION cl_ended_at(s sessmgr.sessions) RETURNS timestamptz LANGUAGE sql
AS $$ SELECT least(s.revoked_at, s.expires_at, s.last_active_at + s.idle_timeout) $$;
CREATE FUNCTION cl_live(s sessmgr.sessions) RETURNS boolean LANGUAGE sql
AS $$ SELECT s.revoked_at IS NULL AND s.expires_at > now()
             AND s.last_active_at + s.idle_timeout > now() $$;

-- 200,000 sessions for 20,000 users, written straight into the table (the
-- triggers would only add an issue event and an owner row each).  Every
-- user has ten sessions of one kind; kinds 0-9 have ended, kinds 10-19 are
-- live.  Retention is 7 days:
--   0 revoked 8 days ago          go     5 idle-expired 6 days ago      stay
--   1 revoked 6 days ago          stay   6 idle-expired 1 hour ago      stay
--   2 expired 8 days ago          go     7 expired 7 days - 1 min ago   stay
--   3 expired 6 days ago          stay   8 expired 7 days + 1 min ago   go
--   4 idle-expired 8 days ago     go     9 idle-expired 7 days + 1 min  go
-- 10-19 live: issued an hour ago, or remembered and issued 25 days ago
-- (kinds 4, 5 and 9 are remembered sessions that went idle long before
-- their absolute lifetime, and nobody validated them again).
SET session_replication_role = replica;
INSERT INTO sessmgr.sessions
       (id, created_at, last_active_at, expires_at, idle_timeout, remember,
        token_hash, user_id, revoked_at, revoke_reason)
SELECT gen_random_uuid(), k.created_at, k.last_active_at, k.expires_at,
       CASE WHEN k.remember THEN interval '168 hours' ELSE interval '1 hour' END,
       k.remember, sha256(i::text::bytea), 'cl-' || (i % 20000),
       k.revoked_at, CASE WHEN k.revoked_at IS NOT NULL THEN 'logout' END
  FROM generate_series(1, 200000) i,
       LATERAL (SELECT now() AS t0, i % 20 AS kind) c,
       LATERAL (SELECT
         CASE c.kind
           WHEN 0 THEN c.t0 - interval '9 days'
           WHEN 1 THEN c.t0 - interval '7 days'
           WHEN 2 THEN c.t0 - interval '9 days'
           WHEN 3 THEN c.t0 - interval '7 days'
           WHEN 4 THEN c.t0 - interval '16 days'
           WHEN 5 THEN c.t0 - interval '14 days'
           WHEN 6 THEN c.t0 - interval '3 hours'
           WHEN 7 THEN c.t0 - interval '8 days'
           WHEN 8 THEN c.t0 - interval '8 days'
           WHEN 9 THEN c.t0 - interval '15 days'
           ELSE CASE WHEN c.kind % 2 = 0 THEN c.t0 - interval '1 hour'
                     ELSE c.t0 - interval '25 days' END
         END AS created_at,
         CASE c.kind
           WHEN 0 THEN c.t0 - interval '8 days 1 hour'
           WHEN 1 THEN c.t0 - interval '6 days 1 hour'
           WHEN 2 THEN c.t0 - interval '8 days 10 minutes'
           WHEN 3 THEN c.t0 - interval '6 days 10 minutes'
           WHEN 4 THEN c.t0 - interval '15 days'
           WHEN 5 THEN c.t0 - interval '13 days'
           WHEN 6 THEN c.t0 - interval '2 hours'
           WHEN 7 THEN c.t0 - interval '7 days 10 minutes'
           WHEN 8 THEN c.t0 - interval '7 days 10 minutes'
           WHEN 9 THEN c.t0 - interval '14 days 1 minute'
           ELSE CASE WHEN c.kind % 2 = 0 THEN c.t0 - interval '5 minutes'
                     ELSE c.t0 - interval '1 day' END
         END AS last_active_at,
         CASE c.kind
           WHEN 0 THEN c.t0 + interval '21 days'
           WHEN 1 THEN c.t0 + interval '23 days'
           WHEN 2 THEN c.t0 - interval '8 days'
           WHEN 3 THEN c.t0 - interval '6 days'
           WHEN 4 THEN c.t0 + interval '14 days'
           WHEN 5 THEN c.t0 + interval '16 days'
           WHEN 6 THEN c.t0 + interval '21 hours'
           WHEN 7 THEN c.t0 - interval '6 days 23 hours 59 minutes'
           WHEN 8 THEN c.t0 - interval '7 days 1 minute'
           WHEN 9 THEN c.t0 + interval '15 days'
           ELSE CASE WHEN c.kind % 2 = 0 THEN c.t0 + interval '23 hours'
                     ELSE c.t0 + interval '5 days' END
         END AS expires_at,
         c.kind IN (0, 1, 4, 5, 9) OR (c.kind >= 10 AND c.kind % 2 = 1) AS remember,
         CASE c.kind WHEN 0 THEN c.t0 - interval '8 days'
                     WHEN 1 THEN c.t0 - interval '6 days' END AS revoked_at
       ) k;
RESET session_replication_role;

-- the users' owner rows, all last issued 30 days ago, plus three users
-- without sessions: nothing for 10 days, issued yesterday, revoked 2 days ago
INSERT INTO sessmgr.session_owners (user_id, sessions_issued, last_issued_at)
SELECT 'cl-' || n, 10, now() - interval '30 days' FROM generate_series(0, 19999) n;
INSERT INTO sessmgr.session_owners (user_id, sessions_issued, last_issued_at, last_revoked_at)
VALUES ('cl-own-idle', 1, now() - interval '10 days', NULL),
       ('cl-own-issued', 1, now() - interval '1 day', NULL),
       ('cl-own-revoked', 1, now() - interval '10 days', now() - interval '2 days');

-- events: five at 91 days, three at 89 days (event retention is 90 days)
INSERT INTO sessmgr.session_events (occurred_at, event, session_id, user_id, actor)
SELECT now() - interval '1 day' * d, 'issue', gen_random_uuid(), 'cl-ev', 'cl'
  FROM unnest(ARRAY[91, 91, 91, 91, 91, 89, 89, 89]) d;

-- what should go, judged now over every row
CREATE TEMP TABLE cl_before AS
SELECT s.id, s.user_id, cl_live(s) AS live,
       cl_ended_at(s) < now() - interval '7 days' AS should_go
  FROM sessmgr.sessions s;
SELECT (i.kind % 20) AS kind, b.live, b.should_go, count(*)
  FROM cl_before b, LATERAL (SELECT substr(b.user_id, 4)::int AS kind) i
 WHERE b.user_id ~ '^cl-[0-9]+$'
 GROUP BY 1, 2, 3 ORDER BY 1;
CREATE TEMP TABLE cl_owners_before AS
SELECT o.user_id,
       greatest(o.last_issued_at, o.last_revoked_at) < now() - interval '7 days'
       AND NOT EXISTS (SELECT FROM sessmgr.sessions s
                        WHERE s.user_id = o.user_id AND s.revoked_at IS NULL AND cl_live(s))
       AS should_go
  FROM sessmgr.session_owners o;
CREATE TEMP TABLE cl_events_before AS
SELECT e.id, e.occurred_at < now() - interval '90 days' AS should_go
  FROM sessmgr.session_events e;

-- stats() sees the same before the run
SELECT s.active_sessions = (SELECT count(*) FROM cl_before WHERE live) AS active_ok,
       s.sessions_rows = (SELECT count(*) FROM cl_before) AS rows_ok,
       s.sessions_awaiting_cleanup = (SELECT count(*) FROM cl_before WHERE should_go) AS awaiting_ok,
       s.max_sessions_per_user >= 10 AS max_ok
  FROM sessmgr.stats() s;

-- one run removes exactly what should go, in batches of 1,000
CALL sessmgr.cleanup() \gset cl_run1_
SELECT :cl_run1_sessions_removed AS sessions_removed,
       :cl_run1_sessions_removed = (SELECT count(*) FROM cl_before WHERE should_go) AS sessions_ok,
       :cl_run1_events_removed = (SELECT count(*) FROM cl_events_before WHERE should_go) AS events_ok,
       :cl_run1_owners_removed = (SELECT count(*) FROM cl_owners_before WHERE should_go) AS owners_ok;
SELECT count(*) FILTER (WHERE b.should_go AND s.id IS NULL) AS removed,
       count(*) FILTER (WHERE b.should_go AND s.id IS NOT NULL) AS missed,
       count(*) FILTER (WHERE NOT b.should_go AND s.id IS NULL) AS wrongly_removed,
       count(*) FILTER (WHERE b.live AND s.id IS NULL) AS live_removed
  FROM cl_before b LEFT JOIN sessmgr.sessions s ON s.id = b.id;
-- by kind: 0, 2, 4, 8 and 9 are gone, the rest untouched
SELECT substr(s.user_id, 4)::int % 20 AS kind, count(*)
  FROM sessmgr.sessions s WHERE s.user_id ~ '^cl-[0-9]+$'
 GROUP BY 1 ORDER BY 1;
SELECT count(*) FILTER (WHERE b.should_go AND o.user_id IS NULL) AS owners_removed,
       count(*) FILTER (WHERE b.should_go AND o.user_id IS NOT NULL) AS owners_missed,
       count(*) FILTER (WHERE NOT b.should_go AND o.user_id IS NULL) AS owners_wrongly_removed
  FROM cl_owners_before b LEFT JOIN sessmgr.session_owners o ON o.user_id = b.user_id;
SELECT user_id FROM sessmgr.session_owners WHERE user_id LIKE 'cl-own-%' ORDER BY 1;
SELECT count(*) FILTER (WHERE b.should_go AND e.id IS NULL) AS events_removed,
       count(*) FILTER (WHERE b.should_go AND e.id IS NOT NULL) AS events_missed,
       count(*) FILTER (WHERE NOT b.should_go AND e.id IS NULL) AS events_wrongly_removed
  FROM cl_events_before b LEFT JOIN sessmgr.session_events e ON e.id = b.id;
SELECT count(*) AS cl_ev_events_left FROM sessmgr.session_events WHERE user_id = 'cl-ev';

-- the run is recorded, and stats() reports it
SELECT r.sessions_removed = :cl_run1_sessions_removed AS recorded_sessions,
       r.events_removed = :cl_run1_events_removed AS recorded_events,
       r.owners_removed = :cl_run1_owners_removed AS recorded_owners,
       r.finished_at >= r.started_at AS finished, r.actor
  FROM sessmgr.cleanup_runs r ORDER BY r.id DESC LIMIT 1;
SELECT s.last_cleanup_sessions_removed = :cl_run1_sessions_removed AS stats_last_run,
       s.sessions_awaiting_cleanup AS awaiting,
       s.active_sessions = (SELECT count(*) FROM cl_before WHERE live) AS active_unchanged,
       s.last_cleanup_finished_at IS NOT NULL AS finished
  FROM sessmgr.stats() s;

-- a second run finds nothing to do
CALL sessmgr.cleanup();

-- a shorter retention takes more: with 2 hours, everything that ended
-- before that, in batches of an odd size
SET sessmgr.retention = '2h';
CREATE TEMP TABLE cl_before2 AS
SELECT s.id, cl_live(s) AS live, cl_ended_at(s) < now() - interval '2 hours' AS should_go
  FROM sessmgr.sessions s;
CALL sessmgr.cleanup(batch_size => 997) \gset cl_run2_
SELECT :cl_run2_sessions_removed = (SELECT count(*) FROM cl_before2 WHERE should_go) AS sessions_ok,
       (SELECT count(*) FROM cl_before2 b JOIN sessmgr.sessions s USING (id) WHERE b.should_go) AS missed,
       (SELECT count(*) FROM cl_before2 b WHERE NOT b.should_go
           AND NOT EXISTS (SELECT FROM sessmgr.sessions s WHERE s.id = b.id)) AS wrongly_removed;
SELECT substr(s.user_id, 4)::int % 20 AS kind, count(*)
  FROM sessmgr.sessions s WHERE s.user_id ~ '^cl-[0-9]+$'
 GROUP BY 1 ORDER BY 1;

-- retention 0: a session goes as soon as it has ended, a live one never
SET sessmgr.retention = 0;
SELECT session_id AS cl_gone FROM sessmgr.issue('cl-zero') \gset
SELECT session_id AS cl_kept FROM sessmgr.issue('cl-zero') \gset
SELECT sessmgr.revoke_any(:'cl_gone');
CREATE TEMP TABLE cl_before3 AS
SELECT s.id FROM sessmgr.sessions s WHERE NOT cl_live(s);
CALL sessmgr.cleanup() \gset cl_run3_
SELECT :cl_run3_sessions_removed = (SELECT count(*) FROM cl_before3) AS all_ended_removed,
       (SELECT count(*) FROM sessmgr.sessions s WHERE NOT cl_live(s)) AS ended_left;
SELECT id = :'cl_kept' AS only_the_live_one_left FROM sessmgr.sessions WHERE user_id = 'cl-zero';
SELECT count(*) AS live_removed
  FROM cl_before b WHERE b.live AND NOT EXISTS (SELECT FROM sessmgr.sessions s WHERE s.id = b.id);
RESET sessmgr.retention;

-- inside a transaction block the run is part of the transaction
SET sessmgr.event_retention = 0;
SELECT count(*) AS cl_events FROM sessmgr.session_events \gset
BEGIN;
CALL sessmgr.cleanup() \gset cl_run4_
SELECT :cl_run4_events_removed = :cl_events AS all_events_removed,
       count(*) AS events_left_in_transaction
  FROM sessmgr.session_events;
ROLLBACK;
SELECT count(*) = :cl_events AS events_back FROM sessmgr.session_events;
RESET sessmgr.event_retention;

-- each batch runs under READ COMMITTED whatever the default
SET default_transaction_isolation = 'serializable';
CALL sessmgr.cleanup();
RESET default_transaction_isolation;

-- nobody may run them unless granted (PUBLIC has nothing)
CREATE ROLE cl_admin;
GRANT USAGE ON SCHEMA sessmgr TO cl_admin;
SET ROLE cl_admin;
CALL sessmgr.cleanup();
SELECT active_sessions FROM sessmgr.stats();
SELECT sessmgr.schedule_cleanup();
SELECT sessmgr.unschedule_cleanup();
RESET ROLE;
-- granted, an administrator runs them without any right on the tables
GRANT EXECUTE ON PROCEDURE sessmgr.cleanup(integer, bigint, bigint, bigint) TO cl_admin;
GRANT EXECUTE ON FUNCTION sessmgr.stats() TO cl_admin;
SET ROLE cl_admin;
CALL sessmgr.cleanup();
SELECT active_sessions > 0 AS sees_stats FROM sessmgr.stats();
SELECT count(*) FROM sessmgr.sessions;
RESET ROLE;
SELECT actor FROM sessmgr.cleanup_runs ORDER BY id DESC LIMIT 1;
REVOKE ALL ON SCHEMA sessmgr FROM cl_admin;
REVOKE ALL ON PROCEDURE sessmgr.cleanup(integer, bigint, bigint, bigint) FROM cl_admin;
REVOKE ALL ON FUNCTION sessmgr.stats() FROM cl_admin;
DROP ROLE cl_admin;

-- leave no trace for the files after this one
DELETE FROM sessmgr.sessions WHERE user_id LIKE 'cl-%';
DELETE FROM sessmgr.session_owners WHERE user_id LIKE 'cl-%';
DELETE FROM sessmgr.session_events WHERE user_id LIKE 'cl-%';
DROP FUNCTION cl_ended_at(sessmgr.sessions);
DROP FUNCTION cl_live(sessmgr.sessions);

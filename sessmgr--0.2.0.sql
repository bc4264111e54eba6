/* sessmgr--0.2.0.sql: sessmgr 0.2.0, complete (new installs); 0.1.0 installs update with sessmgr--0.1.0--0.2.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION sessmgr" to load this file. \quit

/*
 * Refuse a schema that some untrusted role prepared for us: its owner could
 * replace anything we create in it.  CREATE EXTENSION creates the schema as
 * the installing superuser when it does not exist yet.
 */
DO $guard$
DECLARE
    nsp_owner_is_superuser boolean;
BEGIN
    SELECT r.rolsuper INTO nsp_owner_is_superuser
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'sessmgr';
    IF NOT nsp_owner_is_superuser THEN
        RAISE EXCEPTION 'schema "sessmgr" is owned by a role that is not a superuser'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Drop the schema, or transfer it to a superuser, before CREATE EXTENSION sessmgr.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                WHERE NOT r.rolsuper
                  AND pg_catalog.has_schema_privilege(r.oid, 'sessmgr', 'CREATE'))
       OR pg_catalog.has_schema_privilege('public', 'sessmgr', 'CREATE') THEN
        RAISE EXCEPTION 'schema "sessmgr" lets a role that is not a superuser create objects'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Revoke CREATE on schema sessmgr from every other role before CREATE EXTENSION sessmgr.';
    END IF;
END
$guard$;

/*
 * One row per session.  Fixed-width columns come first so that the
 * validation hot path deforms them at cached offsets.  token_hash is
 * SHA-256(session id || secret); the secret itself is never stored.
 * Refreshing rotates the token: token_gen is a random tag of the current
 * token that access tokens carry, and the previous token's hash and tag are
 * kept for the grace window and for the access tokens minted before the
 * rotation.
 * Timeouts are fixed at issuance; idle_timeout is an exact duration (no
 * calendar days or months), so time zones and DST never change it.
 */
CREATE TABLE sessmgr.sessions (
    -- read by every validation: fixed-width first, then the two it compares
    id              uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_active_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at      timestamptz NOT NULL,
    idle_timeout    interval    NOT NULL,
    token_gen       bigint      NOT NULL DEFAULT 0,
    remember        boolean     NOT NULL DEFAULT false,
    token_hash      bytea       NOT NULL,
    user_id         text        NOT NULL,
    revoked_at      timestamptz,
    prev_token_gen  bigint,
    -- the rest
    revoke_reason   text,
    rotated_at      timestamptz,
    prev_token_hash bytea,
    device_name     text,
    user_agent      text,
    ip              inet,
    location        text,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    -- derived at issuance from the user agent and the address (src/useragent.c,
    -- src/geoip.c); NULL where unknown
    device             text,
    browser            text,
    os                 text,
    device_type        text,
    country_code       text,
    country            text,
    region             text,
    city               text,
    latitude           double precision,
    longitude          double precision,
    accuracy_radius_km integer,
    asn                bigint,
    -- the User-Agent Client Hints the session was issued with, for refresh_devices
    client_hints       jsonb,
    -- step-up (src/stepup.c, docs/stepup.md): when the user last proved who
    -- they are, at which assurance level (0: unconfirmed) and by which methods
    authenticated_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    aal                smallint    NOT NULL DEFAULT 1,
    amr                text[]      NOT NULL DEFAULT '{}',
    -- account protection (src/risk.c, docs/protecting-accounts.md): why the
    -- login looked suspicious when it was issued; empty when it did not
    risk               text[]      NOT NULL DEFAULT '{}',
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_token_hash_check
        CHECK (pg_catalog.octet_length(token_hash) OPERATOR(pg_catalog.=) 32),
    CONSTRAINT sessions_user_id_check
        CHECK (pg_catalog.octet_length(user_id) OPERATOR(pg_catalog.>) 0
               AND pg_catalog.octet_length(user_id) OPERATOR(pg_catalog.<=) 256),
    CONSTRAINT sessions_lifetime_check
        CHECK (expires_at OPERATOR(pg_catalog.>) created_at),
    CONSTRAINT sessions_idle_timeout_check
        CHECK (idle_timeout OPERATOR(pg_catalog.>) '0'::interval
               AND pg_catalog.date_part('day', idle_timeout) OPERATOR(pg_catalog.=) 0
               AND pg_catalog.date_part('month', idle_timeout) OPERATOR(pg_catalog.=) 0),
    CONSTRAINT sessions_revoked_check
        CHECK ((revoked_at IS NULL) OPERATOR(pg_catalog.=) (revoke_reason IS NULL)),
    CONSTRAINT sessions_revoke_reason_check
        CHECK (pg_catalog.octet_length(revoke_reason) OPERATOR(pg_catalog.<=) 64),
    CONSTRAINT sessions_device_name_check
        CHECK (pg_catalog.octet_length(device_name) OPERATOR(pg_catalog.<=) 256),
    CONSTRAINT sessions_user_agent_check
        CHECK (pg_catalog.octet_length(user_agent) OPERATOR(pg_catalog.<=) 2048),
    CONSTRAINT sessions_location_check
        CHECK (pg_catalog.octet_length(location) OPERATOR(pg_catalog.<=) 256),
    CONSTRAINT sessions_metadata_check
        CHECK (pg_catalog.jsonb_typeof(metadata) OPERATOR(pg_catalog.=) 'object'),
    CONSTRAINT sessions_aal_check
        CHECK (aal OPERATOR(pg_catalog.>=) 0 AND aal OPERATOR(pg_catalog.<=) 3),
    CONSTRAINT sessions_amr_check
        CHECK (pg_catalog.cardinality(amr) OPERATOR(pg_catalog.<=) 16)
);

COMMENT ON TABLE sessmgr.sessions IS
    'One row per session; only a hash of each token is kept.';

-- a user's live sessions: the cap, listing and revoke_all
CREATE INDEX sessions_user_active_idx ON sessmgr.sessions (user_id, created_at)
    WHERE revoked_at IS NULL;

/*
 * One row per user that was ever issued a session.  Every change to a user's
 * sessions first locks the user's row here, and issuance and revocation
 * update it; that makes the cap race-free at every isolation level and gives
 * all writers one lock order (see src/triggers.c).
 */
CREATE TABLE sessmgr.session_owners (
    user_id         text        NOT NULL,
    sessions_issued bigint      NOT NULL DEFAULT 0,
    last_issued_at  timestamptz,
    last_revoked_at timestamptz,
    CONSTRAINT session_owners_pkey PRIMARY KEY (user_id)
);

COMMENT ON TABLE sessmgr.session_owners IS
    'Per-user issuance counter and lock that serializes the session cap.';

/* The audit trail: one row per issuance, revocation and cap eviction. */
CREATE TABLE sessmgr.session_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    occurred_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    event       text        NOT NULL,
    session_id  uuid,       -- NULL for events about an account (login_failed, ...)
    user_id     text        NOT NULL,
    reason      text,
    actor       name        NOT NULL,
    ip          inet,
    actor_user_id text,
    -- an issue event's device and place, so that history outlives the session
    user_agent         text,
    device             text,
    browser            text,
    os                 text,
    device_type        text,
    country_code       text,
    country            text,
    region             text,
    city               text,
    latitude           double precision,
    longitude          double precision,
    accuracy_radius_km integer,
    asn                bigint,
    -- what else the event has to say (login_failed: counts; suspicious_login: reasons)
    details            jsonb,
    CONSTRAINT session_events_pkey PRIMARY KEY (id),
    CONSTRAINT session_events_event_check
        CHECK (event OPERATOR(pg_catalog.=) ANY (ARRAY['issue', 'revoke', 'evict', 'reauthenticate', 'expire',
                            'login_failed', 'account_locked', 'account_unlocked',
                            'suspicious_login', 'session_confirmed', 'erased']::text[]))
);

COMMENT ON TABLE sessmgr.session_events IS
    'Audit trail: issue, revoke and evict events, with the role that caused them.';

COMMENT ON COLUMN sessmgr.session_events.actor IS
    'The role the client ran as: its login role, or the role it switched to with SET ROLE (PostgREST: the request''s role); SECURITY DEFINER functions in between do not change it.';
COMMENT ON COLUMN sessmgr.session_events.actor_user_id IS
    'The user of the session the caller had authenticated with in the transaction (authenticate, pre_request), or NULL.';

CREATE INDEX session_events_session_idx ON sessmgr.session_events (session_id);
CREATE INDEX session_events_user_idx ON sessmgr.session_events (user_id, occurred_at);

-- the tables hold state, not definitions: pg_dump must dump their rows
SELECT pg_catalog.pg_extension_config_dump('sessmgr.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.session_owners', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.session_events', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.session_events_id_seq', '');

/* Triggers: the cap, finality of ended sessions, the audit trail. */

CREATE FUNCTION sessmgr.sessions_enforce_cap() RETURNS trigger
    AS 'MODULE_PATHNAME', 'sessmgr_sessions_enforce_cap'
    LANGUAGE C;

CREATE FUNCTION sessmgr.sessions_guard_ended() RETURNS trigger
    AS 'MODULE_PATHNAME', 'sessmgr_sessions_guard_ended'
    LANGUAGE C;

CREATE FUNCTION sessmgr.sessions_audit() RETURNS trigger
    AS 'MODULE_PATHNAME', 'sessmgr_sessions_audit'
    LANGUAGE C;

CREATE TRIGGER sessions_enforce_cap
    BEFORE INSERT ON sessmgr.sessions
    FOR EACH ROW EXECUTE FUNCTION sessmgr.sessions_enforce_cap();

CREATE TRIGGER sessions_guard_ended
    BEFORE UPDATE ON sessmgr.sessions
    FOR EACH ROW EXECUTE FUNCTION sessmgr.sessions_guard_ended();

CREATE TRIGGER sessions_audit_issue
    AFTER INSERT ON sessmgr.sessions
    FOR EACH ROW EXECUTE FUNCTION sessmgr.sessions_audit();

CREATE TRIGGER sessions_audit_end
    AFTER UPDATE OF revoked_at ON sessmgr.sessions
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION sessmgr.sessions_audit();

/* The API. */

CREATE FUNCTION sessmgr.issue(
    user_id      text,
    device_name  text    DEFAULT NULL,
    user_agent   text    DEFAULT NULL,
    ip           inet    DEFAULT NULL,
    location     text    DEFAULT NULL,
    remember     boolean DEFAULT false,
    metadata     jsonb   DEFAULT '{}',
    client_hints jsonb   DEFAULT NULL,
    device_cookie text   DEFAULT NULL)
RETURNS TABLE (session_id uuid, token text, expires_at timestamptz, access_token text)
    AS 'MODULE_PATHNAME', 'sessmgr_issue'
    LANGUAGE C VOLATILE ROWS 1;

COMMENT ON FUNCTION sessmgr.issue(text, text, text, inet, text, boolean, jsonb, jsonb, text) IS
    'Issue a session for an authenticated user, with its device and place; returns its token (once) and an access token.';

CREATE FUNCTION sessmgr.validate(token text)
RETURNS TABLE (session_id uuid, user_id text, expires_at timestamptz)
    AS 'MODULE_PATHNAME', 'sessmgr_validate'
    LANGUAGE C VOLATILE STRICT ROWS 1;

COMMENT ON FUNCTION sessmgr.validate(text) IS
    'One row for the token of an active session, none otherwise; slides its activity.';

CREATE FUNCTION sessmgr.authenticate(token text) RETURNS text
    AS 'MODULE_PATHNAME', 'sessmgr_authenticate'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.authenticate(text) IS
    'Validate a token and make its user the transaction''s identity; returns the user id or NULL.';

CREATE FUNCTION sessmgr.current_user_id() RETURNS text
    AS 'MODULE_PATHNAME', 'sessmgr_current_user_id'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION sessmgr.current_user_id() IS
    'The user authenticated in this transaction, or NULL.';

CREATE FUNCTION sessmgr.current_session_id() RETURNS uuid
    AS 'MODULE_PATHNAME', 'sessmgr_current_session_id'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION sessmgr.current_session_id() IS
    'The session authenticated in this transaction, or NULL.';

CREATE FUNCTION sessmgr.revoke(
    session_id uuid,
    user_id    text,
    reason     text DEFAULT 'logout')
RETURNS boolean
    AS 'MODULE_PATHNAME', 'sessmgr_revoke'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.revoke(uuid, text, text) IS
    'End one of user_id''s sessions; true if this call ended it.';

CREATE FUNCTION sessmgr.revoke_any(session_id uuid, reason text DEFAULT 'admin')
RETURNS boolean
    AS 'MODULE_PATHNAME', 'sessmgr_revoke_any'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.revoke_any(uuid, text) IS
    'Administrators: end any session; true if this call ended it.';

CREATE FUNCTION sessmgr.revoke_all(
    user_id        text,
    except_session uuid DEFAULT NULL,
    reason         text DEFAULT 'logout_all')
RETURNS integer
    AS 'MODULE_PATHNAME', 'sessmgr_revoke_all'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.revoke_all(text, uuid, text) IS
    'End every active session of a user, optionally but one; returns how many.';

/*
 * The rule of a live session, the one place it is written in SQL (its C
 * twin is SessmgrSessionIsLive in src/session.c): not revoked, within its
 * absolute lifetime, and active within its idle timeout, at time at_time.
 * The planner inlines it, so a query that uses it still matches
 * sessions_user_active_idx.  A pure predicate on its arguments, executable
 * by everyone, so that the views that use it work for whoever may read them.
 */
CREATE FUNCTION sessmgr.session_is_live(revoked_at timestamptz, expires_at timestamptz,
                                        last_active_at timestamptz, idle_timeout interval,
                                        at_time timestamptz)
RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN revoked_at IS NULL
       AND expires_at OPERATOR(pg_catalog.>) at_time
       AND last_active_at OPERATOR(pg_catalog.+) idle_timeout OPERATOR(pg_catalog.>) at_time;

COMMENT ON FUNCTION sessmgr.session_is_live(timestamptz, timestamptz, timestamptz, interval, timestamptz) IS
    'Whether a session with these columns is live at at_time: not revoked, not expired, not idle.';

/*
 * Every user's active sessions, for administrators.  A view runs with its
 * owner's rights, so SELECT on it does not give access to sessions itself,
 * and it leaves out the token hashes.
 */
CREATE VIEW sessmgr.active_sessions AS
SELECT s.id,
       s.user_id,
       s.device_name,
       s.user_agent,
       s.ip,
       s.location,
       s.metadata,
       s.remember AS is_remembered,
       s.created_at,
       s.last_active_at,
       s.expires_at,
       s.device,
       s.browser,
       s.os,
       s.device_type,
       s.country_code,
       s.city,
       s.risk
  FROM sessmgr.sessions s
 WHERE sessmgr.session_is_live(s.revoked_at, s.expires_at, s.last_active_at,
                               s.idle_timeout, pg_catalog.now());

COMMENT ON VIEW sessmgr.active_sessions IS
    'Every user''s active sessions (no token hashes), for administrators.';

CREATE FUNCTION sessmgr.list_sessions(user_id text, current_session uuid DEFAULT NULL)
RETURNS TABLE (id uuid, device_name text, user_agent text, ip inet, location text,
               created_at timestamptz, last_active_at timestamptz,
               expires_at timestamptz, is_current boolean, is_remembered boolean,
               device text, browser text, os text, device_type text,
               country_code text, city text, risk text[])
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.id, a.device_name, a.user_agent, a.ip, a.location,
           a.created_at, a.last_active_at, a.expires_at,
           coalesce(a.id OPERATOR(pg_catalog.=) $2, false),
           a.is_remembered,
           a.device, a.browser, a.os, a.device_type, a.country_code, a.city, a.risk
      FROM sessmgr.active_sessions a
     WHERE a.user_id OPERATOR(pg_catalog.=) $1
     ORDER BY a.last_active_at DESC, a.created_at DESC, a.id
$$;

COMMENT ON FUNCTION sessmgr.list_sessions(text, uuid) IS
    'A user''s active sessions, most recently active first, the current one marked.';

/* ---- cleanup, retention, change notifications, health ---- */

/*
 * Cleanup walks sessions in (expires_at, id) order and events in
 * (occurred_at, id) order, a batch at a time, so that a run reads each row
 * once (src/cleanup.c).  Neither column ever changes, and last_active_at
 * stays out of every index, so the activity touch remains a HOT update.
 */
CREATE INDEX sessions_expires_at_idx ON sessmgr.sessions (expires_at, id);
CREATE INDEX session_events_occurred_at_idx ON sessmgr.session_events (occurred_at, id);

/* One row per cleanup run: when, by whom, and what it removed. */
CREATE TABLE sessmgr.cleanup_runs (
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    sessions_removed bigint      NOT NULL DEFAULT 0,
    events_removed   bigint      NOT NULL DEFAULT 0,
    owners_removed   bigint      NOT NULL DEFAULT 0,
    actor            name        NOT NULL,
    CONSTRAINT cleanup_runs_pkey PRIMARY KEY (id)
);

COMMENT ON TABLE sessmgr.cleanup_runs IS
    'Cleanup runs (kept for sessmgr.event_retention); finished_at is NULL while running or after a failure.';

SELECT pg_catalog.pg_extension_config_dump('sessmgr.cleanup_runs', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.cleanup_runs_id_seq', '');

CREATE PROCEDURE sessmgr.cleanup(
    batch_size             integer DEFAULT 1000,
    INOUT sessions_removed bigint  DEFAULT NULL,
    INOUT events_removed   bigint  DEFAULT NULL,
    INOUT owners_removed   bigint  DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'sessmgr_cleanup'
    LANGUAGE C;

COMMENT ON PROCEDURE sessmgr.cleanup(integer, bigint, bigint, bigint) IS
    'Remove sessions ended longer ago than sessmgr.retention and events older than sessmgr.event_retention, in batches.';

-- REVOKE ... ON ALL FUNCTIONS below does not cover procedures
REVOKE ALL ON PROCEDURE sessmgr.cleanup(integer, bigint, bigint, bigint) FROM PUBLIC;

CREATE FUNCTION sessmgr.schedule_cleanup(schedule text DEFAULT '*/5 * * * *') RETURNS bigint
    AS 'MODULE_PATHNAME', 'sessmgr_schedule_cleanup'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.schedule_cleanup(text) IS
    'Have pg_cron run CALL sessmgr.cleanup() in this database on a schedule; returns the job id.';

CREATE FUNCTION sessmgr.unschedule_cleanup() RETURNS boolean
    AS 'MODULE_PATHNAME', 'sessmgr_unschedule_cleanup'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.unschedule_cleanup() IS
    'Remove this database''s cleanup job from pg_cron; false if there was none.';

/*
 * DROP EXTENSION sessmgr must not leave pg_cron running a command that no
 * longer exists.  ddl_command_start is the last moment the extension's own
 * code still exists during its DROP.
 */
CREATE FUNCTION sessmgr.unschedule_cleanup_on_drop() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'sessmgr_unschedule_cleanup_on_drop'
    LANGUAGE C;

CREATE EVENT TRIGGER sessmgr_unschedule_cleanup_on_drop
    ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION sessmgr.unschedule_cleanup_on_drop();

/*
 * Health figures for monitoring, in one row.  Reads every session row (and
 * no event row), so poll it every minute or so, not per request.
 */
CREATE FUNCTION sessmgr.stats(
    OUT active_sessions                  bigint,
    OUT users_with_active_sessions       bigint,
    OUT max_sessions_per_user            bigint,
    OUT p50_sessions_per_user            double precision,
    OUT p95_sessions_per_user            double precision,
    OUT oldest_active_session_created_at timestamptz,
    OUT ended_last_24h                   jsonb,
    OUT sessions_rows                    bigint,
    OUT sessions_awaiting_cleanup        bigint,
    OUT sessions_table_bytes             bigint,
    OUT sessions_index_bytes             bigint,
    OUT sessions_dead_tuples             bigint,
    OUT events_table_bytes               bigint,
    OUT events_index_bytes               bigint,
    OUT events_dead_tuples               bigint,
    OUT owners_table_bytes               bigint,
    OUT owners_dead_tuples               bigint,
    OUT last_cleanup_started_at          timestamptz,
    OUT last_cleanup_finished_at         timestamptz,
    OUT last_cleanup_sessions_removed    bigint,
    OUT last_cleanup_events_removed      bigint,
    OUT last_cleanup_owners_removed      bigint,
    OUT notification_queue_usage         double precision)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    retention interval;
BEGIN
    -- the sessmgr.* settings exist once the library is loaded in this backend
    PERFORM sessmgr.current_session_id();
    SELECT make_interval(secs => s.setting::double precision) INTO retention
      FROM pg_settings s WHERE s.name OPERATOR(pg_catalog.=) 'sessmgr.retention';

    WITH s AS (
        SELECT x.user_id, x.created_at, x.revoked_at, x.revoke_reason, x.expires_at,
               x.last_active_at OPERATOR(pg_catalog.+) x.idle_timeout AS idle_end,
               sessmgr.session_is_live(x.revoked_at, x.expires_at, x.last_active_at,
                                       x.idle_timeout, now()) AS live
          FROM sessmgr.sessions x
    ), judged AS (
        SELECT s.*,
               least(s.revoked_at, s.expires_at, s.idle_end) AS ended_at,
               CASE WHEN s.revoked_at IS NOT NULL
                         AND s.revoked_at OPERATOR(pg_catalog.<=) least(s.expires_at, s.idle_end)
                    THEN 'revoked'
                    WHEN s.idle_end OPERATOR(pg_catalog.<) s.expires_at THEN 'idle_timeout'
                    ELSE 'absolute_timeout' END AS how
          FROM s
    ), per_user AS (
        SELECT j.user_id, count(*) AS n FROM judged j WHERE j.live GROUP BY j.user_id
    ), ended AS (
        SELECT j.how, j.revoke_reason, count(*) AS n
          FROM judged j
         WHERE NOT j.live
           AND j.ended_at OPERATOR(pg_catalog.>) (now() OPERATOR(pg_catalog.-) interval '24 hours')
         GROUP BY j.how, j.revoke_reason
    )
    SELECT (SELECT count(*) FROM judged j WHERE j.live),
           (SELECT count(*) FROM per_user),
           (SELECT max(p.n) FROM per_user p),
           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY p.n) FROM per_user p),
           (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY p.n) FROM per_user p),
           (SELECT min(j.created_at) FROM judged j WHERE j.live),
           (SELECT jsonb_build_object(
                'revoked', coalesce((SELECT jsonb_object_agg(e.revoke_reason, e.n)
                                       FROM ended e WHERE e.how OPERATOR(pg_catalog.=) 'revoked'),
                                    '{}'::jsonb),
                'idle_timeout', coalesce((SELECT sum(e.n) FROM ended e
                                           WHERE e.how OPERATOR(pg_catalog.=) 'idle_timeout'), 0),
                'absolute_timeout', coalesce((SELECT sum(e.n) FROM ended e
                                               WHERE e.how OPERATOR(pg_catalog.=) 'absolute_timeout'), 0))),
           (SELECT count(*) FROM judged),
           (SELECT count(*) FROM judged j
             WHERE j.ended_at OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) retention))
      INTO active_sessions, users_with_active_sessions, max_sessions_per_user,
           p50_sessions_per_user, p95_sessions_per_user, oldest_active_session_created_at,
           ended_last_24h, sessions_rows, sessions_awaiting_cleanup;

    sessions_table_bytes := pg_table_size('sessmgr.sessions');
    sessions_index_bytes := pg_indexes_size('sessmgr.sessions');
    sessions_dead_tuples := pg_stat_get_dead_tuples('sessmgr.sessions'::regclass);
    events_table_bytes := pg_table_size('sessmgr.session_events');
    events_index_bytes := pg_indexes_size('sessmgr.session_events');
    events_dead_tuples := pg_stat_get_dead_tuples('sessmgr.session_events'::regclass);
    owners_table_bytes := pg_table_size('sessmgr.session_owners');
    owners_dead_tuples := pg_stat_get_dead_tuples('sessmgr.session_owners'::regclass);

    -- the last run that finished: a run that failed never does
    SELECT r.started_at, r.finished_at, r.sessions_removed, r.events_removed, r.owners_removed
      INTO last_cleanup_started_at, last_cleanup_finished_at, last_cleanup_sessions_removed,
           last_cleanup_events_removed, last_cleanup_owners_removed
      FROM sessmgr.cleanup_runs r
     WHERE r.finished_at IS NOT NULL
     ORDER BY r.finished_at DESC
     LIMIT 1;

    notification_queue_usage := pg_notification_queue_usage();
END
$$;

COMMENT ON FUNCTION sessmgr.stats() IS
    'Health figures: active sessions, per-user spread, recent endings, sizes, dead tuples, last cleanup.';

/* ---- access tokens, refresh rotation, PostgREST exposure ---- */

/*
 * Signing keys for access tokens.  Only the extension reads this table;
 * sessmgr.jwks() hands the key set to an administrator for PostgREST's
 * jwt-secret.  A statement trigger makes every backend reload its key cache
 * when the table changes.
 */
CREATE TABLE sessmgr.signing_keys (
    kid        text        NOT NULL,
    alg        text        NOT NULL,
    secret     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    signs_from timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    retired_at timestamptz,
    CONSTRAINT signing_keys_pkey PRIMARY KEY (kid),
    CONSTRAINT signing_keys_kid_check
        CHECK (pg_catalog.octet_length(kid) OPERATOR(pg_catalog.>=) 1
               AND pg_catalog.octet_length(kid) OPERATOR(pg_catalog.<=) 64),
    CONSTRAINT signing_keys_alg_check
        CHECK (alg OPERATOR(pg_catalog.=) ANY (ARRAY['HS256', 'HS384', 'HS512']::text[])),
    CONSTRAINT signing_keys_secret_check
        CHECK (pg_catalog.octet_length(secret) OPERATOR(pg_catalog.>=) 32)
);

COMMENT ON TABLE sessmgr.signing_keys IS
    'Access-token signing keys; every unretired key verifies, the one with the latest due signs_from signs.';

SELECT pg_catalog.pg_extension_config_dump('sessmgr.signing_keys', '');

CREATE FUNCTION sessmgr.signing_keys_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'sessmgr_signing_keys_changed'
    LANGUAGE C;

CREATE TRIGGER signing_keys_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sessmgr.signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION sessmgr.signing_keys_changed();

/*
 * Hashes of session tokens replaced by a refresh (older than the previous
 * one, which the session row keeps).  Presenting one again is reuse.
 */
CREATE TABLE sessmgr.retired_tokens (
    token_hash  bytea       NOT NULL,
    session_id  uuid        NOT NULL,
    retired_at  timestamptz NOT NULL,
    token_gen   bigint,
    CONSTRAINT retired_tokens_pkey PRIMARY KEY (token_hash),
    CONSTRAINT retired_tokens_session_fkey FOREIGN KEY (session_id)
        REFERENCES sessmgr.sessions (id) ON DELETE CASCADE
);

COMMENT ON TABLE sessmgr.retired_tokens IS
    'Hashes of rotated-out session tokens, for refresh-token reuse detection.';

-- refresh keeps the newest 100 per session, found through this index
CREATE INDEX retired_tokens_session_idx ON sessmgr.retired_tokens (session_id, retired_at);

COMMENT ON COLUMN sessmgr.retired_tokens.token_gen IS
    'The gen tag of the retired token: its access tokens verify until they expire.';
COMMENT ON COLUMN sessmgr.retired_tokens.retired_at IS
    'When the token stopped being the session''s current token; refreshable for sessmgr.refresh_grace after that.';

SELECT pg_catalog.pg_extension_config_dump('sessmgr.retired_tokens', '');

CREATE FUNCTION sessmgr.refresh(token text)
RETURNS TABLE (status text, session_id uuid, token text, access_token text,
               expires_at timestamptz)
    AS 'MODULE_PATHNAME', 'sessmgr_refresh'
    LANGUAGE C VOLATILE ROWS 1;

COMMENT ON FUNCTION sessmgr.refresh(text) IS
    'Rotate a session token: status ok (new token and access token), invalid, expired or reuse_detected.';

CREATE FUNCTION sessmgr.verify_access_token(jwt text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'sessmgr_verify_access_token'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.verify_access_token(text) IS
    'The claims of a valid access token of an active session, NULL otherwise.';

CREATE FUNCTION sessmgr.rotate_signing_key(algorithm text DEFAULT 'HS256',
                                           signs_from timestamptz DEFAULT NULL)
RETURNS text
    AS 'MODULE_PATHNAME', 'sessmgr_rotate_signing_key'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.rotate_signing_key(text, timestamptz) IS
    'Add a key that verifies now and signs from signs_from (default now); returns its kid.';

CREATE FUNCTION sessmgr.retire_signing_key(kid text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sessmgr.signing_keys k
                    WHERE k.kid OPERATOR(pg_catalog.=) retire_signing_key.kid
                      AND k.retired_at IS NULL) THEN
        RETURN false;           -- unknown, NULL or already retired
    END IF;
    IF NOT EXISTS (SELECT 1 FROM sessmgr.signing_keys k
                    WHERE k.kid OPERATOR(pg_catalog.<>) retire_signing_key.kid
                      AND k.retired_at IS NULL
                      AND k.signs_from OPERATOR(pg_catalog.<=) clock_timestamp()) THEN
        RAISE EXCEPTION 'cannot retire the last signing key'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add a new key with sessmgr.rotate_signing_key() first.';
    END IF;
    UPDATE sessmgr.signing_keys k SET retired_at = clock_timestamp()
     WHERE k.kid OPERATOR(pg_catalog.=) retire_signing_key.kid AND k.retired_at IS NULL;
    RETURN FOUND;
END
$$;

COMMENT ON FUNCTION sessmgr.retire_signing_key(text) IS
    'Stop a key from verifying access tokens; true if it was in use.';

CREATE FUNCTION sessmgr.jwks() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('keys', coalesce(jsonb_agg(jsonb_build_object(
               'kty', 'oct',
               'kid', k.kid,
               'alg', k.alg,
               'use', 'sig',
               'k', rtrim(translate(encode(k.secret, 'base64'), E'+/\n', '-_'), '='))
               ORDER BY k.signs_from DESC, k.created_at), '[]'::jsonb))
      FROM sessmgr.signing_keys k
     WHERE k.retired_at IS NULL
$$;

COMMENT ON FUNCTION sessmgr.jwks() IS
    'The unretired signing keys as a JWKS document for PostgREST''s jwt-secret (secret: admins only).';

-- the first signing key; it signs "from the beginning", so that any key a
-- restored dump brings (with its real signs_from) takes precedence over it
SELECT sessmgr.rotate_signing_key('HS256', '-infinity');

/*
 * Helpers for the PostgREST endpoints (not exposed: they live in sessmgr).
 */

/*
 * The client address of a PostgREST request: with N trusted proxies that
 * each append the address they saw to X-Forwarded-For, the N-th hop from the
 * right (what the outermost trusted proxy saw), or the leftmost hop when
 * there are fewer.  Hops before it were sent by the client and prove
 * nothing.  NULL when no proxy is trusted or the hop is not an address.
 */
CREATE FUNCTION sessmgr.request_ip() RETURNS inet
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trusted int := coalesce(current_setting('sessmgr.trusted_proxies', true)::int, 0);
    hops text[];
    hop text;
BEGIN
    IF trusted OPERATOR(pg_catalog.<=) 0 THEN
        RETURN NULL;
    END IF;
    hops := string_to_array(nullif(current_setting('request.headers', true), '')::json
                            ->> 'x-forwarded-for', ',');
    IF coalesce(cardinality(hops), 0) OPERATOR(pg_catalog.=) 0 THEN
        RETURN NULL;
    END IF;
    hop := btrim(hops[greatest(1, cardinality(hops) OPERATOR(pg_catalog.-) trusted
                                  OPERATOR(pg_catalog.+) 1)]);
    IF hop OPERATOR(pg_catalog.!~) '^[0-9A-Fa-f:.]{2,45}$' THEN
        RETURN NULL;
    END IF;
    RETURN hop::inet;
EXCEPTION WHEN invalid_text_representation OR invalid_parameter_value THEN
    RETURN NULL;
END
$$;

-- The refresh token of a request: the argument, else the session cookie.
CREATE FUNCTION sessmgr.request_refresh_token(refresh_token text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce($1, nullif(current_setting('request.cookies', true), '')::json
                        ->> '__Host-sessmgr_refresh')
$$;

-- Set (or, with a NULL token, clear) the session cookie of a browser app.
CREATE FUNCTION sessmgr.set_session_cookie(token text, expires_at timestamptz) RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT set_config('response.headers',
               json_build_array(json_build_object('Set-Cookie',
                   '__Host-sessmgr_refresh=' OPERATOR(pg_catalog.||) coalesce($1, '')
                   OPERATOR(pg_catalog.||) '; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age='
                   OPERATOR(pg_catalog.||) CASE WHEN $1 IS NULL THEN 0
                        ELSE greatest(0, floor(extract(epoch FROM $2 OPERATOR(pg_catalog.-)
                                                       clock_timestamp())))::bigint
                        END::text))::text,
               true)
$$;

-- The JSON body of a successful login or refresh.
CREATE FUNCTION sessmgr.session_response(session_id uuid, token text, access_token text,
                                         expires_at timestamptz, cookie boolean)
RETURNS json
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cookie THEN
        PERFORM sessmgr.set_session_cookie(token, expires_at);
    END IF;
    RETURN json_strip_nulls(json_build_object(
        'status', 'ok',
        'session_id', session_id,
        'access_token', access_token,
        'token_type', 'Bearer',
        'expires_in', least((SELECT setting::bigint FROM pg_settings
                              WHERE name OPERATOR(pg_catalog.=) 'sessmgr.access_token_ttl'),
                             floor(extract(epoch FROM expires_at OPERATOR(pg_catalog.-)
                                                   clock_timestamp()))::bigint),
        'refresh_token', CASE WHEN cookie THEN NULL ELSE token END,
        'session_expires_at', expires_at));
END
$$;

/*
 * Issue a session for the current PostgREST request, taking the user agent
 * and (when trusted) the client address from its headers.  For the
 * application's own login function, after it has checked the credentials.
 */
CREATE FUNCTION sessmgr.issue_from_request(user_id text, remember boolean DEFAULT false,
                                           device_name text DEFAULT NULL,
                                           location text DEFAULT NULL,
                                           cookie boolean DEFAULT false,
                                           metadata jsonb DEFAULT '{}')
RETURNS json
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
    ua text := headers ->> 'user-agent';
    -- User-Agent Client Hints, as sent (sessmgr.parse_user_agent reads them)
    hints jsonb := nullif(jsonb_strip_nulls(jsonb_build_object(
        'sec-ch-ua', headers -> 'sec-ch-ua',
        'sec-ch-ua-mobile', headers -> 'sec-ch-ua-mobile',
        'sec-ch-ua-platform', headers -> 'sec-ch-ua-platform',
        'sec-ch-ua-platform-version', headers -> 'sec-ch-ua-platform-version')), '{}');
    -- the browser's device cookie (only its hash is stored: src/risk.c)
    device_cookie text := nullif(current_setting('request.cookies', true), '')::json
                          ->> '__Host-sessmgr_device';
    response json;
BEGIN
    -- a user agent over the column's 2048 bytes is cut, on a character boundary
    ua := left(ua, 2048);
    WHILE octet_length(ua) OPERATOR(pg_catalog.>) 2048 LOOP
        ua := left(ua, -greatest(1, (octet_length(ua) OPERATOR(pg_catalog.-) 2048)
                                    OPERATOR(pg_catalog./) 4));
    END LOOP;
    -- a returning browser's device cookie, else a new random one (244 bits)
    IF device_cookie IS NULL OR device_cookie OPERATOR(pg_catalog.!~) '^[0-9a-f]{64}$' THEN
        device_cookie := replace(gen_random_uuid()::text OPERATOR(pg_catalog.||)
                                 gen_random_uuid()::text, '-', '');
    END IF;
    SELECT * INTO s
      FROM sessmgr.issue(issue_from_request.user_id, issue_from_request.device_name, ua,
                         sessmgr.request_ip(), issue_from_request.location,
                         issue_from_request.remember, issue_from_request.metadata, hints,
                         device_cookie);
    response := sessmgr.session_response(s.session_id, s.token, s.access_token, s.expires_at,
                                         issue_from_request.cookie);
    -- long-lived (400 days, browsers' limit), renewed at every login
    PERFORM set_config('response.headers',
        (coalesce(nullif(current_setting('response.headers', true), '')::jsonb, '[]'::jsonb)
         OPERATOR(pg_catalog.||) jsonb_build_array(jsonb_build_object('Set-Cookie',
             '__Host-sessmgr_device=' OPERATOR(pg_catalog.||) device_cookie
             OPERATOR(pg_catalog.||) '; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=34560000')))::text,
        true);
    RETURN response;
END
$$;

COMMENT ON FUNCTION sessmgr.issue_from_request(text, boolean, text, text, boolean, jsonb) IS
    'For a login function behind PostgREST: issue a session with the request''s user agent and address.';

/*
 * The PostgREST API: add sessmgr_api to db-schemas and
 * sessmgr_api.pre_request to db-pre-request.  Every endpoint is a thin
 * wrapper over the sessmgr functions; the sessmgr schema itself is never
 * exposed.
 */
CREATE SCHEMA sessmgr_api;

COMMENT ON SCHEMA sessmgr_api IS
    'PostgREST endpoints of sessmgr (db-schemas) and its pre-request check.';

CREATE FUNCTION sessmgr_api.pre_request() RETURNS void
    AS 'MODULE_PATHNAME', 'sessmgr_pre_request'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr_api.pre_request() IS
    'db-pre-request: 401 for an access token whose session has ended; sets the identity.';

-- The caller's identity, set by pre_request; 401 without one.
CREATE FUNCTION sessmgr.require_session() RETURNS uuid
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF sessmgr.current_session_id() IS NULL THEN
        RAISE SQLSTATE 'PGRST'
            USING MESSAGE = '{"code":"SM401","message":"no active session","details":null,"hint":"Configure sessmgr_api.pre_request as db-pre-request and send an access token."}',
                  DETAIL = '{"status":401,"headers":{"WWW-Authenticate":"Bearer"}}';
    END IF;
    RETURN sessmgr.current_session_id();
END
$$;

/*
 * PostgREST: a refresh or logout that would be rolled back (Prefer:
 * tx=rollback with db-tx-end = commit-allow-override) is refused, so that a
 * stolen refresh token cannot be tried for free: reuse detection revokes the
 * session, and that must commit.
 */
CREATE FUNCTION sessmgr.refuse_rollback_request() RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(nullif(current_setting('request.headers', true), '')::json ->> 'prefer', '')
       ~* '(^|[,;[:space:]])tx[[:space:]]*=[[:space:]]*"?rollback' THEN
        RAISE SQLSTATE 'PGRST' USING
            MESSAGE = '{"code":"SM400","message":"this request cannot be rolled back","details":"Login, refresh and logout always commit.","hint":"Send the request without Prefer: tx=rollback."}',
            DETAIL  = '{"status":400,"headers":{}}';
    END IF;
END
$$;

REVOKE ALL ON FUNCTION sessmgr.refuse_rollback_request() FROM PUBLIC;

CREATE FUNCTION sessmgr_api.refresh(refresh_token text DEFAULT NULL, cookie boolean DEFAULT false)
RETURNS json
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    presented text := sessmgr.request_refresh_token(refresh.refresh_token);
    use_cookie boolean := refresh.cookie OR refresh.refresh_token IS NULL;
    r record;
BEGIN
    PERFORM sessmgr.refuse_rollback_request();
    SELECT * INTO r FROM sessmgr.refresh(presented);
    IF r.status OPERATOR(pg_catalog.<>) 'ok' THEN
        -- a status, not an error: a reuse revocation must commit
        PERFORM set_config('response.status', '401', true);
        IF use_cookie THEN
            PERFORM sessmgr.set_session_cookie(NULL::text, NULL::timestamptz);
        END IF;
        RETURN json_build_object('status', r.status);
    END IF;
    RETURN sessmgr.session_response(r.session_id, r.token, r.access_token, r.expires_at,
                                    use_cookie);
END
$$;

COMMENT ON FUNCTION sessmgr_api.refresh(text, boolean) IS
    'POST /rpc/refresh (anonymous): rotate the refresh token from the body or the cookie.';

CREATE FUNCTION sessmgr_api.logout(refresh_token text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sid uuid := sessmgr.current_session_id();
    uid text := sessmgr.current_user_id();
    presented text;
BEGIN
    PERFORM sessmgr.refuse_rollback_request();
    IF sid IS NULL THEN
        presented := sessmgr.request_refresh_token(logout.refresh_token);
        SELECT v.session_id, v.user_id INTO sid, uid FROM sessmgr.validate(presented) v;
    END IF;
    IF sid IS NOT NULL THEN
        PERFORM sessmgr.revoke(sid, uid, 'logout'::text);
    END IF;
    PERFORM sessmgr.set_session_cookie(NULL::text, NULL::timestamptz);
END
$$;

COMMENT ON FUNCTION sessmgr_api.logout(text) IS
    'POST /rpc/logout: end the current session (access token, refresh token or cookie).';

CREATE FUNCTION sessmgr_api.my_sessions()
RETURNS TABLE (id uuid, device_name text, user_agent text, ip inet, location text,
               created_at timestamptz, last_active_at timestamptz,
               expires_at timestamptz, is_current boolean, is_remembered boolean,
               device text, browser text, os text, device_type text,
               country_code text, city text, risk text[])
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sid uuid := sessmgr.require_session();
BEGIN
    RETURN QUERY SELECT * FROM sessmgr.list_sessions(sessmgr.current_user_id(), sid);
END
$$;

COMMENT ON FUNCTION sessmgr_api.my_sessions() IS
    'GET /rpc/my_sessions: the caller''s active sessions, this one marked.';

CREATE FUNCTION sessmgr_api.revoke_session(session_id uuid) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sessmgr.require_session();
    PERFORM sessmgr.revoke(revoke_session.session_id, sessmgr.current_user_id(), 'logout'::text);
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE SQLSTATE 'PGRST'
        USING MESSAGE = '{"code":"22023","message":"invalid session id","details":null,"hint":null}',
              DETAIL = '{"status":404,"headers":{}}';
END
$$;

COMMENT ON FUNCTION sessmgr_api.revoke_session(uuid) IS
    'POST /rpc/revoke_session: end one of the caller''s sessions (404 for any other id).';

CREATE FUNCTION sessmgr_api.revoke_other_sessions() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sid uuid := sessmgr.require_session();
BEGIN
    RETURN sessmgr.revoke_all(sessmgr.current_user_id(), sid, 'logout_others'::text);
END
$$;

COMMENT ON FUNCTION sessmgr_api.revoke_other_sessions() IS
    'POST /rpc/revoke_other_sessions: end every other session of the caller; returns how many.';

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA sessmgr_api FROM PUBLIC;
REVOKE ALL ON SCHEMA sessmgr_api FROM PUBLIC;


/* Nothing is for PUBLIC: the DBA grants the API to application roles. */
REVOKE ALL ON ALL TABLES IN SCHEMA sessmgr FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA sessmgr FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA sessmgr FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA sessmgr FROM PUBLIC;
REVOKE ALL ON SCHEMA sessmgr FROM PUBLIC;

-- the one exception: a pure predicate the views call for whoever reads them
GRANT EXECUTE ON FUNCTION sessmgr.session_is_live(timestamptz, timestamptz, timestamptz, interval, timestamptz) TO PUBLIC;

/* ---- places: geolocation ---- */

/*
 * Where an address is, by the MaxMind DB files of sessmgr.geoip_database
 * (City or Country) and sessmgr.geoip_asn_database (ASN); docs/places.md.
 * Always one row: NULLs for what the databases do not know, for NULL and
 * non-public addresses, and while a file is missing or damaged (a WARNING
 * says so, once per backend).
 */
CREATE FUNCTION sessmgr.geolocate(ip inet)
RETURNS TABLE (country_code text, country text, region text, city text,
               latitude double precision, longitude double precision,
               accuracy_radius_km integer, asn bigint, as_organization text)
    AS 'MODULE_PATHNAME', 'sessmgr_geolocate'
    LANGUAGE C STABLE ROWS 1;

COMMENT ON FUNCTION sessmgr.geolocate(inet) IS
    'Where an address is, by the GeoIP databases (sessmgr.geoip_database, sessmgr.geoip_asn_database); NULLs for what they do not know.';

REVOKE ALL ON FUNCTION sessmgr.geolocate(inet) FROM PUBLIC;

/*
 * Where the current PostgREST request comes from: behind a CDN
 * (sessmgr.location_headers, with sessmgr.trusted_proxies > 0) the edge's
 * location headers, completed by geolocate(ip) where it agrees with them;
 * otherwise geolocate(ip).  ip is the request's client address,
 * sessmgr.request_ip().
 */
CREATE FUNCTION sessmgr.request_location(ip inet)
RETURNS TABLE (country_code text, country text, region text, city text,
               latitude double precision, longitude double precision,
               accuracy_radius_km integer, asn bigint, as_organization text)
    AS 'MODULE_PATHNAME', 'sessmgr_request_location'
    LANGUAGE C STABLE ROWS 1;

COMMENT ON FUNCTION sessmgr.request_location(inet) IS
    'Where the current request comes from: the CDN''s location headers (sessmgr.location_headers) first, then geolocate(ip).';

REVOKE ALL ON FUNCTION sessmgr.request_location(inet) FROM PUBLIC;

/* ---- devices: user agents ---- */

/*
 * What a user agent is, by uap-core's rules (sessmgr.user_agent_regexes),
 * refined by User-Agent Client Hints (an object of the sec-ch-ua* request
 * headers, lower-case names, values as sent); docs/devices.md.  Always one
 * row: "Other" for NULL, empty, oversized (over 2048 bytes) or unknown user
 * agents; malformed hints are ignored.
 */
CREATE FUNCTION sessmgr.parse_user_agent(user_agent text, client_hints jsonb DEFAULT NULL)
RETURNS TABLE (browser text, browser_version text, os text, os_version text,
               device text, device_type text, label text)
    AS 'MODULE_PATHNAME', 'sessmgr_parse_user_agent'
    LANGUAGE C STABLE PARALLEL SAFE ROWS 1;

COMMENT ON FUNCTION sessmgr.parse_user_agent(text, jsonb) IS
    'Browser, OS, device, device type and a label ("Chrome 120 on Windows") of a user agent, by uap-core''s rules and the client hints.';

REVOKE ALL ON FUNCTION sessmgr.parse_user_agent(text, jsonb) FROM PUBLIC;

/*
 * Derive the device and the place of every live session again, after
 * uap-core's rules or the GeoIP databases were updated: a batch per
 * transaction, skipping rows somebody has locked (src/devices.c).
 */
CREATE PROCEDURE sessmgr.refresh_devices(
    batch_size             integer DEFAULT 1000,
    INOUT sessions_updated bigint  DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'sessmgr_refresh_devices'
    LANGUAGE C;

COMMENT ON PROCEDURE sessmgr.refresh_devices(integer, bigint) IS
    'Derive the device and the place of every live session again, in batches; administrators only.';

REVOKE ALL ON PROCEDURE sessmgr.refresh_devices(integer, bigint) FROM PUBLIC;

/*
 * Step-up (src/stepup.c, docs/stepup.md): re-authentication recorded on the
 * live session, and freshness checks for policies and functions that read
 * the identity authenticate() or the pre-request check set.
 */
CREATE FUNCTION sessmgr.reauthenticate(
    session_id uuid,
    user_id    text,
    method     text    DEFAULT 'pwd',
    aal        integer DEFAULT NULL)
RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'sessmgr_reauthenticate'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.reauthenticate(uuid, text, text, integer) IS
    'Record that user_id proved who they are again on this session (method: RFC 8176; aal raised, never lowered); returns the new authentication time.';

REVOKE ALL ON FUNCTION sessmgr.reauthenticate(uuid, text, text, integer) FROM PUBLIC;

CREATE FUNCTION sessmgr.auth_age() RETURNS interval
    AS 'MODULE_PATHNAME', 'sessmgr_auth_age'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION sessmgr.auth_age() IS
    'Time since the current session last authenticated; NULL without a session.';

REVOKE ALL ON FUNCTION sessmgr.auth_age() FROM PUBLIC;

CREATE FUNCTION sessmgr.current_aal() RETURNS integer
    AS 'MODULE_PATHNAME', 'sessmgr_current_aal'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION sessmgr.current_aal() IS
    'The current session''s assurance level: 0 when unconfirmed, NULL without a session.';

REVOKE ALL ON FUNCTION sessmgr.current_aal() FROM PUBLIC;

CREATE FUNCTION sessmgr.is_fresh(max_age interval, min_aal integer DEFAULT 1)
RETURNS boolean
    AS 'MODULE_PATHNAME', 'sessmgr_is_fresh'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION sessmgr.is_fresh(interval, integer) IS
    'Whether the current session authenticated within max_age at level min_aal or above (for USING and WITH CHECK).';

REVOKE ALL ON FUNCTION sessmgr.is_fresh(interval, integer) FROM PUBLIC;

CREATE FUNCTION sessmgr.require_fresh(max_age interval, min_aal integer DEFAULT 1)
RETURNS void
    AS 'MODULE_PATHNAME', 'sessmgr_require_fresh'
    LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION sessmgr.require_fresh(interval, integer) IS
    'Raise SQLSTATE PGRST (HTTP 401 with an RFC 9470 challenge behind PostgREST) unless is_fresh(max_age, min_aal).';

REVOKE ALL ON FUNCTION sessmgr.require_fresh(interval, integer) FROM PUBLIC;

/* ---- the SIEM feed (src/feed.c, docs/monitoring.md) ---- */

/*
 * Before its first event id, every transaction that inserts events publishes
 * the lowest id it can still get (a share lock only the feed reads), so that
 * events_since() never moves a cursor past an id that is yet to commit.
 * ALWAYS: under session_replication_role = replica too.
 */
CREATE FUNCTION sessmgr.session_events_feed_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'sessmgr_session_events_feed_guard'
    LANGUAGE C;

REVOKE ALL ON FUNCTION sessmgr.session_events_feed_guard() FROM PUBLIC;

CREATE TRIGGER session_events_feed_guard
    BEFORE INSERT ON sessmgr.session_events
    FOR EACH STATEMENT EXECUTE FUNCTION sessmgr.session_events_feed_guard();

ALTER TABLE sessmgr.session_events ENABLE ALWAYS TRIGGER session_events_feed_guard;

/*
 * The audit trail after a cursor, as Elastic Common Schema documents, for a
 * SIEM's log shipper; administrators only.
 */
CREATE FUNCTION sessmgr.events_since(after_id bigint, max_rows integer DEFAULT 1000)
RETURNS SETOF jsonb
    AS 'MODULE_PATHNAME', 'sessmgr_events_since'
    LANGUAGE C VOLATILE ROWS 1000;

COMMENT ON FUNCTION sessmgr.events_since(bigint, integer) IS
    'Events with id > after_id (NULL: from the oldest), in id order, at most max_rows (1 to 10000), as ECS JSON documents; never skips an event that commits later. Administrators only.';

REVOKE ALL ON FUNCTION sessmgr.events_since(bigint, integer) FROM PUBLIC;

/* ---- metrics for Prometheus (docs/monitoring.md#metrics, monitoring/) ---- */

/*
 * The figures that need every session row, as of the last cleanup run:
 * sessmgr.refresh_metrics() writes this one row at the start of every run
 * (cleanup reads every session row anyway), so that sessmgr.metrics() can be
 * scraped every 15 seconds without reading the sessions table.
 * through_event_id: the events up to this id are counted in
 * sessmgr.metrics_counters; a scrape adds the ones after it.
 */
CREATE TABLE sessmgr.metrics_snapshot (
    id                        boolean          NOT NULL DEFAULT true,
    taken_at                  timestamptz      NOT NULL,
    took                      interval         NOT NULL,
    retention                 interval         NOT NULL,
    event_retention           interval         NOT NULL,
    active_sessions           bigint           NOT NULL,
    remembered_sessions       bigint           NOT NULL,
    users_with_sessions       bigint           NOT NULL,
    p50_sessions_per_user     double precision,
    p90_sessions_per_user     double precision,
    p99_sessions_per_user     double precision,
    max_sessions_per_user     bigint,
    oldest_active_created_at  timestamptz,
    session_rows              bigint           NOT NULL,
    sessions_awaiting_cleanup bigint           NOT NULL,
    through_event_id          bigint           NOT NULL,
    CONSTRAINT metrics_snapshot_pkey PRIMARY KEY (id),
    CONSTRAINT metrics_snapshot_one_row CHECK (id)
);

COMMENT ON TABLE sessmgr.metrics_snapshot IS
    'Session figures as of the last cleanup run (sessmgr.refresh_metrics), for sessmgr.metrics().';

/*
 * Cumulative event counts by event and reason ('' for none), for the events
 * up to metrics_snapshot.through_event_id; rolled up by refresh_metrics(),
 * never per event (that would make one hot row of every login).  They
 * outlive the events (sessmgr.event_retention): counters never go down.
 * A login_failed event stands for the failures its details count.
 */
CREATE TABLE sessmgr.metrics_counters (
    event  text   NOT NULL,
    reason text   NOT NULL,
    total  bigint NOT NULL,
    CONSTRAINT metrics_counters_pkey PRIMARY KEY (event, reason)
);

COMMENT ON TABLE sessmgr.metrics_counters IS
    'Cumulative event counts by event and reason, rolled up by sessmgr.refresh_metrics() (the events after metrics_snapshot.through_event_id are not in them yet).';

SELECT pg_catalog.pg_extension_config_dump('sessmgr.metrics_snapshot', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.metrics_counters', '');

/*
 * Take the snapshot and roll the events up into the counters.  CALL
 * sessmgr.cleanup() calls it at the start of every run (as the extension
 * owner); an administrator may call it by hand.  Reads every session row
 * once.  Returns false, doing nothing, while another refresh is running.
 *
 * The counters take in the events up to the event feed's horizon (see
 * src/feed.c): no event below it can still commit, so none is counted
 * twice or missed.  In a REPEATABLE READ or SERIALIZABLE transaction (its
 * snapshot is older than the horizon) they take in nothing.  Events after
 * it are counted by every scrape until the next refresh.
 */
CREATE FUNCTION sessmgr.refresh_metrics() RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started         timestamptz := clock_timestamp();
    retention       interval;
    event_retention interval;
    last_id          bigint;
    lowest_in_flight bigint;
    old_through     bigint;
    new_through     bigint;
BEGIN
    BEGIN
        LOCK TABLE sessmgr.metrics_snapshot IN SHARE ROW EXCLUSIVE MODE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RETURN false;
    END;

    -- the sessmgr.* settings exist once the library is loaded in this backend
    PERFORM sessmgr.current_session_id();
    SELECT make_interval(secs => s.setting::double precision) INTO retention
      FROM pg_settings s WHERE s.name OPERATOR(pg_catalog.=) 'sessmgr.retention';
    SELECT make_interval(secs => s.setting::double precision) INTO event_retention
      FROM pg_settings s WHERE s.name OPERATOR(pg_catalog.=) 'sessmgr.event_retention';

    SELECT m.through_event_id INTO old_through FROM sessmgr.metrics_snapshot m;
    old_through := coalesce(old_through, 0);

    -- the horizon of the event feed (src/feed.c): every transaction inserting
    -- into session_events first publishes the lowest id it can still get, as
    -- a share lock (advisory type, fourth field 0x5e55 = 24149); ids up to the
    -- sequence's last value (read first) and below every published bound
    -- (read next) can no longer commit later
    last_id := pg_sequence_last_value('sessmgr.session_events_id_seq'::regclass);
    SELECT min((l.classid::bigint OPERATOR(pg_catalog.<<) 32) OPERATOR(pg_catalog.|) l.objid::bigint)
      INTO lowest_in_flight
      FROM pg_locks l
     WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
       AND l.objsubid OPERATOR(pg_catalog.=) 24149
       AND l.pid IS DISTINCT FROM pg_backend_pid()     -- ours are visible to us
       AND l.database OPERATOR(pg_catalog.=)
           (SELECT d.oid FROM pg_database d WHERE d.datname OPERATOR(pg_catalog.=) current_database());
    IF current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed'
       OR NOT EXISTS (SELECT FROM pg_sequences q
                       WHERE q.schemaname OPERATOR(pg_catalog.=) 'sessmgr'
                         AND q.sequencename OPERATOR(pg_catalog.=) 'session_events_id_seq'
                         AND q.cache_size OPERATOR(pg_catalog.=) 1
                         AND q.increment_by OPERATOR(pg_catalog.>) 0) THEN
        -- a transaction snapshot is older than the locks just read; a cached
        -- or descending sequence hands out ids out of order
        new_through := old_through;
    ELSE
        new_through := greatest(least(coalesce(last_id, 0),
                                      coalesce(lowest_in_flight OPERATOR(pg_catalog.-) 1,
                                               last_id, 0)),
                                old_through);
    END IF;

    -- a new statement, so a new snapshot: taken after the locks were read
    IF new_through OPERATOR(pg_catalog.>) old_through THEN
        INSERT INTO sessmgr.metrics_counters AS c (event, reason, total)
        SELECT e.event, coalesce(e.reason, ''),
               sum(CASE WHEN e.event OPERATOR(pg_catalog.=) 'login_failed'
                         AND jsonb_typeof(e.details OPERATOR(pg_catalog.->) 'failures')
                             OPERATOR(pg_catalog.=) 'number'
                        THEN greatest(least((e.details OPERATOR(pg_catalog.->>) 'failures')::numeric,
                                            1000000000), 1)::bigint
                        ELSE 1 END)
          FROM sessmgr.session_events e
         WHERE e.id OPERATOR(pg_catalog.>) old_through
           AND e.id OPERATOR(pg_catalog.<=) new_through
         GROUP BY 1, 2
        ON CONFLICT (event, reason)
        DO UPDATE SET total = c.total OPERATOR(pg_catalog.+) excluded.total;
    END IF;

    -- every session row once: live ones per user, and those past retention
    INSERT INTO sessmgr.metrics_snapshot AS m
          (id, taken_at, took, retention, event_retention, active_sessions, remembered_sessions,
           users_with_sessions, p50_sessions_per_user, p90_sessions_per_user,
           p99_sessions_per_user, max_sessions_per_user, oldest_active_created_at,
           session_rows, sessions_awaiting_cleanup, through_event_id)
    SELECT true, started, clock_timestamp() OPERATOR(pg_catalog.-) started,
           retention, event_retention,
           coalesce(sum(u.live), 0), coalesce(sum(u.remembered), 0),
           count(*) FILTER (WHERE u.live OPERATOR(pg_catalog.>) 0),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY u.live)
               FILTER (WHERE u.live OPERATOR(pg_catalog.>) 0),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY u.live)
               FILTER (WHERE u.live OPERATOR(pg_catalog.>) 0),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY u.live)
               FILTER (WHERE u.live OPERATOR(pg_catalog.>) 0),
           max(u.live) FILTER (WHERE u.live OPERATOR(pg_catalog.>) 0),
           min(u.oldest_live),
           coalesce(sum(u.n), 0), coalesce(sum(u.past_retention), 0),
           new_through
      FROM (SELECT count(*) FILTER (WHERE x.live) AS live,
                   count(*) FILTER (WHERE x.live AND x.remember) AS remembered,
                   min(x.created_at) FILTER (WHERE x.live) AS oldest_live,
                   count(*) AS n,
                   count(*) FILTER (WHERE NOT x.live
                                      AND x.ended_at OPERATOR(pg_catalog.<)
                                          (now() OPERATOR(pg_catalog.-) retention)) AS past_retention
              FROM (SELECT s.user_id, s.created_at, s.remember,
                           sessmgr.session_is_live(s.revoked_at, s.expires_at, s.last_active_at,
                                                   s.idle_timeout, now()) AS live,
                           least(s.revoked_at, s.expires_at,
                                 s.last_active_at OPERATOR(pg_catalog.+) s.idle_timeout) AS ended_at
                      FROM sessmgr.sessions s) x
             GROUP BY x.user_id) u
    ON CONFLICT (id) DO UPDATE
       SET taken_at = excluded.taken_at, took = excluded.took,
           retention = excluded.retention, event_retention = excluded.event_retention,
           active_sessions = excluded.active_sessions,
           remembered_sessions = excluded.remembered_sessions,
           users_with_sessions = excluded.users_with_sessions,
           p50_sessions_per_user = excluded.p50_sessions_per_user,
           p90_sessions_per_user = excluded.p90_sessions_per_user,
           p99_sessions_per_user = excluded.p99_sessions_per_user,
           max_sessions_per_user = excluded.max_sessions_per_user,
           oldest_active_created_at = excluded.oldest_active_created_at,
           session_rows = excluded.session_rows,
           sessions_awaiting_cleanup = excluded.sessions_awaiting_cleanup,
           through_event_id = excluded.through_event_id;
    RETURN true;
END
$$;

COMMENT ON FUNCTION sessmgr.refresh_metrics() IS
    'Take the session figures and roll the events up into the counters (cleanup does it every run); false while another refresh runs.';

/*
 * The metrics, in one row, for a scrape every 15 seconds: index look-ups,
 * the one-row snapshot, the events written since the last refresh (through
 * the primary key), the latest cleanup runs (through theirs).  Timestamps
 * are seconds since the epoch, 0 for never.  Counters (*_total) count since
 * the extension was installed, and stay exact when events are removed.
 */
CREATE FUNCTION sessmgr.metrics(
    OUT snapshot_timestamp_seconds             double precision,
    OUT snapshot_age_seconds                   double precision,
    OUT snapshot_duration_seconds              double precision,
    OUT active_sessions                        bigint,
    OUT remembered_sessions                    bigint,
    OUT users_with_sessions                    bigint,
    OUT p50_sessions_per_user                  double precision,
    OUT p90_sessions_per_user                  double precision,
    OUT p99_sessions_per_user                  double precision,
    OUT max_sessions_per_user                  bigint,
    OUT oldest_active_session_created_seconds  double precision,
    OUT session_rows                           bigint,
    OUT sessions_awaiting_cleanup              bigint,
    OUT sessions_cleanup_overdue_seconds       double precision,
    OUT events_cleanup_overdue_seconds         double precision,
    OUT cleanup_last_started_timestamp_seconds double precision,
    OUT cleanup_last_finished_timestamp_seconds double precision,
    OUT cleanup_last_duration_seconds          double precision,
    OUT cleanup_last_sessions_removed          bigint,
    OUT cleanup_last_events_removed            bigint,
    OUT cleanup_last_owners_removed            bigint,
    OUT cleanup_running                        bigint,
    OUT cleanup_unfinished_runs                bigint,
    OUT notification_queue_usage               double precision,
    OUT logins_total                           bigint,
    OUT failed_logins_total                    bigint,
    OUT suspicious_logins_total                bigint,
    OUT account_lockouts_total                 bigint,
    OUT revocations_total                      bigint,
    OUT evictions_total                        bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH snap AS (
        SELECT m.* FROM sessmgr.metrics_snapshot m
    ), counts AS (
        SELECT c.event, sum(c.n) AS n
          FROM (SELECT k.event, k.total AS n FROM sessmgr.metrics_counters k
                UNION ALL
                SELECT e.event,
                       CASE WHEN e.event OPERATOR(pg_catalog.=) 'login_failed'
                             AND jsonb_typeof(e.details OPERATOR(pg_catalog.->) 'failures')
                                 OPERATOR(pg_catalog.=) 'number'
                            THEN greatest(least((e.details OPERATOR(pg_catalog.->>) 'failures')::numeric,
                                                1000000000), 1)::bigint
                            ELSE 1 END
                  FROM sessmgr.session_events e
                 WHERE e.id OPERATOR(pg_catalog.>)
                       coalesce((SELECT snap.through_event_id FROM snap), 0)) c
         GROUP BY c.event
    ), last_run AS (
        SELECT r.started_at, r.finished_at, r.sessions_removed, r.events_removed, r.owners_removed
          FROM sessmgr.cleanup_runs r
         WHERE r.finished_at IS NOT NULL
         ORDER BY r.id DESC
         LIMIT 1
    ), recent_runs AS (
        SELECT r.started_at, r.finished_at
          FROM sessmgr.cleanup_runs r
         ORDER BY r.id DESC
         LIMIT 100
    )
    SELECT coalesce(extract(epoch FROM snap.taken_at), 0)::double precision,
           CASE WHEN snap.taken_at IS NOT NULL
                THEN greatest(extract(epoch FROM now() OPERATOR(pg_catalog.-) snap.taken_at), 0)
           END::double precision,
           extract(epoch FROM snap.took)::double precision,
           snap.active_sessions, snap.remembered_sessions, snap.users_with_sessions,
           snap.p50_sessions_per_user, snap.p90_sessions_per_user, snap.p99_sessions_per_user,
           snap.max_sessions_per_user,
           extract(epoch FROM snap.oldest_active_created_at)::double precision,
           snap.session_rows, snap.sessions_awaiting_cleanup,
           greatest(extract(epoch FROM now() OPERATOR(pg_catalog.-) snap.retention
                                       OPERATOR(pg_catalog.-)
                                       (SELECT min(s.expires_at) FROM sessmgr.sessions s)), 0)::double precision,
           greatest(extract(epoch FROM now() OPERATOR(pg_catalog.-) snap.event_retention
                                       OPERATOR(pg_catalog.-)
                                       (SELECT min(e.occurred_at) FROM sessmgr.session_events e)), 0)::double precision,
           coalesce((SELECT extract(epoch FROM l.started_at) FROM last_run l), 0)::double precision,
           coalesce((SELECT extract(epoch FROM l.finished_at) FROM last_run l), 0)::double precision,
           (SELECT extract(epoch FROM l.finished_at OPERATOR(pg_catalog.-) l.started_at)
              FROM last_run l)::double precision,
           (SELECT l.sessions_removed FROM last_run l),
           (SELECT l.events_removed FROM last_run l),
           (SELECT l.owners_removed FROM last_run l),
           (SELECT count(*) FROM recent_runs r
             WHERE r.finished_at IS NULL
               AND r.started_at OPERATOR(pg_catalog.>=) (now() OPERATOR(pg_catalog.-) interval '1 hour')),
           (SELECT count(*) FROM recent_runs r
             WHERE r.finished_at IS NULL
               AND r.started_at OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) interval '1 hour')),
           pg_notification_queue_usage(),
           coalesce((SELECT c.n FROM counts c WHERE c.event OPERATOR(pg_catalog.=) 'issue'), 0)::bigint,
           coalesce((SELECT c.n FROM counts c WHERE c.event OPERATOR(pg_catalog.=) 'login_failed'), 0)::bigint,
           coalesce((SELECT c.n FROM counts c WHERE c.event OPERATOR(pg_catalog.=) 'suspicious_login'), 0)::bigint,
           coalesce((SELECT c.n FROM counts c WHERE c.event OPERATOR(pg_catalog.=) 'account_locked'), 0)::bigint,
           coalesce((SELECT c.n FROM counts c WHERE c.event OPERATOR(pg_catalog.=) 'revoke'), 0)::bigint,
           coalesce((SELECT c.n FROM counts c WHERE c.event OPERATOR(pg_catalog.=) 'evict'), 0)::bigint
      FROM (SELECT 1) AS one
      LEFT JOIN snap ON true
$$;

COMMENT ON FUNCTION sessmgr.metrics() IS
    'Gauges and counters for a Prometheus scrape (monitoring/postgres_exporter.yml), without reading every session row.';

/*
 * The event counters by event and reason ('' for none): a login_failed
 * event counts the failures it stands for.  Revocations by reason are the
 * revoke and evict (reason cap) rows.
 */
CREATE FUNCTION sessmgr.metrics_events()
RETURNS TABLE (event text, reason text, total bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.event, c.reason, sum(c.n)::bigint
      FROM (SELECT k.event, k.reason, k.total AS n FROM sessmgr.metrics_counters k
            UNION ALL
            SELECT e.event, coalesce(e.reason, ''),
                   CASE WHEN e.event OPERATOR(pg_catalog.=) 'login_failed'
                         AND jsonb_typeof(e.details OPERATOR(pg_catalog.->) 'failures')
                             OPERATOR(pg_catalog.=) 'number'
                        THEN greatest(least((e.details OPERATOR(pg_catalog.->>) 'failures')::numeric,
                                            1000000000), 1)::bigint
                        ELSE 1 END
              FROM sessmgr.session_events e
             WHERE e.id OPERATOR(pg_catalog.>)
                   coalesce((SELECT m.through_event_id FROM sessmgr.metrics_snapshot m), 0)) c
     GROUP BY c.event, c.reason
$$;

COMMENT ON FUNCTION sessmgr.metrics_events() IS
    'Cumulative event counts by event and reason, for a Prometheus scrape.';

/* Size, tuples and vacuum of each sessmgr table, from the statistics. */
CREATE FUNCTION sessmgr.metrics_tables()
RETURNS TABLE (table_name text, table_bytes bigint, index_bytes bigint,
               live_tuples bigint, dead_tuples bigint,
               last_vacuum_timestamp_seconds double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.relname::text, pg_table_size(c.oid), pg_indexes_size(c.oid),
           pg_stat_get_live_tuples(c.oid), pg_stat_get_dead_tuples(c.oid),
           coalesce(extract(epoch FROM greatest(pg_stat_get_last_vacuum_time(c.oid),
                                                pg_stat_get_last_autovacuum_time(c.oid))),
                    0)::double precision
      FROM pg_class c
     WHERE c.relnamespace OPERATOR(pg_catalog.=) 'sessmgr'::regnamespace
       AND c.relkind OPERATOR(pg_catalog.=) 'r'
$$;

COMMENT ON FUNCTION sessmgr.metrics_tables() IS
    'Size, live and dead tuples and last vacuum of each sessmgr table, for a Prometheus scrape.';

REVOKE ALL ON TABLE sessmgr.metrics_snapshot, sessmgr.metrics_counters FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.refresh_metrics(), sessmgr.metrics(), sessmgr.metrics_events(),
    sessmgr.metrics_tables() FROM PUBLIC;

/* ---- privacy: minimisation and erasure (src/privacy.c, docs/privacy.md) ---- */

/*
 * How far cleanup has minimised the events (src/privacy.c): every event up
 * to (events_done_at, events_done_id), in (occurred_at, id) order, is.  One
 * row, written in the transaction of each minimising batch.
 */
CREATE TABLE sessmgr.privacy_progress (
    singleton      boolean     NOT NULL DEFAULT true,
    events_done_at timestamptz NOT NULL,
    events_done_id bigint      NOT NULL,
    CONSTRAINT privacy_progress_pkey PRIMARY KEY (singleton),
    CONSTRAINT privacy_progress_singleton_check CHECK (singleton)
);

COMMENT ON TABLE sessmgr.privacy_progress IS
    'Where cleanup''s minimisation of events (sessmgr.pii_retention) stopped.';

SELECT pg_catalog.pg_extension_config_dump('sessmgr.privacy_progress', '');

REVOKE ALL ON TABLE sessmgr.privacy_progress FROM PUBLIC;

/* The actor and actor_user_id the audit trail would record for an event now. */
CREATE FUNCTION sessmgr.audit_actor(OUT actor name, OUT actor_user_id text)
    AS 'MODULE_PATHNAME', 'sessmgr_audit_actor'
    LANGUAGE C STABLE;

COMMENT ON FUNCTION sessmgr.audit_actor() IS
    'The actor (request role) and actor_user_id the audit trail records for an event written now.';

REVOKE ALL ON FUNCTION sessmgr.audit_actor() FROM PUBLIC;

/*
 * The administrator acting through sessmgr_admin_api: events the rest of the
 * transaction writes name them as actor_user_id.  Only the wrappers call it.
 */
CREATE FUNCTION sessmgr.set_admin_actor(admin_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'sessmgr_set_admin_actor'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.set_admin_actor(text) IS
    'For sessmgr_admin_api: record admin_id (the JWT''s sub) as actor_user_id of the events this transaction writes.';

REVOKE ALL ON FUNCTION sessmgr.set_admin_actor(text) FROM PUBLIC;

-- The user id argument of the privacy functions: the rules of src/args.c.
CREATE FUNCTION sessmgr.check_user_id_arg(user_id text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'user id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF octet_length(user_id) OPERATOR(pg_catalog.>) 256 THEN
        RAISE EXCEPTION 'user id is too long' USING ERRCODE = 'string_data_right_truncation',
            DETAIL = 'The limit is 256 bytes.';
    END IF;
    IF user_id OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'user id must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN user_id;
END
$$;

REVOKE ALL ON FUNCTION sessmgr.check_user_id_arg(text) FROM PUBLIC;

/*
 * Right to erasure: end the user's sessions and delete every row about them
 * (sessions and their retired tokens, events, the owner row, known devices,
 * the login profile, the login counters of the account and of its
 * account-and-address pairs, the analytics' per-user rows), in one
 * transaction.  One erased event stays,
 * with user_id '' and no personal data: the count of rows removed, the
 * reason and the administrator.  Returns the number of rows removed.
 */
CREATE FUNCTION sessmgr.forget_user(user_id text, reason text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid text := sessmgr.check_user_id_arg(forget_user.user_id);
    n bigint;
    removed bigint := 0;
    counts jsonb := '{}';
    who record;
BEGIN
    IF octet_length(forget_user.reason) OPERATOR(pg_catalog.>) 64 THEN
        RAISE EXCEPTION 'reason is too long' USING ERRCODE = 'string_data_right_truncation',
            DETAIL = 'The limit is 64 bytes.';
    END IF;

    -- the user's row first, like every writer (src/triggers.c): an issue for
    -- this user waits, and then starts from nothing
    PERFORM FROM sessmgr.session_owners o WHERE o.user_id OPERATOR(pg_catalog.=) uid FOR UPDATE;

    -- end the live sessions, so that caches hear of it (NOTIFY at commit)
    UPDATE sessmgr.sessions s
       SET revoked_at = now(), revoke_reason = 'erased'
     WHERE s.user_id OPERATOR(pg_catalog.=) uid
       AND s.revoked_at IS NULL
       AND sessmgr.session_is_live(s.revoked_at, s.expires_at, s.last_active_at,
                                   s.idle_timeout, now());

    SELECT count(*) INTO n FROM sessmgr.retired_tokens t
     WHERE t.session_id OPERATOR(pg_catalog.=) ANY (ARRAY(
           SELECT s.id FROM sessmgr.sessions s WHERE s.user_id OPERATOR(pg_catalog.=) uid));
    counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('retired_tokens', n);
    removed := removed OPERATOR(pg_catalog.+) n;

    DELETE FROM sessmgr.sessions s WHERE s.user_id OPERATOR(pg_catalog.=) uid;   -- tokens cascade
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('sessions', n);
    removed := removed OPERATOR(pg_catalog.+) n;

    DELETE FROM sessmgr.session_events e WHERE e.user_id OPERATOR(pg_catalog.=) uid;
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('events', n);
    removed := removed OPERATOR(pg_catalog.+) n;

    DELETE FROM sessmgr.session_owners o WHERE o.user_id OPERATOR(pg_catalog.=) uid;
    GET DIAGNOSTICS n = ROW_COUNT;
    counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('session_owners', n);
    removed := removed OPERATOR(pg_catalog.+) n;

    -- account protection's tables (src/risk.c, src/throttle.c)
    IF to_regclass('sessmgr.known_devices') IS NOT NULL THEN
        DELETE FROM sessmgr.known_devices d WHERE d.user_id OPERATOR(pg_catalog.=) uid;
        GET DIAGNOSTICS n = ROW_COUNT;
        counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('known_devices', n);
        removed := removed OPERATOR(pg_catalog.+) n;
    END IF;
    IF to_regclass('sessmgr.login_profiles') IS NOT NULL THEN
        DELETE FROM sessmgr.login_profiles p WHERE p.user_id OPERATOR(pg_catalog.=) uid;
        GET DIAGNOSTICS n = ROW_COUNT;
        counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('login_profiles', n);
        removed := removed OPERATOR(pg_catalog.+) n;
    END IF;
    IF to_regclass('sessmgr.login_attempts') IS NOT NULL THEN
        -- the account's key and its account-and-address pairs; the addresses'
        -- own counters (across accounts) are not about this user
        DELETE FROM sessmgr.login_attempts a WHERE a.user_id OPERATOR(pg_catalog.=) uid;
        GET DIAGNOSTICS n = ROW_COUNT;
        counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('login_attempts', n);
        removed := removed OPERATOR(pg_catalog.+) n;
    END IF;
    -- the analytics' per-user rows (the daily counts are no one's)
    IF to_regclass('sessmgr.analytics_user_days') IS NOT NULL THEN
        DELETE FROM sessmgr.analytics_user_days x WHERE x.user_id OPERATOR(pg_catalog.=) uid;
        GET DIAGNOSTICS n = ROW_COUNT;
        counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('analytics_user_days', n);
        removed := removed OPERATOR(pg_catalog.+) n;
        DELETE FROM sessmgr.analytics_user_places x WHERE x.user_id OPERATOR(pg_catalog.=) uid;
        GET DIAGNOSTICS n = ROW_COUNT;
        counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('analytics_user_places', n);
        removed := removed OPERATOR(pg_catalog.+) n;
        DELETE FROM sessmgr.analytics_user_devices x WHERE x.user_id OPERATOR(pg_catalog.=) uid;
        GET DIAGNOSTICS n = ROW_COUNT;
        counts := counts OPERATOR(pg_catalog.||) jsonb_build_object('analytics_user_devices', n);
        removed := removed OPERATOR(pg_catalog.+) n;
    END IF;

    -- the one trace: that an erasure happened, by whom, and how much it removed
    SELECT * INTO who FROM sessmgr.audit_actor();
    INSERT INTO sessmgr.session_events (event, session_id, user_id, reason, actor, actor_user_id, details)
    VALUES ('erased', NULL, '', forget_user.reason, who.actor,
            nullif(who.actor_user_id, uid),
            jsonb_build_object('rows_removed', counts));
    RETURN removed;
END
$$;

COMMENT ON FUNCTION sessmgr.forget_user(text, text) IS
    'Administrators: end a user''s sessions and delete every row about them; one erased event without personal data stays. Returns the rows removed.';

REVOKE ALL ON FUNCTION sessmgr.forget_user(text, text) FROM PUBLIC;

/*
 * Right of access: everything sessmgr holds about a user, as one JSON
 * document.  Token and device-cookie hashes are left out: they are
 * credentials' fingerprints, not information about the person.
 */
CREATE FUNCTION sessmgr.export_user(user_id text) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid text := sessmgr.check_user_id_arg(export_user.user_id);
    doc jsonb;
    part jsonb;
BEGIN
    doc := jsonb_build_object(
        'user_id', uid,
        'exported_at', now(),
        'account', (SELECT to_jsonb(o) OPERATOR(pg_catalog.-) 'user_id'
                      FROM sessmgr.session_owners o WHERE o.user_id OPERATOR(pg_catalog.=) uid),
        'sessions', coalesce((SELECT jsonb_agg(to_jsonb(s) OPERATOR(pg_catalog.-)
                                    '{token_hash,prev_token_hash,token_gen,prev_token_gen}'::text[]
                                    ORDER BY s.created_at, s.id)
                                FROM sessmgr.sessions s WHERE s.user_id OPERATOR(pg_catalog.=) uid),
                             '[]'),
        'events', coalesce((SELECT jsonb_agg(to_jsonb(e) ORDER BY e.occurred_at, e.id)
                              FROM sessmgr.session_events e WHERE e.user_id OPERATOR(pg_catalog.=) uid),
                           '[]'));
    IF to_regclass('sessmgr.known_devices') IS NOT NULL THEN
        SELECT coalesce(jsonb_agg(to_jsonb(d) OPERATOR(pg_catalog.-) 'device_key'
                                  ORDER BY d.first_seen_at), '[]')
          INTO part
          FROM sessmgr.known_devices d WHERE d.user_id OPERATOR(pg_catalog.=) uid;
        doc := doc OPERATOR(pg_catalog.||) jsonb_build_object('known_devices', part);
    END IF;
    IF to_regclass('sessmgr.login_profiles') IS NOT NULL THEN
        SELECT to_jsonb(p) INTO part
          FROM sessmgr.login_profiles p WHERE p.user_id OPERATOR(pg_catalog.=) uid;
        doc := doc OPERATOR(pg_catalog.||) jsonb_build_object('login_profile', part);
    END IF;
    IF to_regclass('sessmgr.login_attempts') IS NOT NULL THEN
        SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]') INTO part
          FROM sessmgr.login_attempts a WHERE a.user_id OPERATOR(pg_catalog.=) uid;
        doc := doc OPERATOR(pg_catalog.||) jsonb_build_object('login_attempts', part);
    END IF;
    IF to_regclass('sessmgr.analytics_user_days') IS NOT NULL THEN
        doc := doc OPERATOR(pg_catalog.||) jsonb_build_object('analytics', jsonb_build_object(
            'last_login_day', (SELECT x.last_day FROM sessmgr.analytics_user_days x
                                WHERE x.user_id OPERATOR(pg_catalog.=) uid),
            'countries', coalesce((SELECT jsonb_agg(to_jsonb(x) OPERATOR(pg_catalog.-) 'user_id'
                                                    ORDER BY x.country_code)
                                     FROM sessmgr.analytics_user_places x
                                    WHERE x.user_id OPERATOR(pg_catalog.=) uid), '[]'),
            'devices', coalesce((SELECT jsonb_agg(to_jsonb(x) OPERATOR(pg_catalog.-) 'user_id'
                                                  ORDER BY x.browser, x.os, x.device_type)
                                   FROM sessmgr.analytics_user_devices x
                                  WHERE x.user_id OPERATOR(pg_catalog.=) uid), '[]')));
    END IF;
    RETURN doc;
END
$$;

COMMENT ON FUNCTION sessmgr.export_user(text) IS
    'Administrators: everything sessmgr holds about a user (sessions without token hashes, events, devices, profile, counters) as JSON.';

REVOKE ALL ON FUNCTION sessmgr.export_user(text) FROM PUBLIC;

/* ---- the administrators' API (docs/monitoring.md) ---- */

/*
 * Search the sessions (live, ended and still kept, or both) by user,
 * country, device type and risk, a page at a time.  Pages follow the index
 * sessions_expires_at_idx backwards: (expires_at, id), latest expiry first,
 * both fixed at issuance, so a page never skips or repeats a session
 * however the others are used meanwhile.  The next page starts after the
 * last row of this one (next in the result).  estimated_total is the
 * planner's estimate of the rows matching the filters, not a count.
 */
CREATE FUNCTION sessmgr.search_sessions(
    user_id          text        DEFAULT NULL,
    country_code     text        DEFAULT NULL,
    device_type      text        DEFAULT NULL,
    risk             text        DEFAULT NULL,
    state            text        DEFAULT 'active',
    after_expires_at timestamptz DEFAULT NULL,
    after_id         uuid        DEFAULT NULL,
    max_rows         integer     DEFAULT 100)
RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    filter text := 'true';
    page jsonb;
    n integer;
    plan jsonb;
    last_row jsonb;
BEGIN
    IF max_rows IS NULL OR max_rows OPERATOR(pg_catalog.<) 1 OR max_rows OPERATOR(pg_catalog.>) 1000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (after_expires_at IS NULL) OPERATOR(pg_catalog.<>) (after_id IS NULL) THEN
        RAISE EXCEPTION 'after_expires_at and after_id go together'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass both from the "next" of the previous page, or neither.';
    END IF;
    IF octet_length(user_id) OPERATOR(pg_catalog.>) 256 OR octet_length(country_code) OPERATOR(pg_catalog.>) 8
       OR octet_length(device_type) OPERATOR(pg_catalog.>) 64 OR octet_length(risk) OPERATOR(pg_catalog.>) 64 THEN
        RAISE EXCEPTION 'search value is too long' USING ERRCODE = 'string_data_right_truncation';
    END IF;

    IF state IS NULL OR state OPERATOR(pg_catalog.=) 'active' THEN
        filter := 's.expires_at OPERATOR(pg_catalog.>) now() AND '
                  'sessmgr.session_is_live(s.revoked_at, s.expires_at, s.last_active_at, s.idle_timeout, now())';
    ELSIF state OPERATOR(pg_catalog.=) 'ended' THEN
        filter := 'NOT sessmgr.session_is_live(s.revoked_at, s.expires_at, s.last_active_at, s.idle_timeout, now())';
    ELSIF state OPERATOR(pg_catalog.<>) 'all' THEN
        RAISE EXCEPTION 'state must be active, ended or all' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF user_id IS NOT NULL THEN
        filter := filter OPERATOR(pg_catalog.||) format(' AND s.user_id OPERATOR(pg_catalog.=) %L', user_id);
    END IF;
    IF country_code IS NOT NULL THEN
        filter := filter OPERATOR(pg_catalog.||) format(' AND s.country_code OPERATOR(pg_catalog.=) %L', country_code);
    END IF;
    IF device_type IS NOT NULL THEN
        filter := filter OPERATOR(pg_catalog.||) format(' AND s.device_type OPERATOR(pg_catalog.=) %L', device_type);
    END IF;
    IF risk OPERATOR(pg_catalog.=) 'any' THEN
        filter := filter OPERATOR(pg_catalog.||) ' AND pg_catalog.cardinality(s.risk) OPERATOR(pg_catalog.>) 0';
    ELSIF risk IS NOT NULL THEN
        filter := filter OPERATOR(pg_catalog.||)
                  format(' AND s.risk OPERATOR(pg_catalog.@>) ARRAY[%L]::text[]', risk);
    END IF;

    -- the planner's estimate of the whole result (what PostgREST's count=estimated does)
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT FROM sessmgr.sessions s WHERE ' OPERATOR(pg_catalog.||) filter
       INTO plan;

    IF after_id IS NOT NULL THEN
        filter := filter OPERATOR(pg_catalog.||)
                  format(' AND (s.expires_at, s.id) OPERATOR(pg_catalog.<) (%L::timestamptz, %L::uuid)',
                         after_expires_at, after_id);
    END IF;
    EXECUTE format($q$
        SELECT coalesce(jsonb_agg(r ORDER BY r.expires_at DESC, r.id DESC), '[]'), count(*)
          FROM (SELECT s.id, s.user_id,
                       CASE WHEN sessmgr.session_is_live(s.revoked_at, s.expires_at, s.last_active_at,
                                                         s.idle_timeout, now()) THEN 'active'
                            WHEN s.revoked_at IS NOT NULL THEN 'revoked'
                            WHEN s.expires_at OPERATOR(pg_catalog.<=) now() THEN 'expired'
                            ELSE 'idle' END AS state,
                       s.revoke_reason, s.risk, s.remember AS is_remembered, s.aal,
                       s.created_at, s.last_active_at, s.authenticated_at, s.expires_at, s.revoked_at,
                       s.device_name, s.user_agent, s.ip, s.location,
                       s.device, s.browser, s.os, s.device_type,
                       s.country_code, s.country, s.region, s.city, s.asn
                  FROM sessmgr.sessions s
                 WHERE %s
                 ORDER BY s.expires_at DESC, s.id DESC
                 LIMIT %s) r$q$, filter, max_rows)
       INTO page, n;

    IF n OPERATOR(pg_catalog.=) max_rows THEN
        last_row := page OPERATOR(pg_catalog.->) (n OPERATOR(pg_catalog.-) 1);
    END IF;
    RETURN jsonb_build_object(
        'sessions', page,
        'next', CASE WHEN last_row IS NOT NULL THEN
                     jsonb_build_object('after_expires_at', last_row OPERATOR(pg_catalog.->) 'expires_at',
                                        'after_id', last_row OPERATOR(pg_catalog.->) 'id') END,
        'estimated_total', (plan #>> '{0,Plan,Plan Rows}')::numeric::bigint);
END
$$;

COMMENT ON FUNCTION sessmgr.search_sessions(text, text, text, text, text, timestamptz, uuid, integer) IS
    'Administrators: a page of sessions matching the filters (latest expiry first), the next page''s cursor and an estimated total.';

REVOKE ALL ON FUNCTION sessmgr.search_sessions(text, text, text, text, text, timestamptz, uuid, integer) FROM PUBLIC;

/*
 * The PostgREST API for administrators: add sessmgr_admin_api to
 * db-schemas.  The extension creates no role: the DBA grants this schema to
 * a role of their choice (docs/monitoring.md: session_admin), which
 * PostgREST switches to for a JWT whose role claim names it.  sessmgr's
 * own access tokens carry sessmgr.jwt_role, so no user can get one.
 * Endpoints that write record the JWT's sub as actor_user_id.
 */
CREATE SCHEMA sessmgr_admin_api;

COMMENT ON SCHEMA sessmgr_admin_api IS
    'PostgREST endpoints for administrators (db-schemas): session search, revocation, unlocking, analytics, erasure and export.';

CREATE FUNCTION sessmgr_admin_api.sessions(
    user_id          text        DEFAULT NULL,
    country_code     text        DEFAULT NULL,
    device_type      text        DEFAULT NULL,
    risk             text        DEFAULT NULL,
    state            text        DEFAULT 'active',
    after_expires_at timestamptz DEFAULT NULL,
    after_id         uuid        DEFAULT NULL,
    max_rows         integer     DEFAULT 100)
RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sessmgr.search_sessions($1, $2, $3, $4, $5, $6, $7, $8)
$$;

COMMENT ON FUNCTION sessmgr_admin_api.sessions(text, text, text, text, text, timestamptz, uuid, integer) IS
    'GET /rpc/sessions: {"sessions": [...], "next": {"after_expires_at", "after_id"} or null, "estimated_total"}.';

CREATE FUNCTION sessmgr_admin_api.user_sessions(user_id text, max_events integer DEFAULT 100)
RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid text := sessmgr.check_user_id_arg(user_sessions.user_id);
BEGIN
    IF max_events IS NULL OR max_events OPERATOR(pg_catalog.<) 0 OR max_events OPERATOR(pg_catalog.>) 1000 THEN
        RAISE EXCEPTION 'max_events must be between 0 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN jsonb_build_object(
        'user_id', uid,
        -- the live ones by the user index, the ended ones by their issue events
        'sessions', coalesce((
            SELECT jsonb_agg(to_jsonb(s) OPERATOR(pg_catalog.-)
                             '{token_hash,prev_token_hash,token_gen,prev_token_gen,client_hints}'::text[]
                             OPERATOR(pg_catalog.||) jsonb_build_object('is_active',
                                 sessmgr.session_is_live(s.revoked_at, s.expires_at, s.last_active_at,
                                                         s.idle_timeout, now()))
                             ORDER BY s.created_at DESC, s.id)
              FROM sessmgr.sessions s
             WHERE s.user_id OPERATOR(pg_catalog.=) uid
               AND (s.revoked_at IS NULL
                    OR s.id OPERATOR(pg_catalog.=) ANY (ARRAY(
                        SELECT e.session_id FROM sessmgr.session_events e
                         WHERE e.user_id OPERATOR(pg_catalog.=) uid
                           AND e.event OPERATOR(pg_catalog.=) 'issue')))), '[]'),
        'events', coalesce((
            SELECT jsonb_agg(to_jsonb(e) ORDER BY e.occurred_at DESC, e.id DESC)
              FROM (SELECT * FROM sessmgr.session_events e
                     WHERE e.user_id OPERATOR(pg_catalog.=) uid
                     ORDER BY e.occurred_at DESC, e.id DESC
                     LIMIT max_events) e), '[]'));
END
$$;

COMMENT ON FUNCTION sessmgr_admin_api.user_sessions(text, integer) IS
    'GET /rpc/user_sessions: one user''s kept sessions (newest first, no token hashes) and latest events.';

CREATE FUNCTION sessmgr_admin_api.revoke_session(session_id uuid, reason text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    failure text;
BEGIN
    PERFORM sessmgr.set_admin_actor(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub');
    IF reason IS NULL THEN
        RAISE EXCEPTION 'reason must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Say why the session is ended; the audit trail records it.';
    END IF;
    RETURN sessmgr.revoke_any(revoke_session.session_id, revoke_session.reason);
EXCEPTION WHEN invalid_parameter_value THEN
    -- an unknown session id is not found, as for the users' revoke_session;
    -- a bad reason (empty, reserved) stays a 400
    GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT;
    IF failure OPERATOR(pg_catalog.<>) 'invalid session id' THEN
        RAISE;
    END IF;
    RAISE SQLSTATE 'PGRST'
        USING MESSAGE = '{"code":"22023","message":"invalid session id","details":null,"hint":null}',
              DETAIL = '{"status":404,"headers":{}}';
END
$$;

COMMENT ON FUNCTION sessmgr_admin_api.revoke_session(uuid, text) IS
    'POST /rpc/revoke_session: end any session, with a reason; true if this call ended it (404 for an unknown id).';

CREATE FUNCTION sessmgr_admin_api.revoke_user_sessions(user_id text, reason text) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sessmgr.set_admin_actor(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub');
    IF reason IS NULL THEN
        RAISE EXCEPTION 'reason must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Say why the sessions are ended; the audit trail records it.';
    END IF;
    RETURN sessmgr.revoke_all(sessmgr.check_user_id_arg(revoke_user_sessions.user_id), NULL::uuid,
                              revoke_user_sessions.reason);
END
$$;

COMMENT ON FUNCTION sessmgr_admin_api.revoke_user_sessions(text, text) IS
    'POST /rpc/revoke_user_sessions: end every session of a user, with a reason; returns how many.';

CREATE FUNCTION sessmgr_admin_api.unlock_account(user_id text, reason text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid text := sessmgr.check_user_id_arg(unlock_account.user_id);
BEGIN
    PERFORM sessmgr.set_admin_actor(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub');
    IF reason IS NULL THEN
        RAISE EXCEPTION 'reason must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Say why the account is unlocked; the audit trail records it.';
    END IF;
    IF octet_length(reason) OPERATOR(pg_catalog.>) 64 THEN
        RAISE EXCEPTION 'reason is too long' USING ERRCODE = 'string_data_right_truncation',
            DETAIL = 'The limit is 64 bytes.';
    END IF;
    IF NOT sessmgr.unlock_account(uid) THEN
        RETURN false;
    END IF;
    -- the account_unlocked event just written (its rows are ours until commit)
    UPDATE sessmgr.session_events e SET reason = unlock_account.reason
     WHERE e.id OPERATOR(pg_catalog.=) (
           SELECT max(x.id) FROM sessmgr.session_events x
            WHERE x.user_id OPERATOR(pg_catalog.=) uid
              AND x.event OPERATOR(pg_catalog.=) 'account_unlocked');
    RETURN true;
END
$$;

COMMENT ON FUNCTION sessmgr_admin_api.unlock_account(text, text) IS
    'POST /rpc/unlock_account: clear an account''s failed logins, delays and lock, with a reason; true if there was anything to clear.';

CREATE FUNCTION sessmgr_admin_api.forget_user(user_id text, reason text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sessmgr.set_admin_actor(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub');
    IF reason IS NULL THEN
        RAISE EXCEPTION 'reason must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Name the erasure request; the erased event records it.';
    END IF;
    RETURN sessmgr.forget_user(forget_user.user_id, forget_user.reason);
END
$$;

COMMENT ON FUNCTION sessmgr_admin_api.forget_user(text, text) IS
    'POST /rpc/forget_user: erase everything about a user (right to erasure); returns the rows removed.';

CREATE FUNCTION sessmgr_admin_api.export_user(user_id text) RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sessmgr.export_user($1)
$$;

COMMENT ON FUNCTION sessmgr_admin_api.export_user(text) IS
    'GET /rpc/export_user: everything sessmgr holds about a user (right of access).';

CREATE FUNCTION sessmgr_admin_api.stats() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT to_jsonb(s) FROM sessmgr.stats() s
$$;

COMMENT ON FUNCTION sessmgr_admin_api.stats() IS
    'GET /rpc/stats: sessmgr.stats() as one JSON object.';

CREATE FUNCTION sessmgr_admin_api.login_activity(since timestamptz, bucket interval DEFAULT '1 day')
RETURNS TABLE (bucket_start timestamptz, logins bigint, users bigint, failed_logins bigint,
               suspicious_logins bigint, revocations bigint, evictions bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM sessmgr.login_activity(login_activity.since, login_activity.bucket);
END
$$;

COMMENT ON FUNCTION sessmgr_admin_api.login_activity(timestamptz, interval) IS
    'GET /rpc/login_activity: sessmgr.login_activity().';

CREATE FUNCTION sessmgr_admin_api.session_durations(since timestamptz)
RETURNS TABLE (kind text, ended bigint, p50 interval, p90 interval, p99 interval)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM sessmgr.session_durations(session_durations.since);
END
$$;

COMMENT ON FUNCTION sessmgr_admin_api.session_durations(timestamptz) IS
    'GET /rpc/session_durations: sessmgr.session_durations().';

CREATE FUNCTION sessmgr_admin_api.login_geography(since timestamptz)
RETURNS TABLE (country_code text, country text, logins bigint, users bigint, suspicious_logins bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM sessmgr.login_geography(login_geography.since);
END
$$;

COMMENT ON FUNCTION sessmgr_admin_api.login_geography(timestamptz) IS
    'GET /rpc/login_geography: sessmgr.login_geography().';

CREATE FUNCTION sessmgr_admin_api.device_usage(since timestamptz)
RETURNS TABLE (browser text, os text, device_type text, logins bigint, users bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM sessmgr.device_usage(device_usage.since);
END
$$;

COMMENT ON FUNCTION sessmgr_admin_api.device_usage(timestamptz) IS
    'GET /rpc/device_usage: sessmgr.device_usage().';

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA sessmgr_admin_api FROM PUBLIC;
REVOKE ALL ON SCHEMA sessmgr_admin_api FROM PUBLIC;

/* ---- failed logins: throttling (src/throttle.c, docs/protecting-accounts.md) ---- */

/*
 * One row per throttling key: an account from one network (user_id,
 * network), an account from anywhere (user_id, 0.0.0.0/0), a network across
 * accounts ('', network).  A network is an IPv4 address (/32) or an IPv6
 * /64.  Ordinary WAL-logged rows: a crash must not hand an attacker a fresh
 * set of attempts.  Failures recorded with login_failed(); a key's are
 * forgotten sessmgr.login_failure_window after its last one, except an
 * account's while it is locked; cleanup removes forgotten keys.
 */
CREATE TABLE sessmgr.login_attempts (
    user_id         text        NOT NULL,   -- '' for a network's key (any account)
    network         cidr        NOT NULL,   -- 0.0.0.0/0 for an account's key (any network)
    failures        integer     NOT NULL,   -- consecutive, within the window
    first_failed_at timestamptz NOT NULL,
    last_failed_at  timestamptz NOT NULL,
    delayed_until   timestamptz,            -- the next attempt waits until then
    locked_at       timestamptz,            -- an account's key: locked until unlock_account
    event_at        timestamptz,            -- the last login_failed event of the key
    event_failures  integer     NOT NULL DEFAULT 0,    -- failures that event reported
    unreported      integer     NOT NULL DEFAULT 0,    -- failures since that event
    CONSTRAINT login_attempts_pkey PRIMARY KEY (user_id, network)
    -- no CHECK constraints: every failure would parse and evaluate them (only
    -- src/throttle.c writes the table; ('', 0.0.0.0/0) is never a key, and
    -- only an account's key is ever locked)
) WITH (fillfactor = 80);   -- room for HOT updates of a key under attack

COMMENT ON TABLE sessmgr.login_attempts IS
    'Failed-login counters, one row per key: (user_id, network) an account from one network, (user_id, 0.0.0.0/0) an account from anywhere, ('''', network) a network across accounts.';

SELECT pg_catalog.pg_extension_config_dump('sessmgr.login_attempts', '');

CREATE FUNCTION sessmgr.login_delay(user_id text, ip inet DEFAULT NULL)
RETURNS interval
    AS 'MODULE_PATHNAME', 'sessmgr_login_delay'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.login_delay(text, inet) IS
    'How long the next login attempt for this account from this address must wait: 0 when it may be made now, the largest interval (infinity) while the account is locked.';

REVOKE ALL ON FUNCTION sessmgr.login_delay(text, inet) FROM PUBLIC;

CREATE FUNCTION sessmgr.login_failed(
    user_id    text,
    ip         inet DEFAULT NULL,
    user_agent text DEFAULT NULL,
    reason     text DEFAULT 'bad_credentials')
RETURNS interval
    AS 'MODULE_PATHNAME', 'sessmgr_login_failed'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.login_failed(text, inet, text, text) IS
    'Record a failed login (per account and network, per account, per network across accounts) and return the new delay.';

REVOKE ALL ON FUNCTION sessmgr.login_failed(text, inet, text, text) FROM PUBLIC;

CREATE FUNCTION sessmgr.login_failures(user_id text)
RETURNS integer
    AS 'MODULE_PATHNAME', 'sessmgr_login_failures'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.login_failures(text) IS
    'The account''s consecutive failed logins within sessmgr.login_failure_window; administrators only.';

REVOKE ALL ON FUNCTION sessmgr.login_failures(text) FROM PUBLIC;

CREATE FUNCTION sessmgr.unlock_account(user_id text)
RETURNS boolean
    AS 'MODULE_PATHNAME', 'sessmgr_unlock_account'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.unlock_account(text) IS
    'Clear the account''s failed logins, delays and lock (its networks'' own counts stay); true if there was anything to clear. Administrators only.';

REVOKE ALL ON FUNCTION sessmgr.unlock_account(text) FROM PUBLIC;

/* ---- analytics: logins, session durations, places, devices ---- */

/*
 * Roll-ups of the event history, one set of rows per UTC day, written by
 * cleanup (sessmgr.analytics_roll_up) once the day has ended and no open
 * transaction can still write one of its events.  The analytics functions
 * read them for the whole days they cover and the events themselves for the
 * rest, so that a figure over the 90 days of sessmgr.event_retention reads a
 * few thousand rows instead of millions (docs/monitoring.md, "Analytics").
 * Kept as long as the events.
 */
CREATE TABLE sessmgr.analytics_days (
    day               date        NOT NULL,
    logins            bigint      NOT NULL,
    failed_logins     bigint      NOT NULL,
    suspicious_logins bigint      NOT NULL,
    revocations       bigint      NOT NULL,
    evictions         bigint      NOT NULL,
    rolled_up_at      timestamptz NOT NULL,
    CONSTRAINT analytics_days_pkey PRIMARY KEY (day)
);

COMMENT ON TABLE sessmgr.analytics_days IS
    'Analytics: the event counts of each rolled-up UTC day; the days run without a gap up to the roll-up horizon.';

/*
 * The users who logged in on a day, by the day they had last logged in
 * before ('-infinity': not within the history).  The distinct users of any
 * run of days [a, b) are those of its days whose previous day is before a:
 * exact, from a few thousand rows.
 */
CREATE TABLE sessmgr.analytics_returns (
    day      date   NOT NULL,
    prev_day date   NOT NULL,
    users    bigint NOT NULL,
    CONSTRAINT analytics_returns_pkey PRIMARY KEY (day, prev_day)
);

COMMENT ON TABLE sessmgr.analytics_returns IS
    'Analytics: users who logged in on day, by the previous day they had logged in (-infinity: none).';

-- each user's last rolled-up day with a login
CREATE TABLE sessmgr.analytics_user_days (
    user_id  text NOT NULL,
    last_day date NOT NULL,
    CONSTRAINT analytics_user_days_pkey PRIMARY KEY (user_id)
);

COMMENT ON TABLE sessmgr.analytics_user_days IS
    'Analytics: the last rolled-up day each user logged in.';

-- logins and suspicious logins per day and country ('' where unknown)
CREATE TABLE sessmgr.analytics_places (
    day               date   NOT NULL,
    country_code      text   NOT NULL,
    country           text,
    logins            bigint NOT NULL,
    suspicious_logins bigint NOT NULL,
    CONSTRAINT analytics_places_pkey PRIMARY KEY (day, country_code)
);

COMMENT ON TABLE sessmgr.analytics_places IS
    'Analytics: logins and suspicious logins per rolled-up day and country ('''' where unknown).';

-- each user's last rolled-up login from each country
CREATE TABLE sessmgr.analytics_user_places (
    country_code text        NOT NULL,
    user_id      text        NOT NULL,
    last_at      timestamptz NOT NULL,
    CONSTRAINT analytics_user_places_pkey PRIMARY KEY (country_code, user_id)
);

COMMENT ON TABLE sessmgr.analytics_user_places IS
    'Analytics: the last rolled-up login of each user from each country.';

-- logins per day and device ('' where unknown)
CREATE TABLE sessmgr.analytics_devices (
    day         date   NOT NULL,
    browser     text   NOT NULL,
    os          text   NOT NULL,
    device_type text   NOT NULL,
    logins      bigint NOT NULL,
    CONSTRAINT analytics_devices_pkey PRIMARY KEY (day, browser, os, device_type)
);

COMMENT ON TABLE sessmgr.analytics_devices IS
    'Analytics: logins per rolled-up day and browser, OS and device type ('''' where unknown).';

-- each user's last rolled-up login from each kind of device
CREATE TABLE sessmgr.analytics_user_devices (
    browser     text        NOT NULL,
    os          text        NOT NULL,
    device_type text        NOT NULL,
    user_id     text        NOT NULL,
    last_at     timestamptz NOT NULL,
    CONSTRAINT analytics_user_devices_pkey PRIMARY KEY (browser, os, device_type, user_id)
);

COMMENT ON TABLE sessmgr.analytics_user_devices IS
    'Analytics: the last rolled-up login of each user from each browser, OS and device type.';

/*
 * Sessions that ended on a day, by kind and duration: a histogram whose
 * buckets are 1/32 of a doubling wide (2.2%), each with the longest
 * duration in it, which is what a percentile reports.
 */
CREATE TABLE sessmgr.analytics_durations (
    day     date     NOT NULL,
    kind    text     NOT NULL,
    bucket  integer  NOT NULL,
    ended   bigint   NOT NULL,
    longest interval NOT NULL,
    CONSTRAINT analytics_durations_pkey PRIMARY KEY (day, kind, bucket)
);

COMMENT ON TABLE sessmgr.analytics_durations IS
    'Analytics: sessions ended per rolled-up day, kind and duration bucket, with the longest duration of each bucket.';

SELECT pg_catalog.pg_extension_config_dump('sessmgr.analytics_days', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.analytics_returns', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.analytics_user_days', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.analytics_places', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.analytics_user_places', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.analytics_devices', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.analytics_user_devices', '');
SELECT pg_catalog.pg_extension_config_dump('sessmgr.analytics_durations', '');

-- The duration bucket of a session: 32 per doubling.
CREATE FUNCTION sessmgr.analytics_duration_bucket(duration interval) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN pg_catalog.floor(pg_catalog.ln(GREATEST(
               pg_catalog.date_part('epoch', duration), 0.000001::double precision))
           OPERATOR(pg_catalog.*) 46.16624130844683::double precision)::integer;

-- The failed attempts a login_failed event reports (src/throttle.c: details.failures).
CREATE FUNCTION sessmgr.analytics_failures(details jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN pg_catalog.jsonb_typeof(details OPERATOR(pg_catalog.->) 'failures')
                     OPERATOR(pg_catalog.=) 'number'
                THEN GREATEST(0, (details OPERATOR(pg_catalog.->>) 'failures')::numeric)::bigint
                ELSE 1 END;

/*
 * The logins (issue events) and suspicious logins that occurred in
 * [from_at, to_at), with their country and device; a suspicious login
 * without a country takes its session's.  '' stands for unknown.
 */
CREATE FUNCTION sessmgr.analytics_logins(from_at timestamptz, to_at timestamptz)
RETURNS TABLE (occurred_at timestamptz, event text, user_id text, country_code text,
               country text, browser text, os text, device_type text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.occurred_at, e.event, e.user_id,
           coalesce(e.country_code, i.country_code, ''), coalesce(e.country, i.country),
           coalesce(e.browser, ''), coalesce(e.os, ''), coalesce(e.device_type, '')
      FROM sessmgr.session_events e
      LEFT JOIN LATERAL (
           SELECT x.country_code, x.country
             FROM sessmgr.session_events x
            WHERE e.event = 'suspicious_login' AND e.country_code IS NULL
              AND x.session_id = e.session_id AND x.event = 'issue'
            LIMIT 1) i ON true
     WHERE from_at < to_at
       AND e.occurred_at >= from_at AND e.occurred_at < to_at
       AND e.event = ANY ('{issue,suspicious_login}')
$$;

/*
 * The sessions that ended in [from_at, to_at) (and by now), with their kind
 * and duration: revoked and evicted ones by their events, those that timed
 * out by their expire events once cleanup has removed them and by their
 * rows until then (a removal and its event commit together, so each counts
 * once).  kind is 'remembered/' or 'ordinary/' followed by the revoke
 * reason, 'cap', 'idle' or 'absolute'.
 */
CREATE FUNCTION sessmgr.analytics_ends(from_at timestamptz, to_at timestamptz)
RETURNS TABLE (kind text, duration interval)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN (e.details ->> 'remember')::boolean THEN 'remembered/' ELSE 'ordinary/' END
           || coalesce(e.reason, e.event),
           greatest(e.occurred_at - (e.details ->> 'session_created_at')::timestamptz, interval '0')
      FROM sessmgr.session_events e
     WHERE from_at < to_at
       AND e.occurred_at >= from_at AND e.occurred_at < to_at
       AND e.event = ANY ('{revoke,evict,expire}')
       AND e.details ? 'session_created_at'
    UNION ALL
    SELECT CASE WHEN s.remember THEN 'remembered/' ELSE 'ordinary/' END
           || CASE WHEN s.last_active_at + s.idle_timeout < s.expires_at THEN 'idle' ELSE 'absolute' END,
           greatest(least(s.expires_at, s.last_active_at + s.idle_timeout) - s.created_at, interval '0')
      FROM sessmgr.sessions s
     WHERE from_at < to_at
       AND s.revoked_at IS NULL
       AND least(s.expires_at, s.last_active_at + s.idle_timeout) >= from_at
       AND least(s.expires_at, s.last_active_at + s.idle_timeout) < to_at
       AND least(s.expires_at, s.last_active_at + s.idle_timeout) <= now()
$$;

/*
 * Roll up the next UTC day, if it has ended before every open transaction
 * that has written anything began (an event is stamped with the time it is
 * written, so none of that day can commit later), and drop the roll-ups
 * older than events_before.  Returns whether it rolled up a day; cleanup
 * calls it until it does not, a day per transaction (src/cleanup.c).  Two
 * cleanup runs at once: the second finds the first's advisory lock and
 * rolls up nothing.
 */
CREATE FUNCTION sessmgr.analytics_roll_up(events_before timestamptz) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    first_kept date := (events_before AT TIME ZONE 'UTC')::date;
    rollup_day date;
    day_start timestamptz;
    day_end timestamptz;
    safe_until timestamptz;
BEGIN
    IF events_before IS NULL THEN
        RAISE EXCEPTION 'events_before must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- one roll-up at a time, and never a wait: a run that finds another at
    -- work leaves the days to it
    IF NOT pg_try_advisory_xact_lock('sessmgr.analytics_days'::regclass::oid::bigint) THEN
        RETURN false;
    END IF;
    SELECT max(d.day) + 1 INTO rollup_day FROM sessmgr.analytics_days d;
    IF rollup_day IS NULL THEN
        SELECT (min(e.occurred_at) AT TIME ZONE 'UTC')::date INTO rollup_day
          FROM sessmgr.session_events e;
        IF rollup_day IS NULL THEN
            RETURN false;
        END IF;
    END IF;
    rollup_day := greatest(rollup_day, first_kept);
    day_start := rollup_day::timestamp AT TIME ZONE 'UTC';
    day_end := (rollup_day + 1)::timestamp AT TIME ZONE 'UTC';

    SELECT least(now(), min(a.xact_start)) INTO safe_until
      FROM pg_stat_activity a
     WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid();
    safe_until := least(safe_until, (SELECT min(p.prepared) FROM pg_prepared_xacts p));
    IF day_end > safe_until THEN
        RETURN false;
    END IF;

    -- what is older than the events goes with them
    DELETE FROM sessmgr.analytics_days d WHERE d.day < first_kept;
    DELETE FROM sessmgr.analytics_returns r WHERE r.day < first_kept;
    DELETE FROM sessmgr.analytics_places p WHERE p.day < first_kept;
    DELETE FROM sessmgr.analytics_devices d WHERE d.day < first_kept;
    DELETE FROM sessmgr.analytics_durations d WHERE d.day < first_kept;
    DELETE FROM sessmgr.analytics_user_days u WHERE u.last_day < first_kept;
    DELETE FROM sessmgr.analytics_user_places u WHERE u.last_at < events_before;
    DELETE FROM sessmgr.analytics_user_devices u WHERE u.last_at < events_before;

    INSERT INTO sessmgr.analytics_days
           (day, logins, failed_logins, suspicious_logins, revocations, evictions, rolled_up_at)
    SELECT rollup_day,
           count(*) FILTER (WHERE e.event = 'issue'),
           coalesce(sum(sessmgr.analytics_failures(e.details)) FILTER (WHERE e.event = 'login_failed'), 0),
           count(*) FILTER (WHERE e.event = 'suspicious_login'),
           count(*) FILTER (WHERE e.event = 'revoke'),
           count(*) FILTER (WHERE e.event = 'evict'),
           now()
      FROM sessmgr.session_events e
     WHERE e.occurred_at >= day_start AND e.occurred_at < day_end;

    WITH u AS (
        SELECT DISTINCT e.user_id
          FROM sessmgr.session_events e
         WHERE e.occurred_at >= day_start AND e.occurred_at < day_end AND e.event = 'issue'
    ), r AS (
        INSERT INTO sessmgr.analytics_returns (day, prev_day, users)
        SELECT rollup_day, coalesce(a.last_day, '-infinity'::date), count(*)
          FROM u LEFT JOIN sessmgr.analytics_user_days a ON a.user_id = u.user_id
         GROUP BY 2
    )
    INSERT INTO sessmgr.analytics_user_days AS a (user_id, last_day)
    SELECT u.user_id, rollup_day FROM u
        ON CONFLICT (user_id) DO UPDATE SET last_day = EXCLUDED.last_day;

    WITH l AS MATERIALIZED (
        SELECT * FROM sessmgr.analytics_logins(day_start, day_end)
    ), p AS (
        INSERT INTO sessmgr.analytics_places (day, country_code, country, logins, suspicious_logins)
        SELECT rollup_day, l.country_code, max(l.country),
               count(*) FILTER (WHERE l.event = 'issue'),
               count(*) FILTER (WHERE l.event = 'suspicious_login')
          FROM l GROUP BY l.country_code
    ), up AS (
        INSERT INTO sessmgr.analytics_user_places AS a (country_code, user_id, last_at)
        SELECT l.country_code, l.user_id, max(l.occurred_at)
          FROM l WHERE l.event = 'issue'
         GROUP BY l.country_code, l.user_id
            ON CONFLICT (country_code, user_id) DO UPDATE
           SET last_at = greatest(a.last_at, EXCLUDED.last_at)
    ), d AS (
        INSERT INTO sessmgr.analytics_devices (day, browser, os, device_type, logins)
        SELECT rollup_day, l.browser, l.os, l.device_type, count(*)
          FROM l WHERE l.event = 'issue'
         GROUP BY l.browser, l.os, l.device_type
    )
    INSERT INTO sessmgr.analytics_user_devices AS a (browser, os, device_type, user_id, last_at)
    SELECT l.browser, l.os, l.device_type, l.user_id, max(l.occurred_at)
      FROM l WHERE l.event = 'issue'
     GROUP BY l.browser, l.os, l.device_type, l.user_id
        ON CONFLICT (browser, os, device_type, user_id) DO UPDATE
       SET last_at = greatest(a.last_at, EXCLUDED.last_at);

    INSERT INTO sessmgr.analytics_durations (day, kind, bucket, ended, longest)
    SELECT rollup_day, x.kind, sessmgr.analytics_duration_bucket(x.duration), count(*), max(x.duration)
      FROM sessmgr.analytics_ends(day_start, day_end) x
     GROUP BY x.kind, sessmgr.analytics_duration_bucket(x.duration);
    RETURN true;
END
$$;

COMMENT ON FUNCTION sessmgr.analytics_roll_up(timestamptz) IS
    'Roll up the next ended UTC day of the event history for the analytics functions; cleanup calls it.';

/*
 * The rolled-up days whole days after since, [lo, hi), and where the events
 * must be read instead: [since, lo_at) and [hi_at, infinity).  No rolled-up
 * days: lo_at and hi_at are infinity.
 */
CREATE FUNCTION sessmgr.analytics_span(since timestamptz,
                                       OUT lo date, OUT hi date,
                                       OUT lo_at timestamptz, OUT hi_at timestamptz)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    since_day date;
BEGIN
    SELECT min(d.day), max(d.day) + 1 INTO lo, hi FROM sessmgr.analytics_days d;
    IF lo IS NOT NULL AND since > lo::timestamp AT TIME ZONE 'UTC' THEN
        since_day := (since AT TIME ZONE 'UTC')::date;
        IF since_day < hi AND since_day::timestamp AT TIME ZONE 'UTC' < since THEN
            since_day := since_day + 1;
        END IF;
        lo := greatest(lo, since_day);
    END IF;
    IF lo IS NULL OR lo >= hi THEN
        lo := NULL;
        hi := NULL;
        lo_at := 'infinity';
        hi_at := 'infinity';
    ELSE
        lo_at := lo::timestamp AT TIME ZONE 'UTC';
        hi_at := hi::timestamp AT TIME ZONE 'UTC';
    END IF;
END
$$;

-- since must be given
CREATE FUNCTION sessmgr.analytics_check_since(since timestamptz) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF since IS NULL THEN
        RAISE EXCEPTION 'since must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the start of the period, for example now() - interval ''30 days''.';
    END IF;
END
$$;

/*
 * Logins, distinct users, failed and suspicious logins, revocations and
 * evictions per bucket, from the bucket that holds since up to the one that
 * holds now.  Buckets are aligned to UTC midnight (multiples of bucket from
 * 2001-01-01 00:00 UTC, a Monday); a bucket of whole days reads the
 * roll-ups for its rolled-up days.
 */
CREATE FUNCTION sessmgr.login_activity(since timestamptz, bucket interval DEFAULT '1 day')
RETURNS TABLE (bucket_start timestamptz, logins bigint, users bigint, failed_logins bigint,
               suspicious_logins bigint, revocations bigint, evictions bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    origin constant timestamptz := '2001-01-01 00:00:00+00';
    max_buckets constant integer := 10000;
    step_secs numeric;
    step interval;
    start_at timestamptz := since;
    first_start timestamptz;
    n_buckets numeric;
    span record;
    roll_from timestamptz := 'infinity';   -- buckets starting in [roll_from, roll_to)
    roll_to timestamptz := 'infinity';     -- read the roll-ups up to roll_to
BEGIN
    PERFORM sessmgr.analytics_check_since(since);
    IF bucket IS NULL THEN
        RAISE EXCEPTION 'bucket must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF date_part('month', bucket) <> 0 OR date_part('year', bucket) <> 0 THEN
        RAISE EXCEPTION 'bucket must not be given in months or years'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give it in days, hours, minutes or seconds, for example ''30 days''.';
    END IF;
    step_secs := date_part('epoch', bucket)::numeric;
    IF step_secs < 1 OR step_secs > 3660 * 86400 THEN
        RAISE EXCEPTION 'bucket must be between 1 second and 3660 days'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    step := make_interval(secs => step_secs::double precision);

    -- no earlier than the history
    IF since < now() THEN
        start_at := greatest(since, least((SELECT min(e.occurred_at) FROM sessmgr.session_events e),
                                          (SELECT min(d.day) FROM sessmgr.analytics_days d)::timestamp
                                              AT TIME ZONE 'UTC',
                                          now()));
    END IF;
    IF start_at IS NULL OR start_at > now() THEN
        RETURN;
    END IF;
    first_start := date_bin(step, start_at, origin);
    n_buckets := floor(date_part('epoch', date_bin(step, now(), origin) - first_start)::numeric
                       / step_secs) + 1;
    IF n_buckets > max_buckets THEN
        RAISE EXCEPTION 'too many buckets'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = format('From since to now there are %s buckets; the most is %s.',
                                  n_buckets, max_buckets),
                  HINT = 'Use a later since or a longer bucket.';
    END IF;

    -- whole-day buckets that start within the rolled-up days read the
    -- roll-ups up to their end, the events after that
    IF step_secs % 86400 = 0 THEN
        span := sessmgr.analytics_span('-infinity');
        IF span.lo IS NOT NULL THEN
            roll_from := date_bin(step, span.lo_at - interval '1 microsecond', origin) + step;
            roll_to := span.hi_at;
            IF roll_from >= roll_to THEN
                roll_from := 'infinity';
                roll_to := 'infinity';
            END IF;
        END IF;
    END IF;

    RETURN QUERY
    WITH buckets AS (
        SELECT first_start + step * i AS bs
          FROM generate_series(0, n_buckets::integer - 1) i
    ), raw AS (
        SELECT e.occurred_at, e.event, e.user_id, e.details
          FROM sessmgr.session_events e
         WHERE e.occurred_at >= first_start AND e.occurred_at < roll_from
        UNION ALL
        SELECT e.occurred_at, e.event, e.user_id, e.details
          FROM sessmgr.session_events e
         WHERE e.occurred_at >= greatest(roll_to, first_start)
    ), raw_buckets AS (
        SELECT date_bin(step, r.occurred_at, origin) AS bs, r.event, r.user_id, r.details
          FROM raw r
         WHERE r.event = ANY ('{issue,login_failed,suspicious_login,revoke,evict}')
    ), raw_counts AS (
        SELECT r.bs,
               count(*) FILTER (WHERE r.event = 'issue') AS logins,
               -- a user of a bucket's tail counts unless the rolled-up days
               -- of that bucket have them already
               count(DISTINCT r.user_id) FILTER (
                   WHERE r.event = 'issue'
                     AND (r.bs < roll_from OR r.bs >= roll_to
                          OR coalesce(u.last_day, '-infinity') < (r.bs AT TIME ZONE 'UTC')::date)) AS users,
               coalesce(sum(sessmgr.analytics_failures(r.details))
                            FILTER (WHERE r.event = 'login_failed'), 0) AS failed_logins,
               count(*) FILTER (WHERE r.event = 'suspicious_login') AS suspicious_logins,
               count(*) FILTER (WHERE r.event = 'revoke') AS revocations,
               count(*) FILTER (WHERE r.event = 'evict') AS evictions
          FROM raw_buckets r
          LEFT JOIN sessmgr.analytics_user_days u
                 ON r.event = 'issue' AND r.bs >= roll_from AND r.bs < roll_to
                AND u.user_id = r.user_id
         GROUP BY r.bs
    ), rolled_counts AS (
        SELECT date_bin(step, d.day::timestamp AT TIME ZONE 'UTC', origin) AS bs,
               sum(d.logins)::bigint AS logins,
               sum(d.failed_logins)::bigint AS failed_logins,
               sum(d.suspicious_logins)::bigint AS suspicious_logins,
               sum(d.revocations)::bigint AS revocations,
               sum(d.evictions)::bigint AS evictions
          FROM sessmgr.analytics_days d
         WHERE d.day::timestamp AT TIME ZONE 'UTC' >= greatest(roll_from, first_start)
           AND d.day::timestamp AT TIME ZONE 'UTC' < roll_to
         GROUP BY 1
    ), rolled_users AS (
        SELECT x.bs, sum(r.users)::bigint AS users
          FROM sessmgr.analytics_returns r,
               LATERAL (SELECT date_bin(step, r.day::timestamp AT TIME ZONE 'UTC', origin) AS bs) x
         WHERE r.day::timestamp AT TIME ZONE 'UTC' >= greatest(roll_from, first_start)
           AND r.day::timestamp AT TIME ZONE 'UTC' < roll_to
           AND r.prev_day < (x.bs AT TIME ZONE 'UTC')::date
         GROUP BY x.bs
    )
    SELECT b.bs,
           coalesce(c.logins, 0) + coalesce(w.logins, 0),
           coalesce(ru.users, 0) + coalesce(w.users, 0),
           coalesce(c.failed_logins, 0) + coalesce(w.failed_logins, 0)::bigint,
           coalesce(c.suspicious_logins, 0) + coalesce(w.suspicious_logins, 0),
           coalesce(c.revocations, 0) + coalesce(w.revocations, 0),
           coalesce(c.evictions, 0) + coalesce(w.evictions, 0)
      FROM buckets b
      LEFT JOIN rolled_counts c ON c.bs = b.bs
      LEFT JOIN rolled_users ru ON ru.bs = b.bs
      LEFT JOIN raw_counts w ON w.bs = b.bs
     ORDER BY b.bs;
END
$$;

COMMENT ON FUNCTION sessmgr.login_activity(timestamptz, interval) IS
    'Administrators: logins, distinct users, failed and suspicious logins, revocations and evictions per bucket (UTC-aligned) from the one holding since.';

/*
 * Sessions that ended since since, per kind (see analytics_ends; also
 * 'ordinary', 'remembered' and 'all'), with the 50th, 90th and 99th
 * percentiles of their durations: each the longest duration of the
 * histogram bucket that holds the exact percentile (nearest rank), so at
 * most 2.2% above it, and exact when that bucket holds one duration.
 */
CREATE FUNCTION sessmgr.session_durations(since timestamptz)
RETURNS TABLE (kind text, ended bigint, p50 interval, p90 interval, p99 interval)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    span record;
BEGIN
    PERFORM sessmgr.analytics_check_since(since);
    span := sessmgr.analytics_span(since);
    RETURN QUERY
    WITH raw AS (
        SELECT x.kind, x.duration FROM sessmgr.analytics_ends(since, span.lo_at) x
        UNION ALL
        SELECT x.kind, x.duration FROM sessmgr.analytics_ends(span.hi_at, 'infinity') x
    ), h AS (
        SELECT y.kind, y.bucket, sum(y.n) AS n, max(y.longest) AS longest
          FROM (SELECT d.kind, d.bucket, d.ended AS n, d.longest
                  FROM sessmgr.analytics_durations d
                 WHERE d.day >= span.lo AND d.day < span.hi
                UNION ALL
                SELECT r.kind, sessmgr.analytics_duration_bucket(r.duration), 1, r.duration
                  FROM raw r) y
         GROUP BY y.kind, y.bucket
    ), k AS (
        SELECT g.kind, h.bucket, sum(h.n) AS n, max(h.longest) AS longest
          FROM h, LATERAL (VALUES (h.kind), (split_part(h.kind, '/', 1)), ('all')) g(kind)
         GROUP BY g.kind, h.bucket
    ), c AS (
        SELECT k.kind, k.bucket, k.longest,
               sum(k.n) OVER (PARTITION BY k.kind ORDER BY k.bucket) AS cum,
               sum(k.n) OVER (PARTITION BY k.kind) AS total
          FROM k
    )
    SELECT c.kind, max(c.total)::bigint,
           (array_agg(c.longest ORDER BY c.bucket) FILTER (WHERE c.cum >= ceil(0.50 * c.total)))[1],
           (array_agg(c.longest ORDER BY c.bucket) FILTER (WHERE c.cum >= ceil(0.90 * c.total)))[1],
           (array_agg(c.longest ORDER BY c.bucket) FILTER (WHERE c.cum >= ceil(0.99 * c.total)))[1]
      FROM c
     GROUP BY c.kind
     ORDER BY c.kind COLLATE "C";
END
$$;

COMMENT ON FUNCTION sessmgr.session_durations(timestamptz) IS
    'Administrators: sessions ended since since per kind (remembered or ordinary, and how they ended), with p50/p90/p99 durations (at most 2.2% above the exact ones).';

/*
 * Logins, distinct users and suspicious logins per country since since
 * (country_code NULL: unknown), most logins first.
 */
CREATE FUNCTION sessmgr.login_geography(since timestamptz)
RETURNS TABLE (country_code text, country text, logins bigint, users bigint,
               suspicious_logins bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    span record;
BEGIN
    PERFORM sessmgr.analytics_check_since(since);
    span := sessmgr.analytics_span(since);
    RETURN QUERY
    WITH raw AS MATERIALIZED (
        SELECT * FROM sessmgr.analytics_logins(since, span.lo_at)
        UNION ALL
        SELECT * FROM sessmgr.analytics_logins(span.hi_at, 'infinity')
    ), counts AS (
        SELECT p.country_code, max(p.country) AS country, sum(p.logins) AS logins,
               sum(p.suspicious_logins) AS suspicious_logins
          FROM sessmgr.analytics_places p
         WHERE p.day >= span.lo AND p.day < span.hi
         GROUP BY p.country_code
        UNION ALL
        SELECT r.country_code, max(r.country), count(*) FILTER (WHERE r.event = 'issue'),
               count(*) FILTER (WHERE r.event = 'suspicious_login')
          FROM raw r
         GROUP BY r.country_code
    ), users AS (
        -- whose last rolled-up login from there is since since, and who
        -- logged in from there in what the roll-ups do not cover
        SELECT a.country_code, count(*) AS users
          FROM sessmgr.analytics_user_places a
         WHERE a.last_at >= since
         GROUP BY a.country_code
        UNION ALL
        SELECT x.country_code, count(*)
          FROM (SELECT DISTINCT r.country_code, r.user_id FROM raw r WHERE r.event = 'issue') x
         WHERE NOT EXISTS (SELECT 1 FROM sessmgr.analytics_user_places a
                            WHERE a.country_code = x.country_code AND a.user_id = x.user_id
                              AND a.last_at >= since)
         GROUP BY x.country_code
    ), per_country AS (
        SELECT c.country_code, max(c.country) AS country, sum(c.logins)::bigint AS logins,
               sum(c.suspicious_logins)::bigint AS suspicious_logins
          FROM counts c
         GROUP BY c.country_code
    )
    SELECT nullif(p.country_code, ''), p.country, p.logins,
           coalesce((SELECT sum(u.users) FROM users u WHERE u.country_code = p.country_code), 0)::bigint,
           p.suspicious_logins
      FROM per_country p
     WHERE p.logins > 0 OR p.suspicious_logins > 0
     ORDER BY p.logins DESC, p.country_code COLLATE "C";
END
$$;

COMMENT ON FUNCTION sessmgr.login_geography(timestamptz) IS
    'Administrators: logins, distinct users and suspicious logins per country since since (country_code NULL: unknown).';

/*
 * Logins and distinct users per browser, OS and device type since since
 * (NULL: unknown), most logins first.
 */
CREATE FUNCTION sessmgr.device_usage(since timestamptz)
RETURNS TABLE (browser text, os text, device_type text, logins bigint, users bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    span record;
BEGIN
    PERFORM sessmgr.analytics_check_since(since);
    span := sessmgr.analytics_span(since);
    RETURN QUERY
    WITH raw AS MATERIALIZED (
        SELECT * FROM sessmgr.analytics_logins(since, span.lo_at) l WHERE l.event = 'issue'
        UNION ALL
        SELECT * FROM sessmgr.analytics_logins(span.hi_at, 'infinity') l WHERE l.event = 'issue'
    ), counts AS (
        SELECT d.browser, d.os, d.device_type, sum(d.logins) AS logins
          FROM sessmgr.analytics_devices d
         WHERE d.day >= span.lo AND d.day < span.hi
         GROUP BY d.browser, d.os, d.device_type
        UNION ALL
        SELECT r.browser, r.os, r.device_type, count(*)
          FROM raw r
         GROUP BY r.browser, r.os, r.device_type
    ), users AS (
        SELECT a.browser, a.os, a.device_type, count(*) AS users
          FROM sessmgr.analytics_user_devices a
         WHERE a.last_at >= since
         GROUP BY a.browser, a.os, a.device_type
        UNION ALL
        SELECT x.browser, x.os, x.device_type, count(*)
          FROM (SELECT DISTINCT r.browser, r.os, r.device_type, r.user_id FROM raw r) x
         WHERE NOT EXISTS (SELECT 1 FROM sessmgr.analytics_user_devices a
                            WHERE a.browser = x.browser AND a.os = x.os
                              AND a.device_type = x.device_type AND a.user_id = x.user_id
                              AND a.last_at >= since)
         GROUP BY x.browser, x.os, x.device_type
    ), per_device AS (
        SELECT c.browser, c.os, c.device_type, sum(c.logins)::bigint AS logins
          FROM counts c
         GROUP BY c.browser, c.os, c.device_type
    )
    SELECT nullif(p.browser, ''), nullif(p.os, ''), nullif(p.device_type, ''), p.logins,
           coalesce((SELECT sum(u.users) FROM users u
                      WHERE u.browser = p.browser AND u.os = p.os
                        AND u.device_type = p.device_type), 0)::bigint
      FROM per_device p
     WHERE p.logins > 0
     ORDER BY p.logins DESC, p.browser COLLATE "C", p.os COLLATE "C", p.device_type COLLATE "C";
END
$$;

COMMENT ON FUNCTION sessmgr.device_usage(timestamptz) IS
    'Administrators: logins and distinct users per browser, OS and device type since since (NULL: unknown).';

REVOKE ALL ON FUNCTION sessmgr.analytics_duration_bucket(interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.analytics_failures(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.analytics_logins(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.analytics_ends(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.analytics_roll_up(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.analytics_span(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.analytics_check_since(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.login_activity(timestamptz, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.session_durations(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.login_geography(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION sessmgr.device_usage(timestamptz) FROM PUBLIC;

/* ---- account protection: suspicious logins ---- */

/*
 * What issue() compares a new login with (src/risk.c,
 * docs/protecting-accounts.md): one row per user, read and written by key,
 * so that the checks never scan a user's events.  Rows of users who have
 * not logged in for sessmgr.event_retention are removed by cleanup.
 */
CREATE TABLE sessmgr.login_profiles (
    user_id                 text        NOT NULL,
    logins                  bigint      NOT NULL DEFAULT 0,
    first_login_at          timestamptz NOT NULL,
    last_login_at           timestamptz NOT NULL,
    -- the last login's place (NULLs: unknown), for impossible_travel
    last_country_code       text,
    last_city               text,
    last_latitude           double precision,
    last_longitude          double precision,
    last_accuracy_radius_km integer,
    -- country codes and AS numbers of the user's logins, newest last (at most 32)
    countries               text[]      NOT NULL DEFAULT '{}',
    networks                bigint[]    NOT NULL DEFAULT '{}',
    -- the local minute of the day of the last 30 logins, for unusual_time
    login_minutes           smallint[]  NOT NULL DEFAULT '{}',
    CONSTRAINT login_profiles_pkey PRIMARY KEY (user_id)
);

COMMENT ON TABLE sessmgr.login_profiles IS
    'Per user: what the suspicious-login checks of issue() compare a new login with (logins, last place, countries, networks, login times).';

SELECT pg_catalog.pg_extension_config_dump('sessmgr.login_profiles', '');

/*
 * The devices a user logged in from: the SHA-256 of the device cookie
 * issue_from_request keeps (kind 'cookie'), or of the browser, OS and device
 * type for clients without one (kind 'agent').  A device first seen in a
 * suspicious login is not trusted (still "new") until the user confirms the
 * session or an ordinary login comes from it.
 */
CREATE TABLE sessmgr.known_devices (
    user_id         text        NOT NULL,
    device_key      bytea       NOT NULL,
    kind            text        NOT NULL,
    label           text,
    browser         text,
    os              text,
    device_type     text,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    last_session_id uuid,
    confirmed_at    timestamptz,
    trusted         boolean     NOT NULL DEFAULT true,
    CONSTRAINT known_devices_pkey PRIMARY KEY (user_id, device_key),
    CONSTRAINT known_devices_device_key_check
        CHECK (pg_catalog.octet_length(device_key) OPERATOR(pg_catalog.=) 32),
    CONSTRAINT known_devices_kind_check
        CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['cookie', 'agent']::text[]))
);

COMMENT ON TABLE sessmgr.known_devices IS
    'Per user and device: the devices a user logged in from (SHA-256 of the device cookie, or of browser/OS/device type), for new_device.';

SELECT pg_catalog.pg_extension_config_dump('sessmgr.known_devices', '');

/*
 * A user's recent security events: sign-ins with device, place and risk,
 * suspicious logins, confirmations, failed attempts (with where they came
 * from), locks and unlocks; newest first, at most 1000.
 */
CREATE FUNCTION sessmgr.security_events(user_id text,
                                        since timestamptz DEFAULT pg_catalog.now() OPERATOR(pg_catalog.-) '30 days'::interval)
RETURNS TABLE (occurred_at timestamptz, event text, session_id uuid, device text, ip inet,
               country_code text, country text, city text, risk text[], failures integer,
               details jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.occurred_at, e.event, e.session_id,
           coalesce(e.device, e.details OPERATOR(pg_catalog.->>) 'device'),
           e.ip,
           coalesce(e.country_code, g.country_code), coalesce(e.country, g.country),
           coalesce(e.city, g.city),
           CASE e.event
                WHEN 'issue' THEN s.risk
                WHEN 'suspicious_login' THEN
                     ARRAY(SELECT jsonb_array_elements_text(e.details OPERATOR(pg_catalog.->) 'reasons'))
           END,
           CASE WHEN e.event OPERATOR(pg_catalog.=) 'login_failed' THEN
                coalesce((e.details OPERATOR(pg_catalog.->>) 'failures')::integer, 1)
           END,
           e.details
      FROM sessmgr.session_events e
      LEFT JOIN sessmgr.sessions s
             ON e.event OPERATOR(pg_catalog.=) 'issue'
            AND s.id OPERATOR(pg_catalog.=) e.session_id
      LEFT JOIN LATERAL sessmgr.geolocate(
                CASE WHEN e.event OPERATOR(pg_catalog.=) 'login_failed' AND e.country_code IS NULL
                     THEN e.ip END) g ON true
     WHERE e.user_id OPERATOR(pg_catalog.=) $1
       AND e.occurred_at OPERATOR(pg_catalog.>=) $2
       AND e.event OPERATOR(pg_catalog.=) ANY (ARRAY['issue', 'suspicious_login',
               'session_confirmed', 'login_failed', 'account_locked',
               'account_unlocked']::text[])
     ORDER BY e.occurred_at DESC, e.id DESC
     LIMIT 1000
$$;

COMMENT ON FUNCTION sessmgr.security_events(text, timestamptz) IS
    'A user''s sign-ins (device, place, risk), suspicious logins, confirmations and failed attempts since a time, newest first.';

REVOKE ALL ON FUNCTION sessmgr.security_events(text, timestamptz) FROM PUBLIC;

CREATE FUNCTION sessmgr.confirm_session(session_id uuid, user_id text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'sessmgr_confirm_session'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.confirm_session(uuid, text) IS
    '"This was me": clear the risk of one of user_id''s sessions and remember its device, country and network; true if it had any risk.';

REVOKE ALL ON FUNCTION sessmgr.confirm_session(uuid, text) FROM PUBLIC;

CREATE FUNCTION sessmgr_api.my_security_events()
RETURNS TABLE (occurred_at timestamptz, event text, session_id uuid, device text, ip inet,
               country_code text, country text, city text, risk text[], failures integer,
               details jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sessmgr.require_session();
    RETURN QUERY SELECT * FROM sessmgr.security_events(sessmgr.current_user_id());
END
$$;

COMMENT ON FUNCTION sessmgr_api.my_security_events() IS
    'GET /rpc/my_security_events: the caller''s recent sign-ins, suspicious logins and failed attempts.';

REVOKE ALL ON FUNCTION sessmgr_api.my_security_events() FROM PUBLIC;

/*
 * "This was me" from the application.  The caller's session must itself be
 * confirmed (aal >= 1; 401 with the step-up challenge otherwise), and a
 * session flagged as suspicious cannot clear its own flag (403): only
 * another of the user's sessions can vouch for it.
 */
CREATE FUNCTION sessmgr_api.confirm_session(session_id uuid) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sid uuid := sessmgr.require_session();
BEGIN
    IF coalesce(sessmgr.current_aal(), 0) OPERATOR(pg_catalog.<) 1 THEN
        PERFORM sessmgr.require_fresh('1 day'::interval, 1);
    END IF;
    IF confirm_session.session_id OPERATOR(pg_catalog.=) sid
       AND EXISTS (SELECT FROM sessmgr.sessions s
                    WHERE s.id OPERATOR(pg_catalog.=) sid
                      AND pg_catalog.cardinality(s.risk) OPERATOR(pg_catalog.>) 0)
       AND EXISTS (SELECT FROM sessmgr.session_events e
                    WHERE e.session_id OPERATOR(pg_catalog.=) sid
                      AND e.event OPERATOR(pg_catalog.=) 'suspicious_login') THEN
        RAISE SQLSTATE 'PGRST'
            USING MESSAGE = '{"code":"SM403","message":"a suspicious sign-in cannot confirm itself","details":null,"hint":"Confirm it from another signed-in device."}',
                  DETAIL = '{"status":403,"headers":{}}';
    END IF;
    PERFORM sessmgr.confirm_session(confirm_session.session_id, sessmgr.current_user_id());
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE SQLSTATE 'PGRST'
        USING MESSAGE = '{"code":"22023","message":"invalid session id","details":null,"hint":null}',
              DETAIL = '{"status":404,"headers":{}}';
END
$$;

COMMENT ON FUNCTION sessmgr_api.confirm_session(uuid) IS
    'POST /rpc/confirm_session: "this was me" for one of the caller''s sessions (404 for any other id).';

REVOKE ALL ON FUNCTION sessmgr_api.confirm_session(uuid) FROM PUBLIC;

/* sessmgr--0.1.0.sql: the first release of sessmgr */

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
    IF pg_catalog.has_schema_privilege('public', 'sessmgr', 'CREATE') THEN
        RAISE EXCEPTION 'schema "sessmgr" lets PUBLIC create objects'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'REVOKE CREATE ON SCHEMA sessmgr FROM PUBLIC before CREATE EXTENSION sessmgr.';
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
        CHECK (pg_catalog.jsonb_typeof(metadata) OPERATOR(pg_catalog.=) 'object')
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
    session_id  uuid        NOT NULL,
    user_id     text        NOT NULL,
    reason      text,
    actor       name        NOT NULL,
    ip          inet,
    CONSTRAINT session_events_pkey PRIMARY KEY (id),
    CONSTRAINT session_events_event_check
        CHECK (event OPERATOR(pg_catalog.=) ANY (ARRAY['issue', 'revoke', 'evict']::text[]))
);

COMMENT ON TABLE sessmgr.session_events IS
    'Audit trail: issue, revoke and evict events, with the role that caused them.';

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
    user_id     text,
    device_name text    DEFAULT NULL,
    user_agent  text    DEFAULT NULL,
    ip          inet    DEFAULT NULL,
    location    text    DEFAULT NULL,
    remember    boolean DEFAULT false,
    metadata    jsonb   DEFAULT '{}')
RETURNS TABLE (session_id uuid, token text, expires_at timestamptz)
    AS 'MODULE_PATHNAME', 'sessmgr_issue'
    LANGUAGE C VOLATILE ROWS 1;

COMMENT ON FUNCTION sessmgr.issue(text, text, text, inet, text, boolean, jsonb) IS
    'Issue a session for an authenticated user; returns its token once.';

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
    user_id    text DEFAULT NULL,
    reason     text DEFAULT 'logout')
RETURNS boolean
    AS 'MODULE_PATHNAME', 'sessmgr_revoke'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.revoke(uuid, text, text) IS
    'End one session (of user_id, when given); true if this call ended it.';

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
       s.expires_at
  FROM sessmgr.sessions s
 WHERE s.revoked_at IS NULL
   AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
   AND s.last_active_at OPERATOR(pg_catalog.+) s.idle_timeout
       OPERATOR(pg_catalog.>) pg_catalog.now();

COMMENT ON VIEW sessmgr.active_sessions IS
    'Every user''s active sessions (no token hashes), for administrators.';

CREATE FUNCTION sessmgr.list_sessions(user_id text, current_session uuid DEFAULT NULL)
RETURNS TABLE (id uuid, device_name text, user_agent text, ip inet, location text,
               created_at timestamptz, last_active_at timestamptz,
               expires_at timestamptz, is_current boolean, is_remembered boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.id, a.device_name, a.user_agent, a.ip, a.location,
           a.created_at, a.last_active_at, a.expires_at,
           coalesce(a.id OPERATOR(pg_catalog.=) $2, false),
           a.is_remembered
      FROM sessmgr.active_sessions a
     WHERE a.user_id OPERATOR(pg_catalog.=) $1
     ORDER BY a.last_active_at DESC, a.created_at DESC, a.id
$$;

COMMENT ON FUNCTION sessmgr.list_sessions(text, uuid) IS
    'A user''s active sessions, most recently active first, the current one marked.';

/* ---- cleanup, retention, change notifications, health ---- */

/* ---- access tokens, refresh rotation, PostgREST exposure ---- */

/* Nothing is for PUBLIC: the DBA grants the API to application roles. */
REVOKE ALL ON ALL TABLES IN SCHEMA sessmgr FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA sessmgr FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA sessmgr FROM PUBLIC;
REVOKE ALL ON SCHEMA sessmgr FROM PUBLIC;

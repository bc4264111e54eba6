/* sessmgr--0.1.0--0.2.0.sql: update a 0.1.0 install to 0.2.0 (ALTER EXTENSION sessmgr UPDATE) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION sessmgr UPDATE" to load this file. \quit

/*
 * The audit trail names the role the client ran as (PostgREST: the request's
 * role) in actor, and the user of the session the request authenticated with
 * (sessmgr.authenticate or the pre-request check) in actor_user_id.
 */
ALTER TABLE sessmgr.session_events ADD COLUMN actor_user_id text;

COMMENT ON COLUMN sessmgr.session_events.actor IS
    'The role the client ran as: its login role, or the role it switched to with SET ROLE (PostgREST: the request''s role); SECURITY DEFINER functions in between do not change it.';
COMMENT ON COLUMN sessmgr.session_events.actor_user_id IS
    'The user of the session the caller had authenticated with in the transaction (authenticate, pre_request), or NULL.';

/*
 * A retired token's retired_at is when it stopped being the session's token
 * (0.1.0 recorded when it left the session row, at most one rotation later).
 * Refresh keeps the newest 100 per session, found through this index.
 */
DROP INDEX sessmgr.retired_tokens_session_idx;
CREATE INDEX retired_tokens_session_idx ON sessmgr.retired_tokens (session_id, retired_at);

-- the tag of the retired token, so that access tokens minted with it work
-- until they expire (several tabs refreshing at once); NULL for 0.1.0's rows
ALTER TABLE sessmgr.retired_tokens ADD COLUMN token_gen bigint;

COMMENT ON COLUMN sessmgr.retired_tokens.token_gen IS
    'The gen tag of the retired token: its access tokens verify until they expire.';
COMMENT ON COLUMN sessmgr.retired_tokens.retired_at IS
    'When the token stopped being the session''s current token; refreshable for sessmgr.refresh_grace after that.';

/*
 * revoke() takes the user id it may end a session of, always; ending anyone's
 * session is revoke_any(), granted on its own.  Re-created (a default cannot
 * be removed in place) with the grants the DBA made on the old one.
 */
ALTER FUNCTION sessmgr.revoke(uuid, text, text) RENAME TO revoke_0_1_0;

CREATE FUNCTION sessmgr.revoke(
    session_id uuid,
    user_id    text,
    reason     text DEFAULT 'logout')
RETURNS boolean
    AS 'MODULE_PATHNAME', 'sessmgr_revoke'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.revoke(uuid, text, text) IS
    'End one of user_id''s sessions; true if this call ended it.';

REVOKE ALL ON FUNCTION sessmgr.revoke(uuid, text, text) FROM PUBLIC;

-- the grants on the old function, written straight into the catalog so that
-- they stay the DBA's (pg_init_privs keeps the extension's own, as on install)
UPDATE pg_catalog.pg_proc
   SET proacl = (SELECT o.proacl FROM pg_catalog.pg_proc o
                  WHERE o.oid OPERATOR(pg_catalog.=)
                        'sessmgr.revoke_0_1_0(uuid, text, text)'::pg_catalog.regprocedure)
 WHERE oid OPERATOR(pg_catalog.=) 'sessmgr.revoke(uuid, text, text)'::pg_catalog.regprocedure;

DROP FUNCTION sessmgr.revoke_0_1_0(uuid, text, text);

CREATE FUNCTION sessmgr.revoke_any(session_id uuid, reason text DEFAULT 'admin')
RETURNS boolean
    AS 'MODULE_PATHNAME', 'sessmgr_revoke_any'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sessmgr.revoke_any(uuid, text) IS
    'Administrators: end any session; true if this call ended it.';

REVOKE ALL ON FUNCTION sessmgr.revoke_any(uuid, text) FROM PUBLIC;

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
            MESSAGE = '{"code":"SM400","message":"this request cannot be rolled back","details":"Refresh and logout always commit.","hint":"Send the request without Prefer: tx=rollback."}',
            DETAIL  = '{"status":400,"headers":{}}';
    END IF;
END
$$;

REVOKE ALL ON FUNCTION sessmgr.refuse_rollback_request() FROM PUBLIC;

CREATE OR REPLACE FUNCTION sessmgr_api.refresh(refresh_token text DEFAULT NULL, cookie boolean DEFAULT false)
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

CREATE OR REPLACE FUNCTION sessmgr_api.logout(refresh_token text DEFAULT NULL) RETURNS void
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

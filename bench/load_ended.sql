/*
 * bench/load_ended.sql: add :count sessions that ended long ago (half
 * revoked, half past their absolute lifetime, all more than
 * sessmgr.retention ago), for cleanup to remove.  Their users ('e' ...)
 * have no live session.  Loaded like bench/load.sql, triggers off for the
 * INSERT only.
 */
BEGIN;
ALTER TABLE sessmgr.sessions DISABLE TRIGGER sessions_enforce_cap;
ALTER TABLE sessmgr.sessions DISABLE TRIGGER sessions_audit_issue;

INSERT INTO sessmgr.sessions
       (id, created_at, last_active_at, expires_at, idle_timeout, token_gen, remember,
        token_hash, user_id, revoked_at, revoke_reason, device_name, user_agent, ip,
        location, metadata)
SELECT s.id,
       s.created,
       s.created + interval '20 minutes',
       s.created + interval '1 day',
       interval '1 hour',
       bench.token_gen(g),
       false,
       bench.token_hash(s.id),
       'e' || g / 5,
       CASE WHEN g % 2 = 0 THEN s.created + interval '30 minutes' END,
       CASE WHEN g % 2 = 0 THEN 'logout' END,
       'laptop',
       'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
       '203.0.113.10',
       'Berlin',
       '{"app": "web"}'
  FROM generate_series(1000000001::bigint, 1000000000::bigint + :count) g
 CROSS JOIN LATERAL (SELECT bench.session_id(g) AS id,
                            now() - interval '40 days' - (g % 86400) * interval '1 second' AS created) s;

INSERT INTO sessmgr.session_owners (user_id, sessions_issued, last_issued_at, last_revoked_at)
SELECT 'e' || u, 5, now() - interval '40 days', now() - interval '40 days'
  FROM generate_series(1000000001::bigint / 5, (1000000000::bigint + :count) / 5) u
    ON CONFLICT (user_id) DO NOTHING;

ALTER TABLE sessmgr.sessions ENABLE TRIGGER sessions_enforce_cap;
ALTER TABLE sessmgr.sessions ENABLE TRIGGER sessions_audit_issue;
COMMIT;

/*
 * bench/load.sql: add live sessions number :lo to :hi (psql variables) to
 * sessmgr.sessions, five per user ('u' || (g - 1) / 5), with the token
 * hashes sessmgr would have stored (tokens follow from g, see
 * bench.token()).  Sessions were issued within the last 10 hours, last
 * active now, with the default lifetimes (1 day absolute, 1 hour idle) and
 * realistic metadata.  :lo - 1 must be a multiple of 5.
 *
 * Fast bulk load: the per-row cap and audit triggers are disabled for the
 * INSERT only, in the same transaction (ALTER TABLE ... DISABLE TRIGGER is
 * transactional, and its lock keeps every other session out meanwhile), and
 * the users' session_owners rows, which the cap trigger would have written,
 * are inserted directly.  The CHECK constraints and indexes stay in place.
 */
BEGIN;
ALTER TABLE sessmgr.sessions DISABLE TRIGGER sessions_enforce_cap;
ALTER TABLE sessmgr.sessions DISABLE TRIGGER sessions_audit_issue;

INSERT INTO sessmgr.sessions
       (id, created_at, last_active_at, expires_at, idle_timeout, token_gen, remember,
        token_hash, user_id, device_name, user_agent, ip, location, metadata)
SELECT s.id,
       now() - s.age,
       now(),
       now() - s.age + interval '1 day',
       interval '1 hour',
       bench.token_gen(g),
       false,
       bench.token_hash(s.id),
       'u' || (g - 1) / 5,
       'laptop',
       'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
       '203.0.113.10',
       'Berlin',
       '{"app": "web"}'
  FROM generate_series(:lo::bigint, :hi::bigint) g
 CROSS JOIN LATERAL (SELECT bench.session_id(g) AS id,
                            (g * 7919 % 36000) * interval '1 second' AS age) s;

INSERT INTO sessmgr.session_owners (user_id, sessions_issued, last_issued_at)
SELECT 'u' || u, 5, now()
  FROM generate_series((:lo::bigint - 1) / 5, (:hi::bigint - 1) / 5) u
    ON CONFLICT (user_id) DO NOTHING;

ALTER TABLE sessmgr.sessions ENABLE TRIGGER sessions_enforce_cap;
ALTER TABLE sessmgr.sessions ENABLE TRIGGER sessions_audit_issue;
COMMIT;

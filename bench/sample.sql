/*
 * bench/sample.sql: the sample a measurement works through, in
 * bench.tokens: :sample sessions drawn at random from the :nsessions loaded
 * (psql variables), without replacement when there are enough sessions,
 * with replacement otherwise.  n numbers them in random order, so that a
 * scan of bench.tokens probes the sessions' primary key at random places.
 * Each row carries the session's token, the claims PostgREST would set for
 * one of its access tokens and, for the first :jwt_sample rows, an access
 * token signed with sessmgr's current key.
 */
TRUNCATE bench.tokens;
SET client_min_messages = warning;
SELECT setseed(0.25) AS seeded \gset

INSERT INTO bench.tokens (n, id, token, user_id, token_gen, expires_at, claims, jwt)
SELECT p.n, s.id, bench.token(s.id), s.user_id, s.token_gen, s.expires_at,
       json_build_object('role', 'authenticated', 'sub', s.user_id, 'sid', s.id,
                         'gen', bench.gen_claim(s.token_gen),
                         'iat', extract(epoch FROM now())::bigint,
                         'exp', least(extract(epoch FROM now())::bigint + 3600,
                                      extract(epoch FROM s.expires_at)::bigint))::text,
       CASE WHEN p.n <= :jwt_sample
            THEN bench.plpgsql_sign_access_token(s.user_id, s.id, s.token_gen, s.expires_at)
       END
  FROM (SELECT row_number() OVER (ORDER BY x.r) AS n, x.g
          FROM (SELECT g, random() AS r
                  FROM generate_series(1, :nsessions::bigint) g
                 WHERE :nsessions::bigint >= :sample
                 ORDER BY r
                 LIMIT :sample) x
        UNION ALL
        SELECT n, 1 + floor(random() * :nsessions::bigint)::bigint
          FROM generate_series(1, :sample) n
         WHERE :nsessions::bigint < :sample) p
  JOIN sessmgr.sessions s ON s.id = bench.session_id(p.g)
 ORDER BY p.n;

-- the access-token measurements scan only the rows that have one
DROP TABLE IF EXISTS bench.jwt_tokens;
CREATE TABLE bench.jwt_tokens AS
SELECT n, id, user_id, token_gen, expires_at, jwt FROM bench.tokens WHERE jwt IS NOT NULL ORDER BY n;

VACUUM (ANALYZE) bench.tokens;
VACUUM (ANALYZE) bench.jwt_tokens;

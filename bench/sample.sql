/*
 * bench/sample.sql: the sample a measurement works through, in
 * bench.tokens: :sample sessions drawn at random from the :nsessions loaded
 * (psql variables), without replacement when there are enough sessions,
 * with replacement otherwise.  n numbers them in random order, so that a
 * scan of bench.tokens probes the sessions' primary key at random places.
 * Each row carries the session's token, the claims and the request headers
 * PostgREST would set for one of its access tokens (a browser's headers with
 * "authorization: Bearer <token>", the token signed with sessmgr's current
 * key, as the pre-request check verifies it) and, for the first :jwt_sample
 * rows, an access token of their own for the JWT measurements.
 */
TRUNCATE bench.tokens;
SET client_min_messages = warning;
SELECT setseed(0.25) AS seeded \gset

INSERT INTO bench.tokens (n, id, token, user_id, token_gen, expires_at, claims, headers, jwt)
SELECT p.n, s.id, bench.token(s.id), s.user_id, s.token_gen, s.expires_at,
       json_build_object('role', 'authenticated', 'sub', s.user_id, 'sid', s.id,
                         'gen', bench.gen_claim(s.token_gen),
                         'iat', extract(epoch FROM now())::bigint,
                         'exp', least(extract(epoch FROM now())::bigint + 3600,
                                      extract(epoch FROM s.expires_at)::bigint))::text,
       json_build_object('host', 'app.example.com',
                         'user-agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                         'accept', 'application/json',
                         'accept-language', 'en-GB,en;q=0.9',
                         'accept-encoding', 'gzip, deflate, br',
                         'accept-profile', 'sessmgr_api',
                         'x-forwarded-for', '203.0.113.7',
                         'authorization', 'Bearer ' || bench.jwt_sign(
                             '{"sub":' || to_json(s.user_id) || ',"sid":"' || s.id || '","gen":"'
                             || bench.gen_claim(s.token_gen) || '","role":"authenticated","iat":'
                             || extract(epoch FROM now())::bigint || ',"exp":'
                             || least(extract(epoch FROM now())::bigint + 86400,
                                      extract(epoch FROM s.expires_at)::bigint) || '}',
                             k.kid, k.secret))::text,
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
 CROSS JOIN (SELECT kid, secret FROM sessmgr.signing_keys
              WHERE retired_at IS NULL AND alg = 'HS256' AND signs_from <= clock_timestamp()
              ORDER BY signs_from DESC, created_at, kid LIMIT 1) k
 ORDER BY p.n;

-- the access-token measurements scan only the rows that have one
DROP TABLE IF EXISTS bench.jwt_tokens;
CREATE TABLE bench.jwt_tokens AS
SELECT n, id, user_id, token_gen, expires_at, jwt FROM bench.tokens WHERE jwt IS NOT NULL ORDER BY n;

VACUUM (ANALYZE) bench.tokens;
VACUUM (ANALYZE) bench.jwt_tokens;

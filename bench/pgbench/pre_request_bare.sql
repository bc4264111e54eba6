-- the same request with the bare primary-key lookup instead of the check
\set n random(1, :sample)
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
SELECT set_config('request.jwt.claims', claims, true),
       set_config('request.headers', headers, true), id FROM bench.tokens WHERE n = :n \gset
SELECT s.id, s.user_id, s.expires_at FROM sessmgr.sessions s WHERE s.id = :id;
END;

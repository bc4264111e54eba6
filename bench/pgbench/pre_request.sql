-- a GET request as PostgREST runs it: settings, then the pre-request check
\set n random(1, :sample)
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
SELECT set_config('request.jwt.claims', claims, true),
       set_config('request.headers', headers, true), id FROM bench.tokens WHERE n = :n \gset
SELECT sessmgr_api.pre_request();
END;

/*
 * bench/baselines.sql: the schema "bench" of the benchmark suite: data
 * generation helpers, the measurement clock, and the baselines sessmgr is
 * measured against, written by hand in SQL and PL/pgSQL the way an
 * application team would:
 *
 *   1. the bare floor: a primary-key lookup of the session row (inline in
 *      the measured queries and the pgbench scripts, no function);
 *   2. bench.plpgsql_validate(): the same rules as sessmgr.validate() --
 *      decode the token, SHA-256 it with the builtin sha256(), look the
 *      session up by id, check revoked / absolute expiry / idle expiry, and
 *      record activity at most once per touch interval;
 *   3. HS256 access tokens with pgcrypto's hmac() and base64url in SQL (the
 *      pgjwt approach): bench.plpgsql_sign_access_token() and
 *      bench.plpgsql_verify_access_token(), which checks the same claims and
 *      the same session state as sessmgr.verify_access_token().
 *
 * The baselines are written to be fast, not to be straw men: no EXCEPTION
 * blocks (each would cost a subtransaction per call), a regular expression
 * instead of a decode that could fail.  They are therefore less strict than
 * sessmgr where that is free for them: the hash comparison is not constant
 * time, and malformed JSON in an access token raises an error instead of
 * giving NULL.
 *
 * Run by bench/run.sh as a superuser in the benchmark database, after
 * CREATE EXTENSION sessmgr and pgcrypto.
 */

CREATE SCHEMA bench;

/* ---- deterministic sessions: everything follows from a number g ---- */

-- the id of session number g (random-looking, reproducible)
CREATE FUNCTION bench.session_id(g bigint) RETURNS uuid
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN md5('bench-session-' || g)::uuid;

-- the 32-byte secret of a session's token
CREATE FUNCTION bench.secret(id uuid) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN sha256(uuid_send(id) || '\x62656e6368'::bytea);

-- the session token, in sessmgr's format: prefix, base64url(id || secret)
CREATE FUNCTION bench.token(id uuid) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN 'sessmgr_' || translate(encode(uuid_send(id) || bench.secret(id), 'base64'), '+/', '-_');

-- what sessmgr stores for it: SHA-256(id || secret)
CREATE FUNCTION bench.token_hash(id uuid) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN sha256(uuid_send(id) || bench.secret(id));

-- the token generation tag of session number g
CREATE FUNCTION bench.token_gen(g bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ('x' || substr(md5('bench-gen-' || g), 1, 16))::bit(64)::bigint;

-- the gen claim of access tokens: 16 lower-case hex digits
CREATE FUNCTION bench.gen_claim(token_gen bigint) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lpad(to_hex(token_gen), 16, '0');

/* ---- the sample a measurement works through ---- */

CREATE TABLE bench.tokens (
    n          integer     PRIMARY KEY,  -- 1..sample size, in random session order
    id         uuid        NOT NULL,
    token      text        NOT NULL,
    user_id    text        NOT NULL,
    token_gen  bigint      NOT NULL,
    expires_at timestamptz NOT NULL,
    claims     text        NOT NULL,     -- what PostgREST puts in request.jwt.claims
    headers    text        NOT NULL,     -- and in request.headers, with the access token
    jwt        text                      -- an access token (the JWT measurements only)
);

/* ---- results ---- */

-- ms: on-CPU time of the backend running the query; wall_ms: elapsed time
CREATE TABLE bench.timings (
    measure text    NOT NULL,
    label   text    NOT NULL,
    run     integer NOT NULL,
    calls   bigint  NOT NULL,
    ms      float8  NOT NULL,
    wall_ms float8  NOT NULL
);

CREATE TABLE bench.tps (
    measure text    NOT NULL,
    label   text    NOT NULL,
    run     integer NOT NULL,
    tps     float8  NOT NULL
);

-- nanoseconds this backend has spent on a CPU (Linux schedstat)
CREATE FUNCTION bench.cpu_ns() RETURNS bigint
    LANGUAGE sql VOLATILE
    RETURN split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint;

/*
 * Run a query that returns one count and record how long it took: on-CPU
 * time of this backend (what the query costs, whatever else the machine is
 * doing) and elapsed time.  The count must equal calls: every token of a
 * sample must be accepted, or the figure would measure the rejection path.
 */
CREATE FUNCTION bench.clock(measure text, label text, run integer, calls bigint, query text)
RETURNS float8
    LANGUAGE plpgsql
AS $$
DECLARE
    t0 timestamptz;
    c0 bigint;
    wall float8;
    cpu float8;
    got bigint;
BEGIN
    t0 := clock_timestamp();
    c0 := bench.cpu_ns();
    EXECUTE query INTO got;
    cpu := (bench.cpu_ns() - c0) / 1e6;
    wall := extract(epoch FROM clock_timestamp() - t0) * 1000;
    IF got IS DISTINCT FROM calls THEN
        RAISE EXCEPTION 'bench: % / % counted % rows, expected %', measure, label, got, calls;
    END IF;
    IF run > 0 THEN   -- run 0 is the warm-up
        INSERT INTO bench.timings VALUES (measure, label, run, calls, cpu, wall);
    END IF;
    RETURN cpu;
END
$$;

-- the median of a measurement's runs: CPU ms, wall ms (in-query) or tps (pgbench)
CREATE FUNCTION bench.median_ms(m text, l text) RETURNS float8
    LANGUAGE sql STABLE
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)
              FROM bench.timings WHERE measure = m AND label = l);

CREATE FUNCTION bench.median_wall_ms(m text, l text) RETURNS float8
    LANGUAGE sql STABLE
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY wall_ms)
              FROM bench.timings WHERE measure = m AND label = l);

CREATE FUNCTION bench.median_tps(m text, l text) RETURNS float8
    LANGUAGE sql STABLE
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY tps)
              FROM bench.tps WHERE measure = m AND label = l);

-- the median over the rounds of a / b, each round's pair measured back to back
CREATE FUNCTION bench.median_ratio_ms(m text, a text, b text) RETURNS float8
    LANGUAGE sql STABLE
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x.ms / y.ms)
              FROM bench.timings x JOIN bench.timings y USING (measure, run)
             WHERE x.measure = m AND x.label = a AND y.label = b);

CREATE FUNCTION bench.median_ratio_wall_ms(m text, a text, b text) RETURNS float8
    LANGUAGE sql STABLE
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x.wall_ms / y.wall_ms)
              FROM bench.timings x JOIN bench.timings y USING (measure, run)
             WHERE x.measure = m AND x.label = a AND y.label = b);

CREATE FUNCTION bench.median_ratio_tps(m text, a text, b text) RETURNS float8
    LANGUAGE sql STABLE
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x.tps / y.tps)
              FROM bench.tps x JOIN bench.tps y USING (measure, run)
             WHERE x.measure = m AND x.label = a AND y.label = b);

/* ---- the issue storm's monitor and the cleanup's lock watch ---- */

-- the storm user's active sessions at each issuing commit (see bench/run.sh)
CREATE TABLE bench.storm_counts (n integer NOT NULL);

CREATE FUNCTION bench.storm_count() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO bench.storm_counts
    SELECT count(*) FROM sessmgr.active_sessions a WHERE a.user_id = NEW.user_id;
    RETURN NULL;
END
$$;

-- samples of the open transaction of the backend named app, with the
-- backend's on-CPU and run-queue time so far (Linux schedstat, ns)
CREATE TABLE bench.xact_samples (
    pid        integer     NOT NULL,
    xact_start timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL,
    cpu_ns     bigint,
    wait_ns    bigint
);

/*
 * Sample, every 10 ms, the open transaction of the backend whose
 * application_name is app, until it has come and gone (or max_seconds).
 * Each sample is its own transaction, so pg_stat_activity is fresh.
 */
CREATE PROCEDURE bench.watch_transactions(app text, max_seconds float8)
    LANGUAGE plpgsql
AS $$
DECLARE
    seen boolean := false;
    t0 timestamptz := clock_timestamp();
    a record;
    stat text[];
BEGIN
    LOOP
        SELECT pid, xact_start INTO a FROM pg_stat_activity WHERE application_name = app;
        IF FOUND THEN
            seen := true;
            IF a.xact_start IS NOT NULL THEN
                stat := string_to_array(pg_read_file('/proc/' || a.pid || '/schedstat'), ' ');
                INSERT INTO bench.xact_samples
                VALUES (a.pid, a.xact_start, clock_timestamp(), stat[1]::bigint, stat[2]::bigint);
            END IF;
        ELSIF seen THEN
            EXIT;
        END IF;
        EXIT WHEN clock_timestamp() - t0 > max_seconds * interval '1 second';
        COMMIT;
        PERFORM pg_sleep(0.01);
    END LOOP;
    COMMIT;
END
$$;

-- each transaction seen: how long it was open (at least), and the CPU and
-- run-queue time of the backend while it was
CREATE VIEW bench.watched_transactions AS
SELECT xact_start,
       extract(epoch FROM max(seen_at) - xact_start) * 1000 AS open_ms,
       (max(cpu_ns) - min(cpu_ns)) / 1e6 AS cpu_ms,
       (max(wait_ns) - min(wait_ns)) / 1e6 AS wait_ms
  FROM bench.xact_samples
 GROUP BY xact_start;

/* ---- baseline 2: validation in PL/pgSQL ---- */

/*
 * The same rules as sessmgr.validate(token): one row (session_id, user_id,
 * expires_at) for the token of an active session, none otherwise.
 */
CREATE FUNCTION bench.plpgsql_validate(token text)
RETURNS TABLE (session_id uuid, user_id text, expires_at timestamptz)
    LANGUAGE plpgsql VOLATILE STRICT
AS $$
#variable_conflict use_column
DECLARE
    -- keep equal to the sessmgr.touch_interval bench/run.sh sets
    touch_interval CONSTANT interval := '50 minutes';
    raw bytea;
    s record;
BEGIN
    IF token !~ '^sessmgr_[A-Za-z0-9_-]{64}$' THEN
        RETURN;
    END IF;
    raw := decode(translate(substr(token, 9), '-_', '+/'), 'base64');

    SELECT t.id, t.user_id, t.expires_at, t.token_hash, t.revoked_at,
           t.last_active_at, t.idle_timeout
      INTO s
      FROM sessmgr.sessions t
     WHERE t.id = encode(substr(raw, 1, 16), 'hex')::uuid;
    IF NOT FOUND
       OR s.token_hash <> sha256(raw)
       OR s.revoked_at IS NOT NULL
       OR s.expires_at <= now()
       OR s.last_active_at + s.idle_timeout <= now() THEN
        RETURN;
    END IF;

    IF now() - s.last_active_at >= touch_interval THEN
        UPDATE sessmgr.sessions t SET last_active_at = now()
         WHERE t.id = s.id AND t.revoked_at IS NULL;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;

    session_id := s.id;
    user_id := s.user_id;
    expires_at := s.expires_at;
    RETURN NEXT;
END
$$;

/* ---- baseline 3: HS256 access tokens with pgcrypto ---- */

CREATE FUNCTION bench.base64url(data bytea) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    RETURN translate(rtrim(encode(data, 'base64'), '='), E'+/\n', '-_');

CREATE FUNCTION bench.base64url_decode(data text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT
    RETURN decode(rpad(translate(data, '-_', '+/'), (length(data) + 3) / 4 * 4, '='), 'base64');

/*
 * HS256-sign a payload with a key: header.payload.signature.  The header is
 * written the way sessmgr writes it, so that the same claims give the same
 * token byte for byte.
 */
CREATE FUNCTION bench.jwt_sign(payload text, kid text, secret bytea) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    RETURN (
        SELECT signing_input || '.' || bench.base64url(hmac(convert_to(signing_input, 'UTF8'), secret, 'sha256'))
          FROM (SELECT bench.base64url(convert_to('{"alg":"HS256","kid":' || to_json(kid) || ',"typ":"JWT"}', 'UTF8'))
                       || '.' || bench.base64url(convert_to(payload, 'UTF8')) AS signing_input) i
    );

/*
 * An access token for a session with sessmgr's claims, in sessmgr's order:
 * sub, sid, gen, role, iat, exp (15 minutes, cut short by the session's
 * end), signed with the newest usable key.
 */
CREATE FUNCTION bench.plpgsql_sign_access_token(user_id text, session_id uuid, token_gen bigint,
                                                session_expires_at timestamptz)
RETURNS text
    LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    k record;
    iat bigint := extract(epoch FROM now())::bigint;
BEGIN
    SELECT kid, secret INTO k
      FROM sessmgr.signing_keys
     WHERE retired_at IS NULL AND alg = 'HS256' AND signs_from <= clock_timestamp()
     ORDER BY signs_from DESC, created_at, kid
     LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no signing key for access tokens';
    END IF;
    RETURN bench.jwt_sign(
        '{"sub":' || to_json(user_id) || ',"sid":"' || session_id || '","gen":"'
        || bench.gen_claim(token_gen) || '","role":"authenticated","iat":' || iat
        || ',"exp":' || least(iat + 900, extract(epoch FROM session_expires_at)::bigint) || '}',
        k.kid, k.secret);
END
$$;

/*
 * The same checks as sessmgr.verify_access_token(jwt): signature with the
 * key the header names (which must be HS256), exp / nbf / iat with 30 s of
 * leeway, and a live session whose user is sub and whose current or
 * previous token generation is gen; activity recorded like validate.
 * Returns the claims, or NULL.  (sessmgr also checks aud and iss when they
 * are configured; the benchmark configures neither.)
 */
CREATE FUNCTION bench.plpgsql_verify_access_token(jwt text) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    touch_interval CONSTANT interval := '50 minutes';
    parts text[];
    header jsonb;
    claims jsonb;
    k record;
    s record;
    now_secs numeric := extract(epoch FROM clock_timestamp());
BEGIN
    IF jwt IS NULL OR length(jwt) > 8192
       OR jwt !~ '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' THEN
        RETURN NULL;
    END IF;
    parts := string_to_array(jwt, '.');

    header := convert_from(bench.base64url_decode(parts[1]), 'UTF8')::jsonb;
    SELECT kid, alg, secret INTO k
      FROM sessmgr.signing_keys
     WHERE kid = header->>'kid' AND retired_at IS NULL;
    IF NOT FOUND OR k.alg <> 'HS256' OR header->>'alg' IS DISTINCT FROM k.alg
       OR bench.base64url(hmac(convert_to(parts[1] || '.' || parts[2], 'UTF8'), k.secret, 'sha256'))
          <> parts[3] THEN
        RETURN NULL;
    END IF;

    claims := convert_from(bench.base64url_decode(parts[2]), 'UTF8')::jsonb;
    IF jsonb_typeof(claims->'exp') IS DISTINCT FROM 'number'
       OR now_secs > (claims->>'exp')::numeric + 30
       OR (claims ? 'nbf' AND now_secs < (claims->>'nbf')::numeric - 30)
       OR (claims ? 'iat' AND (claims->>'iat')::numeric > now_secs + 30)
       OR claims->>'sid' !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' THEN
        RETURN NULL;
    END IF;

    SELECT t.id, t.user_id, t.revoked_at, t.expires_at, t.last_active_at, t.idle_timeout,
           t.token_gen, t.prev_token_gen
      INTO s
      FROM sessmgr.sessions t
     WHERE t.id = (claims->>'sid')::uuid;
    IF NOT FOUND
       OR s.revoked_at IS NOT NULL
       OR s.expires_at <= now()
       OR s.last_active_at + s.idle_timeout <= now()
       OR s.user_id IS DISTINCT FROM claims->>'sub'
       OR NOT (claims->>'gen' = bench.gen_claim(s.token_gen)
               OR claims->>'gen' IS NOT DISTINCT FROM bench.gen_claim(s.prev_token_gen)) THEN
        RETURN NULL;
    END IF;

    IF now() - s.last_active_at >= touch_interval THEN
        UPDATE sessmgr.sessions t SET last_active_at = now()
         WHERE t.id = s.id AND t.revoked_at IS NULL;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    RETURN claims;
END
$$;

/* The signature check alone, as pgjwt's verify does it: for context. */
CREATE FUNCTION bench.jwt_signature_ok(jwt text, secret bytea) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    RETURN bench.base64url(hmac(convert_to(split_part(jwt, '.', 1) || '.' || split_part(jwt, '.', 2), 'UTF8'),
                                secret, 'sha256'))
           = split_part(jwt, '.', 3);

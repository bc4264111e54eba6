-- test/pgtap/security.sql: the installed extension against PostgreSQL's
-- "Security Considerations for Extensions".
--
-- Over every object that belongs to the extension (pg_depend, deptype 'e'),
-- whatever schema it is in, so objects added later are checked too:
-- SECURITY DEFINER functions pin search_path to pg_catalog, pg_temp and
-- reference no relation without its schema; nothing is executable, readable
-- or usable by PUBLIC; the extension's schemas belong to a superuser and no
-- other role can create in them, and they hold nothing that is not the
-- extension's.  The scripts themselves are linted by test/check_scripts.sh.
BEGIN;
SELECT plan(19);

CREATE TEMP VIEW sec_ext AS
SELECT e.oid, e.extnamespace FROM pg_extension e WHERE e.extname = 'sessmgr';

CREATE TEMP VIEW sec_members AS
SELECT d.classid, d.objid
  FROM pg_depend d, sec_ext e
 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid AND d.deptype = 'e';

CREATE TEMP VIEW sec_functions AS
SELECT p.oid, p.oid::regprocedure::text AS fn, p.prosecdef, p.proconfig, l.lanname,
       p.prosrc, p.proacl, p.proowner
  FROM pg_proc p
  JOIN pg_language l ON l.oid = p.prolang
  JOIN sec_members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid;

-- the extension's schema and the schemas its script created
CREATE TEMP VIEW sec_schemas AS
SELECT n.oid, n.nspname, n.nspowner, n.nspacl
  FROM pg_namespace n
 WHERE n.oid = (SELECT extnamespace FROM sec_ext)
    OR (n.oid IN (SELECT objid FROM sec_members WHERE classid = 'pg_namespace'::regclass));

-- a body with comments and string literals blanked out, lower case
CREATE FUNCTION pg_temp.sec_code(body text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(regexp_replace(regexp_replace(lower(body),
               '--[^\n]*', ' ', 'g'),
               '/\*.*?\*/', ' ', 'g'),
               '''([^'']|'''')*''', '''''', 'g')
$$;

-- Relation names a body uses without a schema (after FROM, JOIN, UPDATE,
-- INSERT INTO, DELETE FROM, TABLE), other than its CTEs and pg_catalog's
-- relations: under search_path = pg_catalog, pg_temp such a name is found in
-- the caller's pg_temp, where any role can create it.
CREATE FUNCTION pg_temp.sec_unqualified_relations(body text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$
    WITH code AS (
        SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
                   pg_temp.sec_code(body),
                   '\minsert\s+into\M', ' insert_into ', 'g'),
                   '\minto\M', ' ', 'g'),                      -- SELECT ... INTO variable
                   '\m(for|key|do)\s+update\M', ' ', 'g'),     -- FOR UPDATE, DO UPDATE
                   '\m(epoch|century|decade|year|quarter|month|week|day|dow|doy|hour|minute|second|'
                   'milliseconds|microseconds|timezone|timezone_hour|timezone_minute|isodow|isoyear|'
                   'julian|distinct|both|leading|trailing)\s+from\M', ' ', 'g'),
                   '\mreturns\s+table\M', ' ', 'g') AS s
    ), ctes AS (
        SELECT m[1] AS name
          FROM code, regexp_matches(code.s,
               '(?:\mwith(?:\s+recursive)?|,)\s*([a-z_][a-z0-9_$]*)\s+as\s*(?:not\s+)?(?:materialized\s+)?\(', 'g') m
    )
    SELECT DISTINCT m[2]
      FROM code, regexp_matches(code.s,
           '\m(from|join|update|insert_into|table)\s+(?:only\s+)?([a-z_][a-z0-9_$]*)\M(?!\s*[.(])', 'g') m
     WHERE m[2] NOT IN (SELECT name FROM ctes)
       AND m[2] NOT IN ('lateral', 'select', 'values')
       AND to_regclass('pg_catalog.' || quote_ident(m[2])) IS NULL
$$;

-- Calls of the extension's own functions with a bare NULL argument: its type
-- is unknown, so an overload with other parameter types (text where the
-- function has timestamptz) can be chosen instead.
CREATE FUNCTION pg_temp.sec_untyped_null_calls(body text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$
    SELECT DISTINCT m[1]
      FROM regexp_matches(pg_temp.sec_code(body),
           '((?:sessmgr|sessmgr_api)\.[a-z_][a-z0-9_]*)\s*\(([^()]*)\)', 'g') m
     WHERE m[2] ~ '(^|,|=>)\s*null\s*(,|$)'
$$;

------------------------------------------------------------------------------
-- The checkers find what they look for.
------------------------------------------------------------------------------
SELECT results_eq(
    $$SELECT * FROM pg_temp.sec_unqualified_relations($b$
        WITH recent AS (SELECT 1)
        SELECT a INTO v FROM signing_keys k JOIN sessmgr.sessions s ON true,
               LATERAL sessmgr.issue('x') i, recent, pg_settings;
        UPDATE session_owners SET n = 1;   -- from comment_table
        INSERT INTO session_events VALUES ('from quoted_table');
        SELECT extract(epoch FROM now()) FROM sessmgr.x FOR UPDATE;
        DELETE FROM retired_tokens$b$) ORDER BY 1$$,
    $$VALUES ('retired_tokens'), ('session_events'), ('session_owners'), ('signing_keys')$$,
    'the unqualified-relation checker finds exactly the unqualified tables of a sample');
SELECT results_eq(
    $$SELECT * FROM pg_temp.sec_untyped_null_calls($b$
        PERFORM sessmgr.set_session_cookie(NULL, NULL);
        PERFORM sessmgr.revoke(sid, uid, reason => NULL);
        PERFORM sessmgr.set_session_cookie(NULL::text, NULL::timestamptz);
        PERFORM sessmgr.session_response(s.id, s.token, 'x', now(), true)$b$) ORDER BY 1$$,
    $$VALUES ('sessmgr.revoke'), ('sessmgr.set_session_cookie')$$,
    'the untyped-NULL checker finds exactly the untyped calls of a sample');

------------------------------------------------------------------------------
-- SECURITY DEFINER functions
------------------------------------------------------------------------------
SELECT isnt_empty($$SELECT 1 FROM sec_functions WHERE prosecdef$$,
    'the extension has SECURITY DEFINER functions to check');
SELECT is_empty(
    $$SELECT fn FROM sec_functions
       WHERE prosecdef AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false)$$,
    'every SECURITY DEFINER function has SET search_path = pg_catalog, pg_temp');
SELECT is_empty(
    $$SELECT fn, r FROM sec_functions, pg_temp.sec_unqualified_relations(prosrc) r
       WHERE prosecdef AND lanname IN ('sql', 'plpgsql')$$,
    'no SECURITY DEFINER body names a relation without its schema');
SELECT is_empty(
    $$SELECT fn, c FROM sec_functions, pg_temp.sec_untyped_null_calls(prosrc) c
       WHERE prosecdef AND lanname IN ('sql', 'plpgsql')$$,
    'no SECURITY DEFINER body calls an extension function with an untyped NULL');
SELECT is_empty(
    $$SELECT fn FROM sec_functions f JOIN pg_roles r ON r.oid = f.proowner WHERE NOT r.rolsuper$$,
    'every function of the extension is owned by a superuser');

------------------------------------------------------------------------------
-- Nothing for PUBLIC
------------------------------------------------------------------------------
-- the one exception, meant for everyone: the live-session predicate the views
-- call with their reader's rights (a pure SQL expression over its arguments)
CREATE TEMP VIEW sec_public_ok AS
SELECT 'sessmgr.session_is_live(timestamptz, timestamptz, timestamptz, interval, timestamptz)'::regprocedure AS oid;
SELECT is_empty(
    $$SELECT fn FROM sec_functions
       WHERE (proacl IS NULL
              OR EXISTS (SELECT 1 FROM aclexplode(proacl) a
                          WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
         AND oid NOT IN (SELECT oid FROM sec_public_ok)$$,
    'no function of the extension but session_is_live is executable by PUBLIC');
CREATE ROLE sessmgr_tap_sec_nobody NOLOGIN;
SELECT is_empty(
    $$SELECT fn FROM sec_functions
       WHERE has_function_privilege('sessmgr_tap_sec_nobody', oid, 'EXECUTE')
         AND oid NOT IN (SELECT oid FROM sec_public_ok)$$,
    'a role without grants can execute none of them but session_is_live');
SELECT results_eq(
    $$SELECT p.prolang = (SELECT l.oid FROM pg_language l WHERE l.lanname = 'sql'), p.provolatile, p.prosecdef, p.proconfig IS NULL,
             pg_get_functiondef(p.oid) !~* '\m(from|select|sessmgr\.sessions)\M'
        FROM pg_proc p WHERE p.oid IN (SELECT oid FROM sec_public_ok)$$,
    $$VALUES (true, 's'::"char", false, true, true)$$,
    'session_is_live is a plain SQL expression: STABLE, not SECURITY DEFINER, reading no table');
SELECT is_empty(
    $$SELECT c.oid::regclass, a.privilege_type
        FROM pg_class c
        JOIN sec_members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid,
             aclexplode(coalesce(c.relacl, acldefault(
                 CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
       WHERE a.grantee = 0$$,
    'no table, view or sequence of the extension grants anything to PUBLIC');
SELECT is_empty(
    $$SELECT s.nspname, a.privilege_type
        FROM sec_schemas s, aclexplode(coalesce(s.nspacl, acldefault('n', s.nspowner))) a
       WHERE a.grantee = 0$$,
    'no schema of the extension grants anything to PUBLIC');

------------------------------------------------------------------------------
-- The extension's schemas: nobody else can plant anything in them
------------------------------------------------------------------------------
SELECT is((SELECT string_agg(nspname::text, ', ' ORDER BY nspname) FROM sec_schemas),
    'sessmgr, sessmgr_admin_api, sessmgr_api',
    'the extension has the schemas sessmgr, sessmgr_admin_api and sessmgr_api');
SELECT is_empty(
    $$SELECT s.nspname FROM sec_schemas s JOIN pg_roles r ON r.oid = s.nspowner WHERE NOT r.rolsuper$$,
    'its schemas are owned by a superuser');
SELECT is_empty(
    $$SELECT s.nspname, r.rolname
        FROM sec_schemas s, aclexplode(coalesce(s.nspacl, acldefault('n', s.nspowner))) a
        JOIN pg_roles r ON r.oid = a.grantee
       WHERE a.privilege_type = 'CREATE' AND NOT r.rolsuper$$,
    'no role but a superuser may create objects in its schemas');
SELECT is_empty(
    $$SELECT 'function ' || p.oid::regprocedure FROM pg_proc p JOIN sec_schemas s ON s.oid = p.pronamespace
       WHERE p.oid NOT IN (SELECT objid FROM sec_members WHERE classid = 'pg_proc'::regclass)
      UNION ALL
      SELECT 'relation ' || c.oid::regclass FROM pg_class c JOIN sec_schemas s ON s.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'v', 'm', 'S', 'f', 'p')
         AND c.oid NOT IN (SELECT objid FROM sec_members WHERE classid = 'pg_class'::regclass)
      UNION ALL
      SELECT 'operator ' || o.oid::regoperator FROM pg_operator o JOIN sec_schemas s ON s.oid = o.oprnamespace
       WHERE o.oid NOT IN (SELECT objid FROM sec_members WHERE classid = 'pg_operator'::regclass)
      UNION ALL
      SELECT 'type ' || t.oid::regtype FROM pg_type t JOIN sec_schemas s ON s.oid = t.typnamespace
       WHERE t.typrelid = 0 AND t.typelem = 0
         AND t.oid NOT IN (SELECT objid FROM sec_members WHERE classid = 'pg_type'::regclass)$$,
    'its schemas hold no function, relation, operator or type that is not the extension''s');


-- Owner mode: sessmgr's own statements run with the tables' owner's rights
-- under search_path = pg_catalog, pg_temp, never the caller's.  A trigger an
-- administrator adds to the audit table runs inside owner mode and sees it;
-- a caller's schema that shadows pg_catalog's operators and functions and
-- sessmgr's relation names changes nothing.
CREATE SCHEMA sec_evil;
CREATE FUNCTION sec_evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT 'epoch'::timestamptz $$;
CREATE FUNCTION sec_evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$ SELECT 'epoch'::timestamptz $$;
CREATE FUNCTION sec_evil.text_eq(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR sec_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = sec_evil.text_eq);
CREATE TABLE sec_evil.sessions (id uuid);
CREATE TABLE sec_evil.session_events (id bigint);
CREATE TEMP TABLE sec_seen (path text, role text);
GRANT ALL ON sec_seen TO PUBLIC;
CREATE FUNCTION sec_evil.record_path() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pg_temp.sec_seen VALUES (current_setting('search_path'), current_user);
    RETURN NULL;
END
$$;
CREATE TRIGGER sec_record_path AFTER INSERT ON sessmgr.session_events
    FOR EACH ROW EXECUTE FUNCTION sec_evil.record_path();
SET LOCAL search_path = sec_evil, pg_catalog, public;
CREATE TEMP TABLE sec_issued AS SELECT * FROM sessmgr.issue('sec_owner_mode');
CREATE TEMP TABLE sec_revoked AS
    SELECT sessmgr.revoke((SELECT session_id FROM sec_issued), 'sec_owner_mode') AS revoked;
RESET search_path;   -- before pgTAP runs again: its own comparisons use =
SELECT is((SELECT revoked FROM sec_revoked), true,
    'under a caller''s hostile search_path, issue and revoke work');
SELECT results_eq(
    $$SELECT DISTINCT path, role FROM pg_temp.sec_seen$$,
    $$VALUES ('pg_catalog, pg_temp', (SELECT r.rolname::text COLLATE "default" FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                                       WHERE c.oid = 'sessmgr.sessions'::regclass))$$,
    'statements run as the owner see search_path = pg_catalog, pg_temp, not the caller''s');
SELECT results_eq(
    $$SELECT event, occurred_at > now() - interval '1 minute' FROM sessmgr.session_events
       WHERE user_id = 'sec_owner_mode' ORDER BY id$$,
    $$VALUES ('issue', true), ('revoke', true)$$,
    'the events were written with the real clock and operators');
DROP TRIGGER sec_record_path ON sessmgr.session_events;

SELECT * FROM finish();
ROLLBACK;

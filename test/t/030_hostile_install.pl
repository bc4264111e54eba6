# test/t/030_hostile_install.pl: an unprivileged role lays traps for the
# superuser who installs sessmgr, and the traps never go off as a superuser.
#
# mallory is an ordinary login role with CREATE on the database and on schema
# public (as in clusters from before PostgreSQL 15).  Mallory plants, in
# public, look-alikes of the built-in functions and operators an install
# script or a function body might resolve (now(), octet_length(), =(text,text),
# >(timestamptz,timestamptz), jsonb_build_object(), ...), and temporary views
# named like sessmgr's tables in his own pg_temp.  Each trap records
# current_user in mallory's table public.trap (and warns), then does what the
# original does.  The superuser puts public first in search_path, installs
# sessmgr (and walks every ALTER EXTENSION UPDATE step found in the install
# directory: none yet, the loop is for the next version), and everything is
# exercised by the superuser and by mallory, who is granted every function:
# the C code runs its statements as the tables' owner, the SECURITY DEFINER
# functions as theirs, so no trap may ever record a superuser.  A pre-created
# schema sessmgr or sessmgr_api is refused.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hostile');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
CREATE ROLE mallory LOGIN;
GRANT CREATE ON DATABASE postgres TO mallory;
GRANT CREATE ON SCHEMA public TO mallory;
});

# Run SQL as a role (the superuser unless given) with public first in
# search_path; returns (exit code, stdout, stderr).
sub run_sql
{
	my ($sql, %opt) = @_;
	my ($out, $err) = ('', '');
	my $connstr = $node->connstr('postgres');
	$connstr .= " user=$opt{user}" if defined $opt{user};
	my $rc = $node->psql(
		'postgres', "SET search_path = public, pg_catalog;\n$sql",
		connstr       => $connstr,
		stdout        => \$out,
		stderr        => \$err,
		on_error_stop => $opt{keep_going} ? 0 : 1);
	return ($rc, $out, $err);
}

# The traps.  trap_fired() is careful to resolve nothing through search_path.
my $traps = q{
CREATE TABLE public.trap (who name, superuser boolean, what text);
GRANT INSERT ON public.trap TO PUBLIC;

CREATE FUNCTION public.trap_fired(what text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    su boolean := (SELECT r.rolsuper FROM pg_catalog.pg_roles r
                    WHERE r.rolname OPERATOR(pg_catalog.=) current_user);
BEGIN
    INSERT INTO public.trap VALUES (current_user, su, what);
    RAISE WARNING 'sessmgr-trap % ran as % (superuser: %)', what, current_user, su;
END
$$;
};

# functions: name, argument types, result type, the original's call
# (coalesce, greatest, least and nullif are syntax, not functions: no look-alike
# can catch them)
my @trap_functions = (
	[ 'now',                  '',                          'timestamptz', 'pg_catalog.now()' ],
	[ 'clock_timestamp',      '',                          'timestamptz', 'pg_catalog.clock_timestamp()' ],
	[ 'octet_length',         'bytea',                     'integer',     'pg_catalog.octet_length($1)' ],
	[ 'octet_length',         'text',                      'integer',     'pg_catalog.octet_length($1)' ],
	[ 'length',               'text',                      'integer',     'pg_catalog.length($1)' ],
	[ 'jsonb_build_object',   'text, jsonb',               'jsonb',       'pg_catalog.jsonb_build_object($1, $2)' ],
	[ 'jsonb_build_object',   'text, text',                'jsonb',       'pg_catalog.jsonb_build_object($1, $2)' ],
	[ 'json_build_object',    'text, text',                'json',        'pg_catalog.json_build_object($1, $2)' ],
	[ 'json_build_array',     'json',                      'json',        'pg_catalog.json_build_array($1)' ],
	[ 'json_strip_nulls',     'json',                      'json',        'pg_catalog.json_strip_nulls($1)' ],
	[ 'jsonb_typeof',         'jsonb',                     'text',        'pg_catalog.jsonb_typeof($1)' ],
	[ 'date_part',            'text, interval',            'double precision', 'pg_catalog.date_part($1, $2)' ],
	[ 'current_setting',      'text',                      'text',        'pg_catalog.current_setting($1)' ],
	[ 'current_setting',      'text, boolean',             'text',        'pg_catalog.current_setting($1, $2)' ],
	[ 'set_config',           'text, text, boolean',       'text',        'pg_catalog.set_config($1, $2, $3)' ],
	[ 'btrim',                'text',                      'text',        'pg_catalog.btrim($1)' ],
	[ 'split_part',           'text, text, integer',       'text',        'pg_catalog.split_part($1, $2, $3)' ],
	[ 'left',                 'text, integer',             'text',        'pg_catalog.left($1, $2)' ],
	[ 'lower',                'text',                      'text',        'pg_catalog.lower($1)' ],
	[ 'encode',               'bytea, text',               'text',        'pg_catalog.encode($1, $2)' ],
	[ 'translate',            'text, text, text',          'text',        'pg_catalog.translate($1, $2, $3)' ],
	[ 'rtrim',                'text, text',                'text',        'pg_catalog.rtrim($1, $2)' ],
	[ 'ceil',                 'numeric',                   'numeric',     'pg_catalog.ceil($1)' ],
	[ 'ceil',                 'double precision',          'double precision', 'pg_catalog.ceil($1)' ],
	[ 'gen_random_uuid',      '',                          'uuid',        'pg_catalog.gen_random_uuid()' ],
	[ 'uuid_send',            'uuid',                      'bytea',       'pg_catalog.uuid_send($1)' ],
	[ 'sha256',               'bytea',                     'bytea',       'pg_catalog.sha256($1)' ],
	[ 'has_schema_privilege', 'text, text, text',          'boolean',     'pg_catalog.has_schema_privilege($1, $2, $3)' ],
	[ 'pg_extension_config_dump', 'text, text',            'void',        undef ],
	[ 'to_json',              'text',                      'json',        'pg_catalog.to_json($1)' ],
);
my $n = 0;
for my $f (@trap_functions)
{
	my ($name, $args, $ret, $call) = @$f;
	my $body = defined $call ? "RETURN $call;" : 'RETURN;';
	$traps .= qq{
CREATE FUNCTION public."$name"($args) RETURNS $ret LANGUAGE plpgsql AS \$\$
BEGIN PERFORM public.trap_fired('$name($args)'); $body END \$\$;
};
}
# an aggregate: jsonb_agg(jsonb) is a closer match than the built-in jsonb_agg(anyelement)
$traps .= q{
CREATE FUNCTION public.trap_agg(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM public.trap_fired('jsonb_agg(jsonb)'); RETURN coalesce($1, '[]') OPERATOR(pg_catalog.||) $2; END $$;
CREATE AGGREGATE public.jsonb_agg(jsonb) (SFUNC = public.trap_agg, STYPE = jsonb);
};

# operators: name, left type, right type, result type
my @trap_operators = (
	[ '=',  'text', 'text', 'boolean' ],         [ '<>', 'text', 'text', 'boolean' ],
	[ '=',  'uuid', 'uuid', 'boolean' ],         [ '<>', 'uuid', 'uuid', 'boolean' ],
	[ '=',  'oid', 'oid', 'boolean' ],           [ '=',  'name', 'name', 'boolean' ],
	[ '=',  'bytea', 'bytea', 'boolean' ],       [ '=',  'bigint', 'bigint', 'boolean' ],
	[ '=',  'integer', 'integer', 'boolean' ],   [ '<=', 'integer', 'integer', 'boolean' ],
	[ '>=', 'integer', 'integer', 'boolean' ],   [ '>',  'integer', 'integer', 'boolean' ],
	[ '>',  'timestamptz', 'timestamptz', 'boolean' ],
	[ '<',  'timestamptz', 'timestamptz', 'boolean' ],
	[ '+',  'timestamptz', 'interval', 'timestamptz' ],
	[ '-',  'timestamptz', 'timestamptz', 'interval' ],
	[ '>',  'interval', 'interval', 'boolean' ],
	[ '=',  'double precision', 'double precision', 'boolean' ],
	[ '||', 'text', 'text', 'text' ],            [ '!~', 'text', 'text', 'boolean' ],
	[ '~',  'text', 'text', 'boolean' ],
);
for my $o (@trap_operators)
{
	my ($op, $l, $r, $ret) = @$o;
	$n++;
	$traps .= qq{
CREATE FUNCTION public.trap_op_$n($l, $r) RETURNS $ret LANGUAGE plpgsql AS \$\$
BEGIN PERFORM public.trap_fired('operator $op($l, $r)');
      RETURN \$1 OPERATOR(pg_catalog.$op) \$2; END \$\$;
CREATE OPERATOR public.$op (LEFTARG = $l, RIGHTARG = $r, FUNCTION = public.trap_op_$n);
};
}

my ($rc, $out, $err) = run_sql($traps, user => 'mallory');
is($rc, 0, 'mallory plants ' . scalar(@trap_functions) . ' functions, an aggregate and '
	  . scalar(@trap_operators) . ' operators in public')
  or diag($err);

# The traps work: unqualified calls by the superuser, public first, hit them.
($rc, $out, $err) = run_sql(q{
SELECT now() IS NOT NULL, 'a'::text = 'a'::text, octet_length('x'::bytea);
SELECT count(*) FROM public.trap WHERE superuser;
});
like($out, qr/^t\|t\|1\n\d+$/m, 'control: unqualified now(), = and octet_length() reach the traps');
cmp_ok((split /\n/, $out)[-1], '>=', 3, 'control: the traps record a superuser');
$node->safe_psql('postgres', 'TRUNCATE public.trap');

# superuser-fired traps so far; fails the test with the list if any
sub no_superuser_trap
{
	my ($what, $stderr) = @_;
	my $fired = $node->safe_psql('postgres',
		q{SELECT string_agg(DISTINCT what || ' as ' || who, ', ' ORDER BY what || ' as ' || who)
		    FROM public.trap WHERE superuser});
	my $warned = join("\n", grep { /sessmgr-trap .* \(superuser: t(rue)?\)/ } split /\n/, $stderr // '');
	ok($fired eq '' && $warned eq '', "no trap ran as a superuser: $what")
	  or diag("fired: $fired\n$warned");
}

# --- pre-created schemas are refused --------------------------------------------

# mallory's own schema sessmgr, with traps of its own
($rc, $out, $err) = run_sql(q{
CREATE SCHEMA sessmgr;
CREATE FUNCTION sessmgr.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM public.trap_fired('sessmgr.now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION sessmgr.trap_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.trap_fired('operator sessmgr.=(text, text)');
      RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR sessmgr.= (LEFTARG = text, RIGHTARG = text, FUNCTION = sessmgr.trap_eq);
}, user => 'mallory');
is($rc, 0, 'mallory creates schema sessmgr with traps in it') or diag($err);
($rc, $out, $err) = run_sql('CREATE EXTENSION sessmgr');
isnt($rc, 0, 'CREATE EXTENSION refuses a schema sessmgr owned by mallory');
like($err, qr/schema "sessmgr" is owned by a role that is not a superuser/, '... with the documented error');
no_superuser_trap('CREATE EXTENSION into mallory\'s schema', $err);
run_sql('DROP SCHEMA sessmgr CASCADE', user => 'mallory');

# a superuser's schema sessmgr that PUBLIC may create in
$node->safe_psql('postgres', 'CREATE SCHEMA sessmgr; GRANT CREATE ON SCHEMA sessmgr TO PUBLIC');
($rc, $out, $err) = run_sql('CREATE EXTENSION sessmgr');
isnt($rc, 0, 'CREATE EXTENSION refuses a schema sessmgr writable by PUBLIC');
like($err, qr/schema "sessmgr" lets a role that is not a superuser create objects/, '... with the documented error');
$node->safe_psql('postgres', 'DROP SCHEMA sessmgr');

# mallory's schema sessmgr_api: the script's CREATE SCHEMA fails
run_sql('CREATE SCHEMA sessmgr_api', user => 'mallory');
($rc, $out, $err) = run_sql('CREATE EXTENSION sessmgr');
isnt($rc, 0, 'CREATE EXTENSION refuses to take over a schema sessmgr_api mallory made');
like($err, qr/schema "sessmgr_api" already exists/, '... because the script creates it');
run_sql('DROP SCHEMA sessmgr_api', user => 'mallory');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'sessmgr'}),
	'0', 'nothing was installed');
no_superuser_trap('the refused installs', $err);

# A superuser's schema sessmgr in which mallory alone (not PUBLIC) may create.
# Mallory adds an overload that the SECURITY DEFINER sessmgr_api.logout() and
# refresh() pick for their untyped call sessmgr.set_session_cookie(NULL, NULL):
# (text, text) beats (text, timestamptz) for unknown-type arguments.
$node->safe_psql('postgres', 'CREATE SCHEMA sessmgr; GRANT USAGE, CREATE ON SCHEMA sessmgr TO mallory');
($rc, $out, $err) = run_sql(q{
CREATE FUNCTION sessmgr.set_session_cookie(token text, expires_at text) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap_fired('sessmgr.set_session_cookie(text, text)'); END $$;
}, user => 'mallory');
is($rc, 0, 'mallory plants an overload in a superuser\'s schema sessmgr he may create in') or diag($err);
($rc, $out, $err) = run_sql('CREATE EXTENSION sessmgr');
isnt($rc, 0, 'CREATE EXTENSION refuses a schema sessmgr a non-superuser may create in');
like($err, qr/schema "sessmgr" lets a role that is not a superuser create objects/, '... with the documented error');
$node->safe_psql('postgres', 'DROP SCHEMA sessmgr CASCADE; TRUNCATE public.trap');

# The same overload planted after the install, by a mallory a DBA wrongly let
# create in schema sessmgr: the SECURITY DEFINER endpoints type every argument
# of their calls, so they still call sessmgr's own function.
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr; GRANT CREATE ON SCHEMA sessmgr TO mallory');
($rc, $out, $err) = run_sql(q{
CREATE FUNCTION sessmgr.set_session_cookie(token text, expires_at text) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN PERFORM public.trap_fired('sessmgr.set_session_cookie(text, text)'); END $$;
}, user => 'mallory');
is($rc, 0, 'mallory plants an overload after the install') or diag($err);
($rc, $out, $err) = run_sql(q{SELECT sessmgr_api.logout('junk'); SELECT sessmgr_api.refresh('junk');},
	keep_going => 1);
no_superuser_trap('a non-superuser\'s overload in schema sessmgr', $err);
$node->safe_psql('postgres', 'DROP EXTENSION sessmgr');
$node->safe_psql('postgres', 'DROP SCHEMA sessmgr CASCADE; TRUNCATE public.trap');

# --- install and every update step, with the traps in place ---------------------

# The update chain in the install directory, from the oldest full install
# script to default_version.
my $extdir = $node->config_data('--sharedir') . '/extension';
opendir(my $dh, $extdir) or die "cannot read $extdir: $!";
my @scripts = grep { /^sessmgr--.*\.sql$/ } readdir($dh);
closedir($dh);
my (%step, @installs);
for (@scripts)
{
	if (/^sessmgr--([^-]+(?:-[^-]+)*?)--(.+)\.sql$/) { $step{$1} = $2; }
	elsif (/^sessmgr--(.+)\.sql$/)                   { push @installs, $1; }
}
my ($default) = slurp_file("$extdir/sessmgr.control") =~ /^default_version\s*=\s*'([^']+)'/m;
my @chain = (sort { version_cmp($a, $b) } @installs)[0];
push @chain, $step{ $chain[-1] } while exists $step{ $chain[-1] } && $chain[-1] ne $default;
note('versions: ' . join(' -> ', @chain) . ' (' . (@chain - 1) . ' update steps)');

sub version_cmp
{
	my @a = split /\./, shift;
	my @b = split /\./, shift;
	while (@a || @b)
	{
		my $c = (shift(@a) // 0) <=> (shift(@b) // 0);
		return $c if $c;
	}
	return 0;
}

($rc, $out, $err) = run_sql("CREATE EXTENSION sessmgr VERSION '$chain[0]'");
is($rc, 0, "CREATE EXTENSION sessmgr VERSION '$chain[0]' with public first in search_path")
  or diag($err);
no_superuser_trap("CREATE EXTENSION (version $chain[0])", $err);
for my $i (1 .. $#chain)
{
	($rc, $out, $err) = run_sql("ALTER EXTENSION sessmgr UPDATE TO '$chain[$i]'");
	is($rc, 0, "ALTER EXTENSION sessmgr UPDATE TO '$chain[$i]'") or diag($err);
	no_superuser_trap("update to $chain[$i]", $err);
}
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'sessmgr'}),
	$default, "installed version is the default, $default");

# --- everything exercised, by the superuser and by mallory ----------------------

# mallory may call everything (the worst case of an application role), and
# shadows sessmgr's relations in his pg_temp
$node->safe_psql('postgres', q{
GRANT USAGE ON SCHEMA sessmgr, sessmgr_api TO mallory;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sessmgr, sessmgr_api TO mallory;
ALTER ROLE mallory SET sessmgr.touch_interval = 0;
ALTER ROLE mallory SET sessmgr.refresh_grace = 0;
});

my $shadow = q{
CREATE FUNCTION pg_temp.trap_rel(rel text) RETURNS SETOF record LANGUAGE plpgsql AS $$
BEGIN PERFORM public.trap_fired('pg_temp.' OPERATOR(pg_catalog.||) rel); END $$;
};
for my $rel (qw(sessions session_owners session_events signing_keys retired_tokens active_sessions))
{
	$shadow .= qq{CREATE TEMP VIEW $rel AS SELECT * FROM pg_temp.trap_rel('$rel') AS t(x int);\n};
}

# Every path of the API: issue (cap trigger, eviction under every policy),
# validate with touch, authenticate, list, access tokens, refresh (rotation,
# grace, reuse detection), revoke, revoke_all, keys, the PostgREST functions.
# Values travel in psql variables; the script itself qualifies every
# function and uses no operator, so that only sessmgr's own code can meet a trap.
my $exercise = q{
SELECT token AS t1, session_id AS s1, access_token AS a1
  FROM sessmgr.issue('victim', 'laptop', 'UA', '192.0.2.1', 'Berlin', true, '{"a": 1}') \gset
SELECT token AS t2, session_id AS s2 FROM sessmgr.issue('victim', 'phone') \gset
SELECT * FROM sessmgr.validate(:'t1');
SELECT sessmgr.authenticate(:'t1'), sessmgr.current_user_id(), sessmgr.current_session_id();
SELECT * FROM sessmgr.list_sessions('victim', :'s1');
SELECT sessmgr.verify_access_token(:'a1');
SELECT sessmgr.verify_access_token('eyJhbGciOiJIUzI1NiJ9.e30.AAAA');
SELECT status AS r1status, token AS t1b FROM sessmgr.refresh(:'t1') \gset
SELECT status FROM sessmgr.refresh(:'t1');
SELECT status FROM sessmgr.refresh(:'t1');
SELECT status FROM sessmgr.refresh(:'t1b');
SELECT status FROM sessmgr.refresh('sessmgr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
SELECT sessmgr.revoke(:'s2', 'victim', 'logout');
SELECT sessmgr.revoke(:'s2', 'victim', 'logout');
SELECT token AS t3, session_id AS s3, access_token AS a3 FROM sessmgr.issue('victim', 'tablet') \gset
SELECT sessmgr.revoke_all('victim', :'s3', 'logout_all');
SELECT sessmgr.jwks() IS NOT NULL;
SELECT sessmgr.rotate_signing_key('HS384') AS kid \gset
SELECT sessmgr.retire_signing_key(:'kid');
SELECT sessmgr.verify_access_token(:'a3');
BEGIN;
SELECT pg_catalog.set_config('request.jwt.claims', sessmgr.verify_access_token(:'a3')::text, true);
SELECT pg_catalog.set_config('request.headers', pg_catalog.json_build_object('authorization', 'Bearer ' OPERATOR(pg_catalog.||) :'a3')::text, true);
SELECT sessmgr_api.pre_request();
SELECT * FROM sessmgr_api.my_sessions();
SELECT sessmgr_api.revoke_other_sessions();
SELECT sessmgr_api.revoke_session(:'s2');
COMMIT;
SELECT pg_catalog.set_config('request.jwt.claims', '{"role": "anon"}', false);
SELECT sessmgr_api.pre_request();
SELECT pg_catalog.set_config('request.headers', '{"user-agent": "curl", "x-forwarded-for": "198.51.100.1"}', false);
SELECT pg_catalog.set_config('request.cookies', '{}', false);
SELECT sessmgr.issue_from_request('victim', true, 'kiosk', 'Rome', true) IS NOT NULL;
SELECT sessmgr.request_ip(), sessmgr.request_refresh_token(NULL);
SELECT sessmgr_api.refresh(:'t3');
SELECT sessmgr_api.refresh('junk');
SELECT sessmgr_api.logout(:'t3');
};

# the cap under each policy; settings only a superuser may change
my $cap = q{
SET sessmgr.max_sessions = 1;
SELECT count(*) FROM sessmgr.issue('capped');
SELECT count(*) FROM sessmgr.issue('capped');
SET sessmgr.cap_policy = 'evict_idle';
SELECT count(*) FROM sessmgr.issue('capped');
SET sessmgr.cap_policy = 'reject';
DO $$ BEGIN PERFORM sessmgr.issue('capped'); EXCEPTION WHEN configuration_limit_exceeded THEN NULL; END $$;
RESET sessmgr.max_sessions;
RESET sessmgr.cap_policy;
SET sessmgr.touch_interval = 0;
SET sessmgr.refresh_grace = 0;
};

# Every function with NULL arguments, so that functions added later are
# reached too (errors are expected and ignored).
my $all_null = q{
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure AS fn, n.nspname, p.proname,
               (SELECT pg_catalog.string_agg('NULL::' OPERATOR(pg_catalog.||) pg_catalog.format_type(t, NULL), ', ')
                  FROM pg_catalog.unnest(p.proargtypes::oid[]) t) AS args
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
         WHERE n.nspname OPERATOR(pg_catalog.=) ANY (ARRAY['sessmgr', 'sessmgr_api'])
         ORDER BY 1
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('SELECT %I.%I(%s)', f.nspname, f.proname, coalesce(f.args, ''));
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
END
$$;
};

($rc, $out, $err) = run_sql($cap . $exercise . $all_null, keep_going => 1);
unlike($err, qr/ERROR/, 'the superuser exercises every function with public first') or diag($err);
no_superuser_trap('every function called by the superuser', $err);

($rc, $out, $err) = run_sql($shadow . $exercise . $all_null, user => 'mallory', keep_going => 1);
unlike($err, qr/ERROR/, 'mallory exercises every function with public first and his pg_temp shadows')
  or diag($err);
no_superuser_trap('every function called by mallory', $err);

# what did run (as mallory, by mallory's own doing), for the log
note('traps that ran as mallory: '
	  . $node->safe_psql('postgres',
		q{SELECT coalesce(string_agg(DISTINCT what, ', '), 'none') FROM public.trap WHERE NOT superuser}));

# the extension works for real through all that
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM sessmgr.session_events WHERE user_id OPERATOR(pg_catalog.=) 'victim'}) > 0,
	1, 'the exercise went through sessmgr (events were written)');

# --- a database that is not UTF8 ------------------------------------------------

# There the backend's JSON lexer converts a \u escape to the database encoding
# and raises where it cannot (SQL_ASCII: any character beyond ASCII; LATIN1:
# one outside Latin-1). The header is read before the signature is checked,
# so anyone could make verification raise: the parser refuses such escapes
# first, and the answer stays NULL or 401.
for my $enc ('SQL_ASCII', 'LATIN1')
{
	my $db = lc("enc_$enc");
	$node->safe_psql('postgres',
		"CREATE DATABASE $db TEMPLATE template0 ENCODING '$enc' LC_COLLATE 'C' LC_CTYPE 'C'");
	$node->safe_psql($db, 'CREATE EXTENSION sessmgr');
	my $result = $node->safe_psql($db, q{
CREATE FUNCTION pg_temp.outcome(claims text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('request.jwt.claims', claims, true);
    PERFORM sessmgr_api.pre_request();
    RETURN 'pass';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;
CREATE FUNCTION pg_temp.b64url(text) RETURNS text LANGUAGE sql AS $$
    SELECT rtrim(translate(encode(convert_to($1, 'SQL_ASCII'), 'base64'), E'+/\n', '-_'), '=')
$$;
SELECT pg_temp.outcome('{"role": "anon", "sub": "\u0041"}'),
       pg_temp.outcome('{"role": "anon", "sub": "\u00e9"}'),
       pg_temp.outcome('{"role": "anon", "sub": "\u4e2d"}'),
       sessmgr.verify_access_token(pg_temp.b64url('{"alg": "HS256", "kid": "\u4e2d"}') || '.e30.AAAA')
           IS NULL,
       sessmgr.verify_access_token(pg_temp.b64url('{"alg": "HS256", "kid": "\u00e9"}') || '.e30.AAAA')
           IS NULL;
});
	is($result, 'pass|PGRST|PGRST|t|t',
		"$enc database: \\u escapes beyond ASCII give 401 or NULL, never another error");
}

$node->stop;
done_testing();

# test/t/031_upgrade.pl: ALTER EXTENSION sessmgr UPDATE from the released
# 0.1.0 keeps every row, token and grant, and leaves the same catalog as a
# fresh install of the default version.
#
# The 0.1.0 data is made by the real 0.1.0 code: the released library, built
# from git history by test/build_release.sh (test/run.sh passes its path in
# SESSMGR_RELEASE_LIB_0_1_0).  CREATE EXTENSION sessmgr VERSION '0.1.0' runs
# the released install script against the installed (current) library, whose
# C functions it validates (so the current library must still provide every
# symbol 0.1.0 names: between "make install" and ALTER EXTENSION UPDATE the
# 0.1.0 functions call it); then the superuser points the extension's C
# functions at the released library (pg_proc.probin), redoes with it the one
# thing the install script did through the library (the first signing key),
# and fills the database in connections that load the released library only:
# two libraries in one backend would share symbols and settings, so every
# connection is checked (/proc/<pid>/maps) for which one it loaded.  The DBA
# grants of the README (app, session_admin, PostgREST's anon and
# authenticated) are made at 0.1.0, before the data.
#
# The data: live sessions issued by the application role, revoked ones
# (revoke, revoke_all), cap evictions, an idle-expired one, refreshed ones
# (previous and retired tokens), access tokens signed by the first key and by
# a rotated-in second key, a cleanup run, the audit trail.  Before the update
# the tokens are checked with the 0.1.0 code, and every table (row count,
# checksum and rows), sequence and grant is recorded.
#
# probin goes back to $libdir/sessmgr and a new connection runs ALTER
# EXTENSION sessmgr UPDATE (no TO: the default version).  Then, with the
# current library only: each 0.1.0 table holds the same rows in its 0.1.0
# columns; every privilege (has_*_privilege of each role, and the ACLs) is
# unchanged; every session token and access token is as valid as it was with
# 0.1.0; current refresh tokens refresh, the previous one within
# refresh_grace too, a retired one more than refresh_grace after it was
# superseded is reuse; the grants work for the roles.  Last, a second
# database gets a fresh CREATE EXTENSION sessmgr and the same grants, and the
# two catalogs are compared as text, section by section, every object of the
# extension (members, plus schemas sessmgr and sessmgr_api) attribute by
# attribute; a difference is shown as a unified diff.
use strict;
use warnings;

use Cwd qw(realpath);
use DBI;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node;

# End the test here after a failure that leaves nothing to check.
sub stop_here
{
	my ($why) = @_;
	fail($why);
	$node->stop if $node;
	done_testing();
	exit 1;
}

my $release_lib = $ENV{SESSMGR_RELEASE_LIB_0_1_0};
stop_here('SESSMGR_RELEASE_LIB_0_1_0 is not set: run this test through "bash test/run.sh tap", '
	  . 'which builds the 0.1.0 library with test/build_release.sh')
  if !defined $release_lib || $release_lib eq '';
stop_here("the 0.1.0 library $release_lib is missing or not readable by " . getpwuid($<))
  unless -r $release_lib;
$release_lib = realpath($release_lib);

$node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;

my $installed_lib = realpath($node->config_data('--pkglibdir') . '/sessmgr.so');
my $tmp = PostgreSQL::Test::Utils::tempdir;

# --- helpers ---------------------------------------------------------------------

# A new connection (one backend, so one set of loaded libraries); every wait
# in it is bounded by PG_TEST_TIMEOUT_DEFAULT, like the psql calls.
sub connect_db
{
	my ($db) = @_;
	my $limit = $PostgreSQL::Test::Utils::timeout_default;
	my $dbh = DBI->connect(
		"dbi:Pg:dbname=$db;host=" . $node->host . ';port=' . $node->port . ";connect_timeout=$limit",
		'', '',
		{
			AutoCommit        => 1,
			RaiseError        => 1,
			PrintError        => 0,
			pg_bool_tf        => 1,
			pg_server_prepare => 0
		});
	# the text forms compared below must not depend on the client
	$dbh->do(q{SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
	           SET extra_float_digits = 3; SET bytea_output = 'hex'});
	$dbh->do("SET statement_timeout = '${limit}s'");
	return $dbh;
}

# All rows of a query, as array refs.
sub rows
{
	my ($dbh, $sql, @bind) = @_;
	return @{ $dbh->selectall_arrayref($sql, undef, @bind) };
}

# The first row of a query (a list), or its first value in scalar context.
sub one
{
	my ($dbh, $sql, @bind) = @_;
	my $r = $dbh->selectrow_arrayref($sql, undef, @bind) // [];
	return wantarray ? @$r : $r->[0];
}

# The error of a statement, '' if it succeeds.
sub error_of
{
	my ($dbh, $sql, @bind) = @_;
	local $dbh->{RaiseError} = 1;
	eval { $dbh->do($sql, undef, @bind); 1 } and return '';
	return $dbh->errstr // $@;
}

# The sessmgr libraries mapped by a connection's backend, sorted, comma-separated;
# undef when /proc/<pid>/maps cannot be read.
sub sessmgr_libs_of
{
	my ($dbh) = @_;
	my $pid = one($dbh, 'SELECT pg_backend_pid()');
	open(my $fh, '<', "/proc/$pid/maps") or return undef;
	my %libs;
	while (<$fh>)
	{
		$libs{$1} = 1 if m{\s(/\S*sessmgr[^/\s]*\.so)\b};
	}
	close $fh;
	return join(', ', sort keys %libs);
}

# Check that a connection loaded exactly one library (or none when allowed).
sub loaded_only
{
	my ($dbh, $lib, $what, %opt) = @_;
	my $libs = sessmgr_libs_of($dbh);
  SKIP:
	{
		skip("cannot read /proc/<pid>/maps of the backend: $what", 1) unless defined $libs;
		my $ok = $libs eq $lib || ($opt{or_none} && $libs eq '');
		ok($ok, "$what: the backend loaded " . ($opt{or_none} ? 'at most ' : '') . "$lib")
		  or diag("loaded: " . ($libs eq '' ? 'no sessmgr library' : $libs));
	}
	return;
}

# Unified diff of two texts ('' when equal).
sub text_diff
{
	my ($left, $right, $label_left, $label_right) = @_;
	return '' if $left eq $right;
	my ($fa, $fb) = ("$tmp/left.txt", "$tmp/right.txt");
	for ([ $fa, $left ], [ $fb, $right ])
	{
		open(my $fh, '>', $_->[0]) or die "cannot write $_->[0]: $!";
		print $fh $_->[1], "\n";
		close $fh;
	}
	my ($out) = run_command(
		[ 'diff', '-U', '2', '--label', $label_left, '--label', $label_right, $fa, $fb ]);
	return $out;
}

# --- 0.1.0 installed, running the released library ------------------------------------

my ($rc, $out, $err) = ('', '', '');
$rc = $node->psql('postgres', q{CREATE EXTENSION sessmgr VERSION '0.1.0'},
	stdout => \$out, stderr => \$err);
is($rc, 0, q{CREATE EXTENSION sessmgr VERSION '0.1.0' (the released script, validated against the installed library)})
  or stop_here("cannot install 0.1.0: $err\n"
	  . 'the installed library must still have every C function the 0.1.0 script names: '
	  . 'after "make install" and until ALTER EXTENSION UPDATE, the 0.1.0 functions call it');

$node->safe_psql('postgres', qq{
	UPDATE pg_catalog.pg_proc SET probin = '$release_lib' WHERE probin = '\$libdir/sessmgr'});
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM pg_catalog.pg_proc p
	  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
	   AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
	   AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'sessmgr')
	 WHERE p.prolang = (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'c')
	   AND p.probin IS DISTINCT FROM '$release_lib'}),
	'0', 'every C function of the extension now runs the 0.1.0 library');

# The DBA's grants (README: Installation, and Getting started for PostgREST),
# made at 0.1.0 and again in the fresh database.
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	CREATE ROLE session_admin LOGIN;
	CREATE ROLE authenticator LOGIN NOINHERIT;
	CREATE ROLE anon NOLOGIN;
	CREATE ROLE authenticated NOLOGIN;
	GRANT anon, authenticated TO authenticator;
});
my $dba_grants = q{
	GRANT USAGE ON SCHEMA sessmgr TO app;
	GRANT EXECUTE ON FUNCTION
	    sessmgr.issue(text, text, text, inet, text, boolean, jsonb),
	    sessmgr.validate(text),
	    sessmgr.authenticate(text),
	    sessmgr.current_user_id(),
	    sessmgr.current_session_id(),
	    sessmgr.list_sessions(text, uuid),
	    sessmgr.revoke(uuid, text, text),
	    sessmgr.revoke_all(text, uuid, text),
	    sessmgr.refresh(text),
	    sessmgr.verify_access_token(text)
	  TO app;
	GRANT USAGE ON SCHEMA sessmgr TO session_admin;
	GRANT SELECT ON sessmgr.active_sessions, sessmgr.session_events TO session_admin;
	GRANT USAGE ON SCHEMA sessmgr_api TO anon, authenticated;
	GRANT EXECUTE ON FUNCTION
	    sessmgr_api.pre_request(),
	    sessmgr_api.refresh(text, boolean),
	    sessmgr_api.logout(text)
	  TO anon, authenticated;
	GRANT EXECUTE ON FUNCTION
	    sessmgr_api.my_sessions(),
	    sessmgr_api.revoke_session(uuid),
	    sessmgr_api.revoke_other_sessions()
	  TO authenticated;
};
$node->safe_psql('postgres', $dba_grants);

# token => { expect => 'valid' | 'invalid', what => '...' }; the same for access tokens
my (%tokens, %jwts);
my %t;    # named tokens for the refresh checks

my $fill = connect_db('postgres');

# The install script's first signing key was made by the installed library:
# made again by the 0.1.0 code, the same way (signs "from the beginning").
$fill->do(q{DELETE FROM sessmgr.signing_keys;
            SELECT sessmgr.rotate_signing_key('HS256', '-infinity')});

sub issue
{
	my ($user, %o) = @_;
	my ($sid, $tok, $jwt) = one($fill,
		'SELECT session_id, token, access_token FROM sessmgr.issue($1, $2, $3, $4::inet, $5, $6::boolean, $7::jsonb)',
		$user, $o{device}, $o{ua}, $o{ip}, $o{location}, ($o{remember} ? 'true' : 'false'),
		$o{metadata} // '{}');
	die "issue($user) returned no token" unless defined $tok;
	return ($sid, $tok, $jwt);
}

sub refresh
{
	my ($dbh, $tok) = @_;
	my ($status, $new, $jwt) = one($dbh, 'SELECT status, token, access_token FROM sessmgr.refresh($1)', $tok);
	return ($status, $new, $jwt);
}

sub expect
{
	my ($expect, $what, $tok, $jwt) = @_;
	$tokens{$tok} = { expect => $expect, what => $what };
	$jwts{$jwt} = { expect => $expect, what => $what } if defined $jwt;
	return;
}

# ivan: a session that ends by idleness (1 s) before the update
$fill->do(q{SET sessmgr.touch_interval = 0; SET sessmgr.idle_timeout = '1s'});
my ($sid, $tok, $jwt) = issue('ivan', device => 'short');
my $ivan_at = time;
$fill->do('RESET sessmgr.idle_timeout; RESET sessmgr.touch_interval');
expect('invalid', 'ivan (idle-expired)', $tok, $jwt);
$t{ivan} = $tok;

# alice: live sessions issued by the application role (actor app)
$fill->do('SET ROLE app');
for my $i (1 .. 3)
{
	($sid, $tok, $jwt) = issue('alice', device => "laptop $i", ua => 'Mozilla/5.0',
		ip => "192.0.2.$i", location => 'Berlin', remember => $i == 2,
		metadata => qq({"n": $i}));
	expect('valid', "alice $i (key 1)", $tok, $jwt);
	$t{"alice$i"} = $tok;
	$t{alice_jwt} //= $jwt;
}
$fill->do('RESET ROLE');

# bob: three sessions; one revoked, then the rest by revoke_all
my @bob;
for my $i (1 .. 3)
{
	($sid, $tok, $jwt) = issue('bob', device => "bob $i");
	expect('invalid', "bob $i (revoked)", $tok, $jwt);
	push @bob, $sid;
	$t{bob} = $tok;
}
one($fill, q{SELECT sessmgr.revoke($1, 'bob', 'logout')}, $bob[0]);
is(one($fill, q{SELECT sessmgr.revoke_all('bob', NULL, 'password_change')}), 2,
	'0.1.0: revoke_all ends the other two of bob\'s sessions');

# frank: a cap of 2, four issued: the first two are evicted
$fill->do('SET sessmgr.max_sessions = 2');
for my $i (1 .. 4)
{
	($sid, $tok, $jwt) = issue('frank', device => "frank $i");
	expect($i <= 2 ? 'invalid' : 'valid', "frank $i (" . ($i <= 2 ? 'evicted' : 'live') . ')',
		$tok, $jwt);
	$t{"frank$i"} = $tok;
}
$fill->do('RESET sessmgr.max_sessions');

# carol: refreshed once with the first key, once with the second (below)
($sid, my $c0, my $jc0) = issue('carol', device => 'carol');
my ($st, $c1, $jc1) = refresh($fill, $c0);
die "refresh carol: $st" unless $st eq 'ok';

# dave: refreshed twice: a retired token, a previous one, a current one
($sid, my $d0, my $jd0) = issue('dave', device => 'dave');
($st, my $d1, my $jd1) = refresh($fill, $d0);
die "refresh dave: $st" unless $st eq 'ok';
($st, my $d2, my $jd2) = refresh($fill, $d1);
die "refresh dave: $st" unless $st eq 'ok';
expect('invalid', 'dave retired token', $d0, $jd0);
expect('invalid', 'dave previous token', $d1);
$jwts{$jd1} = { expect => 'valid', what => 'dave access token of the previous token' };
expect('valid', 'dave current token', $d2, $jd2);

# a second signing key, signing from now on
my $kid2 = one($fill, 'SELECT sessmgr.rotate_signing_key()');

($st, my $c2, my $jc2) = refresh($fill, $c1);
die "refresh carol: $st" unless $st eq 'ok';
expect('invalid', 'carol retired token', $c0, $jc0);
expect('invalid', 'carol previous token', $c1);
$jwts{$jc1} = { expect => 'valid', what => 'carol access token of the previous token (key 1)' };
expect('valid', 'carol current token (key 2)', $c2, $jc2);

# erin: refreshed once (a previous token), with the second key
($sid, my $e0, my $je0) = issue('erin', device => 'erin');
($st, my $e1, my $je1) = refresh($fill, $e0);
die "refresh erin: $st" unless $st eq 'ok';
expect('invalid', 'erin previous token', $e0);
$jwts{$je0} = { expect => 'valid', what => 'erin access token of the previous token (key 2)' };
expect('valid', 'erin current token (key 2)', $e1, $je1);

# henry: never refreshed; gina: revoked without a user id; alice: one more, key 2
($sid, my $h0, $jwt) = issue('henry', device => 'henry', remember => 1);
expect('valid', 'henry (key 2)', $h0, $jwt);
($sid, $tok, $jwt) = issue('gina', device => 'gina');
one($fill, q{SELECT sessmgr.revoke($1)}, $sid);
expect('invalid', 'gina (revoked, key 2)', $tok, $jwt);
$t{gina} = $tok;
$fill->do('SET ROLE app');
($sid, $tok, $jwt) = issue('alice', device => 'phone');
expect('valid', 'alice 4 (key 2)', $tok, $jwt);
$t{alice_jwt2} = $jwt;
$fill->do('RESET ROLE');

$fill->do('CALL sessmgr.cleanup()');

is(one($fill, q{SELECT string_agg(event || ' ' || n, ', ' ORDER BY event)
                  FROM (SELECT event, count(*) n FROM sessmgr.session_events GROUP BY 1) e}),
	'evict 2, issue 17, revoke 4', '0.1.0: 17 issue, 4 revoke and 2 evict events');
is(one($fill, 'SELECT count(*) FROM sessmgr.retired_tokens'), 2, '0.1.0: two retired token hashes');
is(one($fill, 'SELECT count(*) FROM sessmgr.signing_keys'), 2, '0.1.0: two signing keys');
is(one($fill, q{SELECT string_agg(DISTINCT actor, ',') FROM sessmgr.session_events}), 'app,postgres',
	'0.1.0: events by app and by postgres');
loaded_only($fill, $release_lib, 'the filling connection');
$fill->disconnect;

# let ivan's idle timeout pass
sleep 1 while time - $ivan_at < 2;

# Validity of every token as a hash token => 1/0, through the given connection.
sub token_states
{
	my ($dbh) = @_;
	my (%tok, %jwt);
	for my $r (rows($dbh, q{SELECT t, (SELECT count(*) FROM sessmgr.validate(t)) FROM unnest($1::text[]) t},
		'{' . join(',', keys %tokens) . '}'))
	{
		$tok{ $r->[0] } = $r->[1];
	}
	for my $r (rows($dbh, q{SELECT t, sessmgr.verify_access_token(t) IS NOT NULL FROM unnest($1::text[]) t},
		'{' . join(',', keys %jwts) . '}'))
	{
		$jwt{ $r->[0] } = $r->[1] eq 't' ? 1 : 0;
	}
	return (\%tok, \%jwt);
}

# The tokens whose state is not the expected one, as "what: state" lines.
sub unexpected
{
	my ($expected, $states) = @_;
	my @bad;
	for my $k (sort { $expected->{$a}{what} cmp $expected->{$b}{what} } keys %$expected)
	{
		my $is = $states->{$k} ? 'valid' : 'invalid';
		push @bad, "$expected->{$k}{what}: $is, expected $expected->{$k}{expect}"
		  if $is ne $expected->{$k}{expect};
	}
	return @bad;
}

my $pre = connect_db('postgres');
my ($tok_before, $jwt_before) = token_states($pre);
my @bad = unexpected(\%tokens, $tok_before);
is(scalar @bad, 0, '0.1.0: each of ' . scalar(keys %tokens) . ' session tokens validates as expected')
  or diag(join "\n", @bad);
@bad = unexpected(\%jwts, $jwt_before);
is(scalar @bad, 0, '0.1.0: each of ' . scalar(keys %jwts) . ' access tokens verifies as expected (two keys)')
  or diag(join "\n", @bad);
loaded_only($pre, $release_lib, 'the checking connection before the update');

# --- what must survive: rows, sequences, privileges -----------------------------------

my @roles = qw(app session_admin authenticator anon authenticated public);
my $role_array = q{ARRAY['} . join(q{','}, @roles) . q{']};

# each table of schema sessmgr => its columns (in order)
my %columns_010 = map { $_->[0] => $_->[1] } rows($pre, q{
	SELECT c.relname, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
	  FROM pg_catalog.pg_class c
	  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE c.relnamespace = 'sessmgr'::regnamespace AND c.relkind IN ('r', 'p')
	 GROUP BY c.relname});

# table => [count, md5, rows as text], over the given columns
sub table_contents
{
	my ($dbh) = @_;
	my %out;
	for my $rel (sort keys %columns_010)
	{
		my $sql = qq{
			SELECT count(*), md5(coalesce(string_agg(x, E'\\n' ORDER BY x COLLATE "C"), '')),
			       coalesce(string_agg(x, E'\\n' ORDER BY x COLLATE "C"), '')
			  FROM (SELECT ROW($columns_010{$rel})::text AS x FROM sessmgr.$rel) s};
		my @r = eval { one($dbh, $sql) };
		$out{$rel} = @r ? \@r : [ 'error', $dbh->errstr // $@, '' ];
	}
	for my $r (rows($dbh, q{SELECT c.relname FROM pg_catalog.pg_class c
	                         WHERE c.relnamespace = 'sessmgr'::regnamespace AND c.relkind = 'S'}))
	{
		my $seq = $r->[0];
		$out{"sequence $seq"} = [ one($dbh, "SELECT last_value, is_called FROM sessmgr.$seq") ];
	}
	return \%out;
}

# Privileges: one line per object and role, and one per ACL.
my $privileges_sql = qq{
	WITH roles(r) AS (SELECT unnest($role_array))
	SELECT line FROM (
	SELECT format('function %s: %s', p.oid::pg_catalog.regprocedure,
	              string_agg(r || CASE WHEN pg_catalog.has_function_privilege(r, p.oid, 'EXECUTE') THEN '+x' ELSE '-x' END,
	                         ' ' ORDER BY r))
	  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace, roles
	 WHERE n.nspname IN ('sessmgr', 'sessmgr_api')
	 GROUP BY n.nspname, p.proname, p.oid
	UNION ALL
	SELECT format('relation %s.%s: %s', n.nspname, c.relname,
	              string_agg(r || '=' || coalesce((SELECT string_agg(lower(left(priv, 3)), ',' ORDER BY priv)
	                                                 FROM unnest(CASE WHEN c.relkind = 'S'
	                                                                  THEN ARRAY['USAGE', 'SELECT', 'UPDATE']
	                                                                  ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE',
	                                                                             'TRUNCATE', 'REFERENCES', 'TRIGGER'] END) priv
	                                                WHERE CASE WHEN c.relkind = 'S'
	                                                           THEN pg_catalog.has_sequence_privilege(r, c.oid, priv)
	                                                           ELSE pg_catalog.has_table_privilege(r, c.oid, priv) END), '-'),
	                         ' ' ORDER BY r))
	  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, roles
	 WHERE n.nspname IN ('sessmgr', 'sessmgr_api') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
	 GROUP BY n.nspname, c.relname, c.oid, c.relkind
	UNION ALL
	SELECT format('schema %s: %s', n.nspname,
	              string_agg(r || CASE WHEN pg_catalog.has_schema_privilege(r, n.oid, 'USAGE') THEN '+usage' ELSE '-usage' END
	                           || CASE WHEN pg_catalog.has_schema_privilege(r, n.oid, 'CREATE') THEN '+create' ELSE '-create' END,
	                         ' ' ORDER BY r))
	  FROM pg_catalog.pg_namespace n, roles
	 WHERE n.nspname IN ('sessmgr', 'sessmgr_api')
	 GROUP BY n.nspname
	UNION ALL
	SELECT format('acl of function %s: %s', p.oid::pg_catalog.regprocedure, coalesce(p.proacl::text, '(default)'))
	  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	 WHERE n.nspname IN ('sessmgr', 'sessmgr_api')
	UNION ALL
	SELECT format('acl of relation %s.%s: %s', n.nspname, c.relname, coalesce(c.relacl::text, '(default)'))
	  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE n.nspname IN ('sessmgr', 'sessmgr_api') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
	UNION ALL
	SELECT format('acl of column %s.%s.%s: %s', n.nspname, c.relname, a.attname, a.attacl)
	  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
	  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE n.nspname IN ('sessmgr', 'sessmgr_api') AND a.attacl IS NOT NULL
	UNION ALL
	SELECT format('acl of schema %s: %s', n.nspname, coalesce(n.nspacl::text, '(default)'))
	  FROM pg_catalog.pg_namespace n
	 WHERE n.nspname IN ('sessmgr', 'sessmgr_api')
	) x(line) ORDER BY line COLLATE "C"};

# object => its privilege line
sub privileges
{
	my ($dbh) = @_;
	my %p;
	for my $r (rows($dbh, $privileges_sql))
	{
		my ($obj) = $r->[0] =~ /^(.*?): /;
		$p{$obj} = $r->[0];
	}
	return \%p;
}

my $contents_before = table_contents($pre);
my $privileges_before = privileges($pre);
note('0.1.0 tables: ' . join(', ', map { "$_ ($contents_before->{$_}[0])" } sort keys %$contents_before));

# back to the installed library, for the update and everything after it
$pre->do(q{UPDATE pg_catalog.pg_proc SET probin = '$libdir/sessmgr' WHERE probin = $1}, undef, $release_lib);
$pre->disconnect;

# --- ALTER EXTENSION sessmgr UPDATE -----------------------------------------------------

my $default_version = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = 'sessmgr'});
# between "make install" and the update, the new library refuses the old
# tables with a message that says what to do, instead of failing half way
{
	my $between = connect_db('postgres');
	like(error_of($between, q{SELECT * FROM sessmgr.issue('between')}),
		qr/sessmgr library version \Q$default_version\E does not match the installed extension version 0\.1\.0/,
		'before the update, the new library refuses to work on the 0.1.0 tables');
	$between->disconnect;
}

my $upd = connect_db('postgres');
is(one($upd, q{SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'sessmgr'}), '0.1.0',
	'before the update: version 0.1.0');
$err = error_of($upd, 'ALTER EXTENSION sessmgr UPDATE');
is($err, '', "ALTER EXTENSION sessmgr UPDATE (to the default version, $default_version)");
is(one($upd, q{SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'sessmgr'}), $default_version,
	'after the update: extversion = default_version');
loaded_only($upd, $installed_lib, 'the updating connection', or_none => 1);
$upd->disconnect;
stop_here("the update failed: $err") if $err ne '';

my $after = connect_db('postgres');

# --- every row ---------------------------------------------------------------------------

my $contents_after = table_contents($after);
for my $rel (sort keys %$contents_before)
{
	my ($was, $is) = ($contents_before->{$rel}, $contents_after->{$rel} // [ 'missing', '', '' ]);
	if ($rel =~ /^sequence /)
	{
		is(join('|', @$is), join('|', @$was), "$rel: last_value and is_called unchanged");
		next;
	}
	ok($is->[0] eq $was->[0] && $is->[1] eq $was->[1],
		"table sessmgr.$rel: $was->[0] rows, unchanged in its 0.1.0 columns (md5 $was->[1])")
	  or diag("after the update: $is->[0] rows, md5 $is->[1]\n"
		  . ($is->[0] eq 'error' ? $is->[1] : text_diff($was->[2], $is->[2], "$rel 0.1.0", "$rel updated")));
}
my %new_columns = map { $_->[0] => $_->[1] } rows($after, q{
	SELECT c.relname, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
	  FROM pg_catalog.pg_class c
	  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	 WHERE c.relnamespace = 'sessmgr'::regnamespace AND c.relkind IN ('r', 'p')
	 GROUP BY c.relname});
for my $rel (sort keys %new_columns)
{
	note("after the update: sessmgr.$rel ($new_columns{$rel})"
		  . (exists $columns_010{$rel} ? '' : ' is new'));
}

# --- every grant -------------------------------------------------------------------------

my $privileges_after = privileges($after);
# functions whose signature changes in 0.2.0 by design: the update re-creates
# them under the new one and their grants must move with them
my %renamed = map {
	my ($from, $to) = @$_;
	($from => $to, "acl of $from" => "acl of $to")
} ([ 'function sessmgr.issue(text,text,text,inet,text,boolean,jsonb)',
	 'function sessmgr.issue(text,text,text,inet,text,boolean,jsonb,jsonb,text)' ]);
my (@lost, @changed);
for my $obj (sort keys %$privileges_before)
{
	my $now = $renamed{$obj} // $obj;
	if (!exists $privileges_after->{$now})
	{
		push @lost, $obj;
	}
	elsif ((split /: /, $privileges_after->{$now}, 2)[1] ne (split /: /, $privileges_before->{$obj}, 2)[1])
	{
		push @changed, "- $privileges_before->{$obj}\n+ $privileges_after->{$now}";
	}
}
is(scalar @lost, 0, 'every object of 0.1.0 that carries privileges is still there (by name and signature)')
  or diag('gone: ' . join("\n      ", @lost));
is(scalar @changed, 0,
	'every privilege of every role on every 0.1.0 object is unchanged (has_*_privilege and ACLs)')
  or diag(join "\n", @changed);
my %was = reverse %renamed;
note('new in ' . $default_version . ': '
	  . join("\n  ", grep { !exists $privileges_before->{$_} && !exists $was{$_} } sort keys %$privileges_after));

# --- every token -------------------------------------------------------------------------

my ($tok_after, $jwt_after) = token_states($after);
my @changed_tok = map { "$tokens{$_}{what}: " . ($tok_before->{$_} ? 'valid' : 'invalid') . ' before, '
	  . ($tok_after->{$_} ? 'valid' : 'invalid') . ' after' }
  grep { ($tok_before->{$_} // 0) != ($tok_after->{$_} // 0) } sort keys %tokens;
is(scalar @changed_tok, 0, 'every session token validates after the update exactly as before')
  or diag(join "\n", @changed_tok);
@bad = unexpected(\%tokens, $tok_after);
is(scalar @bad, 0, 'after the update: live sessions\' tokens validate, revoked, evicted, expired and superseded ones do not')
  or diag(join "\n", @bad);
my @changed_jwt = map { "$jwts{$_}{what}: " . ($jwt_before->{$_} ? 'valid' : 'invalid') . ' before, '
	  . ($jwt_after->{$_} ? 'valid' : 'invalid') . ' after' }
  grep { ($jwt_before->{$_} // 0) != ($jwt_after->{$_} // 0) } sort keys %jwts;
is(scalar @changed_jwt, 0, 'every access token verifies after the update exactly as before (both keys)')
  or diag(join "\n", @changed_jwt);
@bad = unexpected(\%jwts, $jwt_after);
is(scalar @bad, 0, 'after the update: access tokens of live sessions verify, those of ended sessions do not')
  or diag(join "\n", @bad);

# the grants at work
$after->do('SET ROLE app');
is(one($after, 'SELECT user_id FROM sessmgr.validate($1)', $t{alice1}), 'alice',
	'role app validates an old token');
like(error_of($after, 'SELECT count(*) FROM sessmgr.sessions'), qr/permission denied/,
	'role app still may not read sessmgr.sessions');
$after->do('RESET ROLE');
$after->do('SET ROLE session_admin');
is(one($after, q{SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = 'alice'}), 4,
	'role session_admin sees alice\'s four sessions in sessmgr.active_sessions');
$after->do('RESET ROLE');
my $claims = one($after, 'SELECT sessmgr.verify_access_token($1)::text', $t{alice_jwt});
# a PostgREST request as role authenticated, in one transaction as PostgREST
# runs it: the verified claims, the headers with the token itself
my ($pre_err, $listed) = ('', '');
$after->begin_work;
eval {
	$after->do('SET LOCAL ROLE authenticated');
	$after->do(q{SELECT pg_catalog.set_config('request.jwt.claims', $1, true),
	                    pg_catalog.set_config('request.headers', $2, true)},
		undef, $claims, qq({"authorization": "Bearer $t{alice_jwt}"}));
	$after->do('SELECT sessmgr_api.pre_request()');
	$listed = one($after, 'SELECT count(*) FROM sessmgr_api.my_sessions()');
	1;
} or $pre_err = $after->errstr // $@;
$after->rollback;
is($pre_err, '', 'role authenticated: pre_request accepts an access token signed by the first key before the update');
is($listed, 4, 'role authenticated: my_sessions lists alice\'s four sessions');
$after->do('SET ROLE anon');
like(error_of($after, 'SELECT * FROM sessmgr_api.my_sessions()'), qr/permission denied/,
	'role anon still may not call my_sessions');
$after->do('RESET ROLE');

# --- refresh tokens ------------------------------------------------------------------------

my ($new_tok, $new_jwt);
($st, $new_tok, $new_jwt) = refresh($after, $c2);
is($st, 'ok', 'the current refresh token of a session refreshed before the update (twice) refreshes');
is(one($after, 'SELECT user_id FROM sessmgr.validate($1)', $new_tok // ''), 'carol', '... its new token validates');
ok(defined one($after, 'SELECT sessmgr.verify_access_token($1)', $new_jwt // ''), '... its new access token verifies');
is(one($after, 'SELECT count(*) FROM sessmgr.validate($1)', $c2), 0, '... and the one it replaced no longer validates');
($st) = refresh($after, $h0);
is($st, 'ok', 'the refresh token of a session never refreshed refreshes');
($st) = refresh($after, $t{frank4});
is($st, 'ok', 'the refresh token of a session that survived the cap refreshes');

$after->do(q{SET sessmgr.refresh_grace = '5min'});
($st) = refresh($after, $e0);
is($st, 'ok', 'a previous refresh token superseded before the update refreshes within refresh_grace (5min)');

$after->do('SET sessmgr.refresh_grace = 0');
($st) = refresh($after, $d0);
is($st, 'reuse_detected',
	'a retired refresh token refreshed more than refresh_grace (0) after it was superseded is reuse');
is(one($after, q{SELECT revoke_reason FROM sessmgr.sessions WHERE user_id = 'dave'}), 'token_reuse',
	'... and its session is revoked for token_reuse');
is(one($after, 'SELECT count(*) FROM sessmgr.validate($1)', $d2), 0, '... so its current token no longer validates');
$after->do('RESET sessmgr.refresh_grace');

is(join(',', map { (refresh($after, $t{$_}))[0] } qw(bob gina frank1 ivan)),
	'invalid,invalid,invalid,expired',
	'refresh tokens of revoked, evicted and expired sessions refresh as invalid, invalid, invalid, expired');
loaded_only($after, $installed_lib, 'the checking connection after the update');

# --- the catalog: updated = fresh install -----------------------------------------------

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION sessmgr');
# the same grants, on 0.2.0's signatures (issue gained client_hints)
(my $fresh_grants = $dba_grants) =~
  s/sessmgr\.issue\(text, text, text, inet, text, boolean, jsonb\)/sessmgr.issue(text, text, text, inet, text, boolean, jsonb, jsonb, text)/;
$node->safe_psql('fresh', $fresh_grants);
my $fresh = connect_db('fresh');

# sections: [name, query returning (object, order, suborder, line)]
my $common = q{
	WITH ext AS (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'sessmgr'),
	mem AS (SELECT d.classid, d.objid, d.objsubid FROM pg_catalog.pg_depend d, ext
	         WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
	           AND d.refobjid = ext.oid AND d.deptype = 'e'),
	nsp AS (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname IN ('sessmgr', 'sessmgr_api')),
	rel AS (
	    SELECT pg_catalog.format('%s %I.%I',
	               CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
	                    WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
	                    WHEN 'c' THEN 'composite type' ELSE c.relkind::text END,
	               n.nspname, c.relname) AS obj, c.*
	      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	     WHERE c.relkind NOT IN ('i', 'I', 't')
	       AND (c.relnamespace IN (SELECT oid FROM nsp)
	            OR c.oid IN (SELECT objid FROM mem WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass))),
	fn AS (
	    SELECT pg_catalog.format('%s %I.%I(%s)',
	               CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window function'
	                    ELSE 'function' END,
	               n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)) AS obj,
	           l.lanname, p.*
	      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	      JOIN pg_catalog.pg_language l ON l.oid = p.prolang
	     WHERE p.pronamespace IN (SELECT oid FROM nsp)
	        OR p.oid IN (SELECT objid FROM mem WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass))
};
my @sections = (
	[ 'extension members', q{
	SELECT i.type || ' ' || i.identity, 0, 0, 'member: ' || i.type || ' ' || i.identity
	  FROM mem, pg_catalog.pg_identify_object(mem.classid, mem.objid, mem.objsubid) i} ],
	[ 'extension', q{
	SELECT 'extension', 0, 0, pg_catalog.format('extension %s: version %s, schema %s, relocatable %s, owner %s',
	           e.extname, e.extversion, e.extnamespace::pg_catalog.regnamespace, e.extrelocatable,
	           pg_catalog.pg_get_userbyid(e.extowner))
	  FROM pg_catalog.pg_extension e WHERE e.extname = 'sessmgr'
	UNION ALL
	SELECT 'extension', 1, 0, pg_catalog.format('dumped by pg_dump (pg_extension_config_dump): %s WHERE %L',
	           c.tbl::pg_catalog.regclass, c.cond)
	  FROM pg_catalog.pg_extension e,
	       unnest(e.extconfig, e.extcondition) c(tbl, cond)
	 WHERE e.extname = 'sessmgr'} ],
	[ 'schemas', q{
	SELECT 'schema ' || n.nspname, 0, 0,
	       pg_catalog.format('schema %I: owner %s, acl %s', n.nspname, pg_catalog.pg_get_userbyid(n.nspowner),
	                         coalesce(n.nspacl::text, '(default)'))
	  FROM pg_catalog.pg_namespace n WHERE n.oid IN (SELECT oid FROM nsp)
	UNION ALL
	SELECT 'schema ' || n.nspname, 1, 0,
	       pg_catalog.format('default privileges in schema %I for %s on %s: %s', n.nspname,
	                         pg_catalog.pg_get_userbyid(d.defaclrole), d.defaclobjtype, d.defaclacl)
	  FROM pg_catalog.pg_default_acl d JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
	 WHERE n.oid IN (SELECT oid FROM nsp)} ],
	[ 'functions and procedures', q{
	SELECT fn.obj, a.ord, 0, fn.obj || ': ' || a.attr || ' = ' || coalesce(a.val, '(null)')
	  FROM fn, LATERAL (VALUES
	      (1, 'arguments (with defaults)', pg_catalog.pg_get_function_arguments(fn.oid)),
	      (2, 'result', pg_catalog.pg_get_function_result(fn.oid)),
	      (3, 'language', fn.lanname),
	      (4, 'volatility', fn.provolatile::text),
	      (5, 'strict', fn.proisstrict::text),
	      (6, 'security definer', fn.prosecdef::text),
	      (7, 'leakproof', fn.proleakproof::text),
	      (8, 'parallel', fn.proparallel::text),
	      (9, 'cost', fn.procost::text),
	      (10, 'rows', fn.prorows::text),
	      (11, 'config', fn.proconfig::text),
	      (12, 'acl', fn.proacl::text),
	      (13, 'owner', pg_catalog.pg_get_userbyid(fn.proowner)),
	      (14, 'probin', fn.probin),
	      (15, 'support', fn.prosupport::text),
	      (16, 'returns set', fn.proretset::text)) a(ord, attr, val)
	UNION ALL
	SELECT fn.obj, 100, s.n::int, fn.obj || ': source | ' || s.line
	  FROM fn, LATERAL regexp_split_to_table(fn.prosrc, E'\n') WITH ORDINALITY s(line, n)} ],
	# attoptions leave out pg_attver, the server's own per-column version
	# stamp (PostgreSQL 15.20's back-branch attribute versioning), which
	# differs between any two databases
	[ 'relations', q{
	SELECT rel.obj, 0, 0, pg_catalog.format(
	           '%s: owner %s, persistence %s, acl %s, options %s, row security %s, forced %s, replica identity %s',
	           rel.obj, pg_catalog.pg_get_userbyid(rel.relowner), rel.relpersistence,
	           coalesce(rel.relacl::text, '(default)'), coalesce(rel.reloptions::text, '(none)'),
	           rel.relrowsecurity, rel.relforcerowsecurity, rel.relreplident)
	  FROM rel
	UNION ALL
	SELECT rel.obj, 10, (row_number() OVER (PARTITION BY rel.oid ORDER BY a.attname COLLATE "C"))::int,
	       pg_catalog.format('%s: column %I %s%s%s%s%s%s%s%s%s', rel.obj, a.attname,
	           pg_catalog.format_type(a.atttypid, a.atttypmod),
	           CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
	           CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'
	                              WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END,
	           CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) || ') STORED'
	                WHEN d.adbin IS NOT NULL THEN ' DEFAULT ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid)
	                ELSE '' END,
	           CASE WHEN a.attcollation <> 0 THEN ' COLLATE ' || (SELECT pg_catalog.quote_ident(co.collname)
	                                                              FROM pg_catalog.pg_collation co WHERE co.oid = a.attcollation)
	                ELSE '' END,
	           CASE WHEN a.attstorage <> t.typstorage THEN ' STORAGE ' || a.attstorage::text ELSE '' END,
	           CASE WHEN a.attcompression <> '' THEN ' COMPRESSION ' || a.attcompression::text ELSE '' END,
	           coalesce(' ACL ' || a.attacl::text, ''),
	           coalesce(' OPTIONS ' || (SELECT array_agg(o ORDER BY o)::text FROM unnest(a.attoptions) o
	                                     WHERE o NOT LIKE 'pg\_attver=%'), ''))
	  FROM rel JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
	  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
	  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	UNION ALL
	SELECT rel.obj, 20, s.n::int, rel.obj || ': view definition | ' || s.line
	  FROM rel, LATERAL regexp_split_to_table(pg_catalog.pg_get_viewdef(rel.oid, true), E'\n') WITH ORDINALITY s(line, n)
	 WHERE rel.relkind IN ('v', 'm')
	UNION ALL
	SELECT rel.obj, 30, 0, pg_catalog.format('%s: %s start %s increment %s min %s max %s cache %s cycle %s', rel.obj,
	           pg_catalog.format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
	           s.seqcycle)
	  FROM rel JOIN pg_catalog.pg_sequence s ON s.seqrelid = rel.oid
	UNION ALL
	SELECT rel.obj, 31, 0, pg_catalog.format('%s: owned by %s.%I (dependency %s)', rel.obj,
	           d.refobjid::pg_catalog.regclass, a.attname, d.deptype)
	  FROM rel JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = rel.oid
	       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjsubid > 0
	  JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
	 WHERE rel.relkind = 'S'} ],
	[ 'column order', q{
	SELECT rel.obj, 0, 0, rel.obj || ': columns in order: '
	       || string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
	  FROM rel JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
	 GROUP BY rel.obj} ],
	[ 'constraints, indexes, triggers, rules, policies', q{
	SELECT rel.obj, 40, 0, pg_catalog.format('%s: constraint %I %s', rel.obj, co.conname,
	           pg_catalog.pg_get_constraintdef(co.oid, true))
	  FROM rel JOIN pg_catalog.pg_constraint co ON co.conrelid = rel.oid
	UNION ALL
	SELECT 'domain ' || co.contypid::pg_catalog.regtype::text, 40, 0,
	       pg_catalog.format('domain %s: constraint %I %s', co.contypid::pg_catalog.regtype, co.conname,
	                         pg_catalog.pg_get_constraintdef(co.oid, true))
	  FROM pg_catalog.pg_constraint co WHERE co.contypid <> 0 AND co.connamespace IN (SELECT oid FROM nsp)
	UNION ALL
	SELECT rel.obj, 50, 0, pg_catalog.format('%s: %s%s%s', rel.obj, pg_catalog.pg_get_indexdef(i.indexrelid),
	           CASE WHEN i.indisclustered THEN ' (clustered)' ELSE '' END,
	           CASE WHEN i.indisreplident THEN ' (replica identity)' ELSE '' END)
	  FROM rel JOIN pg_catalog.pg_index i ON i.indrelid = rel.oid
	UNION ALL
	SELECT rel.obj, 60, 0, pg_catalog.format('%s: %s (enabled %s)', rel.obj, pg_catalog.pg_get_triggerdef(tg.oid, true),
	           tg.tgenabled)
	  FROM rel JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = rel.oid AND NOT tg.tgisinternal
	UNION ALL
	SELECT rel.obj, 70, 0, pg_catalog.format('%s: rule %s', rel.obj, pg_catalog.pg_get_ruledef(ru.oid, true))
	  FROM rel JOIN pg_catalog.pg_rewrite ru ON ru.ev_class = rel.oid AND ru.rulename <> '_RETURN'
	UNION ALL
	SELECT rel.obj, 80, 0, pg_catalog.format('%s: policy %I %s %s to %s using (%s) with check (%s)', rel.obj, po.polname,
	           CASE WHEN po.polpermissive THEN 'permissive' ELSE 'restrictive' END, po.polcmd,
	           (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_catalog.pg_get_userbyid(r)::text END, ', ' ORDER BY 1)
	              FROM unnest(po.polroles) r),
	           pg_catalog.pg_get_expr(po.polqual, po.polrelid), pg_catalog.pg_get_expr(po.polwithcheck, po.polrelid))
	  FROM rel JOIN pg_catalog.pg_policy po ON po.polrelid = rel.oid} ],
	[ 'event triggers', q{
	SELECT 'event trigger ' || et.evtname, 0, 0,
	       pg_catalog.format('event trigger %I: on %s when tag in %s execute %s, enabled %s, owner %s',
	           et.evtname, et.evtevent, coalesce(et.evttags::text, '(any)'), et.evtfoid::pg_catalog.regprocedure,
	           et.evtenabled, pg_catalog.pg_get_userbyid(et.evtowner))
	  FROM pg_catalog.pg_event_trigger et
	 WHERE et.oid IN (SELECT objid FROM mem WHERE classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass)
	    OR et.evtfoid IN (SELECT oid FROM fn)} ],
	[ 'types', q{
	SELECT 'type ' || t.oid::pg_catalog.regtype::text, 0, 0,
	       pg_catalog.format('type %s: kind %s, owner %s, acl %s%s%s', t.oid::pg_catalog.regtype, t.typtype,
	           pg_catalog.pg_get_userbyid(t.typowner), coalesce(t.typacl::text, '(default)'),
	           CASE WHEN t.typtype = 'd' THEN pg_catalog.format(', over %s%s%s', pg_catalog.format_type(t.typbasetype, t.typtypmod),
	                CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END, coalesce(' DEFAULT ' || t.typdefault, '')) ELSE '' END,
	           CASE WHEN t.typtype = 'e' THEN ', labels ' || (SELECT string_agg(pg_catalog.quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
	                                                          FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) ELSE '' END)
	  FROM pg_catalog.pg_type t
	 WHERE (t.typnamespace IN (SELECT oid FROM nsp)
	        OR t.oid IN (SELECT objid FROM mem WHERE classid = 'pg_catalog.pg_type'::pg_catalog.regclass))
	   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)
	   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')} ],
	[ 'comments', q{
	SELECT i.type || ' ' || i.identity, 0, 0,
	       pg_catalog.format('comment on %s %s: %s', i.type, i.identity, d.description)
	  FROM pg_catalog.pg_description d,
	       LATERAL pg_catalog.pg_identify_object(d.classoid, d.objoid, d.objsubid) i
	 WHERE i.schema IN ('sessmgr', 'sessmgr_api')
	    OR (d.classoid, d.objoid) IN (SELECT classid, objid FROM mem)
	    OR (d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objoid IN (SELECT oid FROM nsp))} ],
	[ 'initial privileges (pg_init_privs)', q{
	SELECT i.type || ' ' || i.identity, 0, 0,
	       pg_catalog.format('initial privileges of %s %s (%s): %s', i.type, i.identity,
	           CASE ip.privtype WHEN 'e' THEN 'extension' WHEN 'i' THEN 'initdb' ELSE ip.privtype::text END, ip.initprivs)
	  FROM pg_catalog.pg_init_privs ip,
	       LATERAL pg_catalog.pg_identify_object(ip.classoid, ip.objoid, ip.objsubid) i
	 WHERE i.schema IN ('sessmgr', 'sessmgr_api')
	    OR (ip.classoid, ip.objoid) IN (SELECT classid, objid FROM mem)
	    OR (ip.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND ip.objoid IN (SELECT oid FROM nsp))} ],
);

# section name => text (one line per attribute, in a stable order)
sub catalog
{
	my ($dbh) = @_;
	$dbh->do('SET search_path = pg_catalog');
	my %text;
	for my $s (@sections)
	{
		my ($name, $sql) = @$s;
		my @lines = map { $_->[3] } rows($dbh, "$common SELECT * FROM ($sql) x(obj, ord, sub, line) "
			  . 'ORDER BY obj COLLATE "C", ord, sub, line COLLATE "C"');
		$text{$name} = join "\n", @lines;
	}
	return \%text;
}

my $cat_updated = catalog($after);
my $cat_fresh = catalog($fresh);
for my $s (@sections)
{
	my $name = $s->[0];
	my $diff = text_diff($cat_updated->{$name}, $cat_fresh->{$name},
		"updated from 0.1.0 ($name)", "fresh $default_version install ($name)");
	my $count = $cat_fresh->{$name} eq '' ? 0 : scalar(split /\n/, $cat_fresh->{$name});
	my $explain = $name eq 'column order'
	  ? "\nALTER TABLE ... ADD COLUMN in the update script puts new columns last: the install script must declare them last too"
	  : '';
	ok($diff eq '', "catalog after the update = fresh $default_version install: $name ($count lines)")
	  or diag("lines starting with - are only in the updated database, + only in the fresh one$explain\n$diff");
}

$after->disconnect;
$fresh->disconnect;
$node->stop;
done_testing();

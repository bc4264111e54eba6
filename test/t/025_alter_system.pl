# test/t/025_alter_system.pl: ALTER SYSTEM for sessmgr's settings on
# PostgreSQL 15.
#
# Before PostgreSQL 17, ALTER SYSTEM refuses a parameter that nothing in the
# session has defined: in a new connection sessmgr.so is not loaded yet, so
# ALTER SYSTEM SET (and RESET) sessmgr.max_sessions fails with "unrecognized
# configuration parameter".  LOAD 'sessmgr' (or any call of one of its
# functions) in the same session defines the settings, and then ALTER SYSTEM
# works, checks the value, and after pg_reload_conf() every new connection
# obeys it.  Once a sessmgr setting is in the configuration files, new
# connections hold it as an unchecked placeholder: ALTER SYSTEM then works
# without LOAD, but writes any value, even one sessmgr refuses (a backend
# that loads sessmgr warns and uses the default).  Hence the README's advice:
# always LOAD 'sessmgr' in the session that runs ALTER SYSTEM.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('alter_system');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

my $TIMEOUT = $PostgreSQL::Test::Utils::timeout_default;

# Run $sql in one new connection; return (exit code, stdout, stderr).
sub session
{
	my ($sql) = @_;
	my ($out, $err);
	my $rc = $node->psql('postgres', $sql,
		stdout => \$out, stderr => \$err, timeout => $TIMEOUT,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $out, $err);
}

# The value of a setting in a new connection that has not loaded sessmgr
# (the configuration file's value, as a placeholder); '' if unset.
sub fresh_setting
{
	my ($name) = @_;
	return $node->safe_psql('postgres', "SELECT current_setting('$name', true)",
		timeout => $TIMEOUT);
}

# postgresql.auto.conf as it is now.
sub auto_conf
{
	return slurp_file($node->data_dir . '/postgresql.auto.conf');
}

# Wait until new connections see $name = $want after a reload.
sub wait_for_setting
{
	my ($name, $want) = @_;
	$node->poll_query_until('postgres', "SELECT current_setting('$name', true)", $want)
	  or die "gave up waiting for new connections to see $name = '$want' after pg_reload_conf()"
	  . " (they see '" . fresh_setting($name) . "')";
	return;
}

# --- in a new connection, ALTER SYSTEM does not know the settings --------

is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_settings WHERE name LIKE 'sessmgr.%'}),
	'0', 'a new connection has not loaded sessmgr: none of its settings is defined');

my ($rc, $out, $err) = session('ALTER SYSTEM SET sessmgr.max_sessions = 20');
isnt($rc, 0, 'ALTER SYSTEM SET sessmgr.max_sessions in a new connection fails');
like($err, qr/ERROR:  42704: unrecognized configuration parameter "sessmgr.max_sessions"/,
	'... with 42704: unrecognized configuration parameter');
($rc, $out, $err) = session('ALTER SYSTEM RESET sessmgr.max_sessions');
isnt($rc, 0, 'so does ALTER SYSTEM RESET sessmgr.max_sessions');
like($err, qr/ERROR:  42704: unrecognized configuration parameter "sessmgr.max_sessions"/,
	'... with the same error');
unlike(auto_conf(), qr/sessmgr/, 'postgresql.auto.conf is unchanged');

# --- LOAD 'sessmgr' first, in the same session ----------------------------

($rc, $out, $err) = session(q{
	LOAD 'sessmgr';
	ALTER SYSTEM SET sessmgr.max_sessions = 20;});
is($rc, 0, "LOAD 'sessmgr'; ALTER SYSTEM SET sessmgr.max_sessions = 20 works");
is($err, '', '... without an error or warning');
like(auto_conf(), qr/^sessmgr\.max_sessions = '20'$/m, '... and writes it to postgresql.auto.conf');

($rc, $out, $err) = session(q{
	LOAD 'sessmgr';
	ALTER SYSTEM SET sessmgr.max_sessions = 0;});
isnt($rc, 0, 'once loaded, ALTER SYSTEM checks the value: max_sessions = 0 is refused');
like($err, qr/ERROR:  22023: 0 is outside the valid range for parameter "sessmgr.max_sessions"/,
	'... with 22023: outside the valid range');

is($node->safe_psql('postgres', q{
		SELECT count(*) FROM sessmgr.validate('sessmgr_junk');
		ALTER SYSTEM SET sessmgr.max_sessions = 30;
		ALTER SYSTEM SET sessmgr.max_sessions = 20;}),
	'0', 'calling any sessmgr function first loads it too: ALTER SYSTEM then works');

# Until the server rereads its files, a new connection knows nothing of the
# setting: undoing it needs LOAD as well.
($rc, $out, $err) = session('ALTER SYSTEM RESET sessmgr.max_sessions');
like($err, qr/ERROR:  42704: unrecognized configuration parameter "sessmgr.max_sessions"/,
	'before pg_reload_conf(): ALTER SYSTEM RESET in a new connection still fails with 42704');
like(auto_conf(), qr/^sessmgr\.max_sessions = '20'$/m, '... and the setting stays');
is($node->safe_psql('postgres', q{LOAD 'sessmgr'; SHOW sessmgr.max_sessions}), '15',
	'... and new connections still have the default cap 15');

# --- after pg_reload_conf(), new connections obey ------------------------

$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
wait_for_setting('sessmgr.max_sessions', '20');
is($node->safe_psql('postgres', q{LOAD 'sessmgr'; SHOW sessmgr.max_sessions}), '20',
	'after pg_reload_conf(): a new connection has sessmgr.max_sessions = 20');

($rc, $out, $err) = session(q{
	LOAD 'sessmgr';
	ALTER SYSTEM SET sessmgr.max_sessions = 2;
	ALTER SYSTEM SET sessmgr.cap_policy = 'reject';
	SELECT pg_reload_conf();});
is($rc, 0, "LOAD 'sessmgr'; max_sessions = 2 and cap_policy = reject by ALTER SYSTEM; pg_reload_conf()");
wait_for_setting('sessmgr.max_sessions', '2');
wait_for_setting('sessmgr.cap_policy', 'reject');

# Issue three sessions for one user in a new connection, each on its own;
# return the third's SQLSTATE and message ('ok' if it was issued).
sub third_issue
{
	my ($user) = @_;
	my ($rc, $out, $err) = session(qq{
		SELECT count(*) FROM sessmgr.issue('$user');
		SELECT count(*) FROM sessmgr.issue('$user');
		SELECT count(*) FROM sessmgr.issue('$user');});
	return $err =~ /ERROR:  (\w{5}: [^\n]*)/ ? $1 : ($rc == 0 ? 'ok' : "psql exit $rc: $err");
}

like(third_issue('alice'), qr/^53400: /,
	'a new connection obeys the new cap: the third issue() for one user fails with 53400');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = 'alice'}),
	'2', '... and the user has 2 active sessions');

# --- the placeholder trap ----------------------------------------------------
# Now that the files name the setting, a new connection holds it as a
# placeholder, and ALTER SYSTEM accepts it without LOAD, unchecked.

($rc, $out, $err) = session('ALTER SYSTEM SET sessmgr.max_sessions = 0');
is($rc, 0, 'with the setting in postgresql.auto.conf, ALTER SYSTEM without LOAD works ...');
like(auto_conf(), qr/^sessmgr\.max_sessions = '0'$/m,
	'... but writes a value sessmgr refuses (0), unchecked');
($rc, $out, $err) = session(q{
	LOAD 'sessmgr';
	ALTER SYSTEM SET sessmgr.max_sessions = 0;});
like($err, qr/ERROR:  22023: 0 is outside the valid range/, "with LOAD 'sessmgr' first, 0 is refused");
($rc, $out, $err) = session(q{
	LOAD 'sessmgr';
	ALTER SYSTEM SET sessmgr.max_sessions = 2;});
is($rc, 0, "LOAD 'sessmgr'; ALTER SYSTEM SET puts back a valid value");

# --- ALTER SYSTEM RESET with LOAD -------------------------------------------

($rc, $out, $err) = session(q{
	LOAD 'sessmgr';
	ALTER SYSTEM RESET sessmgr.max_sessions;
	ALTER SYSTEM RESET sessmgr.cap_policy;
	SELECT pg_reload_conf();});
is($rc, 0, "LOAD 'sessmgr'; ALTER SYSTEM RESET sessmgr.max_sessions and cap_policy work");
is($err, '', '... without an error or warning');
unlike(auto_conf(), qr/sessmgr/, '... and remove both settings from postgresql.auto.conf');
wait_for_setting('sessmgr.max_sessions', '');
wait_for_setting('sessmgr.cap_policy', '');
is($node->safe_psql('postgres', q{LOAD 'sessmgr'; SHOW sessmgr.max_sessions; SHOW sessmgr.cap_policy}),
	"15\nevict_oldest", 'after pg_reload_conf(): new connections have the defaults again');
is(third_issue('bob'), 'ok', '... and a third issue() for one user works again');

$node->stop;
done_testing();

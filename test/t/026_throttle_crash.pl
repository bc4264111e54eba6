# test/t/026_throttle_crash.pl: failed-login counters survive a crash.
#
# The counters are ordinary WAL-logged rows (src/throttle.c): a crash must
# not hand an attacker a fresh set of attempts.  Failures are recorded (each
# committed), then the server stops in immediate mode (no shutdown
# checkpoint: recovery replays the WAL) and starts again; every count, the
# delay and the lock are still there.  The same after a SIGKILL of a backend
# while a failure is being recorded (the postmaster resets every backend and
# recovers): what committed before counts.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('throttle_crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
restart_after_crash = on
sessmgr.login_lockout_failures = 10
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

is($node->safe_psql('postgres',
		"SELECT relpersistence FROM pg_class WHERE oid = 'sessmgr.login_attempts'::regclass"),
	'p', 'sessmgr.login_attempts is a permanent (WAL-logged) table');

# 7 failures of one pair (a delay), 10 of another account (locked)
for my $i (1 .. 7)
{
	$node->safe_psql('postgres',
		"SELECT sessmgr.login_failed('crash-user', '198.51.100.9')");
}
for my $i (1 .. 10)
{
	$node->safe_psql('postgres',
		"SELECT sessmgr.login_failed('crash-locked', ('198.51.100.' || $i)::inet)");
}

my $state_sql = q{
	SELECT sessmgr.login_failures('crash-user'),
	       sessmgr.login_failures('crash-locked'),
	       (SELECT failures FROM sessmgr.login_attempts
	         WHERE user_id = 'crash-user' AND network = '198.51.100.9/32'),
	       (SELECT delayed_until IS NOT NULL FROM sessmgr.login_attempts
	         WHERE user_id = 'crash-user' AND network = '198.51.100.9/32'),
	       sessmgr.login_delay('crash-locked') > '100 years',
	       (SELECT count(*) FROM sessmgr.session_events WHERE event = 'account_locked')};
my $before = $node->safe_psql('postgres', $state_sql);
is($before, '7|10|7|t|t|1', 'before the crash: 7 failures and a delay, 10 and a lock');

$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', $state_sql), $before,
	'after an immediate shutdown and recovery: the same counts, delay and lock');

# a failure being recorded when its backend is killed: the committed ones stay
my $killed = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $killed->query_safe('SELECT pg_backend_pid()');
$killed->query_safe('BEGIN');
$killed->query_safe("SELECT sessmgr.login_failed('crash-user', '198.51.100.9')");
kill 'KILL', $pid;
$killed->quit;
# the postmaster resets every backend; wait until it accepts connections again
$node->poll_query_until('postgres', 'SELECT 1', '1')
  or die 'the server did not come back after the backend was killed';
is($node->safe_psql('postgres', $state_sql), $before,
	'after a backend was killed mid-failure: the committed counts, no more, no fewer');

$node->safe_psql('postgres', "SELECT sessmgr.login_failed('crash-user', '198.51.100.9')");
is($node->safe_psql('postgres', "SELECT sessmgr.login_failures('crash-user')"),
	'8', 'counting goes on from there');

$node->stop;
done_testing();

# sessmgr without pg_cron: it installs, cleanup works when called by any
# other scheduler, scheduling fails with a clear error and hint, and DROP
# EXTENSION is unaffected.  A cron.database_name placeholder in the
# configuration (the setting without the library) does not fool it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nocron');
$node->init;
$node->start;

is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'}),
	'0', 'no pg_cron here');
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

# a session revoked 8 days ago goes, a live one stays
$node->safe_psql(
	'postgres', q{
	SELECT sessmgr.issue('old'), sessmgr.issue('live');
	SELECT sessmgr.revoke_all('old');
	SET session_replication_role = replica;
	UPDATE sessmgr.sessions SET revoked_at = revoked_at - interval '8 days' WHERE user_id = 'old';
});
is($node->safe_psql('postgres', 'CALL sessmgr.cleanup()'),
	'1|0|0', 'CALL sessmgr.cleanup() works without pg_cron');
is($node->safe_psql('postgres', 'SELECT string_agg(user_id, \',\') FROM sessmgr.sessions'),
	'live', '... removing only the session past retention');

sub schedule_error
{
	my ($sql) = @_;
	my ($stdout, $stderr);
	my $rc = $node->psql('postgres', $sql, stdout => \$stdout, stderr => \$stderr,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	isnt($rc, 0, "$sql fails");
	return $stderr;
}

for my $sql ('SELECT sessmgr.schedule_cleanup()', 'SELECT sessmgr.unschedule_cleanup()')
{
	my $err = schedule_error($sql);
	like($err, qr/ERROR:  55000: pg_cron is not loaded/, '... with SQLSTATE 55000: pg_cron is not loaded');
	like($err, qr/HINT:  Install pg_cron and add it to shared_preload_libraries, or run "CALL sessmgr.cleanup\(\)" from another scheduler\./,
		'... and a hint');
}

# the setting alone, without the library, is only a placeholder
$node->append_conf('postgresql.conf', "cron.database_name = 'postgres'");
$node->restart;
like(schedule_error('SELECT sessmgr.schedule_cleanup()'),
	qr/pg_cron is not loaded/, 'a cron.database_name placeholder is not pg_cron');

my ($stdout, $stderr);
my $rc = $node->psql('postgres', 'DROP EXTENSION sessmgr', stdout => \$stdout, stderr => \$stderr);
is($rc, 0, 'DROP EXTENSION sessmgr works without pg_cron');
is($stderr, '', '... silently');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'sessmgr%'}),
	'0', '... and takes its event trigger along');
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

$node->stop;
done_testing();

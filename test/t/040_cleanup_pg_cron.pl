# Scheduling cleanup with pg_cron, on a cluster that preloads pg_cron with
# cron.database_name = 'postgres':
#
#   - sessmgr in the pg_cron database ("postgres"): the job is registered in
#     the caller's transaction;
#   - sessmgr in another database ("app"): the job is registered through
#     cron.schedule_in_database() by a background worker;
#   - pg_cron itself runs both jobs to success (cron.job_run_details), and
#     they remove what has outlived its retention: one wait of at most about
#     a minute, since pg_cron 1.4 schedules by the minute;
#   - an administrator who is not a superuser can schedule it, with
#     pg_cron's grants;
#   - DROP EXTENSION sessmgr removes the job (whoever scheduled it), and
#     only if the DROP commits;
#   - clear errors when pg_cron is not installed where it must be, and for a
#     role that cannot log in.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
# pg_cron connects to run a job; the test cluster listens on its socket only
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.host = '@{[ $node->host ]}'
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
$node->safe_psql('postgres', 'CREATE DATABASE app');
for my $db ('postgres', 'app')
{
	$node->safe_psql($db, 'CREATE EXTENSION sessmgr');
}

# the cleanup jobs, as pg_cron sees them
sub jobs
{
	return $node->safe_psql('postgres',
		q{SELECT coalesce(string_agg(jobname || ' ' || database || ' ' || schedule || ' ' || command,
		                             E'\n' ORDER BY jobname), 'none')
		    FROM cron.job});
}

# run SQL that must fail; returns its stderr
sub psql_fails
{
	my ($db, $sql, $name) = @_;
	my ($stdout, $stderr);
	my $rc = $node->psql($db, $sql, stdout => \$stdout, stderr => \$stderr);
	isnt($rc, 0, "$name: fails");
	return $stderr;
}

# -- scheduling ------------------------------------------------------------

my $job_here = $node->safe_psql('postgres', 'SELECT sessmgr.schedule_cleanup()');
my $job_app = $node->safe_psql('app', 'SELECT sessmgr.schedule_cleanup()');
like($job_here, qr/^\d+$/, 'schedule_cleanup() in the pg_cron database returns a job id');
like($job_app, qr/^\d+$/, 'schedule_cleanup() in another database returns a job id');
is( jobs(),
	"sessmgr_cleanup_app app */5 * * * * CALL sessmgr.cleanup()\n"
	  . "sessmgr_cleanup_postgres postgres */5 * * * * CALL sessmgr.cleanup()",
	'one job per database, every five minutes by default, running CALL sessmgr.cleanup()');

is($node->safe_psql('app', q{SELECT sessmgr.schedule_cleanup('17 3 * * *')}),
	$job_app, 'scheduling again changes the same job');
like(jobs(), qr/^sessmgr_cleanup_app app 17 3 \* \* \* /m, '... to the new schedule');

# in the pg_cron database the registration is part of the transaction
$node->safe_psql('postgres',
	q{BEGIN; SELECT sessmgr.unschedule_cleanup(); ROLLBACK;});
like(jobs(), qr/^sessmgr_cleanup_postgres /m,
	'an unscheduling rolled back in the pg_cron database leaves the job');

my $err = psql_fails('app', q{SELECT sessmgr.schedule_cleanup('every now and then')},
	'an invalid schedule');
like($err, qr/invalid schedule: every now and then/, '... with pg_cron\'s message');
like($err, qr/calling pg_cron in database "postgres"/, '... and where it came from');

$node->safe_psql('postgres', 'CREATE ROLE nologin_admin NOLOGIN SUPERUSER');
$err = psql_fails('app', q{SET ROLE nologin_admin; SELECT sessmgr.schedule_cleanup()},
	'scheduling as a role that cannot log in');
like($err, qr/role "nologin_admin" cannot log in/, '... says so');

# -- pg_cron runs the jobs -------------------------------------------------

# In both databases: a session revoked 8 days ago (past the 7-day
# retention), one revoked yesterday, and a live one.
for my $db ('postgres', 'app')
{
	$node->safe_psql(
		$db, q{
		SELECT sessmgr.issue('old'), sessmgr.issue('recent'), sessmgr.issue('live');
		SELECT sessmgr.revoke_all('old'), sessmgr.revoke_all('recent');
		SET session_replication_role = replica;  -- the finality guard would refuse this
		UPDATE sessmgr.sessions SET revoked_at = revoked_at - interval '8 days'
		 WHERE user_id = 'old';
		UPDATE sessmgr.sessions SET revoked_at = revoked_at - interval '1 day'
		 WHERE user_id = 'recent';
	});
}

$node->safe_psql('postgres', q{SELECT sessmgr.schedule_cleanup('* * * * *')});
$node->safe_psql('app', q{SELECT sessmgr.schedule_cleanup('* * * * *')});
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT count(DISTINCT jobid) = 2 FROM cron.job_run_details
		 WHERE jobid IN ($job_here, $job_app) AND status = 'succeeded'}),
	'pg_cron runs both cleanup jobs to success');
is( $node->safe_psql(
		'postgres', qq{
		SELECT string_agg(DISTINCT database || ' ' || status || ' ' || return_message, ', ')
		  FROM cron.job_run_details
		 WHERE jobid IN ($job_here, $job_app) AND status NOT IN ('starting', 'running')}),
	'app succeeded 1 row, postgres succeeded 1 row',
	'and no run of them failed');
for my $db ('postgres', 'app')
{
	is( $node->safe_psql(
			$db, q{
			SELECT string_agg(user_id, ',' ORDER BY user_id) FROM sessmgr.sessions;
			SELECT count(*) FROM sessmgr.cleanup_runs
			 WHERE finished_at IS NOT NULL AND sessions_removed = 1;
		}),
		"live,recent\n1",
		"in $db the job removed the session past retention, recorded the run, and kept the others"
	);
}

# -- unscheduling ----------------------------------------------------------

is($node->safe_psql('app', 'SELECT sessmgr.unschedule_cleanup()'),
	't', 'unschedule_cleanup() removes the job');
is($node->safe_psql('app', 'SELECT sessmgr.unschedule_cleanup()'),
	'f', '... and says so when there is none');
like(jobs(), qr/\Asessmgr_cleanup_postgres [^\n]*\z/, '... leaving the other database\'s job');

# -- an administrator who is not a superuser --------------------------------

# pg_cron's own grants in its database, sessmgr's in the other
$node->safe_psql(
	'postgres', q{
	CREATE ROLE janitor LOGIN;
	GRANT USAGE ON SCHEMA cron TO janitor;
	GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean)
	   TO janitor;
});
$node->safe_psql(
	'app', q{
	GRANT USAGE ON SCHEMA sessmgr TO janitor;
	GRANT EXECUTE ON FUNCTION sessmgr.schedule_cleanup(text), sessmgr.unschedule_cleanup()
	   TO janitor;
	GRANT EXECUTE ON PROCEDURE sessmgr.cleanup(integer, bigint, bigint, bigint) TO janitor;
});
my @as_janitor = (extra_params => [ '-U', 'janitor' ]);
like($node->safe_psql('app', 'SELECT sessmgr.schedule_cleanup()', @as_janitor),
	qr/^\d+$/, 'a granted administrator schedules the job from another database');
is( $node->safe_psql(
		'postgres', q{SELECT username FROM cron.job WHERE jobname = 'sessmgr_cleanup_app'}),
	'janitor', '... and pg_cron will run it as that role');
is($node->safe_psql('app', 'SELECT sessmgr.unschedule_cleanup()', @as_janitor),
	't', '... who can unschedule it again');
$node->safe_psql('app', 'SELECT sessmgr.schedule_cleanup()', @as_janitor);

# -- DROP EXTENSION --------------------------------------------------------

for my $db ('postgres', 'app')
{
	my $job = "sessmgr_cleanup_$db";

	$node->safe_psql($db, 'BEGIN; DROP EXTENSION sessmgr; ROLLBACK;');
	like(jobs(), qr/^$job /m, "$db: a DROP EXTENSION rolled back keeps the job");

	$node->safe_psql($db, 'CREATE VIEW keep_me AS SELECT * FROM sessmgr.active_sessions');
	$err = psql_fails($db, 'DROP EXTENSION sessmgr', "$db: a DROP EXTENSION with a dependent view");
	like(jobs(), qr/^$job /m, "$db: ... keeps the job");
	$node->safe_psql($db, 'DROP VIEW keep_me');

	$node->safe_psql($db,
		'BEGIN; SAVEPOINT x; DROP EXTENSION sessmgr; ROLLBACK TO x; COMMIT;');
	like(jobs(), qr/^$job /m,
		"$db: a DROP EXTENSION rolled back to a savepoint keeps the job");

	my ($stdout, $stderr);
	$node->psql($db, 'DROP EXTENSION sessmgr', stdout => \$stdout, stderr => \$stderr);
	is($stderr, '', "$db: DROP EXTENSION sessmgr succeeds without a warning");
	unlike(jobs(), qr/^$job /m, "$db: ... and removes the job");
}
is(jobs(), 'none', 'no job is left behind');

# dropping some other extension leaves sessmgr's job alone
$node->safe_psql('app', 'CREATE EXTENSION sessmgr; SELECT sessmgr.schedule_cleanup()');
$node->safe_psql('app', 'CREATE EXTENSION pg_stat_statements; DROP EXTENSION pg_stat_statements');
like(jobs(), qr/^sessmgr_cleanup_app /m, 'dropping another extension leaves the job');

# dropping and re-creating sessmgr in one transaction keeps the new job
$node->safe_psql('app',
	'BEGIN; DROP EXTENSION sessmgr; CREATE EXTENSION sessmgr;'
	  . q{ SELECT sessmgr.schedule_cleanup('1 1 * * *'); COMMIT;});
like(jobs(), qr/^sessmgr_cleanup_app app 1 1 \* \* \* /m,
	'a job scheduled after a DROP EXTENSION in the same transaction stays');

# -- a pg_cron call that cannot finish does not hang DROP EXTENSION -----------

# The removal from another database is made at commit by a background worker.
# With cron.job locked in the pg_cron database, the worker's call gives up
# after its statement timeout (10 s) and the DROP commits with a warning,
# instead of waiting at pre-commit for as long as the lock is held.
$node->safe_psql('app', q{SELECT sessmgr.schedule_cleanup('2 2 * * *')});
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE cron.job IN ACCESS EXCLUSIVE MODE;');
{
	my ($stdout, $stderr);
	my $started = time;
	my $rc = $node->psql('app', 'DROP EXTENSION sessmgr',
		stdout => \$stdout, stderr => \$stderr,
		timeout => $PostgreSQL::Test::Utils::timeout_default);
	is($rc, 0, 'DROP EXTENSION commits while cron.job is locked in the pg_cron database');
	like($stderr, qr/WARNING:  could not unschedule the sessmgr cleanup job "sessmgr_cleanup_app"/,
		'... with a warning that the job could not be removed');
	like($stderr, qr/statement timeout|timed out/, '... because the call timed out')
	  or diag("took " . (time - $started) . " s");
}
$locker->query_safe('ROLLBACK;');
$locker->quit;
like(jobs(), qr/^sessmgr_cleanup_app /m, 'the job is still there, as the warning said');
$node->safe_psql('postgres',
	q{SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'sessmgr_cleanup_app'});
$node->safe_psql('app', 'CREATE EXTENSION sessmgr');

# -- pg_cron missing where it must be --------------------------------------

$node->safe_psql('postgres', 'DROP EXTENSION pg_cron');
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr');
for my $db ('postgres', 'app')
{
	$err = psql_fails($db, 'SELECT sessmgr.schedule_cleanup()',
		"$db: scheduling without the pg_cron extension");
	like($err, qr/extension "pg_cron" is not installed in database "postgres"/,
		"$db: ... names what is missing");
	like($err, qr/HINT:  Run CREATE EXTENSION pg_cron in database "postgres"/,
		"$db: ... and how to fix it");
	my ($stdout, $stderr);
	$node->psql($db, 'DROP EXTENSION sessmgr', stdout => \$stdout, stderr => \$stderr);
	is($stderr, '', "$db: DROP EXTENSION sessmgr without pg_cron installed: no warning");
}

$node->stop;
done_testing();

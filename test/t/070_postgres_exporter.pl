# test/t/070_postgres_exporter.pl: sessmgr's metrics through the real Prometheus
# postgres_exporter (Debian's prometheus-postgres-exporter) with the queries file
# monitoring/postgres_exporter.yml.
#
# The test builds a known data set (sessions per user, revocations by reason, a
# cap eviction, failed and suspicious logins, a lockout, events old enough to be
# rolled up and fresh ones), runs CALL sessmgr.cleanup() (which takes the
# snapshot), starts the exporter on a free loopback port as a role with only the
# documented grants, scrapes /metrics and checks each sessmgr_* value.  Then a
# login and a revocation show in the counters at the next scrape, while the
# session figures wait for the next cleanup run.  Every metric that
# monitoring/alerts.yml names must be exported; with promtool (Debian's
# prometheus package) on the PATH, the rules file is checked by it too.
use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($exporter) = grep { -x $_ }
  ('/usr/bin/prometheus-postgres-exporter', '/usr/bin/postgres_exporter');
plan skip_all => 'the exporter is not installed (Debian package prometheus-postgres-exporter)'
  unless $exporter;

my $queries = 'monitoring/postgres_exporter.yml';
my $alerts = 'monitoring/alerts.yml';
ok(-r $queries && -r $alerts, "$queries and $alerts are there");

my $node = PostgreSQL::Test::Cluster->new('exporter');
$node->init;
$node->start;

sub sql
{
	return $node->safe_psql('postgres', $_[0]);
}

# the exporter's role: exactly the grants docs/monitoring.md documents
sql(q{
	CREATE EXTENSION sessmgr;
	CREATE ROLE sessmgr_exporter LOGIN;
	GRANT pg_monitor TO sessmgr_exporter;
	GRANT USAGE ON SCHEMA sessmgr TO sessmgr_exporter;
	GRANT EXECUTE ON FUNCTION sessmgr.metrics(), sessmgr.metrics_events(),
	                          sessmgr.metrics_tables() TO sessmgr_exporter;
});

# --- the data set ------------------------------------------------------------------

# events an hour old, written before the rest (lower ids): the cleanup run rolls
# them up into the counters
sql(q{
	INSERT INTO sessmgr.session_events (occurred_at, event, user_id, reason, actor, details)
	VALUES (now() - interval '1 hour', 'issue', 'old1', NULL, 'tap', NULL),
	       (now() - interval '1 hour', 'issue', 'old2', NULL, 'tap', NULL),
	       (now() - interval '1 hour', 'revoke', 'old1', 'logout', 'tap', NULL),
	       (now() - interval '1 hour', 'login_failed', 'old3', 'bad_credentials', 'tap',
	        '{"failures": 4, "account_failures": 4}'),
	       (now() - interval '1 hour', 'suspicious_login', 'old2', NULL, 'tap',
	        '{"reasons": ["new_country"]}'),
	       (now() - interval '1 hour', 'account_locked', 'old3', NULL, 'tap', NULL)});

# sessions: u1 3 (one revoked: logout), u2 2 (a third evicts one: cap), u3 1,
# u4 1 (revoked by an administrator), u5 2 (revoke_all: logout_all)
sql(q{
	SET sessmgr.max_sessions = 2;
	SELECT count(*) FROM (SELECT sessmgr.issue('u1') FROM generate_series(1, 3)) s;
	SELECT count(*) FROM (SELECT sessmgr.issue('u2') FROM generate_series(1, 3)) s;
	SELECT count(*) FROM sessmgr.issue('u3');
	SELECT count(*) FROM sessmgr.issue('u4');
	SELECT count(*) FROM (SELECT sessmgr.issue('u5') FROM generate_series(1, 2)) s;
});
# u1's third issue evicted one of u1's too (cap 2): only u2's eviction is wanted
my $evicted = sql(q{SELECT string_agg(user_id, ',' ORDER BY user_id) FROM sessmgr.session_events
                     WHERE event = 'evict'});
is($evicted, 'u1,u2', 'the cap of 2 evicted one session of u1 and one of u2');
sql(q{
	SELECT sessmgr.revoke(id, 'u1', 'logout') FROM sessmgr.sessions
	 WHERE user_id = 'u1' AND revoked_at IS NULL ORDER BY created_at LIMIT 1;
	SELECT sessmgr.revoke_any(id) FROM sessmgr.sessions WHERE user_id = 'u4';
	SELECT sessmgr.revoke_all('u5');
});

# failed, suspicious and locked-out logins of this moment: written as the
# account-protection functions write them
sql(q{
	INSERT INTO sessmgr.session_events (event, user_id, reason, actor, details)
	VALUES ('login_failed', 'u6', 'bad_credentials', 'tap', '{"failures": 2}'),
	       ('login_failed', 'u6', 'bad_credentials', 'tap', NULL),
	       ('suspicious_login', 'u3', NULL, 'tap', '{"reasons": ["new_device"]}'),
	       ('account_locked', 'u6', NULL, 'tap', NULL)});
# and, when account protection is there, through sessmgr.login_failed itself
my $have_login_failed = sql(q{SELECT count(*) FROM pg_proc
                               WHERE oid = to_regprocedure('sessmgr.login_failed(text, inet, text, text)')});
if ($have_login_failed)
{
	sql(q{SELECT sessmgr.login_failed('u7', '192.0.2.7')});
}
# what the events say: login_failed rows count their details' failures
my $want_failed = sql(q{SELECT sum(CASE WHEN jsonb_typeof(details -> 'failures') = 'number'
                                        THEN (details ->> 'failures')::int ELSE 1 END)
                          FROM sessmgr.session_events WHERE event = 'login_failed'});
cmp_ok($want_failed, '>=', 7, "failed logins in the events: $want_failed (4 + 2 + 1, plus login_failed()'s)");

is(sql('SELECT count(*) FROM sessmgr.cleanup_runs'), '0', 'no cleanup run yet');
sql('CALL sessmgr.cleanup()');
is(sql(q{SELECT m.through_event_id >= (SELECT max(id) FROM sessmgr.session_events
                                         WHERE occurred_at < now() - interval '30 minutes')
                AND (SELECT total FROM sessmgr.metrics_counters
                      WHERE event = 'issue' AND reason = '') >= 2
           FROM sessmgr.metrics_snapshot m}), 't',
	'the cleanup run rolled the hour-old events up into the counters');

# live sessions: u1 1 (3 - evicted - logout), u2 2, u3 1 = 4 of 3 users
is(sql('SELECT count(*) || \'/\' || count(DISTINCT user_id) FROM sessmgr.active_sessions'), '4/3',
	'the data set has 4 live sessions of 3 users');

# --- the exporter --------------------------------------------------------------------

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $host = $node->host;
my $pgport = $node->port;
my ($out, $err) = ('', '');
my $exporter_run;
my $exporter_timer = IPC::Run::timeout(600);
{
	local $ENV{DATA_SOURCE_NAME} =
	  "host=$host port=$pgport user=sessmgr_exporter dbname=postgres sslmode=disable";
	$exporter_run = IPC::Run::start(
		[
			$exporter, "--extend.query-path=$queries",
			'--disable-default-metrics', '--disable-settings-metrics',
			'--no-collector.database', '--no-collector.bgwriter',
			"--web.listen-address=127.0.0.1:$port", '--log.level=warn'
		],
		'>', \$out, '2>', \$err, $exporter_timer);
}

my $http = HTTP::Tiny->new(timeout => 10);

# One scrape: { 'name{labels}' => value } without the server label, and the TYPE lines.
sub scrape
{
	my ($res, %m, %type);
	for (1 .. 150)    # up to 30 s for the exporter to listen
	{
		$res = $http->get("http://127.0.0.1:$port/metrics");
		last if $res->{success} && $res->{content} =~ /^sessmgr_/m;
		$exporter_run->pump_nb;
		select undef, undef, undef, 0.2;
	}
	die "no sessmgr metrics from the exporter on 127.0.0.1:$port: "
	  . "$res->{status} $res->{reason}\n$res->{content}\nexporter stderr: $err"
	  unless $res->{success} && $res->{content} =~ /^sessmgr_/m;
	for my $line (split /\n/, $res->{content})
	{
		if ($line =~ /^# TYPE (\S+) (\S+)/)
		{
			$type{$1} = $2;
			next;
		}
		next if $line =~ /^#/ || $line !~ /\S/;
		my ($name, $labels, $value) = $line =~ /^(\w+)(?:\{(.*)\})? (\S+)$/ or next;
		my @l = grep { !/^server=/ } split /,(?=\w+=")/, $labels // '';
		$m{ @l ? "$name\{" . join(',', @l) . '}' : $name } = $value;
	}
	return (\%m, \%type);
}

my ($m, $type) = scrape();
ok(1, "the exporter serves /metrics on 127.0.0.1:$port");
is($m->{pg_up}, 1, 'pg_up 1: the exporter connects as sessmgr_exporter');
is($m->{pg_exporter_last_scrape_error}, 0, 'no query of the file failed');
like(join(' ', map { "$_=$m->{$_}" } grep { /^pg_exporter_user_queries_load_error/ } keys %$m),
	qr/=0$/, 'the queries file loaded');

is($m->{sessmgr_active_sessions}, 4, 'sessmgr_active_sessions 4');
is($m->{sessmgr_users_with_sessions}, 3, 'sessmgr_users_with_sessions 3');
is($m->{sessmgr_max_sessions_per_user}, 2, 'sessmgr_max_sessions_per_user 2');
is($m->{'sessmgr_sessions_per_user{quantile="0.5"}'}, 1, 'sessmgr_sessions_per_user{quantile="0.5"} 1 (of 1, 1, 2)');
is($m->{'sessmgr_sessions_per_user{quantile="1"}'}, 2, 'sessmgr_sessions_per_user{quantile="1"} 2');
is($m->{sessmgr_session_rows}, 10, 'sessmgr_session_rows 10 (every session issued)');
is($m->{sessmgr_sessions_awaiting_cleanup}, 0, 'sessmgr_sessions_awaiting_cleanup 0');

is($m->{sessmgr_logins_total}, 2 + 10, 'sessmgr_logins_total 12 (2 rolled up + 10 issued)');
is($m->{'sessmgr_events_total{event="issue",reason=""}'}, 12, 'sessmgr_events_total{event="issue",reason=""} 12');
is($m->{'sessmgr_revocations_total{reason="logout"}'}, 2, 'revocations: logout 2 (1 rolled up + 1)');
is($m->{'sessmgr_revocations_total{reason="logout_all"}'}, 2, 'revocations: logout_all 2');
is($m->{'sessmgr_revocations_total{reason="admin"}'}, 1, 'revocations: admin 1');
is($m->{'sessmgr_revocations_total{reason="cap"}'}, 2, 'revocations: cap 2 (the evictions)');
is($m->{sessmgr_evictions_total}, 2, 'sessmgr_evictions_total 2');
is($m->{sessmgr_failed_logins_total}, $want_failed, "sessmgr_failed_logins_total $want_failed");
is($m->{sessmgr_suspicious_logins_total}, 2, 'sessmgr_suspicious_logins_total 2');
is($m->{sessmgr_account_lockouts_total}, 2, 'sessmgr_account_lockouts_total 2');

my $now = time;
cmp_ok($m->{sessmgr_cleanup_last_finished_timestamp_seconds}, '>', $now - 600,
	'sessmgr_cleanup_last_finished_timestamp_seconds: the run just now');
cmp_ok($m->{sessmgr_snapshot_timestamp_seconds}, '>', $now - 600, 'sessmgr_snapshot_timestamp_seconds: taken by it');
is($m->{sessmgr_cleanup_unfinished_runs}, 0, 'sessmgr_cleanup_unfinished_runs 0');
is($m->{sessmgr_sessions_cleanup_overdue_seconds}, 0, 'sessmgr_sessions_cleanup_overdue_seconds 0');
is($m->{sessmgr_notification_queue_usage}, 0, 'sessmgr_notification_queue_usage 0');
cmp_ok($m->{'sessmgr_table_bytes{table="sessions"}'}, '>', 0, 'sessmgr_table_bytes{table="sessions"}');
ok(defined $m->{'sessmgr_table_dead_tuples{table="session_events"}'}, 'sessmgr_table_dead_tuples{table="session_events"}');

is($type->{sessmgr_logins_total}, 'counter', 'sessmgr_logins_total is a counter');
is($type->{sessmgr_revocations_total}, 'counter', 'sessmgr_revocations_total is a counter');
is($type->{sessmgr_active_sessions}, 'gauge', 'sessmgr_active_sessions is a gauge');

# a login and a revocation: counted at the next scrape; the session figures wait
sql(q{SELECT count(*) FROM sessmgr.issue('u8')});
sql(q{SELECT sessmgr.revoke_all('u3', NULL, 'password_change')});
($m) = scrape();
is($m->{sessmgr_logins_total}, 13, 'a new login counts at the next scrape');
is($m->{'sessmgr_revocations_total{reason="password_change"}'}, 1, '... and a revocation with a new reason');
is($m->{sessmgr_active_sessions}, 4, 'active sessions are as of the last cleanup run');
sql('CALL sessmgr.cleanup()');
($m) = scrape();
is($m->{sessmgr_active_sessions}, 4, '... the next run takes them in (u8 in, u3 out)');
is($m->{sessmgr_users_with_sessions}, 3, '... and the users');
is($m->{sessmgr_logins_total}, 13, 'counters are unchanged by the run');

# --- alerts.yml ------------------------------------------------------------------------

my $rules = PostgreSQL::Test::Utils::slurp_file($alerts);
my %named = map { $_ => 1 } ($rules =~ /\b(sessmgr_\w+)/g);
my @missing = grep { my $n = $_; !grep { /^\Q$n\E(\{|$)/ } keys %$m } sort keys %named;
cmp_ok(scalar(keys %named), '>=', 10, 'alerts.yml uses ' . scalar(keys %named) . ' sessmgr metrics');
is("@missing", '', 'every sessmgr metric alerts.yml names is exported');

SKIP:
{
	my ($promtool) = grep { -x "$_/promtool" } split /:/, $ENV{PATH};
	skip 'promtool is not installed (Debian package prometheus)', 1 unless $promtool;
	my ($pout, $perr) = ('', '');
	my $ok = IPC::Run::run([ "$promtool/promtool", 'check', 'rules', $alerts ],
		'>', \$pout, '2>', \$perr, IPC::Run::timeout(60));
	ok($ok, 'promtool check rules monitoring/alerts.yml') or diag("$pout$perr");
}

# --- stop the exporter ------------------------------------------------------------------

$exporter_run->signal('TERM');
$exporter_timer->start(30);
ok(eval { $exporter_run->finish; 1 } || do {
		diag("the exporter did not stop on SIGTERM: $@; killing it");
		$exporter_run->kill_kill;
		0;
	}, 'the exporter stops on SIGTERM') or diag($err);

$node->stop;
done_testing();

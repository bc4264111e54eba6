# test/t/021_crash.pl: sessmgr's state survives crashes.
#
# A storm of issue, refresh, revoke, revoke_all (and cleanup, when the
# extension has it) runs from pgbench while a DBD::Pg client logs every
# issue, refresh and revocation whose COMMIT returned.  The server is then
# crashed mid-storm, twice: an immediate shutdown, and a SIGKILL of one
# busy backend (the postmaster then resets every backend and runs crash
# recovery).  After each restart:
#   - every revocation the client saw commit holds, and every session it saw
#     issued or refreshed (and not revoked) still validates with its latest token;
#   - no session lacks its issue event, every ended session has its
#     revoke/evict event, no event names a session in the wrong state;
#   - no half-rotated refresh state (prev_token_hash, prev_token_gen and
#     rotated_at are set together; retired tokens only behind a previous one);
#   - the per-user cap holds, and the issuance counter matches the sessions;
#   - no relation of the extension is UNLOGGED or TEMPORARY.
use strict;
use warnings;

use DBI;
use IPC::Run;
use POSIX ();
use Time::HiRes qw(sleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $CAP = 5;
my $STORM_USERS = 4;
my $STORM_SECONDS = 2.5;    # storm time before each crash

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_connections = 40
restart_after_crash = on
sessmgr.max_sessions = $CAP
sessmgr.touch_interval = 0
sessmgr.retention = 0
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

my $has_cleanup = $node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_proc
	 WHERE pronamespace = 'sessmgr'::regnamespace AND proname = 'cleanup' AND prokind = 'p'});
note($has_cleanup
	? 'sessmgr.cleanup() exists: the storm calls it (sessmgr.retention = 0)'
	: 'sessmgr.cleanup() does not exist in this build: the storm runs without cleanup');

# --- the pgbench storm ---------------------------------------------------------

my $dir = PostgreSQL::Test::Utils::tempdir;
my %scripts = (
	'issue.sql@4' => qq{
\\set u random(1, $STORM_USERS)
SELECT session_id FROM sessmgr.issue('storm' || :u, 'pgbench');
},
	# rotations in separate transactions: previous and retired token hashes
	'refresh.sql@4' => qq{
\\set u random(1, $STORM_USERS)
SELECT token AS t1 FROM sessmgr.issue('storm' || :u, 'pgbench') \\gset
SELECT token AS t2 FROM sessmgr.refresh(:t1) \\gset
SELECT token AS t3 FROM sessmgr.refresh(:t2) \\gset
SELECT count(*) FROM sessmgr.validate(:t3);
},
	'revoke.sql@3' => qq{
\\set u random(1, $STORM_USERS)
SELECT sessmgr.revoke(s.id, s.user_id, 'storm')
  FROM (SELECT id, user_id FROM sessmgr.sessions
         WHERE user_id = 'storm' || :u AND revoked_at IS NULL
         ORDER BY random() LIMIT 1) s;
},
	'revoke_all.sql@1' => qq{
\\set u random(1, $STORM_USERS)
SELECT sessmgr.revoke_all('storm' || :u);
},
	# one transaction that issues, rotates twice and revokes: all or nothing
	'mixed.sql@2' => qq{
\\set u random(1, $STORM_USERS)
BEGIN;
SELECT token AS t1 FROM sessmgr.issue('storm' || :u, 'pgbench-tx') \\gset
SELECT token AS t2 FROM sessmgr.refresh(:t1) \\gset
SELECT status FROM sessmgr.refresh(:t2);
SELECT sessmgr.revoke_all('storm' || :u, reason => 'storm-tx');
SELECT token AS t4 FROM sessmgr.issue('storm' || :u, 'pgbench-tx') \\gset
COMMIT;
},);
my @script_args;
for my $name (sort keys %scripts)
{
	my ($file) = split /\@/, $name;
	PostgreSQL::Test::Utils::append_to_file("$dir/$file", $scripts{$name});
	push @script_args, '-f', "$dir/$name";
}
PostgreSQL::Test::Utils::append_to_file("$dir/cleanup.sql",
	"CALL sessmgr.cleanup();\n\\sleep 50 ms\n");

my @pgbench_common = ('pgbench', '-n', '-h', $node->host, '-p', $node->port, '-T', '60');

# Start the storm; returns the IPC::Run harnesses and their output buffers.
sub start_storm
{
	my @runs;
	my %out = (storm => [ '', '' ]);
	local $ENV{PGAPPNAME} = 'storm';
	push @runs, IPC::Run::start(
		[ @pgbench_common, '-M', 'extended', '-c', '8', '-j', '4', @script_args, 'postgres' ],
		'>', \$out{storm}[0], '2>', \$out{storm}[1], IPC::Run::timeout(120));
	if ($has_cleanup)
	{
		$out{cleanup} = [ '', '' ];
		local $ENV{PGAPPNAME} = 'storm-cleanup';
		push @runs, IPC::Run::start(
			[ @pgbench_common, '-M', 'simple', '-c', '1', '-f', "$dir/cleanup.sql", 'postgres' ],
			'>', \$out{cleanup}[0], '2>', \$out{cleanup}[1], IPC::Run::timeout(120));
	}
	return (\@runs, \%out);
}

# Wait for the storm to end (its connections die with the crash); only the
# crash may have stopped it, never an SQL error.
sub finish_storm
{
	my ($label, $runs, $out) = @_;
	for my $h (@$runs)
	{
		# IPC::Run::timeout(120) bounds each pgbench from its start
		eval { $h->finish; 1 } or do {
			diag("$label: a pgbench of the storm had not ended 120 s after it started"
				  . " (the crash should have ended it): $@; killing it");
			$h->kill_kill;
		};
	}
	for my $k (sort keys %$out)
	{
		my ($stdout, $stderr) = @{ $out->{$k} };
		my ($processed) = $stdout =~ /number of transactions actually processed: (\d+)/;
		my $aborted = () = $stderr =~ /aborted in command/g;
		note("$label: pgbench $k: " . ($processed // 'n/a')
			  . " transactions before the crash, $aborted clients aborted by it");
		my @errors = $stderr =~ /^(.*ERROR:.*)$/mg;
		is_deeply(\@errors, [], "$label: pgbench $k ran without an SQL error until the crash");
	}
}

# --- the logging client ------------------------------------------------------------

# In a child process: issue, refresh, revoke (and revoke_all) for fresh users,
# appending a line to $log after each COMMIT returns, until the connection
# dies.  "want" lines mark an operation whose outcome is not known yet.
sub start_client
{
	my ($prefix, $log) = @_;
	my $pid = fork;
	die "fork: $!" unless defined $pid;
	return $pid if $pid;

	# child: never run the test's END blocks (they would stop the node)
	my $ok = eval {
		open my $fh, '>>', $log or die $!;
		$fh->autoflush(1);
		my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
			'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
		for (my $i = 0;; $i++)
		{
			my $user = "$prefix$i";
			print $fh "want issue $user\n";
			my ($sid, $tok) = $dbh->selectrow_array(
				q{SELECT session_id, token FROM sessmgr.issue(?, 'client')}, undef, $user);
			print $fh "issued $sid $tok\n";

			print $fh "want refresh $sid\n";
			my ($status, $tok2) = $dbh->selectrow_array(
				q{SELECT status, token FROM sessmgr.refresh(?)}, undef, $tok);
			die "refresh: $status" unless $status eq 'ok';
			print $fh "refreshed $sid $tok2\n";

			if ($i % 4 == 0)
			{
				next;    # keep this one live
			}
			elsif ($i % 4 == 3)
			{
				my ($sid2, $tok3) = $dbh->selectrow_array(
					q{SELECT session_id, token FROM sessmgr.issue(?, 'client2')}, undef, $user);
				print $fh "issued $sid2 $tok3\n";
				print $fh "want revoke $sid\nwant revoke $sid2\n";
				my ($n) = $dbh->selectrow_array(q{SELECT sessmgr.revoke_all(?)}, undef, $user);
				die "revoke_all: $n" unless $n == 2;
				print $fh "revoked $sid\nrevoked $sid2\n";
			}
			else
			{
				print $fh "want revoke $sid\n";
				my ($done) = $dbh->selectrow_array(q{SELECT sessmgr.revoke(?, ?, 'client')},
					undef, $sid, $user);
				die 'revoke returned false' unless $done;
				print $fh "revoked $sid\n";
			}
		}
	};
	if (open my $fh, '>>', $log)
	{
		my $why = $@ // 'no error';
		$why =~ s/\s+/ /g;
		print $fh "died $why\n";
		close $fh;
	}
	POSIX::_exit(0);
}

# Read a client log: per session its tokens, whether a revocation committed,
# and whether an operation's outcome is unknown.
sub read_client_log
{
	my ($log) = @_;
	my %s;
	my %pending;
	my $died = '';
	open my $fh, '<', $log or die "$log: $!";
	while (<$fh>)
	{
		chomp;
		my @f = split / /;
		if ($f[0] eq 'died') { $died = $_; }
		elsif ($f[0] eq 'want') { $pending{ $f[2] } = $f[1] if $f[1] ne 'issue'; }
		elsif ($f[0] eq 'issued') { $s{ $f[1] } = { tokens => [ $f[2] ] }; }
		elsif ($f[0] eq 'refreshed') { push @{ $s{ $f[1] }{tokens} }, $f[2]; delete $pending{ $f[1] }; }
		elsif ($f[0] eq 'revoked') { $s{ $f[1] }{revoked} = 1; delete $pending{ $f[1] }; }
	}
	$s{$_}{unknown} = 1 for grep { exists $s{$_} } keys %pending;
	return (\%s, $died);
}

# --- the checks ---------------------------------------------------------------------

sub check_client
{
	my ($label, $log) = @_;
	my ($s, $died) = read_client_log($log);
	like($died, qr/server closed the connection|terminating connection|connection to server|no connection to the server/,
		"$label: the client stopped only because the server went away");
	my @revoked = grep { $s->{$_}{revoked} } keys %$s;
	my @live = grep { !$s->{$_}{revoked} && !$s->{$_}{unknown} } keys %$s;
	note(sprintf('%s: client saw %d revocations and %d live sessions commit before the crash',
			$label, scalar @revoked, scalar @live));
	cmp_ok(scalar @revoked, '>=', 5, "$label: the client committed revocations before the crash");

	my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
		'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
	my $valid = $dbh->prepare('SELECT count(*) FROM sessmgr.validate(?)');
	my $row = $dbh->prepare(q{
		SELECT revoked_at IS NOT NULL,
		       (SELECT count(*) FROM sessmgr.session_events e
		         WHERE e.session_id = s.id AND e.event = 'revoke')
		  FROM sessmgr.sessions s WHERE s.id = ?});

	my (@bad_revoked, @bad_live);
	for my $sid (@revoked)
	{
		for my $tok (@{ $s->{$sid}{tokens} })
		{
			$valid->execute($tok);
			push @bad_revoked, "$sid: a token validates" if ($valid->fetchrow_array)[0];
		}
		$row->execute($sid);
		my ($is_revoked, $events) = $row->fetchrow_array;
		# cleanup (retention 0) may already have removed the session
		next unless defined $is_revoked;
		push @bad_revoked, "$sid: not revoked" unless $is_revoked;
		push @bad_revoked, "$sid: $events revoke events" unless $events == 1;
	}
	for my $sid (@live)
	{
		$valid->execute($s->{$sid}{tokens}[-1]);
		push @bad_live, $sid unless ($valid->fetchrow_array)[0] == 1;
	}
	$dbh->disconnect;
	is_deeply(\@bad_revoked, [], "$label: every revocation the client saw commit holds");
	is_deeply(\@bad_live, [],
		"$label: every session the client saw issued and refreshed validates with its latest token");
}

sub check_invariants
{
	my ($label) = @_;
	my %q = (
		'no session without its issue event' => q{
			SELECT count(*) FROM sessmgr.sessions s
			 WHERE NOT EXISTS (SELECT 1 FROM sessmgr.session_events e
			                    WHERE e.session_id = s.id AND e.event = 'issue')},
		'no session with more than one issue event' => q{
			SELECT count(*) FROM (SELECT session_id FROM sessmgr.session_events
			                       WHERE event = 'issue' GROUP BY 1 HAVING count(*) > 1) d},
		'every revoked session has exactly one revoke/evict event' => q{
			SELECT count(*) FROM sessmgr.sessions s
			 WHERE s.revoked_at IS NOT NULL
			   AND (SELECT count(*) FROM sessmgr.session_events e
			         WHERE e.session_id = s.id AND e.event IN ('revoke', 'evict')) <> 1},
		'no revoke/evict event for a session that is not revoked' => q{
			SELECT count(*) FROM sessmgr.session_events e
			  JOIN sessmgr.sessions s ON s.id = e.session_id
			 WHERE e.event IN ('revoke', 'evict') AND s.revoked_at IS NULL},
		'evict events match cap revocations' => q{
			SELECT count(*) FROM sessmgr.session_events e
			  JOIN sessmgr.sessions s ON s.id = e.session_id
			 WHERE (e.event = 'evict') <> (s.revoke_reason = 'cap')
			   AND e.event IN ('revoke', 'evict')},
		'no half-rotated refresh state' => q{
			SELECT count(*) FROM sessmgr.sessions
			 WHERE NOT ((prev_token_hash IS NULL) = (prev_token_gen IS NULL)
			        AND (prev_token_gen IS NULL) = (rotated_at IS NULL))},
		'retired tokens only behind a previous token, never the current one' => q{
			SELECT count(*) FROM sessmgr.retired_tokens r
			  JOIN sessmgr.sessions s ON s.id = r.session_id
			 WHERE s.prev_token_hash IS NULL
			    OR r.token_hash IN (s.token_hash, s.prev_token_hash)},
		'the cap holds for every user' => qq{
			SELECT count(*) FROM (SELECT user_id FROM sessmgr.sessions
			                       WHERE revoked_at IS NULL
			                       GROUP BY 1 HAVING count(*) > $CAP) o},
		'no active session without its owner row' => q{
			SELECT count(*) FROM sessmgr.sessions s
			 WHERE s.revoked_at IS NULL
			   AND NOT EXISTS (SELECT 1 FROM sessmgr.session_owners o WHERE o.user_id = s.user_id)},
	);
	# without cleanup nothing is ever deleted: the counter must match exactly
	$q{'issuance counters match the sessions'} = q{
			SELECT count(*) FROM sessmgr.session_owners o
			  FULL JOIN (SELECT user_id, count(*) AS n FROM sessmgr.sessions GROUP BY 1) s
			    USING (user_id)
			 WHERE o.sessions_issued IS DISTINCT FROM s.n}
	  unless $has_cleanup;
	for my $name (sort keys %q)
	{
		is($node->safe_psql('postgres', $q{$name}), '0', "$label: $name");
	}
}

# --- crash 1: immediate shutdown mid-storm --------------------------------------

# issue events stay (event retention) when cleanup removes the sessions
my $issued_sql = q{SELECT count(*) FROM sessmgr.session_events WHERE event = 'issue'};

# Wait for a forked child to exit, at most $secs seconds; then kill it and die
# naming $what.
sub wait_for_child
{
	my ($pid, $secs, $what) = @_;
	my $deadline = time + $secs;
	while (waitpid($pid, POSIX::WNOHANG()) == 0)
	{
		if (time > $deadline)
		{
			kill 'KILL', $pid;
			waitpid($pid, 0);
			die "gave up after $secs s waiting for $what";
		}
		sleep 0.1;
	}
	return;
}

sub storm_then
{
	my ($label, $crash) = @_;
	my $log = "$dir/client-$label.log";
	my $before = $node->safe_psql('postgres', $issued_sql);
	my ($runs, $out) = start_storm();
	my $client = start_client("client-$label-", $log);
	sleep $STORM_SECONDS;
	$crash->();
	wait_for_child($client, 60, "$label: the logging client to stop after the crash");
	finish_storm($label, $runs, $out);
	return ($log, $before);
}

my $logpos = -s $node->logfile;
my ($log1, $count1) = storm_then('immediate', sub { $node->stop('immediate') });
$node->start;
ok($node->log_contains('automatic recovery in progress', $logpos),
	'immediate: the restart ran crash recovery');
cmp_ok($node->safe_psql('postgres', $issued_sql), '>', $count1 + 50,
	'immediate: the storm issued sessions before the crash');
check_client('immediate', $log1);
check_invariants('immediate');

# --- crash 2: SIGKILL of one busy backend --------------------------------------------

$logpos = -s $node->logfile;
my ($log2, $count2) = storm_then(
	'sigkill',
	sub {
		my $pid = '';
		for (1 .. 50)
		{
			$pid = $node->safe_psql('postgres', q{
				SELECT pid FROM pg_stat_activity
				 WHERE application_name = 'storm' AND state <> 'idle'
				 ORDER BY state = 'active' DESC, random() LIMIT 1});
			last if $pid =~ /^\d+$/;
			sleep 0.02;
		}
		die 'no busy pgbench backend to kill' unless $pid =~ /^\d+$/;
		note("SIGKILL to backend $pid");
		kill 'KILL', $pid or die "kill $pid: $!";
	});
$node->poll_query_until('postgres', 'SELECT true')
  or die 'the server did not come back after the backend crash';
ok($node->log_contains('terminated by signal 9', $logpos),
	'sigkill: the postmaster saw the backend die');
ok($node->log_contains('all server processes terminated; reinitializing', $logpos),
	'sigkill: the postmaster reset every backend and ran crash recovery');
cmp_ok($node->safe_psql('postgres', $issued_sql), '>', $count2 + 50,
	'sigkill: the storm issued sessions before the crash');
check_client('sigkill', $log2);
check_invariants('sigkill');

# --- nothing the extension relies on may be unlogged -----------------------------

my $relations = $node->safe_psql('postgres', q{
	WITH ext AS (
		SELECT c.oid FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
		 WHERE d.classid = 'pg_class'::regclass
		   AND d.refclassid = 'pg_extension'::regclass
		   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sessmgr')),
	rels AS (
		SELECT oid FROM ext
		UNION SELECT i.indexrelid FROM pg_index i JOIN ext ON ext.oid = i.indrelid
		UNION SELECT c.reltoastrelid FROM pg_class c JOIN ext USING (oid) WHERE c.reltoastrelid <> 0
		UNION SELECT c.oid FROM pg_class c
		       WHERE c.relnamespace IN ('sessmgr'::regnamespace, 'sessmgr_api'::regnamespace))
	SELECT count(*) FILTER (WHERE c.relkind IN ('r', 'p')),
	       count(*) FILTER (WHERE c.relpersistence <> 'p'),
	       coalesce(string_agg(c.relname, ',') FILTER (WHERE c.relpersistence <> 'p'), '')
	  FROM rels JOIN pg_class c USING (oid)});
my ($tables, $unlogged, $names) = split /\|/, $relations, -1;
cmp_ok($tables, '>=', 5, "the extension's tables were found ($tables)");
is($unlogged, '0', "every relation of the extension is WAL-logged (relpersistence 'p') $names");

$node->stop;
done_testing();

# test/t/022_pgbouncer.pl: sessmgr behind pgbouncer in transaction pooling mode.
#
# 16 client processes share 2 server connections through pgbouncer
# (pool_mode = transaction, default_pool_size = 2).  Each client runs a random
# mix of transactions and checks every one of them:
#   auth      BEGIN; authenticate(own token); current_user_id() and
#             current_session_id() are the client's own; COMMIT
#   validate  validate(own token) returns the client's own user and session
#   rollback  BEGIN; authenticate(own token); ROLLBACK
#   implicit  authenticate(own token) as a single autocommit statement
#   postgrest BEGIN; set_config('role', 'authenticated') and
#             set_config('request.jwt.claims', own claims), pre_request(),
#             current_user_id(), current_user; COMMIT
#   anon      BEGIN; current_user_id(), current_session_id(), current_user,
#             request.jwt.claims: no identity, no role, no claims; COMMIT
# Every transaction records its server backend and a global order (a
# sequence), so the test can prove that anonymous transactions really ran
# right after another client's authenticated one on the same server
# connection, and saw nothing of it.
use strict;
use warnings;

use DBI;
use IPC::Run;
use MIME::Base64 qw(decode_base64url);
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $CLIENTS = 16;
my $TX_PER_CLIENT = 300;
my $POOL_SIZE = 2;

my ($pgbouncer) = grep { -x $_ } ('/usr/sbin/pgbouncer', '/usr/bin/pgbouncer');
plan skip_all => 'pgbouncer is not installed (Debian package pgbouncer)' unless $pgbouncer;

my $node = PostgreSQL::Test::Cluster->new('pooled');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION sessmgr;
	CREATE ROLE authenticated NOLOGIN;
	GRANT USAGE ON SCHEMA sessmgr, sessmgr_api TO authenticated;
	GRANT EXECUTE ON FUNCTION sessmgr_api.pre_request(), sessmgr.current_user_id(),
	                          sessmgr.current_session_id() TO authenticated;
	CREATE SEQUENCE tx_order;
	GRANT USAGE ON SEQUENCE tx_order TO authenticated;
});

# one user, session and access token per client
my %cred;
for my $k (1 .. $CLIENTS)
{
	my ($sid, $token, $jwt) = split /\|/, $node->safe_psql('postgres',
		"SELECT session_id, token, access_token FROM sessmgr.issue('user$k', 'client $k')");
	$cred{$k} = { user => "user$k", sid => $sid, token => $token,
		claims => decode_base64url((split /\./, $jwt)[1]),
		headers => qq({"authorization": "Bearer $jwt"}) };
}

# --- pgbouncer --------------------------------------------------------------------

my $dir = PostgreSQL::Test::Utils::tempdir;
my $bport = PostgreSQL::Test::Cluster::get_free_port();
my $host = $node->host;
my $pport = $node->port;
PostgreSQL::Test::Utils::append_to_file("$dir/userlist.txt", qq{"postgres" ""\n});
PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini", qq{
[databases]
postgres = host=$host port=$pport dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 100
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
});
my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ],
	'>', \$bout, '2>', \$berr, IPC::Run::timeout(300));

sub connect_bouncer
{
	return DBI->connect("dbi:Pg:dbname=postgres;host=127.0.0.1;port=$bport",
		'postgres', '',
		{ AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_server_prepare => 0 });
}

my $probe;
for (1 .. 100)
{
	$probe = eval { connect_bouncer() } and last;
	select undef, undef, undef, 0.1;
}
ok($probe, "pgbouncer accepts connections on 127.0.0.1:$bport")
  or BAIL_OUT("pgbouncer did not start: $berr");
is($probe->selectrow_array('SELECT sessmgr.current_user_id() IS NULL'), 1,
	'a transaction through pgbouncer starts without identity');
$probe->disconnect;

# --- the clients -----------------------------------------------------------------------

# Run one client in a child process: $TX_PER_CLIENT checked transactions,
# one record per transaction in $dir/client$k.log:
#   <order> <backend pid> <kind> <ok|FAIL:what>
sub run_client
{
	my ($k) = @_;
	my $c = $cred{$k};
	srand($k * 7919);
	open my $log, '>', "$dir/client$k.log" or die $!;
	my $dbh = connect_bouncer();
	my $order = q{SELECT nextval('tx_order'), pg_backend_pid()};
	my @kinds = qw(auth auth auth validate rollback implicit postgrest postgrest anon anon anon anon);

	for my $n (1 .. $TX_PER_CLIENT)
	{
		my $kind = $kinds[ int rand @kinds ];
		my ($ord, $pid, @got, $want);
		if ($kind eq 'auth')
		{
			$dbh->begin_work;
			($ord, $pid) = $dbh->selectrow_array($order);
			@got = $dbh->selectrow_array(q{
				SELECT sessmgr.authenticate(?), sessmgr.current_user_id(),
				       sessmgr.current_session_id()}, undef, $c->{token});
			@got = (@got, $dbh->selectrow_array(q{
				SELECT sessmgr.current_user_id(), sessmgr.current_session_id()}));
			$dbh->commit;
			$want = "$c->{user},$c->{user},$c->{sid},$c->{user},$c->{sid}";
		}
		elsif ($kind eq 'validate')
		{
			($ord, $pid) = $dbh->selectrow_array($order);
			@got = $dbh->selectrow_array(q{
				SELECT user_id, session_id FROM sessmgr.validate(?)}, undef, $c->{token});
			$want = "$c->{user},$c->{sid}";
		}
		elsif ($kind eq 'rollback')
		{
			$dbh->begin_work;
			($ord, $pid) = $dbh->selectrow_array($order);
			@got = $dbh->selectrow_array(q{SELECT sessmgr.authenticate(?)}, undef, $c->{token});
			$dbh->rollback;
			$want = $c->{user};
		}
		elsif ($kind eq 'implicit')
		{
			# one statement, its own transaction: identity and order together
			@got = $dbh->selectrow_array(q{
				SELECT nextval('tx_order'), pg_backend_pid(), sessmgr.authenticate(?),
				       sessmgr.current_user_id()}, undef, $c->{token});
			($ord, $pid) = splice @got, 0, 2;
			$want = "$c->{user},$c->{user}";
		}
		elsif ($kind eq 'postgrest')
		{
			$dbh->begin_work;
			($ord, $pid) = $dbh->selectrow_array($order);
			$dbh->selectrow_array(q{
				SELECT set_config('role', 'authenticated', true),
				       set_config('request.jwt.claims', ?, true),
				       set_config('request.headers', ?, true)}, undef, $c->{claims}, $c->{headers});
			$dbh->selectrow_array('SELECT sessmgr_api.pre_request()');
			@got = $dbh->selectrow_array(q{
				SELECT sessmgr.current_user_id(), sessmgr.current_session_id(), current_user});
			$dbh->commit;
			$want = "$c->{user},$c->{sid},authenticated";
		}
		else    # anon
		{
			$dbh->begin_work;
			($ord, $pid) = $dbh->selectrow_array($order);
			@got = $dbh->selectrow_array(q{
				SELECT coalesce(sessmgr.current_user_id(), '-'),
				       coalesce(sessmgr.current_session_id()::text, '-'),
				       current_user,
				       coalesce(nullif(current_setting('request.jwt.claims', true), ''), '-')});
			$dbh->commit;
			$want = '-,-,postgres,-';
		}
		my $got = join ',', map { $_ // 'NULL' } @got;
		print $log "$ord $pid $kind " . ($got eq $want ? 'ok' : "FAIL:$got") . "\n";
	}
	$dbh->disconnect;
	close $log;
}

my @children;
for my $k (1 .. $CLIENTS)
{
	my $pid = fork;
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		my $ok = eval { run_client($k); 1 };
		if (!$ok)
		{
			open my $fh, '>>', "$dir/client$k.log";
			print $fh "0 0 died FAIL:$@";
		}
		POSIX::_exit($ok ? 0 : 1);
	}
	push @children, $pid;
}
# Wait for the clients, at most PG_TEST_TIMEOUT_DEFAULT seconds in all; a
# client still running then is killed and named.
my $exits = 0;
my %running = map { $_ => 1 } @children;
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (%running)
{
	for my $pid (keys %running)
	{
		my $done = waitpid($pid, POSIX::WNOHANG());
		next if $done == 0;
		delete $running{$pid};
		$exits++ if $? != 0;
	}
	last unless %running;
	if (time > $deadline)
	{
		my %client = map { $children[$_] => $_ + 1 } 0 .. $#children;
		my @late = sort { $a <=> $b } map { $client{$_} } keys %running;
		diag("gave up after $PostgreSQL::Test::Utils::timeout_default s waiting for clients @late"
			  . " to finish their $TX_PER_CLIENT transactions through pgbouncer; killing them");
		kill 'KILL', keys %running;
		waitpid($_, 0) for keys %running;
		$exits += keys %running;
		last;
	}
	select undef, undef, undef, 0.1;
}
is($exits, 0, "all $CLIENTS clients ran to the end");

# --- what the clients saw -------------------------------------------------------------

my (@tx, %fail, %count);
for my $k (1 .. $CLIENTS)
{
	open my $fh, '<', "$dir/client$k.log" or die $!;
	while (<$fh>)
	{
		chomp;
		my ($ord, $pid, $kind, $res) = split / /, $_, 4;
		push @tx, { ord => $ord, pid => $pid, kind => $kind, client => $k };
		$count{$kind}++;
		push @{ $fail{$kind} }, "client $k tx $ord on $pid: $res" if $res ne 'ok';
	}
}
is(scalar @tx, $CLIENTS * $TX_PER_CLIENT, 'every transaction was recorded');
note(join ', ', map { "$_ $count{$_}" } sort keys %count);

is_deeply($fail{auth} // [], [], 'authenticate + current_user_id() give each client its own user');
is_deeply($fail{validate} // [], [], 'validate gives each client its own session');
is_deeply($fail{rollback} // [], [], 'authenticate in a rolled-back transaction works');
is_deeply($fail{implicit} // [], [], 'authenticate in an autocommit statement works');
is_deeply($fail{postgrest} // [], [],
	'the PostgREST flow (role, claims, pre_request) gives each client its own identity');
is_deeply($fail{anon} // [], [],
	'no identity, role or claims ever leaks into another transaction');

# Did the pooler really share server connections between clients?
my %by_pid;
push @{ $by_pid{ $_->{pid} } }, $_ for sort { $a->{ord} <=> $b->{ord} } @tx;
my @pids = sort keys %by_pid;
cmp_ok(scalar @pids, '<=', $POOL_SIZE, "at most $POOL_SIZE server connections served all clients");
my ($handovers, $leak_chances) = (0, 0);
for my $pid (@pids)
{
	my $prev;
	for my $t (@{ $by_pid{$pid} })
	{
		if ($prev && $prev->{client} != $t->{client})
		{
			$handovers++;
			$leak_chances++
			  if $t->{kind} eq 'anon' && $prev->{kind} =~ /^(auth|implicit|postgrest)$/;
		}
		$prev = $t;
	}
}
note("$handovers handovers of a server connection between clients; $leak_chances times an"
	  . ' anonymous transaction ran right after another client\'s authenticated one on the same connection');
cmp_ok($leak_chances, '>=', 100,
	'many anonymous transactions followed another client\'s identity on the same server connection');

# --- stop pgbouncer ---------------------------------------------------------------------

$bouncer->signal('INT');
ok(eval { $bouncer->finish; 1 } || do {
		diag("pgbouncer did not stop on SIGINT before its 300 s limit: $@; killing it");
		$bouncer->kill_kill;
		0;
	}, 'pgbouncer stopped');
$node->stop;
done_testing();

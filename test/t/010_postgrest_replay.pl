
# test/t/010_postgrest_replay.pl: sessmgr behind PostgREST, proved by replaying
# exactly the SQL PostgREST sends per request (test/t/PostgrestReplay.pm, following
# ../shared/postgrest-contract.md) on one reused connection as a NOINHERIT
# authenticator, with the JWT checked first by Crypt::JWT (never by sessmgr).
# The setup is docs/postgrest.md's, as a DBA would type it.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use Crypt::JWT qw(encode_jwt decode_jwt);
use DBI;
use JSON::PP;
use MIME::Base64 qw(decode_base64url encode_base64url);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use PostgrestReplay;
use Test::More;

my $JSON = JSON::PP->new->canonical;

my $node = PostgreSQL::Test::Cluster->new('postgrest');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');

# --- the DBA setup of docs/postgrest.md, verbatim ------------------------------
my $dba_setup = <<'SQL';
CREATE EXTENSION sessmgr;

-- PostgREST's roles: it logs in as authenticator and switches to anon or authenticated
CREATE ROLE authenticator LOGIN NOINHERIT;   -- and PASSWORD '...' in production
CREATE ROLE anon NOLOGIN;
CREATE ROLE authenticated NOLOGIN;           -- = sessmgr.jwt_role, the tokens' role claim
GRANT anon, authenticated TO authenticator;

-- the sessmgr endpoints
GRANT USAGE ON SCHEMA sessmgr_api TO anon, authenticated;
GRANT EXECUTE ON FUNCTION
    sessmgr_api.pre_request(),
    sessmgr_api.refresh(text, boolean),
    sessmgr_api.logout(text)
  TO anon, authenticated;
GRANT EXECUTE ON FUNCTION
    sessmgr_api.my_sessions(),
    sessmgr_api.revoke_session(uuid),
    sessmgr_api.revoke_other_sessions(),
    sessmgr_api.my_security_events(),
    sessmgr_api.confirm_session(uuid)
  TO authenticated;

-- the number of reverse proxies in front of PostgREST that append to
-- X-Forwarded-For (nginx: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for);
-- 0 (the default) records no client address
ALTER DATABASE app SET sessmgr.trusted_proxies = 1;
SQL

my $login_recipe = <<'SQL';
CREATE SCHEMA extensions;
CREATE EXTENSION pgcrypto WITH SCHEMA extensions;

-- the owner of the application's login code: may issue sessions and record failed
-- attempts, nothing more
CREATE ROLE api_owner NOLOGIN;
GRANT USAGE ON SCHEMA sessmgr, extensions TO api_owner;
GRANT EXECUTE ON FUNCTION
    sessmgr.issue_from_request(text, boolean, text, text, boolean, jsonb),
    sessmgr.login_delay(text, inet),
    sessmgr.login_failed(text, inet, text, text),
    sessmgr.request_ip(),
    sessmgr.refuse_rollback_request()
  TO api_owner;

CREATE SCHEMA api AUTHORIZATION api_owner;
SET ROLE api_owner;

-- no API role gets any privilege on it: PostgREST answers 401/403 for /users
CREATE TABLE api.users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash text NOT NULL
);

CREATE FUNCTION api.login(email text, password text, remember boolean DEFAULT false,
                          cookie boolean DEFAULT false)
RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid     bigint;
    hash    text;
    account text;
    ip      inet := sessmgr.request_ip();
    wait    interval;
    locked  boolean := false;
BEGIN
    -- a login rolled back by Prefer: tx=rollback would be a free guess: 400
    PERFORM sessmgr.refuse_rollback_request();
    SELECT u.id, u.password_hash INTO uid, hash
      FROM api.users u
     WHERE u.email = lower(login.email);
    -- failures count per account; an unknown email counts under a name no user id
    -- can have, so it is delayed and locked exactly like an account that exists
    account := coalesce(uid::text, 'unknown:' || encode(sha256(convert_to(
                   lower(coalesce(login.email, '')), 'UTF8')), 'hex'));
    wait := sessmgr.login_delay(account, ip);
    IF wait = interval '0' THEN
        -- an unknown email costs the same bcrypt as a wrong password: a dummy hash
        -- of the sign-up's cost (the 08 of gen_salt('bf', 8))
        IF extensions.crypt(coalesce(login.password, ''),
                            coalesce(hash, '$2a$08$jdJsG.hoC7ZOrj/6gunN3eLe6ZbFE2bv6TKb1FrCrTQ7WUQ6h4AlG'))
           IS DISTINCT FROM hash THEN
            PERFORM sessmgr.login_failed(account, ip,
                left(nullif(current_setting('request.headers', true), '')::json ->> 'user-agent', 512));
            PERFORM set_config('response.status', '401', true);
            PERFORM set_config('response.headers', '[{"WWW-Authenticate": "Bearer"}]', true);
            RETURN '{"code":"invalid_credentials","message":"invalid email or password","details":null,"hint":null}'::json;
        END IF;
        BEGIN
            RETURN sessmgr.issue_from_request(uid::text, login.remember, cookie => login.cookie);
        EXCEPTION
            WHEN SQLSTATE 'SM429' OR SQLSTATE 'SM423' THEN   -- delayed or locked meanwhile
                locked := SQLSTATE = 'SM423';
                wait := greatest(sessmgr.login_delay(account, ip), interval '1 second');
            WHEN SQLSTATE '53400' THEN   -- sessmgr.cap_policy = reject: the user is at the cap
                PERFORM set_config('response.status', '429', true);
                RETURN '{"code":"53400","message":"too many active sessions","details":null,"hint":"Sign out on another device."}'::json;
        END;
    END IF;
    -- delayed or locked: the password is not even checked; locked until
    -- sessmgr.unlock_account, login_delay is its largest interval ('infinity')
    IF locked OR wait >= interval '100 years' THEN
        PERFORM set_config('response.status', '423', true);
        RETURN '{"code":"account_locked","message":"account is locked","details":null,"hint":"Contact support to unlock it."}'::json;
    END IF;
    PERFORM set_config('response.status', '429', true);
    PERFORM set_config('response.headers', json_build_array(json_build_object(
        'Retry-After', ceil(extract(epoch FROM wait))::bigint::text))::text, true);
    RETURN '{"code":"too_many_attempts","message":"too many failed login attempts","details":null,"hint":"Wait for the time in Retry-After."}'::json;
END
$$;

RESET ROLE;
REVOKE ALL ON FUNCTION api.login(text, text, boolean, boolean) FROM PUBLIC;
GRANT USAGE ON SCHEMA api TO anon, authenticated;
GRANT EXECUTE ON FUNCTION api.login(text, text, boolean, boolean) TO anon;
SQL

# docs/postgrest.md shows exactly this setup
{
	open my $fh, '<', "$FindBin::RealBin/../../docs/postgrest.md" or die "docs/postgrest.md: $!";
	my $readme = do { local $/; <$fh> };
	ok(index($readme, $dba_setup) >= 0, 'the DBA setup is docs/postgrest.md\'s, verbatim');
	ok(index($readme, $login_recipe) >= 0, 'the login recipe is docs/postgrest.md\'s, verbatim');
}

$node->safe_psql('app', $dba_setup);
$node->safe_psql('app', $login_recipe);

# test-only settings: every request is due to record activity (so a GET that tried
# to write would fail in its READ ONLY transaction)
$node->safe_psql('app', q{ALTER DATABASE app SET sessmgr.touch_interval = 0});

my $admin = DBI->connect('dbi:Pg:host=' . $node->host . ';port=' . $node->port . ';dbname=app',
	'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 });

$admin->do(q{INSERT INTO api.users (email, password_hash)
             VALUES ($1, extensions.crypt($2, extensions.gen_salt('bf', 8)))},
	undef, $_->[0], $_->[1])
  for ['alice@example.com', 'correct horse'], ['bob@example.com', 'battery staple'],
  ['carol@example.com', 'tr0ub4dor'], ['dave@example.com', 'hunter2 hunter2'];
my %uid = map { @$_ } @{ $admin->selectall_arrayref(
	q{SELECT split_part(email, '@', 1), id::text FROM api.users}) };

my $api = PostgrestReplay->new(
	admin_dbh   => $admin,
	dsn         => 'dbi:Pg:host=' . $node->host . ';port=' . $node->port . ';dbname=app',
	user        => 'authenticator',
	schemas     => [ 'api', 'sessmgr_api' ],
	anon_role   => 'anon',
	pre_request => 'sessmgr_api.pre_request');

# --- helpers ---------------------------------------------------------------------

# a device: its own headers, cookie jar and tokens
sub device
{
	my ($ua, $xff) = @_;
	return { headers => { 'User-Agent' => $ua, defined $xff ? ('X-Forwarded-For' => $xff) : () },
			 jar => {} };
}

sub login
{
	my ($dev, $email, $password, %opt) = @_;
	my $res = $api->request('POST', '/rpc/login',
		{ email => $email, password => $password, %{ $opt{body} // {} } },
		client => $dev, anonymous => 1, prefer => $opt{prefer});
	if ($res->{status} == 200)
	{
		$dev->{token} = bh($res)->{access_token};
		$dev->{refresh} = bh($res)->{refresh_token};
		$dev->{sid} = bh($res)->{session_id};
	}
	return $res;
}

# POST to a sessmgr endpoint (schema sessmgr_api: Content-Profile)
sub post
{
	my ($dev, $fn, $body, %opt) = @_;
	return $api->request('POST', "/rpc/$fn", $body // {}, client => $dev,
		headers => { 'Content-Profile' => 'sessmgr_api', %{ $opt{headers} // {} } }, %opt);
}

# GET from a sessmgr endpoint (Accept-Profile)
sub get
{
	my ($dev, $fn, %opt) = @_;
	return $api->request('GET', "/rpc/$fn", {}, client => $dev,
		headers => { 'Accept-Profile' => 'sessmgr_api' }, %opt);
}

# refresh as a client does: anonymous, the refresh token in the body
sub refresh
{
	my ($dev, $token, %opt) = @_;
	my $res = post($dev, 'refresh', { refresh_token => $token }, anonymous => 1, %opt);
	return $res;
}

# the body of a response as a hash ({} when it is not an object)
sub bh
{
	return ref $_[0]{body} eq 'HASH' ? $_[0]{body} : {};
}

# the body of a response as an array ([] when it is not an array)
sub ba
{
	return ref $_[0]{body} eq 'ARRAY' ? $_[0]{body} : [];
}

sub admin_value
{
	my ($sql, @bind) = @_;
	my ($v) = $admin->selectrow_array($sql, undef, @bind);
	return $v;
}

sub session_state
{
	my ($sid) = @_;
	return admin_value(q{SELECT coalesce(revoke_reason, 'active') FROM sessmgr.sessions WHERE id = $1},
		$sid) // 'none';
}

# whether a session token is the session's current token (validate checks the current only)
sub token_is_current
{
	return admin_value(q{SELECT count(*) FROM sessmgr.validate($1)}, $_[0]) == 1;
}

sub jwt_claims
{
	my (undef, $payload) = split /\./, $_[0] // '';
	return eval { $JSON->decode(decode_base64url($payload)) } // {};
}

# a 401 given by the pre-request function, after the JWT passed the HTTP-level checks
sub is_ended_401
{
	my ($res, $name) = @_;
	subtest $name => sub {
		my $body = ref $res->{body} eq 'HASH' ? $res->{body} : {};
		is($res->{status}, 401, 'status 401');
		is($body->{code}, 'SM401', 'code SM401');
		is($body->{message}, 'session has ended', 'message');
		like($res->{headers}{'www-authenticate'}[0], qr/^Bearer error="invalid_token"/,
			'WWW-Authenticate');
		like($res->{sql}[-1] // '', qr/"pre_request"\(\)/, 'refused by the pre-request call');
	};
}

sub is_refresh_refused
{
	my ($res, $status, $name) = @_;
	subtest $name => sub {
		is($res->{status}, 401, 'status 401');
		is_deeply($res->{body}, { status => $status }, "body {status: $status}");
		like($res->{sql}[-1] // '', qr/^COMMIT/, 'committed, not rolled back');
	};
}

my $SET_COOKIE_RE = qr/^__Host-sessmgr_refresh=(sessmgr_[A-Za-z0-9_-]{64}); Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=(\d+)$/;

# --- login: credentials -------------------------------------------------------------
{
	my $dev = device('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0');
	my $wrong = login($dev, 'alice@example.com', 'wrong');
	my $unknown = login($dev, 'nobody@example.com', 'wrong');
	is($wrong->{status}, 401, 'login with a wrong password: 401');
	is_deeply($wrong->{body},
		{ code => 'invalid_credentials', message => 'invalid email or password',
		  details => undef, hint => undef },
		'login with a wrong password: body');
	is_deeply([ $unknown->{status}, $unknown->{body} ], [ $wrong->{status}, $wrong->{body} ],
		'login with an unknown email: the same status and body (no user enumeration)');
	is(admin_value('SELECT count(*) FROM sessmgr.sessions'), 0, 'failed logins issued nothing');
}

# --- login on three devices ------------------------------------------------------------
# the client forged the first hop; the one trusted proxy appended the real address
my $laptop = device('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
	'198.51.100.99, 203.0.113.10');
my $phone = device('Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Safari/604.1',
	'2001:db8::7');
my $tablet = device('curl/7.88.1', '999.1.1.1');   # a forged, impossible address

for ([ laptop => $laptop ], [ phone => $phone ], [ tablet => $tablet ])
{
	my ($name, $dev) = @$_;
	my $res = login($dev, 'Alice@Example.com', 'correct horse');
	is($res->{status}, 200, "login on the $name: 200");
	like($res->{sql}[0], qr/^BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE$/,
		"login on the $name: READ WRITE transaction");
	is(bh($res)->{status}, 'ok', "login on the $name: status ok");
	is(bh($res)->{token_type}, 'Bearer', "login on the $name: token_type");
	is(bh($res)->{expires_in}, 900, "login on the $name: expires_in is the access token TTL");
	like(bh($res)->{refresh_token}, qr/^sessmgr_[A-Za-z0-9_-]{64}$/,
		"login on the $name: a refresh token in the body");
	is_deeply([ map { /^([^=]+)=/ } @{ $res->{headers}{'set-cookie'} // [] } ], ['__Host-sessmgr_device'],
		"login on the $name: no session cookie without cookie => true (only the device cookie)");
	is(jwt_claims($dev->{token})->{sid}, $dev->{sid}, "login on the $name: the access token's sid");
}

is_deeply(
	$admin->selectall_arrayref(
		q{SELECT user_agent, host(ip) FROM sessmgr.sessions WHERE user_id = $1 ORDER BY created_at},
		undef, $uid{alice}),
	[ [ $laptop->{headers}{'User-Agent'}, '203.0.113.10' ],
	  [ $phone->{headers}{'User-Agent'}, '2001:db8::7' ],
	  [ 'curl/7.88.1', undef ] ],
	'sessions record the user agent and the address the trusted proxy appended; a forged address is NULL');

{
	my $dev = device('Mozilla/5.0 Test', q{1.2.3.4, <script>alert(1)</script>});
	is(login($dev, 'carol@example.com', 'tr0ub4dor')->{status}, 200,
		'login with a garbage X-Forwarded-For: 200 (not an error)');
	is(session_state($dev->{sid}), 'active', 'and the session exists');
	is(admin_value('SELECT ip FROM sessmgr.sessions WHERE id = $1', $dev->{sid}), undef,
		'with ip NULL');
}

# --- oversized user agents: truncated to the 2048-byte limit, never an error ----------
{
	my $long = device('Mozilla/5.0 ' . ('x' x 3000));
	is(login($long, 'carol@example.com', 'tr0ub4dor')->{status}, 200, 'login with a 3000-character user agent: 200');
	is(admin_value('SELECT octet_length(user_agent) FROM sessmgr.sessions WHERE id = $1', $long->{sid}), 2048,
		'the user agent is cut to 2048 bytes');
	my $wide = device('Mozilla/5.0 ' . ("\x{e9}" x 2000));   # 2-byte characters
	my $res = login($wide, 'carol@example.com', 'tr0ub4dor');
	is($res->{status}, 200, 'login with a 4000-byte user agent of 2000 characters: 200')
	  or diag explain bh($res);
	is(admin_value('SELECT octet_length(user_agent) FROM sessmgr.sessions WHERE id = $1', $wide->{sid}), 2048,
		'cut to 2048 bytes on a character boundary');
}

# --- GET /rpc/my_sessions (READ ONLY) -------------------------------------------------
{
	my $before = admin_value('SELECT last_active_at FROM sessmgr.sessions WHERE id = $1',
		$laptop->{sid});
	my $res = get($laptop, 'my_sessions');
	is($res->{status}, 200, 'GET /rpc/my_sessions: 200');
	is($res->{sql}[0], 'BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY',
		'GET /rpc/my_sessions: in a READ ONLY transaction');
	is(scalar @{ ba($res) }, 3, 'GET /rpc/my_sessions: the three devices');
	is_deeply([ map { $_->{id} } grep { $_->{is_current} } @{ ba($res) } ], [ $laptop->{sid} ],
		'GET /rpc/my_sessions: exactly one is_current, the caller\'s');
	is_deeply([ sort map { $_->{id} } @{ ba($res) } ],
		[ sort map { $_->{sid} } $laptop, $phone, $tablet ], 'GET /rpc/my_sessions: the right ids');
	ok(!(grep { exists $_->{token_hash} || exists $_->{user_id} } @{ ba($res) }),
		'GET /rpc/my_sessions: no token hash or user id in the rows');
	is(admin_value('SELECT last_active_at FROM sessmgr.sessions WHERE id = $1', $laptop->{sid}),
		$before, 'GET /rpc/my_sessions: the activity touch was skipped, not failed');

	my $post = $api->request('POST', '/rpc/my_sessions', {}, client => $laptop,
		headers => { 'Content-Profile' => 'sessmgr_api' });
	is($post->{status}, 200, 'POST /rpc/my_sessions (a STABLE function): 200');
	is($post->{sql}[0], 'BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY',
		'POST /rpc/my_sessions: READ ONLY too');

	my $wrong = $api->request('GET', '/rpc/my_sessions', {}, client => $laptop);
	is($wrong->{status}, 404, 'GET /rpc/my_sessions without Accept-Profile: 404 (not in api)');
}

# --- anonymous callers -----------------------------------------------------------------
{
	my $anon = device('curl/8.0');
	my $res = get($anon, 'my_sessions');
	is($res->{status}, 401, 'anonymous GET /rpc/my_sessions: 401');
	is(bh($res)->{code}, '42501', 'anonymous GET /rpc/my_sessions: 42501 (no grant to anon)');
	like(bh($res)->{message}, qr/^permission denied for function my_sessions$/,
		'anonymous GET /rpc/my_sessions: message');
	is($res->{headers}{'www-authenticate'}[0], 'Bearer', 'anonymous: WWW-Authenticate: Bearer');
	my $res2 = post($anon, 'revoke_other_sessions');
	is($res2->{status}, 401, 'anonymous POST /rpc/revoke_other_sessions: 401');
	my $res3 = post($anon, 'revoke_session', { session_id => $phone->{sid} });
	is($res3->{status}, 401, 'anonymous POST /rpc/revoke_session: 401');
	is(session_state($phone->{sid}), 'active', 'the phone\'s session is untouched');
}

# --- revoke one device from another --------------------------------------------------
{
	my $active = admin_value('SELECT last_active_at FROM sessmgr.sessions WHERE id = $1', $phone->{sid});
	my $res = post($phone, 'revoke_session', { session_id => $laptop->{sid} });
	is($res->{status}, 204, 'POST /rpc/revoke_session (the laptop, from the phone): 204');
	ok(admin_value('SELECT last_active_at > $2 FROM sessmgr.sessions WHERE id = $1', $phone->{sid}, $active),
		'a POST records the caller\'s activity (touch_interval 0: every request is due)');
	note "the SQL of that request:\n", join(";\n", @{ $res->{sql} }), "\nwith the settings:\n",
	  explain($res->{settings});
	is_deeply($JSON->decode($res->{settings}{'request.jwt.claims'}),
		{ %{ jwt_claims($phone->{token}) }, role => 'authenticated' },
		'request.jwt.claims: the access token\'s claims');
	is($res->{settings}{role}, 'authenticated', 'role: authenticated (the role claim)');
	is($res->{settings}{search_path}, '"sessmgr_api", "public"', 'search_path: the profile\'s schema');
	is($JSON->decode($res->{settings}{'request.headers'})->{authorization}, "Bearer $phone->{token}",
		'request.headers has the authorization header');
	is(session_state($laptop->{sid}), 'logout', 'the laptop\'s session is revoked');

	my ($hdr) = decode_jwt(token => $laptop->{token}, kid_keys => $api->jwks, decode_header => 1,
		leeway => 30);
	ok($hdr, 'the laptop\'s access token still passes the JWT checks (unexpired, signed)');
	is_ended_401(get($laptop, 'my_sessions'),
		'the laptop\'s next request (GET) gets 401 from the pre-request');
	is_ended_401(post($laptop, 'revoke_other_sessions'),
		'the laptop\'s next POST gets 401 from the pre-request too');
	is_refresh_refused(refresh($laptop, $laptop->{refresh}), 'invalid',
		'the laptop\'s refresh token is dead');

	my $list = get($phone, 'my_sessions');
	is_deeply([ sort map { $_->{id} } @{ ba($list) } ], [ sort $phone->{sid}, $tablet->{sid} ],
		'the phone now lists the phone and the tablet');
}

# --- revoke_session: unknown and someone else's id ----------------------------------------
{
	my $bob = device('Mozilla/5.0 (Bob)');
	is(login($bob, 'bob@example.com', 'battery staple')->{status}, 200, 'bob logs in');
	my $unknown = post($phone, 'revoke_session', { session_id => '6e1f4b5c-9d1a-4f7e-8a2b-3c4d5e6f7a8b' });
	my $others = post($phone, 'revoke_session', { session_id => $bob->{sid} });
	is($unknown->{status}, 404, 'revoke_session of an unknown id: 404');
	is_deeply($unknown->{body},
		{ code => '22023', message => 'invalid session id', details => undef, hint => undef },
		'revoke_session of an unknown id: body');
	is_deeply([ $others->{status}, $others->{body} ], [ $unknown->{status}, $unknown->{body} ],
		'revoke_session of another user\'s session: the same 404 and body');
	is(session_state($bob->{sid}), 'active', 'bob\'s session is untouched');
	is(get($bob, 'my_sessions')->{status}, 200, 'bob still works');
	my $bad = post($phone, 'revoke_session', { session_id => 'not-a-uuid' });
	is($bad->{status}, 400, 'revoke_session with a malformed id: 400');
	is(bh($bad)->{code}, '22P02', 'revoke_session with a malformed id: 22P02');
}

# --- revoke all other sessions ----------------------------------------------------------
{
	my $laptop2 = device($laptop->{headers}{'User-Agent'}, '203.0.113.10');
	is(login($laptop2, 'alice@example.com', 'correct horse')->{status}, 200, 'the laptop logs in again');
	my $res = post($phone, 'revoke_other_sessions');
	is($res->{status}, 200, 'POST /rpc/revoke_other_sessions: 200');
	is($res->{body}, 2, 'POST /rpc/revoke_other_sessions: returns 2 (laptop and tablet)');
	is_ended_401(get($laptop2, 'my_sessions'), 'the laptop gets 401 afterwards');
	is_ended_401(get($tablet, 'my_sessions'), 'the tablet gets 401 afterwards');
	my $list = get($phone, 'my_sessions');
	is($list->{status}, 200, 'the phone still works');
	is_deeply([ map { [ $_->{id}, $_->{is_current} ] } @{ ba($list) } ],
		[ [ $phone->{sid}, JSON::PP::true ] ], 'the phone is alone, and current');
	is(session_state($laptop2->{sid}), 'logout_others', 'revocation reason logout_others');
	is(post($phone, 'revoke_other_sessions')->{body}, 0, 'again: returns 0');
}

# --- refresh ------------------------------------------------------------------------------
{
	my $dev = device('Mozilla/5.0 (Macintosh) Safari/605.1.15', '198.51.100.20');
	login($dev, 'alice@example.com', 'correct horse');
	my ($r0, $a0) = ($dev->{refresh}, $dev->{token});

	my $res = refresh($dev, $r0);
	is($res->{status}, 200, 'refresh: 200');
	is(bh($res)->{status}, 'ok', 'refresh: status ok');
	is(bh($res)->{session_id}, $dev->{sid}, 'refresh: the same session');
	my ($r1, $a1) = (bh($res)->{refresh_token}, bh($res)->{access_token});
	like($r1, qr/^sessmgr_[A-Za-z0-9_-]{64}$/, 'refresh: a new refresh token');
	isnt($r1, $r0, 'refresh: the refresh token changed');
	isnt(jwt_claims($a1)->{gen}, jwt_claims($a0)->{gen}, 'refresh: the access token has a new gen');
	ok(!token_is_current($r0) && token_is_current($r1), 'refresh: the new token is the current one');

	is(get({ %$dev, token => $a1 }, 'my_sessions')->{status}, 200, 'the new access token works');
	is(get({ %$dev, token => $a0 }, 'my_sessions')->{status}, 200,
		'the previous generation\'s access token still works');

	my $res2 = refresh($dev, $r1);
	is($res2->{status}, 200, 'refresh with the new refresh token: 200');
	my ($r2, $a2) = (bh($res2)->{refresh_token}, bh($res2)->{access_token});
	is(get({ %$dev, token => $a1 }, 'my_sessions')->{status}, 200,
		'after a second refresh, the previous access token works');
	is(get({ %$dev, token => $a0 }, 'my_sessions')->{status}, 200,
		'after a second refresh, the access token two generations back still works until it expires');
	is(session_state($dev->{sid}), 'active', 'the session is still active');

	# a token superseded less than sessmgr.refresh_grace ago (another tab) is
	# refreshed again; reuse after the grace window is tested further down
	my $res3 = refresh($dev, $r0);
	is($res3->{status}, 200, 'refresh with the token two generations back, within the grace window: 200');
	ok(token_is_current(bh($res3)->{refresh_token}), 'and its new token is the current one');
	is(get({ %$dev, token => $a2 }, 'my_sessions')->{status}, 200, 'the other tab\'s access token still works');
	is(session_state($dev->{sid}), 'active', 'the session survives');

	is_refresh_refused(refresh($dev, 'sessmgr_' . ('A' x 64)), 'invalid', 'a made-up token: invalid');
	is_refresh_refused(post(device('x'), 'refresh', {}, anonymous => 1), 'invalid',
		'refresh with neither a body token nor a cookie: invalid');
}

# --- two tabs refreshing at once (within the grace window, default 10 s) -------------------
{
	my $tab1 = device('Mozilla/5.0 (Windows NT 10.0) Chrome/126.0');
	login($tab1, 'alice@example.com', 'correct horse');
	my $tab2 = { %$tab1, jar => {} };
	my $r0 = $tab1->{refresh};

	my $res1 = refresh($tab1, $r0);
	my $res2 = refresh($tab2, $r0);
	is($res1->{status}, 200, 'tab 1 refreshes: 200');
	is($res2->{status}, 200, 'tab 2 refreshes with the same token within the grace window: 200');
	my ($t1, $t2) = (bh($res1)->{refresh_token}, bh($res2)->{refresh_token});
	isnt($t1, $t2, 'the two tabs got different tokens');
	is_deeply([ token_is_current($t1), token_is_current($t2) ], [ !1, 1 ],
		'exactly one of the two new tokens is current (one line of descent)');
	is(session_state($tab1->{sid}), 'active', 'the session survives');
	is(get({ %$tab2, token => bh($res2)->{access_token} }, 'my_sessions')->{status}, 200,
		'tab 2\'s access token works');
	is(get({ %$tab1, token => bh($res1)->{access_token} }, 'my_sessions')->{status}, 200,
		'tab 1\'s access token (the previous generation) works');
}

# --- Prefer: tx=rollback ----------------------------------------------------------------------
{
	# the login function refuses it (a rolled-back failure would be a free guess)
	my $ghost = device('Mozilla/5.0 (ghost)');
	my $sessions = admin_value(q{SELECT count(*) FROM sessmgr.sessions WHERE user_id = $1}, $uid{bob});
	my $res = login($ghost, 'bob@example.com', 'battery staple', prefer => 'tx=rollback');
	is($res->{status}, 400, 'login with Prefer: tx=rollback: refused, 400');
	is(bh($res)->{code}, 'SM400', 'with code SM400');
	ok(!defined $ghost->{token} && !defined $ghost->{refresh}, 'and no token');
	is(admin_value(q{SELECT count(*) FROM sessmgr.sessions WHERE user_id = $1}, $uid{bob}), $sessions,
		'and no session');
	# what a login function that allowed it would hand out: tokens of a rolled-back issue
	$admin->begin_work;
	my ($ghost_access, $ghost_refresh) = $admin->selectrow_array(
		q{SELECT access_token, token FROM sessmgr.issue($1, device_name => 'ghost')}, undef, $uid{bob});
	$admin->rollback;
	is_ended_401(get({ %$ghost, token => $ghost_access }, 'my_sessions'),
		'the access token of a rolled-back issue (valid JWT) gets 401 from the pre-request');
	is_refresh_refused(refresh($ghost, $ghost_refresh), 'invalid',
		'the refresh token of a rolled-back issue is invalid');

	my $dev = device('Mozilla/5.0 (rollback refresh)');
	login($dev, 'bob@example.com', 'battery staple');
	my $r0 = $dev->{refresh};
	my $rolled = refresh($dev, $r0, prefer => 'tx=rollback');
	is($rolled->{status}, 400, 'refresh with Prefer: tx=rollback: refused, 400');
	is(bh($rolled)->{code}, 'SM400', 'with code SM400');
	ok(!defined bh($rolled)->{refresh_token}, 'and no token');
	is(post($dev, 'logout', {}, prefer => 'tx=rollback')->{status}, 400, 'logout with Prefer: tx=rollback: 400');
	is(session_state($dev->{sid}), 'active', 'the session is still active');
	my $again = refresh($dev, $r0);
	is($again->{status}, 200, 'the refresh token presented to the rolled-back call still works');
	is(get({ %$dev, token => bh($again)->{access_token} }, 'my_sessions')->{status}, 200,
		'and its new access token works');
}

# --- cookie mode ---------------------------------------------------------------------------
{
	my $browser = device('Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 (cookie)', '192.0.2.44');
	my $res = login($browser, 'alice@example.com', 'correct horse', body => { cookie => JSON::PP::true });
	is($res->{status}, 200, 'cookie login: 200');
	is(scalar(grep { /^__Host-sessmgr_refresh=/ } @{ $res->{headers}{'set-cookie'} // [] }), 1,
		'cookie login: one Set-Cookie header for the session (and the device cookie)');
	my ($c0, $max_age) = ($res->{headers}{'set-cookie'}[0] // '') =~ $SET_COOKIE_RE;
	ok(defined $c0, 'cookie login: Set-Cookie: __Host-sessmgr_refresh=...; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=n')
	  or diag explain $res->{headers};
	ok($max_age >= 86400 - 60 && $max_age <= 86401, 'cookie login: Max-Age is about the session\'s lifetime (1 day)')
	  or diag "Max-Age=$max_age";
	ok($max_age <= 86400, 'cookie login: the cookie does not outlive the session (Max-Age <= 1 day)')
	  or diag "Max-Age=$max_age";
	ok(!exists bh($res)->{refresh_token}, 'cookie login: no refresh_token in the body');
	ok(defined bh($res)->{access_token}, 'cookie login: the access token is in the body');
	is($browser->{jar}{'__Host-sessmgr_refresh'}, $c0, 'the browser stored the cookie');
	ok(token_is_current($c0), 'the cookie holds the session token');

	delete $browser->{token};   # a browser whose access token expired refreshes anonymously
	my $r = post($browser, 'refresh', {}, anonymous => 1);
	is($r->{status}, 200, 'refresh from the cookie jar: 200');
	ok(!exists bh($r)->{refresh_token}, 'refresh from the cookie: no refresh_token in the body');
	my ($c1) = ($r->{headers}{'set-cookie'}[0] // '') =~ $SET_COOKIE_RE;
	ok(defined $c1 && $c1 ne $c0, 'refresh from the cookie: a new cookie');
	is($browser->{jar}{'__Host-sessmgr_refresh'}, $c1, 'the browser replaced its cookie');
	ok(token_is_current($c1), 'the new cookie holds the current token');
	$browser->{token} = bh($r)->{access_token};
	is(get($browser, 'my_sessions')->{status}, 200, 'the refreshed access token works');

	delete $browser->{token};
	my $out = post($browser, 'logout', {}, anonymous => 1);
	is($out->{status}, 204, 'logout with the cookie only: 204');
	like($out->{headers}{'set-cookie'}[0] // '', qr/^__Host-sessmgr_refresh=; Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=0$/,
		'logout clears the cookie (Max-Age=0)');
	is_deeply([ keys %{ $browser->{jar} } ], ['__Host-sessmgr_device'],
		'the browser dropped the session cookie (its device cookie stays)');
	is(session_state(bh($res)->{session_id}), 'logout', 'logout revoked the session');
	is_ended_401(get({ %$browser, token => bh($r)->{access_token} }, 'my_sessions'),
		'the logged-out session\'s access token gets 401');

	$browser->{jar}{'__Host-sessmgr_refresh'} = $c1;   # a stale cookie
	my $stale = post($browser, 'refresh', {}, anonymous => 1);
	is_refresh_refused($stale, 'invalid', 'refresh from a stale cookie: invalid');
	like($stale->{headers}{'set-cookie'}[0] // '', qr/Max-Age=0$/, 'and the stale cookie is cleared');
	is_deeply([ keys %{ $browser->{jar} } ], ['__Host-sessmgr_device'], 'the browser dropped it');
}

# --- logout with the access token -------------------------------------------------------------
{
	my $dev = device('Mozilla/5.0 (logout)');
	login($dev, 'carol@example.com', 'tr0ub4dor');
	my $res = post($dev, 'logout');
	is($res->{status}, 204, 'logout with the access token: 204');
	is(session_state($dev->{sid}), 'logout', 'logout with the access token revoked the session');
	is_ended_401(get($dev, 'my_sessions'), 'the access token is dead after logout');
	is_refresh_refused(refresh($dev, $dev->{refresh}), 'invalid', 'the refresh token is dead after logout');

	my $dev2 = device('Mozilla/5.0 (logout by refresh token)');
	login($dev2, 'carol@example.com', 'tr0ub4dor');
	my $res2 = post($dev2, 'logout', { refresh_token => $dev2->{refresh} }, anonymous => 1);
	is($res2->{status}, 204, 'anonymous logout with the refresh token in the body: 204');
	is(session_state($dev2->{sid}), 'logout', 'and it revoked the session');
}

# --- HTTP-level JWT checks: no SQL runs ------------------------------------------------------
{
	my $dev = device('Mozilla/5.0 (jwt)');
	login($dev, 'bob@example.com', 'battery staple');
	my ($key) = @{ $api->jwks->{keys} };
	my $claims = jwt_claims($dev->{token});
	my $mint = sub {
		my (%over) = @_;
		my %c = (%$claims, %over);
		return encode_jwt(payload => \%c, alg => $key->{alg}, key => decode_base64url($key->{k}),
			extra_headers => { kid => $key->{kid}, typ => 'JWT' });
	};

	my $n = $api->statements;
	my $expired = get({ %$dev, token => $mint->(iat => time - 1000, exp => time - 60) }, 'my_sessions');
	is($expired->{status}, 401, 'an expired access token (exp 60 s ago): 401');
	is(bh($expired)->{code}, 'PGRST303', 'an expired access token: PGRST303');
	like($expired->{headers}{'www-authenticate'}[0], qr/^Bearer error="invalid_token"/,
		'an expired access token: WWW-Authenticate');
	is($api->statements, $n, 'an expired access token: no SQL ran');

	my $forged = $mint->();
	$forged =~ s/\.([^.]+)$/'.' . encode_base64url('x' x 32)/e;
	my $bad = get({ %$dev, token => $forged }, 'my_sessions');
	is($bad->{status}, 401, 'a bad signature: 401');
	is(bh($bad)->{code}, 'PGRST301', 'a bad signature: PGRST301');
	my $none = encode_jwt(payload => $claims, alg => 'none', allow_none => 1);
	is(get({ %$dev, token => $none }, 'my_sessions')->{status}, 401, 'alg none: 401');
	my $hs512 = encode_jwt(payload => $claims, alg => 'HS512', key => decode_base64url($key->{k}),
		extra_headers => { kid => $key->{kid} });
	is(get({ %$dev, token => $hs512 }, 'my_sessions')->{status}, 401,
		'HS512 with the HS256 key\'s kid: 401 (the JWK\'s alg binds the key)');
	my $unknown_kid = encode_jwt(payload => $claims, alg => 'HS256', key => decode_base64url($key->{k}),
		extra_headers => { kid => 'no-such-kid' });
	is(get({ %$dev, token => $unknown_kid }, 'my_sessions')->{status}, 401, 'an unknown kid: 401');
	is($api->statements, $n, 'bad signature, alg none, wrong alg, unknown kid: no SQL ran');

	my $grace = get({ %$dev, token => $mint->(iat => time - 1000, exp => time - 10) }, 'my_sessions');
	is($grace->{status}, 200,
		'an access token expired 10 s ago (within the 30 s leeway): accepted by the JWT check and the pre-request');
	ok($api->statements > $n, 'and SQL ran');

	my $own = get($dev, 'my_sessions');
	is($own->{status}, 200, 'the token minted by sessmgr passes the HTTP-level check');
}

# --- refresh-token reuse after the grace window ------------------------------------------
{
	$admin->do(q{ALTER DATABASE app SET sessmgr.refresh_grace = '1s'});
	$api->connect;   # PostgREST's pool picks up database settings on new connections

	my $dev = device('Mozilla/5.0 (reuse)');
	login($dev, 'alice@example.com', 'correct horse');
	my $r0 = $dev->{refresh};
	my $res = refresh($dev, $r0);
	is($res->{status}, 200, 'refresh: 200');
	my ($r1, $a1) = (bh($res)->{refresh_token}, bh($res)->{access_token});
	sleep 2;   # past sessmgr.refresh_grace
	my $events = admin_value(q{SELECT count(*) FROM sessmgr.session_events WHERE session_id = $1}, $dev->{sid});
	my $reuse = refresh($dev, $r0);
	is_refresh_refused($reuse, 'reuse_detected',
		'the previous refresh token after the grace window: 401 reuse_detected');
	is(session_state($dev->{sid}), 'token_reuse',
		'the session is revoked (reason token_reuse), committed although the caller was refused');
	is(admin_value(q{SELECT count(*) FROM sessmgr.session_events
	                  WHERE session_id = $1 AND event = 'revoke' AND reason = 'token_reuse'}, $dev->{sid}), 1,
		'a revoke event with reason token_reuse was recorded');
	is(admin_value(q{SELECT count(*) FROM sessmgr.session_events WHERE session_id = $1}, $dev->{sid}),
		$events + 1, 'exactly one event more');
	is_refresh_refused(refresh($dev, $r1), 'invalid', 'the thief\'s (newest) refresh token is dead');
	is_ended_401(get({ %$dev, token => $a1 }, 'my_sessions'), 'the newest access token gets 401');
}

# --- the session cap, translated by the login function ---------------------------------
{
	$admin->do(q{ALTER DATABASE app SET sessmgr.cap_policy = 'reject'});
	$admin->do(q{ALTER DATABASE app SET sessmgr.max_sessions = 2});
	$api->connect;
	my @devs = map { device("Mozilla/5.0 (cap $_)") } 1 .. 3;
	is(login($_, 'dave@example.com', 'hunter2 hunter2')->{status}, 200, 'dave logs in') for @devs[ 0, 1 ];
	is(admin_value(q{SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = $1}, $uid{dave}),
		2, 'dave has two sessions (the cap)');
	my $res = login($devs[2], 'dave@example.com', 'hunter2 hunter2');
	is($res->{status}, 429, 'login beyond the cap under cap_policy = reject: 429 (the recipe\'s translation)');
	is_deeply($res->{body},
		{ code => '53400', message => 'too many active sessions', details => undef,
		  hint => 'Sign out on another device.' }, 'login beyond the cap: body');
	is(admin_value(q{SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = $1}, $uid{dave}),
		2, 'no third session');
	is(PostgrestReplay::pg_error_status('53400', 0), 503,
		'(untranslated, PostgREST would answer 53400 with 503)');
}

$api->dbh->disconnect;
$admin->disconnect;
$node->stop;
done_testing();


# test/t/011_jwt_interop.pl: sessmgr's access tokens against an independent JWT
# library (Crypt::JWT, Debian's libcrypt-jwt-perl), both directions: tokens minted by
# sessmgr verify in Crypt::JWT with the key from sessmgr.jwks(); tokens minted by
# Crypt::JWT with that key and a live session's claims verify in
# sessmgr.verify_access_token; and what must not verify does not.
use strict;
use warnings;

use Crypt::JWT qw(encode_jwt decode_jwt);
use DBI;
use JSON::PP;
use MIME::Base64 qw(decode_base64url encode_base64url);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $JSON = JSON::PP->new->canonical;

my $node = PostgreSQL::Test::Cluster->new('jwt');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

my $dbh = DBI->connect('dbi:Pg:host=' . $node->host . ';port=' . $node->port . ';dbname=postgres',
	'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_placeholder_dollaronly => 1 });

sub value
{
	my ($sql, @bind) = @_;
	my ($v) = $dbh->selectrow_array($sql, undef, @bind);
	return $v;
}

sub jwks { $JSON->decode(value('SELECT sessmgr.jwks()::text')) }

# sessmgr.verify_access_token: the claims (a hash) or undef
sub verify
{
	my $claims = value('SELECT sessmgr.verify_access_token($1)::text', $_[0]);
	return defined $claims ? $JSON->decode($claims) : undef;
}

sub issue
{
	my ($user) = @_;
	my $row = $dbh->selectrow_hashref(
		q{SELECT session_id, token, access_token FROM sessmgr.issue($1, 'test')}, undef, $user);
	return $row;
}

sub segments
{
	my ($jwt) = @_;
	my ($h, $p, $s) = split /\./, $jwt;
	return ($JSON->decode(decode_base64url($h)), $JSON->decode(decode_base64url($p)), $s);
}

# a token signed with HMAC by hand (for headers Crypt::JWT would not write)
sub hand_signed
{
	my ($header, $payload, $secret, $bits) = @_;
	require Digest::SHA;
	my $input = encode_base64url($JSON->encode($header)) . '.' . encode_base64url($JSON->encode($payload));
	my $mac = $bits == 512 ? Digest::SHA::hmac_sha512($input, $secret)
	  : $bits == 384 ? Digest::SHA::hmac_sha384($input, $secret)
	  : Digest::SHA::hmac_sha256($input, $secret);
	return $input . '.' . encode_base64url($mac);
}

# --- sessmgr -> Crypt::JWT -----------------------------------------------------------
my $keys = jwks();
is(scalar @{ $keys->{keys} }, 1, 'one signing key after install');
my $key = $keys->{keys}[0];
is_deeply([ @$key{qw(kty alg use)} ], [ 'oct', 'HS256', 'sig' ], 'the JWK: kty oct, alg HS256, use sig');
my $secret = decode_base64url($key->{k});
is(length $secret, 64, 'the key is 64 random bytes');

my $t0 = time;
my $alice = issue('alice');
my ($header, $payload) = decode_jwt(token => $alice->{access_token}, kid_keys => $keys,
	decode_header => 1, accepted_alg => ['HS256'], verify_exp => 1, verify_iat => 1);
is_deeply($header, { alg => 'HS256', kid => $key->{kid}, typ => 'JWT' },
	'issue: the header is {alg: HS256, kid, typ: JWT}, verified by Crypt::JWT');
is($payload->{sub}, 'alice', 'issue: sub is the user id');
is($payload->{sid}, $alice->{session_id}, 'issue: sid is the session id');
is($payload->{role}, 'authenticated', 'issue: role is sessmgr.jwt_role');
like($payload->{gen}, qr/^[0-9a-f]{16}$/, 'issue: gen is the token generation tag');
ok($payload->{iat} >= $t0 - 1 && $payload->{iat} <= time + 1, 'issue: iat is the issuance time');
is($payload->{exp} - $payload->{iat}, 900, 'issue: exp is iat + sessmgr.access_token_ttl (15 min)');
is_deeply([ sort keys %$payload ], [ sort qw(sub sid gen role iat exp auth_time aal amr) ],
	'issue: no other claims (step-up: auth_time, aal, amr; no aud, iss unless configured)');
is_deeply(verify($alice->{access_token}), $payload, 'verify_access_token returns the same claims');

my $refreshed = $dbh->selectrow_hashref(q{SELECT * FROM sessmgr.refresh($1)}, undef, $alice->{token});
is($refreshed->{status}, 'ok', 'refresh: ok');
my ($rh, $rp) = decode_jwt(token => $refreshed->{access_token}, kid_keys => $keys, decode_header => 1,
	accepted_alg => ['HS256'], verify_exp => 1);
is_deeply($rh, $header, 'refresh: the same header, verified by Crypt::JWT');
is_deeply([ @$rp{qw(sub sid role)} ], [ 'alice', $alice->{session_id}, 'authenticated' ],
	'refresh: sub, sid and role');
isnt($rp->{gen}, $payload->{gen}, 'refresh: a new gen');
is($rp->{exp} - $rp->{iat}, 900, 'refresh: exp is iat + ttl');
$alice->{token} = $refreshed->{token};
my $live = $rp;   # the claims of the live session's current generation

# --- Crypt::JWT -> sessmgr -------------------------------------------------------------
sub mint
{
	my (%over) = @_;
	my $alg = delete $over{alg} // 'HS256';
	my $k = delete $over{key} // $secret;
	my $kid = exists $over{kid} ? delete $over{kid} : $key->{kid};
	my %claims = (sub => $live->{sub}, sid => $live->{sid}, gen => $live->{gen},
		role => 'authenticated', iat => time, exp => time + 600, %over);
	delete $claims{$_} for grep { !defined $claims{$_} } keys %claims;
	return encode_jwt(payload => \%claims, alg => $alg, key => $k,
		extra_headers => { defined $kid ? (kid => $kid) : (), typ => 'JWT' });
}

{
	my $tok = mint();
	my $claims = verify($tok);
	ok($claims, 'a token minted by Crypt::JWT with the jwks key and a live session\'s claims verifies');
	is_deeply($claims, (segments($tok))[1], 'and sessmgr returns its claims');
	ok(verify(mint(gen => $payload->{gen})), 'the previous generation\'s gen verifies too');
	ok(verify(mint(nbf => time - 5, jti => 'x1', extra => { nested => [1, 2] })),
		'extra claims (nbf in the past, jti, nested objects) are fine');
}

my $now = time;
my @rejected = (
	[ 'alg none', encode_jwt(payload => { %$live, exp => $now + 600 }, alg => 'none', allow_none => 1) ],
	[ 'alg none with the key\'s kid',
	  encode_base64url($JSON->encode({ alg => 'none', kid => $key->{kid}, typ => 'JWT' })) . '.'
		. encode_base64url($JSON->encode({ %$live, exp => $now + 600 })) . '.' ],
	[ 'alg HS512 with the HS256 key\'s kid (signed with that key)', mint(alg => 'HS512') ],
	[ 'alg HS384 with the HS256 key\'s kid (signed with that key)', mint(alg => 'HS384') ],
	[ 'a wrong key', mint(key => 'k' x 64) ],
	[ 'an unknown kid', mint(kid => 'no-such-kid') ],
	[ 'exp 40 s in the past (beyond the 30 s leeway)', mint(iat => $now - 600, exp => $now - 40) ],
	[ 'nbf 40 s in the future', mint(nbf => $now + 40) ],
	[ 'iat 40 s in the future', mint(iat => $now + 40) ],
	[ 'no exp', mint(exp => undef) ],
	[ 'an unknown gen', mint(gen => '0123456789abcdef') ],
	[ 'another user\'s sub', mint(sub => 'mallory') ],
	[ 'an unknown sid', mint(sid => '7b0e4d52-55d3-4b8f-9f6d-0a9e1c2b3d4e') ],
	[ 'a string exp', mint(exp => "" . ($now + 600)) ],
);
{
	# tampering: a valid token with its payload changed, its signature kept
	my ($h, undef, $s) = split /\./, $refreshed->{access_token};
	my %p = %$live;
	$p{sub} = 'mallory';
	push @rejected, [ 'a tampered payload (sub changed, signature kept)',
		join('.', $h, encode_base64url($JSON->encode(\%p)), $s) ];
	(my $flipped = $refreshed->{access_token}) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
	push @rejected, [ 'a changed signature', $flipped ];
	push @rejected, [ 'a truncated token', substr($refreshed->{access_token}, 0, 50) ];
	push @rejected, [ 'two segments', join('.', (split /\./, $refreshed->{access_token})[ 0, 1 ]) ];
}
for (@rejected)
{
	my ($name, $tok) = @$_;
	is(verify($tok), undef, "rejected by sessmgr: $name");
}
ok(!eval { decode_jwt(token => mint(iat => $now - 600, exp => $now - 40), key => $secret, leeway => 30); 1 },
	'(Crypt::JWT with a 30 s leeway rejects the expired one too)');

ok(verify(mint(iat => $now - 600, exp => $now - 20)), 'accepted: exp 20 s in the past (within the leeway)');
ok(verify(mint(nbf => $now + 20)), 'accepted: nbf 20 s in the future (within the leeway)');
ok(verify(mint(iat => $now + 20)), 'accepted: iat 20 s in the future (within the leeway)');

# --- aud and iss ---------------------------------------------------------------------
{
	$dbh->do(q{SET sessmgr.jwt_audience = 'https://app.example.com'});
	$dbh->do(q{SET sessmgr.jwt_issuer = 'https://auth.example.com'});
	my %both = (aud => 'https://app.example.com', iss => 'https://auth.example.com');
	ok(verify(mint(%both)), 'with jwt_audience and jwt_issuer set: the right aud and iss verify');
	ok(verify(mint(%both, aud => [ 'other', 'https://app.example.com' ])), 'aud as an array containing ours');
	is(verify(mint(%both, aud => 'https://evil.example.com')), undef, 'rejected: a wrong aud');
	is(verify(mint(%both, aud => [ 'other' ])), undef, 'rejected: an aud array without ours');
	is(verify(mint(%both, aud => undef)), undef, 'rejected: no aud');
	is(verify(mint(%both, iss => 'https://evil.example.com')), undef, 'rejected: a wrong iss');
	is(verify(mint(%both, iss => undef)), undef, 'rejected: no iss');

	my $s = issue('alice');
	my $claims = decode_jwt(token => $s->{access_token}, kid_keys => $keys, accepted_alg => ['HS256'],
		verify_aud => 'https://app.example.com', verify_iss => 'https://auth.example.com');
	is_deeply([ @$claims{qw(aud iss)} ], [ 'https://app.example.com', 'https://auth.example.com' ],
		'sessmgr mints aud and iss when configured; Crypt::JWT verifies them');
	ok(verify($s->{access_token}), 'and sessmgr verifies its own');

	$dbh->do(q{RESET sessmgr.jwt_audience});
	$dbh->do(q{RESET sessmgr.jwt_issuer});
	ok(verify(mint(aud => 'anything', iss => 'anyone')), 'without the settings: aud and iss are not checked');
}

# --- HS512 and HS384 keys, rotation and retirement ---------------------------------------
{
	my $old = issue('bob');
	my $kid512 = value(q{SELECT sessmgr.rotate_signing_key('HS512')});
	my $set = jwks();
	is_deeply([ map { [ $_->{kid}, $_->{alg} ] } @{ $set->{keys} } ],
		[ [ $kid512, 'HS512' ], [ $key->{kid}, 'HS256' ] ],
		'rotate_signing_key(HS512): the jwks lists the new key first, the old one still');
	my $new = issue('bob');
	my ($h, $p) = decode_jwt(token => $new->{access_token}, kid_keys => $set, decode_header => 1,
		accepted_alg => ['HS512'], verify_exp => 1);
	is_deeply($h, { alg => 'HS512', kid => $kid512, typ => 'JWT' },
		'new tokens are signed with HS512 and the new kid; Crypt::JWT verifies them');
	is($p->{sid}, $new->{session_id}, 'with the right claims');
	ok(verify($new->{access_token}), 'sessmgr verifies the HS512 token');
	ok(verify($old->{access_token}), 'a token of the older HS256 key still verifies');
	ok(decode_jwt(token => $old->{access_token}, kid_keys => $set, accepted_alg => ['HS256']),
		'and Crypt::JWT verifies it with the new jwks');
	my $secret512 = decode_base64url($set->{keys}[0]{k});
	ok(verify(mint(alg => 'HS512', key => $secret512, kid => $kid512)),
		'a token minted by Crypt::JWT with the HS512 key verifies in sessmgr');
	is(verify(mint(alg => 'HS256', key => $secret512, kid => $kid512)), undef,
		'rejected: HS256 with the HS512 key\'s kid');
	is(verify(mint(alg => 'HS512', key => $secret, kid => $kid512)), undef,
		'rejected: the HS512 kid with the old key\'s secret');

	my $bob_refreshed = $dbh->selectrow_hashref(q{SELECT * FROM sessmgr.refresh($1)}, undef, $old->{token});
	is((segments($bob_refreshed->{access_token}))[0]{alg}, 'HS512', 'refresh signs with the new key too');

	ok(value(q{SELECT sessmgr.retire_signing_key($1)}, $key->{kid}), 'retire_signing_key(old kid): true');
	is(verify($old->{access_token}), undef, 'after retirement the old key\'s tokens are rejected');
	is(verify(mint()), undef, 'and so are Crypt::JWT tokens signed with the old key');
	ok(verify($new->{access_token}), 'the HS512 token still verifies');
	is_deeply([ map { $_->{kid} } @{ jwks()->{keys} } ], [$kid512], 'the jwks no longer lists the retired key');
	ok(!value(q{SELECT sessmgr.retire_signing_key($1)}, $key->{kid}), 'retiring it again: false');
	ok(!eval { value(q{SELECT sessmgr.retire_signing_key($1)}, $kid512); 1 },
		'retiring the last key is refused');
	like($dbh->state, qr/^55000$/, 'with 55000');

	my $kid384 = value(q{SELECT sessmgr.rotate_signing_key('HS384')});
	my $t384 = issue('bob');
	my ($h384) = decode_jwt(token => $t384->{access_token}, kid_keys => jwks(), decode_header => 1,
		accepted_alg => ['HS384']);
	is_deeply($h384, { alg => 'HS384', kid => $kid384, typ => 'JWT' },
		'rotate_signing_key(HS384): HS384 tokens, verified by Crypt::JWT');
	ok(verify($t384->{access_token}), 'sessmgr verifies the HS384 token');
	ok(verify($new->{access_token}), 'the HS512 token still verifies');

	ok(!eval { value(q{SELECT sessmgr.rotate_signing_key('none')}); 1 }, 'rotate_signing_key(none) is refused');
	ok(!eval { value(q{SELECT sessmgr.rotate_signing_key('RS256')}); 1 }, 'rotate_signing_key(RS256) is refused');
}

# --- another backend sees the rotation (key cache invalidation) -------------------------
{
	my $other = DBI->connect('dbi:Pg:host=' . $node->host . ';port=' . $node->port . ';dbname=postgres',
		'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
	my $t = issue('carol');
	ok($other->selectrow_array(q{SELECT sessmgr.verify_access_token(?) IS NOT NULL}, undef, $t->{access_token}),
		'another backend verifies the token (its key cache loaded)');
	my $kid = value(q{SELECT sessmgr.rotate_signing_key('HS256')});
	my $t2 = issue('carol');
	ok($other->selectrow_array(q{SELECT sessmgr.verify_access_token(?) IS NOT NULL}, undef, $t2->{access_token}),
		'another backend verifies a token of a key added after its cache was loaded');
	my ($kid_of_t) = (segments($t->{access_token}))[0]{kid};
	value(q{SELECT sessmgr.retire_signing_key($1)}, $kid_of_t);
	ok($other->selectrow_array(q{SELECT sessmgr.verify_access_token(?) IS NULL}, undef, $t->{access_token}),
		'another backend rejects a token of a key retired after its cache was loaded');
	$other->disconnect;
}

$dbh->disconnect;
$node->stop;
done_testing();

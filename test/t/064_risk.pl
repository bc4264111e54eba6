# test/t/064_risk.pl: suspicious logins with real places (issue 13) - the
# GeoIP databases of test/make_geoip_db.pl (Lagos, radius 50 km; Berlin,
# 20 km; Sydney, 10 km, Australia/Sydney; a Japanese network with a country
# only), where regress 14_risk uses a CDN's headers.
#
# Checked: impossible_travel subtracts both accuracy radii (a trip that is
# too fast without them is plausible with them, and one too fast either way
# is flagged); a place without coordinates and a private address are never
# judged; unusual_time reads the login's local time in the place's time zone
# (ten logins from Sydney make the Sydney hour usual, the same instant read
# in UTC for a private address is unusual); NOTIFY on sessmgr_security at
# commit with event, user_id, session_id, reasons, ip, country and device,
# never the token, and nothing for an ordinary login or a rolled-back one;
# issue_from_request keeps the __Host-sessmgr_device cookie (Set-Cookie with
# Secure, Path=/, no Domain, HttpOnly, SameSite=Lax, 400 days, next to the
# session cookie), recognises a returning browser by it, replaces a malformed
# one, and stores only its SHA-256.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dir = PostgreSQL::Test::Utils::tempdir;
system_or_bail('perl', 'test/make_geoip_db.pl', $dir);

my $node = PostgreSQL::Test::Cluster->new('risk');
$node->init;
$node->append_conf('postgresql.conf', qq{
sessmgr.geoip_database = '$dir/sessmgr-test-City.mmdb'
sessmgr.geoip_asn_database = '$dir/sessmgr-test-ASN.mmdb'
});
$node->start;
$node->safe_psql('postgres',
	q{CREATE DATABASE app TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'});
$node->safe_psql('app', 'CREATE EXTENSION sessmgr');

my $CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
my ($LAGOS, $BERLIN, $SYDNEY, $JAPAN, $PRIVATE) =
  ('192.0.2.10', '198.51.100.20', '2001:db8::7', '2001:db8:ffff::1', '10.1.2.3');

sub q_ { return $node->safe_psql('app', $_[0]); }

# a login of user from ip; returns the session id
sub login
{
	my ($user, $ip) = @_;
	return q_(qq{SELECT session_id FROM sessmgr.issue('$user', user_agent => '$CHROME', ip => '$ip')});
}

sub risk_of
{
	my ($sid) = @_;
	return q_(qq{SELECT risk FROM sessmgr.sessions WHERE id = '$sid'});
}

# the previous login happened $hours ago
sub previous_login_ago
{
	my ($user, $hours) = @_;
	q_(qq{UPDATE sessmgr.login_profiles
	         SET last_login_at = now() - make_interval(secs => $hours * 3600)
	       WHERE user_id = '$user'});
}

# ---- impossible travel and the accuracy radii ----
use constant PI => 4 * atan2(1, 1);
sub rad { return $_[0] * PI / 180 }
sub km
{
	my ($la1, $lo1, $la2, $lo2) = map { rad($_) } @_;
	my $a = sin(($la2 - $la1) / 2)**2 + cos($la1) * cos($la2) * sin(($lo2 - $lo1) / 2)**2;
	return 2 * 6371.0088 * atan2(sqrt($a), sqrt(1 - $a));
}
my $d = km(6.4541, 3.3947, 52.5244, 13.4105);    # Lagos - Berlin
my $radii = 50 + 20;

# too fast without the radii, plausible with them
my $hours = ($d - $radii / 2) / 900;
cmp_ok($d / $hours, '>', 900, sprintf('Lagos-Berlin %.0f km in %.3f h is %.0f km/h', $d, $hours, $d / $hours));
login('ann', $LAGOS);
previous_login_ago('ann', $hours);
my $sid = login('ann', $BERLIN);
unlike(risk_of($sid), qr/impossible_travel/,
	'after subtracting both accuracy radii (70 km) the trip is plausible: no impossible_travel');
my ($dist, $speed) = split /\|/, q_(qq{SELECT details ->> 'distance_km', details ->> 'speed_kmh'
  FROM sessmgr.session_events WHERE session_id = '$sid' AND event = 'suspicious_login'});
ok(abs($dist - ($d - $radii)) < 0.2, "the event's distance is the great circle less both radii ($dist km)");
cmp_ok($speed, '<=', 900, "and its speed is within sessmgr.max_travel_speed ($speed km/h)");
like(risk_of($sid), qr/new_country/, 'Berlin is a new country for ann all the same');

# too fast even with the radii
$hours = ($d - $radii) / 1000;
login('ben', $LAGOS);
previous_login_ago('ben', $hours);
$sid = login('ben', $BERLIN);
like(risk_of($sid), qr/impossible_travel/, 'Lagos to Berlin at 1000 km/h (radii subtracted) is impossible_travel');
is(q_(qq{SELECT details -> 'previous' ->> 'city' FROM sessmgr.session_events
          WHERE session_id = '$sid' AND event = 'suspicious_login'}), 'Lagos',
	'the event names the previous place');

# a place without coordinates, or no place at all, is never judged
login('cleo', $LAGOS);
previous_login_ago('cleo', 0.01);
is(risk_of(login('cleo', $PRIVATE)), '{}', 'a private address (no place) right after Lagos: nothing');
previous_login_ago('cleo', 0.01);
is(risk_of(login('cleo', $LAGOS)), '{}', 'and Lagos right after it: nothing (the previous place is unknown)');
previous_login_ago('cleo', 0.01);
is(risk_of(login('cleo', $JAPAN)), '{new_country,new_network}',
	'Japan (a country without coordinates) right after Lagos: a new country, no impossible_travel');

# ---- unusual time in the place's time zone ----
login('dora', $SYDNEY) for 1 .. 10;
my ($minute, $sydney) = split /\|/, q_(q{SELECT login_minutes[10],
  extract(hour FROM now() AT TIME ZONE 'Australia/Sydney') * 60 + extract(minute FROM now() AT TIME ZONE 'Australia/Sydney')
  FROM sessmgr.login_profiles WHERE user_id = 'dora'});
ok(abs($minute - $sydney) <= 1 || abs($minute - $sydney) >= 1439,
	"a login from Sydney is remembered at its Sydney minute of the day ($minute, now $sydney)");
is(risk_of(login('dora', $SYDNEY)), '{}', 'the eleventh login from Sydney at the same hour is usual');
my $utc_gap = abs($sydney - q_(q{SELECT extract(hour FROM now() AT TIME ZONE 'UTC') * 60 + extract(minute FROM now() AT TIME ZONE 'UTC')}));
$utc_gap = 1440 - $utc_gap if $utc_gap > 720;
cmp_ok($utc_gap, '>', 180, "Sydney's clock is more than three hours from UTC ($utc_gap minutes)");
is(risk_of(login('dora', $PRIVATE)), '{unusual_time}',
	'the same instant without a place (UTC) is unusual_time, and nothing else');

# ---- NOTIFY sessmgr_security ----
login('eli', $LAGOS);
my ($rc, $out, $err) = $node->psql('app', qq{LISTEN sessmgr_security;
SELECT 'ordinary ' || session_id FROM sessmgr.issue('eli', user_agent => '$CHROME', ip => '$LAGOS');
BEGIN;
SELECT 'rolled back ' || session_id FROM sessmgr.issue('eli', user_agent => '$CHROME', ip => '$BERLIN');
ROLLBACK;
UPDATE sessmgr.login_profiles SET last_login_at = now() - interval '1 day' WHERE user_id = 'eli';
SELECT 'suspicious ' || session_id || ' ' || token FROM sessmgr.issue('eli', user_agent => '$CHROME', ip => '$BERLIN');});
is($rc, 0, 'psql with LISTEN ran') or diag($err);
my @notes = ($out =~ /^Asynchronous notification "sessmgr_security" with payload "(.*)" received from server process with PID \d+\.$/mg);
is(scalar(@notes), 1, 'one notification: none for the ordinary login or the rolled-back one')
  or diag($out);
my ($sus_sid, $sus_token) = $out =~ /^suspicious (\S+) (\S+)$/m;
my $note = $notes[0] // '';
like($note, qr/^\{"event":"suspicious_login","user_id":"eli","session_id":"\Q$sus_sid\E","reasons":\["new_country","new_network"\],"ip":"198\.51\.100\.20","country":"Germany","device":"Chrome 120 on Windows"\}$/,
	'the payload: event, user_id, session_id, reasons, ip, country, device');
unlike($note, qr/\Q$sus_token\E/, 'the payload never holds the token');

# ---- the device cookie of issue_from_request ----
q_('ALTER DATABASE app SET sessmgr.trusted_proxies = 1');
sub request_login
{
	my ($user, $cookies, $session_cookie) = @_;
	$session_cookie //= 'false';
	my $headers = qq({"user-agent": "$CHROME", "x-forwarded-for": "$LAGOS"});
	my $out = q_(qq{BEGIN;
SELECT set_config('request.headers', '$headers', true), set_config('request.cookies', '$cookies', true);
SELECT 'session ' || (sessmgr.issue_from_request('$user', cookie => $session_cookie)::json ->> 'session_id');
SELECT 'headers ' || current_setting('response.headers');
COMMIT;});
	my ($s) = $out =~ /^session (\S+)$/m;
	my ($h) = $out =~ /^headers (.*)$/m;
	return ($s, $h);
}
my ($s1, $h1) = request_login('fay', '{}');
my ($cookie) = $h1 =~ /"Set-Cookie" *: *"__Host-sessmgr_device=([0-9a-f]{64}); Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=34560000"/;
ok(defined $cookie, 'a browser without the cookie gets a new random one: __Host- prefix, Secure, Path=/, HttpOnly, SameSite=Lax, 400 days')
  or diag($h1);
unlike($h1, qr/Domain=/i, 'no Domain attribute (the __Host- prefix forbids it)');
my ($s2, $h2) = request_login('fay', qq({"__Host-sessmgr_device": "$cookie"}), 'true');
like($h2, qr/__Host-sessmgr_device=$cookie;/, 'a returning browser keeps its cookie (renewed)');
like($h2, qr/__Host-sessmgr_refresh=/, 'next to the session cookie: both Set-Cookie headers are sent');
is(risk_of($s2), '{}', 'and is recognised: not a new device');
is(q_(qq{SELECT kind || ' ' || (device_key = sha256(convert_to(E'cookie\\n' || '$cookie', 'UTF8')))
           FROM sessmgr.known_devices WHERE user_id = 'fay'}), 'cookie true',
	'known_devices keeps the SHA-256 of the cookie');
is(q_(qq{SELECT (SELECT count(*) FROM sessmgr.known_devices d WHERE d::text LIKE '%$cookie%')
              + (SELECT count(*) FROM sessmgr.sessions s WHERE s::text LIKE '%$cookie%')
              + (SELECT count(*) FROM sessmgr.session_events e WHERE e::text LIKE '%$cookie%')
              + (SELECT count(*) FROM sessmgr.login_profiles p WHERE p::text LIKE '%$cookie%')}), 0,
	'the cookie itself is stored nowhere');
my ($s3, $h3) = request_login('fay', q({"__Host-sessmgr_device": "not-a-cookie"}));
my ($other) = $h3 =~ /__Host-sessmgr_device=([0-9a-f]{64});/;
ok(defined $other && $other ne $cookie, 'a malformed cookie is replaced by a new one');
is(risk_of($s3), '{new_device}', 'which is a new device (on a known network: recorded, not suspicious)');

$node->stop;
done_testing();

# test/t/062_devices_at_issue.pl: devices and places stored at issuance and
# shown everywhere (issue 12): issue() and issue_from_request() derive the
# device from the user agent (with client hints) and the place from the
# address (test/make_geoip_db.pl's databases, or a CDN's headers), store them
# on the session and its issue event, list them, and refresh_devices()
# derives them again after the database was updated.
use strict;
use warnings;

use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dir = PostgreSQL::Test::Utils::tempdir;
system_or_bail('perl', 'test/make_geoip_db.pl', $dir);
my $city = "$dir/City.mmdb";
copy("$dir/sessmgr-test-City.mmdb", $city) or die "copy: $!";

my $node = PostgreSQL::Test::Cluster->new('devices');
$node->init;
$node->append_conf('postgresql.conf', qq{
sessmgr.geoip_database = '$city'
sessmgr.geoip_asn_database = '$dir/sessmgr-test-ASN.mmdb'
});
$node->start;
$node->safe_psql('postgres',
	q{CREATE DATABASE app TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'});
$node->safe_psql('app', 'CREATE EXTENSION sessmgr');

my $CHROME_WIN = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
my $EDGE_WIN = "$CHROME_WIN Edg/120.0.0.0";
my $IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1';

sub q_
{
	my ($sql) = @_;
	return $node->safe_psql('app', "SET client_encoding = 'UTF8';\n$sql");
}

sub lit
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

# the stored device and place of a session, '|'-separated, '-' for NULL
sub stored
{
	my ($sid) = @_;
	return q_(qq{SELECT concat_ws('|', coalesce(device, '-'), coalesce(browser, '-'), coalesce(os, '-'),
	                    coalesce(device_type, '-'), coalesce(country_code, '-'), coalesce(city, '-'),
	                    coalesce(location, '-'), coalesce(asn::text, '-'),
	                    (latitude IS NOT NULL)::text)
	               FROM sessmgr.sessions WHERE id = '$sid'});
}

# --- issue(): the device from the user agent, the place from the address ------------
my $laptop = q_(qq{SELECT session_id FROM sessmgr.issue('alice', user_agent => ${\ lit($CHROME_WIN)},
                                                      ip => '192.0.2.10')});
is(stored($laptop), 'Chrome 120 on Windows|Chrome|Windows|desktop|NG|Lagos|Lagos, Nigeria|64496|true',
	'issue: Chrome on Windows from Lagos, the location made from the place');

my $phone = q_(qq{SELECT session_id FROM sessmgr.issue('alice', user_agent => ${\ lit($IPHONE)},
                                                     ip => '2001:db8::7', location => 'at home')});
is(stored($phone), 'Mobile Safari 17 on iOS 17.1|Mobile Safari|iOS|mobile|AU|Sydney|at home|65536|true',
	'issue: an iPhone in Sydney; the caller\'s location wins');

my $hinted = q_(qq{SELECT session_id FROM sessmgr.issue('alice', user_agent => ${\ lit($EDGE_WIN)},
	ip => '10.1.2.3',
	client_hints => '{"sec-ch-ua": "\\"Chromium\\";v=\\"120\\", \\"Microsoft Edge\\";v=\\"120\\", \\"Not=A?Brand\\";v=\\"99\\"",
	                  "sec-ch-ua-mobile": "?0", "sec-ch-ua-platform": "\\"Windows\\"",
	                  "sec-ch-ua-platform-version": "\\"15.0.0\\""}')});
like(stored($hinted), qr/^Edge 120 on Windows 11\|Edge\|Windows\|desktop\|-\|-\|-\|-\|false$/,
	'issue with client hints: Edge on Windows 11; a private address has no place');

my $nothing = q_(q{SELECT session_id FROM sessmgr.issue('bob')});
is(stored($nothing), '-|-|-|-|-|-|-|-|false', 'issue without a user agent or an address: nothing derived');

# the issue event keeps them (history outlives the session)
is(q_(qq{SELECT concat_ws('|', user_agent = ${\ lit($CHROME_WIN)}, device, country_code, city, asn)
           FROM sessmgr.session_events WHERE session_id = '$laptop' AND event = 'issue'}),
	't|Chrome 120 on Windows|NG|Lagos|64496', 'the issue event carries the user agent, device and place');

# and every listing shows them
is(q_(qq{SELECT string_agg(concat_ws('|', device, device_type, country_code, city), ',' ORDER BY device)
           FROM sessmgr.list_sessions('alice', '$laptop')}),
	'Chrome 120 on Windows|desktop|NG|Lagos,Edge 120 on Windows 11|desktop,Mobile Safari 17 on iOS 17.1|mobile|AU|Sydney',
	'list_sessions: device, device type, country and city');
is(q_(q{SELECT count(*) FROM sessmgr.active_sessions WHERE user_id = 'alice' AND device IS NOT NULL}), 3,
	'active_sessions shows the devices');

# --- issue_from_request(): the request's user agent, client hints and address --------------
sub request_sql
{
	my ($headers) = @_;
	return qq{BEGIN;
SELECT set_config('request.headers', ${\ lit($headers)}, true);
SELECT (sessmgr.issue_from_request('carol')::json ->> 'session_id');
COMMIT;};
}
q_('ALTER DATABASE app SET sessmgr.trusted_proxies = 1');
my $h = qq({"user-agent": "$CHROME_WIN", "x-forwarded-for": "198.51.100.20",
            "sec-ch-ua-platform": "\\"Windows\\"", "sec-ch-ua-platform-version": "\\"10.0.0\\""});
my ($req) = grep { /^[0-9a-f-]{36}$/ } split /\n/, q_(request_sql($h));
is(stored($req), 'Chrome 120 on Windows 10|Chrome|Windows|desktop|DE|Berlin|Berlin, Germany|64497|true',
	'issue_from_request: user agent, client hints and the forwarded address');

# behind Cloudflare the edge's headers give the place
q_(q{ALTER DATABASE app SET sessmgr.location_headers = 'cloudflare'});
$h = qq({"user-agent": "curl/8.4.0", "x-forwarded-for": "198.51.100.20",
         "cf-ipcountry": "KE", "cf-ipcity": "Nairobi", "cf-iplatitude": "-1.28", "cf-iplongitude": "36.82"});
($req) = grep { /^[0-9a-f-]{36}$/ } split /\n/, q_(request_sql($h));
like(stored($req), qr/^curl 8\.4\|curl\|Other\|other\|KE\|Nairobi\|Nairobi(, Kenya)?\|64497\|true$/,
	'issue_from_request behind Cloudflare: the place from its headers');
q_(q{ALTER DATABASE app RESET sessmgr.location_headers});

# --- refresh_devices(): derive again after the database was updated ---------------------------
my $revoked = q_(qq{SELECT session_id FROM sessmgr.issue('dave', user_agent => ${\ lit($IPHONE)}, ip => '192.0.2.99')});
q_(qq{SELECT sessmgr.revoke_any('$revoked')});
copy("$dir/sessmgr-test-City-update.mmdb", "$city.new") or die "copy: $!";
rename("$city.new", $city) or die "rename: $!";
sleep 2;    # the file's identity is checked at most once a second
my $updated = q_(q{CALL sessmgr.refresh_devices(batch_size => 2)});
cmp_ok($updated, '>=', 3, "refresh_devices updated the live sessions, two per batch ($updated)");
like(stored($laptop), qr/^Chrome 120 on Windows\|Chrome\|Windows\|desktop\|KE\|Nairobi\|Lagos, Nigeria\|/,
	'refresh_devices: 192.0.2.0/24 is in Nairobi now; the location text stays as issued');
like(stored($hinted), qr/^Edge 120 on Windows 11\|/, 'refresh_devices keeps what the client hints said');
like(stored($revoked), qr/\|NG\|Lagos\|/, 'an ended session is left as it was');
like(q_(q{CALL sessmgr.refresh_devices()}), qr/^\d+$/, 'refresh_devices with the default batch size');

# only administrators
q_(q{CREATE ROLE app_role; GRANT USAGE ON SCHEMA sessmgr TO app_role});
my ($rc, $out, $err) = $node->psql('app', 'SET ROLE app_role; CALL sessmgr.refresh_devices()');
like($err, qr/permission denied for procedure refresh_devices/, 'refresh_devices is for administrators');
($rc, $out, $err) = $node->psql('app', 'CALL sessmgr.refresh_devices(0)');
like($err, qr/batch size must be between 1 and 100000/, 'a batch size of 0 is refused');

$node->stop;
done_testing();

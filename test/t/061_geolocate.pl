# test/t/061_geolocate.pl: places - sessmgr.geolocate() with MaxMind DB files
# the test builds itself (test/make_geoip_db.pl: the documentation networks
# placed in Lagos, Berlin, São Paulo and Sydney), and sessmgr.request_location()
# with the location headers of Cloudflare and CloudFront.
#
# Checked: every documentation network, IPv4 and IPv6 (and IPv4-mapped), gives
# its place and AS; non-public addresses give NULLs even though the test
# databases place them in Berlin (so they are never looked up); an address the
# database lacks, and NULL, give NULLs, always in exactly one row; names are
# the English ones, converted to the database encoding (NULL where it cannot
# write them); a Country database gives the country only; a database file
# renamed over the open one is used by the same backend about a second later;
# a changed or emptied setting takes effect at once; a missing, junk,
# truncated or damaged file, or a directory, gives NULLs and one WARNING per
# backend, and a file that appears later is then used; non-superusers cannot
# change the settings or call the functions.  The CDN headers: ignored with
# sessmgr.trusted_proxies = 0 or without sessmgr.location_headers; used with
# both, for each vendor; hostile values are dropped one by one, never an error;
# and the precedence rule of docs/places.md when headers and database disagree.
# Strings here are UTF-8 bytes, as psql prints them (no "use utf8").
use strict;
use warnings;

use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $TIMEOUT = $PostgreSQL::Test::Utils::timeout_default;

# ---- the databases ----
my $dir = PostgreSQL::Test::Utils::tempdir;
system_or_bail('perl', 'test/make_geoip_db.pl', $dir);
for my $f (qw(City City-update Country ASN))
{
	ok(-s "$dir/sessmgr-test-$f.mmdb", "make_geoip_db.pl wrote sessmgr-test-$f.mmdb");
}
# the files the settings name; replaced by renaming over them, as geoipupdate does
my $city = "$dir/City.mmdb";
my $asn  = "$dir/ASN.mmdb";
copy("$dir/sessmgr-test-City.mmdb", $city) or die "copy: $!";
copy("$dir/sessmgr-test-ASN.mmdb",  $asn)  or die "copy: $!";

# Put the file $from in place of $to the way an updater does: a copy beside
# it, renamed over it.
sub replace_file
{
	my ($from, $to) = @_;
	copy($from, "$to.new") or die "copy $from: $!";
	rename("$to.new", $to) or die "rename: $!";
	return;
}

my $node = PostgreSQL::Test::Cluster->new('geolocate');
$node->init;
$node->append_conf('postgresql.conf', qq{
sessmgr.geoip_database = '$city'
sessmgr.geoip_asn_database = '$asn'
});
$node->start;
$node->safe_psql('postgres',
	q{CREATE DATABASE geo TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'});
$node->safe_psql('geo', 'CREATE EXTENSION sessmgr');

# Run $sql in one new connection to geo; return (exit code, stdout, stderr).
sub session
{
	my ($sql, $db) = @_;
	my ($o, $e);
	my $rc = $node->psql($db // 'geo', "SET client_encoding = 'UTF8';\n$sql",
		stdout => \$o, stderr => \$e, timeout => $TIMEOUT);
	return ($rc, $o, $e);
}

# The columns of one row of a place function, '|'-separated, '-' for NULL.
my $COLUMNS = q{array_to_string(ARRAY[country_code, country, region, city, latitude::text,
	longitude::text, accuracy_radius_km::text, asn::text, as_organization], '|', '-')};
my $NONE = join('|', ('-') x 9);

sub place_sql
{
	my ($ip) = @_;
	return "SELECT $COLUMNS FROM sessmgr.geolocate($ip)";
}

sub place
{
	my ($ip, $db) = @_;
	my ($rc, $o, $e) = session(place_sql($ip), $db);
	is($rc, 0, "geolocate($ip) runs") or diag($e);
	return $o;
}

# ---- every documentation network ----
my $LAGOS  = 'NG|Nigeria|Lagos|Lagos|6.4541|3.3947|50|64496|Example Telecom Nigeria Ltd';
my $BERLIN = 'DE|Germany|Land Berlin|Berlin|52.5244|13.4105|20|64497|Beispiel Netz GmbH';
my $SAO_PAULO =
  'BR|Brazil|São Paulo|São Paulo|-23.5475|-46.6361|20|64498|Exemplo Telecomunicações Ltda';
my $SYDNEY =
  'AU|Australia|New South Wales|Sydney|-33.8688|151.2093|10|65536|Example Broadband Pty Ltd';
my $NAIROBI = 'KE|Kenya|Nairobi County|Nairobi|-1.2841|36.8155|10|64496|Example Telecom Nigeria Ltd';

my %places = (
	q{'192.0.2.1'}                   => $LAGOS,
	q{'192.0.2.255'}                 => $LAGOS,
	q{'192.0.2.0/24'}                => $LAGOS,
	q{'198.51.100.77'}               => $BERLIN,
	q{'203.0.113.200'}               => $SAO_PAULO,
	q{'2001:db8::1'}                 => $SYDNEY,
	q{'2001:db8:1234:5678::9'}       => $SYDNEY,
	q{'2001:db8:ffff::1'}            => 'JP|Japan|-|-|-|-|-|65536|Example Broadband Pty Ltd',
	q{'::ffff:192.0.2.10'}           => $LAGOS,
	q{'::ffff:203.0.113.5'}          => $SAO_PAULO,
);
for my $ip (sort keys %places)
{
	is(place($ip), $places{$ip}, "geolocate($ip): $places{$ip}");
}

# ---- what is never looked up, what is not known, NULL ----
for my $ip (
	qw('10.1.2.3' '172.16.5.4' '172.31.255.255' '192.168.1.1' '127.0.0.1' '169.254.10.20'
	'100.64.0.1' '0.0.0.0' '198.18.0.1' '224.0.0.251' '255.255.255.255' '::1' '::'
	'fe80::1' 'fc00::1' 'fd12:3456::1' 'ff02::1' '::ffff:10.0.0.1' '::ffff:127.0.0.1'))
{
	is(place($ip), $NONE, "geolocate($ip): NULLs (not public; the test database places it in Berlin)");
}
for my $ip (qw('8.8.8.8' '1.1.1.1' '2001:4860::8888' '2a00:1450::1'))
{
	is(place($ip), $NONE, "geolocate($ip): NULLs (not in the database)");
}
is(place('NULL'), $NONE, 'geolocate(NULL): NULLs');
is($node->safe_psql('geo', q{SELECT count(*) FROM sessmgr.geolocate(NULL)}),
	'1', '... in exactly one row');
is( $node->safe_psql(
		'geo', q{SELECT count(*) FROM (VALUES ('10.0.0.1'::inet), ('192.0.2.1'), (NULL)) v(ip),
		                 LATERAL sessmgr.geolocate(v.ip) g}),
	'3', 'one row per address in a lateral join, known or not');

# ---- the database encoding ----
$node->safe_psql('postgres',
	q{CREATE DATABASE geo_latin1 TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'});
$node->safe_psql('postgres',
	q{CREATE DATABASE geo_win1251 TEMPLATE template0 ENCODING 'WIN1251' LOCALE 'C'});
$node->safe_psql($_, 'CREATE EXTENSION sessmgr') for qw(geo_latin1 geo_win1251);
is(place(q{'203.0.113.1'}, 'geo_latin1'), $SAO_PAULO,
	'a LATIN1 database gets the names converted');
is(place(q{'203.0.113.1'}, 'geo_win1251'),
	'BR|Brazil|-|-|-23.5475|-46.6361|20|64498|-',
	'a WIN1251 database, which cannot write São Paulo, gets NULL for those names only');

# ---- a Country database ----
my ($rc, $o, $e) = session(
	"SET sessmgr.geoip_database = '$dir/sessmgr-test-Country.mmdb';\n" . place_sql(q{'192.0.2.1'}));
is($o, 'NG|Nigeria|-|-|-|-|-|64496|Example Telecom Nigeria Ltd',
	'a Country database gives the country (and the ASN database the AS)');

# ---- replacing the file, changing the setting, in one backend ----
($rc, $o, $e) = session(
	join("\n",
		place_sql(q{'192.0.2.1'}) . ';',
		"\\! mv '$dir/sessmgr-test-City-update.mmdb' '$city'",
		'SELECT pg_sleep(1.2);',
		place_sql(q{'192.0.2.1'}) . ';',
		place_sql(q{'198.51.100.1'}) . ';',
		q{SET sessmgr.geoip_database = '';},
		place_sql(q{'192.0.2.1'}) . ';',
		q{SET sessmgr.geoip_asn_database = '';},
		place_sql(q{'192.0.2.1'}) . ';',
		q{RESET sessmgr.geoip_asn_database;},
		"SET sessmgr.geoip_database = '$dir/sessmgr-test-City.mmdb';",
		place_sql(q{'192.0.2.1'}) . ';'));
is($rc, 0, 'one backend: replace the file, change the settings') or diag($e);
my @rows = split /\n/, $o;
is($rows[0], $LAGOS, '... Lagos before the monthly update');
is($rows[2], $NAIROBI, '... Nairobi after the new file was renamed over the old one, no restart');
is($rows[3], $BERLIN, '... the rest of the new file too');
is($rows[4], "-|-|-|-|-|-|-|64496|Example Telecom Nigeria Ltd",
	'... sessmgr.geoip_database emptied: no place, the AS still');
is($rows[5], $NONE, '... both emptied: NULLs');
is($rows[6], $LAGOS, '... a setting naming another file: that file, at once');
is($e, '', '... without a warning');
is(place(q{'192.0.2.1'}), $NAIROBI, 'a new backend reads the new file');
replace_file("$dir/sessmgr-test-City.mmdb", $city);

# ---- files that cannot be used ----
sub bad_file
{
	my ($path, $warning, $what) = @_;
	my ($rc, $o, $e) = session(
		join("\n",
			"SET sessmgr.geoip_database = '$path';",
			(place_sql(q{'192.0.2.1'}) . ';') x 3));
	is($rc, 0, "$what: no error");
	is($o, join("\n", ("-|-|-|-|-|-|-|64496|Example Telecom Nigeria Ltd") x 3),
		"$what: no place (the ASN database still answers)");
	my @warnings = $e =~ /WARNING: /g;
	is(scalar @warnings, 1, "$what: one WARNING in the backend, not one per lookup");
	like($e, $warning, "$what: the WARNING says why");
	return;
}

bad_file("$dir/missing.mmdb",
	qr/WARNING:  could not open GeoIP database ".*missing\.mmdb": No such file or directory/,
	'a missing file');
append_to_file("$dir/junk.mmdb", 'x' x 5000);
bad_file("$dir/junk.mmdb",
	qr/WARNING:  could not open GeoIP database ".*junk\.mmdb": .*metadata/i, 'a junk file');
{
	my $good = slurp_file("$dir/sessmgr-test-City.mmdb");
	append_to_file("$dir/truncated.mmdb", substr($good, 0, length($good) - 200));
	bad_file("$dir/truncated.mmdb",
		qr/WARNING:  could not open GeoIP database ".*truncated\.mmdb"/, 'a truncated file');

	# the search tree (at the start of the file) overwritten with junk
	my $damaged = ("\xff" x 600) . substr($good, 600);
	append_to_file("$dir/damaged.mmdb", $damaged);
	bad_file("$dir/damaged.mmdb",
		qr/WARNING:  GeoIP database ".*damaged\.mmdb" is damaged/, 'a damaged search tree');
}
bad_file($dir, qr/WARNING:  GeoIP database ".*" is not a regular file/, 'a directory');
like((session(q{LOAD 'sessmgr'; SET sessmgr.geoip_database = '} . ('x' x 2000) . q{'}))[2],
	qr/invalid value for parameter "sessmgr.geoip_database"/, 'an over-long file name is refused');

# a file that appears later is used, in the same backend
($rc, $o, $e) = session(
	join("\n",
		"SET sessmgr.geoip_database = '$dir/later.mmdb';",
		place_sql(q{'192.0.2.1'}) . ';',
		"\\! cp '$dir/sessmgr-test-City.mmdb' '$dir/later.mmdb'",
		'SELECT pg_sleep(1.2);',
		place_sql(q{'192.0.2.1'}) . ';'));
@rows = split /\n/, $o;
is($rows[0], '-|-|-|-|-|-|-|64496|Example Telecom Nigeria Ltd', 'a file missing at first: NULLs');
is($rows[2], $LAGOS, '... and its place once it is there');

# ---- privileges ----
$node->safe_psql('geo', 'CREATE ROLE app LOGIN; GRANT USAGE ON SCHEMA sessmgr TO app');
for my $setting (qw(geoip_database geoip_asn_database location_headers))
{
	($rc, $o, $e) = session("LOAD 'sessmgr'; SET ROLE app; SET sessmgr.$setting = 'cloudflare'");
	like($e, qr/permission denied to set parameter "sessmgr.$setting"/,
		"an application role cannot set sessmgr.$setting");
}
for my $f ('sessmgr.geolocate(NULL)', 'sessmgr.request_location(NULL)')
{
	($rc, $o, $e) = session("SET ROLE app; SELECT * FROM $f");
	like($e, qr/permission denied for function/, "$f is not for PUBLIC");
}

# ---- the location headers of a CDN ----
is($node->safe_psql('geo', q{LOAD 'sessmgr'; SHOW sessmgr.location_headers}),
	'', 'sessmgr.location_headers is empty by default');
like((session(q{LOAD 'sessmgr'; SET sessmgr.location_headers = 'akamai'}))[2],
	qr/invalid value for parameter "sessmgr.location_headers": "akamai"/,
	'an unknown CDN is refused');

# request_location($ip) under the settings, with request.headers = $headers (JSON)
sub located
{
	my (%a) = @_;
	my $sql = join("\n",
		"SET sessmgr.trusted_proxies = $a{proxies};",
		"SET sessmgr.location_headers = '$a{vendor}';",
		'SET request.headers = $h$' . $a{headers} . '$h$;',
		"SELECT $COLUMNS FROM sessmgr.request_location($a{ip});");
	my ($rc, $o, $e) = session($sql);
	is($rc, 0, 'request_location runs') or diag($e);
	is($e, '', '... silently') if $rc == 0;
	return $o;
}

my $cf_berlin = '{"cf-ipcountry": "DE", "cf-region": "Land Berlin", "cf-ipcity": "Berlin",
	"cf-iplatitude": "52.52000", "cf-iplongitude": "13.40500", "user-agent": "curl/8.4"}';
is(located(proxies => 0, vendor => 'cloudflare', ip => q{'192.0.2.1'}, headers => $cf_berlin),
	$LAGOS, 'trusted_proxies = 0: the headers are ignored, the database answers');
is(located(proxies => 1, vendor => '', ip => q{'192.0.2.1'}, headers => $cf_berlin),
	$LAGOS, 'location_headers empty: the headers are ignored');
is(located(proxies => 1, vendor => 'none', ip => q{'192.0.2.1'}, headers => $cf_berlin),
	$LAGOS, 'location_headers none: the same');
is(located(proxies => 1, vendor => 'cloudfront', ip => q{'192.0.2.1'}, headers => $cf_berlin),
	$LAGOS, "cloudfront: Cloudflare's headers are not read");
is(located(proxies => 0, vendor => 'cloudflare', ip => 'NULL', headers => $cf_berlin),
	$NONE, 'trusted_proxies = 0, no address: NULLs');

is(located(proxies => 1, vendor => 'cloudflare', ip => 'NULL', headers => $cf_berlin),
	'DE|-|Land Berlin|Berlin|52.52|13.405|-|-|-',
	'cloudflare, trusted: the place from the headers (no country name: Cloudflare sends none)');
is(located(proxies => 2, vendor => 'cloudflare', ip => q{'198.51.100.1'}, headers => $cf_berlin),
	'DE|Germany|Land Berlin|Berlin|52.52|13.405|-|64497|Beispiel Netz GmbH',
	'... with an address the database places in the same city: its country name and AS are added, '
	  . "the edge's coordinates kept (no accuracy radius with them)");
is(located(proxies => 1, vendor => 'cloudflare', ip => q{'192.0.2.1'}, headers => $cf_berlin),
	'DE|-|Land Berlin|Berlin|52.52|13.405|-|64496|Example Telecom Nigeria Ltd',
	'... the database disagrees (Lagos): the edge wins the place, the database adds only the AS');
is( located(
		proxies => 1, vendor => 'cloudflare', ip => q{'192.0.2.1'},
		headers => '{"cf-ipcountry": "NG"}'),
	$LAGOS, '... only a country, the same as the database: the database fills in the rest');
is( located(
		proxies => 1, vendor => 'cloudflare', ip => q{'203.0.113.1'},
		headers => '{"cf-ipcountry": "BR", "cf-ipcity": "Rio de Janeiro"}'),
	'BR|Brazil|-|Rio de Janeiro|-|-|-|64498|Exemplo Telecomunicações Ltda',
	'... the same country, another city: the country name only, no region or coordinates of another city');
is( located(
		proxies => 1, vendor => 'cloudflare', ip => q{'203.0.113.1'},
		headers => '{"cf-ipcountry": "BR", "cf-ipcity": "S\\\\u00c3\\\\u00a3o Paulo"}'),
	$SAO_PAULO,
	"... Cloudflare's \\u00XX encoding of UTF-8 (S\\u00c3\\u00a3o Paulo), the same city: filled in");
is( located(
		proxies => 1, vendor => 'cloudflare', ip => q{'192.0.2.1'},
		headers => '{"cf-ipcountry": "XX", "cf-ipcity": "Nowhere", "cf-iplatitude": "1", "cf-iplongitude": "1"}'),
	$LAGOS, '... XX (no country): the headers say nothing, the database answers');
is( located(
		proxies => 1, vendor => 'cloudflare', ip => q{'192.0.2.1'},
		headers => '{"cf-ipcountry": "T1", "cf-ipcity": "Nowhere"}'),
	$LAGOS, '... T1 (Tor): the same');

# the way issue_from_request calls it: the client address from X-Forwarded-For
is( located(
		proxies => 1, vendor => 'cloudflare', ip => 'sessmgr.request_ip()',
		headers => '{"x-forwarded-for": "192.0.2.80", "cf-ipcountry": "NG"}'),
	$LAGOS, 'request_location(sessmgr.request_ip()): the address of X-Forwarded-For');

my $cloudfront = '{"cloudfront-viewer-country": "BR", "cloudfront-viewer-country-name": "Brazil",
	"cloudfront-viewer-country-region": "SP", "cloudfront-viewer-country-region-name": "S%C3%A3o Paulo",
	"cloudfront-viewer-city": "S%C3%A3o Paulo", "cloudfront-viewer-latitude": "-23.55060",
	"cloudfront-viewer-longitude": "-46.63330", "cloudfront-viewer-asn": "28573"}';
is(located(proxies => 1, vendor => 'cloudfront', ip => 'NULL', headers => $cloudfront),
	'BR|Brazil|São Paulo|São Paulo|-23.5506|-46.6333|-|28573|-',
	'cloudfront: the place, country name, percent-decoded names and AS from the headers');
is(located(proxies => 1, vendor => 'cloudfront', ip => q{'203.0.113.1'}, headers => $cloudfront),
	'BR|Brazil|São Paulo|São Paulo|-23.5506|-46.6333|-|64498|Exemplo Telecomunicações Ltda',
	'... with the database: the ASN database wins the AS');
is( located(
		proxies => 1, vendor => 'cloudfront', ip => 'NULL',
		headers => '{"cloudfront-viewer-country": "BR", "cloudfront-viewer-country-region": "SP"}'),
	'BR|-|SP|-|-|-|-|-|-', '... without the region name: the region code');
is(located(proxies => 0, vendor => 'cloudfront', ip => 'NULL', headers => $cloudfront),
	$NONE, '... and nothing with trusted_proxies = 0');

# hostile values: each dropped on its own, never an error
my @hostile = (
	[ '{"cf-ipcountry": "de", "cf-ipcity": "Berlin"}', $NONE, 'a lower-case country' ],
	[ '{"cf-ipcountry": "DEU", "cf-ipcity": "Berlin"}', $NONE, 'a three-letter country' ],
	[ '{"cf-ipcountry": "ZZ", "cf-ipcity": "Berlin"}', $NONE, 'ZZ' ],
	[ '{"cf-ipcountry": 49, "cf-ipcity": "Berlin"}', $NONE, 'a number for the country' ],
	[ '{"cf-ipcountry": {"x": "DE"}}', $NONE, 'an object for the country' ],
	[ '{"cf-ipcountry": ["DE"]}', $NONE, 'an array for the country' ],
	[ '["cf-ipcountry", "DE"]', $NONE, 'an array for the headers' ],
	[ '{"cf-ipcountry": "DE"', $NONE, 'request.headers that are not JSON' ],
	[ '"DE"', $NONE, 'a JSON string for the headers' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "Berlin\\u0007"}', 'DE|-|-|-|-|-|-|-|-', 'a control character in the city' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "Berlin\\u202e"}', 'DE|-|-|-|-|-|-|-|-', 'a bidirectional override in the city' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "Berl\\u00e4n"}', 'DE|-|-|-|-|-|-|-|-', 'raw non-ASCII (not the vendor encoding)' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "' . ('B' x 5000) . '"}', 'DE|-|-|-|-|-|-|-|-', 'a 5000-byte city' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "   "}', 'DE|-|-|-|-|-|-|-|-', 'a blank city' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "S\\\\u00zzo"}', 'DE|-|-|-|-|-|-|-|-', 'a bad \\u00XX escape' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "S\\\\u00c3o"}', 'DE|-|-|-|-|-|-|-|-', 'invalid UTF-8 after decoding' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "S\\\\u0000o"}', 'DE|-|-|-|-|-|-|-|-', 'a NUL after decoding' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "\\\\u00c2\\\\u0085x"}', 'DE|-|-|-|-|-|-|-|-', 'a C1 control after decoding' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "x\\\\u00e2\\\\u0080\\\\u00ae"}', 'DE|-|-|-|-|-|-|-|-', 'a bidirectional override after decoding' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcity": "x\\\\u00e2\\\\u0080\\\\u00a8"}', 'DE|-|-|-|-|-|-|-|-', 'a line separator after decoding' ],
	[ '{"cf-ipcountry": "DE", "cf-iplatitude": "91", "cf-iplongitude": "13"}', 'DE|-|-|-|-|-|-|-|-', 'latitude 91' ],
	[ '{"cf-ipcountry": "DE", "cf-iplatitude": "52", "cf-iplongitude": "180.0001"}', 'DE|-|-|-|-|-|-|-|-', 'longitude 180.0001' ],
	[ '{"cf-ipcountry": "DE", "cf-iplatitude": "1e1", "cf-iplongitude": "13"}', 'DE|-|-|-|-|-|-|-|-', 'an exponent' ],
	[ '{"cf-ipcountry": "DE", "cf-iplatitude": "NaN", "cf-iplongitude": "13"}', 'DE|-|-|-|-|-|-|-|-', 'NaN' ],
	[ '{"cf-ipcountry": "DE", "cf-iplatitude": "0x10", "cf-iplongitude": "13"}', 'DE|-|-|-|-|-|-|-|-', 'hex' ],
	[ '{"cf-ipcountry": "DE", "cf-iplatitude": " 52", "cf-iplongitude": "13"}', 'DE|-|-|-|-|-|-|-|-', 'a space before a number' ],
	[ '{"cf-ipcountry": "DE", "cf-iplatitude": "52."}', 'DE|-|-|-|-|-|-|-|-', 'a latitude without a longitude' ],
	[ '{"cf-ipcountry": "DE", "cf-iplatitude": "0", "cf-iplongitude": "-180"}', 'DE|-|-|-|0|-180|-|-|-', 'the extremes are valid' ],
	[ '{"cf-ipcountry": "DE", "cf-ipcountry": "FR"}', 'DE|-|-|-|-|-|-|-|-', 'a repeated header: the first' ],
	[ '{"cf-ipcountry": "DE", "x": ' . ('[' x 20) . (']' x 20) . '}', $NONE, 'deep nesting' ],
	[ '{"cf-ipcountry": "DE", "pad": "' . ('p' x 300000) . '"}', $NONE, 'request.headers over 256 kB' ],
);
for my $h (@hostile)
{
	my ($headers, $want, $what) = @$h;
	is(located(proxies => 1, vendor => 'cloudflare', ip => 'NULL', headers => $headers),
		$want, "hostile header values, $what: $want");
}
my @hostile_cloudfront = (
	[ '"cloudfront-viewer-city": "S%ZZo"', 'a bad percent escape' ],
	[ '"cloudfront-viewer-city": "S%C3"', 'a truncated UTF-8 sequence' ],
	[ '"cloudfront-viewer-city": "S%"', 'a lone percent sign' ],
	[ '"cloudfront-viewer-city": "%00"', 'a NUL' ],
	[ '"cloudfront-viewer-asn": "0"', 'AS 0' ],
	[ '"cloudfront-viewer-asn": "4294967296"', 'an AS number over 32 bits' ],
	[ '"cloudfront-viewer-asn": "-5"', 'a negative AS number' ],
	[ '"cloudfront-viewer-asn": "12a"', 'an AS number with a letter' ],
);
for my $h (@hostile_cloudfront)
{
	my ($member, $what) = @$h;
	is( located(
			proxies => 1, vendor => 'cloudfront', ip => 'NULL',
			headers => qq({"cloudfront-viewer-country": "BR", $member})),
		'BR|-|-|-|-|-|-|-|-', "hostile CloudFront values, $what: dropped");
}

# in a LATIN1 database the decoded names are converted too
($rc, $o, $e) = session(
	join("\n",
		'SET sessmgr.trusted_proxies = 1;',
		q{SET sessmgr.location_headers = 'cloudfront';},
		'SET request.headers = $h$' . $cloudfront . '$h$;',
		"SELECT $COLUMNS FROM sessmgr.request_location(NULL);"),
	'geo_latin1');
is($o, 'BR|Brazil|São Paulo|São Paulo|-23.5506|-46.6333|-|28573|-',
	'a LATIN1 database gets the decoded header names converted');

$node->stop;
done_testing();

#!/usr/bin/perl
# test/make_geoip_db.pl: build small MaxMind DB files for the tests and the demo,
# with Debian's libmaxmind-db-writer-perl (MaxMind::DB::Writer::Tree); nothing is
# downloaded.
#
#   perl test/make_geoip_db.pl DIR
#
# writes, into DIR (each file written beside its final name, then renamed over it,
# the way geoipupdate replaces a database):
#
#   sessmgr-test-City.mmdb          GeoIP2-City layout (English names, plus one
#                                   other language, so that readers pick "en")
#   sessmgr-test-City-update.mmdb   the same, a "month later": 192.0.2.0/24 has
#                                   moved from Lagos to Nairobi
#   sessmgr-test-Country.mmdb       GeoIP2-Country layout (country only)
#   sessmgr-test-ASN.mmdb           GeoLite2-ASN layout
#
# The places are the documentation networks (RFC 5737, RFC 3849) placed in real
# cities, and documentation AS numbers (RFC 5398):
#
#   192.0.2.0/24        Lagos, Lagos, Nigeria (NG)                 AS64496
#   198.51.100.0/24     Berlin, Land Berlin, Germany (DE)          AS64497
#   203.0.113.0/24      São Paulo, São Paulo, Brazil (BR)          AS64498
#   2001:db8::/32       Sydney, New South Wales, Australia (AU)    AS65536
#   2001:db8:ffff::/48  Japan (JP), country only                   AS65536
#
# The City and ASN databases also place the private, loopback, link-local and
# shared address ranges (10.0.0.0/8, 127.0.0.0/8, fe80::/10, ...) in Berlin,
# AS64497: no real database does, and the tests prove with them that sessmgr
# never looks such an address up.
#
# These networks are reserved, and the writer silently drops reserved networks
# unless told not to (remove_reserved_networks => 0).  IPv4 networks live in
# the IPv6 tree at ::/96, with the usual aliases (::ffff:0:0/96, 2002::/16) like
# MaxMind's own databases.
use strict;
use warnings;
use utf8;

use File::Spec;
use MaxMind::DB::Writer::Tree;

die "usage: perl test/make_geoip_db.pl DIR\n" unless @ARGV == 1;
my $dir = $ARGV[0];
die "$dir is not a directory\n" unless -d $dir;

my %types = (
	accuracy_radius                => 'uint16',
	autonomous_system_number       => 'uint32',
	autonomous_system_organization => 'utf8_string',
	city                           => 'map',
	code                           => 'utf8_string',
	continent                      => 'map',
	country                        => 'map',
	geoname_id                     => 'uint32',
	iso_code                       => 'utf8_string',
	latitude                       => 'double',
	location                       => 'map',
	longitude                      => 'double',
	names                          => 'map',
	registered_country             => 'map',
	subdivisions                   => [ 'array', 'map' ],
	time_zone                      => 'utf8_string',
);

# every key not listed is a name in some language
sub key_type { return $types{ $_[0] } // 'utf8_string' }

my %continent = (
	AF => { code => 'AF', geoname_id => 6255146, names => { en => 'Africa',        de => 'Afrika' } },
	EU => { code => 'EU', geoname_id => 6255148, names => { en => 'Europe',        de => 'Europa' } },
	SA => { code => 'SA', geoname_id => 6255150, names => { en => 'South America', de => 'Südamerika' } },
	OC => { code => 'OC', geoname_id => 6255151, names => { en => 'Oceania',       de => 'Ozeanien' } },
	AS => { code => 'AS', geoname_id => 6255147, names => { en => 'Asia',          de => 'Asien' } },
);

my %country = (
	NG => { iso_code => 'NG', geoname_id => 2328926, names => { en => 'Nigeria',   de => 'Nigeria' } },
	DE => { iso_code => 'DE', geoname_id => 2921044, names => { en => 'Germany',   de => 'Deutschland' } },
	BR => { iso_code => 'BR', geoname_id => 3469034, names => { en => 'Brazil',    de => 'Brasilien' } },
	AU => { iso_code => 'AU', geoname_id => 2077456, names => { en => 'Australia', de => 'Australien' } },
	JP => { iso_code => 'JP', geoname_id => 1861060, names => { en => 'Japan',     de => 'Japan' } },
	KE => { iso_code => 'KE', geoname_id => 192950,  names => { en => 'Kenya',     de => 'Kenia' } },
);

# a city record of the GeoIP2-City layout
sub city_record
{
	my (%a) = @_;
	my $cc = $a{country};
	my %r = (
		continent          => $continent{ $a{continent} },
		country            => $country{$cc},
		registered_country => $country{$cc},
	);
	return \%r unless $a{city};
	$r{city} = { geoname_id => $a{city_id}, names => { en => $a{city}, de => $a{city_de} // $a{city} } };
	$r{subdivisions} = [
		{
			iso_code   => $a{region_code},
			geoname_id => $a{region_id},
			names      => { en => $a{region}, de => $a{region_de} // $a{region} }
		}
	];
	$r{location} = {
		accuracy_radius => $a{accuracy},
		latitude        => $a{lat},
		longitude       => $a{lon},
		time_zone       => $a{tz},
	};
	return \%r;
}

my %lagos = (
	continent   => 'AF', country => 'NG',
	city        => 'Lagos', city_id => 2332459,
	region      => 'Lagos', region_code => 'LA', region_id => 2332453,
	lat         => 6.4541, lon => 3.3947, accuracy => 50, tz => 'Africa/Lagos',
);
my %berlin = (
	continent   => 'EU', country => 'DE',
	city        => 'Berlin', city_id => 2950159,
	region      => 'Land Berlin', region_de => 'Berlin', region_code => 'BE', region_id => 2950157,
	lat         => 52.5244, lon => 13.4105, accuracy => 20, tz => 'Europe/Berlin',
);
my %sao_paulo = (
	continent   => 'SA', country => 'BR',
	city        => 'São Paulo', city_id => 3448439,
	region      => 'São Paulo', region_code => 'SP', region_id => 3448433,
	lat         => -23.5475, lon => -46.6361, accuracy => 20, tz => 'America/Sao_Paulo',
);
my %sydney = (
	continent   => 'OC', country => 'AU',
	city        => 'Sydney', city_id => 2147714,
	region      => 'New South Wales', region_de => 'Neusüdwales', region_code => 'NSW',
	region_id   => 2155400,
	lat         => -33.8688, lon => 151.2093, accuracy => 10, tz => 'Australia/Sydney',
);
my %nairobi = (
	continent   => 'AF', country => 'KE',
	city        => 'Nairobi', city_id => 184745,
	region      => 'Nairobi County', region_code => '30', region_id => 191199,
	lat         => -1.2841, lon => 36.8155, accuracy => 10, tz => 'Africa/Nairobi',
);
my %japan = (continent => 'AS', country => 'JP');

# the networks no address of which may ever be given a place
my @never = qw(0.0.0.0/8 10.0.0.0/8 100.64.0.0/10 127.0.0.0/8 169.254.0.0/16 172.16.0.0/12
  192.168.0.0/16 198.18.0.0/15 224.0.0.0/4 240.0.0.0/4 ::/128 ::1/128 fc00::/7 fe80::/10
  ff00::/8);

my %asn = (
	'192.0.2.0/24'       => [ 64496, 'Example Telecom Nigeria Ltd' ],
	'198.51.100.0/24'    => [ 64497, 'Beispiel Netz GmbH' ],
	'203.0.113.0/24'     => [ 64498, 'Exemplo Telecomunicações Ltda' ],
	'2001:db8::/32'      => [ 65536, 'Example Broadband Pty Ltd' ],
);
$asn{$_} = $asn{'198.51.100.0/24'} for @never;

# Write one database: type, description, then network => record pairs in
# insertion order (a more specific network after the one holding it).
sub write_db
{
	my ($file, $type, $description, @networks) = @_;
	my $tree = MaxMind::DB::Writer::Tree->new(
		ip_version               => 6,
		record_size              => 24,
		database_type            => $type,
		languages                => [ 'en', 'de' ],
		description              => { en => $description },
		map_key_type_callback    => \&key_type,
		remove_reserved_networks => 0,
		alias_ipv6_to_ipv4       => 1,
	);
	while (my ($network, $record) = splice(@networks, 0, 2))
	{
		$tree->insert_network($network, $record);
	}
	my $path = File::Spec->catfile($dir, $file);
	my $tmp  = "$path.tmp.$$";
	open(my $fh, '>:raw', $tmp) or die "$tmp: $!\n";
	$tree->write_tree($fh);
	close($fh) or die "$tmp: $!\n";
	rename($tmp, $path) or die "rename $tmp to $path: $!\n";
	print "wrote $path\n";
	return;
}

sub country_only
{
	my ($r) = @_;
	my %c = %$r;
	delete @c{qw(city subdivisions location)};
	return \%c;
}

my @city = (
	(map { $_ => city_record(%berlin) } @never),
	'192.0.2.0/24'       => city_record(%lagos),
	'198.51.100.0/24'    => city_record(%berlin),
	'203.0.113.0/24'     => city_record(%sao_paulo),
	'2001:db8::/32'      => city_record(%sydney),
	'2001:db8:ffff::/48' => city_record(%japan),
);
write_db('sessmgr-test-City.mmdb', 'GeoIP2-City', 'sessmgr test City database', @city);

my @update = @city;
$update[ 2 * @never + 1 ] = city_record(%nairobi);
write_db('sessmgr-test-City-update.mmdb', 'GeoIP2-City',
	'sessmgr test City database, next month', @update);

my @countries = @city;
$countries[$_] = country_only($countries[$_]) for grep { $_ % 2 } 0 .. $#countries;
write_db('sessmgr-test-Country.mmdb', 'GeoIP2-Country', 'sessmgr test Country database',
	@countries);

write_db(
	'sessmgr-test-ASN.mmdb', 'GeoLite2-ASN', 'sessmgr test ASN database',
	map {
		$_ => {
			autonomous_system_number       => $asn{$_}[0],
			autonomous_system_organization => $asn{$_}[1]
		}
	} (@never, sort keys %asn));

# test/t/060_user_agents.pl: every case of uap-core's own test suites (the
# Debian package uap-core: tests/test_ua.yaml, test_os.yaml, test_device.yaml)
# gives uap-core's answer.
#
# The suites name fields parse_user_agent does not return (separate version
# parts, device brand and model), so uap-core's answer is read through the
# library's test entry point sessmgr_uap_parts (created here, not part of the
# extension); parse_user_agent's own browser, os and device columns and
# joined versions are checked against the same cases.  The YAML is read with
# YAML::XS (libyaml-libyaml-perl), loaded with one COPY and compared in bulk,
# one query per suite.  The prefilter (expressions skipped when their
# literals are missing) is checked to change nothing: every test_ua and
# test_os string and every 8th test_device string parse the same with every
# expression tried.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use YAML::XS ();

my $tests = $ENV{UAP_CORE_TESTS} // '/usr/share/uap-core/tests';
my %fields = (
	test_ua => [qw(family major minor patch)],
	test_os => [qw(family major minor patch patch_minor)],
	test_device => [qw(family brand model)],
);
# where each suite's fields are in sessmgr_uap_parts' array (1-based)
my %first = (test_ua => 1, test_os => 5, test_device => 10);

for my $suite (sort keys %fields)
{
	BAIL_OUT("$tests/$suite.yaml is missing: install the Debian package uap-core")
	  unless -r "$tests/$suite.yaml";
}

my $node = PostgreSQL::Test::Cluster->new('useragents');
$node->init;
$node->start;
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION sessmgr;
	CREATE FUNCTION uap_parts(text, boolean DEFAULT true) RETURNS text[]
		AS '$libdir/sessmgr', 'sessmgr_uap_parts' LANGUAGE C STRICT;
	CREATE TABLE cases (suite text, n int, ua text, f text[]);
});

# COPY's text format: backslash, tab, newline and carriage return escaped, \N for NULL
sub copy_value
{
	my ($v) = @_;
	return '\N' unless defined $v;
	$v =~ s/\\/\\\\/g;
	$v =~ s/\t/\\t/g;
	$v =~ s/\n/\\n/g;
	$v =~ s/\r/\\r/g;
	return $v;
}

# an array literal of the expected fields (NULL elements for missing ones)
sub array_value
{
	my @parts = map {
		my $v = $_;
		if (defined $v)
		{
			$v =~ s/(["\\])/\\$1/g;
			qq{"$v"};
		}
		else { 'NULL' }
	} @_;
	return '{' . join(',', @parts) . '}';
}

my %count;
my $copy = "COPY cases FROM stdin;\n";
for my $suite (sort keys %fields)
{
	my $doc = YAML::XS::LoadFile("$tests/$suite.yaml");
	my $n = 0;
	for my $case (@{ $doc->{test_cases} })
	{
		my @expected = map { $case->{$_} } @{ $fields{$suite} };
		$copy .= join("\t",
			$suite, ++$n,
			copy_value($case->{user_agent_string}),
			copy_value(array_value(@expected)))
		  . "\n";
	}
	$count{$suite} = $n;
}
$copy .= "\\.\n";
$node->safe_psql('postgres', $copy);
is( $node->safe_psql('postgres', 'SELECT count(*) FROM cases'),
	$count{test_ua} + $count{test_os} + $count{test_device},
	"all cases loaded ($count{test_ua} + $count{test_os} + $count{test_device})");

for my $suite (sort keys %fields)
{
	my $nfields = scalar @{ $fields{$suite} };
	my $from = $first{$suite};
	my $to = $from + $nfields - 1;
	my $started = time;
	my $result = $node->safe_psql(
		'postgres', qq{
		CREATE TABLE got_$suite AS
			SELECT n, ua, f, (uap_parts(ua))[$from:$to] AS g FROM cases WHERE suite = '$suite';
		SELECT count(*) FILTER (WHERE f IS NOT DISTINCT FROM g) || '/' || count(*) FROM got_$suite;
	});
	my $seconds = time - $started;
	is($result, "$count{$suite}/$count{$suite}",
		sprintf("$suite.yaml: uap-core's answer for every case (%.2f s)", $seconds));
	my $failures = $node->safe_psql(
		'postgres', qq{
		SELECT string_agg(format('case %s: %s expected %s got %s', n, ua, f, g), E'\n' ORDER BY n)
		  FROM (SELECT * FROM got_$suite WHERE f IS DISTINCT FROM g ORDER BY n LIMIT 20) x
	});
	diag($failures) if $failures ne '';
}

# parse_user_agent's columns give the same families, and the version parts
# joined with dots up to the first missing one
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM cases c, sessmgr.parse_user_agent(c.ua) p
	 WHERE CASE c.suite
	       WHEN 'test_ua' THEN
	           p.browser IS DISTINCT FROM c.f[1] OR p.browser_version IS DISTINCT FROM
	             nullif(concat_ws('.', c.f[2], CASE WHEN c.f[2] <> '' THEN c.f[3] END,
	                              CASE WHEN c.f[2] <> '' AND c.f[3] <> '' THEN c.f[4] END), '')
	       WHEN 'test_os' THEN
	           p.os IS DISTINCT FROM c.f[1] OR p.os_version IS DISTINCT FROM
	             nullif(concat_ws('.', c.f[2], CASE WHEN c.f[2] <> '' THEN c.f[3] END,
	                              CASE WHEN c.f[2] <> '' AND c.f[3] <> '' THEN c.f[4] END,
	                              CASE WHEN c.f[2] <> '' AND c.f[3] <> '' AND c.f[4] <> ''
	                                   THEN c.f[5] END), '')
	       ELSE p.device IS DISTINCT FROM c.f[1]
	       END}),
	'0',
	'parse_user_agent: browser, os, device and joined versions as uap-core says');

# the prefilter only skips expressions that cannot match
my $started = time;
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM cases
	 WHERE (suite <> 'test_device' OR n % 8 = 0)
	   AND uap_parts(ua, false) IS DISTINCT FROM uap_parts(ua, true)}),
	'0',
	sprintf('the prefilter changes no answer (%.2f s with every expression tried)',
		time - $started));

$node->stop;
done_testing();

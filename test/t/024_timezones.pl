# test/t/024_timezones.pl: results do not depend on TimeZone or on DST.
#
# Every sessmgr timestamp is a timestamptz and every timeout an exact
# duration, so validation, listing, issuance and access tokens must give the
# same answers (compared as epoch values) under TimeZone 'UTC',
# 'Pacific/Chatham' (+12:45/+13:45) and a zone with a DST change inside the
# windows that matter.
#
# now() cannot be moved, and Chatham changes its clocks only in April and
# September, so the DST case uses a POSIX zone with Chatham's offsets whose
# clocks go forward 3 days ago and back in 10 days, whatever the date:
#   - remembered sessions (7-day idle) created 8 days ago whose last activity
#     puts the idle deadline between 90 minutes before and 90 minutes after
#     now, across the spring-forward (a 23-hour local day);
#   - remembered sessions issued now, whose 30-day lifetime spans the
#     fall-back.
# Control checks show that calendar-day arithmetic in that zone would move
# those deadlines by an hour, so the test would notice such a bug.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tz');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

# Day of year as POSIX "Jn" counts it (1..365, February 29 never counted).
sub julian_day
{
	my ($t) = @_;
	my (undef, undef, undef, $mday, $mon) = gmtime $t;
	my @before = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334);
	return $before[$mon] + ($mon == 1 && $mday == 29 ? 28 : $mday);
}
my $now = $node->safe_psql('postgres', 'SELECT extract(epoch FROM now())::bigint');
my $dst_start = julian_day($now - 3 * 86400);
my $dst_end = julian_day($now + 10 * 86400);
my $shifting = "CHAST-12:45CHADT,J$dst_start/2:45,J$dst_end/3:45";
my @zones = ('UTC', 'Pacific/Chatham', $shifting);

# The shifting zone really changes its clocks inside both windows.
is($node->safe_psql('postgres', qq{
	SET TimeZone = '$shifting';
	SELECT extract(timezone FROM now() - interval '7 days')::int / 60,
	       extract(timezone FROM now())::int / 60,
	       extract(timezone FROM now() + interval '30 days')::int / 60}),
	'765|825|765', "$shifting: +12:45 a week ago, +13:45 now, +12:45 in 30 days");

# Remembered sessions created 8 days ago, idle deadline now + delta minutes,
# minted in SQL (token = sessmgr_ || base64url(id || secret), hash = SHA-256 of both).
my @deltas = (-90, -61, -59, -30, -1, 1, 30, 59, 61, 90);
my %minted;
for my $i (0 .. $#deltas)
{
	my $delta = $deltas[$i];
	my ($sid, $token) = split /\|/, $node->safe_psql('postgres', qq{
		WITH k AS (SELECT gen_random_uuid() AS id, sha256(convert_to('secret $i ' || random(), 'UTF8')) AS secret),
		     b AS (SELECT id, secret, decode(replace(id::text, '-', ''), 'hex') || secret AS raw FROM k),
		     ins AS (
		INSERT INTO sessmgr.sessions (id, token_hash, user_id, created_at, last_active_at,
		                              expires_at, idle_timeout, remember, device_name)
		SELECT id, sha256(raw), 'tess', now() - interval '8 days',
		       now() - interval '168 hours' + interval '$delta minutes',
		       now() - interval '8 days' + interval '720 hours', interval '168 hours', true,
		       'delta $delta'
		  FROM b RETURNING id)
		SELECT ins.id, 'sessmgr_' || rtrim(translate(encode(b.raw, 'base64'), E'+/\\n', '-_'), '=')
		  FROM ins JOIN b USING (id)});
	$minted{$delta} = { sid => $sid, token => $token };
}

# The control: in the shifting zone, adding 7 calendar days to the last
# activity lands an hour earlier than 168 hours, which would flip the
# sessions between 0 and 60 minutes.
is($node->safe_psql('postgres', qq{
	SET TimeZone = '$shifting';
	SELECT string_agg(d::text, ',' ORDER BY d)
	  FROM unnest(ARRAY[@{[ join ',', @deltas ]}]) d
	 WHERE (now() - interval '168 hours' + d * interval '1 minute' + interval '7 days' > now())
	       <> (d > 0)}),
	'1,30,59', 'control: calendar-day arithmetic in the shifting zone would misjudge deltas 1, 30, 59');
is($node->safe_psql('postgres', qq{
	SET TimeZone = '$shifting';
	SELECT extract(epoch FROM (now() + interval '30 days') - (now() + interval '720 hours'))::int}),
	'3600', 'control: 30 calendar days from now in the shifting zone are 721 hours');

my $tokens_array = join ',', map { "'$minted{$_}{token}'" } @deltas;

# Everything sessmgr answers about the sessions, as epoch values, under one zone.
sub answers
{
	my ($zone) = @_;
	my $tx = sub {
		my ($sql) = @_;
		return $node->safe_psql('postgres',
			"SET TimeZone = '$zone'; BEGIN READ ONLY; $sql; COMMIT;");
	};
	my %a;
	$a{validate} = $tx->(qq{
		SELECT string_agg(coalesce(v.session_id::text, '-') || ' '
		                  || coalesce(extract(epoch FROM v.expires_at)::text, '-'), E'\\n' ORDER BY o)
		  FROM unnest(ARRAY[$tokens_array]) WITH ORDINALITY AS t(tok, o)
		  LEFT JOIN LATERAL sessmgr.validate(t.tok) v ON true});
	$a{authenticate} = $tx->(qq{
		SELECT string_agg(coalesce(sessmgr.authenticate(t.tok), '-'), ',' ORDER BY o)
		  FROM unnest(ARRAY[$tokens_array]) WITH ORDINALITY AS t(tok, o)});
	$a{list_sessions} = $tx->(q{
		SELECT string_agg(concat_ws(' ', id, device_name, extract(epoch FROM created_at),
		                            extract(epoch FROM last_active_at), extract(epoch FROM expires_at),
		                            is_current, is_remembered), E'\n')
		  FROM sessmgr.list_sessions('tess')});
	$a{active_sessions} = $tx->(q{
		SELECT string_agg(id || ' ' || extract(epoch FROM expires_at), E'\n' ORDER BY id)
		  FROM sessmgr.active_sessions WHERE user_id = 'tess'});

	# issuance under this zone: lifetimes and the access token's exp - iat
	$a{issue} = $node->safe_psql('postgres', qq{
		SET TimeZone = '$zone';
		CREATE TEMP TABLE issued AS
		SELECT r, s.* FROM unnest(ARRAY[false, true]) r,
		       LATERAL sessmgr.issue('zoe', 'tz test', remember => r) s;
		SELECT string_agg(concat_ws(' ', i.r,
		           extract(epoch FROM x.idle_timeout),
		           extract(epoch FROM x.expires_at - x.created_at),
		           extract(epoch FROM i.expires_at - x.created_at),
		           (c ->> 'exp')::bigint - (c ->> 'iat')::bigint), ',' ORDER BY i.r)
		  FROM issued i
		  JOIN sessmgr.sessions x ON x.id = i.session_id,
		       LATERAL sessmgr.verify_access_token(i.access_token) c});
	return \%a;
}

my %by_zone = map { $_ => answers($_) } @zones;
my $utc = $by_zone{UTC};

# Under UTC: the sessions whose idle deadline is past are invalid, the others valid.
my @valid = map { $minted{$_}{sid} } grep { $_ > 0 } @deltas;
my @seen = grep { $_ ne '-' } map { (split / /)[0] } split /\n/, $utc->{validate};
is_deeply(\@seen, \@valid, 'UTC: valid exactly when the idle deadline (168 h after activity) is ahead');
is($utc->{authenticate}, join(',', map { $_ > 0 ? 'tess' : '-' } @deltas),
	'UTC: authenticate agrees');
is(scalar(split /\n/, $utc->{list_sessions}), scalar @valid,
	'UTC: list_sessions lists exactly the live sessions');
is($utc->{issue}, 'f 3600.000000 86400.000000 86400.000000 900,t 604800.000000 2592000.000000 2592000.000000 900',
	'UTC: lifetimes at issuance are exact (idle 1 h, 1 d; remembered 7 d, 30 d; access token 15 min)');

for my $zone (grep { $_ ne 'UTC' } @zones)
{
	for my $what (sort keys %$utc)
	{
		is($by_zone{$zone}{$what}, $utc->{$what}, "$zone: $what identical to UTC");
	}
}

$node->stop;
done_testing();

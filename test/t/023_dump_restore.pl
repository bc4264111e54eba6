# test/t/023_dump_restore.pl: pg_dump / pg_restore of a database using sessmgr.
#
# The source database has live sessions (more per user than the default cap,
# allowed by a database-level setting that a dump without --create does not
# carry), remembered ones, revoked ones, a cap eviction, refresh rotations
# (retired token hashes), two signing keys and the audit trail.  It is dumped
# with pg_dump -Fc and restored into fresh databases three ways:
#
#   sections  pg_restore --section=pre-data, then --data-only --disable-triggers,
#             then --section=post-data
#   replica   pg_restore with session_replication_role = replica
#   plain     pg_restore -d (the obvious way)
#
# A restore must give back the same tables row for row (events not doubled,
# counters and ids unchanged, nothing evicted), tokens issued before the dump
# must validate, access tokens must verify with the same keys, revoked
# sessions must stay revoked, and the dump must hold no raw token.
#
# COPY fires the extension's triggers; the cap and the audit trail skip rows
# that arrive by COPY (restored history, not new sessions), so all three ways
# are checked strictly.
use strict;
use warnings;

use DBI;
use MIME::Base64 qw(decode_base64url);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE DATABASE src;
	ALTER DATABASE src SET sessmgr.max_sessions = 20});

# One query over a kept connection, its rows as psql -At prints them (psql
# processes are slow to start on a busy machine).
my %dbh;
sub query
{
	my ($db, $sql) = @_;
	$dbh{$db} //= DBI->connect('dbi:Pg:dbname=' . $db . ';host=' . $node->host . ';port=' . $node->port,
		'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0, pg_bool_tf => 1 });
	my $sth = $dbh{$db}->prepare($sql);
	$sth->execute;
	return '' unless $sth->{NUM_OF_FIELDS};
	my $rows = $sth->fetchall_arrayref;
	return join "\n", map { join '|', map { $_ // '' } @$_ } @$rows;
}
sub src { return query('src', $_[0]); }

src('CREATE EXTENSION sessmgr');

# token => what it must do after the restore: 'valid' or 'invalid'
my %tokens;
my %jwts;    # access token => 'valid' or 'invalid'

# alice: 20 live sessions, the default cap being 15; every other one remembered
for (split /\n/, src(q{
	SELECT s.token || '|' || s.access_token
	  FROM generate_series(1, 20) i,
	       LATERAL sessmgr.issue('alice', 'device ' || i, remember => i % 2 = 0) s}))
{
	my ($tok, $jwt) = split /\|/;
	$tokens{$tok} = 'valid';
	$jwts{$jwt} = 'valid';
}

# bob: two sessions, both revoked
for my $i (1 .. 2)
{
	my ($tok, $jwt) = split /\|/, src(
		"SELECT token, access_token FROM sessmgr.issue('bob', 'device $i')");
	$tokens{$tok} = 'invalid';
	$jwts{$jwt} = 'invalid';
}
src("SELECT sessmgr.revoke_all('bob')");

# a second signing key: access tokens from here on are signed with it
src('SELECT sessmgr.rotate_signing_key()');

# carol: one session refreshed three times (a previous token and two retired
# ones); the access tokens of all of them verify until they expire
my ($ctok) = src("SELECT token FROM sessmgr.issue('carol', 'laptop')");
$tokens{$ctok} = 'invalid';
for my $round (1 .. 3)
{
	my ($status, $tok, $jwt) = split /\|/, src(
		"SELECT status, token, access_token FROM sessmgr.refresh('$ctok')");
	die "refresh: $status" unless $status eq 'ok';
	$tokens{$tok} = 'invalid';
	$ctok = $tok;
	$jwts{$jwt} = 'valid';
}
$tokens{$ctok} = 'valid';

# dave: 21 issued under a cap of 20, so the first was evicted
my @dave = split /\n/, src(q{
	SELECT s.token FROM generate_series(1, 21) i,
	       LATERAL sessmgr.issue('dave', 'device ' || i) s ORDER BY i});
$tokens{ $dave[$_] } = $_ == 0 ? 'invalid' : 'valid' for 0 .. $#dave;

is(src(q{SELECT string_agg(event || ' ' || n, ', ' ORDER BY event)
            FROM (SELECT event, count(*) n FROM sessmgr.session_events GROUP BY 1) e}),
	'evict 1, issue 44, revoke 2', 'the source has 44 issue, 2 revoke and 1 evict events');
is(src('SELECT count(*) FROM sessmgr.retired_tokens'), '2', 'the source has retired token hashes');
is(src('SELECT count(*) FROM sessmgr.signing_keys'), '2', 'the source has two signing keys');

# The tables as text, to compare row for row.
my %table_sql = (
	sessions => 'SELECT string_agg(t::text, E\'\n\' ORDER BY t.id) FROM sessmgr.sessions t',
	session_events =>
	  'SELECT string_agg(t::text, E\'\n\' ORDER BY t.id) FROM sessmgr.session_events t',
	session_owners =>
	  'SELECT string_agg(t::text, E\'\n\' ORDER BY t.user_id) FROM sessmgr.session_owners t',
	retired_tokens =>
	  'SELECT string_agg(t::text, E\'\n\' ORDER BY t.token_hash) FROM sessmgr.retired_tokens t',
	signing_keys =>
	  'SELECT string_agg(t::text, E\'\n\' ORDER BY t.kid) FROM sessmgr.signing_keys t',
	event_sequence => 'SELECT last_value FROM sessmgr.session_events_id_seq',);
my %source = map { $_ => src($table_sql{$_}) } keys %table_sql;
my @source_kids = split /\n/, src('SELECT kid FROM sessmgr.signing_keys ORDER BY kid');

# --- the dump ------------------------------------------------------------------------

my $dir = PostgreSQL::Test::Utils::tempdir;
my $dump = "$dir/src.dump";
my $dump_at = src('SELECT clock_timestamp()');
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ],
	'pg_dump -Fc of the source database');
my ($script, $stderr) = run_command([ 'pg_restore', '-f', '-', $dump ]);
like($script, qr/COPY sessmgr\.sessions /, 'the dump holds the sessions');

# No raw token: neither the token text, nor its secret (base64url characters
# 23 onwards carry secret bits only), nor the secret as hex (bytea output).
my @leaks;
for my $tok (keys %tokens)
{
	my $body = substr($tok, length 'sessmgr_');
	my $secret_hex = unpack 'H*', substr(decode_base64url($body), 16);
	push @leaks, 'token' if index($script, $body) >= 0;
	push @leaks, 'secret (base64url)' if index($script, substr($body, 22)) >= 0;
	push @leaks, 'secret (hex)' if index($script, $secret_hex) >= 0;
}
for my $jwt (keys %jwts)
{
	push @leaks, 'access token signature' if index($script, (split /\./, $jwt)[2]) >= 0;
}
is_deeply(\@leaks, [], 'the dump holds no raw token, token secret or access token ('
	  . scalar(keys %tokens) . ' tokens checked)');
my @key_hex = split /\n/, src(q{SELECT encode(secret, 'hex') FROM sessmgr.signing_keys});
is(scalar(grep { index($script, $_) >= 0 } @key_hex), scalar @key_hex,
	'the dump does hold the signing keys: dumps are secrets');

# --- the restores ----------------------------------------------------------------------

my %restore = (
	sections => sub {
		my ($db) = @_;
		my $ok = 1;
		for my $step ([ '--section=pre-data' ], [ '--data-only', '--disable-triggers' ],
			[ '--section=post-data' ])
		{
			$ok &&= run_log([ 'pg_restore', @$step, '-d', $node->connstr($db), $dump ]);
		}
		return $ok;
	},
	replica => sub {
		my ($db) = @_;
		local $ENV{PGOPTIONS} = '-c session_replication_role=replica';
		return run_log([ 'pg_restore', '-d', $node->connstr($db), $dump ]);
	},
	plain => sub {
		my ($db) = @_;
		return run_log([ 'pg_restore', '-d', $node->connstr($db), $dump ]);
	},);

for my $how (qw(sections replica plain))
{
	my $db = "dst_$how";
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	my $ok = $restore{$how}->($db);
	my $dst = sub { return query($db, $_[0]); };

	# Report what the restore really did before judging it.
	note("$how: pg_restore " . ($ok ? 'succeeded' : 'reported errors') . '; '
		  . $dst->(qq{
			SELECT format('%s sessions (%s revoked, %s with reason cap), %s events '
			              || '(%s issue, %s revoke, %s evict; %s written by the restore), %s owners, %s keys',
			       (SELECT count(*) FROM sessmgr.sessions),
			       (SELECT count(*) FROM sessmgr.sessions WHERE revoked_at IS NOT NULL),
			       (SELECT count(*) FROM sessmgr.sessions WHERE revoke_reason = 'cap'),
			       count(*), count(*) FILTER (WHERE event = 'issue'),
			       count(*) FILTER (WHERE event = 'revoke'),
			       count(*) FILTER (WHERE event = 'evict'),
			       count(*) FILTER (WHERE occurred_at > '$dump_at'),
			       (SELECT count(*) FROM sessmgr.session_owners),
			       (SELECT count(*) FROM sessmgr.signing_keys))
			  FROM sessmgr.session_events}));

	{
		ok($ok, "$how: pg_restore reports no error");
		for my $t (qw(sessions session_events session_owners))
		{
			ok($dst->($table_sql{$t}) eq $source{$t}, "$how: $t restored row for row");
		}
		is($dst->("SELECT count(*) FROM sessmgr.session_events WHERE occurred_at > '$dump_at'"),
			'0', "$how: the restore wrote no event");
	}
	is($dst->($table_sql{event_sequence}), $source{event_sequence},
		"$how: the event id sequence is restored");
	is($dst->(q{SELECT count(*) FROM (SELECT session_id FROM sessmgr.session_events
	                                    WHERE event = 'issue' GROUP BY 1 HAVING count(*) > 1) d}),
		'0', "$how: no session has two issue events");
	is($dst->($table_sql{retired_tokens}), $source{retired_tokens},
		"$how: retired_tokens restored row for row");
	my @kids = split /\n/, $dst->('SELECT kid FROM sessmgr.signing_keys ORDER BY kid');
	my %have = map { $_ => 1 } @kids;
	is(scalar(grep { $have{$_} } @source_kids), scalar @source_kids,
		"$how: every signing key of the source was restored");

	# all tokens in one query each: "token|1" when valid
	my $tok_list = join ',', map { "'$_'" } sort keys %tokens;
	my $jwt_list = join ',', map { "'$_'" } sort keys %jwts;
	my %tok_is = map { split /\|/ } split /\n/, $dst->(qq{
		SELECT t, (SELECT count(*) FROM sessmgr.validate(t))
		  FROM unnest(ARRAY[$tok_list]) t});
	my %jwt_is = map { split /\|/ } split /\n/, $dst->(qq{
		SELECT t, (sessmgr.verify_access_token(t) IS NOT NULL)::int
		  FROM unnest(ARRAY[$jwt_list]) t});
	my (%bad_tok, %bad_jwt);
	for my $tok (keys %tokens)
	{
		my $is = $tok_is{$tok} ? 'valid' : 'invalid';
		push @{ $bad_tok{ $tokens{$tok} } }, $tok if $is ne $tokens{$tok};
	}
	for my $jwt (keys %jwts)
	{
		my $is = $jwt_is{$jwt} ? 'valid' : 'invalid';
		push @{ $bad_jwt{ $jwts{$jwt} } }, $jwt if $is ne $jwts{$jwt};
	}
	is(scalar @{ $bad_tok{invalid} // [] }, 0,
		"$how: revoked, evicted and rotated-out tokens stay invalid");
	{
		is(scalar @{ $bad_tok{valid} // [] }, 0, "$how: every live token validates");
		is(scalar @{ $bad_jwt{valid} // [] }, 0,
			"$how: every access token of a live session verifies (both keys)");
	}
	is(scalar @{ $bad_jwt{invalid} // [] }, 0, "$how: access tokens of revoked sessions do not verify");

	# The restored database keeps working: a new session gets the next event id.
	my ($rc, $out, $err) = (0, '', '');
	{
		$rc = $node->psql($db,
			"SELECT token || '|' || access_token FROM sessmgr.issue('erin', 'after restore')",
			stdout => \$out, stderr => \$err);
		ok($rc == 0 && $out =~ /^sessmgr_/, "$how: a session can be issued after the restore")
		  or note("issue after the restore: $err");
	}
	if ($rc == 0 && $out =~ /^sessmgr_/)
	{
		my ($new_tok, $new_jwt) = split /\|/, $out;
		is($dst->("SELECT user_id FROM sessmgr.validate('$new_tok')"), 'erin',
			"$how: a session issued after the restore validates");
		my ($kid) = decode_base64url((split /\./, $new_jwt)[0]) =~ /"kid":"([^"]+)"/;
		# the key CREATE EXTENSION made in the new database signs "from the
		# beginning", so the restored current key keeps signing: PostgREST's
		# jwt-secret needs no change after a restore
		ok((grep { $_ eq $kid } @source_kids),
			"$how: new access tokens are signed with the source's current key");
		note("$how: " . scalar(@kids) . " signing keys after the restore; new access tokens are signed with kid $kid");
	}
}

$_->disconnect for values %dbh;
$node->stop;
done_testing();

# test/t/020_standby.pl: sessmgr on a streaming hot standby.
#
# Validation, authentication, access-token verification and the PostgREST
# pre-request check work on a hot standby without an error and without
# writing (the primary's last_active_at does not move because of standby
# traffic); a revocation committed on the primary makes the token invalid on
# the standby once replayed, and a refresh (or issuance) is unknown there
# until replayed.  Measures the replay window (COMMIT returned on the
# primary -> token invalid on the standby) with the default
# synchronous_commit, and shows that synchronous_commit = remote_apply closes
# it for revocations and issuance.  Timings are reported with note(), never
# asserted.
use strict;
use warnings;

use DBI;
use MIME::Base64 qw(decode_base64url);
use Time::HiRes qw(time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $ROUNDS = 200;   # revocations measured per mode

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

# A session that validation on the primary would touch (activity 10 minutes
# old, touch interval 1 minute), and a second one as the positive control.
my ($sid, $token, $jwt) = split /\|/, $primary->safe_psql('postgres',
	"SELECT session_id, token, access_token FROM sessmgr.issue('alice', 'laptop')");
my ($ctl_sid, $ctl_token) = split /\|/, $primary->safe_psql('postgres',
	"SELECT session_id, token FROM sessmgr.issue('carol', 'phone')");
$primary->safe_psql('postgres', q{
	UPDATE sessmgr.sessions SET last_active_at = now() - interval '10 minutes'
	 WHERE user_id IN ('alice', 'carol')});

# Sessions revoked one by one for the replay-window measurement.
$primary->safe_psql('postgres', qq{
	SET sessmgr.max_sessions = 10000;
	CREATE TABLE rounds AS
	SELECT i, s.session_id, s.token
	  FROM generate_series(1, 2 * $ROUNDS) i,
	       LATERAL sessmgr.issue('bulk' || i) s});

$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby, 'replay');

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'the standby is in recovery');

my $last_active_sql =
  "SELECT extract(epoch FROM last_active_at) FROM sessmgr.sessions WHERE id = '%s'";
my $before = $primary->safe_psql('postgres', sprintf($last_active_sql, $sid));

# --- reads on the standby -------------------------------------------------

# Run SQL on the standby; return (exit code, stdout, stderr).
sub on_standby
{
	my ($sql) = @_;
	my ($out, $err);
	my $rc = $standby->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
	return ($rc, $out, $err);
}

my ($rc, $out, $err) = on_standby("SELECT user_id FROM sessmgr.validate('$token')");
is($rc, 0, 'validate runs on the standby');
is($out, 'alice', 'validate on the standby finds the session');
is($err, '', 'validate on the standby: no error or warning');

($rc, $out, $err) = on_standby(
	"BEGIN; SELECT sessmgr.authenticate('$token'), sessmgr.current_user_id(); COMMIT;");
is($rc, 0, 'authenticate runs on the standby');
is($out, 'alice|alice', 'authenticate on the standby sets the identity');
is($err, '', 'authenticate on the standby: no error or warning');

# step-up's read side: the freshness the authenticate probe captured
($rc, $out, $err) = on_standby(
	"BEGIN; SELECT sessmgr.authenticate('$token') IS NOT NULL, sessmgr.current_aal(),"
	  . " sessmgr.is_fresh('10 min'), sessmgr.is_fresh('10 min', 2),"
	  . " sessmgr.auth_age() < interval '10 min'; COMMIT;");
is($rc, 0, 'current_aal and is_fresh run on the standby');
is($out, 't|1|t|f|t', 'on the standby: level 1, fresh for one factor, not for two');
is($err, '', 'step-up checks on the standby: no error or warning');

($rc, $out, $err) = on_standby(
	"SELECT sessmgr.verify_access_token('$jwt') ->> 'sid'");
is($rc, 0, 'verify_access_token runs on the standby');
is($out, $sid, 'verify_access_token on the standby accepts the access token');
is($err, '', 'verify_access_token on the standby: no error or warning');

my $claims = decode_base64url((split /\./, $jwt)[1]);
$claims =~ s/'/''/g;
($rc, $out, $err) = on_standby(qq{
	BEGIN READ ONLY;
	SELECT set_config('request.jwt.claims', '$claims', true) IS NOT NULL
	   AND set_config('request.headers', '{"authorization": "Bearer $jwt"}', true) IS NOT NULL;
	SELECT sessmgr_api.pre_request();
	SELECT sessmgr.current_user_id(), sessmgr.current_session_id();
	COMMIT;});
is($rc, 0, 'the pre-request check runs on the standby');
is($out, "t\n\nalice|$sid", 'the pre-request check on the standby sets the identity');
is($err, '', 'the pre-request check on the standby: no error or warning');

($rc, $out, $err) = on_standby(qq{
	BEGIN READ ONLY;
	SELECT set_config('request.jwt.claims', '$claims', true) IS NOT NULL
	   AND set_config('request.headers', '{"authorization": "Bearer $jwt"}', true) IS NOT NULL;
	SELECT sessmgr_api.pre_request();
	SELECT sessmgr.current_aal(), sessmgr.is_fresh('10 min');
	COMMIT;});
is($out, "t\n\n1|t", 'after the pre-request check on the standby: level 1, fresh');
is($err, '', 'step-up after the pre-request check on the standby: no error or warning');

($rc, $out, $err) = on_standby(
	"SELECT count(*) FROM sessmgr.list_sessions('alice') WHERE id = '$sid' AND NOT is_current");
is($out, '1', 'list_sessions works on the standby');
($rc, $out, $err) = on_standby(
	"SELECT count(*) FROM sessmgr.active_sessions WHERE user_id IN ('alice', 'carol')");
is($out, '2', 'the active_sessions view works on the standby');

($rc, $out, $err) = on_standby("SELECT count(*) FROM sessmgr.validate('sessmgr_junk')");
is($out, '0', 'a junk token is invalid on the standby');

# Many more standby calls.
on_standby(qq{
	SELECT count(*) FROM generate_series(1, 200) i,
	       LATERAL sessmgr.validate('$token') v,
	       LATERAL sessmgr.verify_access_token('$jwt') a});

$primary->wait_for_catchup($standby, 'replay');
is($primary->safe_psql('postgres', sprintf($last_active_sql, $sid)), $before,
	'standby traffic did not change last_active_at on the primary');
is($standby->safe_psql('postgres', sprintf($last_active_sql, $sid)), $before,
	'nor on the standby');
is($primary->safe_psql('postgres',
		"SELECT count(*) FROM sessmgr.session_events WHERE session_id = '$sid'"),
	'1', 'standby traffic wrote no event');

# Positive control: the same call on the primary does touch an old session.
my $ctl_before = $primary->safe_psql('postgres', sprintf($last_active_sql, $ctl_sid));
$primary->safe_psql('postgres', "SELECT * FROM sessmgr.validate('$ctl_token')");
isnt($primary->safe_psql('postgres', sprintf($last_active_sql, $ctl_sid)), $ctl_before,
	'control: validate on the primary records the activity');

# --- revocation on the primary, seen on the standby ------------------------

$primary->safe_psql('postgres', "SELECT sessmgr.revoke_any('$sid')");
$primary->wait_for_catchup($standby, 'replay');
is($standby->safe_psql('postgres', "SELECT count(*) FROM sessmgr.validate('$token')"),
	'0', 'a revocation replayed on the standby invalidates the token there');
is($standby->safe_psql('postgres', "SELECT sessmgr.verify_access_token('$jwt') IS NULL"),
	't', 'and its access token');
($rc, $out, $err) = on_standby(qq{
	BEGIN READ ONLY;
	SELECT set_config('request.jwt.claims', '$claims', true) IS NOT NULL
	   AND set_config('request.headers', '{"authorization": "Bearer $jwt"}', true) IS NOT NULL;
	SELECT sessmgr_api.pre_request();
	COMMIT;});
like($err, qr/session has ended/, 'and the pre-request check rejects it');

# --- issuance and refresh have the same window, the other way round ----------
# With replay paused, a refresh committed on the primary is unknown to the
# standby: the new tokens do not work there and the old ones still do.
my ($rsid, $rtok) = split /\|/, $primary->safe_psql('postgres',
	"SELECT session_id, token FROM sessmgr.issue('dora', 'tablet')");
$primary->wait_for_catchup($standby, 'replay');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
my ($status, $new_tok, $new_jwt) = split /\|/, $primary->safe_psql('postgres',
	"SELECT status, token, access_token FROM sessmgr.refresh('$rtok')");
is($status, 'ok', 'refresh on the primary');
my $lagging = $standby->safe_psql('postgres', qq{
	SELECT (SELECT count(*) FROM sessmgr.validate('$new_tok')),
	       sessmgr.verify_access_token('$new_jwt') IS NULL,
	       (SELECT count(*) FROM sessmgr.validate('$rtok'))});
is($lagging, '0|t|1',
	'standby behind the refresh: new token and access token unknown, the rotated-out token still valid');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$primary->wait_for_catchup($standby, 'replay');
is($standby->safe_psql('postgres', qq{
	SELECT (SELECT count(*) FROM sessmgr.validate('$new_tok')),
	       sessmgr.verify_access_token('$new_jwt') ->> 'sid',
	       (SELECT count(*) FROM sessmgr.validate('$rtok'))}),
	"1|$rsid|0", 'after replay: the new tokens work on the standby and the old one does not');

# --- the replay window -------------------------------------------------------

# A connection whose statements give up on a lock after 60 s and on anything
# else after PG_TEST_TIMEOUT_DEFAULT, with an error naming the statement.
sub dbh
{
	my ($node) = @_;
	my $limit = $PostgreSQL::Test::Utils::timeout_default;
	return DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port
		  . ";options='-c lock_timeout=60s -c statement_timeout=${limit}s'",
		'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0, ShowErrorStatement => 1 });
}

my $pdb = dbh($primary);
my $sdb = dbh($standby);
my $rounds = $pdb->selectall_arrayref('SELECT session_id, token FROM rounds ORDER BY i');
my $revoke = $pdb->prepare('SELECT sessmgr.revoke_any($1)');
my $check = $sdb->prepare('SELECT count(*) FROM sessmgr.validate($1)');

sub valid_on_standby
{
	my ($tok) = @_;
	$check->execute($tok);
	my ($n) = $check->fetchrow_array;
	return $n;
}

# Revoke each session and poll the standby until its token is invalid.
# Returns (windows in ms from COMMIT returned to invalid on the standby,
# COMMIT latencies in ms, how many were still valid at the first check).
sub measure
{
	my (@batch) = @_;
	my (@windows, @latencies, $still_valid);
	$still_valid = 0;
	for my $r (@batch)
	{
		my ($rsid, $rtok) = @$r;
		die "round token not valid on the standby before revoke" unless valid_on_standby($rtok);
		my $start = time;
		$revoke->execute($rsid);
		$revoke->finish;
		my $committed = time;
		push @latencies, ($committed - $start) * 1000;
		my $first = 1;
		while (valid_on_standby($rtok))
		{
			$still_valid++ if $first;
			$first = 0;
			die "token still valid on the standby 30 s after the revocation"
			  if time - $committed > 30;
		}
		push @windows, (time - $committed) * 1000;
	}
	return (\@windows, \@latencies, $still_valid);
}

sub summary
{
	my (@v) = sort { $a <=> $b } @{ $_[0] };
	my $pct = sub { $v[ int($_[0] * $#v + 0.5) ] };
	return sprintf('median %.3f ms, p99 %.3f ms, max %.3f ms (n=%d)',
		$pct->(0.5), $pct->(0.99), $v[-1], scalar @v);
}

my ($async, $async_commit, $async_stale) = measure(@$rounds[ 0 .. $ROUNDS - 1 ]);
is(scalar @$async, $ROUNDS, "default synchronous_commit: all $ROUNDS revocations reached the standby");
note('synchronous_commit = on, asynchronous standby: token still valid on the standby at the '
	  . "first check after COMMIT returned in $async_stale of $ROUNDS revocations");
note('  COMMIT returned -> invalid on the standby: ' . summary($async));
note('  revoke + COMMIT latency on the primary:     ' . summary($async_commit));

# remote_apply: COMMIT returns only once the standby has applied it.
$primary->append_conf('postgresql.conf', "synchronous_standby_names = 'standby'");
$primary->reload;
$primary->poll_query_until('postgres',
	"SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'standby'")
  or die 'the standby did not become synchronous';
$pdb->do('SET synchronous_commit = remote_apply');

my ($sync, $sync_commit, $sync_stale) = measure(@$rounds[ $ROUNDS .. 2 * $ROUNDS - 1 ]);
is($sync_stale, 0,
	"remote_apply: the token is invalid on the standby right after COMMIT returns (0 of $ROUNDS still valid)");
note("synchronous_commit = remote_apply: still valid at the first check in $sync_stale of $ROUNDS");
note('  COMMIT returned -> invalid on the standby (one check): ' . summary($sync));
note('  revoke + COMMIT latency on the primary:                ' . summary($sync_commit));

# ... and a session issued under remote_apply works on the standby at once.
my $issue = $pdb->prepare(q{SELECT token FROM sessmgr.issue('login' || $1)});
my $unknown = 0;
for my $i (1 .. $ROUNDS)
{
	$issue->execute($i);
	my ($tok) = $issue->fetchrow_array;
	$unknown++ unless valid_on_standby($tok);
}
$issue->finish;
is($unknown, 0, "remote_apply: a session issued on the primary validates on the standby "
	  . "right after COMMIT returns (0 of $ROUNDS unknown)");

$check->finish;
$pdb->disconnect;
$sdb->disconnect;
$standby->stop;
$primary->stop;
done_testing();

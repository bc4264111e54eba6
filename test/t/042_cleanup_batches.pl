# Cleanup sizes its batches by how long they take: each pass starts at 100
# rows, a transaction open longer than 30 ms halves the next batch, one under
# 15 ms makes it a quarter larger (plus one row), never above batch_size nor
# below 10 rows.  The run
# reports each step at DEBUG1; this test checks every step of real runs
# against that rule, using the times the run reported (it asserts no timing
# of its own), and that the run removes exactly what it should.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('batches');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

# ended sessions (past retention), their events, and users with nothing live
sub load
{
	my ($n) = @_;
	$node->safe_psql(
		'postgres', qq{
		SET session_replication_role = replica;
		INSERT INTO sessmgr.sessions (id, created_at, last_active_at, expires_at, idle_timeout,
		                              token_hash, user_id, revoked_at, revoke_reason)
		SELECT gen_random_uuid(), now() - interval '40 days', now() - interval '40 days',
		       now() - interval '39 days', interval '1 hour', sha256(g::text::bytea),
		       'u' || g / 5, CASE WHEN g % 2 = 0 THEN now() - interval '39 days' END,
		       CASE WHEN g % 2 = 0 THEN 'logout' END
		  FROM generate_series(1, $n) g;
		INSERT INTO sessmgr.session_events (occurred_at, event, session_id, user_id, actor)
		SELECT now() - interval '100 days', 'issue', id, user_id, 'postgres'
		  FROM sessmgr.sessions;
		INSERT INTO sessmgr.session_owners (user_id, sessions_issued, last_issued_at, last_revoked_at)
		SELECT DISTINCT user_id, 5, now() - interval '40 days', now() - interval '40 days'
		  FROM sessmgr.sessions;
	});
	return;
}

# Run a cleanup with DEBUG1 messages; return its result line and messages.
sub run_cleanup
{
	my ($call) = @_;
	my ($stdout, $stderr);
	$node->psql(
		'postgres', "SET client_min_messages = debug1;\n$call",
		stdout => \$stdout,
		stderr => \$stderr,
		on_error_die => 1);
	return ($stdout, $stderr);
}

# Check every step of a run against the rule; return the batch sizes used.
sub check_steps
{
	my ($messages, $batch_size, $label) = @_;
	my $first = $batch_size < 100 ? $batch_size : 100;
	my $floor = $batch_size < 10 ? $batch_size : 10;
	my ($rows, @sizes, $bad, @passes);
	$bad = 0;
	for my $line (split /\n/, $messages)
	{
		if ($line =~ /sessmgr cleanup: pass over ([\w, ]+?), first batch (\d+) rows/)
		{
			push @passes, $1;
			$bad++, diag("$label: pass over $1 starts at $2 rows, not $first") if $2 != $first;
			$rows = $2;
			push @sizes, $rows;
		}
		elsif ($line =~ /sessmgr cleanup: transaction took (\d+) ms \(\d+ ms on CPU\), next batch (\d+) rows/)
		{
			my ($ms, $next) = ($1, $2);
			next unless defined $rows;    # the run's own first transactions
			my $want = $rows;
			if ($ms > 30)
			{
				$want = int($rows / 2);
				$want = $floor if $want < $floor;
			}
			elsif ($ms < 15)
			{
				$want = $rows + int($rows / 4) + 1;
				$want = $batch_size if $want > $batch_size;
			}
			$bad++, diag("$label: $rows rows took $ms ms, next $next rows, not $want")
			  if $next != $want;
			$rows = $next;
			push @sizes, $rows;
		}
	}
	# sessions, events and owners, and the passes later features added (analytics,
	# failed-login counters, login profiles and devices, minimisation), each once
	my %n;
	$n{$_}++ for @passes;
	ok($n{sessions} && $n{session_events} && $n{session_owners} && !grep({ $_ > 1 } values %n),
		"$label: one pass over each table (" . join('; ', @passes) . ')');
	is($bad, 0, "$label: every batch sized by the rule");
	return @sizes;
}

load(20000);
my ($out, $msgs) = run_cleanup('CALL sessmgr.cleanup(batch_size => 5000)');
is($out, '20000|20000|4001', 'batch_size 5000: removes every ended session, event and owner row');
my @sizes = check_steps($msgs, 5000, 'batch_size 5000');
my ($max) = sort { $b <=> $a } @sizes;
cmp_ok($max, '<=', 5000, '... no batch above batch_size');
cmp_ok(scalar(@sizes), '>=', 6, '... in several batches per pass');

load(3000);
($out, $msgs) = run_cleanup('CALL sessmgr.cleanup(batch_size => 7)');
is($out, '3000|3000|601', 'batch_size 7: removes everything too');
@sizes = check_steps($msgs, 7, 'batch_size 7');
($max) = sort { $b <=> $a } @sizes;
is($max, 7, '... never above 7 rows a batch');

# slow deletions (1 ms a session, by a trigger) make batches shrink
load(400);
$node->safe_psql(
	'postgres', q{
	CREATE FUNCTION public.slow_delete() RETURNS trigger LANGUAGE plpgsql
	    AS $$ BEGIN PERFORM pg_sleep(0.001); RETURN OLD; END $$;
	CREATE TRIGGER slow_delete BEFORE DELETE ON sessmgr.sessions
	    FOR EACH ROW EXECUTE FUNCTION public.slow_delete();
});
($out, $msgs) = run_cleanup('CALL sessmgr.cleanup(batch_size => 1000)');
is($out, '400|400|81', 'slow deletions: removes everything');
@sizes = check_steps($msgs, 1000, 'slow deletions');
my ($min) = sort { $a <=> $b } @sizes;
cmp_ok($min, '<', 100, '... with batches shrunk below the first 100 rows');
$node->safe_psql('postgres',
	'DROP TRIGGER slow_delete ON sessmgr.sessions; DROP FUNCTION public.slow_delete()');

# inside a transaction block there are no commits: batches of batch_size
load(1000);
($out, $msgs) = run_cleanup('BEGIN; CALL sessmgr.cleanup(batch_size => 500); COMMIT;');
like($out, qr/^1000\|1000\|201$/m, 'in a transaction block: removes everything');
unlike($msgs, qr/transaction took/, '... and nothing commits in between');
like($msgs, qr/pass over sessions, first batch 500 rows/, '... and batches are batch_size rows');

done_testing();

# test/perl/SessmgrTapLimits.pm: time limits inside a TAP test, loaded by
# test/tap_exec.sh into every test/t/*.pl (perl -MSessmgrTapLimits FILE).
#
# - Every psql that PostgreSQL::Test::Cluster runs (psql, safe_psql) without a
#   timeout of its own gets PG_TEST_TIMEOUT_DEFAULT seconds (default 180): a
#   statement stuck on a lock or a hung server ends the test with "gave up
#   after N s waiting for psql on node X to run: <the SQL>".
# - SIGINT or SIGTERM (test/tap_exec.sh's time limit for the whole file) makes
#   the test say which check it had reached and exit through its END blocks,
#   so PostgreSQL::Test::Cluster stops the servers it started.  A child the
#   test forked just exits.
package SessmgrTapLimits;

use strict;
use warnings;

use POSIX ();
use PostgreSQL::Test::Utils ();
use PostgreSQL::Test::Cluster ();
use Test::More ();

my $main_pid = $$;

my $psql = \&PostgreSQL::Test::Cluster::psql;
{
	no warnings 'redefine';
	*PostgreSQL::Test::Cluster::psql = sub {
		my ($node, $dbname, $sql, %params) = @_;
		return $psql->(@_) if defined $params{timeout};
		my $limit = $PostgreSQL::Test::Utils::timeout_default;
		my $want = wantarray;
		my (@ret, $ret);
		my $ok = eval {
			if ($want)
			{
				@ret = $psql->($node, $dbname, $sql, %params, timeout => $limit);
			}
			else
			{
				$ret = $psql->($node, $dbname, $sql, %params, timeout => $limit);
			}
			1;
		};
		if (!$ok)
		{
			my $err = $@;
			die $err if ref $err || $err !~ /^psql timed out/;
			my $what = defined $sql ? $sql : '';
			$what =~ s/\s+/ /g;
			$what =~ s/^ | $//g;
			$what = substr($what, 0, 400) . ' ...' if length $what > 400;
			die "gave up after $limit s (PG_TEST_TIMEOUT_DEFAULT) waiting for psql on node \""
			  . $node->name . "\", database $dbname, to run: $what\n$err";
		}
		return $want ? @ret : $ret;
	};
}

sub _stopped
{
	my ($sig) = @_;
	POSIX::_exit(124) if $$ != $main_pid;
	$SIG{INT} = $SIG{TERM} = 'DEFAULT';
	my $tb = Test::More->builder;
	my $n = $tb->current_test;
	my @details = $tb->details;
	my $last = $n
	  ? "the last check that ran was #$n '" . ($details[-1]{name} // '') . "'"
	  : 'no check had run yet';
	print STDERR "# $0: stopped by SIG$sig ($last); its servers are stopped on the way out\n";
	exit 124;
}
$SIG{INT} = sub { _stopped('INT') };
$SIG{TERM} = sub { _stopped('TERM') };

1;

# test/t/063_events_feed.pl: the SIEM feed where a regress or isolation test
# cannot take it: prepared transactions, a standby, a crash.
#
# - A prepared transaction that wrote an event holds the feed back below its
#   id until COMMIT PREPARED (its lock moves to the prepared transaction), and
#   the feed then returns it; after ROLLBACK PREPARED, the later event comes.
# - On a hot standby the feed refuses (55000): it cannot see the primary's
#   writers.
# - After a crash (immediate stop), when the sequence usually skips ahead,
#   the feed goes on from the cursor without losing or repeating an event.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', 'max_prepared_transactions = 4');
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION sessmgr');

# the shipper: the actions and users of the events after the cursor
sub poll
{
	my ($node, $cursor) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(d->'event'->>'action' || ':' || (d->'user'->>'id'), ' '
		                  ORDER BY (d->'event'->>'sequence')::bigint)
		  FROM sessmgr.events_since($cursor) d});
}
sub last_id
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		'SELECT coalesce(max(id), 0) FROM sessmgr.session_events');
}

# --- prepared transactions -------------------------------------------------
my $cursor = last_id($primary);
$primary->safe_psql('postgres', q{
	BEGIN;
	SELECT sessmgr.issue('prepared_user');
	PREPARE TRANSACTION 'feed_early'});
$primary->safe_psql('postgres', q{SELECT sessmgr.issue('late_user')});
is(poll($primary, $cursor), '',
	'a prepared transaction with a lower event id holds the feed back');
is($primary->safe_psql('postgres', q{
	SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 24149 AND pid IS NULL}),
	'1', 'the prepared transaction holds the feed lock');
$primary->safe_psql('postgres', q{COMMIT PREPARED 'feed_early'});
is(poll($primary, $cursor), 'issue:prepared_user issue:late_user',
	'after COMMIT PREPARED the feed returns both events in id order');

$cursor = last_id($primary);
$primary->safe_psql('postgres', q{
	BEGIN;
	SELECT sessmgr.issue('prepared_user');
	PREPARE TRANSACTION 'feed_gone'});
$primary->safe_psql('postgres', q{SELECT sessmgr.issue('late_user')});
is(poll($primary, $cursor), '', 'held back again while prepared');
$primary->safe_psql('postgres', q{ROLLBACK PREPARED 'feed_gone'});
is(poll($primary, $cursor), 'issue:late_user',
	'after ROLLBACK PREPARED the later event alone');

# --- a standby -------------------------------------------------------------
$primary->backup('bkp');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bkp', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby, 'replay');
my ($ret, $stdout, $stderr) = $standby->psql('postgres',
	'SELECT count(*) FROM sessmgr.events_since(0)',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'the feed refuses on a standby');
like($stderr, qr/55000: the event feed cannot be read on a standby/,
	'with 55000 and a message saying why');
$standby->stop;

# --- a crash ---------------------------------------------------------------
$cursor = last_id($primary);
$primary->safe_psql('postgres', q{SELECT sessmgr.issue('before_crash')});
$primary->stop('immediate');
$primary->start;
$primary->safe_psql('postgres', q{SELECT sessmgr.issue('after_crash')});
is(poll($primary, $cursor), 'issue:before_crash issue:after_crash',
	'after a crash the feed goes on from the cursor, nothing lost or repeated');
note('ids across the crash: ' . $primary->safe_psql('postgres',
	q{SELECT string_agg(id::text, ', ' ORDER BY id) FROM sessmgr.session_events
	   WHERE user_id IN ('before_crash', 'after_crash')}));

$primary->stop;
done_testing();

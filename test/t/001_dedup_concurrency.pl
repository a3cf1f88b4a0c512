# 20 concurrent sessions enqueuing the same dedup_key produce exactly one
# row, and every session gets that row's id.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dedup');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'notify'
notify.database = 'postgres'
max_connections = 60
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION notify');

my $enqueue = q{SELECT notify_enqueue('notify.message', 'a@example.com', '{"subject": "Re: 42", "text": "Fixed."}', dedup_key => 'ticket_reply:42:7');};

# Session 1 inserts the key and keeps its transaction open ...
my $first = $node->background_psql('app');
$first->query_safe('BEGIN');
my $id = $first->query_safe($enqueue);
like($id, qr/^\d+$/, "first session got an id ($id)");

# ... so the other 19 block on the unique index.
my @others;
for my $i (1 .. 19)
{
	my $s = $node->background_psql('app');
	$s->query_until(qr/started/, "\\echo started\n$enqueue\n");
	push @others, $s;
}
ok( $node->poll_query_until(
		'app',
		q{SELECT count(*) = 19 FROM pg_stat_activity WHERE datname = 'app' AND wait_event_type = 'Lock'}),
	'19 sessions wait on the first one');

$first->query_safe('COMMIT');

my $same = 0;
for my $s (@others)
{
	my $out = $s->query_until(qr/^\d+\s*$/m, '');
	$out =~ s/\s+//g;
	$same++ if $out eq $id;
	$s->quit;
}
$first->quit;
is($same, 19, 'all 19 waiting sessions returned the first row\'s id');
is($node->safe_psql('app', q{SELECT count(*) FROM notify_outbox WHERE dedup_key = 'ticket_reply:42:7'}),
	'1', 'exactly one row');

# If the first transaction rolls back instead, one waiter inserts and the
# rest get the waiter's id.
$first = $node->background_psql('app');
$first->query_safe('BEGIN');
$first->query_safe($enqueue =~ s/42:7/43:1/r);
@others = ();
for my $i (1 .. 19)
{
	my $s = $node->background_psql('app');
	$s->query_until(qr/started/, "\\echo started\n" . ($enqueue =~ s/42:7/43:1/r) . "\n");
	push @others, $s;
}
ok( $node->poll_query_until(
		'app',
		q{SELECT count(*) = 19 FROM pg_stat_activity WHERE datname = 'app' AND wait_event_type = 'Lock'}),
	'19 sessions wait again');
$first->query_safe('ROLLBACK');
my %ids;
for my $s (@others)
{
	my $out = $s->query_until(qr/^\d+\s*$/m, '');
	$out =~ s/\s+//g;
	$ids{$out}++;
	$s->quit;
}
$first->quit;
my $row = $node->safe_psql('app', q{SELECT id FROM notify_outbox WHERE dedup_key = 'ticket_reply:43:1'});
is_deeply(\%ids, { $row => 19 }, 'after a rollback all 19 share the one new row');

# Free-running race: 20 clients, 10 keys, 1000 calls, no errors, one row per key.
$node->pgbench(
	'--no-vacuum --client=20 --jobs=4 --transactions=50',
	0,
	[qr/processed: 1000\/1000/],
	[qr/^$/],
	'20 clients race on 10 keys without errors',
	{
		'001_race' => q{\set k random(1, 10)
SELECT notify_enqueue('notify.message', 'r@example.com', '{"subject": "s", "text": "t"}', dedup_key => 'race:' || :k);
}
	},
	'app');
is($node->safe_psql('app',
		q{SELECT count(*) || '/' || count(DISTINCT dedup_key) FROM notify_outbox WHERE dedup_key LIKE 'race:%'}),
	'10/10', 'one row per key after the race');

$node->stop;
done_testing();

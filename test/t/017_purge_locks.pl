# notify_purge and locks: a day's partition (notify.history_partition =
# day) that another session holds (a long read of notify_all)
# is not waited for: the purge tries the DROP with a 50 ms lock timeout,
# gives up after 10 tries, deletes that day's rows in batches instead and
# says so in the audit log; the next purge, with the partition free, drops
# it, and the day's attempts partition (notify_attempts_YYYY_MM_DD) with it.  Enqueues go on all the while: the
# purge never holds a lock they wait for.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use NotifyTest::Node;

my $node = NotifyTest::Node->new('purge_locks',
	conf => { 'notify.archive_interval' => '0', log_lock_waits => 'on', 'notify.history_partition' => 'day' });

# two old days of history, 300 rows each, one attempt per row (ids past
# those the outbox will hand out: archived rows keep their outbox ids), the
# attempts where notify_archive puts them: in the notify_attempts partition
# beside their notification's (history_created_at = its created_at)
$node->safe_psql('postgres', q{
	SELECT notify_history_partition(date_trunc('day', now()) - interval '3 days');
	SELECT notify_history_partition(date_trunc('day', now()) - interval '2 days');
	INSERT INTO notify_history (id, template_key, recipient, status, created_at, send_at, next_attempt_at)
	SELECT 1000000 + g, 'notify.message', 'h' || g || '@example.com', 'sent', t, t, t
	FROM generate_series(1, 600) g,
		 LATERAL (SELECT date_trunc('day', now()) - interval '3 days'
						 + CASE WHEN g > 300 THEN interval '1 day' ELSE interval '0' END + interval '1 hour' AS t) x;
	INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome, history_created_at)
	SELECT id, 1, created_at, created_at + interval '1 s', 'sent', created_at FROM notify_history;
});
my $oldest = $node->safe_psql('postgres',
	q{SELECT notify_history_partition(date_trunc('day', now()) - interval '3 days')});
like($oldest, qr/^notify_history_\d{4}_\d{2}_\d{2}$/, "the oldest day's partition is a day's: $oldest");
(my $oldest_attempts = $oldest) =~ s/notify_history_/notify_attempts_/;
is($node->safe_psql('postgres', qq{SELECT count(*) FROM $oldest_attempts}), '300',
	"the oldest day's attempts are in $oldest_attempts");

# a reader holds the oldest partition (ACCESS SHARE, as any query on notify_all does)
my $reader = $node->background_psql('postgres');
$reader->query_safe('BEGIN');
is($reader->query_safe("SELECT count(*) FROM $oldest"), '300', 'a reader holds the oldest day');

# purge the oldest day while the reader is there, 7 rows a batch (43 batches)
my $purge = $node->background_psql('postgres');
my $t0 = time;
$purge->query_until(qr/started/,
	"\\echo started\nCALL notify_purge(now() - (date_trunc('day', now()) - interval '2 days'), batch_size => 7);\n\\echo purged\n");

# enqueues are not held up while the purge is at work
my $slowest = 0;
for my $i (1 .. 20)
{
	my $t = time;
	$node->safe_psql('postgres',
		qq{SELECT notify_enqueue('notify.message', 'e$i\@example.com', '{"subject": "s", "text": "t"}', dedup_key => 'purge-locks:$i')});
	$slowest = time - $t if time - $t > $slowest;
}
cmp_ok($slowest, '<', 1, sprintf('20 enqueues during the purge, the slowest in %.0f ms', $slowest * 1000));

$purge->query_until(qr/purged/, '');
my $took = time - $t0;
cmp_ok($took, '<', 30, sprintf('the purge ended without waiting for the reader (%.1f s)', $took));
is($node->safe_psql('postgres',
		q{SELECT format('%s %s %s %s', detail ->> 'partitions_dropped', detail ->> 'partitions_busy',
						detail ->> 'rows_deleted', detail ->> 'attempts_deleted')
		  FROM notify_audit_log WHERE action = 'purged' ORDER BY id DESC LIMIT 1}),
	'0 1 300 300', 'audited: partition busy, its 300 rows and their attempts deleted in batches instead');
is($node->safe_psql('postgres', "SELECT count(*) FROM $oldest"), '0', 'the busy partition is empty');
is($node->safe_psql('postgres', "SELECT count(*) FROM $oldest_attempts"), '0', 'and so is its attempts partition');
is($node->safe_psql('postgres', q{SELECT count(*) FROM notify_attempts WHERE history_created_at < 'infinity'}), '300',
	"the next day's attempts are untouched");
is($node->safe_psql('postgres', q{SELECT count(*) FROM notify_history}), '300', 'the next day is untouched');
is($reader->query_safe('SELECT 1'), '1', 'the reader was not disturbed');
$reader->query_safe('COMMIT');

# the partition is free now: the next purge drops it
$node->safe_psql('postgres', q{CALL notify_purge(now() - (date_trunc('day', now()) - interval '2 days'))});
is($node->safe_psql('postgres',
		q{SELECT format('%s %s %s', detail ->> 'partitions_dropped', detail ->> 'partitions_busy', detail ->> 'rows_deleted')
		  FROM notify_audit_log WHERE action = 'purged' ORDER BY id DESC LIMIT 1}),
	'1 0 0', 'the next purge drops the empty partition');
is($node->safe_psql('postgres', "SELECT to_regclass('$oldest') IS NULL AND to_regclass('$oldest_attempts') IS NULL"),
	't', 'it is gone, and its attempts partition with it');

# nothing holds the next day: its history and attempts partitions go
# together, no row is deleted one by one
$node->safe_psql('postgres', q{CALL notify_purge(now() - (date_trunc('day', now()) - interval '1 day'))});
is($node->safe_psql('postgres',
		q{SELECT format('%s %s %s %s', detail ->> 'partitions_dropped', detail ->> 'partitions_busy',
						detail ->> 'rows_deleted', detail ->> 'attempts_deleted')
		  FROM notify_audit_log WHERE action = 'purged' ORDER BY id DESC LIMIT 1}),
	'1 0 0 0', 'the second day: one pair of partitions dropped, no row deleted');
is($node->safe_psql('postgres', q{
		SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent IN ('notify_history'::regclass, 'notify_attempts'::regclass)}),
	'notify_attempts_hot', 'only the outbox\'s attempts partition is left');
is($node->safe_psql('postgres', q{SELECT count(*) FROM notify_outbox WHERE dedup_key LIKE 'purge-locks:%'}),
	'20', 'all 20 enqueued');

$purge->quit;
$reader->quit;
$node->stop;
done_testing();

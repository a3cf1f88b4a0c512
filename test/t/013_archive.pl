# History moves out of the hot outbox while the worker delivers: with
# notify.archive_after = 0, sent rows go to notify_history within an
# archive interval, the outbox keeps only what is pending, and delivery
# goes on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use NotifyTest::SMTP;
use NotifyTest::Node;

my $smtp = NotifyTest::SMTP->start;
my $node = NotifyTest::Node->new('archive', smtp => $smtp,
	conf => { 'notify.archive_after' => '0', 'notify.archive_interval' => q{'300ms'},
		'notify.history_partition' => 'day' });

$node->safe_psql('postgres', q{
	SELECT count(notify_enqueue('notify.message', 'a' || i || '@example.com',
		jsonb_build_object('subject', 'n' || i, 'text', 'body'), dedup_key => 'arch:' || i))
	FROM generate_series(1, 50) i});
is($smtp->wait_for_count(50, 30), 50, '50 messages delivered');
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT (SELECT count(*) FROM notify_outbox) || '/' || (SELECT count(*) FROM notify_history WHERE status = 'sent')},
		'0/50', 30),
	'the worker moved all 50 sent rows to notify_history; the outbox is empty');
like($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM notify_history}),
	qr/^notify_history_\d{4}_\d{2}_\d{2}$/, 'into the partition of this day (notify.history_partition = day)');
is($node->safe_psql('postgres', q{
		SELECT r.lower_bound = date_trunc('day', now()) AND r.upper_bound = date_trunc('day', now()) + interval '1 day'
		FROM (SELECT DISTINCT tableoid FROM notify_history) h CROSS JOIN LATERAL notify_partition_range(h.tableoid) r}),
	't', 'which covers exactly today');
is($node->safe_psql('postgres', q{SELECT count(*) FROM notify_all a JOIN notify_attempts t ON t.outbox_id = a.id}),
	'50', 'their attempts still join through notify_all');

# delivery goes on while archiving runs
$node->safe_psql('postgres', q{
	SELECT count(notify_enqueue('notify.message', 'b' || i || '@example.com',
		jsonb_build_object('subject', 'n' || i, 'text', 'body')))
	FROM generate_series(1, 20) i});
is($smtp->wait_for_count(70, 30), 70, '20 more delivered');
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FROM notify_history}, '70', 30),
	'and archived too');

# the worker follows notify.history_partition after a reload: month
# partitions for rows of an earlier month, then day partitions again,
# fitted around the month's
$node->safe_psql('postgres', q{ALTER SYSTEM SET notify.history_partition = 'month'; SELECT pg_reload_conf();});
ok(defined NotifyTest::Node::wait_for($node, q{SHOW notify.history_partition}, 'month', 10), 'set to month');
$node->safe_psql('postgres', q{
	INSERT INTO notify_outbox (template_key, recipient, status, created_at, sent_at)
	SELECT 'notify.message', 'old' || i || '@example.com', 'sent', t, t
	FROM generate_series(1, 5) i, LATERAL (SELECT date_trunc('month', now()) - interval '2 months' + i * interval '1 day' AS t) x});
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FROM notify_history WHERE created_at < date_trunc('month', now()) - interval '1 month'}, '5', 30),
	'the worker archived the rows of two months ago');
like($node->safe_psql('postgres', q{
		SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM notify_history
		WHERE created_at < date_trunc('month', now()) - interval '1 month'}),
	qr/^notify_history_\d{4}_\d{2}$/, 'into one partition of that month');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET notify.history_partition; SELECT pg_reload_conf();});
ok(defined NotifyTest::Node::wait_for($node, q{SHOW notify.history_partition}, 'day', 10), 'back to day');
$node->safe_psql('postgres', q{
	INSERT INTO notify_outbox (template_key, recipient, status, created_at, sent_at)
	SELECT 'notify.message', 'older' || i || '@example.com', 'sent', t, t
	FROM generate_series(1, 2) i,
		 LATERAL (SELECT date_trunc('month', now()) - interval '2 months' + CASE i WHEN 1 THEN interval '20 days' ELSE interval '-1 hour' END AS t) x});
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FROM notify_history WHERE created_at < date_trunc('month', now()) - interval '1 month'}, '7', 30),
	'two more archived: one into the month\'s partition, one just before it');
is($node->safe_psql('postgres', q{
		SELECT string_agg(format('%s %s %s', c.relname ~ '^notify_history_\d{4}_\d{2}_\d{2}$', r.upper_bound - r.lower_bound,
								  (SELECT count(*) FROM notify_history h WHERE h.tableoid = c.oid)), ',' ORDER BY r.lower_bound)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid CROSS JOIN LATERAL notify_partition_range(c.oid) r
		WHERE i.inhparent = 'notify_history'::regclass AND r.lower_bound < date_trunc('month', now()) - interval '1 month'}),
	't 1 day 1,f ' . $node->safe_psql('postgres', q{SELECT (date_trunc('month', now()) - interval '1 month') - (date_trunc('month', now()) - interval '2 months')}) . ' 6',
	'the day before the month got a day partition; the month kept its one partition, with 6 rows');

$node->stop;
$smtp->stop;
done_testing();

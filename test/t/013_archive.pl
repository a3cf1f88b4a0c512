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
	conf => { 'notify.archive_after' => '0', 'notify.archive_interval' => q{'300ms'} });

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
	qr/^notify_history_\d{4}_\d{2}$/, 'into the partition of this month');
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

$node->stop;
$smtp->stop;
done_testing();

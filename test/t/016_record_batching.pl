# The recording protocol at low rates: a finished send is not recorded in
# a transaction of its own at once; once 10 ms old it rides in the next
# claim's transaction (after 20 ms it gets its own).  A trickle of
# single-message transactions then costs the worker about one transaction
# per message, not two, and one record statement covers several messages;
# a lone message is still recorded promptly; every message has one attempt.
# Also: the record's plan under stale statistics, and two workers, of
# which a commit wakes one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use NotifyTest::SMTP;
use NotifyTest::Node;

my $smtp = NotifyTest::SMTP->start;

# n commits of one enqueue each, to prefix || i || '@example.com', pause
# seconds apart
my $trickle_procedure = q{
CREATE PROCEDURE trickle(prefix text, n integer, pause float8) LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. n LOOP
		PERFORM notify_enqueue('notify.message', prefix || i || '@example.com',
			jsonb_build_object('subject', 'n' || i, 'text', 'body'));
		COMMIT;
		PERFORM pg_sleep(pause);
	END LOOP;
END;
$$};

# A statistics query on node, once the workers flushed their statistics:
# they do at the end of a transaction, at most once a second, so one more
# message a second later makes the worker that takes it flush them.
my $flushes = 0;
sub stat_after_flush
{
	my ($node, $query) = @_;
	sleep 1.1;
	$flushes++;
	my $id = $node->safe_psql('postgres',
		qq{SELECT notify_enqueue('notify.message', 'flush$flushes\@example.com', '{"subject": "s", "text": "t"}')});
	NotifyTest::Node::wait_for($node, "SELECT status FROM notify_outbox WHERE id = $id", 'sent', 10);
	sleep 0.2;
	return $node->safe_psql('postgres', $query);
}


# A 60 s poll: whatever happens quickly came from a wake-up or the record
# timer.  No autovacuum and no archiving, so that nothing but the
# producer and the worker assigns transaction ids.
my $node = NotifyTest::Node->new('batching', smtp => $smtp,
	conf => {
		'notify.poll_interval' => q{'60s'},
		'notify.archive_interval' => '0',
		'autovacuum' => 'off',
	});

# ---- a lone message is recorded within the record delay, not at the poll ----
my $id = $node->safe_psql('postgres',
	q{SELECT notify_enqueue('notify.message', 'lone@example.com', '{"subject": "s", "text": "t"}')});
is($smtp->wait_for_count(1, 10), 1, 'the lone message was delivered');
my $t0 = time;
my $waited = NotifyTest::Node::wait_for($node, "SELECT status FROM notify_outbox WHERE id = $id", 'sent', 10);
ok(defined $waited, 'the lone message is recorded sent');
cmp_ok(time - $t0, '<', 2, sprintf('recorded %.3f s after delivery (poll interval 60 s)', time - $t0));
is($node->safe_psql('postgres', "SELECT count(*) FROM notify_attempts WHERE outbox_id = $id"), '1',
	'one attempt recorded');

# ---- a trickle: one enqueue per transaction, 2 ms apart ----
# In sandbox mode every send completes at once, so recording at once would
# cost exactly one transaction per message besides the claim.
$node->safe_psql('postgres', 'ALTER SYSTEM SET notify.sandbox = on');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(defined NotifyTest::Node::wait_for($node, 'SHOW notify.sandbox', 'on', 10), 'sandbox mode on');
sleep 0.5;	# the worker reloads at its next wake-up: the reload signal
$node->safe_psql('postgres', $trickle_procedure);

my $n = 60;
my $xid0 = $node->safe_psql('postgres', 'SELECT txid_current()');
$node->safe_psql('postgres', "CALL trickle('trickle', $n, 0.002)");
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FROM notify_outbox WHERE recipient LIKE 'trickle%' AND status = 'sent'}, "$n", 30),
	"all $n trickled messages are recorded sent");
my $xid1 = $node->safe_psql('postgres', 'SELECT txid_current()');

# Transaction ids: the producer's $n, the second txid_current(), and one
# per worker transaction that wrote (claims and records; an empty claim
# writes nothing).  Recording each message in a transaction of its own
# would make that 2 per message.
my $worker_xacts = $xid1 - $xid0 - $n - 1;
note("worker transactions that wrote, for $n messages: $worker_xacts");
cmp_ok($worker_xacts, '<=', int($n * 1.5),
	"the worker wrote in $worker_xacts transactions for $n messages (records ride in claims)");

# Records wait until the oldest result is 10 ms old before riding in a
# claim: one record statement covers several messages of the trickle.
my $records = $node->safe_psql('postgres', q{
	SELECT count(DISTINCT a.xmin::text) FROM notify_attempts a JOIN notify_outbox o ON o.id = a.outbox_id
	WHERE o.recipient LIKE 'trickle%'});
note("record transactions for $n messages: $records");
cmp_ok($records, '<=', int($n * 0.75),
	"outcomes of $n messages recorded in $records transactions (one per message would be $n)");
is($node->safe_psql('postgres', q{
	SELECT count(DISTINCT o.id) || '/' || count(*) FROM notify_attempts a JOIN notify_outbox o ON o.id = a.outbox_id
	WHERE o.recipient LIKE 'trickle%' AND a.outcome = 'sent' AND o.attempts = 1}),
	"$n/$n", 'one sent attempt recorded per message');
is($smtp->count, 1, 'sandbox: nothing more reached the SMTP server');

# ---- notify.claim_delay: commits arriving within it are claimed together ----
# 40 single-message commits about 3 ms apart (~120 ms) with a 100 ms claim
# delay: a handful of claims, not one per commit, and no message waits for
# its claim much longer than the delay.
sub claims { $node->safe_psql('postgres', 'SELECT batches FROM notify_worker_status') }
$node->safe_psql('postgres', q{ALTER SYSTEM SET notify.claim_delay = '100ms'});
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(defined NotifyTest::Node::wait_for($node, 'SHOW notify.claim_delay', '100ms', 10), 'claim delay 100 ms');
sleep 0.5;
my $m = 40;
my $c0 = claims();
$node->safe_psql('postgres', "CALL trickle('paced', $m, 0.003)");
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FROM notify_outbox WHERE recipient LIKE 'paced%' AND status = 'sent'}, "$m", 30),
	"all $m paced messages are recorded sent");
my $nclaims = claims() - $c0;
note("claims for $m paced commits with a 100 ms claim delay: $nclaims");
cmp_ok($nclaims, '<=', 8, "$m commits were claimed in $nclaims claims, not one each");
my $worst = $node->safe_psql('postgres', q{
	SELECT round(extract(epoch FROM max(a.started_at - o.created_at)) * 1000)
	FROM notify_attempts a JOIN notify_outbox o ON o.id = a.outbox_id WHERE o.recipient LIKE 'paced%'});
note("longest enqueue-to-send wait: $worst ms");
cmp_ok($worst, '<', 1000, "no message waited for its claim much longer than the delay ($worst ms)");

# ---- the record's plan does not depend on statistics ----
# Statistics taken while nothing was pending (autovacuum is off, so they
# stay), then 10,000 messages in one commit.  The record has one generic
# plan; it once hashed every pending row, read through the claim index,
# against each group of results (30 ms a record at 20,000 pending rows;
# here 212,329 entries of the claim index read in all).  Now it reaches
# the group's rows by primary key only, and only the claims read the claim
# index: each passes over the rows in flight before it takes new ones,
# about 4 entries per message here (42,000 to 43,000 in three runs).
$node->safe_psql('postgres', q{ALTER SYSTEM SET notify.claim_delay = '2ms'});
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->safe_psql('postgres', 'ANALYZE notify_outbox');
is($node->safe_psql('postgres', q{SELECT count(*) FROM notify_outbox WHERE status = 'pending'}), '0',
	'statistics taken with nothing pending');
sub claim_idx_reads
{
	return stat_after_flush($node,
		q{SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'notify_outbox_claim_idx'});
}
my $reads0 = claim_idx_reads();
my $bulk = 10000;
$node->safe_psql('postgres', qq{
	SELECT count(notify_enqueue('notify.message', 'bulk' || i || '\@example.com', '{"subject": "s", "text": "t"}'))
	FROM generate_series(1, $bulk) i});
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FROM notify_outbox WHERE recipient LIKE 'bulk%' AND status = 'sent'}, "$bulk", 60),
	"all $bulk messages of one commit are recorded sent");
my $reads = claim_idx_reads() - $reads0;
diag("notify_outbox_claim_idx entries read while $bulk messages were claimed and recorded: $reads");
cmp_ok($reads, "<", 8 * $bulk,
	"the claim index was read $reads times for $bulk messages (not every pending row per record)");
$node->stop;

# ---- two workers: a commit wakes one of them, not both ----
# With every worker woken by every commit, each commit of a trickle cost
# a claim per worker, all but one finding the row taken (an empty claim
# writes nothing, so only the database's commit count shows it): 136
# other commits for 60 messages.  Now a commit wakes one worker, the first
# idle one: about one worker transaction per message, as with one worker
# (73).
my $node2 = NotifyTest::Node->new('batching2', smtp => $smtp,
	conf => {
		'notify.workers' => '2',
		'notify.sandbox' => 'on',
		'notify.poll_interval' => q{'60s'},
		'notify.archive_interval' => '0',
		'autovacuum' => 'off',
	});
ok(defined NotifyTest::Node::wait_for($node2,
		q{SELECT count(pid) FROM notify_worker_status}, '2', 20), 'two workers run');
$node2->safe_psql('postgres', $trickle_procedure);
sub commits
{
	return stat_after_flush($node2,
		q{SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()});
}
my $commits0 = commits();
$node2->safe_psql('postgres', "CALL trickle('two', $n, 0.01)");
ok(defined NotifyTest::Node::wait_for($node2,
		q{SELECT count(*) FROM notify_outbox WHERE recipient LIKE 'two%' AND status = 'sent'}, "$n", 30),
	"two workers: all $n trickled messages are recorded sent");
# less the trickle's own commits, and the sessions of this script in
# between (wait_for's queries, the next flush message): a few dozen at most
my $worker2 = commits() - $commits0 - $n;
diag("two workers, $n single-message commits 10 ms apart: $worker2 other commits");
cmp_ok($worker2, '<=', int($n * 1.5),
	"two workers committed about one transaction per message ($worker2 for $n), not one claim per worker per commit");
$node2->stop;
$smtp->stop;
done_testing();

# Crash safety: kill -9 of the worker mid-batch, an immediate shutdown of
# the whole server, and SIGTERM during a slow send.  Nothing enqueued is
# lost; duplicates are at most the messages in flight.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use NotifyTest::SMTP;
use NotifyTest::Node;

my $smtp = NotifyTest::SMTP->start(delay_ms => 20);
my $node = NotifyTest::Node->new('crash', smtp => $smtp,
	conf => {
		'notify.batch_size' => 20,
		'notify.max_connections' => 2,
		'notify.poll_interval' => q{'200ms'},
		'notify.shutdown_timeout' => q{'2s'},
		'restart_after_crash' => 'on',
	});

sub enqueue_many
{
	my ($prefix, $n) = @_;
	$node->safe_psql('postgres', qq{
		SELECT count(notify_enqueue('notify.message', '$prefix' || i || '\@example.com',
			jsonb_build_object('subject', 'n' || i, 'text', 'body')))
		FROM generate_series(1, $n) i});
}

sub delivered
{
	my ($prefix) = @_;
	my %seen;
	$seen{ $_->{rcpt_tos}[0] }++ for grep { $_->{rcpt_tos}[0] =~ /^\Q$prefix\E\d/ } $smtp->messages;
	return \%seen;
}

# ---- kill -9 of the worker mid-batch ----
enqueue_many('k', 300);
$smtp->wait_for_count(40, 20);
my $pid = NotifyTest::Node::worker_pid($node);
ok(kill('KILL', $pid), "killed the worker (pid $pid) with SIGKILL mid-batch");
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FILTER (WHERE status = 'sent') FROM notify_outbox WHERE recipient LIKE 'k%'}, '300', 90),
	'after the crash restart, every row ends sent');
my $seen = delivered('k');
is(scalar(keys %$seen), 300, 'every recipient got its message');
my $dups = grep { $_ > 1 } values %$seen;
cmp_ok($dups, '<=', 20, "duplicates ($dups) at most the in-flight batch (notify.batch_size = 20)");
note("kill -9: $dups duplicate deliveries");
# the Message-ID is not written before the send, yet a duplicate carries the same
my %mids;
$mids{ $_->{rcpt_tos}[0] }{ $_->{message_id} } = 1 for grep { $_->{rcpt_tos}[0] =~ /^k\d/ } $smtp->messages;
is(scalar(grep { keys %$_ > 1 } values %mids), 0, 'each recipient\'s copies carry one Message-ID');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM notify_outbox WHERE recipient LIKE 'k%' AND message_id IS NULL}), '0',
	'every sent row stored its Message-ID');

# ---- immediate shutdown of the server, then restart: the backlog resumes ----
$smtp->set_mode({ mode => 'accept', delay_ms => 50 });
enqueue_many('i', 200);
$smtp->wait_for_count($smtp->count + 10, 20);
$node->stop('immediate');
my $at_stop = scalar keys %{ delivered('i') };
$node->start;
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FILTER (WHERE status = 'sent') FROM notify_outbox WHERE recipient LIKE 'i%'}, '200', 90),
	"after immediate shutdown ($at_stop delivered) and restart, all 200 are sent");
$seen = delivered('i');
is(scalar(keys %$seen), 200, 'every recipient got its message');
$dups = grep { $_ > 1 } values %$seen;
cmp_ok($dups, '<=', 20, "duplicates ($dups) at most the in-flight batch");

# ---- SIGTERM during a slow send ----
$smtp->set_mode({ mode => 'stall', seconds => 30 });
my $id = $node->safe_psql('postgres',
	q{SELECT notify_enqueue('notify.message', 'slow@example.com', '{"subject": "s", "text": "t"}')});
ok(defined NotifyTest::Node::wait_for($node, 'SELECT in_flight FROM notify_worker_status', '1', 10),
	'a send is in flight against a stalled server');

# A claim writes nothing to the row: it stays pending in the table, and the
# worker's in-flight registry makes it "sending" for everything that asks.
is($node->safe_psql('postgres', "SELECT status || ' ' || attempts FROM notify_outbox WHERE id = $id"), 'pending 0',
	'the row being sent is pending in the table, no attempt counted yet');
is($node->safe_psql('postgres', "SELECT notify_in_flight($id) AND $id = ANY (notify_in_flight_ids())"), 't',
	'notify_in_flight and notify_in_flight_ids show it');
is($node->safe_psql('postgres', "SELECT pending || ' ' || due || ' ' || sending FROM notify_backlog WHERE channel = 'email'"),
	'0 0 1', 'notify_backlog counts it as sending, not pending');
my ($rc, $out, $err) = $node->psql('postgres', "SELECT notify_cancel($id)");
like($err, qr/notification $id is sending, only pending notifications can be canceled/, 'notify_cancel refuses it');
($rc, $out, $err) = $node->psql('postgres', "SELECT notify_retry($id)");
like($err, qr/notification $id is sending, it cannot be retried/, 'notify_retry refuses it');
is($node->safe_psql('postgres', "SELECT notify_cancel_matching(recipient => 'slow\@example.com')"), '0',
	'notify_cancel_matching passes over it');
# the worker's own expiry check (every poll interval here) passes over rows in flight
my $exp = $node->safe_psql('postgres',
	q{SELECT notify_enqueue('notify.message', 'slow2@example.com', '{"subject": "s", "text": "t"}',
		expires_at => now() + interval '1 second')});
ok(defined NotifyTest::Node::wait_for($node, 'SELECT in_flight FROM notify_worker_status', '2', 10),
	'a second send, due to expire in 1 s, is in flight');
sleep 2;
is($node->safe_psql('postgres', "SELECT status || ' ' || notify_in_flight($exp) FROM notify_outbox WHERE id = $exp"),
	'pending true', 'past its expires_at, the row in flight is not expired under the worker');
$pid = NotifyTest::Node::worker_pid($node);
my $t = time;
kill 'TERM', $pid;
my $gone;
while (time - $t < 15)
{
	if (!kill(0, $pid)) { $gone = time - $t; last; }
	sleep 0.05;
}
ok(defined $gone, 'the worker exits on SIGTERM');
cmp_ok($gone // 99, '<', 3.5, sprintf('within notify.shutdown_timeout (2 s) plus slack: %.2f s', $gone // 99));
$smtp->set_mode({ mode => 'accept' });
# the released row goes out after the worker comes back (restart interval)
ok(defined NotifyTest::Node::wait_for($node, "SELECT status FROM notify_outbox WHERE id = $id", 'sent', 30),
	'the released message is sent by the next worker');
is($node->safe_psql('postgres', "SELECT attempts FROM notify_outbox WHERE id = $id"), '1',
	'the interrupted send did not count as an attempt');
ok(defined NotifyTest::Node::wait_for($node, "SELECT status || ' ' || attempts FROM notify_outbox WHERE id = $exp",
		'expired 0', 10),
	'released after its expires_at, the other row ends expired, its interrupted send not counted');
ok($node->log_contains(qr/notify worker.*exited with exit code 1/), 'worker exit logged');

$node->stop;
$smtp->stop;
done_testing();

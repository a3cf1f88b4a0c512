# Failure classes against a real SMTP server that misbehaves on request:
# 451 then 250 retries and delivers once; 550 fails at once; a stalled
# server times out and is retried; a refused connection is retried; the
# admin functions requeue and cancel.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use NotifyTest::SMTP;
use NotifyTest::Node;

my $smtp = NotifyTest::SMTP->start;
my $node = NotifyTest::Node->new('retries', smtp => $smtp,
	conf => { 'notify.timeout' => q{'1s'}, 'notify.poll_interval' => q{'200ms'} });

sub enqueue
{
	my ($rcpt) = @_;
	return $node->safe_psql('postgres',
		qq{SELECT notify_enqueue('notify.message', '$rcpt', '{"subject": "s", "text": "t"}')});
}

sub wait_row
{
	my ($id, $status, $timeout) = @_;
	return NotifyTest::Node::wait_for($node,
		"SELECT status FROM notify_outbox WHERE id = $id", $status, $timeout // 20);
}

sub received
{
	my ($rcpt) = @_;
	return scalar grep { $_->{rcpt_tos}[0] eq $rcpt } $smtp->messages;
}

# ---- 451 once, then accepted ----
$smtp->set_mode({ mode => '451', at => 'data', count => 1 });
my $id = enqueue('retry@example.com');
ok(defined wait_row($id, 'sent'), '451 then 250: sent');
is(received('retry@example.com'), 1, 'delivered exactly once');
is($node->safe_psql('postgres',
		"SELECT string_agg(outcome || ':' || coalesce(response_code::text, '-') || ':' || coalesce(enhanced_status, '-'), ',' ORDER BY attempt) FROM notify_attempts WHERE outbox_id = $id"),
	'transient:451:4.3.0,sent:250:2.0.0', 'attempt history: transient 451, then sent 250');
is($node->safe_psql('postgres', "SELECT attempts, last_error LIKE '%451%' FROM notify_outbox WHERE id = $id"),
	'2|t', 'two attempts, last_error keeps the 451');

# ---- 550: permanent, no retry ----
$smtp->set_mode({ mode => '550' });
$id = enqueue('unknown@example.com');
ok(defined wait_row($id, 'failed'), '550: failed');
sleep 0.5;
is($node->safe_psql('postgres', "SELECT attempts, last_error FROM notify_outbox WHERE id = $id"),
	'1|smtp: 550 5.1.1 User unknown', 'one attempt only; last_error is the reply');
is($node->safe_psql('postgres', "SELECT count(*), max(outcome), max(enhanced_status) FROM notify_attempts WHERE outbox_id = $id"),
	'1|permanent|5.1.1', 'one permanent attempt recorded');
is(received('unknown@example.com'), 0, 'nothing delivered');
$smtp->set_mode({ mode => 'accept' });

# ---- a stalled server times out (notify.timeout = 1s) and is retried ----
$smtp->set_mode({ mode => 'stall', seconds => 4, then => 'drop', count => 1 });
my $t = time;
$id = enqueue('stall@example.com');
ok(defined wait_row($id, 'sent', 30), 'stalled once: sent on retry');
like($node->safe_psql('postgres',
		"SELECT string_agg(outcome, ',' ORDER BY attempt) FROM notify_attempts WHERE outbox_id = $id"),
	qr/^transient,(transient,)*sent$/, 'attempt history: timeout (transient), then sent');
cmp_ok($node->safe_psql('postgres',
		"SELECT extract(epoch FROM duration) FROM notify_attempts WHERE outbox_id = $id AND attempt = 1"),
	'<', 2.5, 'the stalled attempt ended near notify.timeout');
like($node->safe_psql('postgres', "SELECT error FROM notify_attempts WHERE outbox_id = $id AND attempt = 1"),
	qr/timeout|timed out/i, 'its error says timeout');
is(received('stall@example.com'), 1, 'delivered once');

# ---- connection refused: transient until max_attempts, then failed ----
$node->safe_psql('postgres', q{ALTER SYSTEM SET notify.smtp_url = 'smtp://127.0.0.1:9'; SELECT pg_reload_conf();});
sleep 0.3;
$id = $node->safe_psql('postgres',
	q{SELECT notify_enqueue('notify.message', 'refused@example.com', '{"subject": "s", "text": "t"}', category => 'internal')});
$node->safe_psql('postgres', "UPDATE notify_outbox SET max_attempts = 3 WHERE id = $id");
ok(defined wait_row($id, 'failed', 30), 'refused connections: failed after max_attempts');
is($node->safe_psql('postgres',
		"SELECT string_agg(outcome, ',' ORDER BY attempt) FROM notify_attempts WHERE outbox_id = $id"),
	'transient,transient,transient', 'three transient attempts');
my $gaps = $node->safe_psql('postgres', qq{
	SELECT string_agg(round(extract(epoch FROM started_at - lag)::numeric, 2)::text, ',')
	FROM (SELECT started_at, lag(finished_at) OVER (ORDER BY attempt) FROM notify_attempts WHERE outbox_id = $id) s
	WHERE lag IS NOT NULL});
note("gaps between attempts: $gaps (retry_base 100ms, doubling, jittered)");
my @g = split /,/, $gaps;
ok($g[0] >= 0.04 && $g[1] >= 0.09, 'retries wait a backoff');

# ---- admin: retry a failed row, retry_failed, cancel ----
$node->safe_psql('postgres', "ALTER SYSTEM SET notify.smtp_url = '" . $smtp->url . "'; SELECT pg_reload_conf();");
sleep 0.3;
$node->safe_psql('postgres', "SELECT notify_retry($id)");
ok(defined wait_row($id, 'sent'), 'notify_retry: a failed row is sent once the relay is back');
is(received('refused@example.com'), 1, 'delivered once');

$node->safe_psql('postgres', q{ALTER SYSTEM SET notify.smtp_url = 'smtp://127.0.0.1:9'; SELECT pg_reload_conf();});
sleep 0.3;
my $t_outage = $node->safe_psql('postgres', 'SELECT now()');
my @ids = map { enqueue("outage$_\@example.com") } 1 .. 3;
$node->safe_psql('postgres', "UPDATE notify_outbox SET max_attempts = 1 WHERE id IN (" . join(',', @ids) . ")");
ok(defined NotifyTest::Node::wait_for($node,
		"SELECT count(*) FROM notify_outbox WHERE id IN (" . join(',', @ids) . ") AND status = 'failed'", '3', 20),
	'outage: three failed');
$node->safe_psql('postgres', "ALTER SYSTEM SET notify.smtp_url = '" . $smtp->url . "'; SELECT pg_reload_conf();");
sleep 0.3;
is($node->safe_psql('postgres', "SELECT notify_retry_failed('$t_outage')"), '3', 'notify_retry_failed requeues them');
ok(defined NotifyTest::Node::wait_for($node,
		"SELECT count(*) FROM notify_outbox WHERE id IN (" . join(',', @ids) . ") AND status = 'sent'", '3', 20),
	'and they are sent');

my $later = $node->safe_psql('postgres',
	q{SELECT notify_enqueue('notify.message', 'later@example.com', '{"subject": "s", "text": "t"}', send_at => now() + interval '1 hour')});
is($node->safe_psql('postgres', "SELECT notify_cancel($later)"), 't', 'notify_cancel a scheduled row');
is($node->safe_psql('postgres', "SELECT notify_cancel($later)"), 'f', 'canceling again is a no-op');
my ($rc, $out, $err) = $node->psql('postgres', "SELECT notify_cancel($ids[0])");
like($err, qr/is sent, only pending notifications can be canceled/, 'a sent row cannot be canceled');

# ---- expires_at: a message not sent in time ends expired, not late ----
$node->safe_psql('postgres', q{SELECT notify_channel_pause('email')});
my $exp = $node->safe_psql('postgres',
	q{SELECT notify_enqueue('notify.message', 'late@example.com', '{"subject": "s", "text": "t"}', expires_at => now() + interval '1 second')});
sleep 1.5;
$node->safe_psql('postgres', q{SELECT notify_channel_resume('email')});
ok(defined wait_row($exp, 'expired', 10), 'a row past expires_at ends expired');
like($node->safe_psql('postgres', "SELECT last_error FROM notify_outbox WHERE id = $exp"), qr/^expired at .* before it could be sent$/,
	'and says so');
is(received('late@example.com'), 0, 'it is never sent');

$node->stop;
$smtp->stop;
done_testing();

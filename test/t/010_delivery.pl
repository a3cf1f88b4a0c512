# The delivery path end to end against a real SMTP server on 127.0.0.1:
# commit delivers at once (no polling), rollback never does, NOTIFY and
# COMMIT PREPARED are served, and the worker waits for CREATE EXTENSION.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use NotifyTest::SMTP;
use NotifyTest::Node;

my $smtp = NotifyTest::SMTP->start;

# A worker whose fallback poll is 60 s: anything delivered quickly came
# through the commit-time wake-up.  The extension is created later.
my $node = NotifyTest::Node->new('delivery', smtp => $smtp,
	create_extension => 0,
	conf => { 'notify.poll_interval' => q{'60s'} });

# ---- waiting for CREATE EXTENSION ----
ok( $node->wait_for_log(qr/extension "notify" is not installed in database "postgres"; waiting/),
	'worker says once that it waits for the extension');
$node->safe_psql('postgres', 'CREATE EXTENSION notify');
my $t0 = time;
my $id = $node->safe_psql('postgres',
	q{SELECT notify_enqueue('notify.message', 'first@example.com', '{"subject": "Hello", "text": "First message"}')});
is($smtp->wait_for_count(1, 10), 1, 'CREATE EXTENSION, then enqueue: delivered without a restart');
my $first_latency = time - $t0;
cmp_ok($first_latency, '<', 5, "delivered in ${first_latency}s although the poll interval is 60 s");
ok(defined NotifyTest::Node::wait_for($node, "SELECT status FROM notify_outbox WHERE id = $id", "sent", 10),
	"row is sent");

# ---- what arrived ----
my ($msg) = $smtp->messages;
is($msg->{mail_from}, 'notify@example.com', 'envelope sender is notify.from_address');
is_deeply($msg->{rcpt_tos}, ['first@example.com'], 'envelope recipient');
my $raw = $smtp->message_bytes(0);
like($raw, qr/^Subject: Hello\r$/m, 'Subject header');
like($raw, qr/First message/, 'body');
my $row = $node->safe_psql('postgres',
	"SELECT message_id, provider_message_id, attempts, sent_at IS NOT NULL FROM notify_outbox WHERE id = $id");
my ($mid, $qid, $attempts, $has_sent_at) = split /\|/, $row;
like($raw, qr/^Message-ID: <\Q$mid\E>\r$/m, 'Message-ID header is the one stored on the row');
is($qid, $msg->{queue_id}, 'provider_message_id is the queue id from the 250 reply');
is($attempts, '1', 'one attempt');
is($has_sent_at, 't', 'sent_at set');
is($node->safe_psql('postgres',
		"SELECT outcome, response_code, enhanced_status, response_text LIKE '%queued as $qid' FROM notify_attempts WHERE outbox_id = $id"),
	'sent|250|2.0.0|t', 'attempt recorded with the reply');

# ---- commit is delivered at once, rollback never ----
my @lat;
for my $i (1 .. 5)
{
	my $before = $smtp->count;
	my $t = time;
	$node->safe_psql('postgres',
		qq{BEGIN; SELECT notify_enqueue('notify.message', 'c$i\@example.com', '{"subject": "s", "text": "t"}'); COMMIT;});
	$smtp->wait_for_count($before + 1, 10);
	push @lat, time - $t;
}
my @sorted = sort { $a <=> $b } @lat;
cmp_ok($sorted[2], '<', 1, "median commit-to-accepted latency $sorted[2]s with a 60 s poll (the wake-up works)");

my $before = $smtp->count;
$node->safe_psql('postgres',
	q{BEGIN; SELECT notify_enqueue('notify.message', 'rolled@example.com', '{"subject": "s", "text": "t"}'); ROLLBACK;});
$node->safe_psql('postgres',
	q{SELECT notify_enqueue('notify.message', 'after@example.com', '{"subject": "s", "text": "t"}')});
$smtp->wait_for_count($before + 1, 10);
sleep 0.3;
is(scalar(grep { $_->{rcpt_tos}[0] eq 'rolled@example.com' } $smtp->messages), 0, 'rolled back: never sent');
is($node->safe_psql('postgres', q{SELECT count(*) FROM notify_outbox WHERE recipient = 'rolled@example.com'}),
	'0', 'rolled back: no row');

# ---- NOTIFY notify wakes an idle worker ----
# Once the worker is idle (the rows above recorded, nothing due or in
# flight: it is waiting for the 60 s poll), a row written with triggers
# off (replica role) does not wake it.  Without the wait, a worker still
# busy with the previous row (the SMTP server has it before the worker
# records it and looks for more) may claim the new row on its own.
$node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM notify_outbox WHERE status = 'pending' AND next_attempt_at <= now()) = 0
	   AND cardinality(notify_in_flight_ids()) = 0
	   AND (SELECT state FROM notify_worker_status) = 'idle'})
	or die 'the worker did not become idle';
$node->safe_psql('postgres', q{
	SET session_replication_role = replica;
	INSERT INTO notify_outbox (template_key, recipient, payload)
	VALUES ('ticket.replied', 'silent@example.com', '{"subject": "s", "text": "t"}');
});
sleep 1;
is(scalar(grep { $_->{rcpt_tos}[0] eq 'silent@example.com' } $smtp->messages), 0,
	'a row that did not wake the worker waits for the poll');
$before = $smtp->count;
$node->safe_psql('postgres', 'NOTIFY notify');
is($smtp->wait_for_count($before + 1, 5), $before + 1, 'NOTIFY notify wakes the worker');

# ---- COMMIT PREPARED: the fallback poll delivers it ----
$node->safe_psql('postgres', q{ALTER SYSTEM SET notify.poll_interval = '1s'; SELECT pg_reload_conf();});
sleep 0.5;
$before = $smtp->count;
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT notify_enqueue('notify.message', 'prepared@example.com', '{"subject": "s", "text": "t"}');
	PREPARE TRANSACTION 'p1';
});
sleep 1.5;
is(scalar(grep { $_->{rcpt_tos}[0] eq 'prepared@example.com' } $smtp->messages), 0,
	'a prepared transaction is not delivered');
$node->safe_psql('postgres', q{COMMIT PREPARED 'p1'});
is($smtp->wait_for_count($before + 1, 5), $before + 1, 'COMMIT PREPARED is delivered by the fallback poll');

# ---- a shipped template in Japanese: the worker renders what notify_preview shows ----
my $payload = q{{"product_name": "Acme", "ticket_id": 42, "ticket_subject": "請求書の住所が違います", "agent_name": "佐藤", "customer_name": "山田 花子", "reply_body": "住所を修正しました。新しい請求書をご確認ください。", "ticket_url": "https://help.example.com/t/42"}};
$before = $smtp->count;
my $tid = $node->safe_psql('postgres',
	qq{SELECT notify_enqueue('ticket.replied', 'hanako\@example.com', '$payload', locale => 'ja-JP')});
is($smtp->wait_for_count($before + 1, 10), $before + 1, 'templated message delivered');
is($node->safe_psql('postgres', "SELECT template_version || ' ' || locale FROM notify_outbox WHERE id = $tid"),
	'1 ja', 'row records the resolved template version and locale (ja-JP -> ja)');
my ($psubject, $ptext) = split /\x1f/, $node->safe_psql('postgres',
	qq{SELECT subject || chr(31) || text_body FROM notify_preview('ticket.replied', '$payload', 'ja-JP')});
my $eml = $smtp->message_bytes($before);
my ($subject_header) = $eml =~ /^(Subject:.*?)\r\n(?![ \t])/ms;
$subject_header =~ s/\r\n([ \t])/$1/g;
$subject_header =~ s/^Subject: //;
require Encode;
is(Encode::decode('MIME-Header', $subject_header), Encode::decode('UTF-8', $psubject),
	'the Subject header decodes to the previewed Japanese subject');
my ($b64) = $eml =~ m{Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n(.*?)\r\n\r\n}s;
require MIME::Base64;
my $text = MIME::Base64::decode_base64($b64 // '');
$text =~ s/\r\n/\n/g;
is($text, $ptext, 'the text part decodes to the previewed Japanese body, byte for byte');

# ---- status view and pg_stat_activity ----
my $status = $node->safe_psql('postgres',
	q{SELECT pid > 0, database, state, sent >= 10, failed, in_flight FROM notify_worker_status});
is($status, 't|postgres|idle|t|0|0', 'notify_worker_status');
is($node->safe_psql('postgres',
		q{SELECT backend_type, state FROM pg_stat_activity WHERE backend_type = 'notify worker'}),
	'notify worker|idle', 'visible in pg_stat_activity');

# every row ended sent, each exactly once
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE status <> 'sent') FROM notify_outbox}),
	'0', 'all rows sent');
my %seen;
$seen{ $_->{rcpt_tos}[0] }++ for $smtp->messages;
is(scalar(grep { $_ > 1 } values %seen), 0, 'no recipient got a message twice');

$node->stop;
$smtp->stop;
done_testing();

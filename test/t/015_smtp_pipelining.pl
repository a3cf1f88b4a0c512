# SMTP PIPELINING (RFC 2920) against a real SMTP server, once with the
# server offering PIPELINING (MAIL, RCPT and DATA go in one write) and once
# without (each command waits for its reply): delivery, lines starting with
# ".", refusals of MAIL, RCPT and DATA, 421, a dropped connection and a
# stalled server, each with the right outcome for the right row and the
# connection still usable afterwards where the server kept it open.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use MIME::QuotedPrint ();
use NotifyTest::SMTP;
use NotifyTest::Node;

for my $pipelining (1, 0)
{
	my $mode = $pipelining ? 'pipelining' : 'lock-step';

	# data_without_rcpt: DATA gets 354 even when every RCPT was refused,
	# which RFC 2920 3.1 tells a pipelining client to expect.
	my $smtp = NotifyTest::SMTP->start(pipelining => $pipelining, data_without_rcpt => 1);
	my $node = NotifyTest::Node->new("pipelining_$pipelining", smtp => $smtp,
		conf => {
			'notify.max_connections' => 1,
			'notify.timeout' => q{'1s'},
			'notify.poll_interval' => q{'200ms'} });

	my $enqueue = sub {
		my ($rcpt, $text) = @_;
		$text //= 't';
		return $node->safe_psql('postgres',
			"SELECT notify_enqueue('notify.message', '$rcpt', jsonb_build_object('subject', 's', 'text', \$t\$$text\$t\$))");
	};
	my $wait_row = sub {
		my ($id, $status, $timeout) = @_;
		return NotifyTest::Node::wait_for($node,
			"SELECT status FROM notify_outbox WHERE id = $id", $status, $timeout // 20);
	};
	my $received = sub {
		my ($rcpt) = @_;
		return grep { $_->{rcpt_tos}[0] eq $rcpt } $smtp->messages;
	};
	my $history = sub {
		my ($id) = @_;
		return $node->safe_psql('postgres',
			"SELECT string_agg(outcome || ':' || coalesce(response_code::text, '-'), ',' ORDER BY attempt) FROM notify_attempts WHERE outbox_id = $id");
	};

	# ---- delivery, one connection, commands pipelined or not ----
	my @ids = map { $enqueue->("d$_\@example.com") } 1 .. 5;
	ok(defined NotifyTest::Node::wait_for($node,
			"SELECT count(*) FROM notify_outbox WHERE status = 'sent'", '5', 20),
		"$mode: five messages sent");
	my @msgs = $smtp->messages;
	is(scalar(grep { $_->{pipelined} } @msgs), $pipelining ? 5 : 0,
		"$mode: the server saw " . ($pipelining ? 'every' : 'no') . ' transaction pipelined');
	my %peers = map { $_->{peer}[1] => 1 } @msgs;
	is(scalar(keys %peers), 1, "$mode: all over one connection");
	my ($port) = keys %peers;
	my $since = 0;				# messages before this one may be on other connections

	# how many messages since $since came over a connection other than $port
	my $other_conn = sub {
		my @m = $smtp->messages;
		return scalar grep { $_->{peer}[1] != $port } @m[ $since .. $#m ];
	};

	# ---- lines starting with "." arrive intact ----
	my $text = ".\n..\n.hidden\nmiddle . dot\n" . ('.' x 100) . "\n" . ('x' x 75) . ".after a soft break\n. \nend";
	my $id = $enqueue->('dots@example.com', $text);
	ok(defined $wait_row->($id, 'sent'), "$mode: message with leading dots sent");
	my ($dots) = $received->('dots@example.com');
	my $raw = do { local $/; open(my $fh, '<:raw', $dots->{path}) or die; <$fh> };
	unlike($raw, qr/^\./m, "$mode: no line of the stored message starts with a dot");
	my ($body) = $raw =~ /\r\n\r\n(.*)\z/s;
	my $decoded = MIME::QuotedPrint::decode_qp($body);
	$decoded =~ s/\r\n/\n/g;
	$decoded =~ s/\n\z//;
	is($decoded, $text, "$mode: the text decodes to what was enqueued, dots and all");

	# ---- 550 to RCPT: fails at once; the next message goes on the same connection ----
	$smtp->set_mode({ rules => [ { rcpt_prefix => 'bounce', mode => '550' } ] });
	my @mixed = map { $enqueue->(($_ % 3 == 0 ? 'bounce' : 'fine') . "$_\@example.com") } 1 .. 9;
	ok(defined NotifyTest::Node::wait_for($node,
			"SELECT count(*) FROM notify_outbox WHERE id IN (" . join(',', @mixed) . ") AND status IN ('sent', 'failed')", '9', 20),
		"$mode: a mix of good and refused recipients is done");
	is($node->safe_psql('postgres', "SELECT string_agg(split_part(recipient, '\@', 1) || '=' || status || ':' || attempts, ',' ORDER BY id) FROM notify_outbox WHERE id IN (" . join(',', @mixed) . ")"),
		'fine1=sent:1,fine2=sent:1,bounce3=failed:1,fine4=sent:1,fine5=sent:1,bounce6=failed:1,fine7=sent:1,fine8=sent:1,bounce9=failed:1',
		"$mode: each refused recipient failed after one attempt, every other row sent");
	is($node->safe_psql('postgres', "SELECT DISTINCT last_error FROM notify_outbox WHERE recipient LIKE 'bounce%'"),
		'smtp: 550 5.1.1 User unknown', "$mode: last_error is the RCPT reply");
	is($node->safe_psql('postgres', "SELECT count(*), min(outcome), max(outcome), max(enhanced_status) FROM notify_attempts a JOIN notify_outbox o ON o.id = a.outbox_id WHERE o.recipient LIKE 'bounce%'"),
		'3|permanent|permanent|5.1.1', "$mode: three permanent attempts recorded with the reply");
	is(scalar(map { $received->("fine$_\@example.com") } 1, 2, 4, 5, 7, 8), 6, "$mode: every good recipient got its message once");
	is(scalar(grep { $_->{rcpt_tos}[0] =~ /^bounce/ } $smtp->messages), 0, "$mode: nothing stored for refused recipients");
	my @empty = grep { ($_->{mode} // '') eq 'no-recipients' } $smtp->events;
	if ($pipelining)
	{
		is(scalar(@empty), 3, 'pipelining: the 354 that came after each refused RCPT was answered');
		is(scalar(grep { $_->{size} == 0 } @empty), 3, 'pipelining: with an empty message (a lone ".")');
	}
	else
	{
		is(scalar(@empty), 0, 'lock-step: no DATA after a refused RCPT');
	}
	is($other_conn->(), 0, "$mode: still the same connection");
	$smtp->set_mode({ mode => 'accept' });

	# ---- a backlog: with PIPELINING, the next message's MAIL, RCPT and DATA
	# follow each message in the same write (one round trip per message);
	# refused recipients in the chain fail alone ----
	$smtp->set_mode({ rules => [ { rcpt_prefix => 'bounce', mode => '550' } ] });
	my $before = $smtp->count;
	my @backlog = split /\n/, $node->safe_psql('postgres', q{
		SELECT notify_enqueue('notify.message', CASE WHEN i % 5 = 0 THEN 'bounce' ELSE 'chain' END || i || '@example.com',
							  jsonb_build_object('subject', 's', 'text', 'backlog ' || i))
		FROM generate_series(1, 30) i ORDER BY i});
	ok(defined NotifyTest::Node::wait_for($node,
			"SELECT count(*) FROM notify_outbox WHERE id IN (" . join(',', @backlog) . ") AND status IN ('sent', 'failed')", '30', 30),
		"$mode: a backlog of 30 is done");
	is($node->safe_psql('postgres', "SELECT string_agg(DISTINCT CASE WHEN recipient LIKE 'bounce%' THEN 'bounce' ELSE 'chain' END || '=' || status || ':' || attempts, ',') FROM notify_outbox WHERE id IN (" . join(',', @backlog) . ")"),
		'bounce=failed:1,chain=sent:1', "$mode: every refused recipient failed once, every other row sent once");
	my @chain = grep { $_->{rcpt_tos}[0] =~ /^chain/ } $smtp->messages;
	is(scalar(@chain), 24, "$mode: 24 messages stored");
	my %text_ok = map { my ($n) = $_->{rcpt_tos}[0] =~ /^chain(\d+)\@/; $n => 1 } @chain;
	is(scalar(keys %text_ok), 24, "$mode: each good recipient once");
	my $chained = grep { $_->{next_pipelined} } @chain;
	if ($pipelining)
	{
		cmp_ok($chained, '>=', 12, "pipelining: $chained of 24 messages had the next group right behind them");
	}
	else
	{
		is($chained, 0, 'lock-step: no message had commands right behind it');
	}
	is($other_conn->(), 0, "$mode: still the same connection");
	$smtp->set_mode({ mode => 'accept' });

	# ---- the connection drops after a message whose next group was already
	# sent: both messages fail transient and are sent on retry, once ----
	$smtp->set_mode({ mode => 'drop', at => 'data', count => 1 });
	my @lost = split /\n/, $node->safe_psql('postgres', q{
		SELECT notify_enqueue('notify.message', 'lost' || i || '@example.com', '{"subject": "s", "text": "t"}')
		FROM generate_series(1, 10) i ORDER BY i});
	ok(defined NotifyTest::Node::wait_for($node,
			"SELECT count(*) FROM notify_outbox WHERE id IN (" . join(',', @lost) . ") AND status = 'sent'", '10', 30),
		"$mode: a backlog with a dropped connection is sent");
	is($node->safe_psql('postgres', "SELECT string_agg(split_part(recipient, '\@', 1), ',' ORDER BY id) FROM notify_outbox WHERE id IN (" . join(',', @lost) . ") AND attempts > 1"),
		$pipelining ? 'lost1,lost2' : 'lost1',
		"$mode: retried: " . ($pipelining ? 'the dropped message and the one whose commands followed it' : 'the dropped message'));
	is($node->safe_psql('postgres', "SELECT DISTINCT string_agg(outcome || ':' || coalesce(response_code::text, '-'), ',' ORDER BY attempt) FROM notify_attempts WHERE outbox_id IN (" . join(',', @lost) . ") GROUP BY outbox_id HAVING count(*) > 1"),
		'transient:-,sent:250', "$mode: their history: connection lost, then sent");
	is(scalar(grep { $_->{rcpt_tos}[0] =~ /^lost/ } $smtp->messages), 10, "$mode: each stored once");
	$smtp->set_mode({ mode => 'accept' });
	$port = $smtp->messages->[-1]{peer}[1];
	$since = $smtp->count;

	# ---- 451 to MAIL: retried, delivered once ----
	$smtp->set_mode({ mode => '451', at => 'mail', count => 1 });
	$id = $enqueue->('mail451@example.com');
	ok(defined $wait_row->($id, 'sent'), "$mode: 451 to MAIL, then sent");
	is($history->($id), 'transient:451,sent:250', "$mode: attempt history transient 451, then sent");
	is(scalar($received->('mail451@example.com')), 1, "$mode: delivered once");
	is($other_conn->(), 0, "$mode: still the same connection");

	# ---- 550 to DATA (after MAIL and RCPT were accepted): permanent ----
	$smtp->set_mode({ mode => '554', at => 'datacmd', count => 1 });
	$id = $enqueue->('data554@example.com');
	ok(defined $wait_row->($id, 'failed'), "$mode: 554 to DATA: failed");
	is($history->($id), 'permanent:554', "$mode: one permanent attempt");
	$id = $enqueue->('afterdata@example.com');
	ok(defined $wait_row->($id, 'sent'), "$mode: the next message is sent");
	is($other_conn->(), 0, "$mode: still the same connection");

	# ---- 421 to RCPT: the server closes; transient, sent on a new connection ----
	$smtp->set_mode({ mode => '421', at => 'rcpt', count => 1 });
	$id = $enqueue->('rcpt421@example.com');
	ok(defined $wait_row->($id, 'sent'), "$mode: 421 to RCPT, then sent");
	is($history->($id), 'transient:421,sent:250', "$mode: attempt history transient 421, then sent");
	my ($m421) = $received->('rcpt421@example.com');
	isnt($m421->{peer}[1], $port, "$mode: sent over a new connection");
	$port = $m421->{peer}[1];

	# ---- the connection drops in the middle of the group ----
	$smtp->set_mode({ mode => 'drop', at => 'rcpt', count => 1 });
	$id = $enqueue->('drop@example.com');
	ok(defined $wait_row->($id, 'sent'), "$mode: connection dropped at RCPT, then sent");
	like($history->($id), qr/^transient:-,sent:250$/, "$mode: attempt history lost connection, then sent");
	is(scalar($received->('drop@example.com')), 1, "$mode: delivered once");

	# ---- the server stalls on MAIL: timeout, retried ----
	$smtp->set_mode({ mode => 'stall', at => 'mail', seconds => 3, then => 'drop', count => 1 });
	$id = $enqueue->('stall@example.com');
	ok(defined $wait_row->($id, 'sent', 30), "$mode: stalled at MAIL, then sent");
	is($history->($id), 'transient:-,sent:250', "$mode: attempt history timeout, then sent");
	like($node->safe_psql('postgres', "SELECT error FROM notify_attempts WHERE outbox_id = $id AND attempt = 1"),
		qr/timed out/, "$mode: the first attempt timed out");

	# every row ended as planned, and nobody got a message twice
	is($node->safe_psql('postgres', "SELECT count(*) FROM notify_outbox WHERE status NOT IN ('sent', 'failed')"),
		'0', "$mode: no row left in flight");
	my %seen;
	$seen{ $_->{rcpt_tos}[0] }++ for $smtp->messages;
	is(scalar(grep { $_ > 1 } values %seen), 0, "$mode: no recipient got a message twice");

	$node->stop;
	$smtp->stop;
}

done_testing();

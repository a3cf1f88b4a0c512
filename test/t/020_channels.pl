# Webhooks, Slack and HTTP email providers against a real HTTP server on
# 127.0.0.1: Standard Webhooks signatures (checked independently), the
# retry classes, Retry-After, a rate limit, pause and resume, the
# private-address guard, and secrets kept out of logs and tables.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use Digest::SHA qw(hmac_sha256_base64);
use MIME::Base64 qw(decode_base64);
use JSON::PP;
use POSIX ();
use NotifyTest::HTTP;
use NotifyTest::Node;

my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
my $http = NotifyTest::HTTP->start(verify_webhook_secret => $secret,
	postmark_token => 'pm-token-123', sendgrid_key => 'sg-key-456');
my $node = NotifyTest::Node->new('channels',
	conf => { 'notify.timeout' => q{'2s'}, 'notify.poll_interval' => q{'200ms'},
		'notify.retry_base' => q{'200ms'}, 'log_statement' => q{'none'} });

sub psql { return $node->safe_psql('postgres', $_[0]); }
sub wait_status
{
	my ($id, $status, $timeout) = @_;
	return NotifyTest::Node::wait_for($node, "SELECT status FROM notify_outbox WHERE id = $id", $status, $timeout // 20);
}
sub requests_to { my ($p) = @_; return grep { index($_->{path}, $p) == 0 } $http->requests; }

my $url = $http->url('');
psql(qq{SELECT notify_channel_put('hooks', 'webhook', '{"allow_private_destinations": true}', '$secret')});
psql(q{SELECT notify_channel_put('strict', 'webhook', '{}', NULL)});

# ---- a signed webhook ----
my $id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/orders', '{"order": 7, "name": "山田"}', channel => 'hooks')});
ok(defined wait_status($id, 'sent'), 'webhook sent');
my ($req) = requests_to('/webhook/orders');
is($req->{method}, 'POST', 'POST');
is($req->{headers}{'content-type'}, 'application/json', 'JSON body');
is($req->{headers}{'webhook-id'}, "msg_$id", 'webhook-id is stable: msg_<outbox id>');
like($req->{headers}{'webhook-timestamp'}, qr/^\d{10}$/, 'webhook-timestamp in unix seconds');
ok($req->{signature_valid}, 'the server verified the signature');
my ($key) = $secret =~ /^whsec_(.*)$/;
my $expected = hmac_sha256_base64("$req->{headers}{'webhook-id'}.$req->{headers}{'webhook-timestamp'}.$req->{body_bytes}",
	decode_base64($key));
$expected .= '=' while length($expected) % 4;
is($req->{headers}{'webhook-signature'}, "v1,$expected", 'signature matches an independent HMAC-SHA256 (Digest::SHA)');
is($req->{body_bytes}, '{"name": "山田", "order": 7}', 'body is the payload (UTF-8 intact)');
is(psql("SELECT response_code, response_text FROM notify_attempts WHERE outbox_id = $id"), '200|HTTP 200: ok',
	'attempt records the status and the body prefix');

# key rotation: two secrets, two signatures
my $new = psql('SELECT notify_generate_webhook_secret()');
psql(qq{SELECT notify_channel_put('hooks', 'webhook', '{"allow_private_destinations": true}', '$new $secret')});
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/rotated', '{"order": 8}', channel => 'hooks')});
ok(defined wait_status($id, 'sent'), 'sent during rotation');
($req) = requests_to('/webhook/rotated');
my @sigs = split / /, $req->{headers}{'webhook-signature'};
is(scalar @sigs, 2, 'two signatures during key rotation');
ok($req->{signature_valid}, 'the old secret still verifies');

# ---- retry classes ----
$http->set_mode({ rules => [ { path => '/webhook/flaky', status => 500, count => 1 } ] });
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/flaky', '{}', channel => 'hooks')});
ok(defined wait_status($id, 'sent'), '500 once, then sent');
is(psql("SELECT string_agg(outcome || ':' || response_code, ',' ORDER BY attempt) FROM notify_attempts WHERE outbox_id = $id"),
	'transient:500,sent:200', '500 is transient');

$http->set_mode({ rules => [ { path => '/webhook/busy', status => 429, retry_after => 2, count => 1 } ] });
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/busy', '{}', channel => 'hooks')});
ok(defined wait_status($id, 'sent', 30), '429 with Retry-After, then sent');
my @busy = requests_to('/webhook/busy');
cmp_ok($busy[1]{time} - $busy[0]{done}, '>=', 1.9, sprintf('Retry-After: 2 honoured (waited %.2f s, retry_base is 200 ms)', $busy[1]{time} - $busy[0]{done}));

$http->set_mode({ rules => [ { path => '/webhook/gone', status => 404 } ] });
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/gone', '{}', channel => 'hooks')});
ok(defined wait_status($id, 'failed'), '404: failed');
is(psql("SELECT attempts, last_error FROM notify_outbox WHERE id = $id"), '1|http: status 404', '404 is permanent: one attempt');

$http->set_mode({ rules => [ { path => '/webhook/moved', status => 301, headers => { Location => "$url/webhook/elsewhere" } } ] });
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/moved', '{}', channel => 'hooks')});
ok(defined wait_status($id, 'failed'), 'redirect: not followed, failed');

$http->set_mode({ rules => [ { path => '/webhook/timeout', status => 408, count => 1 } ] });
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/timeout', '{}', channel => 'hooks')});
ok(defined wait_status($id, 'sent'), '408 is transient');

$http->set_mode({ rules => [ { path => '/webhook/stall', mode => 'stall', seconds => 5, count => 1 } ] });
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/stall', '{}', channel => 'hooks')});
ok(defined wait_status($id, 'sent', 30), 'a stalled server times out (notify.timeout 2s) and the retry is sent');
like(psql("SELECT error FROM notify_attempts WHERE outbox_id = $id AND attempt = 1"), qr/timeout|timed out/i, 'timeout recorded');

$http->set_mode({ rules => [ { path => '/webhook/reset', mode => 'reset', count => 1 } ] });
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/reset', '{}', channel => 'hooks')});
ok(defined wait_status($id, 'sent', 30), 'a connection reset is transient');
$http->set_mode({});

# ---- the private-address guard ----
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/private', '{}', channel => 'strict')});
ok(defined wait_status($id, 'failed'), 'loopback destination refused by default');
like(psql("SELECT last_error FROM notify_outbox WHERE id = $id"), qr/loopback, private or link-local/, 'and says why');
is(scalar(requests_to('/webhook/private')), 0, 'nothing reached the server');

# ---- pause and resume ----
psql(q{SELECT notify_channel_pause('hooks')});
$id = psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/paused', '{}', channel => 'hooks')});
sleep 1.5;
is(psql("SELECT status FROM notify_outbox WHERE id = $id"), 'pending', 'paused channel: the row stays pending');
is(scalar(requests_to('/webhook/paused')), 0, 'nothing sent while paused');
psql(q{SELECT notify_channel_resume('hooks')});
ok(defined wait_status($id, 'sent', 5), 'resumed: delivered');

# ---- a paused backlog is not read by the other channels' claims ----
# The claim index leads with the channel and the worker claims channel by
# channel: 5,000 pending rows of a paused channel must not be walked by
# every claim of another one (with the index ordered by priority first,
# each claim read all 5,000).  Counted with the index's tuples-read
# statistic, which the worker flushes at most once a second.
sub claim_idx_reads
{
	sleep 1.5;
	return psql(q{SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'notify_outbox_claim_idx'});
}
psql(qq{SELECT notify_channel_put('parked', 'webhook', '{"allow_private_destinations": true}', '$secret')});
psql(q{SELECT notify_channel_pause('parked')});
psql(qq{SELECT count(notify_enqueue('order.shipped', '${url}/webhook/parked', '{}', channel => 'parked')) FROM generate_series(1, 5000)});
my $reads0 = claim_idx_reads();
my @trickle;
for my $i (1 .. 10)
{
	push @trickle, psql(qq{SELECT notify_enqueue('order.shipped', '${url}/webhook/trickle', '{}', channel => 'hooks')});
	sleep 0.05;
}
ok(defined wait_status($trickle[-1], 'sent'), 'beside a paused backlog of 5,000: another channel delivers');
is(psql("SELECT count(*) FROM notify_outbox WHERE id IN (" . join(',', @trickle) . ") AND status = 'sent'"), '10', '... all 10 of its messages');
my $reads = claim_idx_reads() - $reads0;
cmp_ok($reads, '<', 1000, "... and its claims read $reads entries of notify_outbox_claim_idx, not the paused channel's 5,000 each");
is(psql(q{SELECT count(*) FROM notify_outbox WHERE channel = 'parked' AND status = 'pending'}), '5000', 'the paused backlog stays pending');
is(scalar(requests_to('/webhook/parked')), 0, '... and unsent');
psql(q{DELETE FROM notify_outbox WHERE channel = 'parked'});

# ---- round robin: a backlog holds another channel back for one claim ----
# 1,000 rows of 'bulk', then 10 of 'prompt', both released by one commit.
# 'prompt' is in the first claim (notify.batch_size 100) or, when 'bulk'
# filled that one, the next claim starts after 'bulk': its rows go out
# beside the first 100 or so of 'bulk' (66 and 74 in two runs), not after
# the 1,000 queued before them, as when one order over all channels
# (priority, due time, id) decided.
psql(qq{SELECT notify_channel_put('bulk', 'webhook', '{"allow_private_destinations": true, "max_connections": 4}', '$secret'),
			   notify_channel_put('prompt', 'webhook', '{"allow_private_destinations": true, "max_connections": 4}', '$secret')});
psql(q{SELECT notify_channel_pause('bulk'), notify_channel_pause('prompt')});
psql(qq{SELECT count(notify_enqueue('order.shipped', '${url}/webhook/bulk', '{}', channel => 'bulk')) FROM generate_series(1, 1000)});
psql(qq{SELECT count(notify_enqueue('order.shipped', '${url}/webhook/prompt', '{}', channel => 'prompt')) FROM generate_series(1, 10)});
psql(q{SELECT notify_channel_resume('bulk'), notify_channel_resume('prompt')});
ok(defined wait_channel_sent('bulk', 1000, 60) && defined wait_channel_sent('prompt', 10, 60),
	'round robin: 1,000 bulk and 10 prompt webhooks sent');
my $before = psql(q{SELECT count(*) FROM notify_outbox
					WHERE channel = 'bulk' AND sent_at < (SELECT max(sent_at) FROM notify_outbox WHERE channel = 'prompt')});
cmp_ok($before, '<', 300, "... the last prompt one went out after $before of the bulk ones, not after the 1,000 enqueued before it");
diag("round robin: $before bulk webhooks went out before the last prompt one");

# ---- rate limit: 5 messages/s ----
psql(q{SELECT notify_channel_put('limited', 'webhook', '{"allow_private_destinations": true, "rate_limit": 5}')});
psql(qq{SELECT count(notify_enqueue('order.shipped', '${url}/webhook/limited', jsonb_build_object('n', i), channel => 'limited')) FROM generate_series(1, 30) i});
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FROM notify_outbox WHERE channel = 'limited' AND status = 'sent'}, '30', 30),
	'30 rate-limited webhooks sent');
my @lim = sort { $a <=> $b } map { $_->{time} } requests_to('/webhook/limited');
my $span = $lim[-1] - $lim[0];
my $max_window = 0;
for my $i (0 .. $#lim)
{
	my $n = grep { $_ >= $lim[$i] && $_ < $lim[$i] + 1 } @lim;
	$max_window = $n if $n > $max_window;
}
cmp_ok($span, '>=', 4.5, sprintf('30 at 5/s took %.2f s (bucket starts with 5)', $span));
cmp_ok($max_window, '<=', 10, "at most 10 in any 1 s window (5/s plus the initial burst): $max_window");
is(psql(q{SELECT max(attempts) FROM notify_outbox WHERE channel = 'limited'}), '1', 'held-back messages were not attempts');

# ---- Slack ----
psql(qq{SELECT notify_channel_put('ops-slack', 'slack', '{"allow_private_destinations": true}', '${url}/slack/T000/B000/XXXX')});
$id = psql(q{SELECT notify_enqueue('ops.alert', '#ops', '{"text": "disk 91% full", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*disk* 91%"}}]}', channel => 'ops-slack')});
ok(defined wait_status($id, 'sent'), 'Slack message sent');
($req) = requests_to('/slack/');
like($req->{body}, qr/"text":"disk 91% full"/, 'Slack text');
like($req->{body}, qr/"blocks":\[\{.*"type":"section"/, 'Slack blocks');

# ---- HTTP email providers ----
psql(qq{SELECT notify_channel_put('pm', 'http_email',
	'{"provider": "postmark", "url": "${url}/postmark/email", "from_address": "support\@example.com", "from_name": "Support", "allow_private_destinations": true}',
	'pm-token-123')});
$id = psql(q{SELECT notify_enqueue('notify.message', 'a@example.com', '{"subject": "Re: 42", "text": "Fixed.", "html": "<p>Fixed.</p>"}', channel => 'pm')});
ok(defined wait_status($id, 'sent'), 'Postmark: sent');
($req) = requests_to('/postmark/email');
is($req->{status}, 200, 'Postmark emulation accepted the request shape');
is(psql("SELECT provider_message_id FROM notify_outbox WHERE id = $id"), $req->{provider_message_id},
	'provider_message_id is Postmark\'s MessageID');
$id = psql(q{SELECT notify_enqueue('notify.message', 'inactive@example.com', '{"subject": "s", "text": "t"}', channel => 'pm')});
ok(defined wait_status($id, 'failed'), 'Postmark 422 (inactive recipient): failed permanently');

psql(qq{SELECT notify_channel_put('sg', 'http_email',
	'{"provider": "sendgrid", "url": "${url}/sendgrid/v3/mail/send", "from_address": "support\@example.com", "allow_private_destinations": true}',
	'sg-key-456')});
$id = psql(q{SELECT notify_enqueue('notify.message', 'b@example.com', '{"subject": "Re: 43", "text": "Done.", "html": "<p>Done.</p>"}', channel => 'sg')});
ok(defined wait_status($id, 'sent'), 'SendGrid: sent');
($req) = requests_to('/sendgrid/');
is($req->{status}, 202, 'SendGrid emulation accepted the request shape');
is(psql("SELECT provider_message_id FROM notify_outbox WHERE id = $id"), $req->{provider_message_id},
	'provider_message_id is SendGrid\'s X-Message-Id');
psql(qq{SELECT notify_channel_put('sg', 'http_email', '{"provider": "sendgrid", "url": "${url}/sendgrid/v3/mail/send", "allow_private_destinations": true}', 'wrong-key')});
$id = psql(q{SELECT notify_enqueue('notify.message', 'c@example.com', '{"subject": "s", "text": "t"}', channel => 'sg')});
ok(defined NotifyTest::Node::wait_for($node, "SELECT attempts >= 2 FROM notify_outbox WHERE id = $id", 't', 20),
	'a wrong API token (401) is transient: retried');

# ---- connections: keep-alive, servers closing idle ones, many sockets ----
# The worker's wait set keeps a socket's position while the connection
# lives and only changes its mask; these check what that must survive.
# Each server here is fresh, so its connection numbers are ours alone.
sub worker_cpu
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return undef;
	my @f = split ' ', (split /\)/, scalar <$fh>)[-1];
	return ($f[11] + $f[12]) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}
sub wait_channel_sent
{
	my ($ch, $n, $timeout) = @_;
	return NotifyTest::Node::wait_for($node,
		"SELECT count(*) FROM notify_outbox WHERE channel = '$ch' AND status = 'sent'", $n, $timeout // 30);
}
my $worker = NotifyTest::Node::worker_pid($node);

{
	my $srv = NotifyTest::HTTP->start(verify_webhook_secret => $secret);
	my $u   = $srv->url('');
	psql(qq{SELECT notify_channel_put('pooled', 'webhook', '{"allow_private_destinations": true, "max_connections": 2}', '$secret')});
	psql(qq{SELECT count(notify_enqueue('order.shipped', '$u/webhook/pooled', jsonb_build_object('n', i), channel => 'pooled')) FROM generate_series(1, 30) i});
	ok(defined wait_channel_sent('pooled', 30), 'keep-alive: 30 webhooks sent');
	my @r = $srv->requests;
	my %conns = map { $_->{conn} => 1 } @r;
	cmp_ok(scalar(keys %conns), '<=', 2, sprintf('... over at most max_connections (2) connections (%d)', scalar keys %conns));
	is(scalar(grep { $_->{signature_valid} } @r), 30, '... each signed for its own body on reused handles');
	is(join(',', sort { $a <=> $b } map { $_->{body} =~ /"n": (\d+)/ ? $1 : 0 } @r), join(',', 1 .. 30),
		'... each body sent once');

	# a 429 with Retry-After, then a 503 without, on the same (only) pooled
	# handle: the second must not inherit the first's Retry-After (libcurl
	# keeps it on the handle; recent versions reset it per transfer, older
	# ones did not, and http.c asks only when the response has the header)
	$srv->set_mode({ rules => [ { path => '/webhook/ra1', status => 429, retry_after => 60, count => 1 },
		{ path => '/webhook/ra2', status => 503, count => 1 } ] });
	psql(qq{SELECT notify_channel_put('single', 'webhook', '{"allow_private_destinations": true, "max_connections": 1}', '$secret')});
	my $ra1 = psql(qq{SELECT notify_enqueue('order.shipped', '$u/webhook/ra1', '{}', channel => 'single')});
	ok(defined NotifyTest::Node::wait_for($node, "SELECT attempts FROM notify_outbox WHERE id = $ra1", '1'), '429 with Retry-After: 60 answered');
	my $ra2 = psql(qq{SELECT notify_enqueue('order.shipped', '$u/webhook/ra2', '{}', channel => 'single')});
	ok(defined wait_status($ra2, 'sent', 15), 'a following 503 without Retry-After is retried at retry_base, not after 60 s');
	is(psql("SELECT status FROM notify_outbox WHERE id = $ra1"), 'pending', '... while the 429 still waits its 60 s');
	$srv->set_mode({});
	$srv->stop;
}

# Servers that close idle keep-alive connections, with a FIN or a RST: the
# worker must neither spin on the dead sockets nor fail the next requests.
for my $how ('fin', 'rst')
{
	my $srv = NotifyTest::HTTP->start(idle_timeout => 0.5, $how eq 'rst' ? (args => ['--idle-reset']) : ());
	my $u   = $srv->url('');
	psql(qq{SELECT notify_channel_put('idle_$how', 'webhook', '{"allow_private_destinations": true, "max_connections": 4}', '$secret')});
	psql(qq{SELECT count(notify_enqueue('order.shipped', '$u/webhook/a', '{}', channel => 'idle_$how')) FROM generate_series(1, 8)});
	ok(defined wait_channel_sent("idle_$how", 8), "idle close ($how): first 8 sent");
	sleep 1.5;    # the server closes them now
	my $c0 = worker_cpu($worker);
	sleep 2;
	my $used = worker_cpu($worker) - $c0;
	cmp_ok($used, '<', 0.3, sprintf('... the worker does not spin on the closed connections (%.2f s CPU in 2 s)', $used));
	psql(qq{SELECT count(notify_enqueue('order.shipped', '$u/webhook/b', '{}', channel => 'idle_$how')) FROM generate_series(1, 8)});
	ok(defined wait_channel_sent("idle_$how", 16), '... the next 8 sent, on new connections');
	is(psql(qq{SELECT count(*) FROM notify_attempts a JOIN notify_outbox o ON o.id = a.outbox_id WHERE o.channel = 'idle_$how' AND a.outcome <> 'sent'}),
		'0', '... and no attempt failed');
	$srv->stop;
}

# A server that closes every connection after its response: every request
# opens a socket, most of them reusing a closed one's descriptor number,
# and far more than the wait set has room for before it is rebuilt.
{
	my $srv = NotifyTest::HTTP->start(mode => { close => JSON::PP::true, status => 200 });
	my $u   = $srv->url('');
	psql(qq{SELECT notify_channel_put('churn', 'webhook', '{"allow_private_destinations": true, "max_connections": 4}', '$secret')});
	psql(qq{SELECT count(notify_enqueue('order.shipped', '$u/webhook/churn', '{}', channel => 'churn')) FROM generate_series(1, 200)});
	ok(defined wait_channel_sent('churn', 200, 60), 'Connection: close on every response: 200 sent');
	my %conns = map { $_->{conn} => 1 } $srv->requests;
	is(scalar(keys %conns), 200, '... over 200 connections');
	is(NotifyTest::Node::worker_pid($node), $worker, '... by the same worker process (no error, no restart)');
	$srv->stop;
}

# ---- secrets stay secret ----
my $log = slurp_file($node->logfile);
for my $s ($secret, $new, 'pm-token-123', 'sg-key-456', 'wrong-key', '/slack/T000/B000/XXXX')
{
	unlike($log, qr/\Q$s\E/, "server log does not contain the secret $s");
	is(psql(qq{SELECT count(*) FROM notify_attempts WHERE concat(response_text, error) LIKE '%$s%'})
		  + psql(qq{SELECT count(*) FROM notify_outbox WHERE concat(last_error, '') LIKE '%$s%'}),
		0, "no attempt or outbox row mentions $s");
}

$node->stop;
$http->stop;
done_testing();

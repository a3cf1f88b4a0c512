# Who may receive what, end to end: an unsubscribe committed between
# enqueue and send makes the row skipped (nothing sent); categories with
# one-click unsubscribe carry RFC 8058 headers whose token unsubscribes;
# a 5.1.1 bounce suppresses the address for the next enqueue.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use NotifyTest::SMTP;
use NotifyTest::Node;

my $smtp = NotifyTest::SMTP->start;
my $node = NotifyTest::Node->new('prefs', smtp => $smtp,
	conf => { 'notify.unsubscribe_url' => q{'https://example.com/unsubscribe'} });
sub psql { return $node->safe_psql('postgres', $_[0]); }
sub received { my ($r) = @_; return scalar grep { $_->{rcpt_tos}[0] eq $r } $smtp->messages; }

# ---- unsubscribe between enqueue and send ----
psql(q{SELECT notify_channel_pause('email')});
my $id = psql(q{SELECT notify_enqueue('notify.message', 'late.optout@example.com', '{"subject": "s", "text": "t"}', category => 'product')});
is(psql("SELECT status FROM notify_outbox WHERE id = $id"), 'pending', 'enqueued while the recipient was opted in');
psql(q{SELECT notify_set_preference('late.optout@example.com', 'product', false)});
psql(q{SELECT notify_channel_resume('email')});
ok(defined NotifyTest::Node::wait_for($node, "SELECT status || ':' || skip_reason FROM notify_outbox WHERE id = $id",
		'skipped:opted_out', 10),
	'the worker checked again before sending: skipped, opted_out');
is(received('late.optout@example.com'), 0, 'nothing was sent');
is(psql("SELECT attempts FROM notify_outbox WHERE id = $id"), '0', 'a skip is not an attempt');
is(psql(qq{SELECT count(*) FROM notify_audit_log WHERE action = 'skipped' AND object = 'outbox:$id'}), '1',
	'the skip is audited');

# ---- RFC 8058 headers on a category with one-click unsubscribe ----
$id = psql(q{SELECT notify_enqueue('notify.message', 'reader@example.com', '{"subject": "News", "text": "t"}', category => 'product')});
is($smtp->wait_for_count(1, 10), 1, 'product mail delivered');
my $raw = $smtp->message_bytes(0);
my ($url) = $raw =~ /^List-Unsubscribe: <([^>]+)>\r$/m;
like($url // '', qr{^https://example\.com/unsubscribe\?token=[A-Za-z0-9_.-]+$}, 'List-Unsubscribe carries the one-click URL');
like($raw, qr/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m, 'List-Unsubscribe-Post as RFC 8058 says');
my ($token) = ($url // '') =~ /token=(.*)$/;
psql(qq{SELECT * FROM notify_unsubscribe('$token')});
is(psql(q{SELECT notify_decide('reader@example.com', 'product', 'email')}), 'opted_out',
	'the token from the header unsubscribes the reader');
$id = psql(q{SELECT notify_enqueue('notify.message', 'reader@example.com', '{"subject": "More news", "text": "t"}', category => 'product')});
is(psql("SELECT status || ':' || skip_reason FROM notify_outbox WHERE id = $id"), 'skipped:opted_out',
	'the next product mail is skipped at enqueue');
psql(q{SELECT notify_enqueue('notify.message', 'reader@example.com', '{"subject": "Reset", "text": "t"}', category => 'security')});
is($smtp->wait_for_count(2, 10), 2, 'a mandatory category still goes out');
unlike($smtp->message_bytes(1), qr/^List-Unsubscribe/m, 'without List-Unsubscribe (security mail has none)');

# ---- a 5.1.1 bounce suppresses the address ----
$smtp->set_mode({ mode => '550' });
$id = psql(q{SELECT notify_enqueue('notify.message', 'gone@example.com', '{"subject": "s", "text": "t"}')});
ok(defined NotifyTest::Node::wait_for($node, "SELECT status FROM notify_outbox WHERE id = $id", 'failed', 10),
	'550 5.1.1: failed');
is(psql(q{SELECT reason FROM notify_suppressions WHERE address = 'gone@example.com'}), 'hard_bounce',
	'the address is suppressed as a hard bounce');
$smtp->set_mode({ mode => 'accept' });
$id = psql(q{SELECT notify_enqueue('notify.message', 'gone@example.com', '{"subject": "again", "text": "t"}', category => 'security')});
is(psql("SELECT status || ':' || skip_reason FROM notify_outbox WHERE id = $id"), 'skipped:suppressed',
	'even mandatory mail to a suppressed address is skipped, with the reason');

$node->stop;
$smtp->stop;
done_testing();

# Tests of the SMTP test server itself (test/servers/smtp_server.py) through
# NotifyTest::SMTP.  No PostgreSQL cluster needed.
#
#   prove -I /usr/lib/postgresql/15/lib/pgxs/src/test/perl -I test/perl \
#         test/t/000_smtp_server.pl

use strict;
use warnings;

use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Net::SMTP;
use Time::HiRes qw(time sleep);

use PostgreSQL::Test::Utils;
use Test::More;
use NotifyTest::SMTP;

# Nothing in here may hang: every client has a Timeout, every wait a bound,
# and this is the last resort.
$SIG{ALRM} = sub { die "test timed out\n" };
alarm 180;

my $srv = NotifyTest::SMTP->start;
ok($srv->port > 0, 'server listens on a port');
ok($srv->alive,    'server process is running');
is(slurp($srv->dir . '/pid') + 0, $srv->pid, 'pid file holds the server pid');

sub client
{
	my (%o) = @_;
	my $c = Net::SMTP->new(
		'127.0.0.1',
		Port    => $o{port} // $srv->port,
		Hello   => 'client.test',
		Timeout => $o{timeout} // 5);
	return $c;
}

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<:raw', $path) or return undef;
	local $/;
	return scalar <$fh>;
}

sub reply { my ($c) = @_; my $m = $c->message // ''; $m =~ s/\s+\z//; return $c->code . ' ' . $m }

# Send one message over an open connection.  Returns (ok, "code text").
sub send_one
{
	my ($c, $from, $to, $body) = @_;
	$c->mail($from) or return (0, reply($c));
	for my $rcpt (ref $to ? @$to : ($to))
	{
		$c->to($rcpt) or return (0, reply($c));
	}
	$c->data or return (0, reply($c));
	$c->datasend($body);
	my $ok = $c->dataend;
	return ($ok ? 1 : 0, reply($c));
}

sub body
{
	my ($id, $extra) = @_;
	return "From: sender\@example.com\nTo: rcpt\@example.com\n"
	  . "Message-ID: <$id\@notify.test>\nSubject: test $id\n\n"
	  . ($extra // "hello\n");
}

# ---------------------------------------------------------------- accept
{
	my $c = client();
	ok($c, 'connect') or BAIL_OUT("cannot connect: $@");
	like($c->banner, qr/ESMTP notify-test-smtp/, 'greeting');
	my ($ok, $r) = send_one($c, 'sender@example.com', 'rcpt@example.com',
		body('m1', "first line\n.leading dot\n..two dots\nlast\n"));
	ok($ok, 'accept mode: message accepted');
	like($r, qr/^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/, 'reply carries a queue id');
	my ($qid) = $r =~ /queued as (\S+)/;
	$c->quit;

	is($srv->wait_for_count(1, 10), 1, 'one message logged');
	my @m = $srv->messages;
	is($m[0]{queue_id},   $qid,                    'logged queue id = replied queue id');
	is($m[0]{mail_from},  'sender@example.com',    'envelope sender');
	is_deeply($m[0]{rcpt_tos}, ['rcpt@example.com'], 'envelope recipients');
	is($m[0]{message_id}, '<m1@notify.test>',      'message-id header');
	ok($m[0]{time} > 0 && abs($m[0]{time} - time) < 60, 'time is a unix timestamp');
	my $expect = body('m1', "first line\n.leading dot\n..two dots\nlast\n");
	$expect =~ s/\n/\r\n/g;
	is($srv->message_bytes(0), $expect, 'stored bytes = sent bytes after dot-unstuffing');
	is($m[0]{size}, length $expect, 'logged size');
	ok(-f $srv->maildir . '/000001.eml', 'stored as 000001.eml');
}

# ------------------------------------------- two transactions, one connection
{
	my $c = client();
	my ($ok1, $r1) = send_one($c, 'a@example.com', 'b@example.com', body('m2'));
	ok($c->reset, 'RSET');
	$c->mail('x@example.com');
	$c->to('y@example.com');
	ok($c->reset, 'RSET drops a half-built transaction');
	my ($ok2, $r2) = send_one($c, 'a@example.com', [ 'c@example.com', 'd@example.com' ], body('m3'));
	$c->quit;
	ok($ok1 && $ok2, 'two messages on one connection');
	my ($q1) = $r1 =~ /queued as (\S+)/;
	my ($q2) = $r2 =~ /queued as (\S+)/;
	ok($q1 && $q2 && $q1 ne $q2, 'distinct queue ids');
	is($srv->wait_for_count(3, 10), 3, 'three messages so far');
	is_deeply(($srv->messages)[2]{rcpt_tos}, [ 'c@example.com', 'd@example.com' ], 'two recipients logged');
}

# ------------------------------------------------ 451 once, then accept
{
	$srv->set_mode({ mode => '451', count => 1 });
	my $c = client();
	my ($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m4'));
	ok(!$ok, '451 mode: first transaction fails');
	is($r, '451 4.3.0 Try again later', '451 reply at RCPT');
	$c->reset;
	($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m4'));
	ok($ok, 'count exhausted: next transaction accepted') or diag $r;
	$c->quit;
	is($srv->wait_for_count(4, 10), 4, 'retried message stored once');
	my @ev = $srv->events;
	is(scalar(@ev), 1, 'one rule firing logged');
	is($ev[0]{mode} . '/' . $ev[0]{stage}, '451/rcpt', 'event describes the 451');

	# the same content again re-arms the count
	$srv->set_mode({ mode => '451', count => 1 });
	$c = client();
	($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m5'));
	ok(!$ok, 'rewriting the control file re-arms the count');
	$c->quit;
}

# --------------------------------------------------- 451 after the data
{
	$srv->set_mode({ mode => '451', at => 'data', count => 1 });
	my $c = client();
	my ($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m6'));
	ok(!$ok, '451 at end of data');
	like($r, qr/^451 /, '451 reply to the final dot');
	($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m6'));
	ok($ok, 'then accepted');
	$c->quit;
	is($srv->wait_for_count(5, 10), 5, 'only the accepted copy is stored');

	$srv->set_mode({ mode => '452', at => 'datacmd', message => '4.3.1 Full' });
	$c = client();
	($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m7'));
	is($r, '452 4.3.1 Full', 'custom code and text at the DATA command');
	$c->quit;
}

# ------------------------------------------------------------------ 550
{
	$srv->set_mode({ mode => '550' });
	my $c = client();
	my ($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m8'));
	ok(!$ok, '550 mode rejects');
	is($r, '550 5.1.1 User unknown', '550 reply at RCPT');
	$c->quit;

	$srv->set_mode({ rules => [ { rcpt_prefix => 'bounce', mode => '550' } ] });
	$c = client();
	ok($c->mail('a@example.com'), 'MAIL');
	ok(!$c->to('bounce-1@example.com'), 'per-recipient rule: bounce* rejected');
	is($c->code, 550, '... with 550');
	ok($c->to('good@example.com'), 'other recipients accepted');
	ok($c->data && $c->datasend(body('m9')) && $c->dataend, 'message accepted for the rest');
	$c->quit;
	is($srv->wait_for_count(6, 10), 6, 'stored');
	is_deeply(($srv->messages)[5]{rcpt_tos}, ['good@example.com'], 'only the good recipient');
}

# ----------------------------------------------------------------- drop
{
	$srv->set_mode({ mode => 'drop' });
	my $c = client();
	my $t0 = time;
	my ($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m10'));
	ok(!$ok, 'drop: no success');
	like($r, qr/Connection closed/, 'drop: the server closed the connection');
	ok(time - $t0 < 4, 'drop is immediate');
	sleep 0.3;
	is($srv->count, 6, 'dropped message not stored');
	$srv->set_mode({ mode => 'accept' });
}

# ---------------------------------------------------------------- stall
{
	$srv->set_mode({ mode => 'stall', seconds => 2 });
	my $c = client(timeout => 1);
	my $t0 = time;
	my ($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m11'));
	my $took = time - $t0;
	ok(!$ok, 'stall 2 s: client with 1 s timeout fails');
	like($r, qr/Timeout/, '... by timing out');
	ok($took >= 0.9 && $took < 1.9, "... after about 1 s ($took)");
	$c->close;
	sleep 1.5;    # past the end of the stall
	is($srv->count, 6, 'client gave up and closed: nothing stored');

	$srv->set_mode({ mode => 'stall', seconds => 0.5 });
	$c  = client(timeout => 5);
	$t0 = time;
	($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m12'));
	$took = time - $t0;
	ok($ok, 'short stall, patient client: accepted');
	ok($took >= 0.5, "... after the stall ($took)");
	$c->quit;

	$srv->set_mode({ mode => 'accept', delay_ms => 300 });
	$c  = client();
	$t0 = time;
	($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m13'));
	ok($ok && time - $t0 >= 0.3, 'delay_ms delays the final reply');
	$c->quit;
	is($srv->wait_for_count(8, 10), 8, 'stored');

	$srv->set_mode({ mode => 'stall', seconds => 0.5, then => 'drop' });
	$c  = client(timeout => 5);
	$t0 = time;
	($ok, $r) = send_one($c, 'a@example.com', 'b@example.com', body('m14'));
	$took = time - $t0;
	ok(!$ok && $r =~ /Connection closed/, 'stall then drop: connection closed');
	ok($took >= 0.5 && $took < 4, "... after the stall ($took)");
	sleep 0.2;
	is($srv->count, 8, '... and nothing stored');
	$srv->set_mode({ mode => 'accept' });
}

# -------------------------------------------------- reject at connect time
{
	$srv->set_mode({ mode => '421', at => 'connect', count => 1 });
	my $c = client();
	ok(!$c, '421 greeting: connection refused');
	$c = client();
	ok($c, 'next connection accepted');
	$c->quit if $c;
	$srv->set_mode({ mode => 'accept' });
}

# ----------------------------------------------------- concurrent clients
{
	my $n = 25;
	my @c = map { client() } 1 .. $n;
	is(scalar(grep { defined } @c), $n, "$n concurrent connections");
	$_->mail('a@example.com') for @c;
	$c[$_]->to("r$_\@example.com") for 0 .. $#c;
	$_->data for @c;
	$c[$_]->datasend(body("c$_")) for 0 .. $#c;
	my $ok = grep { $_->dataend } @c;
	$_->quit for @c;
	is($ok, $n, 'all accepted');
	is($srv->wait_for_count(8 + $n, 10), 8 + $n, 'all stored');
	my %q = map { $_->{queue_id} => 1 } $srv->messages;
	is(scalar(keys %q), 8 + $n, 'queue ids unique');
}

# ------------------------------------------------------------------ AUTH
{
	my $a = NotifyTest::SMTP->start(auth => 'alice:secret', auth_required => 1);
	my $c = client(port => $a->port);
	like(join(' ', $c->message), qr/AUTH.*PLAIN/, 'AUTH advertised');
	ok(!$c->mail('a@example.com'), 'MAIL before AUTH refused');
	is($c->code, 530, '... with 530');
	$c->command('AUTH', 'PLAIN', encode_base64("\0alice\0wrong", ''));
	is($c->response, 5, 'wrong password refused');
	$c->command('AUTH', 'PLAIN', encode_base64("\0alice\0secret", ''));
	is($c->response, 2, 'right password accepted');
	my ($ok) = send_one($c, 'a@example.com', 'b@example.com', body('a1'));
	ok($ok, 'authenticated send');
	$c->quit;
	is($a->wait_for_count(1, 10), 1, 'stored');
	is(($a->messages)[0]{auth_user}, 'alice', 'auth user logged');

	my $pid = $a->pid;
	undef $a;    # DESTROY stops it
	ok(!kill(0, $pid), 'server stopped when its object went away');
}

# ------------------------------------------------------------------ stop
{
	my $pid  = $srv->pid;
	my $port = $srv->port;
	my $st   = $srv->stop;
	is($st, 0, 'SIGTERM: clean exit');
	ok(!kill(0, $pid), 'process is gone');
	ok(!$srv->alive,   'alive() agrees');
	ok(!-e $srv->dir . '/pid', 'pid file removed');
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 2);
	ok(!$s, 'port closed');
	is($srv->stop, 0, 'stop() twice is harmless');
}

alarm 0;
done_testing();

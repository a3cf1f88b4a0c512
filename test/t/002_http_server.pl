# Tests of the HTTP test server itself (test/servers/http_server.py) through
# NotifyTest::HTTP.  No PostgreSQL cluster needed.
#
#   prove -I /usr/lib/postgresql/15/lib/pgxs/src/test/perl -I test/perl \
#         test/t/002_http_server.pl

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use Errno qw(ECONNRESET);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);

use PostgreSQL::Test::Utils;
use Test::More;
use NotifyTest::HTTP;

# Nothing in here may hang: every client has a timeout, every wait a bound,
# and this is the last resort.
$SIG{ALRM} = sub { die "test timed out\n" };
alarm 180;

my $json = JSON::PP->new->canonical->utf8;

my $srv = NotifyTest::HTTP->start;
ok($srv->port > 0, 'server listens on a port');
ok($srv->alive,    'server process is running');
is(slurp($srv->dir . '/pid') + 0, $srv->pid, 'pid file holds the server pid');

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<:raw', $path) or return undef;
	local $/;
	return scalar <$fh>;
}

sub client { return HTTP::Tiny->new(timeout => $_[0] // 5, keep_alive => 1) }

sub post
{
	my ($path, $body, %headers) = @_;
	return client()->request('POST', $srv->url($path), { content => $body, headers => \%headers });
}

sub last_request { my @r = $srv->requests; return $r[-1] }

# ---------------------------------------------------------------- normal
{
	my $t0  = time;
	my $res = post('/hook/a?x=1', '{"a":1}', 'Content-Type' => 'application/json', 'X-Test' => 'yes');
	is($res->{status},  200,  'normal response: 200');
	is($res->{content}, 'ok', '... with body "ok"');
	is($srv->wait_for_count(1), 1, 'request logged');
	my $r = last_request();
	is($r->{method},  'POST',        'method logged');
	is($r->{path},    '/hook/a?x=1', 'path and query logged');
	is($r->{body},    '{"a":1}',     'body logged as text');
	is($r->{body_encoding}, 'utf-8', '... marked utf-8');
	is($r->{status},  200,           'status logged');
	is($r->{headers}{'x-test'}, 'yes', 'headers logged with lower-case names');
	is($r->{headers}{'content-type'}, 'application/json', 'content type logged');
	ok($r->{time} >= $t0 - 1 && $r->{time} <= time + 1, 'time is a unix timestamp');
	ok($r->{done} >= $r->{time}, 'done after time');
	is($r->{seq}, 1, 'seq starts at 1');
	is($r->{action}, 'respond', 'action respond');

	my $bin = join('', map { chr } 0 .. 255);
	$res = post('/bin', $bin, 'Content-Type' => 'application/octet-stream');
	$r   = last_request();
	is($r->{body_encoding}, 'base64', 'binary body logged as base64');
	is($r->{body_bytes}, $bin, '... and decodes to the bytes sent');

	my $utf8 = "{\"name\":\"Zo\x{eb} \x{65e5}\x{672c}\"}";
	utf8::encode($utf8);
	post('/utf8', $utf8, 'Content-Type' => 'application/json');
	$r = last_request();
	is($r->{body_encoding}, 'utf-8', 'UTF-8 body logged as text');
	is($r->{body_bytes}, $utf8, '... whose bytes are the ones sent');

	$res = client()->request('GET', $srv->url('/get'));
	is($res->{status}, 200, 'GET answered');
	is(last_request()->{body_length}, 0, 'empty body has length 0');
}

# ---------------------------------------------------- status rules
{
	$srv->set_mode({ status => 204 });
	my $res = post('/x', 'a');
	is($res->{status}, 204, '204 rule');
	is($res->{content} // '', '', '... without a body');

	$srv->set_mode({ status => 202, body => { accepted => JSON::PP::true, id => 'abc' } });
	$res = post('/x', 'a');
	is($res->{status}, 202, '202 rule');
	like($res->{headers}{'content-type'}, qr{^application/json}, '... JSON content type');
	is($json->decode($res->{content})->{id}, 'abc', '... JSON body');

	$srv->set_mode({ status => 500 });
	$res = post('/x', 'a');
	is($res->{status}, 500, '500 rule');
	is(last_request()->{status}, 500, '500 logged');
	is(last_request()->{rule}, 0, 'deciding rule logged');

	$srv->set_mode({ status => 429, retry_after => 2, count => 1 });
	$res = post('/x', 'a');
	is($res->{status}, 429, '429 rule');
	is($res->{headers}{'retry-after'}, '2', '... with Retry-After: 2');
	$res = post('/x', 'a');
	is($res->{status}, 200, 'count 1: next request normal again');

	$srv->set_mode({ retry_after => 30, retry_after_date => JSON::PP::true, status => 503 });
	$res = post('/x', 'a');
	is($res->{status}, 503, '503 with Retry-After as a date');
	like($res->{headers}{'retry-after'}, qr/^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/, '... an HTTP-date');

	$srv->set_mode({ status => 500, count => 2 });
	my @st = map { post('/x', 'a')->{status} } 1 .. 3;
	is("@st", '500 500 200', 'count 2: two 500s, then normal');
	$srv->set_mode({ status => 500, count => 2 });
	is(post('/x', 'a')->{status}, 500, 'rewriting the control file re-arms the count');

	$srv->set_mode({
		rules => [
			{ path => '/webhook/a', status => 410 },
			{ path => '/webhook',   status => 500, count => 1 },
			{ path => '/webhook',   status => 201, method => 'PUT' },
		] });
	is(post('/webhook/a/1', 'a')->{status}, 410, 'longer prefix rule first');
	is(post('/webhook/b',   'a')->{status}, 500, 'prefix rule');
	is(post('/webhook/b',   'a')->{status}, 200, '... count used up: falls through');
	is(client()->request('PUT', $srv->url('/webhook/b'), { content => 'a' })->{status}, 201, 'method-specific rule');
	is(post('/other', 'a')->{status}, 200, 'other paths unaffected');

	$srv->set_mode({ status => 503, headers => { 'X-Custom' => 'v' }, body => 'down', close => JSON::PP::true });
	$res = post('/x', 'a');
	is($res->{status}, 503, 'custom headers and body');
	is($res->{headers}{'x-custom'}, 'v', '... header sent');
	is($res->{content}, 'down', '... body sent');
	is($res->{headers}{connection}, 'close', '... Connection: close');

	# an invalid control file is ignored (and reported on stderr)
	open(my $fh, '>', $srv->control_file) or die;
	print $fh '{not json';
	close $fh;
	is(post('/x', 'a')->{status}, 200, 'invalid control file: normal behaviour');
	$srv->set_mode({});
}

# ---------------------------------------------------------------- latency
{
	$srv->set_mode({ latency_ms => 300 });
	my $t0 = time;
	is(post('/x', 'a')->{status}, 200, 'latency: normal response');
	my $took = time - $t0;
	ok($took >= 0.3, "... after at least 300 ms ($took)");

	$srv->set_mode({ rules => [ { path => '/slow', mode => 'normal', latency_ms => 400 } ] });
	$t0 = time;
	post('/slow', 'a');
	$took = time - $t0;
	ok($took >= 0.4, "per-rule latency ($took)");
	$t0 = time;
	post('/fast', 'a');
	$took = time - $t0;
	ok($took < 0.4, "... only on its path ($took)");
	$srv->set_mode({});
}

# ------------------------------------------------------------------ stall
{
	$srv->set_mode({ mode => 'stall', seconds => 2 });
	my $before = $srv->count;
	my $t0     = time;
	my $res    = client(1)->request('POST', $srv->url('/stall'), { content => 'a' });
	my $took   = time - $t0;
	is($res->{status}, 599, 'stall 2 s: client with 1 s timeout fails');
	like($res->{content}, qr/timed? ?out/i, '... by timing out');
	ok($took >= 0.9 && $took < 1.9, "... after about 1 s ($took)");
	is($srv->wait_for_count($before + 1, 5), $before + 1, 'stalled request logged after the stall');
	my $r = last_request();
	is($r->{action}, 'stall', '... as a stall');
	ok($r->{client_gone}, '... with the client gone');

	$srv->set_mode({ mode => 'stall', seconds => 0.5 });
	$t0   = time;
	$res  = client(5)->request('POST', $srv->url('/stall'), { content => 'a' });
	$took = time - $t0;
	is($res->{status}, 200, 'short stall, patient client: normal response');
	ok($took >= 0.5, "... after the stall ($took)");

	$srv->set_mode({ mode => 'stall', seconds => 0.3, then => 503 });
	is(client(5)->request('POST', $srv->url('/stall'), { content => 'a' })->{status}, 503, 'stall then 503');
	$srv->set_mode({});
}

# ------------------------------------------------------------------ reset
{
	$srv->set_mode({ mode => 'reset', path => '/reset' });
	my $res = post('/reset', 'a');
	is($res->{status}, 599, 'reset: HTTP::Tiny gets no response');
	like($res->{content}, qr/reset|closed|end of stream|read/i, "... but a connection error ($res->{content})");
	my $r = last_request();
	is($r->{action}, 'reset', 'reset logged');
	ok(!defined $r->{status}, '... without a status');

	# on a raw socket the reset is an ECONNRESET, not an orderly EOF
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $srv->port, Timeout => 5);
	print $s "GET /reset HTTP/1.1\r\nHost: x\r\n\r\n";
	my $buf;
	my $n   = sysread($s, $buf, 100);
	my $err = $! + 0;
	ok(!defined $n && $err == ECONNRESET, 'raw socket: read fails with ECONNRESET');
	close $s;
	is(post('/other', 'a')->{status}, 200, 'other paths still answered');
	$srv->set_mode({});
}

# ------------------------------------------------------ keep-alive and threads
{
	my $c = client();
	my $before = $srv->count;
	$c->request('POST', $srv->url('/ka/1'), { content => 'a' });
	$c->request('POST', $srv->url('/ka/2'), { content => 'b' });
	client()->request('POST', $srv->url('/ka/3'), { content => 'c' });
	$srv->wait_for_count($before + 3);
	my @r = grep { $_->{path} =~ m{^/ka/} } $srv->requests;
	is($r[0]{conn}, $r[1]{conn}, 'keep-alive: second request on the same connection');
	is($r[1]{conn_seq}, 2, '... as its second request');
	isnt($r[2]{conn}, $r[0]{conn}, 'another client: another connection');

	# ten connections at once against 500 ms latency: served in parallel
	$srv->set_mode({ latency_ms => 500 });
	my @socks = map {
		IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $srv->port, Timeout => 5)
	} 1 .. 10;
	my $t0 = time;
	print $_ "GET /par HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" for @socks;
	my $ok = 0;
	for my $s (@socks)
	{
		local $/;
		my $resp = <$s>;
		$ok++ if defined $resp && $resp =~ m{^HTTP/1\.1 200 };
		close $s;
	}
	my $took = time - $t0;
	is($ok, 10, 'ten concurrent connections answered');
	ok($took < 2.5, "... in parallel ($took s, serial would be 5 s)");
	$srv->set_mode({});
}

# -------------------------------------------------------------- Postmark
my $pm_ok = {
	From          => 'Example <sender@example.com>',
	To            => 'rcpt@example.org',
	Subject       => 'Hello',
	TextBody      => 'Plain',
	HtmlBody      => '<p>HTML</p>',
	MessageStream => 'outbound',
	Headers       => [ { Name => 'X-Notify-Id', Value => '42' } ],
};

sub postmark
{
	my ($req, %h) = @_;
	my %headers = (
		'Accept'                  => 'application/json',
		'Content-Type'            => 'application/json',
		'X-Postmark-Server-Token' => 'server-token',
		%h);
	delete $headers{$_} for grep { !defined $headers{$_} } keys %headers;
	my $res = client()->request('POST', $srv->url('/postmark/email'),
		{ content => ref $req ? $json->encode($req) : $req, headers => \%headers });
	my $body = eval { $json->decode($res->{content}) } // {};
	return ($res, $body);
}

{
	my ($res, $b) = postmark($pm_ok);
	is($res->{status}, 200, 'Postmark: valid request accepted');
	is($b->{ErrorCode}, 0,    '... ErrorCode 0');
	is($b->{Message},   'OK', '... Message OK');
	is($b->{To}, 'rcpt@example.org', '... To echoed');
	like($b->{MessageID}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, '... MessageID is a UUID');
	like($b->{SubmittedAt}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/, '... SubmittedAt is ISO 8601');
	my $r = last_request();
	is($r->{emulation}, 'postmark', 'logged as the Postmark emulation');
	is($r->{provider_message_id}, $b->{MessageID}, '... with the MessageID');

	my %text_only = (%$pm_ok);
	delete $text_only{HtmlBody};
	delete $text_only{Headers};
	delete $text_only{MessageStream};
	is((postmark(\%text_only))[0]{status}, 200, 'Postmark: TextBody alone is enough');

	my @bad = (
		[ 'no body',           { %$pm_ok, TextBody => undef, HtmlBody => undef }, 300 ],
		[ 'no From',           { %$pm_ok, From => undef }, 300 ],
		[ 'bad From',          { %$pm_ok, From => 'nobody' }, 300 ],
		[ 'no To',             { %$pm_ok, To => undef }, 300 ],
		[ 'bad To',            { %$pm_ok, To => 'a@example.com, broken' }, 300 ],
		[ 'no Subject',        { %$pm_ok, Subject => undef }, 300 ],
		[ 'Headers as object', { %$pm_ok, Headers => { 'X-A' => 1 } }, 300 ],
		[ 'Headers entry without Value', { %$pm_ok, Headers => [ { Name => 'X-A' } ] }, 300 ],
		[ 'unknown field',     { %$pm_ok, Textbody => 'typo' }, 300 ],
		[ 'inactive recipient', { %$pm_ok, To => 'inactive-1@example.org' }, 406 ],);
	for my $case (@bad)
	{
		my ($name, $req, $code) = @$case;
		delete $req->{$_} for grep { !defined $req->{$_} } keys %$req;
		my ($res, $b) = postmark($req);
		is($res->{status} . '/' . ($b->{ErrorCode} // '-'), "422/$code", "Postmark refuses: $name");
	}
	($res, $b) = postmark('{"From": ');
	is($res->{status} . '/' . $b->{ErrorCode}, '422/402', 'Postmark: invalid JSON refused (402)');
	($res, $b) = postmark($pm_ok, 'X-Postmark-Server-Token' => undef);
	is($res->{status} . '/' . $b->{ErrorCode}, '401/10', 'Postmark: missing token refused (401, ErrorCode 10)');
	($res, $b) = postmark($pm_ok, 'Content-Type' => 'text/plain');
	is($res->{status}, 415, 'Postmark: non-JSON content type refused');
	like(last_request()->{error}, qr/content type/, '... reason logged');
	$res = client()->request('GET', $srv->url('/postmark/email'));
	is($res->{status}, 405, 'Postmark: GET refused');

	# a control rule overrides the emulation
	$srv->set_mode({ path => '/postmark', status => 503, retry_after => 1 });
	($res) = postmark($pm_ok);
	is($res->{status}, 503, 'a rule overrides the emulation');
	$srv->set_mode({});
}

# -------------------------------------------------------------- SendGrid
my $sg_ok = {
	personalizations => [ { to => [ { email => 'rcpt@example.org', name => 'R' } ], subject => 'Hi' } ],
	from    => { email => 'sender@example.com', name => 'Example' },
	content => [ { type => 'text/plain', value => 'Plain' }, { type => 'text/html', value => '<p>HTML</p>' } ],
	headers => { 'X-Notify-Id' => '42' },
};

sub sendgrid
{
	my ($req, %h) = @_;
	my %headers = ('Authorization' => 'Bearer SG.key', 'Content-Type' => 'application/json', %h);
	delete $headers{$_} for grep { !defined $headers{$_} } keys %headers;
	my $res = client()->request('POST', $srv->url('/sendgrid/v3/mail/send'),
		{ content => ref $req ? $json->encode($req) : $req, headers => \%headers });
	my $body = eval { $json->decode($res->{content}) } // {};
	return ($res, $body);
}

{
	my ($res, $b) = sendgrid($sg_ok);
	is($res->{status}, 202, 'SendGrid: valid request accepted with 202');
	is($res->{content}, '', '... empty body');
	like($res->{headers}{'x-message-id'}, qr/^[A-Za-z0-9_-]{16,}$/, '... X-Message-Id');
	is(last_request()->{provider_message_id}, $res->{headers}{'x-message-id'}, '... logged');

	is((sendgrid({ %$sg_ok, subject => 'top', personalizations => [ { to => [ { email => 'a@example.org' } ] } ] }))[0]{status},
		202, 'SendGrid: top-level subject instead of per personalization');
	is((sendgrid({ %$sg_ok, content => [ { type => 'text/html', value => '<p>x</p>' } ] }))[0]{status},
		202, 'SendGrid: HTML alone');

	my @bad = (
		[ 'html before plain', { %$sg_ok, content => [ reverse @{ $sg_ok->{content} } ] }, 'content' ],
		[ 'no personalizations', { %$sg_ok, personalizations => [] }, 'personalizations' ],
		[ 'no to', { %$sg_ok, personalizations => [ { subject => 'x' } ] }, 'personalizations.0.to' ],
		[ 'bad to address', { %$sg_ok, personalizations => [ { to => [ { email => 'broken' } ], subject => 'x' } ] }, 'personalizations.0.to.0.email' ],
		[ 'no from', { %$sg_ok, from => undef }, 'from' ],
		[ 'no subject', { %$sg_ok, personalizations => [ { to => [ { email => 'a@example.org' } ] } ] }, 'subject' ],
		[ 'empty content value', { %$sg_ok, content => [ { type => 'text/plain', value => '' } ] }, 'content.0.value' ],
		[ 'no content', { %$sg_ok, content => undef }, 'content' ],
		[ 'unknown field', { %$sg_ok, html => 'x' }, 'html' ],);
	for my $case (@bad)
	{
		my ($name, $req, $field) = @$case;
		delete $req->{$_} for grep { !defined $req->{$_} } keys %$req;
		my ($res, $b) = sendgrid($req);
		my @fields = map { $_->{field} // '' } @{ $b->{errors} // [] };
		ok($res->{status} == 400 && grep({ $_ eq $field } @fields),
			"SendGrid refuses: $name (400, error on $field)")
		  or diag explain $b;
	}
	($res, $b) = sendgrid($sg_ok, Authorization => undef);
	is($res->{status}, 401, 'SendGrid: missing Authorization refused (401)');
	ok(ref $b->{errors} eq 'ARRAY' && $b->{errors}[0]{message}, '... with an errors list');
	($res) = sendgrid($sg_ok, Authorization => 'Basic abc');
	is($res->{status}, 401, 'SendGrid: non-Bearer Authorization refused');
	($res) = sendgrid('{"personalizations": [');
	is($res->{status}, 400, 'SendGrid: invalid JSON refused');
}

# ------------------------------------------------------------------ Slack
{
	my $c = client();
	my $res = $c->request('POST', $srv->url('/slack/T000/B000/XXX'),
		{ content => '{"text":"Deploy finished"}', headers => { 'Content-Type' => 'application/json' } });
	is($res->{status} . ' ' . $res->{content}, '200 ok', 'Slack: text accepted');
	$res = $c->request('POST', $srv->url('/slack/T000/B000/XXX'),
		{ content => '{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*x*"}}]}' });
	is($res->{status}, 200, 'Slack: blocks accepted');
	$res = $c->request('POST', $srv->url('/slack/T000/B000/XXX'), { content => '{"username":"x"}' });
	is($res->{status} . ' ' . $res->{content}, '400 no_text', 'Slack: no text refused');
	$res = $c->request('POST', $srv->url('/slack/T000/B000/XXX'), { content => 'text=x' });
	is($res->{status} . ' ' . $res->{content}, '400 invalid_payload', 'Slack: not JSON refused');
}

# ---------------------------------------------- tokens and webhook signatures
{
	my $key1 = join('', map { chr(int(rand(256))) } 1 .. 24);
	my $key2 = join('', map { chr(int(rand(256))) } 1 .. 32);
	my @secrets = map { 'whsec_' . encode_base64($_, '') } $key1, $key2;
	my $s = NotifyTest::HTTP->start(
		verify_webhook_secret     => \@secrets,
		reject_invalid_signatures => 1,
		postmark_token            => 'right-token',
		sendgrid_key              => 'SG.right');
	my $c = HTTP::Tiny->new(timeout => 5);

	my $sign = sub {
		my ($key, $id, $ts, $body) = @_;
		return 'v1,' . encode_base64(hmac_sha256("$id.$ts.$body", $key), '');
	};
	my $send = sub {
		my ($path, $id, $ts, $body, $sig) = @_;
		my %h = ('Content-Type' => 'application/json');
		$h{'webhook-id'}        = $id  if defined $id;
		$h{'webhook-timestamp'} = $ts  if defined $ts;
		$h{'webhook-signature'} = $sig if defined $sig;
		my $res = $c->request('POST', $s->url($path), { content => $body, headers => \%h });
		my @r = $s->requests;
		return ($res, $r[-1]);
	};

	my $ts   = time;
	$ts =~ s/\..*//;
	my $body = '{"type":"invoice.paid","data":{"id":"in_1"}}';
	my ($res, $r) = $send->('/webhook', 'msg_1', $ts, $body, $sign->($key1, 'msg_1', $ts, $body));
	is($res->{status}, 200, 'webhook with a valid signature: 200');
	ok($r->{signature_valid}, '... logged signature_valid true') or diag explain $r;
	is($r->{signature_secret}, 0, '... by the first secret');
	ok(abs($r->{timestamp_skew}) < 5, '... timestamp skew logged');

	($res, $r) = $send->('/webhook/x', 'msg_2', $ts, $body,
		'v1a,abc ' . $sign->("wrong key", 'msg_2', $ts, $body) . ' ' . $sign->($key2, 'msg_2', $ts, $body));
	ok($r->{signature_valid}, 'rotation: second secret, third signature');
	is($r->{signature_secret}, 1, '... by the second secret');

	($res, $r) = $send->('/webhook', 'msg_3', $ts, $body . ' ', $sign->($key1, 'msg_3', $ts, $body));
	ok(!$r->{signature_valid}, 'tampered body: signature_valid false');
	is($res->{status}, 401, '... answered 401 with --reject-invalid-signatures');
	like($r->{signature_error}, qr/no v1 signature matches/, '... reason logged');

	($res, $r) = $send->('/webhook', 'msg_4', $ts + 1, $body, $sign->($key1, 'msg_4', $ts, $body));
	ok(!$r->{signature_valid}, 'tampered timestamp: false');
	($res, $r) = $send->('/webhook', 'msg_5', $ts, $body, undef);
	ok(!$r->{signature_valid}, 'missing signature: false');
	like($r->{signature_error}, qr/missing webhook-signature/, '... reason logged');

	($res, $r) = $send->('/elsewhere', 'msg_6', $ts, $body, 'v1,bogus');
	ok(!exists $r->{signature_valid}, 'paths outside /webhook are not verified');
	is($res->{status}, 200, '... nor refused');

	my ($pres) = $c->request('POST', $s->url('/postmark/email'),
		{ content => $json->encode($pm_ok), headers => { 'Content-Type' => 'application/json', 'X-Postmark-Server-Token' => 'wrong' } });
	is($pres->{status}, 401, 'Postmark with --postmark-token: wrong token refused');
	$pres = $c->request('POST', $s->url('/postmark/email'),
		{ content => $json->encode($pm_ok), headers => { 'Content-Type' => 'application/json', 'X-Postmark-Server-Token' => 'right-token' } });
	is($pres->{status}, 200, '... right token accepted');
	my $sres = $c->request('POST', $s->url('/sendgrid/v3/mail/send'),
		{ content => $json->encode($sg_ok), headers => { 'Content-Type' => 'application/json', Authorization => 'Bearer SG.wrong' } });
	is($sres->{status}, 401, 'SendGrid with --sendgrid-key: wrong key refused');

	my $pid = $s->pid;
	undef $s;    # DESTROY stops it
	ok(!kill(0, $pid), 'server stopped when its object went away');
}

# ------------------------------------------------- idle connections
# --idle-timeout closes an idle keep-alive connection with a FIN (orderly
# EOF); with --idle-reset, with a RST.  The worker's tests rely on both.
for my $reset (0, 1)
{
	my $s = NotifyTest::HTTP->start(idle_timeout => 0.5, $reset ? (args => ['--idle-reset']) : ());
	my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Timeout => 5);
	print $c "POST /idle HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na";
	my ($buf, $got) = ('', '');
	while ($got !~ /\r\n\r\nok/ && sysread($c, $buf, 1000)) { $got .= $buf; }
	like($got, qr{^HTTP/1\.1 200}, ($reset ? '--idle-reset' : '--idle-timeout') . ': first request answered on a kept connection');
	my $t0  = time;
	my $n   = sysread($c, $buf, 100);
	my $err = $! + 0;
	my $waited = time - $t0;
	if ($reset)
	{
		ok(!defined $n && $err == ECONNRESET, '--idle-reset: the idle connection is reset (ECONNRESET)');
	}
	else
	{
		is($n, 0, '--idle-timeout: the idle connection is closed (EOF)');
	}
	ok($waited > 0.3 && $waited < 4, sprintf('... after the idle timeout (%.2f s)', $waited));
	close $c;
	$s->stop;
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

# Webhook signatures checked by implementations that share no code with
# src/hmac.c: Perl's Digest::SHA (HMAC-SHA256) with MIME::Base64 decoding
# the whsec_ key, and the HTTP test server's Python hmac module, for random
# keys, message ids, timestamps and bodies (UTF-8 among them).
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_base64);
use Encode qw(encode);
use HTTP::Tiny;
use MIME::Base64 qw(encode_base64 decode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use NotifyTest::HTTP;

my $node = PostgreSQL::Test::Cluster->new('webhook_signature');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'notify'
notify.database = 'postgres'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION notify');

# The signature as Standard Webhooks defines it, in Perl.  Digest::SHA's
# base64 has no padding; a 32-byte MAC needs one "=".
sub perl_signature
{
	my ($secret, $msg_id, $ts, $body_bytes) = @_;
	die "not a whsec_ secret" unless $secret =~ /^whsec_(.+)$/;
	my $key = decode_base64($1);
	my $b64 = hmac_sha256_base64("$msg_id.$ts.$body_bytes", $key);
	$b64 .= '=' while length($b64) % 4;
	return "v1,$b64";
}

# A text value as a SQL expression that survives any content: hex of UTF-8.
sub sql_text
{
	my ($bytes) = @_;
	return "convert_from('\\x" . unpack('H*', $bytes) . "'::bytea, 'UTF8')";
}

sub sql_signature
{
	my ($secret, $msg_id, $ts, $body_bytes) = @_;
	return $node->safe_psql('postgres',
		"SELECT notify_webhook_signature('$secret', '$msg_id', $ts, " . sql_text($body_bytes) . ')');
}

# The reference libraries' example, first in Perl: the oracle is right.
my @ref = ('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
	1614265330, '{"test": 2432232314}');
is(perl_signature(@ref), 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=', 'Perl reproduces the reference example');
is(sql_signature(@ref), perl_signature(@ref), 'notify_webhook_signature reproduces it too');

# Random cases.
srand(20261128);
my @alnum = ('a' .. 'z', 'A' .. 'Z', '0' .. '9', '_');
my @pieces = (
	'{"event":"invoice.paid"}', "Zo\x{eb}", "K\x{f6}ln", "\x{65e5}\x{672c}\x{8a9e}",
	"\x{1f389}", ' ', "\n", "\r\n", "\t", '"quoted"', '\\', "'", '.', '$$', 'x' x 100);
my @cases;
for my $i (1 .. 40)
{
	my $keylen = 24 + int(rand(41));    # 24..64 bytes
	my $key    = join('', map { chr(int(rand(256))) } 1 .. $keylen);
	my $secret = 'whsec_' . encode_base64($key, '');
	my $msg_id = 'msg_' . join('', map { $alnum[ rand @alnum ] } 1 .. 1 + int(rand(30)));
	my $ts     = 1_600_000_000 + int(rand(200_000_000));
	my $body   = $i == 1 ? '' : join('', map { $pieces[ rand @pieces ] } 1 .. int(rand(40)));
	push @cases, [ $secret, $msg_id, $ts, encode('UTF-8', $body) ];
}

# One query for all of them, so the test stays quick.
my $sql = join("\nUNION ALL\n", map {
	my ($secret, $msg_id, $ts, $body) = @{ $cases[$_] };
	"SELECT $_, notify_webhook_signature('$secret', '$msg_id', $ts, " . sql_text($body) . ')'
} 0 .. $#cases);
my %got = map { split /\|/, $_, 2 } split /\n/, $node->safe_psql('postgres', "$sql ORDER BY 1");
my $agree = grep { $got{$_} eq perl_signature(@{ $cases[$_] }) } 0 .. $#cases;
is($agree, scalar(@cases), 'notify_webhook_signature = Digest::SHA for ' . scalar(@cases)
	  . ' random keys (24 to 64 bytes), ids, timestamps and UTF-8 bodies');
my $utf8_cases = grep { $_->[3] =~ /[\x80-\xff]/ } @cases;
ok($utf8_cases >= 10, "... $utf8_cases of them with non-ASCII bodies");

# Rotation: the array form gives one signature per secret, in order, each
# matching Perl; notify_webhook_verify accepts a header Perl built.
{
	my ($c1, $c2) = @cases[ 1, 2 ];
	my ($msg_id, $ts, $body) = @{$c1}[ 1 .. 3 ];
	my $header = $node->safe_psql('postgres',
		"SELECT notify_webhook_signature(ARRAY['$c1->[0]', '$c2->[0]'], '$msg_id', $ts, " . sql_text($body) . ')');
	is($header, perl_signature($c1->[0], $msg_id, $ts, $body) . ' ' . perl_signature($c2->[0], $msg_id, $ts, $body),
		'rotation header = the two Perl signatures, space-separated');
	my $perl_header = 'v1a,ignored ' . perl_signature($c2->[0], $msg_id, $ts, $body);
	is($node->safe_psql('postgres',
			"SELECT notify_webhook_verify('$c2->[0]', '$msg_id', $ts, " . sql_text($body) . ", '$perl_header'), "
			  . "notify_webhook_verify('$c1->[0]', '$msg_id', $ts, " . sql_text($body) . ", '$perl_header')"),
		't|f', 'notify_webhook_verify accepts a Perl-made header, for its secret only');
}

# A generated secret is whsec_ and 24 bytes, and signs as Perl expects.
{
	my $secret = $node->safe_psql('postgres', 'SELECT notify_generate_webhook_secret()');
	like($secret, qr{^whsec_[A-Za-z0-9+/]{32}$}, 'generated secret looks like whsec_ + 32 base64 characters');
	is(length(decode_base64(substr($secret, 6))), 24, '... and holds 24 bytes');
	my @c = ($secret, 'msg_gen', 1700000000, encode('UTF-8', "{\"greeting\":\"Gr\x{fc}\x{df} Gott\"}"));
	is(sql_signature(@c), perl_signature(@c), '... and signs as Perl computes');
}

# The HTTP test server (Python's hmac) verifies what SQL signed: the same
# check the webhook TAP tests rely on.
{
	my @secrets = map { $cases[$_][0] } 3, 4;
	my $http = NotifyTest::HTTP->start(verify_webhook_secret => \@secrets);
	my $client = HTTP::Tiny->new(timeout => 5);
	my $valid = 0;
	for my $i (5 .. 14)
	{
		my ($msg_id, $ts, $body) = @{ $cases[$i] }[ 1 .. 3 ];
		my $header = $node->safe_psql('postgres',
			"SELECT notify_webhook_signature(ARRAY['$secrets[1]', '$secrets[0]'], '$msg_id', $ts, " . sql_text($body) . ')');
		$client->request('POST', $http->url('/webhook'), {
			content => $body,
			headers => {
				'Content-Type'      => 'application/json',
				'webhook-id'        => $msg_id,
				'webhook-timestamp' => $ts,
				'webhook-signature' => $header,
			} });
		my @r = $http->requests;
		$valid++ if $r[-1]{signature_valid};
	}
	is($valid, 10, 'the HTTP server verifies 10 SQL-signed requests');
	$http->stop;
}

$node->stop;
done_testing();

# NotifyTest::HTTP - run test/servers/http_server.py from a TAP test.
#
#   use NotifyTest::HTTP;
#   my $http = NotifyTest::HTTP->start;            # or start(latency_ms => 50, ...)
#   ... point the extension at $http->url('/webhook') ...
#   $http->set_mode({ status => 429, retry_after => 2, count => 1 });
#   $http->set_mode({ rules => [ { path => '/slow', mode => 'stall', seconds => 5 } ] });
#   is($http->wait_for_count(1, 10), 1, 'one request arrived');
#   my @req = $http->requests;                     # hashrefs from the log
#   my $raw = $req[0]{body_bytes};                 # body bytes, base64 undone
#   $http->stop;                                   # also done by DESTROY / END
#
# Only core Perl + JSON::PP.  The server's stderr goes to the test's stderr
# (the regress_log_* file under PostgreSQL::Test::Utils).  The control file
# and the log line format are described in http_server.py.

package NotifyTest::HTTP;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(sleep time);

use PostgreSQL::Test::Utils ();
use NotifyTest::Server;
use parent -norequire, 'NotifyTest::Server';

our $PYTHON = $ENV{NOTIFY_TEST_PYTHON} // '/usr/bin/python3';
our $SERVER = $ENV{NOTIFY_HTTP_SERVER}
  // abs_path(File::Spec->catfile(dirname(__FILE__), '..', '..', 'servers', 'http_server.py'));

my $json = JSON::PP->new->canonical->utf8;

# start(%opts): spawn the server and wait (up to $opts{timeout}, default 10 s)
# until it listens.  Options:
#   port => N                  (default 0: any free port)
#   mode => \%control          initial control file content (default: none)
#   latency_ms => N            delay before every response
#   verify_webhook_secret => 'whsec_...' or [list]
#   reject_invalid_signatures => 1
#   postmark_token => TOKEN, sendgrid_key => KEY
#   log_bodies => 0            do not log bodies (benchmarks)
#   max_body => BYTES, idle_timeout => S,
#   args => [extra command line arguments]
sub start
{
	my ($class, %opts) = @_;
	croak "http_server.py not found at $SERVER" unless defined $SERVER && -f $SERVER;

	my $dir  = PostgreSQL::Test::Utils::tempdir('http');
	my $self = bless {
		dir          => $dir,
		log_file     => "$dir/requests.jsonl",
		port_file    => "$dir/port",
		pid_file     => "$dir/pid",
		control_file => "$dir/control.json",
		owner        => $$,
		gen          => 0,
	}, $class;
	$self->set_mode($opts{mode} // {});

	my @cmd = (
		$PYTHON, $SERVER,
		'--port'         => $opts{port} // 0,
		'--port-file'    => $self->{port_file},
		'--pid-file'     => $self->{pid_file},
		'--log'          => $self->{log_file},
		'--control-file' => $self->{control_file},
		'--watch-pid'    => $$);
	push @cmd, '--latency-ms',     $opts{latency_ms}     if defined $opts{latency_ms};
	push @cmd, '--max-body',       $opts{max_body}       if defined $opts{max_body};
	push @cmd, '--idle-timeout',   $opts{idle_timeout}   if defined $opts{idle_timeout};
	push @cmd, '--postmark-token', $opts{postmark_token} if defined $opts{postmark_token};
	push @cmd, '--sendgrid-key',   $opts{sendgrid_key}   if defined $opts{sendgrid_key};
	if (defined $opts{verify_webhook_secret})
	{
		my $s = $opts{verify_webhook_secret};
		push @cmd, '--verify-webhook-secret', $_ for (ref $s ? @$s : ($s));
	}
	push @cmd, '--reject-invalid-signatures' if $opts{reject_invalid_signatures};
	push @cmd, '--no-log-bodies' if defined $opts{log_bodies} && !$opts{log_bodies};
	push @cmd, @{ $opts{args} } if $opts{args};

	$self->_launch(\@cmd, 'http_server.py', $opts{timeout});
	return $self;
}

sub port         { $_[0]{port} }
sub host         { '127.0.0.1' }
sub pid          { $_[0]{pid} }
sub dir          { $_[0]{dir} }
sub log_file     { $_[0]{log_file} }
sub control_file { $_[0]{control_file} }

# url($path = ''): http://127.0.0.1:PORT followed by $path.
sub url
{
	my ($self, $path) = @_;
	return 'http://127.0.0.1:' . $self->{port} . ($path // '');
}

# set_mode(\%control): replace the control file atomically.  A "_gen"
# serial is added so that rewriting identical content still resets the
# server's per-rule counts.  set_mode({}) restores the normal behaviour.
sub set_mode
{
	my ($self, $mode) = @_;
	croak 'set_mode needs a hashref' unless ref $mode eq 'HASH';
	my %content = (%$mode, _gen => ++$self->{gen});
	my $tmp = "$self->{control_file}.tmp.$$";
	open(my $fh, '>', $tmp) or croak "open $tmp: $!";
	print $fh $json->encode(\%content) or croak "write $tmp: $!";
	close($fh) or croak "close $tmp: $!";
	rename($tmp, $self->{control_file}) or croak "rename $tmp: $!";
	return;
}

# requests(): every request answered (or reset), in the order the log
# lines were written, one hashref each (see http_server.py for the keys),
# plus body_bytes => the body's bytes (base64 undone, UTF-8 encoded).
# List context: the list; scalar context: an arrayref.
sub requests
{
	my ($self) = @_;
	my @rows;
	if (open(my $fh, '<:raw', $self->{log_file}))
	{
		local $/ = "\n";
		while (my $line = <$fh>)
		{
			last unless $line =~ /\n\z/;    # partial last line: ignore for now
			my $r = $json->decode($line);
			if (defined $r->{body})
			{
				$r->{body_bytes} =
				  ($r->{body_encoding} // '') eq 'base64'
				  ? decode_base64($r->{body})
				  : do { my $b = $r->{body}; utf8::encode($b); $b };
			}
			push @rows, $r;
		}
		close $fh;
	}
	return wantarray ? @rows : \@rows;
}

sub count { return scalar(my @r = $_[0]->requests) }

# wait_for_count($n, $timeout_s = 10): poll until at least $n requests were
# logged or the timeout passed; returns the count seen last.
sub wait_for_count
{
	my ($self, $n, $timeout) = @_;
	my $deadline = time + ($timeout // 10);
	while (1)
	{
		my $c = $self->count;
		return $c if $c >= $n || time >= $deadline;
		sleep 0.05;
	}
}

1;

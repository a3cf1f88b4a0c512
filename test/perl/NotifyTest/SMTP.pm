# NotifyTest::SMTP - run test/servers/smtp_server.py from a TAP test.
#
#   use NotifyTest::SMTP;
#   my $smtp = NotifyTest::SMTP->start;            # or start(delay_ms => 200, ...)
#   ... point the extension at $smtp->host / $smtp->port (or $smtp->url) ...
#   $smtp->set_mode({ mode => '451', count => 1 });
#   is($smtp->wait_for_count(1, 10), 1, 'one message delivered');
#   my @msgs = $smtp->messages;                      # hashrefs from log.jsonl
#   my $raw  = $smtp->message_bytes(0);              # raw bytes of the first one
#   $smtp->stop;                                     # also done by DESTROY / END
#
# Only core Perl + JSON::PP.  The server's stderr goes to the test's stderr
# (the regress_log_* file under PostgreSQL::Test::Utils).

package NotifyTest::SMTP;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;
use JSON::PP;
use Time::HiRes qw(sleep time);

use PostgreSQL::Test::Utils ();
use NotifyTest::Server;
use parent -norequire, 'NotifyTest::Server';

our $PYTHON = $ENV{NOTIFY_TEST_PYTHON} // '/usr/bin/python3';
our $SERVER = $ENV{NOTIFY_SMTP_SERVER}
  // abs_path(File::Spec->catfile(dirname(__FILE__), '..', '..', 'servers', 'smtp_server.py'));

my $json = JSON::PP->new->canonical->utf8;

# start(%opts): spawn the server and wait (up to $opts{timeout}, default 10 s)
# until it listens.  Options:
#   port => N            (default 0: any free port)
#   mode => \%control    initial control file content (default accept)
#   delay_ms => N, max_size => N, max_line_length => N, hostname => NAME,
#   idle_timeout => S, auth => 'user:pass' or [list], auth_required => 1,
#   pipelining => 0 (do not offer PIPELINING; offered by default),
#   data_without_rcpt => 1 (354 to DATA without recipients, then 554),
#   args => [extra command line arguments]
sub start
{
	my ($class, %opts) = @_;
	croak "smtp_server.py not found at $SERVER" unless defined $SERVER && -f $SERVER;

	my $dir  = PostgreSQL::Test::Utils::tempdir('smtp');
	my $self = bless {
		dir          => $dir,
		maildir      => "$dir/maildir",
		port_file    => "$dir/port",
		pid_file     => "$dir/pid",
		control_file => "$dir/control.json",
		owner        => $$,
		gen          => 0,
	}, $class;
	mkdir $self->{maildir} or croak "mkdir $self->{maildir}: $!";
	$self->set_mode($opts{mode} // { mode => 'accept' });

	my @cmd = (
		$PYTHON, $SERVER,
		'--port'         => $opts{port} // 0,
		'--port-file'    => $self->{port_file},
		'--pid-file'     => $self->{pid_file},
		'--maildir'      => $self->{maildir},
		'--control-file' => $self->{control_file},
		'--watch-pid'    => $$);
	push @cmd, '--delay-ms',        $opts{delay_ms}        if defined $opts{delay_ms};
	push @cmd, '--max-size',        $opts{max_size}        if defined $opts{max_size};
	push @cmd, '--max-line-length', $opts{max_line_length} if defined $opts{max_line_length};
	push @cmd, '--hostname',        $opts{hostname}        if defined $opts{hostname};
	push @cmd, '--idle-timeout',    $opts{idle_timeout}    if defined $opts{idle_timeout};
	if (defined $opts{auth})
	{
		push @cmd, '--auth', $_
		  for (ref $opts{auth} ? @{ $opts{auth} } : ($opts{auth}));
	}
	push @cmd, '--auth-required' if $opts{auth_required};
	push @cmd, '--no-pipelining' if defined $opts{pipelining} && !$opts{pipelining};
	push @cmd, '--data-without-rcpt' if $opts{data_without_rcpt};
	push @cmd, @{ $opts{args} } if $opts{args};

	$self->_launch(\@cmd, 'smtp_server.py', $opts{timeout});
	return $self;
}

sub port         { $_[0]{port} }
sub host         { '127.0.0.1' }
sub url          { 'smtp://127.0.0.1:' . $_[0]{port} }
sub pid          { $_[0]{pid} }
sub dir          { $_[0]{dir} }
sub maildir      { $_[0]{maildir} }
sub control_file { $_[0]{control_file} }

# set_mode(\%control): replace the control file atomically.  A "_gen"
# serial is added so that rewriting identical content still resets the
# server's per-rule counts.
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

sub _read_jsonl
{
	my ($path) = @_;
	my @rows;
	open(my $fh, '<:raw', $path) or return @rows;
	local $/ = "\n";
	while (my $line = <$fh>)
	{
		last unless $line =~ /\n\z/;    # partial last line: ignore for now
		push @rows, $json->decode($line);
	}
	close $fh;
	return @rows;
}

# messages(): accepted messages, oldest first, one hashref per log.jsonl line
# (seq, time, queue_id, mail_from, rcpt_tos, size, message_id, subject,
# mail_options, helo, peer, auth_user, file) plus path => full .eml path.
# List context: the list; scalar context: an arrayref.
sub messages
{
	my ($self) = @_;
	my @m = _read_jsonl("$self->{maildir}/log.jsonl");
	$_->{path} = "$self->{maildir}/$_->{file}" for @m;
	return wantarray ? @m : \@m;
}

# events(): every non-accept control rule that fired (stage, mode, rule, mail_from,
# rcpt_tos, rcpt, peer, time), oldest first.  Same context rules as messages().
sub events
{
	my ($self) = @_;
	my @e = _read_jsonl("$self->{maildir}/events.jsonl");
	return wantarray ? @e : \@e;
}

sub count { return scalar(my @m = $_[0]->messages) }

# wait_for_count($n, $timeout_s = 10): poll until at least $n messages were
# accepted or the timeout passed; returns the count seen last.
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

# message_bytes($i): raw bytes of the $i-th (0-based) accepted message.
sub message_bytes
{
	my ($self, $i) = @_;
	my @m = $self->messages;
	croak "no message $i (have " . scalar(@m) . ")" unless defined $i && $i >= 0 && $i < @m;
	open(my $fh, '<:raw', $m[$i]{path}) or croak "open $m[$i]{path}: $!";
	local $/;
	my $data = <$fh>;
	close $fh;
	return $data // '';
}

1;

# NotifyTest::Server - what the test servers' Perl handles share: start a
# server process, wait for the port it writes, stop it (TERM, then KILL),
# and stop every one still running when the test ends.  NotifyTest::SMTP
# and NotifyTest::HTTP build on it.
package NotifyTest::Server;

use strict;
use warnings;

use Carp;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

my %live;    # pid => weak ref, for END

# _launch(\@cmd, $name, $timeout): fork and exec the server, wait up to
# $timeout seconds (10) for its port file ($self->{port_file}).
sub _launch
{
	my ($self, $cmd, $name, $timeout) = @_;
	my @cmd = @$cmd;
	my %opts = (timeout => $timeout);
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		{ exec { $cmd[0] } @cmd; }
		print STDERR "exec $cmd[0]: $!\n";
		POSIX::_exit(127);
	}
	$self->{pid} = $pid;
	$live{$pid} = $self;
	weaken($live{$pid});

	my $deadline = time + ($opts{timeout} // 10);
	while (1)
	{
		if (open(my $fh, '<', $self->{port_file}))
		{
			my $line = <$fh>;
			if (defined $line && $line =~ /^(\d+)\s*$/)
			{
				$self->{port} = $1;
				last;
			}
		}
		if (waitpid($pid, WNOHANG) == $pid)
		{
			my $status = $?;
			delete $live{$pid};
			$self->{pid} = undef;
			croak "$name exited during startup (wait status $status); see its stderr in the test log";
		}
		if (time > $deadline)
		{
			$self->stop;
			croak "$name did not write $self->{port_file} within the timeout";
		}
		sleep 0.05;
	}
	return $self;
}

# alive(): the server process still exists (and is ours).
sub alive
{
	my ($self) = @_;
	my $pid = $self->{pid};
	return 0 unless $pid;
	local $?;
	if (waitpid($pid, WNOHANG) == $pid)
	{
		$self->{exit_status} = $?;
		$self->{pid} = undef;
		delete $live{$pid};
		return 0;
	}
	return kill(0, $pid) ? 1 : 0;
}

# stop(): SIGTERM, SIGKILL after 5 s, reap.  Returns the wait status (0 after
# a clean exit; the same value again on later calls).  Safe to call more than once.
sub stop
{
	my ($self) = @_;
	my $pid = $self->{pid};
	return $self->{exit_status} unless $pid && $self->{owner} == $$;
	local ($?, $!);
	my $status;
	$self->{pid} = undef;
	delete $live{$pid};

	kill 'TERM', $pid;
	my $deadline = time + 5;
	my $done     = 0;
	while (!$done && time < $deadline)
	{
		my $r = waitpid($pid, WNOHANG);
		if ($r == $pid) { $status = $?; $done = 1; }
		elsif ($r < 0) { $done = 1; }    # not our child / already reaped
		else           { sleep 0.05; }
	}
	if (!$done)
	{
		kill 'KILL', $pid;
		waitpid($pid, 0);
		$status = $?;
	}
	$self->{exit_status} = $status;
	return $status;
}

sub DESTROY
{
	my ($self) = @_;
	$self->stop if $self->{pid};
}

END
{
	for my $srv (grep { defined } values %live)
	{
		$srv->stop;
	}
}

1;

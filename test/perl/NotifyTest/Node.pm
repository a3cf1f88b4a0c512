# NotifyTest::Node - a scratch cluster with notify preloaded, for TAP tests.
#
#   my $smtp = NotifyTest::SMTP->start;
#   my $node = NotifyTest::Node->new('delivery', smtp => $smtp,
#                  conf => { 'notify.poll_interval' => '60s' });
#   $node->safe_psql('postgres', q{SELECT notify_enqueue(...)});
#   NotifyTest::Node::wait_status($node, $id, 'sent');
#
# The worker serves database "postgres", where the extension is created.
package NotifyTest::Node;
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);
use Test::More;

# new($name, smtp => $smtp, conf => {...}, create_extension => 1)
sub new
{
	my ($class, $name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my %conf = (
		shared_preload_libraries => q{'notify'},
		'notify.database' => q{'postgres'},
		'notify.from_address' => q{'notify@example.com'},
		'notify.retry_base' => q{'100ms'},
		'notify.retry_max_delay' => q{'1s'},
		'notify.shutdown_timeout' => q{'3s'},
		max_prepared_transactions => 10,
	);
	$conf{'notify.smtp_url'} = "'" . $opts{smtp}->url . "'" if $opts{smtp};
	while (my ($k, $v) = each %{ $opts{conf} // {} })
	{
		$conf{$k} = $v;
	}
	$node->append_conf('postgresql.conf',
		join('', map { "$_ = $conf{$_}\n" } sort keys %conf));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION notify')
	  if $opts{create_extension} // 1;
	return $node;
}

# Wait until the query returns the expected value; returns the elapsed
# seconds, or undef after $timeout seconds.
sub wait_for
{
	my ($node, $sql, $expected, $timeout) = @_;
	$timeout //= 30;
	my $start = time;
	while (time - $start < $timeout)
	{
		my ($rc, $out) = $node->psql('postgres', $sql);
		return time - $start if $rc == 0 && $out eq $expected;
		sleep 0.02;
	}
	return undef;
}

# The worker's pid from notify_worker_status (waits until it runs).
sub worker_pid
{
	my ($node) = @_;
	my $pid;
	for (1 .. 500)
	{
		$pid = $node->safe_psql('postgres', 'SELECT pid FROM notify_worker_status');
		return $pid if $pid ne '';
		sleep 0.02;
	}
	return undef;
}

1;

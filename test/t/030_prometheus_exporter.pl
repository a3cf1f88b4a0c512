# The real prometheus-postgres-exporter (Debian's package) with
# contrib/prometheus/queries.yaml against a scratch cluster: it connects as
# a monitoring role with only the documented grants, and /metrics carries
# every sample notify_metrics_prometheus() has, with the same names, labels
# and values, plus the values this test arranged.
use strict;
use warnings;
use Cwd qw(abs_path);
use FindBin;
use HTTP::Tiny;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use NotifyTest::Node;

my $exporter = '/usr/bin/prometheus-postgres-exporter';
my $queries = abs_path("$FindBin::Bin/../../contrib/prometheus/queries.yaml");

# Install the package when it is missing and we may (root), without letting
# its system service start; skip only when it cannot be installed.
if (!-x $exporter && $> == 0)
{
	my $guard = !-e '/usr/sbin/policy-rc.d';
	if ($guard)
	{
		open(my $fh, '>', '/usr/sbin/policy-rc.d') or die "policy-rc.d: $!";
		print $fh "#!/bin/sh\nexit 101\n";
		close $fh;
		chmod 0755, '/usr/sbin/policy-rc.d';
	}
	local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
	for my $update (0, 1)
	{
		system('apt-get update -qq >/dev/null 2>&1') if $update;
		last if system('apt-get install -y -qq --no-install-recommends prometheus-postgres-exporter >/dev/null 2>&1') == 0;
	}
	unlink '/usr/sbin/policy-rc.d' if $guard;
}
plan skip_all => "prometheus-postgres-exporter is not installed and could not be installed"
  . ($> == 0 ? " (apt-get install failed)" : " (not root; scripts/test.sh installs it)")
  unless -x $exporter;

my $node = NotifyTest::Node->new('exporter',
	conf => { 'notify.sandbox' => 'on', 'notify.poll_interval' => q{'200ms'} });
sub psql { return $node->safe_psql('postgres', $_[0]); }

# ---- known data ----
# five messages delivered by the worker (sandbox: completed without a server)
psql(q{SELECT notify_enqueue('notify.message', 'user' || g || '@example.com',
			'{"subject": "Hello", "text": "Hi"}') FROM generate_series(1, 5) g});
ok(defined NotifyTest::Node::wait_for($node,
		q{SELECT count(*) FROM notify_outbox WHERE status = 'sent'}, '5', 30),
	'the worker sent five messages');
# three waiting on a paused channel
psql(q{INSERT INTO notify_channels (name, kind, enabled) VALUES ('paused-hooks', 'webhook', false)});
psql(q{SELECT notify_enqueue('order.shipped', 'https://hooks.example/' || g, '{}', channel => 'paused-hooks')
	   FROM generate_series(1, 3) g});
# two failed attempts an hour ago (the worker never sees these rows)
psql(q{WITH o AS (INSERT INTO notify_outbox (template_key, recipient, status, attempts, created_at, last_error)
				  VALUES ('notify.message', 'gone@example.com', 'failed', 2, now() - interval '1 hour',
						  'smtp: 550 5.1.1 <gone@example.com>: no such user')
				  RETURNING id)
	   INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome, response_code, error)
	   SELECT o.id, a, now() - interval '1 hour', now() - interval '1 hour', o2, c, e
	   FROM o, (VALUES (1, 'transient', 451, 'smtp: 451 4.7.1 try again'),
					   (2, 'permanent', 550, 'smtp: 550 5.1.1 <gone@example.com>: no such user')) v(a, o2, c, e)});

# ---- a monitoring role with the grants docs/operations.md lists ----
psql(q{CREATE ROLE notify_exporter LOGIN IN ROLE pg_monitor;
	   GRANT SELECT ON notify_worker_status, notify_backlog, notify_stats,
					   notify_delivery_latency, notify_failures TO notify_exporter;
	   GRANT EXECUTE ON FUNCTION notify_worker_status(), notify_in_flight_ids(), notify_error_group(text) TO notify_exporter;});

# ---- start the exporter on 127.0.0.1, a free port ----
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $log = "$PostgreSQL::Test::Utils::tmp_check/exporter.log";
my $dsn = sprintf('host=%s port=%d user=notify_exporter dbname=postgres sslmode=disable',
	$node->host, $node->port);
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0)
{
	open(STDOUT, '>', $log) or die "$log: $!";
	open(STDERR, '>&', \*STDOUT) or die "stderr: $!";
	$ENV{DATA_SOURCE_NAME} = $dsn;
	exec($exporter, "--web.listen-address=127.0.0.1:$port", "--extend.query-path=$queries",
		'--disable-settings-metrics', '--log.level=warn')
	  or die "exec $exporter: $!";
}
ok($pid, "exporter started (pid $pid) on 127.0.0.1:$port");

my $http = HTTP::Tiny->new(timeout => 10);
my ($res, %scraped);
my $deadline = time + 30;
while (time < $deadline)
{
	$res = $http->get("http://127.0.0.1:$port/metrics");
	last if $res->{success} && $res->{content} =~ /^notify_backlog_pending\{/m;
	sleep 0.2;
}
ok($res->{success}, 'GET /metrics: ' . ($res->{status} // 'no answer'));
like($res->{headers}{'content-type'} // '', qr{^text/plain}, 'text exposition format');
unlike($res->{content}, qr/^pg_exporter_user_queries_load_error\{[^}]*\} 1$/m, 'queries.yaml loaded');
like($res->{content}, qr/^pg_up 1$/m, 'exporter connected as notify_exporter');

# name{labels} value lines as "name{k="v",...}" (labels sorted, the
# exporter's own "server" label dropped) => value
sub samples
{
	my ($text) = @_;
	my %s;
	for my $line (split /\n/, $text)
	{
		next unless $line =~ /^(notify_[a-z_]+)(?:\{(.*)\})? (\S+)$/;
		my ($name, $labels, $value) = ($1, $2 // '', $3);
		my @l;
		while ($labels =~ /([a-z_]+)="((?:[^"\\]|\\.)*)",?/g)
		{
			push @l, qq{$1="$2"} unless $1 eq 'server';
		}
		# the worker's state may change between two reads
		@l = map { s/^state=".*"$/state="..."/r } @l;
		$s{ $name . '{' . join(',', sort @l) . '}' } = $value;
	}
	return %s;
}
%scraped = samples($res->{content});
my %direct = samples(psql('SELECT notify_metrics_prometheus()'));

# ---- the values arranged above ----
my %want = (
	'notify_worker_up{}' => 1,
	'notify_worker_sent_total{}' => 5,
	'notify_backlog_pending{channel="paused-hooks"}' => 3,
	'notify_backlog_due{channel="paused-hooks"}' => 3,
	'notify_backlog_enabled{channel="paused-hooks"}' => 0,
	'notify_backlog_pending{channel="email"}' => 0,
	'notify_backlog_oldest_due_age_seconds{channel="email"}' => 0,
	'notify_stats_created{category="transactional",channel="email",period="1h"}' => 5,
	'notify_stats_sent{category="transactional",channel="email",period="1h"}' => 5,
	'notify_stats_failed{category="transactional",channel="email",period="24h"}' => 1,
	'notify_stats_retries{category="transactional",channel="email",period="24h"}' => 1,
	'notify_stats_pending{category="transactional",channel="paused-hooks",period="1h"}' => 3,
	'notify_failures_attempts{channel="email"}' => 2,
	'notify_failures_permanent{channel="email"}' => 1,
);
$want{'notify_worker_info{database="postgres",state="..."}'} = 1;
for my $k (sort keys %want)
{
	ok(defined $scraped{$k} && $scraped{$k} == $want{$k},
		"scraped $k = $want{$k}" . (defined $scraped{$k} ? '' : ' (missing)'))
	  or diag("scraped: " . ($scraped{$k} // 'undef'));
}
cmp_ok($scraped{'notify_backlog_oldest_due_age_seconds{channel="paused-hooks"}'} // -1, '>', 0,
	'the paused channel has an oldest due age');
for my $q ('0.5', '0.95', '0.99', '1')
{
	my $v = $scraped{qq{notify_delivery_latency_seconds{channel="email",quantile="$q"}}};
	ok(defined $v && $v >= 0 && $v < 30, "latency quantile $q of email: " . ($v // 'missing'));
}

# the outbox totals are on request only (they count the whole outbox)
my %totals = samples(psql('SELECT notify_metrics_prometheus(outbox_totals => true)'));
is(join(',', map { "$_=$totals{$_}" } grep { /^notify_outbox_messages/ } sort keys %totals),
	'notify_outbox_messages{channel="email",status="failed"}=1,notify_outbox_messages{channel="email",status="sent"}=5,'
	  . 'notify_outbox_messages{channel="paused-hooks",status="pending"}=3',
	'notify_metrics_prometheus(true) adds what the outbox holds');
ok(!grep({ /^notify_outbox_messages/ } keys %direct), 'and not by default');

# ---- exporter and function agree, sample by sample ----
my @notify_scraped = grep { /^notify_/ } keys %scraped;
my @missing = grep { !exists $scraped{$_} } sort keys %direct;
my @extra = grep { !exists $direct{$_} } sort @notify_scraped;
is(scalar(@missing), 0, 'every sample of notify_metrics_prometheus() is scraped')
  or diag("missing: @missing");
is(scalar(@extra), 0, 'the exporter has no notify sample the function lacks')
  or diag("extra: @extra");
my @differ;
for my $k (sort keys %direct)
{
	next unless exists $scraped{$k};
	# ages and the start time move between the two reads
	my $tolerance = $k =~ /age_seconds|start_time/ ? 5 : 1e-6;
	push @differ, "$k: $direct{$k} vs $scraped{$k}"
	  if abs($direct{$k} - $scraped{$k}) > $tolerance;
}
is(scalar(@differ), 0, sprintf('%d samples have the same value both ways', scalar keys %direct))
  or diag(join("\n", @differ));

# ---- stop our exporter, by its pid ----
kill 'TERM', $pid;
my $gone;
for (1 .. 100)
{
	$gone = waitpid($pid, WNOHANG) == $pid and last;
	sleep 0.1;
}
ok($gone, 'exporter stopped');
$node->stop;
done_testing();

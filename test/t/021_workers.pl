# Several delivery workers (notify.workers = 2) against a real HTTP server
# on 127.0.0.1: each row is claimed and sent by one worker only, both
# workers take a share, a channel's connection limit holds across them (a
# limit of 1 leaves the channel to worker 0), the status view and the
# in-flight registry cover both, and a worker stopped while it holds rows
# leaves nothing lost and nothing sent twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use NotifyTest::HTTP;
use NotifyTest::Node;

# Each request waits 20 ms at the server, so a batch stays in flight long
# enough for the other worker's claims to run beside it; batches of 4 (a
# worker claims again when at most 3 are in flight), so that one worker
# cannot take every row of a transaction at once.
my $http = NotifyTest::HTTP->start(latency_ms => 20, log_bodies => 0);
my $node = NotifyTest::Node->new('workers',
	conf => {
		'notify.workers' => '2',
		'notify.batch_size' => '4',
		'notify.poll_interval' => q{'200ms'},
		'notify.archive_interval' => '0',
	});

sub psql { return $node->safe_psql('postgres', $_[0]); }
sub requests_to { my ($p) = @_; return grep { index($_->{path}, $p) == 0 } $http->requests; }

# ---- both workers run, a row each in the status view ----
ok(defined NotifyTest::Node::wait_for($node,
	q{SELECT count(*) FILTER (WHERE pid IS NOT NULL), string_agg(worker::text, ',' ORDER BY worker) FROM notify_worker_status},
	'2|0,1', 20), 'notify_worker_status: a row per worker, both running');
is(psql(q{SELECT count(DISTINCT pid) FROM notify_worker_status}), '2', 'two processes');
is(psql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'notify worker'}), '2',
	'pg_stat_activity shows two notify workers');

my $url = $http->url('');
psql(q{SELECT notify_channel_put('hooks', 'webhook', '{"allow_private_destinations": true, "max_connections": 4}')});
psql(q{SELECT notify_channel_put('single', 'webhook', '{"allow_private_destinations": true, "max_connections": 1}')});

# ---- 600 webhooks in one transaction: each sent once, by one worker ----
my $n = 600;
psql(qq{SELECT count(notify_enqueue('order.shipped', '${url}/webhook/many', jsonb_build_object('order', i),
	channel => 'hooks')) FROM generate_series(1, $n) i});
ok(defined NotifyTest::Node::wait_for($node,
	q{SELECT count(*) FROM notify_outbox WHERE channel = 'hooks' AND status = 'sent'}, "$n", 60),
	"all $n webhooks sent");
is($http->wait_for_count($n, 10), $n, "the server answered $n requests");
my @many = requests_to('/webhook/many');
my %ids;
$ids{ $_->{headers}{'webhook-id'} }++ for @many;
is(scalar(keys %ids), $n, "$n distinct webhook-ids");
is(scalar(grep { $_ > 1 } values %ids), 0, 'no webhook-id arrived twice');
is(psql(q{SELECT count(*) FROM notify_attempts a JOIN notify_outbox o ON o.id = a.outbox_id WHERE o.channel = 'hooks'}),
	"$n", 'one attempt recorded per webhook');
my @sent = split /\n/, psql(q{SELECT sent FROM notify_worker_status ORDER BY worker});
cmp_ok($sent[0], '>', 0, "worker 0 sent some ($sent[0])");
cmp_ok($sent[1], '>', 0, "worker 1 sent some ($sent[1])");
is($sent[0] + $sent[1], $n, 'the workers\' counts add up');

# The channel's 4 connections are split 2 + 2: at no moment were more than
# 4 requests at the server.  A request occupies the server from its arrival
# (time) to its answer (done).
my @events = sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] }
  ((map { [ $_->{time}, 1 ] } @many), (map { [ $_->{done}, -1 ] } @many));
my ($cur, $max) = (0, 0);
for my $e (@events)
{
	$cur += $e->[1];
	$max = $cur if $cur > $max;
}
cmp_ok($max, '<=', 4, "at most 4 requests at the server at once ($max)");
cmp_ok($max, '>=', 3, "more than one worker's share in use at once ($max)");

# ---- a channel limited to one connection: worker 1 has no share ----
psql(qq{SELECT count(notify_enqueue('order.shipped', '${url}/webhook/single', jsonb_build_object('order', i),
	channel => 'single')) FROM generate_series(1, 40) i});
ok(defined NotifyTest::Node::wait_for($node,
	q{SELECT count(*) FROM notify_outbox WHERE channel = 'single' AND status = 'sent'}, '40', 60),
	'the single-connection channel delivered all 40');
my @single = requests_to('/webhook/single');
@events = sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] }
  ((map { [ $_->{time}, 1 ] } @single), (map { [ $_->{done}, -1 ] } @single));
($cur, $max) = (0, 0);
for my $e (@events)
{
	$cur += $e->[1];
	$max = $cur if $cur > $max;
}
is($max, 1, 'never two requests of the single-connection channel at once');
my %conns;
$conns{ $_->{conn} }++ for @single;
is(scalar(keys %conns), 1, 'over one connection');

# ---- the in-flight registry covers both workers ----
# Stall the server so that rows stay in flight: each worker claims a batch
# of 4 and has no room for more until a stall ends.
$http->set_mode({ mode => 'stall', seconds => 2, path => '/webhook/stalled' });
psql(qq{SELECT count(notify_enqueue('order.shipped', '${url}/webhook/stalled', jsonb_build_object('order', i),
	channel => 'hooks')) FROM generate_series(1, 16) i});
ok(defined NotifyTest::Node::wait_for($node,
	q{SELECT count(*) FILTER (WHERE in_flight > 0) FROM notify_worker_status}, '2', 10),
	'both workers hold stalled rows');
ok(defined NotifyTest::Node::wait_for($node, q{SELECT cardinality(notify_in_flight_ids())}, '8', 10),
	'notify_in_flight_ids() lists the 8 rows of both workers');
is(psql(q{SELECT count(*) FROM notify_outbox o JOIN unnest(notify_in_flight_ids()) AS f(iid) ON o.id = f.iid
	WHERE o.status = 'pending' AND o.recipient LIKE '%/webhook/stalled'}), '8',
	'they are 8 distinct pending stalled rows');
is(psql(q{SELECT count(*) FILTER (WHERE notify_in_flight(id)) FROM notify_outbox
	WHERE recipient LIKE '%/webhook/stalled'}), '8', 'notify_in_flight() sees the same 8');

# ---- worker 1 stopped while it holds rows ----
my $pid1 = psql(q{SELECT pid FROM notify_worker_status WHERE worker = 1});
kill 'TERM', $pid1;
ok(defined NotifyTest::Node::wait_for($node,
	qq{SELECT pid IS NOT NULL AND pid <> $pid1 FROM notify_worker_status WHERE worker = 1}, 't', 30),
	'worker 1 came back with a new pid');
ok(defined NotifyTest::Node::wait_for($node,
	q{SELECT count(*) FROM notify_outbox WHERE channel = 'hooks' AND status = 'sent'}, $n + 16, 60),
	'every stalled row ended sent');
my @stalled = grep { defined $_->{status} && $_->{status} == 200 } requests_to('/webhook/stalled');
%ids = ();
$ids{ $_->{headers}{'webhook-id'} }++ for @stalled;
is(scalar(keys %ids), 16, 'the server answered each stalled webhook');
is(psql(q{SELECT count(*) FROM notify_outbox WHERE channel = 'hooks' AND status <> 'sent'}), '0',
	'nothing left pending or failed');
is(psql(q{SELECT max(attempts) FROM notify_outbox WHERE channel = 'hooks'}), '1',
	'no row needed a second attempt: the stopped worker finished or released its rows');

$node->stop;
$http->stop;
done_testing();

# notify_enqueue writes its outbox row, and the audit row of a skipped or
# deduplicated notification, without the executor (src/direct_insert.c),
# keeping per backend what an INSERT would rebuild at every call: column
# defaults, CHECK constraints, index definitions, partial-index predicates.
# This checks that such a backend still writes every index entry after
# indexes are created and dropped under it (amcheck's heapallindexed is the
# oracle), enforces CHECK constraints added under it, refuses indexes and
# triggers it cannot honour, writes audit rows as notify_audit() does,
# honours read-only transactions and REPEATABLE READ like INSERT ... ON
# CONFLICT DO NOTHING does, and that its COMMIT wakes the worker (no
# statement trigger fires on this path).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('outbox_insert');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'notify'
notify.database = 'app'
notify.sandbox = on
notify.poll_interval = '1h'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->restart;    # the worker starts once its database exists
$node->safe_psql('app', q{
CREATE EXTENSION notify;
CREATE EXTENSION amcheck;
CREATE FUNCTION try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
	EXECUTE q INTO r;
	RETURN r;
EXCEPTION WHEN OTHERS THEN
	RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $$;
-- every btree index of the outbox: structure, and a heap tuple for every entry
-- and an entry for every heap tuple its predicate admits
CREATE FUNCTION check_outbox_indexes() RETURNS text LANGUAGE plpgsql AS $$
DECLARE i regclass; n int := 0;
BEGIN
	FOR i IN SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'notify_outbox'::regclass LOOP
		PERFORM bt_index_check(i, true);
		n := n + 1;
	END LOOP;
	RETURN n || ' indexes ok';
END $$;
});

my $msg = q{'notify.message', 'a@example.com', '{"subject": "s", "text": "t"}'};
sub enqueue { my ($extra) = @_; return "SELECT try(\$q\$SELECT notify_enqueue($msg" . ($extra // '') . ")\$q\$)"; }

# A long-lived session builds its cache with the outbox's own indexes.
my $app = $node->background_psql('app', on_error_stop => 0);
like($app->query_safe(enqueue(", dedup_key => 'k1'")), qr/^\d+$/, 'first enqueue');
like($app->query_safe(enqueue()), qr/^\d+$/, 'enqueue without a dedup key');

# Indexes created by another session: a partial one, an expression one, one
# built concurrently.  The session's next rows must be in all of them.  They
# are scheduled a day ahead, so that the worker leaves them alone: its
# updates would write new row versions, with entries in every index.
$node->safe_psql('app', q{
CREATE INDEX outbox_tenant_idx ON notify_outbox ((metadata ->> 'tenant')) WHERE actor IS NOT NULL;
CREATE INDEX outbox_recipient_idx ON notify_outbox (lower(recipient));
});
$node->safe_psql('app', q{CREATE INDEX CONCURRENTLY outbox_actor_idx ON notify_outbox (actor)});
for my $i (1 .. 5)
{
	like($app->query_safe(enqueue(", dedup_key => 'after:$i', metadata => '{\"tenant\": \"t$i\"}', actor => 'a$i', send_at => now() + interval '1 day'")),
		qr/^\d+$/, "enqueue $i after the new indexes");
}
is($node->safe_psql('app', 'SELECT check_outbox_indexes()'), '11 indexes ok',
	'amcheck: every index, the new ones included, has an entry for every row');
is($node->safe_psql('app', q{SET enable_seqscan = off; SET enable_bitmapscan = off;
	SELECT count(*) FROM notify_outbox WHERE metadata ->> 'tenant' IN ('t1', 't2', 't3', 't4', 't5') AND actor IS NOT NULL}),
	'5', 'the expression index finds the five rows');

# Dropped under the session: the next enqueue must not touch it.
$node->safe_psql('app', 'DROP INDEX outbox_tenant_idx, outbox_recipient_idx, outbox_actor_idx');
like($app->query_safe(enqueue(", dedup_key => 'after-drop', send_at => now() + interval '1 day'")), qr/^\d+$/,
	'enqueue after DROP INDEX');
is($node->safe_psql('app', 'SELECT check_outbox_indexes()'), '8 indexes ok', 'amcheck after the drop');

# The dedup key still dedups for that session, also within one statement.
is($app->query_safe(q{SELECT count(DISTINCT notify_enqueue('notify.message', 'a@example.com', '{"subject": "s", "text": "t"}', dedup_key => 'one-statement')) FROM generate_series(1, 3)}),
	'1', 'three calls with one key in one statement: one id');
is($node->safe_psql('app', q{SELECT count(*) FROM notify_outbox WHERE dedup_key IN ('k1', 'one-statement')}),
	'2', 'one row per key');

# An exclusion constraint cannot be maintained without the executor: a clear
# error, nothing written.
$node->safe_psql('app', q{ALTER TABLE notify_outbox ADD CONSTRAINT no_twins EXCLUDE USING btree (template_key WITH =) WHERE (dedup_key = 'never')});
my $before = $node->safe_psql('app', 'SELECT count(*) FROM notify_outbox');
like($app->query_safe(enqueue(", dedup_key => 'excluded'")),
	qr/^ERROR 0A000: notify_enqueue does not support index "no_twins" on notify_outbox/,
	'exclusion constraint: feature_not_supported, naming the index');
is($node->safe_psql('app', 'SELECT count(*) FROM notify_outbox'), $before, 'nothing written');
$node->safe_psql('app', 'ALTER TABLE notify_outbox DROP CONSTRAINT no_twins');
like($app->query_safe(enqueue(", dedup_key => 'excluded'")), qr/^\d+$/, 'works again once it is dropped');

# A CHECK constraint added under the session is enforced, with INSERT's
# error; nothing is written.
$node->safe_psql('app', q{ALTER TABLE notify_outbox ADD CONSTRAINT no_example_org CHECK (recipient NOT LIKE '%@example.org')});
$before = $node->safe_psql('app', 'SELECT count(*) FROM notify_outbox');
like($app->query_safe(q{SELECT try($q$SELECT notify_enqueue('notify.message', 'b@example.org', '{"subject": "s", "text": "t"}')$q$)}),
	qr/^ERROR 23514: new row for relation "notify_outbox" violates check constraint "no_example_org"/,
	'CHECK constraint added under the session: 23514');
is($node->safe_psql('app', 'SELECT count(*) FROM notify_outbox'), $before, 'nothing written');
like($app->query_safe(enqueue()), qr/^\d+$/, 'a row that satisfies it is written');
$node->safe_psql('app', 'ALTER TABLE notify_outbox DROP CONSTRAINT no_example_org');

# A trigger of the user's on INSERT would not fire on this path: refused,
# naming it, unless disabled.
$node->safe_psql('app', q{
CREATE FUNCTION outbox_mirror() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER outbox_mirror AFTER INSERT ON notify_outbox FOR EACH ROW EXECUTE FUNCTION outbox_mirror();
});
$before = $node->safe_psql('app', 'SELECT count(*) FROM notify_outbox');
like($app->query_safe(enqueue(", dedup_key => 'mirrored'")),
	qr/^ERROR 0A000: notify_enqueue does not support trigger "outbox_mirror" on notify_outbox/,
	'user INSERT trigger: feature_not_supported, naming the trigger');
is($node->safe_psql('app', 'SELECT count(*) FROM notify_outbox'), $before, 'nothing written');
$node->safe_psql('app', 'ALTER TABLE notify_outbox DISABLE TRIGGER outbox_mirror');
like($app->query_safe(enqueue(", dedup_key => 'mirrored'")), qr/^\d+$/, 'disabled: enqueues again');
$node->safe_psql('app', 'DROP TRIGGER outbox_mirror ON notify_outbox');

# Audit rows of a dedup hit and of a skipped notification, written the same
# way: the columns notify_audit() would give them, the log's own CHECK
# enforced, and a user trigger on the log refused.
my $dup = $app->query_safe(enqueue(", dedup_key => 'k1', actor => 'alice'"));
is($node->safe_psql('app', qq{SELECT action || ' ' || object || ' ' || actor || ' ' || detail::text || ' ' || (db_role = session_user) || ' ' || (at > now() - interval '1 minute')
	FROM notify_audit_log WHERE object = 'outbox:$dup' AND action = 'deduplicated'}),
	qq{deduplicated outbox:$dup alice {"dedup_key": "k1"} true true}, 'dedup hit audited with actor, detail, db_role and time');
$node->safe_psql('app', q{SELECT notify_suppress('gone@example.com', 'manual')});
my $skipped = $app->query_safe(q{SELECT notify_enqueue('notify.message', 'gone@example.com', '{"subject": "s", "text": "t"}')});
is($node->safe_psql('app', qq{SELECT detail::text FROM notify_audit_log WHERE object = 'outbox:$skipped' AND action = 'skipped'}),
	'{"reason": "suppressed", "channel": "email", "category": "transactional"}', 'skipped row audited with reason, category, channel');
is($node->safe_psql('app', q{SELECT count(*) FROM notify_audit_log WHERE id IS NULL OR at IS NULL OR db_role IS NULL}), '0',
	'identity and defaults filled in');
$node->safe_psql('app', q{CREATE TRIGGER audit_mirror AFTER INSERT ON notify_audit_log FOR EACH ROW EXECUTE FUNCTION outbox_mirror()});
like($app->query_safe(q{SELECT try($q$SELECT notify_enqueue('notify.message', 'gone@example.com', '{"subject": "s", "text": "t"}')$q$)}),
	qr/^ERROR 0A000: notify_enqueue does not support trigger "audit_mirror" on notify_audit_log/,
	'user trigger on the audit log: refused');
$node->safe_psql('app', 'DROP TRIGGER audit_mirror ON notify_audit_log');
$node->safe_psql('app', q{ALTER TABLE notify_audit_log ADD CONSTRAINT no_skips CHECK (action <> 'skipped') NOT VALID});
like($app->query_safe(q{SELECT try($q$SELECT notify_enqueue('notify.message', 'gone@example.com', '{"subject": "s", "text": "t"}')$q$)}),
	qr/^ERROR 23514: new row for relation "notify_audit_log" violates check constraint "no_skips"/,
	'CHECK on the audit log enforced');
$node->safe_psql('app', 'ALTER TABLE notify_audit_log DROP CONSTRAINT no_skips');

# A read-only transaction may not enqueue.
like($node->safe_psql('app', 'BEGIN READ ONLY; ' . enqueue() . '; COMMIT'),
	qr/^ERROR 25006: cannot execute notify_enqueue\(\) in a read-only transaction/,
	'read-only transaction: 25006');

# REPEATABLE READ: a key committed after the snapshot was taken is a
# serialization failure (as for ON CONFLICT DO NOTHING), not a second row;
# READ COMMITTED returns the committed row's id.
my $rr = $node->background_psql('app', on_error_stop => 0);
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$rr->query_safe('SELECT 1');
my $other = $node->safe_psql('app', "SELECT notify_enqueue($msg, dedup_key => 'rr')");
like($rr->query_safe(enqueue(", dedup_key => 'rr'")),
	qr/^ERROR 40001: could not serialize access due to concurrent update/,
	'REPEATABLE READ: 40001 for a key committed after the snapshot');
$rr->query_safe('ROLLBACK');
is($rr->query_safe(enqueue(", dedup_key => 'rr'")), $other, 'READ COMMITTED: the committed row\'s id');
$rr->quit;

# The COMMIT wakes the worker: with a one-hour poll interval, only the
# wake-up gets the row sent (sandbox) within seconds.
$node->poll_query_until('app', q{SELECT count(*) = 0 FROM notify_outbox WHERE status = 'sending' OR (status = 'pending' AND send_at < now() + interval '1 hour')})
	or die 'earlier rows were not sent';
my $t0 = time;
my $id = $node->safe_psql('app', "SELECT notify_enqueue($msg, dedup_key => 'wake')");
ok($node->poll_query_until('app', "SELECT status = 'sent' FROM notify_outbox WHERE id = $id"),
	'the row committed by notify_enqueue was sent');
cmp_ok(time - $t0, '<', 30, 'sent without waiting for the one-hour poll');

$app->quit;
$node->stop;
done_testing();

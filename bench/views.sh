#!/usr/bin/env bash
# Admin views at scale: do the metrics views and the worker's claim query
# cost the same whether the outbox holds 100,000 rows or 10 million?
#
# One scratch cluster, two databases with the same recent traffic:
#
#   small   100,000 outbox rows, all created in the last 48 hours
#   big     the same 100,000 recent rows, after SIZE_BIG - 100,000 older
#           rows spread evenly over the 200 days before (all finished:
#           sent, failed, skipped, canceled), i.e. history
#
# The recent rows are generated from the same formulas in both (times
# relative to now()): 93% sent, 3% failed, 2% skipped, 1% canceled, 5% of
# the sent ones after one retry; the newest 1,000 are pending (half due,
# half scheduled an hour ahead) and the 100 before them are being sent.
# 90% go to channel email, 10% to a webhook channel; four categories.
# notify_attempts gets one row per attempt (about 1.1 per message).  The
# history is loaded first; the recent rows go into both databases one after
# the other right before measuring (so "the last hour" holds the same rows
# in both), and both are VACUUM ANALYZEd.
#
# For each query: one warm-up run, then EXPLAIN (ANALYZE, BUFFERS, TIMING
# OFF) RUNS times (per-node timing off: it would add a clock read per row),
# small and big in turns of BLOCK runs (one session in each, driven over
# dblink), so that both see the same moments of a shared machine; reported
# are the median and the fastest execution time, the shared buffers of the
# median run, and the big/small ratios.  The claim query is
# the worker's (src/claim.c) with a batch of 100, run in a subtransaction
# that is rolled back.  In the big database the views are measured once
# more with the indexes behind them dropped (in a transaction that is rolled
# back), to show what they are for, and the write path (notify_enqueue,
# the worker's claim and record UPDATE) is measured with and without them.
#
# Usage: bench/views.sh        (as root or as the owner of the PostgreSQL
#                               install; 10M rows: 10-35 minutes, ~25 GB
#                               of scratch space with the WAL)
# Environment: SIZE_BIG (10000000; lowered to 3000000 when the disk is
#   short, which is reported), RUNS (5), BLOCK (1: runs in a row in one
#   database before the other's turn), WRITE_RUNS (9, for the write
#   path), KEEP=1 to keep the cluster, PLANS=1 to print the big plans,
#   ONLY=<extended regexp> to measure only the queries whose names match
#   (e.g. ONLY=latency; ONLY=none measures nothing, with KEEP=1 to load a
#   cluster for experiments by hand),
#   NOTIFY_BUILD=1 to build and install the tree first, BENCH_PG_BIN to use
#   another PostgreSQL installation (with notify installed in it).
source "$(dirname "$0")/../scripts/common.sh"
PG_BIN=${BENCH_PG_BIN:-$PG_BIN}

SIZE_BIG=${SIZE_BIG:-10000000}
SIZE_SMALL=100000
RUNS=${RUNS:-5}
BLOCK=${BLOCK:-1}
WRITE_RUNS=${WRITE_RUNS:-9}

install_packages
if [ "${NOTIFY_BUILD:-0}" = 1 ] || [ ! -f "$($PG_BIN/pg_config --pkglibdir)/notify.so" ] ||
	[ ! -f "$($PG_BIN/pg_config --sharedir)/extension/notify.control" ]; then
	build_and_install
fi

WORK=$(scratch_dir /tmp/notify-bench-views)
DATA=$WORK/data
SOCK=$WORK/sock

cleanup() {
	trap - EXIT INT TERM
	if [ "${KEEP:-0}" = 1 ]; then
		echo "cluster kept: $DATA (socket $SOCK, port $PORT)" >&2
		return
	fi
	if [ -f "$DATA/postmaster.pid" ]; then
		as_pg pg_ctl stop -D "$DATA" -m immediate >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; cleanup; exit 130' INT TERM

# About 900 bytes per outbox row with its attempts and indexes, as much
# again in WAL (max_wal_size), and room to spare.
need_gb=$(( SIZE_BIG * 2500 / 1000000000 + 2 ))
avail_gb=$(( $(df -Pk "$WORK" | awk 'NR == 2 {print $4}') / 1048576 ))
if [ "$avail_gb" -lt "$need_gb" ] && [ "$SIZE_BIG" -gt 3000000 ]; then
	echo "only $avail_gb GB free in $WORK, $need_gb GB needed for $SIZE_BIG rows: using 3,000,000" >&2
	SIZE_BIG=3000000
fi

PORT=$(free_port)
bench_cluster "$PORT" <<CONF
# bench/views.sh.  The worker serves "postgres", where notify is not
# installed: it never touches the measured databases.
notify.database = 'postgres'
shared_buffers = 1GB
work_mem = 16MB
maintenance_work_mem = 1GB
max_wal_size = 16GB
checkpoint_timeout = 30min
autovacuum = off
log_min_messages = warning
CONF
echo "server: $("${PSQL[@]}" -d postgres -Atc 'SELECT version()')"

# ---- load ----
# The history (big only) first; then the recent rows, into both databases
# one after the other, right before measuring, so that "the last hour" and
# "the last day" hold the same rows in both.
setup() {
	"${PSQL[@]}" -d postgres -c "CREATE DATABASE $1"
	"${PSQL[@]}" -d "$1" <<'SQL'
CREATE EXTENSION notify;
INSERT INTO notify_channels (name, kind) VALUES ('hooks', 'webhook');
CREATE SCHEMA bench;

-- n outbox rows, the g-th created at t_start + span * g / n; with recent,
-- the newest 1,100 are unfinished
CREATE FUNCTION bench.fill(first bigint, n bigint, t_start timestamptz, span interval, recent boolean)
RETURNS void LANGUAGE sql AS $$
INSERT INTO notify_outbox (dedup_key, template_key, channel, category, recipient, payload, status,
	priority, attempts, max_attempts, send_at, next_attempt_at, locked_until, created_at, sent_at,
	last_error, message_id, actor)
SELECT 'bench:' || (first + g), 'ticket.replied',
	   CASE WHEN g % 10 = 9 THEN 'hooks' ELSE 'email' END,
	   (ARRAY['transactional', 'transactional', 'transactional', 'transactional', 'transactional',
			  'transactional', 'transactional', 'security', 'billing', 'marketing'])[g % 10 + 1],
	   CASE WHEN g % 10 = 9 THEN 'https://hooks.example.com/t/' || (g % 5000) ELSE 'user' || (g % 50000) || '@example.com' END,
	   jsonb_build_object('ticket_id', first + g, 'ticket_subject', 'Printer on fire', 'agent_name', 'Sam',
						  'reply_body', 'Please unplug it and step away from the printer.'),
	   s.status, 0, s.attempts, 5,
	   c.created_at,
	   CASE WHEN s.status = 'pending' AND g % 2 = 0 THEN c.created_at + interval '1 hour' ELSE c.created_at END,
	   CASE WHEN s.status = 'sending' THEN now() + interval '5 min' END,
	   c.created_at,
	   CASE WHEN s.status = 'sent' THEN c.created_at + make_interval(secs => 0.2 + (g % 50) * 0.1 + (s.attempts - 1) * 30) END,
	   CASE WHEN s.status = 'failed' THEN
			CASE WHEN g % 3 = 0 THEN 'smtp: 550 5.1.1 <user' || (g % 50000) || '@example.com>: no such user'
				 WHEN g % 3 = 1 THEN 'smtp: 552 5.2.2 <user' || (g % 50000) || '@example.com>: mailbox full'
				 ELSE 'http: status 410' END END,
	   CASE WHEN s.attempts > 0 THEN (first + g) || '.0123456789abcdef0123@bench.example' END,
	   'user:' || (g % 1000)
FROM generate_series(1, n) AS g
CROSS JOIN LATERAL (SELECT t_start + span * (g::float8 / n) AS created_at) c
CROSS JOIN LATERAL (SELECT
	CASE WHEN recent AND g > n - 1000 THEN 'pending'
		 WHEN recent AND g > n - 1100 THEN 'sending'
		 WHEN g % 100 < 3 THEN 'failed'
		 WHEN g % 100 < 5 THEN 'skipped'
		 WHEN g % 100 < 6 THEN 'canceled'
		 ELSE 'sent' END AS status) s0
CROSS JOIN LATERAL (SELECT s0.status,
	CASE s0.status WHEN 'sent' THEN CASE WHEN g % 20 = 7 THEN 2 ELSE 1 END
				   WHEN 'failed' THEN 3 WHEN 'sending' THEN 1 ELSE 0 END AS attempts) s
$$;

-- one attempt row per attempt of the outbox rows from id first_id on; the
-- last one of a sent row is the sent one, of a failed row the permanent
-- failure
CREATE FUNCTION bench.attempts(first_id bigint) RETURNS void LANGUAGE sql AS $$
INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome, response_code, response_text, error)
SELECT o.id, a,
	   o.created_at + (a - 1) * interval '30 s',
	   o.created_at + (a - 1) * interval '30 s' + interval '200 ms',
	   x.outcome,
	   CASE x.outcome WHEN 'sent' THEN 250 WHEN 'permanent' THEN 550 ELSE 451 END,
	   CASE x.outcome WHEN 'sent' THEN '250 2.0.0 Ok: queued as ABC123' END,
	   CASE x.outcome WHEN 'sent' THEN NULL WHEN 'permanent' THEN o.last_error
		  ELSE 'smtp: 451 4.7.1 <' || o.recipient || '>: try again later' END
FROM notify_outbox o
CROSS JOIN generate_series(1, o.attempts - CASE WHEN o.status = 'sending' THEN 1 ELSE 0 END) AS a
CROSS JOIN LATERAL (SELECT CASE WHEN a < o.attempts OR o.status = 'pending' THEN 'transient'
								WHEN o.status = 'sent' THEN 'sent' ELSE 'permanent' END AS outcome) x
WHERE o.id >= first_id
$$;
SQL
}

vacuum() {
	"${PSQL[@]}" -d "$1" -c "VACUUM (ANALYZE) notify_outbox" -c "VACUUM (ANALYZE) notify_attempts" -c "CHECKPOINT"
}

describe() {
	echo "$1: $("${PSQL[@]}" -d "$1" -Atc "SELECT format('%s outbox rows, %s attempts; outbox %s + indexes %s, attempts %s + indexes %s',
		(SELECT count(*) FROM notify_outbox), (SELECT count(*) FROM notify_attempts),
		pg_size_pretty(pg_table_size('notify_outbox')), pg_size_pretty(pg_indexes_size('notify_outbox')),
		(SELECT pg_size_pretty(sum(pg_table_size(relid))) FROM pg_partition_tree('notify_attempts')),
		(SELECT pg_size_pretty(sum(pg_indexes_size(relid))) FROM pg_partition_tree('notify_attempts')))")"
}

say "loading: big's $((SIZE_BIG - SIZE_SMALL)) rows of history"
t0=$SECONDS
setup small
setup big
if [ "$SIZE_BIG" -gt "$SIZE_SMALL" ]; then
	"${PSQL[@]}" -d big -c "SET synchronous_commit = off" \
		-c "SELECT bench.fill(0, $SIZE_BIG - $SIZE_SMALL, now() - interval '48 hours' - interval '200 days', interval '200 days', false)" \
		-c "SELECT bench.attempts(0)" >/dev/null
	vacuum big
fi
echo "history loaded in $((SECONDS - t0)) s"
say "loading: the same $SIZE_SMALL recent rows (the last 48 hours) into small and big"
for db in small big; do
	"${PSQL[@]}" -d "$db" >/dev/null <<SQL
SET synchronous_commit = off;
SELECT coalesce(max(id), 0) + 1 AS first_id FROM notify_outbox \gset
SELECT bench.fill($SIZE_BIG - $SIZE_SMALL, $SIZE_SMALL, now() - interval '48 hours', interval '48 hours', true);
SELECT bench.attempts(:first_id);
SQL
done
for db in small big; do
	vacuum "$db"
	describe "$db"
done

# ---- measuring ----
BLOCK_SQL=$(cat <<'SQL'
-- runs executions of q under EXPLAIN (ANALYZE, BUFFERS); each one's
-- execution time (ms) and shared buffers.  With rollback, each run is in a
-- subtransaction that is rolled back.
CREATE FUNCTION pg_temp.block(q text, runs integer, rollback boolean, OUT ts float8[], OUT bs bigint[])
LANGUAGE plpgsql AS $$
DECLARE
	j json;
BEGIN
	ts := '{}';
	bs := '{}';
	FOR i IN 1 .. runs LOOP
		BEGIN
			EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) ' || q INTO j;
			IF rollback THEN
				RAISE EXCEPTION 'bench rollback';
			END IF;
		EXCEPTION WHEN raise_exception THEN
			NULL;
		END;
		ts := ts || (j -> 0 ->> 'Execution Time')::float8;
		bs := bs || ((j -> 0 -> 'Plan' ->> 'Shared Hit Blocks')::bigint + (j -> 0 -> 'Plan' ->> 'Shared Read Blocks')::bigint);
	END LOOP;
END;
$$;
SQL
)
# pg_temp.measure (one database, used below for the with/without-indexes
# comparison): one warm-up run of pg_temp.block, then the median of the rest.
MEASURE_SQL="$BLOCK_SQL"$'\n'$(cat <<'SQL'
CREATE FUNCTION pg_temp.measure(q text, runs integer, rollback boolean DEFAULT false,
	OUT median_ms float8)
LANGUAGE sql AS $$
	SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY t)
	FROM unnest((SELECT b.ts[2:] FROM pg_temp.block(q, runs + 1, rollback) b)) t
$$;
SQL
)

# The worker's claim (src/claim.c), batch 100, lease 300 s, no rate-limited channels.
CLAIM="UPDATE public.notify_outbox o
 SET status = 'sending', attempts = o.attempts + 1,
     locked_until = now() + make_interval(secs => 300),
     message_id = CASE WHEN o.message_id IS NULL AND k.kind = 'smtp' THEN
         o.id || '.' || substr(md5(random()::text || clock_timestamp()::text), 1, 20) || '@bench.example'
         ELSE o.message_id END
 FROM public.notify_channels k
 WHERE k.name = o.channel AND o.id = ANY (ARRAY(
   SELECT d.id FROM public.notify_outbox d
   JOIN public.notify_channels c ON c.name = d.channel AND c.enabled
   WHERE d.status = 'pending' AND d.next_attempt_at <= now()
     AND (d.expires_at IS NULL OR d.expires_at > now())
     AND d.channel <> ALL ('{}'::text[])
   ORDER BY d.priority DESC, d.next_attempt_at, d.id
   LIMIT 100
   FOR UPDATE OF d SKIP LOCKED))
 RETURNING o.id, o.channel, k.kind, o.recipient, o.template_key, o.payload, o.message_id, o.attempts,
   o.max_attempts, o.locale, o.template_version,
   public.notify_decide(o.recipient, o.category, o.channel, o.metadata ->> 'tenant'),
   CASE WHEN (SELECT cat.unsubscribe_header FROM public.notify_categories cat WHERE cat.name = o.category)
        THEN public.notify_unsubscribe_url(o.recipient, o.category, o.metadata ->> 'tenant') END"

QUERIES=(
	"notify_stats|SELECT * FROM notify_stats|f"
	"notify_delivery_latency|SELECT * FROM notify_delivery_latency|f"
	"notify_backlog|SELECT * FROM notify_backlog|f"
	"notify_failures|SELECT * FROM notify_failures|f"
	"notify_worker_status|SELECT * FROM notify_worker_status|f"
	"claim (src/claim.c)|$CLAIM|t"
	"notify_metrics_prometheus()|SELECT notify_metrics_prometheus()|f"
	"notify_queue (whole outbox)|SELECT * FROM notify_queue|f"
	"notify_metrics_prometheus(true)|SELECT notify_metrics_prometheus(true)|f"
)

# small and big are measured in turns, not one after the other: the same
# session in each (over dblink from a third, "postgres"), one warm-up run
# in each, then rounds of BLOCK runs in small and BLOCK in big, the order
# swapped every round.  A sub-millisecond query finishes its runs in a few
# milliseconds, and this shared VM's speed changes for seconds at a time
# (a query runs at 0.65 ms and then at 1.3 ms for a while, in either
# database; docs/benchmarks.md, views section, session 4): measured one
# database after the other, the ratio is the ratio of two such moments.
COMPARE_SQL=$(cat <<'SQL'
-- q in small and big in turns: one warm-up in each, then rounds of block
-- runs in each (the first database alternating); per database the median
-- and fastest execution time (ms) and the shared buffers of the median run.
CREATE FUNCTION pg_temp.compare(q text, runs integer, block integer, rollback boolean,
	OUT s_median float8, OUT s_min float8, OUT s_buffers bigint,
	OUT b_median float8, OUT b_min float8, OUT b_buffers bigint)
LANGUAGE plpgsql AS $$
DECLARE
	db text;
	r record;
	s_ts float8[] := '{}';
	s_bs bigint[] := '{}';
	b_ts float8[] := '{}';
	b_bs bigint[] := '{}';
BEGIN
	FOR round IN 0 .. (runs + block - 1) / block LOOP
		FOREACH db IN ARRAY CASE WHEN round % 2 = 0 THEN ARRAY['small', 'big'] ELSE ARRAY['big', 'small'] END LOOP
			SELECT * INTO r FROM dblink(db, format('SELECT ts, bs FROM pg_temp.block(%L, %s, %L)',
				q, CASE WHEN round = 0 THEN 1 ELSE block END, rollback)) AS t(ts float8[], bs bigint[]);
			CONTINUE WHEN round = 0;
			IF db = 'small' THEN
				s_ts := s_ts || r.ts;
				s_bs := s_bs || r.bs;
			ELSE
				b_ts := b_ts || r.ts;
				b_bs := b_bs || r.bs;
			END IF;
		END LOOP;
	END LOOP;
	SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY t), min(t) INTO s_median, s_min FROM unnest(s_ts) t;
	SELECT b INTO s_buffers FROM unnest(s_ts, s_bs) u(t, b) ORDER BY t OFFSET (cardinality(s_ts) - 1) / 2 LIMIT 1;
	SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY t), min(t) INTO b_median, b_min FROM unnest(b_ts) t;
	SELECT b INTO b_buffers FROM unnest(b_ts, b_bs) u(t, b) ORDER BY t OFFSET (cardinality(b_ts) - 1) / 2 LIMIT 1;
END;
$$;
SQL
)
"${PSQL[@]}" -d postgres -c "CREATE EXTENSION dblink"

compare() {  # query rollback -> "small median|min|buffers|big median|min|buffers"
	"${PSQL[@]}" -d postgres -At -F '|' -v q="$1" -v rb="$2" -v block_sql="$BLOCK_SQL" <<SQL
SELECT dblink_connect(db, format('host=%s port=%s dbname=%s user=postgres',
	current_setting('unix_socket_directories'), current_setting('port'), db)) IS NULL
FROM unnest(ARRAY['small', 'big']) db \\g /dev/null
SELECT dblink_exec(db, :'block_sql') IS NULL FROM unnest(ARRAY['small', 'big']) db \\g /dev/null
$COMPARE_SQL
SELECT round(s_median::numeric, 2), round(s_min::numeric, 2), s_buffers,
	   round(b_median::numeric, 2), round(b_min::numeric, 2), b_buffers
FROM pg_temp.compare(:'q', $RUNS, $BLOCK, :'rb'::boolean);
SQL
}

selected() {  # name -> whether ONLY selects it
	[ -z "${ONLY:-}" ] || grep -Eq -- "$ONLY" <<<"$1"
}

say "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF): median (fastest) of $RUNS runs after one warm-up, small and big in turns of $BLOCK"
printf '%-34s %18s %18s %15s %10s %10s\n' query "small ms" "big ms" "ratio" "small buf" "big buf"
for entry in "${QUERIES[@]}"; do
	name=${entry%%|*}; rest=${entry#*|}; sql=${rest%|*}; rb=${rest##*|}
	selected "$name" || continue
	IFS='|' read -r s_med s_min s_buf b_med b_min b_buf <<<"$(compare "$sql" "$rb")"
	ratio=$(awk -v a="$b_med" -v b="$s_med" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	ratio_min=$(awk -v a="$b_min" -v b="$s_min" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	printf '%-34s %18s %18s %15s %10s %10s\n' "$name" "$s_med ($s_min)" "$b_med ($b_min)" "${ratio}x (${ratio_min}x)" "$s_buf" "$b_buf"
done

# ---- what the indexes buy, and what they cost (big database) ----
INDEXES="notify_outbox_finished_idx notify_outbox_sent_idx notify_attempts_failed_idx"
without() {  # query rollback runs -> median ms with this file's indexes dropped (rolled back)
	"${PSQL[@]}" -d big -At -v q="$1" -v rb="$2" <<SQL
$MEASURE_SQL
BEGIN;
$(for i in $INDEXES; do echo "DROP INDEX $i;"; done)
SELECT round(median_ms::numeric, 2) FROM pg_temp.measure(:'q', $3, :'rb'::boolean);
ROLLBACK;
SQL
}
with() {
	"${PSQL[@]}" -d big -At -v q="$1" -v rb="$2" <<SQL
$MEASURE_SQL
SELECT round(median_ms::numeric, 2) FROM pg_temp.measure(:'q', $3, :'rb'::boolean);
SQL
}

ENQUEUE="SELECT count(notify_enqueue('ticket.replied', 'w' || g || '@example.com',
	jsonb_build_object('product_name', 'Acme', 'ticket_id', g, 'ticket_subject', 'Printer on fire', 'agent_name', 'Sam',
					   'reply_body', 'Please unplug it.', 'ticket_url', 'https://help.example.com/t/' || g)))
FROM generate_series(1, 1000) g"
RECORD="UPDATE notify_outbox o SET status = 'sent', sent_at = now(), locked_until = NULL
FROM (SELECT id FROM notify_outbox WHERE status = 'pending' ORDER BY id LIMIT 500) d WHERE o.id = d.id"

say "big database: median ms with and without $INDEXES"
printf '%-40s %12s %12s\n' query "with" "without"
for entry in "notify_stats|SELECT * FROM notify_stats|f|$RUNS" \
	"notify_delivery_latency|SELECT * FROM notify_delivery_latency|f|$RUNS" \
	"notify_backlog|SELECT * FROM notify_backlog|f|$RUNS" \
	"notify_failures|SELECT * FROM notify_failures|f|$RUNS" \
	"claim 100 rows (src/claim.c)|$CLAIM|t|$WRITE_RUNS" \
	"1,000 x notify_enqueue|$ENQUEUE|t|$WRITE_RUNS" \
	"record 500 rows sent (worker UPDATE)|$RECORD|t|$WRITE_RUNS"; do
	name=${entry%%|*}; rest=${entry#*|}; runs=${rest##*|}; rest=${rest%|*}; sql=${rest%|*}; rb=${rest##*|}
	selected "$name" || continue
	# alternate, so that the machine's load drifts into both columns alike
	w1=$(with "$sql" "$rb" "$runs"); wo1=$(without "$sql" "$rb" "$runs")
	wo2=$(without "$sql" "$rb" "$runs"); w2=$(with "$sql" "$rb" "$runs")
	printf '%-40s %12s %12s\n' "$name" "$w1 / $w2" "$wo1 / $wo2"
done

if [ "${PLANS:-0}" = 1 ]; then
	for entry in "${QUERIES[@]}"; do
		selected "${entry%%|*}" || continue
		sql=${entry#*|}; sql=${sql%|*}
		say "plan in big: ${entry%%|*}"
		"${PSQL[@]}" -d big -c "BEGIN" -c "EXPLAIN (ANALYZE, BUFFERS) $sql" -c "ROLLBACK"
	done
fi

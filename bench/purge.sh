#!/usr/bin/env bash
# Purge under load: does CALL notify_purge(...) hold up concurrent
# notify_enqueue calls?  Target: no enqueue takes longer than 100 ms while a
# month of history is purged.
#
# One scratch cluster (a private copy of the PostgreSQL install with this
# tree's notify, see private_install in scripts/common.sh), database
# "bench":
#
#   history   SIZE rows (10,000,000) in notify_history, spread evenly over
#             the six whole months before the current one (about 1.7
#             million rows a month), one notify_attempts row per
#             notification, written with INSERT ... SELECT generate_series;
#             the partitions are made by notify_history_partition for every
#             day of those months, so they are what notify.history_partition
#             makes (PARTITION, default day here; the extension's default is
#             month): a pair of partitions a day (55,000 rows at 10
#             million), or a month for builds from before the setting
#             (NOTIFY_REV); the attempts go where notify_archive puts them,
#             into the notify_attempts partition beside their notification's
#             (history_created_at; a build from before that column gets them
#             in its unpartitioned notify_attempts);
#   outbox    100,000 finished rows of the last two days, where the
#             enqueues go.
#
# Two scenarios, each one pgbench run (CLIENTS clients, each calling
# notify_enqueue with a unique dedup key, one call per transaction,
# per-transaction log): BASELINE seconds of enqueues alone, then, with the
# enqueues still running, one CALL notify_purge(...), then AFTER (6) s more.
#
#   drop      the cutoff is the first day of the oldest-but-one month: the
#             oldest month goes by dropping its partitions (history and
#             attempts, a pair a day with a sleep of DROP_PAUSE after each, or
#             one monthly pair with older builds; builds before the
#             attempts partitions deleted the attempts in batches)
#   delete    the cutoff is one minute before the end of the (new) oldest
#             month: with day partitions, all its days but the last are
#             dropped as above and the last day's rows (the partition the
#             cutoff falls in, 55,000 rows at 10 million) go in batches of
#             BATCH, with a COMMIT and a sleep of PAUSE after each, and so
#             do their attempts; with monthly partitions, the whole
#             month's rows go in batches
#   delete_nopause (COMPARE=1) the same for the next month with batches
#             of 10,000 and no pause, neither between batches nor after
#             drops (the earlier defaults)
#
# For each, the enqueue latencies of the transactions that ran during the
# purge (started before it ended and finished after it began) against those
# of the baseline before it (its first 2 s left out), and of those that
# started in the AFTER seconds after the purge ended (a file system may
# act on the DROP's freed files at its next journal commit, up to 5 s
# later on ext4): count, p50, p99, max.
# pgbench is stopped (SIGTERM, by its pid) AFTER s after the purge; the few
# log lines it had not written yet are from after the purge.  The server
# logs every lock wait longer than deadlock_timeout (100 ms here:
# log_lock_waits); their number is reported.  Where the time goes: WAL
# written by the purge (pg_stat_wal before and after: records, full-page
# images, bytes, syncs and their time, track_wal_io_timing is on), and the
# wait events of the enqueuing clients and of the purge, sampled from
# pg_stat_activity every 20 ms by one extra session while the purge runs;
# the ten slowest enqueues during the purge with their start time relative
# to the purge's.  The load average is printed before each scenario.
#
# The delivery worker is loaded but serves database "postgres", so it does
# not archive or send in "bench": the enqueued rows stay pending.
# Durability is the default (fsync, synchronous_commit, full_page_writes);
# autovacuum runs; the history is VACUUM ANALYZEd and checkpointed after
# loading.
#
# Usage: bench/purge.sh      (as root; 10M rows: ~15 minutes, 8 of them
#                             loading; ~12 GB of scratch space with the WAL)
# Environment: SIZE (10000000), CLIENTS (4), BASELINE (30 s), BATCH
#   (1000, notify_purge's batch_size), PAUSE (10ms, notify_purge's pause;
#   ignored by builds without it), DROP_PAUSE (notify_purge's drop_pause,
#   the sleep after each partition drop; default: the procedure's, 5 s),
#   COMPARE=1 for the third scenario,
#   EXTRA_CONF (postgresql.conf lines to add, e.g. "backend_flush_after =
#   256kB"), BENCH_DIR (/tmp/notify-bench-purge: where the scratch cluster goes, e.g.
#   a file system mounted with other options), KEEP=1 to keep the
#   cluster, LOGS_DIR (/dev/shm: where pgbench's per-transaction logs
#   go; keep them off the cluster's disk), DIRTY_BACKGROUND_BYTES (as
#   root: set vm.dirty_background_bytes to this for the run and restore the
#   kernel's setting at exit; see docs/operations.md, "Writeback stalls":
#   on this VM a file that keeps growing, as the outbox here does, stalls
#   every fdatasync for 160-180 ms each 30.7 s at the kernel's defaults,
#   bench/fsync_stall.sh), BENCH_PG_BIN to use an installation that
#   has notify (default: build this tree into a private copy;
#   NOTIFY_REV=<commit> builds that commit, see private_install).
source "$(dirname "$0")/../scripts/common.sh"

SIZE=${SIZE:-10000000}
CLIENTS=${CLIENTS:-4}
BASELINE=${BASELINE:-30}
BATCH=${BATCH:-1000}
PAUSE=${PAUSE:-10ms}
AFTER=${AFTER:-6}		# seconds of enqueues measured after the purge
MAX_PURGE=${MAX_PURGE:-1800}	# seconds: give up on a purge after this long

install_packages
WORK=$(scratch_dir "${BENCH_DIR:-/tmp/notify-bench-purge}")
if [ -n "${BENCH_PG_BIN:-}" ]; then
	PG_BIN=$BENCH_PG_BIN
else
	private_install "$WORK/install" >/dev/null
fi
DATA=$WORK/data
SOCK=$WORK/sock
# pgbench's per-transaction logs go to memory, off the cluster's disk.
# (Session 5 suspected their writeback of the stalls that come every
# 30.7 s; with the logs here the stalls stayed, in the baseline too when
# it is longer than 30.7 s: BASELINE=70 shows them.)
LOGS=${LOGS_DIR:-/dev/shm}/notify-bench-purge.$$
mkdir -p "$LOGS"
PGBENCH_PID=
SAVED_DIRTY=
if [ -n "${DIRTY_BACKGROUND_BYTES:-}" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "DIRTY_BACKGROUND_BYTES needs root" >&2; exit 1; }
	SAVED_DIRTY="$(cat /proc/sys/vm/dirty_background_bytes) $(cat /proc/sys/vm/dirty_background_ratio)"
	echo "$DIRTY_BACKGROUND_BYTES" >/proc/sys/vm/dirty_background_bytes
fi
echo "kernel: vm.dirty_background_bytes $(cat /proc/sys/vm/dirty_background_bytes), dirty_background_ratio $(cat /proc/sys/vm/dirty_background_ratio), dirty_expire_centisecs $(cat /proc/sys/vm/dirty_expire_centisecs)"

cleanup() {
	trap - EXIT INT TERM
	[ -n "$PGBENCH_PID" ] && kill "$PGBENCH_PID" 2>/dev/null || true
	rm -rf "$LOGS"
	if [ -n "$SAVED_DIRTY" ]; then
		# writing one of the pair zeroes the other: restore whichever was set
		read -r bytes ratio <<<"$SAVED_DIRTY"
		if [ "$bytes" != 0 ]; then echo "$bytes" >/proc/sys/vm/dirty_background_bytes
		else echo "$ratio" >/proc/sys/vm/dirty_background_ratio; fi
		SAVED_DIRTY=
	fi
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

PORT=$(free_port)
# EXTRA_CONF: more postgresql.conf lines, e.g. "backend_flush_after = 256kB"
bench_cluster "$PORT" <<CONF
# bench/purge.sh: default durability; the worker serves "postgres", where
# notify is not installed, so it never touches the measured database.
notify.database = 'postgres'
notify.history_partition = '${PARTITION:-day}'
shared_buffers = 1GB
maintenance_work_mem = 512MB
max_wal_size = 4GB
log_lock_waits = on
deadlock_timeout = 100ms
track_wal_io_timing = on
${EXTRA_CONF:-}
CONF
q() { "${PSQL[@]}" -d bench -Atc "$1"; }
"${PSQL[@]}" -d postgres -c "CREATE DATABASE bench"
echo "server: $(q 'SELECT version()')"

# ---- load ----
say "loading $SIZE history rows over six months, one attempt each, and 100,000 outbox rows"
t0=$SECONDS
"${PSQL[@]}" -d bench -c "CREATE EXTENSION notify"
# attempts partitioned by their notification's month (history_created_at), or not (older builds)
if [ "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'notify_attempts'::regclass AND attname = 'history_created_at'")" = 1 ]; then
	KEY_COL=", history_created_at" KEY_VAL=", c.t"
	echo "notify_attempts: partitioned by history_created_at"
else
	KEY_COL= KEY_VAL=
	echo "notify_attempts: one table (a build from before its partitions)"
fi
if [ "$(q "SELECT count(*) FROM pg_proc WHERE proname = 'notify_purge' AND 'drop_pause' = ANY (proargnames)")" = 1 ]; then
	HAS_DROP_PAUSE=1
else
	HAS_DROP_PAUSE=0
	[ -n "${DROP_PAUSE:-}" ] && echo "notify_purge has no drop_pause argument: DROP_PAUSE is ignored"
fi
if [ "$(q "SELECT count(*) FROM pg_proc WHERE proname = 'notify_purge' AND 'pause' = ANY (proargnames)")" = 1 ]; then
	HAS_PAUSE=1
else
	HAS_PAUSE=0
	echo "notify_purge has no pause argument: PAUSE is ignored"
fi
"${PSQL[@]}" -d bench <<SQL
CREATE SCHEMA bench;
-- a pair of partitions for every day of the six months (one a month with
-- builds from before notify.history_partition: the same call returns the
-- month's partition then)
SELECT count(DISTINCT notify_history_partition(d))
FROM generate_series(date_trunc('month', now()) - interval '6 months', date_trunc('month', now()) - interval '1 day', interval '1 day') d;
-- the g-th of n rows, created at t_start + span * g / n
CREATE FUNCTION bench.fill(first bigint, n bigint, t_start timestamptz, span interval) RETURNS void
LANGUAGE sql AS \$\$
INSERT INTO notify_history (id, dedup_key, template_key, template_version, locale, channel, category, recipient,
	payload, status, priority, attempts, max_attempts, send_at, next_attempt_at, created_at, sent_at, last_error,
	message_id, actor, created_by)
SELECT first + g, 'bench:' || (first + g), 'ticket.replied', 1, 'en', 'email', 'transactional',
	   'user' || (g % 50000) || '@example.com',
	   jsonb_build_object('ticket_id', first + g, 'ticket_subject', 'Printer on fire', 'agent_name', 'Sam'),
	   CASE WHEN g % 100 < 3 THEN 'failed' ELSE 'sent' END, 0, 1, 5,
	   c.t, c.t, c.t, CASE WHEN g % 100 >= 3 THEN c.t + interval '1 s' END,
	   CASE WHEN g % 100 < 3 THEN 'smtp: 550 5.1.1 no such user' END,
	   (first + g) || '.0123456789abcdef0123@bench.example', 'user:' || (g % 1000), 'postgres'
FROM generate_series(1, n) g
CROSS JOIN LATERAL (SELECT t_start + span * (g::float8 / n) AS t) c;
INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome, response_code, error$KEY_COL)
SELECT first + g, 1, c.t, c.t + interval '200 ms', CASE WHEN g % 100 < 3 THEN 'permanent' ELSE 'sent' END,
	   CASE WHEN g % 100 < 3 THEN 550 ELSE 250 END, CASE WHEN g % 100 < 3 THEN 'smtp: 550 5.1.1 no such user' END$KEY_VAL
FROM generate_series(1, n) g
CROSS JOIN LATERAL (SELECT t_start + span * (g::float8 / n) AS t) c;
\$\$;
SQL
# month by month (a commit each), oldest first, ids increasing with time
per_month=$((SIZE / 6))
for m in 6 5 4 3 2 1; do
	"${PSQL[@]}" -d bench -c "SET synchronous_commit = off" \
		-c "SELECT bench.fill($(( (6 - m) * per_month )), $per_month,
			date_trunc('month', now()) - interval '$m months', interval '1 month' - interval '1 s')" >/dev/null
done
"${PSQL[@]}" -d bench >/dev/null <<SQL
SET synchronous_commit = off;
-- the hot outbox: finished rows of the last two days, ids after the history's
SELECT setval('notify_outbox_id_seq', $SIZE + 1000);
INSERT INTO notify_outbox (template_key, recipient, payload, status, attempts, created_at, sent_at, message_id)
SELECT 'ticket.replied', 'user' || (g % 50000) || '@example.com', jsonb_build_object('ticket_id', g), 'sent', 1,
	   now() - interval '2 days' * (g::float8 / 100000), now() - interval '2 days' * (g::float8 / 100000) + interval '1 s',
	   g || '.hot@bench.example'
FROM generate_series(1, 100000) g;
SQL
"${PSQL[@]}" -d bench -c "VACUUM (ANALYZE) notify_history" -c "VACUUM (ANALYZE) notify_attempts" \
	-c "VACUUM (ANALYZE) notify_outbox" -c "CHECKPOINT" >/dev/null
echo "loaded in $((SECONDS - t0)) s"
q "SELECT format('notify_history rows created in %s: %s partitions, %s rows, %s (largest partition %s)', m,
	count(*), to_char(sum(c.reltuples), 'FM999,999,999'), pg_size_pretty(sum(pg_total_relation_size(c.oid))),
	pg_size_pretty(max(pg_total_relation_size(c.oid))))
   FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   CROSS JOIN LATERAL (SELECT to_char(r.lower_bound, 'YYYY-MM') AS m FROM notify_partition_range(c.oid) r) x
   WHERE i.inhparent = 'notify_history'::regclass GROUP BY m ORDER BY m"
q "SELECT format('notify_attempts: %s rows, %s', to_char(count(*), 'FM999,999,999'),
	pg_size_pretty(coalesce((SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'notify_attempts'::regclass), 0)
				   + pg_total_relation_size('notify_attempts')))
   FROM notify_attempts"

# the wait-event sampler: one session, a sample every 20 ms, until killed
yes "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, application_name, coalesce(wait_event_type, '-'), coalesce(wait_event, 'CPU') FROM pg_sleep(0.02), pg_stat_activity WHERE state = 'active' AND application_name IN ('pgbench', 'notify_purge');" |
	head -n 200000 >"$WORK/sample.sql" || true
chmod a+r "$WORK/sample.sql"
WAL_COLS="wal_records, wal_fpi, wal_bytes, wal_write, wal_sync, wal_write_time, wal_sync_time"

# ---- the enqueuers ----
cat >"$WORK/enqueue.sql" <<'PGB'
\set n :n + 1
SELECT notify_enqueue('ticket.replied', 'a@example.com',
	jsonb_build_object('product_name', 'Acme', 'ticket_id', :n::bigint, 'ticket_subject', 'Printer on fire', 'agent_name', 'Sam',
					   'reply_body', 'Please unplug it and step away from the printer.', 'ticket_url', 'https://help.example.com/t/' || :n),
	dedup_key => 'purge-bench:' || :run || ':' || :client_id || ':' || :n);
PGB
chmod a+r "$WORK/enqueue.sql"

now_us() { date +%s%6N; }

# scenario name, cutoff (a timestamptz expression), batch size, pause,
# drop pause (empty: notify_purge's default)
scenario() {
	local name=$1 cutoff=$2 batch=$3 pause=$4 drop_pause=${5:-} t1 t2 waits_before rows sampler args
	say "scenario $name: cutoff $(q "SELECT $cutoff"), batch_size $batch, pause $pause, drop_pause ${drop_pause:-default}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	q "SELECT format('before: %s history rows older than the cutoff, %s partitions', count(*),
		(SELECT count(*) FROM pg_inherits WHERE inhparent = 'notify_history'::regclass))
	   FROM notify_history WHERE created_at < $cutoff"
	q "CHECKPOINT"
	waits_before=$(grep -c 'still waiting for' "$WORK/server.log" || true)
	mkdir -p "$LOGS/log_$name"
	chown postgres "$LOGS/log_$name" 2>/dev/null || true
	( cd "$LOGS/log_$name" && exec "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j 2 -T $((BASELINE + MAX_PURGE + 60)) \
		-D run="$name" -D n=0 --log --log-prefix=enq -f "$WORK/enqueue.sql" bench ) >"$WORK/pgbench_$name.out" 2>&1 &
	PGBENCH_PID=$!
	sleep "$BASELINE"
	args="batch_size => $batch"
	[ "$HAS_PAUSE" = 1 ] && args="$args, pause => '$pause'"
	[ "$HAS_DROP_PAUSE" = 1 ] && [ -n "$drop_pause" ] && args="$args, drop_pause => '$drop_pause'"
	q "SELECT $WAL_COLS FROM pg_stat_wal" >"$WORK/wal_before_$name"
	"${PSQL[@]}" -d bench -At -F ' ' -f "$WORK/sample.sql" >"$WORK/samples_$name" 2>/dev/null &
	sampler=$!
	t1=$(now_us)
	PGAPPNAME=notify_purge timeout "$MAX_PURGE" "${PSQL[@]}" -d bench -c "SET lock_timeout = '${MAX_PURGE}s'" \
		-c "CALL notify_purge(now() - ($cutoff), $args)"
	t2=$(now_us)
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	q "SELECT $WAL_COLS FROM pg_stat_wal" >"$WORK/wal_after_$name"
	sleep "$AFTER"
	kill "$PGBENCH_PID" 2>/dev/null || true
	wait "$PGBENCH_PID" 2>/dev/null || true
	PGBENCH_PID=
	echo "purge took $(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }') s:" \
		"$(q "SELECT detail FROM notify_audit_log WHERE action = 'purged' ORDER BY id DESC LIMIT 1")"
	echo "lock waits over 100 ms logged during the run: $(( $(grep -c 'still waiting for' "$WORK/server.log" || true) - waits_before ))"
	paste -d'|' "$WORK/wal_before_$name" "$WORK/wal_after_$name" | awk -F'|' -v s="$(awk -v a="$t1" -v b="$t2" 'BEGIN { print (b - a) / 1e6 }')" '
		{ printf "WAL during the purge (all sessions): %d records, %d full-page images, %.1f MB (%.1f MB/s), %d writes, %d syncs, sync time %.0f ms\n",
			$8 - $1, $9 - $2, ($10 - $3) / 1048576, ($10 - $3) / 1048576 / s, $11 - $4, $12 - $5, $14 - $7 }'
	echo "wait events sampled every 20 ms during the purge (samples; CPU = active, no wait event):"
	awk -F' ' 'NF >= 4 { n[$2 " " $3 ":" $4]++; t[$2]++ }
		END { for (k in n) { split(k, a, " "); printf "  %-13s %-28s %6d  %5.1f%%\n", a[1], a[2], n[k], 100 * n[k] / t[a[1]] } }' \
		"$WORK/samples_$name" | sort -k1,1 -k3,3nr | awk '{ c[$1]++ } c[$1] <= 6'
	# log line: client_id transaction_no latency_us script_no epoch_s epoch_us
	cat "$LOGS/log_$name"/enq.* | awk -v t0="$t1" -v t1="$t1" -v t2="$t2" -v after=$(( AFTER * 1000000 - 500000 )) -v warm=2000000 '
		{ end = $5 * 1000000 + $6; start = end - $3
		  if (end < t1 && start >= t1 - ('"$BASELINE"' * 1000000) + warm) print "baseline", $3, (start - t1) / 1000
		  else if (start < t2 && end > t1) print "purge", $3, (start - t1) / 1000
		  else if (start >= t2 && end < t2 + after) print "after", $3, (start - t1) / 1000 }' |
		sort -k1,1 -k2,2n | tee "$WORK/lat_$name" | awk '
		{ v[$1, ++n[$1]] = $2 }
		END {
			printf "%-10s %8s %10s %10s %10s\n", "enqueues", "count", "p50 ms", "p99 ms", "max ms"
			split("baseline purge after", names, " ")
			for (i = 1; i <= 3; i++) {
				k = names[i]; c = n[k]
				if (c == 0) { printf "%-10s %8d\n", k, 0; continue }
				p50 = v[k, int((c - 1) * 0.50) + 1]; p99 = v[k, int((c - 1) * 0.99) + 1]; mx = v[k, c]
				printf "%-10s %8d %10.2f %10.2f %10.2f\n", k, c, p50 / 1000, p99 / 1000, mx / 1000
			}
		}'
	# stalls: enqueues over 100 ms, those that started within 100 ms of
	# each other counted as one stall (all clients waiting for one flush)
	echo "enqueues over 100 ms (stalls: started within 100 ms of each other; start s after the purge began):"
	awk '$2 > 100000 { print $1, $3 }' "$WORK/lat_$name" | sort -k1,1 -k2,2n | awk '
		{ if ($1 != k || $2 - last > 100) { n[$1]++; at[$1] = at[$1] sprintf(" %.1f", $2 / 1000) } c[$1]++; k = $1; last = $2 }
		END { for (w in c) printf "  %-9s %d enqueues in %d stalls, at%s\n", w, c[w], n[w], at[w] }'
	echo "the ten slowest enqueues during the purge: latency ms @ start ms after the purge began"
	awk '$1 == "purge"' "$WORK/lat_$name" | sort -k2,2nr |
		awk 'NR <= 10 { printf "  %.1f @ %.0f", $2 / 1000, $3 } END { print "" }'
	echo "the five slowest in the $AFTER s after it (start ms after the purge began; it took $(( (t2 - t1) / 1000 )) ms)"
	awk '$1 == "after"' "$WORK/lat_$name" | sort -k2,2nr |
		awk 'NR <= 5 { printf "  %.1f @ %.0f", $2 / 1000, $3 } END { print "" }'
	# what the sessions were waiting for while the slowest one waited (no
	# head: a pipe closed early is an error under pipefail)
	awk '$1 == "purge"' "$WORK/lat_$name" | sort -k2,2nr | awk 'NR == 1 { print $3 * 1000, $2 }' >"$WORK/worst_$name"
	if [ -s "$WORK/worst_$name" ]; then
		echo "samples during the slowest enqueue (ms after the purge began: session wait event ...):"
		awk -v t1="$t1" 'NR == FNR { s = t1 + $1; e = s + $2; next }
			NF >= 4 && $1 >= s && $1 <= e { k = sprintf("%.0f", ($1 - t1) / 1000); line[k] = line[k] " " $2 "=" $3 ":" $4; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
			END { for (i = 1; i <= n; i++) print "  " order[i] ":" line[order[i]] }' \
			"$WORK/worst_$name" "$WORK/samples_$name"
	fi
}

# drop: the oldest month's partitions go whole
scenario drop "date_trunc('month', now()) - interval '5 months'" "$BATCH" "$PAUSE" "${DROP_PAUSE:-}"
# delete: the next month's rows, all but its last minute: its partitions
# but the last day's dropped, the last day's rows in batches
scenario delete "date_trunc('month', now()) - interval '4 months' - interval '1 minute'" "$BATCH" "$PAUSE" "${DROP_PAUSE:-}"
if [ "${COMPARE:-0}" = 1 ]; then
	# the month after that with the earlier defaults, without any pause (its
	# predecessor's last minute goes by a drop)
	scenario delete_nopause "date_trunc('month', now()) - interval '3 months' - interval '1 minute'" 10000 0 0
fi
q "SELECT format('after: %s partitions, %s outbox rows pending', (SELECT count(*) FROM pg_inherits WHERE inhparent = 'notify_history'::regclass),
	(SELECT count(*) FROM notify_outbox WHERE status = 'pending'))"

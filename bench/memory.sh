#!/usr/bin/env bash
# Worker memory: does the delivery worker's memory stay flat as messages go
# through it?  Target: RSS after 200,000 messages within 10 MB of its RSS
# after 10,000.
#
# One invocation, one scratch cluster (default memory settings:
# shared_buffers 128 MB).  Each phase starts a fresh worker (server
# restart), then feeds it the backlog in steps (rows inserted as
# notify_enqueue would, with next_attempt_at tomorrow, then released with
# one UPDATE), waits until notify_worker_status counts them sent, and reads
# /proc/<worker pid>/status:
#   VmRSS     resident set: what the target is about; it includes the
#             shared buffers the worker has touched (RssShmem), which grow
#             towards shared_buffers as it reads more pages, leak or not;
#   RssAnon   private memory: where a leak would show;
#   VmHWM     the peak of VmRSS;
# and the worker's own memory contexts (pg_log_backend_memory_contexts,
# "Grand total" in the server log).
#
#   sandbox   notify.sandbox = on: claim, render the template, build the
#             MIME message, record; no network.
#   smtp      the same through libcurl and SMTP to Postfix's smtp-sink on
#             127.0.0.1 (notify.max_connections 4).
#
# Usage: bench/memory.sh          (as root or the owner of the PostgreSQL
#                                  install; ~11 minutes on a busy 2-CPU machine)
# Environment: STEPS ("10000 50000 100000 200000": cumulative messages at
#   which memory is read), PHASES ("sandbox smtp"), SHARED_BUFFERS (the
#   server's default, 128MB: VmRSS grows by up to this much as the worker
#   touches more of the buffer pool), NOTIFY_REV (build
#   this commit instead of the working tree).
source "$(dirname "$0")/../scripts/common.sh"

STEPS=${STEPS:-"10000 50000 100000 200000"}
SHARED_BUFFERS=${SHARED_BUFFERS:-128MB}
PHASES=${PHASES:-"sandbox smtp"}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
read -r -a STEPS_A <<<"$STEPS"
read -r -a PHASES_A <<<"$PHASES"

# ---- packages (install_packages starts no system postfix) ----
install_packages postfix python3-psycopg2

WORK=$(scratch_dir /tmp/notify-bench-memory)
PIDS=()
bench_traps

# ---- notify built into a private copy of the PostgreSQL install ----
# (scripts/common.sh: nobody else's build or install can change what is
# measured, and ours changes nobody's)
private_install "$WORK"

PGPORT_=$(free_port)
SINK_PORT=$(free_port)

say "smtp-sink on 127.0.0.1:$SINK_PORT"
SINK_USER=()
[ "$(id -u)" -eq 0 ] && SINK_USER=(-u postgres)
/usr/sbin/smtp-sink "${SINK_USER[@]}" "127.0.0.1:$SINK_PORT" 1024 >"$WORK/sink.out" 2>&1 &
PIDS+=($!)
echo $! >"$WORK/server1.pid"  # scratch_dir stops it if this run is killed

# ---- the cluster ----
bench_cluster "$PGPORT_" bench <<CONF
# bench/memory.sh: default memory settings.  log_min_messages = log so that
# pg_log_backend_memory_contexts reaches the log.
max_connections = 50
shared_buffers = $SHARED_BUFFERS
log_min_messages = log
log_checkpoints = off
notify.database = 'bench'
notify.smtp_url = 'smtp://127.0.0.1:$SINK_PORT'
notify.from_address = 'notify@example.com'
notify.from_name = 'Example Shop'
CONF
export PGDATABASE=bench
q() { "${PSQL[@]}" -Atc "$1"; }
# The message: a registered template (bench/sql/shipped_template.sql) and
# a payload of variables (each row its own, see bench_load).
"${PSQL[@]}" -c "CREATE EXTENSION notify" -f "$NOTIFY_ROOT/bench/sql/shipped_template.sql" >/dev/null
"${PSQL[@]}" <<'SQL' >/dev/null
-- What notify_enqueue inserts, without its checks (loading is not measured);
-- each row its own payload values.
CREATE PROCEDURE bench_load(n integer) LANGUAGE sql AS $$
	INSERT INTO notify_outbox (template_key, template_version, locale, channel, category, recipient,
		payload, priority, max_attempts, send_at, next_attempt_at)
	SELECT 'bench.shipped', v.template_version, v.locale, 'email', 'transactional', 'user' || g || '@example.com',
		jsonb_build_object('name', 'Customer ' || g, 'order_id', 'A-' || g, 'carrier', 'DHL Express',
			'tracking', 'JD' || (14600003828 + g), 'eta', 'Thursday'),
		10, 5, now() + interval '1 day', now() + interval '1 day'
	FROM generate_series(1, n) g,
		notify_template_resolve('bench.shipped', 'en', '{"name": "", "order_id": "", "carrier": "", "tracking": "", "eta": ""}') v
$$;
SQL
echo "server: $(q 'SELECT version()')"
echo "settings: $(q "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings
	WHERE name IN ('shared_buffers', 'work_mem', 'notify.batch_size', 'notify.max_connections')")"

cat >"$WORK/feed.py" <<'PY'
"""Release the pending rows and wait until the worker counted n more sent."""
import sys, time, psycopg2
n, timeout = int(sys.argv[1]), float(sys.argv[2])
conn = psycopg2.connect("")
conn.autocommit = True
cur = conn.cursor()
cur.execute("SELECT sent FROM notify_worker_status")
base = cur.fetchone()[0]
cur.execute("UPDATE notify_outbox SET next_attempt_at = now() WHERE status = 'pending'")
t0 = time.monotonic()
while True:
    cur.execute("SELECT sent FROM notify_worker_status")
    if cur.fetchone()[0] - base >= n:
        break
    if time.monotonic() - t0 > timeout:
        sys.exit("timeout")
    time.sleep(0.05)
print("%.1f" % (time.monotonic() - t0))
PY

RESULTS=$WORK/results.tsv
: >"$RESULTS"
kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

# Memory of the worker now: VmRSS VmHWM RssAnon RssShmem (kB) and its
# memory contexts' grand total (bytes).
measure() {
	local pid=$1 lines total i
	lines=$(wc -l <"$WORK/server.log")
	q "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null
	total=-
	for i in $(seq 1 50); do
		total=$(tail -n +"$((lines + 1))" "$WORK/server.log" | sed -n 's/.*Grand total: \([0-9]*\) bytes.*/\1/p' | head -1)
		[ -n "$total" ] && break
		sleep 0.1
	done
	echo "$(kb "$pid" VmRSS) $(kb "$pid" VmHWM) $(kb "$pid" RssAnon) $(kb "$pid" RssShmem) ${total:--}"
}

for phase in "${PHASES_A[@]}"; do
	say "phase $phase: a fresh worker, messages in steps up to ${STEPS_A[-1]}"
	q "ALTER SYSTEM SET notify.sandbox = $([ "$phase" = sandbox ] && echo on || echo off)" >/dev/null
	as_pg pg_ctl restart -D "$DATA" -l "$WORK/server.log" -w -m fast >/dev/null
	q "TRUNCATE notify_outbox, notify_attempts" >/dev/null
	q "CHECKPOINT" >/dev/null
	pid=
	for i in $(seq 1 100); do
		pid=$(q "SELECT pid FROM notify_worker_status")
		[ -n "$pid" ] && break
		sleep 0.1
	done
	read -r rss hwm anon shm ctx <<<"$(measure "$pid")"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" 0 "$rss" "$hwm" "$anon" "$shm" "$ctx" - >>"$RESULTS"
	printf '  %-8s %7s messages  VmRSS %6s kB  VmHWM %6s kB  RssAnon %6s kB  RssShmem %6s kB  contexts %s bytes\n' \
		"$phase" 0 "$rss" "$hwm" "$anon" "$shm" "$ctx"
	done_n=0
	for step in "${STEPS_A[@]}"; do
		n=$((step - done_n))
		# Sent rows go, so the table stays the size of one step (the worker's
		# memory, not the table, is under test).
		q "DELETE FROM notify_outbox WHERE status = 'sent'" >/dev/null
		q "CALL bench_load($n)" >/dev/null
		q "VACUUM ANALYZE notify_outbox" >/dev/null
		secs=$("$PYTHON" "$WORK/feed.py" "$n" "$RUN_TIMEOUT")
		done_n=$step
		[ "$(q "SELECT pid FROM notify_worker_status")" = "$pid" ] || { echo "the worker restarted" >&2; exit 1; }
		read -r rss hwm anon shm ctx <<<"$(measure "$pid")"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$step" "$rss" "$hwm" "$anon" "$shm" "$ctx" "$secs" >>"$RESULTS"
		printf '  %-8s %7s messages  VmRSS %6s kB  VmHWM %6s kB  RssAnon %6s kB  RssShmem %6s kB  contexts %s bytes  (%s s for %s)\n' \
			"$phase" "$step" "$rss" "$hwm" "$anon" "$shm" "$ctx" "$secs" "$n"
	done
	failed=$(q "SELECT count(*) FROM notify_outbox WHERE status NOT IN ('sent', 'pending')")
	[ "$failed" = 0 ] || echo "WARNING: $failed rows neither sent nor pending" >&2
done

if grep -qE 'PANIC|FATAL|ERROR' "$WORK/server.log"; then
	say "server log errors (first 20)"
	grep -E 'PANIC|FATAL|ERROR' "$WORK/server.log" | head -20
fi

# ---- summary ----
say "results"
first=${STEPS_A[0]}
last=${STEPS_A[-1]}
echo
echo "Worker memory in MB (kB / 1024) after N messages, fresh worker per phase; contexts = the worker's"
echo "PostgreSQL memory contexts (pg_log_backend_memory_contexts grand total)."
echo
echo "| phase | messages | VmRSS | VmHWM | RssAnon (private) | RssShmem (shared buffers touched) | contexts |"
echo "|---|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '{ printf "| %s | %s | %.1f | %.1f | %.1f | %.1f | %s |\n", $1, $2, $3 / 1024, $4 / 1024, $5 / 1024, $6 / 1024,
	($7 == "-" ? "-" : sprintf("%.2f", $7 / 1048576)) }' "$RESULTS"
echo
echo "Growth from $first to $last messages (target: VmRSS within 10 MB):"
echo
echo "| phase | VmRSS | VmHWM | RssAnon | RssShmem | contexts |"
echo "|---|---:|---:|---:|---:|---:|"
for phase in "${PHASES_A[@]}"; do
	awk -F'\t' -v p="$phase" -v a="$first" -v b="$last" '$1 == p && $2 == a { for (i = 3; i <= 7; i++) x[i] = $i }
		$1 == p && $2 == b { for (i = 3; i <= 7; i++) y[i] = $i }
		END { printf "| %s | %+.1f MB | %+.1f MB | %+.1f MB | %+.1f MB | %s |\n", p, (y[3] - x[3]) / 1024, (y[4] - x[4]) / 1024,
			(y[5] - x[5]) / 1024, (y[6] - x[6]) / 1024,
			(x[7] == "-" || y[7] == "-") ? "-" : sprintf("%+.2f MB", (y[7] - x[7]) / 1048576) }' "$RESULTS"
done

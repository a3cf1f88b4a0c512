#!/usr/bin/env bash
# Low rates: what CPU does a message cost the delivery workers when
# messages arrive one commit at a time, and what does a second worker
# (notify.workers = 2) add to that?
#
# One scratch cluster, one receiver (test/servers/http_server.py on
# 127.0.0.1, answering 200 after LATENCY_MS), one webhook channel
# "trickle" (max_connections CONNECTIONS).  Each round runs the same
# trickle once per value of WORKERS_LIST (the server restarted in between, in a rotated order): RATE
# single-message transactions a second for DURATION seconds, from one
# client.  For each run: the CPU the workers used per message (their
# /proc/<pid>/schedstat run time, from the first enqueue until the last
# message is recorded sent, plus one second), and the latency of the
# messages (sent_at - created_at: commit to the server's answer, as
# notify_delivery_latency counts it), p50 and p99.  Before the rounds the
# outbox gets HISTORY delivered rows (of a paused channel, set to sent and
# analyzed), as a database that has been sending for a while has: the
# planner's choices for the worker's statements depend on it.  Ratios against the
# first value of WORKERS_LIST are computed within each round; the table
# reports medians over ROUNDS rounds.
#
# Usage: bench/low_rate.sh   (as root; about 30 s per run)
# Environment: ROUNDS (3), RATE (50), DURATION (10), WORKERS_LIST ("1 2"),
#   HISTORY (200000), LATENCY_MS (0: the receiver answers after that
#   long), CONNECTIONS (the channel's max_connections, 4), NOTIFY_REV
#   (build this commit instead of the working tree).
source "$(dirname "$0")/../scripts/common.sh"

ROUNDS=${ROUNDS:-3}
RATE=${RATE:-50}
DURATION=${DURATION:-10}
WORKERS_LIST=${WORKERS_LIST:-"1 2"}
HISTORY=${HISTORY:-200000}
LATENCY_MS=${LATENCY_MS:-0}
CONNECTIONS=${CONNECTIONS:-4}

install_packages python3-psycopg2
WORK=$(scratch_dir /tmp/notify-bench-low-rate)
PIDS=()
set_as_user "$WORK"
bench_traps

private_install "$WORK"

start_http_server hook --latency-ms "$LATENCY_MS" --no-log-bodies --log "$WORK/hook.jsonl"
URL="http://127.0.0.1:$hook_PORT/hook"

PORT=$(free_port)
bench_cluster "$PORT" <<CONF
# bench/low_rate.sh: default durability settings; notify.workers is set
# with ALTER SYSTEM for each run.
log_min_messages = warning
notify.database = 'postgres'
CONF
export PGDATABASE=postgres
"${PSQL[@]}" <<SQL
CREATE EXTENSION notify;
SELECT notify_channel_put('trickle', 'webhook', '{"allow_private_destinations": true, "max_connections": $CONNECTIONS}');
SQL
if [ "$HISTORY" -gt 0 ]; then
	say "loading $HISTORY delivered notifications"
	"${PSQL[@]}" <<SQL >/dev/null
SELECT notify_channel_put('history', 'webhook', '{"allow_private_destinations": true}');
SELECT notify_channel_pause('history');
SELECT count(notify_enqueue('order.shipped', '$URL', '{"order": 1}', channel => 'history'))
FROM generate_series(1, $HISTORY);
UPDATE notify_outbox SET status = 'sent', attempts = 1, sent_at = now() WHERE channel = 'history';
VACUUM ANALYZE notify_outbox;
SQL
fi
say "$ROUNDS rounds of: $RATE webhooks a second for $DURATION s, one per transaction, to a receiver answering after $LATENCY_MS ms over $CONNECTIONS connections, with notify.workers = $WORKERS_LIST"

# One run with notify.workers = $1: prints "cpu_ms p50_ms p99_ms".
cat >"$WORK/trickle.py" <<'PY'
import sys, time, psycopg2
from sent import wait_sent, latencies, quantile  # bench/sent.py
url, rate, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
conn = psycopg2.connect("")
conn.autocommit = True
cur = conn.cursor()
cur.execute("SELECT array_agg(pid) FROM notify_worker_status() WHERE pid IS NOT NULL")
pids = cur.fetchone()[0]
def cpu():
    return sum(int(open("/proc/%d/schedstat" % p).read().split()[0]) for p in pids) / 1e6
time.sleep(2)  # let the workers settle after their start
n = int(rate * duration)
c0 = cpu()
t0 = time.time()
ids = []
for i in range(n):
    cur.execute("SELECT notify_enqueue('order.shipped', %s, '{\"order\": 1}', channel => 'trickle')", (url,))
    ids.append(cur.fetchone()[0])
    d = t0 + (i + 1) / rate - time.time()
    if d > 0:
        time.sleep(d)
wait_sent(cur, ids, 120)
time.sleep(1)
c1 = cpu()
lat = latencies(cur, ids)
cur.execute("DELETE FROM notify_outbox WHERE id = ANY(%s)", (ids,))
cur.execute("DELETE FROM notify_attempts WHERE outbox_id = ANY(%s)", (ids,))
print("%.3f %.2f %.2f" % ((c1 - c0) / n, quantile(lat, 0.5), quantile(lat, 0.99)))
PY

: >"$WORK/results"
set -- $WORKERS_LIST
for r in $(seq 1 "$ROUNDS"); do
	for k in $(seq 0 $(($# - 1))); do
		# rotate the order from round to round
		w=$(echo $WORKERS_LIST | tr ' ' '\n' | sed -n "$(( (k + r - 1) % $# + 1 ))p")
		"${PSQL[@]}" -c "ALTER SYSTEM SET notify.workers = $w"
		as_pg pg_ctl restart -D "$DATA" -l "$WORK/server.log" -w >/dev/null
		POSTMASTER_PID=$(head -1 "$DATA/postmaster.pid")
		for i in $(seq 1 100); do
			[ "$("${PSQL[@]}" -Atc 'SELECT count(pid) FROM notify_worker_status()')" = "$w" ] && break
			sleep 0.1
		done
		out=$(PYTHONPATH="$NOTIFY_ROOT/bench" "$PYTHON" "$WORK/trickle.py" "$URL" "$RATE" "$DURATION")
		read -r cpu p50 p99 <<<"$out"
		printf '  round %d  workers %d  worker CPU %6.3f ms/message  latency p50 %6.2f ms  p99 %6.2f ms\n' \
			"$r" "$w" "$cpu" "$p50" "$p99"
		echo "$r $w $cpu $p50 $p99" >>"$WORK/results"
	done
done

say "results"
"$PYTHON" - "$WORK/results" $WORKERS_LIST <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
order = [int(w) for w in sys.argv[2:]]
res = {}
for r, w, cpu, p50, p99 in rows:
    res.setdefault(int(w), {})[int(r)] = (float(cpu), float(p50), float(p99))
med = statistics.median
base = order[0]
print("| notify.workers | worker CPU ms / message | ÷ %d worker(s) | latency p50 ms | p99 ms |" % base)
print("|---:|---:|---:|---:|---:|")
for w in order:
    rs = res[w]
    ratio = med([rs[r][0] / res[base][r][0] for r in rs])
    print("| %d | %.3f | %.2f | %.2f | %.2f |" % (w, med([v[0] for v in rs.values()]), ratio,
                                            med([v[1] for v in rs.values()]), med([v[2] for v in rs.values()])))
PY

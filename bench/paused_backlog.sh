#!/usr/bin/env bash
# Paused backlog: does a paused channel holding a large backlog slow the
# delivery of the other channels?
#
# One scratch cluster, one receiver (test/servers/http_server.py on
# 127.0.0.1, answering 200 at once), two webhook channels: "live" and
# "parked" (paused).  Each round measures the same trickle twice:
#
#   without   TRICKLE webhooks to "live", one per transaction every
#             INTERVAL_MS, while "parked" holds nothing;
#   with      the same trickle while "parked" holds BACKLOG pending rows
#             (enqueued in one statement, then VACUUM ANALYZE).
#
# For each: the latency of the trickle's messages (sent_at - created_at:
# commit to the server's answer, as notify_delivery_latency counts it),
# p50 / p99 / max, the CPU the workers used per trickled message while it
# ran, and the slowest enqueue call (its autocommit included: created_at
# is the transaction's start, so a slow commit counts in the latency).
# The ratios with ÷ without are computed within each round; the table
# reports medians over ROUNDS rounds.  The backlog is deleted (and
# vacuumed) after each round.
#
# Usage: bench/paused_backlog.sh   (as root; ~1 minute per round)
# Environment: ROUNDS (3), BACKLOG (200000), TRICKLE (200), INTERVAL_MS
#   (20), WORKERS (notify.workers, 1), NOTIFY_REV (build this commit
#   instead of the working tree).
source "$(dirname "$0")/../scripts/common.sh"

ROUNDS=${ROUNDS:-3}
BACKLOG=${BACKLOG:-200000}
TRICKLE=${TRICKLE:-200}
INTERVAL_MS=${INTERVAL_MS:-20}
WORKERS=${WORKERS:-1}

install_packages python3-psycopg2
WORK=$(scratch_dir /tmp/notify-bench-paused)
PIDS=()
set_as_user "$WORK"
bench_traps

private_install "$WORK"

# ---- the receiver ----
start_http_server http --no-log-bodies --log "$WORK/http.jsonl"
URL="http://127.0.0.1:$http_PORT/hook"

# ---- the cluster ----
PORT=$(free_port)
bench_cluster "$PORT" <<CONF
# bench/paused_backlog.sh
log_min_messages = warning
notify.database = 'postgres'
notify.workers = $WORKERS
CONF
export PGDATABASE=postgres
"${PSQL[@]}" <<SQL
CREATE EXTENSION notify;
SELECT notify_channel_put('live', 'webhook', '{"allow_private_destinations": true}');
SELECT notify_channel_put('parked', 'webhook', '{"allow_private_destinations": true}');
SELECT notify_channel_pause('parked');
SQL
say "notify.workers = $WORKERS; $ROUNDS rounds of: $TRICKLE webhooks every $INTERVAL_MS ms to 'live', without and with $BACKLOG pending rows of the paused 'parked'"

# ---- the rounds ----
PYTHONPATH="$NOTIFY_ROOT/bench" "$PYTHON" - "$URL" "$ROUNDS" "$BACKLOG" "$TRICKLE" "$INTERVAL_MS" <<'PY'
import os, sys, time, statistics, psycopg2
from sent import wait_sent, latencies, quantile  # bench/sent.py
url, rounds, backlog, trickle, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
hz = os.sysconf("SC_CLK_TCK")
conn = psycopg2.connect("")
conn.autocommit = True
cur = conn.cursor()

def workers_cpu():
    cur.execute("SELECT array_agg(pid) FROM notify_worker_status()")
    t = 0.0
    for pid in cur.fetchone()[0]:
        with open("/proc/%d/stat" % pid) as f:
            x = f.read().rsplit(")", 1)[1].split()
        t += (int(x[11]) + int(x[12])) / hz
    return t

def run_trickle():
    time.sleep(1.5)  # let the worker settle after the setup's commits
    c0 = workers_cpu()
    ids = []
    enqueue_ms = []
    for i in range(trickle):
        t = time.monotonic()
        cur.execute("SELECT notify_enqueue('order.shipped', %s, '{\"order\": 1}', channel => 'live')", (url,))
        ids.append(cur.fetchone()[0])
        enqueue_ms.append((time.monotonic() - t) * 1000.0)
        time.sleep(interval / 1000.0)
    wait_sent(cur, ids, 300)
    c1 = workers_cpu()
    lat = latencies(cur, ids)
    cur.execute("DELETE FROM notify_outbox WHERE id = ANY(%s)", (ids,))
    return {"p50": quantile(lat, 0.5), "p99": quantile(lat, 0.99), "max": lat[-1],
            "cpu_ms": (c1 - c0) * 1000.0 / len(ids),
            "enqueue_max": max(enqueue_ms)}

rows = []
for r in range(1, rounds + 1):
    without = run_trickle()
    t0 = time.time()
    cur.execute("SELECT count(notify_enqueue('order.shipped', %s, '{}', channel => 'parked')) FROM generate_series(1, %s)", (url, backlog))
    cur.execute("VACUUM ANALYZE notify_outbox")
    setup = time.time() - t0
    with_ = run_trickle()
    cur.execute("DELETE FROM notify_outbox WHERE channel = 'parked'")
    cur.execute("VACUUM notify_outbox")
    rows.append((without, with_))
    for name, m in (("without", without), ("with", with_)):
        print("  round %d  %-7s  latency p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  worker CPU %6.2f ms/message"
              "  slowest enqueue (its commit included) %6.1f ms"
              % (r, name, m["p50"], m["p99"], m["max"], m["cpu_ms"], m["enqueue_max"]), flush=True)
    print("           (backlog of %d enqueued and analyzed in %.1f s)" % (backlog, setup), flush=True)

med = lambda xs: statistics.median(xs)
print()
print("| paused backlog | latency p50 ms | p99 ms | max ms | worker CPU ms / message |")
print("|---|---:|---:|---:|---:|")
for i, name in enumerate(("none", "%d rows" % backlog)):
    print("| %s | %.1f | %.1f | %.1f | %.2f |" % (name, med([x[i]["p50"] for x in rows]), med([x[i]["p99"] for x in rows]),
                                              med([x[i]["max"] for x in rows]), med([x[i]["cpu_ms"] for x in rows])))
print()
print("with ÷ without, median over rounds: latency p50 %.2f, max %.2f, worker CPU per message %.2f"
      % (med([x[1]["p50"] / x[0]["p50"] for x in rows]), med([x[1]["max"] / x[0]["max"] for x in rows]),
         med([x[1]["cpu_ms"] / max(x[0]["cpu_ms"], 0.001) for x in rows])))
PY

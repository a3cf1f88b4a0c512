#!/usr/bin/env bash
# Webhook throughput: how fast does the worker deliver signed webhooks, next
# to a plain libcurl multi program sending the same requests to the same
# server in the same run?
#
# Two servers on 127.0.0.1, two scenarios:
#
#   fast     nginx-light (Debian), our own config: worker_processes 1,
#            access_log off, keepalive_requests 1000000, "return 204" for
#            every request.  MESSAGES webhooks over CONNECTIONS (16)
#            connections.
#   latency  test/servers/http_server.py --latency-ms LATENCY_MS (50): a
#            thread per connection, each request answered 200 after 50 ms.
#            LAT_MESSAGES webhooks over LAT_CONNECTIONS (64) connections;
#            the ceiling is LAT_CONNECTIONS / LATENCY_MS = 1280 msg/s.
#
# Contenders in each scenario:
#
#   baseline    bench/webhook_baseline.c, compiled here with cc -O2 -lcurl
#               -lcrypto: one libcurl multi handle, CURLMOPT_MAX_TOTAL_
#               CONNECTIONS = the scenario's connections, keep-alive, easy
#               handles reused, 2 x connections requests queued.  Each
#               request carries what notify's carries: the same body, a
#               webhook-id, a webhook-timestamp and a webhook-signature
#               HMAC-SHA256'd per request with the same secret (SIGN=1),
#               Content-Type, Accept, User-Agent, no Expect.
#   notify_bNNN the webhook channel "bench-hooks" (settings
#               {"allow_private_destinations": true, "max_connections": C},
#               a secret from notify_generate_webhook_secret() when SIGN=1)
#               is paused; N rows are enqueued with notify_enqueue(
#               'order.shipped', '<url>', '{"order": 1}', channel =>
#               'bench-hooks'); VACUUM ANALYZE, CHECKPOINT; then the clock
#               runs from notify_channel_resume('bench-hooks') until
#               notify_worker_status counts N more sent, i.e. until the last
#               outcome is committed in the outbox.  notify.batch_size = NNN.
#
# Before measuring, a check that both send alike: 5 requests of each go to
# a third server (http_server.py --verify-webhook-secret): same header
# names, same body length, every signature valid.
#
# Each round runs every contender of a scenario once, in a rotated order;
# ROUNDS rounds.  Rates are medians; ratios are medians of the ratios within
# each round (the machine is shared: neighbours' load moves whole rounds).
# The cluster runs with fsync, synchronous_commit and full_page_writes at
# their defaults (on), PostgreSQL on a Unix socket only; everything started
# here is stopped by PID at exit.
#
# Usage: bench/webhooks.sh       (as root: installs nginx-light and the
#                                 build dependencies if missing, with no
#                                 service started; ~6 minutes on a 2-vCPU
#                                 VM at load 4-6, up to 20 under heavy load)
# Environment: ROUNDS (3), MESSAGES (20000), CONNECTIONS (16), BATCH_SIZES
#   ("100 500"), LAT_MESSAGES (5000), LAT_CONNECTIONS (64), LATENCY_MS (50),
#   LAT_BATCH_SIZES ("128 500"), SCENARIOS ("fast latency"), SIGN (1: sign
#   in notify and in the baseline; 0: neither), WORKERS (notify.workers,
#   1; with more, the channel's connections are split among them and the
#   worker CPU columns are their sum), PERF (1: one extra notify
#   run per scenario under perf record, top symbols printed), PERF_OUT (a
#   directory to keep the perf.data files in), NOTIFY_REV
#   (build this commit instead of the working tree).
source "$(dirname "$0")/../scripts/common.sh"

ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-20000}
CONNECTIONS=${CONNECTIONS:-16}
BATCH_SIZES=${BATCH_SIZES:-"100 500"}
LAT_MESSAGES=${LAT_MESSAGES:-5000}
LAT_CONNECTIONS=${LAT_CONNECTIONS:-64}
LATENCY_MS=${LATENCY_MS:-50}
LAT_BATCH_SIZES=${LAT_BATCH_SIZES:-"128 500"}
SCENARIOS=${SCENARIOS:-"fast latency"}
SIGN=${SIGN:-1}
WORKERS=${WORKERS:-1}
PERF=${PERF:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
BODY='{"order": 1}'

# ---- packages (install_packages starts no system nginx: we only use
# the binary, on a private port) ----
install_packages nginx-light libssl-dev python3-psycopg2

WORK=$(scratch_dir /tmp/notify-bench-webhooks)
PIDS=()

set_as_user "$WORK"

before_cleanup() {
	[ -n "${PERF_PID:-}" ] && stop_pid "$PERF_PID" && stop_pid "${PERF_STAT_PID:-}"
	return 0
}
bench_traps

# ---- notify built into a private copy of the PostgreSQL install ----
# (scripts/common.sh: nobody else's build or install can change what is
# measured, and ours changes nobody's)
private_install "$WORK"

say "compiling bench/webhook_baseline.c"
cc -O2 -Wall -Wextra -o "$WORK/webhook_baseline" "$NOTIFY_ROOT/bench/webhook_baseline.c" -lcurl -lcrypto
echo "libcurl: $(curl-config --version 2>/dev/null || echo '?'), $(cc --version | head -1)"


# CPU seconds (user + system) of the processes given.
cpu_of() {
	local hz pid total=0 t
	hz=$(getconf CLK_TCK)
	for pid in "$@"; do
		t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
		total=$((total + t))
	done
	awk -v t="$total" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'
}

# ---- the servers ----
mkdir -p "$WORK/nginx/logs"
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$WORK/nginx" "$WORK"
NGINX_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<CONF
# bench/webhooks.sh: a receiver that answers 204 to everything.
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 1000000;
	keepalive_timeout 300s;
	client_body_temp_path $WORK/nginx/body;
	proxy_temp_path $WORK/nginx/proxy;
	fastcgi_temp_path $WORK/nginx/fastcgi;
	uwsgi_temp_path $WORK/nginx/uwsgi;
	scgi_temp_path $WORK/nginx/scgi;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		location / { return 204; }
	}
}
CONF
say "nginx $(nginx -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$NGINX_PORT"
"${AS_USER[@]}" /usr/sbin/nginx -e "$WORK/nginx/logs/error.log" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for i in $(seq 1 50); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d "$BODY" "http://127.0.0.1:$NGINX_PORT/webhook" 2>/dev/null)" = 204 ] && break
	[ "$i" = 50 ] && { echo "nginx did not answer" >&2; cat "$WORK/nginx/logs/error.log" >&2; exit 1; }
	sleep 0.1
done
nginx_pids() { echo "$NGINX_PID" $(ps -o pid= --ppid "$NGINX_PID" 2>/dev/null); }

touch "$WORK/slow.jsonl" "$WORK/check.jsonl"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK/slow.jsonl" "$WORK/check.jsonl"
start_http_server slow --latency-ms "$LATENCY_MS" --no-log-bodies --log "$WORK/slow.jsonl"
say "http_server.py --latency-ms $LATENCY_MS on 127.0.0.1:$slow_PORT (logging requests without bodies)"

# ---- the cluster ----
PGPORT_=$(free_port)
bench_cluster "$PGPORT_" bench <<CONF
# bench/webhooks.sh: fsync, synchronous_commit, full_page_writes and
# memory settings at their defaults.
max_connections = 50
log_min_messages = warning
track_wal_io_timing = on
notify.database = 'bench'
notify.from_address = 'notify@example.com'
notify.workers = $WORKERS
CONF
export PGDATABASE=bench
q() { "${PSQL[@]}" -Atc "$1"; }
q "CREATE EXTENSION notify" >/dev/null
echo "server: $(q 'SELECT version()')"
echo "settings: $(q "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings
	WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers', 'notify.poll_interval', 'notify.workers')")"
if [ "$SIGN" = 1 ]; then
	SECRET=$(q "SELECT notify_generate_webhook_secret()")
else
	SECRET=-
fi

# Set the channel: $1 = max_connections.
put_channel() {
	if [ "$SECRET" = - ]; then
		q "SELECT notify_channel_put('bench-hooks', 'webhook',
			'{\"allow_private_destinations\": true, \"max_connections\": $1}')" >/dev/null
	else
		q "SELECT notify_channel_put('bench-hooks', 'webhook',
			'{\"allow_private_destinations\": true, \"max_connections\": $1}', '$SECRET')" >/dev/null
	fi
}

# ---- helper: resume the channel, wait until the worker has recorded n more sent ----
cp "$NOTIFY_ROOT/bench/procstat.py" "$WORK/"
cat >"$WORK/resume_wait.py" <<'PY'
"""Resume the channel, then wait until the worker has recorded n more sent.
Prints: seconds from the resume to the last outcome committed; unix time of
the resume; CPU seconds of all the cluster's processes, of the worker, and
of the server processes given; seconds the worker waited for a CPU while
runnable (schedstat); claims (batches) made; WAL syncs and the ms spent in
them, and WAL bytes (pg_stat_wal: only the worker writes meanwhile)."""
import sys, time, psycopg2
from procstat import stat, cluster_cpu  # bench/procstat.py
n, timeout, postmaster = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
servers = [int(p) for p in sys.argv[4].split(",") if p]
conn = psycopg2.connect("")
conn.autocommit = True
cur = conn.cursor()
# every worker (notify.workers): CPU and counters are their sums
cur.execute("SELECT array_agg(pid ORDER BY worker), sum(sent), sum(batches) FROM notify_worker_status")
pids, base, batches0 = cur.fetchone()
def server_cpu():
    return sum((stat(p) or (0, 0))[1] for p in servers)
def runq():
    total = 0
    for pid in pids:
        with open("/proc/%d/schedstat" % pid) as f:
            total += int(f.read().split()[1]) / 1e9
    return total
def workers_cpu():
    return sum(stat(pid)[1] for pid in pids)
def wal():
    cur.execute("SELECT wal_sync, wal_sync_time, wal_bytes FROM pg_stat_wal")
    return cur.fetchone()
l0 = wal()
c0, w0, s0, q0 = cluster_cpu(postmaster), workers_cpu(), server_cpu(), runq()
wall0 = time.time()
t0 = time.monotonic()
cur.execute("SELECT notify_channel_resume('bench-hooks')")
while True:
    cur.execute("SELECT sum(sent), sum(failed + retried), sum(batches) FROM notify_worker_status")
    sent, bad, batches = cur.fetchone()
    sent -= base
    if sent >= n:
        break
    if time.monotonic() - t0 > timeout:
        print("timeout: %d of %d sent" % (sent, n), file=sys.stderr)
        sys.exit(1)
    time.sleep(0.01)
t1 = time.monotonic()
c1, w1, s1, q1 = cluster_cpu(postmaster), workers_cpu(), server_cpu(), runq()
time.sleep(2.2)  # the worker flushes its WAL statistics at most once a second
l1 = wal()
print("%.4f %.6f %.2f %.2f %.2f %.2f %d %d %.0f %d" % (t1 - t0, wall0, c1 - c0, w1 - w0, s1 - s0, q1 - q0,
      batches - batches0, l1[0] - l0[0], l1[1] - l0[1], l1[2] - l0[2]))
PY

# Concurrency seen by the latency server over the log lines from $1 on:
# connections used, mean requests in service, share of time with all
# $2 connections busy.
cat >"$WORK/slow_stats.py" <<'PY'
import json, sys
path, skip, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(l) for i, l in enumerate(open(path)) if i >= skip]
if not rows:
    print("- - -"); sys.exit(0)
ev = sorted([(r["time"], 1) for r in rows] + [(r["done"], -1) for r in rows])
span = ev[-1][0] - ev[0][0]
busy = area = 0.0
c = 0
for (t, d), (t2, _) in zip(ev, ev[1:] + [ev[-1]]):
    c += d
    area += c * (t2 - t)
    if c >= conns:
        busy += t2 - t
# turnaround: from a response being ready to the next request on the same
# connection (the client's time to reuse a free connection)
last, gaps = {}, []
for r in sorted(rows, key=lambda r: r["time"]):
    if r["conn"] in last:
        gaps.append(1000 * (r["time"] - last[r["conn"]]))
    last[r["conn"]] = r["done"]
gaps.sort()
pct = lambda p: gaps[min(len(gaps) - 1, int(p * len(gaps)))] if gaps else 0
print("%d %.1f %.0f %.1f %.1f %.1f" % (len({r["conn"] for r in rows}), area / span if span else 0,
      100 * busy / span if span else 0, sum(gaps) / len(gaps) if gaps else 0, pct(0.5), pct(0.9)))
PY

# ---- one run of each contender ----
RESULTS=$WORK/results.tsv
: >"$RESULTS"

# Scenario parameters: URL, messages, connections, server pids.
scenario() {
	case $1 in
		fast)
			S_URL="http://127.0.0.1:$NGINX_PORT/webhook"
			S_N=$MESSAGES S_CONNS=$CONNECTIONS
			S_SERVERS=$(nginx_pids | tr ' ' ',')
			;;
		latency)
			S_URL="http://127.0.0.1:$slow_PORT/webhook"
			S_N=$LAT_MESSAGES S_CONNS=$LAT_CONNECTIONS
			S_SERVERS=$slow_PID
			;;
	esac
}

NEXT_ID=1000000000
run_baseline() {
	local s0 out secs ok failed cpu s1 lines0
	lines0=$(wc -l <"$WORK/slow.jsonl")
	s0=$(cpu_of ${S_SERVERS//,/ })
	out=$("$WORK/webhook_baseline" "$S_URL" "$S_N" "$S_CONNS" "$SECRET" "$BODY" "$NEXT_ID") ||
		{ echo "baseline failed: $out" >&2; exit 1; }
	NEXT_ID=$((NEXT_ID + S_N))
	s1=$(cpu_of ${S_SERVERS//,/ })
	read -r secs ok failed cpu runq <<<"$out"
	[ "$ok" = "$S_N" ] || { echo "baseline: $ok of $S_N answered 2xx" >&2; exit 1; }
	DIAG="    sender CPU $cpu s, waited $runq s for a CPU; server CPU $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }') s"
	[ "$SCEN" = latency ] && DIAG="$DIAG; $(slow_diag "$lines0")"
	echo "$secs $cpu - $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }')"
}

slow_diag() {
	local c mean full gmean g50 g90
	sleep 0.2
	read -r c mean full gmean g50 g90 < <("$PYTHON" "$WORK/slow_stats.py" "$WORK/slow.jsonl" "$1" "$S_CONNS")
	echo "server saw $c connections, $mean requests in service on average, all $S_CONNS busy ${full}% of the time;
    a connection waited for its next request ${gmean} ms on average after a response (median $g50, p90 $g90)"
}

load_outbox() {
	q "SELECT notify_channel_pause('bench-hooks')" >/dev/null
	q "TRUNCATE notify_outbox, notify_attempts" >/dev/null
	q "SELECT count(notify_enqueue('order.shipped', '$S_URL', '$BODY', channel => 'bench-hooks'))
		FROM generate_series(1, $1)" >/dev/null
	q "VACUUM ANALYZE notify_outbox" >/dev/null
	q "CHECKPOINT" >/dev/null
}

set_batch() {
	q "ALTER SYSTEM SET notify.batch_size = $1" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
}

run_notify() {
	local batch=$1 n=${2:-$S_N} out secs t0 ccpu wcpu scpu runq claims wsync wsyncms walb sent lines0 lastsent
	set_batch "$batch"
	load_outbox "$n"
	sleep 0.5
	lines0=$(wc -l <"$WORK/slow.jsonl")
	out=$("$PYTHON" "$WORK/resume_wait.py" "$n" "$RUN_TIMEOUT" "$POSTMASTER_PID" "$S_SERVERS") || exit 1
	read -r secs t0 ccpu wcpu scpu runq claims wsync wsyncms walb <<<"$out"
	sent=$(q "SELECT count(*) FROM notify_outbox WHERE status = 'sent'")
	[ "$sent" = "$n" ] || echo "WARNING: notify: $sent of $n rows sent" >&2
	lastsent=$(q "SELECT round((extract(epoch FROM max(sent_at)) - $t0)::numeric, 3) FROM notify_outbox")
	DIAG=$(q "SELECT format('    %s claims, %s attempts not sent, last sent_at %s s after the resume; cluster CPU %s s, of which worker %s s; worker waited %s s for a CPU; %s WAL syncs taking %s ms, %s WAL bytes/message; server CPU %s s',
		$claims, count(*) FILTER (WHERE outcome <> 'sent'), '$lastsent', '$ccpu', '$wcpu', '$runq', $wsync, $wsyncms, $walb / $n, '$scpu')
		FROM notify_attempts")
	[ "$SCEN" = latency ] && DIAG="$DIAG; $(slow_diag "$lines0")"
	echo "$secs $ccpu $wcpu $scpu"
}

one() {
	local name=$1 round=$2 secs ccpu wcpu scpu rate
	case $name in
		baseline) run_baseline >"$WORK/run.out" ;;
		notify_b*) run_notify "${name#notify_b}" >"$WORK/run.out" ;;
	esac
	read -r secs ccpu wcpu scpu <"$WORK/run.out"
	rate=$(awk -v s="$secs" -v n="$S_N" 'BEGIN { printf "%.1f", n / s }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SCEN" "$name" "$round" "$S_N" "$secs" "$rate" "$ccpu" "$wcpu" "$scpu" >>"$RESULTS"
	printf '  round %s  %-12s %6s msgs in %7.3f s = %7.1f msg/s\n' "$round" "$name" "$S_N" "$secs" "$rate"
	echo "$DIAG"
}

# ---- check: notify and the baseline send alike ----
if [ "$SIGN" = 1 ]; then
	start_http_server check --verify-webhook-secret "$SECRET" --log "$WORK/check.jsonl"
else
	start_http_server check --log "$WORK/check.jsonl"
fi
say "check: 5 requests of each to http_server.py on 127.0.0.1:$check_PORT"
S_URL="http://127.0.0.1:$check_PORT/webhook"
"$WORK/webhook_baseline" "$S_URL/baseline" 5 2 "$SECRET" "$BODY" 1 >/dev/null
put_channel 2
S_N=5 S_SERVERS=
SCEN=check
S_URL="$S_URL/notify"
run_notify 100 5 >/dev/null
"$PYTHON" - "$WORK/check.jsonl" "$SIGN" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["path"].rsplit("/", 1)[1], []).append(r)
for who in ("baseline", "notify"):
    rs = by.get(who, [])
    print("  %-8s %d requests, body %s bytes, headers: %s%s" % (
        who, len(rs), sorted({r["body_length"] for r in rs}),
        " ".join("%s(%d)" % (k, len(v)) for k, v in sorted(rs[0]["headers"].items())) if rs else "-",
        (", signatures valid: %s" % sorted({r.get("signature_valid") for r in rs})) if sys.argv[2] == "1" else ""))
b, n = by.get("baseline", []), by.get("notify", [])
ok = len(b) == 5 and len(n) == 5 and set(b[0]["headers"]) == set(n[0]["headers"]) \
    and {r["body_length"] for r in b} == {r["body_length"] for r in n} \
    and (sys.argv[2] != "1" or all(r.get("signature_valid") for r in b + n))
print("  same header names, same body length%s: %s" % (", all signatures valid" if sys.argv[2] == "1" else "", "yes" if ok else "NO"))
sys.exit(0 if ok else 1)
PY
stop_pid "$check_PID"

# What the lead asks about: SQL (claim, record, planning, index inserts,
# commit and WAL), the wait loop and its wait-set rebuilds, libcurl, signing.
PERF_FUNCS='notify_worker_main|run_transaction|claim_jobs|claim_record|GetCachedPlan|pg_plan_queries|ExecInsertIndexTuples|CommitTransactionCommand|XLogFlush|jsonb_to_recordset|transfer_wait|transfer_collect|WaitEventSetWait|FreeWaitEventSet|CreateWaitEventSet|AddWaitEventToSet|ModifyWaitEvent|curl_multi_socket_action|curl_multi_add_handle|curl_easy_init|curl_easy_cleanup|curl_multi_remove_handle|curl_easy_setopt|start_jobs|http_prepare|notify_webhook_sign|JsonbToCString|fill_content|__send|__libc_recv|recv'
SYSCALL_EVENTS=syscalls:sys_enter_epoll_create1,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_fdatasync,syscalls:sys_enter_close

# ---- the scenarios ----
read -r -a SCEN_A <<<"$SCENARIOS"
for SCEN in "${SCEN_A[@]}"; do
	scenario "$SCEN"
	if [ "$SCEN" = fast ]; then
		read -r -a BATCH_A <<<"$BATCH_SIZES"
		say "scenario fast: $S_N webhooks, nginx returning 204, $S_CONNS connections"
	else
		read -r -a BATCH_A <<<"$LAT_BATCH_SIZES"
		say "scenario latency: $S_N webhooks, http_server.py answering after $LATENCY_MS ms, $S_CONNS connections (ceiling $((S_CONNS * 1000 / LATENCY_MS)) msg/s)"
	fi
	put_channel "$S_CONNS"
	CONTENDERS=(baseline)
	for b in "${BATCH_A[@]}"; do CONTENDERS+=("notify_b$b"); done

	echo "warm-up (not recorded)"
	run_baseline >/dev/null
	run_notify "${BATCH_A[0]}" $((S_N / 4)) >/dev/null

	echo "measuring: ${#CONTENDERS[@]} contenders x $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	nc=${#CONTENDERS[@]}
	for round in $(seq 1 "$ROUNDS"); do
		for i in $(seq 0 $((nc - 1))); do
			one "${CONTENDERS[$(((i + round - 1) % nc))]}" "$round"
		done
	done
	eval "LOAD_END_$SCEN=\"$(cut -d' ' -f1-3 /proc/loadavg)\""

	# ---- where the worker's time goes ----
	if [ "$PERF" = 1 ] && command -v perf >/dev/null && [ "$(id -u)" -eq 0 ]; then
		say "profile ($SCEN): one more notify run (batch_size ${BATCH_A[0]}) under perf record -g on the worker"
		set_batch "${BATCH_A[0]}"
		load_outbox "$S_N"
		WPID=$(q "SELECT pid FROM notify_worker_status WHERE worker = 0")
		perf record -q -F 1999 -g -p "$WPID" -o "$WORK/perf.data" >/dev/null 2>&1 &
		PERF_PID=$!
		perf stat -x, -o "$WORK/perf.stat" -e "$SYSCALL_EVENTS" -p "$WPID" >/dev/null 2>&1 &
		PERF_STAT_PID=$!
		sleep 2  # perf attaches slowly on a loaded machine
		"$PYTHON" "$WORK/resume_wait.py" "$S_N" "$RUN_TIMEOUT" "$POSTMASTER_PID" "$S_SERVERS" |
			awk -v n="$S_N" '{ printf "(under perf: %.1f msg/s, worker CPU %s s of %.2f s)\n", n / $1, $4, $1 }'
		kill -INT "$PERF_PID" "$PERF_STAT_PID" 2>/dev/null || true
		wait "$PERF_PID" 2>/dev/null || true
		wait "$PERF_STAT_PID" 2>/dev/null || true
		PERF_PID=
		echo
		echo "Worker system calls per message (perf stat, the whole run plus ~1.7 s idle):"
		awk -F, -v n="$S_N" '$3 ~ /syscalls/ { sub(/syscalls:sys_enter_/, "", $3); printf "    %-12s %8d  %6.2f / message\n", $3, $1, $1 / n }' "$WORK/perf.stat"
		echo
		echo "Worker CPU by shared object (self time):"
		perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
			grep -E '^ +[0-9]' | head -8 || true
		echo
		echo "Top symbols (self time):"
		perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null |
			grep -E '^ +[0-9]' | sed 's/ *- *- *$//' | head -25 || true
		echo
		echo "Worker time in selected functions, callees included (children time):"
		perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none 2>/dev/null |
			grep -E '^ +[0-9]' | sed 's/ *- *- *$//' | grep -wE "$PERF_FUNCS" || true
		if [ -n "${PERF_OUT:-}" ]; then
			cp "$WORK/perf.data" "$PERF_OUT/webhooks-$SCEN.perf.data"
			echo "(profile kept in $PERF_OUT/webhooks-$SCEN.perf.data)"
		fi
		rm -f "$WORK/perf.data"
	fi
done

if grep -qE 'PANIC|FATAL|ERROR' "$WORK/server.log"; then
	say "server log errors (first 20)"
	grep -E 'PANIC|FATAL|ERROR' "$WORK/server.log" | head -20
fi

# ---- summary ----
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v s="$1" -v v="$2" -v c="$3" '$1 == s && $2 == v && $c != "-" { print $c }' "$RESULTS"; }
range() { col "$1" "$2" 6 | sort -g | awk '{ a[NR] = $1 } END { if (NR) printf "%.0f–%.0f", a[1], a[NR] }'; }
# median over rounds of CPU(b) / CPU(a) per message in the same round
cpuratio() {
	awk -F'\t' -v s="$1" -v a="$2" -v b="$3" '$1 != s { next } $2 == a { ca[$3] = $7 / $4 } $2 == b { cb[$3] = $7 / $4 }
		END { for (r in ca) if (r in cb && ca[r] > 0) printf "%.3f\n", cb[r] / ca[r] }' "$RESULTS" |
		median | awk '{ if ($1 == "-") print "-"; else printf "%.2f", $1 }'
}
# median over rounds of rate(a) / rate(b) in the same round
pratio() {
	awk -F'\t' -v s="$1" -v a="$2" -v b="$3" '$1 != s { next } $2 == a { ra[$3] = $6 } $2 == b { rb[$3] = $6 }
		END { for (r in ra) if (r in rb && rb[r] > 0) printf "%.3f\n", ra[r] / rb[r] }' "$RESULTS" |
		median | awk '{ if ($1 == "-") print "-"; else printf "%.2f", $1 }'
}
per1000() { awk -F'\t' -v s="$1" -v v="$2" -v c="$3" '$1 == s && $2 == v && $c != "-" { printf "%.3f\n", $c * 1000 / $4 }' "$RESULTS" |
	median | awk '{ if ($1 == "-") print "-"; else printf "%.2f", $1 }'; }
fmt0() { awk -v a="$1" 'BEGIN { if (a == "-") print "-"; else printf "%.0f", a }'; }

say "results"
echo
echo "Messages per second, median of $ROUNDS runs (min–max).  Ratio: median over rounds of the ratio within"
echo "the round.  CPU: seconds per 1,000 messages (notify: all the cluster's processes, of which the worker;"
echo "baseline: the program); baseline CPU ÷ sender CPU is the rate ratio a CPU-bound sender would reach"
echo "(median over rounds; it moves much less with the neighbours' load than rates do).  $(nproc) CPUs shared"
echo "with other work.  Signed: $([ "$SIGN" = 1 ] && echo yes || echo no)."
for SCEN in "${SCEN_A[@]}"; do
	scenario "$SCEN"
	if [ "$SCEN" = fast ]; then
		read -r -a BATCH_A <<<"$BATCH_SIZES"
		ceiling=
		echo
		echo "fast: $S_N webhooks to nginx (204), $S_CONNS connections; load average at the end: $LOAD_END_fast"
	else
		read -r -a BATCH_A <<<"$LAT_BATCH_SIZES"
		ceiling=$((S_CONNS * 1000 / LATENCY_MS))
		echo
		echo "latency: $S_N webhooks to http_server.py (+$LATENCY_MS ms), $S_CONNS connections, ceiling $ceiling msg/s; load average at the end: $LOAD_END_latency"
	fi
	echo
	echo "| contender | msg/s | / baseline | / ceiling | sender CPU s / 1000 | of which worker | baseline CPU ÷ sender CPU | server CPU s / 1000 |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for c in baseline "${BATCH_A[@]/#/notify_b}"; do
		m=$(col "$SCEN" "$c" 6 | median)
		vc=-
		[ -n "$ceiling" ] && vc=$(awk -v m="$m" -v c="$ceiling" 'BEGIN { printf "%.2f", m / c }')
		echo "| $c | $(fmt0 "$m") ($(range "$SCEN" "$c")) | $(pratio "$SCEN" "$c" baseline) | $vc | $(per1000 "$SCEN" "$c" 7) | $(per1000 "$SCEN" "$c" 8) | $(cpuratio "$SCEN" "$c" baseline) | $(per1000 "$SCEN" "$c" 9) |"
	done
done
echo
echo "Targets: fast, notify >= 0.5 x baseline; latency, notify >= 0.8 x ceiling (>= $((LAT_CONNECTIONS * 800 / LATENCY_MS)) msg/s)."
echo
echo "Per-run results (scenario, contender, round, messages, seconds, msg/s, sender CPU s, worker CPU s, server CPU s):"
sed 's/^/    /' "$RESULTS"

#!/usr/bin/env bash
# Delivery throughput: how fast does the worker empty a backlog into an SMTP
# server, next to the ceiling of this machine and next to a task queue?
#
# One invocation, one Postfix smtp-sink on 127.0.0.1 that every contender
# sends to, the same ~1.9 kB text message: notify renders it from a
# registered template (subject and 18 lines of text with variables) and a
# ~120-byte payload of variables; the others send the rendered text:
#
#   smtp-source    Postfix's own load generator: MESSAGES messages over
#                  CONNECTIONS sessions, each session reused (-d), message
#                  body as long as notify's whole message (-l).  The
#                  ceiling: a C client with nothing to read or record.
#   notify_bNNN    MESSAGES rows enqueued with notify_enqueue(send_at =>
#                  tomorrow), so the worker leaves them alone; then one
#                  UPDATE ... SET next_attempt_at = now() releases them all
#                  (its COMMIT wakes the worker) and the clock runs from that
#                  COMMIT until notify_worker_status counts MESSAGES more
#                  sent, i.e. until the last outcome is committed in the
#                  outbox.  notify.max_connections = CONNECTIONS,
#                  notify.batch_size = NNN (each of BATCH_SIZES).
#   celery         The stack the seed article recommends: Celery 5 with a
#                  Redis broker, 2 worker processes (celery worker -c 2,
#                  prefork pool), a task that sends one email with
#                  aiosmtplib.  CELERY_MESSAGES tasks are queued in Redis
#                  before the worker starts; the rate is counted at the sink
#                  from the first message it receives to the last (worker
#                  start-up excluded, which favours Celery).  Two tasks:
#                    celery          aiosmtplib.send(): a connection per
#                                    email, as the article's example does;
#                    celery_pooled   one SMTP connection kept open per
#                                    worker process (the best case).
#
# Each round runs every contender once, in a rotated order; ROUNDS rounds.
# Rates are medians; ratios are medians of the ratios within each round
# (the machine is shared, so neighbours' load moves whole rounds).  CPU
# seconds per 1,000 messages are shown too: they move much less with the
# neighbours' load than rates do.  Everything listens on 127.0.0.1
# (PostgreSQL on a Unix socket only); everything started here is stopped
# at exit.
#
# Usage: bench/throughput.sh       (as root, or as a user who can install
#                                   packages and owns the PostgreSQL install;
#                                   ~11 minutes on a busy 2-CPU machine)
# Environment: MESSAGES (20000), ROUNDS (3), CONNECTIONS (4),
#   BATCH_SIZES ("100 500"), CELERY_MESSAGES (2000: Celery runs at one to
#   two hundred emails a second here, 20,000 would take minutes a run),
#   CELERY_VARIANTS ("celery celery_pooled"; "" for none), PERF (1: one
#   extra notify run under perf record, top symbols printed), NOTIFY_REV
#   (build this commit instead of the working tree).
source "$(dirname "$0")/../scripts/common.sh"

MESSAGES=${MESSAGES:-20000}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-4}
BATCH_SIZES=${BATCH_SIZES:-"100 500"}
CELERY_MESSAGES=${CELERY_MESSAGES:-2000}
CELERY_VARIANTS=${CELERY_VARIANTS-"celery celery_pooled"}
PERF=${PERF:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
read -r -a BATCH_A <<<"$BATCH_SIZES"
read -r -a CELERY_A <<<"$CELERY_VARIANTS"

# ---- packages (install_packages starts no system postfix or redis: we
# only use the binaries, on private ports) ----
install_packages postfix redis-server redis-tools python3-celery python3-aiosmtplib python3-redis python3-psycopg2

WORK=$(scratch_dir /tmp/notify-bench-throughput)
PIDS=()

set_as_user "$WORK"

# The Celery worker: its main process and the pool's children.
stop_celery() {
	local main kids pid
	[ -f "$WORK/celery.pid" ] || return 0
	main=$(cat "$WORK/celery.pid")
	kids=$(ps -o pid= --ppid "$main" 2>/dev/null || true)
	stop_pid "$main"
	for pid in $kids; do stop_pid "$pid"; done
	rm -f "$WORK/celery.pid"
}

before_cleanup() {
	stop_celery
	[ -n "${PERF_PID:-}" ] && stop_pid "$PERF_PID"
	return 0
}
bench_traps

# ---- notify built into a private copy of the PostgreSQL install ----
# (scripts/common.sh: nobody else's build or install can change what is
# measured, and ours changes nobody's)
private_install "$WORK"

PGPORT_=$(free_port)
SINK_PORT=$(free_port)
REDIS_PORT=$(free_port)

# ---- the sink ----
say "smtp-sink on 127.0.0.1:$SINK_PORT"
SINK_OUT=$WORK/sink.out
SINK_USER=()
[ "$(id -u)" -eq 0 ] && SINK_USER=(-u postgres)
# -c: running counters (sess=, quit=, mesg=) written as messages arrive.
/usr/sbin/smtp-sink "${SINK_USER[@]}" -c "127.0.0.1:$SINK_PORT" 1024 >"$SINK_OUT" 2>"$WORK/sink.err" &
PIDS+=($!)
echo $! >"$WORK/server1.pid"  # scratch_dir stops it if this run is killed
sink_count() { tail -c 200 "$SINK_OUT" | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | sed 's/^$/0/'; }

# ---- the cluster ----
bench_cluster "$PGPORT_" bench <<CONF
# bench/throughput.sh: default durability and memory settings.
max_connections = 50
log_min_messages = warning
track_wal_io_timing = on
notify.database = 'bench'
notify.smtp_url = 'smtp://127.0.0.1:$SINK_PORT'
notify.from_address = 'notify@example.com'
notify.from_name = 'Example Shop'
notify.max_connections = $CONNECTIONS
CONF
export PGDATABASE=bench
q() { "${PSQL[@]}" -Atc "$1"; }
q "CREATE EXTENSION notify" >/dev/null

# The message: a registered template (bench/sql/shipped_template.sql: subject
# and 18 lines of text with variables, rendered by the worker for each row)
# and a payload of variables, as an application would enqueue it.
"${PSQL[@]}" -f "$NOTIFY_ROOT/bench/sql/shipped_template.sql" >/dev/null
q "CREATE TABLE bench_payload AS SELECT jsonb_build_object('name', 'Ada Lovelace', 'order_id', 'A-100234',
	'carrier', 'DHL Express', 'tracking', 'JD014600003828', 'eta', 'Thursday') AS payload" >/dev/null
RENDERED="FROM bench_payload b, notify_preview('bench.shipped', b.payload) p"
MSG_BYTES=$(q "SELECT octet_length(notify_build_message('notify@example.com', 'user1@example.com',
	p.subject, p.text_body, from_name => 'Example Shop')) $RENDERED")
q "SELECT p.text_body $RENDERED" >"$WORK/text.txt"
q "SELECT p.subject $RENDERED" >"$WORK/subject.txt"
echo "server: $(q 'SELECT version()')"
echo "message: $MSG_BYTES bytes as notify sends it; payload $(q "SELECT octet_length(payload::text) FROM bench_payload") bytes of JSON"

# ---- helpers in Python ----
cp "$NOTIFY_ROOT/bench/procstat.py" "$WORK/"
cat >"$WORK/release_wait.py" <<'PY'
"""Release every pending row in one UPDATE, then wait until the worker has
recorded n more sent.  Prints: seconds from the COMMIT; CPU seconds of all
the cluster's processes and of the worker; seconds the worker waited for a
CPU while runnable (schedstat); WAL bytes, WAL syncs and ms spent in them
(pg_stat_wal)."""
import sys, time, psycopg2
from procstat import stat, cluster_cpu  # bench/procstat.py
n, timeout, postmaster = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
conn = psycopg2.connect("")
conn.autocommit = True
cur = conn.cursor()
cur.execute("SELECT pid, sent FROM notify_worker_status")
pid, base = cur.fetchone()
def runq():
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[1]) / 1e9
def wal():
    cur.execute("SELECT wal_bytes, wal_sync, wal_sync_time FROM pg_stat_wal")
    return cur.fetchone()
c0, w0, q0, l0 = cluster_cpu(postmaster), stat(pid)[1], runq(), wal()
cur.execute("UPDATE notify_outbox SET next_attempt_at = now() WHERE status = 'pending'")
t0 = time.monotonic()
while True:
    cur.execute("SELECT sent FROM notify_worker_status")
    sent = cur.fetchone()[0] - base
    if sent >= n:
        break
    if time.monotonic() - t0 > timeout:
        print("timeout: %d of %d sent" % (sent, n), file=sys.stderr)
        sys.exit(1)
    time.sleep(0.005)
t1 = time.monotonic()
c1, w1, q1 = cluster_cpu(postmaster), stat(pid)[1], runq()
time.sleep(2.2)  # backends flush their WAL statistics at most once a second
l1 = wal()
print("%.4f %.2f %.2f %.2f %d %d %.0f" % (t1 - t0, c1 - c0, w1 - w0, q1 - q0,
      int(l1[0] - l0[0]), l1[1] - l0[1], l1[2] - l0[2]))
PY

cat >"$WORK/timed.py" <<'PY'
"""Run a command; print its wall seconds and its CPU seconds."""
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.4f %.2f" % (time.monotonic() - t, r.ru_utime + r.ru_stime))
PY

cat >"$WORK/sink_wait.py" <<'PY'
"""Wait until smtp-sink's counter shows n more messages than base; print
seconds from the first new message seen to the last, and the messages
counted in that time."""
import sys, time, re
path, base, n, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def count():
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 200))
        m = re.findall(rb"mesg=(\d+)", f.read())
    return int(m[-1]) if m else 0
start = time.monotonic()
t1 = c1 = None
while True:
    c = count() - base
    now = time.monotonic()
    if c > 0 and t1 is None:
        t1, c1 = now, c
    if c >= n:
        break
    if now - start > timeout:
        print("timeout: %d of %d at the sink" % (c, n), file=sys.stderr)
        sys.exit(1)
    time.sleep(0.005)
print("%.4f %d" % (now - t1, n - c1))
PY

# ---- Celery ----
mkdir -p "$WORK/celery" "$WORK/redis"
cat >"$WORK/celery/bench_celery.py" <<'PY'
"""Celery + Redis + aiosmtplib, as the seed article sets it up."""
import asyncio, os
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
import aiosmtplib
from celery import Celery

SMTP_HOST, SMTP_PORT = "127.0.0.1", int(os.environ["BENCH_SMTP_PORT"])
app = Celery("bench_celery", broker=os.environ["BENCH_BROKER"])
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)

def build(to, subject, text):
    msg = EmailMessage()
    msg["From"] = "Example Shop <notify@example.com>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg.set_content(text)
    return msg

@app.task
def send_email(to, subject, text):
    """One email, one connection (aiosmtplib.send)."""
    asyncio.run(aiosmtplib.send(build(to, subject, text), hostname=SMTP_HOST, port=SMTP_PORT))

_loop = None
_smtp = None

@app.task
def send_email_pooled(to, subject, text):
    """One email on a connection this worker process keeps open."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    async def go():
        global _smtp
        if _smtp is None or not _smtp.is_connected:
            _smtp = aiosmtplib.SMTP(hostname=SMTP_HOST, port=SMTP_PORT)
            await _smtp.connect()
        await _smtp.send_message(build(to, subject, text))
    _loop.run_until_complete(go())
PY
cat >"$WORK/celery/enqueue.py" <<'PY'
import sys
import bench_celery
task = {"celery": bench_celery.send_email, "celery_pooled": bench_celery.send_email_pooled}[sys.argv[1]]
text = open(sys.argv[3]).read().rstrip("\n")
subject = open(sys.argv[4]).read().strip()
for i in range(int(sys.argv[2])):
    task.delay("user%d@example.com" % i, subject, text)
PY
export BENCH_SMTP_PORT=$SINK_PORT BENCH_BROKER="redis://127.0.0.1:$REDIS_PORT/0"
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$WORK/redis" "$WORK/celery"
if [ ${#CELERY_A[@]} -gt 0 ]; then
	"${AS_USER[@]}" /usr/bin/redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
		--appendonly no --dir "$WORK/redis" --loglevel warning >"$WORK/redis.log" 2>&1 &
	PIDS+=($!)
	echo $! >"$WORK/server2.pid"  # scratch_dir stops it if this run is killed
	for i in $(seq 1 50); do
		redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	say "redis on 127.0.0.1:$REDIS_PORT, Celery $("$PYTHON" -c 'import celery; print(celery.__version__)')"
fi

# ---- one run of each contender; each writes "seconds messages sender_cpu worker_cpu" ----
RESULTS=$WORK/results.tsv
: >"$RESULTS"
: >"$WORK/diag.txt"

run_source() {
	local base out got secs cpu
	base=$(sink_count)
	out=$("$PYTHON" "$WORK/timed.py" /usr/sbin/smtp-source -d -s "$CONNECTIONS" -m "$MESSAGES" \
		-l "$MSG_BYTES" -f notify@example.com -t user@example.com -M bench.example.com \
		"127.0.0.1:$SINK_PORT")
	sleep 0.2
	got=$(($(sink_count) - base))
	[ "$got" = "$MESSAGES" ] || echo "WARNING: smtp-source: sink counted $got of $MESSAGES" >&2
	read -r secs cpu <<<"$out"
	echo "$secs $MESSAGES $cpu -"
}

load_outbox() {
	q "TRUNCATE notify_outbox, notify_attempts" >/dev/null
	q "SELECT count(notify_enqueue('bench.shipped', 'user' || g || '@example.com', p.payload,
		send_at => now() + interval '1 day'))
		FROM generate_series(1, $MESSAGES) g, bench_payload p" >/dev/null
	q "VACUUM ANALYZE notify_outbox" >/dev/null
	q "CHECKPOINT" >/dev/null
}

run_notify() {
	local batch=$1 base out secs ccpu wcpu runq walb wsync wsyncms sent got batches0
	q "ALTER SYSTEM SET notify.batch_size = $batch" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	load_outbox
	sleep 0.5
	base=$(sink_count)
	batches0=$(q "SELECT batches FROM notify_worker_status")
	out=$("$PYTHON" "$WORK/release_wait.py" "$MESSAGES" "$RUN_TIMEOUT" "$POSTMASTER_PID")
	read -r secs ccpu wcpu runq walb wsync wsyncms <<<"$out"
	sent=$(q "SELECT count(*) FROM notify_outbox WHERE status = 'sent'")
	got=$(($(sink_count) - base))
	[ "$sent" = "$MESSAGES" ] || echo "WARNING: notify: $sent of $MESSAGES rows sent" >&2
	[ "$got" = "$MESSAGES" ] || echo "WARNING: notify: sink counted $got of $MESSAGES" >&2
	# claims, failed attempts, the slowest attempt, the longest pause between outcomes
	q "SELECT format('    %s claims, %s attempts not sent, slowest attempt %s ms, longest pause between outcomes %s ms;
    worker CPU %s s, waited %s s for a CPU; WAL %s bytes/message, %s WAL syncs taking %s ms',
		(SELECT batches FROM notify_worker_status) - $batches0,
		count(*) FILTER (WHERE outcome <> 'sent'),
		round(extract(epoch FROM max(duration)) * 1000, 1),
		round(extract(epoch FROM max(gap)) * 1000, 1),
		'$wcpu', '$runq', $walb / $MESSAGES, $wsync, $wsyncms)
		FROM (SELECT outcome, duration, finished_at - lag(finished_at) OVER (ORDER BY finished_at) AS gap
		      FROM notify_attempts) a" >"$WORK/diag.txt"
	echo "$secs $MESSAGES $ccpu $wcpu"
}

run_celery() {
	local variant=$1 base out
	redis-cli -h 127.0.0.1 -p "$REDIS_PORT" flushall >/dev/null
	(cd "$WORK/celery" && "$PYTHON" enqueue.py "$variant" "$CELERY_MESSAGES" "$WORK/text.txt" "$WORK/subject.txt")
	base=$(sink_count)
	"${AS_USER[@]}" PYTHONPATH="$WORK/celery" "$PYTHON" -m celery -A bench_celery worker \
		-c 2 -P prefork --loglevel=WARNING --without-gossip --without-mingle --without-heartbeat \
		>"$WORK/celery.log" 2>&1 &
	echo $! >"$WORK/celery.pid"
	out=$("$PYTHON" "$WORK/sink_wait.py" "$SINK_OUT" "$base" "$CELERY_MESSAGES" "$RUN_TIMEOUT") ||
		{ tail -20 "$WORK/celery.log" >&2; exit 1; }
	stop_celery
	echo "$out - -"
}

one() {
	local name=$1 round=$2 secs n scpu wcpu rate
	case $name in
		smtp-source) run_source >"$WORK/run.out" ;;
		notify_b*) run_notify "${name#notify_b}" >"$WORK/run.out" ;;
		celery*) run_celery "$name" >"$WORK/run.out" ;;
	esac
	read -r secs n scpu wcpu <"$WORK/run.out"
	rate=$(awk -v s="$secs" -v n="$n" 'BEGIN { printf "%.1f", n / s }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$n" "$secs" "$rate" "$scpu" "$wcpu" >>"$RESULTS"
	printf '  round %s  %-14s %6s msgs in %7.2f s = %7.1f msg/s%s\n' "$round" "$name" "$n" "$secs" "$rate" \
		"$([ "$scpu" = - ] || echo "  sender CPU $scpu s")"
	case $name in notify_b*) cat "$WORK/diag.txt" ;; esac
}

CONTENDERS=(smtp-source)
for b in "${BATCH_A[@]}"; do CONTENDERS+=("notify_b$b"); done
CONTENDERS+=("${CELERY_A[@]}")

say "warm-up (not recorded)"
run_source >/dev/null
MESSAGES_SAVED=$MESSAGES
MESSAGES=2000
run_notify "${BATCH_A[0]}" >/dev/null
MESSAGES=$MESSAGES_SAVED

say "measuring: ${#CONTENDERS[@]} contenders x $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
nc=${#CONTENDERS[@]}
for round in $(seq 1 "$ROUNDS"); do
	for i in $(seq 0 $((nc - 1))); do
		one "${CONTENDERS[$(((i + round - 1) % nc))]}" "$round"
	done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- where the worker's time goes ----
if [ "$PERF" = 1 ] && command -v perf >/dev/null && [ "$(id -u)" -eq 0 ]; then
	say "profile: one more notify run (batch_size ${BATCH_A[0]}) under perf record -g on the worker"
	q "ALTER SYSTEM SET notify.batch_size = ${BATCH_A[0]}" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	load_outbox
	WPID=$(q "SELECT pid FROM notify_worker_status")
	perf record -q -F 1999 -g -p "$WPID" -o "$WORK/perf.data" >/dev/null 2>&1 &
	PERF_PID=$!
	sleep 0.5
	"$PYTHON" "$WORK/release_wait.py" "$MESSAGES" "$RUN_TIMEOUT" "$POSTMASTER_PID" >/dev/null
	kill -INT "$PERF_PID" 2>/dev/null || true
	wait "$PERF_PID" 2>/dev/null || true
	PERF_PID=
	echo
	echo "Worker CPU by shared object (self time):"
	perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
		grep -E '^ +[0-9]' | head -8 || true
	echo
	echo "Top symbols (self time):"
	perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null |
		grep -E '^ +[0-9]' | sed 's/ *- *- *$//' | head -25 || true
	echo
	echo "Worker time by caller chain entry points (children time, top 20):"
	perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none 2>/dev/null |
		grep -E '^ +[0-9]' | sed 's/ *- *- *$//' | head -20 || true
fi

if grep -qE 'PANIC|FATAL|ERROR' "$WORK/server.log"; then
	say "server log errors (first 20)"
	grep -E 'PANIC|FATAL|ERROR' "$WORK/server.log" | head -20
fi

# ---- summary ----
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v v="$1" -v c="$2" '$1 == v && $c != "-" { print $c }' "$RESULTS"; }
range() { col "$1" 5 | sort -g | awk '{ a[NR] = $1 } END { if (NR) printf "%.0f–%.0f", a[1], a[NR] }'; }
# median over rounds of rate(a) / rate(b) in the same round
pratio() {
	awk -F'\t' -v a="$1" -v b="$2" '$1 == a { ra[$2] = $5 } $1 == b { rb[$2] = $5 }
		END { for (r in ra) if (r in rb && rb[r] > 0) printf "%.3f\n", ra[r] / rb[r] }' "$RESULTS" |
		median | awk '{ if ($1 == "-") print "-"; else printf "%.2f", $1 }'
}
per1000() { awk -F'\t' -v v="$1" -v c="$2" '$1 == v && $c != "-" { printf "%.3f\n", $c * 1000 / $3 }' "$RESULTS" |
	median | awk '{ if ($1 == "-") print "-"; else printf "%.2f", $1 }'; }
fmt0() { awk -v a="$1" 'BEGIN { if (a == "-") print "-"; else printf "%.0f", a }'; }
describe() {
	case $1 in
		smtp-source) echo "Postfix smtp-source, $CONNECTIONS sessions reused (-d)" ;;
		notify_b*) echo "notify, max_connections $CONNECTIONS, batch_size ${1#notify_b}" ;;
		celery) echo "Celery + Redis + aiosmtplib, 2 processes, connection per email" ;;
		celery_pooled) echo "Celery + Redis + aiosmtplib, 2 processes, connection kept per process" ;;
	esac
}

say "results"
echo
echo "Messages per second, median of $ROUNDS runs (min–max); a $MSG_BYTES-byte message to Postfix smtp-sink on 127.0.0.1."
echo "Ratio: median over rounds of the ratio within the round.  CPU: seconds per 1,000 messages (notify: all the"
echo "cluster's processes, of which the worker; smtp-source: the process)."
echo "$(nproc) CPUs shared with other work; load average at the end: $LOAD_END."
echo
echo "| contender | messages per run | msg/s | ratio to smtp-source | sender CPU s / 1000 msgs | of which worker |"
echo "|---|---:|---:|---:|---:|---:|"
for c in "${CONTENDERS[@]}"; do
	m=$(col "$c" 5 | median)
	n=$(col "$c" 3 | head -1)
	echo "| $(describe "$c") | $n | $(fmt0 "$m") ($(range "$c")) | $(pratio "$c" smtp-source) | $(per1000 "$c" 6) | $(per1000 "$c" 7) |"
done
echo
echo "Targets: notify >= 0.5 x smtp-source and >= 10 x Celery."
echo
echo "| notify | / smtp-source (target 0.5) | / celery (target 10) | / celery_pooled |"
echo "|---|---:|---:|---:|"
for b in "${BATCH_A[@]}"; do
	echo "| batch_size $b | $(pratio "notify_b$b" smtp-source) | $(pratio "notify_b$b" celery) | $(pratio "notify_b$b" celery_pooled) |"
done
echo
echo "Per-run results (contender, round, messages, seconds, msg/s, sender CPU s, worker CPU s):"
sed 's/^/    /' "$RESULTS"

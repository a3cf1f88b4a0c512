#!/usr/bin/env bash
# Commit-to-accept latency: how long after COMMIT has the SMTP server
# accepted the message, at a steady 200 messages a second?
#
# One invocation, one scratch cluster, Postfix's smtp-sink on 127.0.0.1 as
# the mail server (a C server that answers at once; the test suite's Python
# server cannot keep up with 4 connections at 200/s on a busy 2-CPU machine:
# its replies queue and it measures itself, see the check below).
#
#   notify     A driver (Python, psycopg2, one autocommit connection) calls
#              notify_enqueue once every 1/RATE s on an absolute schedule
#              for DURATION s and notes when each call returned (COMMIT
#              done).  smtp-sink keeps no per-message time, so "accepted"
#              is the row's sent_at: the worker's clock when it read the
#              server's 250 reply to the message (notify_attempts.
#              finished_at).  latency = sent_at - COMMIT returned.  Split at
#              notify_attempts.started_at: before it, the wake-up, the
#              claim transaction and building the message; after it, the
#              SMTP transaction (MAIL, RCPT, DATA, message, 250).  The first
#              WARMUP s are not counted.
#   smtplib    Baseline, same run, same sink, same message: Python's
#              smtplib on one kept-open connection at the same rate; the
#              sendmail() round trip (MAIL ... 250) is what any client pays
#              this server for one message.
#   check      Once, at CHECK_RATE/s for CHECK_DURATION s, the same driver
#              against the test suite's aiosmtpd server
#              (test/servers/smtp_server.py), which logs its own accept
#              time per Message-ID: shows how far sent_at is from the
#              server's own clock, i.e. that sent_at is a fair stand-in.
#
# ROUNDS rounds of notify and smtplib (alternating which goes first); the
# table shows, per percentile, the median over rounds.
#
# Usage: bench/latency.sh         (as root or the owner of the PostgreSQL
#                                  install; ~5 minutes on a busy 2-CPU machine)
# Environment: RATE (200 messages/s), DURATION (30 s per notify run),
#   WARMUP (2 s), BASELINE_DURATION (10 s), ROUNDS (3), CHECK_RATE (50),
#   CHECK_DURATION (5; 0 skips the check), NOTIFY_REV (build this commit instead of
#   the working tree).
source "$(dirname "$0")/../scripts/common.sh"

RATE=${RATE:-200}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-2}
BASELINE_DURATION=${BASELINE_DURATION:-10}
ROUNDS=${ROUNDS:-3}
CHECK_RATE=${CHECK_RATE:-50}
CHECK_DURATION=${CHECK_DURATION:-5}

# ---- packages (install_packages starts no system postfix) ----
install_packages postfix python3-psycopg2

WORK=$(scratch_dir /tmp/notify-bench-latency)
PIDS=()
set_as_user "$WORK"

bench_traps

# ---- notify built into a private copy of the PostgreSQL install ----
# (scripts/common.sh: nobody else's build or install can change what is
# measured, and ours changes nobody's)
private_install "$WORK"

PGPORT_=$(free_port)
SINK_PORT=$(free_port)

# ---- the mail servers ----
say "smtp-sink on 127.0.0.1:$SINK_PORT"
SINK_USER=()
[ "$(id -u)" -eq 0 ] && SINK_USER=(-u postgres)
/usr/sbin/smtp-sink "${SINK_USER[@]}" "127.0.0.1:$SINK_PORT" 1024 >"$WORK/sink.out" 2>&1 &
PIDS+=($!)
echo $! >"$WORK/server1.pid"  # scratch_dir stops it if this run is killed

MAIL=$WORK/mail
mkdir -p "$MAIL"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK" "$MAIL"
if [ "$CHECK_DURATION" != 0 ]; then
	cp "$NOTIFY_ROOT/test/servers/smtp_server.py" "$WORK/smtp_server.py"
	"${AS_USER[@]}" "$PYTHON" "$WORK/smtp_server.py" --port 0 \
		--port-file "$WORK/smtp.port" --maildir "$MAIL" >"$WORK/smtp.log" 2>&1 &
	PIDS+=($!)
	echo $! >"$WORK/server2.pid"  # scratch_dir stops it if this run is killed
	for i in $(seq 1 100); do
		[ -s "$WORK/smtp.port" ] && break
		sleep 0.05
	done
	CHECK_PORT=$(cat "$WORK/smtp.port")
	say "aiosmtpd test server on 127.0.0.1:$CHECK_PORT (for the check)"
fi

# ---- the cluster ----
bench_cluster "$PGPORT_" bench <<CONF
# bench/latency.sh: default durability and memory settings.
max_connections = 50
log_min_messages = warning
notify.database = 'bench'
notify.smtp_url = 'smtp://127.0.0.1:$SINK_PORT'
notify.from_address = 'notify@example.com'
notify.from_name = 'Example Shop'
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
echo "settings: $(q "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings
	WHERE name IN ('synchronous_commit', 'fsync', 'notify.batch_size', 'notify.max_connections', 'notify.poll_interval')")"

# ---- the driver, the baseline, the analysis ----
cat >"$WORK/drive.py" <<'PY'
"""Call notify_enqueue at a steady rate.  Writes one line per call: id,
when it was due, when it returned (COMMIT done), how long it took.  Prints
to stderr how late the schedule ran and what the worker's CPU did."""
import json, os, sys, time, psycopg2
rate, duration, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
conn = psycopg2.connect("")
conn.autocommit = True
cur = conn.cursor()
cur.execute("SELECT payload FROM bench_payload")
payload = json.dumps(cur.fetchone()[0])
cur.execute("SELECT pid FROM notify_worker_status")
pid = cur.fetchone()[0]
hz = os.sysconf("SC_CLK_TCK")
def proc():
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open("/proc/%d/schedstat" % pid) as f:
        runq = int(f.read().split()[1]) / 1e9
    return (int(fields[11]) + int(fields[12])) / hz, runq
cpu0, rq0 = proc()
n = int(rate * duration)
late = 0
rows = []
start = time.time() + 0.1
for k in range(n):
    due = start + k / rate
    now = time.time()
    if due > now:
        time.sleep(due - now)
    elif now - due > 0.001:
        late += 1
    t0 = time.time()
    cur.execute("SELECT notify_enqueue('bench.shipped', %s, %s::jsonb)",
                ("user%d@example.com" % k, payload))
    i = cur.fetchone()[0]
    t1 = time.time()
    rows.append("%d %.6f %.6f %.6f" % (i, due, t1, t1 - t0))
elapsed = time.time() - start
cpu1, rq1 = proc()
with open(out, "w") as f:
    f.write("\n".join(rows) + "\n")
print("    %d calls in %.2f s (%d began over 1 ms late); worker CPU %.2f s, waited %.2f s for a CPU"
      % (n, elapsed, late, cpu1 - cpu0, rq1 - rq0), file=sys.stderr)
PY

cat >"$WORK/baseline.py" <<'PY'
"""smtplib on one open connection at a steady rate; one line per message:
Message-ID, when sendmail() began, how long it took."""
import sys, time, smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
port, rate, duration, text_file, subject_file, out = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
text = open(text_file).read().rstrip("\n")
subject = open(subject_file).read().strip()
s = smtplib.SMTP("127.0.0.1", port)
s.ehlo("bench.example.com")
rows = []
n = int(rate * duration)
start = time.time() + 0.1
for k in range(n):
    due = start + k / rate
    now = time.time()
    if due > now:
        time.sleep(due - now)
    msg = EmailMessage()
    msg["From"] = "Example Shop <notify@example.com>"
    msg["To"] = "user%d@example.com" % k
    msg["Subject"] = subject
    msg["Date"] = formatdate()
    mid = make_msgid(domain="example.com")
    msg["Message-ID"] = mid
    msg.set_content(text)
    t0 = time.time()
    s.send_message(msg)
    t1 = time.time()
    rows.append("%s %.6f %.6f" % (mid.strip("<>"), t0, t1 - t0))
s.quit()
with open(out, "w") as f:
    f.write("\n".join(rows) + "\n")
PY

cat >"$WORK/analyze.py" <<'PY'
"""Percentiles, one line per measure: name count p50 p90 p99 max (ms).
notify: driver file, outbox/attempt rows, warm-up seconds [, server log];
smtplib: baseline file."""
import json, sys
def pct(xs, p):
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]
def stats(name, xs):
    xs = sorted(x * 1000.0 for x in xs)
    if not xs:
        return "%s 0 nan nan nan nan" % name
    return "%s %d %.2f %.2f %.2f %.2f" % (name, len(xs), pct(xs, 50), pct(xs, 90), pct(xs, 99), xs[-1])
kind = sys.argv[1]
out = []
if kind == "notify":
    drive_file, db_file, warmup = sys.argv[2], sys.argv[3], float(sys.argv[4])
    accepted = {}
    if len(sys.argv) > 5:
        for line in open(sys.argv[5]):
            e = json.loads(line)
            mid = (e.get("message_id") or "").strip("<>")
            if mid and mid not in accepted:
                accepted[mid] = e["time"]
    drive = {}
    for line in open(drive_file):
        i, due, t1, took = line.split()
        drive[int(i)] = (float(due), float(t1), float(took))
    first = min(d[0] for d in drive.values())
    sent, to_start, smtp, call, server, offset = [], [], [], [], [], []
    for line in open(db_file):
        i, mid, sent_at, started, finished = line.rstrip("\n").split("|")
        i = int(i)
        if i not in drive or drive[i][0] < first + warmup:
            continue
        due, t1, took = drive[i]
        sent.append(float(sent_at) - t1)
        to_start.append(float(started) - t1)
        smtp.append(float(finished) - float(started))
        call.append(took)
        if mid in accepted:
            server.append(accepted[mid] - t1)
            offset.append(float(sent_at) - accepted[mid])
    out += [stats("sent_at", sent), stats("to_start", to_start), stats("smtp", smtp),
            stats("enqueue_call", call)]
    if accepted:
        out += [stats("server_accept", server), stats("sent_at_minus_server", offset)]
else:
    rtt = [float(line.split()[2]) for line in open(sys.argv[2])]
    out.append(stats("roundtrip", rtt))
print("\n".join(out))
PY

RESULTS=$WORK/results.tsv
: >"$RESULTS"

# One notify run at rate $1 for $2 s; appends "notify<TAB>round<TAB>measure n p50 p90 p99 max".
run_notify() {
	local rate=$1 duration=$2 round=$3 label=${4:-notify} log=${5:-} n i
	q "TRUNCATE notify_outbox, notify_attempts" >/dev/null
	q "VACUUM ANALYZE notify_outbox, notify_attempts" >/dev/null
	q "CHECKPOINT" >/dev/null
	"$PYTHON" "$WORK/drive.py" "$rate" "$duration" "$WORK/drive.txt"
	n=$(wc -l <"$WORK/drive.txt")
	for i in $(seq 1 300); do
		[ "$(q "SELECT count(*) FROM notify_outbox WHERE status = 'sent'")" -ge "$n" ] && break
		sleep 0.1
	done
	[ "$(q "SELECT count(*) FROM notify_outbox WHERE status <> 'sent'")" = 0 ] ||
		echo "WARNING: $(q "SELECT count(*) FROM notify_outbox WHERE status <> 'sent'") rows not sent" >&2
	q "SELECT o.id, o.message_id, extract(epoch FROM o.sent_at), extract(epoch FROM a.started_at),
		extract(epoch FROM a.finished_at)
		FROM notify_outbox o JOIN notify_attempts a ON a.outbox_id = o.id AND a.attempt = o.attempts
		WHERE o.status = 'sent'" >"$WORK/db.txt"
	"$PYTHON" "$WORK/analyze.py" notify "$WORK/drive.txt" "$WORK/db.txt" "$WARMUP" $log |
		sed "s/^/$label\t$round\t/; s/ /\t/g" >>"$RESULTS"
}

run_baseline() {
	local round=$1
	"$PYTHON" "$WORK/baseline.py" "$SINK_PORT" "$RATE" "$BASELINE_DURATION" "$WORK/text.txt" "$WORK/subject.txt" "$WORK/base.txt"
	"$PYTHON" "$WORK/analyze.py" smtplib "$WORK/base.txt" |
		sed "s/^/smtplib\t$round\t/; s/ /\t/g" >>"$RESULTS"
}

show_round() {
	awk -F'\t' -v r="$1" -v w="$2" '$2 == r && $1 == w {
		printf "  round %s  %-8s %-21s n=%-5s p50 %7.2f  p90 %7.2f  p99 %7.2f  max %8.2f ms\n", $2, $1, $3, $4, $5, $6, $7, $8 }' "$RESULTS"
}

say "warm-up (3 s of each, not recorded)"
run_notify "$RATE" 3 0
run_baseline 0
: >"$RESULTS"

say "measuring: $ROUNDS rounds of notify ($DURATION s at $RATE/s) and smtplib ($BASELINE_DURATION s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
	if [ $((round % 2)) = 1 ]; then
		run_notify "$RATE" "$DURATION" "$round"; show_round "$round" notify
		run_baseline "$round"; show_round "$round" smtplib
	else
		run_baseline "$round"; show_round "$round" smtplib
		run_notify "$RATE" "$DURATION" "$round"; show_round "$round" notify
	fi
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

if [ "$CHECK_DURATION" != 0 ]; then
	say "check: sent_at against the server's own accept time (aiosmtpd test server, $CHECK_RATE/s for $CHECK_DURATION s)"
	q "ALTER SYSTEM SET notify.smtp_url = 'smtp://127.0.0.1:$CHECK_PORT'" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	run_notify "$CHECK_RATE" "$CHECK_DURATION" 0 check "$MAIL/log.jsonl"
	show_round 0 check
fi

if grep -qE 'PANIC|FATAL|ERROR' "$WORK/server.log"; then
	say "server log errors (first 20)"
	grep -E 'PANIC|FATAL|ERROR' "$WORK/server.log" | head -20
fi

# ---- summary ----
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
cell() { awk -F'\t' -v w="$1" -v m="$2" -v c="$3" '$1 == w && $3 == m && $2 > 0 { print $c }' "$RESULTS" | median; }
row() {
	printf '| %s | %s | %s | %s | %s |\n' "$3" "$(cell "$1" "$2" 5)" "$(cell "$1" "$2" 6)" "$(cell "$1" "$2" 7)" "$(cell "$1" "$2" 8)"
}
say "results"
echo
echo "Milliseconds; for each percentile the median over $ROUNDS rounds.  notify: $RATE enqueues/s for $DURATION s"
echo "(first $WARMUP s not counted), one autocommit connection; smtplib: $RATE messages/s for $BASELINE_DURATION s on one"
echo "open connection.  Both to Postfix smtp-sink on 127.0.0.1, same message."
echo "$(nproc) CPUs shared with other work; load average at the end: $LOAD_END."
echo
echo "| measure | p50 | p90 | p99 | max |"
echo "|---|---:|---:|---:|---:|"
row notify sent_at "notify: COMMIT returned -> sent_at, the worker read the 250 (target p50 <= 3, p99 <= 15)"
row notify to_start "  of which COMMIT -> SMTP transaction began (wake-up, claim, message built)"
row notify smtp "  of which SMTP transaction (MAIL FROM -> 250)"
row notify enqueue_call "notify_enqueue call including COMMIT, client side"
row smtplib roundtrip "baseline: smtplib sendmail() on an open connection (MAIL FROM -> 250)"
if [ "$CHECK_DURATION" != 0 ]; then
	echo
	echo "Check at $CHECK_RATE/s against the aiosmtpd test server, which logs its accept time (before its 250):"
	echo
	echo "| measure | p50 | p90 | p99 | max |"
	echo "|---|---:|---:|---:|---:|"
	awk -F'\t' '$1 == "check" { printf "| %s | %s | %s | %s | %s |\n", $3, $5, $6, $7, $8 }' "$RESULTS" |
		sed 's/^| sent_at |/| COMMIT -> sent_at |/; s/^| server_accept |/| COMMIT -> server accepted |/;
			s/^| sent_at_minus_server |/| sent_at - server accept time |/; s/^| to_start |/| COMMIT -> SMTP began |/;
			s/^| smtp |/| SMTP transaction |/; s/^| enqueue_call |/| notify_enqueue call |/'
fi
echo
echo "Per-round results (who, round, measure, n, p50, p90, p99, max ms; round 0 = check):"
sed 's/^/    /' "$RESULTS"

#!/usr/bin/env bash
# Drain cost: with the network taken out (notify.sandbox = on: a send
# completes as sent without connecting), how long does the worker take to
# work off a backlog, against plain SQL doing the same queue work?
#
# One invocation, one scratch cluster, two databases with the extension and
# identical data (ROWS pending rows, inserted with next_attempt_at
# tomorrow, then released with one UPDATE ... SET next_attempt_at = now()):
#
#   notify   database "bench", served by the worker (notify.sandbox = on,
#            notify.batch_size = BATCH).  The clock runs from the COMMIT of
#            the release until notify_worker_status counts ROWS more sent.
#            The worker claims, builds each message (MIME, as for real),
#            "sends" it and records the outcome and one notify_attempts
#            row per message.
#   sql      database "bench_sql", which the worker does not serve (its
#            wake-up trigger disabled there, or every baseline COMMIT would
#            wake the worker for nothing): a
#            PL/pgSQL procedure doing the queue work in batches of BATCH,
#            one COMMIT per batch (the worker also commits once per batch:
#            it records one batch and claims the next in one transaction):
#              WITH c AS (SELECT id ... WHERE status = 'pending' AND
#                next_attempt_at <= now() ORDER BY priority DESC,
#                next_attempt_at, id LIMIT BATCH FOR UPDATE SKIP LOCKED)
#              UPDATE ... SET status = 'sending', attempts + 1, lease,
#                message_id ...;
#              UPDATE ... SET status = 'sent', sent_at, ...;
#              INSERT INTO notify_attempts ...;  COMMIT;
#            The clock runs around CALL bench_drain(BATCH).
#
# Each round loads both databases alike, then runs notify and sql (order
# rotating), each after a CHECKPOINT.  ROUNDS rounds; medians; the ratio is
# the median of the per-round ratios rate(notify) / rate(sql).
# Then, with PGSS=1, one more round with pg_stat_statements (track = all)
# and auto_explain (calls over 15 ms) shows what each statement cost, per
# call and per row, and the plan of the worker's slowest statement.
#
# Usage: bench/drain.sh           (as root or the owner of the PostgreSQL
#                                  install; ~10 minutes on a busy 2-CPU machine)
# Environment: ROWS (100000), BATCH (100), ROUNDS (3), PGSS (1),
#   NOTIFY_REV (build this commit instead of the working tree).
source "$(dirname "$0")/../scripts/common.sh"

ROWS=${ROWS:-100000}
BATCH=${BATCH:-100}
ROUNDS=${ROUNDS:-3}
PGSS=${PGSS:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}

install_packages python3-psycopg2

WORK=$(scratch_dir /tmp/notify-bench-drain)
PIDS=()
bench_traps

# ---- notify built into a private copy of the PostgreSQL install ----
# (scripts/common.sh: nobody else's build or install can change what is
# measured, and ours changes nobody's)
private_install "$WORK"

PGPORT_=$(free_port)

# ---- the cluster ----
bench_cluster "$PGPORT_" bench bench_sql <<CONF
# bench/drain.sh: default durability and memory settings.
max_connections = 50
log_min_messages = warning
track_wal_io_timing = on
notify.database = 'bench'
notify.sandbox = on
notify.batch_size = $BATCH
notify.from_address = 'notify@example.com'
notify.from_name = 'Example Shop'
CONF
export PGDATABASE=bench
q() { "${PSQL[@]}" -Atc "$1"; }

for db in bench bench_sql; do
	# The message: a registered template (bench/sql/shipped_template.sql,
	# rendered by the worker for each row) and a payload of variables.
	"${PSQL[@]}" -d "$db" -c "CREATE EXTENSION notify" -f "$NOTIFY_ROOT/bench/sql/shipped_template.sql" >/dev/null
	"${PSQL[@]}" -d "$db" <<'SQL' >/dev/null
CREATE TABLE bench_payload AS SELECT jsonb_build_object('name', 'Ada Lovelace', 'order_id', 'A-100234',
	'carrier', 'DHL Express', 'tracking', 'JD014600003828', 'eta', 'Thursday') AS payload;
-- What notify_enqueue inserts (template version and locale resolved,
-- category transactional), without its PL/pgSQL checks: loading is not
-- what is measured.
CREATE PROCEDURE bench_load(n integer) LANGUAGE sql AS $$
	INSERT INTO notify_outbox (template_key, template_version, locale, channel, category, recipient,
		payload, priority, max_attempts, send_at, next_attempt_at)
	SELECT 'bench.shipped', v.template_version, v.locale, 'email', 'transactional', 'user' || g || '@example.com',
		p.payload, 10, 5, now() + interval '1 day', now() + interval '1 day'
	FROM generate_series(1, n) g, bench_payload p,
		notify_template_resolve('bench.shipped', 'en', p.payload) v
$$;
SQL
done
"${PSQL[@]}" -d bench_sql <<'SQL'
-- Writes to an outbox wake the worker at COMMIT whatever the database, and
-- the worker serves "bench": keep the baseline's commits from waking it.
ALTER TABLE notify_outbox DISABLE TRIGGER notify_outbox_wake;
-- The queue work in plain SQL: claim a batch, mark it sent, one attempt row
-- each, COMMIT; until nothing is due.
CREATE PROCEDURE bench_drain(batch integer) LANGUAGE plpgsql AS $$
DECLARE
	ids bigint[];
	atts integer[];
BEGIN
	LOOP
		WITH c AS (
			SELECT id FROM notify_outbox
			WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY priority DESC, next_attempt_at, id
			LIMIT batch
			FOR UPDATE SKIP LOCKED),
		claimed AS (
			UPDATE notify_outbox o
			SET status = 'sending',
				attempts = o.attempts + 1,
				locked_until = now() + interval '300 seconds',
				message_id = coalesce(o.message_id,
					o.id || '.' || substr(md5(random()::text || clock_timestamp()::text), 1, 20) || '@example.com')
			FROM c WHERE o.id = c.id
			RETURNING o.id, o.attempts)
		SELECT array_agg(id), array_agg(attempts) INTO ids, atts FROM claimed;
		EXIT WHEN ids IS NULL;
		UPDATE notify_outbox
		SET status = 'sent', sent_at = clock_timestamp(), locked_until = NULL
		WHERE id = ANY (ids) AND status = 'sending';
		INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome,
			response_code, enhanced_status, response_text)
		SELECT i, a, now(), clock_timestamp(), 'sent', 250, '2.0.0', '250 2.0.0 Ok: queued'
		FROM unnest(ids, atts) AS u(i, a);
		COMMIT;
	END LOOP;
END;
$$;
SQL
echo "server: $(q 'SELECT version()')"
echo "message: $(q "SELECT octet_length(notify_build_message('notify@example.com', 'user1@example.com',
	p.subject, p.text_body, from_name => 'Example Shop')) FROM bench_payload b, notify_preview('bench.shipped', b.payload) p") bytes, rendered from a template;" \
	"payload $(q "SELECT octet_length(payload::text) FROM bench_payload") bytes of JSON; $ROWS rows; batches of $BATCH"

# ---- timing helper ----
cp "$NOTIFY_ROOT/bench/procstat.py" "$WORK/"
cat >"$WORK/drain.py" <<'PY'
"""notify: release every pending row of database bench and wait until the
worker counted n more sent.  sql: CALL bench_drain(batch) in bench_sql.
Prints: seconds; CPU seconds of all the cluster's processes; of the worker;
WAL bytes; WAL syncs; ms in WAL syncs."""
import sys, time, psycopg2
from procstat import stat, cluster_cpu  # bench/procstat.py
mode, n, batch, timeout, postmaster = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
conn = psycopg2.connect("dbname=bench")
conn.autocommit = True
cur = conn.cursor()
cur.execute("SELECT pid, sent FROM notify_worker_status")
wpid, base = cur.fetchone()
def wal():
    cur.execute("SELECT wal_bytes, wal_sync, wal_sync_time FROM pg_stat_wal")
    return cur.fetchone()
if mode == "sql":
    sconn = psycopg2.connect("dbname=bench_sql")
    sconn.autocommit = True
    scur = sconn.cursor()
    scur.execute("UPDATE notify_outbox SET next_attempt_at = now() WHERE status = 'pending'")
c0, w0, l0 = cluster_cpu(postmaster), stat(wpid)[1], wal()
if mode == "notify":
    cur.execute("UPDATE notify_outbox SET next_attempt_at = now() WHERE status = 'pending'")
    t0 = time.monotonic()
    while True:
        cur.execute("SELECT sent FROM notify_worker_status")
        if cur.fetchone()[0] - base >= n:
            break
        if time.monotonic() - t0 > timeout:
            sys.exit("timeout")
        time.sleep(0.01)
else:
    t0 = time.monotonic()
    scur.execute("CALL bench_drain(%s)", (batch,))
t1 = time.monotonic()
c1, w1 = cluster_cpu(postmaster), stat(wpid)[1]
time.sleep(2.2)  # backends flush their WAL statistics at most once a second
l1 = wal()
print("%.3f %.2f %.2f %d %d %.0f" % (t1 - t0, c1 - c0, w1 - w0, int(l1[0] - l0[0]), l1[1] - l0[1], l1[2] - l0[2]))
PY

RESULTS=$WORK/results.tsv
: >"$RESULTS"

load_both() {
	local db
	for db in bench bench_sql; do
		"${PSQL[@]}" -d "$db" -c "TRUNCATE notify_outbox, notify_attempts" -c "CALL bench_load($ROWS)" \
			-c "VACUUM ANALYZE notify_outbox, notify_attempts" >/dev/null
	done
}

run() {
	local mode=$1 round=$2 out secs ccpu wcpu walb wsync wsyncms sent rate db
	q "CHECKPOINT" >/dev/null
	out=$("$PYTHON" "$WORK/drain.py" "$mode" "$ROWS" "$BATCH" "$RUN_TIMEOUT" "$POSTMASTER_PID")
	read -r secs ccpu wcpu walb wsync wsyncms <<<"$out"
	db=bench
	[ "$mode" = sql ] && db=bench_sql
	sent=$("${PSQL[@]}" -d "$db" -Atc "SELECT count(*) FROM notify_outbox WHERE status = 'sent'")
	[ "$sent" = "$ROWS" ] || echo "WARNING: $mode: $sent of $ROWS rows sent" >&2
	rate=$(awk -v s="$secs" -v n="$ROWS" 'BEGIN { printf "%.0f", n / s }')
	[ "$mode" = sql ] && wcpu=-
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$round" "$secs" "$rate" "$ccpu" "$wcpu" "$walb" "$wsync" "$wsyncms" >>"$RESULTS"
	printf '  round %s  %-6s %7.2f s = %6s rows/s  cluster CPU %6.2f s%s  WAL %5.0f MB, %s syncs (%s ms)\n' \
		"$round" "$mode" "$secs" "$rate" "$ccpu" "$([ "$wcpu" = - ] || echo " (worker $wcpu s)")" \
		"$(awk -v b="$walb" 'BEGIN { print b / 1048576 }')" "$wsync" "$wsyncms"
}

say "warm-up (10,000 rows each, not recorded)"
ROWS_SAVED=$ROWS
ROWS=10000
load_both
run notify 0 >/dev/null
run sql 0 >/dev/null
ROWS=$ROWS_SAVED
: >"$RESULTS"

say "measuring: $ROUNDS rounds of notify and sql, $ROWS rows each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
	load_both
	if [ $((round % 2)) = 1 ]; then
		run notify "$round"
		run sql "$round"
	else
		run sql "$round"
		run notify "$round"
	fi
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- what each statement costs (pg_stat_statements, not timed) ----
if [ "$PGSS" = 1 ]; then
	say "statement costs: one more round with pg_stat_statements (track = all)"
	cat >>"$DATA/postgresql.conf" <<CONF
shared_preload_libraries = 'notify,pg_stat_statements,auto_explain'
pg_stat_statements.track = all
pg_stat_statements.track_utility = off
auto_explain.log_min_duration = '15ms'
auto_explain.log_nested_statements = on
auto_explain.log_analyze = on
auto_explain.log_buffers = on
auto_explain.log_timing = off
auto_explain.log_format = text
CONF
	as_pg pg_ctl restart -D "$DATA" -l "$WORK/server.log" -w -m fast >/dev/null
	POSTMASTER_PID=$(head -1 "$DATA/postmaster.pid")
	for db in bench bench_sql; do "${PSQL[@]}" -d "$db" -c "CREATE EXTENSION pg_stat_statements" >/dev/null; done
	load_both
	q "SELECT pg_stat_statements_reset()" >/dev/null
	run notify pgss >/dev/null
	run sql pgss >/dev/null
	echo
	echo "| database | statement | calls | rows/call | ms/call | µs/row | buffers/call | WAL bytes/row | total s |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	q "SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |', d.datname,
			replace(regexp_replace(left(regexp_replace(s.query, '\s+', ' ', 'g'), 90), '^WITH (\w+) AS \( ?', 'WITH \1 AS ('), '|', '/'),
			s.calls, round(s.rows::numeric / greatest(s.calls, 1), 1), round((s.total_exec_time / s.calls)::numeric, 2),
			round((s.total_exec_time * 1000 / greatest(s.rows, 1))::numeric, 1),
			round((s.shared_blks_hit + s.shared_blks_read)::numeric / s.calls),
			round(s.wal_bytes / greatest(s.rows, 1)), round((s.total_exec_time / 1000)::numeric, 2))
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		WHERE d.datname IN ('bench', 'bench_sql') AND s.calls >= 10 AND s.query NOT LIKE '%pg_stat_wal%'
			AND s.query NOT LIKE '%notify_worker_status%'
		ORDER BY s.total_exec_time DESC LIMIT 12"
	echo
	echo "(The SQL procedure's COMMITs and the worker's are not statements; their cost is in the drain times above.)"
	# The plan of the worker's slowest statement (auto_explain, calls over 15 ms).
	slow=$(q "SELECT left(regexp_replace(s.query, '\s+', ' ', 'g'), 40) FROM pg_stat_statements s
		JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'bench' AND s.calls >= 10
		ORDER BY s.mean_exec_time DESC LIMIT 1")
	echo
	echo "Plan of one slow call of the worker's statement with the highest mean time (\"$slow ...\"):"
	awk -v key="$slow" 'index($0, "Query Text: " key) { if (on) exit; on = 1 }
		on && /^20[0-9][0-9]-/ { exit } on { print "    " $0 }' "$WORK/server.log" | head -40
fi

if grep -qE 'PANIC|FATAL|ERROR' "$WORK/server.log"; then
	say "server log errors (first 20)"
	grep -E 'PANIC|FATAL|ERROR' "$WORK/server.log" | head -20
fi

# ---- summary ----
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v m="$1" -v c="$2" '$1 == m && $2 ~ /^[0-9]+$/ && $2 > 0 && $c != "-" { print $c }' "$RESULTS"; }
range() { col "$1" 4 | sort -g | awk '{ a[NR] = $1 } END { if (NR) printf "%.0f–%.0f", a[1], a[NR] }'; }
per1000() { awk -F'\t' -v m="$1" -v c="$2" -v n="$ROWS" '$1 == m && $2 ~ /^[0-9]+$/ && $2 > 0 && $c != "-" { printf "%.4f\n", $c * 1000 / n }' "$RESULTS" | median; }
walper() { awk -F'\t' -v m="$1" -v n="$ROWS" '$1 == m && $2 ~ /^[0-9]+$/ && $2 > 0 { printf "%.0f\n", $7 / n }' "$RESULTS" | median; }
pratio() {
	awk -F'\t' '$2 ~ /^[0-9]+$/ && $2 > 0 { r[$1, $2] = $4; rounds[$2] = 1 }
		END { for (k in rounds) if (r["sql", k] > 0) printf "%.3f\n", r["notify", k] / r["sql", k] }' "$RESULTS" | median
}
say "results"
echo
echo "$ROWS rows, batches of $BATCH, median of $ROUNDS rounds (min–max); notify.sandbox = on; default durability."
echo "CPU: seconds per 1,000 rows, all the cluster's processes (of which the worker).  $(nproc) CPUs shared with other"
echo "work; load average at the end: $LOAD_END."
echo
echo "| drain | rows/s | CPU s / 1000 rows | of which worker | WAL bytes / row |"
echo "|---|---:|---:|---:|---:|"
echo "| notify worker (sandbox) | $(col notify 4 | median | xargs printf '%.0f') ($(range notify)) | $(per1000 notify 5) | $(per1000 notify 6) | $(walper notify) |"
echo "| plain SQL, PL/pgSQL loop, COMMIT per batch | $(col sql 4 | median | xargs printf '%.0f') ($(range sql)) | $(per1000 sql 5) | - | $(walper sql) |"
echo
echo "notify / SQL (median of per-round ratios of rows/s): $(pratio | xargs printf '%.2f') (target >= 0.5)"
echo
echo "Per-run results (drain, round, seconds, rows/s, cluster CPU s, worker CPU s, WAL bytes, WAL syncs, WAL sync ms):"
sed 's/^/    /' "$RESULTS"

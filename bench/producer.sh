#!/usr/bin/env bash
# Producer overhead: what does notify_enqueue cost a business transaction?
#
# One scratch cluster, one invocation, pgbench.  Every transaction inserts a
# ticket and one outbox row; the variants differ only in how the outbox row
# is written.  In database "bench", which the delivery worker serves:
#
#   baseline       INSERT INTO plain_outbox (an ordinary table with
#                  notify_outbox's columns, identity PK, unique dedup_key)
#   notify         SELECT notify_enqueue(...), unique dedup key per transaction
#   pg_notify      baseline + SELECT pg_notify('notify', '') (the per-commit
#                  NOTIFY the design avoids; shown for reference)
#
# Diagnostics, in database "bench_idle": the same schema and extension, but
# the worker serves "bench", so nothing enqueued here is ever claimed; they
# show the producer's own cost without the worker's delivery work competing
# for the CPUs (commits still set the worker's latch):
#   notify_idle         notify_enqueue
#   notify_idle_notrig  notify_enqueue with the statement trigger off for the
#                       session (session_replication_role = replica)
#   direct_idle         INSERT INTO notify_outbox directly: the real table,
#                       its CHECKs, partial indexes and trigger, no PL/pgSQL
#
# Default durability (fsync on, synchronous_commit on, full_page_writes on).
# Each run starts from emptied tables and a CHECKPOINT; the variants are
# interleaved, in a rotated order, within every round.  The delivery worker
# runs with notify.sandbox = on (sends complete without connecting); its CPU
# time per run is reported.  Besides TPS, each run records the CPU the
# whole cluster used per transaction (from /proc; needs to run on the
# server's machine) and the WAL written per transaction: on a shared,
# noisy machine these vary far less than TPS.
#
# Usage: bench/producer.sh            (as root or as a user that owns the
#                                      PostgreSQL install; ~14 minutes)
# PREFS=1 loads 100,000 recipients with preferences and 100,000
# suppressions (bench/sql/preferences_data.sql) into both databases, and
# every transaction, on every side, writes for a random one of those
# recipients: notify_enqueue's preference and suppression checks then probe
# loaded indexes, and every 10th recipient is suppressed (its row is stored
# skipped, with an audit row).
# Environment: DURATION (s per run, 20), ROUNDS (3), CLIENTS ("1 16"),
#   VARIANTS (all six above), NOTIFY_REV=<commit> to measure that commit
#   instead of the working tree.
source "$(dirname "$0")/../scripts/common.sh"

DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-"1 16"}
VARIANTS=${VARIANTS:-"baseline notify pg_notify notify_idle notify_idle_notrig direct_idle"}
PREFS=${PREFS:-0}
read -r -a CLIENTS_A <<<"$CLIENTS"
read -r -a VARIANTS_A <<<"$VARIANTS"

install_packages
WORK=$(scratch_dir /tmp/notify-bench)
PGBENCH_PID=
PIDS=()
# At exit, bench_cleanup stops pgbench if one runs, then the cluster.
before_cleanup() {
	[ -n "$PGBENCH_PID" ] && kill "$PGBENCH_PID" 2>/dev/null || true
}
bench_traps

# A port nothing listens on (the server listens on its own socket only, but
# the port names the socket file and shows up in ps).
PORT=$(free_port)

# notify built from this tree (or NOTIFY_REV) into a private copy of the
# PostgreSQL install: nobody else's install changes what is measured.
private_install "$WORK"

# The databases are created before notify is loaded (bench_cluster), so
# the worker finds its database when it starts.
bench_cluster "$PORT" bench bench_idle <<CONF
# bench/producer.sh: defaults for durability (fsync, synchronous_commit,
# full_page_writes) and memory; only what the benchmark needs is set.
max_connections = 50
log_min_messages = warning
notify.database = 'bench'
notify.sandbox = on
CONF
q() { "${PSQL[@]}" -d "${DB:-bench}" -Atc "$1"; }

for db in bench bench_idle; do
	"${PSQL[@]}" -d "$db" -c "CREATE EXTENSION notify" -f "$NOTIFY_ROOT/bench/sql/producer_tables.sql"
	if [ "$PREFS" = 1 ]; then
		"${PSQL[@]}" -d "$db" -f "$NOTIFY_ROOT/bench/sql/preferences_data.sql"
	fi
done
if [ "$PREFS" = 1 ]; then
	echo "loaded into each database: $(DB=bench q "SELECT (SELECT count(*) FROM notify_preferences) || ' preferences, ' || (SELECT count(*) FROM notify_suppressions) || ' suppressions'")"
fi

echo "server: $(q 'SELECT version()')"
echo "settings: $(q "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings
	WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method',
	               'shared_buffers', 'max_wal_size', 'notify.sandbox', 'notify.database')")"

# ---- pgbench scripts ----
# Same ticket, same outbox values on every side: recipient, payload (the
# variables of the default template ticket.replied) and a dedup key unique
# per transaction (run number, client, per-client counter).
TICKET="INSERT INTO tickets (requester, subject, body) VALUES ('a@example.com', 'Printer on fire', 'It started smoking after the firmware update. Please advise; the office is evacuating and the fire brigade wants to know whether the toner is flammable.');"
DEDUP="'ticket_reply:' || :run || ':' || :client_id || ':' || :n"
PAYLOAD="jsonb_build_object('product_name', 'Acme', 'customer_name', 'Ada', 'ticket_id', :tid::bigint, 'ticket_subject', 'Printer on fire', 'agent_name', 'Sam', 'reply_body', 'Please unplug it and step away from the printer.', 'ticket_url', 'https://help.example.com/tickets/' || :tid)"
HEAD=$'\\set tid random(1, 1000000000)\n\\set r random(1, 100000)\n\\set n :n + 1\nBEGIN;\n'"$TICKET"
RCPT="'a@example.com'"
[ "$PREFS" = 1 ] && RCPT="'user' || :r || '@example' || (:r % 1000) || '.com'"
PLAIN_INSERT="INSERT INTO plain_outbox (dedup_key, template_key, recipient, payload) VALUES ($DEDUP, 'ticket.replied', $RCPT, $PAYLOAD);"
NOTIFY_CALL="SELECT notify_enqueue('ticket.replied', $RCPT, $PAYLOAD, dedup_key => $DEDUP);"
DIRECT_INSERT="INSERT INTO notify_outbox (dedup_key, template_key, recipient, payload) VALUES ($DEDUP, 'ticket.replied', $RCPT, $PAYLOAD);"

printf '%s\n%s\nCOMMIT;\n' "$HEAD" "$PLAIN_INSERT" >"$WORK/baseline.sql"
printf '%s\n%s\nCOMMIT;\n' "$HEAD" "$NOTIFY_CALL" >"$WORK/notify.sql"
printf '%s\n%s\n%s\nCOMMIT;\n' "$HEAD" "$PLAIN_INSERT" "SELECT pg_notify('notify', '');" >"$WORK/pg_notify.sql"
printf '%s\n%s\nCOMMIT;\n' "$HEAD" "$DIRECT_INSERT" >"$WORK/direct.sql"

# variant -> database, pgbench script, PGOPTIONS, table its rows land in
variant_db() { case $1 in *_idle*) echo bench_idle ;; *) echo bench ;; esac; }
variant_script() {
	case $1 in
		baseline) echo baseline ;;
		pg_notify) echo pg_notify ;;
		notify | notify_idle | notify_idle_notrig) echo notify ;;
		direct_idle) echo direct ;;
		*) echo "unknown variant $1" >&2; exit 1 ;;
	esac
}
variant_options() { case $1 in *_notrig) echo "-c session_replication_role=replica" ;; *) echo "" ;; esac; }
variant_table() { case $1 in baseline | pg_notify) echo plain_outbox ;; *) echo notify_outbox ;; esac; }
for v in "${VARIANTS_A[@]}"; do variant_script "$v" >/dev/null; done

# One pgbench run of a variant; its output lands in $WORK/pgbench.out.
pgbench_run() {
	local variant=$1 clients=$2 duration=$3 run=$4 jobs
	jobs=$((clients < 2 ? clients : 2))
	PGOPTIONS=$(variant_options "$variant") "$PG_BIN/pgbench" -n -M prepared \
		-c "$clients" -j "$jobs" -T "$duration" -D run="$run" -D n=0 \
		-f "$WORK/$(variant_script "$variant").sql" "$(variant_db "$variant")" >"$WORK/pgbench.out" 2>&1 &
	PGBENCH_PID=$!
	if ! wait "$PGBENCH_PID"; then
		PGBENCH_PID=
		cat "$WORK/pgbench.out" >&2
		echo "pgbench failed ($variant, $clients clients)" >&2
		exit 1
	fi
	PGBENCH_PID=
}

# CPU seconds (user + system) the delivery worker has used so far; "-" when
# no worker runs.
worker_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'notify worker' LIMIT 1"; }
worker_cpu() {
	local pid=$1
	[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || { echo -; return; }
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$pid/stat"
}

# CPU ticks used by the whole cluster so far: the postmaster, its children
# that exited (reaped into the postmaster's cutime/cstime) and the live ones.
# Per transaction this is robust against other tenants of the machine,
# which TPS is not.  pgbench's own CPU is not included.
cluster_ticks() {
	local pm t p
	pm=$(head -1 "$DATA/postmaster.pid")
	t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pm/stat")
	for p in $(pgrep -P "$pm"); do
		t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# Rows the worker has still to claim or finish (due pending + sending).
backlog() { q "SELECT count(*) FROM notify_outbox WHERE status = 'sending' OR (status = 'pending' AND next_attempt_at <= now())"; }

# Empty every table a run writes to, then checkpoint: each run starts alike.
reset_tables() {
	local i db
	# Let the worker finish what it claimed before its rows disappear.
	for i in $(seq 1 40); do
		[ "$(q "SELECT count(*) FROM notify_outbox WHERE status = 'sending'")" = 0 ] && break
		sleep 0.25
	done
	for db in bench bench_idle; do
		DB=$db q "DO \$\$ BEGIN
			EXECUTE 'TRUNCATE tickets, plain_outbox, notify_outbox'
				|| CASE WHEN to_regclass('notify_attempts') IS NULL THEN '' ELSE ', notify_attempts' END;
		END \$\$" >/dev/null
		DB=$db q "VACUUM ANALYZE tickets, plain_outbox, notify_outbox" >/dev/null
	done
	q "CHECKPOINT" >/dev/null
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
run_no=0

# One measured run; appends to $RESULTS: variant clients round tps txns rows
# worker_cpu backlog_at_end worker_restarted.
run_one() {
	local variant=$1 clients=$2 round=$3 out tps txns rows pid cpu0 cpu1 wcpu bl restarted=no
	local lsn0 t0 t1 wal scpu st
	run_no=$((run_no + 1))
	reset_tables
	pid=$(worker_pid)
	lsn0=$(q "SELECT pg_current_wal_lsn()")
	cpu0=$(worker_cpu "$pid")
	t0=$(cluster_ticks)
	pgbench_run "$variant" "$clients" "$DURATION" "$run_no"
	sleep 0.5	# let the postmaster reap pgbench's backends
	t1=$(cluster_ticks)
	cpu1=$(worker_cpu "$pid")
	out=$(cat "$WORK/pgbench.out")
	bl=$(backlog)
	[ "$(worker_pid)" = "$pid" ] || restarted=yes
	if [ "$cpu0" = - ] || [ "$cpu1" = - ]; then wcpu=-; else wcpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }'); fi
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*$/\1/p' <<<"$out")
	if [ -z "$tps" ] || grep -q '^number of failed transactions: [1-9]' <<<"$out"; then
		echo "$out" >&2
		echo "pgbench reported failures or no tps in $variant" >&2
		exit 1
	fi
	wal=$(q "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0') / $txns)")
	scpu=$(awk -v t="$((t1 - t0))" -v n="$txns" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
	rows=$(DB=$(variant_db "$variant") q "SELECT count(*) FROM $(variant_table "$variant")")
	# where the worker got with the rows of this run (bench only)
	st=
	if [ "$(variant_db "$variant")" = bench ] && [ "$(variant_table "$variant")" = notify_outbox ]; then
		st="  status: $(q "SELECT string_agg(status || '=' || n, ' ' ORDER BY status) FROM (SELECT status, count(*) AS n FROM notify_outbox GROUP BY status) s")"
	fi
	if [ "$rows" != "$txns" ]; then
		echo "WARNING: $variant: $txns transactions but $rows outbox rows (dedup hits?)" >&2
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$clients" "$round" "$tps" "$txns" "$rows" \
		"$wcpu" "$bl" "$restarted" "$scpu" "$wal" >>"$RESULTS"
	printf '  round %s  %2s clients  %-19s %7.1f tps  server CPU %4s us/txn  WAL %4s B/txn  rows=%s/%s  worker cpu=%ss  backlog=%s%s\n' \
		"$round" "$clients" "$variant" "$tps" "$scpu" "$wal" "$rows" "$txns" "$wcpu" "$bl" \
		"$([ $restarted = yes ] && echo '  (worker restarted)')$st"
}

say "warm-up (3 s per variant, not recorded)"
for v in "${VARIANTS_A[@]}"; do
	reset_tables
	pgbench_run "$v" 2 3 0
done

say "measuring: ${#VARIANTS_A[@]} variants x clients {$CLIENTS} x $ROUNDS rounds x ${DURATION}s"
nv=${#VARIANTS_A[@]}
for round in $(seq 1 "$ROUNDS"); do
	for clients in "${CLIENTS_A[@]}"; do
		# rotate the order every round so no variant always runs first
		for i in $(seq 0 $((nv - 1))); do
			run_one "${VARIANTS_A[$(((i + round - 1) % nv))]}" "$clients" "$round"
		done
	done
done

if grep -qE 'PANIC|FATAL|ERROR' "$WORK/server.log"; then
	say "server log errors (first 20)"
	grep -E 'PANIC|FATAL|ERROR' "$WORK/server.log" | head -20
fi

# ---- summary ----
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
cell() { awk -F'\t' -v v="$1" -v c="$2" -v col="$3" '$1 == v && $2 == c && $col != "-" { print $col }' "$RESULTS" | median; }
range() { awk -F'\t' -v v="$1" -v c="$2" '$1 == v && $2 == c { print $4 }' "$RESULTS" | sort -g |
	awk '{ a[NR] = $1 } END { if (NR) printf "%.0f–%.0f", a[1], a[NR] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else print "-" }'; }
# median over rounds of (variant TPS / baseline TPS in the same round)
round_ratio() { awk -F'\t' -v v="$1" -v c="$2" '$2 == c && $1 == "baseline" { b[$3] = $4 } $2 == c && $1 == v { t[$3] = $4 }
	END { for (r in t) if (b[r] > 0) print t[r] / b[r] }' "$RESULTS" | median | awk '{ if ($1 == "-") print "-"; else printf "%.2f", $1 }'; }
fmt0() { awk -v a="$1" 'BEGIN { if (a == "-") print "-"; else printf "%.0f", a }'; }

say "results"
echo
echo "Median TPS of $ROUNDS runs of $DURATION s (min–max of the runs); ratio = median variant TPS / median baseline TPS at the same client count;"
echo "per round = median over rounds of variant / baseline within the same round (the runs closest in time)."
echo "Default durability: fsync = on, synchronous_commit = on, full_page_writes = on; pgbench -M prepared."
echo
header="| variant |"
sep="|---|"
for c in "${CLIENTS_A[@]}"; do
	header+=" TPS, $c client$([ "$c" = 1 ] || echo s) | ratio | per round |"
	sep+="---:|---:|---:|"
done
echo "$header"
echo "$sep"
for v in "${VARIANTS_A[@]}"; do
	line="| $v |"
	for c in "${CLIENTS_A[@]}"; do
		m=$(cell "$v" "$c" 4)
		line+=" $(fmt0 "$m") ($(range "$v" "$c")) | $(ratio "$m" "$(cell baseline "$c" 4)") | $(round_ratio "$v" "$c") |"
	done
	echo "$line"
done
echo
echo "Server CPU (all of the cluster's processes, pgbench excluded) and WAL per transaction, median per run; ratio = baseline CPU / variant CPU, the TPS ratio a CPU-bound server would show."
echo
header="| variant |"
sep="|---|"
for c in "${CLIENTS_A[@]}"; do
	header+=" CPU us/txn, $c | ratio | WAL B/txn, $c |"
	sep+="---:|---:|---:|"
done
echo "$header"
echo "$sep"
for v in "${VARIANTS_A[@]}"; do
	line="| $v |"
	for c in "${CLIENTS_A[@]}"; do
		m=$(cell "$v" "$c" 10)
		line+=" $(fmt0 "$m") | $(ratio "$(cell baseline "$c" 10)" "$m") | $(fmt0 "$(cell "$v" "$c" 11)") |"
	done
	echo "$line"
done
echo
echo "Delivery worker (notify.sandbox = on), median per run: CPU seconds it used during the $DURATION s run, and rows still due or sending when pgbench stopped."
echo
header="| variant |"
sep="|---|"
for c in "${CLIENTS_A[@]}"; do
	header+=" worker CPU s, $c | backlog, $c |"
	sep+="---:|---:|"
done
echo "$header"
echo "$sep"
for v in "${VARIANTS_A[@]}"; do
	line="| $v |"
	for c in "${CLIENTS_A[@]}"; do
		line+=" $(cell "$v" "$c" 7) | $(fmt0 "$(cell "$v" "$c" 8)") |"
	done
	echo "$line"
done
if awk -F'\t' '$9 == "yes"' "$RESULTS" | grep -q .; then
	echo
	echo "Note: the delivery worker restarted during some runs (see the per-run lines above)."
fi
echo
echo "Per-run results (variant, clients, round, tps, transactions, outbox rows, worker CPU s, backlog, worker restarted, server CPU us/txn, WAL B/txn):"
sed 's/^/    /' "$RESULTS"

#!/usr/bin/env bash
# Enqueue with preferences and suppressions: what does notify_decide() cost?
#
# One scratch cluster, database "bench", loaded with 100,000 recipients
# that have preferences (about 130,000 notify_preferences rows: marketing
# in or out for all, product out for every 5th, a tenant-scoped marketing
# choice for every 10th) and 100,000 suppressions (90,000 other addresses,
# and every 10th recipient).  Then:
#
# 1. Cost per call, in one backend: the same query over 100,000 random
#    recipients with and without notify_decide(), median of 5 runs each,
#    the difference divided by the number of calls:
#      SELECT count(notify_decide(r, 'marketing', 'email')) FROM <100,000 random r>
#      SELECT count(r)                                     FROM <the same>
#    for recipients that have preferences, recipients that have none (one
#    more probe: the channel), suppressed addresses, and a mandatory
#    category (security: no preference probe).  CPU time of the backend
#    (/proc/self/schedstat) is the figure to read; wall time is shown too.
#
# 2. Cost per transaction: a procedure commits CALLS/10 one-row write
#    transactions with and without the call in the INSERT, CPU time of the
#    backend (first use of the tables in each transaction included, no
#    network, synchronous_commit off), 5 rounds, median.
#
# 3. pgbench: a business transaction that inserts a ticket and an outbox
#    row (an ordinary table with notify_outbox's columns, as in
#    bench/producer.sh), for a random one of the 100,000 recipients:
#      baseline       INSERT ticket; INSERT outbox row
#      decide         INSERT ticket; SELECT notify_decide(...); INSERT outbox row
#      decide_inline  INSERT ticket; INSERT outbox row with status
#                     CASE WHEN notify_decide(...) IS NULL THEN 'pending' ELSE 'skipped' END
#    decide is the shape the issue asks for (one more statement, so one more
#    round trip); decide_inline is the shape notify_enqueue has (the
#    call inside a statement that runs anyway).  1 and 16 clients, the
#    variants interleaved in a rotated order, median of ROUNDS runs.
#    Besides TPS, the CPU the whole cluster used per transaction (from
#    /proc, so run it on the server's machine): on a shared, noisy machine
#    it varies far less than TPS.
#
# Default durability (fsync, synchronous_commit, full_page_writes on).  The
# delivery worker serves another database: nothing here is delivered.
#
# Usage: bench/preferences.sh     (as root or as the PostgreSQL install's owner; ~10 minutes)
# Environment: DURATION (s per pgbench run, 20), ROUNDS (3), CLIENTS ("1 16"),
#   CALLS (notify_decide calls per timed query, 100000), NOTIFY_REV=<commit>
#   to measure that commit instead of the working tree.
source "$(dirname "$0")/../scripts/common.sh"

DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-"1 16"}
CALLS=${CALLS:-100000}
VARIANTS=(baseline decide decide_inline)
read -r -a CLIENTS_A <<<"$CLIENTS"

install_packages
WORK=$(scratch_dir /tmp/notify-bench-preferences)
PGBENCH_PID=
PIDS=()
# At exit, bench_cleanup stops pgbench if one runs, then the cluster.
before_cleanup() {
	[ -n "$PGBENCH_PID" ] && kill "$PGBENCH_PID" 2>/dev/null || true
}
bench_traps

PORT=$(free_port)
private_install "$WORK"

bench_cluster "$PORT" <<CONF
# bench/preferences.sh: default durability and memory
max_connections = 50
log_min_messages = warning
# the library must be preloaded (bench_cluster does); its worker serves
# "postgres", where the extension is not installed, so it stays idle
notify.database = 'postgres'
CONF
q() { "${PSQL[@]}" -d bench -Atc "$1"; }
"${PSQL[@]}" -d postgres -c "CREATE DATABASE bench"

say "loading 100,000 recipients with preferences and 100,000 suppressions"
"${PSQL[@]}" -d bench -c "CREATE EXTENSION notify" -f "$NOTIFY_ROOT/bench/sql/preferences_data.sql"
"${PSQL[@]}" -d bench -f "$NOTIFY_ROOT/bench/sql/producer_tables.sql"
"${PSQL[@]}" -d bench <<'SQL'

-- CPU microseconds per transaction of n transactions, each inserting one
-- outbox-like row for a random recipient, with or without the decision:
-- everything a call costs the first time in a transaction (locks, opening
-- relations), without the network and the client.  synchronous_commit is
-- off for the session so that waiting for the WAL flush is not measured.
CREATE TABLE xact_rows (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, recipient text, reason text);
CREATE PROCEDURE xact_us(with_decide boolean, n int, INOUT us numeric DEFAULT NULL) LANGUAGE plpgsql AS $$
DECLARE
	c0 numeric;
	a text;
BEGIN
	SET LOCAL synchronous_commit = off;
	c0 := split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::numeric;
	FOR i IN 1..n LOOP
		a := rcpt((random() * 99999)::int + 1);
		IF with_decide THEN
			INSERT INTO xact_rows (recipient, reason) VALUES (a, notify_decide(a, 'marketing', 'email'));
		ELSE
			INSERT INTO xact_rows (recipient, reason) VALUES (a, NULL);
		END IF;
		COMMIT;
		SET LOCAL synchronous_commit = off;
	END LOOP;
	us := round((split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::numeric - c0) / 1e3 / n, 2);
END;
$$;

-- milliseconds of one query: wall clock, and CPU time of this backend
-- (/proc/self/schedstat: time on a CPU, in ns), which other load on the
-- machine disturbs far less
CREATE FUNCTION timed(query text, OUT wall_ms numeric, OUT cpu_ms numeric) LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	c0 numeric := split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::numeric;
BEGIN
	EXECUTE query;
	cpu_ms := round((split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::numeric - c0) / 1e6, 2);
	wall_ms := round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 2);
END;
$$;
SQL
echo "server: $(q 'SELECT version()')"
echo "rows: $(q "SELECT format('%s preferences for %s recipients, %s suppressions',
	(SELECT count(*) FROM notify_preferences), (SELECT count(DISTINCT recipient) FROM notify_preferences),
	(SELECT count(*) FROM notify_suppressions))")"
echo "sizes: $(q "SELECT format('preferences %s + indexes %s, suppressions %s + index %s',
	pg_size_pretty(pg_relation_size('notify_preferences')), pg_size_pretty(pg_indexes_size('notify_preferences')),
	pg_size_pretty(pg_relation_size('notify_suppressions')), pg_size_pretty(pg_indexes_size('notify_suppressions')))")"

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# ---- 1. cost per call ----
say "cost per call: $CALLS calls per query, median of 5"
# kind -> SQL expression of a recipient from a random number r in [0, 1)
recipient_expr() {
	case $1 in
		known | mandatory) echo "rcpt((r * 99999)::int + 1)" ;;
		unknown) echo "'new' || (r * 99999)::int || '@example' || ((r * 99999)::int % 1000) || '.com'" ;;
		suppressed) echo "'bounced' || ((r * 89999)::int + 1) || '@example' || (((r * 89999)::int + 1) % 1000) || '.org'" ;;
	esac
}
PERCALL=$WORK/percall.tsv
: >"$PERCALL"
printf '%-11s %14s %14s %11s %14s %14s %11s\n' kind "CPU ms with" "CPU ms w/o" "CPU us/call" "wall ms with" "wall ms w/o" "wall us/call"
for kind in known unknown suppressed mandatory; do
	cat=marketing
	[ $kind = mandatory ] && cat=security
	expr=$(recipient_expr $kind)
	from="FROM (SELECT random() AS r FROM generate_series(1, $CALLS)) g"
	with="SELECT count(notify_decide($expr, '$cat', 'email')) $from"
	without="SELECT count($expr) $from"
	# one session per kind: the first call warms the caches and the plans
	"${PSQL[@]}" -d bench -At -F $'\t' >>"$PERCALL" <<SQL2
SELECT * FROM timed(\$q\$$with\$q\$) \\g /dev/null
SELECT '$kind', a.wall_ms, b.wall_ms, a.cpu_ms, b.cpu_ms
FROM generate_series(1, 5) i, LATERAL timed(\$q\$$with\$q\$ || ' -- ' || i) a, LATERAL timed(\$q\$$without\$q\$ || ' -- ' || i) b;
SQL2
	col() { awk -F'\t' -v k=$kind -v c="$1" '$1 == k { print $c }' "$PERCALL" | median; }
	wa=$(col 2); wb=$(col 3); ca=$(col 4); cb=$(col 5)
	printf '%-11s %14.1f %14.1f %11.2f %14.1f %14.1f %11.2f\n' "$kind" "$ca" "$cb" \
		"$(awk -v a="$ca" -v b="$cb" -v n="$CALLS" 'BEGIN { print (a - b) * 1000 / n }')" "$wa" "$wb" \
		"$(awk -v a="$wa" -v b="$wb" -v n="$CALLS" 'BEGIN { print (a - b) * 1000 / n }')"
done
say "cost per transaction: $((CALLS / 10)) write transactions, with and without the call, 5 rounds"
XACT=$WORK/xact.tsv
: >"$XACT"
for i in 1 2 3 4 5; do
	w=$(q "CALL xact_us(true, $((CALLS / 10)))")
	o=$(q "CALL xact_us(false, $((CALLS / 10)))")
	printf '%s\t%s\n' "$w" "$o" >>"$XACT"
	printf '  round %s: %8.2f us/txn with, %8.2f without, %6.2f added\n' "$i" "$w" "$o" "$(awk -v a="$w" -v b="$o" 'BEGIN { print a - b }')"
done
xw=$(cut -f1 "$XACT" | median); xo=$(cut -f2 "$XACT" | median)
printf 'median: %.2f us/txn with, %.2f without: notify_decide adds %.2f us of CPU to a transaction\n' "$xw" "$xo" \
	"$(awk -v a="$xw" -v b="$xo" 'BEGIN { print a - b }')"
q "TRUNCATE xact_rows" >/dev/null

echo "what each call returned (one run of 'known'):"
q "SELECT coalesce(d, 'send') AS decision, count(*) FROM (SELECT notify_decide($(recipient_expr known), 'marketing', 'email') AS d
	FROM (SELECT random() AS r FROM generate_series(1, $CALLS)) g) x GROUP BY 1 ORDER BY 1" | sed 's/^/    /'
# ---- 3. pgbench ----
TICKET="INSERT INTO tickets (requester, subject, body) VALUES (rcpt(:i), 'Printer on fire', 'It started smoking after the firmware update. Please advise; the office is evacuating and the fire brigade wants to know whether the toner is flammable.');"
PAYLOAD="jsonb_build_object('ticket_id', :tid::bigint, 'subject', 'Re: Printer on fire')"
HEAD=$'\\set tid random(1, 1000000000)\n\\set i random(1, 100000)\nBEGIN;\n'"$TICKET"
INSERT_PLAIN="INSERT INTO plain_outbox (template_key, category, recipient, payload) VALUES ('ticket.replied', 'marketing', rcpt(:i), $PAYLOAD);"
DECIDE="SELECT notify_decide(rcpt(:i), 'marketing', 'email');"
INSERT_INLINE="INSERT INTO plain_outbox (template_key, category, recipient, payload, status) VALUES ('ticket.replied', 'marketing', rcpt(:i), $PAYLOAD, CASE WHEN notify_decide(rcpt(:i), 'marketing', 'email') IS NULL THEN 'pending' ELSE 'skipped' END);"
printf '%s\n%s\nCOMMIT;\n' "$HEAD" "$INSERT_PLAIN" >"$WORK/baseline.sql"
printf '%s\n%s\n%s\nCOMMIT;\n' "$HEAD" "$DECIDE" "$INSERT_PLAIN" >"$WORK/decide.sql"
printf '%s\n%s\nCOMMIT;\n' "$HEAD" "$INSERT_INLINE" >"$WORK/decide_inline.sql"

pgbench_run() {
	local variant=$1 clients=$2 duration=$3 jobs
	jobs=$((clients < 2 ? clients : 2))
	"$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$jobs" -T "$duration" \
		-f "$WORK/$variant.sql" bench >"$WORK/pgbench.out" 2>&1 &
	PGBENCH_PID=$!
	if ! wait "$PGBENCH_PID"; then
		PGBENCH_PID=
		cat "$WORK/pgbench.out" >&2
		echo "pgbench failed ($variant, $clients clients)" >&2
		exit 1
	fi
	PGBENCH_PID=
}

# CPU ticks used by the whole cluster so far (postmaster, reaped and live children)
cluster_ticks() {
	local pm t p
	pm=$(head -1 "$DATA/postmaster.pid")
	t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pm/stat")
	for p in $(pgrep -P "$pm"); do
		t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

reset_tables() {
	q "TRUNCATE tickets, plain_outbox" >/dev/null
	q "VACUUM ANALYZE tickets, plain_outbox" >/dev/null
	q "CHECKPOINT" >/dev/null
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
run_one() {
	local variant=$1 clients=$2 round=$3 out tps txns t0 t1 scpu skipped
	reset_tables
	t0=$(cluster_ticks)
	pgbench_run "$variant" "$clients" "$DURATION"
	sleep 0.5
	t1=$(cluster_ticks)
	out=$(cat "$WORK/pgbench.out")
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*$/\1/p' <<<"$out")
	if [ -z "$tps" ] || grep -q '^number of failed transactions: [1-9]' <<<"$out"; then
		echo "$out" >&2
		echo "pgbench reported failures or no tps in $variant" >&2
		exit 1
	fi
	scpu=$(awk -v t="$((t1 - t0))" -v n="$txns" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
	skipped=$(q "SELECT round(100.0 * count(*) FILTER (WHERE status = 'skipped') / greatest(count(*), 1)) FROM plain_outbox")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$clients" "$round" "$tps" "$txns" "$scpu" "$skipped" >>"$RESULTS"
	printf '  round %s  %2s clients  %-14s %7.1f tps  server CPU %4s us/txn  skipped %s%%\n' \
		"$round" "$clients" "$variant" "$tps" "$scpu" "$skipped"
}

say "warm-up (3 s per variant, not recorded)"
for v in "${VARIANTS[@]}"; do
	reset_tables
	pgbench_run "$v" 2 3
done

say "pgbench: ${#VARIANTS[@]} variants x clients {$CLIENTS} x $ROUNDS rounds x ${DURATION}s"
nv=${#VARIANTS[@]}
for round in $(seq 1 "$ROUNDS"); do
	for clients in "${CLIENTS_A[@]}"; do
		for i in $(seq 0 $((nv - 1))); do
			run_one "${VARIANTS[$(((i + round - 1) % nv))]}" "$clients" "$round"
		done
	done
done

if grep -qE 'PANIC|FATAL|ERROR' "$WORK/server.log"; then
	say "server log errors (first 20)"
	grep -E 'PANIC|FATAL|ERROR' "$WORK/server.log" | head -20
fi

cell() { awk -F'\t' -v v="$1" -v c="$2" -v col="$3" '$1 == v && $2 == c { print $col }' "$RESULTS" | median; }
range() { awk -F'\t' -v v="$1" -v c="$2" '$1 == v && $2 == c { print $4 }' "$RESULTS" | sort -g |
	awk '{ a[NR] = $1 } END { if (NR) printf "%.0f–%.0f", a[1], a[NR] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

say "results"
echo
echo "Median of $ROUNDS runs of $DURATION s (min–max TPS of the runs); TPS ratio = variant / baseline; CPU ratio = baseline CPU / variant CPU."
echo
header="| variant |"
sep="|---|"
for c in "${CLIENTS_A[@]}"; do
	header+=" TPS, $c client$([ "$c" = 1 ] || echo s) | ratio | CPU us/txn | ratio |"
	sep+="---:|---:|---:|---:|"
done
echo "$header"
echo "$sep"
for v in "${VARIANTS[@]}"; do
	line="| $v |"
	for c in "${CLIENTS_A[@]}"; do
		t=$(cell "$v" "$c" 4)
		u=$(cell "$v" "$c" 6)
		line+=" $(printf '%.0f' "$t") ($(range "$v" "$c")) | $(ratio "$t" "$(cell baseline "$c" 4)") | $(printf '%.0f' "$u") | $(ratio "$(cell baseline "$c" 6)" "$u") |"
	done
	echo "$line"
done
echo
echo "Per-run results (variant, clients, round, tps, transactions, server CPU us/txn, % skipped):"
sed 's/^/    /' "$RESULTS"

#!/usr/bin/env bash
# Producer cost in CPU instructions: how many instructions does a business
# transaction that calls notify_enqueue execute, against the same
# transaction with a plain INSERT into an ordinary table?
#
# The question of bench/producer.sh, asked of the CPU work alone.  On this
# 2-vCPU VM pgbench's TPS moves by 10-20 % from one run to the next with
# the other tenants' load, while an instruction count is the same to
# within 1 % every time.  Instructions are not time (no cache misses, no
# WAL flush waits, no lock waits), so this complements the TPS benchmark
# and does not replace it; at 16 clients the TPS ratios of bench/producer.sh
# have tracked these ratios within a few hundredths.
#
# One scratch cluster (a private copy of the PostgreSQL install with this
# tree's notify, or NOTIFY_REV=<commit>), database "bench" with the tables
# of bench/producer.sh and, with PREFS=1 (the default), its 100,000
# preferences and 100,000 suppressions.  Then, with the server stopped, a
# single-user backend (postgres --single) runs under valgrind's callgrind,
# reading from stdin: PREPAREd statements for the ticket INSERT and the
# variant's outbox write, then N transactions of BEGIN, EXECUTE, EXECUTE,
# COMMIT, with random recipients out of the 100,000 and unique dedup keys.
# It runs N and 2N transactions; the difference divided by N is the
# instructions per transaction, with start-up and cache warm-up cancelled
# out.  Variants (as in bench/producer.sh):
#
#   baseline   INSERT INTO plain_outbox (notify_outbox's columns, identity
#              PK, unique dedup_key, nothing else)
#   direct     INSERT INTO notify_outbox
#   notify     SELECT notify_enqueue(...)
#
# Any ERROR in the backend's output fails the run (an aborted transaction
# executes fewer instructions).
#
# Usage: bench/producer_instructions.sh   (as root; ~3 minutes)
# Environment: N (500), ROUNDS (2), PREFS (1), VARIANTS ("baseline direct
#   notify"), NOTIFY_REV, KEEP=1 (keep the scratch directory with the
#   callgrind files, for callgrind_annotate).
source "$(dirname "$0")/../scripts/common.sh"

N=${N:-500}
ROUNDS=${ROUNDS:-2}
PREFS=${PREFS:-1}
VARIANTS=${VARIANTS:-"baseline direct notify"}

install_packages
if ! command -v valgrind >/dev/null; then
	[ "$(id -u)" -eq 0 ] || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
	apt-get install -y -q valgrind >/dev/null
fi
WORK=$(scratch_dir /tmp/notify-bench)
DATA=$WORK/data
SOCK=$WORK/sock

cleanup() {
	trap - EXIT INT TERM
	if [ -f "$DATA/postmaster.pid" ]; then
		as_pg pg_ctl stop -D "$DATA" -m immediate >/dev/null 2>&1 || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; cleanup; exit 130' INT TERM

private_install "$WORK"
PORT=$(free_port)
bench_cluster "$PORT" <<CONF
# bench/producer_instructions.sh
notify.database = 'postgres'
notify.sandbox = on
log_min_messages = warning
CONF
"${PSQL[@]}" -d postgres -c "CREATE DATABASE bench"
PSQL+=(-d bench)
"${PSQL[@]}" -c "CREATE EXTENSION notify" -f "$NOTIFY_ROOT/bench/sql/producer_tables.sql"
[ "$PREFS" = 1 ] && "${PSQL[@]}" -f "$NOTIFY_ROOT/bench/sql/preferences_data.sql"
"${PSQL[@]}" -c "CHECKPOINT"
as_pg pg_ctl stop -D "$DATA" -w >/dev/null

# The statements of bench/producer.sh, prepared once.
gen() {
	local variant=$1 n=$2 seed=$3
	python3 - "$variant" "$n" "$seed" <<'PY'
import random, sys
variant, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(seed)
payload = ("jsonb_build_object('product_name', 'Acme', 'customer_name', 'Ada', 'ticket_id', $3, "
           "'ticket_subject', 'Printer on fire', 'agent_name', 'Sam', 'reply_body', "
           "'Please unplug it and step away from the printer.', 'ticket_url', "
           "'https://help.example.com/tickets/' || $3)")
print("PREPARE t AS INSERT INTO tickets (requester, subject, body) VALUES ('a@example.com', "
      "'Printer on fire', 'It started smoking after the firmware update. Please advise; the office "
      "is evacuating and the fire brigade wants to know whether the toner is flammable.')")
if variant == "notify":
    print(f"PREPARE o(text, text, bigint) AS SELECT notify_enqueue('ticket.replied', $1, {payload}, dedup_key => $2)")
else:
    table = "plain_outbox" if variant == "baseline" else "notify_outbox"
    print(f"PREPARE o(text, text, bigint) AS INSERT INTO {table} (dedup_key, template_key, recipient, payload) "
          f"VALUES ($2, 'ticket.replied', $1, {payload})")
for i in range(n):
    r = random.randint(1, 100000)
    print("BEGIN")
    print("EXECUTE t")
    # dedup keys unique across variants too (a repeated key is a dedup hit)
    print(f"EXECUTE o('user{r}@example{r % 1000}.com', 'ticket_reply:{variant[0]}{seed}:{i}', {random.randint(1, 10**9)})")
    print("COMMIT")
PY
}

# Instructions of one single-user backend running n transactions.
instructions() {
	local variant=$1 n=$2 seed=$3
	local out=$WORK/cg.$variant.$n
	gen "$variant" "$n" "$seed" >"$WORK/in.sql"
	chmod 644 "$WORK/in.sql"
	as_pg valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$PG_BIN/postgres" --single -D "$DATA" bench <"$WORK/in.sql" >"$WORK/backend.log" 2>&1
	if grep -q 'ERROR\|FATAL' "$WORK/backend.log"; then
		grep -m5 'ERROR\|FATAL' "$WORK/backend.log" >&2
		echo "the backend reported errors ($variant)" >&2
		exit 1
	fi
	awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

say "instructions per transaction, N=$N and 2N transactions, PREFS=$PREFS"
printf '%-6s %-9s %12s\n' round variant per_txn
declare -A sum
for round in $(seq 1 "$ROUNDS"); do
	for v in $VARIANTS; do
		a=$(instructions "$v" "$N" $((round * 100 + 1)))
		b=$(instructions "$v" $((2 * N)) $((round * 100 + 2)))
		per=$(((b - a) / N))
		sum[$v]=$(( ${sum[$v]:-0} + per ))
		printf '%-6s %-9s %12d\n' "$round" "$v" "$per"
	done
done
base=$(( ${sum[baseline]:-0} / ROUNDS ))
for v in $VARIANTS; do
	mean=$(( ${sum[$v]} / ROUNDS ))
	if [ "$base" -gt 0 ]; then
		printf 'mean %-9s %12d  baseline/this = %s\n' "$v" "$mean" "$(awk -v b="$base" -v m="$mean" 'BEGIN { printf "%.3f", b / m }')"
	else
		printf 'mean %-9s %12d\n' "$v" "$mean"
	fi
done

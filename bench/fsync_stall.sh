#!/usr/bin/env bash
# Does a file that keeps growing stall fdatasync on this machine, without
# PostgreSQL, and does a small vm.dirty_background_bytes take that away?
#
# The question behind it: bench/purge.sh saw enqueues stall 300-360 ms
# every 30.7 s with no purge running (docs/benchmarks.md, "Purge under
# load").  An enqueue's COMMIT waits for a WAL fdatasync; in that
# benchmark the outbox grows all the time (its rows stay pending), and the
# kernel writes a file's dirty pages back once they are older than
# vm.dirty_expire_centisecs (30 s by default).
#
# Three variants in one run, DURATION seconds each (default 70: more than
# two 30.7 s periods):
#
#   alone      the probe alone: an 8 kB pwrite + fdatasync every 2 ms
#              into a 1 MB file (what a WAL flush does), in a fresh file
#              under DIR (default: /var/tmp, on the root file system)
#   growing    the probe, and beside it an appender writing zeros to a
#              second file at RATE MB/s (default 2, about what the
#              outbox's growth was) without ever syncing it
#   tuned      the same as growing, with vm.dirty_background_bytes set to
#              TUNED_BYTES (default 4 MB) for the variant; the kernel's
#              settings are restored when the variant ends (and at exit)
#
# Printed per variant: the probe's fdatasync count, p50, p99 and max in
# ms, and every stall over 50 ms with its time from the variant's start.
#
# Usage: bench/fsync_stall.sh    (as root for "tuned"; ~4 minutes; writes
#                                 about DURATION x RATE MB under DIR)
# Environment: DURATION (70), RATE (2), TUNED_BYTES (4194304), DIR
#   (/var/tmp), VARIANTS ("alone growing tuned").
set -euo pipefail

DURATION=${DURATION:-70}
RATE=${RATE:-2}
TUNED_BYTES=${TUNED_BYTES:-4194304}
DIR=${DIR:-/var/tmp}
VARIANTS=${VARIANTS:-"alone growing tuned"}

WORK=$(mktemp -d "$DIR/notify-fsync-stall.XXXXXX")
SAVED="$(cat /proc/sys/vm/dirty_background_bytes) $(cat /proc/sys/vm/dirty_background_ratio)"
APPENDER_PID=

restore() {
	local bytes ratio
	read -r bytes ratio <<<"$SAVED"
	# writing one of the pair zeroes the other: restore whichever was set
	if [ "$(cat /proc/sys/vm/dirty_background_bytes)" != "$bytes" ] ||
		[ "$(cat /proc/sys/vm/dirty_background_ratio)" != "$ratio" ]; then
		if [ "$bytes" != 0 ]; then echo "$bytes" >/proc/sys/vm/dirty_background_bytes
		else echo "$ratio" >/proc/sys/vm/dirty_background_ratio; fi
	fi
}
cleanup() {
	[ -n "$APPENDER_PID" ] && kill "$APPENDER_PID" 2>/dev/null || true
	[ "$(id -u)" -eq 0 ] && restore
	rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/probe.py" <<'PY'
import os, sys, time
dur, path = float(sys.argv[1]), sys.argv[2]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
buf = b"x" * 8192
os.pwrite(fd, buf * 128, 0)
os.fsync(fd)
lat, stalls, off = [], [], 0
t0 = time.monotonic()
while time.monotonic() - t0 < dur:
    s = time.monotonic()
    os.pwrite(fd, buf, off)
    os.fdatasync(fd)
    e = time.monotonic()
    off = (off + 8192) % (8192 * 128)
    lat.append(e - s)
    if e - s > 0.05:
        stalls.append("%.0f ms at %.1f s" % (1000 * (e - s), s - t0))
    time.sleep(0.002)
lat.sort()
q = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))]
print("  fdatasync: %d, p50 %.2f ms, p99 %.2f ms, max %.1f ms; stalls over 50 ms: %d" % (
    len(lat), q(0.5), q(0.99), 1000 * lat[-1], len(stalls)))
for st in stalls:
    print("    " + st)
PY
cat >"$WORK/appender.py" <<'PY'
import os, sys, time
path, rate = sys.argv[1], float(sys.argv[2]) * 1e6
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
buf = b"\0" * 8192
t0, written = time.monotonic(), 0
while True:
    os.write(fd, buf)
    written += len(buf)
    ahead = written / rate - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
PY

echo "file system: $(findmnt -no SOURCE,FSTYPE,OPTIONS -T "$DIR")"
echo "kernel: dirty_background_bytes/ratio $SAVED, dirty_expire_centisecs $(cat /proc/sys/vm/dirty_expire_centisecs), dirty_writeback_centisecs $(cat /proc/sys/vm/dirty_writeback_centisecs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
for v in $VARIANTS; do
	case $v in
		alone) echo "== alone: the probe, ${DURATION} s" ;;
		growing) echo "== growing: the probe beside a file growing at $RATE MB/s, kernel settings as they are" ;;
		tuned)
			[ "$(id -u)" -eq 0 ] || { echo "== tuned: needs root, skipped"; continue; }
			echo "$TUNED_BYTES" >/proc/sys/vm/dirty_background_bytes
			echo "== tuned: the same with vm.dirty_background_bytes = $TUNED_BYTES"
			;;
		*) echo "unknown variant $v" >&2; exit 1 ;;
	esac
	if [ "$v" != alone ]; then
		python3 "$WORK/appender.py" "$WORK/growing.dat" "$RATE" &
		APPENDER_PID=$!
	fi
	python3 "$WORK/probe.py" "$DURATION" "$WORK/probe.dat"
	if [ -n "$APPENDER_PID" ]; then
		kill "$APPENDER_PID"
		wait "$APPENDER_PID" 2>/dev/null || true
		APPENDER_PID=
	fi
	rm -f "$WORK/growing.dat" "$WORK/probe.dat"
	[ "$(id -u)" -eq 0 ] && restore
	sync
	sleep 5
done

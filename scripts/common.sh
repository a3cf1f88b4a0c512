# Shared by scripts/test.sh and scripts/demo.sh: install what is missing,
# build, install the extension.  Sourced, not run.
set -euo pipefail

NOTIFY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PACKAGES=(make gcc postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
          libcurl4-openssl-dev libcjson-dev libipc-run-perl libio-pty-perl
          python3-aiosmtpd prometheus-postgres-exporter)
# The system Python has aiosmtpd; a python3 earlier on PATH may not.
PYTHON=/usr/bin/python3

say() { printf '\n==> %s\n' "$*"; }

# Install the Debian packages that are missing (nothing when all are there).
install_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}" "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Packages must not start system services (a PostgreSQL cluster on 5432,
	# an exporter on 9187): the tests and the demo start their own.
	local policy=/usr/sbin/policy-rc.d own_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
		[ $own_policy = 1 ] && rm -f "$policy"
		return 1
	}
	[ $own_policy = 1 ] && rm -f "$policy"
	return 0
}

# Build with warnings as errors and install into the server's directories.
build_and_install() {
	say "building notify"
	export PG_CONFIG=$PG_BIN/pg_config
	make -C "$NOTIFY_ROOT" -s clean >/dev/null
	make -C "$NOTIFY_ROOT" -s COPT='-Wall -Wextra -Werror'
	make -C "$NOTIFY_ROOT" -s install >/dev/null
}

# Build notify and install it into a private copy of the PostgreSQL
# installation under $1/pg (PostgreSQL finds its files relative to its
# binaries), then point PG_BIN at that copy.  The build runs in a copy of
# the source under $1/src: the working tree as it is (tracked and untracked
# files, not ignored ones), or NOTIFY_REV=<commit> from git.  Runs in
# parallel (tests, benchmarks, other work trees) cannot change each
# other's notify, the system's stays as it is, and the tree gets no build
# products.
private_install() {
	local root=$1/pg src=$1/src
	mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
	rm -rf "$root/usr/lib/postgresql/$PG_MAJOR" "$root/usr/share/postgresql/$PG_MAJOR" "$src"
	cp -a "/usr/lib/postgresql/$PG_MAJOR" "$root/usr/lib/postgresql/"
	cp -a "/usr/share/postgresql/$PG_MAJOR" "$root/usr/share/postgresql/"
	mkdir -p "$src"
	if [ -n "${NOTIFY_REV:-}" ]; then
		git -C "$NOTIFY_ROOT" archive "$NOTIFY_REV" | tar -C "$src" -xf -
		say "notify: commit $(git -C "$NOTIFY_ROOT" rev-parse --short "$NOTIFY_REV")"
	elif git -C "$NOTIFY_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$NOTIFY_ROOT" && git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
			tar --null -T - -cf -) | tar -C "$src" -xf -
		say "notify: working tree of $(git -C "$NOTIFY_ROOT" describe --always --dirty)"
	else
		cp -a "$NOTIFY_ROOT/." "$src/"
	fi
	NOTIFY_ROOT=$src DESTDIR=$root build_and_install
	PG_BIN=$root/usr/lib/postgresql/$PG_MAJOR/bin
	[ "$(id -u)" -eq 0 ] && chmod -R a+rX "$1"
	return 0
}

# A TCP port nothing listens on (for scratch servers).
free_port() {
	local p
	for p in $(shuf -i 20000-60000 -n 100); do
		if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then echo "$p"; return; fi
	done
	echo "no free port found" >&2
	exit 1
}

# Run a command as the unprivileged user that owns scratch clusters
# (initdb refuses root).
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env PATH="$PG_BIN:$PATH" "$@"
	else
		env PATH="$PG_BIN:$PATH" "$@"
	fi
}

# Stop a process a script started: TERM, then KILL after five seconds.
stop_pid() {
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

# AS_USER: a prefix that runs a long-lived program as the cluster user
# with HOME=$1; setpriv execs, so $! of "${AS_USER[@]}" prog & is the
# program itself.
set_as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		AS_USER=(setpriv --reuid=postgres --regid=postgres --init-groups -- env HOME="$1")
	else
		AS_USER=(env HOME="$1")
	fi
}

# For benchmarks that start servers: at exit (or on INT/TERM), run the
# script's before_cleanup if it defines one, stop the processes listed in
# PIDS and the scratch cluster in $WORK/data, and remove $WORK.
bench_cleanup() {
	local pid
	trap - EXIT INT TERM
	if declare -F before_cleanup >/dev/null; then before_cleanup; fi
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	if [ -f "$WORK/data/postmaster.pid" ]; then
		as_pg pg_ctl stop -D "$WORK/data" -m immediate >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
bench_traps() {
	trap bench_cleanup EXIT
	trap 'echo "interrupted" >&2; exit 130' INT TERM
}

# A scratch directory owned by the cluster user, under a fixed parent so a
# rerun can stop what a killed run left behind.  Each run records its pid;
# directories of runs still alive (another run in parallel) are left alone.
scratch_dir() {
	local parent=$1 d owner
	mkdir -p "$parent"
	for d in "$parent"/*/; do
		[ -d "$d" ] || continue
		owner=$(cat "$d/.owner" 2>/dev/null || true)
		if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then
			continue
		fi
		# Stop clusters and servers the killed run left running.
		find "$d" -maxdepth 4 -name postmaster.pid 2>/dev/null | while read -r pidfile; do
			as_pg pg_ctl stop -m immediate -D "$(dirname "$pidfile")" >/dev/null 2>&1 || true
		done
		find "$d" -maxdepth 3 -name '*.pid' ! -name postmaster.pid 2>/dev/null | while read -r pidfile; do
			kill "$(cat "$pidfile")" 2>/dev/null || true
		done
		rm -rf "$d"
	done
	d=$(mktemp -d "$parent/run.XXXXXX")
	echo $$ >"$d/.owner"
	chmod 755 "$parent" "$d"
	[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$d"
	echo "$d"
}

# A benchmark's scratch cluster in $WORK/data, port $1, reachable only on
# the socket directory $WORK/sock, notify preloaded; the benchmark's own
# postgresql.conf lines (notify.database and what it measures under) come
# on stdin.  The databases named after the port are created before notify
# is loaded, so that a worker serving one of them finds it when it starts.
# Logs to $WORK/server.log; sets DATA, SOCK, PSQL (psql stopping at the
# first error) and POSTMASTER_PID; exports PGHOST, PGPORT and PGUSER.
bench_cluster() {
	local port=$1 db create=()
	shift
	DATA=$WORK/data
	SOCK=$WORK/sock
	mkdir -p "$SOCK"
	[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$SOCK"
	say "scratch cluster in $WORK (port $port)"
	as_pg initdb -D "$DATA" -U postgres -A trust -E UTF8 --no-locale >/dev/null
	{
		echo "# bench_cluster (scripts/common.sh)"
		echo "listen_addresses = ''"
		echo "port = $port"
		echo "unix_socket_directories = '$SOCK'"
		echo "shared_preload_libraries = 'notify'"
		cat
	} >>"$DATA/postgresql.conf"
	export PGHOST=$SOCK PGPORT=$port PGUSER=postgres
	PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1)
	if [ $# -gt 0 ]; then
		for db in "$@"; do create+=(-c "CREATE DATABASE $db"); done
		as_pg pg_ctl start -D "$DATA" -l "$WORK/server.log" -w -o "-c shared_preload_libraries=" >/dev/null
		"${PSQL[@]}" -d postgres "${create[@]}"
		as_pg pg_ctl stop -D "$DATA" -w >/dev/null
	fi
	as_pg pg_ctl start -D "$DATA" -l "$WORK/server.log" -w >/dev/null
	POSTMASTER_PID=$(head -1 "$DATA/postmaster.pid")
}

# Start test/servers/http_server.py for a benchmark: $1 = a name, the rest
# its options.  Runs as the cluster user (AS_USER, see set_as_user), is
# stopped at exit (PIDS), and sets ${name}_PID and ${name}_PORT.
start_http_server() {
	local name=$1 i
	shift
	"${AS_USER[@]}" "$PYTHON" "$NOTIFY_ROOT/test/servers/http_server.py" --port-file "$WORK/$name.port" "$@" \
		>"$WORK/$name.out" 2>&1 &
	PIDS+=($!)
	eval "${name}_PID=$!"
	for i in $(seq 1 100); do
		[ -s "$WORK/$name.port" ] && break
		sleep 0.05
	done
	[ -s "$WORK/$name.port" ] || { echo "$name did not start" >&2; cat "$WORK/$name.out" >&2; exit 1; }
	eval "${name}_PORT=$(cat "$WORK/$name.port")"
}

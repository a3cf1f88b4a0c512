#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with -Wall -Wextra
# -Werror into a private copy of the PostgreSQL install (private_install),
# runs pg_regress (test/sql) and the TAP tests (test/t) on scratch
# clusters, and exits non-zero on any failure.  Safe to rerun, also after a
# killed run.  Usage: scripts/test.sh [tap-test-file ...]
source "$(dirname "$0")/common.sh"

install_packages

say "checking that sql/60_default_templates.sql matches templates/"
"$NOTIFY_ROOT/scripts/templates-to-sql.sh" --extension "$NOTIFY_ROOT/templates" \
	| cmp -s - "$NOTIFY_ROOT/sql/60_default_templates.sql" || {
	echo "sql/60_default_templates.sql is stale: run make (or scripts/templates-to-sql.sh --extension templates > sql/60_default_templates.sql)" >&2
	exit 1
}
WORK=$(scratch_dir /tmp/notify-test)
status=0
private_install "$WORK"

say "pg_regress (test/sql) on a scratch cluster"
tests=$(cd "$NOTIFY_ROOT/test/sql" && ls *.sql | sed 's/\.sql$//' | sort | tr '\n' ' ')
if [ $# -eq 0 ] || [ "${NOTIFY_REGRESS:-}" = 1 ]; then
	( cd "$NOTIFY_ROOT" && as_pg "$($PG_BIN/pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress" \
		--temp-instance="$WORK/regress-instance" \
		--temp-config="$NOTIFY_ROOT/test/regress.conf" \
		--bindir="$PG_BIN" \
		--inputdir=test --outputdir="$WORK/regress" \
		--encoding=UTF8 --no-locale \
		--load-extension=notify \
		$tests ) || {
		status=1
		[ -f "$WORK/regress/regression.diffs" ] && head -200 "$WORK/regress/regression.diffs"
	}
fi

say "TAP tests (test/t)"
if [ $# -gt 0 ]; then tap=("$@"); else tap=("$NOTIFY_ROOT"/test/t/*.pl); fi
( cd "$NOTIFY_ROOT" && as_pg env TESTDIR="$WORK" PG_TEST_TIMEOUT_DEFAULT=60 \
	PG_REGRESS="$($PG_BIN/pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress" \
	NOTIFY_PYTHON="$PYTHON" \
	prove --timer -I "$($PG_BIN/pg_config --pkglibdir)/pgxs/src/test/perl" -I test/perl "${tap[@]}" ) || {
	status=1
	echo "TAP logs: $WORK/tmp_check/log" >&2
	for f in "$WORK"/tmp_check/log/regress_log_*; do
		[ -f "$f" ] && { echo "---- $f (tail)"; tail -40 "$f"; }
	done
}

if [ $status -eq 0 ]; then
	say "all tests passed"
	rm -rf "$WORK"
else
	say "FAILED (scratch files kept in $WORK)"
fi
exit $status

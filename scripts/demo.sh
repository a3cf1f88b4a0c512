#!/usr/bin/env bash
# The demo: a scratch PostgreSQL cluster with notify preloaded, a real SMTP
# server on 127.0.0.1 capturing mail, a small business schema, and
# notifications enqueued in business transactions and delivered.  Installs
# what is missing; safe to rerun.  NOTIFY_DEMO_KEEP=1 leaves the cluster
# and the SMTP server running and prints how to connect.
source "$(dirname "$0")/common.sh"

install_packages
build_and_install

WORK=$(scratch_dir /tmp/notify-demo)
DATA=$WORK/data
MAIL=$WORK/mail
mkdir -p "$MAIL"
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$WORK"

cleanup() {
	if [ "${NOTIFY_DEMO_KEEP:-0}" = 1 ]; then return; fi
	as_pg pg_ctl stop -D "$DATA" -m fast >/dev/null 2>&1 || true
	[ -f "$WORK/smtp.pid" ] && kill "$(cat "$WORK/smtp.pid")" 2>/dev/null || true
}
trap cleanup EXIT

say "starting an SMTP server on 127.0.0.1 that stores what it receives in $MAIL"
as_pg "$PYTHON" "$NOTIFY_ROOT/test/servers/smtp_server.py" --port 0 \
	--port-file "$WORK/smtp.port" --pid-file "$WORK/smtp.pid" --maildir "$MAIL" \
	>"$WORK/smtp.log" 2>&1 &
for _ in $(seq 1 100); do [ -s "$WORK/smtp.port" ] && break; sleep 0.1; done
SMTP_PORT=$(cat "$WORK/smtp.port")

say "starting a scratch PostgreSQL cluster in $DATA with notify preloaded"
as_pg initdb -D "$DATA" --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = 5499
shared_preload_libraries = 'notify'
notify.database = 'postgres'
notify.smtp_url = 'smtp://127.0.0.1:$SMTP_PORT'
notify.from_address = 'support@example.com'
notify.from_name = 'Example Support'
CONF
as_pg pg_ctl start -D "$DATA" -l "$WORK/postgres.log" -w >/dev/null

psql_demo() { as_pg psql -X -h "$WORK" -p 5499 -d postgres -v ON_ERROR_STOP=1 "$@"; }

psql_demo -q <<'SQL'
\echo
\echo '== CREATE EXTENSION notify, and a small business schema'
CREATE EXTENSION notify;
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, name text NOT NULL, locale text NOT NULL);
CREATE TABLE tickets (id int PRIMARY KEY, user_id int REFERENCES users, subject text NOT NULL);
CREATE TABLE ticket_replies (id int PRIMARY KEY, ticket_id int REFERENCES tickets, body text NOT NULL);
INSERT INTO users VALUES (1, 'hanako@example.com', '山田 花子', 'ja'), (2, 'lee@example.com', 'Lee Chen', 'en');
INSERT INTO tickets VALUES (42, 1, '請求書の住所が違います'), (43, 2, 'Cannot log in');

\echo
\echo '== A business transaction: the reply and its notification commit together'
BEGIN;
INSERT INTO ticket_replies VALUES (7, 42, '住所を修正しました。新しい請求書をアカウント画面からご確認いただけます。');
SELECT notify_enqueue('ticket.replied', u.email,
       jsonb_build_object('product_name', 'Acme Cloud', 'customer_name', u.name,
                          'ticket_id', t.id, 'ticket_subject', t.subject,
                          'agent_name', 'Sam', 'reply_body', r.body,
                          'ticket_url', 'https://help.example.com/tickets/' || t.id),
       locale => u.locale,
       dedup_key => 'ticket_reply:' || t.id || ':' || r.id) AS outbox_id
FROM ticket_replies r JOIN tickets t ON t.id = r.ticket_id JOIN users u ON u.id = t.user_id
WHERE r.id = 7;
COMMIT;

\echo
\echo '== A transaction that rolls back leaves nothing behind'
BEGIN;
INSERT INTO ticket_replies VALUES (8, 43, 'Draft reply that is discarded.');
SELECT notify_enqueue('notify.message', 'lee@example.com',
       '{"subject": "Re: Cannot log in", "text": "draft"}',
       dedup_key => 'ticket_reply:43:8') AS outbox_id;
ROLLBACK;
SELECT count(*) AS rows_for_rolled_back_reply FROM notify_outbox WHERE dedup_key = 'ticket_reply:43:8';

\echo
\echo '== A retried request enqueues the same dedup key again: one row, same id'
SELECT notify_enqueue('notify.message', 'hanako@example.com', '{"subject": "again", "text": "again"}',
                      dedup_key => 'ticket_reply:42:7') AS outbox_id_again;

\echo
\echo '== Bad input gets a clear error and writes nothing'
\set ON_ERROR_STOP 0
SELECT notify_enqueue('ticket.replied', E'hanako@example.com\r\nBcc: everyone@example.com', '{}');
SELECT notify_enqueue('ticket.replied', 'lee@example.com', '{"ticket_id": "43"}');

\echo
\echo '== The template the worker renders, previewed'
SELECT subject, template_version, locale FROM notify_preview('ticket.replied',
       '{"product_name": "Acme Cloud", "ticket_id": 42, "ticket_subject": "Invoice", "agent_name": "Sam",
         "reply_body": "Fixed.", "ticket_url": "https://help.example.com/tickets/42"}', 'en');
\set ON_ERROR_STOP 1

\echo
\echo '== Waiting for the worker to deliver'
DO $$
BEGIN
  FOR i IN 1..100 LOOP
    EXIT WHEN NOT EXISTS (SELECT 1 FROM notify_outbox WHERE status IN ('pending', 'sending'));
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;

\echo
\echo '== The outbox through the admin view'
SELECT * FROM notify_queue;
SELECT id, template_key, template_version AS v, locale, recipient, status, attempts, dedup_key,
       round(extract(epoch FROM sent_at - created_at) * 1000, 1) AS ms_to_sent,
       provider_message_id
FROM notify_outbox ORDER BY id;

\echo
\echo '== Delivery history and the worker'
SELECT outbox_id, attempt, outcome, response_code, enhanced_status, response_text FROM notify_attempts;
SELECT pid, database, state, batches, sent, failed, retried, in_flight FROM notify_worker_status;
SQL

say "where the mail landed"
for f in "$MAIL"/*.eml; do
	[ -f "$f" ] || continue
	echo "--- $f"
	sed -n '1,/^\r\{0,1\}$/p' "$f" | tr -d '\r'
	echo "(body follows; $(wc -c <"$f") bytes in all)"
	"$PYTHON" - "$f" <<'PY'
import email, sys
from email import policy
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
print("Decoded subject:", msg["Subject"])
print("Decoded text part:")
print(msg.get_body(preferencelist=("plain",)).get_content())
PY
done

if [ "${NOTIFY_DEMO_KEEP:-0}" = 1 ]; then
	say "still running: psql -h $WORK -p 5499 -d postgres (as user postgres); mail in $MAIL"
	echo "stop with: runuser -u postgres -- $PG_BIN/pg_ctl stop -D $DATA; kill \$(cat $WORK/smtp.pid)"
fi

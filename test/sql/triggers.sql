-- triggers on business tables: notify_on, notify_trigger(), checks at
-- CREATE TRIGGER / ALTER TABLE time, enqueue in the business transaction
SET client_min_messages = warning;
\set SHOW_CONTEXT never
TRUNCATE notify_outbox;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RETURN st || ': ' || msg || coalesce(nullif(' (' || det || ')', ' ()'), '');
END;
$$;

SELECT notify_template_put('helpdesk.reply_posted', 'en', 'Re: ticket {{ticket_id}}', '{{reply_body}}',
	schema => '{"type": "object", "required": ["ticket_id", "reply_body"],
				"properties": {"ticket_id": {"type": "integer"}, "reply_body": {"type": "string"}}}');
SELECT notify_template_put('helpdesk.reply_posted', 'pt-BR', 'Re: chamado {{ticket_id}}', '{{reply_body}}',
	schema => '{"type": "object", "required": ["ticket_id", "reply_body"],
				"properties": {"ticket_id": {"type": "integer"}, "reply_body": {"type": "string"}}}');
SELECT notify_template_put('helpdesk.ticket_closed', 'en', 'Ticket {{id}} closed', 'Closed.');

CREATE TABLE hd_replies (
	id			integer PRIMARY KEY,
	ticket_id	integer NOT NULL,
	message_id	text,
	customer_email text,
	body		text,
	lang		text,
	author		text
);
CREATE TABLE hd_tickets (
	id			integer PRIMARY KEY,
	owner_email text,
	status		text NOT NULL DEFAULT 'open',
	subject		text,
	views		integer NOT NULL DEFAULT 0
);

-- ---- notify_on: the documented way ----
SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email',
				 dedup_key_format => 'ticket_reply:{ticket_id}:{message_id}',
				 payload_columns => ARRAY['ticket_id', 'body:reply_body'],
				 locale_column => 'lang', actor_column => 'author');
SELECT notify_on('hd_tickets', 'UPDATE', 'helpdesk.ticket_closed', 'owner_email',
				 dedup_key_format => 'ticket_closed:{id}', category => 'transactional',
				 when_changed => ARRAY['status']);
SELECT * FROM notify_triggers;
-- an UPDATE trigger with when_changed has a WHEN clause as well
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'notify_update_helpdesk_ticket_closed_owner_email';
-- notify_on audits what it did
SELECT action, object, detail FROM notify_audit_log WHERE action = 'trigger_created' ORDER BY id;

-- enqueued in the business transaction: a rollback leaves nothing
BEGIN;
INSERT INTO hd_replies VALUES (1, 42, 'm1', 'ana@example.com', 'Fixed, see attached.', 'pt_BR', 'agent:7');
SELECT count(*) AS in_transaction FROM notify_outbox;
ROLLBACK;
SELECT count(*) AS after_rollback FROM notify_outbox;

INSERT INTO hd_replies VALUES (1, 42, 'm1', 'ana@example.com', 'Fixed, see attached.', 'pt_BR', 'agent:7');
-- the same dedup key again (a replayed message): one notification
INSERT INTO hd_replies VALUES (2, 42, 'm1', 'ana@example.com', 'Fixed, see attached.', 'pt_BR', 'agent:7');
-- locale: a tag that is not BCP 47 falls back to the default; no actor
INSERT INTO hd_replies VALUES (3, 43, 'm2', 'bo@example.com', 'Hello', 'klingon!', NULL);
-- no recipient: not a notification
INSERT INTO hd_replies VALUES (4, 44, 'm3', NULL, 'Internal note', 'en', 'agent:7');
-- a NULL placeholder value: enqueued without a dedup key
INSERT INTO hd_replies VALUES (5, 45, NULL, 'cy@example.com', 'Hi', NULL, NULL);
SELECT template_key, recipient, dedup_key, locale, payload, actor, metadata
FROM notify_outbox ORDER BY id;

-- UPDATE with when_changed: only a change of status notifies
INSERT INTO hd_tickets (id, owner_email, subject) VALUES (7, 'dee@example.com', 'Printer');
UPDATE hd_tickets SET views = views + 1 WHERE id = 7;
UPDATE hd_tickets SET subject = 'Printer on fire' WHERE id = 7;
SELECT count(*) AS closed_notifications FROM notify_outbox WHERE template_key = 'helpdesk.ticket_closed';
UPDATE hd_tickets SET status = 'closed' WHERE id = 7;
UPDATE hd_tickets SET status = 'closed' WHERE id = 7;
SELECT recipient, dedup_key, payload ->> 'status' AS status, metadata ->> 'operation' AS op
FROM notify_outbox WHERE template_key = 'helpdesk.ticket_closed';

-- a bad address in the business row fails the business write (22023):
-- nothing is lost silently, and nothing is written
SELECT pg_temp.try($$INSERT INTO hd_replies VALUES (6, 46, 'm6', 'not-an-address', 'x', NULL, NULL)$$);
SELECT count(*) FROM hd_replies WHERE id = 6;

-- running notify_on again replaces the trigger (same name)
SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email',
				 dedup_key_format => 'reply:{id}', payload_columns => ARRAY['ticket_id', 'body:reply_body']);
SELECT trigger_name, arguments FROM notify_triggers WHERE table_name = 'hd_replies'::regclass;

-- ---- bad input fails at notify_on time, and creates nothing ----
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'email')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', 'reply:{msg_id}')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', 'reply:{id')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', 'reply:id}')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', 'reply:{}')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', 'reply:{{id}}')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', 'reply')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', '')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'delete', 'helpdesk.reply_posted', 'customer_email')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'truncate', 'helpdesk.reply_posted', 'customer_email')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', when_changed => ARRAY['body'])$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'update', 'helpdesk.reply_posted', 'customer_email', when_changed => ARRAY['bodie'])$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'update', 'helpdesk.reply_posted', 'customer_email', when_changed => '{}')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', payload_columns => ARRAY['id', 'text'])$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', payload_columns => ARRAY['id', NULL])$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', locale_column => 'language')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', actor_column => 'user')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', channel => 'pigeon')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', category => 'gossip')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'Helpdesk Reply', 'customer_email')$$);
-- email needs a template, and the payload must carry what its schema requires
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.no_such_template', 'customer_email')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email')$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', payload_columns => ARRAY['ticket_id', 'body'])$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', 'insert', 'helpdesk.reply_posted', 'customer_email', payload_columns => ARRAY['ticket_id', 'text:reply_body'])$$);
SELECT pg_temp.try($$SELECT notify_on('hd_replies', NULL, 'helpdesk.reply_posted', 'customer_email')$$);
SELECT pg_temp.try($$SELECT notify_on(NULL, 'insert', 'helpdesk.reply_posted', 'customer_email')$$);
SELECT pg_temp.try($$SELECT notify_on('no_such_table', 'insert', 'helpdesk.reply_posted', 'customer_email')$$);
CREATE VIEW hd_replies_v AS SELECT * FROM hd_replies;
SELECT pg_temp.try($$SELECT notify_on('hd_replies_v', 'insert', 'helpdesk.reply_posted', 'customer_email')$$);
DROP VIEW hd_replies_v;
-- a trigger of that name that is not a notify trigger is not replaced
CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER notify_insert_helpdesk_ticket_closed_owner_email AFTER INSERT ON hd_tickets
	FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
SELECT pg_temp.try($$SELECT notify_on('hd_tickets', 'insert', 'helpdesk.ticket_closed', 'owner_email')$$);
DROP TRIGGER notify_insert_helpdesk_ticket_closed_owner_email ON hd_tickets;
SELECT count(*) AS notify_triggers FROM notify_triggers;

-- ---- plain CREATE TRIGGER is checked too (event trigger) ----
SELECT pg_temp.try($$CREATE TRIGGER t1 AFTER INSERT ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=owner')$$);
SELECT pg_temp.try($$CREATE TRIGGER t1 AFTER INSERT ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=owner_email', 'dedup=closed:{id')$$);
SELECT pg_temp.try($$CREATE TRIGGER t1 AFTER INSERT ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=owner_email', 'colour=red')$$);
SELECT pg_temp.try($$CREATE TRIGGER t1 AFTER INSERT ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'owner_email')$$);
SELECT pg_temp.try($$CREATE TRIGGER t1 AFTER INSERT ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('recipient=owner_email')$$);
SELECT pg_temp.try($$CREATE TRIGGER t1 AFTER INSERT ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=owner_email', 'recipient=subject')$$);
SELECT pg_temp.try($$CREATE TRIGGER t1 AFTER INSERT ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=owner_email', 'when_changed=status')$$);
SELECT pg_temp.try($$CREATE TRIGGER t1 BEFORE INSERT ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=owner_email')$$);
SELECT pg_temp.try($$CREATE TRIGGER t1 AFTER INSERT ON hd_tickets FOR EACH STATEMENT
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=owner_email')$$);
SELECT pg_temp.try($$CREATE TRIGGER t1 AFTER DELETE ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=owner_email')$$);
SELECT count(*) AS notify_triggers FROM notify_triggers;
-- a good one works, with the same syntax notify_on writes
CREATE TRIGGER ticket_opened AFTER INSERT ON hd_tickets FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=owner_email',
									'dedup=opened:{id}', 'payload=id, subject');
INSERT INTO hd_tickets (id, owner_email, subject) VALUES (8, 'ed@example.com', 'Keyboard');
SELECT recipient, dedup_key, payload FROM notify_outbox WHERE dedup_key = 'opened:8';

-- notify_trigger_check: for admins, returns the parsed arguments
SELECT notify_trigger_check('hd_tickets', ARRAY['template=helpdesk.ticket_closed', 'recipient=owner_email',
	'dedup=closed:{id}:{status}', 'when_changed=status', 'payload=id,subject', 'category=transactional']);
SELECT pg_temp.try($$SELECT notify_trigger_check('hd_tickets', ARRAY['template=helpdesk.ticket_closed', 'recipient=owner_email', 'when_changed=status'], 'insert')$$);
SELECT pg_temp.try($$SELECT notify_trigger_check('hd_tickets', NULL)$$);
SELECT pg_temp.try($$SELECT notify_trigger_check('hd_tickets', ARRAY['template=helpdesk.ticket_closed', 'recipient='])$$);

-- ---- ALTER TABLE that would break a notify trigger is refused ----
SELECT pg_temp.try($$ALTER TABLE hd_replies DROP COLUMN customer_email$$);
SELECT pg_temp.try($$ALTER TABLE hd_replies RENAME COLUMN id TO reply_id$$);
SELECT pg_temp.try($$ALTER TABLE hd_tickets DROP COLUMN subject$$);
ALTER TABLE hd_replies DROP COLUMN author;
ALTER TABLE hd_replies ADD COLUMN created_at timestamptz;
-- with the check bypassed, the first write fails loudly instead of
-- notifying nobody
SET session_replication_role = replica;
ALTER TABLE hd_replies RENAME COLUMN customer_email TO email;
RESET session_replication_role;
SELECT pg_temp.try($$INSERT INTO hd_replies (id, ticket_id, email) VALUES (9, 49, 'fay@example.com')$$);
ALTER TABLE hd_replies RENAME COLUMN email TO customer_email;

-- ---- privileges: the writing role needs EXECUTE on notify_enqueue ----
CREATE ROLE notify_writer;
GRANT INSERT ON hd_replies TO notify_writer;
SET ROLE notify_writer;
SELECT pg_temp.try($$INSERT INTO hd_replies (id, ticket_id, customer_email, body) VALUES (10, 50, 'gus@example.com', 'Thanks')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION notify_enqueue TO notify_writer;
SET ROLE notify_writer;
INSERT INTO hd_replies (id, ticket_id, customer_email, body) VALUES (10, 50, 'gus@example.com', 'Thanks');
RESET ROLE;
SELECT recipient, dedup_key FROM notify_outbox WHERE recipient = 'gus@example.com';

-- the CREATE TRIGGER / ALTER TABLE check applies to every role and needs no
-- grant; creating a notify trigger needs EXECUTE on notify_trigger()
CREATE ROLE notify_table_owner;
GRANT CREATE ON SCHEMA public TO notify_table_owner;
SET ROLE notify_table_owner;
CREATE TABLE hd_own (id integer, email text);
ALTER TABLE hd_own ADD COLUMN note text;
SELECT pg_temp.try($$CREATE TRIGGER n AFTER INSERT ON hd_own FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=email')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION notify_trigger() TO notify_table_owner;
SET ROLE notify_table_owner;
SELECT pg_temp.try($$CREATE TRIGGER n AFTER INSERT ON hd_own FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=mail')$$);
CREATE TRIGGER n AFTER INSERT ON hd_own FOR EACH ROW
	EXECUTE FUNCTION notify_trigger('template=helpdesk.ticket_closed', 'recipient=email');
SELECT pg_temp.try($$ALTER TABLE hd_own DROP COLUMN email$$);
ALTER TABLE hd_own DROP COLUMN note;
DROP TABLE hd_own;
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM notify_table_owner;
DROP OWNED BY notify_table_owner;
DROP ROLE notify_table_owner;

-- ---- a partitioned table: one trigger on the parent serves its partitions ----
CREATE TABLE hd_events (id integer, at date, email text) PARTITION BY RANGE (at);
CREATE TABLE hd_events_2025 PARTITION OF hd_events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SELECT notify_on('hd_events', 'insert', 'helpdesk.ticket_closed', 'email', 'event:{id}');
INSERT INTO hd_events VALUES (1, '2025-05-05', 'hal@example.com');
SELECT recipient, dedup_key, metadata ->> 'table' AS via FROM notify_outbox WHERE dedup_key = 'event:1';
SELECT table_name, trigger_name FROM notify_triggers WHERE table_name::text LIKE 'hd_events%';

DROP TABLE hd_replies, hd_tickets, hd_events CASCADE;
DROP OWNED BY notify_writer;
DROP ROLE notify_writer;
SELECT count(*) AS notify_triggers_left FROM notify_triggers;
DELETE FROM notify_outbox;

-- notify: the audit log.  Who did what to notifications, templates,
-- preferences, suppressions and channels; kept apart from the delivery
-- history (notify_attempts), which records what happened on the wire.

CREATE TABLE notify_audit_log (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at			timestamptz NOT NULL DEFAULT clock_timestamp(),
	db_role		name NOT NULL DEFAULT session_user,
	actor		text,
	action		text NOT NULL
				-- not '^[a-z_]{1,64}$': a bounded repeat costs 5 us per row in
				-- PostgreSQL's regex engine, half the cost of an audit row
				CONSTRAINT notify_audit_log_action_check CHECK (action ~ '^[a-z_]+$' AND length(action) <= 64),
	object		text,
	detail		jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE notify_audit_log IS
	'Append-only audit log: when, which database role, which application actor, what action on which object. Rows cannot be changed or deleted except by the extension''s own maintenance functions.';
COMMENT ON SEQUENCE notify_audit_log_id_seq IS 'Generates notify_audit_log.id.';
COMMENT ON COLUMN notify_audit_log.id IS 'Identity, in the order rows were written.';
COMMENT ON COLUMN notify_audit_log.at IS 'When the action was recorded.';
COMMENT ON COLUMN notify_audit_log.db_role IS 'The database role that logged in (session_user), also through SECURITY DEFINER functions.';
COMMENT ON COLUMN notify_audit_log.actor IS 'The application''s actor (an actor argument or the notify.actor setting).';
COMMENT ON COLUMN notify_audit_log.action IS 'enqueued, deduplicated, skipped, canceled, retried, template_activated, preference_changed, suppressed, unsuppressed, channel_changed, channel_paused, channel_resumed, purged, forgotten, ...';
COMMENT ON COLUMN notify_audit_log.object IS 'What the action was on, as kind:key (outbox:42, template:ticket.replied/en/3, channel:ops-slack, recipient:<address>).';
COMMENT ON COLUMN notify_audit_log.detail IS 'Anything else worth keeping, as a JSON object.';
CREATE INDEX notify_audit_log_object_idx ON notify_audit_log (object, at);
COMMENT ON INDEX notify_audit_log_object_idx IS 'The history of one object.';
SELECT pg_catalog.pg_extension_config_dump('notify_audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('notify_audit_log_id_seq', '');

-- Append-only: changes are refused for every role but the table's owner
-- (the extension owner, whose maintenance functions run as it).
CREATE FUNCTION notify_audit_log_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	IF current_user <> (SELECT c.relowner::regrole::name FROM pg_catalog.pg_class c
						WHERE c.oid = TG_RELID) THEN
		RAISE EXCEPTION 'notify_audit_log is append-only'
			USING ERRCODE = 'insufficient_privilege',
			DETAIL = format('%s by role %s refused.', TG_OP, current_user);
	END IF;
	RETURN CASE TG_OP WHEN 'DELETE' THEN OLD WHEN 'TRUNCATE' THEN NULL ELSE NEW END;
END;
$$;
COMMENT ON FUNCTION notify_audit_log_guard() IS
	'Trigger: refuses UPDATE, DELETE and TRUNCATE of the audit log by anyone but its owner, whatever privileges were granted.';
CREATE TRIGGER notify_audit_log_guard BEFORE UPDATE OR DELETE ON notify_audit_log
	FOR EACH ROW EXECUTE FUNCTION notify_audit_log_guard();
COMMENT ON TRIGGER notify_audit_log_guard ON notify_audit_log IS 'Keeps the audit log append-only.';
CREATE TRIGGER notify_audit_log_guard_truncate BEFORE TRUNCATE ON notify_audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION notify_audit_log_guard();
COMMENT ON TRIGGER notify_audit_log_guard_truncate ON notify_audit_log IS 'Keeps the audit log append-only.';

-- When and who are the log's to say: for every role but the owner, an
-- INSERT gets at and db_role from the server, whatever it supplied.  (The
-- owner's own inserts go through notify_audit() with the defaults; rows it
-- writes itself, such as a restore from a dump, keep their values.)
CREATE FUNCTION notify_audit_log_stamp() RETURNS trigger
	AS 'MODULE_PATHNAME', 'notify_audit_log_stamp'
	LANGUAGE C;
-- In C (src/audit.c): notify_enqueue writes an audit row per skipped or
-- deduplicated notification, and a PL/pgSQL version reading pg_class per
-- row cost more than the rest of such an enqueue.
COMMENT ON FUNCTION notify_audit_log_stamp() IS
	'Trigger: sets at and db_role of a new audit row from the server (clock_timestamp(), session_user) for every role but the log''s owner, so that a role granted INSERT cannot forge them.';
CREATE TRIGGER notify_audit_log_stamp BEFORE INSERT ON notify_audit_log
	FOR EACH ROW EXECUTE FUNCTION notify_audit_log_stamp();
COMMENT ON TRIGGER notify_audit_log_stamp ON notify_audit_log IS 'Keeps at and db_role truthful.';

CREATE FUNCTION notify_audit(action text, object text, detail jsonb DEFAULT '{}', actor text DEFAULT NULL)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
	INSERT INTO notify_audit_log (actor, action, object, detail)
	VALUES (coalesce(actor, nullif(current_setting('notify.actor'), '')), action, object, coalesce(detail, '{}'));
$$;
COMMENT ON FUNCTION notify_audit(text, text, jsonb, text) IS
	'Appends one audit row; actor defaults to the notify.actor setting. Used by notify''s own functions; grant it to applications that want to record their own actions.';

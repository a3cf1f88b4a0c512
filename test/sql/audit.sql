-- the audit log is append-only: rows are added through notify_audit(), and
-- nobody but its owner changes or removes them, whatever was granted
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.try(sql text, detail boolean DEFAULT true) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RETURN st || ': ' || msg || CASE WHEN detail THEN coalesce(nullif(' (' || det || ')', ' ()'), '') ELSE '' END;
END;
$$;

-- a role given every privilege on the table, and one given none
CREATE ROLE notify_auditor LOGIN;
CREATE ROLE notify_outsider LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON notify_audit_log TO notify_auditor;
GRANT EXECUTE ON FUNCTION notify_audit(text, text, jsonb, text) TO notify_auditor, notify_outsider;
-- and a superuser that does not own the table
CREATE ROLE notify_other_superuser SUPERUSER;

-- ---- writing: notify_audit() records the logged-in role ----
SET SESSION AUTHORIZATION notify_auditor;
SELECT notify_audit('template_activated', 'audit-test:1', '{"version": 3}', actor => 'user:17');
SET notify.actor = 'billing-job';
SELECT notify_audit('channel_paused', 'audit-test:2');
RESET notify.actor;
SELECT notify_audit('retried', 'audit-test:3', NULL);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION notify_outsider;
SELECT notify_audit('canceled', 'audit-test:4');
-- a role without grants on the table cannot write it directly
SELECT pg_temp.try($$INSERT INTO notify_audit_log (action, object) VALUES ('canceled', 'audit-test:5')$$);
SELECT pg_temp.try($$SELECT count(*) FROM notify_audit_log$$);
RESET SESSION AUTHORIZATION;
-- db_role is the session's role, also through the SECURITY DEFINER function;
-- actor is the argument, else notify.actor
SELECT db_role, actor, action, object, detail, at <= clock_timestamp() AS at_set
FROM notify_audit_log WHERE object LIKE 'audit-test:%' ORDER BY id;
-- a bad action name is refused
SELECT pg_temp.try($$SELECT notify_audit('Delete Everything', 'audit-test:6')$$, detail => false);
-- ... and so is one longer than 64 characters; 64 are fine
SELECT pg_temp.try($$SELECT notify_audit(repeat('a', 65), 'length-test:1')$$, detail => false);
SELECT pg_temp.try($$SELECT notify_audit(repeat('a', 64), 'length-test:1')$$, detail => false);

-- ---- changing: refused for a role with explicit grants ----
SET SESSION AUTHORIZATION notify_auditor;
SELECT pg_temp.try($$UPDATE notify_audit_log SET actor = 'someone else' WHERE object = 'audit-test:1'$$);
SELECT pg_temp.try($$UPDATE notify_audit_log SET detail = '{}'$$);
SELECT pg_temp.try($$DELETE FROM notify_audit_log WHERE object = 'audit-test:1'$$);
SELECT pg_temp.try($$DELETE FROM notify_audit_log$$);
SELECT pg_temp.try($$TRUNCATE notify_audit_log$$);
RESET SESSION AUTHORIZATION;
-- ... for a role without grants (by privileges)
SET SESSION AUTHORIZATION notify_outsider;
SELECT pg_temp.try($$UPDATE notify_audit_log SET actor = 'x'$$);
SELECT pg_temp.try($$DELETE FROM notify_audit_log$$);
SELECT pg_temp.try($$TRUNCATE notify_audit_log$$);
RESET SESSION AUTHORIZATION;
-- ... and for a superuser that is not the owner
SET ROLE notify_other_superuser;
SELECT pg_temp.try($$UPDATE notify_audit_log SET actor = 'x' WHERE object = 'audit-test:1'$$);
SELECT pg_temp.try($$DELETE FROM notify_audit_log WHERE object = 'audit-test:1'$$);
SELECT pg_temp.try($$TRUNCATE notify_audit_log$$);
RESET ROLE;
-- nothing changed
SELECT db_role, actor, action, object, detail FROM notify_audit_log WHERE object LIKE 'audit-test:%' ORDER BY id;

-- the owner (the extension's maintenance functions run as it) may
BEGIN;
DELETE FROM notify_audit_log WHERE object = 'audit-test:1';
SELECT count(*) AS owner_deleted_in_transaction FROM notify_audit_log WHERE object = 'audit-test:1';
ROLLBACK;

-- ---- forging: a role granted INSERT cannot choose when or who ----
SET SESSION AUTHORIZATION notify_auditor;
SELECT pg_temp.try($$INSERT INTO notify_audit_log (at, db_role, actor, action, object)
	VALUES ('2001-01-01 00:00+00', 'postgres', 'user:1', 'canceled', 'audit-test:forged')$$);
RESET SESSION AUTHORIZATION;
-- ... nor does a superuser that is not the owner
SET ROLE notify_other_superuser;
SELECT pg_temp.try($$INSERT INTO notify_audit_log (at, db_role, action, object)
	VALUES ('2001-01-01 00:00+00', 'someone_else', 'canceled', 'audit-test:forged-su')$$);
RESET ROLE;
SELECT object, db_role = CASE object WHEN 'audit-test:forged' THEN 'notify_auditor' ELSE session_user END AS db_role_is_session_user,
	   at > now() - interval '1 hour' AS at_is_now, actor
FROM notify_audit_log WHERE object LIKE 'audit-test:forged%' ORDER BY id;
-- the owner's own inserts (a restore) keep their values
BEGIN;
INSERT INTO notify_audit_log (at, db_role, action, object)
VALUES ('2001-01-01 00:00+00', 'restored_role', 'canceled', 'audit-test:restored');
SELECT at = '2001-01-01 00:00+00' AS at_kept, db_role FROM notify_audit_log WHERE object = 'audit-test:restored';
ROLLBACK;

-- the guards are in place
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'notify_audit_log'::regclass AND NOT tgisinternal ORDER BY 1;

REVOKE ALL ON notify_audit_log FROM notify_auditor;
DROP OWNED BY notify_auditor, notify_outsider, notify_other_superuser;
DROP ROLE notify_auditor;
DROP ROLE notify_outsider;
DROP ROLE notify_other_superuser;

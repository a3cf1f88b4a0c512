-- retention: archive to monthly history partitions, notify_all, purge,
-- erasure requests
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN st || ': ' || msg;
END;
$$;
TRUNCATE notify_outbox;

-- finished rows of three months, and one pending row
INSERT INTO notify_outbox (template_key, recipient, status, created_at, sent_at, dedup_key)
SELECT 'notify.message', 'old' || i || '@example.com', 'sent',
       timestamptz '2026-01-15 12:00+00' + (i % 3) * interval '1 month',
       timestamptz '2026-01-15 12:00+00' + (i % 3) * interval '1 month', 'old:' || i
FROM generate_series(1, 30) i;
INSERT INTO notify_outbox (template_key, recipient, status, created_at)
VALUES ('notify.message', 'waiting@example.com', 'pending', timestamptz '2026-01-10 00:00+00');
INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome, response_text)
SELECT id, 1, created_at, created_at, 'sent', '250 ok ' || recipient FROM notify_outbox WHERE status = 'sent';

-- archive in batches of 20: the pending row stays
SELECT notify_archive(20, interval '1 day') AS moved;
SELECT notify_archive(20, interval '1 day') AS moved;
SELECT notify_archive(20, interval '1 day') AS moved;
SELECT status, count(*) FROM notify_outbox GROUP BY status;
SELECT tableoid::regclass AS partition, count(*) FROM notify_history GROUP BY 1 ORDER BY 1;
SELECT count(*) AS all_rows FROM notify_all;
-- an archived row keeps its id, dedup key and attempts
SELECT count(*) AS attempts_still_joined
FROM notify_all a JOIN notify_attempts t ON t.outbox_id = a.id WHERE a.dedup_key LIKE 'old:%';

-- bad arguments
SELECT pg_temp.try($$SELECT notify_archive(0)$$);
SELECT pg_temp.try($$SELECT notify_archive(10, interval '-1 day')$$);
SELECT pg_temp.try($$CALL notify_purge(NULL)$$);
SELECT pg_temp.try($$CALL notify_purge(interval '-1 day')$$);
SELECT pg_temp.try($$CALL notify_purge(interval '0')$$);

-- purge everything created before 2026-02-20 (run outside a transaction block)
\set cutoff_age `echo "$(( ($(date +%s) - $(date -d '2026-02-20 12:00 UTC' +%s)) / 86400 )) days"`
CALL notify_purge(:'cutoff_age'::interval);
SELECT tableoid::regclass AS partition, count(*), min(created_at) >= '2026-02-20' AS after_cutoff
FROM notify_history GROUP BY 1 ORDER BY 1;
SELECT count(*) AS attempts_left FROM notify_attempts;
SELECT action, detail ->> 'partitions_dropped' AS dropped, detail ->> 'partitions_busy' AS busy
FROM notify_audit_log WHERE action = 'purged';

-- erasure request
SELECT notify_suppress('forget.me@Example.COM', 'hard_bounce');
SELECT notify_set_preference('forget.me@example.com', 'marketing', true);
INSERT INTO notify_outbox (template_key, recipient, status, payload, metadata)
VALUES ('notify.message', 'forget.me@example.com', 'pending', '{"subject": "secret plan"}', '{"tenant": "acme"}'),
       ('notify.message', 'forget.me@example.com', 'sent', '{"subject": "old news"}', '{}');
SELECT notify_forget_recipient('forget.me@EXAMPLE.com');
SELECT count(*) AS rows_naming_them FROM notify_all WHERE recipient ILIKE '%forget.me%';
SELECT status, recipient LIKE 'forgotten-%@invalid' AS anonymised, payload, metadata
FROM notify_outbox WHERE recipient LIKE 'forgotten-%' ORDER BY status;
SELECT count(*) AS preferences_left FROM notify_preferences WHERE recipient = 'forget.me@example.com';
SELECT address LIKE 'sha256:%' AS hashed, reason FROM notify_suppressions
WHERE address = notify_address_hash('forget.me@example.com');
-- still not mailed: the hashed suppression counts
SELECT notify_decide('forget.me@example.com', 'transactional', 'email') AS decision;
SELECT count(*) AS audit_rows_naming_them FROM notify_audit_log
WHERE object ILIKE '%forget.me%' OR detail::text ILIKE '%forget.me%';
SELECT action FROM notify_audit_log WHERE action = 'forgotten';
SELECT pg_temp.try($$SELECT notify_forget_recipient(NULL)$$);
SELECT pg_temp.try($$SELECT notify_forget_recipient('  ')$$);

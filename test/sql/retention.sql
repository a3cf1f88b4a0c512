-- retention: archive to day partitions of history (notify.history_partition),
-- notify_all, purge, erasure requests, a change of the partition range on
-- a live system
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

-- months unless configured (test/regress.conf sets day for this test)
SELECT boot_val AS built_in_default FROM pg_settings WHERE name = 'notify.history_partition';
SHOW notify.history_partition;

-- finished rows of three days, a month apart, a minute apart within a day
-- (12:00 to 12:09 UTC), three more on two days in February, and one
-- pending row
INSERT INTO notify_outbox (template_key, recipient, status, created_at, sent_at, dedup_key)
SELECT 'notify.message', 'old' || i || '@example.com', 'sent', t, t, 'old:' || i
FROM generate_series(1, 30) i,
     LATERAL (SELECT timestamptz '2026-01-15 12:00+00' + (i % 3) * interval '1 month' + (i / 3) * interval '1 minute' AS t) x;
INSERT INTO notify_outbox (template_key, recipient, status, created_at, sent_at, dedup_key)
SELECT 'notify.message', 'feb' || i || '@example.com', 'sent', t, t, 'feb:' || i
FROM generate_series(1, 3) i,
     LATERAL (SELECT CASE WHEN i = 1 THEN timestamptz '2026-02-01 12:00+00' ELSE timestamptz '2026-02-10 12:00+00' END AS t) x;
INSERT INTO notify_outbox (template_key, recipient, status, created_at)
VALUES ('notify.message', 'waiting@example.com', 'pending', timestamptz '2026-01-10 00:00+00');
INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome, response_text)
SELECT id, 1, created_at, created_at, 'sent', '250 ok ' || recipient FROM notify_outbox WHERE status = 'sent';

-- archive in batches of 20: the pending row stays
SELECT notify_archive(20, interval '1 day') AS moved;
SELECT notify_archive(20, interval '1 day') AS moved;
SELECT notify_archive(20, interval '1 day') AS moved;
SELECT status, count(*) FROM notify_outbox GROUP BY status;
-- a partition per day (PST8PDT, pg_regress's time zone), named after it
SELECT tableoid::regclass AS partition, count(*) FROM notify_history GROUP BY 1 ORDER BY 1;
SELECT c.relname, r.lower_bound, r.upper_bound = r.lower_bound + interval '1 day' AS one_day
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid CROSS JOIN LATERAL notify_partition_range(c.oid) r
WHERE i.inhparent = 'notify_history'::regclass ORDER BY 2;
SELECT count(*) AS all_rows FROM notify_all;
-- an archived row keeps its id, dedup key and attempts
SELECT count(*) AS attempts_still_joined
FROM notify_all a JOIN notify_attempts t ON t.outbox_id = a.id WHERE a.dedup_key LIKE 'old:%';
-- its attempts moved with it: out of notify_attempts_hot into the partition
-- beside the notification's, keyed by its created_at
SELECT tableoid::regclass AS attempts_partition, count(*) FROM notify_attempts GROUP BY 1 ORDER BY 1;
SELECT count(*) AS attempts_beside_their_notification
FROM notify_history h JOIN notify_attempts t ON t.outbox_id = h.id
WHERE t.history_created_at = h.created_at
  AND substr(t.tableoid::regclass::text, 17) = substr(h.tableoid::regclass::text, 16);
SELECT c.relname, r.lower_bound = h.lower_bound AND r.upper_bound = h.upper_bound AS same_bounds,
       obj_description(c.oid, 'pg_class') IS NOT NULL AS commented
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL notify_partition_range(c.oid) r
LEFT JOIN LATERAL notify_partition_range(to_regclass(replace(c.relname, 'attempts', 'history'))) h ON true
WHERE i.inhparent = 'notify_attempts'::regclass ORDER BY 1;
-- a failure of an archived notification still shows in notify_failures
INSERT INTO notify_outbox (template_key, recipient, status, created_at, last_error)
VALUES ('notify.message', 'bounced@example.com', 'failed', timestamptz '2026-03-20 12:00+00', 'smtp: 550 5.1.1 no such user');
INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome, response_code, error, response_text)
SELECT id, 1, now() - interval '1 hour', now() - interval '1 hour', 'permanent', 550, 'smtp: 550 5.1.1 no such user',
       '550 5.1.1 <bounced@example.com> no such user'
FROM notify_outbox WHERE recipient = 'bounced@example.com';
SELECT notify_archive(20, interval '1 day') AS moved;
SELECT h.status, h.tableoid::regclass AS history_partition, t.tableoid::regclass AS attempts_partition
FROM notify_history h JOIN notify_attempts t ON t.outbox_id = h.id WHERE h.recipient = 'bounced@example.com';
SELECT attempts, permanent, messages FROM notify_failures;
SELECT count(*) AS hot_attempts FROM notify_attempts_hot;

-- bad arguments
SELECT pg_temp.try($$SELECT notify_archive(0)$$);
SELECT pg_temp.try($$SELECT notify_archive(10, interval '-1 day')$$);
SELECT pg_temp.try($$CALL notify_purge(NULL)$$);
SELECT pg_temp.try($$CALL notify_purge(interval '-1 day')$$);
SELECT pg_temp.try($$CALL notify_purge(interval '0')$$);
SELECT pg_temp.try($$CALL notify_purge(interval '1 year', 0)$$);
SELECT pg_temp.try($$CALL notify_purge(interval '1 year', NULL)$$);
SELECT pg_temp.try($$CALL notify_purge(interval '1 year', pause => NULL)$$);
SELECT pg_temp.try($$CALL notify_purge(interval '1 year', pause => interval '-1 second')$$);
SELECT pg_temp.try($$CALL notify_purge(interval '1 year', 100, interval '2 minutes')$$);
SELECT pg_temp.try($$CALL notify_purge(interval '1 year', drop_pause => NULL)$$);
SELECT pg_temp.try($$CALL notify_purge(interval '1 year', drop_pause => interval '-1 second')$$);
SELECT pg_temp.try($$CALL notify_purge(interval '1 year', drop_pause => interval '61 seconds')$$);

-- purge everything created before 2026-02-15 12:04:30 UTC (a few
-- milliseconds later: now() moves on between here and the CALL; run
-- outside a transaction block), in batches of 3 without a pause (between
-- batches or after a drop): the pairs
-- of partitions of January 15, February 1 and February 10 are dropped, the
-- five rows of 12:00 to 12:04 on February 15 and their attempts deleted in
-- 2 + 2 batches, and the day partitions after it are not touched
SELECT (extract(epoch FROM now()) - extract(epoch FROM timestamptz '2026-02-15 12:04:30+00')) * interval '1 second' AS cutoff_age
\gset
CALL notify_purge(:'cutoff_age'::interval, 3, interval '0', drop_pause => interval '0');
SELECT tableoid::regclass AS partition, count(*), min(created_at) >= '2026-02-15 12:04:30+00' AS after_cutoff
FROM notify_history GROUP BY 1 ORDER BY 1;
SELECT tableoid::regclass AS attempts_partition, count(*), min(history_created_at) >= '2026-02-15 12:04:30+00' AS after_cutoff
FROM notify_attempts GROUP BY 1 ORDER BY 1;
SELECT to_regclass('notify_history_2026_01_15') AS history_jan, to_regclass('notify_attempts_2026_01_15') AS attempts_jan,
       to_regclass('notify_history_2026_02_10') AS history_feb10, to_regclass('notify_attempts_2026_02_10') AS attempts_feb10;
SELECT c.relname AS attempts_partitions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'notify_attempts'::regclass ORDER BY 1;
-- every attempt left belongs to a notification that is left
SELECT count(*) AS attempts_left, count(*) FILTER (WHERE a.id IS NULL) AS orphans
FROM notify_attempts t LEFT JOIN notify_all a ON a.id = t.outbox_id;
SELECT action, detail ->> 'partitions_dropped' AS dropped, detail ->> 'partitions_busy' AS busy,
       detail ->> 'rows_deleted' AS rows_deleted, detail ->> 'attempts_deleted' AS attempts_deleted,
       detail ->> 'batches' AS batches, detail ->> 'batch_size' AS batch_size, detail ->> 'drop_pause' AS drop_pause
FROM notify_audit_log WHERE action = 'purged';

-- erasure request
SELECT notify_suppress('forget.me@Example.COM', 'hard_bounce');
SELECT notify_set_preference('forget.me@example.com', 'marketing', true);
INSERT INTO notify_outbox (template_key, recipient, status, payload, metadata)
VALUES ('notify.message', 'forget.me@example.com', 'pending', '{"subject": "secret plan"}', '{"tenant": "acme"}'),
       ('notify.message', 'forget.me@example.com', 'sent', '{"subject": "old news"}', '{}');
-- and an archived one, whose attempt quotes the address
INSERT INTO notify_outbox (template_key, recipient, status, payload, created_at)
VALUES ('notify.message', 'forget.me@example.com', 'sent', '{"subject": "older news"}', timestamptz '2026-03-25 12:00+00');
INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome, response_text)
SELECT id, 1, created_at, created_at, 'sent', '250 ok <forget.me@example.com>'
FROM notify_outbox WHERE created_at < now() - interval '1 day' AND recipient = 'forget.me@example.com';
SELECT notify_archive(20, interval '1 day') AS moved;
SELECT notify_forget_recipient('forget.me@EXAMPLE.com');
SELECT count(*) AS attempts_quoting_them FROM notify_attempts WHERE response_text ILIKE '%forget.me%';
SELECT count(*) AS archived_attempts_anonymised
FROM notify_history h JOIN notify_attempts t ON t.outbox_id = h.id
WHERE h.recipient LIKE 'forgotten-%' AND t.response_text IS NULL AND t.history_created_at = h.created_at;
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

-- notify.history_partition changed on a live system: a monthly partition
-- made before keeps its range, day (and week) partitions fill around it
-- without overlapping it, and the archive keeps working
SET notify.history_partition = 'month';
INSERT INTO notify_outbox (template_key, recipient, status, created_at, sent_at)
VALUES ('notify.message', 'april@example.com', 'sent', timestamptz '2026-04-10 12:00+00', timestamptz '2026-04-10 12:00+00');
SELECT notify_archive(20, interval '1 day') AS moved;
RESET notify.history_partition;
SHOW notify.history_partition;
INSERT INTO notify_outbox (template_key, recipient, status, created_at, sent_at)
SELECT 'notify.message', 'switch' || i || '@example.com', 'sent', t, t
FROM unnest(ARRAY[timestamptz '2026-03-31 23:00-07', '2026-04-20 12:00+00', '2026-05-01 01:00-07']) WITH ORDINALITY AS u(t, i);
SELECT notify_archive(20, interval '1 day') AS moved;
-- a week around the month's end and around the day partition before it:
-- clipped on each side to what is free
SET notify.history_partition = 'week';
INSERT INTO notify_outbox (template_key, recipient, status, created_at, sent_at)
SELECT 'notify.message', 'week' || i || '@example.com', 'sent', t, t
FROM unnest(ARRAY[timestamptz '2026-05-02 01:00-07', '2026-05-03 23:00-07', '2026-03-30 01:00-07', '2026-05-20 12:00-07'])
     WITH ORDINALITY AS u(t, i);
SELECT notify_archive(20, interval '1 day') AS moved;
RESET notify.history_partition;
SELECT c.relname, r.lower_bound, r.upper_bound,
       (SELECT count(*) FROM notify_history h WHERE h.tableoid = c.oid) AS rows,
       a.lower_bound = r.lower_bound AND a.upper_bound = r.upper_bound AS attempts_same_bounds
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid CROSS JOIN LATERAL notify_partition_range(c.oid) r
LEFT JOIN LATERAL notify_partition_range(to_regclass(replace(c.relname, 'history', 'attempts'))) a ON true
WHERE i.inhparent = 'notify_history'::regclass AND r.lower_bound >= '2026-03-30' ORDER BY r.lower_bound;
-- every row of the history and every attempt is within its partition's
-- bounds, and no two partitions overlap
SELECT count(*) AS rows_outside FROM notify_history h CROSS JOIN LATERAL notify_partition_range(h.tableoid) r
WHERE NOT (h.created_at >= r.lower_bound AND h.created_at < r.upper_bound);
SELECT count(*) AS overlapping
FROM (SELECT i.inhparent, r.* FROM pg_inherits i CROSS JOIN LATERAL notify_partition_range(i.inhrelid) r
      WHERE i.inhparent IN ('notify_history'::regclass, 'notify_attempts'::regclass) AND r.lower_bound IS NOT NULL) p
JOIN (SELECT i.inhparent, r.* FROM pg_inherits i CROSS JOIN LATERAL notify_partition_range(i.inhrelid) r
      WHERE i.inhparent IN ('notify_history'::regclass, 'notify_attempts'::regclass) AND r.lower_bound IS NOT NULL) q
  ON p.inhparent = q.inhparent AND p.lower_bound < q.lower_bound AND q.lower_bound < p.upper_bound;
SELECT count(*) AS partitions_uncommented FROM pg_inherits i
WHERE i.inhparent IN ('notify_history'::regclass, 'notify_attempts'::regclass)
  AND obj_description(i.inhrelid, 'pg_class') IS NULL;
-- the same timestamp asked again returns the partition that holds it
SELECT notify_history_partition('2026-04-30 23:59-07') AS april, notify_history_partition('2026-05-03 12:00-07') AS clipped_week;

-- purge up to the middle of April: the day and week partitions before it
-- are dropped, the monthly partition the cutoff falls in is emptied up to
-- the cutoff in batches, the ones after are untouched
SELECT (extract(epoch FROM now()) - extract(epoch FROM timestamptz '2026-04-15 00:00+00')) * interval '1 second' AS cutoff_age
\gset
CALL notify_purge(:'cutoff_age'::interval, 2, interval '0', interval '0');
SELECT detail ->> 'partitions_dropped' AS dropped, detail ->> 'partitions_busy' AS busy,
       detail ->> 'rows_deleted' AS rows_deleted, detail ->> 'attempts_deleted' AS attempts_deleted
FROM notify_audit_log WHERE action = 'purged' ORDER BY id DESC LIMIT 1;
SELECT tableoid::regclass AS partition, count(*), min(created_at) FROM notify_history GROUP BY 1 ORDER BY 3;

-- bad values
SELECT pg_temp.try($$SET notify.history_partition = 'hour'$$);
SELECT pg_temp.try($$SET notify.history_partition = ''$$);
SHOW notify.history_partition;
SELECT pg_temp.try($$SELECT notify_history_partition(NULL)$$);
SELECT pg_temp.try($$SELECT notify_history_partition('infinity')$$);
SELECT pg_temp.try($$SELECT notify_history_partition('-infinity')$$);

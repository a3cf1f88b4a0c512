-- metrics and admin views on known data, the Prometheus text, and the bulk
-- admin actions (cancel by pattern or recipient, requeue failures)
SET client_min_messages = warning;
\set SHOW_CONTEXT never
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

-- One transaction, so that now() is the same for the data and the views
-- (ages and latencies come out exact); rolled back at the end.  Other tests'
-- channels are left out of the results.
BEGIN;
TRUNCATE notify_outbox, notify_attempts RESTART IDENTITY;
INSERT INTO notify_channels (name, kind) VALUES ('metrics-hooks', 'webhook');

INSERT INTO notify_outbox (dedup_key, template_key, channel, category, recipient, status, attempts,
						   created_at, send_at, next_attempt_at, sent_at, last_error)
SELECT d.key, 'metrics.test', d.channel, d.category, d.recipient, d.status, d.attempts,
	   now() - d.created_ago, now() - coalesce(d.due_ago, d.created_ago),
	   now() - coalesce(d.next_ago, d.due_ago, d.created_ago), now() - d.sent_ago, d.error
FROM (VALUES
	('m:sent:1', 'email', 'transactional', 'a@example.com', 'sent', 1, interval '10 min', NULL::interval, NULL::interval, interval '9 min', NULL),
	('m:sent:2', 'email', 'transactional', 'b@example.com', 'sent', 1, '20 min', NULL, NULL, '19 min 30 s', NULL),
	('m:sent:3', 'email', 'transactional', 'c@example.com', 'sent', 2, '30 min', NULL, NULL, '28 min', NULL),
	-- scheduled: created 5 hours ago, due 40 minutes ago, sent a minute later
	('m:sched:4', 'email', 'transactional', 'd@example.com', 'sent', 1, '5 hours', '40 min', NULL, '39 min', NULL),
	('m:failed:5', 'email', 'transactional', 'e@example.com', 'failed', 3, '2 hours', NULL, NULL, NULL,
	 'smtp: 550 5.1.1 <e@example.com>: no such user'),
	('m:due:6', 'email', 'transactional', 'f@example.com', 'pending', 0, '5 min', NULL, NULL, NULL, NULL),
	('m:sched:7', 'email', 'transactional', 'g@example.com', 'pending', 0, '1 min', '-1 hour', NULL, NULL, NULL),
	('m:sending:8', 'email', 'transactional', 'h@example.com', 'sending', 1, '1 min', NULL, NULL, NULL, NULL),
	('m:skipped:9', 'email', 'marketing', 'i@example.com', 'skipped', 0, '3 min', NULL, NULL, NULL, NULL),
	('m:canceled:10', 'email', 'transactional', 'j@example.com', 'canceled', 0, '2 days', NULL, NULL, NULL, NULL),
	('m:old:11', 'email', 'transactional', 'k@example.com', 'sent', 1, '3 days', NULL, NULL, '3 days -1 min', NULL),
	('m:sec:12', 'email', 'security', 'l@example.com', 'sent', 1, '50 min', NULL, NULL, '49 min 58 s', NULL),
	('m:hook:13', 'metrics-hooks', 'transactional', 'https://hooks.example/a', 'failed', 1, '10 min', NULL, NULL, NULL, 'http: status 404'),
	-- a transient failure 13 minutes ago, due again since 12 minutes
	('m:hook:14', 'metrics-hooks', 'transactional', 'https://hooks.example/b', 'pending', 1, '15 min', NULL, '12 min', NULL, 'http: status 503'),
	('m:due:15', 'email', 'transactional', 'B@Example.com', 'pending', 0, '2 min', NULL, NULL, NULL, NULL),
	('m:expired:16', 'email', 'transactional', 'm@example.com', 'expired', 0, '20 min', NULL, NULL, NULL, NULL))
	AS d(key, channel, category, recipient, status, attempts, created_ago, due_ago, next_ago, sent_ago, error)
ORDER BY substring(d.key from '[0-9]+$')::integer;
SELECT id, dedup_key FROM notify_outbox ORDER BY id;

INSERT INTO notify_attempts (outbox_id, attempt, started_at, finished_at, outcome, response_code, error)
SELECT o.id, a.attempt, now() - a.ago - interval '1 s', now() - a.ago, a.outcome, a.code, a.error
FROM (VALUES
	('m:sent:1', 1, interval '9 min', 'sent', 250, NULL),
	('m:sent:3', 1, '29 min', 'transient', 451, 'smtp: 451 4.7.1 <c@example.com>: try again later'),
	('m:sent:3', 2, '28 min', 'sent', 250, NULL),
	('m:failed:5', 1, '119 min', 'transient', 451, 'smtp: 451 4.7.1 <e@example.com>: try again later'),
	('m:failed:5', 2, '110 min', 'transient', 451, 'smtp: 451 4.7.1 <e@example.com>: try again later'),
	('m:failed:5', 3, '90 min', 'permanent', 550, 'smtp: 550 5.1.1 <e@example.com>: no such user'),
	('m:old:11', 1, '3 days', 'transient', 451, 'smtp: 451 old news'),
	('m:hook:13', 1, '9 min', 'permanent', 404, 'http: status 404'),
	('m:hook:14', 1, '13 min', 'transient', 503, 'http: status 503'))
	AS a(key, attempt, ago, outcome, code, error)
JOIN notify_outbox o ON o.dedup_key = a.key;

-- ---- the views ----
SELECT * FROM notify_stats WHERE channel IN ('email', 'metrics-hooks');
SELECT channel, sent, p50, p95, p99, max FROM notify_delivery_latency WHERE channel IN ('email', 'metrics-hooks');
SELECT channel, enabled, pending, due, sending, oldest_due_at = now() - interval '5 min' AS oldest_due_5_min_ago,
	   oldest_due_age, next_scheduled_at - now() AS next_scheduled_in
FROM notify_backlog WHERE channel IN ('email', 'metrics-hooks');
SELECT channel, error, attempts, permanent, transient, messages, failed_now,
	   now() - first_at AS first_ago, now() - last_at AS last_ago, last_outbox_id
FROM notify_failures WHERE channel IN ('email', 'metrics-hooks');
-- a paused channel shows as such, its rows stay in the backlog
UPDATE notify_channels SET enabled = false WHERE name = 'metrics-hooks';
SELECT channel, enabled, pending, due FROM notify_backlog WHERE channel = 'metrics-hooks';
UPDATE notify_channels SET enabled = true WHERE name = 'metrics-hooks';

-- error grouping masks addresses
SELECT notify_error_group('smtp: 550 5.1.1 <Bob.Smith@example.com>: unknown'),
	   notify_error_group('relay refused for bob@example.com, try later'),
	   notify_error_group(NULL);

-- ---- Prometheus ----
-- label values are escaped as the text format requires
SELECT notify_prometheus_labels('channel', 'email', 'error', E'say "hi"\\ \nbye');
-- every line: HELP, TYPE, or name{labels} value; the text ends with a newline
SELECT count(*) FILTER (WHERE line !~ '^(# HELP [a-z_]+ [^\n]+|# TYPE [a-z_]+ (gauge|counter)|[a-z_]+(\{[a-z_]+="([^"\\]|\\.)*"(,[a-z_]+="([^"\\]|\\.)*")*\})? -?[0-9]+(\.[0-9]+)?)$') AS malformed,
	   count(DISTINCT substring(line from '^# TYPE ([a-z_]+)')) AS families,
	   count(*) FILTER (WHERE line ~ '^# TYPE') AS type_lines,
	   count(*) FILTER (WHERE line ~ '^# HELP') AS help_lines
FROM regexp_split_to_table(rtrim(notify_metrics_prometheus(), E'\n'), E'\n') AS line;
SELECT right(notify_metrics_prometheus(), 1) = E'\n' AS ends_with_newline;
-- every sample's family was declared just before it (TYPE, then its samples)
SELECT count(*) AS samples_out_of_family
FROM (SELECT line, n, max(n) FILTER (WHERE line ~ '^# TYPE') OVER (ORDER BY n) AS type_n
	  FROM regexp_split_to_table(rtrim(notify_metrics_prometheus(), E'\n'), E'\n') WITH ORDINALITY AS t(line, n)) s
JOIN regexp_split_to_table(rtrim(notify_metrics_prometheus(), E'\n'), E'\n') WITH ORDINALITY AS t(line, n) ON t.n = s.type_n
WHERE s.line !~ '^#' AND split_part(split_part(s.line, '{', 1), ' ', 1) <> split_part(t.line, ' ', 3);
-- line by line (the worker's state and start time vary and are masked; it
-- serves another database here, so notify_worker_up is 0)
SELECT regexp_replace(regexp_replace(line, 'state="[^"]*"', 'state="..."'),
					  '^(notify_worker_start_time_seconds) .*', '\1 ...') AS line
FROM regexp_split_to_table(notify_metrics_prometheus(), E'\n') WITH ORDINALITY AS t(line, n)
WHERE line !~ 'channel="' OR line ~ 'channel="(email|metrics-hooks)"'
ORDER BY n;

-- what the outbox holds: only on request, since it counts every row
SELECT line FROM regexp_split_to_table(notify_metrics_prometheus(outbox_totals => true), E'\n') AS line
WHERE line ~ '^(# [A-Z]+ )?notify_outbox_messages' AND (line !~ 'channel="' OR line ~ 'channel="(email|metrics-hooks)"');
SELECT count(*) AS without_totals FROM regexp_split_to_table(notify_metrics_prometheus(), E'\n') AS line
WHERE line ~ 'notify_outbox_messages';

-- ---- admin: cancel by pattern or recipient ----
SELECT pg_temp.try($$SELECT notify_cancel_matching()$$);
SELECT pg_temp.try($$SELECT notify_cancel_matching(NULL, NULL)$$);
SELECT pg_temp.try($$SELECT notify_cancel_matching('%')$$);
SELECT pg_temp.try($$SELECT notify_cancel_matching('%_%', '')$$);
SELECT pg_temp.try($$SELECT notify_cancel_matching('', '  ')$$);
-- recipient: case-insensitive; only pending rows
SELECT notify_cancel_matching(recipient => 'b@example.com') AS canceled;
SELECT notify_cancel_matching('m:due:%') AS canceled;
SELECT notify_cancel_matching('m:sending:%') AS canceled_sending;
SELECT notify_cancel_matching('m:%', 'nobody@example.com') AS canceled_nobody;
SELECT dedup_key, status FROM notify_outbox WHERE dedup_key IN ('m:due:6', 'm:due:15', 'm:sending:8', 'm:sched:7') ORDER BY id;
SELECT action, object, detail FROM notify_audit_log WHERE detail ->> 'via' = 'notify_cancel_matching' ORDER BY id;

-- ---- admin: requeue failures ----
SELECT pg_temp.try($$SELECT notify_requeue_failed()$$);
SELECT pg_temp.try($$SELECT notify_requeue_failed(error_like => '%%')$$);
SELECT pg_temp.try($$SELECT notify_requeue_failed(channel => 'pigeon')$$);
-- a failed attempt in the last hour: the webhook's 404, not the email's 550 (90 minutes ago)
SELECT notify_requeue_failed(since => now() - interval '1 hour') AS requeued;
SELECT notify_requeue_failed(error_like => '%no such user%') AS requeued;
SELECT notify_requeue_failed(channel => 'metrics-hooks') AS requeued_again;
SELECT dedup_key, status, attempts, max_attempts, next_attempt_at = now() AS due_now
FROM notify_outbox WHERE dedup_key IN ('m:failed:5', 'm:hook:13') ORDER BY id;
SELECT action, object, detail - 'filter' AS detail, detail -> 'filter' ? 'since' AS by_since
FROM notify_audit_log WHERE detail ->> 'via' = 'notify_requeue_failed' ORDER BY id;
ROLLBACK;

-- ---- a monitoring role needs only EXECUTE on notify_metrics_prometheus ----
CREATE ROLE notify_monitor;
GRANT EXECUTE ON FUNCTION notify_metrics_prometheus(boolean) TO notify_monitor;
SET ROLE notify_monitor;
SELECT notify_metrics_prometheus() ~ '# TYPE notify_backlog_pending gauge' AS scraped;
SELECT pg_temp.try($$SELECT * FROM notify_backlog$$);
RESET ROLE;
DROP OWNED BY notify_monitor;
DROP ROLE notify_monitor;

-- the views are documented
SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented
FROM pg_class c
WHERE c.relname IN ('notify_stats', 'notify_delivery_latency', 'notify_backlog', 'notify_failures', 'notify_triggers',
					'notify_outbox_finished_idx', 'notify_outbox_sent_idx', 'notify_attempts_failed_idx')
ORDER BY 1;

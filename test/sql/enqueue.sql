-- notify_enqueue: rows, defaults, transactions, the bulk form, the queue view
SET client_min_messages = warning;
\set SHOW_CONTEXT never
TRUNCATE notify_outbox;
-- mechanics, not wording: give the keys used here a schema-less template
SELECT count(notify_template_put(k, 'en', 'Test {{{n}}}', 'Body')) AS test_templates
FROM unnest(ARRAY['ticket.replied', 'ticket.created', 'user.password_reset', 'billing.payment_failed',
                  'product.update', 'priv.check', 'race.test', 'user.signup', 'a.b']) k;

-- a business schema like the README's
CREATE TABLE tickets (id int PRIMARY KEY, subject text, customer text);

BEGIN;
INSERT INTO tickets VALUES (42, 'Printer on fire', 'a@example.com');
SELECT notify_enqueue('ticket.replied', 'a@example.com',
                      jsonb_build_object('ticket_id', 42),
                      dedup_key => 'ticket_reply:42:7') > 0 AS enqueued;
COMMIT;

SELECT template_key, recipient, payload, channel, category, status, priority,
       attempts, max_attempts, dedup_key, locale, actor, metadata,
       send_at = created_at AS send_now, next_attempt_at = send_at AS due_now,
       locked_until, sent_at, last_error
FROM notify_outbox;

-- rollback leaves nothing behind
BEGIN;
INSERT INTO tickets VALUES (43, 'Rolled back', 'b@example.com');
SELECT notify_enqueue('ticket.created', 'b@example.com') IS NOT NULL AS enqueued;
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM notify_outbox WHERE recipient = 'b@example.com';

-- a savepoint rolled back takes its row with it
BEGIN;
SAVEPOINT s;
SELECT notify_enqueue('ticket.created', 'c@example.com') IS NOT NULL AS enqueued;
ROLLBACK TO SAVEPOINT s;
SELECT notify_enqueue('ticket.created', 'd@example.com') IS NOT NULL AS enqueued;
COMMIT;
SELECT recipient FROM notify_outbox WHERE recipient IN ('c@example.com', 'd@example.com');

-- every named argument lands in its column; category decides the defaults
SELECT notify_enqueue(template_key => 'user.password_reset',
                      recipient => 'e@example.com',
                      payload => '{"reset_url": "https://example.com/r/abc"}',
                      category => 'security',
                      send_at => '2030-01-01 00:00:00+00',
                      locale => 'pt-BR',
                      actor => 'agent:17',
                      metadata => '{"tenant": "acme"}') IS NOT NULL AS enqueued;
SELECT category, priority, max_attempts, send_at, next_attempt_at, locale, actor, metadata
FROM notify_outbox WHERE recipient = 'e@example.com';

-- an explicit priority wins over the category's
SELECT notify_enqueue('ticket.created', 'f@example.com', priority => 99) IS NOT NULL AS enqueued;
SELECT priority FROM notify_outbox WHERE recipient = 'f@example.com';

-- the notify.actor setting is the default actor
SET notify.actor = 'job:nightly';
SELECT notify_enqueue('ticket.created', 'g@example.com') IS NOT NULL AS enqueued;
RESET notify.actor;
SELECT actor FROM notify_outbox WHERE recipient = 'g@example.com';

-- the bulk form: one row per recipient, in order, dedup_key suffixed
SELECT recipient, id > 0 AS has_id
FROM notify_enqueue_many('product.update', ARRAY['h1@example.com', 'h2@example.com', 'h3@example.com'],
                         '{"version": "2.0"}', category => 'product', dedup_key => 'release:2.0');
SELECT recipient, dedup_key FROM notify_outbox WHERE template_key = 'product.update' ORDER BY id;
-- run again: nothing new, same ids
SELECT count(*) AS same_ids
FROM notify_enqueue_many('product.update', ARRAY['h1@example.com', 'h2@example.com', 'h3@example.com'],
                         '{"version": "2.0"}', category => 'product', dedup_key => 'release:2.0') m
JOIN notify_outbox o ON o.id = m.id AND o.recipient = m.recipient;
SELECT count(*) AS product_rows FROM notify_outbox WHERE template_key = 'product.update';
-- one bad recipient and none of them is written
SELECT * FROM notify_enqueue_many('product.update', ARRAY['i1@example.com', 'not an address']);
SELECT count(*) AS i_rows FROM notify_outbox WHERE recipient LIKE 'i%';
SELECT * FROM notify_enqueue_many('product.update', NULL);

-- the admin view
SELECT channel, status, messages, due, oldest_age >= '0'::interval AS has_age
FROM notify_queue;

-- scheduled rows are not due
SELECT due FROM notify_queue WHERE status = 'pending' \gset
SELECT :due = (SELECT count(*) FROM notify_outbox WHERE next_attempt_at <= now()) AS due_matches;

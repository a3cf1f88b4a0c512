-- dedup keys: a second enqueue returns the first row's id and writes nothing
SET client_min_messages = warning;
-- mechanics, not wording: give the keys used here a schema-less template
SELECT count(notify_template_put(k, 'en', 'Test {{{n}}}', 'Body')) AS test_templates
FROM unnest(ARRAY['ticket.replied', 'ticket.created', 'user.password_reset', 'billing.payment_failed',
                  'product.update', 'priv.check', 'race.test', 'user.signup', 'a.b']) k;

SELECT notify_enqueue('billing.payment_failed', 'pay@example.com', '{"invoice": 1}',
                      dedup_key => 'payment_failed:1') AS first_id \gset
SELECT notify_enqueue('billing.payment_failed', 'pay@example.com', '{"invoice": 1}',
                      dedup_key => 'payment_failed:1') = :first_id AS same_id;
-- even with other arguments: the key alone decides
SELECT notify_enqueue('billing.payment_failed', 'other@example.com', '{"invoice": 2}',
                      dedup_key => 'payment_failed:1') = :first_id AS same_id;
SELECT count(*), min(recipient) FROM notify_outbox WHERE dedup_key = 'payment_failed:1';

-- within one transaction too
BEGIN;
SELECT notify_enqueue('ticket.created', 'x@example.com', dedup_key => 'tx:1') AS tx_id \gset
SELECT notify_enqueue('ticket.created', 'x@example.com', dedup_key => 'tx:1') = :tx_id AS same_id;
COMMIT;
SELECT count(*) FROM notify_outbox WHERE dedup_key = 'tx:1';

-- a rolled back enqueue frees the key
BEGIN;
SELECT notify_enqueue('ticket.created', 'y@example.com', dedup_key => 'rb:1') IS NOT NULL AS enqueued;
ROLLBACK;
SELECT notify_enqueue('ticket.created', 'y@example.com', dedup_key => 'rb:1') AS rb_id \gset
SELECT count(*) FROM notify_outbox WHERE dedup_key = 'rb:1' AND id = :rb_id;

-- rows without a key never collide
SELECT notify_enqueue('ticket.created', 'z@example.com') <> notify_enqueue('ticket.created', 'z@example.com') AS distinct_ids;

-- keys are exact: case and whitespace matter
SELECT notify_enqueue('ticket.created', 'z@example.com', dedup_key => 'Case:1')
    <> notify_enqueue('ticket.created', 'z@example.com', dedup_key => 'case:1') AS distinct_ids;

-- the unique constraint also guards direct inserts
INSERT INTO notify_outbox (dedup_key, template_key, recipient) VALUES ('payment_failed:1', 'a.b', 'q@example.com');

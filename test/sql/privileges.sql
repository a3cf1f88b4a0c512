-- PUBLIC gets nothing; an application needs only EXECUTE on notify_enqueue
SET client_min_messages = warning;
\set SHOW_CONTEXT never
-- mechanics, not wording: give the keys used here a schema-less template
SELECT count(notify_template_put(k, 'en', 'Test {{{n}}}', 'Body')) AS test_templates
FROM unnest(ARRAY['ticket.replied', 'ticket.created', 'user.password_reset', 'billing.payment_failed',
                  'product.update', 'priv.check', 'race.test', 'user.signup', 'a.b']) k;

CREATE ROLE notify_app LOGIN;
CREATE ROLE notify_nobody LOGIN;
GRANT EXECUTE ON FUNCTION notify_enqueue TO notify_app;

-- no function of the extension is executable by PUBLIC
SELECT count(*) AS public_functions
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'notify'
WHERE has_function_privilege('public', p.oid, 'EXECUTE');

-- no table or view is readable by PUBLIC
SELECT count(*) AS public_relations
FROM pg_class c
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'notify'
WHERE c.relkind IN ('r', 'v', 'p') AND has_table_privilege('notify_nobody', c.oid, 'SELECT');

-- application functions are SECURITY DEFINER with a pinned search_path
SELECT p.proname, p.prosecdef, p.proconfig
FROM pg_proc p WHERE p.proname IN ('notify_enqueue', 'notify_enqueue_many') ORDER BY 1;

SELECT notify_enqueue('priv.check', 'someone@example.com', '{"secret": 1}') IS NOT NULL AS admin_row;

SET ROLE notify_app;
SELECT notify_enqueue('priv.check', 'app@example.com') > 0 AS app_enqueued;
-- but it cannot read, change or remove rows
SELECT count(*) FROM notify_outbox;
UPDATE notify_outbox SET status = 'canceled';
DELETE FROM notify_outbox;
SELECT * FROM notify_queue;
SELECT * FROM notify_enqueue_many('priv.check', ARRAY['x@example.com']);
-- a search_path of its own does not change what notify_enqueue writes to
CREATE TEMP TABLE notify_outbox (id int);
SELECT notify_enqueue('priv.check', 'app2@example.com') > 0 AS app_enqueued;
DROP TABLE pg_temp.notify_outbox;
RESET ROLE;

SET ROLE notify_nobody;
SELECT notify_enqueue('priv.check', 'nobody@example.com');
SELECT notify_email_is_valid('a@example.com');
RESET ROLE;

SELECT recipient FROM notify_outbox WHERE template_key = 'priv.check' ORDER BY id;

DROP OWNED BY notify_app, notify_nobody;
DROP ROLE notify_app;
DROP ROLE notify_nobody;

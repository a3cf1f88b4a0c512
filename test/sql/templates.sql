-- the template registry: versions, activation, locale fallback, payload
-- schemas, immutability, preview, and the templates shipped in templates/
SET client_min_messages = warning;
\set SHOW_CONTEXT never
-- a fresh installation: other tests add template versions of their own
DROP EXTENSION notify CASCADE;
CREATE EXTENSION notify;
-- try(sql): runs sql and shows the SQLSTATE and message of its error
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

-- ---- the shipped templates (templates/, loaded by CREATE EXTENSION) ----
SELECT template_key, string_agg(locale || ' v' || version, ', ' ORDER BY locale) AS versions,
       min(category) AS category, bool_and(shipped) AS shipped,
       bool_and(text_body IS NOT NULL AND html_body IS NOT NULL) AS both_bodies
FROM notify_templates GROUP BY template_key ORDER BY template_key;
SELECT count(*) AS active_versions FROM notify_template_active;

BEGIN;

-- ---- versions and activation ----
SELECT notify_template_put('test.greeting', 'en', 'Hello {{{name}}}', 'Hi {{{name}}}, v1.') AS version;
SELECT notify_template_put('test.greeting', 'en', 'Hello {{{name}}}', 'Hi {{{name}}}, v2.') AS version;
SELECT version FROM notify_template_active WHERE template_key = 'test.greeting';
-- a draft is put without activating it, then previewed by version
SELECT notify_template_put('test.greeting', 'en', 'Hello {{{name}}}', 'Hi {{{name}}}, v3.', activate => false) AS version;
SELECT version FROM notify_template_active WHERE template_key = 'test.greeting';
SELECT text_body, template_version FROM notify_preview('test.greeting', '{"name": "Ann"}');
SELECT text_body, template_version FROM notify_preview('test.greeting', '{"name": "Ann"}', version => 3);
SELECT notify_template_activate('test.greeting', 'en', 3);
SELECT text_body, template_version FROM notify_preview('test.greeting', '{"name": "Ann"}');
-- roll back: activate an older version
SELECT notify_template_activate('test.greeting', 'en', 1);
SELECT text_body, template_version FROM notify_preview('test.greeting', '{"name": "Ann"}');
-- an activation seen and then rolled back (with its subtransaction) leaves
-- nothing behind in this backend's caches
DO $$
BEGIN
	PERFORM notify_template_activate('test.greeting', 'en', 2);
	RAISE WARNING 'inside: version %', (SELECT template_version FROM notify_template_resolve('test.greeting', 'en', '{}'));
	RAISE EXCEPTION 'undo';
EXCEPTION WHEN raise_exception THEN
	RAISE WARNING 'after rollback: version %', (SELECT template_version FROM notify_template_resolve('test.greeting', 'en', '{}'));
END;
$$;
-- activating the active version again adds nothing to the log
SELECT notify_template_activate('test.greeting', 'en', 1);
SELECT version, activated_by = session_user AS by_me FROM notify_template_activations
WHERE template_key = 'test.greeting' ORDER BY id;
SELECT version, category, created_by = session_user AS by_me, shipped FROM notify_templates
WHERE template_key = 'test.greeting' ORDER BY version;
SELECT pg_temp.try($q$SELECT notify_template_activate('test.greeting', 'en', 9)$q$);
SELECT pg_temp.try($q$SELECT notify_template_activate('test.greeting', 'fr', 1)$q$);
SELECT pg_temp.try($q$SELECT notify_template_activate('test.nothing', 'en', 1)$q$);

-- ---- immutability ----
SELECT pg_temp.try($q$UPDATE notify_templates SET text_body = 'changed' WHERE template_key = 'test.greeting' AND version = 2$q$);
SELECT pg_temp.try($q$UPDATE notify_templates SET version = 7 WHERE template_key = 'test.greeting' AND version = 2$q$);
SELECT pg_temp.try($q$DELETE FROM notify_templates WHERE template_key = 'test.greeting' AND version = 1$q$);
INSERT INTO notify_outbox (template_key, locale, template_version, recipient)
VALUES ('test.greeting', 'en', 2, 'ann@example.com');
SELECT pg_temp.try($q$DELETE FROM notify_templates WHERE template_key = 'test.greeting' AND version = 2$q$);
SELECT pg_temp.try($q$TRUNCATE notify_templates CASCADE$q$);
-- a version that is neither active nor referenced can go, with its activations
SELECT pg_temp.try($q$DELETE FROM notify_templates WHERE template_key = 'test.greeting' AND version = 3$q$);
SELECT string_agg(version::text, ', ' ORDER BY version) AS versions FROM notify_templates WHERE template_key = 'test.greeting';
SELECT string_agg(version::text, ', ' ORDER BY id) AS activations FROM notify_template_activations WHERE template_key = 'test.greeting';
-- its number is given out again, and every cache forgets the old wording
SELECT notify_template_put('test.greeting', 'en', 'Hello {{{name}}}', 'Hi {{{name}}}, new v3.', activate => false) AS version;
SELECT text_body FROM notify_template_render('test.greeting', 'en', 3, '{"name": "Ann"}');

-- ---- locales ----
SELECT notify_locale_canonical(l) FROM unnest(ARRAY['EN', 'pt-br', 'zh-hant-tw', 'sr-latn-rs', 'es-419', 'en-x-Private', 'de-CH-1996']) AS l;
SELECT pg_temp.try($q$SELECT notify_locale_canonical('en_US')$q$);
SELECT pg_temp.try($q$SELECT notify_locale_canonical('e')$q$);
SELECT notify_template_put('test.locales', 'en', 'en', 'English') AS en,
       notify_template_put('test.locales', 'pt', 'pt', 'Português') AS pt,
       notify_template_put('test.locales', 'ja', 'ja', '日本語') AS ja,
       notify_template_put('test.locales', 'zh-Hant', 'zh-Hant', '繁體中文') AS zh_hant;
SELECT l AS requested, r.locale, r.template_version
FROM unnest(ARRAY['pt-BR', 'pt', 'PT-br', 'ja', 'ja-JP', 'zh-Hant-TW', 'zh-TW', 'fr', 'en-GB', NULL]) AS l,
     notify_template_resolve('test.locales', l, '{}') AS r;
-- notify.default_locale decides the last step
SET LOCAL notify.default_locale = 'ja';
SELECT locale FROM notify_template_resolve('test.locales', 'fr', '{}');
SET LOCAL notify.default_locale = '';
SELECT locale FROM notify_template_resolve('test.locales', 'fr', '{}');
RESET notify.default_locale;
-- a template without a default-locale version: unknown locales are an error
SELECT notify_template_put('test.german', 'de', 'Hallo', 'Hallo {{{name}}}') AS version;
SELECT locale FROM notify_template_resolve('test.german', 'de-AT', '{}');
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.german', 'fr-CA', '{}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.german', NULL, '{}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.german', 'en-GB', '{}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.german', 'fr_CA', '{}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.unknown', 'en', '{}')$q$);
-- a draft is not active: resolving falls back past it
SELECT notify_template_put('test.german', 'fr', 'Bonjour', 'Bonjour', activate => false) AS version;
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.german', 'fr', '{}')$q$);
SELECT locale, template_version FROM notify_template_resolve('test.german', 'fr', '{}', 1);

-- ---- payload schemas ----
SELECT notify_template_put('test.order', 'en', 'Order {{{order_id}}}', '{{{customer_name}}}: {{{total}}}',
	schema => '{"type": "object",
	            "required": ["order_id", "customer_name", "total", "items"],
	            "properties": {"order_id": {"type": "integer"},
	                           "customer_name": {"type": "string", "description": "shown in the greeting"},
	                           "total": {"type": "number"},
	                           "items": {"type": "array"},
	                           "address": {"type": "object"},
	                           "gift": {"type": "boolean"},
	                           "note": {}}}') AS version;
SELECT * FROM notify_template_resolve('test.order', 'en',
	'{"order_id": 7, "customer_name": "Ann", "total": 9.5, "items": [], "address": {}, "gift": false, "note": null, "extra": 1}');
-- 1.0 is an integer, as JSON Schema says
SELECT template_version FROM notify_template_resolve('test.order', 'en', '{"order_id": 7.0, "customer_name": "A", "total": 1, "items": []}');
-- one error names every missing and every mistyped variable
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.order', 'en', '{"customer_name": 42, "total": "9.50"}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.order', 'en', '{"order_id": 7.5, "customer_name": null, "total": 1, "items": {}, "gift": "yes", "address": []}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.order', 'en', '{}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.order', 'en', '[1]')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_preview('test.order', '{"order_id": "7"}')$q$);

-- schemas outside the supported subset are refused (only the last is accepted)
SELECT s AS schema, pg_temp.try(format($q$SELECT notify_template_put('test.schema', 'en', 's', 't', schema => %L)$q$, s), false) AS result
FROM unnest(ARRAY[
	'[]',
	'"object"',
	'{"type": "array"}',
	'{"required": "a"}',
	'{"required": ["a", 1]}',
	'{"properties": []}',
	'{"properties": {"a": "string"}}',
	'{"properties": {"a": {"type": "date"}}}',
	'{"properties": {"a": {"type": ["string", "null"]}}}',
	'{"properties": {"a": {"type": "string", "minLength": 1}}}',
	'{"additionalProperties": false}',
	'{"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "t", "description": "d", "type": "object"}'
]) AS s;
SELECT count(*) AS test_schema_versions FROM notify_templates WHERE template_key = 'test.schema';

-- ---- templates that do not parse: part, line and column; nothing written ----
SELECT pg_temp.try($q$SELECT notify_template_put('test.broken', 'en', 'Hi {{#name}}', 'text')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.broken', 'en', 'Hi', E'line 1\nline 2 {{/items}}')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.broken', 'en', 'Hi', 'text', E'<p>\n  {{name</p>')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.broken', 'en', 'Hi', 'text', '{{=<% %>=}} <%x')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.broken', 'en', 'Hi', '{{<parent}}{{/parent}}')$q$);
SELECT count(*) AS test_broken_versions FROM notify_templates WHERE template_key = 'test.broken';

-- ---- other bad input ----
SELECT pg_temp.try($q$SELECT notify_template_put('test.bad', 'en', E'Hi\r\nBcc: x@example.com', 'text')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.bad', 'en', 'Hi', NULL, NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('Test.Bad', 'en', 'Hi', 'text')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('nodomain', 'en', 'Hi', 'text')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.bad', 'english', 'Hi', 'text')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.bad', 'en', 'Hi', 'text', category => 'nope')$q$);
SELECT count(*) AS test_bad_versions FROM notify_templates WHERE template_key = 'test.bad';

-- {{x}} in a subject or text body HTML-escapes: a warning says so
SELECT notify_template_put('test.escape', 'en', 'For {{name}}', 'Dear {{name}}', '<p>{{name}}</p>') AS version;
SELECT * FROM notify_preview('test.escape', '{"name": "Tom & Jerry"}');

-- ---- NULL arguments ----
SELECT pg_temp.try($q$SELECT notify_template_put(NULL, 'en', 's', 't')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.null', NULL, 's', 't')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.null', 'en', NULL, 't')$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.null', 'en', 's', 't', category => NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_template_put('test.null', 'en', 's', 't', activate => NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_template_activate(NULL, 'en', 1)$q$);
SELECT pg_temp.try($q$SELECT notify_template_activate('test.greeting', NULL, 1)$q$);
SELECT pg_temp.try($q$SELECT notify_template_activate('test.greeting', 'en', NULL)$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve(NULL, 'en', '{}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_resolve('test.greeting', 'en', NULL)$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_preview(NULL, '{}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_preview('test.greeting', NULL)$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_render('test.greeting', 'en', NULL, '{}')$q$);
SELECT pg_temp.try($q$SELECT * FROM notify_template_render('test.greeting', 'en', 99, '{}')$q$);
SELECT count(*) AS test_null_versions FROM notify_templates WHERE template_key = 'test.null';

-- ---- rendering: the subject stays one line, HTML is escaped in the HTML body ----
SELECT notify_template_put('test.render', 'en', 'Re: {{{subject}}}', '{{{body}}}', '<p>{{body}}</p>') AS version;
SELECT * FROM notify_preview('test.render', jsonb_build_object('subject', E'two\r\nlines\nBcc: x@example.com', 'body', '<b>"A" & ''B''</b>'));

ROLLBACK;

-- ---- preview of the shipped ticket.replied, English and Japanese ----
\pset format unaligned
\pset fieldsep '\n----\n'
SELECT * FROM notify_preview('ticket.replied', '{
	"product_name": "Acme Cloud", "customer_name": "Ann O''Brien", "ticket_id": 4821,
	"ticket_subject": "Cannot export <CSV> & PDF", "agent_name": "Sam",
	"reply_body": "Hi Ann,\nexports are fixed in 2.4.1.\n\nSam",
	"ticket_url": "https://help.example.com/tickets/4821?ref=mail&x=1"}', 'en-US');
SELECT * FROM notify_preview('ticket.replied', '{
	"product_name": "Acme クラウド", "customer_name": "山田 太郎", "ticket_id": 4821,
	"ticket_subject": "CSVを書き出せません", "agent_name": "佐藤",
	"reply_body": "山田様\nバージョン2.4.1で修正いたしました。\n\n佐藤",
	"ticket_url": "https://help.example.com/tickets/4821"}', 'ja-JP');
\pset format aligned
-- Japanese text comes out byte for byte as it went in
SELECT position('担当の佐藤から回答が届きました。' IN text_body) > 0 AS template_text,
       position(E'山田様\nバージョン2.4.1で修正いたしました。' IN text_body) > 0 AS payload_text,
       subject = 'Re: 【#4821】CSVを書き出せません' AS subject
FROM notify_preview('ticket.replied', '{
	"product_name": "Acme クラウド", "ticket_id": 4821, "ticket_subject": "CSVを書き出せません",
	"agent_name": "佐藤", "reply_body": "山田様\nバージョン2.4.1で修正いたしました。\n\n佐藤",
	"ticket_url": "https://help.example.com/tickets/4821"}', 'ja');
-- every shipped template renders in both locales with only its required variables
SELECT t.template_key, t.locale,
       length(p.subject) > 0 AND length(p.text_body) > 0 AND length(p.html_body) > 0 AS renders
FROM notify_templates t,
     LATERAL (SELECT jsonb_object_agg(r, CASE WHEN t.schema->'properties'->r->>'type' = 'integer' THEN '1'::jsonb ELSE '"x"'::jsonb END) AS payload
              FROM jsonb_array_elements_text(t.schema->'required') AS r) AS req,
     LATERAL notify_preview(t.template_key, req.payload, t.locale) AS p
WHERE t.shipped ORDER BY 1, 2;

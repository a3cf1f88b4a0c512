-- bad input: a clear error with a SQLSTATE, and nothing written
SET client_min_messages = warning;
TRUNCATE notify_outbox;
\set SHOW_CONTEXT never
-- mechanics, not wording: give the keys used here a schema-less template
SELECT count(notify_template_put(k, 'en', 'Test {{{n}}}', 'Body')) AS test_templates
FROM unnest(ARRAY['ticket.replied', 'ticket.created', 'user.password_reset', 'billing.payment_failed',
                  'product.update', 'priv.check', 'race.test', 'user.signup', 'a.b']) k;
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

-- RFC 5321 mailbox vectors (../shared/conformance/email, BSD licence)
CREATE TEMP TABLE addr (address text, expect text, note text);
\copy addr FROM '../shared/conformance/email/addresses.tsv'
CREATE TEMP TABLE addr_edge (address text, expect text, note text);
\copy addr_edge FROM '../shared/conformance/email/addresses_edge.tsv'

SELECT count(*) AS cases,
       count(*) FILTER (WHERE expect = 'valid') AS valid_cases,
       count(*) FILTER (WHERE notify_email_is_valid(address) = (expect = 'valid')) AS agreeing
FROM addr;
-- any disagreement is listed here (none expected)
SELECT notify_quote(address), expect, note FROM addr
WHERE notify_email_is_valid(address) IS DISTINCT FROM (expect = 'valid');

-- the edge file: quoted local parts and address literals, as RFC 5321 has them
SELECT count(*) AS cases,
       count(*) FILTER (WHERE notify_email_is_valid(address) = (expect = 'valid')) AS agreeing
FROM addr_edge;
SELECT notify_quote(address), expect, note FROM addr_edge
WHERE notify_email_is_valid(address) IS DISTINCT FROM (expect = 'valid');

-- notify_enqueue accepts every valid vector and rejects every invalid one
DO $$
DECLARE
	r record;
	accepted int := 0;
	rejected int := 0;
	wrong text := '';
BEGIN
	FOR r IN SELECT * FROM addr UNION ALL SELECT * FROM addr_edge LOOP
		BEGIN
			PERFORM notify_enqueue('user.signup', r.address);
			accepted := accepted + 1;
			IF r.expect <> 'valid' THEN wrong := wrong || ' accepted:' || notify_quote(r.address); END IF;
		EXCEPTION WHEN invalid_parameter_value THEN
			rejected := rejected + 1;
			IF r.expect = 'valid' THEN wrong := wrong || ' rejected:' || notify_quote(r.address); END IF;
		END;
	END LOOP;
	RAISE WARNING 'enqueue: % accepted, % rejected, mismatches:%', accepted, rejected, coalesce(nullif(wrong, ''), ' none');
END;
$$;
SELECT count(*) AS rows_written FROM notify_outbox WHERE template_key = 'user.signup';
DELETE FROM notify_outbox WHERE template_key = 'user.signup';

-- header injection through the recipient
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', E'a@example.com\r\nBcc: victim@example.com')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', E'a@example.com\n')$q$);

-- NULLs
SELECT pg_temp.try($q$SELECT notify_enqueue(NULL, 'a@example.com')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', channel => NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', metadata => NULL)$q$);

-- payloads
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', '[1, 2]')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', '"text"')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', 'null'::jsonb)$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', jsonb_build_object('blob', repeat('x', 70000)))$q$);
SET notify.max_payload_bytes = 1024;
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', jsonb_build_object('blob', repeat('x', 2000)))$q$);
RESET notify.max_payload_bytes;
-- the limit is on the JSON text exactly (octet_length(payload::text)): a
-- payload of exactly the limit is accepted, one byte less rejects it, for
-- text with escapes, nesting, numbers whose text is longer than their
-- stored form, and the other scalars
CREATE FUNCTION pg_temp.limit_is_exact(p jsonb) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE n int := octet_length(p::text);
BEGIN
	PERFORM set_config('notify.max_payload_bytes', n::text, true);
	PERFORM notify_enqueue('notify.message', 'a@example.com', p);
	PERFORM set_config('notify.max_payload_bytes', (n - 1)::text, true);
	BEGIN
		PERFORM notify_enqueue('notify.message', 'a@example.com', p);
		RETURN n || ' bytes: accepted over the limit';
	EXCEPTION WHEN OTHERS THEN
		RETURN n || ' bytes: ' || SQLSTATE;
	END;
END $f$;
SELECT pg_temp.limit_is_exact(jsonb_build_object('subject', 's', 'text', 't') || p::jsonb) AS exact_limit
FROM (VALUES
	(jsonb_build_object('pad', repeat('x', 300))),
	(jsonb_build_object('escaped', repeat(E'\u0001"\\\n\t', 60))),
	(jsonb_build_object('nested', '[[[], {}], {"a": [1, 2, {"b": null}]}, [true, false]]'::jsonb, 'pad', repeat('y', 250))),
	(jsonb_build_object('big', 1e300::numeric, 'small', -0.000000001::numeric)),
	(jsonb_build_object('unicode', repeat('ü€😀', 40)))
) AS t(p);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', metadata => '[]')$q$);

-- template keys
SELECT pg_temp.try($q$SELECT notify_enqueue('signup', 'a@example.com')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('User.Signup', 'a@example.com')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.sign-up', 'a@example.com')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user..signup', 'a@example.com')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.' || repeat('x', 130), 'a@example.com')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue(E'user.signup\n', 'a@example.com')$q$);

-- channels, categories, dedup keys, locales
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', channel => 'pigeon')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', category => 'gossip')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', dedup_key => repeat('k', 257))$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', dedup_key => '')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', locale => 'english please')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', expires_at => now() - interval '1 minute')$q$, false);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', send_at => now() + interval '2 hours', expires_at => now() + interval '1 hour')$q$, false);

-- wrong types are caught by PostgreSQL before notify runs
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', '{not json}')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.signup', 'a@example.com', priority => 'high')$q$);

-- nothing of the above was written
SELECT count(*) AS rows_written FROM notify_outbox WHERE template_key LIKE 'user.%';

-- the table's own checks hold against direct writes
SELECT pg_temp.try($q$INSERT INTO notify_outbox (template_key, recipient, payload) VALUES ('a.b', 'q@example.com', '[]')$q$, false);
SELECT pg_temp.try($q$INSERT INTO notify_outbox (template_key, recipient, status) VALUES ('a.b', 'q@example.com', 'lost')$q$, false);

-- templates: email needs a registered template, and the payload must satisfy its schema
SELECT pg_temp.try($q$SELECT notify_enqueue('nope.unknown', 'a@example.com', '{}')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.email_verification', 'a@example.com', '{"verify_url": 42}')$q$);
SELECT pg_temp.try($q$SELECT notify_enqueue('user.email_verification', 'a@example.com', '{}', locale => 'xx')$q$);
-- a webhook event needs no template: its payload is the body
SELECT notify_channel_put('test-hooks', 'webhook', '{}');
SELECT notify_enqueue('order.shipped', 'https://example.com/hook', '{"order": 1}', channel => 'test-hooks') > 0 AS webhook_without_template;
SELECT template_version IS NULL AS no_template FROM notify_outbox WHERE channel = 'test-hooks';
DELETE FROM notify_outbox WHERE channel = 'test-hooks';
DELETE FROM notify_channels WHERE name = 'test-hooks';

-- categories, preferences, suppressions, one-click unsubscribe tokens,
-- provider events, and notify_decide()
SET client_min_messages = warning;
\set SHOW_CONTEXT never
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
-- rows written so far by this test, to show that failed calls write nothing
CREATE FUNCTION pg_temp.written() RETURNS text LANGUAGE sql AS $$
	SELECT format('preferences=%s suppressions=%s audit=%s',
		(SELECT count(*) FROM notify_preferences), (SELECT count(*) FROM notify_suppressions),
		(SELECT count(*) FROM notify_audit_log WHERE id > current_setting('pref.audit0')::bigint));
$$;
-- the base64url payload of a token, decoded
CREATE FUNCTION pg_temp.payload(token text) RETURNS bytea LANGUAGE sql AS $$
	SELECT decode(rpad(translate(split_part(token, '.', 1), '-_', '+/'),
					   (length(split_part(token, '.', 1)) + 3) / 4 * 4, '='), 'base64');
$$;
CREATE FUNCTION pg_temp.b64url(b bytea) RETURNS text LANGUAGE sql AS $$
	SELECT rtrim(translate(replace(encode(b, 'base64'), E'\n', ''), '+/', '-_'), '=');
$$;
-- token with its payload replaced (the signature kept)
CREATE FUNCTION pg_temp.with_payload(token text, payload bytea) RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.b64url(payload) || '.' || split_part(token, '.', 2);
$$;
-- HMAC-SHA256 (RFC 2104) over sha256(), for keys of at most 64 bytes
CREATE FUNCTION pg_temp.hmac(key bytea, msg bytea) RETURNS bytea LANGUAGE sql AS $$
	SELECT sha256(string_agg(set_byte('\x00'::bytea, 0, b # 92), ''::bytea ORDER BY n)
				  || sha256(string_agg(set_byte('\x00'::bytea, 0, b # 54), ''::bytea ORDER BY n) || msg))
	FROM (SELECT n, CASE WHEN n < octet_length(key) THEN get_byte(key, n) ELSE 0 END AS b
		  FROM generate_series(0, 63) n) k;
$$;
-- notify_ingest_event with outbox ids masked (they depend on earlier tests)
CREATE FUNCTION pg_temp.ingest(provider text, event jsonb) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(notify_ingest_event(provider, event), 'outbox [0-9]+', 'outbox #', 'g');
$$;
-- flip the low bit of byte n (0-based) of the payload or of the MAC
CREATE FUNCTION pg_temp.flip(token text, part int, n int) RETURNS text LANGUAGE sql AS $$
	SELECT CASE part
		WHEN 1 THEN pg_temp.b64url(set_byte(pg_temp.payload(token), n, get_byte(pg_temp.payload(token), n) # 1))
					|| '.' || split_part(token, '.', 2)
		ELSE split_part(token, '.', 1) || '.' ||
			 pg_temp.b64url(set_byte(pg_temp.payload(split_part(token, '.', 2)), n,
									 get_byte(pg_temp.payload(split_part(token, '.', 2)), n) # 1))
	END;
$$;
SELECT set_config('pref.audit0', coalesce(max(id), 0)::text, false) IS NOT NULL AS audit_mark FROM notify_audit_log;
SELECT set_config('pref.key0', max(key_id)::text, false) IS NOT NULL AS key_mark FROM notify_unsubscribe_keys;

-- ---- categories ----
SELECT name, mandatory, default_opt_in, unsubscribe_header FROM notify_categories
WHERE name IN ('transactional', 'security', 'billing', 'product', 'marketing', 'internal') ORDER BY name;
SELECT notify_category_put('digest', 'Weekly digest', default_opt_in => false, unsubscribe_header => true);
SELECT notify_category_put('digest', default_priority => -5);
SELECT name, description, mandatory, default_opt_in, unsubscribe_header, default_priority, default_max_attempts
FROM notify_categories WHERE name = 'digest';
SELECT pg_temp.try($q$SELECT notify_category_put('legal', mandatory => true, default_opt_in => false)$q$);
SELECT pg_temp.try($q$SELECT notify_category_put('legal', mandatory => true, unsubscribe_header => true)$q$);
SELECT pg_temp.try($q$SELECT notify_category_put('Bad Name')$q$);
SELECT pg_temp.try($q$SELECT notify_category_put(NULL)$q$);
SELECT pg_temp.try($q$UPDATE notify_categories SET unsubscribe_header = true WHERE name = 'security'$q$, false);

-- ---- addresses: the domain is case-insensitive, the local part is not ----
SELECT a, notify_normalize_address(a)
FROM unnest(ARRAY['Alice.Smith@EXAMPLE.Com', '"Odd@Local"@Example.ORG', 'bob@xn--BCHER-KVA.example',
				  'https://Hooks.Example.com/In@Box', '#Ops', '@U024BE7LH', 'no-at-sign']) a;

-- ---- preferences: bad input is refused and writes nothing ----
SELECT pg_temp.written() AS before;
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', 'nosuch', false)$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', 'security', false)$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', 'billing', false, channel => 'email')$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference(NULL, 'marketing', false)$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', NULL, false)$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', 'marketing', NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', 'marketing', false, source => NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', 'marketing', false, source => 'web')$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', 'marketing', false, channel => 'fax')$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', 'marketing', false, tenant => '')$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference(E'a@example.com\r\nBcc: x@example.com', 'marketing', false)$q$);
SELECT pg_temp.try($q$SELECT notify_set_preference('', 'marketing', false)$q$);
SELECT pg_temp.try($q$SELECT notify_get_preferences(NULL)$q$);
SELECT pg_temp.written() AS after;

-- opting in to a mandatory category is harmless; a repeat changes nothing;
-- the local part is case-sensitive (RFC 5321), so A@ and a@ are two people
SELECT notify_set_preference('a@example.com', 'security', true) AS changed;
SELECT notify_set_preference('A@Example.COM', 'marketing', true, source => 'import', actor => 'crm-sync') AS changed;
SELECT notify_set_preference('A@example.com', 'marketing', true) AS changed_again;
SELECT notify_set_preference('a@EXAMPLE.com', 'marketing', true) AS other_recipient;
SELECT recipient, tenant, category, channel, opted_in, source, changed_by = session_user AS by_me, actor
FROM notify_preferences ORDER BY id;
SELECT pg_temp.written();

-- ---- the decision matrix ----
-- One recipient per (preference, suppression) scenario; each preference
-- is set for every non-mandatory category.  Mandatory categories get
-- their opt-outs written straight into the table (as if the category had
-- become mandatory later): they must be ignored.
INSERT INTO notify_channels (name, kind, settings) VALUES ('pref-hooks', 'webhook', '{"url": "https://hooks.example.com/in"}');
CREATE TEMP TABLE scenario (pref text, supp text, recipient text);
INSERT INTO scenario
SELECT p, s, p || '.' || s || '@Matrix.Example'
FROM unnest(ARRAY['none', 'in', 'out', 'out_email', 'out_hooks']) p, unnest(ARRAY['none', 'active', 'expired']) s;
SELECT count(notify_set_preference(sc.recipient, c.name,
			sc.pref = 'in', CASE sc.pref WHEN 'out_email' THEN 'email' WHEN 'out_hooks' THEN 'pref-hooks' END))
FROM scenario sc, notify_categories c
WHERE sc.pref <> 'none' AND NOT c.mandatory AND c.name IN ('transactional', 'product', 'marketing');
INSERT INTO notify_preferences (recipient, category, channel, opted_in, source)
SELECT notify_normalize_address(sc.recipient), 'security',
	   CASE sc.pref WHEN 'out_email' THEN 'email' WHEN 'out_hooks' THEN 'pref-hooks' END, false, 'admin'
FROM scenario sc WHERE sc.pref LIKE 'out%';
SELECT count(notify_suppress(sc.recipient, 'hard_bounce', 'smtp', detail => '550 5.1.1 no such user'))
FROM scenario sc WHERE sc.supp <> 'none';
UPDATE notify_suppressions SET expires_at = now() - interval '1 day' WHERE address LIKE '%.expired@matrix.example';

SELECT sc.pref, sc.supp, ch AS channel,
	   coalesce(notify_decide(sc.recipient, 'transactional', ch), 'send') AS transactional,
	   coalesce(notify_decide(sc.recipient, 'security', ch), 'send') AS security,
	   coalesce(notify_decide(sc.recipient, 'product', ch), 'send') AS product,
	   coalesce(notify_decide(sc.recipient, 'marketing', ch), 'send') AS marketing
FROM scenario sc, unnest(ARRAY['email', 'pref-hooks']) ch
ORDER BY array_position(ARRAY['none', 'in', 'out', 'out_email', 'out_hooks'], sc.pref),
		 array_position(ARRAY['none', 'active', 'expired'], sc.supp), ch;

-- webhook and Slack recipients: only rules for that exact recipient apply
SELECT coalesce(notify_decide('https://hooks.example.com/a', 'marketing', 'pref-hooks'), 'send') AS url_default;
SELECT notify_suppress('https://hooks.example.com/A', 'manual');
SELECT notify_set_preference('https://hooks.example.com/b', 'product', false);
SELECT u, coalesce(notify_decide(u, 'product', 'pref-hooks'), 'send') AS product
FROM unnest(ARRAY['https://hooks.example.com/A', 'https://hooks.example.com/a', 'https://hooks.example.com/b']) u;

-- bad input to the decision
SELECT pg_temp.try($q$SELECT notify_decide(NULL, 'marketing', 'email')$q$);
SELECT pg_temp.try($q$SELECT notify_decide('a@example.com', NULL, 'email')$q$);
SELECT pg_temp.try($q$SELECT notify_decide('a@example.com', 'marketing', NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_decide('a@example.com', 'nosuch', 'email')$q$);
-- (the channel is looked up only when its kind matters: no choice, opt-in category)
SELECT pg_temp.try($q$SELECT notify_decide('nobody@example.com', 'marketing', 'fax')$q$);
SELECT notify_decide('a@example.com', 'marketing', 'fax') IS NULL AS opted_in_anyway;

-- a change is seen by the rest of its transaction, and undone with it
BEGIN;
SELECT notify_set_preference('in-xact@example.com', 'product', false);
SELECT notify_decide('in-xact@example.com', 'product', 'email') AS in_transaction;
ROLLBACK;
SELECT coalesce(notify_decide('in-xact@example.com', 'product', 'email'), 'send') AS after_rollback;

-- ---- tenants and channels: the most specific choice wins ----
-- (tenant, channel) > (tenant, all channels) > (all tenants, channel) > (all, all)
SELECT notify_set_preference('t@example.com', 'product', false);                           -- all, all
SELECT notify_set_preference('t@example.com', 'product', true, tenant => 'acme');           -- acme, all
SELECT notify_set_preference('t@example.com', 'product', false, channel => 'pref-hooks');   -- all, hooks
SELECT notify_set_preference('t@example.com', 'product', false, 'email', 'acme');           -- acme, email
SELECT notify_set_preference('t@example.com', 'marketing', true, tenant => 'acme');
SELECT tenant, ch AS channel, coalesce(notify_decide('t@example.com', 'product', ch, tenant), 'send') AS product,
	   coalesce(notify_decide('t@example.com', 'marketing', ch, tenant), 'send') AS marketing
FROM unnest(ARRAY[NULL, 'acme', 'globex']) tenant, unnest(ARRAY['email', 'pref-hooks']) ch
ORDER BY tenant NULLS FIRST, ch;
SELECT * FROM notify_get_preferences('T@EXAMPLE.COM') WHERE category IN ('product', 'marketing', 'security');
SELECT category, channel, opted_in, source, scope_tenant
FROM notify_get_preferences('t@example.com', 'acme') WHERE category IN ('product', 'marketing', 'digest');
-- notify_get_preferences agrees with notify_decide on every scenario and category
-- (the row for channel email if there is one, else the all-channels row)
SELECT count(*) AS disagreements
FROM (SELECT DISTINCT ON (sc.recipient, g.category) sc.recipient, g.category, g.opted_in
	  FROM scenario sc, notify_get_preferences(sc.recipient) g
	  WHERE sc.supp = 'none' AND coalesce(g.channel, 'email') = 'email'
	  ORDER BY sc.recipient, g.category, g.channel NULLS LAST) e
WHERE e.opted_in IS DISTINCT FROM (notify_decide(e.recipient, e.category, 'email') IS NULL);

-- ---- suppressions ----
SELECT pg_temp.try($q$SELECT notify_suppress('s@example.com', 'bored')$q$);
SELECT pg_temp.try($q$SELECT notify_suppress('s@example.com', NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_suppress(NULL, 'manual')$q$);
SELECT pg_temp.try($q$SELECT notify_suppress('s@example.com', 'manual', 'Admin Console')$q$);
SELECT pg_temp.try($q$SELECT notify_suppress('s@example.com', 'manual', expires_at => now() - interval '1 minute')$q$, false);
SELECT notify_suppress('s@Example.com', 'manual', expires_at => now() + interval '7 days') AS new;
SELECT coalesce(notify_decide('s@EXAMPLE.com', 'security', 'email'), 'send') AS security_while_suppressed;
-- a renewal never shortens a suppression in force
SELECT notify_suppress('s@example.com', 'complaint', 'postmark') AS new;
SELECT notify_suppress('s@example.com', 'manual', expires_at => now() + interval '1 day') AS new;
SELECT address, reason, source, expires_at IS NULL AS permanent FROM notify_suppressions WHERE address = 's@example.com';
-- an expired suppression no longer applies, and a new one replaces it
UPDATE notify_suppressions SET expires_at = now() - interval '1 second' WHERE address = 's@example.com';
SELECT coalesce(notify_decide('s@EXAMPLE.com', 'transactional', 'email'), 'send') AS after_expiry;
SELECT notify_suppress('s@EXAMPLE.com', 'manual', expires_at => now() + interval '1 hour') AS new;
SELECT reason, expires_at > now() AS expires_later FROM notify_suppressions WHERE address = 's@example.com';
SELECT notify_unsuppress('s@example.COM') AS removed, notify_unsuppress('s@example.com') AS removed_again;
SELECT coalesce(notify_decide('s@EXAMPLE.com', 'transactional', 'email'), 'send') AS after_unsuppress;

-- permanent SMTP failures: only recipient-address statuses suppress
SELECT st, notify_suppress_from_failure('f' || n || '@example.com', st, '550 no') AS suppressed
FROM unnest(ARRAY['5.1.1', '5.1.2', '5.1.10', '5.1.7', '5.1.8', '5.7.1', '4.1.1', '5.1.1 ', NULL]) WITH ORDINALITY AS t(st, n);
SELECT address, reason, source, detail FROM notify_suppressions WHERE source = 'smtp' AND address LIKE 'f%' ORDER BY address;

-- ---- one-click unsubscribe tokens ----
SELECT notify_unsubscribe_token('Carol@Example.COM', 'marketing') AS tok \gset
-- version 1, no flags, key id, category, recipient (domain lower-cased)
SELECT get_byte(p, 0) AS version, get_byte(p, 1) AS flags,
	   (get_byte(p, 2) << 24 | get_byte(p, 3) << 16 | get_byte(p, 4) << 8 | get_byte(p, 5))
		 = notify_unsubscribe_key_id(:'tok') AS key_id_matches,
	   convert_from(substr(p, 8, get_byte(p, 6)), 'UTF8') AS category,
	   convert_from(substr(p, 7 + get_byte(p, 6) + 3), 'UTF8') AS recipient,
	   length(:'tok') AS token_length, :'tok' ~ '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$' AS url_safe
FROM pg_temp.payload(:'tok') p;
SELECT :'tok' = notify_unsubscribe_sign(k.key_id, k.secret, 'Carol@example.com', 'marketing', NULL, NULL) AS deterministic
FROM notify_unsubscribe_keys k WHERE k.key_id = notify_unsubscribe_key_id(:'tok');
SELECT notify_set_preference('carol@example.com', 'marketing', true) AS opted_in;
SELECT coalesce(notify_decide('Carol@example.com', 'marketing', 'email'), 'send') AS before_click;
SELECT * FROM notify_unsubscribe(:'tok');
SELECT coalesce(notify_decide('Carol@example.com', 'marketing', 'email'), 'send') AS after_click;
-- idempotent: a second click is a success that writes nothing
SELECT pg_temp.written() AS before;
SELECT * FROM notify_unsubscribe(:'tok');
SELECT pg_temp.written() AS after;
SELECT recipient, category, channel, tenant, opted_in, source FROM notify_preferences WHERE recipient = 'Carol@example.com';

-- an address never seen before: the same success
SELECT * FROM notify_unsubscribe(notify_unsubscribe_token('stranger@nowhere.example', 'product'));
-- tenant-scoped token: opts out for that tenant only
SELECT * FROM notify_unsubscribe(notify_unsubscribe_token('dan@example.com', 'product', 'acme'));
SELECT coalesce(notify_decide('dan@example.com', 'product', 'email', t), 'send') AS product, t AS tenant
FROM unnest(ARRAY['acme', 'globex', NULL]) t;

-- tokens for mandatory or unknown categories are not made
SELECT pg_temp.try($q$SELECT notify_unsubscribe_token('a@example.com', 'security')$q$);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_token('a@example.com', 'nosuch')$q$);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_token(NULL, 'marketing')$q$);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_token('a@example.com', NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_token('a@example.com', 'marketing', '')$q$);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_token('a@example.com', 'marketing', expires_at => 'infinity')$q$);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_token('a@example.com', 'marketing', expires_at => '2200-01-01')$q$);

-- bad and tampered tokens: 22023, nothing written
SELECT notify_unsubscribe_token('erin@example.com', 'marketing') AS etok \gset
SELECT pg_temp.written() AS before;
SELECT what, pg_temp.try(format('SELECT * FROM notify_unsubscribe(%L)', t)) AS result
FROM (VALUES
	('flipped payload: version', pg_temp.flip(:'etok', 1, 0)),
	('flipped payload: key id', pg_temp.flip(:'etok', 1, 5)),
	('flipped payload: category', pg_temp.flip(:'etok', 1, 8)),
	('flipped payload: recipient', pg_temp.flip(:'etok', 1, 20)),
	('flipped MAC: first byte', pg_temp.flip(:'etok', 2, 0)),
	('flipped MAC: last byte', pg_temp.flip(:'etok', 2, 31)),
	('other recipient, same MAC', pg_temp.with_payload(:'etok', overlay(pg_temp.payload(:'etok') PLACING 'eric'::bytea FROM position('erin'::bytea IN pg_temp.payload(:'etok'))))),
	('MAC cut short', left(:'etok', -2)),
	('MAC missing', split_part(:'etok', '.', 1)),
	('MAC only', '.' || split_part(:'etok', '.', 2)),
	('empty', ''),
	('padding', :'etok' || '='),
	('two dots', :'etok' || '.x'),
	('not base64url', overlay(:'etok' PLACING '+' FROM 3 FOR 1)),
	('white space', ' ' || :'etok'),
	('non-canonical last character', left(:'etok', -1) || translate(right(:'etok', 1), 'AEIMQUYcgkosw048', 'BFJNRVZdhlptx159')),
	('too long', repeat('A', 5000) || '.' || split_part(:'etok', '.', 2)),
	('another key''s MAC', pg_temp.with_payload(
		notify_unsubscribe_sign(notify_unsubscribe_key_id(:'etok'), notify_random_bytes(32), 'erin@example.com', 'marketing', NULL, NULL),
		pg_temp.payload(:'etok'))),
	('forged with a guessed key', notify_unsubscribe_sign(notify_unsubscribe_key_id(:'etok'), '\x00000000000000000000000000000000'::bytea, 'erin@example.com', 'marketing', NULL, NULL))
) AS t(what, t);
SELECT pg_temp.try($q$SELECT * FROM notify_unsubscribe(NULL)$q$);
SELECT pg_temp.written() AS after;
SELECT coalesce(notify_decide('erin@example.com', 'marketing', 'email'), 'send') AS erin_untouched;
-- well-signed tokens whose contents are wrong: signed here with the real
-- key by HMAC-SHA256 spelled out over sha256(), which also checks the C
-- implementation (first line)
SELECT split_part(:'etok', '.', 2) = pg_temp.b64url(pg_temp.hmac(k.secret, 'notify-unsubscribe'::bytea || pg_temp.payload(:'etok'))) AS same_mac
FROM notify_unsubscribe_keys k WHERE k.key_id = notify_unsubscribe_key_id(:'etok');
SELECT what, pg_temp.try(format('SELECT * FROM notify_unsubscribe(%L)',
		pg_temp.b64url(p) || '.' || pg_temp.b64url(pg_temp.hmac(k.secret, 'notify-unsubscribe'::bytea || p)))) AS result
FROM notify_unsubscribe_keys k,
	 LATERAL (SELECT substr(int4send(k.key_id), 1) AS kid) x,
	 LATERAL (VALUES
		('well-formed', '\x0100'::bytea || kid || '\x0664696765737400056140622e63'::bytea),
		('version 2', '\x0200'::bytea || kid || '\x0664696765737400056140622e63'::bytea),
		('unknown flag', '\x0104'::bytea || kid || '\x0664696765737400056140622e63'::bytea),
		('trailing byte', '\x0100'::bytea || kid || '\x0664696765737400056140622e6300'::bytea),
		('truncated', '\x0100'::bytea || kid || '\x0664696765737400056140622e'::bytea),
		('tenant flag, no tenant', '\x0102'::bytea || kid || '\x0664696765737400056140622e63'::bytea),
		('empty category', '\x0100'::bytea || kid || '\x0000056140622e63'::bytea),
		('empty recipient', '\x0100'::bytea || kid || '\x066469676573740000'::bytea),
		('NUL in recipient', '\x0100'::bytea || kid || '\x0664696765737400056100622e63'::bytea),
		('invalid UTF-8', '\x0100'::bytea || kid || '\x06646967657374000561ff622e63'::bytea),
		('expired in 1970', '\x0101'::bytea || kid || '\x000000010664696765737400056140622e63'::bytea),
		('key id 0', '\x0100000000000664696765737400056140622e63'::bytea)
	 ) v(what, p)
WHERE k.key_id = notify_unsubscribe_key_id(:'etok');
SELECT count(*) AS rows_written FROM notify_preferences WHERE recipient = 'a@b.c';

-- ---- expiry ----
SELECT * FROM notify_unsubscribe(notify_unsubscribe_token('exp@example.com', 'product', expires_at => now() + interval '1 hour'));
SELECT get_byte(pg_temp.payload(notify_unsubscribe_token('exp@example.com', 'product', expires_at => now() + interval '1 hour')), 1) AS flags;
SELECT pg_temp.try(format('SELECT * FROM notify_unsubscribe(%L)',
	notify_unsubscribe_token('exp2@example.com', 'product', expires_at => now() - interval '1 second')), false);
SELECT count(*) AS exp2_rows FROM notify_preferences WHERE recipient = 'exp2@example.com';

-- ---- key rotation ----
SELECT notify_unsubscribe_token('rot@example.com', 'product') AS old_tok \gset
SELECT notify_unsubscribe_key_rotate(actor => 'ops') - current_setting('pref.key0')::int AS new_key;
SELECT notify_unsubscribe_key_id(notify_unsubscribe_token('rot@example.com', 'product'))
	   - current_setting('pref.key0')::int AS signing_key;
-- the old key still verifies
SELECT * FROM notify_unsubscribe(:'old_tok');
-- once retired, it does not
SELECT notify_unsubscribe_key_retire(current_setting('pref.key0')::int) AS retired;
SELECT pg_temp.try(format('SELECT * FROM notify_unsubscribe(%L)', :'old_tok'));
SELECT pg_temp.try(format('SELECT notify_unsubscribe_key_retire(%s)', current_setting('pref.key0')::int + 1));
SELECT pg_temp.try('SELECT notify_unsubscribe_key_retire(999999)');
-- a key id nobody made
SELECT pg_temp.try(format('SELECT * FROM notify_unsubscribe(%L)',
	pg_temp.with_payload(:'old_tok', set_byte(pg_temp.payload(:'old_tok'), 4, 99)))) ~ 'unknown or retired' AS unknown_key;
SELECT count(*) AS keys, count(*) FILTER (WHERE active) AS active_keys,
	   min(octet_length(secret)) AS secret_bytes, count(DISTINCT secret) AS distinct_secrets
FROM notify_unsubscribe_keys;

-- ---- unsubscribe URL (notify.unsubscribe_url, or base_url) ----
SELECT notify_unsubscribe_url('u@example.com', 'marketing', base_url => 'https://example.com/unsubscribe')
	~ '^https://example\.com/unsubscribe\?token=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$' AS url;
SELECT notify_unsubscribe_url('u@example.com', 'marketing', base_url => 'https://example.com/u?list=news')
	~ '^https://example\.com/u\?list=news&token=' AS url_with_query;
SELECT notify_unsubscribe_url('u@example.com', 'security', base_url => 'https://example.com/u') IS NULL AS mandatory_has_none;
SELECT pg_temp.try($q$SELECT notify_unsubscribe_url('u@example.com', 'marketing', base_url => 'https://example.com/u>')$q$, false);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_url('u@example.com', 'marketing', base_url => 'javascript:alert(1)')$q$, false);

-- ---- provider events ----
-- rows as the worker leaves them once sent
WITH r AS (
	INSERT INTO notify_outbox (template_key, recipient, status, attempts, sent_at)
	SELECT 'pref.event', a, 'sent', 1, now() FROM unnest(ARRAY['bounce@example.com', 'pm@example.com', 'sg@example.com']) a
	RETURNING id, recipient)
SELECT min(id) FILTER (WHERE recipient LIKE 'bounce%') AS b_id, min(id) FILTER (WHERE recipient LIKE 'pm%') AS pm_id,
	   min(id) FILTER (WHERE recipient LIKE 'sg%') AS sg_id FROM r \gset
UPDATE notify_outbox SET message_id = id || '.abc@mail.example', provider_message_id = 'queue-' || id
WHERE template_key = 'pref.event';
UPDATE notify_outbox SET provider_message_id = 'f9e6a0c4-1b4d-4c39-8b7e-0123456789ab' WHERE id = :pm_id;
UPDATE notify_outbox SET provider_message_id = 'tdtB6F1aQFC4Ba7dBc8wYA' WHERE id = :sg_id;
SELECT pg_temp.written() AS before;
-- bad events
SELECT pg_temp.try(format('SELECT pg_temp.ingest(%L, %L)', p, e))
FROM (VALUES
	('generic', NULL),
	(NULL, '{"type": "bounce"}'),
	('Generic Provider', '{"type": "bounce"}'),
	('generic', '"bounce"'),
	('generic', '[]'),
	('generic', '{"type": "opened", "recipient": "x@example.com"}'),
	('generic', '{"recipient": "x@example.com"}'),
	('generic', '{"type": "bounce", "recipient": "x@example.com"}'),
	('generic', '{"type": "bounce", "recipient": "x@example.com", "bounce_type": "medium"}'),
	('generic', '{"type": "bounce", "recipient": "x@example.com", "smtp_status": "550"}'),
	('generic', '{"type": "complaint", "recipient": 42}'),
	('generic', '{"type": "complaint"}'),
	('generic', '{"type": "complaint", "message_id": "<nobody@nowhere>"}'),
	('generic', '{"type": "complaint", "recipient": "x@example.com", "outbox_id": "7"}'),
	('generic', '{"type": "delivered", "bounce_type": "hard"}'),
	('generic', '[{"type": "complaint", "recipient": "ok@example.com"}, {"type": "nonsense"}]'),
	('postmark', '{"Type": "HardBounce", "Email": "x@example.com"}'),
	('postmark', '{"RecordType": "Inbound"}'),
	('sendgrid', '[{"email": "x@example.com"}]'),
	('sendgrid', '[{"event": "exploded", "email": "x@example.com"}]')
) AS t(p, e);
SELECT pg_temp.written() AS after_bad_events;

-- generic shape, found by Message-ID (angle brackets allowed)
SELECT pg_temp.ingest('generic', jsonb_build_object('type', 'bounce', 'recipient', 'Bounce@Example.com',
	'message_id', '<' || :b_id || '.abc@mail.example>', 'bounce_type', 'hard', 'smtp_status', '5.1.1',
	'detail', '550 5.1.1 <bounce@example.com>: Recipient address rejected: User unknown'));
SELECT status, last_error FROM notify_outbox WHERE id = :b_id;
SELECT pg_temp.ingest('generic', '{"type": "bounce", "recipient": "soft@example.com", "smtp_status": "4.2.2", "detail": "mailbox full"}');
SELECT pg_temp.ingest('generic', jsonb_build_object('type', 'delivered', 'provider_message_id', 'queue-' || :b_id));
SELECT pg_temp.ingest('my-relay', '{"type": "complaint", "recipient": "c@example.com", "detail": "abuse report"}');

-- Postmark's bounce, spam complaint and delivery webhooks
SELECT pg_temp.ingest('postmark', '{
  "RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1,
  "Name": "Hard bounce", "Tag": "Test", "MessageID": "f9e6a0c4-1b4d-4c39-8b7e-0123456789ab", "Metadata": {"a_key": "a_value"},
  "ServerID": 1234, "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
  "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.", "Email": "pm@example.com",
  "From": "sender@example.com", "BouncedAt": "2024-05-01T16:33:54.9070259Z", "DumpAvailable": true, "Inactive": true,
  "CanActivate": true, "Subject": "Test subject", "Content": "Return-Path:..."}');
SELECT status, last_error FROM notify_outbox WHERE id = :pm_id;
SELECT pg_temp.ingest('postmark', '{"RecordType": "Bounce", "Type": "SoftBounce", "TypeCode": 4096, "MessageID": "00000000-0000-0000-0000-000000000000",
  "Email": "pm-soft@example.com", "Details": "mailbox full", "Description": "Soft bounce"}');
SELECT pg_temp.ingest('postmark', '{"RecordType": "Bounce", "Type": "BadEmailAddress", "TypeCode": 100000, "Email": "pm-bad@example.com", "Details": "Invalid email address"}');
SELECT pg_temp.ingest('postmark', '{"RecordType": "SpamComplaint", "MessageStream": "outbound", "ID": 42, "Type": "SpamComplaint",
  "TypeCode": 100001, "Name": "Spam complaint", "MessageID": "00000000-0000-0000-0000-000000000001", "Details": "Test spam complaint details",
  "Email": "pm-spam@example.com", "From": "sender@example.com", "BouncedAt": "2024-05-01T16:33:54Z"}');
SELECT pg_temp.ingest('postmark', '{"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
  "MessageID": "f9e6a0c4-1b4d-4c39-8b7e-0123456789ab", "Recipient": "pm@example.com", "Tag": "welcome-email",
  "DeliveredAt": "2024-05-01T16:34:52Z", "Details": "Test delivery webhook details", "Metadata": {}}');
SELECT pg_temp.ingest('postmark', '{"RecordType": "Open", "MessageID": "x", "Recipient": "pm@example.com"}');

-- SendGrid's event webhook: an array, one transaction
SELECT pg_temp.ingest('sendgrid', '[
  {"email": "sg@example.com", "timestamp": 1700000000, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": "processed",
   "sg_event_id": "a1", "sg_message_id": "tdtB6F1aQFC4Ba7dBc8wYA.filterdrecv-p3las1-5f5b6c6f8-2h6qq-20-5E4D7F6E-1D.0"},
  {"email": "sg@example.com", "timestamp": 1700000001, "event": "delivered", "response": "250 OK",
   "sg_event_id": "a2", "sg_message_id": "tdtB6F1aQFC4Ba7dBc8wYA.filterdrecv-p3las1-5f5b6c6f8-2h6qq-20-5E4D7F6E-1D.0"},
  {"email": "sg@example.com", "timestamp": 1700000002, "event": "bounce", "type": "bounce", "status": "5.1.1",
   "reason": "550 5.1.1 The email account does not exist.", "sg_event_id": "a3",
   "sg_message_id": "tdtB6F1aQFC4Ba7dBc8wYA.filterdrecv-p3las1-5f5b6c6f8-2h6qq-20-5E4D7F6E-1D.0"},
  {"email": "sg-blocked@example.com", "timestamp": 1700000003, "event": "bounce", "type": "blocked", "status": "4.0.0",
   "reason": "IP blocked", "sg_event_id": "a4", "sg_message_id": "zzz.filter0001.0"},
  {"email": "sg-spam@example.com", "timestamp": 1700000004, "event": "spamreport", "sg_event_id": "a5", "sg_message_id": "yyy.filter0001.0"},
  {"email": "sg@example.com", "timestamp": 1700000005, "event": "open", "sg_event_id": "a6"}
]');
SELECT status, last_error FROM notify_outbox WHERE id = :sg_id;
SELECT address, reason, source, detail FROM notify_suppressions
WHERE source IN ('generic', 'my-relay', 'postmark', 'sendgrid') ORDER BY address;

-- ---- audit: every change, in the same transaction ----
BEGIN;
SELECT notify_set_preference('rollback@example.com', 'product', false);
SELECT notify_suppress('rollback@example.com', 'manual');
ROLLBACK;
SELECT count(*) AS rolled_back_rows FROM notify_audit_log WHERE object = 'recipient:rollback@example.com';
SELECT action, count(*) FROM notify_audit_log WHERE id > current_setting('pref.audit0')::bigint GROUP BY action ORDER BY action;
-- every preference and suppression has the audit row of its last change
-- (the matrix's opt-outs of security, written straight into the table, excepted)
SELECT count(*) AS unaudited_preferences FROM notify_preferences p
WHERE NOT (p.category = 'security' AND p.source = 'admin')
  AND NOT EXISTS (SELECT 1 FROM notify_audit_log a
				  WHERE a.id > current_setting('pref.audit0')::bigint AND a.action = 'preference_changed'
					AND a.object = 'recipient:' || p.recipient AND a.detail ->> 'category' = p.category
					AND (a.detail ->> 'channel') IS NOT DISTINCT FROM p.channel
					AND (a.detail ->> 'tenant') IS NOT DISTINCT FROM p.tenant
					AND (a.detail ->> 'opted_in')::boolean = p.opted_in AND a.detail ->> 'source' = p.source);
SELECT count(*) AS unaudited_suppressions FROM notify_suppressions s
WHERE NOT EXISTS (SELECT 1 FROM notify_audit_log a
				  WHERE a.id > current_setting('pref.audit0')::bigint AND a.action = 'suppressed'
					AND a.object = 'recipient:' || s.address AND a.detail ->> 'reason' = s.reason);
SELECT object, detail FROM notify_audit_log
WHERE id > current_setting('pref.audit0')::bigint AND object IN ('recipient:Carol@example.com', 'unsubscribe_key:' || (current_setting('pref.key0')::int + 1))
ORDER BY id;

-- ---- privileges: an application role reads nothing, changes nothing ----
CREATE ROLE notify_pref_app LOGIN;
GRANT EXECUTE ON FUNCTION notify_unsubscribe(text), notify_get_preferences(text, text) TO notify_pref_app;
SELECT notify_unsubscribe_token('frank@example.com', 'marketing') AS ftok \gset
SET ROLE notify_pref_app;
SELECT pg_temp.try(format('SELECT %s FROM %s', c, t), false)
FROM (VALUES ('secret', 'notify_unsubscribe_keys'), ('recipient', 'notify_preferences'), ('address', 'notify_suppressions')) v(c, t);
SELECT pg_temp.try($q$UPDATE notify_unsubscribe_keys SET active = true$q$, false);
SELECT pg_temp.try($q$INSERT INTO notify_suppressions VALUES ('x@example.com', 'manual', 'app')$q$, false);
SELECT pg_temp.try($q$SELECT notify_decide('a@example.com', 'marketing', 'email')$q$, false);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_token('a@example.com', 'marketing')$q$, false);
SELECT pg_temp.try($q$SELECT notify_set_preference('a@example.com', 'marketing', true)$q$, false);
SELECT pg_temp.try($q$SELECT notify_suppress('a@example.com', 'manual')$q$, false);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_verify('x.y', '\x00')$q$, false);
SELECT pg_temp.try($q$SELECT notify_random_bytes(32)$q$, false);
-- what it was granted works (SECURITY DEFINER)
SELECT * FROM notify_unsubscribe(:'ftok');
SELECT category, opted_in, source FROM notify_get_preferences('frank@example.com') WHERE category = 'marketing';
RESET ROLE;
SELECT db_role, detail ->> 'source' AS source FROM notify_audit_log WHERE object = 'recipient:frank@example.com';

-- functions applications may be granted are SECURITY DEFINER with a pinned search_path
SELECT p.oid::regprocedure AS function, p.prosecdef, p.proconfig
FROM pg_proc p
WHERE p.proname IN ('notify_set_preference', 'notify_get_preferences', 'notify_unsubscribe', 'notify_unsubscribe_token',
					'notify_unsubscribe_url', 'notify_suppress', 'notify_unsuppress', 'notify_ingest_event',
					'notify_suppress_from_failure', 'notify_decide')
ORDER BY p.proname;

-- ---- misc C ----
SELECT octet_length(notify_random_bytes(1)) AS one, octet_length(notify_random_bytes(1024)) AS max,
	   notify_random_bytes(16) <> notify_random_bytes(16) AS differ;
SELECT pg_temp.try('SELECT notify_random_bytes(0)'), pg_temp.try('SELECT notify_random_bytes(1025)');
SELECT pg_temp.try($q$SELECT notify_unsubscribe_sign(1, '\x0102'::bytea, 'a@example.com', 'marketing', NULL, NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_sign(0, notify_random_bytes(32), 'a@example.com', 'marketing', NULL, NULL)$q$);
SELECT pg_temp.try($q$SELECT notify_unsubscribe_sign(1, notify_random_bytes(32), 'a@example.com', repeat('c', 256), NULL, NULL)$q$);

-- ---- clean up what other tests could see ----
DROP OWNED BY notify_pref_app;
DROP ROLE notify_pref_app;
DELETE FROM notify_outbox WHERE template_key = 'pref.event';
DELETE FROM notify_preferences;
DELETE FROM notify_suppressions;
DELETE FROM notify_channels WHERE name = 'pref-hooks';
DELETE FROM notify_categories WHERE name = 'digest';

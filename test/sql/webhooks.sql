--
-- Standard Webhooks signatures: notify_webhook_signature, notify_webhook_verify,
-- notify_generate_webhook_secret (../shared/conformance/webhooks)
--
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

-- An HMAC-SHA256 of our own in SQL over the built-in sha256() (RFC 2104),
-- independent of the C code, checked first against RFC 4231.
CREATE FUNCTION pg_temp.hmac_sha256(key bytea, msg bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
	k bytea := CASE WHEN length(key) > 64 THEN sha256(key) ELSE key END;
	ipad bytea := decode(repeat('36', 64), 'hex');
	opad bytea := decode(repeat('5c', 64), 'hex');
BEGIN
	k := k || decode(repeat('00', 64 - length(k)), 'hex');
	FOR i IN 0..63 LOOP
		ipad := set_byte(ipad, i, get_byte(k, i) # 54);
		opad := set_byte(opad, i, get_byte(k, i) # 92);
	END LOOP;
	RETURN sha256(opad || sha256(ipad || msg));
END
$$;
-- the signature as the specification defines it, computed with the above
CREATE FUNCTION pg_temp.v1(secret text, msg_id text, ts bigint, body text) RETURNS text LANGUAGE sql AS $$
	SELECT 'v1,' || encode(pg_temp.hmac_sha256(decode(substr(secret, 7), 'base64'),
			convert_to(msg_id || '.' || ts || '.' || body, 'UTF8')), 'base64')
$$;

-- RFC 4231 test cases 2, 4 and 6 (short key, 25-byte key, 131-byte key)
SELECT encode(pg_temp.hmac_sha256('Jefe', 'what do ya want for nothing?'), 'hex')
	   = '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843' AS rfc4231_2,
	   encode(pg_temp.hmac_sha256(decode('0102030405060708090a0b0c0d0e0f10111213141516171819', 'hex'),
								  decode(repeat('cd', 50), 'hex')), 'hex')
	   = '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b' AS rfc4231_4,
	   encode(pg_temp.hmac_sha256(decode(repeat('aa', 131), 'hex'),
								  'Test Using Larger Than Block-Size Key - Hash Key First'), 'hex')
	   = '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54' AS rfc4231_6;

-- The example of the specification's reference libraries (Go, JavaScript,
-- Python ... "sign" tests).  The specification's own example header
-- (v1,K5oZfzN95Z9U...) comes without its secret, so only its shape can be
-- compared.
SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
								'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
								'{"test": 2432232314}') AS reference_example;
SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
								'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330,
								'{"test": 2432232314}')
	   = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS reference_matches;

-- the specification's example message, minified as it suggests
CREATE TEMP TABLE spec AS SELECT
	'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'::text AS secret,
	'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W'::text AS msg_id,
	1674087231::bigint AS ts,
	'{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}'::text AS body;
SELECT notify_webhook_signature(secret, msg_id, ts, body) AS spec_message,
	   notify_webhook_signature(secret, msg_id, ts, body) ~ '^v1,[A-Za-z0-9+/]{43}=$' AS same_shape_as_spec,
	   notify_webhook_signature(secret, msg_id, ts, body) = pg_temp.v1(secret, msg_id, ts, body) AS independent_hmac_agrees
FROM spec;

-- Many secrets and bodies against the independent HMAC: empty, ASCII,
-- UTF-8, long (several SHA-256 blocks), keys of 24, 32 (padded base64) and
-- 64 bytes.
CREATE TEMP TABLE sample AS
SELECT i,
	   CASE i % 3
		   WHEN 0 THEN notify_generate_webhook_secret()
		   WHEN 1 THEN 'whsec_' || encode(sha256(i::text::bytea), 'base64')
		   ELSE 'whsec_' || replace(encode(sha256(i::text::bytea) || sha256((i + 1)::text::bytea), 'base64'), E'\n', '')
	   END AS secret,
	   'msg_' || i AS msg_id,
	   1700000000 + i * 7919 AS ts,
	   CASE i % 5
		   WHEN 0 THEN ''
		   WHEN 1 THEN '{"event":"invoice.paid","n":' || i || '}'
		   WHEN 2 THEN '{"name":"Zoë Ørsted","city":"Köln","note":"日本語のテキスト 🎉"}'
		   WHEN 3 THEN repeat('{"pad":"' || i || '"}', i)
		   ELSE E'line one\nline two\r\n\ttab . dots . ' || i
	   END AS body
FROM generate_series(1, 60) AS i;
SELECT count(*) AS samples,
	   count(*) FILTER (WHERE notify_webhook_signature(secret, msg_id, ts, body)
						= pg_temp.v1(secret, msg_id, ts, body)) AS agreeing,
	   count(DISTINCT length(decode(substr(secret, 7), 'base64'))) AS key_lengths,
	   count(*) FILTER (WHERE notify_webhook_verify(secret, msg_id, ts, body,
							notify_webhook_signature(secret, msg_id, ts, body))) AS round_trips
FROM sample;

-- tampering with anything makes verification fail
SELECT notify_webhook_verify(secret, msg_id, ts, body || ' ', sig) AS body_changed,
	   notify_webhook_verify(secret, msg_id, ts + 1, body, sig) AS timestamp_changed,
	   notify_webhook_verify(secret, msg_id || 'x', ts, body, sig) AS id_changed,
	   notify_webhook_verify(notify_generate_webhook_secret(), msg_id, ts, body, sig) AS other_secret,
	   notify_webhook_verify(secret, msg_id, ts, body, lower(sig)) AS signature_changed,
	   notify_webhook_verify(secret, msg_id, ts, body, 'v2,' || substr(sig, 4)) AS other_version,
	   notify_webhook_verify(secret, msg_id, ts, body, substr(sig, 4)) AS without_version,
	   notify_webhook_verify(secret, msg_id, ts, body, sig || 'A') AS longer,
	   notify_webhook_verify(secret, msg_id, ts, body, '') AS empty_header
FROM (SELECT *, notify_webhook_signature(secret, msg_id, ts, body) AS sig FROM spec) s;

-- a header of several signatures: any match counts, other schemes and
-- extra white space are skipped
SELECT notify_webhook_verify(secret, msg_id, ts, body,
		'v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==  '
		|| notify_webhook_signature(secret, msg_id, ts, body) || '   v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ') AS among_others,
	   notify_webhook_verify(secret, msg_id, ts, body,
		'v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==') AS none_matching
FROM spec;

-- key rotation: one signature per secret, in order, each verifying
CREATE TEMP TABLE rotation AS
SELECT 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'::text AS old_secret,
	   notify_generate_webhook_secret() AS new_secret;
SELECT h AS rotated_header FROM rotation,
	notify_webhook_signature(ARRAY[old_secret, 'whsec_' || encode(sha256('new'), 'base64')],
							 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}') AS h;
SELECT array_length(string_to_array(h, ' '), 1) AS signatures,
	   split_part(h, ' ', 1) = notify_webhook_signature(new_secret, 'msg_1', 1700000000, '{}') AS first_is_new,
	   split_part(h, ' ', 2) = notify_webhook_signature(old_secret, 'msg_1', 1700000000, '{}') AS second_is_old,
	   notify_webhook_verify(old_secret, 'msg_1', 1700000000, '{}', h) AS old_verifies,
	   notify_webhook_verify(new_secret, 'msg_1', 1700000000, '{}', h) AS new_verifies,
	   notify_webhook_verify(notify_generate_webhook_secret(), 'msg_1', 1700000000, '{}', h) AS stranger_verifies
FROM rotation, notify_webhook_signature(ARRAY[new_secret, old_secret], 'msg_1', 1700000000, '{}') AS h;
SELECT notify_webhook_signature(ARRAY['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'], 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')
	   = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' AS one_element_array;

-- generated secrets: whsec_ and 24 random bytes, never the same twice
SELECT count(*) AS generated,
	   count(DISTINCT s) AS distinct_secrets,
	   bool_and(s ~ '^whsec_[A-Za-z0-9+/]{32}$') AS all_well_formed,
	   bool_and(length(decode(substr(s, 7), 'base64')) = 24) AS all_24_bytes
FROM (SELECT notify_generate_webhook_secret() AS s FROM generate_series(1, 100)) g;

-- bad input: 22004 for nulls, 22023 for the rest; no secret ever in a message
SELECT pg_temp.try($$SELECT notify_webhook_signature(NULL, 'msg_1', 1, '{}')$$) AS null_secret;
SELECT pg_temp.try($$SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', NULL, 1, '{}')$$) AS null_msg_id;
SELECT pg_temp.try($$SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', NULL, '{}')$$) AS null_timestamp;
SELECT pg_temp.try($$SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', 1, NULL)$$) AS null_body;
SELECT pg_temp.try($$SELECT notify_webhook_signature(NULL::text[], 'msg_1', 1, '{}')$$) AS null_array;
SELECT pg_temp.try($$SELECT notify_webhook_signature(ARRAY['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', NULL], 'msg_1', 1, '{}')$$) AS null_element;
SELECT pg_temp.try($$SELECT notify_webhook_verify(NULL, 'msg_1', 1, '{}', 'v1,x')$$) AS verify_null_secret;
SELECT pg_temp.try($$SELECT notify_webhook_verify('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', 1, '{}', NULL)$$) AS verify_null_header;

CREATE TEMP TABLE bad_secret (note text, secret text);
INSERT INTO bad_secret VALUES
	('empty', ''),
	('no prefix (bare base64)', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'),
	('asymmetric key prefix', 'whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'),
	('prefix in capitals', 'WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'),
	('prefix only', 'whsec_'),
	('not base64', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!w'),
	('url-safe alphabet', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa_-'),
	('padding missing', 'whsec_' || rtrim(encode(sha256('x'), 'base64'), '=')),
	('padding inside', 'whsec_MfKQ9r8G=YqrTwjUPD8ILPZIo2LaLaSw'),
	('16 bytes', 'whsec_' || encode(decode(repeat('ab', 16), 'hex'), 'base64')),
	('23 bytes', 'whsec_' || encode(decode(repeat('ab', 23), 'hex'), 'base64')),
	('65 bytes', 'whsec_' || replace(encode(decode(repeat('ab', 65), 'hex'), 'base64'), E'\n', '')),
	('two secrets in one string', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'),
	('trailing newline', E'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n');
SELECT note, pg_temp.try(format('SELECT notify_webhook_signature(%L, %L, 1, %L)', secret, 'msg_1', '{}')) AS result
FROM bad_secret ORDER BY note;
-- the same checks in notify_webhook_verify and in arrays, where the bad
-- one is named by its position
SELECT count(*) AS bad_secrets,
	   count(*) FILTER (WHERE pg_temp.try(format('SELECT notify_webhook_verify(%L, %L, 1, %L, %L)', secret, 'msg_1', '{}', 'v1,x'), false)
						LIKE '22023: invalid webhook secret') AS verify_refuses,
	   count(*) FILTER (WHERE pg_temp.try(format('SELECT notify_webhook_signature(%L::text[], %L, 1, %L)',
					ARRAY[notify_generate_webhook_secret(), secret, notify_generate_webhook_secret()], 'msg_1', '{}'), false)
						= '22023: invalid webhook secret 2 of 3') AS array_refuses,
	   count(*) FILTER (WHERE position(substr(secret, 7) IN pg_temp.try(format('SELECT notify_webhook_signature(%L, %L, 1, %L)',
					secret, 'msg_1', '{}'))) > 0 AND length(secret) > 6) AS messages_quoting_the_secret
FROM bad_secret;
SELECT pg_temp.try($$SELECT notify_webhook_signature('{}'::text[], 'msg_1', 1, '{}')$$) AS empty_array;
-- boundaries: 24 and 64 bytes are accepted
SELECT pg_temp.try(format('SELECT notify_webhook_signature(%L, %L, 1, %L)',
		'whsec_' || encode(decode(repeat('ab', 24), 'hex'), 'base64'), 'msg_1', '{}')) AS key_24_bytes,
	   pg_temp.try(format('SELECT notify_webhook_signature(%L, %L, 1, %L)',
		'whsec_' || replace(encode(decode(repeat('ab', 64), 'hex'), 'base64'), E'\n', ''), 'msg_1', '{}')) AS key_64_bytes;

-- message ids and timestamps that could not be signed unambiguously
SELECT pg_temp.try($$SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg.1', 1, '{}')$$) AS dotted_id;
SELECT pg_temp.try($$SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '', 1, '{}')$$) AS empty_id;
SELECT pg_temp.try($$SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg 1', 1, '{}')$$) AS id_with_space;
SELECT pg_temp.try($$SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_ü', 1, '{}')$$) AS non_ascii_id;
SELECT pg_temp.try($$SELECT notify_webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', -1, '{}')$$) AS negative_timestamp;
-- ... which verification answers with false rather than an error
SELECT notify_webhook_verify('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg.1', 1, '{}', 'v1,x') AS verify_dotted_id,
	   notify_webhook_verify('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', -1, '{}', 'v1,x') AS verify_negative_timestamp;

-- the functions are immutable (same input, same signature) and
-- documented; the generator is volatile
SELECT p.oid::regprocedure AS function, p.provolatile, obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc p
WHERE p.proname IN ('notify_webhook_signature', 'notify_webhook_verify', 'notify_generate_webhook_secret')
ORDER BY p.oid::regprocedure::text COLLATE "C";

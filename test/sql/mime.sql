--
-- notify_build_message: the RFC 5322 / MIME message as sent over SMTP
--
-- Messages are shown as psql prints them: "\r" is a CR and "+" ends a line.
-- The helpers below are temporary and look inside the built messages.
--

-- every LF preceded by CR, no CR without LF, and a final CRLF
CREATE FUNCTION pg_temp.crlf_only(m text) RETURNS boolean LANGUAGE sql AS $$
	SELECT position(E'\n' IN replace(m, E'\r\n', '')) = 0
	   AND position(E'\r' IN replace(m, E'\r\n', '')) = 0
	   AND right(m, 2) = E'\r\n'
$$;

-- the header block and the body
CREATE FUNCTION pg_temp.head(m text) RETURNS text LANGUAGE sql AS $$
	SELECT substr(m, 1, position(E'\r\n\r\n' IN m) + 1)
$$;
CREATE FUNCTION pg_temp.body(m text) RETURNS text LANGUAGE sql AS $$
	SELECT substr(m, position(E'\r\n\r\n' IN m) + 4)
$$;

-- the value of a header field, unfolded (CRLF before white space removed)
CREATE FUNCTION pg_temp.field(m text, name text) RETURNS text LANGUAGE sql AS $$
	SELECT substr(l, length(name) + 3)
	FROM regexp_split_to_table(
			regexp_replace(pg_temp.head(m), E'\r\n(?=[ \t])', '', 'g'),
			E'\r\n') AS l
	WHERE lower(l) LIKE lower(name) || ':%'
$$;

-- longest line, in octets, without its CRLF
CREATE FUNCTION pg_temp.longest_line(t text) RETURNS integer LANGUAGE sql AS $$
	SELECT max(octet_length(l))::integer FROM regexp_split_to_table(t, E'\r\n') AS l
$$;

-- RFC 2047 encoded words of a header value: count, longest, decoded text
CREATE FUNCTION pg_temp.words(v text, OUT n integer, OUT longest integer,
							  OUT decoded text) LANGUAGE sql AS $$
	SELECT count(*)::integer, max(length(w[1]))::integer,
		   string_agg(convert_from(decode(w[2], 'base64'), 'UTF8'), '' ORDER BY i)
	FROM regexp_matches(v, '(=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=)', 'g')
		 WITH ORDINALITY AS t(w, i)
$$;

-- the body parts of a multipart message
CREATE FUNCTION pg_temp.parts(m text) RETURNS SETOF text LANGUAGE sql AS $$
	SELECT p
	FROM regexp_split_to_table(
			E'\r\n' || pg_temp.body(m),
			E'\r\n--' || substring(pg_temp.field(m, 'Content-Type') FROM 'boundary="([^"]+)"')
			|| E'(--)?\r\n') WITH ORDINALITY AS t(p, i)
	WHERE i > 1 AND p <> ''
	ORDER BY i
$$;

-- quoted-printable decoder (RFC 2045 6.7)
CREATE FUNCTION pg_temp.qp_decode(t text) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
	s text := replace(t, E'=\r\n', '');
	r bytea := '';
	i integer := 1;
BEGIN
	WHILE i <= length(s) LOOP
		IF substr(s, i, 1) = '=' THEN
			r := r || decode(substr(s, i + 1, 2), 'hex');
			i := i + 3;
		ELSE
			r := r || convert_to(substr(s, i, 1), 'UTF8');
			i := i + 1;
		END IF;
	END LOOP;
	RETURN r;
END
$$;

CREATE TEMP TABLE msg (name text PRIMARY KEY, m text);

-- a plain text message: bare LF, bare CR and CRLF all become CRLF; "=",
-- trailing white space and a line starting "From " are escaped, and so is
-- a line starting "." ("=2E": no line of a message starts with a dot)
INSERT INTO msg VALUES ('plain', notify_build_message(
	from_address => 'noreply@example.com',
	to_address => 'alice@example.org',
	subject => 'Your order has shipped',
	text_body => E'Hello Alice,\nyour order 42 has shipped.\rTotal = 10 EUR \r\n\nFrom now on, track it here.\n.\n',
	from_name => 'Example Shop',
	message_id => '1a2b3c.42@example.com',
	date => '2026-11-28 12:00:00+00'));
SELECT m FROM msg WHERE name = 'plain';

-- HTML only
INSERT INTO msg VALUES ('html', notify_build_message(
	'noreply@example.com', 'alice@example.org', 'Welcome', NULL,
	html_body => '<html><body><p style="color:#333">Welcome!</p></body></html>',
	message_id => 'welcome.7@example.com',
	date => '2026-01-02 03:04:05+00'));
SELECT m FROM msg WHERE name = 'html';

-- both bodies: multipart/alternative, text/plain first; with extra headers
INSERT INTO msg VALUES ('multipart', notify_build_message(
	'noreply@example.com', 'alice@example.org', 'Weekly digest',
	E'Plain version\n',
	E'<p>HTML version</p>\n',
	from_name => 'Doe, John',
	message_id => 'digest.9@example.com',
	date => '2026-11-28 12:00:00+00',
	headers => '{"List-Unsubscribe": "<mailto:unsubscribe@example.com?subject=9>, <https://example.com/unsubscribe/9>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}'));
SELECT m FROM msg WHERE name = 'multipart';
SELECT i, substring(p FROM '^Content-Type: ([^;]+);') AS part
FROM pg_temp.parts((SELECT m FROM msg WHERE name = 'multipart')) WITH ORDINALITY AS t(p, i);

-- the boundary follows from the message id: repeatable for one id, and
-- different for another
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 't', 'h',
							message_id => 'digest.9@example.com',
							date => '2026-11-28 12:00:00+00')
	 = notify_build_message('a@example.com', 'b@example.com', 's', 't', 'h',
							message_id => 'digest.9@example.com',
							date => '2026-11-28 12:00:00+00') AS same_id_same_message,
	   substring(notify_build_message('a@example.com', 'b@example.com', 's', 't', 'h',
									  message_id => 'digest.9@example.com') FROM 'boundary="([^"]+)"')
	<> substring(notify_build_message('a@example.com', 'b@example.com', 's', 't', 'h',
									  message_id => 'digest.10@example.com') FROM 'boundary="([^"]+)"') AS other_id_other_boundary;

-- a Japanese subject and sender name: encoded words of at most 75
-- characters that decode back to the original, header lines of at most 78
INSERT INTO msg VALUES ('japanese', notify_build_message(
	'billing@example.co.jp', 'customer@example.jp',
	'【重要】お支払いの確認に失敗しました - ご対応のお願い（請求書番号 INV-2026-000123）',
	repeat(E'いつも弊社サービスをご利用いただき、誠にありがとうございます。ご登録のクレジットカードでのお支払いの確認ができませんでした。お手数ですが、お支払い方法をご確認のうえ、再度お手続きをお願いいたします。\n', 12),
	from_name => '株式会社エグザンプル 請求担当',
	message_id => 'inv-2026-000123@example.co.jp',
	date => '2026-11-28 21:00:00+09'));
SELECT pg_temp.head(m) FROM msg WHERE name = 'japanese';
SELECT w.n AS words, w.longest <= 75 AS words_ok,
	   w.decoded = '【重要】お支払いの確認に失敗しました - ご対応のお願い（請求書番号 INV-2026-000123）' AS subject_decodes,
	   (pg_temp.words(pg_temp.field(m, 'From'))).decoded = '株式会社エグザンプル 請求担当' AS name_decodes,
	   pg_temp.longest_line(pg_temp.head(m)) AS longest_header_line
FROM msg, pg_temp.words(pg_temp.field(m, 'Subject')) AS w
WHERE name = 'japanese';

-- the long Japanese body goes as base64 in lines of 76 and decodes back
SELECT pg_temp.field(m, 'Content-Transfer-Encoding') AS encoding,
	   pg_temp.longest_line(pg_temp.body(m)) AS longest_body_line,
	   convert_from(decode(pg_temp.body(m), 'base64'), 'UTF8')
		 = repeat(E'いつも弊社サービスをご利用いただき、誠にありがとうございます。ご登録のクレジットカードでのお支払いの確認ができませんでした。お手数ですが、お支払い方法をご確認のうえ、再度お手続きをお願いいたします。\r\n', 12) AS body_decodes
FROM msg WHERE name = 'japanese';

-- mostly ASCII text with long lines goes as quoted-printable: soft breaks
-- keep lines at 76, every "=" starts an escape or a soft break, no UTF-8
-- character is split across lines (no line after a soft break starts with a
-- continuation octet), and it decodes back
INSERT INTO msg VALUES ('long-latin', notify_build_message(
	'noreply@example.com', 'bob@example.org', 'Café crème',
	repeat('The quick brown fox jumps over the lazy dog; naïve café owners say "voilà" = fine. ', 12)
	|| E'\n' || repeat('x', 200) || E'\n' || repeat('=', 30) || E'\n'
	|| E'日本語の行もあります。\n' || repeat(E'trailing\t \n', 2),
	message_id => 'latin.1@example.com', date => '2026-11-28 12:00:00+00'));
SELECT pg_temp.field(m, 'Subject') AS subject,
	   pg_temp.field(m, 'Content-Transfer-Encoding') AS encoding,
	   pg_temp.longest_line(pg_temp.body(m)) AS longest_body_line,
	   pg_temp.body(m) !~ E'=([^0-9A-F\r]|[0-9A-F][^0-9A-F]|\r[^\n])' AS escapes_whole,
	   pg_temp.body(m) !~ E'=\r\n=[89AB]' AS utf8_whole,
	   pg_temp.body(m) !~ E'[ \t]\r\n' AS no_trailing_white_space,
	   convert_from(pg_temp.qp_decode(pg_temp.body(m)), 'UTF8')
		 = repeat('The quick brown fox jumps over the lazy dog; naïve café owners say "voilà" = fine. ', 12)
		   || E'\r\n' || repeat('x', 200) || E'\r\n' || repeat('=', 30) || E'\r\n'
		   || E'日本語の行もあります。\r\n' || repeat(E'trailing\t \r\n', 2) AS body_decodes
FROM msg WHERE name = 'long-latin';
SELECT l FROM regexp_split_to_table(pg_temp.body((SELECT m FROM msg WHERE name = 'long-latin')), E'\r\n') AS l
WHERE l ~ '^(The|x|=3D|=E6|trailing)'
LIMIT 8;

-- dots: no line of a message starts with ".", so the SMTP dot-stuffing
-- has nothing to do: a body's leading "." is written "=2E", also where a
-- soft line break puts it at the start of a line; CRLF, LF, CR and their
-- mixes all end a line
INSERT INTO msg VALUES ('dots', notify_build_message(
	'noreply@example.com', 'bob@example.org', 'Dots',
	E'.\n..\n.hidden line\r\n. spaced\rend.\n' || repeat('a', 75) || E'.b\n'
	|| repeat('c', 74) || E'.\n\r\n\n\r' || repeat('.', 160) || E'\r\r\n.last',
	message_id => 'dots.1@example.com', date => '2026-11-28 12:00:00+00'));
SELECT pg_temp.body(m) FROM msg WHERE name = 'dots';
SELECT m !~ E'(^|\n)\\.' AS no_line_starts_with_dot,
	   pg_temp.longest_line(pg_temp.body(m)) AS longest_body_line,
	   convert_from(pg_temp.qp_decode(pg_temp.body(m)), 'UTF8')
		 = E'.\r\n..\r\n.hidden line\r\n. spaced\r\nend.\r\n' || repeat('a', 75) || E'.b\r\n'
		   || repeat('c', 74) || E'.\r\n\r\n\r\n\r\n' || repeat('.', 160) || E'\r\n\r\n.last\r\n' AS body_decodes
FROM msg WHERE name = 'dots';

-- a line of 2,000 characters: soft breaks keep every line at 76
SELECT pg_temp.longest_line(pg_temp.body(m)) AS longest_body_line,
	   convert_from(pg_temp.qp_decode(pg_temp.body(m)), 'UTF8') = repeat('0123456789', 200) || E'\r\n' AS body_decodes
FROM (VALUES (notify_build_message('a@example.com', 'b@example.com', 's', repeat('0123456789', 200) || E'\n',
								   message_id => 'm@example.com'))) AS t(m);

-- a long ASCII subject is folded at its spaces and unfolds to the original;
-- one with "=?" (which could read as an encoded word) or with a word too
-- long to fold becomes encoded words
INSERT INTO msg VALUES ('long-subject', notify_build_message(
	'noreply@example.com', 'bob@example.org',
	'Reminder: ' || repeat('your subscription renews soon, ', 8) || 'thank you',
	'x', message_id => 'subject.1@example.com'));
SELECT pg_temp.longest_line(pg_temp.head(m)) AS longest_header_line,
	   pg_temp.field(m, 'Subject')
		 = 'Reminder: ' || repeat('your subscription renews soon, ', 8) || 'thank you' AS unfolds
FROM msg WHERE name = 'long-subject';
SELECT pg_temp.field(m, 'Subject') AS subject
FROM (VALUES (notify_build_message('a@example.com', 'b@example.com', 'Re: =?x?= literal', 'x',
								   message_id => 'm@example.com'))) AS t(m);
SELECT w.n AS words, w.longest <= 75 AS words_ok,
	   w.decoded = 'See https://example.com/' || repeat('a', 150) AS decodes,
	   pg_temp.longest_line(pg_temp.head(m)) <= 78 AS lines_ok
FROM (VALUES (notify_build_message('a@example.com', 'b@example.com',
								   'See https://example.com/' || repeat('a', 150), 'x',
								   message_id => 'm@example.com'))) AS t(m),
	 pg_temp.words(pg_temp.field(m, 'Subject')) AS w;

-- display names: atoms as they are, specials quoted, '"' and '\' escaped
SELECT n AS from_name,
	   pg_temp.field(notify_build_message('a@example.com', 'b@example.com', 's', 'x',
										  from_name => n, message_id => 'm@example.com'), 'From') AS "from"
FROM unnest(ARRAY['Acme Support', ' Padded ', 'Doe, John', 'A. Person', 'Say "hi" \ bye', '', NULL]) AS n;

-- every message built above uses CRLF only and 7-bit ASCII
SELECT name, pg_temp.crlf_only(m) AS crlf_only, m ~ '^[\x01-\x7e]*$' AS ascii_only
FROM msg ORDER BY name;

-- without message_id a unique one is made; date defaults to now()
SELECT pg_temp.field(m, 'Message-ID') ~ '^<[0-9a-f]{32}\.0@example\.com>$' AS message_id_ok,
	   pg_temp.field(m, 'Message-ID')
		 <> pg_temp.field(notify_build_message('a@example.com', 'b@example.com', 's', 'x'), 'Message-ID') AS unique_id,
	   pg_temp.field(m, 'Date') ~ '^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} \+0000$' AS date_ok
FROM (VALUES (notify_build_message('a@example.com', 'b@example.com', 's', 'x'))) AS t(m);

-- header injection: CR or LF in any header value is refused
SELECT notify_build_message('a@example.com', 'b@example.com', E'Hi\r\nBcc: victim@example.net', 'x');
SELECT notify_build_message('a@example.com', 'b@example.com', E'Hi\nthere', 'x');
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x', from_name => E'Eve\rBcc: x@example.net');
SELECT notify_build_message('a@example.com', E'b@example.com\r\nBcc: x@example.net', 's', 'x');
SELECT notify_build_message(E'a@example.com\n', 'b@example.com', 's', 'x');
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x', message_id => E'm@example.com>\r\nBcc: x');
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x',
							headers => jsonb_build_object('List-Unsubscribe', E'<https://example.com/u>\r\nBcc: x@example.net'));
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x',
							headers => jsonb_build_object(E'X-Tag\r\nBcc', 'x@example.net'));

-- other bad input
SELECT notify_build_message('a@example.com', 'b@example.com', 's', NULL);
SELECT notify_build_message('a@example.com', 'b@example.com', 's', '', '');
SELECT notify_build_message('not an address', 'b@example.com', 's', 'x');
SELECT notify_build_message('a@example.com', 'Bob <b@example.com>', 's', 'x');
SELECT notify_build_message(NULL, 'b@example.com', 's', 'x');
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x', message_id => '<m@example.com>');
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x', headers => '{"Subject": "x"}');
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x', headers => '{"Bad Name": "x"}');
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x', headers => '{"X-Count": 1}');
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x', headers => '["X-Tag"]');
SELECT notify_build_message('a@example.com', 'b@example.com', 's', 'x', date => 'infinity');

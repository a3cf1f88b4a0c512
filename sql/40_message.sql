-- notify: notify_build_message, a preview of the email message exactly as
-- the worker sends it over SMTP (src/message.c, built by src/mime.c).

CREATE FUNCTION notify_build_message(
	from_address text,
	to_address text,
	subject text,
	text_body text,
	html_body text DEFAULT NULL,
	from_name text DEFAULT NULL,
	message_id text DEFAULT NULL,
	date timestamptz DEFAULT now(),
	headers jsonb DEFAULT '{}')
	RETURNS text
	AS 'MODULE_PATHNAME', 'notify_build_message'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION notify_build_message(text, text, text, text, text, text, text, timestamptz, jsonb) IS
	'Builds the email message (headers, empty line, body, CRLF line endings) exactly as it is sent over SMTP. message_id is given without angle brackets; when NULL a random one is made, otherwise the result is repeatable (the multipart boundary derives from it). headers is a JSON object of extra header fields such as List-Unsubscribe.';

-- notify: Standard Webhooks signatures, as the worker signs webhooks
-- (src/signature.c, HMAC-SHA256 in src/hmac.c).  Secrets are "whsec_"
-- followed by the base64 of 24 to 64 bytes; nothing else is accepted.

CREATE FUNCTION notify_webhook_signature(
	secret text,
	msg_id text,
	"timestamp" bigint,
	body text)
	RETURNS text
	AS 'MODULE_PATHNAME', 'notify_webhook_signature'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION notify_webhook_signature(text, text, bigint, text) IS
	'The Standard Webhooks webhook-signature value "v1,<base64 HMAC-SHA256>" of msg_id.timestamp.body (body as UTF-8) under secret, a "whsec_" secret. msg_id must be printable ASCII without spaces or "."; timestamp is unix seconds. Errors never show the secret; pass it from a table or a parameter rather than as a literal, so that it stays out of pg_stat_activity and the server log.';

CREATE FUNCTION notify_webhook_signature(
	secrets text[],
	msg_id text,
	"timestamp" bigint,
	body text)
	RETURNS text
	AS 'MODULE_PATHNAME', 'notify_webhook_signature_multi'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION notify_webhook_signature(text[], text, bigint, text) IS
	'The webhook-signature value during key rotation: one "v1,<base64>" per secret, in array order, separated by spaces, as the worker sends for a channel with several secrets.';

CREATE FUNCTION notify_webhook_verify(
	secret text,
	msg_id text,
	"timestamp" bigint,
	body text,
	signature_header text)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'notify_webhook_verify'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION notify_webhook_verify(text, text, bigint, text, text) IS
	'True when one of the space-separated signatures in signature_header (the webhook-signature header) is the "v1" signature secret gives for msg_id, timestamp and body; compared in constant time, other schemes (v1a) ignored. It does not check the timestamp''s age: receivers compare it with now() themselves (the specification suggests a tolerance of a few minutes).';

CREATE FUNCTION notify_generate_webhook_secret()
	RETURNS text
	AS 'MODULE_PATHNAME', 'notify_generate_webhook_secret'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION notify_generate_webhook_secret() IS
	'A new webhook signing secret: "whsec_" and the base64 of 24 bytes from the server''s strong random source.';

-- named channels: put, pause, resume, validation, secrets kept private
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN st || ': ' || msg;
END;
$$;

SELECT notify_channel_put('customer-hooks', 'webhook',
	'{"rate_limit": 14, "max_connections": 16, "timeout_ms": 5000}',
	'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SELECT notify_channel_put('ops-slack', 'slack', '{}', 'https://hooks.slack.example/services/T0/B0/XYZ');
SELECT notify_channel_put('postmark', 'http_email',
	'{"provider": "postmark", "from_address": "support@example.com", "message_stream": "outbound"}',
	'server-token-123');
SELECT name, kind, settings, enabled FROM notify_channels ORDER BY name;

-- the secret is stored apart; changing settings without a secret keeps it
SELECT notify_channel_put('postmark', 'http_email', '{"provider": "postmark"}');
SELECT channel, secret = 'server-token-123' AS kept FROM notify_channel_secrets WHERE channel = 'postmark';

-- enqueue picks a channel; webhooks without a fixed url need a URL recipient
SELECT notify_enqueue('order.shipped', 'https://customer.example/hooks/notify', '{"order": 7}',
                      channel => 'customer-hooks') > 0 AS enqueued;
SELECT pg_temp.try($$SELECT notify_enqueue('order.shipped', 'not a url', '{}', channel => 'customer-hooks')$$);
SELECT pg_temp.try($$SELECT notify_enqueue('order.shipped', 'ftp://x.example/', '{}', channel => 'customer-hooks')$$);
SELECT notify_enqueue('ops.alert', '#ops', '{"text": "disk 91% full"}', channel => 'ops-slack') > 0 AS enqueued;
SELECT pg_temp.try($$SELECT notify_enqueue('ops.alert', E'#ops\n', '{}', channel => 'ops-slack')$$);
SELECT pg_temp.try($$SELECT notify_enqueue('user.signup', 'not-an-email', '{}', channel => 'postmark')$$);

-- pause and resume
SELECT notify_channel_pause('ops-slack');
SELECT name, enabled FROM notify_channels WHERE name = 'ops-slack';
SELECT notify_channel_resume('ops-slack');
SELECT pg_temp.try($$SELECT notify_channel_pause('nope')$$);

-- bad definitions: nothing written
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'pigeon', '{}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'smtp', '{}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('email', 'webhook', '{}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('Bad Name', 'webhook', '{}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put(NULL, 'webhook', '{}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'webhook', '[]')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'webhook', '{"colour": "red"}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'webhook', '{"rate_limit": 0}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'webhook', '{"rate_limit": "fast"}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'webhook', '{"max_connections": 2.5}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'webhook', '{"url": "file:///etc/passwd"}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'webhook', '{"headers": {"X-A": "1\r\nX-B: 2"}}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'webhook', '{}', 'not-a-whsec-secret')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'slack', '{}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'slack', '{}', 'http://insecure.example/')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'http_email', '{"provider": "mailchimp"}', 't')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'http_email', '{"provider": "sendgrid"}')$$);
SELECT pg_temp.try($$SELECT notify_channel_put('x', 'http_email', '{"provider": "sendgrid", "from_address": "bad"}', 't')$$);
SELECT count(*) AS x_rows FROM notify_channels WHERE name = 'x';

-- an application role sees no secret anywhere
CREATE ROLE notify_chan_app;
GRANT EXECUTE ON FUNCTION notify_enqueue TO notify_chan_app;
SET ROLE notify_chan_app;
SELECT pg_temp.try($$SELECT * FROM notify_channel_secrets$$);
SELECT pg_temp.try($$SELECT * FROM notify_channels$$);
SELECT pg_temp.try($$SELECT notify_channel_put('evil', 'webhook', '{}')$$);
RESET ROLE;
DROP OWNED BY notify_chan_app;
DROP ROLE notify_chan_app;
DELETE FROM notify_outbox WHERE channel <> 'email';

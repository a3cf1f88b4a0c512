-- notify: named channels beyond the built-in "email" (SMTP): webhooks,
-- Slack, HTTP email providers; their secrets; pause and resume.

CREATE TABLE notify_channel_secrets (
	channel		text PRIMARY KEY REFERENCES notify_channels (name) ON DELETE CASCADE,
	secret		text NOT NULL,
	updated_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE notify_channel_secrets IS
	'Secret of each channel (webhook signing secrets, Slack webhook URL, provider API token). Readable only by the extension owner; never shown in views, logs or errors.';
COMMENT ON COLUMN notify_channel_secrets.channel IS 'The channel.';
COMMENT ON COLUMN notify_channel_secrets.secret IS 'webhook: one or more whsec_ secrets separated by spaces (rotation); slack: the incoming-webhook URL; http_email: the API token.';
COMMENT ON COLUMN notify_channel_secrets.updated_at IS 'When the secret was last set.';
SELECT pg_catalog.pg_extension_config_dump('notify_channel_secrets', '');

-- Wake the worker's channel cache when channels change.
CREATE FUNCTION notify_channels_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'notify_channels_changed'
	LANGUAGE C;
COMMENT ON FUNCTION notify_channels_changed() IS
	'Statement trigger: tells the worker to reload channel settings, and wakes it (a resumed channel may have due rows).';
CREATE TRIGGER notify_channels_changed AFTER INSERT OR UPDATE OR DELETE ON notify_channels
	FOR EACH STATEMENT EXECUTE FUNCTION notify_channels_changed();
COMMENT ON TRIGGER notify_channels_changed ON notify_channels IS
	'Tells the worker to reload channel settings.';
CREATE TRIGGER notify_channel_secrets_changed AFTER INSERT OR UPDATE OR DELETE ON notify_channel_secrets
	FOR EACH STATEMENT EXECUTE FUNCTION notify_channels_changed();
COMMENT ON TRIGGER notify_channel_secrets_changed ON notify_channel_secrets IS
	'Tells the worker to reload channel secrets.';

-- Check one channel's settings; raise 22023 naming the bad key.
CREATE FUNCTION notify_channel_check(kind text, settings jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	k text;
	allowed text[];
BEGIN
	IF kind IS NULL OR kind NOT IN ('smtp', 'webhook', 'slack', 'http_email') THEN
		RAISE EXCEPTION 'unknown channel kind %', notify_quote(kind)
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Kinds are webhook, slack and http_email (smtp is the built-in channel "email").';
	END IF;
	IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
		RAISE EXCEPTION 'channel settings must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	allowed := ARRAY['rate_limit', 'max_connections', 'timeout_ms'] ||
		CASE kind
			WHEN 'webhook' THEN ARRAY['url', 'headers', 'allow_private_destinations', 'allowed_hosts', 'follow_redirects']
			WHEN 'slack' THEN ARRAY['allow_private_destinations']
			WHEN 'http_email' THEN ARRAY['provider', 'url', 'from_address', 'from_name', 'message_stream', 'allow_private_destinations']
			ELSE ARRAY[]::text[] END;
	FOR k IN SELECT jsonb_object_keys(settings) LOOP
		IF NOT k = ANY (allowed) THEN
			RAISE EXCEPTION 'unknown setting % for a % channel', notify_quote(k), kind
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Settings of this kind: ' || array_to_string(allowed, ', ') || '.';
		END IF;
	END LOOP;
	IF settings ? 'rate_limit' AND (jsonb_typeof(settings -> 'rate_limit') <> 'number' OR (settings ->> 'rate_limit')::numeric <= 0) THEN
		RAISE EXCEPTION 'rate_limit must be a positive number of messages per second' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF settings ? 'max_connections' AND (jsonb_typeof(settings -> 'max_connections') <> 'number'
			OR (settings ->> 'max_connections')::numeric NOT BETWEEN 1 AND 1000
			OR (settings ->> 'max_connections')::numeric <> trunc((settings ->> 'max_connections')::numeric)) THEN
		RAISE EXCEPTION 'max_connections must be an integer from 1 to 1000' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF settings ? 'timeout_ms' AND (jsonb_typeof(settings -> 'timeout_ms') <> 'number'
			OR (settings ->> 'timeout_ms')::numeric NOT BETWEEN 100 AND 3600000) THEN
		RAISE EXCEPTION 'timeout_ms must be a number from 100 to 3600000' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF settings ? 'url' AND (jsonb_typeof(settings -> 'url') <> 'string'
			OR settings ->> 'url' !~ '^https?://[^\s/?#@]+(/[^\s]*)?$') THEN
		RAISE EXCEPTION 'url must be an http:// or https:// URL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF settings ? 'headers' AND (jsonb_typeof(settings -> 'headers') <> 'object'
			OR EXISTS (SELECT 1 FROM jsonb_each(settings -> 'headers') h
					   WHERE jsonb_typeof(h.value) <> 'string' OR h.key !~ '^[A-Za-z0-9-]{1,64}$'
						  OR h.value #>> '{}' ~ '[\r\n]')) THEN
		RAISE EXCEPTION 'headers must be an object of header names to string values without CR or LF'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF settings ? 'allowed_hosts' AND (jsonb_typeof(settings -> 'allowed_hosts') <> 'array'
			OR EXISTS (SELECT 1 FROM jsonb_array_elements(settings -> 'allowed_hosts') h WHERE jsonb_typeof(h) <> 'string')) THEN
		RAISE EXCEPTION 'allowed_hosts must be an array of host names' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF kind = 'http_email' THEN
		IF NOT settings ? 'provider' OR settings ->> 'provider' NOT IN ('postmark', 'sendgrid') THEN
			RAISE EXCEPTION 'an http_email channel needs provider "postmark" or "sendgrid"' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF settings ? 'from_address' AND NOT notify_email_is_valid(settings ->> 'from_address') THEN
			RAISE EXCEPTION 'from_address % is not a valid email address', notify_quote(settings ->> 'from_address')
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF coalesce(settings ->> 'from_name', '') ~ '[\r\n]' THEN
			RAISE EXCEPTION 'from_name must not contain CR or LF' USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
END;
$$;
COMMENT ON FUNCTION notify_channel_check(text, jsonb) IS
	'Checks a channel kind and its settings; raises 22023 naming what is wrong.';

CREATE FUNCTION notify_channel_put(name text, kind text, settings jsonb DEFAULT '{}', secret text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name = 'email' OR kind = 'smtp' THEN
		RAISE EXCEPTION 'the SMTP channel is the built-in channel "email", configured by the notify.smtp_* settings'
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use notify_channel_pause/notify_channel_resume for it; its rate_limit can be set with UPDATE notify_channels.';
	END IF;
	IF name !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid channel name %', notify_quote(name)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A channel name is 1 to 63 lowercase letters, digits, "_", "." or "-".';
	END IF;
	PERFORM notify_channel_check(kind, settings);
	IF kind = 'slack' AND (secret IS NULL OR secret !~
			CASE WHEN settings ->> 'allow_private_destinations' = 'true' THEN '^https?://[^\s]+$' ELSE '^https://[^\s]+$' END) THEN
		RAISE EXCEPTION 'a slack channel needs its incoming-webhook URL (https://...) as its secret'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF kind = 'http_email' AND secret IS NULL
	   AND NOT EXISTS (SELECT 1 FROM notify_channel_secrets s WHERE s.channel = notify_channel_put.name) THEN
		RAISE EXCEPTION 'an http_email channel needs the provider''s API token as its secret'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF kind = 'webhook' AND secret IS NOT NULL
	   AND secret !~ '^whsec_[A-Za-z0-9+/=]+( whsec_[A-Za-z0-9+/=]+)*$' THEN
		RAISE EXCEPTION 'a webhook secret is one or more whsec_<base64> values separated by spaces'
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'notify_generate_webhook_secret() makes one.';
	END IF;
	IF secret ~ '[\r\n]' THEN
		RAISE EXCEPTION 'a secret must not contain CR or LF' USING ERRCODE = 'invalid_parameter_value';
	END IF;

	INSERT INTO notify_channels AS c (name, kind, settings)
	VALUES (notify_channel_put.name, kind, settings)
	ON CONFLICT ON CONSTRAINT notify_channels_pkey
	DO UPDATE SET kind = excluded.kind, settings = excluded.settings;
	IF secret IS NOT NULL THEN
		INSERT INTO notify_channel_secrets AS s (channel, secret)
		VALUES (notify_channel_put.name, secret)
		ON CONFLICT ON CONSTRAINT notify_channel_secrets_pkey
		DO UPDATE SET secret = excluded.secret, updated_at = now();
	END IF;
END;
$$;
COMMENT ON FUNCTION notify_channel_put(text, text, jsonb, text) IS
	'Creates or replaces a named channel (webhook, slack, http_email) with its settings and, if given, its secret.';

CREATE FUNCTION notify_channel_pause(name text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	UPDATE notify_channels c SET enabled = false WHERE c.name = notify_channel_pause.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown channel %', notify_quote(name) USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN true;
END;
$$;
COMMENT ON FUNCTION notify_channel_pause(text) IS
	'Pauses a channel: its rows stay pending (nothing is lost) until notify_channel_resume.';

CREATE FUNCTION notify_channel_resume(name text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	UPDATE notify_channels c SET enabled = true WHERE c.name = notify_channel_resume.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown channel %', notify_quote(name) USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN true;
END;
$$;
COMMENT ON FUNCTION notify_channel_resume(text) IS
	'Resumes a paused channel; its pending rows are delivered.';

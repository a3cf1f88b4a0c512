-- notify: operating it.  Triggers that enqueue from business tables
-- (notify_trigger, notify_on), the metrics and admin views and the indexes
-- behind them, the Prometheus exposition, and bulk admin actions (cancel by
-- pattern or recipient, requeue failures).  See docs/operations.md.

-- ---- triggers on business tables ----
--
-- A notify trigger is configured by its arguments, each one key=value:
--
--   template=ticket.replied            template key (required)
--   recipient=email                    column holding the recipient (required)
--   dedup=ticket_reply:{id}:{msg_id}   dedup key; {column} is a column's value
--   category=transactional             notify_categories name
--   channel=email                      notify_channels name (default email)
--   locale=lang                        column holding the locale
--   payload=id,body:reply_body         columns that make the payload, column or
--                                      column:variable (default: the whole row)
--   when_changed=status,assignee       UPDATE: fire only when one of these changed
--   actor=updated_by                   column holding the application actor
--
-- Values are taken literally, never evaluated as SQL.  An event trigger
-- checks the arguments when CREATE TRIGGER runs, so bad ones fail there;
-- notify_on() builds the trigger from ordinary arguments.

-- Parse and check notify trigger arguments (key=value, see above) into a
-- JSON object; raises 22023 naming the bad argument.
CREATE FUNCTION notify_trigger_config(args text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	arg text;
	k text;
	v text;
	cfg jsonb := '{}';
	keys constant text[] := ARRAY['template', 'recipient', 'dedup', 'category', 'channel',
								  'locale', 'payload', 'when_changed', 'actor'];
	cols text[];
BEGIN
	IF args IS NULL THEN
		RAISE EXCEPTION 'notify trigger arguments must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	FOREACH arg IN ARRAY args LOOP
		IF arg IS NULL OR strpos(arg, '=') = 0 THEN
			RAISE EXCEPTION 'notify trigger argument % is not key=value', notify_quote(arg)
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Keys: ' || array_to_string(keys, ', ') || '.';
		END IF;
		k := btrim(split_part(arg, '=', 1));
		v := substr(arg, strpos(arg, '=') + 1);
		IF NOT k = ANY (keys) THEN
			RAISE EXCEPTION 'unknown notify trigger argument %', notify_quote(k)
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Keys: ' || array_to_string(keys, ', ') || '.';
		END IF;
		IF cfg ? k THEN
			RAISE EXCEPTION 'notify trigger argument % is given twice', notify_quote(k)
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF k <> 'dedup' THEN
			v := btrim(v);
		END IF;
		IF v = '' THEN
			RAISE EXCEPTION 'notify trigger argument % has an empty value', notify_quote(k)
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF k IN ('payload', 'when_changed') THEN
			cols := ARRAY(SELECT btrim(c) FROM unnest(string_to_array(v, ',')) c);
			IF '' = ANY (cols) THEN
				RAISE EXCEPTION 'notify trigger argument % has an empty column name in %', k, notify_quote(v)
					USING ERRCODE = 'invalid_parameter_value',
					HINT = 'Columns are separated by commas: payload=id,subject.';
			END IF;
			cfg := cfg || jsonb_build_object(k, to_jsonb(cols));
		ELSE
			cfg := cfg || jsonb_build_object(k, v);
		END IF;
	END LOOP;

	IF NOT cfg ? 'template' THEN
		RAISE EXCEPTION 'notify trigger needs a template=<template key> argument'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT cfg ? 'recipient' THEN
		RAISE EXCEPTION 'notify trigger needs a recipient=<column> argument'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF length(cfg ->> 'template') > 128 OR cfg ->> 'template' !~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$' THEN
		RAISE EXCEPTION 'invalid template key %', notify_quote(cfg ->> 'template')
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A template key is <domain>.<event>: lowercase letters, digits and "_", separated by dots, at most 128 characters.';
	END IF;
	IF cfg ? 'dedup' THEN
		cfg := cfg || jsonb_build_object('dedup_columns', to_jsonb(notify_dedup_placeholders(cfg ->> 'dedup')));
	END IF;
	RETURN cfg;
END;
$$;
COMMENT ON FUNCTION notify_trigger_config(text[]) IS
	'Parses notify trigger arguments (template=, recipient=, dedup=, category=, channel=, locale=, payload=, when_changed=, actor=) into a JSON object; raises 22023 naming a bad argument. Does not look at the table: notify_trigger_check does.';

-- The column names in a dedup key format, in order; raises 22023 for
-- unbalanced braces or an empty placeholder.
CREATE FUNCTION notify_dedup_placeholders(format text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	IF format IS NULL OR format = '' THEN
		RAISE EXCEPTION 'dedup key format must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF regexp_replace(format, '\{[^{}]+\}', '', 'g') ~ '[{}]' THEN
		RAISE EXCEPTION 'dedup key format % has unbalanced braces or an empty placeholder', notify_quote(format)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'Placeholders are column names in braces, as in ticket_reply:{ticket_id}:{id}; braces cannot appear otherwise.';
	END IF;
	IF format !~ '\{' THEN
		RAISE EXCEPTION 'dedup key format % has no {column} placeholder', notify_quote(format)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A constant key would let only the first row ever notify.';
	END IF;
	RETURN ARRAY(SELECT m[1] FROM regexp_matches(format, '\{([^{}]+)\}', 'g') AS m);
END;
$$;
COMMENT ON FUNCTION notify_dedup_placeholders(text) IS
	'The {column} placeholders of a dedup key format, in order; raises 22023 for an empty format, unbalanced braces, an empty placeholder or none at all.';

-- Check notify trigger arguments against a table (columns, channel,
-- category, template and its required variables); returns the parsed
-- arguments.  notify_on and the CREATE TRIGGER check use it.
CREATE FUNCTION notify_trigger_check(table_name regclass, args text[], event text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	cfg jsonb;
	col text;
	k text;
	v_kind text;
	payload_keys text[];
	missing text;
BEGIN
	IF table_name IS NULL THEN
		RAISE EXCEPTION 'table_name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = table_name AND c.relkind IN ('r', 'p', 'f')) THEN
		RAISE EXCEPTION '% is not a table', table_name USING ERRCODE = 'wrong_object_type';
	END IF;
	cfg := notify_trigger_config(args);
	IF event IS NOT NULL AND cfg ? 'when_changed' AND upper(event) !~ 'UPDATE' THEN
		RAISE EXCEPTION 'when_changed needs an UPDATE trigger, not %', upper(event)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- every column the arguments name must exist
	FOR k, col IN
		SELECT 'recipient', cfg ->> 'recipient'
		UNION ALL SELECT 'locale', cfg ->> 'locale' WHERE cfg ? 'locale'
		UNION ALL SELECT 'actor', cfg ->> 'actor' WHERE cfg ? 'actor'
		UNION ALL SELECT 'dedup', c FROM jsonb_array_elements_text(coalesce(cfg -> 'dedup_columns', '[]')) c
		UNION ALL SELECT 'payload', split_part(c, ':', 1) FROM jsonb_array_elements_text(coalesce(cfg -> 'payload', '[]')) c
		UNION ALL SELECT 'when_changed', c FROM jsonb_array_elements_text(coalesce(cfg -> 'when_changed', '[]')) c
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
					   WHERE a.attrelid = table_name AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped) THEN
			RAISE EXCEPTION 'column % named by notify trigger argument % does not exist in table %',
				notify_quote(col), k, table_name
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Columns of ' || table_name::text || ': ' ||
					(SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
					 WHERE a.attrelid = table_name AND a.attnum > 0 AND NOT a.attisdropped) || '.';
		END IF;
	END LOOP;

	SELECT c.kind INTO v_kind FROM notify_channels c WHERE c.name = coalesce(cfg ->> 'channel', 'email');
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown channel %', notify_quote(cfg ->> 'channel')
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Channels are listed in notify_channels.';
	END IF;

	IF cfg ? 'category' AND NOT EXISTS (SELECT 1 FROM notify_categories c WHERE c.name = cfg ->> 'category') THEN
		RAISE EXCEPTION 'unknown category %', notify_quote(cfg ->> 'category')
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Categories are listed in notify_categories.';
	END IF;

	-- the template: email channels need one, and what its schema requires
	-- must be in the payload the trigger builds
	IF v_kind IN ('smtp', 'http_email')
	   AND NOT EXISTS (SELECT 1 FROM notify_template_active a WHERE a.template_key = cfg ->> 'template') THEN
		RAISE EXCEPTION 'template % has no active version', notify_quote(cfg ->> 'template')
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('Channel %s delivers email, which needs a template.', notify_quote(coalesce(cfg ->> 'channel', 'email'))),
			HINT = 'Register it with notify_template_put() first.';
	END IF;
	IF cfg ? 'payload' THEN
		payload_keys := ARRAY(SELECT coalesce(nullif(split_part(p, ':', 2), ''), p)
							  FROM jsonb_array_elements_text(cfg -> 'payload') p);
	ELSE
		payload_keys := ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
							  WHERE a.attrelid = table_name AND a.attnum > 0 AND NOT a.attisdropped);
	END IF;
	SELECT string_agg(DISTINCT r, ', ') INTO missing
	FROM notify_template_active a
	JOIN notify_templates t USING (template_key, locale, version)
	CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(t.schema -> 'required', '[]')) r
	WHERE a.template_key = cfg ->> 'template' AND NOT r = ANY (payload_keys);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'template % requires payload variables the trigger does not provide: %', notify_quote(cfg ->> 'template'), missing
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Name the columns that provide them in payload=, as column or column:variable.';
	END IF;
	RETURN cfg;
END;
$$;
COMMENT ON FUNCTION notify_trigger_check(regclass, text[], text) IS
	'Checks notify trigger arguments against a table: syntax, columns that exist, known channel and category, when_changed only for UPDATE (when event is given). Returns the parsed configuration; raises 22023 naming the problem. notify_on and the CREATE TRIGGER check call it; admins can too.';

-- The trigger: enqueues one notification for the written row.
-- Self-contained on purpose: the writing role needs EXECUTE on
-- notify_enqueue and on nothing else (PUBLIC may execute no notify
-- function), so the arguments are parsed here rather than by
-- notify_trigger_config.  They were checked when the trigger was created.
CREATE FUNCTION notify_trigger() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
	arg text;
	k text;
	v text;
	cfg jsonb := '{}';
	list_keys constant text[] := ARRAY['payload', 'when_changed'];
	new_row jsonb;
	old_row jsonb;
	col text;
	v_recipient text;
	v_payload jsonb;
	v_locale text;
	v_dedup text;
	pieces text[];
	names text[];
BEGIN
	IF TG_LEVEL <> 'ROW' OR TG_WHEN <> 'AFTER' OR TG_OP NOT IN ('INSERT', 'UPDATE') THEN
		RAISE EXCEPTION 'notify_trigger() must be an AFTER INSERT or UPDATE ... FOR EACH ROW trigger'
			USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = format('Trigger %s on %I.%I fired %s %s FOR EACH %s.', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_WHEN, TG_OP, TG_LEVEL);
	END IF;
	FOREACH arg IN ARRAY coalesce(TG_ARGV, '{}') LOOP
		k := btrim(split_part(arg, '=', 1));
		v := substr(arg, strpos(arg, '=') + 1);
		IF strpos(arg, '=') = 0 OR NOT k = ANY (ARRAY['template', 'recipient', 'dedup', 'category', 'channel',
													 'locale', 'payload', 'when_changed', 'actor']) THEN
			RAISE EXCEPTION 'trigger % on %.% has a bad argument %', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME, to_json(arg)
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Check it with notify_trigger_check(), or recreate the trigger with notify_on().';
		END IF;
		IF k = ANY (list_keys) THEN
			cfg := cfg || jsonb_build_object(k, (SELECT jsonb_agg(btrim(c)) FROM unnest(string_to_array(v, ',')) c));
		ELSE
			cfg := cfg || jsonb_build_object(k, CASE WHEN k = 'dedup' THEN v ELSE btrim(v) END);
		END IF;
	END LOOP;
	IF NOT cfg ? 'template' OR NOT cfg ? 'recipient' THEN
		RAISE EXCEPTION 'trigger % on %.% needs template= and recipient= arguments', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	new_row := to_jsonb(NEW);
	IF cfg ? 'dedup' THEN
		pieces := regexp_split_to_array(cfg ->> 'dedup', '\{[^{}]+\}');
		names := ARRAY(SELECT m[1] FROM regexp_matches(cfg ->> 'dedup', '\{([^{}]+)\}', 'g') AS m);
	END IF;

	-- Columns were checked when the trigger was created; one dropped or
	-- renamed since then (with that check bypassed) fails here, loudly.
	FOR col IN
		SELECT cfg ->> 'recipient'
		UNION ALL SELECT cfg ->> 'locale' WHERE cfg ? 'locale'
		UNION ALL SELECT cfg ->> 'actor' WHERE cfg ? 'actor'
		UNION ALL SELECT unnest(names)
		UNION ALL SELECT split_part(jsonb_array_elements_text(coalesce(cfg -> 'payload', '[]')), ':', 1)
		UNION ALL SELECT jsonb_array_elements_text(coalesce(cfg -> 'when_changed', '[]'))
	LOOP
		IF NOT new_row ? col THEN
			RAISE EXCEPTION 'column % named by trigger % does not exist in table %.%',
				to_json(col), TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Recreate the trigger with notify_on().';
		END IF;
	END LOOP;

	IF TG_OP = 'UPDATE' AND cfg ? 'when_changed' THEN
		old_row := to_jsonb(OLD);
		IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(cfg -> 'when_changed') c
					   WHERE (old_row ->> c) IS DISTINCT FROM (new_row ->> c)) THEN
			RETURN NULL;
		END IF;
	END IF;

	-- A row without a recipient is not a notification.
	v_recipient := new_row ->> (cfg ->> 'recipient');
	IF v_recipient IS NULL THEN
		RETURN NULL;
	END IF;

	IF cfg ? 'payload' THEN
		SELECT jsonb_object_agg(coalesce(nullif(split_part(c, ':', 2), ''), c), new_row -> split_part(c, ':', 1)) INTO v_payload
		FROM jsonb_array_elements_text(cfg -> 'payload') c;
	ELSE
		v_payload := new_row;
	END IF;

	-- en_US and the like are common in application tables; anything that is
	-- still not a language tag falls back to the default locale.
	IF cfg ? 'locale' THEN
		v_locale := replace(new_row ->> (cfg ->> 'locale'), '_', '-');
		IF v_locale !~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$' THEN
			v_locale := NULL;
		END IF;
	END IF;

	-- The dedup key; NULL when a placeholder's value is NULL.
	IF cfg ? 'dedup' THEN
		v_dedup := pieces[1];
		FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
			v_dedup := v_dedup || (new_row ->> names[i]) || pieces[i + 1];
		END LOOP;
	END IF;

	PERFORM @extschema@.notify_enqueue(
		template_key => cfg ->> 'template',
		recipient => v_recipient,
		payload => v_payload,
		channel => coalesce(cfg ->> 'channel', 'email'),
		category => cfg ->> 'category',
		dedup_key => v_dedup,
		locale => v_locale,
		actor => new_row ->> (cfg ->> 'actor'),
		metadata => jsonb_build_object('source', 'trigger', 'table', format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME),
									   'trigger', TG_NAME, 'operation', TG_OP));
	RETURN NULL;
END;
$$;
COMMENT ON FUNCTION notify_trigger() IS
	'Row trigger (AFTER INSERT or UPDATE) that enqueues a notification in the writing transaction, configured by key=value trigger arguments (docs/operations.md). Runs as the writing role, which needs EXECUTE on notify_enqueue. Create it with notify_on().';

-- The text arguments of a trigger, from pg_trigger.tgargs.
CREATE FUNCTION notify_trigger_args(trigger_oid oid) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	raw bytea;
	n integer;
	p integer;
	args text[] := '{}';
BEGIN
	SELECT t.tgargs, t.tgnargs INTO raw, n FROM pg_catalog.pg_trigger t WHERE t.oid = trigger_oid;
	FOR i IN 1 .. coalesce(n, 0) LOOP
		p := position('\x00'::bytea IN raw);
		args := args || convert_from(substr(raw, 1, p - 1), current_setting('server_encoding'));
		raw := substr(raw, p + 1);
	END LOOP;
	RETURN args;
END;
$$;
COMMENT ON FUNCTION notify_trigger_args(oid) IS
	'The arguments of a trigger (pg_trigger.tgargs) as a text array.';

-- Event trigger: check notify triggers when they are created, and when
-- their table is altered (a dropped or renamed column would otherwise
-- break every later write to the table).
CREATE FUNCTION notify_trigger_ddl_check() RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	t record;
	fn oid := '@extschema@.notify_trigger()'::regprocedure;
BEGIN
	FOR t IN
		SELECT DISTINCT tg.oid, tg.tgname, tg.tgrelid, tg.tgtype, d.command_tag
		FROM pg_event_trigger_ddl_commands() d
		JOIN pg_catalog.pg_trigger tg
		  ON tg.tgfoid = fn
		 AND ((d.command_tag = 'CREATE TRIGGER' AND d.classid = 'pg_catalog.pg_trigger'::regclass AND tg.oid = d.objid)
			  OR (d.command_tag = 'ALTER TABLE' AND d.classid = 'pg_catalog.pg_class'::regclass AND tg.tgrelid = d.objid))
	LOOP
		-- tgtype bits: 1 row, 2 before, 4 insert, 8 delete, 16 update, 32 truncate, 64 instead
		IF t.tgtype & 1 = 0 OR t.tgtype & (2 | 64) <> 0 OR t.tgtype & (8 | 32) <> 0 THEN
			RAISE EXCEPTION 'trigger % on % must be AFTER INSERT or UPDATE ... FOR EACH ROW to use notify_trigger()',
				t.tgname, t.tgrelid::regclass
				USING ERRCODE = 'invalid_object_definition';
		END IF;
		BEGIN
			PERFORM notify_trigger_check(t.tgrelid::regclass, notify_trigger_args(t.oid),
										 CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' ELSE 'INSERT' END);
		EXCEPTION WHEN invalid_parameter_value THEN
			-- the same error, naming the trigger
			DECLARE
				msg text;
				detail text;
				hint text;
			BEGIN
				GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
				msg := format('notify trigger %s on %s: %s', t.tgname, t.tgrelid::regclass, msg);
				IF t.command_tag = 'ALTER TABLE' THEN
					hint := 'Drop the trigger first, or recreate it with notify_on() after the change.';
				END IF;
				IF detail <> '' AND hint <> '' THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = msg, DETAIL = detail, HINT = hint;
				ELSIF detail <> '' THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = msg, DETAIL = detail;
				ELSIF hint <> '' THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = msg, HINT = hint;
				ELSE
					RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = msg;
				END IF;
			END;
		END;
	END LOOP;
END;
$$;
COMMENT ON FUNCTION notify_trigger_ddl_check() IS
	'Event trigger function: refuses CREATE TRIGGER with bad notify_trigger() arguments, and ALTER TABLE that drops or renames a column a notify trigger uses.';
CREATE EVENT TRIGGER notify_trigger_ddl_check ON ddl_command_end
	WHEN TAG IN ('CREATE TRIGGER', 'ALTER TABLE')
	EXECUTE FUNCTION notify_trigger_ddl_check();
COMMENT ON EVENT TRIGGER notify_trigger_ddl_check IS
	'Checks notify_trigger() arguments at CREATE TRIGGER, and the columns they name at ALTER TABLE.';

-- Create (or replace) a notify trigger from ordinary arguments; returns its
-- name.  Everything is checked before the trigger exists.
CREATE FUNCTION notify_on(
	table_name regclass,
	event text,
	template_key text,
	recipient_column text,
	dedup_key_format text DEFAULT NULL,
	category text DEFAULT NULL,
	channel text DEFAULT 'email',
	payload_columns text[] DEFAULT NULL,
	locale_column text DEFAULT NULL,
	when_changed text[] DEFAULT NULL,
	actor_column text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_event text;
	args text[];
	cfg jsonb;
	v_name text;
	v_when text := '';
	other oid;
BEGIN
	IF table_name IS NULL OR event IS NULL OR template_key IS NULL OR recipient_column IS NULL THEN
		RAISE EXCEPTION '% must not be null',
			CASE WHEN table_name IS NULL THEN 'table_name' WHEN event IS NULL THEN 'event'
				 WHEN template_key IS NULL THEN 'template_key' ELSE 'recipient_column' END
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	v_event := upper(regexp_replace(btrim(event), '\s+', ' ', 'g'));
	IF v_event = 'UPDATE OR INSERT' THEN
		v_event := 'INSERT OR UPDATE';
	END IF;
	IF v_event NOT IN ('INSERT', 'UPDATE', 'INSERT OR UPDATE') THEN
		RAISE EXCEPTION 'invalid event %', notify_quote(event)
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Events are insert, update, or insert or update.';
	END IF;
	IF EXISTS (SELECT 1 FROM unnest(coalesce(payload_columns, '{}') || coalesce(when_changed, '{}')) c
			   WHERE c IS NULL OR c ~ ',') THEN
		RAISE EXCEPTION 'payload_columns and when_changed must not contain NULL or names with commas'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF payload_columns = '{}' OR when_changed = '{}' THEN
		RAISE EXCEPTION '% must not be an empty array', CASE WHEN payload_columns = '{}' THEN 'payload_columns' ELSE 'when_changed' END
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Pass NULL for the default.';
	END IF;

	args := ARRAY['template=' || template_key, 'recipient=' || recipient_column];
	IF dedup_key_format IS NOT NULL THEN args := args || ('dedup=' || dedup_key_format); END IF;
	IF category IS NOT NULL THEN args := args || ('category=' || category); END IF;
	IF channel IS NOT NULL AND channel <> 'email' THEN args := args || ('channel=' || channel); END IF;
	IF locale_column IS NOT NULL THEN args := args || ('locale=' || locale_column); END IF;
	IF payload_columns IS NOT NULL THEN args := args || ('payload=' || array_to_string(payload_columns, ',')); END IF;
	IF when_changed IS NOT NULL THEN args := args || ('when_changed=' || array_to_string(when_changed, ',')); END IF;
	IF actor_column IS NOT NULL THEN args := args || ('actor=' || actor_column); END IF;
	cfg := notify_trigger_check(table_name, args, v_event);

	-- An UPDATE trigger with when_changed gets a WHEN clause too, so that
	-- other updates do not even call the function.  (Compared as text, like
	-- the function does; an INSERT OR UPDATE trigger cannot have one.)
	IF when_changed IS NOT NULL AND v_event = 'UPDATE' THEN
		SELECT 'WHEN (' || string_agg(format('OLD.%1$I::text IS DISTINCT FROM NEW.%1$I::text', c), ' OR ') || ')'
		INTO v_when FROM unnest(when_changed) c;
	END IF;

	v_name := left(format('notify_%s_%s_%s', replace(lower(v_event), ' ', '_'),
						  regexp_replace(template_key, '[^a-z0-9]+', '_', 'g'),
						  regexp_replace(lower(recipient_column), '[^a-z0-9]+', '_', 'g')), 63);
	SELECT tg.tgfoid INTO other FROM pg_catalog.pg_trigger tg WHERE tg.tgrelid = table_name AND tg.tgname = v_name;
	IF FOUND AND other <> 'notify_trigger()'::regprocedure THEN
		RAISE EXCEPTION 'table % already has a trigger % that is not a notify trigger', table_name, v_name
			USING ERRCODE = 'duplicate_object';
	END IF;

	EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s FOR EACH ROW %s EXECUTE FUNCTION %I.notify_trigger(%s)',
				   v_name, v_event, table_name, v_when, '@extschema@',
				   (SELECT string_agg(quote_literal(a), ', ') FROM unnest(args) a));
	PERFORM notify_audit('trigger_created', 'trigger:' || table_name::text || '.' || v_name,
						 jsonb_build_object('event', v_event, 'arguments', to_jsonb(args)));
	RETURN v_name;
END;
$$;
COMMENT ON FUNCTION notify_on(regclass, text, text, text, text, text, text, text[], text, text[], text) IS
	'Creates (or replaces) an AFTER INSERT / UPDATE row trigger that enqueues template_key to the recipient in recipient_column for each written row; bad arguments fail here. Returns the trigger name: notify_<event>_<template>_<recipient column>.';

-- Every notify trigger in the database.
CREATE VIEW notify_triggers AS
	SELECT tg.tgrelid::regclass AS table_name,
		   tg.tgname AS trigger_name,
		   concat_ws(' OR ', CASE WHEN tg.tgtype & 4 <> 0 THEN 'INSERT' END,
					 CASE WHEN tg.tgtype & 16 <> 0 THEN 'UPDATE' END) AS event,
		   tg.tgenabled <> 'D' AS enabled,
		   notify_trigger_args(tg.oid) AS arguments
	FROM pg_catalog.pg_trigger tg
	WHERE tg.tgfoid = 'notify_trigger()'::regprocedure
	  AND tg.tgparentid = 0		-- not the copies on partitions
	ORDER BY 1, 2;
COMMENT ON VIEW notify_triggers IS
	'Every notify trigger in the database: table, trigger name, events, whether enabled, and its key=value arguments.';

-- ---- indexes behind the views ----
-- The views read recent rows only; these keep that independent of how much
-- history the tables hold.  Both per-message updates of the outbox (claim,
-- record) are non-HOT, so every index whose predicate a new row version
-- matches gets an entry: these are partial so that a message adds about
-- one entry to each, not one per update.  Pending and sending rows are
-- found through notify_outbox_claim_idx and notify_outbox_lease_idx.
CREATE INDEX notify_outbox_finished_idx ON notify_outbox (created_at)
	WHERE status NOT IN ('pending', 'sending');
COMMENT ON INDEX notify_outbox_finished_idx IS
	'Finished rows (sent, failed, skipped, canceled, expired) by creation time: notify_stats, and archiving by age.';
CREATE INDEX notify_outbox_sent_idx ON notify_outbox (sent_at) WHERE sent_at IS NOT NULL;
COMMENT ON INDEX notify_outbox_sent_idx IS
	'Rows sent in a time window: notify_delivery_latency.';
CREATE INDEX notify_attempts_failed_idx ON notify_attempts (finished_at) WHERE outcome <> 'sent';
COMMENT ON INDEX notify_attempts_failed_idx IS
	'Failed attempts in a time window: notify_failures, notify_requeue_failed(since => ...).';

-- ---- metrics and admin views ----
-- Messages created in the last hour and day, by what became of them.
CREATE VIEW notify_stats AS
	SELECT w.period, s.channel, s.category,
		   w.created, w.sent, w.failed, w.skipped, w.canceled, w.expired, w.pending, w.retries
	FROM (SELECT g.channel, g.category,
				 coalesce(sum(g.n) FILTER (WHERE g.h), 0)::bigint AS created_1h,
				 coalesce(sum(g.n) FILTER (WHERE g.h AND g.status = 'sent'), 0)::bigint AS sent_1h,
				 coalesce(sum(g.n) FILTER (WHERE g.h AND g.status = 'failed'), 0)::bigint AS failed_1h,
				 coalesce(sum(g.n) FILTER (WHERE g.h AND g.status = 'skipped'), 0)::bigint AS skipped_1h,
				 coalesce(sum(g.n) FILTER (WHERE g.h AND g.status = 'canceled'), 0)::bigint AS canceled_1h,
				 coalesce(sum(g.n) FILTER (WHERE g.h AND g.status = 'expired'), 0)::bigint AS expired_1h,
				 coalesce(sum(g.n) FILTER (WHERE g.h AND g.status IN ('pending', 'sending')), 0)::bigint AS pending_1h,
				 coalesce(sum(g.retries) FILTER (WHERE g.h), 0)::bigint AS retries_1h,
				 coalesce(sum(g.n), 0)::bigint AS created_24h,
				 coalesce(sum(g.n) FILTER (WHERE g.status = 'sent'), 0)::bigint AS sent_24h,
				 coalesce(sum(g.n) FILTER (WHERE g.status = 'failed'), 0)::bigint AS failed_24h,
				 coalesce(sum(g.n) FILTER (WHERE g.status = 'skipped'), 0)::bigint AS skipped_24h,
				 coalesce(sum(g.n) FILTER (WHERE g.status = 'canceled'), 0)::bigint AS canceled_24h,
				 coalesce(sum(g.n) FILTER (WHERE g.status = 'expired'), 0)::bigint AS expired_24h,
				 coalesce(sum(g.n) FILTER (WHERE g.status IN ('pending', 'sending')), 0)::bigint AS pending_24h,
				 coalesce(sum(g.retries), 0)::bigint AS retries_24h
		  -- one pass over the day's rows into a few groups, then pivoted
		  FROM (SELECT o.channel, o.category, o.status, o.created_at >= now() - interval '1 hour' AS h,
					   count(*) AS n, sum(greatest(o.attempts - 1, 0)) AS retries
				-- finished rows through notify_outbox_finished_idx, the others
				-- through the claim and lease indexes
				FROM (SELECT f.channel, f.category, f.status, f.created_at, f.attempts FROM notify_outbox f
					  WHERE f.created_at >= now() - interval '24 hours' AND f.status NOT IN ('pending', 'sending')
					  UNION ALL
					  SELECT p.channel, p.category, p.status, p.created_at, p.attempts FROM notify_outbox p
					  WHERE p.status = 'pending' AND p.created_at >= now() - interval '24 hours'
					  UNION ALL
					  SELECT s.channel, s.category, s.status, s.created_at, s.attempts FROM notify_outbox s
					  WHERE s.status = 'sending' AND s.created_at >= now() - interval '24 hours') o
				GROUP BY 1, 2, 3, 4) g
		  GROUP BY g.channel, g.category) s
	CROSS JOIN LATERAL (VALUES
		('1h', s.created_1h, s.sent_1h, s.failed_1h, s.skipped_1h, s.canceled_1h, s.expired_1h, s.pending_1h, s.retries_1h),
		('24h', s.created_24h, s.sent_24h, s.failed_24h, s.skipped_24h, s.canceled_24h, s.expired_24h, s.pending_24h, s.retries_24h))
		AS w(period, created, sent, failed, skipped, canceled, expired, pending, retries)
	ORDER BY w.period, s.channel, s.category;
COMMENT ON VIEW notify_stats IS
	'Notifications created in the last hour (period 1h) and day (24h) per channel and category, by what became of them: sent, failed, skipped, canceled, expired, pending (not finished: pending or sending), and retries (attempts beyond the first).';

-- How long the last hour's messages took from due to sent.
CREATE VIEW notify_delivery_latency AS
	SELECT o.channel,
		   count(*) AS sent,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY o.sent_at - greatest(o.created_at, o.send_at)) AS p50,
		   percentile_cont(0.95) WITHIN GROUP (ORDER BY o.sent_at - greatest(o.created_at, o.send_at)) AS p95,
		   percentile_cont(0.99) WITHIN GROUP (ORDER BY o.sent_at - greatest(o.created_at, o.send_at)) AS p99,
		   max(o.sent_at - greatest(o.created_at, o.send_at)) AS max
	FROM notify_outbox o
	WHERE o.sent_at >= now() - interval '1 hour'
	GROUP BY o.channel
	ORDER BY o.channel;
COMMENT ON VIEW notify_delivery_latency IS
	'Delivery latency of the notifications sent in the last hour, per channel: quantiles and maximum of sent_at minus the time it was due (created_at, or send_at when scheduled later), retries included.';

-- Work waiting, per channel.  A row the worker is sending is pending in
-- the table and its id is in the worker's in-flight registry
-- (notify_in_flight_ids, src/inflight.c): it counts as sending, not
-- pending; status 'sending' is left only by versions that wrote the claim
-- into the row.
CREATE VIEW notify_backlog AS
	SELECT c.name AS channel,
		   c.enabled,
		   greatest(coalesce(p.pending, 0) - coalesce(f.pending, 0), 0) AS pending,
		   greatest(coalesce(p.due, 0) - coalesce(f.due, 0), 0) AS due,
		   coalesce(s.sending, 0) + coalesce(f.pending, 0) AS sending,
		   p.oldest_due_at,
		   coalesce(now() - p.oldest_due_at, interval '0') AS oldest_due_age,
		   p.next_scheduled_at
	FROM notify_channels c
	-- index-only scans of notify_outbox_claim_idx (pending) and
	-- notify_outbox_lease_idx (sending), which carry the channel
	LEFT JOIN (SELECT o.channel, count(*) AS pending,
					  count(*) FILTER (WHERE o.next_attempt_at <= now()) AS due,
					  min(o.next_attempt_at) FILTER (WHERE o.next_attempt_at <= now()) AS oldest_due_at,
					  min(o.next_attempt_at) FILTER (WHERE o.next_attempt_at > now()) AS next_scheduled_at
			   FROM notify_outbox o
			   WHERE o.status = 'pending'
			   GROUP BY o.channel) p ON p.channel = c.name
	LEFT JOIN (SELECT o.channel, count(*) AS sending
			   FROM notify_outbox o
			   WHERE o.status = 'sending'
			   GROUP BY o.channel) s ON s.channel = c.name
	-- in flight: primary-key probes of the registry's ids
	LEFT JOIN (SELECT o.channel, count(*) AS pending,
					  count(*) FILTER (WHERE o.next_attempt_at <= now()) AS due
			   FROM notify_outbox o
			   WHERE o.id = ANY (notify_in_flight_ids()) AND o.status = 'pending'
			   GROUP BY o.channel) f ON f.channel = c.name
	ORDER BY c.name;
COMMENT ON VIEW notify_backlog IS
	'Work waiting per channel: pending rows, how many are due, how many are being sent, and how long the oldest due row has waited (0 when none). A paused channel (enabled false) keeps its rows pending.';

-- The error of a failed attempt with what varies per message (addresses)
-- taken out, so that failures group.
CREATE FUNCTION notify_error_group(error text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN left(CASE WHEN error IS NULL THEN '(no error text)'
					 WHEN strpos(error, '@') = 0 THEN error
					 ELSE regexp_replace(error, '<?[^<>"(),;[:space:]]+@[^<>"(),;[:space:]]+>?', '<address>', 'g') END,
				200);
COMMENT ON FUNCTION notify_error_group(text) IS
	'An attempt''s error with email addresses replaced by <address> and cut to 200 characters, so that failures of the same kind group together in notify_failures.';

-- The last day's failed attempts, per channel and kind of error.
CREATE VIEW notify_failures AS
	SELECT o.channel,
		   f.error_group AS error,
		   count(*) AS attempts,
		   count(*) FILTER (WHERE f.outcome = 'permanent') AS permanent,
		   count(*) FILTER (WHERE f.outcome = 'transient') AS transient,
		   count(DISTINCT f.outbox_id) AS messages,
		   count(DISTINCT f.outbox_id) FILTER (WHERE o.status = 'failed') AS failed_now,
		   min(f.finished_at) AS first_at,
		   max(f.finished_at) AS last_at,
		   max(f.outbox_id) AS last_outbox_id
	FROM (SELECT a.outbox_id, a.outcome, a.finished_at, notify_error_group(a.error) AS error_group
		  FROM notify_attempts a
		  WHERE a.outcome <> 'sent' AND a.finished_at >= now() - interval '24 hours') f
	LEFT JOIN notify_outbox o ON o.id = f.outbox_id
	GROUP BY o.channel, f.error_group
	ORDER BY attempts DESC, o.channel, f.error_group;
COMMENT ON VIEW notify_failures IS
	'Failed delivery attempts of the last 24 hours per channel and error (addresses masked): attempts (permanent, transient), distinct messages, how many of those are failed now, first and last time seen, and the latest outbox id for a closer look.';

-- ---- Prometheus ----
-- A label value in the text exposition format: backslash, double quote
-- and line feed escaped.
CREATE FUNCTION notify_prometheus_escape(value text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN replace(replace(replace(coalesce(value, ''), E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n');
COMMENT ON FUNCTION notify_prometheus_escape(text) IS
	'Escapes a Prometheus label value (backslash, double quote, line feed); NULL becomes the empty string.';

-- {name="value",...} from name, value pairs.
CREATE FUNCTION notify_prometheus_labels(VARIADIC pairs text[]) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN '{' || (SELECT string_agg(pairs[i] || '="' || notify_prometheus_escape(pairs[i + 1]) || '"', ',' ORDER BY i)
				   FROM generate_series(1, cardinality(pairs), 2) AS i) || '}';
COMMENT ON FUNCTION notify_prometheus_labels(text[]) IS
	'Prometheus label set {name="value",...} from alternating names and values, values escaped.';

-- One metric family: HELP and TYPE lines, then a line per sample (each
-- sample is labels and value: '{channel="email"} 3'); '' without samples.
CREATE FUNCTION notify_prometheus_family(name text, type text, help text, samples text[]) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN cardinality(samples) > 0 THEN
		'# HELP ' || name || ' ' || replace(replace(help, E'\\', E'\\\\'), E'\n', E'\\n') || E'\n'
		|| '# TYPE ' || name || ' ' || type || E'\n'
		|| (SELECT string_agg(name || s || E'\n', '' ORDER BY n) FROM unnest(samples) WITH ORDINALITY AS u(s, n))
	ELSE '' END;
COMMENT ON FUNCTION notify_prometheus_family(text, text, text, text[]) IS
	'One metric family in the Prometheus text format: # HELP and # TYPE lines and one line per sample (labels and value); the empty string when there are no samples.';

-- All metrics as Prometheus text; each view is read once.
CREATE FUNCTION notify_metrics_prometheus(outbox_totals boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	out text := '';
	w record;
	loaded boolean := true;
	up integer := 0;
	rows jsonb;
BEGIN
	-- the worker (shared memory)
	BEGIN
		-- worker 0 for the state; counters summed over notify.workers
		SELECT max(pid) FILTER (WHERE worker = 0) AS pid,
			   max(database) FILTER (WHERE worker = 0) AS database,
			   max(state) FILTER (WHERE worker = 0) AS state,
			   max(started_at) FILTER (WHERE worker = 0) AS started_at,
			   sum(batches) AS batches, sum(sent) AS sent, sum(failed) AS failed,
			   sum(retried) AS retried, sum(in_flight) AS in_flight
		INTO w
		FROM notify_worker_status();
		up := CASE WHEN w.pid IS NOT NULL AND w.database = current_database() THEN 1 ELSE 0 END;
	EXCEPTION WHEN object_not_in_prerequisite_state THEN
		loaded := false;
	END;
	out := out || notify_prometheus_family('notify_worker_up', 'gauge',
		'1 when the notify worker runs and serves this database, else 0.', ARRAY[' ' || up]);
	IF loaded THEN
		out := out
			|| notify_prometheus_family('notify_worker_info', 'gauge', 'The notify worker (worker 0 with notify.workers > 1): the database it serves and its state.',
				ARRAY[notify_prometheus_labels('database', w.database, 'state', w.state) || ' 1'])
			|| notify_prometheus_family('notify_worker_in_flight', 'gauge', 'Messages the workers are sending now.',
				ARRAY[' ' || w.in_flight])
			|| notify_prometheus_family('notify_worker_batches_total', 'counter', 'Batches claimed since the workers started (summed over notify.workers).',
				ARRAY[' ' || w.batches])
			|| notify_prometheus_family('notify_worker_sent_total', 'counter', 'Messages sent since the workers started (summed over notify.workers).',
				ARRAY[' ' || w.sent])
			|| notify_prometheus_family('notify_worker_failed_total', 'counter', 'Messages failed since the workers started (summed over notify.workers).',
				ARRAY[' ' || w.failed])
			|| notify_prometheus_family('notify_worker_retried_total', 'counter',
				'Transient failures scheduled for a retry since the workers started (summed over notify.workers).', ARRAY[' ' || w.retried])
			|| notify_prometheus_family('notify_worker_start_time_seconds', 'gauge',
				'When the worker started, in seconds since the Unix epoch.',
				ARRAY(SELECT ' ' || trim_scale(round(extract(epoch FROM w.started_at), 3)) WHERE w.started_at IS NOT NULL));
	END IF;

	-- What the outbox holds: counts every row, so it costs as much as the
	-- outbox is big; only on request.
	IF outbox_totals THEN
		out := out || notify_prometheus_family('notify_outbox_messages', 'gauge',
			'Rows the outbox holds, by channel and status.',
			ARRAY(SELECT notify_prometheus_labels('channel', q.channel, 'status', q.status) || ' ' || q.messages
				  FROM notify_queue q ORDER BY q.channel, q.status));
	END IF;

	-- Each view is read once; one family per column.
	SELECT coalesce(jsonb_agg(jsonb_build_object(
			   'l', notify_prometheus_labels('channel', b.channel),
			   'pending', b.pending, 'due', b.due, 'sending', b.sending, 'enabled', b.enabled::integer,
			   'oldest_due_age_seconds', trim_scale(round(extract(epoch FROM b.oldest_due_age), 3)))
			   ORDER BY b.channel), '[]')
	INTO rows FROM notify_backlog b;
	out := out || (
		SELECT string_agg(notify_prometheus_family('notify_backlog_' || m.col, 'gauge', m.help,
				   ARRAY(SELECT (r ->> 'l') || ' ' || (r ->> m.col) FROM jsonb_array_elements(rows) WITH ORDINALITY AS e(r, n) ORDER BY n)),
				   '' ORDER BY m.n)
		FROM (VALUES (1, 'pending', 'Pending messages per channel, due or scheduled.'),
					 (2, 'due', 'Pending messages per channel that are due now.'),
					 (3, 'sending', 'Messages per channel being sent now.'),
					 (4, 'oldest_due_age_seconds', 'How long the oldest due message of the channel has waited, in seconds; 0 when none is due.'),
					 (5, 'enabled', '1 when the channel delivers, 0 when it is paused.'))
			 AS m(n, col, help));

	SELECT coalesce(jsonb_agg(to_jsonb(s) || jsonb_build_object(
			   'l', notify_prometheus_labels('period', s.period, 'channel', s.channel, 'category', s.category))
			   ORDER BY s.period, s.channel, s.category), '[]')
	INTO rows FROM notify_stats s;
	out := out || (
		SELECT string_agg(notify_prometheus_family('notify_stats_' || m.col, 'gauge', m.help,
				   ARRAY(SELECT (r ->> 'l') || ' ' || (r ->> m.col) FROM jsonb_array_elements(rows) WITH ORDINALITY AS e(r, n) ORDER BY n)),
				   '' ORDER BY m.n)
		FROM (VALUES (1, 'created', 'Messages created in the period (1h or 24h), per channel and category.'),
					 (2, 'sent', 'Of the messages created in the period, how many are sent.'),
					 (3, 'failed', 'Of the messages created in the period, how many failed.'),
					 (4, 'skipped', 'Of the messages created in the period, how many were skipped.'),
					 (5, 'canceled', 'Of the messages created in the period, how many were canceled.'),
					 (6, 'expired', 'Of the messages created in the period, how many expired unsent.'),
					 (7, 'pending', 'Of the messages created in the period, how many are not finished (pending or sending).'),
					 (8, 'retries', 'Retry attempts (attempts beyond the first) of the messages created in the period.'))
			 AS m(n, col, help));

	out := out || notify_prometheus_family('notify_delivery_latency_seconds', 'gauge',
		'Delivery latency of the messages sent in the last hour per channel (sent_at minus the time the message was due): quantiles 0.5, 0.95, 0.99 and 1 (the maximum).',
		ARRAY(SELECT notify_prometheus_labels('channel', l.channel, 'quantile', q.quantile)
					 || ' ' || trim_scale(round(extract(epoch FROM q.latency), 6))
			  FROM notify_delivery_latency l
			  CROSS JOIN LATERAL (VALUES (1, '0.5', l.p50), (2, '0.95', l.p95), (3, '0.99', l.p99), (4, '1', l.max)) AS q(n, quantile, latency)
			  ORDER BY l.channel, q.n));

	-- per channel, so without notify_failures' error grouping
	out := out || (
		SELECT notify_prometheus_family('notify_failures_attempts', 'gauge',
				   'Failed delivery attempts in the last 24 hours per channel.',
				   array_agg(notify_prometheus_labels('channel', f.channel) || ' ' || f.attempts ORDER BY f.channel))
			|| notify_prometheus_family('notify_failures_permanent', 'gauge',
				   'Of the failed delivery attempts in the last 24 hours, how many failed permanently (no retry), per channel.',
				   array_agg(notify_prometheus_labels('channel', f.channel) || ' ' || f.permanent ORDER BY f.channel))
		FROM (SELECT coalesce(o.channel, '') AS channel, count(*) AS attempts,
					 count(*) FILTER (WHERE a.outcome = 'permanent') AS permanent
			  FROM notify_attempts a
			  LEFT JOIN notify_outbox o ON o.id = a.outbox_id
			  WHERE a.outcome <> 'sent' AND a.finished_at >= now() - interval '24 hours'
			  GROUP BY 1) f);
	RETURN out;
END;
$$;
COMMENT ON FUNCTION notify_metrics_prometheus(boolean) IS
	'All notify metrics in the Prometheus text exposition format: worker (up, in flight, counters), backlog, notify_stats, delivery latency quantiles, recent failures; with outbox_totals, also the rows the outbox holds by channel and status (a count of the whole outbox). SECURITY DEFINER: a monitoring role needs only EXECUTE on it. contrib/prometheus/queries.yaml exposes the same metrics through prometheus-postgres-exporter.';

-- ---- admin actions ----
-- Cancel pending notifications by dedup key pattern and/or recipient.
CREATE FUNCTION notify_cancel_matching(dedup_key_like text DEFAULT NULL, recipient text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_like text := nullif(dedup_key_like, '');
	v_recipient text := nullif(btrim(recipient), '');
	n bigint;
BEGIN
	IF coalesce(v_like, '') ~ '^[%_]*$' AND v_recipient IS NULL THEN
		RAISE EXCEPTION 'notify_cancel_matching needs dedup_key_like or recipient: must not cancel everything by accident'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = CASE WHEN v_like IS NULL THEN 'Both filters are NULL or empty.'
						  ELSE format('dedup_key_like %s is only wildcards.', notify_quote(v_like)) END,
			HINT = 'Cancel one notification with notify_cancel(id).';
	END IF;
	WITH c AS (
		UPDATE notify_outbox o SET status = 'canceled'
		WHERE o.status = 'pending'
		  AND NOT notify_in_flight(o.id)
		  AND (v_like IS NULL OR o.dedup_key LIKE v_like)
		  AND (v_recipient IS NULL OR lower(o.recipient) = lower(v_recipient))
		RETURNING o.id)
	SELECT count(*) INTO n FROM c
	CROSS JOIN LATERAL notify_audit('canceled', 'outbox:' || c.id,
		jsonb_build_object('via', 'notify_cancel_matching',
						   'filter', jsonb_strip_nulls(jsonb_build_object('dedup_key_like', v_like, 'recipient', v_recipient))));
	RETURN n;
END;
$$;
COMMENT ON FUNCTION notify_cancel_matching(text, text) IS
	'Cancels the pending notifications whose dedup_key is LIKE dedup_key_like and/or whose recipient equals recipient (case-insensitive); returns how many, and audits each (action canceled). Refuses (22023) to run without a filter, or with a pattern of only wildcards and no recipient.';

-- Requeue failed notifications by channel, time and/or error.
CREATE FUNCTION notify_requeue_failed(channel text DEFAULT NULL, since timestamptz DEFAULT NULL, error_like text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_like text := nullif(error_like, '');
	n bigint;
BEGIN
	IF channel IS NULL AND since IS NULL AND coalesce(v_like, '') ~ '^[%_]*$' THEN
		RAISE EXCEPTION 'notify_requeue_failed needs channel, since or error_like: must not requeue everything by accident'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = CASE WHEN v_like IS NULL THEN 'All filters are NULL or empty.'
						  ELSE format('error_like %s is only wildcards.', notify_quote(v_like)) END;
	END IF;
	IF channel IS NOT NULL AND NOT EXISTS (SELECT 1 FROM notify_channels c WHERE c.name = channel) THEN
		RAISE EXCEPTION 'unknown channel %', notify_quote(channel)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Channels are listed in notify_channels.';
	END IF;
	WITH r AS (
		UPDATE notify_outbox o
		SET status = 'pending',
			next_attempt_at = now(),
			max_attempts = o.attempts + coalesce((SELECT c.default_max_attempts FROM notify_categories c WHERE c.name = o.category), 5)
		WHERE o.status = 'failed'
		  AND (channel IS NULL OR o.channel = channel)
		  AND (v_like IS NULL OR o.last_error LIKE v_like)
		  AND (since IS NULL OR o.id IN (SELECT a.outbox_id FROM notify_attempts a
										 WHERE a.outcome <> 'sent' AND a.finished_at >= since))
		RETURNING o.id)
	SELECT count(*) INTO n FROM r
	CROSS JOIN LATERAL notify_audit('retried', 'outbox:' || r.id,
		jsonb_build_object('via', 'notify_requeue_failed',
						   'filter', jsonb_strip_nulls(jsonb_build_object('channel', channel, 'since', since, 'error_like', v_like))));
	RETURN n;
END;
$$;
COMMENT ON FUNCTION notify_requeue_failed(text, timestamptz, text) IS
	'Makes failed notifications pending again (due now, with a fresh budget of attempts), filtered by channel, by a failed attempt at or after since, and by last_error LIKE error_like; returns how many, and audits each (action retried). Refuses (22023) to run without a filter.';

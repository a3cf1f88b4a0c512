-- notify: the template registry.  Templates are data: every
-- (template_key, locale) has immutable, numbered versions; which one is
-- active is the latest row of an append-only activation log.  notify_enqueue
-- resolves key and locale to a version with notify_template_resolve() and
-- records it on the outbox row, so retries and audits render exactly the
-- wording chosen at enqueue.  Rendering (worker and preview) and the checks
-- that must be fast live in src/template.c; see docs/templates.md.

-- ---- C helpers ----
CREATE FUNCTION notify_locale_canonical(locale text) RETURNS text
	AS 'MODULE_PATHNAME', 'notify_locale_canonical'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION notify_locale_canonical(text) IS
	'Canonical case of a BCP 47 language tag (pt-br -> pt-BR, zh-hant-tw -> zh-Hant-TW); raises 22023 for a malformed tag.';

CREATE FUNCTION notify_template_validate(template text, part text DEFAULT 'template') RETURNS void
	AS 'MODULE_PATHNAME', 'notify_template_validate'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION notify_template_validate(text, text) IS
	'Raises an error naming part, line and column when template is not a valid Mustache template; does nothing for NULL.';

CREATE FUNCTION notify_template_schema_check(schema jsonb) RETURNS void
	AS 'MODULE_PATHNAME', 'notify_template_schema_check'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION notify_template_schema_check(jsonb) IS
	'Raises 22023 unless schema is in the JSON Schema subset notify validates payloads with (type object, required, properties with a type each); does nothing for NULL.';

CREATE FUNCTION notify_in_extension_script() RETURNS boolean
	AS 'MODULE_PATHNAME', 'notify_in_extension_script'
	LANGUAGE C STABLE;
COMMENT ON FUNCTION notify_in_extension_script() IS
	'True while CREATE EXTENSION notify or ALTER EXTENSION notify UPDATE runs its script: marks shipped template rows, which pg_dump leaves out.';

-- ---- versions ----
CREATE TABLE notify_templates (
	template_key text NOT NULL
				CONSTRAINT notify_templates_template_key_check
				CHECK (length(template_key) <= 128 AND template_key ~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$'),
	locale		text NOT NULL
				CONSTRAINT notify_templates_locale_check
				CHECK (length(locale) <= 35 AND locale = notify_locale_canonical(locale)),
	version		integer NOT NULL
				CONSTRAINT notify_templates_version_check CHECK (version >= 1),
	subject		text NOT NULL
				CONSTRAINT notify_templates_subject_check CHECK (subject !~ '[\r\n]'),
	text_body	text,
	html_body	text,
	category	text NOT NULL
				CONSTRAINT notify_templates_category_fkey REFERENCES notify_categories (name),
	schema		jsonb,
	created_at	timestamptz NOT NULL DEFAULT now(),
	created_by	text NOT NULL DEFAULT session_user,
	shipped		boolean NOT NULL DEFAULT false,
	CONSTRAINT notify_templates_pkey PRIMARY KEY (template_key, locale, version),
	CONSTRAINT notify_templates_body_check CHECK (text_body IS NOT NULL OR html_body IS NOT NULL)
);
COMMENT ON TABLE notify_templates IS
	'Template versions: one row per (template_key, locale, version), never changed once written; notify_template_put() adds the next version. Which version is active is in notify_template_activations.';
COMMENT ON COLUMN notify_templates.template_key IS 'What the template is for, as <domain>.<event> (ticket.replied), the key notify_enqueue is called with.';
COMMENT ON COLUMN notify_templates.locale IS 'BCP 47 language tag in canonical case (en, ja, pt-BR).';
COMMENT ON COLUMN notify_templates.version IS 'Version number within (template_key, locale), from 1; outbox rows record it.';
COMMENT ON COLUMN notify_templates.subject IS 'Mustache template of the Subject header; one line (line breaks rendered from variables become spaces).';
COMMENT ON COLUMN notify_templates.text_body IS 'Mustache template of the text/plain part, or NULL.';
COMMENT ON COLUMN notify_templates.html_body IS 'Mustache template of the text/html part, or NULL; {{x}} is HTML-escaped, {{{x}}} is not.';
COMMENT ON COLUMN notify_templates.category IS 'notify_categories name used when notify_enqueue is given no category.';
COMMENT ON COLUMN notify_templates.schema IS 'Payload schema, a JSON Schema subset (type object, required, properties with types), or NULL for no check; notify_enqueue rejects payloads that do not match.';
COMMENT ON COLUMN notify_templates.created_at IS 'When the version was put.';
COMMENT ON COLUMN notify_templates.created_by IS 'Session user who put the version.';
COMMENT ON COLUMN notify_templates.shipped IS 'True for versions installed by the extension script from templates/; pg_dump leaves them out because CREATE EXTENSION recreates them.';
COMMENT ON INDEX notify_templates_pkey IS 'One row per version; serves the worker''s and the resolver''s lookups.';

-- ---- activations ----
CREATE TABLE notify_template_activations (
	id			bigint GENERATED ALWAYS AS IDENTITY
				CONSTRAINT notify_template_activations_pkey PRIMARY KEY,
	template_key text NOT NULL,
	locale		text NOT NULL,
	version		integer NOT NULL,
	activated_at timestamptz NOT NULL DEFAULT now(),
	activated_by text NOT NULL DEFAULT session_user,
	shipped		boolean NOT NULL DEFAULT false,
	CONSTRAINT notify_template_activations_version_fkey FOREIGN KEY (template_key, locale, version)
		REFERENCES notify_templates (template_key, locale, version) ON DELETE CASCADE
);
COMMENT ON TABLE notify_template_activations IS
	'Append-only activation log: the active version of a (template_key, locale) is that of its latest row. notify_template_activate() appends; rolling back is activating an older version.';
COMMENT ON SEQUENCE notify_template_activations_id_seq IS 'Generates notify_template_activations.id, which orders activations.';
COMMENT ON COLUMN notify_template_activations.id IS 'Identity; the highest id of a (template_key, locale) is the active version.';
COMMENT ON COLUMN notify_template_activations.template_key IS 'Template key activated.';
COMMENT ON COLUMN notify_template_activations.locale IS 'Locale activated.';
COMMENT ON COLUMN notify_template_activations.version IS 'Version made active.';
COMMENT ON COLUMN notify_template_activations.activated_at IS 'When it was activated.';
COMMENT ON COLUMN notify_template_activations.activated_by IS 'Session user who activated it.';
COMMENT ON COLUMN notify_template_activations.shipped IS 'True for activations made by the extension script; pg_dump leaves them out.';
COMMENT ON INDEX notify_template_activations_pkey IS 'Orders activations.';
CREATE INDEX notify_template_activations_lookup_idx
	ON notify_template_activations (template_key, locale, id DESC);
COMMENT ON INDEX notify_template_activations_lookup_idx IS
	'Finds the latest activation of a (template_key, locale): the resolver''s lookup.';

CREATE VIEW notify_template_active AS
	SELECT DISTINCT ON (a.template_key, a.locale)
		   a.template_key, a.locale, a.version, t.category,
		   a.activated_at, a.activated_by
	FROM notify_template_activations a
	JOIN notify_templates t USING (template_key, locale, version)
	ORDER BY a.template_key, a.locale, a.id DESC;
COMMENT ON VIEW notify_template_active IS
	'The active version of every (template_key, locale): what notify_enqueue sends.';

-- pg_dump keeps what users added; the extension script recreates the rest.
SELECT pg_catalog.pg_extension_config_dump('notify_templates', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('notify_template_activations', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('notify_template_activations_id_seq', '');

-- ---- immutability ----
CREATE FUNCTION notify_templates_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		IF NEW IS DISTINCT FROM OLD THEN
			RAISE EXCEPTION 'template versions are immutable'
				USING ERRCODE = 'restrict_violation',
				DETAIL = format('Template %s (%s) version %s cannot be changed.',
								notify_quote(OLD.template_key), OLD.locale, OLD.version),
				HINT = 'Put a new version with notify_template_put() and activate it.';
		END IF;
		RETURN NEW;
	END IF;

	-- DELETE
	IF (SELECT a.version FROM notify_template_activations a
		WHERE a.template_key = OLD.template_key AND a.locale = OLD.locale
		ORDER BY a.id DESC LIMIT 1) = OLD.version THEN
		RAISE EXCEPTION 'template % (%) version % is active and cannot be deleted',
			notify_quote(OLD.template_key), OLD.locale, OLD.version
			USING ERRCODE = 'restrict_violation',
			HINT = 'Activate another version first.';
	END IF;
	IF EXISTS (SELECT FROM notify_outbox o
			   WHERE o.template_key = OLD.template_key AND o.locale = OLD.locale
				 AND o.template_version = OLD.version) THEN
		RAISE EXCEPTION 'template % (%) version % is referenced by notify_outbox rows and cannot be deleted',
			notify_quote(OLD.template_key), OLD.locale, OLD.version
			USING ERRCODE = 'restrict_violation',
			DETAIL = 'Outbox rows keep the version they were enqueued with, so that retries and audits render the same wording.';
	END IF;
	RETURN OLD;
END;
$$;
COMMENT ON FUNCTION notify_templates_check() IS
	'Trigger of notify_templates: refuses updates, and refuses deleting the active version or one that outbox rows reference.';
CREATE TRIGGER notify_templates_check BEFORE UPDATE OR DELETE ON notify_templates
	FOR EACH ROW EXECUTE FUNCTION notify_templates_check();
COMMENT ON TRIGGER notify_templates_check ON notify_templates IS
	'Versions are immutable.';

CREATE FUNCTION notify_templates_truncate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	IF EXISTS (SELECT FROM notify_outbox o WHERE o.template_version IS NOT NULL) THEN
		RAISE EXCEPTION 'notify_templates cannot be truncated while notify_outbox rows reference template versions'
			USING ERRCODE = 'restrict_violation';
	END IF;
	RETURN NULL;
END;
$$;
COMMENT ON FUNCTION notify_templates_truncate() IS
	'Trigger of notify_templates: refuses TRUNCATE while outbox rows reference versions.';
CREATE TRIGGER notify_templates_truncate BEFORE TRUNCATE ON notify_templates
	FOR EACH STATEMENT EXECUTE FUNCTION notify_templates_truncate();
COMMENT ON TRIGGER notify_templates_truncate ON notify_templates IS
	'Outbox rows must keep their versions.';

-- ---- per-process caches (src/template.c) ----
CREATE FUNCTION notify_templates_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'notify_templates_changed'
	LANGUAGE C;
COMMENT ON FUNCTION notify_templates_changed() IS
	'Statement trigger: at commit, tells every backend and the worker to drop their cached template resolutions and compiled templates (a deleted version number can be put again).';
CREATE TRIGGER notify_templates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify_templates
	FOR EACH STATEMENT EXECUTE FUNCTION notify_templates_changed();
COMMENT ON TRIGGER notify_templates_changed ON notify_templates IS
	'Invalidates the per-process template caches.';
CREATE TRIGGER notify_template_activations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify_template_activations
	FOR EACH STATEMENT EXECUTE FUNCTION notify_templates_changed();
COMMENT ON TRIGGER notify_template_activations_changed ON notify_template_activations IS
	'Invalidates the per-process caches of which version is active.';

-- ---- admin functions ----
CREATE FUNCTION notify_template_put(
	template_key text,
	locale text,
	subject text,
	text_body text,
	html_body text DEFAULT NULL,
	category text DEFAULT 'transactional',
	schema jsonb DEFAULT NULL,
	activate boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_locale text;
	v_version integer;
BEGIN
	IF template_key IS NULL THEN
		RAISE EXCEPTION 'template_key must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF locale IS NULL THEN
		RAISE EXCEPTION 'locale must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF subject IS NULL THEN
		RAISE EXCEPTION 'subject must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF text_body IS NULL AND html_body IS NULL THEN
		RAISE EXCEPTION 'text_body and html_body must not both be null' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'A template needs a text body, an HTML body, or both.';
	END IF;
	IF category IS NULL THEN
		RAISE EXCEPTION 'category must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF activate IS NULL THEN
		RAISE EXCEPTION 'activate must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;

	IF length(template_key) > 128 OR template_key !~ '^[a-z0-9_]+(\.[a-z0-9_]+)+$' THEN
		RAISE EXCEPTION 'invalid template_key %', notify_quote(template_key)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A template key is <domain>.<event>: lowercase letters, digits and "_", separated by dots, at most 128 characters.';
	END IF;
	v_locale := notify_locale_canonical(locale);
	IF length(v_locale) > 35 THEN
		RAISE EXCEPTION 'invalid locale %', notify_quote(locale)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A template locale is at most 35 characters long.';
	END IF;
	IF subject ~ '[\r\n]' THEN
		RAISE EXCEPTION 'subject must not contain CR or LF'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'The subject template is one header line.';
	END IF;
	IF NOT EXISTS (SELECT FROM notify_categories c WHERE c.name = category) THEN
		RAISE EXCEPTION 'unknown category %', notify_quote(category)
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Categories are listed in notify_categories.';
	END IF;

	-- every part parses, the schema is supported.  (Checked here rather than
	-- in a trigger, so that restoring a dump never depends on the engine's
	-- version; the worker fails a message whose template does not parse.)
	PERFORM notify_template_validate(subject, 'subject');
	PERFORM notify_template_validate(text_body, 'text_body');
	PERFORM notify_template_validate(html_body, 'html_body');
	PERFORM notify_template_schema_check(schema);

	-- one writer per (key, locale) at a time, so version numbers do not collide
	PERFORM pg_advisory_xact_lock(hashtextextended('notify_templates ' || template_key || ' ' || v_locale, 0));
	SELECT coalesce(max(t.version), 0) + 1 INTO v_version
	FROM notify_templates t
	WHERE t.template_key = template_key AND t.locale = v_locale;

	INSERT INTO notify_templates
		(template_key, locale, version, subject, text_body, html_body, category, schema, shipped)
	VALUES
		(template_key, v_locale, v_version, subject, text_body, html_body, category, schema,
		 notify_in_extension_script());

	IF activate THEN
		PERFORM notify_template_activate(template_key, v_locale, v_version);
	END IF;
	RETURN v_version;
END;
$$;
COMMENT ON FUNCTION notify_template_put(text, text, text, text, text, text, jsonb, boolean) IS
	'Adds the next version of a template (key, locale) after checking that every part parses and the schema is supported, activates it unless activate is false (a draft), and returns its version number. Never changes an existing version.';

CREATE FUNCTION notify_template_activate(template_key text, locale text, version integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_locale text;
BEGIN
	IF template_key IS NULL THEN
		RAISE EXCEPTION 'template_key must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF locale IS NULL THEN
		RAISE EXCEPTION 'locale must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF version IS NULL THEN
		RAISE EXCEPTION 'version must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	v_locale := notify_locale_canonical(locale);

	PERFORM pg_advisory_xact_lock(hashtextextended('notify_templates ' || template_key || ' ' || v_locale, 0));
	IF NOT EXISTS (SELECT FROM notify_templates t
				   WHERE t.template_key = template_key AND t.locale = v_locale AND t.version = version) THEN
		IF NOT EXISTS (SELECT FROM notify_templates t WHERE t.template_key = template_key) THEN
			RAISE EXCEPTION 'unknown template %', notify_quote(template_key)
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Templates are listed in notify_templates; add one with notify_template_put().';
		END IF;
		RAISE EXCEPTION 'template % has no version % in locale %', notify_quote(template_key), version, notify_quote(v_locale)
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Versions are listed in notify_templates.';
	END IF;

	-- activating the active version again changes nothing
	IF (SELECT a.version FROM notify_template_activations a
		WHERE a.template_key = template_key AND a.locale = v_locale
		ORDER BY a.id DESC LIMIT 1) IS NOT DISTINCT FROM version THEN
		RETURN;
	END IF;
	INSERT INTO notify_template_activations (template_key, locale, version, shipped)
	VALUES (template_key, v_locale, version, notify_in_extension_script());
END;
$$;
COMMENT ON FUNCTION notify_template_activate(text, text, integer) IS
	'Makes a version the active one of its (template_key, locale), from the next enqueue on; activating an older version rolls back.';

CREATE FUNCTION notify_template_resolve(
	template_key text,
	locale text,
	payload jsonb,
	version integer DEFAULT NULL,
	OUT template_version integer,
	OUT locale text,
	OUT category text)
RETURNS record
AS 'MODULE_PATHNAME', 'notify_template_resolve'
LANGUAGE C STABLE;
COMMENT ON FUNCTION notify_template_resolve(text, text, jsonb, integer) IS
	'The enqueue-time check: resolves the locale (requested tag, then shorter prefixes such as pt-BR -> pt, then notify.default_locale) to the active version, or to the given version for a draft, and checks payload against that version''s schema. Errors (22023) name an unknown key, a locale without a template, and every missing or mistyped variable.';

CREATE FUNCTION notify_template_render(
	template_key text,
	locale text,
	version integer,
	payload jsonb,
	OUT subject text,
	OUT text_body text,
	OUT html_body text)
RETURNS record
AS 'MODULE_PATHNAME', 'notify_template_render_sql'
LANGUAGE C STABLE;
COMMENT ON FUNCTION notify_template_render(text, text, integer, jsonb) IS
	'Renders one template version for payload with the worker''s code and compiled-template cache: subject, text and HTML bodies (NULL for a missing body).';

CREATE FUNCTION notify_preview(
	template_key text,
	payload jsonb,
	locale text DEFAULT NULL,
	version integer DEFAULT NULL)
RETURNS TABLE (subject text, text_body text, html_body text, template_version integer, locale text)
LANGUAGE sql
STABLE
SET search_path = @extschema@, pg_temp
AS $$
	SELECT r.subject, r.text_body, r.html_body, v.template_version, v.locale
	FROM notify_template_resolve(notify_preview.template_key, notify_preview.locale,
								 notify_preview.payload, notify_preview.version) AS v
	CROSS JOIN LATERAL notify_template_render(notify_preview.template_key, v.locale,
											  v.template_version, notify_preview.payload) AS r
$$;
COMMENT ON FUNCTION notify_preview(text, jsonb, text, integer) IS
	'Shows what notify_enqueue with these arguments would send: the same locale resolution and payload check, and the worker''s rendering. With a version, previews that version (a draft) instead of the active one.';

-- notify: who may receive what.  Category opt-in rules, recipients'
-- preferences, the suppression list, one-click unsubscribe tokens
-- (RFC 8058), provider bounce/complaint events, and notify_decide(), the
-- send-or-skip decision that enqueue and the worker ask.
--
-- Every change to a preference or a suppression writes a notify_audit_log
-- row in the same transaction.  See docs/preferences.md.

-- ---- categories: opt-in rules ----
ALTER TABLE notify_categories
	ADD COLUMN default_opt_in boolean NOT NULL DEFAULT true,
	ADD COLUMN unsubscribe_header boolean NOT NULL DEFAULT false,
	ADD CONSTRAINT notify_categories_mandatory_check
		CHECK (NOT mandatory OR (default_opt_in AND NOT unsubscribe_header));
COMMENT ON COLUMN notify_categories.default_opt_in IS
	'True: recipients get these messages until they opt out. False: only recipients who opted in (marketing), for email channels.';
COMMENT ON COLUMN notify_categories.unsubscribe_header IS
	'True: email in this category carries List-Unsubscribe and List-Unsubscribe-Post (RFC 2369, RFC 8058) with a one-click token.';
COMMENT ON CONSTRAINT notify_categories_mandatory_check ON notify_categories IS
	'A mandatory category is opted in by default and offers no unsubscribe header: nobody can opt out of it.';

UPDATE notify_categories SET default_opt_in = false, unsubscribe_header = true WHERE name = 'marketing';
UPDATE notify_categories SET unsubscribe_header = true WHERE name = 'product';

-- ---- helpers ----
CREATE FUNCTION notify_normalize_address(address text) RETURNS text
	AS 'MODULE_PATHNAME', 'notify_normalize_address'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION notify_normalize_address(text) IS
	'The key preferences and suppressions are stored under: an email address with its domain (after the last "@") lower-cased in ASCII, the local part untouched; URLs and other recipients unchanged.';

-- Raise unless value is a recipient preferences and suppressions can be
-- stored for: 1 to 2048 characters, no control characters.
CREATE FUNCTION notify_check_recipient(value text, argument text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	IF value IS NULL THEN
		RAISE EXCEPTION '% must not be null', argument USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF length(value) NOT BETWEEN 1 AND 2048 OR value ~ '[[:cntrl:]]' THEN
		RAISE EXCEPTION 'invalid % %', argument, notify_quote(value)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A recipient is 1 to 2048 characters without control characters.';
	END IF;
END;
$$;
COMMENT ON FUNCTION notify_check_recipient(text, text) IS
	'Raises 22004/22023 unless value is 1 to 2048 characters without control characters; argument names it in the message.';

-- Raise unless value is NULL (all tenants) or a tenant name.
CREATE FUNCTION notify_check_tenant(value text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	IF value IS NOT NULL AND (length(value) NOT BETWEEN 1 AND 256 OR value ~ '[[:cntrl:]]') THEN
		RAISE EXCEPTION 'invalid tenant %', notify_quote(value)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A tenant is 1 to 256 characters without control characters; NULL means all tenants.';
	END IF;
END;
$$;
COMMENT ON FUNCTION notify_check_tenant(text) IS
	'Raises 22023 unless value is NULL (all tenants) or 1 to 256 characters without control characters.';

CREATE FUNCTION notify_category_put(
	name text,
	description text DEFAULT NULL,
	mandatory boolean DEFAULT NULL,
	default_opt_in boolean DEFAULT NULL,
	unsubscribe_header boolean DEFAULT NULL,
	default_priority integer DEFAULT NULL,
	default_max_attempts integer DEFAULT NULL,
	actor text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v notify_categories;
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[a-z0-9_]{1,63}$' THEN
		RAISE EXCEPTION 'invalid category name %', notify_quote(name)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A category name is 1 to 63 lowercase letters, digits or "_".';
	END IF;
	SELECT * INTO v FROM notify_categories c WHERE c.name = name FOR UPDATE;
	IF NOT FOUND THEN
		v.name := name;
		v.description := '';
		v.mandatory := false;
		v.default_priority := 0;
		v.default_max_attempts := 5;
		v.default_opt_in := true;
		v.unsubscribe_header := false;
	END IF;
	v.description := coalesce(description, v.description);
	v.mandatory := coalesce(mandatory, v.mandatory);
	v.default_opt_in := coalesce(default_opt_in, v.default_opt_in);
	v.unsubscribe_header := coalesce(unsubscribe_header, v.unsubscribe_header);
	v.default_priority := coalesce(default_priority, v.default_priority);
	v.default_max_attempts := coalesce(default_max_attempts, v.default_max_attempts);
	IF v.mandatory AND (NOT v.default_opt_in OR v.unsubscribe_header) THEN
		RAISE EXCEPTION 'mandatory category % cannot be opt-in only or carry an unsubscribe header', notify_quote(name)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'Nobody can opt out of a mandatory category, so it is always opted in and offers no unsubscribe link.';
	END IF;
	IF v.default_max_attempts NOT BETWEEN 1 AND 100 THEN
		RAISE EXCEPTION 'default_max_attempts must be 1 to 100, not %', v.default_max_attempts
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO notify_categories AS c
		(name, description, mandatory, default_priority, default_max_attempts, default_opt_in, unsubscribe_header)
	VALUES (v.name, v.description, v.mandatory, v.default_priority, v.default_max_attempts, v.default_opt_in, v.unsubscribe_header)
	ON CONFLICT ON CONSTRAINT notify_categories_pkey DO UPDATE
	SET description = EXCLUDED.description, mandatory = EXCLUDED.mandatory,
		default_priority = EXCLUDED.default_priority, default_max_attempts = EXCLUDED.default_max_attempts,
		default_opt_in = EXCLUDED.default_opt_in, unsubscribe_header = EXCLUDED.unsubscribe_header;
	PERFORM notify_audit('category_changed', 'category:' || name, to_jsonb(v), actor);
END;
$$;
COMMENT ON FUNCTION notify_category_put(text, text, boolean, boolean, boolean, integer, integer, text) IS
	'Creates or changes a category; NULL arguments keep the current value (or the default for a new category). Audited as category_changed.';

-- ---- preferences ----
CREATE TABLE notify_preferences (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	recipient	text NOT NULL
				CONSTRAINT notify_preferences_recipient_check CHECK (recipient = notify_normalize_address(recipient)),
	tenant		text
				CONSTRAINT notify_preferences_tenant_check CHECK (tenant <> ''),
	category	text NOT NULL
				CONSTRAINT notify_preferences_category_fkey REFERENCES notify_categories (name)
				ON UPDATE CASCADE ON DELETE CASCADE,
	channel		text
				CONSTRAINT notify_preferences_channel_check CHECK (channel <> ''),
	opted_in	boolean NOT NULL,
	source		text NOT NULL
				CONSTRAINT notify_preferences_source_check CHECK (source IN ('user', 'admin', 'one_click', 'import')),
	changed_at	timestamptz NOT NULL DEFAULT now(),
	changed_by	name NOT NULL DEFAULT session_user,
	actor		text
);
COMMENT ON TABLE notify_preferences IS
	'Recipients'' explicit choices: opted in or out of a category, for one tenant or all (tenant NULL), on one channel or all (channel NULL). The most specific row wins; see notify_decide.';
COMMENT ON SEQUENCE notify_preferences_id_seq IS 'Generates notify_preferences.id.';
COMMENT ON COLUMN notify_preferences.id IS 'Identity (replica identity for logical replication).';
COMMENT ON COLUMN notify_preferences.recipient IS 'Recipient as notify_normalize_address() gives it (email domain lower-cased).';
COMMENT ON COLUMN notify_preferences.tenant IS 'Tenant the choice applies to; NULL: every tenant.';
COMMENT ON COLUMN notify_preferences.category IS 'The notify_categories name.';
COMMENT ON COLUMN notify_preferences.channel IS 'Channel (notify_channels name) the choice applies to; NULL: every channel.';
COMMENT ON COLUMN notify_preferences.opted_in IS 'True: opted in; false: opted out.';
COMMENT ON COLUMN notify_preferences.source IS 'Where the choice came from: user (preference centre), admin, one_click (RFC 8058 unsubscribe), import.';
COMMENT ON COLUMN notify_preferences.changed_at IS 'When the choice was last changed.';
COMMENT ON COLUMN notify_preferences.changed_by IS 'Database role (session_user) that changed it.';
COMMENT ON COLUMN notify_preferences.actor IS 'Application actor that changed it (argument or notify.actor).';
-- Unique per (recipient, category, tenant or all, channel or all): the two
-- "IS NULL" columns follow from the coalesce() ones (the CHECKs forbid '')
-- and put the most specific row first, so notify_decide's
-- ORDER BY ... LIMIT 1 reads it straight from the index, without a sort.
CREATE UNIQUE INDEX notify_preferences_scope_idx
	ON notify_preferences (recipient, category, (tenant IS NULL), (channel IS NULL), coalesce(tenant, ''), coalesce(channel, ''));
COMMENT ON INDEX notify_preferences_scope_idx IS
	'One choice per recipient, category, tenant (or all) and channel (or all), most specific first; serves notify_decide and notify_get_preferences.';
-- Whether a category has any preference row at all: backends remember it
-- per category (src/unsubscribe.c) and skip the per-recipient lookup for
-- categories nobody has a choice recorded in; the statement trigger below
-- makes them look again after any change.
CREATE INDEX notify_preferences_category_idx ON notify_preferences (category);
COMMENT ON INDEX notify_preferences_category_idx IS
	'Whether a category has any preference: lets notify_enqueue skip the preference lookup for categories without any.';
CREATE TRIGGER notify_preferences_lookup_invalidate
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify_preferences
	FOR EACH STATEMENT EXECUTE FUNCTION notify_lookup_invalidate();
COMMENT ON TRIGGER notify_preferences_lookup_invalidate ON notify_preferences IS
	'Makes every backend check again which categories have preferences after a change.';
SELECT pg_catalog.pg_extension_config_dump('notify_preferences', '');
SELECT pg_catalog.pg_extension_config_dump('notify_preferences_id_seq', '');

-- Stores one preference and audits it; the caller has checked the arguments.
-- True when something changed.
CREATE FUNCTION notify_preference_write(p_address text, p_category text, p_opted_in boolean, p_channel text,
										p_tenant text, p_source text, p_actor text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	v_inserted boolean;
BEGIN
	INSERT INTO notify_preferences AS p (recipient, tenant, category, channel, opted_in, source, actor)
	VALUES (p_address, p_tenant, p_category, p_channel, p_opted_in, p_source,
			coalesce(p_actor, nullif(current_setting('notify.actor'), '')))
	ON CONFLICT (recipient, category, (tenant IS NULL), (channel IS NULL), coalesce(tenant, ''), coalesce(channel, ''))
	DO UPDATE
	SET opted_in = EXCLUDED.opted_in, source = EXCLUDED.source, changed_at = EXCLUDED.changed_at,
		changed_by = EXCLUDED.changed_by, actor = EXCLUDED.actor
	WHERE p.opted_in IS DISTINCT FROM EXCLUDED.opted_in
	RETURNING (p.xmax = 0) INTO v_inserted;
	IF NOT FOUND THEN
		RETURN false;	-- already so: nothing written
	END IF;
	PERFORM notify_audit('preference_changed', 'recipient:' || p_address,
		jsonb_build_object('category', p_category, 'channel', p_channel, 'tenant', p_tenant,
						   'opted_in', p_opted_in, 'previous', CASE WHEN NOT v_inserted THEN NOT p_opted_in END,
						   'source', p_source),
		p_actor);
	RETURN true;
END;
$$;
COMMENT ON FUNCTION notify_preference_write(text, text, boolean, text, text, text, text) IS
	'Internal: upserts one normalized, checked preference and writes its audit row; false when it was already so.';

CREATE FUNCTION notify_set_preference(
	recipient text,
	category text,
	opted_in boolean,
	channel text DEFAULT NULL,
	tenant text DEFAULT NULL,
	source text DEFAULT 'user',
	actor text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_mandatory boolean;
BEGIN
	PERFORM notify_check_recipient(recipient, 'recipient');
	IF category IS NULL THEN
		RAISE EXCEPTION 'category must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF opted_in IS NULL THEN
		RAISE EXCEPTION 'opted_in must not be null' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'true opts in, false opts out.';
	END IF;
	IF source IS NULL THEN
		RAISE EXCEPTION 'source must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF source NOT IN ('user', 'admin', 'one_click', 'import') THEN
		RAISE EXCEPTION 'invalid preference source %', notify_quote(source)
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Sources are user, admin, one_click and import.';
	END IF;
	SELECT c.mandatory INTO v_mandatory FROM notify_categories c WHERE c.name = category;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown category %', notify_quote(category)
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Categories are listed in notify_categories.';
	END IF;
	IF v_mandatory AND NOT opted_in THEN
		RAISE EXCEPTION 'category % is mandatory: it cannot be opted out of', notify_quote(category)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'Messages in mandatory categories (account security, billing) are sent whatever the preferences.';
	END IF;
	IF channel IS NOT NULL AND NOT EXISTS (SELECT 1 FROM notify_channels ch WHERE ch.name = channel) THEN
		RAISE EXCEPTION 'unknown channel %', notify_quote(channel)
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Channels are listed in notify_channels; NULL means every channel.';
	END IF;
	PERFORM notify_check_tenant(tenant);
	RETURN notify_preference_write(notify_normalize_address(recipient), category, opted_in,
								   channel, tenant, source, actor);
END;
$$;
COMMENT ON FUNCTION notify_set_preference(text, text, boolean, text, text, text, text) IS
	'Records that recipient opts in (true) or out (false) of category, on channel (NULL: all) for tenant (NULL: all). True when it changed something; every change is audited as preference_changed.';

CREATE FUNCTION notify_get_preferences(recipient text, tenant text DEFAULT NULL)
RETURNS TABLE (category text, channel text, opted_in boolean, mandatory boolean,
			   source text, scope_tenant text, changed_at timestamptz)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_addr text;
BEGIN
	PERFORM notify_check_recipient(recipient, 'recipient');
	PERFORM notify_check_tenant(tenant);
	v_addr := notify_normalize_address(recipient);
	RETURN QUERY
	WITH scopes AS (
		SELECT c.name AS category, NULL::text AS channel FROM notify_categories c
		UNION
		SELECT p.category, p.channel FROM notify_preferences p
		WHERE p.recipient = v_addr AND p.channel IS NOT NULL AND (p.tenant IS NULL OR p.tenant = tenant)
	)
	SELECT s.category, s.channel,
		   CASE WHEN c.mandatory THEN true ELSE coalesce(w.opted_in, c.default_opt_in) END,
		   c.mandatory,
		   CASE WHEN c.mandatory THEN 'mandatory' ELSE coalesce(w.source, 'default') END,
		   CASE WHEN NOT c.mandatory THEN w.tenant END,
		   CASE WHEN NOT c.mandatory THEN w.changed_at END
	FROM scopes s
	JOIN notify_categories c ON c.name = s.category
	LEFT JOIN LATERAL (
		SELECT p.opted_in, p.source, p.tenant, p.changed_at
		FROM notify_preferences p
		WHERE p.recipient = v_addr AND p.category = s.category
		  AND (p.tenant IS NULL OR p.tenant = tenant)
		  AND (p.channel IS NULL OR p.channel = s.channel)
		ORDER BY p.tenant IS NULL, p.channel IS NULL
		LIMIT 1) w ON true
	ORDER BY s.category, s.channel NULLS FIRST;
END;
$$;
COMMENT ON FUNCTION notify_get_preferences(text, text) IS
	'Effective email preferences of recipient as seen from tenant (NULL: no tenant): one row per category for all channels, plus one per channel that has a choice of its own. source is default, mandatory, or the deciding row''s source.';

-- ---- suppression list ----
CREATE TABLE notify_suppressions (
	address		text PRIMARY KEY
				CONSTRAINT notify_suppressions_address_check CHECK (address = notify_normalize_address(address)),
	reason		text NOT NULL
				CONSTRAINT notify_suppressions_reason_check CHECK (reason IN ('hard_bounce', 'complaint', 'manual', 'invalid')),
	source		text NOT NULL
				CONSTRAINT notify_suppressions_source_check CHECK (source ~ '^[a-z0-9_.:-]{1,64}$'),
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz,
	detail		text
);
COMMENT ON TABLE notify_suppressions IS
	'Addresses nothing is sent to, whatever the category (hard bounces, spam complaints, manual blocks), until expires_at if set.';
COMMENT ON COLUMN notify_suppressions.address IS 'Recipient as notify_normalize_address() gives it (email domain lower-cased).';
COMMENT ON COLUMN notify_suppressions.reason IS 'hard_bounce, complaint, manual or invalid.';
COMMENT ON COLUMN notify_suppressions.source IS 'Who said so: admin, smtp (a permanent 5.1.x failure), a provider name (postmark, sendgrid), import, ...';
COMMENT ON COLUMN notify_suppressions.created_at IS 'When the suppression was recorded (or last renewed).';
COMMENT ON COLUMN notify_suppressions.expires_at IS 'When it stops applying; NULL: never.';
COMMENT ON COLUMN notify_suppressions.detail IS 'Server reply or provider description, at most 1000 characters.';
SELECT pg_catalog.pg_extension_config_dump('notify_suppressions', '');
-- The hashed entries notify_forget_recipient leaves (sha256:<hex>).  Every
-- enqueue must check an address's hash too, but there are usually none:
-- backends remember whether this index is empty (src/unsubscribe.c) and
-- skip the hash while it is, and the statement trigger below tells them
-- to look again after any change.
CREATE INDEX notify_suppressions_hashed_idx ON notify_suppressions (address)
	WHERE address LIKE 'sha256:%';
COMMENT ON INDEX notify_suppressions_hashed_idx IS
	'Suppressions kept as an address hash (after notify_forget_recipient): lets notify_enqueue skip the hash lookup while there are none.';
-- What notify_enqueue probes for every recipient: a hash index finds an
-- address with one bucket page where the primary key's btree descends
-- three levels comparing text (src/unsubscribe.c).
CREATE INDEX notify_suppressions_address_hash_idx ON notify_suppressions USING hash (address);
COMMENT ON INDEX notify_suppressions_address_hash_idx IS
	'The enqueue''s suppression probe by exact address (cheaper than the primary key''s btree).';
CREATE TRIGGER notify_suppressions_lookup_invalidate
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify_suppressions
	FOR EACH STATEMENT EXECUTE FUNCTION notify_lookup_invalidate();
COMMENT ON TRIGGER notify_suppressions_lookup_invalidate ON notify_suppressions IS
	'Makes every backend check again whether hashed suppressions exist after a change.';

CREATE FUNCTION notify_suppress(
	address text,
	reason text,
	source text DEFAULT 'admin',
	expires_at timestamptz DEFAULT NULL,
	detail text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_addr text;
	v_was_active boolean;
BEGIN
	PERFORM notify_check_recipient(address, 'address');
	IF reason IS NULL THEN
		RAISE EXCEPTION 'reason must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF reason NOT IN ('hard_bounce', 'complaint', 'manual', 'invalid') THEN
		RAISE EXCEPTION 'invalid suppression reason %', notify_quote(reason)
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Reasons are hard_bounce, complaint, manual and invalid.';
	END IF;
	IF source IS NULL THEN
		RAISE EXCEPTION 'source must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF source !~ '^[a-z0-9_.:-]{1,64}$' THEN
		RAISE EXCEPTION 'invalid suppression source %', notify_quote(source)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A source is 1 to 64 lowercase letters, digits or "_.:-" (admin, smtp, postmark, ...).';
	END IF;
	IF expires_at IS NOT NULL AND expires_at <= now() THEN
		RAISE EXCEPTION 'expires_at must be in the future'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('It is %s.', expires_at),
			HINT = 'Pass NULL for a suppression that does not expire.';
	END IF;
	v_addr := notify_normalize_address(address);

	-- A renewal never shortens a suppression still in force: the later
	-- expiry (NULL, never, being the latest) is kept.
	SELECT s.expires_at IS NULL OR s.expires_at > now() INTO v_was_active
	FROM notify_suppressions s WHERE s.address = v_addr FOR UPDATE;
	INSERT INTO notify_suppressions AS s (address, reason, source, expires_at, detail)
	VALUES (v_addr, reason, source, expires_at, left(detail, 1000))
	ON CONFLICT ON CONSTRAINT notify_suppressions_pkey DO UPDATE
	SET reason = EXCLUDED.reason, source = EXCLUDED.source, created_at = EXCLUDED.created_at,
		detail = EXCLUDED.detail,
		expires_at = CASE WHEN s.expires_at IS NOT NULL AND s.expires_at <= now() THEN EXCLUDED.expires_at
						  WHEN s.expires_at IS NULL OR EXCLUDED.expires_at IS NULL THEN NULL
						  ELSE greatest(s.expires_at, EXCLUDED.expires_at) END;
	PERFORM notify_audit('suppressed', 'recipient:' || v_addr,
		jsonb_build_object('reason', reason, 'source', source, 'expires_at', expires_at,
						   'detail', left(detail, 1000), 'renewed', coalesce(v_was_active, false)));
	RETURN NOT coalesce(v_was_active, false);
END;
$$;
COMMENT ON FUNCTION notify_suppress(text, text, text, timestamptz, text) IS
	'Suppresses address (nothing is sent to it, in any category) for reason until expires_at (NULL: never). True when it was not suppressed before; a renewal keeps the later expiry. Audited as suppressed.';

CREATE FUNCTION notify_unsuppress(address text, actor text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_addr text;
	v_old notify_suppressions;
BEGIN
	PERFORM notify_check_recipient(address, 'address');
	v_addr := notify_normalize_address(address);
	DELETE FROM notify_suppressions s WHERE s.address = v_addr RETURNING * INTO v_old;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM notify_audit('unsuppressed', 'recipient:' || v_addr,
		jsonb_build_object('reason', v_old.reason, 'source', v_old.source, 'created_at', v_old.created_at,
						   'expires_at', v_old.expires_at),
		actor);
	RETURN true;
END;
$$;
COMMENT ON FUNCTION notify_unsuppress(text, text) IS
	'Removes address from the suppression list; true if it was there. Audited as unsuppressed.';

CREATE FUNCTION notify_suppress_from_failure(address text, enhanced_status text, detail text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
	-- RFC 3463: 5.1.0 other address status, 5.1.1 bad mailbox, 5.1.2 bad
	-- domain, 5.1.3 bad address syntax, 5.1.6 mailbox moved, 5.1.10 null MX
	-- (RFC 7505).  Not 5.1.4 (ambiguous), 5.1.5 (valid), 5.1.7/5.1.8 (the
	-- sender's address), 5.1.9 (relayed).
	IF enhanced_status IS NULL OR enhanced_status !~ '^5\.1\.(0|1|2|3|6|10)$' THEN
		RETURN false;
	END IF;
	PERFORM notify_suppress(address, 'hard_bounce', 'smtp', NULL,
							enhanced_status || coalesce(' ' || detail, ''));
	RETURN true;
END;
$$;
COMMENT ON FUNCTION notify_suppress_from_failure(text, text, text) IS
	'Called by the worker after a permanent SMTP failure: a recipient-address status (5.1.0, 5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10) suppresses address as hard_bounce (source smtp) and returns true; any other status does nothing.';

-- ---- the decision ----
-- Runs once per enqueue (inside notify_enqueue) and once per message in
-- the worker, so it is C with plain index probes (src/unsubscribe.c): as
-- PL/pgSQL its SPI statements cost several times the probes themselves
-- (docs/benchmarks.md).  It reads the tables of its own schema directly,
-- so EXECUTE on it is what grants its answer; PUBLIC has none.
CREATE FUNCTION notify_decide(recipient text, category text, channel text, tenant text DEFAULT NULL)
RETURNS text
	AS 'MODULE_PATHNAME', 'notify_decide'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION notify_decide(text, text, text, text) IS
	'NULL when a message in category to recipient on channel (for tenant) may be sent; else why not: suppressed, opted_out or not_opted_in. See docs/preferences.md for the rules.';

-- ---- one-click unsubscribe (src/unsubscribe.c) ----
CREATE FUNCTION notify_random_bytes(n integer) RETURNS bytea
	AS 'MODULE_PATHNAME', 'notify_random_bytes'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION notify_random_bytes(integer) IS
	'n (1 to 1024) bytes from the server''s cryptographically strong random source (pg_strong_random).';

CREATE FUNCTION notify_unsubscribe_sign(key_id integer, secret bytea, recipient text, category text,
										tenant text, expires_at timestamptz) RETURNS text
	AS 'MODULE_PATHNAME', 'notify_unsubscribe_sign'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION notify_unsubscribe_sign(integer, bytea, text, text, text, timestamptz) IS
	'Internal: the one-click unsubscribe token for (recipient, category, tenant), valid until expires_at (NULL: forever), signed with key key_id.';

CREATE FUNCTION notify_unsubscribe_key_id(token text) RETURNS integer
	AS 'MODULE_PATHNAME', 'notify_unsubscribe_key_id'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION notify_unsubscribe_key_id(text) IS
	'Internal: the key id an unsubscribe token names, before verification; 22023 if the token is malformed.';

CREATE FUNCTION notify_unsubscribe_verify(token text, secret bytea,
	OUT recipient text, OUT category text, OUT tenant text, OUT expires_at timestamptz)
RETURNS record
	AS 'MODULE_PATHNAME', 'notify_unsubscribe_verify'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION notify_unsubscribe_verify(text, bytea) IS
	'Internal: verifies an unsubscribe token with secret (constant-time MAC comparison, strict parsing, expiry) and returns what it says; 22023 "invalid unsubscribe token" otherwise.';

CREATE TABLE notify_unsubscribe_keys (
	key_id		integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	secret		bytea NOT NULL
				CONSTRAINT notify_unsubscribe_keys_secret_check CHECK (octet_length(secret) >= 32),
	created_at	timestamptz NOT NULL DEFAULT now(),
	active		boolean NOT NULL DEFAULT true
);
COMMENT ON TABLE notify_unsubscribe_keys IS
	'HMAC-SHA256 keys of one-click unsubscribe tokens. The newest active key signs; every active key verifies. Readable only by the extension owner.';
COMMENT ON SEQUENCE notify_unsubscribe_keys_key_id_seq IS 'Generates notify_unsubscribe_keys.key_id.';
COMMENT ON COLUMN notify_unsubscribe_keys.key_id IS 'Key id, carried in every token it signs.';
COMMENT ON COLUMN notify_unsubscribe_keys.secret IS 'The key: 32 random bytes from notify_random_bytes().';
COMMENT ON COLUMN notify_unsubscribe_keys.created_at IS 'When the key was made.';
COMMENT ON COLUMN notify_unsubscribe_keys.active IS 'False: retired, tokens signed with it no longer verify.';
SELECT pg_catalog.pg_extension_config_dump('notify_unsubscribe_keys', '');
SELECT pg_catalog.pg_extension_config_dump('notify_unsubscribe_keys_key_id_seq', '');

-- CREATE EXTENSION makes a random key, and pg_restore then copies the
-- dumped keys in: a copied row whose key_id exists replaces that row, so
-- a restored database keeps verifying the tokens already mailed.
CREATE FUNCTION notify_unsubscribe_keys_restore() RETURNS trigger
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
BEGIN
	UPDATE notify_unsubscribe_keys k
	SET secret = NEW.secret, created_at = NEW.created_at, active = NEW.active
	WHERE k.key_id = NEW.key_id;
	IF FOUND THEN
		RETURN NULL;
	END IF;
	RETURN NEW;
END;
$$;
COMMENT ON FUNCTION notify_unsubscribe_keys_restore() IS
	'Trigger: an inserted key whose key_id exists replaces that key (pg_restore over the key CREATE EXTENSION made).';
CREATE TRIGGER notify_unsubscribe_keys_restore BEFORE INSERT ON notify_unsubscribe_keys
	FOR EACH ROW EXECUTE FUNCTION notify_unsubscribe_keys_restore();
COMMENT ON TRIGGER notify_unsubscribe_keys_restore ON notify_unsubscribe_keys IS
	'Lets pg_restore''s copy of the keys replace the random key CREATE EXTENSION made.';

INSERT INTO notify_unsubscribe_keys (secret) VALUES (notify_random_bytes(32));

CREATE FUNCTION notify_unsubscribe_key_rotate(actor text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	v_id integer;
BEGIN
	INSERT INTO notify_unsubscribe_keys (secret) VALUES (notify_random_bytes(32)) RETURNING key_id INTO v_id;
	PERFORM notify_audit('unsubscribe_key_rotated', 'unsubscribe_key:' || v_id, '{}', actor);
	RETURN v_id;
END;
$$;
COMMENT ON FUNCTION notify_unsubscribe_key_rotate(text) IS
	'Makes a new random key that signs from now on and returns its id; older active keys still verify. Audited.';

CREATE FUNCTION notify_unsubscribe_key_retire(key_id integer, actor text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
	IF key_id IS NULL THEN
		RAISE EXCEPTION 'key_id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM 1 FROM notify_unsubscribe_keys k WHERE k.active FOR UPDATE;
	IF NOT EXISTS (SELECT 1 FROM notify_unsubscribe_keys k WHERE k.key_id = key_id) THEN
		RAISE EXCEPTION 'unsubscribe key % does not exist', key_id USING ERRCODE = 'no_data_found';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM notify_unsubscribe_keys k WHERE k.active AND k.key_id <> key_id) THEN
		RAISE EXCEPTION 'unsubscribe key % is the only active key', key_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Make a new one with notify_unsubscribe_key_rotate() first.';
	END IF;
	UPDATE notify_unsubscribe_keys k SET active = false WHERE k.key_id = key_id AND k.active;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM notify_audit('unsubscribe_key_retired', 'unsubscribe_key:' || key_id, '{}', actor);
	RETURN true;
END;
$$;
COMMENT ON FUNCTION notify_unsubscribe_key_retire(integer, text) IS
	'Retires a key: tokens it signed stop verifying. Refuses the last active key. True if it was active. Audited.';

CREATE FUNCTION notify_unsubscribe_token(recipient text, category text, tenant text DEFAULT NULL,
										 expires_at timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_mandatory boolean;
	k notify_unsubscribe_keys;
BEGIN
	PERFORM notify_check_recipient(recipient, 'recipient');
	IF category IS NULL THEN
		RAISE EXCEPTION 'category must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT c.mandatory INTO v_mandatory FROM notify_categories c WHERE c.name = category;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown category %', notify_quote(category)
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Categories are listed in notify_categories.';
	ELSIF v_mandatory THEN
		RAISE EXCEPTION 'category % is mandatory: it cannot be opted out of', notify_quote(category)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'No unsubscribe token is made for a mandatory category.';
	END IF;
	PERFORM notify_check_tenant(tenant);
	SELECT * INTO k FROM notify_unsubscribe_keys WHERE active ORDER BY key_id DESC LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no active unsubscribe key' USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Make one with notify_unsubscribe_key_rotate().';
	END IF;
	RETURN notify_unsubscribe_sign(k.key_id, k.secret, notify_normalize_address(recipient),
								   category, tenant, expires_at);
END;
$$;
COMMENT ON FUNCTION notify_unsubscribe_token(text, text, text, timestamptz) IS
	'Signed one-click unsubscribe token for recipient and category (and tenant), valid until expires_at (NULL: forever); notify_unsubscribe(token) opts the recipient out.';

CREATE FUNCTION notify_unsubscribe_url(recipient text, category text, tenant text DEFAULT NULL,
									   base_url text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_base text := coalesce(base_url, nullif(current_setting('notify.unsubscribe_url', true), ''));
BEGIN
	IF v_base IS NULL
	   OR (SELECT c.mandatory FROM notify_categories c WHERE c.name = category) THEN
		RETURN NULL;
	END IF;
	IF length(v_base) > 1024 OR v_base !~ '^https?://[^\s/?#@<>"]+(/[^\s<>"#]*)?$' THEN
		RAISE EXCEPTION 'unsubscribe URL % is not an http:// or https:// URL', notify_quote(v_base)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'It must be at most 1024 characters without spaces, "<", ">", """" or a fragment: it goes into a List-Unsubscribe header.';
	END IF;
	RETURN v_base || CASE WHEN strpos(v_base, '?') > 0 THEN '&' ELSE '?' END
		|| 'token=' || notify_unsubscribe_token(recipient, category, tenant);
END;
$$;
COMMENT ON FUNCTION notify_unsubscribe_url(text, text, text, text) IS
	'One-click unsubscribe URL for recipient and category: base_url (default: the notify.unsubscribe_url setting) with ?token=<token> (or &token=). NULL when no URL is configured or the category is mandatory.';

CREATE FUNCTION notify_unsubscribe(token text)
RETURNS TABLE (recipient text, category text, tenant text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_key_id integer;
	v_secret bytea;
	t record;
	v_mandatory boolean;
BEGIN
	IF token IS NULL THEN
		RAISE EXCEPTION 'token must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	v_key_id := notify_unsubscribe_key_id(token);
	SELECT k.secret INTO v_secret FROM notify_unsubscribe_keys k WHERE k.key_id = v_key_id AND k.active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'invalid unsubscribe token'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('It names key %s, which is unknown or retired.', v_key_id);
	END IF;
	SELECT * INTO t FROM notify_unsubscribe_verify(token, v_secret);
	v_secret := NULL;

	SELECT c.mandatory INTO v_mandatory FROM notify_categories c WHERE c.name = t.category;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unsubscribe token names category %, which no longer exists', notify_quote(t.category)
			USING ERRCODE = 'invalid_parameter_value';
	ELSIF v_mandatory THEN
		RAISE EXCEPTION 'category % is mandatory: it cannot be opted out of', notify_quote(t.category)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'The category became mandatory after the token was made.';
	END IF;
	PERFORM notify_preference_write(t.recipient, t.category, false, NULL, t.tenant, 'one_click', NULL);
	recipient := t.recipient;
	category := t.category;
	tenant := t.tenant;
	RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION notify_unsubscribe(text) IS
	'RFC 8058 one-click unsubscribe: verifies token and opts its recipient out of its category (all channels, its tenant), source one_click, audited. Idempotent. A malformed, altered, expired or retired-key token raises 22023 and changes nothing.';

-- ---- provider events: bounces, complaints, deliveries ----
-- One event in the generic shape (see docs/preferences.md) applied: the
-- outbox row found by outbox_id, message_id or provider_message_id, the
-- suppression list, an audit row.  Returns what it did.
CREATE FUNCTION notify_ingest_generic(provider text, e jsonb, suppress_reason text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	v_type text;
	v_bounce text;
	v_status text;
	v_detail text;
	v_recipient text;
	v_msgid text;
	v_provid text[];
	v_outbox notify_outbox;
	v_result text;
	v_failed boolean := false;
	k text;
BEGIN
	IF jsonb_typeof(e) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'an event must be a JSON object, not %', coalesce(jsonb_typeof(e), 'null')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOREACH k IN ARRAY ARRAY['type', 'recipient', 'message_id', 'bounce_type', 'smtp_status', 'detail'] LOOP
		IF e ? k AND jsonb_typeof(e -> k) NOT IN ('string', 'null') THEN
			RAISE EXCEPTION 'event field % must be a string', notify_quote(k) USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;
	IF e ? 'provider_message_id' AND jsonb_typeof(e -> 'provider_message_id') NOT IN ('string', 'array', 'null') THEN
		RAISE EXCEPTION 'event field "provider_message_id" must be a string' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF e ? 'outbox_id' AND jsonb_typeof(e -> 'outbox_id') <> 'null'
	   AND (jsonb_typeof(e -> 'outbox_id') <> 'number' OR e ->> 'outbox_id' !~ '^[0-9]{1,18}$') THEN
		RAISE EXCEPTION 'event field "outbox_id" must be a notify_outbox id' USING ERRCODE = 'invalid_parameter_value';
	END IF;

	v_type := e ->> 'type';
	IF v_type IS NULL OR v_type NOT IN ('bounce', 'complaint', 'delivered') THEN
		RAISE EXCEPTION 'unknown event type %', notify_quote(coalesce(v_type, 'null'))
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Event types are bounce, complaint and delivered.';
	END IF;
	v_status := nullif(e ->> 'smtp_status', '');
	IF v_status IS NOT NULL AND v_status !~ '^[245]\.[0-9]{1,3}\.[0-9]{1,3}$' THEN
		RAISE EXCEPTION 'invalid smtp_status %', notify_quote(v_status)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'An enhanced status code (RFC 3463) is class.subject.detail, such as 5.1.1.';
	END IF;
	v_bounce := e ->> 'bounce_type';
	IF v_type = 'bounce' THEN
		v_bounce := coalesce(v_bounce, CASE left(v_status, 1) WHEN '5' THEN 'hard' WHEN '4' THEN 'soft' END);
		IF v_bounce IS NULL OR v_bounce NOT IN ('hard', 'soft') THEN
			RAISE EXCEPTION 'a bounce needs bounce_type "hard" or "soft" (or an smtp_status to tell)'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	ELSIF v_bounce IS NOT NULL THEN
		RAISE EXCEPTION 'bounce_type is only for bounce events' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_detail := left(nullif(e ->> 'detail', ''), 1000);

	-- the outbox row
	v_msgid := nullif(btrim(e ->> 'message_id', '<> '), '');
	v_provid := CASE jsonb_typeof(e -> 'provider_message_id')
				WHEN 'string' THEN ARRAY[e ->> 'provider_message_id']
				WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(e -> 'provider_message_id')) END;
	IF e ? 'outbox_id' AND jsonb_typeof(e -> 'outbox_id') = 'number' THEN
		SELECT * INTO v_outbox FROM notify_outbox o WHERE o.id = (e ->> 'outbox_id')::bigint FOR UPDATE;
	END IF;
	-- The worker's Message-IDs start with the outbox id ("<id>.<random>@<domain>",
	-- src/claim.c): the primary key finds the row, and the whole Message-ID
	-- must match.  No index on message_id, which would cost an entry at every
	-- claim and record of an email.
	IF v_outbox.id IS NULL AND v_msgid ~ '^[0-9]{1,18}[.]' THEN
		SELECT * INTO v_outbox FROM notify_outbox o
		WHERE o.id = split_part(v_msgid, '.', 1)::bigint AND o.message_id = v_msgid FOR UPDATE;
	END IF;
	IF v_outbox.id IS NULL AND v_provid IS NOT NULL THEN
		SELECT * INTO v_outbox FROM notify_outbox o WHERE o.provider_message_id = ANY (v_provid)
		ORDER BY o.id LIMIT 1 FOR UPDATE;
	END IF;

	v_recipient := coalesce(nullif(e ->> 'recipient', ''), v_outbox.recipient);
	IF v_recipient IS NULL AND v_type <> 'delivered' THEN
		RAISE EXCEPTION 'a % event needs a recipient, or an id of a message in the outbox', v_type
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF v_recipient IS NOT NULL THEN
		PERFORM notify_check_recipient(v_recipient, 'recipient');
	END IF;

	v_result := CASE v_type WHEN 'bounce' THEN v_bounce || ' bounce of ' WHEN 'complaint' THEN 'complaint from '
						   ELSE 'delivery to ' END
		|| coalesce(v_recipient, 'unknown recipient')
		|| coalesce(' (' || v_status || ')', '')
		|| CASE WHEN v_outbox.id IS NULL THEN ', no outbox row' ELSE ', outbox ' || v_outbox.id END;

	IF v_type = 'bounce' AND v_bounce = 'hard' AND v_outbox.status = 'sent' THEN
		UPDATE notify_outbox o
		SET status = 'failed',
			last_error = left(format('bounced (%s): %s', provider,
									 concat_ws(' ', v_status, coalesce(v_detail, 'hard bounce'))), 1000)
		WHERE o.id = v_outbox.id;
		v_failed := true;
		v_result := v_result || ' marked failed';
	END IF;
	IF (v_type = 'bounce' AND v_bounce = 'hard') OR v_type = 'complaint' THEN
		suppress_reason := coalesce(suppress_reason, CASE v_type WHEN 'bounce' THEN 'hard_bounce' ELSE 'complaint' END);
		PERFORM notify_suppress(v_recipient, suppress_reason, provider, NULL,
								concat_ws(' ', v_status, v_detail));
		v_result := v_result || '; suppressed (' || suppress_reason || ')';
	END IF;

	PERFORM notify_audit('event_' || v_type,
		CASE WHEN v_outbox.id IS NOT NULL THEN 'outbox:' || v_outbox.id
			 WHEN v_recipient IS NOT NULL THEN 'recipient:' || notify_normalize_address(v_recipient) END,
		jsonb_strip_nulls(jsonb_build_object(
			'provider', provider, 'recipient', v_recipient, 'bounce_type', v_bounce,
			'smtp_status', v_status, 'detail', v_detail, 'message_id', v_msgid,
			'provider_message_id', v_provid[1], 'outbox_failed', v_failed)));
	RETURN v_result;
END;
$$;
COMMENT ON FUNCTION notify_ingest_generic(text, jsonb, text) IS
	'Internal: applies one event in the generic shape (type, recipient, message_id, provider_message_id, outbox_id, bounce_type, smtp_status, detail) and returns what it did.';

CREATE FUNCTION notify_ingest_event(provider text, event jsonb) RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	e jsonb;
	g jsonb;
	v_kind text;
	v_reason text;
	v_id text;
	results text[] := '{}';
BEGIN
	IF provider IS NULL THEN
		RAISE EXCEPTION 'provider must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF event IS NULL THEN
		RAISE EXCEPTION 'event must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF provider !~ '^[a-z0-9_.:-]{1,64}$' THEN
		RAISE EXCEPTION 'invalid provider %', notify_quote(provider)
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A provider is 1 to 64 lowercase letters, digits or "_.:-": postmark, sendgrid, or any name for the generic shape.';
	END IF;
	IF jsonb_typeof(event) NOT IN ('object', 'array') THEN
		RAISE EXCEPTION 'event must be a JSON object or an array of them, not %', jsonb_typeof(event)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF jsonb_typeof(event) = 'array' AND jsonb_array_length(event) = 0 THEN
		RAISE EXCEPTION 'event array is empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;

	FOR e IN SELECT CASE jsonb_typeof(event) WHEN 'array' THEN x ELSE event END
			 FROM jsonb_array_elements(CASE jsonb_typeof(event) WHEN 'array' THEN event ELSE '[null]' END) x
	LOOP
		IF jsonb_typeof(e) IS DISTINCT FROM 'object' THEN
			RAISE EXCEPTION 'an event must be a JSON object, not %', coalesce(jsonb_typeof(e), 'null')
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		g := NULL;
		v_reason := NULL;
		IF provider = 'postmark' THEN
			-- https://postmarkapp.com/developer/webhooks : RecordType Bounce
			-- (Type HardBounce, SoftBounce, ...), SpamComplaint, Delivery
			v_kind := e ->> 'RecordType';
			IF v_kind IS NULL THEN
				RAISE EXCEPTION 'a postmark event needs "RecordType"' USING ERRCODE = 'invalid_parameter_value';
			END IF;
			v_id := CASE WHEN jsonb_typeof(e -> 'MessageID') = 'string' THEN e ->> 'MessageID' END;
			IF v_kind = 'Bounce' AND e ->> 'Type' = 'SpamComplaint' THEN
				v_kind := 'SpamComplaint';
			END IF;
			g := CASE v_kind
				WHEN 'Bounce' THEN jsonb_build_object(
					'type', 'bounce', 'recipient', e -> 'Email', 'provider_message_id', v_id,
					'bounce_type', CASE WHEN e ->> 'Type' IN ('HardBounce', 'BadEmailAddress') THEN 'hard' ELSE 'soft' END,
					'smtp_status', substring(e ->> 'Details' FROM '\m([245]\.[0-9]{1,3}\.[0-9]{1,3})\M'),
					'detail', concat_ws(': ', e ->> 'Type', coalesce(nullif(e ->> 'Details', ''), e ->> 'Description')))
				WHEN 'SpamComplaint' THEN jsonb_build_object(
					'type', 'complaint', 'recipient', e -> 'Email', 'provider_message_id', v_id,
					'detail', e -> 'Details')
				WHEN 'Delivery' THEN jsonb_build_object(
					'type', 'delivered', 'recipient', e -> 'Recipient', 'provider_message_id', v_id,
					'detail', e -> 'Details')
				END;
			IF v_kind = 'Bounce' AND e ->> 'Type' = 'BadEmailAddress' THEN
				v_reason := 'invalid';
			END IF;
			IF g IS NULL AND v_kind IN ('Open', 'Click', 'SubscriptionChange') THEN
				results := results || format('ignored postmark %s event', v_kind);
				CONTINUE;
			END IF;
		ELSIF provider = 'sendgrid' THEN
			-- https://docs.sendgrid.com/for-developers/tracking-events/event :
			-- an array of {"event": ..., "email": ..., "sg_message_id": ...}
			v_kind := e ->> 'event';
			IF v_kind IS NULL THEN
				RAISE EXCEPTION 'a sendgrid event needs "event"' USING ERRCODE = 'invalid_parameter_value';
			END IF;
			v_id := CASE WHEN jsonb_typeof(e -> 'sg_message_id') = 'string' THEN e ->> 'sg_message_id' END;
			g := CASE v_kind
				WHEN 'bounce' THEN jsonb_build_object(
					'type', 'bounce', 'recipient', e -> 'email',
					'bounce_type', CASE WHEN e ->> 'type' = 'blocked' THEN 'soft' ELSE 'hard' END,
					'smtp_status', CASE WHEN e ->> 'status' ~ '^[245]\.[0-9]{1,3}\.[0-9]{1,3}$' THEN e -> 'status' END,
					'detail', e -> 'reason')
				WHEN 'spamreport' THEN jsonb_build_object('type', 'complaint', 'recipient', e -> 'email')
				WHEN 'delivered' THEN jsonb_build_object('type', 'delivered', 'recipient', e -> 'email',
														 'detail', e -> 'response')
				END;
			IF g IS NOT NULL THEN
				-- X-Message-Id, which the worker stored, is what comes
				-- before ".filter..." in sg_message_id (or before the first dot)
				g := g || jsonb_build_object(
					'provider_message_id', to_jsonb(ARRAY[regexp_replace(v_id, '\.filter.*$', ''), split_part(v_id, '.', 1)]),
					'message_id', e -> 'smtp-id',
					'outbox_id', CASE WHEN e ->> 'notify_outbox_id' ~ '^[0-9]{1,18}$' THEN (e ->> 'notify_outbox_id')::bigint END);
			ELSIF v_kind IN ('processed', 'dropped', 'deferred', 'open', 'click', 'unsubscribe',
							 'group_unsubscribe', 'group_resubscribe') THEN
				results := results || format('ignored sendgrid %s event', v_kind);
				CONTINUE;
			END IF;
		ELSE
			g := e;
		END IF;
		IF g IS NULL THEN
			RAISE EXCEPTION 'unknown % event type %', provider, notify_quote(v_kind)
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		results := results || notify_ingest_generic(provider, jsonb_strip_nulls(g), v_reason);
	END LOOP;
	RETURN array_to_string(results, E'\n');
END;
$$;
COMMENT ON FUNCTION notify_ingest_event(text, jsonb) IS
	'Applies a provider''s delivery event (or an array of them): postmark and sendgrid webhook bodies, or the generic shape under any other provider name. Hard bounces and complaints suppress the address; a hard bounce fails the sent outbox row. Returns what it did, one line per event; bad events raise 22023 and nothing is written.';

CREATE INDEX notify_outbox_provider_message_id_idx ON notify_outbox (provider_message_id)
	WHERE provider_message_id IS NOT NULL;
COMMENT ON INDEX notify_outbox_provider_message_id_idx IS 'Finds the outbox row of a provider event by the provider''s message id.';

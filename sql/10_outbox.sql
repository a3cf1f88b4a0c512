-- notify: the outbox, channels, categories, notify_enqueue and its checks.
--
-- Everything lives in the schema given to CREATE EXTENSION (@extschema@);
-- functions that applications call are SECURITY DEFINER with a pinned
-- search_path, and PUBLIC gets no privilege on anything (see
-- 90_privileges.sql and docs/security.md).

CREATE FUNCTION notify_email_is_valid(address text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'notify_email_is_valid'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION notify_email_is_valid(text) IS
	'True when address is an RFC 5321 mailbox (local-part@domain or address literal): what the email channels accept as a recipient.';

-- ---- channels ----
CREATE TABLE notify_channels (
	name		text PRIMARY KEY
				CONSTRAINT notify_channels_name_check CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
	kind		text NOT NULL
				CONSTRAINT notify_channels_kind_check CHECK (kind IN ('smtp', 'http_email', 'webhook', 'slack')),
	settings	jsonb NOT NULL DEFAULT '{}'
				CONSTRAINT notify_channels_settings_check CHECK (jsonb_typeof(settings) = 'object'),
	enabled		boolean NOT NULL DEFAULT true,
	created_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE notify_channels IS
	'Named delivery channels. The built-in channel "email" is SMTP configured by the notify.smtp_* settings.';
COMMENT ON COLUMN notify_channels.name IS 'Name given as the channel argument of notify_enqueue.';
COMMENT ON COLUMN notify_channels.kind IS 'Transport: smtp, http_email, webhook or slack.';
COMMENT ON COLUMN notify_channels.settings IS 'Transport settings (URL, headers, limits); no secrets.';
COMMENT ON COLUMN notify_channels.enabled IS 'False pauses delivery: rows stay pending until the channel is enabled again.';
COMMENT ON COLUMN notify_channels.created_at IS 'When the channel was defined.';

INSERT INTO notify_channels (name, kind) VALUES ('email', 'smtp');
SELECT pg_catalog.pg_extension_config_dump('notify_channels', $$WHERE name <> 'email'$$);

-- ---- categories ----
CREATE TABLE notify_categories (
	name		text PRIMARY KEY
				CONSTRAINT notify_categories_name_check CHECK (name ~ '^[a-z0-9_]{1,63}$'),
	description text NOT NULL DEFAULT '',
	mandatory	boolean NOT NULL DEFAULT false,
	default_priority integer NOT NULL DEFAULT 0,
	default_max_attempts integer NOT NULL DEFAULT 5
				CONSTRAINT notify_categories_max_attempts_check CHECK (default_max_attempts BETWEEN 1 AND 100)
);
COMMENT ON TABLE notify_categories IS
	'Kinds of notification (transactional, security, marketing, ...): defaults for priority and retries, and whether recipients may opt out.';
COMMENT ON COLUMN notify_categories.name IS 'Category name given as the category argument of notify_enqueue.';
COMMENT ON COLUMN notify_categories.description IS 'What the category is for, in words for admins.';
COMMENT ON COLUMN notify_categories.mandatory IS 'True when recipients cannot opt out (account security, billing).';
COMMENT ON COLUMN notify_categories.default_priority IS 'Priority of rows enqueued without one; higher is claimed first.';
COMMENT ON COLUMN notify_categories.default_max_attempts IS 'max_attempts of rows enqueued in this category.';

INSERT INTO notify_categories (name, description, mandatory, default_priority) VALUES
	('transactional', 'Direct result of a user action: receipts, replies, confirmations.', false, 10),
	('security', 'Account security: password resets, sign-in alerts, verification.', true, 20),
	('billing', 'Invoices, payment failures, plan changes.', true, 10),
	('product', 'Product updates and tips for existing users.', false, 0),
	('marketing', 'Campaigns and newsletters; opt-in required.', false, -10),
	('internal', 'Messages to the operating team.', false, 0);

-- Backends cache the channel and category rows they read, whether a
-- category has any preference, and whether any suppression is kept hashed
-- (src/unsubscribe.c); any change to those tables tells every backend to
-- forget what it cached.
CREATE FUNCTION notify_lookup_invalidate() RETURNS trigger
	AS 'MODULE_PATHNAME', 'notify_lookup_invalidate'
	LANGUAGE C;
COMMENT ON FUNCTION notify_lookup_invalidate() IS
	'Statement trigger of notify_channels, notify_categories, notify_preferences and notify_suppressions: invalidates what backends cached of them for notify_enqueue and the worker.';
CREATE TRIGGER notify_channels_lookup_invalidate
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify_channels
	FOR EACH STATEMENT EXECUTE FUNCTION notify_lookup_invalidate();
COMMENT ON TRIGGER notify_channels_lookup_invalidate ON notify_channels IS
	'Makes every backend read channels again after a change.';
CREATE TRIGGER notify_categories_lookup_invalidate
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify_categories
	FOR EACH STATEMENT EXECUTE FUNCTION notify_lookup_invalidate();
COMMENT ON TRIGGER notify_categories_lookup_invalidate ON notify_categories IS
	'Makes every backend read categories again after a change.';
SELECT pg_catalog.pg_extension_config_dump('notify_categories',
	$$WHERE name NOT IN ('transactional', 'security', 'billing', 'product', 'marketing', 'internal')$$);

-- ---- the outbox ----
-- The value rules of the outbox's columns are domains, not table CHECK
-- constraints: PostgreSQL 15 re-reads and re-plans a table's CHECK
-- expressions for every INSERT or UPDATE statement (text constants are
-- stored byte by byte), which cost notify_enqueue and the worker's claim
-- and record statements 20-40 us each; a domain's checks are planned once
-- per process (in the type cache).
CREATE DOMAIN notify_status AS text
	CONSTRAINT notify_status_check
	CHECK (VALUE IN ('pending', 'sending', 'sent', 'failed', 'skipped', 'canceled', 'expired'));
COMMENT ON DOMAIN notify_status IS
	'State of a notification: pending, sending (claimed by the worker), sent, failed, skipped, canceled or expired.';
CREATE DOMAIN notify_skip_reason AS text
	CONSTRAINT notify_skip_reason_check
	CHECK (VALUE IN ('opted_out', 'suppressed', 'not_opted_in'));
COMMENT ON DOMAIN notify_skip_reason IS
	'Why a notification was not sent: opted_out, suppressed or not_opted_in.';
CREATE DOMAIN notify_json_object AS jsonb
	CONSTRAINT notify_json_object_check
	CHECK (jsonb_typeof(VALUE) = 'object');
COMMENT ON DOMAIN notify_json_object IS 'A JSON object (not an array, string, number or null).';
CREATE DOMAIN notify_attempt_limit AS integer
	CONSTRAINT notify_attempt_limit_check
	CHECK (VALUE >= 1);
COMMENT ON DOMAIN notify_attempt_limit IS 'A number of delivery attempts allowed: at least 1.';

CREATE TABLE notify_outbox (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	dedup_key	text,
	template_key text NOT NULL,
	template_version integer,
	locale		text,
	channel		text NOT NULL DEFAULT 'email',
	category	text NOT NULL DEFAULT 'transactional',
	recipient	text NOT NULL,
	payload		notify_json_object NOT NULL DEFAULT '{}',
	status		notify_status NOT NULL DEFAULT 'pending',
	priority	integer NOT NULL DEFAULT 0,
	attempts	integer NOT NULL DEFAULT 0,
	max_attempts notify_attempt_limit NOT NULL DEFAULT 5,
	send_at		timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz,
	next_attempt_at timestamptz NOT NULL DEFAULT now(),
	locked_until timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now(),
	sent_at		timestamptz,
	last_error	text,
	message_id	text,
	provider_message_id text,
	actor		text,
	created_by	name NOT NULL DEFAULT session_user,
	skip_reason notify_skip_reason,
	metadata	notify_json_object NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE notify_outbox IS
	'Transactional outbox: one row per notification to deliver, written in the caller''s transaction by notify_enqueue and worked off by the notify worker.';
COMMENT ON SEQUENCE notify_outbox_id_seq IS 'Generates notify_outbox.id.';
COMMENT ON COLUMN notify_outbox.id IS 'Identity; notify_enqueue returns it.';
COMMENT ON COLUMN notify_outbox.dedup_key IS 'Idempotency key: a second enqueue with the same key returns the first row''s id and adds nothing.';
COMMENT ON COLUMN notify_outbox.template_key IS 'What to send, as <domain>.<event> (user.password_reset).';
COMMENT ON COLUMN notify_outbox.template_version IS 'Template version resolved at enqueue, so retries render the same wording.';
COMMENT ON COLUMN notify_outbox.locale IS 'Locale resolved at enqueue (BCP 47: en, ja, pt-BR).';
COMMENT ON COLUMN notify_outbox.channel IS 'Name of the notify_channels row that delivers it.';
COMMENT ON COLUMN notify_outbox.category IS 'notify_categories name: decides priority, retries and opt-out rules.';
COMMENT ON COLUMN notify_outbox.recipient IS 'Email address, or the channel''s notion of a destination.';
COMMENT ON COLUMN notify_outbox.payload IS 'Template variables, a JSON object of at most notify.max_payload_bytes.';
COMMENT ON COLUMN notify_outbox.status IS 'pending, sending (claimed by the worker), sent, failed, skipped, canceled or expired.';
COMMENT ON COLUMN notify_outbox.priority IS 'Higher is claimed first.';
COMMENT ON COLUMN notify_outbox.attempts IS 'Delivery attempts made so far.';
COMMENT ON COLUMN notify_outbox.max_attempts IS 'Attempts allowed before a transient failure becomes failed.';
COMMENT ON COLUMN notify_outbox.send_at IS 'Earliest time the notification may be sent, as requested.';
COMMENT ON COLUMN notify_outbox.expires_at IS 'A row not sent by then ends expired instead of going out late; NULL: never.';
COMMENT ON COLUMN notify_outbox.next_attempt_at IS 'When the worker may next claim the row (send_at, then retry times).';
COMMENT ON COLUMN notify_outbox.locked_until IS 'Lease of a sending row; a row whose lease expired returns to pending.';
COMMENT ON COLUMN notify_outbox.created_at IS 'Enqueue time (the enqueuing transaction''s start).';
COMMENT ON COLUMN notify_outbox.sent_at IS 'When the receiving server accepted the message.';
COMMENT ON COLUMN notify_outbox.last_error IS 'Error of the latest failed attempt.';
COMMENT ON COLUMN notify_outbox.message_id IS 'Message-ID header of the email, without angle brackets.';
COMMENT ON COLUMN notify_outbox.provider_message_id IS 'Identifier the receiving server or provider gave the message (SMTP queue id).';
COMMENT ON COLUMN notify_outbox.actor IS 'Application actor whose action caused the notification (argument or notify.actor).';
COMMENT ON COLUMN notify_outbox.created_by IS 'Database role that enqueued it (the login role, also through SECURITY DEFINER functions).';
COMMENT ON COLUMN notify_outbox.skip_reason IS 'Why a skipped row was not sent: opted_out, suppressed or not_opted_in.';
COMMENT ON COLUMN notify_outbox.metadata IS 'Caller''s free-form JSON object (tenant, trace id, ...), never rendered.';

-- Both per-message updates of the outbox (claim, record) change status,
-- which the partial indexes' predicates read, so neither is a HOT update:
-- each new row version gets an entry in every index whose predicate it
-- matches.  So all but the primary key are partial, and an unfinished row is
-- in exactly one of the claim and lease indexes, which carry the channel so
-- that notify_backlog is an index-only scan of the two (no index of its own).
-- The claim index leads with the channel: the worker claims channel by
-- channel, so the rows of a paused or rate-limited channel, however many,
-- are never read by the claims of the others.
-- Unique where set: rows without a key have no entry (a UNIQUE constraint
-- would index their NULLs too, and take a new entry at each of their
-- updates).  notify_enqueue (src/direct_insert.c) finds it as ON CONFLICT
-- (dedup_key) WHERE dedup_key IS NOT NULL would infer it.
CREATE UNIQUE INDEX notify_outbox_dedup_key_key ON notify_outbox (dedup_key)
	WHERE dedup_key IS NOT NULL;
COMMENT ON INDEX notify_outbox_dedup_key_key IS 'Idempotency: one row per dedup_key (rows without one are not in it).';
CREATE INDEX notify_outbox_claim_idx ON notify_outbox (channel, priority DESC, next_attempt_at, id)
	WHERE status = 'pending';
COMMENT ON INDEX notify_outbox_claim_idx IS 'Serves the worker''s claim: a channel''s due pending rows by priority, due time, id; and notify_backlog.';
CREATE INDEX notify_outbox_lease_idx ON notify_outbox (locked_until)
	INCLUDE (channel) WHERE status = 'sending';
COMMENT ON INDEX notify_outbox_lease_idx IS 'Finds sending rows whose lease expired; with the channel for notify_backlog.';
CREATE INDEX notify_outbox_expiry_idx ON notify_outbox (expires_at)
	WHERE status = 'pending' AND expires_at IS NOT NULL;
COMMENT ON INDEX notify_outbox_expiry_idx IS 'Finds pending rows whose time ran out.';

SELECT pg_catalog.pg_extension_config_dump('notify_outbox', '');
SELECT pg_catalog.pg_extension_config_dump('notify_outbox_id_seq', '');

CREATE FUNCTION notify_outbox_wake() RETURNS trigger
	AS 'MODULE_PATHNAME', 'notify_outbox_wake'
	LANGUAGE C;
COMMENT ON FUNCTION notify_outbox_wake() IS
	'Statement trigger: marks the transaction so that its COMMIT wakes the delivery worker.';
CREATE TRIGGER notify_outbox_wake BEFORE INSERT OR UPDATE ON notify_outbox
	FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox_wake();
COMMENT ON TRIGGER notify_outbox_wake ON notify_outbox IS
	'Wakes the worker when the writing transaction commits (no NOTIFY, no effect on abort).';

-- ---- enqueue ----
-- Quote a caller's value for an error message: JSON string syntax shows
-- CR, LF and other control characters as escapes.
CREATE FUNCTION notify_quote(value text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN to_json(left(value, 200))::text;
COMMENT ON FUNCTION notify_quote(text) IS
	'Quotes a value for an error message, control characters escaped and cut to 200 characters.';

CREATE FUNCTION notify_enqueue(
	template_key text,
	recipient text,
	payload jsonb DEFAULT '{}',
	channel text DEFAULT 'email',
	category text DEFAULT NULL,
	dedup_key text DEFAULT NULL,
	send_at timestamptz DEFAULT NULL,
	locale text DEFAULT NULL,
	priority integer DEFAULT NULL,
	actor text DEFAULT NULL,
	metadata jsonb DEFAULT '{}',
	expires_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE C
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS 'MODULE_PATHNAME', 'notify_enqueue';
-- In C (src/enqueue.c): it runs in every notifying business transaction.
-- It checks the arguments (clear errors, SQLSTATE 22023 or 22004), the
-- channel and what its kind needs of the recipient, resolves the template
-- version and locale (email needs a template; other kinds use one when the
-- key has one), the category, then preferences and suppressions
-- (notify_decide: a message that must not go out is stored skipped, with
-- the reason, and audited), and inserts the row as INSERT ... ON CONFLICT
-- (dedup_key) DO NOTHING would, without an executor statement
-- (src/direct_insert.c); a key that exists returns the existing row's id and is
-- audited as deduplicated.
COMMENT ON FUNCTION notify_enqueue(text, text, jsonb, text, text, text, timestamptz, text, integer, text, jsonb, timestamptz) IS
	'Enqueues one notification in the caller''s transaction and returns its outbox id; with a dedup_key already present, returns the existing id and adds nothing.';

CREATE FUNCTION notify_enqueue_many(
	template_key text,
	recipients text[],
	payload jsonb DEFAULT '{}',
	channel text DEFAULT 'email',
	category text DEFAULT NULL,
	dedup_key text DEFAULT NULL,
	send_at timestamptz DEFAULT NULL,
	locale text DEFAULT NULL,
	priority integer DEFAULT NULL,
	actor text DEFAULT NULL,
	metadata jsonb DEFAULT '{}',
	expires_at timestamptz DEFAULT NULL)
RETURNS TABLE (recipient text, id bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
	IF recipients IS NULL THEN
		RAISE EXCEPTION 'recipients must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	RETURN QUERY
		SELECT r.recipient,
			   notify_enqueue(template_key, r.recipient, payload, channel, category,
							  dedup_key || ':' || r.recipient, send_at, locale,
							  priority, actor, metadata, expires_at)
		FROM unnest(recipients) WITH ORDINALITY AS r(recipient, n)
		ORDER BY r.n;
END;
$$;
COMMENT ON FUNCTION notify_enqueue_many(text, text[], jsonb, text, text, text, timestamptz, text, integer, text, jsonb, timestamptz) IS
	'Enqueues the same notification for many recipients in one call; each row''s dedup key is dedup_key:recipient. Returns one (recipient, id) per element, in order.';

-- ---- admin views ----
CREATE VIEW notify_queue AS
	SELECT o.channel,
		   o.status,
		   count(*) AS messages,
		   count(*) FILTER (WHERE o.status = 'pending' AND o.next_attempt_at <= now()) AS due,
		   now() - min(o.created_at) AS oldest_age,
		   min(o.next_attempt_at) FILTER (WHERE o.status = 'pending') AS next_due_at
	FROM notify_outbox o
	GROUP BY o.channel, o.status
	ORDER BY o.channel, o.status;
COMMENT ON VIEW notify_queue IS
	'Outbox at a glance: messages per channel and status, how many are due, the age of the oldest.';

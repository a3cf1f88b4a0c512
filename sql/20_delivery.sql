-- notify: delivery history, the worker's status, and admin actions on
-- outbox rows.

-- ---- attempts (delivery history) ----
-- Partitioned by history_created_at: the attempts of notifications still in
-- the outbox live in notify_attempts_hot (key 'infinity', the default, so
-- the worker's INSERT need not name it); when notify_archive moves a
-- notification to notify_history, its attempts move to the partition with
-- the bounds of its history partition (notify_attempts_<suffix> beside
-- notify_history_<suffix>: a day, week or month, notify.history_partition),
-- so notify_purge drops a range's attempts with its history partition
-- instead of deleting them row by row (sql/85_retention.sql).
CREATE TABLE notify_attempts (
	id			bigint GENERATED ALWAYS AS IDENTITY,
	outbox_id	bigint NOT NULL,
	attempt		integer NOT NULL,
	started_at	timestamptz NOT NULL,
	finished_at timestamptz NOT NULL,
	duration	interval GENERATED ALWAYS AS (finished_at - started_at) STORED,
	outcome		text NOT NULL
				CONSTRAINT notify_attempts_outcome_check CHECK (outcome IN ('sent', 'transient', 'permanent')),
	response_code integer,
	enhanced_status text,
	response_text text,
	error		text,
	provider_message_id text,
	history_created_at timestamptz NOT NULL DEFAULT 'infinity',
	CONSTRAINT notify_attempts_pkey PRIMARY KEY (id, history_created_at)
) PARTITION BY RANGE (history_created_at);
COMMENT ON TABLE notify_attempts IS
	'Delivery history: one row per delivery attempt of an outbox row, written by the worker. Partitioned: attempts of notifications in the outbox are in notify_attempts_hot, those of archived ones in notify_attempts_<suffix> (for example notify_attempts_2026_11_28) with the bounds of notify_history_<suffix>.';
COMMENT ON CONSTRAINT notify_attempts_pkey ON notify_attempts IS
	'Identity (a partitioned table''s key must include its partition key; id alone is unique too, it comes from one sequence).';
COMMENT ON SEQUENCE notify_attempts_id_seq IS 'Generates notify_attempts.id.';
COMMENT ON COLUMN notify_attempts.id IS 'Identity.';
COMMENT ON COLUMN notify_attempts.outbox_id IS 'The notify_outbox row attempted (in notify_history once archived, same id).';
COMMENT ON COLUMN notify_attempts.attempt IS 'Attempt number of that row, from 1.';
COMMENT ON COLUMN notify_attempts.started_at IS 'When the worker started the send.';
COMMENT ON COLUMN notify_attempts.finished_at IS 'When the send ended (accepted, refused, or timed out).';
COMMENT ON COLUMN notify_attempts.duration IS 'finished_at - started_at.';
COMMENT ON COLUMN notify_attempts.outcome IS 'sent, transient (will be retried unless attempts are used up) or permanent.';
COMMENT ON COLUMN notify_attempts.response_code IS 'Server reply code (SMTP 250, 451, 550, ...), NULL when none came.';
COMMENT ON COLUMN notify_attempts.enhanced_status IS 'RFC 3463 enhanced status code of the reply (2.0.0, 5.1.1, ...).';
COMMENT ON COLUMN notify_attempts.response_text IS 'Last reply line of the server.';
COMMENT ON COLUMN notify_attempts.error IS 'Why the attempt failed, NULL when sent.';
COMMENT ON COLUMN notify_attempts.provider_message_id IS 'Queue id the server gave the accepted message.';
COMMENT ON COLUMN notify_attempts.history_created_at IS
	'Partition key: infinity while the notification is in notify_outbox; its created_at once notify_archive moved it to notify_history (the attempt then sits in the partition with the bounds of its notification''s notify_history partition).';
CREATE TABLE notify_attempts_hot PARTITION OF notify_attempts FOR VALUES FROM ('infinity') TO (MAXVALUE);
COMMENT ON TABLE notify_attempts_hot IS
	'notify_attempts of notifications still in notify_outbox (history_created_at = infinity); the worker writes here.';
CREATE INDEX notify_attempts_outbox_idx ON notify_attempts (outbox_id, attempt);
COMMENT ON INDEX notify_attempts_outbox_idx IS 'Attempts of one outbox row, in order.';
SELECT pg_catalog.pg_extension_config_dump('notify_attempts_hot', '');
SELECT pg_catalog.pg_extension_config_dump('notify_attempts_id_seq', '');

-- ---- the worker ----
CREATE FUNCTION notify_worker_status(
	OUT pid integer,
	OUT database text,
	OUT state text,
	OUT started_at timestamptz,
	OUT batches bigint,
	OUT sent bigint,
	OUT failed bigint,
	OUT retried bigint,
	OUT in_flight integer,
	OUT last_error text,
	OUT worker integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'notify_worker_status'
LANGUAGE C VOLATILE ROWS 1;
COMMENT ON FUNCTION notify_worker_status() IS
	'Status of the delivery workers from shared memory, a row each (notify.workers); see the notify_worker_status view.';

CREATE VIEW notify_worker_status AS SELECT * FROM notify_worker_status();
COMMENT ON VIEW notify_worker_status IS
	'The delivery workers, a row each (notify.workers; worker 0 also archives and expires): pid, database served, state, start time, and counters since it started (batches claimed, sent, failed, retried, in flight, last error).';

-- A claim writes nothing to the outbox row: the worker keeps the ids of
-- the rows it holds (claimed, outcome not yet recorded) in memory and in
-- shared memory (src/inflight.c).  Such a row is 'pending' in the table
-- and "sending" for everything that asks these functions.
CREATE FUNCTION notify_in_flight(id bigint) RETURNS boolean
AS 'MODULE_PATHNAME', 'notify_in_flight'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION notify_in_flight(bigint) IS
	'True while a delivery worker holds outbox row id: claimed and being sent, its outcome not yet recorded (the row is then pending in the table).';
-- STABLE, so that "id = ANY (notify_in_flight_ids())" is a primary-key
-- index condition, read once per statement (notify_backlog); as VOLATILE
-- it was a filter that read every pending row.
CREATE FUNCTION notify_in_flight_ids() RETURNS bigint[]
AS 'MODULE_PATHNAME', 'notify_in_flight_ids'
LANGUAGE C STABLE;
COMMENT ON FUNCTION notify_in_flight_ids() IS
	'Ids of the outbox rows the delivery workers hold now (claimed, outcome not yet recorded).';

-- ---- admin actions ----
CREATE FUNCTION notify_retry(id bigint) RETURNS boolean
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	v_status text;
BEGIN
	IF id IS NULL THEN
		RAISE EXCEPTION 'id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT o.status INTO v_status FROM notify_outbox o WHERE o.id = notify_retry.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'notification % does not exist', id USING ERRCODE = 'no_data_found';
	END IF;
	-- the row is locked: a claim cannot take it now, and one that did is in the registry
	IF v_status = 'pending' AND notify_in_flight(id) THEN
		v_status := 'sending';
	END IF;
	IF v_status IN ('sent', 'sending') THEN
		RAISE EXCEPTION 'notification % is %, it cannot be retried', id, v_status
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	UPDATE notify_outbox o
	SET status = 'pending',
		next_attempt_at = now(),
		max_attempts = o.attempts + coalesce((SELECT c.default_max_attempts FROM notify_categories c WHERE c.name = o.category), 5)
	WHERE o.id = notify_retry.id;
	RETURN true;
END;
$$;
COMMENT ON FUNCTION notify_retry(bigint) IS
	'Makes a failed, skipped, canceled or pending notification due now, with a fresh budget of attempts.';

CREATE FUNCTION notify_cancel(id bigint) RETURNS boolean
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	v_status text;
BEGIN
	IF id IS NULL THEN
		RAISE EXCEPTION 'id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT o.status INTO v_status FROM notify_outbox o WHERE o.id = notify_cancel.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'notification % does not exist', id USING ERRCODE = 'no_data_found';
	ELSIF v_status = 'canceled' THEN
		RETURN false;
	END IF;
	-- the row is locked: a claim cannot take it now, and one that did is in the registry
	IF v_status = 'pending' AND notify_in_flight(id) THEN
		v_status := 'sending';
	END IF;
	IF v_status <> 'pending' THEN
		RAISE EXCEPTION 'notification % is %, only pending notifications can be canceled', id, v_status
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	UPDATE notify_outbox o SET status = 'canceled' WHERE o.id = notify_cancel.id;
	RETURN true;
END;
$$;
COMMENT ON FUNCTION notify_cancel(bigint) IS
	'Cancels a pending notification; true if canceled now, false if it already was.';

CREATE FUNCTION notify_retry_failed(since timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	IF since IS NULL THEN
		RAISE EXCEPTION 'since must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	UPDATE notify_outbox o
	SET status = 'pending',
		next_attempt_at = now(),
		max_attempts = o.attempts + coalesce((SELECT c.default_max_attempts FROM notify_categories c WHERE c.name = o.category), 5)
	WHERE o.status = 'failed'
	  AND EXISTS (SELECT 1 FROM notify_attempts a WHERE a.outbox_id = o.id AND a.finished_at >= since);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END;
$$;
COMMENT ON FUNCTION notify_retry_failed(timestamptz) IS
	'Requeues every failed notification whose last attempts ended at or after since (an outage''s start); returns how many.';

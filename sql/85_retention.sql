-- notify: retention.  Finished rows (sent, failed, skipped, canceled,
-- expired) move from the hot outbox into notify_history, partitioned by
-- month of created_at, so the outbox stays small however long the system
-- runs and old months go with a cheap partition drop.
--
-- Dedup keys are unique within the hot outbox: a row keeps its key there
-- for notify.archive_after (default 7 days) after it was created, and a
-- duplicate enqueued later than that is a new notification.

CREATE TABLE notify_history (LIKE notify_outbox INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS)
	PARTITION BY RANGE (created_at);
ALTER TABLE notify_history ADD CONSTRAINT notify_history_pkey PRIMARY KEY (id, created_at);
COMMENT ON TABLE notify_history IS
	'Finished notifications moved out of notify_outbox (by the worker, after notify.archive_after), one partition per month of created_at (notify_history_YYYY_MM). Same columns as notify_outbox.';
CREATE INDEX notify_history_recipient_idx ON notify_history (recipient);
COMMENT ON INDEX notify_history_recipient_idx IS 'Finds a person''s notifications (support questions, erasure requests).';
CREATE INDEX notify_history_message_id_idx ON notify_history (message_id);
COMMENT ON INDEX notify_history_message_id_idx IS 'Matches bounce and complaint reports to notifications.';

-- The range a monthly partition (of notify_history or notify_attempts)
-- covers, read from its bound as the server stores it.
CREATE FUNCTION notify_partition_range(part regclass, OUT lower_bound timestamptz, OUT upper_bound timestamptz)
LANGUAGE sql STABLE STRICT
SET search_path = @extschema@, pg_temp
BEGIN ATOMIC
	SELECT m[1]::timestamptz, m[2]::timestamptz
	FROM pg_catalog.pg_class c,
		 LATERAL pg_catalog.regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
										 'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') AS m
	WHERE c.oid = part;
END;
COMMENT ON FUNCTION notify_partition_range(regclass) IS
	'Lower (inclusive) and upper (exclusive) bound of a notify_history or notify_attempts range partition; NULLs for one without both bounds (notify_attempts_hot ends at MAXVALUE).';

-- The partition for the month of ts, created if missing, and next to it the
-- notify_attempts partition with the same bounds: archived attempts go
-- there, so one purge drops both.
CREATE FUNCTION notify_history_partition(ts timestamptz) RETURNS regclass
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	m timestamptz := date_trunc('month', ts);
	name text := format('notify_history_%s', to_char(m, 'YYYY_MM'));
	aname text := format('notify_attempts_%s', to_char(m, 'YYYY_MM'));
	rel regclass := to_regclass(quote_ident(name));
	lo timestamptz;
	hi timestamptz;
BEGIN
	IF rel IS NULL THEN
		EXECUTE format('CREATE TABLE %I PARTITION OF notify_history FOR VALUES FROM (%L) TO (%L)',
					   name, m, m + interval '1 month');
		EXECUTE format('COMMENT ON TABLE %I IS %L', name,
					   format('notify_history rows created in %s.', to_char(m, 'YYYY-MM')));
		rel := to_regclass(quote_ident(name));
	END IF;
	IF to_regclass(quote_ident(aname)) IS NULL THEN
		-- exactly the history partition's bounds (which may have been made
		-- in another time zone than this session's)
		SELECT r.lower_bound, r.upper_bound INTO lo, hi FROM notify_partition_range(rel) r;
		EXECUTE format('CREATE TABLE %I PARTITION OF notify_attempts FOR VALUES FROM (%L) TO (%L)',
					   aname, lo, hi);
		EXECUTE format('COMMENT ON TABLE %I IS %L', aname,
					   format('notify_attempts of the notifications in %s (archived in notify_history, created in %s); dropped with it by notify_purge.',
							  name, to_char(m, 'YYYY-MM')));
	END IF;
	RETURN rel;
END;
$$;
COMMENT ON FUNCTION notify_history_partition(timestamptz) IS
	'Returns the notify_history partition holding the month of ts, creating it if missing, together with the notify_attempts partition of the same bounds (notify_attempts_YYYY_MM) that holds the attempts of its rows.';

CREATE FUNCTION notify_archive(batch_size integer DEFAULT 5000, older_than interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	cutoff timestamptz;
	m timestamptz;
	n bigint;
BEGIN
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION 'batch_size must be a positive integer' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	older_than := coalesce(older_than, current_setting('notify.archive_after')::interval);
	IF older_than < interval '0' THEN
		RAISE EXCEPTION 'older_than must not be negative' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	cutoff := now() - older_than;

	-- the partitions this batch needs
	FOR m IN
		SELECT DISTINCT date_trunc('month', c.created_at)
		FROM (SELECT o.created_at FROM notify_outbox o
			  WHERE o.created_at < cutoff
				AND o.status IN ('sent', 'failed', 'skipped', 'canceled', 'expired')
			  ORDER BY o.created_at LIMIT batch_size) c
	LOOP
		PERFORM notify_history_partition(m);
	END LOOP;

	-- the rows move to notify_history, their attempts from notify_attempts_hot
	-- to the partition of their month (an UPDATE of the partition key moves
	-- the row there)
	WITH moved AS (
		DELETE FROM notify_outbox o
		WHERE o.id IN (SELECT c.id FROM notify_outbox c
					   WHERE c.created_at < cutoff
						 AND c.status IN ('sent', 'failed', 'skipped', 'canceled', 'expired')
					   ORDER BY c.created_at LIMIT batch_size
					   FOR UPDATE SKIP LOCKED)
		RETURNING o.*),
	archived AS (
		INSERT INTO notify_history SELECT * FROM moved RETURNING id, created_at),
	attempts_moved AS (
		UPDATE notify_attempts t SET history_created_at = a.created_at
		FROM archived a
		WHERE t.outbox_id = a.id AND t.history_created_at = 'infinity'
		RETURNING t.id)
	SELECT (SELECT count(*) FROM archived) INTO n;
	RETURN n;
END;
$$;
COMMENT ON FUNCTION notify_archive(integer, interval) IS
	'Moves up to batch_size finished notifications created more than older_than ago (default notify.archive_after) from notify_outbox to notify_history, and their attempts from notify_attempts_hot to the notify_attempts partition of the same month; returns how many notifications. The worker calls it every notify.archive_interval.';

-- All notifications, hot and archived, for questions about the past.
CREATE VIEW notify_all AS
	SELECT * FROM notify_outbox
	UNION ALL
	SELECT * FROM notify_history;
COMMENT ON VIEW notify_all IS
	'Every notification: the hot outbox and the archived history.';

CREATE PROCEDURE notify_purge(older_than interval, batch_size integer DEFAULT 1000,
							  pause interval DEFAULT '10ms')
LANGUAGE plpgsql
-- no SET search_path: a procedure with SET clauses cannot COMMIT, so the
-- body names everything with its schema
AS $$
DECLARE
	cutoff timestamptz;
	p record;
	n bigint;
	dropped integer := 0;
	busy integer := 0;
	done boolean;
	deleted bigint := 0;
	attempts_deleted bigint := 0;
	batches integer := 0;
	last_id bigint;
	first_id bigint;
	next_id bigint;
	found_n bigint;
	pause_s float8;
BEGIN
	IF older_than IS NULL THEN
		RAISE EXCEPTION 'older_than must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF older_than <= interval '0' THEN
		RAISE EXCEPTION 'older_than must be a positive interval, not %', older_than
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF batch_size IS NULL THEN
		RAISE EXCEPTION 'batch_size must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF batch_size < 1 THEN
		RAISE EXCEPTION 'batch_size must be a positive integer, not %', batch_size
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF pause IS NULL THEN
		RAISE EXCEPTION 'pause must not be null (use interval ''0'' for none)' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF pause < interval '0' OR pause > interval '1 minute' THEN
		RAISE EXCEPTION 'pause must be between 0 and 1 minute, not %', pause
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	pause_s := extract(epoch FROM pause);
	cutoff := now() - older_than;

	-- Whole months older than the cutoff: drop their partitions, the
	-- history's and the attempts' of the same bounds together, in one
	-- transaction.  DROP needs an ACCESS EXCLUSIVE lock on notify_history
	-- and notify_attempts (not on the outbox: enqueues never wait for it),
	-- and while it waits for one, everyone else who wants them (the
	-- worker's archiving and recording of attempts, readers of notify_all)
	-- waits behind it.  So each try waits at most 50 ms for the locks;
	-- after 10 tries the month's rows are deleted in batches below instead,
	-- and the empty partitions go at the next purge.
	FOR p IN
		SELECT pg_catalog.string_agg(c.oid::regclass::text, ', ' ORDER BY i.inhparent::regclass::text DESC) AS parts,
			   max(r.upper_bound) AS upper_bound
		FROM pg_catalog.pg_inherits i
		JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
		CROSS JOIN LATERAL @extschema@.notify_partition_range(c.oid) r
		WHERE i.inhparent IN ('@extschema@.notify_history'::regclass, '@extschema@.notify_attempts'::regclass)
		  AND r.upper_bound IS NOT NULL
		GROUP BY r.lower_bound, r.upper_bound
		HAVING r.upper_bound <= cutoff
		ORDER BY r.lower_bound
	LOOP
		FOR try IN 1 .. 10 LOOP
			BEGIN
				PERFORM pg_catalog.set_config('lock_timeout', '50ms', true);
				EXECUTE format('DROP TABLE %s', p.parts);
				done := true;
			EXCEPTION WHEN lock_not_available THEN
				done := false;
			END;
			COMMIT;
			EXIT WHEN done;
			PERFORM pg_catalog.pg_sleep(0.1 * try);
		END LOOP;
		IF done THEN
			dropped := dropped + 1;
			PERFORM pg_catalog.pg_sleep(pause_s);
		ELSE
			busy := busy + 1;
		END IF;
	END LOOP;

	-- The month the cutoff falls in (and any month that stayed busy):
	-- delete in batches, committing between them and pausing after each
	-- commit, so the purge's WAL reaches the disk in small pieces with
	-- room for other commits in between.  Each batch continues in id order
	-- from where the last one stopped (through the primary keys), so no
	-- batch scans again past the rows deleted before it, and deletes the
	-- batch's id range through the primary key (a join with the batch, or
	-- id = ANY of its ids, was planned as a scan of the whole partition
	-- for batches of thousands).  A row archived into that range and
	-- before the cutoff while the purge runs goes with it, as it should.
	last_id := 0;
	LOOP
		SELECT pg_catalog.min(x.id), pg_catalog.max(x.id), pg_catalog.count(*) INTO first_id, next_id, found_n
		FROM (SELECT h.id FROM @extschema@.notify_history h
			  WHERE h.created_at < cutoff AND h.id > last_id
			  ORDER BY h.id LIMIT batch_size) x;
		IF found_n > 0 THEN
			DELETE FROM @extschema@.notify_history h
			WHERE h.id BETWEEN first_id AND next_id AND h.created_at < cutoff;
			GET DIAGNOSTICS n = ROW_COUNT;
			deleted := deleted + n;
			last_id := next_id;
		END IF;
		COMMIT;
		batches := batches + 1;
		EXIT WHEN found_n < batch_size;
		PERFORM pg_catalog.pg_sleep(pause_s);
	END LOOP;

	-- Their attempts: an archived attempt carries its notification's
	-- created_at (history_created_at), so those before the cutoff are
	-- exactly the attempts of purged notifications; only the partitions
	-- below the cutoff are read (attempts of the outbox, in
	-- notify_attempts_hot, have infinity).
	last_id := 0;
	LOOP
		SELECT pg_catalog.min(x.id), pg_catalog.max(x.id), pg_catalog.count(*) INTO first_id, next_id, found_n
		FROM (SELECT a.id FROM @extschema@.notify_attempts a
			  WHERE a.history_created_at < cutoff AND a.id > last_id
			  ORDER BY a.id LIMIT batch_size) x;
		IF found_n > 0 THEN
			DELETE FROM @extschema@.notify_attempts a
			WHERE a.id BETWEEN first_id AND next_id AND a.history_created_at < cutoff;
			GET DIAGNOSTICS n = ROW_COUNT;
			attempts_deleted := attempts_deleted + n;
			last_id := next_id;
		END IF;
		COMMIT;
		batches := batches + 1;
		EXIT WHEN found_n < batch_size;
		PERFORM pg_catalog.pg_sleep(pause_s);
	END LOOP;

	PERFORM @extschema@.notify_audit('purged', 'history',
		jsonb_build_object('older_than', older_than::text, 'cutoff', cutoff,
						   'batch_size', batch_size, 'pause', pause::text, 'batches', batches,
						   'partitions_dropped', dropped, 'partitions_busy', busy, 'rows_deleted', deleted,
						   'attempts_deleted', attempts_deleted));
	COMMIT;
END;
$$;
COMMENT ON PROCEDURE notify_purge(interval, integer, interval) IS
	'Deletes archived notifications and their attempts created more than older_than ago: whole months by dropping their notify_history and notify_attempts partitions together (waiting at most 50 ms at a time for the locks; a month still busy after 10 tries is emptied in batches instead), the rest in batches of batch_size in id order with a COMMIT and a sleep of pause after each. Takes no lock an enqueue waits for. CALL it outside a transaction block.';

-- The hashed form of an address, as kept after notify_forget_recipient.
CREATE FUNCTION notify_address_hash(address text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN 'sha256:' || encode(sha256(convert_to(notify_normalize_address(address), 'UTF8')), 'hex');
COMMENT ON FUNCTION notify_address_hash(text) IS
	'sha256:<hex> of the normalized address: what a suppression becomes when its person is forgotten, so the address stays suppressed without being stored.';

CREATE FUNCTION notify_forget_recipient(address text, actor text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	a text;
	h text;
	placeholder text;
	ids bigint[];
	result jsonb;
	n_outbox bigint;
	n_history bigint;
	n_attempts bigint;
	n_prefs bigint;
	n_supp bigint;
	n_audit bigint;
BEGIN
	IF address IS NULL OR btrim(address) = '' THEN
		RAISE EXCEPTION 'address must not be null or empty' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	a := notify_normalize_address(address);
	h := notify_address_hash(a);
	placeholder := 'forgotten-' || substr(h, 8, 16) || '@invalid';

	-- notifications: pending ones are canceled (not those the worker is
	-- sending: pending in the table, in its in-flight registry), all lose
	-- recipient, payload and metadata
	SELECT array_agg(o.id) INTO ids FROM notify_outbox o WHERE notify_normalize_address(o.recipient) = a;
	UPDATE notify_outbox o
	SET recipient = placeholder, payload = '{}', metadata = '{}', dedup_key = NULL,
		status = CASE WHEN o.status = 'pending' AND NOT notify_in_flight(o.id) THEN 'canceled' ELSE o.status END,
		last_error = CASE WHEN o.status = 'pending' AND NOT notify_in_flight(o.id) THEN 'canceled: recipient forgotten'
						  ELSE NULL END
	WHERE o.id = ANY (coalesce(ids, '{}'));
	GET DIAGNOSTICS n_outbox = ROW_COUNT;
	UPDATE notify_history h2
	SET recipient = placeholder, payload = '{}', metadata = '{}', dedup_key = NULL, last_error = NULL
	WHERE h2.recipient = address OR h2.recipient = a;
	GET DIAGNOSTICS n_history = ROW_COUNT;
	-- server replies may quote the address
	UPDATE notify_attempts t SET response_text = NULL, error = NULL
	WHERE t.outbox_id = ANY (coalesce(ids, '{}'))
	   OR t.outbox_id IN (SELECT h3.id FROM notify_history h3 WHERE h3.recipient = placeholder);
	GET DIAGNOSTICS n_attempts = ROW_COUNT;

	DELETE FROM notify_preferences p WHERE p.recipient = a;
	GET DIAGNOSTICS n_prefs = ROW_COUNT;
	-- a suppression stays, hashed: the address must still not be mailed
	UPDATE notify_suppressions s SET address = h, detail = NULL WHERE s.address = a;
	GET DIAGNOSTICS n_supp = ROW_COUNT;
	-- audit rows naming the address (this function runs as the log's owner)
	UPDATE notify_audit_log l
	SET object = CASE WHEN l.object = 'recipient:' || a THEN 'recipient:' || h ELSE l.object END,
		detail = l.detail - 'recipient' - 'address' #- '{filter,recipient}'
	WHERE l.object = 'recipient:' || a OR l.detail ->> 'recipient' = a OR l.detail ->> 'address' = a
	   OR l.detail -> 'filter' ->> 'recipient' = a;
	GET DIAGNOSTICS n_audit = ROW_COUNT;

	result := jsonb_build_object('outbox', n_outbox, 'history', n_history, 'attempts', n_attempts,
								 'preferences', n_prefs, 'suppressions_hashed', n_supp, 'audit_rows', n_audit);
	PERFORM notify_audit('forgotten', 'recipient:' || h, result, actor);
	RETURN result;
END;
$$;
COMMENT ON FUNCTION notify_forget_recipient(text, text) IS
	'Erasure request: cancels the person''s pending notifications and removes their address, payloads and metadata from the outbox, history and attempt replies, deletes their preferences, keeps suppressions only as a hash, anonymises audit rows, and audits that it happened. Returns what was changed.';

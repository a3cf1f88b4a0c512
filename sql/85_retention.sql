-- notify: retention.  Finished rows (sent, failed, skipped, canceled,
-- expired) move from the hot outbox into notify_history, partitioned by
-- range of created_at (a day, week or month each, notify.history_partition),
-- so the outbox stays small however long the system runs and old history
-- goes with cheap partition drops, one small partition at a time.
--
-- Dedup keys are unique within the hot outbox: a row keeps its key there
-- for notify.archive_after (default 7 days) after it was created, and a
-- duplicate enqueued later than that is a new notification.

CREATE TABLE notify_history (LIKE notify_outbox INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS)
	PARTITION BY RANGE (created_at);
ALTER TABLE notify_history ADD CONSTRAINT notify_history_pkey PRIMARY KEY (id, created_at);
COMMENT ON TABLE notify_history IS
	'Finished notifications moved out of notify_outbox (by the worker, after notify.archive_after), partitioned by range of created_at: one partition per month (notify_history_YYYY_MM, the default), ISO week (notify_history_IYYY_wIW) or day (notify_history_YYYY_MM_DD) as notify.history_partition says, or a clipped range (notify_history_<from>_to_<to>) where one made with another setting is in the way. Same columns as notify_outbox.';
CREATE INDEX notify_history_recipient_idx ON notify_history (recipient);
COMMENT ON INDEX notify_history_recipient_idx IS 'Finds a person''s notifications (support questions, erasure requests).';
CREATE INDEX notify_history_message_id_idx ON notify_history (message_id);
COMMENT ON INDEX notify_history_message_id_idx IS 'Matches bounce and complaint reports to notifications.';

-- The range a partition (of notify_history or notify_attempts) covers,
-- read from its bound as the server stores it.
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

-- The partition holding ts, created if missing, and next to it the
-- notify_attempts partition with the same bounds: archived attempts go
-- there, so one purge drops both.  A new partition covers the day, ISO
-- week or month of ts (notify.history_partition, in the session's time
-- zone), clipped to the gap between the existing partitions around ts:
-- the setting can change on a live system, and partitions made before
-- keep their ranges.  Names say the range: notify_history_2026_11_28
-- (day), notify_history_2026_w48 (week), notify_history_2026_11 (month),
-- notify_history_2026_11_28_to_2026_12_01 (clipped; a bound that is not a
-- midnight gets _HHMMSS), and the same in UTC with _utc if that name is
-- taken (a partition made in another time zone); the attempts partition
-- has the same suffix.  The bounds, not the names, are what counts: they
-- are read back with notify_partition_range.
CREATE FUNCTION notify_history_partition(ts timestamptz) RETURNS regclass
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	-- NULL when the library is not loaded in this session (no preload):
	-- the default then
	g text := coalesce(current_setting('notify.history_partition', true), 'month');
	period interval;
	lo timestamptz;
	hi timestamptz;
	clo timestamptz;
	chi timestamptz;
	suffix text;
	hname text;
	aname text;
	rel regclass;
BEGIN
	IF ts IS NULL THEN
		RAISE EXCEPTION 'ts must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT isfinite(ts) THEN
		RAISE EXCEPTION 'ts must be a finite timestamp, not %', ts USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- a placeholder set before the library was loaded is not checked by it
	IF g NOT IN ('day', 'week', 'month') THEN
		RAISE EXCEPTION 'invalid value for parameter "notify.history_partition": "%"', g
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Available values: day, week, month.';
	END IF;
	period := pg_catalog.make_interval(days => CASE g WHEN 'day' THEN 1 WHEN 'week' THEN 7 ELSE 0 END,
									   months => CASE g WHEN 'month' THEN 1 ELSE 0 END);
	lo := date_trunc(g, ts);
	hi := lo + period;
	suffix := CASE g WHEN 'day' THEN to_char(lo, 'YYYY_MM_DD')
					 WHEN 'week' THEN to_char(lo, 'IYYY_"w"IW')
					 ELSE to_char(lo, 'YYYY_MM') END;

	-- usually the partition of ts's period exists under its name
	rel := to_regclass(quote_ident('notify_history_' || suffix));
	IF rel IS NULL OR NOT EXISTS (SELECT 1 FROM notify_partition_range(rel) r
								  WHERE ts >= r.lower_bound AND ts < r.upper_bound) THEN
		-- else any partition holding ts (made with another setting or in
		-- another time zone)
		SELECT i.inhrelid::regclass INTO rel
		FROM pg_inherits i CROSS JOIN LATERAL notify_partition_range(i.inhrelid) r
		WHERE i.inhparent = 'notify_history'::regclass
		  AND ts >= r.lower_bound AND ts < r.upper_bound;
	END IF;

	IF rel IS NULL THEN
		-- no partition holds ts, so every partition ends at or before ts or
		-- starts after it: clip the period to the gap between the nearest
		-- ones (GREATEST and LEAST skip the NULLs of no neighbour)
		SELECT greatest(lo, max(r.upper_bound) FILTER (WHERE r.upper_bound <= ts)),
			   least(hi, min(r.lower_bound) FILTER (WHERE r.lower_bound > ts))
		INTO clo, chi
		FROM pg_inherits i CROSS JOIN LATERAL notify_partition_range(i.inhrelid) r
		WHERE i.inhparent IN ('notify_history'::regclass, 'notify_attempts'::regclass);
		IF clo <> lo OR chi <> hi THEN
			lo := clo;
			hi := chi;
			suffix := to_char(lo, 'YYYY_MM_DD') || CASE WHEN lo = date_trunc('day', lo) THEN '' ELSE to_char(lo, '"_"HH24MISS') END
				|| '_to_' || to_char(hi, 'YYYY_MM_DD') || CASE WHEN hi = date_trunc('day', hi) THEN '' ELSE to_char(hi, '"_"HH24MISS') END;
		END IF;
		IF to_regclass(quote_ident('notify_history_' || suffix)) IS NOT NULL
		   OR to_regclass(quote_ident('notify_attempts_' || suffix)) IS NOT NULL THEN
			-- the name is taken by another range (made in another time zone)
			suffix := to_char(lo AT TIME ZONE 'UTC', 'YYYY_MM_DD_HH24MISS') || '_to_'
				|| to_char(hi AT TIME ZONE 'UTC', 'YYYY_MM_DD_HH24MISS') || '_utc';
		END IF;
		hname := 'notify_history_' || suffix;
		EXECUTE format('CREATE TABLE %I PARTITION OF notify_history FOR VALUES FROM (%L) TO (%L)',
					   hname, lo, hi);
		EXECUTE format('COMMENT ON TABLE %I IS %L', hname,
					   format('notify_history rows created from %s (inclusive) to %s (exclusive).', lo, hi));
		rel := to_regclass(quote_ident(hname));
	END IF;

	-- its attempts partition: the same suffix, exactly the history
	-- partition's bounds (which may have been made in another time zone
	-- than this session's)
	SELECT c.relname INTO hname FROM pg_class c WHERE c.oid = rel;
	aname := 'notify_attempts_' || substr(hname, length('notify_history_') + 1);
	IF to_regclass(quote_ident(aname)) IS NULL THEN
		SELECT r.lower_bound, r.upper_bound INTO lo, hi FROM notify_partition_range(rel) r;
		EXECUTE format('CREATE TABLE %I PARTITION OF notify_attempts FOR VALUES FROM (%L) TO (%L)',
					   aname, lo, hi);
		EXECUTE format('COMMENT ON TABLE %I IS %L', aname,
					   format('notify_attempts of the notifications in %s (archived in notify_history, created from %s to %s); dropped with it by notify_purge.',
							  hname, lo, hi));
	END IF;
	RETURN rel;
END;
$$;
COMMENT ON FUNCTION notify_history_partition(timestamptz) IS
	'Returns the notify_history partition holding ts, creating it if missing (the day, ISO week or month of ts as notify.history_partition says, clipped so it does not overlap existing partitions), together with the notify_attempts partition of the same bounds and suffix (notify_attempts_<suffix>) that holds the attempts of its rows.';

CREATE FUNCTION notify_archive(batch_size integer DEFAULT 5000, older_than interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	cutoff timestamptz;
	t timestamptz;
	part_lo timestamptz;
	part_hi timestamptz;
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

	-- the partitions this batch needs: walking its rows in created_at
	-- order, the partition of each row not in the last one's range (not one
	-- per date_trunc period: a partition clipped by one of an earlier
	-- setting covers only part of its period)
	FOR t IN
		SELECT o.created_at FROM notify_outbox o
		WHERE o.created_at < cutoff
		  AND o.status IN ('sent', 'failed', 'skipped', 'canceled', 'expired')
		ORDER BY o.created_at LIMIT batch_size
	LOOP
		IF part_hi IS NULL OR t < part_lo OR t >= part_hi THEN
			SELECT r.lower_bound, r.upper_bound INTO part_lo, part_hi
			FROM notify_partition_range(notify_history_partition(t)) r;
		END IF;
	END LOOP;

	-- the rows move to notify_history, their attempts from notify_attempts_hot
	-- to the partition of the same bounds (an UPDATE of the partition key
	-- moves the row there)
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
	'Moves up to batch_size finished notifications created more than older_than ago (default notify.archive_after) from notify_outbox to notify_history, and their attempts from notify_attempts_hot to the notify_attempts partition beside their notify_history partition (creating both as notify.history_partition says when missing); returns how many notifications. The worker calls it every notify.archive_interval.';

-- All notifications, hot and archived, for questions about the past.
CREATE VIEW notify_all AS
	SELECT * FROM notify_outbox
	UNION ALL
	SELECT * FROM notify_history;
COMMENT ON VIEW notify_all IS
	'Every notification: the hot outbox and the archived history.';

CREATE PROCEDURE notify_purge(older_than interval, batch_size integer DEFAULT 1000,
							  pause interval DEFAULT '10ms', drop_pause interval DEFAULT '5s')
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
	drop_pause_s float8;
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
	IF drop_pause IS NULL THEN
		RAISE EXCEPTION 'drop_pause must not be null (use interval ''0'' for none)' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF drop_pause < interval '0' OR drop_pause > interval '1 minute' THEN
		RAISE EXCEPTION 'drop_pause must be between 0 and 1 minute, not %', drop_pause
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	pause_s := extract(epoch FROM pause);
	drop_pause_s := extract(epoch FROM drop_pause);
	cutoff := now() - older_than;

	-- Every partition that ends at or before the cutoff: drop it, the
	-- history's and the attempts' of the same bounds together, each pair
	-- in a transaction of its own, oldest first, with a sleep of
	-- drop_pause after each.  Dropping writes next to no WAL, but the
	-- pair's files are freed at its COMMIT, and on ext4 with online
	-- discard the blocks freed since the journal's last commit are
	-- discarded at its next one (every 5 s): while that runs, concurrent
	-- WAL flushes stall, the longer the more was freed.  A month's pair at
	-- once (1.2 GB at 1.7 million notifications a month) stalled them for
	-- 245-507 ms, and so did a month of day pairs dropped 80 ms apart
	-- (up to 366 ms): all of them fell into one journal commit.  Five
	-- seconds apart, each journal commit frees one day's pair (measured:
	-- p99 at the baseline's, but single stalls of up to 335 ms remained;
	-- docs/benchmarks.md, "Purge under load", session 5).  History
	-- and attempts go in one statement so a range is never half dropped:
	-- splitting the pair would halve a piece that is already small.
	-- DROP needs an ACCESS EXCLUSIVE lock on notify_history and
	-- notify_attempts (not on the outbox: enqueues never wait for it), and
	-- while it waits for one, everyone else who wants them (the worker's
	-- archiving and recording of attempts, readers of notify_all) waits
	-- behind it.  So each try waits at most 50 ms for the locks; after 10
	-- tries the partition's rows are deleted in batches below instead, and
	-- the empty partitions go at the next purge.
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
			PERFORM pg_catalog.pg_sleep(drop_pause_s);
		ELSE
			busy := busy + 1;
		END IF;
	END LOOP;

	-- The partition the cutoff falls in (and any that stayed busy):
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
						   'batch_size', batch_size, 'pause', pause::text, 'drop_pause', drop_pause::text, 'batches', batches,
						   'partitions_dropped', dropped, 'partitions_busy', busy, 'rows_deleted', deleted,
						   'attempts_deleted', attempts_deleted));
	COMMIT;
END;
$$;
COMMENT ON PROCEDURE notify_purge(interval, integer, interval, interval) IS
	'Deletes archived notifications and their attempts created more than older_than ago: every partition below the cutoff by dropping its notify_history and notify_attempts partitions together, one pair per transaction with a sleep of drop_pause after each, so that the file system frees one pair at a time (waiting at most 50 ms at a time for the locks; a pair still busy after 10 tries is emptied in batches instead), the rows of the partition the cutoff falls in in batches of batch_size in id order with a COMMIT and a sleep of pause after each. Takes no lock an enqueue waits for. CALL it outside a transaction block.';

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

-- The business table and the plain outbox of the producer benchmarks
-- (bench/producer.sh, bench/producer_instructions.sh, bench/preferences.sh):
-- every transaction inserts a ticket, then its outbox row.
CREATE TABLE tickets (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	requester	text NOT NULL,
	subject		text NOT NULL,
	body		text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now()
);
-- notify_outbox's columns (NOT NULLs and defaults), identity PK, unique
-- dedup_key; none of its CHECKs, partial indexes or trigger.
CREATE TABLE plain_outbox (LIKE notify_outbox INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE plain_outbox ADD PRIMARY KEY (id), ADD UNIQUE (dedup_key);

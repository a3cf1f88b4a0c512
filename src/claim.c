/*-------------------------------------------------------------------------
 *
 * claim.c
 *		The worker's SQL: find the extension, claim due outbox rows, record
 *		attempt outcomes, and take back rows whose lease expired.
 *
 * Every function here runs inside a transaction the worker opened, with
 * SPI connected and a snapshot pushed.  The statements are prepared once
 * per extension installation, schema-qualified with the schema the
 * extension was created in (found through pg_extension, never assumed),
 * and prepared again if the extension is dropped and created anew.
 *
 * The protocol: a claim locks up to N due pending rows, enters their ids
 * in the worker's in-flight registry (inflight.c) and commits before
 * anything is sent; it writes nothing to the outbox.  After sending, one
 * statement per group of finished jobs sets each row's new status,
 * attempts + 1 and Message-ID, and appends one notify_attempts row per
 * attempt; the ids leave the registry once that has committed.  A crash
 * between the two leaves the rows pending, and a worker claims them again
 * (the registry keeps two workers of one database off the same row).  Rows in 'sending' exist only
 * from versions that wrote the claim into the row: they are taken back at
 * start, or when their lease expires.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "channels.h"
#include "notify.h"
#include "worker.h"

static Oid	ext_oid = InvalidOid;
static Oid	outbox_relid = InvalidOid;	/* notify_outbox of that installation */
static Oid	ext_namespace = InvalidOid;
static char *ext_schema = NULL;	/* quoted, in TopMemoryContext */
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr suppress_plan = NULL;
static SPIPlanPtr skipped_plan = NULL;
static SPIPlanPtr release_expired_plan = NULL;
static SPIPlanPtr release_all_plan = NULL;
static SPIPlanPtr archive_plan = NULL;

static void forget_plans(void);
static SPIPlanPtr prepare(const char *sql, int nargs, Oid *argtypes, int cursor_options);
static Datum text_array(List *values);
static char *text_column(HeapTuple tup, TupleDesc desc, int fnumber);
static const char *enhanced_status(const char *reply, char *buf);

/*
 * True when the extension is installed in this database; prepares the
 * statements for its schema on first sight.
 *
 * Runs at the start of every worker transaction, so the usual case must be
 * cheap: once prepared, it only checks through the syscache that the
 * notify_outbox the statements were prepared for is still there, in the
 * extension's schema.  DROP EXTENSION drops that relation, and a new
 * CREATE EXTENSION creates another one (another OID), so either is seen
 * without a scan of pg_extension.
 */
bool
claim_extension_ready(void)
{
	Oid			oid;
	char	   *schema;
	char	   *nspname;
	char	   *q;
	Oid			claim_types[6] = {INT4OID, TEXTOID, TEXTARRAYOID, BOOLARRAYOID, BOOLARRAYOID, INT4ARRAYOID};
	Oid			record_types[15] = {INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID,
	INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, FLOAT8OID, FLOAT8OID, TEXTARRAYOID};
	Oid			suppress_types[3] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Oid			skipped_types[2] = {INT8ARRAYOID, TEXTARRAYOID};
	Oid			archive_types[1] = {INT4OID};

	if (OidIsValid(ext_oid) && OidIsValid(outbox_relid) &&
		get_rel_namespace(outbox_relid) == ext_namespace)
		return true;

	oid = get_extension_oid("notify", true);
	forget_plans();
	ext_oid = InvalidOid;
	outbox_relid = InvalidOid;
	if (!OidIsValid(oid))
		return false;

	q = psprintf("SELECT n.nspname FROM pg_catalog.pg_extension e "
				 "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
				 "WHERE e.oid = %u", oid);
	if (SPI_execute(q, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not find the schema of extension notify");
	nspname = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	schema = (char *) quote_identifier(nspname);

	/*
	 * The claim.  %%s is the schema.  $3 names the channels to take, in
	 * the order to take them (claim_due in worker.c: round robin), with,
	 * per channel, whether it is SMTP ($4), whether it is email ($5:
	 * smtp, http_email) and how many rows it may give ($6: the room in
	 * the batch, or a rate-limited channel's tokens); $1 is
	 * the room in all.  Which channels those are and their kinds the
	 * worker knows from its copy of notify_channels (channels.c, read
	 * again whenever a change commits).
	 *
	 * It writes nothing.  For each channel in turn (a nested loop over
	 * the array: one statement, one executor start), the LATERAL subquery
	 * walks that channel's range of notify_outbox_claim_idx (channel,
	 * priority DESC, next_attempt_at, id) in order, passes over the rows
	 * any worker holds already (notify_in_flight: a hash lookup in the
	 * worker, a probe of the shared set for the other workers' rows, see
	 * inflight.c) and locks due rows as the outer LIMIT pulls them, so no
	 * row is locked that is not claimed.  claim_jobs enters them in the
	 * in-flight registry before the transaction commits; a row stays
	 * pending until its outcome is recorded.  The rows of channels not
	 * named (paused, dropped, unknown), however many, are never read.
	 *
	 * Only rows of an SMTP channel get a Message-ID of ours, made from the
	 * row (id, creation time) and the cluster's system identifier, so that
	 * a retry and a duplicate after a crash carry the same one without its
	 * being written first; the record stores it.  Only rows of an email
	 * channel look up their category's unsubscribe_header (a primary-key
	 * probe).  The functions of the outer target list run only for the
	 * rows claimed.
	 *
	 * The claim runs with a generic plan (as a custom plan it was planned
	 * again at every execution, its LIMIT being a parameter: about 6% of
	 * the worker's CPU).
	 */
	claim_plan = prepare(psprintf(
								  "SELECT d.id, d.ord, d.recipient, d.template_key, d.payload,"
								  "   CASE WHEN d.message_id IS NULL AND d.smtp THEN"
								  "     d.id || '.' || substr(md5((SELECT s.system_identifier FROM pg_catalog.pg_control_system() s)"
								  "       || ':' || d.id || ':' || (extract(epoch FROM d.created_at) * 1000000)::bigint), 1, 20)"
								  "     || '@' || $2 ELSE d.message_id END,"
								  "   d.attempts + 1, d.max_attempts, d.locale, d.template_version,"
	/* preferences again, just before sending: an unsubscribe since enqueue counts */
								  "   %s.notify_decide(d.recipient, d.category, d.channel, d.metadata ->> 'tenant'),"
								  "   CASE WHEN d.email AND (SELECT cat.unsubscribe_header FROM %s.notify_categories cat"
								  "                          WHERE cat.name = d.category)"
								  "        THEN %s.notify_unsubscribe_url(d.recipient, d.category, d.metadata ->> 'tenant') END"
								  " FROM unnest($3, $4, $5, $6) WITH ORDINALITY AS ch(name, smtp, email, lim, ord)"
								  " CROSS JOIN LATERAL"
								  "     (SELECT o.id, o.channel, o.recipient, o.template_key, o.payload, o.message_id,"
								  "             o.created_at, o.attempts, o.max_attempts, o.locale, o.template_version,"
								  "             o.category, o.metadata, ch.ord, ch.smtp, ch.email"
								  "      FROM %s.notify_outbox o"
								  "      WHERE o.channel = ch.name AND o.status = 'pending' AND o.next_attempt_at <= now()"
								  "        AND (o.expires_at IS NULL OR o.expires_at > now())"
								  "        AND NOT %s.notify_in_flight(o.id)"
								  "      ORDER BY o.priority DESC, o.next_attempt_at, o.id"
								  "      LIMIT ch.lim"
								  "      FOR UPDATE OF o SKIP LOCKED) d"
								  " LIMIT $1",
								  schema, schema, schema, schema, schema),
						 6, claim_types, CURSOR_OPT_GENERIC_PLAN);

	/*
	 * The record: one array per column (unnest), the rare side effects
	 * (suppression after a 5.1.x failure, the audit of skipped rows) in
	 * statements of their own, run only when a group has such a row.
	 *
	 * It has one generic plan (planned afresh at every execution it cost
	 * about 0.7 ms, most of a record of a row or two), so its shape must
	 * not depend on statistics, which the generic plan knows nothing to
	 * correct (it takes the group for 10 rows):
	 * - The outbox rows are reached by primary key only, o.id = ANY ($1):
	 *   no more than the group's rows are read, whatever the table's size.
	 * - The guard that a row is as the claim saw it says "status IN
	 *   ('pending', 'sending')", not "status = 'pending'", which implies
	 *   the predicate of notify_outbox_claim_idx: with statistics taken
	 *   while nothing was pending, the planner read that whole index
	 *   (every pending row, 30 ms at 20,000) to hash it against the group.
	 *   A row in flight is pending; 'sending' rows exist only from older
	 *   versions (see above) and are never in flight.
	 * - claim_record plans it with nested loops off: under those same
	 *   statistics a nested loop rescanned the group for every outbox row
	 *   (50 ms for 256 rows).  A hash join of the group with the rows
	 *   found by primary key is linear in the group.
	 */
	record_plan = prepare(psprintf(
								   "WITH r AS ("
								   " SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $15)"
								   "   AS r(id, outcome, attempt, code, reply, error, provider_id,"
								   "        started, finished, retry_after, skip_reason, enhanced, message_id)),"
								   " upd AS ("
								   " UPDATE %s.notify_outbox o SET"
								   "   status = CASE r.outcome"
								   "     WHEN 'sent' THEN 'sent'"
								   "     WHEN 'permanent' THEN 'failed'"
								   "     WHEN 'skipped' THEN 'skipped'"
								   "     ELSE CASE WHEN r.attempt >= o.max_attempts THEN 'failed' ELSE 'pending' END END,"
								   "   attempts = CASE WHEN r.outcome = 'skipped' THEN o.attempts ELSE r.attempt END,"
								   "   message_id = coalesce(o.message_id, r.message_id),"
								   "   skip_reason = r.skip_reason,"
								   "   sent_at = CASE WHEN r.outcome = 'sent' THEN r.finished END,"
								   "   last_error = CASE WHEN r.outcome IN ('transient', 'permanent') THEN r.error ELSE o.last_error END,"
								   "   provider_message_id = coalesce(r.provider_id, o.provider_message_id),"
								   "   next_attempt_at = CASE r.outcome"
								   "     WHEN 'transient' THEN now() + make_interval(secs => greatest(coalesce(r.retry_after, 0),"
								   "       least($14, $13 * power(2, r.attempt - 1)) * (0.5 + random() * 0.5) / 1000.0))"
								   "     ELSE o.next_attempt_at END"
								   " FROM r WHERE o.id = r.id AND o.id = ANY ($1)"
								   "   AND o.status IN ('pending', 'sending') AND o.attempts = r.attempt - 1"
								   "   AND r.outcome <> 'released'"
								   " RETURNING o.status, o.next_attempt_at),"
								   " ins AS ("
								   " INSERT INTO %s.notify_attempts (outbox_id, attempt, started_at, finished_at,"
								   "   outcome, response_code, enhanced_status, response_text, error, provider_message_id)"
								   " SELECT r.id, r.attempt, r.started, r.finished,"
								   "   r.outcome, nullif(r.code, 0), r.enhanced, r.reply, r.error, r.provider_id"
								   " FROM r WHERE r.outcome NOT IN ('released', 'skipped'))"
								   " SELECT min(next_attempt_at) FILTER (WHERE status = 'pending') FROM upd",
								   schema, schema),
						  15, record_types, CURSOR_OPT_GENERIC_PLAN);
	/* a permanent 5.1.x SMTP failure: the address does not exist */
	suppress_plan = prepare(psprintf(
									 "SELECT count(%s.notify_suppress_from_failure(o.recipient, r.enhanced, r.reply))"
									 " FROM unnest($1, $2, $3) AS r(id, enhanced, reply)"
									 " JOIN %s.notify_outbox o ON o.id = r.id WHERE o.status = 'failed'",
									 schema, schema),
							3, suppress_types, 0);
	skipped_plan = prepare(psprintf(
									"SELECT count(%s.notify_audit('skipped', 'outbox:' || o.id,"
									"   jsonb_build_object('reason', r.skip_reason, 'category', o.category,"
									"                      'channel', o.channel, 'at', 'send')))"
									" FROM unnest($1, $2) AS r(id, skip_reason)"
									" JOIN %s.notify_outbox o ON o.id = r.id WHERE o.status = 'skipped'",
									schema, schema),
						   2, skipped_types, 0);

	release_expired_plan = prepare(psprintf(
											"WITH lease AS ("
											" UPDATE %s.notify_outbox SET status = 'pending', locked_until = NULL"
											" WHERE status = 'sending' AND locked_until < now() RETURNING 1),"
											" expiry AS ("
											" UPDATE %s.notify_outbox SET status = 'expired',"
											"   last_error = 'expired at ' || expires_at || ' before it could be sent'"
											" WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= now()"
											"   AND NOT %s.notify_in_flight(id)"
											" RETURNING 1)"
											" SELECT (SELECT count(*) FROM lease), (SELECT count(*) FROM expiry)",
											schema, schema, schema),
								   0, NULL, 0);
	archive_plan = prepare(psprintf("SELECT %s.notify_archive($1)", schema), 1, archive_types, 0);
	release_all_plan = prepare(psprintf(
										"UPDATE %s.notify_outbox SET status = 'pending', locked_until = NULL"
										" WHERE status = 'sending'",
										schema),
							   0, NULL, 0);

	if (ext_schema != NULL)
		pfree(ext_schema);
	ext_schema = MemoryContextStrdup(TopMemoryContext, schema);
	ext_namespace = get_namespace_oid(nspname, false);
	outbox_relid = get_relname_relid("notify_outbox", ext_namespace);
	if (!OidIsValid(outbox_relid))
		elog(ERROR, "extension notify has no table notify_outbox");
	ext_oid = oid;
	return true;
}

/* The extension's schema, quoted for SQL (after claim_extension_ready). */
const char *
claim_schema(void)
{
	Assert(ext_schema != NULL);
	return ext_schema;
}

/*
 * Return sending rows to pending: all of them (at worker start, when no
 * other worker can hold them) or those whose lease expired; in the latter
 * case also end pending rows whose expires_at passed as expired.  Returns
 * the number of rows taken back.
 */
int
claim_release_expired(bool all_sending)
{
	bool		isnull;

	if (all_sending)
	{
		if (SPI_execute_plan(release_all_plan, NULL, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not release claimed rows");
		return (int) SPI_processed;
	}
	/* also: pending rows whose expires_at passed end expired */
	if (SPI_execute_plan(release_expired_plan, NULL, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not release expired claims");
	return (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Move up to batch finished rows to notify_history; returns how many. */
int64
claim_archive(int batch)
{
	Datum		values[1];
	bool		isnull;
	Datum		d;

	values[0] = Int32GetDatum(batch);
	if (SPI_execute_plan(archive_plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not archive notifications");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * Claim up to max_jobs due rows from the n channels chs, taking at most
 * limits[i] from chs[i], the channels in that order; append them as jobs
 * allocated in the batch's memory context to jobs, count them per channel
 * in taken[], and return the list.
 */
List *
claim_jobs(List *jobs, int max_jobs, NotifyBatch *batch,
		   NotifyChannel **chs, const int *limits, int n, int *taken)
{
	Datum		values[6];
	Datum	   *names = palloc(sizeof(Datum) * n);
	Datum	   *smtp = palloc(sizeof(Datum) * n);
	Datum	   *email = palloc(sizeof(Datum) * n);
	Datum	   *lims = palloc(sizeof(Datum) * n);
	const char *domain = strrchr(notify_from_address, '@');
	uint64		i;

	for (int c = 0; c < n; c++)
	{
		names[c] = CStringGetTextDatum(chs[c]->name);
		smtp[c] = BoolGetDatum(strcmp(chs[c]->kind, "smtp") == 0);
		email[c] = BoolGetDatum(notify_kind_is_email(chs[c]->kind));
		lims[c] = Int32GetDatum(limits[c]);
		taken[c] = 0;
	}
	values[0] = Int32GetDatum(max_jobs);
	values[1] = CStringGetTextDatum(domain != NULL ? domain + 1 : "localhost");
	values[2] = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(smtp, n, BOOLOID, 1, true, TYPALIGN_CHAR));
	values[4] = PointerGetDatum(construct_array(email, n, BOOLOID, 1, true, TYPALIGN_CHAR));
	values[5] = PointerGetDatum(construct_array(lims, n, INT4OID, 4, true, TYPALIGN_INT));

	if (SPI_execute_plan(claim_plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim outbox rows");

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(batch->cxt);
		NotifyJob  *job = palloc0(sizeof(NotifyJob));
		bool		isnull;
		Datum		d;
		int			c;

		job->batch = batch;
		job->outbox_relid = outbox_relid;
		job->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		c = (int) DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull)) - 1;
		Assert(c >= 0 && c < n);
		job->ch = chs[c];
		job->channel = pstrdup(chs[c]->name);
		job->kind = pstrdup(chs[c]->kind);
		job->recipient = text_column(tup, desc, 3);
		job->template_key = text_column(tup, desc, 4);
		job->payload = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 5, &isnull));
		job->message_id = text_column(tup, desc, 6);
		job->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
		job->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
		job->locale = text_column(tup, desc, 9);
		d = SPI_getbinval(tup, desc, 10, &isnull);
		job->template_version = isnull ? 0 : DatumGetInt32(d);
		job->skip_reason = text_column(tup, desc, 11);
		job->unsubscribe_url = text_column(tup, desc, 12);
		if (job->skip_reason != NULL)
			job->outcome = NOTIFY_OUTCOME_SKIPPED;
		/* before the commit: from then on the row is ours */
		if (!inflight_add(job->id))
		{
			/* another worker's claim took it first (see inflight.c) */
			MemoryContextSwitchTo(old);
			continue;
		}
		jobs = lappend(jobs, job);
		batch->outstanding++;
		taken[c]++;
		MemoryContextSwitchTo(old);
	}
	return jobs;
}

/*
 * Record the outcome of finished jobs: new row status, retry time, and one
 * notify_attempts row each (none for released jobs).  Returns the earliest
 * retry time it scheduled, or 0.
 */
TimestampTz
claim_record(List *jobs)
{
	int			n = list_length(jobs);
	Datum	   *ids,
			   *attempts,
			   *codes,
			   *retry_after,
			   *started,
			   *finished;
	List	   *outcomes = NIL,
			   *replies = NIL,
			   *errors = NIL,
			   *provider_ids = NIL,
			   *skip_reasons = NIL,
			   *enhanced = NIL,
			   *message_ids = NIL;
	bool	   *retry_nulls;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		values[15];
	ListCell   *lc;
	int			i = 0;
	bool		isnull;
	Datum		next;
	int			guc_level;
	List	   *supp_ids = NIL,
			   *supp_enhanced = NIL,
			   *supp_replies = NIL,
			   *skip_ids = NIL,
			   *skip_why = NIL;
	static const char *const outcome_names[] = {
		[NOTIFY_OUTCOME_NONE] = "transient",
		[NOTIFY_OUTCOME_SENT] = "sent",
		[NOTIFY_OUTCOME_TRANSIENT] = "transient",
		[NOTIFY_OUTCOME_PERMANENT] = "permanent",
		[NOTIFY_OUTCOME_RELEASED] = "released",
		[NOTIFY_OUTCOME_SKIPPED] = "skipped",
	};

	if (jobs == NIL)
		return 0;

	ids = palloc(sizeof(Datum) * n);
	attempts = palloc(sizeof(Datum) * n);
	codes = palloc(sizeof(Datum) * n);
	retry_after = palloc(sizeof(Datum) * n);
	retry_nulls = palloc(sizeof(bool) * n);
	started = palloc(sizeof(Datum) * n);
	finished = palloc(sizeof(Datum) * n);
	foreach(lc, jobs)
	{
		NotifyJob  *job = lfirst(lc);
		char		status[16];
		const char *enh;

		/*
		 * Claimed from an outbox that was dropped since (DROP and CREATE
		 * EXTENSION): its id may now name another row.  Nothing to record.
		 */
		if (job->outbox_relid != outbox_relid)
			continue;

		ids[i] = Int64GetDatum(job->id);
		attempts[i] = Int32GetDatum(job->attempt);
		codes[i] = Int32GetDatum(job->response_code);
		retry_after[i] = Int32GetDatum(job->retry_after);
		retry_nulls[i] = job->retry_after <= 0;
		started[i] = TimestampTzGetDatum(job->started_at);
		finished[i] = TimestampTzGetDatum(job->finished_at);
		outcomes = lappend(outcomes, (char *) outcome_names[job->outcome]);
		replies = lappend(replies, job->reply[0] ? job->reply : NULL);
		errors = lappend(errors, job->error);
		provider_ids = lappend(provider_ids, job->provider_id);
		skip_reasons = lappend(skip_reasons, job->skip_reason);
		message_ids = lappend(message_ids, job->message_id);
		enh = enhanced_status(job->reply, status);
		enhanced = lappend(enhanced, enh ? pstrdup(enh) : NULL);
		i++;

		if (job->outcome == NOTIFY_OUTCOME_PERMANENT && job->kind != NULL &&
			strcmp(job->kind, "smtp") == 0 && enh != NULL && strncmp(enh, "5.1.", 4) == 0)
		{
			supp_ids = lappend(supp_ids, job);
			supp_enhanced = lappend(supp_enhanced, pstrdup(enh));
			supp_replies = lappend(supp_replies, job->reply);
		}
		if (job->outcome == NOTIFY_OUTCOME_SKIPPED)
		{
			skip_ids = lappend(skip_ids, job);
			skip_why = lappend(skip_why, job->skip_reason);
		}
	}

	n = i;
	if (n == 0)
		return 0;
	dims[0] = n;
	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = text_array(outcomes);
	values[2] = PointerGetDatum(construct_array(attempts, n, INT4OID, 4, true, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(codes, n, INT4OID, 4, true, TYPALIGN_INT));
	values[4] = text_array(replies);
	values[5] = text_array(errors);
	values[6] = text_array(provider_ids);
	values[7] = PointerGetDatum(construct_array(started, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[8] = PointerGetDatum(construct_array(finished, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[9] = PointerGetDatum(construct_md_array(retry_after, retry_nulls, 1, dims, lbs,
												   INT4OID, 4, true, TYPALIGN_INT));
	values[10] = text_array(skip_reasons);
	values[11] = text_array(enhanced);
	values[12] = Float8GetDatum((double) notify_retry_base);
	values[13] = Float8GetDatum((double) notify_retry_max_delay);
	values[14] = text_array(message_ids);

	/*
	 * The generic plan is made at the first execution after a prepare (or
	 * after an invalidation): nested loops are off for that, see
	 * claim_extension_ready.
	 */
	guc_level = NewGUCNestLevel();
	(void) set_config_option("enable_nestloop", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (SPI_execute_plan(record_plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record delivery outcomes");
	AtEOXact_GUC(false, guc_level);
	next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

	if (supp_ids != NIL)
	{
		Datum	   *sids = palloc(sizeof(Datum) * list_length(supp_ids));

		i = 0;
		foreach(lc, supp_ids)
			sids[i++] = Int64GetDatum(((NotifyJob *) lfirst(lc))->id);
		values[0] = PointerGetDatum(construct_array(sids, i, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = text_array(supp_enhanced);
		values[2] = text_array(supp_replies);
		if (SPI_execute_plan(suppress_plan, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not suppress failed recipients");
	}
	if (skip_ids != NIL)
	{
		Datum	   *sids = palloc(sizeof(Datum) * list_length(skip_ids));

		i = 0;
		foreach(lc, skip_ids)
			sids[i++] = Int64GetDatum(((NotifyJob *) lfirst(lc))->id);
		values[0] = PointerGetDatum(construct_array(sids, i, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = text_array(skip_why);
		if (SPI_execute_plan(skipped_plan, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not audit skipped notifications");
	}
	return isnull ? 0 : DatumGetTimestampTz(next);
}

/*
 * Prepare the statements again at the next transaction.  The worker calls
 * this once per poll interval: a plan is made from the outbox's size and
 * statistics at the time, and one made while the outbox was empty (just
 * truncated, vacuumed or archived) can read every pending row once a
 * backlog arrives (the claim's former CTE form hashed the due rows against
 * the whole outbox: 2.2 ms per message at 20,000 pending rows).  The claim
 * and the record no longer depend on that, but the lease, expiry and
 * archive statements still take their plans from the statistics.  Planning
 * again costs about a millisecond per interval.
 */
void
claim_replan(void)
{
	ext_oid = InvalidOid;
}

/* Drop prepared statements (the extension went away or changed). */
static void
forget_plans(void)
{
	SPIPlanPtr *plans[] = {&claim_plan, &record_plan, &suppress_plan,
	&skipped_plan, &release_expired_plan, &release_all_plan, &archive_plan};
	size_t		i;

	for (i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i] != NULL)
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
}

/*
 * Prepare a statement and keep it until the next claim_replan().
 * cursor_options: 0, or CURSOR_OPT_GENERIC_PLAN for a statement planned
 * once rather than at every execution.
 */
static SPIPlanPtr
prepare(const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * A text (or domain over text) column of an SPI result as a C string, NULL
 * for NULL: what SPI_getvalue gives, without its type output lookup and
 * call for every value.
 */
static char *
text_column(HeapTuple tup, TupleDesc desc, int fnumber)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, fnumber, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* A text[] of the strings in values (NULL pointers are NULL elements). */
static Datum
text_array(List *values)
{
	int			n = list_length(values);
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};
	ListCell   *lc;
	int			i = 0;

	foreach(lc, values)
	{
		char	   *v = lfirst(lc);

		nulls[i] = v == NULL;
		elems[i] = v ? CStringGetTextDatum(v) : (Datum) 0;
		i++;
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * The enhanced status code (RFC 3463) of an SMTP reply line such as
 * "550 5.1.1 no such user": "5.1.1" in buf, or NULL when the reply has
 * none.  What ^[0-9]{3}[ -]([245]\.[0-9]{1,3}\.[0-9]{1,3}) matches.
 */
static const char *
enhanced_status(const char *reply, char *buf)
{
	const char *p = reply;
	char	   *out = buf;
	int			part;

	if (reply == NULL || !isdigit((unsigned char) p[0]) || !isdigit((unsigned char) p[1]) ||
		!isdigit((unsigned char) p[2]) || (p[3] != ' ' && p[3] != '-'))
		return NULL;
	p += 4;
	if (*p != '2' && *p != '4' && *p != '5')
		return NULL;
	*out++ = *p++;
	for (part = 0; part < 2; part++)
	{
		int			digits = 0;

		if (*p != '.')
			return NULL;
		*out++ = *p++;
		while (isdigit((unsigned char) *p) && digits < 3)
		{
			*out++ = *p++;
			digits++;
		}
		if (digits == 0)
			return NULL;
	}
	*out = '\0';
	return buf;
}

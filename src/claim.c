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
 * The protocol: a claim moves up to N due rows from pending to sending
 * (attempts + 1, a lease in locked_until, a Message-ID that retries keep)
 * and commits before anything is sent.  After sending, one statement per
 * group of finished jobs sets each row's new status and appends one
 * notify_attempts row per attempt.  A crash between the two leaves rows in
 * sending: the next worker takes them back at start (it is the only
 * worker of its database) and a lease that expires does the same.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "notify.h"
#include "worker.h"

static Oid	ext_oid = InvalidOid;
static char *ext_schema = NULL;	/* quoted, in TopMemoryContext */
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr claim_channel_plan = NULL;
static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr release_expired_plan = NULL;
static SPIPlanPtr release_all_plan = NULL;
static SPIPlanPtr archive_plan = NULL;

static void forget_plans(void);
static SPIPlanPtr prepare(const char *sql, int nargs, Oid *argtypes);
static void append_json_string(StringInfo buf, const char *key, const char *value);
static double timestamptz_to_unix(TimestampTz t);

/*
 * True when the extension is installed in this database; prepares the
 * statements for its schema on first sight.
 */
bool
claim_extension_ready(void)
{
	Oid			oid = get_extension_oid("notify", true);
	char	   *schema;
	char	   *q;
	Oid			claim_types[4] = {INT4OID, FLOAT8OID, TEXTOID, TEXTARRAYOID};
	Oid			claim_channel_types[4] = {INT4OID, FLOAT8OID, TEXTOID, TEXTOID};
	const char *claim_sql;
	Oid			record_types[3] = {TEXTOID, FLOAT8OID, FLOAT8OID};
	Oid			archive_types[1] = {INT4OID};

	if (oid == ext_oid && OidIsValid(oid))
		return true;

	forget_plans();
	ext_oid = InvalidOid;
	if (!OidIsValid(oid))
		return false;

	q = psprintf("SELECT n.nspname FROM pg_catalog.pg_extension e "
				 "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
				 "WHERE e.oid = %u", oid);
	if (SPI_execute(q, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not find the schema of extension notify");
	schema = (char *) quote_identifier(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));

	/*
	 * The claim.  %%s is the schema; the channel condition (%%s at the end of
	 * the WHERE clause) differs between the general claim, which leaves out
	 * rate-limited channels, and the claim for one such channel.
	 */
	claim_sql =
		"WITH due AS ("
		" SELECT o.id FROM %s.notify_outbox o"
		" WHERE o.status = 'pending' AND o.next_attempt_at <= now()"
		"   AND (o.expires_at IS NULL OR o.expires_at > now())"
		"   AND o.channel IN (SELECT c.name FROM %s.notify_channels c WHERE c.enabled)"
		"   AND %s"
		" ORDER BY o.priority DESC, o.next_attempt_at, o.id"
		" LIMIT $1"
		" FOR UPDATE OF o SKIP LOCKED)"
		" UPDATE %s.notify_outbox o"
		" SET status = 'sending',"
		"     attempts = o.attempts + 1,"
		"     locked_until = now() + make_interval(secs => $2),"
		"     message_id = coalesce(o.message_id,"
		"         o.id || '.' || substr(md5(random()::text || clock_timestamp()::text), 1, 20) || '@' || $3)"
		" FROM due WHERE o.id = due.id"
		" RETURNING o.id, o.channel,"
		"   (SELECT c.kind FROM %s.notify_channels c WHERE c.name = o.channel),"
		"   o.recipient, o.template_key, o.payload, o.message_id, o.attempts, o.max_attempts,"
		"   o.locale, o.template_version,"
		/* preferences again, just before sending: an unsubscribe since enqueue counts */
		"   %s.notify_decide(o.recipient, o.category, o.channel, o.metadata ->> 'tenant'),"
		"   CASE WHEN (SELECT c.unsubscribe_header FROM %s.notify_categories c WHERE c.name = o.category)"
		"        THEN %s.notify_unsubscribe_url(o.recipient, o.category, o.metadata ->> 'tenant') END";
	claim_plan = prepare(psprintf(claim_sql, schema, schema, "o.channel <> ALL ($4)", schema, schema,
								  schema, schema, schema),
						 4, claim_types);
	claim_channel_plan = prepare(psprintf(claim_sql, schema, schema, "o.channel = $4", schema, schema,
										  schema, schema, schema),
								 4, claim_channel_types);

	record_plan = prepare(psprintf(
								   "WITH r AS ("
								   " SELECT *, substring(reply from '^[0-9]{3}[ -]([245]\\.[0-9]{1,3}\\.[0-9]{1,3})') AS enhanced"
								   " FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, outcome text,"
								   "   attempt integer, code integer, reply text, error text, provider_id text,"
								   "   started double precision, finished double precision, retry_after double precision,"
								   "   skip_reason text, kind text)),"
								   " upd AS ("
								   " UPDATE %s.notify_outbox o SET"
								   "   status = CASE r.outcome"
								   "     WHEN 'sent' THEN 'sent'"
								   "     WHEN 'permanent' THEN 'failed'"
								   "     WHEN 'released' THEN 'pending'"
								   "     WHEN 'skipped' THEN 'skipped'"
								   "     ELSE CASE WHEN o.attempts >= o.max_attempts THEN 'failed' ELSE 'pending' END END,"
								   "   attempts = CASE WHEN r.outcome IN ('released', 'skipped') THEN o.attempts - 1 ELSE o.attempts END,"
								   "   skip_reason = r.skip_reason,"
								   "   sent_at = CASE WHEN r.outcome = 'sent' THEN to_timestamp(r.finished) END,"
								   "   last_error = CASE WHEN r.outcome IN ('transient', 'permanent') THEN r.error ELSE o.last_error END,"
								   "   provider_message_id = coalesce(r.provider_id, o.provider_message_id),"
								   "   next_attempt_at = CASE r.outcome"
								   "     WHEN 'transient' THEN now() + make_interval(secs => greatest(coalesce(r.retry_after, 0),"
								   "       least($3, $2 * power(2, o.attempts - 1)) * (0.5 + random() * 0.5) / 1000.0))"
								   "     WHEN 'released' THEN now()"
								   "     ELSE o.next_attempt_at END,"
								   "   locked_until = NULL"
								   " FROM r WHERE o.id = r.id AND o.status = 'sending'"
								   " RETURNING o.id, o.status, o.next_attempt_at, o.recipient, o.category, o.channel),"
								   " ins AS ("
								   " INSERT INTO %s.notify_attempts (outbox_id, attempt, started_at, finished_at,"
								   "   outcome, response_code, enhanced_status, response_text, error, provider_message_id)"
								   " SELECT r.id, r.attempt, to_timestamp(r.started), to_timestamp(r.finished),"
								   "   r.outcome, nullif(r.code, 0), r.enhanced, r.reply, r.error, r.provider_id"
								   " FROM r WHERE r.outcome NOT IN ('released', 'skipped')),"
								   /* a permanent 5.1.x SMTP failure: the address does not exist */
								   " supp AS ("
								   " SELECT %s.notify_suppress_from_failure(u.recipient, r.enhanced, r.reply)"
								   " FROM upd u JOIN r ON r.id = u.id"
								   " WHERE r.outcome = 'permanent' AND r.kind = 'smtp' AND r.enhanced LIKE '5.1.%%'),"
								   " skipped AS ("
								   " SELECT %s.notify_audit('skipped', 'outbox:' || u.id,"
								   "   jsonb_build_object('reason', r.skip_reason, 'category', u.category, 'channel', u.channel, 'at', 'send'))"
								   " FROM upd u JOIN r ON r.id = u.id WHERE r.outcome = 'skipped')"
								   " SELECT min(next_attempt_at) FILTER (WHERE status = 'pending'),"
								   "   (SELECT count(*) FROM supp), (SELECT count(*) FROM skipped)"
								   " FROM upd",
								   schema, schema, schema, schema),
						  3, record_types);

	release_expired_plan = prepare(psprintf(
											"WITH lease AS ("
											" UPDATE %s.notify_outbox SET status = 'pending', locked_until = NULL"
											" WHERE status = 'sending' AND locked_until < now() RETURNING 1),"
											" expiry AS ("
											" UPDATE %s.notify_outbox SET status = 'expired',"
											"   last_error = 'expired at ' || expires_at || ' before it could be sent'"
											" WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= now()"
											" RETURNING 1)"
											" SELECT (SELECT count(*) FROM lease), (SELECT count(*) FROM expiry)",
											schema, schema),
								   0, NULL);
	archive_plan = prepare(psprintf("SELECT %s.notify_archive($1)", schema), 1, archive_types);
	release_all_plan = prepare(psprintf(
										"UPDATE %s.notify_outbox SET status = 'pending', locked_until = NULL"
										" WHERE status = 'sending'",
										schema),
							   0, NULL);

	if (ext_schema != NULL)
		pfree(ext_schema);
	ext_schema = MemoryContextStrdup(TopMemoryContext, schema);
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
 * Claim up to max_jobs due rows, append them as jobs allocated in the
 * batch's memory context to jobs, and return it.  With channel NULL, rows
 * of any channel except those in excluded (rate-limited ones, claimed
 * separately); otherwise rows of that channel only.
 */
List *
claim_jobs(List *jobs, int max_jobs, NotifyBatch *batch, const char *channel, List *excluded)
{
	Datum		values[4];
	const char *domain = strrchr(notify_from_address, '@');
	uint64		i;

	values[0] = Int32GetDatum(max_jobs);
	values[1] = Float8GetDatum((double) notify_lease_time);
	values[2] = CStringGetTextDatum(domain != NULL ? domain + 1 : "localhost");
	if (channel != NULL)
		values[3] = CStringGetTextDatum(channel);
	else
	{
		Datum	   *names = palloc(sizeof(Datum) * (list_length(excluded) + 1));
		int			n = 0;
		ListCell   *lc;

		foreach(lc, excluded)
			names[n++] = CStringGetTextDatum((char *) lfirst(lc));
		values[3] = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
	}

	if (SPI_execute_plan(channel != NULL ? claim_channel_plan : claim_plan,
						 values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim outbox rows");

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(batch->cxt);
		NotifyJob  *job = palloc0(sizeof(NotifyJob));
		bool		isnull;
		Datum		d;

		job->batch = batch;
		job->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		job->channel = SPI_getvalue(tup, desc, 2);
		job->kind = SPI_getvalue(tup, desc, 3);
		job->recipient = SPI_getvalue(tup, desc, 4);
		job->template_key = SPI_getvalue(tup, desc, 5);
		job->payload = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 6, &isnull));
		job->message_id = SPI_getvalue(tup, desc, 7);
		job->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
		job->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
		job->locale = SPI_getvalue(tup, desc, 10);
		d = SPI_getbinval(tup, desc, 11, &isnull);
		job->template_version = isnull ? 0 : DatumGetInt32(d);
		job->skip_reason = SPI_getvalue(tup, desc, 12);
		job->unsubscribe_url = SPI_getvalue(tup, desc, 13);
		if (job->skip_reason != NULL)
			job->outcome = NOTIFY_OUTCOME_SKIPPED;
		jobs = lappend(jobs, job);
		batch->outstanding++;
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
	StringInfoData buf;
	ListCell   *lc;
	Datum		values[3];
	bool		isnull;
	Datum		next;
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

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	foreach(lc, jobs)
	{
		NotifyJob  *job = lfirst(lc);

		if (buf.len > 1)
			appendStringInfoChar(&buf, ',');
		appendStringInfo(&buf, "{\"id\":" INT64_FORMAT ",\"attempt\":%d,\"code\":%d",
						 job->id, job->attempt, job->response_code);
		append_json_string(&buf, "outcome", outcome_names[job->outcome]);
		append_json_string(&buf, "reply", job->reply[0] ? job->reply : NULL);
		append_json_string(&buf, "error", job->error);
		append_json_string(&buf, "provider_id", job->provider_id);
		append_json_string(&buf, "skip_reason", job->skip_reason);
		append_json_string(&buf, "kind", job->kind);
		appendStringInfo(&buf, ",\"started\":%.6f,\"finished\":%.6f",
						 timestamptz_to_unix(job->started_at),
						 timestamptz_to_unix(job->finished_at));
		if (job->retry_after > 0)
			appendStringInfo(&buf, ",\"retry_after\":%d", job->retry_after);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoChar(&buf, ']');

	values[0] = CStringGetTextDatum(buf.data);
	values[1] = Float8GetDatum((double) notify_retry_base);
	values[2] = Float8GetDatum((double) notify_retry_max_delay);
	if (SPI_execute_plan(record_plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record delivery outcomes");
	next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	pfree(buf.data);
	return isnull ? 0 : DatumGetTimestampTz(next);
}

/* Drop prepared statements (the extension went away or changed). */
static void
forget_plans(void)
{
	SPIPlanPtr *plans[] = {&claim_plan, &claim_channel_plan, &record_plan, &release_expired_plan,
	&release_all_plan, &archive_plan};
	size_t		i;

	for (i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i] != NULL)
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
}

/* Prepare a statement and keep it for the life of the process. */
static SPIPlanPtr
prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* Append ,"key":"value" (or null) to a JSON object under construction. */
static void
append_json_string(StringInfo buf, const char *key, const char *value)
{
	appendStringInfo(buf, ",\"%s\":", key);
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, value);
}

/* Seconds since the Unix epoch, as to_timestamp() takes them. */
static double
timestamptz_to_unix(TimestampTz t)
{
	return (double) t / USECS_PER_SEC +
		(double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

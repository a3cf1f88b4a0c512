/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The delivery worker: a background worker that claims due outbox
 *		rows, sends them, and records what happened.
 *
 * One worker serves the database named by notify.database.  Its loop:
 *
 *	1. collect finished sends from libcurl (transfer.c);
 *	2. in one short transaction, record their outcomes and claim more due
 *	   rows if there is room (claim.c), then commit;
 *	3. build and start the new sends outside any transaction (smtp.c);
 *	4. wait on the latch, postmaster death and libcurl's sockets.
 *
 * Wake-ups: a committing backend that wrote to the outbox sets our latch
 * (wakeup.c); we also LISTEN on channel "notify" so that NOTIFY notify
 * from any tool wakes us; and we poll every notify.poll_interval and at
 * the earliest retry time we scheduled.
 *
 * SIGTERM: stop claiming, let in-flight sends finish for up to
 * notify.shutdown_timeout, release the rest back to pending, record, exit.
 * SIGHUP: reload settings.  An ERROR in a transaction ends the process;
 * the postmaster starts it again, and since the old worker's claims lived
 * only in its in-flight registry (inflight.c), the new worker finds those
 * rows pending and claims them again (delivery is at least once: those in
 * flight at that moment may be sent twice).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "channels.h"
#include "notify.h"
#include "template.h"
#include "worker.h"
#include "wakeup.h"

bool		notify_am_worker = false;
int			notify_worker_index = -1;

/* this worker's status in shared memory (notify_shared->workers[index]) */
static NotifyWorkerSlot *my_slot = NULL;

PGDLLEXPORT void notify_worker_main(Datum main_arg);

PG_FUNCTION_INFO_V1(notify_worker_status);

/*
 * Rows recorded in one statement at most; how old results must be to be
 * recorded in a claim's transaction, and how old to get one of their own;
 * how long a committed record may wait for the disk (see record_flush).
 */
#define RECORD_BATCH_MAX	256
#define RECORD_RIDE_MS		10
#define RECORD_DELAY_MS		20
#define RECORD_FLUSH_MS		50

static MemoryContext worker_cxt = NULL;
static List *finished = NIL;	/* jobs done, outcome not yet recorded */
static TimestampTz next_token_at = 0;	/* a rate-limited channel gets a token */
static int	claim_low_water = 0;	/* claim when no more jobs are in flight;
										 * set by claim_due */
static bool claim_left_channels = false;	/* set by claim_due: some enabled
											 * channel has no connection here */
static bool leases_due = false;	/* time to take back expired leases and rows */
static TimestampTz first_finished_at = 0;
static XLogRecPtr unflushed_lsn = InvalidXLogRecPtr;	/* end of the latest record commit */
static TimestampTz flush_due = 0;	/* when to flush it at the latest */

static void worker_exit(int code, Datum arg);
static void set_state(NotifyWorkerState state, const char *activity);
static bool run_transaction(bool claim, bool record, bool startup, List **claimed,
							TimestampTz *next_retry);
static List *claim_due(NotifyBatch *batch);
static void fill_content(NotifyJob *job);
static char *payload_text(Jsonb *payload, const char *key);
static void start_jobs(List *jobs);
static void account(List *jobs);
static void free_recorded(List *jobs);
static void shut_down(void);
static void archive(void);
static void record_flush(void);

/*
 * Register notify.workers delivery workers; called from _PG_init when
 * preloaded.  Worker 0 also does the housekeeping (archiving, expired
 * leases and messages); every worker claims, sends and records.
 */
void
notify_register_workers(void)
{
	BackgroundWorker worker;
	int			i;

	for (i = 0; i < notify_workers; i++)
	{
		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 2;
		worker.bgw_main_arg = Int32GetDatum(i);
		strlcpy(worker.bgw_library_name, "notify", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "notify_worker_main", BGW_MAXLEN);
		if (i == 0)
			strlcpy(worker.bgw_name, "notify worker", BGW_MAXLEN);
		else
			snprintf(worker.bgw_name, BGW_MAXLEN, "notify worker %d", i);
		strlcpy(worker.bgw_type, "notify worker", BGW_MAXLEN);
		RegisterBackgroundWorker(&worker);
	}
}

/*
 * This worker's share of a connection limit: limit / notify.workers,
 * the remainder going one each to the first workers; 0 for some workers
 * when the limit is below notify.workers.  Outside a worker, the limit.
 */
int
notify_connection_share(int limit)
{
	if (notify_worker_index < 0 || notify_workers <= 1)
		return limit;
	return limit / notify_workers + (notify_worker_index < limit % notify_workers ? 1 : 0);
}

/* Entry point of the worker process. */
void
notify_worker_main(Datum main_arg)
{
	bool		ready = false;
	bool		said_waiting = false;
	bool		work_hint = true;	/* there may be due rows to claim */
	bool		last_claim_full = false;	/* a backlog: claim again at once */
	TimestampTz last_claim_at = 0;
	TimestampTz claim_not_before = 0;	/* notify.claim_delay after the last claim */
	TimestampTz next_poll = 0;
	TimestampTz next_retry = 0;
	TimestampTz next_lease_check = 0;
	TimestampTz next_archive = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	notify_am_worker = true;
	notify_worker_index = DatumGetInt32(main_arg);
	if (notify_worker_index < 0 || notify_worker_index >= NOTIFY_MAX_WORKERS)
		elog(FATAL, "notify worker index %d out of range", notify_worker_index);
	my_slot = &notify_shared->workers[notify_worker_index];
	BackgroundWorkerInitializeConnection(notify_database, NULL, 0);
	pgstat_report_appname("notify worker");

	/*
	 * No commit of ours waits for the disk: a claim writes nothing, and a
	 * lost record leaves its rows pending (claimed and sent again);
	 * record_flush bounds how long a record stays unflushed.
	 * PGC_S_OVERRIDE: a reload of postgresql.conf does not change it.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * Every statement of the worker has a selective index (claim, lease,
	 * expiry, primary key, archive).  But a plan made while the outbox was
	 * empty (just vacuumed, emptied by archiving) prefers a sequential scan
	 * and stays cached until the next ANALYZE: the claim then reads the
	 * whole outbox every time, which at a few thousand rows made it most
	 * of the worker's CPU.  No sequential scan where an index can serve.
	 * Likewise no sort where an index gives the order: with an empty
	 * outbox's statistics the claim may read every pending row through
	 * another partial index (it was the backlog index then) and sort them for
	 * its ORDER BY ... LIMIT, 60 ms a claim at 20,000 pending rows, which
	 * a backlog then only makes worse.  The claim must walk
	 * notify_outbox_claim_idx in order and stop at its limit.
	 */
	SetConfigOption("enable_seqscan", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("enable_sort", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * No JIT: the worker's statements are short, but their generic plans
	 * are costed for the whole backlog (a claim's LIMIT is a parameter).
	 * With 200,000 rows pending the claim's estimate passed jit_above_cost
	 * and every execution compiled its expressions with LLVM first: tens
	 * of milliseconds per claim, most of the worker's CPU.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "notify worker",
									   ALLOCSET_DEFAULT_SIZES);

	SpinLockAcquire(&notify_shared->mutex);
	my_slot->pid = MyProcPid;
	my_slot->started_at = GetCurrentTimestamp();
	my_slot->state = NOTIFY_WORKER_STARTING;
	my_slot->in_flight = 0;
	SpinLockRelease(&notify_shared->mutex);
	notify_shared->worker_dboid = MyDatabaseId;
	pg_atomic_write_u32(&my_slot->procno_plus1,
						(uint32) notify_my_proc_number() + 1);
	on_shmem_exit(worker_exit, (Datum) 0);
	inflight_init();

	/* LISTEN notify, so that NOTIFY notify wakes us. */
	StartTransactionCommand();
	Async_Listen("notify");
	CommitTransactionCommand();

	transfer_init();

	for (;;)
	{
		TimestampTz now;
		long		timeout;
		bool		claim;
		bool		record_due;
		List	   *claimed = NIL;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			smtp_configure();
			work_hint = true;
			next_poll = 0;		/* notify.poll_interval may have changed */
		}
		/* Read (and discard) NOTIFY messages so the queue can advance. */
		notify_process_notify_interrupt();
		if (ShutdownRequestPending)
			break;

		now = GetCurrentTimestamp();
		if (next_poll <= now)
		{
			work_hint = true;
			next_poll = TimestampTzPlusMilliseconds(now, notify_poll_interval);
		}
		if (next_retry != 0 && next_retry <= now)
		{
			work_hint = true;
			next_retry = 0;
		}
		if (next_token_at != 0 && next_token_at <= now)
		{
			work_hint = true;
			next_token_at = 0;
		}

		if (!ready)
		{
			/* Extension not (yet) installed: look again at each wake-up. */
			if (work_hint)
			{
				work_hint = false;
				ready = run_transaction(false, false, true, NULL, NULL);
				if (!ready && !said_waiting)
				{
					ereport(LOG,
							(errmsg("notify worker: extension \"notify\" is not installed in database \"%s\"; waiting for CREATE EXTENSION notify",
									notify_database)));
					said_waiting = true;
					set_state(NOTIFY_WORKER_WAITING_FOR_EXTENSION, "waiting for CREATE EXTENSION notify");
				}
				if (ready)
				{
					if (said_waiting)
						ereport(LOG, (errmsg("notify worker: extension \"notify\" found; starting delivery")));
					work_hint = true;
					next_lease_check = TimestampTzPlusMilliseconds(now, notify_poll_interval);
				}
			}
			if (!ready)
			{
				transfer_wait(notify_poll_interval, PG_WAIT_EXTENSION);
				work_hint = true;	/* a latch or the poll: look again */
				continue;
			}
		}

		finished = transfer_collect(finished);
		if (finished != NIL && first_finished_at == 0)
			first_finished_at = now;

		/* A committed record waited long enough for the WAL writer: flush it. */
		if (unflushed_lsn != InvalidXLogRecPtr && flush_due <= now)
			record_flush();

		/*
		 * Claim when there may be work and the jobs in flight are down to
		 * claim_low_water (see claim_due): half the batch, or twice this
		 * worker's connections when that is more, so that every connection
		 * still has a request out while the claim runs.  Each claim passes
		 * over every row in flight and costs about the same however few it
		 * takes, so claims of half a batch cost less per row than claims of
		 * a quarter; larger ones would leave one worker holding most of the
		 * rows when a backlog runs out, while the others idle.
		 * notify.claim_delay keeps the claims from getting tiny.
		 *
		 * Results are not recorded the moment they arrive, even when
		 * nothing else is in flight: once the oldest has waited
		 * RECORD_RIDE_MS they go with the next claim's transaction, and
		 * only after RECORD_DELAY_MS (or when RECORD_BATCH_MAX piled up) do
		 * they get a transaction of their own.  At low rates the
		 * producers' COMMITs wake us for claims often enough that records
		 * almost never need their own transaction, and one record
		 * statement covers the messages of RECORD_RIDE_MS.  sent_at is when
		 * the server accepted, so the wait changes no measured latency.
		 */
		claim = work_hint && transfer_in_flight() <= claim_low_water;

		/*
		 * A stream of small commits would wake us for a claim each: after a
		 * claim that did not fill the batch, the next waits until
		 * notify.claim_delay has passed, so commits arriving meanwhile are
		 * claimed together.
		 */
		claim_not_before = 0;
		if (claim && !last_claim_full && last_claim_at != 0 && notify_claim_delay > 0)
		{
			TimestampTz at = TimestampTzPlusMilliseconds(last_claim_at, notify_claim_delay);

			if (at > now)
			{
				claim = false;
				claim_not_before = at;
			}
		}
		record_due = finished != NIL &&
			(list_length(finished) >= RECORD_BATCH_MAX ||
			 TimestampDifferenceExceeds(first_finished_at, now, RECORD_DELAY_MS));
		if (claim || record_due)
		{
			bool		record = record_due ||
				(finished != NIL &&
				 TimestampDifferenceExceeds(first_finished_at, now, RECORD_RIDE_MS));
			TimestampTz retry_at = 0;
			bool		full;

			/*
			 * Lease and expiry checks scan with their own indexes, but cost
			 * far more than a claim: once per poll interval is enough.
			 */
			if (next_lease_check <= now)
			{
				claim = true;
				leases_due = notify_worker_index == 0;
				/* plans made on an empty outbox must not outlive it */
				claim_replan();
				next_lease_check = TimestampTzPlusMilliseconds(now,
															   Min(notify_poll_interval, notify_lease_time * 1000L / 4));
			}
			ready = run_transaction(claim, record, false, &claimed, &retry_at);
			if (retry_at != 0 && (next_retry == 0 || retry_at < next_retry))
				next_retry = retry_at;
			if (claim)
			{
				full = list_length(claimed) >= notify_batch_size - transfer_in_flight();
				work_hint = full;
				last_claim_full = full;
				last_claim_at = now;

				/*
				 * A commit wakes one worker (notify_wake_worker).  When this
				 * claim may have left due rows behind (it was full, or some
				 * channel has no connection in this worker), wake another.
				 */
				if (ready && notify_workers > 1 && (full || claim_left_channels))
					notify_wake_worker(notify_worker_index);
			}
			start_jobs(claimed);
			continue;			/* collect what completed meanwhile first */
		}

		/* Now and then, move finished rows out of the hot outbox. */
		if (notify_worker_index == 0 && notify_archive_interval > 0 && next_archive <= now)
		{
			if (next_archive != 0)
				archive();
			next_archive = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), notify_archive_interval);
			continue;
		}

		/* Wait for sockets, the latch, the next poll or retry, or results to record. */
		set_state(transfer_in_flight() > 0 ? NOTIFY_WORKER_SENDING : NOTIFY_WORKER_IDLE,
				  transfer_in_flight() > 0 ? "sending" : "waiting for work");
		now = GetCurrentTimestamp();
		timeout = notify_poll_interval;
		{
			long		secs;
			int			usecs;

			TimestampDifference(now, next_poll, &secs, &usecs);
			timeout = Min(timeout, secs * 1000 + usecs / 1000);
			if (next_retry != 0)
			{
				TimestampDifference(now, next_retry, &secs, &usecs);
				timeout = Min(timeout, secs * 1000 + usecs / 1000 + 1);
			}
			if (next_token_at != 0)
			{
				TimestampDifference(now, next_token_at, &secs, &usecs);
				timeout = Min(timeout, secs * 1000 + usecs / 1000 + 1);
			}
			if (finished != NIL)
			{
				TimestampDifference(now, TimestampTzPlusMilliseconds(first_finished_at, RECORD_DELAY_MS),
									&secs, &usecs);
				timeout = Min(timeout, secs * 1000 + usecs / 1000 + 1);
			}
			if (unflushed_lsn != InvalidXLogRecPtr)
			{
				TimestampDifference(now, flush_due, &secs, &usecs);
				timeout = Min(timeout, secs * 1000 + usecs / 1000 + 1);
			}
			if (claim_not_before != 0)
			{
				TimestampDifference(now, claim_not_before, &secs, &usecs);
				timeout = Min(timeout, secs * 1000 + (usecs + 999) / 1000);
			}
		}
		if (transfer_wait(timeout, PG_WAIT_EXTENSION))
			work_hint = true;
	}

	shut_down();
	proc_exit(1);
}

/*
 * One short transaction: record finished jobs when asked (record), and
 * claim new ones when asked (claim).  At startup (or while waiting for the extension) it only checks
 * for the extension and takes back rows a previous worker left in sending.
 * Returns whether the extension is installed.
 */
static bool
run_transaction(bool claim, bool record, bool startup, List **claimed,
				TimestampTz *next_retry)
{
	NotifyBatch *batch = NULL;
	bool		ready;
	List	   *recorded = NIL;

	set_state(claim ? NOTIFY_WORKER_CLAIMING : NOTIFY_WORKER_RECORDING,
			  claim ? "claiming due notifications" : "recording delivery outcomes");

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	ready = claim_extension_ready();
	if (ready)
		channels_reload(startup);
	if (ready && startup && notify_worker_index == 0)
	{
		int			n = claim_release_expired(true);

		if (n > 0)
			ereport(LOG,
					(errmsg("notify worker: took back %d notifications a previous worker had claimed", n)));
	}
	else if (ready)
	{
		if (record && finished != NIL)
		{
			TimestampTz retry_at = claim_record(finished);

			if (next_retry != NULL)
				*next_retry = retry_at;
			recorded = finished;
			finished = NIL;
			first_finished_at = 0;
		}
		if (claim && leases_due)
		{
			int			n = claim_release_expired(false);

			leases_due = false;
			if (n > 0)
				ereport(LOG,
						(errmsg("notify worker: took back %d notifications whose lease expired", n)));
		}
		if (claim)
		{
			batch = MemoryContextAllocZero(worker_cxt, sizeof(NotifyBatch));
			batch->cxt = AllocSetContextCreate(worker_cxt, "notify batch",
											   ALLOCSET_DEFAULT_SIZES);
			*claimed = claim_due(batch);
		}
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);

	/* Committed: release what was recorded, count it and free it. */
	if (recorded != NIL)
	{
		ListCell   *lc;

		foreach(lc, recorded)
			inflight_remove(((NotifyJob *) lfirst(lc))->id);
		/* asynchronously: record_flush makes it durable soon */
		unflushed_lsn = XactLastCommitEnd;
		if (flush_due == 0)
			flush_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RECORD_FLUSH_MS);
		account(recorded);
		free_recorded(recorded);
	}
	if (batch != NULL && batch->outstanding == 0)
	{
		MemoryContextDelete(batch->cxt);
		pfree(batch);
	}
	if (claimed != NULL && *claimed != NIL)
	{
		SpinLockAcquire(&notify_shared->mutex);
		my_slot->batches++;
		SpinLockRelease(&notify_shared->mutex);
	}
	return ready;
}

/*
 * Claim due rows, channel by channel, in one statement: each enabled
 * channel with a connection in this worker, a rate-limited one up to the
 * tokens its bucket has.  Rows held back by a limit stay pending and are
 * not attempts.  Round robin: when a channel used up the room of a claim,
 * the next claim starts with the channel after it, so a channel with a
 * large backlog holds the others back for one claim at most.  Fills each
 * job's content; sets claim_low_water.
 */
static List *
claim_due(NotifyBatch *batch)
{
	static int	first = 0;
	int			room = Min(notify_batch_size - transfer_in_flight(), inflight_room());
	List	   *jobs = NIL;
	List	   *all = channels_all();
	int			n = list_length(all);
	NotifyChannel **chs = palloc(sizeof(NotifyChannel *) * Max(n, 1));
	int		   *limits = palloc(sizeof(int) * Max(n, 1));
	int		   *taken = palloc(sizeof(int) * Max(n, 1));
	int		   *pos = palloc(sizeof(int) * Max(n, 1));
	int			m = 0;
	int			connections = 0;
	ListCell   *lc;
	MemoryContext old;

	/* The job list outlives this transaction's (and SPI's) memory. */
	old = MemoryContextSwitchTo(batch->cxt);
	next_token_at = 0;
	claim_left_channels = false;

	/*
	 * With several workers, a channel whose connection limit is below
	 * notify.workers has no connection in some of them: those leave its
	 * rows to the others.  Paused and dropped channels are not enabled.
	 */
	if (first >= n)
		first = 0;
	for (int i = 0; i < n; i++)
	{
		NotifyChannel *ch = list_nth(all, (first + i) % n);
		int			share = channel_connection_limit(ch);
		int			limit = room;

		if (ch->enabled && share == 0)
			claim_left_channels = true;
		if (!ch->enabled || share == 0)
			continue;
		connections += share;
		if (room <= 0)
			continue;
		if (ch->rate_limit > 0)
		{
			TimestampTz next = 0;

			limit = channel_take_tokens(ch, room, &next);
			if (limit == 0)
			{
				if (next_token_at == 0 || next < next_token_at)
					next_token_at = next;
				continue;
			}
		}
		chs[m] = ch;
		limits[m] = limit;
		pos[m] = (first + i) % n;
		m++;
	}
	if (m > 0)
	{
		int			total = 0;
		int			last = -1;

		jobs = claim_jobs(jobs, room, batch, chs, limits, m, taken);
		for (int i = 0; i < m; i++)
		{
			if (chs[i]->rate_limit > 0)
				channel_return_tokens(chs[i], limits[i] - taken[i]);
			total += taken[i];
			if (taken[i] > 0)
				last = i;
		}
		/* the room ran out at chs[last]: the next claim starts after it */
		if (total >= room && last >= 0)
			first = (pos[last] + 1) % n;
	}
	/* claims of a quarter of the batch at least */
	claim_low_water = Max(notify_batch_size / 2, Min(2 * connections, notify_batch_size * 3 / 4));

	/* SPI left us in its procedure context: the content goes with the job */
	MemoryContextSwitchTo(batch->cxt);
	foreach(lc, jobs)
		fill_content(lfirst(lc));
	MemoryContextSwitchTo(old);
	return jobs;
}

/*
 * The subject and bodies of job: its template version rendered (compiled
 * templates are cached per process), or for rows without a template (a
 * webhook's event, a Slack message) the payload's subject, text and html
 * keys.  Runs in the claim transaction.  A template that cannot be
 * rendered fails the message (permanent), with the reason.
 */
static void
fill_content(NotifyJob *job)
{
	if (job->outcome != NOTIFY_OUTCOME_NONE)
		return;					/* skipped: nothing to render */

	/* templates can link the one-click unsubscribe page: {{unsubscribe_url}} */
	if (job->unsubscribe_url != NULL)
	{
		StringInfoData extra;

		initStringInfo(&extra);
		appendStringInfoString(&extra, "{\"unsubscribe_url\": ");
		escape_json(&extra, job->unsubscribe_url);
		appendStringInfoChar(&extra, '}');
		job->payload = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
														  JsonbPGetDatum(job->payload),
														  DirectFunctionCall1(jsonb_in, CStringGetDatum(extra.data))));
	}

	if (job->template_version > 0)
	{
		NotifyRendered out;
		char	   *error = NULL;

		if (!notify_template_render(job->template_key, job->locale, job->template_version,
									job->payload, &out, &error))
		{
			job->outcome = NOTIFY_OUTCOME_PERMANENT;
			job->error = psprintf("template not rendered: %s", error);
			return;
		}
		job->subject = out.subject ? pg_server_to_any(out.subject, strlen(out.subject), PG_UTF8) : NULL;
		job->text_body = out.text_body ? pg_server_to_any(out.text_body, strlen(out.text_body), PG_UTF8) : NULL;
		job->html_body = out.html_body ? pg_server_to_any(out.html_body, strlen(out.html_body), PG_UTF8) : NULL;
		return;
	}
	job->subject = payload_text(job->payload, "subject");
	job->text_body = payload_text(job->payload, "text");
	job->html_body = payload_text(job->payload, "html");
}

/* The string value of payload's top-level key in UTF-8, or NULL. */
static char *
payload_text(Jsonb *payload, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&payload->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pg_server_to_any(pnstrdup(v->val.string.val, v->val.string.len),
							v->val.string.len, PG_UTF8);
}

/* Build and start sending claimed jobs; those that cannot be built finish at once. */
static void
start_jobs(List *jobs)
{
	ListCell   *lc;

	if (jobs == NIL)
		return;
	foreach(lc, jobs)
	{
		NotifyJob  *job = lfirst(lc);
		MemoryContext old = MemoryContextSwitchTo(job->batch->cxt);
		bool		ok;

		if (job->outcome != NOTIFY_OUTCOME_NONE)
			ok = false;			/* failed already (template not rendered) */
		else if (job->ch == NULL || job->kind == NULL)
		{
			job->outcome = NOTIFY_OUTCOME_PERMANENT;
			job->error = psprintf("channel \"%s\" does not exist", job->channel);
			ok = false;
		}
		else if (strcmp(job->kind, "smtp") == 0)
			ok = smtp_prepare(job);
		else if (strcmp(job->kind, "webhook") == 0 || strcmp(job->kind, "slack") == 0 ||
				 strcmp(job->kind, "http_email") == 0)
			ok = http_prepare(job);
		else
		{
			job->outcome = NOTIFY_OUTCOME_PERMANENT;
			job->error = psprintf("channel \"%s\" of kind \"%s\" cannot be delivered by this version",
								  job->channel, job->kind ? job->kind : "(missing)");
			ok = false;
		}
		MemoryContextSwitchTo(old);

		if (ok)
			transfer_start(job);
		else
		{
			job->started_at = job->finished_at = GetCurrentTimestamp();
			old = MemoryContextSwitchTo(worker_cxt);
			finished = lappend(finished, job);
			MemoryContextSwitchTo(old);
			if (first_finished_at == 0)
				first_finished_at = job->finished_at;
		}
	}
	list_free(jobs);
	set_state(NOTIFY_WORKER_SENDING, "sending");
}

/* Add recorded outcomes to the shared counters. */
static void
account(List *jobs)
{
	ListCell   *lc;
	uint64		sent = 0,
				failed = 0,
				retried = 0;
	const char *last_error = NULL;

	foreach(lc, jobs)
	{
		NotifyJob  *job = lfirst(lc);

		switch (job->outcome)
		{
			case NOTIFY_OUTCOME_SENT:
				sent++;
				break;
			case NOTIFY_OUTCOME_PERMANENT:
				failed++;
				last_error = job->error;
				break;
			case NOTIFY_OUTCOME_TRANSIENT:
			case NOTIFY_OUTCOME_NONE:
				if (job->attempt >= job->max_attempts)
					failed++;
				else
					retried++;
				last_error = job->error;
				break;
			case NOTIFY_OUTCOME_RELEASED:
			case NOTIFY_OUTCOME_SKIPPED:
				break;
		}
	}
	SpinLockAcquire(&notify_shared->mutex);
	my_slot->sent += sent;
	my_slot->failed += failed;
	my_slot->retried += retried;
	my_slot->in_flight = transfer_in_flight();
	if (last_error != NULL)
	{
		strlcpy(my_slot->last_error, last_error, NOTIFY_LAST_ERROR_LEN);
		my_slot->last_error_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&notify_shared->mutex);
}

/* Free recorded jobs: a batch's memory goes when its last job is recorded. */
static void
free_recorded(List *jobs)
{
	ListCell   *lc;

	foreach(lc, jobs)
	{
		NotifyJob  *job = lfirst(lc);
		NotifyBatch *batch = job->batch;

		if (job->body.data != NULL)
		{
			pfree(job->body.data);
			job->body.data = NULL;
		}
		if (--batch->outstanding == 0)
		{
			MemoryContextDelete(batch->cxt);
			pfree(batch);
		}
	}
	list_free(jobs);
}

/*
 * SIGTERM: stop claiming, give in-flight sends notify.shutdown_timeout to
 * finish, release the others, record everything.
 */
static void
shut_down(void)
{
	TimestampTz deadline;

	set_state(NOTIFY_WORKER_STOPPING, "stopping");
	transfer_release(false);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), notify_shutdown_timeout);
	while (transfer_in_flight() > 0)
	{
		long		secs;
		int			usecs;

		finished = transfer_collect(finished);
		if (transfer_in_flight() == 0)
			break;
		TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
		if (secs == 0 && usecs == 0)
			break;
		transfer_wait(Min(secs * 1000 + usecs / 1000 + 1, 100), PG_WAIT_EXTENSION);
	}
	transfer_release(true);
	finished = transfer_collect(finished);
	if (finished != NIL)
		run_transaction(false, true, false, NULL, NULL);
	record_flush();
	transfer_shutdown();
}

/*
 * Move finished notifications older than notify.archive_after to
 * notify_history, a bounded number of batches per call, each in its own
 * transaction, so delivery is not held up for long.
 */
static void
archive(void)
{
	int			i;

	for (i = 0; i < 10 && !ShutdownRequestPending; i++)
	{
		int64		moved;

		set_state(NOTIFY_WORKER_RECORDING, "archiving finished notifications");
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		moved = claim_extension_ready() ? claim_archive(5000) : 0;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_stat(false);
		if (moved < 5000)
			break;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Make the latest recorded outcomes durable: every worker transaction
 * commits with synchronous_commit = off, and this bounds how long an
 * outcome may stay in WAL buffers (RECORD_FLUSH_MS, unless the WAL writer
 * was faster).  An outcome lost in a crash leaves its row pending, and the
 * next worker sends it again: a duplicate, never a loss.  One flush covers
 * every record committed before it, so at high rates it costs one
 * fdatasync per RECORD_FLUSH_MS, not one per transaction.
 */
static void
record_flush(void)
{
	if (unflushed_lsn == InvalidXLogRecPtr)
		return;
	XLogFlush(unflushed_lsn);
	unflushed_lsn = InvalidXLogRecPtr;
	flush_due = 0;
}

/*
 * Publish the worker's state and jobs in flight in shared memory (where
 * notify_wake_worker looks for the least busy worker), and the state in
 * pg_stat_activity.
 */
static void
set_state(NotifyWorkerState state, const char *activity)
{
	int			in_flight = transfer_in_flight();
	bool		changed = my_slot->state != state;	/* we are its only writer */

	if (!changed && my_slot->in_flight == in_flight)
		return;
	SpinLockAcquire(&notify_shared->mutex);
	my_slot->state = state;
	my_slot->in_flight = in_flight;
	SpinLockRelease(&notify_shared->mutex);
	if (!changed)
		return;
	pgstat_report_activity(state == NOTIFY_WORKER_IDLE ||
						   state == NOTIFY_WORKER_WAITING_FOR_EXTENSION ? STATE_IDLE : STATE_RUNNING,
						   activity);
}

/* on_shmem_exit: nobody is to wake us any more. */
static void
worker_exit(int code, Datum arg)
{
	pg_atomic_write_u32(&my_slot->procno_plus1, 0);
	/* our claims end with us: the rows are pending, a worker takes them again */
	inflight_clear();
	SpinLockAcquire(&notify_shared->mutex);
	my_slot->pid = 0;
	my_slot->state = NOTIFY_WORKER_STOPPED;
	my_slot->in_flight = 0;
	SpinLockRelease(&notify_shared->mutex);
}

/*
 * notify_worker_status() RETURNS SETOF record: each worker's shared
 * status (notify.workers rows), for the notify_worker_status view.
 */
Datum
notify_worker_status(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	TupleDesc	tupdesc;
	Datum		values[11];
	bool		nulls[11];
	NotifyWorkerSlot s;
	int			i;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;

		if (notify_shared == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("notify is not loaded through shared_preload_libraries"),
					 errhint("Add notify to shared_preload_libraries in postgresql.conf and restart the server.")));
		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);
		funcctx->max_calls = notify_workers;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	i = (int) funcctx->call_cntr;
	if (i >= (int) funcctx->max_calls)
		SRF_RETURN_DONE(funcctx);

	SpinLockAcquire(&notify_shared->mutex);
	memcpy(&s, &notify_shared->workers[i], sizeof(s));
	SpinLockRelease(&notify_shared->mutex);

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int32GetDatum(s.pid);
	nulls[0] = s.pid == 0;
	values[1] = CStringGetTextDatum(notify_database);
	values[2] = CStringGetTextDatum(notify_worker_state_name(s.state));
	values[3] = TimestampTzGetDatum(s.started_at);
	nulls[3] = s.started_at == 0;
	values[4] = Int64GetDatum((int64) s.batches);
	values[5] = Int64GetDatum((int64) s.sent);
	values[6] = Int64GetDatum((int64) s.failed);
	values[7] = Int64GetDatum((int64) s.retried);
	values[8] = Int32GetDatum(s.in_flight);
	values[9] = CStringGetTextDatum(s.last_error);
	nulls[9] = s.last_error[0] == '\0';
	values[10] = Int32GetDatum(i);

	SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(heap_form_tuple(funcctx->tuple_desc, values, nulls)));
}

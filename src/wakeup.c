/*-------------------------------------------------------------------------
 *
 * wakeup.c
 *		Wake the delivery worker at COMMIT of a transaction that wrote to
 *		the outbox, never before and never on abort.
 *
 * A statement trigger on notify_outbox (notify_outbox_wake) sets a
 * backend-local flag; one transaction callback, registered once per
 * process, sets the latch of one worker (notify_wake_worker) when a
 * transaction with the flag commits, of every worker when it changed
 * channels, and clears the flag on abort and PREPARE.  The callback runs
 * after the commit is visible to other snapshots, so the worker's next
 * claim sees the rows.  No NOTIFY is sent per transaction: NOTIFY
 * serialises committers on a global lock.  A prepared transaction
 * committed later with COMMIT PREPARED, and any missed wake-up, are
 * caught by the worker's fallback poll (notify.poll_interval).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"

#include "notify.h"
#include "wakeup.h"

static bool wake_at_commit = false;
static bool channels_changed = false;

static void notify_xact_callback(XactEvent event, void *arg);

PG_FUNCTION_INFO_V1(notify_outbox_wake);

/* Register the commit callback; called once from _PG_init. */
void
notify_wakeup_init(void)
{
	RegisterXactCallback(notify_xact_callback, NULL);
}

/* Whether the workers run and serve this backend's database. */
static bool
workers_serve_here(void)
{
	if (notify_shared == NULL)
		return false;
	/* a write in a database the workers do not serve is not their work */
	return !OidIsValid(MyDatabaseId) || notify_shared->worker_dboid == MyDatabaseId;
}

/*
 * Set the latch of worker w if it runs.  A stale PGPROC number (the worker
 * just exited) sets some other process's latch, which latches tolerate as
 * a spurious wake-up.
 */
static void
wake(int w)
{
	uint32		procno_plus1 = pg_atomic_read_u32(&notify_shared->workers[w].procno_plus1);

	if (procno_plus1 != 0)
		SetLatch(notify_proc_latch(procno_plus1 - 1));
}

/*
 * Wake one worker for new rows (other than worker number except, or -1):
 * the first idle one, else the one with the fewest jobs in flight (in turn
 * among equals).  Each commit then wakes one claim, not one per worker
 * (most of which would find the rows taken).  At low rates that is mostly
 * worker 0, whose results then ride in its next claim (see
 * notify_worker_main); under load the commits go to whichever has the most
 * room.  A worker passes the wake on when one claim may not have been
 * enough (its claim was full, or it has no connection for some channel).
 * The slots are read without the lock: a stale value only picks a busier
 * worker.
 */
void
notify_wake_worker(int except)
{
	int			chosen = -1;
	int			fewest = INT_MAX;
	uint32		start;
	int			i;

	if (!workers_serve_here())
		return;
	for (i = 0; i < notify_workers && chosen < 0; i++)
	{
		if (i != except && notify_shared->workers[i].state == NOTIFY_WORKER_IDLE &&
			pg_atomic_read_u32(&notify_shared->workers[i].procno_plus1) != 0)
			chosen = i;
	}
	if (chosen < 0)
	{
		start = pg_atomic_fetch_add_u32(&notify_shared->next_wake, 1);
		for (i = 0; i < notify_workers; i++)
		{
			int			w = (start + i) % notify_workers;
			int			in_flight = notify_shared->workers[w].in_flight;

			if (w != except && in_flight < fewest &&
				pg_atomic_read_u32(&notify_shared->workers[w].procno_plus1) != 0)
			{
				chosen = w;
				fewest = in_flight;
			}
		}
	}
	if (chosen >= 0)
		wake(chosen);
}

/* Wake every worker that runs (channels changed: each must reload them). */
void
notify_wake_all_workers(void)
{
	int			i;

	if (!workers_serve_here())
		return;
	for (i = 0; i < notify_workers; i++)
		wake(i);
}

/* Wake the worker at COMMIT of a transaction that wrote to the outbox. */
static void
notify_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (channels_changed && notify_shared != NULL)
			{
				pg_atomic_fetch_add_u32(&notify_shared->channels_generation, 1);
				notify_wake_all_workers();
			}
			else if (wake_at_commit)
				notify_wake_worker(-1);
			channels_changed = false;
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_at_commit = false;
			channels_changed = false;
			break;
		default:
			break;
	}
}

/*
 * notify_outbox_wake() trigger: BEFORE INSERT OR UPDATE FOR EACH STATEMENT
 * on notify_outbox.  Marks the transaction so that its COMMIT wakes the
 * worker.  The worker's own writes do not wake itself.
 */
Datum
notify_outbox_wake(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("notify_outbox_wake() must be called as a trigger")));

	notify_wake_at_commit();
	PG_RETURN_POINTER(NULL);
}

/* Mark the current transaction so that its COMMIT wakes the worker. */
void
notify_wake_at_commit(void)
{
	if (!notify_am_worker)
		wake_at_commit = true;
}

/*
 * Mark the current transaction as changing channels: at COMMIT (when the
 * change is visible) the worker is told to reload them, and woken.
 */
void
notify_channels_changed_at_commit(void)
{
	channels_changed = true;
	wake_at_commit = true;
}

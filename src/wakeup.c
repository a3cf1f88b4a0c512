/*-------------------------------------------------------------------------
 *
 * wakeup.c
 *		Wake the delivery worker at COMMIT of a transaction that wrote to
 *		the outbox, never before and never on abort.
 *
 * A statement trigger on notify_outbox (notify_outbox_wake) sets a
 * backend-local flag; one transaction callback, registered once per
 * process, sets the worker's latch when a transaction with the flag
 * commits and clears the flag on abort and PREPARE.  The callback runs
 * after the commit is visible to other snapshots, so the worker's next
 * claim sees the rows.  No NOTIFY is sent per transaction: NOTIFY
 * serialises committers on a global lock.  A prepared transaction
 * committed later with COMMIT PREPARED, and any missed wake-up, are
 * caught by the worker's fallback poll (notify.poll_interval).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

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

/*
 * Set the latch of every worker that runs.  A stale PGPROC number (a
 * worker just exited) sets some other process's latch, which latches
 * tolerate as a spurious wake-up.  With several workers each wakes and
 * claims; the ones that find the rows taken claim nothing.
 */
void
notify_wake_worker(void)
{
	int			i;

	if (notify_shared == NULL)
		return;
	/* a write in a database the workers do not serve is not their work */
	if (OidIsValid(MyDatabaseId) && notify_shared->worker_dboid != MyDatabaseId)
		return;
	for (i = 0; i < notify_workers; i++)
	{
		uint32		procno_plus1 = pg_atomic_read_u32(&notify_shared->workers[i].procno_plus1);

		if (procno_plus1 != 0)
			SetLatch(notify_proc_latch(procno_plus1 - 1));
	}
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
				pg_atomic_fetch_add_u32(&notify_shared->channels_generation, 1);
			channels_changed = false;
			if (wake_at_commit)
			{
				wake_at_commit = false;
				notify_wake_worker();
			}
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

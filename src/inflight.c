/*-------------------------------------------------------------------------
 *
 * inflight.c
 *		The worker's claims: the outbox rows it has claimed and not yet
 *		recorded, kept in its memory and published in shared memory,
 *		instead of a status written into each row.
 *
 * A claim writes nothing to the outbox: it locks the due rows it picks
 * (FOR UPDATE SKIP LOCKED, so it never takes a row that notify_cancel or
 * notify_retry is changing) and enters their ids here before its
 * transaction commits.  The rows stay 'pending' in the table until the
 * record of their outcome; "sending" is a pending row whose id is here.
 * The next claim skips these ids (notify_in_flight, answered from a hash
 * table in the worker's memory), and an id leaves only after the record
 * of its outcome has committed.
 *
 * Crash safety follows: the registry lives in memory only.  When the
 * worker exits, it is emptied (on_shmem_exit); when the server crashes,
 * shared memory is made anew.  Either way the rows are still pending, so
 * the next worker claims them again: retried, never lost; and since one
 * worker serves a database, no two claimers hold the same row.
 *
 * Locking: InFlightShared.mutex (a spinlock) protects the shared array.
 * Only the worker writes it; backends read it for notify_cancel,
 * notify_retry and the views.  The array is kept dense (a removed id's
 * slot takes the last id), so a reader scans only the ids in flight.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "notify.h"

typedef struct InFlightShared
{
	slock_t		mutex;
	Oid			dboid;			/* the worker's database: ids are its rows */
	int			n;				/* ids[0 .. n-1] are in flight */
	int64		ids[NOTIFY_MAX_IN_FLIGHT];
} InFlightShared;

/* The worker's own index of the shared array: id -> slot. */
typedef struct InFlightEntry
{
	int64		id;				/* hash key */
	int			slot;
} InFlightEntry;

static InFlightShared *inflight_shared = NULL;
static HTAB *inflight_local = NULL;

PG_FUNCTION_INFO_V1(notify_in_flight);
PG_FUNCTION_INFO_V1(notify_in_flight_ids);

/* Shared memory the registry needs. */
Size
inflight_shmem_size(void)
{
	return MAXALIGN(sizeof(InFlightShared));
}

/* Create or attach to the shared registry (under AddinShmemInitLock). */
void
inflight_shmem_init(void)
{
	bool		found;

	inflight_shared = ShmemInitStruct("notify in flight", sizeof(InFlightShared), &found);
	if (!found)
	{
		SpinLockInit(&inflight_shared->mutex);
		inflight_shared->dboid = InvalidOid;
		inflight_shared->n = 0;
	}
}

/* The worker starts with no claims, whatever a previous worker left. */
void
inflight_init(void)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(InFlightEntry);
	ctl.hcxt = TopMemoryContext;
	inflight_local = hash_create("notify in flight", 1024, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	inflight_clear();
	SpinLockAcquire(&inflight_shared->mutex);
	inflight_shared->dboid = MyDatabaseId;
	SpinLockRelease(&inflight_shared->mutex);
}

/* Forget every claim (the worker exits): the rows are pending again. */
void
inflight_clear(void)
{
	if (inflight_shared == NULL)
		return;
	SpinLockAcquire(&inflight_shared->mutex);
	inflight_shared->n = 0;
	SpinLockRelease(&inflight_shared->mutex);
}

/* Claims the worker may still make before the registry is full. */
int
inflight_room(void)
{
	return NOTIFY_MAX_IN_FLIGHT - (inflight_local ? (int) hash_get_num_entries(inflight_local) : 0);
}

/*
 * Worker: enter a claimed row.  Must happen before the claim commits, so
 * that a backend that waited for the claim's row lock sees it.
 */
void
inflight_add(int64 id)
{
	InFlightEntry *e;
	bool		found;

	e = hash_search(inflight_local, &id, HASH_ENTER, &found);
	if (found)
		elog(ERROR, "notification " INT64_FORMAT " claimed twice", id);
	SpinLockAcquire(&inflight_shared->mutex);
	if (inflight_shared->n >= NOTIFY_MAX_IN_FLIGHT)
	{
		SpinLockRelease(&inflight_shared->mutex);
		hash_search(inflight_local, &id, HASH_REMOVE, NULL);
		elog(ERROR, "too many notifications in flight");
	}
	e->slot = inflight_shared->n;
	inflight_shared->ids[inflight_shared->n++] = id;
	SpinLockRelease(&inflight_shared->mutex);
}

/* Worker: a row's outcome is committed (or it was never sent): release it. */
void
inflight_remove(int64 id)
{
	InFlightEntry *e = hash_search(inflight_local, &id, HASH_FIND, NULL);
	int64		moved = 0;
	int			slot;
	bool		move;

	if (e == NULL)
		return;
	slot = e->slot;
	hash_search(inflight_local, &id, HASH_REMOVE, NULL);
	SpinLockAcquire(&inflight_shared->mutex);
	move = slot < inflight_shared->n - 1;
	if (move)
	{
		moved = inflight_shared->ids[inflight_shared->n - 1];
		inflight_shared->ids[slot] = moved;
	}
	inflight_shared->n--;
	SpinLockRelease(&inflight_shared->mutex);
	if (move)
	{
		e = hash_search(inflight_local, &moved, HASH_FIND, NULL);
		Assert(e != NULL);
		e->slot = slot;
	}
}

/*
 * notify_in_flight(id bigint) RETURNS boolean: whether the worker holds
 * the row (claimed, outcome not yet recorded).  In the worker (its claim
 * skips these rows) a hash lookup; elsewhere a scan of the shared ids.
 */
Datum
notify_in_flight(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	bool		result = false;
	int			i;

	if (inflight_local != NULL)
		PG_RETURN_BOOL(hash_search(inflight_local, &id, HASH_FIND, NULL) != NULL);
	if (inflight_shared == NULL)
		PG_RETURN_BOOL(false);
	SpinLockAcquire(&inflight_shared->mutex);
	/* the ids are rows of the worker's database only */
	for (i = 0; inflight_shared->dboid == MyDatabaseId && i < inflight_shared->n; i++)
	{
		if (inflight_shared->ids[i] == id)
		{
			result = true;
			break;
		}
	}
	SpinLockRelease(&inflight_shared->mutex);
	PG_RETURN_BOOL(result);
}

/* notify_in_flight_ids() RETURNS bigint[]: the rows the worker holds. */
Datum
notify_in_flight_ids(PG_FUNCTION_ARGS)
{
	int64	   *ids;
	Datum	   *elems;
	int			n;
	int			i;

	if (inflight_shared == NULL)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	ids = palloc(sizeof(int64) * NOTIFY_MAX_IN_FLIGHT);
	SpinLockAcquire(&inflight_shared->mutex);
	n = inflight_shared->dboid == MyDatabaseId ? inflight_shared->n : 0;
	memcpy(ids, inflight_shared->ids, sizeof(int64) * n);
	SpinLockRelease(&inflight_shared->mutex);
	elems = palloc(sizeof(Datum) * Max(n, 1));
	for (i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

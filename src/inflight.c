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
 * Crash safety follows: the registry lives in memory only.  When a
 * worker exits, its part is emptied (on_shmem_exit); when the server
 * crashes, shared memory is made anew.  Either way the rows are still
 * pending, so a worker claims them again: retried, never lost.
 *
 * Several workers (notify.workers): each has a section of the shared
 * registry, and its claims skip the ids in every section.  That check
 * alone can race: a claim may read a row as not in flight, and lock it
 * just after another worker's claim entered it and committed (that claim
 * only locked the row, so nothing makes the first re-read it).  So
 * inflight_add enters an id only if no other section has it, under the
 * same lock; a claim drops the rows it loses that way.  The other worker
 * entered the id before its commit released the row lock, and the row
 * lock is taken before inflight_add, so the loser always sees it.
 *
 * Locking: InFlightShared.mutex (a spinlock) protects every section.
 * Only a section's worker writes it; other workers read all sections when
 * they claim, backends for notify_cancel, notify_retry and the views.
 * Each section is kept dense (a removed id's slot takes the last id), so
 * a reader scans only the ids in flight: about 3 x notify.batch_size per
 * worker.
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

typedef struct InFlightSection
{
	int			n;				/* ids[0 .. n-1] are in flight */
	int64		ids[NOTIFY_MAX_IN_FLIGHT];
} InFlightSection;

typedef struct InFlightShared
{
	slock_t		mutex;
	Oid			dboid;			/* the workers' database: ids are its rows */
	int			nsections;		/* notify.workers */
	InFlightSection sections[FLEXIBLE_ARRAY_MEMBER];
} InFlightShared;

/* The worker's own index of the shared array: id -> slot. */
typedef struct InFlightEntry
{
	int64		id;				/* hash key */
	int			slot;
} InFlightEntry;

static InFlightShared *inflight_shared = NULL;
static InFlightSection *my_section = NULL;	/* the worker's own */
static HTAB *inflight_local = NULL;

static bool held_elsewhere(int64 id);

PG_FUNCTION_INFO_V1(notify_in_flight);
PG_FUNCTION_INFO_V1(notify_in_flight_ids);

/* Shared memory the registry needs. */
Size
inflight_shmem_size(void)
{
	return MAXALIGN(add_size(offsetof(InFlightShared, sections),
							 mul_size(sizeof(InFlightSection), notify_workers)));
}

/* Create or attach to the shared registry (under AddinShmemInitLock). */
void
inflight_shmem_init(void)
{
	bool		found;

	int			i;

	inflight_shared = ShmemInitStruct("notify in flight", inflight_shmem_size(), &found);
	if (!found)
	{
		SpinLockInit(&inflight_shared->mutex);
		inflight_shared->dboid = InvalidOid;
		inflight_shared->nsections = notify_workers;
		for (i = 0; i < notify_workers; i++)
			inflight_shared->sections[i].n = 0;
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
	Assert(notify_worker_index >= 0 && notify_worker_index < inflight_shared->nsections);
	my_section = &inflight_shared->sections[notify_worker_index];
	inflight_clear();
	SpinLockAcquire(&inflight_shared->mutex);
	inflight_shared->dboid = MyDatabaseId;
	SpinLockRelease(&inflight_shared->mutex);
}

/* Forget the worker's claims (it exits): the rows are pending again. */
void
inflight_clear(void)
{
	if (my_section == NULL)
		return;
	SpinLockAcquire(&inflight_shared->mutex);
	my_section->n = 0;
	SpinLockRelease(&inflight_shared->mutex);
}

/* Whether another worker's section holds id; the caller holds the mutex. */
static bool
held_elsewhere(int64 id)
{
	int			s,
				i;

	for (s = 0; s < inflight_shared->nsections; s++)
	{
		InFlightSection *sec = &inflight_shared->sections[s];

		if (sec == my_section)
			continue;
		for (i = 0; i < sec->n; i++)
			if (sec->ids[i] == id)
				return true;
	}
	return false;
}

/* Claims the worker may still make before the registry is full. */
int
inflight_room(void)
{
	return NOTIFY_MAX_IN_FLIGHT - (inflight_local ? (int) hash_get_num_entries(inflight_local) : 0);
}

/*
 * Worker: enter a claimed row, after its row lock is taken and before the
 * claim commits, so that a backend that waited for the lock sees it.
 * Returns false, entering nothing, when another worker holds the row:
 * the claim must drop it.
 */
bool
inflight_add(int64 id)
{
	InFlightEntry *e;
	bool		found;

	e = hash_search(inflight_local, &id, HASH_ENTER, &found);
	if (found)
		elog(ERROR, "notification " INT64_FORMAT " claimed twice", id);
	SpinLockAcquire(&inflight_shared->mutex);
	if (my_section->n >= NOTIFY_MAX_IN_FLIGHT || held_elsewhere(id))
	{
		bool		full = my_section->n >= NOTIFY_MAX_IN_FLIGHT;

		SpinLockRelease(&inflight_shared->mutex);
		hash_search(inflight_local, &id, HASH_REMOVE, NULL);
		if (full)
			elog(ERROR, "too many notifications in flight");
		return false;
	}
	e->slot = my_section->n;
	my_section->ids[my_section->n++] = id;
	SpinLockRelease(&inflight_shared->mutex);
	return true;
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
	move = slot < my_section->n - 1;
	if (move)
	{
		moved = my_section->ids[my_section->n - 1];
		my_section->ids[slot] = moved;
	}
	my_section->n--;
	SpinLockRelease(&inflight_shared->mutex);
	if (move)
	{
		e = hash_search(inflight_local, &moved, HASH_FIND, NULL);
		Assert(e != NULL);
		e->slot = slot;
	}
}

/*
 * notify_in_flight(id bigint) RETURNS boolean: whether a worker holds the
 * row (claimed, outcome not yet recorded).  In a worker (its claim skips
 * these rows) a hash lookup for its own, then a scan of the other
 * workers' ids if there are others; elsewhere a scan of all.
 */
Datum
notify_in_flight(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	bool		result = false;
	int			s,
				i;

	if (inflight_local != NULL)
	{
		if (hash_search(inflight_local, &id, HASH_FIND, NULL) != NULL)
			PG_RETURN_BOOL(true);
		if (inflight_shared->nsections == 1)
			PG_RETURN_BOOL(false);
		SpinLockAcquire(&inflight_shared->mutex);
		result = held_elsewhere(id);
		SpinLockRelease(&inflight_shared->mutex);
		PG_RETURN_BOOL(result);
	}
	if (inflight_shared == NULL)
		PG_RETURN_BOOL(false);
	SpinLockAcquire(&inflight_shared->mutex);
	/* the ids are rows of the workers' database only */
	for (s = 0; inflight_shared->dboid == MyDatabaseId && s < inflight_shared->nsections && !result; s++)
	{
		InFlightSection *sec = &inflight_shared->sections[s];

		for (i = 0; i < sec->n; i++)
		{
			if (sec->ids[i] == id)
			{
				result = true;
				break;
			}
		}
	}
	SpinLockRelease(&inflight_shared->mutex);
	PG_RETURN_BOOL(result);
}

/* notify_in_flight_ids() RETURNS bigint[]: the rows the workers hold. */
Datum
notify_in_flight_ids(PG_FUNCTION_ARGS)
{
	int64	   *ids;
	Datum	   *elems;
	int			n = 0;
	int			s,
				i;

	if (inflight_shared == NULL)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	ids = palloc(sizeof(int64) * NOTIFY_MAX_IN_FLIGHT * inflight_shared->nsections);
	SpinLockAcquire(&inflight_shared->mutex);
	for (s = 0; inflight_shared->dboid == MyDatabaseId && s < inflight_shared->nsections; s++)
	{
		InFlightSection *sec = &inflight_shared->sections[s];

		memcpy(ids + n, sec->ids, sizeof(int64) * sec->n);
		n += sec->n;
	}
	SpinLockRelease(&inflight_shared->mutex);
	elems = palloc(sizeof(Datum) * Max(n, 1));
	for (i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

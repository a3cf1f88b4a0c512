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
 * Shared memory holds, for each worker, a dense array of its ids (a
 * removed id's slot takes the last id), which notify_in_flight_ids copies
 * and an exiting worker empties; and one open-addressing hash set of
 * every worker's ids (id -> worker, linear probing, at most half full),
 * which answers "is this id in flight, and whose?" in constant time,
 * however many workers and however large their batches.  A claim asks
 * that for every row it passes over.
 *
 * Locking: InFlightShared.mutex (a spinlock) protects all of it, and is
 * held for one probe, insertion or deletion at a time, never for a scan,
 * except while an exiting worker deletes its own ids.  Only a section's
 * worker writes its ids; other workers probe when they claim, backends
 * for notify_cancel, notify_retry and the views.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
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

/* A position of the shared hash set. */
typedef struct InFlightSlot
{
	int64		id;
	int32		owner;			/* the worker's index, -1: empty */
} InFlightSlot;

typedef struct InFlightShared
{
	slock_t		mutex;
	Oid			dboid;			/* the workers' database: ids are its rows */
	int			nsections;		/* notify.workers */
	uint32		mask;			/* positions of the hash set - 1 */
	Size		set_offset;		/* where the hash set starts */
	InFlightSection sections[FLEXIBLE_ARRAY_MEMBER];
} InFlightShared;

#define inflight_set() \
	((InFlightSlot *) ((char *) inflight_shared + inflight_shared->set_offset))

/* The worker's own index of the shared array: id -> slot. */
typedef struct InFlightEntry
{
	int64		id;				/* hash key */
	int			slot;
} InFlightEntry;

static InFlightShared *inflight_shared = NULL;
static InFlightSection *my_section = NULL;	/* the worker's own */
static HTAB *inflight_local = NULL;

static Size set_offset(void);
static uint32 set_positions(void);
static int	set_find(int64 id);
static void set_insert(int64 id, int owner);
static void set_delete(int64 id);

PG_FUNCTION_INFO_V1(notify_in_flight);
PG_FUNCTION_INFO_V1(notify_in_flight_ids);

/* Shared memory the registry needs. */
Size
inflight_shmem_size(void)
{
	return add_size(set_offset(), mul_size(sizeof(InFlightSlot), set_positions()));
}

/* Where the hash set starts: after the sections. */
static Size
set_offset(void)
{
	return MAXALIGN(add_size(offsetof(InFlightShared, sections),
							 mul_size(sizeof(InFlightSection), notify_workers)));
}

/* Positions of the hash set: a power of two, at least twice the ids. */
static uint32
set_positions(void)
{
	return pg_nextpower2_32((uint32) (2 * notify_workers * NOTIFY_MAX_IN_FLIGHT));
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
		inflight_shared->mask = set_positions() - 1;
		inflight_shared->set_offset = set_offset();
		for (i = 0; i < notify_workers; i++)
			inflight_shared->sections[i].n = 0;
		for (i = 0; i <= (int) inflight_shared->mask; i++)
			inflight_set()[i].owner = -1;
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
	int			i;

	if (my_section == NULL)
		return;
	SpinLockAcquire(&inflight_shared->mutex);
	for (i = 0; i < my_section->n; i++)
		set_delete(my_section->ids[i]);
	my_section->n = 0;
	SpinLockRelease(&inflight_shared->mutex);
}

/*
 * The hash set (caller holds the mutex).  Linear probing from the id's
 * home position; at most half the positions are taken, so a probe ends
 * at an empty position soon.
 */
static inline uint32
set_home(int64 id)
{
	return (uint32) (((uint64) id * UINT64CONST(0x9E3779B97F4A7C15)) >> 32) & inflight_shared->mask;
}

/* The position holding id, or -1. */
static int
set_find(int64 id)
{
	InFlightSlot *set = inflight_set();
	uint32		i = set_home(id);

	while (set[i].owner >= 0)
	{
		if (set[i].id == id)
			return (int) i;
		i = (i + 1) & inflight_shared->mask;
	}
	return -1;
}

/* Enter id, which is not in the set. */
static void
set_insert(int64 id, int owner)
{
	InFlightSlot *set = inflight_set();
	uint32		i = set_home(id);

	while (set[i].owner >= 0)
		i = (i + 1) & inflight_shared->mask;
	set[i].id = id;
	set[i].owner = owner;
}

/*
 * Remove id, if present, and close the gap: each later entry of the
 * probe run moves back into it when its home allows (it must stay
 * reachable from its home without crossing an empty position).
 */
static void
set_delete(int64 id)
{
	InFlightSlot *set = inflight_set();
	uint32		mask = inflight_shared->mask;
	int			found = set_find(id);
	uint32		i,
				j;

	if (found < 0)
		return;
	i = (uint32) found;
	j = (i + 1) & mask;
	while (set[j].owner >= 0)
	{
		uint32		home = set_home(set[j].id);

		/* j may move to i if i lies on the way from its home to j */
		if (((j - home) & mask) >= ((j - i) & mask))
		{
			set[i] = set[j];
			i = j;
		}
		j = (j + 1) & mask;
	}
	set[i].owner = -1;
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
	if (my_section->n >= NOTIFY_MAX_IN_FLIGHT || set_find(id) >= 0)
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
	set_insert(id, notify_worker_index);
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
	set_delete(id);
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
 * these rows) a lookup in its own hash table, then, if there are other
 * workers, a probe of the shared set; elsewhere a probe of the shared set.
 */
Datum
notify_in_flight(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	bool		result;

	if (inflight_local != NULL)
	{
		if (hash_search(inflight_local, &id, HASH_FIND, NULL) != NULL)
			PG_RETURN_BOOL(true);
		if (inflight_shared->nsections == 1)
			PG_RETURN_BOOL(false);
	}
	else if (inflight_shared == NULL)
		PG_RETURN_BOOL(false);
	SpinLockAcquire(&inflight_shared->mutex);
	/* the ids are rows of the workers' database only */
	result = inflight_shared->dboid == MyDatabaseId && set_find(id) >= 0;
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

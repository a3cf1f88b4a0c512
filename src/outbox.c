/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		Writing one row into notify_outbox without the executor: the insert
 *		at the end of notify_enqueue.
 *
 * An executor INSERT pays, at every execution, for work whose result never
 * changes between calls: the plan cache check, the projection of two dozen
 * columns and their defaults, opening the outbox's eight indexes and
 * building their IndexInfo and partial-index predicates, and the ON
 * CONFLICT set-up.  For a producer that writes one row per business
 * transaction that was most of notify_enqueue's cost (docs/benchmarks.md,
 * "Producer overhead").  Here that work is done once per backend and kept:
 * the column numbers, the default expressions of the columns notify_enqueue
 * does not give, and each index's IndexInfo and predicate.  A relcache
 * callback drops what is kept when the table or its index list changes
 * (ALTER TABLE, CREATE or DROP INDEX), and the next call builds it again.
 *
 * What a call does is what the executor's INSERT ... ON CONFLICT
 * (dedup_key) DO NOTHING does, with the same primitives and in the same
 * order (see ExecInsert in nodeModifyTable.c):
 *
 * 1. With a dedup key, insert the heap tuple speculatively (under a
 *    speculative insertion token), then its index entries; the key's index
 *    is checked without waiting or raising an error (UNIQUE_CHECK_PARTIAL).
 *    When no other row holds the key, the insertion is confirmed: done.
 * 2. Otherwise our tuple is killed at once, and we look for the row with
 *    that key under a dirty snapshot, through the key's unique index.  A
 *    row another transaction is still inserting or deleting is waited for,
 *    then the search starts again; a live row ends the call: its id is the
 *    result.  If the row is gone (its inserter rolled back), back to 1.
 * 3. Without a dedup key the row cannot conflict: a plain insert.
 *
 * ExecInsert looks for a conflicting row before it inserts (step 2 first),
 * so that statements which mostly conflict do not leave a killed tuple
 * and its index entries behind each time.  An enqueue mostly does not
 * conflict (a dedup key repeats only when a producer retries), so here the
 * unique index's own check during the insert is the only look in the
 * common case, and a duplicate costs a killed tuple, which VACUUM removes.
 *
 * Unique indexes other than the key's (the primary key) are checked as an
 * INSERT checks them.  Under REPEATABLE READ or SERIALIZABLE, a live row
 * that the transaction's snapshot does not see is a serialization failure,
 * as for ON CONFLICT DO NOTHING.
 *
 * Differences from an INSERT statement, by design:
 * - The values notify_enqueue gives satisfy the columns' domains by
 *   construction (it checks them, with clear errors, before calling here),
 *   so the domains' CHECKs are not evaluated again; NOT NULL is.  Defaults
 *   are evaluated, domain checks included.
 * - No row triggers, rules or row-level security: the extension defines
 *   none on notify_outbox.  The one statement trigger it has, which makes
 *   COMMIT wake the worker, is applied by calling notify_wake_at_commit().
 * - Indexes with expressions are supported; exclusion constraints,
 *   deferrable unique constraints and generated columns on notify_outbox
 *   are refused (SQLSTATE 0A000, naming the index or column).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "notify.h"
#include "wakeup.h"

/* the columns notify_enqueue gives, in NotifyOutboxColumn order */
static const char *const given_names[NOTIFY_OUTBOX_NCOLUMNS] = {
	"dedup_key", "template_key", "template_version", "locale", "channel",
	"category", "recipient", "payload", "priority", "max_attempts",
	"send_at", "expires_at", "next_attempt_at", "actor", "metadata",
	"status", "skip_reason"
};

typedef struct OutboxIndex
{
	Oid			oid;
	IndexInfo  *info;			/* expressions prepared, if any */
	ExprState  *predicate;		/* partial index: its WHERE; else NULL */
	bool		ready;			/* indisready: takes entries */
	bool		unique;
	bool		arbiter;		/* the dedup key's unique index */
} OutboxIndex;

/* What is kept per backend, in its own memory context. */
typedef struct OutboxCache
{
	uint32		built_at;		/* invalidations when it was built */
	Oid			nsp;
	Oid			relid;
	MemoryContext cxt;
	int			natts;
	AttrNumber	given[NOTIFY_OUTBOX_NCOLUMNS];
	bool	   *is_given;		/* per attribute (natts) */
	ExprState **defaults;		/* per attribute: its default, or NULL */
	AttrNumber	id_attno;
	int			nindexes;
	OutboxIndex *indexes;
	OutboxIndex *arbiter;
	Oid			arbiter_collation;
	bool		has_expressions;	/* some index needs an EState */
} OutboxCache;

static OutboxCache cache;
static bool callback_registered = false;

/*
 * Bumped by the relcache callback when the outbox, one of its indexes, or
 * everything is invalidated; the cache is current while it equals
 * cache.built_at (it starts at 1, so an unbuilt cache is not current).
 */
static uint32 invalidations = 1;

static void
outbox_relcache_callback(Datum arg, Oid relid)
{
	bool		ours = relid == InvalidOid || relid == cache.relid;

	for (int i = 0; !ours && i < cache.nindexes; i++)
		ours = relid == cache.indexes[i].oid;
	if (ours)
		invalidations++;
}

#define cache_current(nsp) (cache.built_at == invalidations && cache.nsp == (nsp))

static AttrNumber
column_number(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of relation \"notify_outbox\" does not exist", name)));
	return InvalidAttrNumber;	/* keep the compiler quiet */
}

/* Build what is kept for rel, the outbox of schema nsp. */
static void
build_cache(Relation rel, Oid nsp)
{
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *index_oids;
	ListCell   *lc;
	MemoryContext old;
	int			n = 0;
	uint32		start = invalidations;

	cache.built_at = 0;
	cache.nindexes = 0;
	cache.relid = RelationGetRelid(rel);
	if (cache.cxt != NULL)
		MemoryContextDelete(cache.cxt);
	cache.cxt = AllocSetContextCreate(CacheMemoryContext, "notify outbox insert",
									  ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cache.cxt);

	cache.natts = desc->natts;
	cache.is_given = palloc0(sizeof(bool) * desc->natts);
	cache.defaults = palloc0(sizeof(ExprState *) * desc->natts);
	for (int i = 0; i < NOTIFY_OUTBOX_NCOLUMNS; i++)
	{
		cache.given[i] = column_number(desc, given_names[i]);
		cache.is_given[cache.given[i] - 1] = true;
	}
	cache.id_attno = column_number(desc, "id");
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *def;

		if (att->attisdropped || cache.is_given[i])
			continue;
		if (att->attgenerated)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("notify_enqueue does not support generated column \"%s\" of notify_outbox",
							NameStr(att->attname))));
		/* identity columns get their nextval() here, as in an INSERT */
		def = build_column_default(rel, i + 1);
		if (def != NULL)
			cache.defaults[i] = ExecInitExpr(expression_planner((Expr *) def), NULL);
	}

	index_oids = RelationGetIndexList(rel);
	cache.indexes = palloc0(sizeof(OutboxIndex) * Max(list_length(index_oids), 1));
	cache.arbiter = NULL;
	cache.has_expressions = false;
	foreach(lc, index_oids)
	{
		Oid			oid = lfirst_oid(lc);
		Relation	irel = index_open(oid, RowExclusiveLock);
		OutboxIndex *ix = &cache.indexes[n++];
		IndexInfo  *ii = BuildIndexInfo(irel);

		if (ii->ii_ExclusionOps != NULL ||
			(irel->rd_index->indisunique && !irel->rd_index->indimmediate))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("notify_enqueue does not support index \"%s\" on notify_outbox",
							RelationGetRelationName(irel)),
					 errdetail("Exclusion constraints and deferrable unique constraints on the outbox are not supported.")));
		ix->oid = oid;
		ix->info = ii;
		ix->ready = irel->rd_index->indisready;
		ix->unique = irel->rd_index->indisunique;
		if (ii->ii_Expressions != NIL)
		{
			List	   *states = NIL;
			ListCell   *e;

			foreach(e, ii->ii_Expressions)
				states = lappend(states, ExecInitExpr(expression_planner((Expr *) lfirst(e)), NULL));
			ii->ii_ExpressionsState = states;
			cache.has_expressions = true;
		}
		if (ii->ii_Predicate != NIL)
			ix->predicate = ExecInitQual((List *) expression_planner((Expr *) ii->ii_Predicate), NULL);
		/* what ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL infers */
		if (cache.arbiter == NULL && irel->rd_index->indisunique &&
			ii->ii_NumIndexKeyAttrs == 1 && ii->ii_Expressions == NIL &&
			ii->ii_IndexAttrNumbers[0] == cache.given[NOTIFY_OUTBOX_DEDUP_KEY])
		{
			ix->arbiter = true;
			cache.arbiter = ix;
			cache.arbiter_collation = irel->rd_indcollation[0];
		}
		index_close(irel, NoLock);
		cache.nindexes = n;
	}
	if (cache.arbiter == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("notify_outbox has no unique index on dedup_key"),
				 errhint("notify_enqueue needs notify_outbox_dedup_key_key; recreate it or the extension.")));

	MemoryContextSwitchTo(old);
	cache.nsp = nsp;
	/* an invalidation that came in while building: build again next time */
	cache.built_at = start;
}

/*
 * The id of the live row whose dedup key is key, waiting for transactions
 * that are inserting or deleting such a row; false when there is none.
 */
static bool
find_dedup_row(Relation rel, Datum key, int64 *id)
{
	SnapshotData dirty;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;

	for (;;)
	{
		bool		wait = false;
		TransactionId xwait = InvalidTransactionId;
		uint32		token = 0;
		ItemPointerData ctid;

		InitDirtySnapshot(dirty);
		ScanKeyInit(&skey, cache.given[NOTIFY_OUTBOX_DEDUP_KEY], BTEqualStrategyNumber,
					F_TEXTEQ, key);
		skey.sk_collation = cache.arbiter_collation;
		scan = systable_beginscan(rel, cache.arbiter->oid, true, &dirty, 1, &skey);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			bool		isnull;

			if (TransactionIdIsValid(dirty.xmin) || TransactionIdIsValid(dirty.xmax))
			{
				/* being inserted or deleted: wait for it, then look again */
				xwait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
				token = dirty.speculativeToken;
				ctid = tup->t_self;
				wait = true;
				break;
			}
			if (IsolationUsesXactSnapshot() &&
				!table_tuple_satisfies_snapshot(rel, scan->slot, GetTransactionSnapshot()))
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			*id = DatumGetInt64(heap_getattr(tup, cache.id_attno, RelationGetDescr(rel), &isnull));
			systable_endscan(scan);
			return true;
		}
		systable_endscan(scan);
		if (!wait)
			return false;
		if (token != 0)
			SpeculativeInsertionWait(xwait, token);
		else
			XactLockTableWait(xwait, rel, &ctid, XLTW_InsertIndex);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Index entries for the tuple in slot.  speculative: check the dedup key's
 * index without waiting; true means another row may hold the key.
 *
 * An index is opened (and locked) only when the row takes an entry in it:
 * most of the outbox's indexes are partial and a new row matches three of
 * them.  The ones it skips need no lock: DROP INDEX and REINDEX lock the
 * table, which we hold in RowExclusiveLock, and CREATE INDEX CONCURRENTLY
 * waits for us before it relies on the index being complete; a change to
 * an index's definition or state arrives as a relcache invalidation, which
 * makes the next call build the cache again.
 */
static bool
insert_index_entries(Relation rel, Relation *irels, TupleTableSlot *slot,
					 ExprContext *econtext, EState *estate, bool speculative)
{
	bool		conflict = false;

	for (int i = 0; i < cache.nindexes; i++)
	{
		OutboxIndex *ix = &cache.indexes[i];
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];
		IndexUniqueCheck check;

		if (!ix->ready)
			continue;
		if (ix->predicate != NULL && !ExecQual(ix->predicate, econtext))
			continue;
		if (irels[i] == NULL)
			irels[i] = index_open(ix->oid, RowExclusiveLock);
		FormIndexDatum(ix->info, slot, estate, values, isnull);
		if (!ix->unique)
			check = UNIQUE_CHECK_NO;
		else if (speculative && ix->arbiter)
			check = UNIQUE_CHECK_PARTIAL;
		else
			check = UNIQUE_CHECK_YES;
		if (!notify_index_insert(irels[i], values, isnull, &slot->tts_tid, rel, check, ix->info) &&
			check == UNIQUE_CHECK_PARTIAL)
			conflict = true;
	}
	ResetExprContext(econtext);
	return conflict;
}

/*
 * notify_outbox_insert
 *		Insert a row into the outbox of schema nsp: the given columns from
 *		values/isnull (NotifyOutboxColumn order), the others their
 *		defaults.  Returns true and the new row's id, or, when a row with
 *		the same dedup key exists, false and that row's id.
 */
bool
notify_outbox_insert(Oid nsp, const Datum *values, const bool *isnull, int64 *id)
{
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	TupleTableSlot *slot;
	ExprContext *econtext;
	EState	   *estate = NULL;
	Relation   *irels;
	CommandId	cid;
	bool		has_key = !isnull[NOTIFY_OUTBOX_DEDUP_KEY];
	bool		inserted = false;

	PreventCommandIfReadOnly("notify_enqueue()");
	PreventCommandIfParallelMode("notify_enqueue()");
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(outbox_relcache_callback, (Datum) 0);
		callback_registered = true;
	}

	relid = cache_current(nsp) ? cache.relid : get_relname_relid("notify_outbox", nsp);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"notify_outbox\" of extension notify does not exist in schema \"%s\"",
						get_namespace_name(nsp))));
	rel = table_open(relid, RowExclusiveLock);
	/* taking the lock may have processed invalidations */
	if (!cache_current(nsp) || cache.relid != relid)
		build_cache(rel, nsp);
	desc = RelationGetDescr(rel);

	/* the row: given values, then defaults (the id's nextval among them) */
	econtext = CreateStandaloneExprContext();
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	for (int i = 0; i < cache.natts; i++)
	{
		slot->tts_values[i] = (Datum) 0;
		slot->tts_isnull[i] = true;
	}
	for (int c = 0; c < NOTIFY_OUTBOX_NCOLUMNS; c++)
	{
		slot->tts_values[cache.given[c] - 1] = values[c];
		slot->tts_isnull[cache.given[c] - 1] = isnull[c];
	}
	for (int i = 0; i < cache.natts; i++)
		if (cache.defaults[i] != NULL)
			slot->tts_values[i] = ExecEvalExprSwitchContext(cache.defaults[i], econtext,
															&slot->tts_isnull[i]);
	for (int i = 0; i < cache.natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attnotnull && slot->tts_isnull[i])
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in column \"%s\" of relation \"notify_outbox\" violates not-null constraint",
							NameStr(att->attname))));
	}
	ExecStoreVirtualTuple(slot);
	/* the defaults' values live in econtext's memory, which is reset below */
	ExecMaterializeSlot(slot);
	*id = DatumGetInt64(slot->tts_values[cache.id_attno - 1]);

	econtext->ecxt_scantuple = slot;
	if (cache.has_expressions)
	{
		estate = CreateExecutorState();
		GetPerTupleExprContext(estate)->ecxt_scantuple = slot;
	}
	irels = palloc0(sizeof(Relation) * Max(cache.nindexes, 1));

	cid = GetCurrentCommandId(true);
	if (!has_key)
	{
		table_tuple_insert(rel, slot, cid, 0, NULL);
		insert_index_entries(rel, irels, slot, econtext, estate, false);
		inserted = true;
	}
	else
	{
		for (;;)
		{
			int64		existing;
			uint32		token;
			bool		conflict;

			token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
			table_tuple_insert_speculative(rel, slot, cid, 0, NULL, token);
			conflict = insert_index_entries(rel, irels, slot, econtext, estate, true);
			table_tuple_complete_speculative(rel, slot, token, !conflict);
			SpeculativeInsertionLockRelease(GetCurrentTransactionId());
			if (!conflict)
			{
				inserted = true;
				break;
			}
			/* another row holds the key, or is being inserted with it */
			if (find_dedup_row(rel, values[NOTIFY_OUTBOX_DEDUP_KEY], &existing))
			{
				*id = existing;
				break;
			}
			CHECK_FOR_INTERRUPTS();
		}
	}

	for (int i = 0; i < cache.nindexes; i++)
		if (irels[i] != NULL)
			index_close(irels[i], NoLock);
	table_close(rel, NoLock);
	ExecDropSingleTupleTableSlot(slot);
	FreeExprContext(econtext, true);
	if (estate != NULL)
		FreeExecutorState(estate);

	if (inserted)
	{
		notify_wake_at_commit();
		/* as after an INSERT statement: later commands see the row */
		CommandCounterIncrement();
	}
	return inserted;
}

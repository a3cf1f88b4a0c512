/*-------------------------------------------------------------------------
 *
 * direct_insert.c
 *		Writing the rows notify_enqueue writes without the executor: its
 *		notify_outbox row and, for a skipped or deduplicated notification,
 *		its notify_audit_log row.
 *
 * An executor INSERT pays, at every execution, for work whose result never
 * changes between calls: the plan cache check, the projection of the
 * columns and their defaults, opening the table's indexes and building
 * their IndexInfo and partial-index predicates, the trigger and ON
 * CONFLICT set-up.  For a producer that writes one row per business
 * transaction that was most of notify_enqueue's cost (docs/benchmarks.md,
 * "Producer overhead").  Here that work is done once per backend and table
 * and kept: the column numbers, the default expressions of the columns the
 * caller does not give, the CHECK constraints, and each index's IndexInfo
 * and predicate.  A relcache callback drops what is kept when a table or
 * its index list changes (ALTER TABLE, CREATE or DROP INDEX), and the next
 * call builds it again.
 *
 * An outbox row is written as INSERT ... ON CONFLICT (dedup_key) DO NOTHING
 * writes it, with the same primitives (see ExecInsert in
 * nodeModifyTable.c):
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
 * 3. Without a dedup key (and for an audit row) the row cannot conflict:
 *    a plain insert.
 *
 * ExecInsert looks for a conflicting row before it inserts (step 2 first),
 * so that statements which mostly conflict do not leave a killed tuple
 * and its index entries behind each time.  An enqueue mostly does not
 * conflict (a dedup key repeats only when a producer retries), so here the
 * unique index's own check during the insert is the only look in the
 * common case, and a duplicate costs a killed tuple, which VACUUM removes.
 *
 * Unique indexes other than the key's (the primary keys) are checked as an
 * INSERT checks them.  Under REPEATABLE READ or SERIALIZABLE, a live row
 * that the transaction's snapshot does not see is a serialization failure,
 * as for ON CONFLICT DO NOTHING.
 *
 * What an INSERT statement would also do, and how it is done here:
 * - NOT NULL and CHECK constraints are checked, with an INSERT's errors.
 *   The values notify_enqueue gives satisfy their columns' domains by
 *   construction (it checks them, with clear errors, before calling here),
 *   so the domains' CHECKs are not evaluated again.  Defaults are
 *   evaluated, domain checks included.
 * - Triggers: each table has a list of the extension's own INSERT
 *   triggers whose work the caller does: notify_outbox_wake (the COMMIT
 *   wake-up, done by calling notify_wake_at_commit()) and
 *   notify_audit_log_stamp (which sets at and db_role from the server for
 *   roles other than the log's owner; notify_enqueue runs as the owner,
 *   and the defaults are those values).  Any other enabled INSERT trigger,
 *   a rule, or forced row-level security on the table is refused
 *   (SQLSTATE 0A000, naming it) rather than silently skipped; so are
 *   exclusion constraints, deferrable unique constraints and generated
 *   columns.
 * - Indexes with expressions and partial indexes are maintained.
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
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
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
static const char *const outbox_columns[NOTIFY_OUTBOX_NCOLUMNS] = {
	"dedup_key", "template_key", "template_version", "locale", "channel",
	"category", "recipient", "payload", "priority", "max_attempts",
	"send_at", "expires_at", "next_attempt_at", "actor", "metadata",
	"status", "skip_reason"
};
static const char *const outbox_triggers[] = {"notify_outbox_wake", NULL};

/* the columns of an audit row, in NotifyAuditColumn order */
static const char *const audit_columns[NOTIFY_AUDIT_NCOLUMNS] = {
	"actor", "action", "object", "detail"
};
static const char *const audit_triggers[] = {"notify_audit_log_stamp", NULL};

#define MAX_GIVEN NOTIFY_OUTBOX_NCOLUMNS
StaticAssertDecl((int) NOTIFY_AUDIT_NCOLUMNS <= (int) MAX_GIVEN, "KeptTable.given is too small for an audit row");

typedef struct KeptIndex
{
	Oid			oid;
	IndexInfo  *info;			/* expressions prepared, if any */
	ExprState  *predicate;		/* partial index: its WHERE; else NULL */
	bool		ready;			/* indisready: takes entries */
	bool		unique;
	bool		arbiter;		/* the dedup key's unique index */
} KeptIndex;

typedef struct KeptCheck
{
	const char *name;
	ExprState  *expr;
} KeptCheck;

/*
 * One table written here: what it is, and what is kept for it per backend,
 * in its own memory context.
 */
typedef struct KeptTable
{
	/* the table */
	const char *relname;
	int			ngiven;
	const char *const *given_names;
	const char *arbiter_column;	/* ON CONFLICT (this) DO NOTHING, or NULL */
	const char *const *known_triggers;	/* NULL-terminated */

	/* kept */
	uint32		built_at;		/* invalidations when it was built */
	Oid			nsp;
	Oid			relid;
	MemoryContext cxt;
	int			natts;
	AttrNumber	given[MAX_GIVEN];
	bool	   *is_given;		/* per attribute (natts) */
	ExprState **defaults;		/* per attribute: its default, or NULL */
	AttrNumber	id_attno;
	int			nchecks;
	KeptCheck  *checks;
	int			nindexes;
	KeptIndex  *indexes;
	KeptIndex  *arbiter;
	Oid			arbiter_collation;
	bool		has_expressions;	/* some index needs an EState */
} KeptTable;

static KeptTable outbox = {
	.relname = "notify_outbox",
	.ngiven = NOTIFY_OUTBOX_NCOLUMNS,
	.given_names = outbox_columns,
	.arbiter_column = "dedup_key",
	.known_triggers = outbox_triggers,
};
static KeptTable audit_log = {
	.relname = "notify_audit_log",
	.ngiven = NOTIFY_AUDIT_NCOLUMNS,
	.given_names = audit_columns,
	.arbiter_column = NULL,
	.known_triggers = audit_triggers,
};
static KeptTable *const tables[] = {&outbox, &audit_log};

static bool callback_registered = false;

/*
 * Bumped by the relcache callback when one of the tables, one of their
 * indexes, or everything is invalidated; a table's cache is current while
 * it equals its built_at (it starts at 1, so an unbuilt cache is not
 * current).
 */
static uint32 invalidations = 1;

static void
relcache_callback(Datum arg, Oid relid)
{
	for (size_t t = 0; t < lengthof(tables); t++)
	{
		KeptTable  *kt = tables[t];
		bool		ours = relid == InvalidOid || relid == kt->relid;

		for (int i = 0; !ours && i < kt->nindexes; i++)
			ours = relid == kt->indexes[i].oid;
		if (ours)
		{
			invalidations++;
			return;
		}
	}
}

#define cache_current(kt, nsp_) ((kt)->built_at == invalidations && (kt)->nsp == (nsp_))

static AttrNumber
column_number(KeptTable *kt, TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of relation \"%s\" does not exist", name, kt->relname)));
	return InvalidAttrNumber;	/* keep the compiler quiet */
}

static void
refuse(KeptTable *kt, const char *what, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("notify_enqueue does not support %s \"%s\" on %s", what, name, kt->relname),
			 errdetail("notify_enqueue writes %s without the executor; it maintains indexes and checks NOT NULL and CHECK constraints, nothing else.",
					   kt->relname)));
}

/* Refuse what an INSERT into rel would do that is not done here. */
static void
check_supported(KeptTable *kt, Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	if (rel->rd_rel->relhasrules)
		refuse(kt, "rules", "ON INSERT");
	if (rel->rd_rel->relrowsecurity && rel->rd_rel->relforcerowsecurity)
		refuse(kt, "forced row-level security", RelationGetRelationName(rel));
	for (int i = 0; td != NULL && i < td->numtriggers; i++)
	{
		Trigger    *tg = &td->triggers[i];
		bool		known = false;

		if (!TRIGGER_FOR_INSERT(tg->tgtype) || tg->tgenabled == TRIGGER_DISABLED)
			continue;
		for (const char *const *k = kt->known_triggers; *k != NULL && !known; k++)
			known = strcmp(tg->tgname, *k) == 0;
		if (!known)
			refuse(kt, "trigger", tg->tgname);
	}
}

/* Build what is kept for rel, the table kt of schema nsp. */
static void
build_cache(KeptTable *kt, Relation rel, Oid nsp)
{
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *index_oids;
	ListCell   *lc;
	MemoryContext old;
	int			n = 0;
	uint32		start = invalidations;
	AttrNumber	arbiter_attno = InvalidAttrNumber;

	kt->built_at = 0;
	kt->nindexes = 0;
	kt->nchecks = 0;
	kt->relid = RelationGetRelid(rel);
	if (kt->cxt != NULL)
		MemoryContextDelete(kt->cxt);
	kt->cxt = AllocSetContextCreate(CacheMemoryContext, "notify direct insert",
									ALLOCSET_SMALL_SIZES);
	MemoryContextSetIdentifier(kt->cxt, kt->relname);
	old = MemoryContextSwitchTo(kt->cxt);

	check_supported(kt, rel);
	kt->natts = desc->natts;
	kt->is_given = palloc0(sizeof(bool) * desc->natts);
	kt->defaults = palloc0(sizeof(ExprState *) * desc->natts);
	for (int i = 0; i < kt->ngiven; i++)
	{
		kt->given[i] = column_number(kt, desc, kt->given_names[i]);
		kt->is_given[kt->given[i] - 1] = true;
	}
	kt->id_attno = column_number(kt, desc, "id");
	if (kt->arbiter_column != NULL)
		arbiter_attno = column_number(kt, desc, kt->arbiter_column);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *def;

		if (att->attisdropped || kt->is_given[i])
			continue;
		if (att->attgenerated)
			refuse(kt, "generated column", NameStr(att->attname));
		/* identity columns get their nextval() here, as in an INSERT */
		def = build_column_default(rel, i + 1);
		if (def != NULL)
			kt->defaults[i] = ExecInitExpr(expression_planner((Expr *) def), NULL);
	}

	/* CHECK constraints, as ExecRelCheck evaluates them */
	if (desc->constr != NULL && desc->constr->num_check > 0)
	{
		ConstrCheck *cc = desc->constr->check;

		kt->checks = palloc0(sizeof(KeptCheck) * desc->constr->num_check);
		for (int i = 0; i < desc->constr->num_check; i++)
		{
			Expr	   *e = stringToNode(cc[i].ccbin);

			kt->checks[i].name = pstrdup(cc[i].ccname);
			kt->checks[i].expr = ExecInitCheck((List *) expression_planner((Expr *) list_make1(e)), NULL);
		}
		kt->nchecks = desc->constr->num_check;
	}

	index_oids = RelationGetIndexList(rel);
	kt->indexes = palloc0(sizeof(KeptIndex) * Max(list_length(index_oids), 1));
	kt->arbiter = NULL;
	kt->has_expressions = false;
	foreach(lc, index_oids)
	{
		Oid			oid = lfirst_oid(lc);
		Relation	irel = index_open(oid, RowExclusiveLock);
		KeptIndex  *ix = &kt->indexes[n++];
		IndexInfo  *ii = BuildIndexInfo(irel);

		if (ii->ii_ExclusionOps != NULL ||
			(irel->rd_index->indisunique && !irel->rd_index->indimmediate))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("notify_enqueue does not support index \"%s\" on %s",
							RelationGetRelationName(irel), kt->relname),
					 errdetail("Exclusion constraints and deferrable unique constraints on %s are not supported.",
							   kt->relname)));
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
			kt->has_expressions = true;
		}
		if (ii->ii_Predicate != NIL)
			ix->predicate = ExecInitQual((List *) expression_planner((Expr *) ii->ii_Predicate), NULL);
		/* what ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL infers */
		if (arbiter_attno != InvalidAttrNumber && kt->arbiter == NULL &&
			irel->rd_index->indisunique &&
			ii->ii_NumIndexKeyAttrs == 1 && ii->ii_Expressions == NIL &&
			ii->ii_IndexAttrNumbers[0] == arbiter_attno)
		{
			ix->arbiter = true;
			kt->arbiter = ix;
			kt->arbiter_collation = irel->rd_indcollation[0];
		}
		index_close(irel, NoLock);
		kt->nindexes = n;
	}
	if (kt->arbiter_column != NULL && kt->arbiter == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s has no unique index on %s", kt->relname, kt->arbiter_column),
				 errhint("notify_enqueue needs it; recreate it or the extension.")));

	MemoryContextSwitchTo(old);
	kt->nsp = nsp;
	/* an invalidation that arrived while building leaves it unbuilt */
	kt->built_at = start;
}

/*
 * The id of the live row of kt whose arbiter column is key, waiting for
 * transactions that are inserting or deleting such a row; false when there
 * is none.
 */
static bool
find_conflicting_row(KeptTable *kt, Relation rel, Datum key, int64 *id)
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
		ScanKeyInit(&skey, kt->arbiter->info->ii_IndexAttrNumbers[0], BTEqualStrategyNumber,
					F_TEXTEQ, key);
		skey.sk_collation = kt->arbiter_collation;
		scan = systable_beginscan(rel, kt->arbiter->oid, true, &dirty, 1, &skey);
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
			*id = DatumGetInt64(heap_getattr(tup, kt->id_attno, RelationGetDescr(rel), &isnull));
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
 * Index entries for the tuple in slot.  speculative: check the arbiter
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
insert_index_entries(KeptTable *kt, Relation rel, Relation *irels, TupleTableSlot *slot,
					 ExprContext *econtext, EState *estate, bool speculative)
{
	bool		conflict = false;

	for (int i = 0; i < kt->nindexes; i++)
	{
		KeptIndex  *ix = &kt->indexes[i];
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
 * Insert a row into table kt of schema nsp: the given columns from
 * values/isnull (in kt's order), the others their defaults.  Returns true
 * and the new row's id, or, when a row with the same arbiter key exists,
 * false and that row's id.
 */
static bool
direct_insert(KeptTable *kt, Oid nsp, const Datum *values, const bool *isnull, int64 *id)
{
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	TupleTableSlot *slot;
	ExprContext *econtext;
	EState	   *estate = NULL;
	Relation   *irels;
	CommandId	cid;
	bool		has_key;
	bool		inserted = false;

	PreventCommandIfReadOnly("notify_enqueue()");
	PreventCommandIfParallelMode("notify_enqueue()");
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
		callback_registered = true;
	}

	relid = cache_current(kt, nsp) ? kt->relid : get_relname_relid(kt->relname, nsp);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s\" of extension notify does not exist in schema \"%s\"",
						kt->relname, get_namespace_name(nsp))));
	rel = table_open(relid, RowExclusiveLock);
	/* taking the lock may have processed invalidations */
	if (!cache_current(kt, nsp) || kt->relid != relid)
		build_cache(kt, rel, nsp);
	desc = RelationGetDescr(rel);

	/* the row: given values, then defaults (the id's nextval among them) */
	econtext = CreateStandaloneExprContext();
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	for (int i = 0; i < kt->natts; i++)
	{
		slot->tts_values[i] = (Datum) 0;
		slot->tts_isnull[i] = true;
	}
	for (int c = 0; c < kt->ngiven; c++)
	{
		slot->tts_values[kt->given[c] - 1] = values[c];
		slot->tts_isnull[kt->given[c] - 1] = isnull[c];
	}
	for (int i = 0; i < kt->natts; i++)
		if (kt->defaults[i] != NULL)
			slot->tts_values[i] = ExecEvalExprSwitchContext(kt->defaults[i], econtext,
															&slot->tts_isnull[i]);
	for (int i = 0; i < kt->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attnotnull && slot->tts_isnull[i])
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
							NameStr(att->attname), kt->relname)));
	}
	ExecStoreVirtualTuple(slot);
	/* the defaults' values live in econtext's memory, which is reset below */
	ExecMaterializeSlot(slot);
	*id = DatumGetInt64(slot->tts_values[kt->id_attno - 1]);

	econtext->ecxt_scantuple = slot;
	for (int i = 0; i < kt->nchecks; i++)
		if (!ExecCheck(kt->checks[i].expr, econtext))
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("new row for relation \"%s\" violates check constraint \"%s\"",
							kt->relname, kt->checks[i].name),
					 errtable(rel)));
	if (kt->has_expressions)
	{
		estate = CreateExecutorState();
		GetPerTupleExprContext(estate)->ecxt_scantuple = slot;
	}
	irels = palloc0(sizeof(Relation) * Max(kt->nindexes, 1));

	has_key = kt->arbiter != NULL && !slot->tts_isnull[kt->arbiter->info->ii_IndexAttrNumbers[0] - 1];
	cid = GetCurrentCommandId(true);
	if (!has_key)
	{
		table_tuple_insert(rel, slot, cid, 0, NULL);
		insert_index_entries(kt, rel, irels, slot, econtext, estate, false);
		inserted = true;
	}
	else
	{
		Datum		key = slot->tts_values[kt->arbiter->info->ii_IndexAttrNumbers[0] - 1];

		for (;;)
		{
			int64		existing;
			uint32		token;
			bool		conflict;

			token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
			table_tuple_insert_speculative(rel, slot, cid, 0, NULL, token);
			conflict = insert_index_entries(kt, rel, irels, slot, econtext, estate, true);
			table_tuple_complete_speculative(rel, slot, token, !conflict);
			SpeculativeInsertionLockRelease(GetCurrentTransactionId());
			if (!conflict)
			{
				inserted = true;
				break;
			}
			/* another row holds the key, or is being inserted with it */
			if (find_conflicting_row(kt, rel, key, &existing))
			{
				*id = existing;
				break;
			}
			CHECK_FOR_INTERRUPTS();
		}
	}

	for (int i = 0; i < kt->nindexes; i++)
		if (irels[i] != NULL)
			index_close(irels[i], NoLock);
	table_close(rel, NoLock);
	ExecDropSingleTupleTableSlot(slot);
	FreeExprContext(econtext, true);
	if (estate != NULL)
		FreeExecutorState(estate);

	/* as after an INSERT statement: later commands see the row */
	if (inserted)
		CommandCounterIncrement();
	return inserted;
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
	bool		inserted = direct_insert(&outbox, nsp, values, isnull, id);

	/* what the notify_outbox_wake trigger does */
	if (inserted)
		notify_wake_at_commit();
	return inserted;
}

/*
 * notify_audit_insert
 *		Append a row to the audit log of schema nsp: the given columns from
 *		values/isnull (NotifyAuditColumn order), at, db_role and id their
 *		defaults.  The caller runs as the log's owner, for whom the
 *		notify_audit_log_stamp trigger keeps those defaults.
 */
void
notify_audit_insert(Oid nsp, const Datum *values, const bool *isnull)
{
	int64		id;

	direct_insert(&audit_log, nsp, values, isnull, &id);
}

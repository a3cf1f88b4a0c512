/*-------------------------------------------------------------------------
 *
 * unsubscribe.c
 *		Who may receive what, the C parts: notify_decide() (the send/skip
 *		decision), the address normalization preferences and suppressions
 *		are keyed by, one-click unsubscribe tokens (RFC 8058), and the
 *		random bytes the signing keys are made of.
 *
 * notify_decide() runs once per enqueue and once per message in the
 * worker.  As PL/pgSQL it cost two or three SPI statements, whose
 * executor set-up and first-use-in-a-transaction work (plan revalidation,
 * simple-expression states) came to several times the index probes
 * themselves (docs/benchmarks.md).  Here it reads the tables with plain
 * index scans (systable_beginscan, as pg_cron does on its own tables),
 * under the caller's active snapshot, so it sees what a query in its
 * place would see.  Relation and column numbers are looked up by name in
 * the function's own schema and cached until a relcache invalidation
 * touches one of the relations.  Reading the tables directly skips their
 * privilege checks: EXECUTE on notify_decide is what grants the answer
 * (PUBLIC has none).
 *
 * A token is
 *
 *		base64url(payload) "." base64url(HMAC-SHA256(key, context || payload))
 *
 * without padding, where context is the 18 bytes "notify-unsubscribe"
 * (so a key that were ever reused elsewhere could not sign tokens by
 * accident) and payload, version 1, is, with integers big-endian:
 *
 *		u8	version (1)
 *		u8	flags: 0x01 an expiry follows, 0x02 a tenant follows
 *		u32 key id (notify_unsubscribe_keys.key_id)
 *		u32 expiry, unix seconds					(flag 0x01)
 *		u8	category length, category bytes
 *		u16 recipient length, recipient bytes
 *		u16 tenant length, tenant bytes				(flag 0x02)
 *
 * and nothing after.  Strings are in the database encoding.  A token for
 * alice@example.com / marketing is about 90 characters, safe in a URL as
 * it is.  The payload is signed, not encrypted: whoever holds the token
 * can read the address in it (it is mailed to that address anyway).
 *
 * The token functions touch no table.  The SQL layer
 * (sql/70_preferences.sql) picks the key: notify_unsubscribe_token() signs with the newest active
 * key; notify_unsubscribe() reads the key id with
 * notify_unsubscribe_key_id(), looks the key up, and calls
 * notify_unsubscribe_verify(), which compares MACs in constant time, then
 * parses strictly and checks the expiry against the transaction's start.
 * Only the canonical spelling of a token verifies.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "hmac.h"
#include "notify.h"

#define TOKEN_VERSION		1
#define FLAG_EXPIRY			0x01
#define FLAG_TENANT			0x02
#define TOKEN_MAX_LEN		4096	/* characters; far above any real token */
#define KEY_MIN_LEN			16		/* bytes of a signing key */
#define RANDOM_MAX_LEN		1024	/* bytes notify_random_bytes() returns */
#define CATEGORY_MAX_LEN	255
#define STRING_MAX_LEN		65535

static const char mac_context[] = "notify-unsubscribe";

/* the relations notify_decide reads, and their columns, in one schema */
typedef struct DecideRels
{
	bool		valid;
	Oid			nsp;
	Oid			categories;
	Oid			categories_pkey;
	AttrNumber	cat_name;
	AttrNumber	cat_mandatory;
	AttrNumber	cat_default_opt_in;
	AttrNumber	cat_default_priority;
	AttrNumber	cat_default_max_attempts;
	Oid			channels;
	Oid			channels_pkey;
	AttrNumber	ch_name;
	AttrNumber	ch_kind;
	AttrNumber	ch_settings;
	Oid			suppressions;
	Oid			suppressions_hashed;	/* partial index: sha256:% only */
	Oid			suppressions_address;	/* hash index: the enqueue's probe */
	AttrNumber	sup_address;
	AttrNumber	sup_expires_at;
	Oid			preferences;
	Oid			preferences_scope;
	Oid			preferences_category;
	AttrNumber	pref_recipient;
	AttrNumber	pref_category;
	AttrNumber	pref_tenant;
	AttrNumber	pref_channel;
	AttrNumber	pref_opted_in;
} DecideRels;

static DecideRels decide_rels;
static bool decide_callback_registered = false;

/*
 * Channels and categories change rarely and are read by every enqueue and
 * every claimed message, so each backend keeps the rows it has read, with
 * two facts that let an enqueue skip a probe that cannot find anything:
 * whether a category has any preference row, and whether any suppression
 * is kept hashed.  Plain DML does not invalidate anything by itself: a
 * statement trigger on notify_channels, notify_categories,
 * notify_preferences and notify_suppressions (notify_lookup_invalidate)
 * sends a relcache invalidation of the table, which every backend receives
 * at its next transaction start or lock, or when notify_category_lookup
 * accepts pending invalidations (and the writing backend at its next
 * command, or at rollback); decide_rels_invalidate then clears
 * lookup_valid, and the next lookup empties the cache.  Misses read the
 * latest committed rows (not the caller's snapshot): a row read with an
 * older snapshot could be cached after the invalidation that made it
 * stale, and stay.  A row read while an invalidation arrived is used but
 * not kept.
 */
#define LOOKUP_CACHE_MAX	64		/* entries; beyond that, misses probe */

typedef struct LookupEntry
{
	bool		is_channel;
	bool		found;
	char	   *name;
	/* channel */
	char	   *kind;
	bool		has_url;
	/* category */
	bool		mandatory;
	bool		default_opt_in;
	int32		default_priority;
	int32		default_max_attempts;
	bool		has_preferences;	/* any notify_preferences row for it */
} LookupEntry;

static MemoryContext lookup_cxt = NULL;
static LookupEntry lookup_cache[LOOKUP_CACHE_MAX];
static int	lookup_count = 0;
static bool lookup_valid = false;	/* the cache's entries are current */

/*
 * Whether notify_suppressions holds any hashed entry (what
 * notify_forget_recipient leaves): -1 not known, 0 none, 1 some.  While
 * there are none, an enqueue skips hashing the address and looking the
 * hash up.  Part of the cache above: emptied with it, read through
 * notify_suppressions_hashed_idx with the latest snapshot, and kept on the
 * same terms as a row.
 */
static int	hashed_suppressions = -1;

/* what a token says */
typedef struct TokenFields
{
	int32		key_id;
	bool		has_expiry;
	int64		expiry;			/* unix seconds */
	char	   *recipient;
	char	   *category;
	char	   *tenant;			/* NULL: all tenants */
} TokenFields;

/* a token split into its decoded halves */
typedef struct TokenParts
{
	uint8	   *payload;
	int			payload_len;
	uint8		mac[NOTIFY_SHA256_LEN];
} TokenParts;

static text *normalize_address(text *in);
static void decide_rels_invalidate(Datum arg, Oid relid);
static Oid	decide_relid(const char *name, Oid nsp);
static AttrNumber decide_attnum(Oid relid, const char *name);
static const DecideRels *decide_rels_get(Oid nsp);
static void text_key(ScanKey key, Relation index, AttrNumber attno, text *value);
static HeapTuple lookup_one(Relation rel, Oid index, AttrNumber attno, text *value,
							Snapshot snapshot, SysScanDesc *scan);
static bool text_equal(Datum d, text *t);
static char *base64url_encode(const uint8 *src, size_t len);
static int	base64url_decode(const char *src, size_t len, uint8 **dst);
static void token_invalid(const char *detail) pg_attribute_noreturn();
static void split_token(text *token, TokenParts *parts);
static int32 payload_key_id(const TokenParts *parts);
static void parse_payload(const TokenParts *parts, TokenFields *f);
static void compute_mac(bytea *secret, const uint8 *payload, int len,
						uint8 out[NOTIFY_SHA256_LEN]);
static bytea *required_key(FunctionCallInfo fcinfo, int argno);
static char *required_string(FunctionCallInfo fcinfo, int argno,
							 const char *name, int maxlen);

PG_FUNCTION_INFO_V1(notify_decide);
PG_FUNCTION_INFO_V1(notify_normalize_address);
PG_FUNCTION_INFO_V1(notify_random_bytes);
PG_FUNCTION_INFO_V1(notify_unsubscribe_sign);
PG_FUNCTION_INFO_V1(notify_unsubscribe_key_id);
PG_FUNCTION_INFO_V1(notify_unsubscribe_verify);

/*
 * normalize_address
 *		See notify_normalize_address(); returns in itself when nothing
 *		changes.
 */
static text *
normalize_address(text *in)
{
	const char *s = VARDATA_ANY(in);
	int			len = VARSIZE_ANY_EXHDR(in);
	int			at = -1;
	int			i;
	bool		upper = false;
	text	   *out;
	char	   *d;

	for (i = len - 1; i >= 0; i--)
		if (s[i] == '@')
		{
			at = i;
			break;
		}
	if (at < 1 || at == len - 1)
		return in;
	for (i = 0; i + 2 < len; i++)
		if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/')
			return in;
	for (i = at + 1; i < len; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
		{
			upper = true;
			break;
		}
	if (!upper)
		return in;

	out = (text *) palloc(VARHDRSZ + len);
	SET_VARSIZE(out, VARHDRSZ + len);
	d = VARDATA(out);
	memcpy(d, s, len);
	for (i = at + 1; i < len; i++)
		if (d[i] >= 'A' && d[i] <= 'Z')
			d[i] += 'a' - 'A';
	return out;
}

/*---- the decision ----*/

/*
 * decide_rels_invalidate
 *		Relcache callback: forget the cached relations when one of them (or
 *		everything) is invalidated.
 */
static void
decide_rels_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || !decide_rels.valid ||
		relid == decide_rels.categories || relid == decide_rels.channels ||
		relid == decide_rels.preferences || relid == decide_rels.suppressions)
		lookup_valid = false;
	if (!decide_rels.valid)
		return;
	if (relid == InvalidOid ||
		relid == decide_rels.categories || relid == decide_rels.categories_pkey ||
		relid == decide_rels.channels || relid == decide_rels.channels_pkey ||
		relid == decide_rels.suppressions ||
		relid == decide_rels.suppressions_hashed || relid == decide_rels.suppressions_address ||
		relid == decide_rels.preferences || relid == decide_rels.preferences_scope ||
		relid == decide_rels.preferences_category)
		decide_rels.valid = false;
}

/*
 * decide_relid
 *		OID of relation name in schema nsp; a missing one is a broken install.
 */
static Oid
decide_relid(const char *name, Oid nsp)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s\" of extension notify does not exist in schema \"%s\"",
						name, get_namespace_name(nsp))));
	return relid;
}

/*
 * decide_attnum
 *		Attribute number of column name of relid; a missing one is a broken
 *		install.
 */
static AttrNumber
decide_attnum(Oid relid, const char *name)
{
	AttrNumber	attnum = get_attnum(relid, name);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						name, get_rel_name(relid))));
	return attnum;
}

/*
 * decide_rels_get
 *		The relations and columns of the extension in schema nsp, from the
 *		cache or looked up now.
 */
static const DecideRels *
decide_rels_get(Oid nsp)
{
	DecideRels	r;

	if (decide_rels.valid && decide_rels.nsp == nsp)
		return &decide_rels;
	if (!decide_callback_registered)
	{
		CacheRegisterRelcacheCallback(decide_rels_invalidate, (Datum) 0);
		decide_callback_registered = true;
	}

	memset(&r, 0, sizeof(r));
	r.nsp = nsp;
	r.categories = decide_relid("notify_categories", nsp);
	r.categories_pkey = decide_relid("notify_categories_pkey", nsp);
	r.cat_name = decide_attnum(r.categories, "name");
	r.cat_mandatory = decide_attnum(r.categories, "mandatory");
	r.cat_default_opt_in = decide_attnum(r.categories, "default_opt_in");
	r.cat_default_priority = decide_attnum(r.categories, "default_priority");
	r.cat_default_max_attempts = decide_attnum(r.categories, "default_max_attempts");
	r.channels = decide_relid("notify_channels", nsp);
	r.channels_pkey = decide_relid("notify_channels_pkey", nsp);
	r.ch_name = decide_attnum(r.channels, "name");
	r.ch_kind = decide_attnum(r.channels, "kind");
	r.ch_settings = decide_attnum(r.channels, "settings");
	r.suppressions = decide_relid("notify_suppressions", nsp);
	r.suppressions_hashed = decide_relid("notify_suppressions_hashed_idx", nsp);
	r.suppressions_address = decide_relid("notify_suppressions_address_hash_idx", nsp);
	r.sup_address = decide_attnum(r.suppressions, "address");
	r.sup_expires_at = decide_attnum(r.suppressions, "expires_at");
	r.preferences = decide_relid("notify_preferences", nsp);
	r.preferences_scope = decide_relid("notify_preferences_scope_idx", nsp);
	r.preferences_category = decide_relid("notify_preferences_category_idx", nsp);
	r.pref_recipient = decide_attnum(r.preferences, "recipient");
	r.pref_category = decide_attnum(r.preferences, "category");
	r.pref_tenant = decide_attnum(r.preferences, "tenant");
	r.pref_channel = decide_attnum(r.preferences, "channel");
	r.pref_opted_in = decide_attnum(r.preferences, "opted_in");
	r.valid = true;
	decide_rels = r;
	lookup_valid = false;
	return &decide_rels;
}

/*
 * lookup_refresh
 *		Empties the cache when an invalidation arrived since it was filled.
 */
static void
lookup_refresh(void)
{
	if (lookup_valid)
		return;
	if (lookup_cxt != NULL)
		MemoryContextReset(lookup_cxt);
	lookup_count = 0;
	hashed_suppressions = -1;
	lookup_valid = true;
}

/*
 * lookup_cached
 *		The cached entry for a channel or category called name, or NULL.
 */
static LookupEntry *
lookup_cached(bool is_channel, text *name)
{
	const char *s = VARDATA_ANY(name);
	int			len = VARSIZE_ANY_EXHDR(name);

	lookup_refresh();
	for (int i = 0; i < lookup_count; i++)
	{
		LookupEntry *e = &lookup_cache[i];

		if (e->is_channel == is_channel && strncmp(e->name, s, len) == 0 && e->name[len] == '\0')
			return e;
	}
	return NULL;
}

/*
 * lookup_keep
 *		Copies e into the cache if nothing was invalidated since the cache
 *		was checked (lookup_cached), that is while e was read, and there is
 *		room.
 */
static void
lookup_keep(const LookupEntry *e)
{
	LookupEntry *c;

	if (!lookup_valid || lookup_count >= LOOKUP_CACHE_MAX)
		return;
	if (lookup_cxt == NULL)
		lookup_cxt = AllocSetContextCreate(CacheMemoryContext, "notify channels and categories",
										   ALLOCSET_SMALL_SIZES);
	c = &lookup_cache[lookup_count++];
	*c = *e;
	c->name = MemoryContextStrdup(lookup_cxt, e->name);
	c->kind = e->kind ? MemoryContextStrdup(lookup_cxt, e->kind) : NULL;
}

/*
 * text_key
 *		Scan key "heap column attno = value" for a btree index on text,
 *		compared under the index column's collation.
 */
static void
text_key(ScanKey key, Relation index, AttrNumber attno, text *value)
{
	Oid			collation = InvalidOid;
	int			i;

	for (i = 0; i < index->rd_index->indnatts; i++)
		if (index->rd_index->indkey.values[i] == attno)
		{
			collation = index->rd_indcollation[i];
			break;
		}
	if (i == index->rd_index->indnatts)
		elog(ERROR, "column %d is not in index \"%s\"", attno, RelationGetRelationName(index));
	ScanKeyEntryInitialize(key, 0, attno,
						   index->rd_rel->relam == HASH_AM_OID ? HTEqualStrategyNumber : BTEqualStrategyNumber,
						   InvalidOid, collation, F_TEXTEQ, PointerGetDatum(value));
}

/*
 * lookup_one
 *		The visible row of rel whose column attno equals value, found
 *		through the unique index, or NULL.  *scan is to be ended by the
 *		caller once the tuple has been read.
 */
static HeapTuple
lookup_one(Relation rel, Oid index, AttrNumber attno, text *value,
		   Snapshot snapshot, SysScanDesc *scan)
{
	Relation	irel = index_open(index, AccessShareLock);
	ScanKeyData key;

	text_key(&key, irel, attno, value);
	index_close(irel, NoLock);
	*scan = systable_beginscan(rel, index, true, snapshot, 1, &key);
	return systable_getnext(*scan);
}

/* Whether the text datum d equals t, byte for byte. */
static bool
text_equal(Datum d, text *t)
{
	text	   *a = DatumGetTextPP(d);

	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(t) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) == 0;
}

/*
 * notify_decide(recipient text, category text, channel text, tenant text)
 *		returns text
 *
 * NULL when a message in category to recipient on channel, for tenant
 * (NULL: none), may be sent; otherwise why not:
 *
 *	suppressed		the address has a suppression in force (any category);
 *	opted_out		the most specific preference for the category is an
 *					opt-out (mandatory categories excepted);
 *	not_opted_in	the category needs an opt-in (default_opt_in false),
 *					there is no preference, and the channel is email
 *					(smtp or http_email).
 *
 * The most specific preference is the one for (tenant, channel), else
 * (tenant, all channels), else (all tenants, channel), else (all, all).
 * At most two index probes on the common paths, with the category cached:
 * the suppression (and its hash, only while hashed suppressions exist),
 * and the recipient's preferences in the category (only when the category
 * has any); the channel is read only when its kind decides, and an unknown
 * one is an error only then.
 */
Datum
notify_decide(PG_FUNCTION_ARGS)
{
	text	   *tenant = NULL;
	Oid			nsp;
	NotifyCategory cat;
	const char *result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recipient must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("category must not be null")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("channel must not be null")));
	if (!PG_ARGISNULL(3))
		tenant = PG_GETARG_TEXT_PP(3);

	/* the schema is the function's own; remembered per call site */
	if (fcinfo->flinfo->fn_extra == NULL)
	{
		Oid		   *p = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid));

		*p = get_func_namespace(fcinfo->flinfo->fn_oid);
		fcinfo->flinfo->fn_extra = p;
	}
	nsp = *(Oid *) fcinfo->flinfo->fn_extra;

	if (!notify_category_lookup(nsp, PG_GETARG_TEXT_PP(1), &cat))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown category \"%s\"", text_to_cstring(PG_GETARG_TEXT_PP(1))),
				 errhint("Categories are listed in notify_categories.")));
	result = notify_decide_for(nsp, PG_GETARG_TEXT_PP(0), &cat, PG_GETARG_TEXT_PP(2),
							   NULL, tenant);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

/* The snapshot suppressions and preferences are read with: the statement's. */
static Snapshot
lookup_snapshot(void)
{
	return ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
}

/*
 * lookup_entry
 *		The channel (is_channel) or category called name, from the cache or
 *		read through the table's primary key with the latest snapshot (see
 *		LookupEntry) into *scratch, and kept in the cache if it can be.
 */
static const LookupEntry *
lookup_entry(const DecideRels *r, bool is_channel, text *name, LookupEntry *scratch)
{
	LookupEntry *hit = lookup_cached(is_channel, name);
	Relation	rel;
	TupleDesc	desc;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snapshot;
	bool		isnull;

	if (hit != NULL)
		return hit;

	memset(scratch, 0, sizeof(*scratch));
	scratch->is_channel = is_channel;
	scratch->name = text_to_cstring(name);
	rel = table_open(is_channel ? r->channels : r->categories, AccessShareLock);
	desc = RelationGetDescr(rel);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	tup = lookup_one(rel, is_channel ? r->channels_pkey : r->categories_pkey,
					 is_channel ? r->ch_name : r->cat_name, name, snapshot, &scan);
	scratch->found = HeapTupleIsValid(tup);
	if (scratch->found && is_channel)
	{
		Datum		d = heap_getattr(tup, r->ch_kind, desc, &isnull);

		scratch->kind = isnull ? pstrdup("") : TextDatumGetCString(d);
		d = heap_getattr(tup, r->ch_settings, desc, &isnull);
		if (!isnull)
		{
			Jsonb	   *settings = DatumGetJsonbP(d);
			JsonbValue	k;

			k.type = jbvString;
			k.val.string.val = "url";
			k.val.string.len = 3;
			scratch->has_url = JB_ROOT_IS_OBJECT(settings) &&
				findJsonbValueFromContainer(&settings->root, JB_FOBJECT, &k) != NULL;
		}
	}
	else if (scratch->found)
	{
		scratch->mandatory = DatumGetBool(heap_getattr(tup, r->cat_mandatory, desc, &isnull));
		scratch->default_opt_in = DatumGetBool(heap_getattr(tup, r->cat_default_opt_in, desc, &isnull));
		scratch->default_priority = DatumGetInt32(heap_getattr(tup, r->cat_default_priority, desc, &isnull));
		scratch->default_max_attempts = DatumGetInt32(heap_getattr(tup, r->cat_default_max_attempts, desc, &isnull));
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, NoLock);
	if (scratch->found && !is_channel)
	{
		/*
		 * Whether anyone has a preference in this category: a change to
		 * notify_preferences clears lookup_valid, as one to the categories
		 * does, so the answer is kept on the same terms as the row.
		 */
		rel = table_open(r->preferences, AccessShareLock);
		snapshot = RegisterSnapshot(GetLatestSnapshot());
		tup = lookup_one(rel, r->preferences_category, r->pref_category, name, snapshot, &scan);
		scratch->has_preferences = HeapTupleIsValid(tup);
		systable_endscan(scan);
		UnregisterSnapshot(snapshot);
		table_close(rel, NoLock);
	}
	lookup_keep(scratch);
	return scratch;
}

/*
 * notify_category_lookup
 *		The notify_categories row called name in schema nsp; false when
 *		there is none.
 */
bool
notify_category_lookup(Oid nsp, text *name, NotifyCategory *out)
{
	LookupEntry scratch;
	const LookupEntry *e;

	/*
	 * A change committed since the entry was read resets the cache, also
	 * inside an open transaction; notify_decide_for relies on this.
	 */
	AcceptInvalidationMessages();
	e = lookup_entry(decide_rels_get(nsp), false, name, &scratch);
	if (!e->found)
		return false;
	out->name = name;
	out->has_preferences = e->has_preferences;
	out->mandatory = e->mandatory;
	out->default_opt_in = e->default_opt_in;
	out->default_priority = e->default_priority;
	out->default_max_attempts = e->default_max_attempts;
	return true;
}

/*
 * notify_channel_lookup
 *		The kind of the notify_channels row called name in schema nsp (and
 *		whether its settings have a "url"); NULL when there is none.
 */
char *
notify_channel_lookup(Oid nsp, text *name, bool *has_url)
{
	LookupEntry scratch;
	const LookupEntry *e = lookup_entry(decide_rels_get(nsp), true, name, &scratch);

	if (!e->found)
		return NULL;
	*has_url = e->has_url;
	return pstrdup(e->kind);
}

/*
 * notify_lookup_invalidate
 *		Statement trigger on notify_channels, notify_categories,
 *		notify_preferences and notify_suppressions: tells every backend to
 *		forget what it cached of them (see LookupEntry).
 */
PG_FUNCTION_INFO_V1(notify_lookup_invalidate);

Datum
notify_lookup_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("notify_lookup_invalidate() must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * Whether rel (notify_suppressions) has a row for key that has not
 * expired, found through the hash index on the address.  A hash index's
 * matches are rechecked (systable_getnext cannot do that).
 */
static bool
suppression_in_force(Relation rel, const DecideRels *r, text *key, Snapshot snapshot)
{
	Relation	irel = index_open(r->suppressions_address, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IndexScanDesc scan;
	ScanKeyData skey;
	bool		found = false;

	text_key(&skey, irel, r->sup_address, key);
	skey.sk_attno = 1;			/* the index's first (only) column */
	scan = index_beginscan(rel, irel, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	while (!found && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, r->sup_address, &isnull);

		if (isnull || !text_equal(d, key))
			continue;			/* a hash collision */
		d = slot_getattr(slot, r->sup_expires_at, &isnull);
		found = isnull || DatumGetTimestampTz(d) > GetCurrentTransactionStartTimestamp();
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(irel, NoLock);
	return found;
}

/*
 * notify_decide_for
 *		The decision of notify_decide() for category cat (already looked
 *		up), with the channel's kind when the caller knows it (NULL: read
 *		it when needed).  NULL: send; else the reason not to.
 */
const char *
notify_decide_for(Oid nsp, text *recipient, const NotifyCategory *cat,
				  text *channel, const char *channel_kind, text *tenant)
{
	const DecideRels *r = decide_rels_get(nsp);
	text	   *address = normalize_address(recipient);
	Snapshot	snapshot = lookup_snapshot();
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		isnull;
	bool		suppressed = false;
	bool		hash_too;
	int			best_rank = -1;
	bool		best_opted_in = false;

	/*
	 * A suppression in force, whatever the category: under the address,
	 * or under its hash (what notify_forget_recipient leaves behind).
	 */
	rel = table_open(r->suppressions, AccessShareLock);
	/* invalidations were accepted by the caller's notify_category_lookup */
	lookup_refresh();
	if (hashed_suppressions < 0)
	{
		Snapshot	latest = RegisterSnapshot(GetLatestSnapshot());

		scan = systable_beginscan(rel, r->suppressions_hashed, true, latest, 0, NULL);
		hash_too = HeapTupleIsValid(systable_getnext(scan));
		systable_endscan(scan);
		UnregisterSnapshot(latest);
		/* kept unless an invalidation arrived meanwhile; then look again */
		if (lookup_valid)
			hashed_suppressions = hash_too ? 1 : 0;
		else
			hash_too = true;
	}
	else
		hash_too = hashed_suppressions == 1;
	for (int form = 0; form < (hash_too ? 2 : 1) && !suppressed; form++)
	{
		text	   *key = address;

		if (form == 1)
		{
			bytea	   *digest = DatumGetByteaPP(DirectFunctionCall1(sha256_bytea,
																	 PointerGetDatum(address)));
			text	   *hex = DatumGetTextPP(DirectFunctionCall2(binary_encode,
																	 PointerGetDatum(digest),
																	 CStringGetTextDatum("hex")));

			key = cstring_to_text(psprintf("sha256:%s", text_to_cstring(hex)));
		}
		suppressed = suppression_in_force(rel, r, key, snapshot);
	}
	table_close(rel, NoLock);
	if (suppressed)
		return "suppressed";
	if (cat->mandatory)
		return NULL;

	/* the most specific preference (none when nobody has one in cat) */
	if (cat->has_preferences)
	{
		Relation	irel;
		ScanKeyData keys[2];
		TupleDesc	desc;

		rel = table_open(r->preferences, AccessShareLock);
		desc = RelationGetDescr(rel);
		irel = index_open(r->preferences_scope, AccessShareLock);

		text_key(&keys[0], irel, r->pref_recipient, address);
		text_key(&keys[1], irel, r->pref_category, cat->name);
		index_close(irel, NoLock);
		scan = systable_beginscan(rel, r->preferences_scope, true, snapshot, 2, keys);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Datum		t = heap_getattr(tup, r->pref_tenant, desc, &isnull);
			int			rank = 0;

			if (!isnull)
			{
				if (tenant == NULL || !text_equal(t, tenant))
					continue;
				rank += 2;
			}
			t = heap_getattr(tup, r->pref_channel, desc, &isnull);
			if (!isnull)
			{
				if (!text_equal(t, channel))
					continue;
				rank += 1;
			}
			if (rank > best_rank)
			{
				best_rank = rank;
				best_opted_in = DatumGetBool(heap_getattr(tup, r->pref_opted_in, desc, &isnull));
			}
		}
		systable_endscan(scan);
		table_close(rel, NoLock);
	}
	if (best_rank >= 0)
		return best_opted_in ? NULL : "opted_out";
	if (cat->default_opt_in)
		return NULL;

	/* no choice made, opt-in category: only email needs the opt-in */
	if (channel_kind == NULL)
	{
		bool		has_url;

		channel_kind = notify_channel_lookup(nsp, channel, &has_url);
		if (channel_kind == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown channel \"%s\"", text_to_cstring(channel)),
					 errhint("Channels are listed in notify_channels.")));
	}
	if (notify_kind_is_email(channel_kind))
		return "not_opted_in";
	return NULL;
}

/*---- base64url (RFC 4648 section 5, no padding) ----*/

/*
 * base64url_encode
 *		The unpadded base64url of len bytes, palloc'd.
 */
static char *
base64url_encode(const uint8 *src, size_t len)
{
	char	   *s = notify_base64_encode(src, len);
	char	   *p;

	for (p = s; *p; p++)
	{
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=')
		{
			*p = '\0';
			break;
		}
	}
	return s;
}

/*
 * base64url_decode
 *		Decode unpadded base64url into a palloc'd *dst; returns its length,
 *		or -1 unless src is the canonical spelling of what it decodes to.
 */
static int
base64url_decode(const char *src, size_t len, uint8 **dst)
{
	char	   *std;
	char	   *again;
	size_t		i;
	size_t		padded = (len + 3) / 4 * 4;
	int			n;

	if (len % 4 == 1)
		return -1;
	std = palloc(padded + 1);
	for (i = 0; i < len; i++)
	{
		char		c = src[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				   (c >= '0' && c <= '9')))
			return -1;
		std[i] = c;
	}
	for (; i < padded; i++)
		std[i] = '=';
	std[padded] = '\0';

	*dst = palloc(padded / 4 * 3 + 1);
	n = notify_base64_decode(std, padded, *dst, padded / 4 * 3);
	if (n < 0)
		return -1;

	/* unused low bits of the last character must be zero */
	again = base64url_encode(*dst, n);
	if (strlen(again) != len || memcmp(again, src, len) != 0)
		return -1;
	return n;
}

/*---- tokens ----*/

/*
 * token_invalid
 *		Raise the error of a token that does not verify.
 */
static void
token_invalid(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid unsubscribe token"),
			 errdetail("%s", detail)));
}

/*
 * split_token
 *		Decode "payload.mac" into parts, or raise 22023.
 */
static void
split_token(text *token, TokenParts *parts)
{
	const char *s = VARDATA_ANY(token);
	int			len = VARSIZE_ANY_EXHDR(token);
	const char *dot;
	uint8	   *mac;
	int			n;

	if (len == 0)
		token_invalid("The token is empty.");
	if (len > TOKEN_MAX_LEN)
		token_invalid("The token is too long.");
	dot = memchr(s, '.', len);
	if (dot == NULL)
		token_invalid("A token is two base64url parts separated by \".\".");

	n = base64url_decode(s, dot - s, &parts->payload);
	if (n < 2 + 4)
		token_invalid("The payload is not canonical base64url or is too short.");
	parts->payload_len = n;

	n = base64url_decode(dot + 1, len - (dot + 1 - s), &mac);
	if (n != NOTIFY_SHA256_LEN)
		token_invalid("The signature is not the canonical base64url of 32 bytes.");
	memcpy(parts->mac, mac, NOTIFY_SHA256_LEN);

	if (parts->payload[0] != TOKEN_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid unsubscribe token"),
				 errdetail("Token version %d is not known; this server makes version %d.",
						   parts->payload[0], TOKEN_VERSION)));
}

/*
 * payload_key_id
 *		The key id of a split token (not yet verified).
 */
static int32
payload_key_id(const TokenParts *parts)
{
	const uint8 *p = parts->payload + 2;
	uint32		id = ((uint32) p[0] << 24) | ((uint32) p[1] << 16) |
		((uint32) p[2] << 8) | (uint32) p[3];

	if (id == 0 || id > (uint32) PG_INT32_MAX)
		token_invalid("The key id is out of range.");
	return (int32) id;
}

/*
 * parse_payload
 *		Read the fields of a verified payload, strictly: every length in
 *		range, nothing left over, valid strings.  Raises 22023.
 */
static void
parse_payload(const TokenParts *parts, TokenFields *f)
{
	const uint8 *p = parts->payload;
	const uint8 *end = p + parts->payload_len;
	uint8		flags = p[1];
	int			len;

	if ((flags & ~(FLAG_EXPIRY | FLAG_TENANT)) != 0)
		token_invalid("The payload has unknown flags.");
	memset(f, 0, sizeof(*f));
	f->key_id = payload_key_id(parts);
	p += 6;

#define NEED(n) do { if (end - p < (n)) token_invalid("The payload is truncated."); } while (0)
#define STRING(dst, n) do { \
		NEED(n); \
		if (memchr(p, '\0', (n)) != NULL || !pg_verifymbstr((const char *) p, (n), true)) \
			token_invalid("The payload holds an invalid string."); \
		(dst) = pnstrdup((const char *) p, (n)); \
		p += (n); \
	} while (0)

	f->has_expiry = (flags & FLAG_EXPIRY) != 0;
	if (f->has_expiry)
	{
		NEED(4);
		f->expiry = ((int64) p[0] << 24) | ((int64) p[1] << 16) |
			((int64) p[2] << 8) | (int64) p[3];
		p += 4;
	}

	NEED(1);
	len = p[0];
	p += 1;
	if (len == 0)
		token_invalid("The category is empty.");
	STRING(f->category, len);

	NEED(2);
	len = (p[0] << 8) | p[1];
	p += 2;
	if (len == 0)
		token_invalid("The recipient is empty.");
	STRING(f->recipient, len);

	if (flags & FLAG_TENANT)
	{
		NEED(2);
		len = (p[0] << 8) | p[1];
		p += 2;
		STRING(f->tenant, len);
	}

	if (p != end)
		token_invalid("The payload has trailing bytes.");
#undef NEED
#undef STRING
}

/*
 * compute_mac
 *		HMAC-SHA256 under secret of the context string and the payload.
 */
static void
compute_mac(bytea *secret, const uint8 *payload, int len,
			uint8 out[NOTIFY_SHA256_LEN])
{
	NotifyHmacPart parts[2];

	parts[0].data = mac_context;
	parts[0].len = strlen(mac_context);
	parts[1].data = payload;
	parts[1].len = len;
	notify_hmac_sha256_parts((const uint8 *) VARDATA_ANY(secret),
							 VARSIZE_ANY_EXHDR(secret), parts, 2, out);
}

/*
 * required_key
 *		Argument argno as a signing key of at least KEY_MIN_LEN bytes.
 */
static bytea *
required_key(FunctionCallInfo fcinfo, int argno)
{
	bytea	   *key;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("secret must not be null")));
	key = PG_GETARG_BYTEA_PP(argno);
	if (VARSIZE_ANY_EXHDR(key) < KEY_MIN_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsubscribe signing key is too short: %d bytes",
						(int) VARSIZE_ANY_EXHDR(key)),
				 errdetail("A key has at least %d bytes.", KEY_MIN_LEN)));
	return key;
}

/*
 * required_string
 *		Argument argno as a C string of 1 to maxlen bytes, or raise.
 */
static char *
required_string(FunctionCallInfo fcinfo, int argno, const char *name, int maxlen)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (s[0] == '\0' || strlen(s) > (size_t) maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be 1 to %d bytes long, not %zu", name, maxlen, strlen(s))));
	return s;
}

/*
 * notify_normalize_address(address text) returns text
 *
 * The key preferences and suppressions are stored under.  An email
 * address (something, "@", something without "@", and no "://") has the
 * domain after its last "@" lower-cased, in ASCII only, so that the result
 * never depends on a locale; its local part is left alone (RFC 5321 lets
 * it be case-sensitive).  Anything else is returned as it is.
 */
Datum
notify_normalize_address(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(normalize_address(PG_GETARG_TEXT_PP(0)));
}

/*
 * notify_random_bytes(n integer) returns bytea
 *
 * n bytes from pg_strong_random(), the server's cryptographic source.
 */
Datum
notify_random_bytes(PG_FUNCTION_ARGS)
{
	int32		n = PG_GETARG_INT32(0);
	bytea	   *result;

	if (n < 1 || n > RANDOM_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of random bytes must be 1 to %d, not %d",
						RANDOM_MAX_LEN, n)));
	result = palloc(VARHDRSZ + n);
	SET_VARSIZE(result, VARHDRSZ + n);
	if (!pg_strong_random(VARDATA(result), n))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate %d random bytes", n)));
	PG_RETURN_BYTEA_P(result);
}

/*
 * notify_unsubscribe_sign(key_id integer, secret bytea, recipient text,
 *						   category text, tenant text, expires_at timestamptz)
 *		returns text
 *
 * The token for (recipient, category, tenant), valid until expires_at
 * (NULL: forever), signed with key key_id whose bytes are secret.
 * Expiry is kept to the second, and must lie between 1970 and 2106.
 */
Datum
notify_unsubscribe_sign(PG_FUNCTION_ARGS)
{
	int32		key_id;
	bytea	   *secret;
	char	   *recipient;
	char	   *category;
	char	   *tenant = NULL;
	bool		has_expiry = !PG_ARGISNULL(5);
	int64		expiry = 0;
	uint8		flags = 0;
	StringInfoData buf;
	uint8		mac[NOTIFY_SHA256_LEN];
	char	   *p64;
	char	   *m64;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key_id must not be null")));
	key_id = PG_GETARG_INT32(0);
	if (key_id < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key_id must be positive, not %d", key_id)));
	secret = required_key(fcinfo, 1);
	recipient = required_string(fcinfo, 2, "recipient", STRING_MAX_LEN);
	category = required_string(fcinfo, 3, "category", CATEGORY_MAX_LEN);
	if (!PG_ARGISNULL(4))
	{
		tenant = text_to_cstring(PG_GETARG_TEXT_PP(4));
		if (strlen(tenant) > STRING_MAX_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tenant must be at most %d bytes long", STRING_MAX_LEN)));
		flags |= FLAG_TENANT;
	}
	if (has_expiry)
	{
		TimestampTz ts = PG_GETARG_TIMESTAMPTZ(5);

		if (TIMESTAMP_NOT_FINITE(ts))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expires_at must be finite"),
					 errhint("Pass NULL for a token that does not expire.")));
		expiry = (int64) timestamptz_to_time_t(ts);
		if (expiry < 1 || expiry > (int64) PG_UINT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expires_at must lie between 1970 and 2106, not %s",
							timestamptz_to_str(ts))));
		flags |= FLAG_EXPIRY;
	}

	initStringInfo(&buf);
	appendStringInfoChar(&buf, TOKEN_VERSION);
	appendStringInfoChar(&buf, flags);
	appendStringInfoChar(&buf, (key_id >> 24) & 0xff);
	appendStringInfoChar(&buf, (key_id >> 16) & 0xff);
	appendStringInfoChar(&buf, (key_id >> 8) & 0xff);
	appendStringInfoChar(&buf, key_id & 0xff);
	if (has_expiry)
	{
		appendStringInfoChar(&buf, (expiry >> 24) & 0xff);
		appendStringInfoChar(&buf, (expiry >> 16) & 0xff);
		appendStringInfoChar(&buf, (expiry >> 8) & 0xff);
		appendStringInfoChar(&buf, expiry & 0xff);
	}
	appendStringInfoChar(&buf, strlen(category));
	appendStringInfoString(&buf, category);
	appendStringInfoChar(&buf, (strlen(recipient) >> 8) & 0xff);
	appendStringInfoChar(&buf, strlen(recipient) & 0xff);
	appendStringInfoString(&buf, recipient);
	if (tenant != NULL)
	{
		appendStringInfoChar(&buf, (strlen(tenant) >> 8) & 0xff);
		appendStringInfoChar(&buf, strlen(tenant) & 0xff);
		appendStringInfoString(&buf, tenant);
	}

	compute_mac(secret, (const uint8 *) buf.data, buf.len, mac);
	p64 = base64url_encode((const uint8 *) buf.data, buf.len);
	m64 = base64url_encode(mac, sizeof(mac));
	explicit_bzero(mac, sizeof(mac));

	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s.%s", p64, m64)));
}

/*
 * notify_unsubscribe_key_id(token text) returns integer
 *
 * The id of the key a token claims to be signed with, before anything is
 * verified: which key to hand to notify_unsubscribe_verify().  A token
 * that is not even well-formed raises 22023.
 */
Datum
notify_unsubscribe_key_id(PG_FUNCTION_ARGS)
{
	TokenParts	parts;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("token must not be null")));
	split_token(PG_GETARG_TEXT_PP(0), &parts);
	PG_RETURN_INT32(payload_key_id(&parts));
}

/*
 * notify_unsubscribe_verify(token text, secret bytea, OUT recipient text,
 *							 OUT category text, OUT tenant text,
 *							 OUT expires_at timestamptz) returns record
 *
 * Verifies the token's signature with secret (constant-time comparison),
 * then its form and expiry (against the transaction's start), and returns
 * what it says.  Anything wrong raises 22023 "invalid unsubscribe token"
 * with the reason in the detail.
 */
Datum
notify_unsubscribe_verify(PG_FUNCTION_ARGS)
{
	bytea	   *secret;
	TokenParts	parts;
	TokenFields f;
	uint8		mac[NOTIFY_SHA256_LEN];
	bool		good;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("token must not be null")));
	secret = required_key(fcinfo, 1);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "notify_unsubscribe_verify must return a record");

	split_token(PG_GETARG_TEXT_PP(0), &parts);
	compute_mac(secret, parts.payload, parts.payload_len, mac);
	good = notify_timingsafe_equal(mac, parts.mac, NOTIFY_SHA256_LEN);
	explicit_bzero(mac, sizeof(mac));
	if (!good)
		token_invalid("The signature does not match: the token was altered, or signed with another key.");

	parse_payload(&parts, &f);
	if (f.has_expiry)
	{
		TimestampTz expires = time_t_to_timestamptz((pg_time_t) f.expiry);

		if (GetCurrentTransactionStartTimestamp() >= expires)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unsubscribe token has expired"),
					 errdetail("It was valid until %s.", timestamptz_to_str(expires))));
		values[3] = TimestampTzGetDatum(expires);
	}
	else
		nulls[3] = true;

	values[0] = CStringGetTextDatum(f.recipient);
	values[1] = CStringGetTextDatum(f.category);
	if (f.tenant != NULL)
		values[2] = CStringGetTextDatum(f.tenant);
	else
		nulls[2] = true;

	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

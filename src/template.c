/*-------------------------------------------------------------------------
 *
 * template.c
 *	  The template registry's C side: locale resolution and payload checks
 *	  at enqueue, and rendering of stored template versions for the worker
 *	  and for notify_preview(), from a per-process cache of compiled
 *	  templates.
 *
 * A template version (template_key, locale, version) is immutable, so its
 * compiled form can be kept for the life of the process.  The cache holds
 * at most NOTIFY_TEMPLATE_CACHE_SIZE versions and drops the least recently
 * used.  A deleted version's number can be put again, so every INSERT or
 * DELETE on notify_templates sends a relcache invalidation of the table at
 * commit (trigger notify_templates_changed), and a relcache callback here
 * marks the cache stale; it is emptied at the next lookup, never inside the
 * callback.  The same callback makes the next call look up the extension's
 * schema again, so DROP and CREATE EXTENSION are seen too.
 *
 * notify_template_resolve() runs in every notify_enqueue, so its answers
 * (key, locales tried, version -> locale, version, category, schema) are
 * cached too, and notify_template_activations has the same invalidation
 * trigger.  Both caches follow the catalog caches' protocol: pending
 * invalidations are accepted before a lookup, a miss is read with a fresh
 * snapshot (taken after that), and an invalidation that arrives while an
 * entry is being built empties the cache before the next lookup, so no
 * entry outlives a committed change.  A change commits before its
 * invalidation is sent, so a reader that has seen the invalidation also
 * sees the change.
 *
 * Catalog access goes through SPI with plans kept for the life of the
 * process; every name in them is schema-qualified and every operator is
 * OPERATOR(pg_catalog.=), so the caller's search_path does not matter.
 *
 * The worker's entry point, notify_template_render(), must not raise for a
 * template that cannot be rendered (the message is marked failed instead),
 * so it compiles and renders inside an internal subtransaction, as PL/pgSQL
 * does for an exception block, and rethrows everything that is not a
 * property of the template (query cancel, out of memory, ...).
 *
 * src/template.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/ilist.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "mustache.h"
#include "notify.h"
#include "template.h"

static void resolve(const char *template_key, text *locale_arg, Jsonb *payload,
					bool have_version, int32 *version_inout, char **locale_out,
					char **category_out);

PG_FUNCTION_INFO_V1(notify_locale_canonical);
PG_FUNCTION_INFO_V1(notify_template_validate);
PG_FUNCTION_INFO_V1(notify_template_schema_check);
PG_FUNCTION_INFO_V1(notify_in_extension_script);
PG_FUNCTION_INFO_V1(notify_templates_changed);
PG_FUNCTION_INFO_V1(notify_template_resolve);
PG_FUNCTION_INFO_V1(notify_template_render_sql);

/* Most locales tried by one resolution (tag prefixes and the default) */
#define MAX_LOCALE_CANDIDATES	16

/* Entries of the cache keyed by template text (notify_render) */
#define TEXT_CACHE_SIZE			64
/* Texts longer than this are compiled but not cached */
#define TEXT_CACHE_MAX_LEN		(256 * 1024)

/* Locale used when notify.default_locale is unset or empty */
#define FALLBACK_LOCALE			"en"

/*---- extension state: schema, plans ----*/

/* True while the plans below match the installed extension */
static bool state_valid = false;
/* Bumped by the relcache callback; a rebuild that saw it move is redone */
static uint64 state_generation = 0;
static bool callback_registered = false;
static Oid	templates_relid = InvalidOid;
static Oid	activations_relid = InvalidOid;

/* (key, locale, version) -> subject, text_body, html_body */
static SPIPlanPtr fetch_plan = NULL;
/* (key, locales[]) -> locale, active version, category, schema */
static SPIPlanPtr active_plan = NULL;
/* (key, locales[], version) -> locale, version, category, schema */
static SPIPlanPtr version_plan = NULL;
/* (key) -> a row if any version of the key exists */
static SPIPlanPtr key_plan = NULL;

/*---- the cache of compiled template versions ----*/

typedef struct TemplateCacheKey
{
	char		template_key[NOTIFY_TEMPLATE_KEY_MAXLEN + 1];
	char		locale[NOTIFY_LOCALE_MAXLEN + 1];
	int32		version;
} TemplateCacheKey;

typedef struct TemplateCacheEntry
{
	TemplateCacheKey key;		/* hash key, must be first */
	dlist_node	lru;			/* position in tcache_lru, newest first */
	MemoryContext cxt;			/* holds the compiled parts */
	MustacheTemplate *subject;
	MustacheTemplate *text_body;	/* NULL when the version has none */
	MustacheTemplate *html_body;	/* NULL when the version has none */
} TemplateCacheEntry;

/* Everything cached lives under this context; NULL until first use */
static MemoryContext tcache_cxt = NULL;
static HTAB *tcache = NULL;
static dlist_head tcache_lru = DLIST_STATIC_INIT(tcache_lru);
static int	tcache_count = 0;
/* Set by the relcache callback: empty the cache at the next lookup */
static bool tcache_stale = false;

/*---- the cache of resolutions (notify_template_resolve) ----*/

/* "key\x1flocale,locale,...\x1fversion"; longer keys are not cached */
#define RCACHE_KEYSIZE			256
/* Entries kept; when full the cache starts over */
#define RCACHE_SIZE				1024

/* One variable a payload is checked for, compiled from a schema */
typedef struct SchemaCheck
{
	char	   *name;
	int			len;
	bool		required;
	int			type;			/* index into schema_types, or -1 for any */
} SchemaCheck;

typedef struct ResolveCacheEntry
{
	char		key[RCACHE_KEYSIZE];	/* hash key, must be first */
	int32		version;
	char	   *locale;
	char	   *category;
	int			nchecks;		/* required names first, in schema order */
	SchemaCheck *checks;
} ResolveCacheEntry;

static MemoryContext rcache_cxt = NULL;
static HTAB *rcache = NULL;
static int	rcache_count = 0;
/* Set by the relcache callback: empty the cache at the next lookup */
static bool rcache_stale = false;

/*---- the cache of compiled template texts (notify_render) ----*/

typedef struct TextCacheKey
{
	uint64		hash;
	int32		len;
} TextCacheKey;

typedef struct TextCacheEntry
{
	TextCacheKey key;			/* hash key, must be first */
	dlist_node	lru;
	char	   *text;			/* copy of the text, to rule out collisions */
	MustacheTemplate *tpl;
} TextCacheEntry;

static MemoryContext xcache_cxt = NULL;
static HTAB *xcache = NULL;
static dlist_head xcache_lru = DLIST_STATIC_INIT(xcache_lru);
static int	xcache_count = 0;

/* The types a schema property may declare */
static const char *const schema_types[] = {
	"string", "number", "integer", "boolean", "object", "array"
};

/* Annotations accepted (and ignored) in a schema and its properties */
static const char *const schema_annotations[] = {
	"$schema", "$id", "$comment", "title", "description", "examples"
};

#define SCHEMA_HINT \
	"notify supports {\"type\": \"object\", \"required\": [names], \"properties\": {name: {\"type\": T}}} " \
	"with T one of string, number, integer, boolean, object or array; " \
	"\"title\", \"description\", \"examples\", \"$comment\", \"$schema\" and \"$id\" are allowed as annotations."


/* ----------------------------------------------------------------
 *		Small helpers
 * ----------------------------------------------------------------
 */

/*
 * Quote a value for an error message as a JSON string, cut to 200 bytes
 * (at a character boundary), like the SQL function notify_quote().
 */
char *
notify_quote_value(const char *s)
{
	StringInfoData buf;
	int			len = strlen(s);
	char	   *cut;

	if (len > 200)
		len = pg_mbcliplen(s, len, 200);
	cut = pnstrdup(s, len);
	initStringInfo(&buf);
	escape_json(&buf, cut);
	pfree(cut);
	return buf.data;
}

/* JSON text of a jsonb value, for error messages */
static char *
jsonb_value_text(JsonbValue *v)
{
	Jsonb	   *jb = JsonbValueToJsonb(v);

	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/* JSON type name of a jsonb value: string, number, boolean, null, array, object */
static const char *
jsonb_value_type(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "string";
		case jbvNumeric:
			return "number";
		case jbvBool:
			return "boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "array" : "object";
		default:
			return "unknown";
	}
}

/* JSON type name of a jsonb document's root */
const char *
notify_jsonb_type(Jsonb *jb)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbExtractScalar(&jb->root, &v);
		return jsonb_value_type(&v);
	}
	return JB_ROOT_IS_ARRAY(jb) ? "array" : "object";
}

/* Is the jsonb string value equal to the C string s? */
static bool
jsonb_string_is(JsonbValue *v, const char *s)
{
	int			len = strlen(s);

	return v->type == jbvString && v->val.string.len == len &&
		memcmp(v->val.string.val, s, len) == 0;
}

/* Is s (len bytes) one of the n strings in list? */
static bool
string_in_list(const char *s, int len, const char *const *list, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if ((int) strlen(list[i]) == len && memcmp(list[i], s, len) == 0)
			return true;
	return false;
}

/* Is the error one that a template or payload causes, not the system? */
static bool
error_is_template_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_DATA_EXCEPTION ||
		category == ERRCODE_FEATURE_NOT_SUPPORTED ||
		category == ERRCODE_PROGRAM_LIMIT_EXCEEDED;
}


/* ----------------------------------------------------------------
 *		Locales
 * ----------------------------------------------------------------
 */

/*
 * Canonical case of a BCP 47 tag of the form notify_enqueue accepts
 * (^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$): the language lowercase, a two-letter
 * region uppercase, a four-letter script titlecase, everything else and
 * everything after a singleton (x-, u-) lowercase.  Returns NULL if the tag
 * is malformed.
 */
static char *
locale_canonical(const char *s, int len)
{
	StringInfoData buf;
	int			i = 0;
	int			n = 0;
	bool		after_singleton = false;

	if (len == 0)
		return NULL;
	initStringInfo(&buf);
	while (i <= len)
	{
		int			j = i;
		int			k;
		bool		alpha = true;
		int			sublen;

		while (j < len && s[j] != '-')
		{
			char		c = s[j];

			if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			{
				if (n == 0 || !(c >= '0' && c <= '9'))
				{
					pfree(buf.data);
					return NULL;
				}
				alpha = false;
			}
			j++;
		}
		sublen = j - i;
		if ((n == 0 && (sublen < 2 || sublen > 3)) ||
			(n > 0 && (sublen < 1 || sublen > 8)))
		{
			pfree(buf.data);
			return NULL;
		}

		if (n > 0)
			appendStringInfoChar(&buf, '-');
		for (k = i; k < j; k++)
		{
			char		c = pg_ascii_tolower((unsigned char) s[k]);

			if (n > 0 && !after_singleton && alpha &&
				(sublen == 2 || (sublen == 4 && k == i)))
				c = pg_ascii_toupper((unsigned char) c);
			appendStringInfoChar(&buf, c);
		}
		if (n > 0 && sublen == 1)
			after_singleton = true;

		n++;
		i = j + 1;
	}
	return buf.data;
}

/* Whether s is a well-formed BCP 47 language tag (as locale_canonical) */
bool
notify_locale_is_valid(const char *s, int len)
{
	char	   *c = locale_canonical(s, len);

	if (c == NULL)
		return false;
	pfree(c);
	return true;
}

/* Append canonical tag and its shorter prefixes to cands, skipping duplicates */
static void
add_locale_chain(char *tag, char **cands, int *ncands)
{
	char	   *t = pstrdup(tag);

	for (;;)
	{
		char	   *dash;
		int			i;
		bool		seen = false;

		for (i = 0; i < *ncands; i++)
			if (strcmp(cands[i], t) == 0)
				seen = true;
		if (!seen && *ncands < MAX_LOCALE_CANDIDATES)
			cands[(*ncands)++] = pstrdup(t);

		/* drop the last subtag, and a singleton left dangling (en-x-foo) */
		dash = strrchr(t, '-');
		if (dash == NULL)
			break;
		*dash = '\0';
		dash = strrchr(t, '-');
		if (dash != NULL && strlen(dash + 1) == 1)
			*dash = '\0';
	}
	pfree(t);
}

/*
 * The default locale: notify.default_locale in canonical case, "en" when it
 * is unset or empty, NULL when it is malformed.
 */
static char *
default_locale(void)
{
	const char *d = GetConfigOption("notify.default_locale", true, false);

	if (d == NULL || d[0] == '\0')
		d = FALLBACK_LOCALE;
	return locale_canonical(d, strlen(d));
}


/* ----------------------------------------------------------------
 *		Schemas
 * ----------------------------------------------------------------
 */

/* Check one property schema; name is the property's name */
static void
schema_check_property(const char *name, JsonbValue *prop)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (prop->type != jbvBinary || !JsonContainerIsObject(prop->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("template schema property %s must be a JSON object, not %s",
						notify_quote_value(name), jsonb_value_type(prop)),
				 errhint("%s", SCHEMA_HINT)));

	it = JsonbIteratorInit(prop->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);

		if (k.val.string.len == 4 && memcmp(k.val.string.val, "type", 4) == 0)
		{
			if (v.type != jbvString ||
				!string_in_list(v.val.string.val, v.val.string.len,
								schema_types, lengthof(schema_types)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("template schema property %s has unsupported type %s",
								notify_quote_value(name), jsonb_value_text(&v)),
						 errhint("Types are string, number, integer, boolean, object and array.")));
		}
		else if (!string_in_list(k.val.string.val, k.val.string.len,
								 schema_annotations, lengthof(schema_annotations)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unsupported keyword %s in template schema property %s",
							notify_quote_value(pnstrdup(k.val.string.val, k.val.string.len)),
							notify_quote_value(name)),
					 errdetail("Payloads are checked only for required names and the type of each property."),
					 errhint("%s", SCHEMA_HINT)));
	}
}

/*
 * Raise an error unless schema is in the supported JSON Schema subset.
 */
static void
schema_check(Jsonb *schema)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(schema) || JB_ROOT_IS_SCALAR(schema))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("template schema must be a JSON object, not %s",
						notify_jsonb_type(schema)),
				 errhint("%s", SCHEMA_HINT)));

	it = JsonbIteratorInit(&schema->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		key = pnstrdup(k.val.string.val, k.val.string.len);

		if (strcmp(key, "type") == 0)
		{
			if (!jsonb_string_is(&v, "object"))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("template schema type must be \"object\", not %s",
								jsonb_value_text(&v)),
						 errdetail("A payload is a JSON object.")));
		}
		else if (strcmp(key, "required") == 0)
		{
			JsonbIterator *eit;
			JsonbValue	e;

			if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("template schema \"required\" must be an array of names, not %s",
								jsonb_value_type(&v))));
			eit = JsonbIteratorInit(v.val.binary.data);
			while ((tok = JsonbIteratorNext(&eit, &e, true)) != WJB_DONE)
			{
				if (tok == WJB_ELEM && e.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("template schema \"required\" must be an array of names, but it contains %s",
									jsonb_value_text(&e))));
			}
		}
		else if (strcmp(key, "properties") == 0)
		{
			JsonbIterator *pit;
			JsonbValue	pk;
			JsonbValue	pv;

			if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("template schema \"properties\" must be a JSON object, not %s",
								jsonb_value_type(&v)),
						 errhint("%s", SCHEMA_HINT)));
			pit = JsonbIteratorInit(v.val.binary.data);
			while ((tok = JsonbIteratorNext(&pit, &pk, true)) != WJB_DONE)
			{
				if (tok != WJB_KEY)
					continue;
				tok = JsonbIteratorNext(&pit, &pv, true);
				Assert(tok == WJB_VALUE);
				schema_check_property(pnstrdup(pk.val.string.val, pk.val.string.len),
									  &pv);
			}
		}
		else if (!string_in_list(key, strlen(key), schema_annotations,
								 lengthof(schema_annotations)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unsupported keyword %s in template schema", notify_quote_value(key)),
					 errdetail("Payloads are checked only for required names and the type of each property."),
					 errhint("%s", SCHEMA_HINT)));
		pfree(key);
	}
}

/*
 * Compile a (valid) schema into the list of variables to check, allocated
 * in cxt: the required names in the schema's order, then the other typed
 * properties.
 */
static SchemaCheck *
schema_compile(Jsonb *schema, MemoryContext cxt, int *nchecks)
{
	SchemaCheck *checks;
	int			n = 0;
	int			max = 8;
	JsonbValue	v;

	checks = MemoryContextAlloc(cxt, sizeof(SchemaCheck) * max);

	if (getKeyJsonValueFromContainer(&schema->root, "required", 8, &v) != NULL &&
		v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v.val.binary.data);
		JsonbValue	e;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM || e.type != jbvString)
				continue;
			if (n >= max)
			{
				max *= 2;
				checks = repalloc(checks, sizeof(SchemaCheck) * max);
			}
			checks[n].name = MemoryContextAlloc(cxt, e.val.string.len + 1);
			memcpy(checks[n].name, e.val.string.val, e.val.string.len);
			checks[n].name[e.val.string.len] = '\0';
			checks[n].len = e.val.string.len;
			checks[n].required = true;
			checks[n].type = -1;
			n++;
		}
	}

	if (getKeyJsonValueFromContainer(&schema->root, "properties", 10, &v) != NULL &&
		v.type == jbvBinary && JsonContainerIsObject(v.val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v.val.binary.data);
		JsonbValue	k;
		JsonbValue	prop;
		JsonbValue	type;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			int			t;
			int			i;

			if (tok != WJB_KEY)
				continue;
			JsonbIteratorNext(&it, &prop, true);
			if (prop.type != jbvBinary ||
				getKeyJsonValueFromContainer(prop.val.binary.data, "type", 4, &type) == NULL ||
				type.type != jbvString)
				continue;
			for (t = 0; t < (int) lengthof(schema_types); t++)
				if ((int) strlen(schema_types[t]) == type.val.string.len &&
					memcmp(schema_types[t], type.val.string.val, type.val.string.len) == 0)
					break;
			if (t == (int) lengthof(schema_types))
				continue;		/* cannot happen in a checked schema */

			for (i = 0; i < n; i++)
				if (checks[i].len == k.val.string.len &&
					memcmp(checks[i].name, k.val.string.val, k.val.string.len) == 0)
					break;
			if (i == n)
			{
				if (n >= max)
				{
					max *= 2;
					checks = repalloc(checks, sizeof(SchemaCheck) * max);
				}
				checks[n].name = MemoryContextAlloc(cxt, k.val.string.len + 1);
				memcpy(checks[n].name, k.val.string.val, k.val.string.len);
				checks[n].name[k.val.string.len] = '\0';
				checks[n].len = k.val.string.len;
				checks[n].required = false;
				n++;
			}
			checks[i].type = t;
		}
	}

	*nchecks = n;
	return checks;
}

/* Does a payload value have the schema type schema_types[type]? */
static bool
jsonb_value_has_type(JsonbValue *v, int type)
{
	const char *name = schema_types[type];

	/* an integer is a number without a fractional part: 1, 1.0, 1e3 */
	if (strcmp(name, "integer") == 0)
		return v->type == jbvNumeric &&
			DatumGetInt32(DirectFunctionCall1(numeric_min_scale,
											  NumericGetDatum(v->val.numeric))) == 0;
	return strcmp(name, jsonb_value_type(v)) == 0;
}

/* qsort comparator of C strings */
static int
cmp_cstring(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Check payload against a compiled schema; raise one error naming every
 * missing and every mistyped variable.
 */
static void
payload_check(const SchemaCheck *checks, int nchecks, Jsonb *payload,
			  const char *template_key, const char *locale, int version)
{
	StringInfoData missing;
	char	  **wrong = NULL;
	int			nwrong = 0;
	int			nmissing = 0;
	int			i;

	if (nchecks == 0)
		return;
	initStringInfo(&missing);

	for (i = 0; i < nchecks; i++)
	{
		JsonbValue	v;

		if (getKeyJsonValueFromContainer(&payload->root, checks[i].name,
										 checks[i].len, &v) == NULL)
		{
			if (checks[i].required)
			{
				appendStringInfo(&missing, "%s%s", nmissing > 0 ? ", " : "",
								 checks[i].name);
				nmissing++;
			}
			continue;
		}
		if (checks[i].type >= 0 && !jsonb_value_has_type(&v, checks[i].type))
		{
			if (wrong == NULL)
				wrong = palloc(sizeof(char *) * nchecks);
			wrong[nwrong++] = psprintf("%s must be %s, got %s", checks[i].name,
									   schema_types[checks[i].type],
									   jsonb_value_type(&v));
		}
	}

	if (nmissing > 0 || nwrong > 0)
	{
		StringInfoData detail;

		initStringInfo(&detail);
		if (nmissing > 0)
			appendStringInfo(&detail, "Missing: %s.", missing.data);
		if (nwrong > 0)
		{
			qsort(wrong, nwrong, sizeof(char *), cmp_cstring);
			appendStringInfo(&detail, "%sWrong type: ", nmissing > 0 ? " " : "");
			for (i = 0; i < nwrong; i++)
				appendStringInfo(&detail, "%s%s", i > 0 ? "; " : "", wrong[i]);
			appendStringInfoChar(&detail, '.');
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload does not match template %s (%s, version %d)",
						notify_quote_value(template_key), locale, version),
				 errdetail("%s", detail.data),
				 errhint("The template's variables are in the schema column of notify_templates.")));
	}
}


/* ----------------------------------------------------------------
 *		Extension state and plans
 * ----------------------------------------------------------------
 */

/* Relcache callback: notify_templates changed, or every relation did */
static void
template_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == templates_relid ||
		relid == activations_relid)
		rcache_stale = true;
	if (relid == InvalidOid || relid == templates_relid)
	{
		state_valid = false;
		state_generation++;
		tcache_stale = true;
	}
}

/* Prepare a statement and keep it for the life of the process */
static SPIPlanPtr
prepare_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep plan of \"%s\"", sql);
	return plan;
}

/* Free the kept plans */
static void
forget_plans(void)
{
	SPIPlanPtr *plans[] = {&fetch_plan, &active_plan, &version_plan, &key_plan};
	size_t		i;

	for (i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i] != NULL)
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
}

/*
 * Find the extension's schema and prepare the plans, unless that was done
 * and nothing changed since.  SPI must be connected.
 */
static void
ensure_state(void)
{
	uint64		generation;
	char	   *schema;
	const char *qs;
	Oid			nspid;
	Oid			t3[3] = {TEXTOID, TEXTOID, INT4OID};
	Oid			t2a[2] = {TEXTOID, TEXTARRAYOID};
	Oid			t3a[3] = {TEXTOID, TEXTARRAYOID, INT4OID};
	Oid			t1[1] = {TEXTOID};

	if (state_valid)
		return;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(template_relcache_callback, (Datum) 0);
		callback_registered = true;
	}

	generation = state_generation;
	forget_plans();
	templates_relid = InvalidOid;
	activations_relid = InvalidOid;
	tcache_stale = true;		/* the extension may have been recreated */
	rcache_stale = true;

	if (SPI_execute("SELECT n.nspname FROM pg_catalog.pg_extension e"
					" JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace"
					" WHERE e.extname OPERATOR(pg_catalog.=) 'notify'",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up the schema of extension notify");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"notify\" is not installed in this database")));
	schema = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	SPI_freetuptable(SPI_tuptable);
	nspid = get_namespace_oid(schema, false);
	templates_relid = get_relname_relid("notify_templates", nspid);
	activations_relid = get_relname_relid("notify_template_activations", nspid);
	qs = quote_identifier(schema);

	fetch_plan = prepare_plan(psprintf(
									   "SELECT t.subject, t.text_body, t.html_body"
									   " FROM %s.notify_templates t"
									   " WHERE t.template_key OPERATOR(pg_catalog.=) $1"
									   "   AND t.locale OPERATOR(pg_catalog.=) $2"
									   "   AND t.version OPERATOR(pg_catalog.=) $3",
									   qs), 3, t3);
	active_plan = prepare_plan(psprintf(
										"SELECT c.loc, a.version, t.category, t.schema"
										" FROM pg_catalog.unnest($2) WITH ORDINALITY AS c(loc, n)"
										" CROSS JOIN LATERAL ("
										"   SELECT a.version FROM %s.notify_template_activations a"
										"   WHERE a.template_key OPERATOR(pg_catalog.=) $1"
										"     AND a.locale OPERATOR(pg_catalog.=) c.loc"
										"   ORDER BY a.id DESC LIMIT 1) a"
										" JOIN %s.notify_templates t"
										"   ON t.template_key OPERATOR(pg_catalog.=) $1"
										"  AND t.locale OPERATOR(pg_catalog.=) c.loc"
										"  AND t.version OPERATOR(pg_catalog.=) a.version"
										" ORDER BY c.n LIMIT 1",
										qs, qs), 2, t2a);
	version_plan = prepare_plan(psprintf(
										 "SELECT c.loc, t.version, t.category, t.schema"
										 " FROM pg_catalog.unnest($2) WITH ORDINALITY AS c(loc, n)"
										 " JOIN %s.notify_templates t"
										 "   ON t.template_key OPERATOR(pg_catalog.=) $1"
										 "  AND t.locale OPERATOR(pg_catalog.=) c.loc"
										 "  AND t.version OPERATOR(pg_catalog.=) $3"
										 " ORDER BY c.n LIMIT 1",
										 qs), 3, t3a);
	key_plan = prepare_plan(psprintf(
									 "SELECT 1 FROM %s.notify_templates t"
									 " WHERE t.template_key OPERATOR(pg_catalog.=) $1 LIMIT 1",
									 qs), 1, t1);

	/* an invalidation that arrived meanwhile means: do it again next time */
	state_valid = (generation == state_generation);
}

/*
 * Run a kept plan with a snapshot taken now (see the file header: a cache
 * is filled only from what committed before the invalidations it has
 * accepted).  It sees this transaction's own earlier changes.
 */
static int
spi_execute_latest(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	int			ret;

	ret = SPI_execute_snapshot(plan, values, nulls, snap, InvalidSnapshot,
							   true, false, 1);
	UnregisterSnapshot(snap);
	return ret;
}


/* ----------------------------------------------------------------
 *		The cache of compiled template versions
 * ----------------------------------------------------------------
 */

/* Empty the cache */
static void
tcache_reset(void)
{
	if (tcache_cxt != NULL)
		MemoryContextDelete(tcache_cxt);
	tcache_cxt = NULL;
	tcache = NULL;
	dlist_init(&tcache_lru);
	tcache_count = 0;
	tcache_stale = false;
}

/*
 * Create the cache if needed.  Only a lookup empties a stale cache: an
 * entry added after an invalidation arrived goes at the next lookup.
 */
static void
tcache_prepare(void)
{
	HASHCTL		ctl;

	if (tcache != NULL)
		return;

	tcache_cxt = AllocSetContextCreate(TopMemoryContext,
									   "notify template cache",
									   ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(TemplateCacheKey);
	ctl.entrysize = sizeof(TemplateCacheEntry);
	ctl.hcxt = tcache_cxt;
	tcache = hash_create("notify template cache", NOTIFY_TEMPLATE_CACHE_SIZE,
						 &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	dlist_init(&tcache_lru);
	tcache_count = 0;
}

/* Fill a cache key; false if the key or locale is too long to exist */
static bool
tcache_make_key(TemplateCacheKey *key, const char *template_key,
				const char *locale, int version)
{
	memset(key, 0, sizeof(TemplateCacheKey));
	if (strlen(template_key) > NOTIFY_TEMPLATE_KEY_MAXLEN ||
		strlen(locale) > NOTIFY_LOCALE_MAXLEN)
		return false;
	strcpy(key->template_key, template_key);
	strcpy(key->locale, locale);
	key->version = version;
	return true;
}

/* The cached entry of a version, or NULL; a hit becomes the most recent */
static TemplateCacheEntry *
tcache_lookup(const TemplateCacheKey *key)
{
	TemplateCacheEntry *e;

	if (tcache_stale)
		tcache_reset();
	tcache_prepare();
	e = hash_search(tcache, key, HASH_FIND, NULL);
	if (e != NULL)
		dlist_move_head(&tcache_lru, &e->lru);
	return e;
}

/*
 * Compile one part into cxt; NULL text means the part is absent.
 */
static MustacheTemplate *
compile_part(const char *text, MemoryContext cxt)
{
	if (text == NULL)
		return NULL;
	return mustache_compile(text, strlen(text), cxt);
}

/*
 * Compile a version's parts and add them to the cache.  The parts are
 * compiled into a context under CurrentMemoryContext that moves under the
 * cache only when all compiled, so a parse error leaks nothing into the
 * cache: the context goes with the caller's memory.
 */
static TemplateCacheEntry *
tcache_add(const TemplateCacheKey *key, const char *subject,
		   const char *text_body, const char *html_body)
{
	MemoryContext cxt;
	MustacheTemplate *s;
	MustacheTemplate *t;
	MustacheTemplate *h;
	TemplateCacheEntry *e;
	bool		found;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "notify template",
								ALLOCSET_SMALL_SIZES);
	s = compile_part(subject, cxt);
	t = compile_part(text_body, cxt);
	h = compile_part(html_body, cxt);

	tcache_prepare();
	if (tcache_count >= NOTIFY_TEMPLATE_CACHE_SIZE)
	{
		TemplateCacheEntry *old = dlist_tail_element(TemplateCacheEntry, lru,
													 &tcache_lru);

		dlist_delete(&old->lru);
		MemoryContextDelete(old->cxt);
		hash_search(tcache, &old->key, HASH_REMOVE, NULL);
		tcache_count--;
	}

	MemoryContextSetParent(cxt, tcache_cxt);
	e = hash_search(tcache, key, HASH_ENTER, &found);
	Assert(!found);
	e->cxt = cxt;
	e->subject = s;
	e->text_body = t;
	e->html_body = h;
	dlist_push_head(&tcache_lru, &e->lru);
	tcache_count++;
	return e;
}

/*
 * Read a version's parts with SPI (connected, state ensured) into
 * CurrentMemoryContext; false if there is no such version.
 */
static bool
fetch_version(const char *template_key, const char *locale, int version,
			  char **subject, char **text_body, char **html_body)
{
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	MemoryContext cxt = CurrentMemoryContext;
	HeapTuple	tup;
	TupleDesc	desc;
	Datum		d;
	bool		isnull;

	values[0] = CStringGetTextDatum(template_key);
	values[1] = CStringGetTextDatum(locale);
	values[2] = Int32GetDatum(version);
	if (spi_execute_latest(fetch_plan, values, nulls) != SPI_OK_SELECT)
		elog(ERROR, "could not read template version: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_processed == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		return false;
	}

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	MemoryContextSwitchTo(cxt);
	d = SPI_getbinval(tup, desc, 1, &isnull);
	*subject = isnull ? pstrdup("") : TextDatumGetCString(d);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	*text_body = isnull ? NULL : TextDatumGetCString(d);
	d = SPI_getbinval(tup, desc, 3, &isnull);
	*html_body = isnull ? NULL : TextDatumGetCString(d);
	SPI_freetuptable(SPI_tuptable);
	return true;
}


/* ----------------------------------------------------------------
 *		The cache of resolutions
 * ----------------------------------------------------------------
 */

/* The cached resolution under key, or NULL; empties a stale cache first */
static ResolveCacheEntry *
rcache_lookup(const char *key)
{
	HASHCTL		ctl;

	if (rcache_stale || rcache_count >= RCACHE_SIZE)
	{
		if (rcache_cxt != NULL)
			MemoryContextDelete(rcache_cxt);
		rcache_cxt = NULL;
		rcache = NULL;
		rcache_count = 0;
		rcache_stale = false;
	}
	if (rcache == NULL)
	{
		rcache_cxt = AllocSetContextCreate(TopMemoryContext,
										   "notify template resolutions",
										   ALLOCSET_DEFAULT_SIZES);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = RCACHE_KEYSIZE;
		ctl.entrysize = sizeof(ResolveCacheEntry);
		ctl.hcxt = rcache_cxt;
		rcache = hash_create("notify template resolutions", RCACHE_SIZE,
							 &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	return hash_search(rcache, key, HASH_FIND, NULL);
}

/* Remember a resolution (the cache exists: rcache_lookup came first) */
static ResolveCacheEntry *
rcache_add(const char *key, int version, const char *locale,
		   const char *category, Jsonb *schema)
{
	ResolveCacheEntry *e;
	bool		found;

	e = hash_search(rcache, key, HASH_ENTER, &found);
	if (!found)
		rcache_count++;
	e->version = version;
	e->locale = MemoryContextStrdup(rcache_cxt, locale);
	e->category = MemoryContextStrdup(rcache_cxt, category);
	e->nchecks = 0;
	e->checks = NULL;
	if (schema != NULL)
		e->checks = schema_compile(schema, rcache_cxt, &e->nchecks);
	return e;
}


/* ----------------------------------------------------------------
 *		Rendering
 * ----------------------------------------------------------------
 */

/*
 * Render one compiled part for payload; NULL for an absent part.  Subjects
 * and text bodies are plain text: {{name}} does not HTML-escape there.
 */
static char *
render_part(const MustacheTemplate *tpl, Jsonb *payload, bool plain_text)
{
	StringInfoData buf;
	MustacheOptions options;

	if (tpl == NULL)
		return NULL;
	memset(&options, 0, sizeof(options));
	options.plain_text = plain_text;
	initStringInfo(&buf);
	mustache_render_ext(tpl, &payload->root, NULL, &options, &buf);
	return buf.data;
}

/*
 * Make a rendered subject one header line: every run of CR and LF (which
 * variables may bring in) becomes one space.
 */
static void
subject_one_line(char *s)
{
	char	   *w = s;
	char	   *r = s;

	while (*r)
	{
		if (*r == '\r' || *r == '\n')
		{
			while (*r == '\r' || *r == '\n')
				r++;
			*w++ = ' ';
		}
		else
			*w++ = *r++;
	}
	*w = '\0';
}

/* Render all parts of a cached version */
static void
render_entry(const TemplateCacheEntry *e, Jsonb *payload, NotifyRendered *out)
{
	out->subject = render_part(e->subject, payload, true);
	subject_one_line(out->subject);
	out->text_body = render_part(e->text_body, payload, true);
	out->html_body = render_part(e->html_body, payload, false);
}

/*
 * The worker's entry point; see template.h.
 */
bool
notify_template_render(const char *template_key, const char *locale,
					   int version, Jsonb *payload, NotifyRendered *out,
					   char **error)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	TemplateCacheKey key;
	TemplateCacheEntry *entry;
	char	   *subject = NULL;
	char	   *text_body = NULL;
	char	   *html_body = NULL;
	volatile bool ok = false;

	*error = NULL;
	memset(out, 0, sizeof(NotifyRendered));

	if (payload == NULL || !JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
	{
		*error = pstrdup("payload is not a JSON object");
		return false;
	}

	/* SPI calls leave SPI's context current: come back to the caller's */
	AcceptInvalidationMessages();
	ensure_state();
	MemoryContextSwitchTo(oldcxt);
	entry = NULL;
	if (tcache_make_key(&key, template_key, locale, version))
	{
		entry = tcache_lookup(&key);
		if (entry == NULL &&
			!fetch_version(template_key, locale, version,
						   &subject, &text_body, &html_body))
			key.version = 0;	/* no such row */
	}
	else
		key.version = 0;		/* too long to exist */
	MemoryContextSwitchTo(oldcxt);
	if (entry == NULL && key.version == 0)
	{
		*error = psprintf("template %s (%s) version %d does not exist",
						  notify_quote_value(template_key), locale, version);
		return false;
	}

	/* compile and render in a subtransaction: template errors mark the message failed */
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		if (entry == NULL)
			entry = tcache_add(&key, subject, text_body, html_body);
		render_entry(entry, payload, out);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;

		if (!error_is_template_error(edata->sqlerrcode))
			ReThrowError(edata);
		*error = psprintf("template %s (%s) version %d: %s",
						  notify_quote_value(template_key), locale, version,
						  edata->message);
		FreeErrorData(edata);
		memset(out, 0, sizeof(NotifyRendered));
	}
	PG_END_TRY();

	return ok;
}

/*
 * Compile template text through the text-keyed cache; see template.h.
 */
const MustacheTemplate *
notify_template_compile_text(const char *text, int len)
{
	TextCacheKey key;
	TextCacheEntry *e;
	bool		found;
	MustacheTemplate *tpl;

	if (len > TEXT_CACHE_MAX_LEN)
		return mustache_compile(text, len, CurrentMemoryContext);

	if (xcache == NULL)
	{
		HASHCTL		ctl;

		xcache_cxt = AllocSetContextCreate(TopMemoryContext,
										   "notify template text cache",
										   ALLOCSET_DEFAULT_SIZES);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(TextCacheKey);
		ctl.entrysize = sizeof(TextCacheEntry);
		ctl.hcxt = xcache_cxt;
		xcache = hash_create("notify template text cache", TEXT_CACHE_SIZE,
							 &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		dlist_init(&xcache_lru);
	}

	memset(&key, 0, sizeof(key));
	key.hash = hash_bytes_extended((const unsigned char *) text, len, 0);
	key.len = len;
	e = hash_search(xcache, &key, HASH_FIND, NULL);
	if (e != NULL && memcmp(e->text, text, len) == 0)
	{
		dlist_move_head(&xcache_lru, &e->lru);
		return e->tpl;
	}

	/* compile first: a parse error must leave the cache as it was */
	tpl = mustache_compile(text, len, xcache_cxt);

	if (e != NULL)
	{
		/* a hash collision: the slot now holds this text */
		pfree(e->text);
		mustache_free(e->tpl);
		dlist_delete(&e->lru);
		xcache_count--;
	}
	else if (xcache_count >= TEXT_CACHE_SIZE)
	{
		TextCacheEntry *old = dlist_tail_element(TextCacheEntry, lru, &xcache_lru);

		dlist_delete(&old->lru);
		pfree(old->text);
		mustache_free(old->tpl);
		hash_search(xcache, &old->key, HASH_REMOVE, NULL);
		xcache_count--;
	}

	e = hash_search(xcache, &key, HASH_ENTER, &found);
	e->text = MemoryContextAlloc(xcache_cxt, len > 0 ? len : 1);
	memcpy(e->text, text, len);
	e->tpl = tpl;
	dlist_push_head(&xcache_lru, &e->lru);
	xcache_count++;
	return tpl;
}


/* ----------------------------------------------------------------
 *		SQL functions
 * ----------------------------------------------------------------
 */

/*
 * A cache hit must not skip the privilege check a query would make: SQL
 * callers need SELECT on the tables the answer comes from.
 */
static void
check_select(Oid relid, const char *relname)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, relname);
}

/*
 * The blessed result row type of a function with OUT parameters, looked up
 * once per call site.
 */
static TupleDesc
result_tupdesc(FunctionCallInfo fcinfo)
{
	TupleDesc	tupdesc;

	if (fcinfo->flinfo->fn_extra == NULL)
	{
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		MemoryContextSwitchTo(old);
	}
	return (TupleDesc) fcinfo->flinfo->fn_extra;
}

/*
 * notify_locale_canonical(locale text) returns text
 */
Datum
notify_locale_canonical(PG_FUNCTION_ARGS)
{
	text	   *arg = PG_GETARG_TEXT_PP(0);
	char	   *s = text_to_cstring(arg);
	char	   *c = locale_canonical(s, strlen(s));

	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid locale %s", notify_quote_value(s)),
				 errdetail("A locale is a BCP 47 language tag such as en, ja or pt-BR.")));
	PG_RETURN_TEXT_P(cstring_to_text(c));
}

/*
 * notify_template_validate(template text, part text) returns void
 *
 * Compiles the template and throws the result away; a parse error is
 * raised again with the part's name in front of the engine's message.
 */
Datum
notify_template_validate(PG_FUNCTION_ARGS)
{
	text	   *tmpl;
	const char *part;
	MemoryContext cxt = CurrentMemoryContext;

	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	tmpl = PG_GETARG_TEXT_PP(0);
	part = PG_ARGISNULL(1) ? "template" : text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_TRY();
	{
		mustache_free(mustache_compile(VARDATA_ANY(tmpl), VARSIZE_ANY_EXHDR(tmpl),
									   cxt));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* only reword the engine's parse errors; rethrow at once either way */
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_INVALID_PARAMETER_VALUE &&
			edata->sqlerrcode != ERRCODE_FEATURE_NOT_SUPPORTED)
			PG_RE_THROW();
		FlushErrorState();
		edata->message = psprintf("invalid %s template: %s", part, edata->message);
		ReThrowError(edata);
	}
	PG_END_TRY();

	PG_RETURN_VOID();
}

/*
 * notify_template_schema_check(schema jsonb) returns void
 */
Datum
notify_template_schema_check(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0))
		schema_check(PG_GETARG_JSONB_P(0));
	PG_RETURN_VOID();
}

/*
 * notify_in_extension_script() returns boolean
 */
Datum
notify_in_extension_script(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(creating_extension &&
				   CurrentExtensionObject == get_extension_oid("notify", true));
}

/*
 * Statement trigger on notify_templates: invalidate the table's relcache
 * entry at commit, which every process's template cache listens to.
 */
Datum
notify_templates_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "notify_templates_changed: not called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * notify_template_resolve(template_key text, locale text, payload jsonb,
 *		version integer, OUT template_version integer, OUT locale text,
 *		OUT category text)
 */
Datum
notify_template_resolve(PG_FUNCTION_ARGS)
{
	int32		version = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3);
	char	   *locale;
	char	   *category;
	TupleDesc	tupdesc;
	Datum		result[3];
	bool		result_nulls[3] = {false, false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("template_key must not be null")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be null"),
				 errhint("Pass '{}' for a notification without variables.")));
	resolve(text_to_cstring(PG_GETARG_TEXT_PP(0)),
			PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
			PG_GETARG_JSONB_P(2), !PG_ARGISNULL(3), &version, &locale, &category);

	tupdesc = result_tupdesc(fcinfo);
	result[0] = Int32GetDatum(version);
	result[1] = CStringGetTextDatum(locale);
	result[2] = CStringGetTextDatum(category);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result, result_nulls)));
}

/*
 * notify_template_resolve_for
 *		What notify_template_resolve() returns, for C callers (enqueue):
 *		the active version of template_key for locale (NULL: the default
 *		locale), after checking payload against its schema.
 */
void
notify_template_resolve_for(const char *template_key, text *locale, Jsonb *payload,
							int32 *version, char **resolved_locale, char **category)
{
	*version = 0;
	resolve(template_key, locale, payload, false, version, resolved_locale, category);
}

/*
 * notify_template_key_exists
 *		Whether any version of template_key exists (in any locale).
 */
bool
notify_template_key_exists(const char *template_key)
{
	Datum		values[1];
	char		nulls[1] = {' '};
	bool		found;

	values[0] = CStringGetTextDatum(template_key);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ensure_state();
	if (spi_execute_latest(key_plan, values, nulls) != SPI_OK_SELECT)
		elog(ERROR, "could not look up template: %s",
			 SPI_result_code_string(SPI_result));
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/*
 * resolve
 *		The version (*version when have_version, else the active one),
 *		locale and category of template_key for the requested locale
 *		(NULL: notify.default_locale), checking payload against the
 *		version's schema.  Raises for unknown keys, locales and versions
 *		and for payloads that do not match.
 */
static void
resolve(const char *template_key, text *locale_arg, Jsonb *payload, bool have_version,
		int32 *version_inout, char **locale_out, char **category_out)
{
	char	   *requested = NULL;
	int			version = have_version ? *version_inout : 0;
	char	   *cands[MAX_LOCALE_CANDIDATES];
	int			ncands = 0;
	char	   *deflocale;
	bool		default_added = false;
	StringInfoData key;
	bool		cacheable;
	ResolveCacheEntry *entry;
	int			i;

	if (!JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload must be a JSON object, not %s", notify_jsonb_type(payload))));

	/* the locales to try, best first */
	if (locale_arg != NULL)
	{
		char	   *arg = text_to_cstring(locale_arg);

		requested = locale_canonical(arg, strlen(arg));
		if (requested == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid locale %s", notify_quote_value(arg)),
					 errdetail("A locale is a BCP 47 language tag such as en, ja or pt-BR.")));
		add_locale_chain(requested, cands, &ncands);
	}
	deflocale = default_locale();
	if (deflocale != NULL)
	{
		int			before = ncands;

		add_locale_chain(deflocale, cands, &ncands);
		default_added = ncands > before;
	}
	if (ncands == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no locale given and notify.default_locale is not a valid locale")));

	/* the cache key: the template key, the locales in order, the version */
	initStringInfo(&key);
	appendStringInfo(&key, "%s\x1f", template_key);
	for (i = 0; i < ncands; i++)
		appendStringInfo(&key, "%s%s", i > 0 ? "," : "", cands[i]);
	appendStringInfo(&key, "\x1f%d", version);
	cacheable = key.len < RCACHE_KEYSIZE;

	AcceptInvalidationMessages();
	entry = cacheable ? rcache_lookup(key.data) : NULL;
	if (entry != NULL)
	{
		check_select(templates_relid, "notify_templates");
		check_select(activations_relid, "notify_template_activations");
	}
	else
	{
		MemoryContext callcxt = CurrentMemoryContext;
		Datum	   *elems = palloc(sizeof(Datum) * ncands);
		Datum		values[3];
		char		nulls[3] = {' ', ' ', ' '};
		HeapTuple	tup;
		TupleDesc	desc;
		bool		isnull;
		Datum		d;
		char	   *loc;
		char	   *category;
		Jsonb	   *schema = NULL;
		int			found_version;

		for (i = 0; i < ncands; i++)
			elems[i] = CStringGetTextDatum(cands[i]);
		values[0] = CStringGetTextDatum(template_key);
		values[1] = PointerGetDatum(construct_array(elems, ncands, TEXTOID, -1,
													false, TYPALIGN_INT));
		values[2] = Int32GetDatum(version);

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		ensure_state();
		if (spi_execute_latest(have_version ? version_plan : active_plan,
							   values, nulls) != SPI_OK_SELECT)
			elog(ERROR, "could not resolve template: %s",
				 SPI_result_code_string(SPI_result));

		if (SPI_processed == 0)
		{
			StringInfoData tried;

			if (spi_execute_latest(key_plan, values, nulls) != SPI_OK_SELECT)
				elog(ERROR, "could not look up template: %s",
					 SPI_result_code_string(SPI_result));
			if (SPI_processed == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown template %s", notify_quote_value(template_key)),
						 errhint("Templates are listed in notify_template_active; add one with notify_template_put().")));

			initStringInfo(&tried);
			for (i = 0; i < ncands; i++)
				appendStringInfo(&tried, "%s%s", i > 0 ? ", " : "", cands[i]);
			if (have_version)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("template %s has no version %d in locale %s",
								notify_quote_value(template_key), version,
								notify_quote_value(requested ? requested : cands[0])),
						 errdetail("Locales tried: %s.", tried.data),
						 errhint("Versions are listed in notify_templates.")));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("template %s has no active version for locale %s",
							notify_quote_value(template_key),
							notify_quote_value(requested ? requested : cands[0])),
					 default_added ?
					 errdetail("Locales tried: %s (the last from notify.default_locale).", tried.data) :
					 errdetail("Locales tried: %s.", tried.data),
					 errhint("Put one with notify_template_put(), or set notify.default_locale to a locale the template has.")));
		}

		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		loc = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		found_version = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		category = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		if (!isnull)
			schema = DatumGetJsonbP(d);

		if (cacheable)
			entry = rcache_add(key.data, found_version, loc, category, schema);
		else
		{
			/* a one-off entry in the caller's memory */
			entry = MemoryContextAllocZero(callcxt, sizeof(ResolveCacheEntry));
			entry->version = found_version;
			entry->locale = MemoryContextStrdup(callcxt, loc);
			entry->category = MemoryContextStrdup(callcxt, category);
			if (schema != NULL)
				entry->checks = schema_compile(schema, callcxt, &entry->nchecks);
		}
		SPI_finish();
	}

	payload_check(entry->checks, entry->nchecks, payload, template_key,
				  entry->locale, entry->version);

	*version_inout = entry->version;
	*locale_out = pstrdup(entry->locale);
	*category_out = pstrdup(entry->category);
}

/*
 * notify_template_render(template_key text, locale text, version integer,
 *		payload jsonb, OUT subject text, OUT text_body text,
 *		OUT html_body text)
 *
 * The worker's rendering, from SQL: errors are raised.
 */
Datum
notify_template_render_sql(PG_FUNCTION_ARGS)
{
	char	   *template_key;
	char	   *locale;
	int			version;
	Jsonb	   *payload;
	TemplateCacheKey key;
	TemplateCacheEntry *entry;
	NotifyRendered out;
	TupleDesc	tupdesc;
	Datum		result[3];
	bool		result_nulls[3];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("template_key, locale, version and payload must not be null")));
	template_key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	locale = text_to_cstring(PG_GETARG_TEXT_PP(1));
	version = PG_GETARG_INT32(2);
	payload = PG_GETARG_JSONB_P(3);
	if (!JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload must be a JSON object, not %s", notify_jsonb_type(payload))));

	AcceptInvalidationMessages();
	entry = NULL;
	if (tcache_make_key(&key, template_key, locale, version))
		entry = tcache_lookup(&key);
	else
		key.version = 0;		/* too long to exist */
	if (entry != NULL)
		check_select(templates_relid, "notify_templates");
	else
	{
		char	   *subject;
		char	   *text_body;
		char	   *html_body;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		ensure_state();
		if (key.version == 0 ||
			!fetch_version(template_key, locale, version,
						   &subject, &text_body, &html_body))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("template %s (%s) has no version %d",
							notify_quote_value(template_key), locale, version),
					 errhint("Versions are listed in notify_templates.")));
		entry = tcache_add(&key, subject, text_body, html_body);
		SPI_finish();
	}

	render_entry(entry, payload, &out);

	tupdesc = result_tupdesc(fcinfo);
	result[0] = CStringGetTextDatum(out.subject);
	result_nulls[0] = false;
	result_nulls[1] = out.text_body == NULL;
	result[1] = out.text_body ? CStringGetTextDatum(out.text_body) : (Datum) 0;
	result_nulls[2] = out.html_body == NULL;
	result[2] = out.html_body ? CStringGetTextDatum(out.html_body) : (Datum) 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result, result_nulls)));
}

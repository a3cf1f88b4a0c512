/*-------------------------------------------------------------------------
 *
 * enqueue.c
 *		notify_enqueue(): check a notification and write it to the outbox in
 *		the caller's transaction.
 *
 * This is the producer's hot path: it runs inside every business
 * transaction that notifies, so it is C.  The checks read the channel, the
 * category, suppressions and preferences through their indexes directly
 * (unsubscribe.c) and the template through the per-process resolution
 * cache (template.c); the row goes into notify_outbox through
 * direct_insert.c, which does what INSERT ... ON CONFLICT (dedup_key) DO
 * NOTHING does without paying for an executor statement per call, and so
 * does the audit row of a skipped notification or a dedup hit.
 *
 * The SQL declaration is SECURITY DEFINER with a pinned search_path, so
 * this runs as the extension's owner.
 *
 * Dedup: two concurrent enqueues with one key never both insert and
 * neither fails: the second waits for the first to commit or abort, then
 * returns the first one's id or inserts (direct_insert.c).
 *
 * The COMMIT wake-up is set by direct_insert.c (wakeup.c), as the statement
 * trigger on notify_outbox does for any other INSERT.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "notify.h"

#define TEMPLATE_KEY_MAXLEN	128
#define DEDUP_KEY_MAXLEN	256
#define URL_MAXLEN			2048

PG_FUNCTION_INFO_V1(notify_enqueue);

/* A caller's value for an error message (notify_quote_value: JSON-quoted, cut) */
static char *
quote_value(text *value)
{
	return notify_quote_value(text_to_cstring(value));
}

static void
require_arg(FunctionCallInfo fcinfo, int argno, const char *name, const char *hint)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 hint ? errhint("%s", hint) : 0));
}

/* <domain>.<event>: [a-z0-9_]+ separated by dots, two parts or more */
static bool
template_key_is_valid(const char *s, int len)
{
	int			parts = 1;
	int			run = 0;

	if (len > TEMPLATE_KEY_MAXLEN)
		return false;
	for (int i = 0; i < len; i++)
	{
		char		c = s[i];

		if (c == '.')
		{
			if (run == 0)
				return false;
			parts++;
			run = 0;
		}
		else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
			run++;
		else
			return false;
	}
	return run > 0 && parts >= 2;
}

/* ASCII white space, as \s in a regular expression under the C locale */
static inline bool
is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* https?://<host: no space, "/", "?", "#", "@">(/<no space>)? */
static bool
url_is_valid(const char *s, int len)
{
	int			i;
	int			host = 0;

	if (len >= 7 && strncmp(s, "http://", 7) == 0)
		i = 7;
	else if (len >= 8 && strncmp(s, "https://", 8) == 0)
		i = 8;
	else
		return false;
	for (; i < len && s[i] != '/'; i++, host++)
	{
		unsigned char c = (unsigned char) s[i];

		if (is_space(c) || c == '?' || c == '#' || c == '@')
			return false;
	}
	if (host == 0)
		return false;
	for (; i < len; i++)
		if (is_space((unsigned char) s[i]))
			return false;
	return true;
}

static bool
has_control_character(const char *s, int len)
{
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 32 || c == 127)
			return true;
	}
	return false;
}

/* The value of key in a JSON object, or NULL. */
static JsonbValue *
object_field(Jsonb *object, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&object->root, JB_FOBJECT, &k);
}

/* metadata ->> 'tenant' */
static text *
tenant_of(Jsonb *metadata)
{
	JsonbValue *v = object_field(metadata, "tenant");

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type == jbvString)
		return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
	if (v->type == jbvBool)
		return cstring_to_text(v->val.boolean ? "true" : "false");
	if (v->type == jbvNumeric)
		return cstring_to_text(DatumGetCString(DirectFunctionCall1(numeric_out,
																   NumericGetDatum(v->val.numeric))));
	return cstring_to_text(JsonbToCString(NULL, v->val.binary.data, v->val.binary.len));
}

/*
 * An upper bound of the length of payload's JSON text as JsonbToCString
 * writes it: a string of n bytes takes at most 6n + 2 characters (every
 * byte escaped as \u00XX, and the quotes), a number its numeric_out text,
 * true, false and null at most 5, every key, value or element at most 2
 * more for its ", " or ": ", every object or array 4 for its brackets and
 * its separator.
 */
static int64
json_text_bound(Jsonb *payload)
{
	JsonbIterator *it = JsonbIteratorInit(&payload->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int64		bound = 0;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
		{
			/* its brackets, and its ", " or ": " (it has no value token) */
			bound += 4;
			continue;
		}
		if (tok != WJB_KEY && tok != WJB_VALUE && tok != WJB_ELEM)
			continue;
		bound += 2;
		switch (v.type)
		{
			case jbvString:
				bound += 6 * (int64) v.val.string.len + 2;
				break;
			case jbvNumeric:
				bound += strlen(DatumGetCString(DirectFunctionCall1(numeric_out,
																	NumericGetDatum(v.val.numeric))));
				break;
			default:
				bound += 5;
				break;
		}
	}
	return bound;
}

/*
 * A JSON object of n keys and text values (NULL: JSON null), as
 * jsonb_build_object() makes it.
 */
static Jsonb *
text_object(int n, const char *const *keys, text *const *vals)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < n; i++)
	{
		v.type = jbvString;
		v.val.string.val = (char *) keys[i];
		v.val.string.len = strlen(keys[i]);
		pushJsonbValue(&state, WJB_KEY, &v);
		if (vals[i] == NULL)
			v.type = jbvNull;
		else
		{
			v.type = jbvString;
			v.val.string.val = VARDATA_ANY(vals[i]);
			v.val.string.len = VARSIZE_ANY_EXHDR(vals[i]);
		}
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/*
 * notify_enqueue(template_key text, recipient text, payload jsonb,
 *		channel text, category text, dedup_key text, send_at timestamptz,
 *		locale text, priority integer, actor text, metadata jsonb,
 *		expires_at timestamptz) RETURNS bigint
 */
Datum
notify_enqueue(PG_FUNCTION_ARGS)
{
	text	   *template_key;
	text	   *recipient;
	Jsonb	   *payload;
	text	   *channel;
	text	   *category_arg = PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4);
	text	   *dedup_key = PG_ARGISNULL(5) ? NULL : PG_GETARG_TEXT_PP(5);
	TimestampTz send_at;
	text	   *locale = PG_ARGISNULL(7) ? NULL : PG_GETARG_TEXT_PP(7);
	text	   *actor = PG_ARGISNULL(9) ? NULL : PG_GETARG_TEXT_PP(9);
	Jsonb	   *metadata;
	char	   *key;
	char	   *rcpt;
	int			rcpt_len;
	int			rcpt_chars;
	Oid			nsp;
	char	   *kind;
	bool		has_url = false;
	bool		email;
	int32		version = 0;
	char	   *resolved_locale = NULL;
	char	   *template_category = NULL;
	text	   *category_name;
	NotifyCategory cat;
	const char *skip;
	Datum		values[NOTIFY_OUTBOX_NCOLUMNS];
	bool		nulls[NOTIFY_OUTBOX_NCOLUMNS];
	int64		id = 0;
	bool		inserted;

	require_arg(fcinfo, 0, "template_key", NULL);
	require_arg(fcinfo, 1, "recipient", NULL);
	require_arg(fcinfo, 2, "payload", "Pass '{}' for a notification without variables.");
	require_arg(fcinfo, 3, "channel", NULL);
	require_arg(fcinfo, 10, "metadata", NULL);
	template_key = PG_GETARG_TEXT_PP(0);
	recipient = PG_GETARG_TEXT_PP(1);
	payload = PG_GETARG_JSONB_P(2);
	channel = PG_GETARG_TEXT_PP(3);
	metadata = PG_GETARG_JSONB_P(10);
	key = text_to_cstring(template_key);
	rcpt = text_to_cstring(recipient);
	rcpt_len = strlen(rcpt);

	if (!template_key_is_valid(key, strlen(key)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid template_key %s", quote_value(template_key)),
				 errdetail("A template key is <domain>.<event>: lowercase letters, digits and \"_\", separated by dots, at most 128 characters.")));

	if (!JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload must be a JSON object, not %s", notify_jsonb_type(payload))));
	/*
	 * The size limit is on the JSON text, as the setting says.  Writing
	 * the text out cost 3 % of a whole producer transaction, so it is
	 * written only when a cheap upper bound of its length is over the limit.
	 */
	if (json_text_bound(payload) > notify_max_payload_bytes)
	{
		char	   *text = JsonbToCString(NULL, &payload->root, VARSIZE(payload));
		int			size = strlen(text);

		if (size > notify_max_payload_bytes)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("payload is too large: %d bytes", size),
					 errdetail("notify.max_payload_bytes is %d bytes.", notify_max_payload_bytes),
					 errhint("Store large data in your tables and pass its key in the payload.")));
		pfree(text);
	}
	{
		JsonbValue *subject = object_field(payload, "subject");

		if (subject != NULL && subject->type == jbvString &&
			(memchr(subject->val.string.val, '\r', subject->val.string.len) != NULL ||
			 memchr(subject->val.string.val, '\n', subject->val.string.len) != NULL))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("payload subject must not contain CR or LF"),
					 errdetail("Line breaks in a header would let the payload add headers of its own.")));
	}
	if (!JB_ROOT_IS_OBJECT(metadata) || JB_ROOT_IS_SCALAR(metadata))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("metadata must be a JSON object, not %s", notify_jsonb_type(metadata))));

	/* the schema is the function's own; remembered per call site */
	if (fcinfo->flinfo->fn_extra == NULL)
	{
		Oid		   *p = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid));

		*p = get_func_namespace(fcinfo->flinfo->fn_oid);
		fcinfo->flinfo->fn_extra = p;
	}
	nsp = *(Oid *) fcinfo->flinfo->fn_extra;

	/* the channel, and what its kind needs of the recipient */
	kind = notify_channel_lookup(nsp, channel, &has_url);
	if (kind == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown channel %s", quote_value(channel)),
				 errhint("Channels are listed in notify_channels.")));
	email = notify_kind_is_email(kind);
	rcpt_chars = pg_mbstrlen_with_len(rcpt, rcpt_len);
	if (email)
	{
		if (!notify_mailbox_is_valid(rcpt, rcpt_len))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("recipient %s is not a valid email address", quote_value(recipient)),
					 errdetail("Channel %s delivers email and needs an RFC 5321 mailbox such as user@example.com.",
							   quote_value(channel))));
	}
	else if (strcmp(kind, "webhook") == 0 && !has_url &&
			 (rcpt_chars > URL_MAXLEN || !url_is_valid(rcpt, rcpt_len)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient %s is not an http:// or https:// URL", quote_value(recipient)),
				 errdetail("Channel %s posts to the URL given as the recipient.", quote_value(channel))));
	else if ((strcmp(kind, "webhook") == 0 || strcmp(kind, "slack") == 0) &&
			 (rcpt_chars > URL_MAXLEN || has_control_character(rcpt, rcpt_len)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient %s must be at most 2048 characters without control characters",
						quote_value(recipient))));

	/*
	 * The template: email needs a registered one (unknown keys, locales
	 * without a template and payloads that miss variables are refused
	 * here); webhooks and Slack use one when the key has one, else the
	 * payload as it is.  The resolved version and locale are kept, so
	 * retries render the same wording.
	 */
	if (email || notify_template_key_exists(key))
		notify_template_resolve_for(key, locale, payload, &version,
									&resolved_locale, &template_category);

	category_name = category_arg ? category_arg :
		cstring_to_text(template_category ? template_category : "transactional");
	if (!notify_category_lookup(nsp, category_name, &cat))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown category %s", category_arg ? quote_value(category_arg) : "<NULL>"),
				 errhint("Categories are listed in notify_categories.")));

	if (dedup_key != NULL)
	{
		int			n = pg_mbstrlen_with_len(VARDATA_ANY(dedup_key), VARSIZE_ANY_EXHDR(dedup_key));

		if (n < 1 || n > DEDUP_KEY_MAXLEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("dedup_key must be 1 to 256 characters long, not %d", n)));
	}
	send_at = PG_ARGISNULL(6) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(6);
	if (!PG_ARGISNULL(11) && PG_GETARG_TIMESTAMPTZ(11) <= send_at)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at must be later than send_at (or now)"),
				 errdetail("expires_at is %s.",
						   DatumGetCString(DirectFunctionCall1(timestamptz_out,
															   PG_GETARG_DATUM(11))))));
	if (locale != NULL && !notify_locale_is_valid(VARDATA_ANY(locale), VARSIZE_ANY_EXHDR(locale)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid locale %s", quote_value(locale)),
				 errdetail("A locale is a BCP 47 language tag such as en, ja or pt-BR.")));

	/*
	 * Preferences and suppressions, in the caller's transaction: a message
	 * that must not go out is still recorded, skipped, with the reason.
	 */
	skip = notify_decide_for(nsp, recipient, &cat, channel, kind, tenant_of(metadata));

	if (actor == NULL && notify_actor != NULL && notify_actor[0] != '\0')
		actor = cstring_to_text(notify_actor);

	memset(nulls, false, sizeof(nulls));
	values[NOTIFY_OUTBOX_DEDUP_KEY] = PointerGetDatum(dedup_key);
	nulls[NOTIFY_OUTBOX_DEDUP_KEY] = dedup_key == NULL;
	values[NOTIFY_OUTBOX_TEMPLATE_KEY] = PointerGetDatum(template_key);
	values[NOTIFY_OUTBOX_TEMPLATE_VERSION] = Int32GetDatum(version);
	nulls[NOTIFY_OUTBOX_TEMPLATE_VERSION] = resolved_locale == NULL;
	if (resolved_locale)
		values[NOTIFY_OUTBOX_LOCALE] = CStringGetTextDatum(resolved_locale);
	else
	{
		values[NOTIFY_OUTBOX_LOCALE] = PointerGetDatum(locale);
		nulls[NOTIFY_OUTBOX_LOCALE] = locale == NULL;
	}
	values[NOTIFY_OUTBOX_CHANNEL] = PointerGetDatum(channel);
	values[NOTIFY_OUTBOX_CATEGORY] = PointerGetDatum(cat.name);
	values[NOTIFY_OUTBOX_RECIPIENT] = PointerGetDatum(recipient);
	values[NOTIFY_OUTBOX_PAYLOAD] = JsonbPGetDatum(payload);
	values[NOTIFY_OUTBOX_PRIORITY] = Int32GetDatum(PG_ARGISNULL(8) ? cat.default_priority : PG_GETARG_INT32(8));
	values[NOTIFY_OUTBOX_MAX_ATTEMPTS] = Int32GetDatum(cat.default_max_attempts);
	values[NOTIFY_OUTBOX_SEND_AT] = TimestampTzGetDatum(send_at);
	values[NOTIFY_OUTBOX_EXPIRES_AT] = PG_ARGISNULL(11) ? (Datum) 0 : PG_GETARG_DATUM(11);
	nulls[NOTIFY_OUTBOX_EXPIRES_AT] = PG_ARGISNULL(11);
	values[NOTIFY_OUTBOX_NEXT_ATTEMPT_AT] = TimestampTzGetDatum(send_at);
	values[NOTIFY_OUTBOX_ACTOR] = PointerGetDatum(actor);
	nulls[NOTIFY_OUTBOX_ACTOR] = actor == NULL;
	values[NOTIFY_OUTBOX_METADATA] = JsonbPGetDatum(metadata);
	values[NOTIFY_OUTBOX_STATUS] = CStringGetTextDatum(skip ? "skipped" : "pending");
	values[NOTIFY_OUTBOX_SKIP_REASON] = skip ? CStringGetTextDatum(skip) : (Datum) 0;
	nulls[NOTIFY_OUTBOX_SKIP_REASON] = skip == NULL;

	inserted = notify_outbox_insert(nsp, values, nulls, &id);

	/* the audit log: a skipped row, or a dedup hit (not a plain enqueue) */
	if (skip != NULL || !inserted)
	{
		Datum		a[NOTIFY_AUDIT_NCOLUMNS];
		bool		an[NOTIFY_AUDIT_NCOLUMNS] = {false};

		a[NOTIFY_AUDIT_ACTOR] = PointerGetDatum(actor);
		an[NOTIFY_AUDIT_ACTOR] = actor == NULL;
		a[NOTIFY_AUDIT_OBJECT] = CStringGetTextDatum(psprintf("outbox:" INT64_FORMAT, id));
		if (inserted)
		{
			static const char *const keys[3] = {"reason", "category", "channel"};
			text	   *vals[3] = {cstring_to_text(skip), cat.name, channel};

			a[NOTIFY_AUDIT_ACTION] = CStringGetTextDatum("skipped");
			a[NOTIFY_AUDIT_DETAIL] = JsonbPGetDatum(text_object(3, keys, vals));
		}
		else
		{
			static const char *const keys[1] = {"dedup_key"};

			a[NOTIFY_AUDIT_ACTION] = CStringGetTextDatum("deduplicated");
			a[NOTIFY_AUDIT_DETAIL] = JsonbPGetDatum(text_object(1, keys, &dedup_key));
		}
		notify_audit_insert(nsp, a, an);
	}
	PG_RETURN_INT64(id);
}

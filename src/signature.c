/*-------------------------------------------------------------------------
 *
 * signature.c
 *		Standard Webhooks signatures: the signing the worker calls, and the
 *		SQL functions notify_webhook_signature, notify_webhook_verify and
 *		notify_generate_webhook_secret.
 *
 * Standard Webhooks 1.0.0 signs "msg_id.timestamp.body" with HMAC-SHA256
 * and sends "v1," followed by the base64 of the MAC in the
 * webhook-signature header; during key rotation the header carries one
 * such signature per secret, separated by spaces.
 *
 * A secret is "whsec_" followed by the canonical base64 of its key, and
 * the key is 24 to 64 bytes long: the serialization and the range the
 * specification gives.  Anything else is refused rather than guessed at.
 * A string without the prefix is more likely a password, or a key of the
 * asymmetric scheme (whsk_), than a bare base64 secret, and signing with
 * its raw bytes would give signatures that no Standard Webhooks library
 * verifies when handed the same string.
 *
 * The message id ends up in an HTTP header and in the signed content, so
 * it must be printable ASCII without spaces and, as the specification
 * requires, without ".": a "." would let one signature stand for another
 * split of the same bytes into id, timestamp and body.  The timestamp is
 * unix seconds and not negative.
 *
 * No error message contains a secret: a bad one in a list is named by its
 * position.  Decoded keys are wiped once used.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "hmac.h"

#define WHSEC_PREFIX		"whsec_"
#define WHSEC_PREFIX_LEN	6
#define WEBHOOK_KEY_MIN		24
#define WEBHOOK_KEY_MAX		64
#define WEBHOOK_NEW_KEY_LEN	24

/* "v1," and the base64 of a 32-byte MAC */
#define V1_SIGNATURE_LEN	(3 + 44)

#define SECRET_HINT \
	"A Standard Webhooks secret is \"whsec_\" followed by the base64 of 24 to 64 random bytes, as notify_generate_webhook_secret() makes."

/* one decoded secret */
typedef struct WebhookKey
{
	uint8		bytes[WEBHOOK_KEY_MAX];
	int			len;
} WebhookKey;

/* the message arguments of the SQL signing functions */
typedef struct SignArgs
{
	char	   *msg_id;
	int64		ts;
	char	   *body;			/* UTF-8 */
} SignArgs;

static bool is_space(char c);
static const char *decode_secret(const char *s, size_t len, WebhookKey *key);
static const char *parse_secrets(const char *secrets, WebhookKey **keys,
								 int *nkeys, int *bad);
static void wipe_keys(WebhookKey *keys, int nkeys);
static const char *check_msg_id(const char *msg_id);
static char *sign_with_keys(const WebhookKey *keys, int nkeys,
							const char *msg_id, int64 ts,
							const char *body, size_t body_len);
static char *secret_error(int bad, int count, const char *reason);
static void report_bad_secret(int bad, int count, const char *reason);
static char *required_arg(FunctionCallInfo fcinfo, int argno, const char *name);
static int64 required_timestamp(FunctionCallInfo fcinfo, int argno);
static void message_args(FunctionCallInfo fcinfo, SignArgs *a);
static text *sign_sql(const SignArgs *a, WebhookKey *keys, int nkeys);

PG_FUNCTION_INFO_V1(notify_webhook_signature);
PG_FUNCTION_INFO_V1(notify_webhook_signature_multi);
PG_FUNCTION_INFO_V1(notify_webhook_verify);
PG_FUNCTION_INFO_V1(notify_generate_webhook_secret);

/* White space separating secrets and signatures. */
static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Decode one secret of len bytes into *key.  Returns NULL, or why the
 * secret is refused as a phrase that follows "The secret".
 */
static const char *
decode_secret(const char *s, size_t len, WebhookKey *key)
{
	size_t		i;
	int			n;

	for (i = 0; i < len; i++)
		if (is_space(s[i]))
			return "contains white space";
	if (len == 0)
		return "is empty";
	if (len < WHSEC_PREFIX_LEN || memcmp(s, WHSEC_PREFIX, WHSEC_PREFIX_LEN) != 0)
		return "does not start with \"whsec_\"";

	if (len == WHSEC_PREFIX_LEN)
		return "has nothing after \"whsec_\"";

	n = notify_base64_decoded_len(s + WHSEC_PREFIX_LEN, len - WHSEC_PREFIX_LEN);
	if (n < 0)
		return "is not padded base64 after \"whsec_\"";
	if (n < WEBHOOK_KEY_MIN)
		return "decodes to fewer than 24 bytes";
	if (n > WEBHOOK_KEY_MAX)
		return "decodes to more than 64 bytes";

	key->len = notify_base64_decode(s + WHSEC_PREFIX_LEN, len - WHSEC_PREFIX_LEN,
									key->bytes, sizeof(key->bytes));
	if (key->len != n)
		elog(ERROR, "could not decode a valid base64 secret");
	return NULL;
}

/*
 * Decode the secrets, separated by white space, into a palloc'd array.
 * Returns NULL with *keys and *nkeys set, or the reason a secret is
 * refused with *bad its position (from 1, 0 when there is none at all)
 * and *nkeys the number of secrets given.
 */
static const char *
parse_secrets(const char *secrets, WebhookKey **keys, int *nkeys, int *bad)
{
	const char *p;
	int			count = 0;
	int			i = 0;
	WebhookKey *result;

	*keys = NULL;
	*bad = 0;
	for (p = secrets; *p;)
	{
		while (is_space(*p))
			p++;
		if (*p == '\0')
			break;
		count++;
		while (*p && !is_space(*p))
			p++;
	}
	*nkeys = count;
	if (count == 0)
		return "is empty";

	result = palloc(sizeof(WebhookKey) * count);
	for (p = secrets; *p;)
	{
		const char *start;
		const char *reason;

		while (is_space(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p && !is_space(*p))
			p++;
		reason = decode_secret(start, p - start, &result[i]);
		i++;
		if (reason != NULL)
		{
			wipe_keys(result, count);
			*bad = i;
			return reason;
		}
	}
	*keys = result;
	return NULL;
}

/* Zero and free decoded keys. */
static void
wipe_keys(WebhookKey *keys, int nkeys)
{
	explicit_bzero(keys, sizeof(WebhookKey) * nkeys);
	pfree(keys);
}

/*
 * NULL if msg_id may be signed, or why not as a phrase that follows "The
 * message id".
 */
static const char *
check_msg_id(const char *msg_id)
{
	const unsigned char *p;

	if (*msg_id == '\0')
		return "is empty";
	for (p = (const unsigned char *) msg_id; *p; p++)
	{
		if (*p == '.')
			return "contains \".\", which separates the signed fields";
		if (*p <= ' ' || *p >= 0x7f)
			return "contains a character other than printable ASCII without space";
	}
	return NULL;
}

/*
 * The header value "v1,<base64> v1,<base64> ..." for msg_id, ts and body
 * under each of the keys, palloc'd.
 */
static char *
sign_with_keys(const WebhookKey *keys, int nkeys, const char *msg_id,
			   int64 ts, const char *body, size_t body_len)
{
	StringInfoData out;
	NotifyHmacPart parts[2];
	uint8		mac[NOTIFY_SHA256_LEN];
	char	   *prefix;
	int			i;

	prefix = psprintf("%s." INT64_FORMAT ".", msg_id, ts);
	parts[0].data = prefix;
	parts[0].len = strlen(prefix);
	parts[1].data = body;
	parts[1].len = body_len;

	initStringInfo(&out);
	for (i = 0; i < nkeys; i++)
	{
		char	   *b64;

		notify_hmac_sha256_parts(keys[i].bytes, keys[i].len, parts, 2, mac);
		b64 = notify_base64_encode(mac, sizeof(mac));
		if (i > 0)
			appendStringInfoChar(&out, ' ');
		appendStringInfoString(&out, "v1,");
		appendStringInfoString(&out, b64);
		pfree(b64);
	}
	explicit_bzero(mac, sizeof(mac));
	pfree(prefix);
	return out.data;
}

/*
 * notify_webhook_sign
 *		The webhook-signature header value for a message: "v1,<base64>" for
 *		each of the secrets (one or more "whsec_" secrets separated by white
 *		space), separated by single spaces, palloc'd.  The body is the exact
 *		bytes sent.  Returns NULL and sets *error (palloc'd, without any
 *		secret in it) when a secret, the message id or the timestamp is not
 *		valid.
 */
char *
notify_webhook_sign(const char *secrets, const char *msg_id, int64 ts,
					const char *body, size_t body_len, char **error)
{
	WebhookKey *keys;
	int			nkeys;
	int			bad;
	const char *reason;
	char	   *result;

	*error = NULL;
	reason = check_msg_id(msg_id);
	if (reason != NULL)
	{
		*error = psprintf("invalid webhook message id: the id %s", reason);
		return NULL;
	}
	if (ts < 0)
	{
		*error = psprintf("invalid webhook timestamp " INT64_FORMAT ": it must not be negative", ts);
		return NULL;
	}
	reason = parse_secrets(secrets, &keys, &nkeys, &bad);
	if (reason != NULL)
	{
		*error = secret_error(bad, nkeys, reason);
		return NULL;
	}
	result = sign_with_keys(keys, nkeys, msg_id, ts, body, body_len);
	wipe_keys(keys, nkeys);
	return result;
}

/*
 * notify_webhook_check_secrets
 *		Whether secrets holds one or more valid "whsec_" secrets separated by
 *		white space; if not, sets *error (palloc'd, without any secret in it).
 */
bool
notify_webhook_check_secrets(const char *secrets, char **error)
{
	WebhookKey *keys;
	int			nkeys;
	int			bad;
	const char *reason;

	*error = NULL;
	reason = parse_secrets(secrets, &keys, &nkeys, &bad);
	if (reason != NULL)
	{
		*error = secret_error(bad, nkeys, reason);
		return false;
	}
	wipe_keys(keys, nkeys);
	return true;
}

/* The C API's message for secret number bad of count, palloc'd. */
static char *
secret_error(int bad, int count, const char *reason)
{
	if (count > 1)
		return psprintf("invalid webhook secret %d of %d: the secret %s",
						bad, count, reason);
	return psprintf("invalid webhook secret: the secret %s", reason);
}

/* Raise the error for secret number bad of count. */
static void
report_bad_secret(int bad, int count, const char *reason)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 count > 1 ?
			 errmsg("invalid webhook secret %d of %d", bad, count) :
			 errmsg("invalid webhook secret"),
			 errdetail("The secret %s.", reason),
			 errhint(SECRET_HINT)));
}

/* Text argument argno as a C string; an error naming it when null. */
static char *
required_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* The bigint timestamp argument argno; an error when null. */
static int64
required_timestamp(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("timestamp must not be null")));
	return PG_GETARG_INT64(argno);
}

/*
 * Fetch and check the message arguments (msg_id, timestamp, body) at
 * positions 1 to 3; the body is converted to UTF-8, the encoding it is
 * sent in.
 */
static void
message_args(FunctionCallInfo fcinfo, SignArgs *a)
{
	const char *reason;

	a->msg_id = required_arg(fcinfo, 1, "msg_id");
	a->ts = required_timestamp(fcinfo, 2);
	a->body = required_arg(fcinfo, 3, "body");

	reason = check_msg_id(a->msg_id);
	if (reason != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook message id \"%s\"", a->msg_id),
				 errdetail("The message id %s.", reason)));
	if (a->ts < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook timestamp " INT64_FORMAT, a->ts),
				 errdetail("The timestamp is in unix seconds and must not be negative.")));
	a->body = pg_server_to_any(a->body, strlen(a->body), PG_UTF8);
}

/* The signature header for the message under the keys, which are wiped. */
static text *
sign_sql(const SignArgs *a, WebhookKey *keys, int nkeys)
{
	char	   *result;

	result = sign_with_keys(keys, nkeys, a->msg_id, a->ts, a->body, strlen(a->body));
	wipe_keys(keys, nkeys);
	return cstring_to_text(result);
}

/*
 * notify_webhook_signature(secret text, msg_id text, timestamp bigint,
 *		body text) returns text
 */
Datum
notify_webhook_signature(PG_FUNCTION_ARGS)
{
	char	   *secret = required_arg(fcinfo, 0, "secret");
	SignArgs	a;
	WebhookKey *key;
	const char *reason;

	message_args(fcinfo, &a);
	key = palloc(sizeof(WebhookKey));
	reason = decode_secret(secret, strlen(secret), key);
	explicit_bzero(secret, strlen(secret));
	if (reason != NULL)
	{
		wipe_keys(key, 1);
		if (strcmp(reason, "contains white space") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid webhook secret"),
					 errdetail("The secret %s.", reason),
					 errhint("To sign with several secrets, pass them as an array.")));
		report_bad_secret(1, 1, reason);
	}
	PG_RETURN_TEXT_P(sign_sql(&a, key, 1));
}

/*
 * notify_webhook_signature(secrets text[], msg_id text, timestamp bigint,
 *		body text) returns text
 */
Datum
notify_webhook_signature_multi(PG_FUNCTION_ARGS)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	SignArgs	a;
	WebhookKey *keys;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("secrets must not be null")));
	message_args(fcinfo, &a);
	arr = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secrets must not be empty")));
	for (i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("secrets must not contain nulls")));

	keys = palloc(sizeof(WebhookKey) * n);
	for (i = 0; i < n; i++)
	{
		text	   *t = DatumGetTextPP(elems[i]);
		const char *reason;

		reason = decode_secret(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &keys[i]);
		if (reason != NULL)
		{
			wipe_keys(keys, n);
			report_bad_secret(i + 1, n, reason);
		}
	}
	PG_RETURN_TEXT_P(sign_sql(&a, keys, n));
}

/*
 * notify_webhook_verify(secret text, msg_id text, timestamp bigint,
 *		body text, signature_header text) returns boolean
 *
 * True when any "v1," signature in the header is the one the secret gives.
 * A message id or timestamp that could not have been signed gives false.
 * The timestamp's age is not checked: that is the caller's tolerance.
 */
Datum
notify_webhook_verify(PG_FUNCTION_ARGS)
{
	char	   *secret = required_arg(fcinfo, 0, "secret");
	char	   *msg_id = required_arg(fcinfo, 1, "msg_id");
	int64		ts = required_timestamp(fcinfo, 2);
	char	   *body = required_arg(fcinfo, 3, "body");
	char	   *header = required_arg(fcinfo, 4, "signature_header");
	WebhookKey *key = palloc(sizeof(WebhookKey));
	const char *reason;
	char	   *expected;
	const char *p;
	bool		match = false;

	reason = decode_secret(secret, strlen(secret), key);
	explicit_bzero(secret, strlen(secret));
	if (reason != NULL)
	{
		wipe_keys(key, 1);
		report_bad_secret(1, 1, reason);
	}
	if (check_msg_id(msg_id) != NULL || ts < 0)
	{
		wipe_keys(key, 1);
		PG_RETURN_BOOL(false);
	}

	body = pg_server_to_any(body, strlen(body), PG_UTF8);
	expected = sign_with_keys(key, 1, msg_id, ts, body, strlen(body));
	wipe_keys(key, 1);
	Assert(strlen(expected) == V1_SIGNATURE_LEN);

	/* every candidate of the right length is compared in full */
	for (p = header; *p;)
	{
		const char *start;

		while (is_space(*p))
			p++;
		start = p;
		while (*p && !is_space(*p))
			p++;
		if (p - start == V1_SIGNATURE_LEN &&
			notify_timingsafe_equal(start, expected, V1_SIGNATURE_LEN))
			match = true;
	}
	explicit_bzero(expected, V1_SIGNATURE_LEN);
	PG_RETURN_BOOL(match);
}

/*
 * notify_generate_webhook_secret() returns text
 *
 * "whsec_" and the base64 of 24 bytes from pg_strong_random().
 */
Datum
notify_generate_webhook_secret(PG_FUNCTION_ARGS)
{
	uint8		key[WEBHOOK_NEW_KEY_LEN];
	char	   *b64;
	text	   *result;

	if (!pg_strong_random(key, sizeof(key)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random webhook secret")));
	b64 = notify_base64_encode(key, sizeof(key));
	explicit_bzero(key, sizeof(key));
	result = cstring_to_text(psprintf(WHSEC_PREFIX "%s", b64));
	explicit_bzero(b64, strlen(b64));
	PG_RETURN_TEXT_P(result);
}

/*-------------------------------------------------------------------------
 *
 * message.c
 *		SQL-callable preview of the email message the worker would send
 *
 * notify_build_message() runs the same builder as the background worker
 * (mime.c) and returns the exact message text, CRLF line endings included,
 * so that administrators can inspect what goes on the wire.
 *
 * Inputs arrive in the database encoding and are converted to UTF-8 before
 * building; the result is always 7-bit ASCII.  When no message id is given
 * a random one is made (with outbox id 0), so the result differs from call
 * to call; with a given message id the result is fully repeatable, the
 * multipart boundary being derived from the message id.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "mime.h"

PG_FUNCTION_INFO_V1(notify_build_message);

/*
 * Fetch text argument argno as a UTF-8 C string, or NULL if it is NULL.
 */
static const char *
text_arg_utf8(FunctionCallInfo fcinfo, int argno)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		return NULL;
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	/* returns s itself when no conversion is needed */
	return pg_server_to_any(s, strlen(s), PG_UTF8);
}

/*
 * Turn a jsonb object of string values into extra headers.  Returns the
 * number of headers and sets *headers.
 */
static int
jsonb_to_headers(Jsonb *jb, NotifyMailHeader **headers)
{
	NotifyMailHeader *result;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	int			n = 0;
	char	   *name = NULL;
	char	   *value;

	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers must be a JSON object")));

	result = palloc0(sizeof(NotifyMailHeader) * (JB_ROOT_COUNT(jb) + 1));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			name = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE)
		{
			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("value of header \"%s\" must be a JSON string",
								name)));
			value = pnstrdup(v.val.string.val, v.val.string.len);
			result[n].name = pg_server_to_any(name, strlen(name), PG_UTF8);
			result[n].value = pg_server_to_any(value, strlen(value), PG_UTF8);
			n++;
		}
	}

	*headers = result;
	return n;
}

/*
 * notify_build_message(from_address text, to_address text, subject text,
 *		text_body text, html_body text, from_name text, message_id text,
 *		date timestamptz, headers jsonb) returns text
 */
Datum
notify_build_message(PG_FUNCTION_ARGS)
{
	NotifyMail	m;
	NotifyMailHeader *headers = NULL;
	StringInfoData buf;
	TimestampTz date;
	char	   *error = NULL;

	memset(&m, 0, sizeof(m));

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("from_address must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("to_address must not be null")));

	m.from_address = text_arg_utf8(fcinfo, 0);
	m.to_address = text_arg_utf8(fcinfo, 1);
	m.subject = text_arg_utf8(fcinfo, 2);
	m.text_body = text_arg_utf8(fcinfo, 3);
	m.html_body = text_arg_utf8(fcinfo, 4);
	m.from_name = text_arg_utf8(fcinfo, 5);
	m.message_id = text_arg_utf8(fcinfo, 6);
	if (m.message_id == NULL)
		m.message_id = notify_mail_message_id(0, m.from_address);

	/* a null date means the default, the transaction's start time */
	date = PG_ARGISNULL(7) ? GetCurrentTransactionStartTimestamp() :
		PG_GETARG_TIMESTAMPTZ(7);
	if (TIMESTAMP_NOT_FINITE(date))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("message date must be finite")));
	m.date = timestamptz_to_time_t(date);

	if (!PG_ARGISNULL(8))
		m.nextra = jsonb_to_headers(PG_GETARG_JSONB_P(8), &headers);
	m.extra = headers;

	initStringInfo(&buf);
	if (!notify_mail_build(&m, &buf, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", error)));

	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

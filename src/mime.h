/*-------------------------------------------------------------------------
 *
 * mime.h
 *		RFC 5322 / MIME message builder for outgoing email
 *
 * The builder turns a NotifyMail description into the exact octets that are
 * handed to libcurl for the SMTP DATA phase: headers, an empty line and the
 * body, with CRLF line endings throughout and only 7-bit ASCII on the wire.
 * See mime.c for the encoding rules.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_MIME_H
#define NOTIFY_MIME_H

#include "lib/stringinfo.h"
#include "pgtime.h"

/* An additional header field, e.g. List-Unsubscribe */
typedef struct NotifyMailHeader
{
	const char *name;			/* field name, printable ASCII without ':' */
	const char *value;			/* UTF-8 field body, no CR/LF */
} NotifyMailHeader;

/*
 * Description of one message.  All strings are NUL-terminated UTF-8 (not the
 * database encoding: callers convert with pg_server_to_any()).
 */
typedef struct NotifyMail
{
	const char *from_name;		/* display name; may be NULL or empty */
	const char *from_address;	/* addr-spec, e.g. "noreply@example.com" */
	const char *to_address;		/* addr-spec */
	const char *subject;		/* may be NULL or empty */
	const char *text_body;		/* text/plain part; may be NULL or empty */
	const char *html_body;		/* text/html part; may be NULL or empty */
	const char *message_id;		/* required, without angle brackets */
	pg_time_t	date;			/* for the Date header (seconds since epoch) */
	const NotifyMailHeader *extra;	/* additional headers, may be NULL */
	int			nextra;			/* number of entries in extra */
} NotifyMail;

/*
 * Append the complete message to out.  Returns true on success.  On invalid
 * input returns false, leaves out as it was on entry and sets *error to a
 * palloc'd message; it never throws for bad input.
 */
extern bool notify_mail_build(const NotifyMail *m, StringInfo out,
							  char **error);

/*
 * Make a Message-ID (without angle brackets) of the form
 * "<32 random hex digits>.<outbox_id>@<domain of from_address>".
 */
extern char *notify_mail_message_id(int64 outbox_id, const char *from_address);

#endif							/* NOTIFY_MIME_H */

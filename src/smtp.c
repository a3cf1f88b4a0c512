/*-------------------------------------------------------------------------
 *
 * smtp.c
 *		The SMTP transport: a pool of connections to the relay and the
 *		SMTP transaction (MAIL, RCPT, DATA) run on them without blocking.
 *
 * libcurl opens each connection (CURLOPT_CONNECT_ONLY): TCP, TLS for
 * smtps://, the greeting, EHLO, STARTTLS as notify.smtp_starttls says, and
 * AUTH.  Peer and host name are verified unless notify.tls_verify is off.
 * On the open connection we run one transaction per message ourselves
 * with curl_easy_send/curl_easy_recv, watching the socket in the worker's
 * wait set (transfer.c).  We do not let libcurl run the transaction: its
 * SMTP code waits, blocking, for the reply to the end of the message,
 * which would stall every other send, and signals, behind a slow server.
 *
 * Pipelining (RFC 2920).  When the server's EHLO reply advertises
 * PIPELINING, MAIL FROM, RCPT TO and DATA go out in one write and their
 * three replies are taken in order; then the message: two round trips per
 * message instead of four.  The first refusal (MAIL or RCPT not 2xx, or
 * DATA not 354) decides the message's outcome at once; the connection then
 * takes the rest of the group's replies, answers a 354 that came anyway
 * with an empty message (a lone "."), as RFC 2920 3.1 asks, and sends RSET
 * before it takes the next message.  Without PIPELINING each command waits
 * for its reply.
 *
 * With a backlog, the next message's group goes in the same write as the
 * message before it (RFC 2920 allows the message content first in a
 * group): its end ".", then MAIL, RCPT and DATA of the next job.  So a
 * connection has at most two jobs: job, whose message was sent and whose
 * final reply is awaited, and next, whose three replies follow that final
 * reply; the final reply makes next the job.  This is one round trip per
 * message.  A lost connection, a 421 or a timeout fails both.
 *
 * At most notify.max_connections connections are open; messages queue for
 * a free one, and connections are reused for message after message.  A
 * send has notify.timeout from the moment it gets a connection; a send
 * that times out is failed (transient) and its connection closed.
 *
 * Classification: 2xx after the message is sent; a 4xx reply, a failed or
 * lost connection or a timeout is transient; a 5xx reply is permanent.
 * The last reply line (code, enhanced status, queue id) is kept for the
 * attempt history.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "lib/ilist.h"
#include "mb/pg_wchar.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "mime.h"
#include "notify.h"
#include "worker.h"

/* Where a connection is in its life and in the current transaction. */
typedef enum SmtpStep
{
	SMTP_CLOSED = 0,
	SMTP_CONNECTING,			/* libcurl is connecting, greeting, EHLO, TLS, AUTH */
	SMTP_IDLE,					/* open, no transaction */
	SMTP_MAIL,					/* sent MAIL FROM, awaiting its reply */
	SMTP_RCPT,					/* awaiting the reply to RCPT TO */
	SMTP_DATA,					/* awaiting the reply to DATA */
	SMTP_BODY,					/* sent the message, awaiting the final reply */
	SMTP_RSET					/* sent RSET, awaiting its reply */
} SmtpStep;

#define SMTP_IN_SIZE 4096
#define SMTP_CMD_SIZE 2048		/* MAIL, RCPT and DATA of one group */

typedef struct SmtpConn
{
	TransferHandle th;			/* first: libcurl's CURLOPT_PRIVATE */
	CURL	   *easy;
	pgsocket	fd;
	int			slot;			/* index in conns */
	SmtpStep	step;
	NotifyJob  *job;			/* the message of the current transaction */
	TimestampTz deadline;		/* the job fails, and the connection closes,
								 * when it passes */
	NotifyJob  *next;			/* job whose group went after job's message */
	TimestampTz next_deadline;	/* its deadline */
	size_t		next_at;		/* where its group starts in out */
	char	   *url;			/* relay it is connected to */
	bool		pipelining;		/* the EHLO reply offered PIPELINING */
	bool		pipelined;		/* this transaction's commands went as a group */
	bool		refused;		/* this transaction failed (its job is
								 * finished): take the remaining replies,
								 * then RSET */

	/* what to send: commands in cmd, or the job's body */
	char		cmd[SMTP_CMD_SIZE];
	const char *out;
	size_t		out_len;
	size_t		out_pos;

	/* what came back */
	char		in[SMTP_IN_SIZE];
	int			in_len;
} SmtpConn;

static SmtpConn **conns = NULL;	/* allocated one by one: callbacks point at them */
static int	nconns = 0;
static dlist_head queue = DLIST_STATIC_INIT(queue);	/* jobs waiting for a connection */

static void dispatch(void);
static SmtpConn *conn_slot(int i);
static void open_connection(SmtpConn *c);
static void connection_done(TransferHandle *th, CURLcode rc);
static void begin_transaction(SmtpConn *c, NotifyJob *job);
static bool send_command(SmtpConn *c, const char *fmt,...) pg_attribute_printf(2, 3);
static void refuse(SmtpConn *c, int code, const char *line);
static void send_rset(SmtpConn *c);
static void socket_ready(void *arg, uint32 events);
static void flush_out(SmtpConn *c);
static void read_replies(SmtpConn *c);
static void handle_reply(SmtpConn *c, int code, const char *line);
static void finish_job(SmtpConn *c, NotifyOutcome outcome, int code, const char *reply, const char *error);
static void end_job(NotifyJob *job, NotifyOutcome outcome, int code, const char *reply, const char *error);
static void lose_connection(SmtpConn *c, int code, const char *reply, const char *error);
static int	format_group(SmtpConn *c, NotifyJob *job);
static void chain_next(SmtpConn *c);
static void close_connection(SmtpConn *c);
static void watch(SmtpConn *c);
static char *provider_id_from_reply(const char *reply);
static size_t keep_reply(char *buffer, size_t size, size_t nitems, void *userdata);
static void dot_stuff(StringInfo msg);

/*
 * Build the message of job into job->body, dot-stuffed and terminated for
 * DATA.  Returns false (with job->outcome and job->error set) when it
 * cannot be built, which no retry can fix.
 */
bool
smtp_prepare(NotifyJob *job)
{
	NotifyMail	mail;
	char	   *error = NULL;

	memset(&mail, 0, sizeof(mail));
	mail.from_name = pg_server_to_any(notify_from_name, strlen(notify_from_name), PG_UTF8);
	mail.from_address = notify_from_address;
	mail.to_address = job->recipient;
	mail.subject = job->subject;
	mail.text_body = job->text_body;
	mail.html_body = job->html_body;
	mail.message_id = job->message_id;
	mail.date = timestamptz_to_time_t(GetCurrentTimestamp());
	if (job->unsubscribe_url != NULL)
	{
		/* RFC 2369 and RFC 8058 one-click unsubscribe */
		NotifyMailHeader *h = palloc(sizeof(NotifyMailHeader) * 2);

		h[0].name = "List-Unsubscribe";
		h[0].value = psprintf("<%s>", job->unsubscribe_url);
		h[1].name = "List-Unsubscribe-Post";
		h[1].value = "List-Unsubscribe=One-Click";
		mail.extra = h;
		mail.nextra = 2;
	}

	/* room for a typical message, so that it is built without regrowing */
	initStringInfo(&job->body);
	enlargeStringInfo(&job->body, 4096);
	if (!notify_mail_build(&mail, &job->body, &error))
	{
		job->outcome = NOTIFY_OUTCOME_PERMANENT;
		job->error = psprintf("message not built: %s", error);
		return false;
	}
	dot_stuff(&job->body);
	if (job->body.len > 0 && job->body.data[job->body.len - 1] != '\n')
		appendStringInfoString(&job->body, "\r\n");
	appendStringInfoString(&job->body, ".\r\n");
	return true;
}

/*
 * RFC 5321 4.5.2: a line of the message that starts with "." gets another
 * one.  The builder writes no such line (mime.c escapes a body's leading
 * "." as "=2E"), so this normally only looks; it copies only if it must.
 */
static void
dot_stuff(StringInfo msg)
{
	const char *data = msg->data;
	const char *end = msg->data + msg->len;
	const char *p;
	int			dots = 0;
	StringInfoData out;
	const char *run;

	/* p is at the start of a line each time round */
	for (p = data; p < end; p++)
	{
		if (*p == '.')
			dots++;
		p = memchr(p, '\n', end - p);
		if (p == NULL)
			break;
	}
	if (dots == 0)
		return;

	initStringInfo(&out);
	enlargeStringInfo(&out, msg->len + dots);
	run = data;
	for (p = data; p < end; p++)
	{
		if (*p == '.')
		{
			/* copy up to and including this dot, then the dot again */
			appendBinaryStringInfo(&out, run, p - run + 1);
			run = p;
		}
		p = memchr(p, '\n', end - p);
		if (p == NULL)
			break;
	}
	appendBinaryStringInfo(&out, run, end - run);
	pfree(msg->data);
	*msg = out;
}

/* Queue a prepared job for the next free connection. */
void
smtp_submit(NotifyJob *job)
{
	dlist_push_tail(&queue, &job->node);
	dispatch();
}

/* Settings may have changed (SIGHUP): reconnect with them, closing idle connections. */
void
smtp_configure(void)
{
	int			i;

	for (i = 0; i < nconns; i++)
		if (conns[i]->step == SMTP_IDLE)
			close_connection(conns[i]);
}

/* Connection slot i, allocated on first use. */
static SmtpConn *
conn_slot(int i)
{
	if (i >= nconns)
	{
		int			n = i + 1;

		if (conns == NULL)
			conns = MemoryContextAllocZero(TopMemoryContext, sizeof(SmtpConn *) * n);
		else
		{
			conns = repalloc(conns, sizeof(SmtpConn *) * n);
			memset(conns + nconns, 0, sizeof(SmtpConn *) * (n - nconns));
		}
		for (; nconns < n; nconns++)
		{
			conns[nconns] = MemoryContextAllocZero(TopMemoryContext, sizeof(SmtpConn));
			conns[nconns]->fd = PGINVALID_SOCKET;
			conns[nconns]->slot = nconns;
		}
	}
	return conns[i];
}

/*
 * Earliest deadline of a transaction in progress, or 0.  A transaction
 * whose job already failed (taking the rest of a group's replies, RSET)
 * has one too: a server that stalls there would hold the connection.
 */
TimestampTz
smtp_next_deadline(void)
{
	TimestampTz next = 0;
	int			i;

	for (i = 0; i < nconns; i++)
		if (conns[i]->step > SMTP_IDLE &&
			(next == 0 || conns[i]->deadline < next))
			next = conns[i]->deadline;
	return next;
}

/* Fail sends whose time is up, and close their connections. */
void
smtp_check_deadlines(TimestampTz now)
{
	int			i;

	for (i = 0; i < nconns; i++)
	{
		SmtpConn   *c = conns[i];

		if (c->step > SMTP_IDLE && c->deadline <= now)
		{
			char	   *error = psprintf("smtp: timed out after %d ms waiting for the server", notify_timeout);

			lose_connection(c, 0, NULL, error);
		}
	}
	dispatch();
}

/*
 * Shutdown: queued sends end released; with started, so do those on a
 * connection.
 */
void
smtp_release(bool started)
{
	dlist_mutable_iter iter;
	int			i;

	dlist_foreach_modify(iter, &queue)
	{
		NotifyJob  *job = dlist_container(NotifyJob, node, iter.cur);

		dlist_delete(&job->node);
		job->outcome = NOTIFY_OUTCOME_RELEASED;
		transfer_job_done(job);
	}
	for (i = 0; started && i < nconns; i++)
	{
		SmtpConn   *c = conns[i];

		if (c->job != NULL)
		{
			NotifyJob  *job = c->job;

			c->job = NULL;
			job->outcome = NOTIFY_OUTCOME_RELEASED;
			transfer_job_done(job);
			if (c->next != NULL)
			{
				job = c->next;
				c->next = NULL;
				job->outcome = NOTIFY_OUTCOME_RELEASED;
				transfer_job_done(job);
			}

			/*
			 * The row goes back to pending: its transaction must not
			 * complete now (and the connection must not send from the
			 * job's memory, which goes with the batch).
			 */
			close_connection(c);
		}
	}
}

/* Give queued jobs to idle connections, opening connections as allowed. */
static void
dispatch(void)
{
	int			limit = notify_connection_share(notify_max_connections);
	int			i;

	/*
	 * Connections beyond a lowered notify.max_connections (this worker's
	 * share of it, with notify.workers > 1) go when idle.
	 */
	for (i = limit; i < nconns; i++)
		if (conns[i]->step == SMTP_IDLE)
			close_connection(conns[i]);

	for (i = 0; i < limit && !dlist_is_empty(&queue); i++)
	{
		SmtpConn   *c = conn_slot(i);

		if (c->job != NULL)
			continue;
		if (c->step == SMTP_IDLE && c->url != NULL && strcmp(c->url, notify_smtp_url) != 0)
			close_connection(c);	/* the relay changed */
		if (c->step == SMTP_IDLE)
		{
			NotifyJob  *job = dlist_container(NotifyJob, node, dlist_pop_head_node(&queue));

			begin_transaction(c, job);
		}
		else if (c->step == SMTP_CLOSED)
		{
			c->job = dlist_container(NotifyJob, node, dlist_pop_head_node(&queue));
			c->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), notify_timeout);
			open_connection(c);
		}
	}
}

/* Let libcurl connect, greet, EHLO, STARTTLS and AUTH for c. */
static void
open_connection(SmtpConn *c)
{
	CURL	   *e = curl_easy_init();

	c->th.on_done = connection_done;
	c->fd = PGINVALID_SOCKET;
	c->in_len = 0;
	c->pipelining = false;
	c->url = MemoryContextStrdup(TopMemoryContext, notify_smtp_url);
	if (e == NULL)
	{
		finish_job(c, NOTIFY_OUTCOME_TRANSIENT, 0, NULL, "smtp: could not create a libcurl handle");
		return;
	}
	c->easy = e;
	c->step = SMTP_CONNECTING;

	curl_easy_setopt(e, CURLOPT_URL, c->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) notify_timeout);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) notify_timeout);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, keep_reply);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, notify_tls_verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, notify_tls_verify ? 2L : 0L);
	switch ((NotifyStartTLS) notify_smtp_starttls)
	{
		case NOTIFY_STARTTLS_OFF:
			curl_easy_setopt(e, CURLOPT_USE_SSL, (long) CURLUSESSL_NONE);
			break;
		case NOTIFY_STARTTLS_TRY:
			curl_easy_setopt(e, CURLOPT_USE_SSL, (long) CURLUSESSL_TRY);
			break;
		case NOTIFY_STARTTLS_REQUIRE:
			curl_easy_setopt(e, CURLOPT_USE_SSL, (long) CURLUSESSL_ALL);
			break;
	}
	if (notify_smtp_username && notify_smtp_username[0])
	{
		curl_easy_setopt(e, CURLOPT_USERNAME, notify_smtp_username);
		curl_easy_setopt(e, CURLOPT_PASSWORD, notify_smtp_password);
	}
	transfer_add_handle(e, &c->th);
}

/* libcurl finished opening c: start the waiting transaction, or fail it. */
static void
connection_done(TransferHandle *th, CURLcode rc)
{
	SmtpConn   *c = (SmtpConn *) th;
	curl_socket_t fd = CURL_SOCKET_BAD;
	NotifyJob  *job = c->job;

	if (rc == CURLE_OK)
		curl_easy_getinfo(c->easy, CURLINFO_ACTIVESOCKET, &fd);
	if (rc != CURLE_OK || fd == CURL_SOCKET_BAD)
	{
		long		code = 0;
		char	   *error;

		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
		error = psprintf("smtp: could not open a session with %s: %s%s%s",
						 c->url, curl_easy_strerror(rc),
						 c->in_len > 0 ? ": " : "", c->in_len > 0 ? c->in : "");
		/* A refused session (AUTH, TLS, greeting) is the relay's setup, not the message's. */
		finish_job(c, NOTIFY_OUTCOME_TRANSIENT, (int) code, c->in_len > 0 ? c->in : NULL, error);
		close_connection(c);
		dispatch();
		return;
	}

	c->fd = fd;
	c->in_len = 0;
	c->step = SMTP_IDLE;
	c->job = NULL;
	if (job != NULL)
		begin_transaction(c, job);
	else
		watch(c);
	dispatch();
}

/*
 * Start sending job on the open connection c: MAIL FROM alone, or with
 * PIPELINING, MAIL FROM, RCPT TO and DATA in one write.
 */
static void
begin_transaction(SmtpConn *c, NotifyJob *job)
{
	const char *sender = (notify_envelope_sender && notify_envelope_sender[0]) ?
		notify_envelope_sender : notify_from_address;
	bool		fits;

	c->job = job;
	c->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), notify_timeout);
	c->step = SMTP_MAIL;
	c->pipelined = c->pipelining;
	c->refused = false;
	if (c->pipelined)
	{
		int			len = format_group(c, job);

		fits = (len >= 0);
		if (fits)
		{
			c->out = c->cmd;
			c->out_len = len;
			c->out_pos = 0;
			flush_out(c);
		}
	}
	else
		fits = send_command(c, "MAIL FROM:<%s>\r\n", sender);
	if (!fits)
	{
		/* nothing was sent: the connection stays usable */
		c->step = SMTP_IDLE;
		finish_job(c, NOTIFY_OUTCOME_PERMANENT, 0, NULL,
				   "smtp: envelope address too long");
		watch(c);
	}
}

/*
 * Write MAIL FROM, RCPT TO and DATA for job into c->cmd; returns their
 * length, or -1 if they do not fit.
 */
static int
format_group(SmtpConn *c, NotifyJob *job)
{
	const char *sender = (notify_envelope_sender && notify_envelope_sender[0]) ?
		notify_envelope_sender : notify_from_address;
	int			len;

	len = snprintf(c->cmd, sizeof(c->cmd), "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n",
				   sender, job->recipient);
	return (len < 0 || len >= (int) sizeof(c->cmd)) ? -1 : len;
}

/*
 * c is about to send its job's message: with PIPELINING, a backlog, and c
 * still one to keep (its relay and slot current), let the next queued
 * job's group go in the same write, after the message.
 */
static void
chain_next(SmtpConn *c)
{
	NotifyJob  *next;
	int			len;

	if (!c->pipelined || c->next != NULL || dlist_is_empty(&queue) ||
		c->slot >= notify_connection_share(notify_max_connections) ||
		strcmp(c->url, notify_smtp_url) != 0)
		return;
	next = dlist_container(NotifyJob, node, dlist_head_node(&queue));
	len = format_group(c, next);
	if (len < 0)
		return;					/* begin_transaction will fail it */
	dlist_delete(&next->node);
	c->next_at = c->job->body.len;
	appendBinaryStringInfo(&c->job->body, c->cmd, len);
	c->next = next;
	c->next_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), notify_timeout);
}

/*
 * Send commands on c (and wait for their replies).  Returns false, sending
 * nothing, if they do not fit in the command buffer.
 */
static bool
send_command(SmtpConn *c, const char *fmt,...)
{
	va_list		ap;
	int			len;

	va_start(ap, fmt);
	len = vsnprintf(c->cmd, sizeof(c->cmd), fmt, ap);
	va_end(ap);
	if (len < 0 || len >= (int) sizeof(c->cmd))
		return false;
	c->out = c->cmd;
	c->out_len = len;
	c->out_pos = 0;
	flush_out(c);
	return true;
}

/* Send what is pending on c as far as the socket takes it. */
static void
flush_out(SmtpConn *c)
{
	while (c->out_pos < c->out_len)
	{
		size_t		n = 0;
		CURLcode	rc = curl_easy_send(c->easy, c->out + c->out_pos, c->out_len - c->out_pos, &n);

		if (rc == CURLE_AGAIN)
			break;
		if (rc != CURLE_OK)
		{
			lose_connection(c, 0, NULL,
							psprintf("smtp: connection lost while sending: %s", curl_easy_strerror(rc)));
			return;
		}
		c->out_pos += n;
	}
	watch(c);
}

/* The wait set says c's socket is ready. */
static void
socket_ready(void *arg, uint32 events)
{
	SmtpConn   *c = (SmtpConn *) arg;

	if ((events & WL_SOCKET_WRITEABLE) && c->out_pos < c->out_len)
		flush_out(c);
	if (c->step != SMTP_CLOSED && (events & WL_SOCKET_READABLE))
		read_replies(c);
	dispatch();
}

/* Read from c and act on each complete reply. */
static void
read_replies(SmtpConn *c)
{
	for (;;)
	{
		size_t		n = 0;
		CURLcode	rc;
		char	   *eol;

		if (c->in_len >= SMTP_IN_SIZE - 1)
			c->in_len = 0;		/* an absurdly long line: keep the tail */
		rc = curl_easy_recv(c->easy, c->in + c->in_len, SMTP_IN_SIZE - 1 - c->in_len, &n);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK || n == 0)
		{
			lose_connection(c, 0, NULL,
							rc != CURLE_OK ? psprintf("smtp: connection lost: %s", curl_easy_strerror(rc)) :
							"smtp: the server closed the connection");
			return;
		}
		c->in_len += n;
		c->in[c->in_len] = '\0';

		/* Each complete line; a reply ends with a line "NNN text" (no "-"). */
		while ((eol = strstr(c->in, "\r\n")) != NULL || (eol = strchr(c->in, '\n')) != NULL)
		{
			char		line[NOTIFY_REPLY_LEN];
			int			len = Min(eol - c->in, NOTIFY_REPLY_LEN - 1);
			int			skip = (eol - c->in) + (eol[0] == '\r' ? 2 : 1);
			bool		last;
			int			i;

			for (i = 0; i < len; i++)
			{
				unsigned char ch = (unsigned char) c->in[i];

				line[i] = (ch >= 32 && ch < 127) ? (char) ch : '?';
			}
			line[len] = '\0';
			memmove(c->in, c->in + skip, c->in_len - skip + 1);
			c->in_len -= skip;

			last = len >= 3 && isdigit((unsigned char) line[0]) &&
				(len == 3 || line[3] == ' ');
			if (!last)
				continue;
			handle_reply(c, atoi(line), line);
			if (c->step == SMTP_CLOSED)
				return;
		}
	}
}

/*
 * The state machine: act on reply code, the answer to the oldest command
 * on c that has none yet.
 */
static void
handle_reply(SmtpConn *c, int code, const char *line)
{
	NotifyJob  *job = c->job;
	bool		early;
	size_t		rest;

	if (code == 421)
	{
		/* the server is closing the connection */
		lose_connection(c, code, line, psprintf("smtp: %s", line));
		return;
	}

	switch (c->step)
	{
		case SMTP_MAIL:
		case SMTP_RCPT:
			if (code / 100 != 2)
				refuse(c, code, line);
			c->step = (c->step == SMTP_MAIL) ? SMTP_RCPT : SMTP_DATA;
			if (c->pipelined)
				return;			/* the next command went with the group */
			if (c->refused)
				send_rset(c);
			else if (c->step == SMTP_RCPT)
				(void) send_command(c, "RCPT TO:<%s>\r\n", job->recipient);
			else
				(void) send_command(c, "DATA\r\n");
			return;
		case SMTP_DATA:
			if (code == 354 && c->refused)
			{
				/*
				 * RFC 2920 3.1: DATA was accepted although MAIL or RCPT was
				 * not; end it with an empty message.
				 */
				c->step = SMTP_BODY;
				(void) send_command(c, ".\r\n");
				return;
			}
			if (code == 354)
			{
				c->step = SMTP_BODY;
				chain_next(c);
				c->out = job->body.data;
				c->out_len = job->body.len;
				c->out_pos = 0;
				flush_out(c);
				return;
			}
			refuse(c, code, line);
			send_rset(c);
			return;
		case SMTP_BODY:
			if (c->refused)
			{
				/* the reply to the empty message of a failed transaction */
				send_rset(c);
				return;
			}
			/*
			 * The final reply ends the transaction either way.  One that
			 * came before the whole message was sent leaves the connection
			 * out of step: the rest of the message cannot go.
			 */
			early = c->out_pos < (c->next != NULL ? c->next_at : c->out_len);
			if (!early)
			{
				/*
				 * What is left to send is part of the next job's group, if
				 * any: move it out of the message, which goes with its job.
				 */
				rest = c->out_len - c->out_pos;
				Assert(rest < sizeof(c->cmd));
				memmove(c->cmd, c->out + c->out_pos, rest);
				c->out = c->cmd;
				c->out_len = rest;
				c->out_pos = 0;
			}
			c->step = SMTP_IDLE;
			if (code / 100 == 2)
				finish_job(c, NOTIFY_OUTCOME_SENT, code, line, NULL);
			else
				finish_job(c, code >= 500 ? NOTIFY_OUTCOME_PERMANENT : NOTIFY_OUTCOME_TRANSIENT,
						   code, line, psprintf("smtp: %s", line));
			if (early)
			{
				lose_connection(c, 0, NULL, "smtp: the server answered before the message it answered was sent");
				return;
			}
			if (c->next != NULL)
			{
				/* the next job's group went after the message: its replies follow */
				c->job = c->next;
				c->deadline = c->next_deadline;
				c->next = NULL;
				c->step = SMTP_MAIL;
				c->pipelined = true;
				c->refused = false;
			}
			watch(c);
			return;
		case SMTP_RSET:
			if (code / 100 == 2)
			{
				c->step = SMTP_IDLE;
				watch(c);
			}
			else
				close_connection(c);
			return;
		case SMTP_IDLE:
			/* unsolicited: the server is going away */
			close_connection(c);
			return;
		default:
			elog(LOG, "notify worker: unexpected SMTP reply in step %d: %s", (int) c->step, line);
			lose_connection(c, code, line, psprintf("smtp: unexpected reply: %s", line));
			return;
	}
}

/*
 * MAIL, RCPT or DATA refused: the first refusal of a transaction is its
 * message's outcome (5xx permanent, else transient).  The connection goes
 * on with the transaction's remaining replies.
 */
static void
refuse(SmtpConn *c, int code, const char *line)
{
	if (c->refused)
		return;
	c->refused = true;
	finish_job(c, code >= 500 ? NOTIFY_OUTCOME_PERMANENT : NOTIFY_OUTCOME_TRANSIENT,
			   code, line, psprintf("smtp: %s", line));
}

/* End a failed transaction on c with RSET; it has the timeout to answer. */
static void
send_rset(SmtpConn *c)
{
	c->step = SMTP_RSET;
	c->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), notify_timeout);
	(void) send_command(c, "RSET\r\n");
}

/* End c's current job with an outcome; the connection stays as it is. */
static void
finish_job(SmtpConn *c, NotifyOutcome outcome, int code, const char *reply, const char *error)
{
	NotifyJob  *job = c->job;

	c->job = NULL;
	end_job(job, outcome, code, reply, error);
}

/*
 * The connection is gone or going (lost, 421, timeout): its jobs fail,
 * transient, and it is closed.
 */
static void
lose_connection(SmtpConn *c, int code, const char *reply, const char *error)
{
	NotifyJob  *next = c->next;

	c->next = NULL;
	finish_job(c, NOTIFY_OUTCOME_TRANSIENT, code, reply, error);
	end_job(next, NOTIFY_OUTCOME_TRANSIENT, code, reply, error);
	close_connection(c);
}

/* Record job's outcome (job may be NULL: nothing to do). */
static void
end_job(NotifyJob *job, NotifyOutcome outcome, int code, const char *reply, const char *error)
{
	MemoryContext old;

	if (job == NULL)
		return;
	old = MemoryContextSwitchTo(job->batch->cxt);
	job->outcome = outcome;
	job->response_code = code;
	if (reply != NULL)
		strlcpy(job->reply, reply, NOTIFY_REPLY_LEN);
	if (error != NULL)
		job->error = pstrdup(error);
	if (outcome == NOTIFY_OUTCOME_SENT)
		job->provider_id = provider_id_from_reply(job->reply);
	MemoryContextSwitchTo(old);
	transfer_job_done(job);
}

/* Close c at once (no QUIT); a job still on it must have been finished. */
static void
close_connection(SmtpConn *c)
{
	Assert(c->job == NULL || c->step == SMTP_CONNECTING);
	Assert(c->next == NULL);
	if (c->easy != NULL)
		transfer_close_handle(c->easy, c->fd);
	c->easy = NULL;
	c->fd = PGINVALID_SOCKET;
	c->step = SMTP_CLOSED;
	c->in_len = 0;
	c->out_len = c->out_pos = 0;
	if (c->url != NULL)
		pfree(c->url);
	c->url = NULL;
}

/* Watch c's socket for what it waits for: room to send, or a reply. */
static void
watch(SmtpConn *c)
{
	if (c->fd == PGINVALID_SOCKET || c->step == SMTP_CLOSED || c->step == SMTP_CONNECTING)
		return;
	transfer_watch(c->fd, c->out_pos < c->out_len ? WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE,
				   socket_ready, c);
}

/*
 * The queue id in an accepting reply: Postfix and aiosmtpd say
 * "queued as ID", Exim "id=ID".
 */
static char *
provider_id_from_reply(const char *reply)
{
	const char *p;
	int			len = 0;

	if ((p = strstr(reply, "queued as ")) != NULL)
		p += strlen("queued as ");
	else if ((p = strstr(reply, "id=")) != NULL)
		p += strlen("id=");
	else
		return NULL;
	while (p[len] != '\0' && p[len] != ' ' && len < 128)
		len++;
	return len > 0 ? pnstrdup(p, len) : NULL;
}

/*
 * libcurl header callback while connecting: keep the last reply line for
 * errors, and note whether the (last) EHLO reply offers PIPELINING.  A 220
 * (the greeting, or the go-ahead for STARTTLS, after which EHLO is sent
 * again) forgets what an earlier EHLO said.
 */
static size_t
keep_reply(char *buffer, size_t size, size_t nitems, void *userdata)
{
	SmtpConn   *c = (SmtpConn *) userdata;
	size_t		n = size * nitems;
	size_t		len = n;
	size_t		i;

	while (len > 0 && (buffer[len - 1] == '\n' || buffer[len - 1] == '\r'))
		len--;
	if (len >= SMTP_IN_SIZE)
		len = SMTP_IN_SIZE - 1;
	for (i = 0; i < len; i++)
	{
		unsigned char ch = (unsigned char) buffer[i];

		c->in[i] = (ch >= 32 && ch < 127) ? (char) ch : '?';
	}
	c->in[len] = '\0';
	c->in_len = (int) len;

	if (len >= 3 && strncmp(c->in, "220", 3) == 0)
		c->pipelining = false;
	else if (len >= 14 && strncmp(c->in, "250", 3) == 0 &&
			 (c->in[3] == '-' || c->in[3] == ' ') &&
			 pg_strncasecmp(c->in + 4, "PIPELINING", 10) == 0 &&
			 (len == 14 || c->in[14] == ' '))
		c->pipelining = true;
	return n;
}

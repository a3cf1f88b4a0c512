/*-------------------------------------------------------------------------
 *
 * worker.h
 *		What the delivery worker's parts share: one claimed message (a job)
 *		as it moves from claim (claim.c) through a transport (smtp.c, over
 *		the libcurl driver in transfer.c) to its recorded outcome.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_WORKER_H
#define NOTIFY_WORKER_H

#include <curl/curl.h>

#include "lib/ilist.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* How one attempt ended. */
typedef enum NotifyOutcome
{
	NOTIFY_OUTCOME_NONE = 0,	/* still in flight */
	NOTIFY_OUTCOME_SENT,		/* accepted by the server */
	NOTIFY_OUTCOME_TRANSIENT,	/* retry later (until max_attempts) */
	NOTIFY_OUTCOME_PERMANENT,	/* never retry */
	NOTIFY_OUTCOME_RELEASED,	/* not attempted after all (shutdown) */
	NOTIFY_OUTCOME_SKIPPED		/* not to be sent: preferences, suppression */
} NotifyOutcome;

#define NOTIFY_REPLY_LEN 512

typedef struct NotifyBatch NotifyBatch;

/* One claimed outbox row, its message and its attempt. */
typedef struct NotifyJob
{
	NotifyBatch *batch;			/* owning batch (memory context) */
	dlist_node	node;			/* in a transport's queue */

	/* from the claimed row */
	Oid			outbox_relid;	/* the notify_outbox it was claimed from */
	int64		id;
	char	   *channel;
	char	   *kind;			/* channel kind: smtp, ... */
	char	   *recipient;
	char	   *template_key;
	char	   *locale;			/* resolved at enqueue, may be NULL */
	int			template_version;	/* 0: no registered template */
	Jsonb	   *payload;
	struct NotifyChannel *ch;	/* its channel's configuration */
	char	   *skip_reason;	/* set: do not send (opted_out, suppressed, ...) */
	char	   *unsubscribe_url;	/* one-click URL for List-Unsubscribe, or NULL */

	/* the content, rendered or taken from the payload */
	char	   *subject;
	char	   *text_body;
	char	   *html_body;
	char	   *message_id;
	int			attempt;		/* this attempt's number, from 1 */
	int			max_attempts;

	/* the request */
	StringInfoData body;		/* bytes to send (SMTP: dot-stuffed, with the final ".") */

	/* the attempt */
	TimestampTz started_at;
	TimestampTz finished_at;
	NotifyOutcome outcome;
	int			response_code;	/* SMTP or HTTP status, 0 if none */
	char		reply[NOTIFY_REPLY_LEN];	/* last server reply line */
	char	   *error;			/* why it failed, NULL when sent */
	char	   *provider_id;	/* queue id / provider message id */
	void	   *transport;		/* the transport's per-request state */
	int			retry_after;	/* seconds the server asked us to wait, 0: none */
} NotifyJob;

/* A claim: the jobs it produced and the memory they live in. */
struct NotifyBatch
{
	MemoryContext cxt;
	int			outstanding;	/* jobs not yet recorded */
};

/*---- claim.c: the SQL side ----*/
extern bool claim_extension_ready(void);
extern void claim_replan(void);
extern int	claim_release_expired(bool all_sending);
extern const char *claim_schema(void);
extern int64 claim_archive(int batch);
extern List *claim_jobs(List *jobs, int max_jobs, NotifyBatch *batch,
					   struct NotifyChannel **chs, const int *limits, int n, int *taken);
extern TimestampTz claim_record(List *jobs);

/*---- transfer.c: the wait set, libcurl's multi handle, jobs in flight ----*/
typedef struct TransferHandle TransferHandle;
struct TransferHandle
{
	/* called when a libcurl transfer added with transfer_add_handle ends */
	void		(*on_done) (TransferHandle *self, CURLcode rc);
};
typedef void (*TransferSocketCallback) (void *arg, uint32 events);

extern void transfer_init(void);
extern void transfer_shutdown(void);
extern void transfer_add_handle(CURL *easy, TransferHandle *owner);
extern void transfer_remove_handle(CURL *easy);
extern void transfer_close_handle(CURL *easy, pgsocket fd);
extern void transfer_watch(pgsocket fd, uint32 events, TransferSocketCallback callback, void *arg);
extern void transfer_unwatch(pgsocket fd);
extern void transfer_start(NotifyJob *job);
extern void transfer_job_done(NotifyJob *job);
extern int	transfer_in_flight(void);
extern void transfer_release(bool started);
extern bool transfer_wait(long max_timeout_ms, uint32 wait_event_info);
extern List *transfer_collect(List *done);

/*---- smtp.c: the SMTP transport ----*/
extern bool smtp_prepare(NotifyJob *job);
extern void smtp_submit(NotifyJob *job);
extern void smtp_configure(void);
extern TimestampTz smtp_next_deadline(void);
extern void smtp_check_deadlines(TimestampTz now);
extern void smtp_release(bool started);

/*---- http.c: webhooks, Slack, HTTP email providers ----*/
extern bool http_prepare(NotifyJob *job);
extern void http_submit(NotifyJob *job);
extern void http_release(bool started);

#endif							/* NOTIFY_WORKER_H */

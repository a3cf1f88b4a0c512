/*-------------------------------------------------------------------------
 *
 * transfer.c
 *		Where the worker waits: one WaitEventSet over the process latch,
 *		postmaster death, the sockets libcurl is working on, and the
 *		sockets of open SMTP connections; plus the list of jobs in flight.
 *
 * libcurl tells us which sockets to watch (socket callback) and when to
 * call it back for its own timeouts (timer callback).  The SMTP transport
 * registers the sockets of its established connections here too.  The set
 * is rebuilt only when a socket or the interest in it changes, which with
 * reused connections is rare.  So a SIGTERM, a SIGHUP or a wake-up for
 * new work is seen while sends are in flight, and a dying postmaster ends
 * the worker.
 *
 * In sandbox mode (notify.sandbox) nothing is sent: each job completes at
 * once as sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "notify.h"
#include "worker.h"

/* A socket in the wait set: libcurl's, or one a transport owns. */
typedef struct WatchedSocket
{
	pgsocket	fd;
	uint32		events;			/* WL_SOCKET_READABLE / _WRITEABLE */
	TransferSocketCallback callback;	/* NULL: libcurl's socket */
	void	   *arg;
} WatchedSocket;

static CURLM *multi = NULL;
static WatchedSocket *sockets = NULL;
static int	nsockets = 0;
static int	maxsockets = 0;
static bool sockets_changed = true;
static WaitEventSet *wes = NULL;
static TimestampTz curl_deadline = 0;	/* 0: libcurl wants no timeout */
static int	in_flight = 0;
static List *completed = NIL;	/* jobs done since the last collect */

static int	on_curl_socket(CURL *easy, curl_socket_t fd, int what,
								 void *userp, void *socketp);
static int	on_curl_timer(CURLM *m, long timeout_ms, void *userp);
static void set_watch(pgsocket fd, uint32 events, TransferSocketCallback callback, void *arg);
static void rebuild_wait_event_set(void);

/* Create the multi handle; called once when the worker starts. */
void
transfer_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		elog(FATAL, "could not initialize libcurl");
	multi = curl_multi_init();
	if (multi == NULL)
		elog(FATAL, "could not create a libcurl multi handle");
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	/* HTTP channels limit their own concurrency; keep idle connections for reuse */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 256L);
}

/*
 * Forget libcurl before the process exits.  Connections are not closed
 * politely: closing an SMTP connection makes libcurl send QUIT and wait
 * for the answer, and a stalled server would hold the exit hostage.  The
 * kernel closes the sockets at exit.
 */
void
transfer_shutdown(void)
{
	if (wes != NULL)
		FreeWaitEventSet(wes);
	wes = NULL;
}

/* Add an easy handle to the multi; its CURLOPT_PRIVATE is a TransferHandle. */
void
transfer_add_handle(CURL *easy, TransferHandle *owner)
{
	curl_easy_setopt(easy, CURLOPT_PRIVATE, owner);
	if (curl_multi_add_handle(multi, easy) != CURLM_OK)
		owner->on_done(owner, CURLE_FAILED_INIT);
}

/*
 * Close an easy handle at once, without a protocol goodbye: the socket is
 * shut down first, so a QUIT that libcurl tries fails instead of waiting.
 */
void
transfer_close_handle(CURL *easy, pgsocket fd)
{
	if (fd != PGINVALID_SOCKET)
	{
		transfer_unwatch(fd);
		shutdown(fd, SHUT_RDWR);
	}
	curl_multi_remove_handle(multi, easy);
	curl_easy_cleanup(easy);
}

/* Start sending a prepared job. */
void
transfer_start(NotifyJob *job)
{
	job->started_at = GetCurrentTimestamp();
	in_flight++;

	if (notify_sandbox)
	{
		job->outcome = NOTIFY_OUTCOME_SENT;
		strlcpy(job->reply, "sandbox: not sent (notify.sandbox is on)", NOTIFY_REPLY_LEN);
		transfer_job_done(job);
		return;
	}
	if (strcmp(job->kind, "smtp") == 0)
		smtp_submit(job);
	else
		http_submit(job);
}

/* A transport finished with job (its outcome is set). */
void
transfer_job_done(NotifyJob *job)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	job->finished_at = GetCurrentTimestamp();
	completed = lappend(completed, job);
	in_flight--;
	MemoryContextSwitchTo(old);
}

/* Number of jobs started and not yet finished. */
int
transfer_in_flight(void)
{
	return in_flight;
}

/*
 * Shutdown: give up jobs not yet on a connection, and with started, also
 * those being sent; they end released, to be sent again later.
 */
void
transfer_release(bool started)
{
	smtp_release(started);
	http_release(started);
}

/*
 * Wait for a socket, a libcurl or transport timeout, the latch, or at most
 * max_timeout_ms, and act on what happened.  Returns true when the latch
 * was set.
 */
bool
transfer_wait(long max_timeout_ms, uint32 wait_event_info)
{
	WaitEvent	events[16];
	long		timeout = max_timeout_ms;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz deadline;
	int			nevents;
	int			running;
	bool		latch_set = false;
	int			i;

	if (completed != NIL)
		timeout = 0;
	deadline = smtp_next_deadline();
	if (curl_deadline != 0 && (deadline == 0 || curl_deadline < deadline))
		deadline = curl_deadline;
	if (deadline != 0)
	{
		long		secs;
		int			usecs;

		TimestampDifference(now, deadline, &secs, &usecs);
		timeout = Min(timeout, secs * 1000 + (usecs + 999) / 1000);
	}
	if (timeout < 0)
		timeout = 0;

	if (sockets_changed || wes == NULL)
		rebuild_wait_event_set();

	nevents = WaitEventSetWait(wes, timeout, events, lengthof(events), wait_event_info);

	for (i = 0; i < nevents; i++)
	{
		WaitEvent  *ev = &events[i];
		int			j;

		if (ev->events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch_set = true;
			continue;
		}
		if (!(ev->events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE)))
			continue;
		for (j = 0; j < nsockets; j++)
			if (sockets[j].fd == ev->fd)
				break;
		if (j == nsockets)
			continue;			/* closed by an earlier event of this round */
		if (sockets[j].callback != NULL)
			sockets[j].callback(sockets[j].arg, ev->events);
		else
		{
			int			mask = 0;

			if (ev->events & WL_SOCKET_READABLE)
				mask |= CURL_CSELECT_IN;
			if (ev->events & WL_SOCKET_WRITEABLE)
				mask |= CURL_CSELECT_OUT;
			curl_multi_socket_action(multi, ev->fd, mask, &running);
		}
	}

	now = GetCurrentTimestamp();
	if (curl_deadline != 0 && now >= curl_deadline)
	{
		curl_deadline = 0;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	smtp_check_deadlines(now);

	return latch_set;
}

/*
 * Let owners of finished libcurl handles act on them, then append every
 * finished job to done and return it.
 */
List *
transfer_collect(List *done)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		TransferHandle *owner = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &owner);
		owner->on_done(owner, msg->data.result);
	}

	if (completed != NIL)
	{
		done = list_concat(done, completed);
		list_free(completed);
		completed = NIL;
	}
	return done;
}

/* A transport watches one of its sockets; events 0 stops watching. */
void
transfer_watch(pgsocket fd, uint32 events, TransferSocketCallback callback, void *arg)
{
	set_watch(fd, events, callback, arg);
}

/* Stop watching a socket. */
void
transfer_unwatch(pgsocket fd)
{
	set_watch(fd, 0, NULL, NULL);
}

/* libcurl: start, change or stop watching a socket. */
static int
on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	uint32		events = 0;

	if (what & CURL_POLL_IN)
		events |= WL_SOCKET_READABLE;
	if (what & CURL_POLL_OUT)
		events |= WL_SOCKET_WRITEABLE;
	set_watch(fd, what == CURL_POLL_REMOVE ? 0 : events, NULL, NULL);
	return 0;
}

/* libcurl: call curl_multi_socket_action(CURL_SOCKET_TIMEOUT) after timeout_ms. */
static int
on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
	if (timeout_ms < 0)
		curl_deadline = 0;
	else
		curl_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	return 0;
}

/* Add, change or (events 0) remove a socket of the wait set. */
static void
set_watch(pgsocket fd, uint32 events, TransferSocketCallback callback, void *arg)
{
	int			i;

	for (i = 0; i < nsockets; i++)
		if (sockets[i].fd == fd)
			break;

	if (events == 0)
	{
		if (i < nsockets)
		{
			sockets[i] = sockets[nsockets - 1];
			nsockets--;
			sockets_changed = true;
		}
		return;
	}

	if (i == nsockets)
	{
		if (nsockets == maxsockets)
		{
			maxsockets = Max(16, maxsockets * 2);
			if (sockets == NULL)
				sockets = MemoryContextAlloc(TopMemoryContext, sizeof(WatchedSocket) * maxsockets);
			else
				sockets = repalloc(sockets, sizeof(WatchedSocket) * maxsockets);
		}
		sockets[i].fd = fd;
		sockets[i].events = 0;
		nsockets++;
	}
	if (sockets[i].events != events)
		sockets_changed = true;
	sockets[i].events = events;
	sockets[i].callback = callback;
	sockets[i].arg = arg;
}

/* Make the wait set match the latch, postmaster death and the sockets. */
static void
rebuild_wait_event_set(void)
{
	int			i;

	if (wes != NULL)
		FreeWaitEventSet(wes);
	wes = notify_create_wait_event_set(2 + nsockets);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < nsockets; i++)
		AddWaitEventToSet(wes, sockets[i].events, sockets[i].fd, NULL, NULL);
	sockets_changed = false;
}

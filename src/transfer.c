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
 * is changed in place as sockets come and their interest changes (see
 * WatchedSocket for how positions that cannot be removed are handled), and
 * rebuilt only now and then.  So a SIGTERM, a SIGHUP or a wake-up for new
 * work is seen while sends are in flight, and a dying postmaster ends the
 * worker.
 *
 * In sandbox mode (notify.sandbox) nothing is sent: each job completes at
 * once as sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "notify.h"
#include "worker.h"

/*
 * What the wait set knows about one socket; the table is indexed by the
 * descriptor.
 *
 * A WaitEventSet can add an event and change its mask, but PostgreSQL has
 * no call to remove one.  So a socket keeps its position while it lives,
 * and the set is rebuilt only when positions that may still fire must go,
 * or when it is full:
 *
 * - An idle libcurl connection (libcurl says CURL_POLL_REMOVE between two
 *   requests) stays in the set waiting for readable: when libcurl takes it
 *   up again for the next request, one ModifyWaitEvent re-arms it.  If it
 *   fires while idle (the server closed it), its position is dropped.
 * - A closed socket's position is dead: epoll (and kqueue) forget a
 *   descriptor when it is closed, so the position costs nothing but room.
 *   We learn of each close of a libcurl connection socket through
 *   CURLOPT_CLOSESOCKETFUNCTION, and of its opening through
 *   CURLOPT_SOCKOPTFUNCTION, both set on every handle; such a socket is
 *   "tracked".  A descriptor number reused by a new socket gets a new
 *   position.
 * - An untracked socket (libcurl's resolver wake-up pipe) may be closed
 *   behind our back, so it is never modified in place: any change of
 *   interest drops its position and rebuilds the set.
 */
typedef struct WatchedSocket
{
	int			pos;			/* position in the wait set, -1: none */
	uint32		wanted;			/* WL_SOCKET_* asked for, 0: not watched */
	uint32		registered;		/* WL_SOCKET_* its position waits for */
	bool		tracked;		/* libcurl connection socket: we see its close */
	TransferSocketCallback callback;	/* NULL: libcurl's socket */
	void	   *arg;
} WatchedSocket;

static CURLM *multi = NULL;
static WatchedSocket *sockets = NULL;	/* indexed by descriptor */
static int	nsockets = 0;		/* entries allocated */
static int	nwatched = 0;		/* entries with wanted != 0 */
static WaitEventSet *wes = NULL;
static int	wes_size = 0;		/* positions the set has room for */
static int	wes_used = 0;		/* positions taken, dead ones included */
static bool wes_stale = true;	/* rebuild before the next wait */
static TimestampTz curl_deadline = 0;	/* 0: libcurl wants no timeout */
static int	in_flight = 0;
static List *completed = NIL;	/* jobs done since the last collect */

static int	on_curl_socket(CURL *easy, curl_socket_t fd, int what,
						   void *userp, void *socketp);
static int	on_curl_timer(CURLM *m, long timeout_ms, void *userp);
static int	on_curl_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose);
static int	on_curl_close(void *clientp, curl_socket_t fd);
static WatchedSocket *socket_entry(pgsocket fd);
static void drop_position(WatchedSocket *s);
static void set_watch(pgsocket fd, uint32 events, TransferSocketCallback callback, void *arg);
static void rebuild_wait_event_set(void);
static void run_curl_timeout(void);

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
	int			i;

	if (wes != NULL)
		FreeWaitEventSet(wes);
	wes = NULL;
	wes_stale = true;
	for (i = 0; i < nsockets; i++)
		sockets[i].pos = -1;
}

/*
 * Add an easy handle to the multi; its CURLOPT_PRIVATE is a TransferHandle.
 * The socket open and close hooks let the wait set follow the sockets of
 * the connections the handle opens (see WatchedSocket).
 */
void
transfer_add_handle(CURL *easy, TransferHandle *owner)
{
	curl_easy_setopt(easy, CURLOPT_PRIVATE, owner);
	curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, on_curl_sockopt);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_curl_close);
	if (curl_multi_add_handle(multi, easy) != CURLM_OK)
		owner->on_done(owner, CURLE_FAILED_INIT);
}

/*
 * Take a finished easy handle out of the multi, keeping it (and its
 * connection, in libcurl's cache) for another request.
 */
void
transfer_remove_handle(CURL *easy)
{
	curl_multi_remove_handle(multi, easy);
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
	WaitEvent	events[64];
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

	if (wes_stale || wes == NULL)
		rebuild_wait_event_set();

	nevents = WaitEventSetWait(wes, timeout, events, lengthof(events), wait_event_info);

	for (i = 0; i < nevents; i++)
	{
		WaitEvent  *ev = &events[i];
		WatchedSocket *s;

		if (ev->events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch_set = true;
			continue;
		}
		if (!(ev->events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE)))
			continue;
		if (ev->fd < 0 || ev->fd >= nsockets || sockets[ev->fd].pos != ev->pos)
		{
			/*
			 * A position whose socket was closed, by an earlier event of
			 * this round or (poll() platforms, where a closed descriptor
			 * keeps firing) before: drop the dead positions.
			 */
			wes_stale = true;
			continue;
		}
		s = &sockets[ev->fd];
		if (s->wanted == 0)
		{
			/* an idle connection has news (the server closed it): stop watching it */
			drop_position(s);
			continue;
		}
		if (s->callback != NULL)
			s->callback(s->arg, ev->events);
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
		run_curl_timeout();
	smtp_check_deadlines(now);

	return latch_set;
}

/*
 * Let owners of finished libcurl handles act on them, then append every
 * finished job to done and return it.
 *
 * Owners start the next queued requests from their completion callbacks,
 * and a new handle asks libcurl's timer for an immediate turn: that turn
 * is given here, so the requests go out now (on an idle keep-alive
 * connection, the request is written at once) rather than after whatever
 * the worker does before it waits again, such as a transaction.
 */
List *
transfer_collect(List *done)
{
	int			turns;

	for (turns = 0; turns < 4; turns++)
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
		if (curl_deadline == 0 || GetCurrentTimestamp() < curl_deadline)
			break;
		run_curl_timeout();
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

/* Give libcurl the turn its timer asked for. */
static void
run_curl_timeout(void)
{
	int			running;

	curl_deadline = 0;
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
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

/* libcurl opened a connection socket: from now on we see its close. */
static int
on_curl_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
	WatchedSocket *s = socket_entry(fd);

	/* what is left from an earlier socket of this number must go */
	if (s->pos >= 0)
		drop_position(s);
	if (s->wanted != 0)
		nwatched--;
	s->wanted = 0;
	s->callback = NULL;
	s->arg = NULL;
	s->tracked = true;
	return CURL_SOCKOPT_OK;
}

/* libcurl closes a connection socket: its position in the set is dead. */
static int
on_curl_close(void *clientp, curl_socket_t fd)
{
	if (fd >= 0 && fd < nsockets)
	{
		WatchedSocket *s = &sockets[fd];

		if (s->wanted != 0)
			nwatched--;
		s->pos = -1;
		s->wanted = s->registered = 0;
		s->tracked = false;
		s->callback = NULL;
		s->arg = NULL;
	}
	return close(fd);
}

/* The table entry of fd, the table grown as needed. */
static WatchedSocket *
socket_entry(pgsocket fd)
{
	if (fd < 0)
		elog(ERROR, "invalid socket %d", (int) fd);
	if (fd >= nsockets)
	{
		int			n = Max(64, nsockets);
		int			i;

		while (n <= fd)
			n *= 2;
		if (sockets == NULL)
			sockets = MemoryContextAlloc(TopMemoryContext, sizeof(WatchedSocket) * n);
		else
			sockets = repalloc(sockets, sizeof(WatchedSocket) * n);
		for (i = nsockets; i < n; i++)
		{
			memset(&sockets[i], 0, sizeof(WatchedSocket));
			sockets[i].pos = -1;
		}
		nsockets = n;
	}
	return &sockets[fd];
}

/* Forget s's position, which may still fire: rebuild before waiting. */
static void
drop_position(WatchedSocket *s)
{
	s->pos = -1;
	s->registered = 0;
	wes_stale = true;
}

/*
 * Add, change or (events 0) stop watching a socket, in place when the set
 * allows it, else at the rebuild before the next wait.
 */
static void
set_watch(pgsocket fd, uint32 events, TransferSocketCallback callback, void *arg)
{
	WatchedSocket *s = socket_entry(fd);

	if (events == 0)
	{
		if (s->wanted == 0)
			return;
		s->wanted = 0;
		s->callback = NULL;
		s->arg = NULL;
		nwatched--;
		if (s->pos < 0)
			return;
		if (!s->tracked)
			drop_position(s);
		else if (s->registered != WL_SOCKET_READABLE)
		{
			/* idle: wait only for the server closing it (writable would always fire) */
			ModifyWaitEvent(wes, s->pos, WL_SOCKET_READABLE, NULL);
			s->registered = WL_SOCKET_READABLE;
		}
		return;
	}

	if (s->wanted == 0)
		nwatched++;
	s->wanted = events;
	s->callback = callback;
	s->arg = arg;
	if (s->pos >= 0)
	{
		if (s->registered == events)
			return;
		if (s->tracked)
		{
			ModifyWaitEvent(wes, s->pos, events, NULL);
			s->registered = events;
		}
		else
			drop_position(s);
		return;
	}
	if (!wes_stale && wes != NULL && wes_used < wes_size)
	{
		s->pos = AddWaitEventToSet(wes, events, fd, NULL, NULL);
		s->registered = events;
		wes_used++;
	}
	else
		wes_stale = true;		/* added by the rebuild */
}

/*
 * Make a new wait set of the latch, postmaster death and the watched
 * sockets, with room for as many again (and some) before the next rebuild.
 */
static void
rebuild_wait_event_set(void)
{
	int			i;

	if (wes != NULL)
		FreeWaitEventSet(wes);
	wes_size = 2 + Max(64, 2 * nwatched + 16);
	wes = notify_create_wait_event_set(wes_size);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	wes_used = 2;
	for (i = 0; i < nsockets; i++)
	{
		WatchedSocket *s = &sockets[i];

		if (s->wanted != 0)
		{
			s->pos = AddWaitEventToSet(wes, s->wanted, i, NULL, NULL);
			s->registered = s->wanted;
			wes_used++;
		}
		else
		{
			s->pos = -1;
			s->registered = 0;
		}
	}
	wes_stale = false;
}

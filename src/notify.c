/*-------------------------------------------------------------------------
 *
 * notify.c
 *		Module entry point: settings, shared memory, and registration of
 *		the delivery worker and the commit-time wake-up.
 *
 * Loaded through shared_preload_libraries = 'notify'.  Loaded any other
 * way (a backend calling a notify function first), the settings and SQL
 * functions work but no shared memory exists and no worker runs, so
 * enqueued rows wait until the library is preloaded.
 *
 * Locking: NotifySharedState.mutex (a spinlock) protects the status
 * fields; the worker's PGPROC number is an atomic read without a lock by
 * every committing backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "notify.h"
#include "wakeup.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*---- GUC variables ----*/
int			notify_max_payload_bytes = 65536;
char	   *notify_database = NULL;
int			notify_poll_interval = 1000;
int			notify_claim_delay = 2;
int			notify_batch_size = 100;
int			notify_lease_time = 300;
int			notify_max_connections = 4;
int			notify_workers = 1;
int			notify_timeout = 30000;
int			notify_shutdown_timeout = 5000;
int			notify_retry_base = 10000;
int			notify_retry_max_delay = 3600000;
char	   *notify_smtp_url = NULL;
char	   *notify_smtp_username = NULL;
char	   *notify_smtp_password = NULL;
int			notify_smtp_starttls = NOTIFY_STARTTLS_TRY;
bool		notify_tls_verify = true;
char	   *notify_from_address = NULL;
char	   *notify_from_name = NULL;
char	   *notify_envelope_sender = NULL;
bool		notify_sandbox = false;
char	   *notify_default_locale = NULL;
int			notify_archive_after = 7 * 86400;
char	   *notify_unsubscribe_url = NULL;
int			notify_archive_interval = 60000;
char	   *notify_actor = NULL;

/* read only by SQL (current_setting), so no extern in notify.h */
static int	notify_history_partition = 2;	/* month */

static const struct config_enum_entry history_partition_options[] = {
	{"day", 0, false},
	{"week", 1, false},
	{"month", 2, false},
	{NULL, 0, false}
};

static const struct config_enum_entry starttls_options[] = {
	{"off", NOTIFY_STARTTLS_OFF, false},
	{"try", NOTIFY_STARTTLS_TRY, false},
	{"require", NOTIFY_STARTTLS_REQUIRE, false},
	{NULL, 0, false}
};

/*---- shared memory ----*/
NotifySharedState *notify_shared = NULL;

#ifdef NOTIFY_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void notify_define_gucs(void);
static void notify_shmem_request(void);
static void notify_shmem_startup(void);

/*
 * _PG_init
 *		Define settings; when preloaded, reserve shared memory and register
 *		the worker.  The commit callback is registered in every process.
 */
void
_PG_init(void)
{
	notify_define_gucs();
	notify_wakeup_init();

	if (!process_shared_preload_libraries_in_progress)
		return;

#ifdef NOTIFY_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = notify_shmem_request;
#else
	notify_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = notify_shmem_startup;

	notify_register_workers();
}

/* Every notify.* setting, one DefineCustom*Variable each. */
static void
notify_define_gucs(void)
{
	DefineCustomIntVariable("notify.max_payload_bytes",
							gettext_noop("Largest payload, in bytes of its JSON text, that notify_enqueue accepts."),
							NULL,
							&notify_max_payload_bytes,
							65536,
							256,
							INT_MAX / 2,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomStringVariable("notify.database",
							   gettext_noop("Database whose outbox the delivery worker serves."),
							   NULL,
							   &notify_database,
							   "postgres",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("notify.claim_delay",
							gettext_noop("Shortest time between two claims of the worker, unless the last one filled the batch."),
							gettext_noop("Commits that arrive within it are claimed together: fewer, larger claim transactions under a steady stream of small commits, at the cost of at most this much latency."),
							&notify_claim_delay,
							2,
							0,
							1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.poll_interval",
							gettext_noop("Longest the worker sleeps without a wake-up before looking for due work."),
							NULL,
							&notify_poll_interval,
							1000,
							10,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.batch_size",
							gettext_noop("Most outbox rows the worker claims in one transaction."),
							NULL,
							&notify_batch_size,
							100,
							1,
							10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.lease_time",
							gettext_noop("How long a row left in status sending by an earlier version stays reserved before it returns to pending."),
							gettext_noop("Claims are no longer written into the row (the worker's in-flight registry holds them); only such rows have a lease."),
							&notify_lease_time,
							300,
							10,
							86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.max_connections",
							gettext_noop("Most concurrent connections the worker opens to one host."),
							NULL,
							&notify_max_connections,
							4,
							1,
							1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.workers",
							gettext_noop("Delivery worker processes serving notify.database."),
							gettext_noop("They claim disjoint rows and share each channel's connection limit and rate limit."),
							&notify_workers,
							1,
							1,
							NOTIFY_MAX_WORKERS,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.timeout",
							gettext_noop("Longest one delivery attempt may take, connecting included."),
							NULL,
							&notify_timeout,
							30000,
							100,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.shutdown_timeout",
							gettext_noop("How long a stopping worker lets in-flight sends finish before releasing them."),
							NULL,
							&notify_shutdown_timeout,
							5000,
							0,
							600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.retry_base",
							gettext_noop("Delay before the first retry of a transient failure; doubles per attempt."),
							NULL,
							&notify_retry_base,
							10000,
							1,
							86400 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.retry_max_delay",
							gettext_noop("Longest delay between two retries."),
							NULL,
							&notify_retry_max_delay,
							3600 * 1000,
							1,
							7 * 86400 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("notify.smtp_url",
							   gettext_noop("SMTP relay of the built-in email channel: smtp://host:port or smtps://host:port."),
							   NULL,
							   &notify_smtp_url,
							   "smtp://localhost:25",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("notify.smtp_username",
							   gettext_noop("User name for SMTP AUTH; empty for none."),
							   NULL,
							   &notify_smtp_username,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("notify.smtp_password",
							   gettext_noop("Password for SMTP AUTH."),
							   NULL,
							   &notify_smtp_password,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("notify.smtp_starttls",
							 gettext_noop("STARTTLS on smtp:// relays: off, try (when offered) or require."),
							 NULL,
							 &notify_smtp_starttls,
							 NOTIFY_STARTTLS_TRY,
							 starttls_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("notify.tls_verify",
							 gettext_noop("Verify the TLS peer certificate and host name."),
							 gettext_noop("Turn off only for test servers with self-signed certificates."),
							 &notify_tls_verify,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("notify.from_address",
							   gettext_noop("From address of email."),
							   NULL,
							   &notify_from_address,
							   "notify@localhost",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("notify.from_name",
							   gettext_noop("Display name in the From header; empty for none."),
							   NULL,
							   &notify_from_name,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("notify.envelope_sender",
							   gettext_noop("SMTP MAIL FROM address (bounces go there); empty means notify.from_address."),
							   NULL,
							   &notify_envelope_sender,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("notify.sandbox",
							 gettext_noop("Complete sends without connecting anywhere (staging, drain benchmarks)."),
							 NULL,
							 &notify_sandbox,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("notify.archive_after",
							gettext_noop("Age after which finished notifications move from notify_outbox to notify_history."),
							gettext_noop("Dedup keys are unique within the hot outbox, so this is also how long a dedup key is remembered."),
							&notify_archive_after,
							7 * 86400,
							0,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("notify.archive_interval",
							gettext_noop("How often the worker moves finished notifications to notify_history; 0 turns archiving off."),
							NULL,
							&notify_archive_interval,
							60000,
							0,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("notify.history_partition",
							 gettext_noop("Range of the notify_history and notify_attempts partitions the archive creates: day, week or month of created_at."),
							 gettext_noop("Existing partitions keep their ranges when this changes; new ones are clipped so they do not overlap them. notify_purge drops whole partitions and deletes only the one the cutoff falls in row by row."),
							 &notify_history_partition,
							 2,
							 history_partition_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("notify.unsubscribe_url",
							   gettext_noop("Base URL of the one-click unsubscribe endpoint; empty: no List-Unsubscribe header."),
							   gettext_noop("Messages of categories with unsubscribe_header carry <URL?token=...> (RFC 8058)."),
							   &notify_unsubscribe_url,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("notify.default_locale",
							   gettext_noop("Locale of templates used when neither the requested locale nor its language has one."),
							   NULL,
							   &notify_default_locale,
							   "en",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("notify.actor",
							   gettext_noop("Application actor recorded on enqueued rows when the actor argument is NULL."),
							   NULL,
							   &notify_actor,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("notify");
}

/* Reserve the shared status block and the in-flight registry. */
static void
notify_shmem_request(void)
{
#ifdef NOTIFY_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(NotifySharedState)));
	RequestAddinShmemSpace(inflight_shmem_size());
}

/* Create or attach to the shared status block. */
static void
notify_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	notify_shared = ShmemInitStruct("notify", sizeof(NotifySharedState), &found);
	if (!found)
	{
		int			i;

		memset(notify_shared, 0, sizeof(NotifySharedState));
		for (i = 0; i < NOTIFY_MAX_WORKERS; i++)
		{
			pg_atomic_init_u32(&notify_shared->workers[i].procno_plus1, 0);
			notify_shared->workers[i].state = NOTIFY_WORKER_STOPPED;
		}
		pg_atomic_init_u32(&notify_shared->channels_generation, 1);
		pg_atomic_init_u32(&notify_shared->next_wake, 0);
		SpinLockInit(&notify_shared->mutex);
	}
	inflight_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/* Name of a worker state as the notify_worker_status view shows it. */
const char *
notify_worker_state_name(NotifyWorkerState state)
{
	switch (state)
	{
		case NOTIFY_WORKER_STOPPED:
			return "stopped";
		case NOTIFY_WORKER_STARTING:
			return "starting";
		case NOTIFY_WORKER_WAITING_FOR_EXTENSION:
			return "waiting for extension";
		case NOTIFY_WORKER_IDLE:
			return "idle";
		case NOTIFY_WORKER_CLAIMING:
			return "claiming";
		case NOTIFY_WORKER_SENDING:
			return "sending";
		case NOTIFY_WORKER_RECORDING:
			return "recording";
		case NOTIFY_WORKER_STOPPING:
			return "stopping";
	}
	return "unknown";
}

/*-------------------------------------------------------------------------
 *
 * notify.h
 *		Declarations shared by the parts of the notify extension: settings,
 *		the shared-memory worker status, and the wake-up path.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_H
#define NOTIFY_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/spin.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "compat.h"

/*---- settings (notify.c) ----*/
extern int	notify_max_payload_bytes;
extern char *notify_database;
extern int	notify_poll_interval;
extern int	notify_claim_delay;
extern int	notify_batch_size;
extern int	notify_lease_time;
extern int	notify_max_connections;
extern int	notify_workers;
extern int	notify_timeout;
extern int	notify_shutdown_timeout;
extern int	notify_retry_base;
extern int	notify_retry_max_delay;
extern char *notify_smtp_url;
extern char *notify_smtp_username;
extern char *notify_smtp_password;
extern int	notify_smtp_starttls;
extern bool notify_tls_verify;
extern char *notify_from_address;
extern char *notify_from_name;
extern char *notify_envelope_sender;
extern bool notify_sandbox;
extern char *notify_default_locale;
extern char *notify_actor;
extern int	notify_archive_after;
extern int	notify_archive_interval;

/* notify.smtp_starttls values */
typedef enum NotifyStartTLS
{
	NOTIFY_STARTTLS_OFF,
	NOTIFY_STARTTLS_TRY,
	NOTIFY_STARTTLS_REQUIRE
} NotifyStartTLS;

/*---- shared memory: the workers' status (notify.c, worker.c) ----*/
typedef enum NotifyWorkerState
{
	NOTIFY_WORKER_STOPPED = 0,
	NOTIFY_WORKER_STARTING,
	NOTIFY_WORKER_WAITING_FOR_EXTENSION,
	NOTIFY_WORKER_IDLE,
	NOTIFY_WORKER_CLAIMING,
	NOTIFY_WORKER_SENDING,
	NOTIFY_WORKER_RECORDING,
	NOTIFY_WORKER_STOPPING
} NotifyWorkerState;

#define NOTIFY_LAST_ERROR_LEN 256
#define NOTIFY_MAX_BUCKETS 64
#define NOTIFY_CHANNEL_NAME_LEN 64

/* A channel's token bucket (rate limit), shared by all worker processes. */
typedef struct NotifyBucket
{
	char		channel[NOTIFY_CHANNEL_NAME_LEN];	/* "" when free */
	double		tokens;
	TimestampTz updated;
} NotifyBucket;

/* One delivery worker's status; notify.workers of them serve the database. */
typedef struct NotifyWorkerSlot
{
	/* 0 when the worker does not run, else its PGPROC number + 1; read without lock */
	pg_atomic_uint32 procno_plus1;

	/* protected by NotifySharedState.mutex */
	pid_t		pid;
	NotifyWorkerState state;
	TimestampTz started_at;
	uint64		batches;
	uint64		sent;
	uint64		failed;
	uint64		retried;
	int			in_flight;
	TimestampTz last_error_at;
	char		last_error[NOTIFY_LAST_ERROR_LEN];
} NotifyWorkerSlot;

#define NOTIFY_MAX_WORKERS 8

typedef struct NotifySharedState
{
	Oid			worker_dboid;	/* database the workers serve; read without lock */

	slock_t		mutex;			/* protects the slots' fields and the buckets */
	NotifyWorkerSlot workers[NOTIFY_MAX_WORKERS];	/* notify.workers of them used */

	/* bumped by any change to notify_channels or their secrets */
	pg_atomic_uint32 channels_generation;
	/* where notify_wake_worker starts looking for a worker to wake */
	pg_atomic_uint32 next_wake;
	NotifyBucket buckets[NOTIFY_MAX_BUCKETS];	/* protected by mutex */
} NotifySharedState;

extern NotifySharedState *notify_shared;

/*---- inflight.c: rows the worker has claimed and not yet recorded ----*/
/* at most notify.batch_size (10000) in flight plus outcomes waiting to be recorded */
#define NOTIFY_MAX_IN_FLIGHT 20000
extern Size inflight_shmem_size(void);
extern void inflight_shmem_init(void);
extern void inflight_init(void);
extern void inflight_clear(void);
extern int	inflight_room(void);
extern bool inflight_add(int64 id);
extern void inflight_remove(int64 id);

extern const char *notify_worker_state_name(NotifyWorkerState state);

/*---- address.c ----*/
extern bool notify_mailbox_is_valid(const char *s, int len);

/*---- unsubscribe.c: catalog lookups and the send decision ----*/
typedef struct NotifyCategory
{
	text	   *name;
	bool		mandatory;
	bool		default_opt_in;
	int32		default_priority;
	int32		default_max_attempts;
	bool		has_preferences;	/* any notify_preferences row for it */
} NotifyCategory;

extern bool notify_category_lookup(Oid nsp, text *name, NotifyCategory *out);
extern char *notify_channel_lookup(Oid nsp, text *name, bool *has_url);

/* Channel kinds that deliver email: addresses, opt-in, List-Unsubscribe. */
static inline bool
notify_kind_is_email(const char *kind)
{
	return strcmp(kind, "smtp") == 0 || strcmp(kind, "http_email") == 0;
}
extern const char *notify_decide_for(Oid nsp, text *recipient,
									 const NotifyCategory *cat, text *channel,
									 const char *channel_kind, text *tenant);

/*---- direct_insert.c: the rows notify_enqueue writes ----*/
typedef enum NotifyOutboxColumn
{
	NOTIFY_OUTBOX_DEDUP_KEY,
	NOTIFY_OUTBOX_TEMPLATE_KEY,
	NOTIFY_OUTBOX_TEMPLATE_VERSION,
	NOTIFY_OUTBOX_LOCALE,
	NOTIFY_OUTBOX_CHANNEL,
	NOTIFY_OUTBOX_CATEGORY,
	NOTIFY_OUTBOX_RECIPIENT,
	NOTIFY_OUTBOX_PAYLOAD,
	NOTIFY_OUTBOX_PRIORITY,
	NOTIFY_OUTBOX_MAX_ATTEMPTS,
	NOTIFY_OUTBOX_SEND_AT,
	NOTIFY_OUTBOX_EXPIRES_AT,
	NOTIFY_OUTBOX_NEXT_ATTEMPT_AT,
	NOTIFY_OUTBOX_ACTOR,
	NOTIFY_OUTBOX_METADATA,
	NOTIFY_OUTBOX_STATUS,
	NOTIFY_OUTBOX_SKIP_REASON,
	NOTIFY_OUTBOX_NCOLUMNS
} NotifyOutboxColumn;

extern bool notify_outbox_insert(Oid nsp, const Datum *values, const bool *isnull,
								 int64 *id);

typedef enum NotifyAuditColumn
{
	NOTIFY_AUDIT_ACTOR,
	NOTIFY_AUDIT_ACTION,
	NOTIFY_AUDIT_OBJECT,
	NOTIFY_AUDIT_DETAIL,
	NOTIFY_AUDIT_NCOLUMNS
} NotifyAuditColumn;

extern void notify_audit_insert(Oid nsp, const Datum *values, const bool *isnull);

/*---- template.c ----*/
extern void notify_template_resolve_for(const char *template_key, text *locale,
										Jsonb *payload, int32 *version,
										char **resolved_locale, char **category);
extern bool notify_template_key_exists(const char *template_key);
extern const char *notify_jsonb_type(Jsonb *jb);
extern char *notify_quote_value(const char *s);
extern bool notify_locale_is_valid(const char *s, int len);

/*---- worker.c ----*/
extern bool notify_am_worker;
extern int	notify_worker_index;	/* this worker's slot, -1 outside the workers */
extern void notify_register_workers(void);
extern int	notify_connection_share(int limit);

#endif							/* NOTIFY_H */

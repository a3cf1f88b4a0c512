/*-------------------------------------------------------------------------
 *
 * channels.c
 *		The worker's view of notify_channels: settings parsed once (with
 *		cJSON) and reloaded when a channel or secret changes, and per
 *		channel token buckets in shared memory for rate limits.
 *
 * A statement trigger on notify_channels and notify_channel_secrets
 * (notify_channels_changed) makes the changing transaction bump a
 * generation counter in shared memory when it commits; the worker reloads
 * in its next claim transaction.  Reloading keeps each
 * channel's flow state (in-flight count, waiting jobs): channels are
 * never freed, only their configuration is replaced.
 *
 * Rate limits are token buckets holding at most one second's worth of
 * tokens (or one token, for limits under 1/s).  A claim takes tokens
 * before it claims, so rows held back stay pending and are not attempts;
 * unused tokens are given back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <cjson/cJSON.h>

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "channels.h"
#include "notify.h"
#include "wakeup.h"
#include "worker.h"

static List *channels = NIL;	/* NotifyChannel *, in TopMemoryContext */
static uint32 loaded_generation = 0;

static void configure(NotifyChannel *ch, const char *kind, bool enabled,
					  const char *settings, const char *secret);
static char *json_string(cJSON *obj, const char *key);
static NotifyBucket *bucket_for(const char *name);
static NotifyChannel *channel_lookup(const char *name);

PG_FUNCTION_INFO_V1(notify_channels_changed);

/*
 * Reload channels if they changed since the last load (or force).  Runs
 * in a transaction with SPI connected.  Returns whether it reloaded.
 */
bool
channels_reload(bool force)
{
	uint32		gen = pg_atomic_read_u32(&notify_shared->channels_generation);
	uint64		i;
	ListCell   *lc;

	if (!force && gen == loaded_generation)
		return false;

	/*
	 * Read with a snapshot taken now, after the generation: a change bumps
	 * the generation only once its commit is visible, so this snapshot sees
	 * every change the generation counts.  Not the transaction's snapshot
	 * (read_only = true would use it): taken before the generation was
	 * read, it can miss a change committed in between, and the generation
	 * stored below would then hide that change until the next one (seen as
	 * a channel that "does not exist" for good).
	 */
	if (SPI_execute(psprintf("SELECT c.name, c.kind, c.enabled, c.settings::text, s.secret"
							 " FROM %s.notify_channels c"
							 " LEFT JOIN %s.notify_channel_secrets s ON s.channel = c.name",
							 claim_schema(), claim_schema()),
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read notify_channels");

	foreach(lc, channels)
		((NotifyChannel *) lfirst(lc))->seen = false;

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *name = SPI_getvalue(tup, desc, 1);
		NotifyChannel *ch = channel_lookup(name);

		if (ch == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			ch = palloc0(sizeof(NotifyChannel));
			ch->name = pstrdup(name);
			dlist_init(&ch->queue);
			ch->cxt = AllocSetContextCreate(TopMemoryContext, "notify channel",
											ALLOCSET_SMALL_SIZES);
			channels = lappend(channels, ch);
			MemoryContextSwitchTo(old);
		}
		configure(ch, SPI_getvalue(tup, desc, 2),
				  strcmp(SPI_getvalue(tup, desc, 3), "t") == 0,
				  SPI_getvalue(tup, desc, 4),
				  SPI_getvalue(tup, desc, 5));
		ch->seen = true;
	}

	/* A dropped channel keeps its flow state but delivers nothing. */
	foreach(lc, channels)
	{
		NotifyChannel *ch = lfirst(lc);

		if (!ch->seen)
			ch->enabled = false;
	}
	loaded_generation = gen;
	return true;
}

/* The channel called name, or NULL. */
static NotifyChannel *
channel_lookup(const char *name)
{
	ListCell   *lc;

	foreach(lc, channels)
	{
		NotifyChannel *ch = lfirst(lc);

		if (strcmp(ch->name, name) == 0)
			return ch;
	}
	return NULL;
}

/* Every channel known (also dropped ones, with their flow state). */
List *
channels_all(void)
{
	return channels;
}

/*
 * Take up to want tokens from ch's bucket; returns how many.  When none is
 * left, *next_token says when the next one comes.
 */
int
channel_take_tokens(NotifyChannel *ch, int want, TimestampTz *next_token)
{
	NotifyBucket *b;
	TimestampTz now = GetCurrentTimestamp();
	double		burst = Max(1.0, ch->rate_limit);
	int			got;

	SpinLockAcquire(&notify_shared->mutex);
	b = bucket_for(ch->name);
	if (b == NULL)
	{
		SpinLockRelease(&notify_shared->mutex);
		return want;			/* more limited channels than buckets: unlimited */
	}
	if (b->updated == 0)
		b->tokens = burst;
	else
		b->tokens = Min(burst, b->tokens + ch->rate_limit * (double) (now - b->updated) / USECS_PER_SEC);
	b->updated = now;
	got = Min(want, (int) floor(b->tokens));
	b->tokens -= got;
	if (got == 0 && next_token != NULL)
		*next_token = now + (TimestampTz) ceil((1.0 - b->tokens) / ch->rate_limit * USECS_PER_SEC);
	SpinLockRelease(&notify_shared->mutex);
	return got;
}

/* Give back tokens taken but not used. */
void
channel_return_tokens(NotifyChannel *ch, int n)
{
	NotifyBucket *b;

	if (n <= 0)
		return;
	SpinLockAcquire(&notify_shared->mutex);
	b = bucket_for(ch->name);
	if (b != NULL)
		b->tokens = Min(Max(1.0, ch->rate_limit), b->tokens + n);
	SpinLockRelease(&notify_shared->mutex);
}

/* ch's bucket, claiming a free one on first use; caller holds the mutex. */
static NotifyBucket *
bucket_for(const char *name)
{
	int			i;
	int			free_slot = -1;

	for (i = 0; i < NOTIFY_MAX_BUCKETS; i++)
	{
		if (strncmp(notify_shared->buckets[i].channel, name, NOTIFY_CHANNEL_NAME_LEN) == 0)
			return &notify_shared->buckets[i];
		if (free_slot < 0 && notify_shared->buckets[i].channel[0] == '\0')
			free_slot = i;
	}
	if (free_slot < 0)
		return NULL;
	strlcpy(notify_shared->buckets[free_slot].channel, name, NOTIFY_CHANNEL_NAME_LEN);
	notify_shared->buckets[free_slot].updated = 0;
	return &notify_shared->buckets[free_slot];
}

/* Replace ch's configuration from its row. */
static void
configure(NotifyChannel *ch, const char *kind, bool enabled,
		  const char *settings, const char *secret)
{
	MemoryContext old;
	cJSON	   *json;
	cJSON	   *item;

	MemoryContextReset(ch->cxt);
	old = MemoryContextSwitchTo(ch->cxt);

	ch->kind = pstrdup(kind);
	ch->enabled = enabled;
	ch->secret = secret ? pstrdup(secret) : NULL;
	ch->rate_limit = 0;
	ch->max_connections = 0;
	ch->timeout_ms = 0;
	ch->url = ch->provider = ch->from_address = ch->from_name = ch->message_stream = NULL;
	ch->headers = ch->allowed_hosts = NIL;
	ch->allow_private = ch->follow_redirects = false;

	json = cJSON_Parse(settings);
	if (json != NULL)
	{
		if ((item = cJSON_GetObjectItemCaseSensitive(json, "rate_limit")) && cJSON_IsNumber(item))
			ch->rate_limit = item->valuedouble;
		if ((item = cJSON_GetObjectItemCaseSensitive(json, "max_connections")) && cJSON_IsNumber(item))
			ch->max_connections = item->valueint;
		if ((item = cJSON_GetObjectItemCaseSensitive(json, "timeout_ms")) && cJSON_IsNumber(item))
			ch->timeout_ms = item->valueint;
		if ((item = cJSON_GetObjectItemCaseSensitive(json, "allow_private_destinations")))
			ch->allow_private = cJSON_IsTrue(item);
		if ((item = cJSON_GetObjectItemCaseSensitive(json, "follow_redirects")))
			ch->follow_redirects = cJSON_IsTrue(item);
		ch->url = json_string(json, "url");
		ch->provider = json_string(json, "provider");
		ch->from_address = json_string(json, "from_address");
		ch->from_name = json_string(json, "from_name");
		ch->message_stream = json_string(json, "message_stream");
		if ((item = cJSON_GetObjectItemCaseSensitive(json, "headers")) && cJSON_IsObject(item))
		{
			cJSON	   *h;

			cJSON_ArrayForEach(h, item)
			{
				if (cJSON_IsString(h))
					ch->headers = lappend(ch->headers, psprintf("%s: %s", h->string, h->valuestring));
			}
		}
		if ((item = cJSON_GetObjectItemCaseSensitive(json, "allowed_hosts")) && cJSON_IsArray(item))
		{
			cJSON	   *h;

			cJSON_ArrayForEach(h, item)
			{
				if (cJSON_IsString(h))
					ch->allowed_hosts = lappend(ch->allowed_hosts, pstrdup(h->valuestring));
			}
		}
		cJSON_Delete(json);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Connections this worker process may open for ch: its share of the
 * channel's limit (SMTP channels share notify.max_connections to the one
 * relay).  0 means another worker holds every connection of the channel,
 * and this one does not claim its rows.
 */
int
channel_connection_limit(NotifyChannel *ch)
{
	int			limit = notify_max_connections;

	if (strcmp(ch->kind, "smtp") != 0 && ch->max_connections > 0)
		limit = ch->max_connections;
	return notify_connection_share(limit);
}

/* A string member of a cJSON object, palloc'd, or NULL. */
static char *
json_string(cJSON *obj, const char *key)
{
	cJSON	   *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(item) ? pstrdup(item->valuestring) : NULL;
}

/*
 * notify_channels_changed() trigger: AFTER ... FOR EACH STATEMENT on
 * notify_channels and notify_channel_secrets.  Tells the worker to reload
 * and wakes it at COMMIT (a resumed channel may have due rows).
 */
Datum
notify_channels_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("notify_channels_changed() must be called as a trigger")));
	notify_channels_changed_at_commit();
	PG_RETURN_POINTER(NULL);
}

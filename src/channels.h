/*-------------------------------------------------------------------------
 *
 * channels.h
 *		Named channels as the worker sees them (settings parsed once, the
 *		secret, per-channel flow state) and their shared rate limits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_CHANNELS_H
#define NOTIFY_CHANNELS_H

#include "lib/ilist.h"
#include "nodes/pg_list.h"
#include "utils/timestamp.h"

typedef struct NotifyChannel
{
	/* configuration, reloaded when notify_channels changes */
	char	   *name;
	char	   *kind;			/* smtp, webhook, slack, http_email */
	bool		enabled;
	double		rate_limit;		/* messages per second, 0: none */
	int			max_connections;	/* 0: notify.max_connections */
	int			timeout_ms;		/* 0: notify.timeout */
	char	   *url;			/* webhook/http_email endpoint, NULL: default */
	List	   *headers;		/* webhook: "Name: value" strings */
	bool		allow_private;	/* allow loopback/private destinations */
	List	   *allowed_hosts;	/* webhook: host allow-list (char *), NIL: any */
	bool		follow_redirects;
	char	   *provider;		/* http_email: postmark, sendgrid */
	char	   *from_address;
	char	   *from_name;
	char	   *message_stream;
	char	   *secret;			/* never logged */
	MemoryContext cxt;			/* holds the configuration strings */
	bool		seen;			/* found in the latest reload */

	/* flow state, kept across reloads */
	int			in_flight;
	dlist_head	queue;			/* jobs waiting for a connection slot */
} NotifyChannel;

extern bool channels_reload(bool force);
extern List *channels_all(void);
extern int	channel_connection_limit(NotifyChannel *ch);
extern int	channel_take_tokens(NotifyChannel *ch, int want, TimestampTz *next_token);
extern void channel_return_tokens(NotifyChannel *ch, int n);

#endif							/* NOTIFY_CHANNELS_H */

/*-------------------------------------------------------------------------
 *
 * http.c
 *		The HTTP transports: signed webhooks (Standard Webhooks), Slack
 *		incoming webhooks, and email through a provider's HTTP API
 *		(Postmark, SendGrid).  Requests run on libcurl's multi interface
 *		inside the worker's wait set (transfer.c).
 *
 * Safety: only http and https; TLS verification as notify.tls_verify; no
 * redirects unless the channel says follow_redirects; destinations in
 * loopback, private, link-local and other special ranges are refused
 * when the connection is opened (after DNS), unless the channel says
 * allow_private_destinations; an optional host allow-list; response
 * bodies are read up to HTTP_RESPONSE_MAX; every request has a timeout.
 *
 * Classification: 2xx sent; 408, 429 and 5xx transient, honouring
 * Retry-After; a redirect not followed and other 4xx permanent, except
 * 401/403 from an email provider (a wrong token is the channel's
 * configuration, not the message's: transient); connection failures and
 * timeouts transient; a refused destination permanent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cjson/cJSON.h>

#include "lib/ilist.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "channels.h"
#include "notify.h"
#include "hmac.h"
#include "worker.h"

#define HTTP_RESPONSE_MAX 8192
#define HTTP_REPLY_PREFIX 256

/*
 * Easy handles kept between requests.  A handle holds no connection of its
 * own (they are in libcurl's cache, shared by all handles), but making one
 * and setting it up costs more than the request it carries.
 */
#define HTTP_IDLE_HANDLES_MAX 128

/* One request in flight; lives in the job's batch memory. */
typedef struct HttpRequest
{
	TransferHandle th;			/* first: libcurl's CURLOPT_PRIVATE */
	dlist_node	node;			/* in the list of active requests */
	NotifyJob  *job;
	CURL	   *easy;
	struct curl_slist *headers; /* in the job's memory, see add_header */
	struct curl_slist *headers_tail;
	char	   *url;
	StringInfoData response;	/* first HTTP_RESPONSE_MAX bytes */
	char		message_id_header[128];	/* SendGrid's X-Message-Id */
	bool		retry_after;	/* the response has a Retry-After header */
	bool		refused;		/* destination address not allowed */
	bool		allow_private;
} HttpRequest;

static dlist_head active = DLIST_STATIC_INIT(active);
static CURL *idle_handles[HTTP_IDLE_HANDLES_MAX];
static int	nidle_handles = 0;

static void start_request(NotifyJob *job);
static CURL *get_handle(void);
static void put_handle(CURL *e);
static void add_header(HttpRequest *r, char *line);
static void request_done(TransferHandle *th, CURLcode rc);
static void finish(NotifyJob *job, NotifyOutcome outcome);
static char *build_webhook(NotifyJob *job, HttpRequest *r, char **error);
static char *build_slack(NotifyJob *job, HttpRequest *r, char **error);
static char *build_email(NotifyJob *job, HttpRequest *r, char **error);
static char *payload_json(Jsonb *payload, const char *key);
static char *cjson_to_pstr(cJSON *json);
static bool host_allowed(NotifyChannel *ch, const char *url);
static bool address_is_special(const struct sockaddr *sa);
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address);
static int	check_peer(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port);
static size_t keep_response(char *buffer, size_t size, size_t nitems, void *userdata);
static size_t keep_header(char *buffer, size_t size, size_t nitems, void *userdata);
static char *provider_message_id(NotifyJob *job, HttpRequest *r);

/*
 * Build the request of job (URL, headers, body) without sending it.
 * Returns false (with job->outcome and job->error set) when it cannot be
 * built, which no retry can fix.
 */
bool
http_prepare(NotifyJob *job)
{
	HttpRequest *r = palloc0(sizeof(HttpRequest));
	NotifyChannel *ch = job->ch;
	char	   *body = NULL;
	char	   *error = NULL;
	ListCell   *lc;

	r->job = job;
	r->allow_private = ch->allow_private;
	/* r->response stays empty (no buffer) until a response body arrives */
	job->transport = r;

	if (strcmp(ch->kind, "webhook") == 0)
		body = build_webhook(job, r, &error);
	else if (strcmp(ch->kind, "slack") == 0)
		body = build_slack(job, r, &error);
	else if (strcmp(ch->kind, "http_email") == 0)
		body = build_email(job, r, &error);
	else
		error = psprintf("channel kind \"%s\" has no HTTP transport", ch->kind);

	if (body == NULL)
	{
		job->outcome = NOTIFY_OUTCOME_PERMANENT;
		job->error = error;
		return false;
	}
	if (r->url == NULL || !host_allowed(ch, r->url))
	{
		job->outcome = NOTIFY_OUTCOME_PERMANENT;
		job->error = r->url == NULL ? pstrdup("http: no destination URL") :
			psprintf("http: destination host not in the channel's allowed_hosts");
		return false;
	}

	/* copied: a reload of the channel frees its strings */
	foreach(lc, ch->headers)
		add_header(r, pstrdup((char *) lfirst(lc)));
	add_header(r, "Content-Type: application/json");
	add_header(r, "Accept: application/json");
	add_header(r, "User-Agent: notify/0.1 (PostgreSQL)");
	/* no "Expect: 100-continue" round trip */
	add_header(r, "Expect:");

	/* the body as built, palloc'd in the job's memory */
	job->body.data = body;
	job->body.len = strlen(body);
	job->body.maxlen = job->body.len + 1;
	job->body.cursor = 0;
	return true;
}

/*
 * Append a header line to r's list.  The list is libcurl's curl_slist, but
 * made of nodes in the job's memory rather than libcurl's malloc'd copies:
 * libcurl only reads it, while the request runs, and the job's memory
 * outlives the request.  Never pass it to curl_slist_free_all.
 */
static void
add_header(HttpRequest *r, char *line)
{
	struct curl_slist *node = palloc(sizeof(struct curl_slist));

	node->data = line;
	node->next = NULL;
	if (r->headers_tail != NULL)
		r->headers_tail->next = node;
	else
		r->headers = node;
	r->headers_tail = node;
}

/* Start job now if its channel has a free connection slot, else queue it. */
void
http_submit(NotifyJob *job)
{
	NotifyChannel *ch = job->ch;
	if (ch->in_flight < channel_connection_limit(ch))
		start_request(job);
	else
		dlist_push_tail(&ch->queue, &job->node);
}

/*
 * Shutdown: queued requests end released; with started, those in flight
 * too (their handles are left to the process exit).
 */
void
http_release(bool started)
{
	ListCell   *lc;
	dlist_mutable_iter iter;

	foreach(lc, channels_all())
	{
		NotifyChannel *ch = lfirst(lc);

		dlist_foreach_modify(iter, &ch->queue)
		{
			NotifyJob  *job = dlist_container(NotifyJob, node, iter.cur);

			dlist_delete(&job->node);
			job->outcome = NOTIFY_OUTCOME_RELEASED;
			transfer_job_done(job);
		}
	}
	if (!started)
		return;
	dlist_foreach_modify(iter, &active)
	{
		HttpRequest *r = dlist_container(HttpRequest, node, iter.cur);

		dlist_delete(&r->node);
		r->job->outcome = NOTIFY_OUTCOME_RELEASED;
		r->job->ch->in_flight--;
		transfer_job_done(r->job);
	}
}

/*
 * Hand a prepared request to libcurl, on an idle easy handle if there is
 * one.  Everything that depends on the request, its channel or a setting
 * that a reload can change is set here, every time.
 */
static void
start_request(NotifyJob *job)
{
	HttpRequest *r = (HttpRequest *) job->transport;
	NotifyChannel *ch = job->ch;
	CURL	   *e = get_handle();
	long		timeout = ch->timeout_ms > 0 ? ch->timeout_ms : notify_timeout;

	ch->in_flight++;
	if (e == NULL)
	{
		job->error = pstrdup("http: could not create a libcurl handle");
		finish(job, NOTIFY_OUTCOME_TRANSIENT);
		return;
	}
	r->easy = e;
	r->th.on_done = request_done;
	dlist_push_tail(&active, &r->node);
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, ch->follow_redirects ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, job->body.data);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) job->body.len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	/* the private-address guard, for this request's channel */
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, Min(timeout, 10000L));
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, notify_tls_verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, notify_tls_verify ? 2L : 0L);
	transfer_add_handle(e, &r->th);
}

/*
 * An easy handle for a request: an idle one, or a new one with the options
 * that are the same for every request.
 */
static CURL *
get_handle(void)
{
	CURL	   *e;

	if (nidle_handles > 0)
		return idle_handles[--nidle_handles];
	e = curl_easy_init();
	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_response);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, keep_header);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	/* a reused connection opens no socket: check the peer before each request too */
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, check_peer);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	return e;
}

/* Take a finished handle out of the multi and keep it for the next request. */
static void
put_handle(CURL *e)
{
	transfer_remove_handle(e);
	if (nidle_handles < HTTP_IDLE_HANDLES_MAX)
		idle_handles[nidle_handles++] = e;
	else
		curl_easy_cleanup(e);
}

/* libcurl finished a request: classify it, free it, start the next queued one. */
static void
request_done(TransferHandle *th, CURLcode rc)
{
	HttpRequest *r = (HttpRequest *) th;
	NotifyJob  *job = r->job;
	NotifyChannel *ch = job->ch;
	MemoryContext old = MemoryContextSwitchTo(job->batch->cxt);
	long		status = 0;
	NotifyOutcome outcome;

	if (rc == CURLE_OK)
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	job->response_code = (int) status;

	if (r->refused)
	{
		outcome = NOTIFY_OUTCOME_PERMANENT;
		job->error = pstrdup("http: destination address is loopback, private or link-local; the channel does not allow_private_destinations");
	}
	else if (rc != CURLE_OK)
	{
		outcome = NOTIFY_OUTCOME_TRANSIENT;
		job->error = psprintf("http: %s", curl_easy_strerror(rc));
	}
	else
	{
		int			n = Min(r->response.len, HTTP_REPLY_PREFIX);
		int			len;
		int			i;

		/* the reply: status and a printable prefix of the body */
		len = snprintf(job->reply, NOTIFY_REPLY_LEN, "HTTP %ld: ", status);
		len = Min(len, NOTIFY_REPLY_LEN - 1);
		for (i = 0; i < n && len < NOTIFY_REPLY_LEN - 1; i++)
		{
			unsigned char c = (unsigned char) r->response.data[i];

			job->reply[len++] = (c >= 32 && c < 127) ? (char) c : ' ';
		}
		job->reply[len] = '\0';

		if (status >= 200 && status < 300)
		{
			outcome = NOTIFY_OUTCOME_SENT;
			job->provider_id = provider_message_id(job, r);
		}
		else if (status == 408 || status == 429 || status >= 500 ||
				 (strcmp(ch->kind, "http_email") == 0 && (status == 401 || status == 403)))
		{
			curl_off_t	wait = 0;

			outcome = NOTIFY_OUTCOME_TRANSIENT;
			/* asked only when this response has the header: the handle served others */
			if (r->retry_after &&
				curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &wait) == CURLE_OK && wait > 0)
				job->retry_after = (int) Min(wait, (curl_off_t) 86400);
			job->error = psprintf("http: status %ld", status);
		}
		else if (status >= 300 && status < 400)
		{
			outcome = NOTIFY_OUTCOME_PERMANENT;
			job->error = psprintf("http: status %ld (redirects are not followed; see follow_redirects)", status);
		}
		else
		{
			outcome = NOTIFY_OUTCOME_PERMANENT;
			job->error = psprintf("http: status %ld", status);
		}
	}
	MemoryContextSwitchTo(old);
	finish(job, outcome);
}

/* End job: free its request, count the slot, start the next waiting one. */
static void
finish(NotifyJob *job, NotifyOutcome outcome)
{
	HttpRequest *r = (HttpRequest *) job->transport;
	NotifyChannel *ch = job->ch;

	if (r->easy != NULL)
	{
		dlist_delete(&r->node);
		put_handle(r->easy);
	}
	r->easy = NULL;
	job->outcome = outcome;
	ch->in_flight--;
	transfer_job_done(job);

	if (!dlist_is_empty(&ch->queue))
		start_request(dlist_container(NotifyJob, node, dlist_pop_head_node(&ch->queue)));
}

/*
 * A webhook: the payload as the JSON body, signed as Standard Webhooks
 * says.  The destination is the channel's url, else the recipient.
 */
static char *
build_webhook(NotifyJob *job, HttpRequest *r, char **error)
{
	NotifyChannel *ch = job->ch;
	char	   *body = JsonbToCString(NULL, &job->payload->root, VARSIZE(job->payload));
	char	   *msg_id = psprintf("msg_" INT64_FORMAT, job->id);
	int64		ts = (int64) timestamptz_to_time_t(GetCurrentTimestamp());

	body = pg_server_to_any(body, strlen(body), PG_UTF8);
	r->url = pstrdup(ch->url ? ch->url : job->recipient);
	add_header(r, psprintf("webhook-id: %s", msg_id));
	add_header(r, psprintf("webhook-timestamp: " INT64_FORMAT, ts));
	if (ch->secret != NULL)
	{
		char	   *sig = notify_webhook_sign(ch->secret, msg_id, ts, body, strlen(body), error);

		if (sig == NULL)
			return NULL;
		add_header(r, psprintf("webhook-signature: %s", sig));
	}
	return body;
}

/* A Slack incoming-webhook message: text, and blocks when the payload has them. */
static char *
build_slack(NotifyJob *job, HttpRequest *r, char **error)
{
	cJSON	   *msg = cJSON_CreateObject();
	char	   *blocks = payload_json(job->payload, "blocks");
	const char *text = job->text_body ? job->text_body : job->subject;

	if (job->ch->secret == NULL)
	{
		*error = pstrdup("slack: the channel has no incoming-webhook URL (its secret)");
		cJSON_Delete(msg);
		return NULL;
	}
	r->url = pstrdup(job->ch->secret);
	if (text == NULL)
	{
		*error = pstrdup("slack: nothing to send (no text in the template or payload)");
		cJSON_Delete(msg);
		return NULL;
	}
	cJSON_AddStringToObject(msg, "text", text);
	if (blocks != NULL)
	{
		cJSON	   *b = cJSON_Parse(blocks);

		if (b == NULL || !cJSON_IsArray(b))
		{
			cJSON_Delete(b);
			cJSON_Delete(msg);
			*error = pstrdup("slack: payload \"blocks\" must be a JSON array");
			return NULL;
		}
		cJSON_AddItemToObject(msg, "blocks", b);
	}
	return cjson_to_pstr(msg);
}

/* An email as Postmark's or SendGrid's send API wants it. */
static char *
build_email(NotifyJob *job, HttpRequest *r, char **error)
{
	NotifyChannel *ch = job->ch;
	const char *from = ch->from_address ? ch->from_address : notify_from_address;
	const char *from_name = ch->from_name ? ch->from_name :
		(notify_from_name[0] ? notify_from_name : NULL);
	cJSON	   *msg = cJSON_CreateObject();

	if (job->text_body == NULL && job->html_body == NULL)
	{
		*error = pstrdup("http_email: nothing to send (no text or html body)");
		cJSON_Delete(msg);
		return NULL;
	}
	if (ch->secret == NULL)
	{
		*error = pstrdup("http_email: the channel has no API token (its secret)");
		cJSON_Delete(msg);
		return NULL;
	}

	if (strcmp(ch->provider, "postmark") == 0)
	{
		r->url = pstrdup(ch->url ? ch->url : "https://api.postmarkapp.com/email");
		add_header(r, psprintf("X-Postmark-Server-Token: %s", ch->secret));
		cJSON_AddStringToObject(msg, "From", from_name ? psprintf("\"%s\" <%s>", from_name, from) : from);
		cJSON_AddStringToObject(msg, "To", job->recipient);
		cJSON_AddStringToObject(msg, "Subject", job->subject ? job->subject : "");
		if (job->text_body)
			cJSON_AddStringToObject(msg, "TextBody", job->text_body);
		if (job->html_body)
			cJSON_AddStringToObject(msg, "HtmlBody", job->html_body);
		cJSON_AddStringToObject(msg, "MessageStream", ch->message_stream ? ch->message_stream : "outbound");
		if (job->unsubscribe_url != NULL)
		{
			cJSON	   *headers = cJSON_AddArrayToObject(msg, "Headers");
			cJSON	   *h1 = cJSON_CreateObject();
			cJSON	   *h2 = cJSON_CreateObject();

			cJSON_AddStringToObject(h1, "Name", "List-Unsubscribe");
			cJSON_AddStringToObject(h1, "Value", psprintf("<%s>", job->unsubscribe_url));
			cJSON_AddStringToObject(h2, "Name", "List-Unsubscribe-Post");
			cJSON_AddStringToObject(h2, "Value", "List-Unsubscribe=One-Click");
			cJSON_AddItemToArray(headers, h1);
			cJSON_AddItemToArray(headers, h2);
		}
	}
	else if (strcmp(ch->provider, "sendgrid") == 0)
	{
		cJSON	   *pers = cJSON_AddArrayToObject(msg, "personalizations");
		cJSON	   *p = cJSON_CreateObject();
		cJSON	   *to = cJSON_AddArrayToObject(p, "to");
		cJSON	   *addr = cJSON_CreateObject();
		cJSON	   *f = cJSON_AddObjectToObject(msg, "from");
		cJSON	   *content = cJSON_AddArrayToObject(msg, "content");

		r->url = pstrdup(ch->url ? ch->url : "https://api.sendgrid.com/v3/mail/send");
		add_header(r, psprintf("Authorization: Bearer %s", ch->secret));
		cJSON_AddStringToObject(addr, "email", job->recipient);
		cJSON_AddItemToArray(to, addr);
		cJSON_AddItemToArray(pers, p);
		cJSON_AddStringToObject(f, "email", from);
		if (from_name)
			cJSON_AddStringToObject(f, "name", from_name);
		cJSON_AddStringToObject(msg, "subject", job->subject ? job->subject : "");
		if (job->unsubscribe_url != NULL)
		{
			cJSON	   *headers = cJSON_AddObjectToObject(msg, "headers");

			cJSON_AddStringToObject(headers, "List-Unsubscribe", psprintf("<%s>", job->unsubscribe_url));
			cJSON_AddStringToObject(headers, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
		}
		if (job->text_body)
		{
			cJSON	   *c = cJSON_CreateObject();

			cJSON_AddStringToObject(c, "type", "text/plain");
			cJSON_AddStringToObject(c, "value", job->text_body);
			cJSON_AddItemToArray(content, c);
		}
		if (job->html_body)
		{
			cJSON	   *c = cJSON_CreateObject();

			cJSON_AddStringToObject(c, "type", "text/html");
			cJSON_AddStringToObject(c, "value", job->html_body);
			cJSON_AddItemToArray(content, c);
		}
	}
	else
	{
		*error = psprintf("http_email: unknown provider \"%s\"", ch->provider ? ch->provider : "");
		cJSON_Delete(msg);
		return NULL;
	}
	return cjson_to_pstr(msg);
}

/* The JSON text of payload's top-level key, or NULL. */
static char *
payload_json(Jsonb *payload, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;
	Jsonb	   *sub;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&payload->root, JB_FOBJECT, &k);
	if (v == NULL)
		return NULL;
	sub = JsonbValueToJsonb(v);
	return JsonbToCString(NULL, &sub->root, VARSIZE(sub));
}

/* Print a cJSON tree into palloc'd memory and free the tree. */
static char *
cjson_to_pstr(cJSON *json)
{
	char	   *s = cJSON_PrintUnformatted(json);
	char	   *result = pstrdup(s);

	cJSON_free(s);
	cJSON_Delete(json);
	return result;
}

/* The provider's id for an accepted email, if the response has one. */
static char *
provider_message_id(NotifyJob *job, HttpRequest *r)
{
	if (strcmp(job->ch->kind, "http_email") != 0)
		return NULL;
	if (r->message_id_header[0] != '\0')
		return pstrdup(r->message_id_header);
	if (r->response.len > 0)
	{
		cJSON	   *json = cJSON_ParseWithLength(r->response.data, r->response.len);
		cJSON	   *id = cJSON_GetObjectItemCaseSensitive(json, "MessageID");
		char	   *result = cJSON_IsString(id) ? pstrdup(id->valuestring) : NULL;

		cJSON_Delete(json);
		return result;
	}
	return NULL;
}

/* Whether url's host is in the channel's allow-list (no list: any host). */
static bool
host_allowed(NotifyChannel *ch, const char *url)
{
	CURLU	   *u;
	char	   *host = NULL;
	bool		ok = false;
	ListCell   *lc;

	if (ch->allowed_hosts == NIL)
		return true;
	u = curl_url();
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		foreach(lc, ch->allowed_hosts)
			if (pg_strcasecmp(host, (char *) lfirst(lc)) == 0)
				ok = true;
	}
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/*
 * Loopback, private (RFC 1918, unique local), link-local, CGNAT,
 * unspecified, multicast and broadcast addresses, also as IPv4-mapped
 * IPv6.
 */
static bool
address_is_special(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
	{
		uint32		a = ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr);

		return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
			(a >> 16) == 0xA9FE ||	/* 169.254/16 */
			(a >> 20) == 0xAC1 ||	/* 172.16/12 */
			(a >> 16) == 0xC0A8 ||	/* 192.168/16 */
			(a >> 22) == 0x191 ||	/* 100.64/10 */
			(a >> 28) >= 0xE;	/* multicast, reserved, broadcast */
	}
	if (sa->sa_family == AF_INET6)
	{
		const uint8 *b = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
		static const uint8 zero[16];
		static const uint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		if (memcmp(b, mapped, 12) == 0)
		{
			struct sockaddr_in v4;

			memset(&v4, 0, sizeof(v4));
			v4.sin_family = AF_INET;
			memcpy(&v4.sin_addr, b + 12, 4);
			return address_is_special((struct sockaddr *) &v4);
		}
		return memcmp(b, zero, 15) == 0 ||	/* :: and ::1 */
			(b[0] & 0xfe) == 0xfc ||	/* fc00::/7 */
			(b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||	/* fe80::/10 */
			b[0] == 0xff;		/* multicast */
	}
	return true;
}

/* libcurl: open a socket, unless the address is one we refuse. */
static curl_socket_t
open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	HttpRequest *r = (HttpRequest *) clientp;

	if (!r->allow_private && address_is_special(&address->addr))
	{
		r->refused = true;
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/* libcurl, before sending on a new or reused connection: refuse special peers. */
static int
check_peer(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	HttpRequest *r = (HttpRequest *) clientp;
	struct sockaddr_storage ss;

	if (r->allow_private)
		return CURL_PREREQFUNC_OK;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, primary_ip, &((struct sockaddr_in *) &ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, primary_ip, &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		ss.ss_family = AF_UNSPEC;	/* unknown: refused */
	if (address_is_special((struct sockaddr *) &ss))
	{
		r->refused = true;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

/* libcurl write callback: keep the start of the response body. */
static size_t
keep_response(char *buffer, size_t size, size_t nitems, void *userdata)
{
	HttpRequest *r = (HttpRequest *) userdata;
	size_t		n = size * nitems;

	if (r->response.len < HTTP_RESPONSE_MAX)
	{
		MemoryContext old = MemoryContextSwitchTo(r->job->batch->cxt);

		if (r->response.data == NULL)
			initStringInfo(&r->response);
		appendBinaryStringInfo(&r->response, buffer,
							   Min(n, (size_t) (HTTP_RESPONSE_MAX - r->response.len)));
		MemoryContextSwitchTo(old);
	}
	return n;
}

/* libcurl header callback: keep SendGrid's X-Message-Id; note Retry-After. */
static size_t
keep_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
	HttpRequest *r = (HttpRequest *) userdata;
	size_t		n = size * nitems;
	const char *name = "x-message-id:";
	size_t		nlen = strlen(name);

	if (n > 12 && pg_strncasecmp(buffer, "retry-after:", 12) == 0)
		r->retry_after = true;
	else if (n > nlen && pg_strncasecmp(buffer, name, nlen) == 0)
	{
		size_t		start = nlen;
		size_t		end = n;
		size_t		len;

		while (start < end && buffer[start] == ' ')
			start++;
		while (end > start && (buffer[end - 1] == '\r' || buffer[end - 1] == '\n' || buffer[end - 1] == ' '))
			end--;
		len = Min(end - start, sizeof(r->message_id_header) - 1);
		memcpy(r->message_id_header, buffer + start, len);
		r->message_id_header[len] = '\0';
	}
	return n;
}

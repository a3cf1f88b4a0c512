/*-------------------------------------------------------------------------
 *
 * webhook_baseline.c
 *		The yardstick for bench/webhooks.sh: a plain libcurl multi program
 *		that POSTs N signed webhooks to one URL as fast as it can over at
 *		most CONNS keep-alive connections.
 *
 * Each request is what notify sends for a webhook channel with a secret:
 * the same JSON body, the same headers (webhook-id, webhook-timestamp,
 * webhook-signature, Content-Type, Accept, a User-Agent, no Expect), and
 * a real Standard Webhooks signature, "v1," + base64(HMAC-SHA256(key,
 * "msg_id.timestamp.body")), computed per request with OpenSSL.  Easy
 * handles are reused (2 x CONNS of them), so a finished request is
 * replaced at once; libcurl's CURLMOPT_MAX_TOTAL_CONNECTIONS holds the
 * connections to CONNS.  Every response must be 2xx.
 *
 * Usage: webhook_baseline URL N CONNS SECRET|- BODY FIRST_ID
 * Prints one line: "seconds ok failed cpu_seconds runq_seconds", the last
 * being how long the program waited for a CPU while runnable (Linux
 * /proc/self/schedstat; -1 elsewhere).
 *
 * Build: cc -O2 -o webhook_baseline webhook_baseline.c -lcurl -lcrypto
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

typedef struct Slot
{
	CURL	   *easy;
	struct curl_slist *headers;
} Slot;

static const char *url;
static const char *body;
static size_t body_len;
static unsigned char key[256];
static int	key_len = -1;		/* -1: no secret, no signature header */

/* Seconds this process has waited for a CPU while runnable, or -1. */
static double
runq_seconds(void)
{
	FILE	   *f = fopen("/proc/self/schedstat", "r");
	unsigned long long run,
				wait;
	int			n;

	if (f == NULL)
		return -1;
	n = fscanf(f, "%llu %llu", &run, &wait);
	fclose(f);
	return n == 2 ? wait / 1e9 : -1;
}

/* Discard the response body. */
static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void) ptr;
	(void) userdata;
	return size * nmemb;
}

/* The headers of request id, signed when there is a key. */
static struct curl_slist *
make_headers(long long id)
{
	struct curl_slist *h = NULL;
	char		msg_id[64];
	char		line[256];
	long long	ts = (long long) time(NULL);

	snprintf(msg_id, sizeof(msg_id), "msg_%lld", id);
	snprintf(line, sizeof(line), "webhook-id: %s", msg_id);
	h = curl_slist_append(h, line);
	snprintf(line, sizeof(line), "webhook-timestamp: %lld", ts);
	h = curl_slist_append(h, line);
	if (key_len >= 0)
	{
		char	   *content;
		int			clen;
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int mac_len = 0;
		char		b64[96];

		content = malloc(strlen(msg_id) + 32 + body_len);
		clen = sprintf(content, "%s.%lld.", msg_id, ts);
		memcpy(content + clen, body, body_len);
		clen += (int) body_len;
		HMAC(EVP_sha256(), key, key_len, (unsigned char *) content, clen, mac, &mac_len);
		free(content);
		EVP_EncodeBlock((unsigned char *) b64, mac, (int) mac_len);
		snprintf(line, sizeof(line), "webhook-signature: v1,%s", b64);
		h = curl_slist_append(h, line);
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "User-Agent: baseline/0.1 (libcurl)");
	h = curl_slist_append(h, "Expect:");
	return h;
}

/* Point slot at request id and hand it to the multi handle. */
static void
start(CURLM *multi, Slot *s, long long id)
{
	if (s->easy == NULL)
	{
		s->easy = curl_easy_init();
		curl_easy_setopt(s->easy, CURLOPT_URL, url);
		curl_easy_setopt(s->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
		curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, 30000L);
		curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
	}
	if (s->headers)
		curl_slist_free_all(s->headers);
	s->headers = make_headers(id);
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
	curl_multi_add_handle(multi, s->easy);
}

int
main(int argc, char **argv)
{
	long		n,
				conns;
	long long	first_id,
				next_id;
	int			nslots;
	Slot	   *slots;
	CURLM	   *multi;
	long		started = 0,
				ok = 0,
				failed = 0;
	int			running = 1;
	struct timespec t0,
				t1;
	struct rusage ru;
	double		runq0,
				runq1;
	int			i;

	if (argc != 7)
	{
		fprintf(stderr, "usage: %s URL N CONNS SECRET|- BODY FIRST_ID\n", argv[0]);
		return 2;
	}
	url = argv[1];
	n = atol(argv[2]);
	conns = atol(argv[3]);
	body = argv[5];
	body_len = strlen(body);
	first_id = atoll(argv[6]);
	if (strcmp(argv[4], "-") != 0)
	{
		const char *b64 = argv[4];
		size_t		len;
		int			pad = 0;

		if (strncmp(b64, "whsec_", 6) == 0)
			b64 += 6;
		len = strlen(b64);
		if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(key))
		{
			fprintf(stderr, "bad secret\n");
			return 2;
		}
		if (b64[len - 1] == '=')
			pad++;
		if (b64[len - 2] == '=')
			pad++;
		key_len = EVP_DecodeBlock(key, (const unsigned char *) b64, (int) len);
		if (key_len < 0)
		{
			fprintf(stderr, "bad secret\n");
			return 2;
		}
		key_len -= pad;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conns);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conns);

	nslots = (int) (2 * conns);
	if (nslots > n)
		nslots = (int) n;
	slots = calloc(nslots, sizeof(Slot));
	next_id = first_id;

	runq0 = runq_seconds();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < nslots; i++)
	{
		start(multi, &slots[i], next_id++);
		started++;
	}
	while (running || ok + failed < n)
	{
		CURLMsg    *msg;
		int			left;

		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			Slot	   *s;
			long		status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
			if (msg->data.result == CURLE_OK)
				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			if (status >= 200 && status < 300)
				ok++;
			else
			{
				failed++;
				if (failed <= 5)
					fprintf(stderr, "request failed: %s, status %ld\n",
							curl_easy_strerror(msg->data.result), status);
			}
			curl_multi_remove_handle(multi, s->easy);
			if (started < n)
			{
				start(multi, s, next_id++);
				started++;
				running = 1;
			}
		}
		if (ok + failed >= n)
			break;
		curl_multi_poll(multi, NULL, 0, 1000, NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	getrusage(RUSAGE_SELF, &ru);
	runq1 = runq_seconds();

	printf("%.4f %ld %ld %.2f %.2f\n",
		   (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, ok, failed,
		   ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		   ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
		   runq0 < 0 || runq1 < 0 ? -1.0 : runq1 - runq0);

	for (i = 0; i < nslots; i++)
	{
		if (slots[i].easy)
			curl_easy_cleanup(slots[i].easy);
		if (slots[i].headers)
			curl_slist_free_all(slots[i].headers);
	}
	free(slots);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return failed == 0 ? 0 : 1;
}

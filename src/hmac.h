/*-------------------------------------------------------------------------
 *
 * hmac.h
 *		HMAC-SHA256, constant-time comparison and base64 (hmac.c), and the
 *		Standard Webhooks signing built on them (signature.c).
 *
 * Everything here may be called inside or outside a transaction, in a
 * backend or in the background worker.  Results are palloc'd in
 * CurrentMemoryContext.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_HMAC_H
#define NOTIFY_HMAC_H

#include "postgres.h"

/* length of a SHA-256 digest, and so of an HMAC-SHA256 */
#define NOTIFY_SHA256_LEN	32

/* one piece of the data to authenticate; the pieces are concatenated */
typedef struct NotifyHmacPart
{
	const void *data;
	size_t		len;
} NotifyHmacPart;

extern void notify_hmac_sha256(const uint8 *key, size_t keylen,
							   const uint8 *data, size_t len,
							   uint8 out[NOTIFY_SHA256_LEN]);
extern void notify_hmac_sha256_parts(const uint8 *key, size_t keylen,
									 const NotifyHmacPart *parts, int nparts,
									 uint8 out[NOTIFY_SHA256_LEN]);
extern bool notify_timingsafe_equal(const void *a, const void *b, size_t len);

extern char *notify_base64_encode(const uint8 *src, size_t len);
extern int	notify_base64_decoded_len(const char *src, size_t len);
extern int	notify_base64_decode(const char *src, size_t len,
								 uint8 *dst, size_t dstlen);

/*---- signature.c: Standard Webhooks ----*/

/*
 * The webhook-signature header value, "v1,<base64>" per secret; secrets is
 * one or more "whsec_" secrets separated by white space (key rotation).
 * NULL and *error set on a bad secret, message id or timestamp.
 */
extern char *notify_webhook_sign(const char *secrets, const char *msg_id,
								 int64 ts, const char *body, size_t body_len,
								 char **error);
extern bool notify_webhook_check_secrets(const char *secrets, char **error);

#endif							/* NOTIFY_HMAC_H */

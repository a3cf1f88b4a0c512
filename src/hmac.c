/*-------------------------------------------------------------------------
 *
 * hmac.c
 *		HMAC-SHA256 (RFC 2104), constant-time comparison and strict base64
 *
 * The hash comes from PostgreSQL itself, so the extension links no crypto
 * library of its own: common/hmac.h (OpenSSL's HMAC in Debian's builds)
 * from PostgreSQL 14, and RFC 2104 spelled out over common/sha2.h for 13,
 * which has no HMAC API.  Both live in hmac_sha256_compute(), the only
 * place here that looks at the server version.
 *
 * With OpenSSL, PostgreSQL tracks each HMAC context in CurrentResourceOwner,
 * which is NULL in the background worker between transactions; a private
 * resource owner stands in there.  It never holds anything once a call
 * returns, since the context is freed before it does.
 *
 * Base64 is RFC 4648's standard alphabet with padding, as Standard Webhooks
 * uses for secrets and signatures.  Decoding accepts only the canonical
 * form (no white space, padding only at the end), so a secret has exactly
 * one spelling.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "hmac.h"

/*
 * Version differences kept in this file rather than in compat.h, because
 * nothing else needs them: common/hmac.h appeared in PostgreSQL 14, and
 * with OpenSSL builds of 14 and later pg_sha256_init() and friends no
 * longer exist.  (common/base64.h changed its pointer types in 18; see
 * notify_base64_encode() for how one call suits both.)
 */
#if PG_VERSION_NUM >= 140000
#define NOTIFY_HAVE_PG_HMAC 1
#include "common/hmac.h"
#else
#include "common/sha2.h"
#endif

static bool hmac_sha256_compute(const uint8 *key, size_t keylen,
								const NotifyHmacPart *parts, int nparts,
								uint8 *out);

/*
 * HMAC-SHA256 of the concatenated parts under key into out.  Returns false
 * only when the hash implementation itself failed.
 */
static bool
hmac_sha256_compute(const uint8 *key, size_t keylen,
					const NotifyHmacPart *parts, int nparts, uint8 *out)
{
#ifdef NOTIFY_HAVE_PG_HMAC
	static ResourceOwner standin_owner = NULL;
	ResourceOwner saved_owner = CurrentResourceOwner;
	volatile bool ok = false;

	if (saved_owner == NULL)
	{
		if (standin_owner == NULL)
			standin_owner = ResourceOwnerCreate(NULL, "notify hmac");
		CurrentResourceOwner = standin_owner;
	}

	PG_TRY();
	{
		pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

		if (ctx != NULL)
		{
			bool		good;
			int			i;

			good = pg_hmac_init(ctx, key, keylen) == 0;
			for (i = 0; good && i < nparts; i++)
				if (parts[i].len > 0)
					good = pg_hmac_update(ctx, parts[i].data, parts[i].len) == 0;
			good = good && pg_hmac_final(ctx, out, NOTIFY_SHA256_LEN) == 0;
			pg_hmac_free(ctx);
			ok = good;
		}
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = saved_owner;
	}
	PG_END_TRY();

	return ok;
#else
	pg_sha256_ctx ctx;
	uint8		k[PG_SHA256_BLOCK_LENGTH];
	uint8		pad[PG_SHA256_BLOCK_LENGTH];
	uint8		inner[PG_SHA256_DIGEST_LENGTH];
	int			i;

	/* K: the key, hashed first if longer than a block, zero-padded */
	memset(k, 0, sizeof(k));
	if (keylen > PG_SHA256_BLOCK_LENGTH)
	{
		pg_sha256_init(&ctx);
		pg_sha256_update(&ctx, key, keylen);
		pg_sha256_final(&ctx, k);
	}
	else if (keylen > 0)
		memcpy(k, key, keylen);

	/* H((K ^ ipad) || text) */
	for (i = 0; i < PG_SHA256_BLOCK_LENGTH; i++)
		pad[i] = k[i] ^ 0x36;
	pg_sha256_init(&ctx);
	pg_sha256_update(&ctx, pad, sizeof(pad));
	for (i = 0; i < nparts; i++)
		if (parts[i].len > 0)
			pg_sha256_update(&ctx, parts[i].data, parts[i].len);
	pg_sha256_final(&ctx, inner);

	/* H((K ^ opad) || inner) */
	for (i = 0; i < PG_SHA256_BLOCK_LENGTH; i++)
		pad[i] = k[i] ^ 0x5c;
	pg_sha256_init(&ctx);
	pg_sha256_update(&ctx, pad, sizeof(pad));
	pg_sha256_update(&ctx, inner, sizeof(inner));
	pg_sha256_final(&ctx, out);

	explicit_bzero(k, sizeof(k));
	explicit_bzero(pad, sizeof(pad));
	explicit_bzero(inner, sizeof(inner));
	explicit_bzero(&ctx, sizeof(ctx));
	return true;
#endif
}

/*
 * notify_hmac_sha256_parts
 *		HMAC-SHA256 under key of the concatenation of nparts parts, without
 *		copying them into one buffer.
 */
void
notify_hmac_sha256_parts(const uint8 *key, size_t keylen,
						 const NotifyHmacPart *parts, int nparts,
						 uint8 out[NOTIFY_SHA256_LEN])
{
	if (!hmac_sha256_compute(key, keylen, parts, nparts, out))
		elog(ERROR, "could not compute HMAC-SHA256");
}

/*
 * notify_hmac_sha256
 *		HMAC-SHA256 under key of the len bytes at data.
 */
void
notify_hmac_sha256(const uint8 *key, size_t keylen,
				   const uint8 *data, size_t len,
				   uint8 out[NOTIFY_SHA256_LEN])
{
	NotifyHmacPart part;

	part.data = data;
	part.len = len;
	notify_hmac_sha256_parts(key, keylen, &part, 1, out);
}

/*
 * notify_timingsafe_equal
 *		Whether the len bytes at a and b are equal, in a time that depends
 *		on len only.
 */
bool
notify_timingsafe_equal(const void *a, const void *b, size_t len)
{
	const volatile unsigned char *pa = a;
	const volatile unsigned char *pb = b;
	volatile unsigned char diff = 0;
	size_t		i;

	for (i = 0; i < len; i++)
		diff |= pa[i] ^ pb[i];
	return diff == 0;
}

/*
 * notify_base64_encode
 *		The base64 of len bytes, padded, as a palloc'd C string.
 */
char *
notify_base64_encode(const uint8 *src, size_t len)
{
	int			enclen;
	char	   *dst;
	int			n;

	if (len > (size_t) (MaxAllocSize / 4 * 3 - 3))
		elog(ERROR, "base64 input of %zu bytes is too long", len);
	enclen = pg_b64_enc_len((int) len);
	dst = palloc(enclen + 1);

	/*
	 * The source is "const char *" before PostgreSQL 18 and "const uint8 *"
	 * since; a void pointer converts to either without a warning.
	 */
	n = pg_b64_encode((const void *) src, (int) len, dst, enclen);
	if (n < 0)
		elog(ERROR, "could not encode %zu bytes as base64", len);
	dst[n] = '\0';
	return dst;
}

/*
 * notify_base64_decoded_len
 *		The number of bytes the len characters at src decode to, or -1 if
 *		they are not canonical padded base64: groups of four characters of
 *		the standard alphabet, "=" only as the last one or two.  The empty
 *		string decodes to zero bytes.
 */
int
notify_base64_decoded_len(const char *src, size_t len)
{
	size_t		i;
	int			pad = 0;

	if (len % 4 != 0 || len > (size_t) (MaxAllocSize / 3))
		return -1;
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) src[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '+' || c == '/')
		{
			if (pad > 0)
				return -1;
		}
		else if (c == '=' && i + 2 >= len)
			pad++;
		else
			return -1;
	}
	return (int) (len / 4 * 3) - pad;
}

/*
 * notify_base64_decode
 *		Decode canonical base64 (see above) into dst, which has room for
 *		dstlen bytes.  Returns the decoded length, or -1 if src is not
 *		canonical base64 or does not fit.
 */
int
notify_base64_decode(const char *src, size_t len, uint8 *dst, size_t dstlen)
{
	int			n = notify_base64_decoded_len(src, len);

	if (n < 0 || (size_t) n > dstlen)
		return -1;
	if (n == 0)
		return 0;

	/* dst is "char *" before PostgreSQL 18 and "uint8 *" since */
	if (pg_b64_decode(src, (int) len, (void *) dst, n) != n)
		return -1;
	return n;
}

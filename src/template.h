/*-------------------------------------------------------------------------
 *
 * template.h
 *	  The template registry seen from C: rendering a stored template
 *	  version for the worker and for notify_preview(), with a per-process
 *	  cache of compiled templates.
 *
 * src/template.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_TEMPLATE_H
#define NOTIFY_TEMPLATE_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "mustache.h"

/* Limits of notify_templates.template_key and .locale (CHECK constraints) */
#define NOTIFY_TEMPLATE_KEY_MAXLEN	128
#define NOTIFY_LOCALE_MAXLEN		35

/* Compiled template versions kept per process (least recently used go) */
#define NOTIFY_TEMPLATE_CACHE_SIZE	256

/* One rendered notification; a NULL body means the template has none */
typedef struct NotifyRendered
{
	char	   *subject;
	char	   *text_body;
	char	   *html_body;
} NotifyRendered;

/*
 * Render the given template version for payload into out (palloc'd in
 * CurrentMemoryContext).  Call inside a transaction with SPI connected.
 * Returns false with *error set (palloc'd) when the version does not exist
 * or cannot be rendered (a stored part that does not parse, output over the
 * limit): the message should be marked failed.  Other errors (query cancel,
 * out of memory, a missing extension) are raised as usual.
 */
extern bool notify_template_render(const char *template_key, const char *locale,
								   int version, Jsonb *payload,
								   NotifyRendered *out, char **error);

/*
 * Compile template text, or return the compiled form from a per-process
 * cache keyed by the text (64 entries, least recently used go).  The result
 * belongs to the cache: do not free it, and do not keep it beyond the next
 * call.  Raises the engine's parse errors.
 */
extern const MustacheTemplate *notify_template_compile_text(const char *text,
															int len);

#endif							/* NOTIFY_TEMPLATE_H */

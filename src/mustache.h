/*-------------------------------------------------------------------------
 *
 * mustache.h
 *	  Mustache template engine over jsonb: compile once, render many times.
 *
 * A template is compiled by mustache_compile() into a single palloc'd chunk
 * (a flat node array plus a copy of the template text) in a caller-chosen
 * memory context, so it can be cached and rendered repeatedly against
 * different jsonb contexts by mustache_render()/mustache_render_ext().
 *
 * Supported: {{name}} (HTML-escaped), {{{name}}} and {{& name}} (raw),
 * dotted names, the implicit iterator {{.}}, sections {{#name}}, inverted
 * sections {{^name}}, comments {{! ...}}, set delimiters {{=<% %>=}},
 * partials {{> name}} (with indentation of standalone partial tags),
 * dynamic partial names {{>*name}}, and the spec's standalone-line rules.
 * Lambdas and template inheritance ({{<parent}}, {{$block}}) are not
 * supported; those tags are parse errors.
 *
 * Value semantics (jsonb -> text):
 *	- string: its text; HTML-escaped by {{x}}, where exactly & < > " ' become
 *	  &amp; &lt; &gt; &quot; &#39;
 *	- number: jsonb's numeric text form, no float round trip (1.21 -> 1.21,
 *	  1.0 -> 1.0, 1e3 -> 1000)
 *	- true/false: "true"/"false"; null and missing names: empty string
 *	- object/array: its jsonb text form (as jsonb::text), HTML-escaped by
 *	  {{x}}
 *
 * Sections: falsey values are missing names, null, false, "", numeric zero
 * and the empty array (as in mustache.js); an array renders the section
 * once per element with the element pushed on the context stack; any other
 * value (object, true, non-empty string, non-zero number) renders it once
 * with that value pushed.  Names are resolved as the spec says: the first
 * part of a dotted name is searched from the top of the context stack down
 * (only objects have keys), the remaining parts only inside what was found.
 *
 * Partials come from a jsonb object mapping names to template text (a
 * missing name or a null value renders as empty; any other non-string value
 * is an error).  They are compiled on first use and cached in a
 * MustachePartials, which can outlive one render.
 *
 * Errors: parse errors raise ERRCODE_INVALID_PARAMETER_VALUE with the line
 * and column (1-based, in characters) of the offending tag; exceeding the
 * partial nesting limit or the output size limit raises
 * ERRCODE_PROGRAM_LIMIT_EXCEEDED.
 *
 * src/mustache.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef NOTIFY_MUSTACHE_H
#define NOTIFY_MUSTACHE_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* Defaults used when MustacheOptions fields are zero, or options is NULL */
#define MUSTACHE_DEFAULT_MAX_PARTIAL_DEPTH	32
#define MUSTACHE_DEFAULT_MAX_OUTPUT			((Size) 1024 * 1024)

/* Opaque compiled template; one palloc chunk, free with mustache_free() */
typedef struct MustacheTemplate MustacheTemplate;

/* Opaque cache of compiled partials (one render's, inside mustache_render) */
typedef struct MustachePartials MustachePartials;

/* Rendering limits */
typedef struct MustacheOptions
{
	/* nested partial inclusions allowed; <= 0 means the default (32) */
	int			max_partial_depth;
	/* bytes one render may append to out; 0 means the default (1 MB) */
	Size		max_output;
	/* true: {{name}} is not HTML-escaped (subjects and text/plain bodies) */
	bool		plain_text;
} MustacheOptions;

/*
 * Compile template text (len bytes, need not be NUL-terminated) into a
 * MustacheTemplate allocated in cxt.  Raises ERROR on a parse error.
 */
extern MustacheTemplate *mustache_compile(const char *text, int len,
										  MemoryContext cxt);

/* Release a compiled template */
extern void mustache_free(MustacheTemplate *tpl);

/*
 * Render tpl against context (any jsonb container; a scalar root is fine;
 * NULL means an empty context), appending to out.  partials may be NULL;
 * options may be NULL for the defaults.
 */
extern void mustache_render_ext(const MustacheTemplate *tpl,
								JsonbContainer *context,
								MustachePartials *partials,
								const MustacheOptions *options,
								StringInfo out);

/*
 * Convenience wrapper: render with default limits; partials (may be NULL)
 * are compiled lazily and cached for the duration of this call only.
 */
extern void mustache_render(const MustacheTemplate *tpl, Jsonb *context,
							Jsonb *partials, StringInfo out);

#endif							/* NOTIFY_MUSTACHE_H */

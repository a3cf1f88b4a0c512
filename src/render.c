/*-------------------------------------------------------------------------
 *
 * render.c
 *	  SQL interface of the Mustache template engine: notify_render().
 *
 * src/render.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "mustache.h"
#include "template.h"

PG_FUNCTION_INFO_V1(notify_render);

/*
 * notify_render(template text, context jsonb, partials jsonb) returns text
 *
 * Compiles the template once and renders it once against context, with
 * the default limits (32 nested partials, 1 MB of output).  A NULL
 * template or context is an error; a NULL partials means no partials.
 */
Datum
notify_render(PG_FUNCTION_ARGS)
{
	text	   *tmpl;
	Jsonb	   *context;
	Jsonb	   *partials = NULL;
	const MustacheTemplate *tpl;
	StringInfoData out;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("template must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("template context must not be null"),
				 errhint("Pass '{}'::jsonb for an empty context.")));

	tmpl = PG_GETARG_TEXT_PP(0);
	context = PG_GETARG_JSONB_P(1);
	if (!PG_ARGISNULL(2))
		partials = PG_GETARG_JSONB_P(2);

	tpl = notify_template_compile_text(VARDATA_ANY(tmpl), VARSIZE_ANY_EXHDR(tmpl));

	initStringInfo(&out);
	mustache_render(tpl, context, partials, &out);

	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}

-- Mustache templates: notify_render() compiles and renders one template.

CREATE FUNCTION notify_render(template text, context jsonb,
                              partials jsonb DEFAULT '{}')
RETURNS text
AS 'MODULE_PATHNAME', 'notify_render'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION notify_render(text, jsonb, jsonb) IS
'render a Mustache template against a jsonb context; partials maps partial names to template text; {{x}} escapes & < > " '' as HTML; a NULL template or context is an error (22004); output is limited to 1 MB and partial nesting to 32 levels';

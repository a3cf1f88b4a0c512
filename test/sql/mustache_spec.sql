--
-- The official Mustache spec tests (github.com/mustache/spec, MIT licence),
-- read from ../shared/conformance/mustache at test time.  Lambdas and
-- inheritance are not implemented; dynamic names are.
--
\set comments `cat ../shared/conformance/mustache/comments.json`
\set delimiters `cat ../shared/conformance/mustache/delimiters.json`
\set interpolation `cat ../shared/conformance/mustache/interpolation.json`
\set inverted `cat ../shared/conformance/mustache/inverted.json`
\set partials `cat ../shared/conformance/mustache/partials.json`
\set sections `cat ../shared/conformance/mustache/sections.json`
\set dynamic_names `cat ../shared/conformance/mustache/~dynamic-names.json`

-- one spec test: does the rendered text equal the expected text?  An error
-- counts as a failure instead of aborting the whole file.
CREATE FUNCTION pg_temp.spec_passes(t jsonb) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RETURN notify_render(t->>'template', t->'data',
                         coalesce(t->'partials', '{}'))
           IS NOT DISTINCT FROM t->>'expected';
EXCEPTION WHEN others THEN
    RETURN false;
END
$$;

SELECT f.file,
       count(*) AS total,
       count(*) FILTER (WHERE ok) AS passed,
       count(*) FILTER (WHERE NOT ok) AS failed,
       coalesce(string_agg(t->>'name', ', ') FILTER (WHERE NOT ok), '') AS failed_tests
FROM (VALUES (1, 'comments', :'comments'::jsonb),
             (2, 'delimiters', :'delimiters'::jsonb),
             (3, 'interpolation', :'interpolation'::jsonb),
             (4, 'inverted', :'inverted'::jsonb),
             (5, 'partials', :'partials'::jsonb),
             (6, 'sections', :'sections'::jsonb),
             (7, '~dynamic-names', :'dynamic_names'::jsonb)) AS f(n, file, spec)
     CROSS JOIN LATERAL jsonb_array_elements(f.spec -> 'tests') AS t
     CROSS JOIN LATERAL pg_temp.spec_passes(t) AS ok
GROUP BY f.n, f.file
ORDER BY f.n;

-- the required files together
SELECT count(*) AS required_total,
       count(*) FILTER (WHERE pg_temp.spec_passes(t)) AS required_passed
FROM (VALUES (:'comments'::jsonb), (:'delimiters'::jsonb),
             (:'interpolation'::jsonb), (:'inverted'::jsonb),
             (:'partials'::jsonb), (:'sections'::jsonb)) AS f(spec)
     CROSS JOIN LATERAL jsonb_array_elements(f.spec -> 'tests') AS t;

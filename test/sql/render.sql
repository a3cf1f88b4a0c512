--
-- notify_render(): the Mustache renderer
--
-- errors are shown as "ERROR <sqlstate>: <message>" by this helper
CREATE FUNCTION pg_temp.try_render(tpl text, ctx jsonb, partials jsonb DEFAULT '{}')
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN notify_render(tpl, ctx, partials);
EXCEPTION WHEN others THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END
$$;

-- variables and HTML escaping of exactly & < > " '
SELECT notify_render('Hello, {{name}}!', '{"name": "world"}');
SELECT notify_render('{{x}}', jsonb_build_object('x', $$<a href="x">Tom & Jerry's</a> / = ` {}$$));
SELECT notify_render('{{{x}}}|{{& x}}|{{&x}}', jsonb_build_object('x', $$<b>"&'</b>$$));
SELECT notify_render('[{{missing}}][{{{missing}}}][{{a.b.c}}]', '{"a": {"b": 1}}');

-- Japanese text passes through unchanged, in templates and values
SELECT notify_render('{{name}}様', '{"name": "山田"}');
SELECT notify_render('{{名前}}様、ご注文{{#品目}}「{{.}}」{{/品目}}ありがとうございます。',
                     '{"名前": "山田 太郎", "品目": ["りんご", "みかん"]}');

-- numbers come out in jsonb's numeric text form
SELECT notify_render('{{a}} {{b}} {{c}} {{d}} {{e}} {{f}} {{g}}',
                     '{"a": 1.21, "b": 1.0, "c": 85, "d": -0.5, "e": 1e3,
                       "f": 12345678901234567890.000000000001, "g": 0}');

-- booleans, null, objects and arrays
SELECT notify_render('{{t}} {{f}} [{{n}}] {{o}} {{{a}}}',
                     '{"t": true, "f": false, "n": null, "o": {"k": "<v>"}, "a": [1, "x"]}');

-- dotted names and the context stack
SELECT notify_render('{{user.name}} {{#user}}{{name}} {{site}}{{/user}} {{user.missing.x}}',
                     '{"user": {"name": "Ann"}, "site": "example.org"}');

-- sections: lists, objects, truthiness (null, false, "", 0 and [] are falsey)
SELECT notify_render('{{#items}}- {{name}}: {{qty}}
{{/items}}{{^items}}no items
{{/items}}',
                     '{"items": [{"name": "pen", "qty": 2}, {"name": "ink", "qty": 1}]}');
SELECT notify_render('{{#items}}x{{/items}}{{^items}}no items{{/items}}', '{"items": []}');
SELECT string_agg(v || '=' || notify_render('{{#v}}T{{/v}}{{^v}}F{{/v}}', jsonb_build_object('v', v::jsonb)), ' ')
FROM unnest(ARRAY['null', 'false', 'true', '""', '"a"', '0', '0.0', '2', '[]', '[0]', '{}']) AS v;
SELECT notify_render('{{#list}}({{.}}){{/list}}', '{"list": [1, "two", null, true, [3]]}');

-- a context that is not an object
SELECT notify_render('{{.}}!', '"scalar"');
SELECT notify_render('{{#.}}<{{name}}>{{/.}}', '[{"name": "a"}, {"name": "b"}]');

-- comments, set delimiters, standalone lines, CRLF
SELECT notify_render('a{{! comment }}b
  {{! standalone }}
c{{=<% %>=}}<% x %>{{x}}<%={{ }}=%>{{x}}', '{"x": 1}');
SELECT notify_render(E'Dear {{name}},\r\n{{#lines}}\r\n* {{.}}\r\n{{/lines}}\r\nBye', '{"name": "Bo", "lines": ["a", "b"]}');

-- partials, including nested indentation of standalone partials
SELECT notify_render('{{>header}}Body{{>missing}}', '{"t": "Hi"}', '{"header": "<h1>{{t}}</h1>"}');
SELECT notify_render(E'<ul>\n  {{>items}}\n</ul>\n', '{"xs": ["a", "b"]}',
                     jsonb_build_object('items', E'{{#xs}}\n<li>\n  {{>item}}\n</li>\n{{/xs}}\n',
                                        'item', E'{{.}}\n'));
-- (empty lines of an indented partial stay empty)
SELECT to_json(notify_render(E'>\n  {{>p}}\n<', '{}', jsonb_build_object('p', E'a\n\nb\n')));
-- (blanks after a standalone tag are part of its line)
SELECT to_json(notify_render(E'{{#a}}  \nx\n  {{/a}}\t\n.', '{"a": true}'));
SELECT notify_render('[{{>p}}]', '{}', '{"p": null}');
SELECT notify_render('[{{>p}}]', '{}', NULL);
SELECT notify_render('[{{>*which}}]', '{"which": "b"}', '{"a": "A", "b": "B"}');

-- parse errors name the line and column of the offending tag
SELECT notify_render(E'Hello\n{{#a}}\n    {{#items}}x\n{{/a}}', '{}');
SELECT notify_render(E'line 1\nline 2\n    {{#items}}\n  x\n', '{}');
SELECT notify_render(E'{{#a}}\n{{/b}}', '{}');
SELECT notify_render('abc {{/a}}', '{}');
SELECT notify_render(E'ab\n  c {{name', '{}');
SELECT notify_render('{{{name}}', '{}');
SELECT notify_render('ok {{=<% %>=}} <% name', '{}');
SELECT notify_render('{{=<%%>=}}', '{}');
SELECT notify_render('{{=<% %> x=}}', '{}');
SELECT notify_render('{{= <% =%> =}}', '{}');
SELECT notify_render('{{}}', '{}');
SELECT notify_render('{{# }}{{/ }}', '{}');
SELECT notify_render('{{<parent}}{{/parent}}', '{}');
SELECT notify_render('x {{>p}}', '{}', jsonb_build_object('p', E'a\n {{#s}}'));
-- columns count characters, not bytes
SELECT notify_render('山田様 {{#a}}', '{}');
SELECT pg_temp.try_render('{{#a}}', '{}');

-- bad partials
SELECT notify_render('{{>p}}', '{}', '["p"]');
SELECT notify_render('{{>p}}', '{}', '{"p": 1}');

-- partial recursion is limited to 32 nested partials
SELECT notify_render('{{>self}}', '{}', '{"self": "x{{>self}}"}');
SELECT pg_temp.try_render('{{>self}}', '{}', '{"self": "x{{>self}}"}');
-- recursion that ends by itself is fine up to the limit: 32 levels of
-- partials here, one more fails
SELECT length(notify_render('{{>n}}', (repeat('{"c": ', 32) || 'false' || repeat('}', 32))::jsonb,
                            '{"n": "{{#c}}x{{>n}}{{/c}}"}'));
SELECT pg_temp.try_render('{{>n}}', (repeat('{"c": ', 33) || 'false' || repeat('}', 33))::jsonb,
                          '{"n": "{{#c}}x{{>n}}{{/c}}"}');

-- output is limited to 1 MB
SELECT length(notify_render('{{x}}', jsonb_build_object('x', repeat('a', 1048576))));
SELECT notify_render('{{x}}{{x}}', jsonb_build_object('x', repeat('a', 600000)));
SELECT pg_temp.try_render('{{x}}', jsonb_build_object('x', repeat('&', 300000)));
SELECT pg_temp.try_render('{{#l}}{{#l}}{{#l}}{{#l}}xxxxxxxxxx{{/l}}{{/l}}{{/l}}{{/l}}',
                          jsonb_build_object('l', (SELECT jsonb_agg(i) FROM generate_series(1, 20) i)));
SELECT pg_temp.try_render('{{>p}}', '{}', jsonb_build_object('p', repeat('y', 1048577)));

-- NULL arguments
SELECT notify_render(NULL, '{}');
SELECT notify_render('x', NULL);
SELECT pg_temp.try_render(NULL, '{}');
SELECT pg_temp.try_render('x', NULL);
SELECT notify_render('x', '{}', NULL);
SELECT notify_render('', '{}');

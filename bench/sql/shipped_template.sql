-- The message of the delivery benchmarks (bench/drain.sh, bench/latency.sh,
-- bench/memory.sh, bench/throughput.sh): the registered template
-- bench.shipped, a subject and 18 lines of text with variables, which the
-- worker renders for each row.
SELECT notify_template_put(template_key => 'bench.shipped', locale => 'en',
	subject => 'Your order {{order_id}} has shipped',
	text_body => E'Hi {{name}},\n\n'
		|| (SELECT string_agg(format('Line %s: order {{order_id}} left our warehouse today and reaches you by {{eta}}.', i), E'\n')
			FROM generate_series(1, 18) i)
		|| E'\n\nTracking: {{carrier}} {{tracking}}\n');

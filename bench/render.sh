#!/usr/bin/env bash
# Render benchmark: one ~2 kB HTML email (10 variables, a 20-item section)
# rendered by notify_render() in one backend, by the template registry's
# cached path (notify_template_render, what the worker uses), by mustache.js
# under node, and by pystache, on the same template and data in the same run.
# Reports renders/s (median of RUNS runs) and the ratios.
#
# Time is the CPU time of the rendering process (the backend's
# /proc/self/schedstat, node's process.cpuUsage(), Python's process_time()),
# so that other load on the machine does not skew the comparison; CLOCK=wall
# measures elapsed time instead.
#
#   bench/render.sh [psql connection options]      e.g. bench/render.sh -d mydb
#
# Needs: psql and a database with the notify extension, as a superuser or a
# member of pg_read_server_files for CLOCK=cpu (it writes nothing: the
# registry run is rolled back); node and npm (mustache is installed into a
# temporary folder); /usr/bin/python3 with Debian's python3-pystache
# (installed with apt-get when missing and running as root).
# Environment: RUNS (3), N_SQL (20000), N_JS (20000), N_PY (2000) renders per
# run, CLOCK (cpu or wall).
set -euo pipefail

RUNS=${RUNS:-3}
N_SQL=${N_SQL:-20000}
N_JS=${N_JS:-20000}
N_PY=${N_PY:-2000}
CLOCK=${CLOCK:-cpu}
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 "$@")
PYTHON=/usr/bin/python3

die() { echo "bench/render.sh: $*" >&2; exit 1; }
case $CLOCK in cpu|wall) ;; *) die "CLOCK is cpu or wall" ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/notify-bench-render.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

# ---- the template and the data ----
cat > "$WORK/template.mustache" <<'EOF'
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Order {{order_id}} confirmed</title></head>
<body style="margin:0;padding:0;background:#f4f5f7;font-family:Arial,Helvetica,sans-serif;color:#1f2933;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f5f7;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="background:#ffffff;border-radius:6px;">
<tr><td style="padding:24px 32px;border-bottom:1px solid #e4e7eb;">
<h1 style="margin:0;font-size:20px;">Thanks for your order, {{customer_name}}!</h1>
<p style="margin:8px 0 0;font-size:14px;color:#52606d;">Order <strong>{{order_id}}</strong> placed on {{order_date}}.</p>
</td></tr>
<tr><td style="padding:16px 32px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="font-size:14px;">
<tr><th align="left" style="padding:6px 0;">Item</th><th align="right">Qty</th><th align="right">Price</th></tr>
{{#items}}
<tr><td style="padding:6px 0;border-top:1px solid #f0f2f4;">{{name}} <span style="color:#9aa5b1;">({{sku}})</span>{{#gift}} &#127873;{{/gift}}</td>
<td align="right">{{qty}}</td><td align="right">{{price}} {{currency}}</td></tr>
{{/items}}
</table>
</td></tr>
<tr><td style="padding:8px 32px 24px;font-size:14px;">
<p style="margin:4px 0;">Subtotal: {{subtotal}} {{currency}}</p>
<p style="margin:4px 0;">Shipping: {{shipping}} {{currency}}</p>
<p style="margin:4px 0;">Tax: {{tax}} {{currency}}</p>
<p style="margin:4px 0;font-weight:bold;">Total: {{total}} {{currency}}</p>
</td></tr>
<tr><td style="padding:16px 32px;background:#f9fafb;font-size:12px;color:#7b8794;">
Questions? Reply to this email or write to <a href="mailto:{{support_email}}" style="color:#2563eb;">{{support_email}}</a>.<br>
{{company_name}} &middot; You receive this email because you placed an order.
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
EOF

# 10 top-level variables and 20 items, values that need HTML escaping included
{
	printf '{"customer_name": "Ann O'"'"'Brien", "order_id": "A-10042", "order_date": "2024-05-01",'
	printf ' "currency": "EUR", "subtotal": "412.80", "shipping": "4.90", "tax": "78.43", "total": "496.13",'
	printf ' "support_email": "help@example.com", "company_name": "Example Shop GmbH", "items": ['
	for i in $(seq 1 20); do
		[ "$i" -gt 1 ] && printf ', '
		printf '{"name": "Product %d <deluxe> & co", "sku": "SKU-%d", "qty": %d, "price": "%d.99", "gift": %s}' \
			"$i" $((1000 + i)) $((i % 3 + 1)) $(((i * 7) % 50)) "$([ $((i % 5)) -eq 0 ] && echo true || echo false)"
	done
	printf ']}\n'
} > "$WORK/context.json"

# ---- engines ----
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed for mustache.js"
if ! "$PYTHON" -c 'import pystache' 2>/dev/null; then
	[ "$(id -u)" -eq 0 ] || die "python3-pystache is missing (apt-get install python3-pystache)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pystache >/dev/null
fi
(cd "$WORK" && npm install --silent --no-audit --no-fund --prefix "$WORK/js" mustache >/dev/null 2>&1) ||
	die "npm install mustache failed"
"${PSQL[@]}" -c "SELECT 1 FROM pg_extension WHERE extname = 'notify'" | grep -q 1 ||
	die "the notify extension is not installed in this database"

cat > "$WORK/bench.js" <<'JS_END'
const Mustache = require(process.argv[2] + '/node_modules/mustache');
const fs = require('fs');
const [tplFile, ctxFile, n, runs, outFile, clock] = process.argv.slice(3);
const now = clock === 'cpu'
	? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; }
	: () => Number(process.hrtime.bigint()) / 1e9;
const tpl = fs.readFileSync(tplFile, 'utf8');
const ctx = JSON.parse(fs.readFileSync(ctxFile, 'utf8'));
fs.writeFileSync(outFile, Mustache.render(tpl, ctx));
for (let i = 0; i < 2000; i++) Mustache.render(tpl, ctx);	// warm-up; parses are cached
for (let r = 0; r < Number(runs); r++) {
	const t0 = now();
	let bytes = 0;
	for (let i = 0; i < Number(n); i++) bytes += Mustache.render(tpl, ctx).length;
	console.log((Number(n) / (now() - t0)).toFixed(0));
}
JS_END

cat > "$WORK/bench.py" <<'PY_END'
import json, sys, time
import pystache
tpl_file, ctx_file, n, runs, out_file, clock = sys.argv[1:]
now = time.process_time if clock == 'cpu' else time.perf_counter
tpl = open(tpl_file, encoding='utf-8').read()
ctx = json.load(open(ctx_file, encoding='utf-8'))
parsed = pystache.parse(tpl)            # compiled once, as the others do
renderer = pystache.Renderer()
open(out_file, 'w', encoding='utf-8').write(renderer.render(parsed, ctx))
for _ in range(200):
    renderer.render(parsed, ctx)
for _ in range(int(runs)):
    t0 = now()
    for _ in range(int(n)):
        renderer.render(parsed, ctx)
    print(round(int(n) / (now() - t0)))
PY_END

# The SQL side, in one psql session (one backend).  :now is the clock.
if [ "$CLOCK" = cpu ]; then
	now="(split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint / 1e9)"
else
	now="extract(epoch FROM clock_timestamp())"
fi
render_sql="SELECT count(notify_render(:'tpl', :'ctx'::jsonb)) FROM generate_series(1, :n)"
registry_sql="SELECT count((notify_template_render('bench.render', 'en', :v, :'ctx'::jsonb)).html_body) FROM generate_series(1, :n)"
timed() {	# timed LABEL QUERY: one timed run printing "LABEL renders/s"
	printf '%s\n' "SELECT $now AS t0 \\gset" "$2 \\g /dev/null" \
		"SELECT '$1 ' || round(:n / ($now - :t0));"
}
{
	printf '%s\n' "\\set tpl \`cat $WORK/template.mustache\`" \
		"\\set ctx \`cat $WORK/context.json\`" \
		"\\set n 1000" \
		"\\o $WORK/out.sql.html" \
		"SELECT notify_render(:'tpl', :'ctx'::jsonb);" \
		"\\o" \
		"$render_sql \\g /dev/null" \
		"\\set n $N_SQL"
	for _ in $(seq 1 "$RUNS"); do timed render "$render_sql"; done
	# the registry's path: a draft version rendered from the per-backend cache, rolled back
	printf '%s\n' "BEGIN;" \
		"SELECT notify_template_put('bench.render', 'en', 'Order {{{order_id}}}', NULL, :'tpl', activate => false) AS v \\gset"
	for _ in $(seq 1 "$RUNS"); do timed registry "$registry_sql"; done
	printf '%s\n' "ROLLBACK;"
} > "$WORK/bench.sql"

# ---- run ----
"${PSQL[@]}" -f "$WORK/bench.sql" > "$WORK/sql.txt"
node "$WORK/bench.js" "$WORK/js" "$WORK/template.mustache" "$WORK/context.json" \
	"$N_JS" "$RUNS" "$WORK/out.js.html" "$CLOCK" > "$WORK/js.txt"
"$PYTHON" "$WORK/bench.py" "$WORK/template.mustache" "$WORK/context.json" \
	"$N_PY" "$RUNS" "$WORK/out.py.html" "$CLOCK" > "$WORK/py.txt"

# ---- check the engines agree (pystache writes ' as &#x27;, the others &#39;) ----
printf '%s' "$(cat "$WORK/out.sql.html")" > "$WORK/a"
printf '%s' "$(cat "$WORK/out.js.html")" > "$WORK/b"
printf '%s' "$(sed "s/&#x27;/\&#39;/g" "$WORK/out.py.html")" > "$WORK/c"
if cmp -s "$WORK/a" "$WORK/b" && cmp -s "$WORK/a" "$WORK/c"; then same=yes; else same=NO; fi

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
runs_of() { grep "^$1 " "$WORK/sql.txt" | cut -d' ' -f2; }
sql=$(runs_of render | median)
reg=$(runs_of registry | median)
js=$(median < "$WORK/js.txt")
py=$(median < "$WORK/py.txt")

echo "template: $(wc -c < "$WORK/template.mustache") bytes, output: $(wc -c < "$WORK/a") bytes, outputs identical: $same"
echo "clock: $CLOCK time of the rendering process; $RUNS runs of $N_SQL (SQL), $N_JS (node), $N_PY (python) renders"
echo "PostgreSQL $("${PSQL[@]}" -c 'SHOW server_version'), node $(node --version)," \
	"mustache.js $(node -p "require('$WORK/js/node_modules/mustache/package.json').version")," \
	"pystache $("$PYTHON" -c 'import pystache; print(pystache.__version__)')"
printf '%-44s %-24s %8s\n' "engine" "runs (renders/s)" "median"
printf '%-44s %-24s %8s\n' "notify_render() (per-backend cache)" "$(runs_of render | tr '\n' ' ')" "$sql"
printf '%-44s %-24s %8s\n' "notify_template_render() (cached compile)" "$(runs_of registry | tr '\n' ' ')" "$reg"
printf '%-44s %-24s %8s\n' "mustache.js (node)" "$(tr '\n' ' ' < "$WORK/js.txt")" "$js"
printf '%-44s %-24s %8s\n' "pystache (python3)" "$(tr '\n' ' ' < "$WORK/py.txt")" "$py"
awk -v s="$sql" -v r="$reg" -v j="$js" -v p="$py" 'BEGIN {
	printf "notify_render / mustache.js = %.2f, notify_render / pystache = %.1f\n", s / j, s / p
	printf "registry path / mustache.js = %.2f, registry path / pystache = %.1f\n", r / j, r / p
}'

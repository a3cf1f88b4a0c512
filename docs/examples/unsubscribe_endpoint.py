#!/usr/bin/env python3
"""One-click unsubscribe endpoint for notify (RFC 8058 and RFC 2369).

Python standard library plus psycopg2 (Debian: apt-get install python3-psycopg2).

    NOTIFY_DSN='dbname=app user=unsubscribe_web host=/var/run/postgresql' \\
        python3 docs/examples/unsubscribe_endpoint.py --port 8080

with notify.unsubscribe_url = 'https://example.com/unsubscribe' pointing at
it (behind your TLS proxy).  It serves one path, /unsubscribe:

  POST /unsubscribe?token=T   what a mail client sends for RFC 8058 one-click
                              (body "List-Unsubscribe=One-Click"), and what
                              the button on the GET page sends: calls
                              notify_unsubscribe(T); 200 on success, also
                              when it was already done; 400 for a bad,
                              altered or expired token.
  GET  /unsubscribe?token=T   the footer link a person clicks: a page with a
                              button that POSTs.  A GET never unsubscribes,
                              since mail scanners follow links.

The database role needs nothing but
    GRANT EXECUTE ON FUNCTION notify_unsubscribe(text) TO unsubscribe_web;
(notify_unsubscribe is SECURITY DEFINER).  Tokens carry the recipient's
address (signed, not encrypted), so this server logs neither query strings
nor bodies.
"""
import argparse
import html
import os
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

DSN = os.environ.get("NOTIFY_DSN", "")
MAX_BODY = 64 * 1024


def unsubscribe(token):
    """Returns (status, message) after calling notify_unsubscribe(token)."""
    try:
        conn = psycopg2.connect(DSN)
    except psycopg2.Error as e:
        print("database connection failed: %s" % e, file=sys.stderr)
        return 503, "Please try again later."
    try:
        conn.autocommit = True  # one statement, its own transaction
        with conn.cursor() as cur:
            cur.execute("SELECT category, tenant FROM notify_unsubscribe(%s)", (token,))
            category, tenant = cur.fetchone()
        return 200, "You will no longer receive %s messages%s." % (
            category, " from %s" % tenant if tenant else "")
    except psycopg2.Error as e:
        if e.pgcode in ("22023", "22004"):  # invalid token: malformed, altered, expired, retired key
            return 400, "This unsubscribe link is not valid. It may have expired; use the link in a newer message."
        print("notify_unsubscribe failed: %s %s" % (e.pgcode, e.pgerror), file=sys.stderr)
        return 500, "Something went wrong; please try again later."
    finally:
        conn.close()


class Handler(BaseHTTPRequestHandler):
    server_version = "notify-unsubscribe/1"

    def token(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/unsubscribe":
            return None
        values = urllib.parse.parse_qs(url.query).get("token", [])
        return values[0] if len(values) == 1 and values[0] else None

    def reply(self, status, text, page=None):
        body = (page or "<!doctype html><meta charset=utf-8><title>Unsubscribe</title><p>%s\n"
                % html.escape(text)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        token = self.token()
        if token is None:
            return self.reply(404, "Not found.")
        self.reply(200, "", page=(
            "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>"
            "<form method=post action=\"/unsubscribe?token=%s\">"
            "<input type=hidden name=List-Unsubscribe value=One-Click>"
            "<p><button>Unsubscribe</button></form>\n") % html.escape(urllib.parse.quote(token, safe="")))

    def do_POST(self):
        token = self.token()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.reply(413, "Too large.")
        self.rfile.read(length)  # "List-Unsubscribe=One-Click" (urlencoded or multipart); not needed
        if token is None:
            return self.reply(404, "Not found.")
        status, text = unsubscribe(token)
        self.reply(status, text)

    def log_message(self, fmt, *args):
        # the request line holds the token, and so the address: log the path only
        sys.stderr.write("%s %s %s\n" % (self.command, urllib.parse.urlsplit(self.path).path,
                                         args[1] if len(args) > 1 else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    a = ap.parse_args()
    server = ThreadingHTTPServer((a.host, a.port), Handler)
    print("listening on http://%s:%d/unsubscribe" % (a.host, a.port), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

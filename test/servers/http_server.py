#!/usr/bin/python3
"""HTTP test server for the notify test suite, demo and benchmarks.

Python 3 standard library only; run it with /usr/bin/python3.  It listens
on 127.0.0.1 only, speaks HTTP/1.1 with keep-alive (one thread per
connection), records every request it answers, and can be told, through a
JSON control file that is re-read for every request, to misbehave the way
a real webhook receiver or email provider might.

Command line
------------
  --port N              TCP port, 0 (default) = let the kernel pick one
  --port-file PATH      write the bound port here once listening (atomic)
  --pid-file PATH       write our PID here (atomic); removed on clean exit
  --log FILE.jsonl      append one JSON line per request (see below)
  --no-log-bodies       log body_length but not the body (benchmarks)
  --control-file PATH   behaviour control (see below); missing file = normal
  --latency-ms N        sleep N ms before every response (control file's
                        top-level "latency_ms" overrides it)
  --max-body BYTES      larger request bodies get 413 (default 10485760)
  --verify-webhook-secret whsec_...
                        verify the Standard Webhooks signature of requests
                        whose path starts with /webhook against this secret
                        (repeatable: valid when any secret verifies any v1
                        signature) and log the outcome
  --reject-invalid-signatures
                        answer 401 to /webhook requests whose signature does
                        not verify (unless a control rule answers first)
  --postmark-token TOKEN   the only X-Postmark-Server-Token accepted
                           (default: any non-empty token)
  --sendgrid-key KEY       the only "Authorization: Bearer" key accepted
                           (default: any non-empty key)
  --idle-timeout SEC    close idle keep-alive connections after SEC s (300)
  --idle-reset          close them with a TCP RST (SO_LINGER 0) instead of
                        a FIN, as a crashed or aggressive server would
  --watch-pid PID       exit when process PID is gone (test-runner guard)

Log lines
---------
One JSON object per request, written (one write(2) each) just before the
response is sent or the connection reset, so that a client holding its
response always finds the request in the log:
  seq             1, 2, ... in the order requests arrived
  time            unix time (float) when the request head was read
  done            unix time when the response was ready to go (after any
                  latency and stall)
  method, path    as on the request line (path includes any query)
  headers         {lower-case name: value}; repeated fields joined by ", "
  body            the body as text if it is UTF-8, else base64 of its bytes
  body_encoding   "utf-8" or "base64"; body_length: its length in bytes
  status          the status answered, null after a reset
  action          "respond", "stall" (then responded) or "reset"
  rule            index of the control rule that decided, or null
  emulation       "postmark", "sendgrid", "slack" or null
  error           why an emulation refused the request, if it did
  provider_message_id   the MessageID / X-Message-Id an emulation gave
  conn, conn_seq  connection number (from 1) and the request's position on
                  it: equal conn = keep-alive reuse
  client_gone     true when the client had closed the connection by the
                  end of a stall (nothing is sent then), or while sending
                  its body
  signature_valid, signature_secret, signature_error, timestamp_skew
                  only for /webhook requests with --verify-webhook-secret:
                  whether it verified, the index of the secret that did,
                  why not, and now minus webhook-timestamp in seconds

Control file
------------
JSON object: one rule at top level, or a list of rules, plus settings::

  {"status": 500}
  {"status": 429, "retry_after": 2, "count": 1}
  {"mode": "stall", "seconds": 30}
  {"mode": "reset", "path": "/webhook"}
  {"rules": [{"path": "/webhook/slow", "latency_ms": 200},
             {"path": "/postmark", "status": 503}],
   "latency_ms": 50}

Rule keys:
  path          path prefix the rule applies to (default: every path)
  method        only this method (default: any)
  status        answer this status code (100..599) instead of the normal
                response; "mode": "NNN" means the same
  mode          "respond" (default when status is given), "stall",
                "reset" or "normal" (carry on normally: the built-in
                response, with this rule's latency_ms)
  body          response body: a string as is, anything else as JSON
                (default: none for 204/304/1xx, else a short JSON object)
  content_type  of the body (default text/plain for strings, else
                application/json)
  headers       {name: value} extra response headers
  retry_after   seconds: adds "Retry-After: N"; status defaults to 429
  retry_after_date  true: send Retry-After as an HTTP-date instead
  seconds       how long a stall lasts (default 30)
  then          after a stall: "normal" (default), "reset", or a status
  count         apply this many times, then skip the rule (fall through
                to later rules and the normal response); absent = always
  latency_ms    extra delay before this rule's response
  close         true: "Connection: close" and close after the response
Top-level "latency_ms" is added before every response.  Rules are tried in
order ("rules" first, then the top-level rule if it has "status", "mode"
or "retry_after"); the first one that matches and has count left decides.
Counts start afresh whenever the file's content, inode or mtime changes
(NotifyTest::HTTP adds a serial to every write).  An unreadable or invalid
control file is reported on stderr and treated as empty.

Wire behaviour
--------------
  respond   status line, headers (Content-Length always), body.
  stall     nothing is sent for `seconds`, then `then` happens; a client
            that gave up meanwhile is logged with client_gone.
  reset     the socket is closed with SO_LINGER 0: the client sees a TCP
            RST instead of a response.
The normal response is 200 "ok" (text/plain), except on the emulated
paths below.  "Expect: 100-continue" is answered; chunked request bodies
are accepted.

Emulated providers (POST only; 405 otherwise)
---------------------------------------------
/postmark/email - Postmark's "send a single email" API.
  Request: header X-Postmark-Server-Token; Content-Type application/json;
  a JSON object with From (string, an address or "Name <address>"), To
  (comma-separated addresses, at most 50 recipients with Cc and Bcc),
  Subject (string), TextBody and/or HtmlBody (at least one non-empty),
  optional Cc, Bcc, ReplyTo, Tag, MessageStream (strings), Headers (list
  of {"Name": string, "Value": string}), TrackOpens (boolean),
  TrackLinks (None, HtmlAndText, HtmlOnly, TextOnly), Metadata (object of
  strings), Attachments (list of {Name, Content, ContentType[, ContentID]}).
  Any other field is refused (stricter than Postmark: catches typos).
  Answers:
    200 {"To": <To>, "SubmittedAt": <ISO 8601>, "MessageID": <uuid>,
         "ErrorCode": 0, "Message": "OK"}
    401 {"ErrorCode": 10, "Message": ...}   token missing or not accepted
    415 {"ErrorCode": 402, ...}             Content-Type not JSON
    422 {"ErrorCode": 402, "Message": "Received invalid JSON input."}
    422 {"ErrorCode": 300, "Message": "Invalid email request: <why>"}
    422 {"ErrorCode": 406, "Message": ...}  a recipient whose local part
                                            starts with "inactive"

/sendgrid/v3/mail/send - SendGrid's v3 Mail Send API.
  Request: "Authorization: Bearer <key>"; Content-Type application/json;
  a JSON object with personalizations (1 to 1000 objects, each with to:
  a non-empty list of {"email"[, "name"]}, optional cc, bcc (same shape),
  subject, headers (object of strings), custom_args, substitutions,
  dynamic_template_data, send_at), from {"email"[, "name"]}, subject
  (unless every personalization has one, or template_id is given),
  content (unless template_id): a non-empty list of {"type", "value"}
  with non-empty strings, text/plain first if present and text/html
  next; optional reply_to, headers, categories, custom_args, send_at,
  batch_id, asm, ip_pool_name, mail_settings, tracking_settings,
  attachments, template_id.  Any other field is refused.
  Answers:
    202 (empty body) with header X-Message-Id
    401 {"errors": [{"message": ..., "field": null, "help": null}]}
    400 {"errors": [{"message": ..., "field": ..., "help": null}, ...]}
    415 when Content-Type is not JSON

/slack/... - a Slack incoming webhook: a JSON object with a non-empty
  "text" string or a non-empty "blocks" list; 200 "ok", else 400
  "invalid_payload" (not JSON) or "no_text".
"""

import argparse
import base64
import datetime
import email.utils
import hashlib
import hmac
import json
import os
import re
import secrets as rnd
import select
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NO_BODY_STATUS = (204, 304)
EMAIL_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def warn(fmt, *args):
    sys.stderr.write("http_server[%d]: %s\n" % (os.getpid(), fmt % args))
    sys.stderr.flush()


class Log:
    def __init__(self, path, bodies):
        self.path = path
        self.bodies = bodies
        self.lock = threading.Lock()
        self.seq = 0

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def write(self, entry):
        if not self.path:
            return
        line = (json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write(): readers never see a torn line
        finally:
            os.close(fd)


# ---------------------------------------------------------------- control


class ControlError(ValueError):
    pass


def _status(value, what):
    try:
        code = int(value)
    except (TypeError, ValueError):
        raise ControlError("%s: bad status %r" % (what, value))
    if not 100 <= code <= 599:
        raise ControlError("%s: status %d out of range" % (what, code))
    return code


class Rule:
    def __init__(self, spec, index):
        what = "rule %d" % index
        if not isinstance(spec, dict):
            raise ControlError("%s is not an object" % what)
        self.index = index
        self.path = str(spec.get("path", ""))
        self.method = spec.get("method")
        if self.method is not None:
            self.method = str(self.method).upper()
        mode = spec.get("mode")
        self.status = None
        if mode is None:
            mode = "respond"
        mode = str(mode).lower()
        if re.fullmatch(r"[1-5][0-9][0-9]", mode):
            self.status = int(mode)
            mode = "respond"
        if mode not in ("respond", "stall", "reset", "normal"):
            raise ControlError("%s: unknown mode %r" % (what, mode))
        self.mode = mode
        if "status" in spec:
            self.status = _status(spec["status"], what)
        self.retry_after = spec.get("retry_after")
        if self.retry_after is not None:
            try:
                self.retry_after = float(self.retry_after)
            except (TypeError, ValueError):
                raise ControlError("%s: bad retry_after" % what)
            if self.status is None:
                self.status = 429
        self.retry_after_date = bool(spec.get("retry_after_date", False))
        if self.mode == "respond" and self.status is None:
            raise ControlError("%s: no status to respond with" % what)
        self.body = spec.get("body")
        self.content_type = spec.get("content_type")
        self.headers = spec.get("headers") or {}
        if not isinstance(self.headers, dict):
            raise ControlError("%s: headers must be an object" % what)
        try:
            self.seconds = float(spec.get("seconds", 30))
            self.latency_ms = float(spec.get("latency_ms", 0))
        except (TypeError, ValueError):
            raise ControlError("%s: bad seconds or latency_ms" % what)
        then = spec.get("then", "normal")
        self.then_status = None
        if isinstance(then, int) or (isinstance(then, str) and then.isdigit()):
            self.then_status = _status(then, what)
            then = "respond"
        elif then not in ("normal", "reset"):
            raise ControlError("%s: bad then %r" % (what, then))
        self.then = then
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ControlError("%s: count must be a non-negative integer" % what)
        self.count = count
        self.close = bool(spec.get("close", False))

    def matches(self, method, path):
        if self.method is not None and self.method != method:
            return False
        return path.startswith(self.path)


class Generation:
    """One parsed version of the control file and its remaining counts."""

    def __init__(self, rules=(), latency_ms=None):
        self.rules = list(rules)
        self.latency_ms = latency_ms
        self.remaining = {r.index: r.count for r in self.rules}
        self.lock = threading.Lock()

    def decide(self, method, path):
        with self.lock:
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                left = self.remaining[rule.index]
                if left is not None:
                    if left <= 0:
                        continue
                    self.remaining[rule.index] = left - 1
                return rule
        return None


class Control:
    def __init__(self, path):
        self.path = path
        self.key = None
        self.gen = Generation()
        self.lock = threading.Lock()

    def current(self):
        if not self.path:
            return self.gen
        with self.lock:
            try:
                with open(self.path, "rb") as f:
                    st = os.fstat(f.fileno())
                    raw = f.read()
            except FileNotFoundError:
                key, raw = None, None
            except OSError as e:
                key, raw = ("error", str(e)), None
                if key != self.key:
                    warn("cannot read control file %s: %s", self.path, e)
            else:
                key = (st.st_ino, st.st_mtime_ns, raw)
            if key == self.key:
                return self.gen
            self.key = key
            self.gen = Generation()
            if raw is None:
                return self.gen
            try:
                spec = json.loads(raw.decode("utf-8"))
                if not isinstance(spec, dict):
                    raise ControlError("top level is not an object")
                rules = spec.get("rules", [])
                if not isinstance(rules, list):
                    raise ControlError("rules is not a list")
                rules = list(rules)
                if any(k in spec for k in ("status", "mode", "retry_after")):
                    rules.append({k: v for k, v in spec.items()
                                  if k not in ("rules", "latency_ms")})
                parsed = [Rule(r, i) for i, r in enumerate(rules)]
                latency = spec.get("latency_ms")
                if latency is not None:
                    latency = float(latency)
                self.gen = Generation(parsed, latency)
            except (ValueError, TypeError, UnicodeDecodeError) as e:
                warn("invalid control file %s (ignored): %s", self.path, e)
            return self.gen


# ---------------------------------------------------------------- webhooks


def decode_whsec(secret):
    if not secret.startswith("whsec_"):
        raise ValueError("webhook secret must start with whsec_")
    return base64.b64decode(secret[6:], validate=True)


def verify_webhook(keys, headers, body, now):
    """Standard Webhooks v1 check; returns the log fields."""
    out = {"signature_valid": False}
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sig = headers.get("webhook-signature")
    missing = [n for n, v in (("webhook-id", msg_id), ("webhook-timestamp", ts),
                              ("webhook-signature", sig)) if v is None]
    if missing:
        out["signature_error"] = "missing " + ", ".join(missing)
        return out
    if not re.fullmatch(r"[0-9]+", ts):
        out["signature_error"] = "webhook-timestamp is not an integer"
        return out
    out["timestamp_skew"] = round(now - int(ts), 3)
    # header values arrive decoded as ISO-8859-1: encoding back gives the bytes
    signed = ("%s.%s." % (msg_id, ts)).encode("latin-1") + body
    candidates = [s[3:].encode("latin-1") for s in sig.split() if s.startswith("v1,")]
    for i, key in enumerate(keys):
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        if any(hmac.compare_digest(c, expected) for c in candidates):
            out["signature_valid"] = True
            out["signature_secret"] = i
            return out
    out["signature_error"] = "no v1 signature matches" if candidates else "no v1 signature"
    return out


# ---------------------------------------------------------------- emulations


def _is_json(headers):
    ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
    return ctype == "application/json"


def _addresses(value):
    """Addresses of a Postmark address list ("a@x, Name <b@y>")."""
    out = []
    for part in value.split(","):
        part = part.strip()
        m = re.search(r"<([^<>]*)>\s*$", part)
        out.append(m.group(1).strip() if m else part)
    return out


POSTMARK_FIELDS = {"From", "To", "Cc", "Bcc", "Subject", "Tag", "HtmlBody",
                   "TextBody", "ReplyTo", "Headers", "TrackOpens", "TrackLinks",
                   "Metadata", "Attachments", "MessageStream"}


def postmark_check(req):
    """Why a Postmark send request is invalid, or None."""
    if not isinstance(req, dict):
        return "the request is not a JSON object"
    unknown = sorted(set(req) - POSTMARK_FIELDS)
    if unknown:
        return "unknown field %s" % unknown[0]
    for field in ("From", "To", "Subject"):
        if field not in req:
            return "%s is required" % field
    for field in ("From", "To", "Cc", "Bcc", "Subject", "Tag", "HtmlBody",
                  "TextBody", "ReplyTo", "MessageStream", "TrackLinks"):
        if field in req and not isinstance(req[field], str):
            return "%s must be a string" % field
    from_addr = _addresses(req["From"])
    if len(from_addr) != 1 or not EMAIL_RE.match(from_addr[0]):
        return "From is not a valid address"
    n = 0
    for field in ("To", "Cc", "Bcc"):
        if field in req and (field == "To" or req[field] != ""):
            for a in _addresses(req[field]):
                if not EMAIL_RE.match(a):
                    return "%s contains an invalid address" % field
                n += 1
    if n > 50:
        return "more than 50 recipients"
    if not req.get("TextBody") and not req.get("HtmlBody"):
        return "provide either email TextBody or HtmlBody or both"
    if "MessageStream" in req and req["MessageStream"] == "":
        return "MessageStream must not be empty"
    if "Headers" in req:
        hs = req["Headers"]
        if not isinstance(hs, list):
            return "Headers must be a list"
        for h in hs:
            if (not isinstance(h, dict) or set(h) != {"Name", "Value"}
                    or not isinstance(h["Name"], str) or not isinstance(h["Value"], str)
                    or not h["Name"]):
                return "Headers entries must be {\"Name\": string, \"Value\": string}"
    if "TrackOpens" in req and not isinstance(req["TrackOpens"], bool):
        return "TrackOpens must be a boolean"
    if "TrackLinks" in req and req["TrackLinks"] not in ("None", "HtmlAndText", "HtmlOnly", "TextOnly"):
        return "TrackLinks must be None, HtmlAndText, HtmlOnly or TextOnly"
    if "Metadata" in req:
        md = req["Metadata"]
        if not isinstance(md, dict) or not all(isinstance(v, str) for v in md.values()):
            return "Metadata must be an object of strings"
    if "Attachments" in req:
        att = req["Attachments"]
        if not isinstance(att, list):
            return "Attachments must be a list"
        for a in att:
            if (not isinstance(a, dict) or not {"Name", "Content", "ContentType"} <= set(a)
                    or not set(a) <= {"Name", "Content", "ContentType", "ContentID"}):
                return "Attachments entries need Name, Content and ContentType"
    return None


def postmark(headers, body, token):
    """(status, body object, extra log fields) for /postmark/email."""
    supplied = headers.get("x-postmark-server-token")
    if not supplied:
        return 401, {"ErrorCode": 10, "Message": "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for either X-Postmark-Server-Token or X-Postmark-Account-Token."}, {"error": "no server token"}
    if token is not None and supplied != token:
        return 401, {"ErrorCode": 10, "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token."}, {"error": "wrong server token"}
    if not _is_json(headers):
        return 415, {"ErrorCode": 402, "Message": "Content-Type must be application/json."}, {"error": "content type is not JSON"}
    try:
        req = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return 422, {"ErrorCode": 402, "Message": "Received invalid JSON input."}, {"error": "invalid JSON"}
    why = postmark_check(req)
    if why:
        return 422, {"ErrorCode": 300, "Message": "Invalid email request: %s" % why}, {"error": why}
    for field in ("To", "Cc", "Bcc"):
        for a in _addresses(req.get(field) or ""):
            if a.lower().startswith("inactive"):
                return 422, {"ErrorCode": 406, "Message": "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: %s. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression." % a}, {"error": "inactive recipient"}
    mid = str(uuid.uuid4())
    submitted = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return 200, {"To": req["To"], "SubmittedAt": submitted, "MessageID": mid,
                 "ErrorCode": 0, "Message": "OK"}, {"provider_message_id": mid}


SENDGRID_FIELDS = {"personalizations", "from", "reply_to", "reply_to_list", "subject",
                   "content", "attachments", "template_id", "headers", "categories",
                   "custom_args", "send_at", "batch_id", "asm", "ip_pool_name",
                   "mail_settings", "tracking_settings"}
SENDGRID_PERSONALIZATION_FIELDS = {"to", "cc", "bcc", "from", "subject", "headers",
                                   "substitutions", "dynamic_template_data",
                                   "custom_args", "send_at"}


def _sg_error(errors, message, field):
    errors.append({"message": message, "field": field, "help": None})


def _sg_email_object(errors, obj, field):
    if not isinstance(obj, dict) or not isinstance(obj.get("email"), str):
        _sg_error(errors, "The email parameter is required.", field + ".email")
        return
    if not EMAIL_RE.match(obj["email"]):
        _sg_error(errors, "Does not contain a valid address.", field + ".email")
    if "name" in obj and not isinstance(obj["name"], str):
        _sg_error(errors, "The name must be a string.", field + ".name")
    if set(obj) - {"email", "name"}:
        _sg_error(errors, "Unknown parameter.", field)


def _sg_string_map(errors, obj, field):
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        _sg_error(errors, "Must be an object of strings.", field)


def sendgrid_check(req):
    """The list of SendGrid-style errors of a v3 mail/send request."""
    errors = []
    if not isinstance(req, dict):
        _sg_error(errors, "The request body must be a JSON object.", None)
        return errors
    for k in sorted(set(req) - SENDGRID_FIELDS):
        _sg_error(errors, "Unknown parameter.", k)
    has_template = isinstance(req.get("template_id"), str) and req["template_id"] != ""
    pers = req.get("personalizations")
    all_have_subject = False
    if not isinstance(pers, list) or not pers:
        _sg_error(errors, "The personalizations field is required and must have at least one personalization.", "personalizations")
    elif len(pers) > 1000:
        _sg_error(errors, "The personalizations field may have at most 1000 personalizations.", "personalizations")
    else:
        all_have_subject = True
        for i, p in enumerate(pers):
            f = "personalizations.%d" % i
            if not isinstance(p, dict):
                _sg_error(errors, "Each personalization must be an object.", f)
                all_have_subject = False
                continue
            for k in sorted(set(p) - SENDGRID_PERSONALIZATION_FIELDS):
                _sg_error(errors, "Unknown parameter.", "%s.%s" % (f, k))
            to = p.get("to")
            if not isinstance(to, list) or not to:
                _sg_error(errors, "The to array is required for all personalization objects, and must have at least one email object with a valid email address.", f + ".to")
            else:
                for j, t in enumerate(to):
                    _sg_email_object(errors, t, "%s.to.%d" % (f, j))
            for kind in ("cc", "bcc"):
                if kind in p:
                    if not isinstance(p[kind], list):
                        _sg_error(errors, "Must be an array of email objects.", "%s.%s" % (f, kind))
                    else:
                        for j, t in enumerate(p[kind]):
                            _sg_email_object(errors, t, "%s.%s.%d" % (f, kind, j))
            if "from" in p:
                _sg_email_object(errors, p["from"], f + ".from")
            if "subject" in p:
                if not isinstance(p["subject"], str) or p["subject"] == "":
                    _sg_error(errors, "The subject must be a non-empty string.", f + ".subject")
            else:
                all_have_subject = False
            for k in ("headers", "substitutions", "custom_args"):
                if k in p:
                    _sg_string_map(errors, p[k], "%s.%s" % (f, k))
            if "dynamic_template_data" in p and not isinstance(p["dynamic_template_data"], dict):
                _sg_error(errors, "Must be an object.", f + ".dynamic_template_data")
            if "send_at" in p and not isinstance(p["send_at"], int):
                _sg_error(errors, "Must be an integer.", f + ".send_at")
    if "from" not in req:
        _sg_error(errors, "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.", "from")
    else:
        _sg_email_object(errors, req["from"], "from")
    if "reply_to" in req:
        _sg_email_object(errors, req["reply_to"], "reply_to")
    if "subject" in req:
        if not isinstance(req["subject"], str) or req["subject"] == "":
            _sg_error(errors, "The subject must be a non-empty string.", "subject")
    elif not all_have_subject and not has_template:
        _sg_error(errors, "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.", "subject")
    content = req.get("content")
    if content is None:
        if not has_template:
            _sg_error(errors, "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.", "content")
    elif not isinstance(content, list) or not content:
        _sg_error(errors, "The content value must be a non-empty array of content objects.", "content")
    else:
        types = []
        for i, c in enumerate(content):
            f = "content.%d" % i
            if (not isinstance(c, dict) or set(c) != {"type", "value"}
                    or not isinstance(c["type"], str) or not c["type"]):
                _sg_error(errors, "Each content object needs a type and a value.", f)
                continue
            if not isinstance(c["value"], str) or c["value"] == "":
                _sg_error(errors, "The content value must be a string at least one character in length.", f + ".value")
            types.append(c["type"].lower())
        if "text/plain" in types and types[0] != "text/plain" or \
                "text/html" in types and types.index("text/html") != (1 if "text/plain" in types else 0):
            _sg_error(errors, "If present, text/plain and text/html may only be provided in that order: text/plain first, then text/html, then any other content.", "content")
    if "headers" in req:
        _sg_string_map(errors, req["headers"], "headers")
    if "custom_args" in req:
        _sg_string_map(errors, req["custom_args"], "custom_args")
    if "categories" in req:
        cats = req["categories"]
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats) or len(cats) > 10:
            _sg_error(errors, "Categories must be an array of at most 10 strings.", "categories")
    return errors


def sendgrid(headers, body, key):
    """(status, body object or None, response headers, log fields)."""
    auth = headers.get("authorization") or ""
    m = re.fullmatch(r"Bearer\s+(\S+)", auth.strip())
    if not m or (key is not None and m.group(1) != key):
        return 401, {"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked", "field": None, "help": None}]}, {}, {"error": "authorization"}
    if not _is_json(headers):
        return 415, {"errors": [{"message": "Content-Type should be application/json.", "field": None, "help": None}]}, {}, {"error": "content type is not JSON"}
    try:
        req = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return 400, {"errors": [{"message": "Bad Request", "field": None, "help": None}]}, {}, {"error": "invalid JSON"}
    errors = sendgrid_check(req)
    if errors:
        return 400, {"errors": errors}, {}, {"error": "; ".join(
            "%s: %s" % (e["field"], e["message"]) for e in errors)}
    mid = base64.urlsafe_b64encode(rnd.token_bytes(16)).decode().rstrip("=")
    return 202, None, {"X-Message-Id": mid}, {"provider_message_id": mid}


def slack(headers, body):
    try:
        req = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return 400, "invalid_payload", {"error": "invalid JSON"}
    if not isinstance(req, dict):
        return 400, "invalid_payload", {"error": "not an object"}
    text_ok = isinstance(req.get("text"), str) and req["text"] != ""
    blocks_ok = isinstance(req.get("blocks"), list) and len(req["blocks"]) > 0
    if not text_ok and not blocks_ok:
        return 400, "no_text", {"error": "no text or blocks"}
    return 200, "ok", {}


# ---------------------------------------------------------------- server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "notify-test-http/1"

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        srv = self.server
        with srv.conn_lock:
            srv.conn_counter += 1
            self.conn_id = srv.conn_counter
            srv.connections.add(self.connection)
        self.conn_seq = 0
        self.connection.settimeout(srv.args.idle_timeout)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self):
        if self.server.args.idle_reset:
            # wait for the next request ourselves, to reset an idle connection
            try:
                ready = select.select([self.connection], [], [], self.server.args.idle_timeout)[0]
            except (OSError, ValueError):
                ready = [self.connection]
            if not ready:
                self.reset()
                return
        super().handle_one_request()

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)

    def log_message(self, format, *args):  # no access log on stderr
        pass

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    # -- request body --------------------------------------------------------

    def read_body(self):
        limit = self.server.args.max_body
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("eof in chunked body")
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(n))
                self.rfile.readline(8)
                size += n
                if size > limit:
                    return None
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        if length > limit:
            return None
        return self.rfile.read(length) if length else b""

    # -- responses -------------------------------------------------------------

    def send(self, status, body=b"", content_type=None, headers=None, close=False):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        if status not in NO_BODY_STATUS and status >= 200:
            if content_type and body:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        # head and body in one write: two small writes would meet Nagle and
        # the client's delayed ACK (40 ms per response on keep-alive)
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and status not in NO_BODY_STATUS and status >= 200:
            self._headers_buffer.append(body)
        self.flush_headers()

    def peer_closed(self):
        """Whether the client has closed its end (checked after a stall)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def reset(self):
        """Close with SO_LINGER 0: the peer gets a TCP RST, no response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        except OSError:
            pass

    def rule_response(self, rule, status):
        body = rule.body
        ctype = rule.content_type
        if body is None:
            body = "" if status in NO_BODY_STATUS else {"status": status}
        if not isinstance(body, str):
            body = json.dumps(body)
            ctype = ctype or "application/json"
        headers = dict(rule.headers)
        if rule.retry_after is not None:
            if rule.retry_after_date:
                headers["Retry-After"] = email.utils.formatdate(
                    time.time() + rule.retry_after, usegmt=True)
            else:
                ra = rule.retry_after
                headers["Retry-After"] = str(int(ra)) if ra == int(ra) else str(ra)
        return status, body, ctype or "text/plain; charset=utf-8", headers

    def normal_response(self, path, body, entry):
        """(status, body, content type, headers) of the built-in behaviour."""
        args = self.server.args
        emulated = None
        for prefix, name in (("/postmark/email", "postmark"),
                             ("/sendgrid/v3/mail/send", "sendgrid"),
                             ("/slack/", "slack")):
            if path.startswith(prefix):
                emulated = name
        if emulated is None:
            if (path.startswith("/webhook") and args.reject_invalid_signatures
                    and entry.get("signature_valid") is False):
                return 401, json.dumps({"error": "invalid signature"}), "application/json", {}
            return 200, "ok", "text/plain; charset=utf-8", {}
        entry["emulation"] = emulated
        if self.command != "POST":
            return 405, json.dumps({"error": "method not allowed"}), "application/json", {"Allow": "POST"}
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        if emulated == "postmark":
            status, obj, fields = postmark(hdrs, body, args.postmark_token)
            entry.update(fields)
            return status, json.dumps(obj), "application/json", {}
        if emulated == "sendgrid":
            status, obj, extra, fields = sendgrid(hdrs, body, args.sendgrid_key)
            entry.update(fields)
            return status, (json.dumps(obj) if obj is not None else ""), "application/json", extra
        status, text, fields = slack(hdrs, body)
        entry.update(fields)
        return status, text, "text/plain; charset=utf-8", {}

    def handle_any(self):
        srv = self.server
        start = time.time()
        self.conn_seq += 1
        path = self.path
        entry = {
            "seq": srv.log.next_seq(),
            "time": start,
            "method": self.command,
            "path": path,
            "conn": self.conn_id,
            "conn_seq": self.conn_seq,
            "peer": list(self.client_address),
            "status": None,
            "action": "respond",
            "rule": None,
            "emulation": None,
        }
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        entry["headers"] = headers
        try:
            body = self.read_body()
        except (ConnectionError, ValueError, OSError) as e:
            entry["error"] = "could not read the body: %s" % e
            entry["client_gone"] = True
            self.close_connection = True
            entry["done"] = time.time()
            srv.log.write(entry)
            return
        if body is None:
            entry.update(status=413, body_length=None)
            self.send(413, "request body too large", "text/plain", close=True)
            entry["done"] = time.time()
            srv.log.write(entry)
            return
        entry["body_length"] = len(body)
        if srv.log.bodies:
            try:
                entry["body"] = body.decode("utf-8")
                entry["body_encoding"] = "utf-8"
            except UnicodeDecodeError:
                entry["body"] = base64.b64encode(body).decode()
                entry["body_encoding"] = "base64"

        if srv.webhook_keys and path.startswith("/webhook"):
            entry.update(verify_webhook(srv.webhook_keys, headers, body, start))

        gen = srv.control.current()
        rule = gen.decide(self.command, path.split("?")[0])
        latency = gen.latency_ms if gen.latency_ms is not None else srv.args.latency_ms
        latency += rule.latency_ms if rule else 0
        if latency > 0:
            time.sleep(latency / 1000.0)

        action = "normal"
        status = None
        if rule is not None:
            entry["rule"] = rule.index
            action = rule.mode
            status = rule.status
            if action == "stall":
                entry["action"] = "stall"
                entry["stalled"] = rule.seconds
                time.sleep(rule.seconds)
                action = rule.then
                status = rule.then_status
                if self.peer_closed():
                    entry["client_gone"] = True
                    self.close_connection = True
                    entry["done"] = time.time()
                    srv.log.write(entry)
                    return

        # The line is written before the response goes out: a client that
        # has its response always finds the request in the log.
        if action == "reset":
            entry["action"] = "reset"
            entry["done"] = time.time()
            srv.log.write(entry)
            self.reset()
            return
        if action == "respond":
            resp = self.rule_response(rule, status)
        else:
            resp = self.normal_response(path.split("?")[0], body, entry)
        status, rbody, ctype, rheaders = resp
        entry["status"] = status
        entry["done"] = time.time()
        srv.log.write(entry)
        try:
            self.send(status, rbody, ctype, rheaders, close=bool(rule and rule.close))
        except (ConnectionError, OSError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, args):
        self.args = args
        self.log = Log(args.log, not args.no_log_bodies)
        self.control = Control(args.control_file)
        self.webhook_keys = [decode_whsec(s) for s in args.verify_webhook_secret]
        self.conn_lock = threading.Lock()
        self.conn_counter = 0
        self.connections = set()
        super().__init__(("127.0.0.1", args.port), Handler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, OSError)):
            return  # a client went away or idled out: not a problem
        super().handle_error(request, client_address)

    def abort_connections(self):
        with self.conn_lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def parse_args(argv):
    p = argparse.ArgumentParser(description="HTTP test server (127.0.0.1 only)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--pid-file")
    p.add_argument("--log")
    p.add_argument("--no-log-bodies", action="store_true")
    p.add_argument("--control-file")
    p.add_argument("--latency-ms", type=float, default=0)
    p.add_argument("--max-body", type=int, default=10 * 1024 * 1024)
    p.add_argument("--verify-webhook-secret", action="append", default=[])
    p.add_argument("--reject-invalid-signatures", action="store_true")
    p.add_argument("--postmark-token")
    p.add_argument("--sendgrid-key")
    p.add_argument("--idle-timeout", type=float, default=300)
    p.add_argument("--idle-reset", action="store_true")
    p.add_argument("--watch-pid", type=int)
    args = p.parse_args(argv)
    for s in args.verify_webhook_secret:
        try:
            decode_whsec(s)
        except ValueError:
            p.error("--verify-webhook-secret expects whsec_ followed by base64")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.pid_file:
        write_atomic(args.pid_file, "%d\n" % os.getpid())
    stop = threading.Event()
    try:
        server = Server(args)
        port = server.server_address[1]
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        if args.port_file:
            write_atomic(args.port_file, "%d\n" % port)
        while not stop.wait(0.5):
            if args.watch_pid:
                try:
                    os.kill(args.watch_pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
        server.shutdown()
        server.server_close()
        server.abort_connections()
    finally:
        for path in (args.pid_file, args.port_file):
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""SMTP test server for the notify test suite and demo.

Built on aiosmtpd (Debian 12: python3-aiosmtpd 1.4.3); run it with
/usr/bin/python3.  It listens on 127.0.0.1 only, stores every accepted
message and can be told, through a JSON control file that is re-read for
every transaction, to misbehave in ways a real mail server might.

Command line
------------
  --port N              TCP port, 0 (default) = let the kernel pick one
  --port-file PATH      write the bound port here once listening (atomic)
  --pid-file PATH       write our PID here (atomic); removed on clean exit
  --maildir DIR         store accepted messages as DIR/NNNNNN.eml (raw bytes
                        as received, after dot-unstuffing) and append one JSON
                        line per message to DIR/log.jsonl; every firing of a
                        non-accept rule is appended to DIR/events.jsonl
  --control-file PATH   behaviour control (see below); missing file = accept
  --delay-ms N          sleep N ms before answering end-of-DATA
  --max-size BYTES      SIZE limit (default 33554432, 0 = unlimited)
  --max-line-length N   longest accepted line incl. CRLF (default 1001,
                        RFC 5321 limit 1000 + transparency dot)
  --auth USER:PASS      accept AUTH PLAIN/LOGIN (over plain TCP) with these
                        credentials; repeatable.  Without it AUTH is not
                        advertised.
  --auth-required       refuse MAIL before successful AUTH (530)
  --hostname NAME       name in the greeting / EHLO (default localhost)
  --no-pipelining       do not offer PIPELINING (RFC 2920) in the EHLO reply.
                        By default it is offered, as Postfix and most relays
                        do; aiosmtpd reads commands one after another either
                        way, so a group of pipelined commands is served in
                        order.  Each stored message records whether its
                        client pipelined ("pipelined": RCPT TO had already
                        arrived when MAIL FROM was answered) and whether
                        the next transaction's commands came right after
                        the message ("next_pipelined": they had arrived when
                        the end of the message was answered).
  --data-without-rcpt   answer DATA with 354 even when no recipient was
                        accepted, read the message and refuse it with
                        "554 5.5.1 Error: no valid recipients" (RFC 2920
                        3.1 allows this; aiosmtpd answers 503 by default).
                        Each time is logged in events.jsonl (stage
                        "datacmd", mode "no-recipients", size = octets of
                        message received).
  --idle-timeout SEC    close idle connections after SEC s (default 300)
  --watch-pid PID       exit when process PID is gone (test-runner guard)

Control file
------------
JSON object, either a single rule at top level or a list of rules::

  {"mode": "accept"}
  {"mode": "451", "count": 1}
  {"mode": "550"}
  {"mode": "drop"}
  {"mode": "stall", "seconds": 30}
  {"rules": [{"rcpt_prefix": "bounce", "mode": "550"}], "delay_ms": 100}

Rule keys:
  mode      "accept" | "drop" | "stall" | a reply code "4xx"/"5xx"
  at        stage(s) where the rule applies: "connect", "mail", "rcpt",
            "datacmd" (the DATA command, before 354) or "data" (end of
            data, after the message was received).  String or list.
            Default: "rcpt" for reply codes, "data" for drop/stall, every
            stage for accept.
  count     fire at most this many times (per server generation of the
            control file), then the rule is skipped; absent = unlimited.
            Counting is per transaction (per connection at "connect"): a
            rule that fired keeps applying for the rest of that transaction
            without being counted again.
  seconds   stall duration (default 30)
  then      what a stall does afterwards: "accept" (default: carry on
            normally), "drop", or a reply code (answered with its message)
  message   reply text after the code (default per code, e.g.
            451 "4.3.0 Try again later", 550 "5.1.1 User unknown")
  close     true: close the connection after sending the reply code
            (default true for 421 and at "connect")
  rcpt_prefix  only recipients whose local part starts with this
               (case-insensitive); rcpt_regex: re.search on the address.
               At "rcpt" the current recipient must match, at
               "datacmd"/"data" any accepted recipient; never matches at
               "connect"/"mail".
Top-level "delay_ms" overrides --delay-ms.  Rules are tried in order
("rules" first, then the top-level rule if it has a "mode"); the first
live matching rule at a stage wins; no match means normal behaviour.
The control file is re-read when a transaction starts (MAIL) and when a
connection is accepted; a new file content/inode/mtime resets the counts.
An unreadable or invalid control file is reported on stderr and treated
as {"mode": "accept"}.

Wire behaviour
--------------
  reply code  the stage's command is answered with "<code> <message>".
  drop        the server closes the TCP connection (FIN) instead of
              answering; at "data" the whole message has been received
              but is not stored.
  stall       the server does not answer for `seconds`, then carries on
              normally (at "data": stores and answers 250), or does what
              "then" says.  If the client closes the connection during the
              stall, nothing is stored -- but note that libcurl, after its
              own timeout, sends QUIT and waits for a reply instead of
              closing, so a stalled "data" stage still ends with a stored
              message unless "then" is "drop" or a code.
Accepted messages are answered "250 2.0.0 Ok: queued as <QUEUEID>"
(uppercase hex, unique).
"""

import argparse
import asyncio
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, syntax

log = logging.getLogger("notify-smtp")

STAGES = ("connect", "mail", "rcpt", "datacmd", "data")

DEFAULT_TEXT = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.1 Mailbox unavailable, try again later",
    451: "4.3.0 Try again later",
    452: "4.3.1 Insufficient system storage",
    454: "4.7.0 Temporary authentication failure",
    500: "5.5.2 Syntax error",
    530: "5.7.0 Authentication required",
    550: "5.1.1 User unknown",
    551: "5.1.6 User not local",
    552: "5.3.4 Message size exceeds fixed limit",
    553: "5.1.3 Bad destination mailbox address syntax",
    554: "5.7.1 Transaction failed",
}


def _now():
    return time.time()


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_jsonl(path, obj):
    line = (json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write() per line: readers never see a torn line
    finally:
        os.close(fd)


def header_value(raw, name):
    """Return the (unfolded) value of the first header NAME, or None."""
    if raw.startswith(b"\r\n") or raw.startswith(b"\n"):
        return None
    m = re.search(rb"\r?\n\r?\n", raw)
    head = raw[: m.start()] if m else raw
    text = re.sub(r"\r?\n[ \t]+", " ", head.decode("utf-8", "replace"))
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name:
            return value.strip()
    return None


class ControlError(ValueError):
    pass


class Rule:
    def __init__(self, spec, index):
        if not isinstance(spec, dict):
            raise ControlError("rule %d is not an object" % index)
        self.index = index
        mode = str(spec.get("mode", "accept")).strip().lower()
        self.code = None
        if mode in ("accept", "drop", "stall"):
            pass
        elif re.fullmatch(r"[45][0-9][0-9]", mode):
            self.code = int(mode)
        else:
            raise ControlError("rule %d: unknown mode %r" % (index, mode))
        self.mode = mode
        at = spec.get("at")
        if at is None:
            if self.code is not None:
                at = ["rcpt"]
            elif mode == "accept":
                at = list(STAGES)
            else:
                at = ["data"]
        elif isinstance(at, str):
            at = [at]
        for stage in at:
            if stage not in STAGES:
                raise ControlError("rule %d: unknown stage %r" % (index, stage))
        self.at = frozenset(at)
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ControlError("rule %d: count must be a non-negative integer" % index)
        self.count = count
        try:
            self.seconds = float(spec.get("seconds", 30))
        except (TypeError, ValueError):
            raise ControlError("rule %d: bad seconds" % index)
        self.then = None
        if mode == "stall" and spec.get("then") not in (None, "accept"):
            then = dict(spec)
            then.pop("count", None)
            then["mode"] = spec["then"]
            then.pop("then")
            self.then = Rule(then, index)
            if self.then.mode == "stall":
                raise ControlError("rule %d: then cannot be stall" % index)
        self.text = spec.get("message")
        if self.text is None and self.code is not None:
            self.text = DEFAULT_TEXT.get(
                self.code, "4.0.0 Temporary failure" if self.code < 500 else "5.0.0 Permanent failure")
        self.close = bool(spec.get("close", self.code == 421))
        self.rcpt_prefix = spec.get("rcpt_prefix")
        if self.rcpt_prefix is not None:
            self.rcpt_prefix = str(self.rcpt_prefix).lower()
        rx = spec.get("rcpt_regex")
        try:
            self.rcpt_regex = re.compile(rx, re.IGNORECASE) if rx is not None else None
        except re.error as e:
            raise ControlError("rule %d: bad rcpt_regex: %s" % (index, e))

    @property
    def has_rcpt_filter(self):
        return self.rcpt_prefix is not None or self.rcpt_regex is not None

    def rcpt_matches(self, address):
        if self.rcpt_prefix is not None:
            if not address.partition("@")[0].lower().startswith(self.rcpt_prefix):
                return False
        if self.rcpt_regex is not None and not self.rcpt_regex.search(address):
            return False
        return True

    def matches(self, stage, rcpts):
        if stage not in self.at:
            return False
        if not self.has_rcpt_filter:
            return True
        return any(self.rcpt_matches(r) for r in rcpts)

    def reply(self):
        return "%d %s" % (self.code, self.text)


class Generation:
    """One parsed version of the control file plus its remaining counts."""

    def __init__(self, rules=(), delay_ms=None):
        self.rules = list(rules)
        self.delay_ms = delay_ms
        self.remaining = {r.index: r.count for r in self.rules}

    def decide(self, stage, fired, rcpts=()):
        """First live rule matching STAGE; FIRED is the transaction's latch set."""
        for rule in self.rules:
            if not rule.matches(stage, rcpts):
                continue
            if rule.index in fired:
                return rule
            left = self.remaining[rule.index]
            if left is not None:
                if left <= 0:
                    continue
                self.remaining[rule.index] = left - 1
            fired.add(rule.index)
            return rule
        return None


class Control:
    def __init__(self, path):
        self.path = path
        self.key = None
        self.gen = Generation()

    def current(self):
        if not self.path:
            return self.gen
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                raw = f.read()
        except FileNotFoundError:
            key = None
            raw = None
        except OSError as e:
            key = ("error", str(e))
            raw = None
            if key != self.key:
                log.warning("cannot read control file %s: %s", self.path, e)
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
            if "mode" in spec:
                top = {k: v for k, v in spec.items() if k not in ("rules", "delay_ms")}
                rules.append(top)
            parsed = [Rule(r, i) for i, r in enumerate(rules)]
            delay = spec.get("delay_ms")
            if delay is not None:
                delay = float(delay)
            self.gen = Generation(parsed, delay)
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            log.warning("invalid control file %s (treated as accept): %s", self.path, e)
        return self.gen


class Store:
    def __init__(self, maildir):
        self.maildir = maildir
        self.seq = 0
        if maildir:
            os.makedirs(maildir, exist_ok=True)
            for name in os.listdir(maildir):
                m = re.fullmatch(r"(\d+)\.eml", name)
                if m:
                    self.seq = max(self.seq, int(m.group(1)))

    def next_queue_id(self):
        self.seq += 1
        return self.seq, "%s%05X" % (secrets.token_hex(3).upper(), self.seq)

    def save(self, seq, queue_id, session, envelope):
        raw = envelope.original_content or b""
        entry = {
            "seq": seq,
            "time": _now(),
            "queue_id": queue_id,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "size": len(raw),
            "message_id": header_value(raw, "message-id"),
            "subject": header_value(raw, "subject"),
            "helo": session.host_name,
            "peer": list(session.peer) if session.peer else None,
            "auth_user": session.auth_data if session.authenticated else None,
            "pipelined": bool(getattr(envelope, "notify_pipelined", False)),
            "next_pipelined": bool(getattr(envelope, "notify_next_pipelined", False)),
        }
        if not self.maildir:
            return entry
        name = "%06d.eml" % seq
        entry["file"] = name
        path = os.path.join(self.maildir, name)
        tmp = os.path.join(self.maildir, ".%s.tmp" % name)
        with open(tmp, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
        append_jsonl(os.path.join(self.maildir, "log.jsonl"), entry)
        return entry

    def event(self, **fields):
        if self.maildir:
            fields["time"] = _now()
            append_jsonl(os.path.join(self.maildir, "events.jsonl"), fields)


class _Drop(Exception):
    pass


class Handler:
    def __init__(self, control, store, delay_ms, credentials, pipelining=True):
        self.control = control
        self.store = store
        self.delay_ms = delay_ms
        self.credentials = credentials
        self.pipelining = pipelining

    # -- rule application -------------------------------------------------

    async def _apply(self, server, stage, rule, envelope=None, rcpt=None):
        """Run RULE at STAGE.  Return a reply string, or None to go on normally.

        For drop (and replies with close) this never returns: the transport
        is closed and connection_lost() cancels the session task.
        """
        if rule is None or rule.mode == "accept":
            return None
        self.store.event(
            stage=stage, mode=rule.mode, rule=rule.index,
            mail_from=getattr(envelope, "mail_from", None),
            rcpt_tos=list(getattr(envelope, "rcpt_tos", []) or []),
            rcpt=rcpt,
            peer=list(server.session.peer) if server.session and server.session.peer else None)
        if rule.mode == "stall":
            await asyncio.sleep(rule.seconds)
            if rule.then is None:
                return None
            rule = rule.then
        if rule.mode == "drop":
            await self._close_and_wait(server)
        reply = rule.reply()
        if rule.close or stage == "connect":
            await server.push(reply)
            await self._close_and_wait(server)
        return reply

    @staticmethod
    async def _close_and_wait(server):
        if server.transport is not None:
            server.transport.close()
        # connection_lost() cancels the session task, which ends this wait.
        await asyncio.sleep(3600)
        raise _Drop()

    @staticmethod
    def _latch(envelope):
        fired = getattr(envelope, "notify_fired", None)
        if fired is None:
            fired = envelope.notify_fired = set()
        return fired

    def _gen(self, envelope):
        gen = getattr(envelope, "notify_gen", None)
        if gen is None:
            gen = envelope.notify_gen = self.control.current()
        return gen

    # -- stage entry points -------------------------------------------------

    async def on_connect(self, server):
        gen = self.control.current()
        rule = gen.decide("connect", set())
        await self._apply(server, "connect", rule)

    async def on_data_command(self, server):
        env = server.envelope
        rule = self._gen(env).decide("datacmd", self._latch(env), env.rcpt_tos)
        return await self._apply(server, "datacmd", rule, env)

    # -- aiosmtpd hooks -------------------------------------------------------

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # the 5-argument hook must set it
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # Did the client send more (RCPT TO) before it had our answer?
        envelope.notify_pipelined = bool(server._reader._buffer)
        envelope.notify_gen = self.control.current()  # one snapshot per transaction
        envelope.notify_fired = set()
        rule = envelope.notify_gen.decide("mail", envelope.notify_fired)
        reply = await self._apply(server, "mail", rule, envelope)
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rule = self._gen(envelope).decide("rcpt", self._latch(envelope), [address])
        reply = await self._apply(server, "rcpt", rule, envelope, rcpt=address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        # Did the client send its next commands before it had our answer?
        envelope.notify_next_pipelined = bool(server._reader._buffer)
        gen = self._gen(envelope)
        delay = gen.delay_ms if gen.delay_ms is not None else self.delay_ms
        if delay:
            await asyncio.sleep(delay / 1000.0)
        rule = gen.decide("data", self._latch(envelope), envelope.rcpt_tos)
        reply = await self._apply(server, "data", rule, envelope)
        if reply is not None:
            return reply
        seq, queue_id = self.store.next_queue_id()
        self.store.save(seq, queue_id, session, envelope)
        return "250 2.0.0 Ok: queued as %s" % queue_id

    async def handle_RSET(self, server, session, envelope):
        return "250 2.0.0 Ok"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if self.credentials.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)


class NotifySMTP(SMTP):
    """aiosmtpd session with hooks for the connect and DATA-command stages."""

    connections = set()

    async def _handle_client(self):
        await self.event_handler.on_connect(self)
        await super()._handle_client()

    data_without_rcpt = False

    @syntax("DATA")
    async def smtp_DATA(self, arg):
        if (self.session.host_name and not arg and self.envelope.rcpt_tos
                and not (self._auth_required and not self.session.authenticated)):
            reply = await self.event_handler.on_data_command(self)
            if reply is not None:
                await self.push(reply)
                return
        if (self.data_without_rcpt and self.session.host_name and not arg
                and not self.envelope.rcpt_tos):
            await self._data_without_rcpt()
            return
        await super().smtp_DATA(arg)

    async def _data_without_rcpt(self):
        """354 although no recipient was accepted; read the message, refuse it."""
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        size = 0
        while True:
            line = await self._reader.readuntil(b"\r\n")
            if line == b".\r\n":
                break
            size += len(line)
        self.event_handler.store.event(
            stage="datacmd", mode="no-recipients", size=size,
            mail_from=self.envelope.mail_from,
            peer=list(self.session.peer) if self.session.peer else None)
        self._set_post_data_state()
        await self.push("554 5.5.1 Error: no valid recipients")

    def connection_made(self, transport):
        super().connection_made(transport)
        if self._original_transport is None:
            NotifySMTP.connections.add(self)

    def connection_lost(self, error):
        NotifySMTP.connections.discard(self)
        super().connection_lost(error)


def parse_args(argv):
    p = argparse.ArgumentParser(description="SMTP test server (127.0.0.1 only)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--pid-file")
    p.add_argument("--maildir")
    p.add_argument("--control-file")
    p.add_argument("--delay-ms", type=float, default=0)
    p.add_argument("--max-size", type=int, default=2 ** 25)
    p.add_argument("--max-line-length", type=int, default=1001)
    p.add_argument("--auth", action="append", default=[], metavar="USER:PASS")
    p.add_argument("--auth-required", action="store_true")
    p.add_argument("--hostname", default="localhost")
    p.add_argument("--no-pipelining", dest="pipelining", action="store_false")
    p.add_argument("--data-without-rcpt", action="store_true")
    p.add_argument("--idle-timeout", type=float, default=300)
    p.add_argument("--watch-pid", type=int)
    args = p.parse_args(argv)
    for cred in args.auth:
        if ":" not in cred:
            p.error("--auth expects USER:PASS")
    if args.auth_required and not args.auth:
        p.error("--auth-required needs --auth")
    return args


def _exception_handler(loop, context):
    exc = context.get("exception")
    if isinstance(exc, (ConnectionError, asyncio.CancelledError, _Drop)):
        return  # a client (or we) closed a connection mid-session: not a problem
    loop.default_exception_handler(context)


async def serve(args):
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_exception_handler)
    credentials = dict(c.split(":", 1) for c in args.auth)
    handler = Handler(Control(args.control_file), Store(args.maildir),
                      args.delay_ms, credentials, pipelining=args.pipelining)
    NotifySMTP.line_length_limit = args.max_line_length
    NotifySMTP.data_without_rcpt = args.data_without_rcpt

    def factory():
        return NotifySMTP(
            handler,
            data_size_limit=args.max_size or None,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=args.hostname,
            ident="ESMTP notify-test-smtp",
            timeout=args.idle_timeout,
            auth_required=args.auth_required,
            auth_require_tls=not credentials,
            authenticator=handler.authenticate if credentials else None,
            loop=loop,
        )

    server = await loop.create_server(factory, host="127.0.0.1", port=args.port,
                                      backlog=1024, reuse_address=True)
    port = server.sockets[0].getsockname()[1]

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    if args.port_file:
        write_atomic(args.port_file, "%d\n" % port)

    async def watch(pid):
        while not stop.is_set():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                stop.set()
                return
            except PermissionError:
                pass
            await asyncio.sleep(1)

    watcher = loop.create_task(watch(args.watch_pid)) if args.watch_pid else None

    await stop.wait()
    server.close()
    for conn in list(NotifySMTP.connections):
        if conn.transport is not None:
            conn.transport.abort()
    await server.wait_closed()
    await asyncio.sleep(0.05)  # let cancelled sessions unwind
    if watcher:
        watcher.cancel()
    return port


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="smtp_server[%(process)d] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")  # aiosmtpd warns about AUTH without TLS
    if args.pid_file:
        write_atomic(args.pid_file, "%d\n" % os.getpid())
    try:
        asyncio.run(serve(args))
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

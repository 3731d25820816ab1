#!/usr/bin/python3
"""A webhook receiver for tests and the demo (stdlib only).

As a program, it listens on loopback, verifies every delivery's Standard
Webhooks signature against the secrets it is given, answers according to a
plan, and appends one JSON line per delivery to a log:

    webhook_receiver.py --port 0 --secret whsec_... --log deliveries.jsonl \
        [--plan 500,500,500] [--default 200] [--tls-cert C --tls-key K] [--print]

It prints "listening on PORT" once ready.  A plan item is an HTTP status
("500"), a status with a Retry-After ("429:2"), a redirect ("302", with a
Location header), or "never" (read the request, then never answer).  Once
the plan is used up, every delivery gets --default.  POST /_control with
{"plan": [...], "default": "..."} replaces both at run time.

As a module, Receiver starts that program as a subprocess and reads its log.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_S = 300
NEVER_S = 3600


def verify(secrets, msg_id, timestamp, body, signature_header, now=None):
    """True when one of the v1 signatures matches one of the secrets and the
    timestamp is within five minutes of now."""
    now = time.time() if now is None else now
    try:
        if abs(now - int(timestamp)) > TOLERANCE_S:
            return False
    except (TypeError, ValueError):
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    offered = [s.split(",", 1)[1] for s in (signature_header or "").split()
               if s.startswith("v1,")]
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(
            hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, o) for o in offered):
            return True
    return False


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.plan = list(args.plan)
        self.default = args.default
        self.secrets = args.secret
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.print = args.print
        self.stop = threading.Event()

    def next_answer(self):
        with self.lock:
            return self.plan.pop(0) if self.plan else self.default


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/_control":
            cmd = json.loads(body)
            with state.lock:
                state.plan = [str(p) for p in cmd.get("plan", [])]
                state.default = str(cmd.get("default", state.default))
            return self.answer(200)
        answer = state.next_answer()
        h = self.headers
        ok = verify(state.secrets, h.get("webhook-id"), h.get("webhook-timestamp"),
                    body, h.get("webhook-signature"))
        record = {"t": time.time(), "path": self.path, "answer": answer,
                  "id": h.get("webhook-id"), "timestamp": h.get("webhook-timestamp"),
                  "signature": h.get("webhook-signature"), "valid": ok,
                  "content_type": h.get("Content-Type"), "host": h.get("Host"),
                  "body": body.decode("utf-8", "replace")}
        if state.log:
            state.log.write(json.dumps(record) + "\n")
        if state.print:
            show(record)
        if answer == "never":
            state.stop.wait(NEVER_S)
            self.close_connection = True
            return
        code, _, retry_after = answer.partition(":")
        headers = {}
        if retry_after:
            headers["Retry-After"] = retry_after
        if code.startswith("3"):
            headers["Location"] = "/elsewhere"
        self.answer(int(code), headers)

    def answer(self, code, headers=None):
        payload = b"ok\n" if code < 300 else b"receiver says no\n"
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def show(record):
    """Prints a delivery the way the demo shows it."""
    print("  webhook-id:        %s" % record["id"])
    print("  webhook-timestamp: %s" % record["timestamp"])
    print("  webhook-signature: %s  (%s)" % (
        record["signature"], "VALID" if record["valid"] else "INVALID"))
    body = json.loads(record["body"])
    print("  body:")
    for line in json.dumps(body, indent=2).splitlines():
        print("    " + line)
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret", action="append", required=True)
    ap.add_argument("--log")
    ap.add_argument("--plan", type=lambda s: [p for p in s.split(",") if p], default=[])
    ap.add_argument("--default", default="200")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--print", action="store_true")
    args = ap.parse_args()

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)

    def stop(signum, frame):
        server.state.stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print("listening on %d" % server.server_address[1], flush=True)
    server.serve_forever()


class Receiver:
    """The receiver as a subprocess: start(), deliveries(), set_plan(), stop()."""

    def __init__(self, workdir, secrets, plan=(), default="200", port=0,
                 tls=None):
        self.log_path = os.path.join(workdir, "deliveries-%d.jsonl" % id(self))
        self.secrets = list(secrets)
        self.plan = list(plan)
        self.default = default
        self.port = port
        self.tls = tls
        self.proc = None

    def start(self):
        argv = [sys.executable, os.path.abspath(__file__), "--port", str(self.port),
                "--log", self.log_path, "--default", self.default]
        for s in self.secrets:
            argv += ["--secret", s]
        if self.plan:
            argv += ["--plan", ",".join(self.plan)]
        if self.tls:
            argv += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError("receiver did not start: %r" % line)
        self.port = int(line.split()[-1])
        return self

    def url(self, path="/hook", host="127.0.0.1"):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", host, self.port, path)

    def set_plan(self, plan, default="200"):
        data = json.dumps({"plan": list(plan), "default": default}).encode()
        ctx = None
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls[0])
            ctx.check_hostname = False
        req = urllib.request.Request(self.url("/_control"), data=data, method="POST")
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            r.read()

    def deliveries(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait(self, count, timeout=30, pred=None):
        """Waits until COUNT deliveries (matching PRED) arrived; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            got = [d for d in self.deliveries() if pred is None or pred(d)]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("waited %ss for %d deliveries, got %d: %r"
                                     % (timeout, count, len(got), got))
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()


if __name__ == "__main__":
    main()

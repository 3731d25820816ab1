#!/usr/bin/python3
"""Webhooks end to end: the real daemon, a real PostgreSQL and real HTTP
receiver processes on loopback (webhook_receiver.py) that verify every
signature.  Covers the faults of the webhook contract: 500 three times
then 200, a receiver down for the whole horizon while ingest goes on,
kill -9 with deliveries pending, 20 slices drifting in one evaluation, a
receiver that never answers, 410, 429 with Retry-After, redirects, the
SSRF guard, HTTPS verification, secret rotation, and driftctl."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.request

import numpy as np

from driftd_harness import SOURCE_ROOT, Env, free_port, model_section, record
from webhook_receiver import Receiver, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
DRIFTCTL = os.path.join(SOURCE_ROOT, "tools", "driftctl")
# A model the daemon requires; the delivery tests send test events.
IDLE_MODEL = model_section("idle", 4, reference=50, window=50)

env = None


def setUpModule():
    global env
    env = Env().__enter__()


def tearDownModule():
    env.__exit__(None, None, None)


def hook(name, url, **keys):
    keys.setdefault("secret", SECRET)
    lines = [f"[webhook.{name}]", f"url = {url}"]
    lines += [f"{k.replace('__', '.')} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def send_test(d, name):
    req = urllib.request.Request(
        f"http://127.0.0.1:{d.http_port}/v1/webhooks/{name}/test", data=b"",
        method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202, r.status
        return json.loads(r.read())["id"]


def delivery(d, mid):
    rows = d.pg.psql("SELECT status, attempts, last_http_status, last_error "
                     "FROM driftd.webhook_deliveries WHERE id = '%s'" % mid)
    return rows[0] if rows else None


def wait_status(d, mid, statuses, timeout=30):
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = delivery(d, mid)
        if row and row[0] in statuses:
            return row
        time.sleep(0.05)
    raise AssertionError(f"{mid}: {row} never reached {statuses}:\n"
                         f"{d.log_text()[-3000:]}")


def attempts(d, mid):
    return d.pg.psql(
        "SELECT attempt, coalesce(http_status, 0), error, duration_ms, "
        "extract(epoch FROM started_at) FROM driftd.webhook_attempts "
        "WHERE delivery_id = '%s' ORDER BY id" % mid)


def driftctl(d, *args):
    return subprocess.run(["/usr/bin/python3", DRIFTCTL, "--config", d.config, *args],
                          capture_output=True, text=True, timeout=60)


class Fixture(unittest.TestCase):
    """Receivers and daemons of one test class, stopped at its end."""

    @classmethod
    def setUpClass(cls):
        cls.procs = []
        try:
            cls.start()
        except BaseException:
            for p in cls.procs:
                if hasattr(p, "log_text"):
                    print(p.log_text()[-4000:])
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            p.close() if hasattr(p, "close") else p.stop()

    @classmethod
    def receiver(cls, **kw):
        r = Receiver(env.tmp.name, kw.pop("secrets", [SECRET]), **kw).start()
        cls.procs.append(r)
        return r

    @classmethod
    def daemon(cls, models):
        d = env.driftd(models)
        cls.procs.append(d)
        return d.start()


# ---- drift: 20 slices in one evaluation, 500 x 3, cooldown ------------------

REGIONS = [f"r{i:02d}" for i in range(20)]
DIM = 8
REF = 200
LIVE = 30


def batch(rng, n_per_slice, shift, **kw):
    """Round robin over the 20 regions, so all slices fill up together."""
    lines = []
    for i in range(n_per_slice * len(REGIONS)):
        e = rng.normal(size=DIM) + 1.0
        e[: DIM // 2] += shift
        lines.append(record("enc", e, {"region": REGIONS[i % len(REGIONS)]}, **kw))
    return lines


class DriftWebhook(Fixture):
    """Time-closed windows, so the 20 regions and * close in one evaluation.
    References come as role=reference records, so * (which sees every
    record) holds no window until the live ones, and its 600 live records
    stay below its count limit (4 references) until the tick."""

    @classmethod
    def start(cls):
        cls.r = cls.receiver(plan=["500", "500", "500"])
        cls.d = cls.daemon(
            model_section("enc", DIM, slice_by="region", reference=REF, window=0,
                          interval="1s", permutations=200, alpha=0.01,
                          extra="window.min_size = %d\non_drift = retrain\n" % LIVE)
            + hook("retrain", cls.r.url("/hooks/retrain"), allow_addresses="loopback",
                   retry__initial="100ms", cooldown="1h"))
        rng = np.random.default_rng(20261201)
        replies = cls.d.send_lines(batch(rng, REF, 0.0, role="reference"))
        assert replies[-1]["rejected"] == 0, replies
        replies = cls.d.send_lines(batch(rng, LIVE, 3.0))
        assert replies[-1]["rejected"] == 0, replies
        cls.deliveries = cls.r.wait(4, timeout=30)
        cls.first_id = cls.deliveries[0]["id"]
        # A second drifting evaluation, inside the cooldown.
        cls.d.send_lines(batch(rng, LIVE, 3.0))
        cls.suppressed = cls.d.wait_rows("SELECT id, event, model, endpoint, body "
                                         "FROM driftd.webhook_suppressed", 1)

    def test_one_webhook_lists_all_20_slices(self):
        body = json.loads(self.deliveries[-1]["body"])
        self.assertEqual(body["type"], "drift.detected")
        data = body["data"]
        self.assertEqual(data["model"], "enc")
        slices = {s["slice"]: s for s in data["slices"]}
        self.assertEqual(set(slices), {"region=" + r for r in REGIONS} | {"*"})
        self.assertEqual(data["slices_total"], 21)
        for s in slices.values():
            self.assertGreaterEqual(s["window_id"], 1)
            self.assertLessEqual(s["window_start"], s["window_end"])
            self.assertIn(s["n"], (LIVE, LIVE * len(REGIONS)))
            tests = {t["test"]: t for t in s["tests"]}
            self.assertIn("mmd", tests)
            self.assertLessEqual(tests["mmd"]["p_value"], tests["mmd"]["threshold"])
        # One event for the evaluation: every delivery carried the same id.
        self.assertEqual({d["id"] for d in self.deliveries}, {self.first_id})
        rows = self.d.pg.psql("SELECT id, event, model, status FROM "
                              "driftd.webhook_deliveries WHERE model = 'enc'")
        self.assertEqual(rows, [[self.first_id, "drift.detected", "enc", "delivered"]])

    def test_query_in_the_payload_finds_the_rows(self):
        query = json.loads(self.deliveries[-1]["body"])["data"]["query"]
        rows = self.d.pg.psql("SELECT DISTINCT slice FROM (%s) q WHERE drifted" % query)
        self.assertEqual(len(rows), 21)

    def test_500_three_times_then_delivered_on_the_fourth(self):
        self.assertEqual([d["answer"] for d in self.deliveries], ["500", "500", "500", "200"])
        # Same id, same body bytes, a valid signature every time.
        self.assertEqual(len({d["body"] for d in self.deliveries}), 1)
        self.assertTrue(all(d["valid"] for d in self.deliveries), self.deliveries)
        self.assertTrue(all(d["content_type"] == "application/json"
                            for d in self.deliveries))
        self.assertEqual(self.deliveries[0]["path"], "/hooks/retrain")
        body = self.d.pg.psql("SELECT body FROM driftd.webhook_outbox WHERE id = '%s'"
                              % self.first_id)[0][0]
        self.assertEqual(body, self.deliveries[0]["body"])
        a = attempts(self.d, self.first_id)
        self.assertEqual([(x[0], x[1]) for x in a],
                         [("1", "500"), ("2", "500"), ("3", "500"), ("4", "200")])
        self.assertIn("HTTP 500", a[0][2])
        self.assertIsNone(a[3][2])
        self.assertEqual(delivery(self.d, self.first_id)[:3], ["delivered", "4", "200"])

    def test_cooldown_records_but_does_not_send(self):
        self.assertEqual(len(self.suppressed), 1)
        sid, event, model, endpoint, body = self.suppressed[0]
        self.assertEqual((event, model, endpoint), ("drift.detected", "enc", "retrain"))
        self.assertNotEqual(sid, self.first_id)
        self.assertEqual(json.loads(body)["type"], "drift.detected")
        time.sleep(0.5)
        self.assertEqual(len(self.r.deliveries()), 4)
        m = self.d.metrics()
        self.assertEqual(m['driftd_webhook_events_total{outcome="suppressed"}'], 1)
        self.assertEqual(m['driftd_webhook_events_total{outcome="queued"}'], 1)
        self.assertEqual(m['driftd_webhook_attempts_total{endpoint="retrain",'
                           'result="http_error"}'], 3)
        self.assertEqual(m['driftd_webhook_deliveries_total{endpoint="retrain",'
                           'status="delivered"}'], 1)


# ---- delivery semantics, with test events ------------------------------------

class Delivery(Fixture):
    @classmethod
    def start(cls):
        cls.never = cls.receiver(default="never")
        cls.gone = cls.receiver(default="410")
        cls.limited = cls.receiver(plan=["429:1"])
        cls.redirect = cls.receiver(plan=["302"])
        cls.plain = cls.receiver()
        cls.rotated = cls.receiver(secrets=[OLD_SECRET])
        cls.down_port = free_port()
        fast = dict(allow_addresses="loopback", retry__initial="50ms")
        cls.models = (
            IDLE_MODEL
            + hook("down", f"http://127.0.0.1:{cls.down_port}/x", timeout="500ms",
                   retry__horizon="2s", retry__initial="100ms", max_attempts=1000,
                   allow_addresses="loopback")
            + hook("never", cls.never.url(), timeout="700ms", max_attempts=1,
                   allow_addresses="loopback")
            + hook("gone", cls.gone.url(), **fast)
            + hook("limited", cls.limited.url(), **fast)
            + hook("redirect", cls.redirect.url(), **fast)
            + hook("plain", cls.plain.url(), **fast)
            + hook("rotated", cls.rotated.url(), secret=f"{SECRET}, {OLD_SECRET}", **fast)
            + hook("guarded", cls.plain.url("/guarded"), max_attempts=1)
            + hook("named", f"http://localhost:{cls.plain.port}/named", max_attempts=1)
            + hook("metadata", "http://169.254.169.254/latest/meta-data", max_attempts=1,
                   allow_addresses="loopback, private")
            + hook("unresolvable", "http://driftd-test.invalid/x", timeout="300ms",
                   max_attempts=1))
        cls.d = cls.daemon(cls.models)

    def test_receiver_down_for_the_horizon_while_ingest_goes_on(self):
        mid = send_test(self.d, "down")
        rng = np.random.default_rng(3)
        sent = accepted = 0
        worst = 0.0
        t0 = time.monotonic()
        while delivery(self.d, mid)[0] != "dead":
            self.assertLess(time.monotonic() - t0, 30, delivery(self.d, mid))
            lines = [record("idle", rng.normal(size=4)) for _ in range(200)]
            t = time.monotonic()
            accepted += self.d.send_lines(lines)[-1]["accepted"]
            status, _ = self.d.http_get("/healthz")
            worst = max(worst, time.monotonic() - t)
            self.assertEqual(status, 200)
            sent += len(lines)
        status, n, http_status, error = delivery(self.d, mid)
        self.assertGreaterEqual(int(n), 3)
        self.assertIsNone(http_status)
        self.assertIn(f"could not connect to 127.0.0.1:{self.down_port}", error)
        self.assertTrue(error.endswith("(dead: retry.horizon reached)"), error)
        self.assertEqual(accepted, sent)
        self.assertGreater(sent, 1000)
        self.assertLess(worst, 2.0)
        a = attempts(self.d, mid)
        last_start = float(a[-1][4])
        first_start = float(a[0][4])
        # The last attempt was due within the horizon (and started about
        # then: the claim adds a little latency on a loaded machine).
        self.assertLess(last_start - first_start, 2.5)
        print(f"\n  receiver down: {len(a)} attempts over {last_start - first_start:.2f}s, "
              f"{sent} records accepted meanwhile, slowest ingest+healthz "
              f"round trip {worst * 1000:.0f} ms")

    def test_receiver_that_never_answers_times_out(self):
        mid = send_test(self.d, "never")
        status, n, http_status, error = wait_status(self.d, mid, {"dead"})
        self.assertEqual((n, http_status), ("1", None))
        self.assertIn("timed out after 700 ms", error)
        duration_ms = float(attempts(self.d, mid)[0][3])
        # libevent's timers may run on a coarse clock (a few ms).
        self.assertGreaterEqual(duration_ms, 690)
        self.assertLess(duration_ms, 3000)
        self.assertEqual(len(self.never.wait(1)), 1)

    def test_unresolvable_name(self):
        """Either the resolver says no at once or the deadline cancels the
        lookup: a dead delivery either way, and the daemon goes on."""
        mid = send_test(self.d, "unresolvable")
        row = wait_status(self.d, mid, {"dead"})
        self.assertTrue(row[3].startswith("cannot resolve driftd-test.invalid") or
                        row[3].startswith("timed out after 300 ms resolving "
                                          "driftd-test.invalid"), row)
        self.assertTrue(row[3].endswith(" (dead: max_attempts reached)"), row)
        self.assertEqual(self.d.http_get("/healthz")[0], 200)

    def test_410_disables_the_endpoint(self):
        first = send_test(self.d, "gone")
        row = wait_status(self.d, first, {"dead"})
        self.assertEqual(row[:3], ["dead", "1", "410"])
        self.assertIn("410 Gone: endpoint disabled", row[3])
        self.assertEqual(self.d.pg.psql(
            "SELECT disabled_at IS NOT NULL, url FROM driftd.webhook_endpoints "
            "WHERE name = 'gone'"), [["t", self.gone.url()]])
        second = send_test(self.d, "gone")
        deadline = time.monotonic() + 10
        while self.d.metrics()['driftd_webhook_endpoint_disabled{endpoint="gone"}'] != 1:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        time.sleep(1.5)
        self.assertEqual(delivery(self.d, second)[:2], ["pending", "0"])
        self.assertEqual(len(self.gone.deliveries()), 1)
        # The receiver is back: enable the endpoint, the waiting one goes.
        self.gone.set_plan([], default="200")
        out = driftctl(self.d, "webhooks", "enable", "gone")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(wait_status(self.d, second, {"delivered"})[:3],
                         ["delivered", "1", "200"])
        self.assertEqual(self.d.metrics()['driftd_webhook_endpoint_disabled{endpoint="gone"}'], 0)

    def test_429_honours_retry_after(self):
        mid = send_test(self.d, "limited")
        self.assertEqual(wait_status(self.d, mid, {"delivered"})[:2], ["delivered", "2"])
        a = attempts(self.d, mid)
        self.assertEqual([x[1] for x in a], ["429", "200"])
        self.assertIn("Retry-After: 1", a[0][2])
        # retry.initial is 50 ms: the second second is Retry-After's.
        self.assertGreaterEqual(float(a[1][4]) - float(a[0][4]), 1.0)

    def test_redirect_is_a_failure_and_not_followed(self):
        mid = send_test(self.d, "redirect")
        self.assertEqual(wait_status(self.d, mid, {"delivered"})[:2], ["delivered", "2"])
        a = attempts(self.d, mid)
        self.assertEqual(a[0][1], "302")
        self.assertIn("redirects are not followed (Location: /elsewhere)", a[0][2])
        paths = [d["path"] for d in self.redirect.deliveries()]
        self.assertEqual(paths, ["/hook", "/hook"])

    def test_ssrf_guard(self):
        guarded = send_test(self.d, "guarded")
        named = send_test(self.d, "named")
        metadata = send_test(self.d, "metadata")
        row = wait_status(self.d, guarded, {"dead"})
        self.assertIn("refused: 127.0.0.1 is a loopback address", row[3])
        row = wait_status(self.d, named, {"dead"})
        self.assertIn("refused: localhost resolves only to addresses allow_addresses "
                      "does not permit: ", row[3])
        self.assertIn("127.0.0.1 (loopback)", row[3])
        row = wait_status(self.d, metadata, {"dead"})
        self.assertIn("refused: 169.254.169.254 is a link-local address", row[3])
        self.assertEqual([d for d in self.plain.deliveries()
                          if d["path"] in ("/guarded", "/named")], [])
        self.assertEqual(self.d.pg.psql(
            "SELECT count(*) FROM driftd.webhook_attempts WHERE delivery_id IN "
            "('%s', '%s', '%s') AND address IS NOT NULL" % (guarded, named, metadata)),
            [["2"]])  # the literal addresses are known; the name resolved to none allowed
        m = self.d.metrics()
        self.assertEqual(m['driftd_webhook_attempts_total{endpoint="metadata",'
                         'result="refused"}'], 1)

    def test_rotation_signs_with_every_secret(self):
        mid = send_test(self.d, "rotated")
        wait_status(self.d, mid, {"delivered"})
        got = self.rotated.wait(1)[0]
        self.assertTrue(got["valid"])
        self.assertEqual(len(got["signature"].split()), 2)
        raw = got["body"].encode()
        self.assertTrue(verify([SECRET], got["id"], got["timestamp"], raw, got["signature"]))
        self.assertFalse(verify([SECRET], got["id"], got["timestamp"], raw + b" ",
                                got["signature"]))

    def test_reload_adds_an_endpoint(self):
        self.d.write_config(self.models + hook("added", self.plain.url("/added"),
                                               allow_addresses="loopback"))
        self.d.signal(signal.SIGHUP)
        self.d.wait_notify("configuration reloaded")
        mid = send_test(self.d, "added")
        self.assertEqual(wait_status(self.d, mid, {"delivered", "dead"})[0], "delivered")
        self.assertEqual(self.plain.wait(1, pred=lambda d: d["path"] == "/added")[0]["id"], mid)

    def test_driftctl_test_list_redeliver(self):
        out = driftctl(self.d, "webhooks", "test", "plain")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        mid = out.stdout.split()[2]
        self.assertIn(f"{mid}: delivered after 1 attempt(s), HTTP 200", out.stdout)
        got = self.plain.wait(1, pred=lambda d: d["id"] == mid)[0]
        self.assertTrue(got["valid"])
        self.assertEqual(json.loads(got["body"])["type"], "test")
        self.assertEqual(json.loads(got["body"])["data"]["endpoint"], "plain")

        out = driftctl(self.d, "webhooks", "list", "--endpoint", "plain", "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        listed = [json.loads(l) for l in out.stdout.splitlines()]
        self.assertIn(mid, [x["id"] for x in listed])
        self.assertEqual([x["status"] for x in listed if x["id"] == mid], ["delivered"])
        out = driftctl(self.d, "webhooks", "list")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(mid, out.stdout)

        out = driftctl(self.d, "webhooks", "redeliver", mid)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("was delivered; queued again", out.stdout)
        again = self.plain.wait(2, pred=lambda d: d["id"] == mid, timeout=15)
        self.assertEqual(again[0]["body"], again[1]["body"])
        self.assertTrue(again[1]["valid"])

        out = driftctl(self.d, "webhooks", "redeliver", "msg_nosuch")
        self.assertEqual(out.returncode, 1)
        self.assertIn("no webhook delivery with id msg_nosuch", out.stderr)
        out = driftctl(self.d, "webhooks", "test", "nosuch")
        self.assertEqual(out.returncode, 1)
        self.assertIn("404", out.stderr)
        self.assertIn("no [webhook.nosuch]", out.stderr)


# ---- kill -9 with deliveries pending ---------------------------------------------

class Restart(Fixture):
    @classmethod
    def start(cls):
        cls.port = free_port()
        cls.d = cls.daemon(IDLE_MODEL + hook(
            "later", f"http://127.0.0.1:{cls.port}/later", timeout="500ms",
            retry__initial="200ms", retry__max_delay="500ms", retry__horizon="1h",
            allow_addresses="loopback"))

    def test_kill_9_then_restart_delivers_with_the_same_ids(self):
        ids = [send_test(self.d, "later") for _ in range(3)]
        for mid in ids:
            wait_status(self.d, mid, {"retrying"})
        self.d.proc.send_signal(signal.SIGKILL)
        self.d.proc.wait(10)
        r = self.receiver(port=self.port)
        self.d.start()
        got = r.wait(3, timeout=30)
        self.assertEqual(sorted({g["id"] for g in got}), sorted(ids))
        self.assertTrue(all(g["valid"] for g in got))
        for mid in ids:
            row = wait_status(self.d, mid, {"delivered"})
            self.assertGreaterEqual(int(row[1]), 2)


# ---- a resolver that never answers ------------------------------------------------

@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"),
                     "needs root for a mount namespace with its own /etc/resolv.conf")
class SilentResolver(Fixture):
    """The daemon sees an /etc/resolv.conf naming a UDP socket that reads
    queries and never answers: the deadline must cancel each lookup (and
    evdns's late callback must find the attempt still there)."""

    @classmethod
    def start(cls):
        cls.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cls.procs.append(cls.sink)
        cls.sink.bind(("127.0.0.1", 0))
        resolv = os.path.join(env.tmp.name, "resolv.silent")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1:%d\n" % cls.sink.getsockname()[1])
        d = env.driftd(IDLE_MODEL + hook("silent", "http://hook.driftd-test.example/x",
                                         timeout="300ms", max_attempts=2,
                                         retry__initial="50ms"))
        d.argv_prefix = ["unshare", "--mount", "sh", "-c",
                         'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv]
        cls.procs.append(d)
        cls.d = d.start()

    def test_lookup_cancelled_by_the_deadline(self):
        ids = [send_test(self.d, "silent") for _ in range(5)]
        for mid in ids:
            row = wait_status(self.d, mid, {"dead"})
            self.assertEqual(row[:3], ["dead", "2", None])
            self.assertEqual(row[3], "timed out after 300 ms resolving "
                             "hook.driftd-test.example (dead: max_attempts reached)")
        self.sink.settimeout(1)
        self.assertIn(b"driftd-test", self.sink.recv(512).lower())  # 0x20 case mixing
        self.assertEqual(self.d.http_get("/healthz")[0], 200)
        self.assertEqual(self.d.stop(), 0)


# ---- the receiver of docs/webhooks.md ---------------------------------------------

def doc_receiver_code():
    with open(os.path.join(SOURCE_ROOT, "docs", "webhooks.md")) as f:
        text = f.read()
    return text.split("```python receiver\n", 1)[1].split("```", 1)[0]


class DocReceiver(Fixture):
    """The receiver docs/webhooks.md shows, run as written."""

    @classmethod
    def start(cls):
        cls.port = free_port()
        path = os.path.join(env.tmp.name, "doc_receiver.py")
        with open(path, "w") as f:
            f.write(doc_receiver_code())
        cls.out = open(os.path.join(env.tmp.name, "doc_receiver.out"), "w+")
        cls.proc = subprocess.Popen(
            ["/usr/bin/python3", path], stdout=cls.out, stderr=subprocess.STDOUT,
            env=dict(os.environ, PORT=str(cls.port), DRIFTD_WEBHOOK_SECRET=OLD_SECRET))
        cls.procs.append(cls)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the doc receiver did not start"
                time.sleep(0.05)
        url = f"http://127.0.0.1:{cls.port}/"
        cls.d = cls.daemon(IDLE_MODEL
                           + hook("doc", url, secret=f"{SECRET}, {OLD_SECRET}",
                                  allow_addresses="loopback", retry__initial="100ms")
                           + hook("wrong", url, allow_addresses="loopback", max_attempts=1))

    @classmethod
    def stop(cls):
        cls.proc.terminate()
        cls.proc.wait(10)
        cls.out.close()

    def test_verifies_and_acknowledges(self):
        mid = send_test(self.d, "doc")
        self.assertEqual(wait_status(self.d, mid, {"delivered", "dead"})[:3],
                         ["delivered", "1", "204"])
        self.assertEqual(wait_status(self.d, send_test(self.d, "wrong"), {"dead"})[2], "401")
        self.out.seek(0)
        lines = self.out.read().splitlines()
        self.assertEqual([l for l in lines if l.startswith("verified")],
                         ["verified test None"])
        self.assertTrue(any('"POST / HTTP/1.1" 401' in l for l in lines), lines)


# ---- HTTPS: certificate and host name -------------------------------------------

def make_certs(d):
    """A CA, a server certificate for localhost / 127.0.0.1 and one for
    another name, with the openssl command."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=driftd test CA", "-keyout", "ca.key", "-out", "ca.pem")
    for name, san in (("local", "DNS:localhost,IP:127.0.0.1"), ("other", "DNS:other.example")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName = {san}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
            "-out", f"{name}.pem")
    return {n: (os.path.join(d, f"{n}.pem"), os.path.join(d, f"{n}.key"))
            for n in ("local", "other")}, os.path.join(d, "ca.pem")


class Tls(Fixture):
    @classmethod
    def start(cls):
        certs, ca = make_certs(env.tmp.name)
        cls.local = cls.receiver(tls=certs["local"])
        cls.other = cls.receiver(tls=certs["other"])
        once = dict(allow_addresses="loopback", max_attempts=1)
        cls.d = cls.daemon(
            IDLE_MODEL
            + hook("byname", cls.local.url("/tls", host="localhost"), ca_file=ca, **once)
            + hook("byip", cls.local.url("/tls"), ca_file=ca, **once)
            + hook("untrusted", cls.local.url("/tls", host="localhost"), **once)
            + hook("mismatch", cls.other.url("/tls", host="localhost"), ca_file=ca, **once))

    def test_verified_by_name_and_by_address(self):
        for name in ("byname", "byip"):
            mid = send_test(self.d, name)
            self.assertEqual(wait_status(self.d, mid, {"delivered", "dead"})[:3],
                             ["delivered", "1", "200"], name)
        got = self.local.wait(2)
        self.assertTrue(all(g["valid"] for g in got))
        self.assertEqual(sorted(g["host"] for g in got),
                         sorted(["localhost:%d" % self.local.port,
                                 "127.0.0.1:%d" % self.local.port]))

    def test_unknown_issuer_is_refused(self):
        mid = send_test(self.d, "untrusted")
        row = wait_status(self.d, mid, {"dead"})
        self.assertIn("certificate verify failed", row[3])
        self.assertIn("local issuer", row[3])

    def test_host_name_mismatch_is_refused(self):
        mid = send_test(self.d, "mismatch")
        row = wait_status(self.d, mid, {"dead"})
        self.assertIn("certificate verify failed: hostname mismatch", row[3])
        self.assertEqual(self.other.deliveries(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""Streaming detectors end to end: the real daemon, a real PostgreSQL and a
real webhook receiver process (webhook_receiver.py).  Windows are far
larger than the records sent, so every alarm comes between windows:

- scores of one slice shift up, another slice stays: page_hinkley and adwin
  alarm on the shifting slice (rows in driftd.stream_alarm_history, a
  signed stream.alarm webhook, /metrics, a notice in the log) and never on
  the stable one; nothing alarms before the shift;
- labels sent later by id with an error rate rising from 10% to 40%: an
  alarm on the error signal;
- a long stationary stream of scores and inline labels: (almost) no false
  alarm with the default parameters;
- bad stream.* values: clear FILE:LINE errors at start and on reload; a
  reload with new parameters restarts the detectors;
- PostgreSQL stopped when the alarm fires: the alarm and its webhook come
  through the spill journal once it is back;
- GET /v1/models/{m}/alarms and /status's stream_alarms under a small
  [store] read_max_rows, for models whose windows never closed.

Every stream is drawn from a seeded generator, so the outcome is fixed."""

import json
import signal
import urllib.parse
import subprocess
import time
import unittest

import numpy as np

from driftd_harness import DRIFTD, Env, model_section, record
from webhook_receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DIM = 4
# Far more than any model here receives: no window ever closes.
HUGE = 200000
N_STABLE = 2000     # records per slice before the shift
N_SHIFT = 1500      # records per slice after it
N_QUIET = 30000     # the long stationary stream
DETECTORS = ("page_hinkley", "adwin")
READ_MAX_ROWS = 3   # below the alarms of model err

env = None


def setUpModule():
    global env
    env = Env().__enter__()


def tearDownModule():
    env.__exit__(None, None, None)


def stream_model(name, signals, extra="", slice_by="region"):
    return model_section(
        name, DIM, slice_by=slice_by, reference=50, window=HUGE, detectors="mmd",
        extra="scores.width = 1\nstream.detectors = page_hinkley, adwin\n"
              f"stream.signals = {signals}\n" + extra)


def hook_section(receiver):
    return ("[webhook.hook]\n"
            f"url = {receiver.url('/stream')}\nsecret = {SECRET}\n"
            "cooldown = 0\nallow_addresses = loopback\nretry.initial = 100ms\n")


def scored(rng, model, score, region=None, **kw):
    return record(model, rng.normal(size=DIM), {"region": region} if region else None,
                  scores=[round(float(score), 6)], **kw)


def shifting_scores(rng, n, drift_mean):
    """Records alternating between slice drift (mean DRIFT_MEAN) and slice
    stable (mean 0.3), scores with sd 0.05."""
    lines = []
    for _ in range(n):
        for region, mean in (("drift", drift_mean), ("stable", 0.3)):
            lines.append(scored(rng, "sc", np.clip(rng.normal(mean, 0.05), 0, 1), region))
    return lines


def alarms_metric(metrics, model, detector, signal_, suppressed=False):
    name = "driftd_stream_alarms_suppressed_total" if suppressed else "driftd_stream_alarms_total"
    return metrics.get(f'{name}{{model="{model}",detector="{detector}",signal="{signal_}"}}')


def send(d, lines):
    reply = d.send_lines(lines)[-1]
    assert reply.get("rejected") == 0, reply
    return reply


class Alarms(unittest.TestCase):
    """One daemon: model sc (scores, two slices), err (delayed labels),
    quiet (a long stationary stream, inline labels)."""

    @classmethod
    def setUpClass(cls):
        cls.r = Receiver(env.tmp.name, [SECRET]).start()
        cls.d = env.driftd(
            stream_model("sc", "score", "on_drift = hook\n")
            + stream_model("err", "error")
            + stream_model("quiet", "score, error", slice_by="")
            + hook_section(cls.r), extra_store=f"read_max_rows = {READ_MAX_ROWS}\n")
        try:
            cls.d.start()
            cls.feed()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def feed(cls):
        d = cls.d
        rng = np.random.default_rng(20261130)
        send(d, shifting_scores(rng, N_STABLE, 0.3))
        cls.before_shift = d.metrics()
        send(d, shifting_scores(rng, N_SHIFT, 0.45))

        # err: every record waits for its label; labels come later, by id.
        n = N_STABLE + N_SHIFT
        p = rng.uniform(size=n)
        send(d, [scored(rng, "err", p[i], "a", id=f"e{i}") for i in range(n)])
        wrong = rng.uniform(size=n) < np.where(np.arange(n) < N_STABLE, 0.1, 0.4)
        labels = [int(p[i] >= 0.5) ^ int(wrong[i]) for i in range(n)]

        def label_lines(lo, hi):
            return ['{"model":"err","id":"e%d","label":%d}' % (i, labels[i])
                    for i in range(lo, hi)]
        send(d, label_lines(0, N_STABLE))
        cls.before_rise = d.metrics()
        send(d, label_lines(N_STABLE, n))

        # quiet: stationary scores with inline labels drawn from them.
        p = np.round(rng.beta(2, 5, size=N_QUIET), 6)
        y = (rng.uniform(size=N_QUIET) < p).astype(int)
        send(d, [record("quiet", rng.normal(size=DIM), scores=[float(p[i])],
                        label=int(y[i])) for i in range(N_QUIET)])
        cls.after = d.metrics()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.close()
        finally:
            cls.r.stop()

    def rows(self, model, where="true"):
        return self.d.pg.psql(
            "SELECT slice, detector, signal, direction, statistic, threshold, "
            "records_seen, n_before, mean_before, n_after, mean_after, "
            "params::text, alarm_id FROM driftd.stream_alarm_history "
            f"WHERE model = '{model}' AND {where} ORDER BY detected_at, alarm_id")

    def wait_recorded(self, model, signal_):
        """Waits until the database holds every alarm /metrics counted."""
        want = sum(alarms_metric(self.after, model, det, signal_) for det in DETECTORS)
        return self.d.wait_rows(
            "SELECT 1 FROM driftd.stream_alarm_history "
            f"WHERE model = '{model}' AND signal = '{signal_}'", want)

    def test_no_alarm_before_the_shift(self):
        for det in DETECTORS:
            self.assertEqual(alarms_metric(self.before_shift, "sc", det, "score"), 0)
            self.assertEqual(alarms_metric(self.before_shift, "sc", det, "score",
                                           suppressed=True), 0)
            self.assertEqual(alarms_metric(self.before_rise, "err", det, "error"), 0)
            self.assertEqual(alarms_metric(self.before_rise, "err", det, "error",
                                           suppressed=True), 0)

    def test_shift_alarms_on_its_slice_only(self):
        self.wait_recorded("sc", "score")
        rows = self.rows("sc")
        drifting = [r for r in rows if r[0] == "region=drift"]
        self.assertEqual({r[1] for r in drifting}, set(DETECTORS), rows)
        self.assertEqual([r for r in rows if r[0] == "region=stable"], [])
        for (slice_, det, sig, direction, stat, thr, seen, n_before, mean_before,
             n_after, mean_after, params, _) in drifting:
            self.assertEqual((sig, direction), ("score", "up"))
            self.assertGreater(float(mean_after), float(mean_before))
            self.assertAlmostEqual(float(mean_before), 0.3, delta=0.03)
            self.assertGreater(int(n_before), 0)
            self.assertGreater(int(n_after), 0)
            self.assertLessEqual(int(n_before) + int(n_after), int(seen))
            params = json.loads(params)
            if det == "page_hinkley":
                # The defaults, recorded with the alarm that used them.
                self.assertEqual(params, {"delta": 0.025, "threshold": 50, "min_samples": 30,
                                          "forget": 1, "direction": "both"})
                self.assertEqual(float(thr), 50)
                self.assertGreater(float(stat), 50)
                # Detected within the shift, after at least delta/threshold
                # worth of evidence.
                self.assertGreater(int(n_after), 50 / 0.15)
                self.assertLess(int(n_after), N_SHIFT)
            else:
                self.assertEqual(params, {"delta": 0.002, "clock": 32, "max_buckets": 5,
                                          "min_window": 5})
                self.assertIsNone(thr)
                self.assertAlmostEqual(float(stat), float(mean_after) - float(mean_before))

    def test_no_window_closed(self):
        for model in ("sc", "err", "quiet"):
            self.assertEqual(self.after[f'driftd_model_windows_total{{model="{model}"}}'], 0)
        self.assertEqual(self.d.pg.psql("SELECT count(*) FROM driftd.windows"), [["0"]])

    def test_metrics_count_the_rows(self):
        self.wait_recorded("sc", "score")
        self.wait_recorded("err", "error")
        for model, sig in (("sc", "score"), ("err", "error")):
            for det in DETECTORS:
                rows = self.rows(model, f"detector = '{det}' AND signal = '{sig}'")
                self.assertEqual(alarms_metric(self.after, model, det, sig), len(rows))
            # Signals a model does not watch have no series.
            other = "error" if sig == "score" else "score"
            self.assertIsNone(alarms_metric(self.after, model, "adwin", other))
        self.assertGreater(self.after['driftd_stream_state_bytes{model="sc"}'],
                           3 * 17000)

    def test_rising_error_rate_of_delayed_labels(self):
        self.wait_recorded("err", "error")
        rows = self.rows("err")
        for slice_ in ("*", "region=a"):
            mine = [r for r in rows if r[0] == slice_]
            self.assertEqual({r[1] for r in mine}, set(DETECTORS), rows)
            for r in mine:
                self.assertEqual((r[2], r[3]), ("error", "up"))
                self.assertAlmostEqual(float(r[8]), 0.1, delta=0.05)
                self.assertGreater(float(r[10]), float(r[8]))
                # Page-Hinkley's change point splits the two rates.
                if r[1] == "page_hinkley":
                    self.assertGreater(float(r[10]), 0.3)
        self.assertEqual(self.after['driftd_model_labels_total{model="err",outcome="joined"}'],
                         N_STABLE + N_SHIFT)

    def test_long_stationary_stream_rarely_alarms(self):
        total = sum(alarms_metric(self.after, "quiet", det, sig) +
                    alarms_metric(self.after, "quiet", det, sig, suppressed=True)
                    for det in DETECTORS for sig in ("score", "error"))
        print(f"\n{N_QUIET} stationary records, 2 signals x 2 detectors: "
              f"{total} false alarms")
        self.assertLessEqual(total, 1)

    def test_webhook_lists_the_alarms(self):
        self.wait_recorded("sc", "score")
        want = {r[12] for r in self.rows("sc")}
        got, tests = set(), {}

        def stream_events():
            return [json.loads(x["body"]) for x in self.r.deliveries()
                    if json.loads(x["body"])["type"] == "stream.alarm"]
        deadline = time.monotonic() + 30
        while got != want and time.monotonic() < deadline:
            got, tests = set(), {}
            for ev in stream_events():
                for s in ev["data"]["slices"]:
                    self.assertIsNone(s["window_id"])
                    for t in s["tests"]:
                        got.add(str(t["alarm_id"]))
                        tests.setdefault(s["slice"], set()).add(t["test"])
            time.sleep(0.1)
        self.assertEqual(got, want)
        self.assertEqual(tests["region=drift"], {"page_hinkley:score", "adwin:score"})
        self.assertNotIn("region=stable", tests)
        self.assertTrue(all(x["valid"] for x in self.r.deliveries()))
        ev = stream_events()[0]
        self.assertEqual(ev["data"]["model"], "sc")
        # The ready-made query finds the alarms the event lists.
        rows = self.d.pg.psql("SELECT alarm_id FROM (%s) q" % ev["data"]["query"])
        self.assertEqual({r[0] for r in rows},
                         {str(t["alarm_id"]) for s in ev["data"]["slices"] for t in s["tests"]})
        # err names no webhook: its alarms raise no event.
        self.assertEqual(self.d.pg.psql("SELECT count(*) FROM driftd.webhook_outbox "
                                        "WHERE model <> 'sc'"), [["0"]])

    def api(self, path):
        status, body = self.d.http_get(path)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def test_api_row_cap(self):
        self.wait_recorded("err", "error")
        ids = [int(r[0]) for r in self.d.pg.psql(
            "SELECT alarm_id FROM driftd.stream_alarm_history WHERE model = 'err' "
            "ORDER BY detected_at DESC, alarm_id DESC")]
        self.assertGreater(len(ids), READ_MAX_ROWS)
        # No limit, or one above the cap: the cap's newest, truncated.
        for query in ("", "?limit=100"):
            body = self.api("/v1/models/err/alarms" + query)
            self.assertEqual([r["alarm_id"] for r in body["rows"]], ids[:READ_MAX_ROWS])
            self.assertTrue(body["truncated"])
        body = self.api("/v1/models/err/alarms?limit=2&signal=error")
        self.assertEqual(([r["alarm_id"] for r in body["rows"]], body["truncated"]),
                         (ids[:2], True))

    def test_api_alarms_of_a_model_without_windows(self):
        self.wait_recorded("sc", "score")
        self.wait_recorded("err", "error")
        st = self.api("/v1/models/err/status")
        self.assertEqual((st["slices"], st["truncated"]), ([], False))
        recent = st["stream_alarms"]
        counts = dict(self.d.pg.psql("SELECT slice, count(*) FROM driftd.stream_alarm_history "
                                     "WHERE model = 'err' GROUP BY slice"))
        self.assertEqual({s["slice"]: str(s["count"]) for s in recent["slices"]}, counts)
        self.assertEqual(sorted(counts), ["*", "region=a"])
        self.assertFalse(recent["truncated"])
        self.assertTrue(all(s["signal"] == "error" and s["direction"] == "up"
                            for s in recent["slices"]))
        # sc: the shifting slice only, each detector once.
        q = urllib.parse.quote("region=drift")
        rows = self.api(f"/v1/models/sc/alarms?slice={q}&limit=2")["rows"]
        self.assertEqual(sorted(r["detector"] for r in rows), sorted(DETECTORS))
        self.assertEqual(self.api("/v1/models/sc/alarms?slice=region%3Dstable")["rows"], [])
        for det in DETECTORS:
            rows = self.api(f"/v1/models/sc/alarms?slice={q}&detector={det}")["rows"]
            sql = self.rows("sc", f"slice = 'region=drift' AND detector = '{det}'")
            self.assertEqual([str(r["alarm_id"]) for r in rows],
                             [r[12] for r in reversed(sql)])
            self.assertEqual(rows[0]["params"], json.loads(sql[-1][11]))

    def test_notice_in_the_log(self):
        self.wait_recorded("sc", "score")
        log = self.d.log_text()
        for det in DETECTORS:
            self.assertIn(f"<5>model sc slice region=drift: stream alarm: {det} on score, "
                          "mean up from", log)
        self.assertNotIn("slice region=stable: stream alarm", log)


class Config(unittest.TestCase):
    """Bad values are named with FILE:LINE at start and on reload; a reload
    with new parameters restarts the detectors."""

    def daemon(self, extra, signals="score"):
        d = env.driftd(stream_model("m", signals, extra))
        self.addCleanup(d.close)
        return d

    def check(self, d):
        return subprocess.run([DRIFTD, "--check-config", d.config],
                              capture_output=True, text=True, timeout=30)

    def test_bad_values_at_start(self):
        for signals, extra, bad, want in (
                ("score", "stream.ph.forget = 0\n", "stream.ph.forget = 0",
                 "[model.m] stream.ph.forget: '0' is out of range (0, 1]"),
                ("score", "stream.adwin.delta = 2\n", "stream.adwin.delta = 2",
                 "[model.m] stream.adwin.delta: '2' is out of range (0, 1)"),
                ("latency", "", "stream.signals = latency",
                 "[model.m] stream.signals: unknown name 'latency' (known: score, error)")):
            d = self.daemon(extra, signals)
            with open(d.config) as f:
                line = f.read().splitlines().index(bad) + 1
            r = self.check(d)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"{d.config}:{line}: {want}", r.stderr)
            r = subprocess.run([DRIFTD, "--config", d.config], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{d.config}:{line}: {want}", r.stderr)

    def test_stream_needs_scores(self):
        d = env.driftd(model_section("m", DIM, extra="stream.detectors = adwin\n"))
        self.addCleanup(d.close)
        r = self.check(d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("[model.m] stream.detectors: the streaming detectors watch predicted "
                      "scores: set scores.width", r.stderr)

    def wait_log(self, d, text, timeout=10):
        deadline = time.monotonic() + timeout
        while text not in d.log_text():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the log:\n{d.log_text()[-3000:]}")
            time.sleep(0.05)

    def test_reload(self):
        d = self.daemon("stream.ph.threshold = 5\n").start()
        rng = np.random.default_rng(5)
        send(d, [scored(rng, "m", 0.3, "x") for _ in range(200)])
        # A bad value: refused with its line, the running detectors stay.
        d.write_config(d.models.replace("stream.ph.threshold = 5", "stream.ph.threshold = -1"))
        d.signal(signal.SIGHUP)
        self.wait_log(d, "reload refused")
        self.assertIn("[model.m] stream.ph.threshold: '-1' is out of range > 0", d.log_text())
        self.assertNotIn("streaming detectors reconfigured", d.log_text())
        # Only the alarm interval: nothing starts over.
        d.write_config(d.models + "stream.alarm_interval = 5s\n")
        d.signal(signal.SIGHUP)
        self.wait_log(d, "configuration reloaded")
        self.assertNotIn("streaming detectors reconfigured", d.log_text())
        # New parameters: every slice's detectors start over, so 25 records
        # at 0.6 raise no alarm (with the old state Page-Hinkley would
        # cross its threshold after about 6 / (0.3 - 0.025) = 22).
        d.write_config(d.models.replace("stream.ph.threshold = 5", "stream.ph.threshold = 6"))
        d.signal(signal.SIGHUP)
        self.wait_log(d, "model m: streaming detectors reconfigured: every slice's start over")
        send(d, [scored(rng, "m", 0.6, "x") for _ in range(25)])
        m = d.metrics()
        self.assertEqual(sum(alarms_metric(m, "m", det, "score") for det in DETECTORS), 0)
        self.assertEqual(m["driftd_reload_failures_total"], 1)


class Outage(unittest.TestCase):
    """PostgreSQL is stopped when the alarm fires: it waits in the spill
    journal and reaches the database and the receiver once it is back."""

    def wait_metric(self, d, name, pred, timeout=30):
        deadline = time.monotonic() + timeout
        while not pred(d.metrics().get(name)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} = {d.metrics().get(name)}")
            time.sleep(0.1)

    def test_alarm_survives_the_database_being_down(self):
        r = Receiver(env.tmp.name, [SECRET]).start()
        self.addCleanup(r.stop)
        d = env.driftd(stream_model("sc", "score", "on_drift = hook\n") + hook_section(r))
        self.addCleanup(d.close)
        d.start()
        rng = np.random.default_rng(77)
        send(d, shifting_scores(rng, N_STABLE, 0.3))
        env.pg.stop()
        try:
            self.wait_metric(d, "driftd_store_up", lambda v: v == 0)
            send(d, shifting_scores(rng, N_SHIFT, 0.45))
            m = d.metrics()
            alarms = sum(alarms_metric(m, "sc", det, "score") for det in DETECTORS)
            self.assertGreaterEqual(alarms, 2)
            self.assertGreaterEqual(m["driftd_store_journal_records"], 1)
        finally:
            env.pg.start()
        rows = d.wait_rows("SELECT detector FROM driftd.stream_alarm_history "
                           "WHERE model = 'sc' AND slice = 'region=drift'", 2)
        self.assertEqual({x[0] for x in rows}, set(DETECTORS))
        d.wait_rows("SELECT 1 FROM driftd.stream_alarm_history WHERE model = 'sc'", alarms)
        r.wait(1, pred=lambda x: json.loads(x["body"])["type"] == "stream.alarm")


if __name__ == "__main__":
    unittest.main()

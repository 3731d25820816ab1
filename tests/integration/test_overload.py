#!/usr/bin/python3
"""Sustained overload: a sender far faster than the detectors.  The daemon
stops reading (TCP backpressure) instead of dropping records or growing:
resident memory stays flat, every record sent is acknowledged as
accepted, the pauses are counted, and HTTP ingest answers 503 with
Retry-After while the queues are full."""

import os
import sys
import threading
import time
import unittest
import urllib.request

import numpy as np

from driftd_harness import SOURCE_ROOT, DaemonCase, model_section

sys.path.insert(0, os.path.join(SOURCE_ROOT, "clients", "python"))
import driftd_client as dc  # noqa: E402

DIM = 256
WINDOW = 200
FLOOD_SECONDS = 8


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Overload(DaemonCase):
    # Permutations make each window cost the workers about a second,
    # thousands of times what it costs to send.
    MODELS = model_section("m", DIM, reference=WINDOW, window=WINDOW,
                           detectors="mmd", permutations=20000,
                           extra="max_queued_windows = 2\n")
    DRIFTD = {"log_level": "notice"}

    def http_status(self):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.d.http_port}/v1/ingest",
            data=b'{"model":"m","embedding":[0]}', method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, None
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Retry-After")

    def test_flood_is_paced_not_dropped(self):
        rng = np.random.default_rng(1)
        block = rng.standard_normal((1000, DIM)).astype(np.float32)
        sent = [0]
        stop = time.monotonic() + FLOOD_SECONDS

        def records():
            while time.monotonic() < stop:
                for row in block:
                    sent[0] += 1
                    yield {"model": "m", "embedding": row}

        result = {}

        def flood():
            with dc.Client.tcp("127.0.0.1", self.d.port,
                               timeout=120) as c:
                result["stream"] = dc.stream(c, records(),
                                             frame_bytes=256 << 10)
                result["summary"] = c.finish()

        t = threading.Thread(target=flood)
        t.start()
        time.sleep(2)
        samples = []
        saw_503 = None
        while t.is_alive() and time.monotonic() < stop:
            samples.append(rss_kb(self.d.proc.pid))
            if saw_503 is None:
                status, retry = self.http_status()
                if status == 503:
                    saw_503 = retry
            time.sleep(0.25)
        t.join(180)
        self.assertFalse(t.is_alive())
        accepted, rejected, errors = result["stream"]
        self.assertEqual(errors, [])
        self.assertEqual((accepted, rejected), (sent[0], 0))
        self.assertEqual(result["summary"], (sent[0], 0))
        m = self.d.metrics()
        self.assertGreater(m["driftd_ingest_pauses_total"], 0)
        self.assertEqual(m["driftd_connections_paused"], 0)
        # Flat: what the second half of the flood adds is noise, far below
        # what even one second of unpaced input would cost.
        half = len(samples) // 2
        self.assertLess(max(samples[half:]) - max(samples[:half]), 8 * 1024,
                        samples)
        print(f"\nsent {sent[0]}, rss kB {samples[0]}..{max(samples)}, pauses {m['driftd_ingest_pauses_total']}", file=sys.stderr)
        self.assertEqual(saw_503, "1")


if __name__ == "__main__":
    unittest.main(verbosity=2)

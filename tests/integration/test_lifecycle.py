#!/usr/bin/python3
"""The daemon's life: config checking, READY/STOPPING over NOTIFY_SOCKET,
SIGHUP reload (good and bad), SIGTERM drain, restart resuming window ids."""

import os
import signal
import subprocess
import time
import unittest

import numpy as np

from driftd_harness import DRIFTD, Env, model_section, record

DIM = 8


def batch(rng, n, model="a", shift=0.0):
    return [record(model, rng.normal(size=DIM) + shift) for _ in range(n)]


class Lifecycle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.env.__exit__(None, None, None)

    def daemon(self, models=None):
        d = self.env.driftd(models or model_section(
            "a", DIM, reference=40, window=40, permutations=99))
        self.addCleanup(d.close)
        return d

    def test_check_config_ok(self):
        d = self.daemon()
        r = subprocess.run([DRIFTD, "--check-config", d.config],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok", r.stdout)

    def test_check_config_names_file_line_and_key(self):
        d = self.daemon()
        with open(d.config, "a") as f:
            f.write("window.size = lots\n")
        r = subprocess.run([DRIFTD, "--check-config", d.config],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        lines = open(d.config).read().splitlines()
        self.assertIn(f"{d.config}:{len(lines)}:", r.stderr)
        self.assertIn("window.size", r.stderr)

    def test_bad_config_never_starts(self):
        d = self.daemon()
        with open(d.config, "a") as f:
            f.write("no_such_key = 1\n")
        r = subprocess.run([DRIFTD, "--config", d.config],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no_such_key", r.stderr)

    def test_ready_then_stopping_and_clean_exit(self):
        d = self.daemon().start()
        self.assertTrue(any("READY=1" in n for n in d.notices))
        self.assertEqual(d.http_get("/readyz")[0], 200)
        self.assertEqual(d.stop(), 0)
        d.wait_notify("STOPPING=1", timeout=1)
        self.assertIn("stopped cleanly", d.log_text())

    def test_sigterm_drains_in_flight_windows(self):
        """Windows closed just before SIGTERM still reach the database."""
        d = self.daemon(model_section("s", DIM, reference=40, window=40,
                                      permutations=2000)).start()
        rng = np.random.default_rng(1)
        s = d.connect()
        s.sendall("".join(l + "\n" for l in batch(rng, 40 + 5 * 40, "s"))
                  .encode())
        time.sleep(0.3)
        self.assertEqual(d.stop(), 0)
        s.close()
        rows = self.env.pg.psql(
            "SELECT count(*) FROM driftd.windows WHERE model = 's'")
        self.assertEqual(rows, [["5"]])

    def test_reload_adds_model_and_keeps_old_config_on_error(self):
        d = self.daemon().start()
        rng = np.random.default_rng(2)
        replies = d.send_lines(batch(rng, 3, model="b"))
        self.assertEqual(replies[0]["error"], "unknown_model")

        # A broken config is refused; the daemon keeps running the old one.
        with open(d.config, "a") as f:
            f.write("[model.b]\ndim = zero\n")
        d.signal(signal.SIGHUP)
        self._wait_log(d, "reload refused")
        self.assertIn("dim", d.log_text())
        self.assertEqual(d.send_lines(batch(rng, 2))[-1]["accepted"], 2)

        # A good one adds model b.
        d.write_config(model_section("a", DIM, reference=40, window=40,
                                     permutations=99) +
                       model_section("b", DIM, reference=40, window=40))
        d.signal(signal.SIGHUP)
        self._wait_log(d, "configuration reloaded")
        replies = d.send_lines(batch(rng, 3, model="b"))
        self.assertEqual(replies, [{"done": True, "accepted": 3,
                                    "rejected": 0}])
        m = d.metrics()
        self.assertEqual(m["driftd_reloads_total"], 1)
        self.assertEqual(m["driftd_reload_failures_total"], 1)

    def test_restart_continues_window_ids(self):
        """A clean restart restores the reference from PostgreSQL (no new
        warm-up: the first window_size records make a window) and window
        ids carry on exactly where they stopped."""
        models = model_section("r", DIM, reference=30, window=30,
                               permutations=99)
        d = self.daemon(models).start()
        rng = np.random.default_rng(3)
        d.send_lines(batch(rng, 30 + 2 * 30, model="r"))
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = 'r'", 2)
        self.assertEqual(d.stop(), 0)

        d.start()
        d.send_lines(batch(rng, 2 * 30, model="r"))
        rows = d.wait_rows("SELECT window_id, reference_set_id "
                           "FROM driftd.windows WHERE model = 'r' "
                           "ORDER BY 1", 4)
        self.assertEqual([r[0] for r in rows], ["1", "2", "3", "4"])
        self.assertEqual(len({r[1] for r in rows}), 1, rows)

    def test_time_windows(self):
        """window.interval closes windows by time; one below window.min_size
        is recorded as insufficient_data (not tested) instead."""
        d = self.daemon(model_section("t", DIM, reference=30, window=0,
                                      interval="1s", permutations=99,
                                      extra="window.min_size = 20\n"))
        d.start()
        rng = np.random.default_rng(4)
        d.send_lines(batch(rng, 30 + 25, model="t"))
        rows = d.wait_rows("SELECT window_id, n, status FROM driftd.windows "
                           "WHERE model = 't'", 1, timeout=10)
        self.assertEqual(rows, [["1", "25", "tested"]])
        d.send_lines(batch(rng, 5, model="t"))
        rows = d.wait_rows("SELECT window_id, n, status FROM driftd.windows "
                           "WHERE model = 't' ORDER BY 1", 2, timeout=10)
        self.assertEqual(rows[1], ["2", "5", "insufficient_data"])
        rows = self.env.pg.psql(
            "SELECT test, statistic, p_value, threshold, drifted "
            "FROM driftd.drift_history WHERE model = 't' AND window_id = 2")
        self.assertEqual(rows, [["insufficient_data", "5", None, "20", "f"]])
        # No records: no window at all.
        time.sleep(2.2)
        self.assertEqual(len(self.env.pg.psql(
            "SELECT 1 FROM driftd.windows WHERE model = 't'")), 2)
        d.send_lines(batch(rng, 20, model="t"))
        rows = d.wait_rows("SELECT window_id, n, status FROM driftd.windows "
                           "WHERE model = 't' ORDER BY 1", 3, timeout=10)
        self.assertEqual(rows[2], ["3", "20", "tested"])

    def _wait_log(self, d, text, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in d.log_text():
                return
            time.sleep(0.05)
        self.fail(f"{text!r} not in log:\n{d.log_text()}")


if __name__ == "__main__":
    unittest.main(verbosity=2)

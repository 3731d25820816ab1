#!/usr/bin/python3
"""The K-of-M alarm history across restarts: a slice that drifted in its
last window before a kill -9 alarms on its next drifted window with
alarm.k = 2 of alarm.m = 3, from the history restored out of PostgreSQL (and
out of the spill journal for windows not yet written); with the database
down at start the daemon goes ready and says once that the history starts
empty."""

import json
import signal
import time
import unittest

import numpy as np

from driftd_harness import Env, model_section, record
from webhook_receiver import Receiver

DIM = 4
SIZE = 40
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EMPTY = "K-of-M alarm history starts empty"


def kofm_model(name, extra="", m=3):
    return model_section(name, DIM, slice_by="s", reference=SIZE, window=SIZE,
                         detectors="mmd", permutations=99,
                         extra=f"alarm.k = 2\nalarm.m = {m}\n" + extra)


def rows_of(rng, model, shift=0.0, n=SIZE):
    return [record(model, rng.normal(size=DIM) + shift, {"s": "a"})
            for _ in range(n)]


class AlarmHistory(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env().__enter__()
        cls.r = Receiver(cls.env.tmp.name, [SECRET]).start()

    @classmethod
    def tearDownClass(cls):
        cls.r.stop()
        cls.env.__exit__(None, None, None)

    def hook(self):
        return ("[webhook.hook]\n"
                f"url = {self.r.url('/kofm')}\nsecret = {SECRET}\n"
                "cooldown = 0\nallow_addresses = loopback\n")

    def daemon(self, models):
        d = self.env.driftd(models + self.hook(), log_level="info")
        self.addCleanup(d.close)
        return d

    def decisions(self, model, above=0):
        """(slice, window_id, drifted, alarm, recent_drifted) per window."""
        return self.env.pg.psql(
            "SELECT slice, window_id, drifted, alarm, recent_drifted FROM "
            f"driftd.window_decisions WHERE model = '{model}' AND "
            f"window_id > {above} ORDER BY window_id, slice")

    def wait_windows(self, d, model, count):
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE "
                    f"model = '{model}'", count, timeout=60)

    def alarms_of(self, model):
        """Slices of model in the drift.detected deliveries."""
        out = []
        for x in self.r.deliveries():
            body = json.loads(x["body"])
            if body["type"] == "drift.detected" and \
                    body["data"]["model"] == model:
                out += [s["slice"] for s in body["data"]["slices"]]
        return sorted(out)

    def since_start(self, d):
        # (PostgreSQL's "the database system is starting up" is no start.)
        return d.log_text().split(" starting: ")[-1]

    def test_kill_9_keeps_the_history(self):
        """One drifted window, kill -9, one more: 2 of the last 3 drifted,
        so the slice (and "*") alarms.  The control model ctl sees the same
        records, but its windows are deleted from the database before the
        restart: its second drifted window is 1 of 3 and does not alarm."""
        d = self.daemon(kofm_model("kofm", "on_drift = hook\n") +
                        kofm_model("ctl", "on_drift = hook\n"))
        d.start()
        rng = np.random.default_rng(1)
        warm = rows_of(rng, "kofm")
        drift = rows_of(rng, "kofm", shift=1.5)
        both = lambda lines: lines + [l.replace('"kofm"', '"ctl"')
                                      for l in lines]
        d.send_lines(both(warm + drift))
        self.wait_windows(d, "kofm", 2)
        self.wait_windows(d, "ctl", 2)
        first = self.decisions("kofm")
        self.assertEqual([r[0] for r in first], ["*", "s=a"])
        self.assertEqual({tuple(r[2:]) for r in first}, {("t", "f", "1")})
        top = max(int(r[1]) for r in first)
        self.env.pg.psql("DELETE FROM driftd.windows WHERE model = 'ctl'")
        d.kill()

        d.start()
        log = self.since_start(d)
        self.assertIn("restored K-of-M history of 2 slices of model kofm",
                      log)
        self.assertIn("restored K-of-M history of 0 slices of model ctl",
                      log)
        self.assertNotIn(EMPTY, log)
        # The restored slices outlive the first sweeps although no record
        # came yet (their idle time counts from the restart).
        time.sleep(1.5)
        m = d.metrics()
        self.assertEqual(m['driftd_model_alarm_histories_restored_total'
                           '{model="kofm"}'], 2)
        self.assertEqual(m['driftd_model_alarm_histories_restored_total'
                           '{model="ctl"}'], 0)
        self.assertEqual(m['driftd_model_slices{model="kofm"}'], 2)
        self.assertEqual(m['driftd_model_slices_expired_total{model="kofm"}'],
                         0)

        # The next drifted window, tested against the restored references.
        d.send_lines(both(rows_of(rng, "kofm", shift=1.5)))
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = 'kofm' AND "
                    f"window_id > {top}", 2)
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = 'ctl'", 2)
        second = self.decisions("kofm", top)
        self.assertEqual([(r[0],) + tuple(r[2:]) for r in second],
                         [("*", "t", "t", "2"), ("s=a", "t", "t", "2")])
        control = self.decisions("ctl")
        self.assertEqual([(r[0],) + tuple(r[2:]) for r in control],
                         [("*", "t", "f", "1"), ("s=a", "t", "f", "1")])
        # drift_history agrees: both windows of s=a drifted on mmd.
        rows = self.env.pg.psql(
            "SELECT drifted FROM driftd.drift_history WHERE model = 'kofm' "
            "AND slice = 's=a' AND test = 'mmd' ORDER BY window_id")
        self.assertEqual(rows, [["t"], ["t"]])
        self.r.wait(1, pred=lambda x: json.loads(x["body"])["data"]
                    .get("model") == "kofm")
        self.assertEqual(self.alarms_of("kofm"), ["*", "s=a"])
        self.assertEqual(self.alarms_of("ctl"), [])
        m = d.metrics()
        self.assertEqual(m['driftd_model_alarms_total{model="kofm"}'], 2)
        self.assertEqual(m['driftd_model_alarms_total{model="ctl"}'], 0)

    def test_windows_still_in_the_journal_count(self):
        """The database holds a window that did not drift; the next one,
        which did, waits in the spill journal while PostgreSQL is stopped
        when the daemon is killed.  At restart the history is the database's
        decision followed by the journal's, so one more drifted window is 2
        of 3 and alarms (the database alone would give 1 of 3)."""
        d = self.daemon(kofm_model("jr"))
        d.start()
        rng = np.random.default_rng(2)
        d.send_lines(rows_of(rng, "jr") + rows_of(rng, "jr"))
        self.wait_windows(d, "jr", 2)
        self.assertEqual({tuple(r[2:]) for r in self.decisions("jr")},
                         {("f", "f", "0")})
        self.env.pg.stop()
        try:
            d.send_lines(rows_of(rng, "jr", shift=1.5))
            deadline = time.monotonic() + 30
            while d.metrics()["driftd_store_journal_records"] < 2:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.2)
            d.kill()
        finally:
            self.env.pg.start()

        d.start()
        d.send_lines(rows_of(rng, "jr", shift=1.5))
        self.wait_windows(d, "jr", 6)
        rows = self.decisions("jr")
        self.assertEqual([(r[0],) + tuple(r[2:]) for r in rows],
                         [("*", "f", "f", "0"), ("s=a", "f", "f", "0"),
                          ("*", "t", "f", "1"), ("s=a", "t", "f", "1"),
                          ("*", "t", "t", "2"), ("s=a", "t", "t", "2")])
        log = self.since_start(d)
        # (The database is shared with the other tests' models.)
        self.assertRegex(log, r"K-of-M history of \d+ slices found \(\d+ "
                              r"decisions in the database, 2 in the journal\)")
        self.assertIn("restored K-of-M history of 2 slices of model jr", log)

    def test_database_down_at_start(self):
        """The daemon goes ready on its journal, says once that the history
        starts empty, and keeps to that when the database comes back."""
        d = self.daemon(kofm_model("down"))
        d.start()
        rng = np.random.default_rng(3)
        d.send_lines(rows_of(rng, "down") + rows_of(rng, "down", shift=1.5))
        self.wait_windows(d, "down", 2)
        d.kill()
        self.env.pg.stop()
        try:
            d.start()
            self.assertEqual(self.since_start(d).count(EMPTY), 1)
            self.assertIn("alarm.m > 1 in down", self.since_start(d))
            self.assertEqual(d.http_get("/readyz")[0], 200)
        finally:
            self.env.pg.start()
        # Once the database answers, references come back for the warming
        # slices, but the history stays empty: decisions have begun.
        deadline = time.monotonic() + 30
        while d.metrics()["driftd_store_up"] != 1:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.2)
        d.send_lines(rows_of(rng, "down", shift=1.5))
        self.wait_windows(d, "down", 4)
        rows = self.decisions("down")
        self.assertEqual([tuple(r[2:]) for r in rows[2:]],
                         [("t", "f", "1"), ("t", "f", "1")])
        log = self.since_start(d)
        self.assertEqual(log.count(EMPTY), 1)
        self.assertNotIn("restored K-of-M history", log)
        self.assertEqual(d.metrics()['driftd_model_alarm_histories_restored_'
                                     'total{model="down"}'], 0)

    def test_reload_keeps_the_newest_min_of_old_and_new_m(self):
        """Drifted, then twice not, with alarm.m = 2: the drifted window has
        left the history.  A reload to alarm.m = 4 does not bring it back,
        so one more drifted window is 1 of 4, no alarm."""
        d = self.daemon(kofm_model("rl", m=2))
        d.start()
        rng = np.random.default_rng(4)
        d.send_lines(rows_of(rng, "rl") + rows_of(rng, "rl", shift=1.5) +
                     rows_of(rng, "rl") + rows_of(rng, "rl"))
        self.wait_windows(d, "rl", 6)
        d.write_config(kofm_model("rl", m=4) + self.hook())
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "configuration reloaded" not in d.log_text():
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        d.send_lines(rows_of(rng, "rl", shift=1.5))
        self.wait_windows(d, "rl", 8)
        rows = [(r[0],) + tuple(r[2:]) for r in self.decisions("rl")]
        self.assertEqual(rows[:6], [("*", "t", "f", "1"), ("s=a", "t", "f", "1"),
                                    ("*", "f", "f", "1"), ("s=a", "f", "f", "1"),
                                    ("*", "f", "f", "0"), ("s=a", "f", "f", "0")])
        self.assertEqual(rows[6:], [("*", "t", "f", "1"), ("s=a", "t", "f", "1")])
        self.assertEqual(self.env.pg.psql(
            "SELECT DISTINCT alarm_m FROM driftd.windows WHERE model = 'rl' "
            "ORDER BY 1"), [["2"], ["4"]])


if __name__ == "__main__":
    unittest.main()

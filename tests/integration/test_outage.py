#!/usr/bin/python3
"""PostgreSQL away: results spill to the journal in state_dir and are
written after it comes back, every window exactly once; the journal
survives kill -9; a daemon starts without the database when an earlier run
left its window ids; a full journal refuses new windows loudly.

Each test stops and starts its own PostgreSQL cluster."""

import threading
import time
import unittest

import numpy as np

from driftd_harness import Env, model_section, record

DIM = 4
OUTAGE_S = 60


def rows_of(rng, n, model, slices=("a", "b")):
    return [record(model, rng.normal(size=DIM), {"s": slices[i % len(slices)]})
            for i in range(n)]


class Sender(threading.Thread):
    """Steady ingest: BATCH records every PERIOD seconds until stopped."""

    def __init__(self, d, model, batch=10, period=0.1):
        super().__init__(daemon=True)
        self.d, self.model, self.batch, self.period = d, model, batch, period
        self.stop_flag = threading.Event()
        self.accepted = self.rejected = 0
        self.rng = np.random.default_rng(7)

    def run(self):
        while not self.stop_flag.is_set():
            done = self.d.send_lines(rows_of(self.rng, self.batch,
                                             self.model))[-1]
            self.accepted += done["accepted"]
            self.rejected += done["rejected"]
            time.sleep(self.period)

    def finish(self):
        self.stop_flag.set()
        self.join(30)


class Outage(unittest.TestCase):
    def setUp(self):
        self.env = Env().__enter__()
        self.addCleanup(self.env.__exit__, None, None, None)

    def daemon(self, models, **kw):
        d = self.env.driftd(models, log_level="notice", **kw)
        self.addCleanup(d.close)
        return d

    def wait_metric(self, d, name, pred, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = d.metrics()
            if pred(m.get(name, 0)):
                return m
            time.sleep(0.2)
        self.fail(f"{name} never satisfied the condition: {m.get(name)}\n"
                  + d.log_text()[-3000:])

    def assert_each_window_once(self, d, model):
        m = self.wait_metric(d, "driftd_store_pending", lambda v: v == 0,
                             timeout=120)
        closed = int(m['driftd_model_windows_total{model="%s"}' % model])
        rows = self.env.pg.psql(
            "SELECT slice, count(*), min(window_id), max(window_id) "
            f"FROM driftd.windows WHERE model = '{model}' GROUP BY slice")
        self.assertEqual(sum(int(r[1]) for r in rows), closed, rows)
        for s, n, lo, hi in rows:
            # Ids of one slice within one run are consecutive: none lost.
            self.assertEqual(int(hi) - int(lo) + 1, int(n), s)
        hist = self.env.pg.psql(
            "SELECT count(*), count(DISTINCT (slice, window_id)) FROM "
            f"driftd.drift_history WHERE model = '{model}' AND test = 'mmd'")
        self.assertEqual(hist, [[str(closed), str(closed)]])
        self.assertEqual(m["driftd_windows_dropped_total"], 0)
        return closed, m

    def test_postgres_stopped_60s_under_steady_ingest(self):
        d = self.daemon(model_section("o", DIM, slice_by="s", reference=20,
                                      window=20, permutations=49,
                                      detectors="mmd"))
        d.start()
        sender = Sender(d, "o")
        sender.start()
        self.addCleanup(sender.finish)
        time.sleep(3)
        self.env.pg.stop()
        stopped = time.monotonic()
        m = self.wait_metric(d, "driftd_store_journal_records",
                             lambda v: v > 0, timeout=30)
        self.assertEqual(m["driftd_store_up"], 0)
        # Results have somewhere to go: still ready, records accepted.
        self.assertEqual(d.http_get("/readyz")[0], 200)
        self.assertEqual(m["driftd_store_accepting"], 1)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        during = d.metrics()
        self.env.pg.start()
        time.sleep(3)
        sender.finish()
        self.assertEqual(sender.rejected, 0)
        closed, m = self.assert_each_window_once(d, "o")
        journaled = during["driftd_store_journal_records"]
        print(f"\n{closed} windows, {int(journaled)} waited in the journal "
              f"({int(during['driftd_store_journal_bytes'])} bytes) through "
              f"a {OUTAGE_S} s outage; {int(m['driftd_store_journal_replayed_total'])}"
              f" replayed", flush=True)
        self.assertGreater(journaled, 100)
        self.assertEqual(m["driftd_store_journal_records"], 0)
        self.assertGreaterEqual(m["driftd_store_journal_replayed_total"],
                                journaled)

    def test_journal_survives_kill_9_and_daemon_starts_without_database(self):
        models = model_section("j", DIM, slice_by="s", reference=20,
                               window=20, permutations=49, detectors="mmd")
        d = self.daemon(models)
        d.start()
        rng = np.random.default_rng(1)
        d.send_lines(rows_of(rng, 80, "j"))
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = 'j'", 5)
        self.env.pg.stop()
        d.send_lines(rows_of(rng, 80, "j"))
        self.wait_metric(d, "driftd_store_journal_records", lambda v: v >= 8)
        d.kill()

        # The database is still down: the daemon goes ready on its journal,
        # numbering above the ids its last run handed out.
        d.start()
        self.assertIn("going ready on the spill journal", d.log_text())
        self.assertEqual(d.http_get("/readyz")[0], 200)
        self.assertGreaterEqual(d.metrics()["driftd_store_journal_records"],
                                8)
        d.send_lines(rows_of(rng, 80, "j"))
        self.env.pg.start()
        m = self.wait_metric(d, "driftd_store_pending", lambda v: v == 0)
        rows = self.env.pg.psql(
            "SELECT slice, array_agg(window_id ORDER BY window_id) FROM "
            "driftd.windows WHERE model = 'j' GROUP BY slice ORDER BY slice")
        # 80 records each time: "*" closes 3, 4 and 3 windows (a warm-up of
        # 20 before the outage and again after the restart: the references
        # could not be restored while the database was down), a and b
        # 1, 2 and 1.
        counts = {s: len(ids.strip("{}").split(",")) for s, ids in rows}
        self.assertEqual(counts, {"*": 10, "s=a": 4, "s=b": 4}, rows)
        # "*" numbered 1..7 in the first run; the restart, without the
        # database, numbers above the lease its first run saved (ids up to
        # 63 were reserved), so none is reused.
        whole = [int(i) for i in rows[0][1].strip("{}").split(",")]
        self.assertEqual(whole[:7], list(range(1, 8)))
        self.assertGreaterEqual(whole[7], 64)
        self.assertEqual(whole[7:], list(range(whole[7], whole[7] + 3)))
        self.assertGreaterEqual(m["driftd_store_journal_replayed_total"], 8)

    def test_full_journal_refuses_new_windows(self):
        d = self.daemon(model_section("f", DIM, reference=2, window=2,
                                      detectors="centroid"),
                        extra_store="journal_max = 1M\n")
        d.start()
        rng = np.random.default_rng(2)
        self.env.pg.stop()
        refused = None
        for _ in range(200):
            replies = d.send_lines([record("f", rng.normal(size=DIM))
                                    for _ in range(100)])
            if replies[-1]["rejected"]:
                refused = replies[0]
                break
        self.assertIsNotNone(refused, "the journal never filled")
        self.assertEqual(refused["error"], "overloaded")
        self.assertIn("spill journal is full", refused["message"])
        m = self.wait_metric(d, "driftd_store_journal_full",
                             lambda v: v == 1)
        self.assertEqual(m["driftd_store_accepting"], 0)
        self.assertEqual(m["driftd_windows_dropped_total"], 0)
        self.assertLessEqual(m["driftd_store_journal_bytes"], 1 << 20)
        self.assertEqual(d.http_get("/readyz")[0], 503)
        deadline = time.monotonic() + 5
        while "spill journal full" not in d.log_text():
            self.assertLess(time.monotonic(), deadline, d.log_text()[-2000:])
            time.sleep(0.1)

        # Back: the journal drains, records are accepted again.
        self.env.pg.start()
        self.wait_metric(d, "driftd_store_journal_records", lambda v: v == 0,
                         timeout=120)
        self.assertEqual(d.http_get("/readyz")[0], 200)
        done = d.send_lines([record("f", rng.normal(size=DIM))
                             for _ in range(4)])[-1]
        self.assertEqual(done["rejected"], 0)
        self.assert_each_window_once_centroid(d)

    def assert_each_window_once_centroid(self, d):
        m = self.wait_metric(d, "driftd_store_pending", lambda v: v == 0)
        rows = self.env.pg.psql("SELECT count(*), max(window_id) FROM "
                                "driftd.windows WHERE model = 'f'")
        closed = int(m['driftd_model_windows_total{model="f"}'])
        self.assertEqual(rows, [[str(closed), str(closed)]])


if __name__ == "__main__":
    unittest.main(verbosity=2)

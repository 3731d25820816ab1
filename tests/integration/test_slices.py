#!/usr/bin/python3
"""Slice lifecycle and decisions through the real daemon: the max_slices cap
under 10 000 slice values, idle expiry, the whole-model reference fallback,
the K-of-M alarm rule and per-test effect-size floors, each read back from
PostgreSQL."""

import time
import unittest

import numpy as np

from driftd_harness import DaemonCase, model_section, record

DIM = 4


def rows_of(rng, n, model, slice_=None, shift=0.0, **kw):
    return [record(model, rng.normal(size=DIM) + shift, slice_, **kw)
            for _ in range(n)]


class ManySlices(DaemonCase):
    """10 000 distinct slice values against max_slices = 100: memory stays
    bounded, the excess is refused and counted, the first 99 slices (and
    "*") keep working."""

    MODELS = model_section("many", DIM, slice_by="k", reference=20,
                           window=20, permutations=49,
                           extra="max_slices = 100\n")
    DRIFTD = {"log_level": "warning"}

    def test_cap(self):
        rng = np.random.default_rng(1)
        rss_before = self.d.rss_kb()
        lines = [record("many", rng.normal(size=DIM), {"k": f"v{i}"},
                        id=f"r{i}") for i in range(10000)]
        replies = self.d.send_lines(lines)
        done = replies[-1]
        self.assertEqual(done["accepted"], 99)
        self.assertEqual(done["rejected"], 9901)
        errors = replies[:-1]
        self.assertTrue(all(e["error"] == "too_many_slices" for e in errors))
        self.assertEqual(errors[0]["id"], "r99")
        self.assertIn("max_slices", errors[0]["message"])

        m = self.d.metrics()
        self.assertEqual(m['driftd_model_slices{model="many"}'], 100)
        self.assertEqual(
            m['driftd_model_slices_refused_total{model="many"}'], 9901)
        self.assertEqual(m['driftd_records_rejected_total'
                           '{reason="too_many_slices"}'], 9901)
        # Bounded: 100 slices of 20-row references and windows of 4 floats
        # are a few hundred kB; the refused records left nothing behind.
        self.assertLess(m['driftd_model_sample_bytes{model="many"}'],
                        100 * 40 * DIM * 4 + 1)
        self.assertLess(self.d.rss_kb() - rss_before, 32 * 1024)

        # The first 99 slices warm up and close windows; the 100th value
        # is still refused.
        more = []
        for i in range(99):
            more += [record("many", rng.normal(size=DIM), {"k": f"v{i}"})
                     for _ in range(39)]
        self.assertEqual(self.d.send_lines(more)[-1]["rejected"], 0)
        rows = self.d.wait_rows(
            "SELECT slice FROM driftd.windows WHERE model = 'many' "
            "AND slice <> '*' AND status = 'tested'", 99)
        self.assertEqual(len({r[0] for r in rows}), 99)
        late = self.d.send_lines(rows_of(rng, 1, "many", {"k": "v5000"}))
        self.assertEqual(late[0]["error"], "too_many_slices")


class Lifecycle(DaemonCase):
    MODELS = (
        model_section("idle", DIM, slice_by="k", reference=20, window=0,
                      interval="500ms", permutations=49,
                      extra="window.min_size = 10\nslice.idle_timeout = 2s\n")
        + model_section("fb", DIM, slice_by="k", reference=40, window=20,
                        permutations=49,
                        extra="reference.min_size = 20\n")
        + model_section("kofm", DIM, reference=40, window=40,
                        permutations=199, alpha=0.05, detectors="mmd",
                        extra="alarm.k = 2\nalarm.m = 3\nseed = 7\n")
        + model_section("floor", DIM, reference=40, window=40,
                        permutations=199, alpha=0.05,
                        extra="effect_floor.by_test = mmd:1000\n"))
    DRIFTD = {"log_level": "warning"}

    def test_idle_slice_expires_and_comes_back_with_new_ids(self):
        rng = np.random.default_rng(2)
        # Warm-up of 20, then 25 records: one tested window by time.
        self.d.send_lines(rows_of(rng, 45, "idle", {"k": "x"}))
        first = self.d.wait_rows(
            "SELECT window_id FROM driftd.windows WHERE model = 'idle' "
            "AND slice = 'k=x' AND status = 'tested'", 1, timeout=10)
        # Then silence: after 2 s the slice is dropped, with its reference.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = self.d.metrics()
            if m['driftd_model_slices_expired_total{model="idle"}'] >= 1:
                break
            time.sleep(0.2)
        self.assertEqual(m['driftd_model_slices_expired_total{model="idle"}'],
                         1)
        self.assertEqual(m['driftd_model_slices{model="idle"}'], 1)
        self.d.wait_rows("SELECT 1 FROM driftd.reference_resets WHERE "
                         "model = 'idle' AND slice = 'k=x' AND "
                         "reason = 'expired'", 1, timeout=10)
        rows = self.env.pg.psql(
            "SELECT retired_at IS NOT NULL FROM driftd.reference_history "
            "WHERE model = 'idle' AND slice = 'k=x'")
        self.assertEqual(rows, [["t"]])

        # Back again: a new slice, warming up anew, numbering above every
        # id the model handed out before.
        top = int(self.env.pg.psql("SELECT max(window_id) FROM "
                                   "driftd.windows WHERE model = 'idle'")[0][0])
        self.d.send_lines(rows_of(rng, 45, "idle", {"k": "x"}))
        rows = self.d.wait_rows(
            "SELECT window_id FROM driftd.windows WHERE model = 'idle' "
            "AND slice = 'k=x' AND status = 'tested' ORDER BY 1", 2,
            timeout=10)
        self.assertEqual(rows[0], first[0])
        self.assertGreater(int(rows[1][0]), top)

    def test_small_slice_falls_back_to_whole_model_reference(self):
        rng = np.random.default_rng(3)
        ref = (rows_of(rng, 30, "fb", {"k": "big"}, role="reference")
               + rows_of(rng, 5, "fb", {"k": "small"}, role="reference"))
        self.assertEqual(self.d.send_lines(ref)[-1]["accepted"], 35)
        self.d.send_lines(rows_of(rng, 20, "fb", {"k": "small"}))
        rows = self.d.wait_rows(
            "SELECT w.reference_fallback, r.slice, r.n, w.status "
            "FROM driftd.windows w JOIN driftd.reference_sets r "
            "ON r.id = w.reference_set_id "
            "WHERE w.model = 'fb' AND w.slice = 'k=small'", 1)
        # 35 explicit records in "*" (>= 20), only 5 in k=small.
        self.assertEqual(rows, [["t", "*", "35", "tested"]])
        self.d.send_lines(rows_of(rng, 20, "fb", {"k": "big"}))
        rows = self.d.wait_rows(
            "SELECT w.reference_fallback, r.slice FROM driftd.windows w "
            "JOIN driftd.reference_sets r ON r.id = w.reference_set_id "
            "WHERE w.model = 'fb' AND w.slice = 'k=big'", 1)
        self.assertEqual(rows, [["f", "k=big"]])
        view = self.env.pg.psql(
            "SELECT reference_fallback FROM driftd.window_decisions "
            "WHERE model = 'fb' AND slice = 'k=small'")
        self.assertEqual(view, [["t"]])

    def test_k_of_m_alarm(self):
        """alarm.k = 2 of alarm.m = 3: the first drifted window does not
        alarm, the second does; the inputs are stored with the window."""
        rng = np.random.default_rng(4)
        lines = rows_of(rng, 40, "kofm") + rows_of(rng, 40, "kofm")
        lines += rows_of(rng, 40, "kofm", shift=3.0)
        lines += rows_of(rng, 40, "kofm", shift=3.0)
        self.d.send_lines(lines)
        rows = self.d.wait_rows(
            "SELECT window_id, drifted, recent_drifted, alarm, alarm_k, "
            "alarm_m, alpha, correction, family_size, drifted_tests "
            "FROM driftd.window_decisions WHERE model = 'kofm' "
            "ORDER BY window_id", 3)
        self.assertEqual([r[1:4] for r in rows],
                         [["f", "0", "f"], ["t", "1", "f"], ["t", "2", "t"]])
        self.assertEqual(rows[2][4:9], ["2", "3", "0.05", "bh", "1"])
        self.assertEqual(rows[2][9], "{mmd}")
        m = self.d.metrics()
        self.assertEqual(m['driftd_model_alarms_total{model="kofm"}'], 1)

    def test_effect_floor_per_test(self):
        """A clear shift clears alpha but not an MMD² floor of 1000: not
        drifted, and the floor is stored with the result."""
        rng = np.random.default_rng(5)
        self.d.send_lines(rows_of(rng, 40, "floor")
                          + rows_of(rng, 40, "floor", shift=3.0))
        rows = self.d.wait_rows(
            "SELECT test, p_value::float8 < 0.05, drifted, effect_floor "
            "FROM driftd.test_results WHERE model = 'floor' ORDER BY test",
            3)
        self.assertEqual(rows[2], ["mmd", "t", "f", "1000"])
        # centroid_cosine has no per-test floor: the default 0 applies.
        self.assertEqual(rows[0][0], "centroid_cosine")
        self.assertEqual(rows[0][3], "0")


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""Statistical validity through the whole daemon: under no drift the share of
drifted MMD windows stays at alpha; under a real shift nearly all drift.

Each slice has its own reference, so windows of different slices give
independent decisions; the whole-model slice "*" is left out because it
shares records with all of them."""

import math
import sys
import unittest

import numpy as np

from driftd_harness import DaemonCase, model_section, record

DIM = 8
SLICES = 40
WINDOWS = 5
REF, WIN = 100, 50
ALPHA = 0.05


def lines(rng, shift):
    out = []
    per_slice = REF + WINDOWS * WIN
    for i in range(per_slice):
        for s in range(SLICES):
            emb = rng.normal(size=DIM)
            if i >= REF:
                emb[0] += shift
            out.append(record("null" if shift == 0 else "shift", emb,
                              {"s": str(s)}))
    return out


class FalseAlarm(DaemonCase):
    MODELS = "".join(model_section(
        name, DIM, slice_by="s", reference=REF, window=WIN, permutations=199,
        alpha=ALPHA, correction="none", detectors="mmd")
        for name in ("null", "shift"))
    DRIFTD = {"log_level": "warning"}

    @classmethod
    def feed(cls):
        rng = np.random.default_rng(99)
        cls.d.send_lines(lines(rng, 0.0))
        cls.d.send_lines(lines(rng, 1.0))
        cls.d.wait_rows("SELECT 1 FROM driftd.drift_history WHERE "
                        "slice <> '*'", 2 * SLICES * WINDOWS, timeout=180)

    def drifted(self, model):
        rows = self.env.pg.psql(
            "SELECT count(*), count(*) FILTER (WHERE drifted) "
            "FROM driftd.drift_history WHERE model = '%s' AND slice <> '*' "
            "AND test = 'mmd'" % model)
        total, drifted = map(int, rows[0])
        self.assertEqual(total, SLICES * WINDOWS)
        return drifted

    def test_false_alarm_rate_matches_alpha(self):
        n = SLICES * WINDOWS
        k = self.drifted("null")
        sd = math.sqrt(n * ALPHA * (1 - ALPHA))
        print(f"\nfalse alarms: {k}/{n} windows at alpha {ALPHA}",
              file=sys.stderr)
        # Three standard deviations above alpha·n catches a liberal test
        # (e.g. a p-value without the +1, or repeated permutation seeds).
        self.assertLessEqual(k, n * ALPHA + 3 * sd, f"{k}/{n} false alarms")
        self.assertGreaterEqual(k, 1, "a test that never rejects is broken too")

    def test_power_under_shift(self):
        k = self.drifted("shift")
        print(f"\npower: {k}/{SLICES * WINDOWS} windows", file=sys.stderr)
        self.assertGreaterEqual(k, 0.95 * SLICES * WINDOWS, k)


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""Correction across the slices evaluated together, through the daemon.

Two models see the same kind of stream with no drift in 50 slices; their
windows close together on the interval tick, so each tick is one evaluation
of 51 windows (the 50 slices and "*").  With correction = bh the share of
evaluations in which any window is called drifted stays at or below alpha
(under the global null BH controls the family-wise error); with
correction = none it approaches 1 - (1 - alpha)^51."""

import math
import sys
import time
import unittest

import numpy as np

from driftd_harness import DaemonCase, model_section, record

DIM = 2
SLICES = 50
REF = 30          # explicit reference records per slice
PER_WINDOW = 10   # records per slice per evaluation
EVALS = 20
ALPHA = 0.1


def section(name, correction):
    # reference.size 150 keeps the time-only window of "*" (capped at four
    # reference sizes, 600 records) from closing by count in the middle of
    # a batch of 500.
    return model_section(
        name, DIM, slice_by="s", reference=150, window=0, interval="1s",
        permutations=999, alpha=ALPHA, correction=correction,
        detectors="mmd",
        extra="window.min_size = 10\nreference.min_size = 20\n")


class Family(DaemonCase):
    MODELS = section("bh", "bh") + section("none", "none")
    DRIFTD = {"log_level": "warning"}

    @classmethod
    def batch(cls, n, role=None):
        lines = []
        for model in ("bh", "none"):
            for s in range(SLICES):
                for _ in range(n):
                    kw = {"role": role} if role else {}
                    lines.append(record(model, cls.rng.normal(size=DIM),
                                        {"s": str(s)}, **kw))
        return lines

    @classmethod
    def evaluations(cls):
        """Per model, evaluations (windows sharing evaluated_at) and how
        many of them called any window drifted."""
        rows = cls.env.pg.psql(
            "SELECT model, count(*), count(*) FILTER (WHERE any_drift), "
            "       min(family_size), max(family_size) "
            "  FROM (SELECT model, evaluated_at, bool_or(drifted) AS any_drift,"
            "               max(family_size) AS family_size "
            "          FROM driftd.window_decisions "
            "         WHERE model IN ('bh', 'none') AND status = 'tested' "
            "         GROUP BY model, evaluated_at) e "
            " GROUP BY model ORDER BY model")
        return {r[0]: tuple(int(v) for v in r[1:]) for r in rows}

    @classmethod
    def feed(cls):
        cls.rng = np.random.default_rng(50)
        cls.d.send_lines(cls.batch(REF, role="reference"))
        for e in range(1, EVALS + 1):
            # Right after a tick's rows land, the next batch has most of
            # the 1 s interval to arrive: one batch, one evaluation.
            cls.d.send_lines(cls.batch(PER_WINDOW))
            cls.d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = "
                            "'none'", e * (SLICES + 1), timeout=60)
            cls.d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = "
                            "'bh'", e * (SLICES + 1), timeout=60)
        time.sleep(0.2)

    def test_evaluations_are_families_of_51(self):
        ev = self.evaluations()
        for model in ("bh", "none"):
            n, _, lo, hi = ev[model]
            self.assertEqual(n, EVALS, ev)
            self.assertEqual((lo, hi), (SLICES + 1, SLICES + 1), ev)

    def test_bh_controls_family_wise_rate_none_does_not(self):
        ev = self.evaluations()
        n_bh, any_bh = ev["bh"][:2]
        n_none, any_none = ev["none"][:2]
        expected_none = 1 - (1 - ALPHA) ** (SLICES + 1)
        print(f"\nshare of evaluations with any alarm, {SLICES + 1} windows "
              f"each, alpha {ALPHA}: bh {any_bh}/{n_bh}, none "
              f"{any_none}/{n_none} (1-(1-alpha)^{SLICES + 1} = "
              f"{expected_none:.3f})", file=sys.stderr)
        # bh: at or below alpha, with three binomial standard deviations
        # of room for the sampling of EVALS evaluations.
        sd = math.sqrt(n_bh * ALPHA * (1 - ALPHA))
        self.assertLessEqual(any_bh, n_bh * ALPHA + 3 * sd)
        # none: near 1 - (1 - alpha)^51 = 0.995.
        sd = math.sqrt(n_none * expected_none * (1 - expected_none))
        self.assertGreaterEqual(any_none, n_none * expected_none - 3 * sd - 1)
        self.assertGreater(any_none, any_bh)

    def test_per_window_threshold_is_the_corrected_cut_off(self):
        """With none, the cut-off is alpha itself; with bh it is p_(k) of
        the step-up rule, or alpha/51 when nothing was rejected."""
        rows = self.env.pg.psql(
            "SELECT DISTINCT threshold FROM driftd.drift_history "
            "WHERE model = 'none' AND test = 'mmd'")
        self.assertEqual(rows, [[str(ALPHA)]])
        rows = self.env.pg.psql(
            "SELECT count(*) FROM driftd.drift_history WHERE model = 'bh' "
            "AND test = 'mmd' AND threshold > %s" % ALPHA)
        self.assertEqual(rows, [["0"]])


if __name__ == "__main__":
    unittest.main(verbosity=2)

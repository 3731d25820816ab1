#!/usr/bin/python3
"""Every window detector through the real daemon: the registry's rows in
driftd.drift_history, no NaN anywhere, p-values corrected per test name
across the slices of one evaluation, skipped detectors logged, and the
random projection."""

import math
import unittest

import numpy as np

from driftd_harness import DaemonCase, model_section, record

DIM = 24
REF = 200
WIN = 200
ALPHA = 0.01
P_TESTS = ["mmd", "energy", "ks_dims", "classifier"]
ALL_TESTS = sorted(P_TESTS + ["centroid_cosine", "centroid_euclidean",
                              "health_effective_rank", "health_uniformity",
                              "health_mean_norm", "health_duplicates"])
EXTRA = ("energy.permutations = 200\nclassifier.permutations = 200\n")


def bh_threshold(p, alpha):
    """The largest p-value Benjamini-Hochberg rejects, else alpha/m."""
    p = sorted(p)
    m = len(p)
    k = max((i + 1 for i in range(m) if p[i] * m / (i + 1) <= alpha),
            default=0)
    return p[k - 1] if k else alpha / m


class AllDetectors(DaemonCase):
    # Records alternate between slices a and b. The "*" windows close at
    # records 400, 600 and 800; slice a's window at 799, slice b's at 800,
    # together with the third "*" window: one evaluation of two windows.
    # "cen" gets the same records with centroid alone: its "*" windows are
    # never gathered from the slices' rows, only their column sums read.
    MODELS = (model_section(
        "enc", DIM, slice_by="region", reference=REF, window=WIN,
        detectors="mmd, centroid, energy, ks_dims, health, classifier, "
                  "scores, calibration",
        permutations=200, alpha=ALPHA, extra=EXTRA)
        + model_section("cen", DIM, slice_by="region", reference=REF,
                        window=WIN, detectors="centroid")
        + model_section("proj", DIM, reference=REF, window=WIN,
                        detectors="mmd, energy, classifier",
                        permutations=200, alpha=ALPHA,
                        extra=EXTRA + "projection.dim = 6\n"))

    @classmethod
    def feed(cls):
        rng = np.random.default_rng(20261206)
        lines = []
        cls.sent = []  # (region, embedding as the daemon parses it)
        for i in range(4 * REF):
            region = "ab"[i % 2]
            emb = rng.normal(size=DIM) + 1.0
            if i >= 2 * REF and region == "b":
                emb[:DIM // 2] += 0.6
            lines.append(record("enc", emb, {"region": region}))
            lines.append(record("cen", emb, {"region": region}))
            cls.sent.append((region, np.float32(np.round(emb, 6))))
        for i in range(REF + WIN):
            emb = rng.normal(size=DIM)
            if i >= REF:
                emb[:4] += 1.0
            lines.append(record("proj", emb))
        cls.replies = cls.d.send_lines(lines)
        cls.rows = cls.d.wait_rows(
            "SELECT model, slice, window_id, test, statistic, p_value, "
            "threshold, drifted, permutations FROM driftd.test_results "
            "ORDER BY model, slice, window_id, test",
            5 * len(ALL_TESTS) + 5 * 2 + 3)

    def windows(self, model):
        out = {}
        for r in self.rows:
            if r[0] == model:
                out.setdefault((r[1], r[2]), {})[r[3]] = r
        return out

    def test_rows_of_every_detector(self):
        wins = self.windows("enc")
        self.assertEqual(sorted(wins), [("*", "1"), ("*", "2"), ("*", "3"),
                                        ("region=a", "1"),
                                        ("region=b", "1")])
        for key, tests in wins.items():
            self.assertEqual(sorted(tests), ALL_TESTS, key)

    def test_no_nan(self):
        for r in self.rows:
            self.assertTrue(math.isfinite(float(r[4])), r)
            if r[3] in P_TESTS:
                self.assertTrue(0.0 < float(r[5]) <= 1.0, r)
                self.assertTrue(0.0 < float(r[6]) <= ALPHA, r)
            else:
                self.assertIsNone(r[5], r)
        self.assertEqual(self.env.pg.psql(
            "SELECT count(*) FROM driftd.drift_history WHERE "
            "statistic = 'NaN' OR p_value = 'NaN' OR threshold = 'NaN'"),
            [["0"]])

    def test_shifted_slice_drifted(self):
        tests = self.windows("enc")[("region=b", "1")]
        for name in P_TESTS:
            self.assertEqual(tests[name][7], "t", tests[name])
        self.assertEqual(tests["classifier"][8], "200")

    def test_calm_slice_did_not_drift(self):
        tests = self.windows("enc")[("region=a", "1")]
        for name in P_TESTS:
            self.assertEqual(tests[name][7], "f", tests[name])

    def test_correction_per_test_name(self):
        wins = self.windows("enc")
        pair = [wins[("*", "3")], wins[("region=b", "1")]]
        for name in P_TESTS:
            p = [float(w[name][5]) for w in pair]
            want = bh_threshold(p, ALPHA)
            for w in pair:
                self.assertAlmostEqual(float(w[name][6]), want, delta=1e-12,
                                       msg=(name, p))
        # a window alone in its evaluation: BH with m = 1
        for name in P_TESTS:
            r = wins[("region=a", "1")][name]
            p = float(r[5])
            self.assertAlmostEqual(float(r[6]), p if p <= ALPHA else ALPHA,
                                   delta=1e-12)

    def test_thresholded_rows(self):
        tests = self.windows("enc")[("region=a", "1")]
        self.assertAlmostEqual(float(tests["centroid_cosine"][6]), 0.1)
        self.assertAlmostEqual(float(tests["health_effective_rank"][6]), 0.25)
        self.assertIsNone(tests["centroid_euclidean"][6])
        self.assertEqual(tests["health_effective_rank"][7], "f")

    def test_centroid_is_numpy_on_the_rows_sent(self):
        # The daemon keeps window means as records arrive (column sums);
        # they must be the means of exactly the window's rows, with the
        # other detectors (enc) or alone (cen).
        whole = [e for _, e in self.sent]
        by = {k: [e for r, e in self.sent if r == k] for k in "ab"}
        cases = {("*", "1"): (whole[:REF], whole[REF:2 * REF]),
                 ("*", "3"): (whole[:REF], whole[3 * REF:]),
                 ("region=a", "1"): (by["a"][:REF], by["a"][REF:]),
                 ("region=b", "1"): (by["b"][:REF], by["b"][REF:])}
        for model in ("enc", "cen"):
            wins = self.windows(model)
            for key, (ref, win) in cases.items():
                a = np.mean(np.array(ref, dtype=np.float64), axis=0)
                b = np.mean(np.array(win, dtype=np.float64), axis=0)
                cos = 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
                self.assertAlmostEqual(
                    float(wins[key]["centroid_cosine"][4]), cos,
                    delta=1e-9, msg=(model, key))
                self.assertAlmostEqual(
                    float(wins[key]["centroid_euclidean"][4]),
                    np.linalg.norm(a - b), delta=1e-9, msg=(model, key))
        self.assertEqual(
            {tuple(sorted(t)) for t in self.windows("cen").values()},
            {("centroid_cosine", "centroid_euclidean")})

    def test_skipped_detectors_logged(self):
        log = self.d.log_text()
        self.assertIn("scores: the window or its reference has no predicted "
                      "scores", log)
        self.assertNotIn("detector failed", log)

    def test_projection(self):
        wins = self.windows("proj")
        self.assertEqual(sorted(wins), [("*", "1")])
        tests = wins[("*", "1")]
        self.assertEqual(sorted(tests), ["classifier", "energy", "mmd"])
        for name in ("mmd", "energy"):
            self.assertEqual(tests[name][7], "t", tests[name])


if __name__ == "__main__":
    unittest.main()

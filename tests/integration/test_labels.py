#!/usr/bin/python3
"""Scores and labels through the daemon: labels sent later are joined by id
to their scored records, calibration numbers per slice and window reach
driftd.calibration_history (checked against numpy), calibration.degraded is
raised when ECE or Brier worsens beyond the margin over the reference, and
labels that match nothing are refused and counted."""

import json
import os
import sys
import time
import unittest

import numpy as np

from driftd_harness import SOURCE_ROOT, DaemonCase, model_section, record

sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "data"))
from gen_scores_vectors import calibration_case  # noqa: E402


def summarize(scores, labels):
    """ECE, MCE, Brier and accuracy as detectors/calibration defines them
    (the numpy/sklearn reference of its unit tests)."""
    v, _ = calibration_case(scores, labels)
    return v["ece"], v["mce"], v["brier"], v["accuracy"]

DIM = 4
N = 40
NC = 100   # records per window of model cal
# ECE over few records is noisy (and biased upwards): the margins leave a
# calibrated window of NC records room, not a miscalibrated one.
CAL = ("scores.width = {k}\ncalibration.min_labels = 30\n"
       "calibration.ece_margin = 0.15\ncalibration.brier_margin = 0.1\n")


def scored(rng, model, p, slice_=None, **kw):
    scores = [float(v) for v in np.atleast_1d(p)]
    return record(model, rng.normal(size=DIM), slice_, scores=scores, **kw)


def label_only(model, id_, y):
    return '{"model":"%s","id":"%s","label":%d}' % (model, id_, y)


class Labels(DaemonCase):
    MODELS = (
        model_section("cal", DIM, slice_by="s", reference=NC, window=NC,
                      permutations=49, detectors="mmd, calibration",
                      extra=CAL.format(k=1) + "on_drift = cal-hook\n")
        + model_section("mc", DIM, reference=N, window=N, permutations=49,
                        detectors="mmd, calibration", extra=CAL.format(k=3))
        + model_section("ttl", DIM, reference=N, window=N, permutations=49,
                        detectors="mmd, calibration",
                        extra=CAL.format(k=1)
                        + "labels.ttl = 1s\nlabels.max_pending = 2\n")
        + model_section("plain", DIM, reference=N, window=N)
        # Nothing listens there: the outbox rows are what is checked.
        + "[webhook.cal-hook]\nurl = http://127.0.0.1:9/hook\n"
          "secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
          "events = calibration.degraded\ncooldown = 0\n"
          "allow_addresses = loopback\n")
    DRIFTD = {"log_level": "warning"}

    def expected(self, pairs, k=1):
        s = np.array([np.float32(p) for p, _ in pairs], dtype=np.float32)
        return summarize(s.reshape(len(pairs), k),
                         np.array([y for _, y in pairs]))

    def calibration(self, model, slice_):
        return self.env.pg.psql(
            "SELECT h.window_id, h.n_labeled, h.ece, h.mce, h.brier, "
            "h.accuracy, c.reference_ece, c.reference_brier, c.degraded "
            "FROM driftd.calibration_history h JOIN "
            "driftd.calibration_results c USING (model, slice, window_id) "
            f"WHERE h.model = '{model}' AND h.slice = '{slice_}' "
            "ORDER BY h.window_id")

    def assert_numbers(self, row, want):
        for got, w in zip(row, want):
            self.assertAlmostEqual(float(got), w, places=9)

    def test_delayed_labels_make_calibration_history(self):
        rng = np.random.default_rng(1)
        sl = {"s": "eu"}
        # Warm-up records with inline labels: the reference's baseline.
        p = rng.uniform(size=NC)
        ref = [(v, int(rng.uniform() < v)) for v in p]
        self.d.send_lines([scored(rng, "cal", v, sl, label=y)
                           for v, y in ref])

        def window(tag, flip):
            p = rng.uniform(size=NC)
            y = [int(rng.uniform() < v) ^ flip for v in p]
            # NC-1 scored records with ids, their labels on their own later,
            # then one record with its label inline closes the window.
            lines = [scored(rng, "cal", p[i], sl, id=f"{tag}-{i}")
                     for i in range(NC - 1)]
            done = self.d.send_lines(lines)[-1]
            self.assertEqual(done["rejected"], 0)
            done = self.d.send_lines([label_only("cal", f"{tag}-{i}", y[i])
                                      for i in range(NC - 1)])[-1]
            self.assertEqual(done, {"done": True, "accepted": NC - 1,
                                    "rejected": 0})
            self.d.send_lines([scored(rng, "cal", p[-1], sl, label=y[-1])])
            return list(zip(p, y))

        good = window("w1", 0)
        bad = window("w2", 1)
        rows = self.d.wait_rows(
            "SELECT 1 FROM driftd.calibration_history WHERE model = 'cal' "
            "AND slice = 's=eu'", 2)
        rows = self.calibration("cal", "s=eu")
        base = self.expected(ref)
        for row, pairs, degraded in ((rows[0], good, "f"),
                                     (rows[1], bad, "t")):
            self.assertEqual(row[1], str(NC))
            self.assert_numbers(row[2:6], self.expected(pairs))
            self.assert_numbers(row[6:8], (base[0], base[2]))
            self.assertEqual(row[8], degraded, row)
        # The whole-model slice got the same pairs.
        self.assertEqual([r[1:] for r in self.calibration("cal", "*")],
                         [r[1:] for r in rows])
        saved = self.env.pg.psql(
            "SELECT cal_n, cal_ece, cal_brier FROM driftd.reference_sets "
            "WHERE model = 'cal' AND slice = 's=eu'")
        self.assertEqual(saved[0][0], str(NC))
        self.assert_numbers(saved[0][1:], (base[0], base[2]))
        view = self.env.pg.psql(
            "SELECT calibration_degraded FROM driftd.window_decisions "
            "WHERE model = 'cal' AND slice = 's=eu' ORDER BY window_id")
        self.assertEqual(view, [["f"], ["t"]])
        # One calibration.degraded event for that evaluation, listing the
        # slice and "*", with the window's ECE and Brier against the
        # baseline's.
        events = self.env.pg.psql(
            "SELECT event, body::jsonb -> 'data' FROM driftd.webhook_outbox "
            "WHERE model = 'cal'")
        self.assertEqual(len(events), 1, events)
        self.assertEqual(events[0][0], "calibration.degraded")
        data = json.loads(events[0][1])
        slices = {s["slice"]: s for s in data["slices"]}
        self.assertEqual(set(slices), {"*", "s=eu"})
        tests = {t["test"] for t in slices["s=eu"]["tests"]}
        self.assertEqual(tests, {"ece", "brier"})
        m = self.d.metrics()
        self.assertGreaterEqual(
            m['driftd_model_labels_total{model="cal",outcome="joined"}'],
            2 * (NC - 1))

    def test_multiclass(self):
        rng = np.random.default_rng(2)
        probs = rng.dirichlet([1, 1, 1], size=2 * N)
        labels = [int(rng.choice(3, p=row)) for row in probs]
        lines = [scored(rng, "mc", probs[i], label=labels[i])
                 for i in range(2 * N)]
        self.assertEqual(self.d.send_lines(lines)[-1]["rejected"], 0)
        self.d.wait_rows("SELECT 1 FROM driftd.calibration_history WHERE "
                         "model = 'mc'", 1)
        row = self.calibration("mc", "*")[0]
        pairs = list(zip(probs[N:], labels[N:]))
        s = np.array(probs[N:], dtype=np.float32)
        want = summarize(s, np.array(labels[N:]))
        self.assertEqual(row[1], str(N))
        self.assert_numbers(row[2:6], want)
        self.assertEqual(len(pairs), N)

    def test_bad_labels_are_refused_and_counted(self):
        rng = np.random.default_rng(3)
        cases = [
            (label_only("cal", "never-sent", 1), "unknown_id",
             "no scored record"),
            ('{"model":"cal","label":1}', "bad_field", "needs the id"),
            (label_only("cal", "x", 2), "bad_field", "not a class"),
            (record("cal", rng.normal(size=DIM), {"s": "eu"}), "bad_field",
             "expects 1 scores"),
            (scored(rng, "cal", [0.1, 0.9], {"s": "eu"}), "bad_field",
             "got 2"),
            (scored(rng, "mc", [0.2, 0.3, 0.5], label=3), "bad_field",
             "not a class"),
            (label_only("plain", "x", 1), "unsupported", "takes no labels"),
        ]
        before = self.d.metrics()
        for line, reason, words in cases:
            replies = self.d.send_lines([line])
            self.assertEqual(replies[0]["error"], reason, (line, replies))
            self.assertIn(words, replies[0]["message"])
        m = self.d.metrics()
        key = 'driftd_records_rejected_total{reason="unknown_id"}'
        self.assertEqual(m[key] - before[key], 1)
        key = 'driftd_model_labels_total{model="cal",outcome="unmatched"}'
        self.assertEqual(m[key] - before[key], 1)

    def test_labels_expire_and_give_way(self):
        rng = np.random.default_rng(4)
        self.d.send_lines([scored(rng, "ttl", 0.5, id=f"t{i}")
                           for i in range(3)])
        m = self.d.metrics()
        # labels.max_pending = 2: the oldest gave way.
        self.assertEqual(m['driftd_model_labels_pending{model="ttl"}'], 2)
        self.assertEqual(
            m['driftd_model_labels_total{model="ttl",outcome="evicted"}'], 1)
        self.assertEqual(self.d.send_lines([label_only("ttl", "t0", 1)])[0]
                         ["error"], "unknown_id")
        time.sleep(2.5)
        self.assertEqual(self.d.send_lines([label_only("ttl", "t1", 1)])[0]
                         ["error"], "unknown_id")
        m = self.d.metrics()
        self.assertEqual(
            m['driftd_model_labels_total{model="ttl",outcome="expired"}'], 2)
        self.assertEqual(m['driftd_model_labels_pending{model="ttl"}'], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)

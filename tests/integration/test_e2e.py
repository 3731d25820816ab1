#!/usr/bin/python3
"""End to end: NDJSON over TCP → windows per slice → MMD and centroid on the
workers → rows in the real PostgreSQL, read back through the public views."""

import datetime
import unittest

import numpy as np

from driftd_harness import DaemonCase, model_section, record

DIM = 16
REF = 300
WIN = 300
SLICES = ["eu", "us", "asia"]
T0 = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)


def stream(rng, phase_records, shift_slice=None, shift=0.0, t_offset=0):
    """Round-robin over the slices.  Embeddings sit around (1, ..., 1), as
    real ones sit away from the origin, so that cosine distances between
    centroids mean something; SHIFT moves half the coordinates of one
    slice."""
    lines = []
    for i in range(phase_records * len(SLICES)):
        region = SLICES[i % len(SLICES)]
        emb = rng.normal(size=DIM) + 1.0
        if region == shift_slice:
            emb[:DIM // 2] += shift
        ts = (T0 + datetime.timedelta(seconds=t_offset + i)).isoformat()
        ts = ts.replace("+00:00", "Z")
        lines.append(record("enc", emb, {"region": region}, ts=ts,
                            id=f"r{t_offset + i}"))
    return lines


class EndToEnd(DaemonCase):
    MODELS = model_section("enc", DIM, slice_by="region", reference=REF,
                           window=WIN, permutations=200, alpha=0.01)
    DRIFTD = {}

    @classmethod
    def feed(cls):
        rng = np.random.default_rng(20261130)
        ref = stream(rng, REF)
        live = stream(rng, 2 * WIN, shift_slice="eu", shift=0.5,
                      t_offset=len(ref))
        cls.sent = len(ref) + len(live)
        cls.replies = cls.d.send_lines(ref + live)
        # 2 windows per slice, 8 for "*" (its reference took the first 300).
        cls.rows = cls.d.wait_rows(
            "SELECT model, slice, window_id, n, test, statistic, p_value, "
            "threshold, drifted, window_start, window_end "
            "FROM driftd.drift_history WHERE test = 'mmd' "
            "ORDER BY slice, window_id", 2 * 3 + 8)

    def mmd_rows(self, slice_):
        return [r for r in self.rows if r[1] == slice_]

    def test_every_record_accepted(self):
        self.assertEqual(self.replies, [{"done": True, "accepted": self.sent,
                                         "rejected": 0}])

    def test_shifted_slice_drifted(self):
        rows = self.mmd_rows("region=eu")
        self.assertEqual([r[2] for r in rows], ["1", "2"])
        for r in rows:
            self.assertEqual(r[8], "t", r)
            self.assertLessEqual(float(r[6]), float(r[7]))

    def test_other_slices_did_not_drift(self):
        for s in ("region=us", "region=asia"):
            rows = self.mmd_rows(s)
            self.assertEqual(len(rows), 2, s)
            for r in rows:
                self.assertEqual(r[8], "f", r)
                self.assertGreater(float(r[6]), float(r[7]))

    def test_whole_model_slice(self):
        rows = self.mmd_rows("*")
        self.assertEqual([r[2] for r in rows], [str(i) for i in range(1, 9)])
        # The last windows hold the shifted third of the traffic.
        self.assertEqual(rows[-1][8], "t")

    def test_window_columns(self):
        for r in self.rows:
            self.assertEqual(r[0], "enc")
            self.assertEqual(r[3], str(WIN))
            p = float(r[6])
            self.assertTrue(1 / 201 <= p <= 1.0, r)
            self.assertLessEqual(r[9], r[10])
        eu = self.mmd_rows("region=eu")
        # ts of the records: slice eu is every third record of the stream.
        first_live = T0 + datetime.timedelta(seconds=3 * REF)
        self.assertEqual(self.env.pg.psql(
            "SELECT window_start = '%s' FROM driftd.drift_history "
            "WHERE slice = 'region=eu' AND window_id = 1 AND test = 'mmd'"
            % first_live.isoformat()), [["t"]], eu[0])

    def test_centroid_rows(self):
        rows = self.env.pg.psql(
            "SELECT slice, avg(statistic) FROM driftd.drift_history "
            "WHERE test = 'centroid_cosine' AND slice <> '*' "
            "GROUP BY slice ORDER BY 2 DESC")
        self.assertEqual(rows[0][0], "region=eu")
        self.assertEqual(len(rows), 3)
        rows = self.env.pg.psql(
            "SELECT count(*) FROM driftd.drift_history "
            "WHERE test = 'centroid_euclidean' AND p_value IS NULL")
        self.assertGreaterEqual(int(rows[0][0]), 14)

    def test_latest_status(self):
        rows = dict((r[0], r[1:]) for r in self.env.pg.psql(
            "SELECT slice, drifted, tests FROM driftd.latest_status "
            "WHERE model = 'enc'"))
        self.assertEqual(set(rows), {"*", "region=eu", "region=us",
                                     "region=asia"})
        self.assertEqual(rows["region=eu"][0], "t")
        self.assertIn("mmd", rows["region=eu"][1])
        self.assertEqual(rows["region=us"], ["f", "{}"])

    def test_results_are_reproducible(self):
        """Each row records its reference set, seed, bandwidth and B."""
        rows = self.env.pg.psql(
            "SELECT count(*), count(DISTINCT w.reference_set_id), "
            "min(t.permutations), max(t.permutations), "
            "bool_and(t.bandwidth > 0), bool_and(t.seed IS NOT NULL), "
            "bool_and(rs.n = %d AND rs.dim = %d) "
            "FROM driftd.test_results t JOIN driftd.windows w "
            "USING (model, slice, window_id) "
            "JOIN driftd.reference_sets rs ON rs.id = w.reference_set_id "
            "WHERE t.test = 'mmd'" % (REF, DIM))
        self.assertEqual(rows, [["14", "4", "200", "200", "t", "t", "t"]])

    def test_metrics_count_the_stream(self):
        m = self.d.metrics()
        self.assertEqual(m["driftd_records_accepted_total"], self.sent)
        self.assertEqual(m['driftd_model_slices{model="enc"}'], 4)
        self.assertEqual(m["driftd_windows_closed_total"], 14)
        self.assertEqual(m["driftd_store_up"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)

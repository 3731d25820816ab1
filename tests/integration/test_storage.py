#!/usr/bin/python3
"""float16 sample storage (`storage = float16`) against float32: two models
in one daemon take the same records; the float16 model holds half the
sample memory, its test results stay close to the float32 model's (same
seed, same permutations), the reference it saves is the float32 value of
its half-precision rows, and after kill -9 it restores that reference and
tests the next windows against it."""

import struct
import time
import unittest

import numpy as np

from driftd_harness import Env, model_section, record

DIM = 16
SIZE = 100
TESTS = ("mmd", "energy", "centroid_cosine")


def models():
    common = dict(slice_by="region", reference=SIZE, window=SIZE,
                  detectors="mmd, energy, centroid", permutations=200)
    return (model_section("f32", DIM, extra="seed = 7\n", **common) +
            model_section("f16", DIM, extra="seed = 7\nstorage = float16\n",
                          **common))


def stream(rng, steps, shift_us):
    """STEPS rounds of one eu and one us record (us shifted by SHIFT_US),
    each sent to both models; returns the lines and the float32 rows."""
    lines, rows = [], {"eu": [], "us": []}
    for _ in range(steps):
        for region, shift in (("eu", 0.0), ("us", shift_us)):
            x = np.round(rng.normal(size=DIM) + shift, 6)
            rows[region].append(np.float32(x))
            for model in ("f32", "f16"):
                lines.append(record(model, x, {"region": region}))
    return lines, rows


class Float16Storage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env().__enter__()
        cls.d = cls.env.driftd(models(), log_level="info")
        try:
            cls.d.start()
            rng = np.random.default_rng(3)
            refs, cls.rows = stream(rng, SIZE, 0.0)
            wins, _ = stream(rng, SIZE, 0.5)
            replies = cls.d.send_lines(refs + wins)
            assert replies[-1]["accepted"] == 4 * 2 * SIZE, replies[-1]
            # Per model: eu and us one window each, "*" three.
            cls.d.wait_rows("SELECT 1 FROM driftd.test_results "
                            "WHERE test = 'mmd'", 10)
            cls.metrics = cls.d.metrics()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.close()
        finally:
            cls.env.__exit__(None, None, None)

    def results(self, model, skip=()):
        rows = self.env.pg.psql(
            "SELECT slice, window_id, test, statistic, p_value, drifted "
            f"FROM driftd.test_results WHERE model = '{model}' AND "
            f"test IN ({', '.join(repr(t) for t in TESTS)})")
        return {(s, int(w), t): (float(st), None if p in ("", None) or
                                 p.startswith("\x01") else float(p),
                                 d == "t")
                for s, w, t, st, p, d in rows if (s, int(w), t) not in skip}

    def assert_close(self, count, skip=()):
        """Every result row of f16 against the same row of f32 (rows in
        SKIP left out); returns f32's."""
        a, b = self.results("f32", skip), self.results("f16", skip)
        self.assertEqual(sorted(a), sorted(b))
        self.assertEqual(len(a), count)
        # Rounding moves a statistic by a small share of the test's own
        # scale (its largest value here, on the shifted windows), which
        # near zero is more than a share of the statistic itself.
        scale = {t: max(abs(v[0]) for k, v in a.items() if k[2] == t)
                 for t in TESTS}
        for key, (s32, p32, d32) in a.items():
            s16, p16, d16 = b[key]
            self.assertLessEqual(abs(s16 - s32),
                                 0.01 * abs(s32) + 1e-3 * scale[key[2]], key)
            if p32 is not None:
                self.assertLessEqual(abs(p16 - p32), 0.03, key)
            self.assertEqual(d16, d32, key)
        return a

    def test_results_close_to_float32(self):
        a = self.assert_close(15)
        window = max(w for s, w, _ in a if s == "region=us")
        self.assertTrue(a[("region=us", window, "mmd")][2],
                        "the shifted slice drifted")

    def test_half_the_sample_memory(self):
        b32 = self.metrics['driftd_model_sample_bytes{model="f32"}']
        b16 = self.metrics['driftd_model_sample_bytes{model="f16"}']
        # Three references of SIZE rows, no open window rows.
        self.assertEqual(b32, 3 * SIZE * DIM * 4)
        self.assertEqual(b16, b32 / 2)

    def test_spare_buffers_returned_when_idle(self):
        # Closed windows' buffers wait for the next windows, then go back
        # once a second passes without a window opening.
        gauge = 'driftd_model_spare_window_bytes{model="f16"}'
        self.assertIn(gauge, self.metrics)
        deadline = time.monotonic() + 10
        while self.d.metrics()[gauge] != 0:
            self.assertLess(time.monotonic(), deadline,
                            "spare buffers still held after 10 s idle")
            time.sleep(0.2)

    def saved(self, model, slice_):
        (hexdata,), = self.env.pg.psql(
            "SELECT encode(data, 'hex') FROM driftd.reference_sets "
            f"WHERE model = '{model}' AND slice = '{slice_}'")
        data = bytes.fromhex(hexdata)
        return np.array(struct.unpack(f"<{len(data) // 4}f", data),
                        dtype=np.float32).reshape(-1, DIM)

    def test_saved_reference_is_float32_of_the_halves(self):
        want = np.array(self.rows["eu"][:SIZE])
        np.testing.assert_array_equal(self.saved("f32", "region=eu"), want)
        got = self.saved("f16", "region=eu")
        np.testing.assert_array_equal(
            got, want.astype(np.float16).astype(np.float32))
        self.assertFalse(np.array_equal(got, want))

    def test_z_restored_after_kill(self):
        before = set(self.results("f32"))
        self.d.kill()
        self.d.start()
        self.assertIn("restoring 6 of", self.d.log_text().split(
            "starting")[-1])
        # No warm-up: the next SIZE rounds make one window per slice and
        # two of "*", tested against the restored references.
        lines, _ = stream(np.random.default_rng(4), SIZE, 0.0)
        self.assertEqual(self.d.send_lines(lines)[-1]["accepted"],
                         4 * SIZE)
        self.d.wait_rows("SELECT 1 FROM driftd.test_results WHERE "
                         "test = 'mmd'", 18)
        self.assert_close(12, skip=before)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/python3
"""Reference sets across restarts: kill -9 and the references come back
from PostgreSQL (raw or projected), the next windows are tested against them
without a new warm-up; a reset (HTTP and driftctl) retires them; explicit
references loaded with driftctl."""

import json
import os
import subprocess
import tempfile
import unittest

import numpy as np

from driftd_harness import SOURCE_ROOT, Env, model_section, record

DIM = 8
DRIFTCTL = os.path.join(SOURCE_ROOT, "tools", "driftctl")


def rows_of(rng, n, model, slice_=None, shift=0.0, **kw):
    return [record(model, rng.normal(size=DIM) + shift, slice_, **kw)
            for _ in range(n)]


def interleaved(rng, n, model, slices, shift=0.0):
    out = []
    for _ in range(n):
        for s in slices:
            out += rows_of(rng, 1, model, {"s": s}, shift)
    return out


class References(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.env.__exit__(None, None, None)

    def daemon(self, models, persist="raw"):
        d = self.env.driftd(models, log_level="info",
                            extra_store=f"persist_reference = {persist}\n"
                                        "persist_projection_dim = 4\n")
        self.addCleanup(d.close)
        return d

    def windows(self, model):
        return self.env.pg.psql(
            "SELECT slice, window_id, reference_set_id FROM driftd.windows "
            f"WHERE model = '{model}' ORDER BY slice, window_id")

    def check_restored_after_kill(self, model, persist):
        d = self.daemon(model_section(model, DIM, slice_by="s", reference=50,
                                      window=50, permutations=99), persist)
        d.start()
        rng = np.random.default_rng(1)
        d.send_lines(interleaved(rng, 100, model, ["a", "b"]))
        # "*": 50 + 3 windows; a and b: 50 + 1 window each.
        d.wait_rows(f"SELECT 1 FROM driftd.windows WHERE model = '{model}'",
                    5)
        sets = d.wait_rows(
            "SELECT slice, id, persist, dim FROM driftd.reference_sets "
            f"WHERE model = '{model}' ORDER BY slice", 3)
        before = {s: ref for s, _, ref in self.windows(model)}
        top = {s: int(i) for s, i, _ in self.windows(model)}
        d.kill()

        d.start()
        self.assertIn("restoring 3 of", d.log_text().split("starting")[-1])
        m = d.metrics()
        self.assertEqual(
            m[f'driftd_model_references_restored_total{{model="{model}"}}'],
            3)
        # No warm-up: 50 records per slice make one window each at once.
        d.send_lines(interleaved(rng, 50, model, ["a", "b"]))
        rows = d.wait_rows(
            "SELECT slice, window_id, reference_set_id FROM driftd.windows "
            f"WHERE model = '{model}' AND window_id > {max(top.values())}",
            4)
        for s, wid, ref in rows:
            self.assertEqual(ref, before[s], (s, wid))
        self.assertEqual(sorted(r[0] for r in rows),
                         ["*", "*", "s=a", "s=b"])
        return d, sets

    def test_kill_9_restores_raw_references(self):
        _, sets = self.check_restored_after_kill("raw", "raw")
        self.assertEqual({r[2] for r in sets}, {"raw"})
        self.assertEqual({r[3] for r in sets}, {str(DIM)})

    def test_kill_9_restores_projected_references(self):
        """persist_reference = projected keeps only a seeded projection
        (persist_projection_dim = 4 here): the restored reference tests windows
        projected the same way."""
        d, sets = self.check_restored_after_kill("proj", "projected")
        self.assertEqual({r[2] for r in sets}, {"projected"})
        self.assertEqual({r[3] for r in sets}, {"4"})
        rows = self.env.pg.psql(
            "SELECT source_dim, projection_seed IS NOT NULL FROM "
            "driftd.reference_sets WHERE model = 'proj' LIMIT 1")
        self.assertEqual(rows, [[str(DIM), "t"]])
        # Drift is still seen through the projection.
        rng = np.random.default_rng(9)
        d.send_lines(interleaved(rng, 50, "proj", ["a"], shift=2.0))
        rows = d.wait_rows(
            "SELECT drifted FROM driftd.drift_history WHERE model = 'proj' "
            "AND slice = 's=a' AND test = 'mmd' ORDER BY window_id DESC", 3)
        self.assertEqual(rows[0], ["t"])

    def test_persist_none_warms_up_again(self):
        d = self.daemon(model_section("none", DIM, reference=50, window=50,
                                      permutations=99), "none")
        d.start()
        rng = np.random.default_rng(2)
        d.send_lines(rows_of(rng, 100, "none"))
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = 'none'", 1)
        rows = self.env.pg.psql("SELECT persist, data IS NULL FROM "
                                "driftd.reference_sets WHERE model = 'none'")
        self.assertEqual(rows, [["none", "t"]])
        d.kill()
        d.start()
        d.send_lines(rows_of(rng, 50, "none"))
        m = d.metrics()
        self.assertEqual(m['driftd_model_references_restored_total'
                           '{model="none"}'], 0)
        # The 50 records went to a new warm-up: no second window.
        self.assertEqual(len(self.env.pg.psql(
            "SELECT 1 FROM driftd.windows WHERE model = 'none'")), 1)

    def test_reset_retires_references(self):
        models = model_section("rs", DIM, slice_by="s", reference=30,
                               window=30, permutations=99)
        d = self.daemon(models)
        d.start()
        rng = np.random.default_rng(3)
        d.send_lines(interleaved(rng, 60, "rs", ["a"]))
        d.wait_rows("SELECT 1 FROM driftd.reference_sets WHERE model = 'rs'",
                    2)
        status, body = d.http_post("/v1/models/rs/reference/reset")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"model": "rs", "slices_reset": 2})
        self.assertEqual(d.http_post("/v1/models/nope/reference/reset")[0],
                         404)
        self.assertEqual(d.http_get("/v1/models/rs/reference/reset")[0], 405)

        # The next 30 records warm up again: no window from them.
        d.send_lines(interleaved(rng, 30, "rs", ["a"]))
        d.wait_rows("SELECT 1 FROM driftd.reference_resets WHERE "
                    "model = 'rs' AND slice IS NULL AND reason = 'reset'", 1)
        self.assertEqual(len(self.windows("rs")), 2)
        rows = self.env.pg.psql(
            "SELECT count(*), count(retired_at) FROM driftd.reference_history "
            "WHERE model = 'rs'")
        self.assertEqual(rows, [["2", "2"]])

        # After a restart nothing comes back for rs (retired), so it warms
        # up once more.
        self.assertEqual(d.stop(), 0)
        d.start()
        self.assertIn("restoring 0 of", d.log_text().split("starting")[-1])
        self.assertEqual(d.metrics()['driftd_model_references_restored_total'
                                     '{model="rs"}'], 0)

    def test_driftctl_reference_reset_and_load(self):
        """driftctl reference load FILE --reset sends FILE's records as
        role=reference after a reset; the next windows are tested against
        them (explicit source), version 2 of the slice's reference."""
        models = model_section("ctl", DIM, reference=40, window=40,
                               permutations=99)
        d = self.daemon(models)
        d.start()
        rng = np.random.default_rng(4)
        d.send_lines(rows_of(rng, 80, "ctl"))
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = 'ctl'", 1)
        with tempfile.NamedTemporaryFile("w", suffix=".ndjson",
                                         delete=False) as f:
            for line in rows_of(rng, 40, "ctl", shift=1.0):
                f.write(line + "\n")
        self.addCleanup(os.unlink, f.name)
        http = f"http://127.0.0.1:{d.http_port}"
        ingest = f"127.0.0.1:{d.port}"
        r = subprocess.run(["/usr/bin/python3", DRIFTCTL, "--url", http,
                            "reference", "load", f.name, "--model", "ctl",
                            "--reset", "--ingest", ingest],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("40 reference records accepted", r.stdout)
        d.send_lines(rows_of(rng, 40, "ctl", shift=1.0))
        rows = d.wait_rows(
            "SELECT version, source, retired_at IS NULL FROM "
            "driftd.reference_history WHERE model = 'ctl' ORDER BY version",
            2)
        self.assertEqual(rows, [["1", "warmup", "f"],
                                ["2", "explicit", "t"]])
        r = subprocess.run(["/usr/bin/python3", DRIFTCTL, "--url", http,
                            "reference", "reset", "nope"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("unknown_model", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

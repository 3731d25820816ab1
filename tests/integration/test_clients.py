#!/usr/bin/python3
"""The Python client and driftctl send against the running daemon: a
script that uses only clients/python streams records and labels, its acks
match what it sent and its windows appear in driftd.drift_history;
driftctl send streams .npy (+ sidecar), CSV and NDJSON files, draws a
progress bar on a terminal, honours --rate and prints a correct summary."""

import json
import os
import pty
import subprocess
import sys
import time

import numpy as np

from driftd_harness import SOURCE_ROOT, DaemonCase, model_section

DIM = 32
N = 2000
WINDOW = 200
CLIENT_DIR = os.path.join(SOURCE_ROOT, "clients", "python")
DRIFTCTL = os.path.join(SOURCE_ROOT, "tools", "driftctl")


class Clients(DaemonCase):
    MODELS = (model_section("enc", DIM, slice_by="region", reference=WINDOW,
                            window=WINDOW, permutations=200) +
              model_section("m", DIM, slice_by="region", reference=1000,
                            window=1000))

    def tmp(self, name):
        return os.path.join(self.d.workdir, name)

    def driftctl(self, *args, tty=False, timeout=120):
        cmd = [sys.executable, DRIFTCTL, "send", "--port", str(self.d.port),
               *args]
        if not tty:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=timeout)
            return p.returncode, p.stdout, p.stderr
        master, slave = pty.openpty()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave,
                             text=True)
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
        out = p.communicate(timeout=timeout)[0]
        os.close(master)
        return p.returncode, out, err.decode()

    def test_python_script_stream_and_labels(self):
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": CLIENT_DIR}
        p = subprocess.run(
            [sys.executable, os.path.join(CLIENT_DIR, "example.py"),
             "--port", str(self.d.port), "--model", "enc", "--dim",
             str(DIM), "--n", str(N), "--shift-after", "1000"],
            capture_output=True, text=True, timeout=120, env=env,
            cwd=self.d.workdir)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(l) for l in p.stdout.splitlines()]
        frames = [l for l in lines if "seq" in l]
        self.assertEqual(sum(f["sent"] for f in frames), N)
        for f in frames:
            self.assertEqual((f["accepted"], f["rejected"], f["errors"]),
                             (f["sent"], 0, []))
        labels = next(l for l in lines if "labels" in l)
        self.assertEqual(labels["answered"], labels["labels"])
        done = lines[-1]
        self.assertTrue(done["done"])
        # Labels are answered one by one; whether they count as accepted
        # depends on the label join, not on the transport.
        self.assertEqual(done["accepted"] + done["rejected"],
                         N + labels["labels"])
        self.assertGreaterEqual(done["accepted"], N)
        whole = (N - WINDOW) // WINDOW
        per_slice = (N // 2 - WINDOW) // WINDOW
        rows = self.d.wait_rows(
            "SELECT slice, window_id, drifted FROM driftd.drift_history "
            "WHERE model = 'enc' AND test = 'mmd' "
            "ORDER BY slice, window_id", whole + 2 * per_slice)
        by_slice = {}
        for slice_, wid, drifted in rows:
            by_slice.setdefault(slice_, []).append((int(wid), drifted))
        self.assertEqual(len(by_slice["*"]), whole)
        self.assertEqual(len(by_slice["region=eu"]), per_slice)
        self.assertEqual(by_slice["*"][0][1], "f")
        self.assertEqual(by_slice["*"][-1][1], "t")

    def test_send_npy_with_sidecar(self):
        rng = np.random.default_rng(3)
        x = rng.standard_normal((300, DIM)).astype(np.float32)
        x[17, 4] = np.nan
        np.save(self.tmp("emb.npy"), x)
        with open(self.tmp("emb.ndjson"), "w") as f:
            for i in range(300):
                f.write(json.dumps({"id": f"n{i}",
                                    "slice": {"region": "eu"}}) + "\n")
        rc, out, err = self.driftctl(self.tmp("emb.npy"), "--model", "m",
                                     "--frame-bytes", "8192")
        self.assertEqual(rc, 1, err)
        self.assertIn("sent 300 records", out)
        self.assertIn("299 accepted, 1 rejected", out)
        self.assertIn("rejected by reason: not_finite 1", out)
        self.assertIn("record 18: not_finite: embedding[4] is NaN", out)

    def test_send_csv(self):
        with open(self.tmp("rec.csv"), "w") as f:
            f.write("model,id,slice.region," +
                    ",".join(f"e{i}" for i in range(DIM)) + "\n")
            for i in range(50):
                f.write(f"m,c{i},us," + ",".join("0.5" for _ in range(DIM))
                        + "\n")
        rc, out, err = self.driftctl(self.tmp("rec.csv"))
        self.assertEqual(rc, 0, err)
        self.assertIn("50 accepted, 0 rejected", out)

    def test_send_ndjson_rate_and_progress(self):
        with open(self.tmp("rec.ndjson"), "w") as f:
            for i in range(100):
                f.write(json.dumps({"model": "m", "id": f"j{i}",
                                    "embedding": [0.25] * DIM}) + "\n")
            f.write(json.dumps({"model": "nope", "embedding": [1]}) + "\n")
        t0 = time.monotonic()
        rc, out, err = self.driftctl(self.tmp("rec.ndjson"), "--rate", "200",
                                     "--frame-bytes", "2048", tty=True)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.assertEqual(rc, 1)
        self.assertIn("100 accepted, 1 rejected", out)
        self.assertIn("record 101: unknown_model", out)
        self.assertIn("\r[", err)
        self.assertIn("100.0% 101/101 records", err)
        # Without a terminal: no bar.
        rc, out, err = self.driftctl(self.tmp("rec.ndjson"))
        self.assertNotIn("\r", err)

    def test_send_labels(self):
        with open(self.tmp("labels.ndjson"), "w") as f:
            for i in range(5):
                f.write(json.dumps({"model": "m", "id": f"j{i}",
                                    "label": 1}) + "\n")
        rc, out, err = self.driftctl(self.tmp("labels.ndjson"), "--labels")
        self.assertIn(rc, (0, 1), err)
        self.assertIn("sent 5 records", out)

    def test_send_connection_refused(self):
        rc, out, err = self.driftctl(self.tmp("none.ndjson"))
        self.assertEqual(rc, 2)


if __name__ == "__main__":
    import unittest
    unittest.main(verbosity=2)

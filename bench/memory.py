#!/usr/bin/python3
"""Resident memory against the configured samples (DESIGN §5).

For 1, 100 and 1000 slices, with float32 and float16 sample storage, a
fresh daemon (throwaway PostgreSQL, one model at d = 768, only the
centroid detector) is filled through the binary protocol until every
slice holds a full reference and an open window one record short of
closing, records sent round-robin across the slices.  Then VmRSS and
VmHWM are read from /proc/PID/status and set against

    samples = Σ slices ("*" included) (reference.size + window.size)
              × dim × bytes per value (4, or 2 with float16)

The bar: RSS ≤ 1.2 × samples + the idle RSS of the same daemon (measured
after start-up, before any record), and idle RSS under 20 MB.

    bench/memory.py --build DIR [--json FILE] [--quick]
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM = 768
# (slices, reference.size = window.size): sizes that make the samples,
# not the fixed overhead, the bulk of each case.
CASES = ((1, 5000), (100, 500), (1000, 100))
QUICK_CASES = ((1, 500), (100, 50), (1000, 10))
STORAGES = ("float32", "float16")
FRAME_BYTES = 1 << 20


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def model_config(slices, size, storage):
    return (f"[model.mem]\ndim = {DIM}\nslice_by = s\n"
            f"reference.size = {size}\nwindow.size = {size}\n"
            f"max_slices = {slices + 1}\ndetectors = centroid\n"
            f"storage = {storage}\n")


def write_stream(path, slices, size):
    """Round-robin records until each slice has size reference records
    and size - 1 window records: frames of about 1 MiB."""
    import driftd_client as dc
    x = np.random.default_rng(7).standard_normal((997, DIM)).astype("<f4")
    rows = [v.tobytes() for v in x]
    heads = []
    for i in range(slices):
        enc = dc.encode_record({"model": "mem", "slice": {"s": f"{i:04d}"},
                                "embedding": x[0]})
        body = enc[4:]
        heads.append(struct.pack("<I", len(body)) +
                     body[:len(body) - 2 - 4 * DIM])
    per_slice = 2 * size - 1
    total = slices * per_slice
    rec_len = len(heads[0]) + 4 * DIM + 2
    per_frame = max(1, FRAME_BYTES // rec_len)
    with open(path, "wb") as f:
        for seq, lo in enumerate(range(0, total, per_frame)):
            hi = min(total, lo + per_frame)
            body = b"".join(heads[r % slices] + rows[r % 997] + b"\0\0"
                            for r in range(lo, hi))
            f.write(dc.frame(dc.RECORDS, seq,
                             struct.pack("<I", hi - lo) + body))
    return total


def one_case(build, env, tmp, slices, size, storage, log):
    d = env.driftd(model_config(slices, size, storage), log_level="warning",
                   extra_listen="max_frame = 4M")
    d.start()
    try:
        time.sleep(0.5)
        idle = proc_status(d.proc.pid)
        path = os.path.join(tmp, f"mem-{slices}-{size}")
        if not os.path.exists(path + ".n"):
            n = write_stream(path, slices, size)
            with open(path + ".n", "w") as f:
                f.write(str(n))
        n = int(open(path + ".n").read())
        out = subprocess.run(
            [os.path.join(build, "bench", "loadgen"), "send",
             f"tcp://127.0.0.1:{d.port}", "binary", "1", path, "1", str(n)],
            check=True, capture_output=True, text=True, timeout=600)
        r = json.loads(out.stdout)
        if r["accepted"] != n:
            raise RuntimeError(f"memory: {r['accepted']} of {n} accepted")
        # The whole-model window closes every window.size records: let its
        # last detector job finish before reading the resident size.
        time.sleep(1.0)
        full = proc_status(d.proc.pid)
        m = d.metrics()
        held = m.get('driftd_model_sample_bytes{model="mem"}')
    finally:
        d.close()
    width = 2 if storage == "float16" else 4
    samples = (slices + 1) * 2 * size * DIM * width
    res = {"slices": slices, "size": size, "dim": DIM, "storage": storage,
           "records": n, "samples_bytes": samples,
           "daemon_sample_bytes": held,
           "idle_rss": idle["VmRSS"], "rss": full["VmRSS"],
           "hwm": full["VmHWM"]}
    res["rss_over_idle_vs_samples"] = (res["rss"] - res["idle_rss"]) / samples
    res["hwm_over_idle_vs_samples"] = (res["hwm"] - res["idle_rss"]) / samples
    print(f"memory {slices} slices x (ref {size} + window {size}) x {DIM} "
          f"{storage}: samples {samples / 2**20:.1f} MiB, RSS "
          f"{res['rss'] / 2**20:.1f} MiB (HWM {res['hwm'] / 2**20:.1f}), "
          f"idle {res['idle_rss'] / 2**20:.1f} MiB, (RSS - idle) / samples "
          f"{res['rss_over_idle_vs_samples']:.3f}", file=log, flush=True)
    return res


def run(build, quick=False, storages=STORAGES, log=sys.stderr):
    os.environ.setdefault("DRIFTD_BUILD_ROOT", os.path.abspath(build))
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    from driftd_harness import Env
    cases = []
    with tempfile.TemporaryDirectory(prefix="driftd-mem-") as tmp, \
            Env() as env:
        for slices, size in (QUICK_CASES if quick else CASES):
            for storage in storages:
                cases.append(one_case(os.path.abspath(build), env, tmp,
                                      slices, size, storage, log))
    return {"cases": cases}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="smoke run")
    ap.add_argument("--storage", nargs="+", choices=STORAGES,
                    default=STORAGES)
    a = ap.parse_args()
    res = run(a.build, a.quick, a.storage)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

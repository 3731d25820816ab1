#!/usr/bin/python3
"""End to end: window close → rows committed in PostgreSQL (DESIGN §5).

A daemon with one model of 100 slices at d = 768 (reference and windows
of 200 records, MMD with 500 permutations and centroid), against a
throwaway PostgreSQL, takes a steady stream of binary frames: one record
per slice per frame, at RATE records/s.  The slices' windows are
staggered (slice i starts its first window i × window.size / 100 records
ahead) so that closes spread evenly over time, as they do under real
traffic, and the whole-model window "*" closes every window.size records
as well.

Two measures of close → commit, for every window closed in the timed
phase:
- from the database: windows.closed_at (PostgreSQL's now() in the
  transaction that wrote the row) minus windows.window_end (the arrival
  time of the record that closed the window, stamped by the daemon);
  exact per window, both on this machine's clock;
- from the daemon: driftd_window_commit_latency_seconds, the close →
  commit histogram on /metrics (quantiles interpolated in its buckets).
The detector time is driftd_detector_duration_seconds over the same
phase.  The bar: p99 of close → commit under p99 of the detector time
+ 50 ms.

    bench/latency.py --build DIR [--json FILE] [--quick]
"""

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM = 768
SLICES = 100
SIZE = 200
PERMUTATIONS = 500


def model_config():
    return (f"[model.lat]\ndim = {DIM}\nslice_by = s\n"
            f"reference.size = {SIZE}\nwindow.size = {SIZE}\n"
            f"max_slices = {SLICES + 1}\ndetectors = mmd, centroid\n"
            f"mmd.permutations = {PERMUTATIONS}\n")


class Feeder:
    """One binary connection; a thread reads and counts the ACKs."""

    def __init__(self, d):
        import driftd_client as dc
        self.dc = dc
        self.s = d.connect()
        self.s.sendall(dc.MAGIC + dc.frame(dc.HELLO, 0, b"\0\0\0\0"))
        self.accepted = self.rejected = self.acks = 0
        self.seq = 0
        x = np.random.default_rng(11).standard_normal(
            (1009, DIM)).astype("<f4")
        self.rows = [v.tobytes() for v in x]
        self.heads = []
        for i in range(SLICES):
            enc = dc.encode_record({"model": "lat",
                                    "slice": {"s": f"{i:03d}"},
                                    "embedding": x[0]})
            body = enc[4:]
            self.heads.append(struct.pack("<I", len(body)) +
                              body[:len(body) - 2 - 4 * DIM])
        self.k = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buf = bytearray()
        while True:
            chunk = self.s.recv(65536)
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 16:
                _v, t, _f, _seq, ln = self.dc.HEADER.unpack_from(buf)
                if len(buf) < 16 + ln:
                    break
                if t == self.dc.ACK:
                    a, r = struct.unpack_from("<II", buf, 20)
                    self.accepted += a
                    self.rejected += r
                    self.acks += 1
                del buf[:16 + ln]

    def send(self, slices):
        body = []
        for i in slices:
            body.append(self.heads[i] + self.rows[self.k % 1009] + b"\0\0")
            self.k += 1
        self.seq += 1
        self.s.sendall(self.dc.frame(self.dc.RECORDS, self.seq,
                                     struct.pack("<I", len(body)) +
                                     b"".join(body)))

    def wait_acks(self, timeout=120):
        deadline = time.monotonic() + timeout
        while self.acks < self.seq and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.acks < self.seq or self.rejected:
            raise RuntimeError(f"latency feed: {self.acks} of {self.seq} "
                               f"frames answered, {self.rejected} rejected")

    def close(self):
        self.s.shutdown(socket.SHUT_WR)
        self.reader.join(30)
        self.s.close()


def histogram(metrics, name):
    """{upper bound: cumulative count} and the count of family NAME."""
    buckets = {}
    for k, v in metrics.items():
        if k.startswith(name + "_bucket{"):
            le = k.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = v
    return buckets


def hist_diff(after, before):
    return {le: after[le] - before.get(le, 0) for le in after}


def hist_quantile(buckets, q):
    """Linear interpolation inside the bucket holding quantile Q, as
    Prometheus' histogram_quantile does."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if not total:
        return None
    rank, lo, below = q * total, 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lo
            span = buckets[le] - below
            return lo + (le - lo) * ((rank - below) / span if span else 1)
        lo, below = le, buckets[le]
    return lo


def run(build, quick=False, rate=2000, log=sys.stderr):
    os.environ.setdefault("DRIFTD_BUILD_ROOT", os.path.abspath(build))
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    from driftd_harness import Env
    seconds = 4 if quick else 25
    frame_s = SLICES / rate
    with Env() as env:
        d = env.driftd(model_config(), log_level="warning")
        d.start()
        try:
            f = Feeder(d)
            every = list(range(SLICES))
            for _ in range(SIZE):	# references
                f.send(every)
            for step in range(SIZE):	# stagger the first windows
                f.send([i for i in every if step < i * SIZE // SLICES])
            f.wait_acks()
            time.sleep(2)	# warm-up windows of "*" done
            before = d.metrics()
            t_start = time.time()
            t0 = time.monotonic()
            frames = int(seconds / frame_s)
            for k in range(frames):
                delay = t0 + k * frame_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                f.send(every)
            f.wait_acks()
            sent_s = time.monotonic() - t0
            time.sleep(2)
            after = d.metrics()
            f.close()
            rows = d.pg.psql(
                "SELECT extract(epoch FROM closed_at - window_end) "
                "FROM driftd.windows WHERE model = 'lat' AND window_end >= "
                f"to_timestamp({t_start})")
        finally:
            d.close()
    lat = np.array([float(r[0]) for r in rows])
    res = {"slices": SLICES, "dim": DIM, "reference_size": SIZE,
           "window_size": SIZE, "permutations": PERMUTATIONS,
           "records_per_s": frames * SLICES / sent_s,
           "windows": int(lat.size)}
    if lat.size:
        res.update(db_p50_ms=float(np.percentile(lat, 50) * 1e3),
                   db_p99_ms=float(np.percentile(lat, 99) * 1e3),
                   db_max_ms=float(lat.max() * 1e3))
    for key, fam in (("commit", "driftd_window_commit_latency_seconds"),
                     ("detector", "driftd_detector_duration_seconds"),
                     ("store", "driftd_store_commit_delay_seconds")):
        h = hist_diff(histogram(after, fam), histogram(before, fam))
        for q in (50, 99):
            v = hist_quantile(h, q / 100) if h else None
            res[f"{key}_p{q}_ms"] = v * 1e3 if v is not None else None
        res[f"{key}_count"] = h.get(float("inf"), 0) if h else 0
    det = res["detector_p99_ms"] or 0.0
    res["bar_ms"] = det + 50
    print(f"latency {SLICES} slices d={DIM} at {res['records_per_s']:,.0f} "
          f"records/s: {res['windows']} windows; close -> commit from the "
          f"database p50 {res.get('db_p50_ms', 0):.1f} ms p99 "
          f"{res.get('db_p99_ms', 0):.1f} ms; from /metrics p50 "
          f"{res['commit_p50_ms'] or 0:.1f} p99 {res['commit_p99_ms'] or 0:.1f}"
          f" ms; detectors p50 {res['detector_p50_ms'] or 0:.1f} p99 "
          f"{det:.1f} ms", file=log, flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="smoke run")
    ap.add_argument("--rate", type=int, default=2000,
                    help="records/s in the timed phase")
    a = ap.parse_args()
    res = run(a.build, a.quick, a.rate)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

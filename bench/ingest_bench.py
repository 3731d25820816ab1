#!/usr/bin/python3
"""Ingest benchmark (DESIGN §5): records/s into windows at d = 128, 768 and
1536, over TCP and Unix sockets, with 1, 8 and 64 concurrent clients, in
one run on one machine:

  binary  driftd's binary protocol, frames of about 1 MiB, every ACK read
          and every record checked accepted
  ndjson  the same records as NDJSON lines (6 decimals per value), timed
          to the summary line
  sink    the same bytes as the binary stream, sent by the same client to
          a trivial reader (`loadgen sink`: one thread reading 256 KiB at
          a time and nothing else): the raw loopback throughput of this
          machine for that traffic
  python  json.loads + numpy.asarray(float32) on the same NDJSON lines,
          one thread

The clients are bench/loadgen (one thread, epoll, pre-encoded bytes), so a
client costs the machine as little as it can and the same client measures
daemon and sink.  The daemon runs against a throwaway PostgreSQL with one
model per dimension, `slice_by = region` (each record counts in two
windows, "*" and its slice), windows of 10,000 records and only the
centroid detector, so that what is measured is the loop thread taking
records into windows, not the detectors.  Beside records/s, the CPU time
of the daemon's loop thread (/proc/PID/task/PID/stat) around each
measurement gives the records one core takes, whatever else the machine
is doing.  Daemon and sink are measured in alternation (--rounds), the
sink over as long as the daemon takes, and the best of each is kept,
because other work slows any single measurement.

The bars (at d = 768): binary >= 100k records/s and >= 30% of the sink;
NDJSON >= 3x Python.

    bench/ingest_bench.py [--build DIR] [--json FILE] [--quick]
        [--dims 768 --transports tcp --clients 1] [--rounds N]
        [--only binary|ndjson]   (one daemon measurement alone, to profile)
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIMS = (128, 768, 1536)
TRANSPORTS = ("tcp", "unix")
CLIENTS = (1, 8, 64)
DISTINCT = 1000
FRAME_BYTES = 1 << 20
WINDOW = 10000


def make_records(dim):
    rng = np.random.default_rng(dim)
    x = rng.standard_normal((DISTINCT, dim)).astype(np.float32)
    return [{"model": f"d{dim}", "id": f"req-{i}", "slice": {"region": "eu"},
             "embedding": x[i]} for i in range(DISTINCT)]


def ndjson_line(r):
    return json.dumps({"model": r["model"], "id": r["id"], "slice": r["slice"],
                       "embedding": [round(float(v), 6)
                                     for v in r["embedding"]]},
                      separators=(",", ":")).encode() + b"\n"


class Payloads:
    """One dimension's records encoded both ways, and files of the first k
    records for loadgen (binary as ~1 MiB RECORDS frames)."""

    def __init__(self, dim, tmp):
        import driftd_client as dc
        self.dc, self.dim, self.tmp = dc, dim, tmp
        records = make_records(dim)
        self.entries = [dc.encode_record(r) for r in records]
        self.lines = [ndjson_line(r) for r in records]
        self.files = {}
        self.bin_bytes = os.path.getsize(self.file("binary", DISTINCT)) / \
            DISTINCT
        self.nd_bytes = sum(map(len, self.lines)) / DISTINCT

    def file(self, proto, k):
        key = (proto, k)
        if key not in self.files:
            path = os.path.join(self.tmp, f"d{self.dim}-{proto}-{k}")
            with open(path, "wb") as f:
                if proto == "ndjson":
                    f.write(b"".join(self.lines[:k]))
                else:
                    per = max(1, FRAME_BYTES // len(self.entries[0]))
                    for seq, lo in enumerate(range(0, k, per)):
                        chunk = self.entries[lo:min(k, lo + per)]
                        f.write(self.dc.frame(
                            self.dc.RECORDS, seq,
                            len(chunk).to_bytes(4, "little") +
                            b"".join(chunk)))
            self.files[key] = path
        return self.files[key]


def loop_cpu_s(pid):
    """CPU seconds of the daemon's loop thread (its main thread) so far."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadgen(build, addr, proto, clients, path, repeat, per_pass):
    out = subprocess.run(
        [os.path.join(build, "bench", "loadgen"), "send", addr, proto,
         str(clients), path, str(repeat), str(per_pass)],
        check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout)


def plan(total, clients):
    """Records per file copy and copies per client for about TOTAL records."""
    k = max(1, min(DISTINCT, math.ceil(total / clients)))
    return k, max(1, math.ceil(total / (clients * k)))


def python_rate(lines, rounds):
    """Best records/s and CPU µs per record of json.loads + numpy."""
    best, cpu = 0.0, math.inf
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for line in lines:
            np.asarray(json.loads(line)["embedding"], dtype=np.float32)
        best = max(best, len(lines) / (time.perf_counter() - t0))
        cpu = min(cpu, (time.process_time() - c0) / len(lines) * 1e6)
    return best, cpu


def model_config():
    return "".join(
        f"[model.d{d}]\ndim = {d}\nslice_by = region\n"
        f"reference.size = 1000\nwindow.size = {WINDOW}\n"
        "detectors = centroid\nmax_queued_windows = 64\n\n" for d in DIMS)


def measure_daemon(build, d, pay, addr, proto, clients, total):
    k, repeat = plan(total, clients)
    path = pay.file(proto, k)
    cpu = loop_cpu_s(d.proc.pid)
    r = loadgen(build, addr, proto, clients, path, repeat, k)
    cpu = loop_cpu_s(d.proc.pid) - cpu
    if r["accepted"] != r["records"]:
        raise RuntimeError(f"{proto} d={pay.dim} {addr} x{clients}: "
                           f"{r['accepted']} of {r['records']} accepted")
    return r["records"] / r["seconds"], cpu / r["records"] * 1e6


def measure_sink(build, pay, addr, clients, total):
    k, repeat = plan(total, clients)
    r = loadgen(build, addr, "raw", clients, pay.file("binary", k),
                repeat, k)
    return r["records"] / r["seconds"]


def measure_cell(build, d, pay, daemon_addr, sink_addr, clients, sizes,
                 rounds, only):
    """Best of ROUNDS alternations of daemon binary, sink and NDJSON.  The
    sink is timed over as long as the daemon takes for its records (an
    untimed first pass of each sets how many records that is): with equal
    byte counts the sink ran a third of the daemon's time, and its best of
    a few short runs caught quieter moments of the machine."""
    n_bin, n_nd = sizes
    n = {"binary": n_bin, "sink": n_bin, "ndjson": n_nd}
    if only:
        n = {only: n[only]}

    def measure(kind, k):
        if kind == "sink":
            return measure_sink(build, pay, sink_addr, clients, k), None
        return measure_daemon(build, d, pay, daemon_addr, kind, clients, k)

    best = {"binary_records_per_s": 0.0, "sink_records_per_s": 0.0,
            "ndjson_records_per_s": 0.0, "binary_loop_us": math.inf,
            "ndjson_loop_us": math.inf}
    if "sink" in n:
        daemon_s = n_bin / measure("binary", n_bin)[0]
        n["sink"] = max(n_bin, int(measure("sink", n_bin)[0] * daemon_s))
    for _ in range(rounds):
        for kind, k in n.items():
            rate, us = measure(kind, k)
            best[f"{kind}_records_per_s"] = max(
                best[f"{kind}_records_per_s"], rate)
            if us is not None:
                best[f"{kind}_loop_us"] = min(best[f"{kind}_loop_us"], us)
    best["sink_records_measured"] = n.get("sink")
    best["binary_records_measured"] = n.get("binary")
    return best


def run(build, quick=False, rounds=3, dims=DIMS, transports=TRANSPORTS,
        clients=CLIENTS, only=None, log=sys.stderr):
    """Runs the matrix; returns {"cells": [...], ...} (see --json)."""
    build = os.path.abspath(build)
    os.environ.setdefault("DRIFTD_BUILD_ROOT", build)
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    from driftd_harness import Env, free_port

    # Bytes per daemon measurement; --quick is a smoke run.
    bin_mb, nd_mb = (16, 4) if quick else (256, 120)
    rounds = 1 if quick else rounds
    cells = []
    with tempfile.TemporaryDirectory(prefix="driftd-ingest-") as tmp, \
            Env() as env:
        d = env.driftd(model_config(), log_level="warning",
                       extra_listen="max_frame = 4M\nmax_connections = 256")
        d.start()
        sink_addr = {"tcp": f"tcp://127.0.0.1:{free_port()}",
                     "unix": "unix:" + os.path.join(tmp, "sink.sock")}
        daemon_addr = {"tcp": f"tcp://127.0.0.1:{d.port}",
                       "unix": "unix:" + d.unix_path}
        sinks = [subprocess.Popen([os.path.join(build, "bench", "loadgen"),
                                   "sink", sink_addr[t]]) for t in transports]
        try:
            time.sleep(0.2)
            for dim in dims:
                pay = Payloads(dim, tmp)
                sizes = (max(2000, int(bin_mb * 1e6 / pay.bin_bytes)),
                         max(500, int(nd_mb * 1e6 / pay.nd_bytes)))
                # Fill the references before anything is timed.
                loadgen(build, daemon_addr["tcp"], "binary", 1,
                        pay.file("binary", DISTINCT), 2, DISTINCT)
                py, py_us = python_rate(pay.lines, 1 if quick else 3)
                for t in transports:
                    for c in clients:
                        cell = {"dim": dim, "transport": t, "clients": c,
                                "python_records_per_s": py,
                                "python_cpu_us": py_us,
                                "binary_bytes_per_record": pay.bin_bytes,
                                "ndjson_bytes_per_record": pay.nd_bytes}
                        cell.update(measure_cell(
                            build, d, pay, daemon_addr[t], sink_addr[t], c,
                            sizes, rounds, only))
                        derive(cell)
                        cells.append(cell)
                        print_cell(cell, log)
        finally:
            for p in sinks:
                p.terminate()
                p.wait()
            d.close()
    return {"cells": cells, "window_size": WINDOW, "distinct": DISTINCT,
            "rounds": rounds}


def derive(c):
    def ratio(a, b):
        ok = c[a] and c[b] and math.isfinite(c[a]) and math.isfinite(c[b])
        return c[a] / c[b] if ok else None

    c["binary_vs_sink"] = ratio("binary_records_per_s", "sink_records_per_s")
    c["ndjson_vs_python"] = ratio("ndjson_records_per_s",
                                  "python_records_per_s")
    c["ndjson_vs_python_cpu"] = ratio("python_cpu_us", "ndjson_loop_us")
    for p in ("binary", "ndjson"):
        us = c[f"{p}_loop_us"]
        c[f"{p}_core_records_per_s"] = 1e6 / us if 0 < us < math.inf \
            else None


def print_cell(c, log):
    parts = [f"ingest d={c['dim']} {c['transport']} x{c['clients']}:"]
    if c["binary_records_per_s"]:
        parts.append(f"binary {c['binary_records_per_s']:,.0f}/s "
                     f"({c['binary_loop_us']:.2f} us loop CPU/record)")
    if c["binary_vs_sink"]:
        parts.append(f"= {c['binary_vs_sink']:.2f} of sink "
                     f"{c['sink_records_per_s']:,.0f}/s;")
    if c["ndjson_records_per_s"]:
        parts.append(f"ndjson {c['ndjson_records_per_s']:,.0f}/s "
                     f"({c['ndjson_loop_us']:.1f} us loop CPU/record) = "
                     f"{c['ndjson_vs_python']:.1f}x python "
                     f"{c['python_records_per_s']:,.0f}/s (CPU: "
                     f"{c['ndjson_vs_python_cpu']:.1f}x)")
    print(" ".join(parts), file=log, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get(
        "DRIFTD_BUILD_ROOT", os.path.join(ROOT, "build")))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="smoke run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternations per cell; the best of each counts")
    ap.add_argument("--dims", type=int, nargs="+", default=DIMS)
    ap.add_argument("--transports", nargs="+", choices=TRANSPORTS,
                    default=TRANSPORTS)
    ap.add_argument("--clients", type=int, nargs="+", default=CLIENTS)
    ap.add_argument("--only", choices=("binary", "ndjson"),
                    help="one daemon measurement per cell (profiling)")
    a = ap.parse_args()
    res = run(a.build, a.quick, a.rounds, a.dims, a.transports, a.clients,
              a.only)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

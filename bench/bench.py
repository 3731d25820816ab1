#!/usr/bin/python3
"""Every benchmark in one run (DESIGN §5; bench/run builds and calls this).

Parts, each also a script of its own:
  detectors  bench/detectors_numpy.py: the C detectors against the
             numpy/scipy/sklearn code a Python user would write, and the
             machine's sgemm rate
  ingest     bench/ingest_bench.py: binary and NDJSON at d = 128, 768,
             1536, TCP and Unix, 1/8/64 clients, against a trivial sink
             and Python json.loads + numpy
  latency    bench/latency.py: window close → rows committed, 100 slices
  memory     bench/memory.py: resident size against the configured
             samples, 1/100/1000 slices, float32 and float16

Prints the side-by-side table with PASS/FAIL per bar and writes every
number as JSON (bench/results.json unless --json says otherwise).

    bench/bench.py --build DIR [--json FILE] [--quick] [--only PART ...]
"""

import os

# One BLAS thread, as each of the daemon's workers uses: set before numpy
# loads OpenBLAS here, and inherited by bench_detectors (see
# detectors_numpy.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
PARTS = ("detectors", "ingest", "latency", "memory")
IDLE_RSS_MAX = 20 * 2**20


def machine():
    info = {"cpus": os.cpu_count(), "kernel": platform.release(),
            "loadavg_start": os.getloadavg(),
            "date": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds")}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "L2 cache", "L3 cache",
                             "Hypervisor vendor"):
                info[k.strip()] = v.strip()
    except OSError:
        pass
    try:
        blas = ctypes.CDLL("libopenblas.so.0")
        blas.openblas_get_config.restype = ctypes.c_char_p
        blas.openblas_get_corename.restype = ctypes.c_char_p
        info["openblas"] = blas.openblas_get_config().decode()
        info["openblas_core"] = blas.openblas_get_corename().decode()
    except (OSError, AttributeError):
        pass
    info["env"] = {k: os.environ[k] for k in
                   ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                    "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
                   if k in os.environ}
    import numpy
    import scipy
    info["numpy"], info["scipy"] = numpy.__version__, scipy.__version__
    try:
        info["commit"] = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return info


def run_detectors(build, quick):
    import detectors_numpy
    with contextlib.redirect_stdout(sys.stderr):
        return detectors_numpy.run(os.path.join(build, "bench",
                                                "bench_detectors"), quick)


def run_part(name, build, quick):
    t0 = time.monotonic()
    print(f"== {name}", file=sys.stderr, flush=True)
    if name == "detectors":
        res = run_detectors(build, quick)
    else:
        mod = __import__({"ingest": "ingest_bench"}.get(name, name))
        res = mod.run(build, quick=quick, log=sys.stderr)
    res["seconds"] = time.monotonic() - t0
    return res


# ---- the table ----

def finite(v):
    """JSON without Infinity/NaN: unmeasured values become null."""
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def fmt_rate(v):
    return f"{v / 1e6:.2f}M/s" if v >= 1e6 else f"{v / 1e3:.1f}k/s"


def fmt_bytes(v):
    return f"{v / 2**20:.1f} MiB"


class Table:
    def __init__(self):
        self.rows, self.bars = [], []

    def row(self, what, ours, theirs, ratio, bar="", ok=None):
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append((what, ours, theirs, ratio, bar, verdict))
        if ok is not None:
            self.bars.append({"bar": f"{what}: {bar}", "pass": ok,
                              "value": ratio})

    def print(self, title):
        head = ("benchmark", "driftd", "side by side", "ratio", "bar", "")
        widths = [max(len(str(r[i])) for r in self.rows + [head])
                  for i in range(6)]
        print(f"\n{title}\n")
        for r in [head] + self.rows:
            print("  ".join(str(c).ljust(widths[i]) if i != 3 else
                            str(c).rjust(widths[i]) for i, c in enumerate(r))
                  .rstrip())


def detector_rows(t, det):
    for r in det["tests"]:
        peer_ratio = r["peer_ms"] / r["c_ms"]
        bar = "≥ 50×" if r["test"] == "mmd" else ""
        t.row(f"{r['test']} n=m={det['n']} d={det['d']}"
              + (f" B={r['permutations']}" if r.get("permutations") else ""),
              f"{r['c_ms']:.1f} ms", f"{r['peer']} {r['peer_ms']:.0f} ms",
              f"{peer_ratio:.0f}×", bar,
              peer_ratio >= 50 if r["test"] == "mmd" else None)
        if r.get("gemm_ms"):
            t.row(f"{r['test']} vs numpy doing the same GEMM form", "",
                  f"{r['gemm_ms']:.0f} ms", f"{r['gemm_ms'] / r['c_ms']:.1f}×")
    mmd = next((r for r in det["tests"] if r["test"] == "mmd"), None)
    if mmd:
        k = mmd["kernel_gflops"]
        t.row("MMD kernel step vs the machine's sgemm",
              f"{k:.1f} GFLOP/s", f"sgemm {det['sgemm_gflops']:.1f} GFLOP/s",
              f"{k / det['sgemm_gflops']:.2f}", "near sgemm")


def cell(ing, dim, transport, clients):
    for c in ing["cells"]:
        if (c["dim"], c["transport"], c["clients"]) == (dim, transport,
                                                         clients):
            return c
    return None


def ingest_rows(t, ing):
    c = cell(ing, 768, "tcp", 1)
    if not c:
        return
    t.row("binary ingest d=768 TCP 1 client", fmt_rate(
        c["binary_records_per_s"]), "", "", "≥ 100k/s",
        c["binary_records_per_s"] >= 1e5)
    t.row("  loop-thread CPU per record", f"{c['binary_loop_us']:.2f} µs",
          "", fmt_rate(c["binary_core_records_per_s"]) + " per core",
          "≥ 100k/s", c["binary_core_records_per_s"] >= 1e5)
    t.row("binary ingest vs raw loopback sink", fmt_rate(
        c["binary_records_per_s"]), "sink " + fmt_rate(
        c["sink_records_per_s"]), f"{c['binary_vs_sink']:.2f}", "≥ 0.30",
        c["binary_vs_sink"] >= 0.30)
    t.row("NDJSON ingest vs json.loads + numpy", fmt_rate(
        c["ndjson_records_per_s"]), "Python " + fmt_rate(
        c["python_records_per_s"]), f"{c['ndjson_vs_python']:.1f}×", "≥ 3×",
        c["ndjson_vs_python"] >= 3)
    t.row("  CPU per record: loop thread vs Python",
          f"{c['ndjson_loop_us']:.1f} µs", f"{c['python_cpu_us']:.1f} µs",
          f"{c['ndjson_vs_python_cpu']:.1f}×", "≥ 3×",
          c["ndjson_vs_python_cpu"] >= 3)


def latency_rows(t, lat):
    p99 = lat.get("db_p99_ms")
    if p99 is None:
        return
    t.row(f"close → commit p99, {lat['slices']} slices d={lat['dim']}",
          f"{p99:.1f} ms", f"detectors p99 {lat['detector_p99_ms']:.1f} ms",
          f"{p99 - lat['detector_p99_ms']:+.1f} ms",
          "≤ detectors + 50 ms", p99 <= lat["bar_ms"])
    t.row("close → commit p50", f"{lat['db_p50_ms']:.1f} ms",
          f"detectors p50 {lat['detector_p50_ms']:.1f} ms", "")


def memory_rows(t, mem):
    idle = max(c["idle_rss"] for c in mem["cases"])
    t.row("idle RSS", fmt_bytes(idle), "", "", "< 20 MB",
          idle < IDLE_RSS_MAX)
    for c in mem["cases"]:
        ok = c["rss"] <= 1.2 * c["samples_bytes"] + c["idle_rss"]
        t.row(f"RSS {c['slices']} slices {c['storage']}",
              fmt_bytes(c["rss"]), "samples " + fmt_bytes(c["samples_bytes"]),
              f"{c['rss_over_idle_vs_samples']:.2f}",
              "(RSS − idle)/samples ≤ 1.2", ok)


def print_ingest_matrix(ing):
    print("\nIngest matrix (records/s; loop = the daemon's loop-thread CPU "
          "per record)\n")
    print("   d  via   clients    binary      sink  bin/sink    ndjson"
          "    python  nd/py  loop bin  loop nd  python CPU")
    for c in ing["cells"]:
        print(f"{c['dim']:>4}  {c['transport']:<4}  {c['clients']:>7}  "
              f"{fmt_rate(c['binary_records_per_s']):>8}  "
              f"{fmt_rate(c['sink_records_per_s']):>8}  "
              f"{c['binary_vs_sink']:>8.2f}  "
              f"{fmt_rate(c['ndjson_records_per_s']):>8}  "
              f"{fmt_rate(c['python_records_per_s']):>8}  "
              f"{c['ndjson_vs_python']:>5.1f}  "
              f"{c['binary_loop_us']:>6.2f}µs  {c['ndjson_loop_us']:>5.1f}µs"
              f"  {c['python_cpu_us']:>8.1f}µs")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench",
                                                   "results.json"))
    ap.add_argument("--quick", action="store_true",
                    help="small sizes: checks that everything runs")
    ap.add_argument("--only", action="append", choices=PARTS,
                    help="run only this part (repeatable)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    os.environ["DRIFTD_BUILD_ROOT"] = build
    res = {"machine": machine(), "quick": a.quick}
    for name in a.only or PARTS:
        res[name] = run_part(name, build, a.quick)
    res["machine"]["loadavg_end"] = os.getloadavg()

    t = Table()
    if "detectors" in res:
        detector_rows(t, res["detectors"])
    if "ingest" in res:
        ingest_rows(t, res["ingest"])
    if "latency" in res:
        latency_rows(t, res["latency"])
    if "memory" in res:
        memory_rows(t, res["memory"])
    m = res["machine"]
    t.print(f"driftd benchmarks, {m.get('Model name', '?')}, {m['cpus']} "
            f"CPUs, OpenBLAS core {m.get('openblas_core', '?')}, load "
            f"{m['loadavg_start'][0]:.1f} → {m['loadavg_end'][0]:.1f}"
            + (" (QUICK: sizes too small to mean anything)"
               if a.quick else ""))
    if "ingest" in res:
        print_ingest_matrix(res["ingest"])
    res["bars"] = t.bars
    failed = [b for b in t.bars if not b["pass"]]
    print(f"\n{len(t.bars) - len(failed)} of {len(t.bars)} bars met"
          + (": " + "; ".join(b["bar"] for b in failed) + " not met"
             if failed else ""))
    with open(a.json, "w") as f:
        json.dump(finite(res), f, indent=2)
    print(f"results: {a.json}")
    if a.quick:
        # Toy sizes measure start-up costs, not the bars: a quick run
        # succeeds when every part ran.
        print("quick run: every part ran; the bars are judged by a full run")
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

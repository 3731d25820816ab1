#!/usr/bin/python3
"""Detectors against numpy/scipy/sklearn, side by side in one run
(DESIGN §5, docs/benchmarks.md).

For each test the same float32 data goes to bench_detectors (the C
library) and to a Python implementation:
- MMD: the method peers use (kernel matrix once, every permutation by
  re-indexing it) and numpy doing the same GEMM formulation as the C code
  (all permuted statistics from one product K·W);
- energy distance: the same two numpy versions with the distance kernel;
- per-coordinate KS: a loop over scipy.stats.ks_2samp plus BH;
- domain classifier: sklearn LogisticRegression on the same split sizes,
  roc_auc_score, and the held-out relabelling p-value in numpy.
Also the machine's sgemm rate, a scaling table of the C detectors, and the
effect of the random projection on MMD's power and time.

BLAS runs on one thread on both sides unless OPENBLAS_NUM_THREADS is set
(the daemon runs one detector job per core), and times are CPU time of the
process on both sides, which with one thread is the compute time and stays
put when other work shares the machine.

Usage: detectors_numpy.py BENCH_BINARY [--n 1000 --d 768 --permutations 500]
       [--quick] (smaller sizes, for a smoke run)
"""
import os

# Read by OpenBLAS when numpy loads it, and inherited by bench_detectors.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402


def run_c(binary, *args):
    out = subprocess.run([binary, *map(str, args)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def timed(fn, *args, repeats=1):
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.process_time()
        result = fn(*args)
        best = min(best, time.process_time() - t0)
    return best, result


# ---- kernels ----

def sqdist(z):
    zc = z - z.mean(axis=0)
    sq = (zc * zc).sum(axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2 * (zc @ zc.T), 0)


def gaussian_kernel(z, n):
    d2 = sqdist(z)
    h = float(np.median(d2[:n, :n][np.triu_indices(n, 1)]))
    return np.exp(-d2 / np.float32(h)), h


def distance_kernel(z, n):
    return -np.sqrt(sqdist(z)), None


def stat_u(k, n):
    """MMD²_u of kernel k, first n points against the rest."""
    m = k.shape[0] - n
    kxx, kyy = k[:n, :n], k[n:, n:]
    sxx = kxx.sum(dtype=np.float64) - np.trace(kxx, dtype=np.float64)
    syy = kyy.sum(dtype=np.float64) - np.trace(kyy, dtype=np.float64)
    sxy = k[:n, n:].sum(dtype=np.float64)
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)


def perm_reindex(kernel, x, y, permutations, seed):
    """The peers' method: kernel once, each permutation re-indexes it."""
    z = np.vstack([x, y])
    n = len(x)
    k, h = kernel(z, n)
    observed = stat_u(k, n)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(permutations):
        perm = rng.permutation(len(z))
        exceed += stat_u(k[np.ix_(perm, perm)], n) >= observed
    return observed, (1 + exceed) / (permutations + 1), h


def perm_gemm(kernel, x, y, permutations, seed):
    """The C code's formulation in numpy: T(s) from P = K0·S."""
    z = np.vstack([x, y])
    n, total_n = len(x), len(x) + len(y)
    m = total_n - n
    k, h = kernel(z, n)
    np.fill_diagonal(k, 0)
    total = k.sum(dtype=np.float64)
    rng = np.random.default_rng(seed)
    s = np.zeros((total_n, permutations + 1), np.float32)
    s[:n, 0] = 1
    for b in range(permutations):
        s[rng.permutation(total_n)[:n], b + 1] = 1
    p = k @ s
    q = (s * p).sum(axis=0, dtype=np.float64)
    u = p.sum(axis=0, dtype=np.float64)
    t = (q / (n * (n - 1)) + (total - 2 * u + q) / (m * (m - 1))
         - 2 * (u - q) / (n * m))
    return t[0], (1 + np.sum(t[1:] >= t[0])) / (permutations + 1), h


# ---- KS and classifier ----

def ks_loop(x, y, alpha=0.05):
    p = np.array([stats.ks_2samp(x[:, j], y[:, j]).pvalue
                  for j in range(x.shape[1])])
    order = np.argsort(p)
    q = np.minimum.accumulate((p[order] * len(p) / np.arange(1, len(p) + 1))
                              [::-1])[::-1]
    return float(np.mean(q <= alpha)), float(q.min())


def classifier(x, y, permutations, seed, l2=1.0, holdout=0.5):
    z = np.vstack([x, y]).astype(np.float64)
    z = (z - z.mean(axis=0)) / np.where(z.std(axis=0) > 0, z.std(axis=0), 1)
    t = np.r_[np.zeros(len(x), int), np.ones(len(y), int)]
    rng = np.random.default_rng(seed)
    test = np.zeros(len(z), bool)
    for lo, size in ((0, len(x)), (len(x), len(y))):
        test[lo + rng.permutation(size)[:round(holdout * size)]] = True
    model = LogisticRegression(C=1 / (l2 * (~test).sum()), max_iter=100)
    model.fit(z[~test], t[~test])
    s = model.decision_function(z[test])
    auc = roc_auc_score(t[test], s)
    ranks = stats.rankdata(s)
    pos = t[test].sum()
    observed = ranks[t[test] == 1].sum()
    exceed = sum(ranks[rng.permutation(len(s))[:pos]].sum() >= observed
                 for _ in range(permutations))
    return auc, (1 + exceed) / (permutations + 1)


# ---- report ----

def data(n, m, d, shift, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = rng.standard_normal((m, d), dtype=np.float32) + np.float32(shift)
    return x, y


def with_file(x, y, fn):
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        np.vstack([x, y]).astype("<f4").tofile(f.name)
        return fn(f.name)


def side_by_side(binary, args):
    n, d, b = args.n, args.d, args.permutations
    x, y = data(n, n, d, args.shift)
    rows = []

    def c_run(test, perms=0):
        return with_file(x, y, lambda f: run_c(binary, test, f, n, n, d,
                                               perms, 0, 5))

    blas = with_file(x, y, lambda f: run_c(binary, "blas", f, n, n, d))
    print(f"n = m = {n}, d = {d}, B = {b}, {os.cpu_count()} CPUs, BLAS "
          f"threads {os.environ['OPENBLAS_NUM_THREADS']}, CPU times; "
          f"sgemm {blas['sgemm_gflops']:.1f} GFLOP/s "
          f"({2 * n}² x {d} in {blas['sgemm_ms']:.1f} ms), ssyrk "
          f"{blas['ssyrk_ms']:.1f} ms")

    for name, kernel in (("mmd", gaussian_kernel), ("energy", distance_kernel)):
        c = c_run(name, b)
        t_re, (s_re, p_re, _) = timed(perm_reindex, kernel, x, y, b, 1)
        t_ge, (s_ge, p_ge, _) = timed(perm_gemm, kernel, x, y, b, 1,
                                      repeats=3)
        pooled = 2 * n
        kernel_gflops = pooled * pooled * d / (c["kernel_step_ms"] * 1e6)
        perm_gflops = 2 * pooled * pooled * (b + 1) / (
            max(c["total_ms"] - c["kernel_step_ms"], 1e-3) * 1e6)
        print(f"{name}: C {c['total_ms']:.1f} ms (kernel step "
              f"{c['kernel_step_ms']:.1f} ms = {kernel_gflops:.1f} GFLOP/s, "
              f"{kernel_gflops / blas['sgemm_gflops']:.0%} of sgemm; "
              f"permutations {perm_gflops:.1f} GFLOP/s), workspace "
              f"{c['workspace_mb']:.0f} MiB")
        print(f"  numpy re-indexing {t_re * 1e3:.0f} ms "
              f"({t_re * 1e3 / c['total_ms']:.0f}x), numpy GEMM "
              f"{t_ge * 1e3:.0f} ms ({t_ge * 1e3 / c['total_ms']:.1f}x); "
              f"statistic C {c['statistic']:.6g} numpy {s_re:.6g}; "
              f"p C {c['p_value']:.4g} numpy {p_re:.4g} / {p_ge:.4g}")
        rows.append((name, c["total_ms"], t_re * 1e3, t_ge * 1e3))

    c = c_run("ks")
    t_ks, (share, min_q) = timed(ks_loop, x, y, repeats=3)
    print(f"ks_dims: C {c['total_ms']:.1f} ms, scipy loop {t_ks * 1e3:.0f} ms "
          f"({t_ks * 1e3 / c['total_ms']:.0f}x); share C {c['statistic']:.4f} "
          f"scipy {share:.4f}, min corrected p C {c['p_value']:.4g} scipy "
          f"{min_q:.4g}")
    rows.append(("ks_dims", c["total_ms"], t_ks * 1e3, None))

    cb = 1000
    c = c_run("classifier", cb)
    t_cl, (auc, p) = timed(classifier, x, y, cb, 1, repeats=3)
    print(f"classifier (B = {cb}): C {c['total_ms']:.1f} ms "
          f"({c['iterations']} L-BFGS iterations), sklearn {t_cl * 1e3:.0f} ms "
          f"({t_cl * 1e3 / c['total_ms']:.1f}x); AUC C {c['statistic']:.4f} "
          f"sklearn {auc:.4f}, p C {c['p_value']:.4g} sklearn {p:.4g}")
    rows.append(("classifier", c["total_ms"], t_cl * 1e3, None))

    print("\n| test | C (ms) | numpy/scipy/sklearn (ms) | speed-up | numpy GEMM form (ms) | speed-up |")
    print("|---|---|---|---|---|---|")
    for name, c_ms, peer, gemm in rows:
        g = f"{gemm:.0f} | {gemm / c_ms:.1f}x" if gemm else "— | —"
        print(f"| {name} | {c_ms:.1f} | {peer:.0f} | {peer / c_ms:.0f}x | {g} |")


def scaling(binary, args):
    b = args.permutations
    ns = [500, 1000, 2000] if args.quick else [500, 1000, 2000, 4000, 8000]
    ds = [64, 256] if args.quick else [64, 256, 768, 1536]
    tests = ("mmd", "energy", "ks", "classifier")
    print(f"\nScaling, C only (B = {b} for mmd and energy, 1000 for "
          f"classifier), ms:\n")
    print("| n = m | d | " + " | ".join(tests) + " |")
    print("|---|---|" + "---|" * len(tests))
    for n, d in [(n, 768 if not args.quick else 256) for n in ns] + \
                [(1000, d) for d in ds]:
        x, y = data(n, n, d, 0.0)
        cells = []
        for t in tests:
            perms = 1000 if t == "classifier" else b
            c = with_file(x, y, lambda f: run_c(binary, t, f, n, n, d, perms,
                                                0, 1))
            it = f" ({c['iterations']} it.)" if t == "classifier" else ""
            cells.append(f"{c['total_ms']:.0f}{it}")
        print(f"| {n} | {d} | " + " | ".join(cells) + " |")


def projection(binary, args):
    n, d, shift, trials = 200, 768, args.power_shift, 100 if not args.quick else 20
    print(f"\nRandom projection before MMD (n = m = {n}, d = {d}, shift "
          f"{shift} in every coordinate, B = 200, {trials} trials each):\n")
    print("| projection | power at 0.05 | false alarms at 0.05 | mean time (ms) |")
    print("|---|---|---|---|")
    for k in (0, 256, 64, 16):
        power = run_c(binary, "power", n, d, shift, k, trials, 200)
        null = run_c(binary, "power", n, d, 0.0, k, trials, 200)
        label = f"{d} → {k}" if k else "none"
        print(f"| {label} | {power['rate']:.2f} | {null['rate']:.2f} | "
              f"{power['mean_ms']:.1f} |")
    n, d = 1000, 1536
    x, y = data(n, n, d, 0.0)
    for k in (0, 128):
        c = with_file(x, y, lambda f: run_c(binary, "mmd", f, n, n, d, 500, k))
        label = f"projected to {k}" if k else "raw"
        print(f"MMD n = m = {n}, d = {d}, B = 500, {label}: "
              f"{c['total_ms']:.0f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench_binary")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--permutations", type=int, default=500)
    ap.add_argument("--shift", type=float, default=0.01)
    ap.add_argument("--power-shift", type=float, default=0.03)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.d, args.permutations = 300, 128, 100
    side_by_side(args.bench_binary, args)
    scaling(args.bench_binary, args)
    projection(args.bench_binary, args)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Reference vectors for tests/unit/test_ks.c, from scipy.stats.

Run with /usr/bin/python3 (Debian's numpy/scipy); rewrites
tests/data/ks_*.txt next to itself. Deterministic (fixed seeds). Samples are
rounded to float32 first, so C and scipy see the same numbers.

ks_pvalues.txt: '# comment', then lines 'n m d p' where p is what
  scipy.stats.ks_2samp returns for samples of sizes n and m whose statistic
  is d. Exact sizes (<= 10000) are checked through ks_2samp on constructed
  samples; the asymptotic rows (one size 10^6 or 10^9) through
  scipy.stats.kstwo.sf(d, round(nm/(n+m))), which is what ks_2samp uses.
ks_samples.txt: blocks 'case n m D p', then the n values of a and the m
  values of b, each on one line.
ks_dims.txt: 'n m d alpha', then lines 'D p q' per coordinate (q the
  Benjamini-Hochberg adjusted p), then the n rows of x and m rows of y.
"""
import math
import os

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))


def sample_with_gap(n, m, k):
    """Samples of sizes n, m whose KS statistic is close to k/lcm-ish:
    a = 0..n-1 scaled to [0, 1), b shifted by k/(n+m)."""
    a = (np.arange(n) / n).astype(np.float32)
    b = (np.arange(m) / m + k).astype(np.float32)
    return a, b


def exact_rows(rng):
    rows = []
    sizes = [(1, 1), (1, 5), (2, 3), (5, 5), (7, 3), (20, 20), (31, 17),
             (100, 100), (100, 37), (250, 400), (1000, 1000), (1000, 2000),
             (999, 1000), (3000, 2000), (5000, 5000), (10000, 10000),
             (10000, 300), (64, 10000)]
    for n, m in sizes:
        for shift in (0.0, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0):
            a = rng.standard_normal(n).astype(np.float32)
            b = (rng.standard_normal(m) + shift).astype(np.float32)
            r = stats.ks_2samp(a, b, method="auto")
            rows.append((n, m, float(r.statistic), float(r.pvalue)))
    return rows


def asymptotic_rows():
    rows = []
    for big, small in [(10**6, 1), (10**6, 2), (10**6, 3), (10**6, 7),
                       (10**6, 20), (10**6, 60), (10**6, 140),
                       (10**6, 141), (10**6, 300), (10**9, 2000),
                       (10**9, 20000), (20000, 20000), (10001, 10001)]:
        en = big * small / (big + small)
        N = int(np.round(en))
        for d in np.concatenate([np.linspace(0.001, 0.999, 40),
                                 [0.5 / N, 0.99 / N, 1.0 / N, 1.5 / N,
                                  math.sqrt(2.2 / N), math.sqrt(0.7 / N),
                                  math.sqrt(4 / N), math.sqrt(18 / N),
                                  math.sqrt(300 / N)]]):
            if not 0 < d < 1:
                continue
            p = float(np.clip(stats.kstwo.sf(d, N), 0, 1))
            rows.append((big, small, float(d), p))
    return rows


def write_pvalues(rng):
    lines = ["# n m d p (scipy.stats.ks_2samp / kstwo.sf)"]
    for n, m, d, p in exact_rows(rng) + asymptotic_rows():
        lines.append(f"{n} {m} {d:.17g} {p:.17g}")
    with open(os.path.join(HERE, "ks_pvalues.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_samples(rng):
    cases = {
        "ties": (rng.integers(0, 5, 40).astype(np.float32),
                 rng.integers(1, 6, 55).astype(np.float32)),
        "signed_zero": (np.array([-0.0, 0.0, 1.0, -0.0, 2.0], np.float32),
                        np.array([0.0, 0.0, -0.0, 3.0], np.float32)),
        "identical": (np.full(30, 0.25, np.float32),
                      np.full(12, 0.25, np.float32)),
        "separated": (rng.standard_normal(25).astype(np.float32),
                      (rng.standard_normal(25) + 100).astype(np.float32)),
        "unequal": (rng.standard_normal(333).astype(np.float32),
                    (rng.standard_normal(200) * 1.3).astype(np.float32)),
        "extreme": (np.array([-3e38, -1e-38, 0, 1e-38, 3e38, 1], np.float32),
                    np.array([3e38, 2e38, 1e-30, -1e-45], np.float32)),
        "large": (rng.standard_normal(12000).astype(np.float32),
                  (rng.standard_normal(700) + 0.1).astype(np.float32)),
    }
    lines = ["# case n m D p, then a and b (scipy.stats.ks_2samp)"]
    for name, (a, b) in cases.items():
        r = stats.ks_2samp(a, b, method="auto")
        lines.append(f"{name} {len(a)} {len(b)} {r.statistic:.17g} "
                     f"{r.pvalue:.17g}")
        lines.append(" ".join(f"{float(v):.9g}" for v in a))
        lines.append(" ".join(f"{float(v):.9g}" for v in b))
    with open(os.path.join(HERE, "ks_samples.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def bh(p):
    order = np.argsort(p)
    m = len(p)
    q = np.empty(m)
    run = 1.0
    for rank in range(m - 1, -1, -1):
        run = min(run, p[order[rank]] * m / (rank + 1))
        q[order[rank]] = run
    return q


def write_dims(rng):
    n, m, d = 60, 45, 12
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.standard_normal((m, d)).astype(np.float32)
    y[:, 2] += 1.5
    y[:, 7] *= 3.0
    x[:, 5] = 1.0
    y[:, 5] = 1.0
    x[:, 9] = np.round(x[:, 9])
    y[:, 9] = np.round(y[:, 9])
    res = [stats.ks_2samp(x[:, j], y[:, j], method="auto") for j in range(d)]
    p = np.array([r.pvalue for r in res])
    q = bh(p)
    lines = [f"{n} {m} {d} 0.05"]
    for r, qj in zip(res, q):
        lines.append(f"{r.statistic:.17g} {r.pvalue:.17g} {qj:.17g}")
    for rows in (x, y):
        lines.extend(" ".join(f"{float(v):.9g}" for v in row) for row in rows)
    with open(os.path.join(HERE, "ks_dims.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    rng = np.random.default_rng(20261201)
    write_pvalues(rng)
    write_samples(rng)
    write_dims(rng)


if __name__ == "__main__":
    main()

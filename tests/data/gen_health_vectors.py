#!/usr/bin/python3
"""Reference vectors for tests/unit/test_health.c, from numpy/scipy.

Run with /usr/bin/python3; rewrites tests/data/health_*.txt next to itself.
Deterministic. Rows are rounded to float32 first; expected values in
float64: effective rank from numpy.linalg.svd of the centred rows (RankMe),
uniformity from scipy's pdist on unit rows, near-duplicates from the cosine
matrix.

Format: 'n d dup_cosine', 'key value' lines (effective_rank, uniformity,
mean_norm, duplicate_share), then the n rows.
"""
import os

import numpy as np
from scipy.spatial.distance import pdist

HERE = os.path.dirname(os.path.abspath(__file__))


def stats(x, dup_cosine):
    x64 = x.astype(np.float64)
    s = np.linalg.svd(x64 - x64.mean(axis=0), compute_uv=False)
    if s.sum() > 0:
        p = s / s.sum()
        p = p[p > 0]
        rank = float(np.exp(-(p * np.log(p)).sum()))
    else:
        rank = 0.0
    norms = np.linalg.norm(x64, axis=1)
    zero = norms == 0
    u = x64[~zero] / norms[~zero, None]
    uniformity = (float(np.log(np.mean(np.exp(-2 * pdist(u, "sqeuclidean")))))
                  if len(u) >= 2 else 0.0)
    cos = u @ u.T
    np.fill_diagonal(cos, -np.inf)
    dups = int((cos >= dup_cosine).any(axis=1).sum()) if len(u) else 0
    if zero.sum() > 1:
        dups += int(zero.sum())
    return {"effective_rank": rank, "uniformity": uniformity,
            "mean_norm": float(norms.mean()),
            "duplicate_share": dups / len(x)}


def write(name, x, dup_cosine=0.99):
    vals = stats(x, dup_cosine)
    lines = [f"{len(x)} {x.shape[1]} {dup_cosine!r}"]
    lines += [f"{k} {v:.17g}" for k, v in vals.items()]
    lines += [" ".join(f"{float(v):.9g}" for v in row) for row in x]
    with open(os.path.join(HERE, f"health_{name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    rng = np.random.default_rng(20261204)
    write("gauss", rng.standard_normal((60, 16)).astype(np.float32))
    basis = rng.standard_normal((3, 20))
    low = rng.standard_normal((50, 3)) @ basis + 0.01 * rng.standard_normal((50, 20))
    write("low_rank", (low + 5.0).astype(np.float32))
    dup = rng.standard_normal((40, 8)).astype(np.float32)
    dup[5] = dup[3]
    dup[7] = dup[3] * 2.0 + 1e-4
    dup[9] = 0.0
    dup[11] = 0.0
    write("duplicates", dup)
    write("wide", rng.standard_normal((10, 50)).astype(np.float32), 0.5)
    write("collapsed", np.tile(rng.standard_normal(6), (12, 1)).astype(np.float32))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Reference vectors for tests/unit/test_mmd.c and tests/unit/test_centroid.c.

Run with /usr/bin/python3 (Debian's numpy/scipy) from any directory; it
rewrites tests/data/mmd_*.txt and tests/data/centroid_*.txt next to itself.
Everything is deterministic (fixed seeds). Inputs are rounded to float32
first, so the C code and numpy see identical numbers; expected values are
computed in float64 from those numbers with scipy/numpy, independently of the
C algorithms (pairwise distances with pdist, kernel sums by plain indexing).

File format: a '#' comment line, then 'key value' lines, then 'x' and the
n x d reference rows, then 'y' and the m x d window rows.
"""
import os

import numpy as np
from scipy.spatial.distance import cdist, cosine, euclidean, pdist

HERE = os.path.dirname(os.path.abspath(__file__))
NUMPY_PERMUTATIONS = 10000


def mmd2_unbiased(k, n):
    """Unbiased MMD² of the first n points against the rest, kernel matrix k."""
    m = k.shape[0] - n
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    sxx = kxx.sum() - np.trace(kxx)
    syy = kyy.sum() - np.trace(kyy)
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * kxy.sum() / (n * m)


def mmd_case(x, y, seed):
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    h = np.median(pdist(x64, "sqeuclidean"))
    z = np.vstack([x64, y64])
    k = np.exp(-cdist(z, z, "sqeuclidean") / h)
    n = len(x)
    observed = mmd2_unbiased(k, n)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(NUMPY_PERMUTATIONS):
        perm = rng.permutation(len(z))
        exceed += mmd2_unbiased(k[np.ix_(perm, perm)], n) >= observed
    p = (1 + exceed) / (NUMPY_PERMUTATIONS + 1)
    return {"bandwidth": h, "statistic": observed, "p_value": p,
            "p_permutations": NUMPY_PERMUTATIONS}


def centroid_case(x, y):
    mx = x.astype(np.float64).mean(axis=0)
    my = y.astype(np.float64).mean(axis=0)
    return {"cosine": cosine(mx, my), "euclidean": euclidean(mx, my)}


def write_case(name, comment, x, y, values):
    n, d = x.shape
    lines = ["# " + comment,
             f"n {n}", f"m {len(y)}", f"d {d}"]
    for key, val in values.items():
        lines.append(f"{key} {val!r}" if isinstance(val, int)
                     else f"{key} {float(val):.17g}")
    for label, rows in (("x", x), ("y", y)):
        lines.append(label)
        lines.extend(" ".join(f"{float(v):.9g}" for v in row) for row in rows)
    with open(os.path.join(HERE, name + ".txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def gauss(rng, n, d, loc=0.0, scale=1.0):
    return (loc + scale * rng.standard_normal((n, d))).astype(np.float32)


def main():
    rng = np.random.default_rng(20261129)
    mmd_cases = {
        "null": ("no drift, n=m=50, d=8",
                 gauss(rng, 50, 8), gauss(rng, 50, 8)),
        "shift": ("mean shift 0.07 per coordinate, n=80, m=60, d=16",
                  gauss(rng, 80, 16), gauss(rng, 60, 16, loc=0.07)),
        "offset_scale": ("all points near 100, window scaled x1.25, "
                         "n=60, m=40, d=4",
                         gauss(rng, 60, 4, loc=100.0),
                         gauss(rng, 40, 4, loc=100.0, scale=1.25)),
        "strong": ("mean shift 2 per coordinate, n=40, m=30, d=4",
                   gauss(rng, 40, 4), gauss(rng, 30, 4, loc=2.0)),
    }
    for i, (name, (comment, x, y)) in enumerate(mmd_cases.items()):
        write_case("mmd_" + name, comment, x, y, mmd_case(x, y, seed=i))

    direction = rng.standard_normal(16)
    centroid_cases = {
        "near_origin": ("means near the origin, window shifted by 0.05 "
                        "along a random direction, d=16",
                        gauss(rng, 100, 16),
                        (gauss(rng, 80, 16) + 0.05 * direction)
                        .astype(np.float32)),
        "far_from_origin": ("both means near 50 (tiny angle), d=16",
                            gauss(rng, 100, 16, loc=50.0),
                            gauss(rng, 120, 16, loc=50.01)),
        "opposite": ("means of opposite sign, d=3",
                     gauss(rng, 30, 3, loc=1.0), gauss(rng, 30, 3, loc=-1.0)),
    }
    for name, (comment, x, y) in centroid_cases.items():
        write_case("centroid_" + name, comment, x, y, centroid_case(x, y))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Reference vectors for tests/unit/test_energy.c.

Run with /usr/bin/python3 (Debian's numpy/scipy); rewrites
tests/data/energy_*.txt next to itself. Deterministic. Inputs are rounded to
float32 first; expected values are computed in float64 with scipy's cdist,
independently of the C algorithm: the statistic is
2·mean|x-y| - mean_{i!=j}|x_i-x_j| - mean_{i!=j}|y_i-y_j|, the p-value
(1 + #{T_b >= T}) / (B + 1) over B = 10000 numpy permutations.

File format as gen_mmd_vectors.py: '# comment', 'key value' lines
(n, m, d, statistic, p_value, p_permutations), 'x' and the rows, 'y' and
the rows.
"""
import os

import numpy as np
from scipy.spatial.distance import cdist

HERE = os.path.dirname(os.path.abspath(__file__))
PERMUTATIONS = 10000


def energy_u(dist, n):
    m = dist.shape[0] - n
    dxx, dyy, dxy = dist[:n, :n], dist[n:, n:], dist[:n, n:]
    return (2 * dxy.mean() - dxx.sum() / (n * (n - 1))
            - dyy.sum() / (m * (m - 1)))


def case(x, y, seed):
    z = np.vstack([x, y]).astype(np.float64)
    dist = cdist(z, z)
    n = len(x)
    observed = energy_u(dist, n)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(PERMUTATIONS):
        perm = rng.permutation(len(z))
        exceed += energy_u(dist[np.ix_(perm, perm)], n) >= observed
    return {"statistic": observed,
            "p_value": (1 + exceed) / (PERMUTATIONS + 1),
            "p_permutations": PERMUTATIONS}


def write_case(name, comment, x, y, values):
    lines = ["# " + comment, f"n {len(x)}", f"m {len(y)}", f"d {x.shape[1]}"]
    for key, val in values.items():
        lines.append(f"{key} {val!r}" if isinstance(val, int)
                     else f"{key} {float(val):.17g}")
    for label, rows in (("x", x), ("y", y)):
        lines.append(label)
        lines.extend(" ".join(f"{float(v):.9g}" for v in row) for row in rows)
    with open(os.path.join(HERE, "energy_" + name + ".txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def gauss(rng, n, d, loc=0.0, scale=1.0):
    return (loc + scale * rng.standard_normal((n, d))).astype(np.float32)


def main():
    rng = np.random.default_rng(20261202)
    cases = {
        "null": ("no drift, n=m=50, d=8", gauss(rng, 50, 8), gauss(rng, 50, 8)),
        "shift": ("mean shift 0.25 in every coordinate, n=70, m=40, d=6",
                  gauss(rng, 70, 6), gauss(rng, 40, 6, loc=0.25)),
        "scale": ("same mean near 50, window scale x1.4, n=45, m=55, d=3",
                  gauss(rng, 45, 3, loc=50.0),
                  gauss(rng, 55, 3, loc=50.0, scale=1.4)),
        "univariate": ("d=1, n=30, m=20, shift 0.5",
                       gauss(rng, 30, 1), gauss(rng, 20, 1, loc=0.5)),
    }
    for i, (name, (comment, x, y)) in enumerate(cases.items()):
        write_case(name, comment, x, y, case(x, y, seed=i))


if __name__ == "__main__":
    main()

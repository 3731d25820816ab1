#!/usr/bin/python3
"""Reference vectors for tests/unit/test_classifier.c, from sklearn.

Run with /usr/bin/python3 (Debian's numpy/sklearn); rewrites
tests/data/classifier_*.txt next to itself. Deterministic; features are
rounded to float32 first.

classifier_fit_NAME.txt: 'n d l2', then 'b value', then 'w' and d
  weights, then n lines 'label x_1 .. x_d'. The weights are those of
  sklearn.linear_model.LogisticRegression(C = 1 / (l2 * n)), fitted to
  high precision, whose objective equals clf_fit's.
classifier_auc.txt: 'n auc' then n lines 'label score'
  (sklearn.metrics.roc_auc_score, with tied scores).
"""
import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))


def write_fit(name, a, t, l2):
    n, d = a.shape
    model = LogisticRegression(C=1.0 / (l2 * n), tol=1e-12, max_iter=100000)
    model.fit(a.astype(np.float64), t)
    lines = [f"{n} {d} {l2!r}", f"b {model.intercept_[0]:.17g}", "w",
             " ".join(f"{v:.17g}" for v in model.coef_[0])]
    lines += [f"{int(label)} " + " ".join(f"{float(v):.9g}" for v in row)
              for label, row in zip(t, a)]
    with open(os.path.join(HERE, f"classifier_fit_{name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    rng = np.random.default_rng(20261205)
    a = rng.standard_normal((120, 5)).astype(np.float32)
    t = (a[:, 0] + 0.5 * a[:, 1] + rng.standard_normal(120) > 0.3).astype(int)
    write_fit("separable_ish", a, t, 0.05)
    a = rng.standard_normal((80, 12)).astype(np.float32)
    t = rng.integers(0, 2, 80)
    a[t == 1, 3] += 0.8
    write_fit("weak", a, t, 0.5)
    write_fit("tiny_penalty", a, t, 1e-3)

    s = np.round(rng.standard_normal(200), 1)
    y = (s + rng.standard_normal(200) > 0).astype(int)
    lines = [f"200 {roc_auc_score(y, s):.17g}"]
    lines += [f"{label} {v!r}" for label, v in zip(y, s)]
    with open(os.path.join(HERE, "classifier_auc.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

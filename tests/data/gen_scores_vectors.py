#!/usr/bin/python3
"""Reference vectors for tests/unit/test_scores.c and test_calibration.c.

Run with /usr/bin/python3 (Debian's numpy/scipy/sklearn); rewrites
tests/data/scores_*.txt and calibration_*.txt next to itself.
Deterministic. Scores are rounded to float32 first, as the daemon stores
them. Expected values come from scipy (ks_2samp, jensenshannon,
wasserstein_distance, chi2_contingency) and, for calibration, from numpy
formulas that are cross-checked here against sklearn (brier_score_loss,
log_loss, accuracy_score, precision_recall_fscore_support,
calibration_curve) wherever sklearn has the same metric.

scores_NAME.txt: 'n m k', 'key value' lines, 'ref' + n rows of k scores,
  'win' + m rows.
calibration_NAME.txt: 'n k', 'key value' lines, 'bins B' + B lines
  'count confidence accuracy', then n lines 'label s_1 .. s_k'.
chi2_sf.txt: lines 'x dof p' (scipy.stats.chi2.sf).
"""
import os

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn import calibration, metrics

HERE = os.path.dirname(os.path.abspath(__file__))
BINS = 10
EPS = 1e-4
CAL_BINS = 15


def values_of(s):
    return s[:, 0] if s.shape[1] == 1 else s.max(axis=1)


def classes_of(s):
    if s.shape[1] == 1:
        return (s[:, 0] >= np.float32(0.5)).astype(int)
    return s.argmax(axis=1)


def score_case(ref, win):
    rv, wv = values_of(ref), values_of(win)
    ks = stats.ks_2samp(rv, wv, method="auto")
    edges = np.quantile(rv.astype(np.float64), np.arange(1, BINS) / BINS)
    r = np.bincount(np.searchsorted(edges, rv.astype(np.float64), "right"),
                    minlength=BINS) / len(rv)
    c = np.bincount(np.searchsorted(edges, wv.astype(np.float64), "right"),
                    minlength=BINS) / len(wv)
    re, ce = np.where(r > 0, r, EPS), np.where(c > 0, c, EPS)
    psi = float(np.sum((ce - re) * np.log(ce / re)))
    js = float(jensenshannon(r, c, base=2))
    w1 = stats.wasserstein_distance(rv.astype(np.float64),
                                    wv.astype(np.float64))
    k = max(2, ref.shape[1])
    table = np.array([np.bincount(classes_of(ref), minlength=k),
                      np.bincount(classes_of(win), minlength=k)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        chi2, chi2_p, dof = 0.0, 1.0, 0
    else:
        chi2, chi2_p, dof, _ = stats.chi2_contingency(table, correction=False)
    return {"ks_d": ks.statistic, "ks_p": ks.pvalue, "psi": psi,
            "js": 0.0 if np.isnan(js) else js, "w1": w1, "chi2": chi2,
            "chi2_p": chi2_p, "chi2_dof": int(dof)}


def fmt(val):
    return repr(val) if isinstance(val, int) else f"{float(val):.17g}"


def write_scores(name, ref, win):
    vals = score_case(ref, win)
    lines = [f"{len(ref)} {len(win)} {ref.shape[1]}"]
    lines += [f"{k} {fmt(v)}" for k, v in vals.items()]
    for label, rows in (("ref", ref), ("win", win)):
        lines.append(label)
        lines += [" ".join(f"{float(v):.9g}" for v in row) for row in rows]
    with open(os.path.join(HERE, f"scores_{name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def dirichlet(rng, n, alpha):
    return rng.dirichlet(alpha, n).astype(np.float32)


def calibration_case(s, y):
    k = s.shape[1]
    s64 = s.astype(np.float64)
    if k == 1:
        conf = s64[:, 0]
        pred = (s[:, 0] >= np.float32(0.5)).astype(int)
        hit = y.astype(np.float64)
        brier = np.mean((conf - y) ** 2)
        q = np.where(y == 1, conf, 1 - conf)
    else:
        pred = s.argmax(axis=1)
        conf = s64[np.arange(len(y)), pred]
        hit = (pred == y).astype(np.float64)
        brier = np.mean(np.sum((s64 - np.eye(k)[y]) ** 2, axis=1))
        q = s64[np.arange(len(y)), y]
    log_loss = -np.mean(np.log(np.clip(q, 1e-15, 1 - 1e-15)))
    edges = np.arange(1, CAL_BINS) / CAL_BINS
    ids = np.searchsorted(edges, conf)
    count = np.bincount(ids, minlength=CAL_BINS)
    csum = np.bincount(ids, weights=conf, minlength=CAL_BINS)
    hsum = np.bincount(ids, weights=hit, minlength=CAL_BINS)
    nz = count > 0
    bconf = np.where(nz, csum / np.maximum(count, 1), 0.0)
    bacc = np.where(nz, hsum / np.maximum(count, 1), 0.0)
    gaps = np.abs(bacc - bconf)[nz]
    ece = float(np.sum(count[nz] / len(y) * gaps))
    mce = float(gaps.max())
    order = np.lexsort((hit, conf))
    n = len(y)
    ace = 0.0
    for b in range(CAL_BINS):
        lo, hi = int(b * n / CAL_BINS), int((b + 1) * n / CAL_BINS)
        if hi > lo:
            ace += abs(hit[order[lo:hi]].sum() - conf[order[lo:hi]].sum()) / n
    avg = "binary" if k == 1 else "macro"
    prec, rec, f1, _ = metrics.precision_recall_fscore_support(
        y, pred, average=avg, zero_division=0)
    acc = metrics.accuracy_score(y, pred)
    # cross-checks against sklearn's own implementations
    if k == 1:
        assert np.isclose(brier, metrics.brier_score_loss(y, conf))
        if 0 < y.sum() < len(y):
            assert np.isclose(log_loss, metrics.log_loss(y, conf, eps=1e-15))
            pt, pp = calibration.calibration_curve(y, conf, n_bins=CAL_BINS)
            assert np.allclose(pt, bacc[nz]) and np.allclose(pp, bconf[nz])
    else:
        assert np.isclose(log_loss, metrics.log_loss(
            y, s64, eps=1e-15, labels=np.arange(k)), rtol=1e-5)
    return ({"ece": ece, "ace": ace, "mce": mce, "brier": brier,
             "log_loss": log_loss, "accuracy": acc, "precision": prec,
             "recall": rec, "f1": f1},
            list(zip(count, bconf, bacc)))


def write_calibration(name, s, y):
    vals, bins = calibration_case(s, y)
    lines = [f"{len(y)} {s.shape[1]}"]
    lines += [f"{k} {fmt(v)}" for k, v in vals.items()]
    lines.append(f"bins {len(bins)}")
    lines += [f"{int(c)} {fmt(conf)} {fmt(acc)}" for c, conf, acc in bins]
    lines += [f"{int(label)} " + " ".join(f"{float(v):.9g}" for v in row)
              for label, row in zip(y, s)]
    with open(os.path.join(HERE, f"calibration_{name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    rng = np.random.default_rng(20261203)
    col = lambda v: np.asarray(v, np.float32).reshape(-1, 1)
    write_scores("binary", col(rng.beta(2, 5, 200)), col(rng.beta(2.5, 4, 150)))
    write_scores("multiclass", dirichlet(rng, 120, [2, 1, 1, 0.5]),
                 dirichlet(rng, 90, [1, 1, 2, 0.5]))
    write_scores("ties", col(rng.choice([0.1, 0.5, 0.9], 50, p=[.6, .3, .1])),
                 col(rng.choice([0.1, 0.5, 0.9], 40, p=[.2, .3, .5])))
    write_scores("constant", col(np.full(30, 0.3)), col(np.full(20, 0.3)))

    p = rng.uniform(0, 1, 300).astype(np.float32)
    p[:6] = [0.0, 1.0, 0.5, 1 / 15, 0.2, 14 / 15]
    y = (rng.uniform(0, 1, 300) < p.astype(np.float64) ** 1.3).astype(int)
    write_calibration("binary", p.reshape(-1, 1), y)
    s = dirichlet(rng, 250, [3, 1, 1, 1, 0.5])
    y = np.array([rng.choice(5, p=row / row.sum()) for row in
                  s.astype(np.float64) ** 0.7 / 1.0])
    write_calibration("multiclass", s, y)
    s = dirichlet(rng, 7, [1, 1, 1])
    write_calibration("tiny", s, np.array([0, 1, 2, 2, 1, 0, 0]))
    write_calibration("all_negative", col(rng.uniform(0, 0.4, 20)),
                      np.zeros(20, int))

    lines = []
    for dof in (1, 2, 3, 7, 30, 200):
        for x in (0.0, 1e-3, 0.5, 1.0, 3.84, 10.0, 40.0, 120.0, 400.0):
            lines.append(f"{x!r} {dof} {stats.chi2.sf(x, dof):.17g}")
    with open(os.path.join(HERE, "chi2_sf.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

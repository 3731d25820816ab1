#!/usr/bin/python3
"""Reference vectors for the Page-Hinkley test of tests/unit/test_stream.c
(detectors/stream: the alarms and what each one saw).

Run with /usr/bin/python3 (Debian's numpy/scipy) from any directory; it
rewrites tests/data/stream_ph.txt next to itself.  Deterministic (fixed
seeds).

The definition (detectors/stream.h), restarted after every alarm: with
x̄_t the running mean of the values since the restart,
    up_t   = α·up_{t-1}   + (x_t - x̄_t - δ),  alarm when up_t - min(0, up_1..t) > λ
    down_t = α·down_{t-1} + (x_t - x̄_t + δ),  alarm when max(0, down_1..t) - down_t > λ
not before min_samples values, the upward test first.  The change point of
an alarm is the number of values up to the first time the extreme of the
statistic that fired was reached (0 when it never left 0); the means are
those of the values before and after it.

Each case is computed twice: by a plain loop over the recursion (the
values written), and per segment between alarms with numpy cumulative sums
and scipy.signal.lfilter for the fading recursion, so a slip in the
reference cannot silently become the expected value.

File format: '#' comment lines; per case a line
'case NAME N delta threshold min_samples forget dir' (dir: 1 up, 2 down,
3 both), a line 'x' followed by N values, then 'alarms K' and K lines
'index dir n statistic change_at mean_before mean_after' (index: 0-based
position of the value that raised it; 'nan' for an empty side).
"""
import os

import numpy as np
from scipy.signal import lfilter

HERE = os.path.dirname(os.path.abspath(__file__))
UP, DOWN, BOTH = 1, 2, 3


def ph_loop(x, delta, lam, min_samples, forget, direction):
    alarms = []
    n = 0
    mean = total = up = up_min = down = down_max = 0.0
    up_at = down_at = 0
    up_sum = down_sum = 0.0
    for i, v in enumerate(x):
        n += 1
        total += v
        mean += (v - mean) / n
        dev = v - mean
        up = forget * up + (dev - delta)
        down = forget * down + (dev + delta)
        if up < up_min:
            up_min, up_at, up_sum = up, n, total
        if down > down_max:
            down_max, down_at, down_sum = down, n, total
        if n < min_samples:
            continue
        fired = None
        if direction & UP and up - up_min > lam:
            fired = (UP, up - up_min, up_at, up_sum)
        elif direction & DOWN and down_max - down > lam:
            fired = (DOWN, down_max - down, down_at, down_sum)
        if fired is None:
            continue
        d, stat, at, at_sum = fired
        before = at_sum / at if at else float("nan")
        after = (total - at_sum) / (n - at) if n > at else float("nan")
        alarms.append((i, d, n, stat, at, before, after))
        n = 0
        mean = total = up = up_min = down = down_max = 0.0
        up_at = down_at = 0
        up_sum = down_sum = 0.0
    return alarms


def ph_numpy(x, delta, lam, min_samples, forget, direction):
    """The same alarms, one segment (restart to alarm) at a time."""
    alarms = []
    start = 0
    while start < len(x):
        seg = np.asarray(x[start:], dtype=np.float64)
        t = np.arange(1, seg.size + 1)
        csum = np.cumsum(seg)
        dev = seg - csum / t
        up = lfilter([1.0], [1.0, -forget], dev - delta)
        down = lfilter([1.0], [1.0, -forget], dev + delta)
        up_stat = up - np.minimum(np.minimum.accumulate(up), 0.0)
        down_stat = np.maximum(np.maximum.accumulate(down), 0.0) - down
        ok = t >= min_samples
        fire_up = ok & (up_stat > lam) if direction & UP else np.zeros(seg.size, bool)
        fire_down = ok & (down_stat > lam) if direction & DOWN else np.zeros(seg.size, bool)
        fire = fire_up | fire_down
        if not fire.any():
            break
        k = int(np.argmax(fire))
        n = k + 1
        if fire_up[k]:
            d, stat, ext = UP, up_stat[k], up[:n]
            at = int(np.argmin(ext)) + 1 if ext.min() < 0 else 0
        else:
            d, stat, ext = DOWN, down_stat[k], down[:n]
            at = int(np.argmax(ext)) + 1 if ext.max() > 0 else 0
        before = csum[at - 1] / at if at else float("nan")
        after = (csum[k] - (csum[at - 1] if at else 0.0)) / (n - at) if n > at else float("nan")
        alarms.append((start + k, d, n, stat, at, before, after))
        start += n
    return alarms


def agree(a, b):
    if len(a) != len(b):
        return False
    for p, q in zip(a, b):
        if p[:3] != q[:3] or p[4] != q[4]:
            return False
        for u, v in zip(p[3:], q[3:]):
            if not (np.isnan(u) and np.isnan(v)) and abs(u - v) > 1e-9 * max(1.0, abs(v)):
                return False
    return True


def cases():
    rng = np.random.default_rng(20261129)
    # Error indicators: a rate of 0.1, then 0.4 (a model getting worse).
    err = np.concatenate([rng.uniform(size=3000) < 0.1,
                          rng.uniform(size=2000) < 0.4]).astype(np.float64)
    yield "error_rise", err, 0.05, 20.0, 30, 1.0, UP
    # Scores around 0.3, then 0.5, then 0.2: both directions, fading.
    score = np.concatenate([rng.normal(0.3, 0.1, 2000), rng.normal(0.5, 0.1, 1500),
                            rng.normal(0.2, 0.1, 1500)])
    yield "score_shifts", score, 0.005, 5.0, 30, 0.999, BOTH
    # A drop watched downwards only, with the default parameters.
    drop = np.concatenate([rng.normal(0.7, 0.05, 1000), rng.normal(0.4, 0.05, 2000)])
    yield "score_drop", drop, 0.005, 50.0, 30, 0.9999, DOWN
    # No change: no alarm.
    flat = rng.normal(0.5, 0.1, 5000)
    yield "stationary", flat, 0.005, 50.0, 30, 0.9999, BOTH


def fmt(v):
    return "nan" if np.isnan(v) else repr(float(v))


def main():
    out = ["# Page-Hinkley alarms; generated by gen_stream_vectors.py",
           "# (a loop over the recursion, checked per segment with numpy/scipy).",
           "# Do not edit by hand."]
    for name, x, delta, lam, min_samples, forget, direction in cases():
        # Six decimals keep the file short; the test reads the same values.
        x = [round(float(v), 6) for v in x]
        alarms = ph_loop(x, delta, lam, min_samples, forget, direction)
        check = ph_numpy(x, delta, lam, min_samples, forget, direction)
        assert agree(alarms, check), (name, alarms[:3], check[:3])
        out.append(f"case {name} {len(x)} {delta!r} {lam!r} {min_samples} {forget!r} {direction}")
        out.append("x")
        out.extend(repr(v) for v in x)
        out.append(f"alarms {len(alarms)}")
        for i, d, n, stat, at, before, after in alarms:
            out.append(f"{i} {d} {n} {fmt(stat)} {at} {fmt(before)} {fmt(after)}")
    with open(os.path.join(HERE, "stream_ph.txt"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

"""driftctl send: streams a file of records to driftd over the binary
protocol (docs/protocol.md), with a progress bar on a terminal, an
optional rate limit and a final summary of accepted and rejected records.

Formats, by extension:
  .ndjson .jsonl .json  one record per line, as on the NDJSON socket (--labels:
                        one {"model","id","label"} per line)
  .npy                  an N x dim float matrix of embeddings (--model
                        required); an optional sidecar (--sidecar, default
                        FILE.ndjson next to it) gives each row's id, slice,
                        ts, label, scores and role as one JSON line per row
  .csv                  a header row; columns model, id, ts, label, role,
                        slice.KEY (slice labels), s0 s1 ... (scores) and
                        e0 e1 ... (the embedding)
Exit status: 0 when every record was accepted, 1 when some were refused,
2 when the file or the connection failed.
"""

import argparse
import csv
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "clients", "python"))

import driftd_client as dc  # noqa: E402


def register(sub):
    p = sub.add_parser("send", help="stream a file of records to driftd",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help=".ndjson/.jsonl, .npy or .csv")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7070)
    p.add_argument("--unix", metavar="PATH",
                   help="ingest Unix socket instead of TCP")
    p.add_argument("--token", default=os.environ.get("DRIFTD_TOKEN"),
                   help="shared token (default: $DRIFTD_TOKEN)")
    p.add_argument("--model", help="model name for .npy, or records "
                   "without one")
    p.add_argument("--sidecar", help=".npy: per-row JSON lines")
    p.add_argument("--labels", action="store_true",
                   help="the file holds labels for earlier records")
    p.add_argument("--rate", type=float, default=0,
                   help="at most this many records per second (0 = as "
                   "fast as the daemon takes them)")
    p.add_argument("--frame-bytes", type=int, default=1 << 20,
                   help="target frame size (default 1 MiB)")
    p.add_argument("--progress", choices=("auto", "always", "never"),
                   default="auto", help="progress bar (auto: on a terminal)")
    p.add_argument("--show-errors", type=int, default=10, metavar="N",
                   help="refused records listed in the summary")
    p.set_defaults(func=run)
    return p


class BadInput(Exception):
    """The file cannot be read as records."""


# -- readers: each yields (records iterator, total or None) -----------------

def read_ndjson(path, model):
    def gen():
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except ValueError as e:
                    raise BadInput(f"{path}:{n}: not JSON: {e}")
                if model and "model" not in r:
                    r["model"] = model
                yield r
    with open(path, "rb") as f:
        total = sum(1 for line in f if line.strip())
    return gen(), total


def read_npy(path, model, sidecar):
    try:
        import numpy as np
    except ImportError:
        raise BadInput(".npy files need numpy (python3-numpy)")
    if not model:
        raise BadInput("--model is required for .npy files")
    x = np.load(path, mmap_mode="r")
    if x.ndim != 2:
        raise BadInput(f"{path}: expected an N x dim matrix, got shape "
                         f"{x.shape}")
    if sidecar is None:
        guess = os.path.splitext(path)[0] + ".ndjson"
        sidecar = guess if os.path.exists(guess) else None
    meta = None
    if sidecar:
        with open(sidecar, encoding="utf-8") as f:
            meta = [json.loads(l) for l in f if l.strip()]
        if len(meta) != len(x):
            raise BadInput(f"{sidecar}: {len(meta)} lines for "
                             f"{len(x)} rows")

    def gen():
        for i in range(len(x)):
            r = dict(meta[i]) if meta else {}
            r["model"] = model
            r["embedding"] = np.asarray(x[i], dtype=np.float32)
            yield r
    return gen(), len(x)


def read_csv(path, model):
    def gen():
        with open(path, newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            head = next(rows)
            emb = sorted((int(c[1:]), i) for i, c in enumerate(head)
                         if c[:1] == "e" and c[1:].isdigit())
            sco = sorted((int(c[1:]), i) for i, c in enumerate(head)
                         if c[:1] == "s" and c[1:].isdigit())
            sl = [(c[6:], i) for i, c in enumerate(head)
                  if c.startswith("slice.")]
            col = {c: i for i, c in enumerate(head)}
            for n, row in enumerate(rows, 2):
                try:
                    yield csv_record(row, col, emb, sco, sl, model)
                except (ValueError, IndexError) as e:
                    raise BadInput(f"{path}:{n}: {e}")
    with open(path, "rb") as f:
        total = max(0, sum(1 for _ in f) - 1)
    return gen(), total


def csv_record(row, col, emb, sco, sl, model):
    r = {"model": row[col["model"]] if "model" in col else model}
    for key in ("id", "ts", "role"):
        if key in col and row[col[key]] != "":
            r[key] = row[col[key]]
    if "ts" in r:
        try:
            r["ts"] = float(r["ts"])
        except ValueError:
            pass   # RFC 3339 text
    if "label" in col and row[col["label"]] != "":
        r["label"] = int(row[col["label"]])
    if sl:
        r["slice"] = {k: row[i] for k, i in sl}
    if emb:
        r["embedding"] = [float(row[i]) for _, i in emb]
    if sco:
        r["scores"] = [float(row[i]) for _, i in sco]
    return r


def open_records(a):
    ext = os.path.splitext(a.file)[1].lower()
    if ext in (".ndjson", ".jsonl", ".json"):
        return read_ndjson(a.file, a.model)
    if ext == ".npy":
        return read_npy(a.file, a.model, a.sidecar)
    if ext == ".csv":
        return read_csv(a.file, a.model)
    raise BadInput(f"{a.file}: unknown format (.ndjson, .jsonl, .npy, "
                     ".csv)")


# -- pacing and progress ----------------------------------------------------

def paced(records, rate):
    """Yields RECORDS no faster than RATE per second."""
    if rate <= 0:
        yield from records
        return
    t0 = time.monotonic()
    for n, r in enumerate(records):
        ahead = n / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        yield r


class Progress:
    """A one-line bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total, enabled, out=sys.stderr):
        self.total, self.enabled, self.out = total, enabled, out
        self.done = self.accepted = self.rejected = 0
        self.t0 = self.last = time.monotonic()

    def ack(self, ack, n):
        self.done += n
        self.accepted += ack.accepted
        self.rejected += ack.rejected
        now = time.monotonic()
        if self.enabled and (now - self.last >= 0.1 or
                             self.done == self.total):
            self.last = now
            self.draw(now)

    def draw(self, now):
        rate = self.done / max(now - self.t0, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            head = f"[{bar:<30}] {frac * 100:5.1f}% {self.done}/{self.total}"
        else:
            head = f"{self.done}"
        self.out.write(f"\r{head} records, {self.rejected} rejected, "
                       f"{rate:,.0f} rec/s ")
        self.out.flush()

    def end(self):
        if self.enabled:
            self.draw(time.monotonic())
            self.out.write("\n")


def summary(a, accepted, rejected, errors, seconds):
    print(f"sent {accepted + rejected} records in {seconds:.1f}s: "
          f"{accepted} accepted, {rejected} rejected")
    if not errors:
        return
    reasons = {}
    for _, reason, _ in errors:
        reasons[reason] = reasons.get(reason, 0) + 1
    print("rejected by reason: " + ", ".join(
        f"{k} {v}" for k, v in sorted(reasons.items())))
    for index, reason, msg in errors[:a.show_errors]:
        print(f"  record {index + 1}: {reason}: {msg}")
    if len(errors) > a.show_errors:
        print(f"  ... and {len(errors) - a.show_errors} more")


def run(a):
    try:
        records, total = open_records(a)
    except (OSError, BadInput) as e:
        print(f"driftctl send: {e}", file=sys.stderr)
        return 2
    show = a.progress == "always" or (a.progress == "auto" and
                                      sys.stderr.isatty())
    try:
        if a.unix:
            c = dc.Client.unix(a.unix, a.token)
        else:
            c = dc.Client.tcp(a.host, a.port, a.token)
    except (OSError, dc.DriftdError) as e:
        print(f"driftctl send: cannot connect: {e}", file=sys.stderr)
        return 2
    bar = Progress(total, show)
    t0 = time.monotonic()
    try:
        with c:
            accepted, rejected, errors = dc.stream(
                c, paced(records, a.rate), labels=a.labels,
                frame_bytes=a.frame_bytes, on_ack=bar.ack)
            c.finish()
    except (OSError, BadInput, ValueError, dc.DriftdError) as e:
        bar.end()
        print(f"driftctl send: {e} after {bar.done} records "
              f"({bar.accepted} accepted)", file=sys.stderr)
        return 2
    bar.end()
    errors.sort()
    summary(a, accepted, rejected, errors, time.monotonic() - t0)
    return 1 if rejected else 0

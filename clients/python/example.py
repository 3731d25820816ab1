#!/usr/bin/python3
"""Example: stream embeddings to driftd with the binary protocol, then send
labels for some of them later.  Uses only driftd_client (and numpy, which
is optional for the client itself).

    python3 example.py [--host H] [--port P] [--model M] [--dim D] [--n N]

Prints one JSON line per acknowledged frame and a final summary, so that a
script (or a test) can compare what was sent with what was accepted.
"""

import argparse
import json

import numpy as np

from driftd_client import Client


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7070)
    ap.add_argument("--token")
    ap.add_argument("--model", default="search-encoder")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--shift-after", type=int, default=1000,
                    help="records after this one drift away")
    ap.add_argument("--batch", type=int, default=100)
    a = ap.parse_args()

    rng = np.random.default_rng(7)
    with Client.tcp(a.host, a.port, token=a.token) as c:
        for start in range(0, a.n, a.batch):
            batch = []
            for i in range(start, min(start + a.batch, a.n)):
                x = rng.standard_normal(a.dim).astype(np.float32)
                if i >= a.shift_after:
                    x[: a.dim // 2] += 1.5
                batch.append({"model": a.model, "id": f"req-{i}",
                              "slice": {"region": "eu" if i % 2 else "us"},
                              "embedding": x, "scores": [0.7]})
            ack = c.send(batch)
            print(json.dumps({"seq": ack.seq, "sent": len(batch),
                              "accepted": ack.accepted,
                              "rejected": ack.rejected,
                              "errors": [[e.first, e.reason]
                                         for e in ack.errors]}))
        labels = [{"model": a.model, "id": f"req-{i}", "label": i % 2}
                  for i in range(0, a.n, 10)]
        ack = c.send_labels(labels)
        print(json.dumps({"labels": len(labels), "answered":
                          ack.accepted + ack.rejected}))
        accepted, rejected = c.finish()
        print(json.dumps({"done": True, "accepted": accepted,
                          "rejected": rejected}))


if __name__ == "__main__":
    main()

"""driftctl reference: reset a model's references, load explicit ones.

    driftctl reference reset MODEL
    driftctl reference load FILE [--model M] [--reset] [--ingest ADDR]

reset calls POST /v1/models/MODEL/reference/reset on the side port: every
slice of MODEL forgets its reference (and its open window) and warms up
again; the saved sets are retired, so a restart does not bring them back.
A retraining pipeline calls it right after deploying a new model version.

load sends the NDJSON records of FILE ("-" = stdin) to the ingest socket
with "role": "reference", so they become the reference of their slices (a
uniform sample of reference.size per slice when there are more).  --model
fills in records without "model"; --reset resets each model first, which a
reference already in use needs (otherwise its slices answer
reference_frozen).  The ingest address (and token) default to
[listen] of driftctl's --config.
"""

import http.client
import json
import socket
import sys
import urllib.parse

import driftctl_conn

DEFAULT_INGEST = "tcp://127.0.0.1:7070"
Failure = driftctl_conn.Failure


def read_listen(path):
    """[listen] of the daemon's config as a dict; empty when unreadable."""
    try:
        cfg = driftctl_conn.read_config(path)
    except Failure:
        return {}
    return dict(cfg["listen"]) if cfg.has_section("listen") else {}


def first_address(value, default):
    return next((a.strip() for a in (value or "").split(",") if a.strip()),
                default)


def post(url, path):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise Failure(f"cannot use the side port URL {url}")
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    try:
        conn.request("POST", path, body=b"")
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except OSError as e:
        raise Failure(f"cannot reach driftd at {url}: {e}") from e
    finally:
        conn.close()


def reset(url, model):
    status, body = post(url, "/v1/models/" + urllib.parse.quote(model, safe="")
                        + "/reference/reset")
    if status != 200:
        raise Failure(f"reset of {model} refused ({status}): {body.strip()}")
    return json.loads(body)


def connect(addr):
    """addr: tcp://HOST:PORT, HOST:PORT or unix:/path."""
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr[5:])
        return s
    host, _, port = addr.removeprefix("tcp://").rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=60)


def reference_lines(path, model):
    """FILE's records as role=reference lines; models named in them."""
    lines, models = [], set()
    with (sys.stdin if path == "-" else open(path)) as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise Failure(f"{path}:{no}: not JSON: {e}") from e
            if not isinstance(rec, dict):
                raise Failure(f"{path}:{no}: not a JSON object")
            if model:
                rec.setdefault("model", model)
            if "model" not in rec:
                raise Failure(f"{path}:{no}: no model (use --model)")
            rec["role"] = "reference"
            models.add(rec["model"])
            lines.append(json.dumps(rec, separators=(",", ":")))
    return lines, models


def send(addr, token, lines):
    """Sends LINES, returns the daemon's replies (errors, then summary)."""
    try:
        s = connect(addr)
    except (OSError, ValueError) as e:
        raise Failure(f"cannot reach driftd's ingest at {addr}: {e}") from e
    payload = ([json.dumps({"auth": token})] if token else []) + lines
    with s:
        s.sendall("".join(l + "\n" for l in payload).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return [json.loads(l) for l in data.decode().splitlines() if l]


def cmd_reset(args):
    r = reset(args.url, args.model)
    print(f"{r['model']}: references reset in {r['slices_reset']} slices")
    return 0


def cmd_load(args):
    listen = read_listen(args.config)
    addr = args.ingest or first_address(listen.get("ingest"), DEFAULT_INGEST)
    lines, models = reference_lines(args.file, args.model)
    if args.reset:
        for m in sorted(models):
            reset(args.url, m)
    replies = send(addr, listen.get("token") or None, lines)
    done = replies[-1] if replies and replies[-1].get("done") else {}
    for e in replies:
        if "error" in e:
            print(f"line {e.get('line')}: {e['error']}: {e.get('message')}",
                  file=sys.stderr)
    print(f"{done.get('accepted', 0)} reference records accepted, "
          f"{done.get('rejected', 0)} refused")
    return 0 if done and not done.get("rejected") else 1


def register(sub):
    p = sub.add_parser("reference", help="reset or load reference sets")
    rsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = rsub.add_parser("reset", help="forget MODEL's references (new model "
                                      "version deployed)")
    r.add_argument("model")
    r.set_defaults(func=driftctl_conn.reported(cmd_reset))
    lo = rsub.add_parser("load", help="send FILE's records as the reference")
    lo.add_argument("file", help="NDJSON records, - for stdin")
    lo.add_argument("--model", help="model of records that name none")
    lo.add_argument("--reset", action="store_true",
                    help="reset each model's references first")
    lo.add_argument("--ingest", help="ingest address (tcp://HOST:PORT, "
                                     "HOST:PORT or unix:/path); default "
                                     "[listen] ingest of --config")
    lo.set_defaults(func=driftctl_conn.reported(cmd_load))

#!/usr/bin/python3
"""The main job, end to end on one machine: a private PostgreSQL, driftd with
conf/demo.ini, a synthetic embedding stream in which one slice drifts, the
drift history read back with SQL, and the signed webhook the drift caused,
verified by a local receiver.  Run through tools/demo.sh."""

import datetime
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from pgtmp import PgCluster, server_user  # noqa: E402
from webhook_receiver import Receiver, show  # noqa: E402

DRIFTD = os.path.join(ROOT, "build", "daemon", "driftd")
DIM = 64
REGIONS = ["eu", "us", "apac"]
DEVICES = ["ios", "android"]
DRIFTING = ("apac", "android")
HTTP_PORT = 7371   # [listen] http in conf/demo.ini
HOOK_PORT = 7372   # [webhook.retrain] url in conf/demo.ini


def demo_dir():
    """.demo/ in the checkout when the server's user can reach it (a
    checkout under /root is not), else a private directory in /tmp."""
    d = os.path.join(ROOT, ".demo")
    os.makedirs(d, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam(server_user())
        probe = subprocess.run(["runuser", "-u", user.pw_name, "--", "test",
                                "-x", d], check=False)
        if probe.returncode != 0:
            return tempfile.mkdtemp(prefix="driftd-demo-")
    return d


def stream(rng, n, t0, drift):
    """Records round-robin over region × device.  Embeddings are unit
    vectors around a common direction, like a contrastive encoder's; the
    drifting slice rotates toward another direction once DRIFT is on."""
    base = np.zeros(DIM)
    base[0] = 3.0
    other = np.zeros(DIM)
    other[1] = 3.0
    out = []
    slices = [(r, d) for r in REGIONS for d in DEVICES]
    for i in range(n):
        region, device = slices[i % len(slices)]
        center = base
        if drift and (region, device) == DRIFTING:
            center = 0.75 * base + 0.25 * other
        v = center + rng.normal(size=DIM)
        v /= np.linalg.norm(v)
        ts = (t0 + datetime.timedelta(milliseconds=50 * i)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")
        out.append(json.dumps({
            "model": "search-encoder",
            "slice": {"region": region, "device": device},
            "ts": ts, "id": f"req-{i}",
            "embedding": [round(float(x), 5) for x in v],
        }, separators=(",", ":")))
    return out


def send(port, lines):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall("".join(l + "\n" for l in lines).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return [json.loads(l) for l in data.decode().splitlines()]


def psql(pg, sql):
    subprocess.run([pg._bin("psql"), "-X", "-P", "pager=off",
                    "-h", pg.sockdir, "-p", str(pg.port), "-U", pg.user,
                    "-d", "driftd", "-c", sql], check=True)


def wait_windows(pg, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = int(pg.psql("SELECT count(*) FROM driftd.windows")[0][0])
        if n >= count:
            return
        time.sleep(0.2)
    raise SystemExit(f"only {n} of {count} windows reached the database")


def main():
    work = demo_dir()
    with PgCluster(parent_dir=work) as pg:
        cfg = os.path.join(work, "demo.ini")
        # A fresh database needs a fresh state_dir: window-id leases and
        # the spill journal of an earlier run belong to its database.
        state = os.path.join(work, "state")
        shutil.rmtree(state, ignore_errors=True)
        os.makedirs(state)
        with open(os.path.join(ROOT, "conf", "demo.ini")) as f:
            text = f.read().replace("@DSN@", pg.dsn).replace("@STATE@", state)
        with open(cfg, "w") as f:
            f.write(text)
        secret = re.search(r"^secret = (\S+)", text, re.M).group(1)
        receiver = Receiver(work, [secret], port=HOOK_PORT).start()
        print(f"== a webhook receiver on 127.0.0.1:{HOOK_PORT} "
              "(tests/integration/webhook_receiver.py)")
        log = open(os.path.join(work, "driftd.log"), "w")
        print(f"== driftd --config {cfg}   (log: {log.name})")
        proc = subprocess.Popen([DRIFTD, "--config", cfg], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            run_stream(pg, work)
            show_webhook(pg, receiver, cfg)
            show_side_port(HTTP_PORT)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            log.close()
            receiver.stop()
        print(f"\n== driftd exited with {proc.returncode}; the log "
              f"is in {log.name}")
    if work.startswith(tempfile.gettempdir()):
        shutil.rmtree(work, ignore_errors=True)


def run_stream(pg, work):
    port = 7370
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("driftd did not start; see the log")
            time.sleep(0.1)
    rng = np.random.default_rng(7)
    t0 = datetime.datetime(2026, 11, 29, 12, tzinfo=datetime.timezone.utc)
    per_slice = len(REGIONS) * len(DEVICES)
    calm = stream(rng, 3 * 200 * per_slice, t0, drift=False)
    print(f"== streaming {len(calm)} records, no drift yet")
    print("  ", send(port, calm)[-1])
    t1 = t0 + datetime.timedelta(hours=1)
    drifting = stream(rng, 2 * 200 * per_slice, t1, drift=True)
    print(f"== streaming {len(drifting)} records; "
          f"region={DRIFTING[0]},device={DRIFTING[1]} drifts")
    print("  ", send(port, drifting)[-1])
    # 4 windows per slice, and 29 for "*" (6000 records less its reference).
    wait_windows(pg, 4 * per_slice + (6000 - 200) // 200)
    print("\n== SELECT ... FROM driftd.drift_history (MMD, per slice)")
    psql(pg, "SELECT slice, window_id, n, round(statistic::numeric, 5) AS "
         "mmd2, round(p_value::numeric, 4) AS p, round(threshold::numeric, "
         "4) AS threshold, drifted FROM driftd.drift_history "
         "WHERE test = 'mmd' AND slice <> '*' ORDER BY slice, window_id")
    print("== SELECT * FROM driftd.latest_status")
    psql(pg, "SELECT slice, window_end, drifted, tests "
         "FROM driftd.latest_status ORDER BY drifted DESC, slice")


def show_webhook(pg, receiver, cfg):
    """The drift.detected call the drift caused, as the receiver got it,
    and the outbox row behind it."""
    got = receiver.wait(1, timeout=60)[0]
    print(f"== the webhook the drift caused: POST {got['path']} on the "
          "receiver, signature checked with the secret of [webhook.retrain]")
    show(got)
    print("\n== SELECT ... FROM driftd.webhook_deliveries "
          "(later alarms within the cooldown are held back)")
    psql(pg, "SELECT id, event, model, status, attempts, last_http_status "
         "FROM driftd.webhook_deliveries ORDER BY created_at")
    psql(pg, "SELECT count(*) AS suppressed_by_cooldown FROM driftd.webhook_suppressed")
    print(f"== tools/driftctl --config {cfg} webhooks list")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "driftctl"),
                    "--config", cfg, "webhooks", "list"], check=False)
    print()


def show_side_port(port):
    """The same windows through the HTTP side port: driftctl, /metrics and
    the status page (kept up with DEMO_KEEP=1 until Ctrl-C)."""
    url = f"http://127.0.0.1:{port}"
    print(f"== tools/driftctl --url {url} status search-encoder")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "driftctl"),
                    "--url", url, "status", "search-encoder"], check=False)
    print(f"\n== curl {url}/metrics | grep 'driftd_test_p_value.*mmd'")
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("driftd_test_p_value") and 'test="mmd"' in line:
                print("  ", line)
    print(f"\n== the status page: {url}/")
    if os.environ.get("DEMO_KEEP"):
        print("   driftd keeps running; Ctrl-C stops it")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    else:
        print("   (run with DEMO_KEEP=1 to keep driftd up and open it in a browser)")


if __name__ == "__main__":
    main()

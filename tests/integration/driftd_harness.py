"""Run the real driftd binary for integration tests (stdlib + numpy).

Driftd starts with a generated config against a real PostgreSQL (see
tests/harness/pgtmp.py), announces readiness over a private NOTIFY_SOCKET
exactly as it would to systemd, and is stopped with SIGTERM.  Clients talk
to it over real TCP and Unix sockets.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SOURCE_ROOT = os.environ.get(
    "DRIFTD_SOURCE_ROOT",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_ROOT = os.environ.get("DRIFTD_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "harness"))

from pgtmp import PgCluster  # noqa: E402  (path set just above)

DRIFTD = os.path.join(BUILD_ROOT, "daemon", "driftd")


_GIVEN_PORTS = set()


def free_port():
    """A TCP port free right now on 127.0.0.1 (the kernel's choice), and
    never one this process was given before: two ports bound and closed
    one after the other can be the same one (a daemon's ingest and HTTP
    ports then clash)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def model_section(name, dim, slice_by="", reference=200, window=200,
                  interval=None, detectors="mmd, centroid", permutations=200,
                  alpha=0.01, correction="bh", extra=""):
    lines = [f"[model.{name}]", f"dim = {dim}", f"slice_by = {slice_by}",
             f"reference.size = {reference}", f"window.size = {window}",
             f"detectors = {detectors}", f"mmd.permutations = {permutations}",
             f"alpha = {alpha}", f"correction = {correction}"]
    if interval:
        lines.append(f"window.interval = {interval}")
    return "\n".join(lines) + "\n" + extra + "\n"


class Driftd:
    """A driftd process with its own config, state dir and ports."""

    def __init__(self, pg, models, workdir, extra_listen="", log_level="info",
                 daemon_extra="", shutdown_timeout="20s", extra_store=""):
        self.pg = pg
        self.workdir = workdir
        self.port = free_port()
        self.http_port = free_port()
        self.unix_path = os.path.join(workdir, "ingest.sock")
        self.config = os.path.join(workdir, "driftd.ini")
        self.log_path = os.path.join(workdir, "driftd.log")
        self.notify_path = os.path.join(workdir, "notify.sock")
        self.models = models
        self.extra_listen = extra_listen
        self.extra_store = extra_store
        self.log_level = log_level
        self.daemon_extra = daemon_extra
        self.shutdown_timeout = shutdown_timeout
        # How start() runs the daemon: ARGV_PREFIX + [BINARY, --config, F],
        # with ENV added to ours and stderr to STDERR (default: the log).
        self.binary = DRIFTD
        self.argv_prefix = []
        self.env = {}
        self.stderr = None
        self.proc = None
        self.notify = None
        self.notices = []
        self.notice_times = []	# time.monotonic() of each notice
        self.write_config()

    def config_text(self, models=None):
        return (
            "[daemon]\n"
            f"state_dir = {self.workdir}\n"
            "workers = 2\n"
            f"log_level = {self.log_level}\n"
            f"shutdown_timeout = {self.shutdown_timeout}\n"
            f"{self.daemon_extra}\n"
            "[listen]\n"
            f"ingest = tcp://127.0.0.1:{self.port}, unix:{self.unix_path}\n"
            f"http = tcp://127.0.0.1:{self.http_port}\n"
            f"{self.extra_listen}\n"
            "[store]\n"
            f"dsn = {self.pg.dsn}\n"
            f"{self.extra_store}\n"
            + (models if models is not None else self.models))

    def write_config(self, models=None):
        with open(self.config, "w") as f:
            f.write(self.config_text(models))

    def start(self, timeout=30, wait_ready=True):
        if self.notify:
            self.notify.close()
        if os.path.exists(self.notify_path):
            os.unlink(self.notify_path)
        self.notices = []
        self.notice_times = []
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path, **self.env)
        if getattr(self, "log", None):
            self.log.close()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv_prefix + [self.binary, "--config", self.config],
            stdout=self.log, stderr=self.stderr or self.log, env=env)
        if wait_ready:
            self.wait_notify("READY=1", timeout)
        return self

    def _read_notices(self, wait):
        self.notify.settimeout(wait)
        try:
            while True:
                self.notices.append(self.notify.recv(4096).decode())
                self.notice_times.append(time.monotonic())
                self.notify.settimeout(0)
        except (socket.timeout, BlockingIOError):
            pass

    def wait_notify(self, what, timeout=30):
        """Waits for a sd_notify message containing WHAT."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None
            self._read_notices(0 if exited else 0.2)
            if any(what in n for n in self.notices):
                return
            if exited:
                raise RuntimeError(f"driftd exited with {self.proc.returncode}"
                                   f" before {what}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} from driftd within {timeout}s"
                                   f":\n{self.log_text()}")

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("driftd did not stop within %ss" % timeout)

    def close(self):
        try:
            self.stop()
        finally:
            if self.notify:
                self.notify.close()
            if getattr(self, "log", None):
                self.log.close()

    # -- clients -------------------------------------------------------------

    def connect(self, unix=False):
        if unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.unix_path)
        else:
            s = socket.create_connection(("127.0.0.1", self.port))
        return s

    def send_lines(self, lines, unix=False):
        """Sends LINES (str or bytes) over one connection, closes the
        write side and returns the reply objects (errors, then summary)."""
        s = self.connect(unix)
        payload = b"".join((l if isinstance(l, bytes) else l.encode()) + b"\n"
                           for l in lines)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return read_replies(s)

    def http_get(self, path):
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def http_post(self, path, body=b""):
        url = f"http://127.0.0.1:{self.http_port}{path}"
        req = urllib.request.Request(url, data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def kill(self):
        """SIGKILL, as a crash: nothing is flushed."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def metrics(self):
        """Parsed /metrics: {'name{labels}': float}."""
        status, text = self.http_get("/metrics")
        assert status == 200, status
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out

    def wait_rows(self, sql, count, timeout=60):
        """Polls SQL until it returns at least COUNT rows."""
        deadline = time.monotonic() + timeout
        rows = []
        while time.monotonic() < deadline:
            rows = self.pg.psql(sql)
            if len(rows) >= count:
                return rows
            time.sleep(0.2)
        raise AssertionError(f"waited {timeout}s for {count} rows of {sql!r}, "
                             f"got {len(rows)}:\n{self.log_text()[-4000:]}")


def read_replies(s, timeout=60):
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return [json.loads(l) for l in data.decode().splitlines() if l]


def record(model, emb, slice_=None, **kw):
    r = {"model": model, "embedding": [round(float(v), 6) for v in emb]}
    if slice_:
        r["slice"] = slice_
    r.update(kw)
    return json.dumps(r, separators=(",", ":"))


class Env:
    """A temporary directory, a PostgreSQL cluster and cleanup, for one
    test module (use with setUpModule/tearDownModule or a with block)."""

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="driftd-it-")
        self.pg = PgCluster().__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self.pg.__exit__(*exc)
        finally:
            self.tmp.cleanup()

    def driftd(self, models, **kw):
        sub = tempfile.mkdtemp(dir=self.tmp.name)
        return Driftd(self.pg, models, sub, **kw)


class DaemonCase(unittest.TestCase):
    """One PostgreSQL and one running driftd shared by the tests of a class.
    Subclasses set MODELS (config sections) and DRIFTD (keyword arguments
    of Driftd) and may feed the daemon in feed()."""

    MODELS = ""
    DRIFTD = {}

    @classmethod
    def setUpClass(cls):
        cls.env = Env().__enter__()
        cls.d = None
        try:
            cls.d = cls.env.driftd(cls.MODELS, **cls.DRIFTD).start()
            cls.feed()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def feed(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.d:
                cls.d.close()
        finally:
            cls.env.__exit__(None, None, None)

#!/usr/bin/python3
"""The real daemon under driftd.service's process restrictions (system call
filter, MemoryDenyWriteExecute, RestrictAddressFamilies, RestrictNamespaces,
an unprivileged user without capabilities), applied by
tests/harness/sandbox.py the way systemd applies them, and traced with
strace: OpenBLAS's threads, libpq over a Unix socket and over TCP with TLS
(OpenSSL) keep working, and every system call the daemon makes is in the
unit's allow list, except those the unit deliberately refuses and the
daemon's libraries survive (listed in DENIED_OK)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import types
import unittest

import numpy as np

from driftd_harness import (BUILD_ROOT, DRIFTD, SOURCE_ROOT, Driftd,
                            model_section, record)
from pgtmp import PgCluster

SANDBOX = os.path.join(SOURCE_ROOT, "tests", "harness", "sandbox.py")
UNIT = os.path.join(BUILD_ROOT, "systemd", "driftd.service")
DIM = 48

# Refused by the unit, harmless to the daemon: OpenBLAS's mbind() is a NUMA
# placement hint whose result it ignores (@resources is denied, EPERM).
DENIED_OK = {"mbind": "EPERM"}

LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")


class TlsPgCluster(PgCluster):
    """A throwaway cluster that also listens on 127.0.0.1 with TLS."""

    def __init__(self, certdir):
        super().__init__()
        self.certdir = certdir

    def create(self):
        crt, key = (os.path.join(self.certdir, n) for n in ("srv.crt", "srv.key"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", crt, "-days", "2",
                        "-subj", "/CN=127.0.0.1"], check=True,
                       capture_output=True)
        if os.geteuid() == 0:
            shutil.chown(key, self.user)
            shutil.chown(crt, self.user)
        os.chmod(key, 0o600)
        super().create()

    def _server_options(self):
        return (super()._server_options() +
                " -c listen_addresses=127.0.0.1 -c ssl=on"
                f" -c ssl_cert_file={self.certdir}/srv.crt"
                f" -c ssl_key_file={self.certdir}/srv.key")

    @property
    def tls_dsn(self):
        return (f"hostaddr=127.0.0.1 port={self.port} dbname=driftd "
                f"user={self.user} sslmode=require")


def traced_syscalls(path):
    """{name: set of outcomes} of the calls after driftd's execve."""
    calls, started = {}, False
    with open(path) as f:
        for line in f:
            if not started:
                started = re.search(r'execve\("[^"]*/driftd", .*= 0$', line)
                continue
            m = LINE.match(line)
            if not m:
                continue
            name = m.group(2) or m.group(3)
            outcomes = calls.setdefault(name, set())
            if "<unfinished ...>" not in line:
                err = re.search(r"= -1 (E[A-Z]+)", line)
                outcomes.add(err.group(1) if err else "ok")
    return calls


@unittest.skipUnless(os.geteuid() == 0, "needs root to drop to another user")
class Sandboxed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="driftd-sandbox-")
        os.chmod(cls.tmp.name, 0o755)
        cls.pg = TlsPgCluster(cls.tmp.name).__enter__()
        cls.allowed = set(subprocess.run(
            [sys.executable, SANDBOX, "allowed", "--unit", UNIT],
            check=True, capture_output=True, text=True).stdout.split())

    @classmethod
    def tearDownClass(cls):
        try:
            cls.pg.__exit__(None, None, None)
        finally:
            cls.tmp.cleanup()

    def run_sandboxed(self, dsn, name):
        """Starts driftd under strace and the sandbox, feeds it windows,
        reloads and stops it; returns the traced system calls."""
        workdir = tempfile.mkdtemp(dir=self.tmp.name)
        shutil.chown(workdir, self.pg.user)
        store = types.SimpleNamespace(dsn=dsn, psql=self.pg.psql)
        d = Driftd(store, model_section(name, DIM, reference=300, window=300,
                                        permutations=500), workdir)
        trace = os.path.join(workdir, "strace.out")
        d.argv_prefix = ["strace", "-f", "-qq", "-o", trace, "--",
                         sys.executable, SANDBOX, "run", "--unit", UNIT,
                         "--user", self.pg.user, "--"]
        # The unprivileged daemon must reach the notify socket.
        umask = os.umask(0)
        try:
            d.start(wait_ready=False)
        finally:
            os.umask(umask)
        self.addCleanup(d.close)
        # strace ignores SIGTERM: end the daemon itself if a check failed.
        self.addCleanup(self.kill_tracee, d.proc)
        d.wait_notify("READY=1")
        pid = self.tracee(d.proc.pid)

        rng = np.random.default_rng(7)
        lines = [record(name, rng.normal(size=DIM)) for _ in range(900)]
        self.assertEqual(d.send_lines(lines)[-1]["accepted"], 900)
        rows = d.wait_rows(f"SELECT window_id FROM driftd.windows WHERE "
                           f"model = '{name}'", 2)
        self.assertEqual(len(rows), 2)
        self.assertEqual(d.http_get("/readyz")[0], 200)
        ssl = self.pg.psql("SELECT DISTINCT s.ssl FROM pg_stat_ssl s JOIN "
                           "pg_stat_activity a USING (pid) "
                           "WHERE a.application_name LIKE 'driftd%'")
        os.kill(pid, signal.SIGHUP)
        d.wait_notify("configuration reloaded")
        os.kill(pid, signal.SIGTERM)
        self.assertEqual(d.proc.wait(30), 0, d.log_text())
        self.assertIn("stopped cleanly", d.log_text())
        return traced_syscalls(trace), ssl

    @staticmethod
    def tracee(strace_pid):
        """The driftd process strace runs (sandbox.py execs it), or None."""
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                exe = os.readlink(f"/proc/{entry}/exe")
            except (OSError, ValueError, IndexError):
                continue
            if ppid == strace_pid and exe == os.path.realpath(DRIFTD):
                return int(entry)
        return None

    def kill_tracee(self, strace):
        pid = strace.poll() is None and self.tracee(strace.pid)
        if pid:
            os.kill(pid, signal.SIGKILL)
            strace.wait(10)

    def check_calls(self, calls):
        outside = {n: sorted(r) for n, r in calls.items()
                   if n not in self.allowed}
        unexpected = {n: r for n, r in outside.items()
                      if r != [DENIED_OK.get(n)]}
        self.assertEqual(unexpected, {}, "system calls outside the unit's "
                         f"SystemCallFilter: {unexpected}")
        # RestrictNamespaces= answers clone3() with ENOSYS; glibc then
        # creates the worker and OpenBLAS threads with clone().
        self.assertEqual(calls.get("clone3"), {"ENOSYS"})
        self.assertEqual(calls.get("clone"), {"ok"})
        print(f"\n{len(calls)} distinct system calls, refused and survived: "
              f"{outside}", end=" ")

    def test_unix_socket_store(self):
        calls, ssl = self.run_sandboxed(self.pg.dsn, "unix")
        self.assertEqual(ssl, [["f"]])
        self.check_calls(calls)

    def test_tls_store(self):
        calls, ssl = self.run_sandboxed(self.pg.tls_dsn, "tls")
        self.assertEqual(ssl, [["t"]])
        self.check_calls(calls)


if __name__ == "__main__":
    unittest.main(verbosity=2)

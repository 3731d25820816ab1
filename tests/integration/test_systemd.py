#!/usr/bin/python3
"""driftd as a systemd service, without systemd as PID 1: the installed
units pass `systemd-analyze verify` and the security threshold, the
sysusers/tmpfiles entries work in a scratch root, sd_notify messages reach
a test-owned NOTIFY_SOCKET (READY, STATUS, WATCHDOG at half WATCHDOG_USEC,
RELOADING/READY, STOPPING), a wedged worker stops the watchdog pings,
reload adds, drains and refuses, and systemd-socket-activate hands the
daemon its named sockets."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import numpy as np

from driftd_harness import (BUILD_ROOT, DRIFTD, Env, free_port, model_section,
                            read_replies, record)

DRIFTD_TEST_HOOKS = os.path.join(BUILD_ROOT, "daemon", "driftd-test-hooks")
DIM = 4
EXPOSURE_MAX = 1.5


def batch(rng, n, model="a", shift=0.0):
    return [record(model, rng.normal(size=DIM) + shift) for _ in range(n)]


def build_option(name):
    with open(os.path.join(BUILD_ROOT, "meson-info",
                           "intro-buildoptions.json")) as f:
        return next(o["value"] for o in json.load(f) if o["name"] == name)


def collect(d, seconds):
    """Reads notify messages for SECONDS, stamping each on arrival."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        d.notify.settimeout(left)
        try:
            msg = d.notify.recv(4096).decode()
        except socket.timeout:
            break
        d.notices.append(msg)
        d.notice_times.append(time.monotonic())


def pings(d, since=0.0):
    return [t for t, n in zip(d.notice_times, d.notices)
            if n == "WATCHDOG=1" and t >= since]


def read(path):
    with open(path) as f:
        return f.read()


def wait_log(d, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in d.log_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in log:\n{d.log_text()}")


class Install(unittest.TestCase):
    """`meson install` into a DESTDIR, then the units, sysusers and tmpfiles
    entries are checked with systemd's own tools."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="driftd-install-")
        cls.dest = os.path.join(cls.tmp.name, "dest")
        subprocess.run(["meson", "install", "-C", BUILD_ROOT, "--no-rebuild",
                        "--quiet", "--destdir", cls.dest],
                       check=True, capture_output=True)
        cls.prefix = build_option("prefix")
        cls.root = cls.dest + cls.prefix

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def unit_dir(self):
        return self.path("lib", "systemd", "system")

    def test_files_in_standard_places(self):
        for p in ["bin/driftd", "lib/systemd/system/driftd.service",
                  "lib/systemd/system/driftd.socket",
                  "lib/systemd/system/driftd-http.socket",
                  "lib/sysusers.d/driftd.conf", "lib/tmpfiles.d/driftd.conf",
                  "share/doc/driftd/examples/driftd.ini",
                  "share/doc/driftd/README.md"]:
            self.assertTrue(os.path.isfile(self.path(p)), p)
        self.assertFalse(os.path.exists(self.path("bin", "driftd-test-hooks")))
        unit = read(self.path("lib/systemd/system/driftd.service"))
        config = os.path.join(self.prefix, build_option("sysconfdir"),
                              "driftd", "driftd.ini")
        self.assertIn(f"ExecStart={self.prefix}/bin/driftd --config {config}\n",
                      unit)

    def verified_copy(self):
        """The units with their binary path moved into DESTDIR, so that
        verify finds the installed binary where the unit names it."""
        units = os.path.join(self.tmp.name, "units")
        os.makedirs(units, exist_ok=True)
        for name in ["driftd.service", "driftd.socket", "driftd-http.socket"]:
            text = read(os.path.join(self.unit_dir(), name))
            text = text.replace(f"={self.prefix}/bin/", f"={self.root}/bin/")
            with open(os.path.join(units, name), "w") as f:
                f.write(text)
        return units

    def test_verify(self):
        units = self.verified_copy()
        r = subprocess.run(["systemd-analyze", "verify", "driftd.service",
                            "driftd.socket", "driftd-http.socket"],
                           cwd=units, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.strip(), "")

    def test_security_exposure(self):
        r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            f"--threshold={int(EXPOSURE_MAX * 10)}",
                            "driftd.service"],
                           cwd=self.unit_dir(), capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"Overall exposure level for driftd.service: ([0-9.]+)",
                      r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertLessEqual(float(m.group(1)), EXPOSURE_MAX, r.stdout)
        print(f"\nexposure {m.group(1)}", end=" ")

    def test_sysusers_and_tmpfiles_in_scratch_root(self):
        """The user and group exist after systemd-sysusers; tmpfiles then
        creates the directories and a first config that driftd accepts."""
        root = os.path.join(self.tmp.name, "root")
        os.makedirs(os.path.join(root, "etc"))
        subprocess.run(["systemd-sysusers", f"--root={root}",
                        self.path("lib/sysusers.d/driftd.conf")],
                       check=True, capture_output=True)
        passwd = read(os.path.join(root, "etc", "passwd"))
        self.assertRegex(passwd, r"(?m)^driftd:x:\d+:\d+:.*:/var/lib/driftd:")
        # The example the tmpfiles entry copies, where the entry names it.
        src = self.path("share/doc/driftd/examples/driftd.ini")
        example = os.path.join(root, src.lstrip("/").replace(
            self.dest.lstrip("/") + "/", "", 1))
        os.makedirs(os.path.dirname(example))
        shutil.copy(src, example)
        r = subprocess.run(["systemd-tmpfiles", "--create", f"--root={root}",
                            self.path("lib/tmpfiles.d/driftd.conf")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        gid = int(re.search(r"(?m)^driftd:x:(\d+):",
                            read(os.path.join(root, "etc", "group"))).group(1))
        state = os.stat(os.path.join(root, "var/lib/driftd"))
        self.assertEqual(state.st_mode & 0o7777, 0o700)
        conf = os.path.join(root, self.prefix.lstrip("/"),
                            build_option("sysconfdir"), "driftd", "driftd.ini")
        st = os.stat(conf)
        self.assertEqual((st.st_mode & 0o777, st.st_uid, st.st_gid),
                         (0o640, 0, gid))
        r = subprocess.run([DRIFTD, "--check-config", conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)


class Notify(unittest.TestCase):
    """What systemd hears on NOTIFY_SOCKET."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.env.__exit__(None, None, None)

    def daemon(self, models=None, watchdog_us=None, wedge_ms=None, **kw):
        d = self.env.driftd(models or model_section(
            "a", DIM, reference=20, window=20, permutations=99), **kw)
        if watchdog_us:
            d.env["WATCHDOG_USEC"] = str(watchdog_us)
        if wedge_ms:
            d.binary = DRIFTD_TEST_HOOKS
            d.env["DRIFTD_TEST_WEDGE_MS"] = str(wedge_ms)
        self.addCleanup(d.close)
        return d

    def test_ready_status_and_watchdog_interval(self):
        d = self.daemon(watchdog_us=1000000,
                        daemon_extra="status_interval = 200ms").start()
        ready = [n for n in d.notices if "READY=1" in n]
        self.assertEqual(len(ready), 1, d.notices)
        self.assertRegex(ready[0], r"STATUS=1 models, \d+ slices, \d+ "
                         r"records/s, store ready \(0 pending\), "
                         r"\d+ connections")
        d.send_lines(batch(np.random.default_rng(1), 30))
        t0 = time.monotonic()
        collect(d, 3.0)
        p = pings(d, t0)
        gaps = np.diff(p)
        self.assertGreaterEqual(len(p), 5, d.notices)
        # Half of WATCHDOG_USEC, and never as late as systemd's limit.
        self.assertTrue(0.4 <= np.median(gaps) <= 0.6, gaps)
        self.assertLess(max(gaps), 1.0, gaps)
        status = [n for t, n in zip(d.notice_times, d.notices)
                  if n.startswith("STATUS=") and t >= t0]
        self.assertGreaterEqual(len(status), 5, d.notices)
        self.assertRegex(status[-1], r"^STATUS=1 models, 1 slices, 0 "
                         r"records/s, store ready \(0 pending\), 0 "
                         r"connections$")
        self.assertTrue(any(re.search(r"STATUS=1 models, 1 slices, "
                                      r"[1-9]\d* records/s", n)
                            for n in d.notices), d.notices)

    def test_no_pings_without_watchdog_or_for_another_pid(self):
        for env in ({}, {"WATCHDOG_USEC": "200000",
                         "WATCHDOG_PID": str(os.getpid())}):
            d = self.daemon()
            d.env.update(env)
            d.start()
            collect(d, 1.0)
            self.assertEqual(pings(d), [], env)
            self.assertNotIn("systemd watchdog", d.log_text())

    def test_wedged_worker_stops_pings_until_it_returns(self):
        d = self.daemon(watchdog_us=300000, wedge_ms=3000,
                        daemon_extra="job_timeout = 1s\n"
                                     "status_interval = 300ms").start()
        d.send_lines(batch(np.random.default_rng(2), 40))
        t0 = time.monotonic()
        collect(d, 2.0)
        m = d.metrics()
        self.assertGreater(m["driftd_job_longest_run_seconds"], 1.0)
        self.assertEqual(m["driftd_workers_wedged_total"], 1)
        self.assertTrue(d.notices[-1].endswith(", a worker is wedged"),
                        d.notices[-1])
        collect(d, 2.5)
        p = pings(d, t0)
        gaps = np.diff([t0] + p)
        longest = int(np.argmax(gaps))
        # Pings go on for job_timeout, stop while the job outlives it
        # (about 2s of the 3s wedge) and resume after it returned.
        self.assertGreater(gaps[longest], 1.5, gaps)
        self.assertGreaterEqual(p[longest - 1] - t0 if longest else 0, 0.7)
        self.assertGreaterEqual(len(p) - longest, 3, gaps)
        log = d.log_text()
        self.assertIn("beyond job_timeout (1.0s): worker wedged", log)
        self.assertIn("workers healthy again: watchdog pings resume", log)
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = 'a'", 1)
        self.assertEqual(d.metrics()["driftd_job_longest_run_seconds"], 0)

    def test_sigterm_with_wedged_worker_logs_what_is_abandoned(self):
        d = self.daemon(wedge_ms=20000, shutdown_timeout="1s").start()
        d.send_lines(batch(np.random.default_rng(3), 40))
        time.sleep(0.3)
        t0 = time.monotonic()
        self.assertEqual(d.stop(timeout=10), 0)
        self.assertLess(time.monotonic() - t0, 5)
        d.wait_notify("STOPPING=1", timeout=1)
        log = d.log_text()
        self.assertIn("shutdown_timeout reached, abandoning: 0 client "
                      "connections, 1 window evaluations (1 detector jobs "
                      "running, 0 queued), 0 results not yet in the "
                      "database", log)
        self.assertIn("exiting with 1 detector jobs still running", log)

    def test_reload_notifications(self):
        d = self.daemon().start()
        n0 = len(d.notices)
        before = time.monotonic()
        d.signal(signal.SIGHUP)
        d.wait_notify("configuration reloaded")
        new = d.notices[n0:]
        reloading = [i for i, n in enumerate(new) if "RELOADING=1" in n]
        ready = [i for i, n in enumerate(new) if "READY=1" in n]
        self.assertEqual(len(reloading), 1, new)
        self.assertEqual(len(ready), 1, new)
        self.assertLess(reloading[0], ready[0])
        usec = int(re.search(r"MONOTONIC_USEC=(\d+)",
                             new[reloading[0]]).group(1))
        # Same clock as ours (CLOCK_MONOTONIC), taken after our SIGHUP.
        self.assertTrue(before * 1e6 <= usec <= time.monotonic() * 1e6)

        # An invalid file: RELOADING=1, then READY=1 on the old config.
        n0 = len(d.notices)
        with open(d.config, "a") as f:
            f.write("[model.b]\ndim = zero\n")
        d.signal(signal.SIGHUP)
        d.wait_notify("reload refused")
        new = d.notices[n0:]
        self.assertIn("RELOADING=1", new[0])
        self.assertTrue(new[-1].startswith("READY=1\nSTATUS=reload refused"))
        rng = np.random.default_rng(4)
        self.assertEqual(d.send_lines(batch(rng, 3))[-1]["accepted"], 3)
        self.assertEqual(d.send_lines(batch(rng, 1, "b"))[0]["error"],
                         "unknown_model")
        self.assertEqual(d.stop(), 0)
        d.wait_notify("STOPPING=1", timeout=1)

    def test_reload_adds_drains_and_names_restart_keys(self):
        """Model b's window is on a worker when b leaves the config: it is
        still written; model c appears; workers needs a restart."""
        ab = (model_section("a", DIM, reference=20, window=20) +
              model_section("b", DIM, reference=20, window=20))
        d = self.daemon(ab, wedge_ms=1500).start()
        rng = np.random.default_rng(5)
        d.send_lines(batch(rng, 40, "b"))
        with open(d.config, "w") as f:
            f.write(d.config_text(
                model_section("a", DIM, reference=20, window=20) +
                model_section("c", DIM, reference=20, window=20))
                .replace("workers = 2", "workers = 3"))
        d.signal(signal.SIGHUP)
        wait_log(d, "configuration reloaded")
        self.assertIn("reload: these keys change only after a restart: "
                      "daemon.workers", d.log_text())
        self.assertEqual(d.send_lines(batch(rng, 1, "b"))[0]["error"],
                         "unknown_model")
        self.assertEqual(d.send_lines(batch(rng, 5, "c"))[-1]["accepted"], 5)
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = 'b'", 1,
                    timeout=15)


class SocketActivation(unittest.TestCase):
    """systemd-socket-activate plays systemd: it holds the sockets and
    starts driftd on the first connection."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.env.__exit__(None, None, None)

    def activated(self, names):
        d = self.env.driftd(model_section("a", DIM, reference=20, window=20,
                                          permutations=99))
        self.addCleanup(d.close)
        ingest, http = free_port(), free_port()
        unix = os.path.join(d.workdir, "activated.sock")
        d.argv_prefix = ["systemd-socket-activate",
                         "-l", f"127.0.0.1:{ingest}", "-l", unix,
                         "-l", f"127.0.0.1:{http}", f"--fdname={names}",
                         "-E", "NOTIFY_SOCKET"]
        d.start(wait_ready=False)
        wait_log(d, f"Listening on 127.0.0.1:{http}")
        return d, ingest, http, unix

    def test_named_sockets_replace_configured_addresses(self):
        d, ingest, http, unix = self.activated("ingest:ingest:http")
        rng = np.random.default_rng(6)
        # The first connection starts driftd; it waits in the backlog.
        s = socket.create_connection(("127.0.0.1", ingest), timeout=30)
        s.sendall("".join(l + "\n" for l in batch(rng, 30)).encode())
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(read_replies(s), [{"done": True, "accepted": 30,
                                            "rejected": 0}])
        d.wait_notify("READY=1")
        u = socket.socket(socket.AF_UNIX)
        u.connect(unix)
        u.sendall("".join(l + "\n" for l in batch(rng, 10)).encode())
        u.shutdown(socket.SHUT_WR)
        self.assertEqual(read_replies(u)[-1]["accepted"], 10)
        configured = (d.port, d.http_port)
        d.http_port = http
        self.assertEqual(d.metrics()["driftd_records_accepted_total"], 40)
        d.wait_rows("SELECT 1 FROM driftd.windows WHERE model = 'a'", 1)
        log = d.log_text()
        self.assertIn("socket activation: 2 ingest and 1 http sockets from "
                      "systemd", log)
        self.assertIn(f"listening for ingest on unix:{unix} (socket from "
                      "systemd)", log)
        # The configured addresses were not bound.
        for port in configured:
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5)
        self.assertFalse(os.path.exists(d.unix_path))
        self.assertEqual(d.stop(), 0)
        # The socket file is systemd's: driftd leaves it in place.
        self.assertTrue(os.path.exists(unix))

    def test_unknown_socket_name_refuses_to_start(self):
        d, ingest, _, _ = self.activated("ingest:metrics:http")
        socket.create_connection(("127.0.0.1", ingest), timeout=30).close()
        self.assertEqual(d.proc.wait(30), 1)
        self.assertIn('systemd passed a socket named "metrics"',
                      d.log_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)

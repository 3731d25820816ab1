#!/usr/bin/python3
"""driftd's logging seen by a real systemd-journald.  The test re-runs
itself in a private mount namespace, where tmpfs hides /run/systemd and
/run/log, starts its own journald there, and connects driftd's stderr to
journald's stdout stream exactly as systemd does for a service (stream
header, JOURNAL_STREAM=DEV:INODE).  Then journalctl finds drift events by
MESSAGE_ID with their MODEL, SLICE, WINDOW_ID, EVENT, PRIORITY and CODE_*
fields, and streaming alarms likewise (without WINDOW_ID); with a
JOURNAL_STREAM that does not match stderr, the same messages arrive as
plain "<N>"-prefixed lines."""

import json
import os
import socket
import subprocess
import sys
import time
import unittest

NS_MARK = "DRIFTD_TEST_JOURNAL_NS"
if __name__ == "__main__" and os.geteuid() == 0 and not os.environ.get(NS_MARK):
    os.environ[NS_MARK] = "1"
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                          sys.executable, os.path.abspath(__file__)] +
              sys.argv[1:])

import numpy as np  # noqa: E402  (after the re-exec above)

from driftd_harness import Env, model_section, record  # noqa: E402

MID_DRIFT = "72ebbb5d277647eeae00b1957000c594"
MID_WINDOW = "a86ddf065f3c4a5483dbcb11ebbcfd52"
MID_STREAM = "03aab40defd542ffb1ebb6e1a8262189"
JOURNAL_DIR = "/run/log/journal"
DIM = 8


def find_journald():
    for p in ("/lib/systemd/systemd-journald",
              "/usr/lib/systemd/systemd-journald"):
        if os.access(p, os.X_OK):
            return p
    return None


def mount_tmpfs(path):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", path], check=True)


def stream_to_journald(identifier):
    """A stream connected as systemd connects a service's stdout/stderr."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("/run/systemd/journal/stdout")
    # identifier, unit id, default priority, level prefix on, no
    # forwarding to syslog, kmsg or console.
    s.sendall(f"{identifier}\n\n6\n1\n0\n0\n0\n".encode())
    s.shutdown(socket.SHUT_RD)
    return s


def entries(**match):
    argv = ["journalctl", "-D", JOURNAL_DIR, "-o", "json", "--no-pager"]
    argv += [f"{k}={v}" for k, v in match.items()]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def wait_entries(count, timeout=20, **match):
    deadline = time.monotonic() + timeout
    while True:
        found = entries(**match)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@unittest.skipUnless(os.environ.get(NS_MARK) and find_journald(),
                     "needs root (a private mount namespace) and "
                     "systemd-journald")
class Journal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for path in ("/run/systemd", "/run/log"):
            mount_tmpfs(path)
        if os.path.isdir("/var/log/journal"):
            mount_tmpfs("/var/log/journal")	# keep journald volatile
        # Its own messages to its stderr, not to the kernel log.
        cls.journald = subprocess.Popen(
            [find_journald()], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, SYSTEMD_LOG_TARGET="console"))
        deadline = time.monotonic() + 10
        while not os.path.exists("/run/systemd/journal/stdout"):
            if time.monotonic() > deadline or cls.journald.poll() is not None:
                cls.journald.kill()
                raise RuntimeError("systemd-journald did not start")
            time.sleep(0.05)
        cls.env = Env().__enter__()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.env.__exit__(None, None, None)
        finally:
            cls.journald.terminate()
            cls.journald.wait(10)

    def journald_daemon(self, models, journal_stream):
        d = self.env.driftd(models)
        stream = stream_to_journald("driftd")
        self.addCleanup(stream.close)
        st = os.fstat(stream.fileno())
        d.stderr = stream.fileno()
        d.env["JOURNAL_STREAM"] = journal_stream or f"{st.st_dev}:{st.st_ino}"
        self.addCleanup(d.close)
        return d.start()

    def run_daemon(self, model, journal_stream):
        """Feeds model MODEL a drifting slice (eu) and a calm one (us)."""
        d = self.journald_daemon(model_section(model, DIM, slice_by="region",
                                               reference=100, window=100,
                                               permutations=200),
                                 journal_stream)
        rng = np.random.default_rng(8)

        def rows(n, region, shift):
            return [record(model, rng.normal(size=DIM) + 3.0 - shift,
                           {"region": region}) for _ in range(n)]
        d.send_lines(rows(100, "eu", 0) + rows(100, "us", 0) +
                     rows(100, "eu", 6.0) + rows(100, "us", 0))
        d.wait_rows(f"SELECT 1 FROM driftd.windows WHERE model = '{model}'"
                    " AND slice <> '*'", 2)
        self.assertEqual(d.stop(), 0)
        return d

    def test_structured_fields_and_message_ids(self):
        self.run_daemon("structured", None)
        drift = wait_entries(1, MESSAGE_ID=MID_DRIFT, MODEL="structured",
                             SLICE="region=eu")
        self.assertEqual(len(drift), 1, drift)
        e = drift[0]
        self.assertEqual((e["WINDOW_ID"], e["EVENT"], e["PRIORITY"]),
                         ("1", "drift", "5"))
        self.assertEqual((e["CODE_FILE"], e["CODE_FUNC"]),
                         ("daemon/engine.c", "log_window"))
        self.assertTrue(e["CODE_LINE"].isdigit())
        self.assertEqual((e["SYSLOG_IDENTIFIER"], e["_TRANSPORT"]),
                         ("driftd", "journal"))
        self.assertTrue(e["MESSAGE"].startswith(
            "model structured slice region=eu window 1 n=100: DRIFT"), e)

        calm = wait_entries(1, MESSAGE_ID=MID_WINDOW, MODEL="structured",
                            SLICE="region=us")
        self.assertEqual(len(calm), 1, calm)
        self.assertEqual((calm[0]["EVENT"], calm[0]["PRIORITY"]),
                         ("window", "6"))

        # Messages without a context still carry priority and source.
        ready = [x for x in entries(SYSLOG_IDENTIFIER="driftd",
                                    CODE_FUNC="on_store_state")
                 if x["MESSAGE"].startswith("ready: ")]
        self.assertTrue(ready)
        self.assertEqual((ready[-1]["PRIORITY"], ready[-1]["CODE_FILE"]),
                         ("5", "daemon/main.c"))
        self.assertNotIn("MODEL", ready[-1])

    def test_stream_alarm_fields(self):
        d = self.journald_daemon(model_section(
            "streamed", DIM, slice_by="region", reference=50, window=100000,
            extra="scores.width = 1\nstream.detectors = page_hinkley\n"), None)
        rng = np.random.default_rng(9)
        d.send_lines([record("streamed", rng.normal(size=DIM), {"region": "eu"},
                             scores=[0.2 if i < 500 else 0.6]) for i in range(800)])
        self.assertEqual(d.stop(), 0)
        alarms = wait_entries(1, MESSAGE_ID=MID_STREAM, MODEL="streamed",
                              SLICE="region=eu")
        self.assertEqual(len(alarms), 1, alarms)
        e = alarms[0]
        self.assertEqual((e["EVENT"], e["PRIORITY"], e["CODE_FUNC"]),
                         ("stream_alarm", "5", "log_alarm"))
        self.assertNotIn("WINDOW_ID", e)
        self.assertTrue(e["MESSAGE"].startswith(
            "model streamed slice region=eu: stream alarm: page_hinkley on "
            "score, mean up from 0.2 to 0.6"), e)

    def test_plain_lines_when_stream_does_not_match(self):
        self.run_daemon("plain", "1:1")
        lines = wait_entries(3, SYSLOG_IDENTIFIER="driftd",
                             _TRANSPORT="stdout")
        drift = [x for x in lines if x["MESSAGE"].startswith(
            "model plain slice region=eu window 1 n=100: DRIFT")]
        self.assertEqual(len(drift), 1, [x["MESSAGE"] for x in lines])
        # journald took the priority from the "<5>" prefix; no fields.
        self.assertEqual(drift[0]["PRIORITY"], "5")
        self.assertNotIn("MESSAGE_ID", drift[0])
        self.assertNotIn("MODEL", drift[0])
        self.assertEqual(entries(MESSAGE_ID=MID_DRIFT, MODEL="plain"), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)

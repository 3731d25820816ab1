#!/usr/bin/python3
"""The binary protocol against the running daemon: handshake, ACKs that
match what was sent, and every item of the bad-input list (truncated
frames, lengths beyond the limit up to absurd 64-bit ones, wrong versions,
dimension mismatches, NaN/Inf, invalid UTF-8 in labels, too many labels,
unknown models, missing handshake, slowloris) with a clear error and the
connection going on wherever the framing allows."""

import os
import socket
import struct
import sys
import time
import unittest

from driftd_harness import SOURCE_ROOT, DaemonCase, model_section

sys.path.insert(0, os.path.join(SOURCE_ROOT, "clients", "python"))
import driftd_client as dc  # noqa: E402

DIM = 4
EMB = [0.1, 0.2, 0.3, 0.4]


def rec(i, **kw):
    r = {"model": "m", "id": f"r{i}", "embedding": EMB,
         "slice": {"region": "eu"}}
    r.update(kw)
    return r


def records_payload(entries):
    return struct.pack("<I", len(entries)) + b"".join(entries)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Raw:
    """A binary connection driven byte by byte, for malformed input."""
    opened = []

    def __init__(self, d, hello=True, token=""):
        self.s = d.connect()
        Raw.opened.append(self.s)
        self.s.settimeout(30)
        self.buf = b""
        if hello:
            tok = token.encode()
            self.s.sendall(dc.MAGIC + dc.frame(
                dc.HELLO, 0, struct.pack("<H", len(tok)) + tok +
                struct.pack("<H", 0)))
            ftype, _, _ = self.read()
            assert ftype == dc.WELCOME, ftype

    def read(self):
        """(type, seq, payload) of the next frame, or None at EOF."""
        while True:
            if len(self.buf) >= 16:
                v, t, _f, seq, n = dc.HEADER.unpack(self.buf[:16])
                assert v == 1, self.buf[:16]
                if len(self.buf) >= 16 + n:
                    p = self.buf[16:16 + n]
                    self.buf = self.buf[16 + n:]
                    return t, seq, p
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def error(self):
        t, seq, p = self.read()
        assert t == dc.ERROR, (t, p)
        code, fatal, ml = struct.unpack_from("<BBH", p)
        return dc.FRAME_ERRORS[code], bool(fatal), seq, p[4:4 + ml].decode()

    def ack(self):
        t, seq, p = self.read()
        assert t == dc.ACK, (t, p)
        return dc._parse_ack(seq, p)

    def send_frame(self, ftype, seq, payload, version=1):
        self.s.sendall(dc.HEADER.pack(version, ftype, 0, seq, len(payload))
                       + payload)

    def closed(self):
        """True when the daemon closes without sending more."""
        return self.read() is None


class Binary(DaemonCase):
    MODELS = model_section("m", DIM, slice_by="region", reference=20,
                           window=20, extra="max_slices = 4\n")
    DRIFTD = {"extra_listen": "max_frame = 64k\nhandshake_timeout = 1s\n"
                              "frame_timeout = 2s\nmax_connections = 3000"}

    def tearDown(self):
        for s in Raw.opened:
            s.close()
        Raw.opened.clear()

    def client(self):
        return dc.Client.tcp("127.0.0.1", self.d.port)

    def test_handshake_and_acks_match(self):
        with self.client() as c:
            self.assertEqual(c.version, 1)
            self.assertEqual(c.max_frame, 65536)
            self.assertTrue(c.server.startswith("driftd "))
            batch = [rec(i) for i in range(30)]
            batch[4]["embedding"] = [1, 2, 3]
            batch[9]["model"] = "nope"
            ack = c.send(batch)
            self.assertEqual((ack.accepted, ack.rejected), (28, 2))
            self.assertEqual([(e.first, e.span, e.reason) for e in ack.errors],
                             [(4, 1, "wrong_dim"), (9, 1, "unknown_model")])
            self.assertIn("3 values", ack.errors[0].message)
            self.assertIn("nope", ack.errors[1].message)
            self.assertEqual(ack.errors[0].code, 7)
            self.assertEqual(c.finish(), (28, 2))

    def test_unix_socket(self):
        with dc.Client.unix(self.d.unix_path) as c:
            self.assertEqual(c.send([rec(1)]).accepted, 1)

    def test_record_refusals(self):
        bad = [
            (rec(0, embedding=[1, float("nan"), 2, 3]), "not_finite",
             "embedding[1] is NaN"),
            (rec(1, embedding=[1, 2, float("-inf"), 3]), "not_finite",
             "embedding[2] is infinite"),
            (rec(2, embedding=[1e39, 0, 0, 0]), "not_finite", "embedding[0]"),
            (rec(3, embedding=[1] * 5), "wrong_dim", "expects 4"),
            (rec(4, slice={f"k{i}": "v" for i in range(17)}), "bad_field",
             "more than 16 labels"),
            (rec(5, model=""), "missing_model", "model"),
            (rec(6, model="other"), "unknown_model", "other"),
            (rec(7), None, None),
        ]
        with self.client() as c:
            ack = c.send([b[0] for b in bad])
            got = {e.first: (e.reason, e.message) for e in ack.errors}
            for i, (_, reason, words) in enumerate(bad):
                if reason is None:
                    self.assertNotIn(i, got)
                    continue
                self.assertEqual(got[i][0], reason, got)
                self.assertIn(words, got[i][1])

    def test_invalid_utf8_in_labels(self):
        e = dc.encode_record(rec(0))
        good = dc.encode_record(rec(1))
        # "eu" is the last string before dim: make it "\xff\xfe".
        pos = e.index(b"\x02\x00eu")
        bad = e[:pos + 2] + b"\xff\xfe" + e[pos + 4:]
        r = Raw(self.d)
        r.send_frame(dc.RECORDS, 5, records_payload([good, bad, good]))
        ack = r.ack()
        self.assertEqual((ack.seq, ack.accepted, ack.rejected), (5, 2, 1))
        self.assertEqual(ack.errors[0].reason, "bad_utf8")
        self.assertIn("slice label value", ack.errors[0].message)

    def test_too_many_slices(self):
        with self.client() as c:
            ack = c.send([rec(i, slice={"region": f"s{i}"})
                          for i in range(6)])
        # "*", "region=eu" and two of these fill max_slices = 4.
        self.assertTrue(ack.errors)
        self.assertTrue(all(e.reason == "too_many_slices"
                            for e in ack.errors))

    def test_truncated_record_spans_the_rest(self):
        entries = [dc.encode_record(rec(i)) for i in range(5)]
        payload = records_payload(entries)[:-30]
        r = Raw(self.d)
        r.send_frame(dc.RECORDS, 1, payload)
        ack = r.ack()
        self.assertEqual((ack.accepted, ack.rejected), (4, 1))
        self.assertEqual((ack.errors[0].first, ack.errors[0].span,
                          ack.errors[0].reason), (4, 1, "bad_frame"))

    def test_absurd_count(self):
        r = Raw(self.d)
        r.send_frame(dc.RECORDS, 3, struct.pack("<I", 0xFFFFFFFF) + b"\0" * 64)
        self.assertEqual(r.error()[:3], ("malformed", False, 3))
        r.send_frame(dc.RECORDS, 4, records_payload([dc.encode_record(rec(1))]))
        self.assertEqual(r.ack().accepted, 1)

    def test_truncated_frame_at_eof(self):
        r = Raw(self.d)
        entries = [dc.encode_record(rec(i)) for i in range(3)]
        r.send_frame(dc.RECORDS, 1, records_payload(entries))
        whole = dc.frame(dc.RECORDS, 2, records_payload(entries))
        r.s.sendall(whole[:len(whole) // 2])
        r.s.shutdown(socket.SHUT_WR)
        self.assertEqual(r.ack().accepted, 3)
        reason, fatal, seq, msg = r.error()
        self.assertEqual((reason, seq), ("truncated", 2))
        self.assertIn("connection ended", msg)
        t, _, p = r.read()
        self.assertEqual(t, dc.SUMMARY)
        self.assertEqual(struct.unpack("<QQ", p), (3, 0))
        self.assertTrue(r.closed())

    def test_oversize_frame_is_skipped(self):
        r = Raw(self.d)
        r.send_frame(dc.RECORDS, 7, b"\0" * 70000)
        reason, fatal, seq, msg = r.error()
        self.assertEqual((reason, fatal, seq), ("oversize", False, 7))
        self.assertIn("max_frame", msg)
        # The framing survives: the next frame is read normally.
        r.send_frame(dc.RECORDS, 8, records_payload([dc.encode_record(rec(1))]))
        self.assertEqual(r.ack().seq, 8)

    def test_absurd_64bit_length(self):
        """A length of 2^64-1 is refused at once; what follows is skipped
        without being buffered, so the daemon's memory stays flat."""
        before = rss_kb(self.d.proc.pid)
        r = Raw(self.d)
        r.s.sendall(dc.HEADER.pack(1, dc.RECORDS, 0, 9, 2**64 - 1))
        reason, fatal, seq, msg = r.error()
        self.assertEqual((reason, seq), ("oversize", 9))
        self.assertIn("18446744073709551615", msg)
        junk = b"\xab" * (1 << 20)
        for _ in range(64):
            r.s.sendall(junk)
        self.assertLess(rss_kb(self.d.proc.pid) - before, 16 * 1024)
        r.s.close()

    def test_wrong_version(self):
        r = Raw(self.d)
        r.send_frame(dc.RECORDS, 2, b"\0\0\0\0", version=9)
        reason, fatal, seq, msg = r.error()
        self.assertEqual((reason, fatal), ("bad_version", True))
        self.assertIn("version 9", msg)
        self.assertTrue(r.closed())

    def test_wrong_version_in_hello(self):
        r = Raw(self.d, hello=False)
        r.s.sendall(dc.MAGIC + dc.HEADER.pack(2, dc.HELLO, 0, 0, 4) +
                    b"\0\0\0\0")
        self.assertEqual(r.error()[:2], ("bad_version", True))
        self.assertTrue(r.closed())

    def test_unknown_frame_type(self):
        r = Raw(self.d)
        r.send_frame(0x7F, 4, b"abc")
        self.assertEqual(r.error()[:3], ("bad_type", False, 4))
        r.send_frame(dc.RECORDS, 5, records_payload([dc.encode_record(rec(1))]))
        self.assertEqual(r.ack().accepted, 1)

    def test_records_before_hello(self):
        r = Raw(self.d, hello=False)
        r.s.sendall(dc.MAGIC)
        r.send_frame(dc.RECORDS, 1, records_payload([dc.encode_record(rec(1))]))
        reason, fatal, _, msg = r.error()
        self.assertEqual((reason, fatal), ("handshake", True))
        self.assertIn("HELLO", msg)
        self.assertTrue(r.closed())

    def test_slowloris_before_hello(self):
        """One byte at a time never completes a handshake in time."""
        r = Raw(self.d, hello=False)
        t0 = time.monotonic()
        hello = dc.MAGIC + dc.frame(dc.HELLO, 0, b"\0\0\0\0")
        try:
            for b in hello:
                r.s.sendall(bytes([b]))
                time.sleep(0.3)
        except OSError:
            pass
        reason, fatal, _, msg = r.error()
        self.assertEqual((reason, fatal), ("handshake", True))
        self.assertIn("handshake_timeout", msg)
        self.assertLess(time.monotonic() - t0, 6)

    def test_slowloris_frame(self):
        """After the handshake, a frame trickling in is cut off by
        frame_timeout although bytes keep arriving."""
        before = self.d.metrics()
        r = Raw(self.d)
        payload = records_payload([dc.encode_record(rec(i))
                                   for i in range(20)])
        data = dc.frame(dc.RECORDS, 1, payload)
        try:
            for b in data:
                r.s.sendall(bytes([b]))
                time.sleep(0.2)
        except OSError:
            pass
        reason, fatal, _, msg = r.error()
        self.assertEqual((reason, fatal), ("timeout", True))
        self.assertIn("frame_timeout", msg)
        key = 'driftd_connection_timeouts_total{kind="frame"}'
        self.assertEqual(self.d.metrics()[key] - before[key], 1)

    def test_labels_reach_the_router(self):
        """Label-only records are answered one by one.  The reason is
        today's (the join of labels to records is another module's), so
        only the per-record answer is checked, not which answer."""
        with self.client() as c:
            c.send([rec(100)])
            ack = c.send_labels([{"model": "m", "id": "r100", "label": 1},
                                 {"model": "m", "id": "r101", "label": 0},
                                 {"model": "nope", "id": "x", "label": 1}])
            self.assertEqual(ack.accepted + ack.rejected, 3)
            by_index = {e.first: e for e in ack.errors}
            self.assertEqual(by_index[2].reason, "unknown_model")
            self.assertTrue(all(e.span == 1 for e in ack.errors))
            bad = c.send_labels([{"model": "m", "id": "x", "label": -1}])
            self.assertEqual(bad.errors[0].reason, "bad_field")

    def test_metrics_count_frames(self):
        before = self.d.metrics()
        r = Raw(self.d)
        r.send_frame(0x7F, 1, b"")
        r.error()
        r.send_frame(dc.RECORDS, 2, b"\0" * 70000)
        r.error()
        after = self.d.metrics()
        key = 'driftd_frames_rejected_total{reason="%s"}'
        self.assertEqual(after[key % "bad_type"] - before[key % "bad_type"], 1)
        self.assertEqual(after[key % "oversize"] - before[key % "oversize"], 1)

    def test_idle_connections(self):
        """Two thousand connections that never speak: memory stays
        bounded, a working client keeps its throughput, and each idle one
        is closed by the handshake timeout."""
        before = rss_kb(self.d.proc.pid)
        idle = [self.d.connect() for _ in range(2000)]
        try:
            with self.client() as c:
                ack = c.send([rec(i) for i in range(200)])
                self.assertEqual(ack.accepted, 200)
            self.assertLess(rss_kb(self.d.proc.pid) - before, 64 * 1024)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if self.d.metrics()["driftd_connections_open"] == 0:
                    break
                time.sleep(0.2)
            self.assertEqual(self.d.metrics()["driftd_connections_open"], 0)
            idle[0].settimeout(5)
            data = idle[0].recv(4096)
            self.assertIn(b'"timeout"', data)
        finally:
            for s in idle:
                s.close()


class Limits(DaemonCase):
    """Token and connection count, on a daemon of their own."""
    MODELS = model_section("m", DIM)
    DRIFTD = {"extra_listen": "token = s3cret-T0ken\nmax_connections = 50"}


    def test_token(self):
        with dc.Client.tcp("127.0.0.1", self.d.port,
                           token="s3cret-T0ken") as c:
            self.assertEqual(c.send([rec(1, slice=None)]).accepted, 1)
        for tok in ("", "s3cret-T0keN", "s3cret-T0ken-and-more"):
            with self.assertRaises(dc.DriftdError) as cm:
                dc.Client.tcp("127.0.0.1", self.d.port, token=tok)
            self.assertEqual(cm.exception.reason, "auth")

    def test_size_limit_before_auth(self):
        r = Raw(self.d, hello=False)
        r.s.sendall(dc.MAGIC + dc.HEADER.pack(1, dc.HELLO, 0, 0, 2**40))
        self.assertEqual(r.error()[:2], ("oversize", True))
        self.assertTrue(r.closed())

    def test_too_many_connections(self):
        held = [self.d.connect() for _ in range(50)]
        try:
            time.sleep(0.3)
            with self.assertRaises(dc.DriftdError) as cm:
                dc.Client.tcp("127.0.0.1", self.d.port, token="s3cret-T0ken")
            self.assertEqual(cm.exception.reason, "overloaded")
            self.assertIn("max_connections", cm.exception.message)
        finally:
            for s in held:
                s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Client for driftd's binary ingest protocol (docs/protocol.md).

Standard library only; numpy arrays are taken as embeddings when numpy is
installed.  One Client is one connection, used from one thread.

    from driftd_client import Client

    with Client.tcp("127.0.0.1", 7070, token=None) as c:
        ack = c.send([{"model": "search-encoder", "id": "req-1",
                       "slice": {"region": "eu"}, "embedding": vec}])
        c.send_labels([{"model": "search-encoder", "id": "req-1",
                        "label": 1}])
        summary = c.finish()        # (accepted, rejected) of the connection
"""

import datetime as _dt
import socket
import struct
import sys
from array import array

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None

MAGIC = b"DRFB"
VERSION = 1
HEADER = struct.Struct("<BBHIQ")          # version, type, flags, seq, length
HELLO, RECORDS, LABELS = 0x01, 0x02, 0x03
WELCOME, ACK, ERROR, SUMMARY = 0x81, 0x82, 0x83, 0x84
_REC_FIXED = struct.Struct("<BBBBqq")     # role, flags, n_labels, 0, ts, label
_FLAG_TS, _FLAG_LABEL = 0x01, 0x02

# Frame-level error codes (ERROR frames).
FRAME_ERRORS = {1: "bad_version", 2: "bad_type", 3: "oversize",
                4: "truncated", 5: "malformed", 6: "auth", 7: "handshake",
                8: "overloaded", 9: "timeout"}


class DriftdError(Exception):
    """The daemon refused the connection or a frame."""

    def __init__(self, code, message, seq=0, fatal=True):
        self.code, self.reason = code, FRAME_ERRORS.get(code, str(code))
        self.message, self.seq, self.fatal = message, seq, fatal
        super().__init__(f"{self.reason}: {message}")


class RecordError:
    """Records first .. first+span-1 of a frame were refused."""
    __slots__ = ("first", "span", "code", "reason", "message")

    def __init__(self, first, span, code, reason, message):
        self.first, self.span, self.code = first, span, code
        self.reason, self.message = reason, message

    def __repr__(self):
        return (f"RecordError(first={self.first}, span={self.span}, "
                f"reason={self.reason!r}, message={self.message!r})")


class Ack:
    """The daemon's answer to one RECORDS or LABELS frame."""
    __slots__ = ("seq", "accepted", "rejected", "errors", "frame_error")

    def __init__(self, seq, accepted, rejected, errors, frame_error=None):
        self.seq, self.accepted, self.rejected = seq, accepted, rejected
        self.errors, self.frame_error = errors, frame_error

    def __repr__(self):
        return (f"Ack(seq={self.seq}, accepted={self.accepted}, "
                f"rejected={self.rejected}, errors={self.errors!r}, "
                f"frame_error={self.frame_error!r})")


def _utf8(s, what):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if len(b) > 0xFFFF:
        raise ValueError(f"{what} longer than 65535 bytes")
    return struct.pack("<H", len(b)) + b


def _ts_us(ts):
    """Unix microseconds from a datetime, RFC 3339 text or unix seconds."""
    if isinstance(ts, str):
        ts = _dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if isinstance(ts, _dt.datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=_dt.timezone.utc)
        delta = ts - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1000000 + \
            delta.microseconds
    return int(round(float(ts) * 1e6))


def _f32(values):
    """float32 little-endian bytes and the count."""
    if values is None:
        return b"", 0
    if _np is not None and isinstance(values, _np.ndarray):
        a = _np.ascontiguousarray(values, dtype="<f4").reshape(-1)
        return a.tobytes(), a.size
    if isinstance(values, (int, float)):
        values = [values]
    a = array("f", values)
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes(), len(a)


def encode_record(r):
    """One record (a dict with DESIGN §3.2's fields) as it goes in a
    RECORDS frame, its u32 length prefix included."""
    flags, ts, label = 0, 0, 0
    if r.get("ts") is not None:
        flags |= _FLAG_TS
        ts = _ts_us(r["ts"])
    if r.get("label") is not None:
        flags |= _FLAG_LABEL
        label = int(r["label"])
    role = r.get("role", "live")
    if role not in ("live", "reference"):
        raise ValueError('role must be "live" or "reference"')
    labels = r.get("slice") or {}
    parts = [_REC_FIXED.pack(1 if role == "reference" else 0, flags,
                             len(labels), 0, ts, label),
             _utf8(r["model"], "model"), _utf8(str(r.get("id") or ""), "id")]
    for k, v in labels.items():
        parts.append(_utf8(k, "slice label key"))
        parts.append(_utf8(v, "slice label value"))
    emb, dim = _f32(r.get("embedding"))
    scores, n_scores = _f32(r.get("scores"))
    parts += [struct.pack("<I", dim), emb, struct.pack("<H", n_scores), scores]
    body = b"".join(parts)
    return struct.pack("<I", len(body)) + body


def encode_label(r):
    """One label entry ({"model", "id", "label"}) of a LABELS frame."""
    body = (_utf8(r["model"], "model") + _utf8(str(r["id"]), "id") +
            struct.pack("<q", int(r["label"])))
    return struct.pack("<I", len(body)) + body


def frame(ftype, seq, payload):
    return HEADER.pack(VERSION, ftype, 0, seq, len(payload)) + payload


def _parse_ack(seq, p):
    _type, accepted, rejected, n = struct.unpack_from("<B3xIII", p, 0)
    off, errors = 16, []
    for _ in range(n):
        first, span, code, nl = struct.unpack_from("<IIBB", p, off)
        off += 10
        reason = p[off:off + nl].decode()
        off += nl
        (ml,) = struct.unpack_from("<H", p, off)
        off += 2
        errors.append(RecordError(first, span, code, reason,
                                  p[off:off + ml].decode("utf-8", "replace")))
        off += ml
    return Ack(seq, accepted, rejected, errors)


class Client:
    """One connection to driftd speaking the binary protocol."""

    def __init__(self, sock, token=None, name="driftd_client.py",
                 max_in_flight=64):
        self.sock = sock
        self.seq = 0
        self.max_in_flight = max_in_flight
        self.pending = {}          # seq -> record count, not yet answered
        self.answers = {}          # seq -> Ack, answered, not yet taken
        self.summary = None
        self._buf = bytearray()
        try:
            p = self._handshake((token or "").encode(), name)
        except BaseException:
            sock.close()
            raise
        self.version, = struct.unpack_from("<H", p, 0)
        self.max_frame, = struct.unpack_from("<Q", p, 4)
        (sl,) = struct.unpack_from("<H", p, 12)
        self.server = p[14:14 + sl].decode()

    def _handshake(self, token, name):
        self.sock.sendall(MAGIC + frame(
            HELLO, 0, _utf8(token, "token") + _utf8(name, "name")))
        ftype, _seq, p = self._read_frame()
        if ftype != WELCOME:
            raise DriftdError(5, f"expected WELCOME, got frame type {ftype}")
        return p

    @classmethod
    def tcp(cls, host, port, token=None, timeout=60, **kw):
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, token, **kw)

    @classmethod
    def unix(cls, path, token=None, timeout=60, **kw):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        return cls(s, token, **kw)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    # -- reading ----------------------------------------------------------

    def _recv(self, n):
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("driftd closed the connection")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _read_frame(self):
        head = self._recv(HEADER.size)
        if head[0] == ord("{"):
            # The daemon refused the connection before the handshake
            # (too many connections): one JSON line, then it closes.
            line = bytearray(head) + self._buf
            while b"\n" not in line:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                line += chunk
            raise DriftdError(8, line.decode("utf-8", "replace").strip())
        version, ftype, _flags, seq, length = HEADER.unpack(head)
        if version != VERSION:
            raise DriftdError(1, f"daemon answered with version {version}")
        p = self._recv(length)
        if ftype == ERROR:
            code, fatal, ml = struct.unpack_from("<BBH", p, 0)
            err = DriftdError(code, p[4:4 + ml].decode("utf-8", "replace"),
                              seq, bool(fatal))
            if fatal or seq not in self.pending:
                raise err
            return ERROR, seq, err
        return ftype, seq, p

    def read_answer(self):
        """Reads the next ACK (or refused frame) and returns its Ack."""
        ftype, seq, p = self._read_frame()
        if ftype == ACK:
            ack = _parse_ack(seq, p)
        elif ftype == ERROR:
            n = self.pending.get(seq, 0)
            ack = Ack(seq, 0, n, [], frame_error=p)
        elif ftype == SUMMARY:
            self.summary = struct.unpack("<QQ", p)
            return None
        else:
            raise DriftdError(2, f"unexpected frame type 0x{ftype:02x}")
        self.pending.pop(seq, None)
        self.answers[seq] = ack
        return ack

    def wait(self, seq):
        """The Ack of frame SEQ, reading answers until it is there."""
        while seq not in self.answers:
            if self.read_answer() is None:
                raise ConnectionError(f"no answer for frame {seq}")
        return self.answers.pop(seq)

    # -- sending ----------------------------------------------------------

    def submit_encoded(self, ftype, entries):
        """Sends one frame of already encoded entries without waiting for
        its answer; returns its seq."""
        payload = struct.pack("<I", len(entries)) + b"".join(entries)
        if HEADER.size + len(payload) > self.max_frame:
            raise ValueError(f"frame of {HEADER.size + len(payload)} bytes "
                             f"is over max_frame ({self.max_frame})")
        while len(self.pending) >= self.max_in_flight:
            self.read_answer()
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.pending[self.seq] = len(entries)
        self.sock.sendall(frame(ftype, self.seq, payload))
        return self.seq

    def submit(self, records):
        return self.submit_encoded(RECORDS, [encode_record(r)
                                             for r in records])

    def submit_labels(self, labels):
        return self.submit_encoded(LABELS, [encode_label(r) for r in labels])

    def send(self, records):
        """Sends RECORDS in one frame and returns its Ack."""
        return self.wait(self.submit(records))

    def send_labels(self, labels):
        """Sends labels for earlier records (by id) and returns the Ack."""
        return self.wait(self.submit_labels(labels))

    def finish(self):
        """Closes the sending side and reads every outstanding answer and
        the connection's SUMMARY: returns (accepted, rejected).  Answers
        not yet taken stay in self.answers."""
        self.sock.shutdown(socket.SHUT_WR)
        while self.summary is None:
            self.read_answer()
        return self.summary


def stream(client, records, labels=False, frame_bytes=1 << 20,
           on_ack=None):
    """Packs RECORDS (an iterable of dicts) into frames of about
    FRAME_BYTES, pipelined, and returns (accepted, rejected, errors) where
    errors are (record index in the stream, reason, message).  ON_ACK(ack,
    n_records) is called for each answer, e.g. for a progress bar."""
    encode = encode_label if labels else encode_record
    ftype = LABELS if labels else RECORDS
    limit = min(frame_bytes, client.max_frame - HEADER.size - 4)
    starts, totals = {}, [0, 0, []]
    batch, size, index = [], 0, 0

    def take(ack):
        base, n = starts.pop(ack.seq)
        totals[0] += ack.accepted
        totals[1] += ack.rejected
        if ack.frame_error is not None:
            totals[2].append((base, ack.frame_error.reason,
                              ack.frame_error.message))
        for e in ack.errors:
            for i in range(e.first, e.first + e.span):
                totals[2].append((base + i, e.reason, e.message))
        if on_ack:
            on_ack(ack, n)

    def flush():
        nonlocal batch, size
        seq = client.submit_encoded(ftype, batch)
        starts[seq] = (index - len(batch), len(batch))
        batch, size = [], 0
        for s in [s for s in list(client.answers) if s in starts]:
            take(client.answers.pop(s))

    for r in records:
        e = encode(r)
        if batch and size + len(e) > limit:
            flush()
        batch.append(e)
        size += len(e)
        index += 1
    if batch:
        flush()
    while starts:
        take(client.wait(next(iter(starts))))
    return totals[0], totals[1], totals[2]

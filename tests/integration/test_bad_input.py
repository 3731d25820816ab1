#!/usr/bin/python3
"""Bad input over real sockets: every refused line gets an error naming the
line, the record id and the reason; the connection goes on; other clients
are unaffected; /metrics counts each reason."""

import json
import socket
import threading
import unittest

from driftd_harness import DaemonCase, model_section, read_replies, record

DIM = 4
GOOD = record("m", [0.1, 0.2, 0.3, 0.4], id="good")


class BadInput(DaemonCase):
    MODELS = model_section("m", DIM, slice_by="region", reference=50,
                           window=50, extra="max_slices = 3\n")
    DRIFTD = {"extra_listen": "max_line = 4k"}

    def one_bad(self, line, reason, id_=None, words=()):
        """Sends LINE between two good lines; checks the reply."""
        replies = self.d.send_lines([GOOD, line, GOOD])
        self.assertEqual(len(replies), 2, replies)
        err, done = replies
        self.assertEqual(err["error"], reason, err)
        self.assertEqual(err["line"], 2)
        self.assertEqual(err.get("id"), id_)
        for w in words:
            self.assertIn(w, err["message"])
        self.assertEqual(done, {"done": True, "accepted": 2, "rejected": 1})
        return err

    def test_not_json(self):
        self.one_bad("{not json", "bad_json", words=["not JSON"])

    def test_trailing_garbage(self):
        self.one_bad(GOOD + " x", "bad_json", words=["trailing"])

    def test_bad_utf8(self):
        line = b'{"model":"m","id":"\xff\xfe","embedding":[1,2,3,4]}'
        self.one_bad(line, "bad_utf8", words=["UTF-8"])

    def test_not_an_object(self):
        self.one_bad("[1,2,3]", "not_object")

    def test_missing_model(self):
        self.one_bad('{"id":"a","embedding":[1,2,3,4]}', "missing_model",
                     id_="a", words=["model"])

    def test_unknown_model(self):
        self.one_bad(record("nope", [1, 2, 3, 4], id="b"), "unknown_model",
                     id_="b", words=["nope"])

    def test_wrong_dim(self):
        self.one_bad(record("m", [1, 2, 3], id="c"), "wrong_dim", id_="c",
                     words=["3 values", "expects 4"])

    def test_nan(self):
        self.one_bad('{"model":"m","id":"d","embedding":[1,NaN,3,4]}',
                     "not_finite", id_="d", words=["embedding[1]", "NaN"])

    def test_infinity(self):
        self.one_bad('{"model":"m","id":"e","embedding":[1,2,-Infinity,4]}',
                     "not_finite", id_="e", words=["embedding[2]"])

    def test_float32_overflow(self):
        self.one_bad('{"model":"m","id":"f","embedding":[1,2,3,1e39]}',
                     "not_finite", id_="f", words=["embedding[3]"])

    def test_missing_embedding(self):
        self.one_bad('{"model":"m","id":"g"}', "missing_embedding", id_="g")

    def test_bad_field_types(self):
        self.one_bad('{"model":"m","id":"h","embedding":[1,2,3,4],'
                     '"slice":{"region":5}}', "bad_field", id_="h",
                     words=["region"])
        self.one_bad('{"model":"m","id":"i","embedding":[1,2,3,4],'
                     '"role":"both"}', "bad_field", id_="i", words=["role"])
        self.one_bad('{"model":"m","id":"j","embedding":[1,2,3,4],'
                     '"ts":"yesterday"}', "bad_field", id_="j",
                     words=["ts"])

    def test_oversize_line(self):
        big = '{"model":"m","pad":"' + "x" * 5000 + '"}'
        self.one_bad(big, "oversize", words=["max_line"])

    def test_oversize_unterminated_tail(self):
        """A huge last line without newline is refused, not buffered."""
        s = self.d.connect()
        s.sendall((GOOD + "\n").encode() + b"y" * 100000)
        s.shutdown(socket.SHUT_WR)
        replies = read_replies(s)
        self.assertEqual(replies[0]["error"], "oversize")
        self.assertEqual(replies[-1], {"done": True, "accepted": 1,
                                       "rejected": 1})

    def test_too_many_slices(self):
        lines = [record("m", [1, 2, 3, 4], {"region": r}, id=r)
                 for r in ("a", "b", "c", "d")]
        replies = self.d.send_lines(lines)
        # "*" plus two slices fill max_slices = 3.
        errs = [r for r in replies if "error" in r]
        self.assertTrue(errs, replies)
        self.assertTrue(all(e["error"] == "too_many_slices" for e in errs))
        self.assertEqual(errs[-1]["id"], "d")

    def test_label_only_is_refused_clearly(self):
        self.one_bad('{"model":"m","id":"k","label":1}', "unsupported",
                     id_="k", words=["label"])

    def test_unix_socket_same_protocol(self):
        replies = self.d.send_lines([GOOD, "{"], unix=True)
        self.assertEqual(replies[0]["error"], "bad_json")
        self.assertEqual(replies[1]["accepted"], 1)

    def test_other_clients_unaffected(self):
        """A client flooding garbage does not stop a good client."""
        stop = threading.Event()

        def flood():
            s = self.d.connect()
            # The daemon stops reading from a client that does not read its
            # replies; the timeout ends our side of that standoff.
            s.settimeout(2)
            try:
                while not stop.is_set():
                    s.sendall(b"garbage\n" * 1000)
            except OSError:
                pass
            finally:
                s.close()

        t = threading.Thread(target=flood)
        t.start()
        try:
            replies = self.d.send_lines([GOOD] * 200)
        finally:
            stop.set()
            t.join()
        self.assertEqual(replies, [{"done": True, "accepted": 200,
                                    "rejected": 0}])

    def test_metrics_count_reasons(self):
        before = self.d.metrics()
        self.d.send_lines(["{", "{", '{"model":"m","embedding":[1]}'])
        after = self.d.metrics()
        key = 'driftd_records_rejected_total{reason="%s"}'
        self.assertEqual(after[key % "bad_json"] - before[key % "bad_json"], 2)
        self.assertEqual(after[key % "wrong_dim"] - before[key % "wrong_dim"],
                         1)

    def test_errors_are_json_lines(self):
        s = self.d.connect()
        s.sendall(b'{"model":"m","id":"quote\\"d","embedding":[1]}\n')
        s.shutdown(socket.SHUT_WR)
        replies = read_replies(s)
        self.assertEqual(replies[0]["id"], 'quote"d')
        json.dumps(replies)


if __name__ == "__main__":
    unittest.main(verbosity=2)

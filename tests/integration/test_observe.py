#!/usr/bin/python3
"""What users look at, against the real daemon and PostgreSQL: /healthz,
/readyz, /metrics (checked by prometheus_client's parser), the JSON API and
driftctl, all telling the same story as driftd.drift_history and
driftd.stream_alarm_history; and the read path failing fast and cleanly
while the database is slow or gone, with the loop still answering."""

import datetime

import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from driftd_harness import DRIFTD, Env, model_section
from observe_fixture import (DRIFTING, SLICES, SOURCE_ROOT, WINDOWS,
                             ObservedCase)

DRIFTCTL = os.path.join(SOURCE_ROOT, "tools", "driftctl")


def families(text):
    """{name: Metric} via prometheus_client's parser; raises on bad text."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, family, sample=None, **labels):
    for s in fams[family].samples:
        if s.name == (sample or family) and s.labels == labels:
            return s.value
    raise KeyError(f"{sample or family}{labels}")


class Observe(ObservedCase):
    LISTEN = "metrics_max_slices = 3"

    def get_json(self, path):
        status, body = self.d.http_get(path)
        return status, json.loads(body)

    # -- health ---------------------------------------------------------

    def test_health_and_readiness(self):
        self.assertEqual(self.d.http_get("/healthz"), (200, "ok\n"))
        self.assertEqual(self.d.http_get("/readyz"), (200, "ready\n"))

    def test_unknown_path_and_method(self):
        status, body = self.d.http_get("/nope")
        self.assertEqual(status, 404)
        self.assertIn("/nope", body)
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.d.http_port}/metrics", data=b"x", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(cm.exception.code, 405)

    def test_every_route_is_in_the_readme(self):
        """The README's table of the side port lists every row of http.c's
        route table."""
        with open(os.path.join(SOURCE_ROOT, "daemon", "http.c")) as f:
            routes = re.findall(r'\{ EVHTTP_REQ_(GET|POST), "([^"]+)", \w+ \}', f.read())
        self.assertGreaterEqual(len(routes), 12)
        with open(os.path.join(SOURCE_ROOT, "README.md")) as f:
            table = [l for l in f.read().splitlines() if l.startswith("| `")]
        for method, pattern in routes:
            self.assertTrue(any(re.search(rf"`{method} {re.escape(pattern)}[`?]", l)
                                for l in table), f"{method} {pattern}")

    # -- /metrics -------------------------------------------------------

    def test_metrics_parse_and_count_the_windows(self):
        status, text = self.d.http_get("/metrics")
        self.assertEqual(status, 200)
        fams = families(text)
        for name, f in fams.items():
            self.assertTrue(f.documentation, name)
            self.assertIn(f.type, ("counter", "gauge", "histogram"), name)
        self.assertEqual(value(fams, "driftd_windows_closed", "driftd_windows_closed_total"),
                         WINDOWS)
        self.assertEqual(value(fams, "driftd_store_written", "driftd_store_written_total"),
                         WINDOWS)
        self.assertEqual(value(fams, "driftd_store_state", state="ready"), 1)
        self.assertEqual(value(fams, "driftd_store_state", state="down"), 0)
        self.assertEqual(value(fams, "driftd_ready"), 1)
        self.assertEqual(value(fams, "driftd_model_windows", "driftd_model_windows_total",
                               model="enc"), WINDOWS)
        self.assertGreater(value(fams, "driftd_records_accepted",
                                 "driftd_records_accepted_total"), 0)
        self.assertIn("reason", fams["driftd_records_rejected"].samples[0].labels)

    def test_every_family_is_documented(self):
        with open(os.path.join(SOURCE_ROOT, "docs", "metrics.md")) as f:
            doc = f.read()
        for f in families(self.d.http_get("/metrics")[1]).values():
            name = f.name + ("_total" if f.type == "counter" else "")
            self.assertIn(f"| `{name}` | {f.type} |", doc)

    def test_histograms_are_consistent(self):
        fams = families(self.d.http_get("/metrics")[1])
        counts = {"driftd_detector_duration_seconds": WINDOWS,
                  "driftd_store_write_duration_seconds": WINDOWS,
                  "driftd_store_commit_delay_seconds": WINDOWS,
                  "driftd_window_commit_latency_seconds": WINDOWS}
        for name, want in counts.items():
            f = fams[name]
            self.assertEqual(f.type, "histogram")
            buckets = [(s.labels["le"], s.value) for s in f.samples
                       if s.name == name + "_bucket"]
            self.assertEqual(buckets[-1][0], "+Inf")
            values = [v for _, v in buckets]
            self.assertEqual(values, sorted(values), name)
            self.assertEqual(values[-1], want, name)
            self.assertEqual(value(fams, name, name + "_count"), want)
            self.assertGreater(value(fams, name, name + "_sum"), 0)

    def test_close_to_commit_spans_detectors_and_store(self):
        # Per window, close -> commit holds its detector job and its
        # hand-over -> commit time, one after the other.
        fams = families(self.d.http_get("/metrics")[1])

        def total(name):
            return value(fams, name, name + "_sum")
        self.assertGreaterEqual(
            total("driftd_window_commit_latency_seconds") + 1e-6 * WINDOWS,
            total("driftd_detector_duration_seconds") +
            total("driftd_store_commit_delay_seconds"))

    def test_latest_per_slice_matches_sql_within_the_cap(self):
        fams = families(self.d.http_get("/metrics")[1])
        latest = self.latest_rows()
        # Cap 3 of 4 slices: "*", then the drifted one, then by name.
        shown = {s.labels["slice"] for s in fams["driftd_slice_drifted"].samples}
        self.assertEqual(shown, {"*", DRIFTING, "region=asia"})
        self.assertEqual(value(fams, "driftd_metrics_slices_omitted", model="enc"),
                         SLICES - 3)
        self.assertEqual(value(fams, "driftd_metrics_slices_omitted", model="idle"), 0)
        drifted_sql = {s for (s, _), r in latest.items() if r[4]}
        self.assertIn(DRIFTING, drifted_sql)
        self.assertEqual(value(fams, "driftd_model_slices_drifted", model="enc"),
                         len(drifted_sql))
        self.assertEqual(value(fams, "driftd_slice_drifted", model="enc", slice=DRIFTING), 1)
        checked = 0
        for (slice_, test), (wid, stat, p, thr, drifted) in latest.items():
            if slice_ not in shown:
                continue
            labels = dict(model="enc", slice=slice_, test=test)
            self.assertEqual(value(fams, "driftd_slice_window_id", model="enc",
                                   slice=slice_), wid)
            self.assertAlmostEqual(value(fams, "driftd_test_statistic", **labels), stat,
                                   delta=1e-9 * max(1, abs(stat)))
            self.assertEqual(value(fams, "driftd_test_drifted", **labels), float(drifted))
            if p is None:
                with self.assertRaises(KeyError):
                    value(fams, "driftd_test_p_value", **labels)
            else:
                self.assertAlmostEqual(value(fams, "driftd_test_p_value", **labels), p)
            if thr is not None:
                self.assertAlmostEqual(value(fams, "driftd_test_threshold", **labels), thr)
            checked += 1
        self.assertEqual(checked, 3 * 3)   # 3 slices x mmd + 2 centroid statistics

    # -- JSON API -------------------------------------------------------

    def test_models(self):
        status, body = self.get_json("/v1/models")
        self.assertEqual(status, 200)
        by_name = {m["name"]: m for m in body["models"]}
        self.assertEqual(list(by_name), ["enc", "idle"])
        enc = by_name["enc"]
        self.assertEqual((enc["dim"], enc["slice_by"], enc["windows"]),
                         (16, ["region"], WINDOWS))
        self.assertEqual(enc["slices_evaluated"], SLICES)
        self.assertGreaterEqual(enc["slices_drifted"], 1)
        self.assertIsNone(by_name["idle"]["latest_window_end"])

    def test_status_matches_sql(self):
        status, body = self.get_json("/v1/models/enc/status")
        self.assertEqual(status, 200)
        latest = self.latest_rows()
        self.assertEqual([s["slice"] for s in body["slices"]],
                         sorted({s for s, _ in latest}))
        for s in body["slices"]:
            self.assertEqual(s["drifted"], any(t["drifted"] for t in s["tests"]))
            for t in s["tests"]:
                wid, stat, p, thr, drifted = latest[(s["slice"], t["test"])]
                self.assertEqual(s["window_id"], wid)
                self.assertEqual((t["statistic"], t["p_value"], t["threshold"],
                                  t["drifted"]), (stat, p, thr, drifted))
        eu = next(s for s in body["slices"] if s["slice"] == DRIFTING)
        self.assertTrue(eu["drifted"])
        self.assertEqual(self.get_json("/v1/models/idle/status")[1]["slices"], [])

    def test_history_filters_and_limits(self):
        rows = self.env.pg.psql(
            "SELECT window_id, statistic, p_value FROM driftd.drift_history "
            f"WHERE model = 'enc' AND slice = '{DRIFTING}' AND test = 'mmd' "
            "ORDER BY window_end")
        base = f"/v1/models/enc/history?slice={DRIFTING}&test=mmd"
        status, body = self.get_json(base)
        self.assertEqual(status, 200)
        self.assertFalse(body["truncated"])
        self.assertEqual([(r["window_id"], r["statistic"], r["p_value"])
                          for r in body["rows"]],
                         [(int(w), float(s), float(p)) for w, s, p in rows])
        self.assertTrue(all(r["drifted"] for r in body["rows"]))
        # limit keeps the newest, oldest first
        status, one = self.get_json(base + "&limit=1")
        self.assertTrue(one["truncated"])
        self.assertEqual([r["window_id"] for r in one["rows"]], [int(rows[-1][0])])
        # since / until split the history at the last window's end
        last_end = body["rows"][-1]["window_end"]
        since = self.get_json(base + "&since=" + last_end)[1]["rows"]
        until = self.get_json(base + "&until=" + last_end)[1]["rows"]
        self.assertEqual(len(since) + len(until), len(rows))
        self.assertEqual([r["window_end"] for r in since], [last_end])
        everything = self.get_json("/v1/models/enc/history")[1]
        self.assertEqual(len(everything["rows"]), 3 * WINDOWS)
        ends = [r["window_end"] for r in everything["rows"]]
        self.assertEqual(ends, sorted(ends))

    def test_bad_requests_are_named(self):
        for path, code, words in [
                ("/v1/models/nope/status", 404, "nope"),
                ("/v1/models/nope/history", 404, "nope"),
                ("/v1/models/enc/history?limit=0", 400, "limit"),
                ("/v1/models/enc/history?limit=x", 400, "limit"),
                ("/v1/models/enc/history?since=yesterday", 400, "since"),
                ("/v1/models/enc/history?since=2026-01-02T00:00:00Z"
                 "&until=2026-01-01T00:00:00Z", 400, "before"),
                ("/v1/models/enc/history?colour=red", 400, "colour"),
                ("/v1/models/enc/history?slice=%ff%fe", 400, "UTF8"),
                ("/v1/models/nope/alarms", 404, "nope"),
                ("/v1/models/enc/alarms?limit=0", 400, "limit: a positive integer"),
                ("/v1/models/enc/alarms?limit=-1", 400, "limit"),
                ("/v1/models/enc/alarms?limit=4294967296", 400, "limit"),
                ("/v1/models/enc/alarms?since=yesterday", 400,
                 "since: not an RFC 3339 time or unix seconds"),
                ("/v1/models/enc/alarms?until=2026-13-01T00:00:00Z", 400, "until"),
                ("/v1/models/enc/alarms?since=1800000000&until=1700000000", 400,
                 "since must be before until"),
                ("/v1/models/enc/alarms?detector=cusum", 400,
                 'detector: page_hinkley or adwin, got "cusum"'),
                ("/v1/models/enc/alarms?signal=latency", 400,
                 'signal: score or error, got "latency"'),
                ("/v1/models/enc/alarms?test=mmd", 400, 'unknown parameter "test" (slice, '
                 "detector, signal, since, until, limit)"),
                ("/v1/models/enc/alarms?slice=%ff%fe", 400, "UTF8")]:
            status, body = self.get_json(path)
            self.assertEqual(status, code, path)
            self.assertIn(words, body["error"], path)

    # -- streaming alarms -------------------------------------------------

    def alarms(self, query=""):
        status, body = self.get_json("/v1/models/enc/alarms" + query)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["model"], "enc")
        return body

    def test_alarms_match_sql(self):
        body = self.alarms()
        want = self.alarm_rows()
        self.assertFalse(body["truncated"])
        self.assertEqual(body["rows"], want)
        # The fixture's story: eu's scores rose, us and asia stayed.
        self.assertEqual({(r["slice"], r["detector"]) for r in want
                          if r["slice"] == DRIFTING},
                         {(DRIFTING, "page_hinkley"), (DRIFTING, "adwin")})
        self.assertEqual([r for r in want if r["slice"] in ("region=us", "region=asia")], [])
        self.assertTrue(all(r["direction"] == "up" and r["signal"] == "score" and
                            r["mean_after"] > r["mean_before"] for r in want))
        ph = next(r for r in want if r["detector"] == "page_hinkley")
        self.assertEqual(ph["threshold"], 50)
        self.assertEqual(ph["params"]["threshold"], 50)
        self.assertIsNone(next(r for r in want if r["detector"] == "adwin")["threshold"])
        self.assertEqual(self.get_json("/v1/models/idle/alarms")[1],
                         {"model": "idle", "rows": [], "truncated": False})

    def test_alarms_filters_and_limits(self):
        every = self.alarm_rows()
        self.assertGreaterEqual(len(every), 3)
        self.assertEqual(self.alarms(f"?slice={DRIFTING}")["rows"],
                         self.alarm_rows(f"slice = '{DRIFTING}'"))
        self.assertEqual(self.alarms("?detector=adwin&signal=score")["rows"],
                         self.alarm_rows("detector = 'adwin'"))
        self.assertEqual(self.alarms("?signal=error")["rows"], [])
        # An empty filter matches anything, as driftctl's unset options.
        self.assertEqual(self.alarms("?slice=&detector=&signal=")["rows"], every)
        self.assertEqual(len(self.get_json("/v1/models/enc/history?slice=&test=")[1]["rows"]),
                         3 * WINDOWS)
        self.assertEqual(self.alarms("?slice=region%3Dus")["rows"], [])
        # limit keeps the newest, newest first
        one = self.alarms("?limit=1")
        self.assertTrue(one["truncated"])
        self.assertEqual(one["rows"], every[:1])
        exact = self.alarms(f"?limit={len(every)}")
        self.assertFalse(exact["truncated"])
        self.assertEqual(exact["rows"], every)
        # since / until split at the newest alarm's detected_at (RFC 3339 or
        # unix seconds)
        newest = every[0]["detected_at"]
        since = self.alarms("?since=" + newest)["rows"]
        until = self.alarms("?until=" + newest)["rows"]
        self.assertEqual(since + until, every)
        self.assertTrue(since and all(r["detected_at"] == newest for r in since))
        t = datetime.datetime.fromisoformat(newest.replace("Z", "+00:00")).timestamp()
        self.assertEqual(self.alarms(f"?since={int(t) + 1}")["rows"], [])
        self.assertEqual(self.alarms(f"?since={int(t) - 3600}")["rows"], every)

    def test_status_summarises_recent_alarms(self):
        t0 = datetime.datetime.now(datetime.timezone.utc)
        body = self.get_json("/v1/models/enc/status")[1]
        recent = body["stream_alarms"]
        since = datetime.datetime.fromisoformat(recent["since"].replace("Z", "+00:00"))
        self.assertLess(abs((t0 - since).total_seconds() - 86400), 60)
        self.assertFalse(recent["truncated"])
        want = {}
        for r in self.alarm_rows():          # newest first
            s = want.setdefault(r["slice"], {
                "slice": r["slice"], "count": 0, "detected_at": r["detected_at"],
                "detector": r["detector"], "signal": r["signal"],
                "direction": r["direction"], "alarm_id": r["alarm_id"]})
            s["count"] += 1
        self.assertEqual(recent["slices"], [want[k] for k in sorted(want)])
        self.assertIn(DRIFTING, want)
        idle = self.get_json("/v1/models/idle/status")[1]
        self.assertEqual((idle["slices"], idle["stream_alarms"]["slices"]), ([], []))
        # An alarm older than 24 h is left out of the summary (not of
        # /alarms): move one back in time, and restore it.
        aid = recent["slices"][0]["alarm_id"]
        self.env.pg.psql("UPDATE driftd.stream_alarms SET detected_at = detected_at "
                         f"- interval '25 hours' WHERE id = {aid}")
        try:
            again = self.get_json("/v1/models/enc/status")[1]["stream_alarms"]["slices"]
            first = recent["slices"][0]
            moved = [s for s in again if s["slice"] == first["slice"]]
            self.assertEqual(sum(s["count"] for s in moved), first["count"] - 1)
            self.assertNotIn(aid, [s["alarm_id"] for s in again])
            self.assertIn(aid, [r["alarm_id"] for r in self.alarms()["rows"]])
            # ?since= reaches further back, and says so.
            back = int(t0.timestamp()) - 26 * 3600
            def counts(summary):
                return {s["slice"]: s["count"] for s in summary["slices"]}

            wide = self.get_json(f"/v1/models/enc/status?since={back}")[1]["stream_alarms"]
            self.assertEqual(counts(wide), counts(recent))
            self.assertEqual(
                datetime.datetime.fromisoformat(wide["since"].replace("Z", "+00:00"))
                .timestamp(), back)
            out = self.driftctl("status", "enc", "--since", "2d").stdout
            self.assertIn("stream alarms since ", out)
            answer = json.loads(self.driftctl("status", "enc", "--since", "2d",
                                              "--json").stdout)
            self.assertEqual(counts(answer["stream_alarms"]), counts(recent))
        finally:
            self.env.pg.psql("UPDATE driftd.stream_alarms SET detected_at = detected_at "
                             f"+ interval '25 hours' WHERE id = {aid}")

    # -- driftctl -------------------------------------------------------

    def driftctl(self, *args, check=True):
        p = subprocess.run([sys.executable, DRIFTCTL, "--url",
                            f"http://127.0.0.1:{self.d.http_port}", *args],
                           capture_output=True, text=True, timeout=60)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def test_status_parameters_checked(self):
        status, body = self.get_json("/v1/models/enc/status?since=yesterday")
        self.assertEqual(status, 400)
        self.assertIn("since: not an RFC 3339 time or unix seconds", body["error"])
        status, body = self.get_json("/v1/models/enc/status?slice=x")
        self.assertEqual(status, 400)
        self.assertIn('unknown parameter "slice" (since)', body["error"])
        future = int(datetime.datetime.now().timestamp()) + 3600
        answer = self.get_json(f"/v1/models/enc/status?since={future}")[1]
        self.assertEqual(answer["stream_alarms"]["slices"], [])

    def test_driftctl_status_json_is_the_api(self):
        out = json.loads(self.driftctl("status", "enc", "--json").stdout)
        api = self.get_json("/v1/models/enc/status")[1]
        # "since" is 24 h before each answer
        for answer in (out, api):
            self.assertTrue(answer["stream_alarms"].pop("since").endswith("Z"))
        self.assertEqual(out, api)
        both = json.loads(self.driftctl("status", "--json").stdout)
        self.assertEqual([m["model"] for m in both["models"]], ["enc", "idle"])

    def test_driftctl_status_table_without_colour(self):
        out = self.driftctl("status").stdout
        self.assertNotIn("\033[", out)
        lines = out.splitlines()
        drifted = len({s for (s, _), r in self.latest_rows().items() if r[4]})
        self.assertEqual(lines[0], f"model enc: {drifted} of {SLICES} slices drifted")
        eu = next(l for l in lines if l.startswith(DRIFTING))
        self.assertIn("DRIFT", eu)
        self.assertIn("p=", eu)
        self.assertIn("!", eu)
        us = next(l for l in lines if l.startswith("region=us"))
        self.assertIn(" ok ", us)
        self.assertIn("model idle: 0 slices, no drift", out)
        self.assertIn("no window evaluated yet", out)
        # Below enc's table: its streaming alarms of the last 24 h.
        at = lines.index("stream alarms in the last 24 h (driftctl alarms enc):")
        self.assertEqual(lines[at + 1].split(),
                         ["SLICE", "ALARMS", "NEWEST", "DETECTOR", "SIGNAL", "DIRECTION"])
        recent = self.get_json("/v1/models/enc/status")[1]["stream_alarms"]["slices"]
        for i, s in enumerate(recent):
            day, hms = s["detected_at"][:19].split("T")
            self.assertEqual(lines[at + 2 + i].split(),
                             [s["slice"], str(s["count"]), day, hms + "Z",
                              s["detector"], s["signal"], s["direction"]])
        self.assertEqual(out.count("stream alarms in the last 24 h"), 1)   # not idle

    def test_driftctl_colours_a_terminal(self):
        pid, fd = pty.fork()
        if pid == 0:
            env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
            os.execve(sys.executable, [sys.executable, DRIFTCTL, "--url",
                                       f"http://127.0.0.1:{self.d.http_port}",
                                       "status", "enc"], env)
        out = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        self.assertIn(b"\033[31mDRIFT", out)

    def test_driftctl_history(self):
        p = self.driftctl("history", "enc", "--slice", DRIFTING, "--test", "mmd",
                          "--since", "1d")
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ENDED"))
        self.assertEqual(len(lines), 1 + 2)
        self.assertTrue(all(DRIFTING in l and l.rstrip().endswith("yes")
                            for l in lines[1:]))
        js = json.loads(self.driftctl("history", "enc", "--limit", "3", "--json").stdout)
        self.assertEqual(len(js["rows"]), 3)
        self.assertTrue(js["truncated"])
        none = self.driftctl("history", "enc", "--since", "2999-01-01T00:00:00Z").stdout
        self.assertIn("no windows match", none)

    def test_driftctl_alarms(self):
        every = self.alarm_rows()
        lines = self.driftctl("alarms", "enc").stdout.splitlines()
        self.assertNotIn("\033[", "\n".join(lines))
        self.assertEqual(lines[0].split(), ["DETECTED", "SLICE", "DETECTOR", "SIGNAL",
                                            "DIRECTION", "STATISTIC", "THRESHOLD", "SEEN",
                                            "MEAN", "BEFORE", "->", "AFTER", "N",
                                            "BEFORE/AFTER"])
        self.assertEqual(len(lines), 1 + len(every))
        for line, r in zip(lines[1:], every):
            day, hms = r["detected_at"][:19].split("T")
            self.assertEqual(line.split(), [
                day, hms + "Z", r["slice"], r["detector"], r["signal"], r["direction"],
                f"{r['statistic']:.4g}",
                "-" if r["threshold"] is None else f"{r['threshold']:.4g}",
                str(r["records_seen"]), f"{r['mean_before']:.4g}", "->",
                f"{r['mean_after']:.4g}", f"{r['n_before']}/{r['n_after']}"])
        # Filters and the limit reach the API; --json is its answer.
        p = self.driftctl("alarms", "enc", "--slice", DRIFTING, "--detector", "adwin",
                          "--since", "1h", "--limit", "1")
        rows = p.stdout.splitlines()[1:]
        self.assertEqual(len(rows), 1)
        self.assertIn(DRIFTING, rows[0])
        self.assertIn("adwin", rows[0])
        js = json.loads(self.driftctl("alarms", "enc", "--limit", "1", "--json").stdout)
        self.assertEqual(js, self.get_json("/v1/models/enc/alarms?limit=1")[1])
        self.assertTrue(js["truncated"])
        cut = self.driftctl("alarms", "enc", "--limit", "1").stdout
        self.assertIn("(older alarms left out: the newest 1 are shown", cut)
        none = self.driftctl("alarms", "enc", "--signal", "error").stdout
        self.assertEqual(none, "no stream alarms match\n")
        p = self.driftctl("alarms", "nope", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('no model named \"nope\"', p.stderr)

    def test_driftctl_errors(self):
        p = self.driftctl("status", "nope", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no model named \"nope\"", p.stderr)
        p = subprocess.run([sys.executable, DRIFTCTL, "--url", "http://127.0.0.1:1",
                            "status"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot reach driftd", p.stderr)


class SlowAndDownDatabase(unittest.TestCase):
    """A query stuck behind a lock times out with 504 after read_timeout
    while the loop keeps answering; with the server gone, reads fail at
    once with 503 and /readyz says why."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env().__enter__()
        cls.d = None
        try:
            # Lines before the first model section still belong to [store].
            # 3 s: a loop blocked by the stuck read would hold /healthz
            # for seconds, far beyond the 1 s the test allows it.
            cls.d = cls.env.driftd("read_timeout = 3s\n" + model_section(
                "enc", 4, reference=10, window=10)).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.d:
                cls.d.close()
        finally:
            cls.env.__exit__(None, None, None)

    def test_0_not_ready_while_starting(self):
        """With no database yet, the side port answers and says why."""
        other = self.env.driftd(model_section("enc", 4, reference=10, window=10))
        with open(other.config) as f:
            text = f.read().replace(self.env.pg.dsn, f"host={other.workdir} dbname=x")
        with open(other.config, "w") as f:
            f.write(text)
        with open(other.log_path, "wb") as log:
            proc = subprocess.Popen([DRIFTD, "--config", other.config],
                                    stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    answer = other.http_get("/readyz")
                    break
                except OSError:
                    self.assertLess(time.monotonic(), deadline, other.log_text())
                    time.sleep(0.05)
            self.assertEqual(answer, (503, "not ready: starting: waiting for the database\n"))
            self.assertEqual(other.http_get("/healthz"), (200, "ok\n"))
            fams = families(other.http_get("/metrics")[1])
            self.assertEqual(value(fams, "driftd_ready"), 0)
            self.assertEqual(value(fams, "driftd_store_up"), 0)
        finally:
            proc.terminate()
            proc.wait(30)

    def test_1_slow_query_times_out_and_the_loop_stays_free(self):
        pg = self.env.pg
        holder = subprocess.Popen(
            [pg._bin("psql"), "-X", "-q", "-h", pg.sockdir, "-p", str(pg.port),
             "-U", pg.user, "-d", "driftd"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            # Idle in transaction while psql waits for more input; its
            # death ends the session and the lock with it.
            holder.stdin.write("BEGIN; LOCK TABLE driftd.windows IN ACCESS "
                               "EXCLUSIVE MODE;\n")
            holder.stdin.flush()
            deadline = time.monotonic() + 10
            while not pg.psql("SELECT 1 FROM pg_locks WHERE relation = "
                              "'driftd.windows'::regclass AND mode = "
                              "'AccessExclusiveLock' AND granted"):
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            result = {}

            def read():
                t0 = time.monotonic()
                result["answer"] = self.d.http_get("/v1/models/enc/history")
                result["seconds"] = time.monotonic() - t0

            t = threading.Thread(target=read)
            t.start()
            time.sleep(0.3)
            # The loop answers while the read waits on the database.
            t0 = time.monotonic()
            self.assertEqual(self.d.http_get("/healthz")[0], 200)
            self.assertEqual(self.d.http_get("/metrics")[0], 200)
            self.assertLess(time.monotonic() - t0, 1.0)
            t.join(30)
            status, body = result["answer"]
            self.assertEqual(status, 504, body)
            self.assertIn("timed out", body)
            self.assertGreaterEqual(result["seconds"], 2.9)
            self.assertLess(result["seconds"], 8)
        finally:
            holder.stdin.close()
            holder.kill()
            holder.wait()
        # The reader reconnects and answers again.
        deadline = time.monotonic() + 20
        while self.d.http_get("/v1/models/enc/history")[0] != 200:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)

    def test_2_database_down(self):
        self.env.pg.stop()
        try:
            deadline = time.monotonic() + 20
            while value(families(self.d.http_get("/metrics")[1]),
                        "driftd_store_up") != 0:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.1)
            # Still ready: results wait in the spill journal meanwhile
            # (only a full journal makes the daemon unready).
            self.assertEqual(self.d.http_get("/readyz"), (200, "ready\n"))
            t0 = time.monotonic()
            for path in ("/v1/models/enc/status", "/v1/models/enc/alarms"):
                status, body = self.d.http_get(path)
                self.assertEqual(status, 503)
                self.assertIn("database", json.loads(body)["error"])
            self.assertLess(time.monotonic() - t0, 1.0)
            fams = families(self.d.http_get("/metrics")[1])
            self.assertEqual(value(fams, "driftd_store_up"), 0)
            self.assertEqual(value(fams, "driftd_store_read_up"), 0)
            self.assertEqual(value(fams, "driftd_ready"), 1)
            self.assertEqual(value(fams, "driftd_store_accepting"), 1)
        finally:
            self.env.pg.start()
        deadline = time.monotonic() + 30
        while self.d.http_get("/readyz")[0] != 200:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/python3
"""The status page at / in headless Chromium against a daemon with real
drift history: the model table, the drift timeline of the drifted slice
(values, thresholds, red drifted windows), the streaming alarms of the last
24 h (per slice in the table, newest first below it) and the reliability
panel render without console errors; the screenshot is kept as an artifact
(build/artifacts/status_page.png)."""

import json
import os
import time
import unittest

from cdp import Browser
from observe_fixture import DRIFTING, SLICES, WINDOWS, ObservedCase

ARTIFACTS = os.path.join(os.environ.get("DRIFTD_BUILD_ROOT", "build"), "artifacts")


class StatusPage(ObservedCase):
    @classmethod
    def feed(cls):
        super().feed()
        cls.browser = Browser()
        try:
            cls.browser.call("Page.navigate", url=f"http://127.0.0.1:{cls.d.http_port}/")
            cls.browser.wait_for("document.body && document.body.dataset.loaded")
            os.makedirs(ARTIFACTS, exist_ok=True)
            cls.shot = os.path.join(ARTIFACTS, "status_page.png")
            cls.browser.screenshot(cls.shot)
        except BaseException:
            cls.browser.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "browser", None):
                cls.browser.close()
        finally:
            super().tearDownClass()

    def js(self, expr):
        return self.browser.evaluate(expr)

    def test_loaded_without_errors(self):
        self.assertEqual(self.js("document.body.dataset.loaded"), "1")
        self.assertEqual(self.browser.errors, [])

    def test_models_and_slices(self):
        self.assertEqual(self.js("[...document.querySelectorAll('section.model')]"
                                 ".map(s => s.dataset.model)"), ["enc", "idle"])
        rows = self.js("[...document.querySelectorAll('[data-model=enc] tr.slice')]"
                       ".map(r => [r.dataset.slice, r.querySelector('.badge').textContent])")
        self.assertEqual(len(rows), SLICES)
        self.assertIn([DRIFTING, "DRIFT"], rows)
        self.assertIn(["region=us", "ok"], rows)
        self.assertIn("no window evaluated yet",
                      self.js("document.querySelector('[data-model=idle]').textContent"))

    def test_timeline_of_the_drifted_slice(self):
        self.assertEqual(self.js("document.querySelector('tr.slice.selected').dataset.slice"),
                         DRIFTING)
        charts = self.js("[...document.querySelectorAll('.chart')].map(c => [c.dataset.test,"
                         " c.querySelectorAll('circle.point').length,"
                         " c.querySelectorAll('circle.point.drifted').length,"
                         " c.querySelectorAll('path.threshold').length])")
        by_test = {c[0]: c[1:] for c in charts}
        self.assertEqual(set(by_test), {"mmd", "centroid_cosine", "centroid_euclidean"})
        # region=eu had 2 windows, both drifted by MMD.
        self.assertEqual(by_test["mmd"], [2, 2, 1])
        self.assertEqual(by_test["centroid_euclidean"][2], 0)   # no threshold
        self.assertIn("above the dashed threshold",
                      self.js("document.querySelector('[data-test=mmd] .note').textContent"))

    def test_stream_alarms(self):
        status, body = self.d.http_get("/v1/models/enc/status")
        recent = {s["slice"]: s for s in json.loads(body)["stream_alarms"]["slices"]}
        self.assertIn(DRIFTING, recent)
        cells = dict(self.js("[...document.querySelectorAll('[data-model=enc] tr.slice')]"
                             ".map(r => [r.dataset.slice, r.lastChild.textContent])"))
        self.assertEqual(cells, {s: f"{recent[s]['count']} ⚡" if s in recent else "–"
                                 for s in cells})
        total = sum(s["count"] for s in recent.values())
        self.assertIn(f"{total} stream alarms in 24 h",
                      self.js("document.querySelector('[data-model=enc] .summary')"
                              ".textContent"))
        # The table below: the API's newest alarms of the last 24 h.
        since = int(time.time()) - 86400
        status, body = self.d.http_get(f"/v1/models/enc/alarms?since={since}&limit=10")
        api = json.loads(body)["rows"]
        self.assertEqual(len(api), total)
        shown = self.js("[...document.querySelectorAll('[data-model=enc] tr.alarm')]"
                        ".map(r => [...r.cells].map(c => c.textContent))")
        self.assertEqual([[r[1], r[2], r[3], r[4]] for r in shown],
                         [[a["slice"], a["detector"], a["signal"], a["direction"]]
                          for a in api])
        self.assertEqual([r[0] for r in shown],
                         [a["detected_at"][:19].replace("T", " ") + "Z" for a in api])
        self.assertIsNone(self.js("document.querySelector('[data-model=idle] .alarms')"))
        self.assertEqual(self.browser.errors, [])

    def test_reliability_panel_says_no_labels(self):
        self.assertIn("no labels yet", self.js("document.querySelector('.nolabels').textContent"))

    def test_zz_clicking_a_slice_shows_its_timeline(self):
        self.js("document.querySelector('[data-model=enc] tr.slice[data-slice=\"*\"]').click()")
        self.browser.wait_for("document.querySelector('#slice-detail h2')"
                              ".textContent.endsWith('· *')")
        self.browser.wait_for("document.querySelectorAll('[data-test=mmd] circle.point')"
                              f".length === {WINDOWS - 2 * 3}")
        self.assertEqual(self.browser.errors, [])

    def test_screenshot_saved(self):
        with open(self.shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(self.shot), 20000)


if __name__ == "__main__":
    unittest.main()

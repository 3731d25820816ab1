#!/usr/bin/python3
"""The status page at / in headless Chromium against a daemon with real
drift history: the model table, the drift timeline of the drifted slice
(values, thresholds, red drifted windows) and the reliability panel render
without console errors; the screenshot is kept as an artifact
(build/artifacts/status_page.png)."""

import os
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

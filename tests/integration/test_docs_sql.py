#!/usr/bin/python3
"""docs/sql.md's cookbook and docs/grafana/driftd.json against the real
schema, in a database filled by a real daemon run.  The queries are read
from the documents themselves, so neither can drift from what runs.

Each cookbook block is tagged `sql cookbook name=... needs=VIEW,...`.  A
query whose view does not exist yet is skipped only while that view is
listed in PENDING_VIEWS (it arrives with another branch's migration); any
other missing view fails."""

import datetime
import json
import math
import os
import re
import unittest

from prometheus_client.parser import text_string_to_metric_families

from observe_fixture import DRIFTING, SOURCE_ROOT, ObservedCase

SQL_MD = os.path.join(SOURCE_ROOT, "docs", "sql.md")
DASHBOARD = os.path.join(SOURCE_ROOT, "docs", "grafana", "driftd.json")
# The public views of DESIGN §3.3; the cookbook has a query on each.
CONTRACT_VIEWS = {"driftd.drift_history", "driftd.latest_status",
                  "driftd.calibration_history", "driftd.webhook_deliveries"}
# Views whose migration is not in this tree yet: delete an entry when it is.
PENDING_VIEWS = {}
BLOCK = re.compile(r"^```sql cookbook name=(\S+) needs=(\S+)\n(.*?)^```",
                   re.M | re.S)
# The doc's example names, mapped to the test run's.
EXAMPLES = {"'search-encoder'": "'enc'", "'region=eu,device=ios'": f"'{DRIFTING}'"}


def cookbook():
    with open(SQL_MD) as f:
        return [(name, needs.split(","), sql) for name, needs, sql in BLOCK.findall(f.read())]


def grafana_sql(text, start, end, model):
    """Expands the Grafana macros and variables the dashboard uses, the way
    Grafana's PostgreSQL data source does."""
    text = re.sub(r"\$__timeFilter\((\w+)\)",
                  lambda m: f"{m.group(1)} BETWEEN '{start}' AND '{end}'", text)
    text = re.sub(r"\$__timeGroupAlias\((\w+),\s*'1h'\)",
                  lambda m: f"floor(extract(epoch from {m.group(1)})/3600)*3600 AS \"time\"",
                  text)
    text = text.replace("$__timeFrom()", f"'{start}'").replace("$__timeTo()", f"'{end}'")
    text = text.replace("$model", model)
    assert "$" not in text.replace("$$", ""), f"unexpanded macro or variable in {text}"
    return text


class Cookbook(ObservedCase):
    def view_exists(self, name):
        return self.env.pg.psql(f"SELECT to_regclass('{name}') IS NOT NULL")[0][0] == "t"

    def run_query(self, sql):
        for doc, ours in EXAMPLES.items():
            sql = sql.replace(doc, ours)
        return self.env.pg.psql(sql)

    def test_every_contract_view_has_a_query(self):
        needed = {v for _, needs, _ in cookbook() for v in needs}
        self.assertLessEqual(CONTRACT_VIEWS, needed)
        self.assertGreaterEqual(len(cookbook()), 8)

    def test_queries(self):
        ran = 0
        for name, needs, sql in cookbook():
            with self.subTest(query=name):
                missing = [v for v in needs if not self.view_exists(v)]
                unexpected = [v for v in missing if v not in PENDING_VIEWS]
                self.assertEqual(unexpected, [], f"{name} needs views that do not exist")
                if missing:
                    continue
                rows = self.run_query(sql)
                ran += 1
                check = getattr(self, "check_" + name.replace("-", "_"), None)
                if check:
                    check(rows)
        self.assertGreaterEqual(ran, 6)

    def test_pending_views_are_still_pending(self):
        """Once a pending view exists, PENDING_VIEWS must drop it."""
        for view in PENDING_VIEWS:
            self.assertFalse(self.view_exists(view),
                             f"{view} exists now: remove it from PENDING_VIEWS")

    def check_drifted_this_week(self, rows):
        self.assertIn(("enc", DRIFTING), {(r[0], r[1]) for r in rows})
        eu = next(r for r in rows if r[1] == DRIFTING)
        self.assertEqual(eu[2], "2")
        self.assertIn("mmd", eu[5])

    def check_drifting_now(self, rows):
        self.assertIn(DRIFTING, [r[1] for r in rows])

    def check_pvalue_timeline(self, rows):
        mmd = [r for r in rows if r[2] == "mmd"]
        self.assertEqual(len(mmd), 2)
        self.assertTrue(all(r[5] == "t" and float(r[3]) <= float(r[4]) for r in mmd))

    def check_kofm_history(self, rows):
        # alarm.m = 1: the newest tested window of each slice, which
        # drifted in the drifting slice.
        self.assertIn([DRIFTING, "{%s}" % self.newest(DRIFTING), "{t}", "{1}"],
                      rows)

    def newest(self, slice_):
        return self.env.pg.psql(
            "SELECT max(window_id) FROM driftd.windows WHERE model = 'enc' "
            f"AND slice = '{slice_}' AND status = 'tested'")[0][0]

    def check_reproduce(self, rows):
        self.assertEqual(len(rows), 3)   # mmd and both centroid statistics

    def check_stream_alarms(self, rows):
        self.assertIn(("enc", DRIFTING), {(r[1], r[2]) for r in rows})
        self.assertEqual(len(rows), len(self.alarm_rows()))


class Dashboard(ObservedCase):
    @classmethod
    def feed(cls):
        super().feed()
        with open(DASHBOARD) as f:
            cls.dash = json.load(f)
        # Grafana's "now" is when it queries: after every row written (the
        # streaming alarms were a moment ago, the format drops fractions).
        now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
        cls.window = ((now - datetime.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      now.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def targets(self, ds_type):
        for p in self.dash["panels"]:
            for t in p.get("targets", []):
                if t["datasource"]["type"] == ds_type:
                    yield p["title"], t

    def query(self, sql):
        return self.env.pg.psql(grafana_sql(sql, *self.window, "enc"))

    def test_every_sql_query_runs(self):
        queries = [(title, t["rawSql"]) for title, t in
                   self.targets("grafana-postgresql-datasource")]
        queries += [("variable " + v["name"], v["query"])
                    for v in self.dash["templating"]["list"]]
        self.assertGreaterEqual(len(queries), 6)
        for title, sql in queries:
            with self.subTest(panel=title):
                self.assertTrue(self.query(sql), f"{title}: no rows")

    def test_mmd_panel_shows_the_drifted_windows(self):
        sql = next(t["rawSql"] for title, t in self.targets("grafana-postgresql-datasource")
                   if title.startswith("MMD evidence") and t["refId"] == "A")
        rows = self.query(sql)
        status, body = self.d.http_get(f"/v1/models/enc/history?slice={DRIFTING}&test=mmd")
        api = json.loads(body)["rows"]
        eu = [r for r in rows if r[1] == DRIFTING]
        self.assertEqual(len(eu), len(api))
        for (_, _, value), a in zip(eu, api):
            self.assertAlmostEqual(float(value), -math.log10(a["p_value"]))
            self.assertTrue(a["drifted"])

    def test_stream_alarm_panels_show_the_alarms(self):
        panels = {title: t["rawSql"] for title, t in
                  self.targets("grafana-postgresql-datasource")}
        rows = self.query(panels["Stream alarms"])
        api = json.loads(self.d.http_get("/v1/models/enc/alarms")[1])["rows"]
        self.assertEqual([(r[1], r[2], int(r[13])) for r in rows],
                         [(a["slice"], a["detector"], a["alarm_id"]) for a in api])
        self.assertEqual([json.loads(r[12]) for r in rows], [a["params"] for a in api])
        per_hour = self.query(panels["Stream alarms per hour"])
        self.assertEqual(sum(int(r[2]) for r in per_hour), len(api))
        self.assertEqual({r[1] for r in per_hour}, {"page_hinkley on score", "adwin on score"})

    def test_prometheus_queries_name_real_metrics(self):
        families = {f.name for f in text_string_to_metric_families(
            self.d.http_get("/metrics")[1])}
        exprs = [t["expr"] for _, t in self.targets("prometheus")]
        self.assertGreaterEqual(len(exprs), 8)
        for expr in exprs:
            for name in re.findall(r"\bdriftd_\w+", expr):
                base = re.sub(r"_(bucket|total)$", "", name)
                self.assertIn(base, families, f"{name} in {expr}")


if __name__ == "__main__":
    unittest.main()

"""A running driftd with drift history, for the tests of what users look at
(/metrics, the JSON API, driftctl, the SQL cookbook, the Grafana queries,
the status page).

Model "enc" is sliced by region; after the reference phase the slice
region=eu moves away while us and asia stay put, so eu's windows drift.
Its records carry a predicted score, which for eu rises with the move, so
its streaming detectors (page_hinkley, adwin on the score) alarm too.
Timestamps lie in the last few hours, so "this week" queries find them
(the alarms' detected_at is their arrival, i.e. now).  Model "idle" never
gets a record."""

import datetime
import json
import os

import numpy as np

from driftd_harness import DaemonCase, model_section, record

DIM = 16
REF = 150
WIN = 150
REGIONS = ["eu", "us", "asia"]
DRIFTING = "region=eu"
# 2 live windows per region; "*" takes its reference from the first REF
# records of all regions and closes a window every WIN records after.
WINDOWS = 2 * len(REGIONS) + (REF * len(REGIONS) + 2 * WIN * len(REGIONS) - REF) // WIN
SLICES = 1 + len(REGIONS)
# Predicted scores: mean SCORE, sd 0.05; eu's live records SCORE + SCORE_SHIFT.
SCORE, SCORE_SHIFT = 0.2, 0.5
T0 = (datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
      - datetime.timedelta(hours=3))
SOURCE_ROOT = os.environ.get(
    "DRIFTD_SOURCE_ROOT",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def stream(rng, score_rng, per_region, shift=0.0, t_offset=0):
    """Records cycling through the regions; SCORE_RNG draws the scores,
    so the embeddings are the same with or without them."""
    lines = []
    for i in range(per_region * len(REGIONS)):
        region = REGIONS[i % len(REGIONS)]
        emb = rng.normal(size=DIM) + 1.0
        mean = SCORE
        if region == "eu":
            emb[:DIM // 2] += shift
            mean += SCORE_SHIFT if shift else 0.0
        score = float(np.clip(score_rng.normal(mean, 0.05), 0, 1))
        ts = (T0 + datetime.timedelta(seconds=t_offset + i)).isoformat()
        lines.append(record("enc", emb, {"region": region}, scores=[round(score, 6)],
                            ts=ts.replace("+00:00", "Z"), id=f"r{t_offset + i}"))
    return lines


class ObservedCase(DaemonCase):
    """Subclasses may add [listen] keys through LISTEN."""

    LISTEN = ""
    MODELS = (model_section("enc", DIM, slice_by="region", reference=REF,
                            window=WIN, permutations=200, alpha=0.01,
                            extra="scores.width = 1\n"
                                  "stream.detectors = page_hinkley, adwin\n"
                                  "stream.signals = score\n")
              + model_section("idle", 4, reference=10, window=10))

    @classmethod
    def setUpClass(cls):
        cls.DRIFTD = dict(cls.DRIFTD, extra_listen=cls.LISTEN)
        super().setUpClass()

    @classmethod
    def feed(cls):
        rng = np.random.default_rng(20261201)
        score_rng = np.random.default_rng(20261202)
        ref = stream(rng, score_rng, REF)
        live = stream(rng, score_rng, 2 * WIN, shift=0.8, t_offset=len(ref))
        replies = cls.d.send_lines(ref + live)
        assert replies[-1]["rejected"] == 0, replies
        cls.d.wait_rows("SELECT 1 FROM driftd.windows", WINDOWS)
        m = cls.d.metrics()
        alarms = sum(v for k, v in m.items()
                     if k.startswith('driftd_stream_alarms_total{model="enc"'))
        assert alarms >= 2, m
        cls.d.wait_rows("SELECT 1 FROM driftd.stream_alarm_history", alarms)

    def latest_rows(self):
        """{(slice, test): (window_id, statistic, p_value, threshold,
        drifted)} of the newest window of each slice, from SQL."""
        rows = self.env.pg.psql(
            "SELECT slice, test, window_id, statistic, p_value, threshold, "
            "drifted FROM driftd.drift_history h WHERE model = 'enc' AND "
            "window_id = (SELECT max(window_id) FROM driftd.windows w "
            "WHERE w.model = h.model AND w.slice = h.slice)")
        return {(r[0], r[1]): (int(r[2]), float(r[3]),
                               None if r[4] is None else float(r[4]),
                               None if r[5] is None else float(r[5]),
                               r[6] == "t") for r in rows}

    def alarm_rows(self, where="true"):
        """enc's streaming alarms from SQL, newest first, as the API's
        rows (numbers as Python numbers, params as a dict)."""
        rows = self.env.pg.psql(
            "SELECT json_build_object('alarm_id', alarm_id, 'slice', slice, "
            "'detected_at', to_char(detected_at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'detector', detector, "
            "'signal', signal, 'direction', direction, 'statistic', statistic, "
            "'threshold', threshold, 'records_seen', records_seen, "
            "'n_before', n_before, 'mean_before', mean_before, 'n_after', n_after, "
            "'mean_after', mean_after, 'params', params) "
            f"FROM driftd.stream_alarm_history WHERE model = 'enc' AND {where} "
            "ORDER BY detected_at DESC, alarm_id DESC")
        return [json.loads(r[0]) for r in rows]

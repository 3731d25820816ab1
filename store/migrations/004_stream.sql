-- 004_stream: alarms of the streaming detectors (Page-Hinkley, ADWIN on
-- per-record signals, between windows) and the view
-- driftd.stream_alarm_history (docs/sql.md).
-- The store runs this inside one transaction; no BEGIN/COMMIT here.

-- One row per alarm recorded.  Written by the statement that also writes
-- the outbox row of its stream.alarm event (store/request.c); a replay
-- from the spill journal inserts nothing twice (id).
CREATE TABLE driftd.stream_alarms (
    id           bigint           PRIMARY KEY,  -- chosen by the daemon (random 63-bit)
    model        text             NOT NULL,
    slice        text             NOT NULL,
    detector     text             NOT NULL CHECK (detector IN ('page_hinkley', 'adwin')),
    signal       text             NOT NULL CHECK (signal IN ('score', 'error')),
    detected_at  timestamptz      NOT NULL,     -- arrival of the record (or label) that raised it
    records_seen bigint           NOT NULL CHECK (records_seen > 0), -- since the detector's last alarm or start
    statistic    double precision NOT NULL,     -- page_hinkley: cumulative deviation; adwin: |mean_after - mean_before|
    threshold    double precision,              -- page_hinkley: stream.ph.threshold; adwin: NULL
    direction    text             NOT NULL CHECK (direction IN ('up', 'down')),
    -- page_hinkley: the values before and after the estimated change point;
    -- adwin: the older part of its window dropped, and the part kept.
    n_before     bigint           NOT NULL CHECK (n_before >= 0),
    mean_before  double precision,              -- NULL when n_before = 0
    n_after      bigint           NOT NULL CHECK (n_after >= 0),
    mean_after   double precision,              -- NULL when n_after = 0
    params       jsonb            NOT NULL,     -- the detector's stream.* parameters
    recorded_at  timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX stream_alarms_slice_idx
    ON driftd.stream_alarms (model, slice, detected_at);
CREATE INDEX stream_alarms_detected_idx ON driftd.stream_alarms (detected_at);

-- One row per streaming alarm, newest last per slice.
CREATE VIEW driftd.stream_alarm_history AS
SELECT model, slice, detected_at, detector, signal, direction, statistic,
       threshold, records_seen, n_before, mean_before, n_after, mean_after,
       params, id AS alarm_id
  FROM driftd.stream_alarms;

COMMENT ON VIEW driftd.stream_alarm_history IS
    'Alarms of the streaming detectors (page_hinkley, adwin) on per-record signals (score, error), between windows.';

-- 003_slices: windows recorded without a test (insufficient_data), the
-- decision and its inputs per window, per-test effect-size floors,
-- calibration results, reference sets that can be restored (vectors or a
-- projection of them, scores, calibration baseline) and their retirement.

ALTER TABLE driftd.windows
    ALTER COLUMN reference_set_id DROP NOT NULL,  -- NULL: no test ran
    ADD COLUMN status text NOT NULL DEFAULT 'tested'
        CHECK (status IN ('tested', 'insufficient_data')),
    ADD COLUMN reference_fallback boolean NOT NULL DEFAULT false,
    ADD COLUMN drifted        boolean,            -- any test drifted
    ADD COLUMN alarm          boolean,            -- the alarm.k of alarm.m rule
    ADD COLUMN alpha          double precision,
    ADD COLUMN correction     text,
    ADD COLUMN family_size    integer,            -- windows corrected together
    ADD COLUMN alarm_k        integer,
    ADD COLUMN alarm_m        integer,
    ADD COLUMN recent_drifted integer,            -- drifted among the last alarm_m
    ADD COLUMN evaluated_at   timestamptz;        -- same for one evaluation
CREATE INDEX windows_evaluated_idx ON driftd.windows (model, evaluated_at);

ALTER TABLE driftd.test_results
    ADD COLUMN effect_floor double precision;     -- NULL: none applied

-- Projected sets keep their (projected) vectors in data as raw ones do.
ALTER TABLE driftd.reference_sets
    DROP CONSTRAINT reference_sets_check,
    ADD CHECK ((persist IN ('raw', 'projected')) = (data IS NOT NULL)),
    ADD COLUMN source text NOT NULL DEFAULT 'warmup'
        CHECK (source IN ('warmup', 'explicit')),
    ADD COLUMN k integer NOT NULL DEFAULT 0 CHECK (k >= 0),
    ADD COLUMN scores bytea,                      -- float32 LE, n rows of k
    ADD COLUMN source_dim integer,                -- projected: the model's dim
    ADD COLUMN projection_seed bigint,            -- projected: its seed
    ADD COLUMN cal_n integer,                     -- calibration baseline
    ADD COLUMN cal_ece double precision,
    ADD COLUMN cal_brier double precision;

-- A reset (all slices: slice NULL) or a slice's expiry retires the sets
-- created at or before reset_at.
CREATE TABLE driftd.reference_resets (
    model    text        NOT NULL,
    slice    text,
    reset_at timestamptz NOT NULL,
    reason   text        NOT NULL CHECK (reason IN ('reset', 'expired'))
);
CREATE UNIQUE INDEX reference_resets_key
    ON driftd.reference_resets (model, coalesce(slice, ''), reset_at);

CREATE TABLE driftd.calibration_results (
    model           text             NOT NULL,
    slice           text             NOT NULL,
    window_id       bigint           NOT NULL,
    n_labeled       integer          NOT NULL CHECK (n_labeled >= 0),
    labels_seen     bigint           NOT NULL,
    ece             double precision,            -- NULL: too few labels
    mce             double precision,
    brier           double precision,
    accuracy        double precision,
    reference_ece   double precision,            -- NULL: no baseline yet
    reference_brier double precision,
    degraded        boolean          NOT NULL,
    PRIMARY KEY (model, slice, window_id),
    FOREIGN KEY (model, slice, window_id)
        REFERENCES driftd.windows (model, slice, window_id) ON DELETE CASCADE
);

-- Public contract (DESIGN §3.3): columns, order and types stay fixed.
CREATE VIEW driftd.calibration_history AS
SELECT c.model, c.slice, c.window_id, w.window_end, c.n_labeled,
       c.ece, c.mce, c.brier, c.accuracy
  FROM driftd.calibration_results c
  JOIN driftd.windows w USING (model, slice, window_id);

-- One row per closed window: how it was decided and from what.
CREATE VIEW driftd.window_decisions AS
SELECT w.model, w.slice, w.window_id, w.window_start, w.window_end, w.n,
       w.status, w.reference_set_id, w.reference_fallback, w.drifted, w.alarm,
       w.alpha, w.correction, w.family_size, w.alarm_k, w.alarm_m,
       w.recent_drifted, w.evaluated_at,
       coalesce(array_agg(t.test ORDER BY t.test) FILTER (WHERE t.drifted),
                '{}') AS drifted_tests,
       c.degraded AS calibration_degraded
  FROM driftd.windows w
  LEFT JOIN driftd.test_results t USING (model, slice, window_id)
  LEFT JOIN driftd.calibration_results c USING (model, slice, window_id)
 GROUP BY w.model, w.slice, w.window_id, c.degraded;

-- Every reference set with its version (1, 2, ... per model and slice)
-- and when a reset or an expiry retired it.
CREATE VIEW driftd.reference_history AS
SELECT r.model, r.slice, r.id AS reference_set_id,
       row_number() OVER (PARTITION BY r.model, r.slice
                          ORDER BY r.created_at, r.id) AS version,
       r.created_at, r.n, r.dim, r.persist, r.source, r.k,
       r.cal_n, r.cal_ece, r.cal_brier,
       (SELECT min(x.reset_at) FROM driftd.reference_resets x
         WHERE x.model = r.model AND (x.slice IS NULL OR x.slice = r.slice)
           AND x.reset_at >= r.created_at) AS retired_at
  FROM driftd.reference_sets r;

COMMENT ON VIEW driftd.calibration_history IS
    'Calibration of the labeled records per window and slice (driftd public contract).';
COMMENT ON VIEW driftd.window_decisions IS
    'One row per closed window: status, decision (drifted, K-of-M alarm) and its inputs.';
COMMENT ON VIEW driftd.reference_history IS
    'Reference sets per model and slice, versioned, with their retirement.';

-- 001_init: reference sets, closed windows and their test results, the
-- per-slice resume state, and the two public views.
-- The store runs this inside one transaction and records it in
-- driftd.schema_migrations; it must not contain BEGIN/COMMIT.

CREATE TABLE driftd.reference_sets (
    id          bigint      PRIMARY KEY,   -- chosen by the daemon (random 63-bit)
    model       text        NOT NULL,
    slice       text        NOT NULL,
    n           integer     NOT NULL CHECK (n >= 0),
    dim         integer     NOT NULL CHECK (dim > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    persist     text        NOT NULL CHECK (persist IN ('raw', 'projected', 'none')),
    data        bytea,                     -- float32 little-endian, n rows of dim
    CHECK ((persist = 'raw') = (data IS NOT NULL))
);
CREATE INDEX reference_sets_slice_idx
    ON driftd.reference_sets (model, slice, created_at);

CREATE TABLE driftd.windows (
    model            text        NOT NULL,
    slice            text        NOT NULL,
    window_id        bigint      NOT NULL,
    window_start     timestamptz NOT NULL,
    window_end       timestamptz NOT NULL,
    n                integer     NOT NULL CHECK (n >= 0),
    -- No foreign key: a window must never be rejected because the metadata
    -- row of its reference set was lost or not persisted.
    reference_set_id bigint      NOT NULL,
    closed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, slice, window_id),
    CHECK (window_end >= window_start)
);
-- History of one model/slice by time, and time-range scans across models.
CREATE INDEX windows_slice_end_idx ON driftd.windows (model, slice, window_end);
CREATE INDEX windows_end_idx ON driftd.windows (window_end);

CREATE TABLE driftd.test_results (
    model        text             NOT NULL,
    slice        text             NOT NULL,
    window_id    bigint           NOT NULL,
    test         text             NOT NULL,
    statistic    double precision NOT NULL,
    p_value      double precision,          -- NULL: the test has no p-value
    threshold    double precision,          -- NULL: reported, not thresholded
    drifted      boolean          NOT NULL, -- decision after correction
    effect       double precision,          -- NULL: no effect size
    seed         bigint           NOT NULL, -- the window's seed, as a signed 64-bit pattern
    bandwidth    double precision,          -- NULL: not a kernel test
    permutations integer CHECK (permutations > 0), -- NULL: not a permutation test
    PRIMARY KEY (model, slice, window_id, test),
    FOREIGN KEY (model, slice, window_id)
        REFERENCES driftd.windows (model, slice, window_id) ON DELETE CASCADE
);

-- One row per slice ever written: the highest window_id, which the daemon
-- resumes from.  Kept apart from windows so that deleting old windows
-- (retention) can never make a window_id be handed out twice.
CREATE TABLE driftd.slices (
    model         text        NOT NULL,
    slice         text        NOT NULL,
    max_window_id bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, slice)
);

-- Public contract (docs/sql.md): columns, order and types stay fixed.
CREATE VIEW driftd.drift_history AS
SELECT w.model, w.slice, w.window_id, w.window_start, w.window_end, w.n,
       t.test, t.statistic, t.p_value, t.threshold, t.drifted
  FROM driftd.windows w
  JOIN driftd.test_results t
    ON t.model = w.model AND t.slice = w.slice AND t.window_id = w.window_id;

-- Public contract: the newest window (highest window_id) of every slice.
-- The lateral subquery is one backward primary-key probe per slice.
CREATE VIEW driftd.latest_status AS
SELECT s.model, s.slice, w.window_end,
       coalesce(bool_or(t.drifted), false) AS drifted,
       coalesce(array_agg(t.test ORDER BY t.test) FILTER (WHERE t.drifted),
                '{}') AS tests
  FROM driftd.slices s
 CROSS JOIN LATERAL (
        SELECT x.window_id, x.window_end
          FROM driftd.windows x
         WHERE x.model = s.model AND x.slice = s.slice
         ORDER BY x.window_id DESC
         LIMIT 1) w
  LEFT JOIN driftd.test_results t
    ON t.model = s.model AND t.slice = s.slice AND t.window_id = w.window_id
 GROUP BY s.model, s.slice, w.window_id, w.window_end;

COMMENT ON VIEW driftd.drift_history IS
    'One row per test per closed window per slice (driftd public contract).';
COMMENT ON VIEW driftd.latest_status IS
    'Newest window per (model, slice): drifted = any test drifted; tests = the drifted tests.';

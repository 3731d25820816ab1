-- 002_webhooks: the webhook outbox, its attempts, endpoints disabled by a
-- 410, and the public view driftd.webhook_deliveries (docs/webhooks.md).
-- The store runs this inside one transaction; no BEGIN/COMMIT here.

-- One row per event.  Rows are inserted by the statement that writes the
-- result causing them (store/request.c), so an event exists exactly when
-- its result does.  A delivering daemon claims due rows with FOR UPDATE
-- SKIP LOCKED and pushes next_attempt_at past the attempt's timeout (its
-- lease), so several daemons can share the table and a daemon that dies
-- mid-attempt leaves the row due again soon after.
CREATE TABLE driftd.webhook_outbox (
    id               text        PRIMARY KEY,  -- the webhook-id header, stable across attempts
    endpoint         text        NOT NULL,     -- [webhook.NAME]
    event            text        NOT NULL,     -- drift.detected, calibration.degraded, embedding.collapse, test
    model            text,                     -- NULL for test events
    body             text        NOT NULL,     -- the JSON sent, byte for byte (ASCII)
    status           text        NOT NULL
        CHECK (status IN ('pending', 'retrying', 'delivered', 'dead', 'suppressed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at       timestamptz NOT NULL,     -- when the event was raised
    next_attempt_at  timestamptz NOT NULL,
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    last_http_status integer,
    last_error       text
);
-- The claim: due rows in order.
CREATE INDEX webhook_outbox_due_idx ON driftd.webhook_outbox (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
-- The cooldown check: the latest sent event of an endpoint, model and type.
CREATE INDEX webhook_outbox_cooldown_idx
    ON driftd.webhook_outbox (endpoint, model, event, created_at)
    WHERE status <> 'suppressed';
CREATE INDEX webhook_outbox_created_idx ON driftd.webhook_outbox (created_at);

-- One row per delivery attempt.  Attempt numbers start again at 1 after
-- `driftctl webhooks redeliver`.
CREATE TABLE driftd.webhook_attempts (
    id           bigserial        PRIMARY KEY,
    delivery_id  text             NOT NULL
        REFERENCES driftd.webhook_outbox (id) ON DELETE CASCADE,
    attempt      integer          NOT NULL CHECK (attempt > 0),
    started_at   timestamptz      NOT NULL,
    duration_ms  double precision NOT NULL CHECK (duration_ms >= 0),
    http_status  integer,                      -- NULL: no response
    error        text,                         -- NULL: delivered
    address      text                          -- the pinned IP:port, NULL if not resolved
);
CREATE INDEX webhook_attempts_delivery_idx
    ON driftd.webhook_attempts (delivery_id, started_at);

-- Endpoints a receiver disabled with 410 Gone.  Their rows stay queued
-- until `driftctl webhooks enable NAME` clears disabled_at.
CREATE TABLE driftd.webhook_endpoints (
    name            text        PRIMARY KEY,
    url             text        NOT NULL,
    disabled_at     timestamptz,
    disabled_reason text
);

-- Public contract (docs/webhooks.md): columns, order and types stay fixed.
CREATE VIEW driftd.webhook_deliveries AS
SELECT id, event, model, endpoint, status, attempts, last_http_status,
       created_at, first_attempt_at, last_attempt_at,
       CASE WHEN status IN ('pending', 'retrying') THEN next_attempt_at END
           AS next_attempt_at,
       delivered_at, last_error
  FROM driftd.webhook_outbox
 WHERE status <> 'suppressed';

-- Events a cooldown held back: recorded, never sent.
CREATE VIEW driftd.webhook_suppressed AS
SELECT id, event, model, endpoint, created_at, body
  FROM driftd.webhook_outbox
 WHERE status = 'suppressed';

COMMENT ON VIEW driftd.webhook_deliveries IS
    'One row per webhook event sent or to be sent: pending, retrying, delivered or dead (driftd public contract).';
COMMENT ON VIEW driftd.webhook_suppressed IS
    'Webhook events held back by the endpoint''s cooldown.';

-- Deploy alerts: a durable outbox. An alert event is written in the transaction of the
-- change that causes it; the sender fans each event out to the receivers whose teams
-- match (one delivery row each) and delivers them with retries.
CREATE TABLE alert_events (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    application TEXT,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    fanned_out INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_events_pending ON alert_events (fanned_out, id);

CREATE TABLE alert_deliveries (
    id BIGSERIAL PRIMARY KEY,
    event_id BIGINT NOT NULL REFERENCES alert_events (id),
    receiver TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_status INTEGER,
    last_error TEXT,
    delivered_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
CREATE INDEX alert_deliveries_receiver ON alert_deliveries (receiver, id);
CREATE INDEX alert_deliveries_event ON alert_deliveries (event_id);

-- When a stalled manual deploy was alerted (once per deployment).
ALTER TABLE deployments ADD COLUMN stall_alerted_at BIGINT;

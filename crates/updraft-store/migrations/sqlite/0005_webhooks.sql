-- Webhooks (Standard Webhooks signing) and their durable delivery queue.

CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL = events of every app.
    app_id     TEXT    REFERENCES apps (app_id) ON DELETE CASCADE,
    url        TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    -- JSON array of event types; empty = every event.
    events     TEXT    NOT NULL DEFAULT '[]',
    enabled    BOOLEAN NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

CREATE INDEX webhooks_app_id ON webhooks (app_id);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- The `webhook-id` header: the same on every retry, so receivers can dedupe.
    message_id       TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    -- The exact body sent and signed.
    payload          TEXT    NOT NULL,
    -- pending | succeeded | failed
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- NULL once the delivery is finished.
    next_attempt_at  INTEGER,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

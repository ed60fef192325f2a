-- Release safety (SQLite): rollouts, targeting, auto-pause and ramp policies
-- on channels, native packages of bundles, channel history, the control
-- loop's decisions and its per-minute health rollups, scheduled releases and
-- the audit log. JSON columns are TEXT; NULL = the default value.

ALTER TABLE channels ADD COLUMN targeting TEXT;
-- A rollout exists when rollout_bundle_id is set; the other rollout_*
-- columns are then set too (targeting and auto_pause_triggered_at optional).
ALTER TABLE channels ADD COLUMN rollout_bundle_id INTEGER REFERENCES bundles (id);
ALTER TABLE channels ADD COLUMN rollout_percentage_bps INTEGER;
ALTER TABLE channels ADD COLUMN rollout_paused_at INTEGER;
ALTER TABLE channels ADD COLUMN rollout_id TEXT;
ALTER TABLE channels ADD COLUMN rollout_started_at INTEGER;
ALTER TABLE channels ADD COLUMN rollout_step_started_at INTEGER;
ALTER TABLE channels ADD COLUMN rollout_targeting TEXT;
ALTER TABLE channels ADD COLUMN rollout_auto_pause_triggered_at INTEGER;
ALTER TABLE channels ADD COLUMN auto_pause TEXT;
ALTER TABLE channels ADD COLUMN ramp TEXT;

CREATE INDEX channels_rollout_bundle_id ON channels (rollout_bundle_id);

-- NULL = not known (uploaded without a scan).
ALTER TABLE bundles ADD COLUMN native_packages TEXT;

-- Every change of what a channel serves; names, not ids, so entries stay
-- readable whatever happens to the bundles.
CREATE TABLE channel_history (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id                 TEXT    NOT NULL,
    channel                TEXT    NOT NULL,
    bundle                 TEXT    NOT NULL,
    rollout_bundle         TEXT,
    rollout_percentage_bps INTEGER,
    rollout_paused         BOOLEAN NOT NULL,
    at                     INTEGER NOT NULL,
    actor                  TEXT    NOT NULL,
    reason                 TEXT    NOT NULL
);

CREATE INDEX channel_history_channel ON channel_history (app_id, channel, id);

CREATE TABLE rollout_decisions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id             TEXT    NOT NULL,
    channel            TEXT    NOT NULL,
    rollout_id         TEXT    NOT NULL,
    bundle             TEXT    NOT NULL,
    at                 INTEGER NOT NULL,
    action             TEXT    NOT NULL,
    reason             TEXT    NOT NULL,
    message            TEXT    NOT NULL,
    from_bps           INTEGER NOT NULL,
    to_bps             INTEGER NOT NULL,
    attempts           INTEGER NOT NULL,
    failures           INTEGER NOT NULL,
    failure_rate       REAL,
    wilson_lower_bound REAL,
    threshold_bps      INTEGER NOT NULL
);

CREATE INDEX rollout_decisions_channel ON rollout_decisions (app_id, channel, id);

-- Installs and failures per minute of arrival (received_at / 60000), channel
-- the event was attributed to ('' = none) and bundle (version_name up to ':').
-- One upsert per key per group commit.
CREATE TABLE rollout_health (
    app_id   TEXT    NOT NULL,
    channel  TEXT    NOT NULL,
    bundle   TEXT    NOT NULL,
    minute   INTEGER NOT NULL,
    installs INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (app_id, channel, bundle, minute)
) WITHOUT ROWID;

-- For retention.
CREATE INDEX rollout_health_minute ON rollout_health (minute);

CREATE TABLE scheduled_releases (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id              TEXT    NOT NULL,
    channel             TEXT    NOT NULL,
    run_at              INTEGER NOT NULL,
    -- ScheduledAction as JSON.
    action              TEXT    NOT NULL,
    accept_incompatible BOOLEAN NOT NULL,
    status              TEXT    NOT NULL,
    created_by          TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    executed_at         INTEGER,
    result              TEXT
);

CREATE INDEX scheduled_releases_due ON scheduled_releases (status, run_at, id);
CREATE INDEX scheduled_releases_app ON scheduled_releases (app_id, run_at, id);

-- Kept when the app goes: the log must still show who deleted what.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    api_key_id   INTEGER,
    app_id       TEXT,
    action       TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    -- JSON views of the thing before and after the change.
    before_value TEXT,
    after_value  TEXT
);

CREATE INDEX audit_log_app ON audit_log (app_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- Deleting an app removes its release-safety rows (not its audit entries).
CREATE TRIGGER apps_delete_release_safety AFTER DELETE ON apps
BEGIN
    DELETE FROM channel_history WHERE app_id = old.app_id;
    DELETE FROM rollout_decisions WHERE app_id = old.app_id;
    DELETE FROM rollout_health WHERE app_id = old.app_id;
    DELETE FROM scheduled_releases WHERE app_id = old.app_id;
END;

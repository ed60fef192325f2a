-- Release analytics (SQLite): rollups kept current as stats arrive, so reports
-- never scan the raw events.

-- The channel an event was attributed to at ingest (override, else the
-- device's defaultChannel when it may use it, else the platform's public
-- channel); NULL when none applied.
ALTER TABLE stats_events ADD COLUMN channel TEXT;

-- Event counts per UTC day (of the event's own timestamp), channel ('' =
-- unknown), bundle (version_name up to ':') and action (unknown actions as
-- 'other'). One upsert per key per group commit.
CREATE TABLE stats_daily (
    app_id  TEXT    NOT NULL,
    day     TEXT    NOT NULL,
    channel TEXT    NOT NULL,
    bundle  TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    events  INTEGER NOT NULL,
    PRIMARY KEY (app_id, day, channel, bundle, action)
) WITHOUT ROWID;

-- One row per device active on a day: makes active-device counts exact (a
-- device sending 50 events counts once) and remembers which bundle it last
-- reported running that day (bundle_at = that event's time, -1 = none yet).
-- Day first so retention deletes a prefix. Pruned with the raw events
-- (default 30 days): about 60 bytes a row, so 1M daily devices × 30 days
-- ≈ 2 GB at most; the counts below are kept for good.
CREATE TABLE device_days (
    day       TEXT    NOT NULL,
    app_id    TEXT    NOT NULL,
    device_id TEXT    NOT NULL,
    channel   TEXT    NOT NULL,
    bundle    TEXT    NOT NULL,
    bundle_at INTEGER NOT NULL,
    PRIMARY KEY (day, app_id, device_id)
) WITHOUT ROWID;

-- Distinct active devices per day, channel and bundle they ran ('' = none
-- reported): adoption = devices on a bundle / all active devices of the day.
CREATE TABLE daily_devices (
    app_id  TEXT    NOT NULL,
    day     TEXT    NOT NULL,
    channel TEXT    NOT NULL,
    bundle  TEXT    NOT NULL,
    devices INTEGER NOT NULL,
    PRIMARY KEY (app_id, day, channel, bundle)
) WITHOUT ROWID;

-- Deleting an app removes its analytics too (delete_app knows the older tables).
CREATE TRIGGER apps_delete_analytics AFTER DELETE ON apps
BEGIN
    DELETE FROM stats_daily WHERE app_id = old.app_id;
    DELETE FROM daily_devices WHERE app_id = old.app_id;
    DELETE FROM device_days WHERE app_id = old.app_id;
END;

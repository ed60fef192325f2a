-- Updraft schema, version 1 (SQLite).
-- Times are INTEGER milliseconds since the Unix epoch; booleans are 0/1.

CREATE TABLE apps (
    app_id          TEXT    NOT NULL PRIMARY KEY,
    name            TEXT    NOT NULL,
    expose_metadata BOOLEAN NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL
);

-- AUTOINCREMENT so an id is never handed out twice, even after an app is deleted.
CREATE TABLE bundles (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id             TEXT    NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    name               TEXT    NOT NULL,
    checksum           TEXT,
    encrypted_checksum TEXT,
    session_key        TEXT,
    key_id             TEXT,
    external_url       TEXT,
    storage_path       TEXT,
    min_update_version TEXT,
    link               TEXT,
    comment            TEXT,
    deleted            BOOLEAN NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    deleted_at         INTEGER,
    -- Deleted bundles keep their row, so a deleted name can never be reused.
    UNIQUE (app_id, name)
);

CREATE TABLE manifest_files (
    bundle_id INTEGER NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    file_name TEXT    NOT NULL,
    file_hash TEXT    NOT NULL,
    location  TEXT    NOT NULL,
    size      INTEGER,
    PRIMARY KEY (bundle_id, position)
);

CREATE TABLE channels (
    id                               INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id                           TEXT    NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    name                             TEXT    NOT NULL,
    -- NULL = the builtin (native) bundle.
    bundle_id                        INTEGER REFERENCES bundles (id) ON DELETE SET NULL,
    public                           BOOLEAN NOT NULL DEFAULT 0,
    ios                              BOOLEAN NOT NULL DEFAULT 1,
    android                          BOOLEAN NOT NULL DEFAULT 1,
    electron                         BOOLEAN NOT NULL DEFAULT 1,
    allow_device_self_set            BOOLEAN NOT NULL DEFAULT 0,
    allow_emulator                   BOOLEAN NOT NULL DEFAULT 1,
    allow_device                     BOOLEAN NOT NULL DEFAULT 1,
    allow_dev                        BOOLEAN NOT NULL DEFAULT 1,
    allow_prod                       BOOLEAN NOT NULL DEFAULT 1,
    disable_auto_update              TEXT    NOT NULL DEFAULT 'major',
    disable_auto_update_under_native BOOLEAN NOT NULL DEFAULT 1,
    created_at                       INTEGER NOT NULL,
    updated_at                       INTEGER NOT NULL,
    UNIQUE (app_id, name)
);

CREATE INDEX channels_bundle_id ON channels (bundle_id);

CREATE TABLE device_overrides (
    app_id     TEXT    NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    device_id  TEXT    NOT NULL,
    channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    source     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, device_id)
);

CREATE INDEX device_overrides_channel_id ON device_overrides (channel_id);

-- No foreign key to apps: devices and stats are written on the hot path and
-- removed explicitly by delete_app.
CREATE TABLE devices (
    app_id               TEXT    NOT NULL,
    device_id            TEXT    NOT NULL,
    platform             TEXT    NOT NULL,
    plugin_version       TEXT,
    version_os           TEXT,
    version_build        TEXT,
    version_code         TEXT,
    version_name         TEXT,
    custom_id            TEXT,
    is_prod              BOOLEAN NOT NULL,
    is_emulator          BOOLEAN NOT NULL,
    default_channel      TEXT,
    key_id               TEXT,
    install_source       TEXT,
    last_offered_version TEXT,
    last_update_outcome  TEXT,
    first_seen           INTEGER NOT NULL,
    last_seen            INTEGER NOT NULL,
    PRIMARY KEY (app_id, device_id)
);

CREATE INDEX devices_last_seen ON devices (app_id, last_seen);

CREATE TABLE stats_events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id           TEXT    NOT NULL,
    device_id        TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    version_name     TEXT    NOT NULL,
    old_version_name TEXT,
    platform         TEXT    NOT NULL,
    plugin_version   TEXT,
    version_build    TEXT,
    is_prod          BOOLEAN NOT NULL,
    is_emulator      BOOLEAN NOT NULL,
    metadata         TEXT,
    timestamp        INTEGER NOT NULL,
    received_at      INTEGER NOT NULL
);

CREATE INDEX stats_events_app_time ON stats_events (app_id, timestamp);
CREATE INDEX stats_events_app_device_time ON stats_events (app_id, device_id, timestamp);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    key_hash   TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL,
    app_id     TEXT,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

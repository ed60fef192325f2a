-- Resumable upload sessions when the bytes go to object storage: any node
-- may receive any PATCH, so the session lives here and its bytes are part
-- objects in the bucket (`{prefix}/uploads/{part name}`), listed in
-- upload_parts in offset order. `received` is the durable offset: it only
-- advances together with the part row that holds those bytes. (An embedded
-- server keeps its sessions on disk; the table is here so the schemas match.)
CREATE TABLE upload_sessions (
    upload_id     TEXT    NOT NULL PRIMARY KEY,
    sha256        TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    received      INTEGER NOT NULL DEFAULT 0,
    complete      BOOLEAN NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    last_activity INTEGER NOT NULL
);

CREATE INDEX upload_sessions_content ON upload_sessions (sha256, size);
CREATE INDEX upload_sessions_last_activity ON upload_sessions (last_activity);

CREATE TABLE upload_parts (
    upload_id TEXT    NOT NULL REFERENCES upload_sessions (upload_id) ON DELETE CASCADE,
    start     INTEGER NOT NULL,
    len       INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    PRIMARY KEY (upload_id, start)
);

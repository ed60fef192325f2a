-- Resumable upload sessions when the bytes go to object storage: any node
-- may receive any PATCH, so the session lives here and its bytes are part
-- objects in the bucket (`{prefix}/uploads/{part name}`), listed in
-- upload_parts in offset order. `received` is the durable offset: it only
-- advances together with the part row that holds those bytes.
CREATE TABLE upload_sessions (
    upload_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    sha256        TEXT COLLATE "C" NOT NULL,
    size          BIGINT  NOT NULL,
    received      BIGINT  NOT NULL DEFAULT 0,
    complete      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    last_activity BIGINT  NOT NULL
);

-- Find-or-create looks sessions up by content; gc by age.
CREATE INDEX upload_sessions_content ON upload_sessions (sha256, size);
CREATE INDEX upload_sessions_last_activity ON upload_sessions (last_activity);

CREATE TABLE upload_parts (
    upload_id TEXT COLLATE "C" NOT NULL REFERENCES upload_sessions (upload_id) ON DELETE CASCADE,
    start     BIGINT NOT NULL,
    len       BIGINT NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (upload_id, start)
);

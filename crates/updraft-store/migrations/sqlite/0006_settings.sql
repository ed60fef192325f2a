-- Installation-wide values every node must share (e.g. the URL-signing key).
CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

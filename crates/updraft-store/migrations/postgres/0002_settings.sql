-- Installation-wide values every node must share (e.g. the URL-signing key).
CREATE TABLE settings (
    name TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

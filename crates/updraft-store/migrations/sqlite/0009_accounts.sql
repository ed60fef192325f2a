-- Console accounts (issue 16): people who sign in with an email and a
-- password, with the API keys' roles and an optional app scope.
CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Normalised (trimmed, lower case) by the server: unique whatever the case.
    email               TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- argon2id PHC string.
    password_hash       TEXT    NOT NULL,
    role                TEXT    NOT NULL,
    -- JSON array of app ids; NULL = every app.
    apps                TEXT,
    disabled            BOOLEAN NOT NULL DEFAULT 0,
    -- Base32 TOTP secret once confirmed; the one being enrolled until then.
    totp_secret         TEXT,
    totp_pending_secret TEXT,
    -- The last TOTP step accepted: a code is good once.
    totp_last_step      INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
);

-- SHA-256 of each unused recovery code; a used one is deleted.
CREATE TABLE user_recovery_codes (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- Signed-in browsers. Only the SHA-256 of the cookie's token is stored.
CREATE TABLE sessions (
    token_hash   TEXT    PRIMARY KEY NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sent back in X-CSRF-Token on every state-changing request.
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    -- The absolute end (the idle timeout counts from last_seen_at).
    expires_at   INTEGER NOT NULL
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

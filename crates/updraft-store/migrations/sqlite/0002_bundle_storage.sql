-- Bundles stored by Updraft itself: blob references (content-addressed by
-- SHA-256) so gc can tell what is still used, and download totals.
ALTER TABLE bundles ADD COLUMN zip_sha256 TEXT;
ALTER TABLE bundles ADD COLUMN size INTEGER;
ALTER TABLE manifest_files ADD COLUMN blob_sha256 TEXT;

CREATE INDEX bundles_zip_sha256 ON bundles (zip_sha256) WHERE zip_sha256 IS NOT NULL;
CREATE INDEX manifest_files_blob_sha256 ON manifest_files (blob_sha256) WHERE blob_sha256 IS NOT NULL;

-- Requests and bytes served per bundle and UTC day; flushed from memory every few seconds.
CREATE TABLE bundle_downloads (
    app_id    TEXT    NOT NULL,
    bundle_id INTEGER NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
    day       TEXT    NOT NULL,
    requests  INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, bundle_id, day)
);

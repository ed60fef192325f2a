-- When each group of a device row's fields was observed, so that a sighting
-- written late (an update check flushed from a node's registry buffer after
-- a stats commit, another node's flush) does not overwrite newer values.
-- Order keys, not plain times: 2 x the server-clock millisecond, + 1 for a
-- stats event (DeviceSighting::observed); 0 = never observed.
--   facts_at                 platform, plugin_version, version_os, version_build,
--                            version_code, custom_id, is_prod, is_emulator,
--                            default_channel, key_id, install_source
--   version_name_at          version_name (update checks; stats naming the running bundle)
--   last_offered_version_at  last_offered_version (update checks that offered a bundle)
--   last_update_outcome_at   last_update_outcome (update checks)
-- Rows written before this migration count as observed at last_seen.
ALTER TABLE devices
    ADD COLUMN facts_at                BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN version_name_at         BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_offered_version_at BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_update_outcome_at  BIGINT NOT NULL DEFAULT 0;

UPDATE devices SET
    facts_at = last_seen * 2,
    version_name_at = CASE WHEN version_name IS NULL THEN 0 ELSE last_seen * 2 END,
    last_offered_version_at = CASE WHEN last_offered_version IS NULL THEN 0 ELSE last_seen * 2 END,
    last_update_outcome_at = CASE WHEN last_update_outcome IS NULL THEN 0 ELSE last_seen * 2 END;

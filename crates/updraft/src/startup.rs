//! Checks before serving: refuse to start, in plain words, on a data
//! directory that cannot work (read-only, or bundle files without their
//! database) rather than fail later on the first write or serve an empty
//! installation over real data.

use anyhow::bail;
use std::path::Path;

/// The data directory takes a new file (and gives it back).
pub fn check_writable(data_dir: &Path) -> anyhow::Result<()> {
    let probe = data_dir.join(format!(".updraft-write-check-{}", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"ok"));
    let _ = std::fs::remove_file(&probe);
    if let Err(err) = result {
        bail!(
            "the data directory {} is not writable ({err}). Updraft keeps its database and \
             bundle files there: mount it read-write or fix its owner/permissions (or point \
             UPDRAFT_DATA_DIR elsewhere), then start again",
            data_dir.display()
        );
    }
    Ok(())
}

/// What is wrong with the SQLite file next to bundle files, if anything.
#[derive(Debug, PartialEq, Eq)]
pub enum DatabaseState {
    Missing,
    Empty,
    Present,
}

pub fn database_state(db_file: &Path) -> DatabaseState {
    match std::fs::metadata(db_file) {
        Err(_) => DatabaseState::Missing,
        Ok(meta) if meta.len() == 0 => DatabaseState::Empty,
        Ok(_) => DatabaseState::Present,
    }
}

/// Whether `dir` holds any file (at any depth).
fn holds_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| match entry.file_type() {
        Ok(kind) if kind.is_dir() => holds_files(&entry.path()),
        Ok(_) => true,
        Err(_) => false,
    })
}

/// Bundle files under `blobs_dir` with no (or a zero-length) database: the
/// database was lost or moved, and starting would create an empty one and
/// hide every release.
pub fn check_database_beside_blobs(db_file: &Path, blobs_dir: &Path) -> anyhow::Result<()> {
    let state = database_state(db_file);
    if state == DatabaseState::Present || !holds_files(blobs_dir) {
        return Ok(());
    }
    let what = match state {
        DatabaseState::Missing => "there is no database",
        _ => "the database is empty (0 bytes)",
    };
    bail!(
        "found bundle files in {} but {what} at {}: the database was lost, moved or \
         truncated. Stop here and restore updraft.db from a backup into {}; to start an \
         empty installation instead, move {} away first",
        blobs_dir.display(),
        db_file.display(),
        db_file.parent().unwrap_or(db_file).display(),
        blobs_dir.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_without_a_database_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("updraft.db");
        let blobs = dir.path().join("blobs");
        check_database_beside_blobs(&db, &blobs).unwrap();
        std::fs::create_dir_all(blobs.join("ab")).unwrap();
        check_database_beside_blobs(&db, &blobs).unwrap();
        std::fs::write(blobs.join("ab").join("abcd"), b"zip").unwrap();
        let err = check_database_beside_blobs(&db, &blobs).unwrap_err();
        assert!(err.to_string().contains("no database"), "{err}");
        std::fs::write(&db, b"").unwrap();
        let err = check_database_beside_blobs(&db, &blobs).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        std::fs::write(&db, b"SQLite format 3\0").unwrap();
        check_database_beside_blobs(&db, &blobs).unwrap();
    }

    #[test]
    fn a_writable_directory_passes() {
        let dir = tempfile::tempdir().unwrap();
        check_writable(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(check_writable(&dir.path().join("missing")).is_err());
    }
}

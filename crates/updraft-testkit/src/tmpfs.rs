//! A small tmpfs, for tests of what happens when the disk is full.
//!
//! Mounting needs root (`.ci/run` runs as root); elsewhere `Tmpfs::mount`
//! says why it cannot and the caller skips with that message. The file
//! system is unmounted when the value is dropped, also when the test panics.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_mib` MiB on a fresh directory under the
    /// system temp dir.
    pub fn mount(size_mib: u64) -> Result<Tmpfs, String> {
        let dir = std::env::temp_dir().join(format!("updraft-tmpfs-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Ok(Tmpfs { dir }),
            Ok(out) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!(
                    "mount -t tmpfs failed (needs root; .ci/run runs as root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(err) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!("cannot run mount: {err}"))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Remounts read-only (or back read-write).
    pub fn set_read_only(&self, read_only: bool) -> Result<(), String> {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let out = Command::new("mount")
            .args(["-o", mode])
            .arg(&self.dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Fills the file system with `name` until a write fails; returns its size.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let Ok(mut file) = std::fs::File::create(self.dir.join(name)) else {
            return 0;
        };
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        let _ = file.sync_all();
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so that a file a dying server still holds does not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

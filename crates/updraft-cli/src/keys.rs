//! `updraft key create`: the end-to-end encryption key pair, in the files and
//! format the Capgo CLI uses, so either tool can use the other's keys.

use crate::error::{CliError, LocalCode};
use crate::output::Outcome;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use updraft_bundle::crypto;

pub const PRIVATE_KEY_FILE: &str = ".capgo_key_v2";
pub const PUBLIC_KEY_FILE: &str = ".capgo_key_v2.pub";

pub fn create_key_pair(dir: &Path, force: bool) -> Result<Outcome, CliError> {
    let private_path = dir.join(PRIVATE_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    if !force {
        for path in [&private_path, &public_path] {
            if path.exists() {
                return Err(CliError::new(
                    LocalCode::KeyExists,
                    format!(
                        "{} exists already; pass --force to replace it (apps that hold the old public key \
                         can no longer install bundles encrypted with the new one)",
                        path.display()
                    ),
                ));
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, &e))?;
    let (private, public) = crypto::generate_key_pair()?;
    let private_pem = private.to_pem()?;
    let public_pem = public.to_pem()?;
    write_private(&private_path, &private_pem)?;
    std::fs::write(&public_path, &public_pem).map_err(|e| write_error(&public_path, &e))?;

    let key_id = crypto::key_id(&public_pem);
    let snippet = json!({"plugins": {"CapacitorUpdater": {"publicKey": public_pem.trim_end()}}});
    let snippet_text = serde_json::to_string_pretty(&snippet).unwrap_or_default();
    let text = format!(
        "Wrote {} (private: keep it secret, use it with `updraft bundle upload --key-v2 {}`)\n\
         Wrote {} (public, key id {key_id})\n\
         Add the public key to capacitor.config.json:\n{snippet_text}",
        private_path.display(),
        private_path.display(),
        public_path.display(),
    );
    Ok(Outcome::new(
        json!({
            "private_key_path": private_path.display().to_string(),
            "public_key_path": public_path.display().to_string(),
            "key_id": key_id,
            "public_key": public_pem,
            "capacitor_config": snippet,
        }),
        text,
    ))
}

/// The private key is readable by its owner only.
fn write_private(path: &Path, pem: &str) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| write_error(path, &e))?;
    // `mode` only applies to a new file: an overwritten one (--force) is
    // tightened before the key is written into it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| write_error(path, &e))?;
    }
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| write_error(path, &e))
}

fn write_error(path: &Path, error: &std::io::Error) -> CliError {
    CliError::new(
        LocalCode::IoError,
        format!("cannot write {}: {error}", path.display()),
    )
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_private_key_is_owner_only_even_when_replacing_a_wider_file() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join(PRIVATE_KEY_FILE);
        std::fs::write(&private, "old").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_key_pair(dir.path(), true).unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let fresh = tempfile::tempdir().unwrap();
        create_key_pair(fresh.path(), false).unwrap();
        let mode = std::fs::metadata(fresh.path().join(PRIVATE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}

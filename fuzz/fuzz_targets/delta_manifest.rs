//! Delta (manifest) files: the entry-name rules applied to every manifest
//! `file_name`, and `decode_delta_file` (AES-CBC, then Brotli for `.br`) on
//! served bytes, as a device does. Input: a flag byte (bit 0: encrypted with
//! a fixed session key), a file name, a NUL, then the served content.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updraft_bundle::crypto::SessionKey;
use updraft_bundle::names::normalize_entry_name;
use updraft_bundle::{check_entry_name, decode_delta_file};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (name, served) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    if let Ok(normal) = normalize_entry_name(name) {
        // The canonical form is itself accepted and canonical, and never climbs out.
        if !normal.is_empty() {
            assert_eq!(
                normalize_entry_name(&normal).ok().as_deref(),
                Some(normal.as_str())
            );
        }
        assert!(!normal.split('/').any(|part| part == ".." || part == "."));
        assert!(!normal.starts_with('/'));
    }
    let session = SessionKey::from_parts([7; 16], [9; 16]);
    let encrypted = flags & 1 == 1;
    // Bound the Brotli output the fuzzer can ask for: a device has the same
    // problem, but the decoder's behaviour is what is under test here.
    if served.len() > 16 * 1024 {
        return;
    }
    if let Ok((on_disk, _content)) = decode_delta_file(name, served, encrypted.then_some(&session))
    {
        assert!(check_entry_name(&on_disk).is_ok());
        assert!(!on_disk.ends_with(".br") || !name.ends_with(".br") || name.ends_with(".br.br"));
    }
});

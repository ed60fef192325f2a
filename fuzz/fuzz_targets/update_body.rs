//! `POST /updates` (and `/updates/manifest_size`): raw body bytes through the
//! handler's typed parser (`parse_update_bytes`), checked against the
//! `Value`-based parser it replaced (`legacy_oracle`) on every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updraft_core::request::{legacy_oracle, parse_json, parse_update_bytes, parse_update_request};

fuzz_target!(|data: &[u8]| {
    let typed = parse_update_bytes(data);
    let legacy = parse_json(data).and_then(|body| legacy_oracle::parse_update_request(&body));
    assert_eq!(typed, legacy);
    if let Ok(body) = parse_json(data) {
        assert_eq!(parse_update_request(&body), legacy);
    }
    match typed {
        Ok(req) => {
            // What the decision relies on: a lower-cased device id, an app id.
            assert_eq!(req.device_id, req.device_id.to_lowercase());
            assert!(!req.app_id.is_empty());
            assert!(!req.version_name.is_empty());
        }
        Err(err) => {
            assert!((200..500).contains(&err.status), "status {}", err.status);
            assert!(!err.code.as_str().is_empty());
        }
    }
});

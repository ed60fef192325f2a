//! `POST /updates` (and `/updates/manifest_size`): raw body bytes through the
//! same two steps as the handler, `parse_json` then `parse_update_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updraft_core::request::{parse_json, parse_update_request};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = parse_json(data) else {
        return;
    };
    match parse_update_request(&body) {
        Ok(req) => {
            // What the decision relies on: a lower-cased device id, an app id.
            assert_eq!(req.device_id, req.device_id.to_lowercase());
            assert!(!req.app_id.is_empty());
            assert!(!req.version_name.is_empty());
            // The same body always parses the same way.
            assert_eq!(parse_update_request(&body).as_ref(), Ok(&req));
        }
        Err(err) => {
            assert!((200..500).contains(&err.status), "status {}", err.status);
            assert!(!err.code.as_str().is_empty());
        }
    }
});

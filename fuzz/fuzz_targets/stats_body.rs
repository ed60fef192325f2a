//! `POST /stats`: the handler's one-pass typed reader (`parse_stats_bytes`)
//! against the `Value`-based parser (`parse_json` + `parse_stats_body`); both
//! must give the same batch or the same refusal for every body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updraft_core::request::parse_json;
use updraft_core::stats::{parse_stats_body, parse_stats_bytes, stats_answer};

/// 2026-01-01T00:00:00Z, the seed bodies' timestamps.
const NOW: i64 = 1_767_225_600_000;

fuzz_target!(|data: &[u8]| {
    let typed = parse_stats_bytes(data, NOW.into());
    let via_value = parse_json(data).and_then(|body| parse_stats_body(&body, NOW.into()));
    assert_eq!(typed, via_value, "typed and Value parsers disagree");
    match &typed {
        Ok(batch) => {
            // Answering never panics, whatever was accepted or refused.
            let (status, _) = stats_answer(batch);
            assert!((200..500).contains(&status), "status {status}");
            if !batch.is_batch {
                assert_eq!(batch.items.len(), 1);
            }
        }
        Err(err) => assert!((400..500).contains(&err.status), "status {}", err.status),
    }
});

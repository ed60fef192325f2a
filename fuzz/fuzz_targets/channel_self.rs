//! `/channel_self`: the first byte picks the route, the rest is its input.
//! GET and DELETE decode a query string exactly as axum's `Query` does
//! (`serde_urlencoded` into ordered pairs); POST and PUT take a JSON body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updraft_core::request::{
    legacy_oracle, parse_channel_list_query, parse_channel_self_bytes,
    parse_channel_self_request, parse_json, query_to_body, ChannelSelfMethod,
};

fn query_pairs(data: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(data).ok()?;
    serde_urlencoded::from_str(text).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else {
        return;
    };
    match route % 4 {
        0 => {
            let Some(pairs) = query_pairs(rest) else {
                return;
            };
            if let Ok(query) = parse_channel_list_query(&pairs) {
                assert!(!query.app_id.is_empty());
            }
        }
        1 => {
            let Some(pairs) = query_pairs(rest) else {
                return;
            };
            let body = query_to_body(&pairs);
            let method = ChannelSelfMethod::Unset;
            assert_eq!(
                parse_channel_self_request(&body, method),
                legacy_oracle::parse_channel_self_request(&body, method)
            );
            if let Ok(req) = parse_channel_self_request(&body, method) {
                assert_eq!(req.device_id, req.device_id.to_lowercase());
            }
        }
        method => {
            let method = if method == 2 {
                ChannelSelfMethod::Set
            } else {
                ChannelSelfMethod::Get
            };
            // The handler's typed parser against the `Value`-based one.
            let typed = parse_channel_self_bytes(rest, method);
            let legacy = parse_json(rest)
                .and_then(|body| legacy_oracle::parse_channel_self_request(&body, method));
            assert_eq!(typed, legacy);
            if let Ok(req) = typed {
                assert_eq!(req.device_id, req.device_id.to_lowercase());
                assert!(!req.app_id.is_empty());
            }
        }
    }
});

//! Epoch milliseconds ↔ text, without a date library.

pub use updraft_core::analytics::{parse_rfc3339, rfc3339, MILLIS_PER_DAY};
use updraft_core::model::Millis;

pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
        .unwrap_or(0)
}

/// A time for a table cell: `2024-05-01 12:30` (UTC). Accepts the API's RFC 3339 text.
pub fn short_time(rfc3339_text: &str) -> String {
    let bytes = rfc3339_text.as_bytes();
    let looks_like_rfc3339 =
        bytes.len() >= 16 && bytes[4] == b'-' && bytes[10] == b'T' && bytes[13] == b':';
    match (rfc3339_text.get(..10), rfc3339_text.get(11..16)) {
        (Some(date), Some(time)) if looks_like_rfc3339 => format!("{date} {time}"),
        _ => rfc3339_text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.999Z: a leap day, checked against `date -u -d @1709251199`.
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(1_714_566_605_042), "2024-05-01T12:30:05.042Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn short_time_trims_rfc3339_and_keeps_other_text() {
        assert_eq!(short_time("2024-05-01T12:30:05.042Z"), "2024-05-01 12:30");
        assert_eq!(short_time("yesterday"), "yesterday");
    }
}

//! Epoch milliseconds ↔ text, without a date library.

use updraft_core::model::Millis;

pub const MILLIS_PER_DAY: Millis = 86_400_000;

pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
        .unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds, e.g. `2024-05-01T12:30:05.042Z`, as the API prints times.
pub fn rfc3339(millis: Millis) -> String {
    let days = millis.div_euclid(MILLIS_PER_DAY);
    let in_day = millis.rem_euclid(MILLIS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hours, minutes) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (seconds, ms) = (in_day / 1000 % 60, in_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{ms:03}Z")
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

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

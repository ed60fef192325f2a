//! Shape checks for identifiers, shared by the device and management APIs.

/// Reverse-domain app id: `/^[a-z0-9]+(\.[\w-]+)+$/i` (at least one dot).
pub fn is_valid_app_id(app_id: &str) -> bool {
    let mut parts = app_id.split('.');
    let first_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    let mut rest = 0;
    let rest_ok = parts.all(|p| {
        rest += 1;
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    first_ok && rest_ok && rest > 0
}

/// 8-4-4-4-12 hex digits, any case.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Lowercase hex of exactly `len` characters (input may be any case).
pub fn normalize_hex(s: &str, len: usize) -> Option<String> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_must_be_reverse_domain() {
        for ok in [
            "com.example.app",
            "io.ionic.starter",
            "com.my-co.app_2",
            "A1.b",
        ] {
            assert!(is_valid_app_id(ok), "{ok}");
        }
        for bad in [
            "",
            "example",
            "com.",
            ".com",
            "com..app",
            "com.ex ample",
            "co-m.app",
            "com.app/x",
        ] {
            assert!(!is_valid_app_id(bad), "{bad}");
        }
    }

    #[test]
    fn uuids_are_8_4_4_4_12_hex() {
        assert!(is_uuid("6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11"));
        assert!(is_uuid("6E2C0C9A-3F5B-4C8E-9A43-1F0F4B2D7C11"));
        for bad in [
            "",
            "6e2c0c9a3f5b4c8e9a431f0f4b2d7c11",
            "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c1",
            "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c1g",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }

    #[test]
    fn hex_is_lowercased_and_length_checked() {
        assert_eq!(normalize_hex("ABcd", 4).as_deref(), Some("abcd"));
        assert_eq!(normalize_hex("abc", 4), None);
        assert_eq!(normalize_hex("abcg", 4), None);
    }
}

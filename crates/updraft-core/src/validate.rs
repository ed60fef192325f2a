//! Shape checks for identifiers, shared by the device and management APIs.

/// Longest app id accepted (Android package names stop at 255).
pub const MAX_APP_ID_CHARS: usize = 255;

/// Reverse-domain app id: `/^[a-z0-9]+(\.[\w-]+)+$/i` (at least one dot),
/// at most [`MAX_APP_ID_CHARS`] long.
pub fn is_valid_app_id(app_id: &str) -> bool {
    if app_id.len() > MAX_APP_ID_CHARS {
        return false;
    }
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
    fn reverse_domain_matches_the_reference_pattern() {
        let cases = [
            ("com.example.app", true),
            ("COM.Example.App", true),
            ("io.ionic.starter", true),
            ("com.my_company.my-app", true),
            ("a1.b", true),
            ("com", false),
            ("", false),
            ("com.", false),
            (".com.app", false),
            ("com..app", false),
            ("my-company.app", false),
            ("com.exa mple", false),
            ("com.exämple", false),
            ("com/app.x", false),
            (&format!("com.{}", "a".repeat(252)), false),
            (&format!("com.{}", "a".repeat(251)), true),
        ];
        for (app_id, expected) in cases {
            assert_eq!(is_valid_app_id(app_id), expected, "{app_id:?}");
        }
    }

    #[test]
    fn uuid_shape_is_8_4_4_4_12_hex() {
        let cases = [
            ("6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11", true),
            ("6E2C0C9A-3F5B-4C8E-9A43-1F0F4B2D7C11", true),
            ("00000000-0000-0000-0000-000000000000", true),
            ("6e2c0c9a3f5b4c8e9a431f0f4b2d7c11", false),
            ("6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c1", false),
            ("6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c111", false),
            ("6e2c0c9g-3f5b-4c8e-9a43-1f0f4b2d7c11", false),
            ("6e2c0c9a-3f5b-4c8e-9a43_1f0f4b2d7c11", false),
            ("", false),
        ];
        for (id, expected) in cases {
            assert_eq!(is_uuid(id), expected, "{id:?}");
        }
    }

    #[test]
    fn hex_is_lowercased_and_length_checked() {
        assert_eq!(normalize_hex("ABcd", 4).as_deref(), Some("abcd"));
        assert_eq!(normalize_hex("abc", 4), None);
        assert_eq!(normalize_hex("abcg", 4), None);
    }
}

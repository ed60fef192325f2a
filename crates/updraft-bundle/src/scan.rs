//! Detects whether the web code calls `notifyAppReady`: without that call the
//! plugin rolls the update back after `appReadyTimeout`.

const NEEDLE: &[u8] = b"notifyAppReady";

/// True when the bytes contain `notifyAppReady`.
pub fn mentions_notify_app_ready(bytes: &[u8]) -> bool {
    bytes.windows(NEEDLE.len()).any(|window| window == NEEDLE)
}

/// Whether a file name is one whose content is scanned (`.js`, `.mjs`, `.html`).
pub fn is_scanned_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".js") || lower.ends_with(".mjs") || lower.ends_with(".html")
}

/// Streaming form of [`mentions_notify_app_ready`]: feed chunks in order; a match that
/// straddles two chunks is still found.
#[derive(Debug, Default, Clone)]
pub struct NotifyScanner {
    carry: Vec<u8>,
    found: bool,
}

impl NotifyScanner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.found || chunk.is_empty() {
            return;
        }
        let keep = NEEDLE.len() - 1;
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(&chunk[..chunk.len().min(keep)]);
        if mentions_notify_app_ready(&joined) || mentions_notify_app_ready(chunk) {
            self.found = true;
            return;
        }
        // Keep the last bytes seen so a match across the next boundary is found.
        let tail_source: &[u8] = if chunk.len() >= keep { chunk } else { &joined };
        self.carry = tail_source[tail_source.len().saturating_sub(keep)..].to_vec();
    }

    pub fn found(&self) -> bool {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_call_in_one_slice() {
        assert!(mentions_notify_app_ready(
            b"CapacitorUpdater.notifyAppReady()"
        ));
        assert!(!mentions_notify_app_ready(
            b"CapacitorUpdater.notifyAppready()"
        ));
    }

    #[test]
    fn scanner_finds_a_match_split_across_chunks() {
        let text = b"xx CapacitorUpdater.notifyAppReady(); yy";
        for split in 0..text.len() {
            let mut scanner = NotifyScanner::new();
            scanner.feed(&text[..split]);
            scanner.feed(&text[split..]);
            assert!(scanner.found(), "split at {split}");
        }
        // One byte at a time exercises the short-chunk carry path.
        let mut scanner = NotifyScanner::new();
        for byte in text {
            scanner.feed(std::slice::from_ref(byte));
        }
        assert!(scanner.found());
        let mut scanner = NotifyScanner::new();
        for byte in b"notifyAppRead notifyAppReadx" {
            scanner.feed(std::slice::from_ref(byte));
        }
        assert!(!scanner.found());
    }

    #[test]
    fn scanned_extensions() {
        assert!(is_scanned_file("assets/index-abc.js"));
        assert!(is_scanned_file("a.MJS"));
        assert!(is_scanned_file("index.html"));
        assert!(!is_scanned_file("style.css"));
        assert!(!is_scanned_file("app.js.map"));
    }
}

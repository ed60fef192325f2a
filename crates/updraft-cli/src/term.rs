//! What the terminal the CLI prints to allows: the width tables fit in and
//! whether colour may be used. Decided once per run ([`init`]) from the
//! streams, `--wide`, `--json` and `NO_COLOR`; the decisions themselves are
//! pure functions, tested without a terminal.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// The width tables fit in when the terminal's size cannot be read.
pub const FALLBACK_WIDTH: usize = 80;

/// How this run prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// Tables are fitted into this many columns; `None`: every column, full
    /// values (`--wide`, or stdout is not a terminal: scripts get everything).
    pub width: Option<usize>,
    /// Colour on stdout (table headers).
    pub stdout_color: bool,
    /// Colour on stderr (the `error:` prefix); none with `--json` either,
    /// whose reader may take stderr along.
    pub stderr_color: bool,
}

impl Style {
    /// No fitting, no colour: what a script or a test gets.
    pub const PLAIN: Style = Style {
        width: None,
        stdout_color: false,
        stderr_color: false,
    };
}

static STYLE: OnceLock<Style> = OnceLock::new();

/// Decides this run's style from the real streams and environment. Only the
/// first call counts.
pub fn init(json: bool, wide: bool) {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let no_color = std::env::var_os("NO_COLOR");
    let no_color = no_color.as_deref();
    let size = terminal_size::terminal_size_of(&stdout).map(|(w, _)| usize::from(w.0));
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let style = Style {
        width: table_width(stdout.is_terminal(), wide, json, size, columns),
        stdout_color: color_allowed(stdout.is_terminal(), no_color, json),
        stderr_color: color_allowed(stderr.is_terminal(), no_color, json),
    };
    let _ = STYLE.set(style);
}

/// This run's style ([`Style::PLAIN`] before [`init`]).
pub fn current() -> Style {
    STYLE.get().copied().unwrap_or(Style::PLAIN)
}

/// Colour only on a terminal, never with `NO_COLOR` set to anything but the
/// empty string (<https://no-color.org>), never in JSON output.
pub fn color_allowed(is_terminal: bool, no_color: Option<&OsStr>, json: bool) -> bool {
    is_terminal && !json && no_color.is_none_or(OsStr::is_empty)
}

/// The width tables fit in: an exported `COLUMNS` (shells do not export
/// theirs, so one in the environment was set on purpose, e.g. `COLUMNS=80
/// updraft channel list | less`), else the terminal's (80 when it does not
/// say); none (full values) with `--wide`, `--json`, or when stdout is not a
/// terminal and `COLUMNS` is not set: scripts get everything.
pub fn table_width(
    is_terminal: bool,
    wide: bool,
    json: bool,
    terminal_width: Option<usize>,
    columns_env: Option<usize>,
) -> Option<usize> {
    if wide || json {
        return None;
    }
    if let Some(columns) = columns_env.filter(|w| *w > 0) {
        return Some(columns);
    }
    if !is_terminal {
        return None;
    }
    Some(terminal_width.filter(|w| *w > 0).unwrap_or(FALLBACK_WIDTH))
}

/// `text` in bold when `color`.
pub fn bold(text: &str, color: bool) -> String {
    if color {
        format!("\x1b[1m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `text` in bold red when `color`.
pub fn red(text: &str, color: bool) -> String {
    if color {
        format!("\x1b[1;31m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(color_allowed(true, None, false));
        let set = |v: &'static str| Some(OsStr::new(v));
        assert!(color_allowed(true, set(""), false));
        assert!(!color_allowed(true, set("1"), false));
        assert!(!color_allowed(true, set("0"), false), "any non-empty value");
        assert!(!color_allowed(false, None, false));
        assert!(!color_allowed(true, None, true), "never in --json");
    }

    #[test]
    fn tables_fit_the_terminal_unless_wide_or_piped() {
        assert_eq!(table_width(true, false, false, Some(80), None), Some(80));
        assert_eq!(table_width(true, false, false, Some(132), None), Some(132));
        assert_eq!(table_width(true, false, false, None, None), Some(80));
        assert_eq!(table_width(true, false, false, Some(0), None), Some(80));
        assert_eq!(table_width(true, true, false, Some(80), None), None);
        assert_eq!(table_width(false, false, false, Some(80), None), None);
        assert_eq!(table_width(true, false, true, Some(80), None), None);
    }

    #[test]
    fn an_exported_columns_is_the_width_even_when_piped() {
        assert_eq!(table_width(false, false, false, None, Some(80)), Some(80));
        assert_eq!(
            table_width(true, false, false, Some(200), Some(80)),
            Some(80)
        );
        assert_eq!(table_width(false, false, false, None, Some(0)), None);
        assert_eq!(
            table_width(false, true, false, None, Some(80)),
            None,
            "--wide wins"
        );
        assert_eq!(
            table_width(false, false, true, None, Some(80)),
            None,
            "--json wins"
        );
    }

    #[test]
    fn escapes_only_with_colour() {
        assert_eq!(bold("A", false), "A");
        assert_eq!(bold("A", true), "\x1b[1mA\x1b[0m");
        assert_eq!(red("error:", false), "error:");
    }
}

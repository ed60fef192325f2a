//! Plain aligned text tables for terminal output.
//!
//! On a terminal a table fits its width ([`crate::term`]): the columns marked
//! [`Table::wide_only`] are left out first, then the widest cells are
//! shortened in the middle (`6e2c0c9a…4b2d7c11`, `https://cdn.…/1.0.1.zip`),
//! which keeps both ends of hashes, ids and URLs. `--wide`, or output that is
//! not a terminal, gets every column with full values.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// What marks a shortened cell.
const ELLIPSIS: char = '…';
/// Two spaces between columns.
const GAP: usize = 2;
/// Cells are shortened to this width before any is shortened further.
const READABLE: usize = 16;

/// Columns are separated by two spaces and padded to the widest cell;
/// trailing spaces are trimmed.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    wide_only: Vec<bool>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            wide_only: vec![false; headers.len()],
        }
    }

    /// Columns (by header) left out when the table has to fit a terminal.
    pub fn wide_only(mut self, headers: &[&str]) -> Self {
        for (flag, header) in self.wide_only.iter_mut().zip(&self.headers) {
            *flag = headers.contains(&header.as_str());
        }
        self
    }

    /// Missing cells render empty; extra cells are dropped.
    pub fn push_row(&mut self, cells: Vec<String>) {
        let mut row: Vec<String> = cells.into_iter().map(|c| sanitize_cell(&c)).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table without a trailing newline, as this run prints it
    /// ([`crate::term::current`]: fitted on a terminal, headers in bold with colour).
    pub fn render(&self) -> String {
        let style = crate::term::current();
        self.render_styled(style.width, style.stdout_color)
    }

    /// The table fitted into `width` display columns (`None`: all of it).
    pub fn render_width(&self, width: Option<usize>) -> String {
        self.render_styled(width, false)
    }

    fn render_styled(&self, width: Option<usize>, bold_headers: bool) -> String {
        let natural = |column: usize| {
            std::iter::once(&self.headers)
                .chain(&self.rows)
                .map(|row| row[column].width())
                .max()
                .unwrap_or(0)
        };
        let mut columns: Vec<usize> = (0..self.headers.len()).collect();
        let mut widths: Vec<usize> = columns.iter().map(|&c| natural(c)).collect();
        let total =
            |widths: &[usize]| widths.iter().sum::<usize>() + GAP * widths.len().saturating_sub(1);
        if let Some(limit) = width {
            if total(&widths) > limit {
                // Leave out the wide-only columns, then shorten the widest
                // cells, never below their header.
                let keep: Vec<usize> = columns
                    .iter()
                    .copied()
                    .filter(|&c| !self.wide_only[c])
                    .collect();
                widths = keep.iter().map(|&c| natural(c)).collect();
                columns = keep;
                // First down to a readable width (a time, a short version
                // stay whole), then, if that is not enough, to the header's.
                let header: Vec<usize> = columns
                    .iter()
                    .map(|&c| self.headers[c].width().max(1))
                    .collect();
                let readable: Vec<usize> = widths
                    .iter()
                    .zip(&header)
                    .map(|(&natural, &header)| natural.min(header.max(READABLE)))
                    .collect();
                // Below the readable width, the columns with the longest
                // text give way first: a long error message, not a time.
                let natural = widths.clone();
                for (minimum, by_natural) in [(&readable, false), (&header, true)] {
                    while total(&widths) > limit {
                        let widest = (0..widths.len())
                            .filter(|&i| widths[i] > minimum[i])
                            .max_by_key(|&i| {
                                let first = if by_natural { natural[i] } else { widths[i] };
                                (first, widths[i], std::cmp::Reverse(i))
                            });
                        match widest {
                            Some(i) => widths[i] -= 1,
                            None => break,
                        }
                    }
                }
            }
        }
        let lines = std::iter::once(&self.headers)
            .chain(&self.rows)
            .enumerate()
            .map(|(index, row)| {
                let cells: Vec<&str> = columns.iter().map(|&c| row[c].as_str()).collect();
                let mut line = render_line(&cells, &widths);
                // Headers alone wider than the terminal: cut the line itself.
                if let Some(limit) = width {
                    line = shorten_end(&line, limit);
                }
                if index == 0 && bold_headers {
                    line = crate::term::bold(&line, true);
                }
                line
            });
        lines.collect::<Vec<_>>().join("\n")
    }
}

fn render_line(cells: &[&str], widths: &[usize]) -> String {
    let mut line = String::new();
    for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if index > 0 {
            line.extend(std::iter::repeat_n(' ', GAP));
        }
        let cell = shorten_middle(cell, *width);
        line.push_str(&cell);
        let padding = width.saturating_sub(cell.width());
        line.extend(std::iter::repeat_n(' ', padding));
    }
    line.trim_end().to_string()
}

/// `text` in at most `width` display columns: its start and its end around
/// an ellipsis when it is longer.
pub fn shorten_middle(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let room = width - 1;
    let tail_room = room / 2;
    let head = take_width(text.chars(), room - tail_room);
    let tail: String = take_width(text.chars().rev(), tail_room)
        .chars()
        .rev()
        .collect();
    format!("{head}{ELLIPSIS}{tail}")
}

/// `text` in at most `width` display columns, cut at the end.
fn shorten_end(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let head = take_width(text.chars(), width.saturating_sub(1));
    format!("{}{ELLIPSIS}", head.trim_end())
}

/// The leading characters of `chars` that fit in `width` columns.
fn take_width(chars: impl Iterator<Item = char>, width: usize) -> String {
    let mut used = 0;
    let mut out = String::new();
    for c in chars {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

/// Cells may hold text a device reported (custom ids, …): control characters
/// would break the layout or drive the terminal, so they become spaces.
pub fn sanitize_cell(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_to_widest_cell() {
        let mut table = Table::new(&["APP ID", "NAME"]);
        table.push_row(vec!["com.example.app".into(), "Example".into()]);
        table.push_row(vec!["a.b".into(), "Ünïcode".into()]);
        assert_eq!(
            table.render(),
            "APP ID           NAME\ncom.example.app  Example\na.b              Ünïcode"
        );
    }

    #[test]
    fn pads_short_rows_and_trims_trailing_space() {
        let mut table = Table::new(&["A", "LONG HEADER", "C"]);
        table.push_row(vec!["x".into()]);
        assert_eq!(table.render(), "A  LONG HEADER  C\nx");
        assert!(!table.is_empty());
    }

    #[test]
    fn control_characters_become_spaces() {
        let mut table = Table::new(&["ID"]);
        table.push_row(vec!["evil\u{1b}[2J\nline".into()]);
        assert_eq!(table.render(), "ID\nevil [2J line");
    }

    #[test]
    fn wide_characters_are_aligned_by_display_width() {
        let mut table = Table::new(&["NAME", "X"]);
        table.push_row(vec!["生产".into(), "1".into()]);
        table.push_row(vec!["abcd".into(), "2".into()]);
        assert_eq!(table.render_width(None), "NAME  X\n生产  1\nabcd  2");
    }

    #[test]
    fn shortens_in_the_middle_by_display_width() {
        let sha = "9f2c5e1d7a3b4c6d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
        assert_eq!(shorten_middle(sha, 11), "9f2c5…b1c2d");
        assert_eq!(shorten_middle("short", 11), "short");
        assert_eq!(shorten_middle("生产生产生产", 7), "生…产");
        assert!(shorten_middle("生产生产生产", 7).width() <= 7);
        assert_eq!(shorten_middle("abc", 0), "");
    }

    #[test]
    fn fits_the_width_leaving_out_wide_only_columns_first() {
        let sha = "9f2c5e1d7a3b4c6d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
        let url = "https://cdn.example.com/very/long/path/to/the/bundles/of/this/app/1.0.1.zip";
        let mut table = Table::new(&["VERSION", "CHECKSUM", "EXTRA", "URL"]).wide_only(&["EXTRA"]);
        table.push_row(vec!["1.0.1".into(), sha.into(), "wide".into(), url.into()]);
        let full = table.render_width(None);
        assert!(full.contains(sha) && full.contains(url) && full.contains("EXTRA"));
        assert_eq!(
            table.render_width(Some(200)),
            full,
            "room enough: unchanged"
        );
        let fitted = table.render_width(Some(80));
        for line in fitted.lines() {
            assert!(line.width() <= 80, "{line:?} is {} wide", line.width());
        }
        assert!(!fitted.contains("EXTRA"), "{fitted}");
        let row = fitted.lines().nth(1).unwrap();
        assert!(
            row.starts_with("1.0.1  ") && row.contains("  9f2c5e1d"),
            "{fitted}"
        );
        assert!(fitted.contains("…"), "{fitted}");
        assert!(
            fitted.contains("1.0.1.zip"),
            "the URL's end is kept: {fitted}"
        );
    }

    #[test]
    fn long_text_gives_way_before_times() {
        let mut table = Table::new(&[
            "ID",
            "EVENT",
            "STATUS",
            "ATTEMPTS",
            "LAST CODE",
            "LAST ERROR",
            "CREATED",
        ]);
        table.push_row(vec![
            "1".into(),
            "bundle.uploaded".into(),
            "pending".into(),
            "1".into(),
            "-".into(),
            "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)".into(),
            "2026-12-07 15:42".into(),
        ]);
        let fitted = table.render_width(Some(80));
        assert!(fitted.lines().all(|line| line.width() <= 80), "{fitted}");
        assert!(
            fitted.contains("2026-12-07 15:42"),
            "the time stays whole: {fitted}"
        );
        assert!(fitted.contains("bundle.uploaded"), "{fitted}");
    }

    #[test]
    fn headers_wider_than_the_terminal_are_cut() {
        let mut table = Table::new(&["A LONG HEADER", "ANOTHER LONG HEADER"]);
        table.push_row(vec!["x".into(), "y".into()]);
        let fitted = table.render_width(Some(20));
        assert!(fitted.lines().all(|line| line.width() <= 20), "{fitted}");
    }
}

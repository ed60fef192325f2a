//! Plain aligned text tables for terminal output.

/// Columns are separated by two spaces and padded to the widest cell;
/// trailing spaces are trimmed.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
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

    /// The table without a trailing newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let lines = std::iter::once(&self.headers)
            .chain(&self.rows)
            .map(|row| render_line(row, &widths));
        lines.collect::<Vec<_>>().join("\n")
    }
}

fn render_line(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if index > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        let padding = width.saturating_sub(cell.chars().count());
        line.extend(std::iter::repeat_n(' ', padding));
    }
    line.trim_end().to_string()
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
}

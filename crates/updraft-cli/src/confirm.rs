//! Asking before destructive or risky changes: on a terminal the user
//! answers; otherwise the command needs its flag (`--yes`, `--force`) and
//! is refused without it, before anything changes.

use crate::error::{CliError, LocalCode};
use std::io::{BufRead, IsTerminal, Write};

/// Whether a person can answer: stdin (where the answer is read) and
/// stderr (where the question is written) are terminals.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Writes `question` on stderr and reads one line from stdin (`None` at end of input).
fn ask(question: &str) -> Result<Option<String>, CliError> {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    drop(err);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line)?;
    Ok((read > 0).then(|| line.trim().to_string()))
}

/// Asks to type `name` to confirm deleting `what` (e.g. "app com.x.y");
/// `Ok(())` when typed exactly. Refused with `confirmation_required` when
/// nobody can answer, `cancelled` when the answer is anything else.
pub fn type_name_to_delete(what: &str, name: &str, consequence: &str) -> Result<(), CliError> {
    if !can_ask() {
        return Err(CliError::new(
            LocalCode::ConfirmationRequired,
            format!(
                "refusing to delete {what} without confirmation: stdin is not a terminal; \
                 pass --yes to delete it ({consequence})"
            ),
        ));
    }
    let answer = ask(&format!(
        "This deletes {what} ({consequence}). Type {name} to confirm: "
    ))?;
    if answer.as_deref() == Some(name) {
        Ok(())
    } else {
        Err(CliError::new(
            LocalCode::Cancelled,
            format!("{what} was not deleted: the answer was not {name}"),
        ))
    }
}

/// Asks a y/N question after `warning`; `Ok(true)` only for y/yes.
pub fn yes_no(warning: &str, question: &str) -> Result<bool, CliError> {
    let answer = ask(&format!("warning: {warning}\n{question} [y/N] "))?;
    Ok(matches!(
        answer.as_deref().map(str::to_ascii_lowercase).as_deref(),
        Some("y" | "yes")
    ))
}

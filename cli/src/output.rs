//! Text for a terminal: values that came from a store, a user or a token endpoint are shown
//! with their control characters escaped, so that no value can move the cursor, rewrite the
//! screen (ESC/OSC sequences), fake a row (CR, LF) or reorder what is shown (Unicode
//! bidirectional controls). JSON output needs none of this: serde escapes control characters.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `--json` was given: then warnings are JSON lines too.
static JSON: AtomicBool = AtomicBool::new(false);

/// Says that `--json` was given (main does, once).
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// A warning on stderr: `tokenvault: warning: …`, or with `--json` one line
/// `{"warning":{"message":…}}` (stderr stays JSON lines, the error, if any, last).
pub fn warn(message: &str) {
    if JSON.load(Ordering::Relaxed) {
        eprintln!(
            "{}",
            serde_json::json!({ "warning": { "message": message } })
        );
    } else {
        eprintln!("tokenvault: warning: {}", escape_controls(message));
    }
}

/// Prints a command's result: `value` as one JSON line with `--json`, else `text` (a line for
/// people).
pub fn report(
    json: bool,
    text: impl std::fmt::Display,
    value: serde_json::Value,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{value}")
    } else {
        writeln!(out, "{text}")
    }
}

/// Whether `c` must not reach a terminal raw: a C0/C1 control character or a Unicode
/// bidirectional formatting character.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written as a Rust-style escape (`\n`, `\u{1b}`).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.extend(c.escape_default()),
            c if is_unsafe(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(escape_controls("ann@example.com"), "ann@example.com");
        assert_eq!(escape_controls("a\r\nb"), "a\\r\\nb");
        assert_eq!(escape_controls("\u{1b}]0;x\u{7}"), "\\u{1b}]0;x\\u{7}");
        assert_eq!(escape_controls("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(escape_controls("abc\u{202E}fed"), "abc\\u{202e}fed");
        assert!(!escape_controls("x\u{2066}y").contains('\u{2066}'));
    }
}

//! The config loader (`gatehouse::config::parse`) on arbitrary text: never a panic, and every
//! error names this file, a field and a message, and points at a line of the text (line 0 is
//! only for a key that is missing or empty, so there is no line to show).
#![no_main]

use std::path::Path;

use gatehouse::config::{self, ConfigError, Overrides};
use libfuzzer_sys::fuzz_target;

#[path = "lines.rs"]
mod lines;

/// Is the last key of `field` absent from `text` (so a missing-key error cannot have a line)?

pub fn check(errors: &[ConfigError], file: &Path, text: &str) {
    let lines = lines::count(text);
    for e in errors {
        let shown = e.to_string();
        assert_eq!(e.file, file, "{shown}");
        assert!(!e.field.is_empty() && !e.message.is_empty(), "{shown}");
        assert!(e.line <= lines, "line beyond the text: {shown}");
        let children = errors.iter().map(|c| (c.field.clone(), c.line));
        let placed = lines::missing(text, &e.field) || lines::placed_by_a_child(&e.field, children);
        assert!(e.line > 0 || placed, "no line: {shown}\n{text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/nonexistent/gatehouse.yaml");
    if let Err(errors) = config::parse(text, file, &Overrides::default()) {
        assert!(!errors.0.is_empty());
        check(&errors.0, file, text);
    }
});

//! The policy loader (`gatehouse::policy::parse`) on arbitrary text, as one or two files
//! (split at the first NUL): never a panic, every error names its file, a field and a
//! message and points at a line of that file (line 0 only for a missing or empty key); a
//! policy that loads routes any path without a panic.
#![no_main]

use std::path::PathBuf;

use gatehouse::policy;
use http::Method;
use libfuzzer_sys::fuzz_target;

#[path = "lines.rs"]
mod lines;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources: Vec<(PathBuf, String)> = text
        .splitn(2, '\0')
        .enumerate()
        .map(|(i, t)| (PathBuf::from(format!("/policies/{i}.yaml")), t.to_owned()))
        .collect();
    match policy::parse(&sources) {
        Ok(policy) => {
            for path in ["/", "/admin/x", "/public/a/b", "/API/orders/1"] {
                for method in [Method::GET, Method::POST] {
                    let _ = policy.route(&method, path, Some("app.example.com:8443"));
                    let _ = policy.route(&method, path, None);
                }
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                let shown = e.to_string();
                let Some((_, text)) = sources.iter().find(|(p, _)| *p == e.file) else {
                    panic!("error names no source: {shown}");
                };
                let lines = lines::count(text);
                assert!(!e.field.is_empty() && !e.message.is_empty(), "{shown}");
                assert!(e.line <= lines, "line beyond the text: {shown}");
                let children = errors.iter().filter(|c| c.file == e.file);
                let children = children.map(|c| (c.field.clone(), c.line));
                let placed =
                    lines::missing(text, &e.field) || lines::placed_by_a_child(&e.field, children);
                assert!(e.line > 0 || placed, "no line: {shown}\n{text}");
            }
        }
    }
});

//! Shared by the `config` and `policy` targets: may an error carry no line?

use serde_json::Value;

/// True when `field` (a dotted path such as `routes[1].name`) is absent from the YAML
/// `text`, or holds only an empty value (`~`, `{}`, `[]`, `""`): then the error is about
/// something missing and there is no line to point at. Any other line-0 error is a finding.
/// Text that does not read as YAML at all cannot be judged here and passes.
pub fn missing(text: &str, field: &str) -> bool {
    let Ok(mut value) = serde_saphyr::from_str::<Value>(text) else {
        return true;
    };
    for part in field.split('.') {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        value = match value.get_mut(key).map(Value::take) {
            Some(v) => v,
            None => return true,
        };
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let Ok(i) = index.trim_end_matches(']').parse::<usize>() else {
                return true;
            };
            value = match value.get_mut(i).map(Value::take) {
                Some(v) => v,
                None => return true,
            };
        }
    }
    match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Lines as YAML counts them: `\n`, `\r\n` and a bare `\r` each end one.
pub fn count(text: &str) -> u64 {
    let breaks = text.replace("\r\n", "\n").replace('\r', "\n");
    breaks.split('\n').count() as u64
}

/// A line-0 error on a section that is present is still placed when another error, about a
/// key inside that section, has a line (`listen: set https or http` beside
/// `listen.htps: unknown field`): the reader sees where the section is.
pub fn placed_by_a_child(
    field: &str,
    lines_of_children: impl IntoIterator<Item = (String, u64)>,
) -> bool {
    let prefix = format!("{field}.");
    lines_of_children
        .into_iter()
        .any(|(f, line)| line > 0 && f.starts_with(&prefix))
}

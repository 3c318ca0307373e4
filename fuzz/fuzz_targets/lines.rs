//! Shared by the `config` and `policy` targets: may an error carry no line?

/// True when `field`'s last key is absent from `text`, or written only with an empty value
/// (`key:`, `key: ~`, `key: {}`, `key: []`): then the error is about something missing, and
/// there is no line to point at. Any other line-0 error is a finding.
pub fn missing(text: &str, field: &str) -> bool {
    let leaf = field.rsplit('.').next().unwrap_or(field);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    text.lines().all(|l| {
        let l = l.trim_start().trim_start_matches("- ").trim_start();
        let l = l.trim_start_matches(['"', '\'']);
        let Some(rest) = l.strip_prefix(leaf) else {
            return true;
        };
        let rest = rest.trim_start_matches(['"', '\'']).trim_start();
        let Some(value) = rest.strip_prefix(':') else {
            return true;
        };
        let value = value.split(" #").next().unwrap_or_default().trim();
        matches!(value, "" | "~" | "null" | "{}" | "[]")
    })
}

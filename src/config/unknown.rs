//! Blanking an unknown key out of config text, so that parsing can go on and every other
//! problem in the file is reported too. Only block-style YAML is touched; anything else is left
//! alone, and the caller then reports the unknown key on its own, as serde would.

/// `text` with the mapping key at `line`:`column` (1-based, as the parser reports it) and its
/// whole value replaced by blank lines, so that every other line keeps its number. `None` when
/// the key is not plainly block style (nothing but indentation and `- ` before it on its line,
/// no flow brackets left open or closed by the removal).
pub fn blank_key(text: &str, line: u64, column: u64) -> Option<String> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let column = usize::try_from(column).ok()?.checked_sub(1)?;
    let key_line = *lines.get(index)?;
    let (start, _) = key_line.char_indices().nth(column)?;
    let (prefix, key) = key_line.split_at(start);
    if !prefix.chars().all(|c| c == ' ' || c == '-') || key.trim().is_empty() {
        return None;
    }
    // The value is every following line indented deeper than the key, or a `- ` item at the
    // key's own indentation (a sequence value), with blank and comment lines in between.
    let mut end = index + 1;
    while let Some(l) = lines.get(end) {
        let content = l.trim_start_matches(' ');
        let indent = l.len() - content.len();
        let item = indent == start && (content.trim_end() == "-" || content.starts_with("- "));
        if content.trim().is_empty() || content.starts_with('#') || indent > start || item {
            end += 1;
        } else {
            break;
        }
    }
    let removed: String = std::iter::once(key)
        .chain(lines[index + 1..end].iter().copied())
        .collect();
    let count = |c: char| removed.chars().filter(|&x| x == c).count();
    if count('{') != count('}') || count('[') != count(']') {
        return None;
    }
    lines[index] = prefix;
    for l in &mut lines[index + 1..end] {
        *l = "";
    }
    Some(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_the_key_and_its_nested_value_keeping_line_numbers() {
        let text = "a:\n  bogus:\n    x: 1\n    - y\n  b: 2\nc: 3\n";
        assert_eq!(
            blank_key(text, 2, 3).as_deref(),
            Some("a:\n  \n\n\n  b: 2\nc: 3\n")
        );
    }

    #[test]
    fn a_sequence_value_at_the_keys_indentation_goes_too() {
        let text = "a:\n  bogus:\n  - 1\n  - 2\n  b: 2\n";
        assert_eq!(
            blank_key(text, 2, 3).as_deref(),
            Some("a:\n  \n\n\n  b: 2\n")
        );
    }

    #[test]
    fn a_key_that_opens_a_list_item_leaves_the_item() {
        let text = "l:\n  - bogus: 1\n    c: 2\n  - c: 3\n";
        assert_eq!(
            blank_key(text, 2, 5).as_deref(),
            Some("l:\n  - \n    c: 2\n  - c: 3\n")
        );
    }

    #[test]
    fn flow_style_is_left_alone() {
        assert_eq!(blank_key("a: {b: 1, bogus: 2}\n", 1, 11), None);
        assert_eq!(blank_key("a: {b: 1,\n  bogus: 2}\n", 2, 3), None);
        assert_eq!(blank_key("a: 1\n", 9, 1), None);
    }
}

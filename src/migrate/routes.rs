//! oauth2-proxy's route regexes (`skip_auth_routes`, `skip_auth_regex`, `api_routes`) as
//! Gatehouse path globs, when the regex says a literal path or prefix; anything else is
//! refused with the reason, never approximated by something that skips auth for more.
//!
//! oauth2-proxy matches the regex against the request path, unanchored unless it says `^`.
//! `^/a/b$` is the path `/a/b`; `^/a/b/` and `^/a/b/.*` are `/a/b/**`; `^/a/b` (no slash,
//! no `$`) is `/a/b` and `/a/b/**`, which no longer covers `/a/bc` (narrower: reported).

/// One translated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// `GET=` before the regex (`skip_auth_routes` only).
    pub method: Option<String>,
    pub paths: Vec<String>,
    /// How the glob differs from the regex, when it does.
    pub note: Option<String>,
}

/// `[METHOD=]regex`, as `skip_auth_routes` and `api_routes` hold them.
pub fn with_method(entry: &str) -> Result<Translated, String> {
    let (method, regex) = match entry.split_once('=') {
        Some((m, r)) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            (Some(m.to_owned()), r)
        }
        _ => (None, entry),
    };
    let mut translated = regex_paths(regex)?;
    translated.method = method;
    Ok(translated)
}

/// A path regex as globs.
pub fn regex_paths(regex: &str) -> Result<Translated, String> {
    let Some(body) = regex.strip_prefix('^') else {
        return Err(format!(
            "`{regex}` is not anchored with `^`: it matches anywhere in the path (`/x{regex}` too), which no glob says"
        ));
    };
    let (body, exact) = match body.strip_suffix('$') {
        Some(b) => (b, true),
        None => (body, false),
    };
    let (body, any_tail) = match body.strip_suffix(".*") {
        Some(b) => (b, true),
        None => (body, false),
    };
    let mut literal = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('.' | '/' | '-' | '_' | '~')) => literal.push(e),
                _ => {
                    return Err(format!(
                        "`{regex}` uses an escape other than `\\.`, `\\/`, `\\-`"
                    ));
                }
            },
            '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => {
                return Err(format!(
                    "`{regex}` uses regex syntax (`{c}`) beyond a literal path or prefix; write it as policy routes by hand"
                ));
            }
            c => literal.push(c),
        }
    }
    if !literal.starts_with('/') {
        return Err(format!("`{regex}` does not start with a path (`^/...`)"));
    }
    if exact && !any_tail {
        let note = (literal.len() > 1 && literal.ends_with('/')).then(|| {
            format!(
                "`{literal}` also covers `{}` (Gatehouse matches both alike)",
                literal.trim_end_matches('/')
            )
        });
        return Ok(Translated {
            method: None,
            paths: vec![literal],
            note,
        });
    }
    if literal.ends_with('/') {
        let base = literal.trim_end_matches('/');
        let note = (!base.is_empty()).then(|| {
            format!("also covers `{base}` itself (Gatehouse matches `{base}` and `{base}/` alike)")
        });
        return Ok(Translated {
            method: None,
            paths: vec![format!("{base}/**")],
            note,
        });
    }
    Ok(Translated {
        method: None,
        paths: vec![literal.clone(), format!("{literal}/**")],
        note: Some(format!(
            "narrower: `{literal}` and below only; paths that merely start with it (`{literal}x`) now need auth"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_paths_and_prefixes_become_globs() {
        let paths = |r: &str| regex_paths(r).unwrap().paths;
        assert_eq!(paths("^/healthz$"), ["/healthz"]);
        assert_eq!(paths("^/static/"), ["/static/**"]);
        assert_eq!(paths("^/static/.*"), ["/static/**"]);
        assert_eq!(paths("^/static/.*$"), ["/static/**"]);
        assert_eq!(paths("^/api\\.v1/x$"), ["/api.v1/x"]);
        assert_eq!(paths("^/public"), ["/public", "/public/**"]);
        assert!(
            regex_paths("^/public")
                .unwrap()
                .note
                .unwrap()
                .contains("narrower")
        );
        assert_eq!(paths("^/"), ["/**"]);
        let t = with_method("GET=^/metrics$").unwrap();
        assert_eq!(
            (t.method.as_deref(), t.paths),
            (Some("GET"), vec!["/metrics".to_owned()])
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for regex in [
            "/public",
            "^/(a|b)/",
            "^/a.b$",
            "^/v[0-9]+/",
            "^/a/.+",
            "^/x\\d",
            "^.*",
        ] {
            assert!(regex_paths(regex).is_err(), "{regex}");
        }
    }
}

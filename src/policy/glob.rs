//! Path globs over canonical paths: `*` is exactly one segment (or part of one, as in
//! `*.css`), `**` is any number of segments including none, anything else is literal.
//! A trailing slash does not change which rules match (`/admin` and `/admin/` are one route).

use crate::path;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// A segment with `*` inside, e.g. `*.css` or `v*`.
    Pattern(String),
    /// `*`
    One,
    /// `**`
    Deep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    raw: String,
    segments: Vec<Segment>,
}

impl Glob {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err(format!("`{raw}` must start with `/`"));
        }
        if raw.contains(['?', '[', ']', '{', '}']) {
            return Err(format!("`{raw}`: only `*` and `**` are wildcards"));
        }
        // The literal parts must already be canonical, or the glob could never match.
        let literal = raw.replace('*', "x");
        match path::canonicalize(&literal) {
            Ok(canonical) if canonical == literal || canonical == literal.trim_end_matches('/') => {
            }
            Ok(canonical) => {
                return Err(format!(
                    "`{raw}` is not a canonical path (requests are matched as `{}`)",
                    canonical.replace('x', "*")
                ));
            }
            Err(e) => return Err(format!("`{raw}`: {e}")),
        }
        let segments = split(raw)
            .map(|s| match s {
                "**" => Ok(Segment::Deep),
                "*" => Ok(Segment::One),
                s if s.contains("**") => Err(format!("`{raw}`: `**` must be a whole segment")),
                s if s.contains('*') => Ok(Segment::Pattern(s.to_owned())),
                s => Ok(Segment::Literal(s.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            raw: raw.to_owned(),
            segments,
        })
    }

    /// The same glob with its literal parts in ASCII lower case.
    pub fn to_ascii_lowercase(&self) -> Self {
        let segments = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => Segment::Literal(l.to_ascii_lowercase()),
                Segment::Pattern(p) => Segment::Pattern(p.to_ascii_lowercase()),
                other => other.clone(),
            })
            .collect();
        Self {
            raw: self.raw.clone(),
            segments,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Does this glob match the (already split) canonical path?
    pub fn matches(&self, path: &[&str]) -> bool {
        matches(&self.segments, path)
    }

    /// True when every path this glob's `other` matches is also matched by `self` (a sound
    /// but incomplete check, used to warn about shadowed rules).
    pub fn covers(&self, other: &Glob) -> bool {
        covers(&self.segments, &other.segments)
    }
}

/// Splits a canonical path into segments, ignoring the leading and a trailing slash.
pub fn split(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter(|s| !s.is_empty())
}

fn matches(glob: &[Segment], path: &[&str]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((Segment::Deep, rest)) => (0..=path.len()).any(|skip| matches(rest, &path[skip..])),
        Some((segment, rest)) => match path.split_first() {
            Some((first, tail)) => segment_matches(segment, first) && matches(rest, tail),
            None => false,
        },
    }
}

fn segment_matches(segment: &Segment, text: &str) -> bool {
    match segment {
        Segment::Literal(literal) => literal == text,
        Segment::One | Segment::Deep => true,
        Segment::Pattern(pattern) => wildcard(pattern.as_bytes(), text.as_bytes()),
    }
}

/// `*` matches any run of bytes within one segment.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| wildcard(rest, &text[skip..])),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, tail)| t == c && wildcard(rest, tail)),
    }
}

fn covers(a: &[Segment], b: &[Segment]) -> bool {
    match (a.split_first(), b.split_first()) {
        (None, None) => true,
        (Some((Segment::Deep, [])), _) => true,
        (Some((Segment::Deep, _)), _) => false,
        (Some((sa, ra)), Some((sb, rb))) => {
            let segment_covered = match (sa, sb) {
                (Segment::One, Segment::Deep) => false,
                (Segment::One, _) => true,
                (x, y) => x == y,
            };
            segment_covered && covers(ra, rb)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, path: &str) -> bool {
        Glob::parse(glob)
            .unwrap()
            .matches(&split(path).collect::<Vec<_>>())
    }

    #[test]
    fn star_is_one_segment_and_double_star_any_depth() {
        assert!(m("/healthz", "/healthz"));
        assert!(m("/healthz", "/healthz/"));
        assert!(!m("/healthz", "/healthz/x"));
        assert!(m("/users/*", "/users/42"));
        assert!(!m("/users/*", "/users"));
        assert!(!m("/users/*", "/users/42/posts"));
        assert!(m("/admin/**", "/admin"));
        assert!(m("/admin/**", "/admin/a/b/c"));
        assert!(!m("/admin/**", "/administrator"));
        assert!(m("/**", "/"));
        assert!(m("/api/**/edit", "/api/a/b/edit"));
        assert!(m("/api/**/edit", "/api/edit"));
        assert!(m("/assets/*.css", "/assets/site.css"));
        assert!(!m("/assets/*.css", "/assets/site.js"));
        assert!(!m("/Admin/**", "/admin"));
    }

    #[test]
    fn bad_globs_are_refused() {
        for bad in [
            "admin", "/a/b**", "/a/?", "/a/../b", "/a//b", "/%61dmin", "/a;x",
        ] {
            assert!(Glob::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coverage() {
        let g = |s| Glob::parse(s).unwrap();
        assert!(g("/**").covers(&g("/admin/**")));
        assert!(g("/admin/**").covers(&g("/admin/users/*")));
        assert!(g("/users/*").covers(&g("/users/42")));
        assert!(!g("/users/*").covers(&g("/users/**")));
        assert!(!g("/admin/*").covers(&g("/admin/**")));
        assert!(!g("/a").covers(&g("/b")));
    }
}

//! The canonical path: the one spelling of a request path that policy matching sees and the
//! upstream receives (design.md, lifecycle step 3).
//!
//! Unreserved percent-escapes are decoded (`%61` → `a`, `%2e` → `.`), other escapes are kept
//! with upper-case hex, `;params` are dropped from every segment, dot segments are resolved and
//! empty segments merged. What cannot be made canonical safely is refused: an encoded `/`,
//! `\`, `;`, `?` or `#`, a NUL, raw space or other control character, a backslash, a
//! malformed escape, invalid UTF-8 after decoding, `..` climbing above the root, or a segment
//! that ends in `.` or a space (other than `.` and `..` themselves). An origin may decode once
//! more, take `\` for `/`, drop what follows a `;`, cut at a decoded `?`, or strip trailing
//! dots and spaces (Windows does), and each of those would turn a path the policy saw as one
//! thing into another; the differential test in `path/differential.rs` checks that property.
//! Pure: no I/O, no allocation beyond the result.

use std::fmt::Write as _;

#[cfg(test)]
mod differential;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("the path contains an encoded `/`, `\\`, `;`, `?` or `#`")]
    EncodedSeparator,
    #[error("the path contains a control character, a raw space or a backslash")]
    ForbiddenCharacter,
    #[error("the path contains a malformed percent-escape")]
    BadEscape,
    #[error("the path is not valid UTF-8 once decoded")]
    InvalidUtf8,
    #[error("the path climbs above the root")]
    AboveRoot,
    /// `admin.` or `admin%20`: a different segment to us, `admin` to an origin that trims.
    #[error("a path segment ends in `.` or a space")]
    TrailingDotOrSpace,
}

/// Canonicalizes the path part of a request target (no query, no fragment).
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    if is_plain(raw) {
        return Ok(raw.to_owned());
    }
    canonicalize_slow(raw)
}

/// Most paths are canonical already: no escapes, parameters, backslashes, empty or dot
/// segments, no segment ending in `.`, and only printable ASCII. For them the answer is the
/// path itself.
fn is_plain(raw: &str) -> bool {
    raw.starts_with('/')
        && raw
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'%' | b';' | b'\\'))
        && !raw.contains("//")
        && !raw.split('/').any(|s| s.ends_with('.'))
}

fn canonicalize_slow(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut segments: Vec<String> = Vec::new();
    let raw_segments: Vec<&str> = raw[1..].split('/').collect();
    let last = raw_segments.len() - 1;
    let mut trailing_slash = false;
    for (i, raw_segment) in raw_segments.iter().enumerate() {
        // `;params` belong to the segment and never take part in matching or forwarding.
        let segment = raw_segment.split(';').next().unwrap_or_default();
        let segment = decode_segment(segment)?;
        match segment.as_str() {
            "" => {
                // `//` merges; a final empty segment is a trailing slash.
                if i == last && !segments.is_empty() {
                    trailing_slash = true;
                }
            }
            "." => trailing_slash = i == last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = i == last;
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(raw.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Decodes one segment: unreserved escapes become literals, others are normalised to
/// upper-case hex; the decoded bytes must be valid UTF-8 and free of control characters, and
/// must not end in `.` or a space unless they are exactly `.` or `..`.
fn decode_segment(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut decoded = Vec::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let value = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(|_| hex.iter().all(u8::is_ascii_hexdigit))
                .ok_or(PathError::BadEscape)?;
            match value {
                // Each of these delimits something once decoded (a segment, its parameters, the
                // query, the fragment): an origin that decodes first would cut the path there.
                b'/' | b'\\' | b';' | b'?' | b'#' => return Err(PathError::EncodedSeparator),
                v if v.is_ascii_control() => return Err(PathError::ForbiddenCharacter),
                v if is_unreserved(v) => out.push(char::from(v)),
                v => {
                    let _ = write!(out, "%{v:02X}");
                }
            }
            decoded.push(value);
            i += 3;
        } else {
            // A raw space would make the forwarded request line ambiguous (`GET /a b HTTP/1.1`).
            if b.is_ascii_control() || matches!(b, b' ' | b'\\') || b >= 0x80 {
                return Err(PathError::ForbiddenCharacter);
            }
            out.push(char::from(b));
            decoded.push(b);
            i += 1;
        }
    }
    std::str::from_utf8(&decoded).map_err(|_| PathError::InvalidUtf8)?;
    if matches!(decoded.last(), Some(b'.' | b' ')) && !matches!(&decoded[..], b"." | b"..") {
        return Err(PathError::TrailingDotOrSpace);
    }
    Ok(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// gRPC paths are `/package.Service/Method`: dots inside a segment, mixed case,
    /// underscores. Canonicalization must leave them exactly as sent.
    #[test]
    fn grpc_paths_are_already_canonical() {
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/my_pkg.v2.OrderService/Get_Order",
            "/Service/Method",
            "/a.b.c.d.E/F",
        ] {
            assert_eq!(canonicalize(path).as_deref(), Ok(path), "{path}");
        }
    }

    #[test]
    fn tricks_all_land_on_one_spelling() {
        for (raw, canonical) in [
            ("/", "/"),
            ("/admin", "/admin"),
            ("//admin", "/admin"),
            ("/./admin", "/admin"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2e/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/admin;x", "/admin"),
            ("/admin;x=1/users;y", "/admin/users"),
            ("/admin/", "/admin/"),
            ("/admin/.", "/admin/"),
            ("/admin/x/..", "/admin/"),
            ("/a/%7euser", "/a/~user"),
            ("/a%20b", "/a%20b"),
            ("/a%3ab", "/a%3Ab"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/a//b///c", "/a/b/c"),
            ("/v1.2/x", "/v1.2/x"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a%20b/%20c", "/a%20b/%20c"),
            ("/admin;x./users", "/admin/users"),
        ] {
            assert_eq!(canonicalize(raw).as_deref(), Ok(canonical), "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (raw, error) in [
            ("/public/..%2fadmin", PathError::EncodedSeparator),
            ("/a%2Fb", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/admin%00", PathError::ForbiddenCharacter),
            ("/a%0ab", PathError::ForbiddenCharacter),
            ("/a\\b", PathError::ForbiddenCharacter),
            ("/a%zz", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/a%+1", PathError::BadEscape),
            ("/%C3", PathError::InvalidUtf8),
            ("/%ff", PathError::InvalidUtf8),
            ("/admin%3b/users", PathError::EncodedSeparator),
            ("/admin%3Bx=1", PathError::EncodedSeparator),
            ("/admin%3F/users", PathError::EncodedSeparator),
            ("/admin%3f", PathError::EncodedSeparator),
            ("/admin%23/users", PathError::EncodedSeparator),
            ("/admin.", PathError::TrailingDotOrSpace),
            ("/admin./users", PathError::TrailingDotOrSpace),
            ("/admin../users", PathError::TrailingDotOrSpace),
            ("/admin.../users", PathError::TrailingDotOrSpace),
            ("/admin.;x/users", PathError::TrailingDotOrSpace),
            ("/admin%2e/users", PathError::TrailingDotOrSpace),
            ("/%61dmin%2E", PathError::TrailingDotOrSpace),
            ("/admin%20", PathError::TrailingDotOrSpace),
            ("/admin%20/users", PathError::TrailingDotOrSpace),
            ("/admin /users", PathError::ForbiddenCharacter),
            ("/admin.%20/users", PathError::TrailingDotOrSpace),
            ("/admin%20./users", PathError::TrailingDotOrSpace),
            ("/x/...", PathError::TrailingDotOrSpace),
            ("/x/.. /y", PathError::ForbiddenCharacter),
            ("/x/..%20/y", PathError::TrailingDotOrSpace),
            ("/x/. /y", PathError::ForbiddenCharacter),
            ("/x/ ../y", PathError::ForbiddenCharacter),
            ("/..", PathError::AboveRoot),
            ("/a/../../b", PathError::AboveRoot),
            ("admin", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
        ] {
            assert_eq!(canonicalize(raw), Err(error), "{raw}");
        }
    }

    /// Found by `fuzz/` (target `path`): a raw space survived into the canonical path, which
    /// is then no valid request target to forward (`GET /a b HTTP/1.1`).
    #[test]
    fn a_raw_space_is_refused() {
        assert_eq!(canonicalize("/a b"), Err(PathError::ForbiddenCharacter));
        assert_eq!(
            canonicalize("/an/./x//x ..."),
            Err(PathError::ForbiddenCharacter)
        );
        assert_eq!(canonicalize("/a%20b").as_deref(), Ok("/a%20b"));
    }

    proptest! {
        #[test]
        fn canonical_form_is_a_fixed_point(raw in "/[a-zA-Z0-9%./;~_-]{0,40}") {
            if let Ok(once) = canonicalize(&raw) {
                prop_assert_eq!(canonicalize(&once), Ok(once.clone()));
                prop_assert!(!once.contains("//"), "{}", once);
                prop_assert!(!once.split('/').any(|s| s == "." || s == ".."), "{}", once);
                prop_assert!(!once.contains(';'));
                prop_assert!(once.starts_with('/'));
            }
        }

        #[test]
        fn the_fast_path_agrees_with_the_full_algorithm(raw in "/[a-zA-Z0-9%./;~_\\\\-]{0,40}") {
            if is_plain(&raw) {
                prop_assert_eq!(canonicalize_slow(&raw), Ok(raw.clone()));
            }
        }

        #[test]
        fn never_panics(raw in "\\PC{0,60}") {
            let _ = canonicalize(&raw);
        }
    }
}

//! gRPC as Gatehouse sees it: which requests are gRPC, what their `grpc-timeout` asks for,
//! and the trailers-only answers (one HEADERS frame: HTTP 200, `grpc-status`, `grpc-message`)
//! that replace every answer Gatehouse makes itself to a gRPC client.
//!
//! The gRPC code is derived from the HTTP status that [`crate::error`] decided, so there is
//! still exactly one mapping from errors to answers; this module only translates its result
//! into the form a gRPC client can read. Pure functions over `http` types: nothing here knows
//! about sockets or the upstream.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, Body};

pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The trailers a gRPC answer ends with, for the `Trailer` header an HTTP/1.1 client needs.
pub const TRAILER_NAMES: HeaderValue =
    HeaderValue::from_static("grpc-status, grpc-message, grpc-status-details-bin");

/// The gRPC status codes Gatehouse answers with (grpc/doc/statuscodes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    /// The gRPC code for an HTTP status that Gatehouse chose: 401 → UNAUTHENTICATED, 403 →
    /// PERMISSION_DENIED, 400/431 → INVALID_ARGUMENT, 502/503 → UNAVAILABLE, 504 →
    /// DEADLINE_EXCEEDED, 500 → INTERNAL. Statuses Gatehouse does not use for gRPC requests
    /// fall back by class.
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthenticated,
            403 => Self::PermissionDenied,
            400 | 431 => Self::InvalidArgument,
            404 | 405 | 501 => Self::Unimplemented,
            413 | 429 => Self::ResourceExhausted,
            502 | 503 => Self::Unavailable,
            504 => Self::DeadlineExceeded,
            // A redirect or a page is something a gRPC client cannot follow or show.
            300..=399 => Self::Unauthenticated,
            400..=499 => Self::InvalidArgument,
            _ => Self::Internal,
        }
    }

    fn default_message(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid request",
            Self::DeadlineExceeded => "the application did not answer in time",
            Self::PermissionDenied => "permission denied",
            Self::ResourceExhausted => "request too large",
            Self::Unimplemented => "not served here",
            Self::Internal => "internal error",
            Self::Unavailable => "the application is unavailable",
            Self::Unauthenticated => "this method needs authentication",
        }
    }
}

/// Is this a gRPC request (`content-type: application/grpc`, `application/grpc+proto`, …)?
pub fn is_grpc(headers: &HeaderMap) -> bool {
    const PREFIX: &[u8] = b"application/grpc";
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= PREFIX.len()
            && v[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
            && matches!(v.get(PREFIX.len()), None | Some(b'+' | b';'))
    })
}

/// The client's deadline from `grpc-timeout` (1 to 8 digits and a unit, `H M S m u n`).
/// A malformed value is ignored, as gRPC servers do: the upstream timeout still bounds the wait.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT)?.as_bytes();
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A trailers-only answer: HTTP 200, `content-type: application/grpc`, the status and a
/// message, and no body, so it goes out as one HEADERS frame with END_STREAM.
pub fn trailers_only(code: Code, message: &str) -> Response<Body> {
    let mut response = Response::new(body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(GRPC_STATUS, HeaderValue::from(code as u16));
    if let Ok(message) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert(GRPC_MESSAGE, message);
    }
    response
}

/// Turns an answer Gatehouse made for an HTTP client (a JSON refusal, a login redirect, a
/// page) into its trailers-only form, by its status. `www-authenticate`, `set-cookie` and
/// the request id are kept; an answer that already is gRPC is returned as it is.
pub fn from_answer(answer: Response<Body>, message: Option<&str>) -> Response<Body> {
    if answer.headers().contains_key(GRPC_STATUS) {
        return answer;
    }
    let code = Code::for_status(answer.status());
    let mut response = trailers_only(code, message.unwrap_or(code.default_message()));
    for name in [header::WWW_AUTHENTICATE, header::SET_COOKIE] {
        for value in answer.headers().get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%` itself.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc(&with("content-type", "application/grpc")));
        assert!(is_grpc(&with("content-type", "application/grpc+proto")));
        assert!(is_grpc(&with("content-type", "Application/GRPC;charset=x")));
        assert!(!is_grpc(&with("content-type", "application/grpc-web-text")));
        assert!(!is_grpc(&with("content-type", "application/json")));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn timeouts_parse_as_the_spec_writes_them() {
        let t = |v| timeout(&with("grpc-timeout", v));
        assert_eq!(t("200m"), Some(Duration::from_millis(200)));
        assert_eq!(t("3S"), Some(Duration::from_secs(3)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(t("123456789S"), None);
        assert_eq!(t("m"), None);
        assert_eq!(t("10x"), None);
        assert_eq!(t("-1S"), None);
    }

    #[test]
    fn statuses_map_as_the_issue_lists() {
        let c = |s: u16| Code::for_status(StatusCode::from_u16(s).unwrap()) as u16;
        assert_eq!(
            [
                c(401),
                c(403),
                c(400),
                c(431),
                c(502),
                c(503),
                c(504),
                c(500)
            ],
            [16, 7, 3, 3, 14, 14, 4, 13]
        );
    }

    #[test]
    fn answers_become_trailers_only() {
        let mut answer = Response::new(body::full("{}"));
        *answer.status_mut() = StatusCode::UNAUTHORIZED;
        answer.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"gatehouse\""),
        );
        let response = from_answer(answer, Some("needs 100% of a token\n"));
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(
            response.headers()["grpc-message"],
            "needs 100%25 of a token%0A"
        );
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"gatehouse\""
        );
        assert!(http_body::Body::is_end_stream(response.body()));
    }
}

//! Message framing rules that hyper leaves to us, checked before anything else reads a
//! request: where a request's length and target come from must be read one way only, by us
//! and by the app behind us (RFC 9112 for HTTP/1.1, RFC 9113 §8 for HTTP/2).
//!
//! hyper already refuses most bad framing itself (a bad `Content-Length`, `Transfer-Encoding`
//! in HTTP/1.0 or not ending in `chunked`, obs-fold, bare CR, invalid chunks; and in HTTP/2,
//! connection-specific fields, upper-case names, CR/LF/NUL in values, `content-length`
//! disagreeing with the DATA). What is left is checked here: `Transfer-Encoding` must be
//! exactly `chunked`, an HTTP/1.1 request needs one valid `Host`, and an HTTP/2 request's
//! `:authority` and `host` must agree. Connection-specific HTTP/2 fields are checked again so
//! the rule does not rest on one library alone: they would become framing once the request is
//! written out as HTTP/1.1.
//!
//! Pure: no I/O, no knowledge of the server or the upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Request, Version};

/// Why a request's framing is refused. Every one ends the connection (HTTP/1.1): after a
/// message we could not delimit, nothing later on the connection can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("HTTP/1.1 requests need a Host header")]
    MissingHost,
    #[error("more than one Host header")]
    MultipleHost,
    #[error("the Host header is not a host and optional port")]
    BadHost,
    /// A transfer coding other than `chunked` (RFC 9112 §6.1: 501).
    #[error("only `Transfer-Encoding: chunked` is supported")]
    UnsupportedCoding,
    /// `chunked` applied more than once, or split over several fields.
    #[error("`Transfer-Encoding` must be exactly `chunked`")]
    BadTransferEncoding,
    #[error("HTTP/1.0 requests cannot use Transfer-Encoding")]
    CodingInHttp10,
    /// RFC 9113 §8.2.2.
    #[error("HTTP/2 requests cannot carry connection-specific header fields")]
    ConnectionSpecific,
    #[error(":authority and host disagree")]
    AuthorityMismatch,
}

impl FramingError {
    /// 501 for a coding we do not implement, 400 for everything else.
    pub fn not_implemented(self) -> bool {
        self == Self::UnsupportedCoding
    }
}

/// Checks the framing of `request` and returns the authority it addressed: the request
/// target's (absolute form, HTTP/2 `:authority`), else its `Host` header; `None` when it
/// addressed none (HTTP/1.0, or an empty `Host`).
pub fn check<B>(request: &Request<B>) -> Result<Option<HeaderValue>, FramingError> {
    let headers = request.headers();
    let host = single_host(headers)?;
    let target = request.uri().authority();
    match request.version() {
        Version::HTTP_2 | Version::HTTP_3 => {
            connection_specific(headers)?;
            if let (Some(target), Some(host)) = (target, &host)
                && !target.as_str().eq_ignore_ascii_case(host_text(host)?)
            {
                return Err(FramingError::AuthorityMismatch);
            }
            if target.is_none() && host.is_none() {
                return Err(FramingError::MissingHost);
            }
        }
        Version::HTTP_10 | Version::HTTP_09 => {
            if headers.contains_key(header::TRANSFER_ENCODING) {
                return Err(FramingError::CodingInHttp10);
            }
        }
        _ => {
            transfer_encoding(headers)?;
            if target.is_none() && host.is_none() {
                return Err(FramingError::MissingHost);
            }
        }
    }
    match (target, host) {
        // User information in the authority is deprecated and never a host (RFC 9110 §4.2.4,
        // RFC 9113 §8.3.1).
        (Some(target), _) if target.as_str().contains('@') => Err(FramingError::BadHost),
        (Some(target), _) => HeaderValue::from_str(target.as_str())
            .map(Some)
            .map_err(|_| FramingError::BadHost),
        (None, host) => Ok(host),
    }
}

/// The connection-specific fields RFC 9113 §8.2.2 names; `te` only as `trailers`.
static CONNECTION_SPECIFIC: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn connection_specific(headers: &HeaderMap) -> Result<(), FramingError> {
    // One pass of cheap comparisons; nearly every request has none of these.
    if !headers
        .keys()
        .any(|name| *name == header::TE || CONNECTION_SPECIFIC.contains(name))
    {
        return Ok(());
    }
    let te_ok = headers
        .get_all(header::TE)
        .iter()
        .all(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if te_ok && !CONNECTION_SPECIFIC.iter().any(|n| headers.contains_key(n)) {
        Ok(())
    } else {
        Err(FramingError::ConnectionSpecific)
    }
}

/// The one `Host` header, checked to be a host with an optional port; `None` when absent or
/// empty (RFC 9112 §3.2 allows an empty one when the target has no authority).
fn single_host(headers: &HeaderMap) -> Result<Option<HeaderValue>, FramingError> {
    let mut values = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (values.next(), values.next()) else {
        return match headers.contains_key(header::HOST) {
            true => Err(FramingError::MultipleHost),
            false => Ok(None),
        };
    };
    if host.is_empty() {
        return Ok(None);
    }
    host_text(host)?;
    Ok(Some(host.clone()))
}

/// A `Host` value as text, when it is an authority without user information.
fn host_text(host: &HeaderValue) -> Result<&str, FramingError> {
    let text = host.to_str().map_err(|_| FramingError::BadHost)?;
    match Authority::try_from(text) {
        Ok(authority) if !text.contains('@') && authority.as_str() == text => Ok(text),
        _ => Err(FramingError::BadHost),
    }
}

/// `Transfer-Encoding`, when present, must be one field saying exactly `chunked`.
fn transfer_encoding(headers: &HeaderMap) -> Result<(), FramingError> {
    let mut fields = headers.get_all(header::TRANSFER_ENCODING).iter().peekable();
    if fields.peek().is_none() {
        return Ok(());
    }
    let mut codings = 0;
    for field in fields {
        let text = field
            .to_str()
            .map_err(|_| FramingError::UnsupportedCoding)?;
        for coding in text.split(',') {
            if !coding.trim().eq_ignore_ascii_case("chunked") {
                return Err(FramingError::UnsupportedCoding);
            }
            codings += 1;
        }
    }
    if codings == 1 {
        Ok(())
    } else {
        Err(FramingError::BadTransferEncoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get(target).version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn h1(headers: &[(&str, &str)]) -> Result<Option<HeaderValue>, FramingError> {
        check(&request(Version::HTTP_11, "/x", headers))
    }

    #[test]
    fn http11_needs_one_valid_host() {
        assert_eq!(
            h1(&[("host", "app.example:8443")]).unwrap().unwrap(),
            "app.example:8443"
        );
        assert_eq!(h1(&[]), Err(FramingError::MissingHost));
        assert_eq!(
            h1(&[("host", "a.example"), ("host", "b.example")]),
            Err(FramingError::MultipleHost)
        );
        for bad in [
            "a b",
            "user@app.example",
            "app.example/admin",
            "app.example?x",
            "[::1",
        ] {
            assert_eq!(h1(&[("host", bad)]), Err(FramingError::BadHost), "{bad}");
        }
        // An absolute-form target names the authority; the empty Host then says nothing.
        let absolute = request(Version::HTTP_11, "http://app.example/x", &[("host", "")]);
        assert_eq!(check(&absolute).unwrap().unwrap(), "app.example");
        let http10 = request(Version::HTTP_10, "/x", &[]);
        assert_eq!(check(&http10), Ok(None));
        let userinfo = request(Version::HTTP_11, "http://user@app.example/x", &[]);
        assert_eq!(check(&userinfo), Err(FramingError::BadHost));
    }

    #[test]
    fn transfer_encoding_is_exactly_chunked() {
        let host = ("host", "a");
        assert!(h1(&[host, ("transfer-encoding", "chunked")]).is_ok());
        assert!(h1(&[host, ("transfer-encoding", "Chunked")]).is_ok());
        for coding in ["gzip, chunked", "identity", "gzip", "chunked, gzip", "x"] {
            assert_eq!(
                h1(&[host, ("transfer-encoding", coding)]),
                Err(FramingError::UnsupportedCoding),
                "{coding}"
            );
        }
        assert_eq!(
            h1(&[host, ("transfer-encoding", "chunked, chunked")]),
            Err(FramingError::BadTransferEncoding)
        );
        assert_eq!(
            h1(&[
                host,
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ]),
            Err(FramingError::BadTransferEncoding)
        );
        let http10 = request(Version::HTTP_10, "/x", &[("transfer-encoding", "chunked")]);
        assert_eq!(check(&http10), Err(FramingError::CodingInHttp10));
        assert!(FramingError::UnsupportedCoding.not_implemented());
        assert!(!FramingError::BadTransferEncoding.not_implemented());
    }

    #[test]
    fn http2_refuses_connection_specific_fields_and_disagreeing_authorities() {
        let h2 = |headers: &[(&str, &str)]| {
            check(&request(Version::HTTP_2, "https://app.example/x", headers))
        };
        assert_eq!(h2(&[]).unwrap().unwrap(), "app.example");
        assert!(h2(&[("te", "trailers")]).is_ok());
        // Not connection-specific in HTTP/2: gRPC and proxies use them.
        assert!(
            h2(&[
                ("trailer", "grpc-status"),
                ("proxy-authorization", "Basic x")
            ])
            .is_ok()
        );
        assert!(h2(&[("host", "APP.example")]).is_ok());
        for (name, value) in [
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
        ] {
            assert_eq!(
                h2(&[(name, value)]),
                Err(FramingError::ConnectionSpecific),
                "{name}"
            );
        }
        assert_eq!(
            h2(&[("te", "trailers"), ("connection", "te")]),
            Err(FramingError::ConnectionSpecific)
        );
        assert_eq!(
            h2(&[("host", "other.example")]),
            Err(FramingError::AuthorityMismatch)
        );
        // No :authority: the host header addresses the request, as in HTTP/1.1.
        let origin_form = request(Version::HTTP_2, "/x", &[("host", "app.example")]);
        assert_eq!(check(&origin_form).unwrap().unwrap(), "app.example");
        let nowhere = request(Version::HTTP_2, "/x", &[]);
        assert_eq!(check(&nowhere), Err(FramingError::MissingHost));
    }
}

//! CORS on a route (`cors:` in a policy file): which requests are preflights, which origins a
//! route allows, the preflight answers Gatehouse gives itself (`preflight: answer`), and the
//! headers that let a page on an allowed origin read Gatehouse's own 401 and 403.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`, no body) cannot
//! carry a credential, so it is never authenticated, never redirected to a login and never
//! forwarded with an identity. It is judged by the route of the request it announces (the
//! requested method, the path and host). With `preflight: pass` it goes to the app with no
//! identity and the app's answer comes back unchanged; with `preflight: answer` Gatehouse
//! answers it from the route's lists; on a route without `cors` it is refused (403, no CORS
//! headers). An `OPTIONS` that is not a preflight is an ordinary request.
//!
//! Pure: no server, stack or proxy here; `policy` holds a [`Cors`] per rule, `stack` and
//! `forward_auth` call in.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::body::{self, Body};

/// What a route does with a preflight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightMode {
    /// Forward it to the app, with no identity; the app answers.
    Pass,
    /// Gatehouse answers from the route's lists.
    Answer,
}

/// A route's validated `cors` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub preflight: PreflightMode,
    pub origins: Origins,
    /// Methods a preflight may ask for beyond the CORS-safelisted GET, HEAD and POST.
    pub methods: Vec<Method>,
    /// Request headers a preflight may ask for, lowercased.
    pub headers: Vec<String>,
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: Option<u64>,
}

/// The origins a route allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// `*`: any origin, answered with `*` (only without credentials).
    Any,
    List(Vec<OriginPattern>),
}

/// One entry of `allowed_origins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `https://app.example.com[:port]`, in its serialized form (lowercase, no default port).
    Exact(String),
    /// `https://*.example.com[:port]`: one or more labels before `parent`, the same scheme and
    /// port; never `parent` itself.
    Subdomains {
        scheme: String,
        parent: String,
        port: Option<u16>,
    },
}

/// An origin taken apart: scheme, host, port (`None` for the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    scheme: String,
    host: String,
    port: Option<u16>,
}

/// Parses `scheme://host[:port]` as a browser serializes an origin: `http` or `https`, a host
/// of DNS labels or an IP literal, no user, path, query or fragment. Case is ignored and a
/// default port dropped; `wildcard` allows `*.` before the host.
fn parse_origin(text: &str, wildcard: bool) -> Result<(Parsed, bool), String> {
    let bad = |why: &str| Err(format!("`{text}` is not an origin: {why}"));
    let lower = text.trim().to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return bad("write it as `https://host` or `https://host:port`");
    };
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return bad("the scheme must be `http` or `https`"),
    };
    if rest.contains(['/', '?', '#', '@', ' ', '\\']) {
        return bad("an origin has no path, query, user or spaces (and no trailing `/`)");
    }
    let (host, port) = match split_port(rest) {
        Some((host, None)) => (host, None),
        Some((host, Some(port))) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return bad("the port must be a number from 1 to 65535"),
            Ok(p) if p == default_port => (host, None),
            Ok(p) => (host, Some(p)),
        },
        None => return bad("a bracket is not closed"),
    };
    let (host, is_wildcard) = match host.strip_prefix("*.") {
        Some(parent) if wildcard => (parent, true),
        Some(_) => return bad("a wildcard is not an origin"),
        None => (host, false),
    };
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
        || host.parse::<std::net::Ipv4Addr>().is_ok();
    if !ip && !is_dns_name(host) {
        return bad("the host must be a DNS name or an IP address");
    }
    if is_wildcard && (ip || !host.contains('.')) {
        return bad("`*.` must stand before a domain with a dot, like `https://*.example.com`");
    }
    Ok((
        Parsed {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
        },
        is_wildcard,
    ))
}

/// `host[:port]` or `[v6]:port` apart; `None` for an unclosed bracket.
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let (host, rest) = authority.split_at(end);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':').unwrap_or(rest)))),
        };
    }
    Some(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

impl OriginPattern {
    /// One `allowed_origins` entry (not `*`, which [`Origins::Any`] stands for).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (parsed, wildcard) = parse_origin(text, true)?;
        Ok(match wildcard {
            true => Self::Subdomains {
                scheme: parsed.scheme,
                parent: parsed.host,
                port: parsed.port,
            },
            false => Self::Exact(parsed.serialize()),
        })
    }

    fn matches(&self, origin: &Parsed) -> bool {
        match self {
            Self::Exact(exact) => *exact == origin.serialize(),
            Self::Subdomains {
                scheme,
                parent,
                port,
            } => {
                *scheme == origin.scheme
                    && *port == origin.port
                    && origin
                        .host
                        .strip_suffix(parent.as_str())
                        .and_then(|labels| labels.strip_suffix('.'))
                        .is_some_and(|labels| !labels.is_empty())
            }
        }
    }
}

impl Parsed {
    fn serialize(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// A CORS preflight, as the browser sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// The `Origin` header, as sent.
    pub origin: HeaderValue,
    /// `Access-Control-Request-Method`: what the real request will be.
    pub method: Method,
    /// `Access-Control-Request-Headers`, lowercased.
    pub headers: Vec<String>,
}

const REQUEST_METHOD: HeaderName = HeaderName::from_static("access-control-request-method");
const REQUEST_HEADERS: HeaderName = HeaderName::from_static("access-control-request-headers");

impl Preflight {
    /// The preflight `method` and `headers` describe, if they describe one: `OPTIONS` with
    /// `Origin` and `Access-Control-Request-Method` and no body (`bodyless`). Anything else
    /// (an `OPTIONS` with a body or without those headers) is `Ok(None)`, an ordinary request.
    /// A repeated `Origin` or request method, or one that is not a method, is an error.
    pub fn of(
        method: &Method,
        headers: &HeaderMap,
        bodyless: bool,
    ) -> Result<Option<Self>, &'static str> {
        if method != Method::OPTIONS
            || !bodyless
            || !headers.contains_key(header::ORIGIN)
            || !headers.contains_key(REQUEST_METHOD)
        {
            return Ok(None);
        }
        let one = |name: &HeaderName| crate::headers::single_value(headers, name);
        let origin = one(&header::ORIGIN).ok_or("a preflight has exactly one `Origin`")?;
        let requested = one(&REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or("`Access-Control-Request-Method` is not one method")?;
        let mut asked = Vec::new();
        for value in headers.get_all(REQUEST_HEADERS) {
            let text = value
                .to_str()
                .map_err(|_| "`Access-Control-Request-Headers` is not text")?;
            asked.extend(
                text.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty()),
            );
        }
        Ok(Some(Self {
            origin: origin.clone(),
            method: requested,
            headers: asked,
        }))
    }
}

/// Why `answer` mode refused a preflight (for the audit line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The route has no `cors` block (or no route matched).
    NoCors,
    Origin,
    Method(Method),
    Header(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoCors => f.write_str("cors preflight on a route without cors"),
            Self::Origin => f.write_str("cors preflight from an origin not allowed"),
            Self::Method(m) => write!(f, "cors preflight for method {m}, not allowed"),
            Self::Header(h) => write!(f, "cors preflight for header {h}, not allowed"),
        }
    }
}

/// Methods a CORS request may use without being listed (Fetch, "CORS-safelisted method").
const SAFELISTED: [Method; 3] = [Method::GET, Method::HEAD, Method::POST];

impl Cors {
    /// Does the route allow `origin` (an `Origin` header value)? `null` and anything that is
    /// not a serialized origin never match.
    pub fn allows_origin(&self, origin: &HeaderValue) -> bool {
        let Some(parsed) = origin
            .to_str()
            .ok()
            .and_then(|o| parse_origin(o, false).ok())
            .map(|(parsed, _)| parsed)
        else {
            return false;
        };
        match &self.origins {
            Origins::Any => true,
            Origins::List(patterns) => patterns.iter().any(|p| p.matches(&parsed)),
        }
    }

    /// Checks a preflight against the lists.
    pub fn check(&self, preflight: &Preflight) -> Result<(), Refused> {
        if !self.allows_origin(&preflight.origin) {
            return Err(Refused::Origin);
        }
        if !SAFELISTED.contains(&preflight.method) && !self.methods.contains(&preflight.method) {
            return Err(Refused::Method(preflight.method.clone()));
        }
        if let Some(h) = preflight.headers.iter().find(|h| !self.headers.contains(h)) {
            return Err(Refused::Header(h.clone()));
        }
        Ok(())
    }

    /// The answer to a preflight in `answer` mode: 204 with the allow headers when it matches
    /// the lists, else 403 without them (the browser then blocks the real request).
    pub fn answer(&self, preflight: &Preflight) -> (Response<Body>, Result<(), Refused>) {
        let checked = self.check(preflight);
        let mut response = match &checked {
            Ok(()) => {
                let mut response = Response::new(body::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                self.allow_headers(response.headers_mut(), preflight);
                response
            }
            Err(_) => refused_preflight(),
        };
        self.vary(response.headers_mut(), true);
        (response, checked)
    }

    /// The allow headers of a matching preflight, also sent on a forward-auth 202.
    pub fn allow_headers(&self, headers: &mut HeaderMap, preflight: &Preflight) {
        self.allow_origin(headers, &preflight.origin);
        let methods: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        let methods = match methods.is_empty() {
            true => preflight.method.as_str().to_owned(),
            false => methods.join(", "),
        };
        if let Ok(value) = HeaderValue::from_str(&methods) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
        }
        if !preflight.headers.is_empty()
            && let Ok(value) = HeaderValue::from_str(&preflight.headers.join(", "))
        {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        if let Some(seconds) = self.max_age {
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(seconds));
        }
    }

    /// `Access-Control-Allow-Origin` (the origin, or `*` for `Origins::Any`) and, when
    /// configured, `Access-Control-Allow-Credentials`.
    fn allow_origin(&self, headers: &mut HeaderMap, origin: &HeaderValue) {
        let value = match self.origins {
            Origins::Any => HeaderValue::from_static("*"),
            Origins::List(_) => origin.clone(),
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// `Vary`: `Origin` when the answer depends on it, and the preflight's request headers.
    fn vary(&self, headers: &mut HeaderMap, preflight: bool) {
        let mut names = Vec::new();
        if self.origins != Origins::Any {
            names.push("Origin");
        }
        if preflight {
            names.extend([
                "Access-Control-Request-Method",
                "Access-Control-Request-Headers",
            ]);
        }
        if !names.is_empty()
            && let Ok(value) = HeaderValue::from_str(&names.join(", "))
        {
            headers.append(header::VARY, value);
        }
    }

    /// Gatehouse's own 401 or 403 (JSON or HTML) to a request with an allowed `Origin`
    /// carries the allow headers, so that the page can read it instead of seeing a CORS
    /// error; `WWW-Authenticate` is exposed to it. Other answers are left alone.
    pub fn decorate_denial(&self, origin: Option<&HeaderValue>, response: &mut Response<Body>) {
        if !matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return;
        }
        self.decorate(origin, response.headers_mut(), true);
    }

    /// The app's answer on an `answer` route gets the allow headers unless the app set its
    /// own; a `pass` route's answers go back unchanged.
    pub fn decorate_forwarded(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        if self.preflight == PreflightMode::Answer
            && !response.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        {
            self.decorate(origin, response, false);
        }
    }

    fn decorate(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap, expose: bool) {
        let Some(origin) = origin else {
            return;
        };
        self.vary(response, false);
        if !self.allows_origin(origin) {
            return;
        }
        self.allow_origin(response, origin);
        if expose {
            response.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("WWW-Authenticate"),
            );
        }
    }
}

/// A preflight refused: 403, no CORS headers, so the browser blocks the real request.
pub fn refused_preflight() -> Response<Body> {
    let payload = serde_json::json!({
        "error": "forbidden",
        "message": "this CORS preflight is not allowed",
    });
    let mut response = Response::new(body::full(payload.to_string()));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests;

//! The request pipeline, assembled in one place in lifecycle order (design.md, "Request
//! lifecycle"). Each step says why it sits where it does. Connection-level work (TLS, header
//! limits, timeouts) happened in `server` before a request reaches this point.

use std::net::SocketAddr;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::body::{AccessRecord, Body, Metered};
use crate::error::ProxyError;
use crate::headers::{self, TrustedProxies, X_REQUEST_ID};
use crate::path;
use crate::proxy::Upstream;
use crate::telemetry;

/// Everything a request needs that lives as long as the server.
#[derive(Debug)]
pub struct App {
    pub upstream: Upstream,
    pub trusted_proxies: TrustedProxies,
}

/// What the server knows about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `https` or `http`: the listener's scheme, for `X-Forwarded-Proto`.
    pub scheme: &'static str,
}

pub type ResponseBody = Metered<Body>;

pub async fn handle(
    app: &App,
    conn: ConnInfo,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    // 1. Identify and start recording first, so that every answer below, even a 400, carries
    //    the request id and produces exactly one access-log line.
    let request_id = headers::request_id(request.headers());
    let mut record = AccessRecord::start(
        request.method().clone(),
        request.uri().path(),
        request_id.clone(),
    );

    let mut response = match pipeline(app, conn, &mut request, &request_id) {
        Ok(forward) => {
            // 2..4 passed: forward exactly what was checked.
            let started = Instant::now();
            let result = app
                .upstream
                .forward(request, forward.path, forward.host, forward.upgrade)
                .await;
            record.upstream_time = Some(started.elapsed());
            match result {
                Ok(mut response) => {
                    // Hop-by-hop headers of the upstream's connection stay with it.
                    headers::remove_hop_by_hop(response.headers_mut());
                    response.map(Body::Left)
                }
                Err(error) => {
                    telemetry::upstream_error(error.code());
                    error.into_response()
                }
            }
        }
        Err(error) => error.into_response(),
    };

    // 5. Record: the id goes back to the client; the log line is written when the body ends.
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    record.status = response.status().as_u16();
    response.map(|body| Metered::new(body, record))
}

/// What the checks decided to send upstream.
struct Forward {
    path: PathAndQuery,
    host: Option<HeaderValue>,
    upgrade: bool,
}

fn pipeline(
    app: &App,
    conn: ConnInfo,
    request: &mut Request<Incoming>,
    request_id: &HeaderValue,
) -> Result<Forward, ProxyError> {
    // 2. Hygiene, before anything reads the headers: a client must not be able to smuggle
    //    a header past us by naming it in `Connection`, nor keep hop-by-hop state upstream.
    let upgrade = headers::remove_hop_by_hop(request.headers_mut()).is_some();

    // 3. The request target. Only origin-form paths are proxied; the authority of an
    //    absolute-form target replaces `Host` (RFC 9112 §3.2.2) and is never a route.
    if request.method() == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed);
    }
    if !request.uri().path().starts_with('/') {
        return Err(ProxyError::BadRequest("the request target must be a path"));
    }
    // The canonical path is computed once; matching and forwarding both use it, so the
    // upstream can never be handed a path other than the one that was checked.
    let canonical = path::canonicalize(request.uri().path()).map_err(ProxyError::BadPath)?;
    let path = match request.uri().query() {
        Some(query) => PathAndQuery::try_from(format!("{canonical}?{query}")),
        None => PathAndQuery::try_from(canonical),
    }
    .map_err(|_| ProxyError::BadRequest("the request target cannot be forwarded"))?;
    let host = match request.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => {
            if request.headers().get_all(header::HOST).iter().count() > 1 {
                return Err(ProxyError::BadRequest("more than one Host header"));
            }
            request.headers().get(header::HOST).cloned()
        }
    };

    // 4. Forwarding headers describe this hop; client copies count only from trusted proxies.
    headers::set_forwarded(
        request.headers_mut(),
        conn.peer.ip(),
        conn.scheme,
        host.clone(),
        &app.trusted_proxies,
    );
    request
        .headers_mut()
        .insert(X_REQUEST_ID, request_id.clone());
    Ok(Forward {
        path,
        host,
        upgrade,
    })
}

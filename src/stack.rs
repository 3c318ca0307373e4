//! The request pipeline, assembled in one place in lifecycle order (design.md, "Request
//! lifecycle"). Each step says why it sits where it does. Connection-level work (TLS, header
//! limits, timeouts) happened in `server` before a request reaches this point.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::auth::jwt::{self, Authenticated, TokenError, Verifier};
use crate::body::{AccessRecord, Body, Metered};
use crate::error::{Credential, ProxyError};
use crate::headers::{self, TrustedProxies, X_REQUEST_ID};
use crate::identity::IdentityHeaders;
use crate::path;
use crate::policy::{AuthMode, Decision, DefaultAction, Policy, Route};
use crate::proxy::Upstream;
use crate::telemetry;

/// Everything a request needs that lives as long as the server.
#[derive(Debug)]
pub struct App {
    pub upstream: Upstream,
    pub trusted_proxies: TrustedProxies,
    /// Swapped whole when the policy files change.
    pub policy: Arc<ArcSwap<Policy>>,
    pub verifier: Arc<Verifier>,
    pub identity: IdentityHeaders,
    pub max_headers: usize,
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

    let mut response = match admit(app, conn, &mut request, &request_id).await {
        Ok(forward) => {
            // 10. Forward exactly what was checked.
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
        // 8. Every refusal is answered here, from the one mapping in `error`.
        Err(error) => error.into_response(),
    };

    // 11. Record: the id goes back to the client; the log line is written when the body ends.
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

/// Steps 2 to 9: everything that decides whether and how the request goes upstream.
async fn admit(
    app: &App,
    conn: ConnInfo,
    request: &mut Request<Incoming>,
    request_id: &HeaderValue,
) -> Result<Forward, ProxyError> {
    // 2. Hygiene, before anything reads the headers: hop-by-hop headers and everything named
    //    in `Connection` go first (so `Connection: X-User-Id` cannot remove what we inject
    //    later), then every client spelling of our identity headers.
    let upgrade = headers::remove_hop_by_hop(request.headers_mut()).is_some();
    app.identity.strip_spoofed(request.headers_mut());
    if request.headers().len() > app.max_headers {
        return Err(ProxyError::HeadersTooLarge);
    }

    // 3. The request target. Only origin-form paths are proxied; the authority of an
    //    absolute-form target replaces `Host` (RFC 9112 §3.2.2) and is never a route. The
    //    canonical path is computed once: matching and forwarding both use it, so the upstream
    //    can never be handed a path other than the one that was checked.
    if request.method() == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed);
    }
    if !request.uri().path().starts_with('/') {
        return Err(ProxyError::BadRequest("the request target must be a path"));
    }
    let canonical = path::canonicalize(request.uri().path()).map_err(ProxyError::BadPath)?;
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

    // 5. Route match on (method, canonical path, host); the first rule wins.
    let policy = app.policy.load();
    let host_name = host.as_ref().and_then(|h| h.to_str().ok());
    let rule = match policy.route(request.method(), &canonical, host_name) {
        Route::Rule(rule) => rule,
        Route::Default(DefaultAction::Allow) => {
            telemetry::decision("(default)", "allow");
            request.headers_mut().remove(header::AUTHORIZATION);
            return forward(request, canonical, host, upgrade);
        }
        Route::Default(DefaultAction::Deny) => {
            telemetry::decision("(default)", "forbidden");
            return Err(ProxyError::NoRoute);
        }
    };

    // 6. Authenticate as the rule asks. A public route never looks at credentials.
    let authenticated = match rule.auth {
        AuthMode::None => None,
        AuthMode::Bearer | AuthMode::Any | AuthMode::Session => match bearer(app, request).await {
            Ok(authenticated) => authenticated,
            Err(error) => {
                telemetry::decision(&rule.name, "unauthenticated");
                return Err(error);
            }
        },
    };

    // 7. Authorize against the rule's requirements.
    let principal = authenticated.as_ref().map(|a| a.principal.as_ref());
    match rule.authorize(principal) {
        Decision::Allow => telemetry::decision(&rule.name, "allow"),
        Decision::Unauthenticated => {
            telemetry::decision(&rule.name, "unauthenticated");
            return Err(ProxyError::Unauthenticated(Credential::Missing));
        }
        Decision::Forbidden(denial) => {
            telemetry::decision(&rule.name, "forbidden");
            return Err(ProxyError::Forbidden {
                needed: denial.needed,
                scope: denial.scope,
            });
        }
    }

    // 9. Inject the identity; the credential itself stays here unless asked for.
    let pass_authorization =
        rule.pass_authorization || authenticated.as_ref().is_some_and(|a| a.pass_authorization);
    if !pass_authorization {
        request.headers_mut().remove(header::AUTHORIZATION);
    }
    if let Some(authenticated) = &authenticated {
        app.identity
            .inject(request.headers_mut(), &authenticated.principal);
    }
    forward(request, canonical, host, upgrade)
}

/// The bearer token of the request, verified; `None` when there is none.
async fn bearer(
    app: &App,
    request: &Request<Incoming>,
) -> Result<Option<Authenticated>, ProxyError> {
    let token = match jwt::bearer_token(request.headers()) {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(None),
        Err(_) => return Err(ProxyError::Unauthenticated(Credential::Malformed)),
    };
    match app.verifier.verify(token).await {
        Ok(authenticated) => Ok(Some(authenticated)),
        Err(TokenError::KeysUnavailable) => Err(ProxyError::KeysUnavailable),
        Err(why) => Err(ProxyError::Unauthenticated(Credential::Invalid(why))),
    }
}

fn forward(
    request: &Request<Incoming>,
    canonical: String,
    host: Option<HeaderValue>,
    upgrade: bool,
) -> Result<Forward, ProxyError> {
    let path = match request.uri().query() {
        Some(query) => PathAndQuery::try_from(format!("{canonical}?{query}")),
        None => PathAndQuery::try_from(canonical),
    }
    .map_err(|_| ProxyError::BadRequest("the request target cannot be forwarded"))?;
    Ok(Forward {
        path,
        host,
        upgrade,
    })
}

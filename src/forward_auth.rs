//! Forward-auth (`<prefix>/auth`, nginx `auth_request`, Traefik `forwardAuth`, Caddy
//! `forward_auth`): the policy decided for the request the proxy in front is about to pass,
//! not for the auth call itself.
//!
//! The original request is read from `X-Forwarded-Method`/`X-Original-Method`,
//! `X-Forwarded-Uri`/`X-Original-URI` and `X-Forwarded-Host`, only when the peer is one of
//! `trusted_proxies`: from anyone else those headers are ignored and the answer is for the
//! auth request as it arrived (its own method, path and host), so a client cannot pick the
//! route it is judged by. The path goes through the same canonicalization as a direct request,
//! and its query never takes part in matching. Then: route match, authentication as the rule
//! asks, authorization, and oauth2-proxy's `allowed_groups`, `allowed_emails` and
//! `allowed_email_domains` query parameters on top. The answer is 202 with the identity
//! headers, 401 (the proxy turns it into a login redirect) or 403; never a redirect, which
//! `auth_request` could not pass on.
//!
//! The endpoint exists whenever `login` is configured, and in a config without `login` only
//! with `forward_auth: true` (at `/oauth2/auth`), so that a bearer-only config does not
//! suddenly shadow an app path.
//!
//! Depends on `stack` for authentication (one implementation of "who is this caller"), on
//! `policy` and `path`; the pure parts ([`original`], [`Constraints`]) know nothing of either.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use oauth2::url::form_urlencoded;

use crate::auth::Principal;
use crate::body::{self, Body};
use crate::cors::{self, PreflightMode};
use crate::error::{Credential, ProxyError};
use crate::headers::single_value;
use crate::login;
use crate::path;
use crate::policy::{AuthMode, Decision, DefaultAction, Route};
use crate::stack::{self, App, Connection};
use crate::telemetry::{self, Outcome};

/// Where forward-auth lives in a config without `login`.
pub const DEFAULT_PATH: &str = "/oauth2/auth";

const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The request the decision is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    /// Canonical.
    pub path: String,
    pub host: Option<String>,
}

/// The auth request as it arrived, the fallback for everything the proxy did not say.
#[derive(Debug, Clone, Copy)]
pub struct Own<'a> {
    pub method: &'a Method,
    /// Canonical.
    pub path: &'a str,
    pub host: Option<&'a str>,
}

/// The original request: from the forwarding headers of a `trusted` peer, else `own`.
/// A header sent twice, a method or URI that is not one, or a path with no safe canonical
/// form is refused (400): guessing which one the proxy meant could pick the wrong route.
pub fn original(headers: &HeaderMap, trusted: bool, own: Own<'_>) -> Result<Original, ProxyError> {
    let mut found = Original {
        method: own.method.clone(),
        path: own.path.to_owned(),
        host: own.host.map(str::to_owned),
    };
    if !trusted {
        return Ok(found);
    }
    if let Some(method) = first_of(headers, &[X_FORWARDED_METHOD, X_ORIGINAL_METHOD])? {
        found.method = Method::from_bytes(method.as_bytes())
            .map_err(|_| ProxyError::BadRequest("X-Forwarded-Method is not a method"))?;
    }
    let mut uri_host = None;
    if let Some(uri) = first_of(headers, &[X_FORWARDED_URI, X_ORIGINAL_URI])? {
        let uri = uri
            .to_str()
            .map_err(|_| ProxyError::BadRequest("X-Forwarded-Uri is not text"))?;
        let (path, host) = target(uri)?;
        found.path = path::canonicalize(path).map_err(ProxyError::BadPath)?;
        uri_host = host;
    }
    if let Some(host) = first_of(headers, &[X_FORWARDED_HOST])? {
        let host = host
            .to_str()
            .ok()
            .filter(|h| !h.is_empty() && !h.contains(',') && !h.contains(' '))
            .ok_or(ProxyError::BadRequest("X-Forwarded-Host is not one host"))?;
        found.host = Some(host.to_owned());
    } else if let Some(host) = uri_host {
        found.host = Some(host.to_owned());
    }
    Ok(found)
}

/// The value of the first of `names` present; an error when that one is repeated.
fn first_of<'a>(
    headers: &'a HeaderMap,
    names: &[HeaderName],
) -> Result<Option<&'a HeaderValue>, ProxyError> {
    for name in names {
        if headers.contains_key(name) {
            return single_value(headers, name)
                .map(Some)
                .ok_or(ProxyError::BadRequest("a forward-auth header is repeated"));
        }
    }
    Ok(None)
}

/// The raw path of an origin-form (`/a?b`) or absolute (`https://host/a?b`) URI, and the
/// absolute one's host. Query and fragment are cut off: they never take part in matching.
fn target(uri: &str) -> Result<(&str, Option<&str>), ProxyError> {
    let cut = |s: &'_ str| -> usize { s.find(['?', '#']).unwrap_or(s.len()) };
    if uri.starts_with('/') && !uri.starts_with("//") {
        return Ok((&uri[..cut(uri)], None));
    }
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
        .ok_or(ProxyError::BadRequest("X-Forwarded-Uri must be a path"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    if host.is_empty() || host.contains('@') {
        return Err(ProxyError::BadRequest("X-Forwarded-Uri names no host"));
    }
    let path = &tail[..cut(tail)];
    Ok((if path.is_empty() { "/" } else { path }, Some(host)))
}

/// oauth2-proxy's query parameters on the auth request: each one given must be met (they add
/// to the route's requirements). Values are comma-separated and may repeat; a parameter given
/// with no value allows nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    /// Any one of these roles.
    groups: Option<Vec<String>>,
    /// One of these emails, exactly (ignoring case).
    emails: Option<Vec<String>>,
    /// An email in one of these domains: `example.com` exactly, `*.example.com` (or
    /// `.example.com`) any subdomain, `*` any.
    domains: Option<Vec<String>>,
}

impl Constraints {
    /// From the auth request's query string.
    pub fn parse(query: Option<&str>) -> Self {
        Self::from_pairs(form_urlencoded::parse(query.unwrap_or_default().as_bytes()))
    }

    /// From the query's (name, value) pairs, in order; other names are ignored.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut constraints = Self::default();
        for (key, value) in pairs {
            let list = match key.as_ref() {
                "allowed_groups" => &mut constraints.groups,
                "allowed_emails" => &mut constraints.emails,
                "allowed_email_domains" => &mut constraints.domains,
                _ => continue,
            };
            let items = value
                .as_ref()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            list.get_or_insert_with(Vec::new).extend(items);
        }
        constraints
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_none() && self.emails.is_none() && self.domains.is_none()
    }

    /// `None` when `principal` meets every constraint; else what was needed.
    pub fn unmet(&self, principal: &Principal) -> Option<String> {
        if let Some(groups) = &self.groups
            && !groups.iter().any(|g| principal.roles.contains(g))
        {
            return Some(format!("one of the groups {}", groups.join(", ")));
        }
        let email = principal.email.as_deref().map(str::to_ascii_lowercase);
        if let Some(emails) = &self.emails
            && !email
                .as_deref()
                .is_some_and(|e| emails.iter().any(|x| x.eq_ignore_ascii_case(e)))
        {
            return Some("an allowed email".to_owned());
        }
        if let Some(domains) = &self.domains
            && !email
                .as_deref()
                .is_some_and(|e| crate::policy::email_in_domains(e, domains))
        {
            return Some(format!("an email in the domains {}", domains.join(", ")));
        }
        None
    }
}

/// Is `canonical` the forward-auth endpoint of this app?
pub fn is_endpoint(app: &App, canonical: &str) -> bool {
    match (&app.login, app.forward_auth) {
        (Some(login), _) => login.endpoint_name(canonical) == Some("auth"),
        (None, true) => canonical == DEFAULT_PATH,
        (None, false) => false,
    }
}

/// Answers the auth request (its headers, its query's constraints): 202 with the identity,
/// or the refusal as the error.
pub async fn answer(
    app: &App,
    conn: &Connection,
    headers: &HeaderMap,
    constraints: Constraints,
    own: Own<'_>,
) -> Result<Response<Body>, ProxyError> {
    let trusted = app.trusted_proxies.contains(conn.info.peer.ip());
    let original = original(headers, trusted, own)?;
    // A preflight (the original method with the browser's CORS headers) carries no credential.
    if let Some(ask) =
        cors::Preflight::of(&original.method, headers, true).map_err(ProxyError::BadRequest)?
    {
        return Ok(preflight(app, &original, &ask));
    }
    let policy = app.policy.load();
    let (name, mode, rule) =
        match policy.route(&original.method, &original.path, original.host.as_deref()) {
            Route::Rule(rule) => (rule.name.as_str(), rule.auth, Some(rule)),
            Route::Default(DefaultAction::Allow) => ("(default)", AuthMode::None, None),
            Route::Default(DefaultAction::Deny) => {
                telemetry::decision("(default)", Outcome::Forbidden);
                return Err(ProxyError::NoRoute);
            }
        };
    // The parameters ask for someone: on a public route they need an identity all the same.
    let mode = match mode {
        AuthMode::None if !constraints.is_empty() => AuthMode::Any,
        mode => mode,
    };
    let caller = stack::authenticate(app, conn, headers, mode)
        .await
        .inspect_err(|_| telemetry::decision(name, Outcome::Unauthenticated))?;
    let principal = caller.authenticated.as_ref().map(|a| a.principal.as_ref());
    let decision = match (rule, principal) {
        _ if mode == AuthMode::None => Decision::Allow,
        (_, None) => Decision::Unauthenticated,
        (Some(rule), Some(p)) => rule.authorize(Some(p)),
        (None, Some(_)) => Decision::Allow,
    };
    let origin = headers.get(http::header::ORIGIN);
    let refused = |error: ProxyError| {
        let mut response = login::with_cookies(error.into_response(), &caller.set_cookies);
        if let Some(cors) = rule.and_then(|r| r.cors.as_deref()) {
            cors.decorate_denial(origin, &mut response);
        }
        response
    };
    let principal = match (decision, principal) {
        (Decision::Unauthenticated, _) => {
            telemetry::decision(name, Outcome::Unauthenticated);
            return Ok(refused(ProxyError::Unauthenticated(
                stack::missing_credential(mode),
            )));
        }
        (Decision::Forbidden(denial), _) => {
            telemetry::decision(name, Outcome::Forbidden);
            return Ok(refused(ProxyError::Forbidden {
                needed: denial.needed,
                scope: denial.scope,
            }));
        }
        (Decision::Allow, principal) => principal,
    };
    if let Some(needed) = principal.and_then(|p| constraints.unmet(p)) {
        telemetry::decision(name, Outcome::Forbidden);
        return Ok(refused(ProxyError::Forbidden {
            needed,
            scope: false,
        }));
    }
    telemetry::decision(name, Outcome::Allow);
    let response = match principal {
        Some(principal) => allowed(app, principal, caller.access_token.as_deref())?,
        None => {
            let mut response = Response::new(body::empty());
            *response.status_mut() = StatusCode::ACCEPTED;
            response
        }
    };
    Ok(login::with_cookies(response, &caller.set_cookies))
}

/// A preflight the proxy in front asks about, judged by the route of the request it announces
/// and never authenticated: 202 with no identity when the route's `cors` lets it through
/// (`pass`, or `answer` and the lists match; the allow headers then ride along for a proxy
/// that copies them) or the route is public without `cors`, 403 otherwise. Never 401: a login cannot help a preflight.
fn preflight(app: &App, original: &Original, ask: &cors::Preflight) -> Response<Body> {
    let policy = app.policy.load();
    let accepted = || {
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::ACCEPTED;
        response
    };
    let (name, cors) = match policy.route(&ask.method, &original.path, original.host.as_deref()) {
        // A public route without `cors` lets its preflights through, as a direct one would.
        Route::Rule(rule) if rule.cors.is_none() && rule.auth == AuthMode::None => {
            telemetry::decision(&rule.name, Outcome::Allow);
            return accepted();
        }
        Route::Rule(rule) => (rule.name.as_str(), rule.cors.as_deref()),
        Route::Default(DefaultAction::Allow) => {
            telemetry::decision("(default)", Outcome::Allow);
            return accepted();
        }
        Route::Default(DefaultAction::Deny) => ("(default)", None),
    };
    let response = match cors {
        Some(c) if c.preflight == PreflightMode::Pass => accepted(),
        Some(c) if c.check(ask).is_ok() => {
            let mut response = accepted();
            c.allow_headers(response.headers_mut(), ask);
            response
        }
        _ => cors::refused_preflight(),
    };
    let outcome = match response.status() {
        StatusCode::ACCEPTED => Outcome::Allow,
        _ => Outcome::Forbidden,
    };
    telemetry::decision(name, outcome);
    response
}

/// 202 with oauth2-proxy's `X-Auth-Request-*` headers and the configured identity headers, for
/// the proxy to copy onto the request it passes (`auth_request_set`, `authResponseHeaders`,
/// `copy_headers`).
fn allowed(
    app: &App,
    principal: &Principal,
    access_token: Option<&str>,
) -> Result<Response<Body>, ProxyError> {
    let unwritable = |error: crate::identity::IdentityError| {
        tracing::info!(subject = ?principal.subject, %error, "forward-auth refused: the identity cannot be sent in headers");
        ProxyError::Unauthenticated(Credential::Invalid(crate::auth::jwt::TokenError::Claims))
    };
    let mut response = login::auth_answer(principal, app.identity.rules()).map_err(unwritable)?;
    app.identity
        .inject(response.headers_mut(), principal)
        .map_err(unwritable)?;
    if let (Some(login), Some(token)) = (&app.login, access_token)
        && login.passes_access_token()
        && let Ok(value) = HeaderValue::from_str(token)
    {
        response
            .headers_mut()
            .insert("x-auth-request-access-token", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests;

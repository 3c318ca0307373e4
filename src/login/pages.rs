//! Small HTML pages for people: the 403 page (who you are, what the route needs, a way to sign
//! out) and login errors (what happened and what to do). They show nothing internal; every
//! value that came from a request or a token is escaped.

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body_html: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
<title>{title}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.4rem}}code{{background:#f3f3f3;padding:0 .2em}}a{{color:#0b57d0}}</style></head><body><h1>{title}</h1>{body_html}</body></html>\n",
        title = escape(title)
    );
    let mut response = Response::new(body::full(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

/// 403 for a signed-in person who lacks what the route needs.
pub fn forbidden(user: &str, roles: &[String], needed: &str, sign_out: &str) -> Response<Body> {
    let roles = if roles.is_empty() {
        "none".to_owned()
    } else {
        roles
            .iter()
            .map(|r| escape(r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let body = format!(
        "<p>You are signed in as <strong>{user}</strong> (roles: {roles}).</p>\
<p>This page needs <strong>{needed}</strong>. Ask an administrator for access, or \
<a href=\"{sign_out}\">sign out</a> and sign in as someone else.</p>",
        user = escape(user),
        needed = escape(needed),
        sign_out = escape(sign_out),
    );
    page(
        StatusCode::FORBIDDEN,
        "You do not have access to this page",
        &body,
    )
}

/// Why a login did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// The provider sent an error instead of a code (e.g. the person cancelled).
    Provider,
    /// The answer does not belong to a login this browser started.
    StateMismatch,
    /// The login took too long, or its cookie is gone.
    Expired,
    /// The code exchange or the ID token check failed.
    Rejected,
    /// The provider is not reachable or not yet discovered.
    Unavailable,
}

pub fn login_error(failure: LoginFailure, start: &str) -> Response<Body> {
    let (status, title, text) = match failure {
        LoginFailure::Provider => (
            StatusCode::FORBIDDEN,
            "Sign-in was not completed",
            "The sign-in provider did not sign you in (you may have cancelled).",
        ),
        LoginFailure::StateMismatch => (
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid here",
            "The answer from the sign-in provider does not match a sign-in started in this browser.",
        ),
        LoginFailure::Expired => (
            StatusCode::BAD_REQUEST,
            "This sign-in has expired",
            "The sign-in took too long, or was started in another browser or tab that has since finished.",
        ),
        LoginFailure::Rejected => (
            StatusCode::BAD_GATEWAY,
            "Sign-in could not be completed",
            "The sign-in provider's answer could not be verified.",
        ),
        LoginFailure::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            "The sign-in provider cannot be reached right now.",
        ),
    };
    let body = format!(
        "<p>{text}</p><p><a href=\"{}\">Sign in again</a></p>",
        escape(start)
    );
    page(status, title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let response = forbidden(
            "<script>alert(1)</script>",
            &["a&b".into()],
            "role \"x\"",
            "/oauth2/sign_out",
        );
        assert_eq!(response.status(), 403);
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}

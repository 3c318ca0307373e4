//! Small HTML pages for people: the 403 page (who you are, what the route needs, a way to sign
//! out), login errors (what happened and what to do) and the signed-out pages. They show
//! nothing internal; every value that came from a request or a token is escaped.

use http::{Response, StatusCode};

use crate::body::Body;

pub use crate::html::escape;

pub(super) fn page(status: StatusCode, title: &str, body_html: &str) -> Response<Body> {
    crate::html::page(status, title, "", body_html)
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

/// 503 for a person whose session cannot be checked (the session store is down): nothing is
/// cleared, and trying again shortly works.
pub fn store_unavailable() -> Response<Body> {
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is temporarily unavailable",
        "<p>Your session cannot be checked right now. You are still signed in: \
try again in a moment.</p>",
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("2"),
    );
    response
}

/// `signed_out`: where the provider sends the browser after logout (register it as the
/// post-logout redirect URI).
pub fn signed_out(start: &str) -> Response<Body> {
    let body = format!(
        "<p>You have signed out. You can close this window.</p><p><a href=\"{}\">Sign in again</a></p>",
        escape(start)
    );
    page(StatusCode::OK, "You are signed out", &body)
}

/// `<prefix>/start` with several providers and none named: one link per provider
/// (`(href, title)`), each starting that provider's login. Plain links, so the page works
/// without scripts and a link can be bookmarked.
pub fn chooser(choices: &[(String, &str)]) -> Response<Body> {
    let mut list = String::new();
    for (href, title) in choices {
        list.push_str(&format!(
            "<li><a class=\"provider\" href=\"{}\">Sign in with {}</a></li>",
            escape(href),
            escape(title)
        ));
    }
    let body = format!("<p>Choose how to sign in:</p><ul>{list}</ul>");
    let mut response = page(StatusCode::OK, "Sign in", &body);
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// `?provider=` names no configured provider.
pub fn unknown_provider(start: &str) -> Response<Body> {
    let body = format!(
        "<p>This sign-in link names a sign-in provider this site does not have.</p><p><a href=\"{}\">Choose how to sign in</a></p>",
        escape(start)
    );
    page(StatusCode::BAD_REQUEST, "Unknown sign-in provider", &body)
}

/// Sign-out while the provider's configuration is not loaded: our cookies are cleared, but
/// the provider could not be asked to end its session, so signing in again may not ask for a
/// password. Say so rather than pretend.
pub fn signed_out_here_only(start: &str, sign_out: &str) -> Response<Body> {
    let body = format!(
        "<p>You have signed out of this site, but the sign-in provider cannot be reached right now, so your session there may still be open: anyone using this browser could sign in again without a password.</p><p>Close the browser, or <a href=\"{}\">try signing out at the provider again</a> in a moment.</p><p><a href=\"{}\">Sign in again</a></p>",
        escape(sign_out),
        escape(start)
    );
    page(StatusCode::OK, "You are signed out here", &body)
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
    }

    async fn text(response: Response<Body>) -> String {
        use http_body_util::BodyExt;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn signed_out_pages_link_to_sign_in_again() {
        let page = text(signed_out("/oauth2/start?rd=%2F")).await;
        assert!(page.contains("You are signed out"), "{page}");
        assert!(page.contains("href=\"/oauth2/start?rd=%2F\""), "{page}");
        let page = text(signed_out_here_only("/s?a=1&b", "/oauth2/sign_out")).await;
        assert!(page.contains("may still be open"), "{page}");
        assert!(page.contains("href=\"/s?a=1&amp;b\""), "{page}");
        assert!(page.contains("href=\"/oauth2/sign_out\""), "{page}");
    }
}

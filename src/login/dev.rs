//! Dev mode's stand-in for an OpenID provider: a local page where the developer picks a user
//! and roles (from the dev user list, or typed). It uses the same flow cookie (`state`, checked
//! in constant time) and the same sealed session as a real login, so everything behind the
//! login (policies, identity headers, 403 pages, sign-out) behaves as it will in production.
//! Only `gatehouse dev` can turn it on; no config file can.
//!
//! The roles field is comma-separated, so a comma always separates two roles; every role and
//! the resulting session pass the same identity rules as a real login, and what is refused is
//! said on the page.

use std::fmt::Write as _;

use http::{HeaderMap, Response, StatusCode};
use oauth2::url::form_urlencoded;
use serde::Deserialize;

use super::pages::{self, escape};
use super::{Backend, Login, LoginFailure, SessionData, random_hex, redirect, with_cookies};
use crate::auth::ClaimMapping;
use crate::body::Body;
use crate::config::dev_user::{split_roles, valid};
use crate::config::{DEFAULT_ALGORITHMS, DevUser, SessionSettings};
use crate::devissuer;
use crate::identity::IdentityRules;

/// The user and roles as picked or typed, or what is wrong with them, in words for the page.
fn choice(user: &str, roles: &str) -> Result<(String, Vec<String>), String> {
    let user = user.trim();
    if !valid(user) {
        return Err(format!(
            "`{user}` is not a user name: use 1 to 64 letters, digits, `.`, `_`, `-`, `@` and `:`"
        ));
    }
    Ok((user.to_owned(), split_roles(roles)?))
}

impl Login {
    /// Login without an OpenID provider, for `gatehouse dev`; sessions must pass `rules`.
    pub fn new_dev(
        session: SessionSettings,
        users: Vec<DevUser>,
        rules: IdentityRules,
    ) -> Result<Self, String> {
        let settings = crate::config::LoginSettings {
            name: "dev".to_owned(),
            title: "dev login".to_owned(),
            issuer: devissuer::ISSUER.to_owned(),
            client_id: "gatehouse-dev".to_owned(),
            client_secret: None,
            redirect_url: String::new(),
            scopes: Vec::new(),
            params: Vec::new(),
            allowed_redirect_hosts: Vec::new(),
            claims: ClaimMapping::default(),
            prefix: "/oauth2".to_owned(),
            post_logout_redirect_url: None,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: std::time::Duration::from_secs(30),
            pass_access_token: false,
            set_authorization: false,
        };
        Self::assemble(settings, session, Backend::Dev(users), rules)
    }
}

/// The user picker, for a flow whose `state` is in its cookie.
pub(super) fn page(login: &Login, users: &[DevUser], state: &str) -> Response<Body> {
    let action = format!("{}/dev_login", login.settings.prefix);
    let link = |user: &DevUser| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("state", state)
            .append_pair("user", &user.name)
            .append_pair("roles", &user.roles.join(","))
            .finish();
        format!("{action}?{query}")
    };
    let mut list = String::new();
    for user in users {
        let roles = if user.roles.is_empty() {
            "no roles".to_owned()
        } else {
            user.roles.join(", ")
        };
        let _ = write!(
            list,
            "<li><a href=\"{}\">{}</a> <small>({})</small></li>",
            escape(&link(user)),
            escape(&user.name),
            escape(&roles)
        );
    }
    let body = format!(
        "<p><strong>Development sign-in.</strong> No identity provider is involved: pick who you want to be.</p>\
<ul>{list}</ul>\
<form method=get action=\"{action}\"><input type=hidden name=state value=\"{state}\">\
<p><label>User <input name=user required pattern=\"[A-Za-z0-9._@:-]{{1,64}}\"></label></p>\
<p><label>Roles <input name=roles placeholder=\"admin,dev\"></label> <small>comma-separated</small></p>\
<p><button type=submit>Sign in</button></p></form>",
        action = escape(&action),
        state = escape(state),
    );
    pages::page(StatusCode::OK, "Sign in (development)", &body)
}

/// The query of `<prefix>/dev_login`: the picker's form, sent with `GET`.
#[derive(Debug, Default, Deserialize)]
pub struct DevChoice {
    pub state: Option<String>,
    pub user: Option<String>,
    pub roles: Option<String>,
}

/// The picker's answer: a session for the chosen user and roles.
pub(super) async fn finish(
    login: &Login,
    params: &DevChoice,
    headers: &HeaderMap,
) -> Response<Body> {
    let retry = login.start_path("/");
    let state = params.state.as_deref().unwrap_or_default();
    let (flow, clear_flow) = match login.take_flow(state, headers) {
        Ok(taken) => taken,
        Err((failure, clear)) => return with_cookies(pages::login_error(failure, &retry), &clear),
    };
    let fail = || {
        with_cookies(
            pages::login_error(LoginFailure::Rejected, &retry),
            &clear_flow,
        )
    };
    let refuse = |message: &str| {
        tracing::info!(%message, "development login refused");
        let body = format!(
            "<p>{}</p><p><a href=\"{}\">Try again</a></p>",
            escape(message),
            escape(&retry)
        );
        let page = pages::page(StatusCode::BAD_REQUEST, "Sign-in was not completed", &body);
        with_cookies(page, &clear_flow)
    };
    let param = |value: &Option<String>| value.as_deref().unwrap_or_default().to_owned();
    let (user, roles) = match choice(&param(&params.user), &param(&params.roles)) {
        Ok(choice) => choice,
        Err(message) => return refuse(&message),
    };
    let Some(id) = random_hex(16) else {
        return fail();
    };
    let now = (login.clock)();
    let ends = now + login.session.lifetime.as_secs();
    let data = SessionData {
        id,
        email: Some(format!("{user}@localhost"))
            .filter(|_| !user.contains('@'))
            .or_else(|| Some(user.clone())),
        subject: user,
        roles,
        expires: ends,
        ends,
        refresh_token: None,
        id_token: None,
        claims: serde_json::Map::new(),
        access_token: None,
        sid: None,
        provider: None,
    };
    // The same rules as every other session, checked before it is made.
    if let Err(error) = login.principal(&data) {
        return refuse(&format!(
            "This identity cannot be sent to the app unambiguously: {error}."
        ));
    }
    match login.create_session(&data, headers).await {
        Ok(mut cookies) => {
            cookies.extend(clear_flow.iter().cloned());
            tracing::info!(user = %data.subject, roles = ?data.roles, "signed in (development login)");
            redirect(&flow.rd, cookies)
        }
        Err(_) => fail(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse_from_flags() {
        assert_eq!(
            DevUser::parse("alice=admin, dev").unwrap(),
            DevUser {
                name: "alice".into(),
                roles: vec!["admin".into(), "dev".into()]
            }
        );
        assert_eq!(DevUser::parse("bob").unwrap().roles, Vec::<String>::new());
        for bad in ["", "a b", "x=<script>", "é"] {
            assert!(DevUser::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn typed_choices_are_refused_in_words() {
        assert_eq!(
            choice(" alice ", "reader, admin,,").unwrap(),
            (
                "alice".to_owned(),
                vec!["reader".to_owned(), "admin".to_owned()]
            )
        );
        for (user, roles, says) in [
            (
                "alice",
                "reader admin",
                "`reader admin` is not a role name: separate roles with commas",
            ),
            (
                "alice",
                "dev,ad\u{7f}min",
                "`ad\u{7f}min` is not a role name",
            ),
            ("alice", "<b>", "`<b>` is not a role name"),
            ("al ice", "dev", "`al ice` is not a user name"),
            ("", "dev", "is not a user name"),
        ] {
            let message = choice(user, roles).unwrap_err();
            assert!(message.contains(says), "{user:?} {roles:?}: {message}");
        }
    }
}

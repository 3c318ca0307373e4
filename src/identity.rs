//! The identity headers the app receives: removing every client-sent spelling of them, and
//! writing ours from a verified [`Principal`].
//!
//! Spelling games are closed by comparing normalised names: case-insensitive, with `_` read as
//! `-` (some servers treat `X_User_Id` as `X-User-Id`). Stripping runs on every request, on
//! public routes too, after `Connection` handling, so a client can neither inject an identity
//! nor remove ours.
//!
//! What we write must mean one thing to the app. [`IdentityRules::check`] is the one place
//! that decides whether a principal can be written at all: no control character in the
//! subject, the email or a list item (a header cannot carry them, and leaving the header out
//! would pass an authenticated request without it), and, where a list is comma- or
//! space-joined, no item that holds the separator, is empty or has outer whitespace (the app
//! would split `reader,admin` into two roles). Principals are checked where they are made
//! (bearer tokens before caching, ID tokens at login, sessions when restored), so a refused
//! identity is never cached as verified.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::Principal;
use crate::config::{IdentitySettings, ListFormat};

/// Which value of a principal cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Subject,
    Email,
    /// The role at this index.
    Role(usize),
    /// The scope at this index.
    Scope(usize),
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Subject => f.write_str("the subject"),
            Self::Email => f.write_str("the email"),
            Self::Role(i) => write!(f, "role #{i}"),
            Self::Scope(i) => write!(f, "scope #{i}"),
        }
    }
}

/// Why a principal's identity cannot be sent to the app. For logs: the client is told only
/// that its claims are not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{0} holds a control character")]
    Control(Field),
    #[error("{0} holds `,`, which separates the items of a comma-joined list")]
    Separator(Field),
    #[error("{0} is empty or has leading or trailing whitespace, in a joined list")]
    Whitespace(Field),
    #[error("{0} holds whitespace, which separates the items of the scopes list")]
    InnerWhitespace(Field),
}

/// What a principal must satisfy to be written as headers; cheap to copy into everything
/// that makes principals. The default is the rules of the default settings (`csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityRules {
    /// Roles are comma-joined somewhere (`list_format: csv`, or `X-Forwarded-Groups`).
    roles_joined: bool,
    /// Scopes are space-joined (`list_format: csv`).
    scopes_joined: bool,
}

impl Default for IdentityRules {
    fn default() -> Self {
        Self::new(&IdentitySettings::default())
    }
}

impl IdentityRules {
    pub fn new(settings: &IdentitySettings) -> Self {
        let csv = settings.list_format == ListFormat::Csv;
        Self {
            roles_joined: csv || settings.oauth2_proxy,
            scopes_joined: csv,
        }
    }

    /// Can `principal` be written as our identity headers, meaning one thing to the app?
    pub fn check(&self, principal: &Principal) -> Result<(), IdentityError> {
        plain(&principal.subject, Field::Subject)?;
        if let Some(email) = &principal.email {
            plain(email, Field::Email)?;
        }
        for (i, role) in principal.roles.iter().enumerate() {
            plain(role, Field::Role(i))?;
            if self.roles_joined {
                list_item(role, Field::Role(i))?;
            }
        }
        for (i, scope) in principal.scopes.iter().enumerate() {
            plain(scope, Field::Scope(i))?;
            if self.scopes_joined {
                list_item(scope, Field::Scope(i))?;
                if scope.contains(char::is_whitespace) {
                    return Err(IdentityError::InnerWhitespace(Field::Scope(i)));
                }
            }
        }
        Ok(())
    }

    /// [`IdentityRules::check`], and the roles comma-joined whatever `list_format` says: for
    /// answers in oauth2-proxy's format (`X-Auth-Request-Groups`).
    pub fn check_groups(&self, principal: &Principal) -> Result<(), IdentityError> {
        Self {
            roles_joined: true,
            ..*self
        }
        .check(principal)
    }
}

fn plain(value: &str, field: Field) -> Result<(), IdentityError> {
    if value.chars().any(char::is_control) {
        return Err(IdentityError::Control(field));
    }
    Ok(())
}

fn list_item(value: &str, field: Field) -> Result<(), IdentityError> {
    if value.contains(',') {
        return Err(IdentityError::Separator(field));
    }
    if value.is_empty() || value.trim() != value {
        return Err(IdentityError::Whitespace(field));
    }
    Ok(())
}

/// Names a client may never send, whatever our configuration calls the headers we write.
const ALWAYS_STRIPPED: [&str; 16] = [
    "x-user-id",
    "x-user-roles",
    "x-user-email",
    "x-user-scopes",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    // Only Gatehouse may say which client certificate was verified, or sign an identity.
    "x-forwarded-client-cert",
    "x-gatehouse-assertion",
];

#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    settings: IdentitySettings,
    rules: IdentityRules,
    stripped: Vec<String>,
    /// Some stripped name does not start with `x` (a renamed header such as `Remote-User`).
    unprefixed: bool,
}

impl IdentityHeaders {
    pub fn new(settings: IdentitySettings) -> Self {
        let mut stripped: Vec<String> = ALWAYS_STRIPPED.iter().map(|s| s.to_string()).collect();
        let configured = [
            Some(&settings.user),
            Some(&settings.roles),
            settings.email.as_ref(),
            settings.scopes.as_ref(),
        ];
        for name in configured.into_iter().flatten() {
            let name = normalise(name.as_str());
            if !stripped.contains(&name) {
                stripped.push(name);
            }
        }
        Self {
            rules: IdentityRules::new(&settings),
            settings,
            unprefixed: stripped.iter().any(|s| !s.starts_with('x')),
            stripped,
        }
    }

    /// Also removes every client spelling of `name` (a header we write elsewhere, such as the
    /// signed assertion under a configured name).
    pub fn also_strip(&mut self, name: &HeaderName) {
        let name = normalise(name.as_str());
        if !self.stripped.contains(&name) {
            self.unprefixed |= !name.starts_with('x');
            self.stripped.push(name);
        }
    }

    /// The rules principals must satisfy to be written by [`IdentityHeaders::inject`].
    pub fn rules(&self) -> IdentityRules {
        self.rules
    }

    /// Removes every header whose normalised name is one we inject. Header names arrive
    /// lower-cased, so only `_` needs normalising; unless a configured name has no `x` prefix,
    /// only names starting with `x` can match.
    pub fn strip_spoofed(&self, headers: &mut HeaderMap) {
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| {
                let name = name.as_str();
                if !name.starts_with('x') && !self.unprefixed {
                    return false;
                }
                if name.contains('_') {
                    let normal = name.replace('_', "-");
                    self.stripped.contains(&normal)
                } else {
                    self.stripped.iter().any(|s| s == name)
                }
            })
            .cloned()
            .collect();
        for name in spoofed {
            headers.remove(name);
        }
    }

    /// Writes the identity of `principal`, which [`IdentityRules::check`] accepted where it
    /// was made. Should a value still not be a header value, nothing is half-written: the
    /// error says so and the request must be refused.
    pub fn inject(
        &self,
        headers: &mut HeaderMap,
        principal: &Principal,
    ) -> Result<(), IdentityError> {
        let value = |text: &str, field: Field| {
            HeaderValue::from_bytes(text.as_bytes()).map_err(|_| IdentityError::Control(field))
        };
        let json = |items: &[String], field: Field| {
            serde_json::to_string(items)
                .map_err(|_| IdentityError::Control(field))
                .and_then(|text| value(&text, field))
        };
        let mut out: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(7);
        let user = value(&principal.subject, Field::Subject)?;
        let email = principal
            .email
            .as_deref()
            .map(|email| value(email, Field::Email))
            .transpose()?;
        let comma_joined = || value(&principal.roles.join(","), Field::Role(0));
        let roles = match self.settings.list_format {
            ListFormat::Csv => comma_joined()?,
            ListFormat::Json => json(&principal.roles, Field::Role(0))?,
        };
        out.push((self.settings.user.clone(), user.clone()));
        out.push((self.settings.roles.clone(), roles));
        if let (Some(name), Some(email)) = (&self.settings.email, &email) {
            out.push((name.clone(), email.clone()));
        }
        if let Some(name) = &self.settings.scopes {
            let scopes = match self.settings.list_format {
                ListFormat::Csv => value(&principal.scopes.join(" "), Field::Scope(0))?,
                ListFormat::Json => json(&principal.scopes, Field::Scope(0))?,
            };
            out.push((name.clone(), scopes));
        }
        if self.settings.oauth2_proxy {
            out.push((HeaderName::from_static("x-forwarded-user"), user));
            // oauth2-proxy's own format, whatever `list_format` says.
            out.push((
                HeaderName::from_static("x-forwarded-groups"),
                comma_joined()?,
            ));
            if let Some(email) = email {
                out.push((HeaderName::from_static("x-forwarded-email"), email));
            }
            if let Some(name) = preferred_username(principal) {
                out.push((
                    HeaderName::from_static("x-forwarded-preferred-username"),
                    value(name, Field::Subject)?,
                ));
            }
        }
        for (name, value) in out {
            headers.insert(name, value);
        }
        Ok(())
    }
}

/// The `preferred_username` claim, as oauth2-proxy sends it (`X-Forwarded-Preferred-Username`,
/// `X-Auth-Request-Preferred-Username`), when it is a string.
pub fn preferred_username(principal: &Principal) -> Option<&str> {
    principal
        .claims
        .get("preferred_username")
        .and_then(serde_json::Value::as_str)
}

fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::AuthMethod;

    fn principal() -> Principal {
        Principal {
            subject: "alice".into(),
            issuer: "i".into(),
            email: Some("alice@example.com".into()),
            roles: vec!["admin".into(), "dev".into()],
            scopes: vec!["a".into(), "b".into()],
            claims: Arc::new(serde_json::json!({})),
            method: AuthMethod::Bearer,
        }
    }

    #[test]
    fn every_spelling_is_stripped() {
        let ids = IdentityHeaders::new(IdentitySettings::default());
        let mut h = HeaderMap::new();
        for name in [
            "X-User-Id",
            "x_user_id",
            "X_USER_ROLES",
            "x-Forwarded-User",
            "X-Auth-Request-Email",
            "X_Forwarded_Client_Cert",
            "x-gatehouse-assertion",
            "x-kept",
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("mallory"),
            );
        }
        ids.strip_spoofed(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn names_without_an_x_prefix_are_stripped_too() {
        let mut ids = IdentityHeaders::new(IdentitySettings {
            user: HeaderName::from_static("remote-user"),
            ..IdentitySettings::default()
        });
        ids.also_strip(&HeaderName::from_static("gatehouse-assertion"));
        let mut h = HeaderMap::new();
        for name in ["Remote_User", "remote-user", "Gatehouse_Assertion", "kept"] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("mallory"),
            );
        }
        ids.strip_spoofed(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["kept"]);
    }

    #[test]
    fn renamed_headers_are_stripped_and_written() {
        let settings = IdentitySettings {
            user: HeaderName::from_static("x-remote-user"),
            email: Some(HeaderName::from_static("x-user-email")),
            scopes: Some(HeaderName::from_static("x-user-scopes")),
            oauth2_proxy: true,
            ..IdentitySettings::default()
        };
        let ids = IdentityHeaders::new(settings);
        let mut h = HeaderMap::new();
        h.insert("x_remote_user", HeaderValue::from_static("mallory"));
        ids.strip_spoofed(&mut h);
        assert!(h.is_empty());
        ids.inject(&mut h, &principal()).unwrap();
        assert_eq!(h["x-remote-user"], "alice");
        assert_eq!(h["x-user-roles"], "admin,dev");
        assert_eq!(h["x-user-email"], "alice@example.com");
        assert_eq!(h["x-user-scopes"], "a b");
        assert_eq!(h["x-forwarded-user"], "alice");
        assert_eq!(h["x-forwarded-groups"], "admin,dev");
        assert_eq!(h["x-forwarded-email"], "alice@example.com");
    }

    #[test]
    fn control_characters_never_reach_a_header_nor_pass_silently() {
        let ids = IdentityHeaders::new(IdentitySettings::default());
        let mut p = principal();
        p.subject = "alice\r\nx-admin: 1".into();
        assert_eq!(
            ids.rules().check(&p),
            Err(IdentityError::Control(Field::Subject))
        );
        // Even unchecked, nothing is written and the caller is told.
        let mut h = HeaderMap::new();
        assert!(ids.inject(&mut h, &p).is_err());
        assert!(h.is_empty());
    }

    fn with(edit: impl Fn(&mut Principal)) -> Principal {
        let mut p = principal();
        edit(&mut p);
        p
    }

    fn settings(list_format: ListFormat, oauth2_proxy: bool) -> IdentitySettings {
        IdentitySettings {
            list_format,
            oauth2_proxy,
            scopes: Some(HeaderName::from_static("x-user-scopes")),
            ..IdentitySettings::default()
        }
    }

    #[test]
    fn csv_refuses_items_the_app_would_split_differently() {
        let csv = IdentityRules::new(&settings(ListFormat::Csv, false));
        assert_eq!(csv.check(&principal()), Ok(()));
        let refused = [
            (
                with(|p| p.roles = vec!["reader,admin".into()]),
                IdentityError::Separator(Field::Role(0)),
            ),
            (
                with(|p| p.roles.push(" admin".into())),
                IdentityError::Whitespace(Field::Role(2)),
            ),
            (
                with(|p| p.roles.push("admin\t".into())),
                IdentityError::Control(Field::Role(2)),
            ),
            (
                with(|p| p.roles.push(String::new())),
                IdentityError::Whitespace(Field::Role(2)),
            ),
            (
                with(|p| p.scopes.push("a,b".into())),
                IdentityError::Separator(Field::Scope(2)),
            ),
            (
                with(|p| p.scopes.push("a b".into())),
                IdentityError::InnerWhitespace(Field::Scope(2)),
            ),
            (
                with(|p| p.scopes.push("a\u{a0}b".into())),
                IdentityError::InnerWhitespace(Field::Scope(2)),
            ),
        ];
        for (p, error) in refused {
            assert_eq!(csv.check(&p), Err(error), "{p:?}");
        }
        // A comma in the subject or email is no list separator.
        assert_eq!(csv.check(&with(|p| p.subject = "Doe, Jane".into())), Ok(()));
    }

    #[test]
    fn control_characters_are_refused_under_every_format() {
        for format in [ListFormat::Csv, ListFormat::Json] {
            let rules = IdentityRules::new(&settings(format, false));
            for bad in ["a\r\nb", "a\u{0}", "a\u{7f}", "a\u{85}", "a\u{9b}"] {
                let subject = with(|p| p.subject = bad.into());
                assert_eq!(
                    rules.check(&subject),
                    Err(IdentityError::Control(Field::Subject))
                );
                let email = with(|p| p.email = Some(bad.into()));
                assert_eq!(
                    rules.check(&email),
                    Err(IdentityError::Control(Field::Email))
                );
                let role = with(|p| p.roles = vec![bad.into()]);
                assert_eq!(
                    rules.check(&role),
                    Err(IdentityError::Control(Field::Role(0)))
                );
                let scope = with(|p| p.scopes = vec![bad.into()]);
                assert_eq!(
                    rules.check(&scope),
                    Err(IdentityError::Control(Field::Scope(0)))
                );
            }
        }
    }

    #[test]
    fn json_lists_carry_any_item_except_where_groups_are_comma_joined() {
        let ids = IdentityHeaders::new(settings(ListFormat::Json, false));
        let p = with(|p| {
            p.roles = vec!["reader,admin".into(), " dev".into(), "\"q\"".into()];
            p.scopes = vec!["a b".into()];
        });
        assert_eq!(ids.rules().check(&p), Ok(()));
        let mut h = HeaderMap::new();
        ids.inject(&mut h, &p).unwrap();
        assert_eq!(h["x-user-roles"], r#"["reader,admin"," dev","\"q\""]"#);
        assert_eq!(h["x-user-scopes"], r#"["a b"]"#);
        assert_eq!(
            ids.rules().check_groups(&p),
            Err(IdentityError::Separator(Field::Role(0)))
        );
        let mut empty = principal();
        empty.roles.clear();
        ids.inject(&mut h, &empty).unwrap();
        assert_eq!(h["x-user-roles"], "[]");
        // With oauth2-proxy's headers on, `X-Forwarded-Groups` is comma-joined.
        let proxy = IdentityHeaders::new(settings(ListFormat::Json, true));
        assert_eq!(
            proxy.rules().check(&p),
            Err(IdentityError::Separator(Field::Role(0)))
        );
        let mut h = HeaderMap::new();
        proxy.inject(&mut h, &principal()).unwrap();
        assert_eq!(h["x-user-roles"], r#"["admin","dev"]"#);
        assert_eq!(h["x-forwarded-groups"], "admin,dev");
    }
}

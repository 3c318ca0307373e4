//! The identity headers the app receives: removing every client-sent spelling of them, and
//! writing ours from a verified [`Principal`].
//!
//! Spelling games are closed by comparing normalised names: case-insensitive, with `_` read as
//! `-` (some servers treat `X_User_Id` as `X-User-Id`). Stripping runs on every request, on
//! public routes too, after `Connection` handling, so a client can neither inject an identity
//! nor remove ours.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::Principal;
use crate::config::IdentitySettings;

/// Names a client may never send, whatever our configuration calls the headers we write.
const ALWAYS_STRIPPED: [&str; 12] = [
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
];

#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    settings: IdentitySettings,
    stripped: Vec<String>,
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
        Self { settings, stripped }
    }

    /// Removes every header whose normalised name is one we inject. Header names arrive
    /// lower-cased, so only `_` needs normalising, and only names starting with `x` can match.
    pub fn strip_spoofed(&self, headers: &mut HeaderMap) {
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| {
                let name = name.as_str();
                if !name.starts_with('x') {
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

    /// Writes the identity of `principal`. Values that cannot be header values (control
    /// characters) are left out rather than sent mangled.
    pub fn inject(&self, headers: &mut HeaderMap, principal: &Principal) {
        let roles = principal.roles.join(",");
        let mut set = |name: &HeaderName, value: &str| {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(name.clone(), value);
            }
        };
        set(&self.settings.user, &principal.subject);
        set(&self.settings.roles, &roles);
        if let (Some(name), Some(email)) = (&self.settings.email, &principal.email) {
            set(name, email);
        }
        if let Some(name) = &self.settings.scopes {
            set(name, &principal.scopes.join(" "));
        }
        if self.settings.oauth2_proxy {
            set(
                &HeaderName::from_static("x-forwarded-user"),
                &principal.subject,
            );
            set(&HeaderName::from_static("x-forwarded-groups"), &roles);
            if let Some(email) = &principal.email {
                set(&HeaderName::from_static("x-forwarded-email"), email);
            }
        }
    }
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
        ids.inject(&mut h, &principal());
        assert_eq!(h["x-remote-user"], "alice");
        assert_eq!(h["x-user-roles"], "admin,dev");
        assert_eq!(h["x-user-email"], "alice@example.com");
        assert_eq!(h["x-user-scopes"], "a b");
        assert_eq!(h["x-forwarded-user"], "alice");
        assert_eq!(h["x-forwarded-groups"], "admin,dev");
        assert_eq!(h["x-forwarded-email"], "alice@example.com");
    }

    #[test]
    fn control_characters_never_reach_a_header() {
        let ids = IdentityHeaders::new(IdentitySettings::default());
        let mut p = principal();
        p.subject = "alice\r\nx-admin: 1".into();
        let mut h = HeaderMap::new();
        ids.inject(&mut h, &p);
        assert!(!h.contains_key("x-user-id"));
    }
}

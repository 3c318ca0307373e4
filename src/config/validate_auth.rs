//! Validation of the identity settings: token issuers, identity headers, browser login and
//! the session cookie. Secrets are read here (not logged) so `gatehouse check` reports a
//! missing one.

use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;
use serde_saphyr::Spanned;

use super::raw;
use super::validate::Validator;
use super::*;
use crate::secret::SecretSource;

impl Validator<'_> {
    pub(super) fn secret(&mut self, raw: raw::RawSecret, field: &str) -> Option<SecretSource> {
        let source = match (raw.file, raw.env) {
            (Some(file), None) => (SecretSource::File(self.path(&file.value)), file.referenced),
            (None, Some(env)) => (SecretSource::Env(env.value), env.referenced),
            _ => {
                self.missing(field, "set exactly one of `file` or `env`");
                return None;
            }
        };
        if let Err(problem) = source.0.read() {
            self.error(&source.1, field, problem);
        }
        Some(source.0)
    }

    /// An issuer's (or the login's) claim paths; `field` is where they are, e.g. `login.claims`.
    pub(super) fn claim_paths(
        &mut self,
        raw: Option<raw::RawClaimPaths>,
        field: &str,
    ) -> ClaimMapping {
        let defaults = ClaimMapping::default();
        let claims = raw.unwrap_or_default();
        let list = |v: Option<Vec<Spanned<String>>>, default: Vec<String>| {
            v.map_or(default, |v| v.into_iter().map(|s| s.value).collect())
        };
        let roles_string = match claims.roles_string {
            None => defaults.roles_string,
            Some(v) => match v.value.as_str() {
                "reject" => RolesString::Reject,
                "split" => RolesString::Split,
                "single" => RolesString::Single,
                _ => {
                    self.error(
                        &v.referenced,
                        &format!("{field}.roles_string"),
                        "must be `reject`, `split` or `single`",
                    );
                    defaults.roles_string
                }
            },
        };
        ClaimMapping {
            subject: claims.subject.map_or(defaults.subject, |s| s.value),
            roles: list(claims.roles, defaults.roles),
            scopes: list(claims.scopes, defaults.scopes),
            email: claims.email.map_or(defaults.email, |s| s.value),
            roles_string,
        }
    }

    pub(super) fn algorithms(
        &mut self,
        raw: Option<Vec<Spanned<String>>>,
        field: &str,
    ) -> Vec<Algorithm> {
        match raw {
            None => DEFAULT_ALGORITHMS.to_vec(),
            Some(list) => list
                .into_iter()
                .filter_map(|a| match a.value.parse::<Algorithm>() {
                    Ok(alg) if DEFAULT_ALGORITHMS.contains(&alg) => Some(alg),
                    _ => {
                        let message = format!(
                            "`{}` is not accepted; use asymmetric algorithms: RS256/384/512, PS256/384/512, ES256/384, EdDSA",
                            a.value
                        );
                        self.error(&a.referenced, field, message);
                        None
                    }
                })
                .collect(),
        }
    }

    /// `login`: one provider or a list; names and issuers unique, and the shared settings
    /// written once, on the first.
    pub(super) fn login(&mut self, raw: raw::RawLogins) -> Vec<LoginSettings> {
        let (list, is_list) = raw.into_list();
        if is_list && list.is_empty() {
            self.missing(
                "login",
                "lists no provider: give at least one, or leave `login` out",
            );
        }
        let mut logins: Vec<LoginSettings> = Vec::new();
        let mut complete = true;
        for (i, mut raw) in list.into_iter().enumerate() {
            let at = if is_list {
                format!("login[{i}]")
            } else {
                "login".to_owned()
            };
            let name = match raw.name.take() {
                Some(name) => {
                    if !valid_provider_name(&name.value) {
                        self.error(
                            &name.referenced,
                            &format!("{at}.name"),
                            "must be 1 to 32 of `a-z 0-9 _ -`, starting with a letter or digit",
                        );
                    } else if logins.iter().any(|l| l.name == name.value) {
                        self.error(
                            &name.referenced,
                            &format!("{at}.name"),
                            format!("`{}` names another provider already", name.value),
                        );
                    }
                    Some(name)
                }
                None if is_list => {
                    self.missing(&format!("{at}.name"), "is required in a list of providers: it names the provider in `?provider=`, routes and sessions");
                    None
                }
                None => None,
            };
            if i > 0 {
                let shared = [
                    ("prefix", raw.prefix.as_ref().map(|v| v.referenced)),
                    (
                        "allowed_redirect_hosts",
                        raw.allowed_redirect_hosts
                            .as_ref()
                            .and_then(|v| v.first())
                            .map(|v| v.referenced),
                    ),
                    (
                        "pass_access_token",
                        raw.pass_access_token.as_ref().map(|v| v.referenced),
                    ),
                    (
                        "set_authorization",
                        raw.set_authorization.as_ref().map(|v| v.referenced),
                    ),
                ];
                for (key, at_line) in shared {
                    if let Some(location) = at_line {
                        self.error(
                            &location,
                            &format!("{at}.{key}"),
                            "applies to every provider: set it on the first one only",
                        );
                    }
                }
            }
            let title = raw.title.take();
            let issuer_at = raw.issuer.as_ref().map(|v| v.referenced);
            let Some(mut login) = self.one_login(raw, &at, logins.first()) else {
                complete = false;
                continue;
            };
            if let Some(name) = name {
                login.name = name.value;
            }
            login.title = title.map_or_else(|| login.name.clone(), |t| t.value);
            if let Some(location) = issuer_at
                && logins.iter().any(|l| l.issuer == login.issuer)
            {
                let message = format!(
                    "`{}` is another provider's issuer already: one provider per issuer (a route's `providers` tells them apart by issuer)",
                    login.issuer
                );
                self.error(&location, &format!("{at}.issuer"), message);
            }
            logins.push(login);
        }
        if !complete {
            logins.clear();
        }
        logins
    }

    fn one_login(
        &mut self,
        raw: raw::RawLogin,
        at: &str,
        shared: Option<&LoginSettings>,
    ) -> Option<LoginSettings> {
        let f = |key: &str| format!("{at}.{key}");
        let required =
            |v: Option<Spanned<String>>, this: &mut Self, field: &str, what: &str| match v {
                Some(v) => Some(v),
                None => {
                    this.missing(field, format!("is required: {what}"));
                    None
                }
            };
        let issuer = required(
            raw.issuer,
            self,
            &f("issuer"),
            "the OpenID provider's issuer URL",
        );
        let client_id = required(
            raw.client_id,
            self,
            &f("client_id"),
            "the client registered at the provider",
        );
        let redirect = required(
            raw.redirect_url,
            self,
            &f("redirect_url"),
            "e.g. https://app.example.com/oauth2/callback",
        );
        let prefix = match raw.prefix {
            _ if shared.is_some() => shared.map(|s| s.prefix.clone()).unwrap_or_default(),
            None => "/oauth2".to_owned(),
            Some(p) => {
                let trimmed = p.value.trim_end_matches('/').to_owned();
                let valid = trimmed.starts_with('/')
                    && trimmed.len() > 1
                    && crate::path::canonicalize(&trimmed).is_ok_and(|c| c == trimmed);
                if !valid {
                    self.error(
                        &p.referenced,
                        &f("prefix"),
                        "must be a canonical path like `/oauth2`",
                    );
                }
                trimmed
            }
        };
        if let Some(issuer) = &issuer
            && let Err(problem) = idp_url_allowed(&issuer.value)
        {
            self.error(&issuer.referenced, &f("issuer"), problem);
        }
        if let Some(redirect) = &redirect {
            match idp_url_allowed(&redirect.value) {
                Err(problem) => self.error(&redirect.referenced, &f("redirect_url"), problem),
                Ok(()) => {
                    let path = redirect
                        .value
                        .parse::<http::Uri>()
                        .map(|u| u.path().to_owned())
                        .unwrap_or_default();
                    if path != format!("{prefix}/callback") {
                        let message = format!(
                            "must end in `{prefix}/callback`, where Gatehouse receives the provider's answer"
                        );
                        self.error(&redirect.referenced, &f("redirect_url"), message);
                    }
                }
            }
        }
        if let Some(url) = &raw.post_logout_redirect_url
            && let Err(problem) = idp_url_allowed(&url.value)
        {
            self.error(&url.referenced, &f("post_logout_redirect_url"), problem);
        }
        let client_secret = raw
            .client_secret
            .and_then(|s| self.secret(s, &f("client_secret")));
        let mut scopes = vec!["openid".to_owned()];
        let requested = raw.scopes.map_or_else(
            || vec!["profile".to_owned(), "email".to_owned()],
            |v| v.into_iter().map(|s| s.value).collect(),
        );
        for scope in requested {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        const RESERVED: [&str; 8] = [
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "client_id",
            "response_type",
            "scope",
        ];
        let mut params = Vec::new();
        for (name, value) in raw.params.unwrap_or_default() {
            if RESERVED.contains(&name.as_str()) {
                self.error(
                    &value.referenced,
                    &f(&format!("params.{name}")),
                    "is set by Gatehouse itself",
                );
            } else {
                params.push((name, value.value));
            }
        }
        let mut allowed_redirect_hosts = Vec::new();
        for (i, host) in raw
            .allowed_redirect_hosts
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if let Some(problem) = crate::redirect::allowed_host_problem(&host.value) {
                let field = f(&format!("allowed_redirect_hosts[{i}]"));
                self.error(&host.referenced, &field, problem);
            }
            allowed_redirect_hosts.push(host.value);
        }
        let algorithms = self.algorithms(raw.algorithms, &f("algorithms"));
        let claims = self.claim_paths(raw.claims, &f("claims"));
        let leeway = self.duration(raw.leeway, &f("leeway"), Duration::from_secs(30));
        if let Some(shared) = shared {
            allowed_redirect_hosts = shared.allowed_redirect_hosts.clone();
        }
        Some(LoginSettings {
            name: "default".to_owned(),
            title: "default".to_owned(),
            issuer: issuer?.value,
            client_id: client_id?.value,
            client_secret,
            redirect_url: redirect?.value,
            scopes,
            params,
            allowed_redirect_hosts,
            claims,
            prefix,
            post_logout_redirect_url: raw.post_logout_redirect_url.map(|u| u.value),
            algorithms,
            leeway,
            pass_access_token: shared.map_or_else(
                || raw.pass_access_token.is_some_and(|v| v.value),
                |s| s.pass_access_token,
            ),
            set_authorization: shared.map_or_else(
                || raw.set_authorization.is_some_and(|v| v.value),
                |s| s.set_authorization,
            ),
        })
    }

    pub(super) fn session(&mut self, raw: raw::RawSession) -> SessionSettings {
        let mut secrets = Vec::new();
        for (i, secret) in raw.secrets.unwrap_or_default().into_iter().enumerate() {
            let field = format!("session.secrets[{i}]");
            if let Some(source) = self.secret(secret, &field) {
                if source.read().is_ok_and(|s| s.expose().len() < 32) {
                    self.missing(
                        &field,
                        "must be at least 32 characters (e.g. `openssl rand -base64 32`)",
                    );
                }
                secrets.push(source);
            }
        }
        if secrets.is_empty() {
            self.missing(
                "session.secrets",
                "needs at least one secret (a file or an environment variable)",
            );
        }
        let cookie_name = match raw.cookie_name {
            None => "__Host-gatehouse".to_owned(),
            Some(name) => {
                let valid = !name.value.is_empty()
                    && name
                        .value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !valid {
                    self.error(
                        &name.referenced,
                        "session.cookie_name",
                        "use letters, digits, `-` and `_`",
                    );
                }
                name.value
            }
        };
        SessionSettings {
            secrets,
            cookie_name,
            lifetime: self.duration(
                raw.lifetime,
                "session.lifetime",
                Duration::from_secs(12 * 3600),
            ),
            flow_timeout: self.duration(
                raw.flow_timeout,
                "session.flow_timeout",
                Duration::from_secs(600),
            ),
            refresh: raw.refresh.is_none_or(|r| r.value),
            store: self.session_store(raw.store, raw.redis),
        }
    }

    pub(super) fn issuer(&mut self, raw: raw::RawIssuer, i: usize) -> Option<IssuerSettings> {
        let field = |name: &str| format!("issuers[{i}].{name}");
        let Some(issuer) = raw.issuer else {
            self.missing(
                &field("issuer"),
                "is required (the exact `iss` of the tokens)",
            );
            return None;
        };
        if let Err(problem) = idp_url_allowed(&issuer.value) {
            self.error(&issuer.referenced, &field("issuer"), problem);
        }
        let audiences: Vec<String> = raw
            .audiences
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.value)
            .collect();
        if audiences.is_empty() {
            let message =
                "needs at least one audience: tokens minted for other services must not pass";
            self.error(&issuer.referenced, &field("audiences"), message);
        }
        let keys = match (raw.jwks_uri, raw.jwks_file) {
            (Some(uri), None) => {
                if let Err(problem) = idp_url_allowed(&uri.value) {
                    self.error(&uri.referenced, &field("jwks_uri"), problem);
                }
                JwksSource::Uri(uri.value)
            }
            (None, Some(file)) => JwksSource::File(self.path(&file.value)),
            (None, None) => JwksSource::Discovery,
            (Some(uri), Some(_)) => {
                self.error(
                    &uri.referenced,
                    &field("jwks_uri"),
                    "set `jwks_uri` or `jwks_file`, not both",
                );
                JwksSource::Discovery
            }
        };
        let algorithms = self.algorithms(raw.algorithms, &field("algorithms"));
        let claims = self.claim_paths(raw.claims, &field("claims"));
        let jwks_raw = raw.jwks.unwrap_or_default();
        let d = JwksSettings::default();
        let jwks = JwksSettings {
            min_ttl: self.duration(jwks_raw.min_ttl, &field("jwks.min_ttl"), d.min_ttl),
            max_ttl: self.duration(jwks_raw.max_ttl, &field("jwks.max_ttl"), d.max_ttl),
            unknown_kid_interval: self.duration(
                jwks_raw.unknown_kid_interval,
                &field("jwks.unknown_kid_interval"),
                d.unknown_kid_interval,
            ),
            max_stale: self.duration(jwks_raw.max_stale, &field("jwks.max_stale"), d.max_stale),
        };
        if jwks.min_ttl > jwks.max_ttl {
            self.missing(&field("jwks.min_ttl"), "must not be longer than `max_ttl`");
        }
        let introspection = raw
            .introspection
            .and_then(|section| self.introspection(section, &field("introspection")));
        Some(IssuerSettings {
            issuer: issuer.value,
            audiences,
            keys,
            algorithms,
            claims,
            leeway: self.duration(raw.leeway, &field("leeway"), Duration::from_secs(30)),
            pass_authorization: raw.pass_authorization.is_some_and(|p| p.value),
            jwks,
            introspection,
        })
    }

    /// An issuer's `introspection` section; `field` is its path, e.g. `issuers[0].introspection`.
    fn introspection(
        &mut self,
        section: Spanned<raw::RawIntrospection>,
        field: &str,
    ) -> Option<IntrospectionSettings> {
        let at = section.referenced;
        let raw = section.value;
        let field = |name: &str| format!("{field}.{name}");
        let endpoint = match raw.url {
            None => IntrospectionEndpoint::Discovery,
            Some(url) => {
                if let Err(problem) = idp_url_allowed(&url.value) {
                    self.error(&url.referenced, &field("url"), problem);
                }
                IntrospectionEndpoint::Url(url.value)
            }
        };
        let client_id = match raw.client_id {
            Some(id) if !id.value.is_empty() => Some(id.value),
            Some(id) => {
                self.error(&id.referenced, &field("client_id"), "must not be empty");
                None
            }
            None => {
                let message = "is required: the client Gatehouse authenticates as at the endpoint";
                self.error(&at, &field("client_id"), message);
                None
            }
        };
        let client_secret = match raw.client_secret {
            Some(secret) => self.secret(secret, &field("client_secret")),
            None => {
                let message = "is required: `{ file: PATH }` or `{ env: NAME }`";
                self.error(&at, &field("client_secret"), message);
                None
            }
        };
        let auth_method = match raw.auth_method {
            None => ClientAuthMethod::Basic,
            Some(m) => match m.value.as_str() {
                "client_secret_basic" => ClientAuthMethod::Basic,
                "client_secret_post" => ClientAuthMethod::Post,
                _ => {
                    let message = "must be `client_secret_basic` or `client_secret_post`";
                    self.error(&m.referenced, &field("auth_method"), message);
                    ClientAuthMethod::Basic
                }
            },
        };
        let cache_ttl = self.duration(raw.cache_ttl, &field("cache_ttl"), Duration::from_secs(60));
        let timeout = self.duration(raw.timeout, &field("timeout"), Duration::from_secs(5));
        Some(IntrospectionSettings {
            endpoint,
            client_id: client_id?,
            client_secret: client_secret?,
            auth_method,
            cache_ttl,
            timeout,
        })
    }

    pub(super) fn identity(&mut self, raw: raw::RawIdentity) -> IdentitySettings {
        let d = IdentitySettings::default();
        let mut name = |v: Option<Spanned<String>>, field: &str| {
            let v = v?;
            match HeaderName::from_bytes(v.value.trim().as_bytes()) {
                Ok(name) => Some(name),
                Err(_) => {
                    self.error(
                        &v.referenced,
                        field,
                        format!("`{}` is not a header name", v.value),
                    );
                    None
                }
            }
        };
        let user = name(raw.user_header, "identity.user_header").unwrap_or(d.user);
        let roles = name(raw.roles_header, "identity.roles_header").unwrap_or(d.roles);
        let email = name(raw.email_header, "identity.email_header");
        let scopes = name(raw.scopes_header, "identity.scopes_header");
        let list_format = match raw.list_format {
            None => d.list_format,
            Some(v) => match v.value.as_str() {
                "csv" => ListFormat::Csv,
                "json" => ListFormat::Json,
                _ => {
                    self.error(
                        &v.referenced,
                        "identity.list_format",
                        "must be `csv` or `json`",
                    );
                    d.list_format
                }
            },
        };
        IdentitySettings {
            user,
            roles,
            email,
            scopes,
            oauth2_proxy: raw.oauth2_proxy_headers.is_some_and(|b| b.value),
            list_format,
        }
    }
}

/// A provider name: 1 to 32 of `a-z 0-9 _ -`, starting with a letter or digit (it goes into
/// URLs, cookies and Redis index names as it is).
pub fn valid_provider_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod login_list_tests {
    const HEAD: &str = "version: 1
listen:
  http: 127.0.0.1:8080
upstream:
  url: http://127.0.0.1:3000
policies: policies/
session:
  secrets: [{ env: GATEHOUSE_TEST_UNSET_SECRET }]
";

    /// Errors (other than the unset secret's) of [`HEAD`] with `login` appended, as (line,
    /// field, message).
    fn check(login: &str) -> Vec<(u64, String, String)> {
        super::super::errors_but_secrets(&format!("{HEAD}{login}"))
    }

    fn provider(name: &str, issuer: &str) -> String {
        format!(
            "  - name: {name}\n    issuer: {issuer}\n    client_id: app\n    redirect_url: https://app.example/oauth2/callback\n"
        )
    }

    #[test]
    fn a_list_of_providers_with_names_is_accepted() {
        let text = format!(
            "login:\n{}{}",
            provider("corp", "https://corp.example"),
            provider("partners", "https://partners.example")
        );
        let errors = check(&text);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn every_listed_provider_needs_a_unique_valid_name_and_its_own_issuer() {
        let unnamed = "login:\n  - issuer: https://corp.example\n    client_id: app\n    redirect_url: https://app.example/oauth2/callback\n";
        let errors = check(unnamed);
        assert!(
            errors
                .iter()
                .any(|e| e.1 == "login[0].name" && e.2.contains("required")),
            "{errors:?}"
        );
        let twice = format!(
            "login:\n{}{}",
            provider("corp", "https://corp.example"),
            provider("corp", "https://other.example")
        );
        let errors = check(&twice);
        assert_eq!(
            errors
                .iter()
                .map(|e| (e.0, e.1.as_str()))
                .collect::<Vec<_>>(),
            [(14, "login[1].name")],
            "{errors:?}"
        );
        let bad = format!("login:\n{}", provider("Corp Login", "https://corp.example"));
        let errors = check(&bad);
        assert_eq!(errors[0].1, "login[0].name", "{errors:?}");
        let same_issuer = format!(
            "login:\n{}{}",
            provider("corp", "https://corp.example"),
            provider("again", "https://corp.example")
        );
        let errors = check(&same_issuer);
        assert_eq!(
            errors
                .iter()
                .map(|e| (e.0, e.1.as_str()))
                .collect::<Vec<_>>(),
            [(15, "login[1].issuer")],
            "{errors:?}"
        );
        let errors = check("login: []\n");
        assert_eq!(errors[0].1, "login", "{errors:?}");
    }

    #[test]
    fn shared_settings_are_written_once_on_the_first_provider() {
        let text = format!(
            "login:\n{}    prefix: /auth\n{}    pass_access_token: true\n",
            provider("corp", "https://corp.example"),
            provider("partners", "https://partners.example")
        );
        let errors = check(&text);
        let fields: Vec<(u64, &str)> = errors.iter().map(|e| (e.0, e.1.as_str())).collect();
        // The first's prefix makes both redirect URLs wrong (they end in /oauth2/callback),
        // and the second may not set what applies to all.
        assert!(
            fields.contains(&(13, "login[0].redirect_url")),
            "{errors:?}"
        );
        assert!(
            fields.contains(&(18, "login[1].redirect_url")),
            "{errors:?}"
        );
        assert!(
            fields.contains(&(19, "login[1].pass_access_token")),
            "{errors:?}"
        );
        let message = &errors
            .iter()
            .find(|e| e.1 == "login[1].pass_access_token")
            .unwrap()
            .2;
        assert!(message.contains("first one only"), "{message}");
    }
}

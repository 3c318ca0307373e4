//! oauth2-proxy's options as it reads them: the TOML config file (`--config`), the
//! `OAUTH2_PROXY_*` environment variables, and its command-line flags, in its precedence
//! (flags over environment over file; a list from a higher source replaces, not extends).
//!
//! Every option oauth2-proxy documents (legacy options, general and per provider) is in
//! [`TABLE`] with its flag name and type; a name not in it is an error, as oauth2-proxy
//! itself refuses unknown options. Each value remembers where it was set (`file:line`, the
//! variable or the flag) for the report.

use std::collections::BTreeMap;

/// How oauth2-proxy reads an option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Bool,
    Int,
    /// A Go duration (`168h0m0s`, `15m`).
    Duration,
    /// A list: a TOML array (or one string), a repeated or comma-separated flag, a
    /// comma-separated variable.
    List,
}

/// An option's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Bool(bool),
    List(Vec<String>),
}

/// A value and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: Value,
    /// `oauth2-proxy.cfg:12`, `OAUTH2_PROXY_CLIENT_ID` or `--client-id`.
    pub at: String,
    /// Set from a variable (`Some(name)`): literal secrets keep that name.
    pub env: Option<String>,
}

impl Setting {
    pub fn text(&self) -> String {
        match &self.value {
            Value::Text(t) => t.clone(),
            Value::Bool(b) => b.to_string(),
            Value::List(l) => l.join(","),
        }
    }

    pub fn list(&self) -> Vec<String> {
        match &self.value {
            Value::List(l) => l.clone(),
            Value::Text(t) if t.is_empty() => Vec::new(),
            Value::Text(t) => vec![t.clone()],
            Value::Bool(b) => vec![b.to_string()],
        }
    }

    pub fn is_true(&self) -> bool {
        matches!(self.value, Value::Bool(true))
    }
}

/// Every option by its config name, with its flag name and type.
pub const TABLE: &[(&str, &str, Kind)] = &[
    ("acr_values", "acr-values", Kind::Str),
    (
        "allow_query_semicolons",
        "allow-query-semicolons",
        Kind::Bool,
    ),
    ("allowed_groups", "allowed-group", Kind::List),
    ("allowed_roles", "allowed-role", Kind::List),
    ("api_routes", "api-route", Kind::List),
    ("approval_prompt", "approval-prompt", Kind::Str),
    ("auth_logging", "auth-logging", Kind::Bool),
    ("auth_logging_format", "auth-logging-format", Kind::Str),
    (
        "auth_request_response_mode",
        "auth-request-response-mode",
        Kind::Str,
    ),
    (
        "authenticated_emails_file",
        "authenticated-emails-file",
        Kind::Str,
    ),
    ("azure_tenant", "azure-tenant", Kind::Str),
    ("backend_logout_url", "backend-logout-url", Kind::Str),
    ("banner", "banner", Kind::Str),
    ("basic_auth_password", "basic-auth-password", Kind::Str),
    (
        "bearer_token_login_fallback",
        "bearer-token-login-fallback",
        Kind::Bool,
    ),
    ("bitbucket_repository", "bitbucket-repository", Kind::Str),
    ("bitbucket_team", "bitbucket-team", Kind::Str),
    ("client_id", "client-id", Kind::Str),
    ("client_secret", "client-secret", Kind::Str),
    ("client_secret_file", "client-secret-file", Kind::Str),
    ("code_challenge_method", "code-challenge-method", Kind::Str),
    ("cookie_csrf_expire", "cookie-csrf-expire", Kind::Duration),
    (
        "cookie_csrf_per_request",
        "cookie-csrf-per-request",
        Kind::Bool,
    ),
    (
        "cookie_csrf_per_request_limit",
        "cookie-csrf-per-request-limit",
        Kind::Int,
    ),
    ("cookie_csrf_samesite", "cookie-csrf-samesite", Kind::Str),
    ("cookie_domains", "cookie-domain", Kind::List),
    ("cookie_expire", "cookie-expire", Kind::Duration),
    ("cookie_httponly", "cookie-httponly", Kind::Bool),
    ("cookie_name", "cookie-name", Kind::Str),
    ("cookie_path", "cookie-path", Kind::Str),
    ("cookie_refresh", "cookie-refresh", Kind::Duration),
    ("cookie_samesite", "cookie-samesite", Kind::Str),
    ("cookie_secret", "cookie-secret", Kind::Str),
    ("cookie_secret_file", "cookie-secret-file", Kind::Str),
    ("cookie_secure", "cookie-secure", Kind::Bool),
    ("custom_sign_in_logo", "custom-sign-in-logo", Kind::Str),
    ("custom_templates_dir", "custom-templates-dir", Kind::Str),
    ("disable_keep_alives", "disable-keep-alives", Kind::Bool),
    ("display_htpasswd_form", "display-htpasswd-form", Kind::Bool),
    ("email_domains", "email-domain", Kind::List),
    ("encode_state", "encode-state", Kind::Bool),
    (
        "entra_id_allowed_tenants",
        "entra-id-allowed-tenant",
        Kind::List,
    ),
    (
        "entra_id_federated_token_auth",
        "entra-id-federated-token-auth",
        Kind::Bool,
    ),
    ("errors_to_info_log", "errors-to-info-log", Kind::Bool),
    ("exclude_logging_paths", "exclude-logging-path", Kind::List),
    ("extra_jwt_issuers", "extra-jwt-issuers", Kind::List),
    ("flush_interval", "flush-interval", Kind::Duration),
    ("footer", "footer", Kind::Str),
    ("force_https", "force-https", Kind::Bool),
    ("force_json_errors", "force-json-errors", Kind::Bool),
    ("gcp_healthchecks", "gcp-healthchecks", Kind::Bool),
    ("github_org", "github-org", Kind::Str),
    ("github_repo", "github-repo", Kind::Str),
    ("github_team", "github-team", Kind::Str),
    ("github_token", "github-token", Kind::Str),
    ("github_users", "github-user", Kind::List),
    ("gitlab_groups", "gitlab-group", Kind::List),
    ("gitlab_projects", "gitlab-project", Kind::List),
    (
        "google_admin_api_user_scope",
        "google-admin-api-user-scope",
        Kind::Str,
    ),
    ("google_admin_email", "google-admin-email", Kind::Str),
    ("google_groups", "google-group", Kind::Str),
    (
        "google_service_account_json",
        "google-service-account-json",
        Kind::Str,
    ),
    (
        "google_target_principal",
        "google-target-principal",
        Kind::Bool,
    ),
    (
        "google_use_application_default_credentials",
        "google-use-application-default-credentials",
        Kind::Bool,
    ),
    (
        "google_use_organization_id",
        "google-use-organization-id",
        Kind::Bool,
    ),
    ("htpasswd_file", "htpasswd-file", Kind::Str),
    ("htpasswd_user_groups", "htpasswd-user-group", Kind::List),
    ("http_address", "http-address", Kind::Str),
    ("https_address", "https-address", Kind::Str),
    (
        "insecure_oidc_allow_unverified_email",
        "insecure-oidc-allow-unverified-email",
        Kind::Bool,
    ),
    (
        "insecure_oidc_skip_issuer_verification",
        "insecure-oidc-skip-issuer-verification",
        Kind::Bool,
    ),
    (
        "insecure_oidc_skip_nonce",
        "insecure-oidc-skip-nonce",
        Kind::Bool,
    ),
    ("jwt_key", "jwt-key", Kind::Str),
    ("jwt_key_file", "jwt-key-file", Kind::Str),
    ("keycloak_group", "keycloak-group", Kind::List),
    ("logging_compress", "logging-compress", Kind::Bool),
    ("logging_filename", "logging-filename", Kind::Str),
    ("logging_local_time", "logging-local-time", Kind::Bool),
    ("logging_max_age", "logging-max-age", Kind::Int),
    ("logging_max_backups", "logging-max-backups", Kind::Int),
    ("logging_max_size", "logging-max-size", Kind::Int),
    ("login_url", "login-url", Kind::Str),
    ("metrics_address", "metrics-address", Kind::Str),
    (
        "metrics_secure_address",
        "metrics-secure-address",
        Kind::Str,
    ),
    ("metrics_tls_cert_file", "metrics-tls-cert-file", Kind::Str),
    ("metrics_tls_key_file", "metrics-tls-key-file", Kind::Str),
    ("oidc_audience_claims", "oidc-audience-claim", Kind::List),
    ("oidc_email_claim", "oidc-email-claim", Kind::Str),
    (
        "oidc_enabled_signing_algs",
        "oidc-enabled-signing-alg",
        Kind::List,
    ),
    ("oidc_extra_audiences", "oidc-extra-audience", Kind::List),
    ("oidc_groups_claim", "oidc-groups-claim", Kind::Str),
    ("oidc_issuer_url", "oidc-issuer-url", Kind::Str),
    ("oidc_jwks_url", "oidc-jwks-url", Kind::Str),
    ("oidc_public_key_files", "oidc-public-key-file", Kind::Str),
    ("pass_access_token", "pass-access-token", Kind::Bool),
    (
        "pass_authorization_header",
        "pass-authorization-header",
        Kind::Bool,
    ),
    ("pass_basic_auth", "pass-basic-auth", Kind::Bool),
    ("pass_host_header", "pass-host-header", Kind::Bool),
    ("pass_user_headers", "pass-user-headers", Kind::Bool),
    ("ping_path", "ping-path", Kind::Str),
    ("ping_user_agent", "ping-user-agent", Kind::Str),
    ("prefer_email_to_user", "prefer-email-to-user", Kind::Bool),
    ("profile_url", "profile-url", Kind::Str),
    ("prompt", "prompt", Kind::Str),
    ("provider", "provider", Kind::Str),
    ("provider_ca_files", "provider-ca-file", Kind::List),
    ("provider_display_name", "provider-display-name", Kind::Str),
    ("proxy_prefix", "proxy-prefix", Kind::Str),
    ("proxy_websockets", "proxy-websockets", Kind::Bool),
    ("pubjwk_url", "pubjwk-url", Kind::Str),
    ("ready_path", "ready-path", Kind::Str),
    ("real_client_ip_header", "real-client-ip-header", Kind::Str),
    ("redeem_url", "redeem-url", Kind::Str),
    ("redirect_url", "redirect-url", Kind::Str),
    ("redis_ca_path", "redis-ca-path", Kind::Str),
    (
        "redis_cluster_connection_urls",
        "redis-cluster-connection-urls",
        Kind::List,
    ),
    (
        "redis_connection_idle_timeout",
        "redis-connection-idle-timeout",
        Kind::Int,
    ),
    ("redis_connection_url", "redis-connection-url", Kind::Str),
    (
        "redis_insecure_skip_tls_verify",
        "redis-insecure-skip-tls-verify",
        Kind::Bool,
    ),
    ("redis_password", "redis-password", Kind::Str),
    (
        "redis_sentinel_connection_urls",
        "redis-sentinel-connection-urls",
        Kind::List,
    ),
    (
        "redis_sentinel_master_name",
        "redis-sentinel-master-name",
        Kind::Str,
    ),
    (
        "redis_sentinel_password",
        "redis-sentinel-password",
        Kind::Str,
    ),
    ("redis_use_cluster", "redis-use-cluster", Kind::Bool),
    ("redis_use_sentinel", "redis-use-sentinel", Kind::Bool),
    ("redis_username", "redis-username", Kind::Str),
    ("relative_redirect_url", "relative-redirect-url", Kind::Bool),
    ("request_id_header", "request-id-header", Kind::Str),
    ("request_logging", "request-logging", Kind::Bool),
    (
        "request_logging_format",
        "request-logging-format",
        Kind::Str,
    ),
    ("resource", "resource", Kind::Str),
    ("reverse_proxy", "reverse-proxy", Kind::Bool),
    ("scope", "scope", Kind::Str),
    (
        "session_cookie_minimal",
        "session-cookie-minimal",
        Kind::Bool,
    ),
    ("session_store_type", "session-store-type", Kind::Str),
    (
        "set_authorization_header",
        "set-authorization-header",
        Kind::Bool,
    ),
    ("set_basic_auth", "set-basic-auth", Kind::Bool),
    ("set_xauthrequest", "set-xauthrequest", Kind::Bool),
    ("show_debug_on_error", "show-debug-on-error", Kind::Bool),
    ("signature_key", "signature-key", Kind::Str),
    ("silence_ping_logging", "silence-ping-logging", Kind::Bool),
    ("skip_auth_preflight", "skip-auth-preflight", Kind::Bool),
    ("skip_auth_regex", "skip-auth-regex", Kind::List),
    ("skip_auth_routes", "skip-auth-route", Kind::List),
    (
        "skip_auth_strip_headers",
        "skip-auth-strip-headers",
        Kind::Bool,
    ),
    (
        "skip_claims_from_profile_url",
        "skip-claims-from-profile-url",
        Kind::Bool,
    ),
    (
        "skip_jwt_bearer_tokens",
        "skip-jwt-bearer-tokens",
        Kind::Bool,
    ),
    ("skip_oidc_discovery", "skip-oidc-discovery", Kind::Bool),
    ("skip_provider_button", "skip-provider-button", Kind::Bool),
    (
        "ssl_insecure_skip_verify",
        "ssl-insecure-skip-verify",
        Kind::Bool,
    ),
    (
        "ssl_upstream_insecure_skip_verify",
        "ssl-upstream-insecure-skip-verify",
        Kind::Bool,
    ),
    ("standard_logging", "standard-logging", Kind::Bool),
    (
        "standard_logging_format",
        "standard-logging-format",
        Kind::Str,
    ),
    ("tls_cert_file", "tls-cert-file", Kind::Str),
    ("tls_cipher_suites", "tls-cipher-suite", Kind::List),
    ("tls_key_file", "tls-key-file", Kind::Str),
    ("tls_min_version", "tls-min-version", Kind::Str),
    ("trusted_ips", "trusted-ip", Kind::List),
    ("trusted_proxy_ips", "trusted-proxy-ip", Kind::List),
    ("upstream_timeout", "upstream-timeout", Kind::Duration),
    ("upstreams", "upstream", Kind::List),
    (
        "use_system_trust_store",
        "use-system-trust-store",
        Kind::Bool,
    ),
    ("user_id_claim", "user-id-claim", Kind::Str),
    ("validate_url", "validate-url", Kind::Str),
    ("whitelist_domains", "whitelist-domain", Kind::List),
];

fn by_name(name: &str) -> Option<(&'static str, Kind)> {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(n, _, k)| (*n, *k))
}

fn by_flag(flag: &str) -> Option<(&'static str, Kind)> {
    TABLE
        .iter()
        .find(|(n, f, _)| *f == flag || n.replace('_', "-") == flag)
        .map(|(n, _, k)| (*n, *k))
}

/// The options read so far, by config name.
#[derive(Debug, Default)]
pub struct Options {
    pub set: BTreeMap<&'static str, Setting>,
    /// Unknown options and values that are not of their option's type.
    pub errors: Vec<String>,
}

impl Options {
    /// Reads oauth2-proxy's TOML config file. Lines are counted for the report.
    pub fn read_toml(&mut self, file: &str, text: &str) {
        let table: BTreeMap<String, toml::Spanned<toml::Value>> = match toml::from_str(text) {
            Ok(table) => table,
            Err(error) => {
                self.errors.push(format!("{file}: not TOML: {error}"));
                return;
            }
        };
        for (key, spanned) in table {
            let line = 1 + text[..spanned.span().start.min(text.len())]
                .bytes()
                .filter(|b| *b == b'\n')
                .count();
            let at = format!("{file}:{line}");
            let Some((name, kind)) = by_name(&key) else {
                self.errors.push(format!(
                    "{at}: unknown option `{key}` (oauth2-proxy refuses it too)"
                ));
                continue;
            };
            match toml_value(spanned.get_ref(), kind) {
                Some(value) => {
                    let setting = Setting {
                        value,
                        at,
                        env: None,
                    };
                    self.set.insert(name, setting);
                }
                None => self
                    .errors
                    .push(format!("{at}: `{key}` is not a {kind:?} value")),
            }
        }
    }

    /// Reads `OAUTH2_PROXY_*` variables (others are ignored); `origin` names where they came
    /// from for unknown names (`the environment`, an env file).
    pub fn read_env(&mut self, vars: &[(String, String)], origin: &str) {
        for (var, text) in vars {
            let Some(rest) = var.strip_prefix("OAUTH2_PROXY_") else {
                continue;
            };
            let key = rest.to_ascii_lowercase();
            let Some((name, kind)) = by_name(&key) else {
                self.errors.push(format!(
                    "{origin}: unknown variable `{var}` (oauth2-proxy refuses it too)"
                ));
                continue;
            };
            match text_value(text, kind, true) {
                Some(value) => {
                    let setting = Setting {
                        value,
                        at: var.clone(),
                        env: Some(var.clone()),
                    };
                    self.set.insert(name, setting);
                }
                None => self.errors.push(format!("{var}: not a {kind:?} value")),
            }
        }
    }

    /// Reads command-line flags: `--name=value`, `--name value`, `--flag` (a boolean). A
    /// repeated list flag adds to the list; its values are also split on commas, except
    /// regular expressions and routes, which may hold commas.
    pub fn read_flags(&mut self, args: &[String]) {
        let mut from_flags: BTreeMap<&'static str, Setting> = BTreeMap::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                self.errors.push(format!("`{arg}`: not a flag"));
                continue;
            };
            let (flag, inline) = match body.split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (body, None),
            };
            if flag == "config" || flag == "version" || flag == "alpha-config" {
                self.errors.push(format!(
                    "`--{flag}`: give oauth2-proxy's config file as `--config` of the migration, before `--`"
                ));
                if inline.is_none() && flag != "version" {
                    i += 1;
                }
                continue;
            }
            let Some((name, kind)) = by_flag(flag) else {
                self.errors.push(format!(
                    "unknown flag `--{flag}` (oauth2-proxy refuses it too)"
                ));
                continue;
            };
            let text = match (inline, kind) {
                (Some(v), _) => v,
                (None, Kind::Bool) => "true".to_owned(),
                (None, _) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => {
                        self.errors.push(format!("`--{flag}` needs a value"));
                        continue;
                    }
                },
            };
            let split = !matches!(name, "skip_auth_regex" | "skip_auth_routes" | "api_routes");
            let Some(value) = text_value(&text, kind, split) else {
                self.errors
                    .push(format!("`--{flag}`: not a {kind:?} value"));
                continue;
            };
            let at = format!("--{flag}");
            match (from_flags.get_mut(name), value) {
                (
                    Some(Setting {
                        value: Value::List(list),
                        ..
                    }),
                    Value::List(more),
                ) => list.extend(more),
                (_, value) => {
                    from_flags.insert(
                        name,
                        Setting {
                            value,
                            at,
                            env: None,
                        },
                    );
                }
            }
        }
        self.set.extend(from_flags);
    }
}

fn toml_value(value: &toml::Value, kind: Kind) -> Option<Value> {
    match (kind, value) {
        (Kind::Bool, toml::Value::Boolean(b)) => Some(Value::Bool(*b)),
        (Kind::Int, toml::Value::Integer(n)) => Some(Value::Text(n.to_string())),
        (Kind::Str | Kind::Duration, toml::Value::String(s)) => Some(Value::Text(s.clone())),
        (Kind::List, toml::Value::String(s)) => Some(Value::List(vec![s.clone()])),
        (Kind::List, toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Value::List),
        _ => None,
    }
}

fn text_value(text: &str, kind: Kind, split: bool) -> Option<Value> {
    match kind {
        Kind::Bool => match text.trim() {
            "true" | "1" | "TRUE" | "True" => Some(Value::Bool(true)),
            "false" | "0" | "FALSE" | "False" => Some(Value::Bool(false)),
            _ => None,
        },
        Kind::Int => text
            .trim()
            .parse::<i64>()
            .ok()
            .map(|n| Value::Text(n.to_string())),
        Kind::Str | Kind::Duration => Some(Value::Text(text.to_owned())),
        Kind::List if split => Some(Value::List(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        Kind::List => Some(Value::List(vec![text.to_owned()])),
    }
}

/// Parses an env file: `NAME=value` lines, `#` comments, an optional `export `, values in
/// single or double quotes or bare.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (name, value) = l.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((name.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_env_beat_file() {
        let mut o = Options::default();
        o.read_toml(
            "o.cfg",
            "client_id = \"from-file\"\nemail_domains = [\"a.com\", \"b.com\"]\ncookie_secure = true\n",
        );
        o.read_env(
            &[
                ("OAUTH2_PROXY_CLIENT_ID".into(), "from-env".into()),
                ("OAUTH2_PROXY_EMAIL_DOMAINS".into(), "c.com,d.com".into()),
                ("HOME".into(), "/root".into()),
            ],
            "the environment",
        );
        o.read_flags(&[
            "--client-id=from-flag".into(),
            "--email-domain".into(),
            "e.com".into(),
            "--email-domain=f.com".into(),
            "--skip-auth-regex=^/a{1,2}$".into(),
            "--cookie-secure=false".into(),
        ]);
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!(o.set["client_id"].text(), "from-flag");
        assert_eq!(o.set["email_domains"].list(), ["e.com", "f.com"]);
        assert_eq!(o.set["email_domains"].at, "--email-domain");
        assert_eq!(o.set["skip_auth_regex"].list(), ["^/a{1,2}$"]);
        assert!(!o.set["cookie_secure"].is_true());
    }

    #[test]
    fn unknown_options_are_errors_with_their_line() {
        let mut o = Options::default();
        o.read_toml("o.cfg", "client_id = \"x\"\n\nclient_idd = \"y\"\n");
        o.read_env(&[("OAUTH2_PROXY_NOPE".into(), "1".into())], "env");
        o.read_flags(&["--nope".into(), "--cookie-secure=maybe".into()]);
        assert_eq!(o.errors.len(), 4, "{:?}", o.errors);
        assert!(o.errors[0].starts_with("o.cfg:3: unknown option `client_idd`"));
    }

    #[test]
    fn env_files_are_read() {
        let vars = parse_env_file("# c\nexport OAUTH2_PROXY_A=\"1\"\nOAUTH2_PROXY_B='x y'\nB=c\n");
        assert_eq!(vars[0], ("OAUTH2_PROXY_A".into(), "1".into()));
        assert_eq!(vars[1].1, "x y");
        assert_eq!(vars.len(), 3);
    }
}

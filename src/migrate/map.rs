//! The translation: oauth2-proxy's options to `gatehouse.yaml` (login, session, listeners,
//! upstream, bearer issuers) and the policy (in `policy.rs` beside this). Each option is
//! taken from the set once; whatever is left at the end was not mapped and goes into the
//! report with its reason (`unmapped_reason`), so nothing is dropped silently.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::options::Setting;
use super::report::{Outcome, Report};

/// Providers that are OpenID Connect underneath (an ID token Gatehouse can verify), with the
/// issuer to use when `oidc_issuer_url` is not set.
const OIDC_PROVIDERS: &[(&str, Option<&str>)] = &[
    ("oidc", None),
    ("keycloak-oidc", None),
    ("entra-id", None),
    ("adfs", None),
    ("azure", None),
    ("google", Some("https://accounts.google.com")),
    ("gitlab", Some("https://gitlab.com")),
];

/// A literal secret that the new config reads from an environment variable instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSecret {
    pub name: String,
    /// The literal, for `check` only (run with it in its environment); never written.
    pub value: String,
}

/// The mapper's state: options not yet taken, the report, and what it wrote.
pub struct Mapper {
    pub left: BTreeMap<&'static str, Setting>,
    pub report: Report,
    pub secrets: Vec<EnvSecret>,
    /// What `login` found, for the bearer issuers.
    pub client_id: String,
    pub issuer: String,
    pub algorithms: Option<Vec<String>>,
    /// oauth2-proxy's working directory: its relative file paths are made absolute, since
    /// Gatehouse reads them relative to `gatehouse.yaml`.
    pub cwd: Option<std::path::PathBuf>,
}

/// YAML double-quoted scalar (JSON strings are valid YAML).
pub fn q(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

pub fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| q(i)).collect();
    format!("[{}]", quoted.join(", "))
}

impl Mapper {
    pub fn new(left: BTreeMap<&'static str, Setting>) -> Self {
        Self {
            left,
            report: Report::default(),
            secrets: Vec::new(),
            client_id: String::new(),
            issuer: String::new(),
            algorithms: None,
            cwd: None,
        }
    }

    /// A file path as Gatehouse must read it.
    pub fn file(&self, text: &str) -> String {
        match &self.cwd {
            Some(cwd) if std::path::Path::new(text).is_relative() => {
                cwd.join(text).display().to_string()
            }
            _ => text.to_owned(),
        }
    }

    pub fn take(&mut self, name: &str) -> Option<Setting> {
        self.left.remove(name)
    }

    pub fn mapped(&mut self, name: &str, s: &Setting, text: impl Into<String>) {
        self.report.add(Outcome::Mapped, name, &s.at, text);
    }

    pub fn unmapped(&mut self, name: &str, s: &Setting, text: impl Into<String>) {
        self.report.add(Outcome::Unmapped, name, &s.at, text);
    }

    pub fn refused(&mut self, name: &str, at: &str, text: impl Into<String>) {
        self.report.add(Outcome::Refused, name, at, text);
    }

    /// A boolean option, reported as mapped when it is `want` (or absent), refused or not
    /// mapped (`why`) when it is the other value.
    pub fn flag(&mut self, name: &str, want: bool, refuse: bool, why: &str) {
        let Some(s) = self.take(name) else { return };
        if s.is_true() == want {
            self.mapped(name, &s, "as Gatehouse always does");
        } else if refuse {
            self.refused(name, &s.at, why);
        } else {
            self.unmapped(name, &s, why);
        }
    }

    /// A secret option: a file stays a file; a literal becomes `{ env: NAME }` (the variable
    /// it came from, or `OAUTH2_PROXY_<NAME>`), never written into the YAML.
    pub fn secret(&mut self, name: &str, file_option: &str) -> Option<(String, Option<String>)> {
        if let Some(file) = self.take(file_option) {
            self.mapped(file_option, &file, "the file stays a file");
            if let Some(s) = self.take(name) {
                self.unmapped(name, &s, format!("`{file_option}` is used instead"));
            }
            return Some((format!("{{ file: {} }}", q(&self.file(&file.text()))), None));
        }
        let s = self.take(name)?;
        let var = s
            .env
            .clone()
            .unwrap_or_else(|| format!("OAUTH2_PROXY_{}", name.to_ascii_uppercase()));
        self.mapped(
            name,
            &s,
            format!("the literal is not copied: the config reads `{{ env: {var} }}`"),
        );
        self.report.env.push((
            var.clone(),
            format!("`{name}` (its value was in the oauth2-proxy configuration)"),
        ));
        self.secrets.push(EnvSecret {
            name: var.clone(),
            value: s.text(),
        });
        Some((format!("{{ env: {var} }}"), Some(s.text())))
    }

    /// The provider and its issuer; `None` when refused.
    fn provider(&mut self) -> Option<(String, String)> {
        let provider = self.take("provider");
        let name = provider.as_ref().map_or("google".to_owned(), Setting::text);
        let at = provider.as_ref().map_or(String::new(), |s| s.at.clone());
        let Some((_, default_issuer)) = OIDC_PROVIDERS.iter().find(|(p, _)| *p == name) else {
            self.refused(
                "provider",
                &at,
                format!(
                    "`{name}` is not OpenID Connect underneath (no ID token to verify); Gatehouse \
                     signs in with OIDC providers only: oidc, keycloak-oidc, entra-id, azure, \
                     adfs, google, gitlab"
                ),
            );
            return None;
        };
        let tenant = self.take("azure_tenant");
        let issuer = match (self.take("oidc_issuer_url"), &tenant) {
            (Some(s), _) => {
                self.mapped("oidc_issuer_url", &s, "login.issuer");
                s.text()
            }
            (None, Some(t)) if name == "azure" && t.text() != "common" => {
                format!("https://login.microsoftonline.com/{}/v2.0", t.text())
            }
            (None, _) if name == "azure" => {
                let at = tenant.as_ref().map_or(String::new(), |t| t.at.clone());
                self.refused(
                    "azure_tenant",
                    &at,
                    "the `common` tenant has no single issuer; set `azure_tenant` (or \
                     `oidc_issuer_url`) to your tenant",
                );
                return None;
            }
            (None, _) => match default_issuer {
                Some(issuer) => issuer.to_string(),
                None => {
                    self.refused(
                        "oidc_issuer_url",
                        "",
                        format!("is required for provider `{name}`"),
                    );
                    return None;
                }
            },
        };
        if let Some(t) = tenant {
            self.mapped("azure_tenant", &t, format!("login.issuer `{issuer}`"));
        }
        if let Some(p) = provider {
            self.mapped(
                "provider",
                &p,
                format!("`{name}` is OpenID Connect: login at `{issuer}`"),
            );
        }
        Some((name, issuer))
    }

    /// `login:`; returns its YAML and the role claim paths (for bearer issuers too).
    pub fn login(&mut self, out: &mut String) -> Option<Vec<String>> {
        let (provider, issuer) = self.provider()?;
        let _ = writeln!(out, "login:\n  issuer: {}", q(&issuer));
        match self.take("client_id") {
            Some(s) => {
                self.mapped("client_id", &s, "login.client_id");
                let _ = writeln!(out, "  client_id: {}", q(&s.text()));
                self.client_id = s.text();
            }
            None => self.refused("client_id", "", "is required"),
        }
        if let Some((secret, _)) = self.secret("client_secret", "client_secret_file") {
            let _ = writeln!(out, "  client_secret: {secret}");
        }
        match self.take("redirect_url") {
            Some(s) => {
                self.mapped("redirect_url", &s, "login.redirect_url");
                let _ = writeln!(out, "  redirect_url: {}", q(&s.text()));
            }
            None => self.refused(
                "redirect_url",
                "",
                "is required: oauth2-proxy derives it from each request's host; Gatehouse needs \
                 the one URL registered at the provider (`https://<host>/oauth2/callback`)",
            ),
        }
        let groups_wanted = self.left.contains_key("allowed_groups");
        match self.take("scope") {
            Some(s) => {
                let scopes: Vec<String> = s.text().split_whitespace().map(str::to_owned).collect();
                self.mapped("scope", &s, "login.scopes");
                let _ = writeln!(out, "  scopes: {}", list(&scopes));
            }
            None if groups_wanted && provider == "oidc" => {
                self.report.add(
                    Outcome::Mapped,
                    "scope",
                    "",
                    "not set: `groups` is asked for besides the defaults, as oauth2-proxy \
                     does with `allowed_groups`",
                );
                let _ = writeln!(out, "  scopes: [openid, email, profile, groups]");
            }
            None => {}
        }
        // Roles: the groups claim (oauth2-proxy's X-Forwarded-Groups), and Keycloak's realm
        // roles when `allowed_roles` is used.
        let mut roles = vec!["groups".to_owned()];
        if let Some(s) = self.take("oidc_groups_claim") {
            self.mapped("oidc_groups_claim", &s, "login.claims.roles");
            roles = vec![s.text()];
        }
        if self.left.contains_key("allowed_roles") {
            roles.push("realm_access.roles".to_owned());
        }
        let _ = writeln!(out, "  claims:\n    roles: {}", list(&roles));
        let mut email_claim = "email".to_owned();
        if let Some(s) = self.take("oidc_email_claim") {
            self.mapped("oidc_email_claim", &s, "login.claims.email");
            email_claim = s.text();
            let _ = writeln!(out, "    email: {}", q(&email_claim));
        }
        if let Some(s) = self.take("prefer_email_to_user") {
            if s.is_true() {
                self.mapped(
                    "prefer_email_to_user",
                    &s,
                    "login.claims.subject is the email claim (X-Forwarded-User carries the email)",
                );
                let _ = writeln!(out, "    subject: {}", q(&email_claim));
            } else {
                self.mapped("prefer_email_to_user", &s, "the subject stays `sub`");
            }
        } else if let Some(s) = self.take("user_id_claim") {
            self.mapped("user_id_claim", &s, "login.claims.subject");
            let _ = writeln!(out, "    subject: {}", q(&s.text()));
        }
        let mut params = Vec::new();
        for name in ["prompt", "acr_values"] {
            if let Some(s) = self.take(name) {
                self.mapped(name, &s, format!("login.params.{name}"));
                params.push(format!("{name}: {}", q(&s.text())));
            }
        }
        if !params.is_empty() {
            let _ = writeln!(out, "  params: {{ {} }}", params.join(", "));
        }
        if let Some(s) = self.take("whitelist_domains") {
            let mut hosts = Vec::new();
            for domain in s.list() {
                let host = domain.strip_prefix('*').unwrap_or(&domain).to_owned();
                if host.ends_with(":*") {
                    self.unmapped(
                        "whitelist_domains",
                        &s,
                        format!("`{domain}`: any port is not expressible; name the port"),
                    );
                    continue;
                }
                hosts.push(host);
            }
            self.mapped("whitelist_domains", &s, "login.allowed_redirect_hosts");
            let _ = writeln!(out, "  allowed_redirect_hosts: {}", list(&hosts));
        }
        if let Some(s) = self.take("proxy_prefix") {
            self.mapped("proxy_prefix", &s, "login.prefix");
            let _ = writeln!(out, "  prefix: {}", q(&s.text()));
        }
        if let Some(s) = self.take("pass_access_token") {
            self.mapped(
                "pass_access_token",
                &s,
                "login.pass_access_token (X-Forwarded-Access-Token; X-Auth-Request-Access-Token from /oauth2/auth)",
            );
            let _ = writeln!(out, "  pass_access_token: {}", s.is_true());
        }
        if let Some(s) = self.take("oidc_enabled_signing_algs") {
            self.mapped("oidc_enabled_signing_algs", &s, "login.algorithms");
            let _ = writeln!(out, "  algorithms: {}", list(&s.list()));
            self.algorithms = Some(s.list());
        }
        self.issuer = issuer;
        Some(roles)
    }
}

/// Converts a Go duration (`168h0m0s`, `1h30m`, `90s`, `1.5h`) to Gatehouse's one-unit form.
pub fn duration(text: &str) -> Option<String> {
    let text = text.trim();
    if text == "0" {
        return Some("0s".to_owned());
    }
    let mut total_ms: f64 = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(n_end);
        let number: f64 = number.parse().ok()?;
        let u_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u_end);
        let factor = match unit {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            _ => return None,
        };
        total_ms += number * factor;
        rest = tail;
    }
    let ms = total_ms.round();
    if !(0.0..1e15).contains(&ms) {
        return None;
    }
    // Exact whole numbers, checked above to fit.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = ms as u64;
    Some(match ms {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_become_one_unit() {
        assert_eq!(duration("168h0m0s").as_deref(), Some("168h"));
        assert_eq!(duration("1h30m").as_deref(), Some("90m"));
        assert_eq!(duration("15m").as_deref(), Some("15m"));
        assert_eq!(duration("1.5s").as_deref(), Some("1500ms"));
        assert_eq!(duration("0").as_deref(), Some("0s"));
        assert_eq!(duration("1d"), None);
        assert_eq!(duration("abc"), None);
    }
}

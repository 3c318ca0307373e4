//! Route policy: which caller may reach which route. An ordered list of rules from the YAML
//! files in `policies/`; the first rule that matches (method, canonical path, host) decides,
//! and no match means the policy's `default` (deny unless a file says otherwise).
//!
//! Pure: this module reads policy files and decides; it never imports the server, the stack
//! or the proxy. The decision is an enum ([`Decision`]); mapping it to HTTP is `error`'s job.

mod cors;
mod glob;
mod raw;

use std::fmt;
use std::path::{Path, PathBuf};

use http::Method;
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use crate::auth::{self, Principal};
use crate::config::{ConfigError, Origin};
pub use glob::Glob;
use raw::{RawClaim, RawPolicyFile, RawRoute, RawSet};

/// What happens to requests no route matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Deny,
    Allow,
}

/// Which credentials a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Public: no credential is checked and no identity is sent upstream.
    None,
    Bearer,
    Session,
    /// A client certificate verified in the TLS handshake (`tls.client_auth`).
    Mtls,
    /// A bearer token when `Authorization` is sent, else a client certificate when the
    /// connection has one, else the session.
    Any,
}

/// What an unauthenticated caller of a route gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnauthenticated {
    /// A browser navigation is sent to the login (when login is configured); others get 401.
    Auto,
    Redirect,
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub paths: Vec<Glob>,
    /// `None` means any method.
    pub methods: Option<Vec<Method>>,
    /// Lowercased host; `*.example.com` matches one label.
    pub host: Option<String>,
    pub auth: AuthMode,
    pub on_unauthenticated: OnUnauthenticated,
    pub require: Requirements,
    pub pass_authorization: bool,
    /// The route's `cors` block; `None`: preflights are refused.
    pub cors: Option<std::sync::Arc<crate::cors::Cors>>,
    /// `providers`: the login providers whose people may pass; empty: any.
    pub providers: Vec<ProviderRef>,
    pub origin: Origin,
}

/// A login provider a route names, and its issuer once the config is known ([`load_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRef {
    pub name: String,
    /// `None` until resolved: then nobody matches it.
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    pub roles: SetRequirement,
    pub scopes: SetRequirement,
    pub claims: Vec<(String, ClaimMatcher)>,
    /// The email's domain must match one of these (see [`email_in_domains`]); empty: no
    /// requirement.
    pub email_domains: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetRequirement {
    pub any_of: Vec<String>,
    pub all_of: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimMatcher {
    Equals(Value),
    OneOf(Vec<Value>),
    Present,
}

/// The validated policy: every file's rules in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub default: DefaultAction,
    /// Paths are matched ignoring ASCII case (the globs are stored lower-cased).
    pub case_insensitive_paths: bool,
    /// Rules that can never match because an earlier rule takes all their requests.
    pub warnings: Vec<String>,
}

/// Which rule (if any) a request falls under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Route<'a> {
    Rule(&'a Rule),
    Default(DefaultAction),
}

/// The outcome of authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No (valid) credential, and the route needs one.
    Unauthenticated,
    /// The caller is known but lacks what the route requires.
    Forbidden(Denial),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// What was needed, for the answer and `policy explain` (never a claim value).
    pub needed: String,
    /// True when the missing piece is a scope (RFC 6750 `insufficient_scope`).
    pub scope: bool,
}

impl Policy {
    /// The first rule matching the request, or the default. `path` is canonical.
    pub fn route(&self, method: &Method, path: &str, host: Option<&str>) -> Route<'_> {
        let lowered;
        let path = if self.case_insensitive_paths {
            lowered = path.to_ascii_lowercase();
            lowered.as_str()
        } else {
            path
        };
        let segments: Vec<&str> = glob::split(path).collect();
        let host = host.map(strip_port);
        self.rules
            .iter()
            .find(|rule| rule.matches(method, &segments, host))
            .map_or(Route::Default(self.default), Route::Rule)
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        // `[::1]:8443` and `example.com:8443`; a bare IPv6 literal has no port to strip.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() => name,
        _ => host,
    }
}

impl Rule {
    fn matches(&self, method: &Method, segments: &[&str], host: Option<&str>) -> bool {
        if let Some(methods) = &self.methods
            && !methods.contains(method)
        {
            return false;
        }
        if let Some(pattern) = &self.host {
            let Some(host) = host else { return false };
            if !host_matches(pattern, host) {
                return false;
            }
        }
        self.paths.iter().any(|glob| glob.matches(segments))
    }

    /// The one login provider this route allows, when it names exactly one: a login for it
    /// can skip the chooser.
    pub fn only_provider(&self) -> Option<&str> {
        match self.providers.as_slice() {
            [only] => Some(&only.name),
            _ => None,
        }
    }

    /// Decides for a caller already authenticated as the route asks (or not at all).
    pub fn authorize(&self, principal: Option<&Principal>) -> Decision {
        if self.auth == AuthMode::None {
            return Decision::Allow;
        }
        let Some(principal) = principal else {
            return Decision::Unauthenticated;
        };
        if !self.providers.is_empty()
            && !self
                .providers
                .iter()
                .any(|p| p.issuer.as_deref() == Some(principal.issuer.as_str()))
        {
            let names: Vec<&str> = self.providers.iter().map(|p| p.name.as_str()).collect();
            return Decision::Forbidden(Denial {
                needed: format!("a sign-in with {}", names.join(" or ")),
                scope: false,
            });
        }
        let r = &self.require;
        if let Some(needed) = r.roles.unmet(&principal.roles) {
            return Decision::Forbidden(Denial {
                needed: format!("role {needed}"),
                scope: false,
            });
        }
        if let Some(needed) = r.scopes.unmet(&principal.scopes) {
            return Decision::Forbidden(Denial {
                needed: format!("scope {needed}"),
                scope: true,
            });
        }
        if !r.email_domains.is_empty()
            && !principal
                .email
                .as_deref()
                .is_some_and(|e| email_in_domains(e, &r.email_domains))
        {
            return Decision::Forbidden(Denial {
                needed: format!("an email in {}", r.email_domains.join(", ")),
                scope: false,
            });
        }
        for (path, matcher) in &r.claims {
            if !matcher.matches(auth::lookup(&principal.claims, path)) {
                return Decision::Forbidden(Denial {
                    needed: format!("claim {path} {matcher}"),
                    scope: false,
                });
            }
        }
        Decision::Allow
    }
}

/// Is `email`'s domain one of `domains`: `example.com` exactly, `*.example.com` (or
/// `.example.com`) a subdomain, `*` any? Case is ignored.
pub fn email_in_domains(email: &str, domains: &[String]) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || domain.is_empty() {
        return false;
    }
    let domain = domain.to_ascii_lowercase();
    domains.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        if pattern == "*" {
            return true;
        }
        match pattern
            .strip_prefix("*.")
            .or_else(|| pattern.strip_prefix('.'))
        {
            Some(parent) => domain
                .strip_suffix(parent)
                .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
            None => pattern == domain,
        }
    })
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.split_once('.').is_some_and(|(label, parent)| {
            !label.is_empty() && parent.eq_ignore_ascii_case(suffix)
        }),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

impl SetRequirement {
    /// A description of what is missing, or `None` when satisfied.
    fn unmet(&self, have: &[String]) -> Option<String> {
        let has = |x: &String| have.contains(x);
        if let Some(missing) = self.all_of.iter().find(|x| !has(x)) {
            return Some(missing.clone());
        }
        if !self.any_of.is_empty() && !self.any_of.iter().any(has) {
            return Some(format!("one of {}", self.any_of.join(", ")));
        }
        None
    }
}

impl ClaimMatcher {
    fn matches(&self, value: Option<&Value>) -> bool {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return false;
        };
        let one = |v: &Value| match self {
            Self::Present => true,
            Self::Equals(expected) => v == expected,
            Self::OneOf(options) => options.contains(v),
        };
        match value {
            Value::Array(items) if !matches!(self, Self::Present) => items.iter().any(one),
            v => one(v),
        }
    }
}

impl fmt::Display for ClaimMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Present => f.write_str("present"),
            Self::Equals(v) => write!(f, "equal to {v}"),
            Self::OneOf(vs) => {
                let list: Vec<String> = vs.iter().map(Value::to_string).collect();
                write!(f, "one of {}", list.join(", "))
            }
        }
    }
}

/// Loads the policy a config names and checks it against the config: a route that needs
/// bearer tokens is an error when no issuer is configured.
pub fn load_for(config: &crate::config::Config) -> Result<Policy, Vec<ConfigError>> {
    let mut policy = load_dir(&config.policies).map_err(|mut errors| {
        for e in errors
            .iter_mut()
            .filter(|e| e.line == 0 && e.field == "(directory)")
        {
            *e = config.policies_origin.error(e.message.clone());
        }
        errors
    })?;
    let bearer = !config.issuers.is_empty();
    let session = !config.login.is_empty() || config.dev_users.is_some();
    let mut unknown = Vec::new();
    for rule in &mut policy.rules {
        for provider in &mut rule.providers {
            provider.issuer = if config.dev_users.is_some() {
                // Dev login stands in for every provider.
                Some(crate::devissuer::ISSUER.to_owned())
            } else {
                config
                    .login
                    .iter()
                    .find(|l| l.name == provider.name)
                    .map(|l| l.issuer.clone())
            };
            if provider.issuer.is_none() {
                let known: Vec<&str> = config.login.iter().map(|l| l.name.as_str()).collect();
                unknown.push(rule.origin.error(format!(
                    "route `{}` names login provider `{}`, which the config does not have (it has: {})",
                    rule.name,
                    provider.name,
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                )));
            }
        }
    }
    let mtls = config.tls.as_ref().is_some_and(|t| t.client_auth.is_some());
    let errors: Vec<ConfigError> = policy
        .rules
        .iter()
        .filter_map(|r| {
            let missing = match r.auth {
                AuthMode::None => return None,
                AuthMode::Bearer if !bearer => "bearer tokens but the config has no `issuers`",
                AuthMode::Session if !session => "browser sessions but the config has no `login`",
                AuthMode::Mtls if !mtls => {
                    "client certificates but the config has no `tls.client_auth`"
                }
                AuthMode::Any if !bearer && !session && !mtls => {
                    "a credential but the config has none of `issuers`, `login`, `tls.client_auth`"
                }
                _ => return None,
            };
            Some(r.origin.error(format!(
                "route `{}` needs {missing}; configure it or make the route `auth: none`",
                r.name
            )))
        })
        .chain(unknown)
        .collect();
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(errors)
    }
}

/// Loads every `*.yaml`/`*.yml` file in `dir`, in name order, into one policy.
pub fn load_dir(dir: &Path) -> Result<Policy, Vec<ConfigError>> {
    let fail = |message: String| {
        vec![ConfigError {
            file: dir.to_owned(),
            line: 0,
            column: 0,
            field: "(directory)".into(),
            message,
        }]
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| fail(format!("cannot read policy directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail("no policy files (*.yaml) found".into()));
    }
    let mut sources = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?;
        sources.push((file, text));
    }
    parse(&sources)
}

/// Parses and validates policy sources `(path, text)`, in order, as one policy.
pub fn parse(sources: &[(PathBuf, String)]) -> Result<Policy, Vec<ConfigError>> {
    let mut v = Validator::default();
    for (path, text) in sources {
        match serde_saphyr::from_str::<RawPolicyFile>(text) {
            Ok(raw) => v.file(path, raw),
            Err(e) => v.errors.push(crate::config::syntax_error(&e, text, path)),
        }
    }
    if !v.errors.is_empty() {
        return Err(v.errors);
    }
    let case_insensitive_paths = v.case_insensitive.is_some_and(|(on, _)| on);
    let mut rules = v.rules;
    if case_insensitive_paths {
        for rule in &mut rules {
            rule.paths = rule.paths.iter().map(Glob::to_ascii_lowercase).collect();
        }
    }
    let warnings = shadowed(&rules);
    Ok(Policy {
        rules,
        default: v.default.map_or(DefaultAction::Deny, |(d, _)| d),
        case_insensitive_paths,
        warnings,
    })
}

/// Rules that an earlier rule fully covers (same or wider methods, host and paths).
fn shadowed(rules: &[Rule]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (i, later) in rules.iter().enumerate() {
        let Some(earlier) = rules[..i].iter().find(|e| covers(e, later)) else {
            continue;
        };
        warnings.push(format!(
            "{}:{}: route `{}` can never match: route `{}` ({}:{}) comes first and takes all its requests",
            later.origin.file.display(),
            later.origin.line,
            later.name,
            earlier.name,
            earlier.origin.file.display(),
            earlier.origin.line,
        ));
    }
    warnings
}

fn covers(earlier: &Rule, later: &Rule) -> bool {
    let methods = match (&earlier.methods, &later.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|m| e.contains(m)),
    };
    let host = earlier.host.is_none() || earlier.host == later.host;
    methods
        && host
        && later
            .paths
            .iter()
            .all(|lp| earlier.paths.iter().any(|ep| ep.covers(lp)))
}

#[derive(Default)]
struct Validator {
    rules: Vec<Rule>,
    default: Option<(DefaultAction, Origin)>,
    case_insensitive: Option<(bool, Origin)>,
    errors: Vec<ConfigError>,
}

const UNKNOWN: Location = Location::UNKNOWN;

impl Validator {
    fn origin(file: &Path, at: &Location, field: &str) -> Origin {
        Origin {
            file: file.to_owned(),
            line: at.line(),
            column: at.column(),
            field: field.to_owned(),
        }
    }

    fn error(&mut self, file: &Path, at: &Location, field: &str, message: impl Into<String>) {
        self.errors
            .push(Self::origin(file, at, field).error(message));
    }

    fn file(&mut self, path: &Path, raw: RawPolicyFile) {
        match &raw.version {
            Some(v) if v.value == 1 => {}
            Some(v) => self.error(
                path,
                &v.referenced,
                "version",
                "only `version: 1` is supported",
            ),
            None => self.error(
                path,
                &UNKNOWN,
                "version",
                "is required: add `version: 1` at the top",
            ),
        }
        if let Some(default) = raw.default {
            let action = match default.value.as_str() {
                "deny" => Some(DefaultAction::Deny),
                "allow" => Some(DefaultAction::Allow),
                _ => {
                    self.error(
                        path,
                        &default.referenced,
                        "default",
                        "must be `deny` or `allow`",
                    );
                    None
                }
            };
            let here = Self::origin(path, &default.referenced, "default");
            match (&self.default, action) {
                (Some((_, first)), Some(_)) => {
                    let message = format!(
                        "is already set in {}:{}; set it in one file only",
                        first.file.display(),
                        first.line
                    );
                    self.errors.push(here.error(message));
                }
                (None, Some(action)) => self.default = Some((action, here)),
                (_, None) => {}
            }
        }
        if let Some(flag) = raw.case_insensitive_paths {
            let here = Self::origin(path, &flag.referenced, "case_insensitive_paths");
            match &self.case_insensitive {
                Some((_, first)) => {
                    let message = format!(
                        "is already set in {}:{}; set it in one file only",
                        first.file.display(),
                        first.line
                    );
                    self.errors.push(here.error(message));
                }
                None => self.case_insensitive = Some((flag.value, here)),
            }
        }
        for (i, route) in raw.routes.unwrap_or_default().into_iter().enumerate() {
            self.route(path, i, route);
        }
    }

    fn route(&mut self, file: &Path, i: usize, raw: RawRoute) {
        let field = |name: &str| format!("routes[{i}].{name}");
        let Some(name) = raw.name else {
            // The route is still somewhere in the file: point at the first key it does have.
            let at = [raw.path.as_ref(), raw.paths.iter().flatten().next()]
                .into_iter()
                .chain([raw.host.as_ref(), raw.auth.as_ref()])
                .flatten()
                .map(|s| s.referenced)
                .next()
                .unwrap_or(UNKNOWN);
            self.error(
                file,
                &at,
                &field("name"),
                "every route needs a unique `name`",
            );
            return;
        };
        let at = name.referenced;
        if let Some(first) = self.rules.iter().find(|r| r.name == name.value) {
            let message = format!(
                "`{}` is already used at {}:{}",
                name.value,
                first.origin.file.display(),
                first.origin.line
            );
            self.error(file, &at, &field("name"), message);
        }
        let globs: Vec<Spanned<String>> = match (raw.path, raw.paths) {
            (Some(p), None) => vec![p],
            (None, Some(ps)) if !ps.is_empty() => ps,
            (Some(p), Some(_)) => {
                self.error(
                    file,
                    &p.referenced,
                    &field("path"),
                    "set `path` or `paths`, not both",
                );
                return;
            }
            _ => {
                self.error(
                    file,
                    &at,
                    &field("path"),
                    "every route needs a `path` (or `paths`)",
                );
                return;
            }
        };
        let mut paths = Vec::new();
        for g in globs {
            match Glob::parse(&g.value) {
                Ok(glob) => paths.push(glob),
                Err(message) => self.error(file, &g.referenced, &field("path"), message),
            }
        }
        let methods = raw.methods.map(|methods| {
            methods
                .into_iter()
                .filter_map(|m| {
                    let upper = m.value.trim().to_ascii_uppercase();
                    match Method::from_bytes(upper.as_bytes()) {
                        Ok(method) if upper.bytes().all(|b| b.is_ascii_uppercase()) => Some(method),
                        _ => {
                            self.error(
                                file,
                                &m.referenced,
                                &field("methods"),
                                format!("`{}` is not an HTTP method", m.value),
                            );
                            None
                        }
                    }
                })
                .collect()
        });
        let host = raw.host.map(|h| h.value.trim().to_ascii_lowercase());
        let auth = match raw.auth {
            None => AuthMode::Any,
            Some(a) => match a.value.as_str() {
                "none" => AuthMode::None,
                "bearer" => AuthMode::Bearer,
                "any" => AuthMode::Any,
                "session" => AuthMode::Session,
                "mtls" => AuthMode::Mtls,
                _ => {
                    self.error(
                        file,
                        &a.referenced,
                        &field("auth"),
                        "must be `none`, `bearer`, `session`, `mtls` or `any`",
                    );
                    AuthMode::Any
                }
            },
        };
        let on_unauthenticated = match raw.on_unauthenticated {
            None => OnUnauthenticated::Auto,
            Some(o) => match o.value.as_str() {
                "redirect" => OnUnauthenticated::Redirect,
                "deny" => OnUnauthenticated::Deny,
                _ => {
                    self.error(
                        file,
                        &o.referenced,
                        &field("on_unauthenticated"),
                        "must be `redirect` or `deny`",
                    );
                    OnUnauthenticated::Auto
                }
            },
        };
        let require = raw
            .require
            .map(|r| self.require(file, i, r))
            .unwrap_or_default();
        if auth == AuthMode::None && require != Requirements::default() {
            let message =
                "a route with `auth: none` cannot have requirements: nobody is authenticated there";
            self.error(file, &at, &field("require"), message);
        }
        let cors = raw
            .cors
            .and_then(|c| self.cors(file, i, &at, c))
            .map(std::sync::Arc::new);
        let mut providers = Vec::new();
        for name in raw.providers.unwrap_or_default() {
            if !crate::config::valid_provider_name(&name.value) {
                self.error(
                    file,
                    &name.referenced,
                    &field("providers"),
                    format!("`{}` is not a provider name", name.value),
                );
            } else if matches!(auth, AuthMode::None | AuthMode::Mtls) {
                self.error(
                    file,
                    &name.referenced,
                    &field("providers"),
                    "needs `auth: session`, `bearer` or `any`: nobody signs in with a provider here",
                );
            }
            providers.push(ProviderRef {
                name: name.value,
                issuer: None,
            });
        }
        self.rules.push(Rule {
            name: name.value,
            paths,
            methods,
            host,
            auth,
            on_unauthenticated,
            require,
            pass_authorization: raw.pass_authorization.is_some_and(|p| p.value),
            cors,
            providers,
            origin: Self::origin(file, &at, &field("name")),
        });
    }

    fn require(&mut self, file: &Path, i: usize, raw: raw::RawRequire) -> Requirements {
        let set = |raw: Option<RawSet>| {
            let raw = raw.unwrap_or_default();
            let list = |v: Option<Vec<Spanned<String>>>| {
                v.unwrap_or_default().into_iter().map(|s| s.value).collect()
            };
            SetRequirement {
                any_of: list(raw.any_of),
                all_of: list(raw.all_of),
            }
        };
        let mut claims = Vec::new();
        for (path, matcher) in raw.claims.unwrap_or_default() {
            let field = format!("routes[{i}].require.claims.{path}");
            match self.claim(file, &field, matcher) {
                Some(m) => claims.push((path, m)),
                None => continue,
            }
        }
        let mut email_domains = Vec::new();
        for (j, domain) in raw
            .email_domains
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let text = domain.value.trim().to_ascii_lowercase();
            let name = text.strip_prefix("*.").unwrap_or(&text);
            if text != "*" && (name.is_empty() || name.contains(['@', '*', '/', ' '])) {
                self.error(
                    file,
                    &domain.referenced,
                    &format!("routes[{i}].require.email_domains[{j}]"),
                    "must be a domain (`example.com`), `*.example.com` or `*`",
                );
                continue;
            }
            email_domains.push(text);
        }
        Requirements {
            roles: set(raw.roles),
            scopes: set(raw.scopes),
            claims,
            email_domains,
        }
    }

    fn claim(&mut self, file: &Path, field: &str, raw: RawClaim) -> Option<ClaimMatcher> {
        match (raw.equals, raw.one_of, raw.present) {
            (Some(v), None, None) => Some(ClaimMatcher::Equals(v.value)),
            (None, Some(v), None) => Some(ClaimMatcher::OneOf(v.value)),
            (None, None, Some(p)) if p.value => Some(ClaimMatcher::Present),
            (None, None, Some(p)) => {
                self.error(
                    file,
                    &p.referenced,
                    field,
                    "`present: false` is not a requirement; remove it",
                );
                None
            }
            _ => {
                self.error(
                    file,
                    &UNKNOWN,
                    field,
                    "needs exactly one of `equals`, `one_of`, `present: true`",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;

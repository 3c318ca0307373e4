//! Configuration: one YAML file (`version: 1`), validated completely before anything starts.
//!
//! `raw` mirrors the file (and documents every key); this module turns it into the validated
//! types the rest of the crate uses. Every problem becomes a [`ConfigError`] naming the file,
//! line, column and field, and all of them are reported together. Nothing here does network
//! I/O; file contents (certificates) are read by `tls` when it loads them.

mod raw;
mod unknown;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde_saphyr::{Location, Spanned};

use http::HeaderName;
use jsonwebtoken::Algorithm;

use crate::auth::ClaimMapping;
use crate::secret::SecretSource;
use crate::telemetry::LogFormat;
pub use raw::RawConfig;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the value did not come from the file (a command-line flag).
    pub line: u64,
    pub column: u64,
    /// Dotted path of the field, e.g. `upstream.timeout` or `tls.certificates[1].key_file`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match self.line {
            0 => write!(f, "{file}: {}: {}", self.field, self.message),
            line => write!(
                f,
                "{file}:{line}:{}: {}: {}",
                self.column, self.field, self.message
            ),
        }
    }
}

/// Every problem found in one config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where a validated value came from, so that errors found later (a certificate that does not
/// load) can still name the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub field: String,
}

impl ConfigError {
    /// The same error, naming another field.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = field.to_owned();
        self
    }
}

impl Origin {
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            field: self.field.clone(),
            message: message.into(),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub tls: Option<TlsSettings>,
    pub upstream: Upstream,
    pub limits: Limits,
    pub trusted_proxies: Vec<IpNet>,
    pub log: LogSettings,
    /// The policy directory.
    pub policies: PathBuf,
    pub policies_origin: Origin,
    pub issuers: Vec<IssuerSettings>,
    pub identity: IdentitySettings,
    pub tokens: TokenSettings,
    /// Browser login; when set, `session` is set too.
    pub login: Option<LoginSettings>,
    pub session: Option<SessionSettings>,
    /// Dev mode only: sign in by picking one of these users (or typing one) instead of at an
    /// OpenID provider. No config file can set this; `gatehouse dev` does.
    pub dev_users: Option<Vec<crate::login::DevUser>>,
}

#[derive(Debug, Clone)]
pub struct LoginSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretSource>,
    pub redirect_url: String,
    pub scopes: Vec<String>,
    pub params: Vec<(String, String)>,
    pub allowed_redirect_hosts: Vec<String>,
    pub claims: ClaimMapping,
    /// Without a trailing slash, e.g. `/oauth2`.
    pub prefix: String,
    pub post_logout_redirect_url: Option<String>,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub secrets: Vec<SecretSource>,
    pub cookie_name: String,
    pub lifetime: Duration,
    pub flow_timeout: Duration,
    pub refresh: bool,
}

#[derive(Debug, Clone)]
pub struct IssuerSettings {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: JwksSource,
    pub algorithms: Vec<Algorithm>,
    pub claims: ClaimMapping,
    pub leeway: Duration,
    pub pass_authorization: bool,
    pub jwks: JwksSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `<issuer>/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery,
    Uri(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksSettings {
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub unknown_kid_interval: Duration,
    pub max_stale: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(15 * 60),
            unknown_kid_interval: Duration::from_secs(10),
            max_stale: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub user: HeaderName,
    pub roles: HeaderName,
    pub email: Option<HeaderName>,
    pub scopes: Option<HeaderName>,
    pub oauth2_proxy: bool,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            user: HeaderName::from_static("x-user-id"),
            roles: HeaderName::from_static("x-user-roles"),
            email: None,
            scopes: None,
            oauth2_proxy: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TokenSettings {
    pub max_bytes: usize,
    pub cache_size: u64,
}

/// The algorithms accepted when an issuer does not list its own.
pub const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Is `url` acceptable for talking to an identity provider: `https://`, or `http://` on a
/// loopback address (local and test IdPs)?
pub fn idp_url_allowed(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a URL")?;
    let host = uri.host().ok_or("needs a host")?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("must use https:// (http:// is accepted only on a loopback address)")
            }
        }
        _ => Err("must be an https:// URL"),
    }
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub https: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub admin: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub certificates: Vec<CertificateSource>,
    pub handshake_timeout: Duration,
    pub reload_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct CertificateSource {
    pub cert_file: PathBuf,
    pub key: KeySource,
    /// Explicit SNI names; empty means "the certificate's own DNS names".
    pub names: Vec<String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    /// An environment variable holding the PEM key. Read when certificates load, never logged.
    Env(String),
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub target: UpstreamTarget,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// `host:port` of a plaintext HTTP/1.1 server.
    Tcp(String),
    Unix(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_concurrent_streams: u32,
    pub max_connections: usize,
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// Values given on the command line; each replaces the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub https: Option<String>,
    pub admin: Option<String>,
    pub upstream: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse(&text, path, overrides)
}

/// Parses and validates config text; `path` names it in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let (raw, unknown_keys) = parse_raw(text, path);
    let Some(mut raw) = raw else {
        return Err(ConfigErrors(unknown_keys));
    };
    apply_overrides(&mut raw, overrides);
    let base = path.parent().unwrap_or(Path::new("."));
    let mut v = Validator {
        file: path,
        base,
        errors: unknown_keys,
    };
    let config = v.config(raw);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        v.errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(v.errors))
    }
}

/// Parses the raw structs, returning them with the unknown keys found on the way.
///
/// Serde stops at the first unknown key, which would hide every other problem in the file. So
/// each unknown key is recorded, blanked out of a copy of the text (see [`unknown::blank_key`]),
/// and the copy parsed again. Any other parse error ends the search: it is reported when it is
/// the file's first problem, and dropped otherwise, since it may come from the blanking.
fn parse_raw(text: &str, path: &Path) -> (Option<RawConfig>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut text = text.to_owned();
    loop {
        let error = match serde_saphyr::from_str::<RawConfig>(&text) {
            Ok(raw) => return (Some(raw), errors),
            Err(error) => error,
        };
        let blanked = match error.without_snippet() {
            serde_saphyr::Error::SerdeUnknownField { location, .. } => {
                unknown::blank_key(&text, location.line(), location.column())
            }
            _ => None,
        };
        if errors.is_empty() || blanked.is_some() {
            errors.push(syntax_error(&error, &text, path));
        }
        match blanked {
            Some(next) => text = next,
            None => return (None, errors),
        }
    }
}

pub(crate) fn syntax_error(error: &serde_saphyr::Error, text: &str, path: &Path) -> ConfigError {
    let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    let message = error.without_snippet().to_string();
    // The parser's own message may carry a location prefix; ours is in front already.
    let message = message
        .split_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m)
        .trim()
        .to_owned();
    ConfigError {
        file: path.to_owned(),
        line,
        column,
        field: yaml_path_at(text, line).unwrap_or_else(|| "(document)".into()),
        message,
    }
}

/// The dotted key path of the mapping key on `line` (1-based) of block-style YAML, found from
/// indentation: good enough to name the field of a parse error.
fn yaml_path_at(text: &str, line: u64) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let mut path = Vec::new();
    let mut limit = usize::MAX;
    for l in lines.get(..=index)?.iter().rev() {
        let content = l.trim_start();
        let indent = l.len() - content.len();
        if content.is_empty() || content.starts_with('#') || indent >= limit {
            continue;
        }
        let (item, key_indent) = match content.strip_prefix("- ") {
            Some(item) => (item, indent + 2),
            None => (content, indent),
        };
        // A key at the same depth as the one below it is a sibling in the same list item.
        let is_ancestor = key_indent < limit;
        if let Some((key, _)) = item.split_once(':').filter(|_| is_ancestor) {
            let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
            if !key.is_empty() && !key.contains(' ') {
                path.push(key.to_owned());
            }
        }
        limit = indent;
        if indent == 0 {
            break;
        }
    }
    path.reverse();
    (!path.is_empty()).then(|| path.join("."))
}

fn apply_overrides(raw: &mut RawConfig, o: &Overrides) {
    let flag = |v: &Option<String>| v.clone().map(|s| Spanned::new(s, UNKNOWN, UNKNOWN));
    let listen = raw.listen.get_or_insert_with(Default::default);
    if o.https.is_some() {
        listen.https = flag(&o.https);
    }
    if o.admin.is_some() {
        listen.admin = flag(&o.admin);
    }
    if o.upstream.is_some() {
        raw.upstream.get_or_insert_with(Default::default).url = flag(&o.upstream);
    }
    let log = raw.log.get_or_insert_with(Default::default);
    if o.log_format.is_some() {
        log.format = flag(&o.log_format);
    }
    if o.log_level.is_some() {
        log.level = flag(&o.log_level);
    }
}

const UNKNOWN: Location = Location::UNKNOWN;

/// Parses `500ms`, `10s`, `5m`, `1h` (whole numbers only).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 500ms, 10s, 5m or 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "`{text}` needs a unit: ms, s, m or h (for example `10s`)"
        )),
    }
}

struct Validator<'a> {
    file: &'a Path,
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn origin(&self, at: &Location, field: &str) -> Origin {
        Origin {
            file: self.file.to_owned(),
            line: at.line(),
            column: at.column(),
            field: field.to_owned(),
        }
    }

    fn error(&mut self, at: &Location, field: &str, message: impl Into<String>) {
        let error = self.origin(at, field).error(message);
        self.errors.push(error);
    }

    fn missing(&mut self, field: &str, message: impl Into<String>) {
        self.error(&UNKNOWN, field, message);
    }

    fn duration(
        &mut self,
        value: Option<Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        match parse_duration(&value.value) {
            Ok(d) if d.is_zero() => {
                self.error(&value.referenced, field, "must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(message) => {
                self.error(&value.referenced, field, message);
                default
            }
        }
    }

    fn addr(&mut self, value: &Spanned<String>, field: &str) -> Option<SocketAddr> {
        match value.value.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                let message = format!(
                    "`{}` is not an address like 127.0.0.1:8443 or [::]:8443",
                    value.value
                );
                self.error(&value.referenced, field, message);
                None
            }
        }
    }

    fn number<T: Copy + PartialOrd + fmt::Display>(
        &mut self,
        value: Option<Spanned<T>>,
        field: &str,
        min: T,
        default: T,
    ) -> T {
        match value {
            Some(v) if v.value < min => {
                self.error(&v.referenced, field, format!("must be at least {min}"));
                default
            }
            Some(v) => v.value,
            None => default,
        }
    }

    fn path(&self, value: &str) -> PathBuf {
        self.base.join(value)
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        match raw.version {
            Some(v) if v.value == 1 => {}
            Some(v) => self.error(&v.referenced, "version", "only `version: 1` is supported"),
            None => self.missing("version", "is required: add `version: 1` at the top"),
        }
        let tls = raw.tls.map(|t| self.tls(t));
        let listen = self.listen(raw.listen.unwrap_or_default(), tls.is_some());
        let upstream = self.upstream(raw.upstream.unwrap_or_default());
        let limits = self.limits(raw.limits.unwrap_or_default());
        let mut trusted_proxies = Vec::new();
        for (i, cidr) in raw
            .trusted_proxies
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let text = cidr.value.trim();
            let parsed = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => trusted_proxies.push(net),
                Err(_) => self.error(
                    &cidr.referenced,
                    &format!("trusted_proxies[{i}]"),
                    format!("`{text}` is not a CIDR like 10.0.0.0/8 or an IP address"),
                ),
            }
        }
        let log = self.log(raw.log.unwrap_or_default());
        let (policies, policies_origin) = match raw.policies {
            Some(dir) => (
                self.path(&dir.value),
                self.origin(&dir.referenced, "policies"),
            ),
            None => {
                let message =
                    "is required: the directory of route policies (e.g. `policies: policies/`)";
                self.missing("policies", message);
                (PathBuf::new(), self.origin(&UNKNOWN, "policies"))
            }
        };
        let mut issuers: Vec<IssuerSettings> = Vec::new();
        for (i, raw) in raw.issuers.unwrap_or_default().into_iter().enumerate() {
            if let Some(issuer) = self.issuer(raw, i) {
                if issuers.iter().any(|x| x.issuer == issuer.issuer) {
                    let message = format!("`{}` is configured twice", issuer.issuer);
                    self.missing(&format!("issuers[{i}].issuer"), message);
                }
                issuers.push(issuer);
            }
        }
        let identity = self.identity(raw.identity.unwrap_or_default());
        let raw_tokens = raw.tokens.unwrap_or_default();
        let tokens = TokenSettings {
            max_bytes: self.number(raw_tokens.max_bytes, "tokens.max_bytes", 256, 8192),
            cache_size: raw_tokens.cache_size.map_or(10_000, |c| c.value),
        };
        let login = raw.login.and_then(|l| self.login(l));
        let session = match (raw.session, &login) {
            (Some(s), _) => Some(self.session(s)),
            (None, Some(_)) => {
                self.missing(
                    "session",
                    "browser login needs a `session` section with `secrets`",
                );
                None
            }
            (None, None) => None,
        };
        Config {
            listen,
            tls,
            upstream,
            limits,
            trusted_proxies,
            log,
            policies,
            policies_origin,
            issuers,
            identity,
            tokens,
            login,
            session,
            dev_users: None,
        }
    }

    fn secret(&mut self, raw: raw::RawSecret, field: &str) -> Option<SecretSource> {
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

    fn claim_paths(raw: Option<raw::RawClaimPaths>) -> ClaimMapping {
        let defaults = ClaimMapping::default();
        let claims = raw.unwrap_or_default();
        let list = |v: Option<Vec<Spanned<String>>>, default: Vec<String>| {
            v.map_or(default, |v| v.into_iter().map(|s| s.value).collect())
        };
        ClaimMapping {
            subject: claims.subject.map_or(defaults.subject, |s| s.value),
            roles: list(claims.roles, defaults.roles),
            scopes: list(claims.scopes, defaults.scopes),
            email: claims.email.map_or(defaults.email, |s| s.value),
        }
    }

    fn algorithms(&mut self, raw: Option<Vec<Spanned<String>>>, field: &str) -> Vec<Algorithm> {
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

    fn login(&mut self, raw: raw::RawLogin) -> Option<LoginSettings> {
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
            "login.issuer",
            "the OpenID provider's issuer URL",
        );
        let client_id = required(
            raw.client_id,
            self,
            "login.client_id",
            "the client registered at the provider",
        );
        let redirect = required(
            raw.redirect_url,
            self,
            "login.redirect_url",
            "e.g. https://app.example.com/oauth2/callback",
        );
        let prefix = match raw.prefix {
            None => "/oauth2".to_owned(),
            Some(p) => {
                let trimmed = p.value.trim_end_matches('/').to_owned();
                let valid = trimmed.starts_with('/')
                    && trimmed.len() > 1
                    && crate::path::canonicalize(&trimmed).is_ok_and(|c| c == trimmed);
                if !valid {
                    self.error(
                        &p.referenced,
                        "login.prefix",
                        "must be a canonical path like `/oauth2`",
                    );
                }
                trimmed
            }
        };
        if let Some(issuer) = &issuer
            && let Err(problem) = idp_url_allowed(&issuer.value)
        {
            self.error(&issuer.referenced, "login.issuer", problem);
        }
        if let Some(redirect) = &redirect {
            match idp_url_allowed(&redirect.value) {
                Err(problem) => self.error(&redirect.referenced, "login.redirect_url", problem),
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
                        self.error(&redirect.referenced, "login.redirect_url", message);
                    }
                }
            }
        }
        if let Some(url) = &raw.post_logout_redirect_url
            && let Err(problem) = idp_url_allowed(&url.value)
        {
            self.error(&url.referenced, "login.post_logout_redirect_url", problem);
        }
        let client_secret = raw
            .client_secret
            .and_then(|s| self.secret(s, "login.client_secret"));
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
                    &format!("login.params.{name}"),
                    "is set by Gatehouse itself",
                );
            } else {
                params.push((name, value.value));
            }
        }
        let algorithms = self.algorithms(raw.algorithms, "login.algorithms");
        let leeway = self.duration(raw.leeway, "login.leeway", Duration::from_secs(30));
        Some(LoginSettings {
            issuer: issuer?.value,
            client_id: client_id?.value,
            client_secret,
            redirect_url: redirect?.value,
            scopes,
            params,
            allowed_redirect_hosts: raw
                .allowed_redirect_hosts
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.value)
                .collect(),
            claims: Self::claim_paths(raw.claims),
            prefix,
            post_logout_redirect_url: raw.post_logout_redirect_url.map(|u| u.value),
            algorithms,
            leeway,
        })
    }

    fn session(&mut self, raw: raw::RawSession) -> SessionSettings {
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
        }
    }

    fn issuer(&mut self, raw: raw::RawIssuer, i: usize) -> Option<IssuerSettings> {
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
        let claims = Self::claim_paths(raw.claims);
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
        Some(IssuerSettings {
            issuer: issuer.value,
            audiences,
            keys,
            algorithms,
            claims,
            leeway: self.duration(raw.leeway, &field("leeway"), Duration::from_secs(30)),
            pass_authorization: raw.pass_authorization.is_some_and(|p| p.value),
            jwks,
        })
    }

    fn identity(&mut self, raw: raw::RawIdentity) -> IdentitySettings {
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
        IdentitySettings {
            user: name(raw.user_header, "identity.user_header").unwrap_or(d.user),
            roles: name(raw.roles_header, "identity.roles_header").unwrap_or(d.roles),
            email: name(raw.email_header, "identity.email_header"),
            scopes: name(raw.scopes_header, "identity.scopes_header"),
            oauth2_proxy: raw.oauth2_proxy_headers.is_some_and(|b| b.value),
        }
    }

    fn listen(&mut self, raw: raw::RawListen, has_tls: bool) -> Listen {
        let https = raw
            .https
            .as_ref()
            .and_then(|v| self.addr(v, "listen.https"));
        let http = raw.http.as_ref().and_then(|v| self.addr(v, "listen.http"));
        let admin = match &raw.admin {
            Some(v) => self.addr(v, "listen.admin"),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
        };
        match (&raw.https, has_tls) {
            (Some(v), false) => self.error(
                &v.referenced,
                "listen.https",
                "needs a `tls` section with certificates",
            ),
            (None, true) => self.missing("listen.https", "is required when `tls` is configured"),
            _ => {}
        }
        if raw.https.is_none() && raw.http.is_none() {
            self.missing(
                "listen",
                "set `https` (with `tls`) or, behind a TLS terminator, `http`",
            );
        }
        let public = [https, http];
        // Port 0 asks the OS for a free port, so two port-0 listeners never clash.
        if let (Some(admin), Some(v)) = (admin, &raw.admin)
            && admin.port() != 0
            && public.contains(&Some(admin))
        {
            self.error(
                &v.referenced,
                "listen.admin",
                "must not be a public listener's address",
            );
        }
        Listen {
            https,
            http,
            admin: admin.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9901))),
        }
    }

    fn tls(&mut self, raw: raw::RawTls) -> TlsSettings {
        let mut certificates = Vec::new();
        match raw.certificates {
            Some(list) if list.value.is_empty() => self.error(
                &list.referenced,
                "tls.certificates",
                "needs at least one certificate",
            ),
            Some(list) => {
                for (i, cert) in list.value.into_iter().enumerate() {
                    if let Some(source) = self.certificate(cert, i, &list.referenced) {
                        certificates.push(source);
                    }
                }
            }
            None => self.missing("tls.certificates", "is required in the `tls` section"),
        }
        TlsSettings {
            certificates,
            handshake_timeout: self.duration(
                raw.handshake_timeout,
                "tls.handshake_timeout",
                Duration::from_secs(10),
            ),
            reload_interval: self.duration(
                raw.reload_interval,
                "tls.reload_interval",
                Duration::from_secs(5),
            ),
        }
    }

    fn certificate(
        &mut self,
        raw: raw::RawCertificate,
        i: usize,
        list: &Location,
    ) -> Option<CertificateSource> {
        let field = format!("tls.certificates[{i}]");
        let Some(cert) = raw.cert_file else {
            self.error(list, &format!("{field}.cert_file"), "is required");
            return None;
        };
        let key = match (raw.key_file, raw.key_env) {
            (Some(file), None) => KeySource::File(self.path(&file.value)),
            (None, Some(env)) => {
                if std::env::var_os(&env.value).is_none() {
                    let message = format!("environment variable `{}` is not set", env.value);
                    self.error(&env.referenced, &format!("{field}.key_env"), message);
                }
                KeySource::Env(env.value)
            }
            (Some(file), Some(_)) => {
                let message = "set either `key_file` or `key_env`, not both";
                self.error(&file.referenced, &format!("{field}.key_file"), message);
                return None;
            }
            (None, None) => {
                let message = "needs `key_file` or `key_env`";
                self.error(&cert.referenced, &format!("{field}.key_file"), message);
                return None;
            }
        };
        let mut names = Vec::new();
        for (j, name) in raw.names.unwrap_or_default().into_iter().enumerate() {
            let lower = name.value.trim().to_ascii_lowercase();
            let bare = lower.strip_prefix("*.").unwrap_or(&lower);
            let valid = !bare.is_empty()
                && bare.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if valid {
                names.push(lower);
            } else {
                let message = format!("`{}` is not a DNS name or `*.` wildcard", name.value);
                self.error(&name.referenced, &format!("{field}.names[{j}]"), message);
            }
        }
        Some(CertificateSource {
            cert_file: self.path(&cert.value),
            key,
            names,
            origin: self.origin(&cert.referenced, &format!("{field}.cert_file")),
        })
    }

    fn upstream(&mut self, raw: raw::RawUpstream) -> Upstream {
        let target = match &raw.url {
            Some(url) => self.upstream_target(url),
            None => {
                self.missing("upstream.url", "is required, e.g. `http://127.0.0.1:3000`");
                None
            }
        };
        Upstream {
            target: target.unwrap_or(UpstreamTarget::Tcp("127.0.0.1:80".into())),
            connect_timeout: self.duration(
                raw.connect_timeout,
                "upstream.connect_timeout",
                Duration::from_secs(5),
            ),
            timeout: self.duration(raw.timeout, "upstream.timeout", Duration::from_secs(60)),
            pool_idle_timeout: self.duration(
                raw.pool_idle_timeout,
                "upstream.pool_idle_timeout",
                Duration::from_secs(90),
            ),
            pool_max_idle: self.number(raw.pool_max_idle, "upstream.pool_max_idle", 0, 64),
        }
    }

    fn upstream_target(&mut self, url: &Spanned<String>) -> Option<UpstreamTarget> {
        let text = url.value.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                self.error(
                    &url.referenced,
                    "upstream.url",
                    "`unix:` needs a socket path",
                );
                return None;
            }
            return Some(UpstreamTarget::Unix(self.path(path)));
        }
        let problem = match text.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() != Some("http") => {
                "must start with `http://` or `unix:` (Gatehouse talks plaintext to the app)"
            }
            Ok(uri) if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() => {
                "must not have a path or query: the request's own path is forwarded"
            }
            Ok(uri) => match uri.authority() {
                Some(a) if a.as_str().contains('@') => "must not contain credentials",
                Some(a) => {
                    let port = a.port_u16().unwrap_or(80);
                    return Some(UpstreamTarget::Tcp(format!("{}:{port}", a.host())));
                }
                None => "needs a host, e.g. `http://127.0.0.1:3000`",
            },
            Err(_) => "is not a URL like `http://127.0.0.1:3000` or `unix:/run/app.sock`",
        };
        self.error(&url.referenced, "upstream.url", problem);
        None
    }

    fn limits(&mut self, raw: raw::RawLimits) -> Limits {
        Limits {
            max_header_bytes: self.number(
                raw.max_header_bytes,
                "limits.max_header_bytes",
                8192,
                16384,
            ),
            max_headers: self.number(raw.max_headers, "limits.max_headers", 1, 100),
            header_read_timeout: self.duration(
                raw.header_read_timeout,
                "limits.header_read_timeout",
                Duration::from_secs(10),
            ),
            idle_timeout: self.duration(
                raw.idle_timeout,
                "limits.idle_timeout",
                Duration::from_secs(60),
            ),
            max_concurrent_streams: self.number(
                raw.max_concurrent_streams,
                "limits.max_concurrent_streams",
                1,
                100,
            ),
            max_connections: self.number(raw.max_connections, "limits.max_connections", 1, 4096),
            drain_timeout: self.duration(
                raw.drain_timeout,
                "limits.drain_timeout",
                Duration::from_secs(30),
            ),
        }
    }

    fn log(&mut self, raw: raw::RawLog) -> LogSettings {
        let format = match &raw.format {
            None => LogFormat::Text,
            Some(f) if f.value == "text" => LogFormat::Text,
            Some(f) if f.value == "json" => LogFormat::Json,
            Some(f) => {
                self.error(&f.referenced, "log.format", "must be `text` or `json`");
                LogFormat::Text
            }
        };
        let (level, at) = raw
            .level
            .map_or(("info".into(), UNKNOWN), |l| (l.value, l.referenced));
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
            self.error(
                &at,
                "log.level",
                format!("`{level}` is not a log filter: {e}"),
            );
        }
        LogSettings { format, level }
    }
}

#[cfg(test)]
mod tests;

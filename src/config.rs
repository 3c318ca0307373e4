//! Configuration: one YAML file (`version: 1`), validated completely before anything starts.
//!
//! `raw` mirrors the file (and documents every key); this module turns it into the validated
//! types the rest of the crate uses. Every problem becomes a [`ConfigError`] naming the file,
//! line, column and field, and all of them are reported together. Nothing here does network
//! I/O; file contents (certificates) are read by `tls` when it loads them.
//!
//! It owns the types it validates (`DevUser`, the client-certificate rules) and imports
//! neither `login` nor `auth`: they build on config, not the other way round.

pub mod cert_rules;
pub(crate) mod dev_user;
mod raw;
mod unknown;
mod validate;
mod validate_auth;
mod validate_callers;
mod validate_session;
mod validate_telemetry;

use validate::Validator;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde_saphyr::{Location, Spanned};

use http::HeaderName;
use jsonwebtoken::Algorithm;

use crate::secret::{SecretSource, TextSource};
use crate::telemetry::{AuditMode, LogFormat};
pub use dev_user::DevUser;
pub use raw::RawConfig;
pub use validate_auth::valid_provider_name;

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
    /// Browser login, one entry per provider (in the order written); when not empty,
    /// `session` is set too. Every entry holds the same shared settings (`prefix`,
    /// `allowed_redirect_hosts`, `pass_access_token`, `set_authorization`), names and
    /// issuers are unique.
    pub login: Vec<LoginSettings>,
    pub session: Option<SessionSettings>,
    /// Dev mode only: sign in by picking one of these users (or typing one) instead of at an
    /// OpenID provider; also turns on the inspector (`/.gatehouse/`). No config file can set
    /// this; `gatehouse dev` and `gatehouse demo` do.
    pub dev_users: Option<Vec<DevUser>>,
    /// The signed identity assertion (`identity.assertion`), when enabled.
    pub assertion: Option<AssertionSettings>,
    /// `forward_auth`: the forward-auth endpoint also without `login`.
    pub forward_auth: bool,
    /// `compat.oauth2_proxy`: public `/ping` and `/ready` (and oauth2-proxy's header names,
    /// already folded into `identity`).
    pub compat_oauth2_proxy: bool,
    /// `telemetry`: trace context and OTLP export.
    pub telemetry: TelemetrySettings,
}

/// `telemetry`, validated.
#[derive(Debug, Clone, Default)]
pub struct TelemetrySettings {
    pub trust_client_trace: bool,
    /// `None`: no tracing at all.
    pub otlp: Option<OtlpSettings>,
}

/// `telemetry.otlp`, validated; header values already read.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The collector's base URL, without a trailing `/`.
    pub endpoint: String,
    pub sample_ratio: f64,
    pub headers: Vec<(String, crate::secret::Secret<String>)>,
    pub timeout: Duration,
}

/// `identity.assertion`, validated.
#[derive(Debug, Clone)]
pub struct AssertionSettings {
    pub header: HeaderName,
    pub audience: String,
    pub issuer: String,
    /// Whole seconds, at least one.
    pub ttl: Duration,
    /// The ES256 PKCS#8 key; `None` generates one at start.
    pub key_file: Option<PathBuf>,
    pub origin: Origin,
    pub publish: bool,
}

#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// Unique among the providers; `default` for a single one.
    pub name: String,
    /// What the chooser page shows.
    pub title: String,
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
    /// `X-Forwarded-Access-Token` to the app.
    pub pass_access_token: bool,
    /// `Authorization: Bearer <access token>` to the app.
    pub set_authorization: bool,
}

impl LoginSettings {
    /// Does the app receive the access token, so that the session must keep it?
    pub fn sends_access_token(&self) -> bool {
        self.pass_access_token || self.set_authorization
    }
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub secrets: Vec<SecretSource>,
    pub cookie_name: String,
    pub lifetime: Duration,
    pub flow_timeout: Duration,
    pub refresh: bool,
    pub store: SessionStore,
}

/// Where sessions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStore {
    /// Sealed in the cookie itself.
    Cookie,
    /// In Redis; the cookie holds a ticket.
    Redis(RedisSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub url: TextSource,
    pub username: Option<TextSource>,
    pub password: Option<SecretSource>,
    pub key_prefix: String,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
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
    /// Opaque tokens of this issuer are checked at its introspection endpoint.
    pub introspection: Option<IntrospectionSettings>,
}

/// RFC 7662 token introspection for one issuer (`issuers[].introspection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionSettings {
    pub endpoint: IntrospectionEndpoint,
    pub client_id: String,
    pub client_secret: SecretSource,
    pub auth_method: ClientAuthMethod,
    pub cache_ttl: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntrospectionEndpoint {
    /// `introspection_endpoint` of `<issuer>/.well-known/openid-configuration`.
    Discovery,
    Url(String),
}

/// How Gatehouse authenticates to an introspection endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the request body.
    Post,
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
    pub list_format: ListFormat,
}

/// How the roles and scopes headers hold a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListFormat {
    /// Roles comma-joined, scopes space-joined; items that hold the separator are refused.
    #[default]
    Csv,
    /// A compact JSON array of strings.
    Json,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            user: HeaderName::from_static("x-user-id"),
            roles: HeaderName::from_static("x-user-roles"),
            email: None,
            scopes: None,
            oauth2_proxy: false,
            list_format: ListFormat::Csv,
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
    pub min_version: TlsVersion,
    /// The suites offered, in order, every one usable with `min_version` (and at least one
    /// for each version offered).
    pub cipher_suites: Vec<rustls::SupportedCipherSuite>,
    /// Client certificates (`tls.client_auth`), when configured.
    pub client_auth: Option<ClientAuthSettings>,
}

/// `tls.client_auth`, validated.
#[derive(Debug, Clone)]
pub struct ClientAuthSettings {
    pub ca_file: PathBuf,
    pub mode: ClientAuthMode,
    pub rules: cert_rules::CertRules,
    pub forward_client_cert: bool,
    /// Where `ca_file` is, for errors found when the file is read.
    pub origin: Origin,
}

/// Whether a client certificate is needed to connect at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// No certificate is fine; routes decide.
    Optional,
    /// The handshake fails without a valid certificate.
    Required,
}

/// The lowest TLS version the public listener offers (`tls.min_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
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
    /// Upgrade protocols forwarded to the app, lower-cased (never `h2c`).
    pub upgrades: Vec<String>,
    pub protocol: UpstreamProtocol,
    /// Streams opened at once on one HTTP/2 connection to the app (`h2c` only).
    pub max_streams_per_connection: u32,
    pub health: UpstreamHealth,
}

/// How Gatehouse speaks to the app (`upstream.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge.
    H2c,
}

/// What readiness also waits for on the app's side (`upstream.health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamHealth {
    #[default]
    None,
    /// `grpc.health.v1.Health/Check` answering `SERVING`.
    Grpc,
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
    pub audit: AuditMode,
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
    let listen = &mut raw
        .listen
        .get_or_insert_with(|| Spanned::new(Default::default(), UNKNOWN, UNKNOWN))
        .value;
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

pub(crate) const UNKNOWN: Location = Location::UNKNOWN;

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

/// Where an issuer keeps the facts we need, as claim paths (`realm_access.roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub subject: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub email: String,
    pub roles_string: RolesString,
}

/// What a roles claim that is one string, not an array, means (`claims.roles_string`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RolesString {
    /// A wrong type, refused like any other.
    #[default]
    Reject,
    /// Roles separated by commas or whitespace; empty pieces are dropped.
    Split,
    /// The whole string is one role.
    Single,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            roles: vec!["roles".into()],
            scopes: vec!["scope".into(), "scp".into()],
            email: "email".into(),
            roles_string: RolesString::Reject,
        }
    }
}

#[cfg(test)]
mod tests;

/// The errors of `text` (as `g.yaml`) other than those about `session.secrets`, as (line,
/// field, message): for tests whose secrets are an unset variable, since only the other
/// fields matter to them. Panics when `text` is accepted.
#[cfg(test)]
fn errors_but_secrets(text: &str) -> Vec<(u64, String, String)> {
    parse(text, Path::new("g.yaml"), &Overrides::default())
        .unwrap_err()
        .0
        .into_iter()
        .filter(|e| !e.field.starts_with("session.secrets"))
        .map(|e| (e.line, e.field, e.message))
        .collect()
}

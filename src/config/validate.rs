//! Validation: turns the raw file (`raw`) into the validated types, collecting every problem
//! as a [`ConfigError`] with file, line and field. The listeners, TLS, upstream, limits and
//! logs are checked here; identity settings (issuers, login, session) in `validate_auth`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use rustls::SupportedCipherSuite;
use rustls::crypto::aws_lc_rs;
use serde_saphyr::{Location, Spanned};

use super::raw::{self, RawConfig};
use super::*;

pub(super) struct Validator<'a> {
    pub(super) file: &'a Path,
    pub(super) base: &'a Path,
    pub(super) errors: Vec<ConfigError>,
}

impl Validator<'_> {
    pub(super) fn origin(&self, at: &Location, field: &str) -> Origin {
        Origin {
            file: self.file.to_owned(),
            line: at.line(),
            column: at.column(),
            field: field.to_owned(),
        }
    }

    pub(super) fn error(&mut self, at: &Location, field: &str, message: impl Into<String>) {
        let error = self.origin(at, field).error(message);
        self.errors.push(error);
    }

    /// A required key that is absent. When its section is there but a misspelt key in it was
    /// refused (an unknown key, found before validation), the error points at that key: that
    /// is most likely the one the author meant.
    pub(super) fn missing(&mut self, field: &str, message: impl Into<String>) {
        let section = field.rsplit_once('.').map_or(field, |(section, _)| section);
        let within = |f: &str| {
            f.strip_prefix(section)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        };
        let nearby = self
            .errors
            .iter()
            .find(|e| e.line > 0 && within(&e.field))
            .map(|e| (e.line, e.column));
        let mut error = self.origin(&UNKNOWN, field).error(message);
        if let Some((line, column)) = nearby {
            error.line = line;
            error.column = column;
        }
        self.errors.push(error);
    }

    pub(super) fn duration(
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

    pub(super) fn addr(&mut self, value: &Spanned<String>, field: &str) -> Option<SocketAddr> {
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

    pub(super) fn number<T: Copy + PartialOrd + fmt::Display>(
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

    pub(super) fn path(&self, value: &str) -> PathBuf {
        self.base.join(value)
    }

    pub(super) fn config(&mut self, mut raw: RawConfig) -> Config {
        match raw.version {
            Some(v) if v.value == 1 => {}
            Some(v) => self.error(&v.referenced, "version", "only `version: 1` is supported"),
            None => self.missing("version", "is required: add `version: 1` at the top"),
        }
        let tls = raw.tls.map(|t| self.tls(t));
        let listen = match raw.listen {
            Some(listen) => self.listen(listen.value, &listen.referenced, tls.is_some()),
            None => self.listen(raw::RawListen::default(), &UNKNOWN, tls.is_some()),
        };
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
            let at = raw.issuer.as_ref().map_or(UNKNOWN, |s| s.referenced);
            if let Some(issuer) = self.issuer(raw, i) {
                if issuers.iter().any(|x| x.issuer == issuer.issuer) {
                    let message = format!("`{}` is configured twice", issuer.issuer);
                    self.error(&at, &format!("issuers[{i}].issuer"), message);
                }
                issuers.push(issuer);
            }
        }
        let mut raw_identity = raw.identity.take().unwrap_or_default();
        let assertion = raw_identity
            .assertion
            .take()
            .and_then(|a| self.assertion(a));
        let mut identity = self.identity(raw_identity);
        let compat_oauth2_proxy = raw
            .compat
            .take()
            .and_then(|c| c.oauth2_proxy)
            .is_some_and(|b| b.value);
        identity.oauth2_proxy |= compat_oauth2_proxy;
        let raw_tokens = raw.tokens.unwrap_or_default();
        let tokens = TokenSettings {
            max_bytes: self.number(raw_tokens.max_bytes, "tokens.max_bytes", 256, 8192),
            cache_size: raw_tokens.cache_size.map_or(10_000, |c| c.value),
        };
        let login = raw.login.map(|l| self.login(l)).unwrap_or_default();
        let session = match (raw.session, login.first()) {
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
            assertion,
            forward_auth: raw.forward_auth.is_some_and(|f| f.value),
            compat_oauth2_proxy,
            telemetry: self.telemetry(raw.telemetry.unwrap_or_default()),
        }
    }

    /// `at`: where the `listen` section is (unknown when it is absent).
    pub(super) fn listen(&mut self, raw: raw::RawListen, at: &Location, has_tls: bool) -> Listen {
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
            let message = "set `https` (with `tls`) or, behind a TLS terminator, `http`";
            if at.line() > 0 {
                self.error(at, "listen", message);
            } else {
                self.missing("listen", message);
            }
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

    pub(super) fn tls(&mut self, raw: raw::RawTls) -> TlsSettings {
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
        let min_version = self.tls_version(raw.min_version);
        let cipher_suites = self.cipher_suites(raw.cipher_suites, min_version);
        let client_auth = raw.client_auth.and_then(|c| self.client_auth(c));
        TlsSettings {
            client_auth,
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
            min_version,
            cipher_suites,
        }
    }

    fn tls_version(&mut self, raw: Option<Spanned<String>>) -> TlsVersion {
        let Some(value) = raw else {
            return TlsVersion::Tls12;
        };
        match value.value.trim() {
            "1.2" => TlsVersion::Tls12,
            "1.3" => TlsVersion::Tls13,
            other => {
                let message = format!("`{other}` is not offered: use \"1.2\" or \"1.3\"");
                self.error(&value.referenced, "tls.min_version", message);
                TlsVersion::Tls12
            }
        }
    }

    /// The suites `tls.cipher_suites` names (the provider's defaults when unset), checked
    /// against the provider and against `min`: every suite must be usable, and each version
    /// offered must have one.
    fn cipher_suites(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        min: TlsVersion,
    ) -> Vec<SupportedCipherSuite> {
        const FIELD: &str = "tls.cipher_suites";
        let available = aws_lc_rs::default_provider().cipher_suites;
        let is_tls13 = |s: &SupportedCipherSuite| s.version() == &rustls::version::TLS13;
        let Some(list) = raw else {
            return available
                .into_iter()
                .filter(|s| min == TlsVersion::Tls12 || is_tls13(s))
                .collect();
        };
        if list.value.is_empty() {
            let message = "needs at least one suite; leave it out for the defaults";
            self.error(&list.referenced, FIELD, message);
            return Vec::new();
        }
        let errors_before = self.errors.len();
        let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
        for (i, name) in list.value.iter().enumerate() {
            let field = format!("{FIELD}[{i}]");
            let wanted = name.value.trim();
            let found = available.iter().find(|s| {
                s.suite()
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
            });
            let message = match found {
                None => format!(
                    "`{wanted}` is not a cipher suite Gatehouse offers (rustls names, such as \
                     TLS13_AES_128_GCM_SHA256; the README's TLS section lists them)"
                ),
                Some(s) if chosen.contains(s) => format!("`{wanted}` is listed twice"),
                Some(s) if min == TlsVersion::Tls13 && !is_tls13(s) => {
                    format!("`{wanted}` is a TLS 1.2 suite, never used with `min_version: \"1.3\"`")
                }
                Some(s) => {
                    chosen.push(*s);
                    continue;
                }
            };
            self.error(&name.referenced, &field, message);
        }
        if self.errors.len() > errors_before {
            return chosen;
        }
        if !chosen.iter().any(is_tls13) {
            let message = "has no TLS 1.3 suite, so TLS 1.3 would be off: add one, such as \
                           TLS13_AES_128_GCM_SHA256";
            self.error(&list.referenced, FIELD, message);
        } else if min == TlsVersion::Tls12 && chosen.iter().all(is_tls13) {
            let message = "has only TLS 1.3 suites, so TLS 1.2 clients could not connect: \
                           set `min_version: \"1.3\"` to say so, or add a TLS 1.2 suite";
            self.error(&list.referenced, FIELD, message);
        }
        chosen
    }

    pub(super) fn certificate(
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

    pub(super) fn upstream(&mut self, raw: raw::RawUpstream) -> Upstream {
        let target = match &raw.url {
            Some(url) => self.upstream_target(url),
            None => {
                self.missing("upstream.url", "is required, e.g. `http://127.0.0.1:3000`");
                None
            }
        };
        let (protocol, health) = self.upstream_protocol(&raw);
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
            upgrades: self.upgrades(raw.upgrades),
            protocol,
            max_streams_per_connection: self.number(
                raw.max_streams_per_connection,
                "upstream.max_streams_per_connection",
                1,
                100,
            ),
            health,
        }
    }

    /// `upstream.protocol` and `upstream.health`, which needs `h2c`.
    fn upstream_protocol(&mut self, raw: &raw::RawUpstream) -> (UpstreamProtocol, UpstreamHealth) {
        let protocol = match &raw.protocol {
            None => UpstreamProtocol::Http1,
            Some(p) => match p.value.trim() {
                "http1" => UpstreamProtocol::Http1,
                "h2c" => UpstreamProtocol::H2c,
                other => {
                    let message = format!("`{other}` is not `http1` or `h2c`");
                    self.error(&p.referenced, "upstream.protocol", message);
                    UpstreamProtocol::Http1
                }
            },
        };
        let health = match &raw.health {
            None => UpstreamHealth::None,
            Some(h) => match h.value.trim() {
                "none" => UpstreamHealth::None,
                "grpc" if protocol == UpstreamProtocol::H2c => UpstreamHealth::Grpc,
                "grpc" => {
                    let message = "`grpc` needs `upstream.protocol: h2c` (gRPC is HTTP/2)";
                    self.error(&h.referenced, "upstream.health", message);
                    UpstreamHealth::None
                }
                other => {
                    let message = format!("`{other}` is not `none` or `grpc`");
                    self.error(&h.referenced, "upstream.health", message);
                    UpstreamHealth::None
                }
            },
        };
        (protocol, health)
    }

    /// `upstream.upgrades`: protocol tokens (RFC 9110 §7.8), never `h2c`.
    fn upgrades(&mut self, raw: Option<Vec<Spanned<String>>>) -> Vec<String> {
        let Some(raw) = raw else {
            return vec!["websocket".to_owned()];
        };
        let mut upgrades = Vec::new();
        for (i, protocol) in raw.iter().enumerate() {
            let field = format!("upstream.upgrades[{i}]");
            let lower = protocol.value.trim().to_ascii_lowercase();
            let name = lower.split('/').next().unwrap_or_default();
            if name == "h2c" || name == "h2" {
                let message = "`h2c` cannot be forwarded: after the app's `101` the client would \
                               speak HTTP/2 straight to the app, past every policy";
                self.error(&protocol.referenced, &field, message);
            } else if !crate::headers::is_upgrade_token(&lower) {
                let message = format!(
                    "`{}` is not a protocol name like `websocket`",
                    protocol.value
                );
                self.error(&protocol.referenced, &field, message);
            } else if !upgrades.contains(&lower) {
                upgrades.push(lower);
            }
        }
        upgrades
    }

    pub(super) fn upstream_target(&mut self, url: &Spanned<String>) -> Option<UpstreamTarget> {
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

    pub(super) fn limits(&mut self, raw: raw::RawLimits) -> Limits {
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

    pub(super) fn log(&mut self, raw: raw::RawLog) -> LogSettings {
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
        if let Err(e) = crate::telemetry::parse_filter(&level) {
            self.error(
                &at,
                "log.level",
                format!("`{level}` is not a log filter: {e}"),
            );
        }
        let audit = match &raw.audit {
            None => AuditMode::Denied,
            Some(a) if a.value == "all" => AuditMode::All,
            Some(a) if a.value == "denied" => AuditMode::Denied,
            Some(a) if a.value == "off" => AuditMode::Off,
            Some(a) => {
                self.error(
                    &a.referenced,
                    "log.audit",
                    "must be `all`, `denied` or `off`",
                );
                AuditMode::Denied
            }
        };
        LogSettings {
            format,
            level,
            audit,
        }
    }
}

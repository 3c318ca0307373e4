//! The config file as written: serde structs that mirror the YAML, unknown keys rejected.
//!
//! Every leaf is `Spanned` so that validation (in `config.rs`) can name the line of a bad value.
//! Values that need parsing (addresses, durations, CIDRs) stay strings here; parsing them in
//! validation lets every bad value be reported in one pass.
//!
//! This file is the reference for the config keys; the README links here.

use serde::Deserialize;
use serde_saphyr::Spanned;

type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Format version; must be `1`.
    pub version: Option<S<u32>>,
    pub listen: Option<RawListen>,
    pub tls: Option<RawTls>,
    pub upstream: Option<RawUpstream>,
    pub limits: Option<RawLimits>,
    /// Peers (CIDRs) whose `X-Forwarded-*` and `Forwarded` headers are believed. Empty by
    /// default: every client copy is replaced.
    pub trusted_proxies: Option<Vec<S<String>>>,
    pub log: Option<RawLog>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// The public TLS listener, `ADDR:PORT`. Requires `tls`.
    pub https: Option<S<String>>,
    /// A plaintext listener. Off unless set: use it only behind something that terminates TLS.
    pub http: Option<S<String>>,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`). Default `127.0.0.1:9901`.
    pub admin: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Certificates to serve. The first is the default for clients that send no (or an
    /// unknown) server name.
    pub certificates: Option<S<Vec<RawCertificate>>>,
    /// Time allowed for a TLS handshake. Default `10s`.
    pub handshake_timeout: Option<S<String>>,
    /// How often certificate files are checked for changes. Default `5s`.
    pub reload_interval: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: Option<S<String>>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<S<String>>,
    /// Name of an environment variable holding the PEM private key (instead of `key_file`).
    pub key_env: Option<S<String>>,
    /// Server names (SNI) this certificate answers for; `*.example.com` matches one label.
    /// Default: the DNS names in the certificate.
    pub names: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// The application: `http://127.0.0.1:PORT` or `unix:/path/to/socket`.
    pub url: Option<S<String>>,
    /// Time allowed to connect. Default `5s`.
    pub connect_timeout: Option<S<String>>,
    /// Time allowed for the response headers after the request is sent. Default `60s`.
    pub timeout: Option<S<String>>,
    /// How long an idle pooled connection is kept. Default `90s`.
    pub pool_idle_timeout: Option<S<String>>,
    /// Idle connections kept in the pool. Default `64`.
    pub pool_max_idle: Option<S<usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Bytes allowed for the request line and headers (HTTP/1.1), or the header list (HTTP/2).
    /// Larger requests get 431. Default `16384`, at least `8192`.
    pub max_header_bytes: Option<S<usize>>,
    /// Header fields allowed per request. Default `100`.
    pub max_headers: Option<S<usize>>,
    /// Time allowed to send the request headers, and the longest an idle HTTP/1.1 keep-alive
    /// connection waits for its next request. Default `10s`.
    pub header_read_timeout: Option<S<String>>,
    /// A connection with no request in flight for this long is closed. Default `60s`.
    pub idle_timeout: Option<S<String>>,
    /// Concurrent HTTP/2 streams per connection. Default `100`.
    pub max_concurrent_streams: Option<S<u32>>,
    /// Open client connections; further connections wait in the accept queue. Default `4096`.
    pub max_connections: Option<S<usize>>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish. Default `30s`.
    pub drain_timeout: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` (default) or `json`.
    pub format: Option<S<String>>,
    /// A level (`info`) or a filter (`info,gatehouse=debug`); `RUST_LOG` wins. Default `info`.
    pub level: Option<S<String>>,
}

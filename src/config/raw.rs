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
    pub listen: Option<S<RawListen>>,
    pub tls: Option<RawTls>,
    pub upstream: Option<RawUpstream>,
    pub limits: Option<RawLimits>,
    /// Peers (CIDRs) whose `X-Forwarded-*` and `Forwarded` headers are believed. Empty by
    /// default: every client copy is replaced.
    pub trusted_proxies: Option<Vec<S<String>>>,
    pub log: Option<RawLog>,
    /// Directory of policy files (`*.yaml`, taken in name order). Required: without a policy
    /// nothing would say who may pass. See `src/policy/raw.rs` for the format.
    pub policies: Option<S<String>>,
    /// Token issuers whose bearer JWTs are accepted.
    pub issuers: Option<Vec<RawIssuer>>,
    /// Names of the identity headers sent to the app.
    pub identity: Option<RawIdentity>,
    /// Bearer token handling shared by all issuers.
    pub tokens: Option<RawTokens>,
    /// Browser login with an OpenID provider (authorization code + PKCE). Needs `session`.
    pub login: Option<RawLogin>,
    /// The encrypted session cookie that browser login creates.
    pub session: Option<RawSession>,
}

/// A secret read from a file or an environment variable (exactly one of the two).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub file: Option<S<String>>,
    pub env: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    /// The OpenID provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    /// `http://` only on a loopback address.
    pub issuer: Option<S<String>>,
    pub client_id: Option<S<String>>,
    /// Absent for a public client (PKCE still protects the code).
    pub client_secret: Option<RawSecret>,
    /// This proxy's callback as registered at the provider, e.g.
    /// `https://app.example.com/oauth2/callback`.
    pub redirect_url: Option<S<String>>,
    /// Scopes to ask for; `openid` is always added. Default `[openid, profile, email]`.
    pub scopes: Option<Vec<S<String>>>,
    /// Extra authorization request parameters, e.g. `{prompt: login}`.
    pub params: Option<std::collections::BTreeMap<String, S<String>>>,
    /// Hosts that `rd=` may send the browser to after login or logout, besides this one.
    /// `app.example.com` exactly, `.example.com` any subdomain.
    pub allowed_redirect_hosts: Option<Vec<S<String>>>,
    /// Claim paths in the ID token (same keys as an issuer's `claims`).
    pub claims: Option<RawClaimPaths>,
    /// Where the built-in endpoints live. Default `/oauth2`.
    pub prefix: Option<S<String>>,
    /// Sent to the provider's logout endpoint as `post_logout_redirect_uri` (must be
    /// registered there). Default: none, the provider shows its own page.
    pub post_logout_redirect_url: Option<S<String>>,
    /// Accepted ID token algorithms (default as for issuers).
    pub algorithms: Option<Vec<S<String>>>,
    /// Clock skew for the ID token. Default `30s`.
    pub leeway: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// Keys for the cookie (each at least 32 characters): the first encrypts, all decrypt,
    /// so add the new secret first to rotate without signing anyone out.
    pub secrets: Option<Vec<RawSecret>>,
    /// Default `__Host-gatehouse` (the `__Host-` prefix pins it to this host, path `/`, HTTPS).
    pub cookie_name: Option<S<String>>,
    /// The longest a session lasts, refreshes included. Default `12h`.
    pub lifetime: Option<S<String>>,
    /// Time allowed to finish a login at the provider. Default `10m`.
    pub flow_timeout: Option<S<String>>,
    /// Keep the refresh token (in the cookie) to renew sessions whose tokens expire. Default
    /// true; without it a session ends when its ID token expires.
    pub refresh: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// The exact `iss` value, e.g. `https://idp.example.com/realms/main`. `http://` only on a
    /// loopback address.
    pub issuer: Option<S<String>>,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Option<Vec<S<String>>>,
    /// Where the signing keys are. Default: OIDC discovery at
    /// `<issuer>/.well-known/openid-configuration`.
    pub jwks_uri: Option<S<String>>,
    /// A local JWKS file instead of fetching (re-read when it changes).
    pub jwks_file: Option<S<String>>,
    /// Accepted signature algorithms. Default: RS256, RS384, RS512, PS256, PS384, PS512,
    /// ES256, ES384, EdDSA. HMAC and `none` are never accepted.
    pub algorithms: Option<Vec<S<String>>>,
    /// Claim paths, e.g. `roles: [realm_access.roles]`.
    pub claims: Option<RawClaimPaths>,
    /// Clock skew allowed for `exp`, `nbf` and `iat`. Default `30s`.
    pub leeway: Option<S<String>>,
    /// Forward the `Authorization` header of this issuer's tokens to the app. Default false.
    pub pass_authorization: Option<S<bool>>,
    /// How the key set is refreshed.
    pub jwks: Option<RawJwks>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaimPaths {
    /// The user id. Default `sub`.
    pub subject: Option<S<String>>,
    /// Role claims, e.g. `[realm_access.roles]`, `[groups]`, `[resource_access.app.roles]`.
    /// Default `[roles]`.
    pub roles: Option<Vec<S<String>>>,
    /// Scope claims: a space-separated string or an array. Default `[scope, scp]`.
    pub scopes: Option<Vec<S<String>>>,
    /// Default `email`.
    pub email: Option<S<String>>,
    /// What a role claim that is one string (some ADFS set-ups send `"admin"` rather than
    /// `["admin"]`) means: `reject` (default: 401, like any other wrong type), `split` (split
    /// on commas and whitespace, empty pieces dropped: `"admin dev"` is two roles) or
    /// `single` (the whole string is one role).
    pub roles_string: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwks {
    /// Shortest time a fetched key set is kept, whatever `Cache-Control` says. Default `1m`.
    pub min_ttl: Option<S<String>>,
    /// Longest time before a key set is refreshed. Default `15m`.
    pub max_ttl: Option<S<String>>,
    /// An unknown `kid` triggers at most one re-fetch per this interval. Default `10s`.
    pub unknown_kid_interval: Option<S<String>>,
    /// While the issuer is unreachable, keys older than their TTL keep being used for this
    /// long; after that its tokens get 503. Default `1h`.
    pub max_stale: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// Default `X-User-Id`.
    pub user_header: Option<S<String>>,
    /// The roles, as a list in `list_format`. Default `X-User-Roles`.
    pub roles_header: Option<S<String>>,
    /// Off unless set, e.g. `X-User-Email`.
    pub email_header: Option<S<String>>,
    /// Off unless set, e.g. `X-User-Scopes` (a list in `list_format`).
    pub scopes_header: Option<S<String>>,
    /// Also send oauth2-proxy's `X-Forwarded-User`, `-Email` and `-Groups`. Default false.
    /// `X-Forwarded-Groups` is always comma-joined, as oauth2-proxy sends it, so with these
    /// headers on a role holding a comma is refused even under `list_format: json`.
    pub oauth2_proxy_headers: Option<S<bool>>,
    /// How the roles and scopes headers hold a list. `csv` (default): roles comma-joined
    /// (`admin,dev`), scopes space-joined; a token (or session) with a role, scope or group
    /// that holds a comma, is empty or has leading or trailing whitespace, or a scope with
    /// whitespace inside, is refused with 401, since the app would split it differently.
    /// `json`: compact JSON arrays of strings (`["admin","dev"]`), any item allowed.
    /// Under both, a subject, email or list item holding a control character is refused.
    pub list_format: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    /// Longest accepted bearer token. Default `8192`.
    pub max_bytes: Option<S<usize>>,
    /// Verified tokens remembered (until their `exp`) to skip signature checks. Default
    /// `10000`; `0` turns the cache off.
    pub cache_size: Option<S<u64>>,
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
    /// The lowest TLS version offered: `"1.2"` (default) or `"1.3"`. TLS 1.0 and 1.1 are
    /// never offered. Like oauth2-proxy's `--tls-min-version` and Envoy's
    /// `tls_minimum_protocol_version`.
    pub min_version: Option<S<String>>,
    /// The cipher suites offered, by their rustls names, in order of preference (the client's
    /// order still wins, as rustls does by default). Default: all of rustls' aws-lc-rs
    /// defaults that `min_version` allows. The names:
    /// TLS 1.3: `TLS13_AES_256_GCM_SHA384`, `TLS13_AES_128_GCM_SHA256`,
    /// `TLS13_CHACHA20_POLY1305_SHA256`; TLS 1.2: `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`,
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`, `TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256`,
    /// `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`,
    /// `TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256` (the `ECDSA`/`RSA` ones need a certificate
    /// key of that kind; a certificate whose key can serve none of the listed TLS 1.2 suites
    /// is refused at start). The list must hold a TLS 1.3 suite; with `min_version: "1.2"` it
    /// must hold a TLS 1.2 suite too (only TLS 1.3 suites means TLS 1.3 only: say so with
    /// `min_version: "1.3"`), and with `min_version: "1.3"` no TLS 1.2 suite (it would never
    /// be used). Names match ignoring case; unknown names and duplicates are errors.
    pub cipher_suites: Option<S<Vec<S<String>>>>,
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
    /// Protocols a client may switch to (`Upgrade`), spliced to the app after its `101`.
    /// Default `[websocket]`; `[]` forwards no upgrade. `h2c` can never be listed: a tunnel
    /// to the app's HTTP/2 would carry requests that no policy checks.
    pub upgrades: Option<Vec<S<String>>>,
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

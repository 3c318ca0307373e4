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
    /// One provider (a mapping), or several (a list of mappings, each with its `name`).
    pub login: Option<RawLogins>,
    /// The encrypted session cookie that browser login creates.
    pub session: Option<RawSession>,
    /// Serve the forward-auth endpoint (`/oauth2/auth`, for nginx `auth_request`, Traefik
    /// `forwardAuth`, Caddy `forward_auth`) in a config without `login` (bearer tokens and
    /// client certificates only). With `login` it is always at `<login.prefix>/auth`. Default
    /// false. It decides for the request described by `X-Forwarded-Method`/`-Uri`/`-Host`
    /// (or `X-Original-Method`/`-URI`), believed only from `trusted_proxies`.
    pub forward_auth: Option<S<bool>>,
    /// Compatibility with what other proxies' deployments expect.
    pub compat: Option<RawCompat>,
    /// Traces: W3C trace context and OTLP export. Absent: no trace is read, made or sent.
    pub telemetry: Option<RawTelemetry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompat {
    /// Day-one compatibility with an oauth2-proxy deployment. Default false. Adds `/ping` and
    /// `/ready` on the public listener(s) (plain-text `OK`; `/ready` is 503 while `/readyz`
    /// would be; GET and HEAD only; those exact paths only, so no other path skips the
    /// policy), and turns on `identity.oauth2_proxy_headers` (`X-Forwarded-User`, `-Email`,
    /// `-Groups`, `-Preferred-Username` to the app). `/oauth2/auth` always answers with
    /// oauth2-proxy's `X-Auth-Request-*` names.
    pub oauth2_proxy: Option<S<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// Adopt the `traceparent`/`tracestate` of every client. Default false: only peers in
    /// `trusted_proxies` continue their trace; everyone else starts a new one.
    pub trust_client_trace: Option<S<bool>>,
    /// Export spans over OTLP. Without it no trace context is read or sent.
    pub otlp: Option<RawOtlp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    /// The collector's base URL, e.g. `http://127.0.0.1:4318`; spans go to `/v1/traces` under
    /// it (as with `OTEL_EXPORTER_OTLP_ENDPOINT`). Required.
    pub endpoint: Option<S<String>>,
    /// `http/protobuf`, the only protocol supported (and the default).
    pub protocol: Option<S<String>>,
    /// The share of new traces sampled, 0.0 to 1.0. Default `0.1`. A trace continued from a
    /// trusted peer keeps that peer's sampling decision.
    pub sample_ratio: Option<S<f64>>,
    /// Headers sent with every export, e.g. `{ authorization: { env: OTLP_AUTH } }`: a literal,
    /// or `{ env: NAME }` / `{ file: PATH }`. Read at start.
    pub headers: Option<std::collections::BTreeMap<String, S<RawText>>>,
    /// Bound on one export call. Default `10s`.
    pub timeout: Option<S<String>>,
}

/// A secret read from a file or an environment variable (exactly one of the two).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub file: Option<S<String>>,
    pub env: Option<S<String>>,
}

/// `login` as written: one provider, or a list of them.
#[derive(Debug)]
pub enum RawLogins {
    One(Box<RawLogin>),
    Several(Vec<RawLogin>),
}

impl RawLogins {
    /// The providers in order, and whether they were written as a list.
    pub fn into_list(self) -> (Vec<RawLogin>, bool) {
        match self {
            Self::One(login) => (vec![*login], false),
            Self::Several(list) => (list, true),
        }
    }
}

impl<'de> Deserialize<'de> for RawLogins {
    // By hand rather than `untagged`: buffering would lose the line of every value inside.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawLogins;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a login provider (a mapping) or a list of them, each with a `name`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawLogins, A::Error> {
                RawLogin::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|login| RawLogins::One(Box::new(login)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<RawLogins, A::Error> {
                Vec::<RawLogin>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(RawLogins::Several)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    /// The provider's name, in `/oauth2/start?provider=NAME`, a route's `providers: [NAME]`
    /// and the session (which remembers it). Required in a list; `default` for a single
    /// provider. 1 to 32 of `a-z 0-9 _ -`, starting with a letter or digit.
    pub name: Option<S<String>>,
    /// What the chooser page shows for it. Default: the name.
    pub title: Option<S<String>>,
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
    /// Hosts that `rd=` may send the browser to after login or logout (`https://` only),
    /// besides this origin. `app.example.com` exactly, `.example.com` any subdomain; either
    /// on port 443 only, unless it names its one port: `app.example.com:8443`. IP addresses
    /// as `10.0.0.1` or `[::1]:8443`. No scheme, path, user or trailing dot.
    pub allowed_redirect_hosts: Option<Vec<S<String>>>,
    /// Claim paths in the ID token (same keys as an issuer's `claims`).
    pub claims: Option<RawClaimPaths>,
    /// Where the built-in endpoints live. Default `/oauth2`.
    pub prefix: Option<S<String>>,
    /// Sent to the provider's logout endpoint as `post_logout_redirect_uri` (must be
    /// registered there). Default: none, the provider shows its own page. Gatehouse's own
    /// page for it is `<prefix>/signed_out`, e.g. `https://app.example.com/oauth2/signed_out`.
    pub post_logout_redirect_url: Option<S<String>>,
    /// Accepted ID token algorithms (default as for issuers).
    pub algorithms: Option<Vec<S<String>>>,
    /// Clock skew for the ID token. Default `30s`.
    pub leeway: Option<S<String>>,
    /// Send the session's access token to the app as `X-Forwarded-Access-Token` (the name
    /// oauth2-proxy uses). Default false. With the cookie store the token then lives in the
    /// cookie, which grows (chunked past one cookie).
    pub pass_access_token: Option<S<bool>>,
    /// Send the session's access token to the app as `Authorization: Bearer ...`, replacing
    /// whatever the client sent. Default false.
    pub set_authorization: Option<S<bool>>,
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
    /// Keep the refresh token (in the session) to renew sessions whose tokens expire. Default
    /// true; without it a session ends when its ID token expires.
    pub refresh: Option<S<bool>>,
    /// Where sessions live: `cookie` (default: sealed in the cookie itself, nothing to run) or
    /// `redis` (the cookie holds only a ticket; sign-out and back-channel logout end a session
    /// on every replica; needs `redis`).
    pub store: Option<S<String>>,
    /// The Redis server of `store: redis`.
    pub redis: Option<RawRedis>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://host:port[/db]` or `rediss://host:port[/db]` (TLS): a literal, or
    /// `{ env: NAME }` / `{ file: PATH }` when the URL itself carries credentials.
    pub url: Option<S<RawText>>,
    /// ACL user name (Redis 6+); optional.
    pub username: Option<S<RawText>>,
    /// `{ file: ... }` or `{ env: ... }`; optional. A file is re-read when it changes, and new
    /// connections use the new password.
    pub password: Option<RawSecret>,
    /// Prepended to every key. Default `gatehouse:`.
    pub key_prefix: Option<S<String>>,
    /// Bound on every Redis call (connecting included). Default `500ms`.
    pub timeout: Option<S<String>>,
    /// PEM file of the CA that signed the server's certificate, for `rediss://` with a private
    /// CA. Default: the system's trust store.
    pub ca_file: Option<S<String>>,
    /// Not supported yet: refused with an explanation rather than as an unknown key.
    pub sentinel: Option<S<serde::de::IgnoredAny>>,
    /// Not supported yet: refused with an explanation rather than as an unknown key.
    pub cluster: Option<S<serde::de::IgnoredAny>>,
}

/// A value written in the file, or read from a file or an environment variable. (Untagged:
/// the location is the enclosing `Spanned`'s, as inner spans do not survive buffering.)
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawText {
    Literal(String),
    Secret(RawSecretPlain),
}

/// [`RawSecret`] without locations, inside a [`RawText`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretPlain {
    pub file: Option<String>,
    pub env: Option<String>,
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
    /// Opaque access tokens of this issuer (RFC 7662). A bearer token that is not a JWT of a
    /// configured issuer is sent to the introspection endpoint of every issuer that has this
    /// section; `active: false` is 401, the endpoint down or slow is 503 (never 401).
    pub introspection: Option<S<RawIntrospection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntrospection {
    /// The introspection endpoint. Default: `introspection_endpoint` of the issuer's OIDC
    /// discovery document. `http://` only on a loopback address.
    pub url: Option<S<String>>,
    /// The client Gatehouse authenticates as at the endpoint. Required.
    pub client_id: Option<S<String>>,
    /// Its secret, `{ file: PATH }` or `{ env: NAME }`. Required; read again for every call,
    /// so a rotated file is picked up.
    pub client_secret: Option<RawSecret>,
    /// `client_secret_basic` (default: HTTP Basic) or `client_secret_post` (in the form).
    pub auth_method: Option<S<String>>,
    /// How long an active answer is reused, at most: never past the token's `exp`. Inactive
    /// answers are reused for 5 s (or `cache_ttl` if shorter). Default `1m`. A revoked token
    /// keeps working for up to this long.
    pub cache_ttl: Option<S<String>>,
    /// Time allowed for one introspection call (connect included); after it the request gets
    /// 503 with `Retry-After`. Default `5s`.
    pub timeout: Option<S<String>>,
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
    /// A signed identity assertion (a compact ES256 JWS) on every forwarded authenticated
    /// request, for apps that must not trust plain headers. Off unless set.
    pub assertion: Option<S<RawAssertion>>,
}

/// The signed identity assertion. Claims: `iss`, `aud`, `sub`, `roles`, `email` (when known),
/// `auth` (`bearer`, `session` or `mtls`), `iat` and `exp = iat + ttl`; the header's `kid`
/// names a key of the JWKS at `/.well-known/gatehouse/jwks.json` on the admin listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssertion {
    /// The request header that carries it. Default `X-Gatehouse-Assertion`. A client's copy
    /// (any spelling) is always removed.
    pub header: Option<S<String>>,
    /// The `aud` claim: the app's name. Required.
    pub audience: Option<S<String>>,
    /// The `iss` claim. Default `gatehouse`.
    pub issuer: Option<S<String>>,
    /// Lifetime of one assertion, whole seconds, at least `1s`. Default `60s`. An assertion
    /// is reused for the same identity for a quarter of this, so signing stays off the hot
    /// path.
    pub ttl: Option<S<String>>,
    /// PEM file with the ES256 (P-256) private key, PKCS#8 (`openssl genpkey -algorithm EC
    /// -pkeyopt ec_paramgen_curve:P-256`); it must not be readable by group or others (mode
    /// 0600). Re-read when it changes: the new key is published beside the old one for a full
    /// `ttl` before it signs, and the old one stays published for a `ttl` after. Default: a
    /// key generated at start and kept in memory only (apps re-fetch the JWKS after a restart).
    pub key_file: Option<S<String>>,
    /// Also serve the JWKS on the public listener(s), at the same path, without
    /// authentication. Default false (admin listener only).
    pub publish: Option<S<bool>>,
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
    /// Client certificates (mTLS): off unless set.
    pub client_auth: Option<S<RawClientAuth>>,
}

/// Client certificates, verified by rustls against `ca_file`. A route takes the certificate's
/// identity with `auth: mtls` (or `auth: any`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientAuth {
    /// PEM file of the CA certificate(s) client certificates must chain to. Required. Re-read
    /// when it changes (every `tls.reload_interval`, or on SIGHUP); a file that does not load
    /// keeps the previous CAs. Expired certificates, and those of other CAs, fail the
    /// handshake in both modes.
    pub ca_file: Option<S<String>>,
    /// `optional` (default): a client may connect without a certificate, and routes decide
    /// (`auth: mtls` routes answer 401 without one). `required`: the handshake is refused
    /// without a valid certificate.
    pub mode: Option<S<String>>,
    /// Which name of the certificate is the principal's subject: a list of `uri_san` (the
    /// first URI SAN, e.g. a SPIFFE id), `dns_san` (the first DNS SAN) and `cn` (the subject's
    /// common name), the first present wins. Default `[uri_san, dns_san, cn]`. A certificate
    /// with none of them is not an identity (401 on `auth: mtls` routes).
    pub subject: Option<Vec<S<String>>>,
    /// Roles for certificate subjects, by pattern on the subject: `*` matches within one label
    /// or path segment (no `.` or `/`), `**` matches anything, case is ignored. Every matching
    /// entry adds its roles, e.g. `- { subject: "spiffe://example.org/ns/billing/**", roles:
    /// [billing] }`. Default: no roles.
    pub roles: Option<Vec<RawCertRole>>,
    /// Send the verified certificate to the app in `X-Forwarded-Client-Cert`, in Envoy's
    /// format (`Hash=<sha256 of the DER>;URI=...;DNS=...`). Default false. A client's own
    /// copy of that header is removed whatever this says.
    pub forward_client_cert: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertRole {
    /// A pattern on the certificate's subject (see `roles`).
    pub subject: Option<S<String>>,
    /// The roles a matching certificate gets.
    pub roles: Option<Vec<S<String>>>,
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
    /// How Gatehouse speaks to the app: `http1` (default: HTTP/1.1, pooled keep-alive) or
    /// `h2c` (HTTP/2 with prior knowledge, over TCP or `unix:`; needed for gRPC). Under `h2c`
    /// requests go over pooled multiplexed connections, trailers and `te: trailers` pass both
    /// ways, and HTTP/1.1 clients are translated; upgrades (WebSockets) need `http1`.
    pub protocol: Option<S<String>>,
    /// Under `h2c`, the most streams (requests) Gatehouse opens at once on one connection to
    /// the app; a further request opens another connection. Default `100`.
    pub max_streams_per_connection: Option<S<u32>>,
    /// What `/readyz` also waits for: `none` (default) or `grpc`, the app's
    /// `grpc.health.v1.Health/Check` (service `""`) answering `SERVING`, checked every 5s.
    /// `grpc` needs `protocol: h2c`.
    pub health: Option<S<String>>,
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
    /// Which access decisions get an audit line (target `gatehouse::audit`): `all`,
    /// `denied` (default) or `off`. Identical denials from one peer are written once per
    /// 10 s, then counted in a "suppressed N" line.
    pub audit: Option<S<String>>,
}

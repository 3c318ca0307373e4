//! A policy file as written. Every key is documented here; `policy.rs` validates.
//!
//! ```yaml
//! version: 1
//! default: deny            # or allow: what happens when no route matches (default deny)
//! case_insensitive_paths: false   # true when the app treats /Admin as /admin
//! routes:                  # first match wins
//!   - name: admin          # unique across all files
//!     path: /admin/**      # or `paths: [..]`; `*` one segment, `**` any depth
//!     methods: [GET, POST] # default: any method
//!     host: app.example    # default: any host; `*.example.com` matches one label
//!     auth: bearer         # none | bearer | session | mtls | any (default any)
//!     on_unauthenticated: deny   # or redirect; default: redirect browsers, 401 for APIs
//!     require:
//!       roles:  { any_of: [admin], all_of: [] }
//!       scopes: { all_of: [orders:write] }
//!       claims:
//!         email_verified: { equals: true }
//!         tenant: { one_of: [acme, globex] }
//!         department: { present: true }
//!     pass_authorization: false   # forward the Authorization header (default: removed)
//!     providers: [corp]    # only sessions of these login providers (and their issuers' tokens)
//!     cors:                # CORS on this route (see `cors.rs`); absent: preflights get 403
//!       preflight: answer  # answer (Gatehouse answers from the lists) | pass (to the app)
//!       allowed_origins: [https://app.example.com, "https://*.example.com"]  # or ["*"]
//!       allowed_methods: [PUT, DELETE]     # beyond GET, HEAD, POST
//!       allowed_headers: [content-type, x-custom]
//!       allow_credentials: true            # not with "*"
//!       max_age: 600                       # seconds a browser may cache the answer
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyFile {
    /// Format version; must be `1`.
    pub version: Option<S<u32>>,
    /// `deny` (default) or `allow`: the answer when no route matches. At most one file may set
    /// it.
    pub default: Option<S<String>>,
    /// Match paths ignoring ASCII case (`/ADMIN` is `/admin`). Turn it on when the app behind
    /// treats paths case-insensitively (IIS, some Java and Windows stacks), or a differently
    /// spelled path would reach it past the rule meant for it. Default false; at most one file
    /// may set it.
    pub case_insensitive_paths: Option<S<bool>>,
    /// Ordered rules; across files, files are taken in name order.
    pub routes: Option<Vec<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// A unique name, used in logs, metrics and `policy explain`.
    pub name: Option<S<String>>,
    /// One path glob.
    pub path: Option<S<String>>,
    /// Several path globs (instead of `path`).
    pub paths: Option<Vec<S<String>>>,
    /// HTTP methods; absent means any.
    pub methods: Option<Vec<S<String>>>,
    /// Host (without port) the route applies to; absent means any.
    pub host: Option<S<String>>,
    /// `none`, `bearer`, `session`, `mtls` (a client certificate, see `tls.client_auth`) or
    /// `any` (a bearer token if sent, else a client certificate if the connection has one,
    /// else the session). Default `any`.
    pub auth: Option<S<String>>,
    /// What an unauthenticated caller gets: `redirect` (to the login), `deny` (401), or, when
    /// absent, a redirect for browser navigations and 401 for everything else.
    pub on_unauthenticated: Option<S<String>>,
    pub require: Option<RawRequire>,
    /// Forward the client's `Authorization` header to the app (removed by default).
    pub pass_authorization: Option<S<bool>>,
    /// CORS for this route. Without it a preflight on the route is refused (403).
    pub cors: Option<RawCors>,
    /// Only people signed in at these login providers (by `login[].name`), and bearer tokens
    /// of those providers' issuers. Others get 403; an unauthenticated browser goes straight
    /// to the provider's login when one is listed. Absent: any provider.
    pub providers: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// `answer` (default): Gatehouse answers preflights from the lists below; `pass`: they go
    /// to the app with no identity and its answer comes back unchanged.
    pub preflight: Option<S<String>>,
    /// Exact origins (`https://app.example.com:8443`), `https://*.example.com` (one or more
    /// labels before `example.com`, not `example.com` itself, same scheme and port), or `*`
    /// alone (answered as `*`; not with `allow_credentials`). Required for `answer`; for
    /// `pass`, the origins whose page may read Gatehouse's own 401 and 403.
    pub allowed_origins: Option<Vec<S<String>>>,
    /// Methods a preflight may ask for; GET, HEAD and POST need no listing.
    pub allowed_methods: Option<Vec<S<String>>>,
    /// Request headers a preflight may ask for (case is ignored).
    pub allowed_headers: Option<Vec<S<String>>>,
    /// Send `Access-Control-Allow-Credentials: true` (cookies, `Authorization`). Default false.
    pub allow_credentials: Option<S<bool>>,
    /// `Access-Control-Max-Age` in seconds; absent: not sent.
    pub max_age: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequire {
    pub roles: Option<RawSet>,
    pub scopes: Option<RawSet>,
    /// Claim path (`realm_access.roles`, `email_verified`) to matcher. A claim that is an
    /// array matches when any element matches.
    pub claims: Option<BTreeMap<String, RawClaim>>,
    /// The caller's email must be in one of these domains: `example.com` exactly,
    /// `*.example.com` any subdomain of it (not `example.com` itself), `*` any email at all.
    /// Case is ignored; a caller without an email is refused (403). oauth2-proxy's
    /// `email_domains`.
    pub email_domains: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSet {
    /// At least one of these.
    pub any_of: Option<Vec<S<String>>>,
    /// Every one of these.
    pub all_of: Option<Vec<S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaim {
    pub equals: Option<S<Value>>,
    pub one_of: Option<S<Vec<Value>>>,
    pub present: Option<S<bool>>,
}

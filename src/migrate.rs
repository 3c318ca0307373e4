//! `gatehouse migrate oauth2-proxy`: an oauth2-proxy configuration (TOML file, environment,
//! flags, in its precedence) translated to `gatehouse.yaml` and `policies/oauth2-proxy.yaml`,
//! with a report of every option that was set: mapped, not mapped (and why), or refused (the
//! translation would change who gets in, so nothing but the report is written).
//!
//! Pure: reads nothing but what it is given and writes nothing; `cli::migrate` reads the
//! inputs, writes the files and runs `check`. Literal secrets never reach the YAML: they
//! become `{ env: ... }` references, and the literals are handed back only so that `check`
//! can run with them in its environment.

mod map;
mod options;
mod policy;
mod report;
mod routes;
mod runtime;

pub use map::EnvSecret;
pub use options::{Options, parse_env_file};
pub use report::{Entry, Outcome, Report};

/// What oauth2-proxy was given.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The TOML config file: its name (for the report) and text.
    pub config: Option<(String, String)>,
    /// `OAUTH2_PROXY_*` variables (others are ignored), and where they came from.
    pub env: Option<(String, Vec<(String, String)>)>,
    /// Its command-line flags.
    pub flags: Vec<String>,
    /// The directory relative file paths were meant from (oauth2-proxy's working directory).
    pub cwd: Option<std::path::PathBuf>,
}

/// The translation.
#[derive(Debug)]
pub struct Migration {
    pub config: String,
    pub policy: String,
    pub report: Report,
    pub secrets: Vec<EnvSecret>,
}

/// Why nothing could be translated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MigrateError {
    /// Options oauth2-proxy would refuse too: unknown names, values of the wrong type.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// Reads the inputs in oauth2-proxy's precedence (flags over environment over file).
pub fn read(inputs: &Inputs) -> Result<Options, MigrateError> {
    let mut options = Options::default();
    if let Some((name, text)) = &inputs.config {
        options.read_toml(name, text);
    }
    if let Some((origin, vars)) = &inputs.env {
        options.read_env(vars, origin);
    }
    options.read_flags(&inputs.flags);
    match options.errors.is_empty() {
        true => Ok(options),
        false => Err(MigrateError::Invalid(options.errors)),
    }
}

/// Translates the options. A refusal is in the report ([`Report::is_refused`]).
pub fn translate(options: Options, cwd: Option<std::path::PathBuf>) -> Migration {
    let mut m = map::Mapper::new(options.set);
    m.cwd = cwd;
    let mut config = String::from(
        "# Written by `gatehouse migrate oauth2-proxy` (see MIGRATION.md).\nversion: 1\npolicies: policies\n",
    );
    m.runtime(&mut config);
    let roles = m.login(&mut config);
    m.session(&mut config);
    if let Some(roles) = &roles {
        m.issuers(&mut config, roles);
    }
    let policy = m.policy();
    for (name, setting) in std::mem::take(&mut m.left) {
        let (outcome, reason) = unmapped_reason(name);
        m.report.add(outcome, name, &setting.at, reason);
    }
    Migration {
        config,
        policy,
        report: m.report,
        secrets: m.secrets,
    }
}

/// What the report says about an option no mapping took. Refused: without it more people
/// (or requests) would get in than oauth2-proxy let in.
fn unmapped_reason(name: &str) -> (Outcome, &'static str) {
    use Outcome::{Refused, Unmapped};
    match name {
        "trusted_ips" => (
            Refused,
            "lets requests from these addresses in without signing in; Gatehouse never skips auth by address",
        ),
        "htpasswd_file" | "htpasswd_user_groups" => (
            Refused,
            "Basic-auth users from an htpasswd file are not supported",
        ),
        "ping_user_agent" | "gcp_healthchecks" => (
            Refused,
            "skips auth for a User-Agent; Gatehouse's probes are /ping and /ready (compat.oauth2_proxy) and the admin listener",
        ),
        "google_groups"
        | "google_admin_email"
        | "google_service_account_json"
        | "google_use_application_default_credentials"
        | "google_target_principal"
        | "google_admin_api_user_scope"
        | "google_use_organization_id" => (
            Refused,
            "Google group checks go through the Admin SDK, which Gatehouse does not call; without them more users would get in",
        ),
        "github_org"
        | "github_team"
        | "github_repo"
        | "github_token"
        | "github_users"
        | "gitlab_groups"
        | "gitlab_projects"
        | "bitbucket_team"
        | "bitbucket_repository"
        | "keycloak_group" => (
            Refused,
            "a membership check through the provider's API, which Gatehouse does not make; express it as groups in the ID token (`allowed_groups`)",
        ),
        "entra_id_allowed_tenants" | "insecure_oidc_skip_issuer_verification" => (
            Refused,
            "multi-tenant sign-in without one issuer is not supported",
        ),
        "entra_id_federated_token_auth" => (
            Refused,
            "workload-identity client authentication is not supported; use a client secret",
        ),
        "skip_oidc_discovery" => (
            Refused,
            "Gatehouse's login needs the provider's OIDC discovery document",
        ),
        "signature_key" => (
            Refused,
            "the GAP-Signature header is not sent; the app may rely on it (Gatehouse's signed identity assertion is the replacement: identity.assertion)",
        ),
        "jwt_key" | "jwt_key_file" | "pubjwk_url" => (
            Refused,
            "login.gov's private-key client authentication is not supported",
        ),
        "redeem_url" | "login_url" | "profile_url" | "validate_url" | "oidc_public_key_files" => (
            Unmapped,
            "Gatehouse takes the provider's endpoints and keys from OIDC discovery",
        ),
        "skip_auth_strip_headers" => (
            Unmapped,
            "Gatehouse always removes client copies of the identity headers",
        ),
        "set_xauthrequest" => (
            Unmapped,
            "/oauth2/auth always answers with X-Auth-Request-User/-Email/-Groups/-Preferred-Username",
        ),
        "pass_authorization_header" | "set_authorization_header" => (
            Unmapped,
            "the ID token is not sent; login.set_authorization sends the access token instead",
        ),
        "pass_basic_auth" | "set_basic_auth" | "basic_auth_password" => (
            Unmapped,
            "Gatehouse never sends Basic credentials; the identity is in X-Forwarded-User / X-User-Id",
        ),
        "pass_host_header" => (Unmapped, "Gatehouse always passes the client's Host"),
        "skip_provider_button" => (
            Unmapped,
            "Gatehouse has no sign-in button page: it goes to the provider directly",
        ),
        "insecure_oidc_skip_nonce" => (Unmapped, "Gatehouse always checks the nonce"),
        "code_challenge_method" => (Unmapped, "Gatehouse always uses PKCE with S256"),
        "approval_prompt" => (
            Unmapped,
            "not an OIDC parameter; use `prompt` (login.params)",
        ),
        "force_https" => (
            Unmapped,
            "serve HTTPS with tls_cert_file/tls_key_file; Gatehouse does not redirect plaintext requests",
        ),
        "ping_path" | "ready_path" => (
            Unmapped,
            "compat.oauth2_proxy serves /ping and /ready at those paths only",
        ),
        "real_client_ip_header" => (
            Unmapped,
            "Gatehouse reads X-Forwarded-For from trusted_proxies only",
        ),
        "provider_ca_files" | "use_system_trust_store" => (
            Unmapped,
            "Gatehouse uses the system trust store for the provider",
        ),
        "ssl_insecure_skip_verify"
        | "ssl_upstream_insecure_skip_verify"
        | "redis_insecure_skip_tls_verify" => (Unmapped, "certificate checks cannot be turned off"),
        "flush_interval" | "disable_keep_alives" => (
            Unmapped,
            "Gatehouse streams bodies as they come and pools connections itself",
        ),
        "oidc_audience_claims" => (Unmapped, "ID tokens are checked against `aud` (and `azp`)"),
        "allow_query_semicolons"
        | "encode_state"
        | "relative_redirect_url"
        | "force_json_errors"
        | "bearer_token_login_fallback"
        | "skip_claims_from_profile_url"
        | "cookie_csrf_per_request_limit"
        | "cookie_csrf_samesite"
        | "auth_request_response_mode"
        | "backend_logout_url"
        | "resource"
        | "errors_to_info_log"
        | "show_debug_on_error"
        | "request_id_header"
        | "metrics_secure_address"
        | "metrics_tls_cert_file"
        | "metrics_tls_key_file"
        | "redis_connection_idle_timeout" => (
            Unmapped,
            "no Gatehouse equivalent; the behaviour is Gatehouse's own",
        ),
        "banner"
        | "footer"
        | "custom_templates_dir"
        | "custom_sign_in_logo"
        | "display_htpasswd_form"
        | "provider_display_name" => (Unmapped, "Gatehouse shows no sign-in page of its own"),
        _ if name.contains("logging") || name.starts_with("silence_") => (
            Unmapped,
            "Gatehouse writes its own access log (log.format, log.level)",
        ),
        _ => (Unmapped, "no Gatehouse equivalent"),
    }
}

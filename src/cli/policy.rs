//! `gatehouse policy check` and `gatehouse policy explain`: offline tools for policy authors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Subcommand;
use http::Method;
use serde_json::Value;

use super::config_failure;
use crate::auth::cert::CertRules;
use crate::auth::{AuthMethod, ClaimMapping, Principal, unique};
use crate::config::{self, ConfigErrors, IdentitySettings, IntrospectionEndpoint, Overrides};
use crate::identity::IdentityRules;
use crate::path;
use crate::policy::{self, AuthMode, Decision, DefaultAction, Route};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy directory (exit 0 valid, 64 invalid); warnings name shadowed routes.
    Check {
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Show which route a request falls under and what would be decided, and why.
    Explain {
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long)]
        path: String,
        #[arg(long)]
        host: Option<String>,
        /// A bearer token. A JWT's claims are used, its signature NOT checked (explain works
        /// offline); for an opaque token, explain says where a request would introspect it.
        #[arg(long, conflicts_with_all = ["claims", "cert"])]
        token: Option<String>,
        /// A client certificate (PEM, leaf first) to use as the caller, its subject and roles
        /// taken as `tls.client_auth` says (with `--config`). Its chain is NOT checked.
        #[arg(long, conflicts_with = "claims")]
        cert: Option<PathBuf>,
        /// Claims as JSON, e.g. '{"sub":"alice","roles":["admin"]}'.
        #[arg(long)]
        claims: Option<String>,
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
        /// A config file, for its issuers' claim mappings.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Check { dir } => match policy::load_dir(&dir) {
            Ok(policy) => {
                for warning in &policy.warnings {
                    eprintln!("warning: {warning}");
                }
                println!(
                    "{}: ok ({} routes, default {:?})",
                    dir.display(),
                    policy.rules.len(),
                    policy.default
                );
                ExitCode::SUCCESS
            }
            Err(errors) => config_failure(&ConfigErrors(errors)),
        },
        PolicyCommand::Explain {
            method,
            path,
            host,
            token,
            cert,
            claims,
            dir,
            config,
        } => {
            let caller = match (&token, &cert, &claims) {
                (Some(token), _, _) => Caller::Token(token),
                (None, Some(cert), _) => Caller::Cert(cert),
                (None, None, Some(claims)) => Caller::Claims(claims),
                (None, None, None) => Caller::Anonymous,
            };
            match explain(
                &method,
                &path,
                host.as_deref(),
                caller,
                &dir,
                config.as_deref(),
            ) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("gatehouse: {message}");
                    ExitCode::from(super::EXIT_CONFIG)
                }
            }
        }
    }
}

/// Who `explain` pretends the caller is.
#[derive(Debug, Clone, Copy)]
enum Caller<'a> {
    Anonymous,
    Token(&'a str),
    Claims(&'a str),
    Cert(&'a Path),
}

fn explain(
    method: &str,
    raw_path: &str,
    host: Option<&str>,
    caller: Caller<'_>,
    dir: &Path,
    config_file: Option<&Path>,
) -> Result<String, String> {
    let policy = policy::load_dir(dir).map_err(|e| ConfigErrors(e).to_string())?;
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{method}` is not an HTTP method"))?;
    let (path_only, _) = raw_path.split_once('?').unwrap_or((raw_path, ""));
    let mut out = String::new();
    let canonical = match path::canonicalize(path_only) {
        Ok(canonical) => canonical,
        Err(e) => {
            out.push_str(&format!(
                "path      {raw_path}\ndecision  400 Bad Request: {e}\n"
            ));
            return Ok(out);
        }
    };
    out.push_str(&format!(
        "request   {method} {canonical}{}\n",
        host.map(|h| format!(" (host {h})")).unwrap_or_default()
    ));

    if let Caller::Cert(file) = caller {
        return explain_cert(&policy, &method, &canonical, host, file, config_file, out);
    }
    let (token, claims) = match caller {
        Caller::Token(token) => (Some(token), None),
        Caller::Claims(claims) => (None, Some(claims)),
        Caller::Anonymous | Caller::Cert(_) => (None, None),
    };
    let config = match config_file {
        Some(file) => Some(config::load(file, &Overrides::default()).map_err(|e| e.to_string())?),
        None => None,
    };
    // A token that is not a JWT of a configured issuer is introspected by a real request:
    // explain cannot know the answer, and says where it would ask.
    let opaque = token.is_some_and(|token| is_opaque(token, config.as_ref()));
    // A member name given twice makes claims unusable, as it makes a token malformed.
    let mut unusable = None;
    let claims: Option<Value> = match (token, claims) {
        (Some(_), _) if opaque => None,
        (Some(token), _) => Some(token_claims(token)?),
        (None, Some(json)) => match unique::from_slice(json.as_bytes()) {
            Ok(claims) => Some(claims),
            Err(e) if e.is_data() => {
                unusable = Some(e.to_string());
                None
            }
            Err(e) => return Err(format!("--claims: {e}")),
        },
        (None, None) => None,
    };
    // The issuer's claim mapping and the identity rules, as a real request would get them.
    let (mapping, rules) = match (&config, &claims) {
        (Some(config), Some(claims)) => {
            let iss = claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mapping = config
                .issuers
                .iter()
                .find(|i| i.issuer == iss)
                .map(|i| i.claims.clone())
                .unwrap_or_default();
            (mapping, IdentityRules::new(&config.identity))
        }
        _ => (
            ClaimMapping::default(),
            IdentityRules::new(&IdentitySettings::default()),
        ),
    };
    let principal = match &claims {
        Some(claims) => {
            let iss = claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or("(none)")
                .to_owned();
            let principal = mapping
                .principal(claims.clone(), &iss, AuthMethod::Bearer)
                .map_err(|e| e.to_string())
                .and_then(|p| rules.check(&p).map(|()| p).map_err(|e| e.to_string()));
            match principal {
                Ok(p) => {
                    let unchecked = if token.is_some() {
                        "  [signature not checked]"
                    } else {
                        ""
                    };
                    out.push_str(&caller_line(&p, unchecked));
                    Some(p)
                }
                Err(e) => {
                    out.push_str(&format!(
                        "caller    unusable claims: {e} (a real request gets 401)\n"
                    ));
                    None
                }
            }
        }
        None => {
            match unusable {
                Some(e) => out.push_str(&format!(
                    "caller    unusable claims: {e} (a real request gets 401)\n"
                )),
                None if opaque => out.push_str(&introspected_at(config.as_ref())),
                None => out.push_str("caller    anonymous\n"),
            }
            None
        }
    };

    // Claims stand for a token or a session; a client-certificate route takes neither.
    let principal = principal.filter(|_| {
        !matches!(
            policy.route(&method, &canonical, host),
            Route::Rule(rule) if rule.auth == AuthMode::Mtls
        )
    });
    decide(
        &policy,
        &method,
        &canonical,
        host,
        principal.as_ref(),
        opaque,
        out,
    )
}

/// What `policy explain` prints for a request that was made: the live policy, and the caller
/// as the request proved it (for the dev inspector).
pub(crate) fn explain_request(
    policy: &policy::Policy,
    method: &Method,
    canonical: &str,
    host: Option<&str>,
    principal: Option<&Principal>,
) -> String {
    let mut out = format!(
        "request   {method} {canonical}{}\n",
        host.map(|h| format!(" (host {h})")).unwrap_or_default()
    );
    match principal {
        Some(p) => out.push_str(&caller_line(p, &format!(" by {}", p.method.as_str()))),
        None => out.push_str("caller    anonymous\n"),
    }
    decide(policy, method, canonical, host, principal, false, out).unwrap_or_else(|e| e)
}

/// The `caller` line of an explanation: subject, roles and scopes, then `tail`.
fn caller_line(p: &Principal, tail: &str) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    format!(
        "caller    {} (roles: {}; scopes: {}){tail}\n",
        p.subject,
        list(&p.roles),
        list(&p.scopes)
    )
}

/// The route and the decision for `principal` (already filtered by what the route takes);
/// `opaque` when the caller's token would be introspected, so its answer decides.
fn decide(
    policy: &policy::Policy,
    method: &Method,
    canonical: &str,
    host: Option<&str>,
    principal: Option<&Principal>,
    opaque: bool,
    mut out: String,
) -> Result<String, String> {
    let rule = match policy.route(method, canonical, host) {
        Route::Default(action) => {
            let verdict = match action {
                DefaultAction::Deny => "403 Forbidden (no route allows this request)",
                DefaultAction::Allow => "allow, forwarded without authentication",
            };
            out.push_str(&format!(
                "route     none matches; default {action:?}\ndecision  {verdict}\n"
            ));
            return Ok(out);
        }
        Route::Rule(rule) => rule,
    };
    let auth = match rule.auth {
        AuthMode::None => "none",
        AuthMode::Bearer => "bearer",
        AuthMode::Session => "session",
        AuthMode::Mtls => "mtls",
        AuthMode::Any => "any",
    };
    out.push_str(&format!(
        "route     {} ({}:{}), auth {auth}\n",
        rule.name,
        rule.origin.file.display(),
        rule.origin.line
    ));
    let needs = match rule.auth {
        AuthMode::Mtls => "a client certificate",
        AuthMode::Session => "a browser session",
        AuthMode::Any => "a bearer token, a client certificate or a session",
        AuthMode::None | AuthMode::Bearer => "a bearer token",
    };
    let decision = match rule.authorize(principal) {
        Decision::Allow if rule.auth == AuthMode::None => {
            "allow (public route, no identity sent)".to_owned()
        }
        _ if opaque && rule.auth != AuthMode::Session => {
            "depends on the introspection answer: 401 if the token is not active, 503 if no \
             endpoint answers; otherwise as for its claims (try them with --claims)"
                .to_owned()
        }
        Decision::Allow => "allow, identity headers sent upstream".to_owned(),
        Decision::Unauthenticated => format!("401 Unauthorized: the route needs {needs}"),
        Decision::Forbidden(denial) => format!("403 Forbidden: needs {}", denial.needed),
    };
    out.push_str(&format!("decision  {decision}\n"));
    Ok(out)
}

/// Would a real request introspect `token`? When it is not a JWT at all, or (with a config)
/// a JWT whose `iss` is no configured issuer while some issuer has `introspection`.
fn is_opaque(token: &str, config: Option<&config::Config>) -> bool {
    let Ok(claims) = token_claims(token) else {
        return true;
    };
    let Some(config) = config else {
        return false;
    };
    let iss = claims.get("iss").and_then(Value::as_str);
    let known = config
        .issuers
        .iter()
        .any(|i| Some(i.issuer.as_str()) == iss);
    !known && config.issuers.iter().any(|i| i.introspection.is_some())
}

/// The `caller` line for an opaque token: where a real request would introspect it.
fn introspected_at(config: Option<&config::Config>) -> String {
    let Some(config) = config else {
        return "caller    opaque token (not a JWT): a real request would introspect it at the \
                issuers that have `introspection` (pass --config to see which), and get 401 \
                if none has\n"
            .to_owned();
    };
    let endpoints: Vec<String> = config
        .issuers
        .iter()
        .filter_map(|issuer| {
            let settings = issuer.introspection.as_ref()?;
            let at = match &settings.endpoint {
                IntrospectionEndpoint::Url(url) => url.clone(),
                IntrospectionEndpoint::Discovery => format!(
                    "the introspection_endpoint of {}/.well-known/openid-configuration",
                    issuer.issuer.trim_end_matches('/')
                ),
            };
            Some(format!("{at} (issuer {})", issuer.issuer))
        })
        .collect();
    if endpoints.is_empty() {
        return "caller    opaque token (not a JWT of a configured issuer): no issuer has \
                `introspection`, so a real request gets 401\n"
            .to_owned();
    }
    let mut line = "caller    opaque token: a real request would introspect it".to_owned();
    for (i, endpoint) in endpoints.iter().enumerate() {
        line.push_str(if i == 0 { " at " } else { "; and at " });
        line.push_str(endpoint);
    }
    line.push_str(" [not asked: explain works offline]\n");
    line
}

/// `explain --cert`: the certificate's identity as `tls.client_auth` would make it.
fn explain_cert(
    policy: &policy::Policy,
    method: &Method,
    canonical: &str,
    host: Option<&str>,
    file: &Path,
    config_file: Option<&Path>,
    mut out: String,
) -> Result<String, String> {
    let rules = match config_file {
        Some(file) => {
            let config = config::load(file, &Overrides::default()).map_err(|e| e.to_string())?;
            let client_auth = config.tls.and_then(|t| t.client_auth).ok_or_else(|| {
                format!(
                    "{} has no `tls.client_auth`: no route would take a client certificate",
                    file.display()
                )
            })?;
            client_auth.rules
        }
        None => CertRules::default(),
    };
    let leaf = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("--cert {}: {e}", file.display()))?
        .next()
        .ok_or_else(|| format!("--cert {}: no certificate in it", file.display()))?
        .map_err(|e| format!("--cert {}: {e}", file.display()))?;
    let principal = match rules.identify(&leaf) {
        Ok(cert) => {
            let p = cert.principal;
            let roles = if p.roles.is_empty() {
                "-".to_owned()
            } else {
                p.roles.join(", ")
            };
            out.push_str(&format!(
                "caller    {} (roles: {roles}) by client certificate  [chain not checked]\n",
                p.subject
            ));
            Some(p)
        }
        Err(e) => {
            out.push_str(&format!(
                "caller    unusable client certificate: {e} (a real request gets 401)\n"
            ));
            None
        }
    };
    // Only `mtls` and `any` routes take a certificate.
    let principal = principal.filter(|_| {
        matches!(
            policy.route(method, canonical, host),
            Route::Rule(rule) if matches!(rule.auth, AuthMode::Mtls | AuthMode::Any)
        )
    });
    decide(
        policy,
        method,
        canonical,
        host,
        principal.as_deref(),
        false,
        out,
    )
}

/// The payload of a JWT, decoded without any verification (a member name given twice is an
/// error, as it is for a real request).
fn token_claims(token: &str) -> Result<Value, String> {
    let payload = token.split('.').nth(1).ok_or("--token is not a JWT")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "--token payload is not base64url")?;
    unique::from_slice(&bytes).map_err(|e| format!("--token payload is not usable JSON: {e}"))
}

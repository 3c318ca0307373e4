//! `gatehouse policy check` and `gatehouse policy explain`: offline tools for policy authors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Subcommand;
use http::Method;
use serde_json::Value;

use super::config_failure;
use crate::auth::{AuthMethod, ClaimMapping, unique};
use crate::config::{self, ConfigErrors, IdentitySettings, Overrides};
use crate::identity::IdentityRules;
use crate::path;
use crate::policy::{self, AuthMode, Decision, DefaultAction, Route};

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
        /// A JWT whose claims to use. Its signature is NOT checked: explain works offline.
        #[arg(long, conflicts_with = "claims")]
        token: Option<String>,
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
            claims,
            dir,
            config,
        } => {
            match explain(
                &method,
                &path,
                host.as_deref(),
                token.as_deref(),
                claims.as_deref(),
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

fn explain(
    method: &str,
    raw_path: &str,
    host: Option<&str>,
    token: Option<&str>,
    claims: Option<&str>,
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

    // A member name given twice makes claims unusable, as it makes a token malformed.
    let mut unusable = None;
    let claims: Option<Value> = match (token, claims) {
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
    let (mapping, rules) = match (config_file, &claims) {
        (Some(file), Some(claims)) => {
            let config = config::load(file, &Overrides::default()).map_err(|e| e.to_string())?;
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
                    let list = |v: &[String]| {
                        if v.is_empty() {
                            "-".to_owned()
                        } else {
                            v.join(", ")
                        }
                    };
                    out.push_str(&format!(
                        "caller    {} (roles: {}; scopes: {}){}\n",
                        p.subject,
                        list(&p.roles),
                        list(&p.scopes),
                        if token.is_some() {
                            "  [signature not checked]"
                        } else {
                            ""
                        }
                    ));
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
                None => out.push_str("caller    anonymous\n"),
            }
            None
        }
    };

    let rule = match policy.route(&method, &canonical, host) {
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
        AuthMode::Any => "any",
    };
    out.push_str(&format!(
        "route     {} ({}:{}), auth {auth}\n",
        rule.name,
        rule.origin.file.display(),
        rule.origin.line
    ));
    let decision = match rule.authorize(principal.as_ref()) {
        Decision::Allow if rule.auth == AuthMode::None => {
            "allow (public route, no identity sent)".to_owned()
        }
        Decision::Allow => "allow, identity headers sent upstream".to_owned(),
        Decision::Unauthenticated => "401 Unauthorized: the route needs a bearer token".to_owned(),
        Decision::Forbidden(denial) => format!("403 Forbidden: needs {}", denial.needed),
    };
    out.push_str(&format!("decision  {decision}\n"));
    Ok(out)
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

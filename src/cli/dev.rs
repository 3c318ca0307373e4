//! `gatehouse dev` (serve your app over trusted HTTPS with a dev login) and
//! `gatehouse dev token` (bearer tokens from the development issuer).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{EXIT_CONFIG, config_failure, fail, serve};
use crate::config::DevUser;
use crate::config::parse_duration;
use crate::devissuer::{DevClaims, DevIssuer};
use crate::devmode::{self, DevError, DevOptions};
use crate::telemetry::{self, LogFormat};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DevArgs {
    #[command(subcommand)]
    command: Option<DevCommand>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Your app: `127.0.0.1:3000`, `http://127.0.0.1:3000` or `unix:/path`.
    #[arg(long, required = true)]
    upstream: Option<String>,
    /// HTTPS port.
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Another name for the certificate, e.g. `myapp.localhost` (repeatable).
    #[arg(long = "name")]
    names: Vec<String>,
    /// A plain-HTTP port that redirects to HTTPS.
    #[arg(long)]
    http_port: Option<u16>,
    /// Admin port (`/healthz`, `/readyz`, `/metrics`) on 127.0.0.1.
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
    /// Where the CA and keys live (default: a per-user directory; `--certs certs-dev` keeps
    /// them in the project).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// A user offered on the login page: `alice=admin,dev` (repeatable). Any user can also be
    /// typed there.
    #[arg(long = "user")]
    users: Vec<String>,
    /// Your policy directory (default: every route needs a signed-in user or a token).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// Listen on every interface, not just loopback. Anyone who can reach this machine can
    /// then sign in as anyone.
    #[arg(long)]
    bind_any: bool,
    /// Lifetime of the leaf certificate (renewed while running).
    #[arg(long, default_value = "24h", hide = true)]
    leaf_lifetime: String,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Print a bearer token that the demo and `gatehouse dev` accept.
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        sub: String,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Comma-separated scopes.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        #[arg(long)]
        email: Option<String>,
        /// Lifetime, e.g. `15m`, `1h`.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Where the issuer key lives (default: `./certs-dev` when the demo made one there,
        /// otherwise `gatehouse dev`'s per-user directory).
        #[arg(long)]
        certs: Option<PathBuf>,
    },
}

pub async fn run(args: DevArgs) -> ExitCode {
    match args.command {
        Some(DevCommand::Token {
            sub,
            roles,
            scopes,
            email,
            ttl,
            certs,
        }) => token(sub, roles, scopes, email, &ttl, certs),
        None => serve_dev(args.serve).await,
    }
}

fn token(
    sub: String,
    roles: Vec<String>,
    scopes: Vec<String>,
    email: Option<String>,
    ttl: &str,
    certs: Option<PathBuf>,
) -> ExitCode {
    let ttl = match parse_duration(ttl) {
        Ok(ttl) => ttl,
        Err(e) => {
            eprintln!("gatehouse: --ttl: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let dir = certs.unwrap_or_else(|| {
        let demo = Path::new("certs-dev");
        if demo.join("issuer-key.pem").exists() {
            demo.to_owned()
        } else {
            devmode::user_dir()
        }
    });
    let issuer = match DevIssuer::ensure(&dir) {
        Ok(issuer) => issuer,
        Err(e) => return fail(e),
    };
    let trim = |v: Vec<String>| {
        v.into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let claims = DevClaims {
        subject: sub,
        roles: trim(roles),
        scopes: trim(scopes),
        email,
        ttl,
    };
    match issuer.token(&claims) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn serve_dev(args: ServeArgs) -> ExitCode {
    telemetry::init_logging(LogFormat::Text, "info");
    let Some(upstream) = args.upstream else {
        return fail("--upstream is required");
    };
    let leaf_lifetime = match parse_duration(&args.leaf_lifetime) {
        Ok(d) => d,
        Err(e) => return fail(format!("--leaf-lifetime: {e}")),
    };
    let users = match args
        .users
        .iter()
        .map(|u| DevUser::parse(u))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(users) if users.is_empty() => vec![
            DevUser {
                name: "alice".into(),
                roles: vec!["admin".into()],
            },
            DevUser {
                name: "bob".into(),
                roles: Vec::new(),
            },
        ],
        Ok(users) => users,
        Err(e) => return fail(format!("--user: {e}")),
    };
    let options = DevOptions {
        upstream,
        port: args.port,
        names: args.names,
        http_port: args.http_port,
        admin_port: args.admin_port,
        dir: args.certs.unwrap_or_else(devmode::user_dir),
        bind_any: args.bind_any,
        users,
        policies: args.policies,
        leaf_lifetime: leaf_lifetime.max(Duration::from_secs(1)),
    };
    let prepared = match devmode::prepare(&options) {
        Ok(prepared) => prepared,
        Err(DevError::Config(errors)) => return config_failure(&errors),
        Err(e) => return fail(e),
    };
    if let Some(port) = options.http_port {
        let host = if options.bind_any {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        match tokio::net::TcpListener::bind((host, port)).await {
            Ok(listener) => {
                tokio::spawn(devmode::redirect_to_https(listener, options.port));
            }
            Err(e) => {
                return fail(format!(
                    "cannot listen on {host}:{port} for the HTTP redirect: {e}"
                ));
            }
        }
    }
    tokio::spawn(devmode::renew_leaf(options.clone()));
    let ca = prepared.certs.ca_cert.clone();
    let upstream = prepared.upstream.clone();
    let users: Vec<String> = options.users.iter().map(|u| u.name.clone()).collect();
    let bind_any = options.bind_any;
    let banner = move |running: &crate::server::Running| {
        let port = running.https_addr.map_or(0, |a| a.port());
        let exposure = if bind_any {
            "  !! listening on EVERY interface: anyone who can reach this machine can sign in as anyone\n"
        } else {
            ""
        };
        eprintln!(
            "\n  gatehouse dev: DEVELOPMENT MODE, NOT FOR PRODUCTION\n{exposure}\
\n  open     https://localhost:{port}/   ->  {upstream}\
\n  sign in  pick a user on the login page ({users}), or type one\
\n  inspect  https://localhost:{port}/.gatehouse/   (every decision, live)\
\n  tokens   gatehouse dev token --sub alice --roles admin\
\n  trust    gatehouse certs trust   (CA: {ca})\
\n  stop     Ctrl-C\n",
            users = users.join(", "),
            ca = ca.display(),
        );
    };
    serve(prepared.config, banner).await
}

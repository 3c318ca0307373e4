//! `gatehouse dev token`: tokens from the development issuer, for curl and tests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::fail;
use crate::config::parse_duration;
use crate::devissuer::{DevClaims, DevIssuer};

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Print a bearer token that the demo accepts.
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
        /// Where the issuer key lives (the demo's certificate directory).
        #[arg(long, default_value = "certs-dev")]
        certs: PathBuf,
    },
}

pub fn run(command: DevCommand) -> ExitCode {
    let DevCommand::Token {
        sub,
        roles,
        scopes,
        email,
        ttl,
        certs,
    } = command;
    let ttl = match parse_duration(&ttl) {
        Ok(ttl) => ttl,
        Err(e) => {
            eprintln!("gatehouse: --ttl: {e}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let issuer = match DevIssuer::ensure(&certs) {
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

//! `gatehouse migrate oauth2-proxy`: reads the inputs, writes `gatehouse.yaml`,
//! `policies/oauth2-proxy.yaml` and `MIGRATION.md` into `--out`, prints the report, then runs
//! `gatehouse check` on the result (a child process, with the literal secrets that became
//! `{ env: ... }` references in its environment only). Exit codes: 0 written and checked, 64
//! invalid or refused (only the report is written), 1 written but `check` failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::EXIT_CONFIG;
use crate::migrate::{self, Inputs, MigrateError};

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Translate an oauth2-proxy configuration (TOML file, `OAUTH2_PROXY_*` environment,
    /// flags after `--`, in oauth2-proxy's precedence: flags, then environment, then file).
    #[command(name = "oauth2-proxy")]
    Oauth2Proxy(Oauth2ProxyArgs),
}

#[derive(Debug, Args)]
pub struct Oauth2ProxyArgs {
    /// oauth2-proxy's TOML config file (its `--config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Read `OAUTH2_PROXY_*` variables: from this environment, or (`--env FILE`) from an env
    /// file of `NAME=value` lines.
    #[arg(long, num_args = 0..=1, require_equals = false)]
    env: Option<Option<PathBuf>>,
    /// Where to write `gatehouse.yaml`, `policies/` and `MIGRATION.md` (made if missing;
    /// an existing `gatehouse.yaml` there is not overwritten).
    #[arg(long)]
    out: PathBuf,
    /// oauth2-proxy's command-line flags, after `--`.
    #[arg(last = true)]
    flags: Vec<String>,
}

pub fn run(command: MigrateCommand) -> ExitCode {
    let MigrateCommand::Oauth2Proxy(args) = command;
    let fail = |message: String| {
        eprintln!("gatehouse migrate: {message}");
        ExitCode::from(EXIT_CONFIG)
    };
    let mut inputs = Inputs {
        flags: args.flags.clone(),
        cwd: std::env::current_dir().ok(),
        ..Inputs::default()
    };
    if let Some(path) = &args.config {
        match std::fs::read_to_string(path) {
            Ok(text) => inputs.config = Some((path.display().to_string(), text)),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        }
    }
    inputs.env = match &args.env {
        None => None,
        Some(None) => Some(("the environment".to_owned(), std::env::vars().collect())),
        Some(Some(file)) => match std::fs::read_to_string(file) {
            Ok(text) => Some((file.display().to_string(), migrate::parse_env_file(&text))),
            Err(e) => return fail(format!("{}: {e}", file.display())),
        },
    };
    if inputs.config.is_none() && inputs.env.is_none() && inputs.flags.is_empty() {
        return fail(
            "give oauth2-proxy's configuration: --config FILE, --env and/or -- FLAGS".into(),
        );
    }
    let config_file = args.out.join("gatehouse.yaml");
    if config_file.exists() {
        return fail(format!(
            "{} exists; choose another --out",
            config_file.display()
        ));
    }
    let options = match migrate::read(&inputs) {
        Ok(options) => options,
        Err(MigrateError::Invalid(errors)) => {
            for error in &errors {
                eprintln!("{error}");
            }
            return fail(format!(
                "{} invalid option(s); nothing written",
                errors.len()
            ));
        }
    };
    let migration = migrate::translate(options, inputs.cwd.clone());
    let report = migration.report.markdown();
    print!("{report}");
    let written = write(&args.out, "MIGRATION.md", &report).and_then(|()| {
        if migration.report.is_refused() {
            return Ok(());
        }
        write(&args.out, "gatehouse.yaml", &migration.config)?;
        write(
            &args.out.join("policies"),
            "oauth2-proxy.yaml",
            &migration.policy,
        )
    });
    if let Err(message) = written {
        return fail(message);
    }
    if migration.report.is_refused() {
        return fail(format!(
            "refused ({} option(s)); only {} was written",
            migration.report.refused().count(),
            args.out.join("MIGRATION.md").display()
        ));
    }
    check(&config_file, &migration.secrets)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `gatehouse check` on the new config, as its own process.
fn check(config: &Path, secrets: &[migrate::EnvSecret]) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("gatehouse migrate: cannot run check: {e}");
            return ExitCode::from(1);
        }
    };
    let mut command = std::process::Command::new(exe);
    command.arg("check").arg("--config").arg(config);
    for secret in secrets {
        if std::env::var_os(&secret.name).is_none() {
            command.env(&secret.name, &secret.value);
        }
    }
    match command.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!(
                "gatehouse migrate: written, but `gatehouse check --config {}` failed (above)",
                config.display()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("gatehouse migrate: cannot run check: {e}");
            ExitCode::from(1)
        }
    }
}

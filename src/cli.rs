//! The command line: `run`, `check`, `demo`, `certs dev`, `policy`, `dev` and `migrate`. Parses arguments, wires the
//! pieces together, and maps failures to exit codes (64 for bad configuration, as sysexits'
//! `EX_USAGE`; 1 for failures at run time).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, ConfigErrors, Overrides};
use crate::devissuer::DevIssuer;
use crate::server::{self, Running, StartError};
use crate::telemetry::{self, LogFormat};
use crate::tls::CertStore;
use crate::{demo, devcerts};

mod dev;
mod migrate;
pub(crate) mod policy;

/// Exit code for configuration errors.
pub const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Auth- and TLS-terminating reverse-proxy sidecar"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve with a config file until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Validate a config file and load its certificates, then exit (0 valid, 64 invalid).
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// HTTPS on 127.0.0.1:8443 with development certificates, in front of a built-in echo app.
    Demo(DemoArgs),
    /// Route policy tools; both work offline.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Local development: trusted HTTPS and a login page in front of your app (or `dev token`).
    Dev(dev::DevArgs),
    /// Translate another proxy's configuration into Gatehouse's (writes files, then checks).
    Migrate {
        #[command(subcommand)]
        command: migrate::MigrateCommand,
    },
    /// Certificate helpers.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The config file (YAML, `version: 1`).
    #[arg(long, short)]
    config: PathBuf,
    /// Replace `listen.https`.
    #[arg(long)]
    listen: Option<String>,
    /// Replace `listen.admin`.
    #[arg(long)]
    admin: Option<String>,
    /// Replace `upstream.url` (`http://127.0.0.1:3000` or `unix:/path`).
    #[arg(long)]
    upstream: Option<String>,
    /// Replace `log.format` (`text` or `json`).
    #[arg(long)]
    log_format: Option<String>,
    /// Replace `log.level`.
    #[arg(long)]
    log_level: Option<String>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Public HTTPS address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: String,
    /// Admin address (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: String,
    /// Directory for the development CA, certificate and token issuer key (made if missing).
    #[arg(long, default_value = "certs-dev")]
    certs: PathBuf,
    /// Policy directory; when it does not exist, the built-in sample policy is used.
    #[arg(long, default_value = "policies")]
    policies: PathBuf,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Write a local CA and a certificate for localhost, 127.0.0.1, ::1 and extra names.
    Dev {
        /// Output directory.
        #[arg(long, default_value = "certs-dev")]
        out: PathBuf,
        /// An extra name for the certificate (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// Trust the development CA: system store, Chromium/Firefox NSS databases (needs root for
    /// the system store). Never exports the CA key.
    Trust {
        /// The CA's directory (default: `gatehouse dev`'s per-user directory).
        #[arg(long)]
        certs: Option<PathBuf>,
    },
    /// Stop trusting the development CA everywhere `trust` put it.
    Untrust {
        #[arg(long)]
        certs: Option<PathBuf>,
    },
}

fn trust(certs: Option<PathBuf>, direction: crate::trust::Direction) -> ExitCode {
    let dir = certs.unwrap_or_else(crate::devmode::user_dir);
    match crate::trust::apply(&dir.join("ca.pem"), direction) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// How many threads the runtime gets: `TOKIO_WORKER_THREADS` when set (as tokio itself
/// reads it), else the CPUs this process may use (`available_parallelism` counts the CPU
/// affinity mask and a cgroup's CPU quota, so a pod limited to one CPU gets one).
fn worker_threads() -> usize {
    choose_workers(
        std::env::var("TOKIO_WORKER_THREADS").ok().as_deref(),
        std::thread::available_parallelism().ok().map(|n| n.get()),
    )
}

/// `worker_threads` without the environment: a positive `TOKIO_WORKER_THREADS` wins, then
/// the usable CPUs, then one.
fn choose_workers(setting: Option<&str>, cpus: Option<usize>) -> usize {
    setting
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or(cpus)
        .unwrap_or(1)
}

/// With one CPU, a current-thread runtime: the I/O driver, the timers and every task on the
/// one thread, so a request's wake-ups never cross threads (the work-stealing scheduler with
/// one worker still parks and unparks it from the main thread and pays for its queues'
/// atomics). With more, the work-stealing runtime with one worker per CPU.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    match worker_threads() {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gatehouse: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Check { config } => check(config),
            Command::Demo(args) => run_demo(args).await,
            Command::Certs {
                command: CertsCommand::Dev { out, names },
            } => certs_dev(out, &names),
            Command::Policy { command } => policy::run(command),
            Command::Dev(args) => dev::run(args).await,
            Command::Migrate { command } => migrate::run(command),
            Command::Certs {
                command: CertsCommand::Trust { certs },
            } => trust(certs, crate::trust::Direction::Trust),
            Command::Certs {
                command: CertsCommand::Untrust { certs },
            } => trust(certs, crate::trust::Direction::Untrust),
        }
    })
}

pub(crate) fn config_failure(errors: &ConfigErrors) -> ExitCode {
    eprintln!("{errors}");
    eprintln!(
        "gatehouse: configuration invalid ({} problem(s))",
        errors.0.len()
    );
    ExitCode::from(EXIT_CONFIG)
}

fn check(path: PathBuf) -> ExitCode {
    let config = match config::load(&path, &Overrides::default()) {
        Ok(config) => config,
        Err(errors) => return config_failure(&errors),
    };
    let mut errors = Vec::new();
    if let Some(tls) = &config.tls
        && let Err(e) = CertStore::load(tls)
    {
        errors.extend(e);
    }
    match crate::policy::load_for(&config) {
        Ok(policy) => {
            for warning in &policy.warnings {
                eprintln!("warning: {warning}");
            }
        }
        Err(e) => errors.extend(e),
    }
    if !errors.is_empty() {
        return config_failure(&ConfigErrors(errors));
    }
    println!("{}: ok", path.display());
    ExitCode::SUCCESS
}

async fn run(args: RunArgs) -> ExitCode {
    let overrides = Overrides {
        https: args.listen,
        admin: args.admin,
        upstream: args.upstream,
        log_format: args.log_format,
        log_level: args.log_level,
    };
    let config = match config::load(&args.config, &overrides) {
        Ok(config) => config,
        Err(errors) => return config_failure(&errors),
    };
    serve(config, |_| {}).await
}

/// Starts the server, hands it to `started`, waits for SIGTERM/SIGINT, drains, and exits.
pub(crate) async fn serve(config: Config, started: impl FnOnce(&Running)) -> ExitCode {
    telemetry::init_logging(config.log.format, &config.log.level);
    let running = match server::start(config).await {
        Ok(running) => running,
        Err(StartError::Config(errors)) => return config_failure(&errors),
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::FAILURE;
        }
    };
    started(&running);
    wait_for_signal(&running).await;
    running.shutdown();
    running.stopped().await;
    ExitCode::SUCCESS
}

/// Returns at SIGTERM or SIGINT; SIGHUP reloads certificates and policies in the meantime.
async fn wait_for_signal(running: &Running) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
            _ = hup.recv() => running.reload(),
        }
    }
}

async fn run_demo(args: DemoArgs) -> ExitCode {
    telemetry::init_logging(LogFormat::Text, "info");
    let paths = match devcerts::ensure(&args.certs, &[]) {
        Ok((paths, _)) => paths,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::FAILURE;
        }
    };
    let echo = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("gatehouse: cannot start the demo app: {e}");
            return ExitCode::FAILURE;
        }
    };
    let echo_addr = match echo.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(demo::echo(echo));
    let issuer = match DevIssuer::ensure(&args.certs) {
        Ok(issuer) => issuer,
        Err(e) => return fail(e),
    };
    let policies = match demo::policy_dir(&args.policies, &args.certs) {
        Ok(dir) => dir,
        Err(e) => return fail(e),
    };
    let secret = match crate::devmode::session_secret(&args.certs) {
        Ok(secret) => secret,
        Err(e) => return fail(e),
    };
    let config = match demo::config(
        &paths,
        &issuer,
        &secret,
        &policies,
        &args.listen,
        &args.admin,
        echo_addr,
    ) {
        Ok(config) => config,
        Err(errors) => return config_failure(&errors),
    };
    // Shown once bound, so that a port of 0 shows the port the OS chose.
    let banner = move |running: &Running| {
        let port = running.https_addr.map_or(0, |a| a.port());
        eprintln!(
            "\nGatehouse demo\n  open    https://localhost:{port}/  (trust {ca} first, see README)\n  sign in alice (admin, dev) or bob (dev) on the login page\n  inspect https://localhost:{port}/.gatehouse/  (every decision, live)\n  or      curl --cacert {ca} https://localhost:{port}/\n  token   gatehouse dev token --sub alice --roles admin  (then -H \"Authorization: Bearer $TOKEN\")\n  policy  {policies}\n  admin   http://{admin}/metrics\n  stop    Ctrl-C\n",
            ca = paths.ca_cert.display(),
            policies = policies.display(),
            admin = running.admin_addr,
        );
    };
    serve(config, banner).await
}

fn certs_dev(out: PathBuf, names: &[String]) -> ExitCode {
    match devcerts::ensure(&out, names) {
        Ok((paths, report)) => {
            let said = |done: bool| if done { "created" } else { "kept" };
            println!(
                "{} CA          {}",
                said(report.created_ca),
                paths.ca_cert.display()
            );
            println!(
                "{} certificate {}",
                said(report.issued_leaf),
                paths.cert.display()
            );
            println!(
                "private keys (mode 0600): {}, {}",
                paths.ca_key.display(),
                paths.key.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a run-time failure and returns exit code 1.
fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("gatehouse: {error}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::choose_workers;

    #[test]
    fn one_cpu_means_one_worker_and_the_setting_wins() {
        assert_eq!(choose_workers(None, Some(1)), 1);
        assert_eq!(choose_workers(None, Some(4)), 4);
        assert_eq!(choose_workers(Some("1"), Some(4)), 1);
        assert_eq!(choose_workers(Some(" 3 "), Some(1)), 3);
        // Unusable settings fall back to the CPUs, as tokio does not: it would panic.
        assert_eq!(choose_workers(Some("0"), Some(2)), 2);
        assert_eq!(choose_workers(Some("many"), Some(2)), 2);
        assert_eq!(choose_workers(None, None), 1);
    }
}

//! `gatehouse certs trust` / `untrust`: the development CA in (and out of) the places this
//! machine's clients look for roots: the system store (Debian/Ubuntu, Fedora/RHEL, macOS) and
//! the NSS databases Chromium and Firefox use on Linux. Only the CA *certificate* is ever
//! copied; its key stays where it is. Both directions are idempotent and say what they did.

use std::path::{Path, PathBuf};
use std::process::Command;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Debian and Ubuntu.
const DEBIAN_DIR: &str = "/usr/local/share/ca-certificates";
/// Fedora and RHEL.
const FEDORA_DIR: &str = "/etc/pki/ca-trust/source/anchors";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Trust,
    Untrust,
}

/// The CA to (un)trust, with the name it carries in every store.
struct Ca {
    pem: PathBuf,
    pem_bytes: Vec<u8>,
    /// Short SHA-256 of the certificate, so several dev CAs never collide.
    tag: String,
}

fn load(ca_pem: &Path) -> Result<Ca, String> {
    let pem_bytes = std::fs::read(ca_pem).map_err(|e| {
        format!(
            "{}: {e} (run `gatehouse certs dev` first)",
            ca_pem.display()
        )
    })?;
    let der = CertificateDer::from_pem_slice(&pem_bytes)
        .map_err(|e| format!("{}: not a PEM certificate: {e}", ca_pem.display()))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    let tag = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Ca {
        pem: ca_pem.to_owned(),
        pem_bytes,
        tag,
    })
}

/// Puts the CA in (or takes it out of) every store found; returns one line per store.
pub fn apply(ca_pem: &Path, direction: Direction) -> Result<Vec<String>, String> {
    let ca = load(ca_pem)?;
    let mut report = Vec::new();
    let mut touched_system = false;
    for (dir, tool, args) in [
        (DEBIAN_DIR, "update-ca-certificates", &["--fresh"][..]),
        (FEDORA_DIR, "update-ca-trust", &["extract"][..]),
    ] {
        if Path::new(dir).is_dir() && which(tool).is_some() {
            report.push(system_store(&ca, dir, tool, args, direction)?);
            touched_system = true;
        }
    }
    if cfg!(target_os = "macos") && which("security").is_some() {
        report.push(macos(&ca, direction)?);
        touched_system = true;
    }
    if !touched_system {
        report.push("system store: none found that Gatehouse knows how to update".into());
    }
    report.extend(nss(&ca, direction));
    if direction == Direction::Trust {
        report.push(format!(
            "Node.js:  export NODE_EXTRA_CA_CERTS={}",
            ca.pem.display()
        ));
        if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
            report.push("Python:   export REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt  (the system bundle, which now includes the CA)".into());
            report.push("OpenSSL:  export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".into());
        } else {
            report.push(format!("Python/OpenSSL: point REQUESTS_CA_BUNDLE or SSL_CERT_FILE at a bundle that includes {}", ca.pem.display()));
        }
    }
    Ok(report)
}

fn system_store(
    ca: &Ca,
    dir: &str,
    tool: &str,
    refresh_args: &[&str],
    direction: Direction,
) -> Result<String, String> {
    let file = Path::new(dir).join(format!("gatehouse-dev-{}.crt", ca.tag));
    let present = std::fs::read(&file).is_ok_and(|bytes| bytes == ca.pem_bytes);
    let changed = match direction {
        Direction::Trust if present => false,
        Direction::Trust => {
            std::fs::write(&file, &ca.pem_bytes).map_err(|e| root_hint(&file, e))?;
            run(tool, &[])?;
            true
        }
        Direction::Untrust if !file.exists() => false,
        Direction::Untrust => {
            std::fs::remove_file(&file).map_err(|e| root_hint(&file, e))?;
            run(tool, refresh_args)?;
            true
        }
    };
    Ok(describe(
        "system store",
        &file.display().to_string(),
        direction,
        changed,
    ))
}

fn macos(ca: &Ca, direction: Direction) -> Result<String, String> {
    let pem = ca.pem.display().to_string();
    let keychain = "/Library/Keychains/System.keychain";
    match direction {
        Direction::Trust => run(
            "security",
            &[
                "add-trusted-cert",
                "-d",
                "-r",
                "trustRoot",
                "-k",
                keychain,
                &pem,
            ],
        )?,
        Direction::Untrust => run("security", &["remove-trusted-cert", "-d", &pem])?,
    };
    Ok(describe("macOS keychain", keychain, direction, true))
}

/// The NSS databases of Chromium (`~/.pki/nssdb`) and Firefox profiles.
fn nss(ca: &Ca, direction: Direction) -> Vec<String> {
    let Some(certutil) = which("certutil") else {
        return vec!["Chromium/Firefox (NSS): certutil not found; install libnss3-tools (Debian) or nss-tools (Fedora) and run this again".into()];
    };
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return vec!["Chromium/Firefox (NSS): HOME is not set".into()];
    };
    let mut databases = vec![home.join(".pki/nssdb")];
    for profiles in [
        home.join(".mozilla/firefox"),
        home.join("snap/firefox/common/.mozilla/firefox"),
    ] {
        if let Ok(entries) = std::fs::read_dir(profiles) {
            databases.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.join("cert9.db").exists()),
            );
        }
    }
    let nickname = format!("Gatehouse Development CA {}", ca.tag);
    databases
        .into_iter()
        .map(|db| {
            let spec = format!("sql:{}", db.display());
            let outcome = (|| {
                if direction == Direction::Trust && !db.join("cert9.db").exists() {
                    // Chromium creates this database on first start; make it now so the CA is
                    // there when it does.
                    std::fs::create_dir_all(&db).map_err(|e| e.to_string())?;
                    run(&certutil, &["-N", "-d", &spec, "--empty-password"])?;
                }
                if !db.join("cert9.db").exists() {
                    return Ok(false);
                }
                let present = Command::new(&certutil)
                    .args(["-L", "-d", &spec, "-n", &nickname])
                    .output()
                    .is_ok_and(|o| o.status.success());
                match direction {
                    Direction::Trust if present => Ok(false),
                    Direction::Trust => run(
                        &certutil,
                        &[
                            "-A",
                            "-d",
                            &spec,
                            "-t",
                            "C,,",
                            "-n",
                            &nickname,
                            "-i",
                            &ca.pem.display().to_string(),
                        ],
                    )
                    .map(|()| true),
                    Direction::Untrust if !present => Ok(false),
                    Direction::Untrust => {
                        run(&certutil, &["-D", "-d", &spec, "-n", &nickname]).map(|()| true)
                    }
                }
            })();
            match outcome {
                Ok(changed) => describe(
                    "NSS database",
                    &db.display().to_string(),
                    direction,
                    changed,
                ),
                Err(e) => format!("NSS database {}: failed: {e}", db.display()),
            }
        })
        .collect()
}

fn describe(store: &str, place: &str, direction: Direction, changed: bool) -> String {
    let what = match (direction, changed) {
        (Direction::Trust, true) => "added",
        (Direction::Trust, false) => "already trusted",
        (Direction::Untrust, true) => "removed",
        (Direction::Untrust, false) => "was not there",
    };
    format!("{store}: {what} ({place})")
}

fn run(tool: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn which(tool: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .map(|p| p.display().to_string())
}

fn root_hint(path: &Path, e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "{}: permission denied; run this command with sudo",
            path.display()
        ),
        _ => format!("{}: {e}", path.display()),
    }
}

//! Local development certificates: a CA that lives on this machine and a leaf it signs for
//! `localhost`, `127.0.0.1`, `::1` and any extra names. Private keys are written with mode
//! 0600 and never leave the directory they are made in.
//!
//! An existing CA is reused (so a browser that trusts it keeps trusting new leaves); a leaf is
//! re-issued when it is missing, lacks a requested name, or expires within two weeks.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::tls::x509;

/// The names every development leaf covers.
pub const DEFAULT_NAMES: [&str; 4] = ["localhost", "*.localhost", "127.0.0.1", "::1"];

const CA_NAME: &str = "Gatehouse Development CA";
const CA_LIFETIME: Duration = Duration::days(3650);
/// The leaf lifetime of `certs dev` and the demo; dev mode uses a much shorter one.
pub const LEAF_LIFETIME: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Where the files live inside a development certificate directory.
#[derive(Debug, Clone)]
pub struct DevCertPaths {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl DevCertPaths {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            cert: dir.join("localhost.pem"),
            key: dir.join("localhost-key.pem"),
        }
    }
}

/// What [`ensure`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub created_ca: bool,
    pub issued_leaf: bool,
}

/// Makes sure `dir` holds a usable CA and a leaf covering the default names plus `extra`.
pub fn ensure(dir: &Path, extra: &[String]) -> Result<(DevCertPaths, Report), DevCertError> {
    ensure_with(dir, extra, LEAF_LIFETIME)
}

/// [`ensure`] with a leaf that lives `leaf_lifetime` and is re-issued once less than a third
/// of it is left (as Caddy does for its internal certificates).
pub fn ensure_with(
    dir: &Path,
    extra: &[String],
    leaf_lifetime: std::time::Duration,
) -> Result<(DevCertPaths, Report), DevCertError> {
    let leaf_lifetime = Duration::try_from(leaf_lifetime).unwrap_or(Duration::days(90));
    let renew_before: Duration = leaf_lifetime / 3;
    let paths = DevCertPaths::in_dir(dir);
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    let mut report = Report::default();
    let now = OffsetDateTime::now_utc();

    let existing_ca = match (paths.ca_cert.exists(), paths.ca_key.exists()) {
        (true, true) => {
            let pem = read(&paths.ca_key)?;
            let key = KeyPair::from_pem(&pem).map_err(|e| invalid(&paths.ca_key, e))?;
            let usable = read_info(&paths.ca_cert)?
                .is_some_and(|info| info.not_after > (now + leaf_lifetime).unix_timestamp());
            usable.then_some(key)
        }
        _ => None,
    };
    let ca_key = match existing_ca {
        Some(key) => key,
        None => {
            let key = KeyPair::generate()?;
            let mut params = ca_params();
            params.not_before = now - Duration::hours(1);
            params.not_after = now + CA_LIFETIME;
            let cert = params.self_signed(&key)?;
            write_file(&paths.ca_key, key.serialize_pem().as_bytes(), 0o600)?;
            write_file(&paths.ca_cert, cert.pem().as_bytes(), 0o644)?;
            report.created_ca = true;
            key
        }
    };

    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|n| n.to_string()).collect();
    for name in extra {
        let name = name.trim().to_ascii_lowercase();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    let leaf_ok = !report.created_ca
        && paths.key.exists()
        && read_info(&paths.cert)?.is_some_and(|info| {
            let covered = |n: &String| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => info.ip_addresses.contains(&ip),
                Err(_) => info.dns_names.contains(n),
            };
            names.iter().all(covered) && info.not_after > (now + renew_before).unix_timestamp()
        });
    if !leaf_ok {
        let issuer = Issuer::new(ca_params(), ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Gatehouse development certificate");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::hours(1);
        params.not_after = now + leaf_lifetime;
        let cert = params.signed_by(&key, &issuer)?;
        write_file(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&paths.cert, cert.pem().as_bytes(), 0o644)?;
        report.issued_leaf = true;
    }
    Ok((paths, report))
}

/// The CA's identity. Fixed, so that a leaf can be signed by a CA loaded from disk: the issuer
/// name and key identifier are derived from these parameters and the CA's key.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Gatehouse local development");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn read(path: &Path) -> Result<String, DevCertError> {
    std::fs::read_to_string(path).map_err(|source| io_error(path, source))
}

fn read_info(path: &Path) -> Result<Option<x509::CertInfo>, DevCertError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    if !path.exists() {
        return Ok(None);
    }
    let pem = read(path)?;
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .and_then(|der| x509::parse(&der)))
}

/// Writes atomically (temp file + rename) with the given mode from the first byte on.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), DevCertError> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> DevCertError {
    DevCertError::Io {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> DevCertError {
    DevCertError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_ca_and_leaf_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, report) = ensure(dir.path(), &["app.localhost".into()]).unwrap();
        assert_eq!(
            report,
            Report {
                created_ca: true,
                issued_leaf: true
            }
        );
        assert_eq!(mode(&paths.ca_key), 0o600);
        assert_eq!(mode(&paths.key), 0o600);
        let info = read_info(&paths.cert).unwrap().unwrap();
        assert_eq!(
            info.dns_names,
            ["localhost", "*.localhost", "app.localhost"]
        );
        assert_eq!(info.ip_addresses.len(), 2);
    }

    #[test]
    fn a_short_lived_leaf_is_reissued_once_two_thirds_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let hour = std::time::Duration::from_secs(3600);
        let (paths, first) = ensure_with(dir.path(), &[], hour).unwrap();
        assert!(first.issued_leaf);
        let not_after = read_info(&paths.cert).unwrap().unwrap().not_after;
        assert!(not_after <= OffsetDateTime::now_utc().unix_timestamp() + 3600);
        let (_, again) = ensure_with(dir.path(), &[], hour).unwrap();
        assert!(!again.issued_leaf, "plenty of lifetime left");
        // A leaf with less than a third of its lifetime left is renewed.
        let (_, renewed) = ensure_with(dir.path(), &[], 4 * hour).unwrap();
        assert!(renewed.issued_leaf && !renewed.created_ca);
    }

    #[test]
    fn reuses_the_ca_and_reissues_the_leaf_only_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, _) = ensure(dir.path(), &[]).unwrap();
        let ca_before = std::fs::read(&paths.ca_cert).unwrap();
        let (_, again) = ensure(dir.path(), &[]).unwrap();
        assert_eq!(again, Report::default());
        let (_, more) = ensure(dir.path(), &["extra.test".into()]).unwrap();
        assert_eq!(
            more,
            Report {
                created_ca: false,
                issued_leaf: true
            }
        );
        assert_eq!(std::fs::read(&paths.ca_cert).unwrap(), ca_before);
    }
}

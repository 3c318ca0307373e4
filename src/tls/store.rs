//! The certificate store: loads certificates, picks one per handshake by SNI, and swaps in a
//! new set whole when the files change.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::SupportedCipherSuite;
use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::x509;
use crate::config::{CertificateSource, ConfigError, KeySource, TlsSettings};
use crate::reload::{self, FileWatch};
use crate::telemetry;

/// One certificate, ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// Lowercased SNI names this certificate answers for (`*.` wildcards allowed).
    pub names: Vec<String>,
    /// `notAfter` of the leaf, Unix seconds.
    pub not_after: i64,
}

/// Loads one certificate chain and its key, checking that they belong together.
pub fn load_certificate(source: &CertificateSource) -> Result<LoadedCert, ConfigError> {
    let fail = |what: String| source.origin.error(what);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&source.cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| fail(format!("cannot read {}: {e}", source.cert_file.display())))?;
    let Some(leaf) = chain.first() else {
        return Err(fail(format!(
            "no certificate in {}",
            source.cert_file.display()
        )));
    };
    let info = x509::parse(leaf).ok_or_else(|| {
        fail(format!(
            "{} is not a valid X.509 certificate",
            source.cert_file.display()
        ))
    })?;
    let key = match &source.key {
        KeySource::File(path) => PrivateKeyDer::from_pem_file(path)
            .map_err(|e| fail(format!("cannot read key {}: {e}", path.display())))?,
        KeySource::Env(name) => {
            let pem = std::env::var(name)
                .map_err(|_| fail(format!("environment variable `{name}` is not set")))?;
            PrivateKeyDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| fail(format!("`{name}` does not hold a PEM private key: {e}")))?
        }
    };
    let key = CertifiedKey::from_der(chain, key, &aws_lc_rs::default_provider()).map_err(|e| {
        fail(format!(
            "certificate and key do not match or are unusable: {e}"
        ))
    })?;
    let names = if source.names.is_empty() {
        info.dns_names
    } else {
        source.names.clone()
    };
    Ok(LoadedCert {
        key: Arc::new(key),
        names,
        not_after: info.not_after,
    })
}

/// Checks that the certificate's key can sign for one of the TLS 1.2 suites offered, if any
/// are: `tls.cipher_suites` may list only `ECDSA` suites in front of an RSA key (or the other
/// way round), and every TLS 1.2 handshake would then fail. TLS 1.3 suites suit any key.
fn serves_tls12(
    cert: LoadedCert,
    source: &CertificateSource,
    suites: &[SupportedCipherSuite],
) -> Result<LoadedCert, ConfigError> {
    let algorithm = cert.key.key.algorithm();
    let mut tls12 = suites.iter().filter(|s| s.tls13().is_none()).peekable();
    if tls12.peek().is_none() || tls12.any(|s| s.usable_for_signature_algorithm(algorithm)) {
        return Ok(cert);
    }
    Err(source.origin.error(format!(
        "its {algorithm:?} key can serve none of the TLS 1.2 suites in `tls.cipher_suites`: \
         add a `TLS_ECDHE_{algorithm:?}_...` suite or set `min_version: \"1.3\"`"
    )))
}

/// An immutable set of certificates with its SNI index.
struct CertSet {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl CertSet {
    fn build(certs: &[LoadedCert]) -> Option<Self> {
        let default = certs.first()?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for cert in certs {
            for name in &cert.names {
                let map = match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_owned()),
                    None => exact.entry(name.clone()),
                };
                // The first certificate that claims a name keeps it.
                map.or_insert_with(|| cert.key.clone());
            }
        }
        Some(Self {
            default,
            exact,
            wildcard,
        })
    }

    fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(key) = self.exact.get(&name) {
            return key.clone();
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
            .clone()
    }
}

/// The live certificate set, swapped whole on reload.
pub struct CertStore {
    current: ArcSwap<CertSet>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads every configured certificate; all failures are reported together.
    pub fn load(settings: &TlsSettings) -> Result<Arc<Self>, Vec<ConfigError>> {
        let set = load_set(&settings.certificates, &settings.cipher_suites)?;
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(set),
        }))
    }

    /// Reloads the certificates whenever their files change. A failed reload keeps the set
    /// being served and logs why.
    pub fn watch(
        self: &Arc<Self>,
        settings: &TlsSettings,
        trigger: &reload::Trigger,
    ) -> tokio::task::JoinHandle<()> {
        let paths = settings
            .certificates
            .iter()
            .flat_map(|c| {
                let key = match &c.key {
                    KeySource::File(path) => Some(path.clone()),
                    KeySource::Env(_) => None,
                };
                std::iter::once(c.cert_file.clone()).chain(key)
            })
            .collect();
        let store = Arc::downgrade(self);
        let sources = settings.certificates.clone();
        let suites = settings.cipher_suites.clone();
        reload::spawn(
            FileWatch::new(paths),
            settings.reload_interval,
            trigger,
            move || {
                let Some(store) = store.upgrade() else { return };
                match load_set(&sources, &suites) {
                    Ok(set) => {
                        store.current.store(Arc::new(set));
                        telemetry::reloaded("certificates", true);
                        tracing::info!("certificates reloaded");
                    }
                    Err(errors) => {
                        telemetry::reloaded("certificates", false);
                        for error in errors {
                            tracing::warn!(%error, "certificate reload failed; still serving the previous certificates");
                        }
                    }
                }
            },
        )
    }
}

fn load_set(
    sources: &[CertificateSource],
    suites: &[SupportedCipherSuite],
) -> Result<CertSet, Vec<ConfigError>> {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        match load_certificate(source).and_then(|cert| serves_tls12(cert, source, suites)) {
            Ok(cert) => loaded.push(cert),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    telemetry::set_certificate_expiries(
        sources
            .iter()
            .zip(&loaded)
            .map(|(source, cert)| {
                let label = cert
                    .names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| source.cert_file.display().to_string());
                (label, cert.not_after)
            })
            .collect(),
    );
    CertSet::build(&loaded).ok_or_else(Vec::new)
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().pick(client_hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> LoadedCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        let private = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let key =
            CertifiedKey::from_der(vec![der], private, &aws_lc_rs::default_provider()).unwrap();
        LoadedCert {
            key: Arc::new(key),
            names: names.iter().map(|s| s.to_string()).collect(),
            not_after: 0,
        }
    }

    #[test]
    fn picks_exact_then_wildcard_then_default() {
        let a = cert(&["a.test"]);
        let b = cert(&["b.test", "*.b.test"]);
        let set = CertSet::build(&[a.clone(), b.clone()]).unwrap();
        let same = |x: Arc<CertifiedKey>, y: &LoadedCert| Arc::ptr_eq(&x, &y.key);
        assert!(same(set.pick(Some("a.test")), &a));
        assert!(same(set.pick(Some("B.TEST")), &b));
        assert!(same(set.pick(Some("x.b.test")), &b));
        assert!(
            same(set.pick(Some("x.y.b.test")), &a),
            "wildcards cover one label"
        );
        assert!(same(set.pick(Some("other.test")), &a));
        assert!(same(set.pick(None), &a));
    }
}

//! Client certificates for the mTLS tests: a client CA and leaves made with rcgen (valid,
//! expired, with DNS/URI SANs and a CN), TLS clients that present them, and a Gatehouse config
//! with `tls.client_auth`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use time::{Duration, OffsetDateTime};

use super::{BoxBody, Pki, collect, init, tls_connect};

/// A CA that issues client certificates.
pub struct ClientCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl ClientCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, &self.pem).unwrap();
    }

    /// A client certificate with these names, valid now unless `expired`.
    pub fn issue(
        &self,
        dns: &[&str],
        uris: &[&str],
        cn: Option<&str>,
        expired: bool,
    ) -> ClientCert {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into().unwrap()));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        if expired {
            params.not_before = now - Duration::days(10);
            params.not_after = now - Duration::days(1);
        } else {
            params.not_before = now - Duration::hours(1);
            params.not_after = now + Duration::days(1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A client certificate and its private key, PEM.
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ClientCert {
    /// Writes `client.pem` and `client.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (dir.join("client.pem"), dir.join("client.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// A TLS client trusting `server_ca` and presenting `cert` (or no certificate).
pub fn mtls_client_config(server_ca: &Path, cert: Option<&ClientCert>) -> Arc<ClientConfig> {
    init();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(server_ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let mut config = match cert {
        Some(cert) => {
            let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One HTTP/1.1 request over a fresh TLS connection presenting `cert`. `Err` when the
/// handshake or the request fails (in TLS 1.3 a refused client certificate shows as an error
/// on the first read, after the client's side of the handshake completed).
pub async fn mtls_request(
    addr: SocketAddr,
    server_ca: &Path,
    cert: Option<&ClientCert>,
    request: Request<BoxBody>,
) -> Result<Response<Bytes>, String> {
    let tls = tls_connect(addr, "localhost", mtls_client_config(server_ca, cert))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(collect(response).await)
}

/// A config like `config_text`, with `client_auth` (YAML lines, indented under it) in `tls`.
pub fn mtls_config_text(pki: &Pki, upstream: &str, client_auth: &str, extra: &str) -> String {
    format!(
        "version: 1
listen:
  https: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  reload_interval: 100ms
  certificates:
    - cert_file: {cert}
      key_file: {key}
  client_auth:
{client_auth}
upstream:
  url: {upstream}
policies: {policies}
{extra}",
        cert = pki.paths.cert.display(),
        key = pki.paths.key.display(),
        policies = pki.policies().display(),
    )
}

//! TLS termination over real sockets: protocol versions and ALPN, refusal of TLS 1.0/1.1,
//! certificate selection by SNI, certificate hot reload, and the handshake timeout.
// `allow-unwrap-in-tests` covers only `#[test]` functions; the helpers here unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ProtocolVersion;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const LIMIT: Duration = Duration::from_secs(10);

const HANDSHAKE_ERRORS: &str = "gatehouse_tls_handshake_failures_total{reason=\"error\"}";
const HANDSHAKE_TIMEOUTS: &str = "gatehouse_tls_handshake_failures_total{reason=\"timeout\"}";
const CERT_RELOAD_ERRORS: &str = "gatehouse_reloads_total{kind=\"certificates\",result=\"error\"}";

/// Sends `GET /` over an established TLS connection with the protocol ALPN chose.
async fn get_over(tls: TlsStream<TcpStream>) -> u16 {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let response = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = http::Request::get("https://localhost/")
            .body(empty())
            .unwrap();
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(get("/")).await.unwrap()
    };
    response.status().as_u16()
}

#[tokio::test]
async fn tls12_and_tls13_handshakes_negotiate_alpn() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let addr = gh.https_addr.unwrap();
    let versions = [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ];
    let offers: [(&[&[u8]], &[u8]); 3] = [
        (&[b"h2", b"http/1.1"], b"h2"),
        (&[b"http/1.1", b"h2"], b"h2"),
        (&[b"http/1.1"], b"http/1.1"),
    ];
    for (version, expected_version) in versions {
        for (offered, expected_alpn) in offers {
            let config = client_config_versions(&pki.paths.ca_cert, &[version], offered);
            let tls = tls_connect(addr, "localhost", config).await.unwrap();
            let session = tls.get_ref().1;
            assert_eq!(session.protocol_version(), Some(expected_version));
            assert_eq!(
                session.alpn_protocol(),
                Some(expected_alpn),
                "{expected_version:?} offering {offered:?}"
            );
            assert_eq!(get_over(tls).await, 200);
        }
    }
    assert_eq!(app.seen().len(), versions.len() * offers.len());
}

fn u16_be(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap().to_be_bytes()
}

/// A ClientHello record as a TLS 1.0-1.2 client without `supported_versions` sends it:
/// `client_version` is the highest version it speaks. The suites include TLS 1.2 AEAD suites
/// that the server does support, so that a refusal can only be about the version.
fn legacy_client_hello(client_version: u16) -> Vec<u8> {
    fn extension(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend(u16_be(data.len()));
        out.extend(data);
        out
    }
    let name = b"localhost";
    let mut server_name = u16_be(name.len() + 3).to_vec();
    server_name.push(0); // host_name
    server_name.extend(u16_be(name.len()));
    server_name.extend(name);
    let mut extensions = extension(0x0000, &server_name);
    // supported_groups: x25519, secp256r1, secp384r1
    extensions.extend(extension(
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    ));
    // ec_point_formats: uncompressed
    extensions.extend(extension(0x000b, &[1, 0]));
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    extensions.extend(extension(
        0x000d,
        &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01],
    ));

    let suites: [u16; 6] = [
        0xc009, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
        0xc013, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
        0x002f, // TLS_RSA_WITH_AES_128_CBC_SHA
        0x0035, // TLS_RSA_WITH_AES_256_CBC_SHA
        0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    ];
    let mut body = client_version.to_be_bytes().to_vec();
    body.extend([0x5a; 32]); // random
    body.push(0); // empty session id
    body.extend(u16_be(suites.len() * 2));
    for suite in suites {
        body.extend(suite.to_be_bytes());
    }
    body.extend([1, 0]); // compression methods: null
    body.extend(u16_be(extensions.len()));
    body.extend(extensions);

    let mut handshake = vec![0x01]; // client_hello
    handshake.extend(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(u16_be(handshake.len()));
    record.extend(handshake);
    record
}

/// The TLS records in `bytes` as (content type, payload); a trailing partial record is dropped.
fn records(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        let Some(payload) = bytes.get(5..5 + len) else {
            break;
        };
        out.push((bytes[0], payload.to_vec()));
        bytes = &bytes[5 + len..];
    }
    out
}

fn is_server_hello(record: &(u8, Vec<u8>)) -> bool {
    record.0 == 0x16 && record.1.first() == Some(&0x02)
}

#[tokio::test]
async fn tls10_and_tls11_client_hellos_are_refused() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let addr = gh.https_addr.unwrap();

    // Control: the same hand-made hello at TLS 1.2 gets a ServerHello, so the parsing below
    // does recognise one.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&legacy_client_hello(0x0303)).await.unwrap();
    let mut received = Vec::new();
    let first_record = async {
        use tokio::io::AsyncReadExt;
        while records(&received).is_empty() {
            let mut buf = [0u8; 4096];
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering a TLS 1.2 hello");
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(LIMIT, first_record).await.unwrap();
    assert!(is_server_hello(&records(&received)[0]), "{received:02x?}");
    drop(tcp);

    let failures_before = metric(gh.admin_addr, HANDSHAKE_ERRORS).await;
    for client_version in [0x0301, 0x0302] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&legacy_client_hello(client_version))
            .await
            .unwrap();
        let answer = read_until_closed(&mut tcp, LIMIT)
            .await
            .unwrap_or_else(|| panic!("{client_version:#06x}: the server kept the connection"));
        let answer = records(&answer);
        assert!(
            !answer.iter().any(is_server_hello),
            "{client_version:#06x}: got a ServerHello"
        );
        if let Some((content_type, payload)) = answer.first() {
            assert_eq!(*content_type, 0x15, "{client_version:#06x}: not an alert");
            // fatal protocol_version
            assert_eq!(payload, &[2, 70], "{client_version:#06x}");
        }
    }
    eventually("both refusals are counted", LIMIT, || async {
        metric(gh.admin_addr, HANDSHAKE_ERRORS).await >= failures_before + 2.0
    })
    .await;
    assert!(app.seen().is_empty());
}

fn certificate_entry(cert: &Path, key: &Path, names: &[&str]) -> String {
    format!(
        "    - cert_file: {}\n      key_file: {}\n      names: [{}]\n",
        cert.display(),
        key.display(),
        names.join(", ")
    )
}

#[tokio::test]
async fn sni_selects_the_configured_certificate() {
    let pki = pki();
    let (_a_dir, a) = sibling_leaf(&pki, &["a.test"]);
    let (_b_dir, b) = sibling_leaf(&pki, &["b.test"]);
    let app = ok_upstream().await;
    let text = format!(
        "version: 1
listen:
  https: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  certificates:
{default}{a}{b}upstream:
  url: {url}
policies: {policies}
",
        policies = pki.policies().display(),
        default = certificate_entry(&pki.paths.cert, &pki.paths.key, &["localhost"]),
        a = certificate_entry(&a.cert, &a.key, &["a.test"]),
        b = certificate_entry(&b.cert, &b.key, &["b.test"]),
        url = app.url(),
    );
    let gh = start(&text).await;
    let addr = gh.https_addr.unwrap();
    let default_der = first_cert_der(&pki.paths.cert);
    let a_der = first_cert_der(&a.cert);
    let b_der = first_cert_der(&b.cert);
    assert!(default_der != a_der && a_der != b_der && default_der != b_der);

    let any = accept_any_cert_config(&[b"http/1.1"]);
    let cases = [
        ("a.test", &a_der),
        ("b.test", &b_der),
        ("localhost", &default_der),
        ("other.test", &default_der),
        // rustls sends no SNI for an IP address.
        ("127.0.0.1", &default_der),
    ];
    for (name, expected) in cases {
        let tls = tls_connect(addr, name, any.clone()).await.unwrap();
        assert!(
            &peer_leaf(&tls) == expected,
            "SNI {name}: wrong certificate"
        );
    }

    let mut no_sni = (*any).clone();
    no_sni.enable_sni = false;
    let tls = tls_connect(addr, "a.test", no_sni.into()).await.unwrap();
    assert!(
        peer_leaf(&tls) == default_der,
        "no SNI: not the default certificate"
    );
}

#[tokio::test]
async fn certificates_reload_without_touching_open_connections() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    let addr = gh.https_addr.unwrap();
    let trusting = client_config(&pki.paths.ca_cert, &[b"http/1.1"]);
    let presented = || async {
        peer_leaf(
            &tls_connect(addr, "localhost", trusting.clone())
                .await
                .unwrap(),
        )
    };
    let x = first_cert_der(&pki.paths.cert);

    let kept = tls_connect(addr, "localhost", trusting.clone())
        .await
        .unwrap();
    assert!(peer_leaf(&kept) == x);
    let (mut kept, conn) = hyper::client::conn::http1::handshake(TokioIo::new(kept))
        .await
        .unwrap();
    tokio::spawn(conn);

    // Y is signed by the same CA, so the same clients trust both.
    let (_y_dir, y_paths) = sibling_leaf(&pki, &["y.test"]);
    let y = first_cert_der(&y_paths.cert);
    assert!(x != y);
    // Key first, then certificate. Until the certificate follows, the files hold a mismatched
    // pair: that reload fails and X stays.
    let errors_before = metric(gh.admin_addr, CERT_RELOAD_ERRORS).await;
    replace_file(&pki.paths.key, &std::fs::read(&y_paths.key).unwrap());
    eventually("the mismatched pair is rejected", LIMIT, || async {
        metric(gh.admin_addr, CERT_RELOAD_ERRORS).await > errors_before
    })
    .await;
    assert!(presented().await == x, "a mismatched pair replaced X");
    replace_file(&pki.paths.cert, &std::fs::read(&y_paths.cert).unwrap());
    eventually("new handshakes present Y", LIMIT, || async {
        presented().await == y
    })
    .await;

    let response = kept.send_request(get("/still-open")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.seen()[0].uri, "/still-open");

    let errors_before = metric(gh.admin_addr, CERT_RELOAD_ERRORS).await;
    replace_file(&pki.paths.cert, b"this is not a certificate\n");
    eventually("the broken certificate file is rejected", LIMIT, || async {
        metric(gh.admin_addr, CERT_RELOAD_ERRORS).await > errors_before
    })
    .await;
    assert!(presented().await == y, "a broken file replaced Y");
    let response = kept.send_request(get("/after-error")).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn stalled_handshake_is_closed_after_the_handshake_timeout() {
    let pki = pki();
    let app = ok_upstream().await;
    let text = config_text(&pki, &app.url(), "").replace(
        "  reload_interval: 100ms\n",
        "  reload_interval: 100ms\n  handshake_timeout: 300ms\n",
    );
    assert!(text.contains("handshake_timeout"));
    let gh = start(&text).await;
    let before = metric(gh.admin_addr, HANDSHAKE_TIMEOUTS).await;

    let mut tcp = TcpStream::connect(gh.https_addr.unwrap()).await.unwrap();
    let started = Instant::now();
    let received = read_until_closed(&mut tcp, LIMIT)
        .await
        .expect("the server kept a silent connection open");
    assert!(received.is_empty(), "{received:02x?}");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    eventually("the timeout is counted", LIMIT, || async {
        metric(gh.admin_addr, HANDSHAKE_TIMEOUTS).await > before
    })
    .await;

    // The listener still serves after a timed-out handshake.
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    assert_eq!(client.h1(get("/")).await.status(), 200);
}

/// The test config with `lines` added to its `tls` section.
fn with_tls_settings(pki: &Pki, upstream: &str, lines: &str) -> String {
    config_text(pki, upstream, "").replace("tls:\n", &format!("tls:\n{lines}"))
}

/// A client that offers only `suites` (and the protocol versions they belong to).
fn client_config_suites(
    ca: &Path,
    suites: &[rustls::SupportedCipherSuite],
) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: suites.to_vec(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> =
        suites.iter().map(|s| s.version()).collect();
    versions.dedup();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.into())
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    std::sync::Arc::new(config)
}

#[tokio::test]
async fn min_version_1_3_refuses_tls12_clients() {
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&with_tls_settings(
        &pki,
        &app.url(),
        "  min_version: \"1.3\"\n",
    ))
    .await;
    let addr = gh.https_addr.unwrap();
    let tls12 = client_config_versions(&pki.paths.ca_cert, &[&rustls::version::TLS12], &[]);
    assert!(tls_connect(addr, "localhost", tls12).await.is_err());
    let tls13 = client_config_versions(&pki.paths.ca_cert, &[&rustls::version::TLS13], &[]);
    let tls = tls_connect(addr, "localhost", tls13).await.unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    assert_eq!(get_over(tls).await, 200);
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn cipher_suites_limit_what_is_negotiated() {
    use rustls::crypto::aws_lc_rs::cipher_suite::*;
    let pki = pki();
    let app = ok_upstream().await;
    let gh = start(&with_tls_settings(
        &pki,
        &app.url(),
        "  cipher_suites: [TLS13_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
    ))
    .await;
    let addr = gh.https_addr.unwrap();
    let ca = &pki.paths.ca_cert;
    for other in [
        TLS13_AES_128_GCM_SHA256,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        let config = client_config_suites(ca, &[other]);
        assert!(
            tls_connect(addr, "localhost", config).await.is_err(),
            "{:?} was accepted",
            other.suite()
        );
    }
    for listed in [
        TLS13_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ] {
        let config = client_config_suites(ca, &[listed]);
        let tls = tls_connect(addr, "localhost", config).await.unwrap();
        let negotiated = tls.get_ref().1.negotiated_cipher_suite().unwrap();
        assert_eq!(negotiated.suite(), listed.suite());
        assert_eq!(get_over(tls).await, 200);
    }
    assert_eq!(app.seen().len(), 2);
}

#[tokio::test]
async fn tls12_suites_that_cannot_use_the_certificate_key_are_refused_at_start() {
    // The test certificate has an ECDSA key: RSA-only TLS 1.2 suites would fail every
    // TLS 1.2 handshake, so the start fails instead, naming the certificate.
    let pki = pki();
    let text = with_tls_settings(
        &pki,
        "http://127.0.0.1:1",
        "  cipher_suites: [TLS13_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n",
    );
    let config = gatehouse::config::parse(
        &text,
        Path::new("test.yaml"),
        &gatehouse::config::Overrides::default(),
    )
    .unwrap();
    let error = gatehouse::server::start(config).await.err().unwrap();
    let message = error.to_string();
    assert!(message.contains("tls.certificates[0]"), "{message}");
    assert!(message.contains("ECDSA key"), "{message}");
}

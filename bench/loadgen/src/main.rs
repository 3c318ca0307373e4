//! The load generator for what wrk and h2load cannot do: new TLS connections with and without
//! session resumption, thousands of idle keep-alive connections held open, and slowloris
//! connections that never finish their request. bench/run and drills/run build it (`cargo build
//! --release --locked -p gatehouse-loadgen`: a package of its own in the workspace, so building
//! it recompiles nothing of Gatehouse's) and run it on the load generator's core; the same
//! client measures every proxy, so the ratios are fair.
//!
//! ```text
//! loadgen handshakes ADDR --seconds S --concurrency C [--resume] [--header "Name: value"]
//! loadgen idle ADDR --connections N [--header "Name: value"] [--hold-seconds S]
//! loadgen slowloris ADDR --connections N [--hold-seconds S]
//! ```
//!
//! `handshakes`: C tasks, each in a loop: connect, TLS 1.3 handshake, one `GET /` with
//! `Connection: close`, read the whole response, drop the connection. With `--resume` the
//! each task keeps the server's session tickets (rustls' in-memory cache) and resumes; without
//! it every handshake is a full one. `idle`: opens N connections (64 handshakes at a time),
//! sends one keep-alive request on each, prints `LOADGEN {...}` once all are open, holds them
//! for `--hold-seconds`, then sends one more request on each to count how many survived.
//! `slowloris`: opens N connections the same way, sends a request line and one header on each
//! (never the blank line that ends the head), prints `LOADGEN {...}` once all are open, then
//! for `--hold-seconds` writes one more byte of a header on each every second, and counts how
//! many still took its byte in the last round.
//!
//! Each mode prints one line `LOADGEN <json>` per phase. The server's certificate is not checked
//! against a root (the bench certificate is self-signed), but the handshake signature is
//! verified as any client does, so the client's work per handshake is a real client's.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Accepts the server's certificate as it is, and checks its handshake signature.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Args {
    mode: String,
    addr: String,
    seconds: f64,
    concurrency: usize,
    connections: usize,
    hold_seconds: f64,
    resume: bool,
    header: Option<String>,
}

fn parse_args() -> Result<Args, Error> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("usage: loadgen handshakes|idle|slowloris ADDR [options]")?;
    let addr = it.next().ok_or("missing ADDR (host:port)")?;
    let mut args = Args {
        mode,
        addr,
        seconds: 10.0,
        concurrency: 16,
        connections: 1000,
        hold_seconds: 0.0,
        resume: false,
        header: None,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => args.seconds = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--connections" => args.connections = value()?.parse()?,
            "--hold-seconds" => args.hold_seconds = value()?.parse()?,
            "--header" => args.header = Some(value()?),
            "--resume" => args.resume = true,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if !matches!(args.mode.as_str(), "handshakes" | "idle" | "slowloris") {
        return Err(format!("unknown mode {}", args.mode).into());
    }
    Ok(args)
}

fn connector(resume: bool) -> Result<TlsConnector, Error> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A request head: `GET /` with the extra header, keep-alive or `Connection: close`.
fn request(header: Option<&str>, close: bool) -> Vec<u8> {
    let mut req = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
    if let Some(h) = header {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if close {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Reads one response (its head and a `Content-Length` body) and returns its status.
async fn read_response(tls: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) -> Result<u16, Error> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err("response head over 64 KiB".into());
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .ok_or("no status in the response")?
        .parse()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or("no content-length in the response")?;
    let mut have = buf.len() - head_end;
    while have < length {
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed inside the body".into());
        }
        have += n;
    }
    Ok(status)
}

async fn connect(
    connector: &TlsConnector,
    addr: &str,
) -> Result<(TlsStream<TcpStream>, bool), Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    Ok((tls, resumed))
}

#[derive(Default)]
struct Counts {
    connections: u64,
    ok: u64,
    errors: u64,
    resumed: u64,
}

async fn handshakes(args: &Args) -> Result<(), Error> {
    let req = Arc::new(request(args.header.as_deref(), true));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        // A session cache per task, as each browser has its own: a shared one runs out of
        // tickets when more connections are in flight than it keeps per server (each full or
        // resumed handshake brings two, each resumption takes one), and the rest fall back
        // to full handshakes.
        let connector = connector(args.resume)?;
        let (req, addr) = (req.clone(), args.addr.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let mut c = Counts::default();
            let mut buf = Vec::with_capacity(4096);
            while Instant::now() < deadline {
                c.connections += 1;
                let one = async {
                    let (mut tls, resumed) = connect(&connector, &addr).await?;
                    tls.write_all(&req).await?;
                    let status = read_response(&mut tls, &mut buf).await?;
                    Ok::<_, Error>((status, resumed))
                };
                match one.await {
                    Ok((status, resumed)) if (200..300).contains(&status) => {
                        c.ok += 1;
                        c.resumed += u64::from(resumed);
                    }
                    _ => c.errors += 1,
                }
            }
            c
        }));
    }
    let mut total = Counts::default();
    for task in tasks {
        let c = task.await?;
        total.connections += c.connections;
        total.ok += c.ok;
        total.errors += c.errors;
        total.resumed += c.resumed;
    }
    println!(
        "LOADGEN {{\"connections\":{},\"ok\":{},\"errors\":{},\"resumed\":{},\"seconds\":{:.3}}}",
        total.connections,
        total.ok,
        total.errors,
        total.resumed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Opens `n` connections, 64 handshakes in flight at a time (a burst of 10,000 at once would
/// only measure the listen backlog), each readied by `open_one`; returns the open ones and how
/// many failed.
async fn open_all<F, Fut>(n: usize, open_one: F) -> (Vec<TlsStream<TcpStream>>, u64)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<TlsStream<TcpStream>, Error>> + 'static,
{
    let mut open = Vec::with_capacity(n);
    let mut errors = 0u64;
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    while started < n || !pending.is_empty() {
        while started < n && pending.len() < 64 {
            pending.spawn_local(open_one());
            started += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(tls))) => open.push(tls),
            Some(_) => errors += 1,
            None => {}
        }
    }
    (open, errors)
}

fn print_opened(open: usize, errors: u64, started: Instant) {
    println!(
        "LOADGEN {{\"phase\":\"open\",\"opened\":{},\"errors\":{},\"seconds\":{:.3}}}",
        open,
        errors,
        started.elapsed().as_secs_f64()
    );
}

async fn idle(args: &Args) -> Result<(), Error> {
    let connector = connector(false)?;
    let req = Arc::new(request(args.header.as_deref(), false));
    let started = Instant::now();
    let (mut open, errors) = open_all(args.connections, || {
        let (connector, req, addr) = (connector.clone(), req.clone(), args.addr.clone());
        async move {
            let (mut tls, _) = connect(&connector, &addr).await?;
            tls.write_all(&req).await?;
            let mut buf = Vec::with_capacity(4096);
            match read_response(&mut tls, &mut buf).await? {
                200..=299 => Ok(tls),
                status => Err(format!("status {status}").into()),
            }
        }
    })
    .await;
    print_opened(open.len(), errors, started);
    tokio::time::sleep(Duration::from_secs_f64(args.hold_seconds)).await;
    // Which survived the hold: one more request on each.
    let mut alive = 0u64;
    let mut buf = Vec::with_capacity(4096);
    for tls in &mut open {
        let answered = async {
            tls.write_all(&req).await?;
            read_response(tls, &mut buf).await
        };
        if matches!(answered.await, Ok(200..=299)) {
            alive += 1;
        }
    }
    println!(
        "LOADGEN {{\"phase\":\"held\",\"alive\":{},\"of\":{}}}",
        alive,
        open.len()
    );
    Ok(())
}

async fn slowloris(args: &Args) -> Result<(), Error> {
    let connector = connector(false)?;
    let started = Instant::now();
    let (open, errors) = open_all(args.connections, || {
        let (connector, addr) = (connector.clone(), args.addr.clone());
        async move {
            let (mut tls, _) = connect(&connector, &addr).await?;
            tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
                .await?;
            tls.flush().await?;
            Ok(tls)
        }
    })
    .await;
    let of = open.len();
    print_opened(of, errors, started);
    // One byte of `x-a: b\r\n` a second on each, so the head grows forever and never ends;
    // a connection the server has closed drops out at its first failed write.
    let drip = b"x-a: b\r\n";
    let deadline = Instant::now() + Duration::from_secs_f64(args.hold_seconds);
    let mut open: Vec<_> = open.into_iter().map(Some).collect();
    let mut round = 0usize;
    let mut alive = of;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(deadline - Instant::now())).await;
        let byte = &drip[round % drip.len()..][..1];
        alive = 0;
        for slot in &mut open {
            if let Some(tls) = slot {
                if tls.write_all(byte).await.is_ok() && tls.flush().await.is_ok() {
                    alive += 1;
                } else {
                    *slot = None;
                }
            }
        }
        round += 1;
    }
    println!("LOADGEN {{\"phase\":\"held\",\"alive\":{alive},\"of\":{of},\"rounds\":{round}}}");
    Ok(())
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        match args.mode.as_str() {
            "handshakes" => handshakes(&args).await,
            "idle" => idle(&args).await,
            _ => slowloris(&args).await,
        }
    })
}

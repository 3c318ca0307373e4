//! Forward-auth through real proxies: Debian's nginx with `auth_request` and Debian's Caddy
//! with `forward_auth`, each started on a free port with a config in a temporary directory,
//! in front of the test app, asking Gatehouse's plaintext listener. The browser signs in at
//! Gatehouse directly; its session cookie then goes through the proxy, as it would on one
//! host. Through each: allowed, 403 by role, unauthenticated sent to the sign-in, a bearer
//! token; and a client's own `X-Forwarded-Uri` from an untrusted peer is ignored.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::*;

/// nginx reaches Gatehouse from this address (`proxy_bind`); only it is a trusted proxy, so
/// the test's own connections from 127.0.0.1 are untrusted.
const NGINX_SOURCE: &str = "127.0.0.2";

/// A proxy process started by a test; stopped (by its own pid) when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Runs `command` (configured in `dir`) until it accepts connections on `addr`.
    async fn run(mut command: Command, addr: SocketAddr, dir: tempfile::TempDir) -> Self {
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        command.stdout(Stdio::null()).stderr(log);
        let child = command
            .spawn()
            .expect("the proxy starts (scripts/test installs it)");
        let mut proxy = Self { child, addr, dir };
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("the proxy exited ({status}): {}", proxy.log());
            }
            assert!(tokio::time::Instant::now() < deadline, "{}", proxy.log());
            tokio::task::yield_now().await;
        }
        proxy
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// `GET path` through the proxy with `headers` (and `cookie`, when given).
    async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        cookie: Option<&str>,
    ) -> Response<Bytes> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut builder = http::Request::get(path).header("host", "localhost");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        let response = sender
            .send_request(builder.body(empty()).unwrap())
            .await
            .unwrap();
        collect(response).await
    }
}

/// A free port on 127.0.0.1 for a proxy to listen on.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// nginx in front of `app`, asking Gatehouse at `gatehouse` (as in the README).
async fn nginx(gatehouse: SocketAddr, app: &Upstream) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let d = dir.path().display();
    let conf = format!(
        "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen {addr};
    location /oauth2/ {{
      proxy_pass http://{gatehouse};
      proxy_bind {NGINX_SOURCE};
      proxy_set_header Host $host;
    }}
    location = /oauth2/auth {{
      internal;
      proxy_pass http://{gatehouse};
      proxy_bind {NGINX_SOURCE};
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header Content-Length \"\";
      proxy_pass_request_body off;
    }}
    location @sign_in {{
      return 302 /oauth2/start?rd=$request_uri;
    }}
    location / {{
      auth_request /oauth2/auth;
      error_page 401 = @sign_in;
      auth_request_set $user $upstream_http_x_auth_request_user;
      auth_request_set $roles $upstream_http_x_user_roles;
      auth_request_set $auth_cookie $upstream_http_set_cookie;
      add_header Set-Cookie $auth_cookie;
      proxy_set_header X-User $user;
      proxy_set_header X-User-Roles $roles;
      proxy_pass {app};
    }}
  }}
}}
",
        app = app.url(),
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut command = Command::new("nginx");
    command
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .args(["-g", "daemon off; master_process off;"]);
    Proxy::run(command, addr, dir).await
}

/// Caddy in front of `app`, asking Gatehouse at `gatehouse` (as in the README).
async fn caddy(gatehouse: SocketAddr, app: &Upstream) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let conf = format!(
        "{{
	admin off
	auto_https off
}}
http://localhost:{port} {{
	bind 127.0.0.1
	handle /oauth2/* {{
		reverse_proxy {gatehouse}
	}}
	handle {{
		forward_auth {gatehouse} {{
			uri /oauth2/auth
			copy_headers X-Auth-Request-User X-User-Roles
			@unauthenticated status 401
			handle_response @unauthenticated {{
				redir * /oauth2/start?rd={{uri}}
			}}
		}}
		reverse_proxy {app}
	}}
}}
",
        port = addr.port(),
        app = app.addr,
    );
    std::fs::write(dir.path().join("Caddyfile"), conf).unwrap();
    let mut command = Command::new("caddy");
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.path().join("Caddyfile"))
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path());
    Proxy::run(command, addr, dir).await
}

/// Gatehouse with a plaintext listener for the proxy, trusting `trusted` as a proxy.
async fn fixture(trusted: &'static str) -> Fixture {
    Fixture::with(Options {
        bearer_audience: Some("api"),
        plain_http: true,
        extra: trusted,
        ..Options::default()
    })
    .await
}

/// The session cookie of a browser signed in as `alice` (role `dev`), as a `Cookie` value.
async fn signed_in(fx: &Fixture) -> String {
    let mut browser = fx.browser();
    fx.login(&mut browser, "/app/x").await;
    browser.cookie_header().unwrap()
}

/// What both proxies must do; `user_header` is where the proxy puts the user for the app.
async fn behaves(fx: &Fixture, proxy: &Proxy, user_header: &str) {
    let cookie = signed_in(fx).await;
    let seen = fx.app.seen().len();

    // Signed in without the role: 403, and the app never sees it.
    let response = proxy.get("/admin/panel", &NAVIGATION, Some(&cookie)).await;
    assert_eq!(response.status(), 403, "{}", body_text(&response));
    // Allowed: the app answers, with the identity the proxy copied from the 202.
    let response = proxy.get("/app/page", &NAVIGATION, Some(&cookie)).await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    let at_app = fx.last_seen();
    assert_eq!(at_app.uri, "/app/page");
    assert_eq!(at_app.header(user_header), Some("alice"));
    assert_eq!(at_app.header("x-user-roles"), Some("dev"));

    // The path is judged in canonical form, as a direct request would be.
    let response = proxy
        .get("/app/%2e%2e/admin/panel", &NAVIGATION, Some(&cookie))
        .await;
    assert_ne!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(
        fx.app.seen().len(),
        seen + 1,
        "only /app/page reached the app"
    );

    // Not signed in: sent to the sign-in, which the proxy passes to Gatehouse.
    let response = proxy.get("/admin/panel", &NAVIGATION, None).await;
    assert_eq!(response.status(), 302, "{}", body_text(&response));
    // nginx makes the location absolute; Caddy leaves it as written.
    let to = location(&response).unwrap();
    let to = to
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_else(|| to.to_owned());
    assert!(
        to.starts_with("/oauth2/start?rd=") && to.contains("admin"),
        "{to}"
    );
    let response = proxy.get(&to, &NAVIGATION, None).await;
    assert_eq!(response.status(), 302, "{}", body_text(&response));
    assert!(
        location(&response)
            .unwrap()
            .contains(&fx.idp.addr.to_string()),
        "{:?}",
        location(&response)
    );

    // Public routes need nothing; a bearer token works through the proxy too.
    let response = proxy.get("/public/x", &FETCH, None).await;
    assert_eq!(response.status(), 200);
    let now = now();
    let token = fx.idp.sign(&serde_json::json!({
        "iss": fx.idp.issuer(), "aud": "api", "sub": "svc", "roles": ["ops"],
        "iat": now, "exp": now + 300,
    }));
    let bearer = format!("Bearer {token}");
    let response = proxy
        .get("/api/orders", &[("authorization", bearer.as_str())], None)
        .await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(fx.last_seen().header(user_header), Some("svc"));
}

#[tokio::test]
async fn nginx_auth_request_applies_the_policy_for_the_original_request() {
    let fx = fixture("trusted_proxies: [127.0.0.2/32]\n").await;
    let proxy = nginx(fx.gh.http_addr.unwrap(), &fx.app).await;
    behaves(&fx, &proxy, "x-user").await;
}

#[tokio::test]
async fn caddy_forward_auth_applies_the_policy_for_the_original_request() {
    let fx = fixture("trusted_proxies: [127.0.0.1/32]\n").await;
    let proxy = caddy(fx.gh.http_addr.unwrap(), &fx.app).await;
    behaves(&fx, &proxy, "x-auth-request-user").await;
}

#[tokio::test]
async fn a_client_sent_forwarded_uri_from_an_untrusted_peer_is_ignored() {
    let fx = fixture("trusted_proxies: [127.0.0.2/32]\n").await;
    let proxy = nginx(fx.gh.http_addr.unwrap(), &fx.app).await;
    let cookie = signed_in(&fx).await;
    let direct = |uri: &'static str, cookie: Option<String>| {
        let addr = fx.gh.http_addr.unwrap();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let mut builder = http::Request::get("/oauth2/auth")
                .header("host", "localhost")
                .header("x-forwarded-uri", uri)
                .header("x-original-uri", uri)
                .header("x-forwarded-method", "GET");
            if let Some(cookie) = cookie {
                builder = builder.header("cookie", cookie);
            }
            collect(
                sender
                    .send_request(builder.body(empty()).unwrap())
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    // Through nginx (trusted), `/public/x` is public.
    assert_eq!(proxy.get("/public/x", &FETCH, None).await.status(), 200);
    // From 127.0.0.1 (untrusted) the same claim is ignored: the answer is for `/oauth2/auth`
    // itself, which no route allows.
    let response = direct("/public/x", None).await;
    assert_eq!(response.status(), 403, "{}", body_text(&response));
    let response = direct("/app/x", Some(cookie.clone())).await;
    assert_eq!(response.status(), 403, "{}", body_text(&response));
    // A client's X-Forwarded-Uri sent through nginx is replaced by nginx's own.
    let response = proxy
        .get(
            "/admin/panel",
            &[("x-forwarded-uri", "/public/x")],
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), 403, "{}", body_text(&response));
}

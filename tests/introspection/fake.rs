//! A scripted introspection endpoint on `127.0.0.1:0`. It requires the client `gatehouse`
//! with [`SECRET`] (HTTP Basic or in the form), records every call, and answers by the token:
//!
//! | token starts with | answer |
//! |---|---|
//! | `garbage` | 200, not JSON |
//! | `stringly` | 200, `{"active": "true"}` |
//! | `http500` | 500 |
//! | `never` | nothing, ever |
//! | `held` | active, once [`Fake::release`] is called |
//! | `inactive` | `{"active": false}` |
//! | `otheraud` | active, for audience `billing-api` |
//! | `expired` | active, `exp` in the past |
//! | anything else | active: `alice`, roles `[admin]`, scope `orders:read`, for `orders-api` |

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use oauth2::url::form_urlencoded;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::common::{BoxBody, TestServer, full};

pub const SECRET: &str = "introspection-secret-for-tests";

/// One call as received.
#[derive(Debug, Clone)]
pub struct Call {
    pub authorization: Option<String>,
    pub form: HashMap<String, String>,
}

impl Call {
    pub fn token(&self) -> &str {
        self.form.get("token").map_or("", String::as_str)
    }
}

pub struct Fake {
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    held: watch::Sender<bool>,
    _server: TestServer,
}

impl Fake {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let held = watch::channel(true).0;
        let (record, release) = (calls.clone(), held.clone());
        let server = TestServer::start(listener, move |request: Request<Incoming>| {
            let (record, release) = (record.clone(), release.subscribe());
            async move { answer(request, &record, release).await }
        });
        Self {
            url: format!("http://{addr}/introspect"),
            calls,
            held,
            _server: server,
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls received for tokens starting with `prefix`.
    pub fn calls_for(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.token().starts_with(prefix))
            .count()
    }

    /// Lets the `held` tokens be answered.
    pub fn release(&self) {
        self.held.send_replace(false);
    }
}

async fn answer(
    request: Request<Incoming>,
    calls: &Mutex<Vec<Call>>,
    mut held: watch::Receiver<bool>,
) -> Response<BoxBody> {
    let authorization = request
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let call = Call {
        authorization: authorization.clone(),
        form: form.clone(),
    };
    calls.lock().unwrap().push(call);
    let basic = format!("Basic {}", STANDARD.encode(format!("gatehouse:{SECRET}")));
    let posted = form.get("client_id").map(String::as_str) == Some("gatehouse")
        && form.get("client_secret").map(String::as_str) == Some(SECRET);
    if authorization.as_deref() != Some(basic.as_str()) && !posted {
        return json(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let now = gatehouse::auth::jwt::system_clock();
    let mut active = json!({
        "active": true, "sub": "alice", "client_id": "web", "scope": "orders:read",
        "aud": ["orders-api"], "exp": now + 600, "token_type": "Bearer", "roles": ["admin"],
    });
    let kind = |prefix: &str| token.starts_with(prefix);
    if kind("garbage") {
        return text(StatusCode::OK, "<html>not json</html>");
    }
    if kind("stringly") {
        return json(StatusCode::OK, json!({"active": "true"}));
    }
    if kind("http500") {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "boom");
    }
    if kind("never") {
        std::future::pending::<()>().await;
    }
    if kind("held") {
        let _ = held.wait_for(|held| !*held).await;
    }
    if kind("inactive") {
        return json(StatusCode::OK, json!({"active": false}));
    }
    if kind("otheraud") {
        active["aud"] = json!("billing-api");
    }
    if kind("expired") {
        active["exp"] = json!(now - 600);
    }
    json(StatusCode::OK, active)
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<BoxBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

fn text(status: StatusCode, body: &'static str) -> Response<BoxBody> {
    Response::builder()
        .status(status)
        .header("content-type", "text/html")
        .body(full(body))
        .unwrap()
}

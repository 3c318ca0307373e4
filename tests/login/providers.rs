//! Several login providers in one Gatehouse (`login` as a list): the chooser, `?provider=`,
//! a session that remembers its provider (refresh and sign-out go there), a route's
//! `providers`, and the answer of one provider never redeemed at another (mix-up).

use super::*;

/// Two providers: `corp` signs in alice (role `dev`), `partners` signs in alice too (role
/// `partner`): the same `sub` at two issuers, who must never be taken for each other.
struct Two {
    pki: Pki,
    app: Upstream,
    corp: OidcIdp,
    partners: OidcIdp,
    gh: Running,
}

const TWO_POLICY: &str = "version: 1
routes:
  - name: corp-only
    path: /corp/**
    auth: session
    providers: [corp]
  - name: app
    path: /**
    auth: session
";

impl Two {
    async fn start() -> Self {
        Self::with_store("").await
    }

    /// With `store` (YAML lines under `session:`), e.g. a Redis store.
    async fn with_store(store: &str) -> Self {
        let pki = pki();
        std::fs::write(pki.policies().join("open.yaml"), TWO_POLICY).unwrap();
        let secret = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        std::fs::write(pki.dir.path().join("secret-a"), secret).unwrap();
        std::fs::write(pki.dir.path().join("client-secret"), CLIENT_SECRET).unwrap();
        let app = ok_upstream().await;
        let corp = OidcIdp::start(User::new("alice", &["dev"]), Some(CLIENT_SECRET)).await;
        let partners = OidcIdp::start(User::new("alice", &["partner"]), Some(CLIENT_SECRET)).await;
        let dir = pki.dir.path();
        let provider = |name: &str, title: &str, idp: &OidcIdp| {
            format!(
                "  - name: {name}\n    title: {title}\n    issuer: {}\n    client_id: {CLIENT_ID}\n    client_secret: {{ file: {} }}\n    redirect_url: {REDIRECT_URL}\n",
                idp.issuer(),
                dir.join("client-secret").display()
            )
        };
        let text = format!(
            "login:\n{}{}session:\n  secrets: [{{ file: {} }}]\n{store}",
            provider("corp", "Example Corp", &corp),
            provider("partners", "Partner login", &partners),
            dir.join("secret-a").display()
        );
        let gh = start(&config_text(&pki, &app.url(), &text)).await;
        wait_ready(&gh, WAIT).await;
        Self {
            pki,
            app,
            corp,
            partners,
            gh,
        }
    }

    /// A browser with an empty jar that follows redirects to `idp`.
    fn browser(&self, idp: &OidcIdp) -> Browser {
        let client = Client::new(self.gh.https_addr.unwrap(), &self.pki.paths.ca_cert);
        Browser::new(client, idp.addr)
    }

    fn client(&self) -> Client {
        Client::new(self.gh.https_addr.unwrap(), &self.pki.paths.ca_cert)
    }

    fn session(&self, browser: &Browser) -> SessionData {
        let path = self.pki.dir.path().join("secret-a");
        let sealer = Sealer::new(&[Secret::new(std::fs::read_to_string(path).unwrap())]).unwrap();
        sealer
            .open(SESSION, &session_value(browser).expect("a session cookie"))
            .expect("the session opens")
    }
}

#[tokio::test]
async fn start_without_a_provider_shows_the_chooser() {
    let two = Two::start().await;
    let mut browser = two.browser(&two.corp);
    let response = browser.navigate("/app/x").await;
    assert_eq!(response.status(), 302);
    let chooser = location(&response).unwrap();
    assert!(chooser.starts_with("/oauth2/start?rd="), "{chooser}");
    let page = browser.navigate(chooser).await;
    let body = body_text(&page);
    assert_eq!(page.status(), 200, "{body}");
    assert!(content_type(&page).starts_with("text/html"));
    assert!(body.contains("Sign in with Example Corp"), "{body}");
    assert!(body.contains("Sign in with Partner login"), "{body}");
    assert!(
        body.contains("/oauth2/start?provider=corp&amp;rd=%2Fapp%2Fx"),
        "{body}"
    );
    assert!(
        body.contains("/oauth2/start?provider=partners&amp;rd=%2Fapp%2Fx"),
        "{body}"
    );
    assert_eq!(flow_cookies(&browser), 0, "choosing starts no flow yet");
    assert!(two.corp.authorizations().is_empty() && two.partners.authorizations().is_empty());

    let unknown = browser.navigate("/oauth2/start?provider=evil&rd=/").await;
    assert_eq!(unknown.status(), 400, "{}", body_text(&unknown));
    assert_eq!(flow_cookies(&browser), 0);
    let repeated = browser
        .navigate("/oauth2/start?provider=corp&provider=partners&rd=/")
        .await;
    assert_eq!(repeated.status(), 400, "{}", body_text(&repeated));
}

#[tokio::test]
async fn a_session_remembers_its_provider_for_identity_refresh_and_sign_out() {
    let two = Two::start().await;
    two.partners.set_expires_in(Some(1));
    let mut browser = two.browser(&two.partners);
    let visit = browser
        .visit("/oauth2/start?provider=partners&rd=/app/home")
        .await;
    assert_eq!(visit.landed(), "/app/home", "{:?}", visit.urls);
    assert_eq!(visit.status(), 200, "{}", visit.body());
    assert_eq!(two.partners.code_exchanges(), 1);
    assert_eq!(two.corp.code_exchanges(), 0);
    assert!(two.corp.authorizations().is_empty());
    let data = two.session(&browser);
    assert_eq!(data.provider.as_deref(), Some("partners"));
    let seen = two.app.seen().last().cloned().unwrap();
    assert_eq!(seen.header("x-user-id"), Some("alice"));
    assert_eq!(seen.header("x-user-roles"), Some("partner"));
    let info = browser.fetch("/oauth2/userinfo").await;
    let info: Value = serde_json::from_slice(info.body()).unwrap();
    assert_eq!(info["issuer"], two.partners.issuer());

    // Its tokens expire: the refresh goes to partners, never to corp.
    wait_until(now() + 2).await;
    let response = browser.fetch("/app/later").await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert_eq!(two.partners.refreshes(), 1);
    assert_eq!(two.corp.refreshes(), 0);

    // Sign-out goes to partners' end-session endpoint.
    let out = browser.navigate("/oauth2/sign_out").await;
    assert_eq!(out.status(), 302);
    let target = location(&out).unwrap();
    assert!(
        target.contains(&two.partners.addr.to_string()),
        "{target} is not at partners"
    );
    assert!(!target.contains(&two.corp.addr.to_string()));
}

#[tokio::test]
async fn a_route_for_one_provider_refuses_the_other_and_logs_in_at_its_own() {
    let two = Two::start().await;
    let mut partner = two.browser(&two.partners);
    partner
        .visit("/oauth2/start?provider=partners&rd=/app/x")
        .await;
    assert_eq!(two.session(&partner).provider.as_deref(), Some("partners"));
    let seen = two.app.seen().len();
    let refused = partner.navigate("/corp/reports").await;
    let body = body_text(&refused);
    assert_eq!(refused.status(), 403, "{body}");
    assert!(body.contains("a sign-in with corp"), "{body}");
    let api = partner.fetch("/corp/reports").await;
    assert_eq!(api.status(), 403, "{}", body_text(&api));
    assert_eq!(two.app.seen().len(), seen, "nothing reached the app");

    // Without a session, the corp route goes straight to corp (no chooser).
    let mut fresh = two.browser(&two.corp);
    let first = fresh.navigate("/corp/reports").await;
    assert_eq!(first.status(), 302);
    assert_eq!(
        location(&first).unwrap(),
        "/oauth2/start?provider=corp&rd=%2Fcorp%2Freports"
    );
    let visit = fresh.visit("/corp/reports").await;
    assert_eq!(visit.landed(), "/corp/reports", "{:?}", visit.urls);
    assert_eq!(visit.status(), 200, "{}", visit.body());
    assert_eq!(two.session(&fresh).provider.as_deref(), Some("corp"));
    assert_eq!(
        two.app.seen().last().unwrap().header("x-user-roles"),
        Some("dev")
    );
}

#[tokio::test]
async fn an_answer_naming_another_issuer_is_never_redeemed() {
    let two = Two::start().await;
    let mut browser = two.browser(&two.partners);
    let callback = browser
        .until_callback("/oauth2/start?provider=partners&rd=/app/x")
        .await;
    // RFC 9207: an answer that says it comes from corp, for a login started at partners.
    let mut forged = callback.clone();
    forged
        .query_pairs_mut()
        .append_pair("iss", &two.corp.issuer());
    let response = browser.open(&forged).await;
    assert_eq!(response.status(), 400, "{}", body_text(&response));
    assert_eq!(
        two.partners.code_exchanges(),
        0,
        "the code was not redeemed"
    );
    assert_eq!(two.corp.code_exchanges(), 0);
    assert!(session_value(&browser).is_none());

    // The genuine answer, with partners' own `iss`, completes.
    let mut browser = two.browser(&two.partners);
    let mut callback = browser
        .until_callback("/oauth2/start?provider=partners&rd=/app/x")
        .await;
    callback
        .query_pairs_mut()
        .append_pair("iss", &two.partners.issuer());
    let response = browser.open(&callback).await;
    assert_eq!(response.status(), 302, "{}", body_text(&response));
    assert_eq!(two.partners.code_exchanges(), 1);
    assert_eq!(two.session(&browser).provider.as_deref(), Some("partners"));
}

/// A logout token signed by `signer`, naming `iss`, for alice's provider session
/// (`sid-of-alice` at both providers) and/or alice herself.
fn logout_token(signer: &OidcIdp, iss: &str, sid: bool) -> String {
    let now = now();
    let mut claims = serde_json::json!({
        "iss": iss, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "sub": "alice",
        "jti": uuid::Uuid::new_v4().to_string(),
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    if sid {
        claims["sid"] = "sid-of-alice".into();
    }
    signer.sign(&claims)
}

async fn post_logout(client: &Client, token: &str) -> u16 {
    let request = http::Request::post("https://localhost/oauth2/backchannel_logout")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(format!("logout_token={token}")))
        .unwrap();
    client.h1(request).await.status().as_u16()
}

#[tokio::test]
async fn one_providers_back_channel_logout_ends_only_its_own_sessions() {
    let redis = common::redis_server::RedisServer::start(Default::default());
    let two = Two::with_store(&format!(
        "  store: redis\n  redis: {{ url: {}, timeout: 300ms }}\n",
        redis.url()
    ))
    .await;
    // alice, with the same sub and sid at both providers, signed in at each.
    let mut at_corp = two.browser(&two.corp);
    at_corp.visit("/oauth2/start?provider=corp&rd=/app/x").await;
    let mut at_partners = two.browser(&two.partners);
    at_partners
        .visit("/oauth2/start?provider=partners&rd=/app/x")
        .await;
    assert_eq!(at_corp.fetch("/app/x").await.status(), 200);
    assert_eq!(at_partners.fetch("/app/x").await.status(), 200);
    let client = two.client();

    // Signed by corp but claiming to be partners: partners' keys refuse it.
    let forged = logout_token(&two.corp, &two.partners.issuer(), true);
    assert_eq!(post_logout(&client, &forged).await, 400);
    assert_eq!(at_partners.fetch("/app/x").await.status(), 200);

    // partners ends alice's partners session by sid: the corp one lives on.
    let by_sid = logout_token(&two.partners, &two.partners.issuer(), true);
    assert_eq!(post_logout(&client, &by_sid).await, 200);
    assert_eq!(at_partners.fetch("/app/x").await.status(), 401);
    assert_eq!(at_corp.fetch("/app/x").await.status(), 200);

    // And by sub, after signing in again at partners: still only partners' sessions.
    let mut again = two.browser(&two.partners);
    again
        .visit("/oauth2/start?provider=partners&rd=/app/x")
        .await;
    assert_eq!(again.fetch("/app/x").await.status(), 200);
    let by_sub = logout_token(&two.partners, &two.partners.issuer(), false);
    assert_eq!(post_logout(&client, &by_sub).await, 200);
    assert_eq!(again.fetch("/app/x").await.status(), 401);
    assert_eq!(at_corp.fetch("/app/x").await.status(), 200);

    // corp's own logout ends the corp session.
    let corp = logout_token(&two.corp, &two.corp.issuer(), false);
    assert_eq!(post_logout(&client, &corp).await, 200);
    assert_eq!(at_corp.fetch("/app/x").await.status(), 401);
}

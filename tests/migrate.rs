//! `gatehouse migrate oauth2-proxy` on oauth2-proxy configurations written from its
//! documentation (`tests/migrate/`: TOML files, env files, flag lists, alone and together).
//! Each accepted one is written, passes `gatehouse check` (run by the migration itself), and
//! its policy lets in and keeps out the same people on the same paths as the oauth2-proxy
//! docs say the original does; each refused one writes only `MIGRATION.md`, naming the
//! option, where it was set and why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use gatehouse::auth::{AuthMethod, Principal};
use gatehouse::policy::{AuthMode, Decision, OnUnauthenticated, Policy, Route};
use http::Method;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/migrate")
        .join(name)
}

fn flags(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// One migration run in a fresh working directory.
struct Run {
    work: tempfile::TempDir,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn out(&self) -> PathBuf {
        self.work.path().join("out")
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.out().join("gatehouse.yaml")).unwrap()
    }

    fn report(&self) -> String {
        std::fs::read_to_string(self.out().join("MIGRATION.md")).unwrap()
    }

    fn policy(&self) -> Policy {
        gatehouse::policy::load_dir(&self.out().join("policies")).unwrap()
    }

    fn assert_written(&self) {
        assert_eq!(self.code, 0, "{}\n{}", self.stdout, self.stderr);
        assert!(
            self.stdout.contains("gatehouse.yaml: ok"),
            "check ran: {}",
            self.stdout
        );
        assert!(
            self.stdout.contains("# Migration from oauth2-proxy"),
            "the report is printed"
        );
    }

    /// Refused: exit 64, only the report written, naming `option` at `at` with `why`.
    fn assert_refused(&self, option: &str, at: &str, why: &str) {
        assert_eq!(self.code, 64, "{}\n{}", self.stdout, self.stderr);
        assert!(!self.out().join("gatehouse.yaml").exists());
        let report = self.report();
        let refused = report
            .split("## ")
            .find(|s| s.starts_with("Refused"))
            .unwrap_or_else(|| panic!("no refused section: {report}"));
        let line = refused
            .lines()
            .find(|l| l.starts_with(&format!("- `{option}`")))
            .unwrap_or_else(|| panic!("{option} not refused: {report}"));
        assert!(line.contains(at), "{line}");
        assert!(line.contains(why), "{line}");
        assert!(self.stdout.contains(line), "the report is printed too");
    }
}

/// Runs the migration with `args` (and `--out out`) in a new directory prepared by `setup`.
fn migrate(args: &[String], setup: impl FnOnce(&Path)) -> Run {
    let work = tempfile::tempdir().unwrap();
    setup(work.path());
    let mut command = Command::new(common::binary());
    command
        .current_dir(work.path())
        .args(["migrate", "oauth2-proxy", "--out", "out"])
        .args(args);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("OAUTH2_PROXY_")) {
        command.env_remove(name);
    }
    let output = command.output().unwrap();
    Run {
        work,
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn config_arg(name: &str) -> Vec<String> {
    vec!["--config".into(), fixture(name).display().to_string()]
}

/// Files the fixtures name by relative path (oauth2-proxy's working directory).
fn secret_files(dir: &Path) {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(
        dir.join("secrets/client-secret"),
        "a client secret from a file",
    )
    .unwrap();
    std::fs::write(
        dir.join("secrets/cookie-secret"),
        "VGhpcyBpcyBhIDMyLWJ5dGUgY29va2llIHNlY3JldCE=",
    )
    .unwrap();
}

fn person(email: &str, roles: &[&str], verified: bool) -> Principal {
    Principal {
        subject: email.split('@').next().unwrap().to_owned(),
        issuer: "https://idp".into(),
        email: Some(email.to_owned()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        scopes: Vec::new(),
        claims: Arc::new(serde_json::json!({ "email_verified": verified })),
        method: AuthMethod::Session,
    }
}

/// What happens to `who` (or nobody) on `method path`, in oauth2-proxy's words.
fn outcome(policy: &Policy, method: Method, path: &str, who: Option<&Principal>) -> &'static str {
    let rule = match policy.route(&method, path, Some("app.example.com")) {
        Route::Rule(rule) => rule,
        Route::Default(_) => return "denied",
    };
    match (rule.authorize(who), rule.auth) {
        (Decision::Allow, AuthMode::None) => "skip-auth",
        (Decision::Allow, _) => "allowed",
        (Decision::Unauthenticated, _) if rule.on_unauthenticated == OnUnauthenticated::Deny => {
            "401"
        }
        (Decision::Unauthenticated, _) => "sign-in",
        (Decision::Forbidden(_), _) => "403",
    }
}

#[test]
fn oidc_with_domains_groups_and_routes_keeps_who_gets_in() {
    let run = migrate(&config_arg("oidc_basic.toml"), |_| {});
    run.assert_written();
    let config = run.config();
    assert!(config.contains("client_secret: { env: OAUTH2_PROXY_CLIENT_SECRET }"));
    assert!(
        !config.contains("b2F1dGgyLXByb3h5LWNsaWVudC1zZWNyZXQ="),
        "no literal secret"
    );
    assert!(!config.contains("OQINaROshtE9TcZkNAm"), "no literal secret");
    assert!(config.contains("lifetime: 168h"));
    assert!(config.contains("cookie_name: \"_oauth2_proxy\""));
    assert!(config.contains("http: \"0.0.0.0:4180\""));
    assert!(config.contains("url: \"http://127.0.0.1:8080\""));
    let report = run.report();
    assert!(report.contains("`request_logging` (") && report.contains("oidc_basic.toml:18"));
    assert!(report.contains("OAUTH2_PROXY_COOKIE_SECRET"));

    // oauth2-proxy: only verified example.com emails in group `admins`; /healthz (GET) and
    // /static/ skip auth; /api/ answers 401 instead of redirecting.
    let p = run.policy();
    let admin = person("alice@example.com", &["admins"], true);
    let dev = person("bob@example.com", &["dev"], true);
    let outsider = person("eve@evil.example", &["admins"], true);
    let unverified = person("mallory@example.com", &["admins"], false);
    assert_eq!(outcome(&p, Method::GET, "/app", Some(&admin)), "allowed");
    assert_eq!(outcome(&p, Method::GET, "/app", Some(&dev)), "403");
    assert_eq!(outcome(&p, Method::GET, "/app", Some(&outsider)), "403");
    assert_eq!(outcome(&p, Method::GET, "/app", Some(&unverified)), "403");
    assert_eq!(outcome(&p, Method::GET, "/app", None), "sign-in");
    assert_eq!(outcome(&p, Method::GET, "/healthz", None), "skip-auth");
    assert_eq!(outcome(&p, Method::POST, "/healthz", None), "sign-in");
    assert_eq!(
        outcome(&p, Method::GET, "/static/app.css", None),
        "skip-auth"
    );
    assert_eq!(outcome(&p, Method::GET, "/api/orders", None), "401");
    assert_eq!(outcome(&p, Method::GET, "/api/orders", Some(&dev)), "403");
    assert_eq!(
        outcome(&p, Method::GET, "/api/orders", Some(&admin)),
        "allowed"
    );
}

#[test]
fn keycloak_roles_and_the_redis_store() {
    let run = migrate(&config_arg("keycloak_redis.toml"), |_| {});
    run.assert_written();
    let config = run.config();
    assert!(config.contains("store: redis"));
    assert!(config.contains("url: \"redis://redis.internal:6379/0\""));
    assert!(config.contains("password: { env: OAUTH2_PROXY_REDIS_PASSWORD }"));
    assert!(config.contains("roles: [\"groups\", \"realm_access.roles\"]"));
    let report = run.report();
    for option in [
        "cookie_refresh",
        "code_challenge_method",
        "skip_provider_button",
    ] {
        assert!(
            report.contains(&format!("- `{option}`")),
            "{option}: {report}"
        );
    }
    // `email_domains = ["*"]`: any signed-in user with one of the realm roles.
    let p = run.policy();
    let admin = person("root@anywhere.example", &["admin"], false);
    let user = person("user@anywhere.example", &["user"], true);
    assert_eq!(outcome(&p, Method::GET, "/", Some(&admin)), "allowed");
    assert_eq!(outcome(&p, Method::GET, "/", Some(&user)), "403");
}

#[test]
fn google_from_an_env_file() {
    let run = migrate(
        &args(&["--env", fixture("google.env").to_str().unwrap()]),
        |_| {},
    );
    run.assert_written();
    let config = run.config();
    assert!(config.contains("issuer: \"https://accounts.google.com\""));
    assert!(config.contains("pass_access_token: true"));
    assert!(!config.contains("google-client-secret"));
    assert!(run.report().contains("(OAUTH2_PROXY_SET_XAUTHREQUEST)"));
    let p = run.policy();
    let org = person("a@example.org", &[], true);
    let other = person("a@example.net", &[], true);
    assert_eq!(outcome(&p, Method::GET, "/x", Some(&org)), "allowed");
    assert_eq!(outcome(&p, Method::GET, "/x", Some(&other)), "403");
}

#[test]
fn the_environment_itself_is_read_with_env_alone() {
    let work_env = [
        ("OAUTH2_PROXY_PROVIDER", "oidc"),
        ("OAUTH2_PROXY_OIDC_ISSUER_URL", "https://idp.example.com"),
        ("OAUTH2_PROXY_CLIENT_ID", "from-env"),
        ("OAUTH2_PROXY_CLIENT_SECRET", "env-secret"),
        (
            "OAUTH2_PROXY_REDIRECT_URL",
            "https://e.example.com/oauth2/callback",
        ),
        (
            "OAUTH2_PROXY_COOKIE_SECRET",
            "ZW52aXJvbm1lbnQtY29va2llLXNlY3JldC0xMjM0NTY=",
        ),
        ("OAUTH2_PROXY_EMAIL_DOMAINS", "*"),
        ("OAUTH2_PROXY_UPSTREAMS", "http://127.0.0.1:8000"),
    ];
    let work = tempfile::tempdir().unwrap();
    let output = Command::new(common::binary())
        .current_dir(work.path())
        .args(["migrate", "oauth2-proxy", "--env", "--out", "out"])
        .envs(work_env)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = std::fs::read_to_string(work.path().join("out/gatehouse.yaml")).unwrap();
    assert!(config.contains("client_id: \"from-env\""));
    assert!(config.contains("client_secret: { env: OAUTH2_PROXY_CLIENT_SECRET }"));
}

#[test]
fn entra_id_from_flags_with_files_and_bearer_issuers() {
    let run = migrate(
        &[vec!["--".to_owned()], flags("entra.flags")].concat(),
        secret_files,
    );
    run.assert_written();
    let config = run.config();
    let work = run.work.path().display().to_string();
    assert!(
        config.contains(&format!(
            "client_secret: {{ file: \"{work}/secrets/client-secret\" }}"
        )),
        "{config}"
    );
    assert!(config.contains("trusted_proxies: [\"10.0.0.0/8\"]"));
    assert!(config.contains("audiences: [\"7d3b6f0c-1f4e-4a2b-8c9d-0e1f2a3b4c5d\", \"api://hr\"]"));
    assert!(
        config
            .contains("issuer: \"https://sts.windows.net/0b5c5e8e-7c6a-4d3c-9e1f-2f6f1c3e7a11/\"")
    );
    assert!(config.contains("audiences: [\"api://hr-batch\"]"));
    let p = run.policy();
    let member = person(
        "x@corp.example",
        &["b1f4c2a0-0000-4000-8000-000000000001"],
        true,
    );
    let nobody = person("y@corp.example", &[], true);
    assert_eq!(outcome(&p, Method::GET, "/", Some(&member)), "allowed");
    assert_eq!(outcome(&p, Method::GET, "/", Some(&nobody)), "403");
}

#[test]
fn gitlab_serving_tls_with_redirect_hosts_and_preflights() {
    let run = migrate(&config_arg("gitlab_tls.toml"), |dir| {
        secret_files(dir);
        let (paths, _) = gatehouse::devcerts::ensure(&dir.join("dev"), &[]).unwrap();
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        std::fs::copy(&paths.cert, dir.join("tls/cert.pem")).unwrap();
        std::fs::copy(&paths.key, dir.join("tls/key.pem")).unwrap();
    });
    run.assert_written();
    let config = run.config();
    assert!(config.contains("issuer: \"https://gitlab.com\""));
    assert!(config.contains("https: \"0.0.0.0:8443\""));
    assert!(config.contains("min_version: \"1.3\""));
    assert!(
        config.contains("allowed_redirect_hosts: [\".example.com\", \"login.example.org:8443\"]")
    );
    assert!(config.contains("admin: \"127.0.0.1:9100\""));
    let p = run.policy();
    // skip_auth_preflight lets every OPTIONS through, as oauth2-proxy does: a real CORS
    // preflight is judged by the route of the request it announces, which passes it on.
    assert_eq!(
        outcome(&p, Method::OPTIONS, "/wiki/page", None),
        "skip-auth"
    );
    for announced in [Method::GET, Method::PUT, Method::DELETE] {
        let Route::Rule(rule) = p.route(&announced, "/wiki/page", Some("app.example.com")) else {
            panic!("no route for {announced}");
        };
        let cors = rule.cors.as_deref().expect("the route has a cors block");
        assert_eq!(
            cors.preflight,
            gatehouse::cors::PreflightMode::Pass,
            "{announced}"
        );
    }
    // Unverified emails are accepted here (insecure_oidc_allow_unverified_email).
    let unverified = person("a@example.com", &[], false);
    assert_eq!(
        outcome(&p, Method::GET, "/wiki", Some(&unverified)),
        "allowed"
    );
}

#[test]
fn flags_beat_the_environment_beat_the_file() {
    let mut all = config_arg("adfs_precedence.toml");
    all.extend(args(&[
        "--env",
        fixture("adfs_precedence.env").to_str().unwrap(),
        "--",
    ]));
    all.extend(flags("adfs_precedence.flags"));
    let run = migrate(&all, |_| {});
    run.assert_written();
    let config = run.config();
    assert!(config.contains("client_id: \"from-the-flags\""), "{config}");
    assert!(run.report().contains("- `client_id` (--client-id)"));
    let p = run.policy();
    let env_domain = person("a@env.example.com", &[], true);
    let file_domain = person("a@file.example.com", &[], true);
    assert_eq!(outcome(&p, Method::GET, "/", Some(&env_domain)), "allowed");
    assert_eq!(outcome(&p, Method::GET, "/", Some(&file_domain)), "403");
}

#[test]
fn a_provider_that_is_not_oidc_is_refused() {
    let run = migrate(&config_arg("refused_github.toml"), |_| {});
    run.assert_refused("provider", "refused_github.toml:2", "not OpenID Connect");
    run.assert_refused("github_org", "refused_github.toml:3", "provider's API");
}

#[test]
fn regexes_that_are_not_paths_are_refused_with_their_line() {
    let run = migrate(&config_arg("refused_regex.toml"), |_| {});
    run.assert_refused("skip_auth_regex", "refused_regex.toml:10", "regex syntax");
    run.assert_refused("skip_auth_routes", "refused_regex.toml:11", "not anchored");
}

#[test]
fn several_upstreams_are_refused() {
    let run = migrate(&config_arg("refused_upstreams.toml"), |_| {});
    run.assert_refused("upstreams", "refused_upstreams.toml:9", "2 upstreams");
}

#[test]
fn auth_bypasses_by_address_or_user_agent_are_refused() {
    let run = migrate(
        &[vec!["--".to_owned()], flags("refused_bypass.flags")].concat(),
        |_| {},
    );
    run.assert_refused("trusted_ips", "--trusted-ip", "without signing in");
    run.assert_refused("ping_user_agent", "--ping-user-agent", "User-Agent");
}

#[test]
fn azure_on_the_common_tenant_is_refused() {
    let run = migrate(
        &args(&[
            "--env",
            fixture("refused_azure_common.env").to_str().unwrap(),
        ]),
        |_| {},
    );
    run.assert_refused("azure_tenant", "", "no single issuer");
}

#[test]
fn unknown_options_are_errors_and_nothing_is_written() {
    let run = migrate(&config_arg("unknown_option.toml"), |_| {});
    assert_eq!(run.code, 64);
    assert!(
        run.stderr
            .contains("unknown_option.toml:5: unknown option `cookie_secrett`"),
        "{}",
        run.stderr
    );
    assert!(!run.out().exists());
    let run = migrate(&args(&["--", "--cookie-secrett=x"]), |_| {});
    assert_eq!(run.code, 64);
    assert!(
        run.stderr.contains("unknown flag `--cookie-secrett`"),
        "{}",
        run.stderr
    );
}

/// The migrated config served for real: the test OpenID provider signs people in through a
/// browser, and the same people are let in and kept out as oauth2-proxy's docs say.
#[tokio::test]
async fn a_migrated_config_serves_and_signs_in_like_the_original() {
    use common::browser::Browser;
    use common::oidc_idp::{CLIENT_ID, OidcIdp, User};

    let pki = common::pki();
    let app = common::ok_upstream().await;
    let verified = |user: &str, roles: &[&str]| {
        let mut user = User::new(user, roles);
        user.extra.insert("email_verified".into(), true.into());
        user
    };
    let idp = OidcIdp::start(verified("alice", &["dev"]), Some("the client secret")).await;
    let toml = format!(
        "provider = \"oidc\"
oidc_issuer_url = \"{issuer}\"
oidc_groups_claim = \"roles\"
client_id = \"{CLIENT_ID}\"
client_secret_file = \"secrets/client-secret\"
cookie_secret_file = \"secrets/cookie-secret\"
redirect_url = \"https://localhost/oauth2/callback\"
email_domains = [\"example.com\"]
allowed_groups = [\"dev\"]
skip_auth_routes = [\"^/public/\"]
api_routes = [\"^/api/\"]
upstreams = [\"{app}\"]
http_address = \"127.0.0.1:0\"
https_address = \"127.0.0.1:0\"
tls_cert_file = \"{cert}\"
tls_key_file = \"{key}\"
metrics_address = \"127.0.0.1:0\"
",
        issuer = idp.issuer(),
        app = app.url(),
        cert = pki.paths.cert.display(),
        key = pki.paths.key.display(),
    );
    let run = migrate(&args(&["--config", "oauth2-proxy.cfg"]), |dir| {
        secret_files(dir);
        std::fs::write(dir.join("secrets/client-secret"), "the client secret").unwrap();
        std::fs::write(dir.join("oauth2-proxy.cfg"), &toml).unwrap();
    });
    run.assert_written();
    let config = gatehouse::config::load(
        &run.out().join("gatehouse.yaml"),
        &gatehouse::config::Overrides::default(),
    )
    .unwrap();
    let gh = gatehouse::server::start(config).await.unwrap();
    let admin = gh.admin_addr;
    common::eventually("ready", std::time::Duration::from_secs(30), || async move {
        common::admin_get(admin, "/readyz").await.0 == 200
    })
    .await;
    let client = common::Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);

    // skip_auth_routes: no sign-in; api_routes: 401, not a redirect; /ping as oauth2-proxy.
    assert_eq!(client.h1(common::get("/public/x")).await.status(), 200);
    assert_eq!(client.h1(common::get("/api/x")).await.status(), 401);
    assert_eq!(client.h1(common::get("/ping")).await.status(), 200);

    // In the group and the domain: signed in, and the app gets oauth2-proxy's headers.
    let mut browser = Browser::new(client.clone(), idp.addr);
    let visit = browser.visit("/app/x").await;
    assert_eq!(visit.landed(), "/app/x", "{:?}", visit.urls);
    assert_eq!(visit.status(), 200, "{}", visit.body());
    let seen = app.seen().last().cloned().unwrap();
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-email"), Some("alice@example.com"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("dev"));

    // Not in `allowed_groups`: oauth2-proxy refuses them; so does Gatehouse (403).
    idp.set_user(verified("bob", &["sales"]));
    let mut browser = Browser::new(client.clone(), idp.addr);
    let visit = browser.visit("/app/x").await;
    assert_eq!(visit.status(), 403, "{}", visit.body());
    // An unverified email in the domain: refused as oauth2-proxy refuses it.
    idp.set_user(User::new("carol", &["dev"]));
    let mut browser = Browser::new(client, idp.addr);
    assert_eq!(browser.visit("/app/x").await.status(), 403);
    let seen = app.seen();
    assert!(
        seen.iter()
            .all(|s| s.uri != "/app/x" || s.header("x-forwarded-user") == Some("alice"))
    );
    gh.shutdown();
}

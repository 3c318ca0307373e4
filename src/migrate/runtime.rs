//! The rest of `gatehouse.yaml`: the session (cookie or Redis), listeners and TLS, the
//! upstream, trusted proxies, bearer issuers and the oauth2-proxy compatibility switch.

use std::fmt::Write as _;

use super::map::{Mapper, duration, list, q};
use super::report::Outcome;

impl Mapper {
    pub fn session(&mut self, out: &mut String) {
        out.push_str("session:\n");
        match self.secret("cookie_secret", "cookie_secret_file") {
            Some((_, Some(literal))) if literal.len() < 32 => {
                self.refused(
                    "cookie_secret",
                    "",
                    "is shorter than the 32 characters Gatehouse needs (sessions do not carry \
                     over anyway): generate one with `openssl rand -base64 32`",
                );
            }
            Some((secret, _)) => {
                let _ = writeln!(out, "  secrets:\n    - {secret}");
            }
            None => self.refused("cookie_secret", "", "is required"),
        }
        if let Some(s) = self.take("cookie_name") {
            self.mapped(
                "cookie_name",
                &s,
                "session.cookie_name (everyone signs in again once: the cookie format differs)",
            );
            let _ = writeln!(out, "  cookie_name: {}", q(&s.text()));
        }
        for (option, key) in [
            ("cookie_expire", "lifetime"),
            ("cookie_csrf_expire", "flow_timeout"),
        ] {
            let Some(s) = self.take(option) else { continue };
            match duration(&s.text()) {
                Some(d) if d != "0s" => {
                    self.mapped(option, &s, format!("session.{key}"));
                    let _ = writeln!(out, "  {key}: {d}");
                }
                _ => self.unmapped(
                    option,
                    &s,
                    format!(
                        "`{}` has no Gatehouse equivalent; the default applies",
                        s.text()
                    ),
                ),
            }
        }
        if let Some(s) = self.take("cookie_refresh") {
            self.mapped(
                "cookie_refresh",
                &s,
                "Gatehouse refreshes a session when its tokens expire (session.refresh, on), \
                 not on a fixed period",
            );
        }
        for (name, want, why) in [
            ("cookie_secure", true, "the cookie is always `Secure`"),
            ("cookie_httponly", true, "the cookie is always `HttpOnly`"),
            (
                "cookie_csrf_per_request",
                true,
                "Gatehouse keeps one flow cookie per login (up to 4 at once)",
            ),
            (
                "session_cookie_minimal",
                true,
                "Gatehouse keeps only what it needs in the session",
            ),
        ] {
            if self.left.contains_key(name) {
                self.flag(name, want, false, why);
            }
        }
        if let Some(s) = self.take("cookie_samesite") {
            match s.text().to_ascii_lowercase().as_str() {
                "" | "lax" => self.mapped("cookie_samesite", &s, "`Lax`, as Gatehouse always sets"),
                other => self.unmapped(
                    "cookie_samesite",
                    &s,
                    format!("`{other}`: Gatehouse's cookies are always `SameSite=Lax`"),
                ),
            }
        }
        if let Some(s) = self.take("cookie_path") {
            match s.text().as_str() {
                "/" | "" => self.mapped("cookie_path", &s, "`/`, as Gatehouse always sets"),
                _ => self.unmapped("cookie_path", &s, "the session cookie is always for `/`"),
            }
        }
        if let Some(s) = self.take("cookie_domains") {
            self.unmapped(
                "cookie_domains",
                &s,
                "Gatehouse's session cookie is host-only (`__Host-` by default): one session per \
                 host, not shared across subdomains",
            );
        }
        let store = self.take("session_store_type");
        match store.as_ref().map(|s| s.text()).as_deref() {
            None | Some("cookie") => {
                if let Some(s) = store {
                    self.mapped("session_store_type", &s, "session.store: cookie");
                }
            }
            Some("redis") => {
                if let Some(s) = &store {
                    self.mapped("session_store_type", s, "session.store: redis");
                }
                self.redis(out);
            }
            Some(other) => {
                let at = store.as_ref().map_or(String::new(), |s| s.at.clone());
                self.refused(
                    "session_store_type",
                    &at,
                    format!("`{other}` is not cookie or redis"),
                );
            }
        }
    }

    fn redis(&mut self, out: &mut String) {
        out.push_str("  store: redis\n  redis:\n");
        for name in [
            "redis_use_sentinel",
            "redis_use_cluster",
            "redis_sentinel_connection_urls",
            "redis_cluster_connection_urls",
            "redis_sentinel_master_name",
            "redis_sentinel_password",
        ] {
            if let Some(s) = self.take(name) {
                if matches!(s.value, super::options::Value::Bool(false)) {
                    self.mapped(name, &s, "off, as in Gatehouse");
                } else {
                    self.refused(
                        name,
                        &s.at,
                        "Redis Sentinel and Cluster are not supported by Gatehouse's store yet",
                    );
                }
            }
        }
        match self.take("redis_connection_url") {
            Some(s) if s.text().contains('@') => {
                let var = s
                    .env
                    .clone()
                    .unwrap_or_else(|| "OAUTH2_PROXY_REDIS_CONNECTION_URL".to_owned());
                self.mapped(
                    "redis_connection_url",
                    &s,
                    format!("it holds credentials: the config reads `{{ env: {var} }}`"),
                );
                self.report.env.push((
                    var.clone(),
                    "the Redis URL, with its credentials".to_owned(),
                ));
                self.secrets.push(super::map::EnvSecret {
                    name: var.clone(),
                    value: s.text(),
                });
                let _ = writeln!(out, "    url: {{ env: {var} }}");
            }
            Some(s) => {
                self.mapped("redis_connection_url", &s, "session.redis.url");
                let _ = writeln!(out, "    url: {}", q(&s.text()));
            }
            None => self.refused(
                "redis_connection_url",
                "",
                "is required with session_store_type = \"redis\"",
            ),
        }
        if let Some(s) = self.take("redis_username") {
            self.mapped("redis_username", &s, "session.redis.username");
            let _ = writeln!(out, "    username: {}", q(&s.text()));
        }
        if let Some((secret, _)) = self.secret("redis_password", "redis_password_file") {
            let _ = writeln!(out, "    password: {secret}");
        }
        if let Some(s) = self.take("redis_ca_path") {
            self.mapped("redis_ca_path", &s, "session.redis.ca_file");
            let _ = writeln!(out, "    ca_file: {}", q(&self.file(&s.text())));
        }
    }

    /// `listen`, `tls`, `upstream`, `trusted_proxies`, `compat`.
    pub fn runtime(&mut self, out: &mut String) {
        let http = self.take("http_address");
        let http_addr = match &http {
            Some(s) => address(&s.text()),
            None => Some("127.0.0.1:4180".to_owned()),
        };
        let cert = self.take("tls_cert_file");
        let key = self.take("tls_key_file");
        let https = self.take("https_address");
        out.push_str("listen:\n");
        match (&http, &http_addr) {
            (Some(s), Some(a)) => {
                self.mapped(
                    "http_address",
                    s,
                    "listen.http (plaintext, as oauth2-proxy serves it)",
                );
                let _ = writeln!(out, "  http: {}", q(a));
            }
            (Some(s), None) => {
                let at = s.at.clone();
                self.refused(
                    "http_address",
                    &at,
                    format!("`{}` is not HOST:PORT", s.text()),
                );
            }
            (None, Some(a)) => {
                self.report.add(
                    Outcome::Mapped,
                    "http_address",
                    "",
                    "not set: oauth2-proxy's default 127.0.0.1:4180 (listen.http)",
                );
                let _ = writeln!(out, "  http: {}", q(a));
            }
            (None, None) => {}
        }
        if let (Some(c), Some(k)) = (&cert, &key) {
            let addr = https
                .as_ref()
                .map_or(Some("0.0.0.0:443".to_owned()), |s| address(&s.text()));
            if let Some(a) = &addr {
                let _ = writeln!(out, "  https: {}", q(a));
            }
            self.mapped("tls_cert_file", c, "tls.certificates[0].cert_file");
            self.mapped("tls_key_file", k, "tls.certificates[0].key_file");
            if let Some(s) = &https {
                self.mapped("https_address", s, "listen.https");
            }
        } else if let Some(s) = cert.as_ref().or(key.as_ref()).or(https.as_ref()) {
            let at = s.at.clone();
            self.refused(
                "tls_cert_file",
                &at,
                "HTTPS needs both `tls_cert_file` and `tls_key_file`",
            );
        }
        if let Some(s) = self.take("metrics_address") {
            match address(&s.text()) {
                Some(a) => {
                    self.mapped(
                        "metrics_address",
                        &s,
                        "listen.admin (/metrics, /healthz, /readyz)",
                    );
                    let _ = writeln!(out, "  admin: {}", q(&a));
                }
                None => self.unmapped(
                    "metrics_address",
                    &s,
                    "not HOST:PORT; the default admin address applies",
                ),
            }
        }
        if let (Some(c), Some(k)) = (&cert, &key) {
            let _ = writeln!(
                out,
                "tls:\n  certificates:\n    - cert_file: {}\n      key_file: {}",
                q(&self.file(&c.text())),
                q(&self.file(&k.text()))
            );
            if let Some(s) = self.take("tls_min_version") {
                let v = s.text().trim_start_matches("TLS").to_owned();
                self.mapped("tls_min_version", &s, "tls.min_version");
                let _ = writeln!(out, "  min_version: {}", q(&v));
            }
            if let Some(s) = self.take("tls_cipher_suites") {
                self.mapped(
                    "tls_cipher_suites",
                    &s,
                    "tls.cipher_suites (checked by `gatehouse check`)",
                );
                let _ = writeln!(out, "  cipher_suites: {}", list(&s.list()));
            }
        }
        self.upstream(out);
        self.proxies(out);
        let compat = self.take("pass_user_headers");
        match compat {
            Some(s) if !s.is_true() => self.unmapped(
                "pass_user_headers",
                &s,
                "Gatehouse sends X-User-Id/X-User-Roles always; compat.oauth2_proxy (kept on for \
                 /ping and /ready) also sends the X-Forwarded-* names",
            ),
            Some(s) => self.mapped(
                "pass_user_headers",
                &s,
                "compat.oauth2_proxy (X-Forwarded-User/-Email/-Groups/-Preferred-Username)",
            ),
            None => {}
        }
        out.push_str("compat:\n  oauth2_proxy: true\n");
    }

    fn upstream(&mut self, out: &mut String) {
        let Some(s) = self.take("upstreams") else {
            self.refused(
                "upstreams",
                "",
                "is required: the one app Gatehouse sits in front of",
            );
            return;
        };
        let upstreams = s.list();
        let [one] = upstreams.as_slice() else {
            self.refused(
                "upstreams",
                &s.at,
                format!(
                    "{} upstreams: Gatehouse is a sidecar for one app; route several apps with one \
                     Gatehouse each (or a proxy in front)",
                    upstreams.len()
                ),
            );
            return;
        };
        let Some(rest) = one.strip_prefix("http://") else {
            self.refused(
                "upstreams",
                &s.at,
                format!("`{one}`: Gatehouse talks plaintext HTTP to an app beside it (`http://host:port`)"),
            );
            return;
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !path.is_empty() {
            self.refused(
                "upstreams",
                &s.at,
                format!("`{one}`: an upstream path (`/{path}`) is not supported; the app gets the request path as is"),
            );
            return;
        }
        self.mapped("upstreams", &s, "upstream.url");
        let _ = writeln!(
            out,
            "upstream:\n  url: {}",
            q(&format!("http://{authority}"))
        );
        if let Some(t) = self.take("upstream_timeout") {
            match duration(&t.text()) {
                Some(d) => {
                    self.mapped("upstream_timeout", &t, "upstream.timeout");
                    let _ = writeln!(out, "  timeout: {d}");
                }
                None => self.unmapped(
                    "upstream_timeout",
                    &t,
                    "not a duration; the default applies",
                ),
            }
        }
        if let Some(w) = self.take("proxy_websockets") {
            if w.is_true() {
                self.mapped(
                    "proxy_websockets",
                    &w,
                    "upstream.upgrades: [websocket] (the default)",
                );
            } else {
                self.mapped("proxy_websockets", &w, "upstream.upgrades: []");
                out.push_str("  upgrades: []\n");
            }
        }
    }

    fn proxies(&mut self, out: &mut String) {
        let reverse = self.take("reverse_proxy");
        match self.take("trusted_proxy_ips") {
            Some(s) => {
                self.mapped("trusted_proxy_ips", &s, "trusted_proxies");
                let _ = writeln!(out, "trusted_proxies: {}", list(&s.list()));
                if let Some(r) = reverse {
                    self.mapped(
                        "reverse_proxy",
                        &r,
                        "X-Forwarded-* are believed from trusted_proxies only",
                    );
                }
            }
            None => {
                if let Some(r) = reverse.filter(|r| r.is_true()) {
                    self.unmapped(
                        "reverse_proxy",
                        &r,
                        "oauth2-proxy then believes X-Forwarded-* from any peer; Gatehouse only from \
                         `trusted_proxies`: add your proxy's address (forward-auth needs it)",
                    );
                }
            }
        }
    }

    /// `issuers:` for `skip_jwt_bearer_tokens` (the login issuer and `extra_jwt_issuers`).
    pub fn issuers(&mut self, out: &mut String, roles: &[String]) {
        let skip = self.take("skip_jwt_bearer_tokens");
        let extra = self.take("extra_jwt_issuers");
        let audiences = self.take("oidc_extra_audiences");
        let jwks = self.take("oidc_jwks_url");
        let Some(skip) = skip.filter(|s| s.is_true()) else {
            for (name, s) in [
                ("extra_jwt_issuers", &extra),
                ("oidc_extra_audiences", &audiences),
            ] {
                if let Some(s) = s {
                    self.unmapped(name, s, "only used with `skip_jwt_bearer_tokens = true`");
                }
            }
            if let Some(s) = &jwks {
                self.unmapped(
                    "oidc_jwks_url",
                    s,
                    "login finds the keys through OIDC discovery",
                );
            }
            return;
        };
        self.mapped(
            "skip_jwt_bearer_tokens",
            &skip,
            "issuers: bearer JWTs of the login issuer (routes take them with auth: any)",
        );
        let mut aud = vec![self.client_id.clone()];
        if let Some(s) = &audiences {
            aud.extend(s.list());
            self.mapped("oidc_extra_audiences", s, "issuers[0].audiences");
        }
        let _ = writeln!(
            out,
            "issuers:\n  - issuer: {}\n    audiences: {}\n    claims:\n      roles: {}",
            q(&self.issuer),
            list(&aud),
            list(roles)
        );
        if let Some(s) = &jwks {
            self.mapped("oidc_jwks_url", s, "issuers[0].jwks_uri");
            let _ = writeln!(out, "    jwks_uri: {}", q(&s.text()));
        }
        if let Some(algorithms) = &self.algorithms {
            let _ = writeln!(out, "    algorithms: {}", list(algorithms));
        }
        if let Some(s) = extra {
            for entry in s.list() {
                let Some((issuer, audience)) = entry.split_once('=') else {
                    self.refused(
                        "extra_jwt_issuers",
                        &s.at,
                        format!("`{entry}` is not `issuer=audience`"),
                    );
                    continue;
                };
                let _ = writeln!(
                    out,
                    "  - issuer: {}\n    audiences: [{}]\n    claims:\n      roles: {}",
                    q(issuer),
                    q(audience),
                    list(roles)
                );
            }
            self.mapped(
                "extra_jwt_issuers",
                &s,
                "issuers (one per `issuer=audience`)",
            );
        }
    }
}

/// oauth2-proxy's `[http://]host:port` or `:port` as Gatehouse's `ADDR:PORT`.
fn address(text: &str) -> Option<String> {
    let text = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .unwrap_or(text);
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = match host {
        "" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        h => h,
    };
    Some(format!("{host}:{port}"))
}

use super::*;

/// Parses `text` with a `policies` line appended (every config needs one).
fn parse_str(text: &str) -> Result<Config, ConfigErrors> {
    parse(
        &format!("{text}policies: policies/\n"),
        Path::new("/etc/gatehouse/gatehouse.yaml"),
        &Overrides::default(),
    )
}

const MINIMAL: &str = "\
version: 1
listen:
  http: 127.0.0.1:8080
upstream:
  url: http://127.0.0.1:3000
policies: policies/
";

/// Parses [`MINIMAL`] with `text` appended, as `g.yaml`.
fn full(text: &str) -> Result<Config, ConfigErrors> {
    parse(
        &format!("{MINIMAL}{text}"),
        Path::new("g.yaml"),
        &Overrides::default(),
    )
}

#[test]
fn minimal_config_gets_safe_defaults() {
    let config = parse(
        MINIMAL,
        Path::new("/etc/gatehouse/gatehouse.yaml"),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(config.policies, Path::new("/etc/gatehouse/policies/"));
    assert_eq!(config.listen.admin, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(
        config.upstream.target,
        UpstreamTarget::Tcp("127.0.0.1:3000".into())
    );
    assert!(config.trusted_proxies.is_empty());
    assert!(config.tls.is_none());
    assert_eq!(config.limits.max_header_bytes, 16384);
}

#[test]
fn unknown_key_is_an_error_with_line_and_field() {
    let text = "version: 1\nlisten:\n  http: 127.0.0.1:8080\nupstream:\n  url: http://127.0.0.1:3000\n  timout: 5s\n";
    let errors = parse_str(text).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.line, 6, "{e}");
    assert_eq!(e.field, "upstream.timout");
    assert!(e.message.contains("timout"), "{e}");
    assert!(
        e.to_string()
            .starts_with("/etc/gatehouse/gatehouse.yaml:6:"),
        "{e}"
    );
}

#[test]
fn unknown_keys_do_not_hide_other_errors() {
    let text = "\
version: 1
listen:
  https: 127.0.0.1:8443
  admin: nowhere
upstream:
  url: http://127.0.0.1:3000
  retries:
    count: 3
  timeout: 10 seconds
tls:
  certificates:
    - bogus: 1
      cert_file: a.crt
      key_file: a.key
limits: { drain_timeout: soon }
";
    let errors = parse_str(text).unwrap_err().0;
    let found: Vec<(u64, u64, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.field.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (4, 10, "listen.admin"),
            (7, 3, "upstream.retries"),
            (9, 12, "upstream.timeout"),
            (12, 7, "tls.certificates.bogus"),
            (15, 26, "limits.drain_timeout"),
        ]
    );
}

#[test]
fn an_unknown_key_in_flow_style_is_reported_alone() {
    let text = "version: 1\nlisten: { http: 127.0.0.1:8080, bogus: 1 }\nupstream:\n  url: x\n";
    let errors = parse_str(text).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("bogus"), "{}", errors[0]);
}

#[test]
fn all_value_errors_are_reported_together_in_file_order() {
    let text = "\
version: 1
listen:
  https: 127.0.0.1:99999
  admin: nowhere
upstream:
  url: https://app.internal
  timeout: 10 seconds
limits:
  max_header_bytes: 100
trusted_proxies: [10.0.0.0/8, not-a-cidr]
log:
  format: xml
  audit: everything
";
    let errors = parse_str(text).unwrap_err().0;
    let fields: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        fields,
        [
            (3, "listen.https"),
            (3, "listen.https"),
            (4, "listen.admin"),
            (6, "upstream.url"),
            (7, "upstream.timeout"),
            (9, "limits.max_header_bytes"),
            (10, "trusted_proxies[1]"),
            (12, "log.format"),
            (13, "log.audit"),
        ]
    );
    let text = ConfigErrors(errors).to_string();
    assert!(
        text.contains(":7:") && text.contains("upstream.timeout"),
        "{text}"
    );
    assert!(text.contains("needs a `tls` section"), "{text}");
}

#[test]
fn version_is_required() {
    let errors = parse_str("listen:\n  http: 127.0.0.1:1\nupstream:\n  url: http://127.0.0.1:2\n")
        .unwrap_err()
        .0;
    assert_eq!(errors[0].field, "version");
}

#[test]
fn relative_paths_are_anchored_at_the_config_file() {
    let text = "\
version: 1
listen:
  https: 127.0.0.1:8443
tls:
  certificates:
    - cert_file: certs/tls.crt
      key_file: certs/tls.key
      names: [app.example, '*.app.example']
upstream:
  url: unix:run/app.sock
";
    let config = parse_str(text).unwrap();
    let tls = config.tls.unwrap();
    assert_eq!(
        tls.certificates[0].cert_file,
        Path::new("/etc/gatehouse/certs/tls.crt")
    );
    assert_eq!(
        tls.certificates[0].key,
        KeySource::File("/etc/gatehouse/certs/tls.key".into())
    );
    assert_eq!(tls.certificates[0].names, ["app.example", "*.app.example"]);
    assert_eq!(tls.certificates[0].origin.line, 6);
    assert_eq!(
        config.upstream.target,
        UpstreamTarget::Unix("/etc/gatehouse/run/app.sock".into())
    );
}

#[test]
fn certificate_needs_exactly_one_key_source() {
    let text = "\
version: 1
listen:
  https: 127.0.0.1:8443
tls:
  certificates:
    - cert_file: a.crt
    - cert_file: b.crt
      key_file: b.key
      key_env: B_KEY
upstream:
  url: http://127.0.0.1:1
";
    let errors = parse_str(text).unwrap_err().0;
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "tls.certificates[0].key_file",
            "tls.certificates[1].key_file"
        ]
    );
}

#[test]
fn overrides_replace_file_values() {
    let overrides = Overrides {
        upstream: Some("unix:/tmp/app.sock".into()),
        log_format: Some("json".into()),
        ..Overrides::default()
    };
    let config = parse(MINIMAL, Path::new("g.yaml"), &overrides).unwrap();
    assert_eq!(
        config.upstream.target,
        UpstreamTarget::Unix("/tmp/app.sock".into())
    );
    assert_eq!(config.log.format, LogFormat::Json);
    let bad = Overrides {
        admin: Some("nope".into()),
        ..Overrides::default()
    };
    let errors = parse(MINIMAL, Path::new("g.yaml"), &bad).unwrap_err();
    assert_eq!(errors.0[0].field, "listen.admin");
    assert_eq!(errors.0[0].line, 0);
}

#[test]
fn durations_need_units() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    for bad in ["10", "s", "1.5s", "-1s", "10 s", ""] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn yaml_path_follows_indentation() {
    let text = "a:\n  b:\n    - c: 1\n      d: 2\n  e: 3\n";
    assert_eq!(yaml_path_at(text, 4).as_deref(), Some("a.b.d"));
    assert_eq!(yaml_path_at(text, 5).as_deref(), Some("a.e"));
    assert_eq!(yaml_path_at(text, 1).as_deref(), Some("a"));
    assert_eq!(yaml_path_at(text, 99), None);
}

#[test]
fn a_policy_directory_is_required() {
    let text = MINIMAL.replace("policies: policies/\n", "");
    let errors = parse(&text, Path::new("g.yaml"), &Overrides::default())
        .unwrap_err()
        .0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "policies");
}

#[test]
fn issuers_are_validated() {
    let text = "\
issuers:
  - issuer: http://idp.example.com
    audiences: []
    algorithms: [RS256, HS256, none]
  - issuer: http://127.0.0.1:8080/realms/x
    audiences: [api]
    jwks_uri: https://idp.example.com/keys
    jwks_file: keys.json
  - issuer: https://idp.example.com
    audiences: [api]
    claims:
      roles: [realm_access.roles, groups]
";
    let errors = full(text).unwrap_err().0;
    let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (8, "issuers[0].issuer"),
            (8, "issuers[0].audiences"),
            (10, "issuers[0].algorithms"),
            (10, "issuers[0].algorithms"),
            (13, "issuers[1].jwks_uri"),
        ]
    );
    let valid = text[text.find("  - issuer: https").unwrap()..]
        .replace("  - issuer", "issuers:\n  - issuer");
    let ok = full(&valid).unwrap();
    assert_eq!(ok.issuers[0].claims.roles, ["realm_access.roles", "groups"]);
    assert_eq!(ok.issuers[0].keys, JwksSource::Discovery);
    assert_eq!(ok.issuers[0].algorithms, DEFAULT_ALGORITHMS);
}

#[test]
fn list_format_and_roles_string_name_their_line_and_field() {
    let text = "\
identity:
  list_format: yaml
issuers:
  - issuer: https://a.example
    audiences: [x]
    claims:
      roles_string: maybe
login:
  issuer: https://a.example
  client_id: app
  redirect_url: https://app.example/oauth2/callback
  claims: { roles_string: Split }
session:
  secrets: [{ env: PATH }]
";
    let errors = full(text).unwrap_err().0;
    let got: Vec<(u64, &str)> = errors
        .iter()
        .filter(|e| !e.field.starts_with("session"))
        .map(|e| (e.line, e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (8, "identity.list_format"),
            (13, "issuers[0].claims.roles_string"),
            (18, "login.claims.roles_string"),
        ],
        "{errors:?}"
    );
    assert!(
        errors[0].message.contains("`csv` or `json`"),
        "{}",
        errors[0].message
    );
    assert!(errors[1].message.contains("`reject`, `split` or `single`"));

    let ok = full(
        "identity: { list_format: json }\nissuers:\n  - issuer: https://a.example\n    audiences: [x]\n    claims: { roles_string: split }\n",
    )
    .unwrap();
    assert_eq!(ok.identity.list_format, ListFormat::Json);
    assert_eq!(
        ok.issuers[0].claims.roles_string,
        crate::config::RolesString::Split
    );
    let defaults = full("").unwrap();
    assert_eq!(defaults.identity.list_format, ListFormat::Csv);
}

/// A config whose `tls` section has `lines` after its certificate.
fn tls_with(lines: &str) -> Result<Config, ConfigErrors> {
    parse_str(&format!(
        "\
version: 1
listen:
  https: 127.0.0.1:8443
tls:
  certificates:
    - cert_file: a.crt
      key_file: a.key
{lines}upstream:
  url: http://127.0.0.1:1
"
    ))
}

fn suite_names(settings: &TlsSettings) -> Vec<&'static str> {
    settings
        .cipher_suites
        .iter()
        .filter_map(|s| s.suite().as_str())
        .collect()
}

#[test]
fn tls_defaults_to_1_2_with_the_providers_suites() {
    let tls = tls_with("").unwrap().tls.unwrap();
    assert_eq!(tls.min_version, TlsVersion::Tls12);
    let names = suite_names(&tls);
    assert!(names.contains(&"TLS13_AES_128_GCM_SHA256"), "{names:?}");
    assert!(
        names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        "{names:?}"
    );
}

#[test]
fn tls_min_version_and_cipher_suites_are_read() {
    for min in ["\"1.3\"", "'1.3'", "1.3"] {
        let tls = tls_with(&format!("  min_version: {min}\n"))
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(tls.min_version, TlsVersion::Tls13, "{min}");
        // Only suites that TLS 1.3 can use are kept from the defaults.
        assert!(suite_names(&tls).iter().all(|n| n.starts_with("TLS13_")));
    }
    let tls = tls_with(
        "  min_version: \"1.2\"\n  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n    - TLS13_AES_256_GCM_SHA384\n",
    )
    .unwrap()
    .tls
    .unwrap();
    assert_eq!(tls.min_version, TlsVersion::Tls12);
    assert_eq!(
        suite_names(&tls),
        [
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS13_AES_256_GCM_SHA384"
        ]
    );
}

#[test]
fn bad_tls_versions_and_suites_name_line_and_field() {
    let cases: &[(&str, &str, u64, &str)] = &[
        (
            "  min_version: \"1.1\"\n",
            "tls.min_version",
            8,
            "\"1.2\" or \"1.3\"",
        ),
        (
            "  min_version: 1.0\n",
            "tls.min_version",
            8,
            "\"1.2\" or \"1.3\"",
        ),
        (
            "  cipher_suites: [TLS13_AES_256_GCM_SHA384, TLS_RSA_WITH_RC4_128_MD5]\n",
            "tls.cipher_suites[1]",
            8,
            "`TLS_RSA_WITH_RC4_128_MD5`",
        ),
        (
            "  cipher_suites: []\n",
            "tls.cipher_suites",
            8,
            "at least one",
        ),
        (
            "  min_version: \"1.3\"\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
            "tls.cipher_suites[0]",
            9,
            "TLS 1.2 suite",
        ),
        (
            "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
            "tls.cipher_suites",
            8,
            "no TLS 1.3 suite",
        ),
        (
            "  cipher_suites: [TLS13_AES_256_GCM_SHA384]\n",
            "tls.cipher_suites",
            8,
            "set `min_version: \"1.3\"`",
        ),
        (
            "  cipher_suites: [TLS13_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384]\n",
            "tls.cipher_suites[2]",
            8,
            "twice",
        ),
    ];
    for (lines, field, line, needle) in cases {
        let errors = tls_with(lines).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{lines}: {errors:?}");
        let e = &errors[0];
        assert_eq!(e.field, *field, "{lines}: {e}");
        assert_eq!(e.line, *line, "{lines}: {e}");
        assert!(e.message.contains(needle), "{lines}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("/etc/gatehouse/gatehouse.yaml:{line}:")),
            "{e}"
        );
    }
}

/// Found by `fuzz/` (target `config`): these two errors were reported without a line.
#[test]
fn listen_without_a_listener_and_a_repeated_issuer_name_their_lines() {
    let text = "\
version: 1
listen:
  admin: 127.0.0.1:9901
upstream:
  url: http://127.0.0.1:3000
issuers:
  - issuer: https://a.example
    audiences: [x]
  - issuer: https://a.example
    audiences: [y]
";
    let errors = parse_str(text).unwrap_err().0;
    let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(got, [(3, "listen"), (9, "issuers[1].issuer")], "{errors:?}");
}

/// Found by `fuzz/` (target `config`): a section whose only key is misspelt is empty once the
/// key is refused, and what it then lacks was reported without a line.
#[test]
fn what_a_section_lacks_is_reported_at_its_misspelt_key() {
    let text =
        "version: 1\nlisten:\n  htps: 127.0.0.1:8443\nupstream:\n  urll: http://127.0.0.1:3000\n";
    let errors = parse_str(text).unwrap_err().0;
    let mut got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    got.sort();
    assert_eq!(
        got,
        [
            (3, "listen"),
            (3, "listen.htps"),
            (5, "upstream.url"),
            (5, "upstream.urll"),
        ],
        "{errors:?}"
    );
}

#[test]
fn introspection_is_validated_with_lines_and_fields() {
    let text = "\
issuers:
  - issuer: https://idp.example
    audiences: [api]
    introspection:
      url: http://idp.example/introspect
      auth_method: client_secret_jwt
      cache_ttl: soon
  - issuer: https://b.example
    audiences: [api]
    introspection:
      client_id: gatehouse
      client_secret: { env: GATEHOUSE_TEST_INTROSPECTION_SECRET_UNSET }
";
    let errors = full(text).unwrap_err().0;
    let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (11, "issuers[0].introspection.client_id"),
            (11, "issuers[0].introspection.client_secret"),
            (11, "issuers[0].introspection.url"),
            (12, "issuers[0].introspection.auth_method"),
            (13, "issuers[0].introspection.cache_ttl"),
            (18, "issuers[1].introspection.client_secret"),
        ],
        "{}",
        ConfigErrors(errors.clone())
    );
    assert!(
        errors[3].message.contains("client_secret_post"),
        "{}",
        errors[3]
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    let valid = format!(
        "\
issuers:
  - issuer: https://idp.example
    audiences: [api]
    introspection:
      client_id: gatehouse
      client_secret: {{ file: {} }}
  - issuer: https://b.example
    audiences: [api]
    introspection:
      url: https://b.example/introspect
      client_id: gatehouse
      client_secret: {{ file: {} }}
      auth_method: client_secret_post
      cache_ttl: 2m
      timeout: 1500ms
  - issuer: https://c.example
    audiences: [api]
",
        dir.path().join("secret").display(),
        dir.path().join("secret").display()
    );
    let ok = full(&valid).unwrap();
    let discovered = ok.issuers[0].introspection.as_ref().unwrap();
    assert_eq!(discovered.endpoint, IntrospectionEndpoint::Discovery);
    assert_eq!(discovered.auth_method, ClientAuthMethod::Basic);
    assert_eq!(discovered.cache_ttl, Duration::from_secs(60));
    assert_eq!(discovered.timeout, Duration::from_secs(5));
    let explicit = ok.issuers[1].introspection.as_ref().unwrap();
    assert_eq!(
        explicit.endpoint,
        IntrospectionEndpoint::Url("https://b.example/introspect".into())
    );
    assert_eq!(explicit.auth_method, ClientAuthMethod::Post);
    assert_eq!(explicit.cache_ttl, Duration::from_secs(120));
    assert_eq!(explicit.timeout, Duration::from_millis(1500));
    assert!(ok.issuers[2].introspection.is_none());
    // The secret is never printed with the settings.
    assert!(!format!("{explicit:?}").contains("s3cret"));
}

#[test]
fn upstream_protocol_and_grpc_health() {
    let config = parse_str("version: 1\nlisten:\n  http: 127.0.0.1:8080\nupstream:\n  url: unix:/run/app.sock\n  protocol: h2c\n  health: grpc\n  max_streams_per_connection: 10\n").unwrap();
    assert_eq!(config.upstream.protocol, UpstreamProtocol::H2c);
    assert_eq!(config.upstream.health, UpstreamHealth::Grpc);
    assert_eq!(config.upstream.max_streams_per_connection, 10);
    let defaults = full("").unwrap();
    assert_eq!(defaults.upstream.protocol, UpstreamProtocol::Http1);
    assert_eq!(defaults.upstream.health, UpstreamHealth::None);
    assert_eq!(defaults.upstream.max_streams_per_connection, 100);

    let errors = parse_str("version: 1\nlisten:\n  http: 127.0.0.1:8080\nupstream:\n  url: http://127.0.0.1:3000\n  protocol: h2\n  health: grpc\n  max_streams_per_connection: 0\n").unwrap_err();
    let text = errors.to_string();
    assert!(
        text.contains(":6:13: upstream.protocol: `h2` is not `http1` or `h2c`"),
        "{text}"
    );
    assert!(
        text.contains(":7:11: upstream.health: `grpc` needs `upstream.protocol: h2c`"),
        "{text}"
    );
    assert!(
        text.contains("upstream.max_streams_per_connection: must be at least 1"),
        "{text}"
    );
}

#[test]
fn client_auth_is_read_with_defaults() {
    use crate::config::cert_rules::SubjectSource;
    let config = tls_with("  client_auth:\n    ca_file: clients.pem\n").unwrap();
    let c = config.tls.unwrap().client_auth.unwrap();
    assert_eq!(c.ca_file, Path::new("/etc/gatehouse/clients.pem"));
    assert_eq!(c.mode, ClientAuthMode::Optional);
    assert_eq!(
        c.rules.subject,
        [
            SubjectSource::UriSan,
            SubjectSource::DnsSan,
            SubjectSource::Cn
        ]
    );
    assert!(!c.forward_client_cert);
    let config = tls_with(
        "  client_auth:\n    ca_file: c.pem\n    mode: required\n    subject: [cn, dns_san]\n    \
         roles:\n      - { subject: \"*.svc\", roles: [a, b] }\n    forward_client_cert: true\n",
    )
    .unwrap();
    let c = config.tls.unwrap().client_auth.unwrap();
    assert_eq!(c.mode, ClientAuthMode::Required);
    assert_eq!(c.rules.subject, [SubjectSource::Cn, SubjectSource::DnsSan]);
    assert_eq!(c.rules.roles[0].roles, ["a", "b"]);
    assert!(c.rules.roles[0].pattern.matches("x.svc"));
    assert!(c.forward_client_cert);
}

#[test]
fn bad_client_auth_names_line_and_field() {
    let errors = tls_with(
        "  client_auth:\n    mode: sometimes\n    subject: [uri_san, email, uri_san]\n    \
         roles:\n      - { subject: \"**\", roles: [\"a,b\"] }\n      - { roles: [x] }\n",
    )
    .unwrap_err()
    .0;
    let fields: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    for expected in [
        (9, "tls.client_auth.mode"),
        (10, "tls.client_auth.subject[1]"),
        (10, "tls.client_auth.subject[2]"),
        (12, "tls.client_auth.roles[0].roles[0]"),
        (12, "tls.client_auth.roles[0].roles"),
        (9, "tls.client_auth.roles[1].subject"),
        (9, "tls.client_auth.ca_file"),
    ] {
        assert!(
            fields.contains(&expected),
            "{expected:?} in {errors}",
            errors = ConfigErrors(errors.clone())
        );
    }
}

#[test]
fn the_assertion_needs_an_audience_and_whole_seconds() {
    let config = full("identity:\n  assertion:\n    audience: app\n").unwrap();
    let a = config.assertion.unwrap();
    assert_eq!(a.header, "x-gatehouse-assertion");
    assert_eq!(a.issuer, "gatehouse");
    assert_eq!(a.ttl, Duration::from_secs(60));
    assert!(a.key_file.is_none() && !a.publish);
    let errors = full("identity:\n  assertion:\n    ttl: 1500ms\n    header: \"a b\"\n")
        .unwrap_err()
        .0;
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "identity.assertion.audience",
            "identity.assertion.ttl",
            "identity.assertion.header",
        ],
        "{}",
        ConfigErrors(errors.clone())
    );
    let errors =
        full("identity:\n  assertion:\n    audience: app\n    key_file: /nonexistent/k.pem\n")
            .unwrap_err()
            .0;
    assert_eq!(errors[0].field, "identity.assertion.key_file");
    assert_eq!(errors[0].line, 10);
}

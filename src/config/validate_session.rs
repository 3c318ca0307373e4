//! Validation of the session store: `session.store` and `session.redis`. Nothing connects to
//! Redis here (`gatehouse check` must work without it); the URL is parsed, files are read.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::raw;
use super::validate::Validator;
use super::{RedisSettings, SessionStore};
use crate::secret::{SecretSource, TextSource};

impl Validator<'_> {
    pub(super) fn session_store(
        &mut self,
        store: Option<Spanned<String>>,
        redis: Option<raw::RawRedis>,
    ) -> SessionStore {
        let redis_wanted = match &store {
            None => false,
            Some(s) if s.value == "cookie" => false,
            Some(s) if s.value == "redis" => true,
            Some(s) => {
                self.error(
                    &s.referenced,
                    "session.store",
                    "must be `cookie` or `redis`",
                );
                return SessionStore::Cookie;
            }
        };
        match (redis_wanted, redis) {
            (false, None) => SessionStore::Cookie,
            (false, Some(_)) => {
                self.missing(
                    "session.store",
                    "must be `redis` when a `session.redis` section is given (the default store is the cookie)",
                );
                SessionStore::Cookie
            }
            (true, None) => {
                self.missing(
                    "session.redis",
                    "is required with `store: redis` (at least `url`)",
                );
                SessionStore::Cookie
            }
            (true, Some(raw)) => match self.redis(raw) {
                Some(settings) => SessionStore::Redis(settings),
                None => SessionStore::Cookie,
            },
        }
    }

    fn redis(&mut self, raw: raw::RawRedis) -> Option<RedisSettings> {
        for (key, given) in [("sentinel", &raw.sentinel), ("cluster", &raw.cluster)] {
            if let Some(given) = given {
                self.error(
                    &given.referenced,
                    &format!("session.redis.{key}"),
                    "is not supported yet: give `url` one Redis primary (for failover, an address that follows the primary, such as a Kubernetes Service)",
                );
            }
        }
        let Some(url) = raw.url else {
            self.missing(
                "session.redis.url",
                "is required, e.g. `redis://127.0.0.1:6379`",
            );
            return None;
        };
        let url = self.text(url, "session.redis.url")?;
        let username = raw
            .username
            .and_then(|u| self.text(u, "session.redis.username"));
        let password = raw
            .password
            .and_then(|p| self.secret(p, "session.redis.password"));
        let key_prefix = match raw.key_prefix {
            None => "gatehouse:".to_owned(),
            Some(prefix) => {
                let valid =
                    prefix.value.len() <= 64 && prefix.value.bytes().all(|b| b.is_ascii_graphic());
                if !valid {
                    self.error(
                        &prefix.referenced,
                        "session.redis.key_prefix",
                        "use at most 64 printable characters without spaces",
                    );
                }
                prefix.value
            }
        };
        let timeout = self.duration(
            raw.timeout,
            "session.redis.timeout",
            Duration::from_millis(500),
        );
        if timeout.is_zero() {
            self.missing("session.redis.timeout", "must be more than zero");
        }
        let ca_file = raw.ca_file.map(|f| {
            let path = self.path(&f.value);
            if let Err(e) = std::fs::metadata(&path) {
                self.error(
                    &f.referenced,
                    "session.redis.ca_file",
                    format!("cannot read {}: {e}", path.display()),
                );
            }
            path
        });
        Some(RedisSettings {
            url,
            username,
            password,
            key_prefix,
            timeout,
            ca_file,
        })
    }

    /// A literal or a `{file}`/`{env}` value. A Redis URL is checked here, from whichever
    /// source, without connecting.
    pub(super) fn text(&mut self, raw: Spanned<raw::RawText>, field: &str) -> Option<TextSource> {
        let at = raw.referenced;
        let source = match raw.value {
            raw::RawText::Literal(value) => TextSource::Literal(value),
            raw::RawText::Secret(raw::RawSecretPlain {
                file: Some(file),
                env: None,
            }) => TextSource::Secret(SecretSource::File(self.path(&file))),
            raw::RawText::Secret(raw::RawSecretPlain {
                file: None,
                env: Some(env),
            }) => TextSource::Secret(SecretSource::Env(env)),
            raw::RawText::Secret(_) => {
                self.error(&at, field, "set exactly one of `file` or `env`");
                return None;
            }
        };
        match source.read() {
            Err(problem) => self.error(&at, field, problem),
            Ok(url) if field.ends_with(".url") => {
                if let Err(problem) = check_redis_url(url.expose()) {
                    self.error(&at, field, problem);
                }
            }
            Ok(_) => {}
        }
        Some(source)
    }
}

/// Checks a Redis URL without connecting: `redis://` or `rediss://`, parsable.
fn check_redis_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("must start with `redis://` or `rediss://` (TLS)".into());
    }
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(|_| ())
        .map_err(|e| format!("is not a valid Redis URL: {e}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Overrides, SessionStore, parse};
    use crate::secret::{SecretSource, TextSource};

    /// Errors (other than the unset secret's) of a config with login and `lines` under
    /// `session:`, as (line, field, message).
    fn errors(lines: &str) -> Vec<(u64, String, String)> {
        let text = format!(
            "version: 1
listen:
  http: 127.0.0.1:8080
upstream:
  url: http://127.0.0.1:3000
policies: policies/
login:
  issuer: https://idp.example
  client_id: app
  redirect_url: https://app.example/oauth2/callback
session:
  secrets: [{{ env: GATEHOUSE_TEST_UNSET_SECRET }}]
{lines}"
        );
        super::super::errors_but_secrets(&text)
    }

    #[test]
    fn the_cookie_store_is_the_default_and_redis_needs_a_url() {
        let got = errors("  store: redis\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, "session.redis");
        let got = errors("  store: memcached\n");
        assert_eq!((got[0].0, got[0].1.as_str()), (13, "session.store"));
        let got = errors("  redis: { url: redis://127.0.0.1 }\n");
        assert_eq!(got[0].1, "session.store", "{got:?}");
        let got = errors("  store: redis\n  redis: { url: http://127.0.0.1:6379 }\n");
        assert_eq!((got[0].0, got[0].1.as_str()), (14, "session.redis.url"));
        assert!(got[0].2.contains("redis://"), "{got:?}");
        let got = errors(
            "  store: redis\n  redis: { url: redis://127.0.0.1, timeout: 0s, key_prefix: 'a b' }\n",
        );
        let fields: Vec<&str> = got.iter().map(|e| e.1.as_str()).collect();
        assert!(fields.contains(&"session.redis.timeout"), "{got:?}");
        assert!(fields.contains(&"session.redis.key_prefix"), "{got:?}");
        let got = errors("  store: redis\n  redis: { url: redis://127.0.0.1, sentinel: x }\n");
        assert_eq!(
            (got[0].0, got[0].1.as_str()),
            (14, "session.redis.sentinel"),
            "{got:?}"
        );
        assert!(got[0].2.contains("not supported yet"), "{got:?}");
    }

    #[test]
    fn redis_settings_read_from_literals_files_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        std::fs::write(&url, "redis://:pw@127.0.0.1:6380/2\n").unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "pw\n").unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "a-session-secret-of-at-least-32-characters").unwrap();
        let text = format!(
            "version: 1
listen:
  http: 127.0.0.1:8080
upstream:
  url: http://127.0.0.1:3000
policies: policies/
login:
  issuer: https://idp.example
  client_id: app
  redirect_url: https://app.example/oauth2/callback
  pass_access_token: true
session:
  secrets: [{{ file: {secret} }}]
  store: redis
  redis:
    url: {{ file: {url} }}
    username: gatehouse
    password: {{ file: {password} }}
    key_prefix: 'orders:'
    timeout: 250ms
",
            secret = secret.display(),
            url = url.display(),
            password = password.display(),
        );
        let config = parse(&text, Path::new("g.yaml"), &Overrides::default()).unwrap();
        assert!(config.login[0].pass_access_token);
        let SessionStore::Redis(redis) = config.session.unwrap().store else {
            panic!("redis store");
        };
        assert_eq!(redis.url, TextSource::Secret(SecretSource::File(url)));
        assert_eq!(
            redis.username,
            Some(TextSource::Literal("gatehouse".into()))
        );
        assert_eq!(redis.password, Some(SecretSource::File(password)));
        assert_eq!(redis.key_prefix, "orders:");
        assert_eq!(redis.timeout, std::time::Duration::from_millis(250));
        // A URL file that holds no Redis URL is refused at start, at the line of `url`.
        std::fs::write(dir.path().join("url"), "http://nope\n").unwrap();
        let errors = parse(&text, Path::new("g.yaml"), &Overrides::default())
            .unwrap_err()
            .0;
        assert_eq!(
            (errors[0].line, errors[0].field.as_str()),
            (16, "session.redis.url"),
            "{errors:?}"
        );
    }

    #[test]
    fn urls_are_checked_without_connecting() {
        assert!(super::check_redis_url("redis://127.0.0.1:6379").is_ok());
        assert!(super::check_redis_url("rediss://redis.example.com:6380/2").is_ok());
        assert!(super::check_redis_url("redis://:pw@127.0.0.1/0").is_ok());
        for bad in [
            "http://127.0.0.1:6379",
            "127.0.0.1:6379",
            "unix:/run/redis.sock",
            "",
        ] {
            assert!(super::check_redis_url(bad).is_err(), "{bad}");
        }
    }
}

//! The Redis session store: the cookie carries a ticket (`<id>.<key>`, 128 random bits each),
//! Redis holds the session sealed under a key derived from the ticket's `key`, which only the
//! cookie carries. Someone who reads Redis learns no token and can forge nothing; someone who
//! steals a cookie has what a cookie always gave, until sign-out deletes the entry.
//!
//! Layout, under `key_prefix`:
//! - `session:<id>`: the sealed session, expiring when the session ends;
//! - `sub:<tag>` and `sid:<tag>`: sets of session ids by subject and by the provider's session
//!   id, for back-channel logout. Tags are HMACs of the value under a key derived from the
//!   session secrets, so Redis never holds a user id in the clear either;
//! - `lock:<id>`: the short lease of the replica that is refreshing the session;
//! - `jti:<hash>`: logout tokens already used.
//!
//! Every call is bounded by `timeout`; a failure or timeout is [`StoreError`], which the login
//! turns into 503, never into a sign-out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Pipeline};

use crate::config::RedisSettings;
use crate::telemetry;

/// Multiplexed connections kept open; calls are spread over them.
const CONNECTIONS: usize = 2;

/// The Redis store could not answer: down, slow, refusing our credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the session store is unavailable: {0}")]
pub struct StoreError(String);

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A session's ticket, as the cookie carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Names the Redis entry; 32 hex digits.
    pub id: String,
    /// Opens it; 16 bytes that never leave the cookie.
    pub key: [u8; 16],
}

impl Ticket {
    /// A new random ticket; `None` if the system's generator fails.
    pub fn new() -> Option<Self> {
        use aws_lc_rs::rand::SecureRandom;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let (mut id, mut key) = ([0u8; 16], [0u8; 16]);
        rng.fill(&mut id).ok()?;
        rng.fill(&mut key).ok()?;
        Some(Self { id: hex(&id), key })
    }

    /// Parses `<id>.<key>` strictly: 32 lower-case hex digits on each side.
    pub fn parse(value: &str) -> Option<Self> {
        let (id, key) = value.split_once('.')?;
        let lower_hex = |s: &str| {
            s.len() == 32
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(id) || !lower_hex(key) {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(key.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self {
            id: id.to_owned(),
            key: bytes,
        })
    }

    pub fn encode(&self) -> String {
        format!("{}.{}", self.id, hex(&self.key))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Which index a session is listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Subject,
    ProviderSession,
}

impl Index {
    fn name(self) -> &'static str {
        match self {
            Self::Subject => "sub",
            Self::ProviderSession => "sid",
        }
    }
}

pub struct RedisStore {
    settings: RedisSettings,
    connections: ArcSwap<Vec<ConnectionManager>>,
    next: AtomicUsize,
    healthy: AtomicBool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.settings.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Sets up the connections without connecting: Gatehouse starts (and serves bearer routes)
    /// while Redis is down, and connects when it returns.
    pub fn new(settings: RedisSettings) -> Result<Arc<Self>, String> {
        let connections = connect(&settings)?;
        Ok(Arc::new(Self {
            settings,
            connections: ArcSwap::from_pointee(connections),
            next: AtomicUsize::new(0),
            healthy: AtomicBool::new(false),
        }))
    }

    /// Builds new connections from the current password and URL files (after a rotation);
    /// the old ones close when their last call ends.
    pub fn reconnect(&self) -> Result<(), String> {
        self.connections.store(Arc::new(connect(&self.settings)?));
        Ok(())
    }

    /// The files whose change means new credentials.
    pub fn credential_files(&self) -> Vec<std::path::PathBuf> {
        let s = &self.settings;
        [
            s.url.file(),
            s.username.as_ref().and_then(|u| u.file()),
            s.password.as_ref().and_then(|p| p.file()),
            s.ca_file.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(std::path::Path::to_path_buf)
        .collect()
    }

    /// Did the last call (or ping) succeed?
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Pings every second, so that `/readyz` follows Redis going away and coming back even
    /// when no session request is made.
    pub async fn run_health(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let _: Result<String, _> = self.query("PING", &redis::cmd("PING")).await;
        }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.settings.key_prefix)
    }

    pub fn session_key(&self, id: &str) -> String {
        self.key("session", id)
    }

    fn index_key(&self, index: Index, tag: &str) -> String {
        self.key(index.name(), tag)
    }

    /// The sealed session, `None` when there is none (ended, signed out, expired).
    pub async fn load(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(self.session_key(id));
        self.query("GET", &get).await
    }

    /// Stores a new session for `ttl` and lists it in its indexes (which live as long as the
    /// longest session in them).
    pub async fn create(
        &self,
        id: &str,
        sealed: &[u8],
        ttl: Duration,
        indexes: &[(Index, String)],
    ) -> Result<(), StoreError> {
        let ttl_ms = millis(ttl);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.session_key(id))
            .arg(sealed)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        for (index, tag) in indexes {
            let key = self.index_key(*index, tag);
            pipe.cmd("SADD").arg(&key).arg(id).ignore();
            // GT: an index never expires before the longest session in it.
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).arg("GT").ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).arg("NX").ignore();
        }
        self.pipeline("create", &pipe).await
    }

    /// Replaces a session that still exists (XX: a session signed out meanwhile stays gone).
    /// Returns false when it no longer exists.
    pub async fn replace(
        &self,
        id: &str,
        sealed: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.session_key(id))
            .arg(sealed)
            .arg("PX")
            .arg(millis(ttl))
            .arg("XX");
        let answer: Option<String> = self.query("SET", &set).await?;
        Ok(answer.is_some())
    }

    /// Deletes sessions by id.
    pub async fn delete(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut del = redis::cmd("DEL");
        for id in ids {
            del.arg(self.session_key(id));
        }
        let _: i64 = self.query("DEL", &del).await?;
        Ok(())
    }

    /// Deletes every session listed under any of `tags` in `index`, and the index entries.
    /// Returns how many sessions there were.
    pub async fn delete_listed(&self, index: Index, tags: &[String]) -> Result<usize, StoreError> {
        let mut ids: Vec<String> = Vec::new();
        for tag in tags {
            let mut members = redis::cmd("SMEMBERS");
            members.arg(self.index_key(index, tag));
            let listed: Vec<String> = self.query("SMEMBERS", &members).await?;
            ids.extend(listed);
        }
        ids.sort_unstable();
        ids.dedup();
        let mut existing = 0;
        if !ids.is_empty() {
            let mut del = redis::cmd("DEL");
            for id in &ids {
                del.arg(self.session_key(id));
            }
            existing = self.query::<i64>("DEL", &del).await?;
        }
        let mut del = redis::cmd("DEL");
        for tag in tags {
            del.arg(self.index_key(index, tag));
        }
        let _: i64 = self.query("DEL", &del).await?;
        Ok(usize::try_from(existing).unwrap_or(0))
    }

    /// Takes the refresh lease of a session for `lease`; false when another holder has it.
    pub async fn lock(&self, id: &str, holder: &str, lease: Duration) -> Result<bool, StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.key("lock", id))
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(millis(lease));
        let answer: Option<String> = self.query("SET", &set).await?;
        Ok(answer.is_some())
    }

    /// Gives the lease back, if it is still ours (it may have run out and gone to another).
    pub async fn unlock(&self, id: &str, holder: &str) -> Result<(), StoreError> {
        const SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                              return redis.call('del', KEYS[1]) else return 0 end";
        let mut eval = redis::cmd("EVAL");
        eval.arg(SCRIPT)
            .arg(1)
            .arg(self.key("lock", id))
            .arg(holder);
        let _: i64 = self.query("EVAL", &eval).await?;
        Ok(())
    }

    /// Records a one-time value (a logout token's `jti`) for `ttl`; false if already seen.
    pub async fn first_use(&self, hash: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(self.key("jti", hash))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let answer: Option<String> = self.query("SET", &set).await?;
        Ok(answer.is_some())
    }

    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let connections = self.connections.load();
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        connections
            .get(i % connections.len().max(1))
            .cloned()
            .ok_or_else(|| StoreError("no connection".into()))
    }

    async fn query<T: FromRedisValue>(
        &self,
        name: &'static str,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let mut connection = self.connection()?;
        let mut result =
            tokio::time::timeout(self.settings.timeout, cmd.query_async(&mut connection)).await;
        // A connection that failed (rather than timed out) may be the one still reconnecting
        // after Redis came back: the other may already work.
        if matches!(&result, Ok(Err(e)) if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal())
        {
            let mut other = self.connection()?;
            let left = self.settings.timeout.saturating_sub(started.elapsed());
            result = tokio::time::timeout(left, cmd.query_async(&mut other)).await;
        }
        self.finish(name, started, result)
    }

    async fn pipeline(&self, name: &'static str, pipe: &Pipeline) -> Result<(), StoreError> {
        let mut connection = self.connection()?;
        let started = Instant::now();
        let result =
            tokio::time::timeout(self.settings.timeout, pipe.query_async(&mut connection)).await;
        self.finish(name, started, result)
    }

    fn finish<T>(
        &self,
        name: &'static str,
        started: Instant,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        let (outcome, result) = match result {
            Ok(Ok(value)) => ("ok", Ok(value)),
            Ok(Err(e)) => ("error", Err(StoreError(e.to_string()))),
            Err(_) => ("timeout", Err(StoreError("timed out".into()))),
        };
        telemetry::redis_call(name, outcome, started.elapsed());
        let was = self.healthy.swap(result.is_ok(), Ordering::Relaxed);
        if was && let Err(error) = &result {
            tracing::warn!(%error, "Redis session store unavailable: session routes answer 503 until it returns");
        } else if !was && result.is_ok() {
            tracing::info!("Redis session store available");
        }
        result
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Opens lazy connections with the credentials as they are now.
fn connect(settings: &RedisSettings) -> Result<Vec<ConnectionManager>, String> {
    let url = settings.url.read()?;
    let mut info = redis::IntoConnectionInfo::into_connection_info(url.expose().as_str())
        .map_err(|e| format!("session.redis.url: {e}"))?;
    let mut redis_settings = info.redis_settings().clone();
    if let Some(username) = &settings.username {
        redis_settings = redis_settings.set_username(username.read()?.expose().clone());
    }
    if let Some(password) = &settings.password {
        redis_settings = redis_settings.set_password(password.read()?.expose().clone());
    }
    info = info.set_redis_settings(redis_settings);
    let client = match &settings.ca_file {
        Some(path) => {
            let root = std::fs::read(path).map_err(|e| {
                format!("session.redis.ca_file: cannot read {}: {e}", path.display())
            })?;
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                },
            )
        }
        None => redis::Client::open(info),
    }
    .map_err(|e| format!("session.redis: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.timeout))
        .set_response_timeout(Some(settings.timeout))
        .set_max_delay(Duration::from_secs(2));
    (0..CONNECTIONS)
        .map(|_| {
            ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                .map_err(|e| format!("session.redis: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_parse_strictly() {
        let ticket = Ticket::new().unwrap();
        let encoded = ticket.encode();
        assert_eq!(encoded.len(), 65);
        assert_eq!(Ticket::parse(&encoded), Some(ticket.clone()));
        assert_ne!(Ticket::new().unwrap(), ticket, "random");
        let good = "0123456789abcdef0123456789abcdef";
        for bad in [
            String::new(),
            good.to_owned(),
            format!("{good}."),
            format!(".{good}"),
            format!("{good}.{}", good.to_uppercase()),
            format!("{good}.{good}0"),
            format!("{good}.{good}.{good}"),
            format!("{}g.{good}", &good[..31]),
            format!("{good}.+{}", &good[1..]),
        ] {
            assert_eq!(Ticket::parse(&bad), None, "{bad}");
        }
    }
}

//! A real `redis-server` (Debian's) for the tests, on a free loopback port, with its data in a
//! temporary directory. It can require a password, speak only TLS, be frozen (SIGSTOP: a Redis
//! that accepts and never answers), stopped, and started again on the same port with the same
//! data (append-only file, fsync always), as a restarted Redis would be.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// How the server is started.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    pub password: Option<String>,
    /// Serve TLS only, with this certificate and key (and CA, for `ca_file`).
    pub tls: Option<(PathBuf, PathBuf)>,
}

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    options: RedisOptions,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    pub fn start(options: RedisOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A free port: bound, noted and released; redis-server takes it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self {
            port,
            dir,
            options,
            child: Mutex::new(None),
        };
        server.run();
        server
    }

    fn run(&self) {
        let mut command = Command::new("redis-server");
        command
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no", "--loglevel", "warning"]);
        match &self.options.tls {
            Some((cert, key)) => {
                command
                    .args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key)
                    .args(["--tls-auth-clients", "no"]);
            }
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
        }
        if let Some(password) = &self.options.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server from Debian's redis-server package (scripts/test installs it)");
        *self.child.lock().unwrap() = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&self) {
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not listen on {}", self.port);
    }

    /// `redis://` (or `rediss://localhost`) URL of the server, without credentials.
    pub fn url(&self) -> String {
        match self.options.tls {
            Some(_) => format!("rediss://localhost:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// A plain connection for the test's own look at the data (TCP servers only).
    pub fn connection(&self) -> redis::Connection {
        assert!(self.options.tls.is_none(), "inspect a plain-TCP server");
        let mut info = redis::IntoConnectionInfo::into_connection_info(self.url()).unwrap();
        if let Some(password) = &self.options.password {
            let settings = info.redis_settings().clone().set_password(password.clone());
            info = info.set_redis_settings(settings);
        }
        redis::Client::open(info)
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// Every key and its value (strings as bytes, sets sorted), for before/after comparisons.
    pub fn snapshot(&self) -> Vec<(String, Vec<Vec<u8>>)> {
        let mut connection = self.connection();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
        keys.sort();
        keys.into_iter()
            .map(|key| {
                let kind: String = redis::cmd("TYPE").arg(&key).query(&mut connection).unwrap();
                let value: Vec<Vec<u8>> = match kind.as_str() {
                    "string" => vec![redis::cmd("GET").arg(&key).query(&mut connection).unwrap()],
                    "set" => {
                        let mut members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                            .arg(&key)
                            .query(&mut connection)
                            .unwrap();
                        members.sort();
                        members
                    }
                    other => vec![other.as_bytes().to_vec()],
                };
                (key, value)
            })
            .collect()
    }

    pub fn keys(&self) -> Vec<String> {
        self.snapshot().into_iter().map(|(k, _)| k).collect()
    }

    fn signal(&self, name: &str) {
        let pid = self.child.lock().unwrap().as_ref().map(Child::id).unwrap();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Freezes the process: connections stay open, nothing is answered.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// Stops the server (its data stays on disk).
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the data it had.
    pub fn restart(&self) {
        self.stop();
        self.run();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! Secrets from files or environment variables, never inline, and never in logs.
//!
//! [`Secret`] wraps a value with a `Debug` that prints `[redacted]`, so a secret inside a
//! config struct cannot leak through `{:?}`.

use std::fmt;
use std::path::PathBuf;

/// A value that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file; surrounding whitespace (a trailing newline) is trimmed.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl SecretSource {
    /// Reads the secret now. Errors name the source, never the value.
    pub fn read(&self) -> Result<Secret<String>, String> {
        let value = match self {
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            Self::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set"))?,
        };
        self.trimmed(&value)
    }

    /// [`SecretSource::read`] without blocking the async runtime, for secrets read again on
    /// every use (so that a rotated file is picked up).
    pub async fn read_async(&self) -> Result<Secret<String>, String> {
        match self {
            Self::File(path) => {
                let value = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                self.trimmed(&value)
            }
            Self::Env(_) => self.read(),
        }
    }

    fn trimmed(&self, value: &str) -> Result<Secret<String>, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("{} is empty", self.describe()));
        }
        Ok(Secret::new(value.to_owned()))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => format!("file {}", path.display()),
            Self::Env(name) => format!("environment variable `{name}`"),
        }
    }
}

/// A setting written in the config file, or read like a secret (a URL that carries a
/// password, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextSource {
    Literal(String),
    Secret(SecretSource),
}

impl TextSource {
    /// The value now (a secret source is read again at every call).
    pub fn read(&self) -> Result<Secret<String>, String> {
        match self {
            Self::Literal(value) => Ok(Secret::new(value.clone())),
            Self::Secret(source) => source.read(),
        }
    }

    /// The file to watch for changes, if the value comes from one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Self::Secret(SecretSource::File(path)) => Some(path),
            _ => None,
        }
    }
}

impl SecretSource {
    /// The file to watch for changes, if the secret comes from one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Env(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }

    #[test]
    fn files_are_trimmed_and_empty_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "  value\n").unwrap();
        assert_eq!(
            SecretSource::File(file.clone()).read().unwrap().expose(),
            "value"
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(SecretSource::File(file).read().is_err());
        assert!(
            SecretSource::Env("GATEHOUSE_TEST_UNSET_VARIABLE".into())
                .read()
                .is_err()
        );
    }
}

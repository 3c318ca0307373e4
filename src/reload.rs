//! Watching files for changes by polling their contents.
//!
//! Polling works the same for a file edited in place, replaced by `mv`, or swapped through the
//! symlinks Kubernetes uses for mounted Secrets and ConfigMaps, where change notifications are
//! unreliable. The files watched here are small (certificates, keys, policies).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;

/// A set of files and a fingerprint of their contents.
#[derive(Debug)]
pub struct FileWatch {
    paths: Vec<PathBuf>,
    fingerprint: u64,
}

impl FileWatch {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        let fingerprint = fingerprint(&paths);
        Self { paths, fingerprint }
    }

    /// True once for each change of any file's contents (or presence) since the last call.
    pub fn changed(&mut self) -> bool {
        let now = fingerprint(&self.paths);
        let changed = now != self.fingerprint;
        self.fingerprint = now;
        changed
    }
}

/// A directory counts by the names and contents of the files in it, so adding, removing or
/// editing a file is a change.
fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.sort();
            for file in files {
                file.hash(&mut hasher);
                hash_file(&file, &mut hasher);
            }
        } else {
            hash_file(path, &mut hasher);
        }
    }
    hasher.finish()
}

fn hash_file(path: &std::path::Path, hasher: &mut DefaultHasher) {
    match std::fs::read(path) {
        Ok(bytes) => bytes.hash(hasher),
        Err(e) => e.kind().hash(hasher),
    }
}

/// Asks every watcher to reload now, whether or not its files changed (SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct Trigger(Arc<Notify>);

impl Trigger {
    pub fn fire(&self) {
        self.0.notify_waiters();
    }
}

/// Calls `on_change` whenever the watched files change, checking every `interval`, and
/// whenever `trigger` fires, until the returned task is aborted or the runtime stops.
pub fn spawn(
    mut watch: FileWatch,
    interval: Duration,
    trigger: &Trigger,
    mut on_change: impl FnMut() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let trigger = trigger.0.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if watch.changed() {
                        on_change();
                    }
                }
                () = trigger.notified() => {
                    watch.changed();
                    on_change();
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_edits_removal_and_return() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pem");
        std::fs::write(&path, "one").unwrap();
        let mut watch = FileWatch::new(vec![path.clone()]);
        assert!(!watch.changed());
        std::fs::write(&path, "two").unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());
        std::fs::remove_file(&path).unwrap();
        assert!(watch.changed());
        std::fs::write(&path, "two").unwrap();
        assert!(watch.changed());
    }

    #[test]
    fn a_directory_changes_when_a_file_is_added_or_edited() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "one").unwrap();
        let mut watch = FileWatch::new(vec![dir.path().to_owned()]);
        assert!(!watch.changed());
        std::fs::write(dir.path().join("b.yaml"), "new").unwrap();
        assert!(watch.changed());
        std::fs::write(dir.path().join("a.yaml"), "edited").unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());
    }
}

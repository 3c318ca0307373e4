//! The assertion keys over time: the key that signs, a new key waiting to sign, and retired
//! keys still published. Pure: time comes in as an argument.
//!
//! A new key is published a full ttl before it signs, so an app that fetched the JWKS up to a
//! ttl ago (or caches it for the `max-age` we send, half a ttl) knows it before it sees it.
//! The key it replaces stays published for a ttl after its last signature, which is as long as
//! anything it signed can still be valid.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Key;

#[derive(Debug)]
pub struct Ring {
    ttl: Duration,
    active: Arc<Key>,
    /// The next key and the moment it starts signing.
    next: Option<(Arc<Key>, Instant)>,
    /// Keys that signed before, and until when they are published.
    retired: Vec<(Arc<Key>, Instant)>,
}

impl Ring {
    pub fn new(key: Arc<Key>, ttl: Duration) -> Self {
        Self {
            ttl,
            active: key,
            next: None,
            retired: Vec::new(),
        }
    }

    pub fn active(&self) -> &Arc<Key> {
        &self.active
    }

    /// Moves time on to `now`: the next key takes over once its wait is over, retired keys
    /// go once their last assertion has expired. True when the signing key changed.
    pub fn advance(&mut self, now: Instant) -> bool {
        self.retired.retain(|(_, until)| *until > now);
        match self.next.take() {
            Some((key, from)) if from <= now => {
                let old = std::mem::replace(&mut self.active, key);
                self.retired.push((old, from + self.ttl));
                true
            }
            waiting => {
                self.next = waiting;
                false
            }
        }
    }

    /// Publishes `key` now; it signs from `now + ttl`. A key already known changes nothing; a
    /// key waiting to sign that never signed is replaced. True when `key` is new.
    pub fn rotate(&mut self, key: Arc<Key>, now: Instant) -> bool {
        self.advance(now);
        let known = std::iter::once(&self.active)
            .chain(self.next.as_ref().map(|(k, _)| k))
            .any(|k| k.kid() == key.kid());
        if known {
            return false;
        }
        self.next = Some((key, now + self.ttl));
        true
    }

    /// Every key an app may need: the signing one, the next one, and the retired ones.
    pub fn published(&self) -> impl Iterator<Item = &Arc<Key>> {
        std::iter::once(&self.active)
            .chain(self.next.as_ref().map(|(k, _)| k))
            .chain(self.retired.iter().map(|(k, _)| k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kids(ring: &Ring) -> Vec<String> {
        ring.published().map(|k| k.kid().to_owned()).collect()
    }

    #[test]
    fn a_new_key_is_published_a_full_ttl_before_it_signs() {
        let ttl = Duration::from_secs(60);
        let t0 = Instant::now();
        let old = Arc::new(Key::generate().unwrap());
        let new = Arc::new(Key::generate().unwrap());
        let (old_kid, new_kid) = (old.kid().to_owned(), new.kid().to_owned());
        let mut ring = Ring::new(old, ttl);
        assert!(ring.rotate(new.clone(), t0));
        assert!(!ring.rotate(new, t0), "the same key twice is one rotation");
        assert_eq!(kids(&ring), [old_kid.clone(), new_kid.clone()]);
        assert!(!ring.advance(t0 + ttl - Duration::from_millis(1)));
        assert_eq!(ring.active().kid(), old_kid, "not before a full ttl");
        assert!(ring.advance(t0 + ttl));
        assert_eq!(ring.active().kid(), new_kid);
        assert_eq!(kids(&ring), [new_kid.clone(), old_kid.clone()]);
        ring.advance(t0 + 2 * ttl - Duration::from_millis(1));
        assert_eq!(
            kids(&ring).len(),
            2,
            "the old key outlives its last assertion"
        );
        ring.advance(t0 + 2 * ttl);
        assert_eq!(kids(&ring), [new_kid]);
    }

    #[test]
    fn a_key_that_never_signed_is_replaced() {
        let ttl = Duration::from_secs(10);
        let t0 = Instant::now();
        let a = Arc::new(Key::generate().unwrap());
        let b = Arc::new(Key::generate().unwrap());
        let c = Arc::new(Key::generate().unwrap());
        let c_kid = c.kid().to_owned();
        let mut ring = Ring::new(a, ttl);
        ring.rotate(b, t0);
        ring.rotate(c, t0 + Duration::from_secs(5));
        assert_eq!(kids(&ring).len(), 2);
        ring.advance(t0 + ttl);
        assert_ne!(ring.active().kid(), c_kid, "c waits its own full ttl");
        ring.advance(t0 + Duration::from_secs(15));
        assert_eq!(ring.active().kid(), c_kid);
    }
}

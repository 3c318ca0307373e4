//! File descriptors as a budget. A client connection holds one descriptor, and a request on
//! it one more for its connection to the app (pooled, so an idle keep-alive holds only its
//! own); the rest of the process (listeners, epoll, the clients for JWKS, login,
//! introspection, Redis and OTLP, files being reloaded) needs a few more. Taking client
//! connections until the limit is reached means their requests then fail to reach the app
//! (502), so every connection is worse off than if some had waited in the kernel's accept
//! queue. So, at start: raise the soft `RLIMIT_NOFILE` to the hard one (nothing here uses
//! `select`, which is why the soft limit is low by default), keep a reserve, give a quarter of
//! the rest to connections to the app (more requests than that at once wait for one, within
//! `upstream.connect_timeout`) and take at most the other three quarters of client
//! connections at once, with a warning when that is below `limits.max_connections`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The descriptors left for everything but client connections and their upstream ones: a
/// quarter of the limit, at most 64.
fn reserve(limit: u64) -> u64 {
    (limit / 4).min(64)
}

/// How `limit` descriptors are shared out: client connections and connections to the app
/// (at least one of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Budget {
    pub connections: usize,
    pub upstream: usize,
}

pub(super) fn budget_for(limit: u64) -> Budget {
    let usable = limit.saturating_sub(reserve(limit));
    let upstream = (usable / 4).max(1);
    let connections = usable.saturating_sub(upstream).max(1);
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Budget {
        connections: size(connections),
        upstream: size(upstream),
    }
}

/// The process's descriptor limit, once raised as far as it may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limit {
    /// The soft limit now; `None` is unlimited.
    pub now: Option<u64>,
    /// The soft limit before, when it was raised.
    pub raised_from: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; a failure leaves it as it was.
pub(super) fn raise() -> Limit {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current == maximum || current.is_none() {
        return Limit {
            now: current,
            raised_from: None,
        };
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: maximum,
            maximum,
        },
    ) {
        Ok(()) => Limit {
            now: maximum,
            raised_from: current,
        },
        Err(error) => {
            tracing::debug!(%error, "could not raise the soft RLIMIT_NOFILE to the hard limit");
            Limit {
                now: current,
                raised_from: None,
            }
        }
    }
}

/// The budget under `limit`: client connections capped at `configured`
/// (`limits.max_connections`) or less, with a warning when the limit cannot serve that many.
/// Unlimited: no cap but `configured`, and as many connections to the app as it allows.
pub(super) fn budget(configured: usize, limit: Limit) -> Budget {
    if let Some(from) = limit.raised_from {
        tracing::debug!(from, to = ?limit.now, "raised the soft RLIMIT_NOFILE to the hard limit");
    }
    let Some(now) = limit.now else {
        return Budget {
            connections: configured,
            upstream: tokio::sync::Semaphore::MAX_PERMITS,
        };
    };
    let budget = budget_for(now);
    if budget.connections >= configured {
        return Budget {
            connections: configured,
            ..budget
        };
    }
    tracing::warn!(
        max_connections = configured,
        rlimit_nofile = now,
        taking = budget.connections,
        upstream_connections = budget.upstream,
        "the file descriptor limit (RLIMIT_NOFILE) leaves room for fewer connections than \
         limits.max_connections besides those to the app; taking at most this many at once, \
         further clients wait in the accept queue. Raise the limit (ulimit -n, LimitNOFILE=, \
         the container runtime's nofile) to take more"
    );
    budget
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(connections: usize, upstream: usize) -> Budget {
        Budget {
            connections,
            upstream,
        }
    }

    #[test]
    fn the_budget_leaves_a_reserve_and_a_quarter_for_the_app() {
        assert_eq!(budget_for(64), b(36, 12)); // reserve 16
        assert_eq!(budget_for(256), b(144, 48)); // reserve 64
        assert_eq!(budget_for(20_000), b(14_952, 4_984));
        assert_eq!(budget_for(1_048_576), b(786_384, 262_128));
        // Never nothing: one of each even when the limit leaves no room.
        assert_eq!(budget_for(0), b(1, 1));
        assert_eq!(budget_for(3), b(2, 1));
    }

    #[test]
    fn connections_are_capped_by_the_configured_number_or_a_lower_limit() {
        let limit = |now| Limit {
            now,
            raised_from: None,
        };
        assert_eq!(budget(4096, limit(Some(1_048_576))), b(4096, 262_128));
        assert_eq!(
            budget(4096, limit(None)),
            b(4096, tokio::sync::Semaphore::MAX_PERMITS)
        );
        assert_eq!(budget(4096, limit(Some(256))), b(144, 48));
        assert_eq!(budget(50, limit(Some(256))), b(50, 48));
    }
}

//! Following a new primary. Behind HAProxy (or a DNS name) that moves to the new primary in a
//! failover, a pooled connection can end up on a node that is now a read-only standby: for a
//! moment after a switchover the proxy still routes new connections to the demoted node. Every
//! write on such a connection fails with `25006` (read_only_sql_transaction), and a pool that
//! keeps it fails writes until the connection ages out.
//!
//! The first read-only error raises a fence. Every pooled connection opened before the fence is
//! closed instead of being handed out or put back, so the pool dials again and reaches whatever
//! the address leads to now. Connections opened after it are kept. The fence is one per process:
//! a server has one pool, and in a process with several (tests) a raise only costs reconnects.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// SQLSTATE of a write attempted on a read-only session, as every write on a standby gets.
pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// Milliseconds since `epoch()` at which the fence was last raised; 0 when never.
static FENCE_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the epoch, at least 1 so that 0 keeps meaning "never raised".
fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Records that a connection reached a read-only node: every connection opened until now is
/// suspect.
pub fn raise_fence() {
    let now = now_ms();
    let previous = FENCE_MS.fetch_max(now, Ordering::Relaxed);
    // One line per event, not one per failed write of the same event.
    if previous == 0 || now.saturating_sub(previous) > 5_000 {
        tracing::warn!(
            "database session is read-only (a demoted primary?): dropping pooled connections"
        );
    }
}

/// Whether a pooled connection of this age was opened at or before the fence, and so must be
/// closed rather than used.
pub fn predates_fence(age: Duration) -> bool {
    let fence = FENCE_MS.load(Ordering::Relaxed);
    if fence == 0 {
        return false;
    }
    let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
    now_ms().saturating_sub(age_ms) <= fence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_opened_before_the_fence_are_dropped_and_later_ones_kept() {
        // Lets the epoch pass a few milliseconds so that "before the fence" exists.
        let _ = epoch();
        std::thread::sleep(Duration::from_millis(20));
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        raise_fence();
        std::thread::sleep(Duration::from_millis(5));
        let after = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(predates_fence(before.elapsed()), "opened before the fence");
        assert!(!predates_fence(after.elapsed()), "opened after the fence");
    }
}

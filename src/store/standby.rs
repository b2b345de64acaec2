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

/// Nanoseconds since `epoch()` at which the fence was last raised; 0 when never.
static FENCE_NS: AtomicU64 = AtomicU64::new(0);

/// A connection opened this soon after the fence still counts as opened before it. The fence
/// is raised right after a query on a freshly opened connection returns, a fraction of a
/// millisecond after it was opened, and a connection's age is read at another instant than the
/// clock here: the margin keeps such a connection on the dropped side. Erring that way costs
/// one reconnect; erring the other way hands out a read-only session (at millisecond
/// resolution that happened about once in fifteen failovers).
const MARGIN: Duration = Duration::from_millis(5);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds since the epoch, at least 1 so that 0 keeps meaning "never raised".
fn now_ns() -> u64 {
    nanos(epoch().elapsed()).max(1)
}

/// Records that a connection reached a read-only node: every connection opened until now is
/// suspect.
pub fn raise_fence() {
    let now = now_ns();
    let previous = FENCE_NS.fetch_max(now, Ordering::Relaxed);
    // One line per event, not one per failed write of the same event.
    if previous == 0 || now.saturating_sub(previous) > nanos(Duration::from_secs(5)) {
        tracing::warn!(
            "database session is read-only (a demoted primary?): dropping pooled connections"
        );
    }
}

/// Whether a pooled connection of this age was opened before the fence (or within `MARGIN`
/// after it), and so must be closed rather than used.
pub fn predates_fence(age: Duration) -> bool {
    let fence = FENCE_NS.load(Ordering::Relaxed);
    if fence == 0 {
        return false;
    }
    let opened = now_ns().saturating_sub(nanos(age));
    opened <= fence.saturating_add(nanos(MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fence is one per process: these tests take turns with it.
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn connections_opened_before_the_fence_are_dropped_and_later_ones_kept() {
        let _turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Lets the epoch pass a few milliseconds so that "before the fence" exists.
        let _ = epoch();
        std::thread::sleep(Duration::from_millis(20));
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        raise_fence();
        std::thread::sleep(MARGIN * 2);
        let after = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(predates_fence(before.elapsed()), "opened before the fence");
        assert!(!predates_fence(after.elapsed()), "opened after the fence");
    }

    #[test]
    fn a_connection_opened_a_fraction_of_a_millisecond_before_the_fence_is_dropped() {
        let _turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // As when a health probe opens a connection, asks it one question and raises the fence
        // on the answer: at millisecond resolution such a connection often passed as newer.
        let _ = epoch();
        std::thread::sleep(Duration::from_millis(3));
        for round in 0..200 {
            let opened = Instant::now();
            while opened.elapsed() < Duration::from_micros(150) {
                std::hint::spin_loop();
            }
            raise_fence();
            for _ in 0..3 {
                assert!(
                    predates_fence(opened.elapsed()),
                    "round {round}: opened 150 µs before the fence"
                );
                std::thread::sleep(Duration::from_micros(333));
            }
        }
    }
}

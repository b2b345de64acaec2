//! The one retry policy for database work: a conflict that a new attempt can clear (a unique-key
//! race with another replica, a serialization failure, a deadlock) is run again after a short,
//! jittered, growing pause; anything else is returned at once.

use std::{future::Future, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use sea_orm::DbErr;

use super::{DbFailure, classify};

/// Attempts in all, the first included.
pub const MAX_ATTEMPTS: usize = 8;

/// Runs `attempt` until it succeeds, fails with something a retry cannot clear, or has been
/// tried `MAX_ATTEMPTS` times (then its last error is returned).
pub async fn on_conflict<T, F, Fut>(attempt: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(1))
        .with_max_delay(Duration::from_millis(50))
        .with_max_times(MAX_ATTEMPTS - 1)
        .with_jitter();
    attempt
        .retry(policy)
        .when(|e| classify(e) == DbFailure::Retry)
        .notify(|_, pause| tracing::debug!(?pause, "conflict with a concurrent write; retrying"))
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sea_orm::{ConnectionTrait, Database};

    use super::*;

    /// A real unique-key violation, as a concurrent replica's insert would cause.
    async fn unique_violation() -> DbErr {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        db.execute_unprepared("CREATE TABLE t (k INTEGER UNIQUE); INSERT INTO t VALUES (1)")
            .await
            .expect("table");
        db.execute_unprepared("INSERT INTO t VALUES (1)")
            .await
            .expect_err("a duplicate")
    }

    #[tokio::test]
    async fn a_conflict_is_tried_again_until_it_clears() {
        let conflict = unique_violation().await;
        assert_eq!(classify(&conflict), DbFailure::Retry);
        let message = conflict.to_string();
        let tries = AtomicUsize::new(0);
        let r = on_conflict(|| async {
            if tries.fetch_add(1, Ordering::Relaxed) < 2 {
                Err(unique_violation().await)
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.expect("the third try succeeds"), 7, "{message}");
        assert_eq!(tries.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_conflict_that_never_clears_ends_after_the_last_attempt() {
        let tries = AtomicUsize::new(0);
        let r: Result<(), DbErr> = on_conflict(|| async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(unique_violation().await)
        })
        .await;
        assert!(r.is_err());
        assert_eq!(tries.load(Ordering::Relaxed), MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn an_error_a_retry_cannot_clear_is_returned_at_once() {
        let tries = AtomicUsize::new(0);
        let r: Result<(), DbErr> = on_conflict(|| async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(DbErr::Custom("not a conflict".into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(tries.load(Ordering::Relaxed), 1);
    }
}

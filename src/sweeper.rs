//! The sweeper: a background task that deletes expired records (SPEC §5).
//!
//! Before each run it writes the uses of sessions kept in memory (see
//! [`crate::session::RecentUses`]) whose stored deadline is near.
//! Each run walks the expiry index from its oldest entry up to `now`, in
//! batches of at most `batch` records per write transaction, so its cost
//! follows what expired rather than what is stored, and logins queued
//! behind it wait for one batch at most.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::Auth;
use crate::clock::Timestamp;
use crate::store::{StoreError, SweepReport};

/// Records looked at per write transaction: small enough (a few ms) that a
/// session check queued behind a batch barely notices it.
pub const BATCH: usize = 256;

/// Records per write transaction while the server is busy (well under a
/// millisecond of the writer thread's time).
pub const BUSY_BATCH: usize = 64;

/// Requests per second above which the server counts as busy.
pub const BUSY_RATE: f64 = 500.0;

/// How a sweep goes on after a batch that took `took` while `served`
/// requests were answered: the next batch's size, and how long to pause
/// first. An idle server is swept at full speed. A busy one in small
/// batches, each followed by a pause as long as it took: the writer thread
/// and request handling may share one core, and the operating system would
/// otherwise give the writer whole time slices (milliseconds) in which no
/// request is answered. Expired records are refused on sight (SPEC §5), so
/// a slower sweep only keeps garbage a little longer.
pub fn pace(batch: usize, served: u64, took: Duration) -> (usize, Option<Duration>) {
    let busy = served as f64 > BUSY_RATE * took.as_secs_f64();
    if busy {
        (BUSY_BATCH.min(batch), Some(took))
    } else {
        (batch, None)
    }
}

/// Runs one full sweep (as many batches as needed); returns the totals.
pub async fn sweep_once(auth: &Auth, batch: usize) -> Result<SweepReport, StoreError> {
    let started = std::time::Instant::now();
    let mut total = SweepReport::default();
    let mut size = batch;
    loop {
        let served_before = auth.metrics.requests_answered();
        let began = std::time::Instant::now();
        let r = auth.store.sweep(auth.now(), auth.policy.limits, size).await?;
        total.sessions += r.sessions;
        total.series += r.series;
        total.lockouts += r.lockouts;
        total.verifications += r.verifications;
        total.stale += r.stale;
        if !r.more {
            break;
        }
        let served = auth.metrics.requests_answered().saturating_sub(served_before);
        let pause;
        (size, pause) = pace(batch, served, began.elapsed());
        match pause {
            Some(d) => tokio::time::sleep(d).await,
            None => tokio::task::yield_now().await,
        }
    }
    let took = started.elapsed();
    auth.metrics.swept(&total, took);
    let took_ms = took.as_secs_f64() * 1000.0;
    if total.sessions + total.series + total.lockouts + total.verifications > 0 {
        tracing::info!(
            sessions = total.sessions,
            series = total.series,
            lockouts = total.lockouts,
            verifications = total.verifications,
            took_ms,
            "sweeper deleted expired records"
        );
    } else {
        tracing::debug!(took_ms, "sweeper found nothing expired");
    }
    Ok(total)
}

/// Sweeps every `interval` until `stop` changes.
pub async fn run(auth: Arc<Auth>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; start one interval after boot

    // Uses kept in memory count as written ones: those of sessions whose
    // stored deadline falls before the next sweep are written first (the
    // writes are queued ahead of the sweep's).
    let ahead = interval + Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        auth.save_recent_uses(auth.now().plus(ahead));
        if let Err(e) = sweep_once(&auth, BATCH).await {
            tracing::warn!("sweep failed: {e}");
        }
    }
    // A clean stop keeps every use (the server flushes the store next).
    auth.save_recent_uses(Timestamp(u64::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_server_is_swept_at_full_speed() {
        assert_eq!(pace(BATCH, 0, Duration::from_millis(3)), (BATCH, None));
        // A monitoring poll now and then is not load.
        assert_eq!(pace(BATCH, 1, Duration::from_millis(3)), (BATCH, None));
    }

    #[test]
    fn a_busy_server_gets_small_batches_and_a_pause_as_long_as_the_batch() {
        let took = Duration::from_millis(3);
        assert_eq!(pace(BATCH, 100, took), (BUSY_BATCH, Some(took)));
        // A caller's smaller batch is kept.
        assert_eq!(pace(8, 100, took), (8, Some(took)));
        // Back to full speed once the requests stop.
        assert_eq!(pace(BATCH, 0, Duration::from_micros(700)), (BATCH, None));
    }
}

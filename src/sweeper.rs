//! The sweeper: a background task that deletes expired records (SPEC §5).
//!
//! Each run walks the expiry index from its oldest entry up to `now`, in
//! batches of at most `batch` records per write transaction, so its cost
//! follows what expired rather than what is stored, and logins queued
//! behind it wait for one batch at most.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::Auth;
use crate::store::{StoreError, SweepReport};

/// Records looked at per write transaction: small enough (a few ms) that a
/// session check queued behind a batch barely notices it.
pub const BATCH: usize = 256;

/// Runs one full sweep (as many batches as needed); returns the totals.
pub async fn sweep_once(auth: &Auth, batch: usize) -> Result<SweepReport, StoreError> {
    let started = std::time::Instant::now();
    let mut total = SweepReport::default();
    loop {
        let r = auth.store.sweep(auth.now(), auth.policy.limits, batch).await?;
        total.sessions += r.sessions;
        total.series += r.series;
        total.lockouts += r.lockouts;
        total.verifications += r.verifications;
        total.stale += r.stale;
        if !r.more {
            break;
        }
        tokio::task::yield_now().await;
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
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if let Err(e) = sweep_once(&auth, BATCH).await {
            tracing::warn!("sweep failed: {e}");
        }
    }
}

//! The session timeout policy (SPEC §5), as pure functions of `now`, and
//! the uses of sessions not written yet.
//!
//! A session is valid while `now < created + absolute` and
//! `now < last_use + idle`. Every use slides `last_use`, but the new value
//! is only written when the stored one is at least the touch interval old,
//! so a busy session costs one write per interval, not one per request.
//! The uses in between are kept in memory ([`RecentUses`]) and count for
//! the idle timeout as written ones do; the sweeper writes those of
//! sessions whose stored deadline is near before it deletes anything, and
//! a clean stop writes them all.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::Timestamp;
use crate::config::Timeouts;
use crate::store::{Session, SessionLimits};
use crate::token::SessionKey;

/// The timeouts that decide whether a session is alive.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    /// Idle and absolute timeouts.
    pub limits: SessionLimits,
    /// How stale the stored last use may get before a use rewrites it.
    pub touch_interval: Duration,
}

/// What a use of a session at `now` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The session is over.
    Expired,
    /// The session is alive.
    Valid {
        /// When it ends if not used again (`X-Authd-Session-Expires`).
        expires: Timestamp,
        /// `Some(deadline)` if this use must be written, with the new sweep deadline.
        touch: Option<Timestamp>,
    },
}

impl SessionPolicy {
    /// The policy for the configured timeouts. Over a store `shared` by
    /// several processes, the touch interval is capped at a tenth of the
    /// idle timeout: the written last use is all the others know, so a
    /// session in steady use must be written well within its idle timeout.
    pub fn new(t: &Timeouts, shared: bool) -> Self {
        let touch_interval = if shared { t.touch_interval.min(t.idle / 10) } else { t.touch_interval };
        SessionPolicy { limits: SessionLimits { idle: t.idle, absolute: t.absolute }, touch_interval }
    }

    /// When a session created (or last used) at `now` ends.
    pub fn deadline_for_new(&self, now: Timestamp) -> Timestamp {
        now.plus(self.limits.idle.min(self.limits.absolute))
    }

    /// Judges a use of `s` at `now`, where `seen` is its latest use known
    /// (the stored `last_use`, or a later one not written yet). A passive
    /// use (background polling) never slides. A use is written when the
    /// stored last use is at least the touch interval old.
    pub fn judge(&self, s: &Session, seen: Timestamp, now: Timestamp, passive: bool) -> Verdict {
        let seen = seen.max(s.last_use);
        let absolute_end = s.created.plus(self.limits.absolute);
        if now >= absolute_end || now >= seen.plus(self.limits.idle) {
            return Verdict::Expired;
        }
        let last_use = if passive { seen } else { now.max(seen) };
        let expires = last_use.plus(self.limits.idle).min(absolute_end);
        let due = !passive && now.since(s.last_use) >= self.touch_interval && now > s.last_use;
        Verdict::Valid { expires, touch: due.then_some(expires) }
    }
}

/// The latest use of a session, and what is written of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Recent {
    /// The latest use.
    seen: Timestamp,
    /// The deadline of the latest write, stored or queued (the written last
    /// use plus the idle timeout, or the absolute end), where the sweeper
    /// would delete the session.
    filed: Timestamp,
    /// The absolute end.
    ends: Timestamp,
}

/// The latest use of each session used since the sweeper's last run,
/// written or not: memory per session in use, none per request.
pub struct RecentUses {
    shards: [Mutex<HashMap<SessionKey, Recent>>; 16],
}

impl Default for RecentUses {
    fn default() -> Self {
        RecentUses { shards: std::array::from_fn(|_| Mutex::new(HashMap::new())) }
    }
}

impl RecentUses {
    fn shard(&self, key: SessionKey) -> MutexGuard<'_, HashMap<SessionKey, Recent>> {
        let m = self.shards.get(usize::from(key.0[0] & 15)).unwrap_or(&self.shards[0]);
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Judges a use of `s` (stored under `key`) at `now` with its latest
    /// use in memory, and keeps this use in memory unless passive. A use
    /// that is written (the verdict's `touch`) is kept too, until the
    /// sweeper's next run: the write is queued, and until it commits the
    /// stored record (and the store's read cache) still has the old one.
    pub fn use_session(
        &self,
        policy: &SessionPolicy,
        key: SessionKey,
        s: &Session,
        now: Timestamp,
        passive: bool,
    ) -> Verdict {
        let mut shard = self.shard(key);
        let kept = shard.get(&key).copied();
        let seen = kept.map_or(s.last_use, |r| r.seen);
        let verdict = policy.judge(s, seen, now, passive);
        // The deadline of the latest write: this use's, else the later of
        // the stored one and one queued before.
        let filed = match verdict {
            Verdict::Expired => {
                shard.remove(&key);
                return verdict;
            }
            Verdict::Valid { touch: Some(deadline), .. } => deadline,
            Verdict::Valid { touch: None, .. } if !passive && now > seen => {
                let stored = s.deadline(policy.limits);
                kept.map_or(stored, |r| r.filed.max(stored))
            }
            Verdict::Valid { .. } => return verdict,
        };
        let ends = s.created.plus(policy.limits.absolute);
        shard.insert(key, Recent { seen: now, filed, ends });
        verdict
    }

    /// The latest use of `key` this process has seen (written or not).
    pub fn seen(&self, key: SessionKey) -> Option<Timestamp> {
        self.shard(key).get(&key).map(|r| r.seen)
    }

    /// Takes out the uses not written yet whose session the sweeper would
    /// delete by `horizon` (its written deadline falls before then), with
    /// the last use and deadline to write for each; forgets those already
    /// written and those of sessions over by `now`.
    pub fn take_due(
        &self,
        idle: Duration,
        now: Timestamp,
        horizon: Timestamp,
    ) -> Vec<(SessionKey, Timestamp, Timestamp)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut m = shard.lock().unwrap_or_else(|p| p.into_inner());
            m.retain(|key, r| {
                let deadline = r.seen.plus(idle).min(r.ends);
                if deadline <= now || deadline <= r.filed {
                    return false;
                }
                if r.filed <= horizon {
                    out.push((*key, r.seen, deadline));
                    return false;
                }
                true
            });
        }
        out
    }

    /// How many uses are held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    fn policy(idle: u64, absolute: u64, touch: u64) -> SessionPolicy {
        SessionPolicy::new(
            &Timeouts {
                idle: Duration::from_secs(idle),
                absolute: Duration::from_secs(absolute),
                touch_interval: Duration::from_secs(touch),
                ..Timeouts::default()
            },
            false,
        )
    }

    fn session(created: u64, last_use: u64) -> Session {
        Session {
            user: 1,
            created: Timestamp(created * S),
            last_use: Timestamp(last_use * S),
            address: None,
            browser: String::new(),
            series: None,
            xsrf: [0; 10],
            epoch: 0,
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp(secs * S)
    }

    #[test]
    fn idle_timeout_ends_an_unused_session() {
        let p = policy(100, 1000, 10);
        let s = session(0, 0);
        assert!(matches!(p.judge(&s, s.last_use, at(99), false), Verdict::Valid { .. }));
        assert_eq!(p.judge(&s, s.last_use, at(100), false), Verdict::Expired);
    }

    #[test]
    fn absolute_timeout_wins_over_recent_use() {
        let p = policy(100, 1000, 10);
        let s = session(0, 990);
        assert!(matches!(p.judge(&s, s.last_use, at(999), false), Verdict::Valid { .. }));
        assert_eq!(p.judge(&s, s.last_use, at(1000), false), Verdict::Expired);
    }

    #[test]
    fn touches_are_coalesced_to_the_interval() {
        let p = policy(100, 1000, 10);
        let s = session(0, 50);
        // The use at 55 slides the deadline but is not written.
        assert_eq!(p.judge(&s, s.last_use, at(55), false), Verdict::Valid { expires: at(155), touch: None });
        assert_eq!(
            p.judge(&s, s.last_use, at(60), false),
            Verdict::Valid { expires: at(160), touch: Some(at(160)) }
        );
    }

    #[test]
    fn passive_use_never_slides() {
        let p = policy(100, 1000, 10);
        let s = session(0, 50);
        assert_eq!(p.judge(&s, s.last_use, at(90), true), Verdict::Valid { expires: at(150), touch: None });
    }

    #[test]
    fn expiry_header_is_capped_by_the_absolute_deadline() {
        let p = policy(100, 120, 10);
        let s = session(0, 0);
        assert_eq!(
            p.judge(&s, s.last_use, at(50), false),
            Verdict::Valid { expires: at(120), touch: Some(at(120)) }
        );
    }

    #[test]
    fn a_use_not_yet_written_counts_for_the_idle_timeout() {
        let p = policy(100, 1000, 60);
        let s = session(0, 0);
        // Seen at 50 but written at 0: alive until 150, and the use at 120
        // is written (the stored one is over the touch interval old).
        assert_eq!(p.judge(&s, at(50), at(99), true), Verdict::Valid { expires: at(150), touch: None });
        assert_eq!(
            p.judge(&s, at(50), at(120), false),
            Verdict::Valid { expires: at(220), touch: Some(at(220)) }
        );
        assert_eq!(p.judge(&s, at(50), at(150), false), Verdict::Expired);
    }

    #[test]
    fn the_touch_interval_is_kept_even_when_the_idle_timeout_is_shorter() {
        // idle 2s with the default 60s touch interval: uses every second
        // keep the session alive, and none of them is written.
        let short = Timeouts { idle: Duration::from_secs(2), ..Timeouts::default() };
        let p = SessionPolicy::new(&short, false);
        assert_eq!(p.touch_interval, Duration::from_secs(60));
        // Shared with other processes, uses are written within a tenth of it.
        assert_eq!(SessionPolicy::new(&short, true).touch_interval, Duration::from_millis(200));
        let uses = RecentUses::default();
        let key = SessionKey([7; 16]);
        let s = session(0, 0);
        for t in 1..=10 {
            match uses.use_session(&p, key, &s, at(t), false) {
                Verdict::Valid { touch: None, expires } => assert_eq!(expires, at(t + 2)),
                other => panic!("{other:?} at {t}s despite use every second"),
            }
            assert_eq!(uses.seen(key), Some(at(t)));
        }
        // A passive use neither slides nor is kept.
        assert_eq!(
            uses.use_session(&p, key, &s, at(11), true),
            Verdict::Valid { expires: at(12), touch: None }
        );
        assert_eq!(uses.seen(key), Some(at(10)));
        // Unused for the idle timeout, it is over, and forgotten.
        assert_eq!(uses.use_session(&p, key, &s, at(12), false), Verdict::Expired);
        assert_eq!(uses.seen(key), None);
    }

    #[test]
    fn a_written_use_counts_until_the_write_is_stored() {
        let p = policy(100, 1000, 10);
        let uses = RecentUses::default();
        let key = SessionKey([1; 16]);
        let s = session(0, 0);
        assert_eq!(
            uses.use_session(&p, key, &s, at(5), false),
            Verdict::Valid { expires: at(105), touch: None }
        );
        assert_eq!(uses.seen(key), Some(at(5)));
        assert_eq!(
            uses.use_session(&p, key, &s, at(10), false),
            Verdict::Valid { expires: at(110), touch: Some(at(110)) }
        );
        // Before the write commits, the store still says 0: the use at 10
        // still counts (at 104 the session is alive), and is not written twice.
        assert_eq!(
            uses.use_session(&p, key, &s, at(104), true),
            Verdict::Valid { expires: at(110), touch: None }
        );
        // The sweeper has nothing to write for it, and forgets it.
        assert!(uses.take_due(p.limits.idle, at(105), at(1000)).is_empty());
        assert!(uses.is_empty());
        // Once stored, uses go on from the written one.
        let s = session(0, 10);
        assert_eq!(
            uses.use_session(&p, key, &s, at(12), false),
            Verdict::Valid { expires: at(112), touch: None }
        );
        assert_eq!(uses.take_due(p.limits.idle, at(13), at(1000)), vec![(key, at(12), at(112))]);
    }

    #[test]
    fn the_sweeper_takes_the_uses_of_sessions_it_would_delete() {
        let p = policy(100, 1000, 60);
        let uses = RecentUses::default();
        // Stored deadlines: a and c 100 (written at 0), b 130 (written at 30).
        let (a, b, c) = (SessionKey([1; 16]), SessionKey([2; 16]), SessionKey([3; 16]));
        uses.use_session(&p, a, &session(0, 0), at(40), false);
        uses.use_session(&p, b, &session(0, 30), at(50), false);
        uses.use_session(&p, c, &session(0, 0), at(20), false);
        assert_eq!(uses.len(), 3);
        // At 90, looking ahead to 110: the stored deadlines of a and c
        // (100) fall within, b's (130) does not.
        let mut due = uses.take_due(p.limits.idle, at(90), at(110));
        due.sort();
        assert_eq!(due, vec![(a, at(40), at(140)), (c, at(20), at(120))]);
        assert_eq!(uses.len(), 1);
        // Once its last use is over the idle timeout, a use is only dropped.
        assert!(uses.take_due(p.limits.idle, at(150), at(1000)).is_empty());
        assert!(uses.is_empty());
    }

    #[test]
    fn a_kept_use_never_outlives_the_absolute_end() {
        let p = policy(100, 120, 60);
        let uses = RecentUses::default();
        let key = SessionKey([4; 16]);
        assert_eq!(
            uses.use_session(&p, key, &session(0, 0), at(50), false),
            Verdict::Valid { expires: at(120), touch: None }
        );
        assert_eq!(uses.take_due(p.limits.idle, at(60), at(200)), vec![(key, at(50), at(120))]);
        assert_eq!(uses.use_session(&p, key, &session(0, 50), at(120), false), Verdict::Expired);
    }

    #[test]
    fn new_sessions_get_the_earlier_deadline() {
        assert_eq!(policy(100, 50, 1).deadline_for_new(at(10)), at(60));
        assert_eq!(policy(100, 500, 1).deadline_for_new(at(10)), at(110));
    }
}

//! The session timeout policy (SPEC §5), as pure functions of `now`.
//!
//! A session is valid while `now < created + absolute` and
//! `now < last_use + idle`. A use slides `last_use`, but the new value is
//! only written when the stored one is at least the touch interval old, so
//! a busy session costs one write per interval, not one per request. The
//! interval is capped at a tenth of the idle timeout: otherwise a short idle
//! timeout would expire sessions that are in steady use.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::config::Timeouts;
use crate::store::{Session, SessionLimits};

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
    /// The policy for the configured timeouts.
    pub fn new(t: &Timeouts) -> Self {
        SessionPolicy {
            limits: SessionLimits { idle: t.idle, absolute: t.absolute },
            touch_interval: t.touch_interval.min(t.idle / 10),
        }
    }

    /// When a session created (or last used) at `now` ends.
    pub fn deadline_for_new(&self, now: Timestamp) -> Timestamp {
        now.plus(self.limits.idle.min(self.limits.absolute))
    }

    /// Judges a use of `s` at `now`; a passive use (background polling) never slides.
    pub fn judge(&self, s: &Session, now: Timestamp, passive: bool) -> Verdict {
        let absolute_end = s.created.plus(self.limits.absolute);
        if now >= absolute_end || now >= s.last_use.plus(self.limits.idle) {
            return Verdict::Expired;
        }
        let due = !passive && now.since(s.last_use) >= self.touch_interval && now > s.last_use;
        let last_use = if due { now } else { s.last_use };
        let expires = last_use.plus(self.limits.idle).min(absolute_end);
        Verdict::Valid { expires, touch: due.then_some(expires) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    fn policy(idle: u64, absolute: u64, touch: u64) -> SessionPolicy {
        SessionPolicy::new(&Timeouts {
            idle: Duration::from_secs(idle),
            absolute: Duration::from_secs(absolute),
            touch_interval: Duration::from_secs(touch),
            ..Timeouts::default()
        })
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
        assert!(matches!(p.judge(&s, at(99), false), Verdict::Valid { .. }));
        assert_eq!(p.judge(&s, at(100), false), Verdict::Expired);
    }

    #[test]
    fn absolute_timeout_wins_over_recent_use() {
        let p = policy(100, 1000, 10);
        let s = session(0, 990);
        assert!(matches!(p.judge(&s, at(999), false), Verdict::Valid { .. }));
        assert_eq!(p.judge(&s, at(1000), false), Verdict::Expired);
    }

    #[test]
    fn touches_are_coalesced_to_the_interval() {
        let p = policy(100, 1000, 10);
        let s = session(0, 50);
        assert_eq!(p.judge(&s, at(55), false), Verdict::Valid { expires: at(150), touch: None });
        assert_eq!(p.judge(&s, at(60), false), Verdict::Valid { expires: at(160), touch: Some(at(160)) });
    }

    #[test]
    fn passive_use_never_slides() {
        let p = policy(100, 1000, 10);
        let s = session(0, 50);
        assert_eq!(p.judge(&s, at(90), true), Verdict::Valid { expires: at(150), touch: None });
    }

    #[test]
    fn expiry_header_is_capped_by_the_absolute_deadline() {
        let p = policy(100, 120, 10);
        let s = session(0, 0);
        assert_eq!(p.judge(&s, at(50), false), Verdict::Valid { expires: at(120), touch: Some(at(120)) });
    }

    #[test]
    fn touch_interval_is_capped_so_short_idle_timeouts_still_slide() {
        // idle 2s with the default 60s touch interval: uses every second keep it alive.
        let p = SessionPolicy::new(&Timeouts { idle: Duration::from_secs(2), ..Timeouts::default() });
        assert_eq!(p.touch_interval, Duration::from_millis(200));
        let mut s = session(0, 0);
        for t in 1..=10 {
            match p.judge(&s, at(t), false) {
                Verdict::Valid { touch: Some(_), .. } => s.last_use = at(t),
                Verdict::Valid { touch: None, .. } => {}
                Verdict::Expired => panic!("expired at {t}s despite use every second"),
            }
        }
    }

    #[test]
    fn new_sessions_get_the_earlier_deadline() {
        assert_eq!(policy(100, 50, 1).deadline_for_new(at(10)), at(60));
        assert_eq!(policy(100, 500, 1).deadline_for_new(at(10)), at(110));
    }
}

//! The failed-login state machine (SPEC §3), after kanidm's softlock.
//!
//! ```text
//!             failure, strikes + 1 < max
//!            ┌───────┐
//!            ▼       │
//!   ──► Open(strikes) ──── failure, strikes + 1 = max ────► Challenged(until)
//!            ▲                                               │  │
//!            └──────────── now ≥ until (level kept) ─────────┘  │
//!                                                               │ failure after a solved
//!                                    success / unlock:          │ challenge: level + 1,
//!                                    record deleted             ▼ until moves out again
//! ```
//!
//! Each trigger sets `until = now + base · 2^(level-1)`, capped at one hour.
//! While challenged, the API refuses the user without checking the password;
//! the login page lets a person through by solving a proof-of-work puzzle.
//! The record is forgotten (the sweeper deletes it) a day after its last
//! event, so the doubling does not follow a user forever.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::store::Lockout;

/// How the machine is tuned.
#[derive(Clone, Copy, Debug)]
pub struct LockoutPolicy {
    /// Consecutive failures that trigger a challenge.
    pub max_failures: u32,
    /// The first challenge period.
    pub base: Duration,
    /// The longest challenge period.
    pub cap: Duration,
    /// How long after its last event a record is remembered.
    pub memory: Duration,
}

impl LockoutPolicy {
    /// The policy for `--max-failed-logins` and `--lockout`.
    pub fn new(max_failures: u32, base: Duration) -> Self {
        LockoutPolicy {
            max_failures: max_failures.max(1),
            base,
            cap: Duration::from_secs(3600),
            memory: Duration::from_secs(86_400),
        }
    }

    /// Whether a login for this record at `now` must be challenged, and until when.
    pub fn challenged_until(&self, rec: Option<&Lockout>, now: Timestamp) -> Option<Timestamp> {
        rec.and_then(|r| r.until).filter(|&until| now < until)
    }

    /// The record after a failed login at `now`.
    pub fn on_failure(&self, rec: Option<Lockout>, now: Timestamp) -> Lockout {
        let rec = rec.filter(|r| now < self.forget_at(r)).unwrap_or_default();
        let challenged = self.challenged_until(Some(&rec), now).is_some();
        let strikes = rec.strikes.saturating_add(1);
        if challenged || strikes >= self.max_failures {
            let level = rec.level.saturating_add(1);
            Lockout { strikes: 0, level, until: Some(now.plus(self.period(level))), last_event: now }
        } else {
            Lockout { strikes, last_event: now, ..rec }
        }
    }

    /// How long the `level`-th trigger lasts: base · 2^(level-1), at most the cap.
    pub fn period(&self, level: u32) -> Duration {
        let factor = 1u32.checked_shl(level.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).unwrap_or(self.cap).min(self.cap)
    }

    /// When the record may be deleted.
    pub fn forget_at(&self, rec: &Lockout) -> Timestamp {
        rec.until.unwrap_or(rec.last_event).max(rec.last_event).plus(self.memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn policy() -> LockoutPolicy {
        LockoutPolicy::new(3, Duration::from_secs(300))
    }

    fn at(minutes: u64) -> Timestamp {
        Timestamp(1_000_000 + minutes * MIN)
    }

    fn fail(rec: Option<Lockout>, t: Timestamp) -> Option<Lockout> {
        Some(policy().on_failure(rec, t))
    }

    #[test]
    fn the_third_consecutive_failure_triggers_a_challenge() {
        let p = policy();
        let r = fail(None, at(0));
        let r = fail(r, at(0));
        assert_eq!(p.challenged_until(r.as_ref(), at(0)), None);
        let r = fail(r, at(0));
        assert_eq!(p.challenged_until(r.as_ref(), at(0)), Some(at(5)));
    }

    #[test]
    fn the_challenge_lapses_and_doubles_when_triggered_again() {
        let p = policy();
        let mut r = None;
        for _ in 0..3 {
            r = fail(r, at(0));
        }
        assert_eq!(p.challenged_until(r.as_ref(), at(5)), None, "lapsed after 5 minutes");
        for _ in 0..3 {
            r = fail(r, at(6));
        }
        assert_eq!(p.challenged_until(r.as_ref(), at(6)), Some(at(16)), "second trigger: 10 minutes");
        for _ in 0..3 {
            r = fail(r, at(17));
        }
        assert_eq!(p.challenged_until(r.as_ref(), at(17)), Some(at(37)), "third: 20 minutes");
    }

    #[test]
    fn the_period_is_capped_at_an_hour() {
        let p = policy();
        assert_eq!(p.period(1), Duration::from_secs(300));
        assert_eq!(p.period(4), Duration::from_secs(2400));
        assert_eq!(p.period(5), Duration::from_secs(3600));
        assert_eq!(p.period(40), Duration::from_secs(3600));
        assert_eq!(p.period(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn a_failure_while_challenged_retriggers() {
        let p = policy();
        let mut r = None;
        for _ in 0..3 {
            r = fail(r, at(0));
        }
        // A solved puzzle let a wrong password through at minute 1.
        let r = fail(r, at(1));
        assert_eq!(p.challenged_until(r.as_ref(), at(1)), Some(at(11)));
    }

    /// One failed login at the clock's time.
    fn fail_now(
        p: &LockoutPolicy,
        rec: Option<Lockout>,
        clock: &crate::clock::ManualClock,
    ) -> Option<Lockout> {
        use crate::clock::Clock as _;
        Some(p.on_failure(rec, clock.now()))
    }

    #[test]
    fn a_walk_through_the_machine_with_a_manual_clock() {
        use crate::clock::{Clock as _, ManualClock};
        let p = policy();
        let clock = ManualClock::new(at(0));
        let mut r = None;
        assert_eq!(p.challenged_until(r.as_ref(), clock.now()), None, "no record: open");
        // Open(1), Open(2): counted, not challenged.
        for strikes in 1..=2 {
            r = fail_now(&p, r, &clock);
            let rec = r.unwrap();
            assert_eq!((rec.strikes, rec.level, rec.until), (strikes, 0, None));
            assert_eq!(rec.last_event, clock.now());
            assert_eq!(p.challenged_until(r.as_ref(), clock.now()), None);
            clock.advance(Duration::from_secs(10));
        }
        // The third: Challenged for the base period, strikes cleared.
        r = fail_now(&p, r, &clock);
        let t1 = clock.now();
        assert_eq!(r.unwrap().strikes, 0);
        assert_eq!(r.unwrap().level, 1);
        assert_eq!(p.challenged_until(r.as_ref(), t1), Some(t1.plus(Duration::from_secs(300))));
        // Still challenged a millisecond before the end, open at the end.
        clock.advance(Duration::from_millis(299_999));
        assert!(p.challenged_until(r.as_ref(), clock.now()).is_some());
        clock.advance(Duration::from_millis(1));
        assert_eq!(p.challenged_until(r.as_ref(), clock.now()), None, "lapsed exactly at `until`");
        // After the lapse the level is kept but it takes three new failures.
        for strikes in 1..=2 {
            r = fail_now(&p, r, &clock);
            assert_eq!(p.challenged_until(r.as_ref(), clock.now()), None, "strike {strikes} after a lapse");
            assert_eq!((r.unwrap().strikes, r.unwrap().level), (strikes, 1));
        }
        r = fail_now(&p, r, &clock);
        let t2 = clock.now();
        assert_eq!(p.challenged_until(r.as_ref(), t2), Some(t2.plus(Duration::from_secs(600))), "doubled");
        // A failure past a solved puzzle while challenged: doubled again at once.
        clock.advance(Duration::from_secs(60));
        r = fail_now(&p, r, &clock);
        let t3 = clock.now();
        assert_eq!(p.challenged_until(r.as_ref(), t3), Some(t3.plus(Duration::from_secs(1200))));
        // Up to the cap and no further, however often it is triggered.
        for _ in 0..10 {
            clock.advance(Duration::from_secs(1));
            r = fail_now(&p, r, &clock);
        }
        let now = clock.now();
        assert_eq!(p.challenged_until(r.as_ref(), now), Some(now.plus(Duration::from_secs(3600))), "capped");
        assert_eq!(r.unwrap().level, 13);
    }

    #[test]
    fn a_record_is_kept_until_a_quiet_day_has_passed_and_not_a_moment_less() {
        use crate::clock::{Clock as _, ManualClock};
        let p = policy();
        let clock = ManualClock::new(at(0));
        let mut r = None;
        for _ in 0..3 {
            r = fail_now(&p, r, &clock);
        }
        // A day after the challenge ended, less a millisecond: the level still counts.
        clock.advance(Duration::from_secs(300 + 86_400) - Duration::from_millis(1));
        assert_eq!(p.forget_at(r.as_ref().unwrap()), clock.now().plus(Duration::from_millis(1)));
        let kept = fail_now(&p, r, &clock).unwrap();
        assert_eq!((kept.strikes, kept.level), (1, 1), "remembered until forget_at");
        // An open record (strikes only) is forgotten a day after its last failure.
        let open = fail_now(&p, None, &clock).unwrap();
        assert_eq!(p.forget_at(&open), clock.now().plus(Duration::from_secs(86_400)));
    }

    #[test]
    fn max_failures_of_one_challenges_every_failure_and_zero_means_one() {
        for max in [0, 1] {
            let p = LockoutPolicy::new(max, Duration::from_secs(2));
            let r = Some(p.on_failure(None, at(0)));
            assert_eq!(
                p.challenged_until(r.as_ref(), at(0)),
                Some(at(0).plus(Duration::from_secs(2))),
                "max {max}"
            );
            assert_eq!(p.max_failures, 1);
        }
    }

    #[test]
    fn levels_saturate_without_overflow() {
        let p = policy();
        let worn = Lockout { strikes: u32::MAX, level: u32::MAX, until: None, last_event: at(0) };
        let r = p.on_failure(Some(worn), at(1));
        assert_eq!(r.level, u32::MAX);
        assert_eq!(r.until, Some(at(61)), "the cap holds at the top level");
    }

    #[test]
    fn records_are_forgotten_after_a_quiet_day() {
        let p = policy();
        let mut r = None;
        for _ in 0..3 {
            r = fail(r, at(0));
        }
        let forget = p.forget_at(r.as_ref().unwrap());
        assert_eq!(forget, at(5 + 24 * 60));
        // A failure after that starts from scratch: level 1 again, and one strike only.
        let r = fail(r, Timestamp(forget.0 + 1));
        assert_eq!(r.unwrap().strikes, 1);
        assert_eq!(r.unwrap().level, 0);
    }
}

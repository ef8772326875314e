//! "Remember my login" (SPEC §6): what presenting a remember-me cookie means.
//!
//! ```text
//!   presented validator          series state                verdict
//!   = current                    live                        Current  → rotate, new session
//!   = previous                   live, within grace          Grace    → let this request in, no rotation
//!   anything else                live                        Theft    → revoke the user everywhere
//!   any                          expired or missing          Rejected → clear the cookie
//! ```
//!
//! The grace window exists because a page fires parallel requests with the
//! same cookie: the first rotates, the others arrive with the old validator
//! moments later. They are let in without a new session or cookie, so the
//! browser ends up holding exactly the validator the first answer set.
//! A validator older than that proves the cookie was copied: the thief and
//! the victim have diverged, and both lose every session.

use crate::clock::Timestamp;
use crate::store::Series;
use crate::token::ct_eq;

/// What a presented validator means for a live series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The current validator: rotate and log in.
    Current,
    /// The just-rotated one, inside the grace window.
    Grace,
    /// Anything else: the cookie was stolen.
    Theft,
    /// The series has ended.
    Expired,
}

/// Judges `presented` (a validator hash) against `series` at `now`.
pub fn judge(series: &Series, presented: &[u8; 32], now: Timestamp) -> Verdict {
    if now >= series.expires {
        Verdict::Expired
    } else if ct_eq(&series.current, presented) {
        Verdict::Current
    } else if series.previous.is_some_and(|p| ct_eq(&p, presented)) && now < series.previous_until {
        Verdict::Grace
    } else {
        Verdict::Theft
    }
}

/// Seconds of life left in a series (the cookie's `Max-Age`), rounded up:
/// a series made a few milliseconds ago still shows its whole age (14 days
/// is `Max-Age=1209600`), and the server checks the exact expiry anyway.
pub fn max_age(series_expires: Timestamp, now: Timestamp) -> u64 {
    u64::try_from(series_expires.since(now).as_millis().div_ceil(1000)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Series {
        Series {
            user: 1,
            current: [2; 32],
            previous: Some([1; 32]),
            previous_until: Timestamp(1_000),
            created: Timestamp(0),
            expires: Timestamp(10_000),
        }
    }

    #[test]
    fn the_current_validator_rotates() {
        assert_eq!(judge(&series(), &[2; 32], Timestamp(500)), Verdict::Current);
    }

    #[test]
    fn the_previous_validator_is_accepted_only_within_grace() {
        assert_eq!(judge(&series(), &[1; 32], Timestamp(999)), Verdict::Grace);
        assert_eq!(judge(&series(), &[1; 32], Timestamp(1_000)), Verdict::Theft);
    }

    #[test]
    fn any_other_validator_is_theft() {
        assert_eq!(judge(&series(), &[9; 32], Timestamp(500)), Verdict::Theft);
        let fresh = Series { previous: None, ..series() };
        assert_eq!(judge(&fresh, &[1; 32], Timestamp(500)), Verdict::Theft);
    }

    #[test]
    fn an_ended_series_accepts_nothing_and_is_never_theft() {
        assert_eq!(judge(&series(), &[2; 32], Timestamp(10_000)), Verdict::Expired);
        assert_eq!(judge(&series(), &[9; 32], Timestamp(20_000)), Verdict::Expired);
    }

    #[test]
    fn max_age_counts_down_and_never_underflows() {
        assert_eq!(max_age(Timestamp(10_000), Timestamp(4_000)), 6);
        assert_eq!(max_age(Timestamp(10_000), Timestamp(40_000)), 0);
        // Started a few milliseconds ago: still the whole age.
        let fourteen_days = 14 * 86_400;
        assert_eq!(max_age(Timestamp(7 + fourteen_days * 1000), Timestamp(12)), fourteen_days);
        assert_eq!(max_age(Timestamp(10_000), Timestamp(9_999)), 1);
    }
}

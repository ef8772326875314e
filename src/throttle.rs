//! Per-address throttling of failed logins (password spraying: many user
//! names from one address).
//!
//! A fixed window per client address: once an address has `max` failed
//! logins in the current window, its further logins are refused (429 with
//! `Retry-After`) until the window ends, without checking any password. The
//! table lives in memory and is bounded: when full, windows that have ended
//! are dropped, then the oldest. With `max` 0 (the default) nothing is
//! counted or refused: the SPEC's protection is each account's challenge,
//! which a person can pass, and a shared address (an office's NAT, a test
//! suite on loopback) must not lock everyone behind it out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;

/// Most addresses tracked at once.
const MAX_ADDRESSES: usize = 65_536;

/// The failed-login throttle.
pub struct Throttle {
    max: u32,
    window: Duration,
    table: Mutex<HashMap<IpAddr, (Timestamp, u32)>>,
}

impl Throttle {
    /// At most `max` failed logins per address per `window`; 0 is no limit.
    pub fn new(max: u32, window: Duration) -> Self {
        Throttle { max, window, table: Mutex::new(HashMap::new()) }
    }

    /// `Some(when)` if `ip` must wait until `when` before trying again.
    pub fn blocked_until(&self, ip: IpAddr, now: Timestamp) -> Option<Timestamp> {
        if self.max == 0 {
            return None;
        }
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let &(start, count) = table.get(&ip)?;
        let end = start.plus(self.window);
        (now < end && count >= self.max).then_some(end)
    }

    /// Counts a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Timestamp) {
        if self.max == 0 {
            return;
        }
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_ADDRESSES && !table.contains_key(&ip) {
            let window = self.window;
            table.retain(|_, (start, _)| now < start.plus(window));
            if table.len() >= MAX_ADDRESSES {
                if let Some(oldest) = table.iter().min_by_key(|(_, (start, _))| *start).map(|(k, _)| *k) {
                    table.remove(&oldest);
                }
            }
        }
        let entry = table.entry(ip).or_insert((now, 0));
        if now >= entry.0.plus(self.window) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_max_failures_until_the_window_ends() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..2 {
            t.failed(ip, Timestamp(1000));
        }
        assert_eq!(t.blocked_until(ip, Timestamp(1000)), None);
        t.failed(ip, Timestamp(2000));
        assert_eq!(t.blocked_until(ip, Timestamp(2000)), Some(Timestamp(61_000)));
        assert_eq!(t.blocked_until(other, Timestamp(2000)), None);
        assert_eq!(t.blocked_until(ip, Timestamp(61_000)), None);
        t.failed(ip, Timestamp(61_000));
        assert_eq!(t.blocked_until(ip, Timestamp(61_000)), None, "a new window starts from one");
    }

    #[test]
    fn a_limit_of_zero_counts_and_refuses_nothing() {
        let t = Throttle::new(0, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            t.failed(ip, Timestamp(1000));
        }
        assert_eq!(t.blocked_until(ip, Timestamp(1000)), None);
        assert!(t.table.lock().unwrap().is_empty());
    }
}

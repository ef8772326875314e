//! One at a time per key: password logins of one name take turns.
//!
//! A login reads the account's lockout record, spends ~25 ms in argon2, then
//! records the outcome. Run side by side, a burst of guesses at one name
//! would all read the record before any failure landed: every guess would
//! be checked (not the `--max-failed-logins` allowed), each failure already
//! in flight would count as a new lockout trigger, and a right password
//! among them would get in and clear the lock. Taking turns per name makes
//! a burst behave as the same guesses one after another. Different names
//! never wait for each other; a name with no login running costs nothing.
//!
//! This serialises the logins of one process. Several instances sharing a
//! Redis store each take their own turns, so a burst spread over N
//! instances can have N guesses in flight at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Turns per key.
pub struct Turns<K: Eq + Hash + Copy> {
    waiting: Arc<Mutex<HashMap<K, Entry>>>,
}

/// A key with a turn taken or awaited.
struct Entry {
    lock: Arc<AsyncMutex<()>>,
    /// Holder and waiters; the entry goes when the last of them does.
    users: usize,
}

/// A turn: the key is this holder's until it is dropped.
pub struct Turn<K: Eq + Hash + Copy> {
    key: K,
    guard: Option<OwnedMutexGuard<()>>,
    waiting: Arc<Mutex<HashMap<K, Entry>>>,
}

impl<K: Eq + Hash + Copy> Default for Turns<K> {
    fn default() -> Self {
        Turns { waiting: Arc::new(Mutex::new(HashMap::new())) }
    }
}

impl<K: Eq + Hash + Copy> Turns<K> {
    /// Waits until no one else holds `key`'s turn (first come, first served),
    /// then holds it.
    pub async fn take(&self, key: K) -> Turn<K> {
        let lock = {
            let mut waiting = lock_map(&self.waiting);
            let entry = waiting.entry(key).or_insert_with(|| Entry { lock: Arc::default(), users: 0 });
            entry.users += 1;
            Arc::clone(&entry.lock)
        };
        // Counted from here on, so a waiter given up (its request dropped)
        // leaves no entry behind.
        let mut turn = Turn { key, guard: None, waiting: Arc::clone(&self.waiting) };
        turn.guard = Some(lock.lock_owned().await);
        turn
    }

    /// Keys with a turn taken or awaited.
    pub fn len(&self) -> usize {
        lock_map(&self.waiting).len()
    }

    /// Whether no key has a turn taken or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash + Copy> Drop for Turn<K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut waiting = lock_map(&self.waiting);
        if let Some(entry) = waiting.get_mut(&self.key) {
            entry.users -= 1;
            if entry.users == 0 {
                waiting.remove(&self.key);
            }
        }
    }
}

fn lock_map<K>(m: &Mutex<HashMap<K, Entry>>) -> MutexGuard<'_, HashMap<K, Entry>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn one_key_takes_turns_and_others_do_not_wait() {
        let turns = Arc::new(Turns::<u8>::default());
        let first = turns.take(1).await;
        // Another key is free at once.
        let other = tokio::time::timeout(Duration::from_millis(1), turns.take(2)).await;
        assert!(other.is_ok(), "key 2 waited for key 1");
        drop(other);
        // The same key waits until the first turn ends.
        let t = Arc::clone(&turns);
        let second = tokio::spawn(async move {
            let _turn = t.take(1).await;
            tokio::time::Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!second.is_finished(), "a second turn began while the first was held");
        let released = tokio::time::Instant::now();
        drop(first);
        assert_eq!(second.await.unwrap(), released);
        // Nobody holds or awaits a key: nothing is kept for it.
        assert!(turns.is_empty(), "{} keys left", turns.len());
    }

    #[tokio::test(start_paused = true)]
    async fn turns_are_served_in_order_and_the_map_empties() {
        let turns = Arc::new(Turns::<u8>::default());
        let held = turns.take(7).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (t, order) = (Arc::clone(&turns), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _turn = t.take(7).await;
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            // Each waiter queues before the next is spawned.
            tokio::task::yield_now().await;
        }
        assert_eq!(turns.len(), 1);
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        assert!(turns.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_given_up_leaves_nothing_behind() {
        let turns = Turns::<u8>::default();
        let held = turns.take(3).await;
        let gave_up = tokio::time::timeout(Duration::from_secs(1), turns.take(3)).await;
        assert!(gave_up.is_err());
        drop(held);
        assert!(turns.is_empty(), "{} keys left", turns.len());
        // And the key is free again.
        let again = tokio::time::timeout(Duration::from_millis(1), turns.take(3)).await;
        assert!(again.is_ok());
    }
}

//! Password hashing: argon2id with OWASP's parameters, off the async workers.
//!
//! Hashing costs tens of milliseconds and 19 MiB of memory, so it never runs
//! on a tokio worker: [`PasswordPool`] runs it on its own `workers` threads,
//! with at most `queue` more waiting. Past that bound callers get
//! [`PoolBusy`] at once (the HTTP layer answers 503), so a flood of logins
//! cannot queue without limit. The hashing threads run at a lower scheduling
//! priority (ten nice steps) than the async workers: when both want a core, a
//! session check waits microseconds for it, not a scheduler slice of argon2.
//!
//! Unknown users are checked against [`DUMMY_HASH`] with the same
//! parameters, so a wrong name costs what a wrong password costs.

use std::sync::{mpsc, Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{oneshot, Semaphore};

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A hash of a password nobody knows, with the same parameters as real ones.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$l/5pheFvpQkzKQRBXcv2ow$v2HFVN4rN9vJUvgzQaOaahC/Pp21sU3xJqbRGiAm8Gs";

/// The hasher: argon2id, m=19456 KiB, t=2, p=1 (OWASP's recommendation).
fn argon2() -> Argon2<'static> {
    // These constants are within argon2's documented bounds, so `new` cannot fail;
    // the default is the same parameter set, and the fallback keeps this total.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string (blocking; tens of milliseconds).
pub fn hash(password: &str) -> Result<String, String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("password hashing failed: {e}"))
}

/// Checks `password` against a PHC string (blocking). A malformed hash never verifies.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Why a password could not be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordRule {
    /// Empty.
    Empty,
    /// Longer than [`MAX_PASSWORD_BYTES`].
    TooLong,
}

impl std::fmt::Display for PasswordRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordRule::Empty => f.write_str("the password must not be empty"),
            PasswordRule::TooLong => write!(f, "the password must be at most {MAX_PASSWORD_BYTES} bytes"),
        }
    }
}

/// Checks a new password against the (deliberately few) rules.
pub fn check_new(password: &str) -> Result<(), PasswordRule> {
    if password.is_empty() {
        Err(PasswordRule::Empty)
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(PasswordRule::TooLong)
    } else {
        Ok(())
    }
}

/// The pool is full; try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolBusy;

/// A unit of work for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Runs argon2 on its own low-priority threads with a bounded queue.
#[derive(Clone)]
pub struct PasswordPool {
    admitted: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
}

impl PasswordPool {
    /// At most `workers` hashes at once and `queue` more waiting. The
    /// threads end when the last clone of the pool is dropped.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new().name(format!("authd-argon2-{i}")).spawn(move || {
                crate::priority::lower_current_thread(10);
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                }
            });
            if let Err(e) = spawned {
                // Fewer threads only means fewer hashes at once; the
                // others wait in the channel, still within `admitted`.
                tracing::warn!("could not start a password hashing thread: {e}");
            }
        }
        PasswordPool { admitted: Arc::new(Semaphore::new(workers + queue)), jobs }
    }

    /// Verifies `password` against `phc`, or against [`DUMMY_HASH`] when there is no user.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, PoolBusy> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = self.run(move || verify(&password, &phc)).await?;
        Ok(ok && known)
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<Result<String, String>, PoolBusy> {
        self.run(move || hash(&password)).await
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, PoolBusy> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| PoolBusy)?;
        let (tx, rx) = oneshot::channel();
        // Jobs wait in the channel until a thread is free; one whose caller
        // has gone (the client hung up) is skipped, not hashed. The permit
        // goes with the job, so the bound holds even for abandoned callers.
        self.jobs
            .send(Box::new(move || {
                if !tx.is_closed() {
                    let out = f();
                    // Released before the answer, so a caller that asks
                    // again at once finds the place free.
                    drop(admitted);
                    let _ = tx.send(out);
                }
            }))
            .map_err(|_| PoolBusy)?;
        rx.await.map_err(|_| PoolBusy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_below_the_async_workers_priority() {
        use crate::priority::current_thread_nice;
        let pool = PasswordPool::new(2, 0);
        let own = current_thread_nice().unwrap();
        assert_eq!(pool.run(current_thread_nice).await, Ok(Some((own + 10).min(19))));
        assert_eq!(current_thread_nice(), Some(own), "the caller's own priority is untouched");
    }

    #[test]
    fn hashes_use_owasp_parameters_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn dummy_hash_has_the_same_parameters_as_real_ones() {
        let real = hash("x").unwrap();
        let params = |s: &str| s.split('$').nth(3).map(str::to_string);
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn new_password_rules() {
        assert_eq!(check_new(""), Err(PasswordRule::Empty));
        assert_eq!(check_new(&"a".repeat(MAX_PASSWORD_BYTES + 1)), Err(PasswordRule::TooLong));
        assert_eq!(check_new("hunter2"), Ok(()));
    }

    #[tokio::test]
    async fn unknown_users_never_verify_and_the_queue_is_bounded() {
        let pool = PasswordPool::new(1, 0);
        assert_eq!(pool.verify("x".into(), None).await, Ok(false));
        let h = hash("pw").unwrap();
        assert_eq!(pool.verify("pw".into(), Some(h.clone())).await, Ok(true));
        // One worker, no queue: a second job while the first runs is refused at once.
        let p2 = pool.clone();
        let first = tokio::spawn(async move { p2.verify("pw".into(), Some(h)).await });
        tokio::task::yield_now().await;
        let mut refused = false;
        for _ in 0..50 {
            if pool.verify("pw".into(), None).await == Err(PoolBusy) {
                refused = true;
                break;
            }
        }
        assert_eq!(first.await.unwrap(), Ok(true));
        assert!(refused, "a full pool accepted more work");
    }
}

//! The redb store against its model (SPEC §5, §11): `store::redb::RedbStore`
//! must answer every operation of the `Store` trait exactly as
//! `store::memory::MemoryStore` does.
//!
//! The input is read as up to 64 operations (a tag byte, then the
//! operation's arguments): users created, changed (password, verify, unlock,
//! admin) and deleted, and looked up by id and name; sessions created (with
//! replaced sessions, the per-user cap, a remember-me series, a counted
//! login), read, touched, deleted (with or without their series), listed per
//! user and in full, counted and revoked; series read, rotated (with the
//! current validator or another) and deleted; failed logins and lockouts;
//! API tokens created, read, listed and deleted by 6-byte prefix;
//! verification tokens created and redeemed; sweeps at any time, with any
//! timeouts and batch size; flushes and full exports. Each runs on a fresh
//! redb file (on tmpfs when there is one) and on a fresh model given the
//! same secrets. For every input:
//! - the two answer every operation identically (compared as `Debug` text,
//!   errors included), and redb's read cache, when it has a session, has
//!   the one the model has;
//! - at the end both export the same content, a sweep at the end of time
//!   reports the same counts (so the expiry indexes held the same entries),
//!   and they export the same again.
//!
//! Some arguments are read from the model first (a series' current
//! validator, a user's address) so that rotations and redemptions succeed
//! often enough. Arguments stay inside the contract authd's callers keep: keys, selectors,
//! validator hashes and token hashes of new records are fresh (they are
//! random in authd), times are at least 1 ms (the codec stores "no time" as
//! 0), and strings are as short as the domain makes them.
//!
//! `AUTHD_FUZZ_LOG=1` prints every operation and answer (to see what an
//! input does); `AUTHD_FUZZ_TMPDIR` sets where the database files go.
//!
//! This file is also compiled into `tests/it` (see `tests/it/corpus.rs`),
//! so it uses nothing but `authd`'s public API and `std`.

use std::fmt::Debug;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use authd::clock::Timestamp;
use authd::store::memory::MemoryStore;
use authd::store::redb::RedbStore;
use authd::store::{
    ApiTokenRecord, Lockout, LockoutStep, NewSession, NewUser, Series, Session, SessionLimits, Store,
    UserChange, UserId, Verification,
};
use authd::token::{Selector, SessionKey};

/// Most operations read from one input.
pub const MAX_OPS: usize = 64;

const NAMES: [&str; 8] = ["ann", "Ann", "bob", "BOB", "İ", "i\u{307}", "carol", "Straße"];
const EMAILS: [&str; 4] = ["ann@x.example", "bob@x.example", "Ann@x.example", "c@y.example"];
const BROWSERS: [&str; 3] = ["Firefox on Linux", "curl", ""];
const LABELS: [&str; 3] = ["ci", "", "laptop backup"];

/// Panics if the redb store and the model ever answer differently for `data`.
pub fn check(data: &[u8]) {
    let file = TempFile::new();
    let redb = RedbStore::open(&file.0, Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", file.0.display()));
    let model = MemoryStore::new(redb.secrets().clone());
    let mut run =
        Run { input: Input(data), redb: &redb, model: &model, known: Known::default(), log: Vec::new() };
    for _ in 0..MAX_OPS {
        if run.input.0.is_empty() {
            break;
        }
        run.step();
    }
    run.finish();
}

/// Both stores run `$call` with `$s` bound to each; the answers must match.
macro_rules! both {
    ($run:expr, $what:expr, |$s:ident| $call:expr) => {{
        let what: String = $what;
        let a = {
            let $s: &dyn Store = $run.redb;
            block_on($call)
        };
        let b = {
            let $s: &dyn Store = $run.model;
            block_on($call)
        };
        $run.compare(what, &a, &b);
        Answer(b)
    }};
}

/// The model's answer, once it has been found equal to redb's (callers
/// that only compare may drop it).
struct Answer<T>(T);

struct Run<'a> {
    input: Input<'a>,
    redb: &'a RedbStore,
    model: &'a MemoryStore,
    known: Known,
    log: Vec<String>,
}

/// What the operations so far created (and may since have deleted).
#[derive(Default)]
struct Known {
    users: Vec<UserId>,
    keys: Vec<SessionKey>,
    series: Vec<(Selector, UserId)>,
    validators: Vec<[u8; 32]>,
    tokens: Vec<[u8; 16]>,
    verifications: Vec<[u8; 16]>,
    fresh: u16,
}

impl Run<'_> {
    fn compare<T: Debug>(&mut self, what: String, redb: &T, model: &T) {
        let (a, b) = (format!("{redb:?}"), format!("{model:?}"));
        self.log.push(format!("{what} -> {b}"));
        if a != b {
            panic!("redb and the model differ\n  redb:  {a}\n  model: {b}\nafter:\n{}", self.log.join("\n"));
        }
    }

    fn step(&mut self) {
        match self.input.byte() % 24 {
            0 => {
                let new = NewUser {
                    name: self.input.pick_str(&NAMES).to_string(),
                    email: self.input.bool().then(|| self.input.pick_str(&EMAILS).to_string()),
                    email_verified: self.input.bool(),
                    admin: self.input.bool(),
                    password_hash: format!("h{}", self.input.byte() % 4),
                    created: self.time(),
                };
                if let Ok(u) = both!(self, format!("create_user({new:?})"), |s| s.create_user(new.clone())).0
                {
                    self.known.users.push(u.id);
                }
            }
            1 => {
                let id = self.user();
                let change = match self.input.byte() % 4 {
                    0 => UserChange::Password {
                        hash: format!("p{}", self.input.byte() % 4),
                        keep: self.opt_key(),
                    },
                    1 => UserChange::VerifyEmail,
                    2 => UserChange::Unlock,
                    _ => UserChange::Admin(self.input.bool()),
                };
                both!(self, format!("update_user({id}, {change:?})"), |s| s.update_user(id, change.clone()));
            }
            2 => {
                let id = self.user();
                both!(self, format!("delete_user({id})"), |s| s.delete_user(id));
            }
            3 => {
                let id = self.user();
                both!(self, format!("user({id})"), |s| s.user(id));
            }
            4 => {
                let name = self.input.pick_str(&NAMES);
                both!(self, format!("user_by_name({name:?})"), |s| s.user_by_name(name));
            }
            5 => {
                both!(self, "users()".into(), |s| s.users());
            }
            6 => {
                let plan = self.new_session();
                both!(self, format!("create_session({plan:?})"), |s| s.create_session(plan.clone()));
            }
            7 => {
                let key = self.key();
                let cached = self.redb.cached_session(key);
                let got = both!(self, format!("session({key:?})"), |s| s.session(key)).0;
                if let Some(hit) = cached {
                    let model = got.ok().flatten();
                    self.compare(format!("cached_session({key:?})"), &Some(hit), &model);
                }
            }
            8 => {
                let (key, last_use, deadline) = (self.key(), self.time(), self.time());
                // A touch answers nothing; the flush after it waits for its write.
                both!(self, format!("touch_session({key:?}, {last_use:?}, {deadline:?}); flush()"), |s| {
                    s.touch_session(key, last_use, deadline);
                    s.flush()
                });
            }
            9 => {
                let (key, with_series) = (self.key(), self.input.bool());
                both!(self, format!("delete_session({key:?}, {with_series})"), |s| s
                    .delete_session(key, with_series));
            }
            10 => {
                let id = self.user();
                both!(self, format!("sessions_of({id})"), |s| s.sessions_of(id));
            }
            11 => {
                both!(self, "all_sessions()".into(), |s| s.all_sessions());
                both!(self, "session_count()".into(), |s| s.session_count());
            }
            12 => {
                let (id, keep) = (self.user(), self.opt_key());
                both!(self, format!("revoke_all_of({id}, {keep:?})"), |s| s.revoke_all_of(id, keep));
            }
            13 => {
                let (sel, _) = self.selector();
                both!(self, format!("series({sel:?})"), |s| s.series(sel));
            }
            14 => {
                let (sel, user) = self.selector();
                // Half the time the series' current validator (as the model
                // has it), so that rotations happen and then meet the old one.
                let current = block_on(self.model.series(sel)).ok().flatten().map(|s| s.current);
                let expected = match (self.input.bool(), current) {
                    (true, Some(v)) => v,
                    _ => match self.input.pick(&self.known.validators) {
                        Some(v) => v,
                        None => self.fresh32(),
                    },
                };
                let next = self.fresh32();
                self.known.validators.push(next);
                let grace_until = self.time();
                let mut plan = self.new_session();
                plan.session.user = user;
                plan.session.series = Some(sel);
                plan.new_series = None;
                plan.count_login = false;
                both!(
                    self,
                    format!("rotate_series({sel:?}, {expected:?}, {next:?}, {grace_until:?}, {plan:?})"),
                    |s| s.rotate_series(sel, expected, next, grace_until, plan.clone())
                );
            }
            15 => {
                let (sel, _) = self.selector();
                both!(self, format!("delete_series({sel:?})"), |s| s.delete_series(sel));
            }
            16 => {
                let id = self.user();
                both!(self, format!("lockout({id})"), |s| s.lockout(id));
            }
            17 => {
                let (id, at) = (self.user(), self.time());
                let (trigger, hold, forget) = (self.input.bool(), self.input.u16(), self.input.u16());
                let what =
                    format!("login_failed({id}, {at:?}, trigger {trigger} hold {hold} forget {forget})");
                both!(self, what, |s| s.login_failed(id, at, step(at, trigger, hold, forget)));
            }
            18 => {
                let hash = self.fresh_token();
                self.known.tokens.push(hash);
                let rec = ApiTokenRecord {
                    user: self.user(),
                    label: self.input.pick_str(&LABELS).to_string(),
                    created: self.time(),
                };
                both!(self, format!("create_token({hash:?}, {rec:?})"), |s| s
                    .create_token(hash, rec.clone()));
            }
            19 => {
                if self.input.bool() {
                    let hash = self.token();
                    both!(self, format!("token({hash:?})"), |s| s.token(hash));
                } else {
                    let id = self.user();
                    both!(self, format!("tokens_of({id})"), |s| s.tokens_of(id));
                }
            }
            20 => {
                let hash = self.token();
                let mut id = [0u8; 6];
                id.copy_from_slice(&hash[..6]);
                let user = self.input.bool().then(|| self.user());
                both!(self, format!("delete_token({id:?}, {user:?})"), |s| s.delete_token(id, user));
            }
            21 => {
                let hash = self.fresh16();
                self.known.verifications.push(hash);
                let user = self.user();
                // Half the time the user's own address (as the model has it), so that redeeming can work.
                let own = block_on(self.model.user(user)).ok().flatten().and_then(|u| u.email);
                let email = match (self.input.bool(), own) {
                    (true, Some(e)) => e,
                    _ => self.input.pick_str(&EMAILS).to_string(),
                };
                let v = Verification { user, email, expires: self.time() };
                both!(self, format!("create_verification({hash:?}, {v:?})"), |s| s
                    .create_verification(hash, v.clone()));
            }
            22 => {
                let hash = match self.input.pick(&self.known.verifications) {
                    Some(h) => h,
                    None => self.fresh16(),
                };
                let now = self.time();
                both!(self, format!("redeem_verification({hash:?}, {now:?})"), |s| s
                    .redeem_verification(hash, now));
            }
            _ => match self.input.byte() % 4 {
                0 => {
                    both!(self, "flush()".into(), |s| s.flush());
                }
                1 => {
                    both!(self, "export()".into(), |s| s.export());
                }
                _ => {
                    let now = self.time();
                    let limits = self.limits();
                    let batch = usize::from(self.input.byte() % 8) + 1;
                    both!(self, format!("sweep({now:?}, {limits:?}, {batch})"), |s| s
                        .sweep(now, limits, batch));
                }
            },
        }
    }

    fn finish(&mut self) {
        both!(self, "export()".into(), |s| s.export());
        let limits = self.limits();
        let end = Timestamp(u64::MAX);
        both!(self, format!("sweep(end, {limits:?}, all)"), |s| s.sweep(end, limits, 100_000));
        both!(self, "export()".into(), |s| s.export());
        both!(self, "session_count()".into(), |s| s.session_count());
        if std::env::var_os("AUTHD_FUZZ_LOG").is_some() {
            eprintln!("{}", self.log.join("\n"));
        }
    }

    /// A time from the input, never 0 (the codec's "none").
    fn time(&mut self) -> Timestamp {
        Timestamp(1 + u64::from(self.input.u16()))
    }

    fn limits(&mut self) -> SessionLimits {
        let idle = Duration::from_millis(u64::from(self.input.u16()));
        let absolute = Duration::from_millis(u64::from(self.input.u16()));
        SessionLimits { idle, absolute }
    }

    /// A user id that was created, or one that never was.
    fn user(&mut self) -> UserId {
        self.input.pick(&self.known.users).unwrap_or(1_000)
    }

    fn key(&mut self) -> SessionKey {
        match self.input.pick(&self.known.keys) {
            Some(k) => k,
            None => SessionKey(self.fresh16()),
        }
    }

    fn opt_key(&mut self) -> Option<SessionKey> {
        self.input.bool().then(|| self.key())
    }

    fn selector(&mut self) -> (Selector, UserId) {
        match self.input.pick(&self.known.series) {
            Some(s) => s,
            None => (Selector(self.fresh16()), self.user()),
        }
    }

    fn token(&mut self) -> [u8; 16] {
        match self.input.pick(&self.known.tokens) {
            Some(h) => h,
            None => self.fresh_token(),
        }
    }

    /// 16 bytes no other call returned: an input byte first (so records
    /// sort in varied orders), then a counter, so that the short forms
    /// `Debug` prints (a key's 6-byte handle, a selector's first 4 bytes)
    /// tell them apart.
    fn fresh16(&mut self) -> [u8; 16] {
        self.known.fresh = self.known.fresh.wrapping_add(1);
        let mut out = [0u8; 16];
        out[0] = self.input.byte();
        out[1..3].copy_from_slice(&self.known.fresh.to_be_bytes());
        out
    }

    /// A fresh API token hash: the counter last, so that the 6-byte
    /// prefixes `delete_token` takes are often shared by several tokens.
    fn fresh_token(&mut self) -> [u8; 16] {
        let mut out = self.fresh16();
        out.swap(1, 14);
        out.swap(2, 15);
        out
    }

    fn fresh32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&self.fresh16());
        out
    }

    /// A new session for a known user (or not), with fresh keys; remembered in `known`.
    fn new_session(&mut self) -> NewSession {
        let key = SessionKey(self.fresh16());
        self.known.keys.push(key);
        let user = self.user();
        let created = self.time();
        let address: Option<IpAddr> = match self.input.byte() % 3 {
            0 => None,
            1 => Some(IpAddr::from([127, 0, 0, self.input.byte()])),
            _ => Some(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(self.input.byte())])),
        };
        let mut session = Session {
            user,
            created,
            last_use: Timestamp(created.0 + u64::from(self.input.byte())),
            address,
            browser: self.input.pick_str(&BROWSERS).to_string(),
            series: None,
            xsrf: std::array::from_fn(|_| self.input.byte()),
            epoch: u32::from(self.input.byte() % 3),
        };
        let replaces = (0..self.input.byte() % 3).map(|_| self.key()).collect();
        let deadline = self.time();
        let max_per_user = u32::from(self.input.byte() % 5);
        let count_login = self.input.bool();
        let new_series = if self.input.bool() {
            let sel = Selector(self.fresh16());
            let current = self.fresh32();
            self.known.series.push((sel, user));
            self.known.validators.push(current);
            session.series = Some(sel);
            let series = Series {
                user,
                current,
                previous: None,
                previous_until: Timestamp(0),
                created,
                expires: self.time(),
            };
            Some((sel, series))
        } else {
            None
        };
        // The hash a login checked: often the user's own, sometimes one
        // that a password change replaced.
        let password_checked = match self.input.byte() % 3 {
            0 => None,
            1 => Some(format!("h{}", self.input.byte() % 4)),
            _ => Some(format!("p{}", self.input.byte() % 4)),
        };
        NewSession {
            key,
            session,
            deadline,
            replaces,
            max_per_user,
            count_login,
            new_series,
            password_checked,
        }
    }
}

/// The lockout machine's step as a pure function of the old record.
fn step(at: Timestamp, trigger: bool, hold: u16, forget: u16) -> LockoutStep {
    Box::new(move |old: Option<Lockout>| {
        let mut l = old.unwrap_or_default();
        l.strikes = l.strikes.saturating_add(1);
        l.last_event = at;
        if trigger {
            l.level = l.level.saturating_add(1);
            l.until = Some(Timestamp(at.0 + u64::from(hold)));
        }
        (l, Timestamp(at.0 + u64::from(forget)))
    })
}

/// The operations' bytes; reads past the end give zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// One of `from`, or `None` (as often as any one of them) for "something else".
    fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        let i = usize::from(self.byte()) % (from.len() + 1);
        from.get(i).copied()
    }

    fn pick_str(&mut self, from: &[&'static str]) -> &'static str {
        let i = usize::from(self.byte()) % from.len();
        from.get(i).copied().unwrap_or_default()
    }
}

/// A database file of its own, removed on drop (after the store, declared later, is closed).
struct TempFile(PathBuf);

impl TempFile {
    fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = match std::env::var_os("AUTHD_FUZZ_TMPDIR") {
            Some(d) => PathBuf::from(d),
            None if std::path::Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
            None => std::env::temp_dir(),
        };
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("authd-store-model-{}-{n}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path); // left by a crashed run with a recycled pid
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs a future to completion on this thread (the redb store's writes are
/// answered by its writer thread; the model's futures are ready at once).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

//! The authentication service: logins, remember-me logins, session checks,
//! logouts.
//!
//! This is the domain layer between HTTP and the store. It never sees
//! hyper types, and it reads the time only through its [`Clock`].
//!
//! Invariants:
//! - a login deletes every session ID (and remember-me series) the request
//!   carried (no fixation), in the same durable transaction that creates
//!   the new session;
//! - a wrong user name costs the same argon2 work, and the same durable
//!   write, as a wrong password;
//! - a session check writes at most once per touch interval per session;
//! - a remember-me validator is used once: each use rotates it (SPEC §6).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::config::Timeouts;
use crate::lockout::LockoutPolicy;
use crate::metrics::{LoginOutcome, Metrics};
use crate::password::{PasswordPool, PoolBusy};
use crate::pow::Pow;
use crate::remember::{self, Verdict as RememberVerdict};
use crate::session::{RecentUses, SessionPolicy, Verdict};
use crate::store::{
    Lockout, NewSession, Rotation, Series, Session, Store, StoreError, User, UserChange, Verification,
};
use crate::throttle::Throttle;
use crate::token::{RememberToken, Selector, SessionId, SessionKey, Validator};
use crate::turns::Turns;
use crate::xsrf::{State, Xsrf};

/// The authentication service, shared by every request.
pub struct Auth {
    /// The storage behind everything.
    pub store: Arc<dyn Store>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Session timeouts.
    pub policy: SessionPolicy,
    /// Uses of sessions not written yet (they wait for the touch interval).
    pub recent_uses: RecentUses,
    /// Remember-me series lifetime and grace window.
    pub remember: RememberPolicy,
    /// argon2 runner.
    pub passwords: PasswordPool,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Sessions per user before the oldest is evicted.
    pub max_sessions_per_user: u32,
    /// XSRF token minting and checking.
    pub xsrf: Xsrf,
    /// The failed-login state machine's tuning.
    pub lockout: LockoutPolicy,
    /// Failed logins per client address.
    pub throttle: Throttle,
    /// The login page's proof-of-work challenge.
    pub pow: Pow,
    /// Lockout records of names that are not users, so that a challenge
    /// does not reveal which names exist (in memory, bounded).
    pub phantoms: Mutex<HashMap<[u8; 16], Lockout>>,
    /// Session IDs this process recently moved to new ones, for the
    /// requests already on their way with the old ID.
    moved: Mutex<HashMap<SessionKey, Moved>>,
    /// The public base URL, for links made outside a request (verification).
    pub public_base: String,
    /// Password logins of one name take turns (see [`crate::turns`]).
    login_turns: Turns<[u8; 16]>,
}

/// Most phantom lockout records kept.
const MAX_PHANTOMS: usize = 10_000;

/// Records a failed login for an unknown name's phantom lockout. When the
/// table is full the least telling record goes: expired ones, then one not
/// demanding a challenge, lowest level, oldest event first, so unknown
/// names with one failure each cannot cheaply push out a locked phantom
/// (whose loss would tell it from a user's record).
fn remember_phantom(
    phantoms: &mut HashMap<[u8; 16], Lockout>,
    subject: [u8; 16],
    policy: LockoutPolicy,
    now: Timestamp,
) {
    if phantoms.len() >= MAX_PHANTOMS && !phantoms.contains_key(&subject) {
        phantoms.retain(|_, l| now < policy.forget_at(l));
        if phantoms.len() >= MAX_PHANTOMS {
            let victim = phantoms
                .iter()
                .min_by_key(|(_, l)| (policy.challenged_until(Some(l), now).is_some(), l.level, l.last_event))
                .map(|(k, _)| *k);
            if let Some(v) = victim {
                phantoms.remove(&v);
            }
        }
    }
    let next = policy.on_failure(phantoms.get(&subject).copied(), now);
    phantoms.insert(subject, next);
}

/// Remember-me settings.
#[derive(Clone, Copy, Debug)]
pub struct RememberPolicy {
    /// Lifetime of a series from its creation (never extended).
    pub age: Duration,
    /// How long a rotated-away validator is still accepted.
    pub grace: Duration,
}

/// A live session, as one request saw it.
#[derive(Clone, Debug)]
pub struct ActiveSession {
    /// The store key (its handle is public).
    pub key: SessionKey,
    /// The record (shared with the store's cache).
    pub record: Arc<Session>,
    /// When it ends if not used again.
    pub expires: Timestamp,
}

/// A live session, as a check found it.
#[derive(Clone, Debug)]
pub struct SessionUse {
    /// Whose.
    pub user: Arc<User>,
    /// The session (under its new key if it was rotated).
    pub session: ActiveSession,
    /// The new ID, for the cookie, if the check moved the session to one.
    pub new_id: Option<SessionId>,
}

/// A session ID moved to a new one (SPEC §5: on role change and password
/// change). Browsers send requests in parallel, so others with the old ID
/// are on their way. Those that found the old session before it moved
/// share the one move (one new session, the same new ID for each answer's
/// cookie). Those that come after it are refused, as SPEC §5 says the old
/// ID stops working, but for `--remember-me-grace` without clearing the
/// cookie, which would undo the new one if that answer came first.
struct Moved {
    /// The move, made once by the first request and awaited by the rest.
    done: Arc<tokio::sync::OnceCell<(SessionId, ActiveSession)>>,
    /// When it began.
    at: Timestamp,
}

/// How long a move is remembered at least, whatever the grace window (even
/// `0s`): requests that found the old session just before it moved must
/// still join that move rather than make another.
const RACE_WINDOW: Duration = Duration::from_secs(10);

/// What a session ID finds.
pub enum Lookup {
    /// A live session.
    Found(SessionUse),
    /// Nothing (unknown, expired, or not acceptable here).
    Missing,
    /// A session that just moved to a new ID: refused, but the cookie is
    /// left as it is (see [`Moved`]).
    MovedAway,
}

/// What the rules make of a session found in the store.
enum Use {
    /// The answer.
    Done(Lookup),
    /// It must move to a new ID first (its user's roles changed), keeping
    /// its latest use, this one included unless passive.
    Move { record: Arc<Session>, last_use: Timestamp },
}

/// Who a request is: a user, and the session it used (if any: a request let
/// in by the remember-me grace window has none).
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// Who.
    pub user: Arc<User>,
    /// Through which session.
    pub session: Option<ActiveSession>,
}

/// What a login needs besides the credentials.
#[derive(Clone, Debug, Default)]
pub struct LoginContext {
    /// Sessions the request carried; they end with this login.
    pub replaces: Vec<SessionKey>,
    /// Remember-me series the request carried; they end with this login.
    pub replaces_series: Vec<Selector>,
    /// The client's address.
    pub address: Option<IpAddr>,
    /// A short description of the client's browser.
    pub browser: String,
    /// Start a remember-me series.
    pub remember: bool,
    /// A proof-of-work challenge and its solution (login page only).
    pub challenge: Option<(String, String)>,
}

/// A successful login (by password or by remember-me).
#[derive(Debug)]
pub struct LoggedIn {
    /// The new session's secret ID, for the cookie; shown to nobody else.
    pub id: SessionId,
    /// The user, with counters updated by this login.
    pub user: Arc<User>,
    /// The new session.
    pub session: ActiveSession,
    /// A new remember-me cookie value and the series' end, if one was issued.
    pub remember: Option<(RememberToken, Timestamp)>,
}

/// Why a login did not succeed.
#[derive(Debug)]
pub enum LoginError {
    /// Unknown user or wrong password (deliberately not told apart).
    BadCredentials,
    /// The account demands a challenge (too many failures); the password was not checked.
    Denied {
        /// When the demand lapses.
        until: Timestamp,
        /// Whom a proof-of-work challenge must be issued for.
        subject: [u8; 16],
    },
    /// Too many failed logins from this address; nothing was checked.
    Throttled {
        /// When the address may try again.
        until: Timestamp,
    },
    /// Right password, unverified email address.
    Unverified,
    /// The password pool is full; try again shortly.
    Busy,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Store(e)
    }
}

impl From<PoolBusy> for LoginError {
    fn from(_: PoolBusy) -> Self {
        LoginError::Busy
    }
}

/// What presenting a remember-me cookie led to.
#[derive(Debug)]
pub enum Remembered {
    /// Logged in with a new session; the cookie was rotated.
    LoggedIn(Box<LoggedIn>),
    /// Let in by the grace window: no new session, no new cookie; the
    /// session the series' last rotation started, if it is still alive
    /// (the parallel request that rotated set its cookie).
    Grace(Arc<User>, Option<ActiveSession>),
    /// Unknown or ended series: the cookie should be cleared.
    Rejected,
    /// A stale validator: the user's sessions and series were all revoked.
    Theft,
}

/// What an [`Auth`] is tuned by (from the command line, or defaults for the CLI).
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Session and remember-me timeouts.
    pub timeouts: Timeouts,
    /// Consecutive failures before a challenge.
    pub max_failed_logins: u32,
    /// First challenge period.
    pub lockout: Duration,
    /// Failed logins per address per ten minutes (0: not limited).
    pub address_failures: u32,
    /// Leading zero bits the login page's puzzle needs.
    pub challenge_difficulty: u8,
    /// Sessions per user.
    pub max_sessions_per_user: u32,
    /// argon2 threads.
    pub hash_workers: usize,
    /// argon2 jobs that may wait.
    pub hash_queue: usize,
    /// The public base URL.
    pub public_base: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            timeouts: Timeouts::default(),
            max_failed_logins: 3,
            lockout: Duration::from_secs(300),
            address_failures: 0,
            challenge_difficulty: 16,
            max_sessions_per_user: 100,
            hash_workers: std::thread::available_parallelism().map_or(1, usize::from),
            hash_queue: 64,
            public_base: "https://127.0.0.1:8443".to_string(),
        }
    }
}

/// The window of the per-address throttle.
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(600);

impl Auth {
    /// The service over `store`, reading time from `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, s: &AuthSettings) -> Auth {
        let secrets = store.secrets().clone();
        let pow_key = blake3::derive_key("authd 2026-11 proof-of-work key", &secrets.xsrf_key);
        Auth {
            policy: SessionPolicy::new(&s.timeouts, store.shared()),
            recent_uses: RecentUses::default(),
            remember: RememberPolicy { age: s.timeouts.remember_me_age, grace: s.timeouts.remember_me_grace },
            passwords: PasswordPool::new(s.hash_workers, s.hash_queue),
            metrics: Arc::new(Metrics::default()),
            max_sessions_per_user: s.max_sessions_per_user,
            xsrf: Xsrf::new(&secrets.server_id, secrets.xsrf_key),
            lockout: LockoutPolicy::new(s.max_failed_logins, s.lockout),
            throttle: Throttle::new(s.address_failures, ADDRESS_WINDOW),
            pow: Pow::new(pow_key, s.challenge_difficulty, Duration::from_secs(600)),
            phantoms: Mutex::new(HashMap::new()),
            moved: Mutex::new(HashMap::new()),
            public_base: s.public_base.clone(),
            login_turns: Turns::default(),
            store,
            clock,
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The XSRF token of a session.
    pub fn session_xsrf(&self, user: &User, session: &Session) -> String {
        self.xsrf.token(session.xsrf, State::LoggedIn(user.id))
    }

    /// Checks a user name and password and, if they are right, starts a session.
    ///
    /// Order matters: the address throttle and the account's challenge are
    /// checked before the password, so neither costs argon2 work.
    pub async fn login(&self, name: &str, password: &str, ctx: LoginContext) -> Result<LoggedIn, LoginError> {
        let now = self.now();
        if let Some(until) = ctx.address.and_then(|ip| self.throttle.blocked_until(ip, now)) {
            self.metrics.login(LoginOutcome::Denied);
            return Err(LoginError::Throttled { until });
        }
        let subject = Pow::subject(name);
        // From reading the account to recording the outcome, one login of
        // this name at a time: a burst of guesses then meets the lockout as
        // the same guesses in a row would.
        let _turn = self.login_turns.take(subject).await;
        let now = self.now();
        let user = if valid_name(name) { self.store.user_by_name(name).await? } else { None };
        let lock = self.lockout_of(user.as_ref(), subject).await?;
        if let Some(until) = self.lockout.challenged_until(lock.as_ref(), now) {
            let solved =
                ctx.challenge.as_ref().is_some_and(|(c, s)| self.pow.verify(c, s, subject, now).is_ok());
            if !solved {
                self.metrics.login(LoginOutcome::Denied);
                tracing::info!("login refused: the account demands a challenge");
                return Err(LoginError::Denied { until, subject });
            }
        }
        let checked = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self.passwords.verify(password.to_string(), checked.clone()).await?;
        let user = match user {
            Some(u) if ok => u,
            other => {
                self.login_failed(other.as_ref(), subject, ctx.address).await?;
                return Err(LoginError::BadCredentials);
            }
        };
        if !user.email_verified {
            return Err(LoginError::Unverified);
        }
        for old in &ctx.replaces_series {
            self.store.delete_series(*old).await?;
        }
        let now = self.now();
        let remember = ctx.remember.then(|| {
            let token = RememberToken::generate();
            let series = Series {
                user: user.id,
                current: token.validator.hash(),
                previous: None,
                previous_until: now,
                created: now,
                expires: now.plus(self.remember.age),
            };
            (token, series)
        });
        let id = SessionId::generate();
        let record = self.new_session(&user, now, ctx.address, ctx.browser, Xsrf::new_nonce());
        let record = Session { series: remember.as_ref().map(|(t, _)| t.selector), ..record };
        let deadline = self.policy.deadline_for_new(now);
        let replaced = ctx.replaces.clone();
        let created = self
            .store
            .create_session(NewSession {
                key: id.key(),
                session: record.clone(),
                deadline,
                replaces: ctx.replaces,
                max_per_user: self.max_sessions_per_user,
                count_login: true,
                new_series: remember.as_ref().map(|(t, s)| (t.selector, s.clone())),
                password_checked: checked,
            })
            .await;
        match created {
            Ok(_) => {}
            // The user was deleted, or the password changed, while this one
            // was being checked: the password is no longer right.
            Err(StoreError::NotFound) => {
                self.metrics.login(LoginOutcome::Failed);
                tracing::info!("login refused: the account changed while its password was checked");
                return Err(LoginError::BadCredentials);
            }
            Err(e) => return Err(e.into()),
        }
        self.metrics.login(LoginOutcome::Ok);
        let mut user = user;
        user.logins = user.logins.succeeded(now);
        tracing::info!(user = %user.name, session = %id.key().handle(), remember = remember.is_some(), "login");
        let session = ActiveSession { key: id.key(), record: Arc::new(record), expires: deadline };
        // The IDs this login ended are known as moved for the grace window:
        // the browser's other requests still carrying one get a 401 that
        // leaves the new cookie alone (see [`Moved`]).
        for old in replaced {
            let _ = self.moving(old).set((id.clone(), session.clone()));
        }
        Ok(LoggedIn { session, id, user: Arc::new(user), remember: remember.map(|(t, s)| (t, s.expires)) })
    }

    /// Records a failed login: the account's lockout machine and Jira's
    /// counters, and the address throttle. The unknown-user path runs the
    /// same machine on a phantom record and does a durable write of the same
    /// kind, so the two cannot be told apart by timing or by outcome.
    async fn login_failed(
        &self,
        user: Option<&User>,
        subject: [u8; 16],
        address: Option<IpAddr>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        self.metrics.login(LoginOutcome::Failed);
        if let Some(ip) = address {
            self.throttle.failed(ip, now);
        }
        let policy = self.lockout;
        match user {
            Some(u) => {
                let step = Box::new(move |old| {
                    let next = policy.on_failure(old, now);
                    (next, policy.forget_at(&next))
                });
                self.store.login_failed(u.id, now, step).await?;
            }
            None => {
                remember_phantom(
                    &mut self.phantoms.lock().unwrap_or_else(|p| p.into_inner()),
                    subject,
                    policy,
                    now,
                );
                self.store.flush().await?;
            }
        }
        tracing::info!("failed login");
        Ok(())
    }

    /// Logs in with a remember-me cookie (SPEC §6). `browser_xsrf` is the
    /// XSRF cookie the browser still holds: if it verifies for the series'
    /// user, the new session adopts it (the Monday-morning rule, §7).
    pub async fn login_remembered(
        &self,
        token: &RememberToken,
        address: Option<IpAddr>,
        browser: String,
        browser_xsrf: Option<&str>,
    ) -> Result<Remembered, StoreError> {
        let selector = token.selector;
        let presented = token.validator.hash();
        let Some(mut series) = self.store.series(selector).await? else {
            return Ok(Remembered::Rejected);
        };
        // One retry covers a rotation that raced ours between read and write.
        for _ in 0..2 {
            let now = self.now();
            match remember::judge(&series, &presented, now) {
                RememberVerdict::Expired => {
                    self.store.delete_series(selector).await?;
                    return Ok(Remembered::Rejected);
                }
                RememberVerdict::Grace => {
                    let Some(user) = self.store.user(series.user).await? else {
                        return Ok(Remembered::Rejected);
                    };
                    // The newest live session of this series: what the
                    // rotation that opened the grace window started.
                    let started = self
                        .store
                        .sessions_of(series.user)
                        .await?
                        .into_iter()
                        .filter(|(_, s)| s.series == Some(selector))
                        .filter_map(|(key, s)| {
                            let seen = self.recent_uses.seen(key).unwrap_or(s.last_use);
                            match self.policy.judge(&s, seen, now, true) {
                                Verdict::Valid { expires, .. } => Some((key, s, expires)),
                                Verdict::Expired => None,
                            }
                        })
                        .max_by_key(|(_, s, _)| s.created)
                        .map(|(key, s, expires)| ActiveSession { key, record: Arc::new(s), expires });
                    return Ok(Remembered::Grace(Arc::new(user), started));
                }
                RememberVerdict::Theft => {
                    let n = self.store.revoke_all_of(series.user, None).await?;
                    tracing::warn!(
                        user_id = series.user,
                        series = ?selector,
                        sessions = n,
                        "an old remember-me cookie was presented: treating it as stolen and revoking all of the user's sessions and remember-me series"
                    );
                    return Ok(Remembered::Theft);
                }
                RememberVerdict::Current => {
                    let Some(user) = self.store.user(series.user).await? else {
                        return Ok(Remembered::Rejected);
                    };
                    let nonce = browser_xsrf
                        .and_then(|t| self.xsrf.verify(t, State::LoggedIn(user.id)))
                        .map_or_else(Xsrf::new_nonce, |t| t.nonce);
                    let next = Validator::generate();
                    let id = SessionId::generate();
                    let record = Session {
                        series: Some(selector),
                        ..self.new_session(&user, now, address, browser.clone(), nonce)
                    };
                    let deadline = self.policy.deadline_for_new(now);
                    let plan = NewSession {
                        key: id.key(),
                        session: record.clone(),
                        deadline,
                        replaces: Vec::new(),
                        max_per_user: self.max_sessions_per_user,
                        count_login: false,
                        new_series: None,
                        password_checked: None,
                    };
                    let grace_until = now.plus(self.remember.grace);
                    match self
                        .store
                        .rotate_series(selector, presented, next.hash(), grace_until, plan)
                        .await?
                    {
                        Rotation::Rotated => {
                            tracing::info!(user = %user.name, session = %id.key().handle(), "login by remember-me");
                            return Ok(Remembered::LoggedIn(Box::new(LoggedIn {
                                session: ActiveSession {
                                    key: id.key(),
                                    record: Arc::new(record),
                                    expires: deadline,
                                },
                                id,
                                user: Arc::new(user),
                                remember: Some((RememberToken { selector, validator: next }, series.expires)),
                            })));
                        }
                        Rotation::Changed(s) => series = s,
                        Rotation::Missing => return Ok(Remembered::Rejected),
                    }
                }
            }
        }
        // Rotated twice under our feet: let the caller try again with a fresh cookie.
        Ok(Remembered::Rejected)
    }

    fn new_session(
        &self,
        user: &User,
        now: Timestamp,
        address: Option<IpAddr>,
        browser: String,
        xsrf: [u8; 10],
    ) -> Session {
        Session {
            user: user.id,
            created: now,
            last_use: now,
            address,
            browser,
            series: None,
            xsrf,
            epoch: user.epoch,
        }
    }

    /// The session behind a session ID, if it is alive; slides it unless
    /// `passive`. A session whose user's roles changed since it got its ID
    /// moves to a new ID here (returned in [`SessionUse::new_id`]), or
    /// without `may_rotate` is not accepted until a use that may move it.
    pub async fn session(
        &self,
        id: &SessionId,
        passive: bool,
        may_rotate: bool,
    ) -> Result<Lookup, StoreError> {
        let key = id.key();
        let found = match self.store.cached_session(key) {
            Some(hit) => Some(hit),
            None => self.store.session(key).await?,
        };
        let Some((record, user)) = found else {
            return Ok(self.moved_session(key).await);
        };
        let (record, last_use) = match self.use_session(key, record, &user, passive, may_rotate) {
            Use::Done(lookup) => return Ok(lookup),
            Use::Move { record, last_use } => (record, last_use),
        };
        // Requests racing with this one wait for the same move.
        let done = self.moving(key);
        let (new_id, session) = done
            .get_or_try_init(|| async {
                let mut moved = (*record).clone();
                moved.epoch = user.epoch;
                moved.last_use = last_use;
                let (new_id, session) = self.rotate(key, moved).await?;
                tracing::info!(user = %user.name, from = %key.handle(), to = %session.key.handle(), "session ID rotated after a role change");
                Ok::<_, StoreError>((new_id, session))
            })
            .await?
            .clone();
        // The same cell records a login that replaced this ID, which may
        // be another user's (a planted cookie): only a move of this
        // session's own user is taken.
        if session.record.user != record.user {
            return Ok(Lookup::Missing);
        }
        Ok(Lookup::Found(SessionUse { user, session, new_id: Some(new_id) }))
    }

    /// [`session`](Self::session) for a session in the store's read cache,
    /// answered without waiting: `None` where the check needs more (a
    /// session not in the cache, or one that must move to a new ID). What
    /// it does answer, it answers as `session` would, touch included.
    pub fn session_now(&self, key: SessionKey, passive: bool, may_rotate: bool) -> Option<Lookup> {
        let (record, user) = self.store.cached_session(key)?;
        match self.use_session(key, record, &user, passive, may_rotate) {
            Use::Done(lookup) => Some(lookup),
            Use::Move { .. } => None,
        }
    }

    /// The rules for a session found under `key`: its deadlines, the move a
    /// role change asks for, and the touch (started here, not awaited).
    fn use_session(
        &self,
        key: SessionKey,
        record: Arc<Session>,
        user: &Arc<User>,
        passive: bool,
        may_rotate: bool,
    ) -> Use {
        let now = self.now();
        let (expires, touch) = match self.recent_uses.use_session(&self.policy, key, &record, now, passive) {
            Verdict::Expired => return Use::Done(Lookup::Missing),
            Verdict::Valid { expires, touch } => (expires, touch),
        };
        // A role change moves the session to a new ID on its next use. Where
        // the new ID could not reach the browser (forward auth), the old one
        // is not accepted either: the browser goes to the login page, which
        // moves the session and sends it straight back.
        if record.epoch != user.epoch {
            if !may_rotate {
                return Use::Done(Lookup::Missing);
            }
            let last_use = match passive {
                true => self.recent_uses.seen(key).unwrap_or(record.last_use).max(record.last_use),
                false => now,
            };
            return Use::Move { record, last_use };
        }
        let mut record = record;
        if let Some(deadline) = touch {
            Arc::make_mut(&mut record).last_use = now;
            // Touches are lazy: the answer does not wait for the write.
            self.store.touch_session(key, now, deadline);
        }
        let session = ActiveSession { key, record, expires };
        Use::Done(Lookup::Found(SessionUse { user: Arc::clone(user), session, new_id: None }))
    }

    /// Writes the uses kept in memory of sessions that the sweeper would
    /// otherwise delete by `horizon` (all of them with `Timestamp::MAX`, as
    /// on a clean stop); returns how many.
    pub fn save_recent_uses(&self, horizon: Timestamp) -> usize {
        let due = self.recent_uses.take_due(self.policy.limits.idle, self.now(), horizon);
        for &(key, last_use, deadline) in &due {
            self.store.touch_session(key, last_use, deadline);
        }
        due.len()
    }

    /// Whether `key` is an ID this process moved to a new one within the
    /// grace window (a move still being made is awaited: its commit may
    /// already have removed the old ID).
    async fn moved_session(&self, key: SessionKey) -> Lookup {
        let now = self.now();
        let done = {
            let moved = self.moved.lock().unwrap_or_else(|p| p.into_inner());
            moved.get(&key).filter(|m| now < m.at.plus(self.remember.grace)).map(|m| Arc::clone(&m.done))
        };
        match done {
            Some(done) if done.get_or_try_init(|| async { Err(()) }).await.is_ok() => Lookup::MovedAway,
            _ => Lookup::Missing,
        }
    }

    /// The shared record of moving `key`'s session (made if new), kept for
    /// the grace window and at least [`RACE_WINDOW`].
    fn moving(&self, key: SessionKey) -> Arc<tokio::sync::OnceCell<(SessionId, ActiveSession)>> {
        let now = self.now();
        let keep = self.remember.grace.max(RACE_WINDOW);
        let mut moved = self.moved.lock().unwrap_or_else(|p| p.into_inner());
        moved.retain(|_, m| now < m.at.plus(keep));
        let entry = moved.entry(key).or_insert_with(|| Moved { done: Arc::default(), at: now });
        Arc::clone(&entry.done)
    }

    /// Moves a session to a new ID, keeping its times, durably; the old ID dies.
    pub async fn rotate(
        &self,
        old: SessionKey,
        record: Session,
    ) -> Result<(SessionId, ActiveSession), StoreError> {
        let id = SessionId::generate();
        let deadline = record.deadline(self.policy.limits);
        self.store
            .create_session(NewSession {
                key: id.key(),
                session: record.clone(),
                deadline,
                replaces: vec![old],
                max_per_user: self.max_sessions_per_user,
                count_login: false,
                new_series: None,
                password_checked: None,
            })
            .await?;
        let expires = deadline;
        Ok((id.clone(), ActiveSession { key: id.key(), record: Arc::new(record), expires }))
    }

    /// Changes a user's own password after checking the current one: every
    /// other session and remember-me series ends, and the session in use
    /// moves to a new ID (returned), as after a login.
    pub async fn change_own_password(
        &self,
        user: &User,
        current: Option<&ActiveSession>,
        old_password: &str,
        new_password: String,
    ) -> Result<Option<(SessionId, ActiveSession)>, crate::admin::AdminError> {
        use crate::admin::AdminError;
        crate::password::check_new(&new_password).map_err(AdminError::InvalidPassword)?;
        // A wrong current password is a failed login: a stolen session or
        // API token cannot be used to guess the password without limit (and
        // takes its turn with the name's logins, see `login`).
        let _turn = self.login_turns.take(Pow::subject(&user.name)).await;
        let lock = self.store.lockout(user.id).await?;
        if let Some(until) = self.lockout.challenged_until(lock.as_ref(), self.now()) {
            return Err(AdminError::Challenged(until));
        }
        let ok = self
            .passwords
            .verify(old_password.to_string(), Some(user.password_hash.clone()))
            .await
            .map_err(|_| AdminError::Busy)?;
        if !ok {
            self.login_failed(Some(user), Pow::subject(&user.name), None).await?;
            return Err(AdminError::WrongPassword);
        }
        if lock.is_some() || user.logins.failed_count > 0 {
            // The right password is a success, which resets the count (SPEC §3).
            self.store.update_user(user.id, UserChange::Unlock).await?;
        }
        self.set_password(&user.name, new_password, current.map(|s| s.key)).await?;
        let Some(s) = current else { return Ok(None) };
        let moved = self.rotate(s.key, (*s.record).clone()).await?;
        // Requests already on their way with the old ID are refused without
        // clearing the cookie this answer sets.
        let _ = self.moving(s.key).set(moved.clone());
        Ok(Some(moved))
    }

    /// Ends one session durably, with the remember-me series it belongs to
    /// and any series the browser presented for the same user.
    pub async fn logout(
        &self,
        user: &User,
        key: Option<SessionKey>,
        series: &[Selector],
    ) -> Result<(), StoreError> {
        if let Some(key) = key {
            self.store.delete_session(key, true).await?;
        }
        for sel in series {
            if self.store.series(*sel).await?.is_some_and(|s| s.user == user.id) {
                self.store.delete_series(*sel).await?;
            }
        }
        tracing::info!(user = %user.name, session = ?key.map(|k| k.handle()), "logout");
        Ok(())
    }

    /// The challenge subject of `name` if that account (or phantom) demands a
    /// challenge right now.
    pub async fn challenge_subject(&self, name: &str) -> Result<Option<[u8; 16]>, StoreError> {
        let subject = Pow::subject(name);
        let user = if valid_name(name) { self.store.user_by_name(name).await? } else { None };
        let lock = self.lockout_of(user.as_ref(), subject).await?;
        Ok(self.lockout.challenged_until(lock.as_ref(), self.now()).map(|_| subject))
    }

    /// The lockout record of a user, or of the phantom for an unknown name.
    async fn lockout_of(
        &self,
        user: Option<&User>,
        subject: [u8; 16],
    ) -> Result<Option<Lockout>, StoreError> {
        match user {
            Some(u) => self.store.lockout(u.id).await,
            None => Ok(self.phantoms.lock().unwrap_or_else(|p| p.into_inner()).get(&subject).copied()),
        }
    }

    /// Makes an email-verification link for `user`'s address (valid seven days)
    /// and writes it to the log, authd's local mail sink.
    pub async fn new_verification(&self, user: &User) -> Result<Option<String>, StoreError> {
        let Some(email) = user.email.clone() else { return Ok(None) };
        let secret: [u8; 32] = crate::token::random();
        let token = Verification { user: user.id, email, expires: self.now().plus(VERIFICATION_TTL) };
        self.store.create_verification(verification_hash(&secret), token).await?;
        let link = format!("{}/verify-email?token={}", self.public_base, crate::token::b64(&secret));
        tracing::info!(user = %user.name, "email verification link (local mail sink): {link}");
        Ok(Some(link))
    }

    /// Redeems a verification link's token; the user whose address it verified.
    pub async fn redeem_verification(&self, token: &str) -> Result<Option<User>, StoreError> {
        let Some(secret) = crate::token::b64_exact::<32>(token) else { return Ok(None) };
        let user = self.store.redeem_verification(verification_hash(&secret), self.now()).await?;
        if let Some(u) = &user {
            tracing::info!(user = %u.name, "email address verified");
        }
        Ok(user)
    }

    /// Ends one session (and its series) by key, for revocations.
    pub async fn end_session(&self, key: SessionKey) -> Result<bool, StoreError> {
        let gone = self.store.delete_session(key, true).await?;
        tracing::info!(session = %key.handle(), "session revoked");
        Ok(gone)
    }
}

/// How long an email-verification link works.
pub const VERIFICATION_TTL: Duration = Duration::from_secs(7 * 86_400);

fn verification_hash(secret: &[u8; 32]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut h = blake3::Hasher::new_derive_key("authd 2026-11 email verification");
    h.update(secret);
    h.finalize_xof().fill(&mut out);
    out
}

/// Whether `name` can be a user name: 1 to 64 characters, letters, digits
/// and `.`, `_`, `-`, `@`, `+` (so names are safe in paths, headers, logs
/// and `user:token` Basic credentials).
pub fn valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=64).contains(&count)
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for ok in ["admin", "Alice.Smith", "bob@example.com", "jürgen", "a-b_c+d"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a:b", "a/b", "a\nb", "a\u{0}", &"x".repeat(65), "<script>"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_full_phantom_table_forgets_an_unlocked_name_before_a_locked_one() {
        let policy = LockoutPolicy::new(3, Duration::from_secs(300));
        let now = Timestamp(1_000_000);
        let subject = |i: usize| {
            let mut s = [0u8; 16];
            s[..8].copy_from_slice(&(i as u64).to_le_bytes());
            s
        };
        let mut phantoms = HashMap::new();
        // One locked name, first in, then a full table of names with one failure.
        for _ in 0..3 {
            remember_phantom(&mut phantoms, subject(0), policy, now);
        }
        assert!(policy.challenged_until(phantoms.get(&subject(0)), now).is_some());
        for i in 1..MAX_PHANTOMS + 50 {
            remember_phantom(&mut phantoms, subject(i), policy, Timestamp(now.0 + i as u64));
        }
        assert_eq!(phantoms.len(), MAX_PHANTOMS);
        assert!(phantoms.contains_key(&subject(0)), "the locked phantom was pushed out");
        assert!(phantoms.contains_key(&subject(MAX_PHANTOMS + 49)), "the newest name is kept");
        assert!(!phantoms.contains_key(&subject(1)), "the oldest unlocked name should go first");
    }
}

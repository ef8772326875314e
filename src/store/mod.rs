//! Storage: the records authd keeps and the narrow interface to them.
//!
//! The HTTP layer and the domain talk to a [`Store`]; only `store::redb`
//! knows about redb. Another backend (a networked one, for several authd
//! instances) implements the same trait.
//!
//! Architecture invariants:
//! - sessions are filed under [`SessionKey`], a hash of the secret ID; no
//!   secret is ever passed to the store;
//! - every record with a lifetime has an entry in the expiry index, so the
//!   sweeper's cost follows what expired, not what is stored;
//! - an operation the caller marks durable is on disk when its future
//!   resolves; touches may be lost in a crash, for at most one flush period.

pub mod codec;
mod contain;
pub mod memory;
mod overlay;
pub mod redb;
pub mod redis;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::token::{Selector, SessionKey};
use codec::{DecodeError, Reader, Writer};

/// A user's permanent number; names may be reused after a deletion, ids never.
pub type UserId = u64;

/// What a store operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The narrow interface between authd and its storage (SPEC §11).
pub trait Store: Send + Sync + 'static {
    /// The per-deployment secrets, created once with the store.
    fn secrets(&self) -> &ServerSecrets;

    /// Why the store cannot work as it should (a damaged file, which needs a
    /// restart; writes stopped by an I/O error until the file is opened
    /// again), for `/healthz`; `None` when it can (a store that is only
    /// unreachable for now is not failed).
    fn failure(&self) -> Option<String> {
        None
    }

    /// Whether other authd processes share this store (Redis): a use one
    /// process keeps in memory is unknown to the others, and the store
    /// expires a session by itself at its written deadline.
    fn shared(&self) -> bool {
        false
    }

    /// A user by id.
    fn user(&self, id: UserId) -> StoreFuture<'_, Option<User>>;
    /// A user by name, case-insensitively.
    fn user_by_name(&self, name: &str) -> StoreFuture<'_, Option<User>>;
    /// All users, by name.
    fn users(&self) -> StoreFuture<'_, Vec<User>>;
    /// Creates a user; [`StoreError::Conflict`] if the name is taken.
    fn create_user(&self, new: NewUser) -> StoreFuture<'_, User>;
    /// Applies one change to a user (durably); [`StoreError::NotFound`] if absent.
    fn update_user(&self, id: UserId, change: UserChange) -> StoreFuture<'_, User>;
    /// Deletes a user and everything that belongs to them.
    fn delete_user(&self, id: UserId) -> StoreFuture<'_, bool>;

    /// A session and its user (shared, read-only: this is the hot path).
    fn session(&self, key: SessionKey) -> StoreFuture<'_, Option<(Arc<Session>, Arc<User>)>>;
    /// The same from an in-process cache, without waiting, if the store
    /// keeps one and has the answer (`None` means "ask `session`").
    fn cached_session(&self, _key: SessionKey) -> Option<(Arc<Session>, Arc<User>)> {
        None
    }
    /// Creates a session durably, per `plan`; returns the keys it removed.
    fn create_session(&self, plan: NewSession) -> StoreFuture<'_, Vec<SessionKey>>;
    /// Records a later last use, without waiting: lazily (it may be lost in
    /// a crash) and on the store's own time; the store logs a failure.
    fn touch_session(&self, key: SessionKey, last_use: Timestamp, deadline: Timestamp);
    /// Deletes a session durably (and its remember-me series if `with_series`);
    /// `false` if it was not there.
    fn delete_session(&self, key: SessionKey, with_series: bool) -> StoreFuture<'_, bool>;
    /// A user's sessions, oldest first.
    fn sessions_of(&self, user: UserId) -> StoreFuture<'_, Vec<(SessionKey, Session)>>;
    /// Every session, oldest first (for administrators; a full scan).
    fn all_sessions(&self) -> StoreFuture<'_, Vec<(SessionKey, Session)>>;
    /// Deletes a user's sessions and remember-me series durably, except
    /// `keep` and its series; returns how many sessions.
    fn revoke_all_of(&self, user: UserId, keep: Option<SessionKey>) -> StoreFuture<'_, usize>;

    /// A remember-me series.
    fn series(&self, selector: Selector) -> StoreFuture<'_, Option<Series>>;
    /// If the series' current validator hash is `expected`, rotates it to
    /// `next` (keeping `expected` valid until `grace_until`) and creates
    /// `session`, durably and atomically. Otherwise changes nothing and
    /// returns the series as it is.
    fn rotate_series(
        &self,
        selector: Selector,
        expected: [u8; 32],
        next: [u8; 32],
        grace_until: Timestamp,
        session: NewSession,
    ) -> StoreFuture<'_, Rotation>;
    /// Deletes a series durably; `false` if it was not there.
    fn delete_series(&self, selector: Selector) -> StoreFuture<'_, bool>;

    /// A user's failed-login (lockout) record.
    fn lockout(&self, user: UserId) -> StoreFuture<'_, Option<Lockout>>;
    /// Records a failed login atomically: Jira's counters, and the lockout
    /// record replaced by `step(old)` (which also says when to forget it).
    fn login_failed(&self, user: UserId, at: Timestamp, step: LockoutStep) -> StoreFuture<'_, Lockout>;

    /// Files an API token (by hash), durably.
    fn create_token(&self, hash: [u8; 16], token: ApiTokenRecord) -> StoreFuture<'_, ()>;
    /// The API token with this hash, and its user.
    fn token(&self, hash: [u8; 16]) -> StoreFuture<'_, Option<(ApiTokenRecord, User)>>;
    /// A user's API tokens (hash, record), oldest first.
    fn tokens_of(&self, user: UserId) -> StoreFuture<'_, Vec<([u8; 16], ApiTokenRecord)>>;
    /// Deletes the API token whose hash starts with `id` (of `user`, if
    /// given), durably; the deleted token's record.
    fn delete_token(&self, id: [u8; 6], user: Option<UserId>) -> StoreFuture<'_, Option<ApiTokenRecord>>;

    /// Files an email-verification token (by hash) for `user`.
    fn create_verification(&self, hash: [u8; 16], token: Verification) -> StoreFuture<'_, ()>;
    /// Redeems a verification token: marks the address verified and deletes
    /// the token. `None` if unknown, expired, or its user or address changed.
    fn redeem_verification(&self, hash: [u8; 16], now: Timestamp) -> StoreFuture<'_, Option<User>>;
    /// The number of stored sessions (live or not yet swept).
    fn session_count(&self) -> StoreFuture<'_, u64>;

    /// Deletes up to `batch` records whose deadline is before `now`.
    fn sweep(&self, now: Timestamp, limits: SessionLimits, batch: usize) -> StoreFuture<'_, SweepReport>;
    /// Makes every acknowledged write durable.
    fn flush(&self) -> StoreFuture<'_, ()>;

    /// Everything stored, for `authd migrate`.
    fn export(&self) -> StoreFuture<'_, Dump>;
    /// Writes `dump` into this store, which must hold no users; the
    /// deployment's secrets move with it, so cookies and tokens keep working.
    fn import(&self, dump: Dump) -> StoreFuture<'_, ()>;
}

/// The whole content of a store (for moving between backends).
#[derive(Clone, Debug, Default)]
pub struct Dump {
    /// Server id and XSRF key; `None` only in an empty dump.
    pub secrets: Option<(String, [u8; 32])>,
    /// The next user id to hand out.
    pub next_user_id: u64,
    /// Users.
    pub users: Vec<User>,
    /// Sessions with the deadline each is filed under.
    pub sessions: Vec<(SessionKey, Session, Timestamp)>,
    /// Remember-me series.
    pub series: Vec<(Selector, Series)>,
    /// Lockout records with their forget times.
    pub lockouts: Vec<(UserId, Lockout, Timestamp)>,
    /// API tokens by hash.
    pub tokens: Vec<([u8; 16], ApiTokenRecord)>,
    /// Email-verification tokens by hash.
    pub verifications: Vec<([u8; 16], Verification)>,
}

/// Secrets and identity of one authd deployment.
#[derive(Clone)]
pub struct ServerSecrets {
    /// Jira-style server id (`ABCD-EFGH-IJKL-MNOP`), the first part of XSRF tokens.
    pub server_id: String,
    /// Key for the keyed-blake3 MACs on XSRF tokens.
    pub xsrf_key: [u8; 32],
}

impl fmt::Debug for ServerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSecrets").field("server_id", &self.server_id).finish_non_exhaustive()
    }
}

/// The session timeouts the store needs to re-index sessions while sweeping.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    /// Idle timeout.
    pub idle: Duration,
    /// Absolute timeout.
    pub absolute: Duration,
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired sessions deleted.
    pub sessions: u64,
    /// Expired remember-me series deleted.
    pub series: u64,
    /// Lockout records forgotten.
    pub lockouts: u64,
    /// Expired verification tokens deleted.
    pub verifications: u64,
    /// Index entries that pointed at records already gone or still live (re-filed).
    pub stale: u64,
    /// Whether more expired entries may remain.
    pub more: bool,
}

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Permanent id.
    pub id: UserId,
    /// The name as it was entered (unique case-insensitively).
    pub name: String,
    /// Optional email address.
    pub email: Option<String>,
    /// Whether the email address has been verified.
    pub email_verified: bool,
    /// Whether the user has the `admin` role.
    pub admin: bool,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When the user was created.
    pub created: Timestamp,
    /// Login counters (Jira's `loginInfo`).
    pub logins: LoginStats,
    /// Bumped when the user's roles change; a session made under an older
    /// epoch moves to a new ID on its next use (SPEC §5).
    pub epoch: u32,
}

/// Jira's login counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginStats {
    /// Successful logins, ever.
    pub login_count: u64,
    /// Failures since the last success.
    pub failed_count: u32,
    /// Failures, ever.
    pub total_failed_count: u64,
    /// Time of the last failure.
    pub last_failed: Option<Timestamp>,
    /// Time of the latest success.
    pub last_login: Option<Timestamp>,
    /// Time of the success before the latest.
    pub previous_login: Option<Timestamp>,
}

impl LoginStats {
    /// The counters after a successful login at `now`.
    pub fn succeeded(self, now: Timestamp) -> Self {
        LoginStats {
            login_count: self.login_count.saturating_add(1),
            failed_count: 0,
            previous_login: self.last_login,
            last_login: Some(now),
            ..self
        }
    }

    /// The counters after a failed login at `now`.
    pub fn failed(self, now: Timestamp) -> Self {
        LoginStats {
            failed_count: self.failed_count.saturating_add(1),
            total_failed_count: self.total_failed_count.saturating_add(1),
            last_failed: Some(now),
            ..self
        }
    }
}

/// A user to be created.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// The name as entered.
    pub name: String,
    /// Optional email address.
    pub email: Option<String>,
    /// Whether the email address counts as verified.
    pub email_verified: bool,
    /// Whether the user has the `admin` role.
    pub admin: bool,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub created: Timestamp,
}

impl NewUser {
    /// The stored user this becomes under `id`: no logins yet, role epoch 0.
    pub fn into_user(self, id: UserId) -> User {
        User {
            id,
            name: self.name,
            email: self.email,
            email_verified: self.email_verified,
            admin: self.admin,
            password_hash: self.password_hash,
            created: self.created,
            logins: LoginStats::default(),
            epoch: 0,
        }
    }
}

/// One change to a user.
#[derive(Clone, Debug)]
pub enum UserChange {
    /// A new password hash; ends all of the user's sessions except `keep`.
    Password { hash: String, keep: Option<SessionKey> },
    /// Marks the email address verified.
    VerifyEmail,
    /// Clears the failure count and any lockout.
    Unlock,
    /// Grants or withdraws the admin role (and moves every session to a new ID).
    Admin(bool),
}

/// A stored session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Whose session it is.
    pub user: UserId,
    /// Login time.
    pub created: Timestamp,
    /// Last persisted use.
    pub last_use: Timestamp,
    /// Client address at login.
    pub address: Option<IpAddr>,
    /// A short description of the browser at login.
    pub browser: String,
    /// The remember-me series this browser holds, if any.
    pub series: Option<Selector>,
    /// The nonce of the session's XSRF token.
    pub xsrf: [u8; 10],
    /// The user's role epoch when the session got its ID.
    pub epoch: u32,
}

impl Session {
    /// When the session ends: the earlier of the idle and absolute deadlines.
    pub fn deadline(&self, limits: SessionLimits) -> Timestamp {
        self.last_use.plus(limits.idle).min(self.created.plus(limits.absolute))
    }
}

/// A session to be created, and what its creation replaces.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// The new session's key.
    pub key: SessionKey,
    /// The new session.
    pub session: Session,
    /// When the sweeper may delete it.
    pub deadline: Timestamp,
    /// Sessions the request carried, deleted in the same transaction (no fixation).
    pub replaces: Vec<SessionKey>,
    /// Evict the user's oldest sessions beyond this many.
    pub max_per_user: u32,
    /// Count this as a successful password login (Jira's `loginInfo`).
    pub count_login: bool,
    /// A remember-me series created with the session.
    pub new_series: Option<(Selector, Series)>,
    /// For a password login, the password hash the password was checked
    /// against: if the user's hash is no longer this one (a password change
    /// raced the login), nothing is written and the answer is `NotFound`,
    /// as for a user deleted meanwhile.
    pub password_checked: Option<String>,
}

/// A remember-me series: one browser's standing permission to log in again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// Whose.
    pub user: UserId,
    /// blake3 hash of the current validator.
    pub current: [u8; 32],
    /// Hash of the validator before the last rotation.
    pub previous: Option<[u8; 32]>,
    /// The previous validator is accepted until then.
    pub previous_until: Timestamp,
    /// When the series began.
    pub created: Timestamp,
    /// When it ends (never extended by use).
    pub expires: Timestamp,
}

/// A user's failed-login state (see `lockout` for the machine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lockout {
    /// Consecutive failures since the last trigger.
    pub strikes: u32,
    /// How many times the challenge has been triggered.
    pub level: u32,
    /// The challenge stands until then.
    pub until: Option<Timestamp>,
    /// The latest failure.
    pub last_event: Timestamp,
}

/// A transition of the lockout machine: the new record, and when to forget
/// it. A store may call it more than once (compare-and-set retries); it is
/// a pure function of the old record.
pub type LockoutStep = Box<dyn Fn(Option<Lockout>) -> (Lockout, Timestamp) + Send + Sync>;

/// An API token (stored under the hash of its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// Whose.
    pub user: UserId,
    /// What it is for, as its owner said.
    pub label: String,
    /// When it was made.
    pub created: Timestamp,
}

/// An email-verification token (stored under the hash of its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Whose address.
    pub user: UserId,
    /// The address it verifies (a changed address voids it).
    pub email: String,
    /// When it stops working.
    pub expires: Timestamp,
}

/// What [`Store::rotate_series`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Rotated, and the session was created.
    Rotated,
    /// The current validator was not the expected one; nothing changed.
    Changed(Series),
    /// No such series.
    Missing,
}

/// Why a store operation failed.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// A unique name is taken.
    Conflict(String),
    /// The record does not exist.
    NotFound,
    /// A stored record could not be decoded.
    Corrupt(DecodeError),
    /// The database failed (I/O, full disk, ...).
    Storage(String),
    /// The store is shut down.
    Closed,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict(what) => write!(f, "{what} already exists"),
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Corrupt(e) => write!(f, "database corrupt: {e}"),
            StoreError::Storage(e) => write!(f, "database error: {e}"),
            StoreError::Closed => f.write_str("database closed"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        StoreError::Corrupt(e)
    }
}

/// Checks that every step from schema `from` up to `to` is one this build
/// knows, for a store to migrate before it writes the new stamp (SPEC §11:
/// an older file or namespace is migrated). Schema 1 is the first released
/// layout: pre-release stores (0) have its tables and records, so 0 -> 1
/// converts nothing.
pub fn check_migration(from: u64, to: u64) -> Result<(), StoreError> {
    match (from..to).find(|&step| step != 0) {
        Some(step) => Err(StoreError::Storage(format!("no migration from schema {step}"))),
        None => Ok(()),
    }
}

/// Normalises a user name for unique, case-insensitive lookup.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

const USER_FORMAT: u8 = 1;
const SESSION_FORMAT: u8 = 1;
const SERIES_FORMAT: u8 = 1;
const LOCKOUT_FORMAT: u8 = 1;
const VERIFICATION_FORMAT: u8 = 1;
const TOKEN_FORMAT: u8 = 1;

impl User {
    /// The stored bytes of this user (without its id, which is the key).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(USER_FORMAT);
        w.str(&self.name)
            .opt_str(self.email.as_deref())
            .bool(self.email_verified)
            .bool(self.admin)
            .str(&self.password_hash)
            .u64(self.created.0);
        let l = &self.logins;
        w.u64(l.login_count)
            .u32(l.failed_count)
            .u64(l.total_failed_count)
            .opt_u64(l.last_failed.map(|t| t.0))
            .opt_u64(l.last_login.map(|t| t.0))
            .opt_u64(l.previous_login.map(|t| t.0));
        w.u32(self.epoch);
        w.finish()
    }

    /// Reads a user back from its stored bytes.
    pub fn decode(id: UserId, bytes: &[u8]) -> Result<User, DecodeError> {
        let mut r = Reader::new(bytes, USER_FORMAT)?;
        let user = User {
            id,
            name: r.str()?,
            email: r.opt_str()?,
            email_verified: r.bool()?,
            admin: r.bool()?,
            password_hash: r.str()?,
            created: Timestamp(r.u64()?),
            logins: LoginStats {
                login_count: r.u64()?,
                failed_count: r.u32()?,
                total_failed_count: r.u64()?,
                last_failed: r.opt_u64()?.map(Timestamp),
                last_login: r.opt_u64()?.map(Timestamp),
                previous_login: r.opt_u64()?.map(Timestamp),
            },
            epoch: r.u32()?,
        };
        r.finish()?;
        Ok(user)
    }
}

impl Session {
    /// The stored bytes of this session.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(SESSION_FORMAT);
        w.u64(self.user)
            .u64(self.created.0)
            .u64(self.last_use.0)
            .opt_ip(self.address)
            .short_str(&self.browser)
            .opt_array(self.series.as_ref().map(|s| &s.0))
            .array(&self.xsrf)
            .u32(self.epoch);
        w.finish()
    }

    /// Reads a session back from its stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Session, DecodeError> {
        let mut r = Reader::new(bytes, SESSION_FORMAT)?;
        let s = Session {
            user: r.u64()?,
            created: Timestamp(r.u64()?),
            last_use: Timestamp(r.u64()?),
            address: r.opt_ip()?,
            browser: r.short_str()?,
            series: r.opt_array()?.map(Selector),
            xsrf: r.array()?,
            epoch: r.u32()?,
        };
        r.finish()?;
        Ok(s)
    }
}

impl Series {
    /// The stored bytes of this series.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(SERIES_FORMAT);
        w.u64(self.user)
            .array(&self.current)
            .opt_array(self.previous.as_ref())
            .u64(self.previous_until.0)
            .u64(self.created.0)
            .u64(self.expires.0);
        w.finish()
    }

    /// Reads a series back from its stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Series, DecodeError> {
        let mut r = Reader::new(bytes, SERIES_FORMAT)?;
        let s = Series {
            user: r.u64()?,
            current: r.array()?,
            previous: r.opt_array()?,
            previous_until: Timestamp(r.u64()?),
            created: Timestamp(r.u64()?),
            expires: Timestamp(r.u64()?),
        };
        r.finish()?;
        Ok(s)
    }
}

impl Lockout {
    /// The stored bytes, with the time the record may be forgotten.
    pub fn encode(&self, forget_at: Timestamp) -> Vec<u8> {
        let mut w = Writer::new(LOCKOUT_FORMAT);
        w.u32(self.strikes)
            .u32(self.level)
            .opt_u64(self.until.map(|t| t.0))
            .u64(self.last_event.0)
            .u64(forget_at.0);
        w.finish()
    }

    /// Reads a record and its forget time back.
    pub fn decode(bytes: &[u8]) -> Result<(Lockout, Timestamp), DecodeError> {
        let mut r = Reader::new(bytes, LOCKOUT_FORMAT)?;
        let l = Lockout {
            strikes: r.u32()?,
            level: r.u32()?,
            until: r.opt_u64()?.map(Timestamp),
            last_event: Timestamp(r.u64()?),
        };
        let forget = Timestamp(r.u64()?);
        r.finish()?;
        Ok((l, forget))
    }
}

impl ApiTokenRecord {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(TOKEN_FORMAT);
        w.u64(self.user).short_str(&self.label).u64(self.created.0);
        w.finish()
    }

    /// Reads a token record back.
    pub fn decode(bytes: &[u8]) -> Result<ApiTokenRecord, DecodeError> {
        let mut r = Reader::new(bytes, TOKEN_FORMAT)?;
        let t = ApiTokenRecord { user: r.u64()?, label: r.short_str()?, created: Timestamp(r.u64()?) };
        r.finish()?;
        Ok(t)
    }
}

impl Verification {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(VERIFICATION_FORMAT);
        w.u64(self.user).str(&self.email).u64(self.expires.0);
        w.finish()
    }

    /// Reads a token record back.
    pub fn decode(bytes: &[u8]) -> Result<Verification, DecodeError> {
        let mut r = Reader::new(bytes, VERIFICATION_FORMAT)?;
        let v = Verification { user: r.u64()?, email: r.str()?, expires: Timestamp(r.u64()?) };
        r.finish()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_migration_steps_pass() {
        assert!(check_migration(0, 1).is_ok(), "pre-release stores only need the stamp");
        assert!(check_migration(1, 1).is_ok());
        let e = check_migration(0, 3).unwrap_err().to_string();
        assert!(e.contains("no migration from schema 1"), "{e}");
    }

    #[test]
    fn lockout_and_verification_round_trip() {
        let l = Lockout { strikes: 2, level: 3, until: Some(Timestamp(7)), last_event: Timestamp(5) };
        assert_eq!(Lockout::decode(&l.encode(Timestamp(99))).unwrap(), (l, Timestamp(99)));
        let v = Verification { user: 4, email: "a@b".into(), expires: Timestamp(8) };
        assert_eq!(Verification::decode(&v.encode()).unwrap(), v);
    }

    fn user() -> User {
        User {
            id: 7,
            name: "Alice".into(),
            email: Some("a@example.com".into()),
            email_verified: true,
            admin: false,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created: Timestamp(1_700_000_000_000),
            logins: LoginStats {
                login_count: 3,
                failed_count: 1,
                total_failed_count: 4,
                last_failed: Some(Timestamp(5)),
                last_login: Some(Timestamp(6)),
                previous_login: None,
            },
            epoch: 2,
        }
    }

    #[test]
    fn user_round_trips() {
        let u = user();
        assert_eq!(User::decode(7, &u.encode()).unwrap(), u);
    }

    #[test]
    fn session_round_trips_and_is_small() {
        let s = Session {
            user: 9,
            created: Timestamp(10),
            last_use: Timestamp(20),
            address: Some("127.0.0.1".parse().unwrap()),
            browser: "Firefox on Linux".into(),
            series: Some(Selector([5; 16])),
            xsrf: [9; 10],
            epoch: 3,
        };
        let bytes = s.encode();
        assert!(bytes.len() < 96, "{} bytes", bytes.len());
        assert_eq!(Session::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn series_round_trips() {
        let s = Series {
            user: 3,
            current: [1; 32],
            previous: Some([2; 32]),
            previous_until: Timestamp(9),
            created: Timestamp(1),
            expires: Timestamp(100),
        };
        assert_eq!(Series::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn every_prefix_of_a_record_fails_cleanly() {
        let bytes = user().encode();
        for n in 0..bytes.len() {
            assert!(User::decode(1, &bytes[..n]).is_err(), "prefix {n} decoded");
        }
    }

    #[test]
    fn deadline_is_the_earlier_of_idle_and_absolute() {
        let limits = SessionLimits { idle: Duration::from_secs(10), absolute: Duration::from_secs(100) };
        let mut s = Session {
            user: 1,
            created: Timestamp(0),
            last_use: Timestamp(0),
            address: None,
            browser: String::new(),
            series: None,
            xsrf: [0; 10],
            epoch: 0,
        };
        assert_eq!(s.deadline(limits), Timestamp(10_000));
        s.last_use = Timestamp(95_000);
        assert_eq!(s.deadline(limits), Timestamp(100_000));
    }

    #[test]
    fn login_counters_follow_jira() {
        let t = |n| Timestamp(n);
        let l = LoginStats::default().failed(t(1)).failed(t(2));
        assert_eq!((l.failed_count, l.total_failed_count, l.last_failed), (2, 2, Some(t(2))));
        let l = l.succeeded(t(3));
        assert_eq!((l.failed_count, l.login_count, l.last_login, l.previous_login), (0, 1, Some(t(3)), None));
        let l = l.succeeded(t(4));
        assert_eq!((l.login_count, l.previous_login, l.total_failed_count), (2, Some(t(3)), 2));
    }
}

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

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::metrics::{LoginOutcome, Metrics};
use crate::password::{PasswordPool, PoolBusy};
use crate::remember::{self, Verdict as RememberVerdict};
use crate::session::{SessionPolicy, Verdict};
use crate::store::{NewSession, Rotation, Series, Session, Store, StoreError, User, UserChange};
use crate::token::{RememberToken, Selector, SessionId, SessionKey, Validator};
use crate::xsrf::{State, Xsrf};

/// The authentication service, shared by every request.
pub struct Auth {
    /// The storage behind everything.
    pub store: Arc<dyn Store>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Session timeouts.
    pub policy: SessionPolicy,
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
    /// The record.
    pub record: Session,
    /// When it ends if not used again.
    pub expires: Timestamp,
}

/// Who a request is: a user, and the session it used (if any: a request let
/// in by the remember-me grace window has none).
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// Who.
    pub user: User,
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
}

/// A successful login (by password or by remember-me).
#[derive(Debug)]
pub struct LoggedIn {
    /// The new session's secret ID, for the cookie; shown to nobody else.
    pub id: SessionId,
    /// The user, with counters updated by this login.
    pub user: User,
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
    /// Let in by the grace window: no new session, no new cookie.
    Grace(User),
    /// Unknown or ended series: the cookie should be cleared.
    Rejected,
    /// A stale validator: the user's sessions and series were all revoked.
    Theft,
}

impl Auth {
    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The XSRF token of a session.
    pub fn session_xsrf(&self, user: &User, session: &Session) -> String {
        self.xsrf.token(session.xsrf, State::LoggedIn(user.id))
    }

    /// Checks a user name and password and, if they are right, starts a session.
    pub async fn login(&self, name: &str, password: &str, ctx: LoginContext) -> Result<LoggedIn, LoginError> {
        let user = if valid_name(name) { self.store.user_by_name(name).await? } else { None };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self.passwords.verify(password.to_string(), hash).await?;
        let user = match user {
            Some(u) if ok => u,
            other => {
                self.login_failed(other.as_ref()).await?;
                return Err(LoginError::BadCredentials);
            }
        };
        if user.email.is_some() && !user.email_verified {
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
        self.store
            .create_session(NewSession {
                key: id.key(),
                session: record.clone(),
                deadline,
                replaces: ctx.replaces,
                max_per_user: self.max_sessions_per_user,
                count_login: true,
                new_series: remember.as_ref().map(|(t, s)| (t.selector, s.clone())),
            })
            .await?;
        self.metrics.login(LoginOutcome::Ok);
        let mut user = user;
        user.logins = user.logins.succeeded(now);
        tracing::info!(user = %user.name, session = %id.key().handle(), remember = remember.is_some(), "login");
        Ok(LoggedIn {
            session: ActiveSession { key: id.key(), record, expires: deadline },
            id,
            user,
            remember: remember.map(|(t, s)| (t, s.expires)),
        })
    }

    /// Records a failed login. The unknown-user path does a durable write of
    /// the same kind, so the two cannot be told apart by timing.
    async fn login_failed(&self, user: Option<&User>) -> Result<(), StoreError> {
        self.metrics.login(LoginOutcome::Failed);
        match user {
            Some(u) => {
                self.store.update_user(u.id, UserChange::LoginFailed { at: self.now() }).await?;
            }
            None => self.store.flush().await?,
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
                    return Ok(match self.store.user(series.user).await? {
                        Some(user) => Remembered::Grace(user),
                        None => Remembered::Rejected,
                    });
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
                                session: ActiveSession { key: id.key(), record, expires: deadline },
                                id,
                                user,
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
        Session { user: user.id, created: now, last_use: now, address, browser, series: None, xsrf }
    }

    /// The session behind a session ID, if it is alive; slides it unless `passive`.
    pub async fn session(
        &self,
        id: &SessionId,
        passive: bool,
    ) -> Result<Option<(User, ActiveSession)>, StoreError> {
        let key = id.key();
        let Some((record, user)) = self.store.session(key).await? else {
            return Ok(None);
        };
        let now = self.now();
        match self.policy.judge(&record, now, passive) {
            Verdict::Expired => Ok(None),
            Verdict::Valid { expires, touch } => {
                let mut record = record;
                if let Some(deadline) = touch {
                    record.last_use = now;
                    let store = Arc::clone(&self.store);
                    // Touches are lazy: the answer does not wait for the write.
                    tokio::spawn(async move {
                        if let Err(e) = store.touch_session(key, now, deadline).await {
                            tracing::warn!("could not record session use: {e}");
                        }
                    });
                }
                Ok(Some((user, ActiveSession { key, record, expires })))
            }
        }
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

    /// Ends one session (and its series) by key, for revocations.
    pub async fn end_session(&self, key: SessionKey) -> Result<bool, StoreError> {
        let gone = self.store.delete_session(key, true).await?;
        tracing::info!(session = %key.handle(), "session revoked");
        Ok(gone)
    }
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
}

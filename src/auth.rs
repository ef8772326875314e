//! The authentication service: logins, session checks, logouts.
//!
//! This is the domain layer between HTTP and the store. It never sees
//! hyper types, and it reads the time only through its [`Clock`].
//!
//! Invariants:
//! - a login deletes every session ID the request carried (no fixation) in
//!   the same durable transaction that creates the new one;
//! - a wrong user name costs the same argon2 work, and the same durable
//!   write, as a wrong password;
//! - a session check writes at most once per touch interval per session.

use std::net::IpAddr;
use std::sync::Arc;

use crate::clock::{Clock, Timestamp};
use crate::metrics::{LoginOutcome, Metrics};
use crate::password::{PasswordPool, PoolBusy};
use crate::session::{SessionPolicy, Verdict};
use crate::store::{NewSession, Session, Store, StoreError, User, UserChange};
use crate::token::{SessionId, SessionKey};

/// The authentication service, shared by every request.
pub struct Auth {
    /// The storage behind everything.
    pub store: Arc<dyn Store>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Session timeouts.
    pub policy: SessionPolicy,
    /// argon2 runner.
    pub passwords: PasswordPool,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Sessions per user before the oldest is evicted.
    pub max_sessions_per_user: u32,
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

/// A user with the session the request used.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// Who.
    pub user: User,
    /// Through which session.
    pub session: ActiveSession,
}

/// What a login needs besides the credentials.
#[derive(Clone, Debug, Default)]
pub struct LoginContext {
    /// Sessions the request carried; they end with this login.
    pub replaces: Vec<SessionKey>,
    /// The client's address.
    pub address: Option<IpAddr>,
    /// A short description of the client's browser.
    pub browser: String,
}

/// A successful login.
#[derive(Debug)]
pub struct LoggedIn {
    /// The new session's secret ID, for the cookie; shown to nobody else.
    pub id: SessionId,
    /// The user, with counters updated by this login.
    pub user: User,
    /// The new session.
    pub session: ActiveSession,
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

impl Auth {
    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
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
        let now = self.now();
        let id = SessionId::generate();
        let record = Session {
            user: user.id,
            created: now,
            last_use: now,
            address: ctx.address,
            browser: ctx.browser,
        };
        let deadline = self.policy.deadline_for_new(now);
        self.store
            .create_session(NewSession {
                key: id.key(),
                session: record.clone(),
                deadline,
                replaces: ctx.replaces,
                max_per_user: self.max_sessions_per_user,
                count_login: true,
            })
            .await?;
        self.metrics.login(LoginOutcome::Ok);
        let mut user = user;
        user.logins = user.logins.succeeded(now);
        tracing::info!(user = %user.name, session = %id.key().handle(), "login");
        Ok(LoggedIn { session: ActiveSession { key: id.key(), record, expires: deadline }, id, user })
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

    /// The session behind a session ID, if it is alive; slides it unless `passive`.
    pub async fn session(&self, id: &SessionId, passive: bool) -> Result<Option<Authenticated>, StoreError> {
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
                Ok(Some(Authenticated { user, session: ActiveSession { key, record, expires } }))
            }
        }
    }

    /// Ends one session durably.
    pub async fn logout(&self, key: SessionKey) -> Result<bool, StoreError> {
        let gone = self.store.delete_session(key).await?;
        tracing::info!(session = %key.handle(), "logout");
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

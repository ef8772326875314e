//! User and session administration, shared by the CLI (on a stopped
//! server's data dir) and the admin API (on a running one), so both apply
//! the same rules and print the same views.

use serde::{Deserialize, Serialize};

use crate::auth::{valid_name, Auth};
use crate::clock::Timestamp;
use crate::password::{check_new, PasswordRule};
use crate::store::{ApiTokenRecord, NewUser, Session, StoreError, User, UserChange};
use crate::token::{token_id, ApiToken, Handle, SessionKey};

/// A user as listings show it (no password hash, ever).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub name: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub roles: Vec<String>,
    pub created: String,
    pub login_count: u64,
    pub failed_login_count: u32,
    pub last_login_time: Option<String>,
    /// Only in the answer to "add": the link that verifies the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_link: Option<String>,
}

impl TokenView {
    /// The view of one stored token of `user`.
    pub fn new(hash: &[u8; 16], t: &ApiTokenRecord, user: &str) -> Self {
        TokenView {
            id: token_id(hash),
            user: user.to_string(),
            label: t.label.clone(),
            created: t.created.to_iso8601(),
            token: None,
        }
    }
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            name: u.name.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            roles: roles(u).iter().map(|r| r.to_string()).collect(),
            created: u.created.to_iso8601(),
            login_count: u.logins.login_count,
            failed_login_count: u.logins.failed_count,
            last_login_time: u.logins.last_login.map(|t| t.to_iso8601()),
            verification_link: None,
        }
    }
}

/// A user's roles as strings (`admin`, or none).
pub fn roles(u: &User) -> &'static [&'static str] {
    if u.admin {
        &["admin"]
    } else {
        &[]
    }
}

/// A session as listings show it: the public handle, never the ID.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub handle: String,
    pub user: String,
    pub created: String,
    pub last_used: String,
    pub address: Option<String>,
    pub browser: String,
}

impl SessionView {
    /// The view of one stored session of `user`.
    pub fn new(key: &SessionKey, s: &Session, user: &str) -> Self {
        SessionView {
            handle: key.handle().to_string(),
            user: user.to_string(),
            created: s.created.to_iso8601(),
            last_used: s.last_use.to_iso8601(),
            address: s.address.map(|a| a.to_string()),
            browser: s.browser.clone(),
        }
    }
}

/// An API token as listings show it (never the secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: String,
    pub user: String,
    pub label: String,
    pub created: String,
    /// Only in the answer to "add": the token itself, shown this once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The body of "add a token".
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AddToken {
    #[serde(default)]
    pub label: String,
}

/// The body of "add a user" (CLI and admin API).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddUser {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub unverified: bool,
}

/// Why an administrative action failed.
#[derive(Debug)]
pub enum AdminError {
    /// The name is not a valid user name.
    InvalidName(String),
    /// The password breaks a rule.
    InvalidPassword(PasswordRule),
    /// The email address is malformed.
    InvalidEmail(String),
    /// A token label holds control characters (it is shown in listings).
    InvalidLabel,
    /// The name is taken.
    UserExists(String),
    /// No such user.
    NoSuchUser(String),
    /// No session has this handle.
    NoSuchSession(String),
    /// No API token has this id.
    NoSuchToken(String),
    /// The current password given was not the user's.
    WrongPassword,
    /// Too many wrong passwords: the account demands a challenge until then
    /// (the login page's), and no password of it is checked meanwhile.
    Challenged(Timestamp),
    /// The password pool is full.
    Busy,
    /// The store failed.
    Store(StoreError),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::InvalidName(n) => {
                // Escaped: the name may hold control characters (one clear line).
                write!(
                    f,
                    "'{}' is not a valid user name (1-64 letters, digits, '.', '_', '-', '@', '+')",
                    n.escape_debug()
                )
            }
            AdminError::InvalidPassword(r) => write!(f, "{r}"),
            AdminError::InvalidEmail(e) => write!(f, "'{}' is not a valid email address", e.escape_debug()),
            AdminError::InvalidLabel => f.write_str("a token label may not contain control characters"),
            AdminError::UserExists(n) => write!(f, "user '{n}' already exists"),
            AdminError::NoSuchUser(n) => write!(f, "no user named '{n}'"),
            AdminError::NoSuchSession(h) => write!(f, "no session with handle '{h}'"),
            AdminError::NoSuchToken(id) => write!(f, "no API token with id '{id}'"),
            AdminError::WrongPassword => f.write_str("the current password is not correct"),
            AdminError::Challenged(_) => f.write_str(
                "too many wrong passwords for this account; log in again through the login page, or try again later",
            ),
            AdminError::Busy => f.write_str("the server is busy; try again"),
            AdminError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<StoreError> for AdminError {
    /// A conflict stays a store error ("user 'x' already exists"): its text
    /// describes the conflict, it is not a user name for [`AdminError::UserExists`]
    /// (which `add_user` sets itself).
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}

/// Whether `e` looks like an email address (one `@`, no spaces, at most 254 bytes).
pub fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
}

impl Auth {
    /// Looks a user up by name, or fails with [`AdminError::NoSuchUser`].
    pub async fn find_user(&self, name: &str) -> Result<User, AdminError> {
        self.store.user_by_name(name).await?.ok_or_else(|| AdminError::NoSuchUser(name.to_string()))
    }

    /// Creates a user; an email address gets a verification link (logged,
    /// and returned in the view).
    pub async fn add_user(&self, req: AddUser) -> Result<UserView, AdminError> {
        if !valid_name(&req.name) {
            return Err(AdminError::InvalidName(req.name));
        }
        check_new(&req.password).map_err(AdminError::InvalidPassword)?;
        if let Some(e) = &req.email {
            if !valid_email(e) {
                return Err(AdminError::InvalidEmail(e.clone()));
            }
        }
        let hash = self.hash_password(req.password).await?;
        // `--unverified` holds with or without an address: such a user's
        // logins get 409 until `user verify` (or the admin API) verifies it.
        let verified = !req.unverified;
        let name = req.name.clone();
        let user = self
            .store
            .create_user(NewUser {
                email_verified: verified,
                email: req.email,
                admin: req.admin,
                password_hash: hash,
                created: self.now(),
                name: req.name,
            })
            .await
            .map_err(|e| match e {
                // The store's conflict already reads "user '<name>'"; name the user once.
                StoreError::Conflict(_) => AdminError::UserExists(name),
                other => other.into(),
            })?;
        tracing::info!(user = %user.name, admin = user.admin, "user added");
        // SPEC §3: an address always gets its link (the local mail sink);
        // one added without --unverified already counts as verified, and
        // its link just confirms it.
        let mut view = UserView::from(&user);
        view.verification_link = self.new_verification(&user).await?;
        Ok(view)
    }

    /// Sets a new password; ends every session of the user except `keep`.
    pub async fn set_password(
        &self,
        name: &str,
        password: String,
        keep: Option<SessionKey>,
    ) -> Result<User, AdminError> {
        check_new(&password).map_err(AdminError::InvalidPassword)?;
        let user = self.find_user(name).await?;
        let hash = self.hash_password(password).await?;
        let user = self.store.update_user(user.id, UserChange::Password { hash, keep }).await?;
        tracing::info!(user = %user.name, "password changed; other sessions ended");
        Ok(user)
    }

    /// Marks a user's email address as verified.
    pub async fn verify_email(&self, name: &str) -> Result<User, AdminError> {
        let user = self.find_user(name).await?;
        Ok(self.store.update_user(user.id, UserChange::VerifyEmail).await?)
    }

    /// Clears a user's failed-login count and any challenge demand.
    pub async fn unlock(&self, name: &str) -> Result<User, AdminError> {
        let user = self.find_user(name).await?;
        Ok(self.store.update_user(user.id, UserChange::Unlock).await?)
    }

    /// Grants (`true`) or withdraws the admin role; the user's sessions move
    /// to new IDs on their next use.
    pub async fn set_admin(&self, name: &str, admin: bool) -> Result<User, AdminError> {
        let user = self.find_user(name).await?;
        let user = self.store.update_user(user.id, UserChange::Admin(admin)).await?;
        tracing::info!(user = %user.name, admin, "roles changed");
        Ok(user)
    }

    /// Deletes a user and all their sessions.
    pub async fn delete_user(&self, name: &str) -> Result<(), AdminError> {
        let user = self.find_user(name).await?;
        self.store.delete_user(user.id).await?;
        tracing::info!(user = %user.name, "user deleted");
        Ok(())
    }

    /// Every user.
    pub async fn list_users(&self) -> Result<Vec<UserView>, AdminError> {
        Ok(self.store.users().await?.iter().map(UserView::from).collect())
    }

    /// Sessions of one user, or of everyone.
    pub async fn list_sessions(&self, user: Option<&str>) -> Result<Vec<SessionView>, AdminError> {
        match user {
            Some(name) => {
                let u = self.find_user(name).await?;
                let sessions = self.store.sessions_of(u.id).await?;
                Ok(sessions.iter().map(|(k, s)| SessionView::new(k, s, &u.name)).collect())
            }
            None => {
                let users = self.store.users().await?;
                let sessions = self.store.all_sessions().await?;
                Ok(sessions
                    .iter()
                    .filter_map(|(k, s)| {
                        let u = users.iter().find(|u| u.id == s.user)?;
                        Some(SessionView::new(k, s, &u.name))
                    })
                    .collect())
            }
        }
    }

    /// Ends the session with this handle.
    pub async fn revoke_handle(&self, handle: &str) -> Result<(), AdminError> {
        let h = Handle::parse(handle).ok_or_else(|| AdminError::NoSuchSession(handle.to_string()))?;
        let sessions = self.store.all_sessions().await?;
        let (key, _) = sessions
            .iter()
            .find(|(k, _)| h.matches(k))
            .ok_or_else(|| AdminError::NoSuchSession(handle.to_string()))?;
        self.end_session(*key).await?;
        Ok(())
    }

    /// Ends every session of a user; returns how many.
    pub async fn revoke_user(&self, name: &str) -> Result<usize, AdminError> {
        let user = self.find_user(name).await?;
        let n = self.store.revoke_all_of(user.id, None).await?;
        tracing::info!(user = %user.name, sessions = n, "signed out everywhere");
        Ok(n)
    }

    /// Makes an API token for `user`; the answer holds the secret, once.
    pub async fn add_token(&self, user: &User, label: &str) -> Result<TokenView, AdminError> {
        if label.chars().any(char::is_control) {
            return Err(AdminError::InvalidLabel);
        }
        let token = ApiToken::generate();
        let label = crate::store::codec::truncate_utf8(label.trim(), 100).to_string();
        let rec = ApiTokenRecord { user: user.id, label, created: self.now() };
        self.store.create_token(token.hash(), rec.clone()).await?;
        tracing::info!(user = %user.name, id = %token_id(&token.hash()), "API token added");
        Ok(TokenView { token: Some(token.reveal()), ..TokenView::new(&token.hash(), &rec, &user.name) })
    }

    /// A user's API tokens (ids and labels only).
    pub async fn list_tokens(&self, user: &User) -> Result<Vec<TokenView>, AdminError> {
        let tokens = self.store.tokens_of(user.id).await?;
        Ok(tokens.iter().map(|(h, t)| TokenView::new(h, t, &user.name)).collect())
    }

    /// Revokes an API token by id (only `owner`'s, if given).
    pub async fn revoke_token(&self, id: &str, owner: Option<&User>) -> Result<(), AdminError> {
        let no_such = || AdminError::NoSuchToken(id.to_string());
        let prefix = crate::token::unhex::<6>(id).ok_or_else(no_such)?;
        match self.store.delete_token(prefix, owner.map(|u| u.id)).await? {
            Some(_) => {
                tracing::info!(id, "API token revoked");
                Ok(())
            }
            None => Err(no_such()),
        }
    }

    async fn hash_password(&self, password: String) -> Result<String, AdminError> {
        match self.passwords.hash(password).await {
            Ok(Ok(h)) => Ok(h),
            Ok(Err(e)) => Err(AdminError::Store(StoreError::Storage(e))),
            Err(_) => Err(AdminError::Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(valid_email("a@b.example"));
        for bad in ["", "a", "@b", "a@", "a@b@c", "a b@c", "a@b\n", "<a@b>"] {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_conflict_names_the_user_once() {
        let e = AdminError::from(StoreError::Conflict("user 'BOB'".into()));
        assert_eq!(e.to_string(), "user 'BOB' already exists");
        assert_eq!(AdminError::UserExists("BOB".into()).to_string(), "user 'BOB' already exists");
    }
}

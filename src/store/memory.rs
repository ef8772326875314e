//! An in-memory [`Store`]: the model the redb store is checked against.
//!
//! Every operation is the plainest possible reading of the trait's contract
//! over ordered maps behind one lock: no indexes, no batching, no encoding.
//! The model-based fuzz target (`fuzz/`) runs the same random operations on
//! this and on [`super::redb::RedbStore`] and requires identical answers; the
//! domain's unit tests use it with a manual clock. Nothing is durable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::{
    name_key, ApiTokenRecord, Dump, Lockout, LockoutStep, NewSession, NewUser, Rotation, Series,
    ServerSecrets, Session, SessionLimits, Store, StoreError, StoreFuture, SweepReport, User, UserChange,
    UserId, Verification,
};
use crate::clock::Timestamp;
use crate::token::{ct_eq, Selector, SessionKey};

const KIND_SESSION: u8 = 1;
const KIND_SERIES: u8 = 2;
const KIND_LOCKOUT: u8 = 3;
const KIND_VERIFICATION: u8 = 4;

#[derive(Default)]
struct Model {
    next_user: u64,
    users: BTreeMap<UserId, User>,
    names: BTreeMap<String, UserId>,
    sessions: BTreeMap<[u8; 16], (Session, Timestamp)>,
    series: BTreeMap<[u8; 16], Series>,
    lockouts: BTreeMap<UserId, (Lockout, Timestamp)>,
    tokens: BTreeMap<[u8; 16], ApiTokenRecord>,
    verifications: BTreeMap<[u8; 16], Verification>,
    expiry: BTreeSet<(u64, u8, [u8; 16])>,
}

/// The in-memory store.
pub struct MemoryStore {
    secrets: ServerSecrets,
    model: Mutex<Model>,
}

impl MemoryStore {
    /// An empty store with these secrets.
    pub fn new(secrets: ServerSecrets) -> Self {
        MemoryStore { secrets, model: Mutex::new(Model { next_user: 1, ..Model::default() }) }
    }

    fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Model) -> Result<R, StoreError>,
    ) -> StoreFuture<'_, R> {
        let mut m = self.model.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut m);
        Box::pin(std::future::ready(r))
    }
}

fn id16(user: UserId) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(user.to_le_bytes()) {
        *o = b;
    }
    out
}

impl Model {
    fn put_session(&mut self, key: SessionKey, s: Session, deadline: Timestamp) {
        if let Some((_, old)) = self.sessions.get(&key.0) {
            self.expiry.remove(&(old.0, KIND_SESSION, key.0));
        }
        self.sessions.insert(key.0, (s, deadline));
        self.expiry.insert((deadline.0, KIND_SESSION, key.0));
    }

    fn delete_session(&mut self, key: SessionKey, with_series: bool) -> bool {
        let Some((s, filed)) = self.sessions.remove(&key.0) else { return false };
        self.expiry.remove(&(filed.0, KIND_SESSION, key.0));
        if let (true, Some(sel)) = (with_series, s.series) {
            self.delete_series(sel);
        }
        true
    }

    fn put_series(&mut self, sel: Selector, s: Series) {
        if let Some(old) = self.series.get(&sel.0) {
            self.expiry.remove(&(old.expires.0, KIND_SERIES, sel.0));
        }
        self.expiry.insert((s.expires.0, KIND_SERIES, sel.0));
        self.series.insert(sel.0, s);
    }

    fn delete_series(&mut self, sel: Selector) -> bool {
        let Some(s) = self.series.remove(&sel.0) else { return false };
        self.expiry.remove(&(s.expires.0, KIND_SERIES, sel.0));
        true
    }

    fn delete_lockout(&mut self, user: UserId) {
        if let Some((_, forget)) = self.lockouts.remove(&user) {
            self.expiry.remove(&(forget.0, KIND_LOCKOUT, id16(user)));
        }
    }

    fn sessions_of(&self, user: UserId) -> Vec<(SessionKey, Session)> {
        let mut out: Vec<_> = self
            .sessions
            .iter()
            .filter(|(_, (s, _))| s.user == user)
            .map(|(k, (s, _))| (SessionKey(*k), s.clone()))
            .collect();
        out.sort_by_key(|(_, s)| s.created);
        out
    }

    fn revoke_all_of(&mut self, user: UserId, keep: Option<SessionKey>) -> usize {
        let mut n = 0;
        let mut kept_series = None;
        let keys: Vec<_> = self
            .sessions
            .iter()
            .filter(|(_, (s, _))| s.user == user)
            .map(|(k, (s, _))| (*k, s.series))
            .collect();
        for (k, series) in keys {
            if Some(SessionKey(k)) == keep {
                kept_series = series;
            } else if self.delete_session(SessionKey(k), false) {
                n += 1;
            }
        }
        let selectors: Vec<_> =
            self.series.iter().filter(|(_, s)| s.user == user).map(|(k, _)| Selector(*k)).collect();
        for sel in selectors {
            if Some(sel) != kept_series {
                self.delete_series(sel);
            }
        }
        n
    }

    /// Deletes the user's oldest sessions until one more fits within
    /// `max` (at least 1), and returns their keys.
    fn make_room(&mut self, user: UserId, max: u32) -> Vec<SessionKey> {
        let max = usize::try_from(max.max(1)).unwrap_or(usize::MAX);
        let existing = self.sessions_of(user);
        let excess = (existing.len() + 1).saturating_sub(max);
        let mut removed = Vec::with_capacity(excess);
        for (k, _) in existing.into_iter().take(excess) {
            self.delete_session(k, false);
            removed.push(k);
        }
        removed
    }

    fn create_session(&mut self, plan: NewSession) -> Result<Vec<SessionKey>, StoreError> {
        let uid = plan.session.user;
        let mut user = self.users.get(&uid).cloned().ok_or(StoreError::NotFound)?;
        if plan.password_checked.as_ref().is_some_and(|h| *h != user.password_hash) {
            return Err(StoreError::NotFound);
        }
        let mut removed = Vec::new();
        for old in plan.replaces {
            if self.delete_session(old, false) {
                removed.push(old);
            }
        }
        removed.extend(self.make_room(uid, plan.max_per_user));
        if let Some((sel, series)) = plan.new_series {
            self.put_series(sel, series);
        }
        let created = plan.session.created;
        self.put_session(plan.key, plan.session, plan.deadline);
        if plan.count_login {
            user.logins = user.logins.succeeded(created);
            self.users.insert(uid, user);
            self.delete_lockout(uid);
        }
        Ok(removed)
    }
}

impl Store for MemoryStore {
    fn secrets(&self) -> &ServerSecrets {
        &self.secrets
    }

    fn user(&self, id: UserId) -> StoreFuture<'_, Option<User>> {
        self.with(move |m| Ok(m.users.get(&id).cloned()))
    }

    fn user_by_name(&self, name: &str) -> StoreFuture<'_, Option<User>> {
        let key = name_key(name);
        self.with(move |m| Ok(m.names.get(&key).and_then(|id| m.users.get(id)).cloned()))
    }

    fn users(&self) -> StoreFuture<'_, Vec<User>> {
        self.with(|m| Ok(m.names.values().filter_map(|id| m.users.get(id)).cloned().collect()))
    }

    fn create_user(&self, new: NewUser) -> StoreFuture<'_, User> {
        self.with(move |m| {
            let key = name_key(&new.name);
            if m.names.contains_key(&key) {
                return Err(StoreError::Conflict(format!("user '{}'", new.name)));
            }
            let id = m.next_user;
            m.next_user += 1;
            let user = new.into_user(id);
            m.names.insert(key, id);
            m.users.insert(id, user.clone());
            Ok(user)
        })
    }

    fn update_user(&self, id: UserId, change: UserChange) -> StoreFuture<'_, User> {
        self.with(move |m| {
            let mut user = m.users.get(&id).cloned().ok_or(StoreError::NotFound)?;
            match change {
                UserChange::Password { hash, keep } => {
                    user.password_hash = hash;
                    m.revoke_all_of(id, keep);
                }
                UserChange::VerifyEmail => user.email_verified = true,
                UserChange::Unlock => {
                    user.logins.failed_count = 0;
                    m.delete_lockout(id);
                }
                UserChange::Admin(admin) => {
                    if user.admin != admin {
                        user.admin = admin;
                        user.epoch = user.epoch.wrapping_add(1);
                    }
                }
            }
            m.users.insert(id, user.clone());
            Ok(user)
        })
    }

    fn delete_user(&self, id: UserId) -> StoreFuture<'_, bool> {
        self.with(move |m| {
            let Some(user) = m.users.remove(&id) else { return Ok(false) };
            m.revoke_all_of(id, None);
            m.delete_lockout(id);
            m.tokens.retain(|_, t| t.user != id);
            m.names.remove(&name_key(&user.name));
            Ok(true)
        })
    }

    fn session(&self, key: SessionKey) -> StoreFuture<'_, Option<(Arc<Session>, Arc<User>)>> {
        self.with(move |m| {
            Ok(m.sessions
                .get(&key.0)
                .and_then(|(s, _)| Some((Arc::new(s.clone()), Arc::new(m.users.get(&s.user)?.clone())))))
        })
    }

    fn create_session(&self, plan: NewSession) -> StoreFuture<'_, Vec<SessionKey>> {
        self.with(move |m| m.create_session(plan))
    }

    fn touch_session(&self, key: SessionKey, last_use: Timestamp, deadline: Timestamp) {
        let mut m = self.model.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, _)) = m.sessions.get(&key.0).cloned() {
            if last_use > s.last_use {
                m.put_session(key, Session { last_use, ..s }, deadline);
            }
        }
    }

    fn delete_session(&self, key: SessionKey, with_series: bool) -> StoreFuture<'_, bool> {
        self.with(move |m| Ok(m.delete_session(key, with_series)))
    }

    fn sessions_of(&self, user: UserId) -> StoreFuture<'_, Vec<(SessionKey, Session)>> {
        self.with(move |m| Ok(m.sessions_of(user)))
    }

    fn all_sessions(&self) -> StoreFuture<'_, Vec<(SessionKey, Session)>> {
        self.with(|m| {
            let mut out: Vec<_> = m.sessions.iter().map(|(k, (s, _))| (SessionKey(*k), s.clone())).collect();
            out.sort_by_key(|(_, s)| s.created);
            Ok(out)
        })
    }

    fn revoke_all_of(&self, user: UserId, keep: Option<SessionKey>) -> StoreFuture<'_, usize> {
        self.with(move |m| Ok(m.revoke_all_of(user, keep)))
    }

    fn series(&self, selector: Selector) -> StoreFuture<'_, Option<Series>> {
        self.with(move |m| Ok(m.series.get(&selector.0).cloned()))
    }

    fn rotate_series(
        &self,
        selector: Selector,
        expected: [u8; 32],
        next: [u8; 32],
        grace_until: Timestamp,
        session: NewSession,
    ) -> StoreFuture<'_, Rotation> {
        self.with(move |m| {
            let Some(mut series) = m.series.get(&selector.0).cloned() else { return Ok(Rotation::Missing) };
            if !ct_eq(&series.current, &expected) {
                return Ok(Rotation::Changed(series));
            }
            if !m.users.contains_key(&series.user) {
                return Ok(Rotation::Missing);
            }
            series.previous = Some(series.current);
            series.previous_until = grace_until;
            series.current = next;
            let user = series.user;
            m.put_series(selector, series);
            m.make_room(user, session.max_per_user);
            m.put_session(session.key, session.session, session.deadline);
            Ok(Rotation::Rotated)
        })
    }

    fn delete_series(&self, selector: Selector) -> StoreFuture<'_, bool> {
        self.with(move |m| Ok(m.delete_series(selector)))
    }

    fn lockout(&self, user: UserId) -> StoreFuture<'_, Option<Lockout>> {
        self.with(move |m| Ok(m.lockouts.get(&user).map(|(l, _)| *l)))
    }

    fn login_failed(&self, user: UserId, at: Timestamp, step: LockoutStep) -> StoreFuture<'_, Lockout> {
        self.with(move |m| {
            let mut u = m.users.get(&user).cloned().ok_or(StoreError::NotFound)?;
            let old = m.lockouts.get(&user).copied();
            let (next, forget) = step(old.map(|(l, _)| l));
            if let Some((_, old_forget)) = old {
                m.expiry.remove(&(old_forget.0, KIND_LOCKOUT, id16(user)));
            }
            m.lockouts.insert(user, (next, forget));
            m.expiry.insert((forget.0, KIND_LOCKOUT, id16(user)));
            u.logins = u.logins.failed(at);
            m.users.insert(user, u);
            Ok(next)
        })
    }

    fn create_token(&self, hash: [u8; 16], token: ApiTokenRecord) -> StoreFuture<'_, ()> {
        self.with(move |m| {
            if !m.users.contains_key(&token.user) {
                return Err(StoreError::NotFound);
            }
            m.tokens.insert(hash, token);
            Ok(())
        })
    }

    fn token(&self, hash: [u8; 16]) -> StoreFuture<'_, Option<(ApiTokenRecord, User)>> {
        self.with(move |m| {
            Ok(m.tokens.get(&hash).and_then(|t| Some((t.clone(), m.users.get(&t.user)?.clone()))))
        })
    }

    fn tokens_of(&self, user: UserId) -> StoreFuture<'_, Vec<([u8; 16], ApiTokenRecord)>> {
        self.with(move |m| {
            let mut out: Vec<_> =
                m.tokens.iter().filter(|(_, t)| t.user == user).map(|(h, t)| (*h, t.clone())).collect();
            out.sort_by_key(|(_, t)| t.created);
            Ok(out)
        })
    }

    fn delete_token(&self, id: [u8; 6], user: Option<UserId>) -> StoreFuture<'_, Option<ApiTokenRecord>> {
        self.with(move |m| {
            let found = m.tokens.iter().find(|(h, _)| h.starts_with(&id)).map(|(h, t)| (*h, t.clone()));
            match found {
                Some((hash, rec)) if user.is_none_or(|u| u == rec.user) => {
                    m.tokens.remove(&hash);
                    Ok(Some(rec))
                }
                _ => Ok(None),
            }
        })
    }

    fn create_verification(&self, hash: [u8; 16], token: Verification) -> StoreFuture<'_, ()> {
        self.with(move |m| {
            m.expiry.insert((token.expires.0, KIND_VERIFICATION, hash));
            m.verifications.insert(hash, token);
            Ok(())
        })
    }

    fn redeem_verification(&self, hash: [u8; 16], now: Timestamp) -> StoreFuture<'_, Option<User>> {
        self.with(move |m| {
            let Some(v) = m.verifications.remove(&hash) else { return Ok(None) };
            m.expiry.remove(&(v.expires.0, KIND_VERIFICATION, hash));
            let Some(mut user) = m.users.get(&v.user).cloned() else { return Ok(None) };
            if now >= v.expires || user.email.as_deref() != Some(v.email.as_str()) {
                return Ok(None);
            }
            user.email_verified = true;
            m.users.insert(user.id, user.clone());
            Ok(Some(user))
        })
    }

    fn session_count(&self) -> StoreFuture<'_, u64> {
        self.with(|m| Ok(m.sessions.len() as u64))
    }

    fn sweep(&self, now: Timestamp, limits: SessionLimits, batch: usize) -> StoreFuture<'_, SweepReport> {
        self.with(move |m| {
            let due: Vec<_> = m.expiry.range(..(now.0, 0, [0u8; 16])).take(batch).copied().collect();
            let mut report = SweepReport { more: due.len() >= batch, ..Default::default() };
            for entry in due {
                let (deadline, kind, id) = entry;
                m.expiry.remove(&entry);
                match kind {
                    KIND_SERIES => match m.series.get(&id) {
                        Some(s) if s.expires.0 == deadline => {
                            m.delete_series(Selector(id));
                            report.series += 1;
                        }
                        _ => report.stale += 1,
                    },
                    KIND_LOCKOUT => {
                        let user = u64::from_le_bytes(
                            id.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default(),
                        );
                        match m.lockouts.get(&user) {
                            Some((_, forget)) if forget.0 == deadline => {
                                m.lockouts.remove(&user);
                                report.lockouts += 1;
                            }
                            _ => report.stale += 1,
                        }
                    }
                    KIND_VERIFICATION => {
                        if m.verifications.remove(&id).is_some() {
                            report.verifications += 1;
                        } else {
                            report.stale += 1;
                        }
                    }
                    KIND_SESSION => match m.sessions.get(&id).cloned() {
                        Some((_, filed)) if filed.0 != deadline => report.stale += 1,
                        Some((s, _)) if s.deadline(limits) > now => {
                            let d = s.deadline(limits);
                            m.put_session(SessionKey(id), s, d);
                            report.stale += 1;
                        }
                        Some(_) => {
                            m.delete_session(SessionKey(id), false);
                            report.sessions += 1;
                        }
                        None => report.stale += 1,
                    },
                    _ => report.stale += 1,
                }
            }
            Ok(report)
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.with(|_| Ok(()))
    }

    fn export(&self) -> StoreFuture<'_, Dump> {
        let secrets = (self.secrets.server_id.clone(), self.secrets.xsrf_key);
        self.with(move |m| {
            Ok(Dump {
                secrets: Some(secrets),
                next_user_id: m.next_user,
                users: m.users.values().cloned().collect(),
                sessions: m.sessions.iter().map(|(k, (s, f))| (SessionKey(*k), s.clone(), *f)).collect(),
                series: m.series.iter().map(|(k, s)| (Selector(*k), s.clone())).collect(),
                lockouts: m.lockouts.iter().map(|(u, (l, f))| (*u, *l, *f)).collect(),
                tokens: m.tokens.iter().map(|(h, t)| (*h, t.clone())).collect(),
                verifications: m.verifications.iter().map(|(h, v)| (*h, v.clone())).collect(),
            })
        })
    }

    fn import(&self, dump: Dump) -> StoreFuture<'_, ()> {
        self.with(move |m| {
            if !m.users.is_empty() {
                return Err(StoreError::Conflict("a destination with users".into()));
            }
            m.next_user = dump.next_user_id;
            for u in dump.users {
                m.names.insert(name_key(&u.name), u.id);
                m.users.insert(u.id, u);
            }
            for (k, s, f) in dump.sessions {
                m.put_session(k, s, f);
            }
            for (sel, s) in dump.series {
                m.put_series(sel, s);
            }
            for (u, l, f) in dump.lockouts {
                m.lockouts.insert(u, (l, f));
                m.expiry.insert((f.0, KIND_LOCKOUT, id16(u)));
            }
            for (h, t) in dump.tokens {
                m.tokens.insert(h, t);
            }
            for (h, v) in dump.verifications {
                m.expiry.insert((v.expires.0, KIND_VERIFICATION, h));
                m.verifications.insert(h, v);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::redb::RedbStore;

    fn secrets() -> ServerSecrets {
        ServerSecrets { server_id: "TEST-TEST-TEST-TEST".into(), xsrf_key: [1; 32] }
    }

    fn session(user: UserId, at: u64, series: Option<Selector>) -> Session {
        Session {
            user,
            created: Timestamp(at),
            last_use: Timestamp(at),
            address: None,
            browser: "b".into(),
            series,
            xsrf: [0; 10],
            epoch: 0,
        }
    }

    fn plan(key: u8, s: Session, deadline: u64, max: u32) -> NewSession {
        NewSession {
            key: SessionKey([key; 16]),
            session: s,
            deadline: Timestamp(deadline),
            replaces: vec![SessionKey([key.wrapping_sub(1); 16])],
            max_per_user: max,
            count_login: key % 2 == 0,
            new_series: None,
            password_checked: None,
        }
    }

    /// A fixed script of operations; every answer is recorded.
    async fn script(s: &dyn Store) -> Vec<String> {
        let limits = SessionLimits { idle: Duration::from_secs(10), absolute: Duration::from_secs(100) };
        let mut log = Vec::new();
        let new = |name: &str| NewUser {
            name: name.into(),
            email: Some(format!("{name}@x")),
            email_verified: false,
            admin: false,
            password_hash: "h".into(),
            created: Timestamp(1),
        };
        let a = s.create_user(new("Ann")).await.unwrap().id;
        let b = s.create_user(new("bob")).await.unwrap().id;
        log.push(format!("{:?}", s.create_user(new("ANN")).await.map(|u| u.id).map_err(|e| e.to_string())));
        for k in 1..=6u8 {
            let owner = if k % 3 == 0 { b } else { a };
            let series = (k == 4).then_some(Selector([k; 16]));
            let mut p = plan(k, session(owner, u64::from(k) * 1000, series), u64::from(k) * 1000 + 5_000, 3);
            if let Some(sel) = series {
                let sr = Series {
                    user: owner,
                    current: [9; 32],
                    previous: None,
                    previous_until: Timestamp(0),
                    created: Timestamp(4_000),
                    expires: Timestamp(50_000),
                };
                p.new_series = Some((sel, sr));
            }
            log.push(format!("create {k}: {:?}", s.create_session(p).await.unwrap()));
        }
        s.touch_session(SessionKey([5; 16]), Timestamp(9_000), Timestamp(19_000));
        let rot = plan(7, session(a, 9_500, Some(Selector([4; 16]))), 19_500, 3);
        log.push(format!(
            "{:?}",
            s.rotate_series(Selector([4; 16]), [8; 32], [7; 32], Timestamp(1), rot.clone()).await.unwrap()
        ));
        log.push(format!(
            "{:?}",
            s.rotate_series(Selector([4; 16]), [9; 32], [7; 32], Timestamp(12_000), rot).await.unwrap()
        ));
        let step: LockoutStep = Box::new(|old: Option<Lockout>| {
            let mut l = old.unwrap_or_default();
            l.strikes += 1;
            (l, Timestamp(30_000))
        });
        log.push(format!("{:?}", s.login_failed(b, Timestamp(10_000), step).await.unwrap()));
        s.create_token([3; 16], ApiTokenRecord { user: b, label: "t".into(), created: Timestamp(2) })
            .await
            .unwrap();
        let v = Verification { user: a, email: "Ann@x".into(), expires: Timestamp(40_000) };
        s.create_verification([5; 16], v).await.unwrap();
        for now in [7_000u64, 12_000, 16_000, 31_000, 45_000, 60_000] {
            log.push(format!("sweep {now}: {:?}", s.sweep(Timestamp(now), limits, 2).await.unwrap()));
            log.push(format!("left: {:?}", s.all_sessions().await.unwrap()));
        }
        log.push(format!("{:?}", s.redeem_verification([5; 16], Timestamp(1)).await.unwrap()));
        log.push(format!("{:?}", s.delete_token([3; 6], Some(a)).await.unwrap()));
        log.push(format!("{:?}", s.update_user(a, UserChange::Admin(true)).await.unwrap()));
        log.push(format!("{:?}", s.revoke_all_of(a, None).await.unwrap()));
        log.push(format!("{:?}", s.delete_user(b).await.unwrap()));
        log.push(format!("{:?} {:?}", s.users().await.unwrap(), s.session_count().await.unwrap()));
        log.push(format!("{:?}", s.sweep(Timestamp(u64::MAX), limits, 100).await.unwrap()));
        log
    }

    #[tokio::test]
    async fn the_model_and_redb_answer_a_script_identically() {
        let dir = tempfile::tempdir().unwrap();
        let redb = RedbStore::open(&dir.path().join("a.redb"), Duration::from_secs(1)).unwrap();
        let model = MemoryStore::new(secrets());
        let (x, y) = (script(&redb).await, script(&model).await);
        assert!(
            x.iter().any(|l| l.contains("Rotated")) && x.iter().any(|l| l.contains("sessions: 2")),
            "{x:#?}"
        );
        for (i, (a, b)) in x.iter().zip(&y).enumerate() {
            assert_eq!(a, b, "step {i} differs");
        }
        assert_eq!(x.len(), y.len());
    }
}

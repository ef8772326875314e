//! The embedded store: one redb file.
//!
//! Reads run on the caller's thread in their own read transaction. Writes go
//! to one writer thread, which drains every queued write into a single
//! transaction and commits once (group commit): a burst of logins costs one
//! `fsync`, not one each. Each write says whether it must be durable; a batch
//! that holds any durable write commits with [`Durability::Immediate`] before
//! any of its callers hears back, so "acknowledged" means "on disk". Other
//! batches (touches, sweeps) commit in memory and are made durable by the
//! next durable commit, or by the writer itself after `flush_after`.
//!
//! Tables (keys → values):
//! - `meta`: `&str` → bytes (schema version, server id, XSRF key, next user id)
//! - `users`: user id → [`User`] record
//! - `user_names`: lower-cased name → user id
//! - `sessions`: [`SessionKey`] → [`Session`] record
//! - `user_sessions`: (user id, session key) → ()
//! - `series`: remember-me selector → [`Series`] record
//! - `user_series`: (user id, selector) → ()
//! - `lockouts`: user id → [`Lockout`] record (failed-login state)
//! - `tokens`: hash of an API token → [`ApiTokenRecord`]
//! - `user_tokens`: (user id, token hash) → ()
//! - `verifications`: hash of an email-verification token → [`Verification`]
//! - `expiry`: (deadline ms, kind, id) → (), the sweeper's index

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, WriteTransaction,
};
use tokio::sync::oneshot;

use super::contain::contain;
use super::overlay::Overlay;
use super::{
    name_key, ApiTokenRecord, Dump, Lockout, LockoutStep, NewSession, NewUser, Rotation, Series,
    ServerSecrets, Session, SessionLimits, Store, StoreError, StoreFuture, SweepReport, User, UserChange,
    UserId, Verification,
};
use crate::clock::Timestamp;
use crate::token::{ct_eq, random, Selector, SessionKey};

/// The schema this build writes. Older files are migrated; newer ones refused.
pub const SCHEMA_VERSION: u32 = 1;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "authd.redb";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
const USER_NAMES: TableDefinition<&str, u64> = TableDefinition::new("user_names");
const SESSIONS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("sessions");
const USER_SESSIONS: TableDefinition<(u64, &[u8; 16]), ()> = TableDefinition::new("user_sessions");
const SERIES: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("series");
const USER_SERIES: TableDefinition<(u64, &[u8; 16]), ()> = TableDefinition::new("user_series");
const LOCKOUTS: TableDefinition<u64, &[u8]> = TableDefinition::new("lockouts");
const TOKENS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("tokens");
const USER_TOKENS: TableDefinition<(u64, &[u8; 16]), ()> = TableDefinition::new("user_tokens");
const VERIFICATIONS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("verifications");
const EXPIRY: TableDefinition<(u64, u8, &[u8; 16]), ()> = TableDefinition::new("expiry");

/// Kinds of record in the expiry index.
const KIND_SESSION: u8 = 1;
const KIND_SERIES: u8 = 2;
const KIND_LOCKOUT: u8 = 3;
const KIND_VERIFICATION: u8 = 4;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 512;

/// Why the database could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Another process (a running authd) holds the file.
    Locked(PathBuf),
    /// The file is not a readable authd database.
    Corrupt { path: PathBuf, detail: String },
    /// The file was written by a newer authd.
    NewerSchema { path: PathBuf, found: u64 },
    /// Any other I/O failure.
    Io { path: PathBuf, detail: String },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Locked(p) => write!(
                f,
                "{} is in use by another running authd; stop it, or use another --data directory",
                p.display()
            ),
            OpenError::Corrupt { path, detail } => write!(
                f,
                "{} is not a readable authd database ({detail}); restore it from a backup or move it away to start afresh",
                path.display()
            ),
            OpenError::NewerSchema { path, found } => write!(
                f,
                "{} was written by a newer authd (schema {found}; this authd knows up to {SCHEMA_VERSION}); upgrade authd",
                path.display()
            ),
            OpenError::Io { path, detail } => write!(f, "cannot open {}: {detail}", path.display()),
        }
    }
}

impl std::error::Error for OpenError {}

/// The redb-backed [`Store`].
pub struct RedbStore {
    db: Arc<Slot>,
    writer: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    secrets: ServerSecrets,
    cache: Arc<Cache>,
    damage: Arc<Damage>,
    /// Touches waiting for the writer: a session's last use and deadline.
    touches: Arc<Mutex<HashMap<SessionKey, (Timestamp, Timestamp)>>>,
    /// What opening did to an older file (`migrated PATH from schema A to B`).
    migration: Option<String>,
}

/// The open database, shared by readers and the writer thread. `None`
/// only while the writer opens it again after an I/O error (see
/// [`reopen`]): for milliseconds, or as long as redb takes to repair the
/// file.
type Slot = RwLock<Option<Arc<Database>>>;

/// How often the writer tries to open the database again while an I/O
/// error stops writes.
const REOPEN_EVERY: Duration = Duration::from_secs(5);

/// Bytes written and synced beside the database before it is opened again
/// after an I/O error: a disk still full fails here, while the old handle
/// still serves reads, instead of in redb's open.
const REOPEN_PROBE_BYTES: usize = 1 << 20;

/// Whether redb has panicked on the file since it was opened.
///
/// A panic inside redb means the file is damaged in a way the start-up
/// checks did not see, and redb's own state may be half-changed. From then
/// on the store neither reads nor writes (every call is a storage error,
/// 503), and the database is never closed: redb's close writes.
///
/// Also whether a write has failed with an I/O error (a full disk): redb
/// then refuses every later write ("Previous I/O error occurred") until the
/// database is opened again. Reads go on; writes answer 503; the state is
/// logged once and shown by `/healthz`; the writer thread opens the file
/// again once the disk takes writes (see [`reopen`]).
struct Damage {
    path: PathBuf,
    found: AtomicBool,
    writes_stopped: AtomicBool,
}

impl Damage {
    fn new(path: &Path) -> Damage {
        Damage {
            path: path.to_path_buf(),
            found: AtomicBool::new(false),
            writes_stopped: AtomicBool::new(false),
        }
    }

    /// Records a write that failed with an I/O error (`cause`, if it is
    /// one; `detail` says it); the first is logged.
    fn record_io(&self, cause: Option<&redb::StorageError>, detail: &dyn std::fmt::Display) {
        if !matches!(cause, Some(redb::StorageError::Io(_) | redb::StorageError::PreviousIo)) {
            return;
        }
        if !self.writes_stopped.swap(true, Ordering::AcqRel) {
            tracing::error!("{} ({detail})", self.io_message());
        }
    }

    fn writes_stopped(&self) -> bool {
        self.writes_stopped.load(Ordering::Acquire)
    }

    fn writes_resumed(&self) {
        self.writes_stopped.store(false, Ordering::Release);
    }

    fn io_message(&self) -> String {
        format!(
            "a write to {} failed with an I/O error and the database accepts no more writes; \
             what was acknowledged is safe: fix the cause (a full disk?) and authd opens it again \
             within {} s (or restart authd)",
            self.path.display(),
            REOPEN_EVERY.as_secs()
        )
    }

    /// Records a panic inside redb while `doing`; the first one is logged
    /// and leaks a handle to `db`, so it is never closed.
    fn record(&self, db: &Arc<Database>, doing: &str, detail: &str) {
        if !self.found.swap(true, Ordering::AcqRel) {
            std::mem::forget(Arc::clone(db));
            tracing::error!("{} (redb failed {doing}: {detail})", self.message());
        }
    }

    fn is_found(&self) -> bool {
        self.found.load(Ordering::Acquire)
    }

    /// What every store call answers once the damage is found.
    fn error(&self) -> StoreError {
        StoreError::Storage(self.message())
    }

    fn message(&self) -> String {
        format!("{} is damaged; stop authd and restore it from a backup", self.path.display())
    }
}

/// How many nice steps the writer thread runs below the thread that opened the store.
pub const WRITER_NICE: i32 = 5;

/// Most entries kept in each read cache before it starts afresh.
const CACHE_CAP: usize = 131_072;

/// Sessions and users recently read, so a session check costs a hash-map
/// lookup instead of a read transaction.
///
/// Coherence: every write goes through the writer thread, which, after a
/// commit and before answering anyone, bumps `generation` and drops the
/// entries of every key the batch wrote. A reader fills the cache only if
/// `generation` did not move between its start and the fill (checked under
/// the cache's lock), so it can never put back a value a commit replaced.
#[derive(Default)]
struct Cache {
    generation: AtomicU64,
    sessions: RwLock<HashMap<[u8; 16], Arc<Session>, BuildHasherDefault<KeyHasher>>>,
    users: RwLock<HashMap<UserId, Arc<User>, BuildHasherDefault<KeyHasher>>>,
}

/// The cache maps' hash: a multiply-and-rotate fold (as rustc's FxHash),
/// a few instructions where the default SipHash takes over a hundred per
/// lookup. Its weakness, keys chosen to collide, cannot be used here: only
/// what the store holds is ever put in (blake3 hashes of session IDs, and
/// user ids authd assigned), and a lookup of a key not there inserts nothing.
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            self.add(chunk.iter().rev().fold(0, |word, &b| (word << 8) | u64::from(b)));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Cache {
    fn get(&self, key: &[u8; 16]) -> Option<(Arc<Session>, Arc<User>)> {
        let session = read_lock(&self.sessions).get(key).cloned()?;
        let user = read_lock(&self.users).get(&session.user).cloned()?;
        Some((session, user))
    }

    fn fill(&self, since: u64, key: [u8; 16], session: &Arc<Session>, user: &Arc<User>) {
        let mut sessions = write_lock(&self.sessions);
        let mut users = write_lock(&self.users);
        if self.generation.load(Ordering::Acquire) != since {
            return;
        }
        for map_len in [sessions.len(), users.len()] {
            if map_len >= CACHE_CAP {
                sessions.clear();
                users.clear();
            }
        }
        sessions.insert(key, Arc::clone(session));
        users.insert(user.id, Arc::clone(user));
    }

    /// Drops every entry: after a failed commit nothing is known about what it wrote.
    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        write_lock(&self.sessions).clear();
        write_lock(&self.users).clear();
    }

    fn invalidate(&self, dirty: &Dirty) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if dirty.sessions.is_empty() && dirty.users.is_empty() {
            return;
        }
        let mut sessions = write_lock(&self.sessions);
        let mut users = write_lock(&self.users);
        for k in &dirty.sessions {
            sessions.remove(k);
        }
        for u in &dirty.users {
            users.remove(u);
        }
    }
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl RedbStore {
    /// Opens (or creates) `path`; un-flushed touches are made durable within `flush_after`.
    pub fn open(path: &Path, flush_after: Duration) -> Result<RedbStore, OpenError> {
        let db = open_database(path)?;
        let schema = match contain(|| init_schema(&db, path)) {
            Ok(schema) => schema?,
            Err(detail) => {
                std::mem::forget(db); // redb's close writes; the file is damaged
                return Err(OpenError::Corrupt { path: path.to_path_buf(), detail: damaged(&detail) });
            }
        };
        let migration = schema
            .migrated_from
            .map(|v| format!("migrated {} from schema {v} to {SCHEMA_VERSION}", path.display()));
        if let Some(m) = &migration {
            tracing::info!("{m}");
        }
        let secrets = schema.secrets;
        let db = Arc::new(RwLock::new(Some(Arc::new(db))));
        let cache = Arc::new(Cache::default());
        let damage = Arc::new(Damage::new(path));
        let (tx, rx) = mpsc::channel();
        let (writer_db, writer_cache, writer_damage) =
            (Arc::clone(&db), Arc::clone(&cache), Arc::clone(&damage));
        let thread = std::thread::Builder::new()
            .name("authd-writer".into())
            .spawn(move || writer_loop(&writer_db, &writer_cache, &writer_damage, &rx, flush_after))
            .map_err(|e| OpenError::Io { path: path.to_path_buf(), detail: e.to_string() })?;
        Ok(RedbStore {
            db,
            writer: Some(tx),
            thread: Some(thread),
            secrets,
            cache,
            damage,
            touches: Arc::default(),
            migration,
        })
    }

    /// What opening the file did to it, when it was written by an older
    /// authd (`migrated PATH from schema A to B`); the server logs it, the
    /// command line prints it.
    pub fn migration(&self) -> Option<&str> {
        self.migration.as_deref()
    }

    /// Runs `f` in a read transaction; a panic inside redb marks the file damaged.
    fn read<R>(&self, f: impl FnOnce(&ReadTransaction) -> Result<R, StoreError>) -> Result<R, StoreError> {
        if self.damage.is_found() {
            return Err(self.damage.error());
        }
        let Some(db) = read_lock(&self.db).clone() else {
            return Err(StoreError::Storage(format!("{} is being opened again", self.damage.path.display())));
        };
        contain(|| f(&db.begin_read().map_err(storage)?)).unwrap_or_else(|detail| {
            self.damage.record(&db, "reading", &detail);
            Err(self.damage.error())
        })
    }

    fn write<R: Send + 'static>(
        &self,
        durable: bool,
        op: impl FnOnce(&mut Tables<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, R> {
        let (tx, rx) = oneshot::channel();
        let sent = self.submit(durable, op, move |result| {
            let _ = tx.send(result); // the caller may have gone away
        });
        let damage = Arc::clone(&self.damage);
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| match damage.is_found() {
                true => damage.error(),
                false => StoreError::Storage("write aborted".into()),
            })?
        })
    }

    /// Queues `op` for the writer thread, which hands `done` its outcome
    /// once the batch holding it commits (or fails). `done` is not called
    /// if the batch is dropped unrun (the file is damaged) or the job
    /// cannot be queued (the store is closing; the error says which).
    fn submit<R: Send + 'static>(
        &self,
        durable: bool,
        op: impl FnOnce(&mut Tables<'_>) -> Result<R, StoreError> + Send + 'static,
        done: impl FnOnce(Result<R, StoreError>) + Send + 'static,
    ) -> Result<(), StoreError> {
        if self.damage.is_found() {
            return Err(self.damage.error());
        }
        let job = Job {
            durable,
            op: Box::new(move |tables: &mut Tables<'_>| {
                let result = op(tables);
                let fatal = match &result {
                    Err(e @ StoreError::Storage(_)) => Some(e.clone()),
                    _ => None,
                };
                let done: Done = Box::new(move |commit| done(commit.and(result)));
                (done, fatal)
            }),
        };
        match &self.writer {
            Some(w) => w.send(job).map_err(|_| StoreError::Closed),
            None => Err(StoreError::Closed),
        }
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish its queue, make it durable and exit.
        drop(self.writer.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store for RedbStore {
    fn secrets(&self) -> &ServerSecrets {
        &self.secrets
    }

    fn failure(&self) -> Option<String> {
        if self.damage.is_found() {
            return Some(self.damage.message());
        }
        self.damage.writes_stopped().then(|| self.damage.io_message())
    }

    fn user(&self, id: UserId) -> StoreFuture<'_, Option<User>> {
        let r = self.read(|txn| {
            let users = txn.open_table(USERS).map_err(storage)?;
            get_user_ro(&users, id)
        });
        Box::pin(std::future::ready(r))
    }

    fn user_by_name(&self, name: &str) -> StoreFuture<'_, Option<User>> {
        let key = name_key(name);
        let r = self.read(|txn| {
            let names = txn.open_table(USER_NAMES).map_err(storage)?;
            let Some(id) = names.get(key.as_str()).map_err(storage)?.map(|g| g.value()) else {
                return Ok(None);
            };
            let users = txn.open_table(USERS).map_err(storage)?;
            get_user_ro(&users, id)
        });
        Box::pin(std::future::ready(r))
    }

    fn users(&self) -> StoreFuture<'_, Vec<User>> {
        let r = self.read(|txn| {
            let names = txn.open_table(USER_NAMES).map_err(storage)?;
            let users = txn.open_table(USERS).map_err(storage)?;
            let mut out = Vec::new();
            for entry in names.iter().map_err(storage)? {
                let (_, id) = entry.map_err(storage)?;
                if let Some(u) = get_user_ro(&users, id.value())? {
                    out.push(u);
                }
            }
            Ok(out)
        });
        Box::pin(std::future::ready(r))
    }

    fn create_user(&self, new: NewUser) -> StoreFuture<'_, User> {
        self.write(true, move |t| {
            let key = name_key(&new.name);
            if t.user_names.get(key.as_str()).map_err(storage)?.is_some() {
                return Err(StoreError::Conflict(format!("user '{}'", new.name)));
            }
            let id = next_user_id(&mut t.meta)?;
            let user = new.into_user(id);
            t.put_user(&user)?;
            t.user_names.insert(key.as_str(), id).map_err(storage)?;
            Ok(user)
        })
    }

    fn update_user(&self, id: UserId, change: UserChange) -> StoreFuture<'_, User> {
        self.write(true, move |t| {
            let mut user = t.user(id)?.ok_or(StoreError::NotFound)?;
            match change {
                UserChange::Password { hash, keep } => {
                    user.password_hash = hash;
                    t.revoke_all_of(id, keep)?;
                }
                UserChange::VerifyEmail => user.email_verified = true,
                UserChange::Unlock => {
                    user.logins.failed_count = 0;
                    t.delete_lockout(id)?;
                }
                UserChange::Admin(admin) => {
                    if user.admin != admin {
                        user.admin = admin;
                        user.epoch = user.epoch.wrapping_add(1);
                    }
                }
            }
            t.put_user(&user)?;
            Ok(user)
        })
    }

    fn delete_user(&self, id: UserId) -> StoreFuture<'_, bool> {
        self.write(true, move |t| {
            let Some(user) = t.user(id)? else {
                return Ok(false);
            };
            t.revoke_all_of(id, None)?;
            t.delete_lockout(id)?;
            for (hash, _) in t.tokens_of(id)? {
                t.tokens.remove(&hash).map_err(storage)?;
                t.user_tokens.remove((id, &hash)).map_err(storage)?;
            }
            t.user_names.remove(name_key(&user.name).as_str()).map_err(storage)?;
            t.remove_user(id)?;
            Ok(true)
        })
    }

    fn cached_session(&self, key: SessionKey) -> Option<(Arc<Session>, Arc<User>)> {
        if self.damage.is_found() {
            return None;
        }
        self.cache.get(&key.0)
    }

    fn session(&self, key: SessionKey) -> StoreFuture<'_, Option<(Arc<Session>, Arc<User>)>> {
        if let Some(hit) = self.cached_session(key) {
            return Box::pin(std::future::ready(Ok(Some(hit))));
        }
        let since = self.cache.generation.load(Ordering::Acquire);
        let r = self.read(|txn| {
            let sessions = txn.open_table(SESSIONS).map_err(storage)?;
            let Some(raw) = sessions.get(&key.0).map_err(storage)? else {
                return Ok(None);
            };
            let session = StoredSession::decode(raw.value())?.session;
            let users = txn.open_table(USERS).map_err(storage)?;
            Ok(get_user_ro(&users, session.user)?.map(|u| (Arc::new(session), Arc::new(u))))
        });
        if let Ok(Some((s, u))) = &r {
            self.cache.fill(since, key.0, s, u);
        }
        Box::pin(std::future::ready(r))
    }

    fn create_session(&self, plan: NewSession) -> StoreFuture<'_, Vec<SessionKey>> {
        self.write(true, move |t| {
            let uid = plan.session.user;
            let mut user = t.user(uid)?.ok_or(StoreError::NotFound)?;
            if plan.password_checked.as_ref().is_some_and(|h| *h != user.password_hash) {
                return Err(StoreError::NotFound);
            }
            let mut removed = Vec::new();
            for old in plan.replaces {
                if t.delete_session(old, false)? {
                    removed.push(old);
                }
            }
            removed.extend(t.make_room(uid, plan.max_per_user)?);
            if let Some((selector, series)) = &plan.new_series {
                t.put_series(*selector, series)?;
            }
            t.put_session(plan.key, &plan.session, plan.deadline)?;
            if plan.count_login {
                user.logins = user.logins.succeeded(plan.session.created);
                t.put_user(&user)?;
                t.delete_lockout(uid)?;
            }
            Ok(removed)
        })
    }

    fn touch_session(&self, key: SessionKey, last_use: Timestamp, deadline: Timestamp) {
        if self.damage.is_found() {
            return; // nothing is written any more; the damage was logged
        }
        // Touches wait in one map, a session's latest use winning, and the
        // first to arrive queues one write that takes them all: a burst of
        // due touches (every session of a busy server after a quiet spell)
        // costs memory per session while it waits, not per request.
        let first = {
            let mut pending = lock(&self.touches);
            let first = pending.is_empty();
            let entry = pending.entry(key).or_insert((last_use, deadline));
            if last_use > entry.0 {
                *entry = (last_use, deadline);
            }
            first
        };
        if !first {
            return; // rides on the write already queued
        }
        let touches = Arc::clone(&self.touches);
        let take_all = move |t: &mut Tables<'_>| {
            let batch = std::mem::take(&mut *lock(&touches));
            for (key, (last_use, deadline)) in batch {
                t.touch_session(key, last_use, deadline)?;
            }
            Ok(())
        };
        let report = |result: Result<(), StoreError>| {
            if let Err(e) = result {
                tracing::warn!("could not record session use: {e}");
            }
        };
        if let Err(e) = self.submit(false, take_all, report) {
            // Damage is logged once where it is found; a closing store has
            // nothing left to record uses for. Nothing will take the map.
            lock(&self.touches).clear();
            tracing::debug!("session use not recorded: {e}");
        }
    }

    fn delete_session(&self, key: SessionKey, with_series: bool) -> StoreFuture<'_, bool> {
        self.write(true, move |t| t.delete_session(key, with_series))
    }

    fn sessions_of(&self, user: UserId) -> StoreFuture<'_, Vec<(SessionKey, Session)>> {
        let r = self.read(|txn| {
            let index = txn.open_table(USER_SESSIONS).map_err(storage)?;
            let sessions = txn.open_table(SESSIONS).map_err(storage)?;
            let mut out = Vec::new();
            for entry in index.range((user, &[0u8; 16])..=(user, &[0xffu8; 16])).map_err(storage)? {
                let (k, _) = entry.map_err(storage)?;
                let key = SessionKey(*k.value().1);
                if let Some(raw) = sessions.get(&key.0).map_err(storage)? {
                    out.push((key, StoredSession::decode(raw.value())?.session));
                }
            }
            out.sort_by_key(|(_, s)| s.created);
            Ok(out)
        });
        Box::pin(std::future::ready(r))
    }

    fn all_sessions(&self) -> StoreFuture<'_, Vec<(SessionKey, Session)>> {
        let r = self.read(|txn| {
            let sessions = txn.open_table(SESSIONS).map_err(storage)?;
            let mut out = Vec::new();
            for entry in sessions.iter().map_err(storage)? {
                let (k, v) = entry.map_err(storage)?;
                out.push((SessionKey(*k.value()), StoredSession::decode(v.value())?.session));
            }
            out.sort_by_key(|(_, s)| s.created);
            Ok(out)
        });
        Box::pin(std::future::ready(r))
    }

    fn revoke_all_of(&self, user: UserId, keep: Option<SessionKey>) -> StoreFuture<'_, usize> {
        self.write(true, move |t| t.revoke_all_of(user, keep))
    }

    fn series(&self, selector: Selector) -> StoreFuture<'_, Option<Series>> {
        let r = self.read(|txn| {
            let series = txn.open_table(SERIES).map_err(storage)?;
            match series.get(&selector.0).map_err(storage)? {
                Some(raw) => Ok(Some(Series::decode(raw.value())?)),
                None => Ok(None),
            }
        });
        Box::pin(std::future::ready(r))
    }

    fn rotate_series(
        &self,
        selector: Selector,
        expected: [u8; 32],
        next: [u8; 32],
        grace_until: Timestamp,
        session: NewSession,
    ) -> StoreFuture<'_, Rotation> {
        self.write(true, move |t| {
            let Some(mut series) = t.series(selector)? else {
                return Ok(Rotation::Missing);
            };
            if !ct_eq(&series.current, &expected) {
                return Ok(Rotation::Changed(series));
            }
            if t.user(series.user)?.is_none() {
                return Ok(Rotation::Missing);
            }
            series.previous = Some(series.current);
            series.previous_until = grace_until;
            series.current = next;
            // Only the record changes: a rotation keeps the series' owner
            // and end, so its index entries stay as they are.
            t.series.insert(&selector.0, series.encode().as_slice()).map_err(storage)?;
            // A remember-me login is a login: it keeps the user within
            // --max-sessions-per-user as a password login does.
            t.make_room(series.user, session.max_per_user)?;
            t.put_session(session.key, &session.session, session.deadline)?;
            Ok(Rotation::Rotated)
        })
    }

    fn delete_series(&self, selector: Selector) -> StoreFuture<'_, bool> {
        self.write(true, move |t| t.delete_series(selector))
    }

    fn lockout(&self, user: UserId) -> StoreFuture<'_, Option<Lockout>> {
        let r = self.read(|txn| {
            let table = txn.open_table(LOCKOUTS).map_err(storage)?;
            match table.get(user).map_err(storage)? {
                Some(raw) => Ok(Some(Lockout::decode(raw.value())?.0)),
                None => Ok(None),
            }
        });
        Box::pin(std::future::ready(r))
    }

    fn login_failed(&self, user: UserId, at: Timestamp, step: LockoutStep) -> StoreFuture<'_, Lockout> {
        self.write(true, move |t| {
            let mut u = t.user(user)?.ok_or(StoreError::NotFound)?;
            let old = t.lockout(user)?;
            let (next, forget_at) = step(old.map(|(l, _)| l));
            if let Some((_, old_forget)) = old {
                t.expiry.remove((old_forget.0, KIND_LOCKOUT, &id16(user))).map_err(storage)?;
            }
            t.lockouts.insert(user, next.encode(forget_at).as_slice()).map_err(storage)?;
            t.expiry.insert((forget_at.0, KIND_LOCKOUT, &id16(user)), ()).map_err(storage)?;
            u.logins = u.logins.failed(at);
            t.put_user(&u)?;
            Ok(next)
        })
    }

    fn create_token(&self, hash: [u8; 16], token: ApiTokenRecord) -> StoreFuture<'_, ()> {
        self.write(true, move |t| {
            t.user(token.user)?.ok_or(StoreError::NotFound)?;
            t.tokens.insert(&hash, token.encode().as_slice()).map_err(storage)?;
            t.user_tokens.insert((token.user, &hash), ()).map_err(storage)?;
            Ok(())
        })
    }

    fn token(&self, hash: [u8; 16]) -> StoreFuture<'_, Option<(ApiTokenRecord, User)>> {
        let r = self.read(|txn| {
            let tokens = txn.open_table(TOKENS).map_err(storage)?;
            let Some(raw) = tokens.get(&hash).map_err(storage)? else { return Ok(None) };
            let token = ApiTokenRecord::decode(raw.value())?;
            let users = txn.open_table(USERS).map_err(storage)?;
            Ok(get_user_ro(&users, token.user)?.map(|u| (token, u)))
        });
        Box::pin(std::future::ready(r))
    }

    fn tokens_of(&self, user: UserId) -> StoreFuture<'_, Vec<([u8; 16], ApiTokenRecord)>> {
        let r = self.read(|txn| {
            let index = txn.open_table(USER_TOKENS).map_err(storage)?;
            let tokens = txn.open_table(TOKENS).map_err(storage)?;
            let mut out = Vec::new();
            for entry in index.range((user, &[0u8; 16])..=(user, &[0xffu8; 16])).map_err(storage)? {
                let (k, _) = entry.map_err(storage)?;
                let hash = *k.value().1;
                if let Some(raw) = tokens.get(&hash).map_err(storage)? {
                    out.push((hash, ApiTokenRecord::decode(raw.value())?));
                }
            }
            out.sort_by_key(|(_, t)| t.created);
            Ok(out)
        });
        Box::pin(std::future::ready(r))
    }

    fn delete_token(&self, id: [u8; 6], user: Option<UserId>) -> StoreFuture<'_, Option<ApiTokenRecord>> {
        self.write(true, move |t| {
            let mut low = [0u8; 16];
            let mut high = [0xffu8; 16];
            for ((l, h), b) in low.iter_mut().zip(high.iter_mut()).zip(id) {
                *l = b;
                *h = b;
            }
            let mut found = None;
            if let Some(entry) = t.tokens.range::<&[u8; 16]>(&low..=&high).map_err(storage)?.next() {
                let (k, v) = entry.map_err(storage)?;
                found = Some((*k.value(), ApiTokenRecord::decode(v.value())?));
            }
            match found {
                Some((hash, rec)) if user.is_none_or(|u| u == rec.user) => {
                    t.tokens.remove(&hash).map_err(storage)?;
                    t.user_tokens.remove((rec.user, &hash)).map_err(storage)?;
                    Ok(Some(rec))
                }
                _ => Ok(None),
            }
        })
    }

    fn create_verification(&self, hash: [u8; 16], token: Verification) -> StoreFuture<'_, ()> {
        self.write(true, move |t| {
            t.verifications.insert(&hash, token.encode().as_slice()).map_err(storage)?;
            t.expiry.insert((token.expires.0, KIND_VERIFICATION, &hash), ()).map_err(storage)?;
            Ok(())
        })
    }

    fn redeem_verification(&self, hash: [u8; 16], now: Timestamp) -> StoreFuture<'_, Option<User>> {
        self.write(true, move |t| {
            let Some(raw) = t.verifications.get(&hash).map_err(storage)?.map(|g| g.value().to_vec()) else {
                return Ok(None);
            };
            let v = Verification::decode(&raw)?;
            t.verifications.remove(&hash).map_err(storage)?;
            t.expiry.remove((v.expires.0, KIND_VERIFICATION, &hash)).map_err(storage)?;
            let Some(mut user) = t.user(v.user)? else { return Ok(None) };
            if now >= v.expires || user.email.as_deref() != Some(v.email.as_str()) {
                return Ok(None);
            }
            user.email_verified = true;
            t.put_user(&user)?;
            Ok(Some(user))
        })
    }

    fn session_count(&self) -> StoreFuture<'_, u64> {
        let r = self.read(|txn| txn.open_table(SESSIONS).map_err(storage)?.len().map_err(storage));
        Box::pin(std::future::ready(r))
    }

    fn sweep(&self, now: Timestamp, limits: SessionLimits, batch: usize) -> StoreFuture<'_, SweepReport> {
        self.write(false, move |t| {
            // Take the due entries out of the index in one pass over its front.
            let mut due = Vec::with_capacity(batch.min(4096));
            {
                let mut taken =
                    t.expiry.extract_from_if(..(now.0, 0, &[0u8; 16]), |_, _| true).map_err(storage)?;
                while due.len() < batch {
                    let Some(entry) = taken.next() else { break };
                    let (k, _) = entry.map_err(storage)?;
                    let (deadline, kind, id) = k.value();
                    due.push((deadline, kind, *id));
                }
            }
            let mut report = SweepReport { more: due.len() >= batch, ..Default::default() };
            let mut expired: Vec<(SessionKey, UserId)> = Vec::new();
            for (deadline, kind, id) in due {
                match kind {
                    KIND_SERIES => match t.series(Selector(id))? {
                        Some(series) if series.expires.0 == deadline => {
                            t.delete_series(Selector(id))?;
                            report.series += 1;
                        }
                        _ => report.stale += 1,
                    },
                    KIND_LOCKOUT => {
                        let user = u64::from_le_bytes(
                            id.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default(),
                        );
                        match t.lockout(user)? {
                            Some((_, forget)) if forget.0 == deadline => {
                                t.lockouts.remove(user).map_err(storage)?;
                                report.lockouts += 1;
                            }
                            _ => report.stale += 1,
                        }
                    }
                    KIND_VERIFICATION => {
                        if t.verifications.remove(&id).map_err(storage)?.is_some() {
                            report.verifications += 1;
                        } else {
                            report.stale += 1;
                        }
                    }
                    KIND_SESSION => {
                        let key = SessionKey(id);
                        match t.session(key)? {
                            // The index is authoritative only for its own entry: a
                            // session touched or re-filed since has a later entry.
                            Some((_, filed)) if filed.0 != deadline => report.stale += 1,
                            Some((s, _)) if s.deadline(limits) > now => {
                                // Still live under the current timeouts (they were raised): re-file.
                                t.put_session(key, &s, s.deadline(limits))?;
                                report.stale += 1;
                            }
                            Some((s, _)) => expired.push((key, s.user)),
                            None => report.stale += 1,
                        }
                    }
                    _ => report.stale += 1,
                }
            }
            // Delete in each table's own key order: neighbouring deletes share
            // pages, where the deadline order would touch a random page each.
            report.sessions = expired.len() as u64;
            expired.sort_unstable_by_key(|(k, _)| *k);
            for (key, _) in &expired {
                t.sessions.remove(&key.0).map_err(storage)?;
                t.dirty.sessions.push(key.0);
            }
            expired.sort_unstable_by_key(|(k, user)| (*user, *k));
            for (key, user) in &expired {
                t.user_sessions.remove((*user, &key.0)).map_err(storage)?;
            }
            Ok(report)
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        self.write(true, |_| Ok(()))
    }

    fn export(&self) -> StoreFuture<'_, Dump> {
        let secrets = (self.secrets.server_id.clone(), self.secrets.xsrf_key);
        let r = self.read(|txn| {
            let mut d = Dump { secrets: Some(secrets), ..Dump::default() };
            let meta = txn.open_table(META).map_err(storage)?;
            d.next_user_id = match meta.get("next_user_id").map_err(storage)? {
                Some(raw) => read_u64(raw.value())?,
                None => 1,
            };
            for e in txn.open_table(USERS).map_err(storage)?.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                d.users.push(User::decode(k.value(), v.value())?);
            }
            for e in txn.open_table(SESSIONS).map_err(storage)?.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                let stored = StoredSession::decode(v.value())?;
                d.sessions.push((SessionKey(*k.value()), stored.session, stored.filed));
            }
            for e in txn.open_table(SERIES).map_err(storage)?.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                d.series.push((Selector(*k.value()), Series::decode(v.value())?));
            }
            for e in txn.open_table(LOCKOUTS).map_err(storage)?.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                let (l, forget) = Lockout::decode(v.value())?;
                d.lockouts.push((k.value(), l, forget));
            }
            for e in txn.open_table(TOKENS).map_err(storage)?.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                d.tokens.push((*k.value(), ApiTokenRecord::decode(v.value())?));
            }
            for e in txn.open_table(VERIFICATIONS).map_err(storage)?.iter().map_err(storage)? {
                let (k, v) = e.map_err(storage)?;
                d.verifications.push((*k.value(), Verification::decode(v.value())?));
            }
            Ok(d)
        });
        Box::pin(std::future::ready(r))
    }

    fn import(&self, dump: Dump) -> StoreFuture<'_, ()> {
        self.write(true, move |t| {
            if t.users.len().map_err(storage)? > 0 {
                return Err(StoreError::Conflict("a destination with users".into()));
            }
            if let Some((server_id, key)) = &dump.secrets {
                t.meta.insert("server_id", server_id.as_bytes()).map_err(storage)?;
                t.meta.insert("xsrf_key", key.as_slice()).map_err(storage)?;
            }
            t.meta.insert("next_user_id", dump.next_user_id.to_le_bytes().as_slice()).map_err(storage)?;
            for u in &dump.users {
                t.put_user(u)?;
                t.user_names.insert(name_key(&u.name).as_str(), u.id).map_err(storage)?;
            }
            for (key, session, filed) in &dump.sessions {
                t.put_session(*key, session, *filed)?;
            }
            for (sel, series) in &dump.series {
                t.put_series(*sel, series)?;
            }
            for (user, l, forget) in &dump.lockouts {
                t.lockouts.insert(*user, l.encode(*forget).as_slice()).map_err(storage)?;
                t.expiry.insert((forget.0, KIND_LOCKOUT, &id16(*user)), ()).map_err(storage)?;
            }
            for (hash, tok) in &dump.tokens {
                t.tokens.insert(hash, tok.encode().as_slice()).map_err(storage)?;
                t.user_tokens.insert((tok.user, hash), ()).map_err(storage)?;
            }
            for (hash, v) in &dump.verifications {
                t.verifications.insert(hash, v.encode().as_slice()).map_err(storage)?;
                t.expiry.insert((v.expires.0, KIND_VERIFICATION, hash), ()).map_err(storage)?;
            }
            Ok(())
        })
    }
}

/// A session as stored: the record plus the deadline it is filed under
/// (8 bytes little-endian, then [`Session::encode`]). Public so that the
/// record decoders' fuzz target (`fuzz/`) can check it.
pub struct StoredSession {
    /// The session.
    pub session: Session,
    /// The deadline of its entry in the expiry index.
    pub filed: Timestamp,
}

impl StoredSession {
    /// The stored bytes of `session` filed under `filed`.
    pub fn encode(session: &Session, filed: Timestamp) -> Vec<u8> {
        let mut v = filed.0.to_le_bytes().to_vec();
        v.extend_from_slice(&session.encode());
        v
    }

    /// Reads a stored session back; an error, never a panic, for any other bytes.
    pub fn decode(bytes: &[u8]) -> Result<StoredSession, StoreError> {
        let (head, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or(StoreError::Corrupt(super::codec::DecodeError("session record too short")))?;
        Ok(StoredSession { filed: Timestamp(u64::from_le_bytes(*head)), session: Session::decode(rest)? })
    }
}

/// Every table, open in one write transaction.
struct Tables<'t> {
    meta: Table<'t, &'static str, &'static [u8]>,
    users: Table<'t, u64, &'static [u8]>,
    user_names: Table<'t, &'static str, u64>,
    sessions: Table<'t, &'static [u8; 16], &'static [u8]>,
    user_sessions: Table<'t, (u64, &'static [u8; 16]), ()>,
    series: Table<'t, &'static [u8; 16], &'static [u8]>,
    user_series: Table<'t, (u64, &'static [u8; 16]), ()>,
    lockouts: Table<'t, u64, &'static [u8]>,
    tokens: Table<'t, &'static [u8; 16], &'static [u8]>,
    user_tokens: Table<'t, (u64, &'static [u8; 16]), ()>,
    verifications: Table<'t, &'static [u8; 16], &'static [u8]>,
    expiry: Table<'t, (u64, u8, &'static [u8; 16]), ()>,
    /// What this batch changed, for the read cache.
    dirty: Dirty,
}

/// Keys a batch wrote; their cache entries are dropped after it commits.
#[derive(Default)]
struct Dirty {
    sessions: Vec<[u8; 16]>,
    users: Vec<UserId>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            meta: txn.open_table(META).map_err(storage)?,
            users: txn.open_table(USERS).map_err(storage)?,
            user_names: txn.open_table(USER_NAMES).map_err(storage)?,
            sessions: txn.open_table(SESSIONS).map_err(storage)?,
            user_sessions: txn.open_table(USER_SESSIONS).map_err(storage)?,
            series: txn.open_table(SERIES).map_err(storage)?,
            user_series: txn.open_table(USER_SERIES).map_err(storage)?,
            lockouts: txn.open_table(LOCKOUTS).map_err(storage)?,
            tokens: txn.open_table(TOKENS).map_err(storage)?,
            user_tokens: txn.open_table(USER_TOKENS).map_err(storage)?,
            verifications: txn.open_table(VERIFICATIONS).map_err(storage)?,
            expiry: txn.open_table(EXPIRY).map_err(storage)?,
            dirty: Dirty::default(),
        })
    }

    fn put_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.users.insert(user.id, user.encode().as_slice()).map_err(storage)?;
        self.dirty.users.push(user.id);
        Ok(())
    }

    fn remove_user(&mut self, id: UserId) -> Result<(), StoreError> {
        self.users.remove(id).map_err(storage)?;
        self.dirty.users.push(id);
        Ok(())
    }

    fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        match self.users.get(id).map_err(storage)? {
            Some(raw) => Ok(Some(User::decode(id, raw.value())?)),
            None => Ok(None),
        }
    }

    fn session(&self, key: SessionKey) -> Result<Option<(Session, Timestamp)>, StoreError> {
        match self.sessions.get(&key.0).map_err(storage)? {
            Some(raw) => {
                let s = StoredSession::decode(raw.value())?;
                Ok(Some((s.session, s.filed)))
            }
            None => Ok(None),
        }
    }

    fn put_session(&mut self, key: SessionKey, s: &Session, deadline: Timestamp) -> Result<(), StoreError> {
        self.sessions.insert(&key.0, StoredSession::encode(s, deadline).as_slice()).map_err(storage)?;
        self.dirty.sessions.push(key.0);
        self.user_sessions.insert((s.user, &key.0), ()).map_err(storage)?;
        self.expiry.insert((deadline.0, KIND_SESSION, &key.0), ()).map_err(storage)?;
        Ok(())
    }

    /// Records a later last use of a session (an earlier one, or a session
    /// gone since, changes nothing).
    fn touch_session(
        &mut self,
        key: SessionKey,
        last_use: Timestamp,
        deadline: Timestamp,
    ) -> Result<(), StoreError> {
        let Some((mut s, old_deadline)) = self.session(key)? else {
            return Ok(());
        };
        if last_use <= s.last_use {
            return Ok(());
        }
        s.last_use = last_use;
        self.refile_session(key, &s, old_deadline, deadline)
    }

    /// Rewrites a stored session's record and moves its expiry-index entry
    /// from `old_deadline` to `deadline`. Its owner is unchanged, so its
    /// per-user index entry stays as it is (a touch writes two B-trees,
    /// not three).
    fn refile_session(
        &mut self,
        key: SessionKey,
        s: &Session,
        old_deadline: Timestamp,
        deadline: Timestamp,
    ) -> Result<(), StoreError> {
        self.sessions.insert(&key.0, StoredSession::encode(s, deadline).as_slice()).map_err(storage)?;
        self.dirty.sessions.push(key.0);
        if old_deadline != deadline {
            self.expiry.remove((old_deadline.0, KIND_SESSION, &key.0)).map_err(storage)?;
            self.expiry.insert((deadline.0, KIND_SESSION, &key.0), ()).map_err(storage)?;
        }
        Ok(())
    }

    fn delete_session(&mut self, key: SessionKey, with_series: bool) -> Result<bool, StoreError> {
        let Some((s, filed)) = self.session(key)? else {
            return Ok(false);
        };
        self.sessions.remove(&key.0).map_err(storage)?;
        self.dirty.sessions.push(key.0);
        self.user_sessions.remove((s.user, &key.0)).map_err(storage)?;
        self.expiry.remove((filed.0, KIND_SESSION, &key.0)).map_err(storage)?;
        if let (true, Some(selector)) = (with_series, s.series) {
            self.delete_series(selector)?;
        }
        Ok(true)
    }

    fn lockout(&self, user: UserId) -> Result<Option<(Lockout, Timestamp)>, StoreError> {
        match self.lockouts.get(user).map_err(storage)? {
            Some(raw) => Ok(Some(Lockout::decode(raw.value())?)),
            None => Ok(None),
        }
    }

    fn tokens_of(&self, user: UserId) -> Result<Vec<([u8; 16], ApiTokenRecord)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.user_tokens.range((user, &[0u8; 16])..=(user, &[0xffu8; 16])).map_err(storage)? {
            let (k, _) = entry.map_err(storage)?;
            let hash = *k.value().1;
            if let Some(raw) = self.tokens.get(&hash).map_err(storage)? {
                out.push((hash, ApiTokenRecord::decode(raw.value())?));
            }
        }
        Ok(out)
    }

    fn delete_lockout(&mut self, user: UserId) -> Result<(), StoreError> {
        if let Some((_, forget)) = self.lockout(user)? {
            self.lockouts.remove(user).map_err(storage)?;
            self.expiry.remove((forget.0, KIND_LOCKOUT, &id16(user))).map_err(storage)?;
        }
        Ok(())
    }

    fn series(&self, selector: Selector) -> Result<Option<Series>, StoreError> {
        match self.series.get(&selector.0).map_err(storage)? {
            Some(raw) => Ok(Some(Series::decode(raw.value())?)),
            None => Ok(None),
        }
    }

    fn put_series(&mut self, selector: Selector, s: &Series) -> Result<(), StoreError> {
        if let Some(old) = self.series(selector)? {
            self.expiry.remove((old.expires.0, KIND_SERIES, &selector.0)).map_err(storage)?;
        }
        self.series.insert(&selector.0, s.encode().as_slice()).map_err(storage)?;
        self.user_series.insert((s.user, &selector.0), ()).map_err(storage)?;
        self.expiry.insert((s.expires.0, KIND_SERIES, &selector.0), ()).map_err(storage)?;
        Ok(())
    }

    fn delete_series(&mut self, selector: Selector) -> Result<bool, StoreError> {
        let Some(s) = self.series(selector)? else {
            return Ok(false);
        };
        self.series.remove(&selector.0).map_err(storage)?;
        self.user_series.remove((s.user, &selector.0)).map_err(storage)?;
        self.expiry.remove((s.expires.0, KIND_SERIES, &selector.0)).map_err(storage)?;
        Ok(true)
    }

    fn sessions_of(&self, user: UserId) -> Result<Vec<(SessionKey, Session)>, StoreError> {
        let mut keys = Vec::new();
        for entry in self.user_sessions.range((user, &[0u8; 16])..=(user, &[0xffu8; 16])).map_err(storage)? {
            let (k, _) = entry.map_err(storage)?;
            keys.push(SessionKey(*k.value().1));
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some((s, _)) = self.session(k)? {
                out.push((k, s));
            }
        }
        Ok(out)
    }

    /// Deletes the user's oldest sessions until one more fits within
    /// `max` (at least 1), and returns their keys. Counting reads only the
    /// per-user index; the sessions are read only when some must go.
    fn make_room(&mut self, user: UserId, max: u32) -> Result<Vec<SessionKey>, StoreError> {
        let max = usize::try_from(max.max(1)).unwrap_or(usize::MAX);
        let range = (user, &[0u8; 16])..=(user, &[0xffu8; 16]);
        if self.user_sessions.range(range).map_err(storage)?.count() < max {
            return Ok(Vec::new());
        }
        let mut existing = self.sessions_of(user)?;
        existing.sort_by_key(|(_, s)| s.created);
        let excess = (existing.len() + 1).saturating_sub(max);
        let mut removed = Vec::with_capacity(excess);
        for (k, _) in existing.into_iter().take(excess) {
            self.delete_session(k, false)?;
            removed.push(k);
        }
        Ok(removed)
    }

    fn revoke_all_of(&mut self, user: UserId, keep: Option<SessionKey>) -> Result<usize, StoreError> {
        let mut n = 0;
        let mut kept_series = None;
        for (k, s) in self.sessions_of(user)? {
            if Some(k) == keep {
                kept_series = s.series;
            } else if self.delete_session(k, false)? {
                n += 1;
            }
        }
        let mut selectors = Vec::new();
        for entry in self.user_series.range((user, &[0u8; 16])..=(user, &[0xffu8; 16])).map_err(storage)? {
            let (k, _) = entry.map_err(storage)?;
            selectors.push(Selector(*k.value().1));
        }
        for sel in selectors {
            if Some(sel) != kept_series {
                self.delete_series(sel)?;
            }
        }
        Ok(n)
    }
}

type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Op = Box<dyn for<'t> FnOnce(&mut Tables<'t>) -> (Done, Option<StoreError>) + Send>;

struct Job {
    durable: bool,
    op: Op,
}

/// The writer thread: batch, apply, commit, answer; flush lazily written data.
/// Once redb has panicked on the file, each batch is dropped unrun (its
/// callers hear "write aborted") and nothing more is flushed.
fn writer_loop(slot: &Slot, cache: &Cache, damage: &Damage, rx: &mpsc::Receiver<Job>, flush_after: Duration) {
    // Five nice steps below the async workers (and five above the password
    // hashing threads): where the writer and request handling share a core,
    // a sweep batch or a burst of touches yields to a waiting session check
    // instead of holding the core for a scheduler slice (issue 7, target 7).
    crate::priority::lower_current_thread(WRITER_NICE);
    let mut pending_since: Option<Instant> = None; // oldest non-durable commit
    let mut reopen_at: Option<Instant> = None; // next try while writes are stopped
    loop {
        if damage.writes_stopped() && !damage.is_found() {
            let due = *reopen_at.get_or_insert_with(|| Instant::now() + REOPEN_EVERY);
            if Instant::now() >= due {
                reopen_at = Some(Instant::now() + REOPEN_EVERY);
                if reopen(slot, damage, cache) {
                    // What was not durable went with the old handle (only touches are ever lazy).
                    pending_since = None;
                    reopen_at = None;
                }
            }
        }
        let wake = [pending_since.map(|since| since + flush_after), reopen_at].into_iter().flatten().min();
        let first = match wake {
            None => match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        let mut batch: Vec<Job> = first.into_iter().collect();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let db = read_lock(slot).clone();
        let Some(db) = db.filter(|_| !damage.is_found()) else {
            pending_since = None;
            continue; // dropping the batch answers its callers
        };
        let overdue = pending_since.is_some_and(|t| t.elapsed() >= flush_after);
        if batch.is_empty() && !overdue {
            continue; // woken to try a reopen
        }
        let durable = batch.is_empty() || overdue || batch.iter().any(|j| j.durable);
        match contained_batch(&db, cache, damage, batch, durable) {
            Ok(()) if durable => pending_since = None,
            Ok(()) => pending_since = pending_since.or(Some(Instant::now())),
            // Logged once, with what to do, where it was found.
            Err(e) if damage.writes_stopped() => tracing::debug!("database write failed: {e}"),
            Err(e) => tracing::error!("database write failed: {e}"),
        }
    }
    let db = read_lock(slot).clone();
    if let (Some(db), Some(_)) = (db, pending_since) {
        if let Err(e) = contained_batch(&db, cache, damage, Vec::new(), true) {
            tracing::error!("final database flush failed: {e}");
        }
    }
}

/// Opens the database again after an I/O error stopped writes, once a
/// probe shows the disk takes writes again; whether writes resume. The old
/// handle serves reads until then. Readers hold it only for one read, so
/// it is closed as soon as they are done (redb allows one open per file).
fn reopen(slot: &Slot, damage: &Damage, cache: &Cache) -> bool {
    let path = &damage.path;
    if let Err(e) = probe_writes(path) {
        tracing::debug!("{} still cannot be written: {e}", path.display());
        return false;
    }
    let failed = |e: OpenError| {
        tracing::error!(
            "cannot open the database again after the I/O error ({e}); retrying every {} s",
            REOPEN_EVERY.as_secs()
        );
        false
    };
    // What start-up checks, on a copy in memory while the old handle reads on.
    if let Err(e) = trial_open(path) {
        return failed(e);
    }
    let old = write_lock(slot).take();
    if let Some(old) = old {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&old) > 1 {
            if Instant::now() >= deadline {
                *write_lock(slot) = Some(old); // a read is taking long: next time
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(old);
    }
    match create_at(path, path) {
        Ok(db) => {
            cache.clear();
            *write_lock(slot) = Some(Arc::new(db));
            damage.writes_resumed();
            tracing::warn!("{} opened again after the I/O error; writes resume", path.display());
            true
        }
        Err(e) => failed(e),
    }
}

/// Writes and syncs [`REOPEN_PROBE_BYTES`] beside `path`, then removes them.
fn probe_writes(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let probe = path.with_extension("redb.probe");
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&vec![0u8; REOPEN_PROBE_BYTES])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written
}

/// [`run_batch`], with a panic inside redb recorded as damage (the cache is
/// dropped whole: what the failed commit wrote is unknown).
fn contained_batch(
    db: &Arc<Database>,
    cache: &Cache,
    damage: &Damage,
    batch: Vec<Job>,
    durable: bool,
) -> Result<(), StoreError> {
    contain(|| run_batch(db, cache, damage, batch, durable)).unwrap_or_else(|detail| {
        cache.clear();
        damage.record(db, "writing", &detail);
        Err(damage.error())
    })
}

fn run_batch(
    db: &Database,
    cache: &Cache,
    damage: &Damage,
    batch: Vec<Job>,
    durable: bool,
) -> Result<(), StoreError> {
    let txn = match begin(db, damage, durable) {
        Ok(t) => t,
        Err(e) => {
            drop(batch); // each caller hears "write aborted"
            return Err(e);
        }
    };
    let mut dones = Vec::with_capacity(batch.len());
    let mut fatal = None;
    let mut dirty = Dirty::default();
    match Tables::open(&txn) {
        Ok(mut tables) => {
            for job in batch {
                let (done, err) = (job.op)(&mut tables);
                dones.push(done);
                if let Some(e) = err {
                    fatal = Some(e);
                    break;
                }
            }
            dirty = std::mem::take(&mut tables.dirty);
        }
        Err(e) => fatal = Some(e),
    }
    let outcome = match fatal {
        Some(e) => {
            let _ = txn.abort();
            Err(e)
        }
        None => txn.commit().map_err(|e| {
            let cause = if let redb::CommitError::Storage(c) = &e { Some(c) } else { None };
            damage.record_io(cause, &e);
            storage(e)
        }),
    };
    // Before anyone hears back: a caller that wrote must not read the old value.
    cache.invalidate(&dirty);
    for done in dones {
        done(outcome.clone());
    }
    outcome
}

fn begin(db: &Database, damage: &Damage, durable: bool) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(|e| {
        let cause = if let redb::TransactionError::Storage(c) = &e { Some(c) } else { None };
        damage.record_io(cause, &e);
        storage(e)
    })?;
    if !durable {
        txn.set_durability(Durability::None).map_err(storage)?;
    }
    Ok(txn)
}

fn get_user_ro(
    users: &redb::ReadOnlyTable<u64, &'static [u8]>,
    id: UserId,
) -> Result<Option<User>, StoreError> {
    match users.get(id).map_err(storage)? {
        Some(raw) => Ok(Some(User::decode(id, raw.value())?)),
        None => Ok(None),
    }
}

fn next_user_id(meta: &mut Table<'_, &'static str, &'static [u8]>) -> Result<UserId, StoreError> {
    let current = match meta.get("next_user_id").map_err(storage)? {
        Some(raw) => read_u64(raw.value())?,
        None => 1,
    };
    meta.insert("next_user_id", current.saturating_add(1).to_le_bytes().as_slice()).map_err(storage)?;
    Ok(current)
}

/// A user id as a 16-byte expiry-index id.
fn id16(user: UserId) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(user.to_le_bytes()) {
        *o = b;
    }
    out
}

fn read_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] =
        bytes.try_into().map_err(|_| StoreError::Corrupt(super::codec::DecodeError("bad counter")))?;
    Ok(u64::from_le_bytes(arr))
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

/// Opens the file, mapping every failure (including a panic inside redb on a
/// damaged file) to an [`OpenError`] that names it.
fn open_database(path: &Path) -> Result<Database, OpenError> {
    if path.exists() {
        open_existing(path)
    } else {
        create_database(path)
    }
}

fn open_existing(path: &Path) -> Result<Database, OpenError> {
    let io = |detail: String| OpenError::Io { path: path.to_path_buf(), detail };
    // Opening for writing rewrites the file's header, so whatever makes
    // authd refuse an existing file is found first: read-only, then by a
    // trial whose writes stay in memory. An empty file is no database
    // (redb would start a new one in it).
    if std::fs::metadata(path).map_err(|e| io(e.to_string()))?.len() == 0 {
        return Err(OpenError::Corrupt { path: path.to_path_buf(), detail: "the file is empty".into() });
    }
    check_read_only(path)?;
    if let Err(e) = trial_open(path) {
        // The trial reads without redb's lock: a failure may be another
        // authd writing the file since the check above, which its lock says.
        check_read_only(path)?;
        return Err(e);
    }
    create_at(path, path)
}

/// redb's writable open of `file`, its failures (a panic inside redb on a
/// damaged file too) named as `path`'s.
fn create_at(file: &Path, path: &Path) -> Result<Database, OpenError> {
    match contain(|| builder().create(file)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(open_error(path, e)),
        Err(detail) => Err(OpenError::Corrupt { path: path.to_path_buf(), detail: damaged(&detail) }),
    }
}

/// Makes a new database under a name of this process's own and links it in
/// place only once redb has written it, so a crash during a first start
/// leaves no half-made `authd.redb` behind (an empty one is refused), and
/// of two first starts at once, the second finds the first's database
/// (held: a clear error) instead of replacing it.
fn create_database(path: &Path) -> Result<Database, OpenError> {
    let io = |e: std::io::Error| OpenError::Io { path: path.to_path_buf(), detail: e.to_string() };
    let fresh = path.with_extension(format!("redb.new.{}", std::process::id()));
    let _ = std::fs::remove_file(&fresh); // this pid's, from a crash long ago
    create_private_file(&fresh).map_err(io)?;
    let placed = create_at(&fresh, path).and_then(|db| match std::fs::hard_link(&fresh, path) {
        Ok(()) => sync_parent(path).map(|()| Some(db)).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(io(e)),
    });
    let _ = std::fs::remove_file(&fresh);
    match placed? {
        Some(db) => Ok(db),
        // Another start made it first.
        None => open_existing(path),
    }
}

/// Makes a new name in `path`'s directory durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() => std::fs::File::open(".")?.sync_all(),
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// redb's settings for authd's file.
fn builder() -> redb::Builder {
    let mut builder = Database::builder();
    builder.set_cache_size(32 * 1024 * 1024);
    builder
}

/// The detail of an [`OpenError::Corrupt`] for a panic inside redb.
fn damaged(panic: &str) -> String {
    format!("the file is damaged: {panic}")
}

/// The largest file whose every page [`trial_open`] reads at start-up: the
/// pass costs about 0.07 s per 100 MB from the page cache, but 0.6 s per
/// 100 MB from a cold disk, which would cost a file of a million sessions
/// (200-550 MB) seconds of start-up after a reboot.
const FULL_CHECK_MAX: u64 = 64 * 1024 * 1024;

/// Runs what start-up does to an existing file (redb's writable open, which
/// repairs a file that was not closed cleanly, the schema transaction, the
/// close) on an [`Overlay`] of it that keeps every write in memory, and
/// checks every page's checksum there (files up to [`FULL_CHECK_MAX`]).
/// redb trusts the allocator state a clean close recorded and reads a
/// page's checksum only in a repair or a check, so damage would otherwise
/// show only when a request or an allocation reaches it, as a panic or an
/// error; here it is found while the file is still as it was.
fn trial_open(path: &Path) -> Result<(), OpenError> {
    let io = |e: std::io::Error| OpenError::Io { path: path.to_path_buf(), detail: e.to_string() };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let overlay = || file.try_clone().map(|f| Overlay::new(f, len)).map_err(io);
    let tried = contain(|| -> Result<(), OpenError> {
        let db = builder().create_with_backend(overlay()?).map_err(|e| open_error(path, e))?;
        probe_tables(&db)
            .map_err(|e| OpenError::Corrupt { path: path.to_path_buf(), detail: e.to_string() })?;
        init_schema(&db, path)?;
        db.close().map_err(|e| open_error(path, e))?;
        if len > FULL_CHECK_MAX {
            return Ok(());
        }
        // Then every page's checksum, on a fresh overlay: the check rebuilds
        // the allocator state, which would hide damage to it from the close.
        let mut db = builder().create_with_backend(overlay()?).map_err(|e| open_error(path, e))?;
        match db.check_integrity().map_err(|e| open_error(path, e))? {
            true => Ok(()),
            false => Err(OpenError::Corrupt {
                path: path.to_path_buf(),
                detail: "the file is damaged: page checksums do not match".into(),
            }),
        }
    });
    tried.unwrap_or_else(|detail| {
        Err(OpenError::Corrupt { path: path.to_path_buf(), detail: damaged(&detail) })
    })
}

/// Opens each table by itself in a read transaction. A damaged table
/// definition makes redb panic while it holds the write transaction's table
/// lock; if another table of that transaction is open, the lock's poison
/// makes that table's drop panic too, and a second panic aborts the process
/// past any `catch_unwind`, with no word of the file. Found here first, the
/// panic is a lone one, which [`contain`] turns into an error naming it.
fn probe_tables(db: &Database) -> Result<(), StoreError> {
    fn one<K: redb::Key + 'static, V: redb::Value + 'static>(
        txn: &ReadTransaction,
        table: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        match txn.open_table(table) {
            Ok(t) => t.len().map(drop).map_err(storage),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(()),
            Err(e) => Err(storage(e)),
        }
    }
    let txn = db.begin_read().map_err(storage)?;
    one(&txn, META)?;
    one(&txn, USERS)?;
    one(&txn, USER_NAMES)?;
    one(&txn, SESSIONS)?;
    one(&txn, USER_SESSIONS)?;
    one(&txn, SERIES)?;
    one(&txn, USER_SERIES)?;
    one(&txn, LOCKOUTS)?;
    one(&txn, TOKENS)?;
    one(&txn, USER_TOKENS)?;
    one(&txn, VERIFICATIONS)?;
    one(&txn, EXPIRY)
}

fn open_error(path: &Path, e: redb::DatabaseError) -> OpenError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => OpenError::Locked(path.to_path_buf()),
        redb::DatabaseError::Storage(redb::StorageError::Io(e))
            if e.kind() != std::io::ErrorKind::InvalidData =>
        {
            OpenError::Io { path: path.to_path_buf(), detail: e.to_string() }
        }
        e => OpenError::Corrupt { path: path.to_path_buf(), detail: e.to_string() },
    }
}

/// Refuses, without writing, a file that is not a redb database, is held by
/// another process, or was written by a newer schema. A file that was not
/// closed cleanly (a crash) passes: the writable open repairs it.
fn check_read_only(path: &Path) -> Result<(), OpenError> {
    let corrupt = |detail: String| OpenError::Corrupt { path: path.to_path_buf(), detail };
    let opened = match contain(|| redb::ReadOnlyDatabase::open(path)) {
        Ok(Ok(db)) => db,
        Ok(Err(redb::DatabaseError::RepairAborted)) => return Ok(()),
        Ok(Err(e)) => return Err(open_error(path, e)),
        Err(detail) => return Err(corrupt(damaged(&detail))),
    };
    let found = contain(|| -> Result<Option<u64>, String> {
        let txn = opened.begin_read().map_err(|e| e.to_string())?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        match meta.get("schema").map_err(|e| e.to_string())? {
            Some(raw) => read_u64(raw.value()).map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    });
    match found {
        Ok(Ok(Some(found))) if found > u64::from(SCHEMA_VERSION) => {
            Err(OpenError::NewerSchema { path: path.to_path_buf(), found })
        }
        Ok(Ok(_)) => Ok(()),
        Ok(Err(detail)) => Err(corrupt(detail)),
        Err(detail) => Err(corrupt(damaged(&detail))),
    }
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map(drop)
}

/// What [`init_schema`] found or made.
struct Schema {
    secrets: ServerSecrets,
    /// The schema the file was migrated from, if it was.
    migrated_from: Option<u64>,
}

/// Creates the tables and secrets of a new file, or checks (and migrates)
/// an existing one's schema; silent, so a trial run logs nothing.
fn init_schema(db: &Database, path: &Path) -> Result<Schema, OpenError> {
    let fail = |e: StoreError| OpenError::Corrupt { path: path.to_path_buf(), detail: e.to_string() };
    let txn = db.begin_write().map_err(storage).map_err(fail)?;
    let mut migrated = None;
    let secrets = {
        let mut t = Tables::open(&txn).map_err(fail)?;
        let version = match t.meta.get("schema").map_err(storage).map_err(fail)? {
            Some(raw) => Some(read_u64(raw.value()).map_err(fail)?),
            None => None,
        };
        match version {
            None => {
                let users = t.users.len().map_err(storage).map_err(fail)?;
                if users > 0 {
                    return Err(fail(StoreError::Storage("users present but no schema version".into())));
                }
                let secrets = ServerSecrets { server_id: new_server_id(), xsrf_key: random() };
                let m = &mut t.meta;
                let put = |m: &mut Table<'_, &'static str, &'static [u8]>, k: &str, v: &[u8]| {
                    m.insert(k, v).map(drop).map_err(storage).map_err(fail)
                };
                put(m, "schema", &u64::from(SCHEMA_VERSION).to_le_bytes())?;
                put(m, "server_id", secrets.server_id.as_bytes())?;
                put(m, "xsrf_key", &secrets.xsrf_key)?;
                put(m, "created_by", env!("CARGO_PKG_VERSION").as_bytes())?;
                secrets
            }
            Some(v) if v > u64::from(SCHEMA_VERSION) => {
                return Err(OpenError::NewerSchema { path: path.to_path_buf(), found: v })
            }
            Some(v) if v < u64::from(SCHEMA_VERSION) => {
                migrate(&mut t, v).map_err(fail)?;
                migrated = Some(v);
                read_secrets(&t.meta).map_err(fail)?
            }
            Some(_) => read_secrets(&t.meta).map_err(fail)?,
        }
    };
    txn.commit().map_err(storage).map_err(fail)?;
    Ok(Schema { secrets, migrated_from: migrated })
}

/// Brings a file written with schema `from` up to [`SCHEMA_VERSION`] inside
/// the opening transaction (a crash or a failed step leaves the file as it
/// was): the steps ([`super::check_migration`]), then the new stamp.
fn migrate(t: &mut Tables<'_>, from: u64) -> Result<(), StoreError> {
    super::check_migration(from, u64::from(SCHEMA_VERSION))?;
    t.meta.insert("schema", u64::from(SCHEMA_VERSION).to_le_bytes().as_slice()).map_err(storage)?;
    Ok(())
}

fn read_secrets(meta: &Table<'_, &'static str, &'static [u8]>) -> Result<ServerSecrets, StoreError> {
    let missing = |what: &'static str| StoreError::Corrupt(super::codec::DecodeError(what));
    let server_id = meta.get("server_id").map_err(storage)?.ok_or(missing("no server id"))?;
    let server_id = String::from_utf8(server_id.value().to_vec()).map_err(|_| missing("bad server id"))?;
    let key = meta.get("xsrf_key").map_err(storage)?.ok_or(missing("no XSRF key"))?;
    let xsrf_key: [u8; 32] = key.value().try_into().map_err(|_| missing("bad XSRF key"))?;
    Ok(ServerSecrets { server_id, xsrf_key })
}

/// A Jira-style server id: four groups of four upper-case letters and digits.
fn new_server_id() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 16] = random();
    let mut s = String::with_capacity(19);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        let c = ALPHABET.get(usize::from(b & 31)).copied().unwrap_or(b'A'); // b & 31 < 32
        s.push(char::from(c));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LoginStats, NewUser};

    fn open(dir: &Path) -> RedbStore {
        RedbStore::open(&dir.join(DB_FILE), Duration::from_secs(1)).unwrap()
    }

    /// The nice value of this process's thread named `name` (from /proc).
    #[cfg(target_os = "linux")]
    fn nice_of_thread(name: &str) -> Option<i64> {
        std::fs::read_dir("/proc/self/task").unwrap().flatten().find_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if comm.trim_end() != name {
                return None;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // Fields after the parenthesised command: state is field 3, nice field 19.
            let after = stat.rsplit_once(") ")?.1;
            after.split(' ').nth(16)?.parse().ok()
        })
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_thread_runs_below_the_opening_threads_priority() {
        let dir = tempfile::tempdir().unwrap();
        let own = crate::priority::current_thread_nice().unwrap();
        let expected = Some(i64::from((own + WRITER_NICE).min(19)));
        let s = open(dir.path());
        let mut writer = None;
        for _ in 0..200 {
            writer = nice_of_thread("authd-writer");
            if writer == expected {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(writer, expected);
        drop(s);
    }

    fn new_user(name: &str) -> NewUser {
        NewUser {
            name: name.into(),
            email: None,
            email_verified: true,
            admin: false,
            password_hash: "x".into(),
            created: Timestamp(1),
        }
    }

    fn session(user: UserId, at: u64) -> Session {
        Session {
            user,
            created: Timestamp(at),
            last_use: Timestamp(at),
            address: None,
            browser: "t".into(),
            series: None,
            xsrf: [0; 10],
            epoch: 0,
        }
    }

    fn plan(key: u8, s: Session, deadline: u64) -> NewSession {
        NewSession {
            key: SessionKey([key; 16]),
            session: s,
            deadline: Timestamp(deadline),
            replaces: Vec::new(),
            max_per_user: 100,
            count_login: true,
            new_series: None,
            password_checked: None,
        }
    }

    const LIMITS: SessionLimits =
        SessionLimits { idle: Duration::from_secs(10), absolute: Duration::from_secs(100) };

    #[tokio::test]
    async fn users_are_unique_case_insensitively() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let a = s.create_user(new_user("Alice")).await.unwrap();
        assert!(matches!(s.create_user(new_user("ALICE")).await, Err(StoreError::Conflict(_))));
        assert_eq!(s.user_by_name("alice").await.unwrap().unwrap().id, a.id);
        let b = s.create_user(new_user("bob")).await.unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(s.users().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn sessions_survive_reopen_and_are_swept_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let uid;
        {
            let s = open(dir.path());
            uid = s.create_user(new_user("a")).await.unwrap().id;
            s.create_session(plan(1, session(uid, 1), 10_000)).await.unwrap();
            s.create_session(plan(2, session(uid, 50_000), 60_000)).await.unwrap();
        }
        let s = open(dir.path());
        assert_eq!(s.session_count().await.unwrap(), 2);
        let u = s.user(uid).await.unwrap().unwrap();
        assert_eq!(u.logins, LoginStats::default().succeeded(Timestamp(1)).succeeded(Timestamp(50_000)));
        let r = s.sweep(Timestamp(20_000), LIMITS, 100).await.unwrap();
        assert_eq!(r, SweepReport { sessions: 1, more: false, ..SweepReport::default() });
        assert!(s.session(SessionKey([1; 16])).await.unwrap().is_none());
        assert!(s.session(SessionKey([2; 16])).await.unwrap().is_some());
        assert_eq!(s.sessions_of(uid).await.unwrap().len(), 1);
    }

    /// A login's session is written only if the password hash it checked is
    /// still the user's: a password change that raced the check wins.
    #[tokio::test]
    async fn a_login_checked_against_a_replaced_password_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let uid = s.create_user(new_user("a")).await.unwrap().id;
        let checked = |key: u8, hash: &str| NewSession {
            password_checked: Some(hash.into()),
            replaces: vec![SessionKey([1; 16])],
            ..plan(key, session(uid, 5), 10_000)
        };
        s.create_session(plan(1, session(uid, 1), 10_000)).await.unwrap();
        s.update_user(uid, UserChange::Password { hash: "y".into(), keep: None }).await.unwrap();
        s.create_session(plan(1, session(uid, 2), 10_000)).await.unwrap();
        let before = s.user(uid).await.unwrap().unwrap();
        assert!(matches!(s.create_session(checked(2, "x")).await, Err(StoreError::NotFound)));
        assert!(s.session(SessionKey([2; 16])).await.unwrap().is_none(), "the session was written");
        assert!(s.session(SessionKey([1; 16])).await.unwrap().is_some(), "the carried session was replaced");
        assert_eq!(s.user(uid).await.unwrap().unwrap().logins, before.logins, "the login was counted");
        // Checked against the current hash, it goes through.
        s.create_session(checked(2, "y")).await.unwrap();
        assert!(s.session(SessionKey([2; 16])).await.unwrap().is_some());
        assert!(s.session(SessionKey([1; 16])).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn touch_moves_the_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let uid = s.create_user(new_user("a")).await.unwrap().id;
        s.create_session(plan(1, session(uid, 0), 10_000)).await.unwrap();
        s.touch_session(SessionKey([1; 16]), Timestamp(8_000), Timestamp(18_000));
        // The flush is queued after the touch's write.
        s.flush().await.unwrap();
        // Still its owner's, with the new last use.
        let mine = s.sessions_of(uid).await.unwrap();
        assert_eq!(
            mine.iter().map(|(k, s)| (*k, s.last_use)).collect::<Vec<_>>(),
            [(SessionKey([1; 16]), Timestamp(8_000))]
        );
        assert_eq!(s.sweep(Timestamp(15_000), LIMITS, 100).await.unwrap().sessions, 0);
        assert_eq!(s.sweep(Timestamp(19_000), LIMITS, 100).await.unwrap().sessions, 1);
    }

    #[tokio::test]
    async fn touches_made_together_are_written_together_and_the_latest_use_wins() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let uid = s.create_user(new_user("a")).await.unwrap().id;
        s.create_session(plan(1, session(uid, 0), 10_000)).await.unwrap();
        s.create_session(plan(2, session(uid, 0), 10_000)).await.unwrap();
        let (one, two) = (SessionKey([1; 16]), SessionKey([2; 16]));
        // One write takes them all, whenever the writer reaches it.
        s.touch_session(one, Timestamp(5_000), Timestamp(15_000));
        s.touch_session(one, Timestamp(7_000), Timestamp(17_000));
        s.touch_session(two, Timestamp(6_000), Timestamp(16_000));
        s.touch_session(one, Timestamp(6_500), Timestamp(16_500)); // older than 7,000: no effect
        s.flush().await.unwrap(); // (queued after the touches' write)
        let mine: Vec<_> = s.sessions_of(uid).await.unwrap().iter().map(|(k, s)| (*k, s.last_use)).collect();
        assert!(
            mine.contains(&(one, Timestamp(7_000))) && mine.contains(&(two, Timestamp(6_000))),
            "{mine:?}"
        );
        // Filed under the deadlines that went with those uses.
        assert_eq!(s.sweep(Timestamp(16_600), LIMITS, 100).await.unwrap().sessions, 1);
        assert_eq!(s.sweep(Timestamp(17_100), LIMITS, 100).await.unwrap().sessions, 1);
    }

    #[tokio::test]
    async fn sweep_refiles_sessions_that_longer_timeouts_keep_alive() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let uid = s.create_user(new_user("a")).await.unwrap().id;
        s.create_session(plan(1, session(uid, 0), 1_000)).await.unwrap();
        let r = s.sweep(Timestamp(5_000), LIMITS, 100).await.unwrap();
        assert_eq!((r.sessions, r.stale), (0, 1));
        assert!(s.session(SessionKey([1; 16])).await.unwrap().is_some());
        assert_eq!(s.sweep(Timestamp(11_000), LIMITS, 100).await.unwrap().sessions, 1);
    }

    #[tokio::test]
    async fn sweep_works_in_bounded_batches() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let uid = s.create_user(new_user("a")).await.unwrap().id;
        for k in 0..10u8 {
            s.create_session(plan(k, session(uid, 0), 1_000)).await.unwrap();
        }
        let r = s.sweep(Timestamp(50_000), LIMITS, 4).await.unwrap();
        assert_eq!((r.sessions, r.more), (4, true));
        let r = s.sweep(Timestamp(50_000), LIMITS, 4).await.unwrap();
        assert_eq!((r.sessions, r.more), (4, true));
        let r = s.sweep(Timestamp(50_000), LIMITS, 4).await.unwrap();
        assert_eq!((r.sessions, r.more), (2, false));
        assert_eq!(s.session_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn replaced_and_excess_sessions_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let uid = s.create_user(new_user("a")).await.unwrap().id;
        s.create_session(plan(1, session(uid, 1), 99_000)).await.unwrap();
        let mut p = plan(2, session(uid, 2), 99_000);
        p.replaces = vec![SessionKey([1; 16])];
        assert_eq!(s.create_session(p).await.unwrap(), vec![SessionKey([1; 16])]);
        let mut p = plan(3, session(uid, 3), 99_000);
        p.max_per_user = 1;
        assert_eq!(s.create_session(p).await.unwrap(), vec![SessionKey([2; 16])]);
        let left: Vec<_> = s.sessions_of(uid).await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(left, vec![SessionKey([3; 16])]);
    }

    #[tokio::test]
    async fn password_change_and_deletion_end_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let uid = s.create_user(new_user("a")).await.unwrap().id;
        for k in 1..=3 {
            s.create_session(plan(k, session(uid, u64::from(k)), 99_000)).await.unwrap();
        }
        let keep = Some(SessionKey([2; 16]));
        s.update_user(uid, UserChange::Password { hash: "y".into(), keep }).await.unwrap();
        assert_eq!(s.sessions_of(uid).await.unwrap().len(), 1);
        assert!(s.delete_user(uid).await.unwrap());
        assert_eq!(s.session_count().await.unwrap(), 0);
        assert!(s.user_by_name("a").await.unwrap().is_none());
        // The expiry index holds nothing for the deleted sessions.
        assert_eq!(s.sweep(Timestamp(u64::MAX), LIMITS, 100).await.unwrap(), SweepReport::default());
    }

    #[tokio::test]
    async fn failed_logins_update_counters_and_lockout_atomically_and_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let uid = s.create_user(new_user("a")).await.unwrap().id;
        let step = |forget: u64| -> LockoutStep {
            Box::new(move |old: Option<Lockout>| {
                let mut l = old.unwrap_or_default();
                l.strikes += 1;
                (l, Timestamp(forget))
            })
        };
        s.login_failed(uid, Timestamp(10), step(5_000)).await.unwrap();
        let l = s.login_failed(uid, Timestamp(20), step(6_000)).await.unwrap();
        assert_eq!(l.strikes, 2);
        assert_eq!(s.user(uid).await.unwrap().unwrap().logins.failed_count, 2);
        // Only the latest forget time is in the index.
        assert_eq!(s.sweep(Timestamp(5_500), LIMITS, 100).await.unwrap().lockouts, 0);
        assert_eq!(s.sweep(Timestamp(6_500), LIMITS, 100).await.unwrap().lockouts, 1);
        assert_eq!(s.lockout(uid).await.unwrap(), None);
        // A successful login deletes the record too.
        s.login_failed(uid, Timestamp(30), step(9_000)).await.unwrap();
        s.create_session(plan(1, session(uid, 40), 99_000)).await.unwrap();
        assert_eq!(s.lockout(uid).await.unwrap(), None);
    }

    #[tokio::test]
    async fn verification_tokens_work_once_and_only_for_the_same_address() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let mut nu = new_user("a");
        nu.email = Some("a@x".into());
        nu.email_verified = false;
        let uid = s.create_user(nu).await.unwrap().id;
        let v = Verification { user: uid, email: "a@x".into(), expires: Timestamp(1_000) };
        s.create_verification([1; 16], v.clone()).await.unwrap();
        assert_eq!(s.redeem_verification([1; 16], Timestamp(2_000)).await.unwrap(), None, "expired");
        s.create_verification([2; 16], v.clone()).await.unwrap();
        let u = s.redeem_verification([2; 16], Timestamp(500)).await.unwrap().unwrap();
        assert!(u.email_verified);
        assert_eq!(s.redeem_verification([2; 16], Timestamp(500)).await.unwrap(), None, "used");
        let other = Verification { email: "b@x".into(), ..v };
        s.create_verification([3; 16], other).await.unwrap();
        assert_eq!(s.redeem_verification([3; 16], Timestamp(500)).await.unwrap(), None, "another address");
    }

    #[tokio::test]
    async fn api_tokens_are_found_by_hash_listed_and_revoked_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let a = s.create_user(new_user("a")).await.unwrap().id;
        let b = s.create_user(new_user("b")).await.unwrap().id;
        let rec = |user, label: &str| ApiTokenRecord { user, label: label.into(), created: Timestamp(1) };
        s.create_token([7; 16], rec(a, "ci")).await.unwrap();
        s.create_token([8; 16], rec(b, "x")).await.unwrap();
        assert_eq!(s.token([7; 16]).await.unwrap().unwrap().1.id, a);
        assert_eq!(s.tokens_of(a).await.unwrap().len(), 1);
        assert_eq!(s.delete_token([7; 6], Some(b)).await.unwrap(), None, "not b's token");
        assert_eq!(s.delete_token([7; 6], Some(a)).await.unwrap().unwrap().label, "ci");
        assert!(s.token([7; 16]).await.unwrap().is_none());
        assert!(s.delete_user(b).await.unwrap());
        assert!(s.token([8; 16]).await.unwrap().is_none(), "deleting a user deletes their tokens");
    }

    #[tokio::test]
    async fn a_second_open_is_refused_while_the_first_holds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path());
        let second = RedbStore::open(&dir.path().join(DB_FILE), Duration::from_secs(1));
        assert!(matches!(second, Err(OpenError::Locked(_))));
    }

    #[test]
    fn garbage_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let junk = b"this is not a database, it is a shopping list".repeat(200);
        std::fs::write(&path, &junk).unwrap();
        let r = RedbStore::open(&path, Duration::from_secs(1));
        assert!(matches!(r, Err(OpenError::Corrupt { .. })), "{:?}", r.err());
        assert_eq!(std::fs::read(&path).unwrap(), junk);
    }

    #[test]
    fn a_schema_beyond_u32_is_reported_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        drop(open(dir.path()));
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("schema", 99_999_999_999u64.to_le_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
        drop(db);
        let err = RedbStore::open(&path, Duration::from_secs(1)).err().unwrap();
        assert!(matches!(err, OpenError::NewerSchema { found: 99_999_999_999, .. }), "{err:?}");
        assert!(err.to_string().contains("schema 99999999999;"), "{err}");
    }

    #[tokio::test]
    async fn a_panic_inside_a_read_marks_the_file_damaged_and_every_call_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let uid = s.create_user(new_user("ann")).await.unwrap().id;
        s.create_session(plan(1, session(uid, 1000), 5000)).await.unwrap();
        assert!(s.session(SessionKey([1; 16])).await.unwrap().is_some(), "now cached");
        let r: Result<(), StoreError> = s.read(|_| panic!("index out of bounds"));
        let named = |r: Result<_, StoreError>| match r {
            Err(StoreError::Storage(m)) => m.contains(&dir.path().join(DB_FILE).display().to_string()),
            _ => false,
        };
        assert!(named(r), "the read's error does not name the file");
        assert!(s.cached_session(SessionKey([1; 16])).is_none(), "the cache still answers");
        assert!(named(s.session(SessionKey([1; 16])).await.map(drop)));
        assert!(named(s.user(uid).await.map(drop)));
        assert!(named(s.flush().await));
        drop(s); // must not close (and so write) the damaged file, nor panic
    }

    #[tokio::test]
    async fn a_panic_on_the_writer_thread_fails_that_write_and_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r: Result<(), StoreError> = s.write(true, |_| panic!("index out of bounds")).await;
        assert!(matches!(r, Err(StoreError::Storage(_))), "{r:?}");
        let later = s.create_user(new_user("bob")).await;
        assert!(matches!(&later, Err(StoreError::Storage(m)) if m.contains("is damaged")), "{later:?}");
        assert!(matches!(s.flush().await, Err(StoreError::Storage(_))));
        drop(s);
    }

    #[test]
    fn server_ids_look_like_jiras() {
        let id = new_server_id();
        assert_eq!(id.len(), 19);
        assert_eq!(id.matches('-').count(), 3);
    }
}

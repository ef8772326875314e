//! Helper for bench/run.sh: seeds sessions straight into a data dir's store
//! (with the server stopped) and times the reference operations the targets
//! are ratios of. Not part of authd; see bench/README.md.
//!
//! ```text
//! benchtool seed --data DIR --sessions N [--per-user K] [--prefix P]
//!                [--cookies FILE] [--cookie-limit M] [--expired] [--remember]
//! benchtool argon2 [--iterations N]          one argon2id verify, as authd does it
//! benchtool commit-rate --dir DIR [--seconds S]   one durable redb commit per session
//! benchtool sweep-time --data DIR [--runs R]      a full sweep of the store, timed
//! benchtool remember-ceiling --data DIR --cookies FILE [--skip K] [--count N]
//!                [--clients C] [--seconds S]
//!     the store's share of a remember-me login (series and user reads, the
//!     rotation's durable write) from C concurrent clients, no HTTP: the
//!     most logins/s any server on this store could reach on this core
//! benchtool redb-floor --dir DIR [--keys N] [--batch B] [--seconds S]
//!     redb alone, no authd: durable commits of one update, then of B
//!     updates, at random keys of a table of N, and of B appended keys;
//!     the least page work a login that rewrites one record found by a
//!     random key (a remember-me series) costs
//! benchtool journal-floor --dir DIR [--keys N] [--fold F] [--logins L] [--unsorted]
//!     redb alone, no authd, laid out as a log: each login appends one
//!     record, 64 to a durable commit, and every F logins (rounded down to
//!     a multiple of 64) one durable transaction applies them, sorted by
//!     key (or in arrival order, with --unsorted), to tables of N series and
//!     N sessions (series rewritten, session, per-user and expiry entries
//!     inserted) and deletes them from the log; the least store work a
//!     remember-me login costs on redb if its random-key writes are deferred
//! ```
//!
//! Every subcommand prints one JSON object on stdout.

use std::collections::HashMap;
use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authd::clock::{Clock as _, SystemClock, Timestamp};
use authd::cookies::CookieNames;
use authd::store::redb::RedbStore;
use authd::store::{NewSession, NewUser, Series, Session, SessionLimits, Store, UserId};
use authd::token::{RememberToken, SessionId};
use authd::xsrf::{State, Xsrf};

/// The password of every seeded user.
const PASSWORD: &str = "bench-password";
/// authd's default timeouts (the benchmark runs the server with them).
const IDLE: Duration = Duration::from_secs(5 * 3600);
const ABSOLUTE: Duration = Duration::from_secs(24 * 3600);
/// Writes queued at once: enough for the store's group commit to fill its batches.
const WINDOW: usize = 2048;

fn main() {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let opts = parse_opts(args);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| fail(&e));
    let out = match cmd.as_str() {
        "seed" => rt.block_on(seed(&opts)),
        "argon2" => argon2(&opts),
        "commit-rate" => rt.block_on(commit_rate(&opts)),
        "sweep-time" => rt.block_on(sweep_time(&opts)),
        "remember-ceiling" => rt.block_on(remember_ceiling(&opts)),
        "redb-floor" => redb_floor(&opts),
        "journal-floor" => journal_floor(&opts),
        _ => fail(
            &"usage: benchtool seed|argon2|commit-rate|sweep-time|remember-ceiling|redb-floor|journal-floor [--flags]; see the source",
        ),
    };
    println!("{out}");
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    eprintln!("benchtool: {e}");
    std::process::exit(1);
}

type Opts = HashMap<String, String>;

fn parse_opts(mut args: impl Iterator<Item = String>) -> Opts {
    let mut opts = HashMap::new();
    while let Some(a) = args.next() {
        let Some(name) = a.strip_prefix("--") else { fail(&format!("unexpected argument {a}")) };
        match name {
            "expired" | "remember" | "unsorted" => {
                opts.insert(name.to_string(), "1".to_string());
            }
            _ => {
                let v = args.next().unwrap_or_else(|| fail(&format!("--{name} needs a value")));
                opts.insert(name.to_string(), v);
            }
        }
    }
    opts
}

fn num(opts: &Opts, name: &str, default: u64) -> u64 {
    opts.get(name).map_or(default, |v| v.parse().unwrap_or_else(|_| fail(&format!("--{name}: not a number"))))
}

fn path(opts: &Opts, name: &str) -> PathBuf {
    PathBuf::from(opts.get(name).unwrap_or_else(|| fail(&format!("--{name} is required"))))
}

fn open(db: &Path) -> Arc<RedbStore> {
    Arc::new(RedbStore::open(db, Duration::from_secs(1)).unwrap_or_else(|e| fail(&e)))
}

fn file_bytes(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(p).map(|m| m.len().max(m.blocks() * 512)).unwrap_or(0)
}

/// Bytes in the pages redb has allocated in the file at `p` (the data and its
/// B-tree slack): unlike the file's length, this does not depend on how far
/// redb's last doubling of the file overshot.
fn page_bytes(p: &Path) -> u64 {
    let db = redb::Database::open(p).unwrap_or_else(|e| fail(&e));
    let txn = db.begin_write().unwrap_or_else(|e| fail(&e));
    let stats = txn.stats().unwrap_or_else(|e| fail(&e));
    txn.abort().unwrap_or_else(|e| fail(&e));
    stats.allocated_pages() * stats.page_size() as u64
}

/// Seeds `--sessions` sessions over `sessions / per-user` new users, and
/// writes a Cookie header value per session (the first `--cookie-limit`).
async fn seed(opts: &Opts) -> String {
    let data = authd::datadir::DataDir::new(path(opts, "data"));
    data.prepare().unwrap_or_else(|e| fail(&e));
    let db = data.db();
    let n = num(opts, "sessions", 1000);
    let per_user = num(opts, "per-user", 10).max(1);
    let prefix = opts.get("prefix").cloned().unwrap_or_else(|| "seed".into());
    let expired = opts.contains_key("expired");
    let remember = opts.contains_key("remember");
    let limit = num(opts, "cookie-limit", u64::MAX);
    let names = CookieNames::new("");
    let started = Instant::now();
    let hash = authd::password::hash(PASSWORD).unwrap_or_else(|e| fail(&e));

    // Users first, then the file's size without sessions.
    let users_needed = n.div_ceil(per_user);
    let store = open(&db);
    let now = SystemClock.now();
    let mut uids = Vec::with_capacity(usize::try_from(users_needed).unwrap_or(0));
    let mut pending = Vec::new();
    for i in 0..users_needed {
        let new = NewUser {
            name: format!("{prefix}{i}"),
            email: None,
            email_verified: true,
            admin: false,
            password_hash: hash.clone(),
            created: now,
        };
        pending.push(store.create_user(new));
        if pending.len() >= WINDOW || i + 1 == users_needed {
            for f in pending.drain(..) {
                uids.push(f.await.unwrap_or_else(|e| fail(&e)).id);
            }
        }
    }
    drop(pending);
    let secrets = store.secrets().clone();
    drop(store); // closes the file cleanly
    let bytes_users = file_bytes(&db);
    let pages_users = page_bytes(&db);

    let xsrf = Xsrf::new(&secrets.server_id, secrets.xsrf_key);
    let store = open(&db);
    let mut cookies = opts
        .get("cookies")
        .map(|p| std::io::BufWriter::new(std::fs::File::create(p).unwrap_or_else(|e| fail(&e))));
    // Live sessions look freshly made; expired ones went idle a minute ago.
    let (created, last_use) = if expired {
        let last = Timestamp(now.0.saturating_sub(IDLE.as_millis() as u64 + 60_000));
        (last, last)
    } else {
        (now, now)
    };
    let limits = SessionLimits { idle: IDLE, absolute: ABSOLUTE };
    let mut pending = Vec::new();
    for i in 0..n {
        let uid = uids.get(usize::try_from(i / per_user).unwrap_or(0)).copied().unwrap_or(1);
        let id = SessionId::generate();
        let nonce = Xsrf::new_nonce();
        let token = remember.then(RememberToken::generate);
        let session = Session {
            user: uid,
            created,
            last_use,
            address: Some(std::net::IpAddr::from([127, 0, 0, 1])),
            browser: "wrk".into(),
            series: token.as_ref().map(|t| t.selector),
            xsrf: nonce,
            epoch: 0,
        };
        let new_series = token.as_ref().map(|t| {
            let series = Series {
                user: uid,
                current: t.validator.hash(),
                previous: None,
                previous_until: created,
                created,
                expires: created.plus(Duration::from_secs(14 * 86_400)),
            };
            (t.selector, series)
        });
        if let Some(w) = cookies.as_mut().filter(|_| i < limit) {
            let line = match &token {
                Some(t) => format!("{}={}", names.remember, t.to_cookie_value()),
                None => format!(
                    "{}={}; {}={}",
                    names.session,
                    id.to_cookie_value(),
                    names.xsrf,
                    xsrf.token(nonce, State::LoggedIn(uid))
                ),
            };
            writeln!(w, "{line}").unwrap_or_else(|e| fail(&e));
        }
        let deadline = session.deadline(limits);
        pending.push(store.create_session(NewSession {
            key: id.key(),
            session,
            deadline,
            replaces: Vec::new(),
            max_per_user: u32::try_from(per_user).unwrap_or(u32::MAX),
            count_login: false,
            new_series,
            password_checked: None,
        }));
        if pending.len() >= WINDOW || i + 1 == n {
            for f in pending.drain(..) {
                f.await.unwrap_or_else(|e| fail(&e));
            }
        }
    }
    drop(pending);
    if let Some(mut w) = cookies {
        w.flush().unwrap_or_else(|e| fail(&e));
    }
    drop(store);
    let bytes_after = file_bytes(&db);
    let pages_after = page_bytes(&db);
    format!(
        r#"{{"sessions":{n},"users":{users_needed},"seconds":{:.3},"db_bytes_users_only":{bytes_users},"db_bytes":{bytes_after},"page_bytes_users_only":{pages_users},"page_bytes":{pages_after},"password":"{PASSWORD}","user_prefix":"{prefix}"}}"#,
        started.elapsed().as_secs_f64()
    )
}

/// The time of one argon2id verify with authd's parameters, on this thread.
fn argon2(opts: &Opts) -> String {
    let n = num(opts, "iterations", 20).max(1);
    let hash = authd::password::hash(PASSWORD).unwrap_or_else(|e| fail(&e));
    let mut times = Vec::new();
    let cpu_before = thread_cpu_ns();
    for _ in 0..n {
        let t = Instant::now();
        if !authd::password::verify(PASSWORD, &hash) {
            fail(&"argon2 verify failed");
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu_ms = match (cpu_before, thread_cpu_ns()) {
        (Some(a), Some(b)) => format!("{:.3}", (b.saturating_sub(a)) as f64 / 1e6 / n as f64),
        _ => "null".into(),
    };
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    format!(
        r#"{{"iterations":{n},"verify_ms_median":{median:.3},"verify_ms_mean":{mean:.3},"verify_cpu_ms_mean":{cpu_ms}}}"#
    )
}

/// CPU time this thread has used, in nanoseconds (Linux schedstat), if known.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok().filter(|&ns| ns > 0)
}

/// Durable commits per second when every request commits on its own: one
/// session created and awaited at a time, as a server without group commit would.
async fn commit_rate(opts: &Opts) -> String {
    let dir = path(opts, "dir");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&e));
    let db = dir.join("commit-rate.redb");
    let _ = std::fs::remove_file(&db);
    let secs = num(opts, "seconds", 3);
    let store = open(&db);
    let now = SystemClock.now();
    let uid = store
        .create_user(NewUser {
            name: "commit".into(),
            email: None,
            email_verified: true,
            admin: false,
            password_hash: "x".into(),
            created: now,
        })
        .await
        .unwrap_or_else(|e| fail(&e))
        .id;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        store.create_session(new_session(session_at(uid, now), now)).await.unwrap_or_else(|e| fail(&e));
        n += 1;
    }
    let took = started.elapsed().as_secs_f64();
    drop(store);
    let _ = std::fs::remove_file(&db);
    format!(r#"{{"commits":{n},"seconds":{took:.3},"commits_per_s":{:.1}}}"#, n as f64 / took)
}

/// The store work of remember-me logins (what `Auth::login_remembered` asks
/// of the store for a current cookie) from `--clients` concurrent clients,
/// each cookie used once, for at most `--seconds`.
async fn remember_ceiling(opts: &Opts) -> String {
    use authd::token::Validator;
    let data = authd::datadir::DataDir::new(path(opts, "data"));
    let text = std::fs::read_to_string(path(opts, "cookies")).unwrap_or_else(|e| fail(&e));
    let skip = usize::try_from(num(opts, "skip", 0)).unwrap_or(usize::MAX);
    let count = usize::try_from(num(opts, "count", u64::MAX)).unwrap_or(usize::MAX);
    let tokens: Vec<RememberToken> = text
        .lines()
        .filter_map(|l| l.split_once('=').and_then(|(_, v)| RememberToken::parse(v)))
        .skip(skip)
        .take(count)
        .collect();
    if tokens.is_empty() {
        fail(&"no remember-me cookies in --cookies (after --skip)");
    }
    let clients = usize::try_from(num(opts, "clients", 64)).unwrap_or(64).max(1);
    let limit = Duration::from_secs(num(opts, "seconds", 3));
    let store = open(&data.db());
    let tokens = Arc::new(tokens);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (store, tokens, next) = (Arc::clone(&store), Arc::clone(&tokens), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < limit {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(token) = tokens.get(i) else { break };
                let presented = token.validator.hash();
                let series = store.series(token.selector).await.unwrap_or_else(|e| fail(&e));
                let series = series.unwrap_or_else(|| fail(&"a seeded series is missing"));
                let user = store.user(series.user).await.unwrap_or_else(|e| fail(&e));
                let user = user.unwrap_or_else(|| fail(&"a seeded user is missing"));
                let now = SystemClock.now();
                let session = Session {
                    series: Some(token.selector),
                    xsrf: Xsrf::new_nonce(),
                    epoch: user.epoch,
                    ..session_at(user.id, now)
                };
                let plan = new_session(session, now);
                let next = Validator::generate().hash();
                let grace = now.plus(Duration::from_secs(60));
                let r = store.rotate_series(token.selector, presented, next, grace, plan).await;
                match r.unwrap_or_else(|e| fail(&e)) {
                    authd::store::Rotation::Rotated => done += 1,
                    _ => fail(&"a seeded series did not rotate (was the cookie file used before?)"),
                }
            }
            done
        }));
    }
    let mut logins = 0u64;
    for w in workers {
        logins += w.await.unwrap_or_else(|e| fail(&e));
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    let exhausted = next.load(std::sync::atomic::Ordering::Relaxed) >= tokens.len();
    format!(
        r#"{{"logins":{logins},"seconds":{took:.3},"logins_per_s":{:.1},"cpu_us_per_login":{:.1},"exhausted":{exhausted}}}"#,
        logins as f64 / took,
        cpu * 1e6 / logins.max(1) as f64
    )
}

/// What redb itself costs for durable writes, without authd: a table of
/// `--keys` 16-byte random keys with 60-byte values (a remember-me series
/// record's size), then, for `--seconds` each, durable commits that rewrite
/// one record at a random key, commits that rewrite `--batch` of them, and
/// commits that append `--batch` new keys in key order.
fn redb_floor(opts: &Opts) -> String {
    const TABLE: redb::TableDefinition<&[u8; 16], &[u8]> = redb::TableDefinition::new("floor");
    let keys = num(opts, "keys", 600_000).max(1);
    let batch = num(opts, "batch", 64).max(1);
    let secs = Duration::from_secs(num(opts, "seconds", 3));
    let key = |i: u64| -> [u8; 16] {
        let mut k = [0u8; 16];
        k.copy_from_slice(&blake3::hash(&i.to_le_bytes()).as_bytes()[..16]);
        k
    };
    let value = [7u8; 60];
    let (db, file) = fresh_redb(opts, "redb-floor.redb");
    seed_redb(&db, keys, |txn, records| {
        let mut t = txn.open_table(TABLE).unwrap_or_else(|e| fail(&e));
        for i in records {
            t.insert(&key(i), value.as_slice()).unwrap_or_else(|e| fail(&e));
        }
    });
    let mut random = random_below(keys);
    let mut random_key = move || key(random());
    let mut appended = u64::MAX / 2;
    let mut run = |per_commit: u64, random: bool| -> (f64, f64) {
        let cpu_before = process_cpu_seconds();
        let started = Instant::now();
        let mut writes = 0u64;
        while started.elapsed() < secs {
            let txn = db.begin_write().unwrap_or_else(|e| fail(&e));
            {
                let mut t = txn.open_table(TABLE).unwrap_or_else(|e| fail(&e));
                for _ in 0..per_commit {
                    let k = if random {
                        random_key()
                    } else {
                        appended += 1;
                        let mut k = [0xff; 16];
                        k[..8].copy_from_slice(&appended.to_be_bytes());
                        k
                    };
                    t.insert(&k, value.as_slice()).unwrap_or_else(|e| fail(&e));
                    writes += 1;
                }
            }
            txn.commit().unwrap_or_else(|e| fail(&e));
        }
        let took = started.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds() - cpu_before;
        (writes as f64 / took, cpu * 1e6 / writes.max(1) as f64)
    };
    let (one, one_cpu) = run(1, true);
    let (random, random_cpu) = run(batch, true);
    let (append, append_cpu) = run(batch, false);
    drop(db);
    let _ = std::fs::remove_file(&file);
    format!(
        r#"{{"keys":{keys},"batch":{batch},"one_per_commit_per_s":{one:.1},"one_per_commit_cpu_us":{one_cpu:.1},"random_batch_writes_per_s":{random:.1},"random_batch_cpu_us_per_write":{random_cpu:.1},"append_batch_writes_per_s":{append:.1},"append_batch_cpu_us_per_write":{append_cpu:.1}}}"#
    )
}

/// A remember-me login's durable writes on redb laid out as a log (see the
/// module's usage): the appends are what a login would wait for, the folds
/// are the deferred random-key writes, done in key order, each key of each
/// table touched once per fold. Until a fold, every pending login would have
/// to be kept in memory for reads, which this does not count.
fn journal_floor(opts: &Opts) -> String {
    const SERIES: redb::TableDefinition<&[u8; 16], &[u8]> = redb::TableDefinition::new("series");
    const SESSIONS: redb::TableDefinition<&[u8; 16], &[u8]> = redb::TableDefinition::new("sessions");
    const USER_SESSIONS: redb::TableDefinition<(u64, &[u8; 16]), ()> =
        redb::TableDefinition::new("user_sessions");
    const EXPIRY: redb::TableDefinition<(u64, u8, &[u8; 16]), ()> = redb::TableDefinition::new("expiry");
    const JOURNAL: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("journal");
    let keys = num(opts, "keys", 600_000).max(1);
    let fold = num(opts, "fold", 100_000).max(64) / 64 * 64;
    let sorted = !opts.contains_key("unsorted");
    let logins = num(opts, "logins", 2 * fold).max(fold);
    let key = |i: u64, table: u8| -> [u8; 16] {
        let mut input = [table; 9];
        input[1..].copy_from_slice(&i.to_le_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&blake3::hash(&input).as_bytes()[..16]);
        k
    };
    // Record sizes as authd's codec writes them (a series about 60 bytes,
    // a session about 90), and a log record holding both.
    let (series_value, session_value, record) = ([7u8; 60], [9u8; 90], [5u8; 160]);
    let (per_user, far) = (10, 1u64 << 40);
    let (db, file) = fresh_redb(opts, "journal-floor.redb");
    seed_redb(&db, keys, |txn, records| {
        let mut series = txn.open_table(SERIES).unwrap_or_else(|e| fail(&e));
        let mut sessions = txn.open_table(SESSIONS).unwrap_or_else(|e| fail(&e));
        let mut by_user = txn.open_table(USER_SESSIONS).unwrap_or_else(|e| fail(&e));
        let mut expiry = txn.open_table(EXPIRY).unwrap_or_else(|e| fail(&e));
        txn.open_table(JOURNAL).unwrap_or_else(|e| fail(&e));
        for i in records {
            series.insert(&key(i, 0), series_value.as_slice()).unwrap_or_else(|e| fail(&e));
            let k = key(i, 1);
            sessions.insert(&k, session_value.as_slice()).unwrap_or_else(|e| fail(&e));
            by_user.insert((i / per_user, &k), ()).unwrap_or_else(|e| fail(&e));
            expiry.insert((far + i, 1, &k), ()).unwrap_or_else(|e| fail(&e));
        }
    });
    let mut random = random_below(keys);
    let (mut append_cpu, mut fold_cpu, mut fold_wall) = (0.0, 0.0, 0.0);
    let (mut logged, mut folded, mut folds) = (0u64, 0u64, 0u64);
    while logged < logins {
        let before = process_cpu_seconds();
        for _ in 0..fold / 64 {
            let txn = db.begin_write().unwrap_or_else(|e| fail(&e));
            {
                let mut log = txn.open_table(JOURNAL).unwrap_or_else(|e| fail(&e));
                for _ in 0..64 {
                    log.insert(logged, record.as_slice()).unwrap_or_else(|e| fail(&e));
                    logged += 1;
                }
            }
            txn.commit().unwrap_or_else(|e| fail(&e));
        }
        append_cpu += process_cpu_seconds() - before;
        let (before, started) = (process_cpu_seconds(), Instant::now());
        let txn = db.begin_write().unwrap_or_else(|e| fail(&e));
        {
            let mut log = txn.open_table(JOURNAL).unwrap_or_else(|e| fail(&e));
            let mut series = txn.open_table(SERIES).unwrap_or_else(|e| fail(&e));
            let mut sessions = txn.open_table(SESSIONS).unwrap_or_else(|e| fail(&e));
            let mut by_user = txn.open_table(USER_SESSIONS).unwrap_or_else(|e| fail(&e));
            let mut expiry = txn.open_table(EXPIRY).unwrap_or_else(|e| fail(&e));
            let (mut rotated, mut created, mut indexed) = (Vec::new(), Vec::new(), Vec::new());
            for (n, entry) in
                log.extract_from_if(folded..logged, |_, _| true).unwrap_or_else(|e| fail(&e)).enumerate()
            {
                entry.unwrap_or_else(|e| fail(&e));
                let (owner, k) = (random(), key(keys + folded + n as u64, 1));
                rotated.push(key(owner, 0));
                created.push(k);
                indexed.push((owner / per_user, k));
            }
            if sorted {
                rotated.sort_unstable();
                indexed.sort_unstable();
            }
            for k in &rotated {
                series.insert(k, series_value.as_slice()).unwrap_or_else(|e| fail(&e));
            }
            // Expiry keys lead with the time, so a fold's are in order already.
            for (n, k) in created.iter().enumerate() {
                expiry.insert((2 * far + folded + n as u64, 1, k), ()).unwrap_or_else(|e| fail(&e));
            }
            if sorted {
                created.sort_unstable();
            }
            for k in &created {
                sessions.insert(k, session_value.as_slice()).unwrap_or_else(|e| fail(&e));
            }
            for (user, k) in &indexed {
                by_user.insert((*user, k), ()).unwrap_or_else(|e| fail(&e));
            }
            folded = logged;
        }
        txn.commit().unwrap_or_else(|e| fail(&e));
        fold_cpu += process_cpu_seconds() - before;
        fold_wall += started.elapsed().as_secs_f64();
        folds += 1;
    }
    drop(db);
    let _ = std::fs::remove_file(&file);
    let per_login = |cpu: f64| cpu * 1e6 / logged.max(1) as f64;
    format!(
        r#"{{"keys":{keys},"fold":{fold},"sorted":{sorted},"logins":{logged},"append_cpu_us_per_login":{:.2},"fold_cpu_us_per_login":{:.2},"cpu_us_per_login":{:.2},"fold_seconds":{:.2}}}"#,
        per_login(append_cpu),
        per_login(fold_cpu),
        per_login(append_cpu + fold_cpu),
        fold_wall / folds.max(1) as f64
    )
}

/// A new, empty redb file `name` in `--dir`, with authd's cache size
/// (`store::redb`), and its path.
fn fresh_redb(opts: &Opts, name: &str) -> (redb::Database, PathBuf) {
    let dir = path(opts, "dir");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&e));
    let file = dir.join(name);
    let _ = std::fs::remove_file(&file);
    let db = redb::Database::builder().set_cache_size(32 << 20).create(&file).unwrap_or_else(|e| fail(&e));
    (db, file)
}

/// Seeds `db` with records `0..keys`: `fill` writes a range of them in a
/// transaction, 20,000 to a non-durable commit; an empty durable commit at
/// the end makes them all durable.
fn seed_redb(db: &redb::Database, keys: u64, mut fill: impl FnMut(&redb::WriteTransaction, Range<u64>)) {
    for start in (0..keys).step_by(20_000) {
        let mut txn = db.begin_write().unwrap_or_else(|e| fail(&e));
        txn.set_durability(redb::Durability::None).unwrap_or_else(|e| fail(&e));
        fill(&txn, start..(start + 20_000).min(keys));
        txn.commit().unwrap_or_else(|e| fail(&e));
    }
    db.begin_write().unwrap_or_else(|e| fail(&e)).commit().unwrap_or_else(|e| fail(&e));
}

/// Numbers below `n` from a fixed xorshift sequence (the same in every run).
fn random_below(n: u64) -> impl FnMut() -> u64 {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    }
}

/// A session of `user` begun and last used at `now`, with no series.
fn session_at(user: UserId, now: Timestamp) -> Session {
    Session {
        user,
        created: now,
        last_use: now,
        address: None,
        browser: "wrk".into(),
        series: None,
        xsrf: [0; 10],
        epoch: 0,
    }
}

/// A new session under a fresh ID, as a login makes it (idle deadline).
fn new_session(session: Session, now: Timestamp) -> NewSession {
    NewSession {
        key: SessionId::generate().key(),
        session,
        deadline: now.plus(IDLE),
        replaces: Vec::new(),
        max_per_user: 100,
        count_login: false,
        new_series: None,
        password_checked: None,
    }
}

/// This process's user + system CPU time.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 }
}

/// Times full sweeps (as the sweeper runs them: batches of `sweeper::BATCH`)
/// of the store, with authd's default timeouts.
async fn sweep_time(opts: &Opts) -> String {
    let data = authd::datadir::DataDir::new(path(opts, "data"));
    let runs = num(opts, "runs", 5).max(1);
    let store = open(&data.db());
    let limits = SessionLimits { idle: IDLE, absolute: ABSOLUTE };
    let mut times = Vec::new();
    let mut deleted = 0;
    for _ in 0..runs {
        let t = Instant::now();
        loop {
            let r = store
                .sweep(SystemClock.now(), limits, authd::sweeper::BATCH)
                .await
                .unwrap_or_else(|e| fail(&e));
            deleted += r.sessions;
            if !r.more {
                break;
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let count = store.session_count().await.unwrap_or_else(|e| fail(&e));
    let list = times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(",");
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    format!(
        r#"{{"runs":{runs},"ms":[{list}],"ms_median":{median:.3},"deleted":{deleted},"sessions_left":{count}}}"#
    )
}

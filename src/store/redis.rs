//! The shared store: Redis or Valkey, standalone or cluster (SPEC §11).
//!
//! Several authd instances behind a load balancer share everything through
//! this store. Key layout (`NS` is `--store-namespace`, `U` a user id, hex
//! ids are the hashes the redb store keys by):
//!
//! ```text
//! NS:meta                    hash: schema, server_id, xsrf_key   (set once, HSETNX)
//! NS:next_user               counter
//! NS:names                   hash: lower-cased name -> U
//! NS:{u:U}:user              hash: the user and Jira's login counters
//! NS:{u:U}:s:HEX             hash: a session              (TTL: its deadline)
//! NS:{u:U}:sessions          zset: session HEX by creation time
//! NS:{u:U}:r:HEX             hash: a remember-me series   (TTL: its end)
//! NS:{u:U}:series            set:  series HEX
//! NS:{u:U}:lockout           hash: failed-login state     (TTL: when it is forgotten)
//! NS:{u:U}:t:HEX             hash: an API token
//! NS:{u:U}:tokens            set:  token HEX
//! NS:{u:U}:verifications     set:  verification HEX
//! NS:sp:HEX, NS:rp:HEX, NS:t:HEX   pointers: session/series/token -> U (same TTL)
//! NS:tid:ID                  token id (12 hex) -> token HEX
//! NS:v:HEX                   hash: an email-verification token (TTL)
//! NS:live                    zset: "U:HEX" by deadline, for counting and sweeping
//! ```
//!
//! Everything that belongs to one user shares the hash tag `{u:U}`, so it
//! lives in one cluster slot and changes atomically in one Lua script: a
//! login with its evictions and counters, a rotation, a revocation, a failed
//! login. A session is found from its cookie through a pointer, then read
//! together with its user in one script (two round trips). Pointers and the
//! `live` index are written after the records they point to and removed
//! after them, so a crash in between leaves at worst an unreachable record
//! that its TTL removes, never a reachable record that should be gone.
//!
//! Expiry is Redis's own (every record has a TTL). The sweeper's pass over
//! `live` only removes index entries whose records have expired, and re-files
//! sessions that raised timeouts keep alive. Nothing is cached in process:
//! another instance may change anything at any time.
//!
//! Durability is Redis's: run it with `appendonly yes` and
//! `appendfsync always` for authd's "acknowledged means durable" promise.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use super::{
    name_key, ApiTokenRecord, Dump, Lockout, LockoutStep, LoginStats, NewSession, NewUser, Rotation, Series,
    ServerSecrets, Session, SessionLimits, Store, StoreError, StoreFuture, SweepReport, User, UserChange,
    UserId, Verification,
};
use crate::clock::{millis, Timestamp};
use crate::token::{hex, random, unhex, Selector, SessionKey};

/// The schema this build writes into `NS:meta`.
pub const SCHEMA_VERSION: u32 = 1;

/// How long one Redis command may take before it counts as an outage.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a `--store` value names a Redis or Valkey server.
pub fn is_redis_url(s: &str) -> bool {
    ["redis://", "rediss://", "valkey://", "valkeys://", "redis+cluster://", "rediss+cluster://"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Checks a `--store-namespace`: letters, digits, `_` and `-` (no braces,
/// which would change cluster hash tags).
pub fn parse_namespace(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err("a namespace holds 1-64 letters, digits, '_' or '-'".into())
    }
}

/// A connection to a standalone server or to a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Bounds one command or pipeline by [`RESPONSE_TIMEOUT`], however the
/// client spends the time: waiting for a reply, or (after a lost connection)
/// for a reconnection whose retries and back-off take several seconds.
fn bounded<'a, T: Send + 'a>(f: RedisFuture<'a, T>) -> RedisFuture<'a, T> {
    Box::pin(async move {
        match tokio::time::timeout(RESPONSE_TIMEOUT, f).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", RESPONSE_TIMEOUT.as_secs()),
            )
            .into()),
        }
    })
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        bounded(match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        p: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        bounded(match self {
            Conn::Single(c) => c.req_packed_commands(p, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(p, offset, count),
        })
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The Redis/Valkey-backed [`Store`].
pub struct RedisStore {
    conn: Conn,
    keys: Keys,
    secrets: ServerSecrets,
    /// What connecting did to an older namespace (`migrated namespace ...`).
    migration: Option<String>,
}

/// Why the store could not be reached or set up.
#[derive(Debug)]
pub struct ConnectError(pub String);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

impl RedisStore {
    /// Connects to `url` (`redis://`, `rediss://`, `valkey://`, or
    /// `redis+cluster://host:port,host:port,...`) and sets up (or checks) the
    /// deployment's secrets under `namespace`.
    pub async fn connect(url: &str, namespace: &str) -> Result<RedisStore, ConnectError> {
        let fail = |e: &dyn std::fmt::Display| {
            ConnectError(format!("cannot use the store {} (--store): {e}", redact(url)))
        };
        if url.starts_with("rediss") || url.starts_with("valkeys") {
            // The redis crate's TLS uses rustls' process-wide provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let conn = if let Some(rest) = url
            .strip_prefix("redis+cluster://")
            .map(|r| ("redis", r))
            .or(url.strip_prefix("rediss+cluster://").map(|r| ("rediss", r)))
        {
            let (scheme, hosts) = rest;
            let nodes: Vec<String> =
                hosts.split(',').map(|h| format!("{scheme}://{}", h.trim_end_matches('/'))).collect();
            let client = redis::cluster::ClusterClient::builder(nodes)
                .response_timeout(RESPONSE_TIMEOUT)
                .connection_timeout(RESPONSE_TIMEOUT)
                .build()
                .map_err(|e| fail(&e))?;
            Conn::Cluster(client.get_async_connection().await.map_err(|e| fail(&e))?)
        } else {
            let client = redis::Client::open(url).map_err(|e| fail(&e))?;
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_connection_timeout(Some(RESPONSE_TIMEOUT))
                .set_max_delay(Duration::from_secs(1));
            Conn::Single(ConnectionManager::new_with_config(client, config).await.map_err(|e| fail(&e))?)
        };
        let keys = Keys { ns: namespace.to_string() };
        let mut c = conn.clone();
        let id = new_server_id();
        let key: [u8; 32] = random();
        let mut setup = redis::pipe();
        setup
            .cmd("HSETNX")
            .arg(keys.meta())
            .arg("schema")
            .arg(SCHEMA_VERSION)
            .ignore()
            .cmd("HSETNX")
            .arg(keys.meta())
            .arg("server_id")
            .arg(&id)
            .ignore()
            .cmd("HSETNX")
            .arg(keys.meta())
            .arg("xsrf_key")
            .arg(hex(&key))
            .ignore()
            .cmd("HGETALL")
            .arg(keys.meta());
        let (meta,): (HashMap<String, String>,) = setup.query_async(&mut c).await.map_err(|e| fail(&e))?;
        let stamp = meta.get("schema").map(String::as_str).unwrap_or("0");
        let Ok(schema) = stamp.parse::<u64>() else {
            return Err(fail(&format!("its schema version '{}' is not a number", stamp.escape_debug())));
        };
        if schema > u64::from(SCHEMA_VERSION) {
            return Err(fail(&format!(
                "it was written by a newer authd (schema {schema}; this authd knows up to {SCHEMA_VERSION}); upgrade authd"
            )));
        }
        let mut migration = None;
        if schema < u64::from(SCHEMA_VERSION) {
            super::check_migration(schema, u64::from(SCHEMA_VERSION)).map_err(|e| fail(&e))?;
            let () = redis::cmd("HSET")
                .arg(keys.meta())
                .arg("schema")
                .arg(SCHEMA_VERSION)
                .query_async(&mut c)
                .await
                .map_err(|e| fail(&e))?;
            let m = format!("migrated namespace '{namespace}' from schema {schema} to {SCHEMA_VERSION}");
            tracing::info!("{m}");
            migration = Some(m);
        }
        let server_id = meta.get("server_id").cloned().ok_or_else(|| fail(&"no server id"))?;
        let xsrf_key =
            meta.get("xsrf_key").and_then(|h| unhex::<32>(h)).ok_or_else(|| fail(&"bad XSRF key"))?;
        Ok(RedisStore { conn, keys, secrets: ServerSecrets { server_id, xsrf_key }, migration })
    }

    /// What connecting did to a namespace written by an older authd; the
    /// server logs it, the command line prints it.
    pub fn migration(&self) -> Option<&str> {
        self.migration.as_deref()
    }

    fn c(&self) -> Conn {
        self.conn.clone()
    }
}

/// A URL with any password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            format!("{}***{}", url.get(..s + 3).unwrap_or(""), url.get(at..).unwrap_or(""))
        }
        _ => url.to_string(),
    }
}

fn new_server_id() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 16] = random();
    let mut s = String::with_capacity(19);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(char::from(ALPHABET.get(usize::from(b & 31)).copied().unwrap_or(b'A')));
    }
    s
}

fn storage(e: redis::RedisError) -> StoreError {
    StoreError::Storage(format!("redis: {e}"))
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Corrupt(super::codec::DecodeError(what))
}

/// The user a record's pointer names, if the record exists.
async fn owner(c: &mut Conn, pointer: String) -> Result<Option<UserId>, StoreError> {
    let v: Option<u64> = redis::cmd("GET").arg(pointer).query_async(c).await.map_err(storage)?;
    Ok(v)
}

/// Records a later use of a session (see [`Store::touch_session`]), on a
/// connection and key names of its own so it can run detached.
async fn touch(
    mut c: Conn,
    keys: &Keys,
    key: SessionKey,
    last_use: Timestamp,
    deadline: Timestamp,
) -> Result<(), StoreError> {
    let h = hex(&key.0);
    let Some(u) = owner(&mut c, keys.session_ptr(&h)).await? else { return Ok(()) };
    let changed: i64 = TOUCH
        .key(format!("{}{h}", keys.session_prefix(u)))
        .arg(last_use.0)
        .arg(deadline.0)
        .invoke_async(&mut c)
        .await
        .map_err(storage)?;
    if changed == 1 {
        redis::cmd("PEXPIREAT")
            .arg(keys.session_ptr(&h))
            .arg(deadline.0)
            .query_async::<()>(&mut c)
            .await
            .map_err(storage)?;
        redis::cmd("ZADD")
            .arg(keys.live())
            .arg("XX")
            .arg(deadline.0)
            .arg(format!("{u}:{h}"))
            .query_async::<()>(&mut c)
            .await
            .map_err(storage)?;
    }
    Ok(())
}

/// Key names.
#[derive(Clone)]
struct Keys {
    ns: String,
}

impl Keys {
    fn meta(&self) -> String {
        format!("{}:meta", self.ns)
    }
    fn next_user(&self) -> String {
        format!("{}:next_user", self.ns)
    }
    fn names(&self) -> String {
        format!("{}:names", self.ns)
    }
    fn live(&self) -> String {
        format!("{}:live", self.ns)
    }
    fn slot(&self, u: UserId) -> String {
        format!("{}:{{u:{u}}}", self.ns)
    }
    fn user(&self, u: UserId) -> String {
        format!("{}:user", self.slot(u))
    }
    fn sessions(&self, u: UserId) -> String {
        format!("{}:sessions", self.slot(u))
    }
    fn session_prefix(&self, u: UserId) -> String {
        format!("{}:s:", self.slot(u))
    }
    fn series_set(&self, u: UserId) -> String {
        format!("{}:series", self.slot(u))
    }
    fn series_prefix(&self, u: UserId) -> String {
        format!("{}:r:", self.slot(u))
    }
    fn lockout(&self, u: UserId) -> String {
        format!("{}:lockout", self.slot(u))
    }
    fn tokens(&self, u: UserId) -> String {
        format!("{}:tokens", self.slot(u))
    }
    fn token_prefix(&self, u: UserId) -> String {
        format!("{}:t:", self.slot(u))
    }
    fn verifications(&self, u: UserId) -> String {
        format!("{}:verifications", self.slot(u))
    }
    fn session_ptr(&self, hex: &str) -> String {
        format!("{}:sp:{hex}", self.ns)
    }
    fn series_ptr(&self, hex: &str) -> String {
        format!("{}:rp:{hex}", self.ns)
    }
    fn token_ptr(&self, hex: &str) -> String {
        format!("{}:t:{hex}", self.ns)
    }
    fn token_id(&self, id: &str) -> String {
        format!("{}:tid:{id}", self.ns)
    }
    fn verification(&self, hex: &str) -> String {
        format!("{}:v:{hex}", self.ns)
    }
}

// ---- records as hash fields ------------------------------------------------

fn fields(flat: Vec<String>) -> HashMap<String, String> {
    let mut m = HashMap::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        m.insert(k, v);
    }
    m
}

fn num(m: &HashMap<String, String>, k: &str) -> Result<u64, StoreError> {
    m.get(k).and_then(|v| v.parse().ok()).ok_or(corrupt("missing or bad number field"))
}

fn opt_time(m: &HashMap<String, String>, k: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(Some(num(m, k)?).filter(|&t| t != 0).map(Timestamp))
}

fn flag(m: &HashMap<String, String>, k: &str) -> bool {
    m.get(k).is_some_and(|v| v == "1")
}

fn user_fields(u: &User) -> Vec<(&'static str, String)> {
    let l = &u.logins;
    let t = |t: Option<Timestamp>| t.map_or(0, |t| t.0).to_string();
    let mut f = vec![
        ("id", u.id.to_string()),
        ("name", u.name.clone()),
        ("verified", u8::from(u.email_verified).to_string()),
        ("admin", u8::from(u.admin).to_string()),
        ("hash", u.password_hash.clone()),
        ("created", u.created.0.to_string()),
        ("epoch", u.epoch.to_string()),
        ("lc", l.login_count.to_string()),
        ("fc", l.failed_count.to_string()),
        ("tfc", l.total_failed_count.to_string()),
        ("lf", t(l.last_failed)),
        ("ll", t(l.last_login)),
        ("pl", t(l.previous_login)),
    ];
    if let Some(e) = &u.email {
        f.push(("email", e.clone()));
    }
    f
}

fn decode_user(m: &HashMap<String, String>) -> Result<User, StoreError> {
    Ok(User {
        id: num(m, "id")?,
        name: m.get("name").cloned().ok_or(corrupt("user without a name"))?,
        email: m.get("email").cloned(),
        email_verified: flag(m, "verified"),
        admin: flag(m, "admin"),
        password_hash: m.get("hash").cloned().unwrap_or_default(),
        created: Timestamp(num(m, "created")?),
        epoch: u32::try_from(num(m, "epoch")?).map_err(|_| corrupt("bad epoch"))?,
        logins: LoginStats {
            login_count: num(m, "lc")?,
            failed_count: u32::try_from(num(m, "fc")?).unwrap_or(u32::MAX),
            total_failed_count: num(m, "tfc")?,
            last_failed: opt_time(m, "lf")?,
            last_login: opt_time(m, "ll")?,
            previous_login: opt_time(m, "pl")?,
        },
    })
}

fn session_fields(s: &Session, filed: Timestamp) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("user", s.user.to_string()),
        ("created", s.created.0.to_string()),
        ("last_use", s.last_use.0.to_string()),
        ("filed", filed.0.to_string()),
        ("browser", s.browser.clone()),
        ("xsrf", hex(&s.xsrf)),
        ("epoch", s.epoch.to_string()),
    ];
    if let Some(a) = s.address {
        f.push(("addr", a.to_string()));
    }
    if let Some(sel) = s.series {
        f.push(("series", hex(&sel.0)));
    }
    f
}

fn decode_session(m: &HashMap<String, String>) -> Result<(Session, Timestamp), StoreError> {
    let s = Session {
        user: num(m, "user")?,
        created: Timestamp(num(m, "created")?),
        last_use: Timestamp(num(m, "last_use")?),
        address: match m.get("addr") {
            Some(a) => Some(a.parse::<IpAddr>().map_err(|_| corrupt("bad address"))?),
            None => None,
        },
        browser: m.get("browser").cloned().unwrap_or_default(),
        series: match m.get("series") {
            Some(h) => Some(Selector(unhex(h).ok_or(corrupt("bad series"))?)),
            None => None,
        },
        xsrf: m.get("xsrf").and_then(|h| unhex(h)).ok_or(corrupt("bad XSRF nonce"))?,
        epoch: u32::try_from(num(m, "epoch")?).map_err(|_| corrupt("bad epoch"))?,
    };
    Ok((s, Timestamp(num(m, "filed")?)))
}

fn series_fields(s: &Series) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("user", s.user.to_string()),
        ("current", hex(&s.current)),
        ("prev_until", s.previous_until.0.to_string()),
        ("created", s.created.0.to_string()),
        ("expires", s.expires.0.to_string()),
    ];
    if let Some(p) = s.previous {
        f.push(("previous", hex(&p)));
    }
    f
}

fn decode_series(m: &HashMap<String, String>) -> Result<Series, StoreError> {
    Ok(Series {
        user: num(m, "user")?,
        current: m.get("current").and_then(|h| unhex(h)).ok_or(corrupt("bad validator hash"))?,
        previous: match m.get("previous") {
            Some(h) => Some(unhex(h).ok_or(corrupt("bad validator hash"))?),
            None => None,
        },
        previous_until: Timestamp(num(m, "prev_until")?),
        created: Timestamp(num(m, "created")?),
        expires: Timestamp(num(m, "expires")?),
    })
}

fn decode_token(m: &HashMap<String, String>) -> Result<ApiTokenRecord, StoreError> {
    Ok(ApiTokenRecord {
        user: num(m, "user")?,
        label: m.get("label").cloned().unwrap_or_default(),
        created: Timestamp(num(m, "created")?),
    })
}

fn decode_verification(m: &HashMap<String, String>) -> Result<Verification, StoreError> {
    Ok(Verification {
        user: num(m, "user")?,
        email: m.get("email").cloned().unwrap_or_default(),
        expires: Timestamp(num(m, "expires")?),
    })
}

/// Flattens field pairs into script arguments: count, then name, value, ...
fn push_fields(inv: &mut redis::ScriptInvocation<'_>, f: &[(&'static str, String)]) {
    inv.arg(f.len());
    for (k, v) in f {
        inv.arg(*k).arg(v);
    }
}

// ---- scripts (each touches one user's slot) ---------------------------------

/// The Lua function both login scripts use to keep a user within
/// `--max-sessions-per-user`: it drops index entries of sessions already
/// gone, then deletes the oldest sessions until one more fits, appending
/// their IDs to `out`.
macro_rules! make_room_lua {
    () => {
        r"
local function make_room(sessions, prefix, max, out)
  for _, m in ipairs(redis.call('ZRANGE', sessions, 0, -1)) do
    if redis.call('EXISTS', prefix .. m) == 0 then redis.call('ZREM', sessions, m) end
  end
  local count = redis.call('ZCARD', sessions)
  if count >= max then
    for _, m in ipairs(redis.call('ZRANGE', sessions, 0, count - max)) do
      redis.call('DEL', prefix .. m)
      redis.call('ZREM', sessions, m)
      table.insert(out, m)
    end
  end
end"
    };
}

/// Reads a session and its user. KEYS: session, user.
static GET_SESSION: LazyLock<Script> =
    LazyLock::new(|| Script::new("return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}"));

/// A login's session: drops index entries whose records expired, evicts the
/// oldest beyond the cap, files the session (and a new series), counts the
/// login. KEYS: user, sessions, session, lockout, series set, series.
/// ARGV: session prefix, session hex, max, count_login, created, deadline,
/// the password hash checked ('' for none), n + n session fields,
/// has_series, series hex, expires, m + m series fields.
static CREATE_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        make_room_lua!(),
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'nouser'} end
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'hash') ~= ARGV[7] then return {'changed'} end
local out = {'ok'}
make_room(KEYS[2], ARGV[1], tonumber(ARGV[3]), out)
local i = 9
local n = tonumber(ARGV[8])
local f = {}
for j = 1, n do f[#f + 1] = ARGV[i]; f[#f + 1] = ARGV[i + 1]; i = i + 2 end
redis.call('HSET', KEYS[3], unpack(f))
redis.call('PEXPIREAT', KEYS[3], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
if ARGV[i] == '1' then
  local sel, expires, m = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  local g = {}
  for j = 1, m do g[#g + 1] = ARGV[i]; g[#g + 1] = ARGV[i + 1]; i = i + 2 end
  redis.call('HSET', KEYS[6], unpack(g))
  redis.call('PEXPIREAT', KEYS[6], expires)
  redis.call('SADD', KEYS[5], sel)
end
if ARGV[4] == '1' then
  local last = redis.call('HGET', KEYS[1], 'll') or '0'
  redis.call('HSET', KEYS[1], 'pl', last, 'll', ARGV[5], 'fc', '0')
  redis.call('HINCRBY', KEYS[1], 'lc', 1)
  redis.call('DEL', KEYS[4])
end
return out",
    ))
});

/// Deletes a session (and its series). KEYS: session, sessions, series set.
/// ARGV: session hex, with_series, series prefix. Returns {existed, series hex}.
static DELETE_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local series = redis.call('HGET', KEYS[1], 'series')
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if existed == 1 and ARGV[2] == '1' and series then
  redis.call('DEL', ARGV[3] .. series)
  redis.call('SREM', KEYS[3], series)
  return {'1', series}
end
return {tostring(existed), ''}",
    )
});

/// Ends a user's sessions and series except `keep` and its series, and
/// optionally sets a new password hash in the same step.
/// KEYS: sessions, series set, user. ARGV: session prefix, series prefix,
/// keep hex or '', new hash or ''. Returns {sessions gone, series gone}.
static REVOKE_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local keep_series = false
if ARGV[3] ~= '' then keep_series = redis.call('HGET', ARGV[1] .. ARGV[3], 'series') end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], 'hash', ARGV[4]) end
local gone = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if m ~= ARGV[3] then
    if redis.call('DEL', ARGV[1] .. m) == 1 then gone[#gone + 1] = m end
    redis.call('ZREM', KEYS[1], m)
  end
end
local series_gone = {}
for _, s in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if s ~= keep_series then
    redis.call('DEL', ARGV[2] .. s)
    redis.call('SREM', KEYS[2], s)
    series_gone[#series_gone + 1] = s
  end
end
return {gone, series_gone}",
    )
});

/// Records a later use. KEYS: session. ARGV: last use, deadline. Returns 1 if changed.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'last_use')
if not cur or tonumber(ARGV[1]) <= tonumber(cur) then return 0 end
redis.call('HSET', KEYS[1], 'last_use', ARGV[1], 'filed', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1",
    )
});

/// Rotates a series if its current validator is the expected one, creating
/// the session in the same step (a login: it evicts the user's oldest
/// sessions beyond the limit, as [`CREATE_SESSION`] does). KEYS: series,
/// user, session, sessions. ARGV: expected hex, next hex, grace until,
/// session hex, created, deadline, session prefix, max sessions, n + n
/// session fields. Returns {'rotated', evicted session hex...},
/// {'missing'} or {'changed', field, value, ...}.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        make_room_lua!(),
        r"
local s = redis.call('HGETALL', KEYS[1])
if #s == 0 then return {'missing'} end
local cur = redis.call('HGET', KEYS[1], 'current')
if cur ~= ARGV[1] then
  local out = {'changed'}
  for _, v in ipairs(s) do out[#out + 1] = v end
  return out
end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
redis.call('HSET', KEYS[1], 'previous', cur, 'prev_until', ARGV[3], 'current', ARGV[2])
local out = {'rotated'}
make_room(KEYS[4], ARGV[7], tonumber(ARGV[8]), out)
local i = 10
local n = tonumber(ARGV[9])
local f = {}
for j = 1, n do f[#f + 1] = ARGV[i]; f[#f + 1] = ARGV[i + 1]; i = i + 2 end
redis.call('HSET', KEYS[3], unpack(f))
redis.call('PEXPIREAT', KEYS[3], ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
return out",
    ))
});

/// Compare-and-set of the lockout record with Jira's failure counters.
/// KEYS: lockout, user. ARGV: expected ('' for none), strikes, level,
/// until, last event, forget at, failure time. Returns 1, 0 (retry) or -1 (no user).
static LOGIN_FAILED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local c = redis.call('HMGET', KEYS[1], 'strikes', 'level', 'until', 'last_event', 'forget')
local seen = ''
if c[1] then seen = c[1] .. ':' .. c[2] .. ':' .. c[3] .. ':' .. c[4] .. ':' .. c[5] end
if seen ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'strikes', ARGV[2], 'level', ARGV[3], 'until', ARGV[4], 'last_event', ARGV[5], 'forget', ARGV[6])
redis.call('PEXPIREAT', KEYS[1], ARGV[6])
redis.call('HINCRBY', KEYS[2], 'fc', 1)
redis.call('HINCRBY', KEYS[2], 'tfc', 1)
redis.call('HSET', KEYS[2], 'lf', ARGV[7])
return 1",
    )
});

/// Sweeps one `live` entry. KEYS: session, sessions. ARGV: session hex, now,
/// idle ms, absolute ms. Returns -1 (already expired), 0 (deleted) or the
/// new deadline (still live under the current timeouts: re-filed).
static SWEEP_ONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local f = redis.call('HMGET', KEYS[1], 'created', 'last_use')
if not f[1] then redis.call('ZREM', KEYS[2], ARGV[1]); return -1 end
local d = math.min(tonumber(f[2]) + tonumber(ARGV[3]), tonumber(f[1]) + tonumber(ARGV[4]))
if d > tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'filed', tostring(d))
  redis.call('PEXPIREAT', KEYS[1], tostring(d))
  return d
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 0",
    )
});

/// Deletes a user with everything in their slot. KEYS: user, sessions,
/// series set, lockout, tokens, verifications. ARGV: session prefix,
/// series prefix, token prefix. Returns {sessions, series, tokens} gone.
static DELETE_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local sessions = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, m in ipairs(sessions) do redis.call('DEL', ARGV[1] .. m) end
local series = redis.call('SMEMBERS', KEYS[3])
for _, s in ipairs(series) do redis.call('DEL', ARGV[2] .. s) end
local tokens = redis.call('SMEMBERS', KEYS[5])
for _, t in ipairs(tokens) do redis.call('DEL', ARGV[3] .. t) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return {sessions, series, tokens}",
    )
});

/// Reads a token and its user. KEYS: token, user.
static GET_TOKEN: LazyLock<Script> =
    LazyLock::new(|| Script::new("return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}"));

/// Reads every record named by a set or zset of ids. KEYS: index.
/// ARGV: record prefix, 'z' or 's'. Returns {id, {fields}, ...}.
static READ_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ids
if ARGV[2] == 'z' then ids = redis.call('ZRANGE', KEYS[1], 0, -1) else ids = redis.call('SMEMBERS', KEYS[1]) end
local out = {}
for _, id in ipairs(ids) do
  local f = redis.call('HGETALL', ARGV[1] .. id)
  if #f > 0 then out[#out + 1] = id; out[#out + 1] = f end
end
return out",
    )
});

/// Single-use read of a verification token. KEYS: token.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new("local f = redis.call('HGETALL', KEYS[1]); redis.call('DEL', KEYS[1]); return f")
});

/// Marks an address verified if it is still the one the token was for.
/// KEYS: user. ARGV: email. Returns 1 if verified.
static VERIFY_IF_SAME: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'email') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'verified', '1')
return 1",
    )
});

/// Changes a user if present. KEYS: user, lockout. ARGV: kind, value.
static CHANGE_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == 'verify' then redis.call('HSET', KEYS[1], 'verified', '1')
elseif ARGV[1] == 'unlock' then redis.call('HSET', KEYS[1], 'fc', '0'); redis.call('DEL', KEYS[2])
elseif ARGV[1] == 'admin' then
  if redis.call('HGET', KEYS[1], 'admin') ~= ARGV[2] then
    redis.call('HSET', KEYS[1], 'admin', ARGV[2])
    redis.call('HINCRBY', KEYS[1], 'epoch', 1)
  end
end
return 1",
    )
});

// ---- the store ------------------------------------------------------------

impl RedisStore {
    async fn get_user(&self, u: UserId) -> Result<Option<User>, StoreError> {
        let m: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.keys.user(u)).query_async(&mut self.c()).await.map_err(storage)?;
        if m.is_empty() {
            return Ok(None);
        }
        decode_user(&m).map(Some)
    }

    async fn owner(&self, pointer: String) -> Result<Option<UserId>, StoreError> {
        owner(&mut self.c(), pointer).await
    }

    /// Removes pointers and `live` entries of records a script deleted.
    async fn forget(
        &self,
        u: UserId,
        sessions: &[String],
        series: &[String],
        tokens: &[String],
    ) -> Result<(), StoreError> {
        if sessions.is_empty() && series.is_empty() && tokens.is_empty() {
            return Ok(());
        }
        let mut c = self.c();
        // Cluster-safe: one command per key (they live in different slots).
        for s in sessions {
            redis::cmd("DEL")
                .arg(self.keys.session_ptr(s))
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
            redis::cmd("ZREM")
                .arg(self.keys.live())
                .arg(format!("{u}:{s}"))
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
        }
        for s in series {
            redis::cmd("DEL")
                .arg(self.keys.series_ptr(s))
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
        }
        for t in tokens {
            redis::cmd("DEL").arg(self.keys.token_ptr(t)).query_async::<()>(&mut c).await.map_err(storage)?;
            redis::cmd("DEL")
                .arg(self.keys.token_id(t.get(..12).unwrap_or("")))
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
        }
        Ok(())
    }

    async fn revoke(
        &self,
        u: UserId,
        keep: Option<SessionKey>,
        new_hash: Option<&str>,
    ) -> Result<usize, StoreError> {
        let keep_hex = keep.map(|k| hex(&k.0)).unwrap_or_default();
        let (gone, series): (Vec<String>, Vec<String>) = REVOKE_ALL
            .key(self.keys.sessions(u))
            .key(self.keys.series_set(u))
            .key(self.keys.user(u))
            .arg(self.keys.session_prefix(u))
            .arg(self.keys.series_prefix(u))
            .arg(&keep_hex)
            .arg(new_hash.unwrap_or(""))
            .invoke_async(&mut self.c())
            .await
            .map_err(storage)?;
        self.forget(u, &gone, &series, &[]).await?;
        Ok(gone.len())
    }

    async fn delete_session_of(
        &self,
        u: UserId,
        key: SessionKey,
        with_series: bool,
    ) -> Result<bool, StoreError> {
        let h = hex(&key.0);
        let out: Vec<String> = DELETE_SESSION
            .key(format!("{}{h}", self.keys.session_prefix(u)))
            .key(self.keys.sessions(u))
            .key(self.keys.series_set(u))
            .arg(&h)
            .arg(u8::from(with_series))
            .arg(self.keys.series_prefix(u))
            .invoke_async(&mut self.c())
            .await
            .map_err(storage)?;
        let existed = out.first().is_some_and(|v| v == "1");
        let series: Vec<String> = out.get(1).filter(|s| !s.is_empty()).cloned().into_iter().collect();
        self.forget(u, std::slice::from_ref(&h), &series, &[]).await?;
        Ok(existed)
    }

    async fn file_session_pointers(
        &self,
        u: UserId,
        key: &SessionKey,
        deadline: Timestamp,
    ) -> Result<(), StoreError> {
        let h = hex(&key.0);
        let mut c = self.c();
        redis::cmd("SET")
            .arg(self.keys.session_ptr(&h))
            .arg(u)
            .arg("PXAT")
            .arg(deadline.0)
            .query_async::<()>(&mut c)
            .await
            .map_err(storage)?;
        redis::cmd("ZADD")
            .arg(self.keys.live())
            .arg(deadline.0)
            .arg(format!("{u}:{h}"))
            .query_async::<()>(&mut c)
            .await
            .map_err(storage)?;
        Ok(())
    }

    async fn read_all(
        &self,
        index: String,
        prefix: String,
        zset: bool,
    ) -> Result<Vec<(String, HashMap<String, String>)>, StoreError> {
        let flat: Vec<Value> = READ_ALL
            .key(index)
            .arg(prefix)
            .arg(if zset { "z" } else { "s" })
            .invoke_async(&mut self.c())
            .await
            .map_err(storage)?;
        let mut out = Vec::new();
        let mut it = flat.into_iter();
        while let (Some(id), Some(f)) = (it.next(), it.next()) {
            let id: String = redis::from_redis_value(id).map_err(|_| corrupt("bad id"))?;
            let f: Vec<String> = redis::from_redis_value(f).map_err(|_| corrupt("bad record"))?;
            out.push((id, fields(f)));
        }
        Ok(out)
    }

    async fn sessions_of_user(&self, u: UserId) -> Result<Vec<(SessionKey, Session, Timestamp)>, StoreError> {
        let mut out = Vec::new();
        for (id, f) in self.read_all(self.keys.sessions(u), self.keys.session_prefix(u), true).await? {
            let key = SessionKey(unhex(&id).ok_or(corrupt("bad session id"))?);
            let (s, filed) = decode_session(&f)?;
            out.push((key, s, filed));
        }
        // The zset gives creation order, ties in id order: as the redb store does.
        Ok(out)
    }

    async fn new_session(&self, plan: &NewSession) -> Result<Vec<SessionKey>, StoreError> {
        let u = plan.session.user;
        let h = hex(&plan.key.0);
        let mut inv = CREATE_SESSION.prepare_invoke();
        let series_key = match &plan.new_series {
            Some((sel, _)) => format!("{}{}", self.keys.series_prefix(u), hex(&sel.0)),
            None => format!("{}unused", self.keys.series_prefix(u)),
        };
        inv.key(self.keys.user(u))
            .key(self.keys.sessions(u))
            .key(format!("{}{h}", self.keys.session_prefix(u)))
            .key(self.keys.lockout(u))
            .key(self.keys.series_set(u))
            .key(series_key)
            .arg(self.keys.session_prefix(u))
            .arg(&h)
            .arg(plan.max_per_user.max(1))
            .arg(u8::from(plan.count_login))
            .arg(plan.session.created.0)
            .arg(plan.deadline.0)
            .arg(plan.password_checked.as_deref().unwrap_or(""));
        push_fields(&mut inv, &session_fields(&plan.session, plan.deadline));
        match &plan.new_series {
            Some((sel, series)) => {
                inv.arg("1").arg(hex(&sel.0)).arg(series.expires.0);
                push_fields(&mut inv, &series_fields(series));
            }
            None => {
                inv.arg("0");
            }
        }
        let out: Vec<String> = inv.invoke_async(&mut self.c()).await.map_err(storage)?;
        if out.first().map(String::as_str) != Some("ok") {
            return Err(StoreError::NotFound);
        }
        let evicted: Vec<String> = out.into_iter().skip(1).collect();
        self.forget(u, &evicted, &[], &[]).await?;
        self.file_session_pointers(u, &plan.key, plan.deadline).await?;
        if let Some((sel, series)) = &plan.new_series {
            redis::cmd("SET")
                .arg(self.keys.series_ptr(&hex(&sel.0)))
                .arg(u)
                .arg("PXAT")
                .arg(series.expires.0)
                .query_async::<()>(&mut self.c())
                .await
                .map_err(storage)?;
        }
        evicted.iter().map(|h| unhex(h).map(SessionKey).ok_or(corrupt("bad session id"))).collect()
    }
}

fn lockout_seen(m: &HashMap<String, String>) -> String {
    match (m.get("strikes"), m.get("level"), m.get("until"), m.get("last_event"), m.get("forget")) {
        (Some(a), Some(b), Some(c), Some(d), Some(e)) => format!("{a}:{b}:{c}:{d}:{e}"),
        _ => String::new(),
    }
}

fn decode_lockout(m: &HashMap<String, String>) -> Result<Option<(Lockout, Timestamp)>, StoreError> {
    if m.is_empty() {
        return Ok(None);
    }
    Ok(Some((
        Lockout {
            strikes: u32::try_from(num(m, "strikes")?).unwrap_or(u32::MAX),
            level: u32::try_from(num(m, "level")?).unwrap_or(u32::MAX),
            until: opt_time(m, "until")?,
            last_event: Timestamp(num(m, "last_event")?),
        },
        Timestamp(num(m, "forget")?),
    )))
}

impl Store for RedisStore {
    fn secrets(&self) -> &ServerSecrets {
        &self.secrets
    }

    fn shared(&self) -> bool {
        true
    }

    fn user(&self, id: UserId) -> StoreFuture<'_, Option<User>> {
        Box::pin(self.get_user(id))
    }

    fn user_by_name(&self, name: &str) -> StoreFuture<'_, Option<User>> {
        let key = name_key(name);
        Box::pin(async move {
            let id: Option<u64> = redis::cmd("HGET")
                .arg(self.keys.names())
                .arg(key)
                .query_async(&mut self.c())
                .await
                .map_err(storage)?;
            match id {
                Some(id) => self.get_user(id).await,
                None => Ok(None),
            }
        })
    }

    fn users(&self) -> StoreFuture<'_, Vec<User>> {
        Box::pin(async move {
            let names: HashMap<String, u64> = redis::cmd("HGETALL")
                .arg(self.keys.names())
                .query_async(&mut self.c())
                .await
                .map_err(storage)?;
            let mut names: Vec<(String, u64)> = names.into_iter().collect();
            names.sort();
            let mut out = Vec::with_capacity(names.len());
            for (_, id) in names {
                if let Some(u) = self.get_user(id).await? {
                    out.push(u);
                }
            }
            Ok(out)
        })
    }

    fn create_user(&self, new: NewUser) -> StoreFuture<'_, User> {
        Box::pin(async move {
            let mut c = self.c();
            let key = name_key(&new.name);
            let id: u64 =
                redis::cmd("INCR").arg(self.keys.next_user()).query_async(&mut c).await.map_err(storage)?;
            let user = new.into_user(id);
            // The record first: a name never points at nothing.
            let f = user_fields(&user);
            let mut cmd = redis::cmd("HSET");
            cmd.arg(self.keys.user(id));
            for (k, v) in &f {
                cmd.arg(*k).arg(v);
            }
            cmd.query_async::<()>(&mut c).await.map_err(storage)?;
            let claimed: bool = redis::cmd("HSETNX")
                .arg(self.keys.names())
                .arg(&key)
                .arg(id)
                .query_async(&mut c)
                .await
                .map_err(storage)?;
            if !claimed {
                redis::cmd("DEL").arg(self.keys.user(id)).query_async::<()>(&mut c).await.map_err(storage)?;
                return Err(StoreError::Conflict(format!("user '{}'", user.name)));
            }
            Ok(user)
        })
    }

    fn update_user(&self, id: UserId, change: UserChange) -> StoreFuture<'_, User> {
        Box::pin(async move {
            match change {
                UserChange::Password { hash, keep } => {
                    if self.get_user(id).await?.is_none() {
                        return Err(StoreError::NotFound);
                    }
                    self.revoke(id, keep, Some(&hash)).await?;
                }
                other => {
                    let (kind, value) = match other {
                        UserChange::VerifyEmail => ("verify", String::new()),
                        UserChange::Unlock => ("unlock", String::new()),
                        UserChange::Admin(a) => ("admin", u8::from(a).to_string()),
                        UserChange::Password { .. } => ("none", String::new()),
                    };
                    let done: i64 = CHANGE_USER
                        .key(self.keys.user(id))
                        .key(self.keys.lockout(id))
                        .arg(kind)
                        .arg(value)
                        .invoke_async(&mut self.c())
                        .await
                        .map_err(storage)?;
                    if done == 0 {
                        return Err(StoreError::NotFound);
                    }
                }
            }
            self.get_user(id).await?.ok_or(StoreError::NotFound)
        })
    }

    fn delete_user(&self, id: UserId) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let Some(user) = self.get_user(id).await? else { return Ok(false) };
            let (sessions, series, tokens): (Vec<String>, Vec<String>, Vec<String>) = DELETE_USER
                .key(self.keys.user(id))
                .key(self.keys.sessions(id))
                .key(self.keys.series_set(id))
                .key(self.keys.lockout(id))
                .key(self.keys.tokens(id))
                .key(self.keys.verifications(id))
                .arg(self.keys.session_prefix(id))
                .arg(self.keys.series_prefix(id))
                .arg(self.keys.token_prefix(id))
                .invoke_async(&mut self.c())
                .await
                .map_err(storage)?;
            redis::cmd("HDEL")
                .arg(self.keys.names())
                .arg(name_key(&user.name))
                .query_async::<()>(&mut self.c())
                .await
                .map_err(storage)?;
            self.forget(id, &sessions, &series, &tokens).await?;
            Ok(true)
        })
    }

    fn session(&self, key: SessionKey) -> StoreFuture<'_, Option<(Arc<Session>, Arc<User>)>> {
        Box::pin(async move {
            let h = hex(&key.0);
            let Some(u) = self.owner(self.keys.session_ptr(&h)).await? else { return Ok(None) };
            let (s, user): (Vec<String>, Vec<String>) = GET_SESSION
                .key(format!("{}{h}", self.keys.session_prefix(u)))
                .key(self.keys.user(u))
                .invoke_async(&mut self.c())
                .await
                .map_err(storage)?;
            if s.is_empty() || user.is_empty() {
                return Ok(None);
            }
            let (session, _) = decode_session(&fields(s))?;
            Ok(Some((Arc::new(session), Arc::new(decode_user(&fields(user))?))))
        })
    }

    fn create_session(&self, plan: NewSession) -> StoreFuture<'_, Vec<SessionKey>> {
        Box::pin(async move {
            let mut removed = Vec::new();
            for old in &plan.replaces {
                // The carried session may be anyone's: find its owner first.
                if let Some(u) = self.owner(self.keys.session_ptr(&hex(&old.0))).await? {
                    if self.delete_session_of(u, *old, false).await? {
                        removed.push(*old);
                    }
                }
            }
            removed.extend(self.new_session(&plan).await?);
            Ok(removed)
        })
    }

    fn touch_session(&self, key: SessionKey, last_use: Timestamp, deadline: Timestamp) {
        let (conn, keys) = (self.c(), self.keys.clone());
        tokio::spawn(async move {
            if let Err(e) = touch(conn, &keys, key, last_use, deadline).await {
                tracing::warn!("could not record session use: {e}");
            }
        });
    }

    fn delete_session(&self, key: SessionKey, with_series: bool) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            match self.owner(self.keys.session_ptr(&hex(&key.0))).await? {
                Some(u) => self.delete_session_of(u, key, with_series).await,
                None => Ok(false),
            }
        })
    }

    fn sessions_of(&self, user: UserId) -> StoreFuture<'_, Vec<(SessionKey, Session)>> {
        Box::pin(async move {
            Ok(self.sessions_of_user(user).await?.into_iter().map(|(k, s, _)| (k, s)).collect())
        })
    }

    fn all_sessions(&self) -> StoreFuture<'_, Vec<(SessionKey, Session)>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for u in self.users().await? {
                out.extend(self.sessions_of_user(u.id).await?.into_iter().map(|(k, s, _)| (k, s)));
            }
            out.sort_by_key(|(k, _)| *k);
            out.sort_by_key(|(_, s)| s.created);
            Ok(out)
        })
    }

    fn revoke_all_of(&self, user: UserId, keep: Option<SessionKey>) -> StoreFuture<'_, usize> {
        Box::pin(self.revoke(user, keep, None))
    }

    fn series(&self, selector: Selector) -> StoreFuture<'_, Option<Series>> {
        Box::pin(async move {
            let h = hex(&selector.0);
            let Some(u) = self.owner(self.keys.series_ptr(&h)).await? else { return Ok(None) };
            let m: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(format!("{}{h}", self.keys.series_prefix(u)))
                .query_async(&mut self.c())
                .await
                .map_err(storage)?;
            if m.is_empty() {
                return Ok(None);
            }
            decode_series(&m).map(Some)
        })
    }

    fn rotate_series(
        &self,
        selector: Selector,
        expected: [u8; 32],
        next: [u8; 32],
        grace_until: Timestamp,
        session: NewSession,
    ) -> StoreFuture<'_, Rotation> {
        Box::pin(async move {
            let sh = hex(&selector.0);
            let Some(u) = self.owner(self.keys.series_ptr(&sh)).await? else { return Ok(Rotation::Missing) };
            if session.session.user != u {
                return Ok(Rotation::Missing);
            }
            let h = hex(&session.key.0);
            let mut inv = ROTATE.prepare_invoke();
            inv.key(format!("{}{sh}", self.keys.series_prefix(u)))
                .key(self.keys.user(u))
                .key(format!("{}{h}", self.keys.session_prefix(u)))
                .key(self.keys.sessions(u))
                .arg(hex(&expected))
                .arg(hex(&next))
                .arg(grace_until.0)
                .arg(&h)
                .arg(session.session.created.0)
                .arg(session.deadline.0)
                .arg(self.keys.session_prefix(u))
                .arg(session.max_per_user.max(1));
            push_fields(&mut inv, &session_fields(&session.session, session.deadline));
            let out: Vec<String> = inv.invoke_async(&mut self.c()).await.map_err(storage)?;
            match out.first().map(String::as_str) {
                Some("rotated") => {
                    let evicted: Vec<String> = out.into_iter().skip(1).collect();
                    self.forget(u, &evicted, &[], &[]).await?;
                    self.file_session_pointers(u, &session.key, session.deadline).await?;
                    Ok(Rotation::Rotated)
                }
                Some("changed") => {
                    Ok(Rotation::Changed(decode_series(&fields(out.into_iter().skip(1).collect()))?))
                }
                _ => Ok(Rotation::Missing),
            }
        })
    }

    fn delete_series(&self, selector: Selector) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let h = hex(&selector.0);
            let Some(u) = self.owner(self.keys.series_ptr(&h)).await? else { return Ok(false) };
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("DEL")
                .arg(format!("{}{h}", self.keys.series_prefix(u)))
                .cmd("SREM")
                .arg(self.keys.series_set(u))
                .arg(&h)
                .ignore();
            let (gone,): (u64,) = pipe.query_async(&mut self.c()).await.map_err(storage)?;
            self.forget(u, &[], std::slice::from_ref(&h), &[]).await?;
            Ok(gone == 1)
        })
    }

    fn lockout(&self, user: UserId) -> StoreFuture<'_, Option<Lockout>> {
        Box::pin(async move {
            let m: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(self.keys.lockout(user))
                .query_async(&mut self.c())
                .await
                .map_err(storage)?;
            Ok(decode_lockout(&m)?.map(|(l, _)| l))
        })
    }

    fn login_failed(&self, user: UserId, at: Timestamp, step: LockoutStep) -> StoreFuture<'_, Lockout> {
        Box::pin(async move {
            // Compare-and-set: a failure counted by another instance between
            // our read and our write sends us round again.
            for _ in 0..16 {
                let m: HashMap<String, String> = redis::cmd("HGETALL")
                    .arg(self.keys.lockout(user))
                    .query_async(&mut self.c())
                    .await
                    .map_err(storage)?;
                let seen = lockout_seen(&m);
                let (next, forget) = step(decode_lockout(&m)?.map(|(l, _)| l));
                let done: i64 = LOGIN_FAILED
                    .key(self.keys.lockout(user))
                    .key(self.keys.user(user))
                    .arg(&seen)
                    .arg(next.strikes)
                    .arg(next.level)
                    .arg(next.until.map_or(0, |t| t.0))
                    .arg(next.last_event.0)
                    .arg(forget.0)
                    .arg(at.0)
                    .invoke_async(&mut self.c())
                    .await
                    .map_err(storage)?;
                match done {
                    1 => return Ok(next),
                    -1 => return Err(StoreError::NotFound),
                    _ => continue,
                }
            }
            Err(StoreError::Storage("the failed-login record kept changing; try again".into()))
        })
    }

    fn create_token(&self, hash: [u8; 16], token: ApiTokenRecord) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let u = token.user;
            if self.get_user(u).await?.is_none() {
                return Err(StoreError::NotFound);
            }
            let h = hex(&hash);
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("HSET")
                .arg(format!("{}{h}", self.keys.token_prefix(u)))
                .arg("user")
                .arg(u)
                .arg("label")
                .arg(&token.label)
                .arg("created")
                .arg(token.created.0)
                .ignore()
                .cmd("SADD")
                .arg(self.keys.tokens(u))
                .arg(&h)
                .ignore();
            pipe.query_async::<()>(&mut self.c()).await.map_err(storage)?;
            let mut c = self.c();
            redis::cmd("SET")
                .arg(self.keys.token_ptr(&h))
                .arg(u)
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
            redis::cmd("SET")
                .arg(self.keys.token_id(h.get(..12).unwrap_or("")))
                .arg(&h)
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
            Ok(())
        })
    }

    fn token(&self, hash: [u8; 16]) -> StoreFuture<'_, Option<(ApiTokenRecord, User)>> {
        Box::pin(async move {
            let h = hex(&hash);
            let Some(u) = self.owner(self.keys.token_ptr(&h)).await? else { return Ok(None) };
            let (t, user): (Vec<String>, Vec<String>) = GET_TOKEN
                .key(format!("{}{h}", self.keys.token_prefix(u)))
                .key(self.keys.user(u))
                .invoke_async(&mut self.c())
                .await
                .map_err(storage)?;
            if t.is_empty() || user.is_empty() {
                return Ok(None);
            }
            Ok(Some((decode_token(&fields(t))?, decode_user(&fields(user))?)))
        })
    }

    fn tokens_of(&self, user: UserId) -> StoreFuture<'_, Vec<([u8; 16], ApiTokenRecord)>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (id, f) in self.read_all(self.keys.tokens(user), self.keys.token_prefix(user), false).await? {
                out.push((unhex(&id).ok_or(corrupt("bad token id"))?, decode_token(&f)?));
            }
            out.sort_by_key(|(h, _)| *h);
            out.sort_by_key(|(_, t)| t.created);
            Ok(out)
        })
    }

    fn delete_token(&self, id: [u8; 6], user: Option<UserId>) -> StoreFuture<'_, Option<ApiTokenRecord>> {
        Box::pin(async move {
            let idh = hex(&id);
            let h: Option<String> = redis::cmd("GET")
                .arg(self.keys.token_id(&idh))
                .query_async(&mut self.c())
                .await
                .map_err(storage)?;
            let Some(h) = h else { return Ok(None) };
            let Some(u) = self.owner(self.keys.token_ptr(&h)).await? else { return Ok(None) };
            if user.is_some_and(|want| want != u) {
                return Ok(None);
            }
            let m: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(format!("{}{h}", self.keys.token_prefix(u)))
                .query_async(&mut self.c())
                .await
                .map_err(storage)?;
            if m.is_empty() {
                return Ok(None);
            }
            let rec = decode_token(&m)?;
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("DEL")
                .arg(format!("{}{h}", self.keys.token_prefix(u)))
                .ignore()
                .cmd("SREM")
                .arg(self.keys.tokens(u))
                .arg(&h)
                .ignore();
            pipe.query_async::<()>(&mut self.c()).await.map_err(storage)?;
            self.forget(u, &[], &[], std::slice::from_ref(&h)).await?;
            Ok(Some(rec))
        })
    }

    fn create_verification(&self, hash: [u8; 16], token: Verification) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let h = hex(&hash);
            let mut c = self.c();
            redis::cmd("HSET")
                .arg(self.keys.verification(&h))
                .arg("user")
                .arg(token.user)
                .arg("email")
                .arg(&token.email)
                .arg("expires")
                .arg(token.expires.0)
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
            redis::cmd("PEXPIREAT")
                .arg(self.keys.verification(&h))
                .arg(token.expires.0)
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
            redis::cmd("SADD")
                .arg(self.keys.verifications(token.user))
                .arg(&h)
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
            Ok(())
        })
    }

    fn redeem_verification(&self, hash: [u8; 16], now: Timestamp) -> StoreFuture<'_, Option<User>> {
        Box::pin(async move {
            let h = hex(&hash);
            let f: Vec<String> =
                TAKE.key(self.keys.verification(&h)).invoke_async(&mut self.c()).await.map_err(storage)?;
            if f.is_empty() {
                return Ok(None);
            }
            let v = decode_verification(&fields(f))?;
            redis::cmd("SREM")
                .arg(self.keys.verifications(v.user))
                .arg(&h)
                .query_async::<()>(&mut self.c())
                .await
                .map_err(storage)?;
            if now >= v.expires {
                return Ok(None);
            }
            let done: i64 = VERIFY_IF_SAME
                .key(self.keys.user(v.user))
                .arg(&v.email)
                .invoke_async(&mut self.c())
                .await
                .map_err(storage)?;
            if done != 1 {
                return Ok(None);
            }
            self.get_user(v.user).await
        })
    }

    /// Every session in the `live` index: live, or expired and not yet swept,
    /// as redb counts them. (Counting by filed deadline would be wrong both
    /// ways: a session kept alive by use is re-filed only when swept.)
    fn session_count(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            redis::cmd("ZCARD").arg(self.keys.live()).query_async(&mut self.c()).await.map_err(storage)
        })
    }

    fn sweep(&self, now: Timestamp, limits: SessionLimits, batch: usize) -> StoreFuture<'_, SweepReport> {
        Box::pin(async move {
            let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(self.keys.live())
                .arg("-inf")
                .arg(format!("({}", now.0))
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .query_async(&mut self.c())
                .await
                .map_err(storage)?;
            let mut report = SweepReport { more: due.len() >= batch, ..SweepReport::default() };
            for member in due {
                let Some((u, h)) =
                    member.split_once(':').and_then(|(u, h)| Some((u.parse::<u64>().ok()?, h.to_string())))
                else {
                    redis::cmd("ZREM")
                        .arg(self.keys.live())
                        .arg(&member)
                        .query_async::<()>(&mut self.c())
                        .await
                        .map_err(storage)?;
                    report.stale += 1;
                    continue;
                };
                let d: i64 = SWEEP_ONE
                    .key(format!("{}{h}", self.keys.session_prefix(u)))
                    .key(self.keys.sessions(u))
                    .arg(&h)
                    .arg(now.0)
                    .arg(millis(limits.idle))
                    .arg(millis(limits.absolute))
                    .invoke_async(&mut self.c())
                    .await
                    .map_err(storage)?;
                if d > 0 {
                    let d = u64::try_from(d).unwrap_or(0);
                    self.file_session_pointers(
                        u,
                        &SessionKey(unhex(&h).ok_or(corrupt("bad session id"))?),
                        Timestamp(d),
                    )
                    .await?;
                    report.stale += 1;
                } else {
                    self.forget(u, std::slice::from_ref(&h), &[], &[]).await?;
                    report.sessions += 1;
                }
            }
            Ok(report)
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        // Durability is Redis's (appendfsync); nothing is held back here.
        Box::pin(std::future::ready(Ok(())))
    }

    fn export(&self) -> StoreFuture<'_, Dump> {
        Box::pin(async move {
            let mut d = Dump {
                secrets: Some((self.secrets.server_id.clone(), self.secrets.xsrf_key)),
                ..Dump::default()
            };
            let next: Option<u64> = redis::cmd("GET")
                .arg(self.keys.next_user())
                .query_async(&mut self.c())
                .await
                .map_err(storage)?;
            d.next_user_id = next.unwrap_or(0) + 1;
            for u in self.users().await? {
                let id = u.id;
                for (k, s, filed) in self.sessions_of_user(id).await? {
                    d.sessions.push((k, s, filed));
                }
                for (sel, f) in
                    self.read_all(self.keys.series_set(id), self.keys.series_prefix(id), false).await?
                {
                    d.series
                        .push((Selector(unhex(&sel).ok_or(corrupt("bad series id"))?), decode_series(&f)?));
                }
                let m: HashMap<String, String> = redis::cmd("HGETALL")
                    .arg(self.keys.lockout(id))
                    .query_async(&mut self.c())
                    .await
                    .map_err(storage)?;
                if let Some((l, forget)) = decode_lockout(&m)? {
                    d.lockouts.push((id, l, forget));
                }
                for (h, t) in self.tokens_of(id).await? {
                    d.tokens.push((h, t));
                }
                let hashes: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(self.keys.verifications(id))
                    .query_async(&mut self.c())
                    .await
                    .map_err(storage)?;
                for h in hashes {
                    let m: HashMap<String, String> = redis::cmd("HGETALL")
                        .arg(self.keys.verification(&h))
                        .query_async(&mut self.c())
                        .await
                        .map_err(storage)?;
                    if !m.is_empty() {
                        d.verifications
                            .push((unhex(&h).ok_or(corrupt("bad token id"))?, decode_verification(&m)?));
                    }
                }
                d.users.push(u);
            }
            Ok(d)
        })
    }

    fn import(&self, dump: Dump) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut c = self.c();
            let existing: u64 =
                redis::cmd("HLEN").arg(self.keys.names()).query_async(&mut c).await.map_err(storage)?;
            if existing > 0 {
                return Err(StoreError::Conflict("a destination with users".into()));
            }
            if let Some((server_id, key)) = &dump.secrets {
                redis::cmd("HSET")
                    .arg(self.keys.meta())
                    .arg("server_id")
                    .arg(server_id)
                    .arg("xsrf_key")
                    .arg(hex(key))
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(storage)?;
            }
            redis::cmd("SET")
                .arg(self.keys.next_user())
                .arg(dump.next_user_id.saturating_sub(1))
                .query_async::<()>(&mut c)
                .await
                .map_err(storage)?;
            for u in &dump.users {
                let mut cmd = redis::cmd("HSET");
                cmd.arg(self.keys.user(u.id));
                for (k, v) in user_fields(u) {
                    cmd.arg(k).arg(v);
                }
                cmd.query_async::<()>(&mut c).await.map_err(storage)?;
                redis::cmd("HSET")
                    .arg(self.keys.names())
                    .arg(name_key(&u.name))
                    .arg(u.id)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(storage)?;
            }
            for (sel, s) in &dump.series {
                let key = format!("{}{}", self.keys.series_prefix(s.user), hex(&sel.0));
                let mut cmd = redis::cmd("HSET");
                cmd.arg(&key);
                for (k, v) in series_fields(s) {
                    cmd.arg(k).arg(v);
                }
                cmd.query_async::<()>(&mut c).await.map_err(storage)?;
                redis::cmd("PEXPIREAT")
                    .arg(&key)
                    .arg(s.expires.0)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(storage)?;
                redis::cmd("SADD")
                    .arg(self.keys.series_set(s.user))
                    .arg(hex(&sel.0))
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(storage)?;
                redis::cmd("SET")
                    .arg(self.keys.series_ptr(&hex(&sel.0)))
                    .arg(s.user)
                    .arg("PXAT")
                    .arg(s.expires.0)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(storage)?;
            }
            for (key, s, filed) in &dump.sessions {
                let h = hex(&key.0);
                let rkey = format!("{}{h}", self.keys.session_prefix(s.user));
                let mut cmd = redis::cmd("HSET");
                cmd.arg(&rkey);
                for (k, v) in session_fields(s, *filed) {
                    cmd.arg(k).arg(v);
                }
                cmd.query_async::<()>(&mut c).await.map_err(storage)?;
                redis::cmd("PEXPIREAT")
                    .arg(&rkey)
                    .arg(filed.0)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(storage)?;
                redis::cmd("ZADD")
                    .arg(self.keys.sessions(s.user))
                    .arg(s.created.0)
                    .arg(&h)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(storage)?;
                self.file_session_pointers(s.user, key, *filed).await?;
            }
            for (u, l, forget) in &dump.lockouts {
                redis::cmd("HSET")
                    .arg(self.keys.lockout(*u))
                    .arg("strikes")
                    .arg(l.strikes)
                    .arg("level")
                    .arg(l.level)
                    .arg("until")
                    .arg(l.until.map_or(0, |t| t.0))
                    .arg("last_event")
                    .arg(l.last_event.0)
                    .arg("forget")
                    .arg(forget.0)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(storage)?;
                redis::cmd("PEXPIREAT")
                    .arg(self.keys.lockout(*u))
                    .arg(forget.0)
                    .query_async::<()>(&mut c)
                    .await
                    .map_err(storage)?;
            }
            for (hash, t) in &dump.tokens {
                self.create_token(*hash, t.clone()).await?;
            }
            for (hash, v) in &dump.verifications {
                self.create_verification(*hash, v.clone()).await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command that never completes (a reconnection stretched out by
    /// back-off, a stopped server) fails after the response timeout.
    #[tokio::test(start_paused = true)]
    async fn a_command_that_never_answers_fails_after_the_response_timeout() {
        let started = tokio::time::Instant::now();
        let never: RedisFuture<'_, Value> = Box::pin(std::future::pending());
        let e = bounded(never).await.unwrap_err();
        assert!(e.is_timeout() || e.is_io_error(), "{e}");
        let took = started.elapsed();
        assert!(took >= RESPONSE_TIMEOUT && took < RESPONSE_TIMEOUT + Duration::from_millis(100), "{took:?}");
        let quick: RedisFuture<'_, Value> = Box::pin(std::future::ready(Ok(Value::Okay)));
        assert_eq!(bounded(quick).await.unwrap(), Value::Okay);
    }
}

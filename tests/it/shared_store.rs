//! Issue 8 and SPEC §5, §6, §11 on the shared store (Redis or Valkey).
//!
//! Every test here starts redis-server processes of its own (a temporary
//! dir, a free loopback port, killed when the test ends), whatever
//! `AUTHD_TEST_STORE` says, so they run under plain `cargo test`:
//!
//! - three authd processes on one Redis share sessions, logouts,
//!   remember-me theft detection, failed-login counts and the deployment's
//!   XSRF key and server id; the same on a three-master Redis Cluster;
//! - a stopped (SIGSTOP, "slow") or killed Redis makes requests that need
//!   the store answer 503 with `Retry-After` and a Jira-shaped body within a
//!   bounded time, with a log line, and authd recovers by itself when Redis
//!   is back (continued, or restarted on its append-only file);
//! - a session's Redis TTL is the earlier of its idle and absolute
//!   deadlines, and touches slide it;
//! - `authd migrate` from a data dir to Redis and back keeps sessions and
//!   passwords.
//!
//! Needs `redis-server` and `redis-cli` on the PATH (Debian's
//! `redis-server` package); `.ci/run` installs it. Without them the tests
//! are skipped with a message, except under CI (`CI=true`), where they fail.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::jar::*;
use crate::support::*;

const PW: &str = "ann's long password";
const WRONG: &str = "not ann's password";

/// How long a request that needs an unreachable store may take: the store's
/// response timeout (`RESPONSE_TIMEOUT` in src/store/redis.rs, 2 s) and some
/// slack for a loaded machine.
const OUTAGE_ANSWER_WITHIN: Duration = Duration::from_secs(4);

/// Whether `redis-server` and `redis-cli` run here; if not, says why and
/// returns `false`, or fails under CI.
fn have_redis(test: &str) -> bool {
    let runs = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = ["redis-server", "redis-cli"].into_iter().filter(|b| !runs(b)).collect();
    if missing.is_empty() {
        return true;
    }
    let what = format!("{} (apt-get install -y --no-install-recommends redis-server)", missing.join(" and "));
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot run under CI: missing {what}");
    }
    eprintln!("SKIPPED {test}: missing {what}");
    false
}

/// A namespace no other test uses (each test has its own Redis too; this
/// also checks that `--store-namespace` is honoured).
fn namespace(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("it-{what}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A free loopback port; for a cluster node, one whose bus port (+10000) is free too.
fn free_port(cluster: bool) -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if !cluster || (port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()) {
            return port;
        }
    }
}

/// A redis-server of the test's own, killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl Redis {
    /// A throwaway server: nothing is saved.
    fn start() -> Redis {
        Redis::start_with(&["--save", "", "--appendonly", "no"], false)
    }

    /// A server that keeps every acknowledged write in its append-only file
    /// (fsync always), so a restart on the same dir has them all.
    fn durable() -> Redis {
        Redis::start_with(&["--save", "", "--appendonly", "yes", "--appendfsync", "always"], false)
    }

    /// A cluster node (no slots yet).
    fn cluster_node() -> Redis {
        Redis::start_with(
            &[
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ],
            true,
        )
    }

    fn start_with(args: &[&str], cluster: bool) -> Redis {
        let mut r = Redis {
            child: None,
            port: 0,
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        // Another process may take the port between our probe and Redis's bind: try a few.
        for _ in 0..5 {
            r.port = free_port(cluster);
            if r.spawn() {
                return r;
            }
        }
        panic!("redis-server did not start; its log:\n{}", r.log());
    }

    /// Starts redis-server on `self.port` and `self.dir`; `false` if it exits.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                self.child = None;
                return false;
            }
            if self.cli(&["ping"]) == "PONG" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not answer PING; its log:\n{}", self.port, self.log());
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// `redis-cli -p PORT ARGS`: its output, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An integer reply of redis-cli.
    fn int(&self, args: &[&str]) -> i64 {
        let out = self.cli(args);
        out.parse().unwrap_or_else(|_| panic!("redis-cli {args:?} answered {out:?}"))
    }

    /// The keys matching `pattern`.
    fn scan(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> =
            self.cli(&["--scan", "--pattern", pattern]).lines().map(str::to_string).collect();
        keys.sort();
        keys
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is not running").id()
    }

    /// Sends a signal (`STOP`, `CONT`) to the server.
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{sig} redis-server");
    }

    /// SIGKILL: gone at once, as in a crash or a lost machine.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("redis-server is not running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts it again on the same port and dir (so it reloads its files).
    fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        assert!(self.spawn(), "redis-server did not restart on port {}; its log:\n{}", self.port, self.log());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process cannot die of SIGKILL until it runs again.
            let _ = Command::new("kill").arg("-CONT").arg(c.id().to_string()).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A three-master Redis Cluster on loopback, no replicas.
struct Cluster {
    nodes: Vec<Redis>,
}

impl Cluster {
    fn start() -> Cluster {
        let nodes: Vec<Redis> = (0..3).map(|_| Redis::cluster_node()).collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !nodes.iter().all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok")) {
            assert!(Instant::now() < deadline, "the cluster never reached cluster_state:ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        Cluster { nodes }
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

/// Runs `authd ARGS --data DIR` on a shared store.
fn cli_on(data: &Path, store: &str, ns: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--store", store, "--store-namespace", ns]);
    authd_cli(data, &all, stdin)
}

/// Adds a user through the CLI on a shared store.
fn add_user_on(s: &Server, store: &str, ns: &str, name: &str, password: &str) {
    let out = cli_on(&s.data, store, ns, &["user", "add", name, "--password-stdin"], Some(password));
    assert!(out.status.success(), "user add {name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A `DELETE /rest/auth/1/session` (logout) sending exactly `cookie`.
async fn logout(s: &Server, cookie: &str) -> reqwest::Response {
    s.bare_client().delete(s.at("/rest/auth/1/session")).header("cookie", cookie).send().await.unwrap()
}

/// The server-id part of an XSRF token (`<serverId>_<token>_lin`).
fn server_id(token: &str) -> &str {
    token.split('_').next().unwrap()
}

/// The multi-instance scenario (SPEC §3, §6, §7 across instances): three
/// authd processes with their own data dirs on the store at `url`, under
/// one namespace.
async fn three_instances_share_one_deployment(url: &str) {
    let ns = namespace("fleet");
    let flags = [
        "--store",
        url,
        "--store-namespace",
        &ns,
        "--remember-me-grace",
        "1s",
        "--max-failed-logins",
        "3",
        "--lockout",
        "60s",
    ];
    let a = Server::start(&flags);
    let pw = a.admin_pw();
    let b = Server::start(&flags);
    let c = Server::start(&flags);
    assert!(b.admin_password.is_none() && c.admin_password.is_none(), "a later instance made another admin");
    let all = [&a, &b, &c];
    add_user_on(&a, url, &ns, "ann", PW);
    add_user_on(&b, url, &ns, "cy", PW);

    // A session made on one instance is used on another and ended on the third.
    let id = login_id(&a, "ann", PW).await;
    let r = whoami(&b, &format!("{SESSION}={id}")).await;
    assert_eq!(r.status(), 200, "b does not know a's session");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "ann");
    let r = logout(&c, &format!("{SESSION}={id}")).await;
    assert_eq!(r.status(), 204, "c cannot log out a's session");
    for s in all {
        assert_eq!(session_status(s, &id).await, 401, "{}: the logged-out session still works", s.url);
    }

    // Remember-me: rotated on b, the old validator replayed on c after the
    // grace window is theft, and every instance forgets the user's sessions
    // and series.
    let mut victim = api_login(&a, "ann", PW, true).await;
    let laptop = api_login(&b, "ann", PW, false).await.session.unwrap();
    let phone = api_login(&c, "ann", PW, true).await;
    let other_user = api_login(&a, "cy", PW, true).await;
    victim.session = None;
    let stolen = victim.remember.clone().unwrap();
    let r = whoami(&b, &format!("{REMEMBER}={stolen}")).await;
    assert_eq!(r.status(), 200, "b does not know a's remember-me series");
    victim.apply(&r);
    let current = victim.remember.clone().unwrap();
    let victim_session = victim.session.clone().expect("no session from the remember-me login");
    assert_ne!(current, stolen, "b did not rotate the validator");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = whoami(&c, &format!("{REMEMBER}={stolen}")).await;
    assert_eq!(r.status(), 401, "an old validator logged someone in on c");
    assert!(deletes(&r, REMEMBER), "the stolen cookie is not cleared: {:?}", set_cookies(&r));
    for s in all {
        assert!(!session_alive(s, &victim_session).await, "{}: the victim's session survived", s.url);
        assert!(!session_alive(s, &laptop).await, "{}: the victim's other session survived", s.url);
    }
    for s in all {
        for (what, cookie) in [("current", &current), ("other", phone.remember.as_ref().unwrap())] {
            let r = whoami(s, &format!("{REMEMBER}={cookie}")).await;
            assert_eq!(r.status(), 401, "{}: the victim's {what} series still logs in", s.url);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c.log_text().lines().any(|l| l.contains("WARN") && l.contains("remember")) {
        assert!(Instant::now() < deadline, "c did not log the theft:\n{}", c.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another user is untouched.
    assert!(session_alive(&b, other_user.session.as_ref().unwrap()).await, "another user's session ended");

    // Failed logins are counted across instances: one on each reaches three.
    for s in all {
        let r = s.login(&s.bare_client(), "cy", WRONG).await;
        assert_eq!(r.status(), 401, "{}", s.url);
        assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"));
    }
    for s in all {
        let r = s.login(&s.bare_client(), "cy", PW).await;
        assert_eq!(r.status(), 403, "{}: three failures over three instances did not lock cy", s.url);
        assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATION_DENIED"));
        let reason = header(&r, "x-authentication-denied-reason").unwrap_or_default();
        assert!(reason.starts_with("CAPTCHA_CHALLENGE"), "{reason}");
        assert!(header(&r, "retry-after").is_some(), "{}: 403 without Retry-After", s.url);
        assert_jira_error(&r.json().await.unwrap());
    }
    // The lockout leaves cy's existing session alone; an unlock through one instance frees all.
    assert!(session_alive(&c, other_user.session.as_ref().unwrap()).await);
    let out = cli_on(&c.data, url, &ns, &["user", "unlock", "cy"], None);
    assert!(out.status.success(), "unlock: {}", String::from_utf8_lossy(&out.stderr));
    for s in all {
        assert_eq!(s.login(&s.bare_client(), "cy", PW).await.status(), 200, "{}: still locked", s.url);
    }

    // One XSRF key and server id: a token minted by one instance verifies on another.
    let me = api_login(&a, "admin", &pw, false).await;
    let others_token = api_login(&b, "admin", &pw, false).await.xsrf.unwrap();
    let other = api_login(&c, "admin", &pw, false).await.session.unwrap();
    let token = me.xsrf.clone().unwrap();
    assert_eq!(server_id(&token), server_id(&others_token), "the instances have different server ids");
    let r =
        post_form(&b, "/account/sessions/revoke-others", &me.header(), &[("atl_token", &token)], &[]).await;
    assert_eq!(r.status(), 303, "b refused a's XSRF token: {}", r.text().await.unwrap());
    assert!(!session_alive(&c, &other).await, "the form was accepted, yet the other session lives");
    assert!(session_alive(&c, me.session.as_ref().unwrap()).await);
    // The anonymous kind too: the login page from a, its form posted to b.
    let mut browser = Jar::default();
    let r = get_with(&a, "/login.jsp", "").await;
    browser.apply(&r);
    let page = page_token(&r.text().await.unwrap());
    let form = [("os_username", "ann"), ("os_password", PW), ("atl_token", page.as_str())];
    let r = post_form(&b, "/login.jsp", &browser.header(), &form, &[]).await;
    assert_eq!(r.status(), 303, "b refused a's login form: {}", r.text().await.unwrap());
    browser.apply(&r);
    assert!(session_alive(&c, browser.session.as_ref().unwrap()).await);
}

#[tokio::test]
async fn three_instances_on_one_redis_share_sessions_remember_me_lockout_and_xsrf() {
    if !have_redis("three_instances_on_one_redis_share_sessions_remember_me_lockout_and_xsrf") {
        return;
    }
    let redis = Redis::start();
    three_instances_share_one_deployment(&redis.url()).await;
}

#[tokio::test]
async fn three_instances_on_a_redis_cluster_share_sessions_remember_me_lockout_and_xsrf() {
    if !have_redis("three_instances_on_a_redis_cluster_share_sessions_remember_me_lockout_and_xsrf") {
        return;
    }
    let cluster = Cluster::start();
    three_instances_share_one_deployment(&cluster.url()).await;
    // The records really are spread over the masters.
    let used = cluster.nodes.iter().filter(|n| n.int(&["dbsize"]) > 0).count();
    assert!(used >= 2, "all keys landed on one node of three");
}

/// Requests that need the store while it does not answer: each is 503 with
/// `Retry-After` and a Jira-shaped body, in bounded time; anonymous pages
/// that need no store still answer.
async fn assert_store_unavailable(s: &Server, id: &str, pw: &str) {
    let cookie = format!("{SESSION}={id}");
    let c = s.bare_client();
    let requests = [
        ("session check", c.get(s.at("/rest/auth/1/session")).header("cookie", &cookie)),
        ("myself", c.get(s.at("/rest/api/2/myself")).header("cookie", &cookie)),
        (
            "login",
            c.post(s.at("/rest/auth/1/session"))
                .json(&serde_json::json!({ "username": "admin", "password": pw })),
        ),
    ];
    for (what, req) in requests {
        let t = Instant::now();
        let r = req.send().await.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let took = t.elapsed();
        assert_eq!(r.status(), 503, "{what} while the store is out");
        let retry = header(&r, "retry-after").unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
        assert!(retry.parse::<u64>().is_ok_and(|s| s >= 1), "{what}: Retry-After {retry}");
        assert_jira_error(&r.json().await.unwrap());
        eprintln!("{what}: 503 after {took:?}");
        assert!(took <= OUTAGE_ANSWER_WITHIN, "{what} took {took:?} to fail; the store timeout is 2 s");
    }
    let t = Instant::now();
    let r = c.get(s.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(2), "/healthz waited for the store");
    assert!(s.log_text().contains("store unavailable"), "no log line about the outage:\n{}", s.log_text());
}

/// Waits until the session `id` is valid again on `s` (authd reconnects by itself).
async fn wait_until_valid(s: &Server, id: &str, what: &str) {
    let t = Instant::now();
    loop {
        match session_status(s, id).await {
            200 => break,
            401 => panic!("{what}: the session is gone after the store came back"),
            _ => {}
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{what}: authd did not recover in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{what}: recovered {:?} after the store came back", t.elapsed());
}

#[tokio::test]
async fn a_stopped_redis_is_503_with_retry_after_and_authd_recovers_when_it_continues() {
    if !have_redis("a_stopped_redis_is_503_with_retry_after_and_authd_recovers_when_it_continues") {
        return;
    }
    let redis = Redis::start();
    let s = Server::start(&["--store", &redis.url(), "--store-namespace", &namespace("slow")]);
    let pw = s.admin_pw();
    let id = login_id(&s, "admin", &pw).await;
    assert_eq!(session_status(&s, &id).await, 200);

    redis.signal("STOP");
    assert_store_unavailable(&s, &id, &pw).await;
    // Twice: the first failure must not leave later requests waiting longer.
    assert_store_unavailable(&s, &id, &pw).await;
    redis.signal("CONT");

    wait_until_valid(&s, &id, "after SIGCONT").await;
    let id2 = login_id(&s, "admin", &pw).await;
    assert_eq!(session_status(&s, &id2).await, 200);
    assert_eq!(session_status(&s, &id).await, 200);
}

/// Runs `authd ARGS --data DATA` without any store in the environment.
fn cli_data_only(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data").arg(data).env_remove("AUTHD_STORE");
    let out = run_command(cmd, stdin, Some(Duration::from_secs(30)));
    assert!(out.status.success(), "authd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `authd user list --json --data DATA`'s names, without a store.
fn user_names_data_only(data: &Path) -> Vec<String> {
    let out = cli_data_only(data, &["user", "list", "--json"], None);
    let users: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    users.iter().filter_map(|u| u["name"].as_str().map(str::to_string)).collect()
}

/// SPEC §2: a command given only the data dir of a server that keeps its
/// data in a shared store goes through that server, not a new empty
/// database in the dir, nor an old one left there.
#[tokio::test]
async fn the_cli_without_store_reaches_a_running_shared_store_server() {
    if !have_redis("the_cli_without_store_reaches_a_running_shared_store_server") {
        return;
    }
    let redis = Redis::start();
    let s = Server::start(&["--store", &redis.url(), "--store-namespace", &namespace("dironly")]);
    assert_eq!(user_names_data_only(&s.data), ["admin"]);
    assert!(!s.data.join("authd.redb").exists(), "the CLI made a database beside a shared-store server");

    // A leftover authd.redb in the dir (as `authd migrate` to Redis leaves
    // it): the running server still answers, not the old file.
    let leftover = tempfile::tempdir().unwrap();
    let old = leftover.path().join("db");
    cli_data_only(&old, &["user", "add", "zed", "--password-stdin"], Some("zed's long password\n"));
    std::fs::copy(old.join("authd.redb"), s.data.join("authd.redb")).unwrap();
    assert_eq!(user_names_data_only(&s.data), ["admin"], "the leftover file answered instead of the server");
}

/// SPEC §11 on a shared store: the namespace's `meta` hash carries the
/// schema; an older one is migrated (with a log line, data kept), a newer one
/// refused by name.
#[tokio::test]
async fn an_older_namespace_schema_is_migrated_and_a_newer_one_refused() {
    if !have_redis("an_older_namespace_schema_is_migrated_and_a_newer_one_refused") {
        return;
    }
    let redis = Redis::start();
    let ns = namespace("schema");
    let meta = format!("{ns}:meta");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let args = ["--store", &redis.url(), "--store-namespace", &ns];
    let s = Server::start_in(&data, &args);
    let pw = s.admin_pw();
    assert!(s.stop().success());
    assert_eq!(redis.cli(&["HGET", &meta, "schema"]), "1");

    // What a pre-release build left: schema 0.
    redis.cli(&["HSET", &meta, "schema", "0"]);
    let s = Server::start_in(&data, &args);
    let log = s.log_text();
    assert!(log.contains(&format!("migrated namespace '{ns}' from schema 0 to 1")), "{log}");
    assert!(!log.contains("admin password"), "a new admin was made:\n{log}");
    let id = login_id(&s, "admin", &pw).await;
    assert_eq!(session_status(&s, &id).await, 200);
    assert!(s.stop().success());
    assert_eq!(redis.cli(&["HGET", &meta, "schema"]), "1");

    // A command run with no server migrates too, and says so.
    redis.cli(&["HSET", &meta, "schema", "0"]);
    let out = cli_on(&data, &redis.url(), &ns, &["user", "list"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("note: migrated namespace '{ns}' from schema 0 to 1")), "{err}");
    assert_eq!(redis.cli(&["HGET", &meta, "schema"]), "1");

    // What a future authd would leave (beyond 32 bits too), and a stamp
    // that is not a number: refused, the stamp left as it is.
    for (stamp, says) in [
        ("99", vec!["newer authd", "schema 99", "upgrade authd"]),
        ("4294967296", vec!["newer authd", "schema 4294967296"]),
        ("banana", vec!["'banana' is not a number"]),
    ] {
        redis.cli(&["HSET", &meta, "schema", stamp]);
        let (status, log) = match Server::try_start_in(&data, &args) {
            Ok(s) => {
                let _ = s.stop();
                panic!("authd started on schema {stamp}");
            }
            Err(e) => e,
        };
        assert!(status.is_some_and(|s| !s.success() && s.code() != Some(101)), "{status:?}: {log}");
        for e in says.iter().chain(&["--store"]) {
            assert!(log.contains(e), "schema {stamp}: stderr does not say {e:?}:\n{log}");
        }
        assert_eq!(redis.cli(&["HGET", &meta, "schema"]), stamp, "the stamp was rewritten");
    }
}

#[tokio::test]
async fn a_dead_redis_is_503_with_retry_after_and_authd_recovers_when_it_restarts() {
    if !have_redis("a_dead_redis_is_503_with_retry_after_and_authd_recovers_when_it_restarts") {
        return;
    }
    let mut redis = Redis::durable();
    let s = Server::start(&["--store", &redis.url(), "--store-namespace", &namespace("dead")]);
    let pw = s.admin_pw();
    let id = login_id(&s, "admin", &pw).await;
    assert_eq!(session_status(&s, &id).await, 200);

    redis.kill();
    assert_store_unavailable(&s, &id, &pw).await;
    assert_store_unavailable(&s, &id, &pw).await;
    // Out for longer than the client's reconnect attempts last.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_store_unavailable(&s, &id, &pw).await;
    redis.restart();

    // The login acknowledged before the crash is in the append-only file.
    wait_until_valid(&s, &id, "after the restart").await;
    let id2 = login_id(&s, "admin", &pw).await;
    assert_eq!(session_status(&s, &id2).await, 200);
}

/// `PEXPIRETIME` of a key, in unix milliseconds (-1: no TTL, -2: no key).
fn expire_ms(redis: &Redis, key: &str) -> i64 {
    redis.int(&["pexpiretime", key])
}

/// `GET /rest/auth/1/session` (sliding unless `passive`): its `X-Authd-Session-Expires`.
async fn use_session(s: &Server, id: &str, passive: bool) -> i64 {
    let mut req =
        s.bare_client().get(s.at("/rest/auth/1/session")).header("cookie", format!("{SESSION}={id}"));
    if passive {
        req = req.header("x-authd-passive", "1");
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    header(&r, "x-authd-session-expires").expect("X-Authd-Session-Expires").parse().unwrap()
}

/// Waits until every key in `keys` expires at `deadline` (unix seconds, as
/// the header gives it); touches are written after the answer.
async fn wait_for_expiry(redis: &Redis, keys: &[&str], deadline: i64, what: &str) {
    let t = Instant::now();
    loop {
        let got: Vec<i64> = keys.iter().map(|k| expire_ms(redis, k)).collect();
        if got.iter().all(|&ms| ms > 0 && (ms / 1000 - deadline).abs() <= 1) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{what}: keys {keys:?} expire at {got:?} ms, not at {deadline} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_sessions_ttl_is_its_earlier_deadline_and_touches_slide_it() {
    if !have_redis("a_sessions_ttl_is_its_earlier_deadline_and_touches_slide_it") {
        return;
    }
    let redis = Redis::start();
    let ns = namespace("ttl");
    let s = Server::start(&[
        "--store",
        &redis.url(),
        "--store-namespace",
        &ns,
        "--idle-timeout",
        "5s",
        "--absolute-timeout",
        "9s",
        "--touch-interval",
        "1s",
    ]);
    let pw = s.admin_pw();
    let started = Instant::now();
    let id = login_id(&s, "admin", &pw).await;

    // The session's record and its pointer, under the namespace.
    let records = redis.scan(&format!("{ns}:{{u:*}}:s:*"));
    assert_eq!(records.len(), 1, "one session record: {records:?}");
    let record = records[0].clone();
    let hex = record.rsplit(':').next().unwrap().to_string();
    let pointer = format!("{ns}:sp:{hex}");
    assert_eq!(redis.int(&["exists", &pointer]), 1, "no pointer {pointer}");
    assert!(redis.scan("*").iter().all(|k| k.starts_with(&format!("{ns}:"))), "a key outside {ns}");
    let keys = [record.as_str(), pointer.as_str()];

    // At first the idle deadline is the earlier one: 5 s.
    let e0 = use_session(&s, &id, false).await;
    wait_for_expiry(&redis, &keys, e0, "after login").await;
    let ttl = redis.int(&["pttl", &record]);
    // When the record expires, as seen from here (compared below rather than
    // the TTLs: how long each read took after its write is up to the machine).
    let expiry0 = Instant::now() + Duration::from_millis(ttl.try_into().unwrap());
    assert!((2_000..=5_000).contains(&ttl), "TTL {ttl} ms, the idle timeout is 5 s");

    // A use after the touch interval slides it.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(started.elapsed())).await;
    let e1 = use_session(&s, &id, false).await;
    assert!(e1 > e0, "the use did not slide the deadline ({e0} -> {e1})");
    wait_for_expiry(&redis, &keys, e1, "after a use").await;
    let ttl1 = redis.int(&["pttl", &record]);
    let expiry1 = Instant::now() + Duration::from_millis(ttl1.try_into().unwrap());
    // The use came about 2 s after the login, so the record lives about 2 s longer.
    assert!(
        expiry1 > expiry0 + Duration::from_millis(1_000),
        "the TTL did not grow: {ttl} ms then {ttl1} ms, {:?} later",
        expiry1.saturating_duration_since(expiry0)
    );

    // A passive use does not.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(use_session(&s, &id, true).await, e1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for_expiry(&redis, &keys, e1, "after a passive use").await;

    // Past 4 s, sliding by 5 s would overshoot the absolute deadline (9 s): that one wins.
    tokio::time::sleep(Duration::from_millis(5_000).saturating_sub(started.elapsed())).await;
    let e2 = use_session(&s, &id, false).await;
    wait_for_expiry(&redis, &keys, e2, "near the absolute deadline").await;
    let ttl = redis.int(&["pttl", &record]);
    let left = Duration::from_secs(9).saturating_sub(started.elapsed()).as_millis() as i64;
    assert!(ttl <= left + 500, "TTL {ttl} ms outlives the absolute deadline ({left} ms left)");
    assert!(e2 < e1 + 4, "the deadline slid past the absolute timeout ({e1} -> {e2})");

    // Redis itself removes the session when its deadline passes.
    let t = Instant::now();
    while redis.int(&["exists", &record, &pointer]) > 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "the session's keys outlived its deadline");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(session_status(&s, &id).await, 401);
}

/// `authd migrate --from FROM --to TO` under `ns`; asserts success.
fn migrate(from: &str, to: &str, ns: &str) {
    let out = Command::new(BIN)
        .args(["migrate", "--from", from, "--to", to, "--store-namespace", ns])
        .env_remove("AUTHD_STORE")
        .env_remove("AUTHD_STORE_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "migrate {from} -> {to} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn migrate_from_a_data_dir_to_redis_and_back_keeps_sessions_and_passwords() {
    let test = "migrate_from_a_data_dir_to_redis_and_back_keeps_sessions_and_passwords";
    if redb_only(test) || !have_redis(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| -> PathBuf { tmp.path().join(name) };
    let s = Server::start_in(&dir("redb"), &[]);
    s.add_user("ann", PW, &[]);
    let id = login_id(&s, "ann", PW).await;
    assert_eq!(session_status(&s, &id).await, 200);
    assert!(s.stop().success());

    let redis = Redis::start();
    let ns = namespace("migrate");
    migrate(path_str(&dir("redb")), &redis.url(), &ns);
    let s = Server::start_in(&dir("on-redis"), &["--store", &redis.url(), "--store-namespace", &ns]);
    assert!(s.admin_password.is_none(), "the migrated users were not found; a new admin was made");
    let r = whoami(&s, &format!("{SESSION}={id}")).await;
    assert_eq!(r.status(), 200, "the session did not survive the migration to Redis");
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "ann");
    let id2 = login_id(&s, "ann", PW).await;
    assert!(s.stop().success());

    migrate(&redis.url(), path_str(&dir("back")), &ns);
    let s = Server::start_in(&dir("back"), &[]);
    assert!(s.admin_password.is_none(), "the migrated users were not found; a new admin was made");
    for (what, id) in [("the first session", &id), ("the session made on Redis", &id2)] {
        assert_eq!(session_status(&s, id).await, 200, "{what} did not survive the migration back");
    }
    login_id(&s, "ann", PW).await;
}

//! Test support: start the real `authd` binary on port 0 with a temporary
//! data dir, read its start-up banner, and talk to it over real HTTPS with
//! a cookie jar that trusts exactly its certificate.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_authd");

/// A running authd.
pub struct Server {
    child: Option<Child>,
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The bound port.
    pub port: u16,
    /// The data directory.
    pub data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// The first admin's password, when this start created it.
    pub admin_password: Option<String>,
    /// Everything the server has written to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts authd with a fresh temporary data dir and extra flags.
    pub fn start(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("db");
        let mut s = Server::start_in(&data, args);
        s._tmp = Some(tmp);
        s
    }

    /// Starts authd on an existing (or new) data dir.
    pub fn start_in(data: &Path, args: &[&str]) -> Server {
        Server::try_start_in(data, args)
            .unwrap_or_else(|(status, log)| panic!("authd did not start ({status:?}):\n{log}"))
    }

    /// Starts authd; on failure returns its exit status and stderr.
    pub fn try_start_in(data: &Path, args: &[&str]) -> Result<Server, (Option<ExitStatus>, String)> {
        Server::try_start_env(data, args, &[])
    }

    /// Starts authd with extra `AUTHD_*` environment variables; on failure
    /// returns its exit status and stderr.
    pub fn try_start_env(
        data: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, (Option<ExitStatus>, String)> {
        let mut child = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("AUTHD_LOG")
            .envs(store_env(data))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn authd");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut url = None;
        let mut admin_password = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => {
                    if let Some(pw) = line.trim().strip_prefix("admin password: ") {
                        admin_password = Some(pw.trim().to_string());
                    }
                    if url.is_none() {
                        if let Some(u) = line.trim().strip_prefix("URL:") {
                            url = Some(u.trim().to_string());
                        }
                    }
                    if line.trim_start().starts_with("try:") {
                        // The banner is printed in one piece; the password, if any, follows at once.
                        while let Ok(more) = rx.recv_timeout(Duration::from_millis(50)) {
                            if let Some(pw) = more.trim().strip_prefix("admin password: ") {
                                admin_password = Some(pw.trim().to_string());
                            }
                        }
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        std::thread::sleep(Duration::from_millis(100));
                        return Err((Some(status), log.lock().unwrap().join("\n")));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        return Err((None, log.lock().unwrap().join("\n")));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().ok();
                    std::thread::sleep(Duration::from_millis(100));
                    return Err((status, log.lock().unwrap().join("\n")));
                }
            }
        }
        let url = url.expect("banner without URL");
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        Ok(Server {
            child: Some(child),
            url,
            port,
            data: data.to_path_buf(),
            _tmp: None,
            admin_password,
            log,
        })
    }

    /// The certificate the server presents.
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.data.join("tls/cert.pem")).unwrap()
    }

    /// A fresh HTTPS client with its own cookie jar.
    pub fn client(&self) -> reqwest::Client {
        client_for(&self.cert_pem(), true)
    }

    /// A client without a cookie jar (cookies only as headers you set).
    pub fn bare_client(&self) -> reqwest::Client {
        client_for(&self.cert_pem(), false)
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The admin's password from the banner.
    pub fn admin_pw(&self) -> String {
        self.admin_password.clone().expect("this start did not create the admin")
    }

    /// Posts a login; returns the response.
    pub async fn login(&self, c: &reqwest::Client, user: &str, password: &str) -> reqwest::Response {
        c.post(self.at("/rest/auth/1/session"))
            .json(&json!({ "username": user, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Logs in and asserts success; returns the JSON body.
    pub async fn login_ok(&self, c: &reqwest::Client, user: &str, password: &str) -> Value {
        let r = self.login(c, user, password).await;
        assert_eq!(r.status(), 200, "login of {user} failed");
        r.json().await.unwrap()
    }

    /// Runs the CLI on this server's data dir.
    pub fn authd(&self, args: &[&str], stdin: Option<&str>) -> Output {
        authd_cli(&self.data, args, stdin)
    }

    /// Adds a user through the CLI.
    pub fn add_user(&self, name: &str, password: &str, extra: &[&str]) {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        args.extend_from_slice(extra);
        let out = self.authd(&args, Some(password));
        assert!(out.status.success(), "user add failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM; waits for exit and returns the status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal_and_wait("TERM")
    }

    /// SIGTERM from an async test: waits off the runtime, which goes on
    /// running the test's client connections, so they answer the server's
    /// goodbye (an HTTP/2 GOAWAY's ping) instead of holding the stop for its
    /// 10 s of grace.
    pub async fn stop_async(self) -> ExitStatus {
        tokio::task::spawn_blocking(move || self.stop()).await.unwrap()
    }

    /// SIGINT; waits for exit and returns the status.
    pub fn interrupt(mut self) -> ExitStatus {
        self.signal_and_wait("INT")
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn signal_and_wait(&mut self, sig: &str) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "authd did not exit after SIG{sig}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The shared store the suite runs against (`AUTHD_TEST_STORE`, e.g.
/// `redis://127.0.0.1:6379`), or `None` for each server's own redb file.
pub fn shared_store() -> Option<String> {
    std::env::var("AUTHD_TEST_STORE").ok().filter(|s| !s.is_empty())
}

/// With a shared store: its URL and a namespace of this data dir's own, so
/// tests sharing one Redis never see each other's keys.
pub fn store_env(data: &Path) -> Vec<(String, String)> {
    use std::hash::{Hash, Hasher};
    let Some(url) = shared_store() else { return Vec::new() };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    vec![("AUTHD_STORE".into(), url), ("AUTHD_STORE_NAMESPACE".into(), format!("t{:016x}", h.finish()))]
}

/// For a test of the embedded redb file itself: `true` (and a note) when
/// the suite runs against a shared store, where there is no such file.
pub fn redb_only(test: &str) -> bool {
    if shared_store().is_some() {
        eprintln!("{test}: about the embedded redb file; not run against a shared store");
        return true;
    }
    false
}

/// Everything authd has stored for the server on `data`, as bytes to search
/// for secrets: the redb file, or (with a shared store) every value under the
/// data dir's namespace, plus the bytes of every value written in hex.
pub fn stored_bytes(data: &Path) -> Vec<u8> {
    let env = store_env(data);
    let Some((_, url)) = env.iter().find(|(k, _)| k == "AUTHD_STORE") else {
        return std::fs::read(data.join("authd.redb")).unwrap();
    };
    let ns = &env.iter().find(|(k, _)| k == "AUTHD_STORE_NAMESPACE").unwrap().1;
    let mut c = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{ns}:*")).query(&mut c).unwrap();
    let mut out = Vec::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&k).query(&mut c).unwrap()],
            "hash" => redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap(),
            "zset" => redis::cmd("ZRANGE").arg(&k).arg(0).arg(-1).query(&mut c).unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&k).query(&mut c).unwrap(),
            _ => Vec::new(),
        };
        for v in values.into_iter().chain(std::iter::once(k.into_bytes())) {
            let text = String::from_utf8_lossy(&v).into_owned();
            out.extend_from_slice(&v);
            out.push(0);
            if text.len() % 2 == 0 && text.len() >= 8 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.extend(
                    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()),
                );
                out.push(0);
            }
        }
    }
    out
}

/// Runs `authd ARGS --data DIR` with optional stdin.
pub fn authd_cli(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data").arg(data).envs(store_env(data));
    run_command(cmd, stdin, None)
}

/// Runs `cmd` to its end with `stdin` (if any) as its input, capturing its
/// output; with `bound`, a panic if it is still running after that long.
pub fn run_command(mut cmd: Command, stdin: Option<&str>, bound: Option<Duration>) -> Output {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    {
        let mut sin = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            // A command refused before it reads its input (a bad flag) may
            // have exited already: its output says so, not a broken pipe here.
            if let Err(e) = sin.write_all(s.as_bytes()) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing to the command's stdin: {e}");
            }
        }
    }
    if let Some(bound) = bound {
        let deadline = Instant::now() + bound;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!("{cmd:?} is still running: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    child.wait_with_output().unwrap()
}

/// A TLS client configuration trusting exactly `cert_pem`, offering `alpn`.
pub fn tls_client_config(cert_pem: &[u8], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tls
}

/// An HTTPS client trusting exactly `cert_pem`, speaking HTTP/2 or 1.1 by ALPN.
pub fn client_for(cert_pem: &[u8], cookies: bool) -> reqwest::Client {
    let tls = tls_client_config(cert_pem, &[b"h2", b"http/1.1"]);
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

use rustls::pki_types::pem::PemObject as _;

/// All `Set-Cookie` values of a response.
pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// The `Set-Cookie` value for cookie `name`, if any.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    set_cookies(r).into_iter().find(|c| c.starts_with(&format!("{name}=")))
}

/// A header as a string.
pub fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string())
}

/// An HTTPS client that speaks only HTTP/1.1 (ALPN `http/1.1`).
pub fn h1_client_for(cert_pem: &[u8]) -> reqwest::Client {
    let tls = tls_client_config(cert_pem, &[b"http/1.1"]);
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A TLS connection to authd speaking HTTP/1.1 only.
pub async fn tls_h1(port: u16, cert_pem: &[u8]) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    try_tls_h1(port, cert_pem).await.unwrap()
}

/// [`tls_h1`] to `s`, retrying a refused handshake for up to 5 s: under
/// `--max-conns`, a connection just dropped may hold its slot a moment longer.
pub async fn tls_h1_when_free(s: &Server) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match try_tls_h1(s.port, &s.cert_pem()).await {
            Ok(t) => return t,
            Err(e) if Instant::now() < deadline => {
                eprintln!("handshake refused ({e}); trying again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no connection was served within 5 s: {e}"),
        }
    }
}

/// [`tls_h1`], or the connection's or handshake's error.
pub async fn try_tls_h1(
    port: u16,
    cert_pem: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = tls_client_config(cert_pem, &[b"http/1.1"]);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await
}

/// Sends raw bytes over one HTTP/1.1 TLS connection to `s` and returns
/// everything the server answers until it closes (or 10 s pass).
pub async fn raw_h1(s: &Server, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tls_h1(s.port, &s.cert_pem()).await;
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request).await;
    let _ = stream.flush().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    out
}

/// The status code of a raw HTTP/1.1 answer.
pub fn raw_status(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Checks Jira's error shape: `{"errorMessages":["..."],"errors":{}}` and nothing else.
pub fn assert_jira_error(body: &Value) {
    let obj = body.as_object().unwrap_or_else(|| panic!("error body is not an object: {body}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["errorMessages", "errors"], "error body has other keys: {body}");
    let msgs = body["errorMessages"].as_array().unwrap_or_else(|| panic!("errorMessages: {body}"));
    assert!(!msgs.is_empty(), "errorMessages is empty: {body}");
    for m in msgs {
        assert!(m.as_str().is_some_and(|m| !m.trim().is_empty()), "blank message in {body}");
    }
    assert_eq!(body["errors"], json!({}), "errors is not an empty object: {body}");
}

/// The first error message of a Jira-shaped body.
pub fn error_message(body: &Value) -> String {
    body["errorMessages"][0].as_str().unwrap_or_default().to_string()
}

/// The status of `GET /rest/auth/1/session` presenting `JSESSIONID=id`.
pub async fn session_status(s: &Server, id: &str) -> u16 {
    s.bare_client()
        .get(s.at("/rest/auth/1/session"))
        .header("cookie", format!("JSESSIONID={id}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Logs in with a cookie-less client; returns the session ID from the body.
pub async fn login_id(s: &Server, user: &str, password: &str) -> String {
    let body = s.login_ok(&s.bare_client(), user, password).await;
    body["session"]["value"].as_str().unwrap().to_string()
}

/// The value of one series in Prometheus text, e.g. `authd_sessions` or
/// `authd_sweeper_deleted_total{kind="session"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `GET /metrics` as text.
pub async fn metrics_text(s: &Server) -> String {
    let r = s.bare_client().get(s.at("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Seconds since the Unix epoch.
// The server's expiry header is wall-clock time; the test must read the same clock.
#[allow(clippy::disallowed_methods)]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// SHA-256 of the first certificate in a PEM file, lower-case hex without separators.
pub fn cert_sha256_hex(cert_pem: &[u8]) -> String {
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem).next().unwrap().unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A `Set-Cookie` value split into name, value and attributes (as written).
pub fn parse_set_cookie(sc: &str) -> (String, String, Vec<String>) {
    let mut parts = sc.split(';').map(str::trim);
    let (name, value) = parts.next().unwrap().split_once('=').unwrap();
    (name.to_string(), value.to_string(), parts.filter(|p| !p.is_empty()).map(str::to_string).collect())
}

/// A real component a test needs (nginx, Caddy), if `found`: without it the
/// test is skipped with a message, except under CI (`CI=true`), where a
/// missing component fails it (`.ci/run` installs it with `install`).
pub fn required_component(found: Option<PathBuf>, test: &str, install: &str) -> Option<PathBuf> {
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test} cannot run under CI: a component is missing ({install})");
        }
        eprintln!("SKIPPED {test}: missing ({install})");
    }
    found
}

/// A program a test runs beside authd (nginx, Caddy), listening on a
/// loopback port, with a temp dir of its own; stopped when dropped.
pub struct Component {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
    log_name: &'static str,
}

impl Component {
    /// What it logged to its log file in its dir.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log_name)).unwrap_or_default()
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        // SIGTERM: a fast stop, workers too (nginx); then SIGKILL.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `what` on a free loopback port: `spawn(port, dir)` writes its
/// configuration into a fresh temp dir and runs it, logging to `log_name`
/// there. Waits up to 15 s for it to listen; tries another port (this one
/// taken meanwhile) up to three times.
pub fn start_component(what: &str, log_name: &'static str, spawn: impl Fn(u16, &Path) -> Child) -> Component {
    let mut last = String::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = spawn(port, dir.path());
        let mut c = Component { child, port, dir, log_name };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return c;
            }
            if let Ok(Some(status)) = c.child.try_wait() {
                last = format!("{what} exited ({status}):\n{}", c.log());
                break;
            }
            if Instant::now() > deadline {
                last = format!("{what} did not listen on {port} within 15 s:\n{}", c.log());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("{last}");
}

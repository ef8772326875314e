//! SPEC §9, authd in front of an app: forward auth (`/rest/authd/1/verify`),
//! the reverse proxy (`--upstream`, `--require-login`, `--max-body`,
//! identity and forwarding headers, secret cookies, keep-alive, WebSockets),
//! API tokens (CLI and API, `Authorization: Basic user:token`), CORS for
//! `--cors-origin` origins, your own sessions, `--max-sessions-per-user`,
//! the admin API and `/metrics`.
//!
//! The app behind authd is [`EchoApp`]: a small hyper server on a thread of
//! its own that answers every request with JSON describing what it received
//! (method, path, headers, body length and SHA-256), counts the TCP
//! connections authd opens to it, serves large downloads, and echoes
//! WebSocket frames. The nginx and Jira-tutorial tests use it too.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::jar::*;
use crate::support::*;

// ---------------------------------------------------------------------------
// The app behind authd.

/// One request as the app saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Which TCP connection it came on (1, 2, ... in accept order).
    pub conn: usize,
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the whole body arrived (false if the stream broke off).
    pub complete: bool,
}

impl Seen {
    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
    }

    /// The one value of header `name` (a panic if it came more than once).
    pub fn one(&self, name: &str) -> Option<String> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} reached the app {} times: {all:?}", all.len());
        all.into_iter().next()
    }
}

#[derive(Default)]
struct EchoState {
    seen: Mutex<Vec<Seen>>,
    conns: AtomicUsize,
    bytes_in: AtomicUsize,
}

/// A small app that tells what it received. Routes:
/// - `/ws...` with `Upgrade: websocket`: a WebSocket echo server;
/// - `/download?n=N`: N bytes of [`pattern`];
/// - `/cors-star...`: the echo, with the app's own `Access-Control-Allow-Origin: *`;
/// - `/app-cookies...`: the echo, setting `JSESSIONID`, authd's other two cookie names and `app`;
/// - `/rest/api/2/search`: the echo plus a Jira-like search answer
///   (`searchedBy` is the `X-AUSERNAME` it received, `jql` the body's);
/// - anything else: the echo, a JSON object with `conn`, `method`, `path`,
///   `headers` (lower-case name → values), `bodyLength`, `bodySha256` and
///   `body` (as text, when under 64 KiB).
pub struct EchoApp {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    state: Arc<EchoState>,
}

impl EchoApp {
    /// Starts the app on a free loopback port, on a thread of its own.
    pub fn start() -> EchoApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(EchoState::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let conn = st.conns.fetch_add(1, Ordering::SeqCst) + 1;
                    let st = Arc::clone(&st);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| echo(Arc::clone(&st), conn, req));
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .with_upgrades()
                            .await;
                    });
                }
            });
        });
        EchoApp { url: format!("http://127.0.0.1:{port}"), port, state }
    }

    /// Everything the app has received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The requests the app received for `path` (path and query).
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// The last request the app received for `path`, or a panic.
    pub fn last_at(&self, path: &str) -> Seen {
        self.seen_at(path).pop().unwrap_or_else(|| panic!("the app never received {path}"))
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.conns.load(Ordering::SeqCst)
    }

    /// Request body bytes received so far (counted as they arrive).
    pub fn bytes_in(&self) -> usize {
        self.state.bytes_in.load(Ordering::SeqCst)
    }
}

/// Byte `i` of a download.
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn ws_accept(key: &str) -> String {
    let mut input = key.trim().as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

async fn echo(
    st: Arc<EchoState>,
    conn: usize,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let wants_ws = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if req.uri().path().starts_with("/ws") && wants_ws {
        let key =
            req.headers().get("sec-websocket-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let upgrade = hyper::upgrade::on(&mut req);
        st.seen.lock().unwrap().push(Seen { conn, method, path, headers, body: Vec::new(), complete: true });
        tokio::spawn(async move {
            if let Ok(up) = upgrade.await {
                ws_echo(hyper_util::rt::TokioIo::new(up)).await;
            }
        });
        let resp = hyper::Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", ws_accept(&key))
            .body(Full::new(Bytes::new()))
            .unwrap();
        return Ok(resp);
    }
    if let Some(ms) = req.uri().query().and_then(|q| q.strip_prefix("slow_ms=")).and_then(|n| n.parse().ok())
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let mut body = req.into_body();
    let mut buf = Vec::new();
    let mut complete = true;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    st.bytes_in.fetch_add(d.len(), Ordering::SeqCst);
                    buf.extend_from_slice(&d);
                }
            }
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    let seen = Seen { conn, method, path: path.clone(), headers, body: buf, complete };
    st.seen.lock().unwrap().push(seen.clone());
    if let Some(n) = path.strip_prefix("/download?n=").and_then(|n| n.parse::<usize>().ok()) {
        let data: Vec<u8> = (0..n).map(pattern).collect();
        let resp = hyper::Response::builder()
            .header("content-type", "application/octet-stream")
            .header("x-upstream", "echo")
            .body(Full::new(Bytes::from(data)))
            .unwrap();
        return Ok(resp);
    }
    let mut names = serde_json::Map::new();
    for (k, v) in &seen.headers {
        let e = names.entry(k.to_ascii_lowercase()).or_insert_with(|| json!([]));
        if let Some(a) = e.as_array_mut() {
            a.push(json!(v));
        }
    }
    let mut answer = json!({
        "conn": conn,
        "method": seen.method,
        "path": seen.path,
        "headers": names,
        "bodyLength": seen.body.len(),
        "bodySha256": sha256_hex(&seen.body),
        "complete": complete,
    });
    if seen.body.len() < 64 * 1024 {
        answer["body"] = json!(String::from_utf8_lossy(&seen.body));
    }
    if path.starts_with("/rest/api/2/search") {
        let jql = serde_json::from_slice::<Value>(&seen.body)
            .ok()
            .and_then(|v| v["jql"].as_str().map(str::to_string));
        answer["startAt"] = json!(0);
        answer["maxResults"] = json!(50);
        answer["total"] = json!(0);
        answer["issues"] = json!([]);
        answer["searchedBy"] = json!(seen.one("x-ausername"));
        answer["jql"] = json!(jql);
    }
    let mut resp = hyper::Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", "echo")
        .header("vary", "Accept-Encoding");
    if path.starts_with("/public") {
        resp = resp.header("cache-control", "public, max-age=3600");
    }
    if path.starts_with("/cors-star") {
        resp = resp.header("access-control-allow-origin", "*");
    }
    if path.starts_with("/app-cookies") {
        // A servlet app sets its own JSESSIONID; this one tries all of authd's names.
        for c in
            ["JSESSIONID=fromapp; Path=/", "seraph.rememberme.cookie=x", "atlassian.xsrf.token=y", "app=1"]
        {
            resp = resp.header("set-cookie", c);
        }
    }
    Ok(resp.body(Full::new(Bytes::from(answer.to_string()))).unwrap())
}

/// Echoes WebSocket frames (text, binary, ping as pong) until a close frame.
async fn ws_echo<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    loop {
        let Ok((opcode, _, payload)) = read_frame(&mut io).await else { return };
        let (reply, last) = match opcode {
            0x8 => (0x8, true),
            0x9 => (0xA, false),
            op => (op, false),
        };
        if io.write_all(&ws_frame(reply, &payload, None)).await.is_err() || last {
            let _ = io.flush().await;
            return;
        }
        let _ = io.flush().await;
    }
}

/// One WebSocket frame (FIN set), masked with `mask` if given.
pub fn ws_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Reads one WebSocket frame: (opcode, whether it was masked, unmasked payload).
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, bool, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut key = [0u8; 4];
    if masked {
        r.read_exact(&mut key).await?;
    }
    let mut payload = vec![0u8; usize::try_from(len).unwrap()];
    r.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Ok((head[0] & 0x0f, masked, payload))
}

/// The app, and authd in front of it with `extra` flags.
pub fn start_pair(extra: &[&str]) -> (EchoApp, Server) {
    let app = EchoApp::start();
    let mut args = vec!["--upstream", app.url.as_str()];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    (app, s)
}

// ---------------------------------------------------------------------------
// Talking to authd.

/// Who a request is from.
#[derive(Clone, Copy, Debug)]
enum As<'a> {
    Anonymous,
    /// A `Cookie` header, sent as is.
    Cookie(&'a str),
    /// `Authorization: Basic user:secret`.
    Basic(&'a str, &'a str),
}

/// A request to authd as `who`, with an optional JSON body.
async fn call(s: &Server, method: &str, path: &str, who: As<'_>, body: Option<&Value>) -> reqwest::Response {
    let mut b = s.bare_client().request(method.parse().unwrap(), s.at(path));
    b = match who {
        As::Anonymous => b,
        As::Cookie(c) => b.header("cookie", c),
        As::Basic(u, p) => b.basic_auth(u, Some(p)),
    };
    if let Some(v) = body {
        b = b.json(v);
    }
    b.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The JSON body of `r`, asserting its status first.
async fn json_of(r: reqwest::Response, status: u16, what: &str) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{what}: {text}");
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

/// `JSESSIONID=<id>`.
fn sid(id: &str) -> String {
    format!("{SESSION}={id}")
}

/// Makes an API token with `authd token add NAME --label LABEL`; returns (id, token).
fn cli_token(s: &Server, user: &str, label: &str) -> (String, String) {
    let out = s.authd(&["token", "add", user, "--label", label], None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "token add: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let token = stdout.lines().last().unwrap_or("").trim().to_string();
    assert!(token.starts_with("authd_") && token.len() > 40, "the last line is not a token: {stdout}");
    let list = cli_tokens(s, user);
    let id = list
        .iter()
        .find(|t| t["label"] == label)
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("token {label} not listed: {list:?}"))
        .to_string();
    assert!(stdout.contains(&id), "token add did not name the id {id}: {stdout}");
    (id, token)
}

/// `authd token list NAME --json`.
fn cli_tokens(s: &Server, user: &str) -> Vec<Value> {
    let out = s.authd(&["token", "list", user, "--json"], None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "token list: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str::<Value>(&stdout)
        .unwrap_or_else(|e| panic!("token list --json is not JSON ({e}): {stdout}"))
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("token list --json is not an array: {stdout}"))
}

/// Whether the session `id` is alive (checked without sliding it).
async fn alive(s: &Server, id: &str) -> bool {
    session_alive(s, id).await
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads a response head; returns (status, headers, bytes read past the head).
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).await.unwrap_or(0);
        assert!(n > 0, "the connection closed before a response head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let rest = buf[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, rest)
}

/// Reads one whole HTTP/1.1 response (Content-Length, chunked, or to the end).
pub async fn read_response<S: AsyncRead + Unpin>(s: &mut S) -> RawResponse {
    let (status, headers, mut body) = read_head(s).await;
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut chunk = vec![0u8; 65536];
        while body.len() < len {
            let n = s.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "the body ended early");
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(len);
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut raw = body;
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            // Parse as many chunks as are complete.
            let mut pos = 0;
            let mut done = false;
            while let Some(nl) = raw[pos..].windows(2).position(|w| w == b"\r\n") {
                let size_text = String::from_utf8_lossy(&raw[pos..pos + nl]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
                let start = pos + nl + 2;
                if size == 0 {
                    done = true;
                    break;
                }
                if raw.len() < start + size + 2 {
                    break;
                }
                out.extend_from_slice(&raw[start..start + size]);
                pos = start + size + 2;
            }
            raw.drain(..pos);
            if done {
                break;
            }
            let n = s.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "the chunked body ended early");
            raw.extend_from_slice(&chunk[..n]);
        }
        body = out;
    } else {
        let _ = s.read_to_end(&mut body).await;
    }
    RawResponse { status, headers, body }
}

/// One chunk of a chunked request body.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// Polls `cond` every 20 ms until it holds, or panics with `what` after `secs`.
async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} (waited {secs} s)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that no `Access-Control-Allow-Origin` of `r` is `*`.
fn never_star(r: &reqwest::Response, what: &str) {
    for v in r.headers().get_all("access-control-allow-origin") {
        assert_ne!(v.to_str().unwrap().trim(), "*", "{what}: Access-Control-Allow-Origin: *");
    }
}

fn vary_has_origin(r: &reqwest::Response) -> bool {
    r.headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("origin")))
}

const FORM: &str = "application/x-www-form-urlencoded";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

// ---------------------------------------------------------------------------
// Forward auth.

#[tokio::test]
async fn verify_answers_200_with_the_identity_or_401_with_a_login_url() {
    let s = Server::start(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let verify = "/rest/authd/1/verify";

    // Anonymous: 401, Jira's error shape, a login URL, no identity.
    let r = call(&s, "GET", verify, As::Anonymous, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-authd-login-url").as_deref(), Some(format!("{}/login.jsp", s.url).as_str()));
    assert!(header(&r, "x-authd-user").is_none());
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
    assert_jira_error(&r.json().await.unwrap());

    // The login URL leads back to the original path (nginx's X-Original-URI,
    // Traefik's and Caddy's X-Forwarded-Uri, which wins when both are sent).
    let back = format!("{}/login.jsp?os_destination=%2Fapp%2Fissue%3Fid%3D7%26tab%3Dall", s.url);
    for (name, value) in
        [("x-original-uri", "/app/issue?id=7&tab=all"), ("x-forwarded-uri", "/app/issue?id=7&tab=all")]
    {
        let r = s.bare_client().get(s.at(verify)).header(name, value).send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(header(&r, "x-authd-login-url").as_deref(), Some(back.as_str()), "{name}");
    }
    let r = s
        .bare_client()
        .get(s.at(verify))
        .header("x-forwarded-uri", "/app/issue?id=7&tab=all")
        .header("x-original-uri", "/elsewhere")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-authd-login-url").as_deref(), Some(back.as_str()), "X-Forwarded-Uri first");
    // Not an open redirect: a destination that is not a local path is dropped.
    for evil in ["https://evil.example/", "//evil.example/x", "/\\evil.example"] {
        let r = s.bare_client().get(s.at(verify)).header("x-forwarded-uri", evil).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            header(&r, "x-authd-login-url").as_deref(),
            Some(format!("{}/login.jsp", s.url).as_str()),
            "{evil}"
        );
    }

    // Traefik calls authd by its own address and names the browser's host in
    // X-Forwarded-Host/-Proto: the login URL is on that host. A value that
    // is not a plain host and port is ignored.
    for (host, proto, base) in [
        ("app.example:8443", Some("https"), "https://app.example:8443".to_string()),
        ("app.example", Some("http"), "http://app.example".to_string()),
        ("app.example", None, "https://app.example".to_string()),
        ("app.example/evil", Some("https"), s.url.clone()),
        ("a.example, b.example", Some("https"), s.url.clone()),
    ] {
        let mut b = s
            .bare_client()
            .get(s.at(verify))
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", "/x");
        if let Some(p) = proto {
            b = b.header("x-forwarded-proto", p);
        }
        let r = b.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let want = format!("{base}/login.jsp?os_destination=%2Fx");
        assert_eq!(header(&r, "x-authd-login-url").as_deref(), Some(want.as_str()), "{host} {proto:?}");
    }

    // Logged in: 200 with the identity headers.
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    let r = call(&s, "GET", verify, As::Cookie(&sid(&admin)), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-authd-user").as_deref(), Some("admin"));
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"));
    assert_eq!(header(&r, "x-authd-roles").as_deref(), Some("admin"));
    assert!(header(&r, "x-asessionid").is_some_and(|h| h.len() == 12));
    let bob = login_id(&s, "bob", "bob-password-1").await;
    let r = call(&s, "GET", verify, As::Cookie(&sid(&bob)), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-authd-user").as_deref(), Some("bob"));
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("bob"));
    let roles = header(&r, "x-authd-roles").expect("X-Authd-Roles for a user without roles");
    assert!(!roles.contains("admin"), "{roles}");
    // HEAD works too (some proxies check with it).
    let r = s.bare_client().head(s.at(verify)).header("cookie", sid(&bob)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-authd-user").as_deref(), Some("bob"));

    // An API token: 200, and no session, no cookie.
    let (_, token) = cli_token(&s, "bob", "verify");
    let r = call(&s, "GET", verify, As::Basic("bob", &token), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-authd-user").as_deref(), Some("bob"));
    assert!(set_cookies(&r).is_empty(), "{:?}", set_cookies(&r));
    assert!(header(&r, "x-asessionid").is_none());

    // Stale cookies and wrong tokens: 401.
    let r =
        call(&s, "GET", verify, As::Cookie(&sid("bm90LWEtcmVhbC1zZXNzaW9uLWlkLWF0LWFsbC14eHh4eHg")), None)
            .await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "x-authd-login-url").is_some());
    let r = call(&s, "GET", verify, As::Basic("bob", "bob-password-1"), None).await;
    assert_eq!(r.status(), 401, "a password is not an API token");
    let r = call(&s, "GET", verify, As::Basic("admin", &token), None).await;
    assert_eq!(r.status(), 401, "bob's token does not work for admin");
    let r = call(&s, "DELETE", "/rest/auth/1/session", As::Cookie(&sid(&bob)), None).await;
    assert_eq!(r.status(), 204);
    let r = call(&s, "GET", verify, As::Cookie(&sid(&bob)), None).await;
    assert_eq!(r.status(), 401, "after logout");
    assert_jira_error(&r.json().await.unwrap());
}

#[tokio::test]
async fn verify_honours_the_forwarded_method_and_refuses_unsafe_foreign_origins() {
    let s = Server::start(&["--cors-origin", "https://app.example"]);
    let admin = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    let own = s.url.clone();
    // (forwarded method, extra headers, expected status)
    type Row<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);
    let rows: Vec<Row> = vec![
        ("GET", vec![("origin", "https://evil.example")], 200),
        ("HEAD", vec![("sec-fetch-site", "cross-site")], 200),
        ("POST", vec![], 200),
        ("POST", vec![("origin", &own)], 200),
        ("POST", vec![("origin", &own), ("sec-fetch-site", "same-origin")], 200),
        ("POST", vec![("origin", "https://app.example"), ("sec-fetch-site", "cross-site")], 200),
        ("POST", vec![("origin", "https://evil.example")], 403),
        ("PUT", vec![("origin", "null")], 403),
        ("DELETE", vec![("sec-fetch-site", "cross-site")], 403),
        ("PATCH", vec![("origin", &own), ("sec-fetch-site", "cross-site")], 403),
        // Not a method at all: taken for an unsafe one, never for a GET.
        ("FOO BAR", vec![("origin", "https://evil.example")], 403),
        ("", vec![("origin", "https://evil.example")], 403),
    ];
    let mut failures = Vec::new();
    for (method, headers, want) in rows {
        let mut b = s
            .bare_client()
            .get(s.at("/rest/authd/1/verify"))
            .header("cookie", &admin)
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", "/app/thing");
        for (k, v) in &headers {
            b = b.header(*k, *v);
        }
        let r = b.send().await.unwrap();
        let got = r.status().as_u16();
        let user = header(&r, "x-authd-user");
        let text = r.text().await.unwrap();
        if got != want {
            failures.push(format!("{method} {headers:?}: expected {want}, got {got} {text}"));
        } else if want == 403 && (!text.contains("XSRF check failed") || user.is_some()) {
            failures
                .push(format!("{method} {headers:?}: 403 without the XSRF message, or with a user: {text}"));
        }
    }
    // Anonymous, unsafe and foreign: refused before anything else.
    let r = s
        .bare_client()
        .get(s.at("/rest/authd/1/verify"))
        .header("x-forwarded-method", "POST")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    if r.status() != 403 {
        failures.push(format!("anonymous foreign POST: {}", r.status()));
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Traefik's ForwardAuth (and nginx without a `Host` override) asks authd at
/// authd's own address, and describes the original request in
/// `X-Forwarded-Proto`/`X-Forwarded-Host`/`X-Forwarded-Method`/`X-Forwarded-Uri`,
/// passing the browser's `Origin` on. A browser's same-origin form post to
/// the protected app must pass (SPEC §9: usable by Traefik ForwardAuth);
/// a cross-site one must not.
#[tokio::test]
async fn verify_judges_the_origin_against_the_forwarded_host_as_traefik_sends_it() {
    let s = Server::start(&[]);
    let admin = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    let ask = |origin: &'static str, site: &'static str| {
        s.bare_client()
            .get(s.at("/rest/authd/1/verify"))
            .header("cookie", &admin)
            .header("x-forwarded-method", "POST")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "app.example.com")
            .header("x-forwarded-uri", "/secure/save")
            .header("x-forwarded-for", "203.0.113.9")
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .send()
    };
    let r = ask("https://app.example.com", "same-origin").await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "a same-origin POST to the protected app was refused by forward auth: {text}");
    let r = ask("https://evil.example", "cross-site").await.unwrap();
    assert_eq!(r.status(), 403, "a cross-site POST passed forward auth");
    let r = ask("https://evil.example", "same-site").await.unwrap();
    assert_eq!(r.status(), 403, "a foreign Origin passed forward auth");
}

#[tokio::test]
async fn verify_never_logs_in_by_remember_me_nor_sets_its_cookie() {
    let s = Server::start(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let remember_only = format!("{REMEMBER}={}", jar.remember.as_ref().unwrap());
    let sessions_before = call(&s, "GET", "/rest/authd/1/sessions", As::Cookie(&jar.header()), None).await;
    let before = json_of(sessions_before, 200, "own sessions").await.as_array().unwrap().len();

    // Only the remember-me cookie: 401, and nothing is set or rotated.
    for _ in 0..2 {
        let r = call(&s, "GET", "/rest/authd/1/verify", As::Cookie(&remember_only), None).await;
        assert_eq!(r.status(), 401);
        assert!(header(&r, "x-authd-user").is_none());
        assert!(
            set_cookie(&r, REMEMBER).is_none(),
            "verify touched the remember-me cookie: {:?}",
            set_cookies(&r)
        );
        assert!(set_cookie(&r, SESSION).is_none(), "verify started a session: {:?}", set_cookies(&r));
    }
    // With the session too: 200, and still no remember-me cookie.
    let r = call(&s, "GET", "/rest/authd/1/verify", As::Cookie(&jar.header()), None).await;
    assert_eq!(r.status(), 200);
    assert!(set_cookie(&r, REMEMBER).is_none(), "{:?}", set_cookies(&r));
    assert!(set_cookie(&r, SESSION).is_none(), "{:?}", set_cookies(&r));
    let after = call(&s, "GET", "/rest/authd/1/sessions", As::Cookie(&jar.header()), None).await;
    assert_eq!(
        json_of(after, 200, "own sessions").await.as_array().unwrap().len(),
        before,
        "verify made a session"
    );
    // The series was not rotated behind the browser's back: on authd's own
    // API the same cookie still logs in (a rotated one would count as theft).
    let r = whoami(&s, &remember_only).await;
    assert_eq!(r.status(), 200, "the remember-me cookie stopped working after verify");
    assert!(set_value(&r, SESSION).is_some());
    assert!(set_value(&r, REMEMBER).is_some_and(|v| &v != jar.remember.as_ref().unwrap()));
}

// ---------------------------------------------------------------------------
// The reverse proxy.

#[tokio::test]
async fn the_proxy_forwards_every_path_that_is_not_authds_own() {
    let (app, s) = start_pair(&[]);
    let admin = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/secure/Dashboard.jspa?selectPageId=1&x=%20y"),
        ("POST", "/rest/api/2/search"),
        ("PUT", "/rest/api/2/issue/KEY-1"),
        ("PATCH", "/rest/api/2/issue/KEY-1"),
        ("DELETE", "/rest/api/2/issue/KEY-1"),
        ("GET", "/rest/api/2/issue/KEY-1?expand=names"),
        ("GET", "/app/login.jsp"),
        ("GET", "/rest/api/3/myself"),
        ("GET", "/favicon.ico"),
    ] {
        let r = s
            .bare_client()
            .request(method.parse().unwrap(), s.at(path))
            .header("cookie", &admin)
            .header("content-type", "application/json")
            .body("{\"k\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method} {path}");
        assert_eq!(header(&r, "x-upstream").as_deref(), Some("echo"), "{method} {path}");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"), "{method} {path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["method"], method);
        assert_eq!(v["path"], path);
        assert_eq!(v["body"], "{\"k\":1}", "{method} {path}");
        assert_eq!(v["headers"]["x-authd-user"], json!(["admin"]), "{method} {path}");
    }
    // authd's own paths are answered by authd and never reach the app.
    for path in [
        "/rest/api/2/serverInfo",
        "/rest/api/latest/myself",
        "/rest/auth/1/session",
        "/rest/authd/1/sessions",
        "/login.jsp",
        "/healthz",
        "/metrics",
    ] {
        let r = call(&s, "GET", path, As::Cookie(&admin), None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(header(&r, "x-upstream").is_none(), "{path} went to the app");
        assert!(app.seen_at(path).is_empty(), "{path} went to the app");
    }
}

#[tokio::test]
async fn the_proxy_streams_large_bodies_both_ways() {
    let (app, s) = start_pair(&[]);
    // 800 KiB up, with a length, over HTTP/2.
    let big: Vec<u8> = (0..800 * 1024).map(|i: usize| (i.wrapping_mul(31) % 256) as u8).collect();
    let r = s
        .bare_client()
        .post(s.at("/upload/h2"))
        .header("content-type", "application/octet-stream")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let v = json_of(r, 200, "800 KiB upload").await;
    assert_eq!(v["bodyLength"], big.len());
    assert_eq!(v["bodySha256"], sha256_hex(&big));
    assert_eq!(app.last_at("/upload/h2").body, big);

    // 800 KiB up, chunked over HTTP/1.1: the app gets the first chunk before
    // the client has sent the rest, so authd streams rather than buffers.
    let mut t = tls_h1(s.port, &s.cert_pem()).await;
    let head = format!(
        "POST /upload/chunked HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.port
    );
    t.write_all(head.as_bytes()).await.unwrap();
    let first = 64 * 1024;
    t.write_all(&chunk(&big[..first])).await.unwrap();
    t.flush().await.unwrap();
    wait_for(
        10,
        "the app did not get the first chunk before the rest was sent: the body was not streamed",
        || app.bytes_in() >= big.len() + first,
    )
    .await;
    for part in big[first..].chunks(100 * 1024) {
        t.write_all(&chunk(part)).await.unwrap();
    }
    t.write_all(b"0\r\n\r\n").await.unwrap();
    t.flush().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), read_response(&mut t)).await.expect("no answer");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["bodyLength"], big.len());
    assert_eq!(v["bodySha256"], sha256_hex(&big));
    let seen = app.last_at("/upload/chunked");
    assert!(seen.complete);
    assert_eq!(seen.body, big);

    // 2 MiB down (more than --max-body, which limits only what goes up).
    let n = 2 * 1024 * 1024;
    let r = call(&s, "GET", &format!("/download?n={n}"), As::Anonymous, None).await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), n);
    assert!(body.iter().enumerate().all(|(i, b)| *b == pattern(i)), "the download changed on the way");

    // The default --max-body is 1 MiB.
    let r =
        s.bare_client().post(s.at("/upload/too-big")).body(vec![b'x'; 1024 * 1024 + 1]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let r =
        s.bare_client().post(s.at("/upload/just-fits")).body(vec![b'x'; 1024 * 1024]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(app.seen_at("/upload/too-big").is_empty());
}

#[tokio::test]
async fn max_body_is_enforced_for_declared_and_chunked_bodies() {
    let (app, s) = start_pair(&["--max-body", "1000"]);
    // At the limit: forwarded.
    let r = s.bare_client().post(s.at("/mb/at-limit")).body(vec![b'a'; 1000]).send().await.unwrap();
    assert_eq!(json_of(r, 200, "1000 bytes").await["bodyLength"], 1000);
    // One byte over, with Content-Length: 413 before the app hears of it.
    let r = s.bare_client().post(s.at("/mb/declared")).body(vec![b'a'; 1001]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(header(&r, "x-upstream").is_none());
    assert_jira_error(&r.json().await.unwrap());
    assert!(app.seen_at("/mb/declared").is_empty(), "the app got the oversized request");
    // A logged-in form (buffered to find its atl_token): 413 too.
    let jar = api_login(&s, "admin", &s.admin_pw(), false).await;
    let r = s
        .bare_client()
        .post(s.at("/mb/form"))
        .header("cookie", jar.header())
        .header("content-type", FORM)
        .body(format!("atl_token={}&x={}", jar.xsrf.as_ref().unwrap(), "a".repeat(2000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(app.seen_at("/mb/form").is_empty());
    // Chunked, no length declared: cut off at the limit, 413.
    let mut t = tls_h1(s.port, &s.cert_pem()).await;
    let head = format!(
        "POST /mb/chunked HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.port
    );
    let mut req = head.into_bytes();
    for _ in 0..3 {
        req.extend_from_slice(&chunk(&[b'c'; 600]));
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let _ = t.write_all(&req).await;
    let _ = t.flush().await;
    let r = tokio::time::timeout(Duration::from_secs(10), read_response(&mut t)).await.expect("no answer");
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-upstream").is_none());
    assert!(
        app.seen_at("/mb/chunked").iter().all(|seen| !seen.complete && seen.body.len() <= 1000),
        "the app got more than --max-body: {:?}",
        app.seen_at("/mb/chunked").iter().map(|x| (x.complete, x.body.len())).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_malformed_chunked_body_through_the_proxy_is_the_clients_400() {
    // SPEC §10: malformed input gets a clear 4xx; the app is not to blame (502).
    let (_app, s) = start_pair(&[]);
    for (what, body) in [
        ("a chunk size that is no number", &b"zz\r\nabc\r\n0\r\n\r\n"[..]),
        ("a good chunk, then a bad size", &b"5\r\nabcde\r\nzz\r\n"[..]),
    ] {
        let mut t = tls_h1(s.port, &s.cert_pem()).await;
        let mut req = format!(
            "POST /upload/bad HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            s.port
        )
        .into_bytes();
        req.extend_from_slice(body);
        let _ = t.write_all(&req).await;
        let _ = t.flush().await;
        let r =
            tokio::time::timeout(Duration::from_secs(10), read_response(&mut t)).await.expect("no answer");
        assert_eq!(r.status, 400, "{what}: {}", String::from_utf8_lossy(&r.body));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_jira_error(&body);
    }
}

#[tokio::test]
async fn a_stalled_upload_through_the_proxy_is_a_408_within_the_body_timeout() {
    // SPEC §10: a slow client is refused, and holds neither its connection
    // nor one to the app: after 10 s of silence the upload is abandoned.
    let (app, s) = start_pair(&[]);
    let mut t = tls_h1(s.port, &s.cert_pem()).await;
    let head = format!(
        "POST /upload/stalled HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n",
        s.port
    );
    t.write_all(head.as_bytes()).await.unwrap();
    t.write_all(&[b'x'; 1000]).await.unwrap();
    t.flush().await.unwrap();
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(20), read_response(&mut t))
        .await
        .expect("a stalled upload was held for 20 s");
    let took = started.elapsed();
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    assert!(took >= Duration::from_secs(9), "answered after {took:?}, before the body timeout");
    assert_jira_error(&serde_json::from_slice(&r.body).unwrap());
    wait_for(5, "the app to see the upload end", || {
        app.seen_at("/upload/stalled").iter().any(|seen| !seen.complete && seen.body.len() == 1000)
    })
    .await;
}

#[tokio::test]
async fn an_app_answer_carrying_authds_cookies_is_never_cacheable() {
    // SPEC §3: authentication responses carry Cache-Control: no-store, also
    // when the answer is the app's and the app called it public.
    let (_app, s) = start_pair(&["--require-login"]);
    let cache = |r: &reqwest::Response| header(r, "cache-control");
    let get = |cookie: String| {
        let s = &s;
        async move { s.bare_client().get(s.at("/public/page")).header("cookie", cookie).send().await.unwrap() }
    };
    let jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    // Logged in by the remember-me cookie on the app's page: a session ID
    // and a new validator in the answer.
    let remembered = format!("{}={}", REMEMBER, jar.remember.clone().unwrap());
    let r = get(remembered).await;
    assert_eq!(r.status(), 200);
    assert!(set_value(&r, SESSION).is_some() && set_value(&r, REMEMBER).is_some(), "{:?}", set_cookies(&r));
    assert_eq!(cache(&r).as_deref(), Some("no-store"), "the app's public overrode it");
    // No cookie of authd's in the answer: the app's own caching stands.
    let r = get(jar.header()).await;
    assert_eq!(r.status(), 200);
    assert!(set_cookies(&r).is_empty(), "{:?}", set_cookies(&r));
    assert_eq!(cache(&r).as_deref(), Some("public, max-age=3600"));
    // authd's own answers on the proxy route: the 303 and the 401.
    let r = s.bare_client().get(s.at("/public/page")).header("accept", PAGE_ACCEPT).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(cache(&r).as_deref(), Some("no-store"));
    let r = s.bare_client().get(s.at("/public/page")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(cache(&r).as_deref(), Some("no-store"));
}

/// A well-formed session ID that names no session.
const STALE: &str = "c3RhbGUtc2Vzc2lvbi1pZC1ub3QtaW4tdGhlLWRhdGFiYXNlLXh4";

/// What Firefox sends with a page load.
const PAGE_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test]
async fn require_login_sends_browsers_to_the_login_page_and_api_clients_401() {
    let (app, s) = start_pair(&["--require-login"]);
    // A browser loading a page (it asks for HTML): 303 to the login page.
    let r = s
        .bare_client()
        .get(s.at("/app/page?x=1&y=2"))
        .header("user-agent", FIREFOX)
        .header("accept", PAGE_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        header(&r, "location").as_deref(),
        Some("/login.jsp?os_destination=%2Fapp%2Fpage%3Fx%3D1%26y%3D2")
    );
    // So is one submitting a form, or navigating without saying what it accepts.
    let browsers: [(&str, &[(&str, &str)]); 3] = [
        (
            "browser posting a form",
            &[("user-agent", FIREFOX), ("accept", PAGE_ACCEPT), ("content-type", FORM)],
        ),
        ("any client asking for HTML", &[("accept", "text/html")]),
        ("a navigation", &[("user-agent", FIREFOX), ("sec-fetch-mode", "navigate")]),
    ];
    for (what, headers) in browsers {
        let mut b = s.bare_client().post(s.at("/app/form")).body("a=1");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let r = b.send().await.unwrap();
        assert_eq!(r.status(), 303, "{what}");
        assert_eq!(
            header(&r, "location").as_deref(),
            Some("/login.jsp?os_destination=%2Fapp%2Fform"),
            "{what}"
        );
    }
    // API clients: 401 in Jira's shape.
    let api: [(&str, &[(&str, &str)]); 4] = [
        ("curl", &[("user-agent", "curl/8.5.0"), ("accept", "*/*")]),
        ("no user agent, no accept", &[]),
        ("a browser's fetch asking for JSON", &[("user-agent", FIREFOX), ("accept", "application/json")]),
        (
            "a browser posting JSON",
            &[("user-agent", FIREFOX), ("accept", "application/json"), ("content-type", "application/json")],
        ),
    ];
    for (what, headers) in api {
        let mut b = s.bare_client().post(s.at("/app/api")).body("{}");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let r = b.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        assert!(header(&r, "location").is_none(), "{what}");
        assert_jira_error(&r.json().await.unwrap());
    }
    // A stale session cookie is anonymous too.
    let r = s
        .bare_client()
        .get(s.at("/app/page"))
        .header("user-agent", FIREFOX)
        .header("accept", PAGE_ACCEPT)
        .header("cookie", sid(STALE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(deletes(&r, SESSION), "the dead cookie is kept: {:?}", set_cookies(&r));
    // An API client with a dead cookie hears so, as on authd's own routes
    // (SPEC §3), and one with a bad API token that its login failed.
    let r = s.bare_client().get(s.at("/app/api")).header("cookie", sid(STALE)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(deletes(&r, SESSION), "the dead cookie is kept: {:?}", set_cookies(&r));
    let body: Value = r.json().await.unwrap();
    assert!(body["errorMessages"][0].as_str().unwrap().contains("invalid or has expired"), "{body}");
    let r = s.bare_client().get(s.at("/app/api")).bearer_auth(format!("authd_{STALE}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"));
    assert!(app.seen().is_empty(), "an anonymous request reached the app: {:?}", app.seen());
    // authd's own pages stay open, or nobody could log in.
    let r = s
        .bare_client()
        .get(s.at("/login.jsp?os_destination=%2Fapp%2Fpage"))
        .header("user-agent", FIREFOX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = call(&s, "GET", "/rest/api/2/serverInfo", As::Anonymous, None).await;
    assert_eq!(r.status(), 200);
    // Logged in (by cookie or API token): forwarded with the identity.
    let admin = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    let r = s
        .bare_client()
        .get(s.at("/app/page"))
        .header("user-agent", FIREFOX)
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, 200, "logged-in browser").await["headers"]["x-authd-user"], json!(["admin"]));
    let (_, token) = cli_token(&s, "admin", "rl");
    let r = call(&s, "GET", "/app/api", As::Basic("admin", &token), None).await;
    assert_eq!(json_of(r, 200, "API token").await["headers"]["x-authd-user"], json!(["admin"]));
}

#[tokio::test]
async fn x_forwarded_headers_are_added_and_client_copies_replaced() {
    let (app, s) = start_pair(&[]);
    let host = format!("127.0.0.1:{}", s.port);
    let r = call(&s, "GET", "/xf/plain", As::Anonymous, None).await;
    assert_eq!(r.status(), 200);
    let seen = app.last_at("/xf/plain");
    assert_eq!(seen.one("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.one("x-forwarded-host").as_deref(), Some(host.as_str()));
    // A client's own X-Forwarded-For is kept as the start of the chain (the
    // app trusts only what authd appends); Proto and Host are authd's.
    let r = s
        .bare_client()
        .get(s.at("/xf/spoofed"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = app.last_at("/xf/spoofed");
    assert_eq!(seen.one("x-forwarded-for").as_deref(), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.one("x-forwarded-host").as_deref(), Some(host.as_str()));
    // Over HTTP/1.1 too.
    let r = h1_client_for(&s.cert_pem()).get(s.at("/xf/h1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = app.last_at("/xf/h1");
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.one("x-forwarded-host").as_deref(), Some(host.as_str()));
}

#[tokio::test]
async fn the_app_cannot_set_authds_cookies() {
    // A Java app behind authd sets its own JSESSIONID; let through, it would
    // replace the browser's authd session and log the user out.
    let (_app, s) = start_pair(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), false).await;
    let r = s.bare_client().get(s.at("/app-cookies/x")).header("cookie", jar.header()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let set = set_cookies(&r);
    assert!(set.iter().any(|c| c.starts_with("app=1")), "the app's own cookie was dropped: {set:?}");
    for name in ["JSESSIONID=fromapp", "seraph.rememberme.cookie=x", "atlassian.xsrf.token=y"] {
        assert!(!set.iter().any(|c| c.starts_with(name)), "the app set {name}: {set:?}");
    }
    assert!(alive(&s, jar.session.as_ref().unwrap()).await);
}

#[tokio::test]
async fn identity_headers_are_set_by_authd_and_client_copies_stripped() {
    let (app, s) = start_pair(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let spoof = [
        ("X-Authd-User", "admin"),
        ("x-ausername", "admin"),
        ("X-AUSERNAME", "root"),
        ("X-Authd-Roles", "admin"),
        ("X-Authd-Xsrf-Token", "forged"),
        // Lookalikes that CGI-style apps read as the same variable.
        ("X_Authd_User", "admin"),
        ("x_ausername", "admin"),
        ("X-Authd_Roles", "admin"),
        // Other gateways' names for the user, which an app may trust.
        ("Remote-User", "admin"),
        ("Remote-Groups", "admins"),
        ("X-Forwarded-User", "admin"),
        ("X-Remote-User", "admin"),
        ("X-Auth-Request-Email", "admin@example.com"),
        ("Remote_User", "admin"),
    ];
    // Anonymous: none of them reaches the app.
    let r = spoofed(&s, "/id/anon", As::Anonymous, &spoof).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
    let seen = app.last_at("/id/anon");
    for name in [
        "x-authd-user",
        "x-ausername",
        "x-authd-roles",
        "x-authd-xsrf-token",
        "x_authd_user",
        "x_ausername",
        "x-authd_roles",
        "remote-user",
        "remote-groups",
        "x-forwarded-user",
        "x-remote-user",
        "x-auth-request-email",
        "remote_user",
    ] {
        assert!(seen.all(name).is_empty(), "the client's {name} reached the app: {:?}", seen.all(name));
    }
    // `Upgrade` is hop-by-hop even when no `Connection` header names it (HTTP/1.1 only).
    let r =
        h1_client_for(&s.cert_pem()).get(s.at("/id/upgrade")).header("upgrade", "foo").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(app.last_at("/id/upgrade").all("upgrade").is_empty(), "a bare Upgrade header reached the app");
    // Logged in as bob: exactly authd's values.
    let jar = api_login(&s, "bob", "bob-password-1", false).await;
    let r = spoofed(&s, "/id/bob", As::Cookie(&jar.header()), &spoof).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("bob"));
    let seen = app.last_at("/id/bob");
    assert_eq!(seen.one("x-authd-user").as_deref(), Some("bob"));
    assert_eq!(seen.one("x-ausername").as_deref(), Some("bob"));
    assert!(
        seen.one("x-authd-roles").is_some_and(|r| !r.contains("admin")),
        "{:?}",
        seen.all("x-authd-roles")
    );
    assert_eq!(seen.one("x-authd-xsrf-token"), jar.xsrf.clone());
    // By API token: the identity, and no session XSRF token (there is no session).
    let (_, token) = cli_token(&s, "bob", "id");
    let r = spoofed(&s, "/id/token", As::Basic("bob", &token), &spoof).await;
    assert_eq!(r.status(), 200);
    assert!(set_cookies(&r).is_empty(), "{:?}", set_cookies(&r));
    let seen = app.last_at("/id/token");
    assert_eq!(seen.one("x-authd-user").as_deref(), Some("bob"));
    assert_eq!(seen.one("x-ausername").as_deref(), Some("bob"));
    assert!(seen.all("x-authd-xsrf-token").is_empty(), "{:?}", seen.all("x-authd-xsrf-token"));
}

#[tokio::test]
async fn a_name_outside_ascii_is_percent_encoded_in_x_ausername_only() {
    // Jira URL-encodes X-AUSERNAME; X-Authd-User carries the exact UTF-8 name.
    let (app, s) = start_pair(&[]);
    s.add_user("jürgen", "jürgen-password-1", &[]);
    let jar = api_login(&s, "jürgen", "jürgen-password-1", false).await;
    let encoded = "j%C3%BCrgen";
    let (s, jar) = (&s, &jar);
    let get = |path: &'static str| async move {
        let r = s.bare_client().get(s.at(path)).header("cookie", jar.header()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some(encoded), "{path}");
        r
    };
    let body: serde_json::Value = get("/rest/auth/1/session").await.json().await.unwrap();
    assert_eq!(body["name"], "jürgen");
    let r = get("/rest/authd/1/verify").await;
    assert_eq!(r.headers().get("x-authd-user").map(|v| v.as_bytes()), Some("jürgen".as_bytes()));
    get("/id/jurgen").await;
    let seen = app.last_at("/id/jurgen");
    assert_eq!(seen.one("x-ausername").as_deref(), Some(encoded));
    assert_eq!(seen.one("x-authd-user").as_deref(), Some("jürgen"));
}

/// `GET path` as `who`, with extra (spoofed) headers.
async fn spoofed(s: &Server, path: &str, who: As<'_>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut b = s.bare_client().get(s.at(path));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b = match who {
        As::Cookie(c) => b.header("cookie", c),
        As::Basic(u, p) => b.basic_auth(u, Some(p)),
        As::Anonymous => b,
    };
    b.send().await.unwrap()
}

#[tokio::test]
async fn authds_secret_cookies_never_reach_the_app_other_cookies_do() {
    for prefix in ["", "__Host-"] {
        let app = EchoApp::start();
        let mut args = vec!["--upstream", app.url.as_str()];
        if !prefix.is_empty() {
            args.extend(["--cookie-prefix", prefix]);
        }
        let s = Server::start(&args);
        let r = s
            .bare_client()
            .post(s.at("/rest/auth/1/session"))
            .json(&json!({"username": "admin", "password": s.admin_pw(), "rememberMe": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let value = |name: &str| {
            let full = format!("{prefix}{name}");
            set_cookies(&r)
                .into_iter()
                .map(|c| parse_set_cookie(&c))
                .find(|(n, _, _)| *n == full)
                .map(|(_, v, _)| v)
                .unwrap_or_else(|| panic!("no {full} cookie"))
        };
        let (session, remember, xsrf) = (value(SESSION), value(REMEMBER), value(XSRF));
        let cookie = format!(
            "theme=dark; {prefix}{SESSION}={session}; app_session=abc; {prefix}{REMEMBER}={remember}; {prefix}{XSRF}={xsrf}; lang=en"
        );
        for path in ["/c/get", "/c/stale"] {
            let cookie = if path == "/c/stale" {
                // Unknown secrets are not passed on either.
                cookie.replace(&session, "c3RhbGUtc2Vzc2lvbi1pZC1ub3QtaW4tdGhlLWRhdGFiYXNlLXh4")
            } else {
                cookie.clone()
            };
            let r = call(&s, "GET", path, As::Cookie(&cookie), None).await;
            assert_eq!(r.status(), 200, "{prefix}{path}");
            let seen = app.last_at(path);
            let got = seen.all("cookie").join("; ");
            for kept in ["theme=dark", "app_session=abc", "lang=en", &format!("{prefix}{XSRF}={xsrf}")] {
                assert!(got.contains(kept), "{prefix}{path}: {kept} did not reach the app: {got}");
            }
            for secret in [format!("{prefix}{SESSION}="), format!("{prefix}{REMEMBER}=")] {
                assert!(!got.contains(&secret), "{prefix}{path}: {secret} reached the app: {got}");
            }
            for (k, v) in &seen.headers {
                assert!(
                    !v.contains(&session) && !v.contains(&remember),
                    "{prefix}{path}: a secret reached the app in {k}: {v}"
                );
            }
        }
    }
}

/// The app's own cookies reach it as the browser sent them: bytes outside
/// ASCII (which browsers send as UTF-8) and quotes included, whatever
/// authd takes out.
#[tokio::test]
async fn the_apps_cookies_reach_it_byte_for_byte() {
    let (app, s) = start_pair(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), false).await;
    let session = jar.session.as_ref().unwrap();
    // authd's own cookie behind a no-break space, which its parser trims
    // (as `str::trim` does): it logs the request in and must not pass.
    let cookie = format!("name=Jos\u{e9}; \u{a0}{SESSION}={session}; quoted=\"a b\"; plain=1");
    let mut t = tls_h1(s.port, &s.cert_pem()).await;
    let req = format!(
        "GET /c/bytes HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
        s.port
    );
    t.write_all(req.as_bytes()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), read_response(&mut t)).await.expect("no answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ausername"), Some("admin"), "the session cookie beside them was not read");
    let seen = app.last_at("/c/bytes");
    assert_eq!(seen.all("cookie"), ["name=Jos\u{e9}; quoted=\"a b\"; plain=1"]);
}

/// Browsers speaking HTTP/2 send each cookie as a header field of its own
/// (RFC 9113 §8.2.3); on the way to the app over HTTP/1.1 they must become
/// one `Cookie` header again, still without authd's secrets.
#[tokio::test]
async fn cookies_split_over_http2_reach_the_app_as_one_header() {
    let (app, s) = start_pair(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let r = s
        .bare_client()
        .get(s.at("/c/h2"))
        .header("cookie", "theme=dark")
        .header("cookie", format!("{SESSION}={}", jar.session.as_ref().unwrap()))
        .header("cookie", "app_session=abc")
        .header("cookie", format!("{REMEMBER}={}", jar.remember.as_ref().unwrap()))
        .header("cookie", format!("{XSRF}={}", jar.xsrf.as_ref().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"), "the split session cookie was not read");
    let seen = app.last_at("/c/h2");
    let cookies = seen.all("cookie");
    assert_eq!(
        cookies,
        [format!("theme=dark; app_session=abc; {XSRF}={}", jar.xsrf.as_ref().unwrap())],
        "the app must get one Cookie header, in order, without authd's secrets"
    );
}

#[tokio::test]
async fn the_proxy_keeps_connections_to_the_app_alive() {
    let (app, s) = start_pair(&[]);
    let c = s.client();
    let requests = 10;
    for i in 0..requests {
        let r = c.get(s.at(&format!("/ka/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let seen = app.seen();
    assert_eq!(seen.len(), requests);
    let conns = app.connections();
    let most = (1..=conns).map(|c| seen.iter().filter(|x| x.conn == c).count()).max().unwrap_or(0);
    assert!(
        conns <= 3 && most >= 4,
        "{requests} sequential requests used {conns} connections to the app (at most {most} on one): no keep-alive"
    );
}

/// The sample `Sec-WebSocket-Key` of RFC 6455 §1.3.
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends a WebSocket handshake for `/ws/echo?room=1` through authd as the
/// session `id` on a new HTTP/1.1 connection (retrying a refused handshake
/// for up to 5 s); returns the connection and the
/// answer's status, headers and any bytes read past its head.
pub async fn websocket(
    s: &Server,
    id: &str,
) -> (tokio_rustls::client::TlsStream<tokio::net::TcpStream>, u16, Vec<(String, String)>, Vec<u8>) {
    let mut t = tls_h1_when_free(s).await;
    let req = format!(
        "GET /ws/echo?room=1 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\nOrigin: {}\r\nCookie: {}\r\n\r\n",
        s.port,
        s.url,
        sid(id)
    );
    t.write_all(req.as_bytes()).await.unwrap();
    t.flush().await.unwrap();
    let (status, headers, rest) =
        tokio::time::timeout(Duration::from_secs(10), read_head(&mut t)).await.expect("no handshake answer");
    (t, status, headers, rest)
}

#[tokio::test]
async fn websocket_upgrade_passes_through_end_to_end() {
    let (app, s) = start_pair(&[]);
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    let (mut t, status, headers, rest) = websocket(&s, &admin).await;
    let key = WS_KEY;
    let h = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(status, 101, "{headers:?}");
    assert!(h("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")), "{headers:?}");
    assert!(h("connection").is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")), "{headers:?}");
    assert_eq!(h("sec-websocket-accept").as_deref(), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_eq!(h("x-ausername").as_deref(), Some("admin"));
    assert!(rest.is_empty(), "bytes after the handshake: {rest:?}");
    let seen = app.last_at("/ws/echo?room=1");
    assert_eq!(seen.one("x-authd-user").as_deref(), Some("admin"));
    assert_eq!(seen.one("sec-websocket-key").as_deref(), Some(key));
    assert!(!seen.all("cookie").join(";").contains(SESSION));

    for (i, text) in ["hello through authd", &"x".repeat(300)].iter().enumerate() {
        t.write_all(&ws_frame(0x1, text.as_bytes(), Some([0x12, 0x34, 0x56, i as u8]))).await.unwrap();
        t.flush().await.unwrap();
        let (opcode, masked, payload) = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut t))
            .await
            .expect("no echo")
            .unwrap();
        assert_eq!(opcode, 0x1);
        assert!(!masked, "server frames are not masked");
        assert_eq!(String::from_utf8(payload).unwrap(), *text);
    }
    t.write_all(&ws_frame(0x8, &[0x03, 0xe8], Some([1, 2, 3, 4]))).await.unwrap();
    t.flush().await.unwrap();
    let (opcode, _, _) =
        tokio::time::timeout(Duration::from_secs(10), read_frame(&mut t)).await.expect("no close").unwrap();
    assert_eq!(opcode, 0x8);
}

#[tokio::test]
async fn an_app_that_does_not_answer_is_a_502() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Server::start(&["--upstream", &format!("http://127.0.0.1:{port}")]);
    let r = call(&s, "GET", "/app", As::Anonymous, None).await;
    assert_eq!(r.status(), 502);
    assert_jira_error(&r.json().await.unwrap());
    let r = call(&s, "GET", "/healthz", As::Anonymous, None).await;
    assert_eq!(r.status(), 200, "authd's own paths do not need the app");
}

/// An app that takes the request and never answers: 504 once
/// `--upstream-timeout` has passed, and authd goes on serving.
#[tokio::test]
async fn an_app_that_never_answers_is_a_504_after_the_upstream_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn); // read nothing, answer nothing, close nothing
        }
    });
    let s = Server::start(&["--upstream", &format!("http://127.0.0.1:{port}"), "--upstream-timeout", "1s"]);
    let started = Instant::now();
    let r = call(&s, "GET", "/app/slow", As::Anonymous, None).await;
    let took = started.elapsed();
    assert_eq!(r.status(), 504);
    assert_jira_error(&r.json().await.unwrap());
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(8), "{took:?}");
    let r = call(&s, "GET", "/healthz", As::Anonymous, None).await;
    assert_eq!(r.status(), 200);
    held.abort();

    // The time starts once the request is all sent: a client that takes
    // longer than that to upload gets the app's prompt answer.
    let (app, s) = start_pair(&["--upstream-timeout", "1s"]);
    let mut t = tls_h1(s.port, &s.cert_pem()).await;
    let head = "POST /app/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
                Content-Length: 6\r\nConnection: close\r\n\r\n";
    t.write_all(head.as_bytes()).await.unwrap();
    for part in [&b"abc"[..], b"def"] {
        tokio::time::sleep(Duration::from_millis(800)).await;
        t.write_all(part).await.unwrap();
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), t.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(app.last_at("/app/upload").body, b"abcdef");
}

/// A HEAD through the proxy keeps the app's headers: an app that answers
/// its GET in chunks has no length for authd to invent (hyper's client
/// reports an empty body for every HEAD).
#[tokio::test]
async fn a_proxied_head_gets_no_made_up_content_length() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            let body = if head.starts_with(b"HEAD") { "" } else { "5\r\nhello\r\n0\r\n\r\n" };
            let _ = conn.write_all(format!("{chunked}{body}").as_bytes());
        }
    });
    let s = Server::start(&["--upstream", &format!("http://127.0.0.1:{port}")]);
    for (proto, c) in [("HTTP/1.1", h1_client_for(&s.cert_pem())), ("HTTP/2", s.bare_client())] {
        let r = c.get(s.at("/chunked")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "hello", "{proto}");
        let r = c.head(s.at("/chunked")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{proto}");
        assert_eq!(header(&r, "content-length"), None, "{proto}: a length the app never gave");
    }
}

// ---------------------------------------------------------------------------
// API tokens.

#[tokio::test]
async fn api_tokens_from_the_cli_authenticate_one_request_without_a_session() {
    // A data dir of the test's own, so it outlives the server for the offline part.
    let keep = tempfile::tempdir().unwrap();
    let data = keep.path().join("db");
    let app = EchoApp::start();
    let s = Server::start_in(&data, &["--upstream", &app.url]);
    s.add_user("bob", "bob-password-1", &["--email", "Bob@Example.com"]);
    s.add_user("carol", "carol-password-1", &["--email", "carol@example.com"]);
    // Made through the running server's admin API: shown once, on the last line.
    let (id, token) = cli_token(&s, "bob", "deploy script");
    let listed = cli_tokens(&s, "bob");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["user"], "bob");
    assert_eq!(listed[0]["label"], "deploy script");
    assert!(listed[0].get("token").is_none(), "token list shows the token: {listed:?}");
    let table = s.authd(&["token", "list", "bob"], None);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains(&id) && table.contains("deploy script"), "{table}");
    assert!(!table.contains(&token) && !table.contains(&token[6..]), "token list shows the token: {table}");

    // One request, no session: no cookie, no X-ASESSIONID; it names the user.
    for path in ["/rest/api/2/myself", "/rest/auth/1/session", "/app/with-token"] {
        let r = call(&s, "GET", path, As::Basic("bob", &token), None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(set_cookies(&r).is_empty(), "{path}: {:?}", set_cookies(&r));
        assert!(header(&r, "x-asessionid").is_none(), "{path}");
        assert!(header(&r, "x-authd-session-expires").is_none(), "{path}");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("bob"), "{path}");
    }
    assert_eq!(app.last_at("/app/with-token").one("x-authd-user").as_deref(), Some("bob"));
    // Jira Cloud's clients (jira.js) send the owner's email address as the name.
    let r = call(&s, "GET", "/rest/api/2/myself", As::Basic("bob@example.com", &token), None).await;
    assert_eq!(r.status(), 200, "email:token");
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("bob"));
    let r = call(&s, "GET", "/rest/authd/1/sessions", As::Basic("bob", &token), None).await;
    assert_eq!(json_of(r, 200, "sessions").await, json!([]), "a token request left a session");
    // A form post by token carries no session cookie, so it needs no XSRF token.
    let r = s
        .bare_client()
        .post(s.at("/app/token-form"))
        .basic_auth("bob", Some(&token))
        .header("content-type", FORM)
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, 200, "token form").await["headers"]["x-authd-user"], json!(["bob"]));

    // Refused: a wrong token, the password, another user's name, no such user.
    let forged = format!("authd_{}", "A".repeat(token.len() - 6));
    for (what, user, secret) in [
        ("wrong token", "bob", forged.as_str()),
        ("the password instead of a token", "bob", "bob-password-1"),
        ("bob's token under carol's name", "carol", token.as_str()),
        ("bob's token under carol's email", "carol@example.com", token.as_str()),
        ("unknown user", "nobody", token.as_str()),
        ("empty", "bob", ""),
    ] {
        let r = call(&s, "GET", "/rest/api/2/myself", As::Basic(user, secret), None).await;
        assert_eq!(r.status(), 401, "{what}");
        assert!(set_cookies(&r).is_empty(), "{what}");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"), "{what}");
        assert_jira_error(&r.json().await.unwrap());
    }
    let r = s
        .bare_client()
        .get(s.at("/rest/api/2/myself"))
        .header("authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "malformed base64 is a clear 4xx (SPEC §10)");
    assert_jira_error(&r.json().await.unwrap());
    // The app behind the proxy may use Basic for itself: it gets the header as sent.
    let r = s
        .bare_client()
        .get(s.at("/app/own-basic"))
        .header("authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.last_at("/app/own-basic").one("authorization").as_deref(), Some("Basic !!!not-base64"));

    // Revoked: 401.
    let out = s.authd(&["token", "revoke", &id], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = call(&s, "GET", "/rest/api/2/myself", As::Basic("bob", &token), None).await;
    assert_eq!(r.status(), 401, "a revoked token still works");
    assert!(cli_tokens(&s, "bob").is_empty());

    // With the server stopped, the CLI works on the file directly; the token
    // it prints works once the server is back, and the file never holds it.
    let (_, live) = cli_token(&s, "bob", "live");
    let status = s.stop();
    assert!(status.success());
    let moved = data;
    let out = authd_cli(&moved, &["token", "add", "carol", "--label", "offline"], None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "offline token add: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let offline = stdout.lines().last().unwrap().trim().to_string();
    assert!(offline.starts_with("authd_"), "{stdout}");
    let db = stored_bytes(&moved);
    for t in [&token, &live, &offline] {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&t[6..]).unwrap();
        assert_eq!(raw.len(), 32);
        assert!(!contains(&db, t.as_bytes()), "the database holds a token in clear");
        assert!(!contains(&db, &t.as_bytes()[6..]), "the database holds a token in clear");
        assert!(!contains(&db, &raw), "the database holds a token's raw bytes");
    }
    let s = Server::start_in(&moved, &[]);
    for (user, t) in [("bob", &live), ("carol", &offline)] {
        let r = call(&s, "GET", "/rest/api/2/myself", As::Basic(user, t), None).await;
        assert_eq!(r.status(), 200, "{user}'s token after the restart");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `Authorization: Bearer <token>` (how Jira's personal access tokens are
/// sent, e.g. pycontribs `JIRA(token_auth=...)`) works like Basic with the
/// token's owner; a bearer token that is not authd's belongs to the app.
#[tokio::test]
async fn api_tokens_work_as_bearer_tokens_and_foreign_bearer_tokens_pass_to_the_app() {
    let app = EchoApp::start();
    let s = Server::start(&["--upstream", &app.url]);
    s.add_user("bob", "bob-password-1", &[]);
    let (_, token) = cli_token(&s, "bob", "pat");
    let bearer = |path: &str, value: &str| {
        s.bare_client().get(s.at(path)).header("authorization", value.to_string()).send()
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = bearer("/rest/api/2/myself", &format!("{scheme} {token}")).await.unwrap();
        assert_eq!(json_of(r, 200, scheme).await["name"], "bob");
    }
    let r = bearer("/app/pat", &format!("Bearer {token}")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(set_cookies(&r).is_empty(), "{:?}", set_cookies(&r));
    let seen = app.last_at("/app/pat");
    assert_eq!(seen.one("x-authd-user").as_deref(), Some("bob"));
    assert_eq!(seen.one("authorization"), None, "authd's token reached the app");
    let r = bearer("/rest/authd/1/verify", &format!("Bearer {token}")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-authd-user").as_deref(), Some("bob"));

    // An authd token that is not (or no longer) valid, or not even
    // well-formed after authd's prefix: 401, as for Basic.
    let forged = format!("Bearer authd_{}", "A".repeat(token.len() - 6));
    for value in [forged.as_str(), "Bearer authd_bogus"] {
        let r = bearer("/rest/api/2/myself", value).await.unwrap();
        assert_eq!(r.status(), 401, "{value}");
        assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"), "{value}");
        assert_jira_error(&r.json().await.unwrap());
    }
    // An authd token never reaches the app, whether it logged the request
    // in, lost to a session cookie, named another user or is unknown.
    let session = sid(&login_id(&s, "bob", "bob-password-1").await);
    let basic_as_alice =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("alice:{token}")));
    for (i, (value, cookie)) in [
        (format!("Bearer {token}"), Some(session.as_str())),
        (basic_as_alice, None),
        (forged.clone(), None),
        ("Bearer authd_bogus".to_string(), None),
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/app/leak-{i}");
        let mut b = s.bare_client().get(s.at(&path)).header("authorization", &value);
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        assert_eq!(b.send().await.unwrap().status(), 200, "{path}");
        assert_eq!(app.last_at(&path).one("authorization"), None, "{path}: authd's token reached the app");
    }
    // Basic as clients get it wrong: no padding, `echo bob:TOKEN | base64`
    // (a line end after the token): bob's all the same, and never the app's;
    // the token unencoded is not read, but not passed on either.
    let b64 = |pair: String| base64::engine::general_purpose::STANDARD.encode(pair);
    for (i, (value, user)) in [
        (format!("Basic {}", b64(format!("bob:{token}")).trim_end_matches('=')), Some("bob")),
        (format!("Basic {}", b64(format!("bob:{token}\n"))), Some("bob")),
        (format!("Basic {}", b64(format!("bob:{token} "))), Some("bob")),
        (format!("Basic {}", b64(format!("bob:{}", &token[..token.len() - 1]))), None),
        (format!("Basic bob:{token}"), None),
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/app/sloppy-{i}");
        let r = s.bare_client().get(s.at(&path)).header("authorization", &value).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let seen = app.last_at(&path);
        assert_eq!(seen.one("authorization"), None, "{path}: authd's token reached the app");
        assert_eq!(seen.one("x-authd-user").as_deref(), user, "{path}");
    }
    // Two Authorization headers, one of them authd's: neither goes on.
    let r = s
        .bare_client()
        .get(s.at("/app/two-headers"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(app.last_at("/app/two-headers").all("authorization").is_empty(), "authd's token reached the app");
    // Another service's bearer token: anonymous to authd, passed to the app as sent.
    let jwt = "Bearer eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo";
    let r = bearer("/rest/api/2/myself", jwt).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-seraph-loginreason"), None);
    let r = bearer("/app/jwt", jwt).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.last_at("/app/jwt").one("authorization").as_deref(), Some(jwt));
    assert_eq!(app.last_at("/app/jwt").one("x-authd-user"), None);
}

#[tokio::test]
async fn api_tokens_from_the_api_are_shown_once_and_revocable() {
    let s = Server::start(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let bob = sid(&login_id(&s, "bob", "bob-password-1").await);
    let admin = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    let r =
        call(&s, "POST", "/rest/authd/1/tokens", As::Cookie(&bob), Some(&json!({"label": "laptop"}))).await;
    let made = json_of(r, 201, "make a token").await;
    let token = made["token"].as_str().expect("the token is shown when made").to_string();
    let id = made["id"].as_str().unwrap().to_string();
    assert_eq!(made["label"], "laptop");
    assert_eq!(made["user"], "bob");
    // Listed without the token, by bob and by the admin.
    // A label is shown in listings, one line per token: no control characters.
    for label in ["two\nlines", "nul\u{0}", "bell\u{7}"] {
        let r = call(&s, "POST", "/rest/authd/1/tokens", As::Cookie(&bob), Some(&json!({ "label": label })))
            .await;
        let body = json_of(r, 400, label).await;
        assert!(body["errorMessages"][0].as_str().unwrap().contains("control characters"), "{body}");
    }
    let out = s.authd(&["token", "add", "bob", "--label", "two\nlines"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("control characters"), "{out:?}");
    let r = call(&s, "GET", "/rest/authd/1/tokens", As::Cookie(&bob), None).await;
    let list = json_of(r, 200, "list").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0].get("token").is_none() && !list.to_string().contains(&token[6..]), "{list}");
    let r = call(&s, "GET", "/rest/authd/1/admin/users/bob/tokens", As::Cookie(&admin), None).await;
    let list = json_of(r, 200, "admin list").await;
    assert!(list[0].get("token").is_none() && !list.to_string().contains(&token[6..]), "{list}");
    // Used, and usable to list one's own tokens.
    let r = call(&s, "GET", "/rest/authd/1/tokens", As::Basic("bob", &token), None).await;
    assert_eq!(json_of(r, 200, "list by token").await.as_array().unwrap().len(), 1);
    // Anonymous callers cannot make tokens; nobody can revoke another's.
    let r = call(&s, "POST", "/rest/authd/1/tokens", As::Anonymous, Some(&json!({"label": "x"}))).await;
    assert_eq!(r.status(), 401);
    let r = call(&s, "POST", "/rest/authd/1/tokens", As::Cookie(&admin), Some(&json!({"label": "admin's"})))
        .await;
    let admins = json_of(r, 201, "admin's token").await;
    let r = call(
        &s,
        "DELETE",
        &format!("/rest/authd/1/tokens/{}", admins["id"].as_str().unwrap()),
        As::Cookie(&bob),
        None,
    )
    .await;
    assert_eq!(r.status(), 404, "bob revoked the admin's token");
    let r =
        call(&s, "GET", "/rest/api/2/myself", As::Basic("admin", admins["token"].as_str().unwrap()), None)
            .await;
    assert_eq!(r.status(), 200);
    // Revoked by its owner: 401 from then on.
    let r = call(&s, "DELETE", &format!("/rest/authd/1/tokens/{id}"), As::Cookie(&bob), None).await;
    assert_eq!(r.status(), 204);
    let r = call(&s, "GET", "/rest/api/2/myself", As::Basic("bob", &token), None).await;
    assert_eq!(r.status(), 401);
    let r = call(&s, "DELETE", &format!("/rest/authd/1/tokens/{id}"), As::Cookie(&bob), None).await;
    assert_eq!(r.status(), 404, "revoked twice");
}

/// Browsers leave a scheme's own port out of `Origin`; a `Host`,
/// `X-Forwarded-Host` or `--cors-origin` that spells it out names the same
/// origin (SPEC §7, §9).
#[tokio::test]
async fn an_origin_with_its_default_port_spelled_out_is_the_same_origin() {
    let s = Server::start(&["--cors-origin", "https://app.example:443"]);
    let admin = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    for (forwarded_host, origin, want) in [
        ("app.example.com:443", "https://app.example.com", 200),
        ("app.example.com", "https://app.example.com:443", 200),
        ("app.example.com:8443", "https://app.example.com", 403),
    ] {
        let r = s
            .bare_client()
            .get(s.at("/rest/authd/1/verify"))
            .header("cookie", &admin)
            .header("x-forwarded-method", "POST")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", forwarded_host)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{forwarded_host} {origin}");
    }
    let r = s
        .bare_client()
        .request(reqwest::Method::OPTIONS, s.at("/rest/auth/1/session"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://app.example"));
}

// ---------------------------------------------------------------------------
// CORS.

#[tokio::test]
async fn cors_preflights_and_credentials_for_named_origins_only() {
    let (app, s) =
        start_pair(&["--cors-origin", "https://app.example", "--cors-origin", "https://admin.example:8443"]);
    let admin = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    let preflight = |path: &str, origin: &str| {
        s.bare_client()
            .request(reqwest::Method::OPTIONS, s.at(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, x-atlassian-token")
    };
    for origin in ["https://app.example", "https://admin.example:8443"] {
        for path in ["/rest/api/2/myself", "/rest/auth/1/session", "/app/cors"] {
            let r = preflight(path, origin).send().await.unwrap();
            assert_eq!(r.status(), 204, "{origin} {path}");
            assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some(origin), "{path}");
            assert_eq!(header(&r, "access-control-allow-credentials").as_deref(), Some("true"), "{path}");
            let methods = header(&r, "access-control-allow-methods").unwrap_or_default();
            assert!(methods.contains("POST") && methods.contains("DELETE"), "{methods}");
            let allowed = header(&r, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
            assert!(allowed.contains("content-type") && allowed.contains("x-atlassian-token"), "{allowed}");
            assert!(vary_has_origin(&r), "{path}: no Vary: Origin");
            never_star(&r, path);
        }
    }
    assert!(app.seen_at("/app/cors").is_empty(), "authd answers preflights itself");
    // Other origins: no CORS headers at all.
    for origin in ["https://evil.example", "https://app.example.evil.example", "http://app.example", "null"] {
        let r = preflight("/rest/api/2/myself", origin).send().await.unwrap();
        assert!(header(&r, "access-control-allow-origin").is_none(), "{origin}: {:?}", r.headers());
        assert!(header(&r, "access-control-allow-credentials").is_none(), "{origin}");
        assert!(vary_has_origin(&r), "{origin}: no Vary: Origin");
    }
    // Real requests with credentials.
    let r = s
        .bare_client()
        .get(s.at("/rest/api/2/myself"))
        .header("origin", "https://app.example")
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://app.example"));
    assert_eq!(header(&r, "access-control-allow-credentials").as_deref(), Some("true"));
    assert!(vary_has_origin(&r));
    let exposed = header(&r, "access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(exposed.contains("x-ausername"), "{exposed}");
    // An unsafe JSON request from the named origin is let through (cross-site by nature) ...
    let r = s
        .bare_client()
        .post(s.at("/app/cors-post"))
        .header("origin", "https://app.example")
        .header("sec-fetch-site", "cross-site")
        .header("cookie", &admin)
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://app.example"));
    assert!(vary_has_origin(&r));
    // ... and one from elsewhere is refused, with no CORS headers.
    let r = s
        .bare_client()
        .post(s.at("/app/cors-evil"))
        .header("origin", "https://evil.example")
        .header("cookie", &admin)
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(header(&r, "access-control-allow-origin").is_none());
    assert!(app.seen_at("/app/cors-evil").is_empty());
    let r = s
        .bare_client()
        .get(s.at("/rest/api/2/serverInfo"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(header(&r, "access-control-allow-origin").is_none());
    assert!(vary_has_origin(&r));
    // The app's own "*" never reaches a credentialed caller.
    let r = s
        .bare_client()
        .get(s.at("/cors-star/x"))
        .header("origin", "https://app.example")
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    let values: Vec<String> = r
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(values, ["https://app.example"]);
    never_star(&r, "app's own CORS");
    // Nor a caller from an origin authd does not allow, nor one with no origin.
    for origin in [Some("https://evil.example"), None] {
        let mut b = s.bare_client().get(s.at("/cors-star/y"));
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        let r = b.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(header(&r, "access-control-allow-origin").is_none(), "{origin:?}: the app's * passed");
    }
}

// ---------------------------------------------------------------------------
// Own sessions and the per-user cap.

/// Many requests with one session ID at once: each on a connection of its
/// own over HTTP/1.1, or as streams of one HTTP/2 connection; the status
/// and `JSESSIONID` cookie of each answer.
async fn burst(s: &Server, id: &str) -> Vec<(u16, Option<String>)> {
    let h2 = s.bare_client();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..24 {
        let c = if i % 2 == 0 { h1_client_for(&s.cert_pem()) } else { h2.clone() };
        let req = c.get(s.at("/rest/auth/1/session")).header("cookie", sid(id));
        set.spawn(async move { req.send().await.unwrap() });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        out.push((r.status().as_u16(), set_cookie(&r, SESSION)));
    }
    out
}

/// SPEC §5 with a browser's parallel requests: after a role change (and
/// after a password change) requests already on their way with the old ID
/// make one move, not one each, and none clears the cookie the move set:
/// each answer is 200 with the one new ID, or 401 leaving the cookie alone.
#[tokio::test]
async fn parallel_requests_after_a_role_change_make_one_move_and_never_clear_the_new_cookie() {
    let s = Server::start(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let admin_cookie = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    for (round, roles) in [json!(["admin"]), json!([]), json!(["admin"])].iter().enumerate() {
        let old = login_id(&s, "bob", "bob-password-1").await;
        let body = json!({ "roles": roles });
        admin_call(&s, "PUT", "/users/bob/roles", As::Cookie(&admin_cookie), Some(&body), 200).await;
        let answers = burst(&s, &old).await;
        let mut new_ids = std::collections::BTreeSet::new();
        for (status, cookie) in &answers {
            match (status, cookie) {
                (200, Some(c)) => {
                    let (_, value, _) = parse_set_cookie(c);
                    new_ids.insert(value);
                }
                (401, None) => {}
                other => panic!("round {round}: {other:?} in {answers:?}"),
            }
        }
        assert_eq!(new_ids.len(), 1, "round {round}: not one move: {answers:?}");
        let new_id = new_ids.into_iter().next().unwrap();
        assert!(alive(&s, &new_id).await, "round {round}");
        assert!(!alive(&s, &old).await, "round {round}: the old ID still works");
        let list = admin_call(&s, "GET", "/sessions?user=bob", As::Cookie(&admin_cookie), None, 200).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "round {round}: {list}");
        admin_call(&s, "DELETE", "/users/bob/sessions", As::Cookie(&admin_cookie), None, 200).await;
    }

    // A password change moves the session in use; requests that come with
    // the old ID after it are refused, but leave the browser's new cookie be.
    let old = login_id(&s, "bob", "bob-password-1").await;
    let body = json!({"password": "bob-password-2", "currentPassword": "bob-password-1"});
    let r = call(&s, "PUT", "/rest/api/2/myself/password", As::Cookie(&sid(&old)), Some(&body)).await;
    assert_eq!(r.status(), 204);
    let new_id = set_value(&r, SESSION).expect("the password change moves the session");
    let answers = burst(&s, &old).await;
    assert!(answers.iter().all(|a| *a == (401, None)), "{answers:?}");
    assert!(alive(&s, &new_id).await);

    // With no grace window at all, racing requests still make one move.
    let s = Server::start(&["--remember-me-grace", "0s"]);
    s.add_user("bob", "bob-password-1", &[]);
    let admin_cookie = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    let old = login_id(&s, "bob", "bob-password-1").await;
    let body = json!({ "roles": ["admin"] });
    admin_call(&s, "PUT", "/users/bob/roles", As::Cookie(&admin_cookie), Some(&body), 200).await;
    let new_ids: std::collections::BTreeSet<String> = burst(&s, &old)
        .await
        .into_iter()
        .filter_map(|(status, cookie)| (status == 200).then(|| parse_set_cookie(&cookie.unwrap()).1))
        .collect();
    assert_eq!(new_ids.len(), 1, "{new_ids:?}");
    let list = admin_call(&s, "GET", "/sessions?user=bob", As::Cookie(&admin_cookie), None, 200).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

/// An admin who ends their own session through the admin API is logged
/// out by that answer, as by any other route (SPEC §3: `OUT`, cookies expired).
#[tokio::test]
async fn an_admin_ending_their_own_session_through_the_admin_api_is_logged_out() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    for how in ["sign out everywhere", "by handle", "someone else"] {
        let me = sid(&login_id(&s, "admin", &pw).await);
        let path = match how {
            "sign out everywhere" => "/users/admin/sessions".to_string(),
            "by handle" => format!("/sessions/{}", handle_of(&s, &me[SESSION.len() + 1..]).await),
            _ => {
                let other = login_id(&s, "admin", &pw).await;
                format!("/sessions/{}", handle_of(&s, &other).await)
            }
        };
        let r = call(&s, "DELETE", &format!("/rest/authd/1/admin{path}"), As::Cookie(&me), None).await;
        assert!(r.status().is_success(), "{how}: {}", r.status());
        let out = header(&r, "x-seraph-loginreason");
        if how == "someone else" {
            assert_eq!(out, None, "{how}");
            assert!(set_cookie(&r, SESSION).is_none(), "{how}");
        } else {
            assert_eq!(out.as_deref(), Some("OUT"), "{how}");
            assert!(deletes(&r, SESSION), "{how}: {:?}", set_cookies(&r));
            assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"), "{how}");
        }
    }
}

#[tokio::test]
async fn own_sessions_list_handles_and_revoke_one_or_all() {
    let s = Server::start(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    let a = login_id(&s, "bob", "bob-password-1").await;
    let b = login_id(&s, "bob", "bob-password-1").await;
    let jar = api_login(&s, "bob", "bob-password-1", true).await;
    let c = jar.session.clone().unwrap();

    let r = s
        .bare_client()
        .get(s.at("/rest/authd/1/sessions"))
        .header("cookie", sid(&a))
        .header("user-agent", FIREFOX)
        .send()
        .await
        .unwrap();
    let my_handle = header(&r, "x-asessionid").expect("X-ASESSIONID");
    let text = r.text().await.unwrap();
    for secret in [&a, &b, &c, &admin, jar.remember.as_ref().unwrap()] {
        assert!(!text.contains(secret.as_str()), "the list shows a session ID: {text}");
    }
    let list: Value = serde_json::from_str(&text).unwrap();
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 3, "{text}");
    for item in &list {
        let h = item["handle"].as_str().unwrap();
        assert!(h.len() == 12 && h.bytes().all(|c| c.is_ascii_hexdigit()), "handle {h}");
        assert!(item["created"].is_string() && item["lastUsed"].is_string(), "{item}");
        assert!(item.get("id").is_none() && item.get("value").is_none(), "{item}");
    }
    let current: Vec<&Value> = list.iter().filter(|i| i["current"] == true).collect();
    assert_eq!(current.len(), 1, "{text}");
    assert_eq!(current[0]["handle"], my_handle.as_str());
    let hb = handle_of(&s, &b).await;
    let ha_admin = handle_of(&s, &admin).await;
    assert!(list.iter().any(|i| i["handle"] == hb.as_str()));

    // Another user's handle, and junk: 404, nothing ends.
    for h in [ha_admin.as_str(), "000000000000", "not-a-handle"] {
        let r = call(&s, "DELETE", &format!("/rest/authd/1/sessions/{h}"), As::Cookie(&sid(&a)), None).await;
        assert_eq!(r.status(), 404, "{h}");
        assert_jira_error(&r.json().await.unwrap());
    }
    assert!(alive(&s, &admin).await, "bob ended the admin's session");
    // One of mine: that one ends.
    let r = call(&s, "DELETE", &format!("/rest/authd/1/sessions/{hb}"), As::Cookie(&sid(&a)), None).await;
    assert_eq!(r.status(), 204);
    assert!(set_cookie(&r, SESSION).is_none(), "ending another session logged this one out");
    assert_eq!(header(&r, "x-seraph-loginreason"), None, "not a logout of this browser");
    assert!(!alive(&s, &b).await);
    assert!(alive(&s, &a).await && alive(&s, &c).await);
    // The current one by handle: it ends and its cookie is expired.
    let hc = handle_of(&s, &c).await;
    let r = call(&s, "DELETE", &format!("/rest/authd/1/sessions/{hc}"), As::Cookie(&sid(&c)), None).await;
    assert_eq!(r.status(), 204);
    assert!(deletes(&r, SESSION), "{:?}", set_cookies(&r));
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"), "{:?}", r.headers());
    assert!(!alive(&s, &c).await);
    // All of them, everywhere: every session and remember-me series ends.
    let d = login_id(&s, "bob", "bob-password-1").await;
    let r = call(&s, "DELETE", "/rest/authd/1/sessions", As::Cookie(&sid(&d)), None).await;
    assert_eq!(r.status(), 204);
    assert!(deletes(&r, SESSION), "{:?}", set_cookies(&r));
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"), "{:?}", r.headers());
    for id in [&a, &d] {
        assert!(!alive(&s, id).await);
    }
    let r = whoami(&s, &format!("{REMEMBER}={}", jar.remember.as_ref().unwrap())).await;
    assert_eq!(r.status(), 401, "a remember-me cookie outlived 'sign out everywhere'");
    assert!(alive(&s, &admin).await, "another user's session ended");
    // Anonymous: 401.
    let r = call(&s, "GET", "/rest/authd/1/sessions", As::Anonymous, None).await;
    assert_eq!(r.status(), 401);
    let r = call(&s, "DELETE", "/rest/authd/1/sessions", As::Anonymous, None).await;
    assert_eq!(r.status(), 401);
}

/// The public handle of session `id` (from `X-ASESSIONID`).
async fn handle_of(s: &Server, id: &str) -> String {
    let r = call(s, "GET", "/rest/auth/1/session", As::Cookie(&sid(id)), None).await;
    assert_eq!(r.status(), 200);
    header(&r, "x-asessionid").expect("X-ASESSIONID")
}

#[tokio::test]
async fn max_sessions_per_user_evicts_the_oldest() {
    let s = Server::start(&["--max-sessions-per-user", "2"]);
    s.add_user("bob", "bob-password-1", &[]);
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    let first = login_id(&s, "bob", "bob-password-1").await;
    let second = login_id(&s, "bob", "bob-password-1").await;
    // Use the first after the second exists: "oldest" is by creation, not use.
    assert_eq!(call(&s, "GET", "/rest/auth/1/session", As::Cookie(&sid(&first)), None).await.status(), 200);
    let third = login_id(&s, "bob", "bob-password-1").await;
    assert_eq!(alive_all(&s, &[&first, &second, &third]).await, [false, true, true], "after the third login");
    let fourth = login_id(&s, "bob", "bob-password-1").await;
    assert_eq!(
        alive_all(&s, &[&second, &third, &fourth]).await,
        [false, true, true],
        "after the fourth login"
    );
    let ids = [first, second, third, fourth];
    let r = call(&s, "GET", "/rest/authd/1/sessions", As::Cookie(&sid(&ids[3])), None).await;
    assert_eq!(json_of(r, 200, "list").await.as_array().unwrap().len(), 2);
    assert!(alive(&s, &admin).await, "the cap is per user");
}

async fn alive_all(s: &Server, ids: &[&String]) -> Vec<bool> {
    let mut out = Vec::new();
    for id in ids {
        out.push(alive(s, id).await);
    }
    out
}

// ---------------------------------------------------------------------------
// The admin API.

/// Asserts `r` has `status`; with an API token, also that it set no cookie.
async fn admin_call(
    s: &Server,
    method: &str,
    path: &str,
    who: As<'_>,
    body: Option<&Value>,
    status: u16,
) -> Value {
    let r = call(s, method, &format!("/rest/authd/1/admin{path}"), who, body).await;
    if let As::Basic(..) = who {
        assert!(set_cookies(&r).is_empty(), "{method} {path} by token set cookies: {:?}", set_cookies(&r));
        assert!(header(&r, "x-asessionid").is_none());
    }
    json_of(r, status, &format!("{method} admin{path}")).await
}

/// Runs every admin operation on a new user `name`, as `who`.
async fn exercise_admin_api(s: &Server, who: As<'_>, name: &str) {
    let users = admin_call(s, "GET", "/users", who, None, 200).await;
    assert!(users.as_array().unwrap().iter().any(|u| u["name"] == "admin"), "{users}");
    // Add (unverified email): the login answers 409 until verified.
    let body = json!({"name": name, "password": "first-pass-1", "email": format!("{name}@example.com"), "unverified": true});
    let added = admin_call(s, "POST", "/users", who, Some(&body), 201).await;
    assert_eq!(added["name"], name);
    assert_eq!(added["emailVerified"], false);
    assert!(
        added["verificationLink"].as_str().is_some_and(|l| l.contains("/verify-email?token=")),
        "{added}"
    );
    assert!(!added.to_string().contains("first-pass-1") && !added.to_string().contains("argon2"), "{added}");
    let users = admin_call(s, "GET", "/users", who, None, 200).await;
    assert!(users.as_array().unwrap().iter().any(|u| u["name"] == name));
    assert_eq!(s.login(&s.bare_client(), name, "first-pass-1").await.status(), 409);
    admin_call(s, "POST", "/users", who, Some(&body), 409).await;
    // Verify.
    let v = admin_call(s, "POST", &format!("/users/{name}/verify"), who, None, 200).await;
    assert_eq!(v["emailVerified"], true);
    let one = admin_call(s, "GET", &format!("/users/{name}"), who, None, 200).await;
    assert_eq!(one["emailVerified"], true);
    let first = login_id(s, name, "first-pass-1").await;
    // Unlock: after the failures the API refuses the user; unlock clears that.
    for _ in 0..3 {
        assert_eq!(s.login(&s.bare_client(), name, "wrong-password").await.status(), 401);
    }
    let r = s.login(&s.bare_client(), name, "first-pass-1").await;
    assert_eq!(r.status(), 403, "the challenge was not demanded");
    let u = admin_call(s, "POST", &format!("/users/{name}/unlock"), who, None, 200).await;
    assert_eq!(u["failedLoginCount"], 0, "{u}");
    let second = login_id(s, name, "first-pass-1").await;
    // Reset the password: every session ends; only the new password works.
    admin_call(
        s,
        "PUT",
        &format!("/users/{name}/password"),
        who,
        Some(&json!({"password": "second-pass-2"})),
        204,
    )
    .await;
    assert!(!alive(s, &first).await && !alive(s, &second).await, "sessions outlived a password reset");
    assert_eq!(s.login(&s.bare_client(), name, "first-pass-1").await.status(), 401);
    let third = login_id(s, name, "second-pass-2").await;
    // Roles: a role change moves the session to a new ID on its next use
    // (SPEC §5). Forward auth cannot hand the browser a new ID (nginx drops
    // Set-Cookie from the check), so it answers 401 with the login URL; the
    // login page moves the session and sends the browser straight back.
    let u =
        admin_call(s, "PUT", &format!("/users/{name}/roles"), who, Some(&json!({"roles": ["admin"]})), 200)
            .await;
    assert_eq!(u["roles"], json!(["admin"]));
    let r = call(s, "GET", "/rest/authd/1/verify", As::Cookie(&sid(&third)), None).await;
    assert_eq!(r.status(), 401, "forward auth accepted an ID due to move");
    assert!(header(&r, "x-authd-login-url").is_some());
    assert_eq!(set_value(&r, SESSION), None, "forward auth set a cookie the browser never gets");
    let r = call(s, "GET", "/login.jsp?os_destination=%2Fapp", As::Cookie(&sid(&third)), None).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/app"));
    let moved = set_value(&r, SESSION).expect("a role change moves the session to a new ID");
    assert!(!alive(s, &third).await, "the old ID still works after the move");
    let third = moved;
    let r = call(s, "GET", "/rest/authd/1/verify", As::Cookie(&sid(&third)), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-authd-roles").as_deref(), Some("admin"));
    let u =
        admin_call(s, "PUT", &format!("/users/{name}/roles"), who, Some(&json!({"roles": []})), 200).await;
    assert_eq!(u["roles"], json!([]));
    let r = call(s, "GET", "/rest/auth/1/session", As::Cookie(&sid(&third)), None).await;
    let third = set_value(&r, SESSION).expect("a role change moves the session to a new ID");
    let r = call(s, "GET", "/rest/authd/1/verify", As::Cookie(&sid(&third)), None).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-authd-roles").is_some_and(|r| !r.contains("admin")));
    admin_call(s, "PUT", &format!("/users/{name}/roles"), who, Some(&json!({"roles": ["root"]})), 400).await;
    // Sessions: listed by handle; one ended; then sign out everywhere.
    let fourth = login_id(s, name, "second-pass-2").await;
    let fifth = login_id(s, name, "second-pass-2").await;
    let list = admin_call(s, "GET", &format!("/sessions?user={name}"), who, None, 200).await;
    let text = list.to_string();
    assert_eq!(list.as_array().unwrap().len(), 3, "{text}");
    for id in [&third, &fourth, &fifth] {
        assert!(!text.contains(id.as_str()), "a session ID in the admin list: {text}");
    }
    let h4 = handle_of(s, &fourth).await;
    assert!(
        list.as_array().unwrap().iter().any(|x| x["handle"] == h4.as_str() && x["user"] == name),
        "{text}"
    );
    admin_call(s, "DELETE", &format!("/sessions/{h4}"), who, None, 204).await;
    assert!(!alive(s, &fourth).await && alive(s, &fifth).await && alive(s, &third).await);
    let out = admin_call(s, "DELETE", &format!("/users/{name}/sessions"), who, None, 200).await;
    assert_eq!(out["revoked"], 2, "{out}");
    assert!(!alive(s, &third).await && !alive(s, &fifth).await, "sessions outlived 'sign out everywhere'");
    // Tokens for the user: shown once, listed without it, revoked.
    let t = admin_call(
        s,
        "POST",
        &format!("/users/{name}/tokens"),
        who,
        Some(&json!({"label": "by admin"})),
        201,
    )
    .await;
    let token = t["token"].as_str().unwrap().to_string();
    let id = t["id"].as_str().unwrap().to_string();
    let list = admin_call(s, "GET", &format!("/users/{name}/tokens"), who, None, 200).await;
    assert!(list[0].get("token").is_none() && list[0]["id"] == id.as_str(), "{list}");
    assert_eq!(call(s, "GET", "/rest/api/2/myself", As::Basic(name, &token), None).await.status(), 200);
    admin_call(s, "DELETE", &format!("/tokens/{id}"), who, None, 204).await;
    assert_eq!(call(s, "GET", "/rest/api/2/myself", As::Basic(name, &token), None).await.status(), 401);
    // Delete: gone, sessions and all.
    let last = login_id(s, name, "second-pass-2").await;
    admin_call(s, "DELETE", &format!("/users/{name}"), who, None, 204).await;
    admin_call(s, "GET", &format!("/users/{name}"), who, None, 404).await;
    admin_call(s, "DELETE", &format!("/users/{name}"), who, None, 404).await;
    assert!(!alive(s, &last).await);
    assert_eq!(s.login(&s.bare_client(), name, "second-pass-2").await.status(), 401);
}

#[tokio::test]
async fn admin_api_works_with_an_admin_session_and_with_an_admins_api_token() {
    let s = Server::start(&[]);
    let admin = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    exercise_admin_api(&s, As::Cookie(&admin), "carol").await;
    let (_, token) = cli_token(&s, "admin", "automation");
    exercise_admin_api(&s, As::Basic("admin", &token), "dave").await;
}

#[tokio::test]
async fn admin_api_refuses_non_admins_with_403_and_anonymous_callers_with_401() {
    let s = Server::start(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let bob = sid(&login_id(&s, "bob", "bob-password-1").await);
    let (_, token) = cli_token(&s, "bob", "not admin");
    let calls: [(&str, &str, Option<Value>); 8] = [
        ("GET", "/users", None),
        ("POST", "/users", Some(json!({"name": "eve", "password": "eve-password-1", "admin": true}))),
        ("GET", "/users/admin", None),
        ("PUT", "/users/admin/password", Some(json!({"password": "pwned-1"}))),
        ("PUT", "/users/bob/roles", Some(json!({"roles": ["admin"]}))),
        ("DELETE", "/users/admin/sessions", None),
        ("POST", "/users/bob/tokens", Some(json!({"label": "x"}))),
        ("GET", "/sessions", None),
    ];
    for (method, path, body) in &calls {
        for who in [As::Cookie(&bob), As::Basic("bob", &token)] {
            let r = call(&s, method, &format!("/rest/authd/1/admin{path}"), who, body.as_ref()).await;
            assert_eq!(r.status(), 403, "{method} {path} as {who:?}");
            assert_eq!(
                header(&r, "x-seraph-loginreason").as_deref(),
                Some("AUTHORISATION_FAILED"),
                "{method} {path}"
            );
            assert_eq!(header(&r, "x-ausername").as_deref(), Some("bob"));
            assert_jira_error(&r.json().await.unwrap());
        }
        for who in [As::Anonymous, As::Basic("bob", "bob-password-1"), As::Cookie("JSESSIONID=stale")] {
            let r = call(&s, method, &format!("/rest/authd/1/admin{path}"), who, body.as_ref()).await;
            assert_eq!(r.status(), 401, "{method} {path} as {who:?}");
            assert_jira_error(&r.json().await.unwrap());
        }
    }
    // Nothing happened.
    let admin = sid(&login_id(&s, "admin", &s.admin_pw()).await);
    let users = admin_call(&s, "GET", "/users", As::Cookie(&admin), None, 200).await;
    assert!(!users.to_string().contains("\"eve\""), "{users}");
    let bob_now = admin_call(&s, "GET", "/users/bob", As::Cookie(&admin), None, 200).await;
    assert_eq!(bob_now["roles"], json!([]));
}

// ---------------------------------------------------------------------------
// Metrics.

/// The `(labels, value)` of every sample of `name` (labels as written, `""` if none).
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = match series.strip_prefix(name)? {
                "" => String::new(),
                rest if rest.starts_with('{') => rest.to_string(),
                _ => return None,
            };
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_requests_logins_and_sessions() {
    let (_app, s) = start_pair(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let c = s.bare_client();
    for _ in 0..3 {
        assert_eq!(c.get(s.at("/healthz")).send().await.unwrap().status(), 200);
    }
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    for _ in 0..3 {
        assert_eq!(s.login(&c, "bob", "wrong").await.status(), 401);
    }
    assert_eq!(s.login(&c, "bob", "bob-password-1").await.status(), 403);
    for _ in 0..2 {
        assert_eq!(call(&s, "GET", "/rest/authd/1/verify", As::Anonymous, None).await.status(), 401);
    }
    assert_eq!(call(&s, "GET", "/rest/authd/1/verify", As::Cookie(&sid(&admin)), None).await.status(), 200);
    for i in 0..4 {
        assert_eq!(call(&s, "GET", &format!("/m/{i}"), As::Anonymous, None).await.status(), 200);
    }
    assert_eq!(call(&s, "GET", "/rest/authd/1/nothing-here", As::Anonymous, None).await.status(), 404);

    let text = metrics_text(&s).await;
    for (series, want) in [
        ("authd_http_requests_total{route=\"healthz\",status=\"200\"}", 3.0),
        ("authd_http_requests_total{route=\"session\",status=\"200\"}", 1.0),
        ("authd_http_requests_total{route=\"session\",status=\"401\"}", 3.0),
        ("authd_http_requests_total{route=\"session\",status=\"403\"}", 1.0),
        ("authd_http_requests_total{route=\"verify\",status=\"401\"}", 2.0),
        ("authd_http_requests_total{route=\"verify\",status=\"200\"}", 1.0),
        ("authd_http_requests_total{route=\"proxy\",status=\"200\"}", 4.0),
        ("authd_http_requests_total{route=\"other\",status=\"404\"}", 1.0),
        ("authd_logins_total{outcome=\"ok\"}", 1.0),
        ("authd_logins_total{outcome=\"failed\"}", 3.0),
        ("authd_logins_total{outcome=\"denied\"}", 1.0),
        ("authd_sessions", 1.0),
        ("authd_sweeper_runs_total", 0.0),
        ("authd_sweeper_deleted_total{kind=\"session\"}", 0.0),
    ] {
        assert_eq!(metric(&text, series), Some(want), "{series}\n{text}");
    }
    for t in [
        "# TYPE authd_http_requests_total counter",
        "# TYPE authd_http_request_duration_seconds histogram",
        "# TYPE authd_logins_total counter",
        "# TYPE authd_sessions gauge",
        "# TYPE authd_sweeper_runs_total counter",
        "# TYPE authd_sweeper_deleted_total counter",
    ] {
        assert!(text.contains(t), "{t}\n{text}");
    }
    // The histogram: cumulative buckets ending in +Inf = _count = every request counted above.
    let buckets = samples(&text, "authd_http_request_duration_seconds_bucket");
    assert!(buckets.len() >= 5, "{text}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "buckets are not cumulative: {buckets:?}");
    let (last_label, inf) = buckets.last().unwrap().clone();
    assert_eq!(last_label, "{le=\"+Inf\"}");
    let count = metric(&text, "authd_http_request_duration_seconds_count").unwrap();
    let total: f64 = samples(&text, "authd_http_requests_total").iter().map(|(_, v)| v).sum();
    assert_eq!(inf, count);
    assert_eq!(count, total, "the histogram and the request counts disagree");
    assert!(total >= 16.0, "{total}");
    assert!(metric(&text, "authd_http_request_duration_seconds_sum").is_some_and(|v| v > 0.0));
    // The scrape itself is counted by the next one.
    let text = metrics_text(&s).await;
    assert_eq!(metric(&text, "authd_http_requests_total{route=\"metrics\",status=\"200\"}"), Some(1.0));
}

#[tokio::test]
async fn metrics_count_sweeper_runs_and_deletions() {
    let s = Server::start(&["--idle-timeout", "2s", "--sweep-interval", "1s"]);
    login_id(&s, "admin", &s.admin_pw()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics_text(&s).await;
        let runs = metric(&text, "authd_sweeper_runs_total").unwrap_or(0.0);
        let swept = metric(&text, "authd_sweeper_deleted_total{kind=\"session\"}").unwrap_or(0.0);
        let sessions = metric(&text, "authd_sessions").unwrap_or(-1.0);
        if runs >= 2.0 && swept >= 1.0 && sessions == 0.0 {
            for kind in ["remember_me_series", "lockout", "verification_token"] {
                let series = format!("authd_sweeper_deleted_total{{kind=\"{kind}\"}}");
                assert!(metric(&text, &series).is_some(), "{series}\n{text}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "the sweeper did not report the expired session:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

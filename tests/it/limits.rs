//! SPEC §10, limits: request heads over 16 KiB (431 on HTTP/1.1 and
//! HTTP/2), bodies over each route's limit (413), slow and silent clients
//! (TLS handshake and header read timeouts of 10 s), idle keep-alive
//! connections, `--max-conns`, and HTTP/2's limit of 256 concurrent streams.
//! Every case also checks that the server keeps answering other clients.
//!
//! The slow-client cases wait about ten seconds each, so they run
//! concurrently inside a few tests rather than one after another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::gateway::{read_frame, read_response, start_pair, websocket, ws_frame};
use crate::support::*;

const LOGIN: &str = "/rest/auth/1/session";
const KIB: usize = 1024;

// ---------------------------------------------------------------------------
// Connections by hand.

/// A TLS connection to `s` offering `alpn`, or the handshake's error.
async fn try_tls(s: &Server, alpn: &[&[u8]]) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(&s.cert_pem(), alpn)));
    let tcp = TcpStream::connect(("127.0.0.1", s.port)).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await
}

/// A TLS connection to `s` offering `alpn` (a panic if the handshake fails).
async fn tls(s: &Server, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    tokio::time::timeout(Duration::from_secs(10), try_tls(s, alpn))
        .await
        .expect("TLS handshake timed out")
        .expect("TLS handshake failed")
}

/// Reads until the peer closes (EOF or an error) or `limit` passes; returns
/// how long the connection stayed open (`None`: still open at `limit`)
/// and what was read.
async fn open_for<S: AsyncRead + Unpin>(
    s: &mut S,
    started: Instant,
    limit: Duration,
) -> (Option<Duration>, Vec<u8>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (None, seen),
            Ok(Ok(0)) | Ok(Err(_)) => return (Some(started.elapsed()), seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// `GET /healthz` on a fresh connection: the server still answers others.
async fn healthz(s: &Server) -> u16 {
    match s.bare_client().get(s.at("/healthz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("GET /healthz failed: {e}"),
    }
}

/// A closed-connection time between 9 and 15 s, as a 10 s timeout gives.
fn about_ten_seconds(what: &str, open: Option<Duration>, seen: &[u8]) -> Result<(), String> {
    match open {
        None => Err(format!("{what}: still open after {:?}", LIMIT)),
        Some(t) if t < Duration::from_secs(9) || t > Duration::from_secs(15) => Err(format!(
            "{what}: closed after {t:.1?}, expected 9-15 s (answer: {:?})",
            String::from_utf8_lossy(seen)
        )),
        Some(_) => Ok(()),
    }
}

/// How long slow-client cases wait at most.
const LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// 431: request heads over 16 KiB.

/// `n` headers `x-pad-i: 1000 x "a"` (about n KiB).
fn padding(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("x-pad-{i}"), "a".repeat(1000))).collect()
}

async fn get_with(
    c: &reqwest::Client,
    s: &Server,
    headers: &[(String, String)],
) -> reqwest::Result<reqwest::Response> {
    let mut b = c.get(s.at("/rest/api/2/serverInfo"));
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.send().await
}

/// A client that offers only `http/1.0` by ALPN (`curl --http1.0`) gets
/// an HTTP/1.0 answer, not a failed handshake.
#[tokio::test]
async fn an_http_1_0_client_is_answered() {
    let s = Server::start(&[]);
    let mut t = tls(&s, &[b"http/1.0"]).await;
    assert_eq!(t.get_ref().1.alpn_protocol(), Some(&b"http/1.0"[..]));
    t.write_all(b"GET /rest/api/2/serverInfo HTTP/1.0\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), t.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(text.contains("\"serverTitle\":\"authd\""), "{text}");
}

#[tokio::test]
async fn request_heads_over_16_kib_are_431_on_http1_and_http2() {
    let s = Server::start(&[]);
    let h1 = h1_client_for(&s.cert_pem());
    let h2 = s.bare_client();
    // 12 KiB of headers pass on both protocols.
    for (proto, c) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        let r = get_with(c, &s, &padding(12)).await.unwrap_or_else(|e| panic!("{proto}, 12 KiB: {e}"));
        assert_eq!(r.status(), 200, "{proto}: 12 KiB of headers must pass");
        let version = r.version();
        assert_eq!(
            version,
            if proto == "HTTP/2" { reqwest::Version::HTTP_2 } else { reqwest::Version::HTTP_11 },
            "{proto}"
        );
    }
    // 18 KiB: 431 on both, in Jira's shape and naming the (anonymous) user (SPEC §3).
    for (proto, c) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        let r = get_with(c, &s, &padding(18)).await.unwrap_or_else(|e| panic!("{proto}, 18 KiB: {e}"));
        assert_eq!(r.status(), 431, "{proto}: 18 KiB of headers");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"), "{proto}");
        assert_jira_error(&r.json().await.unwrap_or_else(|e| panic!("{proto}: 431 body is not JSON: {e}")));
    }
    // Far over (100 KiB): still 431, from the HTTP stack itself.
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        s.port,
        "c".repeat(100 * KIB)
    );
    let answer = raw_h1(&s, req.as_bytes()).await;
    assert_eq!(
        raw_status(&answer),
        Some(431),
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(300)])
    );
    // One huge header (a 20 KiB cookie) over HTTP/1.1 as raw bytes.
    let req = format!(
        "GET /rest/auth/1/session HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: JSESSIONID={}\r\nConnection: close\r\n\r\n",
        s.port,
        "A".repeat(20 * KIB)
    );
    let answer = raw_h1(&s, req.as_bytes()).await;
    assert_eq!(raw_status(&answer), Some(431), "{}", String::from_utf8_lossy(&answer));
    // Just under 16 KiB in all still passes over HTTP/1.1 (request line included).
    let pad = 16 * KIB - 200;
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        s.port,
        "b".repeat(pad)
    );
    assert!(req.len() < 16 * KIB);
    let answer = raw_h1(&s, req.as_bytes()).await;
    assert_eq!(
        raw_status(&answer),
        Some(200),
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(300)])
    );
    // The same HTTP/2 connection still serves after its 431.
    let r = get_with(&h2, &s, &[]).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(healthz(&s).await, 200);
}

// ---------------------------------------------------------------------------
// 413: bodies over each route's limit.

/// A JSON object of exactly `n` bytes: `fields` plus `pad` set to a run of `x`.
fn json_of_len(fields: serde_json::Value, pad: &str, n: usize) -> Vec<u8> {
    let mut v = fields;
    v[pad] = json!("");
    let base = serde_json::to_vec(&v).unwrap().len();
    v[pad] = json!("x".repeat(n - base));
    let out = serde_json::to_vec(&v).unwrap();
    assert_eq!(out.len(), n);
    out
}

/// A url-encoded form of exactly `n` bytes: `prefix` then `pad=xxx...`.
fn form_of_len(prefix: &str, pad: &str, n: usize) -> Vec<u8> {
    let base = format!("{prefix}&{pad}=");
    let mut out = base.clone().into_bytes();
    out.resize(n, b'x');
    out
}

/// A request body the client streams without declaring its length.
struct Chunks(Vec<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let next =
            if self.0.is_empty() { None } else { Some(Ok(hyper::body::Frame::data(self.0.remove(0)))) };
        std::task::Poll::Ready(next)
    }
}

/// `body` cut into 4 KiB pieces.
fn pieces(body: &[u8]) -> Chunks {
    Chunks(body.chunks(4 * KIB).map(Bytes::copy_from_slice).collect())
}

/// An HTTP/2 connection by hyper's own client; the handle resolves (to the
/// moment) when the connection ends.
async fn h2_conn(
    s: &Server,
) -> (hyper::client::conn::http2::SendRequest<Chunks>, tokio::task::JoinHandle<Instant>) {
    let io = tls(s, &[b"h2"]).await;
    assert_eq!(io.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "the server did not choose h2");
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .expect("HTTP/2 handshake");
    let done = tokio::spawn(async move {
        let _ = conn.await;
        Instant::now()
    });
    (send, done)
}

/// One request over an HTTP/2 connection; the status.
async fn h2_request(
    send: &mut hyper::client::conn::http2::SendRequest<Chunks>,
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Chunks,
) -> u16 {
    use http_body_util::BodyExt as _;
    let mut b = hyper::Request::builder().method(method).uri(s.at(path));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send.ready().await.expect("the HTTP/2 connection is gone");
    let r = tokio::time::timeout(Duration::from_secs(20), send.send_request(b.body(body).unwrap()))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = r.status().as_u16();
    let _ = r.into_body().collect().await;
    status
}

/// A chunked HTTP/1.1 request (no length declared) over a connection of its own; the status.
async fn chunked_h1(s: &Server, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    let mut t = tls(s, &[b"http/1.1"]).await;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n", s.port)
            .into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    for piece in body.chunks(4 * KIB) {
        req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = t.write_all(&req).await;
    let _ = t.flush().await;
    let r = tokio::time::timeout(Duration::from_secs(20), read_response(&mut t))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} (chunked): no answer"));
    r.status
}

/// One route with a body limit.
struct Limited {
    method: &'static str,
    path: &'static str,
    form: bool,
    /// A body of exactly `n` bytes for this route.
    body: fn(usize) -> Vec<u8>,
    /// Whether a body right at the limit is harmless to send (it is processed).
    at_limit_ok: bool,
}

#[tokio::test]
async fn bodies_over_each_routes_limit_are_413_however_they_are_sent() {
    let s = Server::start(&[]);
    s.add_user("victim", "victim-password-1", &[]);
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    let cookie = format!("JSESSIONID={admin}");
    const LIMIT: usize = 16 * KIB;
    let routes = [
        Limited {
            method: "POST",
            path: LOGIN,
            form: false,
            body: |n| json_of_len(json!({ "username": "nobody" }), "password", n),
            at_limit_ok: true,
        },
        Limited {
            method: "PUT",
            path: "/rest/api/2/myself/password",
            form: false,
            body: |n| json_of_len(json!({ "currentPassword": "wrong" }), "password", n),
            at_limit_ok: true,
        },
        Limited {
            method: "POST",
            path: "/rest/authd/1/admin/users",
            form: false,
            body: |n| json_of_len(json!({ "name": "padded" }), "password", n),
            at_limit_ok: true,
        },
        Limited {
            method: "PUT",
            path: "/rest/authd/1/admin/users/victim/password",
            form: false,
            body: |n| json_of_len(json!({}), "password", n),
            at_limit_ok: false,
        },
        Limited {
            method: "PUT",
            path: "/rest/authd/1/admin/users/victim/roles",
            form: false,
            body: |n| json_of_len(json!({ "roles": [] }), "pad", n),
            at_limit_ok: false,
        },
        Limited {
            method: "POST",
            path: "/rest/authd/1/admin/users/victim/tokens",
            form: false,
            body: |n| json_of_len(json!({}), "label", n),
            at_limit_ok: false,
        },
        Limited {
            method: "POST",
            path: "/rest/authd/1/tokens",
            form: false,
            body: |n| json_of_len(json!({}), "label", n),
            at_limit_ok: true,
        },
        Limited {
            method: "POST",
            path: "/login.jsp",
            form: true,
            body: |n| form_of_len("os_username=nobody", "os_password", n),
            at_limit_ok: true,
        },
        Limited {
            method: "POST",
            path: "/account/logout",
            form: true,
            body: |n| form_of_len("x=1", "pad", n),
            at_limit_ok: false,
        },
        Limited {
            method: "POST",
            path: "/account/sessions/revoke",
            form: true,
            body: |n| form_of_len("handle=0000", "pad", n),
            at_limit_ok: false,
        },
    ];
    let (mut h2, _) = h2_conn(&s).await;
    for route in &routes {
        let (m, p) = (route.method, route.path);
        let ctype = if route.form { "application/x-www-form-urlencoded" } else { "application/json" };
        let headers =
            [("cookie", cookie.as_str()), ("content-type", ctype), ("x-atlassian-token", "no-check")];
        let send = |body: Vec<u8>| {
            let mut b = s.bare_client().request(m.parse().unwrap(), s.at(p));
            for (k, v) in headers {
                b = b.header(k, v);
            }
            b.body(body).send()
        };
        let over = (route.body)(LIMIT + 1);
        // Declared length (HTTP/2 by ALPN).
        let r = send(over.clone()).await.unwrap();
        assert_eq!(r.status(), 413, "{m} {p}: {} bytes with Content-Length", over.len());
        assert_jira_error(&r.json().await.unwrap_or_else(|e| panic!("{m} {p}: 413 body is not JSON: {e}")));
        // Chunked over HTTP/1.1, no length declared.
        assert_eq!(chunked_h1(&s, m, p, &headers, &over).await, 413, "{m} {p}: chunked over HTTP/1.1");
        // Streamed over HTTP/2, no length declared.
        assert_eq!(
            h2_request(&mut h2, &s, m, p, &headers, pieces(&over)).await,
            413,
            "{m} {p}: streamed over HTTP/2"
        );
        // A much larger body is refused the same way (and not read to the end).
        let huge = vec![b'x'; 4 * 1024 * KIB];
        assert_eq!(
            h2_request(&mut h2, &s, m, p, &headers, pieces(&huge)).await,
            413,
            "{m} {p}: 4 MiB streamed"
        );
        if route.at_limit_ok {
            let at = (route.body)(LIMIT);
            let r = send(at).await.unwrap();
            let status = r.status().as_u16();
            assert!(status != 413 && status < 500, "{m} {p}: a body of exactly 16 KiB gave {status}");
        }
    }
    // None of the refused requests did anything: the admin is still logged in, the victim unchanged.
    assert_eq!(session_status(&s, &admin).await, 200, "a refused request logged the admin out");
    login_id(&s, "victim", "victim-password-1").await;
    assert_eq!(healthz(&s).await, 200);
}

#[tokio::test]
async fn proxied_bodies_over_max_body_are_413_and_never_reach_the_app() {
    let (app, s) = start_pair(&["--max-body", "4096"]);
    let c = s.bare_client();
    let r = c.post(s.at("/upload/at-limit")).body(vec![b'a'; 4096]).send().await.unwrap();
    assert_eq!(r.status(), 200, "a body at --max-body is forwarded");
    let r = c.post(s.at("/upload/declared")).body(vec![b'a'; 4097]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_jira_error(&r.json().await.unwrap());
    let (mut h2, _) = h2_conn(&s).await;
    let status = h2_request(&mut h2, &s, "PUT", "/upload/streamed", &[], pieces(&[b'b'; 64 * KIB])).await;
    assert_eq!(status, 413, "a streamed body over --max-body");
    let status = chunked_h1(&s, "POST", "/upload/chunked", &[], &[b'c'; 64 * KIB]).await;
    assert_eq!(status, 413, "a chunked body over --max-body");
    assert!(app.seen_at("/upload/declared").is_empty(), "the app got a declared oversized body");
    for path in ["/upload/streamed", "/upload/chunked"] {
        assert!(
            app.seen_at(path).iter().all(|seen| !seen.complete && seen.body.len() <= 4096),
            "the app got more than --max-body at {path}"
        );
    }
    // The same HTTP/2 connection and the app are still in service.
    let status = h2_request(&mut h2, &s, "POST", "/upload/after", &[], pieces(&[b'd'; 100])).await;
    assert_eq!(status, 200);
    assert_eq!(healthz(&s).await, 200);
}

/// curl's status code for a request with `body` from a file (`000` when
/// curl saw no answer: a reset connection or stream).
fn curl_status(
    s: &Server,
    proto: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &std::path::Path,
) -> String {
    let cert = s.data.join("tls/cert.pem");
    let mut cmd = std::process::Command::new("curl");
    // No `Expect: 100-continue` (curl adds it to big HTTP/1.1 bodies): send the body at once.
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", proto, "-X", method]);
    cmd.args(["-H", "Expect:"]);
    cmd.arg("--cacert").arg(&cert);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg("--data-binary").arg(format!("@{}", body.display())).arg(s.at(path));
    let out = cmd.output().expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn refusals_reach_stock_curl_while_it_is_still_sending_the_body() {
    // An answer decided before the body is read (413 by Content-Length, 415,
    // a foreign Origin) must reach a client still sending: over HTTP/2 curl
    // reported "000" (stream reset) for most of these before authd drained
    // unread bodies.
    let (_app, s) = start_pair(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, len: usize| {
        let p = dir.path().join(name);
        std::fs::write(&p, vec![b'a'; len]).unwrap();
        p
    };
    let (k100, m1, m3) = (file("100k", 100_000), file("1m", 1 << 20), file("3m", 3_000_000));
    let json = "Content-Type: application/json";
    let cases: [(&str, &[&str], &std::path::Path, &str); 6] = [
        (LOGIN, &[json], &k100, "413"),
        (LOGIN, &[json], &m3, "413"),
        (LOGIN, &["Content-Type: text/plain"], &m1, "415"),
        (LOGIN, &[json, "Origin: https://evil.example"], &m1, "403"),
        // Through the proxy: --max-body is 1 MiB.
        ("/app/upload", &[json], &m3, "413"),
        ("/app/upload", &["Content-Type: text/plain", "Origin: https://evil.example"], &m1, "403"),
    ];
    for proto in ["--http1.1", "--http2"] {
        for (path, headers, body, want) in &cases {
            for round in 0..3 {
                let got = curl_status(&s, proto, "POST", path, headers, body);
                assert_eq!(&got, want, "{proto} POST {path} {headers:?} with {body:?}, round {round}");
            }
        }
    }
    assert_eq!(healthz(&s).await, 200);
}

// ---------------------------------------------------------------------------
// Slow, silent and idle clients.

/// Connects over TCP and sends `bytes` (perhaps none), then waits for the server to hang up.
async fn tcp_sending(s: &Server, what: &str, bytes: &[u8]) -> Result<(), String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    let started = Instant::now();
    tcp.write_all(bytes).await.unwrap();
    let (open, seen) = open_for(&mut tcp, started, LIMIT).await;
    about_ten_seconds(what, open, &seen)
}

/// Completes the TLS handshake, sends `bytes`, then waits for the server to hang up.
async fn tls_sending(s: &Server, what: &str, alpn: &[u8], bytes: &[u8]) -> Result<(), String> {
    let mut t = tls(s, &[alpn]).await;
    let started = Instant::now();
    t.write_all(bytes).await.unwrap();
    t.flush().await.unwrap();
    let (open, seen) = open_for(&mut t, started, LIMIT).await;
    check_no_success(what, &seen)?;
    about_ten_seconds(what, open, &seen)
}

/// A login whose body stops after 10 of its 100 bytes: a Jira-shaped 408
/// after about ten seconds (a request in flight is never idle, so nothing
/// else would ever end it).
async fn stalled_body(s: &Server) -> Result<(), String> {
    let what = "a login body that stops coming";
    let mut t = tls(s, &[b"http/1.1"]).await;
    let head = format!(
        "POST {LOGIN} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"username\"",
        s.port
    );
    let started = Instant::now();
    t.write_all(head.as_bytes()).await.unwrap();
    t.flush().await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = LIMIT.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, t.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return Err(format!("{what}: no answer within {LIMIT:?}")),
        }
    }
    let took = started.elapsed();
    match raw_status(&seen) {
        Some(408) if (Duration::from_secs(9)..Duration::from_secs(15)).contains(&took) => Ok(()),
        status => Err(format!("{what}: {status:?} after {took:?}")),
    }
}

/// A cut-off slow request may be answered with an error status, never served.
fn check_no_success(what: &str, seen: &[u8]) -> Result<(), String> {
    match raw_status(seen) {
        Some(code) if code < 400 => Err(format!("{what}: a partial request head was answered {code}")),
        _ => Ok(()),
    }
}

/// Sends a request head one header line per second (slowloris).
async fn trickle(s: &Server) -> Result<(), String> {
    let t = tls(s, &[b"http/1.1"]).await;
    let started = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(t);
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
        for i in 0.. {
            if wr.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err()
                || wr.flush().await.is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let (open, seen) = open_for(&mut rd, started, LIMIT).await;
    writer.abort();
    check_no_success("a head sent one line per second", &seen)?;
    about_ten_seconds("a head sent one line per second", open, &seen)
}

/// Calls `GET /healthz` every half second until `stop`; the statuses.
async fn keep_asking(s: &Server, stop: &std::sync::atomic::AtomicBool) -> Vec<u16> {
    let mut seen = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        seen.push(healthz(s).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    seen
}

/// One slow-client case: `Err` says what went wrong.
type Case<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + 'a>>;

/// Runs `cases` while another client keeps asking for `/healthz`; panics
/// with every failed case, or if the other client was not served throughout.
async fn run_cases_while_serving(s: &Server, cases: Vec<Case<'_>>) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let all = async {
        let results = futures_join_all(cases).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        results
    };
    let (results, served) = tokio::join!(all, keep_asking(s, &stop));
    assert!(
        served.len() >= 3 && served.iter().all(|&c| c == 200),
        "other clients were not served meanwhile: {served:?}"
    );
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Awaits every future concurrently, in order of the list.
async fn futures_join_all<T>(
    futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + '_>>>,
) -> Vec<T> {
    let mut slots: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    let mut futs: Vec<_> = futs.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(slots.iter_mut()) {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *slot = Some(v);
                        *f = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    slots.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn slow_clients_are_cut_off_after_about_ten_seconds_while_others_are_served() {
    let s = Server::start(&[]);
    run_cases_while_serving(
        &s,
        vec![
            Box::pin(tcp_sending(&s, "a TCP client that never sends a ClientHello", b"")),
            // A TLS record header announcing a ClientHello that never comes.
            Box::pin(tcp_sending(
                &s,
                "a TCP client that sends 5 bytes of a ClientHello",
                &[0x16, 0x03, 0x01, 0x02, 0x00],
            )),
            Box::pin(tls_sending(
                &s,
                "half a request head",
                b"http/1.1",
                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n",
            )),
            Box::pin(tls_sending(&s, "a request line without its end", b"http/1.1", b"GET /healthz HTT")),
            Box::pin(trickle(&s)),
            Box::pin(stalled_body(&s)),
        ],
    )
    .await;
}

/// With `--max-conns 2`, two clients that go silent after their TLS
/// handshakes take every slot; the server must be serving again once the
/// header read timeout has cut them off.
async fn silent_clients_release_their_slots(s: &Server) -> Result<(), String> {
    let started = Instant::now();
    let a = tls(s, &[b"http/1.1"]).await;
    let b = tls(s, &[b"h2"]).await;
    if s.bare_client().get(s.at("/healthz")).send().await.is_ok() {
        return Err("--max-conns 2: a third connection was served".into());
    }
    let deadline = started + Duration::from_secs(15);
    let result = loop {
        if let Ok(r) = s.bare_client().get(s.at("/healthz")).send().await {
            break if r.status() == 200 { Ok(()) } else { Err(format!("/healthz: {}", r.status())) };
        }
        if Instant::now() > deadline {
            break Err(format!(
                "--max-conns 2: two clients silent after their TLS handshakes still held every slot after {:.1?}",
                started.elapsed()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop((a, b));
    result
}

#[tokio::test]
async fn a_client_silent_after_the_tls_handshake_is_cut_off_after_about_ten_seconds() {
    let s = Server::start(&[]);
    let small = Server::start(&["--max-conns", "2"]);
    run_cases_while_serving(
        &s,
        vec![
            Box::pin(tls_sending(&s, "a TLS client (ALPN http/1.1) that sends nothing", b"http/1.1", b"")),
            Box::pin(tls_sending(&s, "a TLS client (ALPN h2) that sends nothing", b"h2", b"")),
            Box::pin(tls_sending(
                &s,
                "a TLS client that sends part of the HTTP/2 preface",
                b"h2",
                b"PRI * HTTP/2.0\r\n",
            )),
            Box::pin(silent_clients_release_their_slots(&small)),
        ],
    )
    .await;
}

/// `--keep-alive-timeout` in these tests, and how long the test waits at most.
const KEEP_ALIVE: Duration = Duration::from_secs(3);
const IDLE_LIMIT: Duration = Duration::from_secs(15);

/// One request on a keep-alive HTTP/1.1 connection, a second one at once,
/// then silence; how long until the server closes it.
async fn idle_h1(s: &Server) -> Result<Duration, String> {
    let mut t = tls(s, &[b"http/1.1"]).await;
    let req = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", s.port);
    for _ in 0..2 {
        t.write_all(req.as_bytes()).await.unwrap();
        let r =
            tokio::time::timeout(Duration::from_secs(10), read_response(&mut t)).await.expect("no answer");
        if r.status != 200 {
            return Err(format!("HTTP/1.1 keep-alive request: {}", r.status));
        }
    }
    let started = Instant::now();
    match open_for(&mut t, started, IDLE_LIMIT).await {
        (Some(t), _) => Ok(t),
        (None, _) => {
            Err(format!("an idle HTTP/1.1 keep-alive connection was still open after {IDLE_LIMIT:?}"))
        }
    }
}

/// The same over HTTP/2 (hyper's client, which keeps the connection open while idle).
async fn idle_h2(s: &Server) -> Result<Duration, String> {
    let (mut send, done) = h2_conn(s).await;
    for _ in 0..2 {
        let status = h2_request(&mut send, s, "GET", "/healthz", &[], Chunks(Vec::new())).await;
        if status != 200 {
            return Err(format!("HTTP/2 request: {status}"));
        }
    }
    let started = Instant::now();
    let closed = tokio::time::timeout(IDLE_LIMIT, done).await;
    drop(send);
    match closed {
        Ok(Ok(at)) => Ok(at.duration_since(started)),
        _ => Err(format!("an idle HTTP/2 connection was still open after {IDLE_LIMIT:?}")),
    }
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_keep_alive_timeout() {
    let s = Server::start(&["--keep-alive-timeout", "3s"]);
    let check = |what: &'static str, r: Result<Duration, String>| {
        r.and_then(|t| {
            eprintln!("{what}: closed after {t:.1?} idle");
            // The clock starts at the server's last byte, a little before ours.
            if t < KEEP_ALIVE - Duration::from_millis(500) {
                Err(format!("{what}: closed after only {t:.1?} idle; --keep-alive-timeout is {KEEP_ALIVE:?}"))
            } else if t > KEEP_ALIVE + Duration::from_secs(3) {
                Err(format!("{what}: closed only after {t:.1?} idle; --keep-alive-timeout is {KEEP_ALIVE:?}"))
            } else {
                Ok(())
            }
        })
    };
    run_cases_while_serving(
        &s,
        vec![
            Box::pin(async { check("HTTP/1.1", idle_h1(&s).await) }),
            Box::pin(async { check("HTTP/2", idle_h2(&s).await) }),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_request_that_runs_longer_than_the_keep_alive_timeout_is_not_cut_off() {
    let (_app, s) = crate::gateway::start_pair(&["--keep-alive-timeout", "1s"]);
    let c = s.bare_client();
    for _ in 0..2 {
        // The app takes 2.5 s to answer; the same connection is reused.
        let r = c.get(s.at("/slow?slow_ms=2500")).send().await.expect("the slow request was cut off");
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["path"], "/slow?slow_ms=2500");
    }
}

// ---------------------------------------------------------------------------
// --max-conns.

/// A TLS connection that has been served `GET /healthz` and stays open, idle.
async fn served_conn(s: &Server) -> TlsStream<TcpStream> {
    // A connection just dropped (a probe's) may hold its slot a moment longer.
    let mut t = tls_h1_when_free(s).await;
    let req = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", s.port);
    t.write_all(req.as_bytes()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), read_response(&mut t)).await.expect("no answer");
    assert_eq!(r.status, 200);
    t
}

/// Asserts that a new connection is refused: closed before or during the TLS handshake.
async fn refused(s: &Server, what: &str) {
    match tokio::time::timeout(Duration::from_secs(5), try_tls(s, &[b"http/1.1"])).await {
        Err(_) => panic!("{what}: a connection over the limit hung instead of being closed"),
        Ok(Ok(mut t)) => {
            // Handshake done (it should not be): it must at least not be served.
            let req = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", s.port);
            let _ = t.write_all(req.as_bytes()).await;
            let (open, seen) = open_for(&mut t, Instant::now(), Duration::from_secs(5)).await;
            panic!(
                "{what}: a connection over the limit completed its handshake (closed: {open:?}, answer {:?})",
                String::from_utf8_lossy(&seen)
            );
        }
        Ok(Err(_)) => {}
    }
    assert!(
        s.bare_client().get(s.at("/healthz")).send().await.is_err(),
        "{what}: a request over the limit was served"
    );
}

/// Polls `GET /healthz` on fresh connections until one is served (5 s at most).
async fn served_again(s: &Server, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(r) = s.bare_client().get(s.at("/healthz")).send().await {
            assert_eq!(r.status(), 200);
            return;
        }
        assert!(Instant::now() < deadline, "{what}: no new connection was served within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A proxied WebSocket keeps its connection's slot until it closes (hyper
/// hands the connection over after the 101, and the WebSocket must not
/// escape --max-conns), and authd stopping closes it without waiting.
#[tokio::test]
async fn a_websocket_holds_its_slot_until_it_closes_and_a_stop_closes_it() {
    let (_app, s) = start_pair(&["--max-conns", "2"]);
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    served_again(&s, "after the login's connection").await;
    let (mut ws, status, headers, _) = websocket(&s, &admin).await;
    assert_eq!(status, 101, "{headers:?}");
    ws.write_all(&ws_frame(0x1, b"ping", Some([1, 2, 3, 4]))).await.unwrap();
    let (_, _, echoed) =
        tokio::time::timeout(Duration::from_secs(10), read_frame(&mut ws)).await.unwrap().unwrap();
    assert_eq!(echoed, b"ping");
    let other = served_conn(&s).await;
    refused(&s, "a WebSocket and an idle connection at --max-conns 2").await;
    drop(other);
    served_again(&s, "after the idle connection closed").await;
    // The WebSocket closes: both slots are free.
    ws.write_all(&ws_frame(0x8, &[0x03, 0xe8], Some([1, 2, 3, 4]))).await.unwrap();
    let (opcode, _, _) =
        tokio::time::timeout(Duration::from_secs(10), read_frame(&mut ws)).await.unwrap().unwrap();
    assert_eq!(opcode, 0x8);
    drop(ws);
    let both = [served_conn(&s).await, served_conn(&s).await];
    drop(both);

    // A stop closes an open WebSocket at once instead of draining it.
    served_again(&s, "before the stop").await;
    let (mut ws, status, _, _) = websocket(&s, &admin).await;
    assert_eq!(status, 101);
    let started = Instant::now();
    let exit = s.stop_async().await;
    assert!(exit.success(), "{exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the stop waited {:?} for a WebSocket",
        started.elapsed()
    );
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), ws.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "the WebSocket stayed open after the stop: {read:?}");
}

#[tokio::test]
async fn max_conns_refuses_connections_over_the_limit_and_serves_again_when_slots_free() {
    let s = Server::start(&["--max-conns", "5"]);
    // Four idle connections; a fifth is served on the free slot.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(served_conn(&s).await);
    }
    idle.push(served_conn(&s).await);
    // All five slots taken: the sixth is closed, again and again.
    for i in 0..3 {
        refused(&s, &format!("connection #{}", 6 + i)).await;
    }
    // The connections that hold the slots still work.
    let mut first = idle.remove(0);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", s.port);
    first.write_all(req.as_bytes()).await.unwrap();
    let r =
        tokio::time::timeout(Duration::from_secs(10), read_response(&mut first)).await.expect("no answer");
    assert_eq!(r.status, 200, "an established connection stopped working at the limit");
    // Two hang up; new connections are served again.
    drop(first);
    drop(idle.remove(0));
    served_again(&s, "after two connections closed").await;
    idle.push(served_conn(&s).await);
    idle.push(served_conn(&s).await);
    refused(&s, "at the limit again").await;
    drop(idle);
    served_again(&s, "after all connections closed").await;
    // Many at once over the limit: no crash, and the server is still there.
    let mut burst = Vec::new();
    for _ in 0..50 {
        burst.push(tokio::spawn(TcpStream::connect(("127.0.0.1", s.port))));
    }
    for b in burst {
        let _ = b.await;
    }
    served_again(&s, "after a burst of 50 connections").await;
}

// ---------------------------------------------------------------------------
// HTTP/2: at most 256 concurrent streams per connection.

/// One HTTP/2 frame.
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const ACK: u8 = 1;
const REFUSED_STREAM: u32 = 7;

/// An HTTP/2 connection spoken by hand (so the test can break the rules a
/// well-behaved client library keeps).
struct RawH2 {
    io: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK integer with an `n`-bit prefix; `first` holds the pattern bits.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | u8::try_from(v).unwrap());
        return;
    }
    out.push(first | u8::try_from(max).unwrap());
    v -= max;
    while v >= 128 {
        out.push(u8::try_from(v % 128).unwrap() | 0x80);
        v /= 128;
    }
    out.push(u8::try_from(v).unwrap());
}

/// A header block of literal fields (never indexed, no Huffman).
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x10);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

impl RawH2 {
    /// Connects, sends the preface and empty SETTINGS, acknowledges the
    /// server's SETTINGS; returns the server's MAX_CONCURRENT_STREAMS.
    async fn connect(s: &Server) -> (RawH2, Option<u32>) {
        RawH2::connect_with(s, &[]).await
    }

    /// The same, sending `settings` (the SETTINGS frame's payload).
    async fn connect_with(s: &Server, settings: &[u8]) -> (RawH2, Option<u32>) {
        let io = tls(s, &[b"h2"]).await;
        assert_eq!(io.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let mut h = RawH2 { io, buf: Vec::new() };
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(SETTINGS, 0, 0, settings));
        h.send(&hello).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let f = h.next(deadline).await.expect("no SETTINGS from the server");
            if f.kind == SETTINGS && f.flags & ACK == 0 {
                let max = f
                    .payload
                    .chunks(6)
                    .find(|e| e[..2] == [0, 3])
                    .map(|e| u32::from_be_bytes(e[2..6].try_into().unwrap()));
                h.send(&frame(SETTINGS, ACK, 0, &[])).await;
                return (h, max);
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write to the HTTP/2 connection");
        self.io.flush().await.unwrap();
    }

    /// The next frame, or `None` at `deadline` or when the connection ends.
    async fn next(&mut self, deadline: Instant) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len =
                    usize::from(self.buf[0]) << 16 | usize::from(self.buf[1]) << 8 | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes(self.buf[5..9].try_into().unwrap()) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Some(f);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.io.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads frames until `stream` has its response HEADERS; the first octet
    /// of the header block (0x88 is `:status 200`, 0x8c `:status 400`), or
    /// the RST_STREAM error code as `Err`.
    async fn response_on(&mut self, stream: u32, goaways: &mut Vec<Frame>) -> Result<u8, u32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let f = self.next(deadline).await.unwrap_or_else(|| panic!("no answer on stream {stream}"));
            match f.kind {
                GOAWAY => goaways.push(f),
                HEADERS if f.stream == stream => return Ok(f.payload[0]),
                RST_STREAM if f.stream == stream => {
                    return Err(u32::from_be_bytes(f.payload[..4].try_into().unwrap()));
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn http2_streams_over_256_at_once_are_refused_and_the_connection_keeps_serving() {
    let s = Server::start(&[]);
    let (mut h, max) = RawH2::connect(&s).await;
    assert_eq!(max, Some(256), "SETTINGS_MAX_CONCURRENT_STREAMS");
    let authority = format!("127.0.0.1:{}", s.port);
    // 300 logins whose bodies never come: each stream stays open, waiting.
    let open_login = hpack(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":path", LOGIN),
        (":authority", &authority),
        ("content-type", "application/json"),
    ]);
    let mut burst = Vec::new();
    let ids: Vec<u32> = (0..300).map(|i| 1 + 2 * i).collect();
    for &id in &ids {
        burst.extend(frame(HEADERS, END_HEADERS, id, &open_login));
    }
    h.send(&burst).await;
    // The streams past the 256th are refused (RST_STREAM REFUSED_STREAM), the others left alone.
    let mut refused = Vec::new();
    let mut other = Vec::new();
    let mut goaways = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while refused.len() < 44 {
        let Some(f) = h.next(deadline).await else { break };
        match f.kind {
            RST_STREAM => {
                let code = u32::from_be_bytes(f.payload[..4].try_into().unwrap());
                if code == REFUSED_STREAM {
                    refused.push(f.stream);
                } else {
                    other.push(format!("RST_STREAM {code} on {}", f.stream));
                }
            }
            HEADERS => other.push(format!("a response on stream {}", f.stream)),
            GOAWAY => goaways.push(f),
            _ => {}
        }
    }
    assert!(goaways.is_empty(), "the server gave up the connection: {goaways:?}");
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(refused, ids[256..].to_vec(), "the streams over the limit must be refused, and only those");
    // Finishing one stream answers it (400: no user name) and frees its slot.
    h.send(&frame(DATA, END_STREAM, ids[0], b"{}")).await;
    assert_eq!(h.response_on(ids[0], &mut goaways).await, Ok(0x8c), "the finished login (400 expected)");
    // A new stream on the same connection is served (retrying while the slot is being released).
    let health =
        hpack(&[(":method", "GET"), (":scheme", "https"), (":path", "/healthz"), (":authority", &authority)]);
    let mut id = 601;
    loop {
        h.send(&frame(HEADERS, END_HEADERS | END_STREAM, id, &health)).await;
        match h.response_on(id, &mut goaways).await {
            Ok(first) => {
                assert_eq!(first, 0x88, "GET /healthz on a freed slot: not 200");
                break;
            }
            Err(REFUSED_STREAM) if id < 700 => {
                id += 2;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(code) => panic!("GET /healthz on a freed slot: RST_STREAM {code}"),
        }
    }
    assert!(goaways.is_empty(), "the server gave up the connection: {goaways:?}");
    // Another connection is served meanwhile, and the 255 waiting logins are still open.
    assert_eq!(healthz(&s).await, 200);
    let mut finished = 0;
    let mut body = Vec::new();
    for &sid in &ids[1..256] {
        body.extend(frame(DATA, END_STREAM, sid, b"{}"));
    }
    h.send(&body).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while finished < 255 {
        let f = h
            .next(deadline)
            .await
            .unwrap_or_else(|| panic!("only {finished} of 255 waiting logins were answered"));
        if f.kind == HEADERS {
            assert_eq!(f.payload[0], 0x8c, "a waiting login on stream {} was not answered 400", f.stream);
            finished += 1;
        }
        assert_ne!(f.kind, GOAWAY, "{f:?}");
        assert_ne!(f.kind, RST_STREAM, "{f:?}");
    }
}

#[tokio::test]
async fn an_http2_client_that_keeps_its_window_shut_is_closed_after_the_send_timeout() {
    // A client that never lets the answer out (SETTINGS_INITIAL_WINDOW_SIZE
    // 0) holds a request in flight, which no idle rule cuts; the send
    // timeout does, though the client keeps pinging.
    let send_timeout = Duration::from_secs(2);
    let s = Server::start(&["--send-timeout", "2s", "--max-conns", "2"]);
    let (mut h, _) = RawH2::connect_with(&s, &[0, 4, 0, 0, 0, 0]).await;
    let authority = format!("127.0.0.1:{}", s.port);
    let health =
        hpack(&[(":method", "GET"), (":scheme", "https"), (":path", "/healthz"), (":authority", &authority)]);
    h.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &health)).await;
    let started = Instant::now();
    let mut goaways = Vec::new();
    assert_eq!(h.response_on(1, &mut goaways).await, Ok(0x88), "the answer's head goes out");
    // Ping every half second; the server answers, but that is not the answer moving.
    let closed = loop {
        let deadline = Instant::now() + Duration::from_millis(500);
        let _ = h.io.write_all(&frame(PING, 0, 0, &[7; 8])).await;
        let mut ended = false;
        while let Some(f) = h.next(deadline).await {
            assert_ne!(f.kind, DATA, "the server sent data past a shut window");
            if f.kind == GOAWAY {
                goaways.push(f);
            }
        }
        if Instant::now() < deadline {
            ended = true; // the read ended before the deadline: the connection is gone
        }
        if ended || started.elapsed() > Duration::from_secs(20) {
            break started.elapsed();
        }
    };
    assert!(closed >= send_timeout, "closed after only {closed:?}");
    assert!(closed <= send_timeout * 2 + Duration::from_secs(2), "still open after {closed:?}");
    assert!(!goaways.is_empty(), "the server closed without a GOAWAY");
    // Its slot is free again: with --max-conns 2, two clients are served.
    let (a, b) = tokio::join!(healthz(&s), healthz(&s));
    assert_eq!((a, b), (200, 200));
}

/// Reads the body of an HTTP/1.1 answer to a download of `n` bytes, `rate`
/// bytes a second at most; the bytes read before the connection ended.
async fn read_slowly(t: &mut TlsStream<TcpStream>, n: usize, rate: usize) -> usize {
    let (status, _, rest) = crate::gateway::read_head(t).await;
    assert_eq!(status, 200);
    let mut got = rest.len();
    let mut buf = vec![0u8; 16 * KIB];
    let started = Instant::now();
    while got < n {
        // Keep to `rate`: wait until the bytes so far are due.
        let due = Duration::from_secs_f64(got as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        match tokio::time::timeout(Duration::from_secs(20), t.read(&mut buf)).await {
            Ok(Ok(k)) if k > 0 => got += k,
            _ => break,
        }
    }
    got
}

#[tokio::test]
async fn a_slow_reader_gets_its_whole_download_and_one_that_stops_reading_is_closed() {
    // --send-timeout counts what the client acknowledges, not only what
    // hyper writes: a slow but steady reader is never cut.
    let (_app, s) = start_pair(&["--send-timeout", "2s"]);
    let get = |n: usize| {
        format!("GET /download?n={n} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", s.port)
    };
    let n = 3 * KIB * KIB;
    let mut t = tls(&s, &[b"http/1.1"]).await;
    t.write_all(get(n).as_bytes()).await.unwrap();
    let started = Instant::now();
    let got = read_slowly(&mut t, n, 256 * KIB).await;
    assert_eq!(got, n, "a slow reader was cut off after {:?}", started.elapsed());
    assert!(started.elapsed() > Duration::from_secs(8), "the download was not slow: {:?}", started.elapsed());

    // A client that stops reading (its TCP window shuts) is closed: what
    // the kernels buffered still arrives, then the end, long before all of it.
    let n = 64 * KIB * KIB;
    let mut t = tls(&s, &[b"http/1.1"]).await;
    t.write_all(get(n).as_bytes()).await.unwrap();
    // (The app takes a second or two to make the download.)
    tokio::time::sleep(Duration::from_secs(10)).await;
    let got = read_slowly(&mut t, n, usize::MAX).await;
    assert!(got < n / 4, "a client that stopped reading was never closed ({got} of {n} bytes came)");
}

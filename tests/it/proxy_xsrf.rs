//! SPEC §7 and §9: the reverse proxy applies the XSRF rule to the app's
//! forms, passes the caller's identity, and keeps authd's secrets from the app.
//!
//! The app is a tiny hyper server on its own thread that records every
//! request it gets and answers 200 `upstream saw METHOD PATH`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::jar::*;
use crate::support::*;

/// One request as the app saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
    }

    /// The one value of header `name` (a panic if it appears more than once).
    pub fn one(&self, name: &str) -> Option<String> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} reached the app {} times: {all:?}", all.len());
        all.into_iter().next()
    }
}

/// The app behind authd.
pub struct App {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl App {
    /// Starts the app on a free loopback port, on a thread of its own.
    pub fn start() -> App {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(
                async move { serve(tokio::net::TcpListener::from_std(listener).unwrap(), seen2).await },
            );
        });
        App { url, seen }
    }

    /// Everything the app has received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests the app received for `path`.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

async fn serve(listener: tokio::net::TcpListener, seen: Arc<Mutex<Vec<Seen>>>) {
    use http_body_util::BodyExt as _;
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let seen = Arc::clone(&seen);
                async move {
                    let method = req.method().to_string();
                    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                        })
                        .collect();
                    let body =
                        req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                    let text = format!("upstream saw {method} {path}");
                    seen.lock().unwrap().push(Seen { method, path, headers, body });
                    let resp = hyper::Response::builder()
                        .status(200)
                        .header("content-type", "text/plain")
                        .header("x-upstream", "1")
                        .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

/// The app, and authd in front of it with `extra` flags.
pub fn start_pair(extra: &[&str]) -> (App, Server) {
    let app = App::start();
    let mut args = vec!["--upstream", app.url.as_str()];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    (app, s)
}

/// A request through the proxy, as `cookie`, with a body and headers.
pub async fn send(
    s: &Server,
    method: &str,
    path: &str,
    cookie: &str,
    content_type: Option<&str>,
    body: &[u8],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut b = s.bare_client().request(method.parse().unwrap(), s.at(path)).body(body.to_vec());
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    if !cookie.is_empty() {
        b = b.header("cookie", cookie);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    try_send(b, method, path).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `b`, allowing it 5 s: a proxy that loses a body leaves the app
/// waiting for it, and the client waiting for the app.
async fn try_send(b: reqwest::RequestBuilder, method: &str, path: &str) -> Result<reqwest::Response, String> {
    b.timeout(Duration::from_secs(5)).send().await.map_err(|e| {
        let why = if e.is_timeout() { "no answer within 5 s".to_string() } else { e.to_string() };
        format!("{method} {path}: {why}")
    })
}

/// Asserts `r` is the app's answer and the app got exactly `body` at `path`; returns what it saw.
pub async fn assert_forwarded(app: &App, r: reqwest::Response, path: &str, body: &[u8], what: &str) -> Seen {
    check_forwarded(app, r, path, body, what).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn check_forwarded(
    app: &App,
    r: reqwest::Response,
    path: &str,
    body: &[u8],
    what: &str,
) -> Result<Seen, String> {
    let status = r.status();
    let upstream = header(&r, "x-upstream");
    let text = r.text().await.unwrap_or_default();
    if status != 200 || upstream.as_deref() != Some("1") {
        return Err(format!("{what}: not forwarded: {status} {text}"));
    }
    let seen = app.seen_at(path);
    let last = seen.last().ok_or_else(|| format!("{what}: the app saw nothing at {path}"))?;
    if last.body != body {
        return Err(format!(
            "{what}: the body changed on the way: sent {:?}, the app got {:?}",
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&last.body)
        ));
    }
    Ok(last.clone())
}

/// Asserts `r` is authd's 403 `XSRF check failed` and the app never saw `path`.
pub async fn assert_refused(app: &App, r: reqwest::Response, path: &str, what: &str) {
    check_refused(app, r, path, what).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn check_refused(app: &App, r: reqwest::Response, path: &str, what: &str) -> Result<(), String> {
    let status = r.status();
    let upstream = header(&r, "x-upstream");
    let text = r.text().await.unwrap_or_default();
    if status != 403 || !text.contains("XSRF check failed") || upstream.is_some() {
        return Err(format!("{what}: expected authd's 403 XSRF check failed, got {status} {text}"));
    }
    if !app.seen_at(path).is_empty() {
        return Err(format!("{what}: the app received the request"));
    }
    Ok(())
}

/// Runs a table of requests through the proxy; every case is tried, and
/// the failures are reported together.
async fn run_cases(app: &App, s: &Server, prefix: &str, cases: Vec<Case<'_>>) {
    let mut failures = Vec::new();
    for (i, c) in cases.into_iter().enumerate() {
        let path = format!("{prefix}/{i}");
        let mut b = s.bare_client().request(c.method.parse().unwrap(), s.at(&path)).body(c.body.clone());
        if let Some(ct) = c.content_type {
            b = b.header("content-type", ct);
        }
        if !c.cookie.is_empty() {
            b = b.header("cookie", c.cookie);
        }
        for (k, v) in &c.headers {
            b = b.header(*k, *v);
        }
        let r = match try_send(b, c.method, &path).await {
            Ok(r) => r,
            Err(e) => {
                let got = match app.seen_at(&path).last() {
                    Some(seen) => format!("the app got a body of {} bytes", seen.body.len()),
                    None => "the app never got the whole request".to_string(),
                };
                failures.push(format!("{}: {e}; sent a body of {} bytes, {got}", c.what, c.body.len()));
                continue;
            }
        };
        let outcome = if c.forwarded {
            check_forwarded(app, r, &path, &c.body, c.what).await.and_then(|seen| {
                if seen.method != c.method {
                    return Err(format!("{}: the app got {}", c.what, seen.method));
                }
                match (c.cookie.contains(SESSION), seen.all("x-authd-user")) {
                    (true, u) if u.len() != 1 => Err(format!("{}: X-Authd-User {u:?}", c.what)),
                    _ => Ok(()),
                }
            })
        } else {
            check_refused(app, r, &path, c.what).await
        };
        if let Err(e) = outcome {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// One request through the proxy and whether the app should get it.
struct Case<'a> {
    what: &'a str,
    method: &'a str,
    cookie: &'a str,
    content_type: Option<&'a str>,
    body: Vec<u8>,
    headers: Vec<(&'a str, &'a str)>,
    forwarded: bool,
}

const FORM: &str = "application/x-www-form-urlencoded";

fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----authdTestBoundary7MA4YWxk";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body.into_bytes())
}

#[tokio::test]
async fn a_form_carrying_a_session_cookie_must_show_its_token() {
    let (app, s) = start_pair(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), false).await;
    let token = jar.xsrf.clone().unwrap();
    assert!(token.ends_with("_lin"), "{token}");
    let cookie = jar.header();
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    let lout = {
        let r = get_with(&s, "/login.jsp", "").await;
        set_value(&r, XSRF).expect("anonymous token")
    };
    let (mp_ct, mp_with) = multipart(&[("summary", "hello"), ("atl_token", &token)]);
    let (_, mp_without) = multipart(&[("summary", "hello")]);
    // As Chromium writes a file part: `"` as %22 in the name, `;` as is.
    let file = "Content-Disposition: form-data; name=\"f\"; filename=\"report; v2 %22final%22.pdf\"\r\n\
                Content-Type: application/pdf\r\n\r\n%PDF-1.4";
    let mp_file = {
        let text = String::from_utf8(mp_with.clone()).unwrap();
        let boundary = mp_ct.split("boundary=").nth(1).unwrap();
        text.replacen(&format!("--{boundary}\r\n"), &format!("--{boundary}\r\n{file}\r\n--{boundary}\r\n"), 1)
            .into_bytes()
    };
    let with_field = urlencode(&[("summary", "hello"), ("atl_token", &token)]);
    let plain_with = format!("summary=hello\r\natl_token={token}\r\n");

    type Row<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, Vec<(&'a str, &'a str)>, bool);
    let rows: Vec<Row> = vec![
        ("form without token", "POST", Some(FORM), b"summary=hello".to_vec(), vec![], false),
        ("form with token", "POST", Some(FORM), with_field.clone().into_bytes(), vec![], true),
        (
            "form with charset, no token",
            "POST",
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            b"summary=hello".to_vec(),
            vec![],
            false,
        ),
        (
            "form in odd case, no token",
            "POST",
            Some("Application/X-WWW-Form-URLEncoded"),
            b"a=1".to_vec(),
            vec![],
            false,
        ),
        (
            "form with tampered token",
            "POST",
            Some(FORM),
            urlencode(&[("atl_token", &tampered)]).into_bytes(),
            vec![],
            false,
        ),
        (
            "form with an anonymous token",
            "POST",
            Some(FORM),
            urlencode(&[("atl_token", &lout)]).into_bytes(),
            vec![],
            false,
        ),
        ("multipart without token", "POST", Some(&mp_ct), mp_without.clone(), vec![], false),
        ("multipart with token", "POST", Some(&mp_ct), mp_with.clone(), vec![], true),
        ("text/plain without token", "POST", Some("text/plain"), b"summary=hello".to_vec(), vec![], false),
        ("text/plain with token", "POST", Some("text/plain"), plain_with.clone().into_bytes(), vec![], true),
        // SPEC §7 names the form content types; a request without one is
        // not a form (`curl -X DELETE`, a bodiless POST).
        ("no content type, no token", "POST", None, b"summary=hello".to_vec(), vec![], true),
        ("no content type, empty body", "POST", None, vec![], vec![], true),
        (
            "no content type, header token",
            "POST",
            None,
            b"x".to_vec(),
            vec![("X-Atlassian-Token", &token)],
            true,
        ),
        ("JSON without token", "POST", Some("application/json"), b"{\"a\":1}".to_vec(), vec![], true),
        (
            "X-Atlassian-Token: no-check",
            "POST",
            Some(FORM),
            b"summary=hello".to_vec(),
            vec![("X-Atlassian-Token", "no-check")],
            true,
        ),
        (
            "X-Atlassian-Token: token",
            "POST",
            Some(FORM),
            b"a=1".to_vec(),
            vec![("X-Atlassian-Token", &token)],
            true,
        ),
        ("X-XSRF-Token: token", "POST", Some(FORM), b"a=1".to_vec(), vec![("X-XSRF-Token", &token)], true),
        (
            "empty token headers, token in the form",
            "POST",
            Some(FORM),
            with_field.clone().into_bytes(),
            vec![("X-XSRF-Token", ""), ("X-Atlassian-Token", "")],
            true,
        ),
        (
            "a file whose name holds `;` and a quote, token in the form",
            "POST",
            Some(&mp_ct),
            mp_file.clone(),
            vec![],
            true,
        ),
        (
            "X-XSRF-Token: tampered",
            "POST",
            Some(FORM),
            b"a=1".to_vec(),
            vec![("X-XSRF-Token", &tampered)],
            false,
        ),
        (
            "token only in the cookie",
            "POST",
            Some(FORM),
            b"a=1".to_vec(),
            vec![],
            false, // the cookie is sent with every case; on its own it proves nothing
        ),
        ("PUT form without token", "PUT", Some(FORM), b"a=1".to_vec(), vec![], false),
        ("PATCH text/plain without token", "PATCH", Some("text/plain"), b"a=1".to_vec(), vec![], false),
        ("DELETE form without token", "DELETE", Some(FORM), b"a=1".to_vec(), vec![], false),
        ("DELETE without a content type or token", "DELETE", None, vec![], vec![], true),
        ("DELETE with header token", "DELETE", None, vec![], vec![("X-Atlassian-Token", &token)], true),
        ("PUT JSON without token", "PUT", Some("application/json"), b"{}".to_vec(), vec![], true),
        ("GET needs no token", "GET", None, vec![], vec![], true),
    ];
    let cases = rows
        .into_iter()
        .map(|(what, method, content_type, body, headers, forwarded)| Case {
            what,
            method,
            cookie: &cookie,
            content_type,
            body,
            headers,
            forwarded,
        })
        .collect();
    run_cases(&app, &s, "/app/case", cases).await;
}

#[tokio::test]
async fn a_remember_me_cookie_alone_also_needs_the_token() {
    let (app, s) = start_pair(&[]);
    let mut jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    jar.session = None;
    let cookie = format!("{REMEMBER}={}", jar.remember.as_ref().unwrap());
    let r = send(&s, "POST", "/app/r1", &cookie, Some(FORM), b"a=1", &[]).await;
    assert_refused(&app, r, "/app/r1", "remember-me cookie, no token").await;
}

#[tokio::test]
async fn a_stale_session_cookie_is_cleared_with_the_refusal() {
    // SPEC §7: a form post carrying a session cookie needs the token, even a
    // cookie whose session ended. The refusal clears that cookie, so the
    // browser's next (anonymous) post goes through.
    let (app, s) = start_pair(&[]);
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    let r = s.bare_client().delete(s.at("/rest/auth/1/session")).header("cookie", format!("{SESSION}={id}"));
    assert_eq!(r.send().await.unwrap().status(), 204);
    let r = send(&s, "POST", "/app/stale", &format!("{SESSION}={id}"), Some(FORM), b"a=1", &[]).await;
    let cleared =
        set_cookies(&r).iter().any(|c| c.starts_with(&format!("{SESSION}=;")) && c.contains("Max-Age=0"));
    assert_refused(&app, r, "/app/stale", "a stale session cookie, no token").await;
    assert!(cleared, "the stale session cookie was not cleared");
    let r = send(&s, "POST", "/app/stale", "", Some(FORM), b"a=1", &[]).await;
    let seen = assert_forwarded(&app, r, "/app/stale", b"a=1", "the next, anonymous post").await;
    assert_eq!(seen.all("x-authd-user"), Vec::<String>::new());
}

#[tokio::test]
async fn anonymous_forms_pass_and_reach_the_app_without_an_identity() {
    let (app, s) = start_pair(&[]);
    let spoof = [
        ("X-Authd-User", "admin"),
        ("X-AUSERNAME", "admin"),
        ("X-Authd-Roles", "admin"),
        ("X-Authd-Xsrf-Token", "forged"),
    ];
    let r = send(&s, "POST", "/app/anon", "other=1", Some(FORM), b"a=1", &spoof).await;
    let seen = assert_forwarded(&app, r, "/app/anon", b"a=1", "anonymous form").await;
    for (name, _) in spoof {
        assert_eq!(seen.all(name), Vec::<String>::new(), "the client's {name} reached the app");
    }
    assert_eq!(seen.one("cookie").as_deref(), Some("other=1"));
}

#[tokio::test]
async fn the_app_gets_the_identity_and_never_authds_secret_cookies() {
    let (app, s) = start_pair(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let token = jar.xsrf.clone().unwrap();
    let cookie = format!("theme=dark; {}; app_session=abc", jar.header());
    let spoof = [("X-Authd-User", "mallory"), ("X-AUSERNAME", "mallory"), ("X-Authd-Roles", "")];
    let r = send(&s, "GET", "/app/whoami?x=1", &cookie, None, b"", &spoof).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"));
    let seen = app.seen_at("/app/whoami?x=1").pop().expect("forwarded");
    assert_eq!(seen.one("x-authd-user").as_deref(), Some("admin"));
    assert_eq!(seen.one("x-ausername").as_deref(), Some("admin"));
    assert!(seen.one("x-authd-roles").is_some_and(|r| r.split(',').any(|x| x.trim() == "admin")));
    assert_eq!(
        seen.one("x-authd-xsrf-token").as_deref(),
        Some(token.as_str()),
        "the app needs the token for its forms"
    );
    let cookies = seen.all("cookie").join("; ");
    for secret in [jar.session.as_ref().unwrap(), jar.remember.as_ref().unwrap()] {
        assert!(!cookies.contains(secret.as_str()), "a secret cookie reached the app: {cookies}");
        for (_, v) in &seen.headers {
            assert!(!v.contains(secret.as_str()), "a secret reached the app: {:?}", seen.headers);
        }
    }
    assert!(!cookies.contains(SESSION) && !cookies.contains(REMEMBER), "{cookies}");
    for kept in ["theme=dark", "app_session=abc", &format!("{XSRF}={token}")] {
        assert!(cookies.contains(kept), "{kept} did not reach the app: {cookies}");
    }
}

#[tokio::test]
async fn another_users_token_is_refused_through_the_proxy() {
    let (app, s) = start_pair(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let admin = api_login(&s, "admin", &s.admin_pw(), false).await;
    let bob = api_login(&s, "bob", "bob-password-1", false).await;
    let bobs = bob.xsrf.clone().unwrap();
    let admins = admin.xsrf.clone().unwrap();
    // Admin's session with bob's token, in the form and in the header.
    let r = send(
        &s,
        "POST",
        "/app/b1",
        &admin.header(),
        Some(FORM),
        urlencode(&[("atl_token", &bobs)]).as_bytes(),
        &[],
    )
    .await;
    assert_refused(&app, r, "/app/b1", "bob's token in admin's form").await;
    let r = send(&s, "POST", "/app/b2", &admin.header(), Some(FORM), b"a=1", &[("X-Atlassian-Token", &bobs)])
        .await;
    assert_refused(&app, r, "/app/b2", "bob's token in admin's header").await;
    // Even with bob's token also in the cookie.
    let cookie = format!("{SESSION}={}; {XSRF}={bobs}", admin.session.as_ref().unwrap());
    let r =
        send(&s, "POST", "/app/b3", &cookie, Some(FORM), urlencode(&[("atl_token", &bobs)]).as_bytes(), &[])
            .await;
    assert_refused(&app, r, "/app/b3", "bob's token in admin's form and cookie").await;
    // And the other way round.
    let r = send(
        &s,
        "POST",
        "/app/b4",
        &bob.header(),
        Some(FORM),
        urlencode(&[("atl_token", &admins)]).as_bytes(),
        &[],
    )
    .await;
    assert_refused(&app, r, "/app/b4", "admin's token in bob's form").await;
    // Each with its own token is fine.
    let body = urlencode(&[("atl_token", &bobs)]);
    let r = send(&s, "POST", "/app/b5", &bob.header(), Some(FORM), body.as_bytes(), &[]).await;
    let seen = assert_forwarded(&app, r, "/app/b5", body.as_bytes(), "bob's own token").await;
    assert_eq!(seen.one("x-authd-user").as_deref(), Some("bob"));
}

#[tokio::test]
async fn foreign_origins_and_cross_site_requests_are_refused_through_the_proxy() {
    let (app, s) = start_pair(&["--cors-origin", "https://app.example"]);
    let jar = api_login(&s, "admin", &s.admin_pw(), false).await;
    let token = jar.xsrf.clone().unwrap();
    let good = urlencode(&[("atl_token", &token)]);
    let cookie = jar.header();
    let own = s.url.clone();
    type Row<'a> = (&'a str, &'a str, Option<&'a str>, Vec<(&'a str, &'a str)>, bool);
    let rows: Vec<Row> = vec![
        ("foreign Origin, valid token", &cookie, Some(FORM), vec![("Origin", "https://evil.example")], false),
        ("Origin null", &cookie, Some(FORM), vec![("Origin", "null")], false),
        ("cross-site, valid token", &cookie, Some(FORM), vec![("Sec-Fetch-Site", "cross-site")], false),
        (
            "own Origin but cross-site",
            &cookie,
            Some(FORM),
            vec![("Origin", &own), ("Sec-Fetch-Site", "cross-site")],
            false,
        ),
        (
            "foreign Origin, JSON",
            &cookie,
            Some("application/json"),
            vec![("Origin", "https://evil.example")],
            false,
        ),
        (
            "foreign Origin, no-check",
            &cookie,
            Some(FORM),
            vec![("Origin", "https://evil.example"), ("X-Atlassian-Token", "no-check")],
            false,
        ),
        ("anonymous cross-site form", "", Some(FORM), vec![("Sec-Fetch-Site", "cross-site")], false),
        ("anonymous foreign Origin", "", Some(FORM), vec![("Origin", "https://evil.example")], false),
        (
            "own Origin, same-origin",
            &cookie,
            Some(FORM),
            vec![("Origin", &own), ("Sec-Fetch-Site", "same-origin")],
            true,
        ),
        (
            "allowed CORS origin",
            &cookie,
            Some(FORM),
            vec![("Origin", "https://app.example"), ("Sec-Fetch-Site", "cross-site")],
            true,
        ),
        ("no browser headers", &cookie, Some(FORM), vec![], true),
    ];
    let cases = rows
        .into_iter()
        .map(|(what, cookie, content_type, headers, forwarded)| Case {
            what,
            method: "POST",
            cookie,
            content_type,
            body: if content_type == Some(FORM) { good.clone().into_bytes() } else { b"{}".to_vec() },
            headers,
            forwarded,
        })
        .collect();
    run_cases(&app, &s, "/app/o", cases).await;
    // Safe methods are not subject to it.
    let r = send(&s, "GET", "/app/o/get", &cookie, None, b"", &[("Sec-Fetch-Site", "cross-site")]).await;
    assert_forwarded(&app, r, "/app/o/get", b"", "cross-site GET").await;
}

/// Waits until the session `id` has timed out (checked without sliding it).
pub async fn wait_until_dead(s: &Server, id: &str) {
    wait_until_dead_keeping(s, id, &[]).await
}

/// Waits until the session `id` has timed out, using the sessions `keep`
/// meanwhile so they stay alive (this needs a short `--touch-interval`).
pub async fn wait_until_dead_keeping(s: &Server, id: &str, keep: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while session_alive(s, id).await {
        for k in keep {
            assert_eq!(whoami(s, &format!("{SESSION}={k}")).await.status(), 200, "a kept session timed out");
        }
        assert!(Instant::now() < deadline, "the session did not time out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Monday morning, through the proxy: the app's form was filled in before
/// the session timed out; the remember-me cookie logs the user back in and
/// the form still submits.
#[tokio::test]
async fn monday_morning_an_old_form_submits_after_remember_me_logs_in_again() {
    let (app, s) = start_pair(&["--idle-timeout", "2s"]);
    let mut jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let old_session = jar.session.clone().unwrap();
    // Friday: the app renders its form with the token authd gives it.
    let r = send(&s, "GET", "/app/edit", &jar.header(), None, b"", &[]).await;
    assert_eq!(r.status(), 200);
    jar.apply(&r);
    let friday =
        app.seen_at("/app/edit").pop().unwrap().one("x-authd-xsrf-token").expect("token for the form");
    assert_eq!(jar.xsrf.as_deref(), Some(friday.as_str()));

    // The weekend: the session times out; the browser keeps its cookies.
    wait_until_dead(&s, &old_session).await;

    // Monday: the form is submitted with Friday's token.
    let body = urlencode(&[("summary", "written on Friday"), ("atl_token", &friday)]);
    let r = send(&s, "POST", "/app/edit", &jar.header(), Some(FORM), body.as_bytes(), &[]).await;
    let new_session = set_value(&r, SESSION).expect("remember-me started a new session");
    assert_ne!(new_session, old_session);
    assert!(set_value(&r, REMEMBER).is_some(), "the remember-me cookie was not rotated");
    if let Some(x) = set_value(&r, XSRF) {
        assert_eq!(x, friday, "the new session did not adopt the browser's token");
    }
    let seen = assert_forwarded(&app, r, "/app/edit", body.as_bytes(), "Monday's submit").await;
    assert_eq!(seen.one("x-authd-user").as_deref(), Some("admin"));
    assert_eq!(seen.one("x-authd-xsrf-token").as_deref(), Some(friday.as_str()));
    assert!(session_alive(&s, &new_session).await);
}

/// The adoption is only for the same user's token from this authd: a
/// browser holding another user's token gets a fresh one, and the old form fails.
#[tokio::test]
async fn monday_morning_does_not_adopt_another_users_token() {
    let (app, s) = start_pair(&["--idle-timeout", "2s"]);
    s.add_user("bob", "bob-password-1", &[]);
    let bob = api_login(&s, "bob", "bob-password-1", false).await;
    let bobs = bob.xsrf.clone().unwrap();
    let jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    wait_until_dead(&s, jar.session.as_ref().unwrap()).await;
    // The browser now holds bob's token, and the form carries it too.
    let cookie = format!(
        "{SESSION}={}; {REMEMBER}={}; {XSRF}={bobs}",
        jar.session.as_ref().unwrap(),
        jar.remember.as_ref().unwrap()
    );
    let body = urlencode(&[("atl_token", &bobs)]);
    let r = send(&s, "POST", "/app/m2", &cookie, Some(FORM), body.as_bytes(), &[]).await;
    let fresh = set_value(&r, XSRF);
    assert_refused(&app, r, "/app/m2", "bob's token adopted by admin's new session").await;
    if let Some(t) = fresh {
        assert_ne!(t, bobs);
    }
    // Without any token cookie, the old form's token cannot be adopted either.
    let jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let friday = jar.xsrf.clone().unwrap();
    wait_until_dead(&s, jar.session.as_ref().unwrap()).await;
    let cookie =
        format!("{SESSION}={}; {REMEMBER}={}", jar.session.as_ref().unwrap(), jar.remember.as_ref().unwrap());
    let body = urlencode(&[("atl_token", &friday)]);
    let r = send(&s, "POST", "/app/m3", &cookie, Some(FORM), body.as_bytes(), &[]).await;
    assert_refused(&app, r, "/app/m3", "a token the browser no longer holds").await;
}

/// A browser whose form through the proxy is refused sees a page saying so,
/// as on authd's own forms; other clients get Jira's JSON error.
#[tokio::test]
async fn a_browser_sees_the_proxys_xsrf_refusal_as_a_page() {
    let (app, s) = start_pair(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), false).await;
    let post = |headers: Vec<(&'static str, &'static str)>| {
        let mut b = s
            .bare_client()
            .post(s.at("/app/form"))
            .header("cookie", jar.header())
            .header("content-type", FORM)
            .body("summary=hello");
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.send()
    };
    let browser = vec![("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")];
    for (what, headers) in [
        ("no token", browser.clone()),
        ("foreign origin", [browser.clone(), vec![("origin", "https://evil.example")]].concat()),
        ("navigating", vec![("sec-fetch-mode", "navigate")]),
    ] {
        let r = post(headers).await.unwrap();
        assert_eq!(r.status(), 403, "{what}");
        assert!(header(&r, "content-type").unwrap_or_default().starts_with("text/html"), "{what}");
        assert!(r.text().await.unwrap().contains("XSRF check failed"), "{what}");
    }
    let r = post(vec![("accept", "application/json")]).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(error_message(&body).contains("XSRF check failed"), "{body}");
    assert!(app.seen_at("/app/form").is_empty(), "a refused form reached the app");
}

//! SPEC §10, hostile input: junk thrown at every route never gives a 5xx,
//! and malformed input gets a clear 4xx. Cookies (malformed, huge,
//! duplicated, not UTF-8), JSON (malformed, wrong types, missing fields,
//! not UTF-8), url-encoded forms and query strings (broken escapes, bytes
//! that are not UTF-8), `Authorization: Basic` and remember-me cookies that
//! are not base64, paths with `.`/`..` segments however written, NUL and
//! overlong segments, `os_destination` and user names that try to inject
//! headers or send the browser elsewhere, and every method on every route.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::gateway::start_pair;
use crate::support::*;

/// Every route authd answers itself (user names in paths are `nobody`, so a
/// stray request cannot delete or change anyone).
const ROUTES: &[&str] = &[
    "/rest/auth/1/session",
    "/rest/auth/latest/session",
    "/rest/api/2/myself",
    "/rest/api/latest/myself",
    "/rest/api/2/myself/password",
    "/rest/api/2/user?username=admin",
    "/rest/api/2/serverInfo",
    "/rest/authd/1/verify",
    "/rest/authd/1/sessions",
    "/rest/authd/1/sessions/0123456789abcdef",
    "/rest/authd/1/tokens",
    "/rest/authd/1/tokens/nope",
    "/rest/authd/1/admin/users",
    "/rest/authd/1/admin/users/nobody",
    "/rest/authd/1/admin/users/nobody/verify",
    "/rest/authd/1/admin/users/nobody/unlock",
    "/rest/authd/1/admin/users/nobody/password",
    "/rest/authd/1/admin/users/nobody/roles",
    "/rest/authd/1/admin/users/nobody/sessions",
    "/rest/authd/1/admin/users/nobody/tokens",
    "/rest/authd/1/admin/sessions",
    "/rest/authd/1/admin/sessions/0123456789abcdef",
    "/rest/authd/1/admin/tokens/nope",
    "/login.jsp",
    "/account",
    "/account/logout",
    "/account/revoke",
    "/account/revoke-others",
    "/account/sessions/revoke",
    "/verify-email?token=nope",
    "/healthz",
    "/metrics",
    "/no/such/route",
    "/",
];

const FORM: &str = "application/x-www-form-urlencoded";

/// A server for junk, with one user.
fn junk_server(extra: &[&str]) -> Server {
    let s = Server::start(extra);
    s.add_user("alice", "alice-password-1", &[]);
    s
}

/// One raw HTTP/1.1 request (`Connection: close`); the whole answer.
async fn raw(s: &Server, method: &str, target: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n", s.port).as_bytes(),
    );
    for (k, v) in headers {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    raw_h1(s, &req).await
}

/// The head of a raw answer as (lower-case name, value) pairs.
fn raw_headers(answer: &[u8]) -> Vec<(String, Vec<u8>)> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(answer.len());
    answer[..end]
        .split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase();
            Some((name, line[colon + 1..].trim_ascii().to_vec()))
        })
        .collect()
}

/// The status of a raw answer; a panic (naming `what`) for no answer or a 5xx.
fn no_5xx(what: &str, answer: &[u8]) -> u16 {
    let shown = || String::from_utf8_lossy(&answer[..answer.len().min(400)]).into_owned();
    let status = raw_status(answer).unwrap_or_else(|| panic!("{what}: no HTTP answer: {:?}", shown()));
    assert!(status < 500, "{what}: {status}: {}", shown());
    status
}

/// A cookie-less client's request; the response (a panic on a 5xx).
async fn send(what: &str, b: reqwest::RequestBuilder) -> reqwest::Response {
    let r = b.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(r.status().as_u16() < 500, "{what}: {}", r.status());
    r
}

/// A JSON error answer: the given status and Jira's error shape.
async fn assert_error(what: &str, r: reqwest::Response, status: u16) {
    if let Err(e) = check_error(what, r, status).await {
        panic!("{e}");
    }
}

/// Whether `r` is a JSON error answer with `status` in Jira's error shape.
async fn check_error(what: &str, r: reqwest::Response, status: u16) -> Result<(), String> {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    if got != status {
        return Err(format!("{what}: {got} (expected {status}): {text}"));
    }
    let body: Value =
        serde_json::from_str(&text).map_err(|e| format!("{what}: error body is not JSON ({e}): {text}"))?;
    let shape = std::panic::catch_unwind(|| assert_jira_error(&body));
    shape.map_err(|_| format!("{what}: not Jira's error shape: {text}"))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------
// Cookies.

/// Cookie headers no browser would send (each sent as raw bytes).
fn junk_cookies() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b"JSESSIONID"[..],
        b";;;;",
        b"=;=;=",
        b"=",
        b"JSESSIONID=\"unterminated",
        b"JSESSIONID=\"\"\"",
        b"JSESSIONID=\xff\xfe\xfd",
        b"\xff\xfe=\xff",
        b"JSESSIONID=a; JSESSIONID=b; JSESSIONID=; JSESSIONID",
        b"  JSESSIONID =  x  ;  ; \t",
        b"JSESSIONID=%00%0d%0a",
        b"JSESSIONID=../../etc/passwd",
        b"seraph.rememberme.cookie=!!!:%%%",
        b"seraph.rememberme.cookie=:",
        b"seraph.rememberme.cookie=QUFB:QUFB",
        b"seraph.rememberme.cookie=\xff:\xff",
        b"seraph.rememberme.cookie=====:====",
        b"seraph.rememberme.cookie=a:b:c:d",
        b"atlassian.xsrf.token=\xff_\xff_lin",
        b"atlassian.xsrf.token=___; atlassian.xsrf.token=",
    ]
    .iter()
    .map(|c| c.to_vec())
    .collect();
    v.push(format!("JSESSIONID={}", "A".repeat(12_000)).into_bytes());
    v.push(format!("seraph.rememberme.cookie={}:{}", "B".repeat(6000), "C".repeat(6000)).into_bytes());
    v.push("a=b; ".repeat(1500).into_bytes());
    v.push("JSESSIONID=x; ".repeat(800).into_bytes());
    v
}

#[tokio::test]
async fn junk_cookie_headers_never_give_a_5xx_on_any_route() {
    let s = junk_server(&[]);
    for cookie in junk_cookies() {
        let shown = String::from_utf8_lossy(&cookie[..cookie.len().min(60)]).into_owned();
        for path in ROUTES {
            for method in ["GET", "POST"] {
                let what = format!("{method} {path} with Cookie: {shown:?}");
                let answer = raw(&s, method, path.as_bytes(), &[("Cookie", &cookie)], b"").await;
                let status = no_5xx(&what, &answer);
                if method == "GET" {
                    match *path {
                        "/rest/auth/1/session" | "/rest/api/2/myself" => assert_eq!(status, 401, "{what}"),
                        "/healthz" | "/rest/api/2/serverInfo" | "/login.jsp" => {
                            assert_eq!(status, 200, "{what}")
                        }
                        _ => {}
                    }
                }
            }
        }
        // The same cookie twice, in two Cookie header fields (if both fit in 16 KiB).
        if cookie.len() < 7000 {
            let answer =
                raw(&s, "GET", b"/rest/auth/1/session", &[("Cookie", &cookie), ("Cookie", &cookie)], b"")
                    .await;
            assert_eq!(no_5xx(&format!("two Cookie fields {shown:?}"), &answer), 401);
        }
    }
    // Junk around a valid session cookie is ignored: the session still counts.
    let id = login_id(&s, "alice", "alice-password-1").await;
    for (i, junk) in junk_cookies().iter().enumerate().filter(|(_, c)| c.len() < 1000) {
        let mut cookie = junk.clone();
        cookie.extend_from_slice(format!("; JSESSIONID={id}; ").as_bytes());
        cookie.extend_from_slice(junk);
        let answer = raw(&s, "GET", b"/rest/auth/1/session", &[("Cookie", &cookie)], b"").await;
        let status = no_5xx(&format!("junk #{i} around a session"), &answer);
        // A junk JSESSIONID before the real one may shadow it only if it names a live session (it does not).
        assert_eq!(
            status,
            200,
            "junk #{i} around a valid session cookie: {:?}",
            String::from_utf8_lossy(junk)
        );
        // In a separate Cookie field too.
        let answer = raw(
            &s,
            "GET",
            b"/rest/auth/1/session",
            &[("Cookie", junk), ("Cookie", format!("JSESSIONID={id}").as_bytes())],
            b"",
        )
        .await;
        assert_eq!(no_5xx(&format!("junk #{i} in another field"), &answer), 200);
    }
}

#[tokio::test]
async fn remember_me_cookies_that_are_not_base64_are_ignored_and_expired() {
    let s = junk_server(&[]);
    let junk = [
        "!!!:%%%",
        ":",
        "a:",
        ":b",
        "QUFB:QUFB",
        "====:====",
        "a:b:c",
        "AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "\u{e9}t\u{e9}:x",
    ];
    for value in junk {
        for path in ["/rest/auth/1/session", "/rest/api/2/myself", "/rest/authd/1/sessions"] {
            let r = send(
                &format!("{path} with remember-me {value:?}"),
                s.bare_client().get(s.at(path)).header("cookie", format!("seraph.rememberme.cookie={value}")),
            )
            .await;
            assert_eq!(r.status(), 401, "{path} with remember-me cookie {value:?}");
            let expired = set_cookie(&r, "seraph.rememberme.cookie");
            assert!(
                expired.as_deref().is_some_and(|c| c.contains("Max-Age=0")),
                "a junk remember-me cookie should be expired: {expired:?}"
            );
        }
        let r = send(
            "verify",
            s.bare_client()
                .get(s.at("/rest/authd/1/verify"))
                .header("cookie", format!("seraph.rememberme.cookie={value}")),
        )
        .await;
        assert_eq!(r.status(), 401);
    }
}

// ---------------------------------------------------------------------------
// JSON bodies.

/// Bodies that are not valid JSON documents at all; `key` is a string field
/// the route reads, `rest` the rest of a body it would accept (`,"k":"v"` or empty).
fn malformed_json(key: &str, rest: &str) -> Vec<(&'static str, Vec<u8>)> {
    let doc = |parts: &[&[u8]]| parts.concat();
    let k = key.as_bytes();
    let r = rest.as_bytes();
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![
        ("an open brace", b"{".to_vec()),
        ("a close brace", b"}".to_vec()),
        ("a missing value", doc(&[b"{\"", k, b"\":", r, b"}"])),
        ("single quotes", doc(&[b"{'", k, b"':'x'}"])),
        ("a trailing comma", doc(&[b"{\"", k, b"\":\"x\"", r, b",}"])),
        ("a missing comma", doc(&[b"{\"a\":1 \"", k, b"\":\"x\"", r, b"}"])),
        ("text after the document", doc(&[b"{\"", k, b"\":\"x\"", r, b"} trailing"])),
        ("two documents", doc(&[b"{\"", k, b"\":\"x\"", r, b"}{}"])),
        ("a byte-order mark", doc(&[b"\xef\xbb\xbf{\"", k, b"\":\"x\"", r, b"}"])),
        ("UTF-16", doc(&[b"\xff\xfe{\x00}\x00"])),
        ("bytes that are not UTF-8 in a field", doc(&[b"{\"", k, b"\":\"\xff\xfe\"", r, b"}"])),
        ("a lone surrogate escape in a field", doc(&[b"{\"", k, b"\":\"\\ud800\"", r, b"}"])),
        ("a short unicode escape in a field", doc(&[b"{\"", k, b"\":\"\\u12\"", r, b"}"])),
        ("an unknown escape in a field", doc(&[b"{\"", k, b"\":\"\\q\"", r, b"}"])),
        ("a raw control character in a field", doc(&[b"{\"", k, b"\":\"a\nb\"", r, b"}"])),
        // Bytes that are not UTF-8 make the whole body something other than JSON
        // (RFC 8259 §8.1), even in a field the route does not read.
        (
            "bytes that are not UTF-8 in another field",
            doc(&[b"{\"zzz\":\"\xff\xfe\",\"", k, b"\":\"x\"", r, b"}"]),
        ),
        ("NaN", b"NaN".to_vec()),
        ("a NUL byte", b"\x00".to_vec()),
        ("nothing", Vec::new()),
        ("white space", b" \r\n\t ".to_vec()),
    ];
    // Nested too deep for any parser to want to follow.
    v.push(("5000 nested arrays", format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()));
    v
}

/// Bodies that are JSON, but odd in a part the route does not read (valid
/// escapes of lone surrogates, numbers no float holds, deep nesting): the
/// route may take or refuse them, but never with a 5xx.
fn odd_json(key: &str, rest: &str) -> Vec<(&'static str, Vec<u8>)> {
    let nested = format!("{}1{}", "{\"a\":".repeat(2000), "}".repeat(2000));
    vec![
        (
            "a lone surrogate escape in another field",
            format!("{{\"zzz\":\"\\udc00\",\"{key}\":\"x\"{rest}}}"),
        ),
        ("a number out of range in another field", format!("{{\"zzz\":1e999,\"{key}\":\"x\"{rest}}}")),
        ("2000 nested objects in another field", format!("{{\"zzz\":{nested},\"{key}\":\"x\"{rest}}}")),
        ("2000 nested objects", nested.clone()),
        (
            "a huge number in another field",
            format!("{{\"zzz\":{},\"{key}\":\"x\"{rest}}}", "9".repeat(10_000)),
        ),
    ]
    .into_iter()
    .map(|(what, body)| (what, body.into_bytes()))
    .collect()
}

/// A JSON route and bodies of the right syntax but wrong types or fields.
struct JsonRoute {
    method: &'static str,
    path: &'static str,
    /// A string field the route reads, and the rest of an acceptable body.
    key: &'static str,
    rest: &'static str,
    /// Whether an empty body is acceptable (all fields optional).
    empty_ok: bool,
    /// Bodies that are JSON but not what the route takes.
    wrong: &'static [&'static str],
}

const JSON_ROUTES: &[JsonRoute] = &[
    JsonRoute {
        method: "POST",
        path: "/rest/auth/1/session",
        key: "username",
        rest: ",\"password\":\"x\"",
        empty_ok: false,
        wrong: &[
            "{}",
            "[]",
            "[\"nobody\",\"x\"]",
            "null",
            "\"nobody\"",
            "42",
            "{\"username\":\"nobody\"}",
            "{\"password\":\"x\"}",
            "{\"username\":1,\"password\":2}",
            "{\"username\":\"nobody\",\"password\":null}",
            "{\"username\":[\"nobody\"],\"password\":{}}",
            "{\"username\":\"nobody\",\"password\":\"x\",\"rememberMe\":\"yes\"}",
            "{\"username\":\"nobody\",\"password\":\"x\",\"rememberMe\":1}",
            "{\"username\":\"nobody\",\"password\":\"x\",\"rememberMe\":1e999}",
            "{\"username\":\"a\",\"username\":\"b\",\"password\":\"x\"}",
        ],
    },
    JsonRoute {
        method: "PUT",
        path: "/rest/api/2/myself/password",
        key: "password",
        rest: ",\"currentPassword\":\"wrong\"",
        empty_ok: false,
        wrong: &[
            "{}",
            "[]",
            "null",
            "{\"password\":\"new-password-1\"}",
            "{\"currentPassword\":\"alice-password-1\"}",
            "{\"password\":1,\"currentPassword\":2}",
            "{\"password\":[],\"currentPassword\":\"alice-password-1\"}",
        ],
    },
    JsonRoute {
        method: "POST",
        path: "/rest/authd/1/tokens",
        key: "label",
        rest: "",
        empty_ok: true,
        wrong: &["[]", "[\"x\"]", "null", "42", "{\"label\":5}", "{\"label\":[\"x\"]}"],
    },
    JsonRoute {
        method: "POST",
        path: "/rest/authd/1/admin/users",
        key: "name",
        rest: ",\"password\":\"zed-password-1\"",
        empty_ok: false,
        wrong: &[
            "{}",
            "[]",
            "{\"name\":\"zed\"}",
            "{\"password\":\"zed-password-1\"}",
            "{\"name\":null,\"password\":\"zed-password-1\"}",
            "{\"name\":\"zed\",\"password\":\"zed-password-1\",\"admin\":\"yes\"}",
            "{\"name\":\"zed\",\"password\":\"zed-password-1\",\"email\":7}",
        ],
    },
    JsonRoute {
        method: "PUT",
        path: "/rest/authd/1/admin/users/victim/password",
        key: "password",
        rest: "",
        empty_ok: false,
        wrong: &["{}", "[]", "null", "{\"password\":7}", "{\"pass\":\"x\"}"],
    },
    JsonRoute {
        method: "PUT",
        path: "/rest/authd/1/admin/users/victim/roles",
        key: "roles",
        rest: "",
        empty_ok: false,
        wrong: &[
            "{}",
            "[]",
            "{\"roles\":\"admin\"}",
            "{\"roles\":[1]}",
            "{\"roles\":[\"root\"]}",
            "{\"roles\":[\"admin\",\"admin\"]}",
        ],
    },
    JsonRoute {
        method: "POST",
        path: "/rest/authd/1/admin/users/victim/tokens",
        key: "label",
        rest: "",
        empty_ok: true,
        wrong: &["[]", "null", "{\"label\":{}}"],
    },
];

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400_and_other_content_types_refused() {
    let s = junk_server(&[]);
    s.add_user("victim", "victim-password-1", &[]);
    let alice = login_id(&s, "alice", "alice-password-1").await;
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    let c = s.bare_client();
    let mut failures = Vec::new();
    for route in JSON_ROUTES {
        let (m, p) = (route.method, route.path);
        let who = if p.contains("/admin/") { &admin } else { &alice };
        let req = |ctype: Option<&[u8]>, body: Vec<u8>| {
            let mut b = c
                .request(m.parse().unwrap(), s.at(p))
                .header("cookie", format!("JSESSIONID={who}"))
                .body(body);
            if let Some(t) = ctype {
                b = b.header("content-type", reqwest::header::HeaderValue::from_bytes(t).unwrap());
            }
            b
        };
        for (fault, body) in malformed_json(route.key, route.rest) {
            if route.empty_ok && body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let what =
                format!("{m} {p} with {fault} ({:?})", String::from_utf8_lossy(&body[..body.len().min(50)]));
            let r = send(&what, req(Some(b"application/json"), body)).await;
            failures.extend(check_error(&what, r, 400).await.err());
        }
        for (fault, body) in odd_json(route.key, route.rest) {
            let what = format!("{m} {p} with {fault}");
            send(&what, req(Some(b"application/json"), body)).await;
        }
        for body in route.wrong {
            let what = format!("{m} {p} with {body}");
            let r =
                send(&what, req(Some(b"application/json; charset=utf-8"), body.as_bytes().to_vec())).await;
            failures.extend(check_error(&what, r, 400).await.err());
        }
        // Other content types: refused (415, or 403 where a form type meets the XSRF rule).
        let ok_body = br#"{"username":"nobody","password":"x","label":"x","name":"x","roles":[]}"#.to_vec();
        for ctype in [
            None,
            Some(&b"text/plain"[..]),
            Some(b"application/x-www-form-urlencoded"),
            Some(b"multipart/form-data; boundary=x"),
            Some(b"application/jsonx"),
            Some(b"application/json-patch+json"),
            Some(b"json"),
            Some(b"\xff\xfe"),
            Some(b";;;"),
        ] {
            let what = format!("{m} {p} as {:?}", ctype.map(String::from_utf8_lossy));
            let r = send(&what, req(ctype, ok_body.clone())).await;
            let status = r.status().as_u16();
            let expected = if status == 403 { 403 } else { 415 };
            failures.extend(check_error(&what, r, expected).await.err());
        }
    }
    // Nothing malformed changed anything: both sessions live, passwords and roles unchanged, no new user.
    assert_eq!(session_status(&s, &alice).await, 200);
    assert_eq!(session_status(&s, &admin).await, 200);
    // Odd but well-formed password changes carried wrong current passwords,
    // which count as failed logins: the account may demand its challenge.
    assert!(s.authd(&["user", "unlock", "alice"], None).status.success());
    login_id(&s, "alice", "alice-password-1").await;
    let r = c
        .get(s.at("/rest/authd/1/admin/users"))
        .header("cookie", format!("JSESSIONID={admin}"))
        .send()
        .await
        .unwrap();
    let users: Value = r.json().await.unwrap();
    let names: Vec<&str> = users.as_array().unwrap().iter().filter_map(|u| u["name"].as_str()).collect();
    // ("x" may come from the odd but well-formed bodies, which may succeed.)
    if names.iter().any(|n| !["admin", "alice", "victim", "x"].contains(n)) {
        failures.push(format!("a malformed request created a user: {names:?}"));
    }
    assert!(
        failures.is_empty(),
        "{} malformed bodies were not refused with 400:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Forms and query strings.

/// Url-encoded text with broken escapes or bytes that are not UTF-8.
const BROKEN_ENCODINGS: &[&[u8]] = &[
    b"%zz",
    b"%ff",
    b"%4",
    b"%",
    b"%%",
    b"%c3%28",
    b"%e2%82",
    b"%ed%a0%80",
    b"%c0%af",
    b"\xff\xfe",
    b"\xc3",
];

#[tokio::test]
async fn broken_form_encodings_are_400() {
    let s = junk_server(&[]);
    let alice = login_id(&s, "alice", "alice-password-1").await;
    let cookie = format!("JSESSIONID={alice}");
    for path in [
        "/login.jsp",
        "/account/logout",
        "/account/revoke",
        "/account/revoke-others",
        "/account/sessions/revoke",
    ] {
        for junk in BROKEN_ENCODINGS {
            for (i, body) in [
                [&b"os_username="[..], junk, b"&os_password=x"].concat(),
                [&b"os_username=nobody&os_password=x&os_destination="[..], junk].concat(),
                [*junk, &b"=x&os_username=nobody"[..]].concat(),
                [&b"atl_token="[..], junk, b"&handle=", junk].concat(),
            ]
            .iter()
            .enumerate()
            {
                let what = format!("POST {path} form #{i} with {:?}", String::from_utf8_lossy(junk));
                let answer = raw(
                    &s,
                    "POST",
                    path.as_bytes(),
                    &[
                        ("Content-Type", FORM.as_bytes()),
                        ("Cookie", cookie.as_bytes()),
                        ("X-Atlassian-Token", b"no-check"),
                    ],
                    body,
                )
                .await;
                assert_eq!(no_5xx(&what, &answer), 400, "{what}: {}", String::from_utf8_lossy(&answer));
            }
        }
        // Odd but well-formed forms: no 5xx.
        for body in
            [&b"&&&"[..], b"=", b"==&==", b"a=b=c", b"+++=+++", b"os_username", b"os_username=&os_username=x"]
        {
            let what = format!("POST {path} form {:?}", String::from_utf8_lossy(body));
            let answer = raw(
                &s,
                "POST",
                path.as_bytes(),
                &[("Content-Type", FORM.as_bytes()), ("X-Atlassian-Token", b"no-check")],
                body,
            )
            .await;
            no_5xx(&what, &answer);
        }
        // Other content types for a form route, and a multipart body that is
        // not one: refused. (`text/plain` is a form encoding, read as such.)
        for ctype in ["multipart/form-data; boundary=x", "multipart/form-data", "application/json", "\u{7f}"]
        {
            let what = format!("POST {path} as {ctype:?}");
            let answer =
                raw(&s, "POST", path.as_bytes(), &[("Content-Type", ctype.as_bytes())], b"os_username=x")
                    .await;
            let status = no_5xx(&what, &answer);
            assert!((400..500).contains(&status), "{what}: {status}");
        }
        // With the XSRF rule met, a multipart body that is not one is a 400.
        for ctype in ["multipart/form-data; boundary=x", "multipart/form-data"] {
            let what = format!("POST {path} as {ctype:?} with no-check");
            let headers = [("Content-Type", ctype.as_bytes()), ("X-Atlassian-Token", &b"no-check"[..])];
            let answer = raw(&s, "POST", path.as_bytes(), &headers, b"os_username=x").await;
            assert_eq!(no_5xx(&what, &answer), 400, "{what}");
        }
    }
    // The refused logouts did nothing.
    assert_eq!(session_status(&s, &alice).await, 200);
}

#[tokio::test]
async fn broken_query_strings_are_400_where_they_are_read_and_harmless_elsewhere() {
    let s = junk_server(&[]);
    let alice = login_id(&s, "alice", "alice-password-1").await;
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    for junk in BROKEN_ENCODINGS {
        // Raw bytes over 0x7f are not allowed in a request target at all; hyper refuses them.
        let read_here: [(&str, &[u8], &String); 4] = [
            ("/login.jsp?os_destination=", b"", &alice),
            ("/verify-email?token=", b"", &alice),
            ("/rest/api/2/user?username=", b"", &alice),
            ("/rest/authd/1/admin/sessions?user=", b"", &admin),
        ];
        for (path, _, who) in read_here {
            let target = [path.as_bytes(), junk].concat();
            let what = format!("GET {}", String::from_utf8_lossy(&target));
            let answer =
                raw(&s, "GET", &target, &[("Cookie", format!("JSESSIONID={who}").as_bytes())], b"").await;
            assert_eq!(no_5xx(&what, &answer), 400, "{what}: {}", String::from_utf8_lossy(&answer));
        }
        for path in ROUTES {
            let sep = if path.contains('?') { "&" } else { "?" };
            let target = [path.as_bytes(), sep.as_bytes(), junk, b"=", junk].concat();
            let what = format!("GET {}", String::from_utf8_lossy(&target));
            let answer =
                raw(&s, "GET", &target, &[("Cookie", format!("JSESSIONID={alice}").as_bytes())], b"").await;
            no_5xx(&what, &answer);
        }
    }
}

// ---------------------------------------------------------------------------
// Authorization: Basic.

#[tokio::test]
async fn junk_basic_credentials_are_400_or_401_and_never_a_5xx() {
    let s = junk_server(&[]);
    // (value, whether it is `Basic` with something that is not base64 of
    // UTF-8 `user:secret`: a 400 wherever authd reads it (SPEC §10: malformed
    // base64 is a clear 4xx), except forward auth, which answers only 200 or
    // 401 (nginx's auth_request turns a 400 into a 500)).
    let mut values: Vec<(Vec<u8>, bool)> = vec![
        (b"Basic !!!".to_vec(), true),
        (b"Basic ".to_vec(), false), // trimmed to "Basic": no credentials at all
        (b"Basic".to_vec(), false),
        (b"basic".to_vec(), false),
        (b"Basic ====".to_vec(), true),
        (b"Basic =".to_vec(), true),
        (b"Basic YQ".to_vec(), true),           // unpadded
        (b"Basic YWxpY2U6eA=".to_vec(), false), // padded wrong, padding not checked: alice:x
        (b"Basic \xff\xfe".to_vec(), false),    // not visible ASCII: not read at all
        (b"Basic %00".to_vec(), true),
        (b"Bearer junk".to_vec(), false),
        (b"Bearer ".to_vec(), false),
        (b"Digest username=\"alice\"".to_vec(), false),
        (b"\xff".to_vec(), false),
    ];
    for (pair, malformed) in [
        (&b"no-colon"[..], true),
        (b":", false),
        (b"alice:", false),
        (b":authd_x", false),
        (b"alice:authd_notatoken", false),
        (b"alice:authd_", false),
        (b"\xff\xfe:\xff", true),
        (b"alice\r\nX-Injected: 1:authd_x", false),
        (b"alice:authd_x\r\nX-Injected: 1", false),
        (b"\x00:\x00", false),
    ] {
        values.push((format!("Basic {}", b64(pair)).into_bytes(), malformed));
    }
    values.push((format!("Basic {}", "A".repeat(10_000)).into_bytes(), true)); // NULs, no colon
    values.push((
        format!("Basic {}", b64(format!("alice:{}", "x".repeat(6000)).as_bytes())).into_bytes(),
        false,
    ));
    for (value, malformed) in &values {
        let shown = String::from_utf8_lossy(&value[..value.len().min(50)]).into_owned();
        for path in ROUTES {
            let what = format!("GET {path} with Authorization: {shown:?}");
            let answer = raw(&s, "GET", path.as_bytes(), &[("Authorization", value)], b"").await;
            let status = no_5xx(&what, &answer);
            if *malformed && *path != "/rest/authd/1/verify" {
                assert_eq!(status, 400, "{what}");
                let body =
                    answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(&[][..], |i| &answer[i + 4..]);
                assert_jira_error(&serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: {e}")));
                continue;
            }
            match *path {
                "/rest/auth/1/session"
                | "/rest/api/2/myself"
                | "/rest/authd/1/verify"
                | "/rest/authd/1/admin/users"
                | "/rest/authd/1/sessions"
                | "/rest/authd/1/tokens" => assert_eq!(status, 401, "{what}"),
                "/healthz" | "/rest/api/2/serverInfo" => assert_eq!(status, 200, "{what}"),
                _ => {}
            }
            let headers = raw_headers(&answer);
            assert!(headers.iter().all(|(k, _)| k != "x-injected"), "{what}: a header was injected");
            let user = headers.iter().find(|(k, _)| k == "x-ausername").map(|(_, v)| v.clone());
            if let Some(u) = user {
                assert_eq!(u, b"anonymous", "{what}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Paths.

#[tokio::test]
async fn dot_segments_nul_and_overlong_paths_are_refused_without_a_5xx() {
    let s = junk_server(&[]);
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    let cookie = format!("JSESSIONID={admin}");
    // Dot segments, however written: 400.
    let dotted: &[&str] = &[
        "/rest/auth/1/../1/session",
        "/rest/auth/1/./session",
        "/rest/auth/1/%2e%2e/1/session",
        "/rest/auth/1/%2E%2E/session",
        "/rest/auth/1/.%2e/session",
        "/rest/auth/1/%2e./session",
        "/rest/auth/1/%2e/session",
        "/./healthz",
        "/healthz/.",
        "/healthz/..",
        "/..",
        "/%2e%2e",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/account/../rest/authd/1/admin/users",
        "/rest/authd/1/admin/users/%2e%2e",
        "/login.jsp/..?os_destination=/x",
    ];
    for path in dotted {
        let answer = raw(&s, "GET", path.as_bytes(), &[("Cookie", cookie.as_bytes())], b"").await;
        assert_eq!(no_5xx(path, &answer), 400, "{path}: {}", String::from_utf8_lossy(&answer));
    }
    // Other odd paths: a 4xx, or what the route gives; never a 5xx.
    let long = format!("/{}", "a".repeat(8000));
    let deep = "/a".repeat(3000);
    let long_user = format!("/rest/authd/1/admin/users/{}", "n".repeat(8000));
    let odd: Vec<(&[u8], Option<u16>)> = vec![
        (b"/rest/%00/session", Some(400)),
        (b"/rest/auth/1/session%00", Some(400)),
        (b"/healthz%00", Some(400)),
        (b"/healthz%2f..", Some(404)),
        (b"/%2e%2e%2fhealthz", Some(404)),
        (b"/rest/authd/1/admin/users/%ff", Some(400)),
        (b"/rest/authd/1/admin/users/%zz", Some(400)),
        (b"/rest/authd/1/admin/users/%4", Some(400)),
        (b"/rest/authd/1/admin/users/%0d%0a", Some(404)),
        (b"/rest/authd/1/admin/users/a%00b", Some(400)),
        (long.as_bytes(), Some(404)),
        (deep.as_bytes(), Some(404)),
        (long_user.as_bytes(), Some(404)),
        (b"//healthz", None),
        (b"/\\..\\healthz", None),
        (b"/healthz\xff", None),
        (b"/%ff%fe", Some(400)),
        (b"healthz", None),
        (b"https://evil.example/healthz", None),
        (b"*", None),
        (b"/healthz#frag", None),
        (b"/rest/auth/1/session;jsessionid=x", None),
    ];
    for (target, want) in odd {
        let what = format!("GET {}", String::from_utf8_lossy(&target[..target.len().min(80)]));
        let answer = raw(&s, "GET", target, &[("Cookie", cookie.as_bytes())], b"").await;
        let status = no_5xx(&what, &answer);
        if let Some(want) = want {
            assert_eq!(status, want, "{what}");
        } else {
            assert!(status < 500, "{what}");
        }
    }
    assert_eq!(session_status(&s, &admin).await, 200);
}

#[tokio::test]
async fn dot_segment_paths_never_reach_the_app_behind_the_proxy() {
    let (app, s) = start_pair(&[]);
    for path in
        ["/app/../secret", "/app/%2e%2e/secret", "/app/.%2E/secret", "/app/./x", "/%2e%2e/x", "/app/%2E"]
    {
        let answer = raw(&s, "GET", path.as_bytes(), &[], b"").await;
        assert_eq!(no_5xx(path, &answer), 400, "{path}");
    }
    // Nor does a target that is not a path (`OPTIONS *`): 400, not a 502.
    for method in ["GET", "OPTIONS"] {
        let answer = raw(&s, method, b"*", &[], b"").await;
        assert_eq!(no_5xx(&format!("{method} *"), &answer), 400, "{method} *");
    }
    let seen: Vec<String> = app.seen().into_iter().map(|x| x.path).collect();
    assert!(seen.is_empty(), "dot-segment paths reached the app: {seen:?}");
    // Nor do paths with an encoded NUL, a broken escape or bytes that are
    // not UTF-8: 400 (SPEC §10). A broken escape in the query is the app's.
    for path in ["/app/%00", "/app/a%00b", "/app/%zz", "/app/%4", "/app/%ff", "/app/caf%e9"] {
        let answer = raw(&s, "GET", path.as_bytes(), &[], b"").await;
        assert_eq!(no_5xx(path, &answer), 400, "{path}");
    }
    let seen: Vec<String> = app.seen().into_iter().map(|x| x.path).collect();
    assert!(seen.is_empty(), "malformed paths reached the app: {seen:?}");
    for path in ["/app?%zz", "/app/\\x"] {
        let answer = raw(&s, "GET", path.as_bytes(), &[], b"").await;
        no_5xx(path, &answer);
    }
}

// ---------------------------------------------------------------------------
// os_destination, Location and header injection.

/// Asserts a redirect target is a path on this site, free of CR/LF.
fn assert_local(what: &str, location: &[u8]) {
    assert!(!location.iter().any(|&b| b == b'\r' || b == b'\n'), "{what}: CR/LF in Location {location:?}");
    let loc = String::from_utf8_lossy(location);
    assert!(loc.starts_with('/'), "{what}: Location {loc:?} is not a path");
    assert!(!loc.starts_with("//") && !loc.starts_with("/\\"), "{what}: Location {loc:?} names another host");
    assert!(
        !loc.contains('\\') && !loc.chars().any(|c| c.is_control() || c.is_whitespace()),
        "{what}: Location {loc:?}"
    );
    assert!(
        !loc.to_ascii_lowercase().contains("evil.example")
            || loc.starts_with("/%2F%2F")
            || loc.starts_with("/login.jsp?"),
        "{what}: Location {loc:?}"
    );
}

/// Destinations that try to leave the site or inject headers (decoded form).
const HOSTILE_DESTINATIONS: &[&str] = &[
    "/ok\r\nSet-Cookie: evil=1",
    "/ok\nLocation: https://evil.example/",
    "/ok\rX-Injected: 1",
    "/ok\u{0}x",
    "//evil.example/",
    "///evil.example/",
    "/\\evil.example/",
    "\\/evil.example/",
    "\\\\evil.example",
    "/\t/evil.example/",
    "/ /evil.example/",
    " /account",
    "https://evil.example/",
    "HTTPS://evil.example/",
    "http:evil.example",
    "//evil.example@127.0.0.1/",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/\u{2028}//evil.example",
    "/\u{85}//evil.example",
    "evil.example",
    "",
];

#[tokio::test]
async fn os_destination_cannot_inject_headers_or_leave_the_site() {
    let s = junk_server(&[]);
    s.add_user("dest", "dest-password-1", &[]);
    let long = format!("/{}", "a".repeat(3000));
    let mut dests: Vec<&str> = HOSTILE_DESTINATIONS.to_vec();
    dests.push(&long);
    // Local paths (percent-escapes stay escapes) are followed as given.
    let fine =
        ["/account", "/app/page?x=1&y=2", "/%0d%0aSet-Cookie:%20evil=1", "/%2F%2Fevil.example", "/\u{fc}ber"];
    for dest in dests.iter().chain(fine.iter()) {
        let form = format!(
            "os_username=dest&os_password=dest-password-1&os_destination={}",
            authd::http::request::encode_component(dest)
        );
        let what = format!("login with os_destination {dest:?}");
        let answer = raw(
            &s,
            "POST",
            b"/login.jsp",
            &[("Content-Type", FORM.as_bytes()), ("X-Atlassian-Token", b"no-check")],
            form.as_bytes(),
        )
        .await;
        assert_eq!(no_5xx(&what, &answer), 303, "{what}: {}", String::from_utf8_lossy(&answer));
        let headers = raw_headers(&answer);
        let locations: Vec<&Vec<u8>> =
            headers.iter().filter(|(k, _)| k == "location").map(|(_, v)| v).collect();
        assert_eq!(locations.len(), 1, "{what}: {locations:?}");
        assert_local(&what, locations[0]);
        let loc = String::from_utf8_lossy(locations[0]).into_owned();
        if fine.contains(dest) {
            // Followed, with bytes outside ASCII percent-encoded for the header.
            let want: String = dest
                .bytes()
                .map(|b| if b.is_ascii() { char::from(b).to_string() } else { format!("%{b:02X}") })
                .collect();
            assert_eq!(loc, want, "{what}: a local path must be followed");
        } else {
            assert_eq!(loc, "/account", "{what}: a hostile destination must be replaced by /account");
        }
        assert!(headers.iter().all(|(k, _)| k != "x-injected"), "{what}: a header was injected");
        for (k, v) in &headers {
            if k == "set-cookie" {
                let name =
                    String::from_utf8_lossy(v.split(|&b| b == b'=').next().unwrap_or(b"")).into_owned();
                assert!(
                    ["JSESSIONID", "seraph.rememberme.cookie", "atlassian.xsrf.token"]
                        .contains(&name.as_str()),
                    "{what}: unexpected Set-Cookie {:?}",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }
    // The same destinations on the login form (GET): never a 5xx, never echoed unescaped.
    for dest in dests.iter().chain(["/x\"><script>alert(1)</script>", "/x'onmouseover='alert(1)"].iter()) {
        let target = format!("/login.jsp?os_destination={}", authd::http::request::encode_component(dest));
        let r = send(&target, s.bare_client().get(s.at(&target))).await;
        assert_eq!(r.status(), 200, "{target}");
        let page = r.text().await.unwrap();
        assert!(
            !page.contains("<script>alert(1)") && !page.contains("'onmouseover='"),
            "{target}: echoed unescaped"
        );
        assert!(!page.contains("evil.example"), "{target}: a foreign destination made it into the form");
    }
    // Raw CR/LF in the query (not escaped) is refused by the HTTP parser, not a 5xx.
    let answer = raw(&s, "GET", b"/login.jsp?os_destination=/ok\r\nSet-Cookie: evil=1", &[], b"").await;
    if let Some(status) = raw_status(&answer) {
        assert!(status < 500, "{status}");
        assert!(raw_headers(&answer).iter().all(|(k, v)| k != "set-cookie" || !v.starts_with(b"evil")));
    }
    // The anonymous redirect to the login page.
    let answer = raw(&s, "GET", b"/account", &[], b"").await;
    let headers = raw_headers(&answer);
    let loc =
        headers.iter().find(|(k, _)| k == "location").map(|(_, v)| v.clone()).expect("/account redirects");
    assert_local("GET /account", &loc);
}

#[tokio::test]
async fn require_login_redirects_carry_the_path_escaped_and_local() {
    let (app, s) = start_pair(&["--require-login"]);
    let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    for path in [
        &b"/x%0d%0aSet-Cookie:%20evil=1"[..],
        b"/x%0aLocation:%20https://evil.example/",
        b"//evil.example/x",
        b"/\\evil.example",
        b"/x?next=https://evil.example/&%0d%0a=1",
        b"/%00",
    ] {
        let what = format!("GET {}", String::from_utf8_lossy(path));
        let answer =
            raw(&s, "GET", path, &[("User-Agent", browser.as_bytes()), ("Accept", b"text/html")], b"").await;
        let status = no_5xx(&what, &answer);
        let headers = raw_headers(&answer);
        assert!(
            headers.iter().all(|(k, v)| k != "set-cookie" || !v.starts_with(b"evil")),
            "{what}: cookie injected"
        );
        if let Some((_, loc)) = headers.iter().find(|(k, _)| k == "location") {
            assert!((300..400).contains(&status), "{what}: {status}");
            assert_local(&what, loc);
            assert!(
                loc.starts_with(b"/login.jsp?os_destination="),
                "{what}: {:?}",
                String::from_utf8_lossy(loc)
            );
        } else {
            assert!((400..500).contains(&status), "{what}: {status} without a Location");
        }
    }
    assert!(app.seen().is_empty(), "an anonymous request reached the app");
}

// ---------------------------------------------------------------------------
// User names.

/// User names that try to inject headers, confuse `user:token` pairs, or are huge.
fn hostile_names() -> Vec<String> {
    vec![
        "alice\r\nX-Injected: 1".into(),
        "alice\nX-Injected: 1".into(),
        "alice\r".into(),
        "alice:x".into(),
        ":".into(),
        "alice\u{0}".into(),
        "alice ".into(),
        "<script>alert(1)</script>".into(),
        "../../etc/passwd".into(),
        "\u{202e}ecila".into(),
        "x".repeat(65),
        "x".repeat(15_000),
        String::new(),
    ]
}

#[tokio::test]
async fn hostile_user_names_never_inject_headers_or_get_in() {
    let s = junk_server(&[]);
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    let c = s.bare_client();
    for name in hostile_names() {
        let shown: String = name.chars().take(40).collect();
        // API login: 401 (or 400 if authd refuses such a name outright); no header injected.
        let r = send(
            &format!("login as {shown:?}"),
            c.post(s.at("/rest/auth/1/session"))
                .json(&json!({ "username": name, "password": "alice-password-1" })),
        )
        .await;
        let status = r.status().as_u16();
        assert!(status == 401 || status == 400, "login as {shown:?}: {status}");
        assert!(r.headers().get("x-injected").is_none());
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"), "login as {shown:?}");
        assert!(set_cookie(&r, "JSESSIONID").is_none(), "login as {shown:?} set a session cookie");
        // Form login.
        let form = format!(
            "os_username={}&os_password=alice-password-1",
            authd::http::request::encode_component(&name)
        );
        let answer = raw(
            &s,
            "POST",
            b"/login.jsp",
            &[("Content-Type", FORM.as_bytes()), ("X-Atlassian-Token", b"no-check")],
            form.as_bytes(),
        )
        .await;
        let status = no_5xx(&format!("form login as {shown:?}"), &answer);
        assert!((400..500).contains(&status), "form login as {shown:?}: {status}");
        let headers = raw_headers(&answer);
        assert!(
            headers.iter().all(|(k, _)| k != "x-injected" && k != "location"),
            "form login as {shown:?}: {headers:?}"
        );
        // Admin API: refused as a new user's name.
        let r = send(
            &format!("admin add {shown:?}"),
            c.post(s.at("/rest/authd/1/admin/users"))
                .header("cookie", format!("JSESSIONID={admin}"))
                .json(&json!({ "name": name, "password": "a-good-password-1" })),
        )
        .await;
        // A 15 000-character name is within the 16 KiB body limit, so it is judged as a name: 400.
        assert_error(&format!("admin add {shown:?}"), r, 400).await;
        // In a path: no 5xx (an empty name is the list itself).
        if name.is_empty() {
            continue;
        }
        let path = format!("/rest/authd/1/admin/users/{}", authd::http::request::encode_component(&name));
        let r = send(&path, c.get(s.at(&path)).header("cookie", format!("JSESSIONID={admin}"))).await;
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
    let r = c
        .get(s.at("/rest/authd/1/admin/users"))
        .header("cookie", format!("JSESSIONID={admin}"))
        .send()
        .await
        .unwrap();
    let users: Value = r.json().await.unwrap();
    assert_eq!(users.as_array().map(Vec::len), Some(2), "only admin and alice: {users}");
}

#[tokio::test]
async fn user_add_on_the_command_line_refuses_hostile_names_clearly() {
    // Both ways the CLI works: on the database directly, and through a running server.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let out = authd_cli(&data, &["user", "add", "alice", "--password-stdin"], Some("alice-password-1"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut names = hostile_names();
    names.retain(|n| !n.contains('\0')); // a command-line argument cannot hold NUL
    names.push("x".repeat(1000));
    let mut unclear = Vec::new();
    for running in [false, true] {
        let server = running.then(|| Server::start_in(&data, &[]));
        for name in &names {
            let shown: String = name.chars().take(40).collect();
            let out = authd_cli(&data, &["user", "add", name, "--password-stdin"], Some("a-good-password-1"));
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!out.status.success(), "user add {shown:?} (server running: {running}) succeeded");
            assert_ne!(out.status.code(), Some(101), "user add {shown:?} panicked: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(
                err.contains("not a valid user name") || (name.is_empty() && err.to_lowercase().contains("name")),
                "user add {shown:?} (server running: {running}): the message does not say what is wrong: {err}"
            );
            // One clear line: the name cannot break the message into several lines or rewrite it.
            if err.contains('\r') || err.trim_end().lines().count() != 1 {
                unclear.push(format!("user add {shown:?} (server running: {running}): {err:?}"));
            }
        }
        let out = authd_cli(&data, &["user", "list", "--json"], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let users: Value = serde_json::from_slice(&out.stdout).unwrap();
        let listed: Vec<&str> = users.as_array().unwrap().iter().filter_map(|u| u["name"].as_str()).collect();
        assert_eq!(listed, ["alice"], "(server running: {running})");
        drop(server);
    }
    assert!(
        unclear.is_empty(),
        "the refusal echoes the name's control characters raw, so it is not one clear line:\n{}",
        unclear.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Methods.

const METHODS: &[&str] =
    &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO", "PROPFIND", "M-SEARCH"];

#[tokio::test]
async fn every_method_on_every_route_is_answered_without_a_5xx() {
    let s = junk_server(&[]);
    let c = s.bare_client();
    let mut failures = Vec::new();
    // Anonymous, as alice, as the admin (a fresh session per route: some methods log out).
    for who in [None, Some(("alice", "alice-password-1".to_string())), Some(("admin", s.admin_pw()))] {
        for path in ROUTES {
            let cookie = match &who {
                Some((user, pw)) => Some(format!("JSESSIONID={}", login_id(&s, user, pw).await)),
                None => None,
            };
            for method in METHODS {
                let what = format!("{method} {path} as {:?}", who.as_ref().map(|w| w.0));
                let mut b = c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), s.at(path));
                if let Some(cookie) = &cookie {
                    b = b.header("cookie", cookie);
                }
                match b.send().await {
                    Err(e) => failures.push(format!("{what}: {e:?}")),
                    Ok(r) if r.status().as_u16() >= 500 => failures.push(format!("{what}: {}", r.status())),
                    Ok(r) => match r.bytes().await {
                        Err(e) => failures.push(format!("{what}: the answer broke off: {e:?}")),
                        Ok(body) if *method == "HEAD" && !body.is_empty() => {
                            failures.push(format!("{what}: a body in answer to HEAD"))
                        }
                        Ok(_) => {}
                    },
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} requests failed:\n{}", failures.len(), failures.join("\n"));
    // CONNECT, and methods that are not tokens at all, over raw HTTP/1.1.
    for (method, target) in [
        ("CONNECT", &b"127.0.0.1:443"[..]),
        ("CONNECT", b"/healthz"),
        ("G\x01T", b"/healthz"),
        ("GET\x00", b"/healthz"),
        ("", b"/healthz"),
        ("\u{ff}", b"/healthz"),
    ] {
        let answer = raw(&s, method, target, &[], b"").await;
        if let Some(status) = raw_status(&answer) {
            assert!(status < 500, "{method:?} {target:?}: {status}");
        }
    }
    assert_eq!(s.bare_client().get(s.at("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn head_requests_are_answered_over_http1_and_http2() {
    let s = junk_server(&[]);
    for (proto, c) in [("HTTP/1.1", h1_client_for(&s.cert_pem())), ("HTTP/2", s.bare_client())] {
        for (path, status) in [
            ("/healthz", 200),
            ("/login.jsp", 200),
            ("/rest/api/2/serverInfo", 200),
            ("/rest/auth/1/session", 401),
            ("/rest/api/2/myself", 401),
            ("/no/such/route", 404),
        ] {
            let what = format!("HEAD {path} over {proto}");
            let r = c.head(s.at(path)).send().await.unwrap_or_else(|e| panic!("{what}: {e:?}"));
            assert_eq!(r.status(), status, "{what}");
            // The GET's length (RFC 9110 §9.3.2); the login page's is the same
            // each time (its token has a fixed length).
            let get = c.get(s.at(path)).send().await.unwrap().bytes().await.unwrap();
            assert_eq!(header(&r, "content-length"), Some(get.len().to_string()), "{what}");
            let body = r.bytes().await.unwrap_or_else(|e| panic!("{what}: the answer broke off: {e:?}"));
            assert!(body.is_empty(), "{what}: a body in answer to HEAD");
        }
    }
    // Logged in, on every kind of GET route; never on the one-use verification link.
    let cookie = format!("JSESSIONID={}", login_id(&s, "admin", &s.admin_pw()).await);
    for (path, status) in [
        ("/rest/auth/1/session", 200),
        ("/rest/api/2/myself", 200),
        ("/rest/authd/1/sessions", 200),
        ("/rest/authd/1/tokens", 200),
        ("/rest/authd/1/admin/users", 200),
        ("/account", 200),
        ("/verify-email?token=nope", 405),
    ] {
        let r = s.bare_client().head(s.at(path)).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), status, "HEAD {path}");
        if status == 405 {
            assert_eq!(header(&r, "allow").as_deref(), Some("GET"), "HEAD {path}");
        }
        assert!(r.bytes().await.unwrap().is_empty(), "HEAD {path}: a body");
    }
}

//! SPEC §3: the Jira session API.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

const SESSION: &str = "/rest/auth/1/session";

#[tokio::test]
async fn login_get_logout_flow() {
    let s = Server::start(&[]);
    let c = s.client();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"));
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OK"));
    let cookie = set_cookie(&r, "JSESSIONID").expect("session cookie");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["session"]["name"], "JSESSIONID");
    let id = body["session"]["value"].as_str().unwrap().to_string();
    assert!(cookie.starts_with(&format!("JSESSIONID={id};")));
    assert_eq!(body["loginInfo"]["loginCount"], 1);

    let r = c.get(s.at("/rest/auth/1/session")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "admin");
    assert_eq!(body["self"], format!("{}/rest/api/2/user?username=admin", s.url));

    let r = c.delete(s.at("/rest/auth/1/session")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"));

    let r = c.get(s.at("/rest/auth/1/session")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> =
        v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect();
    k.sort();
    k
}

/// Jira's timestamp shape in RFC 3339's profile of ISO 8601,
/// `2013-11-27T08:43:28.839+00:00`, in a plausible year.
fn assert_jira_time(v: &Value) {
    let t = v.as_str().unwrap_or_else(|| panic!("time is not a string: {v}"));
    let b = t.as_bytes();
    assert!(
        t.len() >= 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':',
        "not ISO 8601: {t}"
    );
    let year: u32 = t[..4].parse().unwrap_or_else(|_| panic!("not ISO 8601: {t}"));
    assert!((2024..2200).contains(&year), "implausible year in {t}");
    assert!(t.ends_with('Z') || t[19..].contains(['+', '-']), "no time zone in {t}");
}

#[tokio::test]
async fn login_body_has_exactly_the_jira_shape() {
    let s = Server::start(&[]);
    let c = s.client();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    assert_eq!(r.status(), 200);
    // SPEC §3: `Content-Type: application/json`, to the letter.
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("application/json"),
        "{:?}",
        header(&r, "content-type")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(keys(&body), ["loginInfo", "session"]);
    assert_eq!(keys(&body["session"]), ["name", "value"]);
    assert_eq!(body["session"]["name"], "JSESSIONID");
    // First login ever: counters known, both times unknown and so absent.
    assert_eq!(body["loginInfo"], json!({ "failedLoginCount": 0, "loginCount": 1 }));
}

#[tokio::test]
async fn login_info_reports_failures_and_previous_logins() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    let a = s.client();
    s.login_ok(&a, "admin", &pw).await;

    // A failure elsewhere shows in the live session's loginInfo.
    assert_eq!(s.login(&s.client(), "admin", "wrong password").await.status(), 401);
    let body: Value = a.get(s.at(SESSION)).send().await.unwrap().json().await.unwrap();
    let info = &body["loginInfo"];
    assert_eq!(info["failedLoginCount"], 1, "{body}");
    assert_eq!(info["loginCount"], 1, "{body}");
    assert_jira_time(&info["lastFailedLoginTime"]);
    assert!(info.get("previousLoginTime").is_none(), "only one login so far: {body}");

    // A second login knows the first.
    let body = s.login_ok(&s.client(), "admin", &pw).await;
    let info = &body["loginInfo"];
    assert_eq!(info["loginCount"], 2, "{body}");
    assert!(info["failedLoginCount"].is_u64(), "{body}");
    assert_jira_time(&info["previousLoginTime"]);
    assert_jira_time(&info["lastFailedLoginTime"]);
    assert_eq!(keys(info), ["failedLoginCount", "lastFailedLoginTime", "loginCount", "previousLoginTime"]);
}

#[tokio::test]
async fn get_session_has_self_link_name_and_login_info() {
    let s = Server::start(&[]);
    let c = s.client();
    s.login_ok(&c, "admin", &s.admin_pw()).await;
    let r = c.get(s.at(SESSION)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(keys(&body), ["loginInfo", "name", "self"]);
    assert_eq!(body["name"], "admin");
    let self_link = body["self"].as_str().unwrap().to_string();
    assert_eq!(self_link, format!("{}/rest/api/2/user?username=admin", s.url));
    assert_eq!(body["loginInfo"]["loginCount"], 1);
    assert_eq!(body["loginInfo"]["failedLoginCount"], 0);

    // The self link leads somewhere: the user, for a logged-in client.
    let r = c.get(&self_link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["name"], "admin");
}

#[tokio::test]
async fn myself_has_the_jira_user_fields() {
    let s = Server::start(&[]);
    s.add_user("bob", "bob's long password", &["--email", "bob@example.com"]);
    let c = s.client();
    s.login_ok(&c, "bob", "bob's long password").await;
    let r = c.get(s.at("/rest/api/2/myself")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("bob"));
    let me: Value = r.json().await.unwrap();
    for field in ["self", "name", "key", "emailAddress", "displayName", "active"] {
        assert!(me.get(field).is_some(), "myself lacks {field}: {me}");
    }
    assert_eq!(me["self"], format!("{}/rest/api/2/user?username=bob", s.url));
    assert_eq!(me["name"], "bob");
    assert!(me["key"].as_str().is_some_and(|k| !k.is_empty()), "{me}");
    assert_eq!(me["emailAddress"], "bob@example.com");
    assert!(me["displayName"].as_str().is_some_and(|d| !d.is_empty()), "{me}");
    assert_eq!(me["active"], true);

    let r = s.bare_client().get(s.at("/rest/api/2/myself")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_jira_error(&r.json().await.unwrap());
}

#[tokio::test]
async fn server_info_is_public_and_jira_shaped() {
    let s = Server::start(&[]);
    for path in ["/rest/api/2/serverInfo", "/rest/api/latest/serverInfo"] {
        let r = s.bare_client().get(s.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
        assert!(header(&r, "x-seraph-loginreason").is_none());
        let info: Value = r.json().await.unwrap();
        assert_eq!(info["baseUrl"], s.url, "{info}");
        assert_eq!(info["deploymentType"], "Server");
        assert_eq!(info["serverTitle"], "authd");
        let version = info["version"].as_str().unwrap_or_else(|| panic!("no version: {info}"));
        let numbers = info["versionNumbers"].as_array().unwrap_or_else(|| panic!("{info}"));
        assert_eq!(numbers.len(), 3, "{info}");
        assert!(numbers.iter().all(Value::is_u64), "{info}");
        let joined: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
        assert!(version.starts_with(&joined.join(".")), "{version} vs {joined:?}");
    }
    // Wrong credentials still get the public answer, anonymous, saying the
    // login failed as Jira does (JRA-41559), so a client can tell.
    for auth in [("admin", "wrong password"), ("admin", "authd_0000")] {
        let r = s
            .bare_client()
            .get(s.at("/rest/api/2/serverInfo"))
            .basic_auth(auth.0, Some(auth.1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{auth:?}");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
        assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"), "{auth:?}");
    }
}

#[tokio::test]
async fn latest_is_accepted_wherever_a_version_stands() {
    let s = Server::start(&[]);
    let c = s.client();
    let r = c
        .post(s.at("/rest/auth/latest/session"))
        .json(&json!({ "username": "admin", "password": s.admin_pw() }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(s.at("/rest/auth/latest/session")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "admin");
    let r = c.get(s.at("/rest/api/latest/myself")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "admin");
    let r = c.delete(s.at("/rest/auth/latest/session")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(c.get(s.at("/rest/api/latest/myself")).send().await.unwrap().status(), 401);
    // A version that does not exist is not an alias.
    assert_eq!(s.bare_client().get(s.at("/rest/auth/7/session")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn wrong_password_is_401_authenticated_failed() {
    let s = Server::start(&[]);
    let r = s.login(&s.client(), "admin", "not the password").await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"));
    assert_eq!(header(&r, "www-authenticate").as_deref(), Some("JIRA REST POST"));
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
    assert!(set_cookie(&r, "JSESSIONID").is_none_or(|c| c.contains("Max-Age=0")), "{:?}", set_cookies(&r));
    assert_jira_error(&r.json().await.unwrap());
}

/// RFC 9110 §15.5.2: a 401 carries `WWW-Authenticate`. Java's HttpClient
/// with an Authenticator throws without one. authd's challenge is Jira's
/// login one (not Basic, which would open a browser's password dialog).
#[tokio::test]
async fn every_401_carries_a_challenge() {
    let s = Server::start(&[]);
    let c = s.bare_client();
    let stale = "JSESSIONID=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("anonymous session check", c.get(s.at(SESSION))),
        ("anonymous myself", c.get(s.at("/rest/api/2/myself"))),
        ("stale cookie", c.get(s.at(SESSION)).header("cookie", stale)),
        ("logout without a session", c.delete(s.at(SESSION))),
        ("unknown API token", c.get(s.at("/rest/api/2/myself")).basic_auth("admin", Some("not-a-token"))),
        ("forward auth", c.get(s.at("/rest/authd/1/verify"))),
        ("own sessions", c.get(s.at("/rest/authd/1/sessions"))),
        (
            "login page, wrong password",
            c.post(s.at("/login.jsp"))
                .header("x-atlassian-token", "no-check")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("os_username=admin&os_password=wrong"),
        ),
    ];
    for (what, req) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(header(&r, "www-authenticate").as_deref(), Some("JIRA REST POST"), "{what}");
    }
}

/// Everything a client can see of an answer except `Date`.
async fn observable(r: reqwest::Response) -> (u16, Vec<(String, String)>, bytes::Bytes) {
    let status = r.status().as_u16();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    headers.sort();
    (status, headers, r.bytes().await.unwrap())
}

#[tokio::test]
async fn unknown_user_gets_the_identical_answer() {
    let s = Server::start(&[]);
    let wrong_pw = observable(s.login(&s.bare_client(), "admin", "not the password").await).await;
    let unknown = observable(s.login(&s.bare_client(), "nobody-here", "not the password").await).await;
    assert_eq!(wrong_pw.0, 401);
    assert_eq!(wrong_pw, unknown, "a wrong password and an unknown user must look the same");
    // A name that could never be a user is no different either.
    let invalid = observable(s.login(&s.bare_client(), "no such/user", "x").await).await;
    assert_eq!(wrong_pw, invalid);
}

/// The median time of `n` failed logins as `user`.
async fn median_failed_login(s: &Server, user: &str, n: usize) -> Duration {
    let c = s.bare_client();
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        assert_eq!(s.login(&c, user, "definitely wrong").await.status(), 401);
        times.push(t.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[tokio::test]
async fn unknown_user_takes_as_long_as_a_wrong_password() {
    let s = Server::start(&["--max-failed-logins", "1000"]);
    // Warm up connections and the hashing pool.
    let _ = median_failed_login(&s, "admin", 1).await;
    let known = median_failed_login(&s, "admin", 7).await;
    let unknown = median_failed_login(&s, "nobody-at-all", 7).await;
    assert!(
        unknown * 10 >= known * 4,
        "unknown user answered in {unknown:?}, a known one in {known:?}: user names can be enumerated by timing"
    );
}

#[tokio::test]
async fn malformed_login_bodies_are_400() {
    let s = Server::start(&[]);
    let c = s.bare_client();
    let cases: [&[u8]; 9] = [
        b"{\"username\":",
        b"",
        b"null",
        b"[]",
        b"{\"username\":\"admin\"}",
        b"{\"password\":\"x\"}",
        b"{\"username\":1,\"password\":\"x\"}",
        b"{\"username\":\"admin\",\"password\":null}",
        b"{\"username\":\"\xff\xfe\",\"password\":\"x\"}",
    ];
    for body in cases {
        let r = c
            .post(s.at(SESSION))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let shown = String::from_utf8_lossy(body).into_owned();
        assert_eq!(r.status(), 400, "body {shown:?}");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
        assert_jira_error(&r.json().await.unwrap());
    }
}

#[tokio::test]
async fn remember_me_null_is_the_same_as_absent() {
    let s = Server::start(&[]);
    let c = s.bare_client();
    let body = json!({ "username": "admin", "password": s.admin_pw(), "rememberMe": null });
    let r = c.post(s.at(SESSION)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(set_cookie(&r, "JSESSIONID").is_some());
    assert_eq!(set_cookie(&r, "seraph.rememberme.cookie"), None, "null asked for a remember-me cookie");
}

#[tokio::test]
async fn other_content_types_are_415() {
    let s = Server::start(&[]);
    let c = s.bare_client();
    let body = json!({ "username": "admin", "password": s.admin_pw() }).to_string();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("application/xml"),
        None,
    ] {
        let mut req = c.post(s.at(SESSION)).body(body.clone());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 415, "content type {ct:?}");
        assert!(set_cookie(&r, "JSESSIONID").is_none(), "{ct:?} logged in anyway");
        assert_jira_error(&r.json().await.unwrap());
    }
    // Parameters and case do not matter.
    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let r = c.post(s.at(SESSION)).header("content-type", ct).body(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "content type {ct}");
    }
}

/// A login body of exactly `len` bytes for an unknown user.
fn login_body_of_len(len: usize) -> String {
    let head = "{\"username\":\"nobody\",\"password\":\"";
    let tail = "\"}";
    let pad = len - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(pad))
}

#[tokio::test]
async fn login_bodies_over_16_kib_are_413() {
    let s = Server::start(&[]);
    let c = s.bare_client();
    let post =
        |body: String| c.post(s.at(SESSION)).header("content-type", "application/json").body(body).send();
    // At the limit: read and judged (an unknown user: 401).
    let r = post(login_body_of_len(16 * 1024)).await.unwrap();
    assert_eq!(r.status(), 401);
    // One byte over: refused.
    let r = post(login_body_of_len(16 * 1024 + 1)).await.unwrap();
    assert_eq!(r.status(), 413);
    assert_jira_error(&r.json().await.unwrap());
    let r = post(login_body_of_len(1024 * 1024)).await.unwrap();
    assert_eq!(r.status(), 413);

    // Without a Content-Length (chunked), the limit still holds.
    let body = login_body_of_len(20 * 1024);
    let mut req = format!(
        "POST {SESSION} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.port
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(4096) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_h1(&s, &req).await;
    assert_eq!(raw_status(&answer), Some(413), "{}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn x_ausername_is_on_every_response() {
    let s = Server::start(&[]);
    let anon = s.bare_client();
    let checks: Vec<(reqwest::Method, &str)> = vec![
        (reqwest::Method::GET, "/rest/api/2/serverInfo"),
        (reqwest::Method::GET, SESSION),
        (reqwest::Method::DELETE, SESSION),
        (reqwest::Method::GET, "/rest/api/2/myself"),
        (reqwest::Method::GET, "/no/such/page"),
        (reqwest::Method::PUT, SESSION),
        (reqwest::Method::GET, "/healthz"),
        (reqwest::Method::GET, "/metrics"),
    ];
    for (m, path) in &checks {
        let r = anon.request(m.clone(), s.at(path)).send().await.unwrap();
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"), "{m} {path}");
        assert!(header(&r, "x-asessionid").is_none(), "{m} {path}: no session is in use");
    }
    let r = s.login(&anon, "admin", "wrong").await;
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
    let r = anon.post(s.at(SESSION)).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));

    let c = s.client();
    s.login_ok(&c, "admin", &s.admin_pw()).await;
    for path in [SESSION, "/rest/api/2/myself"] {
        let r = c.get(s.at(path)).send().await.unwrap();
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"), "{path}");
    }
}

#[tokio::test]
async fn x_ausername_names_the_logged_in_user_on_any_route() {
    let s = Server::start(&[]);
    let c = s.client();
    s.login_ok(&c, "admin", &s.admin_pw()).await;
    // "Every response carries X-AUSERNAME (user name or anonymous)": a
    // request with a live session is the user's, whatever the route.
    for path in ["/rest/api/2/serverInfo", "/no/such/page"] {
        let r = c.get(s.at(path)).send().await.unwrap();
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"), "{path}");
        assert!(header(&r, "x-asessionid").is_some(), "{path}: a session is in use");
    }
}

#[tokio::test]
async fn x_asessionid_is_a_short_handle_not_the_id() {
    let s = Server::start(&[]);
    let c = s.client();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    assert_eq!(r.status(), 200);
    let handle = header(&r, "x-asessionid").expect("X-ASESSIONID on login");
    let body: Value = r.json().await.unwrap();
    let id = body["session"]["value"].as_str().unwrap();
    assert_ne!(handle, id);
    assert!(handle.len() < 24, "handle {handle:?} is not short");
    assert!(!id.contains(&handle) && !handle.contains(id), "handle {handle:?} leaks the ID");
    assert!(handle.chars().all(|ch| ch.is_ascii_alphanumeric()), "{handle:?}");

    let r = c.get(s.at(SESSION)).send().await.unwrap();
    assert_eq!(header(&r, "x-asessionid").as_deref(), Some(handle.as_str()), "stable per session");
    let r = c.get(s.at("/rest/api/2/myself")).send().await.unwrap();
    assert_eq!(header(&r, "x-asessionid").as_deref(), Some(handle.as_str()));
    // The logout names the session it ended (and no deadline for it).
    let r = c.delete(s.at(SESSION)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "x-asessionid").as_deref(), Some(handle.as_str()), "logout");
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
    assert!(header(&r, "x-authd-session-expires").is_none());
    let r = c.get(s.at(SESSION)).send().await.unwrap();
    assert!(header(&r, "x-asessionid").is_none(), "after the logout");

    // Another session has another handle.
    let other = s.client();
    let r = s.login(&other, "admin", &s.admin_pw()).await;
    let h2 = header(&r, "x-asessionid").unwrap();
    assert_ne!(h2, handle);
}

#[tokio::test]
async fn authentication_responses_are_no_store() {
    let s = Server::start(&[]);
    let c = s.client();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"), "login 200");
    for path in [SESSION, "/rest/api/2/myself"] {
        let r = c.get(s.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"), "{path}");
        let r = s.bare_client().get(s.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"), "{path} 401");
    }
    let r = c.delete(s.at(SESSION)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"), "logout");
}

#[tokio::test]
async fn logout_expires_the_cookie_and_ends_the_session() {
    let s = Server::start(&[]);
    let c = s.client();
    let body = s.login_ok(&c, "admin", &s.admin_pw()).await;
    let id = body["session"]["value"].as_str().unwrap().to_string();
    let r = c.delete(s.at(SESSION)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"));
    let gone = set_cookie(&r, "JSESSIONID").expect("logout must expire the session cookie");
    let (_, value, attrs) = parse_set_cookie(&gone);
    assert!(value.is_empty() || value != id, "{gone}");
    assert!(attrs.iter().any(|a| a.eq_ignore_ascii_case("Max-Age=0")), "{gone}");
    assert!(attrs.iter().any(|a| a.eq_ignore_ascii_case("Path=/")), "{gone}");
    assert!(r.bytes().await.unwrap().is_empty(), "204 has no body");

    // The ID itself is dead, not just forgotten by this browser.
    assert_eq!(session_status(&s, &id).await, 401);
    // Logging out again is not possible: not logged in.
    let r = s
        .bare_client()
        .delete(s.at(SESSION))
        .header("cookie", format!("JSESSIONID={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_jira_error(&r.json().await.unwrap());
}

#[tokio::test]
async fn logout_without_login_is_401() {
    let s = Server::start(&[]);
    let r = s.bare_client().delete(s.at(SESSION)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_ne!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"));
    assert_jira_error(&r.json().await.unwrap());
}

#[tokio::test]
async fn unknown_or_stale_cookie_is_401_invalid_or_expired() {
    let s = Server::start(&[]);
    // A well-formed ID nobody issued, a malformed one, and one logged out.
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    let r = s
        .bare_client()
        .delete(s.at(SESSION))
        .header("cookie", format!("JSESSIONID={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let unknown = "A".repeat(43);
    for value in [unknown.as_str(), "not-a-session-id", id.as_str()] {
        for path in [SESSION, "/rest/api/2/myself"] {
            let r = s
                .bare_client()
                .get(s.at(path))
                .header("cookie", format!("JSESSIONID={value}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path} with {value}");
            assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
            let body: Value = r.json().await.unwrap();
            assert_jira_error(&body);
            let msg = error_message(&body).to_lowercase();
            assert!(msg.contains("invalid") || msg.contains("expired"), "{path} with {value}: {msg}");
        }
    }
}

#[tokio::test]
async fn not_found_and_method_not_allowed_are_jira_shaped() {
    let s = Server::start(&[]);
    let c = s.bare_client();
    for path in ["/nope", "/rest/auth/1/sessions", "/rest/api/2/nothing", "/rest"] {
        let r = c.get(s.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(header(&r, "content-type").as_deref(), Some("application/json"));
        assert_jira_error(&r.json().await.unwrap());
    }
    for (m, path, allowed) in [
        (reqwest::Method::PUT, SESSION, "POST"),
        (reqwest::Method::PATCH, SESSION, "GET"),
        (reqwest::Method::POST, "/rest/api/2/myself", "GET"),
        (reqwest::Method::DELETE, "/rest/api/2/serverInfo", "GET"),
        // authd's own APIs say so before asking who is calling.
        (reqwest::Method::GET, "/rest/authd/1/sessions/0123456789ab", "DELETE"),
        (reqwest::Method::POST, "/rest/authd/1/sessions", "DELETE"),
        (reqwest::Method::OPTIONS, "/rest/authd/1/sessions", "GET"),
        (reqwest::Method::PUT, "/rest/authd/1/tokens", "POST"),
        (reqwest::Method::GET, "/rest/authd/1/tokens/abc", "DELETE"),
        (reqwest::Method::PUT, "/rest/authd/1/admin/users", "POST"),
        (reqwest::Method::POST, "/rest/authd/1/admin/users/bob", "DELETE"),
        (reqwest::Method::GET, "/rest/authd/1/admin/users/bob/verify", "POST"),
        (reqwest::Method::GET, "/rest/authd/1/admin/users/bob/password", "PUT"),
        (reqwest::Method::GET, "/rest/authd/1/admin/users/bob/sessions", "DELETE"),
        (reqwest::Method::GET, "/rest/authd/1/admin/sessions/0123456789ab", "DELETE"),
        (reqwest::Method::GET, "/rest/authd/1/admin/tokens/abc", "DELETE"),
    ] {
        let r = c.request(m.clone(), s.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{m} {path}");
        let allow = header(&r, "allow").unwrap_or_else(|| panic!("405 without Allow for {m} {path}"));
        assert!(allow.contains(allowed), "{m} {path}: Allow: {allow}");
        assert_jira_error(&r.json().await.unwrap());
    }
    // An account page action that does not exist, whatever the body.
    let r = c
        .post(s.at("/account/nosuch"))
        .header("content-type", "application/json")
        .header("x-atlassian-token", "no-check")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn http2_and_http1_both_work() {
    let s = Server::start(&[]);
    let c = s.client();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN should pick h2");
    assert_eq!(r.status(), 200);
    let r = c.get(s.at(SESSION)).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);

    let h1 = h1_client_for(&s.cert_pem());
    let r = h1.get(s.at("/rest/api/2/serverInfo")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    let r = h1
        .post(s.at(SESSION))
        .json(&json!({ "username": "admin", "password": s.admin_pw() }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn unverified_email_with_the_right_password_is_409() {
    let s = Server::start(&[]);
    s.add_user("uma", "uma's long password", &["--email", "x@y", "--unverified"]);
    let r = s.login(&s.client(), "uma", "uma's long password").await;
    assert_eq!(r.status(), 409);
    assert!(set_cookie(&r, "JSESSIONID").is_none(), "no session for an unverified user");
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));
    assert_jira_error(&r.json().await.unwrap());
    // A wrong password does not reveal whether the address is verified.
    let r = s.login(&s.client(), "uma", "wrong password").await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"));
}

#[tokio::test]
async fn user_names_are_case_insensitive_at_login() {
    let s = Server::start(&[]);
    s.add_user("Carol", "carol's long password", &[]);
    let body = s.login_ok(&s.client(), "carol", "carol's long password").await;
    assert!(body["session"]["value"].is_string());
    let c = s.client();
    s.login_ok(&c, "CAROL", "carol's long password").await;
    let me: Value = c.get(s.at("/rest/api/2/myself")).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["name"], "Carol", "the name as registered");
}

#[tokio::test]
async fn a_new_login_beyond_the_per_user_cap_evicts_the_oldest() {
    let s = Server::start(&["--max-sessions-per-user", "2"]);
    let pw = s.admin_pw();
    let first = login_id(&s, "admin", &pw).await;
    let second = login_id(&s, "admin", &pw).await;
    let third = login_id(&s, "admin", &pw).await;
    assert_eq!(session_status(&s, &first).await, 401, "the oldest session must be evicted");
    assert_eq!(session_status(&s, &second).await, 200);
    assert_eq!(session_status(&s, &third).await, 200);
}

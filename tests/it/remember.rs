//! SPEC §4 and §6: "Remember my login": the cookie, rotation on every use,
//! the grace window for parallel requests, theft detection, series expiry,
//! logout, and junk cookies.

use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::jar::*;
use crate::support::*;

/// Splits a remember-me cookie value into its selector and validator.
fn parts(value: &str) -> (String, String) {
    let (sel, val) = value.split_once(':').unwrap_or_else(|| panic!("not selector:validator: {value}"));
    (sel.to_string(), val.to_string())
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Only the remember-me cookie of `jar` (the session cookie dropped, as after a browser restart).
fn remember_only(jar: &Jar) -> String {
    format!("{REMEMBER}={}", jar.remember.as_ref().expect("no remember-me cookie"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The lines the server has logged at WARN level.
fn warnings(s: &Server) -> Vec<String> {
    s.log_text().lines().filter(|l| l.contains("WARN")).map(str::to_string).collect()
}

#[tokio::test]
async fn the_cookie_is_selector_colon_validator_with_the_spec_attributes() {
    let s = Server::start(&[]);
    let r = login_response(&s, "admin", &s.admin_pw(), true).await;
    let value = set_value(&r, REMEMBER).expect("remember-me cookie");
    let (sel, val) = parts(&value);
    assert_eq!(b64(&sel).len(), 16, "selector is 128 bits");
    assert_eq!(b64(&val).len(), 32, "validator is 256 bits");
    let attrs = set_attrs(&r, REMEMBER);
    for want in ["path=/", "secure", "httponly", "samesite=lax"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing from {attrs:?}");
    }
    // Max-Age is the series' remaining life: 14 days by default.
    let age = max_age(&r, REMEMBER).expect("Max-Age");
    assert_eq!(age, 14 * 86_400, "Max-Age of a new series is its whole age");
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "no Domain: {attrs:?}");

    // Without rememberMe there is no such cookie.
    let r = s.login(&s.bare_client(), "admin", &s.admin_pw()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(set_cookie(&r, REMEMBER), None);
}

#[tokio::test]
async fn only_a_hash_of_the_validator_is_stored() {
    let s = Server::start(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let (_, val) = parts(jar.remember.as_ref().unwrap());
    let raw = b64(&val);
    let mut hash = [0u8; 32];
    let mut h = blake3::Hasher::new_derive_key("authd 2026-11 remember-me validator");
    h.update(&raw);
    h.finalize_xof().fill(&mut hash);
    // The login was acknowledged, so it is durable: the file holds it now.
    let db = stored_bytes(&s.data);
    assert!(!contains(&db, &raw), "the raw validator is in the database");
    assert!(!contains(&db, val.as_bytes()), "the validator's text is in the database");
    assert!(contains(&db, &hash), "the validator's blake3 hash is not in the database");
}

#[tokio::test]
async fn every_use_rotates_the_validator_and_starts_a_session() {
    let s = Server::start(&[]);
    let mut jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let first_session = jar.session.clone().unwrap();
    let r0 = jar.remember.clone().unwrap();
    let (sel0, val0) = parts(&r0);

    // The session cookie is gone (browser restart): the remember-me cookie logs in.
    jar.session = None;
    let r = whoami(&s, &jar.header()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"));
    let new_session = set_value(&r, SESSION).expect("a new session cookie");
    assert_ne!(new_session, first_session);
    let r1 = set_value(&r, REMEMBER).expect("a rotated remember-me cookie");
    let (sel1, val1) = parts(&r1);
    assert_eq!(sel1, sel0, "same series");
    assert_ne!(val1, val0, "new validator");
    jar.apply(&r);

    // The new session works on its own, and using it rotates nothing.
    let r = whoami(&s, &format!("{SESSION}={new_session}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(set_cookie(&r, REMEMBER), None);
    assert_eq!(set_cookie(&r, SESSION), None);
    // Both sessions are alive: remember-me adds a session, it does not end others.
    assert!(session_alive(&s, &first_session).await);

    // Every use rotates again.
    let mut seen = vec![val0, val1];
    for _ in 0..3 {
        let r = whoami(&s, &remember_only(&jar)).await;
        assert_eq!(r.status(), 200);
        let next = set_value(&r, REMEMBER).expect("rotated");
        let (sel, val) = parts(&next);
        assert_eq!(sel, sel0);
        assert!(!seen.contains(&val), "a validator came back");
        seen.push(val);
        jar.apply(&r);
    }
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
}

#[tokio::test]
async fn a_remember_me_login_keeps_the_user_within_the_session_cap() {
    // SPEC §5: "A user has at most --max-sessions-per-user sessions; a new
    // login evicts the oldest." A remember-me login is a new login.
    let s = Server::start(&["--max-sessions-per-user", "2"]);
    let mut jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let first = jar.session.clone().unwrap();
    let second = login_id(&s, "admin", &s.admin_pw()).await;

    jar.session = None;
    let r = whoami(&s, &remember_only(&jar)).await;
    assert_eq!(r.status(), 200);
    let third = set_value(&r, SESSION).expect("a new session cookie");
    jar.apply(&r);
    assert!(!session_alive(&s, &first).await, "the oldest session must be evicted");
    assert!(session_alive(&s, &second).await);
    assert!(session_alive(&s, &third).await);

    // Again: the next remember-me login evicts the next oldest.
    jar.session = None;
    let r = whoami(&s, &remember_only(&jar)).await;
    assert_eq!(r.status(), 200);
    let fourth = set_value(&r, SESSION).expect("a new session cookie");
    assert!(!session_alive(&s, &second).await, "the oldest session must be evicted");
    assert!(session_alive(&s, &third).await);
    assert!(session_alive(&s, &fourth).await);
}

#[tokio::test]
async fn max_age_is_the_remaining_series_life_and_use_never_extends_it() {
    let s = Server::start(&["--remember-me-age", "8s"]);
    let r = login_response(&s, "admin", &s.admin_pw(), true).await;
    let login_age = max_age(&r, REMEMBER).expect("Max-Age");
    let mut jar = Jar::default();
    jar.apply(&r);
    assert!((7..=8).contains(&login_age), "Max-Age at login = {login_age}");
    jar.session = None;

    let mut last = login_age;
    let started = Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = whoami(&s, &remember_only(&jar)).await;
        assert_eq!(r.status(), 200);
        let age = max_age(&r, REMEMBER).expect("rotated cookie has Max-Age");
        let elapsed = started.elapsed().as_secs();
        assert!(age < last, "Max-Age went {last} -> {age}: use extended the series");
        assert!(age + elapsed <= login_age, "Max-Age {age} after {elapsed}s of a {login_age}s series");
        let attrs = set_attrs(&r, REMEMBER);
        for want in ["path=/", "secure", "httponly", "samesite=lax"] {
            assert!(attrs.iter().any(|a| a == want), "{want} missing from {attrs:?} after rotation");
        }
        last = age;
        jar.apply(&r);
    }
}

#[tokio::test]
async fn an_ended_series_logs_nobody_in_and_is_not_theft() {
    let s = Server::start(&["--remember-me-age", "3s"]);
    let mut jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    jar.session = None;
    // Used once while alive: fine.
    let r = whoami(&s, &remember_only(&jar)).await;
    assert_eq!(r.status(), 200);
    jar.apply(&r);
    let session_from_series = jar.session.take().unwrap();

    tokio::time::sleep(Duration::from_millis(3300)).await;
    let r = whoami(&s, &remember_only(&jar)).await;
    assert_eq!(r.status(), 401, "an ended series logged someone in");
    assert!(deletes(&r, REMEMBER), "the dead cookie is not cleared: {:?}", set_cookies(&r));
    assert_eq!(set_cookie(&r, SESSION).filter(|c| !c.contains("Max-Age=0")), None, "a session was started");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_jira_error(&body);
    assert!(error_message(&body).contains("expired"), "{body}");
    // Presenting it again is still just "ended", never theft.
    let r = whoami(&s, &remember_only(&jar)).await;
    assert_eq!(r.status(), 401);
    assert!(warnings(&s).is_empty(), "an expired series was treated as theft: {:?}", warnings(&s));
    // The session the series started earlier lives by its own timeouts.
    assert!(session_alive(&s, &session_from_series).await);
}

#[tokio::test]
async fn parallel_requests_with_the_same_cookie_all_get_in_and_rotate_once() {
    let s = Server::start(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let cookie = remember_only(&jar);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let c = s.bare_client();
        let url = s.at("/rest/auth/1/session");
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move { c.get(url).header("cookie", cookie).send().await.unwrap() }));
    }
    let mut rotated = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status(), 200, "a parallel request was refused");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"));
        if let Some(v) = set_value(&r, REMEMBER) {
            rotated.push(v);
        }
    }
    assert_eq!(rotated.len(), 1, "one request rotates, the others ride the grace window: {rotated:?}");
    assert!(warnings(&s).is_empty(), "parallel requests were taken for theft: {:?}", warnings(&s));
    // The browser ends up with the rotated cookie, and it works.
    let r = whoami(&s, &format!("{REMEMBER}={}", rotated[0])).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn grace_window_accepts_the_previous_validator_without_rotating() {
    let s = Server::start(&["--remember-me-grace", "5s"]);
    let mut jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    jar.session = None;
    let r0 = remember_only(&jar);
    let r = whoami(&s, &r0).await;
    assert_eq!(r.status(), 200);
    let (handle, expires) = (header(&r, "x-asessionid"), header(&r, "x-authd-session-expires"));
    assert!(handle.is_some() && expires.is_some());
    jar.apply(&r);
    let s1 = jar.session.clone().unwrap();

    // A late request that left before the rotation arrived: let in, nothing
    // new set; it answers for the session the rotation started (SPEC §3, §5).
    for _ in 0..3 {
        let r = whoami(&s, &r0).await;
        assert_eq!(r.status(), 200, "the previous validator was refused inside the grace window");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"));
        assert_eq!(header(&r, "x-asessionid"), handle, "not the rotation's session");
        assert_eq!(header(&r, "x-authd-session-expires"), expires);
        assert_eq!(set_cookie(&r, REMEMBER), None, "grace must not rotate");
        assert_eq!(set_cookie(&r, SESSION), None, "grace must not start a session");
    }
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
    // The rotated cookie is still the current one, and the session lives.
    assert!(session_alive(&s, &s1).await);
    jar.session = None;
    let r = whoami(&s, &remember_only(&jar)).await;
    assert_eq!(r.status(), 200);
    assert!(set_value(&r, REMEMBER).is_some());
}

#[tokio::test]
async fn an_older_validator_is_theft_and_revokes_the_user_everywhere() {
    let s = Server::start(&["--remember-me-grace", "1s"]);
    s.add_user("bob", "bob-password-1", &[]);
    let pw = s.admin_pw();
    // The victim's other devices: a password session and another remembered browser.
    let laptop = api_login(&s, "admin", &pw, false).await;
    let mut phone = api_login(&s, "admin", &pw, true).await;
    phone.session = None;
    let bob = api_login(&s, "bob", "bob-password-1", true).await;

    // The thief copies the cookie; the victim uses it first, so it rotates.
    let mut victim = api_login(&s, "admin", &pw, true).await;
    victim.session = None;
    let stolen = victim.remember.clone().unwrap();
    let r = whoami(&s, &remember_only(&victim)).await;
    assert_eq!(r.status(), 200);
    victim.apply(&r);
    let victim_session = victim.session.clone().unwrap();
    let current = victim.remember.clone().unwrap();
    assert_ne!(current, stolen);

    // After the grace window the thief presents the old validator.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = whoami(&s, &format!("{REMEMBER}={stolen}")).await;
    assert_eq!(r.status(), 401, "an old validator logged someone in");
    assert!(deletes(&r, REMEMBER), "the stolen cookie is not cleared: {:?}", set_cookies(&r));
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("anonymous"));

    // Every session and series of the victim is gone.
    assert!(!session_alive(&s, &victim_session).await, "the victim's remembered session survived");
    assert!(!session_alive(&s, laptop.session.as_ref().unwrap()).await, "the password session survived");
    let r = whoami(&s, &format!("{REMEMBER}={current}")).await;
    assert_eq!(r.status(), 401, "the victim's current validator still works");
    let r = whoami(&s, &remember_only(&phone)).await;
    assert_eq!(r.status(), 401, "another series of the victim still works");
    // Other users are untouched.
    assert!(session_alive(&s, bob.session.as_ref().unwrap()).await);
    let r = whoami(&s, &remember_only(&bob)).await;
    assert_eq!(r.status(), 200, "another user's series was revoked");

    // The event is logged as a warning, without secrets.
    let deadline = Instant::now() + Duration::from_secs(5);
    let warning = loop {
        if let Some(w) = warnings(&s).into_iter().find(|l| l.contains("remember")) {
            break w;
        }
        assert!(Instant::now() < deadline, "no theft warning in the log:\n{}", s.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = s.log_text();
    let (_, stolen_val) = parts(&stolen);
    let (_, current_val) = parts(&current);
    for secret in [&stolen, &current, &stolen_val, &current_val, &victim_session] {
        assert!(!log.contains(secret.as_str()), "the log shows a secret ({secret}):\n{log}");
    }
    assert!(!warning.contains(&stolen), "{warning}");
}

#[tokio::test]
async fn a_forged_validator_for_an_unknown_series_is_only_rejected() {
    let s = Server::start(&[]);
    let jar = api_login(&s, "admin", &s.admin_pw(), false).await;
    let forged = format!("{}:{}", "A".repeat(22), "B".repeat(43));
    let r = whoami(&s, &format!("{REMEMBER}={forged}")).await;
    assert_eq!(r.status(), 401);
    assert!(session_alive(&s, jar.session.as_ref().unwrap()).await);
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
}

#[tokio::test]
async fn logout_deletes_this_browsers_series_only() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    let mut here = api_login(&s, "admin", &pw, true).await;
    let mut elsewhere = api_login(&s, "admin", &pw, true).await;
    elsewhere.session = None;

    let r = s
        .bare_client()
        .delete(s.at("/rest/auth/1/session"))
        .header("cookie", here.header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(deletes(&r, SESSION), "session cookie not expired: {:?}", set_cookies(&r));
    assert!(deletes(&r, REMEMBER), "remember-me cookie not expired: {:?}", set_cookies(&r));
    let old = here.remember.clone().unwrap();
    here.apply(&r);
    assert_eq!(here.remember, None);

    // A browser that kept the cookie anyway gets nothing (and it is not theft).
    let r = whoami(&s, &format!("{REMEMBER}={old}")).await;
    assert_eq!(r.status(), 401, "the series survived logout");
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
    // The other browser's series still works.
    let r = whoami(&s, &remember_only(&elsewhere)).await;
    assert_eq!(r.status(), 200, "logout ended another browser's series");
    elsewhere.apply(&r);

    // Logging out of a session the remember-me cookie started also ends the series.
    let r = s
        .bare_client()
        .delete(s.at("/rest/auth/1/session"))
        .header("cookie", elsewhere.header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = whoami(&s, &remember_only(&elsewhere)).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn junk_remember_me_cookies_are_401_never_500() {
    let s = Server::start(&[]);
    let valid = api_login(&s, "admin", &s.admin_pw(), true).await;
    let (sel, val) = parts(valid.remember.as_ref().unwrap());
    let long = "x".repeat(3000);
    let junk: Vec<String> = vec![
        "".into(),
        "x".into(),
        ":".into(),
        "::".into(),
        "a:b".into(),
        format!("{sel}:"),
        format!(":{val}"),
        format!("{sel}:{val}x"),
        format!("{sel}x:{val}"),
        format!("{sel}:{}", &val[..42]),
        format!("{sel}:{val}:{val}"),
        format!("{val}:{sel}"),
        format!("{}:{val}", sel.replace(|c: char| c.is_ascii_alphanumeric(), "=")),
        format!("\"{sel}\""),
        "\"\"".into(),
        "%00%00".into(),
        "sel%3Aval".into(),
        long.clone(),
        format!("{long}:{long}"),
        "AAAAAAAAAAAAAAAAAAAAAA==:AAAA".into(),
        "+/+/+/+/+/+/+/+/+/+/+/:+/+/".into(),
    ];
    let client = s.bare_client();
    for j in &junk {
        for path in ["/rest/auth/1/session", "/rest/api/2/myself"] {
            let r = client.get(s.at(path)).header("cookie", format!("{REMEMBER}={j}")).send().await.unwrap();
            assert_eq!(r.status(), 401, "{path} with remember-me cookie {j:?}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_jira_error(&body);
        }
        let r =
            client.get(s.at("/account")).header("cookie", format!("{REMEMBER}={j}")).send().await.unwrap();
        assert_eq!(r.status(), 303, "/account with remember-me cookie {j:?}");
        let r =
            client.get(s.at("/login.jsp")).header("cookie", format!("{REMEMBER}={j}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "/login.jsp with remember-me cookie {j:?}");
    }
    // Bytes that are not UTF-8, and odd header shapes.
    let odd: Vec<Vec<u8>> = vec![
        [REMEMBER.as_bytes(), b"=\xff\xfe:\x80"].concat(),
        [REMEMBER.as_bytes(), b"=", sel.as_bytes(), b":\xc3\x28"].concat(),
        format!("{REMEMBER}=; {REMEMBER}=;;; {REMEMBER}").into_bytes(),
        format!("{REMEMBER}={sel}:{val}x;{REMEMBER}").into_bytes(),
    ];
    for raw in &odd {
        let v = reqwest::header::HeaderValue::from_bytes(raw).unwrap();
        let r = client.get(s.at("/rest/auth/1/session")).header("cookie", v).send().await.unwrap();
        assert_eq!(r.status(), 401, "{:?}", String::from_utf8_lossy(raw));
    }
    assert!(warnings(&s).is_empty(), "junk was taken for theft: {:?}", warnings(&s));

    // Junk beside a valid session cookie does not spoil it.
    let r = whoami(&s, &format!("{REMEMBER}=junk; {SESSION}={}", valid.session.as_ref().unwrap())).await;
    assert_eq!(r.status(), 200);
    // Junk before a valid remember-me cookie: the valid one is used.
    let r = whoami(&s, &format!("{REMEMBER}=junk; {REMEMBER}={sel}:{val}")).await;
    assert_eq!(r.status(), 200);
    // The server is fine afterwards.
    let r = client.get(s.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// A remember-me login and a password change in one request each move the
/// session ID; the answer sets the cookie once, to the ID that works
/// (RFC 6265 §4.1.1: no two cookies of one name in one answer).
#[tokio::test]
async fn a_password_change_made_by_a_remember_me_login_sets_one_session_cookie() {
    let s = Server::start(&[]);
    s.add_user("dave", "dave-password-1", &[]);
    let jar = api_login(&s, "dave", "dave-password-1", true).await;
    let r = change_password(&s, &remember_only(&jar), "dave-password-1", "dave-password-2").await;
    assert_eq!(r.status(), 204);
    let sessions: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|c| c.starts_with(&format!("{SESSION}=")))
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let id = set_value(&r, SESSION).unwrap();
    assert!(session_alive(&s, &id).await);
    assert_eq!(
        set_cookie(&r, REMEMBER).map(|c| c.contains("Max-Age=0")),
        Some(false),
        "a live remember-me cookie"
    );
}

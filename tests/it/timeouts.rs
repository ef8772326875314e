//! SPEC §5: idle (sliding) and absolute timeouts, passive requests, the
//! expiry header, and the sweeper that deletes what expired.
//!
//! Timeouts are set to seconds so every test finishes in a few seconds.
//! Deadlines are judged with margins on both sides: the server's clock
//! starts a little before the client sees a login answered.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

const SESSION: &str = "/rest/auth/1/session";

/// `GET /rest/auth/1/session` with `JSESSIONID=id`, optionally passive.
async fn check(s: &Server, c: &reqwest::Client, id: &str, passive: bool) -> reqwest::Response {
    let mut req = c.get(s.at(SESSION)).header("cookie", format!("JSESSIONID={id}"));
    if passive {
        req = req.header("x-authd-passive", "1");
    }
    req.send().await.unwrap()
}

/// The `X-Authd-Session-Expires` header as unix seconds.
fn expires(r: &reqwest::Response) -> Option<u64> {
    header(r, "x-authd-session-expires").map(|v| v.parse().unwrap_or_else(|_| panic!("not a number: {v}")))
}

/// Asserts a 401 that says the session is invalid or expired.
async fn assert_expired(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 401, "{what}");
    let body: Value = r.json().await.unwrap();
    let msg = error_message(&body).to_lowercase();
    assert!(msg.contains("expired") || msg.contains("invalid"), "{what}: {msg}");
}

#[tokio::test]
async fn idle_timeout_ends_an_unused_session() {
    let s = Server::start(&["--idle-timeout", "2s", "--absolute-timeout", "1h"]);
    let c = s.bare_client();
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    assert_eq!(check(&s, &c, &id, false).await.status(), 200);
    let last_use = Instant::now();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert!(last_use.elapsed() >= Duration::from_millis(2600));
    assert_expired(check(&s, &c, &id, false).await, "2.6 s after the last use").await;
}

#[tokio::test]
async fn use_slides_the_idle_timeout() {
    let s = Server::start(&["--idle-timeout", "2s", "--absolute-timeout", "1h"]);
    let c = s.bare_client();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    let first_expiry = expires(&r).expect("expiry header on login");
    let id = r.json::<Value>().await.unwrap()["session"]["value"].as_str().unwrap().to_string();
    let start = Instant::now();
    let mut last_expiry = first_expiry;
    // Use it every 0.7 s for well over twice the idle timeout.
    while start.elapsed() < Duration::from_millis(5000) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let r = check(&s, &c, &id, false).await;
        assert_eq!(r.status(), 200, "in steady use, {:?} after login", start.elapsed());
        last_expiry = expires(&r).expect("expiry header on an authenticated answer");
    }
    assert!(
        last_expiry >= first_expiry + 4,
        "the expiry must move with use: {first_expiry} at login, {last_expiry} after 5 s"
    );
    // Left alone, it still ends.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_expired(check(&s, &c, &id, false).await, "idle after steady use").await;
}

#[tokio::test]
async fn absolute_timeout_ends_a_session_in_use() {
    let s = Server::start(&["--idle-timeout", "2s", "--absolute-timeout", "3s"]);
    let c = s.bare_client();
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = check(&s, &c, &id, false).await;
        let t = start.elapsed();
        if t < Duration::from_millis(2300) {
            assert_eq!(r.status(), 200, "{t:?} after login, in use");
        } else if t > Duration::from_millis(3300) {
            assert_expired(r, "past the absolute timeout despite use").await;
            break;
        }
        assert!(t < Duration::from_secs(6));
    }
    // And it stays dead.
    assert_eq!(check(&s, &c, &id, false).await.status(), 401);
}

#[tokio::test]
async fn passive_requests_do_not_slide_the_idle_timeout() {
    let s = Server::start(&["--idle-timeout", "2s", "--absolute-timeout", "1h"]);
    let c = s.bare_client();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    let at_login = expires(&r).expect("expiry header on login");
    let id = r.json::<Value>().await.unwrap()["session"]["value"].as_str().unwrap().to_string();
    let start = Instant::now();
    let mut died = None;
    while start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = check(&s, &c, &id, true).await;
        let t = start.elapsed();
        if r.status() == 200 {
            assert!(t < Duration::from_millis(2400), "still alive {t:?} after login, polled only passively");
            assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"), "passive use is authenticated");
            assert_eq!(expires(&r), Some(at_login), "a passive request must not move the expiry");
        } else {
            assert!(t > Duration::from_millis(1600), "died too early: {t:?}");
            assert_expired(r, "after polling passively").await;
            died = Some(t);
            break;
        }
    }
    assert!(died.is_some(), "passive polling kept the session alive");
}

#[tokio::test]
async fn passive_is_1_true_or_yes_and_anything_else_slides() {
    let s = Server::start(&["--idle-timeout", "2s", "--absolute-timeout", "1h"]);
    let c = s.bare_client();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    let at_login = expires(&r).expect("expiry header on login");
    let id = r.json::<Value>().await.unwrap()["session"]["value"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for value in ["true", "YES", " 1 "] {
        let r = c
            .get(s.at(SESSION))
            .header("cookie", format!("JSESSIONID={id}"))
            .header("x-authd-passive", value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(expires(&r), Some(at_login), "X-Authd-Passive: {value:?} moved the expiry");
    }
    // Anything else is ordinary use, which slides.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3500) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let r = c
            .get(s.at(SESSION))
            .header("cookie", format!("JSESSIONID={id}"))
            .header("x-authd-passive", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "X-Authd-Passive: 0 is not passive ({:?})", start.elapsed());
    }
}

#[tokio::test]
async fn expiry_header_is_the_earlier_deadline() {
    // Idle 2h, absolute 30m: the absolute deadline comes first.
    let s = Server::start(&["--idle-timeout", "2h", "--absolute-timeout", "30m"]);
    let c = s.client();
    let before = unix_now();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    let after = unix_now();
    let e = expires(&r).expect("X-Authd-Session-Expires on login");
    assert!(e >= before + 1800 - 1 && e <= after + 1800 + 1, "{e} not ~{before}+1800");
    for path in [SESSION, "/rest/api/2/myself"] {
        let r = c.get(s.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let e2 = expires(&r).expect("X-Authd-Session-Expires on an authenticated answer");
        assert!(e2.abs_diff(e) <= 1, "{path}: {e2} vs {e}");
    }

    // Idle 1h, absolute 24h: the idle deadline comes first.
    let s = Server::start(&["--idle-timeout", "1h"]);
    let c = s.client();
    let before = unix_now();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    let after = unix_now();
    let e = expires(&r).expect("X-Authd-Session-Expires on login");
    assert!(e >= before + 3600 - 1 && e <= after + 3600 + 1, "{e} not ~{before}+3600");
}

#[tokio::test]
async fn expiry_header_is_absent_without_a_session() {
    let s = Server::start(&[]);
    let anon = s.bare_client();
    let r = anon.get(s.at("/rest/api/2/serverInfo")).send().await.unwrap();
    assert!(header(&r, "x-authd-session-expires").is_none());
    let r = anon.get(s.at(SESSION)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "x-authd-session-expires").is_none());
    let r = s.login(&anon, "admin", "wrong").await;
    assert!(header(&r, "x-authd-session-expires").is_none());
}

#[tokio::test]
async fn sweeper_deletes_expired_sessions_and_keeps_live_ones() {
    let s = Server::start(&["--idle-timeout", "2s", "--absolute-timeout", "1h", "--sweep-interval", "200ms"]);
    let c = s.bare_client();
    let idle: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(login_id(&s, "admin", &s.admin_pw()).await);
        }
        v
    };
    let live = s.login(&c, "admin", &s.admin_pw()).await;
    let live_handle = header(&live, "x-asessionid").unwrap();
    let live = live.json::<Value>().await.unwrap()["session"]["value"].as_str().unwrap().to_string();

    let m = metrics_text(&s).await;
    assert_eq!(metric(&m, "authd_sessions"), Some(4.0), "{m}");
    let swept_before = metric(&m, "authd_sweeper_deleted_total{kind=\"session\"}").expect("sweeper metric");
    let listed = s.authd(&["session", "list", "--json"], None);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");

    // Keep one session in use; the others expire and must be swept.
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(check(&s, &c, &live, false).await.status(), 200, "the session in use must survive");
        let m = metrics_text(&s).await;
        let n = metric(&m, "authd_sessions").unwrap();
        let swept = metric(&m, "authd_sweeper_deleted_total{kind=\"session\"}").unwrap();
        if n == 1.0 {
            assert!(swept >= swept_before + 3.0, "authd_sessions fell but the deletion counter did not: {m}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(8), "expired sessions were not swept: {m}");
    }
    assert!(start.elapsed() > Duration::from_millis(1200), "swept before the idle timeout");

    let listed = s.authd(&["session", "list", "--json"], None);
    assert!(listed.status.success());
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["handle"], live_handle.as_str());
    for id in &idle {
        assert_eq!(session_status(&s, id).await, 401);
    }
    let m = metrics_text(&s).await;
    assert!(metric(&m, "authd_sweeper_runs_total").unwrap() >= 2.0, "{m}");
}

#[tokio::test]
async fn sweeper_deletes_sessions_past_the_absolute_timeout() {
    let s = Server::start(&["--idle-timeout", "1h", "--absolute-timeout", "2s", "--sweep-interval", "200ms"]);
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    assert_eq!(metric(&metrics_text(&s).await, "authd_sessions"), Some(1.0));
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if metric(&metrics_text(&s).await, "authd_sessions") == Some(0.0) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(6), "the session was not swept");
    }
    assert_eq!(session_status(&s, &id).await, 401);
}

#[tokio::test]
async fn the_sessions_gauge_counts_expired_sessions_until_the_sweeper_removes_them() {
    // `authd_sessions` is what is stored: live, or expired and not yet swept.
    // With the sweeper an hour away, expired sessions stay counted on every
    // store, so the gauge falls only together with the deletion counter.
    let s = Server::start(&["--idle-timeout", "1s", "--absolute-timeout", "1h", "--sweep-interval", "1h"]);
    login_id(&s, "admin", &s.admin_pw()).await;
    login_id(&s, "admin", &s.admin_pw()).await;
    assert_eq!(metric(&metrics_text(&s).await, "authd_sessions"), Some(2.0));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let m = metrics_text(&s).await;
    assert_eq!(metric(&m, "authd_sessions"), Some(2.0), "{m}");
    assert_eq!(metric(&m, "authd_sweeper_deleted_total{kind=\"session\"}"), Some(0.0), "{m}");
}

/// The written last use of the session `id`, as its owner's session list
/// shows it (a passive request: the look itself slides nothing).
async fn written_last_use(s: &Server, c: &reqwest::Client, id: &str) -> String {
    let r = c
        .get(s.at("/rest/authd/1/sessions"))
        .header("cookie", format!("JSESSIONID={id}"))
        .header("x-authd-passive", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Vec<Value> = r.json().await.unwrap();
    let this = list.iter().find(|x| x["current"] == true).unwrap_or_else(|| panic!("{list:?}"));
    this["lastUsed"].as_str().unwrap().to_string()
}

/// SPEC §5: use slides `last_use`, which is written at most once per
/// `--touch-interval`, even where the idle timeout is far shorter (2 s
/// against the default 60 s): the uses in between slide the session in
/// memory.
#[tokio::test]
async fn uses_slide_a_short_idle_timeout_without_writing_within_the_touch_interval() {
    // On a shared store the touch interval is capped at a tenth of the idle
    // timeout (README: other instances know only written uses).
    if redb_only("uses_slide_a_short_idle_timeout_without_writing_within_the_touch_interval") {
        return;
    }
    let s = Server::start(&["--idle-timeout", "2s", "--absolute-timeout", "1h"]);
    let c = s.bare_client();
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    let written = written_last_use(&s, &c, &id).await;
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < Duration::from_millis(4500) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = check(&s, &c, &id, false).await;
        assert_eq!(r.status(), 200, "in steady use, {:?} after login", start.elapsed());
        let e = expires(&r).expect("expiry header");
        assert!(e >= last, "the expiry went back: {e} after {last}");
        last = e;
    }
    assert_eq!(written_last_use(&s, &c, &id).await, written, "a use was written within the touch interval");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_expired(check(&s, &c, &id, false).await, "idle after steady use").await;
}

/// `--touch-interval` below the idle timeout is kept as given: uses closer
/// together than it are not written, the first one after it is.
#[tokio::test]
async fn the_touch_interval_is_kept_as_given() {
    // On a shared store the touch interval is capped at a tenth of the idle
    // timeout (README: other instances know only written uses).
    if redb_only("the_touch_interval_is_kept_as_given") {
        return;
    }
    let s = Server::start(&["--idle-timeout", "6s", "--touch-interval", "2s"]);
    let c = s.bare_client();
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    let at_login = written_last_use(&s, &c, &id).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(check(&s, &c, &id, false).await.status(), 200);
    assert_eq!(written_last_use(&s, &c, &id).await, at_login, "written 0.7 s after the login");
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(check(&s, &c, &id, false).await.status(), 200);
    // Touches are written after the answer: give the writer a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    while written_last_use(&s, &c, &id).await == at_login {
        assert!(Instant::now() < deadline, "a use 2.5 s after the login was not written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sweeper never deletes a session in use whose uses are kept in
/// memory (its written deadline passed long ago), and a clean stop writes
/// the kept uses: the session is alive after a restart.
#[tokio::test]
async fn kept_uses_survive_the_sweeper_and_a_clean_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let flags = ["--idle-timeout", "3s", "--sweep-interval", "200ms"];
    let s = Server::start_in(&data, &flags);
    let pw = s.admin_pw();
    let c = s.bare_client();
    let id = login_id(&s, "admin", &pw).await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(check(&s, &c, &id, false).await.status(), 200, "{:?} after login", start.elapsed());
    }
    let m = metrics_text(&s).await;
    assert_eq!(metric(&m, "authd_sessions"), Some(1.0), "the session in use was swept: {m}");

    assert_eq!(s.stop().code(), Some(0));

    // A use 1.5 s after a login is kept in memory (the default touch
    // interval is 60 s); a clean stop writes it, so after a restart the
    // session outlives the login's written deadline (3 s after it).
    let flags = ["--idle-timeout", "3s"];
    let s = Server::start_in(&data, &flags);
    let id = login_id(&s, "admin", &pw).await;
    let login = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(check(&s, &s.bare_client(), &id, false).await.status(), 200);
    assert_eq!(s.stop().code(), Some(0));
    let s = Server::start_in(&data, &flags);
    tokio::time::sleep(Duration::from_millis(3600).saturating_sub(login.elapsed())).await;
    assert!(login.elapsed() < Duration::from_millis(4300), "the restart took too long to tell");
    assert_eq!(session_status(&s, &id).await, 200, "the last use was lost in a clean stop");
}

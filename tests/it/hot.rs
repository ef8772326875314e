//! The session check's short way (`src/http/hot.rs`). The same request,
//! sent so that it takes the short way and again with a second `Cookie`
//! header (another app's cookie) so that it takes the general path, must
//! get the same answer, over HTTP/1.1 and HTTP/2, for both routes. The
//! server logs each short answer at trace level, so the tests also see
//! which requests took it. The short way answers from the redb store's read
//! cache; with Redis every check takes the general path (the last test).

use reqwest::header::{HeaderMap, COOKIE};
use reqwest::{Method, StatusCode, Version};
use serde_json::json;

use crate::support::*;

/// The log filter that makes the server log each short answer.
const TRACE: &str = "info,authd::http::hot=trace";

/// How many answers the short way gave so far (as logged by now); with
/// `handle`, for that session only.
fn short_answers(s: &Server, handle: Option<&str>) -> usize {
    let session = handle.map(|h| format!("session={h}"));
    s.log_text()
        .lines()
        .filter(|l| l.contains("session check answered the short way"))
        .filter(|l| session.as_ref().is_none_or(|h| l.contains(h.as_str())))
        .count()
}

/// A session kept for marking the log: its `Cookie` header and handle.
struct Marker {
    cookie: String,
    handle: String,
}

/// Checks `cookie` (`NAME=ID`) once; returns the session's handle. The
/// first check of a new session reads the store, which fills the read
/// cache: it takes the general path, and the next ones the short way.
async fn warm(s: &Server, c: &reqwest::Client, cookie: &str) -> String {
    let r = c.get(s.at("/rest/auth/1/session")).header(COOKIE, cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    header(&r, "x-asessionid").unwrap()
}

/// A new session of the admin's, checked once, to mark the log with.
async fn marker(s: &Server, c: &reqwest::Client, name: &str) -> Marker {
    let cookie = format!("{name}={}", login_id(s, "admin", &s.admin_pw()).await);
    let handle = warm(s, c, &cookie).await;
    Marker { cookie, handle }
}

/// Sends a check with the marker's session, which takes the short way, and
/// waits for its log line; returns the count of all short answers then.
/// The server writes each line before it answers, and the lines come in
/// order, so every short answer before the marker's is counted.
async fn marked(s: &Server, c: &reqwest::Client, m: &Marker) -> usize {
    let before = short_answers(s, Some(&m.handle));
    let r = c.get(s.at("/rest/auth/1/session")).header(COOKIE, &m.cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..100 {
        if short_answers(s, Some(&m.handle)) > before {
            return short_answers(s, None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the marker check did not take the short way:\n{}", s.log_text());
}

/// Everything of an answer but its `Date`: HTTP version, status, headers
/// (sorted) and body.
type Answer = (Version, StatusCode, Vec<(String, String)>, String);

async fn answer(r: reqwest::Response) -> Answer {
    let (version, status) = (r.version(), r.status());
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    (version, status, headers, r.text().await.unwrap())
}

/// Sends `GET path` with `headers` and the session cookie `cookie`
/// (`NAME=ID`), once in a single `Cookie` header and once with a second
/// one; returns both answers, having checked with markers between them
/// that the first took the short way and the second did not.
async fn both_ways(
    s: &Server,
    c: &reqwest::Client,
    m: &Marker,
    path: &str,
    headers: &[(&str, &str)],
    cookie: &str,
) -> (Answer, Answer) {
    let mut h = HeaderMap::new();
    for (name, value) in headers {
        h.append(reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    let one = format!("other=1; {cookie}");
    let before = marked(s, c, m).await;
    let short = c.get(s.at(path)).headers(h.clone()).header(COOKIE, &one).send().await.unwrap();
    let short = answer(short).await;
    let between = marked(s, c, m).await;
    assert_eq!(between, before + 2, "{path} {headers:?} did not take the short way");
    let general =
        c.get(s.at(path)).headers(h).header(COOKIE, &one).header(COOKIE, "another=2").send().await.unwrap();
    let mut general = answer(general).await;
    assert_eq!(marked(s, c, m).await, between + 1, "{path} with two Cookie headers took the short way");
    // Each use slides the session, so the second answer's expiry may be a
    // second later (a clock second may turn between them): the same otherwise.
    let expiry = |a: &Answer| {
        a.2.iter().find(|(n, _)| n == "x-authd-session-expires").map(|(_, v)| v.parse::<u64>().unwrap())
    };
    if let (Some(first), Some(second)) = (expiry(&short), expiry(&general)) {
        assert!((first..=first + 1).contains(&second), "{path}: expiry {first}, then {second}");
        for (name, value) in &mut general.2 {
            if name == "x-authd-session-expires" {
                *value = first.to_string();
            }
        }
    }
    (short, general)
}

/// The requests the short way answers, each over HTTP/1.1 and HTTP/2, for
/// a user with a role and one without, with and without CORS origins set,
/// and with a base URL and a cookie prefix.
#[tokio::test]
async fn the_short_way_answers_as_the_general_path_does() {
    if redb_only("the_short_way_answers_as_the_general_path_does (it answers from redb's read cache)") {
        return;
    }
    let configs: [(&[&str], &str); 3] = [
        (&[], "JSESSIONID"),
        (&["--cors-origin", "https://app.example"], "JSESSIONID"),
        (&["--base-url", "https://auth.example/sso", "--cookie-prefix", "__Host-"], "__Host-JSESSIONID"),
    ];
    for (flags, name) in configs {
        let mut args = vec!["--log", TRACE];
        args.extend_from_slice(flags);
        let s = Server::start(&args);
        s.add_user("alice", "correct horse battery", &[]);
        let admin = format!("{name}={}", login_id(&s, "admin", &s.admin_pw()).await);
        let alice = format!("{name}={}", login_id(&s, "alice", "correct horse battery").await);
        let cert = s.cert_pem();
        let c = client_for(&cert, false);
        warm(&s, &c, &admin).await;
        warm(&s, &c, &alice).await;
        let m = marker(&s, &c, name).await;
        let cors = flags.contains(&"--cors-origin");
        for (version, c) in
            [(Version::HTTP_11, h1_client_for(&cert)), (Version::HTTP_2, client_for(&cert, false))]
        {
            for cookie in [&admin, &alice] {
                let cases: [(&str, Vec<(&str, &str)>); 7] = [
                    ("/rest/auth/1/session", vec![]),
                    ("/rest/auth/1/session?expand=x", vec![("x-authd-passive", "1"), ("user-agent", "t")]),
                    ("/rest/authd/1/verify", vec![]),
                    (
                        "/rest/authd/1/verify",
                        vec![
                            ("x-forwarded-method", "GET"),
                            ("x-forwarded-uri", "/app/page"),
                            ("x-forwarded-host", "app.example"),
                            ("x-forwarded-proto", "https"),
                        ],
                    ),
                    // The first X-Forwarded-Method counts, trimmed.
                    (
                        "/rest/authd/1/verify",
                        vec![
                            ("x-forwarded-method", " HEAD "),
                            ("x-forwarded-method", "POST"),
                            ("x-authd-passive", "yes"),
                        ],
                    ),
                    ("/rest/auth/1/session", vec![("authorization", "Basic bm9ib2R5Om5vdGhpbmc=")]),
                    // HTTP/2 names the host in :authority; a Host header does not count there.
                    ("/rest/auth/1/session", vec![("host", "auth.example:8443")]),
                ];
                for (path, headers) in cases {
                    let (short, general) = both_ways(&s, &c, &m, path, &headers, cookie).await;
                    assert_eq!(short.0, version, "{path}");
                    assert_eq!(short.1, StatusCode::OK, "{version:?} {path}: {}", short.3);
                    assert_eq!(short, general, "{version:?} {path} {headers:?}");
                    let vary = short.2.iter().any(|(n, v)| n == "vary" && v == "Origin");
                    assert_eq!(vary, cors, "{version:?} {path}: Vary: Origin with --cors-origin only");
                }
            }
            // The `self` link: the base URL if set, else the request's host
            // (HTTP/1.1's Host header), as on the general path.
            let headers = [("host", "auth.example:8443")];
            let (short, _) = both_ways(&s, &c, &m, "/rest/auth/1/session", &headers, &alice).await;
            let base = match (flags.contains(&"--base-url"), version) {
                (true, _) => "https://auth.example/sso".to_string(),
                (false, Version::HTTP_11) => "https://auth.example:8443".to_string(),
                (false, _) => s.url.clone(),
            };
            let link = format!("\"self\":\"{base}/rest/api/2/user?username=alice\"");
            assert!(short.3.contains(&link), "{version:?}: {} lacks {link}", short.3);
        }
        s.stop();
    }
}

/// A request (method, path, headers, `Cookie`) and the status it must get.
type Case<'a> = (Method, &'a str, Vec<(&'a str, String)>, &'a str, u16);

/// What the short way leaves to the general path: it declines before doing
/// anything, and the answer is the general path's.
#[tokio::test]
async fn the_short_way_declines_what_it_does_not_answer() {
    if redb_only("the_short_way_declines_what_it_does_not_answer (it answers from redb's read cache)") {
        return;
    }
    let s = Server::start(&["--log", TRACE, "--cors-origin", "https://app.example"]);
    s.add_user("alice", "correct horse battery", &[]);
    let alice = format!("JSESSIONID={}", login_id(&s, "alice", "correct horse battery").await);
    let c = client_for(&s.cert_pem(), false);
    let unknown = format!("JSESSIONID={}", "A".repeat(43));
    let m = marker(&s, &c, "JSESSIONID").await;
    // Alice's session is in the read cache: a plain check takes the short way.
    warm(&s, &c, &alice).await;
    let before = marked(&s, &c, &m).await;
    warm(&s, &c, &alice).await;
    assert_eq!(marked(&s, &c, &m).await, before + 2);
    let big = "a".repeat(17 * 1024);
    let cases: [Case; 10] = [
        // An origin to answer with CORS headers.
        (Method::GET, "/rest/auth/1/session", vec![("origin", "https://app.example".into())], &alice, 200),
        // HEAD, another version, a trailing slash.
        (Method::HEAD, "/rest/auth/1/session", vec![], &alice, 200),
        (Method::GET, "/rest/auth/latest/session", vec![], &alice, 200),
        (Method::GET, "/rest/authd/1/verify/", vec![], &alice, 200),
        // Forward auth of an unsafe request: the origin rule applies.
        (Method::GET, "/rest/authd/1/verify", vec![("x-forwarded-method", "POST".into())], &alice, 200),
        (Method::GET, "/rest/authd/1/verify", vec![("x-forwarded-method", "head".into())], &alice, 200),
        // A head over the limit: a Jira-shaped 431.
        (Method::GET, "/rest/auth/1/session", vec![("x-pad", big)], &alice, 431),
        // No session, or one nobody has.
        (Method::GET, "/rest/auth/1/session", vec![], "other=1", 401),
        (Method::GET, "/rest/auth/1/session", vec![], &unknown, 401),
        (Method::GET, "/rest/authd/1/verify", vec![], &unknown, 401),
    ];
    for (method, path, headers, cookie, status) in cases {
        let before = marked(&s, &c, &m).await;
        let mut r = c.request(method.clone(), s.at(path)).header(COOKIE, cookie);
        for (name, value) in &headers {
            r = r.header(*name, value);
        }
        let r = r.send().await.unwrap();
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(r.status().as_u16(), status, "{method} {path} {names:?}");
        let after = marked(&s, &c, &m).await;
        assert_eq!(after, before + 1, "{method} {path} {names:?} took the short way");
    }
    // A body (which no check reads): the general path answers, and reads it.
    let before = marked(&s, &c, &m).await;
    let r = c.get(s.at("/rest/auth/1/session")).header(COOKIE, &alice).body("x".repeat(100_000)).send().await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(marked(&s, &c, &m).await, before + 1, "a GET with a body took the short way");
    // The cross-origin answer is the general path's, with its CORS headers.
    let r = c
        .get(s.at("/rest/auth/1/session"))
        .header(COOKIE, &alice)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://app.example"));
    // An unknown session's cookie is cleared, as before.
    let r = c.get(s.at("/rest/auth/1/session")).header(COOKIE, &unknown).send().await.unwrap();
    assert!(set_cookie(&r, "JSESSIONID").is_some_and(|c| c.contains("Max-Age=0")));

    // A session in the cache whose user's roles changed must move to a new
    // ID: forward auth refuses it, the session API moves it (a new cookie).
    let r = c
        .put(s.at("/rest/authd/1/admin/users/alice/roles"))
        .header(COOKIE, &m.cookie)
        .header("x-atlassian-token", "no-check")
        .json(&json!({ "roles": ["admin"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = marked(&s, &c, &m).await;
    let r = c.get(s.at("/rest/authd/1/verify")).header(COOKIE, &alice).send().await.unwrap();
    assert_eq!(r.status(), 401, "forward auth took a session that must move");
    let r = c.get(s.at("/rest/auth/1/session")).header(COOKIE, &alice).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let moved = set_cookie(&r, "JSESSIONID").expect("the session moved to a new ID");
    assert!(!moved.contains(&alice), "{moved}");
    assert_eq!(marked(&s, &c, &m).await, before + 1, "a session to move took the short way");
    s.stop();
}

/// A session the short way found slides on use and ends on time, the
/// same as on the general path: the short way's lookups count as uses. (A
/// touch writes the session, which takes it out of the read cache until
/// the next check reads it again: such checks alternate between the ways.)
#[tokio::test]
async fn the_short_way_slides_and_ends_sessions_like_the_general_path() {
    let s = Server::start(&["--log", TRACE, "--idle-timeout", "3s"]);
    s.add_user("alice", "correct horse battery", &[]);
    let alice = login_id(&s, "alice", "correct horse battery").await;
    let c = client_for(&s.cert_pem(), false);
    let cookie = format!("JSESSIONID={alice}");
    let check = |path: &'static str| {
        let c = c.clone();
        let url = s.at(path);
        let cookie = cookie.clone();
        async move { c.get(url).header(COOKIE, cookie).send().await.unwrap() }
    };
    let before = short_answers(&s, None);
    // Used every second for five seconds, longer than the idle timeout.
    for _ in 0..5 {
        assert_eq!(check("/rest/authd/1/verify").await.status(), 200);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(check("/rest/auth/1/session").await.status(), 200);
    // (The Redis store keeps no read cache: there every check takes the general path.)
    assert_eq!(short_answers(&s, None) > before, shared_store().is_none(), "some checks took the short way");
    // Then idle past the timeout: gone, for both routes.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(check("/rest/auth/1/session").await.status(), 401);
    assert_eq!(check("/rest/authd/1/verify").await.status(), 401);
    s.stop();
}

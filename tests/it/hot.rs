//! The session check's short way (`src/http/hot.rs`). The same request,
//! sent so that it takes the short way and again with a second `Cookie`
//! header (another app's cookie) so that it takes the general path, must
//! get the same answer, over HTTP/1.1 and HTTP/2, for both routes. The
//! server logs each short answer at trace level, so the tests also see
//! which requests took it. The short way answers from the redb store's read
//! cache; with Redis every check takes the general path (the last test).

use reqwest::header::{HeaderMap, COOKIE};
use reqwest::{Method, StatusCode};

use crate::support::*;

/// How many answers the short way gave so far (as logged by now).
fn short_answers(s: &Server) -> usize {
    s.log_text().matches("session check answered the short way").count()
}

/// The first check of a new session reads the store, which fills the read
/// cache: it takes the general path, and the next ones the short way.
async fn warm(s: &Server, c: &reqwest::Client, id: &str) {
    let r =
        c.get(s.at("/rest/auth/1/session")).header(COOKIE, format!("JSESSIONID={id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Sends a check that takes the short way (`id` names a session the read
/// cache holds) and waits for its log line; returns the count with it. Log
/// lines come in order, so any short answer before it is counted too.
async fn marked(s: &Server, c: &reqwest::Client, id: &str) -> usize {
    let before = short_answers(s);
    let r =
        c.get(s.at("/rest/auth/1/session")).header(COOKIE, format!("JSESSIONID={id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..100 {
        let now = short_answers(s);
        if now > before {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the marker check did not take the short way:\n{}", s.log_text());
}

/// Everything of an answer but its `Date`: status, headers (sorted) and body.
type Answer = (StatusCode, Vec<(String, String)>, String);

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    (status, headers, r.text().await.unwrap())
}

/// Sends `method path` with `headers` and the session cookie `id`, once in
/// a single `Cookie` header and once with a second one; returns both answers
/// and whether the first took the short way (the second never may).
async fn both_ways(
    s: &Server,
    c: &reqwest::Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    id: &str,
) -> (Answer, Answer, bool) {
    let mut h = HeaderMap::new();
    for (name, value) in headers {
        h.append(reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    let cookie = format!("other=1; JSESSIONID={id}");
    let before = marked(s, c, id).await;
    let short = c
        .request(method.clone(), s.at(path))
        .headers(h.clone())
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let short = answer(short).await;
    let general = c
        .request(method, s.at(path))
        .headers(h)
        .header(COOKIE, &cookie)
        .header(COOKIE, "another=2")
        .send()
        .await
        .unwrap();
    let general = answer(general).await;
    let after = marked(s, c, id).await;
    assert!(after <= before + 2, "two Cookie headers took the short way");
    (short, general, after == before + 2)
}

/// The requests the short way answers, each over HTTP/1.1 and HTTP/2, for
/// a user with a role and one without, with and without CORS origins set.
#[tokio::test]
async fn the_short_way_answers_as_the_general_path_does() {
    if redb_only("the_short_way_answers_as_the_general_path_does (it answers from redb's read cache)") {
        return;
    }
    for cors in [false, true] {
        let mut args = vec!["--log", "info,authd::http::hot=trace"];
        if cors {
            args.extend(["--cors-origin", "https://app.example"]);
        }
        let s = Server::start(&args);
        s.add_user("alice", "correct horse battery", &[]);
        let admin = login_id(&s, "admin", &s.admin_pw()).await;
        let alice = login_id(&s, "alice", "correct horse battery").await;
        let cert = s.cert_pem();
        let c = client_for(&cert, false);
        warm(&s, &c, &admin).await;
        warm(&s, &c, &alice).await;
        for (version, c) in [("HTTP/1.1", h1_client_for(&cert)), ("HTTP/2", client_for(&cert, false))] {
            for id in [&admin, &alice] {
                let cases: [(&str, Vec<(&str, &str)>); 6] = [
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
                    (
                        "/rest/authd/1/verify",
                        vec![("x-forwarded-method", " HEAD "), ("x-authd-passive", "yes")],
                    ),
                    ("/rest/auth/1/session", vec![("authorization", "Basic bm9ib2R5Om5vdGhpbmc=")]),
                ];
                for (path, headers) in cases {
                    let (short, general, taken) = both_ways(&s, &c, Method::GET, path, &headers, id).await;
                    assert!(taken, "{version} {path} {headers:?} did not take the short way");
                    assert_eq!(short.0, StatusCode::OK, "{version} {path}: {}", short.2);
                    assert_eq!(short, general, "{version} {path} {headers:?}");
                    let vary = short.1.iter().any(|(n, v)| n == "vary" && v == "Origin");
                    assert_eq!(vary, cors, "{version} {path}: Vary: Origin with --cors-origin only");
                }
            }
            // HTTP/1.1 names the host in `Host`: the `self` link follows it,
            // as the general path's does.
            if version == "HTTP/1.1" {
                let headers = [("host", "auth.example:8443")];
                let (short, general, taken) =
                    both_ways(&s, &c, Method::GET, "/rest/auth/1/session", &headers, &alice).await;
                assert!(taken);
                assert_eq!(short, general);
                assert!(
                    short.2.contains("https://auth.example:8443/rest/api/2/user?username=alice"),
                    "{}",
                    short.2
                );
            }
        }
        s.stop();
    }
}

/// A request (method, path, headers, `Cookie`) and the status it must get.
type Case<'a> = (Method, &'a str, Vec<(&'a str, &'a str)>, &'a str, u16);

/// What the short way leaves to the general path: it declines before doing
/// anything, and the answer is the general path's.
#[tokio::test]
async fn the_short_way_declines_what_it_does_not_answer() {
    if redb_only("the_short_way_declines_what_it_does_not_answer (it answers from redb's read cache)") {
        return;
    }
    let s = Server::start(&["--log", "info,authd::http::hot=trace", "--cors-origin", "https://app.example"]);
    s.add_user("alice", "correct horse battery", &[]);
    let alice = login_id(&s, "alice", "correct horse battery").await;
    let c = client_for(&s.cert_pem(), false);
    let cookie = format!("JSESSIONID={alice}");
    let unknown = format!("JSESSIONID={}", "A".repeat(43));
    let cases: [Case; 8] = [
        // An origin to answer with CORS headers.
        (Method::GET, "/rest/auth/1/session", vec![("origin", "https://app.example")], &cookie, 200),
        // HEAD, another version, a trailing slash.
        (Method::HEAD, "/rest/auth/1/session", vec![], &cookie, 200),
        (Method::GET, "/rest/auth/latest/session", vec![], &cookie, 200),
        (Method::GET, "/rest/authd/1/verify/", vec![], &cookie, 200),
        // Forward auth of an unsafe request: the origin rule applies.
        (Method::GET, "/rest/authd/1/verify", vec![("x-forwarded-method", "POST")], &cookie, 200),
        // No session, or one nobody has.
        (Method::GET, "/rest/auth/1/session", vec![], "other=1", 401),
        (Method::GET, "/rest/auth/1/session", vec![], &unknown, 401),
        (Method::GET, "/rest/authd/1/verify", vec![], &unknown, 401),
    ];
    warm(&s, &c, &alice).await;
    for (method, path, headers, cookie, status) in cases {
        let before = marked(&s, &c, &alice).await;
        let mut r = c.request(method.clone(), s.at(path)).header(COOKIE, cookie);
        for (name, value) in &headers {
            r = r.header(*name, *value);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path} {headers:?}");
        let after = marked(&s, &c, &alice).await;
        assert_eq!(after, before + 1, "{method} {path} {headers:?} took the short way");
    }
    // A body (which no check reads): the general path answers, and reads it
    // so the connection goes on (the marker below comes over the same one).
    let before = marked(&s, &c, &alice).await;
    let r =
        c.get(s.at("/rest/auth/1/session")).header(COOKIE, &cookie).body("x".repeat(100_000)).send().await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(marked(&s, &c, &alice).await, before + 1, "a GET with a body took the short way");
    // The cross-origin answer is the general path's, with its CORS headers.
    let r = c
        .get(s.at("/rest/auth/1/session"))
        .header(COOKIE, &cookie)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://app.example"));
    // An unknown session's cookie is cleared, as before.
    let r = c.get(s.at("/rest/auth/1/session")).header(COOKIE, &unknown).send().await.unwrap();
    assert!(set_cookie(&r, "JSESSIONID").is_some_and(|c| c.contains("Max-Age=0")));
    s.stop();
}

/// A session the short way found slides on use and ends on time, the
/// same as on the general path: the short way's lookups count as uses. (A
/// touch writes the session, which takes it out of the read cache until
/// the next check reads it again: such checks alternate between the ways.)
#[tokio::test]
async fn the_short_way_slides_and_ends_sessions_like_the_general_path() {
    let s = Server::start(&["--log", "info,authd::http::hot=trace", "--idle-timeout", "3s"]);
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
    let before = short_answers(&s);
    // Used every second for five seconds, longer than the idle timeout.
    for _ in 0..5 {
        assert_eq!(check("/rest/authd/1/verify").await.status(), 200);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(check("/rest/auth/1/session").await.status(), 200);
    // (The Redis store keeps no read cache: there every check takes the general path.)
    assert_eq!(short_answers(&s) > before, shared_store().is_none(), "some checks took the short way");
    // Then idle past the timeout: gone, for both routes.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(check("/rest/auth/1/session").await.status(), 401);
    assert_eq!(check("/rest/authd/1/verify").await.status(), 401);
    s.stop();
}

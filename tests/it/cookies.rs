//! SPEC §4: the session cookie, session fixation, and lenient `Cookie`
//! parsing of hostile or sloppy headers.

use serde_json::Value;

use crate::support::*;

const SESSION: &str = "/rest/auth/1/session";

/// Whether the attribute list holds `want` (names compare case-insensitively).
fn has_attr(attrs: &[String], want: &str) -> bool {
    attrs.iter().any(|a| a.eq_ignore_ascii_case(want))
}

/// Whether any attribute is named `name`.
fn has_attr_named(attrs: &[String], name: &str) -> bool {
    attrs.iter().any(|a| a.split('=').next().unwrap_or("").trim().eq_ignore_ascii_case(name))
}

/// `GET /rest/auth/1/session` with these raw `Cookie` header values.
async fn get_with_cookies(s: &Server, cookies: &[&[u8]]) -> reqwest::Response {
    let mut req = s.bare_client().get(s.at(SESSION));
    for c in cookies {
        req = req.header("cookie", reqwest::header::HeaderValue::from_bytes(c).unwrap());
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn session_cookie_has_the_specified_attributes() {
    let s = Server::start(&[]);
    let r = s.login(&s.bare_client(), "admin", &s.admin_pw()).await;
    assert_eq!(r.status(), 200);
    let all = set_cookies(&r);
    let ours: Vec<&String> = all.iter().filter(|c| c.starts_with("JSESSIONID=")).collect();
    assert_eq!(ours.len(), 1, "exactly one session cookie: {all:?}");
    let (name, value, attrs) = parse_set_cookie(ours[0]);
    let body: Value = r.json().await.unwrap();
    assert_eq!(name, "JSESSIONID");
    assert_eq!(value, body["session"]["value"].as_str().unwrap());
    for want in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(has_attr(&attrs, want), "{want} missing: {}", ours[0]);
    }
    for banned in ["Max-Age", "Expires", "Domain"] {
        assert!(!has_attr_named(&attrs, banned), "{banned} must not be set: {}", ours[0]);
    }
}

#[tokio::test]
async fn session_id_is_256_random_bits_in_base64url() {
    use base64::Engine as _;
    let s = Server::start(&[]);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        let id = login_id(&s, "admin", &s.admin_pw()).await;
        assert_eq!(id.len(), 43, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&id).unwrap();
        assert_eq!(raw.len(), 32);
        assert!(raw.iter().any(|&b| b != raw[0]), "not random: {id}");
        assert!(seen.insert(id), "an ID was issued twice");
    }
}

#[tokio::test]
async fn relogin_in_the_same_browser_rotates_the_id() {
    let s = Server::start(&[]);
    let c = s.client();
    let first =
        s.login_ok(&c, "admin", &s.admin_pw()).await["session"]["value"].as_str().unwrap().to_string();
    let second =
        s.login_ok(&c, "admin", &s.admin_pw()).await["session"]["value"].as_str().unwrap().to_string();
    assert_ne!(first, second, "a login must issue a new ID");
    assert_eq!(session_status(&s, &first).await, 401, "the ID carried into the login must be dead");
    assert_eq!(session_status(&s, &second).await, 200);
    assert_eq!(c.get(s.at(SESSION)).send().await.unwrap().status(), 200);
    // The browser's other requests still carrying the first ID are refused,
    // but their answers do not clear the cookie the new login just set.
    let r = crate::jar::whoami(&s, &format!("JSESSIONID={first}")).await;
    assert_eq!(r.status(), 401);
    assert!(set_cookie(&r, "JSESSIONID").is_none(), "{:?}", set_cookies(&r));
    // An ID no login replaced is cleared as before.
    let r = crate::jar::whoami(&s, &format!("JSESSIONID={}", "A".repeat(43))).await;
    assert_eq!(r.status(), 401);
    assert!(set_cookie(&r, "JSESSIONID").is_some_and(|c| c.contains("Max-Age=0")), "{:?}", set_cookies(&r));
}

#[tokio::test]
async fn a_planted_session_id_dies_at_login() {
    let s = Server::start(&[]);
    s.add_user("mallory", "mallory's long password", &[]);
    // The attacker plants their own live session ID in the victim's browser...
    let planted = login_id(&s, "mallory", "mallory's long password").await;
    assert_eq!(session_status(&s, &planted).await, 200);
    // ...and the victim logs in carrying it.
    let r = s
        .bare_client()
        .post(s.at(SESSION))
        .header("cookie", format!("JSESSIONID={planted}"))
        .json(&serde_json::json!({ "username": "admin", "password": s.admin_pw() }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = set_cookie(&r, "JSESSIONID").unwrap();
    let fresh = parse_set_cookie(&cookie).1;
    assert_ne!(fresh, planted);
    assert_eq!(session_status(&s, &planted).await, 401, "the planted ID must be dead");
    let who: Value = s
        .bare_client()
        .get(s.at(SESSION))
        .header("cookie", format!("JSESSIONID={fresh}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["name"], "admin");

    // A made-up ID is never adopted either.
    let made_up = "Q".repeat(43);
    let r = s
        .bare_client()
        .post(s.at(SESSION))
        .header("cookie", format!("JSESSIONID={made_up}"))
        .json(&serde_json::json!({ "username": "admin", "password": s.admin_pw() }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(parse_set_cookie(&set_cookie(&r, "JSESSIONID").unwrap()).1, made_up);
    assert_eq!(session_status(&s, &made_up).await, 401);
}

#[tokio::test]
async fn every_carried_session_id_dies_at_login() {
    let s = Server::start(&[]);
    let a = login_id(&s, "admin", &s.admin_pw()).await;
    let b = login_id(&s, "admin", &s.admin_pw()).await;
    let r = s
        .bare_client()
        .post(s.at(SESSION))
        .header("cookie", format!("JSESSIONID={a}; JSESSIONID={b}"))
        .json(&serde_json::json!({ "username": "admin", "password": s.admin_pw() }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(session_status(&s, &a).await, 401);
    assert_eq!(session_status(&s, &b).await, 401);
}

#[tokio::test]
async fn a_failed_login_does_not_end_the_carried_session() {
    // Only a successful login replaces the session; a typo must not log the user out.
    let s = Server::start(&[]);
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    let r = s
        .bare_client()
        .post(s.at(SESSION))
        .header("cookie", format!("JSESSIONID={id}"))
        .json(&serde_json::json!({ "username": "admin", "password": "typo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(session_status(&s, &id).await, 200);
}

#[tokio::test]
async fn sloppy_cookie_headers_still_carry_the_session() {
    let s = Server::start(&[]);
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    let big = "x".repeat(8000);
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![format!("JSESSIONID=junk; JSESSIONID={id}").into_bytes()],
        vec![format!("JSESSIONID=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; JSESSIONID={id}").into_bytes()],
        vec![format!("JSESSIONID={id}; JSESSIONID=junk").into_bytes()],
        vec![format!("JSESSIONID=a; JSESSIONID=b; JSESSIONID={id}").into_bytes()],
        vec![format!("theme=dark;JSESSIONID={id};lang=en").into_bytes()],
        vec![format!("   JSESSIONID={id}   ;   other=1  ").into_bytes()],
        vec![format!("JSESSIONID = {id} ;").into_bytes()],
        vec![format!("JSESSIONID=\"{id}\"").into_bytes()],
        vec![format!("junk; =x; ;; a=b=c; \"q\"; JSESSIONID={id}; trailing").into_bytes()],
        vec![[&b"x=\xff\xfe; JSESSIONID="[..], id.as_bytes(), b"; y=\xc3"].concat()],
        vec![[&b"\xe2\x82=\xa0; JSESSIONID="[..], id.as_bytes()].concat()],
        vec![format!("big={big}; JSESSIONID={id}").into_bytes()],
        vec![b"a=1".to_vec(), format!("JSESSIONID={id}").into_bytes()],
        vec![b"JSESSIONID=junk".to_vec(), format!("JSESSIONID={id}").into_bytes()],
    ];
    for case in &cases {
        let refs: Vec<&[u8]> = case.iter().map(Vec::as_slice).collect();
        let r = get_with_cookies(&s, &refs).await;
        let shown: Vec<String> =
            case.iter().map(|c| String::from_utf8_lossy(&c[..c.len().min(120)]).into_owned()).collect();
        assert_eq!(r.status(), 200, "session not recognised in {shown:?}");
        assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"), "{shown:?}");
    }
}

#[tokio::test]
async fn many_duplicates_in_front_neither_hide_the_session_nor_clear_it() {
    // Browsers send longer-path cookies first: another app's JSESSIONIDs
    // (or planted ones) may come before authd's, many times over.
    let s = Server::start(&[]);
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    let dead = |i: usize| format!("{:A<43}", format!("dead{i}"));
    let tomcat = "JSESSIONID=0123456789ABCDEF0123456789ABCDEF; ".repeat(30);
    let seven_dead: String = (0..7).map(|i| format!("JSESSIONID={}; ", dead(i))).collect();
    let r = get_with_cookies(&s, &[format!("{tomcat}{seven_dead}JSESSIONID={id}").as_bytes()]).await;
    assert_eq!(r.status(), 200, "the session behind 30 foreign and 7 dead values was not found");
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"));
    // Past the eight tried, the live one is not reached; the answer is a
    // 401, but the cookie (which may be the live one) is left alone.
    let twenty_dead: String = (0..20).map(|i| format!("JSESSIONID={}; ", dead(i))).collect();
    let r = get_with_cookies(&s, &[format!("{twenty_dead}JSESSIONID={id}").as_bytes()]).await;
    assert_eq!(r.status(), 401);
    assert!(
        set_cookies(&r).iter().all(|c| !c.starts_with("JSESSIONID=")),
        "a cookie that may be the live one was cleared: {:?}",
        set_cookies(&r)
    );
    // A lone dead one is still cleared.
    let r = get_with_cookies(&s, &[format!("JSESSIONID={}", dead(0)).as_bytes()]).await;
    assert_eq!(r.status(), 401);
    assert!(set_cookies(&r).iter().any(|c| c.starts_with("JSESSIONID=;")), "{:?}", set_cookies(&r));
    assert_eq!(session_status(&s, &id).await, 200, "the session itself is untouched");
}

#[tokio::test]
async fn session_cookie_name_must_match_exactly() {
    let s = Server::start(&[]);
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    for h in [format!("XJSESSIONID={id}"), format!("JSESSIONIDX={id}"), format!("other={id}")] {
        let r = get_with_cookies(&s, &[h.as_bytes()]).await;
        assert_eq!(r.status(), 401, "{h}");
    }
}

#[tokio::test]
async fn hostile_cookie_headers_are_never_a_server_error() {
    let s = Server::start(&[]);
    let huge_session = format!("JSESSIONID={}", "A".repeat(15_000));
    let many = "JSESSIONID=1; ".repeat(500);
    let non_ascii_id = [&b"JSESSIONID="[..], &[0xe9u8; 43][..]].concat();
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b";".to_vec(),
        b"=".to_vec(),
        b"==".to_vec(),
        b";;;;".to_vec(),
        b"JSESSIONID".to_vec(),
        b"JSESSIONID=".to_vec(),
        b"JSESSIONID=;JSESSIONID=".to_vec(),
        b"\"".to_vec(),
        b"JSESSIONID=\"".to_vec(),
        b"JSESSIONID=\"\"".to_vec(),
        b"JSESSIONID=\xff\xff".to_vec(),
        b"\xff=\xff".to_vec(),
        b"JSESSIONID=!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!".to_vec(),
        b"JSESSIONID=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_vec(),
        b"JSESSIONID=%41%41%41".to_vec(),
        b"seraph.rememberme.cookie=::::; atlassian.xsrf.token=____".to_vec(),
        b"seraph.rememberme.cookie=\xff:\xfe".to_vec(),
        non_ascii_id,
        huge_session.into_bytes(),
        many.into_bytes(),
    ];
    for case in &cases {
        let shown = String::from_utf8_lossy(&case[..case.len().min(80)]).into_owned();
        let r = get_with_cookies(&s, &[case]).await;
        assert_eq!(r.status(), 401, "GET session with {shown:?}");
        assert_jira_error(&r.json().await.unwrap());
        let r = s
            .bare_client()
            .get(s.at("/rest/api/2/serverInfo"))
            .header("cookie", reqwest::header::HeaderValue::from_bytes(case).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "serverInfo with {shown:?}");
    }
    // Junk cookies do not get in the way of logging in.
    let r = s
        .bare_client()
        .post(s.at(SESSION))
        .header("cookie", reqwest::header::HeaderValue::from_bytes(b"JSESSIONID=\xff; =; \"").unwrap())
        .json(&serde_json::json!({ "username": "admin", "password": s.admin_pw() }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_oversized_cookie_header_is_refused_without_a_server_error() {
    let s = Server::start(&[]);
    let huge = format!("JSESSIONID={}", "A".repeat(40_000));
    for client in [s.bare_client(), h1_client_for(&s.cert_pem())] {
        // Either a 4xx (431) or a closed connection; never a 5xx.
        if let Ok(r) = client.get(s.at(SESSION)).header("cookie", huge.as_str()).send().await {
            assert!(r.status().is_client_error(), "{}", r.status());
        }
    }
    let r = s.bare_client().get(s.at("/rest/api/2/serverInfo")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the server is still up");
}

#[tokio::test]
async fn cookie_prefix_renames_the_session_cookie() {
    let s = Server::start(&["--cookie-prefix", "__Host-"]);
    let r = s.login(&s.bare_client(), "admin", &s.admin_pw()).await;
    assert_eq!(r.status(), 200);
    let sc = set_cookie(&r, "__Host-JSESSIONID").unwrap_or_else(|| panic!("{:?}", set_cookies(&r)));
    assert!(set_cookie(&r, "JSESSIONID").is_none(), "the unprefixed name must not be set");
    let (_, id, attrs) = parse_set_cookie(&sc);
    // A __Host- cookie is only accepted by browsers with Secure, Path=/ and no Domain.
    assert!(has_attr(&attrs, "Secure") && has_attr(&attrs, "Path=/"), "{sc}");
    assert!(!has_attr_named(&attrs, "Domain"), "{sc}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["session"]["name"], "__Host-JSESSIONID");
    assert_eq!(body["session"]["value"], id.as_str());

    let r = get_with_cookies(&s, &[format!("__Host-JSESSIONID={id}").as_bytes()]).await;
    assert_eq!(r.status(), 200);
    let r = get_with_cookies(&s, &[format!("JSESSIONID={id}").as_bytes()]).await;
    assert_eq!(r.status(), 401, "the unprefixed name is not the session cookie any more");

    // A browser-like cookie jar keeps and sends it.
    let c = s.client();
    s.login_ok(&c, "admin", &s.admin_pw()).await;
    assert_eq!(c.get(s.at(SESSION)).send().await.unwrap().status(), 200);
    let r = c.delete(s.at(SESSION)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let gone = set_cookie(&r, "__Host-JSESSIONID").expect("logout expires the prefixed cookie");
    assert!(gone.contains("Max-Age=0"), "{gone}");
}

#[tokio::test]
async fn login_sets_a_fresh_xsrf_cookie_readable_by_scripts() {
    let s = Server::start(&[]);
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let r = s.login(&s.bare_client(), "admin", &s.admin_pw()).await;
        assert_eq!(r.status(), 200);
        let sc = set_cookie(&r, "atlassian.xsrf.token")
            .unwrap_or_else(|| panic!("no XSRF cookie at login: {:?}", set_cookies(&r)));
        let (_, value, attrs) = parse_set_cookie(&sc);
        assert!(value.ends_with("_lin"), "a logged-in token ends in _lin: {sc}");
        assert!(value.trim_end_matches("_lin").contains('_'), "<serverId>_<token>_lin: {sc}");
        for want in ["Path=/", "Secure", "SameSite=Lax"] {
            assert!(has_attr(&attrs, want), "{want} missing: {sc}");
        }
        assert!(!has_attr(&attrs, "HttpOnly"), "page scripts must be able to read it: {sc}");
        tokens.push(value);
    }
    assert_ne!(tokens[0], tokens[1], "each login gets a fresh token");
}

#[tokio::test]
async fn session_ids_are_not_stored_or_logged_in_clear() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let s = Server::start_in(&data, &[]);
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    assert_eq!(session_status(&s, &id).await, 200);
    let log = s.log_text();
    assert!(!log.contains(&id), "the session ID is in the log");
    assert_eq!(s.stop().code(), Some(0));
    let db = stored_bytes(&data);
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&id).unwrap();
    assert!(!db.windows(id.len()).any(|w| w == id.as_bytes()), "the ID is stored in clear");
    assert!(!db.windows(raw.len()).any(|w| w == raw.as_slice()), "the ID's bytes are stored in clear");
}

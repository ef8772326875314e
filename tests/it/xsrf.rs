//! SPEC §4 and §7: XSRF tokens on authd's own forms and API: the cookie,
//! re-minting on login and logout, what is accepted and what is refused,
//! the origin rule, tokens of other users and other authds, and the
//! Monday-morning rule.

use crate::jar::*;
use crate::proxy_xsrf::{wait_until_dead, wait_until_dead_keeping};
use crate::support::*;

const REVOKE_OTHERS: &str = "/account/sessions/revoke-others";

/// Splits a token into server id, 40 hex characters and state (`lin`/`lout`), checking its shape.
fn token_parts(t: &str) -> (String, String, String) {
    let mut it = t.splitn(3, '_');
    let (id, hex, state) = (it.next().unwrap(), it.next().unwrap_or(""), it.next().unwrap_or(""));
    let groups: Vec<&str> = id.split('-').collect();
    assert!(
        groups.len() == 4
            && groups.iter().all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric())),
        "server id of {t} is not Jira's XXXX-XXXX-XXXX-XXXX"
    );
    assert!(hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "token part of {t}");
    assert!(state == "lin" || state == "lout", "state of {t}");
    (id.to_string(), hex.to_string(), state.to_string())
}

/// Asserts the `Set-Cookie` for the XSRF cookie has the SPEC's attributes; returns its value.
fn xsrf_cookie(r: &reqwest::Response) -> String {
    let attrs = set_attrs(r, XSRF);
    for want in ["path=/", "secure", "samesite=lax"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing from XSRF cookie {attrs:?}");
    }
    assert!(
        !attrs.iter().any(|a| a == "httponly"),
        "page scripts must be able to read the XSRF cookie: {attrs:?}"
    );
    set_value(r, XSRF).unwrap()
}

/// Logs in through `/login.jsp` as a browser would; returns the jar.
async fn page_login(s: &Server, user: &str, password: &str, remember: bool) -> Jar {
    let mut jar = Jar::default();
    let r = get_with(s, "/login.jsp", "").await;
    assert_eq!(r.status(), 200);
    jar.apply(&r);
    let token = page_token(&r.text().await.unwrap());
    let mut form = vec![("os_username", user), ("os_password", password), ("atl_token", token.as_str())];
    if remember {
        form.push(("os_cookie", "true"));
    }
    let r = post_form(s, "/login.jsp", &jar.header(), &form, &[]).await;
    assert_eq!(r.status(), 303, "login of {user} through the page failed");
    jar.apply(&r);
    assert!(jar.session.is_some());
    jar
}

#[tokio::test]
async fn the_xsrf_cookie_is_lout_when_anonymous_lin_after_login_and_reminted_each_time() {
    let s = Server::start(&[]);
    let mut jar = Jar::default();
    let r = get_with(&s, "/login.jsp", "").await;
    let lout = xsrf_cookie(&r);
    let (server_id, lout_hex, state) = token_parts(&lout);
    assert_eq!(state, "lout");
    jar.apply(&r);
    assert_eq!(page_token(&r.text().await.unwrap()), lout, "the page embeds the cookie's token");

    // The browser keeps its anonymous token while anonymous.
    let r = get_with(&s, "/login.jsp", &jar.header()).await;
    assert!(set_value(&r, XSRF).is_none_or(|t| t == lout), "re-minted without a login change");
    assert_eq!(page_token(&r.text().await.unwrap()), lout);

    // Logging in mints a _lin token.
    let r = post_form(
        &s,
        "/login.jsp",
        &jar.header(),
        &[("os_username", "admin"), ("os_password", &s.admin_pw()), ("atl_token", &lout)],
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    let lin = xsrf_cookie(&r);
    let (id2, lin_hex, state) = token_parts(&lin);
    assert_eq!((id2.as_str(), state.as_str()), (server_id.as_str(), "lin"));
    assert_ne!(lin_hex[..20], lout_hex[..20], "the logged-in token reuses the anonymous nonce");
    jar.apply(&r);
    let r = get_with(&s, "/account", &jar.header()).await;
    assert_eq!(r.status(), 200);
    assert!(set_value(&r, XSRF).is_none_or(|t| t == lin));
    assert_eq!(page_token(&r.text().await.unwrap()), lin, "the account page uses the session's token");

    // Logging out expires the cookie (SPEC §3); the next page mints a new _lout token.
    let r = post_form(&s, "/account/logout", &jar.header(), &[("atl_token", &lin)], &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(xsrf_cookie(&r), "", "logout did not expire the XSRF cookie");
    jar.apply(&r);
    let r = get_with(&s, "/login.jsp?logged_out=1", &jar.header()).await;
    let lout2 = xsrf_cookie(&r);
    assert_eq!(token_parts(&lout2).2, "lout");
    assert_ne!(lout2, lout, "logout did not re-mint the anonymous token");
    jar.apply(&r);

    // Logging in again mints another _lin token.
    let r = post_form(
        &s,
        "/login.jsp",
        &jar.header(),
        &[("os_username", "admin"), ("os_password", &s.admin_pw()), ("atl_token", &lout2)],
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    let lin2 = xsrf_cookie(&r);
    assert_eq!(token_parts(&lin2).2, "lin");
    assert_ne!(lin2, lin, "a new login reused the old session's token");

    // The API does the same: a fresh token with every login and logout.
    let r = login_response(&s, "admin", &s.admin_pw(), false).await;
    let api_lin = xsrf_cookie(&r);
    assert_eq!(token_parts(&api_lin).2, "lin");
    assert!(api_lin != lin && api_lin != lin2);
    let mut api = Jar::default();
    api.apply(&r);
    let r = s
        .bare_client()
        .delete(s.at("/rest/auth/1/session"))
        .header("cookie", api.header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for name in [SESSION, XSRF] {
        let c = set_cookie(&r, name).unwrap_or_else(|| panic!("logout left {name} alone"));
        assert!(c.contains("Max-Age=0"), "{c}");
    }
}

/// One attempt at authd's own "log out all other sessions" form: returns
/// whether it was accepted, after checking the answer and the effect agree.
async fn try_revoke_others(
    s: &Server,
    me: &Jar,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
    what: &str,
) -> bool {
    let other = api_login(s, "admin", &s.admin_pw(), false).await.session.unwrap();
    let r = post_form(s, REVOKE_OTHERS, &me.header(), form, headers).await;
    let status = r.status().as_u16();
    let location = header(&r, "location");
    let ct = header(&r, "content-type").unwrap_or_default();
    let text = r.text().await.unwrap();
    let other_alive = session_alive(s, &other).await;
    assert!(session_alive(s, me.session.as_ref().unwrap()).await, "{what}: my own session ended");
    match status {
        303 => {
            assert_eq!(location.as_deref(), Some("/account"), "{what}");
            assert!(!other_alive, "{what}: accepted, yet the other session lives");
            true
        }
        403 => {
            assert!(text.contains("XSRF check failed"), "{what}: 403 without the reason: {text}");
            assert!(ct.starts_with("text/html"), "{what}: the account page answered {ct}");
            assert!(other_alive, "{what}: refused, yet the other session ended");
            false
        }
        other => panic!("{what}: answered {other}: {text}"),
    }
}

#[tokio::test]
async fn own_forms_accept_the_sessions_token_and_refuse_everything_else() {
    let s = Server::start(&["--cors-origin", "https://app.example"]);
    s.add_user("bob", "bob-password-1", &[]);
    let me = api_login(&s, "admin", &s.admin_pw(), false).await;
    let token = me.xsrf.clone().unwrap();
    let other_session_token = api_login(&s, "admin", &s.admin_pw(), false).await.xsrf.unwrap();
    let bobs = api_login(&s, "bob", "bob-password-1", false).await.xsrf.unwrap();
    let lout = set_value(&get_with(&s, "/login.jsp", "").await, XSRF).unwrap();
    let mut tampered = token.clone().into_bytes();
    let i = token.len() - 6;
    tampered[i] = if tampered[i] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    let own = s.url.clone();
    let own_http = own.replace("https:", "http:");
    let upper = token.replace("_lin", "_LIN");

    let t = token.as_str();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>, bool);
    let cases: Vec<Case> = vec![
        ("the session's token in atl_token", vec![("atl_token", t)], vec![], true),
        ("in X-Atlassian-Token", vec![("x", "1")], vec![("X-Atlassian-Token", t)], true),
        ("in X-XSRF-Token", vec![("x", "1")], vec![("X-XSRF-Token", t)], true),
        ("X-Atlassian-Token: no-check", vec![("x", "1")], vec![("X-Atlassian-Token", "no-check")], true),
        (
            "own Origin, same-origin",
            vec![("atl_token", t)],
            vec![("Origin", &own), ("Sec-Fetch-Site", "same-origin")],
            true,
        ),
        ("same-site", vec![("atl_token", t)], vec![("Sec-Fetch-Site", "same-site")], true),
        ("allowed CORS origin", vec![("atl_token", t)], vec![("Origin", "https://app.example")], true),
        ("no token", vec![("x", "1")], vec![], false),
        ("empty token", vec![("atl_token", "")], vec![], false),
        (
            "empty headers, token in the form",
            vec![("atl_token", t)],
            vec![("X-XSRF-Token", ""), ("X-Atlassian-Token", "")],
            true,
        ),
        (
            "empty headers, no token",
            vec![("x", "1")],
            vec![("X-XSRF-Token", ""), ("X-Atlassian-Token", "")],
            false,
        ),
        ("tampered token", vec![("atl_token", &tampered)], vec![], false),
        ("upper-case state", vec![("atl_token", &upper)], vec![], false),
        ("another session's token, same user", vec![("atl_token", &other_session_token)], vec![], false),
        ("another user's token", vec![("atl_token", &bobs)], vec![], false),
        ("another user's token in the header", vec![("x", "1")], vec![("X-XSRF-Token", &bobs)], false),
        ("an anonymous token", vec![("atl_token", &lout)], vec![], false),
        (
            "foreign Origin, valid token",
            vec![("atl_token", t)],
            vec![("Origin", "https://evil.example")],
            false,
        ),
        ("Origin null, valid token", vec![("atl_token", t)], vec![("Origin", "null")], false),
        ("Origin of another port", vec![("atl_token", t)], vec![("Origin", "https://127.0.0.1:1")], false),
        ("Origin over http", vec![("atl_token", t)], vec![("Origin", &own_http)], false),
        ("cross-site, valid token", vec![("atl_token", t)], vec![("Sec-Fetch-Site", "cross-site")], false),
        (
            "own Origin, yet cross-site",
            vec![("atl_token", t)],
            vec![("Origin", &own), ("Sec-Fetch-Site", "cross-site")],
            false,
        ),
        (
            "foreign Origin with no-check",
            vec![("x", "1")],
            vec![("X-Atlassian-Token", "no-check"), ("Origin", "https://evil.example")],
            false,
        ),
    ];
    for (what, form, headers, want) in cases {
        assert_eq!(try_revoke_others(&s, &me, &form, &headers, what).await, want, "{what}");
    }
}

#[tokio::test]
async fn the_xsrf_cookie_alone_proves_nothing() {
    let s = Server::start(&[]);
    let me = api_login(&s, "admin", &s.admin_pw(), false).await;
    // `me.header()` sends the session's token in the cookie; the form has none.
    assert!(me.header().contains(XSRF));
    assert!(!try_revoke_others(&s, &me, &[("x", "1")], &[], "cookie only").await);
}

#[tokio::test]
async fn own_forms_refuse_other_content_types_without_a_token() {
    let s = Server::start(&[]);
    let me = api_login(&s, "admin", &s.admin_pw(), false).await;
    let other = api_login(&s, "admin", &s.admin_pw(), false).await.session.unwrap();
    for ct in [None, Some("text/plain"), Some("multipart/form-data; boundary=x"), Some("application/json")] {
        let mut b = s.bare_client().post(s.at(REVOKE_OTHERS)).header("cookie", me.header()).body("x=1");
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        let r = b.send().await.unwrap();
        // SPEC §7: every form content type must present the token: 403 first.
        // JSON is not a form type; the page takes only url-encoded forms: 415.
        let want = if ct == Some("application/json") { 415 } else { 403 };
        assert_eq!(r.status().as_u16(), want, "{ct:?}");
        assert!(session_alive(&s, &other).await, "{ct:?}: the other session was revoked without a token");
    }
    // With the right token in the body, every form encoding is read (SPEC §7).
    let token = me.xsrf.clone().unwrap();
    let multipart =
        format!("--XyZ\r\nContent-Disposition: form-data; name=\"atl_token\"\r\n\r\n{token}\r\n--XyZ--\r\n");
    for (ct, body) in
        [("multipart/form-data; boundary=XyZ", multipart), ("text/plain", format!("atl_token={token}\r\n"))]
    {
        let other = api_login(&s, "admin", &s.admin_pw(), false).await.session.unwrap();
        let r = s
            .bare_client()
            .post(s.at(REVOKE_OTHERS))
            .header("cookie", me.header())
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "{ct} with the token");
        assert!(!session_alive(&s, &other).await, "{ct}: accepted, yet the other session lives");
    }
    // A body of no stated type is still refused, with the token too.
    let r = s
        .bare_client()
        .post(s.at(REVOKE_OTHERS))
        .header("cookie", me.header())
        .header("x-atlassian-token", "no-check")
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // (The login page's multipart and text/plain forms: pages.rs.)
}

/// A bare POST (no body, no content type), as `curl -X POST` sends it, is
/// an empty form: its token must come in a header.
#[tokio::test]
async fn a_bare_post_to_an_own_form_is_an_empty_form() {
    let s = Server::start(&[]);
    let me = api_login(&s, "admin", &s.admin_pw(), false).await;
    for (headers, want) in [
        (vec![], 403),
        (vec![("X-Atlassian-Token", "no-check")], 303),
        (vec![("X-XSRF-Token", me.xsrf.as_deref().unwrap())], 303),
    ] {
        for client in [h1_client_for(&s.cert_pem()), s.bare_client()] {
            let other = api_login(&s, "admin", &s.admin_pw(), false).await.session.unwrap();
            let mut b = client.post(s.at(REVOKE_OTHERS)).header("cookie", me.header());
            for (k, v) in &headers {
                b = b.header(*k, *v);
            }
            let r = b.send().await.unwrap();
            assert_eq!(r.status().as_u16(), want, "{headers:?}");
            if want == 303 {
                assert_eq!(header(&r, "location").as_deref(), Some("/account"));
            }
            assert_eq!(session_alive(&s, &other).await, want == 403, "{headers:?}");
        }
        assert!(session_alive(&s, me.session.as_ref().unwrap()).await);
    }
}

#[tokio::test]
async fn json_api_calls_need_no_token_but_the_origin_rule_still_applies() {
    let s = Server::start(&["--cors-origin", "https://app.example"]);
    let pw = s.admin_pw();
    // JSON is not subject to the token rule: a login with a session cookie and no token works.
    let me = api_login(&s, "admin", &pw, false).await;
    let r = s
        .bare_client()
        .post(s.at("/rest/auth/1/session"))
        .header("cookie", me.header())
        .json(&serde_json::json!({ "username": "admin", "password": pw }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a JSON login was XSRF-checked");

    let login = |headers: Vec<(&'static str, String)>| {
        let mut b = s
            .bare_client()
            .post(s.at("/rest/auth/1/session"))
            .json(&serde_json::json!({ "username": "admin", "password": pw }));
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.send()
    };
    for (what, headers) in [
        ("foreign Origin", vec![("origin", "https://evil.example".to_string())]),
        ("Origin null", vec![("origin", "null".to_string())]),
        ("cross-site", vec![("sec-fetch-site", "cross-site".to_string())]),
        // Sent twice (no browser does): neither copy wins.
        (
            "a foreign Origin, then its own",
            vec![("origin", "https://evil.example".into()), ("origin", s.url.clone())],
        ),
        (
            "its own Origin, then a foreign one",
            vec![("origin", s.url.clone()), ("origin", "https://evil.example".into())],
        ),
        (
            "cross-site, then same-origin",
            vec![("sec-fetch-site", "cross-site".into()), ("sec-fetch-site", "same-origin".into())],
        ),
    ] {
        let r = login(headers).await.unwrap();
        assert_eq!(r.status(), 403, "{what}");
        assert!(set_cookie(&r, SESSION).is_none(), "{what}: a session was started");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_jira_error(&body);
        assert!(error_message(&body).contains("XSRF check failed"), "{what}: {body}");
    }
    // An Origin or Sec-Fetch-Site that is not ASCII text is no origin of
    // authd's: refused, not taken for absent.
    for (name, value) in [
        ("origin", b"https://evil.example\xff".as_slice()),
        ("origin", b"https://\xe9vil.example".as_slice()),
        ("sec-fetch-site", b"cross-site\x80".as_slice()),
    ] {
        let r = s
            .bare_client()
            .post(s.at("/rest/auth/1/session"))
            .json(&serde_json::json!({ "username": "admin", "password": pw }))
            .header(name, reqwest::header::HeaderValue::from_bytes(value).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value:?}");
        assert!(set_cookie(&r, SESSION).is_none(), "{name}: a session was started");
        assert!(error_message(&r.json().await.unwrap()).contains("XSRF check failed"));
    }
    for (what, headers) in [
        ("own Origin", vec![("origin", s.url.clone()), ("sec-fetch-site", "same-origin".to_string())]),
        ("allowed CORS origin", vec![("origin", "https://app.example".to_string())]),
        ("its own Origin twice", vec![("origin", s.url.clone()), ("origin", s.url.clone())]),
        ("no browser headers", vec![]),
    ] {
        let r = login(headers).await.unwrap();
        assert_eq!(r.status(), 200, "{what}");
    }

    // A cross-site logout is refused too, and the session lives.
    let me = api_login(&s, "admin", &pw, false).await;
    let r = s
        .bare_client()
        .delete(s.at("/rest/auth/1/session"))
        .header("cookie", me.header())
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("XSRF check failed"));
    assert!(session_alive(&s, me.session.as_ref().unwrap()).await);
}

/// SPEC §7 on authd's own REST API, as Jira's REST filter does: a
/// state-changing call with a form content type, made in a session, needs
/// the XSRF token in a header or `X-Atlassian-Token: no-check`, or (SPEC
/// §7's form field) in the form's `atl_token`.
#[tokio::test]
async fn form_typed_rest_calls_in_a_session_need_the_token() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    let me = api_login(&s, "admin", &pw, false).await;
    let id = me.session.clone().unwrap();
    let token = me.xsrf.clone().unwrap();
    let call = |method: reqwest::Method, path: &str, ct: &str, extra: Option<(&'static str, String)>| {
        let mut b = s.bare_client().request(method, s.at(path)).header("cookie", me.header());
        if !ct.is_empty() {
            b = b.header("content-type", ct);
        }
        if let Some((k, v)) = extra {
            b = b.header(k, v);
        }
        b.send()
    };
    let del = reqwest::Method::DELETE;
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        for (method, path) in [
            (del.clone(), "/rest/auth/1/session"),
            (del.clone(), "/rest/authd/1/sessions"),
            (reqwest::Method::POST, "/rest/authd/1/admin/users/admin/unlock"),
        ] {
            let r = call(method.clone(), path, ct, None).await.unwrap();
            assert_eq!(r.status(), 403, "{method} {path} as {ct}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert!(error_message(&body).contains("XSRF check failed"), "{body}");
        }
        // The cookie alone is no token.
        let r = call(del.clone(), "/rest/auth/1/session", ct, Some(("x-atlassian-token", "nonsense".into())))
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "a wrong header token as {ct}");
    }
    assert!(session_alive(&s, &id).await, "a refused call ended the session");
    // The token in either header, or no-check, lets it through.
    let r = call(
        reqwest::Method::POST,
        "/rest/authd/1/admin/users/admin/unlock",
        "text/plain",
        Some(("x-xsrf-token", token.clone())),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "X-XSRF-Token");
    let r = call(
        reqwest::Method::POST,
        "/rest/authd/1/admin/users/admin/unlock",
        "text/plain",
        Some(("x-atlassian-token", "no-check".into())),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "no-check");
    // Without a content type, or as JSON, nothing is asked (curl -X DELETE).
    let r = call(reqwest::Method::POST, "/rest/authd/1/admin/users/admin/unlock", "", None).await.unwrap();
    assert_eq!(r.status(), 200, "no content type");
    // A login keeps its 415, session cookie or not.
    let r = call(reqwest::Method::POST, "/rest/auth/1/session", "application/x-www-form-urlencoded", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r =
        call(del.clone(), "/rest/auth/1/session", "text/plain", Some(("x-atlassian-token", token.clone())))
            .await
            .unwrap();
    assert_eq!(r.status(), 204, "a logout with the header token");
    assert!(!session_alive(&s, &id).await);

    // The token in the form's `atl_token` field, in each form encoding.
    let me = api_login(&s, "admin", &pw, false).await;
    let token = me.xsrf.clone().unwrap();
    let form = |method: reqwest::Method, path: &str, ct: &str, body: String| {
        s.bare_client()
            .request(method, s.at(path))
            .header("cookie", me.header())
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let unlock = "/rest/authd/1/admin/users/admin/unlock";
    let forms = |t: &str| {
        [
            ("application/x-www-form-urlencoded", format!("a=1&atl_token={t}")),
            ("text/plain", format!("a=1\r\natl_token={t}\r\n")),
            (
                "multipart/form-data; boundary=XyZ",
                format!(
                    "--XyZ\r\nContent-Disposition: form-data; name=\"atl_token\"\r\n\r\n{t}\r\n--XyZ--\r\n"
                ),
            ),
        ]
    };
    for (ct, body) in forms("not-the-token") {
        let r = form(reqwest::Method::POST, unlock, ct, body).await.unwrap();
        assert_eq!(r.status(), 403, "a wrong atl_token as {ct}");
    }
    for (ct, body) in forms(&token) {
        let r = form(reqwest::Method::POST, unlock, ct, body).await.unwrap();
        assert_eq!(r.status(), 200, "the session's atl_token as {ct}");
    }
    let r =
        form(del, "/rest/auth/1/session", "application/x-www-form-urlencoded", format!("atl_token={token}"))
            .await
            .unwrap();
    assert_eq!(r.status(), 204, "a logout with the token in the form");
    assert!(!session_alive(&s, me.session.as_ref().unwrap()).await);
}

#[tokio::test]
async fn the_login_page_checks_the_anonymous_token_against_its_cookie() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    let r = get_with(&s, "/login.jsp", "").await;
    let mine = set_value(&r, XSRF).unwrap();
    let cookie = format!("{XSRF}={mine}");
    let theirs = set_value(&get_with(&s, "/login.jsp", "").await, XSRF).unwrap();
    let creds = [("os_username", "admin"), ("os_password", pw.as_str())];
    let with = |t: &'static str, v: &str| -> Vec<(&'static str, String)> {
        let mut f: Vec<(&str, String)> = creds.iter().map(|(k, v)| (*k, v.to_string())).collect();
        f.push((t, v.to_string()));
        f
    };
    type Case = (&'static str, String, Vec<(&'static str, String)>, Vec<(&'static str, &'static str)>, u16);
    let cases: Vec<Case> = vec![
        ("no token", cookie.clone(), with("x", "1"), vec![], 403),
        ("token without its cookie", String::new(), with("atl_token", &mine), vec![], 403),
        ("another browser's token", cookie.clone(), with("atl_token", &theirs), vec![], 403),
        ("cross-site", cookie.clone(), with("atl_token", &mine), vec![("sec-fetch-site", "cross-site")], 403),
        (
            "foreign Origin",
            cookie.clone(),
            with("atl_token", &mine),
            vec![("origin", "https://evil.example")],
            403,
        ),
        (
            "a forged cookie and field",
            format!("{XSRF}=forged_lout"),
            with("atl_token", "forged_lout"),
            vec![],
            403,
        ),
        ("the page's token and its cookie", cookie.clone(), with("atl_token", &mine), vec![], 303),
    ];
    for (what, cookie, form, headers, want) in cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = post_form(&s, "/login.jsp", &cookie, &form, &headers).await;
        assert_eq!(r.status().as_u16(), want, "{what}");
        if want == 403 {
            assert!(set_cookie(&r, SESSION).is_none(), "{what}: logged in anyway");
            // The login page is a browser's: it answers in HTML, whichever check failed.
            let ct = header(&r, "content-type").unwrap_or_default();
            assert!(ct.starts_with("text/html"), "{what}: {ct}");
            let text = r.text().await.unwrap();
            assert!(text.contains("XSRF check failed"), "{what}: {text}");
        }
    }
}

#[tokio::test]
async fn a_token_from_another_authd_never_verifies() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let me = api_login(&a, "admin", &a.admin_pw(), false).await;
    let theirs = api_login(&b, "admin", &b.admin_pw(), false).await.xsrf.unwrap();
    let (id_a, _, _) = token_parts(me.xsrf.as_ref().unwrap());
    let (id_b, hex_b, _) = token_parts(&theirs);
    assert_ne!(id_a, id_b, "two data dirs share a server id");
    // b's token as it is, and b's token wearing a's server id (only the MAC key tells them apart).
    let disguised = format!("{id_a}_{hex_b}_lin");
    for (what, t) in [("b's token", theirs.as_str()), ("b's token with a's server id", disguised.as_str())] {
        assert!(!try_revoke_others(&a, &me, &[("atl_token", t)], &[], what).await, "{what}");
        assert!(
            !try_revoke_others(&a, &me, &[("x", "1")], &[("X-Atlassian-Token", t)], what).await,
            "{what}"
        );
    }
    // Anonymous tokens do not cross over either.
    let b_lout = set_value(&get_with(&b, "/login.jsp", "").await, XSRF).unwrap();
    let (_, b_lout_hex, _) = token_parts(&b_lout);
    for t in [b_lout.clone(), format!("{id_a}_{b_lout_hex}_lout")] {
        let r = post_form(
            &a,
            "/login.jsp",
            &format!("{XSRF}={t}"),
            &[("os_username", "admin"), ("os_password", &a.admin_pw()), ("atl_token", &t)],
            &[],
        )
        .await;
        assert_eq!(r.status(), 403, "{t}");
    }
}

/// The Monday-morning rule, step by step, on authd's own account page.
#[tokio::test]
async fn monday_morning_a_form_filled_in_before_the_session_expired_still_submits() {
    let s = Server::start(&["--idle-timeout", "2s", "--touch-interval", "100ms"]);
    let pw = s.admin_pw();
    // Friday: log in with "Remember my login" and open the account page.
    let mut browser = page_login(&s, "admin", &pw, true).await;
    assert!(browser.remember.is_some(), "no remember-me cookie");
    let r = get_with(&s, "/account", &browser.header()).await;
    assert_eq!(r.status(), 200);
    browser.apply(&r);
    let friday_token = page_token(&r.text().await.unwrap());
    assert_eq!(browser.xsrf.as_deref(), Some(friday_token.as_str()));
    let friday_session = browser.session.clone().unwrap();
    // Another device, so that "log out all other sessions" has something to do.
    let phone = api_login(&s, "admin", &pw, false).await.session.unwrap();

    // The weekend: the session expires; the browser keeps all its cookies
    // (the phone is in use meanwhile).
    wait_until_dead_keeping(&s, &friday_session, &[&phone]).await;
    assert_eq!(whoami(&s, &format!("{SESSION}={friday_session}")).await.status(), 401);
    assert!(session_alive(&s, &phone).await);

    // Monday: the form on the open page is submitted with Friday's token.
    let r = post_form(&s, REVOKE_OTHERS, &browser.header(), &[("atl_token", &friday_token)], &[]).await;
    let status = r.status().as_u16();
    let location = header(&r, "location");
    let new_session = set_value(&r, SESSION);
    let new_remember = set_value(&r, REMEMBER);
    let new_xsrf = set_value(&r, XSRF);
    browser.apply(&r);
    let text = r.text().await.unwrap();
    assert_eq!(status, 303, "Friday's form was refused on Monday: {text}");
    assert_eq!(location.as_deref(), Some("/account"));
    let new_session = new_session.expect("the remember-me cookie started a new session");
    assert_ne!(new_session, friday_session);
    assert!(new_remember.is_some(), "the remember-me cookie was not rotated");
    assert!(new_xsrf.is_none_or(|t| t == friday_token), "the browser's token was replaced");
    assert!(!session_alive(&s, &phone).await, "the form did not take effect");
    assert!(session_alive(&s, &new_session).await);

    // The new session's pages go on using Friday's token.
    let r = get_with(&s, "/account", &browser.header()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(page_token(&r.text().await.unwrap()), friday_token);
}

/// The same with `--absolute-timeout`, the token in the header, and the logout form.
#[tokio::test]
async fn monday_morning_after_the_absolute_timeout() {
    let s = Server::start(&["--absolute-timeout", "2s"]);
    let mut browser = page_login(&s, "admin", &s.admin_pw(), true).await;
    let token = browser.xsrf.clone().unwrap();
    wait_until_dead(&s, browser.session.as_ref().unwrap()).await;
    let r =
        post_form(&s, "/account/logout", &browser.header(), &[("x", "1")], &[("X-Atlassian-Token", &token)])
            .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    assert_eq!(header(&r, "location").as_deref(), Some("/login.jsp?logged_out=1"));
    assert!(deletes(&r, REMEMBER));
    let old_remember = browser.remember.clone().unwrap();
    browser.apply(&r);
    // The series this browser used is gone.
    assert_eq!(whoami(&s, &format!("{REMEMBER}={old_remember}")).await.status(), 401);
}

/// The adoption is for this user's token from this authd only.
#[tokio::test]
async fn monday_morning_adopts_no_foreign_token() {
    let s = Server::start(&["--idle-timeout", "2s", "--touch-interval", "100ms"]);
    let other_authd = Server::start(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let bobs = api_login(&s, "bob", "bob-password-1", false).await.xsrf.unwrap();
    let foreign = api_login(&other_authd, "admin", &other_authd.admin_pw(), false).await.xsrf.unwrap();
    let (id, _, _) = token_parts(&bobs);
    let (_, foreign_hex, _) = token_parts(&foreign);
    let disguised = format!("{id}_{foreign_hex}_lin");
    for (what, held) in [
        ("bob's token", bobs.as_str()),
        ("another authd's token", foreign.as_str()),
        ("another authd's token with this server id", disguised.as_str()),
    ] {
        let browser = page_login(&s, "admin", &s.admin_pw(), true).await;
        let phone = api_login(&s, "admin", &s.admin_pw(), false).await.session.unwrap();
        wait_until_dead_keeping(&s, browser.session.as_ref().unwrap(), &[&phone]).await;
        let cookie = format!(
            "{SESSION}={}; {REMEMBER}={}; {XSRF}={held}",
            browser.session.as_ref().unwrap(),
            browser.remember.as_ref().unwrap()
        );
        let r = post_form(&s, REVOKE_OTHERS, &cookie, &[("atl_token", held)], &[]).await;
        let fresh = set_value(&r, XSRF);
        assert_eq!(r.status(), 403, "{what} was adopted");
        assert!(r.text().await.unwrap().contains("XSRF check failed"));
        assert!(fresh.is_some_and(|t| t != held), "{what}: the new session must get a fresh token");
        assert!(session_alive(&s, &phone).await, "{what}: the form took effect");
    }
    // And a browser that lost its token cookie cannot submit the old form.
    let browser = page_login(&s, "admin", &s.admin_pw(), true).await;
    let token = browser.xsrf.clone().unwrap();
    wait_until_dead(&s, browser.session.as_ref().unwrap()).await;
    let cookie = format!(
        "{SESSION}={}; {REMEMBER}={}",
        browser.session.as_ref().unwrap(),
        browser.remember.as_ref().unwrap()
    );
    let r = post_form(&s, REVOKE_OTHERS, &cookie, &[("atl_token", &token)], &[]).await;
    assert_eq!(r.status(), 403);
}

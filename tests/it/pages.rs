//! SPEC §8: the login page and the account page, driven over HTTPS the way
//! a browser without scripts would.

use crate::jar::*;
use crate::support::*;

/// GETs `/login.jsp` as `jar`; returns the page's token.
async fn open_login(s: &Server, jar: &mut Jar, query: &str) -> (String, String) {
    let r = get_with(s, &format!("/login.jsp{query}"), &jar.header()).await;
    assert_eq!(r.status(), 200);
    jar.apply(&r);
    let html = r.text().await.unwrap();
    (page_token(&html), html)
}

/// Logs in through the page with a browser-like User-Agent; returns the jar
/// and the session's public handle.
async fn page_login_as(s: &Server, user: &str, pw: &str, remember: bool, ua: &str) -> (Jar, String) {
    let mut jar = Jar::default();
    let (token, _) = open_login(s, &mut jar, "").await;
    let mut form = vec![("os_username", user), ("os_password", pw), ("atl_token", token.as_str())];
    if remember {
        form.push(("os_cookie", "true"));
    }
    let r = post_form(s, "/login.jsp", &jar.header(), &form, &[("user-agent", ua)]).await;
    assert_eq!(r.status(), 303, "page login of {user}");
    let handle = header(&r, "x-asessionid").expect("X-ASESSIONID");
    jar.apply(&r);
    (jar, handle)
}

/// SPEC §7 names three form encodings; the login page reads each of them
/// (a form with `enctype="multipart/form-data"` or `"text/plain"`).
#[tokio::test]
async fn the_login_page_takes_multipart_and_text_plain_forms() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    /// The login form in `encoding` with this token.
    fn encode(multipart: bool, pw: &str, token: &str) -> (&'static str, String) {
        let fields =
            [("os_username", "admin"), ("os_password", pw), ("os_cookie", "true"), ("atl_token", token)];
        if !multipart {
            return ("text/plain", fields.iter().map(|(k, v)| format!("{k}={v}\r\n")).collect());
        }
        let mut body: String = fields
            .iter()
            .map(|(k, v)| {
                format!("--7MA4YWxk\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
            })
            .collect();
        body += "--7MA4YWxk--\r\n";
        ("multipart/form-data; boundary=7MA4YWxk", body)
    }
    for multipart in [true, false] {
        let mut jar = Jar::default();
        let (token, _) = open_login(&s, &mut jar, "").await;
        // Without the page's token the form is refused; with it, it logs in.
        // A wrong token in the form is refused; the page's own logs in.
        let wrong = token.replace("_lout", "_lin");
        for (token, cookie, want) in
            [(wrong.as_str(), jar.header(), 403), (token.as_str(), jar.header(), 303)]
        {
            let (ct, body) = encode(multipart, &pw, token);
            let mut b = s.bare_client().post(s.at("/login.jsp")).header("content-type", ct).body(body);
            if !cookie.is_empty() {
                b = b.header("cookie", cookie);
            }
            let r = b.send().await.unwrap();
            assert_eq!(r.status(), want, "{ct}");
            if want == 303 {
                assert_eq!(header(&r, "location").as_deref(), Some("/account"), "{ct}");
                jar.apply(&r);
            }
        }
        assert!(jar.remember.is_some(), "os_cookie was not read (multipart: {multipart})");
        assert!(session_alive(&s, jar.session.as_ref().unwrap()).await, "multipart: {multipart}");
    }
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

#[tokio::test]
async fn the_login_form_has_jiras_fields_and_no_scripts() {
    let s = Server::start(&[]);
    let r = get_with(&s, "/login.jsp?os_destination=%2Fapp%2Fpage%3Fx%3D1", "").await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").is_some_and(|t| t.starts_with("text/html")));
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    let html = r.text().await.unwrap();
    for needle in [
        "<form method=\"post\" action=\"/login.jsp\"",
        "name=\"os_username\"",
        "type=\"password\"",
        "name=\"os_password\"",
        "type=\"checkbox\"",
        "name=\"os_cookie\"",
        "Remember my login on this computer",
        "type=\"hidden\" name=\"atl_token\"",
        "name=\"os_destination\" value=\"/app/page?x=1\"",
    ] {
        assert!(html.contains(needle), "{needle} missing from the login page:\n{html}");
    }
    // Without a destination in the query the field is there, empty (the account page after login).
    let plain = get_with(&s, "/login.jsp", "").await.text().await.unwrap();
    assert!(plain.contains("type=\"hidden\" name=\"os_destination\" value=\"\""), "{plain}");
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "the page needs scripts");
    for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "@import", "url("] {
        assert!(!lower.contains(external), "external asset ({external}) in the login page");
    }
}

#[tokio::test]
async fn logging_in_through_the_page_sets_the_cookies_and_goes_to_the_account() {
    let s = Server::start(&[]);
    let mut jar = Jar::default();
    let (token, _) = open_login(&s, &mut jar, "").await;
    let r = post_form(
        &s,
        "/login.jsp",
        &jar.header(),
        &[
            ("os_username", "admin"),
            ("os_password", &s.admin_pw()),
            ("os_cookie", "true"),
            ("atl_token", &token),
        ],
        &[("user-agent", FIREFOX)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/account"));
    let session = set_attrs(&r, SESSION);
    for want in ["path=/", "secure", "httponly", "samesite=lax"] {
        assert!(session.iter().any(|a| a == want), "{want} missing from the session cookie {session:?}");
    }
    assert!(!session.iter().any(|a| a.starts_with("max-age") || a.starts_with("expires")), "{session:?}");
    let remember = set_attrs(&r, REMEMBER);
    for want in ["path=/", "secure", "httponly", "samesite=lax"] {
        assert!(
            remember.iter().any(|a| a == want),
            "{want} missing from the remember-me cookie {remember:?}"
        );
    }
    assert!(max_age(&r, REMEMBER).is_some_and(|a| a > 13 * 86_400));
    assert!(set_value(&r, XSRF).is_some_and(|t| t.ends_with("_lin")));
    jar.apply(&r);
    let r = get_with(&s, "/account", &jar.header()).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<dd id=\"username\">admin</dd>"));

    // Without the box ticked there is no remember-me cookie.
    let mut jar = Jar::default();
    let (token, _) = open_login(&s, &mut jar, "").await;
    let r = post_form(
        &s,
        "/login.jsp",
        &jar.header(),
        &[("os_username", "admin"), ("os_password", &s.admin_pw()), ("atl_token", &token)],
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(set_cookie(&r, REMEMBER), None);
}

#[tokio::test]
async fn a_failed_login_shows_the_reason_on_the_page() {
    let s = Server::start(&[]);
    let mut jar = Jar::default();
    let (token, _) = open_login(&s, &mut jar, "?os_destination=%2Fapp").await;
    let r = post_form(
        &s,
        "/login.jsp",
        &jar.header(),
        &[
            ("os_username", "admin"),
            ("os_password", "wrong"),
            ("atl_token", &token),
            ("os_destination", "/app"),
        ],
        &[],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"));
    assert!(set_cookie(&r, SESSION).is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("incorrect"), "no reason on the page:\n{html}");
    assert!(html.contains("value=\"admin\""), "the user name is not kept");
    assert!(html.contains("name=\"os_destination\" value=\"/app\""), "the destination is lost");
    // The page's new form works.
    let token = page_token(&html);
    let r = post_form(
        &s,
        "/login.jsp",
        &jar.header(),
        &[
            ("os_username", "admin"),
            ("os_password", &s.admin_pw()),
            ("atl_token", &token),
            ("os_destination", "/app"),
        ],
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/app"));
}

#[tokio::test]
async fn os_destination_goes_only_to_paths_on_this_site() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    let login_to = |dest: String| {
        let s = &s;
        let pw = pw.clone();
        async move {
            let mut jar = Jar::default();
            let (token, _) = open_login(s, &mut jar, "").await;
            let r = post_form(
                s,
                "/login.jsp",
                &jar.header(),
                &[
                    ("os_username", "admin"),
                    ("os_password", &pw),
                    ("atl_token", &token),
                    ("os_destination", &dest),
                ],
                &[],
            )
            .await;
            assert_eq!(r.status(), 303, "{dest:?}");
            assert!(set_cookie(&r, "x").is_none(), "{dest:?}: a header was injected: {:?}", set_cookies(&r));
            assert_eq!(r.headers().get_all("location").iter().count(), 1, "{dest:?}");
            header(&r, "location").unwrap()
        }
    };
    for ok in ["/account", "/app/page?x=1&y=2", "/app/page#top", "/%2F%2Fevil.example", "/"] {
        assert_eq!(login_to(ok.to_string()).await, ok);
    }
    for evil in [
        "https://evil.example",
        "https://evil.example/account",
        "HTTPS://EVIL.EXAMPLE",
        "http:evil.example",
        "//evil.example",
        "//evil.example/account",
        "///evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        " //evil.example",
        "%2F%2Fevil.example",
        "javascript:alert(document.domain)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "/account\r\nSet-Cookie: x=1",
        "/account\r\nLocation: https://evil.example",
        "/account\nx: 1",
        "evil.example",
        "",
    ] {
        let location = login_to(evil.to_string()).await;
        assert_eq!(location, "/account", "os_destination {evil:?} was followed");
    }
    // The form does not carry a foreign destination along either.
    for evil in
        ["https%3A%2F%2Fevil.example", "%2F%2Fevil.example", "%2F%5Cevil.example", "javascript%3Aalert(1)"]
    {
        let r = get_with(&s, &format!("/login.jsp?os_destination={evil}"), "").await;
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(!html.contains("evil.example") && !html.contains("javascript:"), "{evil}: {html}");
    }
}

/// The `handle` values of the session rows on an account page.
fn handles(html: &str) -> Vec<String> {
    html.split("name=\"handle\" value=\"").skip(1).map(|p| p[..p.find('"').unwrap()].to_string()).collect()
}

async fn account(s: &Server, jar: &Jar) -> String {
    let r = get_with(s, "/account", &jar.header()).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn the_account_page_lists_sessions_and_logs_out_one_others_or_all() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    s.add_user("bob", "bob-password-1", &[]);

    let r = get_with(&s, "/account", "").await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/login.jsp?os_destination=%2Faccount"));

    let (me, my_handle) = page_login_as(&s, "admin", &pw, false, FIREFOX).await;
    let (tablet, tablet_handle) = page_login_as(&s, "admin", &pw, false, "<script>alert(1)</script>").await;
    let (phone, phone_handle) = page_login_as(
        &s,
        "admin",
        &pw,
        false,
        "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
    )
    .await;
    let (bob, bob_handle) = page_login_as(&s, "bob", "bob-password-1", false, FIREFOX).await;

    let html = account(&s, &me).await;
    assert!(html.contains("<dd id=\"username\">admin</dd>"));
    let mut listed = handles(&html);
    listed.sort();
    let mut want = vec![my_handle.clone(), tablet_handle.clone(), phone_handle.clone()];
    want.sort();
    assert_eq!(listed, want, "the account page lists exactly the user's sessions");
    assert_eq!(html.matches("this one").count(), 1);
    let this_row = html.split("<tr").find(|row| row.contains("this one")).unwrap();
    assert!(this_row.contains(&my_handle), "'this one' marks another session");
    assert!(this_row.contains("Firefox"), "the browser is not shown: {this_row}");
    assert!(html.contains("Android"), "the phone's browser is not shown");
    assert!(html.contains("127.0.0.1"), "the address is not shown");
    assert!(html.contains(" UTC"), "created / last used are not shown");
    assert!(!html.contains("<script>alert"), "a User-Agent was not escaped");
    for button in ["Log out all other sessions", "Log out everywhere", ">Log out<"] {
        assert!(html.contains(button), "no {button} button");
    }
    assert!(!html.to_ascii_lowercase().contains("<script"), "the account page needs scripts");
    for secret in [me.session.as_ref().unwrap(), tablet.session.as_ref().unwrap()] {
        assert!(!html.contains(secret.as_str()), "a session ID is on the page");
    }
    let token = page_token(&html);

    // Log out one other session.
    let r = post_form(
        &s,
        "/account/sessions/revoke",
        &me.header(),
        &[("atl_token", &token), ("handle", &tablet_handle)],
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/account"));
    assert!(!session_alive(&s, tablet.session.as_ref().unwrap()).await);
    assert!(session_alive(&s, phone.session.as_ref().unwrap()).await);
    assert!(session_alive(&s, me.session.as_ref().unwrap()).await);
    assert!(!handles(&account(&s, &me).await).contains(&tablet_handle));

    // Another user's session cannot be logged out from here.
    let r = post_form(
        &s,
        "/account/sessions/revoke",
        &me.header(),
        &[("atl_token", &token), ("handle", &bob_handle)],
        &[],
    )
    .await;
    assert!(r.status().is_client_error(), "revoking bob's session answered {}", r.status());
    assert!(
        session_alive(&s, bob.session.as_ref().unwrap()).await,
        "admin logged bob out from the account page"
    );
    // Nor without the token.
    let r = post_form(&s, "/account/sessions/revoke", &me.header(), &[("handle", &phone_handle)], &[]).await;
    assert_eq!(r.status(), 403);
    assert!(session_alive(&s, phone.session.as_ref().unwrap()).await);

    // Log out all other sessions.
    let r =
        post_form(&s, "/account/sessions/revoke-others", &me.header(), &[("atl_token", &token)], &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/account"));
    assert_eq!(header(&r, "x-seraph-loginreason"), None, "not a logout of this browser");
    assert!(!session_alive(&s, phone.session.as_ref().unwrap()).await);
    assert!(session_alive(&s, me.session.as_ref().unwrap()).await);
    assert!(session_alive(&s, bob.session.as_ref().unwrap()).await, "bob's session ended");
    assert_eq!(handles(&account(&s, &me).await), vec![my_handle.clone()]);

    // Logging out "this one" from its row is a logout.
    let r = post_form(
        &s,
        "/account/sessions/revoke",
        &me.header(),
        &[("atl_token", &token), ("handle", &my_handle)],
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/login.jsp?logged_out=1"));
    assert!(deletes(&r, SESSION));
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"), "{:?}", r.headers());
    assert!(!session_alive(&s, me.session.as_ref().unwrap()).await);
    assert!(session_alive(&s, bob.session.as_ref().unwrap()).await);
}

#[tokio::test]
async fn log_out_everywhere_and_log_out() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    let (mut me, _) = page_login_as(&s, "admin", &pw, true, FIREFOX).await;
    let other = api_login(&s, "admin", &pw, true).await;
    let token = page_token(&account(&s, &me).await);

    let r = post_form(&s, "/account/sessions/revoke-all", &me.header(), &[("atl_token", &token)], &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/login.jsp?logged_out=1"));
    assert!(deletes(&r, SESSION));
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"), "{:?}", r.headers());
    assert!(!session_alive(&s, me.session.as_ref().unwrap()).await);
    assert!(!session_alive(&s, other.session.as_ref().unwrap()).await);
    // Every remember-me series is gone too.
    for jar in [&me, &other] {
        let r = whoami(&s, &format!("{REMEMBER}={}", jar.remember.as_ref().unwrap())).await;
        assert_eq!(r.status(), 401, "a remember-me series survived 'log out everywhere'");
    }
    me.apply(&r);

    // The plain "Log out" button: the session and this browser's series end.
    let (me, _) = page_login_as(&s, "admin", &pw, true, FIREFOX).await;
    let elsewhere = api_login(&s, "admin", &pw, true).await;
    let token = page_token(&account(&s, &me).await);
    let r = post_form(&s, "/account/logout", &me.header(), &[("atl_token", &token)], &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/login.jsp?logged_out=1"));
    assert!(deletes(&r, SESSION) && deletes(&r, REMEMBER), "{:?}", set_cookies(&r));
    assert!(deletes(&r, XSRF), "{:?}", set_cookies(&r));
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"), "{:?}", r.headers());
    assert!(!session_alive(&s, me.session.as_ref().unwrap()).await);
    let r = whoami(&s, &format!("{REMEMBER}={}", me.remember.as_ref().unwrap())).await;
    assert_eq!(r.status(), 401, "logout left this browser's series alive");
    assert!(session_alive(&s, elsewhere.session.as_ref().unwrap()).await, "logout ended another session");
    let r = get_with(&s, "/account", &format!("{REMEMBER}={}", me.remember.as_ref().unwrap())).await;
    assert_eq!(r.status(), 303, "the account page let a logged-out browser in");
}

#[tokio::test]
async fn a_remembered_browser_sees_its_account_without_logging_in() {
    let s = Server::start(&[]);
    let (mut me, _) = page_login_as(&s, "admin", &s.admin_pw(), true, FIREFOX).await;
    me.session = None;
    let r = get_with(&s, "/account", &me.header()).await;
    assert_eq!(r.status(), 200);
    assert!(set_value(&r, SESSION).is_some(), "no new session cookie");
    assert!(set_value(&r, REMEMBER).is_some(), "the remember-me cookie was not rotated");
    me.apply(&r);
    let html = r.text().await.unwrap();
    assert!(html.contains("<dd id=\"username\">admin</dd>"));
    assert_eq!(page_token(&html), me.xsrf.clone().unwrap());
    // The login page says who is logged in.
    let r = get_with(&s, "/login.jsp", &me.header()).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("You are logged in as <b>admin</b>"));
}

#[tokio::test]
async fn the_login_page_sends_a_logged_in_browser_on_to_its_destination() {
    // As behind forward auth: the app sends a browser whose session cookie
    // is gone to /login.jsp?os_destination=...; its remember-me cookie logs
    // it back in there, and it goes straight on with the new session.
    let s = Server::start(&[]);
    let (mut me, _) = page_login_as(&s, "admin", &s.admin_pw(), true, FIREFOX).await;
    me.session = None;
    let r = get_with(&s, "/login.jsp?os_destination=%2Fapp%2Fpage%3Fx%3D1", &me.header()).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/app/page?x=1"));
    let id = set_value(&r, SESSION).expect("the remember-me login's session cookie comes with the redirect");
    assert_eq!(session_status(&s, &id).await, 200);
    me.apply(&r);
    // With a session already, too; a foreign destination is not followed.
    let r = get_with(&s, "/login.jsp?os_destination=%2Faccount", &me.header()).await;
    assert_eq!(header(&r, "location").as_deref(), Some("/account"));
    let r = get_with(&s, "/login.jsp?os_destination=https%3A%2F%2Fevil.example%2F", &me.header()).await;
    assert_eq!(r.status(), 200, "a foreign destination was followed");
}

/// A session cookie that logs nobody in (expired, ended elsewhere) is
/// cleared by the redirect to the login page, as by the API's 401.
#[tokio::test]
async fn the_account_page_clears_a_dead_session_cookie_on_its_way_to_the_login_page() {
    let s = Server::start(&[]);
    let dead = format!("{SESSION}=c3RhbGUtc2Vzc2lvbi1pZC1ub3QtaW4tdGhlLWRhdGFiYXNlLXh4");
    let r = get_with(&s, "/account", &dead).await;
    assert_eq!(r.status(), 303);
    let to = header(&r, "location").unwrap();
    assert_eq!(to, "/login.jsp?os_destination=%2Faccount&session_expired=1");
    assert!(deletes(&r, SESSION), "{:?}", set_cookies(&r));
    // The login page says why the browser is there.
    let page = get_with(&s, &to, "").await.text().await.unwrap();
    assert!(page.contains("Your session has expired"), "{page}");
    // No cookie: nothing to clear or explain.
    let r = s.bare_client().get(s.at("/account")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/login.jsp?os_destination=%2Faccount"));
    assert!(last_set_cookie(&r, SESSION).is_none(), "{:?}", set_cookies(&r));
    let page = get_with(&s, "/login.jsp?os_destination=%2Faccount", "").await.text().await.unwrap();
    assert!(!page.contains("Your session has expired"), "{page}");
}

/// Two tabs on the login page; the first logs in, which replaces the
/// browser's anonymous XSRF token. The second tab's stale form, for the same
/// user, goes on as a login would (nothing else changes); for another user
/// it is refused as a forgery would be.
#[tokio::test]
async fn a_second_tabs_stale_login_form_goes_on_for_the_user_already_logged_in() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    s.add_user("bea", "bea's long password", &[]);
    let mut jar = Jar::default();
    let (first, _) = open_login(&s, &mut jar, "").await;
    let (second, _) = open_login(&s, &mut jar, "?os_destination=%2Fapp%2Fx").await;
    let form = [("os_username", "admin"), ("os_password", pw.as_str()), ("atl_token", first.as_str())];
    let r = post_form(&s, "/login.jsp", &jar.header(), &form, &[]).await;
    assert_eq!(r.status(), 303);
    jar.apply(&r);
    let id = jar.session.clone().unwrap();
    // The stale tab, same user (no password is checked; nothing changes).
    let form = [
        ("os_username", "ADMIN"),
        ("os_password", "not checked"),
        ("atl_token", second.as_str()),
        ("os_destination", "/app/x"),
    ];
    let r = post_form(&s, "/login.jsp", &jar.header(), &form, &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/app/x"));
    assert!(set_value(&r, SESSION).is_none(), "the stale form logged in anew");
    assert!(session_alive(&s, &id).await);
    // Another user: refused.
    let form =
        [("os_username", "bea"), ("os_password", "bea's long password"), ("atl_token", second.as_str())];
    let r = post_form(&s, "/login.jsp", &jar.header(), &form, &[]).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("XSRF check failed"));
    assert!(session_alive(&s, &id).await);
}

/// The account page's buttons are POSTs; any other method on them is 405.
#[tokio::test]
async fn the_account_pages_actions_answer_other_methods_with_405() {
    let s = Server::start(&[]);
    let (jar, _) = page_login_as(&s, "admin", &s.admin_pw(), false, FIREFOX).await;
    for path in [
        "/account/logout",
        "/account/sessions/revoke",
        "/account/sessions/revoke-all",
        "/account/revoke-others",
    ] {
        let r = get_with(&s, path, &jar.header()).await;
        assert_eq!(r.status(), 405, "{path}");
        assert_eq!(header(&r, "allow").as_deref(), Some("POST"), "{path}");
    }
    let r = get_with(&s, "/account/nothing", &jar.header()).await;
    assert_eq!(r.status(), 404);
    assert!(session_alive(&s, jar.session.as_ref().unwrap()).await);
}

//! SPEC §3 and issue 4: failed-login accounting and the login challenge.
//!
//! After `--max-failed-logins` consecutive failures the API answers 403
//! `AUTHENTICATION_DENIED` / `CAPTCHA_CHALLENGE` without checking the
//! password, until `--lockout` passes (doubling on each new trigger) or
//! `authd user unlock`; the login page lets a person through with a solved
//! proof-of-work puzzle. Also: Jira's `loginInfo` counters, 409 for an
//! unverified email and its verification link, 429 for an address that
//! sprays many names, and unknown names answered exactly like known ones.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::jar::*;
use crate::support::*;

const PW: &str = "ann's long password";
const WRONG: &str = "not ann's password";

/// Posts a JSON login with a cookie-less client.
async fn api(s: &Server, user: &str, password: &str) -> reqwest::Response {
    s.login(&s.bare_client(), user, password).await
}

/// `n` wrong-password logins of `user`, each a plain 401.
async fn fail_n(s: &Server, user: &str, n: u32) {
    for i in 1..=n {
        let r = api(s, user, WRONG).await;
        assert_eq!(r.status(), 401, "failure {i} of {user} should be a plain 401");
        assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"));
    }
}

/// Asserts the API's challenge answer (SPEC §3) and returns its `Retry-After`.
async fn assert_denied(s: &Server, r: reqwest::Response) -> u64 {
    assert_eq!(r.status(), 403, "expected the challenge demand");
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATION_DENIED"));
    assert_eq!(
        header(&r, "x-authentication-denied-reason").as_deref(),
        Some(format!("CAPTCHA_CHALLENGE; login-url={}/login.jsp", s.url).as_str()),
    );
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    let retry = header(&r, "retry-after").expect("Retry-After on the 403");
    let retry: u64 = retry.parse().unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {retry}"));
    let body: Value = r.json().await.unwrap();
    assert_jira_error(&body);
    retry
}

/// `/metrics`' `authd_logins_total` for one outcome.
async fn logins(s: &Server, outcome: &str) -> f64 {
    let text = metrics_text(s).await;
    metric(&text, &format!("authd_logins_total{{outcome=\"{outcome}\"}}")).unwrap_or(0.0)
}

#[tokio::test]
async fn after_n_failures_the_api_demands_a_challenge_without_checking_the_password() {
    let s = Server::start(&["--max-failed-logins", "3", "--lockout", "60s"]);
    s.add_user("ann", PW, &[]);
    fail_n(&s, "ann", 3).await;

    // The right password no longer helps: 403 with both headers.
    let retry = assert_denied(&s, api(&s, "ann", PW).await).await;
    assert!((58..=60).contains(&retry), "Retry-After {retry}, the lockout is 60 s");
    // Names are case-insensitive: the same account, the same demand.
    assert_denied(&s, api(&s, "ANN", PW).await).await;

    // While the challenge stands the password is not even checked: a wrong
    // one is refused the same way, is no failure, and does not move the lapse.
    let failed = logins(&s, "failed").await;
    let denied = logins(&s, "denied").await;
    for _ in 0..5 {
        let r = assert_denied(&s, api(&s, "ann", WRONG).await).await;
        assert!(r <= retry, "a refused attempt moved the lapse out ({retry} -> {r})");
    }
    assert_eq!(logins(&s, "failed").await, failed, "a refused attempt ran the password check");
    assert_eq!(logins(&s, "denied").await, denied + 5.0);
    // The login page refuses the same way (and offers the puzzle, tested below).
    let mut jar = Jar::default();
    let (status, _, html) = page_login(&s, &mut jar, "ann", PW, None).await;
    assert_eq!(status, 403);
    assert!(html.contains("too many failed logins"), "{html}");
    // Other accounts are not affected.
    s.login_ok(&s.bare_client(), "admin", &s.admin_pw()).await;
}

#[tokio::test]
async fn the_challenge_lapses_after_the_lockout_and_doubles_when_triggered_again() {
    let s = Server::start(&["--max-failed-logins", "3", "--lockout", "2s"]);
    s.add_user("ann", PW, &[]);

    fail_n(&s, "ann", 3).await;
    let first = assert_denied(&s, api(&s, "ann", PW).await).await;
    let first_at = Instant::now();
    assert!((1..=2).contains(&first), "first Retry-After {first}, the lockout is 2 s");

    // Wait out the first period without logging in (a success would reset
    // the doubling), then fail three times again: the lapse means the first
    // two are plain 401s, and the new demand lasts twice as long.
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(first_at.elapsed())).await;
    fail_n(&s, "ann", 3).await;
    let second = assert_denied(&s, api(&s, "ann", PW).await).await;
    let second_at = Instant::now();
    assert!((3..=4).contains(&second), "second Retry-After {second}: twice the 2 s lockout");
    assert!(second >= 2 * first - 1, "not doubled: {first} s then {second} s");

    // It lapses: the right password gets in once Retry-After has passed, not before.
    let deadline = second_at + Duration::from_secs(second + 3);
    let waited = loop {
        let r = api(&s, "ann", PW).await;
        match r.status().as_u16() {
            200 => break second_at.elapsed(),
            403 => {}
            other => panic!("while waiting for the lapse: {other}"),
        }
        assert!(Instant::now() < deadline, "the challenge did not lapse within {second} s + 3 s");
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    assert!(
        waited + Duration::from_millis(1200) >= Duration::from_secs(second),
        "let in after {waited:?}, Retry-After was {second} s"
    );

    // A success resets the doubling: the next trigger is back to the base period.
    fail_n(&s, "ann", 3).await;
    let third = assert_denied(&s, api(&s, "ann", PW).await).await;
    assert!((1..=2).contains(&third), "after a success the period starts over, got {third}");
}

#[tokio::test]
async fn authd_user_unlock_clears_the_challenge_and_its_doubling() {
    let s = Server::start(&["--max-failed-logins", "3", "--lockout", "60s"]);
    s.add_user("ann", PW, &[]);
    fail_n(&s, "ann", 3).await;
    assert_denied(&s, api(&s, "ann", PW).await).await;
    // Failing again through a solved puzzle would double it; unlock instead.
    let out = s.authd(&["user", "unlock", "ann"], None);
    assert!(
        out.status.success(),
        "authd user unlock: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unlocking forgets the strikes too: two failures are not enough again.
    fail_n(&s, "ann", 2).await;
    let body = s.login_ok(&s.bare_client(), "ann", PW).await;
    assert_eq!(body["loginInfo"]["failedLoginCount"], 0);

    // And the level: the next trigger lasts the base period, not twice it.
    fail_n(&s, "ann", 3).await;
    let retry = assert_denied(&s, api(&s, "ann", PW).await).await;
    assert!((58..=60).contains(&retry), "Retry-After {retry} after an unlock");
    let out = s.authd(&["user", "unlock", "ann"], None);
    assert!(out.status.success());
    s.login_ok(&s.bare_client(), "ann", PW).await;
}

#[tokio::test]
async fn a_challenged_user_keeps_existing_sessions_and_remember_me_logins() {
    let s = Server::start(&["--max-failed-logins", "3", "--lockout", "60s"]);
    s.add_user("ann", PW, &[]);
    let browser = api_login(&s, "ann", PW, true).await;
    let phone = api_login(&s, "ann", PW, false).await;

    fail_n(&s, "ann", 3).await;
    assert_denied(&s, api(&s, "ann", PW).await).await;

    // The session in use keeps working, on the API and on the pages.
    let r = whoami(&s, &phone.header()).await;
    assert_eq!(r.status(), 200, "an existing session was thrown out by the challenge");
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["name"], "ann");
    assert_eq!(me["loginInfo"]["failedLoginCount"], 3);
    let r = get_with(&s, "/account", &phone.header()).await;
    assert_eq!(r.status(), 200);

    // A browser whose session cookie is gone is logged in by remember-me.
    let remembered = Jar { session: None, ..browser.clone() };
    let r = whoami(&s, &remembered.header()).await;
    assert_eq!(r.status(), 200, "a remember-me login was refused while challenged");
    assert!(set_value(&r, SESSION).is_some(), "the remember-me login set no new session");
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["name"], "ann");

    // The password still is not accepted on the API.
    assert_denied(&s, api(&s, "ann", PW).await).await;
}

#[tokio::test]
async fn login_info_counts_failures_and_logins_as_jira_does() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let s = Server::start_in(&data, &["--max-failed-logins", "10"]);
    s.add_user("ann", PW, &[]);

    // First login: one login, no failures, no times known yet.
    let first = s.login_ok(&s.bare_client(), "ann", PW).await;
    let info = &first["loginInfo"];
    assert_eq!(info["loginCount"], 1, "{info}");
    assert_eq!(info["failedLoginCount"], 0, "{info}");
    assert!(info.get("lastFailedLoginTime").is_none(), "no failure yet: {info}");
    assert!(info.get("previousLoginTime").is_none(), "no previous login yet: {info}");
    let id = first["session"]["value"].as_str().unwrap().to_string();

    // Two failures show on the session that is still open.
    fail_n(&s, "ann", 2).await;
    let r = whoami(&s, &format!("{SESSION}={id}")).await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    let info = &me["loginInfo"];
    assert_eq!(info["failedLoginCount"], 2, "{info}");
    assert_eq!(info["loginCount"], 1, "{info}");
    let failed_at = info["lastFailedLoginTime"].as_str().unwrap_or_else(|| panic!("{info}")).to_string();
    assert_jira_time(&failed_at);
    assert!(info.get("previousLoginTime").is_none(), "{info}");

    // The next login: counted, failures reset (consecutive since the last
    // success, as Jira's login store keeps them), the times kept.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = s.login_ok(&s.bare_client(), "ann", PW).await;
    let info = &second["loginInfo"];
    assert_eq!(info["loginCount"], 2, "{info}");
    assert_eq!(info["failedLoginCount"], 0, "{info}");
    assert_eq!(info["lastFailedLoginTime"], failed_at.as_str(), "{info}");
    let previous = info["previousLoginTime"].as_str().unwrap_or_else(|| panic!("{info}")).to_string();
    assert_jira_time(&previous);
    // Same fixed-width UTC format, so text order is time order.
    assert!(previous < failed_at, "the previous login ({previous}) came before the failures ({failed_at})");

    // A third failure-free login moves previousLoginTime on.
    let third = s.login_ok(&s.bare_client(), "ann", PW).await;
    let info = &third["loginInfo"];
    assert_eq!(info["loginCount"], 3, "{info}");
    assert!(info["previousLoginTime"].as_str().is_some_and(|p| p > failed_at.as_str()), "{info}");

    // The counters survive a restart (they live in redb).
    assert_eq!(s.stop().code(), Some(0));
    let s = Server::start_in(&data, &["--max-failed-logins", "10"]);
    fail_n(&s, "ann", 1).await;
    let again = s.login_ok(&s.bare_client(), "ann", PW).await;
    assert_eq!(again["loginInfo"]["loginCount"], 4, "{}", again["loginInfo"]);
}

/// `2026-11-22T09:15:02.123+00:00`.
fn assert_jira_time(t: &str) {
    let b = t.as_bytes();
    let ok = t.len() == 29
        && t.ends_with("+00:00")
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b[19] == b'.'
        && t[..4].parse::<u32>().is_ok_and(|y| y >= 2024);
    assert!(ok, "not a Jira time: {t}");
}

#[tokio::test]
async fn an_unverified_email_gets_409_until_the_printed_link_is_opened() {
    let s = Server::start(&[]);
    let out = s.authd(
        &["user", "add", "eve", "--email", "eve@example.com", "--unverified", "--password-stdin"],
        Some("eve's long password"),
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "user add: {printed}{}", String::from_utf8_lossy(&out.stderr));
    let link =
        link_in(&printed).unwrap_or_else(|| panic!("the CLI printed no verification link:\n{printed}"));
    assert!(link.starts_with(&format!("{}/", s.url)), "the link {link} is not on this server ({})", s.url);

    // The server's log (the local mail sink) has the same link.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.log_text().contains(&link) {
        assert!(Instant::now() < deadline, "the link is not in the server log:\n{}", s.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The right password: 409 (a wrong one is still a plain 401).
    assert_eq!(api(&s, "eve", "eve's wrong password").await.status(), 401);
    let r = api(&s, "eve", "eve's long password").await;
    assert_eq!(r.status(), 409);
    assert!(set_value(&r, SESSION).is_none(), "a 409 must not start a session");
    let body: Value = r.json().await.unwrap();
    assert_jira_error(&body);
    assert!(error_message(&body).to_lowercase().contains("verif"), "{body}");

    // Opening the link verifies the address; the login then succeeds.
    let r = s.bare_client().get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {link}");
    let page = r.text().await.unwrap();
    assert!(page.contains("eve@example.com") && page.contains("verified"), "{page}");
    s.login_ok(&s.bare_client(), "eve", "eve's long password").await;
    // The link works once.
    assert_eq!(s.bare_client().get(&link).send().await.unwrap().status(), 404);

    // `authd user verify` does it by hand.
    s.add_user("fay", "fay's long password", &["--email", "fay@example.com", "--unverified"]);
    assert_eq!(api(&s, "fay", "fay's long password").await.status(), 409);
    let out = s.authd(&["user", "verify", "fay"], None);
    assert!(out.status.success());
    s.login_ok(&s.bare_client(), "fay", "fay's long password").await;
}

/// The first `https://` link in `text`.
fn link_in(text: &str) -> Option<String> {
    let start = text.find("https://")?;
    Some(text[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect())
}

/// By default nothing limits an address: a shared one (an office behind
/// NAT, a test suite on loopback) with many failed logins across many names
/// still gets 401s for wrong passwords and 200 for a right one; each
/// account's own challenge is the protection (SPEC §3).
#[tokio::test]
async fn many_failures_from_one_address_do_not_lock_it_out_by_default() {
    let s = Server::start(&[]);
    s.add_user("ann", PW, &[]);
    for i in 0..120 {
        let r = api(&s, &format!("nobody{i}"), WRONG).await;
        assert_eq!(r.status(), 401, "failure {i}");
        assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"));
    }
    assert_eq!(api(&s, "ann", PW).await.status(), 200);
    let mut jar = Jar::default();
    let (status, headers, _) = page_login(&s, &mut jar, "ann", PW, None).await;
    assert_eq!(status, 303, "{headers:?}");
}

#[tokio::test]
async fn an_address_spraying_many_names_gets_429() {
    let s = Server::start(&["--max-failed-logins-per-address", "5", "--max-failed-logins", "100"]);
    s.add_user("ann", PW, &[]);
    let live = api_login(&s, "ann", PW, false).await;
    for name in ["ann", "bob", "carol", "dave", "admin"] {
        assert_eq!(api(&s, name, "Spring2026!").await.status(), 401, "{name}");
    }
    // The address has used up its failures: even a right password is refused,
    // without looking at it.
    for (name, pw) in [("erin", "Spring2026!"), ("ann", PW)] {
        let r = api(&s, name, pw).await;
        assert_eq!(r.status(), 429, "{name}");
        let retry: u64 = header(&r, "retry-after").expect("Retry-After on the 429").parse().unwrap();
        assert!((590..=600).contains(&retry), "Retry-After {retry}: the window is ten minutes");
        assert!(header(&r, "x-authentication-denied-reason").is_none());
        let body: Value = r.json().await.unwrap();
        assert_jira_error(&body);
    }
    // The login page says the same.
    let mut jar = Jar::default();
    let (status, headers, html) = page_login(&s, &mut jar, "ann", PW, None).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(html.contains("Too many failed logins from your network address"), "{html}");
    // A session already open is not affected.
    assert_eq!(whoami(&s, &live.header()).await.status(), 200);
}

/// Headers and body of a response, with what naturally varies (date, fresh
/// cookie values, the remaining seconds) normalised.
async fn shape(r: reqwest::Response) -> (u16, BTreeMap<String, String>, String) {
    let status = r.status().as_u16();
    let mut headers = BTreeMap::new();
    for (name, value) in r.headers() {
        let v = value.to_str().unwrap().to_string();
        let v = match name.as_str() {
            "date" => "<date>".to_string(),
            "retry-after" => "<seconds>".to_string(),
            "set-cookie" => {
                let (n, _, attrs) = parse_set_cookie(&v);
                format!("{n}=<value>; {}", attrs.join("; "))
            }
            _ => v,
        };
        headers
            .entry(name.as_str().to_string())
            .and_modify(|e: &mut String| e.push_str(&format!(" | {v}")))
            .or_insert(v);
    }
    (status, headers, r.text().await.unwrap())
}

#[tokio::test]
async fn unknown_names_get_exactly_the_answers_of_known_ones() {
    let s = Server::start(&["--max-failed-logins", "3", "--lockout", "60s"]);
    s.add_user("ann", PW, &[]);
    let c = s.bare_client();

    // A wrong password and an unknown name: the same 401, header for header.
    let known = shape(s.login(&c, "ann", WRONG).await).await;
    let unknown = shape(s.login(&c, "nobody", WRONG).await).await;
    assert_eq!(known.0, 401);
    assert_eq!(known, unknown, "a 401 tells known names from unknown ones");

    // After N failures an unknown name is challenged too (a phantom lockout),
    // with the same 403.
    fail_n(&s, "ann", 2).await;
    fail_n(&s, "nobody", 2).await;
    let r_known = s.login(&c, "ann", PW).await;
    let r_unknown = s.login(&c, "nobody", PW).await;
    let (rk, ru) = (header(&r_known, "retry-after"), header(&r_unknown, "retry-after"));
    let (known, unknown) = (shape(r_known).await, shape(r_unknown).await);
    assert_eq!(known.0, 403);
    assert_eq!(known, unknown, "a 403 tells known names from unknown ones");
    let (rk, ru): (i64, i64) = (rk.unwrap().parse().unwrap(), ru.unwrap().parse().unwrap());
    assert!((rk - ru).abs() <= 1, "Retry-After {rk} vs {ru}");

    // A name that is not even valid behaves the same.
    fail_n(&s, "no such user!", 3).await;
    assert_denied(&s, api(&s, "no such user!", PW).await).await;

    // The login page offers an unknown name a puzzle as well.
    let mut jar = Jar::default();
    let (status, _, html) = page_login(&s, &mut jar, "nobody", PW, None).await;
    assert_eq!(status, 403);
    assert!(hidden_value(&html, "pow_challenge").is_some(), "no puzzle for an unknown name:\n{html}");
}

/// Opens `/login.jsp` if `jar` holds no XSRF token yet, then posts the form
/// with that token (read from the `atlassian.xsrf.token` cookie), optionally
/// with a puzzle and its solution. Returns the status, headers and page.
async fn page_login(
    s: &Server,
    jar: &mut Jar,
    user: &str,
    password: &str,
    pow: Option<(&str, &str)>,
) -> (u16, reqwest::header::HeaderMap, String) {
    if jar.xsrf.is_none() {
        let r = get_with(s, "/login.jsp", &jar.header()).await;
        assert_eq!(r.status(), 200);
        jar.apply(&r);
        let html = r.text().await.unwrap();
        assert_eq!(jar.xsrf.as_deref(), Some(page_token(&html).as_str()), "the page's token is the cookie's");
    }
    let token = jar.xsrf.clone().expect("no atlassian.xsrf.token cookie");
    let mut form = vec![("os_username", user), ("os_password", password), ("atl_token", token.as_str())];
    if let Some((challenge, solution)) = pow {
        form.push(("pow_challenge", challenge));
        form.push(("pow_solution", solution));
    }
    let r = post_form(s, "/login.jsp", &jar.header(), &form, &[]).await;
    jar.apply(&r);
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// The puzzle on a login page and its difficulty.
fn puzzle(html: &str) -> (String, u8) {
    let challenge =
        hidden_value(html, "pow_challenge").unwrap_or_else(|| panic!("no puzzle on the page:\n{html}"));
    let at = html.find("data-pow-bits=\"").expect("no data-pow-bits on the form") + 15;
    let bits = html[at..].split('"').next().unwrap().parse().unwrap();
    (challenge, bits)
}

#[tokio::test]
async fn the_login_page_lets_a_person_through_with_a_solved_puzzle_once() {
    let s = Server::start(&["--max-failed-logins", "3", "--lockout", "60s", "--challenge-difficulty", "8"]);
    s.add_user("ann", PW, &[]);
    fail_n(&s, "ann", 3).await;

    // Without a solution the page refuses, shows the puzzle and its solver,
    // and tells a browser without scripts to wait.
    let mut jar = Jar::default();
    let (status, headers, html) = page_login(&s, &mut jar, "ann", PW, None).await;
    assert_eq!(status, 403);
    assert_eq!(headers.get("x-seraph-loginreason").unwrap(), "AUTHENTICATION_DENIED");
    let retry: u64 = headers.get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!((58..=60).contains(&retry), "{retry}");
    let (challenge, bits) = puzzle(&html);
    assert_eq!(bits, 8, "the page asks for --challenge-difficulty bits");
    assert!(html.contains("id=\"pow-status\""), "{html}");
    assert!(html.contains("<noscript>"), "{html}");
    assert!(
        html.contains("Without scripts, wait 1 minutes") || html.contains("Without scripts, wait 60 seconds"),
        "{html}"
    );
    // The one inline script is allowed by its nonce, and nothing else is.
    let csp = headers.get("content-security-policy").unwrap().to_str().unwrap().to_string();
    let nonce =
        csp.split("'nonce-").nth(1).and_then(|n| n.split('\'').next()).expect("no script nonce in the CSP");
    assert!(html.contains(&format!("<script nonce=\"{nonce}\">")), "the solver does not carry the CSP nonce");
    assert!(csp.contains("default-src 'none'"), "{csp}");

    // A wrong solution does not count.
    let wrong = (0u64..)
        .map(|i| i.to_string())
        .find(|c| {
            let d = ring::digest::digest(&ring::digest::SHA256, format!("{challenge}:{c}").as_bytes());
            authd::pow::leading_zero_bits(d.as_ref()) < u32::from(bits)
        })
        .unwrap();
    let (status, _, html) = page_login(&s, &mut jar, "ann", PW, Some((&challenge, &wrong))).await;
    assert_eq!(status, 403, "an unsolved puzzle let the user in");
    // A puzzle is bound to its user: another challenged name cannot use it.
    let (c_other, _) = puzzle(&html);
    fail_n(&s, "bob", 3).await;
    let sol_other = authd::pow::solve(&c_other, bits);
    let (status, _, _) =
        page_login(&s, &mut jar, "bob", "bob's password", Some((&c_other, &sol_other))).await;
    assert_eq!(status, 403, "ann's puzzle was accepted for bob");

    // A solved puzzle plus the right password logs in (303 to /account).
    let solution = authd::pow::solve(&challenge, bits);
    let (status, headers, _) = page_login(&s, &mut jar, "ann", PW, Some((&challenge, &solution))).await;
    assert_eq!(status, 303, "a solved puzzle and the right password should log in");
    assert_eq!(headers.get("location").unwrap(), "/account");
    assert!(jar.session.is_some(), "no session cookie after the page login");
    let r = whoami(&s, &jar.header()).await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["name"], "ann");
    assert_eq!(me["loginInfo"]["failedLoginCount"], 0, "the success resets the count");
    // ... and lifts the challenge: the API takes the password again.
    s.login_ok(&s.bare_client(), "ann", PW).await;

    // Single use: once the account is challenged again, the same solved
    // puzzle is refused; a fresh one works.
    fail_n(&s, "ann", 3).await;
    let mut jar = Jar::default();
    let (status, _, html) = page_login(&s, &mut jar, "ann", PW, Some((&challenge, &solution))).await;
    assert_eq!(status, 403, "a used puzzle was accepted again");
    let (fresh, _) = puzzle(&html);
    assert_ne!(fresh, challenge);

    // A solved puzzle with a wrong password is a failure: it uses the
    // puzzle up and triggers the challenge again (longer), with a new puzzle.
    let fresh_solution = authd::pow::solve(&fresh, bits);
    let (status, _, html) = page_login(&s, &mut jar, "ann", WRONG, Some((&fresh, &fresh_solution))).await;
    assert_eq!(status, 401);
    let (newer, _) = puzzle(&html);
    let retry = assert_denied(&s, api(&s, "ann", PW).await).await;
    assert!((118..=120).contains(&retry), "a failure past a solved puzzle doubles the period: {retry}");
    let (status, _, _) = page_login(&s, &mut jar, "ann", PW, Some((&fresh, &fresh_solution))).await;
    assert_eq!(status, 403, "the puzzle spent on a wrong password was accepted again");
    let newer_solution = authd::pow::solve(&newer, bits);
    let (status, _, _) = page_login(&s, &mut jar, "ann", PW, Some((&newer, &newer_solution))).await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn logins_beyond_the_hash_queue_get_503_with_retry_after_and_checks_go_on() {
    // The pool hashes `cores` passwords at once with 64 more waiting; 160
    // logins at once must overflow it (distinct unknown names, so neither
    // the per-user challenge steps in; the per-address throttle is off).
    let s = Server::start(&[]);
    s.add_user("ann", PW, &[]);
    let live = api_login(&s, "ann", PW, false).await;
    let c = s.bare_client();
    let url = s.at("/rest/auth/1/session");
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..160 {
        let (c, url) = (c.clone(), url.clone());
        logins.spawn(async move {
            let r = c
                .post(url)
                .json(&serde_json::json!({"username": format!("nobody{i}"), "password": WRONG}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = header(&r, "retry-after");
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, retry, body)
        });
    }
    // Session checks answered while the logins queue.
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(whoami(&s, &live.header()).await.status().as_u16());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answers: Vec<(u16, Option<String>, Value)> = logins.join_all().await;
    let busy: Vec<_> = answers.iter().filter(|(status, _, _)| *status == 503).collect();
    let refused = answers.iter().filter(|(status, _, _)| *status == 401).count();
    assert_eq!(
        busy.len() + refused,
        160,
        "only 401 and 503 expected: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(!busy.is_empty(), "160 logins at once never overflowed the hash queue");
    assert!(refused >= 64, "the queue should hold at least 64 logins; {refused} were verified");
    for (_, retry, body) in busy {
        let secs: u64 = retry.as_deref().expect("Retry-After on the 503").parse().unwrap();
        assert!((1..=60).contains(&secs), "Retry-After {secs}");
        assert_jira_error(body);
    }
    assert!(seen.iter().all(|&s| s == 200), "session checks while logins queued: {seen:?}");
    // Once the queue drains, logins are verified again.
    s.login_ok(&c, "ann", PW).await;
}

/// A wrong current password in a password change counts as a failed login:
/// a stolen session cannot guess the password without limit. Once the
/// account demands its challenge, the change is refused unchecked, as the
/// API's logins are; the session itself keeps working (SPEC §3).
#[tokio::test]
async fn wrong_current_passwords_count_as_failed_logins() {
    let s = Server::start(&["--max-failed-logins", "3"]);
    s.add_user("ann", PW, &[]);
    let jar = api_login(&s, "ann", PW, false).await;
    let cookie = jar.header();
    let change = |current: &'static str| change_password(&s, &cookie, current, "ann's new long password");
    for i in 1..=3 {
        let r = change(WRONG).await;
        assert_eq!(r.status(), 403, "guess {i}");
        assert_eq!(header(&r, "x-seraph-loginreason"), None, "guess {i}");
    }
    let r = change(PW).await;
    assert_eq!(r.status(), 403, "the right password after the limit");
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATION_DENIED"));
    assert!(header(&r, "retry-after").is_some());
    assert_jira_error(&r.json().await.unwrap());
    // The password is unchanged, the account's logins demand the challenge,
    // and the session goes on.
    let r = api(&s, "ann", PW).await;
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATION_DENIED"));
    assert_eq!(whoami(&s, &jar.header()).await.status(), 200);
    // Unlocked, the right current password changes it.
    assert!(s.authd(&["user", "unlock", "ann"], None).status.success());
    assert_eq!(change(PW).await.status(), 204);
}

/// The right current password is a success, which resets the count of
/// failures before it (SPEC §3: "A success resets the count").
#[tokio::test]
async fn a_right_current_password_resets_the_count() {
    let s = Server::start(&["--max-failed-logins", "3"]);
    s.add_user("ann", PW, &[]);
    let jar = api_login(&s, "ann", PW, false).await;
    let next = "ann's next long password";
    for _ in 0..2 {
        assert_eq!(change_password(&s, &jar.header(), WRONG, next).await.status(), 403);
    }
    assert_eq!(change_password(&s, &jar.header(), PW, next).await.status(), 204);
    // Two failures more: without the reset the second would find the
    // account demanding its challenge.
    for i in 1..=2 {
        let r = api(&s, "ann", WRONG).await;
        assert_eq!(r.status(), 401, "failure {i} after the change");
    }
    assert_eq!(api(&s, "ann", "ann's next long password").await.status(), 200);
}

/// Guesses sent all at once meet the lockout as the same guesses in a row
/// would: only `--max-failed-logins` of them are checked, the first trigger
/// lasts `--lockout` (not a doubling per guess in flight), and a right
/// password in the burst cannot slip past the lock and clear it. Also
/// through a stolen session's password changes.
#[tokio::test]
async fn a_burst_of_guesses_is_checked_no_more_than_guesses_in_a_row() {
    let s = Server::start(&["--max-failed-logins", "3", "--lockout", "60s"]);
    s.add_user("ann", PW, &[]);
    s.add_user("bob", PW, &[]);
    let burst = |user: &'static str, n: usize, right_at: Option<usize>| {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let (c, url) = (s.bare_client(), s.at("/rest/auth/1/session"));
            let password = if Some(i) == right_at { PW } else { WRONG };
            set.spawn(async move {
                let r = c.post(url).json(&serde_json::json!({"username": user, "password": password}));
                (i, r.send().await.unwrap().status().as_u16())
            });
        }
        set.join_all()
    };
    let failed = logins(&s, "failed").await;
    let answers = burst("ann", 12, None).await;
    let count = |code: u16| answers.iter().filter(|(_, st)| *st == code).count();
    assert_eq!((count(401), count(403)), (3, 9), "12 guesses at once: {answers:?}");
    assert_eq!(logins(&s, "failed").await, failed + 3.0, "more guesses were checked than allowed");
    let retry = assert_denied(&s, api(&s, "ann", PW).await).await;
    assert!(retry <= 60, "Retry-After {retry}: each guess in flight counted as a new trigger");

    // A right password among 12 at once: either it came within the first
    // three (200, and the failures after it count afresh) or it is refused.
    let answers = burst("bob", 12, Some(6)).await;
    let right = answers.iter().find(|(i, _)| *i == 6).unwrap().1;
    let wrong_401 = answers.iter().filter(|(i, st)| *i != 6 && *st == 401).count();
    match right {
        // Fewer than three failures before it, then three afresh.
        200 => assert!((3..=5).contains(&wrong_401), "{answers:?}"),
        403 => assert_eq!(wrong_401, 3, "{answers:?}"),
        other => panic!("the right password got {other}: {answers:?}"),
    }
    assert!(answers.iter().all(|(_, st)| [200, 401, 403].contains(st)), "{answers:?}");
    // Either way at least nine failures followed a success: bob ends locked.
    assert_denied(&s, api(&s, "bob", PW).await).await;
}

/// A login whose password check races a password change or the user's
/// deletion never leaves a session behind that outlives it, and is a plain
/// 401 (never a 404 or 500) when the account changed first.
#[tokio::test]
async fn a_login_racing_a_password_change_or_a_deletion_does_not_outlive_it() {
    let s = Server::start(&[]);
    let admin = api_login(&s, "admin", &s.admin_pw(), false).await;
    let admin = admin.header();
    let statuses = std::sync::Mutex::new(std::collections::BTreeSet::new());
    for round in 0..12 {
        let user = format!("racer{round}");
        s.add_user(&user, PW, &[]);
        let login = async {
            let r = api(&s, &user, PW).await;
            let mut jar = Jar::default();
            jar.apply(&r);
            (r.status().as_u16(), jar)
        };
        let change = async {
            // Stagger the change so that it lands at various points of the check.
            tokio::time::sleep(Duration::from_millis(3 * (round % 6) as u64)).await;
            let c = s.bare_client();
            let url = s.at(&format!("/rest/authd/1/admin/users/{user}{}", ["/password", ""][round % 2]));
            let r = if round % 2 == 0 {
                c.put(url).json(&serde_json::json!({"password": "a brand new password"}))
            } else {
                c.delete(url)
            };
            let r = r.header("cookie", &admin).header("x-atlassian-token", "no-check").send().await.unwrap();
            assert!(r.status().is_success(), "round {round}: {}", r.status());
        };
        let ((status, jar), ()) = tokio::join!(login, change);
        assert!([200, 401].contains(&status), "round {round}: the login got {status}");
        statuses.lock().unwrap().insert(status);
        if status == 200 {
            assert_eq!(
                whoami(&s, &jar.header()).await.status(),
                401,
                "round {round}: a session made with the old password outlived the change"
            );
        }
    }
    eprintln!("login outcomes seen: {:?}", statuses.lock().unwrap());
}

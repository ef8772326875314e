//! A browser's authd cookies held by hand, for the remember-me, XSRF, page
//! and proxy tests: each cookie is a plain value the test can read, drop,
//! keep or replay, and `apply` updates them from a response the way a
//! browser would (a `Max-Age=0` deletes).

#![allow(dead_code)]

use crate::support::*;

pub const SESSION: &str = "JSESSIONID";
pub const REMEMBER: &str = "seraph.rememberme.cookie";
pub const XSRF: &str = "atlassian.xsrf.token";

/// authd's three cookies as one browser holds them.
#[derive(Clone, Debug, Default)]
pub struct Jar {
    pub session: Option<String>,
    pub remember: Option<String>,
    pub xsrf: Option<String>,
}

impl Jar {
    /// Takes in every `Set-Cookie` of authd's cookies in `r`.
    pub fn apply(&mut self, r: &reqwest::Response) {
        for sc in set_cookies(r) {
            let (name, value, attrs) = parse_set_cookie(&sc);
            let deleted = attrs.iter().any(|a| a.eq_ignore_ascii_case("max-age=0"));
            let new = (!deleted).then_some(value);
            match name.as_str() {
                SESSION => self.session = new,
                REMEMBER => self.remember = new,
                XSRF => self.xsrf = new,
                _ => {}
            }
        }
    }

    /// The `Cookie` header this browser sends (empty when it holds nothing).
    pub fn header(&self) -> String {
        [(SESSION, &self.session), (REMEMBER, &self.remember), (XSRF, &self.xsrf)]
            .iter()
            .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n}={v}")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The last `Set-Cookie` for `name` in `r`: the one that decides what a browser keeps.
pub fn last_set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    set_cookies(r).into_iter().rfind(|c| c.starts_with(&format!("{name}=")))
}

/// The value the `Set-Cookie` headers for `name` in `r` leave, if there are any.
pub fn set_value(r: &reqwest::Response, name: &str) -> Option<String> {
    last_set_cookie(r, name).map(|sc| parse_set_cookie(&sc).1)
}

/// The attributes of the last `Set-Cookie` for `name` in `r`, lower-cased, or a panic.
pub fn set_attrs(r: &reqwest::Response, name: &str) -> Vec<String> {
    let sc =
        last_set_cookie(r, name).unwrap_or_else(|| panic!("no Set-Cookie for {name}: {:?}", set_cookies(r)));
    parse_set_cookie(&sc).2.into_iter().map(|a| a.to_ascii_lowercase()).collect()
}

/// The `Max-Age` of the `Set-Cookie` for `name` in `r`, if it has one.
pub fn max_age(r: &reqwest::Response, name: &str) -> Option<u64> {
    set_attrs(r, name).iter().find_map(|a| a.strip_prefix("max-age=")?.parse().ok())
}

/// Whether `r` deletes cookie `name` (`Max-Age=0`).
pub fn deletes(r: &reqwest::Response, name: &str) -> bool {
    last_set_cookie(r, name).is_some() && max_age(r, name) == Some(0)
}

/// Logs in through the API with a cookie-less client, optionally asking to
/// be remembered; returns the cookies the answer set.
pub async fn api_login(s: &Server, user: &str, password: &str, remember: bool) -> Jar {
    let r = login_response(s, user, password, remember).await;
    let mut jar = Jar::default();
    jar.apply(&r);
    assert!(jar.session.is_some(), "no session cookie");
    assert_eq!(jar.remember.is_some(), remember, "remember-me cookie: {:?}", set_cookies(&r));
    assert!(jar.xsrf.is_some(), "no XSRF cookie");
    jar
}

/// Logs in through the API with a cookie-less client and asserts 200; returns the answer.
pub async fn login_response(s: &Server, user: &str, password: &str, remember: bool) -> reqwest::Response {
    let r = s
        .bare_client()
        .post(s.at("/rest/auth/1/session"))
        .json(&serde_json::json!({ "username": user, "password": password, "rememberMe": remember }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login of {user} failed");
    r
}

/// `GET path` sending exactly `cookie` (no jar).
pub async fn get_with(s: &Server, path: &str, cookie: &str) -> reqwest::Response {
    let mut b = s.bare_client().get(s.at(path));
    if !cookie.is_empty() {
        b = b.header("cookie", cookie);
    }
    b.send().await.unwrap()
}

/// `PUT /rest/api/2/myself/password` sending exactly `cookie`.
pub async fn change_password(s: &Server, cookie: &str, current: &str, new: &str) -> reqwest::Response {
    s.bare_client()
        .put(s.at("/rest/api/2/myself/password"))
        .header("cookie", cookie)
        .json(&serde_json::json!({"password": new, "currentPassword": current}))
        .send()
        .await
        .unwrap()
}

/// `GET /rest/auth/1/session` sending exactly `cookie`.
pub async fn whoami(s: &Server, cookie: &str) -> reqwest::Response {
    get_with(s, "/rest/auth/1/session", cookie).await
}

/// `GET /rest/auth/1/session` as `jar`, updating it from the answer; returns the status.
pub async fn whoami_jar(s: &Server, jar: &mut Jar) -> u16 {
    let r = whoami(s, &jar.header()).await;
    jar.apply(&r);
    r.status().as_u16()
}

/// Posts an urlencoded form to `path` sending exactly `cookie` and extra headers.
pub async fn post_form(
    s: &Server,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut b = s
        .bare_client()
        .post(s.at(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(urlencode(form));
    if !cookie.is_empty() {
        b = b.header("cookie", cookie);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.send().await.unwrap()
}

/// The status of a session ID alone, without sliding it.
pub async fn session_alive(s: &Server, id: &str) -> bool {
    let r = s
        .bare_client()
        .get(s.at("/rest/auth/1/session"))
        .header("cookie", format!("{SESSION}={id}"))
        .header("x-authd-passive", "1")
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => true,
        401 => false,
        other => panic!("session check answered {other}"),
    }
}

/// The value of the hidden `atl_token` field in an HTML page.
pub fn page_token(html: &str) -> String {
    hidden_value(html, "atl_token").unwrap_or_else(|| panic!("no atl_token in page:\n{html}"))
}

/// The value of the first `<input ... name="NAME" value="...">` in an HTML page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

/// An `application/x-www-form-urlencoded` body.
pub fn urlencode(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

//! Jira's REST authentication API (SPEC §3): `/rest/auth/1/session`,
//! `/rest/api/2/myself`, `/rest/api/2/user`, `/rest/api/2/serverInfo`.

use super::request::RequestBody;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::app::{no_content, App, Ctx};
use super::request::{
    describe_browser, encode_component, encode_component_into, parse_json, query_pairs, read_body,
    require_json, LOGIN_BODY_LIMIT,
};
use super::response::{json, json_str, json_str_content, with_body, ApiError, Body};
use crate::admin::AdminError;
use crate::auth::{LoggedIn, LoginContext, LoginError};
use crate::clock::Timestamp;
use crate::store::{LoginStats, User};
use crate::token::{RememberToken, SessionId};

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    /// `null` counts as absent (clients that send every field).
    #[serde(default, rename = "rememberMe")]
    remember_me: Option<bool>,
}

/// `POST /rest/auth/1/session`: log in.
pub async fn login(app: &App, req: Request<RequestBody>, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    require_json(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, LOGIN_BODY_LIMIT).await?;
    let body: LoginBody = parse_json(&bytes)?;
    let login_ctx = login_context(ctx, body.remember_me.unwrap_or(false));
    match app.auth.login(&body.username, &body.password, login_ctx).await {
        Ok(done) => {
            app.apply_login(ctx, &done);
            let value = done.id.to_cookie_value();
            let body = LoginAnswer {
                session: SessionRef { name: &app.cookie_names.session, value: &value },
                login_info: LoginInfo::of(&done.user.logins),
            };
            let mut r = json(StatusCode::OK, &body);
            // As the login page's answer, and Seraph's on a login.
            r.headers_mut().insert("x-seraph-loginreason", HeaderValue::from_static("OK"));
            Ok(r)
        }
        Err(e) => Err(login_error(e, app.base(ctx), app.auth.now())),
    }
}

/// The login context of a request: what it carried, who it is from.
pub fn login_context(ctx: &Ctx, remember: bool) -> LoginContext {
    LoginContext {
        replaces: ctx.cookies.session_ids.iter().map(SessionId::key).collect(),
        replaces_series: ctx
            .cookies
            .remember
            .iter()
            .filter_map(|v| RememberToken::parse(v))
            .map(|t| t.selector)
            .collect(),
        address: Some(ctx.peer.ip()),
        browser: describe_browser(ctx.user_agent()),
        remember,
        challenge: None,
    }
}

/// The API answer for a failed login (SPEC §3).
pub fn login_error(e: LoginError, base: &str, now: Timestamp) -> ApiError {
    match e {
        LoginError::Denied { until, .. } => ApiError::new(
            StatusCode::FORBIDDEN,
            "Login denied: too many failed logins. Log in through the login page, or try again later.",
        )
        .header("x-seraph-loginreason", "AUTHENTICATION_DENIED")
        .header("x-authentication-denied-reason", &format!("CAPTCHA_CHALLENGE; login-url={base}/login.jsp"))
        .header("retry-after", &retry_after(until, now).to_string()),
        LoginError::Throttled { until } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins from your address; try again later.",
        )
        .header("retry-after", &retry_after(until, now).to_string()),
        LoginError::BadCredentials => ApiError::new(StatusCode::UNAUTHORIZED, "Login failed")
            .header("x-seraph-loginreason", "AUTHENTICATED_FAILED")
            .header("www-authenticate", super::response::CHALLENGE),
        LoginError::Unverified => ApiError::new(
            StatusCode::CONFLICT,
            "Your email address has not been verified. Open the verification link sent to you, then log in again.",
        ),
        LoginError::Busy => ApiError::unavailable("Too many logins at once; try again shortly.", 1),
        LoginError::Store(e) => e.into(),
    }
}

/// `GET /rest/auth/1/session`: who am I.
pub async fn current(app: &App, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let a = app.require_session(ctx).await?;
    let body = current_json(app.base_parts(ctx), &a.user);
    Ok(with_body(StatusCode::OK, "application/json", body))
}

/// The answer to "who am I", written directly: this is the hottest answer
/// authd gives. The result is the same JSON `serde_json` makes of
/// [`CurrentUser`] (a unit test holds the two together); escaping is still
/// applied to every string that could need it. `base` is the base URL in
/// two pieces (see [`App::base_parts`]), so it is never put together.
pub(super) fn current_json((scheme, host): (&str, &str), u: &User) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(160 + host.len() + 4 * u.name.len());
    out.extend_from_slice(b"{\"self\":\"");
    json_str_content(&mut out, scheme);
    json_str_content(&mut out, host);
    out.extend_from_slice(SELF_PATH.as_bytes());
    // Percent-encoded: letters, digits, `-._~` and `%`, nothing JSON escapes.
    encode_component_into(&mut out, &u.name);
    out.extend_from_slice(b"\",\"name\":");
    json_str(&mut out, &u.name);
    let l = &u.logins;
    out.extend_from_slice(b",\"loginInfo\":{\"failedLoginCount\":");
    push_decimal(&mut out, u64::from(l.failed_count));
    out.extend_from_slice(b",\"loginCount\":");
    push_decimal(&mut out, l.login_count);
    for (key, t) in [("lastFailedLoginTime", l.last_failed), ("previousLoginTime", l.previous_login)] {
        if let Some(t) = t {
            // Writing into a Vec cannot fail.
            let _ = write!(out, ",\"{key}\":\"{}\"", t.to_iso8601());
        }
    }
    out.extend_from_slice(b"}}");
    out
}

/// Appends `n` in decimal (what `write!` does, without the formatting machinery).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let start = out.len();
    loop {
        out.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if let Some(digits) = out.get_mut(start..) {
        digits.reverse();
    }
}

/// `DELETE /rest/auth/1/session`: log out; the session and this browser's
/// remember-me series end.
pub async fn logout(app: &App, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let a = app.require_session(ctx).await?;
    let series: Vec<_> =
        ctx.cookies.remember.iter().filter_map(|v| RememberToken::parse(v)).map(|t| t.selector).collect();
    app.auth.logout(&a.user, a.session.map(|s| s.key), &series).await?;
    app.apply_logout(ctx);
    Ok(no_content())
}

/// `GET /rest/api/2/myself`.
pub async fn myself(app: &App, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let a = app.require_session(ctx).await?;
    Ok(json(StatusCode::OK, &user_json(app.base(ctx), &a.user)))
}

#[derive(Deserialize)]
struct PasswordChange {
    password: String,
    #[serde(rename = "currentPassword")]
    current_password: String,
}

/// `PUT /rest/api/2/myself/password` (Jira's): change your own password.
/// Every other session and remember-me series ends; this one gets a new ID.
pub async fn change_password(
    app: &App,
    req: Request<RequestBody>,
    ctx: &mut Ctx,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let who = app.require_session(ctx).await?;
    require_json(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, LOGIN_BODY_LIMIT).await?;
    let change: PasswordChange = parse_json(&bytes)?;
    let changed = app.auth.change_own_password(
        &who.user,
        who.session.as_ref(),
        &change.current_password,
        change.password,
    );
    let rotated = match changed.await {
        Err(AdminError::Challenged(until)) => {
            let subject = crate::pow::Pow::subject(&who.user.name);
            return Err(login_error(LoginError::Denied { until, subject }, app.base(ctx), app.auth.now()));
        }
        other => other?,
    };
    if let Some((id, session)) = rotated {
        let done = LoggedIn { id, user: who.user, session, remember: None };
        app.apply_login(ctx, &done);
    }
    Ok(no_content())
}

/// `GET /rest/api/2/user?username=NAME` (the target of `self` links).
pub async fn user(app: &App, query: Option<&str>, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    app.require_session(ctx).await?;
    let pairs = query_pairs(query)?;
    let name = pairs
        .iter()
        .find(|(k, _)| k == "username" || k == "key")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::bad_request("The username query parameter is required."))?;
    match app.auth.store.user_by_name(name).await? {
        Some(u) => Ok(json(StatusCode::OK, &user_json(app.base(ctx), &u))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("The user named '{name}' does not exist"))),
    }
}

/// `GET /rest/api/2/serverInfo`, public, so stock Jira clients can connect.
pub async fn server_info(app: &App, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    app.identify(ctx).await?;
    let version = env!("CARGO_PKG_VERSION");
    let numbers: Vec<u64> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    let body = json!({
        "baseUrl": app.base(ctx),
        "version": version,
        "versionNumbers": numbers,
        "deploymentType": "Server",
        "buildNumber": 1,
        "serverTime": app.auth.now().to_iso8601(),
        "scmInfo": "",
        "serverTitle": "authd",
    });
    Ok(json(StatusCode::OK, &body))
}

/// Whole seconds from `now` until `until`, at least one.
pub fn retry_after(until: Timestamp, now: Timestamp) -> u64 {
    until.since(now).as_millis().div_ceil(1000).max(1).try_into().unwrap_or(u64::MAX)
}

/// Where Jira's `self` link to a user points, after the base URL.
const SELF_PATH: &str = "/rest/api/2/user?username=";

fn self_link(base: &str, name: &str) -> String {
    let mut link = String::with_capacity(base.len() + 32 + name.len());
    link.push_str(base);
    link.push_str(SELF_PATH);
    link.push_str(&encode_component(name));
    link
}

fn user_json<'u>(base: &str, u: &'u User) -> UserJson<'u> {
    UserJson {
        self_link: self_link(base, &u.name),
        name: &u.name,
        key: crate::store::name_key(&u.name),
        email_address: u.email.as_deref().unwrap_or(""),
        display_name: &u.name,
        active: true,
    }
}

/// Jira's user object (`/myself`, `/user`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserJson<'a> {
    #[serde(rename = "self")]
    self_link: String,
    name: &'a str,
    key: String,
    email_address: &'a str,
    display_name: &'a str,
    active: bool,
}

/// The answer to a login.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginAnswer<'a> {
    session: SessionRef<'a>,
    login_info: LoginInfo,
}

#[derive(Serialize)]
struct SessionRef<'a> {
    name: &'a str,
    value: &'a str,
}

/// The answer to "who am I" (what [`current_json`] writes by hand).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CurrentUser<'a> {
    #[serde(rename = "self")]
    self_link: String,
    name: &'a str,
    login_info: LoginInfo,
}

/// Jira's `loginInfo` object; times are absent when unknown.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginInfo {
    failed_login_count: u32,
    login_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_failed_login_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_login_time: Option<String>,
}

impl LoginInfo {
    fn of(l: &LoginStats) -> Self {
        // (also used by the `CurrentUser` test twin of `current_json`)
        LoginInfo {
            failed_login_count: l.failed_count,
            login_count: l.login_count,
            last_failed_login_time: l.last_failed.map(Timestamp::to_iso8601),
            previous_login_time: l.previous_login.map(Timestamp::to_iso8601),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::User;

    fn user(name: &str, logins: LoginStats) -> User {
        User {
            id: 1,
            name: name.into(),
            email: None,
            email_verified: true,
            admin: false,
            password_hash: String::new(),
            created: Timestamp(1),
            logins,
            epoch: 0,
        }
    }

    #[test]
    fn the_hand_written_who_am_i_is_what_serde_writes() {
        let stats = LoginStats {
            login_count: 3,
            failed_count: 1,
            total_failed_count: 2,
            last_failed: Some(Timestamp(1_700_000_000_123)),
            last_login: Some(Timestamp(1_700_000_100_000)),
            previous_login: Some(Timestamp(1_700_000_050_000)),
        };
        for (name, logins) in [("admin", LoginStats::default()), ("jürgen.o'neil+x@example.com", stats)] {
            let u = user(name, logins);
            let base = "https://localhost:8443";
            let serde = serde_json::to_vec(&CurrentUser {
                self_link: self_link(base, &u.name),
                name: &u.name,
                login_info: LoginInfo::of(&u.logins),
            })
            .unwrap();
            let split = base.split_at("https://".len());
            assert_eq!(
                String::from_utf8(current_json(split, &u)).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }

    #[test]
    fn decimals_are_written_as_format_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }
}

//! Jira's REST authentication API (SPEC §3): `/rest/auth/1/session`,
//! `/rest/api/2/myself`, `/rest/api/2/user`, `/rest/api/2/serverInfo`.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::app::{no_content, App, Ctx};
use super::request::{
    describe_browser, encode_component, parse_json, query_pairs, read_body, require_json, LOGIN_BODY_LIMIT,
};
use super::response::{json, ApiError, Body};
use crate::auth::{LoggedIn, LoginContext, LoginError};
use crate::clock::Timestamp;
use crate::store::{LoginStats, User};
use crate::token::{RememberToken, SessionId};

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default, rename = "rememberMe")]
    remember_me: bool,
}

/// `POST /rest/auth/1/session`: log in.
pub async fn login(app: &App, req: Request<Incoming>, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    require_json(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, LOGIN_BODY_LIMIT).await?;
    let body: LoginBody = parse_json(&bytes)?;
    let login_ctx = login_context(ctx, body.remember_me);
    match app.auth.login(&body.username, &body.password, login_ctx).await {
        Ok(done) => {
            app.apply_login(ctx, &done);
            let body = json!({
                "session": { "name": app.cookie_names.session, "value": done.id.to_cookie_value() },
                "loginInfo": login_info(&done.user.logins),
            });
            Ok(json(StatusCode::OK, &body))
        }
        Err(e) => Err(login_error(e, &ctx.base, app.auth.now())),
    }
}

/// The login context of a request: what it carried, who it is from.
pub fn login_context(ctx: &Ctx, remember: bool) -> LoginContext {
    LoginContext {
        replaces: ctx.cookies.session.iter().filter_map(|v| SessionId::parse(v)).map(|id| id.key()).collect(),
        replaces_series: ctx
            .cookies
            .remember
            .iter()
            .filter_map(|v| RememberToken::parse(v))
            .map(|t| t.selector)
            .collect(),
        address: Some(ctx.peer.ip()),
        browser: describe_browser(&ctx.user_agent),
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
            .header("www-authenticate", "JIRA REST POST"),
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
    let body = json!({
        "self": self_link(&ctx.base, &a.user.name),
        "name": a.user.name,
        "loginInfo": login_info(&a.user.logins),
    });
    Ok(json(StatusCode::OK, &body))
}

/// `DELETE /rest/auth/1/session`: log out; the session and this browser's
/// remember-me series end.
pub async fn logout(app: &App, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let a = app.require_session(ctx).await?;
    let series: Vec<_> =
        ctx.cookies.remember.iter().filter_map(|v| RememberToken::parse(v)).map(|t| t.selector).collect();
    app.auth.logout(&a.user, a.session.map(|s| s.key), &series).await?;
    app.apply_logout(ctx);
    let mut resp = no_content();
    resp.headers_mut().insert("x-seraph-loginreason", hyper::header::HeaderValue::from_static("OUT"));
    Ok(resp)
}

/// `GET /rest/api/2/myself`.
pub async fn myself(app: &App, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let a = app.require_session(ctx).await?;
    Ok(json(StatusCode::OK, &user_json(&ctx.base, &a.user)))
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
    req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let who = app.require_session(ctx).await?;
    require_json(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, LOGIN_BODY_LIMIT).await?;
    let change: PasswordChange = parse_json(&bytes)?;
    let rotated = app
        .auth
        .change_own_password(&who.user, who.session.as_ref(), &change.current_password, change.password)
        .await?;
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
        Some(u) => Ok(json(StatusCode::OK, &user_json(&ctx.base, &u))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("The user named '{name}' does not exist"))),
    }
}

/// `GET /rest/api/2/serverInfo`, public, so stock Jira clients can connect.
pub async fn server_info(app: &App, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    app.identify(ctx).await?;
    let version = env!("CARGO_PKG_VERSION");
    let numbers: Vec<u64> = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    let body = json!({
        "baseUrl": ctx.base,
        "version": version,
        "versionNumbers": numbers,
        "deploymentType": "Server",
        "buildNumber": 1,
        "serverTime": app.auth.now().to_jira_string(),
        "scmInfo": "",
        "serverTitle": "authd",
    });
    Ok(json(StatusCode::OK, &body))
}

/// Whole seconds from `now` until `until`, at least one.
pub fn retry_after(until: Timestamp, now: Timestamp) -> u64 {
    until.since(now).as_millis().div_ceil(1000).max(1).try_into().unwrap_or(u64::MAX)
}

fn self_link(base: &str, name: &str) -> String {
    format!("{base}/rest/api/2/user?username={}", encode_component(name))
}

fn user_json(base: &str, u: &User) -> Value {
    json!({
        "self": self_link(base, &u.name),
        "name": u.name,
        "key": crate::store::name_key(&u.name),
        "emailAddress": u.email.clone().unwrap_or_default(),
        "displayName": u.name,
        "active": true,
    })
}

/// Jira's `loginInfo` object; times are absent when unknown.
fn login_info(l: &LoginStats) -> Value {
    let mut m = Map::new();
    m.insert("failedLoginCount".into(), l.failed_count.into());
    m.insert("loginCount".into(), l.login_count.into());
    if let Some(t) = l.last_failed {
        m.insert("lastFailedLoginTime".into(), t.to_jira_string().into());
    }
    if let Some(t) = l.previous_login {
        m.insert("previousLoginTime".into(), t.to_jira_string().into());
    }
    Value::Object(m)
}

//! The admin API, `/rest/authd/1/admin/...` (SPEC §9), used by
//! administrators' browsers and scripts and by the CLI when a running
//! server holds the data directory.
//!
//! Who may call it: the local CLI (bearer credential from the data dir), or
//! a logged-in user with the `admin` role. Anyone else logged in gets 403
//! `AUTHORISATION_FAILED`; anonymous callers get 401.
//!
//! ```text
//! GET    admin/users                    list users
//! POST   admin/users                    add {name,password,email?,admin?,unverified?}
//! GET    admin/users/NAME               one user
//! DELETE admin/users/NAME               delete (and end their sessions)
//! POST   admin/users/NAME/verify        mark the email address verified
//! POST   admin/users/NAME/unlock        clear failed logins
//! PUT    admin/users/NAME/password      {password}; ends all their sessions
//! PUT    admin/users/NAME/roles         {roles: ["admin"] or []}; sessions move to new IDs
//! DELETE admin/users/NAME/sessions      sign out everywhere
//! GET    admin/users/NAME/tokens        list a user's API tokens
//! POST   admin/users/NAME/tokens        {label?} → 201 with the token, shown once
//! DELETE admin/tokens/ID                revoke an API token
//! GET    admin/sessions[?user=NAME]     list sessions (handles only)
//! DELETE admin/sessions/HANDLE          end one session
//! ```

use super::request::RequestBody;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::app::{allows, no_content, not_allowed, App, Ctx};
use super::request::{decode_component, parse_json, query_pairs, read_body, require_json};
use super::response::{json, ApiError, Body};
use crate::admin::{AddToken, AddUser, UserView};
use crate::auth::Authenticated;

/// Largest admin request body.
const ADMIN_BODY_LIMIT: usize = 16 * 1024;

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

#[derive(Deserialize)]
struct RolesBody {
    roles: Vec<String>,
}

/// Routes one admin request; `rest` is the path after `admin/`.
pub async fn handle(
    app: &App,
    req: Request<RequestBody>,
    ctx: &mut Ctx,
    rest: &[String],
) -> Result<Response<Body>, ApiError> {
    if let Some(allow) = allowed(rest) {
        if !allows(allow, req.method()) {
            return Err(not_allowed(allow));
        }
    }
    authorize(app, ctx).await?;
    let unsafe_method = crate::xsrf::is_unsafe(req.method());
    let answer = route(app, req, rest).await?;
    // An admin who ended their own session (signing themselves out, deleting
    // or resetting themselves, ending it by handle) is logged out here too.
    if unsafe_method {
        if let Some(Authenticated { session: Some(s), .. }) = app.identify(ctx).await? {
            if app.auth.store.session(s.key).await?.is_none() {
                app.apply_logout(ctx);
            }
        }
    }
    Ok(answer)
}

async fn route(app: &App, req: Request<RequestBody>, rest: &[String]) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let name = match rest.get(1) {
        Some(raw) => Some(
            decode_component(raw.as_bytes(), false)
                .ok_or_else(|| ApiError::bad_request("Bad percent-encoding in the path."))?,
        ),
        None => None,
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let auth = &app.auth;
    match (method, rest.as_slice(), name.as_deref()) {
        (Method::GET, ["users"], _) => Ok(json(StatusCode::OK, &auth.list_users().await?)),
        (Method::POST, ["users"], _) => {
            let body: AddUser = read_json(req).await?;
            Ok(json(StatusCode::CREATED, &auth.add_user(body).await?))
        }
        (Method::GET, ["users", _], Some(n)) => {
            Ok(json(StatusCode::OK, &UserView::from(&auth.find_user(n).await?)))
        }
        (Method::DELETE, ["users", _], Some(n)) => {
            auth.delete_user(n).await?;
            Ok(no_content())
        }
        (Method::POST, ["users", _, "verify"], Some(n)) => {
            Ok(json(StatusCode::OK, &UserView::from(&auth.verify_email(n).await?)))
        }
        (Method::POST, ["users", _, "unlock"], Some(n)) => {
            Ok(json(StatusCode::OK, &UserView::from(&auth.unlock(n).await?)))
        }
        (Method::PUT, ["users", _, "password"], Some(n)) => {
            let body: PasswordBody = read_json(req).await?;
            auth.set_password(n, body.password, None).await?;
            Ok(no_content())
        }
        (Method::PUT, ["users", _, "roles"], Some(n)) => {
            let body: RolesBody = read_json(req).await?;
            let admin = match body.roles.as_slice() {
                [] => false,
                [r] if r == "admin" => true,
                _ => return Err(ApiError::bad_request("roles must be [] or [\"admin\"]")),
            };
            Ok(json(StatusCode::OK, &UserView::from(&auth.set_admin(n, admin).await?)))
        }
        (Method::DELETE, ["users", _, "sessions"], Some(n)) => {
            let revoked = auth.revoke_user(n).await?;
            Ok(json(StatusCode::OK, &json!({ "revoked": revoked })))
        }
        (Method::GET, ["users", _, "tokens"], Some(n)) => {
            Ok(json(StatusCode::OK, &auth.list_tokens(&auth.find_user(n).await?).await?))
        }
        (Method::POST, ["users", _, "tokens"], Some(n)) => {
            let user = auth.find_user(n).await?;
            let (parts, body) = req.into_parts();
            require_json(&parts.headers)?;
            let bytes = read_body(&parts.headers, body, ADMIN_BODY_LIMIT).await?;
            let add: AddToken = if bytes.iter().all(u8::is_ascii_whitespace) {
                AddToken::default()
            } else {
                parse_json(&bytes)?
            };
            Ok(json(StatusCode::CREATED, &auth.add_token(&user, &add.label).await?))
        }
        (Method::DELETE, ["tokens", id], _) => {
            auth.revoke_token(id, None).await?;
            Ok(no_content())
        }
        (Method::GET, ["sessions"], _) => {
            let q = query_pairs(req.uri().query())?;
            let user = q.iter().find(|(k, _)| k == "user").map(|(_, v)| v.as_str());
            Ok(json(StatusCode::OK, &auth.list_sessions(user).await?))
        }
        (Method::DELETE, ["sessions", handle], _) => {
            auth.revoke_handle(handle).await?;
            Ok(no_content())
        }
        // (A known path with another method was refused by `handle`.)
        _ => Err(ApiError::not_found()),
    }
}

/// The methods an admin path takes (for 405's `Allow`), or `None` for a
/// path that is not one.
fn allowed(rest: &[String]) -> Option<&'static str> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    Some(match rest.as_slice() {
        ["users"] | ["users", _, "tokens"] => "GET, HEAD, POST",
        ["users", _] => "GET, HEAD, DELETE",
        ["users", _, "verify" | "unlock"] => "POST",
        ["users", _, "password" | "roles"] => "PUT",
        ["users", _, "sessions"] | ["sessions", _] | ["tokens", _] => "DELETE",
        ["sessions"] => "GET, HEAD",
        _ => return None,
    })
}

async fn authorize(app: &App, ctx: &mut Ctx) -> Result<(), ApiError> {
    if app.is_local_admin(ctx) {
        ctx.user = Some("authd-cli".to_string());
        return Ok(());
    }
    let a = app.require_session(ctx).await?;
    if a.user.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden_role())
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<RequestBody>) -> Result<T, ApiError> {
    let (parts, body) = req.into_parts();
    require_json(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, ADMIN_BODY_LIMIT).await?;
    parse_json(&bytes)
}

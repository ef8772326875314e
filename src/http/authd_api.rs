//! authd's own REST API beside Jira's (SPEC §9): forward auth, your own
//! sessions, your own API tokens.
//!
//! ```text
//! GET    /rest/authd/1/verify              forward auth: 200 + identity headers, or 401
//! GET    /rest/authd/1/sessions            your sessions (handles, never IDs)
//! DELETE /rest/authd/1/sessions/HANDLE     end one of them
//! DELETE /rest/authd/1/sessions            end all of them (every device)
//! GET    /rest/authd/1/tokens              your API tokens (ids and labels)
//! POST   /rest/authd/1/tokens              {label} → 201 with the token, shown once
//! DELETE /rest/authd/1/tokens/ID           revoke one
//! ```

use super::request::RequestBody;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use super::app::{allows, no_content, not_allowed, xsrf_failed, App, Ctx};
use super::pages::safe_destination;
use super::proxy::insert_identity;
use super::request::{encode_component, parse_json, read_body, require_json};
use super::response::{json, json_str, with_body, ApiError, Body};
use crate::admin::{roles, AddToken};
use crate::token::Handle;
use crate::xsrf;

/// Largest body of a token request.
const BODY_LIMIT: usize = 16 * 1024;

/// `GET /rest/authd/1/verify`: forward auth for nginx `auth_request`, Caddy
/// `forward_auth` and Traefik ForwardAuth. The original request is
/// described by `X-Forwarded-Method` and `X-Forwarded-Uri` (or nginx's
/// `X-Original-URI`); an unsafe original method from a foreign origin is
/// refused (the proxies copy `Origin` and `Sec-Fetch-Site`; the original
/// host comes from `X-Forwarded-Host`/`-Proto` when the proxy sends them). Remember-me
/// logins are not done here: the proxies do not pass `Set-Cookie` from a
/// successful check back to the browser, and a rotated cookie that never
/// arrives would look like theft. A 401 carries `X-Authd-Login-Url`.
pub async fn verify(
    app: &App,
    req: &Request<RequestBody>,
    ctx: &mut Ctx,
) -> Result<Response<Body>, ApiError> {
    let h = req.headers();
    // No header: the proxy checks a GET. A header that is not a method is
    // taken for an unsafe one (the origin rule applies), never for a GET.
    let original_method = match h.get("x-forwarded-method") {
        None => Method::GET,
        Some(v) => Method::from_bytes(v.as_bytes().trim_ascii()).unwrap_or(Method::POST),
    };
    // The original request's own origin is the host the proxy received it
    // on (Traefik and Caddy say so in X-Forwarded-Host/-Proto), not authd's;
    // worked out only where it is used (most checks are a GET let through).
    if xsrf::is_unsafe(&original_method) {
        let forwarded = forwarded_origin(h);
        let own = forwarded.as_deref().unwrap_or_else(|| app.base(ctx));
        if !app.origin_ok_for(ctx, own) {
            return Err(xsrf_failed());
        }
    }
    ctx.forward_auth = true;
    let Some(a) = app.identify(ctx).await? else {
        let dest = h
            .get("x-forwarded-uri")
            .or_else(|| h.get("x-original-uri"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .and_then(safe_destination);
        // The login page on the host the browser asked (Traefik calls authd
        // by its own address), unless --base-url names where it lives.
        let forwarded = forwarded_origin(h);
        let base = match (&app.base_url, &forwarded) {
            (None, Some(origin)) => origin.as_str(),
            _ => app.base(ctx),
        };
        let login = match dest {
            Some(d) => format!("{base}/login.jsp?os_destination={}", encode_component(&d)),
            None => format!("{base}/login.jsp"),
        };
        let e = if ctx.cookies.session.is_empty() {
            ApiError::unauthenticated()
        } else {
            ApiError::session_expired()
        };
        return Err(e.header("x-authd-login-url", &login));
    };
    let body = verify_json(&a.user.name, roles(&a.user));
    let mut r = with_body(StatusCode::OK, "application/json", body);
    insert_identity(r.headers_mut(), &a.user);
    Ok(r)
}

/// `X-Forwarded-Proto`://`X-Forwarded-Host` of a forward-auth check (the
/// scheme `https` unless `http` is named), if the host is a plain host and
/// port.
fn forwarded_origin(h: &hyper::HeaderMap) -> Option<String> {
    let host = h.get("x-forwarded-host")?.to_str().ok()?.trim();
    if !super::app::valid_authority(host) {
        return None;
    }
    let proto = h.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).map(str::trim);
    let scheme = if proto.is_some_and(|p| p.eq_ignore_ascii_case("http")) { "http" } else { "https" };
    Some(format!("{scheme}://{host}"))
}

/// `{"name": .., "roles": [..]}`, the answer to every request behind the
/// proxy, so written directly; the same JSON serde makes (see the test).
pub(super) fn verify_json(name: &str, roles: &[&str]) -> Vec<u8> {
    let mut body = Vec::with_capacity(32 + 2 * name.len());
    body.extend_from_slice(b"{\"name\":");
    json_str(&mut body, name);
    body.extend_from_slice(b",\"roles\":[");
    for (i, role) in roles.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        json_str(&mut body, role);
    }
    body.extend_from_slice(b"]}");
    body
}

/// One of your sessions.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnSession {
    handle: String,
    created: String,
    last_used: String,
    address: Option<String>,
    browser: String,
    current: bool,
}

/// `/rest/authd/1/sessions[/HANDLE]`.
pub async fn sessions(
    app: &App,
    method: &Method,
    ctx: &mut Ctx,
    handle: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let allow = if handle.is_none() { "GET, HEAD, DELETE" } else { "DELETE" };
    if !allows(allow, method) {
        return Err(not_allowed(allow));
    }
    let who = app.require_session(ctx).await?;
    let current = who.session.as_ref().map(|s| s.key);
    let mine = app.auth.store.sessions_of(who.user.id).await?;
    match (method, handle) {
        (&Method::GET, None) => {
            let list: Vec<OwnSession> = mine
                .iter()
                .map(|(k, s)| OwnSession {
                    handle: k.handle().to_string(),
                    created: s.created.to_iso8601(),
                    last_used: s.last_use.to_iso8601(),
                    address: s.address.map(|a| a.to_string()),
                    browser: s.browser.clone(),
                    current: Some(*k) == current,
                })
                .collect();
            Ok(json(StatusCode::OK, &list))
        }
        (&Method::DELETE, None) => {
            let n = app.auth.store.revoke_all_of(who.user.id, None).await?;
            tracing::info!(user = %who.user.name, sessions = n, "signed out on every device");
            if current.is_some() {
                app.apply_logout(ctx);
            }
            Ok(no_content())
        }
        (&Method::DELETE, Some(h)) => {
            let no_such =
                || ApiError::new(StatusCode::NOT_FOUND, format!("You have no session with handle '{h}'."));
            let handle = Handle::parse(h).ok_or_else(no_such)?;
            let key = mine.iter().map(|(k, _)| *k).find(|k| handle.matches(k)).ok_or_else(no_such)?;
            app.auth.end_session(key).await?;
            if Some(key) == current {
                app.apply_logout(ctx);
            }
            Ok(no_content())
        }
        _ => Err(not_allowed(allow)),
    }
}

/// `/rest/authd/1/tokens[/ID]`.
pub async fn tokens(
    app: &App,
    req: Request<RequestBody>,
    ctx: &mut Ctx,
    id: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let allow = if id.is_none() { "GET, HEAD, POST" } else { "DELETE" };
    if !allows(allow, req.method()) {
        return Err(not_allowed(allow));
    }
    let who = app.require_session(ctx).await?;
    match (req.method().clone(), id) {
        (Method::GET, None) => Ok(json(StatusCode::OK, &app.auth.list_tokens(&who.user).await?)),
        (Method::POST, None) => {
            let (parts, body) = req.into_parts();
            require_json(&parts.headers)?;
            let bytes = read_body(&parts.headers, body, BODY_LIMIT).await?;
            let add: AddToken = if bytes.iter().all(u8::is_ascii_whitespace) {
                AddToken::default()
            } else {
                parse_json(&bytes)?
            };
            Ok(json(StatusCode::CREATED, &app.auth.add_token(&who.user, &add.label).await?))
        }
        (Method::DELETE, Some(id)) => {
            app.auth.revoke_token(id, Some(&who.user)).await?;
            Ok(no_content())
        }
        _ => Err(not_allowed(allow)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_verify_answer_is_what_serde_writes() {
        for (name, roles) in
            [("alice", &[][..]), ("jürgen.o'neil \"x\"\\", &["admin"][..]), ("b", &["admin", "ops"][..])]
        {
            let serde = serde_json::to_string(&serde_json::json!({ "name": name, "roles": roles })).unwrap();
            assert_eq!(String::from_utf8(verify_json(name, roles)).unwrap(), serde);
        }
    }
}

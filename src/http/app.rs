//! The request handler: routing, identification, and the headers every
//! response carries (SPEC §3).
//!
//! Handlers record who the request turned out to be in [`Ctx`]; `finish`
//! turns that into `X-AUSERNAME`, `X-ASESSIONID`,
//! `X-Authd-Session-Expires`, `Set-Cookie` and `Cache-Control: no-store`
//! in one place, so no handler can forget them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, HOST, SET_COOKIE, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};

use super::response::{empty, with_body, ApiError, Body};
use super::{admin_api, session_api};
use crate::auth::{Auth, Authenticated};
use crate::clock::Timestamp;
use crate::cookies::{self, CookieNames, RequestCookies};
use crate::metrics::Route;
use crate::token::{ct_eq, AdminCredential, Handle, SessionId};

/// Everything a request handler needs, shared by all connections.
pub struct App {
    /// The authentication service.
    pub auth: Arc<Auth>,
    /// Cookie names (with the configured prefix).
    pub cookie_names: CookieNames,
    /// A fixed public base URL, if configured.
    pub base_url: Option<String>,
    /// The fallback authority when a request has no `Host`.
    pub listen_authority: String,
    /// Hash of the credential the local CLI presents to the admin API.
    pub admin_credential: [u8; 32],
}

/// Per-request state: what was asked, and what the answer must say.
pub struct Ctx {
    /// The client's socket address.
    pub peer: SocketAddr,
    /// authd's cookies in the request.
    pub cookies: RequestCookies,
    /// `https://host[:port]`, for `self` links.
    pub base: String,
    /// `X-Authd-Passive: 1`: authenticate without sliding the idle timer.
    pub passive: bool,
    /// The raw `User-Agent`.
    pub user_agent: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// Who the request is (for `X-AUSERNAME`).
    pub user: Option<String>,
    /// The session in use (for `X-ASESSIONID`).
    pub handle: Option<Handle>,
    /// When that session ends (for `X-Authd-Session-Expires`).
    pub expires: Option<Timestamp>,
    /// Cookies to set.
    pub set_cookies: Vec<String>,
}

impl App {
    /// Answers one request. Never fails: errors become Jira-shaped responses.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let mut ctx = self.context(&req, peer);
        let (route, result) = self.dispatch(req, &mut ctx).await;
        let mut resp = result.unwrap_or_else(ApiError::into_response);
        self.finish(&ctx, &mut resp);
        self.auth.metrics.request(route, resp.status().as_u16(), started.elapsed());
        Ok(resp)
    }

    fn context(&self, req: &Request<Incoming>, peer: SocketAddr) -> Ctx {
        let headers = req.headers();
        let cookies = RequestCookies::parse(
            headers.get_all(hyper::header::COOKIE).iter().map(HeaderValue::as_bytes),
            &self.cookie_names,
        );
        let text = |v: Option<&HeaderValue>| v.and_then(|v| v.to_str().ok()).map(str::to_string);
        Ctx {
            peer,
            cookies,
            base: self.base_url(req),
            passive: headers.get("x-authd-passive").is_some_and(|v| v.as_bytes() == b"1"),
            user_agent: text(headers.get(USER_AGENT)).unwrap_or_default(),
            authorization: text(headers.get(hyper::header::AUTHORIZATION)),
            user: None,
            handle: None,
            expires: None,
            set_cookies: Vec::new(),
        }
    }

    /// `https://` plus the request's authority (or the configured base URL).
    fn base_url(&self, req: &Request<Incoming>) -> String {
        if let Some(b) = &self.base_url {
            return b.clone();
        }
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()).map(str::to_string))
            .filter(|a| valid_authority(a))
            .unwrap_or_else(|| self.listen_authority.clone());
        format!("https://{authority}")
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        ctx: &mut Ctx,
    ) -> (Route, Result<Response<Body>, ApiError>) {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let method = req.method().clone();
        match segments.as_slice() {
            ["rest", "auth", v, "session"] if version(v, "1") => {
                let r = match method {
                    Method::POST => session_api::login(self, req, ctx).await,
                    Method::GET => session_api::current(self, ctx).await,
                    Method::DELETE => session_api::logout(self, ctx).await,
                    _ => Err(not_allowed("GET, POST, DELETE")),
                };
                (Route::Session, r)
            }
            ["rest", "api", v, "myself"] if version(v, "2") => {
                let r = match method {
                    Method::GET => session_api::myself(self, ctx).await,
                    _ => Err(not_allowed("GET")),
                };
                (Route::Myself, r)
            }
            ["rest", "api", v, "user"] if version(v, "2") => {
                let r = match method {
                    Method::GET => session_api::user(self, req.uri().query(), ctx).await,
                    _ => Err(not_allowed("GET")),
                };
                (Route::User, r)
            }
            ["rest", "api", v, "serverInfo"] if version(v, "2") => {
                let r = match method {
                    Method::GET => Ok(session_api::server_info(self, ctx)),
                    _ => Err(not_allowed("GET")),
                };
                (Route::ServerInfo, r)
            }
            ["rest", "authd", v, "admin", rest @ ..] if version(v, "1") => {
                let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                (Route::Admin, admin_api::handle(self, req, ctx, &rest).await)
            }
            ["healthz"] => {
                let r = match method {
                    Method::GET | Method::HEAD => {
                        Ok(with_body(StatusCode::OK, "text/plain; charset=utf-8", "ok"))
                    }
                    _ => Err(not_allowed("GET, HEAD")),
                };
                (Route::Healthz, r)
            }
            ["metrics"] => {
                let r = match method {
                    Method::GET => self.metrics().await,
                    _ => Err(not_allowed("GET")),
                };
                (Route::Metrics, r)
            }
            _ => (Route::Other, Err(ApiError::not_found())),
        }
    }

    async fn metrics(&self) -> Result<Response<Body>, ApiError> {
        let sessions = self.auth.store.session_count().await?;
        let text = self.auth.metrics.render(sessions);
        Ok(with_body(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text))
    }

    /// Identifies the request by its session cookie (the first valid one),
    /// recording the result in `ctx`. `Ok(None)` for anonymous requests.
    pub async fn identify(&self, ctx: &mut Ctx) -> Result<Option<Authenticated>, ApiError> {
        for value in ctx.cookies.session.clone() {
            let Some(id) = SessionId::parse(&value) else { continue };
            if let Some(a) = self.auth.session(&id, ctx.passive).await? {
                ctx.user = Some(a.user.name.clone());
                ctx.handle = Some(a.session.key.handle());
                ctx.expires = Some(a.session.expires);
                return Ok(Some(a));
            }
        }
        Ok(None)
    }

    /// Like [`identify`](Self::identify), but 401 for anonymous requests, with
    /// a message that says whether the cookie was stale, and an expired
    /// cookie cleared.
    pub async fn require_session(&self, ctx: &mut Ctx) -> Result<Authenticated, ApiError> {
        match self.identify(ctx).await? {
            Some(a) => Ok(a),
            None if !ctx.cookies.session.is_empty() => {
                ctx.set_cookies.push(cookies::expire_cookie(&self.cookie_names.session, true));
                Err(ApiError::session_expired())
            }
            None => Err(ApiError::unauthenticated()),
        }
    }

    /// Whether the request carries the local CLI's admin credential.
    pub fn is_local_admin(&self, ctx: &Ctx) -> bool {
        let Some(token) = ctx.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        AdminCredential::parse(token).is_some_and(|c| ct_eq(&c.hash(), &self.admin_credential))
    }

    fn finish(&self, ctx: &Ctx, resp: &mut Response<Body>) {
        let h = resp.headers_mut();
        let user = ctx.user.as_deref().unwrap_or("anonymous");
        if let Ok(v) = HeaderValue::from_str(user) {
            h.insert("x-ausername", v);
        }
        if let Some(handle) = ctx.handle {
            if let Ok(v) = HeaderValue::from_str(&handle.to_string()) {
                h.insert("x-asessionid", v);
            }
        }
        if let Some(t) = ctx.expires {
            h.insert("x-authd-session-expires", HeaderValue::from(t.unix_seconds()));
        }
        for c in &ctx.set_cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                h.append(SET_COOKIE, v);
            }
        }
        h.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    }
}

/// Whether a path segment is the API version `want` or `latest`.
fn version(segment: &str, want: &str) -> bool {
    segment == want || segment == "latest"
}

/// 405 with the allowed methods.
fn not_allowed(allow: &'static str) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed").header("allow", allow)
}

/// A `Host` value safe to echo into links: host characters and a port only.
fn valid_authority(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 255
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'))
}

/// 204 No Content.
pub fn no_content() -> Response<Body> {
    empty(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_accept_latest() {
        assert!(version("1", "1"));
        assert!(version("latest", "1"));
        assert!(!version("2", "1"));
    }

    #[test]
    fn authorities_are_checked_before_echoing() {
        assert!(valid_authority("localhost:8443"));
        assert!(valid_authority("[::1]:8443"));
        assert!(!valid_authority("evil.com/\"><script>"));
        assert!(!valid_authority(""));
    }
}

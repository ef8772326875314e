//! The request handler: routing, identification, the XSRF and origin
//! rules, and the headers every response carries (SPEC §3, §7).
//!
//! Handlers record who the request turned out to be in [`Ctx`]; `finish`
//! turns that into `X-AUSERNAME`, `X-ASESSIONID`,
//! `X-Authd-Session-Expires`, `Set-Cookie` and `Cache-Control: no-store`
//! in one place, so no handler can forget them.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::request::{self, read_body, RequestBody, LOGIN_BODY_LIMIT};
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};

use super::request::describe_browser;
use super::response::{empty, with_body, ApiError, Body};
use super::{admin_api, authd_api, pages, proxy, session_api};
use crate::auth::{Auth, Authenticated, LoggedIn, Lookup, Remembered};
use crate::clock::Timestamp;
use crate::cookies::{self, Attributes, CookieNames, RequestCookies};
use crate::metrics::Route;
use crate::remember;
use crate::token::{ct_eq, AdminCredential, ApiToken, Handle, RememberToken};
use crate::xsrf::{self, State, Xsrf};

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
    /// Origins allowed to make credentialed cross-origin requests.
    pub cors_origins: Vec<String>,
    /// The app behind authd, if any.
    pub upstream: Option<proxy::Upstream>,
    /// Largest request head (request line and headers) answered (SPEC §10:
    /// 16 KiB); up to four times that reaches authd, to be refused with a
    /// Jira-shaped 431, and the HTTP stack refuses anything larger itself.
    pub max_header_bytes: usize,
}

/// Per-request state: what was asked, and what the answer must say.
pub struct Ctx {
    /// The client's socket address.
    pub peer: SocketAddr,
    /// The request method.
    pub method: Method,
    /// authd's cookies in the request.
    pub cookies: RequestCookies,
    /// `https://host[:port]`, for `self` links and the origin check;
    /// worked out on first use (see [`App::base`]).
    base: std::sync::OnceLock<String>,
    /// The request's authority (HTTP/2) or `Host` header (HTTP/1.1).
    authority: Option<HeaderValue>,
    /// The request head's size as HTTP/1.1 would send it.
    head_bytes: usize,
    /// `X-Authd-Passive: 1`: authenticate without sliding the idle timer.
    pub passive: bool,
    /// The request's media type (lower case, no parameters).
    pub media_type: Option<String>,
    /// The headers below, as sent (cloning a value copies no bytes); read
    /// them as text through the methods of the same names.
    user_agent: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
    origin: Option<HeaderValue>,
    sec_fetch_site: Option<HeaderValue>,
    x_atlassian_token: Option<HeaderValue>,
    x_xsrf_token: Option<HeaderValue>,
    /// The identification result, once known.
    identity: Option<Option<Authenticated>>,
    /// Who the request is (for `X-AUSERNAME`).
    pub user: Option<String>,
    /// The session in use (for `X-ASESSIONID`).
    pub handle: Option<Handle>,
    /// When that session ends (for `X-Authd-Session-Expires`).
    pub expires: Option<Timestamp>,
    /// Cookies to set.
    pub set_cookies: Vec<String>,
    /// A new value for the browser's XSRF cookie.
    pub xsrf_out: Option<String>,
    /// Forward auth: the proxy does not pass `Set-Cookie` on to the browser,
    /// so nothing may change a cookie (no remember-me login, no ID rotation).
    pub forward_auth: bool,
    /// The request goes to the app behind the proxy.
    pub proxied: bool,
    /// `Authorization: Basic` was sent and did not match an API token.
    pub basic_failed: bool,
    /// The request was authenticated by an API token.
    pub via_token: bool,
    /// This request logged its browser out (`X-Seraph-LoginReason: OUT`).
    pub logged_out: bool,
    /// Its session cookie names a session that just moved to a new ID this
    /// request may not learn: refused, but the cookie is not cleared.
    pub session_moved: bool,
}

/// Whether a peer at `peer` is this machine: a loopback address, or the
/// address authd listens on (`listen`, as `IP:PORT`).
fn same_host(peer: std::net::IpAddr, listen: &str) -> bool {
    peer.is_loopback() || listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip() == peer)
}

/// A header value as text; `None` if it is not visible ASCII.
fn text(v: &Option<HeaderValue>) -> Option<&str> {
    v.as_ref().and_then(|v| v.to_str().ok())
}

impl Ctx {
    /// The raw `User-Agent` (empty if none).
    pub fn user_agent(&self) -> &str {
        text(&self.user_agent).unwrap_or_default()
    }

    /// The `Authorization` header, if any.
    pub fn authorization(&self) -> Option<&str> {
        text(&self.authorization)
    }

    /// `Origin`.
    pub fn origin(&self) -> Option<&str> {
        text(&self.origin)
    }

    /// `Sec-Fetch-Site`.
    pub fn sec_fetch_site(&self) -> Option<&str> {
        text(&self.sec_fetch_site)
    }

    /// `X-Atlassian-Token`.
    pub fn x_atlassian_token(&self) -> Option<&str> {
        text(&self.x_atlassian_token)
    }

    /// `X-XSRF-Token`.
    pub fn x_xsrf_token(&self) -> Option<&str> {
        text(&self.x_xsrf_token)
    }

    /// `X-Atlassian-Token: no-check` (SPEC §7: for non-browser clients).
    pub fn no_check(&self) -> bool {
        self.x_atlassian_token().is_some_and(|t| t.eq_ignore_ascii_case("no-check"))
    }

    /// The XSRF token sent in a header, if any (an empty header is none).
    pub fn header_token(&self) -> Option<&str> {
        xsrf::header_token(self.x_atlassian_token(), self.x_xsrf_token())
    }
}

impl App {
    /// Answers one request. Never fails: errors become Jira-shaped responses.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<RequestBody>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let mut ctx = self.context(&req, peer);
        let (route, result) = if ctx.head_bytes > self.max_header_bytes {
            let message = format!("The request's headers are larger than {} bytes.", self.max_header_bytes);
            (Route::Other, Err(ApiError::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message)))
        } else {
            match self.preflight(&req, &ctx) {
                Some(answer) => (Route::Other, answer),
                None => self.dispatch(req, &mut ctx).await,
            }
        };
        let mut resp = result.unwrap_or_else(ApiError::into_response);
        self.finish(&mut ctx, &mut resp);
        if ctx.method == Method::HEAD {
            // hyper drops a HEAD answer's body on HTTP/1.1 but sends it on
            // HTTP/2, where the client resets the stream. The length is the
            // GET's (RFC 9110 §9.3.2), which hyper would not work out from
            // an empty body.
            // (A proxied answer's length is the app's: hyper's client reports
            // an empty body for any HEAD.)
            if let (false, Some(n)) = (from_app(&resp), hyper::body::Body::size_hint(resp.body()).exact()) {
                resp.headers_mut().entry(hyper::header::CONTENT_LENGTH).or_insert(HeaderValue::from(n));
            }
            *resp.body_mut() = super::response::full(bytes::Bytes::new());
        }
        self.auth.metrics.request(route, resp.status().as_u16(), started.elapsed());
        Ok(resp)
    }

    fn context(&self, req: &Request<RequestBody>, peer: SocketAddr) -> Ctx {
        let mut ctx = Ctx {
            peer,
            method: req.method().clone(),
            cookies: RequestCookies::default(),
            base: std::sync::OnceLock::new(),
            authority: req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
            head_bytes: request_line_bytes(req.method(), req.uri()),
            passive: false,
            media_type: None,
            user_agent: None,
            authorization: None,
            origin: None,
            sec_fetch_site: None,
            x_atlassian_token: None,
            x_xsrf_token: None,
            identity: None,
            user: None,
            handle: None,
            expires: None,
            set_cookies: Vec::new(),
            xsrf_out: None,
            forward_auth: false,
            proxied: false,
            basic_failed: false,
            via_token: false,
            logged_out: false,
            session_moved: false,
        };
        // One pass over the headers (cheaper than a lookup per name).
        for (name, value) in req.headers() {
            ctx.head_bytes += header_bytes(name, value);
            let slot = match name.as_str() {
                "cookie" => continue,
                "host" if ctx.authority.is_none() => &mut ctx.authority,
                "user-agent" => &mut ctx.user_agent,
                "authorization" => &mut ctx.authorization,
                // Sent twice with different values (no browser does): the
                // request is taken as foreign, not by whichever came last.
                "origin" | "sec-fetch-site" => {
                    let (slot, foreign) = if name == "origin" {
                        (&mut ctx.origin, "null")
                    } else {
                        (&mut ctx.sec_fetch_site, "cross-site")
                    };
                    *slot = match slot.take() {
                        Some(first) if first != value => Some(HeaderValue::from_static(foreign)),
                        _ => Some(value.clone()),
                    };
                    continue;
                }
                "x-atlassian-token" => &mut ctx.x_atlassian_token,
                "x-xsrf-token" => &mut ctx.x_xsrf_token,
                "content-type" => {
                    ctx.media_type = super::request::media_type_of(value);
                    continue;
                }
                "x-authd-passive" => {
                    ctx.passive = passive(value);
                    continue;
                }
                _ => continue,
            };
            *slot = Some(value.clone());
        }
        let cookie_headers = req.headers().get_all(hyper::header::COOKIE).iter().map(HeaderValue::as_bytes);
        ctx.cookies = RequestCookies::parse(cookie_headers, &self.cookie_names);
        ctx
    }

    /// `https://` plus the request's authority (or the configured base URL),
    /// worked out once per request and only if needed.
    pub fn base<'c>(&self, ctx: &'c Ctx) -> &'c str {
        ctx.base.get_or_init(|| {
            let (scheme, host) = self.base_parts(ctx);
            let mut base = String::with_capacity(scheme.len() + host.len());
            base.push_str(scheme);
            base.push_str(host);
            base
        })
    }

    /// [`base`](Self::base) in two pieces that make it when put together
    /// (`""` and the configured base URL, or `https://` and the authority),
    /// for an answer that writes it out without making it first.
    pub fn base_parts<'c>(&'c self, ctx: &'c Ctx) -> (&'static str, &'c str) {
        self.base_parts_for(ctx.authority.as_ref().and_then(|h| h.to_str().ok()))
    }

    /// [`base_parts`](Self::base_parts) for a request whose authority (or
    /// `Host`) is `authority`.
    pub(super) fn base_parts_for<'c>(&'c self, authority: Option<&'c str>) -> (&'static str, &'c str) {
        if let Some(b) = &self.base_url {
            return ("", b);
        }
        ("https://", authority.filter(|a| valid_authority(a)).unwrap_or(&self.listen_authority))
    }

    /// SPEC §7 for a form posted to the REST API without a token in a
    /// header (which Jira's REST filter wants): the form's `atl_token` field
    /// counts too. No REST call reads a form, so the body is not passed on.
    async fn rest_form_xsrf(
        &self,
        req: Request<RequestBody>,
        ctx: &Ctx,
        who: Option<&Authenticated>,
    ) -> Result<Request<RequestBody>, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(&parts.headers, body, LOGIN_BODY_LIMIT).await?;
        let submitted = request::form_token(&parts.headers, &bytes);
        if !self.xsrf_ok(ctx, who, submitted.as_deref()) {
            return Err(xsrf_failed());
        }
        Ok(Request::from_parts(parts, RequestBody::empty()))
    }

    /// Routes a request. Handlers that are not on the session-check path
    /// run boxed, so this future (moved on every request) stays small.
    async fn dispatch(
        &self,
        req: Request<RequestBody>,
        ctx: &mut Ctx,
    ) -> (Route, Result<Response<Body>, ApiError>) {
        let uri = req.uri().clone();
        let path = uri.path();
        if !path.starts_with('/') {
            // `OPTIONS *` or an authority: nothing here or behind is named so.
            return (Route::Other, Err(ApiError::bad_request("The request target must be a path.")));
        }
        if has_dot_segment(path) {
            return (
                Route::Other,
                Err(ApiError::bad_request("The path may not contain '.' or '..' segments.")),
            );
        }
        if malformed_escapes(path) {
            return (
                Route::Other,
                Err(ApiError::bad_request(
                    "The path has a broken percent-escape, an encoded NUL, or bytes that are not UTF-8.",
                )),
            );
        }
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let segments = segments.as_slice();
        if let (false, Some(up)) = (is_own_path(segments), &self.upstream) {
            ctx.proxied = true;
            return (Route::Proxy, Box::pin(proxy::forward(self, up, req, ctx)).await);
        }
        // SPEC §7: independently of any token, a browser's cross-site unsafe request is refused.
        if xsrf::is_unsafe(&ctx.method) && !self.origin_ok(ctx) {
            return match segments {
                // authd's own pages answer a browser in HTML.
                ["login.jsp"] => {
                    (Route::Pages, Ok(pages::xsrf_refused("/login.jsp", "Back to the login page")))
                }
                ["account", ..] => {
                    (Route::Pages, Ok(pages::xsrf_refused("/account", "Back to your account")))
                }
                _ => (Route::Other, Err(xsrf_failed())),
            };
        }
        // SPEC §3: every response names its user, so identify up front (forward
        // auth identifies itself, without remember-me logins).
        let mut req = req;
        if !matches!(segments, ["rest", "authd", _, "verify"]) {
            match self.identify(ctx).await {
                Err(e) => return (Route::Other, Err(e)),
                Ok(who) if rest_form_call(segments, ctx) && !self.xsrf_ok(ctx, who.as_ref(), None) => {
                    match Box::pin(self.rest_form_xsrf(req, ctx, who.as_ref())).await {
                        Ok(emptied) => req = emptied,
                        Err(e) => return (Route::Other, Err(e)),
                    }
                }
                Ok(_) => {}
            }
        }
        // HEAD is routed as GET everywhere (`handle` drops the body; the
        // proxy above forwards it as it came).
        if req.method() == Method::HEAD {
            *req.method_mut() = Method::GET;
        }
        let method = req.method().clone();
        match segments {
            ["rest", "auth", v, "session"] if version(v, "1") => {
                let r = match method {
                    Method::POST => Box::pin(session_api::login(self, req, ctx)).await,
                    Method::GET => session_api::current(self, ctx).await,
                    Method::DELETE => Box::pin(session_api::logout(self, ctx)).await,
                    _ => Err(not_allowed("GET, HEAD, POST, DELETE")),
                };
                (Route::Session, r)
            }
            ["rest", "api", v, "myself"] if version(v, "2") => {
                let r = match method {
                    Method::GET => session_api::myself(self, ctx).await,
                    _ => Err(not_allowed("GET, HEAD")),
                };
                (Route::Myself, r)
            }
            ["rest", "api", v, "myself", "password"] if version(v, "2") => {
                let r = match method {
                    Method::PUT => Box::pin(session_api::change_password(self, req, ctx)).await,
                    _ => Err(not_allowed("PUT")),
                };
                (Route::Myself, r)
            }
            ["rest", "api", v, "user"] if version(v, "2") => {
                let r = match method {
                    Method::GET => Box::pin(session_api::user(self, req.uri().query(), ctx)).await,
                    _ => Err(not_allowed("GET, HEAD")),
                };
                (Route::User, r)
            }
            ["rest", "api", v, "serverInfo"] if version(v, "2") => {
                let r = match method {
                    Method::GET => session_api::server_info(self, ctx).await,
                    _ => Err(not_allowed("GET, HEAD")),
                };
                (Route::ServerInfo, r)
            }
            ["rest", "authd", v, "verify"] if version(v, "1") => {
                let r = match method {
                    Method::GET | Method::POST => authd_api::verify(self, &req, ctx).await,
                    _ => Err(not_allowed("GET, HEAD, POST")),
                };
                (Route::Verify, r)
            }
            ["rest", "authd", v, "sessions", rest @ ..] if version(v, "1") && rest.len() <= 1 => {
                let handle = rest.first().copied();
                (Route::OwnSessions, Box::pin(authd_api::sessions(self, &method, ctx, handle)).await)
            }
            ["rest", "authd", v, "tokens", rest @ ..] if version(v, "1") && rest.len() <= 1 => {
                let id = rest.first().map(|s| s.to_string());
                (Route::Tokens, Box::pin(authd_api::tokens(self, req, ctx, id.as_deref())).await)
            }
            ["rest", "authd", v, "admin", rest @ ..] if version(v, "1") => {
                let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                (Route::Admin, Box::pin(admin_api::handle(self, req, ctx, &rest)).await)
            }
            ["login.jsp"] => {
                let r = match method {
                    Method::GET => Box::pin(pages::login_form(self, req.uri().query(), ctx)).await,
                    Method::POST => Box::pin(pages::login_submit(self, req, ctx)).await,
                    _ => Err(not_allowed("GET, HEAD, POST")),
                };
                (Route::Pages, r)
            }
            ["account", rest @ ..] => {
                let r = match (method, rest) {
                    (Method::GET, []) => Box::pin(pages::account(self, ctx)).await,
                    (Method::POST, [action]) | (Method::POST, ["sessions", action]) => {
                        let action = action.to_string();
                        Box::pin(pages::account_action(self, req, ctx, &action)).await
                    }
                    (_, []) => Err(not_allowed("GET, HEAD")),
                    (_, [action]) | (_, ["sessions", action]) if pages::ACCOUNT_ACTIONS.contains(action) => {
                        Err(not_allowed("POST"))
                    }
                    _ => Err(ApiError::not_found()),
                };
                (Route::Pages, r)
            }
            ["verify-email"] => {
                let r = match method {
                    // Not on HEAD: link scanners send it, and the link works once.
                    Method::GET if ctx.method != Method::HEAD => {
                        Box::pin(pages::verify_email(self, req.uri().query(), ctx)).await
                    }
                    _ => Err(not_allowed("GET")),
                };
                (Route::Pages, r)
            }
            ["healthz"] => {
                let r = match method {
                    Method::GET => Ok(match self.auth.store.failure() {
                        None => with_body(StatusCode::OK, "text/plain; charset=utf-8", "ok"),
                        // For a supervisor: the reason says whether a restart is needed.
                        Some(why) => {
                            with_body(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", why)
                        }
                    }),
                    _ => Err(not_allowed("GET, HEAD")),
                };
                (Route::Healthz, r)
            }
            ["metrics"] => {
                let r = match method {
                    Method::GET => self.metrics().await,
                    _ => Err(not_allowed("GET, HEAD")),
                };
                (Route::Metrics, r)
            }
            _ => (Route::Other, Err(ApiError::not_found())),
        }
    }

    /// Answers a CORS preflight for an allowed origin (SPEC §9); `None` if
    /// this is not one (other origins' preflights get no CORS headers, so
    /// the browser refuses the real request).
    fn preflight(&self, req: &Request<RequestBody>, ctx: &Ctx) -> Option<Result<Response<Body>, ApiError>> {
        if req.method() != Method::OPTIONS || !req.headers().contains_key("access-control-request-method") {
            return None;
        }
        let origin = ctx.origin()?;
        if !self.cors_allowed(origin) {
            return None;
        }
        let mut r = empty(StatusCode::NO_CONTENT);
        let h = r.headers_mut();
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"),
        );
        let requested = req.headers().get("access-control-request-headers").cloned();
        h.insert(
            "access-control-allow-headers",
            requested.unwrap_or(HeaderValue::from_static(
                "content-type, x-atlassian-token, x-xsrf-token, x-authd-passive, authorization",
            )),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("600"));
        Some(Ok(r))
    }

    /// Whether `origin` is a `--cors-origin` (exact, case-insensitive).
    pub fn cors_allowed(&self, origin: &str) -> bool {
        let origin = xsrf::without_default_port(origin);
        self.cors_origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    async fn metrics(&self) -> Result<Response<Body>, ApiError> {
        let sessions = self.auth.store.session_count().await?;
        let text = self.auth.metrics.render(sessions);
        Ok(with_body(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text))
    }

    /// The origin rule of SPEC §7 for this request.
    pub fn origin_ok(&self, ctx: &Ctx) -> bool {
        self.origin_ok_for(ctx, self.base(ctx))
    }

    /// The origin rule with `own` as this site's origin.
    pub fn origin_ok_for(&self, ctx: &Ctx, own: &str) -> bool {
        // An `Origin` or `Sec-Fetch-Site` that is not text names no origin
        // of ours (browsers send ASCII): refused, not taken as absent.
        let garbled = |v: &Option<HeaderValue>| v.is_some() && text(v).is_none();
        if garbled(&ctx.origin) || garbled(&ctx.sec_fetch_site) {
            return false;
        }
        xsrf::origin_allowed(ctx.origin(), ctx.sec_fetch_site(), own, &self.cors_origins)
    }

    /// Identifies the request: by its session cookie (the first valid one),
    /// else by its remember-me cookie. The result is recorded in `ctx`
    /// (and cached there); `Ok(None)` for anonymous requests.
    pub async fn identify(&self, ctx: &mut Ctx) -> Result<Option<Authenticated>, ApiError> {
        if let Some(known) = &ctx.identity {
            return Ok(known.clone());
        }
        let found = self.find_identity(ctx).await?;
        ctx.identity = Some(found.clone());
        Ok(found)
    }

    async fn find_identity(&self, ctx: &mut Ctx) -> Result<Option<Authenticated>, ApiError> {
        for i in 0..ctx.cookies.session_ids.len() {
            let Some(id) = ctx.cookies.session_ids.get(i).cloned() else { continue };
            let crate::auth::SessionUse { user, session, new_id } =
                match self.auth.session(&id, ctx.passive, !ctx.forward_auth).await? {
                    Lookup::Found(found) => found,
                    Lookup::MovedAway => {
                        ctx.session_moved = true;
                        continue;
                    }
                    Lookup::Missing => continue,
                };
            if let Some(new_id) = new_id {
                ctx.set_cookies.push(cookies::set_cookie(
                    &self.cookie_names.session,
                    &new_id.to_cookie_value(),
                    Attributes { http_only: true, max_age: None },
                ));
            }
            ctx.user = Some(user.name.clone());
            ctx.handle = Some(session.key.handle());
            ctx.expires = Some(session.expires);
            return Ok(Some(Authenticated { user, session: Some(session) }));
        }
        if let Some(auth) = ctx.authorization().map(str::to_string) {
            match Box::pin(self.basic(&auth)).await? {
                Basic::User(user) => {
                    ctx.user = Some(user.name.clone());
                    ctx.via_token = true;
                    return Ok(Some(Authenticated { user: Arc::new(user), session: None }));
                }
                // Junk credentials are a 400 for authd's own routes; forward
                // auth answers a failed check with 401 (nginx turns a 400
                // into a 500), and the app behind the proxy may use Basic
                // for itself.
                Basic::Malformed if !ctx.forward_auth && !ctx.proxied => {
                    return Err(ApiError::bad_request(
                        "The Authorization header's Basic credentials are not base64 of user:token.",
                    ))
                }
                // Flagged, not fatal: public endpoints still answer anonymously.
                Basic::Malformed | Basic::Unknown => ctx.basic_failed = true,
                Basic::Absent => {}
            }
        }
        if ctx.forward_auth {
            return Ok(None);
        }
        let Some(token) = ctx.cookies.remember.iter().find_map(|v| RememberToken::parse(v)) else {
            if !ctx.cookies.remember.is_empty() && !ctx.cookies.truncated {
                ctx.set_cookies.push(cookies::expire_cookie(&self.cookie_names.remember, true));
            }
            return Ok(None);
        };
        let browser_xsrf = ctx.cookies.xsrf.first().cloned();
        let outcome = Box::pin(self.auth.login_remembered(
            &token,
            Some(ctx.peer.ip()),
            describe_browser(ctx.user_agent()),
            browser_xsrf.as_deref(),
        ))
        .await?;
        match outcome {
            Remembered::LoggedIn(done) => {
                self.apply_login(ctx, &done);
                let done = *done;
                Ok(Some(Authenticated { user: done.user, session: Some(done.session) }))
            }
            Remembered::Grace(user, session) => {
                ctx.user = Some(user.name.clone());
                // The session the racing request started answers for this
                // one too (its handle and deadline); its cookie was set there.
                if let Some(s) = &session {
                    ctx.handle = Some(s.key.handle());
                    ctx.expires = Some(s.expires);
                }
                Ok(Some(Authenticated { user, session }))
            }
            Remembered::Rejected | Remembered::Theft => {
                ctx.set_cookies.push(cookies::expire_cookie(&self.cookie_names.remember, true));
                Ok(None)
            }
        }
    }

    /// Whom an `Authorization` header's API token names (see [`credential`]).
    async fn basic(&self, header: &str) -> Result<Basic, ApiError> {
        let (name, token) = match credential(header) {
            Credential::Foreign => return Ok(Basic::Absent),
            Credential::Malformed => return Ok(Basic::Malformed),
            // Basic accepts API tokens only, never passwords (README).
            Credential::Password(_) | Credential::BrokenToken => return Ok(Basic::Unknown),
            Credential::Token(name, token) => (name, token),
        };
        let found = self.auth.store.token(token.hash()).await?.map(|(_, user)| user);
        // Basic names the token's owner too: by name, or by email address as
        // Jira Cloud's clients send it.
        let found = found.filter(|u| {
            name.as_deref().is_none_or(|n| {
                crate::store::name_key(&u.name) == crate::store::name_key(n)
                    || u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(n))
            })
        });
        Ok(found.map_or(Basic::Unknown, Basic::User))
    }

    /// Records a fresh login in `ctx`: the session cookie, the remember-me
    /// cookie if one was issued, and the session's XSRF token.
    pub fn apply_login(&self, ctx: &mut Ctx, done: &LoggedIn) {
        ctx.user = Some(done.user.name.clone());
        ctx.handle = Some(done.session.key.handle());
        ctx.expires = Some(done.session.expires);
        ctx.set_cookies.push(cookies::set_cookie(
            &self.cookie_names.session,
            &done.id.to_cookie_value(),
            Attributes { http_only: true, max_age: None },
        ));
        if let Some((token, expires)) = &done.remember {
            let max_age = remember::max_age(*expires, self.auth.now());
            ctx.set_cookies.push(cookies::set_cookie(
                &self.cookie_names.remember,
                &token.to_cookie_value(),
                Attributes { http_only: true, max_age: Some(max_age) },
            ));
        }
        ctx.xsrf_out = Some(self.auth.session_xsrf(&done.user, &done.session.record));
        ctx.identity =
            Some(Some(Authenticated { user: done.user.clone(), session: Some(done.session.clone()) }));
    }

    /// Records a logout in `ctx`: all three cookies expired, and
    /// `X-Seraph-LoginReason: OUT` on the answer.
    pub fn apply_logout(&self, ctx: &mut Ctx) {
        ctx.user = None;
        // `X-ASESSIONID` still names the session this request came with
        // (SPEC §3: a session was in use), now ended; nothing expires later.
        ctx.expires = None;
        ctx.identity = Some(None);
        ctx.logged_out = true;
        // A remember-me login earlier in this request set new values; the
        // expiry comes later, and `finish` sends only the last of each name.
        ctx.set_cookies.push(cookies::expire_cookie(&self.cookie_names.session, true));
        ctx.set_cookies.push(cookies::expire_cookie(&self.cookie_names.remember, true));
        // SPEC §3: "the cookies are expired (Max-Age=0)", the XSRF cookie too;
        // the next page an anonymous browser opens mints it a `_lout` token.
        ctx.set_cookies.push(cookies::expire_cookie(&self.cookie_names.xsrf, false));
        ctx.xsrf_out = None;
    }

    /// The XSRF token a page should embed for this request's identity,
    /// minting (and setting) an anonymous one if the browser has none.
    pub fn page_xsrf(&self, ctx: &mut Ctx, who: Option<&Authenticated>) -> String {
        match who {
            Some(Authenticated { user, session: Some(s) }) => {
                let token = self.auth.session_xsrf(user, &s.record);
                if !ctx.cookies.xsrf.contains(&token) {
                    ctx.xsrf_out = Some(token.clone());
                }
                token
            }
            Some(Authenticated { user, session: None }) => {
                // Let in by the remember-me grace window: the browser's own token, if it is this user's.
                match ctx
                    .cookies
                    .xsrf
                    .iter()
                    .find(|t| self.auth.xsrf.verify(t, State::LoggedIn(user.id)).is_some())
                {
                    Some(t) => t.clone(),
                    None => self.auth.xsrf.token(Xsrf::new_nonce(), State::LoggedIn(user.id)),
                }
            }
            None => {
                if let Some(pending) = &ctx.xsrf_out {
                    return pending.clone();
                }
                let own =
                    ctx.cookies.xsrf.iter().find(|t| self.auth.xsrf.verify(t, State::LoggedOut).is_some());
                match own {
                    Some(t) => t.clone(),
                    None => {
                        let t = self.auth.xsrf.token(Xsrf::new_nonce(), State::LoggedOut);
                        ctx.xsrf_out = Some(t.clone());
                        t
                    }
                }
            }
        }
    }

    /// Makes sure the browser holds its session's XSRF token (set when the
    /// cookie is missing or stale), so an app's pages can read it. API
    /// answers skip this: a script does not need the cookie on every call.
    pub fn sync_xsrf_cookie(&self, ctx: &mut Ctx, who: Option<&Authenticated>) {
        if let Some(Authenticated { user, session: Some(s) }) = who {
            let held =
                ctx.cookies.xsrf.iter().any(|t| self.auth.xsrf.matches_session(t, &s.record.xsrf, user.id));
            if !held && ctx.xsrf_out.is_none() {
                ctx.xsrf_out = Some(self.auth.session_xsrf(user, &s.record));
            }
        }
    }

    /// Whether `submitted` is the right XSRF token for this request (SPEC §7).
    pub fn xsrf_ok(&self, ctx: &Ctx, who: Option<&Authenticated>, submitted: Option<&str>) -> bool {
        if ctx.no_check() {
            return true;
        }
        let Some(sub) = ctx.header_token().or(submitted) else {
            return false;
        };
        match who {
            Some(Authenticated { user, session: Some(s) }) => {
                self.auth.xsrf.matches_session(sub, &s.record.xsrf, user.id)
            }
            Some(Authenticated { user, session: None }) => {
                self.auth.xsrf.verify(sub, State::LoggedIn(user.id)).is_some()
            }
            None => ctx.cookies.xsrf.iter().any(|c| self.auth.xsrf.matches_anonymous(sub, c)),
        }
    }

    /// Like [`identify`](Self::identify), but 401 for anonymous requests, with
    /// a message that says whether the cookie was stale, and an expired
    /// cookie cleared.
    pub async fn require_session(&self, ctx: &mut Ctx) -> Result<Authenticated, ApiError> {
        match self.identify(ctx).await? {
            Some(a) => Ok(a),
            None if ctx.basic_failed => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "API token authentication failed: unknown user or token.",
            )
            .header("x-seraph-loginreason", "AUTHENTICATED_FAILED")),
            None if !ctx.cookies.session.is_empty() || !ctx.cookies.remember.is_empty() => {
                self.expire_dead_session_cookie(ctx);
                Err(ApiError::session_expired())
            }
            None => Err(ApiError::unauthenticated()),
        }
    }

    /// For a request that [`identify`](Self::identify) found anonymous:
    /// expires the session cookie it carried, which logs nobody in (unless
    /// the session just moved to a new ID that the browser is being sent,
    /// or more session cookies came than were looked at).
    pub fn expire_dead_session_cookie(&self, ctx: &mut Ctx) {
        if !ctx.cookies.session.is_empty() && !ctx.session_moved && !ctx.cookies.truncated {
            ctx.set_cookies.push(cookies::expire_cookie(&self.cookie_names.session, true));
        }
    }

    /// Whether the request carries the local CLI's admin credential, from
    /// this machine (the CLI connects to the address in `admin.json`: a
    /// loopback one, or the one authd listens on).
    pub fn is_local_admin(&self, ctx: &Ctx) -> bool {
        let Some(token) = ctx.authorization().and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        same_host(ctx.peer.ip(), &self.listen_authority)
            && AdminCredential::parse(token).is_some_and(|c| ct_eq(&c.hash(), &self.admin_credential))
    }

    fn finish(&self, ctx: &mut Ctx, resp: &mut Response<Body>) {
        let from_app = from_app(resp);
        let h = resp.headers_mut();
        h.reserve(4 + ctx.set_cookies.len());
        identity_headers(h, ctx.user.as_deref(), ctx.handle, ctx.expires);
        if ctx.logged_out {
            // SPEC §3: every response that logs this browser out, whichever route.
            h.insert("x-seraph-loginreason", HeaderValue::from_static("OUT"));
        } else if ctx.basic_failed
            && ctx.user.is_none()
            && !ctx.proxied
            && !ctx.forward_auth
            && !h.contains_key("x-seraph-loginreason")
        {
            // Credentials that failed on authd's route anyone may use
            // (serverInfo): the answer is anonymous, and says why, as Jira's
            // does. (Behind the proxy, Basic may be the app's own.)
            h.insert("x-seraph-loginreason", HeaderValue::from_static("AUTHENTICATED_FAILED"));
        }
        if let Some(token) = ctx.xsrf_out.take() {
            ctx.set_cookies.push(cookies::set_cookie(
                &self.cookie_names.xsrf,
                &token,
                Attributes { http_only: false, max_age: None },
            ));
        }
        for (i, c) in ctx.set_cookies.iter().enumerate() {
            // One cookie per name (RFC 6265 §4.1.1): a later one replaces an
            // earlier (a remember-me login's session ID, then the password
            // change that moved it in the same request).
            let name = cookie_name(c);
            if ctx.set_cookies.iter().skip(i + 1).any(|later| cookie_name(later) == name) {
                continue;
            }
            if let Ok(v) = HeaderValue::from_str(c) {
                h.append(SET_COOKIE, v);
            }
        }
        if !from_app {
            h.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
        } else if !ctx.set_cookies.is_empty() {
            // The app's answer carries authd's cookies (a remember-me login,
            // a new ID, a fresh XSRF token): no cache may keep or share it,
            // whatever the app said.
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        self.cors_headers(h, ctx.origin());
    }

    /// SPEC §9's CORS headers, where origins are configured: `Vary: Origin`,
    /// and for an allowed `origin` the headers that let it read the answer.
    pub(super) fn cors_headers(&self, h: &mut hyper::HeaderMap, origin: Option<&str>) {
        if !self.cors_origins.is_empty() {
            h.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
            if let Some(origin) = origin.filter(|o| self.cors_allowed(o)) {
                if let Ok(v) = HeaderValue::from_str(origin) {
                    h.insert("access-control-allow-origin", v);
                    h.insert("access-control-allow-credentials", HeaderValue::from_static("true"));
                    h.insert(
                        "access-control-expose-headers",
                        HeaderValue::from_static(
                            "x-ausername, x-asessionid, x-authd-session-expires, x-seraph-loginreason, retry-after",
                        ),
                    );
                }
            }
        }
    }
}

/// SPEC §3's headers naming who a request is: `X-AUSERNAME` (`anonymous`
/// for nobody), and the session's handle and deadline if one was used.
pub(super) fn identity_headers(
    h: &mut hyper::HeaderMap,
    user: Option<&str>,
    handle: Option<Handle>,
    expires: Option<Timestamp>,
) {
    const X_AUSERNAME: HeaderName = HeaderName::from_static("x-ausername");
    const X_ASESSIONID: HeaderName = HeaderName::from_static("x-asessionid");
    const X_EXPIRES: HeaderName = HeaderName::from_static("x-authd-session-expires");
    let user = match user {
        Some(name) => ausername(name),
        None => Some(HeaderValue::from_static("anonymous")),
    };
    if let Some(v) = user {
        h.insert(X_AUSERNAME, v);
    }
    if let Some(handle) = handle {
        if let Ok(v) = HeaderValue::from_bytes(&handle.hex_bytes()) {
            h.insert(X_ASESSIONID, v);
        }
    }
    if let Some(t) = expires {
        h.insert(X_EXPIRES, HeaderValue::from(t.unix_seconds()));
    }
}

/// The size of a request line as HTTP/1.1 sends it: "GET /path HTTP/1.1\r\n".
pub(super) fn request_line_bytes(method: &Method, uri: &hyper::Uri) -> usize {
    method.as_str().len() + uri.path().len() + 12 + uri.query().map_or(0, |q| q.len() + 1)
}

/// The size of one header line: "name: value\r\n".
pub(super) fn header_bytes(name: &HeaderName, value: &HeaderValue) -> usize {
    name.as_str().len() + value.len() + 4
}

/// `X-Authd-Passive`: SPEC §5 says `1`; `true` and `yes` mean the same to anyone.
pub(super) fn passive(value: &HeaderValue) -> bool {
    let v = value.as_bytes().trim_ascii();
    v == b"1" || v.eq_ignore_ascii_case(b"true") || v.eq_ignore_ascii_case(b"yes")
}

/// The name of a `Set-Cookie` value authd made (`name=value; ...`).
fn cookie_name(set_cookie: &str) -> &str {
    set_cookie.split_once('=').map_or(set_cookie, |(name, _)| name)
}

/// What an `Authorization` header holds, before any lookup.
pub enum Credential {
    /// Another scheme, or a bearer token not in authd's `authd_...` form:
    /// another service's business.
    Foreign,
    /// `Basic` with something that is not base64 of UTF-8 `user:secret`.
    Malformed,
    /// `Basic user:secret` with a secret that is not authd's (a password,
    /// say): the app's, if it uses Basic itself.
    Password(String),
    /// `Basic user:authd_...` (`Some` name) or `Bearer authd_...` (`None`,
    /// how Jira's personal access tokens are sent).
    Token(Option<String>, ApiToken),
    /// A secret that starts with `authd_` but is not a well-formed token
    /// (mistyped, cut short): meant as authd's, so a failed login, and
    /// never the app's.
    BrokenToken,
}

/// Reads an `Authorization` header (scheme names case-insensitively).
pub fn credential(header: &str) -> Credential {
    use crate::token::API_TOKEN_PREFIX;
    use base64::Engine as _;
    let scheme = |name: &str| {
        header
            .get(..name.len())
            .filter(|s| s.eq_ignore_ascii_case(name))
            .and_then(|_| header.get(name.len()..))
    };
    let token = |name: Option<&str>, secret: &str| match ApiToken::parse(secret) {
        Some(token) => Credential::Token(name.map(str::to_string), token),
        None if secret.starts_with(API_TOKEN_PREFIX) => Credential::BrokenToken,
        None => match name {
            Some(name) => Credential::Password(name.to_string()),
            None => Credential::Foreign,
        },
    };
    if let Some(bearer) = scheme("Bearer ") {
        return token(None, bearer.trim());
    }
    let Some(b64) = scheme("Basic ") else {
        return Credential::Foreign;
    };
    // Padding optional, as many clients leave it out; white space around
    // the secret (`echo user:token | base64` adds a line end) is not part
    // of any token.
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = LENIENT.decode(b64.trim()).ok();
    let pair = decoded.and_then(|d| String::from_utf8(d).ok());
    match pair.as_deref().and_then(|p| p.split_once(':')) {
        Some((name, secret)) => token(Some(name), secret.trim()),
        None => Credential::Malformed,
    }
}

/// Whether an `Authorization` header carries an authd API token (valid or
/// not): the proxy never passes one to the app. A header that names one in
/// a form authd does not read (`Basic user:authd_...` unencoded, say) is
/// not passed on either.
pub fn holds_api_token(header: &[u8]) -> bool {
    let prefix = crate::token::API_TOKEN_PREFIX.as_bytes();
    let named = header.windows(prefix.len()).any(|w| w == prefix);
    named
        || std::str::from_utf8(header)
            .is_ok_and(|h| matches!(credential(h), Credential::Token(..) | Credential::BrokenToken))
}

/// What an `Authorization` header says about the request's user.
enum Basic {
    /// No credentials of authd's (another scheme, or a foreign bearer
    /// token): not authd's business.
    Absent,
    /// `Basic` with something that is not base64 of UTF-8 `user:secret`.
    Malformed,
    /// Well-formed, but not a live API token of that user.
    Unknown,
    /// That user's API token.
    User(crate::store::User),
}

/// Whether a path is one of authd's own (everything else goes to the upstream).
fn is_own_path(segments: &[&str]) -> bool {
    match segments {
        ["rest", "auth", ..] | ["rest", "authd", ..] => true,
        ["rest", "api", v, "myself" | "user" | "serverInfo"] | ["rest", "api", v, "myself", "password"] => {
            version(v, "2")
        }
        ["login.jsp"] | ["account", ..] | ["verify-email"] | ["healthz"] | ["metrics"] => true,
        _ => false,
    }
}

/// Whether `resp` is the app's answer, passed on by the proxy.
fn from_app(resp: &Response<Body>) -> bool {
    resp.extensions().get::<proxy::FromApp>().is_some()
}

/// `X-AUSERNAME` for a user name. Jira URL-encodes this header, so a name
/// outside ASCII (`jürgen`) goes out as UTF-8 percent-encoded (`j%C3%BCrgen`),
/// which every client reads the same way, instead of raw bytes that most
/// decode as Latin-1. ASCII names go out as they are: besides letters and
/// digits a name holds only `.`, `_`, `-`, `@` and `+`, and never `%`, so the
/// encoding cannot be confused with a name.
pub fn ausername(name: &str) -> Option<HeaderValue> {
    if name.is_ascii() {
        return HeaderValue::from_str(name).ok();
    }
    let mut out = String::with_capacity(3 * name.len());
    for b in name.bytes() {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}"); // writing to a String cannot fail
        }
    }
    HeaderValue::from_str(&out).ok()
}

/// Whether a path has a `.` or `..` segment, written plainly or percent-encoded
/// (such paths are refused rather than passed to the app to interpret).
fn has_dot_segment(path: &str) -> bool {
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    path.split('/').any(|seg| match seg {
        "." | ".." => true,
        _ if seg.contains('%') && seg.len() <= 6 => {
            let decoded = super::request::decode_component(seg.as_bytes(), false);
            matches!(decoded.as_deref(), Some("." | ".."))
        }
        _ => false,
    })
}

/// Whether a path's percent-escapes are broken (`%zz`, `%4`), encode a NUL,
/// or decode to bytes that are not UTF-8 (SPEC §10: a clear 4xx, and such
/// a path is not passed to the app to interpret).
fn malformed_escapes(path: &str) -> bool {
    path.contains('%')
        && super::request::decode_component(path.as_bytes(), false).is_none_or(|d| d.contains('\0'))
}

/// Whether a path segment is the API version `want` or `latest`.
fn version(segment: &str, want: &str) -> bool {
    segment == want || segment == "latest"
}

/// Whether this is a state-changing call to authd's own REST API that a
/// browser form could have sent in a session (SPEC §7; Jira's REST filter
/// does the same): a form content type, authenticated by a session or
/// remember-me cookie (not an API token). Such a call
/// must carry the XSRF token in a header, or `X-Atlassian-Token: no-check`.
/// A login makes no use of the session it may carry and keeps its 415.
fn rest_form_call(segments: &[&str], ctx: &Ctx) -> bool {
    xsrf::needs_token(&ctx.method, ctx.media_type.as_deref())
        && matches!(segments, ["rest", ..])
        && !(ctx.method == Method::POST && matches!(segments, ["rest", "auth", _, "session"]))
        && matches!(&ctx.identity, Some(Some(_)))
        && !ctx.via_token
}

/// 403 `XSRF check failed` (SPEC §7).
pub fn xsrf_failed() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "XSRF check failed")
}

/// Whether `method` is in an `Allow` list such as `"GET, HEAD, POST"`.
pub fn allows(allow: &str, method: &Method) -> bool {
    allow.split(", ").any(|m| m == method.as_str())
}

/// 405 with the allowed methods.
pub fn not_allowed(allow: &'static str) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed").header("allow", allow)
}

/// A `Host` value safe to echo into links: host characters and a port only.
pub(crate) fn valid_authority(a: &str) -> bool {
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
    fn the_cli_credential_counts_only_from_this_machine() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(same_host(ip("127.0.0.1"), "127.0.0.1:8443"));
        assert!(same_host(ip("::1"), "[::1]:8443"));
        assert!(same_host(ip("127.0.0.2"), "10.0.0.5:8443"), "all of 127/8 is loopback");
        assert!(same_host(ip("10.0.0.5"), "10.0.0.5:8443"), "the CLI dials the listen address");
        assert!(!same_host(ip("10.0.0.6"), "10.0.0.5:8443"));
        assert!(!same_host(ip("192.0.2.1"), "127.0.0.1:8443"));
    }

    #[test]
    fn authorization_headers_are_read_before_any_lookup() {
        use base64::Engine as _;
        let token = ApiToken::generate().reveal();
        let basic = |pair: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        let is = |h: &str, want: &str| {
            let got = match credential(h) {
                Credential::Foreign => "foreign".to_string(),
                Credential::Malformed => "malformed".to_string(),
                Credential::Password(name) => format!("password {name}"),
                Credential::Token(Some(name), _) => format!("basic {name}"),
                Credential::Token(None, _) => "bearer".to_string(),
                Credential::BrokenToken => "broken".to_string(),
            };
            assert_eq!(got, want, "{h}");
        };
        is(&format!("Bearer {token}"), "bearer");
        is(&format!("bEARER  {token} "), "bearer");
        is("Bearer authd_bogus", "broken");
        is("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "foreign");
        is(&basic(&format!("bob:{token}")), "basic bob");
        is(&basic("bob:a password"), "password bob");
        is(&basic("no colon"), "malformed");
        is("Basic !!!", "malformed");
        is("Digest username=x", "foreign");
        is("Bear", "foreign");
        is("Bearer\u{e9} x", "foreign");
        // What clients get wrong: padding left out, `echo user:token | base64`,
        // white space after the token; a token cut short or mistyped.
        let padded = basic(&format!("bob:{token}"));
        assert!(padded.ends_with('='), "{padded}");
        is(padded.trim_end_matches('='), "basic bob");
        is(basic("bob:a password").trim_end_matches('='), "password bob");
        for sloppy in [format!("bob:{token}\n"), format!("bob:{token}\r\n"), format!("bob: {token}\t ")] {
            is(&basic(&sloppy), "basic bob");
        }
        is(&basic(&format!("bob:{}", &token[..token.len() - 1])), "broken");
        is(&basic("bob:authd_"), "broken");
        let holds = |h: &str| holds_api_token(h.as_bytes());
        assert!(holds(&format!("Bearer {token}")));
        assert!(holds("Bearer authd_bogus"), "a broken authd token is still authd's");
        assert!(holds(&basic(&format!("alice:{token}"))), "another user's name: still authd's token");
        assert!(holds(&basic(&format!("bob:{token} "))));
        assert!(holds(&basic(&format!("bob:{}", &token[..20]))), "cut short: still authd's");
        assert!(holds(&format!("Basic bob:{token}")), "unencoded: not read, but never the app's");
        assert!(!holds(&basic("bob:a password")));
        assert!(!holds("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"));
        assert!(!holds("Basic \u{e9}"));
    }

    #[test]
    fn ausername_encodes_only_names_outside_ascii() {
        let got = |name: &str| ausername(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(got("bob@example.com+x").as_deref(), Some("bob@example.com+x"));
        assert_eq!(got("jürgen").as_deref(), Some("j%C3%BCrgen"));
        assert_eq!(got("李").as_deref(), Some("%E6%9D%8E"));
    }

    #[test]
    fn versions_accept_latest() {
        assert!(version("1", "1"));
        assert!(version("latest", "1"));
        assert!(!version("2", "1"));
    }

    #[test]
    fn own_paths_and_app_paths() {
        let own = |p: &str| is_own_path(&p.split('/').skip(1).collect::<Vec<_>>());
        assert!(own("/rest/auth/1/session"));
        assert!(own("/rest/api/latest/myself"));
        assert!(own("/login.jsp"));
        assert!(own("/account/sessions/revoke"));
        assert!(!own("/rest/api/2/search"));
        assert!(!own("/rest/api/2/issue/X-1"));
        assert!(!own("/"));
        assert!(!own("/app/login.jsp"));
    }

    #[test]
    fn dot_segments_are_found_however_written() {
        for bad in ["/..", "/a/../b", "/a/./b", "/%2e%2e/x", "/%2E/x", "/a/.%2e"] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for ok in ["/", "/a.b", "/...", "/a/..b", "/.well-known/x"] {
            assert!(!has_dot_segment(ok), "{ok}");
        }
    }

    #[test]
    fn malformed_escapes_are_found() {
        for bad in ["/%zz", "/a%4", "/a%", "/%00", "/a/b%00c", "/%ff", "/%c3%28", "/%e9t%e9"] {
            assert!(malformed_escapes(bad), "{bad}");
        }
        for ok in ["/", "/a b", "/%20", "/%2F", "/caf%C3%A9", "/%0d%0a", "/100%25"] {
            assert!(!malformed_escapes(ok), "{ok}");
        }
    }

    #[test]
    fn authorities_are_checked_before_echoing() {
        assert!(valid_authority("localhost:8443"));
        assert!(valid_authority("[::1]:8443"));
        assert!(!valid_authority("evil.com/\"><script>"));
        assert!(!valid_authority(""));
    }
}

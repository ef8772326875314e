//! The reverse proxy (SPEC §9): every path that is not authd's own goes to
//! the app behind it, with the caller's identity added.
//!
//! Invariants:
//! - the app learns who the caller is only from headers authd sets
//!   (`X-Authd-User`, `X-AUSERNAME`, `X-Authd-Roles`); copies the client
//!   sent are removed first;
//! - authd's session and remember-me cookies never reach the app (they are
//!   secrets); the XSRF cookie and the app's own cookies do;
//! - the XSRF rule of SPEC §7 holds for the app's forms: an unsafe request
//!   from a foreign origin is refused, and one with a form content type that
//!   carries a session cookie must show its token;
//! - bodies stream both ways, except a form body that must be searched for
//!   its `atl_token`, which is buffered up to `--max-body`; a client body
//!   that stalls for [`BODY_IDLE`] is abandoned with 408.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::request::RequestBody;
use http_body_util::BodyExt;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, COOKIE, HOST, SET_COOKIE};
use hyper::{HeaderMap, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::app::{xsrf_failed, App, Ctx};
use super::request::{body_stalled, form_token, read_body, BODY_IDLE};
use super::response::{full, ApiError, Body, BoxError};
use super::Handover;
use crate::auth::Authenticated;
use crate::xsrf;

/// Time allowed to open a connection to the app.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The app behind authd.
pub struct Upstream {
    /// `http://host:port` (no path).
    base: String,
    client: Client<HttpConnector, Body>,
    /// Largest body forwarded.
    pub max_body: usize,
    /// Anonymous requests are not forwarded.
    pub require_login: bool,
    /// How long the app has to start its answer.
    timeout: Duration,
}

impl Upstream {
    /// A proxy to `base` (an `http://host:port` URL).
    pub fn new(base: &str, max_body: usize, require_login: bool, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // An app that cannot be reached is a 502, however its network
        // drops the connection attempt.
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build(connector);
        Upstream { base: base.trim_end_matches('/').to_string(), client, max_body, require_login, timeout }
    }
}

/// A request body that says when it is gone: hyper's client drops it once
/// it has been sent to its end (at once if it is empty).
struct Sending<B> {
    inner: B,
    _sent: tokio::sync::oneshot::Sender<()>,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Sending<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Checks an `--upstream` value: `http://host[:port]`, no path.
pub fn parse_upstream(s: &str) -> Result<String, String> {
    let uri: Uri = s.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("must be an http:// URL (authd terminates TLS; the app listens on plain HTTP)".into());
    }
    if uri.authority().is_none() {
        return Err("must name a host, e.g. http://127.0.0.1:3000".into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must not have a path or query".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// Headers that describe one hop, never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Identity headers only authd may set: its own, and those other auth
/// gateways set (Authelia's `Remote-*`, oauth2-proxy's `X-Forwarded-User`
/// and `X-Auth-Request-*`, Apache's `X-Remote-User`), which a client's
/// copies must not reach an app set up for one of them either.
const IDENTITY: [&str; 17] = [
    "x-authd-user",
    "x-ausername",
    "x-authd-roles",
    "x-authd-xsrf-token",
    "remote-user",
    "remote-groups",
    "remote-name",
    "remote-email",
    "x-remote-user",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
];

const X_AUTHD_USER: HeaderName = HeaderName::from_static("x-authd-user");
const X_AUTHD_ROLES: HeaderName = HeaderName::from_static("x-authd-roles");

/// `X-Authd-User` and `X-Authd-Roles` for `user` (SPEC §9): what forward
/// auth answers with and what the proxy tells the app.
pub fn insert_identity(h: &mut HeaderMap, user: &crate::store::User) {
    if let Ok(v) = HeaderValue::from_str(&user.name) {
        h.insert(X_AUTHD_USER, v);
    }
    // No role or one (a fixed value, nothing to put together); more joined.
    let roles = match crate::admin::roles(user) {
        [] => Ok(HeaderValue::from_static("")),
        [role] => Ok(HeaderValue::from_static(role)),
        roles => HeaderValue::from_str(&roles.join(",")),
    };
    if let Ok(v) = roles {
        h.insert(X_AUTHD_ROLES, v);
    }
}

/// Forwards one request to the app.
pub async fn forward(
    app: &App,
    up: &Upstream,
    mut req: Request<RequestBody>,
    ctx: &mut Ctx,
) -> Result<Response<Body>, ApiError> {
    let who = app.identify(ctx).await?;
    app.sync_xsrf_cookie(ctx, who.as_ref());
    if who.is_none() && up.require_login {
        // The 401 an API client gets is the one authd's own routes give: a
        // dead session cookie is named as such (and expired), a bad API
        // token is a failed login.
        // (`identify` answered above and is not asked again: this is an error.)
        let refusal = app.require_session(ctx).await.err().unwrap_or_else(ApiError::unauthenticated);
        return Ok(login_required(req.headers(), req.uri(), refusal));
    }
    let upgrade = upgrade_protocol(req.headers());
    // A WebSocket handshake is a GET, but what follows is not: apply the
    // origin rule to it (cross-site WebSocket hijacking).
    if upgrade.is_some() && !app.origin_ok(ctx) {
        return Err(xsrf_failed());
    }
    let client_upgrade =
        upgrade.as_ref().map(|_| (hyper::upgrade::on(&mut req), req.extensions_mut().remove::<Handover>()));
    let (parts, incoming) = req.into_parts();
    let mut incoming = Some(incoming);
    let mut buffered = None;
    if xsrf::is_unsafe(&parts.method) {
        if !app.origin_ok(ctx) {
            return xsrf_refused(&parts.headers);
        }
        let carries_session = !ctx.cookies.session.is_empty() || !ctx.cookies.remember.is_empty();
        if carries_session && xsrf::needs_token(&parts.method, ctx.media_type.as_deref()) {
            let in_header = ctx.no_check() || ctx.header_token().is_some();
            let mut submitted = None;
            // Only take the body when it must be searched: a token in a header
            // leaves it streaming.
            if let Some(stream) = if in_header { None } else { incoming.take() } {
                let bytes = read_body(&parts.headers, stream, up.max_body).await?;
                submitted = form_token(&parts.headers, &bytes);
                buffered = Some(bytes);
            }
            if !app.xsrf_ok(ctx, who.as_ref(), submitted.as_deref()) {
                // A session cookie that logs nobody in is stale: cleared with
                // the refusal, so the browser's next anonymous post goes through.
                if who.is_none() {
                    app.expire_dead_session_cookie(ctx);
                }
                return xsrf_refused(&parts.headers);
            }
        }
    }
    if let Some(len) = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) {
        if len > up.max_body as u64 {
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large."));
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri =
        format!("{}{path}", up.base).parse().map_err(|_| ApiError::bad_request("Bad request path."))?;
    let mut out = Request::builder().method(parts.method.clone()).uri(uri).version(hyper::Version::HTTP_11);
    if let Some(h) = out.headers_mut() {
        *h = upstream_headers(app, &parts.headers, ctx, who.as_ref());
        if let Some(protocol) = &upgrade {
            h.insert(hyper::header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(hyper::header::UPGRADE, protocol.clone());
        }
    }
    let body: Body = match (buffered, incoming) {
        (Some(bytes), _) => full(bytes),
        (None, Some(stream)) => super::response::stream(Streamed::new(stream)),
        (None, None) => full(bytes::Bytes::new()),
    };
    let (sent, on_sent) = tokio::sync::oneshot::channel::<()>();
    let body = Sending { inner: http_body_util::Limited::new(body, up.max_body), _sent: sent };
    let out = out.body(super::response::stream(body)).map_err(|_| ApiError::bad_request("Bad request."))?;
    // The app's time to answer starts once the request is all sent: a slow
    // client's upload is not the app's delay.
    let too_late = async {
        let _ = on_sent.await;
        tokio::time::sleep(up.timeout).await;
    };
    let answered = tokio::select! {
        answered = up.client.request(out) => answered,
        () = too_late => {
            tracing::warn!("the app did not start its answer within {:?} of the request", up.timeout);
            return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "The app behind authd did not answer in time."));
        }
    };
    let resp = answered.map_err(|e| {
        if caused_by::<http_body_util::LengthLimitError>(&e) {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large.");
        }
        if caused_by::<BodyStalled>(&e) {
            return body_stalled();
        }
        if caused_by::<ClientBody>(&e) {
            return ApiError::bad_request("The request body is malformed or was cut short.");
        }
        tracing::warn!("upstream request failed: {e}");
        ApiError::new(StatusCode::BAD_GATEWAY, "The app behind authd did not answer.")
    })?;
    let mut resp = resp;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some((client_side, handover)) = client_upgrade {
            let upstream_side = hyper::upgrade::on(&mut resp);
            tokio::spawn(splice(client_side, upstream_side, handover));
            let (mut parts, _) = resp.into_parts();
            parts.extensions.insert(FromApp);
            return Ok(Response::from_parts(parts, full(bytes::Bytes::new())));
        }
    }
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    drop_authd_cookies(app, &mut rparts.headers);
    if !app.cors_origins.is_empty() {
        // With --cors-origin authd answers for CORS (SPEC §9: the exact
        // origin, never `*`); the app's own answer would contradict it.
        for name in ["access-control-allow-origin", "access-control-allow-credentials"] {
            rparts.headers.remove(name);
        }
    }
    rparts.extensions.insert(FromApp);
    Ok(Response::from_parts(rparts, super::response::stream(rbody.map_err(|e| -> BoxError { Box::new(e) }))))
}

/// Marks a response as the app's own (not one authd made on the proxy
/// route, such as its 401, 303 or 403).
#[derive(Clone, Copy)]
pub struct FromApp;

/// The `Upgrade` protocol of a request that asks for one (`Connection: upgrade`).
fn upgrade_protocol(h: &HeaderMap) -> Option<HeaderValue> {
    let asks = h
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    asks.then(|| h.get(hyper::header::UPGRADE).cloned()).flatten()
}

/// Copies bytes both ways between an upgraded client and upstream connection
/// (WebSockets), until either side closes or authd stops. The client
/// connection's `--max-conns` slot stays taken meanwhile (`handover`; absent
/// only for requests that did not come through [`super::serve`]).
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    handover: Option<Handover>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!("upgrade failed: {e}");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    let stopping = async {
        match handover {
            Some(h) => h.stopping().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = copied {
                tracing::debug!("upgraded connection ended: {e}");
            }
        }
        () = stopping => tracing::debug!("closing an upgraded connection: stopping"),
    }
}

/// Whether an upstream failure was caused by an error of type `T`: the
/// request body passing `--max-body`, or the client's body failing.
fn caused_by<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<T>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The client's request body failed while it was passed on (malformed
/// chunks, a connection cut short): the client's fault, not the app's.
#[derive(Debug)]
struct ClientBody(hyper::Error);

impl std::fmt::Display for ClientBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client's request body: {}", self.0)
    }
}

impl std::error::Error for ClientBody {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The client's request body stopped coming for [`BODY_IDLE`] while it was
/// passed on: the upload is abandoned (408), as authd's own routes do, so a
/// stalled client holds neither its connection nor one to the app.
#[derive(Debug)]
struct BodyStalled;

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client's request body stalled")
    }
}

impl std::error::Error for BodyStalled {}

/// The client's body on its way to the app: its errors are the client's
/// ([`ClientBody`]), and a silence of [`BODY_IDLE`] while the app waits
/// for more ends it ([`BodyStalled`]). The clock runs only while the app
/// asks for the next frame and the client has none to give.
struct Streamed<B> {
    inner: B,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Streamed<B> {
    fn new(inner: B) -> Self {
        Streamed { inner, idle: None }
    }
}

impl<B> hyper::body::Body for Streamed<B>
where
    B: hyper::body::Body<Data = bytes::Bytes, Error = hyper::Error> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(other) => {
                self.idle = None;
                Poll::Ready(other.map(|frame| frame.map_err(|e| -> BoxError { Box::new(ClientBody(e)) })))
            }
            Poll::Pending => {
                let idle = self.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep(BODY_IDLE)));
                match idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The answer to an anonymous request when `--require-login` is set:
/// browsers go to the login page, API clients get `refusal` (a 401). A browser is a client
/// that asks for HTML (`Accept: text/html`, as every page load does) or says
/// it is navigating (`Sec-Fetch-Mode: navigate`); a script's `fetch` asking
/// for JSON and curl's `Accept: */*` are API clients.
fn login_required(headers: &HeaderMap, uri: &Uri, refusal: ApiError) -> Response<Body> {
    if is_browser(headers) {
        let dest = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut r = super::response::empty(StatusCode::SEE_OTHER);
        if let Ok(v) = HeaderValue::from_str(&super::pages::login_url_for(dest)) {
            r.headers_mut().insert(hyper::header::LOCATION, v);
        }
        r
    } else {
        refusal.into_response()
    }
}

/// Whether a request comes from a browser showing the answer as a page: it
/// asks for HTML or says it is navigating (see [`login_required`]).
fn is_browser(headers: &HeaderMap) -> bool {
    let accepts_html = headers
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("text/html"));
    accepts_html || headers.get("sec-fetch-mode").is_some_and(|v| v.as_bytes() == b"navigate")
}

/// 403 `XSRF check failed` for the app's form: a page for a browser (as
/// authd's own forms answer), Jira's JSON error for any other client.
fn xsrf_refused(headers: &HeaderMap) -> Result<Response<Body>, ApiError> {
    if is_browser(headers) {
        Ok(super::pages::xsrf_refused("/", "Back to the start page"))
    } else {
        Err(xsrf_failed())
    }
}

/// The headers sent to the app: the client's, minus hop-by-hop, identity
/// copies and authd's secret cookies; plus identity and forwarding headers.
fn upstream_headers(app: &App, client: &HeaderMap, ctx: &Ctx, who: Option<&Authenticated>) -> HeaderMap {
    let mut h = client.clone();
    strip_hop_by_hop(&mut h);
    for name in IDENTITY {
        h.remove(name);
    }
    // `X_Authd_User` too: CGI, WSGI and PHP turn `-` and `_` into the same
    // variable name, so an app could not tell the copy from authd's header.
    let lookalikes: Vec<HeaderName> = h
        .keys()
        .filter(|n| n.as_str().contains('_') && IDENTITY.contains(&n.as_str().replace('_', "-").as_str()))
        .cloned()
        .collect();
    for name in lookalikes {
        h.remove(name);
    }
    h.remove(COOKIE);
    // HTTP/2 clients send each cookie as its own field; the app gets one
    // `Cookie` header, as RFC 9113 §8.2.3 asks of a proxy to HTTP/1.1.
    // The other pairs go on byte for byte (quotes, bytes outside ASCII and
    // all): the app reads its cookies as it would without authd.
    let names = &app.cookie_names;
    let mut kept: Vec<u8> = Vec::new();
    for pair in client.get_all(COOKIE).iter().flat_map(|v| v.as_bytes().split(|b| *b == b';')) {
        let pair = pair.trim_ascii();
        // The name as authd's own parser reads it (lossy UTF-8, Unicode
        // space trimmed), so what logged the request in never passes.
        let raw_name = pair.split(|b| *b == b'=').next().unwrap_or_default();
        let name = String::from_utf8_lossy(raw_name);
        let name = name.trim();
        if pair.is_empty() || name == names.session || name == names.remember {
            continue;
        }
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(pair);
    }
    if let Ok(v) = HeaderValue::from_bytes(&kept) {
        if !kept.is_empty() {
            h.insert(COOKIE, v);
        }
    }
    // An authd API token is a credential for authd, not for the app: gone
    // whether it logged the request in, lost to a session cookie or failed,
    // and in whichever of several `Authorization` headers it came.
    let tokens = client
        .get_all(hyper::header::AUTHORIZATION)
        .iter()
        .any(|v| super::app::holds_api_token(v.as_bytes()));
    if ctx.via_token || tokens {
        h.remove(hyper::header::AUTHORIZATION);
    }
    if let Some(a) = who {
        insert_identity(&mut h, &a.user);
        if let Some(v) = super::app::ausername(&a.user.name) {
            h.insert(HeaderName::from_static("x-ausername"), v);
        }
        if let Some(s) = &a.session {
            if let Ok(v) = HeaderValue::from_str(&app.auth.session_xsrf(&a.user, &s.record)) {
                h.insert(HeaderName::from_static("x-authd-xsrf-token"), v);
            }
        }
    }
    let forwarded_for = match client.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", ctx.peer.ip()),
        None => ctx.peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        h.insert("x-forwarded-for", v);
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    if let Some(host) = app.base(ctx).strip_prefix("https://").and_then(|b| HeaderValue::from_str(b).ok()) {
        h.insert("x-forwarded-host", host.clone());
        h.insert(HOST, host);
    }
    h
}

/// Removes the app's `Set-Cookie`s for authd's own cookie names: a servlet
/// app's `JSESSIONID` would replace the browser's authd session.
fn drop_authd_cookies(app: &App, h: &mut HeaderMap) {
    let names = &app.cookie_names;
    let ours = |v: &HeaderValue| {
        let name = v.as_bytes().split(|&b| b == b'=').next().unwrap_or_default().trim_ascii();
        [&names.session, &names.remember, &names.xsrf].iter().any(|n| n.as_bytes() == name)
    };
    if !h.get_all(SET_COOKIE).iter().any(ours) {
        return;
    }
    let kept: Vec<HeaderValue> = h.get_all(SET_COOKIE).iter().filter(|v| !ours(v)).cloned().collect();
    h.remove(SET_COOKIE);
    for v in kept {
        h.append(SET_COOKIE, v);
    }
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<String> = h
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .collect();
    for name in HOP_BY_HOP.iter().copied().chain(listed.iter().map(String::as_str)) {
        h.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        assert_eq!(parse_upstream("http://127.0.0.1:3000/").as_deref(), Ok("http://127.0.0.1:3000"));
        assert!(parse_upstream("https://x").is_err());
        assert!(parse_upstream("http://x/app").is_err());
        assert!(parse_upstream("nonsense").is_err());
    }

    #[test]
    fn hop_by_hop_headers_go_including_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "5".parse().unwrap());
        h.insert("upgrade", "foo".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}

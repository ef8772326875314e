//! The session check's short way: `GET /rest/auth/1/session` and
//! `GET /rest/authd/1/verify` with a session in the store's read cache, the
//! requests browsers, scripts and proxies send most (bench/PROFILE.md).
//!
//! [`App::answer_now`] (called for requests without a body) answers them
//! before the general path
//! ([`App::handle`]) builds its per-request state, and without waiting, so
//! the connection does not box a handler either. It takes only requests
//! whose answer the general path would make from the same few things (the
//! method, the path, the `Host`, one `Cookie` header, `X-Authd-Passive`,
//! and for forward auth a safe `X-Forwarded-Method`) and declines everything
//! else before it has done anything. It uses the same pieces as the general
//! path: the session rules ([`Auth::session_now`]), the JSON writers, and the
//! header helpers `finish` uses. `tests/it/hot.rs` sends each request both
//! ways and compares the answers.
//!
//! [`Auth::session_now`]: crate::auth::Auth::session_now

use std::time::Instant;

use hyper::header::{HeaderValue, CACHE_CONTROL, COOKIE, HOST};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

use super::app::{header_bytes, identity_headers, passive, request_line_bytes, App};
use super::authd_api::verify_json;
use super::proxy::insert_identity;
use super::response::{with_body, Body};
use super::session_api::current_json;
use crate::auth::{Lookup, SessionUse};
use crate::cookies;
use crate::metrics::Route;
use crate::xsrf;

impl App {
    /// The answer to a session check with a cached live session, or `None`
    /// (nothing done) for the general path to answer.
    pub fn answer_now(&self, req: &Parts, started: Instant) -> Option<Response<Body>> {
        let route = match req.uri.path() {
            "/rest/auth/1/session" => Route::Session,
            "/rest/authd/1/verify" => Route::Verify,
            _ => return None,
        };
        if req.method != Method::GET {
            return None;
        }
        let mut head = request_line_bytes(&req.method, &req.uri);
        let (mut cookie, mut host, mut passive_use, mut forwarded_method) = (None, None, false, false);
        for (name, value) in &req.headers {
            head += header_bytes(name, value);
            if name == COOKIE {
                if cookie.replace(value).is_some() {
                    return None;
                }
            } else if name == HOST {
                host = host.or(Some(value));
            } else {
                match name.as_str() {
                    // An origin to check or answer (CORS) is the general path's.
                    "origin" => return None,
                    "x-authd-passive" => passive_use = passive(value),
                    // The first one counts (as `verify` reads it): a safe method only.
                    "x-forwarded-method" if route == Route::Verify && !forwarded_method => {
                        forwarded_method = true;
                        let safe = Method::from_bytes(value.as_bytes().trim_ascii())
                            .is_ok_and(|m| !xsrf::is_unsafe(&m));
                        if !safe {
                            return None;
                        }
                    }
                    _ => {}
                }
            }
        }
        if head > self.max_header_bytes {
            return None;
        }
        let cookie = std::str::from_utf8(cookie?.as_bytes()).ok()?;
        let id = cookies::first_session_id(cookie, &self.cookie_names.session)?;
        let forward_auth = route == Route::Verify;
        let Lookup::Found(SessionUse { user, session, new_id: None }) =
            self.auth.session_now(id.key(), passive_use, !forward_auth)?
        else {
            // Not a live session (or one to move): the general path says why.
            return None;
        };
        let mut resp = if forward_auth {
            let mut r = with_body(
                StatusCode::OK,
                "application/json",
                verify_json(&user.name, crate::admin::roles(&user)),
            );
            insert_identity(r.headers_mut(), &user);
            r
        } else {
            let authority = match req.uri.authority() {
                Some(a) => Some(a.as_str()),
                None => host.and_then(|h| h.to_str().ok()),
            };
            with_body(StatusCode::OK, "application/json", current_json(self.base_parts_for(authority), &user))
        };
        let h = resp.headers_mut();
        identity_headers(h, Some(&user.name), Some(session.key.handle()), Some(session.expires));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.cors_headers(h, None);
        self.auth.metrics.request(route, 200, started.elapsed());
        tracing::trace!(session = %session.key.handle(), "session check answered the short way");
        Some(resp)
    }
}

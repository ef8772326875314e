//! Responses: Jira-shaped errors and the small builders handlers use.
//!
//! Every error a client sees has Jira's shape,
//! `{"errorMessages":["..."],"errors":{}}`. Failures of authd itself are
//! logged here and reported without detail.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::admin::AdminError;
use crate::store::StoreError;

/// The error of a streamed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response: authd's own answers are bytes in hand
/// (no allocation for a box), proxied ones a stream.
pub type Body = Either<Full<Bytes>, BoxBody<Bytes, BoxError>>;

/// A response body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// A streamed response body.
pub fn stream<B>(body: B) -> Body
where
    B: hyper::body::Body<Data = Bytes, Error = BoxError> + Send + Sync + 'static,
{
    Either::Right(body.boxed())
}

/// Headers a response of authd's has room for from the start: its own
/// (content type, SPEC §3's identity headers, cache control, cookies, CORS)
/// and the `date` and `content-length` hyper adds over HTTP/2. A
/// `HeaderMap` made empty starts with room for six and grows (rehashing
/// every entry) at the seventh, which every session check over HTTP/2
/// reached.
const HEADER_ROOM: usize = 12;

/// A response of authd's own: `status`, `body`, and a header map with
/// [`HEADER_ROOM`].
fn response(status: StatusCode, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = hyper::HeaderMap::with_capacity(HEADER_ROOM);
    r
}

/// A response with a status, a content type and a body.
pub fn with_body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = response(status, full(body));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_body(status, "application/json", bytes),
        Err(e) => ApiError::internal(format!("could not render JSON: {e}")).into_response(),
    }
}

/// A JSON string literal; plain text is copied as is, anything else goes through serde_json.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_str_content(out, s);
    out.push(b'"');
}

/// What [`json_str`] writes between the quotes.
pub fn json_str_content(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.extend_from_slice(s.as_bytes());
    } else if let Ok(v) = serde_json::to_vec(s) {
        // serde_json writes a string literal: its quotes are the first and last byte.
        out.extend_from_slice(v.get(1..v.len().saturating_sub(1)).unwrap_or_default());
    }
}

/// An empty response.
pub fn empty(status: StatusCode) -> Response<Body> {
    response(status, full(Bytes::new()))
}

/// The `WWW-Authenticate` challenge of every 401 authd writes (RFC 9110
/// requires one): Jira's own for its login resource, "log in by POSTing to
/// the session API". Not `Basic`, which would make browsers ask for a
/// password in a dialog and Java's `Authenticator` send one.
pub const CHALLENGE: &str = "JIRA REST POST";

/// An error answer: status, Jira-shaped message, extra headers.
#[derive(Debug)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// The message for `errorMessages`.
    pub message: String,
    /// Extra headers (`X-Seraph-LoginReason`, `Retry-After`, ...).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), headers: Vec::new() }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found")
    }

    /// 401 for a request that carried no usable credentials.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "You are not authenticated. Authentication required to perform this operation.",
        )
    }

    /// 401 for a request whose session cookie is unknown or expired.
    pub fn session_expired() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Your session is invalid or has expired. Please log in again.")
    }

    /// 403 for a logged-in user who lacks a role.
    pub fn forbidden_role() -> Self {
        Self::new(StatusCode::FORBIDDEN, "You do not have the permission to perform this operation.")
            .header("x-seraph-loginreason", "AUTHORISATION_FAILED")
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
            .header("retry-after", &retry_after_secs.to_string())
    }

    /// 500, logged; the client learns nothing of the cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }

    /// Adds a header; names and values here are authd's own constants or
    /// numbers, and an invalid one is dropped rather than failing the answer.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    /// The Jira-shaped response.
    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "errorMessages": [self.message], "errors": {} });
        let mut r = json(self.status, &body);
        for (k, v) in self.headers {
            r.headers_mut().append(k, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().entry(WWW_AUTHENTICATE).or_insert(HeaderValue::from_static(CHALLENGE));
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Conflict(what) => {
                ApiError::new(StatusCode::CONFLICT, format!("{what} already exists"))
            }
            StoreError::Storage(_) | StoreError::Closed => {
                // Once a second: a store that is down fails every request.
                static LOGGED: AtomicU64 = AtomicU64::new(0);
                let second = crate::clock::Clock::now(&crate::clock::SystemClock).0 / 1000;
                if LOGGED.swap(second, Ordering::Relaxed) != second {
                    tracing::error!("store unavailable: {e}");
                } else {
                    tracing::debug!("store unavailable: {e}");
                }
                ApiError::unavailable("The session store is unavailable; try again shortly.", 5)
            }
            StoreError::Corrupt(_) => ApiError::internal(e),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::InvalidName(_)
            | AdminError::InvalidPassword(_)
            | AdminError::InvalidEmail(_)
            | AdminError::InvalidLabel => ApiError::bad_request(e.to_string()),
            AdminError::UserExists(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            AdminError::NoSuchUser(_) | AdminError::NoSuchSession(_) | AdminError::NoSuchToken(_) => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            AdminError::WrongPassword => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            // The password-change route answers this itself, as a login
            // refused for the challenge (session_api::change_password).
            AdminError::Challenged(_) => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            AdminError::Busy => ApiError::unavailable(e.to_string(), 1),
            AdminError::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_only_when_they_need_it() {
        for s in ["plain", "a\"b\\c\u{1}", "tab\there", "jürgen", ""] {
            let mut out = Vec::new();
            json_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        let mut out = Vec::new();
        json_str(&mut out, "a\"b\\c\u{1}");
        assert_eq!(out, br#""a\"b\\c\u0001""#);
    }
}

//! What must hold for the body of `POST /rest/auth/1/session` (SPEC §3, §10):
//! `{"username":"u","password":"p"}`, optional `"rememberMe": true`.
//!
//! `authd::http::request::parse_json` reads it into the handler's
//! `LoginBody`, which is private to `src/http/session_api.rs`; [`LoginBody`]
//! below mirrors it field for field and attribute for attribute (keep the
//! two in step). For every input:
//! - parsing never panics; a refusal is a 400 `ApiError` with one of the
//!   four messages, and for a well-formed JSON object it says "missing a
//!   field or has a wrong type";
//! - an accepted body is UTF-8 and a JSON object (serde alone would also
//!   read an array `[username, password]` into the struct) whose `username`
//!   and `password` are strings equal to what was read, and whose
//!   `rememberMe` is absent or `null` (both read as `false`) or a boolean
//!   equal to what was read; other members are ignored (but must be valid JSON);
//! - conversely, every object with string `username` and `password`, a
//!   boolean, `null` or absent `rememberMe`, and none of those three names twice, is
//!   accepted, whatever else it holds (however deeply nested);
//! - `read_body` with the login limit (16 KiB) returns the body unchanged
//!   when it fits, and refuses with 413 a body over the limit or a declared
//!   `Content-Length` over it, whether or not the declaration is true (the
//!   input chooses the length, up to 24 KiB, and the declaration).
//!
//! This file is also compiled into `tests/it` (see `tests/it/corpus.rs`),
//! so it uses only `authd`'s public API, `std`, and crates `authd` itself
//! depends on (`serde`, `serde_json`, `hyper`, `http-body-util`, `bytes`).

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use authd::http::request::{parse_json, read_body, LOGIN_BODY_LIMIT};
use authd::http::response::ApiError;
use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::{HeaderMap, StatusCode};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The mirror of `session_api::LoginBody`.
#[derive(Deserialize, Debug)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default, rename = "rememberMe")]
    remember_me: Option<bool>,
}

const NOT_JSON: &str = "The body is not valid JSON: ";
const WRONG_SHAPE: &str = "The JSON body is missing a field or has a wrong type: ";
const NOT_UTF8: &str = "The body is not valid UTF-8.";
const NOT_AN_OBJECT: &str = "The JSON body must be an object.";

/// Panics if any property above fails for `data`.
pub fn check(data: &[u8]) {
    check_parse(data);
    check_limit(data);
}

fn check_parse(data: &[u8]) {
    let parsed = parse_json::<LoginBody>(data);
    let text = std::str::from_utf8(data).ok();
    // Not `serde_json::Value`: it stops at 128 levels of nesting, where
    // serde skips an ignored member of any depth without recursing.
    let top = text.and_then(|t| serde_json::from_str::<Top>(t).ok());
    let shown = || String::from_utf8_lossy(data);
    let body = match &parsed {
        Ok(body) => body,
        Err(e) => return check_refusal(e, top.as_ref(), &shown()),
    };
    let Some(Top(members)) = &top else { panic!("accepted {body:?} from {:?}, not a JSON object", shown()) };
    let only =
        |name: &str| -> Vec<&Member> { members.iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect() };
    assert_eq!(only("username"), [&Member::Str(body.username.clone())], "{:?}", shown());
    assert_eq!(only("password"), [&Member::Str(body.password.clone())], "{:?}", shown());
    match only("rememberMe").as_slice() {
        [] | [Member::Null] => assert_eq!(body.remember_me, None),
        [Member::Bool(b)] => assert_eq!(Some(*b), body.remember_me),
        other => panic!("rememberMe {other:?} accepted as {:?} in {:?}", body.remember_me, shown()),
    }
}

/// A refusal is a 400 that says why, and never of a well-formed body.
fn check_refusal(e: &ApiError, top: Option<&Top>, shown: &str) {
    assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e:?}");
    // A well-formed object can only be of the wrong shape; anything else may
    // be refused for its encoding, its syntax, not being an object, or (when
    // serde notices that first) its shape.
    let allowed: &[&str] =
        if top.is_some() { &[WRONG_SHAPE] } else { &[NOT_JSON, WRONG_SHAPE, NOT_UTF8, NOT_AN_OBJECT] };
    assert!(allowed.iter().any(|m| e.message.starts_with(m)), "{:?} for {shown:?}", e.message);
    let Some(Top(members)) = top else { return };
    let values =
        |name: &str| -> Vec<&Member> { members.iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect() };
    let one_string = |name: &str| matches!(values(name).as_slice(), [Member::Str(_)]);
    let remember = matches!(values("rememberMe").as_slice(), [] | [Member::Bool(_)] | [Member::Null]);
    assert!(!(one_string("username") && one_string("password") && remember), "{shown:?} refused: {e:?}");
}

/// The members of a top-level JSON object, in order, repeats kept; the
/// values of the body's three fields are read, the others skipped.
struct Top(Vec<(String, Member)>);

/// A member's value as far as the login body cares.
#[derive(Debug, PartialEq)]
enum Member {
    Str(String),
    Bool(bool),
    Null,
    Other,
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Top;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
                let mut members = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v = if ["username", "password", "rememberMe"].contains(&k.as_str()) {
                        map.next_value::<Member>()?
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        Member::Other
                    };
                    members.push((k, v));
                }
                Ok(Top(members))
            }
        }
        d.deserialize_map(Members)
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AnyValue;
        impl<'de> Visitor<'de> for AnyValue {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Member, E> {
                Ok(Member::Str(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Member, E> {
                Ok(Member::Bool(v))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_unit<E>(self) -> Result<Member, E> {
                Ok(Member::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Member::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Member::Other)
            }
        }
        d.deserialize_any(AnyValue)
    }
}

/// The body limit, with a length and a `Content-Length` the input chooses.
fn check_limit(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let len = usize::from(u16::from_le_bytes([byte(0), byte(1)])) % (LOGIN_BODY_LIMIT * 3 / 2 + 1);
    let payload: Vec<u8> =
        if data.is_empty() { vec![b' '; len] } else { data.iter().copied().cycle().take(len).collect() };
    let declared: Option<String> = match byte(2) % 5 {
        0 => None,
        1 => Some(len.to_string()),
        2 => Some((len / 2).to_string()),
        3 => Some((len + usize::from(byte(3)) * 64).to_string()),
        _ => Some(String::from_utf8_lossy(data.get(3..8).unwrap_or_default()).into_owned()),
    };
    let mut headers = HeaderMap::new();
    if let Some(Ok(v)) = declared.as_deref().map(HeaderValue::from_str) {
        headers.insert(CONTENT_LENGTH, v);
    }
    let declared_len = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let body = http_body_util::Full::new(Bytes::from(payload.clone()));
    let Poll::Ready(got) = poll_once(read_body(&headers, body, LOGIN_BODY_LIMIT)) else {
        panic!("reading a body held in memory did not finish at once");
    };
    let too_large = len > LOGIN_BODY_LIMIT || declared_len.is_some_and(|d| d > LOGIN_BODY_LIMIT as u64);
    match got {
        Ok(bytes) => {
            assert!(!too_large, "{len} bytes (declared {declared_len:?}) accepted");
            assert_eq!(bytes.as_ref(), payload.as_slice());
        }
        Err(e) => {
            assert!(too_large, "{len} bytes (declared {declared_len:?}) refused: {e:?}");
            assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
}

/// Polls a future once (an in-memory body needs no waiting).
fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
    let mut f = std::pin::pin!(f);
    f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

//! Reading requests: bodies with limits, JSON, forms (url-encoded,
//! multipart/form-data, text/plain), queries, percent-decoding, and a short
//! description of the client's browser.
//!
//! Every malformed input becomes an [`ApiError`] with a 4xx status.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
use hyper::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::response::ApiError;

/// Largest login body (SPEC §3).
pub const LOGIN_BODY_LIMIT: usize = 16 * 1024;

/// How much of a body nobody read is still read and thrown away ...
pub const DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// ... and for how long at most.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// A request's body as handlers see it.
///
/// A handler may answer without reading the body: a 413 decided from
/// `Content-Length`, a 415, a 401 or 403 found from the headers. Left
/// unread, the body's bytes would meet a closed connection: over HTTP/1.1
/// the kernel answers them with a TCP reset that can destroy the answer
/// before the client reads it, over HTTP/2 the stream is reset. So when
/// this body is dropped unfinished, the rest is read and discarded in the
/// background (at most [`DRAIN_BYTES`] for at most [`DRAIN_TIME`]) while
/// the answer goes out, as nginx's lingering close does. A client that sent
/// `Expect: 100-continue` and was never told to go on has sent nothing, so
/// there is nothing to drain.
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    awaiting_continue: bool,
}

impl RequestBody {
    /// A body with nothing in it.
    pub fn empty() -> RequestBody {
        RequestBody { inner: None, awaiting_continue: false }
    }

    /// Wraps the body of a request with these headers.
    pub fn new(inner: Incoming, headers: &HeaderMap) -> RequestBody {
        if inner.is_end_stream() {
            return RequestBody::empty();
        }
        let awaiting_continue =
            headers.get(EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        RequestBody { inner: Some(inner), awaiting_continue }
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        this.awaiting_continue = false;
        match this.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else { return };
        // Past DRAIN_BYTES the connection is reset anyway: no use reading.
        let too_long = body.size_hint().exact().is_some_and(|n| n > DRAIN_BYTES as u64);
        if self.awaiting_continue || too_long || body.is_end_stream() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body, DRAIN_BYTES, DRAIN_TIME));
        }
    }
}

/// Reads and discards `body` until it ends, `limit` bytes have passed or
/// `time` is up; returns the bytes read.
pub async fn drain<B: HttpBody<Data = Bytes> + Unpin>(mut body: B, limit: usize, time: Duration) -> usize {
    let mut read = 0;
    let _ = tokio::time::timeout(time, async {
        while read < limit {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
    })
    .await;
    read
}

/// The longest a body being read may stay silent (as the header read timeout).
pub const BODY_IDLE: Duration = Duration::from_secs(10);

/// The 408 for a body that stopped coming for [`BODY_IDLE`].
pub fn body_stalled() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!("The request body stalled: nothing came for {} s.", BODY_IDLE.as_secs()),
    )
}

/// Reads a whole body, refusing one over `limit` bytes with 413 and one
/// that stops coming for [`BODY_IDLE`] with 408 (a stalled upload would
/// otherwise hold its connection: a request in flight is never idle).
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<super::response::BoxError>,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than {limit} bytes."),
        )
    };
    if let Some(len) =
        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let mut body = std::pin::pin!(body);
    let mut read = bytes::BytesMut::new();
    loop {
        // Outside a runtime (a fuzz harness polling by hand) there is no clock to time out by.
        let next = if tokio::runtime::Handle::try_current().is_ok() {
            tokio::time::timeout(BODY_IDLE, body.frame()).await
        } else {
            Ok(body.frame().await)
        };
        let frame = match next {
            Err(_) => return Err(body_stalled()),
            Ok(None) => return Ok(read.freeze()),
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(_))) => return Err(ApiError::bad_request("The request body could not be read.")),
        };
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > limit {
                return Err(too_large());
            }
            read.extend_from_slice(&data);
        }
    }
}

/// The media type of the request, lower-cased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    media_type_of(headers.get(CONTENT_TYPE)?)
}

/// The media type in a `Content-Type` value, lower-cased, without parameters.
pub fn media_type_of(value: &hyper::header::HeaderValue) -> Option<String> {
    let v = value.to_str().ok()?;
    let essence = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    Some(essence).filter(|e| !e.is_empty())
}

/// Requires `Content-Type: application/json` (415 otherwise).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers).as_deref() {
        Some("application/json") => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The request must have Content-Type: application/json.",
        )),
    }
}

/// Parses a JSON object body into `T`; malformed JSON, bytes that are not
/// UTF-8 (even in a field authd ignores), a top-level value that is not an
/// object (serde would read an array as a struct's fields in order), wrong
/// types and missing fields are 400.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(ApiError::bad_request("The body is not valid UTF-8."));
    };
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return Err(ApiError::bad_request("The JSON body must be an object."));
    }
    serde_json::from_str(text).map_err(|e| {
        let what = if e.is_data() {
            "The JSON body is missing a field or has a wrong type"
        } else {
            "The body is not valid JSON"
        };
        ApiError::bad_request(format!("{what}: {}", without_quoted_values(&e.to_string())))
    })
}

/// serde's message with each quoted value it cites left out (`string "…"`):
/// a password typed into the wrong field is not sent back.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            out.push_str("…\"");
            // Skip to the closing quote; the value is escaped as in Rust.
            while let Some(c) = chars.next() {
                match c {
                    '\\' => drop(chars.next()),
                    '"' => break,
                    _ => {}
                }
            }
        }
    }
    out
}

/// Decodes `application/x-www-form-urlencoded` strictly: bad percent
/// escapes or UTF-8 are an error, not silently replaced.
pub fn parse_urlencoded(input: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let bad = || ApiError::bad_request("The form or query string is not validly encoded.");
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let name = it.next().unwrap_or(b"");
            let value = it.next().unwrap_or(b"");
            Ok((
                decode_component(name, true).ok_or_else(bad)?,
                decode_component(value, true).ok_or_else(bad)?,
            ))
        })
        .collect()
}

/// What [`form_fields`] does with a field that is not UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Utf8 {
    /// A 400, as for any malformed input authd reads itself.
    Strict,
    /// U+FFFD in its place: only looking for a token in someone else's form.
    Lossy,
}

/// The fields of a form in any encoding an HTML form can send (SPEC §7),
/// from its `Content-Type` value: url-encoded (as [`parse_urlencoded`]),
/// `multipart/form-data` (RFC 7578: text fields in order, file parts
/// skipped) or `text/plain` (`name=value` lines). `None` for any other type.
pub fn form_fields(
    content_type: &str,
    body: &[u8],
    utf8: Utf8,
) -> Option<Result<Vec<(String, String)>, ApiError>> {
    let (essence, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    match essence.trim().to_ascii_lowercase().as_str() {
        "application/x-www-form-urlencoded" => Some(parse_urlencoded(body)),
        "multipart/form-data" => {
            let boundary = header_params(params).into_iter().find(|(k, _)| k == "boundary").map(|(_, v)| v);
            Some(match boundary.filter(|b| !b.is_empty() && b.len() <= 70) {
                Some(b) => multipart_fields(body, &b, utf8),
                None => Err(ApiError::bad_request("The multipart form has no boundary.")),
            })
        }
        "text/plain" => Some(
            body.split(|&b| b == b'\n')
                .filter_map(|line| {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let eq = line.iter().position(|&b| b == b'=')?;
                    Some((line.get(..eq)?, line.get(eq + 1..)?))
                })
                .map(|(k, v)| Ok((form_text(k, utf8)?, form_text(v, utf8)?)))
                .collect(),
        ),
        _ => None,
    }
}

fn form_text(bytes: &[u8], utf8: Utf8) -> Result<String, ApiError> {
    match (std::str::from_utf8(bytes), utf8) {
        (Ok(s), _) => Ok(s.to_string()),
        (Err(_), Utf8::Lossy) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        (Err(_), Utf8::Strict) => Err(ApiError::bad_request("The form is not valid UTF-8.")),
    }
}

/// The `;`-separated `name=value` parameters of a header value (names
/// lower-cased; values unquoted, so a `;` inside quotes stays in the value).
fn header_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let mut name = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && c != ';') {
            name.push(c);
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
            if chars.next_if_eq(&'"').is_some() {
                // No backslash escapes: browsers write `"` as %22 and a
                // backslash as itself (the HTML standard's form-data rules).
                value.extend(chars.by_ref().take_while(|&c| c != '"'));
                while chars.next_if(|&c| c != ';').is_some() {}
            } else {
                while let Some(c) = chars.next_if(|&c| c != ';') {
                    value.push(c);
                }
                value = value.trim().to_string();
            }
        }
        chars.next_if_eq(&';');
        let name = name.trim().to_ascii_lowercase();
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The text fields of a `multipart/form-data` body (RFC 7578, RFC 2046):
/// a delimiter is `--boundary` at the start of a line.
fn multipart_fields(body: &[u8], boundary: &str, utf8: Utf8) -> Result<Vec<(String, String)>, ApiError> {
    let bad = || ApiError::bad_request("The multipart form is malformed.");
    let delimiter = [b"\r\n--", boundary.as_bytes()].concat();
    // The first delimiter may open the body: read it as if a line ended before.
    let mut rest = &[b"\r\n", body].concat()[..];
    let mut out = Vec::new();
    let mut first = true;
    while let Some(at) = find(rest, &delimiter) {
        let part = rest.get(..at).unwrap_or_default();
        rest = rest.get(at + delimiter.len()..).unwrap_or_default();
        if !std::mem::take(&mut first) {
            if let Some(field) = multipart_part(part, utf8).ok_or_else(bad)? {
                out.push(field?);
            }
        }
        if rest.starts_with(b"--") {
            return Ok(out); // the close delimiter
        }
        // Transport padding, then the line's end.
        let padding = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        rest = rest.get(padding..).and_then(|r| r.strip_prefix(b"\r\n")).ok_or_else(bad)?;
    }
    Err(bad()) // no close delimiter: cut short
}

/// One body part: `None` if malformed, `Some(None)` for a file.
#[allow(clippy::type_complexity)]
fn multipart_part(part: &[u8], utf8: Utf8) -> Option<Option<Result<(String, String), ApiError>>> {
    let (head, value) = match part.strip_prefix(b"\r\n") {
        Some(value) => (&b""[..], value), // no header lines at all
        None => {
            let end = find(part, b"\r\n\r\n")?;
            (part.get(..end)?, part.get(end + 4..)?)
        }
    };
    let head = std::str::from_utf8(head).ok()?;
    let disposition = head.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-disposition").then_some(v)
    })?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    let params = header_params(params);
    if params.iter().any(|(k, _)| k == "filename" || k == "filename*") {
        return Some(None);
    }
    let name = params.into_iter().find(|(k, _)| k == "name").map(|(_, v)| v)?;
    Some(Some(form_text(value, utf8).map(|v| (name, v))))
}

/// The `atl_token` field of a form body in any form encoding.
pub fn form_token(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let fields = form_fields(ct, body, Utf8::Lossy)?.ok()?;
    fields.into_iter().find(|(k, _)| k == "atl_token").map(|(_, v)| v)
}

/// The query string of a URI as pairs.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    parse_urlencoded(query.unwrap_or("").as_bytes())
}

/// Percent-decodes one component; `plus_is_space` for forms and queries.
/// `None` for a broken escape or bytes that are not UTF-8.
pub fn decode_component(input: &[u8], plus_is_space: bool) -> Option<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = input.iter();
    while let Some(&b) = i.next() {
        match b {
            b'%' => {
                let hi = hex_val(*i.next()?)?;
                let lo = hex_val(*i.next()?)?;
                out.push(hi << 4 | lo);
            }
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode_component(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    encode_component_into(&mut out, s);
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
}

/// [`encode_component`], appended to `out`.
pub fn encode_component_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digit = |n: u8| HEX.get(usize::from(n)).copied().unwrap_or(b'0'); // n < 16
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', digit(b >> 4), digit(b & 15)]);
        }
    }
}

/// A short description of a browser from its `User-Agent`, e.g. `Firefox on Linux`.
pub fn describe_browser(user_agent: &str) -> String {
    let ua = user_agent;
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        if ua.contains("HeadlessChrome") {
            "Headless Chrome"
        } else {
            "Chrome"
        }
    } else if ua.contains("Safari/") {
        "Safari"
    } else {
        // A tool such as `curl/8.5.0` or `python-requests/2.31`: its name.
        let first = ua.split(['/', ' ']).next().unwrap_or("");
        return crate::store::codec::truncate_utf8(
            if first.is_empty() { "unknown client" } else { first },
            40,
        )
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    };
    let os = if ua.contains("Windows") {
        Some("Windows")
    } else if ua.contains("Android") {
        Some("Android")
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        Some("iOS")
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        Some("macOS")
    } else if ua.contains("Linux") || ua.contains("X11") {
        Some("Linux")
    } else {
        None
    };
    match os {
        Some(os) => format!("{browser} on {os}"),
        None => browser.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use bytes::Bytes;
    use hyper::body::{Body, Frame};

    /// A body of `left` frames of 1 KiB, then (if `stall`) one that never comes.
    struct Frames {
        left: usize,
        stall: bool,
    }

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return if self.stall { Poll::Pending } else { Poll::Ready(None) };
            }
            self.left -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; 1024])))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn drain_reads_to_the_end_or_the_limit_or_the_deadline() {
        let ten_secs = Duration::from_secs(10);
        assert_eq!(super::drain(Frames { left: 3, stall: false }, 1 << 20, ten_secs).await, 3 * 1024);
        // Stops once the limit is passed, not at the body's end.
        assert_eq!(super::drain(Frames { left: 100, stall: false }, 4000, ten_secs).await, 4 * 1024);
        // A client that stops sending is given up on when the time is up.
        let started = tokio::time::Instant::now();
        assert_eq!(super::drain(Frames { left: 2, stall: true }, 1 << 20, ten_secs).await, 2 * 1024);
        assert_eq!(started.elapsed(), ten_secs);
    }

    #[derive(serde::Deserialize, Debug)]
    struct Login {
        username: String,
    }

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn tokens_are_found_in_every_form_encoding() {
        let h = headers("application/x-www-form-urlencoded");
        assert_eq!(form_token(&h, b"a=1&atl_token=T%5F1&b=2").as_deref(), Some("T_1"));
        let h = headers("text/plain");
        assert_eq!(form_token(&h, b"a=1\r\natl_token=T_2\r\n").as_deref(), Some("T_2"));
        let h = headers("multipart/form-data; boundary=XyZ");
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"atl_token\"\r\n\r\nT_3\r\n--XyZ--\r\n";
        assert_eq!(form_token(&h, body).as_deref(), Some("T_3"));
        assert_eq!(form_token(&headers("application/json"), b"{\"atl_token\":\"x\"}"), None);
        assert_eq!(form_token(&headers("multipart/form-data"), b"junk"), None);
    }

    #[test]
    fn parse_json_wants_a_utf8_object() {
        let ok: Login = parse_json(br#" {"username":"ann","extra":[1]}"#).unwrap();
        assert_eq!(ok.username, "ann");
        for bad in [
            &br#"["ann"]"#[..],
            b"\"ann\"",
            b"",
            b"{\"zzz\":\"\xff\",\"username\":\"x\"}",
            b"{\"username\":1}",
        ] {
            assert!(parse_json::<Login>(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct WithFlag {
        remember_me: bool,
    }

    #[test]
    fn a_json_error_does_not_repeat_the_values_it_cites() {
        let e = parse_json::<WithFlag>(br#"{"remember_me":"Secret \"quoted\" pw"}"#).unwrap_err();
        assert!(!e.message.contains("Secret") && !e.message.contains("pw"), "{}", e.message);
        assert!(e.message.contains("invalid type: string \"…\", expected a boolean"), "{}", e.message);
        let e = parse_json::<WithFlag>(b"{}").unwrap_err();
        assert!(e.message.contains("missing field `remember_me`"), "{}", e.message);
    }

    use super::*;

    #[test]
    fn urlencoded_forms_decode_strictly() {
        let f = parse_urlencoded(b"a=1&b=x+y%21&&c=&d").unwrap();
        assert_eq!(
            f,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y!".into()),
                ("c".into(), "".into()),
                ("d".into(), "".into())
            ]
        );
        assert!(parse_urlencoded(b"a=%zz").is_err());
        assert!(parse_urlencoded(b"a=%4").is_err());
        assert!(parse_urlencoded(b"a=%ff").is_err());
        assert_eq!(parse_urlencoded(b"n=j%C3%BCrgen").unwrap()[0].1, "jürgen");
    }

    #[test]
    fn forms_are_read_in_every_encoding_a_browser_sends() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let fields = |ct: &str, body: &[u8]| form_fields(ct, body, Utf8::Strict).expect("a form type");
        let want = pairs(&[("os_username", "jürgen"), ("atl_token", "T_1")]);
        assert_eq!(
            fields("application/x-www-form-urlencoded", b"os_username=j%C3%BCrgen&atl_token=T_1").unwrap(),
            want
        );
        assert_eq!(fields("text/plain", "os_username=jürgen\r\natl_token=T_1\r\n".as_bytes()).unwrap(), want);
        // Multipart as browsers write it: a file part (skipped) whose name
        // holds `;` and a quote (%22), a quoted boundary, a value with CRLFs
        // and `--b` inside, a name with `;` in its quotes, transport padding.
        let body = "preamble\r\n--B0und\r\nContent-Disposition: form-data; name=\"os_username\"\r\n\r\njürgen\r\n\
                    --B0und  \r\ncontent-disposition: form-data; name=\"f\"; filename=\"report; v2 %22x%22.pdf\"\r\n\
                    Content-Type: application/pdf\r\n\r\nBINARY\r\n--B0un\r\n\
                    --B0und\r\nContent-Disposition: form-data; name=\"note;x\"\r\n\r\na\r\n--b see --B0und\r\n\
                    --B0und\r\nContent-Disposition: form-data; name=atl_token\r\n\r\nT_1\r\n--B0und--\r\nepilogue";
        let body = body.replace("BINARY", "\u{1}").into_bytes();
        let at = body.iter().position(|&b| b == 1).unwrap();
        let body = [&body[..at], &b"\xff\xfe"[..], &body[at + 1..]].concat();
        let got = fields("multipart/form-data; boundary=\"B0und\"", &body).unwrap();
        assert_eq!(
            got,
            pairs(&[("os_username", "jürgen"), ("note;x", "a\r\n--b see --B0und"), ("atl_token", "T_1")])
        );
        assert_eq!(fields("Multipart/Form-Data;charset=utf-8;BOUNDARY=B0und", &body).unwrap(), got);
        // Malformed multipart is a 400, never a panic.
        for (ct, bad) in [
            ("multipart/form-data", &body[..]),
            ("multipart/form-data; boundary=", &body[..]),
            (
                "multipart/form-data; boundary=B0und",
                b"--B0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1",
            ),
            ("multipart/form-data; boundary=B0und", b"--B0und\r\nX: y\r\n\r\n1\r\n--B0und--"),
            (
                "multipart/form-data; boundary=B0und",
                b"--B0und\r\nContent-Disposition: form-data\r\n\r\n1\r\n--B0und--",
            ),
            ("multipart/form-data; boundary=B0und", b"--B0und junk\r\n\r\n--B0und--"),
            ("multipart/form-data; boundary=B0und", b"nothing at all"),
        ] {
            let e = fields(ct, bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{ct}: {:?}", String::from_utf8_lossy(bad));
        }
        // A text field that is not UTF-8: 400 when authd reads the form,
        // U+FFFD when it only looks for a token in an app's form.
        let latin1 = b"--b\r\nContent-Disposition: form-data; name=\"u\"\r\n\r\nj\xfcrgen\r\n--b--\r\n";
        assert!(fields("multipart/form-data; boundary=b", latin1).is_err());
        assert!(fields("text/plain", b"u=j\xfcrgen\r\n").is_err());
        let lossy = form_fields("multipart/form-data; boundary=b", latin1, Utf8::Lossy).unwrap().unwrap();
        assert_eq!(lossy, pairs(&[("u", "j\u{fffd}rgen")]));
        assert!(form_fields("application/json", b"{}", Utf8::Strict).is_none());
        assert!(form_fields("", b"a=1", Utf8::Strict).is_none());
    }

    #[test]
    fn header_parameters_keep_quoted_semicolons() {
        let p = header_params(r#" name="a;b"; filename="c\%22d;e" ;X=Y; flag; ="no name"; charset = utf-8"#);
        let want =
            [("name", "a;b"), ("filename", "c\\%22d;e"), ("x", "Y"), ("flag", ""), ("charset", "utf-8")];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(p, want);
        assert!(header_params("").is_empty());
        assert_eq!(header_params(r#"a="unterminated"#), [("a".to_string(), "unterminated".to_string())]);
    }

    #[test]
    fn components_round_trip() {
        for s in ["plain", "a b&c=d", "jürgen@example.com", "%"] {
            assert_eq!(decode_component(encode_component(s).as_bytes(), false).as_deref(), Some(s));
        }
    }

    #[test]
    fn browsers_are_summarised() {
        let ff = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(describe_browser(ff), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
        assert_eq!(describe_browser(chrome), "Chrome on Windows");
        assert_eq!(describe_browser("curl/8.5.0"), "curl");
        assert_eq!(describe_browser(""), "unknown client");
        assert_eq!(describe_browser("\u{1}evil\nline"), "evil\nline".replace('\n', ""));
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, "Application/JSON; charset=utf-8".parse().unwrap());
        assert_eq!(media_type(&h).as_deref(), Some("application/json"));
        assert!(require_json(&h).is_ok());
        h.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(require_json(&h).is_err());
    }
}

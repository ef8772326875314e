//! What must hold for the login page's form (SPEC §8, §10): an
//! `application/x-www-form-urlencoded` body with `os_username`,
//! `os_password`, `os_cookie`, `os_destination` and `atl_token`, and the
//! same-origin rule for `os_destination`.
//!
//! For every input:
//! - `parse_urlencoded` never panics, and it accepts the input exactly when
//!   an independent strict decoder (below) does, with the same pairs: one
//!   per non-empty `&`-separated part, split at the first `=`, `+` read as a
//!   space, `%XX` decoded, the result UTF-8; a refusal is a 400 `ApiError`;
//! - accepted pairs, written out again by `encode_component` or by the
//!   WHATWG form serializer (space as `+`), parse back to the same pairs;
//! - five field values cut from the input, written with either encoder
//!   among decoys (other names, a later duplicate of each field), read back
//!   as exactly those values by first-match lookup (the page's `field`);
//! - the same fields written as `multipart/form-data` (with a file part
//!   among them) and as `text/plain` are read back exactly by `form_fields`,
//!   and the raw input under either type is fields or a 400, never a panic;
//! - `safe_destination` returns an accepted destination unchanged but for
//!   its bytes outside ASCII, percent-encoded; an accepted destination is
//!   at most 2048 bytes, and the result is ASCII, a valid `Location` header
//!   value, escapes to HTML without a raw quote or angle bracket, and,
//!   resolved by a WHATWG URL parser (the `url` crate, as a browser would)
//!   against login page URLs of several origins, never leaves that origin:
//!   `//evil`, `/\evil`, `https:`, `javascript:`, tabs and newlines inside
//!   (which browsers strip) and the like are all refused. The input as text,
//!   every `os_destination` in it as a form, and each cut field are tried;
//! - `login_url_for(d)` is a same-origin URL whose `os_destination` query
//!   parameter reads back as exactly `d`.
//!
//! This file is also compiled into `tests/it` (see `tests/it/corpus.rs`).
//! It uses `authd`'s public API, `std`, `hyper` (a dependency of `authd`)
//! and `super::Url`: `url::Url` in the fuzz crate, `reqwest::Url` (the same
//! type, re-exported) in the tests, which have no direct `url` dependency.

use authd::http::pages::{esc, login_url_for, safe_destination};
use authd::http::request::{encode_component, form_fields, parse_urlencoded, query_pairs, Utf8};
use hyper::header::HeaderValue;
use hyper::StatusCode;

use super::Url;

const FIELDS: [&str; 5] = ["os_username", "os_password", "os_cookie", "os_destination", "atl_token"];

/// Login page URLs a destination is resolved against.
const BASES: [&str; 4] = [
    "https://localhost:8443/login.jsp",
    "https://auth.example.com/login.jsp?os_destination=%2Fx",
    "https://[::1]:9443/a/b/login.jsp#top",
    "https://127.0.0.1/",
];

/// Panics if any property above fails for `data`.
pub fn check(data: &[u8]) {
    if let Ok(pairs) = check_form(data) {
        for (name, value) in &pairs {
            if name == "os_destination" {
                check_destination(value);
            }
        }
    }
    check_fields(data);
    check_destination(&String::from_utf8_lossy(data));
}

/// The parse agrees with the oracle and survives re-encoding.
fn check_form(data: &[u8]) -> Result<Vec<(String, String)>, ()> {
    let got = parse_urlencoded(data);
    let expected: Option<Vec<(String, String)>> = data
        .split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (part.get(..i)?, part.get(i + 1..)?),
                None => (part, &b""[..]),
            };
            Some((strict_decode(name)?, strict_decode(value)?))
        })
        .collect();
    let pairs = match (got, expected) {
        (Ok(pairs), Some(expected)) => {
            assert_eq!(pairs, expected);
            pairs
        }
        (Err(e), None) => {
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            return Err(());
        }
        (got, expected) => {
            panic!("{:?}: parsed {got:?}, expected {expected:?}", String::from_utf8_lossy(data))
        }
    };
    for encode in [encode_component, whatwg_encode] {
        let again = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>();
        let back = parse_urlencoded(again.join("&").as_bytes());
        assert_eq!(back.ok().as_ref(), Some(&pairs), "{again:?}");
    }
    Ok(pairs)
}

/// Generated field values come back from a form exactly.
fn check_fields(data: &[u8]) {
    let mut parts = data.splitn(FIELDS.len() + 1, |&b| b == 0);
    let values: Vec<String> = FIELDS
        .iter()
        .map(|_| String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned())
        .collect();
    let start = usize::from(data.first().copied().unwrap_or(0));
    let mut form =
        vec!["x=os_username".to_string(), "os_usernamex=1".to_string(), "OS_PASSWORD=2".to_string()];
    for i in 0..FIELDS.len() {
        let k = (start + i) % FIELDS.len();
        let encode = if (start + i) % 2 == 0 { encode_component } else { whatwg_encode };
        form.push(format!("{}={}", FIELDS[k], encode(&values[k])));
    }
    for name in FIELDS {
        form.push(format!("{name}=%2F%2Fevil.example"));
    }
    let pairs = parse_urlencoded(form.join("&").as_bytes()).unwrap_or_else(|e| panic!("{form:?}: {e:?}"));
    for (name, value) in FIELDS.iter().zip(&values) {
        let first = pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        assert_eq!(first, Some(value), "{name} in {form:?}");
    }
    for value in &values {
        check_destination(value);
    }
    check_other_encodings(data, &values);
}

/// The same fields as `multipart/form-data` (boundary chosen to occur in no
/// value, a file part among them) and as `text/plain` (values without line
/// breaks) read back exactly; the raw input under either type never panics
/// and is either fields or a 400.
fn check_other_encodings(data: &[u8], values: &[String]) {
    for ct in ["multipart/form-data; boundary=b", "multipart/form-data; boundary=\"x y\"", "text/plain"] {
        match form_fields(ct, data, Utf8::Strict) {
            Some(Ok(_)) => {}
            Some(Err(e)) => assert_eq!(e.status, StatusCode::BAD_REQUEST, "{ct}: {e:?}"),
            None => panic!("{ct} is a form type"),
        }
    }
    let mut boundary = String::from("----authd");
    while values.iter().any(|v| v.contains(boundary.as_str())) {
        boundary.push('z');
    }
    // A file part and a decoy field whose names come from the input, with
    // `;`, `=` and quotes in them, escaped as browsers do (`"` as %22, CR and
    // LF as %0D and %0A; a backslash as itself).
    let escape = |v: &str| v.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A");
    let decoy = format!("x; name={}", escape(&values[0]));
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{}; a\"\r\n\r\nos_username\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"{decoy}\"\r\n\r\ndecoy\r\n",
        escape(&values[1])
    );
    for (name, value) in FIELDS.iter().zip(values) {
        body +=
            &format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
    }
    body += &format!("--{boundary}--\r\n");
    let ct = format!("multipart/form-data; boundary=\"{boundary}\"");
    let pairs = form_fields(&ct, body.as_bytes(), Utf8::Strict)
        .expect("a form type")
        .unwrap_or_else(|e| panic!("{body:?}: {e:?}"));
    let expected: Vec<(String, String)> = std::iter::once((decoy, "decoy".to_string()))
        .chain(FIELDS.iter().zip(values).map(|(k, v)| (k.to_string(), v.clone())))
        .collect();
    assert_eq!(pairs, expected, "{body:?}");

    let plain: Vec<(String, String)> =
        FIELDS.iter().zip(values).map(|(k, v)| (k.to_string(), v.replace(['\r', '\n'], ""))).collect();
    let body: String = plain.iter().map(|(k, v)| format!("{k}={v}\r\n")).collect();
    let pairs = form_fields("text/plain", body.as_bytes(), Utf8::Strict)
        .expect("a form type")
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(pairs, plain, "{body:?}");
}

/// An accepted destination stays on the login page's origin.
fn check_destination(d: &str) {
    if let Some(accepted) = safe_destination(d.to_string()) {
        let encoded: String = d
            .bytes()
            .map(|b| if b.is_ascii() { char::from(b).to_string() } else { format!("%{b:02X}") })
            .collect();
        assert_eq!(accepted, encoded, "safe_destination changed more than the bytes outside ASCII");
        assert!(d.len() <= 2048);
        assert!(accepted.is_ascii());
        assert!(HeaderValue::from_str(&accepted).is_ok(), "{accepted:?} is not a valid Location value");
        assert!(
            !esc(&accepted).contains(['"', '\'', '<', '>']),
            "{accepted:?} escapes to {:?}",
            esc(&accepted)
        );
        same_origin(&accepted);
    }
    let url = login_url_for(d);
    assert!(HeaderValue::from_str(&url).is_ok(), "{url:?}");
    same_origin(&url);
    let query = url.split_once('?').map(|(_, q)| q);
    let pairs = query_pairs(query).unwrap_or_else(|e| panic!("{url:?}: {e:?}"));
    assert_eq!(pairs, [("os_destination".to_string(), d.to_string())], "{url:?}");
}

fn same_origin(d: &str) {
    for base in BASES {
        let Ok(base) = Url::parse(base) else { panic!("{base:?} does not parse") };
        match base.join(d) {
            Ok(to) => assert_eq!(to.origin(), base.origin(), "{d:?} from {base} goes to {to}"),
            Err(e) => panic!("{d:?} does not resolve against {base}: {e}"),
        }
    }
}

/// Strict form decoding, written independently of authd's: `+` is a space,
/// `%` must be followed by two hex digits, and the bytes must be UTF-8.
fn strict_decode(input: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'%' => {
                let hex = std::str::from_utf8(input.get(i + 1..i + 3)?).ok()?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The WHATWG `application/x-www-form-urlencoded` byte serializer.
fn whatwg_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'*' | b'-' | b'.' | b'_' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

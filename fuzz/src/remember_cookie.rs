//! What must hold for any remember-me cookie value (SPEC §4, §6).
//!
//! The value is `selector:validator`: 128 and 256 bits, each base64url
//! without padding (22 and 43 characters). For every input:
//! - `RememberToken::parse` never panics, and accepts a string exactly when
//!   an independent strict base64url decoder (below) reads it as 16 bytes,
//!   `:`, 32 bytes; then the selector is those 16 bytes and
//!   `to_cookie_value` gives the very same string back, so only the one
//!   canonical spelling of a token is accepted (66 characters, one `:`,
//!   unused trailing bits zero);
//! - a token built from input bytes parses back to the same selector and
//!   value, and survives a `Cookie` header (bare or quoted) through
//!   `RequestCookies::parse`;
//! - that token with one byte changed is either refused or a different,
//!   canonical token with a different validator hash (when the change is
//!   in the validator) or selector;
//! - `SessionId::parse` obeys the same canonical-form rule (43 characters,
//!   32 bytes).
//!
//! This file is also compiled into `tests/it` (see `tests/it/corpus.rs`),
//! so it uses nothing but `authd`'s public API and `std`.

use authd::cookies::{render, CookieNames, RequestCookies};
use authd::token::{b64, RememberToken, SessionId};

/// Panics if any property above fails for `data`.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_value(&text);
    check_built(data);
}

/// The parse of an arbitrary string agrees with the strict oracle.
fn check_value(s: &str) {
    let parsed = RememberToken::parse(s);
    let expected =
        s.split_once(':').and_then(|(sel, val)| Some((strict_b64(sel, 16)?, strict_b64(val, 32)?)));
    match (&parsed, &expected) {
        (Some(t), Some((sel, _))) => {
            assert_eq!(t.selector.0.as_slice(), sel.as_slice(), "{s:?}: wrong selector");
            assert_eq!(t.to_cookie_value(), s, "accepted a non-canonical value");
            assert_eq!(s.len(), 22 + 1 + 43);
            assert_eq!(s.matches(':').count(), 1);
        }
        (None, None) => {}
        (Some(_), None) => panic!("{s:?} accepted, but it is not selector:validator"),
        (None, Some(_)) => panic!("{s:?} refused, but it is a well-formed selector:validator"),
    }
    let id = SessionId::parse(s);
    assert_eq!(id.is_some(), strict_b64(s, 32).is_some(), "SessionId::parse({s:?})");
    if let Some(id) = id {
        assert_eq!(id.to_cookie_value(), s, "session id: accepted a non-canonical value");
    }
}

/// A token made from input bytes round-trips, and one changed byte breaks it.
fn check_built(data: &[u8]) {
    let bytes: Vec<u8> = (0..48).map(|i| data.get(i).copied().unwrap_or(i as u8)).collect();
    let (sel, val) = bytes.split_at(16);
    let value = format!("{}:{}", b64(sel), b64(val));
    let Some(token) = RememberToken::parse(&value) else { panic!("{value:?} refused") };
    assert_eq!(token.selector.0.as_slice(), sel);
    assert_eq!(token.to_cookie_value(), value);
    check_value(&value);

    for prefix in ["", "__Host-"] {
        let names = CookieNames::new(prefix);
        let bare = render(&[("a", "1"), (&names.remember, &value), ("b", "2")]);
        let quoted = format!("a=1;{}=\"{value}\" ;b=2", names.remember);
        for header in [bare, quoted] {
            let got = RequestCookies::parse([header.as_bytes()], &names);
            assert_eq!(got.remember, std::slice::from_ref(&value), "{header:?}");
        }
    }

    // One byte changed, at a position and to a value the input chooses.
    let at = usize::from(data.get(48).copied().unwrap_or(0)) % value.len();
    let to = data.get(49).copied().unwrap_or(b'A');
    let mut changed = value.clone().into_bytes();
    if let Some(b) = changed.get_mut(at) {
        *b = to;
    }
    let changed = String::from_utf8_lossy(&changed).into_owned();
    check_value(&changed);
    if changed != value {
        if let Some(other) = RememberToken::parse(&changed) {
            assert_ne!(other.to_cookie_value(), value);
            if at > 22 {
                assert_eq!(other.selector, token.selector);
                assert_ne!(other.validator.hash(), token.validator.hash(), "{changed:?}: same validator");
            } else {
                assert_ne!(other.selector, token.selector, "{changed:?}: same selector");
            }
        }
    }
}

/// Strict base64url without padding, written independently of authd's
/// decoder: exactly `n` bytes, only the URL-safe alphabet, and the unused
/// low bits of the last character zero (so each byte string has one spelling).
fn strict_b64(s: &str, n: usize) -> Option<Vec<u8>> {
    if s.len() != (n * 8).div_ceil(6) {
        return None;
    }
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut out = Vec::with_capacity(n);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    (out.len() == n && bits == 0).then_some(out)
}

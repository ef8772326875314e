//! What must hold for any `Cookie` header (SPEC §4, §10).
//!
//! An input is raw bytes holding one or more header values separated by
//! `\n`, a byte no real header value can carry. For every input:
//! - `RequestCookies::parse` returns, for each of authd's names, the first
//!   `MAX_DUPLICATES` well-formed values that `pairs` sees across the
//!   headers, in order, with the first value that is not well-formed (not
//!   authd's format; never an empty one) if it came before any of them,
//!   and marks the request `truncated` exactly when a well-formed session
//!   or remember-me value was left out (never a panic), and gives the kept
//!   well-formed session values parsed, in the same order;
//! - for a single header that is UTF-8, `first_session_id` (the short
//!   way's reader, `src/http/hot.rs`) finds the session ID that
//!   `RequestCookies::parse` puts first;
//! - every pair `pairs` returns has a non-empty, trimmed name without `;`
//!   or `=`, and a value without `;`;
//! - for a header that is UTF-8, `pairs` → `render` → `pairs` gives the same
//!   pairs back, and `pairs` reads it as the `cookie` crate's
//!   `Cookie::split_parse` does (authd's splitter replaced it on the hot
//!   path; the crate stays the reference).
//!
//! This file is also compiled into `tests/it` (see `tests/it/corpus.rs`),
//! so it uses nothing but `authd`'s public API, `std` and crates authd
//! depends on.

use authd::cookies::{first_session_id, pairs, render, CookieNames, RequestCookies, MAX_DUPLICATES};
use authd::token::{RememberToken, SessionId};

/// Panics if any property above fails for `data`.
pub fn check(data: &[u8]) {
    let headers: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let lossy: Vec<_> = headers.iter().map(|h| String::from_utf8_lossy(h)).collect();
    let seen: Vec<(&str, &str)> = lossy.iter().flat_map(|h| pairs(h)).collect();
    for prefix in ["", "__Host-"] {
        check_request_cookies(&headers, &seen, &CookieNames::new(prefix));
    }
    check_pairs_shape(&seen);
    for header in &headers {
        if let Ok(h) = std::str::from_utf8(header) {
            check_round_trip(h);
            check_same_as_the_cookie_crate(h);
        }
    }
}

/// `seen` holds every pair of every header, in order.
fn check_request_cookies(headers: &[&[u8]], seen: &[(&str, &str)], names: &CookieNames) {
    let got = RequestCookies::parse(headers.iter().copied(), names);
    let mut truncated = false;
    for (name, values, well_formed) in [
        (&names.session, &got.session, (|v| SessionId::parse(v).is_some()) as fn(&str) -> bool),
        (&names.remember, &got.remember, |v| RememberToken::parse(v).is_some()),
        (&names.xsrf, &got.xsrf, |_| true),
    ] {
        let mut want: Vec<&str> = Vec::new();
        let mut kept = 0;
        for (_, v) in seen.iter().filter(|(n, v)| n == name && !v.is_empty()) {
            if !well_formed(v) {
                if want.is_empty() {
                    want.push(v);
                }
            } else if kept < MAX_DUPLICATES {
                kept += 1;
                want.push(v);
            } else if name != &names.xsrf {
                truncated = true;
            }
        }
        assert!(values.len() <= MAX_DUPLICATES + 1, "{name}: {} values kept", values.len());
        assert_eq!(values, &want, "{name}: kept values are not the first well-formed ones");
    }
    assert_eq!(got.truncated, truncated, "truncated");
    // The parsed session IDs are the well-formed values kept, in order.
    let parsed: Vec<String> = got.session_ids.iter().map(SessionId::to_cookie_value).collect();
    let well_formed: Vec<&String> = got.session.iter().filter(|v| SessionId::parse(v).is_some()).collect();
    assert_eq!(parsed.iter().collect::<Vec<_>>(), well_formed, "session_ids");
    // The short way reads a lone UTF-8 header for the same first ID.
    if let [header] = headers {
        if let Ok(h) = std::str::from_utf8(header) {
            let first = first_session_id(h, &names.session).map(|id| id.to_cookie_value());
            assert_eq!(first.as_ref(), parsed.first(), "first_session_id");
        }
    }
}

fn check_pairs_shape(seen: &[(&str, &str)]) {
    for (name, value) in seen {
        assert!(!name.is_empty(), "empty name");
        assert_eq!(*name, name.trim(), "untrimmed name");
        assert!(!name.contains([';', '=']), "name {name:?}");
        assert!(!value.contains(';'), "value {value:?}");
    }
}

fn check_round_trip(header: &str) {
    let first = pairs(header);
    let rendered = render(&first);
    assert_eq!(pairs(&rendered), first, "{header:?} rendered as {rendered:?}");
}

fn check_same_as_the_cookie_crate(header: &str) {
    fn unquote(v: &str) -> &str {
        v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
    }
    let reference: Vec<(&str, &str)> = cookie::Cookie::split_parse(header)
        .filter_map(Result::ok)
        .filter_map(|c| Some((c.name_raw()?, unquote(c.value_raw()?))))
        .collect();
    assert_eq!(pairs(header), reference, "{header:?}");
}

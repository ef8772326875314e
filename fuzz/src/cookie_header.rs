//! What must hold for any `Cookie` header (SPEC §4, §10).
//!
//! An input is raw bytes holding one or more header values separated by
//! `\n`, a byte no real header value can carry. For every input:
//! - `RequestCookies::parse` returns, for each of authd's names, the first
//!   `MAX_DUPLICATES` non-empty values that `pairs` sees across the headers,
//!   in order (so never more, never an empty one, never a panic);
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

use authd::cookies::{pairs, render, CookieNames, RequestCookies, MAX_DUPLICATES};

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
    for (name, values) in
        [(&names.session, &got.session), (&names.remember, &got.remember), (&names.xsrf, &got.xsrf)]
    {
        assert!(values.len() <= MAX_DUPLICATES, "{name}: {} values kept", values.len());
        let first: Vec<&str> = seen
            .iter()
            .filter(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| *v)
            .take(MAX_DUPLICATES)
            .collect();
        assert_eq!(values, &first, "{name}: kept values are not the first non-empty ones");
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

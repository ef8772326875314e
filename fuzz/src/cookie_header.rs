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
//!   pairs back, except for the known bug described at `survives_render`.
//!
//! This file is also compiled into `tests/it` (see `tests/it/corpus.rs`),
//! so it uses nothing but `authd`'s public API and `std`.

use authd::cookies::{pairs, render, CookieNames, RequestCookies, MAX_DUPLICATES};

/// Panics if any property above fails for `data`.
pub fn check(data: &[u8]) {
    let headers: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for prefix in ["", "__Host-"] {
        check_request_cookies(&headers, &CookieNames::new(prefix));
    }
    for header in &headers {
        let lossy = String::from_utf8_lossy(header);
        check_pairs_shape(&lossy);
        if let Ok(h) = std::str::from_utf8(header) {
            check_round_trip(h);
        }
    }
}

fn check_request_cookies(headers: &[&[u8]], names: &CookieNames) {
    let got = RequestCookies::parse(headers.iter().copied(), names);
    for (name, values) in
        [(&names.session, &got.session), (&names.remember, &got.remember), (&names.xsrf, &got.xsrf)]
    {
        assert!(values.len() <= MAX_DUPLICATES, "{name}: {} values kept", values.len());
        let mut seen = Vec::new();
        for header in headers {
            let lossy = String::from_utf8_lossy(header);
            seen.extend(
                pairs(&lossy)
                    .into_iter()
                    .filter(|(n, v)| n == name && !v.is_empty())
                    .map(|(_, v)| v.to_owned()),
            );
        }
        seen.truncate(MAX_DUPLICATES);
        assert_eq!(values, &seen, "{name}: kept values are not the first non-empty ones");
    }
}

fn check_pairs_shape(header: &str) {
    for (name, value) in pairs(header) {
        assert!(!name.is_empty(), "empty name in {header:?}");
        assert_eq!(name, name.trim(), "untrimmed name in {header:?}");
        assert!(!name.contains([';', '=']), "name {name:?} from {header:?}");
        assert!(!value.contains(';'), "value {value:?} from {header:?}");
    }
}

fn check_round_trip(header: &str) {
    let first = pairs(header);
    let rendered = render(&first);
    let again = pairs(&rendered);
    if first.iter().all(|(_, v)| survives_render(v)) {
        assert_eq!(again, first, "{header:?} rendered as {rendered:?}");
    } else {
        // Known bug: the pairs come back with the same names, and one more
        // round trip changes nothing.
        let names = |p: &[(&str, &str)]| p.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&again), names(&first), "{header:?} rendered as {rendered:?}");
        assert_eq!(pairs(&render(&again)), again, "{rendered:?} is not a fixed point");
    }
}

/// Whether `render` writes `value` so that `pairs` reads it back unchanged.
///
/// Known bug (reported, not fixed here; `src/` is not ours to edit): `pairs`
/// trims a value and then strips one pair of quotes, but `render` writes the
/// value bare, so a value with space at either end (`a=" x"` gives ` x`) or
/// still in quotes (`a=""x""` gives `"x"`) changes on the way back. Once
/// `render` quotes such values, delete this and the branch that uses it.
fn survives_render(value: &str) -> bool {
    let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
    value == value.trim() && !quoted
}

//! Reading the `Cookie` header and writing `Set-Cookie` (SPEC §4).
//!
//! Parsing is lenient, as RFC 6265bis asks of servers: pairs are split on
//! `;`, surrounding space is dropped, quoted values are unquoted, pairs
//! that do not parse are skipped, and bytes that are not UTF-8 only spoil
//! the pair they are in. Nothing here can panic or fail a request: the
//! worst a malformed header can do is carry no usable cookie.
//!
//! A name may appear more than once (browsers send one per matching path,
//! other apps on the host may use the same name); the first few well-formed
//! values of each of authd's cookies are kept, in order, and the caller uses
//! the first that is valid. Values that cannot be authd's (another app's
//! `JSESSIONID`, junk) do not count against that limit: of them only the
//! first is kept, to tell that such a cookie came. A request whose
//! well-formed values went past the limit is marked [`truncated`]: a valid
//! one may be among those not looked at, so its cookies are not expired.
//!
//! [`truncated`]: RequestCookies::truncated

use cookie::{Cookie, SameSite};

use crate::token::{RememberToken, SessionId};

/// Most well-formed values kept per cookie name.
pub const MAX_DUPLICATES: usize = 8;

/// The names of authd's three cookies, with the configured prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieNames {
    /// The session cookie, `JSESSIONID`.
    pub session: String,
    /// The remember-me cookie, `seraph.rememberme.cookie`.
    pub remember: String,
    /// The XSRF cookie, `atlassian.xsrf.token`.
    pub xsrf: String,
}

impl CookieNames {
    /// The three names behind `prefix` (empty for Jira's own names).
    pub fn new(prefix: &str) -> Self {
        CookieNames {
            session: format!("{prefix}JSESSIONID"),
            remember: format!("{prefix}seraph.rememberme.cookie"),
            xsrf: format!("{prefix}atlassian.xsrf.token"),
        }
    }
}

/// authd's cookies as a request carried them.
#[derive(Clone, Debug, Default)]
pub struct RequestCookies {
    /// Values of the session cookie, first first.
    pub session: Vec<String>,
    /// The well-formed ones among them, parsed (in the same order).
    pub session_ids: Vec<SessionId>,
    /// Values of the remember-me cookie.
    pub remember: Vec<String>,
    /// Values of the XSRF cookie.
    pub xsrf: Vec<String>,
    /// More well-formed session or remember-me values came than were kept.
    pub truncated: bool,
}

impl RequestCookies {
    /// Collects authd's cookies from every `Cookie` header of a request.
    pub fn parse<'h>(headers: impl IntoIterator<Item = &'h [u8]>, names: &CookieNames) -> Self {
        let mut out = RequestCookies::default();
        // Well-formed values kept of each.
        let (mut sessions, mut remembers, mut xsrfs) = (0usize, 0usize, 0usize);
        for header in headers {
            // Almost always valid UTF-8: checked quickly, borrowed, not copied.
            let text = std::str::from_utf8(header)
                .map(std::borrow::Cow::Borrowed)
                .unwrap_or_else(|_| String::from_utf8_lossy(header));
            for (name, value) in pair_iter(&text) {
                // A session ID, parsed once, is kept beside its value.
                let mut session_id = None;
                let (slot, kept, well_formed, secret) = if name == names.session {
                    session_id = SessionId::parse(value);
                    (&mut out.session, &mut sessions, session_id.is_some(), true)
                } else if name == names.remember {
                    (&mut out.remember, &mut remembers, RememberToken::parse(value).is_some(), true)
                } else if name == names.xsrf {
                    (&mut out.xsrf, &mut xsrfs, true, false)
                } else {
                    continue;
                };
                if value.is_empty() {
                    continue;
                }
                if !well_formed {
                    if slot.is_empty() {
                        slot.push(value.to_string());
                    }
                } else if *kept < MAX_DUPLICATES {
                    *kept += 1;
                    slot.push(value.to_string());
                    out.session_ids.extend(session_id);
                } else if secret {
                    out.truncated = true;
                }
            }
        }
        out
    }
}

/// The first well-formed value of the cookie `name` in one `Cookie` header,
/// parsed: what [`RequestCookies::parse`] puts first in `session_ids` for a
/// request with that header alone, found without collecting anything.
pub fn first_session_id(header: &str, name: &str) -> Option<SessionId> {
    pair_iter(header).filter(|&(n, _)| n == name).find_map(|(_, v)| SessionId::parse(v))
}

/// The well-formed `name=value` pairs of one `Cookie` header, in order,
/// borrowed from it; a value in double quotes is unquoted.
pub fn pairs(header: &str) -> Vec<(&str, &str)> {
    pair_iter(header).collect()
}

/// [`pairs`] without collecting them. A `Cookie` header is only
/// `name=value` pairs, so this splits it as `cookie::Cookie::split_parse`
/// does (on `;`, then at the first `=`, each side trimmed, empty names
/// dropped) without building a full `Cookie` for every pair.
fn pair_iter(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim();
        (!name.is_empty()).then(|| (name, unquote(value.trim())))
    })
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
}

/// Renders pairs back into a `Cookie` header value.
pub fn render(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(n, v)| format!("{n}={}", quote_if_needed(v))).collect::<Vec<_>>().join("; ")
}

/// A value that reading would change (edge space trimmed, outer quotes
/// removed) is written in quotes, so [`pairs`] gives it back as it was.
fn quote_if_needed(v: &str) -> std::borrow::Cow<'_, str> {
    let edge_space = v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace);
    let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
    if edge_space || quoted {
        std::borrow::Cow::Owned(format!("\"{v}\""))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

/// How a `Set-Cookie` should look.
#[derive(Clone, Copy, Debug)]
pub struct Attributes {
    /// Hidden from page scripts.
    pub http_only: bool,
    /// Seconds until the browser drops it; `None` for a session cookie.
    pub max_age: Option<u64>,
}

/// A `Set-Cookie` value: `Path=/; Secure; SameSite=Lax`, plus `attrs`.
pub fn set_cookie(name: &str, value: &str, attrs: Attributes) -> String {
    let mut c = Cookie::build((name.to_string(), value.to_string()))
        .path("/")
        .secure(true)
        .http_only(attrs.http_only)
        .same_site(SameSite::Lax);
    if let Some(secs) = attrs.max_age {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    c.build().to_string()
}

/// A `Set-Cookie` value that deletes the cookie (`Max-Age=0`).
pub fn expire_cookie(name: &str, http_only: bool) -> String {
    set_cookie(name, "", Attributes { http_only, max_age: Some(0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> CookieNames {
        CookieNames::new("")
    }

    fn parse(h: &str) -> RequestCookies {
        RequestCookies::parse([h.as_bytes()], &names())
    }

    #[test]
    fn finds_authd_cookies_among_others() {
        let c = parse("a=1; JSESSIONID=abc; seraph.rememberme.cookie=s:v; atlassian.xsrf.token=X_y_lin");
        assert_eq!(c.session, ["abc"]);
        assert_eq!(c.remember, ["s:v"]);
        assert_eq!(c.xsrf, ["X_y_lin"]);
    }

    /// A well-formed session ID: 43 base64url characters.
    fn id(c: char) -> String {
        std::iter::repeat_n(c, 42).chain(['A']).collect()
    }

    #[test]
    fn tolerates_spacing_quotes_duplicates_and_junk() {
        let (a, b, c) = (id('a'), id('b'), id('c'));
        let h = format!(" ;; junk ; =x; JSESSIONID = \"{a}\" ;JSESSIONID={b};b=;\u{1}=2; JSESSIONID={c}");
        assert_eq!(parse(&h).session, [a, b, c]);
    }

    #[test]
    fn caps_well_formed_duplicates_and_marks_the_request() {
        let h = (0..50).map(|i| format!("JSESSIONID={}", id(char::from(b'a' + i % 26)))).collect::<Vec<_>>();
        let c = parse(&h.join("; "));
        assert_eq!(c.session.len(), MAX_DUPLICATES);
        assert!(c.truncated);
        // The parsed IDs are the kept values, in order.
        let kept: Vec<String> = c.session_ids.iter().map(SessionId::to_cookie_value).collect();
        assert_eq!(kept, c.session);
        let c = parse(&h[..MAX_DUPLICATES].join("; "));
        assert!(!c.truncated, "nothing was left out");
    }

    #[test]
    fn values_that_cannot_be_authds_do_not_hide_one_that_can() {
        // Another app's JSESSIONID (Tomcat's 32 hex digits) on longer paths,
        // sent first, many times.
        let tomcat = "JSESSIONID=0123456789ABCDEF0123456789ABCDEF; ".repeat(20);
        let c = parse(&format!("{tomcat}JSESSIONID={}", id('z')));
        assert_eq!(c.session, ["0123456789ABCDEF0123456789ABCDEF".to_string(), id('z')]);
        let parsed: Vec<String> = c.session_ids.iter().map(SessionId::to_cookie_value).collect();
        assert_eq!(parsed, [id('z')], "only the well-formed value is parsed");
        assert!(!c.truncated);
        // Junk alone is still seen as a cookie that came (and is stale).
        assert_eq!(parse("JSESSIONID=junk; JSESSIONID=more").session, ["junk"]);
    }

    #[test]
    fn invalid_utf8_spoils_only_its_own_pair() {
        let mut h = b"x=\xff\xfe; JSESSIONID=".to_vec();
        h.extend_from_slice(id('o').as_bytes());
        h.extend_from_slice(b"; y=\xc3");
        let c = RequestCookies::parse([h.as_slice()], &names());
        assert_eq!(c.session, [id('o')]);
    }

    #[test]
    fn the_first_session_id_is_the_one_parse_puts_first() {
        let (a, b) = (id('a'), id('b'));
        let tomcat = "JSESSIONID=0123456789ABCDEF0123456789ABCDEF";
        for h in [
            format!("JSESSIONID={a}; JSESSIONID={b}"),
            format!("{tomcat}; x=1; JSESSIONID=\"{b}\"; JSESSIONID={a}"),
            format!(" ;; junk ; =x; JSESSIONID= ; JSESSIONID = {a} "),
            format!("__Host-JSESSIONID={a}; JSESSIONIDx={b}"),
            format!("{tomcat}; seraph.rememberme.cookie=s:v"),
            String::new(),
        ] {
            let first = first_session_id(&h, "JSESSIONID").map(|id| id.to_cookie_value());
            let parsed = parse(&h).session_ids.first().map(SessionId::to_cookie_value);
            assert_eq!(first, parsed, "{h}");
        }
        assert_eq!(
            first_session_id(&format!("JSESSIONID={b}"), "JSESSIONID").map(|i| i.to_cookie_value()),
            Some(b)
        );
    }

    #[test]
    fn several_headers_are_merged_in_order() {
        let (a, b) = (format!("JSESSIONID={}", id('a')), format!("JSESSIONID={}", id('b')));
        let c = RequestCookies::parse([a.as_bytes(), b.as_bytes()], &names());
        assert_eq!(c.session, [id('a'), id('b')]);
    }

    #[test]
    fn prefix_applies_to_all_three_names() {
        let n = CookieNames::new("__Host-");
        assert_eq!(n.session, "__Host-JSESSIONID");
        let c = RequestCookies::parse([&b"JSESSIONID=a; __Host-JSESSIONID=b"[..]], &n);
        assert_eq!(c.session, ["b"]);
    }

    #[test]
    fn set_cookie_attributes() {
        let s = set_cookie("JSESSIONID", "v", Attributes { http_only: true, max_age: None });
        assert_eq!(s, "JSESSIONID=v; HttpOnly; SameSite=Lax; Secure; Path=/");
        let s = set_cookie("x", "v", Attributes { http_only: false, max_age: Some(60) });
        assert!(s.contains("Max-Age=60") && !s.contains("HttpOnly"), "{s}");
        assert!(expire_cookie("JSESSIONID", true).contains("Max-Age=0"));
    }

    #[test]
    fn render_then_parse_round_trips() {
        let p = pairs("a=1;  b = \"2\" ; junk; c=3");
        assert_eq!(p, [("a", "1"), ("b", "2"), ("c", "3")]);
        let rendered = render(&p);
        assert_eq!(pairs(&rendered), p);
        // Values reading would change are quoted on the way out.
        for header in ["a=\" x\"", "a=\"\"x\"\"", "a=\"\" \"x\" \"\""] {
            let first = pairs(header);
            assert_eq!(pairs(&render(&first)), first, "{header}");
        }
    }
}

//! XSRF protection (SPEC §7): tokens, and which requests must show one.
//!
//! A token looks like Jira's, `<serverId>_<40 hex>_lin` (logged in) or
//! `_lout` (anonymous). The 40 hex characters are a 10-byte nonce and a
//! 10-byte MAC: keyed blake3 (the data dir's own key) over the state, the
//! user id and the nonce. So a token verifies only for the user and the
//! authd it was minted for, and the server needs to keep only the nonce.
//!
//! A logged-in request must show exactly its session's token. An anonymous
//! form must show the `_lout` token of its own cookie (double submit); the
//! cookie alone proves nothing. Independently, an unsafe request that says
//! it is cross-site (`Sec-Fetch-Site`) or comes from a foreign `Origin` is
//! refused.

use crate::store::UserId;
use crate::token::{ct_eq, hex, random, unhex};

/// Bytes of nonce and of MAC in a token.
const NONCE: usize = 10;
const MAC: usize = 10;

/// Login state a token is minted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// `_lin`: bound to a user.
    LoggedIn(UserId),
    /// `_lout`: anonymous, bound to the browser by its cookie.
    LoggedOut,
}

/// A parsed token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsrfToken {
    /// The random part, kept in the session.
    pub nonce: [u8; NONCE],
    mac: [u8; MAC],
    logged_in: bool,
}

/// Mints and checks tokens for one authd deployment.
#[derive(Clone)]
pub struct Xsrf {
    server_id: String,
    key: [u8; 32],
}

impl std::fmt::Debug for Xsrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xsrf").field("server_id", &self.server_id).finish_non_exhaustive()
    }
}

impl Xsrf {
    /// The minter for a deployment's server id and MAC key.
    pub fn new(server_id: &str, key: [u8; 32]) -> Self {
        Xsrf { server_id: server_id.to_string(), key }
    }

    /// A fresh random nonce.
    pub fn new_nonce() -> [u8; NONCE] {
        random()
    }

    /// The token string for `nonce` in `state`.
    pub fn token(&self, nonce: [u8; NONCE], state: State) -> String {
        let mac = self.mac(&nonce, state);
        let suffix = if matches!(state, State::LoggedIn(_)) { "lin" } else { "lout" };
        let raw: Vec<u8> = nonce.iter().chain(&mac).copied().collect();
        format!("{}_{}_{suffix}", self.server_id, hex(&raw))
    }

    /// Parses a token of this deployment and checks its MAC for `state`.
    pub fn verify(&self, token: &str, state: State) -> Option<XsrfToken> {
        let t = self.parse(token)?;
        let expect_lin = matches!(state, State::LoggedIn(_));
        if t.logged_in != expect_lin {
            return None;
        }
        ct_eq(&t.mac, &self.mac(&t.nonce, state)).then_some(t)
    }

    /// Whether `submitted` is exactly the session token for `nonce` and `user`.
    pub fn matches_session(&self, submitted: &str, nonce: &[u8; NONCE], user: UserId) -> bool {
        self.verify(submitted, State::LoggedIn(user)).is_some_and(|t| ct_eq(&t.nonce, nonce))
    }

    /// Whether `submitted` is a valid anonymous token and equals the browser's cookie.
    pub fn matches_anonymous(&self, submitted: &str, cookie: &str) -> bool {
        ct_eq(submitted.as_bytes(), cookie.as_bytes()) && self.verify(submitted, State::LoggedOut).is_some()
    }

    fn parse(&self, token: &str) -> Option<XsrfToken> {
        let rest = token.strip_prefix(self.server_id.as_str())?.strip_prefix('_')?;
        let (body, logged_in) = if let Some(b) = rest.strip_suffix("_lin") {
            (b, true)
        } else {
            (rest.strip_suffix("_lout")?, false)
        };
        let raw: [u8; NONCE + MAC] = unhex(body)?;
        let mut nonce = [0u8; NONCE];
        let mut mac = [0u8; MAC];
        nonce.copy_from_slice(raw.get(..NONCE)?);
        mac.copy_from_slice(raw.get(NONCE..)?);
        Some(XsrfToken { nonce, mac, logged_in })
    }

    fn mac(&self, nonce: &[u8; NONCE], state: State) -> [u8; MAC] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        match state {
            State::LoggedIn(user) => {
                h.update(b"lin");
                h.update(&user.to_le_bytes());
            }
            State::LoggedOut => {
                h.update(b"lout");
            }
        }
        h.update(nonce);
        let mut out = [0u8; MAC];
        h.finalize_xof().fill(&mut out);
        out
    }
}

/// Whether a request of this method and media type must present a token
/// (SPEC §7): unsafe methods with a form content type, url-encoded,
/// multipart or `text/plain`. JSON cannot be sent cross-site without a CORS
/// preflight, and a browser's cross-site request without a content type
/// (a bodiless no-CORS POST) carries no `SameSite=Lax` cookie and a
/// foreign `Origin`, which [`origin_allowed`] refuses.
pub fn needs_token(method: &hyper::Method, media_type: Option<&str>) -> bool {
    is_unsafe(method) && media_type.is_some_and(is_form_type)
}

/// The media types an HTML form sends: url-encoded, multipart, `text/plain`.
pub fn is_form_type(media_type: &str) -> bool {
    matches!(media_type, "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain")
}

/// POST, PUT, PATCH and DELETE.
pub fn is_unsafe(method: &hyper::Method) -> bool {
    !matches!(
        *method,
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS | hyper::Method::TRACE
    )
}

/// The origin check that applies to every unsafe request, token or not:
/// an `Origin` that is neither authd's own nor an allowed CORS origin is
/// refused, and so is `Sec-Fetch-Site: cross-site` unless the `Origin` is an
/// allowed CORS origin (such requests are cross-site by nature). Requests
/// without these headers (non-browser clients) pass.
pub fn origin_allowed(
    origin: Option<&str>,
    sec_fetch_site: Option<&str>,
    own: &str,
    allowed: &[String],
) -> bool {
    let cross_site = sec_fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site"));
    match origin.map(without_default_port) {
        Some(o) if allowed.iter().any(|a| a.eq_ignore_ascii_case(o)) => true,
        Some(o) => o.eq_ignore_ascii_case(without_default_port(own)) && !cross_site,
        None => !cross_site,
    }
}

/// An origin without the port its scheme implies, as browsers write it in
/// `Origin` (`https://app.example:443` is `https://app.example`): a `Host`
/// or `--cors-origin` may spell it out.
pub fn without_default_port(origin: &str) -> &str {
    let scheme = |name: &str| origin.get(..name.len()).is_some_and(|s| s.eq_ignore_ascii_case(name));
    let port = match () {
        () if scheme("https://") => ":443",
        () if scheme("http://") => ":80",
        () => return origin,
    };
    origin.strip_suffix(port).unwrap_or(origin)
}

/// How the token may arrive in a request header (`no-check` is handled by
/// the caller). An empty header is no token, so it cannot hide the form's.
pub fn header_token<'a>(
    x_atlassian_token: Option<&'a str>,
    x_xsrf_token: Option<&'a str>,
) -> Option<&'a str> {
    x_atlassian_token
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("no-check"))
        .or(x_xsrf_token.filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_are_the_same_origin() {
        assert_eq!(without_default_port("https://app.example:443"), "https://app.example");
        assert_eq!(without_default_port("HTTPS://app.example:443"), "HTTPS://app.example");
        assert_eq!(without_default_port("http://app.example:80"), "http://app.example");
        assert_eq!(without_default_port("https://[::1]:443"), "https://[::1]");
        for kept in [
            "https://app.example:8443",
            "https://app.example:80",
            "http://app.example:443",
            "https://a:1443",
            "null",
            "",
        ] {
            assert_eq!(without_default_port(kept), kept);
        }
        let own = "https://app.example:443";
        assert!(origin_allowed(Some("https://app.example"), None, own, &[]));
        assert!(origin_allowed(Some("https://app.example:443"), None, "https://app.example", &[]));
        assert!(!origin_allowed(Some("https://app.example:8443"), None, own, &[]));
        assert!(!origin_allowed(Some("http://app.example"), None, own, &[]));
    }

    fn x() -> Xsrf {
        Xsrf::new("ABCD-EFGH-JKLM-NPQR", [7; 32])
    }

    #[test]
    fn tokens_look_like_jiras() {
        let t = x().token([1; NONCE], State::LoggedIn(5));
        assert!(t.starts_with("ABCD-EFGH-JKLM-NPQR_"));
        assert!(t.ends_with("_lin"));
        assert_eq!(t.len(), 19 + 1 + 40 + 4);
        assert!(x().token([1; NONCE], State::LoggedOut).ends_with("_lout"));
    }

    #[test]
    fn a_token_verifies_only_for_its_user_state_and_deployment() {
        let t = x().token([1; NONCE], State::LoggedIn(5));
        assert!(x().verify(&t, State::LoggedIn(5)).is_some());
        assert!(x().verify(&t, State::LoggedIn(6)).is_none(), "another user");
        assert!(x().verify(&t, State::LoggedOut).is_none(), "another state");
        let other_key = Xsrf::new("ABCD-EFGH-JKLM-NPQR", [8; 32]);
        assert!(other_key.verify(&t, State::LoggedIn(5)).is_none(), "another data dir, same id");
        let other_id = Xsrf::new("ZZZZ-EFGH-JKLM-NPQR", [7; 32]);
        assert!(other_id.verify(&t, State::LoggedIn(5)).is_none(), "another server id");
    }

    #[test]
    fn tampering_and_junk_fail() {
        let t = x().token([1; NONCE], State::LoggedIn(5));
        let mut flipped = t.clone().into_bytes();
        flipped[25] = if flipped[25] == b'0' { b'1' } else { b'0' };
        assert!(x().verify(&String::from_utf8(flipped).unwrap(), State::LoggedIn(5)).is_none());
        for junk in ["", "_lin", "ABCD-EFGH-JKLM-NPQR__lin", &t.replace("_lin", "_lot"), &format!("{t}x")] {
            assert!(x().verify(junk, State::LoggedIn(5)).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn session_and_anonymous_matching() {
        let t = x().token([3; NONCE], State::LoggedIn(5));
        assert!(x().matches_session(&t, &[3; NONCE], 5));
        assert!(!x().matches_session(&t, &[4; NONCE], 5), "another session of the same user");
        let a = x().token([9; NONCE], State::LoggedOut);
        assert!(x().matches_anonymous(&a, &a));
        assert!(
            !x().matches_anonymous(&a, &x().token([8; NONCE], State::LoggedOut)),
            "not the browser's own"
        );
        assert!(!x().matches_anonymous(&t, &t), "a _lin token is not an anonymous one");
    }

    #[test]
    fn which_requests_need_a_token() {
        use hyper::Method;
        assert!(needs_token(&Method::POST, Some("application/x-www-form-urlencoded")));
        assert!(needs_token(&Method::POST, Some("multipart/form-data")));
        assert!(needs_token(&Method::PUT, Some("text/plain")));
        assert!(!needs_token(&Method::DELETE, None));
        assert!(!needs_token(&Method::POST, None));
        assert!(!needs_token(&Method::POST, Some("application/json")));
        assert!(!needs_token(&Method::GET, Some("application/x-www-form-urlencoded")));
    }

    #[test]
    fn origin_rules() {
        let own = "https://localhost:8443";
        let allowed = vec!["https://app.example".to_string()];
        assert!(origin_allowed(None, None, own, &allowed));
        assert!(origin_allowed(Some(own), Some("same-origin"), own, &allowed));
        assert!(origin_allowed(Some("https://app.example"), Some("cross-site"), own, &allowed));
        assert!(!origin_allowed(Some(own), Some("cross-site"), own, &allowed), "contradictory headers");
        assert!(origin_allowed(Some("https://app.example"), None, own, &allowed));
        assert!(!origin_allowed(Some("https://evil.example"), None, own, &allowed));
        assert!(!origin_allowed(Some("null"), None, own, &allowed));
        assert!(!origin_allowed(None, Some("cross-site"), own, &allowed));
        assert!(origin_allowed(None, Some("same-site"), own, &allowed));
    }

    #[test]
    fn header_tokens() {
        assert_eq!(header_token(Some("no-check"), None), None);
        assert_eq!(header_token(Some("tok"), None), Some("tok"));
        assert_eq!(header_token(None, Some("tok")), Some("tok"));
        assert_eq!(header_token(Some(""), Some("")), None);
        assert_eq!(header_token(Some(""), Some("tok")), Some("tok"));
    }
}

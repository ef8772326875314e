//! Secret and public tokens: generation, parsing, hashing, comparison.
//!
//! Invariants:
//! - every secret comes from the OS generator (`getrandom`) and is a newtype
//!   whose `Debug` prints `Name(..)`, never the bytes;
//! - the store only ever sees a secret's blake3 hash ([`SessionKey`],
//!   [`Validator::hash`], [`ApiToken::hash`]), and hashes are compared in
//!   constant time;
//! - parsing is total: any string either yields a well-formed token or
//!   `None`, never a panic.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Fills an array from the operating system's generator.
///
/// A system without working randomness cannot issue safe tokens, so failure
/// aborts the process rather than continuing with weak secrets.
pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if let Err(e) = getrandom::fill(&mut bytes) {
        eprintln!("authd: the operating system's random generator failed: {e}");
        std::process::abort();
    }
    bytes
}

/// Compares two byte strings without an early exit on the first difference.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// base64url without padding, the encoding of every token authd hands out.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url (no padding) into exactly `N` bytes, without allocating.
pub fn b64_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    // Reject wrong lengths before decoding so junk costs nothing.
    if s.len() != (N * 4).div_ceil(3) {
        return None;
    }
    // The decoder wants room for its length estimate (a few bytes over N).
    let mut buf = [0u8; 64];
    let room = buf.get_mut(..(N + 3).min(64))?;
    let n = URL_SAFE_NO_PAD.decode_slice(s, room).ok()?;
    if n != N {
        return None;
    }
    let mut out = [0u8; N];
    out.copy_from_slice(buf.get(..N)?);
    Some(out)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    let digit = |n: u8| char::from(DIGITS.get(usize::from(n)).copied().unwrap_or(b'0')); // n < 16
    for b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 15));
    }
    s
}

/// Decodes lower- or upper-case hex into exactly `N` bytes.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let txt = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(txt, 16).ok()?;
    }
    Some(out)
}

fn derive<const N: usize>(context: &str, material: &[u8]) -> [u8; N] {
    let mut h = blake3::Hasher::new_derive_key(context);
    h.update(material);
    let mut out = [0u8; N];
    h.finalize_xof().fill(&mut out);
    out
}

macro_rules! redacted_debug {
    ($t:ident) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), "(..)"))
            }
        }
    };
}

/// The secret in the `JSESSIONID` cookie: 256 random bits.
#[derive(Clone)]
pub struct SessionId([u8; 32]);
redacted_debug!(SessionId);

impl SessionId {
    /// A fresh random session ID.
    pub fn generate() -> Self {
        SessionId(random())
    }

    /// Parses a cookie value; `None` unless it is exactly 43 base64url characters.
    pub fn parse(s: &str) -> Option<Self> {
        b64_exact(s).map(SessionId)
    }

    /// The cookie value (base64url, 43 characters).
    pub fn to_cookie_value(&self) -> String {
        b64(&self.0)
    }

    /// The key the store files this session under: a blake3 hash of the ID.
    pub fn key(&self) -> SessionKey {
        // Keyed mode with a public, fixed key: domain separation for one
        // compression, where derive-key mode would hash its context each time.
        const DOMAIN: &[u8; 32] = b"authd 2026-11 session key \x00\x00\x00\x00\x00\x00";
        // The first 16 bytes of the keyed hash (the same bytes as the first
        // 16 of its extendable output, which earlier versions read).
        let hash = blake3::keyed_hash(DOMAIN, &self.0);
        let mut out = [0u8; 16];
        out.copy_from_slice(&hash.as_bytes()[..16]);
        SessionKey(out)
    }
}

/// The store's key for a session: a 128-bit blake3 hash of its ID.
///
/// Knowing a key does not let anyone present the session; it is safe to log
/// its [`Handle`] and to keep it in indexes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub [u8; 16]);

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", self.handle())
    }
}

impl SessionKey {
    /// The short public handle shown in logs, listings and `X-ASESSIONID`.
    pub fn handle(&self) -> Handle {
        let mut h = [0u8; 6];
        h.copy_from_slice(&self.0[..6]);
        Handle(h)
    }
}

/// A session's short public handle: 12 hex characters, derived from its key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle(pub [u8; 6]);

impl Handle {
    /// Parses the 12-hex-character form.
    pub fn parse(s: &str) -> Option<Self> {
        unhex(s).map(Handle)
    }

    /// Whether `key` is the session this handle names.
    pub fn matches(&self, key: &SessionKey) -> bool {
        key.0.starts_with(&self.0)
    }
}

impl Handle {
    /// The 12 hex characters, without allocating.
    pub fn hex_bytes(&self) -> [u8; 12] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digit = |n: u8| DIGITS.get(usize::from(n)).copied().unwrap_or(b'0'); // n < 16
        let mut out = [0u8; 12];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            if let [hi, lo] = pair {
                *hi = digit(b >> 4);
                *lo = digit(b & 15);
            }
        }
        out
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({self})")
    }
}

/// The public half of a remember-me cookie: names the series (128 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector(pub [u8; 16]);

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: enough to follow a series through the logs.
        write!(f, "Selector({}..)", hex(self.0.get(..4).unwrap_or(&[])))
    }
}

/// The secret half of a remember-me cookie (256 bits); stored only as a hash.
#[derive(Clone)]
pub struct Validator([u8; 32]);
redacted_debug!(Validator);

impl Validator {
    /// A fresh random validator.
    pub fn generate() -> Self {
        Validator(random())
    }

    /// The hash the store keeps.
    pub fn hash(&self) -> [u8; 32] {
        derive("authd 2026-11 remember-me validator", &self.0)
    }
}

/// A remember-me cookie value: `selector:validator`, both base64url.
#[derive(Clone, Debug)]
pub struct RememberToken {
    /// Which series.
    pub selector: Selector,
    /// Its current secret.
    pub validator: Validator,
}

impl RememberToken {
    /// A new series' first token.
    pub fn generate() -> Self {
        RememberToken { selector: Selector(random()), validator: Validator::generate() }
    }

    /// Parses `selector:validator`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let (sel, val) = s.split_once(':')?;
        Some(RememberToken { selector: Selector(b64_exact(sel)?), validator: Validator(b64_exact(val)?) })
    }

    /// The cookie value.
    pub fn to_cookie_value(&self) -> String {
        format!("{}:{}", b64(&self.selector.0), b64(&self.validator.0))
    }
}

/// What every API token starts with.
pub const API_TOKEN_PREFIX: &str = "authd_";

/// An API token for `Authorization: Basic user:token`: `authd_` and 256
/// random bits. Shown once; the store keeps its hash.
#[derive(Clone)]
pub struct ApiToken([u8; 32]);
redacted_debug!(ApiToken);

impl ApiToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        ApiToken(random())
    }

    /// Parses the `authd_...` form.
    pub fn parse(s: &str) -> Option<Self> {
        b64_exact(s.strip_prefix(API_TOKEN_PREFIX)?).map(ApiToken)
    }

    /// The form shown to its owner, once.
    pub fn reveal(&self) -> String {
        format!("{API_TOKEN_PREFIX}{}", b64(&self.0))
    }

    /// The hash the store files it under.
    pub fn hash(&self) -> [u8; 16] {
        derive("authd 2026-11 api token", &self.0)
    }
}

/// The public id of an API token: the first 6 bytes of its hash, in hex.
pub fn token_id(hash: &[u8; 16]) -> String {
    hex(hash.get(..6).unwrap_or(&[]))
}

/// A credential the server leaves in the data dir for the CLI's admin calls.
#[derive(Clone)]
pub struct AdminCredential([u8; 32]);
redacted_debug!(AdminCredential);

impl AdminCredential {
    /// A fresh random credential.
    pub fn generate() -> Self {
        AdminCredential(random())
    }

    /// Parses the base64url form.
    pub fn parse(s: &str) -> Option<Self> {
        b64_exact(s.trim()).map(AdminCredential)
    }

    /// The base64url form written to the credential file.
    pub fn encode(&self) -> String {
        b64(&self.0)
    }

    /// The hash the server keeps in memory to check presented credentials.
    pub fn hash(&self) -> [u8; 32] {
        derive("authd 2026-11 admin credential", &self.0)
    }
}

/// A random password for the first `admin` user: 20 base64url characters (120 bits).
pub fn random_password() -> String {
    b64(&random::<15>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_round_trips_through_its_cookie_value() {
        let id = SessionId::generate();
        let v = id.to_cookie_value();
        assert_eq!(v.len(), 43);
        let back = SessionId::parse(&v).unwrap();
        assert_eq!(back.key(), id.key());
    }

    #[test]
    fn session_id_parse_rejects_junk() {
        for s in ["", "abc", &"A".repeat(44), &"A".repeat(42), &"+".repeat(43), "é"] {
            assert!(SessionId::parse(s).is_none(), "{s:?}");
        }
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let id = SessionId::generate();
        assert_eq!(format!("{id:?}"), "SessionId(..)");
        let c = AdminCredential::generate();
        assert_eq!(format!("{c:?}"), "AdminCredential(..)");
    }

    #[test]
    fn session_keys_are_the_bytes_existing_files_hold() {
        // Keys are stored: the one-call keyed hash must give the bytes the
        // extendable output gave when those files were written.
        let id = SessionId::generate();
        let mut xof = [0u8; 16];
        blake3::Hasher::new_keyed(b"authd 2026-11 session key \x00\x00\x00\x00\x00\x00")
            .update(&id.0)
            .finalize_xof()
            .fill(&mut xof);
        assert_eq!(id.key().0, xof);
    }

    #[test]
    fn distinct_ids_have_distinct_keys_and_handles_prefix_keys() {
        let a = SessionId::generate().key();
        let b = SessionId::generate().key();
        assert_ne!(a, b);
        assert!(a.handle().matches(&a));
        assert!(!a.handle().matches(&b));
        assert_eq!(Handle::parse(&a.handle().to_string()), Some(a.handle()));
        assert_eq!(a.handle().hex_bytes().to_vec(), a.handle().to_string().into_bytes());
    }

    #[test]
    fn remember_tokens_round_trip_and_reject_junk() {
        let t = RememberToken::generate();
        let v = t.to_cookie_value();
        assert_eq!(v.len(), 22 + 1 + 43);
        let back = RememberToken::parse(&v).unwrap();
        assert_eq!(back.selector, t.selector);
        assert_eq!(back.validator.hash(), t.validator.hash());
        for junk in ["", ":", "a:b", &v.replace(':', ""), &format!("{v}:x"), &format!(":{v}")] {
            assert!(RememberToken::parse(junk).is_none(), "{junk:?}");
        }
        assert_eq!(format!("{:?}", t.validator), "Validator(..)");
    }

    #[test]
    fn api_tokens_round_trip_and_hash_stably() {
        let t = ApiToken::generate();
        let shown = t.reveal();
        assert!(shown.starts_with("authd_") && shown.len() == 49);
        assert_eq!(ApiToken::parse(&shown).unwrap().hash(), t.hash());
        assert!(ApiToken::parse(&shown[6..]).is_none());
        assert_eq!(token_id(&t.hash()).len(), 12);
        assert_eq!(format!("{t:?}"), "ApiToken(..)");
    }

    #[test]
    fn ct_eq_compares_whole_strings() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn b64_exact_takes_exactly_n_bytes() {
        let v = b64(&[7u8; 32]);
        assert_eq!(b64_exact::<32>(&v), Some([7u8; 32]));
        assert_eq!(b64_exact::<16>(&b64(&[1u8; 16])), Some([1u8; 16]));
        assert_eq!(b64_exact::<32>(&v[1..]), None);
        assert!(b64_exact::<32>(&format!("{}A", &v[..42])).is_some());
        assert_eq!(b64_exact::<32>(&"!".repeat(43)), None);
    }

    #[test]
    fn hex_round_trip_and_rejects_bad_input() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex::<3>("00abff"), Some([0, 0xab, 0xff]));
        assert_eq!(unhex::<3>("00ABFF"), Some([0, 0xab, 0xff]));
        assert_eq!(unhex::<3>("00abf"), None);
        assert_eq!(unhex::<3>("00abfg"), None);
        assert_eq!(unhex::<2>("éé"), None);
        assert_eq!(unhex::<1>("+f"), None);
    }
}

//! Validated server configuration.
//!
//! Flags arrive as strings (from the command line or `AUTHD_*` variables);
//! the parsers here turn them into typed values or a message that clap
//! reports against the flag's name. Anything that reaches [`Config`] has
//! already been checked, so the rest of authd never re-validates it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `authd serve` needs, already validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// The data directory (database, TLS files, admin credential).
    pub data_dir: PathBuf,
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Extra names for the self-signed certificate.
    pub tls_sans: Vec<String>,
    /// A real certificate and key, instead of the self-signed pair.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// The public base URL, when it should not be derived from `Host`.
    pub base_url: Option<String>,
    /// Session lifetimes.
    pub timeouts: Timeouts,
    /// Consecutive failures before the account demands a challenge.
    pub max_failed_logins: u32,
    /// First lockout period; doubles on each re-trigger, capped at one hour.
    pub lockout: Duration,
    /// Sessions per user before the oldest is evicted.
    pub max_sessions_per_user: u32,
    /// Prefix for all cookie names (`__Host-` hardens them).
    pub cookie_prefix: String,
    /// Maximum simultaneous connections.
    pub max_conns: usize,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive_timeout: std::time::Duration,
    /// How long a connection may leave its waiting responses untaken.
    pub send_timeout: std::time::Duration,
    /// Worker threads for password hashing (default: number of cores).
    pub hash_workers: usize,
    /// Hash jobs that may wait for a worker before logins get 503.
    pub hash_queue: usize,
    /// A shared store (Redis/Valkey URL) instead of the data dir's database.
    pub store: Option<String>,
    /// Key namespace in the shared store.
    pub store_namespace: String,
    /// The app behind authd (`http://host:port`), if any.
    pub upstream: Option<String>,
    /// Origins allowed to make credentialed cross-origin requests.
    pub cors_origins: Vec<String>,
    /// Anonymous requests to the app go to the login page (browsers) or get 401.
    pub require_login: bool,
    /// How long the app has to start its answer.
    pub upstream_timeout: std::time::Duration,
    /// Largest request body forwarded to the app.
    pub max_body: usize,
    /// Failed logins per client address per ten minutes before 429 (0: not limited).
    pub address_failures: u32,
    /// Leading zero bits of the login page's proof-of-work puzzle.
    pub challenge_difficulty: u8,
}

impl Config {
    /// The authentication service's settings.
    pub fn auth_settings(&self, public_base: String) -> crate::auth::AuthSettings {
        crate::auth::AuthSettings {
            timeouts: self.timeouts,
            max_failed_logins: self.max_failed_logins,
            lockout: self.lockout,
            address_failures: self.address_failures,
            challenge_difficulty: self.challenge_difficulty,
            max_sessions_per_user: self.max_sessions_per_user,
            hash_workers: self.hash_workers,
            hash_queue: self.hash_queue,
            public_base,
        }
    }
}

/// The session-lifetime settings of SPEC §1 and §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A session ends this long after its last use.
    pub idle: Duration,
    /// A session ends this long after login, whatever its use.
    pub absolute: Duration,
    /// Lifetime of a remember-me series.
    pub remember_me_age: Duration,
    /// How long a just-rotated remember-me validator is still accepted.
    pub remember_me_grace: Duration,
    /// Last-use time is persisted at most this often per session.
    pub touch_interval: Duration,
    /// How often the sweeper runs.
    pub sweep_interval: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(5 * 3600),
            absolute: Duration::from_secs(24 * 3600),
            remember_me_age: Duration::from_secs(14 * 86_400),
            remember_me_grace: Duration::from_secs(30),
            touch_interval: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// The longest remember-me series allowed (browsers cap cookies at 400 days).
pub const MAX_REMEMBER_ME_AGE: Duration = Duration::from_secs(400 * 86_400);

/// The longest any timeout may be: ten years, far below `u64` milliseconds.
const MAX_ANY: Duration = Duration::from_secs(3650 * 86_400);

/// Why a duration did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DurationError {
    /// Not a whole number followed by a unit.
    Syntax,
    /// Longer than any timeout may be (or than a `u64` of milliseconds).
    TooLarge,
}

const DURATION_HINT: &str = "expected a whole number followed by ms, s, m, h or d (e.g. 90s, 30m, 5h, 14d)";

/// Parses `90s`, `30m`, `5h`, `14d` or `500ms` into a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_bounded(s).map_err(|e| match e {
        DurationError::Syntax => DURATION_HINT.to_string(),
        DurationError::TooLarge => format!("must be at most {}", format_duration(MAX_ANY)),
    })
}

/// The syntax of [`parse_duration`], capped at [`MAX_ANY`]; the caller words
/// the error, so that a flag's message names that flag's own limit.
fn parse_bounded(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or(DurationError::Syntax)?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(DurationError::Syntax);
    }
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(DurationError::Syntax),
    };
    // Only digits, so a number that does not fit a u64 is simply too large.
    let n: u64 = num.parse().map_err(|_| DurationError::TooLarge)?;
    let ms = n.checked_mul(unit_ms).ok_or(DurationError::TooLarge)?;
    let d = Duration::from_millis(ms);
    if d > MAX_ANY {
        return Err(DurationError::TooLarge);
    }
    Ok(d)
}

/// Formats a duration the way the flags take it (`5h`, `90s`, `14d`).
pub fn format_duration(d: Duration) -> String {
    let ms = crate::clock::millis(d);
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A duration parser with bounds, for use as a clap `value_parser`.
#[derive(Clone, Copy, Debug)]
pub struct DurationParser {
    min: Duration,
    max: Duration,
}

impl DurationParser {
    /// Accepts durations from `min` to `max`, inclusive.
    pub const fn between(min: Duration, max: Duration) -> Self {
        DurationParser { min, max }
    }

    /// Parses and checks the bounds.
    pub fn parse(&self, s: &str) -> Result<Duration, String> {
        // One message for "over the limit", however far over: the flag's own
        // limit (never exceeding what any duration may be).
        let too_large = || format!("must be at most {}", format_duration(self.max.min(MAX_ANY)));
        let d = match parse_bounded(s) {
            Ok(d) => d,
            Err(DurationError::Syntax) => return Err(DURATION_HINT.into()),
            Err(DurationError::TooLarge) => return Err(too_large()),
        };
        if d < self.min {
            return Err(format!("must be at least {}", format_duration(self.min)));
        }
        if d > self.max {
            return Err(too_large());
        }
        Ok(d)
    }
}

impl clap::builder::TypedValueParser for DurationParser {
    type Value = Duration;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Duration, clap::Error> {
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(clap::error::ErrorKind::InvalidUtf8, "value is not UTF-8").with_cmd(cmd)
        })?;
        self.parse(text).map_err(|reason| invalid_value(cmd, arg, text, &reason))
    }
}

/// A clap "invalid value" error that names the flag, with our reason.
pub fn invalid_value(cmd: &clap::Command, arg: Option<&clap::Arg>, value: &str, reason: &str) -> clap::Error {
    let flag = arg.and_then(|a| a.get_long().map(|l| format!("--{l}"))).unwrap_or_else(|| "value".into());
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        invalid_value_line(&flag, &value, reason) + "\n",
    )
    .with_cmd(cmd)
}

/// The one line of a bad flag value, worded as clap words its own.
pub fn invalid_value_line(flag: &str, value: &dyn std::fmt::Display, reason: &str) -> String {
    format!("invalid value '{value}' for '{flag}': {reason}")
}

/// Checks a cookie-name prefix: empty, or characters allowed in a cookie name.
pub fn parse_cookie_prefix(s: &str) -> Result<String, String> {
    let ok = s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok && s.len() <= 32 {
        Ok(s.to_string())
    } else {
        Err("a cookie-name prefix may hold only letters, digits and !#$%&'*+-.^_`|~ (at most 32)".into())
    }
}

/// Reads a `--listen` address: `IP:PORT` (`[::1]:PORT` for IPv6), or
/// `localhost:PORT` for `127.0.0.1:PORT`. Other host names are refused
/// rather than looked up.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    let loopback = s.strip_prefix("localhost:").map(|port| format!("127.0.0.1:{port}"));
    loopback.as_deref().unwrap_or(s).parse().map_err(|_| {
        "must be IP:PORT, such as 127.0.0.1:8443, [::1]:8443 or 0.0.0.0:8443 (or localhost:PORT)".to_string()
    })
}

/// Checks a `--tls-san`: an IP address, or a DNS name (labels of letters,
/// digits and inner hyphens, at most 63 each and 253 in all; a leading `*.`
/// for a wildcard).
pub fn parse_tls_san(s: &str) -> Result<String, String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(s.to_string());
    }
    let name = s.strip_prefix("*.").unwrap_or(s);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.len() <= 253 && name.split('.').all(label_ok) {
        Ok(s.to_string())
    } else {
        Err("must be a DNS name such as app.example or an IP address".into())
    }
}

/// Checks a `--cors-origin`: `scheme://host[:port]`, exactly as browsers send `Origin`.
pub fn parse_cors_origin(s: &str) -> Result<String, String> {
    if s.trim() == "*" {
        return Err("authd never allows every origin with credentials; name each origin".into());
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    let host_ok = !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !host_ok {
        return Err("must be an origin such as https://app.example (no path, no trailing slash)".into());
    }
    // As browsers send it: `https://app.example:443` arrives without the port.
    Ok(crate::xsrf::without_default_port(s).to_string())
}

/// Checks a `--base-url`: an absolute http(s) URL without a trailing slash.
pub fn parse_base_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err("must be a URL such as https://auth.example.com".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("5h"), Ok(Duration::from_secs(18_000)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn junk_durations_are_refused() {
        for s in ["", "banana", "5", "s", "-5s", "5 h", "5hours", "1.5h", "5H", "99999999999999999999d"] {
            assert!(parse_duration(s).is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert!(parse_duration("18446744073709551615d").is_err());
        assert!(parse_duration("4000d").is_err());
    }

    #[test]
    fn bounds_name_the_limit() {
        let p = DurationParser::between(Duration::from_secs(1), MAX_REMEMBER_ME_AGE);
        assert_eq!(p.parse("400d"), Ok(MAX_REMEMBER_ME_AGE));
        assert_eq!(p.parse("401d"), Err("must be at most 400d".to_string()));
        assert_eq!(p.parse("0s"), Err("must be at least 1s".to_string()));
        // Far over the limit, past the ten-year cap or past u64: still this limit.
        for huge in ["4000d", "99999999999d", "99999999999999999999d", "18446744073709551615ms"] {
            assert_eq!(p.parse(huge), Err("must be at most 400d".to_string()), "{huge}");
        }
        let short = DurationParser::between(Duration::ZERO, Duration::from_secs(3600));
        assert_eq!(short.parse("99999999999d"), Err("must be at most 1h".to_string()));
        assert_eq!(short.parse("banana"), Err(DURATION_HINT.to_string()));
    }

    #[test]
    fn durations_format_in_the_largest_whole_unit() {
        assert_eq!(format_duration(Duration::from_secs(5 * 3600)), "5h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
    }

    #[test]
    fn cookie_prefixes() {
        assert!(parse_cookie_prefix("__Host-").is_ok());
        assert!(parse_cookie_prefix("").is_ok());
        assert!(parse_cookie_prefix("a b").is_err());
        assert!(parse_cookie_prefix("x=").is_err());
        assert!(parse_cookie_prefix("x;").is_err());
    }

    #[test]
    fn cors_origins() {
        assert!(parse_cors_origin("https://app.example").is_ok());
        assert!(parse_cors_origin("http://localhost:3000").is_ok());
        assert_eq!(parse_listen("localhost:0"), Ok("127.0.0.1:0".parse().unwrap()));
        assert_eq!(parse_listen("[::1]:8443"), Ok("[::1]:8443".parse().unwrap()));
        for bad in ["localhost", "localhost:x", "example.com:80", "127.0.0.1"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
        for ok in ["app.example", "*.app.example", "localhost", "10.0.0.1", "::1", "a-b.c1"] {
            assert_eq!(parse_tls_san(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in ["", " ", "bad name!", "a..b", "-a.example", "a-.example", "*", "a.*.b", &"x".repeat(64)] {
            assert!(parse_tls_san(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_cors_origin("https://app.example:443").as_deref(), Ok("https://app.example"));
        assert_eq!(parse_cors_origin("http://app.example:80").as_deref(), Ok("http://app.example"));
        assert_eq!(parse_cors_origin("https://app.example:8443").as_deref(), Ok("https://app.example:8443"));
        assert!(parse_cors_origin("*").is_err());
        assert!(parse_cors_origin("https://app.example/").is_err());
        assert!(parse_cors_origin("app.example").is_err());
    }

    #[test]
    fn base_urls() {
        assert_eq!(parse_base_url("https://a.example/").as_deref(), Ok("https://a.example"));
        assert!(parse_base_url("ftp://a").is_err());
        assert!(parse_base_url("https://").is_err());
    }
}

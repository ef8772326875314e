//! `authd serve`: start-up, the server's lifetime, and a clean stop.
//!
//! Start-up order: data dir → database → certificate → listener → first
//! admin user → admin credential → banner → sweeper → serve. Every failure
//! before serving is a [`StartError`] whose message names the file or flag.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::admin::AddUser;
use crate::auth::Auth;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::datadir::{write_private, DataDir};
use crate::http::proxy::Upstream;
use crate::http::{self, App, Limits};
use crate::store::redb::RedbStore;
use crate::store::Store;
use crate::token::{random_password, AdminCredential};
use crate::{sweeper, tls};

/// Why the server could not start, or did not stop cleanly.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// What a running server leaves in the data dir for the CLI.
#[derive(Serialize, Deserialize)]
pub struct AdminEndpoint {
    /// Loopback URL of the server.
    pub url: String,
    /// The bearer credential for the admin API.
    pub credential: String,
    /// The certificate the server presents (pinned by the CLI).
    pub cert: String,
    /// The server's process id.
    pub pid: u32,
}

/// Runs the server until `stop` resolves, then drains and closes the store.
/// A final flush that fails (say, the database turned out damaged) is an
/// error after the stop, so authd exits non-zero naming the file.
pub async fn run(cfg: Config, stop: impl Future<Output = ()>) -> Result<(), StartError> {
    let dir = DataDir::new(&cfg.data_dir);
    dir.prepare().map_err(StartError)?;
    // TLS files that are there are checked first: a bad key must stop authd
    // before the database is opened (opening it for writing rewrites its
    // header). A self-signed pair that must be made is made only once the
    // database is ours: another authd holding this data dir refuses us
    // there, before we could replace the certificate it serves.
    let own = cfg.cert_and_key.as_ref();
    let make_pair = own.is_none() && tls::self_signed_due(&dir, &cfg.tls_sans);
    let ready = if make_pair { None } else { Some(tls::load(&dir, &cfg.tls_sans, own).map_err(StartError)?) };
    // Uses are made durable within one touch interval, the one sliding uses
    // (capped at a tenth of the idle timeout), so a crash loses no more.
    let touch_interval = crate::session::SessionPolicy::new(&cfg.timeouts, false).touch_interval;
    let flush_after = touch_interval.clamp(Duration::from_millis(100), Duration::from_secs(60));
    let store: Arc<dyn Store> = match &cfg.store {
        Some(url) => Arc::new(
            crate::store::redis::RedisStore::connect(url, &cfg.store_namespace)
                .await
                .map_err(|e| StartError(e.to_string()))?,
        ),
        None => Arc::new(RedbStore::open(&dir.db(), flush_after).map_err(|e| StartError(e.to_string()))?),
    };
    let tls = match ready {
        Some(tls) => tls,
        None => tls::load(&dir, &cfg.tls_sans, own).map_err(StartError)?,
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| StartError(format!("cannot listen on {} (--listen): {e}", cfg.listen)))?;
    let addr =
        listener.local_addr().map_err(|e| StartError(format!("cannot read the bound address: {e}")))?;

    let public_base = cfg.base_url.clone().unwrap_or_else(|| format!("https://{}", loopback(addr)));
    let auth =
        Arc::new(Auth::new(Arc::clone(&store), Arc::new(SystemClock), &cfg.auth_settings(public_base)));
    let first_password = bootstrap_admin(&auth).await?;

    let credential = AdminCredential::generate();
    let endpoint = AdminEndpoint {
        url: format!("https://{}", loopback(addr)),
        credential: credential.encode(),
        cert: absolute(&tls.cert_path),
        pid: std::process::id(),
    };
    let endpoint_json = serde_json::to_vec_pretty(&endpoint).map_err(|e| StartError(e.to_string()))?;
    write_private(&dir.admin_credential(), &endpoint_json)
        .map_err(|e| StartError(format!("cannot write {}: {e}", dir.admin_credential().display())))?;

    print_banner(addr, &tls, cfg.base_url.as_deref(), first_password.as_deref());

    let app = Arc::new(App {
        auth: Arc::clone(&auth),
        cookie_names: crate::cookies::CookieNames::new(&cfg.cookie_prefix),
        base_url: cfg.base_url.clone(),
        listen_authority: loopback(addr).to_string(),
        admin_credential: credential.hash(),
        cors_origins: cfg.cors_origins.clone(),
        upstream: cfg
            .upstream
            .as_deref()
            .map(|u| Upstream::new(u, cfg.max_body, cfg.require_login, cfg.upstream_timeout)),
        max_header_bytes: Limits::default().max_header_bytes,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(sweeper::run(Arc::clone(&auth), cfg.timeouts.sweep_interval, stop_rx));
    let limits = Limits {
        max_conns: cfg.max_conns,
        idle_timeout: cfg.keep_alive_timeout,
        send_timeout: cfg.send_timeout,
        ..Limits::default()
    };
    http::serve(listener, tls.config, app, limits, stop).await;

    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    let _ = std::fs::remove_file(dir.admin_credential());
    let flushed = store.flush().await;
    drop(auth);
    // Connection tasks still finishing hold the store; give them a moment so
    // the database is closed cleanly rather than left for recovery.
    for _ in 0..100 {
        if Arc::strong_count(&store) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(store);
    tracing::info!("stopped");
    flushed.map_err(|e| StartError(format!("stopped without a final flush: {e}")))
}

/// Caps glibc's per-thread malloc arenas at two. By default glibc gives
/// every thread that allocates its own arena, and each keeps its freed
/// memory: with the tokio workers, the blocking pool (argon2) and the
/// writer, that roughly doubles the resident set for no speed gain here.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; it takes no pointers
    // and is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Lets a write past the file-size limit (`ulimit -f`) fail with an error,
/// which the store reports like any I/O error, instead of SIGXFSZ killing
/// the server mid-commit (PostgreSQL does the same).
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // code; it is safe at any time.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Creates user `admin` with a random password if there are no users.
async fn bootstrap_admin(auth: &Auth) -> Result<Option<String>, StartError> {
    let users = auth.store.users().await.map_err(|e| StartError(e.to_string()))?;
    if !users.is_empty() {
        return Ok(None);
    }
    let password = random_password();
    let req = AddUser {
        name: "admin".into(),
        password: password.clone(),
        email: None,
        admin: true,
        unverified: false,
    };
    auth.add_user(req).await.map_err(|e| StartError(format!("cannot create the first user: {e}")))?;
    Ok(Some(password))
}

/// The address to reach a listener at from this machine.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

fn absolute(p: &std::path::Path) -> String {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string()
}

/// Quotes a path for pasting into a POSIX shell, if it needs it.
fn shell_quote(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn print_banner(addr: SocketAddr, tls: &tls::Tls, base_url: Option<&str>, first_password: Option<&str>) {
    use std::io::Write as _;
    let at = loopback(addr);
    let url = format!("https://{at}");
    let cert = shell_quote(&tls.cert_path.display().to_string());
    let (curl, hint) = curl_example(at, &cert, |n| tls.covers(n), &example_names(base_url));
    let mut text = format!(
        "authd {} listening on {addr}\n  URL:          {url}\n  certificate:  {}\n  SHA-256:      {}\n  try:          {curl}\n",
        env!("CARGO_PKG_VERSION"),
        tls.cert_path.display(),
        tls.fingerprint,
    );
    if let Some(hint) = hint {
        text.push_str(&format!("  NAME:         {hint}\n"));
    }
    if let Some(pw) = first_password {
        text.push_str(&format!(
            "  created user admin (admin role); it is shown only this once; change it with `authd user passwd admin --password-stdin`\n  admin password: {pw}\n"
        ));
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Names the banner's `curl` example may use when the certificate does not
/// cover the listening address (an operator's own `--cert`): the base URL's
/// host, then `localhost`.
fn example_names(base_url: Option<&str>) -> Vec<String> {
    let host = base_url.and_then(|u| u.parse::<hyper::Uri>().ok()).and_then(|u| u.host().map(str::to_string));
    // `Uri::host` keeps an IPv6 literal's brackets; the certificate check does not want them.
    let host = host.map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string());
    host.into_iter().chain(std::iter::once("localhost".to_string())).collect()
}

/// The banner's `curl` example for a server at `at` whose certificate is in
/// `cert` (shell-quoted): by address when the certificate covers it, else by
/// the first of `names` it covers, pinned to the address with `--resolve`;
/// failing both, a template with `NAME` and a line saying what to fill in.
/// IPv6 literals are no use as a name: curl's `--resolve` refuses them.
fn curl_example(
    at: SocketAddr,
    cert: &str,
    covers: impl Fn(&str) -> bool,
    names: &[String],
) -> (String, Option<String>) {
    const PATH: &str = "/rest/api/2/serverInfo";
    let ip = at.ip().to_string();
    if covers(&ip) {
        return (format!("curl --cacert {cert} https://{at}{PATH}"), None);
    }
    let port = at.port();
    let pinned = if at.is_ipv6() { format!("[{ip}]") } else { ip.clone() };
    let usable = |n: &&String| n.parse::<Ipv6Addr>().is_err() && covers(n);
    match names.iter().find(usable) {
        Some(name) => {
            let name = shell_quote(name);
            (
                format!("curl --cacert {cert} --resolve {name}:{port}:{pinned} https://{name}:{port}{PATH}"),
                None,
            )
        }
        None => (
            format!("curl --cacert {cert} --resolve NAME:{port}:{pinned} https://NAME:{port}{PATH}"),
            Some(format!(
                "a host name the certificate covers (it covers neither {ip} nor {})",
                names.join(", ")
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_map_to_loopback() {
        assert_eq!(loopback("0.0.0.0:5".parse().unwrap()), "127.0.0.1:5".parse().unwrap());
        assert_eq!(loopback("[::]:5".parse().unwrap()), "[::1]:5".parse().unwrap());
        assert_eq!(loopback("10.0.0.1:5".parse().unwrap()), "10.0.0.1:5".parse().unwrap());
    }

    #[test]
    fn the_curl_example_uses_the_address_or_a_covered_name() {
        let v4: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let v6: SocketAddr = "[::1]:8443".parse().unwrap();
        let names = example_names(Some("https://auth.example.test/jira"));
        assert_eq!(names, ["auth.example.test", "localhost"]);
        assert_eq!(example_names(Some("https://[2001:db8::1]:9443")), ["2001:db8::1", "localhost"]);
        assert_eq!(example_names(None), ["localhost"]);

        // The self-signed certificate covers the address.
        let (line, hint) = curl_example(v4, "c.pem", |n| n == "127.0.0.1", &names);
        assert_eq!(line, "curl --cacert c.pem https://127.0.0.1:8443/rest/api/2/serverInfo");
        assert_eq!(hint, None);
        let (line, _) = curl_example(v6, "c.pem", |n| n == "::1", &names);
        assert_eq!(line, "curl --cacert c.pem https://[::1]:8443/rest/api/2/serverInfo");

        // An own certificate for the base URL's host, or for localhost.
        let (line, hint) = curl_example(v4, "c.pem", |n| n == "auth.example.test", &names);
        assert_eq!(
            line,
            "curl --cacert c.pem --resolve auth.example.test:8443:127.0.0.1 https://auth.example.test:8443/rest/api/2/serverInfo"
        );
        assert_eq!(hint, None);
        let (line, _) = curl_example(v6, "c.pem", |n| n == "localhost", &names);
        assert!(line.contains("--resolve localhost:8443:[::1] https://localhost:8443/"), "{line}");

        // An IPv6 literal cannot be a --resolve name; nothing covered: a template.
        let v6_names = example_names(Some("https://[2001:db8::1]"));
        let (line, hint) = curl_example(v4, "c.pem", |n| n == "2001:db8::1", &v6_names);
        assert!(line.contains("--resolve NAME:8443:127.0.0.1 https://NAME:8443/"), "{line}");
        let hint = hint.expect("a hint for NAME");
        assert!(hint.contains("neither 127.0.0.1 nor 2001:db8::1, localhost"), "{hint}");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("./db/tls/cert.pem"), "./db/tls/cert.pem");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}

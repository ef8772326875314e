//! SPEC §10, limits: request heads over 16 KiB (431 on HTTP/1.1 and
//! HTTP/2), bodies over each route's limit (413), slow and silent clients
//! (TLS handshake and header read timeouts of 10 s), idle keep-alive
//! connections, `--max-conns`, and HTTP/2's limit of 256 concurrent streams.
//! Every case also checks that the server keeps answering other clients.
//!
//! The slow-client cases wait about ten seconds each, so they run
//! concurrently inside a few tests rather than one after another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::gateway::{read_response, start_pair};
use crate::support::*;

const LOGIN: &str = "/rest/auth/1/session";
const KIB: usize = 1024;

// ---------------------------------------------------------------------------
// Connections by hand.

/// A TLS client configuration trusting exactly `cert_pem`, offering `alpn`.
fn tls_config(cert_pem: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(tls)
}

/// A TLS connection to `s` offering `alpn`, or the handshake's error.
async fn try_tls(s: &Server, alpn: &[&[u8]]) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(tls_config(&s.cert_pem(), alpn));
    let tcp = TcpStream::connect(("127.0.0.1", s.port)).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await
}

/// A TLS connection to `s` offering `alpn` (a panic if the handshake fails).
async fn tls(s: &Server, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    tokio::time::timeout(Duration::from_secs(10), try_tls(s, alpn))
        .await
        .expect("TLS handshake timed out")
        .expect("TLS handshake failed")
}

/// Reads until the peer closes (EOF or an error) or `limit` passes; returns
/// how long the connection stayed open (`None`: still open at `limit`)
/// and what was read.
async fn open_for<S: AsyncRead + Unpin>(s: &mut S, started: Instant, limit: Duration) -> (Option<Duration>, Vec<u8>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (None, seen),
            Ok(Ok(0)) | Ok(Err(_)) => return (Some(started.elapsed()), seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// `GET /healthz` on a fresh connection: the server still answers others.
async fn healthz(s: &Server) -> u16 {
    match s.bare_client().get(s.at("/healthz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("GET /healthz failed: {e}"),
    }
}

/// A closed-connection time between 9 and 15 s, as a 10 s timeout gives.
fn about_ten_seconds(what: &str, open: Option<Duration>, seen: &[u8]) -> Result<(), String> {
    match open {
        None => Err(format!("{what}: still open after {:?}", LIMIT)),
        Some(t) if t < Duration::from_secs(9) || t > Duration::from_secs(15) => Err(format!(
            "{what}: closed after {t:.1?}, expected 9-15 s (answer: {:?})",
            String::from_utf8_lossy(seen)
        )),
        Some(_) => Ok(()),
    }
}

/// How long slow-client cases wait at most.
const LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// 431: request heads over 16 KiB.

/// `n` headers `x-pad-i: 1000 x "a"` (about n KiB).
fn padding(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("x-pad-{i}"), "a".repeat(1000))).collect()
}

async fn get_with(c: &reqwest::Client, s: &Server, headers: &[(String, String)]) -> reqwest::Result<reqwest::Response> {
    let mut b = c.get(s.at("/rest/api/2/serverInfo"));
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.send().await
}

#[tokio::test]
async fn request_heads_over_16_kib_are_431_on_http1_and_http2() {
    let s = Server::start(&[]);
    let h1 = h1_client_for(&s.cert_pem());
    let h2 = s.bare_client();
    // 12 KiB of headers pass on both protocols.
    for (proto, c) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        let r = get_with(c, &s, &padding(12)).await.unwrap_or_else(|e| panic!("{proto}, 12 KiB: {e}"));
        assert_eq!(r.status(), 200, "{proto}: 12 KiB of headers must pass");
        let version = r.version();
        assert_eq!(
            version,
            if proto == "HTTP/2" { reqwest::Version::HTTP_2 } else { reqwest::Version::HTTP_11 },
            "{proto}"
        );
    }
    // 18 KiB: 431 on both.
    for (proto, c) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        let r = get_with(c, &s, &padding(18)).await.unwrap_or_else(|e| panic!("{proto}, 18 KiB: {e}"));
        assert_eq!(r.status(), 431, "{proto}: 18 KiB of headers");
    }
    // One huge header (a 20 KiB cookie) over HTTP/1.1 as raw bytes.
    let req = format!(
        "GET /rest/auth/1/session HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: JSESSIONID={}\r\nConnection: close\r\n\r\n",
        s.port,
        "A".repeat(20 * KIB)
    );
    let answer = raw_h1(&s, req.as_bytes()).await;
    assert_eq!(raw_status(&answer), Some(431), "{}", String::from_utf8_lossy(&answer));
    // Just under 16 KiB in all still passes over HTTP/1.1 (request line included).
    let pad = 16 * KIB - 200;
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        s.port,
        "b".repeat(pad)
    );
    assert!(req.len() < 16 * KIB);
    let answer = raw_h1(&s, req.as_bytes()).await;
    assert_eq!(raw_status(&answer), Some(200), "{}", String::from_utf8_lossy(&answer[..answer.len().min(300)]));
    // The same HTTP/2 connection still serves after its 431.
    let r = get_with(&h2, &s, &[]).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(healthz(&s).await, 200);
}

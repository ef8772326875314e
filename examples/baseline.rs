//! The benchmark's physical limit: a server built from authd's own stack
//! (hyper 1 + hyper-util's auto builder for HTTP/1.1 and HTTP/2 by ALPN +
//! tokio-rustls with the ring provider, tokio's default multi-thread runtime,
//! the same certificate and the same connection settings as `src/http/mod.rs`)
//! that answers every request with an empty 200 and does nothing else.
//!
//! With `--like-authd` it answers every request with a fixed copy of authd's
//! answer to a session check instead (the same status, headers and JSON
//! body, built once): the ceiling for a server that must send what
//! SPEC §3 asks for, so the cost of sending that answer can be told apart
//! from the cost of working it out (bench/PROFILE.md).
//!
//! ```text
//! cargo run --release --example baseline -- --data DIR [--listen 127.0.0.1:0] [--like-authd]
//! ```
//!
//! It prints `URL: https://ADDR` on stderr like authd does. See bench/README.md.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> ! {
    eprintln!("usage: baseline --data DIR [--listen ADDR] [--like-authd]");
    std::process::exit(2);
}

fn main() {
    let mut data = None;
    let mut listen: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|_| usage());
    let mut like_authd = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = Some(args.next().unwrap_or_else(|| usage())),
            "--listen" => {
                listen = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
            }
            "--like-authd" => like_authd = true,
            _ => usage(),
        }
    }
    let data = data.unwrap_or_else(|| usage());
    let dir = authd::datadir::DataDir::new(&data);
    if let Err(e) = dir.prepare() {
        eprintln!("baseline: {e}");
        std::process::exit(1);
    }
    let tls = match authd::tls::load(&dir, &[], None) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("baseline: {e}");
            std::process::exit(1);
        }
    };
    // The same runtime as authd: tokio's multi-thread default (one worker per core).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| {
        eprintln!("baseline: cannot start the runtime: {e}");
        std::process::exit(1);
    });
    runtime.block_on(serve(listen, tls.config, like_authd));
}

async fn serve(listen: SocketAddr, tls: Arc<rustls::ServerConfig>, like_authd: bool) {
    let listener = TcpListener::bind(listen).await.unwrap_or_else(|e| {
        eprintln!("baseline: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    let addr = listener.local_addr().unwrap_or(listen);
    let kind = if like_authd { "a copy of authd's session check" } else { "empty 200" };
    eprintln!("baseline ({kind}) listening on {addr}\n  URL:          https://{addr}");
    let acceptor = TlsAcceptor::from(tls);
    // The same connection settings as authd's `http::serve` (header read
    // timeout, buffer cap, HTTP/2 stream cap): part of the stack, not of the app.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(16 * 1024);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256).max_header_list_size(16 * 1024);
    let builder = Arc::new(builder);
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                Ok::<_, Infallible>(if like_authd {
                    authd_like()
                } else {
                    Response::new(Either::Left(Empty::new()))
                })
            });
            let _ = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await;
        });
    }
}

/// What authd answers to `GET /rest/auth/1/session` for user `alice` (SPEC
/// §3): the headers authd sets (hyper adds `date` and `content-length`) and
/// a body of the same length.
fn authd_like() -> Response<Either<Empty<Bytes>, Full<Bytes>>> {
    const BODY: &str = concat!(
        r#"{"self":"https://127.0.0.1:19443/rest/api/2/user?username=alice","#,
        r#""name":"alice","loginInfo":{"failedLoginCount":0,"loginCount":1}}"#
    );
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(BODY.as_bytes()))));
    let h = r.headers_mut();
    for (name, value) in [
        ("content-type", "application/json"),
        ("x-ausername", "alice"),
        ("x-asessionid", "cc2513d227cd"),
        ("x-authd-session-expires", "1796179078"),
        ("cache-control", "no-store"),
    ] {
        h.insert(name, hyper::header::HeaderValue::from_static(value));
    }
    r
}

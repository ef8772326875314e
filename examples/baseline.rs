//! The benchmark's physical limit: a server built from authd's own stack
//! (hyper 1 + hyper-util's auto builder for HTTP/1.1 and HTTP/2 by ALPN +
//! tokio-rustls with the ring provider, tokio's default multi-thread runtime,
//! the same certificate and the same connection settings as `src/http/mod.rs`)
//! that answers every request with an empty 200 and does nothing else.
//!
//! ```text
//! cargo run --release --example baseline -- --data DIR [--listen 127.0.0.1:0]
//! ```
//!
//! It prints `URL: https://ADDR` on stderr like authd does. See bench/README.md.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> ! {
    eprintln!("usage: baseline --data DIR [--listen ADDR]");
    std::process::exit(2);
}

fn main() {
    let mut data = None;
    let mut listen: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|_| usage());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = Some(args.next().unwrap_or_else(|| usage())),
            "--listen" => {
                listen = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
            }
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
    runtime.block_on(serve(listen, tls.config));
}

async fn serve(listen: SocketAddr, tls: Arc<rustls::ServerConfig>) {
    let listener = TcpListener::bind(listen).await.unwrap_or_else(|e| {
        eprintln!("baseline: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    let addr = listener.local_addr().unwrap_or(listen);
    eprintln!("baseline (empty 200) listening on {addr}\n  URL:          https://{addr}");
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
            let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            });
            let _ = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await;
        });
    }
}

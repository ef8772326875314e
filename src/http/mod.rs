//! The HTTPS server: accept, TLS handshake, HTTP/1.1 or HTTP/2, graceful stop.
//!
//! Limits applied here, per connection: at most `max_conns` at once (more
//! are closed on accept), a TLS handshake timeout, a header read timeout
//! that also bounds the wait for the first request (slow or silent clients
//! are dropped), an idle keep-alive timeout and a send timeout for answers
//! the client does not take (see [`conn`]), a header size cap (431), and
//! an HTTP/2 stream cap.

pub mod admin_api;
pub mod app;
pub mod authd_api;
pub mod conn;
mod hot;
pub mod pages;
pub mod proxy;
pub mod request;
pub mod response;
pub mod session_api;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::Either;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use conn::{Activity, Due, Guarded, Timeouts, Tracked, Watch};

pub use app::App;

/// Connection-level limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once.
    pub max_conns: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to send a request's headers (HTTP/1), and for the first
    /// request to arrive after the TLS handshake.
    pub header_timeout: Duration,
    /// How long a connection with nothing running and no bytes moving stays open.
    pub idle_timeout: Duration,
    /// How long a connection may leave every waiting response untaken
    /// (see [`conn`]) before it is closed.
    pub send_timeout: Duration,
    /// Largest request head (request line and headers).
    pub max_header_bytes: usize,
    /// How long in-flight requests may run after a stop signal.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 10_000,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `stop` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.max_conns));
    let (stopping, stop_rx) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Heads up to four times the limit reach `App::handle`, which
        // refuses those over it with a Jira-shaped 431 (hyper's own is bare).
        .max_buf_size(4 * limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(4 * limits.max_header_bytes).unwrap_or(u32::MAX));
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!("connection limit ({}) reached; closing a new connection", limits.max_conns);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = Arc::clone(&app);
        let builder = builder.clone();
        let stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let slot = Arc::new(slot);
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let fd = std::os::fd::AsRawFd::as_raw_fd(tls.get_ref().0);
            let activity = Activity::new();
            let io = TokioIo::new(Tracked::new(tls, Arc::clone(&activity)));
            let act = Arc::clone(&activity);
            let handover = Handover { _slot: slot, stopping: stop_rx.clone() };
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let guard = act.begin();
                let (mut parts, body) = req.into_parts();
                // The usual session check, answered here (see `hot`). A
                // request with a body takes the general path, which reads
                // what it leaves unread, so the answer reaches a client still
                // sending and the connection stays usable.
                if hyper::body::Body::is_end_stream(&body) {
                    if let Some(resp) = app.answer_now(&parts, Instant::now()) {
                        let resp = resp.map(|body| Guarded::new(body, guard));
                        return Either::Left(std::future::ready(Ok::<_, Infallible>(resp)));
                    }
                }
                if parts.headers.contains_key(hyper::header::UPGRADE) {
                    parts.extensions.insert(handover.clone());
                }
                let body = request::RequestBody::new(body, &parts.headers);
                let app = Arc::clone(&app);
                // Boxed: HTTP/2 runs each request as a task of its own, and
                // the task (moved several times on its way to the scheduler)
                // then holds a pointer instead of the whole handler state.
                // The handler's future (over 3 KB) is made inside the box on
                // the first poll, not made here and copied in.
                Either::Right(Box::pin(async move {
                    let resp = app.handle(hyper::Request::from_parts(parts, body), peer).await?;
                    Ok::<_, Infallible>(resp.map(|body| Guarded::new(body, guard)))
                }))
            });
            let conn = builder.serve_connection_with_upgrades(io, service);
            if let Err(e) = drive(conn, &activity, fd, limits, stop_rx).await {
                tracing::debug!(%peer, "connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let all = u32::try_from(limits.max_conns).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, slots.acquire_many(all)).await.is_err() {
        tracing::warn!("some requests were still running after {:?}; closing them", limits.drain_timeout);
    }
}

/// What a connection that hyper hands over after a `101` (a proxied
/// WebSocket) takes with it: its `--max-conns` slot, held until the
/// WebSocket closes too, and word of authd stopping, which closes it.
/// Put in the extensions of requests that ask for an upgrade.
#[derive(Clone)]
pub struct Handover {
    _slot: Arc<OwnedSemaphorePermit>,
    stopping: watch::Receiver<bool>,
}

impl Handover {
    /// Resolves when authd starts to stop.
    pub async fn stopping(mut self) {
        let _ = self.stopping.wait_for(|stopping| *stopping).await;
    }
}

/// Time an idle connection gets to say goodbye before it is dropped.
const IDLE_GOODBYE: Duration = Duration::from_millis(500);

/// Runs one connection to its end. When it has been silent or idle too long
/// (see [`conn`]) or authd is stopping, it is asked to finish gracefully
/// (HTTP/2 GOAWAY, HTTP/1 close after the running response), and dropped if
/// that takes longer than the drain timeout.
async fn drive<C: GracefulConnection>(
    conn: C,
    activity: &Activity,
    fd: std::os::fd::RawFd,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> Result<(), C::Error> {
    tokio::pin!(conn);
    let mut next = tokio::time::Instant::now();
    let mut watch = Watch::new(next);
    let timeouts = Timeouts {
        first_request: limits.header_timeout,
        idle: limits.idle_timeout,
        send: limits.send_timeout,
    };
    loop {
        // How long the connection may take to finish once asked to: running
        // requests when stopping; only the goodbye (HTTP/2 GOAWAY) when idle,
        // as an HTTP/2 client may keep its end open after it.
        let (reason, grace) = tokio::select! {
            // In this order, without drawing a random one first: the
            // connection is what wakes this task for nearly every poll.
            biased;
            done = conn.as_mut() => return done,
            () = tokio::time::sleep_until(next) => {
                // `fd` is the connection's socket, open while `conn` is.
                let socket = conn::socket_info(fd);
                match activity.due(tokio::time::Instant::now(), timeouts, socket, &mut watch) {
                    Due::At(at) => {
                        next = at;
                        continue;
                    }
                    Due::Now => ("idle", IDLE_GOODBYE),
                    Due::Stalled => ("its responses stalled", IDLE_GOODBYE),
                }
            }
            _ = stop.wait_for(|stopping| *stopping) => ("stopping", limits.drain_timeout),
        };
        tracing::trace!("closing a connection: {reason}");
        conn.as_mut().graceful_shutdown();
        // A connection with no request running gets only the goodbye, also
        // when stopping: an HTTP/2 client's idle keep-alive connection must
        // not hold up a stop for the whole drain timeout.
        let end = tokio::time::Instant::now() + grace;
        loop {
            let step = (tokio::time::Instant::now() + IDLE_GOODBYE).min(end);
            match tokio::time::timeout_at(step, conn.as_mut()).await {
                Ok(done) => return done,
                Err(_) if step >= end || activity.no_request_running() => return Ok(()),
                Err(_) => {}
            }
        }
    }
}
/// Compile-time check: the handler's future is `Send`, as hyper's executor
/// needs. Without it, a non-`Send` value held across an `.await` shows up as
/// an obscure "no method `into_owned`" error in `serve`.
#[allow(dead_code)]
fn _assert_send(app: Arc<App>, req: hyper::Request<request::RequestBody>, peer: std::net::SocketAddr) {
    fn is_send<T: Send>(_: T) {}
    is_send(app.handle(req, peer));
}

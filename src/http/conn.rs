//! Per-connection bookkeeping for the idle rules hyper does not enforce.
//!
//! hyper's HTTP/1 header read timeout does not cover a client that finishes
//! the TLS handshake and then sends nothing (the HTTP version is sniffed
//! first), and HTTP/2 has no idle timeout at all. So each connection carries
//! an [`Activity`]: the stream wrapper [`Tracked`] stamps it whenever bytes
//! move, and every request holds an [`InFlight`] guard until its response
//! body is finished or dropped. [`Activity::due`] turns that into the one
//! deadline the connection task sleeps on:
//!
//! - before the first request: `first_request` after the handshake, however
//!   many bytes trickle in (a slow or silent client);
//! - afterwards, with nothing in flight: `idle` after the last byte moved;
//! - with a request in flight: none (a long download or a quiet WebSocket
//!   is not idle).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::response::{Body, BoxError};

/// What a connection has been doing.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    /// Milliseconds after `born` when bytes last moved or a request ended.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    any_request: AtomicBool,
}

/// When the connection task should look again, or that it should close now.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Close the connection.
    Now,
    /// Nothing to do before this instant.
    At(Instant),
}

impl Activity {
    /// A connection whose TLS handshake just finished.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            any_request: AtomicBool::new(false),
        })
    }

    fn stamp(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// A request has started; the guard ends it when dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.any_request.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Applies the rules in the module comment at `now`.
    pub fn due(&self, now: Instant, first_request: Duration, idle: Duration) -> Due {
        let at = if !self.any_request.load(Ordering::Relaxed) {
            let window_ends = self.born + first_request;
            if now >= window_ends {
                return Due::Now;
            }
            // Look again within `idle` too: a request may come and go before
            // the window ends, and a short idle timeout then runs from it.
            return Due::At(window_ends.min(now + idle));
        } else if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Due::At(now + idle);
        } else {
            self.born + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
        };
        if now >= at {
            Due::Now
        } else {
            Due::At(at)
        }
    }
}

/// Marks one request as running.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stamp();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until it is done.
pub struct Guarded {
    inner: Body,
    guard: Option<InFlight>,
}

impl Guarded {
    /// Wraps `inner`; `guard` is released at its end.
    pub fn new(inner: Body, guard: InFlight) -> Guarded {
        Guarded { inner, guard: Some(guard) }
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A stream that stamps its connection's [`Activity`] when bytes move.
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Tracked<S> {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.stamp();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.stamp();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.stamp();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(75);

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_is_due_when_the_first_request_window_ends() {
        let a = Activity::new();
        let born = Instant::now();
        assert_eq!(a.due(born, FIRST, IDLE), Due::At(born + FIRST));
        // Bytes trickling in do not extend the window.
        tokio::time::advance(Duration::from_secs(9)).await;
        a.stamp();
        assert_eq!(a.due(Instant::now(), FIRST, IDLE), Due::At(born + FIRST));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(a.due(Instant::now(), FIRST, IDLE), Due::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_idle_and_its_end_starts_the_idle_clock() {
        let a = Activity::new();
        let guard = a.begin();
        tokio::time::advance(Duration::from_secs(500)).await;
        let now = Instant::now();
        assert_eq!(a.due(now, FIRST, IDLE), Due::At(now + IDLE));
        drop(guard);
        assert_eq!(a.due(now, FIRST, IDLE), Due::At(now + IDLE));
        tokio::time::advance(Duration::from_secs(74)).await;
        a.stamp(); // bytes moved: the idle clock starts again
        let later = Instant::now();
        assert_eq!(a.due(later, FIRST, IDLE), Due::At(later + IDLE));
        tokio::time::advance(IDLE).await;
        assert_eq!(a.due(Instant::now(), FIRST, IDLE), Due::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_idle_timeout_runs_from_a_request_that_came_and_went_early() {
        let idle = Duration::from_secs(3);
        let a = Activity::new();
        let born = Instant::now();
        // Looked at before any request: the next look is within `idle`.
        assert_eq!(a.due(born, FIRST, idle), Due::At(born + idle));
        tokio::time::advance(Duration::from_millis(100)).await;
        drop(a.begin());
        let ended = Instant::now();
        tokio::time::advance(idle - Duration::from_millis(100)).await;
        assert_eq!(a.due(Instant::now(), FIRST, idle), Due::At(ended + idle));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(a.due(Instant::now(), FIRST, idle), Due::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn two_requests_in_flight_count_until_both_end() {
        let a = Activity::new();
        let one = a.begin();
        let two = a.begin();
        drop(one);
        tokio::time::advance(IDLE * 2).await;
        let now = Instant::now();
        assert_eq!(a.due(now, FIRST, IDLE), Due::At(now + IDLE));
        drop(two);
        tokio::time::advance(IDLE).await;
        assert_eq!(a.due(Instant::now(), FIRST, IDLE), Due::Now);
    }
}

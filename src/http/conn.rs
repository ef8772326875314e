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
//!   is not idle), unless a response is stalled: it has something to send
//!   and nothing moved for `send` (an HTTP/2 client that keeps its
//!   flow-control window shut, a client that stops reading). A response
//!   waiting for its own data (a slow app, a quiet event stream) is not
//!   stalled.
//!
//! A response is "waiting for the connection" from when the handler
//! returns it until hyper first asks its body for data, and again after
//! each piece of data it gives, until hyper asks for more; hyper asks only
//! when it can send. The connection task cannot see inside hyper, so it
//! counts events instead (a request begun, a response handed over, a body
//! asked for data), and asks the kernel how many bytes the client has
//! acknowledged: a slow reader drains the socket's send buffer long before
//! hyper writes again (the buffer wakes the writer only once a good part
//! of it is free), and that counts as moving once it comes to
//! [`MIN_ACKED`]. A connection is stalled when responses wait (or bytes
//! already written wait in the kernel for the client's TCP window: a
//! proxied answer whose last poll found no data stays "waiting for its own
//! data" while hyper cannot write) and neither has moved for `send`. The
//! few bytes of HTTP/2 control frames (a PING's answer) stay under that,
//! so pinging does not hold a stalled connection.

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
    /// Responses waiting for the connection to take their data.
    waiting: AtomicUsize,
    /// Requests begun, responses handed over and response bodies asked
    /// for data, so far.
    events: AtomicU64,
}

/// Bytes the client must acknowledge between two looks for a connection
/// with waiting answers to count as moving (a PING's answer is 17).
pub const MIN_ACKED: u64 = 4096;

/// What the connection task saw at its last look, to tell a stall.
#[derive(Debug)]
pub struct Watch {
    events: u64,
    acked: u64,
    since: Instant,
}

impl Watch {
    /// Nothing seen yet, at `now`.
    pub fn new(now: Instant) -> Watch {
        Watch { events: 0, acked: 0, since: now }
    }
}

/// What the kernel says of a connection's socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Socket {
    /// Bytes the client has acknowledged so far.
    pub acked: u64,
    /// Bytes written to the socket and not yet sent (the client's TCP
    /// window is shut or too small for them).
    pub unsent: u32,
}

/// [`Socket`] for the connection on `fd` (`TCP_INFO`); `None` where the
/// kernel cannot tell.
#[cfg(target_os = "linux")]
pub fn socket_info(fd: std::os::fd::RawFd) -> Option<Socket> {
    // SAFETY: `tcp_info` is plain data; getsockopt writes at most `len`
    // bytes into it and reports how many it wrote.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast::<libc::c_void>(),
            &mut len,
        )
    };
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_notsent_bytes) + 4;
    (rc == 0 && usize::try_from(len).is_ok_and(|l| l >= needed))
        .then_some(Socket { acked: info.tcpi_bytes_acked, unsent: info.tcpi_notsent_bytes })
}

/// Elsewhere the kernel is not asked: only events count.
#[cfg(not(target_os = "linux"))]
pub fn socket_info(_fd: std::os::fd::RawFd) -> Option<Socket> {
    None
}

/// The connection's timeouts, as [`Activity::due`] applies them.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// For the first request to arrive after the TLS handshake.
    pub first_request: Duration,
    /// With nothing running and no bytes moving.
    pub idle: Duration,
    /// With responses waiting and none of them taken.
    pub send: Duration,
}

/// When the connection task should look again, or that it should close now.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Close the connection: idle, or silent since the handshake.
    Now,
    /// Close the connection: its responses have not moved for the send timeout.
    Stalled,
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
            waiting: AtomicUsize::new(0),
            events: AtomicU64::new(0),
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
        self.event();
        InFlight { activity: Arc::clone(self), waiting: false }
    }

    fn event(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether no request is running (none begun, or every response sent).
    pub fn no_request_running(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// Applies the rules in the module comment at `now`; `socket` is what
    /// [`socket_info`] says now, `watch` the connection task's own memory
    /// of its last look.
    pub fn due(&self, now: Instant, t: Timeouts, socket: Option<Socket>, watch: &mut Watch) -> Due {
        let Timeouts { first_request, idle, send } = t;
        let at = if !self.any_request.load(Ordering::Relaxed) {
            let window_ends = self.born + first_request;
            if now >= window_ends {
                return Due::Now;
            }
            // Look again within `idle` and `send` too: a request may come
            // (and go) before the window ends, and a short idle or send
            // timeout then runs from it.
            return Due::At(window_ends.min(now + idle.min(send)));
        } else if self.in_flight.load(Ordering::Relaxed) > 0 {
            let events = self.events.load(Ordering::Relaxed);
            // Answers wait for the connection, or bytes already written wait
            // in the kernel for the client's TCP window to open.
            let waiting = self.waiting.load(Ordering::Relaxed) > 0 || socket.is_some_and(|s| s.unsent > 0);
            let acked = socket.map(|s| s.acked);
            let acked_more = acked.is_some_and(|a| a >= watch.acked.saturating_add(MIN_ACKED));
            if events != watch.events || acked_more || !waiting {
                *watch = Watch { events, acked: acked.unwrap_or(watch.acked), since: now };
            }
            if !waiting {
                // Look again within `send`: a response may start waiting.
                return Due::At(now + idle.min(send));
            }
            let stalled_at = watch.since + send;
            return if now >= stalled_at { Due::Stalled } else { Due::At(stalled_at) };
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
pub struct InFlight {
    activity: Arc<Activity>,
    /// Whether its response waits for the connection (counted in `waiting`).
    waiting: bool,
}

impl InFlight {
    fn set_waiting(&mut self, waiting: bool) {
        if waiting != self.waiting {
            self.waiting = waiting;
            if waiting {
                self.activity.waiting.fetch_add(1, Ordering::Relaxed);
            } else {
                self.activity.waiting.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set_waiting(false);
        self.activity.stamp();
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until it is done.
pub struct Guarded {
    inner: Body,
    guard: Option<InFlight>,
}

impl Guarded {
    /// Wraps `inner`; `guard` is released at its end. The response now
    /// waits for the connection to send it.
    pub fn new(inner: Body, mut guard: InFlight) -> Guarded {
        guard.activity.event();
        guard.set_waiting(true);
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
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.guard = None,
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {
                if let Some(guard) = self.guard.as_mut() {
                    guard.activity.event();
                    // Data given waits for the connection; none to give waits for its source.
                    guard.set_waiting(polled.is_ready());
                }
            }
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
    const SEND: Duration = Duration::from_secs(30);
    const T: Timeouts = Timeouts { first_request: FIRST, idle: IDLE, send: SEND };

    /// A connection and its task's watch.
    struct Conn {
        a: Arc<Activity>,
        watch: Watch,
    }

    impl Conn {
        fn new() -> Conn {
            Conn { a: Activity::new(), watch: Watch::new(Instant::now()) }
        }

        fn due(&mut self, t: Timeouts) -> Due {
            self.a.due(Instant::now(), t, None, &mut self.watch)
        }

        fn due_socket(&mut self, t: Timeouts, socket: Socket) -> Due {
            self.a.due(Instant::now(), t, Some(socket), &mut self.watch)
        }
    }

    fn body() -> Body {
        super::super::response::full(Bytes::from_static(b"answer"))
    }

    fn poll(g: &mut Guarded) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(g).poll_frame(&mut cx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_is_due_when_the_first_request_window_ends() {
        let mut c = Conn::new();
        let born = Instant::now();
        assert_eq!(c.due(T), Due::At(born + FIRST));
        // Bytes trickling in do not extend the window.
        tokio::time::advance(Duration::from_secs(9)).await;
        c.a.stamp();
        assert_eq!(c.due(T), Due::At(born + FIRST));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.due(T), Due::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_idle_and_its_end_starts_the_idle_clock() {
        let mut c = Conn::new();
        let guard = c.a.begin();
        tokio::time::advance(Duration::from_secs(500)).await;
        let now = Instant::now();
        assert_eq!(c.due(T), Due::At(now + SEND), "looked at again within the send timeout");
        drop(guard);
        assert_eq!(c.due(T), Due::At(now + IDLE));
        tokio::time::advance(Duration::from_secs(74)).await;
        c.a.stamp(); // bytes moved: the idle clock starts again
        let later = Instant::now();
        assert_eq!(c.due(T), Due::At(later + IDLE));
        tokio::time::advance(IDLE).await;
        assert_eq!(c.due(T), Due::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_idle_timeout_runs_from_a_request_that_came_and_went_early() {
        let t = Timeouts { idle: Duration::from_secs(3), ..T };
        let mut c = Conn::new();
        let born = Instant::now();
        // Looked at before any request: the next look is within `idle`.
        assert_eq!(c.due(t), Due::At(born + t.idle));
        tokio::time::advance(Duration::from_millis(100)).await;
        drop(c.a.begin());
        let ended = Instant::now();
        tokio::time::advance(t.idle - Duration::from_millis(100)).await;
        assert_eq!(c.due(t), Due::At(ended + t.idle));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(c.due(t), Due::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn two_requests_in_flight_count_until_both_end() {
        let mut c = Conn::new();
        let one = c.a.begin();
        let two = c.a.begin();
        drop(one);
        tokio::time::advance(IDLE * 2).await;
        assert!(matches!(c.due(T), Due::At(_)));
        drop(two);
        tokio::time::advance(IDLE).await;
        assert_eq!(c.due(T), Due::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_the_connection_never_takes_is_stalled_after_the_send_timeout() {
        let mut c = Conn::new();
        let mut g = Guarded::new(body(), c.a.begin());
        let start = Instant::now();
        assert_eq!(c.due(T), Due::At(start + SEND));
        // Reads and pings move bytes, but the response does not move.
        tokio::time::advance(SEND - Duration::from_secs(1)).await;
        c.a.stamp();
        assert_eq!(c.due(T), Due::At(start + SEND));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.due(T), Due::Stalled);
        // Taken at last: it goes out and ends, nothing is stalled.
        assert!(matches!(poll(&mut g), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut g), Poll::Ready(None)));
        assert_eq!(c.due(T), Due::At(Instant::now() + IDLE));
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_waiting_for_its_own_data_is_not_stalled() {
        // A slow app or a quiet event stream: the body has nothing to give.
        let mut c = Conn::new();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut g = Guarded::new(super::super::response::stream(Channel(rx)), c.a.begin());
        assert!(poll(&mut g).is_pending());
        for _ in 0..10 {
            tokio::time::advance(SEND).await;
            assert!(matches!(c.due(T), Due::At(_)), "a response with nothing to send was called stalled");
        }
        // It gives data that the connection then does not take: stalled in time.
        tx.send(Bytes::from_static(b"event")).await.unwrap();
        assert!(matches!(poll(&mut g), Poll::Ready(Some(Ok(_)))));
        let mut looks = 0;
        while c.due(T) != Due::Stalled {
            looks += 1;
            assert!(looks <= 3, "a response the connection does not take was never called stalled");
            tokio::time::advance(SEND).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_moving_response_keeps_a_connection_with_a_waiting_one_open() {
        // HTTP/2: one stream's data moves, another's waits its turn.
        let mut c = Conn::new();
        let _waiting = Guarded::new(body(), c.a.begin());
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut moving = Guarded::new(super::super::response::stream(Channel(rx)), c.a.begin());
        for _ in 0..5 {
            tokio::time::advance(SEND - Duration::from_secs(1)).await;
            tx.send(Bytes::from_static(b"chunk")).await.unwrap();
            assert!(matches!(poll(&mut moving), Poll::Ready(Some(Ok(_)))));
            assert!(matches!(c.due(T), Due::At(_)));
        }
        drop(moving);
        tokio::time::advance(SEND).await;
        assert_eq!(c.due(T), Due::Stalled, "the waiting one alone is stalled");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_draining_the_socket_is_not_stalled_but_pings_are_not_enough() {
        let mut c = Conn::new();
        let _g = Guarded::new(body(), c.a.begin());
        // The kernel's send buffer drains slowly: no event, but acknowledgements.
        let mut acked = 10_000;
        assert!(matches!(c.due_socket(T, Socket { acked, unsent: 0 }), Due::At(_)));
        for _ in 0..10 {
            tokio::time::advance(SEND - Duration::from_secs(1)).await;
            acked += MIN_ACKED;
            assert!(
                matches!(c.due_socket(T, Socket { acked, unsent: 0 }), Due::At(_)),
                "a draining connection was called stalled"
            );
        }
        // Then only PING answers move: a few bytes a look.
        let mut looks = 0;
        loop {
            tokio::time::advance(SEND / 2).await;
            acked += 17 * 10;
            if c.due_socket(T, Socket { acked, unsent: 0 }) == Due::Stalled {
                break;
            }
            looks += 1;
            assert!(looks <= 4, "pings kept a stalled connection open");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_handed_over_just_before_a_look_gets_the_whole_send_timeout() {
        let mut c = Conn::new();
        let guard = c.a.begin();
        tokio::time::advance(SEND - Duration::from_millis(100)).await;
        let _ = c.due(T); // a look while the handler runs: nothing waits
        tokio::time::advance(Duration::from_millis(50)).await;
        let _g = Guarded::new(body(), guard);
        let handed = Instant::now();
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(c.due(T), Due::At(Instant::now() + SEND), "counted from before it was handed over");
        tokio::time::advance(SEND).await;
        assert_eq!(c.due(T), Due::Stalled);
        assert!(Instant::now() >= handed + SEND);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_stuck_in_the_kernel_stall_a_connection_whose_answers_wait_for_data() {
        // A proxied answer between two pieces of data (its body has nothing
        // to give) while the client has stopped reading: the kernel holds
        // unsent bytes and nothing is acknowledged.
        let mut c = Conn::new();
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let mut g = Guarded::new(super::super::response::stream(Channel(rx)), c.a.begin());
        assert!(poll(&mut g).is_pending());
        let stuck = Socket { acked: 50_000, unsent: 200_000 };
        assert!(matches!(c.due_socket(T, stuck), Due::At(_)));
        tokio::time::advance(SEND).await;
        assert_eq!(c.due_socket(T, stuck), Due::Stalled);
        // With the kernel's queue empty it is a quiet stream, not a stall.
        let mut c = Conn::new();
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let mut g = Guarded::new(super::super::response::stream(Channel(rx)), c.a.begin());
        assert!(poll(&mut g).is_pending());
        for _ in 0..5 {
            tokio::time::advance(SEND).await;
            assert!(matches!(c.due_socket(T, Socket { acked: 50_000, unsent: 0 }), Due::At(_)));
        }
    }

    /// A body whose data comes when the test sends it.
    struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

    impl HttpBody for Channel {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx).map(|d| d.map(|d| Ok(Frame::data(d))))
        }
    }
}

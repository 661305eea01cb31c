//! Accepting connections within bounds. At most `max_connections` are
//! open (further clients wait in the listen backlog: back-pressure, not
//! refusal); accept errors back off instead of spinning, and are logged at
//! most once a second; and every connection is watched:
//!
//! - while no request is in progress, the next one must start within the
//!   header timeout (hyper enforces it within HTTP/1.1 headers too);
//! - a response write may wait at most the send timeout for the client;
//! - request bodies stall at most the body timeout (`request_body`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::Limits;
use crate::router::{self, App};

/// File descriptors kept for the server's own files (log segments, index
/// databases, the identity) when the connection cap is derived from the
/// descriptor limit.
const RESERVED_FDS: u64 = 64;
/// SQLite keeps a database, its WAL and its shared-memory file open per
/// open bucket.
const FDS_PER_OPEN_BUCKET: u64 = 3;
/// Most concurrent HTTP/2 streams per connection.
const H2_MAX_STREAMS: u32 = 128;

/// Raises the soft descriptor limit to the hard one (as Go's runtime
/// does) and returns it; `None` where it cannot be read.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (lim.current, lim.maximum)
        && cur < max
    {
        lim.current = Some(max);
        if setrlimit(Resource::Nofile, lim).is_err() {
            lim.current = Some(cur);
        }
    }
    lim.current
}

/// The connection cap: the configured one, lowered so that connections
/// and the server's own files fit in `fd_limit` descriptors.
pub fn connection_cap(configured: usize, fd_limit: Option<u64>, open_buckets: u64) -> usize {
    let Some(limit) = fd_limit else {
        return configured;
    };
    // Never reserve more than half the descriptors for files, so that a
    // small limit still leaves room to serve.
    let reserved = (RESERVED_FDS + FDS_PER_OPEN_BUCKET * open_buckets).min(limit / 2);
    let fit = usize::try_from(limit.saturating_sub(reserved)).unwrap_or(usize::MAX);
    configured.min(fit).max(1)
}

/// Back-off after failed accepts (out of descriptors or memory, network
/// errors): a growing pause, and a log line at most once a second that
/// says how many failures it stands for.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    consecutive: u32,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(1);

    /// Records a failure at `now`; returns how long to pause and, when a
    /// line is due, how many failures it reports.
    pub fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        self.consecutive = self.consecutive.saturating_add(1);
        let pause = Self::FIRST
            .saturating_mul(1 << self.consecutive.min(16).saturating_sub(1))
            .min(Self::MAX);
        self.unlogged += 1;
        let due = self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Self::LOG_EVERY);
        let report = due.then(|| {
            self.last_log = Some(now);
            std::mem::take(&mut self.unlogged)
        });
        (pause, report)
    }

    pub fn succeeded(&mut self) {
        self.consecutive = 0;
    }
}

/// What a connection's watchdog reads: requests in progress, a counter
/// of progress, and whether a write is waiting for the client. The hot
/// path only bumps atomics; the watchdog keeps the clock.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Bumped when a request starts or ends, or a write makes progress.
    progress: AtomicU64,
    /// The last write returned "pending": the client is not reading.
    write_blocked: AtomicBool,
}

impl Activity {
    fn bump(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a request in progress until the guard drops.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.bump();
        RequestGuard(self.clone())
    }

    /// A write (or flush) returned: `Some(n)` bytes written, `None` if it
    /// must wait for the client. Only bytes count as progress: hyper
    /// flushes whenever its connection is polled, the watchdog's own ticks
    /// included.
    fn wrote(&self, written: Option<usize>) {
        self.write_blocked
            .store(written.is_none(), Ordering::Relaxed);
        if written.is_some_and(|n| n > 0) {
            self.bump();
        }
    }
}

pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.bump();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The watchdog's view of one connection between its looks at it.
#[derive(Debug)]
struct Watch {
    seen: u64,
    /// Since when nothing has moved.
    still_since: Instant,
}

impl Watch {
    fn new(now: Instant) -> Self {
        Watch {
            seen: 0,
            still_since: now,
        }
    }

    /// Why the connection should be closed at `now`, if it should.
    fn check(&mut self, a: &Activity, now: Instant, limits: &Limits) -> Option<&'static str> {
        let progress = a.progress.load(Ordering::Relaxed);
        if progress != self.seen {
            self.seen = progress;
            self.still_since = now;
            return None;
        }
        let still = now.saturating_duration_since(self.still_since);
        if a.write_blocked.load(Ordering::Relaxed) && still > limits.send_timeout {
            return Some("the client stopped reading");
        }
        if a.in_flight.load(Ordering::Acquire) == 0 && still > limits.header_timeout {
            return Some("no request within the header timeout");
        }
        None
    }
}

fn written(r: &Poll<io::Result<usize>>) -> Option<usize> {
    match r {
        Poll::Ready(Ok(n)) => Some(*n),
        Poll::Ready(Err(_)) => Some(0),
        Poll::Pending => None,
    }
}

/// A connection's socket, reporting write progress to its [`Activity`].
struct WatchedIo {
    inner: TokioIo<TcpStream>,
    activity: Arc<Activity>,
}

impl Read for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl Write for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.wrote(written(&r));
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.wrote(written(&r));
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.activity.wrote(r.is_ready().then_some(0));
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves when the connection has broken one of the limits.
async fn watchdog(activity: Arc<Activity>, limits: Limits) -> &'static str {
    let shortest = limits.header_timeout.min(limits.send_timeout);
    let tick = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch = Watch::new(Instant::now());
    loop {
        interval.tick().await;
        if let Some(why) = watch.check(&activity, Instant::now(), &limits) {
            return why;
        }
    }
}

/// hyper runs without a timer: its HTTP/1.1 header timeout would arm and
/// drop a timer per request, and the watchdog already closes a
/// connection whose next request does not start in time.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http2().max_concurrent_streams(H2_MAX_STREAMS);
    b
}

/// Serves connections from `listener` with `app` until `shutdown`
/// resolves, then stops accepting and waits up to `drain` for in-flight
/// requests.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    cap: usize,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let limits = app.limits.clone();
    let builder = builder();
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(cap));
    let mut backoff = AcceptBackoff::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first: at the cap, clients queue in the backlog.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => {
                    backoff.succeeded();
                    s
                }
                Err(e) => {
                    let (pause, report) = backoff.failed(Instant::now());
                    if let Some(n) = report {
                        tracing::warn!(error = %e, failures = n, pause_ms = pause.as_millis() as u64, "accepting connections failed");
                    }
                    drop(permit);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        // Small responses must not wait 40 ms for Nagle and delayed ACKs.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = WatchedIo {
            inner: TokioIo::new(stream),
            activity: activity.clone(),
        };
        let service = {
            let (app, activity) = (app.clone(), activity.clone());
            hyper::service::service_fn(move |req| {
                let guard = activity.request();
                let app = app.clone();
                async move {
                    let resp = router::handle(app, peer, req).await;
                    drop(guard);
                    resp
                }
            })
        };
        let conn = builder.serve_connection(io, service).into_owned();
        let conn = graceful.watch(conn);
        let limits = limits.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                }
                why = watchdog(activity, limits) => {
                    tracing::debug!(%peer, why, "closing connection");
                }
            }
            drop(permit);
        });
    }
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {drain:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_descriptor_limit() {
        // (configured, fd limit, open buckets, cap)
        let cases = [
            (1024, None, 256, 1024),
            (1024, Some(1 << 20), 256, 1024),
            // 4096 - (64 + 3 * 256)
            (10_000, Some(4096), 256, 3264),
            // Tiny limits keep half for connections.
            (1024, Some(128), 256, 64),
            (1024, Some(1), 256, 1),
        ];
        for (configured, limit, buckets, want) in cases {
            assert_eq!(
                connection_cap(configured, limit, buckets),
                want,
                "{configured} {limit:?}"
            );
        }
    }

    #[test]
    fn accept_failures_back_off_and_log_once_a_second() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let (p1, r1) = b.failed(t0);
        assert_eq!((p1, r1), (Duration::from_millis(5), Some(1)));
        let mut pauses = vec![p1];
        let mut reported = 0;
        for i in 1..1000u64 {
            let (p, r) = b.failed(t0 + Duration::from_millis(i));
            pauses.push(p);
            reported += r.unwrap_or(0);
        }
        // Pauses grow to the ceiling and stay there; nothing more was
        // logged within the second, but nothing is forgotten either.
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*pauses.last().unwrap(), AcceptBackoff::MAX);
        assert_eq!(reported, 0);
        let (_, r) = b.failed(t0 + Duration::from_secs(1));
        assert_eq!(r, Some(1000));
        b.succeeded();
        assert_eq!(
            b.failed(t0 + Duration::from_secs(3)).0,
            AcceptBackoff::FIRST
        );
    }

    fn limits(header_ms: u64, send_ms: u64) -> Limits {
        Limits {
            header_timeout: Duration::from_millis(header_ms),
            send_timeout: Duration::from_millis(send_ms),
            ..Limits::default()
        }
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn an_idle_connection_expires_and_a_busy_one_does_not() {
        let a = Arc::new(Activity::default());
        let l = limits(20, 1000);
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        assert_eq!(w.check(&a, ms(t0, 20), &l), None);
        assert!(w.check(&a, ms(t0, 21), &l).is_some());
        // A request in progress keeps it open however long it takes; its
        // end restarts the clock.
        let mut w = Watch::new(t0);
        let guard = a.request();
        assert_eq!(w.check(&a, ms(t0, 10), &l), None);
        assert_eq!(w.check(&a, ms(t0, 500), &l), None);
        drop(guard);
        assert_eq!(w.check(&a, ms(t0, 510), &l), None);
        assert_eq!(w.check(&a, ms(t0, 530), &l), None);
        assert!(w.check(&a, ms(t0, 531), &l).is_some());
    }

    #[test]
    fn flushes_alone_are_not_progress() {
        let a = Arc::new(Activity::default());
        let l = limits(20, 1000);
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        for i in 0..5 {
            a.wrote(Some(0));
            assert_eq!(w.check(&a, ms(t0, 4 * i), &l), None);
        }
        a.wrote(Some(0));
        assert!(w.check(&a, ms(t0, 21), &l).is_some());
    }

    #[test]
    fn a_response_that_keeps_moving_is_not_idle() {
        let a = Arc::new(Activity::default());
        let l = limits(20, 1000);
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        for i in 1..10 {
            a.wrote(Some(100));
            assert_eq!(w.check(&a, ms(t0, 15 * i), &l), None);
        }
    }

    #[test]
    fn a_blocked_write_expires_after_the_send_timeout() {
        let a = Arc::new(Activity::default());
        let l = limits(60_000, 20);
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        let _busy = a.request();
        a.wrote(None);
        assert_eq!(w.check(&a, ms(t0, 5), &l), None);
        assert_eq!(w.check(&a, ms(t0, 25), &l), None);
        assert_eq!(
            w.check(&a, ms(t0, 26), &l),
            Some("the client stopped reading")
        );
        // Once the client reads again, it is fine.
        a.wrote(Some(1));
        assert_eq!(w.check(&a, ms(t0, 30), &l), None);
        assert_eq!(w.check(&a, ms(t0, 10_000), &l), None);
    }
}

//! A request body as the HTTP layer hands it on: it fails with
//! [`BodyStalled`] when the client stops sending for longer than the body
//! timeout, and it records whether it was read to its end, so a response
//! sent before that can close the connection instead of leaving the
//! unread bytes to be parsed as the next request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use billet_s3::BodyStalled;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// What the HTTP layer learns about a body after the service dropped it.
#[derive(Debug, Default)]
pub struct BodyState {
    /// Every byte of it was read.
    finished: AtomicBool,
}

impl BodyState {
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

pub struct GuardedBody {
    inner: Incoming,
    state: Arc<BodyState>,
    timeout: Duration,
    /// The stall deadline, made the first time the client is waited for
    /// (a small body that came with its headers never needs one).
    stall: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl GuardedBody {
    pub fn new(inner: Incoming, timeout: Duration) -> (Self, Arc<BodyState>) {
        let state = Arc::new(BodyState::default());
        let body = GuardedBody {
            inner,
            state: state.clone(),
            timeout,
            stall: None,
            armed: false,
        };
        (body, state)
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                if this.inner.is_end_stream() {
                    this.state.finished.store(true, Ordering::Release);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.armed = false;
                this.state.finished.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            // The clock runs only while the client is waited for, not while
            // the server is busy with what it already sent.
            Poll::Pending => {
                let deadline = Instant::now() + this.timeout;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.armed {
                    this.armed = true;
                    stall.as_mut().reset(deadline);
                }
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

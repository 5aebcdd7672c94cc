//! Keep-alive connections to plain-HTTP upstreams, kept by the thread that uses them.
//!
//! hyper-util's pooled client checks a connection out of a shared, locked pool, spawns a task per
//! request to notice when the connection can take the next one, and wraps each connection in
//! layers of bookkeeping: together about a tenth of the gateway's own CPU per proxied request. A
//! core is one thread, so its idle connections can sit in a plain thread-local list: a request
//! takes the most recently used one (or opens one), and the response body puts it back when it
//! ends. A connection whose response was not read to the end is dropped, never reused. TLS
//! upstreams still go through hyper-util's client, with rustls.

use crate::http_door::Body;
use crate::runtime::PlainHttp;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// An idle connection older than this is closed rather than reused (as hyper-util's pool does),
/// so that a server's quiet restart or a load balancer's idle cut is not met on a stale socket.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Most idle connections a thread keeps per upstream; more are closed when they come back.
const MAX_IDLE: usize = 256;

/// Per upstream, idle connections oldest first, each with when it became idle.
type Idle = HashMap<Arc<str>, VecDeque<(SendRequest<Body>, Instant)>>;

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(HashMap::new());
}

/// Why a request could not be sent to a plain-HTTP upstream.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No TCP connection could be opened (name resolution, refusal, timeout).
    #[error("cannot connect: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed before a response head arrived.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Sends `req` (origin-form URI, Host set) to `upstream` on an idle connection of this thread,
/// or on a new one opened by `connector`; the response body returns the connection when it ends.
pub async fn send(
    upstream: &PlainHttp,
    connector: &HttpConnector,
    mut req: Request<Body>,
) -> Result<Response<Body>, PoolError> {
    let authority = &upstream.connect_to;
    while let Some(mut sender) = checkout(authority) {
        // An idle connection may still be finishing the response it carried last.
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok(pooled(authority, sender, resp)),
            Err(mut e) => match e.take_message() {
                // Never written: the server closed the connection first. Another one can take it.
                Some(back) => req = back,
                None => return Err(e.into_error().into()),
            },
        }
    }
    let mut connector = connector.clone();
    std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx))
        .await
        .map_err(|e| PoolError::Connect(e.into()))?;
    let io = tower_service::Service::call(&mut connector, upstream.target.clone())
        .await
        .map_err(|e| PoolError::Connect(e.into()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        // Its end (a close, a reset) shows as the sender's `is_closed`.
        let _ = conn.await;
    });
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    Ok(pooled(authority, sender, resp))
}

fn checkout(authority: &str) -> Option<SendRequest<Body>> {
    IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(authority)?;
        let now = Instant::now();
        while let Some((sender, since)) = list.pop_back() {
            if !sender.is_closed() && now.duration_since(since) < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    })
    .ok()
    .flatten()
}

fn checkin(authority: Arc<str>, sender: SendRequest<Body>) {
    if sender.is_closed() {
        return;
    }
    if !sender.is_ready() {
        // Still busy: the upstream answered before it read the whole request body, which is
        // still being sent (a 401 or 413 to a large upload). Pooled now, it would make the next
        // request wait behind that upload; pool it once it is free instead.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut sender = sender;
                if sender.ready().await.is_ok() {
                    put(authority, sender);
                }
            });
        }
        return;
    }
    put(authority, sender);
}

fn put(authority: Arc<str>, sender: SendRequest<Body>) {
    // During a thread's teardown the list may be gone; the connection then just closes.
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(authority).or_default();
        // Requests take the newest, so after a burst the oldest would sit unused for good,
        // each holding a socket: close them here once they are stale or closed.
        let now = Instant::now();
        while list
            .front()
            .is_some_and(|(s, since)| s.is_closed() || now.duration_since(*since) >= IDLE_TIMEOUT)
        {
            list.pop_front();
        }
        if list.len() < MAX_IDLE {
            list.push_back((sender, now));
        }
    });
}

fn pooled(
    authority: &Arc<str>,
    sender: SendRequest<Body>,
    resp: Response<Incoming>,
) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    if hyper::body::Body::is_end_stream(&body) {
        // Nothing to read (a HEAD, a 204, an empty body): the connection is free once hyper
        // notices, which the next checkout waits for.
        checkin(Arc::clone(authority), sender);
        return Response::from_parts(parts, body.boxed());
    }
    let body = ReturningBody {
        inner: body,
        back: Some((Arc::clone(authority), sender)),
    };
    Response::from_parts(parts, body.boxed())
}

/// A response body that gives its connection back to the pool once it has been read to the end.
struct ReturningBody {
    inner: Incoming,
    back: Option<(Arc<str>, SendRequest<Body>)>,
}

impl ReturningBody {
    fn give_back(&mut self) {
        if let Some((authority, sender)) = self.back.take() {
            checkin(authority, sender);
        }
    }
}

impl hyper::body::Body for ReturningBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            // A server stops polling once the body says it has ended, so give back on the last
            // frame too, not only on the `None` after it.
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.give_back(),
            // A failed body leaves the connection in an unknown state: drop it.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
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

//! An HTTP listener on loopback that records what it receives: stands in for Slack and for a
//! webhook receiver in tests.

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One received request.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query.
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

/// The running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Starts on 127.0.0.1 (ephemeral port), answering 200 to everything.
    pub async fn start() -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let g = Arc::clone(&got);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let g = Arc::clone(&g);
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let g = Arc::clone(&g);
                    async move {
                        let path = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let headers = req.headers().clone();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        if let Ok(mut v) = g.lock() {
                            v.push(Received {
                                path,
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            });
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Receiver { addr, got })
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

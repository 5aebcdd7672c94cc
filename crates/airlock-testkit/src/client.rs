//! A minimal HTTP client for tests and the demo: one request, whole response.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON (Null if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// POSTs a GraphQL document to `http://addr{path}` with an optional bearer token.
pub async fn graphql(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    query: &str,
    variables: serde_json::Value,
) -> Result<Reply, String> {
    let body = serde_json::json!({ "query": query, "variables": variables }).to_string();
    send(addr, "POST", path, token, Some(("application/json", body))).await
}

/// Sends one request over HTTP/2 with prior knowledge (h2c), as gRPC-style clients do.
pub async fn send_h2(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: String,
) -> Result<Reply, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut b = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = b
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let version = resp.version();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    if version != http::Version::HTTP_2 {
        return Err(format!("answered over {version:?}, not HTTP/2"));
    }
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Sends one request.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> Result<Reply, String> {
    send_with(addr, method, path, token, body, &[]).await
}

/// Sends one request with extra headers.
pub async fn send_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
    extra: &[(&str, &str)],
) -> Result<Reply, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    if let Some(t) = token {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let payload = match body {
        Some((ctype, text)) => {
            b = b.header(http::header::CONTENT_TYPE, ctype);
            Bytes::from(text)
        }
        None => Bytes::new(),
    };
    let req = b.body(Full::new(payload)).map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// A request body sent in chunks with no declared length: over HTTP/2 it carries neither
/// Content-Length nor Transfer-Encoding, as a streaming client's would.
pub struct Chunked(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// Sends one HTTP/2 (prior knowledge) request whose body is streamed without a length.
pub async fn send_h2_streamed(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    chunks: Vec<&'static str>,
) -> Result<Reply, String> {
    let client: Client<_, Chunked> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = Chunked(
        chunks
            .into_iter()
            .map(|c| Bytes::from_static(c.as_bytes()))
            .collect(),
    );
    let req = b.body(body).map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

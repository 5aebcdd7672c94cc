//! Delivery against real HTTP receivers on loopback.

// helpers outside #[test] functions fail loudly too: this is test code
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use airlock_approval::notify::{
    delivered, verify_signature, ApprovalNotice, DeliveryPolicy, Notifier, SignatureError, Target,
    SIGNATURE_HEADER,
};
use airlock_core::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// A receiver answering the scripted statuses in order, then 200.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn receiver(script: &[u16]) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(
        script.iter().copied().collect::<VecDeque<u16>>(),
    ));
    let (seen2, script2) = (seen.clone(), script.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, script) = (seen2.clone(), script2.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let (seen, script) = (seen.clone(), script.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        seen.lock().unwrap().push(Seen {
                            path: parts.uri.path().to_string(),
                            headers: parts.headers,
                            body,
                        });
                        let status = script.lock().unwrap().pop_front().unwrap_or(200);
                        let answer = if status == 200 { "ok" } else { "no_service" };
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(answer)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Receiver { addr, seen }
}

impl Receiver {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn fast() -> DeliveryPolicy {
    DeliveryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
    }
}

fn notice() -> ApprovalNotice {
    ApprovalNotice {
        approval_id: "apr_00112233aabbccdd".into(),
        requester: "deploy-bot".into(),
        requester_kind: "agent".into(),
        owner: "alice@example.com".into(),
        token_id: "tok_7".into(),
        operation: "DELETE /v1/users/7".into(),
        resource: "api:billing".into(),
        environment: "production".into(),
        reason: "destructive operation in production".into(),
        expires_at: "2026-11-23T15:00:00Z".into(),
        console_url: "https://airlock.example.com/approvals/apr_00112233aabbccdd".into(),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn slack(addr: SocketAddr) -> Target {
    Target::Slack {
        url: Secret::new(format!("http://{addr}/services/T000/B000/XXXXSECRET")),
    }
}

fn webhook(addr: SocketAddr, key: &[u8]) -> Target {
    Target::Webhook {
        url: format!("http://{addr}/hooks/airlock"),
        secret: Secret::new(key.to_vec()),
    }
}

#[tokio::test]
async fn slack_receives_the_block_kit_message() {
    let r = receiver(&[]).await;
    let attempts = Notifier::new(fast())
        .unwrap()
        .deliver(&slack(r.addr), &notice())
        .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Some(200));
    assert!(delivered(&attempts));
    let seen = r.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/services/T000/B000/XXXXSECRET");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert!(seen[0].headers.get(SIGNATURE_HEADER).is_none());
    let v: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert!(v["text"].as_str().unwrap().contains("deploy-bot"));
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    let fields = blocks[1]["fields"].to_string();
    for want in [
        "Requester",
        "deploy-bot",
        "Owner",
        "alice@example.com",
        "Operation",
        "DELETE /v1/users/7",
        "Resource",
        "api:billing",
        "Environment",
        "production",
        "Reason",
        "Expires",
        "2026-11-23T15:00:00Z",
    ] {
        assert!(fields.contains(want), "{want} missing from {fields}");
    }
    assert_eq!(blocks[2]["elements"][0]["url"], notice().console_url);
}

#[tokio::test]
async fn webhook_is_signed_and_a_tampered_body_is_refused() {
    let r = receiver(&[]).await;
    let key = b"whsec_loopback";
    let attempts = Notifier::new(fast())
        .unwrap()
        .deliver(&webhook(r.addr, key), &notice())
        .await;
    assert!(delivered(&attempts));
    let seen = r.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hooks/airlock");
    let sig = seen[0].headers[SIGNATURE_HEADER].to_str().unwrap();
    let t = verify_signature(key, sig, &seen[0].body, now()).unwrap();
    assert!((now() - t).abs() < 60);
    let v: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(v["type"], "airlock.approval.requested");
    assert_eq!(v["approval"]["approval_id"], "apr_00112233aabbccdd");

    let mut tampered = seen[0].body.to_vec();
    let at = tampered.iter().position(|&b| b == b'7').unwrap();
    tampered[at] = b'8';
    assert_eq!(
        verify_signature(key, sig, &tampered, now()),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(b"another key", sig, &seen[0].body, now()),
        Err(SignatureError::Mismatch)
    );
}

#[tokio::test]
async fn two_500s_then_200_take_three_attempts_and_succeed() {
    let r = receiver(&[500, 500]).await;
    let key = b"k";
    let attempts = Notifier::new(fast())
        .unwrap()
        .deliver(&webhook(r.addr, key), &notice())
        .await;
    let statuses: Vec<Option<u16>> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    assert_eq!(attempts.iter().map(|a| a.n).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(attempts[0].error.as_deref().unwrap().contains("500"));
    assert!(attempts[0].error.as_deref().unwrap().contains("no_service"));
    assert!(attempts[2].error.is_none());
    assert!(delivered(&attempts));
    assert!(attempts.windows(2).all(|w| w[0].at <= w[1].at));
    // every retry carries the same body and its own valid signature
    let seen = r.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.body, seen[0].body);
        let sig = s.headers[SIGNATURE_HEADER].to_str().unwrap();
        assert!(verify_signature(key, sig, &s.body, now()).is_ok());
    }
}

#[tokio::test]
async fn a_429_is_retried() {
    let r = receiver(&[429]).await;
    let attempts = Notifier::new(fast())
        .unwrap()
        .deliver(&slack(r.addr), &notice())
        .await;
    let statuses: Vec<Option<u16>> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(429), Some(200)]);
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let r = receiver(&[400, 400, 400]).await;
    let attempts = Notifier::new(fast())
        .unwrap()
        .deliver(&slack(r.addr), &notice())
        .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Some(400));
    assert!(!delivered(&attempts));
    assert_eq!(r.seen().len(), 1);
    assert!(!attempts[0].error.as_deref().unwrap().contains("XXXXSECRET"));
}

#[tokio::test]
async fn an_unreachable_port_fails_every_configured_attempt_without_leaking_the_url() {
    // bind, learn the port, close: nothing listens there any more
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let policy = DeliveryPolicy {
        attempts: 4,
        ..fast()
    };
    let target = slack(addr);
    let attempts = Notifier::new(policy)
        .unwrap()
        .deliver(&target, &notice())
        .await;
    assert_eq!(attempts.len(), 4);
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a.n, i as u32 + 1);
        assert_eq!(a.status, None);
        let e = a.error.as_deref().unwrap();
        assert!(!e.is_empty());
        assert!(!e.contains("XXXXSECRET") && !e.contains("B000"), "{e}");
    }
    assert!(!delivered(&attempts));
    assert!(!format!("{target:?}").contains("XXXXSECRET"));
    assert!(!serde_json::to_string(&attempts)
        .unwrap()
        .contains("XXXXSECRET"));
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_per_attempt() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // accept and hold connections without ever answering
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let policy = DeliveryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        timeout: Duration::from_millis(200),
    };
    let started = std::time::Instant::now();
    let attempts = Notifier::new(policy)
        .unwrap()
        .deliver(&webhook(addr, b"k"), &notice())
        .await;
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|a| a.status.is_none()
        && a.error
            .as_deref()
            .unwrap()
            .contains("no answer within 200ms")));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_bad_url_is_one_failed_attempt() {
    let target = Target::Slack {
        url: Secret::new("not a url/XXXXSECRET".into()),
    };
    let attempts = Notifier::new(fast())
        .unwrap()
        .deliver(&target, &notice())
        .await;
    assert_eq!(attempts.len(), 1);
    let e = attempts[0].error.as_deref().unwrap();
    assert!(e.contains("not an absolute http(s) url"));
    assert!(!e.contains("XXXXSECRET"));
}

/// An HTTPS receiver on loopback with a fresh self-signed certificate for `localhost`, answering
/// 200; returns its port and the certificate (DER) for the client's trust store.
async fn tls_receiver() -> (
    u16,
    rustls::pki_types::CertificateDer<'static>,
    Arc<Mutex<Vec<Seen>>>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        seen.lock().unwrap().push(Seen {
                            path: parts.uri.path().to_string(),
                            headers: parts.headers,
                            body,
                        });
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, cert, seen)
}

#[tokio::test]
async fn https_delivery_to_a_trusted_receiver_and_refusal_of_an_untrusted_one() {
    let (port, cert, seen) = tls_receiver().await;
    let target = Target::Webhook {
        url: format!("https://localhost:{port}/hooks/airlock"),
        secret: Secret::new(b"k".to_vec()),
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let attempts = Notifier::with_roots(fast(), roots)
        .unwrap()
        .deliver(&target, &notice())
        .await;
    assert!(delivered(&attempts), "{attempts:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);

    // the default notifier trusts public roots only: a self-signed receiver is refused
    let attempts = Notifier::new(DeliveryPolicy {
        attempts: 1,
        ..fast()
    })
    .unwrap()
    .deliver(&target, &notice())
    .await;
    assert_eq!(attempts.len(), 1);
    assert!(!delivered(&attempts));
    let e = attempts[0].error.as_deref().unwrap();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

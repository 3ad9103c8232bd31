//! One signed webhook request with hyper's HTTP/1 client: resolve, check
//! every address ([`super::safety`]), connect to a checked one (5 s), for
//! `https://` shake hands with TLS there (SNI and certificate checked for
//! the URL's host against the webpki roots and the certificates of
//! `webhook_ca_file`, see [`tls_config`]), send, and read at most
//! [`MAX_RESPONSE_BYTES`] of the answer, all within 10 s. Redirects are not
//! followed (a 3xx is a failure).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::TlsConnector;

use super::keys;
use super::safety::{self, Target};

/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a response body read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A 2xx answer: the reply to post, if its JSON had a string `body`.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub reply: Option<String>,
}

/// Why an attempt failed.
#[derive(Debug)]
pub struct Failure {
    pub status: Option<u16>,
    pub error: String,
    /// Retrying cannot help (the URL or its address is refused).
    pub permanent: bool,
}

fn fail(error: impl Into<String>) -> Failure {
    Failure {
        status: None,
        error: error.into(),
        permanent: false,
    }
}

/// Resolves `target` and returns the addresses, refusing the lot if any is refused.
async fn resolve(allowed: &[String], target: &Target) -> Result<Vec<SocketAddr>, Failure> {
    let addrs: Vec<SocketAddr> = match target.host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| fail(format!("cannot resolve {}: {e}", target.host)))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(fail(format!("{} has no address", target.host)));
    }
    for addr in &addrs {
        safety::check(allowed, &target.host, addr.ip()).map_err(|error| Failure {
            status: None,
            error,
            permanent: true,
        })?;
    }
    Ok(addrs)
}

/// The TLS client settings of `https://` webhooks, or why there are none
/// (then every `https://` attempt fails with that reason).
pub type Tls = Result<Arc<rustls::ClientConfig>, String>;

/// Adds the certificates of the PEM bundle at `path` to `roots`; `Err` says
/// why the file is unusable (unreadable, no certificate, a bad one).
pub fn add_ca_file(roots: &mut RootCertStore, path: &str) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut added = 0usize;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("holds a certificate that cannot be a trust root: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("holds no PEM certificate".into());
    }
    Ok(())
}

/// The TLS client settings: the webpki roots plus, if `ca_file` is not
/// empty, the certificates of that PEM bundle; the ring provider.
pub fn tls_config(ca_file: &str) -> Tls {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if !ca_file.is_empty() {
        add_ca_file(&mut roots, ca_file).map_err(|e| format!("webhook_ca_file {ca_file}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| format!("cannot set up TLS: {e}"))
}

/// POSTs `body` to `url`, signed with `secret`, as event `event_id`.
pub async fn send(
    allowed: &[String],
    tls: &Tls,
    url: &str,
    secret: &str,
    event_id: u64,
    body: &str,
) -> Result<Answer, Failure> {
    let request = attempt(allowed, tls, url, secret, event_id, body);
    match tokio::time::timeout(TOTAL_TIMEOUT, request).await {
        Ok(result) => result,
        Err(_) => Err(fail(format!(
            "no answer within {} s",
            TOTAL_TIMEOUT.as_secs()
        ))),
    }
}

async fn attempt(
    allowed: &[String],
    tls: &Tls,
    url: &str,
    secret: &str,
    event_id: u64,
    body: &str,
) -> Result<Answer, Failure> {
    let target = safety::parse_url(url).map_err(|e| Failure {
        status: None,
        error: format!("the webhook URL {e}"),
        permanent: true,
    })?;
    let addrs = resolve(allowed, &target).await?;
    let mut stream = None;
    let mut last_error = String::new();
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = format!("cannot connect to {addr}: {e}"),
            Err(_) => last_error = format!("connecting to {addr} timed out"),
        }
    }
    let stream = stream.ok_or_else(|| fail(last_error))?;
    let _ = stream.set_nodelay(true);
    if !target.tls {
        return exchange(stream, &target, secret, event_id, body).await;
    }
    let name = ServerName::try_from(target.host.clone())
        .map_err(|e| fail(format!("{} is not a TLS server name: {e}", target.host)))?;
    let config = tls.clone().map_err(fail)?;
    let stream = TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| fail(format!("TLS handshake with {} failed: {e}", target.host)))?;
    exchange(stream, &target, secret, event_id, body).await
}

/// Sends the request over a connected `stream` and reads the answer.
async fn exchange<S>(
    stream: S,
    target: &Target,
    secret: &str,
    event_id: u64,
    body: &str,
) -> Result<Answer, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(format!("HTTP handshake failed: {e}")))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let default_port = if target.tls { 443 } else { 80 };
    let host = if target.port == default_port {
        target.host.clone()
    } else if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let timestamp = crate::clock::now_secs();
    let request = Request::post(target.path.as_str())
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, concat!("confab/", env!("CARGO_PKG_VERSION")))
        .header("x-confab-event-id", event_id.to_string())
        .header(
            "x-confab-signature",
            keys::signature(secret, timestamp, body),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| fail(format!("cannot build the request: {e}")))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail(format!("request failed: {e}")))?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(Failure {
                status: Some(status),
                error: format!("answered {status}"),
                permanent: false,
            });
        }
        let reply = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("body").and_then(|b| b.as_str()).map(str::to_string))
            .filter(|b| !b.trim().is_empty());
        Ok(Answer { status, reply })
    }
    .await;
    driver.abort();
    result
}

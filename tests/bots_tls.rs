//! `https://` outgoing webhooks against the real binary: the server shakes
//! hands with TLS at the checked address and verifies the certificate, so
//! a receiver on loopback with a self-signed certificate is refused with a
//! certificate error in the delivery log, while one whose certificate is
//! issued by a CA named in `webhook_ca_file` gets the signed event.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{temp_dir, TestServer};
use serde_json::json;
use serde_json::Value;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const PASSWORD: &str = "correct horse battery";
/// How long the test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(20);

/// A self-signed certificate for `localhost` and 127.0.0.1 (valid to 2126).
const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUMJxKjiCX7yStR0ZGscyS19dIVi4wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNDE4MjcxMFoYDzIxMjYxMTEw
MTgyNzEwWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAT46VoP0XvJPN0wlOMdtORRgoiRHVUuqpqRDLDKTPTRDgaFerDviiwX
7BYlPmRRHTye0VztmYM4mzZZ7eGy8t5Zo28wbTAdBgNVHQ4EFgQUvUYJJS7s95VR
9ypiPoTCS9jTipwwHwYDVR0jBBgwFoAUvUYJJS7s95VR9ypiPoTCS9jTipwwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgGunczigmxKXA56CUyukT7q1DkOHLPHM+8zAU/Ob9TR0CIAEp
k+Q2d0c8HTtCmLFb8RZe3kBVQNazE2Inqdicz7Qm
-----END CERTIFICATE-----
";
/// Its private key.
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3tiW8iGYM+8HvHiR
SQq9tho/1RKwVJD0J4I3GW99yqWhRANCAAT46VoP0XvJPN0wlOMdtORRgoiRHVUu
qpqRDLDKTPTRDgaFerDviiwX7BYlPmRRHTye0VztmYM4mzZZ7eGy8t5Z
-----END PRIVATE KEY-----
";

/// A test CA (valid to 2126): it issued [`LEAF_CERT`] and nothing else.
const CA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAT+gAwIBAgIUdH/eHqUupLHYRdYdD1z0ixZbenQwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOY29uZmFiIHRlc3QgQ0EwIBcNMjYxMjA1MDgwNzExWhgPMjEy
NjExMTEwODA3MTFaMBkxFzAVBgNVBAMMDmNvbmZhYiB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEzudeK0CBS9d4bm/5LlQ6q5L1SLMC2tuU1kToLxK8
p7c8nfHKaLhkffzdeD22Dbm1H83Y6u7vayZEAAhQ6jiEZqNjMGEwHQYDVR0OBBYE
FP7x4MUM2OWKmXA3uDO9ILzNgYy0MB8GA1UdIwQYMBaAFP7x4MUM2OWKmXA3uDO9
ILzNgYy0MA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49
BAMCA0kAMEYCIQCyJMRBXiEsaWllKZVk8PQzUBwN60j+/4SKnkpWevE48wIhAIPt
gDjCdOl59cAJmR8thFnlu4Au2LxkO2ZtJa0WReen
-----END CERTIFICATE-----
";
/// A server certificate for `localhost` and 127.0.0.1 issued by [`CA_CERT`]
/// (not a CA itself; valid to 2126).
const LEAF_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBxDCCAWqgAwIBAgIUef0F/Y8h1aNmNkD+SAyVVNSNmXowCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOY29uZmFiIHRlc3QgQ0EwIBcNMjYxMjA1MDgwNzExWhgPMjEy
NjExMTEwODA3MTFaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEG
CCqGSM49AwEHA0IABL7fadqOkFa6iayuEjqL81w+2NFhMt64B/gGMoqNdMu79SQN
QuHsdSAfP2urM8Mk5i2aKtBISUstwYZXlHPVFuCjgZIwgY8wDAYDVR0TAQH/BAIw
ADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMw
EYIJbG9jYWxob3N0hwR/AAABMB0GA1UdDgQWBBTyvDMTCviMCNLrABCH2RTC8Ira
BTAfBgNVHSMEGDAWgBT+8eDFDNjliplwN7gzvSC8zYGMtDAKBggqhkjOPQQDAgNI
ADBFAiAHNDsIUhUWoEwBEDOcG95oa1MusLWYKWVIz/ADJ/bIWgIhAK+bx/XQowBd
GKAjsSP+HVr1szB8K/RTn1WzODwAgnvB
-----END CERTIFICATE-----
";
/// Its private key.
const LEAF_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCLgZ0Jf8Loe/9c5G
xYuWBKvixbF421ywieD9Kt+2Su+hRANCAAS+32najpBWuomsrhI6i/NcPtjRYTLe
uAf4BjKKjXTLu/UkDULh7HUgHz9rqzPDJOYtmirQSElLLcGGV5Rz1Rbg
-----END PRIVATE KEY-----
";

/// TLS server settings with `cert` and `key` (PEM).
fn server_config(cert: &str, key: &str) -> Arc<rustls::ServerConfig> {
    let cert = CertificateDer::from_pem_slice(cert.as_bytes()).expect("certificate");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    Arc::new(config)
}

/// One HTTP request read over TLS: its headers (lower-case names) and body.
struct Hit {
    headers: Vec<(String, String)>,
    body: String,
}

/// An HTTPS receiver on loopback with [`LEAF_CERT`]: answers every request
/// 204 and reports it.
fn https_receiver() -> (u16, mpsc::Receiver<Hit>) {
    let config = server_config(LEAF_CERT, LEAF_KEY);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(WAIT));
            let conn = rustls::ServerConnection::new(config.clone()).expect("connection");
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let Some(hit) = read_request(&mut tls) else {
                continue;
            };
            let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
            if tx.send(hit).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// Reads one HTTP/1.1 request with a `Content-Length` body.
fn read_request(stream: &mut impl Read) -> Option<Hit> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Hit {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The newest attempt in a bot's delivery log, once there is one.
fn newest_attempt(server: &TestServer, admin: &str, bot: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = server
            .get(&format!("/api/bots/{bot}/deliveries"), Some(admin))
            .json();
        if let Some(newest) = log["deliveries"].get(0) {
            return newest.clone();
        }
        assert!(Instant::now() < deadline, "no delivery attempt logged");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A TLS receiver on loopback: reports how each handshake ended.
fn tls_receiver() -> (u16, mpsc::Receiver<Result<(), String>>) {
    let config = server_config(CERT, KEY);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(WAIT));
            let mut conn = rustls::ServerConnection::new(config.clone()).expect("connection");
            let mut outcome = Ok(());
            while conn.is_handshaking() {
                if let Err(e) = conn.complete_io(&mut stream) {
                    outcome = Err(e.to_string());
                    break;
                }
            }
            if tx.send(outcome).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

#[test]
fn a_self_signed_https_receiver_is_refused_for_its_certificate() {
    let (port, handshakes) = tls_receiver();
    let server = TestServer::start_with(&[("CONFAB_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")], None);
    let (admin, _) = server.register("root", PASSWORD);
    let url = format!("https://127.0.0.1:{port}/hook");
    server
        .post_json(
            "/api/bots",
            Some(&admin),
            &json!({"username": "secure", "webhook_url": url}),
        )
        .assert_status(201, "an https webhook URL is accepted");
    server.post_message("lobby", &admin, &json!({"body": "@secure hi"}));

    // The server did reach the receiver and began a TLS handshake, which it
    // then broke off.
    let handshake = handshakes.recv_timeout(WAIT).expect("no TLS handshake");
    assert!(handshake.is_err(), "the handshake succeeded");

    let deadline = Instant::now() + WAIT;
    let attempt = loop {
        let log = server
            .get("/api/bots/secure/deliveries", Some(&admin))
            .json();
        if let Some(first) = log["deliveries"].as_array().and_then(|d| d.last()) {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "no delivery attempt logged");
        thread::sleep(Duration::from_millis(20));
    };
    let error = attempt["error"].as_str().unwrap_or("");
    assert!(
        error.contains("TLS") && error.contains("certificate"),
        "{attempt}"
    );
    assert!(attempt["status"].is_null(), "{attempt}");
}

#[test]
fn a_receiver_certified_by_a_webhook_ca_file_gets_the_event() {
    let (port, hits) = https_receiver();
    let dir = temp_dir();
    let ca_file = dir.path().join("webhook-ca.pem");
    std::fs::write(&ca_file, CA_CERT).expect("write the CA file");
    let ca_path = ca_file.to_str().expect("a UTF-8 path");
    let server = TestServer::start_with(
        &[
            ("CONFAB_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1"),
            ("CONFAB_WEBHOOK_CA_FILE", ca_path),
        ],
        None,
    );
    let (admin, _) = server.register("root", PASSWORD);
    let url = format!("https://127.0.0.1:{port}/hook");
    server
        .post_json(
            "/api/bots",
            Some(&admin),
            &json!({"username": "internal", "webhook_url": url}),
        )
        .assert_status(201, "an https webhook URL is accepted");
    let posted = server.post_message("lobby", &admin, &json!({"body": "@internal over TLS"}));

    let hit = hits
        .recv_timeout(WAIT)
        .expect("the receiver got no request");
    let event: Value = serde_json::from_str(&hit.body).expect("the event is JSON");
    assert_eq!(event["message"]["id"], posted["id"]);
    assert_eq!(event["message"]["body"], "@internal over TLS");
    let header = |name: &str| {
        hit.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-confab-event-id"), Some(event["id"].to_string()));
    assert!(header("x-confab-signature").is_some_and(|s| s.contains("v1=")));

    let attempt = newest_attempt(&server, &admin, "internal");
    assert_eq!(attempt["outcome"], "delivered", "{attempt}");
    assert_eq!(attempt["status"], 204, "{attempt}");
    assert_eq!(attempt["event_id"], event["id"], "{attempt}");
    assert!(attempt["error"].is_null(), "{attempt}");
    assert!(attempt["latency_ms"].is_u64(), "{attempt}");
}

#[test]
fn an_unusable_webhook_ca_file_stops_the_server_with_one_line() {
    let dir = temp_dir();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").expect("write");
    for (path, reason) in [
        (&missing, "cannot read it"),
        (&empty, "holds no PEM certificate"),
    ] {
        let path = path.to_str().expect("a UTF-8 path");
        let failure = match TestServer::options()
            .env("CONFAB_WEBHOOK_CA_FILE", path)
            .try_start()
        {
            Ok(_) => panic!("the server started with webhook_ca_file {path}"),
            Err(failure) => failure,
        };
        assert!(
            failure.output.contains("webhook_ca_file") && failure.output.contains(reason),
            "{}",
            failure.output
        );
    }
}

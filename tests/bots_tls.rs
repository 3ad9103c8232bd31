//! `https://` outgoing webhooks against the real binary: the server shakes
//! hands with TLS at the checked address and verifies the certificate, so
//! a receiver on loopback with a self-signed certificate is refused with a
//! certificate error in the delivery log.

mod common;

use std::net::TcpListener;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;
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

/// A TLS receiver on loopback: reports how each handshake ended.
fn tls_receiver() -> (u16, mpsc::Receiver<Result<(), String>>) {
    let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).expect("certificate");
    let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let config = Arc::new(config);
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

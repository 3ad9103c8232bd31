//! Outgoing mail end to end, against the real server and a real SMTP sink
//! on loopback: the welcome mail of an account an admin creates, "forgot
//! password" and the one-time reset link (single use, expiry, revocation of
//! older tokens and sockets), the same answer for unknown accounts, the
//! rate limit, and a mail server that is down when the mail is queued.

mod common;

use std::time::{Duration, Instant};

use common::phx::PhxClient;
use common::smtp::{self, Mail, SmtpSink};
use common::{Cli, TestServer};
use serde_json::{json, Value};

/// How long a queued mail may take to reach a running sink.
const MAIL_WAIT: Duration = Duration::from_secs(20);
const PUBLIC_URL: &str = "https://chat.example.test";

fn mail_env(smtp_url: &str) -> Vec<(String, String)> {
    vec![
        ("CONFAB_SMTP_URL".into(), smtp_url.into()),
        (
            "CONFAB_MAIL_FROM".into(),
            "Confab <chat@example.test>".into(),
        ),
        ("CONFAB_PUBLIC_URL".into(), PUBLIC_URL.into()),
    ]
}

fn server_with(smtp_url: &str, extra: &[(&str, &str)]) -> TestServer {
    let env = mail_env(smtp_url);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.extend_from_slice(extra);
    TestServer::options().envs(&vars).start()
}

/// The token of the reset link in `mail`, checking the link's shape.
#[track_caller]
fn link_token(mail: &Mail) -> String {
    let link = mail
        .link()
        .unwrap_or_else(|| panic!("no link in {mail:#?}"));
    let prefix = format!("{PUBLIC_URL}/reset#token=");
    let token = link
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("link {link:?} is not {prefix}…"));
    assert_eq!(token.len(), 43, "32 random bytes in base64url: {token}");
    token.to_string()
}

fn forgot(server: &TestServer, name: &str) -> (u16, Value) {
    let r = server.post_json(
        "/api/password/forgot",
        None,
        &json!({"username_or_email": name}),
    );
    (r.status, r.json())
}

fn reset(server: &TestServer, token: &str, password: &str) -> common::Response {
    server.post_json(
        "/api/password/reset",
        None,
        &json!({"token": token, "password": password}),
    )
}

fn register_with_email(server: &TestServer, username: &str, email: &str) -> String {
    let r = server.post_json(
        "/api/register",
        None,
        &json!({"username": username, "password": "first-password", "email": email}),
    );
    r.assert_status(201, "register");
    r.json()["token"].as_str().expect("token").to_string()
}

fn metric(server: &TestServer, name: &str) -> f64 {
    let text = server.get("/metrics", None).body;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

#[test]
fn admin_created_user_gets_a_welcome_link_that_works_once() {
    let sink = SmtpSink::start();
    let server = server_with(&sink.url(), &[]);
    let (admin, _) = server.register("root", "root-password");
    let r = server.post_json(
        "/api/users",
        Some(&admin),
        &json!({"username": "bob", "email": "bob@example.test", "display_name": "Bob"}),
    );
    r.assert_status(201, "admin creates bob");
    let created = r.json();
    let generated = created["password"].as_str().expect("password shown once");
    assert_eq!(created["welcome_mail"], true);

    let mails = sink.wait_for(1, MAIL_WAIT);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["bob@example.test"]);
    assert_eq!(mail.from, "chat@example.test");
    assert!(mail
        .header("Subject")
        .is_some_and(|s| s.contains("account")));
    let body = mail.body();
    assert!(body.contains("\"bob\""), "{body}");
    assert!(!body.contains(generated), "the mail carries no password");
    let token = link_token(mail);

    // the generated password works until the link is used
    server.login("bob", generated);
    let r = reset(&server, &token, "bobs-own-password");
    r.assert_status(200, "welcome link sets the password");
    assert!(r.json()["token"].is_string(), "signed in: {}", r.json());
    server.login("bob", "bobs-own-password");
    server
        .try_login("bob", generated)
        .assert_status(401, "the generated password is replaced");
    reset(&server, &token, "another-password").assert_error(422, "invalid_token", "second use");

    // The CLI (through the admin socket of the running server) sends one too.
    let cli = Cli::on(server.data_dir());
    let out = cli.run_ok(
        &["user", "add", "carol", "--email", "carol@example.test"],
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("welcome mail queued"),
        "{out:?}"
    );
    let mails = sink.wait_for(2, MAIL_WAIT);
    assert_eq!(mails[1].to, vec!["carol@example.test"]);
    link_token(&mails[1]);
    // Without an address there is nothing to send.
    let r = server.post_json("/api/users", Some(&admin), &json!({"username": "dan"}));
    r.assert_status(201, "no e-mail");
    assert_eq!(r.json()["welcome_mail"], false);
}

#[tokio::test]
async fn forgot_password_mails_a_link_that_resets_once_and_revokes_old_tokens() {
    let sink = SmtpSink::start();
    let server = server_with(&sink.url(), &[]);
    let old_token = register_with_email(&server, "alice", "Alice@Example.test");
    let mut socket = PhxClient::connect(server.addr(), &old_token)
        .await
        .expect("socket with the old token");

    let (status, body) = forgot(&server, "alice@example.TEST");
    assert_eq!(status, 202, "{body}");
    let first = sink.wait_for(1, MAIL_WAIT);
    assert_eq!(first[0].to, vec!["Alice@Example.test"]);
    let first_token = link_token(&first[0]);
    let (status, _) = forgot(&server, "alice");
    assert_eq!(status, 202);
    let second = sink.wait_for(2, MAIL_WAIT);
    let second_token = link_token(&second[1]);
    assert_ne!(first_token, second_token);

    // Password rules as at registration; a refused password keeps the link.
    let r = reset(&server, &second_token, "short");
    r.assert_error(422, "validation_failed", "short password");
    let r = reset(&server, &second_token, "a-brand-new-password");
    r.assert_status(200, "reset");
    let new_token = r.json()["token"].as_str().expect("session").to_string();
    assert_eq!(r.json()["user"]["username"], "alice");

    server
        .get("/api/me", Some(&old_token))
        .assert_status(401, "the old token is revoked");
    server
        .get("/api/me", Some(&new_token))
        .assert_status(200, "the new session works");
    socket.closed(Duration::from_secs(10)).await;
    server.login("alice", "a-brand-new-password");
    server
        .try_login("alice", "first-password")
        .assert_status(401, "old password");

    reset(&server, &second_token, "yet-another-one").assert_error(422, "invalid_token", "reuse");
    reset(&server, &first_token, "yet-another-one").assert_error(
        422,
        "invalid_token",
        "an older link is voided by the reset",
    );
    reset(&server, "not-a-token", "yet-another-one").assert_error(422, "invalid_token", "unknown");
    assert_eq!(metric(&server, "confab_mail_sent_total"), 2.0);
}

#[test]
fn unknown_accounts_get_the_same_answer_and_no_mail() {
    let sink = SmtpSink::start();
    let server = server_with(&sink.url(), &[]);
    register_with_email(&server, "erin", "erin@example.test");
    server.register("noaddress", "first-password");

    let known = forgot(&server, "erin");
    let unknown = forgot(&server, "nobody");
    let unknown_mail = forgot(&server, "nobody@example.test");
    let without_address = forgot(&server, "noaddress");
    assert_eq!(known.0, 202);
    for other in [&unknown, &unknown_mail, &without_address] {
        assert_eq!(&known, other, "the same status and body");
    }
    // One more known request, queued after the others: once its mail is in,
    // the earlier requests have long been handled.
    forgot(&server, "erin@example.test");
    let mails = sink.wait_for(2, MAIL_WAIT);
    assert!(
        mails.iter().all(|m| m.to == vec!["erin@example.test"]),
        "{mails:#?}"
    );
    assert_eq!(sink.mails().len(), 2);
}

#[test]
fn forgot_password_is_rate_limited_per_account() {
    let sink = SmtpSink::start();
    let server = server_with(&sink.url(), &[("CONFAB_LOGIN_MAX_FAILURES", "3")]);
    register_with_email(&server, "frank", "frank@example.test");
    for i in 0..3 {
        assert_eq!(forgot(&server, "frank").0, 202, "request {i}");
    }
    let r = server.post_json(
        "/api/password/forgot",
        None,
        &json!({"username_or_email": "FRANK"}),
    );
    r.assert_error(429, "rate_limited", "fourth request");
    assert!(r.header("retry-after").is_some());
    assert_eq!(sink.wait_for(3, MAIL_WAIT).len(), 3);
}

#[test]
fn an_expired_link_is_refused() {
    let sink = SmtpSink::start();
    // Links valid for 0 s: expired as soon as issued.
    let server = server_with(&sink.url(), &[("CONFAB_TEST_LINK_SECS", "0")]);
    register_with_email(&server, "gina", "gina@example.test");
    assert_eq!(forgot(&server, "gina").0, 202);
    let token = link_token(&sink.wait_for(1, MAIL_WAIT)[0]);
    reset(&server, &token, "a-brand-new-password").assert_error(422, "expired_token", "expired");
    server.login("gina", "first-password");
}

#[test]
fn a_mail_server_that_is_down_delays_mail_but_not_requests() {
    let port = smtp::reserve_port();
    let server = server_with(&smtp::url_for(port), &[]);
    let (admin, _) = server.register("root", "root-password");
    register_with_email(&server, "hank", "hank@example.test");

    let started = Instant::now();
    assert_eq!(forgot(&server, "hank").0, 202);
    server
        .post_json(
            "/api/users",
            Some(&admin),
            &json!({"username": "ivy", "email": "ivy@example.test"}),
        )
        .assert_status(201, "create with the mail server down");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "requests wait for no mail server: {:?}",
        started.elapsed()
    );
    // Both mails are queued; the sender has tried and failed at least once.
    let deadline = Instant::now() + MAIL_WAIT;
    while metric(&server, "confab_mail_failed_attempts_total") < 1.0 {
        assert!(Instant::now() < deadline, "no failed attempt counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server.logs().contains("mail not sent; will retry"),
        "{}",
        server.logs()
    );

    let sink = SmtpSink::start_on(port);
    let mails = sink.wait_for(2, MAIL_WAIT);
    let mut to: Vec<_> = mails.iter().map(|m| m.to[0].clone()).collect();
    to.sort();
    assert_eq!(to, vec!["hank@example.test", "ivy@example.test"]);
    let token = link_token(
        mails
            .iter()
            .find(|m| m.to[0] == "hank@example.test")
            .unwrap(),
    );
    reset(&server, &token, "a-brand-new-password").assert_status(200, "link from a late mail");
    let deadline = Instant::now() + MAIL_WAIT;
    while metric(&server, "confab_mail_queued") != 0.0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&server, "confab_mail_sent_total"), 2.0);
}

#[test]
fn without_smtp_url_forgot_is_unavailable() {
    let server = TestServer::start();
    let r = server.post_json(
        "/api/password/forgot",
        None,
        &json!({"username_or_email": "anyone"}),
    );
    r.assert_error(503, "unavailable", "mail is off");
}

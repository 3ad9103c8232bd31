//! A session task that panics (a fault injected into the debug build through
//! `CONFAB_TEST_PANIC_EVENT`) still leaves the hub and presence, and its
//! socket is closed: the others see its presence leave, the socket count
//! drops, and its user may connect again up to the per-user limit.

mod common;

use std::time::Duration;

use common::phx::{blocking, End, PhxClient};
use common::TestServer;
use serde_json::json;
use tokio::time::Instant;

const LOBBY: &str = "room:lobby";
const WITHIN: Duration = Duration::from_secs(15);

fn sockets_open(server: &TestServer) -> u64 {
    let metrics = server.get("/metrics", None).body;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("confab_sockets_open "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no confab_sockets_open in {metrics}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_session_leaves_hub_and_presence_and_closes_its_socket() {
    let server = TestServer::start_with(
        &[
            ("CONFAB_TEST_PANIC_EVENT", "boom"),
            ("CONFAB_MAX_SOCKETS_PER_USER", "1"),
        ],
        None,
    );
    let (alice_token, alice) = blocking(|| server.register("alice", "panic-password"));
    let (bob_token, _) = blocking(|| server.register("bobby", "panic-password"));
    let alice_key = alice["id"].to_string();

    let mut bob = PhxClient::connect(server.addr(), &bob_token).await.unwrap();
    bob.join_ok(LOBBY, json!({})).await;
    let mut alice_socket = PhxClient::connect(server.addr(), &alice_token)
        .await
        .unwrap();
    alice_socket.join_ok(LOBBY, json!({})).await;
    let deadline = Instant::now() + WITHIN;
    loop {
        let frame = bob.expect_frame(deadline, "alice's presence join").await;
        if frame.event == "presence_diff" && frame.payload["joins"].get(&alice_key).is_some() {
            break;
        }
    }
    assert_eq!(blocking(|| sockets_open(&server)), 2);
    // A second socket of alice is refused while her first is registered.
    assert!(PhxClient::connect(server.addr(), &alice_token)
        .await
        .is_err());

    let join_ref = alice_socket.join_ref(LOBBY).map(str::to_string);
    alice_socket
        .send(join_ref.as_deref(), Some("9"), LOBBY, "boom", json!({}))
        .await
        .unwrap();

    // Her socket is closed: no reply, the connection ends.
    let end = alice_socket.wait_end(WITHIN).await;
    assert!(
        matches!(end, End::Eof(_) | End::Close(..)),
        "the panicked session's socket ended: {end:?}"
    );
    // Her presence leaves for the others.
    loop {
        let frame = bob.expect_frame(deadline, "alice's presence leave").await;
        if frame.event == "presence_diff" && frame.payload["leaves"].get(&alice_key).is_some() {
            break;
        }
    }
    // The hub forgot the socket: the count drops and she may connect again.
    assert_eq!(blocking(|| sockets_open(&server)), 1);
    let mut again = PhxClient::connect(server.addr(), &alice_token)
        .await
        .expect("alice reconnects once the panicked socket is forgotten");
    again.join_ok(LOBBY, json!({})).await;
    let (status, _) = again
        .push(LOBBY, "new_msg", json!({"body": "back again"}))
        .await;
    assert_eq!(status, "ok");
    assert!(
        server.logs().contains("fault injected"),
        "the panic came from the injected fault"
    );
}

//! Mentions over REST (api.md §5) against the real binary: `mentions` in
//! posted and listed messages, `unread_mentions` in the rooms and
//! conversations lists, nothing for a non-member of a private room, and all
//! of it kept across a restart.

mod common;

use common::TestServer;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

/// `unread_mentions` of `room` in the caller's `GET /api/rooms`, if listed.
fn room_mentions(server: &TestServer, token: &str, room: &str) -> Option<u64> {
    let response = server.get("/api/rooms", Some(token));
    response.assert_status(200, "GET /api/rooms");
    let body = response.json();
    let listed = body["rooms"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == room)?;
    Some(
        listed["unread_mentions"]
            .as_u64()
            .unwrap_or_else(|| panic!("no unread_mentions in {listed}")),
    )
}

fn ids(value: &Value) -> Vec<u64> {
    let mut out: Vec<u64> = value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_u64().unwrap_or_else(|| panic!("not an id: {v}")))
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn mentions_are_stored_listed_and_counted_and_survive_a_restart() {
    let mut server = TestServer::start();
    let (alice, _) = server.register("alice", PASSWORD);
    let (bob, bob_user) = server.register("bob", PASSWORD);
    let (eve, _) = server.register("eve", PASSWORD);
    let bob_id = bob_user["id"].as_u64().expect("bob's id");

    server
        .post_json(
            "/api/rooms",
            Some(&alice),
            &json!({"name": "plans", "private": true}),
        )
        .assert_status(201, "create plans");
    server
        .post_json(
            "/api/rooms/plans/members",
            Some(&alice),
            &json!({"username": "bob"}),
        )
        .assert_status(204, "add bob");

    let message = server.post_message(
        "plans",
        &alice,
        &json!({"body": "@BOB and @eve and @nobody: see ada@example.com"}),
    );
    assert_eq!(ids(&message["mentions"]), [bob_id], "{message}");
    let plain = server.post_message("plans", &alice, &json!({"body": "no names"}));
    assert_eq!(ids(&plain["mentions"]), Vec::<u64>::new());

    assert_eq!(room_mentions(&server, &bob, "plans"), Some(1));
    assert_eq!(room_mentions(&server, &alice, "plans"), Some(0));
    assert_eq!(
        room_mentions(&server, &eve, "plans"),
        None,
        "eve cannot see it"
    );

    // A conversation.
    let opened = server.post_json(
        "/api/conversations",
        Some(&bob),
        &json!({"username": "alice"}),
    );
    opened.assert_status(201, "open a conversation");
    let id = opened.json()["conversation"]["id"].as_u64().expect("id");
    let dm = server.post_json(
        &format!("/api/conversations/{id}/messages"),
        Some(&bob),
        &json!({"body": "hey @alice"}),
    );
    dm.assert_status(201, "post to the conversation");
    let conversation_mentions = |token: &str| -> u64 {
        let response = server.get("/api/conversations", Some(token));
        response.assert_status(200, "GET /api/conversations");
        response.json()["conversations"][0]["unread_mentions"]
            .as_u64()
            .expect("unread_mentions")
    };
    assert_eq!(conversation_mentions(&alice), 1);
    assert_eq!(conversation_mentions(&bob), 0);

    server.restart();
    assert_eq!(room_mentions(&server, &bob, "plans"), Some(1));
    let response = server.get("/api/rooms/plans/messages", Some(&bob));
    response.assert_status(200, "history after the restart");
    let history = response.json();
    let messages = history["messages"].as_array().expect("messages");
    assert_eq!(ids(&messages[0]["mentions"]), [bob_id]);
    assert_eq!(ids(&messages[1]["mentions"]), Vec::<u64>::new());
    let response = server.get("/api/conversations", Some(&alice));
    assert_eq!(response.json()["conversations"][0]["unread_mentions"], 1);
}

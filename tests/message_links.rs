//! Links to one message: `GET .../messages?around=SEQ&limit=N` on rooms and
//! conversations returns the page centred on that message, against the real
//! server over TCP.

mod common;

use common::TestServer;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

fn around(server: &TestServer, path: &str, token: &str, query: &str) -> Value {
    let response = server.get(&format!("{path}?{query}"), Some(token));
    response.assert_status(200, query);
    response.json()
}

fn flags(page: &Value) -> (bool, bool) {
    (
        page["has_more_before"].as_bool().expect("has_more_before"),
        page["has_more_after"].as_bool().expect("has_more_after"),
    )
}

/// Creates room `name` (private or not) owned by `token` with `count`
/// messages `m1`..; returns its messages path.
fn room_with_messages(
    server: &TestServer,
    token: &str,
    name: &str,
    private: bool,
    count: u64,
) -> String {
    server
        .post_json(
            "/api/rooms",
            Some(token),
            &json!({"name": name, "private": private}),
        )
        .assert_status(201, "create room");
    for i in 1..=count {
        server.post_message(name, token, &json!({"body": format!("m{i}")}));
    }
    format!("/api/rooms/{name}/messages")
}

#[test]
fn room_page_is_centred_on_the_seq_with_flags_at_both_ends() {
    let server = TestServer::start();
    let [ada] = server.register_all(["ada"], PASSWORD);
    let path = room_with_messages(&server, &ada, "links", false, 30);

    let page = around(&server, &path, &ada, "around=15&limit=5");
    assert_eq!(seqs(&page), vec![13, 14, 15, 16, 17]);
    assert_eq!(flags(&page), (true, true));
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["m13", "m14", "m15", "m16", "m17"]);

    // An even limit puts the extra message after the seq.
    let page = around(&server, &path, &ada, "around=15&limit=4");
    assert_eq!(seqs(&page), vec![14, 15, 16, 17]);

    // Near the start, the short side gives its room to the other.
    let page = around(&server, &path, &ada, "around=2&limit=5");
    assert_eq!(seqs(&page), vec![1, 2, 3, 4, 5]);
    assert_eq!(flags(&page), (false, true));
    let page = around(&server, &path, &ada, "around=3&limit=5");
    assert_eq!(seqs(&page), vec![1, 2, 3, 4, 5]);
    assert_eq!(flags(&page), (false, true));

    // Near the end too.
    let page = around(&server, &path, &ada, "around=30&limit=5");
    assert_eq!(seqs(&page), vec![26, 27, 28, 29, 30]);
    assert_eq!(flags(&page), (true, false));
    let page = around(&server, &path, &ada, "around=28&limit=5");
    assert_eq!(seqs(&page), vec![26, 27, 28, 29, 30]);
    assert_eq!(flags(&page), (true, false));

    // Everything fits: no more on either side.
    let page = around(&server, &path, &ada, "around=10&limit=100");
    assert_eq!(seqs(&page), (1..=30).collect::<Vec<_>>());
    assert_eq!(flags(&page), (false, false));

    // Past the end: the newest page.
    let page = around(&server, &path, &ada, "around=1000&limit=3");
    assert_eq!(seqs(&page), vec![28, 29, 30]);
    assert_eq!(flags(&page), (true, false));

    // The default page is 50 and the largest 200.
    let page = around(&server, &path, &ada, "around=15");
    assert_eq!(seqs(&page).len(), 30);
    let page = around(&server, &path, &ada, "around=15&limit=1");
    assert_eq!(seqs(&page), vec![15]);
    assert_eq!(flags(&page), (true, true));
}

#[test]
fn limit_is_capped_at_the_largest_page() {
    let server = TestServer::start();
    let [ada] = server.register_all(["ada"], PASSWORD);
    let path = room_with_messages(&server, &ada, "big", false, 210);
    let page = around(&server, &path, &ada, "around=105&limit=1000");
    let got = seqs(&page);
    assert_eq!(got.len(), 200);
    assert!(got.contains(&105));
    assert_eq!(got.first(), Some(&6));
    assert_eq!(flags(&page), (true, true));
}

#[test]
fn bad_around_is_422_naming_the_field() {
    let server = TestServer::start();
    let [ada] = server.register_all(["ada"], PASSWORD);
    let path = room_with_messages(&server, &ada, "bad", false, 3);
    for query in [
        "around=0",
        "around=-1",
        "around=abc",
        "around=",
        "around=1.5",
        "around=99999999999999999999999",
        "around=2&before=3",
        "around=2&after=1",
    ] {
        let response = server.get(&format!("{path}?{query}"), Some(&ada));
        response.assert_status(422, query);
        assert!(
            response.json()["errors"]["around"].is_array(),
            "{query}: {}",
            response.json()
        );
    }
    let response = server.get(&format!("{path}?around=2&limit=x"), Some(&ada));
    response.assert_status(422, "bad limit");
    assert!(response.json()["errors"]["limit"].is_array());
}

#[test]
fn conversations_too_and_outsiders_are_refused() {
    let server = TestServer::start();
    let [ada, bob, eve] = server.register_all(["ada", "bob", "eve"], PASSWORD);
    let response = server.post_json(
        "/api/conversations",
        Some(&ada),
        &json!({"username": "bob"}),
    );
    assert!(response.status == 200 || response.status == 201);
    let id = response.json()["conversation"]["id"].as_u64().expect("id");
    let path = format!("/api/conversations/{id}/messages");
    for i in 1..=9 {
        let token = if i % 2 == 0 { &ada } else { &bob };
        server
            .post_json(&path, Some(token), &json!({"body": format!("d{i}")}))
            .assert_status(201, "dm post");
    }
    let page = around(&server, &path, &bob, "around=5&limit=3");
    assert_eq!(seqs(&page), vec![4, 5, 6]);
    assert_eq!(flags(&page), (true, true));
    assert_eq!(page["messages"][1]["body"], "d5");
    assert_eq!(page["messages"][1]["topic"], format!("dm:{id}"));

    let refused = server.get(&format!("{path}?around=5"), Some(&eve));
    assert_eq!(refused.status, 403, "an outsider reads a conversation");
    assert!(!refused.body.contains("d5"));

    // A private room: a non-member gets nothing.
    let room = room_with_messages(&server, &ada, "secret", true, 3);
    let refused = server.get(&format!("{room}?around=2"), Some(&eve));
    assert!(
        refused.status == 403 || refused.status == 404,
        "status {}",
        refused.status
    );
    assert!(!refused.body.contains("m2"));
    let unauthenticated = server.get(&format!("{room}?around=2"), None);
    assert_eq!(unauthenticated.status, 401);
}

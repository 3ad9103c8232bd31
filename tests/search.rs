//! `GET /api/search` against the real server (api.md §5): the query
//! language, Unicode, newest-first cursor paging, permissions (private
//! rooms, ignores), deleted and edited messages, 422s, and that every
//! acknowledged message is searchable after a SIGKILL and a restart (and
//! after an offline `confab reindex`).
//!
//! The index becomes searchable within about a second of a commit, so each
//! test posts what it needs, then waits until a last marker message is
//! found: the indexer applies changes in commit order, so everything
//! before the marker is then in the index too.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::phx::{blocking, PhxClient};
use common::{wait_for, Cli, TestServer};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";
const INDEX_WAIT: Duration = Duration::from_secs(20);

/// Percent-encodes a query-string value.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `GET /api/search?q=…&extra`, asserting 200; returns the body.
#[track_caller]
fn search(server: &TestServer, token: &str, q: &str, extra: &str) -> Value {
    let path = format!("/api/search?q={}{extra}", encode(q));
    let response = server.get(&path, Some(token));
    response.assert_status(200, &format!("search {q:?}"));
    response.json()
}

/// The bodies of the results of `q`, in order.
#[track_caller]
fn bodies(server: &TestServer, token: &str, q: &str) -> Vec<String> {
    search(server, token, q, "&limit=100")["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["message"]["body"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Waits until `q` finds at least `count` messages for `token`.
fn wait_found(server: &TestServer, token: &str, q: &str, count: usize) -> Value {
    wait_for(INDEX_WAIT, &format!("{count} results for {q:?}"), || {
        let body = search(server, token, q, "&limit=100");
        (body["results"].as_array().map_or(0, Vec::len) >= count).then_some(body)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_language_permissions_and_paging() {
    let server = blocking(TestServer::start);
    let [ada, bob, cyd] = blocking(|| server.register_all(["ada", "bob", "cyd"], PASSWORD));
    let post = |token: &str, room: &str, body: &str| -> Value {
        blocking(|| server.post_message(room, token, &json!({ "body": body })))
    };
    post(&ada, "lobby", "Deploying the blue green release");
    post(&ada, "lobby", "the café is open");
    post(&ada, "lobby", "東京タワーへ行きました");
    post(&ada, "lobby", "deploy failed again");
    post(&ada, "lobby", "<b>bold</b> & deploy");
    post(&bob, "lobby", "deployment checklist from bob");
    blocking(|| {
        server
            .post_json(
                "/api/rooms",
                Some(&ada),
                &json!({"name": "secret", "private": true}),
            )
            .assert_status(201, "create private room");
    });
    post(&ada, "secret", "secret deploy plan");
    blocking(|| {
        server
            .request("PUT", "/api/me/ignores/bob", Some(&cyd), None, &[])
            .assert_status(204, "cyd ignores bob");
    });
    // An edit and a deletion, over the socket.
    let edited = post(&ada, "lobby", "original wording zebra");
    let doomed = post(&ada, "lobby", "doomed words walrus");
    let mut socket = PhxClient::joined(server.addr(), &ada, "room:lobby").await;
    let (status, reply) = socket
        .push(
            "room:lobby",
            "edit_msg",
            json!({"seq": edited["seq"], "body": "replacement wording yak"}),
        )
        .await;
    assert_eq!(status, "ok", "edit: {reply}");
    let (status, reply) = socket
        .push("room:lobby", "delete_msg", json!({"seq": doomed["seq"]}))
        .await;
    assert_eq!(status, "ok", "delete: {reply}");
    for i in 0..25 {
        post(&ada, "lobby", &format!("pagetest number {i}"));
    }
    post(&ada, "lobby", "sentinel marker");
    blocking(|| wait_found(&server, &ada, "sentinel", 1));

    blocking(|| {
        // Words: all must match.
        assert_eq!(
            bodies(&server, &ada, "deploy failed"),
            ["deploy failed again"]
        );
        assert_eq!(
            bodies(&server, &ada, "DEPLOY Again"),
            ["deploy failed again"]
        );
        // Prefix, newest first; private room included for its member.
        assert_eq!(
            bodies(&server, &ada, "deplo*"),
            [
                "secret deploy plan",
                "deployment checklist from bob",
                "<b>bold</b> & deploy",
                "deploy failed again",
                "Deploying the blue green release",
            ]
        );
        // Phrase.
        assert_eq!(
            bodies(&server, &ada, "\"blue green\""),
            ["Deploying the blue green release"]
        );
        assert!(bodies(&server, &ada, "\"green blue\"").is_empty());
        // from: and in:.
        assert_eq!(
            bodies(&server, &ada, "from:bob deplo*"),
            ["deployment checklist from bob"]
        );
        assert_eq!(
            bodies(&server, &ada, "in:secret deploy"),
            ["secret deploy plan"]
        );
        assert!(bodies(&server, &ada, "in:lobby secret").is_empty());
        assert!(bodies(&server, &ada, "from:nobody deploy").is_empty());
        assert!(bodies(&server, &ada, "in:nowhere deploy").is_empty());
        // Unicode: accents folded both ways, CJK by characters.
        assert_eq!(bodies(&server, &ada, "cafe"), ["the café is open"]);
        assert_eq!(bodies(&server, &ada, "CAFÉ"), ["the café is open"]);
        assert_eq!(bodies(&server, &ada, "東京"), ["東京タワーへ行きました"]);
        assert_eq!(bodies(&server, &ada, "タワー"), ["東京タワーへ行きました"]);
        assert!(bodies(&server, &ada, "京東").is_empty());
        // Snippets: hits marked, everything else escaped.
        let found = search(&server, &ada, "bold deploy", "");
        assert_eq!(
            found["results"][0]["snippet"],
            "&lt;b&gt;<mark>bold</mark>&lt;/b&gt; &amp; <mark>deploy</mark>"
        );
        let found = search(&server, &ada, "東京", "");
        assert_eq!(
            found["results"][0]["snippet"],
            "<mark>東京</mark>タワーへ行きました"
        );
        // The message is the history view.
        let message = &search(&server, &ada, "cafe", "")["results"][0]["message"];
        assert_eq!(message["topic"], "room:lobby");
        assert_eq!(message["user"]["username"], "ada");
        assert!(message["seq"].as_u64().is_some() && message["id"].as_u64().is_some());
        // A non-member never sees the private room, and may not name it.
        assert_eq!(
            bodies(&server, &bob, "deplo*"),
            [
                "deployment checklist from bob",
                "<b>bold</b> & deploy",
                "deploy failed again",
                "Deploying the blue green release",
            ]
        );
        assert!(bodies(&server, &bob, "secret").is_empty());
        assert!(bodies(&server, &bob, "in:secret plan").is_empty());
        server
            .get("/api/search?q=plan&topic=room:secret", Some(&bob))
            .assert_error(403, "forbidden", "topic filter on a private room");
        assert_eq!(
            search(&server, &ada, "plan", "&topic=room%3Asecret")["results"][0]["message"]["body"],
            "secret deploy plan"
        );
        assert!(
            search(&server, &ada, "plan", "&topic=room%3Alobby")["results"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        // Ignores apply.
        assert!(!bodies(&server, &cyd, "deplo*").contains(&"deployment checklist from bob".into()));
        assert!(bodies(&server, &cyd, "checklist").is_empty());
        // Deleted never found; edited by its new text only.
        assert!(bodies(&server, &ada, "walrus").is_empty());
        assert!(bodies(&server, &ada, "zebra").is_empty());
        assert_eq!(bodies(&server, &ada, "yak"), ["replacement wording yak"]);
        assert!(bodies(&server, &ada, "original").is_empty());
    });

    // Cursor paging: newest first, no duplicates, no omissions.
    blocking(|| {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let extra = match &cursor {
                Some(c) => format!("&limit=10&before={}", encode(c)),
                None => "&limit=10".into(),
            };
            let page = search(&server, &ada, "pagetest", &extra);
            let results = page["results"].as_array().unwrap();
            assert!(results.len() <= 10);
            for r in results {
                seen.push(r["message"]["id"].as_u64().unwrap());
            }
            pages += 1;
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
            assert!(pages < 10, "paging does not end");
        }
        assert_eq!(seen.len(), 25, "{seen:?}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "not newest first: {seen:?}"
        );
        let default = search(&server, &ada, "pagetest", "");
        assert_eq!(default["results"].as_array().unwrap().len(), 20);
        assert!(default["next"].is_string());
    });

    // Bad input: 422 on q, never 500.
    blocking(|| {
        let long = "a".repeat(300);
        for q in [
            "",
            "   ",
            "\"unbalanced",
            "from:",
            "in:",
            "*",
            long.as_str(),
        ] {
            let body = server
                .get(&format!("/api/search?q={}", encode(q)), Some(&ada))
                .assert_error(422, "validation_failed", &format!("q {q:?}"));
            assert!(body["errors"]["q"][0].is_string(), "{body}");
        }
        let body =
            server
                .get("/api/search", Some(&ada))
                .assert_error(422, "validation_failed", "no q");
        assert!(body["errors"]["q"][0].is_string(), "{body}");
        server
            .get("/api/search?q=a&limit=0", Some(&ada))
            .assert_error(422, "validation_failed", "limit 0");
        server
            .get("/api/search?q=a&limit=101", Some(&ada))
            .assert_error(422, "validation_failed", "limit 101");
        server
            .get("/api/search?q=a&before=%25%25", Some(&ada))
            .assert_error(422, "validation_failed", "bad cursor");
        server
            .get("/api/search?q=a", None)
            .assert_error(401, "unauthorized", "no token");
    });
    socket.close().await;
}

#[test]
fn acknowledged_messages_survive_a_kill_and_a_reindex() {
    let mut server = TestServer::start();
    let (token, _) = server.register("ada", PASSWORD);
    const N: usize = 60;
    let mut ids = HashSet::new();
    for i in 0..N {
        let message = server.post_message(
            "lobby",
            &token,
            &json!({ "body": format!("crashword item{i}") }),
        );
        ids.insert(message["id"].as_u64().unwrap());
    }
    // Right after the last ack, before the index's next commit.
    server.kill();
    server.restart();
    let found_ids = |server: &TestServer, token: &str| -> HashSet<u64> {
        search(server, token, "crashword", "&limit=100")["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["message"]["id"].as_u64().unwrap())
            .collect()
    };
    let (token, _) = server.login("ada", PASSWORD);
    wait_for(INDEX_WAIT, "every acknowledged message searchable", || {
        (found_ids(&server, &token) == ids).then_some(())
    });
    // Each one by its own word too.
    assert_eq!(bodies(&server, &token, "item37"), ["crashword item37"]);

    // An offline rebuild from the store gives the same answer.
    server.stop();
    let cli = Cli::on(server.data_dir());
    let output = cli.run_ok(&["reindex"], None);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains(&format!("indexed {N} messages")),
        "{printed}"
    );
    server.restart();
    let (token, _) = server.login("ada", PASSWORD);
    assert_eq!(found_ids(&server, &token), ids);
}

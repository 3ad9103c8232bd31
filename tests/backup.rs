//! Backup and restore: the online export (`GET /api/admin/export`) and the
//! offline one (`confab export`) are the same snapshot; `confab import`
//! restores it into an empty data directory; export → import → export is
//! byte-identical apart from the header line; a restored server serves the
//! same users, rooms, messages and attachments.

mod common;

use common::{on_postgres, request_raw, request_raw_bytes, Cli, TestServer};
use serde_json::{json, Value};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

fn body_lines(export: &str) -> Vec<&str> {
    export.lines().skip(1).collect()
}

#[test]
fn export_import_round_trip_is_identical_and_restores_everything() {
    let mut server = TestServer::start();
    let (admin, _) = server.register("ada", "ada-password");
    let (bob, _) = server.register("bob", "bob-password");
    server
        .post_json(
            "/api/rooms",
            Some(&admin),
            &json!({"name": "ops", "private": true}),
        )
        .assert_status(201, "private room");
    server
        .post_json(
            "/api/rooms/ops/members",
            Some(&admin),
            &json!({"username": "bob"}),
        )
        .assert_status(204, "member");
    for i in 0..5 {
        server.post_message(
            "lobby",
            &bob,
            &json!({"body": format!("hello {i}"), "client_id": format!("c{i}")}),
        );
    }
    let conversation = server
        .post_json(
            "/api/conversations",
            Some(&admin),
            &json!({"username": "bob"}),
        )
        .json()["conversation"]["id"]
        .as_u64()
        .expect("conversation id");
    let mut raw = format!(
        "POST /api/rooms/ops/attachments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        PNG.len()
    )
    .into_bytes();
    raw.extend_from_slice(PNG);
    let upload = request_raw(server.addr(), &raw, false);
    upload.assert_status(201, "attachment upload");
    let attachment_id = upload.json()["attachment"]["id"].as_u64();
    assert!(attachment_id.is_some(), "attachment id");
    if let Some(id) = attachment_id {
        server
            .post_json(
                "/api/rooms/ops/messages",
                Some(&admin),
                &json!({"body": "picture", "attachment_id": id}),
            )
            .assert_status(201, "message with attachment");
    }
    server
        .post_json(
            &format!("/api/conversations/{conversation}/messages"),
            Some(&bob),
            &json!({"body": "psst"}),
        )
        .assert_status(201, "dm");

    // Online export, admins only.
    server
        .get("/api/admin/export", Some(&bob))
        .assert_status(403, "export as a non-admin");
    let online = server.get("/api/admin/export", Some(&admin));
    online.assert_status(200, "online export");
    let online = online.body.clone();
    let header: Value = serde_json::from_str(online.lines().next().unwrap_or("")).expect("header");
    assert_eq!(header["type"], "header");
    assert!(online.contains("\"type\":\"message\""), "messages exported");
    assert!(!online.contains("jwt_secret"), "the secret is not exported");

    // Offline export of the stopped server: the same snapshot.
    server.stop();
    let source = Cli::on(server.data_dir());
    let work = source.cwd();
    let first = work.join("first.jsonl");
    let first_arg = first.to_str().unwrap();
    let offline = source.export(&first);
    assert_eq!(
        body_lines(&online),
        body_lines(&offline),
        "online and offline exports agree"
    );

    // Import into an empty directory, export again: identical but for the header.
    let restored = Cli::on(&work.join("restored"));
    restored.run_ok(&["import", first_arg], None);
    let out = restored.run_ok(&["export"], None);
    let second = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        body_lines(&offline),
        body_lines(&second),
        "round trip is byte-identical"
    );

    // Import refuses a non-empty directory and garbage.
    let out = restored.run(&["import", first_arg], None);
    assert!(
        !out.status.success(),
        "import into a non-empty directory is refused"
    );
    let garbage = work.join("garbage.jsonl");
    std::fs::write(&garbage, "{\"type\":\"message\"}\n").unwrap();
    let refused = Cli::on(&work.join("g"));
    let out = refused.run(&["import", garbage.to_str().unwrap()], None);
    assert!(!out.status.success(), "garbage is refused");
    if !on_postgres() {
        assert!(
            !work.join("g").join("confab.redb").exists(),
            "nothing left behind"
        );
    }
    // Nothing left behind: the store still counts as empty.
    refused.run_ok(&["import", first_arg], None);

    // The restored store serves the same data (tokens are not restored: new secret).
    let restored_server = TestServer::start_with(&[], Some(restored.data().to_path_buf()));
    let (token, _) = restored_server.login("bob", "bob-password");
    let history = restored_server.get("/api/rooms/lobby/messages", Some(&token));
    history.assert_status(200, "history after restore");
    let messages = history.json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let seqs: Vec<u64> = messages.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5], "lobby history restored");
    // client_id dedup survives the restore.
    let again = restored_server.post_json(
        "/api/rooms/lobby/messages",
        Some(&token),
        &json!({"body": "hello 0", "client_id": "c0"}),
    );
    again.assert_status(200, "client_id seen before the backup");
    assert_eq!(again.json()["message"]["seq"], 1);
    restored_server
        .get("/api/rooms/ops/messages", Some(&token))
        .assert_status(200, "membership restored");
    if let Some(id) = attachment_id {
        let raw = format!(
            "GET /api/attachments/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let image = request_raw_bytes(restored_server.addr(), raw.as_bytes(), false);
        assert_eq!(image.status, 200, "attachment restored");
        assert_eq!(image.body, PNG, "attachment bytes restored");
    }
    restored_server
        .get(
            &format!("/api/conversations/{conversation}/messages"),
            Some(&token),
        )
        .assert_status(200, "conversation restored");
}

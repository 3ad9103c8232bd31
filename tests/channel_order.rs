//! The order of a channel's frames on the wire: replies leave in the order of
//! the pushes they answer and `phx_close` after all of them, even when an
//! earlier push (a `new_msg`, answered once durable) is answered later than
//! the pushes behind it. Also: V1 JSON in a binary frame is decoded as
//! Phoenix's V1 serializer does.

mod common;

use std::time::Duration;

use common::phx::{Frame, PhxClient};
use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const LOBBY: &str = "room:lobby";
const NO_RATE_LIMIT: [(&str, &str); 2] = [
    ("CONFAB_PUSH_BURST", "1000000"),
    ("CONFAB_PUSH_REFILL_PER_SEC", "1000000"),
];
const WITHIN: Duration = Duration::from_secs(15);

fn server_and_token() -> (TestServer, String) {
    let server = TestServer::start_with(&NO_RATE_LIMIT, None);
    let (token, _) = server.register("orderly", "order-password");
    (server, token)
}

/// Reads frames until `phx_close` on `topic`; returns every frame read.
async fn frames_until_close(client: &mut PhxClient, topic: &str) -> Vec<Frame> {
    let deadline = Instant::now() + WITHIN;
    let mut frames = Vec::new();
    loop {
        let frame = client
            .expect_frame(deadline, "frames up to phx_close")
            .await;
        let closed = frame.event == "phx_close" && frame.topic == topic;
        frames.push(frame);
        if closed {
            return frames;
        }
    }
}

/// The refs of the replies in `frames`, and the position of `phx_close`.
fn reply_refs(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f.event.as_str() {
            "phx_reply" => f.msg_ref.clone(),
            "phx_close" => Some("close".to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_leave_in_push_order_and_phx_close_last() {
    let (server, token) = server_and_token();
    for round in 0..20 {
        let mut client = PhxClient::connect(server.addr(), &token).await.unwrap();
        client.join_ok(LOBBY, json!({})).await;
        let join_ref = client.join_ref(LOBBY).map(str::to_string);
        // A message, then the leave, at once: the message's reply comes
        // after its commit, the leave's could come at once.
        let message = [
            json!([join_ref, "m", LOBBY, "new_msg", {"body": format!("round {round}")}]),
            json!([join_ref, "l", LOBBY, "phx_leave", {}]),
        ];
        for frame in message {
            client.send_text(frame.to_string()).await.unwrap();
        }
        let frames = frames_until_close(&mut client, LOBBY).await;
        assert_eq!(
            reply_refs(&frames),
            ["m", "l", "close"],
            "round {round}: {frames:#?}"
        );
        let ack = frames.iter().find(|f| f.is_reply_to("m")).unwrap();
        assert_eq!(ack.reply_parts().0, "ok", "{ack:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_between_pending_messages_keep_their_place() {
    let (server, token) = server_and_token();
    let mut client = PhxClient::connect(server.addr(), &token).await.unwrap();
    client.join_ok(LOBBY, json!({})).await;
    let join_ref = client.join_ref(LOBBY).map(str::to_string);
    let pushes = [
        json!([join_ref, "1", LOBBY, "new_msg", {"body": "first"}]),
        json!([join_ref, "2", LOBBY, "history", {"limit": 1}]),
        json!([join_ref, "3", LOBBY, "new_msg", {"body": ""}]),
        json!([join_ref, "4", LOBBY, "new_msg", {"body": "second"}]),
        json!([join_ref, "5", LOBBY, "read", {"seq": 1}]),
        json!([join_ref, "6", LOBBY, "phx_leave", {}]),
    ];
    for push in pushes {
        client.send_text(push.to_string()).await.unwrap();
    }
    let frames = frames_until_close(&mut client, LOBBY).await;
    assert_eq!(
        reply_refs(&frames),
        ["1", "2", "3", "4", "5", "6", "close"],
        "{frames:#?}"
    );
    let status = |r: &str| {
        frames
            .iter()
            .find(|f| f.is_reply_to(r))
            .map(|f| f.reply_parts().0)
    };
    assert_eq!(
        status("3").as_deref(),
        Some("error"),
        "an empty body is refused"
    );
    assert_eq!(status("4").as_deref(), Some("ok"));
    // Other topics are not held up by a pending reply on this one.
    client.join_ok(LOBBY, json!({})).await;
    let (status, _) = client.push("phoenix", "heartbeat", json!({})).await;
    assert_eq!(status, "ok");
}

/// Reads V1 frames (JSON objects) until one with `ref` == `msg_ref`.
async fn v1_reply(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
    msg_ref: &str,
) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no V1 reply to {msg_ref}"))
            .unwrap_or_else(|| panic!("the socket ended before the reply to {msg_ref}"))
            .unwrap_or_else(|e| panic!("socket error before the reply to {msg_ref}: {e}"));
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if value["ref"] == msg_ref && value["event"] == "phx_reply" {
                    return value;
                }
            }
            Message::Close(frame) => panic!("closed before the reply to {msg_ref}: {frame:?}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_json_in_a_binary_frame_is_decoded() {
    let (server, token) = server_and_token();
    let url = format!(
        "ws://{}/socket/websocket?token={token}&vsn=1.0.0",
        server.addr()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let send_binary = |value: Value| Message::Binary(value.to_string().into_bytes().into());
    ws.send(send_binary(
        json!({"topic": LOBBY, "event": "phx_join", "payload": {}, "ref": "1"}),
    ))
    .await
    .unwrap();
    let joined = v1_reply(&mut ws, "1").await;
    assert_eq!(joined["payload"]["status"], "ok", "{joined}");
    ws.send(send_binary(json!({
        "topic": LOBBY, "event": "new_msg", "payload": {"body": "sent as binary"}, "ref": "2"
    })))
    .await
    .unwrap();
    let acked = v1_reply(&mut ws, "2").await;
    assert_eq!(acked["payload"]["status"], "ok", "{acked}");
    assert!(acked["payload"]["response"]["seq"].is_u64(), "{acked}");
    ws.send(send_binary(
        json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "3"}),
    ))
    .await
    .unwrap();
    assert_eq!(v1_reply(&mut ws, "3").await["payload"]["status"], "ok");

    // Bytes that are not UTF-8 JSON still close the socket as malformed.
    ws.send(Message::Binary(vec![0xff, 0x00, 0x01].into()))
        .await
        .unwrap();
    let deadline = Instant::now() + WITHIN;
    let code = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => break u16::from(frame.code),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame after a bad binary frame: {other:?}"),
        }
    };
    assert_eq!(code, 1007);
}

//! The properties the fuzz targets check, shared with the regression tests
//! (`tests/fuzz_regressions.rs` includes this file), so a crashing input
//! replays through exactly the code that found it.
//!
//! Every function takes arbitrary bytes and panics only on a real defect:
//! a panic inside confab's code, or a broken round trip / invariant.

#![allow(dead_code)] // each fuzz target uses one entry point

use base64::Engine;
use confab::socket::frame::{self, FrameError, Inbound, Payload, Vsn};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// JSON equality where floats may differ in the last bit: serde_json (built
/// without `float_roundtrip`) does not parse every long decimal to the
/// nearest double, so a float can move by one ulp when re-parsed from its
/// shortest form. Found by `frame_v2` (fuzz/regressions/frame_v2/); not a
/// confab defect, and the server never echoes client floats.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || ((x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f64::EPSILON)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn same_inbound(a: &Inbound, b: &Inbound) -> bool {
    let payloads = match (&a.payload, &b.payload) {
        (Payload::Json(x), Payload::Json(y)) => same_json(x, y),
        (x, y) => x == y,
    };
    same_json(&a.join_ref, &b.join_ref)
        && same_json(&a.msg_ref, &b.msg_ref)
        && a.topic == b.topic
        && a.event == b.event
        && payloads
}

/// Text frames: decode with `vsn`; whatever decodes must encode and decode
/// again to the same message (V1 frames carry no join_ref out, so that one
/// is not compared), as long as the payload is an object (the encoder
/// writes `{}` for anything else, by design).
fn text_round_trip(vsn: Vsn, text: &str) {
    let Ok(inbound) = frame::decode_text(vsn, text) else {
        return;
    };
    let Payload::Json(payload) = &inbound.payload else {
        panic!("a text frame decoded to a binary payload: {inbound:?}");
    };
    if !payload.is_object() {
        return;
    }
    let encoded = frame::encode_text(
        vsn,
        &inbound.join_ref,
        &inbound.msg_ref,
        &inbound.topic,
        &inbound.event,
        payload,
    );
    let again = frame::decode_text(vsn, &encoded)
        .unwrap_or_else(|e| panic!("re-encoded frame does not decode ({e}): {encoded}"));
    let expected = match vsn {
        Vsn::V2 => inbound.clone(),
        Vsn::V1 => Inbound {
            join_ref: Value::Null,
            ..inbound.clone()
        },
    };
    assert!(
        same_inbound(&again, &expected),
        "round trip of {text:?} via {encoded:?}:\n{again:?}\n!=\n{expected:?}"
    );
    // Replies built for this message encode to valid frames too.
    let reply = frame::encode_reply(
        vsn,
        &inbound.join_ref,
        &inbound.msg_ref,
        &inbound.topic,
        "ok",
        payload,
    );
    let reply: Value =
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {reply}"));
    assert!(reply.is_array() || reply.is_object(), "{reply}");
}

/// Binary frames: both decoders agree; whatever decodes re-encodes (the
/// client push layout) to exactly the input bytes.
fn binary_checks(vsn: Vsn, data: &[u8]) {
    let copied = frame::decode_binary(vsn, data);
    let shared = frame::decode_binary_bytes(vsn, bytes::Bytes::copy_from_slice(data));
    assert_eq!(
        copied, shared,
        "the two binary decoders disagree on {data:?}"
    );
    if vsn == Vsn::V1 {
        assert_eq!(copied, Err(FrameError::BinaryNotSupported));
        return;
    }
    let Ok(inbound) = copied else {
        return;
    };
    let text = |r: &Value| match r {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => panic!("a binary ref decoded to {other}"),
    };
    let (join_ref, msg_ref) = (text(&inbound.join_ref), text(&inbound.msg_ref));
    let Payload::Binary(payload) = &inbound.payload else {
        panic!("a binary frame decoded to a JSON payload");
    };
    let mut encoded = vec![
        0,
        join_ref.len() as u8,
        msg_ref.len() as u8,
        inbound.topic.len() as u8,
        inbound.event.len() as u8,
    ];
    for field in [&join_ref, &msg_ref, &inbound.topic, &inbound.event] {
        encoded.extend_from_slice(field.as_bytes());
    }
    encoded.extend_from_slice(payload);
    assert_eq!(
        encoded, data,
        "binary frame does not re-encode to its bytes"
    );
}

/// `frame_v1`: V1 text frames (and binary frames, refused on V1).
pub fn frame_v1(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        text_round_trip(Vsn::V1, text);
    }
    binary_checks(Vsn::V1, data);
}

/// `frame_v2`: V2 text frames and binary frames.
pub fn frame_v2(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        text_round_trip(Vsn::V2, text);
    }
    binary_checks(Vsn::V2, data);
}

/// `join_payload`: a frame as a client sends it, then what the server's
/// public helpers do with its parts: the topic's kind, a `vsn`, the join
/// payload's recovery fields and a `new_msg` body. The join-params and
/// `new_msg` payload parsers themselves are private (socket::router
/// `JoinParams::parse`, socket::events `Session::new_msg`); the checks
/// below mirror their documented rules around the public pieces.
pub fn join_payload(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vsn = if text.trim_start().starts_with('{') {
        Vsn::V1
    } else {
        Vsn::V2
    };
    // The vsn negotiation takes any query value.
    let _ = Vsn::negotiate(Some(text));
    let Ok(inbound) = frame::decode_text(vsn, text) else {
        return;
    };
    canonical_topic(&inbound.topic);
    let _ = confab::http::api::rooms::room_name_problem(&inbound.topic);
    let Payload::Json(Value::Object(map)) = &inbound.payload else {
        return;
    };
    // JoinParams: last_seq a non-negative integer or null, epoch a string or null.
    let last_seq = match map.get("last_seq") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or("last_seq"),
    };
    let epoch = match map.get("epoch") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("epoch"),
    };
    let _ = (last_seq, epoch);
    // new_msg: the body rules are public.
    if let Some(Value::String(body)) = map.get("body") {
        for max in [1, 4000] {
            for attachment in [false, true] {
                let problem = confab::chat::messages::body_problem(body, max, attachment);
                let too_long = body.chars().count() > max;
                let empty = body.trim().is_empty() && !attachment;
                assert_eq!(
                    problem.map(|(code, _)| code),
                    if empty {
                        Some("empty_body")
                    } else if too_long {
                        Some("body_too_long")
                    } else {
                        None
                    },
                    "body_problem({body:?}, {max}, {attachment})"
                );
            }
        }
    }
}

/// A topic the server accepts names exactly one topic: `dm:<id>` and
/// `user:<id>` must be written the way the server writes them (no `+`,
/// no leading zeros), or one conversation gets several hub topics and a
/// message posted on one alias is not broadcast to sockets on another.
pub fn canonical_topic(topic: &str) {
    use confab::chat::topic::TopicKind;
    match confab::chat::topic::parse(topic) {
        Some(TopicKind::Room(name)) => assert!(!name.is_empty(), "{topic:?}"),
        Some(TopicKind::Dm(id)) => assert_eq!(topic, format!("dm:{id}"), "alias of dm:{id}"),
        Some(TopicKind::User(id)) => {
            assert_eq!(topic, format!("user:{id}"), "alias of user:{id}")
        }
        None => {}
    }
}

/// Keys shared by the auth checks.
const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret-0123";

/// `auth_header`: `Authorization` header parsing and token verification
/// with arbitrary strings, and with arbitrary claims correctly signed (so
/// the claims parser is reached). Nothing may panic; a token that verifies
/// must have been signed with the key and be unexpired.
pub fn auth_header(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let keys = confab::auth::TokenKeys::new(SECRET, 60);
    if let Some(token) = confab::auth::bearer(Some(&text)) {
        assert!(!token.is_empty(), "bearer gave an empty token for {text:?}");
        assert!(
            text.to_ascii_lowercase().contains("bearer"),
            "bearer accepted {text:?}"
        );
        let _ = keys.verify(token);
        let _ = keys.verify_session(token);
    }
    let _ = confab::auth::bearer(None);
    if let Ok(claims) = keys.verify(&text) {
        panic!("an arbitrary string verified as a token: {text:?} -> {claims:?}");
    }
    assert!(keys.verify_session(&text).is_none(), "{text:?}");
    // The input as the claims of a token signed with the right key, under
    // an HS256 header and under an `alg` picked from the first byte.
    let alg = ["HS256", "none", "HS512", "RS256", "hs256", ""]
        [data.first().map_or(0, |b| *b as usize % 6)];
    for header in [json!({"alg": "HS256", "typ": "JWT"}), json!({"alg": alg})] {
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(data));
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
            jsonwebtoken::Algorithm::HS256,
        )
        .expect("HMAC");
        let token = format!("{input}.{signature}");
        if let Ok(claims) = keys.verify(&token) {
            assert_eq!(header["alg"], "HS256", "a token with alg {header} verified");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(claims.exp > now, "an expired token verified: {claims:?}");
            let _ = claims.user_id();
        }
        if let Some(session) = keys.verify_session(&token) {
            assert_eq!(header["alg"], "HS256");
            let _ = session.sid;
        }
    }
    // The origin check takes arbitrary header values.
    let (origin, host) = text.split_once('\n').unwrap_or((&text, "localhost"));
    for allowed in [
        vec![],
        vec!["*".to_string()],
        vec!["https://chat.example".to_string()],
    ] {
        let _ = confab::socket::upgrade::origin_allowed(&allowed, Some(origin), Some(host));
    }
}

/// Percent-encodes every byte but the unreserved ones.
fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `query`: query-string and path parsing. `pairs` never panics, never
/// yields more pairs than `&`-separated segments, `decode` inverts
/// percent-encoding exactly, and the router accepts any path.
pub fn query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs = confab::http::query::pairs(Some(&text));
    assert!(pairs.len() <= text.split('&').count());
    for (key, _) in &pairs {
        let _ = confab::http::query::last(&pairs, key);
    }
    let _ = confab::http::query::decode(&text);
    assert_eq!(
        confab::http::query::decode(&encode_component(&text)),
        text,
        "decode(encode(x)) != x"
    );
    // key=value pairs built from the input round-trip through pairs/last.
    let (key, value) = text.split_once('\u{0}').unwrap_or((&text, ""));
    if !key.is_empty() {
        let query = format!("a=1&{}={}&", encode_component(key), encode_component(value));
        let parsed = confab::http::query::pairs(Some(&query));
        assert_eq!(
            confab::http::query::last(&parsed, key),
            Some(value),
            "{query}"
        );
    }
    for method in ["GET", "POST", "DELETE", "HEAD", "PUT"] {
        if let Some(matched) = confab::http::router::find(method, &text) {
            assert!(matched.params.len() <= text.split('/').count());
        }
    }
}

/// WebSocket framing (`socket::ws_codec`): the first byte picks where the
/// rest is split; fed in two parts or whole, the decoder yields the same
/// messages and the same first error, and never panics.
pub fn ws_frames(data: &[u8]) {
    use confab::socket::ws_codec::{Decoder, WireError};
    use tokio_tungstenite::tungstenite::Message;
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let decode = |parts: &[&[u8]]| -> (Vec<Message>, Option<WireError>) {
        let mut decoder = Decoder::new(1024);
        let mut out = Vec::new();
        for part in parts {
            if let Err(e) = decoder.feed(part, &mut out) {
                return (out, Some(e));
            }
        }
        (out, None)
    };
    let at = usize::from(pick) % (input.len() + 1);
    let (head, tail) = input.split_at(at);
    assert_eq!(decode(&[input]), decode(&[head, tail]), "split at {at}");
}

//! Phoenix Channels frame codec.
//!
//! This module turns raw WebSocket frame contents into typed [`Inbound`]
//! messages and turns outgoing messages into frame text or bytes. It is pure:
//! it performs no I/O and knows nothing about sockets, channels or routing.
//!
//! Three wire formats are supported:
//!
//! * V1 JSON object frames (`vsn=1.0.0`, also the default when no `vsn` is
//!   given): `{"topic":..,"event":..,"payload":..,"ref":..}`.
//! * V2 JSON array frames (`vsn=2.0.0`):
//!   `[join_ref, ref, topic, event, payload]`.
//! * V2 binary frames, where the payload is raw bytes and each string field is
//!   prefixed by a one-byte length.
//!
//! Refs are treated as opaque JSON values and echoed exactly as received.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

/// Serializer version negotiated from the `vsn` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vsn {
    /// JSON object frames; no binary frames, no `join_ref` in server frames.
    V1,
    /// JSON array frames plus binary frames.
    V2,
}

impl Vsn {
    /// Picks the serializer for a `vsn` query value, with Phoenix semantics.
    ///
    /// A missing value means V1. A semantic version matching `~> 1.0.0`
    /// (`>= 1.0.0 and < 1.1.0`) selects V1, one matching `~> 2.0.0` selects
    /// V2. Anything else, including unparsable values, yields `None` and the
    /// connection must be refused.
    #[must_use]
    pub fn negotiate(vsn: Option<&str>) -> Option<Vsn> {
        let Some(text) = vsn else {
            return Some(Vsn::V1);
        };
        let version = SemVer::parse(text)?;
        // `~> X.0.0` is `>= X.0.0 and < X.1.0-0`: a pre-release of X.0.0
        // sorts below X.0.0 and is therefore excluded.
        if version.minor != 0 || (version.pre_release && version.patch == 0) {
            return None;
        }
        match version.major {
            1 => Some(Vsn::V1),
            2 => Some(Vsn::V2),
            _ => None,
        }
    }
}

/// The parts of a semantic version that serializer negotiation looks at.
struct SemVer {
    major: u64,
    minor: u64,
    patch: u64,
    pre_release: bool,
}

impl SemVer {
    /// Parses `MAJOR.MINOR.PATCH[-PRE][+BUILD]`; `None` when malformed.
    fn parse(text: &str) -> Option<SemVer> {
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (text, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        if !build.is_none_or(valid_identifiers) || !pre.is_none_or(valid_identifiers) {
            return None;
        }
        let mut parts = core.split('.');
        let major = parse_numeric(parts.next()?)?;
        let minor = parse_numeric(parts.next()?)?;
        let patch = parse_numeric(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(SemVer {
            major,
            minor,
            patch,
            pre_release: pre.is_some(),
        })
    }
}

/// A version number component: ASCII digits, no leading zero.
fn parse_numeric(part: &str) -> Option<u64> {
    let digits_only = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (part.len() > 1 && part.starts_with('0')) {
        return None;
    }
    part.parse().ok()
}

/// Dot-separated, non-empty identifiers of `[0-9A-Za-z-]`.
fn valid_identifiers(text: &str) -> bool {
    text.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// A `ref` or `join_ref` exactly as the client sent it (JSON string, number or
/// null). It is echoed unchanged in replies.
pub type Ref = serde_json::Value;

/// The payload of an inbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Payload of a text frame: any JSON value.
    Json(serde_json::Value),
    /// Payload of a binary frame: the raw bytes after the header.
    Binary(Bytes),
}

/// One decoded client→server message.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// Ref of the join that opened the channel instance, or `Null`.
    pub join_ref: Ref,
    /// Per-message ref chosen by the client, or `Null`.
    pub msg_ref: Ref,
    /// Topic, e.g. `room:lobby`.
    pub topic: String,
    /// Event name, e.g. `phx_join` or an application event.
    pub event: String,
    /// Message payload.
    pub payload: Payload,
}

/// Why a client frame could not be decoded. Every variant is a protocol
/// error; the connection should be closed with a non-1000 code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The text frame is not valid JSON.
    NotJson,
    /// A V2 text frame is not a JSON array.
    NotArray,
    /// A V1 text frame is not a JSON object.
    NotObject,
    /// A V2 text frame has fewer than five elements (the count is attached).
    TooFewElements(usize),
    /// A V1 text frame lacks a required key.
    MissingKey(&'static str),
    /// The topic is not a JSON string.
    BadTopic,
    /// The event is not a JSON string.
    BadEvent,
    /// A `ref` or `join_ref` is neither a string, a number nor null.
    BadRef,
    /// A binary frame arrived on a V1 connection.
    BinaryNotSupported,
    /// A binary frame has a kind byte other than 0 (push).
    BinaryKind(u8),
    /// A binary frame is shorter than its header announces.
    BinaryTruncated,
    /// A string field of a binary frame is not valid UTF-8.
    Utf8,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NotJson => f.write_str("text frame is not valid JSON"),
            FrameError::NotArray => f.write_str("V2 text frame is not a JSON array"),
            FrameError::NotObject => f.write_str("V1 text frame is not a JSON object"),
            FrameError::TooFewElements(n) => {
                write!(f, "V2 text frame has {n} elements, at least 5 are required")
            }
            FrameError::MissingKey(key) => write!(f, "V1 text frame is missing key `{key}`"),
            FrameError::BadTopic => f.write_str("topic is not a string"),
            FrameError::BadEvent => f.write_str("event is not a string"),
            FrameError::BadRef => f.write_str("ref or join_ref is not a string, number or null"),
            FrameError::BinaryNotSupported => {
                f.write_str("binary frames are not supported by the V1 serializer")
            }
            FrameError::BinaryKind(kind) => {
                write!(
                    f,
                    "unsupported binary frame kind {kind} (only 0, push, is accepted)"
                )
            }
            FrameError::BinaryTruncated => f.write_str("binary frame is truncated"),
            FrameError::Utf8 => f.write_str("binary frame string field is not valid UTF-8"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Decodes a client TEXT frame for the given serializer.
///
/// # Errors
///
/// Returns a [`FrameError`] when the text is not JSON, does not have the
/// shape the serializer expects, or has a field of the wrong type.
pub fn decode_text(vsn: Vsn, text: &str) -> Result<Inbound, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
    match vsn {
        Vsn::V1 => decode_v1(value),
        Vsn::V2 => decode_v2(value),
    }
}

/// Decodes `[join_ref, ref, topic, event, payload, ...]`.
fn decode_v2(value: Value) -> Result<Inbound, FrameError> {
    let Value::Array(items) = value else {
        return Err(FrameError::NotArray);
    };
    let len = items.len();
    let mut items = items.into_iter();
    let (Some(join_ref), Some(msg_ref), Some(topic), Some(event), Some(payload)) = (
        items.next(),
        items.next(),
        items.next(),
        items.next(),
        items.next(),
    ) else {
        return Err(FrameError::TooFewElements(len));
    };
    Ok(Inbound {
        join_ref: check_ref(join_ref)?,
        msg_ref: check_ref(msg_ref)?,
        topic: into_string(topic, FrameError::BadTopic)?,
        event: into_string(event, FrameError::BadEvent)?,
        payload: Payload::Json(payload),
    })
}

/// Decodes `{"topic":..,"event":..,"payload":..,"ref":..,"join_ref":..}`.
fn decode_v1(value: Value) -> Result<Inbound, FrameError> {
    let Value::Object(mut map) = value else {
        return Err(FrameError::NotObject);
    };
    let topic = into_string(take_key(&mut map, "topic")?, FrameError::BadTopic)?;
    let event = into_string(take_key(&mut map, "event")?, FrameError::BadEvent)?;
    let payload = Payload::Json(take_key(&mut map, "payload")?);
    let msg_ref = check_ref(take_key(&mut map, "ref")?)?;
    let join_ref = check_ref(map.remove("join_ref").unwrap_or(Value::Null))?;
    Ok(Inbound {
        join_ref,
        msg_ref,
        topic,
        event,
        payload,
    })
}

/// Removes a required key from a V1 frame object.
fn take_key(map: &mut Map<String, Value>, key: &'static str) -> Result<Value, FrameError> {
    map.remove(key).ok_or(FrameError::MissingKey(key))
}

/// Accepts a ref only when it is a string, a number or null.
fn check_ref(value: Value) -> Result<Ref, FrameError> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Null => Ok(value),
        _ => Err(FrameError::BadRef),
    }
}

/// Unwraps a JSON string, or fails with `err`.
fn into_string(value: Value, err: FrameError) -> Result<String, FrameError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(err),
    }
}

/// Kind byte of a binary push frame.
const KIND_PUSH: u8 = 0;
/// Kind byte of a binary reply frame.
const KIND_REPLY: u8 = 1;
/// Kind byte of a binary broadcast frame.
const KIND_BROADCAST: u8 = 2;

/// Decodes a client BINARY frame.
///
/// Only V2 supports binary frames, and clients only send kind 0 (push):
/// `0, join_ref_len, ref_len, topic_len, event_len, join_ref, ref, topic,
/// event, payload`. An empty `join_ref` or `ref` decodes to `Null`, any other to
/// a JSON string. The payload is copied out of `data`; see
/// [`decode_binary_bytes`] for a zero-copy variant.
///
/// # Errors
///
/// [`FrameError::BinaryNotSupported`] on V1, [`FrameError::BinaryKind`] for
/// a kind other than push, [`FrameError::BinaryTruncated`] when the frame is
/// shorter than its header says and [`FrameError::Utf8`] when a string field
/// is not UTF-8.
pub fn decode_binary(vsn: Vsn, data: &[u8]) -> Result<Inbound, FrameError> {
    let (header, payload) = parse_binary(vsn, data)?;
    Ok(header.into_inbound(Payload::Binary(Bytes::copy_from_slice(payload))))
}

/// Like [`decode_binary`], but the payload shares `data`'s buffer instead of
/// being copied.
///
/// # Errors
///
/// As for [`decode_binary`].
pub fn decode_binary_bytes(vsn: Vsn, data: Bytes) -> Result<Inbound, FrameError> {
    let (header, payload) = parse_binary(vsn, &data)?;
    let offset = data.len() - payload.len();
    Ok(header.into_inbound(Payload::Binary(data.slice(offset..))))
}

/// The string fields of a client binary push.
struct BinaryHeader<'a> {
    join_ref: &'a str,
    msg_ref: &'a str,
    topic: &'a str,
    event: &'a str,
}

impl BinaryHeader<'_> {
    /// Builds the inbound message, mapping empty refs to `Null`.
    fn into_inbound(self, payload: Payload) -> Inbound {
        Inbound {
            join_ref: binary_ref(self.join_ref),
            msg_ref: binary_ref(self.msg_ref),
            topic: self.topic.to_owned(),
            event: self.event.to_owned(),
            payload,
        }
    }
}

/// A ref from a binary frame: empty means absent.
fn binary_ref(text: &str) -> Ref {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

/// Splits a client binary push into its header fields and payload bytes.
fn parse_binary(vsn: Vsn, data: &[u8]) -> Result<(BinaryHeader<'_>, &[u8]), FrameError> {
    if vsn == Vsn::V1 {
        return Err(FrameError::BinaryNotSupported);
    }
    let (&kind, rest) = data.split_first().ok_or(FrameError::BinaryTruncated)?;
    if kind != KIND_PUSH {
        return Err(FrameError::BinaryKind(kind));
    }
    let (lens, mut rest) = rest
        .split_first_chunk::<4>()
        .ok_or(FrameError::BinaryTruncated)?;
    let mut field = |len: u8| -> Result<&str, FrameError> {
        let (bytes, tail) = rest
            .split_at_checked(usize::from(len))
            .ok_or(FrameError::BinaryTruncated)?;
        rest = tail;
        std::str::from_utf8(bytes).map_err(|_| FrameError::Utf8)
    };
    let header = BinaryHeader {
        join_ref: field(lens[0])?,
        msg_ref: field(lens[1])?,
        topic: field(lens[2])?,
        event: field(lens[3])?,
    };
    Ok((header, rest))
}

/// Encodes a server→client text frame and returns its text.
///
/// V2: `[join_ref, ref, topic, event, payload]`. V1:
/// `{"topic":..,"event":..,"payload":..,"ref":..}` — V1 frames never carry
/// `join_ref`. Refs are echoed as the JSON values they are.
///
/// `payload` must serialize to a JSON object. If it does not (or its
/// `Serialize` implementation fails, e.g. a map with non-string keys), `{}`
/// is sent in its place, so encoding itself never fails.
#[must_use]
pub fn encode_text<P: Serialize + ?Sized>(
    vsn: Vsn,
    join_ref: &Ref,
    msg_ref: &Ref,
    topic: &str,
    event: &str,
    payload: &P,
) -> String {
    let frame = TextFrame {
        vsn,
        join_ref,
        msg_ref,
        topic,
        event,
    };
    frame.encode(|buf| write_object(buf, payload))
}

/// Encodes a `phx_reply` frame whose payload is
/// `{"status": status, "response": response}`.
///
/// `response` must serialize to a JSON object; otherwise `{}` is sent in its
/// place, as for [`encode_text`].
#[must_use]
pub fn encode_reply<R: Serialize + ?Sized>(
    vsn: Vsn,
    join_ref: &Ref,
    msg_ref: &Ref,
    topic: &str,
    status: &str,
    response: &R,
) -> String {
    let frame = TextFrame {
        vsn,
        join_ref,
        msg_ref,
        topic,
        event: "phx_reply",
    };
    frame.encode(|buf| {
        buf.extend_from_slice(b"{\"status\":");
        write_json(buf, status, b"\"\"");
        buf.extend_from_slice(b",\"response\":");
        write_object(buf, response);
        buf.push(b'}');
    })
}

/// The envelope of an outgoing text frame; the payload is written separately.
struct TextFrame<'a> {
    vsn: Vsn,
    join_ref: &'a Ref,
    msg_ref: &'a Ref,
    topic: &'a str,
    event: &'a str,
}

impl TextFrame<'_> {
    /// Room reserved for the payload and the short refs of a typical frame.
    const SLACK: usize = 128;

    /// Writes the frame, calling `payload` to write the payload in place.
    fn encode(&self, payload: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::with_capacity(self.topic.len() + self.event.len() + Self::SLACK);
        match self.vsn {
            Vsn::V2 => {
                buf.push(b'[');
                write_json(&mut buf, self.join_ref, b"null");
                buf.push(b',');
                write_json(&mut buf, self.msg_ref, b"null");
                buf.push(b',');
                write_json(&mut buf, self.topic, b"\"\"");
                buf.push(b',');
                write_json(&mut buf, self.event, b"\"\"");
                buf.push(b',');
                payload(&mut buf);
                buf.push(b']');
            }
            Vsn::V1 => {
                buf.extend_from_slice(b"{\"topic\":");
                write_json(&mut buf, self.topic, b"\"\"");
                buf.extend_from_slice(b",\"event\":");
                write_json(&mut buf, self.event, b"\"\"");
                buf.extend_from_slice(b",\"payload\":");
                payload(&mut buf);
                buf.extend_from_slice(b",\"ref\":");
                write_json(&mut buf, self.msg_ref, b"null");
                buf.push(b'}');
            }
        }
        utf8_string(buf)
    }
}

/// Appends the compact JSON form of `value`, or `fallback` if serialization
/// fails (which cannot happen for strings and `Value`s written to a `Vec`).
fn write_json<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T, fallback: &[u8]) {
    let start = buf.len();
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.truncate(start);
        buf.extend_from_slice(fallback);
    }
}

/// Appends `value` as a JSON object, writing `{}` instead when it fails to
/// serialize or serializes to something other than an object.
fn write_object<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    let start = buf.len();
    let ok = serde_json::to_writer(&mut *buf, value).is_ok() && buf.get(start) == Some(&b'{');
    if !ok {
        buf.truncate(start);
        buf.extend_from_slice(b"{}");
    }
}

/// Converts serializer output to a `String`. `serde_json` only emits UTF-8,
/// so the lossy path is never taken in practice.
fn utf8_string(buf: Vec<u8>) -> String {
    String::from_utf8(buf)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// A V2 binary frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The named string field is longer than 255 bytes.
    FieldTooLong(&'static str),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::FieldTooLong(field) => {
                write!(f, "binary frame field `{field}` is longer than 255 bytes")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Encodes a V2 binary server push (kind 0):
/// `0, join_ref_len, topic_len, event_len, join_ref, topic, event, payload`.
///
/// Server pushes carry no ref. A `Null` `join_ref` is written as the empty
/// string, a number as its decimal text.
///
/// # Errors
///
/// [`EncodeError::FieldTooLong`] when a string field exceeds 255 bytes.
pub fn encode_binary_push(
    join_ref: &Ref,
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let join_ref = ref_text(join_ref);
    encode_binary(
        KIND_PUSH,
        &[("join_ref", &join_ref), ("topic", topic), ("event", event)],
        payload,
    )
}

/// Encodes a V2 binary reply (kind 1):
/// `1, join_ref_len, ref_len, topic_len, status_len, join_ref, ref, topic,
/// status, payload`, where the payload is the raw response.
///
/// `Null` refs are written as empty strings, numbers as their decimal text.
///
/// # Errors
///
/// [`EncodeError::FieldTooLong`] when a string field exceeds 255 bytes.
pub fn encode_binary_reply(
    join_ref: &Ref,
    msg_ref: &Ref,
    topic: &str,
    status: &str,
    payload: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let join_ref = ref_text(join_ref);
    let msg_ref = ref_text(msg_ref);
    encode_binary(
        KIND_REPLY,
        &[
            ("join_ref", &join_ref),
            ("ref", &msg_ref),
            ("topic", topic),
            ("status", status),
        ],
        payload,
    )
}

/// Encodes a V2 binary broadcast (kind 2):
/// `2, topic_len, event_len, topic, event, payload`.
///
/// # Errors
///
/// [`EncodeError::FieldTooLong`] when a string field exceeds 255 bytes.
pub fn encode_binary_broadcast(
    topic: &str,
    event: &str,
    payload: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    encode_binary(
        KIND_BROADCAST,
        &[("topic", topic), ("event", event)],
        payload,
    )
}

/// Writes a binary frame: the kind, one length byte per field, the fields,
/// then the payload. Fields are `(name, text)` pairs; the name is reported
/// when a field exceeds 255 bytes.
fn encode_binary(
    kind: u8,
    fields: &[(&'static str, &str)],
    payload: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let text_len: usize = fields.iter().map(|(_, text)| text.len()).sum();
    let mut out = Vec::with_capacity(1 + fields.len() + text_len + payload.len());
    out.push(kind);
    for (name, text) in fields {
        let len = u8::try_from(text.len()).map_err(|_| EncodeError::FieldTooLong(name))?;
        out.push(len);
    }
    for (_, text) in fields {
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(out)
}

/// The text of a ref inside a binary frame: strings as-is, `Null` as empty,
/// numbers (and any other value) as their JSON text.
fn ref_text(value: &Ref) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses hex with optional spaces and `|` separators.
    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| {
                let pair = std::str::from_utf8(pair).expect("ascii");
                u8::from_str_radix(pair, 16).expect("hex digit pair")
            })
            .collect()
    }

    fn v2(text: &str) -> Inbound {
        decode_text(Vsn::V2, text).expect("valid V2 frame")
    }

    fn v1(text: &str) -> Inbound {
        decode_text(Vsn::V1, text).expect("valid V1 frame")
    }

    fn s(text: &str) -> Ref {
        Value::String(text.to_owned())
    }

    // ---- Vsn::negotiate -------------------------------------------------

    #[test]
    fn negotiate_missing_is_v1() {
        assert_eq!(Vsn::negotiate(None), Some(Vsn::V1));
    }

    #[test]
    fn negotiate_v1_range() {
        assert_eq!(Vsn::negotiate(Some("1.0.0")), Some(Vsn::V1));
        assert_eq!(Vsn::negotiate(Some("1.0.5")), Some(Vsn::V1));
        assert_eq!(Vsn::negotiate(Some("1.0.5-rc.1")), Some(Vsn::V1));
        assert_eq!(Vsn::negotiate(Some("1.0.0+build.7")), Some(Vsn::V1));
    }

    #[test]
    fn negotiate_v2_range() {
        assert_eq!(Vsn::negotiate(Some("2.0.0")), Some(Vsn::V2));
        assert_eq!(Vsn::negotiate(Some("2.0.1")), Some(Vsn::V2));
    }

    #[test]
    fn negotiate_rejects_other_versions() {
        for vsn in [
            "2.1.0",
            "1.1.0",
            "3",
            "3.0.0",
            "0.9.0",
            "abc",
            "",
            "2.0",
            "2",
            "2.0.0.0",
            "02.0.0",
            "2.00.0",
            "v2.0.0",
            " 2.0.0",
            "2.0.0-",
            "2.0.0-rc",
            "1.0.0-beta",
            "2.0.x",
            "2.0.0+",
            "-1.0.0",
        ] {
            assert_eq!(Vsn::negotiate(Some(vsn)), None, "vsn {vsn:?}");
        }
    }

    // ---- V2 text decoding -----------------------------------------------

    #[test]
    fn v2_decodes_join() {
        let msg = v2(r#"["6","6","room:lobby","phx_join",{"foo":"bar"}]"#);
        assert_eq!(
            msg,
            Inbound {
                join_ref: s("6"),
                msg_ref: s("6"),
                topic: "room:lobby".into(),
                event: "phx_join".into(),
                payload: Payload::Json(json!({"foo": "bar"})),
            }
        );
    }

    #[test]
    fn v2_decodes_spec_examples() {
        let push = v2(r#"["6","16","room:lobby","say_ok",{"early":true}]"#);
        assert_eq!(push.join_ref, s("6"));
        assert_eq!(push.msg_ref, s("16"));
        assert_eq!(push.event, "say_ok");
        assert_eq!(push.payload, Payload::Json(json!({"early": true})));

        let leave = v2(r#"["27","28","room:two","phx_leave",{}]"#);
        assert_eq!(leave.topic, "room:two");
        assert_eq!(leave.event, "phx_leave");
        assert_eq!(leave.payload, Payload::Json(json!({})));

        let heartbeat = v2(r#"[null,"7","phoenix","heartbeat",{}]"#);
        assert_eq!(heartbeat.join_ref, Value::Null);
        assert_eq!(heartbeat.msg_ref, s("7"));
        assert_eq!(heartbeat.topic, "phoenix");
        assert_eq!(heartbeat.event, "heartbeat");
    }

    #[test]
    fn v2_ignores_extra_elements() {
        let msg = v2(r#"["1","2","t","e",{"a":1},"extra",[1,2],{"x":null}]"#);
        assert_eq!(msg.msg_ref, s("2"));
        assert_eq!(msg.payload, Payload::Json(json!({"a": 1})));
    }

    #[test]
    fn v2_keeps_numeric_refs_and_any_payload() {
        let msg = v2(r#"[3,4.5,"t","e",[1,"two"]]"#);
        assert_eq!(msg.join_ref, json!(3));
        assert_eq!(msg.msg_ref, json!(4.5));
        assert_eq!(msg.payload, Payload::Json(json!([1, "two"])));
    }

    #[test]
    fn v2_errors() {
        let cases: &[(&str, FrameError)] = &[
            ("", FrameError::NotJson),
            ("[1,2", FrameError::NotJson),
            (r#"["6","6","t","e",{}] x"#, FrameError::NotJson),
            (r#"{"topic":"t"}"#, FrameError::NotArray),
            ("\"text\"", FrameError::NotArray),
            ("42", FrameError::NotArray),
            ("[]", FrameError::TooFewElements(0)),
            (r#"["6","6","t","e"]"#, FrameError::TooFewElements(4)),
            (r#"["6","6",7,"e",{}]"#, FrameError::BadTopic),
            (r#"["6","6",null,"e",{}]"#, FrameError::BadTopic),
            (r#"["6","6","t",["e"],{}]"#, FrameError::BadEvent),
            (r#"[true,"6","t","e",{}]"#, FrameError::BadRef),
            (r#"["6",{"r":1},"t","e",{}]"#, FrameError::BadRef),
            (r#"["6",[1],"t","e",{}]"#, FrameError::BadRef),
        ];
        for (text, err) in cases {
            assert_eq!(decode_text(Vsn::V2, text), Err(err.clone()), "frame {text}");
        }
    }

    #[test]
    fn deeply_nested_json_is_an_error_not_a_crash() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(decode_text(Vsn::V2, &text), Err(FrameError::NotJson));
    }

    // ---- V1 text decoding -----------------------------------------------

    #[test]
    fn v1_decodes_spec_example() {
        let msg = v1(r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}"#);
        assert_eq!(
            msg,
            Inbound {
                join_ref: Value::Null,
                msg_ref: s("1"),
                topic: "room:lobby".into(),
                event: "phx_join".into(),
                payload: Payload::Json(json!({})),
            }
        );
    }

    #[test]
    fn v1_optional_join_ref_and_null_ref() {
        let msg = v1(r#"{"ref":null,"payload":{"a":1},"event":"e","topic":"t","join_ref":"9"}"#);
        assert_eq!(msg.join_ref, s("9"));
        assert_eq!(msg.msg_ref, Value::Null);
        assert_eq!(msg.payload, Payload::Json(json!({"a": 1})));

        let numeric = v1(r#"{"topic":"t","event":"e","payload":{},"ref":12,"join_ref":11}"#);
        assert_eq!(numeric.msg_ref, json!(12));
        assert_eq!(numeric.join_ref, json!(11));
    }

    #[test]
    fn v1_errors() {
        let cases: &[(&str, FrameError)] = &[
            ("nope", FrameError::NotJson),
            (r#"["6","6","t","e",{}]"#, FrameError::NotObject),
            ("null", FrameError::NotObject),
            (
                r#"{"event":"e","payload":{},"ref":"1"}"#,
                FrameError::MissingKey("topic"),
            ),
            (
                r#"{"topic":"t","payload":{},"ref":"1"}"#,
                FrameError::MissingKey("event"),
            ),
            (
                r#"{"topic":"t","event":"e","ref":"1"}"#,
                FrameError::MissingKey("payload"),
            ),
            (
                r#"{"topic":"t","event":"e","payload":{}}"#,
                FrameError::MissingKey("ref"),
            ),
            (
                r#"{"topic":1,"event":"e","payload":{},"ref":"1"}"#,
                FrameError::BadTopic,
            ),
            (
                r#"{"topic":"t","event":false,"payload":{},"ref":"1"}"#,
                FrameError::BadEvent,
            ),
            (
                r#"{"topic":"t","event":"e","payload":{},"ref":[]}"#,
                FrameError::BadRef,
            ),
            (
                r#"{"topic":"t","event":"e","payload":{},"ref":"1","join_ref":{}}"#,
                FrameError::BadRef,
            ),
        ];
        for (text, err) in cases {
            assert_eq!(decode_text(Vsn::V1, text), Err(err.clone()), "frame {text}");
        }
    }

    // ---- binary decoding ------------------------------------------------

    #[test]
    fn binary_decodes_observed_client_push() {
        let data = hex("00 01 01 08 06 | 33 | 34 | 726f6f6d3a62696e | 75706c6f6164 | cafe");
        let msg = decode_binary(Vsn::V2, &data).expect("valid push");
        assert_eq!(
            msg,
            Inbound {
                join_ref: s("3"),
                msg_ref: s("4"),
                topic: "room:bin".into(),
                event: "upload".into(),
                payload: Payload::Binary(Bytes::from_static(&[0xca, 0xfe])),
            }
        );
        let shared = decode_binary_bytes(Vsn::V2, Bytes::from(data)).expect("valid push");
        assert_eq!(shared, msg);
    }

    #[test]
    fn binary_empty_refs_and_payload() {
        let mut data = vec![0, 0, 0, 1, 1];
        data.extend_from_slice(b"te");
        let msg = decode_binary(Vsn::V2, &data).expect("valid push");
        assert_eq!(msg.join_ref, Value::Null);
        assert_eq!(msg.msg_ref, Value::Null);
        assert_eq!(msg.topic, "t");
        assert_eq!(msg.event, "e");
        assert_eq!(msg.payload, Payload::Binary(Bytes::new()));
    }

    #[test]
    fn binary_errors() {
        let push = hex("00 01 01 08 06 33 34 726f6f6d3a62696e 75706c6f6164 cafe");
        assert_eq!(
            decode_binary(Vsn::V1, &push),
            Err(FrameError::BinaryNotSupported)
        );
        assert_eq!(
            decode_binary(Vsn::V2, &[]),
            Err(FrameError::BinaryTruncated)
        );
        assert_eq!(
            decode_binary(Vsn::V2, &[1, 0, 0, 0, 0]),
            Err(FrameError::BinaryKind(1))
        );
        assert_eq!(
            decode_binary(Vsn::V2, &[0xff]),
            Err(FrameError::BinaryKind(0xff))
        );
        assert_eq!(
            decode_binary(Vsn::V2, &[0, 1, 1, 1]),
            Err(FrameError::BinaryTruncated)
        );
        // Header announces 16 bytes of fields; cut the frame inside them.
        for cut in 5..=15 {
            assert_eq!(
                decode_binary(Vsn::V2, &push[..cut]),
                Err(FrameError::BinaryTruncated),
                "cut at {cut}"
            );
        }
        assert_eq!(
            decode_binary(Vsn::V2, &[0, 0, 0, 1, 1, 0xff, b'e']),
            Err(FrameError::Utf8)
        );
        assert_eq!(
            decode_binary(Vsn::V2, &[0, 0, 0, 1, 2, b't', 0xe2, 0x82]),
            Err(FrameError::Utf8)
        );
    }

    // ---- text encoding --------------------------------------------------

    #[test]
    fn v2_encodes_spec_examples() {
        let null = Value::Null;
        let cases = [
            (
                encode_reply(
                    Vsn::V2,
                    &s("6"),
                    &s("6"),
                    "room:lobby",
                    "ok",
                    &json!({"welcome": true}),
                ),
                r#"["6","6","room:lobby","phx_reply",{"status":"ok","response":{"welcome":true}}]"#,
            ),
            (
                encode_reply(
                    Vsn::V2,
                    &s("6"),
                    &s("17"),
                    "room:lobby",
                    "error",
                    &json!({"why": "nope"}),
                ),
                r#"["6","17","room:lobby","phx_reply",{"status":"error","response":{"why":"nope"}}]"#,
            ),
            (
                encode_text(
                    Vsn::V2,
                    &s("6"),
                    &null,
                    "room:lobby",
                    "server_push",
                    &json!({"n": 1}),
                ),
                r#"["6",null,"room:lobby","server_push",{"n":1}]"#,
            ),
            (
                encode_text(
                    Vsn::V2,
                    &null,
                    &null,
                    "room:lobby",
                    "new_msg",
                    &json!({"body": "hi"}),
                ),
                r#"[null,null,"room:lobby","new_msg",{"body":"hi"}]"#,
            ),
            (
                encode_reply(Vsn::V2, &null, &s("7"), "phoenix", "ok", &json!({})),
                r#"[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]"#,
            ),
            (
                encode_text(
                    Vsn::V2,
                    &s("24"),
                    &s("24"),
                    "room:lobby",
                    "phx_close",
                    &json!({}),
                ),
                r#"["24","24","room:lobby","phx_close",{}]"#,
            ),
            (
                encode_text(
                    Vsn::V2,
                    &s("6"),
                    &s("6"),
                    "room:lobby",
                    "phx_error",
                    &json!({"reason": "channel_crash"}),
                ),
                r#"["6","6","room:lobby","phx_error",{"reason":"channel_crash"}]"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn v1_encodes_spec_examples() {
        let null = Value::Null;
        assert_eq!(
            encode_reply(Vsn::V1, &s("1"), &s("1"), "room:lobby", "ok", &json!({})),
            r#"{"topic":"room:lobby","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"1"}"#
        );
        assert_eq!(
            encode_text(
                Vsn::V1,
                &null,
                &null,
                "room:lobby",
                "new_msg",
                &json!({"body": "hi"})
            ),
            r#"{"topic":"room:lobby","event":"new_msg","payload":{"body":"hi"},"ref":null}"#
        );
        assert_eq!(
            encode_text(
                Vsn::V1,
                &s("1"),
                &s("1"),
                "room:lobby",
                "phx_close",
                &json!({})
            ),
            r#"{"topic":"room:lobby","event":"phx_close","payload":{},"ref":"1"}"#
        );
    }

    #[test]
    fn v1_never_emits_join_ref() {
        let text = encode_text(Vsn::V1, &s("J42"), &s("r"), "t", "e", &json!({}));
        assert!(!text.contains("join_ref"), "{text}");
        assert!(!text.contains("J42"), "{text}");
        let obj: Map<String, Value> = serde_json::from_str(&text).expect("object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["event", "payload", "ref", "topic"]);
    }

    #[test]
    fn numeric_refs_are_echoed_as_numbers() {
        let msg = v2(r#"[5,6,"room:x","ping",{}]"#);
        let reply = encode_reply(
            Vsn::V2,
            &msg.join_ref,
            &msg.msg_ref,
            &msg.topic,
            "ok",
            &json!({}),
        );
        assert_eq!(
            reply,
            r#"[5,6,"room:x","phx_reply",{"status":"ok","response":{}}]"#
        );

        let msg = v1(r#"{"topic":"t","event":"e","payload":{},"ref":17}"#);
        let reply = encode_reply(
            Vsn::V1,
            &msg.join_ref,
            &msg.msg_ref,
            &msg.topic,
            "ok",
            &json!({}),
        );
        assert_eq!(
            reply,
            r#"{"topic":"t","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":17}"#
        );
    }

    #[test]
    fn payload_accepts_serializable_structs() {
        #[derive(Serialize)]
        struct Msg<'a> {
            body: &'a str,
            n: u32,
        }
        let text = encode_text(
            Vsn::V2,
            &Value::Null,
            &Value::Null,
            "t",
            "e",
            &Msg { body: "hi", n: 2 },
        );
        assert_eq!(text, r#"[null,null,"t","e",{"body":"hi","n":2}]"#);

        let raw: &Value = &json!({"k": [1, 2]});
        let text = encode_reply(Vsn::V2, &Value::Null, &s("1"), "t", "weird", raw);
        assert_eq!(
            text,
            r#"[null,"1","t","phx_reply",{"status":"weird","response":{"k":[1,2]}}]"#
        );
    }

    #[test]
    fn non_object_or_failing_payload_becomes_empty_object() {
        use std::collections::BTreeMap;
        let null = Value::Null;
        assert_eq!(
            encode_text(Vsn::V2, &null, &null, "t", "e", &json!([1, 2])),
            r#"[null,null,"t","e",{}]"#
        );
        assert_eq!(
            encode_text(Vsn::V2, &null, &null, "t", "e", "string"),
            r#"[null,null,"t","e",{}]"#
        );
        // Map keys that are not strings make serde_json fail.
        let mut bad = BTreeMap::new();
        bad.insert(vec![1u8], 1);
        assert_eq!(
            encode_text(Vsn::V1, &null, &null, "t", "e", &bad),
            r#"{"topic":"t","event":"e","payload":{},"ref":null}"#
        );
        assert_eq!(
            encode_reply(Vsn::V2, &null, &null, "t", "ok", &bad),
            r#"[null,null,"t","phx_reply",{"status":"ok","response":{}}]"#
        );
    }

    #[test]
    fn unicode_and_escapes_round_trip() {
        let topic = "room:\"quoted\"\\back/slash\n\t\u{1}ünï©ødé 🦀";
        let event = "ev\u{7f}\r\u{2028}日本";
        let status = "st\"atus";
        for vsn in [Vsn::V1, Vsn::V2] {
            let text = encode_text(vsn, &s("1"), &s("2"), topic, event, &json!({"k": topic}));
            let msg = decode_text(vsn, &text).expect("own output decodes");
            assert_eq!(msg.topic, topic);
            assert_eq!(msg.event, event);
            assert_eq!(msg.msg_ref, s("2"));
            assert_eq!(msg.payload, Payload::Json(json!({"k": topic})));

            let reply = encode_reply(vsn, &s("1"), &s("2"), topic, status, &json!({}));
            let msg = decode_text(vsn, &reply).expect("own reply decodes");
            assert_eq!(msg.topic, topic);
            assert_eq!(msg.event, "phx_reply");
            assert_eq!(
                msg.payload,
                Payload::Json(json!({"status": status, "response": {}}))
            );
        }
    }

    #[test]
    fn v2_round_trip_preserves_refs() {
        for (join_ref, msg_ref) in [
            (s("6"), s("16")),
            (Value::Null, s("7")),
            (json!(1), json!(-2)),
            (json!(1.5), Value::Null),
        ] {
            let text = encode_text(Vsn::V2, &join_ref, &msg_ref, "t", "e", &json!({}));
            let msg = v2(&text);
            assert_eq!(msg.join_ref, join_ref);
            assert_eq!(msg.msg_ref, msg_ref);
        }
    }

    // ---- binary encoding ------------------------------------------------

    #[test]
    fn binary_encodes_observed_push() {
        let got = encode_binary_push(&s("3"), "room:bin", "bin_push", &[1, 2, 3]);
        let want = hex("00 01 08 08 | 33 | 726f6f6d3a62696e | 62696e5f70757368 | 010203");
        assert_eq!(got, Ok(want));
    }

    #[test]
    fn binary_encodes_observed_reply() {
        let got = encode_binary_reply(&s("3"), &s("4"), "room:bin", "ok", &[0xde, 0xad]);
        let want = hex("01 01 01 08 02 | 33 | 34 | 726f6f6d3a62696e | 6f6b | dead");
        assert_eq!(got, Ok(want));
    }

    #[test]
    fn binary_encodes_observed_broadcast() {
        let got = encode_binary_broadcast("room:bin", "bin_bcast", &[9, 9]);
        let want = hex("02 08 09 | 726f6f6d3a62696e | 62696e5f6263617374 | 0909");
        assert_eq!(got, Ok(want));
    }

    #[test]
    fn binary_null_and_numeric_refs() {
        assert_eq!(
            encode_binary_push(&Value::Null, "t", "e", b"p"),
            Ok(b"\x00\x00\x01\x01tep".to_vec())
        );
        assert_eq!(
            encode_binary_reply(&json!(12), &Value::Null, "t", "ok", b""),
            Ok(b"\x01\x02\x00\x01\x0212tok".to_vec())
        );
        assert_eq!(
            encode_binary_reply(&json!(7), &json!(345), "t", "ok", b"x"),
            Ok(b"\x01\x01\x03\x01\x027345tokx".to_vec())
        );
    }

    #[test]
    fn binary_decodes_unicode_fields() {
        let fields = ["9", "10", "r:ü🦀", "ev\"t"];
        let mut data = vec![KIND_PUSH];
        data.extend(
            fields
                .iter()
                .map(|f| u8::try_from(f.len()).expect("short field")),
        );
        for field in fields {
            data.extend_from_slice(field.as_bytes());
        }
        data.extend_from_slice(&[0, 255]);
        let msg = decode_binary(Vsn::V2, &data).expect("valid push");
        assert_eq!(msg.join_ref, s("9"));
        assert_eq!(msg.msg_ref, s("10"));
        assert_eq!(msg.topic, "r:ü🦀");
        assert_eq!(msg.event, "ev\"t");
        assert_eq!(msg.payload, Payload::Binary(Bytes::from_static(&[0, 255])));
    }

    #[test]
    fn binary_fields_over_255_bytes_are_refused() {
        let max = "a".repeat(255);
        let long = "a".repeat(256);
        // Two-byte characters: 128 of them are 256 bytes.
        let long_utf8 = "é".repeat(128);
        let null = Value::Null;

        let ok = encode_binary_push(&s(&max), &max, &max, b"").expect("255 bytes fit");
        assert_eq!(&ok[..4], &[0, 255, 255, 255]);
        assert_eq!(ok.len(), 4 + 3 * 255);

        assert_eq!(
            encode_binary_push(&s(&long), "t", "e", b""),
            Err(EncodeError::FieldTooLong("join_ref"))
        );
        assert_eq!(
            encode_binary_push(&null, &long_utf8, "e", b""),
            Err(EncodeError::FieldTooLong("topic"))
        );
        assert_eq!(
            encode_binary_push(&null, "t", &long, b""),
            Err(EncodeError::FieldTooLong("event"))
        );
        assert_eq!(
            encode_binary_reply(&null, &s(&long), "t", "ok", b""),
            Err(EncodeError::FieldTooLong("ref"))
        );
        assert_eq!(
            encode_binary_reply(&null, &null, "t", &long, b""),
            Err(EncodeError::FieldTooLong("status"))
        );
        assert_eq!(
            encode_binary_broadcast(&long, "e", b""),
            Err(EncodeError::FieldTooLong("topic"))
        );
        assert_eq!(
            encode_binary_broadcast("t", &long, b""),
            Err(EncodeError::FieldTooLong("event"))
        );
    }

    // ---- error messages -------------------------------------------------

    #[test]
    fn errors_display_human_text() {
        assert_eq!(
            FrameError::TooFewElements(3).to_string(),
            "V2 text frame has 3 elements, at least 5 are required"
        );
        assert_eq!(
            FrameError::MissingKey("ref").to_string(),
            "V1 text frame is missing key `ref`"
        );
        assert_eq!(
            EncodeError::FieldTooLong("topic").to_string(),
            "binary frame field `topic` is longer than 255 bytes"
        );
        let all = [
            FrameError::NotJson,
            FrameError::NotArray,
            FrameError::NotObject,
            FrameError::TooFewElements(0),
            FrameError::MissingKey("topic"),
            FrameError::BadTopic,
            FrameError::BadEvent,
            FrameError::BadRef,
            FrameError::BinaryNotSupported,
            FrameError::BinaryKind(9),
            FrameError::BinaryTruncated,
            FrameError::Utf8,
        ];
        for err in all {
            let boxed: Box<dyn std::error::Error> = Box::new(err);
            assert!(!boxed.to_string().is_empty());
        }
    }
}

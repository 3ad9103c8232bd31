//! Field extraction from V2 JSON frames without a full JSON parse.
//!
//! A server frame is `[join_ref, ref, topic, event, payload]`. [`frame`]
//! walks the first four elements (each `null`, a string or a number) and
//! hands back the payload as a slice. [`u64_field`], [`str_field`] and
//! [`stamp`] then find one key by a byte search. The search matches
//! `"key"` followed by `:` only: inside a JSON string every `"` is escaped
//! (`\"`), so the bytes `key"` can never occur in string content and a
//! message body cannot fake a key. Nested objects with the same key would
//! be found first, so these helpers are used only on payloads whose layout
//! is known (replies, `new_msg` message objects); the first match wins.

/// The envelope of one V2 frame; strings are raw (escapes not decoded).
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub join_ref: Option<&'a str>,
    pub msg_ref: Option<&'a str>,
    pub topic: &'a str,
    pub event: &'a str,
    pub payload: &'a str,
}

/// The send stamp a publisher put at the start of a body:
/// `t=<micros> p=<publisher> n=<counter>`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Stamp {
    pub t: u64,
    pub p: u64,
    pub n: u64,
}

/// Splits a V2 frame into its envelope and payload; `None` if it is not one.
pub fn frame(text: &str) -> Option<Frame<'_>> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    let (join_ref, next) = element(text, i)?;
    i = comma(b, next)?;
    let (msg_ref, next) = element(text, i)?;
    i = comma(b, next)?;
    let (topic, next) = element(text, i)?;
    i = comma(b, next)?;
    let (event, next) = element(text, i)?;
    i = comma(b, next)?;
    let end = b.iter().rposition(|&c| c == b']')?;
    if end < i {
        return None;
    }
    Some(Frame {
        join_ref,
        msg_ref,
        topic: topic?,
        event: event?,
        payload: text[i..end].trim(),
    })
}

/// The unsigned integer value of the first `"key":` in `json`.
pub fn u64_field(json: &str, key: &str) -> Option<u64> {
    let b = json.as_bytes();
    let at = value_at(b, key)?;
    digits(b, at).map(|(n, _)| n)
}

/// The raw string value of the first `"key":` in `json` (escapes kept).
pub fn str_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let b = json.as_bytes();
    let at = value_at(b, key)?;
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let end = string_end(b, at + 1)?;
    Some(&json[at + 1..end])
}

/// The publisher stamp at the start of the `"body"` string of a message.
pub fn stamp(json: &str) -> Option<Stamp> {
    let b = json.as_bytes();
    let at = value_at(b, "body")?;
    let rest = b.get(at..)?;
    if !rest.starts_with(b"\"t=") {
        return None;
    }
    let (t, i) = digits(b, at + 3)?;
    let i = expect(b, i, b" p=")?;
    let (p, i) = digits(b, i)?;
    let i = expect(b, i, b" n=")?;
    let (n, _) = digits(b, i)?;
    Some(Stamp { t, p, n })
}

/// Whether a `phx_reply` payload has `"status":"ok"`.
pub fn is_ok(payload: &str) -> bool {
    str_field(payload, "status") == Some("ok")
}

/// The `reason` of an error reply, or a placeholder.
pub fn reason(payload: &str) -> String {
    str_field(payload, "reason")
        .or_else(|| str_field(payload, "status"))
        .unwrap_or("unknown")
        .to_string()
}

/// Index just past `"key"` and its colon, at the value.
fn value_at(b: &[u8], key: &str) -> Option<usize> {
    let k = key.as_bytes();
    let mut from = 0;
    while let Some(pos) = find(&b[from..], k) {
        let start = from + pos;
        let end = start + k.len();
        if start > 0 && b[start - 1] == b'"' && b.get(end) == Some(&b'"') {
            let colon = skip_ws(b, end + 1);
            if b.get(colon) == Some(&b':') {
                return Some(skip_ws(b, colon + 1));
            }
        }
        from = start + 1;
    }
    None
}

/// First index of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut i = 0;
    while i <= last_start {
        let p = hay[i..=last_start].iter().position(|&c| c == first)?;
        let s = i + p;
        if &hay[s..s + needle.len()] == needle {
            return Some(s);
        }
        i = s + 1;
    }
    None
}

/// One envelope element: `null` (None), a string (its raw content) or a
/// bare number (its text); returns the index after it.
fn element(text: &str, i: usize) -> Option<(Option<&str>, usize)> {
    let b = text.as_bytes();
    let i = skip_ws(b, i);
    match *b.get(i)? {
        b'"' => {
            let end = string_end(b, i + 1)?;
            Some((Some(&text[i + 1..end]), end + 1))
        }
        b'n' if b[i..].starts_with(b"null") => Some((None, i + 4)),
        c if c == b'-' || c.is_ascii_digit() => {
            let len = b[i..]
                .iter()
                .position(|&c| !(c == b'-' || c == b'.' || c.is_ascii_alphanumeric()))?;
            Some((Some(&text[i..i + len]), i + len))
        }
        _ => None,
    }
}

/// Index of the closing quote of a string whose content starts at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
}

fn comma(b: &[u8], i: usize) -> Option<usize> {
    let i = skip_ws(b, i);
    (b.get(i) == Some(&b',')).then_some(i + 1)
}

fn expect(b: &[u8], i: usize, lit: &[u8]) -> Option<usize> {
    b.get(i..)?.starts_with(lit).then_some(i + lit.len())
}

fn digits(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let mut n: u64 = 0;
    let mut j = i;
    while let Some(&c) = b.get(j) {
        if !c.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        j += 1;
    }
    (j > i).then_some((n, j))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope() {
        let f =
            frame(r#"["6","7","room:lobby","phx_reply",{"status":"ok","response":{}}]"#).unwrap();
        assert_eq!(f.join_ref, Some("6"));
        assert_eq!(f.msg_ref, Some("7"));
        assert_eq!(f.topic, "room:lobby");
        assert_eq!(f.event, "phx_reply");
        assert_eq!(f.payload, r#"{"status":"ok","response":{}}"#);
        assert!(is_ok(f.payload));
        let f = frame(r#" [ null , 12 , "phoenix" , "phx_reply" , {"status":"error"} ] "#).unwrap();
        assert_eq!(f.join_ref, None);
        assert_eq!(f.msg_ref, Some("12"));
        assert_eq!(f.payload, r#"{"status":"error"}"#);
        assert!(!is_ok(f.payload));
        assert!(frame(r#"{"topic":"x"}"#).is_none());
        assert!(frame(r#"["1","2","t"]"#).is_none());
        assert!(frame(r#"[null,null,null,"e",{}]"#).is_none());
    }

    #[test]
    fn broadcast_fields() {
        let text = r#"[null,null,"room:b","new_msg",{"id":9,"topic":"room:b","seq":42,"user":{"id":1,"username":"seq"},"body":"t=1234 p=3 n=77 xxx \"seq\":5","inserted_at":"2025"}]"#;
        let f = frame(text).unwrap();
        assert_eq!(f.event, "new_msg");
        assert_eq!(u64_field(f.payload, "seq"), Some(42));
        assert_eq!(u64_field(f.payload, "id"), Some(9));
        assert_eq!(
            stamp(f.payload),
            Some(Stamp {
                t: 1234,
                p: 3,
                n: 77
            })
        );
        assert_eq!(str_field(f.payload, "inserted_at"), Some("2025"));
    }

    #[test]
    fn keys_inside_strings_do_not_match() {
        let payload = r#"{"body":"\"seq\": 7 and \"last_seq\":8","seq":3}"#;
        assert_eq!(u64_field(payload, "seq"), Some(3));
        assert_eq!(u64_field(payload, "last_seq"), None);
        assert_eq!(stamp(r#"{"body":"hello t=1 p=2 n=3"}"#), None);
        assert_eq!(stamp(r#"{"body":"t=1 p=2"}"#), None);
    }

    #[test]
    fn reasons() {
        let payload = r#"{"status":"error","response":{"reason":"rate_limited"}}"#;
        assert_eq!(reason(payload), "rate_limited");
        assert_eq!(reason(r#"{"status":"error"}"#), "error");
    }
}

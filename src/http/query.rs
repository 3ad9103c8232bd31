//! Query-string decoding the way Plug does it for Phoenix: `&`-separated
//! `key=value` pairs, percent-decoding with `+` as space, empty segments
//! ignored, and the LAST value winning for a repeated key.

/// Decoded `(key, value)` pairs in order.
pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// The last value of `key`, if present.
pub fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Percent-decodes one component (`+` is a space); invalid escapes stay as they are.
pub fn decode(component: &str) -> String {
    unescape(component, true)
}

/// Percent-decodes a URL part where `+` is itself (a URL's user name).
pub fn decode_percent(component: &str) -> String {
    unescape(component, false)
}

fn unescape(component: &str, plus_is_space: bool) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_plug() {
        let p = pairs(Some(
            "token=a%2Bb&&vsn=2.0.0&nested%5Ba%5D=1&token=last&x=a+b&bad=%zz%4",
        ));
        assert_eq!(last(&p, "token"), Some("last"));
        assert_eq!(last(&p, "vsn"), Some("2.0.0"));
        assert_eq!(last(&p, "nested[a]"), Some("1"));
        assert_eq!(last(&p, "x"), Some("a b"));
        assert_eq!(last(&p, "bad"), Some("%zz%4"));
        assert_eq!(last(&p, "missing"), None);
        assert_eq!(decode("a%2Bb"), "a+b");
        assert_eq!(decode("%e2%9c%93"), "✓");
        assert!(pairs(None).is_empty());
    }
}

//! permessage-deflate (RFC 7692): negotiating it in the handshake, and
//! compressing and inflating one message at a time.
//!
//! The server always asks for `server_no_context_takeover` and
//! `client_no_context_takeover`, so every message is compressed on its own
//! and no LZ77 window outlives a message: a socket keeps no compression
//! state at all. The compressor and decompressor are kept per worker thread
//! and reset for each message.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::ws_codec::WireError;

/// The extension's name in `Sec-WebSocket-Extensions`.
const NAME: &str = "permessage-deflate";
/// What a sync flush ends with; left off on the wire (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];
/// The largest LZ77 window, in bits.
const MAX_WINDOW_BITS: u8 = 15;

/// What was agreed for one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The window the client can inflate with (`server_max_window_bits`).
    /// The compressor always uses the full window, so only messages no
    /// longer than the window are compressed: no back-reference can then
    /// reach further.
    pub server_window_bits: u8,
}

impl Agreed {
    /// Whether a message of `len` bytes may go out compressed.
    pub fn compresses(&self, len: usize) -> bool {
        len <= 1usize << self.server_window_bits
    }
}

/// Picks the first acceptable permessage-deflate offer in the client's
/// `Sec-WebSocket-Extensions` (all its header lines joined with commas), and
/// returns it with the response header value. Offers with unknown, repeated
/// or invalid parameters are declined (RFC 7692 §7.1).
pub fn negotiate(offers: &str) -> Option<(Agreed, String)> {
    offers.split(',').find_map(accept)
}

/// One offer, accepted or declined.
fn accept(offer: &str) -> Option<(Agreed, String)> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut server_bits = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(value)) => server_bits = Some(window_bits(value)?),
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(value)) => {
                window_bits(value)?;
            }
            _ => return None,
        }
        seen.push(name);
    }
    // A server may ask for client_no_context_takeover unasked (§7.1.1.2);
    // it must answer server_max_window_bits with the same or a smaller
    // value, and client_max_window_bits is left out: any window inflates.
    let mut response = format!("{NAME}; server_no_context_takeover; client_no_context_takeover");
    if let Some(bits) = server_bits {
        response.push_str(&format!("; server_max_window_bits={bits}"));
    }
    let agreed = Agreed {
        server_window_bits: server_bits.unwrap_or(MAX_WINDOW_BITS),
    };
    Some((agreed, response))
}

/// A window size parameter: 8 to 15, digits only.
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

thread_local! {
    static COMPRESSOR: RefCell<Option<Compress>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Compresses one whole message; `None` if the compressor fails (the
/// message then goes out uncompressed).
pub fn deflate(payload: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compress = cell.get_or_insert_with(|| Compress::new(Compression::default(), false));
        compress.reset();
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        loop {
            let used = usize::try_from(compress.total_in()).ok()?;
            compress
                .compress_vec(&payload[used..], &mut out, FlushCompress::Sync)
                .ok()?;
            let all_in = usize::try_from(compress.total_in()).ok()? == payload.len();
            // A flush is complete once it stopped with room to spare.
            if all_in && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        Some(out)
    })
}

/// Inflates one whole message, refusing more than `max` bytes of output (a
/// small message inflating to a huge one is refused as too big, without
/// inflating the rest).
pub fn inflate(mut compressed: Vec<u8>, max: usize) -> Result<Vec<u8>, WireError> {
    const BAD: WireError = WireError::Protocol("compressed data is not valid deflate");
    compressed.extend_from_slice(&TAIL);
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompress = cell.get_or_insert_with(|| Decompress::new(false));
        decompress.reset(false);
        let first = compressed
            .len()
            .saturating_mul(4)
            .clamp(64, max.saturating_add(1));
        let mut out = Vec::with_capacity(first);
        loop {
            let used = usize::try_from(decompress.total_in()).map_err(|_| BAD)?;
            let before = out.len();
            let status = decompress
                .decompress_vec(&compressed[used..], &mut out, FlushDecompress::Sync)
                .map_err(|_| BAD)?;
            if out.len() > max {
                return Err(WireError::TooBig);
            }
            let now_used = usize::try_from(decompress.total_in()).map_err(|_| BAD)?;
            let all_in = now_used == compressed.len();
            if status == Status::StreamEnd || (all_in && out.len() < out.capacity()) {
                return Ok(out);
            }
            if out.len() == out.capacity() {
                let more = out.capacity().min(max.saturating_add(1) - out.len());
                out.reserve_exact(more.max(1));
            } else if now_used == used && out.len() == before {
                return Err(BAD);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreed(offers: &str) -> Option<String> {
        negotiate(offers).map(|(_, response)| response)
    }

    #[test]
    fn offers_are_accepted_or_declined() {
        let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        assert_eq!(agreed("permessage-deflate").as_deref(), Some(both));
        assert_eq!(
            agreed("permessage-deflate; client_max_window_bits").as_deref(),
            Some(both),
            "what browsers send"
        );
        assert_eq!(
            agreed("permessage-deflate; client_max_window_bits=10; client_no_context_takeover")
                .as_deref(),
            Some(both)
        );
        let (params, response) =
            negotiate("permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(response, format!("{both}; server_max_window_bits=10"));
        assert!(params.compresses(1024) && !params.compresses(1025));
        assert!(negotiate("permessage-deflate")
            .unwrap()
            .0
            .compresses(32 * 1024));
        // Declined: unknown, repeated, missing or bad values.
        for offer in [
            "x-webkit-deflate-frame",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits=0x0f",
        ] {
            assert_eq!(agreed(offer), None, "{offer}");
        }
        // The first acceptable offer wins.
        assert_eq!(
            agreed("permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=9")
                .as_deref(),
            Some(format!("{both}; server_max_window_bits=9").as_str())
        );
        assert_eq!(
            agreed("foo, permessage-deflate; server_max_window_bits=\"12\"").as_deref(),
            Some(format!("{both}; server_max_window_bits=12").as_str())
        );
    }

    #[test]
    fn messages_round_trip() {
        for message in [
            &b""[..],
            b"a",
            b"Hello",
            &br#"[null,null,"room:lobby","new_msg",{"body":"hello hello hello"}]"#[..],
            &vec![b'z'; 200_000],
        ] {
            let compressed = deflate(message).unwrap();
            assert!(!compressed.ends_with(&TAIL));
            assert_eq!(inflate(compressed, 1 << 20).unwrap(), message);
        }
        // RFC 7692 §7.2.3.1: "Hello" compressed without context.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate(hello.to_vec(), 100).unwrap(), b"Hello");
        // RFC 7692 §7.2.3.3: "Hello" in a stored block.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate(stored.to_vec(), 100).unwrap(), b"Hello");
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        let bomb = deflate(&vec![0u8; 10 << 20]).unwrap();
        assert!(bomb.len() < 20_000, "{} bytes", bomb.len());
        assert_eq!(inflate(bomb.clone(), 64 * 1024), Err(WireError::TooBig));
        assert_eq!(inflate(bomb, (10 << 20) - 1), Err(WireError::TooBig));
        let exact = deflate(&[7u8; 1000]).unwrap();
        assert_eq!(inflate(exact.clone(), 1000).unwrap().len(), 1000);
        assert_eq!(inflate(exact, 999), Err(WireError::TooBig));
        assert!(matches!(
            inflate(vec![0xFF, 0xFF, 0xFF], 1000),
            Err(WireError::Protocol(_))
        ));
    }
}

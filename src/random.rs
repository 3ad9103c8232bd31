//! Randomness from the operating system, for secrets, tokens and ids. It
//! sits below every other module (the store and auth both use it), and
//! imports none of them.

use base64::Engine;

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if let Err(e) = getrandom::fill(&mut buf) {
        // Without randomness no secret can be made safely: stop loudly.
        panic!("the operating system's random source failed: {e}");
    }
    buf
}

/// A URL-safe random string made of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("the operating system's random source failed: {e}");
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_differ() {
        let (a, b) = (random_token(18), random_token(18));
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(random_bytes::<16>(), [0u8; 16]);
    }
}

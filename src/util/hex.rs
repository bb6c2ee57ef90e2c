//! Hex encoding of user bytes stored in tmux options (labels, metadata):
//! only `[0-9a-f]` reaches tmux, so no version's output escaping, format
//! expander or command parser can change a byte, and the value can sit
//! between separators in a listing.

/// `b` as lowercase hex, two digits per byte.
pub fn hex_encode(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &c in b {
        s.push(DIGITS[usize::from(c >> 4)] as char);
        s.push(DIGITS[usize::from(c & 15)] as char);
    }
    s
}

/// The bytes of a [`hex_encode`]d string; `None` if it is not one (odd
/// length or a non-hex digit: a value not written by ctb).
pub fn hex_decode(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_decode(hex_encode(&all).as_bytes()).unwrap(), all);
        assert_eq!(hex_encode(b"a;"), "613b");
        assert_eq!(hex_decode(b""), Some(vec![]));
        assert_eq!(hex_decode(b"6"), None);
        assert_eq!(hex_decode(b"zz"), None);
    }
}

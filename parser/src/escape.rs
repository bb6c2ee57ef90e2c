//! Decoding of `%output` payloads.
//!
//! tmux writes a pane's bytes below 0x20 and the backslash as `\ooo` (three
//! octal digits) and every other byte (0x20-0xFF, so also invalid UTF-8) raw.
//!
//! Rules for input tmux never sends (documented, never a panic): a backslash
//! not followed by three octal digits is kept as a literal backslash and
//! decoding goes on with the next byte; an octal escape above `\377` keeps
//! the low eight bits (tmux never writes one).

use memchr::memchr;

/// Decodes an `%output` payload into a new buffer.
pub fn decode_output(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    decode_output_into(src, &mut out);
    out
}

/// Decodes an `%output` payload, appending the bytes to `out`.
pub fn decode_output_into(mut src: &[u8], out: &mut Vec<u8>) {
    while let Some(i) = memchr(b'\\', src) {
        out.extend_from_slice(&src[..i]);
        let rest = &src[i + 1..];
        match rest {
            [a, b, c, ..] if is_octal(*a) && is_octal(*b) && is_octal(*c) => {
                let v = (u32::from(a - b'0') << 6) | (u32::from(b - b'0') << 3) | u32::from(c - b'0');
                out.push(v as u8);
                src = &rest[3..];
            }
            _ => {
                out.push(b'\\');
                src = rest;
            }
        }
    }
    out.extend_from_slice(src);
}

fn is_octal(b: u8) -> bool {
    (b'0'..=b'7').contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode_output(b"a\\015\\012b"), b"a\r\nb");
        assert_eq!(decode_output(b"\\134"), b"\\");
        assert_eq!(decode_output(b"\\000\\377"), [0u8, 255]);
        assert_eq!(decode_output(b"\xff\xfe"), [0xff, 0xfe]);
    }

    #[test]
    fn malformed_escapes_are_literal() {
        assert_eq!(decode_output(b"\\"), b"\\");
        assert_eq!(decode_output(b"x\\01"), b"x\\01");
        assert_eq!(decode_output(b"\\8\\0123"), b"\\8\n3");
        assert_eq!(decode_output(b"\\\\012"), b"\\\n");
        assert_eq!(decode_output(b"\\777"), [0xff]);
    }
}

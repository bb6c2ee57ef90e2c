//! Decoding of `%output` payloads.
//!
//! tmux writes a pane's bytes below 0x20 and the backslash as `\ooo` (three
//! octal digits) and every other byte (0x20-0xFF, so also invalid UTF-8) raw.
//!
//! Rules for input tmux never sends (documented, never a panic): a backslash
//! not followed by three octal digits is kept as a literal backslash and
//! decoding goes on with the next byte; an octal escape above `\377` keeps
//! the low eight bits (tmux never writes one).

/// Decodes an `%output` payload into a new buffer.
pub fn decode_output(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    decode_output_into(src, &mut out);
    out
}

/// Decodes an `%output` payload, appending the bytes to `out`.
pub fn decode_output_into(src: &[u8], out: &mut Vec<u8>) {
    // The decoded bytes are never more than the encoded ones: decode into a
    // slice as long as `src`, then cut it to the length written.
    let start = out.len();
    out.resize(start + src.len(), 0);
    let written = decode_slice(src, &mut out[start..]);
    out.truncate(start + written);
}

const LO: u64 = u64::from_ne_bytes([0x01; 8]);
const HI: u64 = u64::from_ne_bytes([0x80; 8]);
const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);

/// Decodes `src` into `dst` (`dst.len() >= src.len()`); returns the number
/// of bytes written. Eight bytes at a time while there is no backslash.
fn decode_slice(src: &[u8], dst: &mut [u8]) -> usize {
    let (mut r, mut w) = (0, 0);
    while r < src.len() {
        if let Some(chunk) = src.get(r..r + 8) {
            let chunk: [u8; 8] = chunk.try_into().unwrap_or_default();
            // `w <= r`, so these eight bytes fit in `dst`; the ones past a
            // backslash are overwritten later.
            dst[w..w + 8].copy_from_slice(&chunk);
            // Zero bytes of `x` are backslashes of `chunk`; the lowest set
            // bit of `mask` marks the first one (the classic SWAR test is
            // exact for the lowest zero byte).
            let x = u64::from_le_bytes(chunk) ^ BACKSLASHES;
            let mask = x.wrapping_sub(LO) & !x & HI;
            if mask == 0 {
                r += 8;
                w += 8;
                continue;
            }
            let i = (mask.trailing_zeros() / 8) as usize;
            r += i;
            w += i;
        }
        // `\ooo` as one little-endian u32: a backslash and three octal digits.
        if let Some(q) = src.get(r..r + 4) {
            let q = u32::from_le_bytes(q.try_into().unwrap_or_default());
            if q & 0xF8F8_F8FF == 0x3030_305C {
                dst[w] = (((q >> 2) & 0o700) | ((q >> 13) & 0o70) | ((q >> 24) & 0o7)) as u8;
                r += 4;
                w += 1;
                continue;
            }
        }
        // A literal byte, or a backslash not starting an escape.
        dst[w] = src[r];
        r += 1;
        w += 1;
    }
    w
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

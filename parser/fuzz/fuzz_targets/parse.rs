//! Fuzz target: any input, fed in chunks chosen by its first two bytes,
//! never panics and yields exactly the items of whole-input parsing; each
//! line's `%output` decoding matches a simple reference decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tmux_control::{decode_output, parse_all, parse_notification, Parser};

fuzz_target!(|input: &[u8]| {
    let (seed, data) = match input {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => (0, input),
    };
    let whole = parse_all(data);

    // Chunk sizes from a tiny xorshift seeded by the first two bytes; the
    // low bits of the seed bound the chunk size (1..=2^k bytes), so short
    // and long chunks are both explored. Some feeds are not drained, so
    // several chunks pile up before items are taken out.
    let mut state = u32::from(seed) | 0x1_0000;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let max_chunk = 1usize << (seed & 0x7);
    let mut p = Parser::new();
    let mut items = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (next() as usize % max_chunk + 1).min(rest.len());
        p.feed(&rest[..n]);
        rest = &rest[n..];
        if next() % 4 != 0 {
            items.extend(p.by_ref());
        }
    }
    items.extend(p.by_ref());
    p.finish();
    items.extend(p.by_ref());
    assert_eq!(items, whole);
    assert!(p.next_item().is_none());

    // Each line parsed on its own never panics either, and `%output`
    // decoding agrees with the obvious byte-by-byte decoder.
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_notification(line);
        assert_eq!(decode_output(line), reference_decode(line));
    }
});

/// The escape rules of `escape.rs`, written the obvious way.
fn reference_decode(src: &[u8]) -> Vec<u8> {
    let octal = |b: u8| (b'0'..=b'7').contains(&b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        match src[i..] {
            [b'\\', a, b, c, ..] if octal(a) && octal(b) && octal(c) => {
                out.push((u32::from(a - b'0') * 64 + u32::from(b - b'0') * 8 + u32::from(c - b'0')) as u8);
                i += 4;
            }
            _ => {
                out.push(src[i]);
                i += 1;
            }
        }
    }
    out
}

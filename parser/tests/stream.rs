//! Stream tests of the parser: chunking never changes the items (recorded
//! fixtures split everywhere, a seeded random property test, fuzz regression
//! inputs), and a table of hand-picked edge lines with their exact items.

use std::path::{Path, PathBuf};

use tmux_control::{decode_output, parse_all, parse_notification, Block, Item, Limits, Notification, Overflow, Parser};
use tmux_control::{PaneId as P, SessionId as S, WindowId as W};

// ---------------------------------------------------------------------------
// Helpers

/// Feeds `data` cut at `cuts` (ascending offsets), draining items after each
/// feed, then finishes.
fn parse_cut(data: &[u8], cuts: &[usize]) -> Vec<Item> {
    parse_cut_in(Parser::new(), data, cuts)
}

/// [`parse_cut`] with a given (fresh) parser.
fn parse_cut_in(mut p: Parser, data: &[u8], cuts: &[usize]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut prev = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        p.feed(&data[prev..cut]);
        items.extend(p.by_ref());
        prev = cut;
    }
    p.finish();
    items.extend(p.by_ref());
    assert_eq!(p.next_item(), None, "items after the end");
    assert!(!p.in_block());
    items
}

fn parse_bytewise(data: &[u8]) -> Vec<Item> {
    let cuts: Vec<usize> = (1..data.len()).collect();
    parse_cut(data, &cuts)
}

/// A tiny xorshift64* PRNG: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() >> 33) as usize % n
    }
}

/// Feeds `data` in random chunks (some empty), draining only sometimes so
/// several chunks pile up in the buffer, then finishes.
fn parse_random_chunks(data: &[u8], rng: &mut Rng, max_chunk: usize) -> Vec<Item> {
    parse_random_chunks_in(Parser::new(), data, rng, max_chunk)
}

/// [`parse_random_chunks`] with a given (fresh) parser.
fn parse_random_chunks_in(mut p: Parser, data: &[u8], rng: &mut Rng, max_chunk: usize) -> Vec<Item> {
    let mut items = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = rng.below(max_chunk + 1).min(rest.len());
        p.feed(&rest[..n]);
        rest = &rest[n..];
        match rng.below(4) {
            0 => {}
            1 => items.extend(p.next_item()),
            _ => items.extend(p.by_ref()),
        }
    }
    items.extend(p.by_ref());
    p.finish();
    items.extend(p.by_ref());
    assert_eq!(p.next_item(), None);
    items
}

fn files_in(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file() && (ext.is_none() || p.extension().is_some_and(|e| Some(e) == ext.map(std::ffi::OsStr::new)))
        })
        .collect();
    files.sort();
    files
}

/// Every recorded `fixtures/tmux-*/*.raw`.
fn fixtures() -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() && dir.file_name().unwrap().to_string_lossy().starts_with("tmux-") {
            for f in files_in(&dir, Some("raw")) {
                let data = std::fs::read(&f).unwrap();
                out.push((f, data));
            }
        }
    }
    assert!(out.len() >= 10, "fixtures not found under {}", root.display());
    out
}

/// Inputs that once broke the parser (fuzz crashes), replayed as-is.
fn regressions() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    files_in(&dir, None)
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "README.md"))
        .map(|f| (f.clone(), std::fs::read(&f).unwrap()))
        .collect()
}

// ---------------------------------------------------------------------------
// Chunking never changes the items

#[test]
fn fixtures_split_at_every_position() {
    for (path, data) in fixtures().into_iter().chain(regressions()) {
        let whole = parse_all(&data);
        for cut in 0..=data.len() {
            assert_eq!(parse_cut(&data, &[cut]), whole, "{} cut at {cut}", path.display());
        }
        assert_eq!(parse_bytewise(&data), whole, "{} byte by byte", path.display());
    }
}

#[test]
fn fixtures_split_in_three_at_random_positions() {
    let mut rng = Rng::new(3);
    for (path, data) in fixtures().into_iter().chain(regressions()) {
        let whole = parse_all(&data);
        for _ in 0..500 {
            let mut cuts = [rng.below(data.len() + 1), rng.below(data.len() + 1)];
            cuts.sort();
            assert_eq!(parse_cut(&data, &cuts), whole, "{} cut at {cuts:?}", path.display());
        }
    }
}

#[test]
fn fixtures_match_recorded_items() {
    // A few anchors, so "chunked == whole" is not vacuous.
    for (path, data) in fixtures() {
        let items = parse_all(&data);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(!items.iter().any(|i| matches!(i, Item::Incomplete(_))), "{name}");
        match name.as_str() {
            "all-bytes-output" => {
                let want: Vec<u8> = (0..=255u8).chain(*b"\nALLBYTES-DONE\n").collect();
                assert!(items.contains(&Item::Notification(Notification::Output { pane: P(0), data: want })));
            }
            "forged-end-in-block" => {
                assert!(items.iter().any(|i| matches!(i, Item::Block(b) if b.lines.is_empty())), "{items:?}")
            }
            "attach-detach" | "empty-line-exit" => {
                assert_eq!(items.last(), Some(&Item::Notification(Notification::Exit { reason: None })))
            }
            _ => {}
        }
    }
}

/// A long stream (over the parser's 64 KiB compaction threshold), fed in
/// big random chunks with lazy draining, exercises buffer compaction.
#[test]
fn long_stream_random_chunks() {
    let mut data = Vec::new();
    let fx = fixtures();
    while data.len() < 600 * 1024 {
        for (_, f) in &fx {
            data.extend_from_slice(f);
        }
    }
    let whole = parse_all(&data);
    let mut rng = Rng::new(7);
    for max_chunk in [100, 4096, 70_000, 200_000] {
        assert_eq!(parse_random_chunks(&data, &mut rng, max_chunk), whole, "max chunk {max_chunk}");
    }
}

const FRAGMENTS: &[&[u8]] = &[
    b"%begin 1 2 1",
    b"%end 1 2 1",
    b"%error 1 2 1",
    b"%begin 1 2 0",
    b"%end 1 2 0",
    b"%output %1 ",
    b"%exit",
    b"%exit ",
    b"%pause %1",
    b"%continue %1",
    b"%extended-output %1 5 ",
    b"%subscription-changed n $1 @2 3 %4 ",
    b"%layout-change @1 ",
    b"%session-changed $1 ",
    b"%session-renamed ",
    b"%window-add @1",
    b"%sessions-changed",
    b"%client-session-changed c $2 ",
    b"\\015\\012",
    b"\\134",
    b"\r\n",
    b" : ",
    b" - ",
    b"4294967296",
    b"99999999999999999999",
];

const INTERESTING: &[u8] = b"%%%\n\n\n\r\r\\\\0123456789    $@:-\xff\x00\x1b";

fn random_input(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(24);
    let mut v = Vec::new();
    for _ in 0..len {
        match rng.below(10) {
            0..=3 => v.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]),
            4..=7 => v.push(INTERESTING[rng.below(INTERESTING.len())]),
            8 => v.push(b'\n'),
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

#[test]
fn property_random_bytes_random_chunks() {
    // About half a second in release mode (a tenth of the cases in debug).
    let default_cases = if cfg!(debug_assertions) { 20_000 } else { 200_000 };
    let cases: usize = std::env::var("CTB_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default_cases);
    let mut rng = Rng::new(std::env::var("CTB_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(42));
    for case in 0..cases {
        let data = random_input(&mut rng);
        let whole = parse_all(&data);
        let max_chunk = [1, 3, 16, 64][rng.below(4)];
        let chunked = parse_random_chunks(&data, &mut rng, max_chunk);
        assert_eq!(chunked, whole, "case {case}: {:?}", String::from_utf8_lossy(&data));
        // Lines on their own never panic, and decode like the reference.
        for line in data.split(|&b| b == b'\n') {
            let _ = parse_notification(line);
            assert_eq!(decode_output(line), reference_decode(line), "case {case}: {line:?}");
        }
    }
}

/// The escape rules of escape.rs, written the obvious way.
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

#[test]
fn decode_matches_reference() {
    let mut rng = Rng::new(11);
    let alphabet = b"\\\\01234567789abc \xff";
    for _ in 0..100_000 {
        let len = rng.below(40);
        let src: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
        assert_eq!(decode_output(&src), reference_decode(&src), "{src:?}");
        let mut out = b"prefix".to_vec();
        tmux_control::decode_output_into(&src, &mut out);
        assert_eq!(out[..6], *b"prefix");
        assert_eq!(out[6..], reference_decode(&src)[..]);
    }
}

// ---------------------------------------------------------------------------
// Edge lines with their exact items

fn n(n: Notification) -> Item {
    Item::Notification(n)
}

fn unk(line: &[u8]) -> Item {
    Item::Unknown(line.to_vec())
}

fn block(ok: bool, lines: &[&[u8]]) -> Item {
    Item::Block(Block { time: 1, number: 2, flags: 1, ok, lines: lines.iter().map(|l| l.to_vec()).collect() })
}

fn incomplete(lines: &[&[u8]]) -> Item {
    Item::Incomplete(Block {
        time: 1,
        number: 2,
        flags: 1,
        ok: false,
        lines: lines.iter().map(|l| l.to_vec()).collect(),
    })
}

fn output(pane: u32, data: &[u8]) -> Item {
    n(Notification::Output { pane: P(pane), data: data.to_vec() })
}

fn v(b: &[u8]) -> Vec<u8> {
    b.to_vec()
}

#[test]
fn edge_lines() {
    use Notification as N;
    let table: Vec<(&[u8], Vec<Item>)> = vec![
        // %exit, with and without a reason.
        (b"%exit\n", vec![n(N::Exit { reason: None })]),
        (b"%exit some reason\n", vec![n(N::Exit { reason: Some(v(b"some reason")) })]),
        (b"%exit \n", vec![n(N::Exit { reason: None })]),
        // Names run to the end of the line, spaces included.
        (b"%session-renamed $1 ren amed\n", vec![n(N::SessionRenamed { session: S(1), name: v(b"ren amed") })]),
        (b"%session-changed $1 my  session \n", vec![n(N::SessionChanged { session: S(1), name: v(b"my  session ") })]),
        (b"%window-renamed @3 a b\n", vec![n(N::WindowRenamed { window: W(3), name: v(b"a b") })]),
        (b"%unlinked-window-renamed @3 x y\n", vec![n(N::UnlinkedWindowRenamed { window: W(3), name: v(b"x y") })]),
        // Decision: an empty name field (the separating space present) is an
        // empty name; a missing field (no space) is malformed, so Unknown.
        (b"%session-changed $1 \n", vec![n(N::SessionChanged { session: S(1), name: v(b"") })]),
        (b"%session-changed $1\n", vec![unk(b"%session-changed $1")]),
        (b"%session-renamed $1\n", vec![unk(b"%session-renamed $1")]),
        (
            b"%client-session-changed client-1 $2 my name\n",
            vec![n(N::ClientSessionChanged { client: v(b"client-1"), session: S(2), name: v(b"my name") })],
        ),
        (b"%client-detached client-1\n", vec![n(N::ClientDetached { client: v(b"client-1") })]),
        (b"%sessions-changed\n", vec![n(N::SessionsChanged)]),
        (b"%sessions-changed with trailing args\n", vec![n(N::SessionsChanged)]),
        (b"%sessions-changedx\n", vec![unk(b"%sessions-changedx")]),
        (b"%window-add @1 extra\n", vec![n(N::WindowAdd { window: W(1) })]),
        (b"%session-window-changed $1 @2\n", vec![n(N::SessionWindowChanged { session: S(1), window: W(2) })]),
        (b"%window-pane-changed @1 %2\n", vec![n(N::WindowPaneChanged { window: W(1), pane: P(2) })]),
        (b"%pane-mode-changed %4\n", vec![n(N::PaneModeChanged { pane: P(4) })]),
        (b"%paste-buffer-changed buffer0\n", vec![n(N::PasteBufferChanged { name: v(b"buffer0") })]),
        (b"%paste-buffer-deleted buffer0\n", vec![n(N::PasteBufferDeleted { name: v(b"buffer0") })]),
        (b"%config-error f:1: bad\n", vec![n(N::ConfigError { text: v(b"f:1: bad") })]),
        (b"%message hello there\n", vec![n(N::Message { text: v(b"hello there") })]),
        // Blocks.
        (b"%begin 1 2 1\n%end 1 2 1\n", vec![block(true, &[])]),
        (b"%begin 1 2 1\nhello\n\n%end 1 2 1\n", vec![block(true, &[b"hello", b""])]),
        (
            b"%begin 1 2 1\nparse error: unknown command: x\n%error 1 2 1\n",
            vec![block(false, &[b"parse error: unknown command: x"])],
        ),
        // Lines starting with %end/%error that do not match stay in the block.
        (
            b"%begin 1 2 1\n%end 1 2 0\n%end 1 3 1\n%end 1 2\n%end\n%endx 1 2 1\n%error 9 2 1\n%end 1 2 1\n",
            vec![block(true, &[b"%end 1 2 0", b"%end 1 3 1", b"%end 1 2", b"%end", b"%endx 1 2 1", b"%error 9 2 1"])],
        ),
        // Documented limitation: a line identical to the block's own %end
        // closes it (tmux does not escape reply lines, so it can be forged);
        // the rest of the real reply then comes out as Unknown lines.
        (b"%begin 1 2 1\n%end 1 2 1\nrest\n%end 1 2 1\n", vec![block(true, &[]), unk(b"rest"), unk(b"%end 1 2 1")]),
        // Extra fields after a matching `%end T N F` are tolerated (like
        // the extra fields of id-only notifications), so that closes too.
        (b"%begin 1 2 1\nx\n%end 1 2 1 extra\ny\n", vec![block(true, &[b"x"]), unk(b"y")]),
        // Leading zeros are the same numbers.
        (b"%begin 1 2 1\n%end 01 002 1\n", vec![block(true, &[])]),
        // Nested %begin is output.
        (b"%begin 1 2 1\n%begin 1 2 1\n%end 1 2 1\n", vec![block(true, &[b"%begin 1 2 1"])]),
        // %pause / %continue inside a block are notifications and do not end it.
        (
            b"%begin 1 2 1\n%pause %0\na\n%continue %0\n%end 1 2 1\n",
            vec![n(N::Pause { pane: P(0) }), n(N::Continue { pane: P(0) }), block(true, &[b"a"])],
        ),
        // ... but malformed ones are output.
        (b"%begin 1 2 1\n%pause %x\n%pause\n%end 1 2 1\n", vec![block(true, &[b"%pause %x", b"%pause"])]),
        // Other notifications inside a block stay block lines.
        (
            b"%begin 1 2 1\n%sessions-changed\n%exit\n%output %1 x\n%window-add @1\n%end 1 2 1\n",
            vec![block(true, &[b"%sessions-changed", b"%exit", b"%output %1 x", b"%window-add @1"])],
        ),
        // A block never closed: Incomplete at finish(), with or without a
        // final newline.
        (b"%begin 1 2 1\n", vec![incomplete(&[])]),
        (b"%begin 1 2 1", vec![incomplete(&[])]),
        (b"%begin 1 2 1\nline\n", vec![incomplete(&[b"line"])]),
        (b"%begin 1 2 1\nhalf", vec![incomplete(&[b"half"])]),
        // Stray guards and malformed %begin are Unknown (no block opens).
        (b"%end 1 2 1\n%error 1 2 1\n", vec![unk(b"%end 1 2 1"), unk(b"%error 1 2 1")]),
        (b"%begin 1 2\nx\n", vec![unk(b"%begin 1 2"), unk(b"x")]),
        (b"%begin 99999999999999999999 2 1\n", vec![unk(b"%begin 99999999999999999999 2 1")]),
        (b"%begin 1 2 4294967296\n", vec![unk(b"%begin 1 2 4294967296")]),
        // Unknown and malformed notifications.
        (b"%foo bar\n", vec![unk(b"%foo bar")]),
        (b"%\n", vec![unk(b"%")]),
        (b"%window-add nope\n", vec![unk(b"%window-add nope")]),
        (b"%window-add\n", vec![unk(b"%window-add")]),
        (b"%output\n", vec![unk(b"%output")]),
        (b"%output \n", vec![unk(b"%output ")]),
        (b"%output %x data\n", vec![unk(b"%output %x data")]),
        (b"%output %1x data\n", vec![unk(b"%output %1x data")]),
        (b"%layout-change\n", vec![unk(b"%layout-change")]),
        (b"plain text\n", vec![unk(b"plain text")]),
        // Ids overflowing u32.
        (b"%window-add @4294967296\n", vec![unk(b"%window-add @4294967296")]),
        (b"%window-add @4294967295\n", vec![n(N::WindowAdd { window: W(u32::MAX) })]),
        (b"%output %99999999999 x\n", vec![unk(b"%output %99999999999 x")]),
        (b"%session-changed $4294967296 n\n", vec![unk(b"%session-changed $4294967296 n")]),
        // Line endings: one trailing \r stripped; empty lines are Unknown(empty).
        (b"%window-add @1\r\n", vec![n(N::WindowAdd { window: W(1) })]),
        (b"x\r\r\n", vec![unk(b"x\r")]),
        (b"a\rb\n", vec![unk(b"a\rb")]),
        (b"\n\r\n", vec![unk(b""), unk(b"")]),
        (b"%begin 1 2 1\r\nout\r\n%end 1 2 1\r\n%exit\r\n", vec![block(true, &[b"out"]), n(N::Exit { reason: None })]),
        (b"%output %1 ab\r\n", vec![output(1, b"ab")]),
        // Output payloads.
        (b"%output %1 a\\015\\012\n", vec![output(1, b"a\r\n")]),
        (b"%output %1\n", vec![output(1, b"")]),
        (b"%output %1 \n", vec![output(1, b"")]),
        (b"%output %1  lead\n", vec![output(1, b" lead")]),
        (b"%output %1 \\134\\000\xff\n", vec![output(1, b"\\\x00\xff")]),
        // Malformed escapes (escape.rs): a backslash not followed by three
        // octal digits is literal; decoding resumes at the next byte.
        (b"%output %1 x\\01\n", vec![output(1, b"x\\01")]),
        (b"%output %1 x\\\n", vec![output(1, b"x\\")]),
        (b"%output %1 \\9\n", vec![output(1, b"\\9")]),
        (b"%output %1 \\\\012\n", vec![output(1, b"\\\n")]),
        (b"%output %1 \\777\n", vec![output(1, b"\xff")]),
        // %extended-output: fields up to a lone ':' are skipped.
        (
            b"%extended-output %1 12 extra fields : data\n",
            vec![n(N::ExtendedOutput { pane: P(1), age_ms: 12, data: v(b"data") })],
        ),
        (b"%extended-output %1 5 :\n", vec![n(N::ExtendedOutput { pane: P(1), age_ms: 5, data: v(b"") })]),
        (
            b"%extended-output %0 0 : x\\015\\012\n",
            vec![n(N::ExtendedOutput { pane: P(0), age_ms: 0, data: v(b"x\r\n") })],
        ),
        (b"%extended-output %1 x : d\n", vec![unk(b"%extended-output %1 x : d")]),
        (b"%extended-output %1 5 no colon\n", vec![unk(b"%extended-output %1 5 no colon")]),
        // %layout-change with 1, 2 and 3 fields.
        (
            b"%layout-change @1 b25d,80x24,0,0,0\n",
            vec![n(N::LayoutChange {
                window: W(1),
                layout: v(b"b25d,80x24,0,0,0"),
                visible_layout: None,
                flags: None,
            })],
        ),
        (
            b"%layout-change @1 L V\n",
            vec![n(N::LayoutChange { window: W(1), layout: v(b"L"), visible_layout: Some(v(b"V")), flags: None })],
        ),
        (
            b"%layout-change @1 L V *\n",
            vec![n(N::LayoutChange {
                window: W(1),
                layout: v(b"L"),
                visible_layout: Some(v(b"V")),
                flags: Some(v(b"*")),
            })],
        ),
        // %subscription-changed, with ids and with '-' for absent ones.
        (
            b"%subscription-changed name $1 @2 3 %4 : value with spaces\n",
            vec![n(N::SubscriptionChanged {
                name: v(b"name"),
                session: Some(S(1)),
                window: Some(W(2)),
                window_index: Some(3),
                pane: Some(P(4)),
                value: v(b"value with spaces"),
            })],
        ),
        (
            b"%subscription-changed name $1 - - - : v : w\n",
            vec![n(N::SubscriptionChanged {
                name: v(b"name"),
                session: Some(S(1)),
                window: None,
                window_index: None,
                pane: None,
                value: v(b"v : w"),
            })],
        ),
        // DCS prefix (tmux -CC) is not supported: ctb runs -C, so the first
        // line is Unknown and the block never opens.
        (b"\x1bP1000p%begin 1 2 1\n%end 1 2 1\n", vec![unk(b"\x1bP1000p%begin 1 2 1"), unk(b"%end 1 2 1")]),
    ];
    for (input, want) in table {
        let shown = String::from_utf8_lossy(input);
        assert_eq!(parse_all(input), want, "whole: {shown:?}");
        assert_eq!(parse_bytewise(input), want, "byte by byte: {shown:?}");
    }
}

#[test]
fn finish_then_more_calls() {
    let mut p = Parser::new();
    p.feed(b"%begin 1 2 1\nx");
    assert_eq!(p.next_item(), None);
    assert!(p.in_block());
    assert_eq!(p.pending_bytes(), 1);
    p.finish();
    assert_eq!(p.next_item(), Some(incomplete(&[b"x"])));
    assert_eq!(p.next_item(), None);
    assert_eq!(p.next_item(), None);
    assert_eq!(p.pending_bytes(), 0);
}

// ---------------------------------------------------------------------------
// Memory limits

/// Small limits, so tests can go over them cheaply.
const SMALL: Limits = Limits::DEFAULT.with_max_line(64).with_max_block(1024);

fn parse_all_in(mut p: Parser, data: &[u8]) -> Vec<Item> {
    p.feed(data);
    p.finish();
    p.collect()
}

/// Whole, byte by byte and in random cuts, the items are the same, and
/// those wanted.
fn check_limited(limits: Limits, data: &[u8], want: &[Item]) {
    let whole = parse_all_in(Parser::with_limits(limits), data);
    assert_eq!(whole, want);
    let cuts: Vec<usize> = (1..data.len()).collect();
    assert_eq!(parse_cut_in(Parser::with_limits(limits), data, &cuts), want, "byte by byte");
    let mut rng = Rng::new(data.len() as u64);
    for _ in 0..300 {
        let mut cuts: Vec<usize> = (0..rng.below(8)).map(|_| rng.below(data.len() + 1)).collect();
        cuts.sort();
        assert_eq!(parse_cut_in(Parser::with_limits(limits), data, &cuts), want, "cut at {cuts:?}");
    }
    for max_chunk in [1, 7, 63, 64, 65, 200, 5000] {
        let chunked = parse_random_chunks_in(Parser::with_limits(limits), data, &mut rng, max_chunk);
        assert_eq!(chunked, want, "max chunk {max_chunk}");
    }
}

fn long_line(n: usize) -> Item {
    Item::Overflow(Overflow::Line { bytes: n as u64 })
}

fn over_block(ok: bool, closed: bool, bytes: usize) -> Item {
    Item::Overflow(Overflow::Block { time: 1, number: 2, flags: 1, ok, closed, bytes: bytes as u64 })
}

#[test]
fn long_line_without_newline() {
    let x = vec![b'x'; 640];
    check_limited(SMALL, &x, &[long_line(640)]);
    let mut data = x.clone();
    data.extend_from_slice(b"\r\n%sessions-changed\n%begin");
    check_limited(SMALL, &data, &[long_line(641), n(Notification::SessionsChanged), unk(b"%begin")]);
    // Never buffered: while it arrives, nothing is pending.
    let mut p = Parser::with_limits(SMALL);
    for chunk in x.chunks(10) {
        p.feed(chunk);
        assert_eq!(p.next_item(), None);
        assert!(p.pending_bytes() <= 64, "{}", p.pending_bytes());
    }
    assert_eq!(p.pending_bytes(), 0);
    assert!(p.heap_bytes() <= 256, "{}", p.heap_bytes());
}

#[test]
fn lines_at_the_line_limit() {
    // 64 bytes are kept, 65 are not; a `\r` counts.
    let limits = Limits::default().with_max_line(17);
    check_limited(limits, b"%sessions-changed\n", &[n(Notification::SessionsChanged)]);
    check_limited(limits, b"%sessions-changed", &[n(Notification::SessionsChanged)]);
    check_limited(limits, b"%sessions-changed\r\n%exit\n", &[long_line(18), n(Notification::Exit { reason: None })]);
    check_limited(limits, b"%sessions-changed!", &[long_line(18)]);
    // Several over-long lines in a row, and empty lines with a zero limit.
    check_limited(
        limits,
        &[&[b'a'; 20][..], b"\n", &[b'b'; 30], b"\n\n", &[b'c'; 18]].concat(),
        &[long_line(20), long_line(30), unk(b""), long_line(18)],
    );
    check_limited(Limits::default().with_max_line(0), b"\nab\n\nc", &[unk(b""), long_line(2), unk(b""), long_line(1)]);
}

#[test]
fn long_line_is_not_interpreted() {
    // An over-long `%begin` opens no block: what follows is top-level.
    let mut data = b"%begin 1 2 1 ".to_vec();
    data.extend_from_slice(&[b'0'; 100]);
    data.extend_from_slice(b"\nout\n%end 1 2 1\n");
    check_limited(SMALL, &data, &[long_line(113), unk(b"out"), unk(b"%end 1 2 1")]);
}

#[test]
fn block_over_the_block_limit() {
    // 20-byte lines cost 44 each: 23 fit in 1024 bytes, 24 do not.
    let line = [b'y'; 20];
    let block_of = |lines: usize, end: &[u8]| {
        let mut d = b"%begin 1 2 1\n".to_vec();
        for _ in 0..lines {
            d.extend_from_slice(&line);
            d.push(b'\n');
        }
        d.extend_from_slice(end);
        d
    };
    let kept: Vec<&[u8]> = vec![&line[..]; 23];
    check_limited(SMALL, &block_of(23, b"%end 1 2 1\n"), &[block(true, &kept)]);
    check_limited(SMALL, &block_of(24, b"%end 1 2 1\n"), &[over_block(true, true, 24 * 21)]);
    check_limited(
        SMALL,
        &block_of(100, b"%error 1 2 1\n%window-add @1\n"),
        &[over_block(false, true, 100 * 21), n(Notification::WindowAdd { window: W(1) })],
    );
    // Lines are still checked: a foreign guard is output, `%pause` is a
    // notification, and the stream goes on after the guard.
    let data = block_of(50, b"%end 1 3 1\n%pause %4\n%end 1 2 1\n%sessions-changed\n");
    check_limited(
        SMALL,
        &data,
        &[
            n(Notification::Pause { pane: P(4) }),
            over_block(true, true, 50 * 21 + 11),
            n(Notification::SessionsChanged),
        ],
    );
    // Cut short by the end of the stream.
    check_limited(SMALL, &block_of(30, b"partial"), &[over_block(false, false, 30 * 21 + 8)]);
    check_limited(SMALL, &block_of(3, b"partial"), &[incomplete(&[&line, &line, &line, b"partial"])]);
    // Many empty lines count too.
    check_limited(
        SMALL,
        &[&b"%begin 1 2 1\n"[..], &[b'\n'; 100], b"%end 1 2 1\n"].concat(),
        &[over_block(true, true, 100)],
    );
}

#[test]
fn long_line_inside_a_block() {
    let mut data = b"%begin 1 2 1\nshort\n".to_vec();
    data.extend_from_slice(&[b'z'; 640]);
    data.extend_from_slice(b"\nafter\n%end 1 2 1\n%window-add @1\n");
    check_limited(SMALL, &data, &[over_block(true, true, 6 + 641 + 6), n(Notification::WindowAdd { window: W(1) })]);
    // The over-long line ends the stream.
    let mut data = b"%begin 1 2 1\nshort\n".to_vec();
    data.extend_from_slice(&[b'z'; 640]);
    check_limited(SMALL, &data, &[over_block(false, false, 6 + 641)]);
}

#[test]
fn property_random_bytes_small_limits() {
    let default_cases = if cfg!(debug_assertions) { 5_000 } else { 50_000 };
    let cases: usize = std::env::var("CTB_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default_cases);
    let mut rng = Rng::new(std::env::var("CTB_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(43));
    for case in 0..cases {
        let mut data = random_input(&mut rng);
        if rng.below(4) == 0 {
            // A long run without a newline somewhere.
            let at = rng.below(data.len() + 1);
            let run = vec![b"x%\r "[rng.below(4)]; rng.below(200)];
            data.splice(at..at, run);
        }
        if rng.below(2) == 0 {
            // Inside a block, so block limits matter.
            data.splice(0..0, *b"%begin 1 2 1\n");
            data.extend_from_slice(b"\n%end 1 2 1\n");
        }
        let max_line = if rng.below(4) == 0 { rng.below(16) } else { 16 + rng.below(200) };
        let limits = Limits::default().with_max_line(max_line).with_max_block(rng.below(400));
        let whole = parse_all_in(Parser::with_limits(limits), &data);
        let max_chunk = [1, 3, 16, 64, 300][rng.below(5)];
        let chunked = parse_random_chunks_in(Parser::with_limits(limits), &data, &mut rng, max_chunk);
        assert_eq!(chunked, whole, "case {case}, {limits:?}: {:?}", String::from_utf8_lossy(&data));
        // Within the limits, nothing changes.
        if data.len() <= limits.max_line && data.split(|&b| b == b'\n').count() * 24 + data.len() <= limits.max_block {
            assert_eq!(whole, parse_all(&data), "case {case}");
        }
    }
}

/// Feeds 100 MB in 64 KiB chunks with the default limits, draining after
/// each, and returns the items and the most heap the parser held.
fn feed_100mb(mut fill: impl FnMut(&mut Vec<u8>)) -> (Vec<Item>, usize) {
    const TOTAL: usize = 100_000_000;
    const CHUNK: usize = 64 * 1024;
    let mut p = Parser::new();
    let (mut items, mut peak, mut fed) = (Vec::new(), 0, 0);
    let mut chunk = Vec::with_capacity(2 * CHUNK);
    while fed < TOTAL {
        fill(&mut chunk);
        let n = chunk.len().min(CHUNK).min(TOTAL - fed);
        p.feed(&chunk[..n]);
        chunk.drain(..n);
        fed += n;
        items.extend(p.by_ref());
        peak = peak.max(p.heap_bytes());
    }
    p.feed(&chunk);
    p.feed(b"\n%end 1 2 1\n%exit\n");
    p.finish();
    items.extend(p.by_ref());
    (items, peak)
}

#[test]
fn memory_stays_bounded_on_100_mb() {
    let (line, block) = (Limits::DEFAULT_MAX_LINE, Limits::DEFAULT_MAX_BLOCK);
    let exit = n(Notification::Exit { reason: None });
    // One line of 100 MB: the buffer holds at most one line's worth.
    let (items, peak) = feed_100mb(|c| c.resize(64 * 1024, b'x'));
    assert!(
        matches!(items[..], [Item::Overflow(Overflow::Line { bytes }), _, ref e] if bytes > 99_000_000 && *e == exit)
    );
    assert!(peak <= 2 * (line + 64 * 1024), "peak {peak}");
    // A block of 100 MB of 80-byte lines: kept up to the block limit, then
    // dropped; its `%end` still closes it.
    let mut started = false;
    let (items, peak) = feed_100mb(|c| {
        if !std::mem::replace(&mut started, true) {
            c.extend_from_slice(b"%begin 1 2 1\n");
        }
        while c.len() < 64 * 1024 {
            c.extend_from_slice(&[b'x'; 80]);
            c.push(b'\n');
        }
    });
    assert!(
        matches!(items[..], [Item::Overflow(Overflow::Block { number: 2, ok: true, closed: true, .. }), ref e] if *e == exit)
    );
    assert!(peak <= 2 * block + 2 * 64 * 1024, "peak {peak}");
    // A block with a line of 100 MB.
    let mut started = false;
    let (items, peak) = feed_100mb(|c| {
        if !std::mem::replace(&mut started, true) {
            c.extend_from_slice(b"%begin 1 2 1\nfirst\n");
        }
        c.resize(64 * 1024, b'x');
    });
    assert!(
        matches!(items[..], [Item::Overflow(Overflow::Block { number: 2, ok: true, closed: true, .. }), ref e] if *e == exit)
    );
    assert!(peak <= 2 * (line + 64 * 1024), "peak {peak}");
}

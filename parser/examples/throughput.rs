//! Parser throughput benchmark (plain `std::time::Instant`, no harness).
//!
//! Builds a stream of at least 64 MB: the `%output` lines of the recorded
//! `all-bytes-output` fixture, synthesized `%output` lines of typical
//! terminal text (with `\015\012` and `\033` escapes), and a few
//! notifications and reply blocks interleaved. Feeds it in 64 KiB chunks to
//! [`tmux_control::Parser`] and to a naive line-splitting reference parser
//! (lossy UTF-8 per line, `split_whitespace`, `String`-based decoding), and
//! prints the best of N runs of each, then one JSON line for scripts:
//!
//! `cargo run --release -p tmux-control --example throughput [-- MB [RUNS]]`
//! (`THROUGHPUT_PARSER_ONLY=1` in the environment skips the naive parser,
//! for profiling).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tmux_control::{Item, Notification, Parser};

const CHUNK: usize = 64 * 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let target_mb: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let data = build_stream(target_mb * 1024 * 1024);

    let (items, checksum) = run_parser(&data);
    if std::env::var_os("THROUGHPUT_PARSER_ONLY").is_some() {
        // For profiling the parser alone.
        let t = best_of(runs, || black_box(run_parser(black_box(&data))));
        println!("parser {:.0} MB/s", data.len() as f64 / 1e6 / t.as_secs_f64());
        return;
    }
    let (naive_items, _) = run_naive(&data);
    assert_eq!(items, naive_items, "both parsers must see the same number of items");

    let parser_time = best_of(runs, || black_box(run_parser(black_box(&data))));
    let naive_time = best_of(runs, || black_box(run_naive(black_box(&data))));
    let mb = data.len() as f64 / 1e6;
    let parser_mb_s = mb / parser_time.as_secs_f64();
    let naive_mb_s = mb / naive_time.as_secs_f64();
    let ratio = parser_mb_s / naive_mb_s;
    println!(
        "{mb:.1} MB, {items} items (checksum {checksum}), best of {runs}: parser {parser_mb_s:.0} MB/s, \
         naive {naive_mb_s:.0} MB/s, ratio {ratio:.2}x"
    );
    println!(
        "{{\"parser_mb_s\":{parser_mb_s:.1},\"naive_mb_s\":{naive_mb_s:.1},\"ratio\":{ratio:.2},\"bytes\":{},\"items\":{items}}}",
        data.len()
    );
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            drop(f());
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Parses `data` fed in 64 KiB chunks; returns the item count and a
/// checksum of decoded lengths (so nothing is optimized away).
fn run_parser(data: &[u8]) -> (usize, usize) {
    let mut p = Parser::new();
    let (mut items, mut sum) = (0, 0);
    let mut take = |item: Item| {
        items += 1;
        sum += match item {
            Item::Notification(Notification::Output { data, .. }) => data.len(),
            Item::Block(b) => b.lines.len(),
            _ => 1,
        };
    };
    for chunk in data.chunks(CHUNK) {
        p.feed(chunk);
        while let Some(item) = p.next_item() {
            take(item);
        }
    }
    p.finish();
    while let Some(item) = p.next_item() {
        take(item);
    }
    (items, sum)
}

// ---------------------------------------------------------------------------
// Test data

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "total",
    "drwxr-xr-x",
    "-rw-r--r--",
    "root",
    "4096",
    "Cargo.toml",
    "src",
    "target",
    "README.md",
    "error:",
    "warning:",
    "Compiling",
    "tmux-control",
    "v0.1.0",
    "Finished",
    "release",
    "[",
    "]",
    "=>",
    "ok",
    "test",
    "passed",
    "héllo",
    "wörld",
    "€",
    "→",
    "✓",
];

/// One synthesized `%output` line as tmux would write it: text, colour
/// escapes (`\033[..m`), tabs and `\015\012` line ends.
fn terminal_output_line(rng: &mut Rng, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("%output %{} ", rng.below(8)).as_bytes());
    let rows = 1 + rng.below(12);
    for _ in 0..rows {
        if rng.below(3) == 0 {
            out.extend_from_slice(format!("\\033[{};1m", 30 + rng.below(8)).as_bytes());
        }
        let words = 1 + rng.below(12);
        for w in 0..words {
            if w > 0 {
                out.extend_from_slice(if rng.below(8) == 0 { b"\\011" } else { b" " });
            }
            out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        }
        if rng.below(3) == 0 {
            out.extend_from_slice(b"\\033[0m");
        }
        out.extend_from_slice(b"\\015\\012");
    }
    out.push(b'\n');
}

fn build_stream(min_len: usize) -> Vec<u8> {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/tmux-3.3a/all-bytes-output.raw");
    let raw = std::fs::read(fixture).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let all_bytes: Vec<&[u8]> = raw.split_inclusive(|&b| b == b'\n').filter(|l| l.starts_with(b"%output ")).collect();
    assert!(!all_bytes.is_empty());
    let notifications: &[&[u8]] = &[
        b"%sessions-changed\n",
        b"%window-add @12\n",
        b"%session-changed $3 my session\n",
        b"%layout-change @1 b25d,80x24,0,0,0 b25d,80x24,0,0,0 *\n",
        b"%window-pane-changed @1 %4\n",
        b"%unlinked-window-close @7\n",
    ];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut out = Vec::with_capacity(min_len + 64 * 1024);
    let mut number = 100;
    while out.len() < min_len {
        match rng.below(100) {
            0..=19 => out.extend_from_slice(all_bytes[rng.below(all_bytes.len())]),
            20..=95 => terminal_output_line(&mut rng, &mut out),
            96..=98 => out.extend_from_slice(notifications[rng.below(notifications.len())]),
            _ => {
                number += 1;
                out.extend_from_slice(format!("%begin 1700000000 {number} 1\n").as_bytes());
                for s in 0..rng.below(5) {
                    out.extend_from_slice(format!("${s} session-{s} 1 1700000000\n").as_bytes());
                }
                out.extend_from_slice(format!("%end 1700000000 {number} 1\n").as_bytes());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The naive reference: what a first attempt at a parser would look like.

#[derive(Debug)]
#[allow(dead_code)] // Fields are only built, as a real consumer would.
enum NaiveItem {
    Output { pane: String, data: String },
    Notification { name: String, args: Vec<String> },
    Block { lines: Vec<String>, ok: bool },
    Unknown(String),
}

#[derive(Default)]
struct NaiveParser {
    pending: Vec<u8>,
    block: Option<(String, Vec<String>)>,
}

impl NaiveParser {
    fn feed(&mut self, chunk: &[u8], items: &mut Vec<NaiveItem>) {
        self.pending.extend_from_slice(chunk);
        let Some(last_nl) = self.pending.iter().rposition(|&b| b == b'\n') else { return };
        let rest = self.pending.split_off(last_nl + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        for line in complete[..last_nl].split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            self.line(line.trim_end_matches('\r'), items);
        }
    }

    fn finish(&mut self, items: &mut Vec<NaiveItem>) {
        let last = std::mem::take(&mut self.pending);
        if !last.is_empty() {
            self.line(&String::from_utf8_lossy(&last), items);
        }
        if let Some((_, lines)) = self.block.take() {
            items.push(NaiveItem::Block { lines, ok: false });
        }
    }

    fn line(&mut self, line: &str, items: &mut Vec<NaiveItem>) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some((guard, lines)) = &mut self.block {
            if (words.first() == Some(&"%end") || words.first() == Some(&"%error")) && words[1..].join(" ") == *guard {
                let ok = words[0] == "%end";
                items.push(NaiveItem::Block { lines: std::mem::take(lines), ok });
                self.block = None;
            } else {
                lines.push(line.to_string());
            }
            return;
        }
        match words.first().copied() {
            Some("%begin") if words.len() == 4 => self.block = Some((words[1..].join(" "), Vec::new())),
            Some("%output") if words.len() >= 2 => {
                let payload = line.splitn(3, ' ').nth(2).unwrap_or("");
                items.push(NaiveItem::Output { pane: words[1].to_string(), data: naive_decode(payload) });
            }
            Some(w) if w.starts_with('%') => items.push(NaiveItem::Notification {
                name: w[1..].to_string(),
                args: words[1..].iter().map(|s| s.to_string()).collect(),
            }),
            _ => items.push(NaiveItem::Unknown(line.to_string())),
        }
    }
}

fn naive_decode(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && chars.len() - i >= 4 {
            let oct: String = chars[i + 1..i + 4].iter().collect();
            if let Ok(v) = u8::from_str_radix(&oct, 8) {
                out.push(char::from(v));
                i += 4;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn run_naive(data: &[u8]) -> (usize, usize) {
    let mut p = NaiveParser::default();
    let mut items = Vec::new();
    let (mut count, mut sum) = (0, 0);
    let mut take = |items: &mut Vec<NaiveItem>| {
        for item in items.drain(..) {
            count += 1;
            sum += match item {
                NaiveItem::Output { data, .. } => data.len(),
                NaiveItem::Block { lines, .. } => lines.len(),
                _ => 1,
            };
        }
    };
    for chunk in data.chunks(CHUNK) {
        p.feed(chunk, &mut items);
        take(&mut items);
    }
    p.finish(&mut items);
    take(&mut items);
    (count, sum)
}

//! The streaming parser: bytes in (split anywhere), items out.
//!
//! Rules, for every input:
//! - A line ends at `\n`; one trailing `\r` is stripped. Bytes are never
//!   decoded as text.
//! - Outside a block: `%begin T N F` opens a block; a known notification
//!   becomes [`Item::Notification`]; everything else (unknown `%` lines,
//!   malformed notifications, a stray `%end`, text, empty lines) becomes
//!   [`Item::Unknown`].
//! - Inside a block every line is output, except the `%end T N F` or
//!   `%error T N F` whose numbers match the `%begin` (it closes the block)
//!   and well-formed `%pause`/`%continue` lines, which tmux 3.3a prints
//!   inside `refresh-client` replies (they are returned as notifications and
//!   do not end the block). Other notification-looking lines are kept as
//!   output, since command output (a pane capture) can contain anything.
//! - After [`Parser::finish`], a last line without `\n` is parsed as a line,
//!   and a block still open is returned as [`Item::Incomplete`].

use crate::item::{Block, Item, Notification};
use crate::line::{parse_guard, parse_notification};

/// Buffer space kept consumed before it is reclaimed.
const COMPACT_AT: usize = 64 * 1024;

/// A sans-IO control-mode parser. Feed bytes, then take items until `None`.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    /// Start of the bytes not yet consumed.
    start: usize,
    /// Bytes before this offset are known to contain no `\n`.
    scanned: usize,
    block: Option<OpenBlock>,
    eof: bool,
}

#[derive(Debug)]
struct OpenBlock {
    guard: (u64, u64, u32),
    block: Block,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        } else if self.start >= COMPACT_AT && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Marks the end of the stream: remaining bytes and an open block are
    /// returned by the next calls to [`Parser::next_item`].
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// True while a reply block is open (its `%end` not yet seen).
    pub fn in_block(&self) -> bool {
        self.block.is_some()
    }

    /// Bytes fed but not yet returned as part of an item.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete item, or `None` when more input is needed (or,
    /// after `finish`, when the stream is exhausted).
    pub fn next_item(&mut self) -> Option<Item> {
        loop {
            let from = self.scanned.max(self.start);
            let (line_end, next) = match memchr::memchr(b'\n', &self.buf[from..]) {
                Some(i) => (from + i, from + i + 1),
                None if self.eof && self.start < self.buf.len() => (self.buf.len(), self.buf.len()),
                None => {
                    self.scanned = self.buf.len();
                    return if self.eof { self.block.take().map(|b| Item::Incomplete(b.block)) } else { None };
                }
            };
            let mut line = &self.buf[self.start..line_end];
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            let item = process_line(&mut self.block, line);
            self.start = next;
            self.scanned = next;
            if item.is_some() {
                return item;
            }
        }
    }
}

impl Iterator for Parser {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        self.next_item()
    }
}

/// Parses a whole stream at once (the input is complete: EOF follows).
pub fn parse_all(data: &[u8]) -> Vec<Item> {
    let mut p = Parser::new();
    p.feed(data);
    p.finish();
    p.collect()
}

fn process_line(open: &mut Option<OpenBlock>, line: &[u8]) -> Option<Item> {
    if let Some(ob) = open {
        let guard = line
            .strip_prefix(b"%end ")
            .map(|a| (true, a))
            .or_else(|| line.strip_prefix(b"%error ").map(|a| (false, a)));
        if let Some((ok, args)) = guard {
            if parse_guard(args) == Some(ob.guard) {
                let mut block = open.take().map(|ob| ob.block).unwrap_or_default();
                block.ok = ok;
                return Some(Item::Block(block));
            }
        }
        if line.starts_with(b"%pause ") || line.starts_with(b"%continue ") {
            if let Some(n @ (Notification::Pause { .. } | Notification::Continue { .. })) = parse_notification(line) {
                return Some(Item::Notification(n));
            }
        }
        ob.block.lines.push(line.to_vec());
        return None;
    }
    if let Some(args) = line.strip_prefix(b"%begin ") {
        if let Some(guard @ (time, number, flags)) = parse_guard(args) {
            *open = Some(OpenBlock { guard, block: Block { time, number, flags, ok: false, lines: Vec::new() } });
            return None;
        }
    }
    Some(match parse_notification(line) {
        Some(n) => Item::Notification(n),
        None => Item::Unknown(line.to_vec()),
    })
}

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
//!
//! Memory is bounded by [`Limits`]:
//! - A line longer than [`Limits::max_line`] bytes (counted without its
//!   `\n`, with any `\r`) is never buffered: its bytes are counted and
//!   dropped as they arrive, up to the next `\n` (or the end of the
//!   stream). It is not interpreted (never a notification, `%begin` or
//!   guard). Outside a block it becomes one [`Overflow::Line`] item.
//! - Inside a block, such a line abandons the block, and so does output
//!   whose kept size (each line's bytes plus its `Vec` header, 24 bytes on
//!   64-bit targets, so that many empty lines count too) would go over [`Limits::max_block`]:
//!   the lines kept so far are freed and later output lines are dropped,
//!   but every line is still checked for the block's guard (and for
//!   `%pause`/`%continue`), so the stream stays in sync. The block then
//!   ends as one [`Overflow::Block`] item instead of its [`Item::Block`]
//!   (or [`Item::Incomplete`] at [`Parser::finish`]), with its numbers.
//!   Partial output is never returned: a reply cut short would look whole.
//! - Whether input goes over a limit depends only on the bytes, not on how
//!   they were split, so chunking still never changes the items.
//!
//! So the parser holds at most: the bytes fed since items were last taken
//! out (one partial line of at most `max_line` bytes when the caller drains
//! after each feed), plus one open block's kept lines (at most `max_block`
//! bytes, plus vector slack), plus a few words per over-long line not yet
//! returned. Nothing grows with the size of the excess.
//!
//! The defaults, [`Limits::DEFAULT_MAX_LINE`] (4 MiB) and
//! [`Limits::DEFAULT_MAX_BLOCK`] (64 MiB), are far above what tmux sends.
//! tmux 3.2+ cuts a pane's output into `%output` lines of at most about
//! 2.7 KiB of data (a third of its 8 KiB control buffer), 11 KiB once
//! escaped; older versions wrote what they had read from the pane at once
//! (tens of KiB). Notifications carry names and layouts. The longest lines
//! are reply lines, such as a `capture-pane -J -e` line joining a long
//! wrapped line with its colour escapes: 4 MiB is still about 100 times a
//! full 1000-column, 20-row joined line with an escape per cell. Blocks are
//! bigger: a `list-sessions` or `list-panes -a` row is 100 to 300 bytes,
//! so 64 MiB holds over 200 000 sessions or panes, and a whole
//! `capture-pane -S -` of a 50 000-line history is a few MiB.

use std::collections::VecDeque;

use crate::item::{Block, Item, Notification, Overflow};
use crate::line::{parse_guard, parse_notification};

/// Buffer space kept consumed before it is reclaimed.
const COMPACT_AT: usize = 64 * 1024;

/// What a kept output line costs on top of its bytes (its `Vec` header).
const LINE_COST: usize = std::mem::size_of::<Vec<u8>>();

/// The memory limits of a [`Parser`] (see the [crate] documentation).
///
/// ```
/// use tmux_control::{Limits, Parser};
/// let limits = Limits::default().with_max_line(1024).with_max_block(64 * 1024);
/// let p = Parser::with_limits(limits);
/// assert_eq!(p.limits().max_line, 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The longest line kept, in bytes, without its `\n` (a trailing `\r`
    /// counts). Longer lines are dropped as [`Overflow`]s.
    pub max_line: usize,
    /// The most output a reply block keeps, in bytes: the sum over its
    /// lines of their length plus the size of a `Vec` header (24 bytes on
    /// 64-bit targets). A bigger block is dropped as an [`Overflow::Block`].
    pub max_block: usize,
}

impl Limits {
    /// Default [`Limits::max_line`]: 4 MiB.
    pub const DEFAULT_MAX_LINE: usize = 4 << 20;
    /// Default [`Limits::max_block`]: 64 MiB.
    pub const DEFAULT_MAX_BLOCK: usize = 64 << 20;
    /// The default limits.
    pub const DEFAULT: Limits = Limits { max_line: Self::DEFAULT_MAX_LINE, max_block: Self::DEFAULT_MAX_BLOCK };

    /// These limits with another [`Limits::max_line`].
    pub const fn with_max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    /// These limits with another [`Limits::max_block`].
    pub const fn with_max_block(mut self, bytes: usize) -> Self {
        self.max_block = bytes;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A sans-IO control-mode parser. Feed bytes, then take items until `None`.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    /// Start of the bytes not yet consumed.
    start: usize,
    /// Start of the last, incomplete line: `buf[tail..]` holds no `\n`,
    /// and `buf[tail - 1]` is a `\n` when `tail > start`.
    tail: usize,
    /// Over-long lines dropped from the buffer, in stream order. Only the
    /// last one can still be growing (`!done`, at the end of the buffer).
    skips: VecDeque<Skip>,
    block: Option<OpenBlock>,
    eof: bool,
    limits: Limits,
}

/// An over-long line, dropped from the buffer where it was.
#[derive(Debug)]
struct Skip {
    /// The buffer offset of the line (a line start).
    at: usize,
    /// Its length so far (without `\n`).
    len: u64,
    /// Its `\n` has been seen.
    done: bool,
}

#[derive(Debug)]
struct OpenBlock {
    guard: (u64, u64, u32),
    block: Block,
    /// Cost of the kept lines: their bytes plus `LINE_COST` each.
    kept: usize,
    /// All output bytes seen, each line with its `\n`.
    bytes: u64,
    /// Over a limit: output lines are dropped.
    over: bool,
}

impl OpenBlock {
    fn push(&mut self, line: &[u8], raw_len: usize, limits: &Limits) {
        self.bytes = self.bytes.saturating_add(raw_len as u64 + 1);
        if self.over {
            return;
        }
        let kept = self.kept.saturating_add(line.len()).saturating_add(LINE_COST);
        if kept > limits.max_block {
            self.abandon();
        } else {
            self.kept = kept;
            self.block.lines.push(line.to_vec());
        }
    }

    /// Drops the output: the block will end as an overflow.
    fn abandon(&mut self) {
        self.over = true;
        self.kept = 0;
        self.block.lines = Vec::new();
    }

    /// The item for the block ending: `ok` at its guard, `None` at EOF.
    fn end(self, ok: Option<bool>) -> Item {
        let OpenBlock { mut block, bytes, over, .. } = self;
        if over {
            let Block { time, number, flags, .. } = block;
            let (ok, closed) = (ok == Some(true), ok.is_some());
            return Item::Overflow(Overflow::Block { time, number, flags, ok, closed, bytes });
        }
        match ok {
            Some(ok) => {
                block.ok = ok;
                Item::Block(block)
            }
            None => Item::Incomplete(block),
        }
    }
}

impl Parser {
    /// A parser at the start of a stream, with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser at the start of a stream, with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// The parser's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Appends bytes read from the stream. The bytes of a line over
    /// [`Limits::max_line`] are counted and dropped here, never buffered.
    pub fn feed(&mut self, mut data: &[u8]) {
        self.compact();
        let max_line = self.limits.max_line as u64;
        loop {
            // The first line of `data` continues the line in progress.
            let newline = memchr::memchr(b'\n', data);
            let seg = newline.unwrap_or(data.len());
            if let Some(s) = self.skips.back_mut().filter(|s| !s.done) {
                s.len = s.len.saturating_add(seg as u64);
                s.done = newline.is_some();
            } else {
                let so_far = (self.buf.len() - self.tail.max(self.start)) as u64;
                let len = so_far.saturating_add(seg as u64);
                if len > max_line {
                    self.skip_tail(len, newline.is_some());
                } else {
                    self.buf.extend_from_slice(&data[..newline.map_or(seg, |i| i + 1)]);
                }
            }
            let Some(i) = newline else { return };
            self.tail = self.buf.len();
            data = &data[i + 1..];
            if data.len() as u64 <= max_line {
                // No line of the rest can be over the limit: take it whole.
                self.buf.extend_from_slice(data);
                if let Some(j) = memchr::memrchr(b'\n', data) {
                    self.tail = self.buf.len() - data.len() + j + 1;
                }
                return;
            }
        }
    }

    /// Drops the line in progress at the end of the buffer (`len` bytes so
    /// far, complete when `done`), remembering where it was.
    fn skip_tail(&mut self, len: u64, done: bool) {
        let at = self.tail.max(self.start);
        self.buf.truncate(at);
        self.tail = at;
        self.skips.push_back(Skip { at, len, done });
    }

    /// Reclaims the consumed start of the buffer.
    fn compact(&mut self) {
        let shift = self.start;
        if shift == self.buf.len() {
            self.buf.clear();
        } else if shift >= COMPACT_AT && shift * 2 >= self.buf.len() {
            self.buf.drain(..shift);
        } else {
            return;
        }
        self.start = 0;
        self.tail = self.tail.saturating_sub(shift);
        for s in &mut self.skips {
            s.at -= shift;
        }
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

    /// Bytes fed but not yet returned as part of an item (the dropped bytes
    /// of over-long lines are not counted: they are not kept).
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Heap bytes the parser holds (allocator overhead aside): its
    /// buffer's capacity, the open block's kept lines and their vector's
    /// capacity, and the records of over-long lines. For tests and
    /// diagnostics; constant time.
    pub fn heap_bytes(&self) -> usize {
        // Kept lines are exact-size copies, so their bytes are `kept` less
        // their headers.
        let block = self
            .block
            .as_ref()
            .map_or(0, |ob| ob.kept - ob.block.lines.len() * LINE_COST + ob.block.lines.capacity() * LINE_COST);
        self.buf.capacity() + self.skips.capacity() * std::mem::size_of::<Skip>() + block
    }

    /// The next complete item, or `None` when more input is needed (or,
    /// after `finish`, when the stream is exhausted).
    pub fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(&Skip { at, len, done }) = self.skips.front() {
                if at == self.start {
                    if !done && !self.eof {
                        return None;
                    }
                    self.skips.pop_front();
                    match &mut self.block {
                        Some(ob) => {
                            ob.bytes = ob.bytes.saturating_add(len).saturating_add(1);
                            ob.abandon();
                            continue;
                        }
                        None => return Some(Item::Overflow(Overflow::Line { bytes: len })),
                    }
                }
            }
            let found =
                if self.start < self.tail { memchr::memchr(b'\n', &self.buf[self.start..self.tail]) } else { None };
            let (line_end, next) = match found {
                Some(i) => (self.start + i, self.start + i + 1),
                None if self.eof && self.start < self.buf.len() => (self.buf.len(), self.buf.len()),
                None => return if self.eof { self.block.take().map(|ob| ob.end(None)) } else { None },
            };
            let item = process_line(&mut self.block, &self.buf[self.start..line_end], &self.limits);
            self.start = next;
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

/// One line (without its `\n`, at most `max_line` bytes).
fn process_line(open: &mut Option<OpenBlock>, raw: &[u8], limits: &Limits) -> Option<Item> {
    let line = match raw {
        [head @ .., b'\r'] => head,
        _ => raw,
    };
    if let Some(ob) = open {
        let guard = line
            .strip_prefix(b"%end ")
            .map(|a| (true, a))
            .or_else(|| line.strip_prefix(b"%error ").map(|a| (false, a)));
        if let Some((ok, args)) = guard {
            if parse_guard(args) == Some(ob.guard) {
                return open.take().map(|ob| ob.end(Some(ok)));
            }
        }
        if line.starts_with(b"%pause ") || line.starts_with(b"%continue ") {
            if let Some(n @ (Notification::Pause { .. } | Notification::Continue { .. })) = parse_notification(line) {
                return Some(Item::Notification(n));
            }
        }
        ob.push(line, raw.len(), limits);
        return None;
    }
    if let Some(args) = line.strip_prefix(b"%begin ") {
        if let Some(guard @ (time, number, flags)) = parse_guard(args) {
            let block = Block { time, number, flags, ok: false, lines: Vec::new() };
            *open = Some(OpenBlock { guard, block, kept: 0, bytes: 0, over: false });
            return None;
        }
    }
    Some(match parse_notification(line) {
        Some(n) => Item::Notification(n),
        None => Item::Unknown(line.to_vec()),
    })
}

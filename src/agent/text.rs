//! Terminal output as text lines: [`Lines`] turns a pane's raw output
//! bytes (exactly what the program wrote, as `pipe-pane` delivers them, in
//! chunks split anywhere, even inside an escape sequence or a UTF-8
//! character) into text lines for regex waits, and extracts ctb's own run
//! markers ([`Marker`]). [`strip`] does the same for a whole buffer (for
//! captures).
//!
//! Sans-IO: no tmux, no tokio, no files; bytes in, [`Piece`]s out. The
//! result never depends on how the input was split into chunks.
//!
//! What a line is, like a terminal would show it:
//!
//! - `\n` ends a line; the `\r` of `\r\n` changes nothing (even split
//!   across chunks), because a lone `\r` only moves the cursor to column 0:
//!   the text that follows overwrites the line from there, char by char,
//!   and a shorter overwrite leaves the rest of the old text (`"50%\r7"`
//!   reads `"70%"`). `\n` emits the whole line, wherever the cursor is.
//! - Backspace (0x08) moves the cursor one char left (`"ab\x08c"` reads
//!   `"ac"`); at column 0 it does nothing. TAB is kept as `\t`; every other
//!   C0 control (NUL, BEL, VT, FF, ...) and DEL are dropped.
//! - Escape sequences are removed: CSI (`ESC [` ... final 0x40-0x7E), OSC
//!   (`ESC ]` ... BEL or `ESC \`), DCS/SOS/PM/APC (`ESC P`/`X`/`^`/`_` ...
//!   `ESC \`), and the short `ESC` sequences (`ESC (B`, `ESC =`, `ESC 7`).
//!   As in xterm, a C0 control inside a CSI or short sequence is executed
//!   (`\n` still ends the line), CAN/SUB abort the sequence, and an `ESC`
//!   inside any sequence starts a new one. A byte >= 0x80 inside a CSI or
//!   short sequence aborts it and is read as text.
//! - UTF-8 is decoded first; invalid UTF-8 becomes U+FFFD (one per
//!   maximal invalid subpart, like [`String::from_utf8_lossy`]). A lone
//!   0x9B that is not part of valid UTF-8 is the 8-bit CSI and starts a
//!   CSI; other C1 bytes outside UTF-8 are just invalid (U+FFFD). A
//!   UTF-8 character cut by a control byte is U+FFFD. The other 8-bit
//!   introducers and the 8-bit ST (0x9C) are not recognised (in UTF-8
//!   text they are continuation bytes).
//!
//! Markers: an OSC whose body is `7769;ctb;S;<nonce>` is a
//! [`MarkerKind::Start`], `7769;ctb;E;<nonce>;<status>` a
//! [`MarkerKind::End`] with its status (decimal i32, optional leading
//! `-`). The nonce is non-empty and has no `;`. Anything else (an extra
//! field, a bad status, a control byte in the body, a body over 256 bytes,
//! invalid UTF-8) is not a marker, and the OSC is dropped like any other.
//! Markers come out in stream order with the lines: if the current line
//! is non-empty when a marker arrives (the cursor is not at the start of a
//! fresh line), that text is emitted first as a [`Piece::Line`] and the
//! marker starts a fresh line. A Start marker printed right after the
//! echoed command's newline therefore needs no extra line break.
//!
//! Bounds: a line longer than 64 KiB ([`MAX_LINE`]) is emitted in pieces
//! of at most 64 KiB (split at a char boundary; overwrites with wider
//! chars may briefly reach 4x that before being emitted), an escape
//! sequence longer than 4 KiB ([`MAX_SEQ`]) is dropped and the bytes after
//! it are read as text. Memory is bounded whatever the input; cost is
//! linear in the input, except that an overwrite after `\r` or backspace
//! with chars of a different UTF-8 width moves the rest of the line (at
//! most 64 KiB).
//!
//! Throughput measured (release, `cargo test --release --lib
//! agent::text::tests::throughput -- --nocapture`, 4 KiB chunks, one
//! machine): about 1.3 GB/s on plain ASCII lines of 80 chars (one
//! allocation per line emitted dominates), about 230 MB/s on dense mixed
//! text (colour CSI, UTF-8, `\r\n`, progress `\r`, OSC titles, markers:
//! a line or sequence every ~40 bytes). Plain text runs are found eight
//! bytes at a time (no per-byte work, no per-byte allocation); escape
//! sequences are walked byte by byte.

/// Longest line kept before it is emitted in pieces, in bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest escape sequence (from its `ESC`), in bytes; a longer one is dropped.
pub const MAX_SEQ: usize = 4 * 1024;
/// Longest OSC body that can be a marker, in bytes.
const MAX_MARKER: usize = 256;

/// What [`Lines::push`] yields, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A completed line, without its `\n`.
    Line(String),
    /// One of ctb's run markers.
    Marker(Marker),
}

/// A ctb run marker (see the module doc for the OSC format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerKind,
    pub nonce: String,
    /// The exit status, for [`MarkerKind::End`] only.
    pub status: Option<i32>,
}

/// Start or end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Start,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After `ESC`.
    Esc,
    /// `ESC` and intermediates (0x20-0x2F), before the final byte.
    EscInter,
    Csi,
    Osc,
    /// `ESC` inside an OSC: `\` ends it, anything else aborts it.
    OscEsc,
    /// DCS, SOS, PM, APC: ignored up to `ESC \`.
    Str,
    StrEsc,
}

/// Streaming terminal-text assembler (see the module doc).
#[derive(Debug)]
pub struct Lines {
    state: State,
    /// Bytes of the current escape sequence so far, from its `ESC`.
    seq_len: usize,
    /// The OSC body so far (up to [`MAX_MARKER`] bytes).
    osc: Vec<u8>,
    /// The OSC body cannot be a marker (too long, control byte).
    osc_bad: bool,
    /// An incomplete UTF-8 character at the end of the last chunk.
    utf8: [u8; 4],
    utf8_len: usize,
    /// The current line.
    line: String,
    /// Cursor as a byte offset in `line`; `None` at the end (appending).
    cursor: Option<usize>,
    lines_seen: u64,
}

impl Default for Lines {
    fn default() -> Self {
        Self::new()
    }
}

impl Lines {
    pub fn new() -> Self {
        Lines {
            state: State::Ground,
            seq_len: 0,
            osc: Vec::new(),
            osc_bad: false,
            utf8: [0; 4],
            utf8_len: 0,
            line: String::new(),
            cursor: None,
            lines_seen: 0,
        }
    }

    /// Feed raw bytes; returns completed lines and markers, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            i = if self.state == State::Ground {
                self.ground(bytes, i, &mut out)
            } else {
                self.escape(bytes, i, &mut out)
            };
        }
        out
    }

    /// The current unterminated last line (text so far, e.g. a prompt
    /// `"Password: "`), `""` if none.
    pub fn partial(&self) -> &str {
        &self.line
    }

    /// End of stream: the partial line (if non-empty) as a last Line. An
    /// incomplete UTF-8 character becomes U+FFFD; an unterminated escape
    /// sequence is dropped. The assembler is then fresh again (the count
    /// of lines is kept).
    pub fn finish(&mut self) -> Vec<Piece> {
        let mut out = Vec::new();
        if self.utf8_len > 0 {
            self.utf8_len = 0;
            self.put("\u{FFFD}", &mut out);
        }
        self.state = State::Ground;
        self.osc.clear();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.cursor = None;
        out
    }

    /// Counts: lines completed so far (every [`Piece::Line`] emitted).
    pub fn lines_seen(&self) -> u64 {
        self.lines_seen
    }

    /// Text and control bytes, from `bytes[i]`; returns where to go on.
    fn ground(&mut self, bytes: &[u8], i: usize, out: &mut Vec<Piece>) -> usize {
        if self.utf8_len > 0 {
            return self.finish_utf8(bytes, i, out);
        }
        let j = i + find_special(&bytes[i..]);
        if j > i {
            if let Some(k) = self.text(&bytes[i..j], j == bytes.len(), out) {
                // 8-bit CSI.
                self.state = State::Csi;
                self.seq_len = 1;
                return i + k + 1;
            }
            return j;
        }
        self.control(bytes[i], out);
        i + 1
    }

    /// A run of non-control bytes: decode UTF-8 and put it on the line.
    /// Returns the offset of a lone 0x9B (8-bit CSI), where it stops.
    fn text(&mut self, run: &[u8], at_end: bool, out: &mut Vec<Piece>) -> Option<usize> {
        let mut rest = run;
        let mut off = 0;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.put(s, out);
                    return None;
                }
                Err(e) => {
                    let v = e.valid_up_to();
                    if let Ok(s) = std::str::from_utf8(&rest[..v]) {
                        self.put(s, out);
                    }
                    match e.error_len() {
                        None => {
                            let tail = &rest[v..];
                            if at_end {
                                self.utf8[..tail.len()].copy_from_slice(tail);
                                self.utf8_len = tail.len();
                            } else {
                                self.put("\u{FFFD}", out);
                            }
                            return None;
                        }
                        Some(n) => {
                            if n == 1 && rest[v] == 0x9b {
                                return Some(off + v);
                            }
                            self.put("\u{FFFD}", out);
                            rest = &rest[v + n..];
                            off += v + n;
                        }
                    }
                }
            }
        }
    }

    /// Complete (or reject) the UTF-8 character left over from the last
    /// chunk with the bytes at `bytes[i..]`.
    fn finish_utf8(&mut self, bytes: &[u8], i: usize, out: &mut Vec<Piece>) -> usize {
        let p = self.utf8_len;
        let take = (4 - p).min(bytes.len() - i);
        let mut tmp = [0u8; 4];
        tmp[..p].copy_from_slice(&self.utf8[..p]);
        tmp[p..p + take].copy_from_slice(&bytes[i..i + take]);
        let t = &tmp[..p + take];
        let valid = match std::str::from_utf8(t) {
            Ok(s) => s,
            Err(e) if e.valid_up_to() > 0 => std::str::from_utf8(&t[..e.valid_up_to()]).unwrap_or_default(),
            Err(e) => match e.error_len() {
                None => {
                    // Still incomplete: the chunk ended.
                    self.utf8[p..p + take].copy_from_slice(&bytes[i..i + take]);
                    self.utf8_len = p + take;
                    return i + take;
                }
                Some(n) => {
                    self.utf8_len = 0;
                    self.put("\u{FFFD}", out);
                    return i + n.saturating_sub(p);
                }
            },
        };
        self.utf8_len = 0;
        let c = valid.chars().next().unwrap_or('\u{FFFD}');
        let mut buf = [0u8; 4];
        self.put(c.encode_utf8(&mut buf), out);
        i + c.len_utf8().saturating_sub(p)
    }

    /// A C0 control or DEL in text.
    fn control(&mut self, b: u8, out: &mut Vec<Piece>) {
        match b {
            b'\n' => self.end_line(out),
            b'\r' => self.cursor = Some(0),
            0x08 => {
                let pos = self.cursor.unwrap_or(self.line.len()).min(self.line.len());
                let back = self.line[..pos].chars().next_back().map_or(0, char::len_utf8);
                self.cursor = Some(pos - back);
            }
            b'\t' => self.put("\t", out),
            0x1b => {
                self.state = State::Esc;
                self.seq_len = 1;
            }
            _ => {}
        }
    }

    /// One byte of an escape sequence at `bytes[i]`; returns where to go on.
    fn escape(&mut self, bytes: &[u8], i: usize, out: &mut Vec<Piece>) -> usize {
        if self.seq_len >= MAX_SEQ {
            // Too long: drop it, read on as text.
            self.state = State::Ground;
            self.osc.clear();
            return i;
        }
        let b = bytes[i];
        self.seq_len += 1;
        match self.state {
            State::Esc => match b {
                b'[' => self.state = State::Csi,
                b']' => {
                    self.state = State::Osc;
                    self.osc.clear();
                    self.osc_bad = false;
                }
                b'P' | b'X' | b'^' | b'_' => self.state = State::Str,
                0x20..=0x2f => self.state = State::EscInter,
                0x30..=0x7e => self.state = State::Ground,
                _ => return self.seq_control(b, i, out),
            },
            State::EscInter => match b {
                0x20..=0x2f => {}
                0x30..=0x7e => self.state = State::Ground,
                _ => return self.seq_control(b, i, out),
            },
            State::Csi => match b {
                0x20..=0x3f => {}
                0x40..=0x7e => self.state = State::Ground,
                _ => return self.seq_control(b, i, out),
            },
            State::Osc => match b {
                0x07 => self.end_osc(out),
                0x1b => self.state = State::OscEsc,
                0x18 | 0x1a => self.state = State::Ground,
                0x00..=0x1f => self.osc_bad = true,
                _ => {
                    if self.osc.len() < MAX_MARKER {
                        self.osc.push(b);
                    } else {
                        self.osc_bad = true;
                    }
                }
            },
            State::OscEsc | State::StrEsc => {
                if b == b'\\' {
                    if self.state == State::OscEsc {
                        self.end_osc(out);
                    }
                    self.state = State::Ground;
                } else {
                    // The sequence is aborted; this ESC starts another.
                    self.osc.clear();
                    self.state = State::Esc;
                    self.seq_len = 1;
                    return i;
                }
            }
            State::Str => match b {
                0x1b => self.state = State::StrEsc,
                0x18 | 0x1a => self.state = State::Ground,
                _ => {}
            },
            State::Ground => {}
        }
        i + 1
    }

    /// A byte that is not part of a CSI or short ESC sequence, inside one.
    fn seq_control(&mut self, b: u8, i: usize, out: &mut Vec<Piece>) -> usize {
        match b {
            0x1b => {
                self.state = State::Esc;
                self.seq_len = 1;
            }
            0x18 | 0x1a => self.state = State::Ground,
            0x7f => {}
            0x00..=0x1f => self.control(b, out),
            _ => {
                // A byte >= 0x80: abort, read it as text.
                self.state = State::Ground;
                return i;
            }
        }
        i + 1
    }

    /// The OSC ended: emit it if it is a marker.
    fn end_osc(&mut self, out: &mut Vec<Piece>) {
        self.state = State::Ground;
        let marker = if self.osc_bad { None } else { parse_marker(&self.osc) };
        self.osc.clear();
        if let Some(m) = marker {
            if !self.line.is_empty() {
                self.end_line(out);
            }
            self.cursor = None;
            out.push(Piece::Marker(m));
        }
    }

    /// Emit the current line; a fresh line starts.
    fn end_line(&mut self, out: &mut Vec<Piece>) {
        out.push(Piece::Line(String::from(self.line.as_str())));
        self.line.clear();
        self.cursor = None;
        self.lines_seen += 1;
    }

    /// Write text at the cursor (overwriting after `\r`/backspace).
    fn put(&mut self, mut s: &str, out: &mut Vec<Piece>) {
        if let Some(pos) = self.cursor {
            if pos < self.line.len() {
                // Overwrite char by char up to the end of the line.
                let mut li = pos;
                let mut si = 0;
                for c in s.chars() {
                    if li >= self.line.len() {
                        break;
                    }
                    li += self.line[li..].chars().next().map_or(1, char::len_utf8);
                    si += c.len_utf8();
                }
                self.line.replace_range(pos..li, &s[..si]);
                s = &s[si..];
                let at = pos + si;
                self.cursor = if at < self.line.len() { Some(at) } else { None };
                if self.line.len() > MAX_LINE {
                    self.end_line(out);
                }
                if s.is_empty() {
                    return;
                }
            } else {
                self.cursor = None;
            }
        }
        // Appending.
        while self.line.len() + s.len() > MAX_LINE {
            let mut room = MAX_LINE.saturating_sub(self.line.len());
            while !s.is_char_boundary(room) {
                room -= 1;
            }
            self.line.push_str(&s[..room]);
            s = &s[room..];
            self.end_line(out);
        }
        self.line.push_str(s);
    }
}

/// The whole-buffer convenience (for captures): all lines joined with
/// `\n`, plus the unterminated last line; markers are dropped.
pub fn strip(bytes: &[u8]) -> String {
    let mut lines = Lines::new();
    let mut pieces = lines.push(bytes);
    pieces.extend(lines.finish());
    let mut text = String::with_capacity(bytes.len());
    let mut first = true;
    for p in pieces {
        if let Piece::Line(l) = p {
            if !first {
                text.push('\n');
            }
            first = false;
            text.push_str(&l);
        }
    }
    text
}

/// Whether `b` is not plain text: a C0 control or DEL.
fn special(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Offset of the first C0 control or DEL in `b` (`b.len()` if none),
/// eight bytes at a time.
fn find_special(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        // A byte < 0x20 (exact for the lowest flagged byte).
        let lt = x.wrapping_sub(LO * 0x20) & !x & HI;
        // A byte == 0x7F.
        let y = x ^ (LO * 0x7f);
        let del = y.wrapping_sub(LO) & !y & HI;
        let m = lt | del;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    for &c in chunks.remainder() {
        if special(c) {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// A ctb marker from an OSC body, `None` if it is not one.
fn parse_marker(body: &[u8]) -> Option<Marker> {
    let s = std::str::from_utf8(body).ok()?;
    let mut parts = s.strip_prefix("7769;ctb;")?.split(';');
    let kind = parts.next()?;
    let nonce = parts.next()?;
    if nonce.is_empty() {
        return None;
    }
    let (kind, status) = match kind {
        "S" => (MarkerKind::Start, None),
        "E" => {
            let st = parts.next()?;
            let digits = st.strip_prefix('-').unwrap_or(st);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (MarkerKind::End, Some(st.parse::<i32>().ok()?))
        }
        _ => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Marker { kind, nonce: nonce.to_string(), status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn line(s: &str) -> Piece {
        Piece::Line(s.to_string())
    }

    fn start(n: &str) -> Piece {
        Piece::Marker(Marker { kind: MarkerKind::Start, nonce: n.to_string(), status: None })
    }

    fn end(n: &str, st: i32) -> Piece {
        Piece::Marker(Marker { kind: MarkerKind::End, nonce: n.to_string(), status: Some(st) })
    }

    /// Everything out of one input: pieces of push, the partial, pieces of finish.
    fn run(chunks: &[&[u8]]) -> (Vec<Piece>, String, Vec<Piece>, u64) {
        let mut l = Lines::new();
        let mut pieces = Vec::new();
        for c in chunks {
            pieces.extend(l.push(c));
        }
        let partial = l.partial().to_string();
        let fin = l.finish();
        (pieces, partial, fin, l.lines_seen())
    }

    /// All pieces, whole input in one push, then finish.
    fn all(input: &[u8]) -> Vec<Piece> {
        let (mut p, _, f, _) = run(&[input]);
        p.extend(f);
        p
    }

    /// (input, pieces out of push + finish).
    fn cases() -> Vec<(Vec<u8>, Vec<Piece>)> {
        let b = |s: &str| s.as_bytes().to_vec();
        vec![
            (b("hello\nworld\n"), vec![line("hello"), line("world")]),
            (b("a\r\nb\r\n"), vec![line("a"), line("b")]),
            (b("Password: "), vec![line("Password: ")]),
            (b("50%\r7\n"), vec![line("70%")]),
            (b("progress 10%\rprogress 100%\n"), vec![line("progress 100%")]),
            (b("ab\x08c\n"), vec![line("ac")]),
            (b("\x08\x08x\n"), vec![line("x")]),
            (b("é\x08e\n"), vec![line("e")]),
            (b("abc\r\u{e9}\u{1F600}\n"), vec![line("\u{e9}\u{1F600}c")]),
            (b("a\x07b\x00c\td\n"), vec![line("abc\td")]),
            (b("\x1b[1;31mred\x1b[0m plain\n"), vec![line("red plain")]),
            (b("\x1b[?2004hx\x1b[K\n"), vec![line("x")]),
            (b("\x1b]0;title\x07text\n"), vec![line("text")]),
            (b("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n"), vec![line("link")]),
            (b("\x1bP1$r0m\x1b\\a\x1b_apc\x1b\\b\x1b^pm\x1b\\c\x1bXsos\x1b\\d\n"), vec![line("abcd")]),
            (b("\x1b(Bx\x1b=y\x1b7z\x1b8\x1b#8w\n"), vec![line("xyzw")]),
            (b("\x1b[31\nm"), vec![line("")]),
            (b("\x1b[3\x18mx\n"), vec![line("mx")]),
            (b("\x1b]0;t\x1b[1mx\n"), vec![line("x")]),
            (b"\x9b1mx\n".to_vec(), vec![line("x")]),
            (b"\xe2\x9b\x81\n".to_vec(), vec![line("\u{26c1}")]),
            (b"a\xffb\xe2\x82\n".to_vec(), vec![line("a\u{FFFD}b\u{FFFD}")]),
            (b"\xe0\xa0A\xc3".to_vec(), vec![line("\u{FFFD}A\u{FFFD}")]),
            (b"\x80\x81\n".to_vec(), vec![line("\u{FFFD}\u{FFFD}")]),
            (b"\xf0\x9f\x98\x80\x1b[0m\xf0\x9f\n".to_vec(), vec![line("\u{1F600}\u{FFFD}")]),
            (
                b("$ echo hi\n\x1b]7769;ctb;S;n1\x07hi\n\x1b]7769;ctb;E;n1;0\x1b\\$ "),
                vec![line("$ echo hi"), start("n1"), line("hi"), end("n1", 0), line("$ ")],
            ),
            (b("out\x1b]7769;ctb;E;k;-127\x07\n"), vec![line("out"), end("k", -127), line("")]),
            (b("x\x1b]7769;ctb;E;k;abc\x07y\x1b]7769;ctb;E;k;1;2\x07\x1b]7769;ctb;S;\x07\n"), vec![line("xy")]),
            (b("\x1b]7769;ctb;S;a;b\x07\x1b]7769;ctb;Q;a\x07\x1b]7769;ctb;E;k;99999999999\x07z"), vec![line("z")]),
            (b("\x1b]7769;ctb;S;n\x01\x07q"), vec![line("q")]),
            (b("a\x7fb\n\n"), vec![line("ab"), line("")]),
            (b("\x1b[1\x1b]7769;ctb;S;q\x07x\x1b(\x1b[0mz\n"), vec![start("q"), line("xz")]),
            (b"\x1b[1\xc3\xa9\x1b(\xc3\xa9\n".to_vec(), vec![line("éé")]),
        ]
    }

    #[test]
    fn cases_come_out_right() {
        for (input, want) in cases() {
            assert_eq!(all(&input), want, "input {:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn every_split_gives_the_same_result() {
        let mut inputs: Vec<Vec<u8>> = cases().into_iter().map(|(i, _)| i).collect();
        // Bounds too, across splits.
        let mut long = vec![b'x'; MAX_LINE - 1];
        long.extend("é\u{1F600}y\n".as_bytes());
        inputs.push(long);
        let mut seq = b"\x1b[".to_vec();
        seq.extend(vec![b'1'; MAX_SEQ]);
        seq.extend(b"mq\n");
        inputs.push(seq);
        for input in &inputs {
            let whole = run(&[input]);
            // Every split; for the long inputs, every split near the bounds.
            let splits: Vec<usize> = if input.len() < 10_000 {
                (0..=input.len()).collect()
            } else {
                let n = input.len();
                (0..64).chain((0..n).step_by(257)).chain(MAX_SEQ - 8..MAX_SEQ + 8).chain(n - 64..=n).collect()
            };
            for k in splits {
                let got = run(&[&input[..k], &input[k..]]);
                assert_eq!(got, whole, "split at {k} of {:?}", String::from_utf8_lossy(input));
            }
            if input.len() < 1000 {
                let bytes: Vec<&[u8]> = input.chunks(1).collect();
                assert_eq!(run(&bytes), whole, "byte by byte {:?}", String::from_utf8_lossy(input));
                for a in 0..input.len() {
                    for b in a..=input.len() {
                        let got = run(&[&input[..a], &input[a..b], &input[b..]]);
                        assert_eq!(got, whole, "split at {a},{b}");
                    }
                }
            }
        }
    }

    #[test]
    fn partial_and_counts() {
        let mut l = Lines::new();
        assert_eq!(l.partial(), "");
        assert_eq!(l.push(b"one\ntwo\r"), vec![line("one")]);
        assert_eq!(l.partial(), "two");
        assert_eq!(l.push(b"\nPass\x1b[1mword: "), vec![line("two")]);
        assert_eq!(l.partial(), "Password: ");
        assert_eq!(l.lines_seen(), 2);
        assert_eq!(l.finish(), vec![line("Password: ")]);
        assert_eq!(l.lines_seen(), 3);
        assert_eq!(l.partial(), "");
        assert_eq!(l.finish(), vec![]);
        // Fresh again after finish, also mid-sequence.
        l.push(b"\x1b]0;unterminated");
        l.finish();
        assert_eq!(l.push(b"ok\n"), vec![line("ok")]);
    }

    #[test]
    fn long_lines_are_split_and_sequences_dropped() {
        let mut input = vec![b'a'; MAX_LINE * 2 + 10];
        input.push(b'\n');
        let got = all(&input);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], Piece::Line("a".repeat(MAX_LINE)));
        assert_eq!(got[1], Piece::Line("a".repeat(MAX_LINE)));
        assert_eq!(got[2], Piece::Line("a".repeat(10)));
        // Exactly MAX_LINE then a newline: one line.
        let mut input = vec![b'b'; MAX_LINE];
        input.push(b'\n');
        assert_eq!(all(&input), vec![Piece::Line("b".repeat(MAX_LINE))]);
        // Split at a char boundary.
        let mut input = vec![b'c'; MAX_LINE - 1];
        input.extend("é\n".as_bytes());
        assert_eq!(all(&input), vec![Piece::Line("c".repeat(MAX_LINE - 1)), line("é")]);
        // An OSC that never ends: dropped after MAX_SEQ bytes, then text.
        let mut input = b"\x1b]0;".to_vec();
        input.extend(vec![b'z'; MAX_SEQ - 4]);
        input.extend(b"tail\n");
        assert_eq!(all(&input), vec![line("tail")]);
        // Overwrites with wider chars stay bounded.
        let mut l = Lines::new();
        l.push(&vec![b'd'; MAX_LINE]);
        let wide = "é".repeat(MAX_LINE);
        let out = l.push(format!("\r{wide}").as_bytes());
        assert!(l.partial().len() <= MAX_LINE);
        assert!(out.iter().all(|p| matches!(p, Piece::Line(s) if s.len() <= 2 * MAX_LINE)));
    }

    #[test]
    fn strip_joins_lines() {
        assert_eq!(strip(b"a\r\n\x1b[1mb\x1b[0m\r\n\x1b]7769;ctb;S;n\x07$ "), "a\nb\n$ ");
        assert_eq!(strip(b"a\n"), "a");
        assert_eq!(strip(b""), "");
        assert_eq!(strip(b"\xff"), "\u{FFFD}");
    }

    #[test]
    fn find_special_is_exact() {
        for pos in 0..20 {
            for bad in [0u8, 0x1b, 0x1f, 0x7f, b'\n'] {
                let mut v = vec![b'a'; 20];
                for (j, b) in v.iter_mut().enumerate() {
                    if j % 3 == 0 {
                        *b = [0x80, 0xff, 0x20, 0x7e][j % 4];
                    }
                }
                v[pos] = bad;
                assert_eq!(find_special(&v), pos);
                assert_eq!(find_special(&v[..pos]), pos);
            }
        }
    }

    fn mixed(size: usize) -> Vec<u8> {
        let unit: &[u8] = b"\x1b[1;32m\xe2\x9c\x94 compiled\x1b[0m crate \xc3\xa9t\xc3\xa9 in 0.3s\r\n\
            progress  10%\rprogress 100%\r\n\x1b]0;title\x07plain ascii line of some length here\n\
            \x1b]7769;ctb;S;abc\x07out\n\x1b]7769;ctb;E;abc;0\x1b\\\x1b[?2004h$ ";
        let mut v = Vec::with_capacity(size + unit.len());
        while v.len() < size {
            v.extend_from_slice(unit);
        }
        v
    }

    #[test]
    fn twenty_megabytes_in_bounded_memory() {
        let data = mixed(20 << 20);
        let mut l = Lines::new();
        let t = Instant::now();
        let mut n = 0usize;
        for c in data.chunks(4096) {
            n += l.push(c).len();
            assert!(l.line.capacity() <= 4 * MAX_LINE && l.osc.capacity() <= MAX_MARKER * 2);
        }
        n += l.finish().len();
        assert!(n > 100_000);
        eprintln!("mixed: {:.0} MB/s", data.len() as f64 / t.elapsed().as_secs_f64() / 1e6);
        // Garbage: random bytes, bounded too.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let junk: Vec<u8> = (0..(4 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let mut l = Lines::new();
        for c in junk.chunks(4096) {
            l.push(c);
            assert!(l.line.capacity() <= 4 * MAX_LINE);
        }
        l.finish();
    }

    #[test]
    fn throughput() {
        let mut ascii = Vec::new();
        while ascii.len() < 20 << 20 {
            ascii.extend_from_slice(&[b'x'; 79]);
            ascii.push(b'\n');
        }
        for (name, data) in [("ascii", ascii), ("mixed", mixed(20 << 20))] {
            let mut l = Lines::new();
            let t = Instant::now();
            for c in data.chunks(4096) {
                std::hint::black_box(l.push(c));
            }
            let dt = t.elapsed().as_secs_f64();
            eprintln!("{name}: {} MB in {dt:.3}s = {:.0} MB/s", data.len() >> 20, data.len() as f64 / dt / 1e6);
        }
    }
}

//! Waits answered from the pane's output stream (a [`Tap`]), the moment
//! bytes arrive: `wait-for` (a pattern, a stop pattern, quiet), `run` (a
//! command's output and exact exit status), `pane-wait` (the foreground
//! command or the pane's process ended).
//!
//! Nothing here polls: a wait is blocked on the tap, on the user's own
//! deadline (`--timeout`, `--quiet`), or on the pane process's pidfd. One
//! exception, said where it is: after a pane's process died, tmux needs a
//! moment to reap it and publish its exit status, and tells a non-control
//! client nothing when it has; `pane_fate` asks a few times, within 130 ms.

use std::time::{Duration, Instant};

use regex::Regex;

use super::tap::{Event, Tap};
use super::text::{Lines, MarkerKind, Piece};
use crate::tmux::{Server, TmuxError};
use tmux_control::SessionId;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Matched,
    Stopped,
    Quiet,
    Exited,
    Timeout,
    PaneGone,
    SessionGone,
    ServerGone,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Stopped => "stopped",
            Outcome::Quiet => "quiet",
            Outcome::Exited => "exited",
            Outcome::Timeout => "timeout",
            Outcome::PaneGone => "pane_gone",
            Outcome::SessionGone => "session_gone",
            Outcome::ServerGone => "server_gone",
        }
    }
}

/// What became of a pane whose output ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Alive,
    /// Dead, kept by `remain-on-exit`: its exit status or signal.
    Exited {
        status: Option<i32>,
        signal: Option<i32>,
    },
    PaneGone,
    SessionGone,
    ServerGone,
}

impl Fate {
    pub fn outcome(self) -> Outcome {
        match self {
            Fate::Alive | Fate::Exited { .. } => Outcome::Exited,
            Fate::PaneGone => Outcome::PaneGone,
            Fate::SessionGone => Outcome::SessionGone,
            Fate::ServerGone => Outcome::ServerGone,
        }
    }
}

/// Asks tmux what became of `pane` (of session `session`).
pub async fn pane_fate(server: &Server, pane: &str, session: SessionId) -> Fate {
    // The pane's id is printed too: tmux 3.3a answers a missing pane
    // with an empty line and success.
    let fmt = "#{pane_id} #{pane_dead} S#{pane_dead_status} G#{pane_dead_signal}";
    let answer = server.run_async(["display-message", "-p", "-t", pane, fmt]).await;
    let answer = match answer {
        Ok(out) if !out.starts_with(format!("{pane} ").as_bytes()) => {
            Err(TmuxError::Failed { command: "display-message".into(), message: format!("can't find pane: {pane}") })
        }
        other => other,
    };
    match answer {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out);
            let f: Vec<&str> = text.split_whitespace().collect();
            if f.get(1) == Some(&"1") {
                let num = |s: Option<&&str>, p: char| s.and_then(|v| v.strip_prefix(p)).and_then(|v| v.parse().ok());
                Fate::Exited { status: num(f.get(2), 'S'), signal: num(f.get(3), 'G') }
            } else {
                Fate::Alive
            }
        }
        Err(TmuxError::NoServer(_)) => Fate::ServerGone,
        Err(TmuxError::Failed { message, .. }) if crate::tmux::is_no_server(&message) => Fate::ServerGone,
        Err(_) => match server.run_async(["has-session", "-t", &session.to_string()]).await {
            Ok(_) => Fate::PaneGone,
            Err(TmuxError::NoServer(_)) => Fate::ServerGone,
            Err(TmuxError::Failed { message, .. }) if crate::tmux::is_no_server(&message) => Fate::ServerGone,
            Err(_) => Fate::SessionGone,
        },
    }
}

/// [`pane_fate`] for a pane whose process just died: tmux reaps it and
/// publishes its status a moment later, and notifies no one outside a
/// control client, so this asks again while the pane still looks alive
/// (after 1, 2, 4, ... 64 ms: a bounded wait on an imminent event, not a
/// polling loop).
pub async fn fate_after_death(server: &Server, pane: &str, session: SessionId) -> Fate {
    settle(server, pane, session, SETTLE).await
}

/// How long a dead pane's status, or a pane ctb merely suspects dead, is
/// asked for again.
const SETTLE: Duration = Duration::from_millis(127);
/// How long tmux is given to take in the last output of a pane whose
/// process has exited (it is slow to on a loaded machine).
const FLUSH: Duration = Duration::from_secs(2);

/// The fate of a pane whose process has exited (its pidfd fired), once
/// tmux has taken in all of its output. tmux marks a piped pane dead (or
/// destroys it) only when it has read the last of the pane's terminal and
/// written it all to the pipe (`window_pane_destroy_ready`): a relay SYNC
/// after this has every byte. Until then the pane looks alive; tmux tells
/// no one but a control client, so this asks again (1, 2, 4 ... 64 ms
/// apart) for at most [`FLUSH`].
pub async fn flushed_fate(server: &Server, pane: &str, session: SessionId) -> Fate {
    settle(server, pane, session, FLUSH).await
}

/// Asks for the pane's fate until it is settled: alive for at most
/// `alive_for`, dead without a status for at most [`SETTLE`] (tmux 3.3a
/// sometimes never collects it).
async fn settle(server: &Server, pane: &str, session: SessionId, alive_for: Duration) -> Fate {
    let start = tokio::time::Instant::now();
    let mut dead_since = None;
    let mut delay = Duration::from_millis(1);
    loop {
        let f = pane_fate(server, pane, session).await;
        let again = match f {
            Fate::Alive => start.elapsed() < alive_for,
            Fate::Exited { status: None, signal: None } => {
                dead_since.get_or_insert_with(tokio::time::Instant::now).elapsed() < SETTLE
            }
            _ => false,
        };
        if !again {
            return f;
        }
        tokio::time::sleep(delay).await; // asked again: see above
        delay = (delay * 2).min(Duration::from_millis(64));
    }
}

/// The fate of a pane whose output ended: a pane still alive means the
/// relay was killed or the pipe replaced (an error, not an outcome).
fn settled(f: Fate, ev: &Event) -> anyhow::Result<Fate> {
    match (f, ev) {
        (Fate::Alive, Event::Lost) => anyhow::bail!("the pane's output relay was killed; the pane is still there"),
        (Fate::Alive, _) => {
            anyhow::bail!("the pane's pipe was closed or replaced by someone else; the pane is still there")
        }
        (f, _) => Ok(f),
    }
}

/// What a wait-for looks for.
#[derive(Debug, Clone)]
pub struct Spec {
    pub pattern: Option<Regex>,
    pub stop: Option<Regex>,
    pub quiet: Option<Duration>,
    pub timeout: Option<Duration>,
    /// Lines ctb typed just before: their echo is skipped.
    pub echo: Vec<String>,
    /// The pane's process, whose exit ends the wait (`exited`).
    pub pid: Option<u32>,
}

/// How a wait ended, with what it saw.
#[derive(Debug, Clone)]
pub struct Waited {
    pub outcome: Outcome,
    /// The line that matched (or stopped).
    pub line: Option<String>,
    /// The matched text.
    pub matched: Option<String>,
    /// Where it was found: `screen` (already there) or `stream` (new).
    pub source: Option<&'static str>,
    pub fate: Option<Fate>,
    /// Bytes this reader lost (too slow); 0 normally.
    pub dropped: u64,
    pub elapsed: Duration,
}

impl Waited {
    /// A wait that ended before it began: the pane was already dead or gone.
    pub fn ended(f: Fate, started: Instant) -> Waited {
        Waited {
            outcome: f.outcome(),
            line: None,
            matched: None,
            source: None,
            fate: Some(f),
            dropped: 0,
            elapsed: started.elapsed(),
        }
    }
}

/// Checks one line: the stop pattern first (stop wins), then the pattern.
fn check(spec: &Spec, line: &str) -> Option<(Outcome, String)> {
    if let Some(m) = spec.stop.as_ref().and_then(|r| r.find(line)) {
        return Some((Outcome::Stopped, m.as_str().to_owned()));
    }
    spec.pattern.as_ref().and_then(|r| r.find(line)).map(|m| (Outcome::Matched, m.as_str().to_owned()))
}

/// Checks a batch of lines (one arrival): if the stop pattern matches any
/// of them, stop wins over a match in the same output.
fn check_batch<'a>(spec: &Spec, lines: impl Iterator<Item = &'a str> + Clone) -> Option<(Outcome, String, String)> {
    let mut first_match = None;
    for l in lines {
        match check(spec, l) {
            Some((Outcome::Stopped, m)) => return Some((Outcome::Stopped, l.to_owned(), m)),
            Some((o, m)) if first_match.is_none() => first_match = Some((o, l.to_owned(), m)),
            _ => {}
        }
    }
    first_match
}

/// Whether the pane shows its alternate screen now.
async fn alternate_on(server: &Server, pane: &str) -> bool {
    server.run_async(["display-message", "-p", "-t", pane, "#{alternate_on}"]).await.is_ok_and(|o| o.starts_with(b"1"))
}

/// The alternate-screen state the last switch in `bytes` leaves (xterm's
/// `CSI ? 1049/1047/47 h` on, `l` off), if `bytes` has one.
fn alternate_switch(bytes: &[u8]) -> Option<bool> {
    let mut last: Option<(usize, bool)> = None;
    for (seq, on) in [
        (&b"\x1b[?1049h"[..], true),
        (b"\x1b[?1047h", true),
        (b"\x1b[?47h", true),
        (b"\x1b[?1049l", false),
        (b"\x1b[?1047l", false),
        (b"\x1b[?47l", false),
    ] {
        if let Some(i) = bytes.windows(seq.len()).rposition(|w| w == seq) {
            if last.is_none_or(|(j, _)| i > j) {
                last = Some((i, on));
            }
        }
    }
    last.map(|(_, on)| on)
}

/// A deadline future (never, without one).
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Waits on `tap` per `spec`. `screen`: text already on the pane (the
/// capture taken after subscribing), searched first.
pub async fn wait_for(
    server: &Server,
    pane: &str,
    session: SessionId,
    mut tap: Tap,
    screen: Option<&[u8]>,
    spec: &Spec,
    started: Instant,
) -> anyhow::Result<Waited> {
    let mut w = Waited {
        outcome: Outcome::Timeout,
        line: None,
        matched: None,
        source: None,
        fate: None,
        dropped: 0,
        elapsed: Duration::ZERO,
    };
    let done = |mut w: Waited, o: Outcome, line: Option<String>, m: Option<String>, src: Option<&'static str>| {
        w.outcome = o;
        w.line = line;
        w.matched = m;
        w.source = src;
        w.elapsed = started.elapsed();
        w
    };
    // The pane's process watched first: it may exit while the relay starts.
    let mut death = Death::new(spec.pid.unwrap_or(0));
    if let Some(s) = screen {
        let text = super::text::strip(s);
        if let Some((o, line, m)) = check_batch(spec, text.lines()) {
            return Ok(done(w, o, Some(line), Some(m), Some("screen")));
        }
    }
    let deadline = spec.timeout.map(|t| started + t);
    let mut lines = Lines::new();
    // The quiet clock starts once the relay has taken this wait in: a
    // relay still starting (slow on a loaded machine) holds output that
    // is already due.
    if spec.quiet.is_some() {
        tokio::select! {
            r = tap.ready() => r?,
            () = until(deadline) => return Ok(done(w, Outcome::Timeout, None, None, None)),
        }
    }
    let mut last_output = Instant::now();
    // The terminal's echo of text ctb typed is not the program's output.
    let mut echo = super::echo::Echo::new(&spec.echo);
    // A full-screen program (the alternate screen) draws with cursor
    // moves, not lines: while it is on, what is visible is searched,
    // captured again each time the pane prints.
    let mut alt = alternate_on(server, pane).await;
    let mut dying: Option<Fate> = None;
    loop {
        let quiet_at = spec.quiet.map(|q| last_output + q);
        let ev = tokio::select! {
            ev = tap.next() => ev,
            z = death.wait() => {
                // Its last bytes first: the relay syncs, then we decide.
                dying = Some(self::death(server, pane, session, z).await);
                tap.sync().await?;
                continue;
            }
            () = until(deadline) => return Ok(done(w, Outcome::Timeout, None, None, None)),
            () = until(quiet_at), if dying.is_none() => return Ok(done(w, Outcome::Quiet, None, None, None)),
        };
        match ev {
            Ok(Event::Sync) => {
                if let Some(f) = dying {
                    w.fate = Some(f);
                    return Ok(done(w, f.outcome(), None, None, None));
                }
            }
            Ok(Event::Data(bytes)) => {
                last_output = Instant::now();
                let pieces = lines.push(&bytes);
                alt = alternate_switch(&bytes).unwrap_or(alt);
                if alt {
                    let Ok(shot) = server.run_async(["capture-pane", "-p", "-t", pane]).await else { continue };
                    let text = super::text::strip(&shot);
                    if let Some((o, line, m)) = check_batch(spec, text.lines()) {
                        return Ok(done(w, o, Some(line), Some(m), Some("screen")));
                    }
                    continue;
                }
                let mut texts: Vec<&str> = Vec::new();
                for p in &pieces {
                    if let Piece::Line(l) = p {
                        if !echo.skip(l) {
                            texts.push(l);
                        }
                    }
                }
                if !lines.partial().is_empty() && echo.search_partial() {
                    texts.push(lines.partial());
                }
                if let Some((o, line, m)) = check_batch(spec, texts.iter().copied()) {
                    // A match: what the pane printed along with it (already
                    // here) may hold the stop pattern, which wins.
                    if o == Outcome::Matched && spec.stop.is_some() {
                        let mut more = Lines::new();
                        while let Some(Event::Data(b)) = tap.try_next() {
                            let mut rest: Vec<String> = more
                                .push(&b)
                                .into_iter()
                                .filter_map(|p| if let Piece::Line(l) = p { Some(l) } else { None })
                                .collect();
                            rest.push(more.partial().to_owned());
                            if let Some((Outcome::Stopped, l, sm)) = check_batch(spec, rest.iter().map(String::as_str))
                            {
                                return Ok(done(w, Outcome::Stopped, Some(l), Some(sm), Some("stream")));
                            }
                        }
                    }
                    return Ok(done(w, o, Some(line), Some(m), Some("stream")));
                }
            }
            Ok(Event::Dropped(n)) => w.dropped += n,
            Ok(ev @ (Event::End | Event::Lost)) => {
                let fate = match dying {
                    Some(f) => f,
                    None => settled(pane_fate(server, pane, session).await, &ev)?,
                };
                w.fate = Some(fate);
                return Ok(done(w, fate.outcome(), None, None, None));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `run`'s result.
#[derive(Debug, Clone)]
pub struct Ran {
    pub outcome: Outcome,
    pub exit_status: Option<i32>,
    /// The command's output lines (the last [`RUN_KEEP_LINES`]).
    pub lines: std::collections::VecDeque<String>,
    pub total_lines: u64,
    pub truncated: bool,
    pub fate: Option<Fate>,
    pub dropped: u64,
    pub elapsed: Duration,
}

impl Ran {
    /// A run that never started: the pane was already dead or gone.
    pub fn ended(f: Fate, started: Instant) -> Ran {
        Ran {
            outcome: f.outcome(),
            exit_status: None,
            lines: Default::default(),
            total_lines: 0,
            truncated: false,
            fate: Some(f),
            dropped: 0,
            elapsed: started.elapsed(),
        }
    }
}

/// How many of a command's last output lines `run` returns.
pub const RUN_KEEP_LINES: usize = 10_000;
/// ... and at most this many bytes of them.
pub const RUN_KEEP_BYTES: usize = 4 << 20;

/// A fresh nonce for `run`'s markers (128 random bits, hex).
pub fn nonce() -> String {
    let mut r = [0u8; 16];
    let _ = rustix::rand::getrandom(&mut r, rustix::rand::GetRandomFlags::empty());
    r.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text typed for `run`: the command inside a brace group between
/// two markers printed by the shell's `printf` (invisible OSC sequences
/// carrying the nonce; the end one carries `$?`). Only the shell's
/// printf writes the ESC byte: the typed text (and its echo) holds the
/// four characters `\033`, so the echo never looks like a marker, and a
/// command cannot fake one without the nonce. A leading space keeps it
/// out of shell history (HISTCONTROL=ignorespace).
pub fn run_text(command: &[u8], nonce: &str) -> Vec<u8> {
    let mut t = format!(" printf '\\033]7769;ctb;S;{nonce}\\007';{{ ").into_bytes();
    t.extend_from_slice(command);
    t.extend_from_slice(format!("\n}};printf '\\033]7769;ctb;E;{nonce};%d\\007' \"$?\"").as_bytes());
    t
}

/// Collects `run`'s output from its start marker to its end marker.
pub async fn run_collect(
    server: &Server,
    (pane, session, pid): (&str, SessionId, u32),
    mut tap: Tap,
    nonce: &str,
    timeout: Option<Duration>,
    started: Instant,
) -> anyhow::Result<Ran> {
    let mut r = Ran {
        outcome: Outcome::Timeout,
        exit_status: None,
        lines: Default::default(),
        total_lines: 0,
        truncated: false,
        fate: None,
        dropped: 0,
        elapsed: Duration::ZERO,
    };
    let deadline = timeout.map(|t| started + t);
    let mut text = Lines::new();
    let mut inside = false;
    let mut kept_bytes = 0usize;
    let keep = |r: &mut Ran, l: String, kept_bytes: &mut usize| {
        r.total_lines += 1;
        *kept_bytes += l.len();
        r.lines.push_back(l);
        while r.lines.len() > RUN_KEEP_LINES || (*kept_bytes > RUN_KEEP_BYTES && r.lines.len() > 1) {
            if let Some(old) = r.lines.pop_front() {
                *kept_bytes -= old.len();
            }
            r.truncated = true;
        }
    };
    let mut death = Death::new(pid);
    let mut dying: Option<Fate> = None;
    loop {
        let ev = tokio::select! {
            ev = tap.next() => ev,
            z = death.wait() => {
                dying = Some(self::death(server, pane, session, z).await);
                tap.sync().await?;
                continue;
            }
            () = until(deadline) => {
                r.elapsed = started.elapsed();
                return Ok(r);
            }
        };
        match ev {
            Ok(Event::Sync) => {
                if let Some(f) = dying {
                    r.fate = Some(f);
                    r.outcome = f.outcome();
                    r.elapsed = started.elapsed();
                    return Ok(r);
                }
            }
            Ok(Event::Data(bytes)) => {
                for p in text.push(&bytes) {
                    match p {
                        Piece::Marker(m) if m.nonce == nonce && m.kind == MarkerKind::Start => inside = true,
                        Piece::Marker(m) if m.nonce == nonce && m.kind == MarkerKind::End => {
                            r.outcome = Outcome::Exited;
                            r.exit_status = m.status;
                            r.elapsed = started.elapsed();
                            return Ok(r);
                        }
                        Piece::Line(l) if inside => keep(&mut r, l, &mut kept_bytes),
                        _ => {}
                    }
                }
            }
            Ok(Event::Dropped(n)) => {
                r.dropped += n;
                r.truncated = true;
            }
            Err(e) => return Err(e),
            Ok(ev @ (Event::End | Event::Lost)) => {
                if inside {
                    for p in text.finish() {
                        if let Piece::Line(l) = p {
                            keep(&mut r, l, &mut kept_bytes);
                        }
                    }
                }
                let fate = match dying {
                    Some(f) => f,
                    None => settled(pane_fate(server, pane, session).await, &ev)?,
                };
                r.fate = Some(fate);
                r.outcome = fate.outcome();
                r.elapsed = started.elapsed();
                return Ok(r);
            }
        }
    }
}

/// A pidfd for `pid` (readable once the process has exited), if it lives.
fn pidfd(pid: i32) -> Option<tokio::io::unix::AsyncFd<rustix::fd::OwnedFd>> {
    let raw = rustix::process::Pid::from_raw(pid)?;
    let fd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::NONBLOCK).ok()?;
    // SAFETY: the AsyncFd owns the descriptor, which stays open for as
    // long as it is registered.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}

/// Resolves when the pidfd (if any) says its process exited.
async fn exited(fd: &Option<tokio::io::unix::AsyncFd<rustix::fd::OwnedFd>>) {
    match fd {
        Some(fd) => {
            let _ = fd.readable().await;
        }
        None => std::future::pending().await,
    }
}

/// The wait status of `pid` if it is a zombie now (field 52 of
/// `/proc/PID/stat`, Linux 3.5+): read the moment its pidfd says it
/// exited, before tmux reaps it, it is exact even where tmux never records
/// it (tmux 3.3a loses a dead pane's status about one time in three).
fn zombie_status(pid: u32) -> Option<Fate> {
    let f = super::pane::stat_fields(pid)?;
    // After the comm: field 3 (state) is f[0], field 52 is f[49].
    if f.first().map(String::as_str) != Some("Z") {
        return None;
    }
    let code: i32 = f.get(49)?.parse().ok()?;
    Some(if code & 0x7f == 0 {
        Fate::Exited { status: Some((code >> 8) & 0xff), signal: None }
    } else {
        Fate::Exited { status: None, signal: Some(code & 0x7f) }
    })
}

/// What became of a pane whose process just died: the zombie's own
/// status if it could be read, merged with what tmux says.
async fn death(server: &Server, pane: &str, session: SessionId, zombie: Option<Fate>) -> Fate {
    let f = flushed_fate(server, pane, session).await;
    match (f, zombie) {
        // tmux slower than 2 s to call it dead (its terminal still busy):
        // the process has exited all the same, with this status.
        (Fate::Alive | Fate::Exited { status: None, signal: None }, Some(z)) => z,
        (f, _) => f,
    }
}

/// The pane's process, watched through its pidfd: a pane kept after its
/// process exits (`remain-on-exit`) keeps its pipe open, so its death
/// comes from here, not from the tap.
pub struct Death {
    fd: Option<tokio::io::unix::AsyncFd<rustix::fd::OwnedFd>>,
    pid: u32,
    fired: bool,
    /// The process was gone (reaped) before it could be watched: its
    /// death is due at once (e.g. `pane-exec S P 'exit 3'`).
    gone: bool,
}

impl Death {
    pub fn new(pid: u32) -> Death {
        let fd = pidfd(pid as i32);
        let gone = pid > 0 && fd.is_none() && !std::path::Path::new(&format!("/proc/{pid}")).exists();
        Death { fd, pid, fired: false, gone }
    }

    /// Resolves once, when the process has exited; the zombie's status
    /// if it could still be read.
    pub async fn wait(&mut self) -> Option<Fate> {
        if self.gone && !self.fired {
            self.fired = true;
            return None;
        }
        if self.fired || self.fd.is_none() {
            return std::future::pending().await;
        }
        exited(&self.fd).await;
        self.fired = true;
        zombie_status(self.pid)
    }
}

/// Shells: a pane running one of these waits for its foreground command;
/// any other program is the pane's command itself, waited on until it
/// exits.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "tcsh", "csh", "ash", "busybox"];

/// The pane process's group and its terminal's foreground group.
fn groups(pid: u32) -> Option<(i32, i32)> {
    super::pane::pgrp_and_tpgid(pid)
}

/// Whether `pid` is an interactive shell: a shell given only options
/// (none of them `-c`), so neither a `sh -c CMD` nor a script.
fn is_shell(pid: u32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = comm.trim().trim_start_matches('-');
    if !SHELLS.contains(&comm) {
        return false;
    }
    // (A process that has exited has no command line: not a shell.)
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !argv.is_empty()
        && argv.split(|&b| b == 0).skip(1).filter(|a| !a.is_empty()).all(|a| a.starts_with(b"-") && a != b"-c")
}

/// `pane-wait`'s result.
#[derive(Debug, Clone)]
pub struct PaneWaited {
    pub outcome: Outcome,
    /// What ended: `foreground` (the shell is in the foreground again),
    /// `process` (the pane's process exited), `idle` (nothing ran).
    pub what: Option<&'static str>,
    pub fate: Option<Fate>,
    pub elapsed: Duration,
}

/// Waits until the pane's foreground command has finished (a shell pane)
/// or its process has exited (any other pane). Woken by the pane's output
/// (a shell prints its prompt), by the foreground job leader's pidfd and by
/// the pane process's pidfd; never by a timer.
pub async fn pane_wait(
    server: &Server,
    pane: &str,
    session: SessionId,
    pid: u32,
    mut tap: Tap,
    timeout: Option<Duration>,
    started: Instant,
) -> anyhow::Result<PaneWaited> {
    let deadline = timeout.map(|t| started + t);
    let end = |o: Outcome, what: Option<&'static str>, fate: Option<Fate>| {
        Ok(PaneWaited { outcome: o, what, fate, elapsed: started.elapsed() })
    };
    let pane_fd = pidfd(pid as i32);
    if pane_fd.is_none() {
        // Gone already: as when its pidfd fires, tmux may not have taken
        // in its last output (and so not marked it dead) yet.
        let f = flushed_fate(server, pane, session).await;
        return end(f.outcome(), Some("process"), Some(f));
    }
    // Exited already (a zombie tmux has not reaped yet): its status now.
    if let Some(z) = zombie_status(pid) {
        let f = death(server, pane, session, Some(z)).await;
        return end(f.outcome(), Some("process"), Some(f));
    }
    let shell = is_shell(pid);
    let mut fg_fd = None;
    if shell {
        match groups(pid) {
            Some((pgrp, tpgid)) if tpgid <= 0 || tpgid == pgrp => return end(Outcome::Exited, Some("idle"), None),
            Some((_, tpgid)) => fg_fd = pidfd(tpgid),
            None => {}
        }
    }
    loop {
        tokio::select! {
            ev = tap.next() => match ev {
                Ok(Event::Data(_) | Event::Dropped(_) | Event::Sync) => {}
                Ok(ev @ (Event::End | Event::Lost)) => {
                    let f = settled(fate_after_death(server, pane, session).await, &ev)?;
                    return end(f.outcome(), Some("process"), Some(f));
                }
                Err(e) => return Err(e),
            },
            () = exited(&pane_fd) => {
                let zombie = zombie_status(pid);
                let f = death(server, pane, session, zombie).await;
                return end(f.outcome(), Some("process"), Some(f));
            }
            () = exited(&fg_fd) => fg_fd = None,
            () = until(deadline) => return end(Outcome::Timeout, None, None),
        }
        if shell {
            match groups(pid) {
                Some((pgrp, tpgid)) if tpgid <= 0 || tpgid == pgrp => {
                    return end(Outcome::Exited, Some("foreground"), None)
                }
                Some((_, tpgid)) if fg_fd.is_none() => fg_fd = pidfd(tpgid),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_alternate_screen_switch_wins() {
        assert_eq!(alternate_switch(b"plain"), None);
        assert_eq!(alternate_switch(b"a\x1b[?1049hb"), Some(true));
        assert_eq!(alternate_switch(b"\x1b[?1049h..\x1b[?1049l"), Some(false));
        assert_eq!(alternate_switch(b"\x1b[?47l..\x1b[?1047h"), Some(true));
    }

    #[test]
    fn stop_wins_over_a_match_in_the_same_output() {
        let spec = Spec {
            pattern: Some(Regex::new("ok").unwrap()),
            stop: Some(Regex::new("fail").unwrap()),
            quiet: None,
            timeout: None,
            echo: Vec::new(),
            pid: None,
        };
        let got = check_batch(&spec, ["ok 1", "fail 2"].into_iter()).unwrap();
        assert_eq!((got.0, got.1.as_str()), (Outcome::Stopped, "fail 2"));
        let got = check_batch(&spec, ["x", "ok 1"].into_iter()).unwrap();
        assert_eq!((got.0, got.1.as_str()), (Outcome::Matched, "ok 1"));
    }

    #[test]
    fn run_text_keeps_the_command_and_hides_the_marker_bytes() {
        let t = run_text(b"echo hi # c", "abc");
        assert!(!t.contains(&0x1b), "the typed text never holds ESC");
        let t = String::from_utf8(t).unwrap();
        assert!(t.starts_with(" printf '\\033]7769;ctb;S;abc\\007';{ echo hi # c\n};"));
        assert!(t.ends_with("\"$?\""));
    }
}

//! The waiting commands (`wait-for`, `pane-exec --wait-for`, `run`,
//! `pane-wait`) and the streams (`pane-stream`, `pane-tail`): replies
//! built from [`crate::agent::wait`] and [`crate::agent::tap`].
//!
//! Exit statuses: 0 success, 1 error (bad input, pane/session/server
//! gone, a stop pattern), 124 timeout (with `"error":"timeout ..."`).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use regex::Regex;

use super::pane::{asked, resolved};
use super::reply::{fail, Outcome, Reply};
use crate::agent::tap::{Event, Tap};
use crate::agent::text::{Lines, Piece};
use crate::agent::wait::{self, Fate, Outcome as WaitOutcome, Spec};
use crate::tmux::{self, PaneTarget, Server};

/// The exit status of a timeout (as `timeout(1)`).
pub const TIMEOUT_EXIT: u8 = 124;

/// A reply and the exit status to end with.
pub type Ended = (Outcome, u8);

fn regex(what: &str, s: &OsStr) -> Result<Regex> {
    let s = s.to_str().ok_or_else(|| anyhow!("{what} is not valid UTF-8"))?;
    Regex::new(s).map_err(|e| anyhow!("invalid {what} {s:?}: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The fields every waiting reply has, and its exit status.
fn finish(r: Reply, outcome: WaitOutcome, fate: Option<Fate>, timeout: Option<Duration>, ok: bool) -> Ended {
    let mut r = r.field("outcome", outcome.as_str());
    if let Some(Fate::Exited { status, signal }) = fate {
        r = r.field("exit_status", status).field("signal", signal);
    }
    let err = |r: Reply, msg: String| (Err(fail(r, anyhow!(msg))), 1u8);
    match outcome {
        _ if ok => (Ok(r), 0),
        WaitOutcome::Timeout => {
            let secs = timeout.map(|t| t.as_secs_f64()).unwrap_or_default();
            (Err(fail(r, anyhow!("timeout after {secs}s"))), TIMEOUT_EXIT)
        }
        WaitOutcome::Stopped => err(r, "stopped: the pane printed a line matching the --stop pattern".into()),
        WaitOutcome::Exited => err(r, "the pane's process exited".into()),
        WaitOutcome::PaneGone => err(r, "the pane is gone (killed or exited)".into()),
        WaitOutcome::SessionGone => err(r, "the pane's session is gone".into()),
        WaitOutcome::ServerGone => err(r, "the tmux server is gone".into()),
        WaitOutcome::Matched | WaitOutcome::Quiet => (Ok(r), 0),
    }
}

/// Resolves the target; a failure is an exit-1 reply.
fn target(command: &'static str, server: &Server, session: &OsStr, pane: &OsStr) -> Result<PaneTarget, Box<Ended>> {
    tmux::resolve_pane(server, session, pane)
        .map_err(|e| Box::new((Err(fail(asked(command, session, Some(pane)), e)), 1)))
}

/// Opens a tap on the target; a pane that died or vanished since it was
/// resolved is its fate (`Err`), not an error.
async fn open_tap(
    server: &Server,
    t: &PaneTarget,
    capture: Option<&[OsString]>,
) -> Result<Result<crate::agent::tap::Opened, Fate>> {
    match Tap::open(server, &t.pane.id, capture).await {
        Ok(o) => Ok(Ok(o)),
        Err(e) => match wait::fate_after_death(server, &t.pane.id, t.session).await {
            Fate::Alive => Err(e),
            f => Ok(Err(f)),
        },
    }
}

/// A pane's fate as a phrase.
fn fate_text(f: Fate) -> &'static str {
    match f {
        Fate::Alive => "the pane is there",
        Fate::Exited { .. } => "the pane's process has exited",
        Fate::PaneGone => "the pane is gone",
        Fate::SessionGone => "the pane's session is gone",
        Fate::ServerGone => "the tmux server is gone",
    }
}

/// Options of `wait-for` and `pane-exec --wait-for`.
#[derive(Debug, Clone, Default)]
pub struct WaitOpts {
    pub pattern: Option<OsString>,
    pub stop: Option<OsString>,
    pub quiet_ms: Option<u64>,
    pub timeout: Option<Duration>,
}

impl WaitOpts {
    fn spec(&self) -> Result<Spec> {
        Ok(Spec {
            pattern: self.pattern.as_deref().map(|p| regex("pattern", p)).transpose()?,
            stop: self.stop.as_deref().map(|p| regex("--stop pattern", p)).transpose()?,
            quiet: self.quiet_ms.map(Duration::from_millis),
            timeout: self.timeout,
            echo: Vec::new(),
            pid: None,
        })
    }
}

/// The reply fields of a finished wait-for.
fn waited_reply(r: Reply, w: &wait::Waited) -> Reply {
    r.output(w.line.clone())
        .field("match", w.matched.clone())
        .field("source", w.source)
        .field("elapsed_ms", ms(w.elapsed))
        .field("dropped_bytes", w.dropped)
}

/// `wait-for S P REGEX`: `history` lines of history plus the screen are
/// searched first (`None`: only new output, `--new`).
pub fn wait_for(
    command: &'static str,
    server: &Server,
    session: &OsStr,
    pane: &OsStr,
    opts: &WaitOpts,
    history: Option<u32>,
) -> Ended {
    let started = Instant::now();
    let spec = match opts.spec() {
        Ok(s) => s,
        Err(e) => return (Err(fail(asked(command, session, Some(pane)), e)), 1),
    };
    let t = match target(command, server, session, pane) {
        Ok(t) => t,
        Err(e) => return *e,
    };
    let r = resolved(command, &t);
    let mut spec = spec;
    spec.pid = Some(t.pane.pid);
    let go = async {
        let capture = history.map(capture_args);
        let opened = match open_tap(server, &t, capture.as_deref()).await? {
            Ok(o) => o,
            Err(f) => return Ok(wait::Waited::ended(f, started)),
        };
        let screen = opened.capture.as_ref().map(|c| c.text.as_slice());
        wait::wait_for(server, &t.pane.id, t.session, opened.tap, screen, &spec, started).await
    };
    match runtime().and_then(|rt| rt.block_on(go)) {
        Ok(w) => {
            let outcome = w.outcome;
            finish(waited_reply(r, &w), outcome, w.fate, opts.timeout, false)
        }
        Err(e) => (Err(fail(r, e)), 1),
    }
}

/// `capture-pane` arguments for the screen and `n` lines of history,
/// wrapped lines joined.
fn capture_args(n: u32) -> Vec<OsString> {
    vec!["-p".into(), "-J".into(), "-S".into(), format!("-{n}").into()]
}

/// `pane-exec S P TEXT --wait-for ...`: listens first, then types.
pub fn exec_wait(server: &Server, session: &OsStr, pane: &OsStr, text: &OsStr, enter: bool, opts: &WaitOpts) -> Ended {
    let command = "pane-exec";
    let started = Instant::now();
    let mut spec = match opts.spec() {
        Ok(s) => s,
        Err(e) => return (Err(fail(asked(command, session, Some(pane)), e)), 1),
    };
    let t = match target(command, server, session, pane) {
        Ok(t) => t,
        Err(e) => return *e,
    };
    let r = resolved(command, &t).field("bytes", text.len()).field("enter", enter);
    spec.pid = Some(t.pane.pid);
    let go = async {
        let opened = match open_tap(server, &t, None).await? {
            Ok(o) => o,
            Err(f) => return Ok(wait::Waited::ended(f, started)),
        };
        crate::agent::pane::exec(server, &t, text.as_bytes(), enter)?;
        // Lines typed (what the terminal echoes back before the output).
        spec.echo = text.as_bytes().split(|&b| b == b'\n').map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        wait::wait_for(server, &t.pane.id, t.session, opened.tap, None, &spec, started).await
    };
    match runtime().and_then(|rt| rt.block_on(go)) {
        Ok(w) => {
            let outcome = w.outcome;
            finish(waited_reply(r, &w), outcome, w.fate, opts.timeout, false)
        }
        Err(e) => (Err(fail(r, e)), 1),
    }
}

/// `run S P -- COMMAND`: the command's output and exact exit status.
pub fn run(
    command: &'static str,
    server: &Server,
    session: &OsStr,
    pane: &OsStr,
    command_words: &[OsString],
    timeout: Option<Duration>,
    interrupt: bool,
) -> Ended {
    let started = Instant::now();
    if command_words.is_empty() {
        return (Err(fail(asked(command, session, Some(pane)), anyhow!("no command given (after --)"))), 1);
    }
    let mut line = Vec::new();
    for (i, w) in command_words.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        line.extend_from_slice(w.as_bytes());
    }
    let t = match target(command, server, session, pane) {
        Ok(t) => t,
        Err(e) => return *e,
    };
    let r = resolved(command, &t);
    let nonce = wait::nonce();
    let go = async {
        // One run at a time on the pane (waiting counts against --timeout).
        let n: u32 = t.pane.id.trim_start_matches('%').parse().unwrap_or_default();
        let wait_for_turn = timeout.unwrap_or(Duration::from_secs(365 * 86_400));
        let _turn = match crate::runtime::RunLock::take(&server.socket_path(), n, wait_for_turn).await {
            Ok(l) => l,
            Err(crate::runtime::GateError::Lock(crate::runtime::LockError::Timeout { .. })) => {
                let mut ran = wait::Ran::ended(Fate::Alive, started);
                ran.outcome = WaitOutcome::Timeout;
                ran.fate = None;
                return Ok(ran);
            }
            Err(e) => return Err(e.into()),
        };
        let opened = match open_tap(server, &t, None).await? {
            Ok(o) => o,
            Err(f) => return Ok(wait::Ran::ended(f, started)),
        };
        crate::agent::pane::exec(server, &t, &wait::run_text(&line, &nonce), true)?;
        let pane = (t.pane.id.as_str(), t.session, t.pane.pid);
        let ran = wait::run_collect(server, pane, opened.tap, &nonce, timeout, started).await?;
        if ran.outcome == WaitOutcome::Timeout && interrupt {
            crate::agent::pane::keys(server, &t, &["C-c".into()])?;
        }
        Ok::<_, anyhow::Error>(ran)
    };
    match runtime().and_then(|rt| rt.block_on(go)) {
        Ok(ran) => {
            let text: Vec<&str> = ran.lines.iter().map(String::as_str).collect();
            let mut r = r
                .output(text.join("\n"))
                .field("total_lines", ran.total_lines)
                .field("truncated", ran.truncated)
                .field("elapsed_ms", ms(ran.elapsed))
                .field("dropped_bytes", ran.dropped);
            if ran.outcome == WaitOutcome::Exited && ran.fate.is_none() {
                r = r.field("exit_status", ran.exit_status);
                return finish(r, WaitOutcome::Exited, None, timeout, true);
            }
            if ran.outcome == WaitOutcome::Timeout {
                r = r.field("interrupted", interrupt);
            }
            finish(r, ran.outcome, ran.fate, timeout, false)
        }
        Err(e) => (Err(fail(r, e)), 1),
    }
}

/// `pane-wait S P`: the foreground command finished or the pane's
/// process exited.
pub fn pane_wait(server: &Server, session: &OsStr, pane: &OsStr, timeout: Option<Duration>) -> Ended {
    let command = "pane-wait";
    let started = Instant::now();
    let t = match target(command, server, session, pane) {
        Ok(t) => t,
        Err(e) => return *e,
    };
    let r = resolved(command, &t);
    if t.pane.dead {
        let mut fate = Fate::Exited { status: t.pane.exit_status, signal: t.pane.exit_signal };
        if t.pane.exit_status.is_none() && t.pane.exit_signal.is_none() {
            // Dead a moment ago: its status may not be collected yet.
            if let Ok(rt) = runtime() {
                fate = rt.block_on(wait::fate_after_death(server, &t.pane.id, t.session));
            }
        }
        let r = r.field("ended", "process").field("elapsed_ms", ms(started.elapsed()));
        let outcome = fate.outcome();
        return finish(r, outcome, Some(fate), timeout, outcome == WaitOutcome::Exited);
    }
    let go = async {
        let opened = match open_tap(server, &t, None).await? {
            Ok(o) => o,
            Err(f) => {
                return Ok(wait::PaneWaited {
                    outcome: f.outcome(),
                    what: Some("process"),
                    fate: Some(f),
                    elapsed: started.elapsed(),
                })
            }
        };
        wait::pane_wait(server, &t.pane.id, t.session, t.pane.pid, opened.tap, timeout, started).await
    };
    match runtime().and_then(|rt| rt.block_on(go)) {
        Ok(w) => {
            let r = r.field("ended", w.what).field("elapsed_ms", ms(w.elapsed));
            // The pane's own process exiting is what pane-wait waits for;
            // the pane vanishing with it (no remain-on-exit) too.
            let ok = matches!(w.outcome, WaitOutcome::Exited)
                || (w.outcome == WaitOutcome::PaneGone && w.what == Some("process"));
            finish(r, w.outcome, w.fate, timeout, ok)
        }
        Err(e) => (Err(fail(r, e)), 1),
    }
}

/// `pane-stream S P [--raw]` and `pane-tail S P [LINES]`: follows the
/// pane's output on stdout until it closes (exit 0), the reader goes away,
/// or SIGINT/SIGTERM. Lines are text (escapes removed); `--raw` writes the
/// exact bytes. A last JSON line says how it ended (on stderr with
/// `--raw`, so stdout holds the pane's bytes only).
pub fn stream(
    command: &'static str,
    server: &Server,
    session: &OsStr,
    pane: &OsStr,
    raw: bool,
    tail: Option<u32>,
) -> Ended {
    let t = match target(command, server, session, pane) {
        Ok(t) => t,
        Err(e) => return *e,
    };
    let r = resolved(command, &t);
    let go = async {
        // More history than shown: a tap joining a running relay finds
        // the lines its stream repeats there (up to 20000).
        let capture =
            tail.map(|n| vec!["-p".into(), "-J".into(), "-S".into(), format!("-{}", u64::from(n) + 20_000).into()]);
        let opened = match open_tap(server, &t, capture.as_deref()).await? {
            Ok(o) => o,
            Err(f) => anyhow::bail!("nothing to stream: {}", fate_text(f)),
        };
        let mut tap = opened.tap;
        let mut out = std::io::stdout().lock();
        let mut bytes = 0u64;
        let mut dropped = 0u64;
        let mut overlap = None;
        let mut text = Lines::new();
        if let (Some(n), Some(c)) = (tail, opened.capture) {
            // The last N non-blank lines of the screen and history.
            let captured = crate::agent::text::strip(&c.text);
            let lines: Vec<&str> = captured.lines().collect();
            let mut end = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(0, |i| i + 1);
            // The last line still being written: the stream goes on with
            // it (shown once whole).
            let partial = c.unfinished.filter(|_| end > 0).map(|blanks| {
                end -= 1;
                format!("{}{}", lines[end].trim_end(), " ".repeat(blanks))
            });
            let start = end.saturating_sub(n as usize);
            for l in &lines[start..end] {
                writeln!(out, "{l}")?;
            }
            out.flush()?;
            let complete = lines[..end].iter().map(|l| (*l).to_owned()).collect();
            if opened.joined {
                overlap = Some(crate::agent::overlap::Overlap::new(complete, partial));
            } else if let Some(p) = partial {
                // The stream starts exactly where the capture ended.
                text.push(p.as_bytes());
            }
        }
        drop(out);
        // Written asynchronously: a reader that stops reading never keeps
        // SIGINT/SIGTERM from ending the stream.
        let mut aout = tokio::io::stdout();
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // A pane kept after its process exits keeps its pipe: its death
        // comes from the process (then its last bytes, then the end).
        let mut death = wait::Death::new(t.pane.pid);
        let mut dying = false;
        let ended = loop {
            let ev = tokio::select! {
                ev = tap.next() => ev?,
                _ = death.wait() => {
                    // Its last bytes first: once tmux has them all, the
                    // relay syncs.
                    dying = true;
                    wait::flushed_fate(server, &t.pane.id, t.session).await;
                    tap.sync().await?;
                    continue;
                }
                _ = sigint.recv() => break "interrupted",
                _ = sigterm.recv() => break "terminated",
            };
            let mut chunk: Vec<u8> = Vec::new();
            let mut line = |l: String| {
                chunk.extend_from_slice(l.as_bytes());
                chunk.push(b'\n');
            };
            let mut end = None;
            match ev {
                Event::Sync if !dying => {}
                Event::Sync | Event::End | Event::Lost => {
                    if !raw {
                        for l in overlap.as_mut().map(|o| o.flush()).unwrap_or_default() {
                            line(l);
                        }
                        for p in text.finish() {
                            if let Piece::Line(l) = p {
                                line(l);
                            }
                        }
                    }
                    end = Some("pane-closed");
                }
                Event::Data(b) => {
                    bytes += b.len() as u64;
                    if raw {
                        chunk = b;
                    } else {
                        for p in text.push(&b) {
                            if let Piece::Line(l) = p {
                                match overlap.as_mut() {
                                    Some(o) => o.push(l).into_iter().for_each(&mut line),
                                    None => line(l),
                                }
                            }
                        }
                    }
                }
                Event::Dropped(n) => {
                    dropped += n;
                    // The line cut by the gap ends there (never glued to
                    // what follows it).
                    if !raw {
                        for p in text.finish() {
                            if let Piece::Line(l) = p {
                                line(l);
                            }
                        }
                    }
                    eprintln!("ctb {command}: {n} bytes dropped (the reader was too slow)");
                }
            }
            if !chunk.is_empty() {
                use tokio::io::AsyncWriteExt;
                let written = tokio::select! {
                    w = async { aout.write_all(&chunk).await?; aout.flush().await } => w,
                    _ = sigint.recv() => break "interrupted",
                    _ = sigterm.recv() => break "terminated",
                };
                if written.is_err() {
                    break "reader-gone";
                }
            }
            if let Some(e) = end {
                break e;
            }
        };
        Ok::<_, anyhow::Error>((ended, bytes, dropped))
    };
    let result = runtime().and_then(|rt| {
        let out = rt.block_on(go);
        // A write to a reader that stopped reading may still be pending on
        // a blocking thread: do not wait for it.
        rt.shutdown_background();
        out
    });
    match result {
        Ok((ended, bytes, dropped)) => {
            let r = r.output(ended).field("bytes", bytes).field("dropped_bytes", dropped);
            if ended == "reader-gone" {
                return (Err(fail(r, anyhow!("stdout closed"))), 1);
            }
            if matches!(ended, "interrupted" | "terminated") {
                // stdout may be the stuck reader: the closing line goes to
                // stderr, and the process ends.
                let _ = writeln!(std::io::stderr(), "{}", r.success());
                std::process::exit(0);
            }
            (Ok(r), 0)
        }
        Err(e) => (Err(fail(r, e)), 1),
    }
}

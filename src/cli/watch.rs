//! `ctb watch`: the watcher in the foreground, events as JSON lines.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::tmux::{resolve, Recording, Server, TmuxControl};
use crate::watch::{self, end_json, event_json, EndReason, Mode, Watcher};

/// `ctb watch --replay FILE`: the watcher over a recording made with
/// `--record`; prints its events without times, then the commands it sent
/// (`{"sent": ...}`), so a test can compare them with the recording.
pub fn replay(file: &Path, sessions: &[OsString]) -> Result<()> {
    let mode = if sessions.is_empty() {
        Mode::Marked
    } else {
        Mode::Fixed(sessions.iter().map(|s| s.to_string_lossy().parse()).collect::<Result<_, _>>()?)
    };
    let mut source = Recording::load(file).with_context(|| format!("cannot read {}", file.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut watcher = Watcher::new(mode);
    let mut out = std::io::stdout().lock();
    let mut lines = Vec::new();
    let reason = rt.block_on(watch::run(
        &mut source,
        &mut watcher,
        None,
        |_| serde_json::Value::Null,
        |e| {
            let mut v = event_json(e);
            v.as_object_mut().map(|m| m.remove("time"));
            lines.push(v);
        },
    ))?;
    for v in lines {
        writeln!(out, "{v}")?;
    }
    let mut end = end_json(reason);
    end.as_object_mut().map(|m| m.remove("time"));
    writeln!(out, "{end}")?;
    for s in &source.sent {
        writeln!(out, "{}", serde_json::json!({ "sent": s }))?;
    }
    Ok(())
}

/// `ctb watch`: JSON lines on stdout, ending with a `watch-end` line, also
/// on failure (`"reason":"error"` with `error`, exit status 1). Ends when
/// its reader goes away (`| head -n 1`), with exit status 1.
pub fn run(server: Server, sessions: &[OsString], record: Option<&Path>, replay_file: Option<&Path>) -> ExitCode {
    let res = match replay_file {
        Some(file) => replay(file, sessions).map(|()| true),
        None => watch(server, sessions, record),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) if super::is_broken_pipe(&e) => ExitCode::FAILURE,
        Err(e) => {
            let mut end = end_json(EndReason::Signal);
            end["reason"] = "error".into();
            end["error"] = format!("{e:#}").into();
            let _ = writeln!(std::io::stdout(), "{end}");
            super::stderr_line(format_args!("ctb watch: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Resolves once stdout's reader has gone (EPOLLERR on a pipe or socket);
/// never if stdout cannot be watched (a file, a tty that stays).
async fn stdout_closed() {
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    let Ok(fd) = rustix::io::dup(rustix::stdio::stdout()) else { return std::future::pending().await };
    // SAFETY: the AsyncFd owns `fd` (a dup), which stays open as long as
    // it is registered.
    match unsafe { AsyncFd::register_with_interest(fd, Interest::ERROR) } {
        Ok(afd) => {
            let _ = afd.ready(Interest::ERROR).await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// The live watcher; `Ok(false)` if it stopped because stdout closed.
fn watch(server: Server, sessions: &[OsString], record: Option<&Path>) -> Result<bool> {
    let mode = if sessions.is_empty() {
        Mode::Marked
    } else {
        let mut ids = BTreeSet::new();
        for s in sessions {
            ids.insert(resolve(&server, s)?.0);
        }
        Mode::Fixed(ids)
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut source = TmuxControl::new(server);
        if let Some(p) = record {
            source.record_to(p).await.with_context(|| format!("cannot record to {}", p.display()))?;
        }
        let mut watcher = Watcher::new(mode);
        let closed = std::cell::Cell::new(false);
        let print = |v: serde_json::Value| {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{v}").and_then(|()| out.flush()).is_err() {
                closed.set(true);
            }
        };
        // The reader going away stops the watcher at once, not at the
        // next event.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            stdout_closed().await;
            let (stop, _done) = tokio::sync::oneshot::channel();
            let _ = tx.send(watch::Request::Stop(stop)).await;
        });
        let reason =
            watch::run(&mut source, &mut watcher, Some(rx), |_| serde_json::Value::Null, |e| print(event_json(e)))
                .await?;
        if reason == EndReason::Requested || closed.get() {
            return Ok(false);
        }
        print(end_json(reason));
        // Giving up on the anchor is a failure (exit status 1).
        Ok(!closed.get() && reason != EndReason::AnchorFailed)
    })
}

//! `ctb watch`: the watcher in the foreground, events as JSON lines.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::tmux::{resolve, Recording, Server, TmuxControl};
use crate::watch::{self, end_json, event_json, Mode, Watcher};

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

pub fn watch(server: Server, sessions: &[OsString], record: Option<&Path>) -> Result<()> {
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
            source.record_to(p).await?;
        }
        let mut watcher = Watcher::new(mode);
        let print = |v: serde_json::Value| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{v}");
            let _ = out.flush();
        };
        let reason =
            watch::run(&mut source, &mut watcher, None, |_| serde_json::Value::Null, |e| print(event_json(e))).await?;
        print(end_json(reason));
        Ok(())
    })
}

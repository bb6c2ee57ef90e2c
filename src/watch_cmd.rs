//! `ctb watch`: the watcher in the foreground, events as JSON lines.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::control::TmuxControl;
use crate::sessions::resolve;
use crate::tmux::Server;
use crate::watch::{self, end_json, event_json, Mode, Watcher};

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
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
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

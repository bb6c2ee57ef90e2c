//! Session commands: `session-create`, `session-kill`, `session-list`.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};

use super::reply::{fail, Outcome, Reply};
use crate::daemon;
use crate::tmux::{self, Server};
use crate::util::lossy;

/// `session-create` as a reply.
pub fn create_reply(
    server: &Server,
    name: &OsStr,
    no_watch: bool,
    dir: Option<&PathBuf>,
    command: &[OsString],
) -> Outcome {
    let asked = || Reply::new("session-create").session(name.to_string_lossy());
    // Watched: under the spawn lock, and where a server runs, with the
    // daemon attached before the session exists (see daemon.rs on holds).
    let watch = if no_watch {
        None
    } else {
        let lock = crate::runtime::SpawnLock::take(&server.socket_path()).map_err(|e| fail(asked(), e))?;
        let held = if !daemon::daemon_listening(&lock)
            && server.list_sessions_or_none().map_err(|e| fail(asked(), e.into()))?.is_some()
        {
            Some(daemon::spawn_daemon(server, &lock).map_err(|e| fail(asked(), e))?)
        } else {
            None
        };
        Some((lock, held))
    };
    let c = tmux::create(server, name, !no_watch, dir, command).map_err(|e| fail(asked(), e))?;
    let mut reply = Reply::new("session-create")
        .session(lossy(&c.name))
        .pane(c.pane.clone())
        .output(lossy(&c.name))
        .field("session_id", c.id.to_string())
        .field("watched", !no_watch);
    match watch {
        None => reply = reply.field("daemon_pid", Value::Null),
        Some((lock, held)) => {
            let watched = match held {
                Some(mut h) => h.watch(c.id),
                None => daemon::watch_by_running(&lock, c.id).and_then(|pid| match pid {
                    Some(pid) => Ok(pid),
                    // The daemon stopped after we looked: start one for it.
                    None => daemon::spawn_daemon(server, &lock)?.watch(c.id),
                }),
            };
            match watched {
                Ok(pid) => reply = reply.field("daemon_pid", pid),
                Err(e) => {
                    let e =
                        e.context(format!("session {} was created and marked watched, but no daemon watches it", c.id));
                    return Err(fail(reply, e));
                }
            }
        }
    }
    Ok(reply)
}

/// All sessions as JSON objects.
pub fn list(server: &Server) -> Result<Value> {
    let rows = server.list_sessions()?;
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "name": lossy(&r.name),
                    "id": r.id.to_string(),
                    "watched": r.watched,
                    "windows": r.windows,
                    "attached": r.attached,
                    "created": r.created,
                })
            })
            .collect(),
    ))
}

//! Session commands: `session-create`, `session-kill`, `session-list`.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};

use super::reply::{fail, Outcome, Reply};
use crate::daemon;
use crate::tmux::{self, Server};
use crate::util::lossy;

/// `session-create` as a reply. Never an error once the session exists:
/// if it could not be watched, the reply is a success with `watched`
/// false and `warning` saying why (the session is there, marked).
pub fn create_reply(
    server: &Server,
    name: &OsStr,
    no_watch: bool,
    dir: Option<&PathBuf>,
    command: &[OsString],
) -> Outcome {
    let asked = || Reply::new("session-create").session(name.to_string_lossy());
    let dir = match dir.map(|d| start_dir(d)).transpose() {
        Ok(d) => d,
        Err(e) => return Err(fail(asked(), e)),
    };
    if let Err(e) = server.check_socket() {
        return Err(fail(asked(), e.into()));
    }
    // Refuse before creating anything if the daemon's socket could not be
    // bound (a path too long for a Unix socket).
    if !no_watch {
        if let Err(e) = crate::runtime::runtime_dir().map_err(anyhow::Error::from).and_then(|d| {
            crate::runtime::ServerFiles::new(&d, &server.socket_path()).check().map_err(anyhow::Error::from)
        }) {
            return Err(fail(asked(), e));
        }
    }
    // Watched: under the spawn lock, and where a server runs, with the
    // daemon attached before the session exists (see daemon/ on holds).
    let watch = if no_watch {
        None
    } else {
        let mut lock = crate::runtime::SpawnLock::take(&server.socket_path()).map_err(|e| fail(asked(), e))?;
        // A daemon of another runtime directory may serve this server.
        lock.files = daemon::locate(server).map_err(|e| fail(asked(), e))?;
        let held = if !daemon::daemon_listening(&lock)
            && server.list_sessions_or_none().map_err(|e| fail(asked(), e.into()))?.is_some()
        {
            match daemon::spawn_daemon(server, &lock) {
                Ok(h) => Some(h),
                // The server's last session was exiting: the daemon found
                // no server and left. Create on a fresh server, then spawn.
                Err(_) if server.list_sessions_or_none().ok().flatten().is_none() => None,
                Err(e) => return Err(fail(asked(), e)),
            }
        } else {
            None
        };
        Some((lock, held))
    };
    let c = tmux::create(server, name, !no_watch, dir.as_ref(), command).map_err(|e| fail(asked(), e))?;
    if c.gone {
        let reply = Reply::new("session-create")
            .session(lossy(&c.name))
            .field("session_id", c.id.to_string())
            .field("created", true)
            .field("watched", false);
        let e = anyhow::anyhow!(
            "session {} no longer exists: it was killed right after its creation (by a hook?); nothing was marked, \
             and no daemon watches it",
            c.id
        );
        return Err(fail(reply, e));
    }
    let mut reply = Reply::new("session-create")
        .session(lossy(&c.name))
        .pane(c.pane.clone())
        .output(lossy(&c.name))
        .field("session_id", c.id.to_string())
        .field("created", true);
    match watch {
        None => reply = reply.field("watched", false).field("daemon_pid", Value::Null),
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
                Ok(pid) => reply = reply.field("watched", true).field("daemon_pid", pid),
                Err(e) => {
                    reply = reply.field("watched", false).field("daemon_pid", Value::Null).field(
                        "warning",
                        format!("session {} was created and marked watched, but no daemon watches it yet: {e:#}", c.id),
                    );
                }
            }
        }
    }
    Ok(reply)
}

/// A `-c` directory: it must exist (tmux would silently start elsewhere);
/// made absolute (tmux resolves a relative one against its own cwd).
pub(super) fn start_dir(d: &std::path::Path) -> Result<PathBuf> {
    match std::fs::metadata(d) {
        Ok(md) if md.is_dir() => Ok(crate::tmux::absolute(d)),
        Ok(_) => anyhow::bail!("-c {}: not a directory", d.display()),
        Err(e) => anyhow::bail!("-c {}: {}", d.display(), io_reason(&e)),
    }
}

/// An I/O error's reason without the "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// `session-kill` as a reply: the id and the name of the session killed.
pub fn kill_reply(server: &Server, name: &OsStr) -> Outcome {
    let reply = Reply::new("session-kill").session(name.to_string_lossy());
    match tmux::kill(server, name) {
        Ok((id, killed)) => {
            Ok(Reply::new("session-kill").session(lossy(&killed)).output("killed").field("session_id", id.to_string()))
        }
        Err(e) => Err(fail(reply, e)),
    }
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
                    "created": crate::util::rfc3339(r.created as i64, 0),
                })
            })
            .collect(),
    ))
}

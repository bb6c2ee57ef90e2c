//! Session commands: `session-create`, `session-kill`, `session-list`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tmux_control::SessionId;

use crate::daemon;
use crate::item_json::lossy;
use crate::output::{fail, Outcome, Reply};
use crate::tmux::{Server, TmuxError};

/// tmux splits its argv at an argument ending in `;`; a `\;` ending keeps
/// a literal `;`. Escape user data so it never becomes a separator.
pub fn tmux_arg(a: &OsStr) -> OsString {
    let b = a.as_bytes();
    if b.ends_with(b";") {
        let mut v = b[..b.len() - 1].to_vec();
        v.extend_from_slice(b"\\;");
        OsString::from_vec(v)
    } else {
        a.to_owned()
    }
}

/// What `session-create` made.
#[derive(Debug)]
pub struct Created {
    pub id: SessionId,
    pub pane: String,
    pub name: Vec<u8>,
}

/// Creates a detached session, marked watched unless `no_watch`, in one tmux
/// command (so the mark is there before anyone can see the session).
pub fn create(
    server: &Server,
    name: &OsStr,
    watch: bool,
    dir: Option<&PathBuf>,
    command: &[OsString],
) -> Result<Created> {
    if name.is_empty() {
        bail!("a session name must not be empty");
    }
    let mut args: Vec<OsString> = vec![
        "new-session".into(),
        "-d".into(),
        "-P".into(),
        "-F".into(),
        "#{session_id} #{pane_id} #{session_name}".into(),
        "-s".into(),
        tmux_arg(name),
    ];
    if let Some(d) = dir {
        args.push("-c".into());
        args.push(tmux_arg(d.as_os_str()));
    }
    if !command.is_empty() {
        args.push("--".into());
        args.extend(command.iter().map(|c| tmux_arg(c)));
    }
    if watch {
        args.extend([";", "set-option", "@ctb-watched", "1"].map(OsString::from));
    }
    // A server that is exiting (its last session just closed) can take the
    // connection and then vanish: once more starts a fresh server.
    let out = match server.run(&args) {
        Err(TmuxError::NoServer(_)) => server.run(&args),
        other => other,
    };
    let out = out.map_err(|e| match e {
        TmuxError::Failed { message, .. } if message.starts_with("duplicate session") => {
            anyhow::anyhow!("a session named {:?} already exists", name)
        }
        other => other.into(),
    })?;
    let line = out.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.splitn(3, |&b| b == b' ');
    let id = parts.next().and_then(SessionId::from_bytes).context("tmux did not print the new session's id")?;
    let pane = lossy(parts.next().unwrap_or_default());
    let name = parts.next().unwrap_or_default().to_vec();
    Ok(Created { id, pane, name })
}

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
        let lock = daemon::SpawnLock::take(server).map_err(|e| fail(asked(), e))?;
        let held = if !daemon::daemon_listening(&lock)
            && server.list_sessions_or_none().map_err(|e| fail(asked(), e.into()))?.is_some()
        {
            Some(daemon::spawn_daemon(server, &lock).map_err(|e| fail(asked(), e))?)
        } else {
            None
        };
        Some((lock, held))
    };
    let c = create(server, name, !no_watch, dir, command).map_err(|e| fail(asked(), e))?;
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

/// Resolves a user's session argument: an exact name, else a `$N` id.
pub fn resolve(server: &Server, arg: &OsStr) -> Result<(SessionId, Vec<u8>)> {
    let rows = server.list_sessions()?;
    if let Some(r) = rows.iter().find(|r| r.name == arg.as_bytes()) {
        return Ok((r.id, r.name.clone()));
    }
    if let Ok(id) = arg.to_string_lossy().parse::<SessionId>() {
        if let Some(r) = rows.iter().find(|r| r.id == id) {
            return Ok((r.id, r.name.clone()));
        }
    }
    bail!("no session named {:?} on this tmux server", arg)
}

/// Kills exactly the named session.
pub fn kill(server: &Server, name: &OsStr) -> Result<SessionId> {
    let (id, _) = resolve(server, name)?;
    // By id: the name could have been renamed since resolving, the id not.
    server.run([OsString::from("kill-session"), OsString::from("-t"), OsString::from(id.to_string())])?;
    Ok(id)
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

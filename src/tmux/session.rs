//! Session operations as tmux commands: create, resolve, kill.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tmux_control::SessionId;

use super::escape::{literal, tmux_arg};
use super::listing::SessionRow;
use super::server::{Server, TmuxError};
use crate::runtime::AttachGate;
use crate::util::lossy;

/// What `session-create` made.
#[derive(Debug)]
pub struct Created {
    pub id: SessionId,
    pub pane: String,
    pub name: Vec<u8>,
    /// The session was gone before it could be marked (a hook killed it
    /// inside the creating command); nothing was marked.
    pub gone: bool,
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
        // -s and -c are format-expanded by tmux (see escape.rs).
        literal(name),
    ];
    if let Some(d) = dir {
        args.push("-c".into());
        args.push(literal(d.as_os_str()));
    }
    if !command.is_empty() {
        // Not format-expanded (see escape.rs): passed as given.
        args.push("--".into());
        args.extend(command.iter().map(|c| tmux_arg(c)));
    }
    if watch {
        // The mark goes to the command's current session: the new one,
        // unless a hook (after-new-session) killed it meanwhile, and then
        // to whichever session tmux picks. So: which session and its mark
        // before, the mark, and the session's name after the hooks (a
        // hook may rename it). `create` then undoes a mark that went
        // astray. (display-message's template has no `%`: no strftime.)
        args.extend(
            [";", "display-message", "-p", "ctb-mark #{session_id} #{==:#{@ctb-watched},1}"].map(OsString::from),
        );
        args.extend([";", "set-option", "@ctb-watched", "1"].map(OsString::from));
        args.extend([";", "display-message", "-p", "ctb-name #{session_id} #{session_name}"].map(OsString::from));
    }
    // A server that is exiting (its last session just closed) can take the
    // connection and then vanish: once more starts a fresh server.
    let out = {
        // Creating a window: not while a ctb control client attaches.
        let _gate = AttachGate::mutation(&server.socket_path())?;
        match server.run(&args) {
            Err(TmuxError::NoServer(_)) => server.run(&args),
            other => other,
        }
    };
    let out = out.map_err(|e| match e {
        TmuxError::Failed { message, .. } if message.starts_with("duplicate session") => {
            anyhow::anyhow!("a session named {:?} already exists", name)
        }
        other => other.into(),
    })?;
    let mut lines = out.split(|&b| b == b'\n');
    let line = lines.next().unwrap_or_default();
    let mut parts = line.splitn(3, |&b| b == b' ');
    let id = parts.next().and_then(SessionId::from_bytes).context("tmux did not print the new session's id")?;
    let pane = lossy(parts.next().unwrap_or_default());
    let mut name = parts.next().unwrap_or_default().to_vec();
    let mut gone = false;
    for l in lines {
        if let Some(rest) = l.strip_prefix(b"ctb-mark ") {
            let mut f = rest.splitn(2, |&b| b == b' ');
            let marked = f.next().and_then(SessionId::from_bytes);
            let was = f.next() == Some(b"1");
            if marked.is_some_and(|m| m != id) {
                gone = true;
                if let (Some(other), false) = (marked, was) {
                    // Not ours, and not marked before: take the mark back.
                    tracing::warn!(%id, %other, "the new session was gone before its mark; unmarking the session that got it");
                    let _ = server.run(["set-option", "-t", &other.to_string(), "-u", "@ctb-watched"]);
                }
            }
        } else if let Some(rest) = l.strip_prefix(b"ctb-name ") {
            let mut f = rest.splitn(2, |&b| b == b' ');
            if f.next().and_then(SessionId::from_bytes) == Some(id) {
                name = f.next().unwrap_or_default().to_vec();
            }
        }
    }
    Ok(Created { id, pane, name, gone })
}

/// Resolves a user's session argument: an exact name, else a `$N` id.
pub fn resolve(server: &Server, arg: &OsStr) -> Result<(SessionId, Vec<u8>)> {
    pick(&server.list_sessions()?, arg)
}

/// [`resolve`] on a listing already made (anchors left out).
pub fn pick(rows: &[SessionRow], arg: &OsStr) -> Result<(SessionId, Vec<u8>)> {
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

/// Kills exactly the named session; its id and name.
pub fn kill(server: &Server, name: &OsStr) -> Result<(SessionId, Vec<u8>)> {
    let (id, name) = resolve(server, name)?;
    // By id: the name could have been renamed since resolving, the id not.
    let _gate = AttachGate::mutation(&server.socket_path())?;
    server.run([OsString::from("kill-session"), OsString::from("-t"), OsString::from(id.to_string())])?;
    Ok((id, name))
}

//! Pane commands (the bash bridge's names and argument order): replies
//! built from [`crate::agent`].

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::reply::{fail, Outcome, Reply};
use crate::agent::pane as agent;
use crate::tmux::{self, PaneRow, PaneTarget, Server, SessionPanes};
use crate::util::lossy;

/// What a pane command was asked, for its reply (success or error).
pub(super) fn asked(command: &'static str, session: &OsStr, pane: Option<&OsStr>) -> Reply {
    let r = Reply::new(command).session(session.to_string_lossy());
    match pane {
        Some(p) => r.pane(p.to_string_lossy()),
        None => r,
    }
}

/// A reply for a resolved pane: the session's stored name and the pane id.
pub(super) fn resolved(command: &'static str, t: &PaneTarget) -> Reply {
    Reply::new(command)
        .session(lossy(&t.session_name))
        .pane(t.pane.id.clone())
        .field("session_id", t.session.to_string())
}

/// Runs `f` on the resolved target; errors keep what was asked.
fn on_pane(
    command: &'static str,
    server: &Server,
    session: &OsStr,
    pane: &OsStr,
    f: impl FnOnce(Reply, &PaneTarget) -> Result<Reply>,
) -> Outcome {
    let t = tmux::resolve_pane(server, session, pane).map_err(|e| fail(asked(command, session, Some(pane)), e))?;
    f(resolved(command, &t), &t).map_err(|e| fail(resolved(command, &t), e))
}

fn on_session(
    command: &'static str,
    server: &Server,
    session: &OsStr,
    f: impl FnOnce(Reply, &SessionPanes) -> Result<Reply>,
) -> Outcome {
    let sp = tmux::session_panes(server, session).map_err(|e| fail(asked(command, session, None), e))?;
    let r = Reply::new(command).session(lossy(&sp.session_name)).field("session_id", sp.session.to_string());
    f(r, &sp).map_err(|e| fail(Reply::new(command).session(lossy(&sp.session_name)), e))
}

/// A pane as JSON (the `pane-list` entry).
pub fn pane_json(p: &PaneRow) -> Value {
    let st = agent::status(p);
    let mut meta = Map::new();
    for (k, v) in &p.metadata {
        meta.insert(lossy(k), lossy(v).into());
    }
    json!({
        "pane_id": p.id,
        "index": p.index,
        "window_id": p.window_id,
        "label": p.label.as_deref().map(lossy),
        "pid": p.pid,
        "command": st.command.as_deref().map(lossy),
        "running": st.running,
        "dead": p.dead,
        "exit_status": p.exit_status,
        "exit_signal": p.exit_signal,
        "width": p.width,
        "height": p.height,
        "active": p.active,
        "window_active": p.window_active,
        "in_mode": p.in_mode,
        "title": lossy(&p.title),
        "cwd": st.cwd.as_deref().map(lossy),
        "metadata": Value::Object(meta),
    })
}

fn panes_value(sp: &SessionPanes) -> Value {
    Value::Array(sp.panes.iter().map(pane_json).collect())
}

pub fn create(
    server: &Server,
    session: &OsStr,
    label: Option<&OsStr>,
    layout: &str,
    dir: Option<&PathBuf>,
    command: &[OsString],
    name: &'static str,
) -> Outcome {
    let ask = || asked(name, session, None);
    let dir = match dir {
        Some(d) => Some(super::session::start_dir(d).map_err(|e| fail(ask(), e))?),
        None => None,
    };
    let c = agent::create(server, session, label, layout, dir.as_deref(), command).map_err(|e| fail(ask(), e))?;
    Ok(Reply::new(name)
        .session(lossy(&c.session.session_name))
        .pane(c.pane_id.clone())
        .output(c.pane_id.clone())
        .field("session_id", c.session.session.to_string())
        .field("index", c.index)
        .field("window_id", c.window_id)
        .field("label", label.map(|l| l.to_string_lossy().into_owned()))
        .field("layout", layout))
}

pub fn list(server: &Server, session: &OsStr, name: &'static str) -> Outcome {
    on_session(name, server, session, |r, sp| {
        let panes = panes_value(sp);
        Ok(r.output(panes.clone()).field("panes", panes).field("count", sp.panes.len()))
    })
}

pub fn state_sync(server: &Server, session: &OsStr) -> Outcome {
    on_session("state-sync", server, session, |r, sp| {
        let panes = panes_value(sp);
        Ok(r.output(panes.clone())
            .field("panes", panes)
            .field("count", sp.panes.len())
            .field("state", "tmux")
            .field("note", "ctb keeps no state file: labels and metadata live in tmux pane options, read now"))
    })
}

pub fn count(server: &Server, session: &OsStr) -> Outcome {
    on_session("pane-count", server, session, |r, sp| Ok(r.output(sp.panes.len()).field("count", sp.panes.len())))
}

pub fn find(server: &Server, session: &OsStr, label: &OsStr) -> Outcome {
    on_session("pane-find", server, session, |r, sp| {
        if label.is_empty() {
            bail!("a label must not be empty");
        }
        let hits: Vec<&PaneRow> = sp.panes.iter().filter(|p| p.label.as_deref() == Some(label.as_bytes())).collect();
        match hits.as_slice() {
            [p] => Ok(r
                .pane(p.id.clone())
                .output(p.id.clone())
                .field("index", p.index)
                .field("label", lossy(label.as_bytes()))),
            [] => bail!("no pane labelled {:?} in session {:?}", label.to_string_lossy(), lossy(&sp.session_name)),
            many => bail!(
                "{} panes are labelled {:?} in session {:?}: {}",
                many.len(),
                label.to_string_lossy(),
                lossy(&sp.session_name),
                many.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    })
}

/// The one-invocation path ([`agent::guarded`]) when it applies; `None`
/// to resolve and act as usual.
fn fast(
    command: &'static str,
    server: &Server,
    session: &OsStr,
    pane: &OsStr,
    action: &agent::Action,
    f: impl FnOnce(Reply, &agent::Guarded) -> Reply,
) -> Option<Outcome> {
    Some(match agent::guarded(server, session, pane, action)? {
        Ok(g) => Ok(f(resolved(command, &g.target), &g)),
        Err(e) => Err(fail(asked(command, session, Some(pane)), e)),
    })
}

pub fn exec(server: &Server, session: &OsStr, pane: &OsStr, text: &OsStr, enter: bool) -> Outcome {
    let action = agent::Action::Exec { text: text.as_bytes(), enter };
    if let Some(o) = fast("pane-exec", server, session, pane, &action, |r, _| {
        r.output("sent").field("bytes", text.len()).field("enter", enter).field("tmux_calls", 1)
    }) {
        return o;
    }
    on_pane("pane-exec", server, session, pane, |r, t| {
        let calls = agent::exec(server, t, text.as_bytes(), enter)?;
        Ok(r.output("sent").field("bytes", text.len()).field("enter", enter).field("tmux_calls", calls))
    })
}

pub fn keys(server: &Server, session: &OsStr, pane: &OsStr, keys: &[OsString]) -> Outcome {
    let names: Vec<String> = keys.iter().map(|k| k.to_string_lossy().into_owned()).collect();
    // Unknown names are refused before anything (on either path).
    if agent::check_keys(keys).is_ok() {
        let action = agent::Action::Keys(keys);
        if let Some(o) =
            fast("pane-keys", server, session, pane, &action, |r, _| r.output("sent").field("keys", names.clone()))
        {
            return o;
        }
    }
    on_pane("pane-keys", server, session, pane, |r, t| {
        agent::keys(server, t, keys)?;
        Ok(r.output("sent").field("keys", names))
    })
}

pub fn capture(server: &Server, session: &OsStr, pane: &OsStr, lines: u32, escapes: bool, join: bool) -> Outcome {
    let action = agent::Action::Capture { lines, escapes, join };
    if let Some(o) =
        fast("pane-capture", server, session, pane, &action, |r, g| r.output(lossy(&g.output)).field("lines", lines))
    {
        return o;
    }
    on_pane("pane-capture", server, session, pane, |r, t| {
        let text = agent::capture(server, t, lines, escapes, join)?;
        Ok(r.output(lossy(&text)).field("lines", lines))
    })
}

/// `pane-watch` and `pane-has-pattern`: the reply and whether it matched.
pub fn watch(
    server: &Server,
    session: &OsStr,
    pane: &OsStr,
    pattern: &str,
    lines: u32,
    name: &'static str,
) -> (Outcome, bool) {
    let mut found = false;
    let out = on_pane(name, server, session, pane, |r, t| {
        let re = regex::Regex::new(pattern).map_err(|e| anyhow::anyhow!("bad pattern {pattern:?}: {e}"))?;
        let text = lossy(&agent::capture(server, t, lines, false, true)?);
        let matches = agent::matching_lines(&text, &re);
        found = !matches.is_empty();
        Ok(r.output(matches.join("\n")).field("found", found).field("matches", matches).field("pattern", pattern))
    });
    (out, found)
}

pub fn status(server: &Server, session: &OsStr, pane: &OsStr, name: &'static str) -> Outcome {
    on_pane(name, server, session, pane, |r, t| {
        let s = agent::status(&t.pane);
        let output = match (s.dead, s.running) {
            (true, _) => "dead",
            (false, Some(true)) => "running",
            (false, Some(false)) => "idle",
            (false, None) => "unknown",
        };
        Ok(r.output(output)
            .field("pid", s.pid)
            // `command` is the envelope's (the ctb command's name).
            .field("pane_command", s.command.as_deref().map(lossy))
            .field("running", s.running)
            .field("foreground_pgid", s.foreground_pgid)
            .field("dead", s.dead)
            .field("exit_status", s.exit_status)
            .field("exit_signal", s.exit_signal)
            .field("cwd", s.cwd.as_deref().map(lossy))
            .field("label", t.pane.label.as_deref().map(lossy)))
    })
}

pub fn kill(server: &Server, session: &OsStr, pane: &OsStr) -> Outcome {
    if let Some(o) = fast("pane-kill", server, session, pane, &agent::Action::Kill, |r, g| {
        r.output("killed")
            .field("label", g.target.pane.label.as_deref().map(lossy))
            .field("session_closed", g.session_closed)
    }) {
        return o;
    }
    let sp = tmux::session_panes(server, session).map_err(|e| fail(asked("pane-kill", session, Some(pane)), e))?;
    let row = tmux::find_pane(server, &sp, pane).map_err(|e| fail(asked("pane-kill", session, Some(pane)), e))?;
    let t = PaneTarget { session: sp.session, session_name: sp.session_name.clone(), pane: row };
    let closed = agent::kill(server, &t, sp.panes.len()).map_err(|e| fail(resolved("pane-kill", &t), e))?;
    Ok(resolved("pane-kill", &t)
        .output("killed")
        .field("label", t.pane.label.as_deref().map(lossy))
        .field("session_closed", closed))
}

pub fn label(server: &Server, session: &OsStr, pane: &OsStr, label: &OsStr) -> Outcome {
    on_pane("pane-label", server, session, pane, |r, t| {
        agent::set_label(server, t, label.as_bytes())?;
        Ok(r.output(lossy(label.as_bytes())).field("label", lossy(label.as_bytes())))
    })
}

pub fn metadata_set(server: &Server, session: &OsStr, pane: &OsStr, key: &OsStr, value: &OsStr) -> Outcome {
    on_pane("pane-metadata-set", server, session, pane, |r, t| {
        agent::metadata_set(server, t, key.as_bytes(), value.as_bytes())?;
        Ok(r.output(lossy(value.as_bytes()))
            .field("key", lossy(key.as_bytes()))
            .field("value", lossy(value.as_bytes())))
    })
}

pub fn metadata_get(server: &Server, session: &OsStr, pane: &OsStr, key: &OsStr) -> Outcome {
    on_pane("pane-metadata-get", server, session, pane, |r, t| {
        let Some((_, v)) = t.pane.metadata.iter().find(|(k, _)| k == key.as_bytes()) else {
            bail!("pane {} has no metadata key {:?}", t.pane.id, key.to_string_lossy());
        };
        Ok(r.output(lossy(v))
            .field("key", lossy(key.as_bytes()))
            .field("value", lossy(v))
            .field("value_hex", crate::util::hex_encode(v)))
    })
}

pub fn metadata_list(server: &Server, session: &OsStr, pane: &OsStr) -> Outcome {
    on_pane("pane-metadata-list", server, session, pane, |r, t| {
        let mut meta = Map::new();
        for (k, v) in &t.pane.metadata {
            meta.insert(lossy(k), lossy(v).into());
        }
        Ok(r.output(Value::Object(meta.clone())).field("metadata", Value::Object(meta)))
    })
}

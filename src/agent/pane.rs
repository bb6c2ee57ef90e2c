//! Pane operations: create, type text, send keys, capture, status, kill,
//! labels and metadata. Each resolves its target once
//! ([`crate::tmux::resolve_pane`]) and then addresses the pane by id.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::keys::valid_key;
use crate::runtime::AttachGate;
use crate::tmux::{self, gone, literal, tmux_arg, PaneRow, PaneTarget, Server, SessionPanes};
use crate::util::{hex_encode, lossy};

/// tmux's named layouts.
pub const LAYOUTS: &[&str] = &["even-horizontal", "even-vertical", "main-horizontal", "main-vertical", "tiled"];

/// A layout argument: one of [`LAYOUTS`], or a layout string as tmux
/// prints it (`#{window_layout}`: a 4-digit hex checksum, a comma, then
/// only `[0-9x,{}[]]`). `true` for a named one.
pub fn check_layout(layout: &str) -> Result<bool> {
    if LAYOUTS.contains(&layout) {
        return Ok(true);
    }
    let b = layout.as_bytes();
    let custom = b.len() > 5
        && b[..4].iter().all(u8::is_ascii_hexdigit)
        && b[4] == b','
        && b[5..].iter().all(|c| c.is_ascii_digit() || b"x,{}[]".contains(c));
    if custom {
        return Ok(false);
    }
    bail!("unknown layout {layout:?}: use one of {} or a layout string (#{{window_layout}})", LAYOUTS.join(", "))
}

/// What `pane-create` made.
#[derive(Debug)]
pub struct Created {
    pub pane_id: String,
    pub index: u32,
    pub window_id: String,
    pub session: SessionPanes,
}

/// Splits the session's current window (`-h` when it has an odd number
/// of panes, else `-v`, alternating as the bash bridge did), labels the
/// new pane and applies `layout`, in one tmux invocation. A layout string
/// tmux rejects removes the new pane again (nothing is left half-done).
pub fn create(
    server: &Server,
    session: &OsStr,
    label: Option<&OsStr>,
    layout: &str,
    dir: Option<&Path>,
    command: &[OsString],
) -> Result<Created> {
    if label.is_some_and(OsStr::is_empty) {
        bail!("a label must not be empty");
    }
    let named = check_layout(layout)?;
    let sp = tmux::session_panes(server, session)?;
    let current: Vec<&PaneRow> = sp.panes.iter().filter(|r| r.window_active).collect();
    let window = current.first().map(|r| r.window_id.clone()).context("the session has no current window")?;
    let split = if current.len() & 1 == 1 { "-h" } else { "-v" };
    let mut args: Vec<OsString> =
        vec!["split-window".into(), "-t".into(), window.clone().into(), split.into(), "-P".into()];
    args.extend(["-F".into(), "#{pane_id} #{pane_index}".into()]);
    if let Some(d) = dir {
        // -c is format-expanded (see tmux/escape.rs).
        args.extend(["-c".into(), literal(d.as_os_str())]);
    }
    if !command.is_empty() {
        args.push("--".into());
        args.extend(command.iter().map(|c| tmux_arg(c)));
    }
    // Without -d the new pane is its window's active pane, which a window
    // target of a pane option names (same command list: nothing between).
    // `-F` puts that pane's id in the value (see tmux::LABEL_OPTION); the
    // rest is hex, nothing to expand.
    // A user's `after-split-window` hook may have made another pane active
    // meanwhile: a pane that has its own label is never relabelled (the
    // `if-shell -F` guard), and the pane that got it is printed last, so
    // a wrong one is repaired below.
    if let Some(l) = label {
        let value = format!("#{{pane_id}}:{}", hex_encode(l.as_bytes()));
        let own = format!("#{{m:#{{pane_id}}:*,#{{{}}}}}", tmux::LABEL_OPTION);
        let set = format!("set-option -p -F -t '{window}' {} '{value}'", tmux::LABEL_OPTION);
        args.extend([";", "if-shell", "-F", "-t", &window, &own, "", &set].map(OsString::from));
    }
    // A pane running a command directly keeps its exit status: tmux
    // records it only for a pane kept after its process exits
    // (`remain-on-exit`, set on that pane alone; `pane-kill` removes the
    // dead pane). Shell panes are left as tmux makes them.
    if !command.is_empty() {
        args.extend([";", "set-option", "-p", "-t", &window, "remain-on-exit", "on"].map(OsString::from));
    }
    args.extend([";", "display-message", "-p", "-t", &window, "ctb-active #{pane_id}"].map(OsString::from));
    if named {
        args.extend([";", "select-layout", "-t", &window, layout].map(OsString::from));
    }
    let out = {
        let _gate = AttachGate::mutation(&server.socket_path())?;
        server.run(&args).map_err(|e| gone(e, &format!("session {}", sp.session)))?
    };
    let line = out.split(|&b| b == b'\n').next().unwrap_or_default();
    let (pane_id, index) = std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.split_once(' '))
        .and_then(|(p, i)| Some((p.to_owned(), i.parse::<u32>().ok()?)))
        .filter(|(p, _)| p.starts_with('%'))
        .with_context(|| format!("tmux did not print the new pane's id ({:?})", lossy(line)))?;
    let active = out
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"ctb-active "))
        .map(|a| String::from_utf8_lossy(a).into_owned());
    if active.as_deref() != Some(pane_id.as_str()) {
        refocused(server, &pane_id, active.as_deref(), label, !command.is_empty())?;
    }
    if !named {
        let r = server.run([
            OsString::from("select-layout"),
            "-t".into(),
            window.clone().into(),
            tmux_arg(OsStr::new(layout)),
        ]);
        if let Err(e) = r {
            let _gate = AttachGate::mutation(&server.socket_path())?;
            let undo = server.run(["kill-pane", "-t", &pane_id]);
            let undone = match undo {
                Ok(_) => "the new pane was removed".to_owned(),
                Err(u) => format!("removing the new pane {pane_id} failed too: {u}"),
            };
            bail!("tmux rejected layout {layout:?} ({e}); {undone}");
        }
    }
    Ok(Created { pane_id, index, window_id: window, session: sp })
}

/// Repairs `pane-create` after a user's hook made pane `other` active
/// right after the split: what was set on `other` is taken back (only if
/// it is exactly what ctb set), and set on the new pane by its id. A new
/// pane that no longer exists (a hook killed it, or its command ended
/// before it could be kept) is an error.
fn refocused(server: &Server, new: &str, other: Option<&str>, label: Option<&OsStr>, keep: bool) -> Result<()> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |c: Vec<String>| {
        if !args.is_empty() {
            args.push(";".into());
        }
        args.extend(c.into_iter().map(OsString::from));
    };
    let hex = label.map(|l| hex_encode(l.as_bytes()));
    if let Some(o) = other.filter(|o| o.starts_with('%')) {
        if let Some(h) = &hex {
            let ours = format!("#{{==:#{{{}}},{o}:{h}}}", tmux::LABEL_OPTION);
            let unset = format!("set-option -p -u -t '{o}' {}", tmux::LABEL_OPTION);
            push(vec!["if-shell".into(), "-F".into(), "-t".into(), o.into(), ours, unset]);
        }
        if keep {
            push(["set-option", "-p", "-u", "-t", o, "remain-on-exit"].map(String::from).to_vec());
        }
    }
    if let Some(h) = &hex {
        push(vec![
            "set-option".into(),
            "-p".into(),
            "-t".into(),
            new.into(),
            tmux::LABEL_OPTION.into(),
            format!("{new}:{h}"),
        ]);
    }
    if keep {
        push(["set-option", "-p", "-t", new, "remain-on-exit", "on"].map(String::from).to_vec());
    }
    if args.is_empty() {
        return Ok(());
    }
    let _gate = AttachGate::mutation(&server.socket_path())?;
    server.run(&args).map(drop).map_err(|e| {
        anyhow::anyhow!("a tmux hook made another pane active after the split, and the new pane {new} is gone ({e})")
    })
}

/// At most this many bytes of argv per tmux invocation: the tmux client
/// refuses a command over 16 kB ("command too long").
const INVOCATION_BUDGET: usize = 12_000;
/// At most this many bytes of text per `send-keys -l` argument.
const CHUNK: usize = 4_000;

/// Types `text` into the pane: each line (split at LF; a final LF ends
/// the last line, it does not add an empty one) typed literally with
/// `send-keys -l`, then Enter (when `enter`, also after the last line).
/// The pane leaves copy mode (or any mode) first, so the text reaches
/// its program. One tmux invocation unless the text is over about 12 kB.
/// Returns the number of tmux invocations used.
pub fn exec(server: &Server, t: &PaneTarget, text: &[u8], enter: bool) -> Result<usize> {
    refuse_dead(t)?;
    send(server, t, exec_cmds(&t.pane.id, text, enter), text.len())
}

/// The tmux commands [`exec`] runs (arguments as given: the argv path
/// escapes them with [`tmux_arg`], the guarded path quotes them).
fn exec_cmds(id: &str, text: &[u8], enter: bool) -> Vec<Vec<OsString>> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let lines: Vec<&[u8]> = if text.is_empty() { Vec::new() } else { body.split(|&b| b == b'\n').collect() };
    let mut cmds: Vec<Vec<OsString>> = vec![["copy-mode", "-q", "-t", id].map(OsString::from).to_vec()];
    for (i, line) in lines.iter().enumerate() {
        for chunk in chunks(line, CHUNK) {
            let mut c: Vec<OsString> = ["send-keys", "-t", id, "-l", "--"].map(OsString::from).to_vec();
            c.push(OsStr::from_bytes(chunk).to_owned());
            cmds.push(c);
        }
        if enter || i + 1 < lines.len() {
            cmds.push(["send-keys", "-t", id, "Enter"].map(OsString::from).to_vec());
        }
    }
    if lines.is_empty() && enter {
        cmds.push(["send-keys", "-t", id, "Enter"].map(OsString::from).to_vec());
    }
    cmds
}

/// Sends tmux key names (validated first: an unknown name is an error and
/// nothing is sent), after leaving any mode.
pub fn keys(server: &Server, t: &PaneTarget, keys: &[OsString]) -> Result<usize> {
    check_keys(keys)?;
    refuse_dead(t)?;
    send(server, t, keys_cmds(&t.pane.id, keys), 0)
}

/// Refuses an empty list or an unknown key name.
pub fn check_keys(keys: &[OsString]) -> Result<()> {
    if keys.is_empty() {
        bail!("no key given");
    }
    let bad: Vec<String> =
        keys.iter().filter(|k| !k.to_str().is_some_and(valid_key)).map(|k| k.to_string_lossy().into_owned()).collect();
    if !bad.is_empty() {
        bail!("unknown key name{} {:?}: nothing was sent (key names: Enter, Escape, C-c, M-x, Up, F1, a single character; text goes to pane-exec)", if bad.len() > 1 { "s" } else { "" }, bad);
    }
    Ok(())
}

fn keys_cmds(id: &str, keys: &[OsString]) -> Vec<Vec<OsString>> {
    let mut c: Vec<OsString> = ["send-keys", "-t", id, "--"].map(OsString::from).to_vec();
    c.extend(keys.iter().cloned());
    vec![["copy-mode", "-q", "-t", id].map(OsString::from).to_vec(), c]
}

fn refuse_dead(t: &PaneTarget) -> Result<()> {
    if t.pane.input_off {
        bail!("pane {} does not take input (select-pane -d): nothing was sent", t.pane.id);
    }
    if t.pane.dead {
        bail!("pane {} is dead ({}): nothing was sent", t.pane.id, exit_text(&t.pane));
    }
    Ok(())
}

fn exit_text(p: &PaneRow) -> String {
    match (p.exit_status, p.exit_signal) {
        (_, Some(s)) => format!("its process was killed by signal {s}"),
        (Some(s), _) => format!("its process exited with status {s}"),
        _ => "its process exited".into(),
    }
}

/// Runs `cmds` in as few invocations as the budget allows, and checks at
/// the end (same invocation) that the pane is still alive: tmux drops
/// input to a dead pane silently.
fn send(server: &Server, t: &PaneTarget, mut cmds: Vec<Vec<OsString>>, total: usize) -> Result<usize> {
    let id = &t.pane.id;
    cmds.push(
        ["display-message", "-p", "-t", id, "ctb-dead #{pane_dead} #{pane_input_off}"].map(OsString::from).to_vec(),
    );
    let mut batches: Vec<Vec<OsString>> = vec![Vec::new()];
    let mut size = 0;
    for c in cmds {
        let c: Vec<OsString> = c.iter().map(|a| tmux_arg(a)).collect();
        let n: usize = c.iter().map(|a| a.len() + 1).sum::<usize>() + 2;
        let cur = batches.last_mut().expect("one batch at least");
        if !cur.is_empty() && size + n > INVOCATION_BUDGET {
            batches.push(Vec::new());
            size = 0;
        }
        let cur = batches.last_mut().expect("one batch at least");
        if !cur.is_empty() {
            cur.push(";".into());
        }
        cur.extend(c);
        size += n;
    }
    let count = batches.len();
    let mut last = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        last = server.run(b).map_err(|e| {
            let e = gone(e, &format!("pane {id}"));
            if i == 0 {
                e.context("nothing was sent")
            } else {
                e.context(format!("sending failed after {i} of {count} tmux calls ({total} bytes of text in all): part of it was typed"))
            }
        })?;
    }
    // The last line (a user's hook may print before it).
    let last = last.trim_ascii_end().rsplit(|&b| b == b'\n').next().unwrap_or_default().trim_ascii().to_vec();
    if last == b"ctb-dead 0 1" {
        bail!("pane {id} does not take input (select-pane -d): nothing arrived");
    }
    if last != b"ctb-dead 0 0" {
        bail!("pane {id} died while the input was sent: it may not have arrived");
    }
    Ok(count)
}

/// `b` in pieces of at most `n` bytes, never splitting a UTF-8 sequence
/// (a piece ends before a continuation byte when it can).
fn chunks(b: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = b;
    while rest.len() > n {
        let mut cut = n;
        while cut > n.saturating_sub(4) && rest[cut] & 0xc0 == 0x80 {
            cut -= 1;
        }
        let (a, r) = rest.split_at(cut);
        out.push(a);
        rest = r;
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The last `lines` lines of the pane (history included; trailing empty
/// lines of the screen dropped). `escapes` keeps colours and attributes
/// (`-e`), `join` joins wrapped lines (`-J`).
pub fn capture(server: &Server, t: &PaneTarget, lines: u32, escapes: bool, join: bool) -> Result<Vec<u8>> {
    let args = capture_cmd(&t.pane.id, lines, escapes, join);
    let out = server.run(&args).map_err(|e| gone(e, &format!("pane {}", t.pane.id)))?;
    Ok(last_lines(&out, lines))
}

fn capture_cmd(id: &str, lines: u32, escapes: bool, join: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["capture-pane", "-p", "-t", id].map(OsString::from).to_vec();
    // tmux reads -S as an int: past i32::MAX it quietly takes the screen.
    args.extend(["-S".into(), format!("-{}", lines.min(i32::MAX as u32)).into()]);
    if escapes {
        args.push("-e".into());
    }
    if join {
        args.push("-J".into());
    }
    args
}

/// The last `lines` lines of a capture, trailing empty lines dropped.
fn last_lines(out: &[u8], lines: u32) -> Vec<u8> {
    let mut all: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
    while all.last().is_some_and(|l| l.is_empty()) {
        all.pop();
    }
    let keep = all.len().saturating_sub(lines as usize);
    all[keep..].join(&b'\n')
}

/// Lines of `text` matching `re`.
pub fn matching_lines(text: &str, re: &regex::Regex) -> Vec<String> {
    text.lines().filter(|l| re.is_match(l)).map(str::to_owned).collect()
}

/// What runs in a pane, from tmux and `/proc`.
#[derive(Debug, Clone)]
pub struct Status {
    pub pid: u32,
    /// The name of the terminal's foreground process (argv\[0\]'s base
    /// name), `None` when unknown (a dead pane).
    pub command: Option<Vec<u8>>,
    /// The foreground process's working directory.
    pub cwd: Option<Vec<u8>>,
    /// The foreground process group, when known.
    pub foreground_pgid: Option<i32>,
    /// A job other than the pane's own process holds the terminal;
    /// `None` when `/proc` does not tell (the pane's process is not
    /// visible here).
    pub running: Option<bool>,
    pub dead: bool,
    pub exit_status: Option<i32>,
    pub exit_signal: Option<i32>,
}

/// Fields 5 (pgrp) and 8 (tpgid) of `/proc/PID/stat`.
pub(crate) fn pgrp_and_tpgid(pid: u32) -> Option<(i32, i32)> {
    let f = stat_fields(pid)?;
    Some((f.get(2)?.parse().ok()?, f.get(5)?.parse().ok()?))
}

/// The fields of `/proc/PID/stat` after the command name (field 3, the
/// state, first).
pub(crate) fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = s.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&s[close + 1..]).ok()?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The exact status: `running` compares the terminal's foreground
/// process group (`tpgid` of the pane's process) with the pane process's
/// own group.
pub fn status(p: &PaneRow) -> Status {
    let mut s = Status {
        pid: p.pid,
        command: None,
        cwd: None,
        foreground_pgid: None,
        running: None,
        dead: p.dead,
        exit_status: p.exit_status,
        exit_signal: p.exit_signal,
    };
    if p.dead {
        s.running = Some(false);
        return s;
    }
    if let Some((pgrp, tpgid)) = pgrp_and_tpgid(p.pid) {
        s.running = Some(tpgid > 0 && tpgid != pgrp);
        let fg = if tpgid > 0 { tpgid as u32 } else { p.pid };
        s.foreground_pgid = Some(if tpgid > 0 { tpgid } else { pgrp });
        s.command = std::fs::read(format!("/proc/{fg}/cmdline")).ok().and_then(|c| {
            let argv0 = c.split(|&b| b == 0).next()?.to_vec();
            let argv0 = argv0.strip_prefix(b"-").map(<[u8]>::to_vec).unwrap_or(argv0);
            let base = argv0.rsplit(|&b| b == b'/').next()?.to_vec();
            (!base.is_empty()).then_some(base)
        });
        if s.command.is_none() {
            s.command = std::fs::read(format!("/proc/{fg}/comm")).ok().map(|c| c.trim_ascii_end().to_vec());
        }
        s.cwd = std::fs::read_link(format!("/proc/{fg}/cwd")).ok().map(|p| p.into_os_string().into_encoded_bytes());
    }
    s
}

/// Kills exactly this pane (by id, under the attach gate). True if it was
/// the session's last pane (tmux then closes the session).
pub fn kill(server: &Server, t: &PaneTarget, panes_in_session: usize) -> Result<bool> {
    let _gate = AttachGate::mutation(&server.socket_path())?;
    server.run(["kill-pane", "-t", &t.pane.id]).map_err(|e| gone(e, &format!("pane {}", t.pane.id)))?;
    Ok(panes_in_session <= 1)
}

/// Sets metadata `key` to `value` on the pane. The map lives in one pane
/// option, replaced by compare-and-swap inside tmux (`if-shell -F` on the
/// old value, no shell): concurrent setters never lose each other's keys.
/// The first try compares with the value the resolution listed (one tmux
/// call in all when nobody races); a lost race answers the current value.
pub fn metadata_set(server: &Server, t: &PaneTarget, key: &[u8], value: &[u8]) -> Result<()> {
    if key.is_empty() {
        bail!("a metadata key must not be empty");
    }
    let id = &t.pane.id;
    // The map is rebuilt from the value compared, never from an older read.
    let mut old = t.pane.meta_raw.clone();
    for _ in 0..100 {
        let mut current = old.as_deref().map(|o| tmux::decode_meta(o.as_bytes())).unwrap_or_default();
        current.retain(|(k, _)| k != key);
        current.push((key.to_vec(), value.to_vec()));
        let new = tmux::encode_meta(&current);
        // `old` and `new` are `[0-9a-f=.]` only and `id` is `%N`: safe in a
        // format and, single-quoted, in a command string (a bare word
        // starting with `%` would be a parser directive).
        let cond = match &old {
            Some(o) => format!("#{{==:#{{{}}},{id}:{o}}}", tmux::META_OPTION),
            // No own value: whatever is there (nothing, inherited, not
            // ctb's) is replaced, unless a value of its own appeared.
            None => format!("#{{?{},0,1}}", tmux::OWN_META),
        };
        let then = format!("set-option -p -t {id} {} '{id}:{new}'", tmux::META_OPTION);
        let other = format!("display-message -p -t {id} 'ctb-conflict M{}'", tmux::OWN_META);
        let out = server
            .run(["if-shell", "-F", "-t", id, &cond, &then, &other])
            .map_err(|e| gone(e, &format!("pane {id}")))?;
        let Some(now) = out.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(b"ctb-conflict M")) else {
            return Ok(());
        };
        old = tmux::strip_own(now, id).map(|m| String::from_utf8_lossy(m).into_owned());
    }
    bail!("metadata of pane {id} kept changing under ctb: not set")
}

/// Sets the pane's label (replacing any).
pub fn set_label(server: &Server, t: &PaneTarget, label: &[u8]) -> Result<()> {
    if label.is_empty() {
        bail!("a label must not be empty");
    }
    server
        .run([
            "set-option",
            "-p",
            "-t",
            &t.pane.id,
            tmux::LABEL_OPTION,
            &format!("{}:{}", t.pane.id, hex_encode(label)),
        ])
        .map_err(|e| gone(e, &format!("pane {}", t.pane.id)))?;
    Ok(())
}

/// What an action does on the guarded path ([`guarded`]).
pub enum Action<'a> {
    Exec { text: &'a [u8], enter: bool },
    Keys(&'a [OsString]),
    Capture { lines: u32, escapes: bool, join: bool },
    Kill,
}

/// What the guarded path did.
pub struct Guarded {
    pub target: PaneTarget,
    /// What the action printed: the capture's last lines for `Capture`.
    pub output: Vec<u8>,
    /// `Kill`: the pane was its session's last (tmux closed the session).
    pub session_closed: bool,
}

/// A session argument tmux stores and prints unchanged on every version
/// (ASCII letters, digits, `_`, `-`, `+`), not a `$N` and not an anchor's
/// name: one that [`guarded`] may compare with `#{session_name}`.
fn plain_session(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| b.is_ascii_alphanumeric() || b"_-+".contains(&b)) && !tmux::is_anchor_name(s)
}

/// `arg` (valid UTF-8) quoted for tmux's command parser: in single
/// quotes nothing is special (`$`, `~`, `#`, `;`, `\`, newlines); a `'` is
/// `'\''`.
fn quote(arg: &OsStr) -> Vec<u8> {
    let mut v = vec![b'\''];
    for &b in arg.as_bytes() {
        if b == b'\'' {
            v.extend_from_slice(b"'\\''");
        } else {
            v.push(b);
        }
    }
    v.push(b'\'');
    v
}

/// The one-invocation path of a pane action when the pane is given as
/// `%N` and the session by a plain name: tmux prints the pane's row, then
/// runs the action (`if-shell -F`, no shell) only if the pane is in that
/// session (`#{session_name}` of `-t %N`) and, for typing, alive. `None`
/// when it does not apply or tmux did not run the action (another
/// session, a dead pane, no such pane, no server...): the caller then
/// resolves and acts as usual ([`crate::tmux::resolve_pane`]), which
/// gives the exact answer or error. Nothing is done twice: the action
/// runs either here or there.
pub fn guarded(server: &Server, session: &OsStr, pane: &OsStr, action: &Action) -> Option<Result<Guarded>> {
    let p = pane.as_bytes();
    let digits = p.strip_prefix(b"%").filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))?;
    if !plain_session(session.as_bytes()) {
        return None;
    }
    // `%01` is pane %1 to tmux: the same number for ctb (no leading zero
    // kept), as the resolver does.
    let id = format!("%{}", std::str::from_utf8(digits).ok()?.parse::<u32>().ok()?);
    let (cmds, alive): (Vec<Vec<OsString>>, bool) = match action {
        Action::Exec { text, enter } => {
            let mut c = exec_cmds(&id, text, *enter);
            c.push(
                ["display-message", "-p", "-t", &id, "ctb-dead #{pane_dead} #{pane_input_off}"]
                    .map(OsString::from)
                    .to_vec(),
            );
            (c, true)
        }
        Action::Keys(k) => {
            let mut c = keys_cmds(&id, k);
            c.push(
                ["display-message", "-p", "-t", &id, "ctb-dead #{pane_dead} #{pane_input_off}"]
                    .map(OsString::from)
                    .to_vec(),
            );
            (c, true)
        }
        Action::Capture { lines, escapes, join } => (vec![capture_cmd(&id, *lines, *escapes, *join)], false),
        Action::Kill => (vec![["kill-pane", "-t", &id].map(OsString::from).to_vec()], false),
    };
    // tmux's command parser reads UTF-8: invalid bytes lose their quoting
    // (measured on 3.3a: the rest of the string was typed as text). Such
    // text goes through argv only.
    if cmds.iter().flatten().any(|a| a.to_str().is_none()) {
        return None;
    }
    let mut then = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        if i > 0 {
            then.extend_from_slice(b" ; ");
        }
        for (j, a) in c.iter().enumerate() {
            if j > 0 {
                then.push(b' ');
            }
            then.extend(quote(a));
        }
    }
    if then.len() > INVOCATION_BUDGET {
        return None;
    }
    // The session name is plain: nothing in it is special in a format.
    let mut cond = format!("#{{==:#{{session_name}},{}}}", session.to_string_lossy());
    if alive {
        cond = format!("#{{&&:{cond},#{{==:#{{pane_dead}}#{{pane_input_off}},00}}}}");
    }
    let row = format!("ctb-row #{{session_id}} #{{session_windows}} #{{window_panes}} {}", tmux::PANE_FORMAT);
    let args: Vec<OsString> = vec![
        "display-message".into(),
        "-p".into(),
        "-t".into(),
        id.clone().into(),
        row.into(),
        ";".into(),
        "if-shell".into(),
        "-F".into(),
        "-t".into(),
        id.clone().into(),
        cond.into(),
        OsString::from_vec(then),
        "display-message -p ctb-fallback".into(),
    ];
    let out = {
        let _gate = match action {
            Action::Kill => Some(AttachGate::mutation(&server.socket_path()).ok()?),
            _ => None,
        };
        match server.run(&args) {
            Ok(out) => out,
            Err(e) => {
                tracing::debug!(%e, "guarded pane action not run: resolving");
                return None;
            }
        }
    };
    let (first, rest) = match out.iter().position(|&b| b == b'\n') {
        Some(n) => (&out[..n], &out[n + 1..]),
        None => (&out[..], &b""[..]),
    };
    if rest.starts_with(b"ctb-fallback") {
        return None;
    }
    Some((|| {
        let mut f = first.strip_prefix(b"ctb-row ").context("tmux did not print the pane")?.splitn(4, |&b| b == b' ');
        let sid = f.next().and_then(tmux_control::SessionId::from_bytes).context("no session id")?;
        let num = |b: Option<&[u8]>| b.and_then(|b| std::str::from_utf8(b).ok()?.parse::<u32>().ok());
        let windows = num(f.next()).context("no window count")?;
        let panes = num(f.next()).context("no pane count")?;
        let row = f.next().and_then(tmux::PaneRow::parse).context("tmux printed the pane in an unexpected format")?;
        let target = PaneTarget { session: sid, session_name: session.as_bytes().to_vec(), pane: row };
        let mut g = Guarded { target, output: Vec::new(), session_closed: false };
        match action {
            Action::Exec { .. } | Action::Keys(_) => {
                // The last line (a user's hook may print before it).
                let last = rest.trim_ascii_end().rsplit(|&b| b == b'\n').next().unwrap_or_default();
                if last.trim_ascii() == b"ctb-dead 0 1" {
                    bail!("pane {id} does not take input (select-pane -d): nothing arrived");
                }
                if last.trim_ascii() != b"ctb-dead 0 0" {
                    bail!("pane {id} died while the input was sent: it may not have arrived");
                }
            }
            Action::Capture { lines, .. } => g.output = last_lines(rest, *lines),
            Action::Kill => g.session_closed = windows <= 1 && panes <= 1,
        }
        Ok(g)
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        assert!(check_layout("tiled").unwrap());
        assert!(!check_layout("bb62,159x48,0,0{79x48,0,0,0,79x48,80,0,1}").unwrap());
        assert!(check_layout("bogus").is_err());
        assert!(check_layout("tiled;").is_err());
        assert!(check_layout("abcd,#{x}").is_err());
    }

    #[test]
    fn chunks_keep_utf8_sequences() {
        let s = "é".repeat(10);
        let c = chunks(s.as_bytes(), 5);
        assert!(c.iter().all(|p| std::str::from_utf8(p).is_ok()), "{c:?}");
        assert_eq!(c.concat(), s.as_bytes());
        let raw = vec![0xffu8; 11];
        assert_eq!(chunks(&raw, 5).concat(), raw);
        assert!(chunks(b"", 5).is_empty());
    }
}

//! Pane listings and the one pane-target resolver: a session (exact
//! name or `$N`, as [`super::resolve`]) and a pane of it by `%N` id,
//! label, or index in the session's current window.
//!
//! Every later tmux command targets the pane by its id (`%N`): tmux never
//! reuses or renumbers it, and an id is never prefix- or glob-matched.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Result};
use tmux_control::SessionId;

use super::listing::{SessionRow, SESSION_FORMAT};
use super::server::{Server, TmuxError};
use crate::util::{hex_decode, lossy};

/// The pane user option holding a pane's label: `%N:HEX`, the pane's own
/// id, a colon, then the label hex-encoded ([`crate::util::hex_encode`]),
/// so tmux's output escaping (3.4, 3.5a) and format expansion never change
/// a byte.
///
/// The id is there because a user option is inherited: a value set at
/// window, session or global level (`set -g @ctb-label x`) reads as every
/// pane's own through `#{@ctb-label}`. Only a value naming the pane it is
/// read on counts (see [`own`]), so one `list-panes` still reads every
/// label and none is inherited.
pub const LABEL_OPTION: &str = "@ctb-label";

/// The pane user option holding a pane's metadata: `%N:` (as
/// [`LABEL_OPTION`]) then entries `HEXKEY=HEXVALUE` joined by `.` (see
/// [`decode_meta`]).
pub const META_OPTION: &str = "@ctb-meta";

// The own-value formats: they expand to the option's value for the pane
// they are expanded on only if that value is `#{pane_id}:` followed by
// ctb's encoding (hex; for metadata also `=` and `.`), and to nothing
// otherwise, so an inherited value (another pane's id, or none) or one not
// written by ctb never shows, and no value can break the listing's line
// format. Macros because `concat!` takes only literals. Same on 3.3a, 3.4
// and 3.7c (`m/r` is tmux 3.1+).

/// The pane's own [`LABEL_OPTION`].
macro_rules! own_label {
    () => {
        "#{?#{m/r:^#{pane_id}:[0-9a-f]*$,#{@ctb-label}},#{@ctb-label},}"
    };
}
/// The pane's own [`META_OPTION`].
macro_rules! own_meta {
    () => {
        "#{?#{m/r:^#{pane_id}:[0-9a-f=.]*$,#{@ctb-meta}},#{@ctb-meta},}"
    };
}

/// A format: the pane's own `@ctb-meta` value (`%N:...`), or nothing.
pub const OWN_META: &str = own_meta!();

/// `value` (as an own-value format expanded it) without its `%N:` prefix, if it names
/// pane `id`.
pub fn strip_own<'a>(value: &'a [u8], id: &str) -> Option<&'a [u8]> {
    value.strip_prefix(id.as_bytes())?.strip_prefix(b":")
}

/// The list-panes format [`PaneRow::parse`] reads: one line per pane,
/// fields separated by one space. Every field but the last is an id, a
/// number or hex (ctb's options), so no value can contain the separator;
/// the title goes last (tmux refuses control characters in titles, so it
/// holds no newline). Letters prefix the fields that may be empty.
pub const PANE_FORMAT: &str = concat!(
    "#{pane_id} #{pane_index} #{window_id} #{window_active} #{pane_active} #{pane_pid} ",
    "#{pane_dead} S#{pane_dead_status} G#{pane_dead_signal} #{pane_width} #{pane_height} #{pane_in_mode} #{pane_input_off} ",
    "L",
    own_label!(),
    " M",
    own_meta!(),
    " #{pane_title}"
);

/// One pane as tmux lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneRow {
    /// `%N`.
    pub id: String,
    pub index: u32,
    /// `@N`.
    pub window_id: String,
    /// Its window is the session's current window.
    pub window_active: bool,
    /// The active pane of its window.
    pub active: bool,
    pub pid: u32,
    pub dead: bool,
    /// The exit status of a dead pane's process (when it exited).
    pub exit_status: Option<i32>,
    /// The signal that killed a dead pane's process (tmux 3.3+).
    pub exit_signal: Option<i32>,
    pub width: u32,
    pub height: u32,
    /// In copy mode (or another mode).
    pub in_mode: bool,
    /// Input disabled (`select-pane -d`): typed text would be dropped.
    pub input_off: bool,
    /// The label, decoded; `None` when unset (or not written by ctb).
    pub label: Option<Vec<u8>>,
    /// The metadata, decoded, in stored order.
    pub metadata: Vec<(Vec<u8>, Vec<u8>)>,
    /// The pane's own `@ctb-meta` value after its `%N:` prefix, as stored
    /// (`None`: the pane has none of its own).
    pub meta_raw: Option<String>,
    /// As tmux printed it (3.4 and 3.5a escape some bytes).
    pub title: Vec<u8>,
}

impl PaneRow {
    /// One line of [`PANE_FORMAT`]; `None` if it is not in that format.
    pub fn parse(line: &[u8]) -> Option<PaneRow> {
        let mut f = line.splitn(16, |&b| b == b' ');
        let mut next = || f.next();
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
        let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u32>().ok();
        let flag = |b: &[u8]| match b {
            b"0" => Some(false),
            b"1" => Some(true),
            _ => None,
        };
        let opt_int = |b: &[u8], p: u8| {
            let rest = b.strip_prefix(&[p])?;
            Some(if rest.is_empty() { None } else { Some(std::str::from_utf8(rest).ok()?.parse::<i32>().ok()?) })
        };
        let id = text(next()?).filter(|s| s.starts_with('%'))?;
        let index = num(next()?)?;
        let window_id = text(next()?).filter(|s| s.starts_with('@'))?;
        let window_active = flag(next()?)?;
        let active = flag(next()?)?;
        let pid = num(next()?)?;
        let dead = flag(next()?)?;
        let exit_status = opt_int(next()?, b'S')?;
        let exit_signal = opt_int(next()?, b'G')?;
        let width = num(next()?)?;
        let height = num(next()?)?;
        let in_mode = flag(next()?)?;
        let input_off = flag(next()?)?;
        let label = strip_own(next()?.strip_prefix(b"L")?, &id).and_then(hex_decode).filter(|l| !l.is_empty());
        let meta = next()?.strip_prefix(b"M")?;
        let meta_raw = strip_own(meta, &id).map(|m| String::from_utf8_lossy(m).into_owned());
        let metadata = meta_raw.as_deref().map(|m| decode_meta(m.as_bytes())).unwrap_or_default();
        let title = next().unwrap_or_default().to_vec();
        Some(PaneRow {
            id,
            index,
            window_id,
            window_active,
            active,
            pid,
            dead,
            exit_status: exit_status.filter(|_| dead),
            exit_signal: exit_signal.filter(|_| dead),
            width,
            height,
            in_mode,
            input_off,
            label,
            metadata,
            meta_raw,
            title,
        })
    }
}

/// The entries of an `@ctb-meta` value; entries that are not ctb's
/// encoding are skipped.
pub fn decode_meta(v: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.split(|&b| b == b'.')
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let eq = e.iter().position(|&b| b == b'=')?;
            Some((hex_decode(&e[..eq])?, hex_decode(&e[eq + 1..])?))
        })
        .collect()
}

/// An `@ctb-meta` value for `entries` (only `[0-9a-f=.]`).
pub fn encode_meta(entries: &[(Vec<u8>, Vec<u8>)]) -> String {
    entries
        .iter()
        .map(|(k, v)| format!("{}={}", crate::util::hex_encode(k), crate::util::hex_encode(v)))
        .collect::<Vec<_>>()
        .join(".")
}

/// Every pane of session `id`, all its windows, in tmux's order (one
/// `list-panes -s` call).
pub fn list_panes(server: &Server, id: SessionId) -> Result<Vec<PaneRow>> {
    let out = server
        .run([
            OsString::from("list-panes"),
            "-s".into(),
            "-t".into(),
            id.to_string().into(),
            "-F".into(),
            PANE_FORMAT.into(),
        ])
        .map_err(|e| gone(e, &format!("session {id}")))?;
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            PaneRow::parse(l)
                .ok_or_else(|| anyhow::anyhow!("tmux listed a pane in an unexpected format: {:?}", lossy(l)))
        })
        .collect()
}

/// A tmux error for a target that vanished (a "can't find" message) as a
/// sentence naming `what`; others unchanged.
pub fn gone(e: TmuxError, what: &str) -> anyhow::Error {
    match e {
        TmuxError::Failed { message, .. } if message.contains("can't find") || message.contains("no such") => {
            anyhow::anyhow!("{what} is gone ({message})")
        }
        other => other.into(),
    }
}

/// A resolved session and one of its panes.
#[derive(Debug, Clone)]
pub struct PaneTarget {
    pub session: SessionId,
    pub session_name: Vec<u8>,
    pub pane: PaneRow,
}

/// A session's panes as resolved from the user's argument.
#[derive(Debug, Clone)]
pub struct SessionPanes {
    pub session: SessionId,
    pub session_name: Vec<u8>,
    pub panes: Vec<PaneRow>,
}

/// Resolves a session (exact name, else `$N`, as
/// [`super::session::resolve`]) and lists its panes, in one tmux
/// invocation: every session and every pane of the server (`list-panes
/// -a`, each line prefixed `P` and the pane's session id), so nothing can
/// change between resolving and listing.
pub fn session_panes(server: &Server, session: &OsStr) -> Result<SessionPanes> {
    let pane_format = format!("P#{{session_id}} {PANE_FORMAT}");
    let out = match server.run(["list-sessions", "-F", SESSION_FORMAT, ";", "list-panes", "-a", "-F", &pane_format]) {
        Ok(out) => out,
        Err(TmuxError::NoServer(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut sessions = Vec::new();
    let mut pane_lines = Vec::new();
    for l in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match l.strip_prefix(b"P") {
            Some(p) => pane_lines.push(p),
            None => sessions.extend(SessionRow::parse(l).filter(|r| !r.anchor)),
        }
    }
    let (id, name) = super::session::pick(&sessions, session)?;
    let mut panes = Vec::new();
    for l in pane_lines {
        let Some((sid, row)) = l.iter().position(|&b| b == b' ').map(|sp| (&l[..sp], &l[sp + 1..])) else {
            bail!("tmux listed a pane in an unexpected format: {:?}", lossy(l));
        };
        if SessionId::from_bytes(sid) != Some(id) {
            continue;
        }
        panes.push(
            PaneRow::parse(row)
                .ok_or_else(|| anyhow::anyhow!("tmux listed a pane in an unexpected format: {:?}", lossy(row)))?,
        );
    }
    if panes.is_empty() {
        // Between list-sessions and list-panes (same invocation) nothing
        // runs; a session always has a pane. Say so rather than guess.
        bail!("session {:?} ({id}) is gone", lossy(&name));
    }
    Ok(SessionPanes { session: id, session_name: name, panes })
}

/// Resolves `pane` within `session`: a pane id `%N` (which must belong
/// to the session), else a label (exactly one pane must carry it), else
/// an index (`pane_index` in the session's current window; tmux renumbers
/// indexes after a kill, ids never change).
pub fn resolve_pane(server: &Server, session: &OsStr, pane: &OsStr) -> Result<PaneTarget> {
    let sp = session_panes(server, session)?;
    let row = find_pane(server, &sp, pane)?;
    Ok(PaneTarget { session: sp.session, session_name: sp.session_name, pane: row })
}

/// [`resolve_pane`] on a listing already made.
pub fn find_pane(server: &Server, sp: &SessionPanes, pane: &OsStr) -> Result<PaneRow> {
    let p = pane.as_bytes();
    let sname = || format!("{:?} ({})", lossy(&sp.session_name), sp.session);
    if p.is_empty() {
        bail!("a pane must be given as %N, a label or an index (got an empty string)");
    }
    if let Some(digits) = p.strip_prefix(b"%").filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit)) {
        // `%01` names pane %1 (as tmux reads it).
        let Some(n) = std::str::from_utf8(digits).ok().and_then(|d| d.parse::<u32>().ok()) else {
            bail!("no pane {} on this tmux server", lossy(p));
        };
        let id = format!("%{n}");
        if let Some(r) = sp.panes.iter().find(|r| r.id == id) {
            return Ok(r.clone());
        }
        // Name the session that has it, if any.
        let all = server
            .run(["list-panes", "-a", "-F", "#{pane_id} #{session_id} #{session_name}"])
            .map_err(anyhow::Error::from)?;
        for l in all.split(|&b| b == b'\n') {
            let mut f = l.splitn(3, |&b| b == b' ');
            if f.next() == Some(id.as_bytes()) {
                let sid = lossy(f.next().unwrap_or_default());
                let name = lossy(f.next().unwrap_or_default());
                bail!("pane {id} belongs to session {name:?} ({sid}), not to session {}", sname());
            }
        }
        bail!("no pane {id} on this tmux server (session {})", sname());
    }
    let labelled: Vec<&PaneRow> = sp.panes.iter().filter(|r| r.label.as_deref() == Some(p)).collect();
    match labelled.as_slice() {
        [one] => return Ok((*one).clone()),
        [] => {}
        many => bail!(
            "label {:?} is on {} panes of session {}: {}",
            lossy(p),
            many.len(),
            sname(),
            many.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
    if p.iter().all(u8::is_ascii_digit) {
        if let Some(r) = std::str::from_utf8(p)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .and_then(|i| sp.panes.iter().find(|r| r.window_active && r.index == i))
        {
            return Ok(r.clone());
        }
        bail!("no pane with index {} in the current window of session {}", lossy(p), sname());
    }
    bail!("no pane with id, label or index {:?} in session {}", lossy(p), sname())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_row_and_refuses_others() {
        let r = PaneRow::parse(b"%3 1 @2 1 0 4242 1 S7 G 80 24 0 0 L%3:613b M%3:6b=76.6b32= my title").unwrap();
        assert_eq!(r.id, "%3");
        assert_eq!(r.index, 1);
        assert!(r.dead);
        assert_eq!(r.exit_status, Some(7));
        assert_eq!(r.exit_signal, None);
        assert_eq!(r.label.as_deref(), Some(&b"a;"[..]));
        assert_eq!(r.metadata, vec![(b"k".to_vec(), b"v".to_vec()), (b"k2".to_vec(), vec![])]);
        assert_eq!(r.title, b"my title");
        assert_eq!(r.meta_raw.as_deref(), Some("6b=76.6b32="));
        // Another pane's value (inherited, or copied) is not this pane's.
        let other = PaneRow::parse(b"%3 1 @2 1 0 4242 0 S G 80 24 0 0 L%33:613b M%30:6b=76 t").unwrap();
        assert_eq!((other.label, other.metadata.len(), other.meta_raw), (None, 0, None));
        let bare = PaneRow::parse(b"%3 1 @2 1 0 4242 0 S G 80 24 0 0 L613b M6b=76 t").unwrap();
        assert_eq!((bare.label, bare.metadata.len()), (None, 0));
        let alive = PaneRow::parse(b"%3 1 @2 1 0 4242 0 S G 80 24 1 1 L M ").unwrap();
        assert_eq!((alive.exit_status, alive.label, alive.in_mode, alive.input_off), (None, None, true, true));
        assert!(PaneRow::parse(b"3 1 @2").is_none());
        assert!(PaneRow::parse(b"").is_none());
    }

    #[test]
    fn metadata_round_trips() {
        let e = vec![(b"a b".to_vec(), b"#{x};\n".to_vec()), (b"=.".to_vec(), vec![0xff])];
        assert_eq!(decode_meta(encode_meta(&e).as_bytes()), e);
        assert!(decode_meta(b"").is_empty());
    }
}

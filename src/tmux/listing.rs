//! The session listings ctb asks tmux for: their formats and rows.

use super::server::TmuxError;

/// The marks of a session, as two characters `WA`: `W` is `1` when the
/// session is watched, `A` is `1` when it claims to be a watcher's anchor.
/// tmux compares, so no user value can be confused with another: watched
/// means `@ctb-watched` is exactly `1` (what ctb sets; one rule everywhere),
/// and the anchor claim means `@ctb-anchor` equals the session's own name
/// (what ctb sets on its anchors; see [`is_anchor_name`] for the rest of
/// the proof). Formats repeat it literally (`concat!` takes no consts).
///
/// The list-sessions format the watcher and `session-list` parse.
/// The name goes last: it may contain spaces.
pub const SESSION_FORMAT: &str = concat!(
    "#{session_id} ",
    "#{==:#{@ctb-watched},1}#{==:#{@ctb-anchor},#{session_name}}",
    " #{session_windows} #{session_attached} #{session_created} #{session_name}"
);

/// The format of the marks the watcher asks for sessions it sees for the
/// first time (one `display-message` each): `ID MARKS ATTACHED NAME`.
pub const WATCH_FORMAT: &str = concat!(
    "#{session_id} ",
    "#{==:#{@ctb-watched},1}#{==:#{@ctb-anchor},#{session_name}}",
    " #{session_attached} #{session_name}"
);

/// The name of a watcher's anchor: `ctb-anchor-<pid>-<n>`, both decimal.
pub fn anchor_name(pid: u32, n: u32) -> String {
    format!("ctb-anchor-{pid}-{n}")
}

/// Whether `name` has the exact shape of [`anchor_name`]. A session is
/// taken for an anchor (hidden, and removed when stale) only if its name
/// has this shape *and* its `@ctb-anchor` option equals its name: a user's
/// session with any option value is never taken for one.
pub fn is_anchor_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b"ctb-anchor-") else { return false };
    let mut parts = rest.split(|&b| b == b'-');
    let digits =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.len() <= 10 && p.iter().all(u8::is_ascii_digit));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// Parses the two-character marks field: (watched, anchor claim).
fn parse_marks(m: &[u8]) -> Option<(bool, bool)> {
    let bit = |b: u8| match b {
        b'0' => Some(false),
        b'1' => Some(true),
        _ => None,
    };
    match m {
        [w, a] => Some((bit(*w)?, bit(*a)?)),
        _ => None,
    }
}

/// One row of [`SESSION_FORMAT`] (or of [`WATCH_FORMAT`], with `windows`
/// and `created` left at 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: tmux_control::SessionId,
    pub watched: bool,
    /// A watcher's private anchor session (option `@ctb-anchor`).
    pub anchor: bool,
    pub windows: u32,
    pub attached: u32,
    pub created: u64,
    pub name: Vec<u8>,
}

impl SessionRow {
    /// Parses one output line; `None` if it is not in our format.
    pub fn parse(line: &[u8]) -> Option<SessionRow> {
        let mut it = line.splitn(6, |&b| b == b' ');
        let id = tmux_control::SessionId::from_bytes(it.next()?)?;
        let (watched, anchor) = parse_marks(it.next()?)?;
        let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
        let windows = num(it.next()?)? as u32;
        let attached = num(it.next()?)? as u32;
        let created = num(it.next()?)?;
        let name = it.next()?.to_vec();
        // Never watched if named like an anchor (an option set at server or
        // global level is inherited by every session, anchors included).
        let watched = watched && !is_anchor_name(&name);
        let anchor = anchor && is_anchor_name(&name);
        Some(SessionRow { id, watched, anchor, windows, attached, created, name })
    }
}

impl SessionRow {
    /// Parses one line of [`WATCH_FORMAT`].
    pub fn parse_watch(line: &[u8]) -> Option<SessionRow> {
        let mut it = line.splitn(4, |&b| b == b' ');
        let id = tmux_control::SessionId::from_bytes(it.next()?)?;
        let (watched, anchor) = parse_marks(it.next()?)?;
        let attached = std::str::from_utf8(it.next()?).ok()?.parse::<u32>().ok()?;
        let name = it.next()?.to_vec();
        Some(SessionRow {
            id,
            watched: watched && !is_anchor_name(&name),
            anchor: anchor && is_anchor_name(&name),
            windows: 0,
            attached,
            created: 0,
            name,
        })
    }

    /// The row as [`SESSION_FORMAT`] prints it.
    pub fn to_line(&self) -> String {
        format!(
            "{} {}{} {} {} {} {}",
            self.id,
            u8::from(self.watched),
            u8::from(self.anchor),
            self.windows,
            self.attached,
            self.created,
            String::from_utf8_lossy(&self.name)
        )
    }
}

pub(crate) fn parse_listing(out: Result<Vec<u8>, TmuxError>) -> Result<Option<Vec<SessionRow>>, TmuxError> {
    match out {
        Ok(out) => Ok(Some(out.split(|&b| b == b'\n').filter_map(SessionRow::parse).collect())),
        Err(TmuxError::NoServer(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_session_rows() {
        let r = SessionRow::parse(b"$3 10 2 0 1700000000 my name").unwrap();
        assert_eq!(r.id.0, 3);
        assert!(r.watched && !r.anchor);
        assert_eq!(r.name, b"my name");
        assert!(SessionRow::parse(b"$4 01 1 1 1700000000 ctb-anchor-1-1").unwrap().anchor);
        let w = SessionRow::parse_watch(b"$5 10 0 a name").unwrap();
        assert!(w.watched && !w.anchor && w.attached == 0 && w.name == b"a name");
        let w = SessionRow::parse_watch(b"$6 01 1 ctb-anchor-2-1").unwrap();
        assert!(!w.watched && w.anchor && w.attached == 1);
        let w = SessionRow::parse_watch(b"$7 00 0 plain").unwrap();
        assert!(!w.watched && !w.anchor && w.name == b"plain");
        assert!(SessionRow::parse(b"garbage").is_none());
        // Old or forged marks fields are not rows.
        assert!(SessionRow::parse_watch(b"$8 1A 0 x").is_none());
        assert!(SessionRow::parse_watch(b"$8  0 x").is_none());
    }

    #[test]
    fn only_an_exact_anchor_name_with_the_claim_is_an_anchor() {
        // The claim alone (a user set @ctb-anchor to the session's name).
        assert!(!SessionRow::parse_watch(b"$1 01 0 important").unwrap().anchor);
        for name in [
            "ctb-anchor-",
            "ctb-anchor-1",
            "ctb-anchor-1-",
            "ctb-anchor--1",
            "ctb-anchor-1-2-3",
            "ctb-anchor-a-1",
            "xctb-anchor-1-1",
            "ctb-anchor-1-1 ",
            "ctb-anchor-12345678901-1",
        ] {
            assert!(!is_anchor_name(name.as_bytes()), "{name}");
        }
        assert!(is_anchor_name(b"ctb-anchor-4242-17"));
        assert!(!SessionRow::parse_watch(b"$1 00 0 ctb-anchor-1-1").unwrap().anchor);
    }
}

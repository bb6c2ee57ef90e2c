//! The session listings ctb asks tmux for: their formats and rows.

use super::server::TmuxError;

/// The list-sessions format the watcher and `session-list` parse.
/// The name goes last: it may contain spaces.
pub const SESSION_FORMAT: &str = "#{session_id} #{?@ctb-watched,1,0}#{?@ctb-anchor,A,} #{session_windows} \
     #{session_attached} #{session_created} #{session_name}";

/// The lighter format the watcher queries on every change: each user
/// option lookup costs tmux about 0.7 ms per 1,000 sessions, conditionals
/// more, so the marks are printed raw (`@ctb-watched` is `1`,
/// `@ctb-anchor` is `A`): `ID MARKS ATTACHED NAME`.
pub const WATCH_FORMAT: &str = "#{session_id} #{@ctb-watched}#{@ctb-anchor} #{session_attached} #{session_name}";

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
        let flags = it.next()?;
        let watched = flags.first() == Some(&b'1');
        let anchor = flags.get(1) == Some(&b'A');
        let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
        let windows = num(it.next()?)? as u32;
        let attached = num(it.next()?)? as u32;
        let created = num(it.next()?)?;
        let name = it.next()?.to_vec();
        Some(SessionRow { id, watched, anchor, windows, attached, created, name })
    }
}

impl SessionRow {
    /// Parses one line of [`WATCH_FORMAT`].
    pub fn parse_watch(line: &[u8]) -> Option<SessionRow> {
        let mut it = line.splitn(4, |&b| b == b' ');
        let id = tmux_control::SessionId::from_bytes(it.next()?)?;
        let marks = it.next()?;
        let attached = std::str::from_utf8(it.next()?).ok()?.parse::<u32>().ok()?;
        let name = it.next()?.to_vec();
        Some(SessionRow {
            id,
            watched: marks.contains(&b'1'),
            anchor: marks.contains(&b'A'),
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
            if self.anchor { "A" } else { "" },
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
        let r = SessionRow::parse(b"$3 1 2 0 1700000000 my name").unwrap();
        assert_eq!(r.id.0, 3);
        assert!(r.watched && !r.anchor);
        assert!(SessionRow::parse(b"$4 0A 1 1 1700000000 ctb-anchor-1").unwrap().anchor);
        let w = SessionRow::parse_watch(b"$5 1 0 a name").unwrap();
        assert!(w.watched && !w.anchor && w.attached == 0 && w.name == b"a name");
        let w = SessionRow::parse_watch(b"$6 A 1 ctb-anchor-2-1").unwrap();
        assert!(!w.watched && w.anchor && w.attached == 1);
        let w = SessionRow::parse_watch(b"$7  0 plain").unwrap();
        assert!(!w.watched && !w.anchor && w.name == b"plain");
        assert_eq!(r.name, b"my name");
        assert!(SessionRow::parse(b"garbage").is_none());
    }
}

//! Which tmux server ctb talks to, and one-shot tmux commands.
//!
//! Arguments always go to tmux as separate argv elements: no shell ever sees
//! a session name.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Errors from running tmux.
#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    #[error("tmux is not installed or not on PATH")]
    NotFound,
    #[error("could not run tmux: {0}")]
    Spawn(std::io::Error),
    #[error("no tmux server is running on {0}")]
    NoServer(String),
    #[error("tmux {command}: {message}")]
    Failed { command: String, message: String },
}

/// How the user selected the tmux server (`-L`, `-S`, `-f` as tmux has them).
#[derive(Debug, Clone, Default)]
pub struct Server {
    pub label: Option<String>,
    pub path: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

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

impl Server {
    /// The global arguments that select this server.
    pub fn args(&self) -> Vec<OsString> {
        let mut a = Vec::new();
        if let Some(l) = &self.label {
            a.push("-L".into());
            a.push(l.into());
        }
        if let Some(p) = &self.path {
            a.push("-S".into());
            a.push(p.into());
        }
        if let Some(f) = &self.config {
            a.push("-f".into());
            a.push(f.into());
        }
        a
    }

    /// The socket path tmux itself would use for this selection.
    pub fn socket_path(&self) -> PathBuf {
        if let Some(p) = &self.path {
            return absolute(p);
        }
        if self.label.is_none() {
            // Without -L/-S, a client inside tmux uses $TMUX's socket.
            if let Some(t) = std::env::var_os("TMUX") {
                let t = t.to_string_lossy().into_owned();
                if let Some(p) = t.split(',').next().filter(|p| !p.is_empty()) {
                    return PathBuf::from(p);
                }
            }
        }
        let tmpdir = std::env::var_os("TMUX_TMPDIR").filter(|v| !v.is_empty()).unwrap_or_else(|| "/tmp".into());
        let uid = rustix::process::getuid().as_raw();
        Path::new(&tmpdir).join(format!("tmux-{uid}")).join(self.label.as_deref().unwrap_or("default"))
    }

    /// A `tmux` command for this server, not yet run.
    pub fn command(&self) -> Command {
        let mut c = Command::new(tmux_bin());
        c.args(self.args());
        c.stdin(Stdio::null());
        c
    }

    /// Runs tmux with `args`; its stdout on success.
    pub fn run<I, S>(&self, args: I) -> Result<Vec<u8>, TmuxError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let out = self.command().args(&args).output().map_err(spawn_error)?;
        self.check(&args, out)
    }

    /// [`Server::run`] for async callers (the watcher): never starts a
    /// server (`-N`), and blocks no thread.
    pub async fn run_async<I, S>(&self, args: I) -> Result<Vec<u8>, TmuxError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let args: Vec<OsString> = std::iter::once("-N".into()).chain(args.into_iter().map(Into::into)).collect();
        let mut cmd = tokio::process::Command::from(self.command());
        let out = cmd.args(&args).output().await.map_err(spawn_error)?;
        self.check(&args, out)
    }

    /// [`Server::list_sessions_or_none`] for async callers.
    pub async fn list_sessions_async(&self) -> Result<Option<Vec<SessionRow>>, TmuxError> {
        parse_listing(self.run_async(["list-sessions", "-F", SESSION_FORMAT]).await)
    }

    fn check(&self, args: &[OsString], out: Output) -> Result<Vec<u8>, TmuxError> {
        if out.status.success() {
            return Ok(out.stdout);
        }
        let message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if is_no_server(&message) {
            return Err(TmuxError::NoServer(self.socket_path().display().to_string()));
        }
        let command = args.iter().find(|a| *a != "-N").map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
        Err(TmuxError::Failed { command, message })
    }

    /// All sessions but watchers' anchors; empty when no server runs.
    pub fn list_sessions(&self) -> Result<Vec<SessionRow>, TmuxError> {
        let mut rows = self.list_sessions_or_none()?.unwrap_or_default();
        rows.retain(|r| !r.anchor);
        Ok(rows)
    }

    /// All sessions; `None` when no server runs.
    pub fn list_sessions_or_none(&self) -> Result<Option<Vec<SessionRow>>, TmuxError> {
        parse_listing(self.run(["list-sessions", "-F", SESSION_FORMAT]))
    }
}

fn parse_listing(out: Result<Vec<u8>, TmuxError>) -> Result<Option<Vec<SessionRow>>, TmuxError> {
    match out {
        Ok(out) => Ok(Some(out.split(|&b| b == b'\n').filter_map(SessionRow::parse).collect())),
        Err(TmuxError::NoServer(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The tmux binary: `$CTB_TMUX` if set (tests), else `tmux` from PATH.
pub fn tmux_bin() -> OsString {
    std::env::var_os("CTB_TMUX").unwrap_or_else(|| "tmux".into())
}

pub fn spawn_error(e: std::io::Error) -> TmuxError {
    if e.kind() == std::io::ErrorKind::NotFound {
        TmuxError::NotFound
    } else {
        TmuxError::Spawn(e)
    }
}

/// tmux's messages for "nothing listens on that socket".
pub fn is_no_server(message: &str) -> bool {
    message.contains("no server running")
        || message.contains("error connecting to")
        || message.contains("No such file or directory")
        || message.starts_with("no sessions")
        // The server went away while answering (it was exiting).
        || message.contains("server exited unexpectedly")
        || message.contains("lost server")
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
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

//! Which tmux server ctb talks to, and one-shot tmux commands.
//!
//! Arguments always go to tmux as separate argv elements: no shell ever sees
//! a session name.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::listing::{parse_listing, SessionRow, SESSION_FORMAT};

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
    #[error("{0}")]
    Lock(String),
    #[error("interrupted by a signal")]
    Interrupted,
    #[error("{0}")]
    BadSocket(String),
}

/// How the user selected the tmux server (`-L`, `-S`, `-f` as tmux has them).
#[derive(Debug, Clone, Default)]
pub struct Server {
    pub label: Option<String>,
    pub path: Option<PathBuf>,
    pub config: Option<PathBuf>,
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
    /// Canonical (symlinks and `.`/`..`/`//` resolved), so that every
    /// spelling of one server (`-L m`, `-S /tmp/tmux-0/./m`, a symlink to
    /// the socket) names one daemon.
    pub fn socket_path(&self) -> PathBuf {
        canonical(&self.given_socket_path())
    }

    /// The socket path as selected, before resolving symlinks.
    fn given_socket_path(&self) -> PathBuf {
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

    /// Refuses a `-S` path that is not a socket: tmux would replace a
    /// regular file with its socket (the file's data lost), and a
    /// directory is never a server.
    pub fn check_socket(&self) -> Result<(), TmuxError> {
        let Some(p) = &self.path else { return Ok(()) };
        use std::os::unix::fs::FileTypeExt;
        match std::fs::metadata(p) {
            Ok(md) if md.file_type().is_socket() => Ok(()),
            Ok(md) if md.is_dir() => {
                Err(TmuxError::BadSocket(format!("-S {} is a directory, not a tmux socket", p.display())))
            }
            Ok(_) => Err(TmuxError::BadSocket(format!(
                "-S {} is not a socket; refusing to use it (tmux would replace the file with its socket)",
                p.display()
            ))),
            Err(_) => Ok(()),
        }
    }

    /// Runs tmux with `args`; its stdout on success.
    pub fn run<I, S>(&self, args: I) -> Result<Vec<u8>, TmuxError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.check_socket()?;
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        tracing::debug!(?args, "tmux");
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
        self.check_socket()?;
        let args: Vec<OsString> = std::iter::once("-N".into()).chain(args.into_iter().map(Into::into)).collect();
        tracing::debug!(?args, "tmux");
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

/// `p` made absolute against the current directory (not resolved).
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// `p` with symlinks resolved: the whole path if it exists, else its
/// directory (a socket not created yet), else `p` itself.
fn canonical(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir).map(|d| d.join(name)).unwrap_or_else(|_| p.to_owned()),
        _ => p.to_owned(),
    }
}

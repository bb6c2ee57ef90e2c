//! Sources of control-mode items: a live `tmux -C` client, or a recording.
//!
//! The watcher talks to a [`ControlSource`]; the live one runs
//! `tmux -C attach-session -t $N -f no-output,ignore-size` with its stdin
//! kept open and its stdout always drained, and can save the raw stream it
//! read (and the commands it sent) so a user's bug becomes a fixture.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tmux_control::{Item, Parser, SessionId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::tmux::{spawn_error, tmux_bin, Server, SessionRow, TmuxError};

/// Where the watcher's control-mode items come from.
#[async_trait]
pub trait ControlSource: Send {
    /// Starts a control client attached to `target`.
    async fn attach(&mut self, target: SessionId) -> Result<(), TmuxError>;
    /// The next item; `None` at the end of the client's output. Must be
    /// cancel-safe (it is raced against requests and signals).
    async fn next_item(&mut self) -> Option<Item>;
    /// Writes one command line to the client's stdin.
    async fn send(&mut self, line: &str) -> io::Result<()>;
    /// Lists sessions out of band (no client attached); `None` if no server.
    async fn list_offline(&mut self) -> Result<Option<Vec<SessionRow>>, TmuxError>;
    /// Detaches: closes stdin and reaps the client.
    async fn detach(&mut self);
}

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
}

/// A live `tmux -C` control client (re-created on each attach).
pub struct TmuxControl {
    server: Server,
    client: Option<Client>,
    parser: Parser,
    buf: Vec<u8>,
    record: Option<Recorder>,
}

struct Recorder {
    raw: tokio::fs::File,
    commands: tokio::fs::File,
}

impl TmuxControl {
    pub fn new(server: Server) -> Self {
        TmuxControl { server, client: None, parser: Parser::new(), buf: vec![0; 64 * 1024], record: None }
    }

    /// Saves the raw stream to `path` and the commands sent to
    /// `path.commands`.
    pub async fn record_to(&mut self, path: &Path) -> io::Result<()> {
        let mut cmd_path: PathBuf = path.into();
        cmd_path.as_mut_os_string().push(".commands");
        self.record = Some(Recorder {
            raw: tokio::fs::File::create(path).await?,
            commands: tokio::fs::File::create(cmd_path).await?,
        });
        Ok(())
    }

    /// The pid of the running `tmux -C` child, if any.
    pub fn client_pid(&self) -> Option<u32> {
        self.client.as_ref().and_then(|c| c.child.id())
    }
}

#[async_trait]
impl ControlSource for TmuxControl {
    async fn attach(&mut self, target: SessionId) -> Result<(), TmuxError> {
        self.detach().await;
        let mut cmd = Command::new(tmux_bin());
        cmd.args(self.server.args())
            .arg("-C")
            .args(["attach-session", "-f", "no-output,ignore-size", "-t"])
            .arg(target.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(spawn_error)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| TmuxError::Spawn(io::Error::other("no stdout")))?;
        self.parser = Parser::new();
        self.client = Some(Client { child, stdin, stdout });
        tracing::debug!(%target, "control client attaching");
        Ok(())
    }

    async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.parser.next_item() {
                return Some(item);
            }
            let client = self.client.as_mut()?;
            match client.stdout.read(&mut self.buf).await {
                Ok(0) | Err(_) => {
                    self.parser.finish();
                    let last = self.parser.next_item();
                    if last.is_none() {
                        // Reap now: the client has closed its output.
                        self.detach().await;
                    }
                    return last;
                }
                Ok(n) => {
                    if let Some(r) = &mut self.record {
                        let _ = r.raw.write_all(&self.buf[..n]).await;
                    }
                    self.parser.feed(&self.buf[..n]);
                }
            }
        }
    }

    async fn send(&mut self, line: &str) -> io::Result<()> {
        if let Some(r) = &mut self.record {
            let _ = r.commands.write_all(format!("{line}\n").as_bytes()).await;
        }
        let stdin = self
            .client
            .as_mut()
            .and_then(|c| c.stdin.as_mut())
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "no control client"))?;
        stdin.write_all(format!("{line}\n").as_bytes()).await
    }

    async fn list_offline(&mut self) -> Result<Option<Vec<SessionRow>>, TmuxError> {
        let server = self.server.clone();
        let rows = tokio::task::spawn_blocking(move || server.list_sessions_or_none())
            .await
            .map_err(|e| TmuxError::Spawn(io::Error::other(e)))??;
        Ok(rows)
    }

    async fn detach(&mut self) {
        if let Some(mut c) = self.client.take() {
            // Closing stdin makes tmux print %exit and leave.
            drop(c.stdin.take());
            let _ = c.child.wait().await;
        }
        if let Some(r) = &mut self.record {
            let _ = r.raw.flush().await;
            let _ = r.commands.flush().await;
        }
    }
}

/// A recorded stream replayed as if it came from tmux: the first attach
/// plays the recording, commands sent are kept for inspection, and an
/// out-of-band listing answers what the test scripted.
pub struct Recording {
    parser: Parser,
    attached: bool,
    pending: Option<Vec<u8>>,
    /// Commands the watcher sent, in order.
    pub sent: Vec<String>,
    /// Answers to `list_offline`, in order; when empty: no server.
    pub listings: std::collections::VecDeque<Option<Vec<SessionRow>>>,
}

impl Recording {
    pub fn new(raw: Vec<u8>) -> Self {
        Recording {
            parser: Parser::new(),
            attached: false,
            pending: Some(raw),
            sent: Vec::new(),
            listings: Default::default(),
        }
    }
}

#[async_trait]
impl ControlSource for Recording {
    async fn attach(&mut self, _target: SessionId) -> Result<(), TmuxError> {
        self.attached = true;
        if let Some(raw) = self.pending.take() {
            self.parser.feed(&raw);
        }
        self.parser.finish();
        Ok(())
    }

    async fn next_item(&mut self) -> Option<Item> {
        if !self.attached {
            return std::future::pending().await;
        }
        self.parser.next_item()
    }

    async fn send(&mut self, line: &str) -> io::Result<()> {
        self.sent.push(line.to_owned());
        Ok(())
    }

    async fn list_offline(&mut self) -> Result<Option<Vec<SessionRow>>, TmuxError> {
        Ok(self.listings.pop_front().flatten())
    }

    async fn detach(&mut self) {
        self.attached = false;
    }
}

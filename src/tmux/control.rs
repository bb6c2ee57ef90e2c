//! Sources of control-mode items: a live `tmux -C` client, or a recording.
//!
//! The watcher talks to a [`ControlSource`]; the live one runs a `tmux -C`
//! client that creates its own private anchor session (`ctb-anchor-<pid>-<n>`,
//! option `@ctb-anchor`, running `cat -` without a shell) and sets the
//! client flags `no-output,ignore-size`; its stdin is kept open and its
//! stdout always drained. The client is killed by the kernel if the thread
//! that started it dies. On detach the client kills that anchor (and only
//! that) as its last command, then leaves.
//! It can save the raw stream it read (and the commands it sent) so a
//! user's bug becomes a fixture.
//!
//! Why an anchor: tmux 3.3a dereferences a control client's session for
//! every window linked or unlinked anywhere, and crashes if the client has
//! none, which is the case between the destruction of its attached session
//! and its exit. Attached to a user's session, the daemon would crash the
//! server whenever a session was killed right after the attached one.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tmux_control::{Item, Parser, SessionId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::listing::SessionRow;
use super::server::{spawn_error, tmux_bin, Server, TmuxError};
use crate::runtime::AttachGate;

/// Where the watcher's control-mode items come from.
#[async_trait]
pub trait ControlSource: Send {
    /// Starts a control client attached to a fresh anchor session.
    async fn attach(&mut self) -> Result<(), TmuxError>;
    /// The next item; `None` at the end of the client's output. Must be
    /// cancel-safe (it is raced against requests and signals).
    async fn next_item(&mut self) -> Option<Item>;
    /// Writes one command line to the client's stdin.
    async fn send(&mut self, line: &str) -> io::Result<()>;
    /// Lists sessions out of band (no client attached); `None` if no server.
    async fn list_offline(&mut self) -> Result<Option<Vec<SessionRow>>, TmuxError>;
    /// Detaches: closes stdin, reaps the client, removes the anchor.
    async fn detach(&mut self);
    /// Kills a session ctb owns (a dead watcher's stale anchor).
    async fn kill_session(&mut self, id: SessionId);
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
    /// The anchor session our client created (matched exactly by name).
    anchor: Option<String>,
    /// The attach gate, held exclusively from the attach to the client's
    /// first reply (see `runtime::AttachGate`).
    attach_guard: Option<AttachGate>,
    anchors_made: u32,
    /// The anchor's id, once its client printed it.
    anchor_id: Option<SessionId>,
    /// A user option set on each anchor when it is created.
    anchor_extra: Option<(String, String)>,
    parser: Parser,
    buf: Vec<u8>,
    record: Option<Recorder>,
}

struct Recorder {
    raw: tokio::fs::File,
    commands: tokio::fs::File,
    listings: tokio::fs::File,
}

/// `path` with `suffix` appended (`x.raw` -> `x.raw.commands`).
pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut p: PathBuf = path.into();
    p.as_mut_os_string().push(suffix);
    p
}

impl TmuxControl {
    pub fn new(server: Server) -> Self {
        TmuxControl {
            server,
            client: None,
            anchor: None,
            attach_guard: None,
            anchors_made: 0,
            anchor_id: None,
            anchor_extra: None,
            parser: Parser::new(),
            buf: vec![0; 64 * 1024],
            record: None,
        }
    }

    /// Sets the user option `name` to `value` on every anchor, in the
    /// command that creates it (the value is not format-expanded).
    pub fn anchor_option(&mut self, name: &str, value: &str) {
        self.anchor_extra = Some((name.to_owned(), value.to_owned()));
    }

    /// Saves the raw stream to `path`, the commands sent to
    /// `path.commands` and the out-of-band listings to `path.listings`
    /// (one line each: the raw `list-sessions` output lines as a JSON array
    /// of strings, or `null` when no server answered).
    pub async fn record_to(&mut self, path: &Path) -> io::Result<()> {
        self.record = Some(Recorder {
            raw: tokio::fs::File::create(path).await?,
            commands: tokio::fs::File::create(sidecar(path, ".commands")).await?,
            listings: tokio::fs::File::create(sidecar(path, ".listings")).await?,
        });
        Ok(())
    }
}

#[async_trait]
impl ControlSource for TmuxControl {
    async fn attach(&mut self) -> Result<(), TmuxError> {
        self.detach().await;
        self.anchors_made += 1;
        let name = super::listing::anchor_name(std::process::id(), self.anchors_made);
        // No ctb command creates or kills a window while we attach (tmux
        // 3.3a crashes); released when the client's first reply arrives.
        // A signal while waiting ends the wait (the watcher then stops).
        self.attach_guard = Some(wait_or_signal(AttachGate::attach_async(&self.server.socket_path())).await?);
        // One command list, run by the control client itself: it creates
        // the anchor and is attached to it at once, and the anchor is marked
        // before any other client can see it. `-N`: never start a server
        // just for an anchor. (Letting tmux destroy the anchor when our
        // client leaves, with destroy-unattached, crashes tmux 3.3a; so the
        // anchor is killed explicitly once the client is gone.)
        let mut cmd = Command::new(tmux_bin());
        cmd.args(self.server.args())
            .args(["-N", "-C", "new-session", "-s", &name, "-x", "80", "-y", "24"])
            // The anchor-hold finds our runtime directory and our tmux
            // whatever the server's environment (values are not expanded).
            .args(["-e".into(), env_arg("XDG_RUNTIME_DIR", std::env::var_os("XDG_RUNTIME_DIR").unwrap_or_default())])
            .args(["-e".into(), env_arg("CTB_TMUX", resolved_tmux())])
            // The anchor's process: `ctb daemon anchor-hold NAME`, which
            // removes the anchor once our client is gone (anchor.rs). Several
            // arguments: tmux execs it directly, never through the server's
            // default-shell (`/bin/false -c cat` died at once, and so did
            // every anchor after it).
            .args(anchor_command(&self.server, &name))
            // A hook may have renamed it (after-new-session): take its
            // name back, if the current session is still ours (a hook may
            // also have killed it: then another session is current).
            .args([
                ";",
                "if-shell",
                "-F",
                &format!("#{{m:*{name}*,#{{session_name}}}}"),
                &format!("rename-session -- {name}"),
            ])
            .args([";", "set-option", "@ctb-anchor", &name])
            .args(self.anchor_extra.iter().flat_map(|(k, v)| {
                [";".into(), "set-option".into(), k.into(), super::escape::tmux_arg(std::ffi::OsStr::new(v))]
                    .into_iter()
                    .collect::<Vec<std::ffi::OsString>>()
            }))
            .args([";", "set-option", "destroy-unattached", "off"])
            // Our client must leave when its anchor dies, never be moved to
            // a user's session (whatever the user's global setting).
            .args([";", "set-option", "detach-on-destroy", "on"])
            // The anchor's id: detach kills it by id (a rename cannot
            // save it, and no other session can be hit).
            .args([";", "display-message", "-p", "ctb-anchor-id #{session_id}"])
            .args([";", "refresh-client", "-f", "no-output,ignore-size"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // The client must never outlive us: after a `kill-server`, a client
        // whose watcher was SIGKILLed kept itself and the tmux server alive
        // for good. The kernel sends it SIGKILL when the *thread* that forked
        // it ends: this one, the thread of the watcher's current-thread
        // runtime (`block_on` on the main thread, in the daemon and in `ctb
        // watch`), which lives as long as the process.
        let parent = rustix::process::getpid();
        // SAFETY: between fork and exec only async-signal-safe syscalls
        // (prctl, getppid), no allocation.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
                // We died before the prctl: the signal will never come.
                if rustix::process::getppid() != Some(parent) {
                    return Err(rustix::io::Errno::SRCH.into());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(spawn_error)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| TmuxError::Spawn(io::Error::other("no stdout")))?;
        self.parser = Parser::new();
        self.client = Some(Client { child, stdin, stdout });
        tracing::info!(anchor = %name, "control client attaching");
        self.anchor = Some(name);
        Ok(())
    }

    async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.parser.next_item() {
                if let Item::Block(b) = &item {
                    if b.flags == 0 {
                        self.attach_guard = None;
                        if let Some(id) = b.lines.iter().find_map(|l| l.strip_prefix(b"ctb-anchor-id ")) {
                            self.anchor_id = SessionId::from_bytes(id);
                        }
                    }
                }
                return Some(item);
            }
            let client = self.client.as_mut()?;
            match client.stdout.read(&mut self.buf).await {
                Ok(0) | Err(_) => {
                    self.attach_guard = None;
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
        let out = self.server.list_sessions_async().await;
        if let (Some(r), Ok(rows)) = (&mut self.record, &out) {
            let line = match rows {
                None => serde_json::Value::Null,
                Some(rows) => rows.iter().map(|r| serde_json::Value::from(r.to_line())).collect(),
            };
            let _ = r.listings.write_all(format!("{line}\n").as_bytes()).await;
            let _ = r.listings.flush().await;
        }
        out
    }

    async fn detach(&mut self) {
        // By id when known (exact, immune to renames), else by exact name.
        let anchor = self.anchor.take().map(|name| match self.anchor_id.take() {
            Some(id) => id.to_string(),
            None => format!("={name}"),
        });
        if let Some(mut c) = self.client.take() {
            // Our client removes its own anchor as its last command: no
            // extra tmux process, and the client is never left without a
            // session while it could still be notified (tmux marks it
            // exiting as the session dies). Then closing stdin makes it
            // print %exit and leave.
            let mut removed = false;
            // Killing the anchor unlinks a window: not while another ctb
            // client attaches. Without the gate (stuck holder), kill anyway:
            // leaving the anchor would keep the server alive.
            let gate = self.mutation_gate().await;
            if let (Some(stdin), Some(name)) = (c.stdin.as_mut(), anchor.as_deref()) {
                removed = stdin.write_all(format!("kill-session -t '{name}'\n").as_bytes()).await.is_ok();
            }
            drop(c.stdin.take());
            // A deadline, not a poll: a client that does not leave is killed.
            if tokio::time::timeout(DETACH_DEADLINE, c.child.wait()).await.is_err() {
                tracing::warn!("control client did not exit within {:?}; killing it", DETACH_DEADLINE);
                let _ = c.child.kill().await;
            }
            drop(gate);
            // The client is gone: so is any attach it was making.
            self.attach_guard = None;
            if removed {
                return self.flush_record().await;
            }
        }
        if let Some(name) = anchor {
            // The client was gone already: the anchor may be left over.
            let _gate = self.mutation_gate().await;
            let _ = self.server.run_async(["kill-session", "-t", &name]).await;
        }
        self.flush_record().await;
    }

    async fn kill_session(&mut self, id: SessionId) {
        if let Some(r) = &mut self.record {
            let _ = r.commands.write_all(format!("# kill-session -t {id}\n").as_bytes()).await;
        }
        let _gate = self.mutation_gate().await;
        let _ = self.server.run_async(["kill-session", "-t", &id.to_string()]).await;
    }
}

/// `NAME=VALUE` for `new-session -e`, safe for tmux's argv parser.
fn env_arg(name: &str, value: impl Into<std::ffi::OsString>) -> std::ffi::OsString {
    let mut a = std::ffi::OsString::from(format!("{name}="));
    a.push(value.into());
    super::escape::tmux_arg(&a)
}

/// The tmux binary as an absolute path (searched in PATH), so that the
/// anchor's process runs the same tmux as we do.
fn resolved_tmux() -> std::ffi::OsString {
    use std::os::unix::fs::PermissionsExt;
    let bin = tmux_bin();
    if Path::new(&bin).is_absolute() || Path::new(&bin).components().count() > 1 {
        return super::server::absolute(Path::new(&bin)).into_os_string();
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(&bin))
                .find(|c| std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        })
        .map(|p| p.into_os_string())
        .unwrap_or(bin)
}

/// The anchor's command line (not format-expanded by tmux; each element
/// guarded against tmux's `;` splitting).
fn anchor_command(server: &Server, name: &str) -> Vec<std::ffi::OsString> {
    let exe = std::env::current_exe().map(|p| p.into_os_string()).unwrap_or_else(|_| "ctb".into());
    let mut v = vec![exe];
    v.extend(server.args());
    v.extend(["daemon", "anchor-hold", name].map(std::ffi::OsString::from));
    v.iter().map(|a| super::escape::tmux_arg(a)).collect()
}

/// How long a detaching client may take to leave before it is killed.
const DETACH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Awaits `f`, unless SIGINT, SIGTERM or SIGHUP arrives first.
async fn wait_or_signal<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, TmuxError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term, mut hup) = (
        signal(SignalKind::interrupt()).map_err(TmuxError::Spawn)?,
        signal(SignalKind::terminate()).map_err(TmuxError::Spawn)?,
        signal(SignalKind::hangup()).map_err(TmuxError::Spawn)?,
    );
    tokio::select! {
        r = f => r.map_err(|e| TmuxError::Lock(e.to_string())),
        _ = int.recv() => Err(TmuxError::Interrupted),
        _ = term.recv() => Err(TmuxError::Interrupted),
        _ = hup.recv() => Err(TmuxError::Interrupted),
    }
}

impl TmuxControl {
    /// The gate for one of our own mutations: the exclusive hold of our
    /// attach if we still have it (it excludes every other ctb attach and
    /// mutation already; asking for the shared one on top would wait for
    /// ourselves), else the shared one.
    async fn mutation_gate(&mut self) -> Option<AttachGate> {
        if self.attach_guard.is_some() {
            return None;
        }
        AttachGate::mutation_async(&self.server.socket_path()).await.ok()
    }

    async fn flush_record(&mut self) {
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

    /// Loads a recording made by `ctb watch --record FILE`.
    pub fn load(path: &Path) -> io::Result<Self> {
        let mut rec = Recording::new(std::fs::read(path)?);
        let listings = std::fs::read_to_string(sidecar(path, ".listings")).unwrap_or_default();
        for line in listings.lines() {
            let v: serde_json::Value = serde_json::from_str(line).map_err(io::Error::other)?;
            rec.listings.push_back(v.as_array().map(|rows| {
                rows.iter().filter_map(|r| r.as_str().and_then(|l| SessionRow::parse(l.as_bytes()))).collect()
            }));
        }
        Ok(rec)
    }
}

#[async_trait]
impl ControlSource for Recording {
    async fn attach(&mut self) -> Result<(), TmuxError> {
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

    async fn kill_session(&mut self, id: SessionId) {
        self.sent.push(format!("# kill-session -t {id}"));
    }
}

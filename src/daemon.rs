//! The lifecycle daemon: one per tmux server, gone with its last session.
//!
//! `ctb daemon run` (spawned by `session-create` and `daemon start`, never
//! by hand) takes the server's kernel lock, binds its request socket and
//! runs the watcher in [`Mode::Marked`] until the last watched session
//! closes. Requests are one JSON line each way: `watch`, `status`, `stop`.
//!
//! Its spawner keeps one end of a socket pair the daemon inherits (the
//! *hold*): it asks `status` on it (answered once the daemon's control
//! client is attached: readiness), then creates its session and asks
//! `watch` on it. While the hold is open the daemon does not stop for lack
//! of sessions; when it closes (done, or the spawner died) it re-decides.
//! So the session is created only after the daemon attached (a window
//! created while a control client attaches crashes tmux 3.3a).

use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tmux_control::SessionId;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use crate::control::TmuxControl;
use crate::item_json::lossy;
use crate::lock::{find_owner, DaemonLock};
use crate::runtime::{runtime_dir, ServerFiles};
use crate::timefmt::now_rfc3339;
use crate::tmux::Server;
use crate::watch::{self, EndReason, Input, Mode, Request, Watcher};

/// The environment variable naming the inherited hold socket's fd.
const HOLD_FD_ENV: &str = "CTB_HOLD_FD";
/// How long a spawner waits for the daemon to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long one request may take to be answered.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the daemon in this process (`ctb daemon run`).
pub fn run_daemon(server: Server) -> Result<std::convert::Infallible> {
    let hold = take_hold_fd();
    close_inherited_fds(hold.as_ref().map(std::os::fd::AsRawFd::as_raw_fd));
    let dir = runtime_dir()?;
    let files = ServerFiles::new(&dir, &server);
    let mut lock = DaemonLock::acquire(&files.lock).context("taking the daemon lock")?;
    let started = now_rfc3339();
    lock.write_owner(std::process::id(), &started)?;
    tracing::info!(pid = std::process::id(), socket = %server.socket_path().display(), "daemon starting");
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let result = rt.block_on(daemon_main(server.clone(), &files, started, hold));
    // Stop answering before the lock is released: a request that races
    // with shutdown sees the socket gone (or closed) and starts a new daemon.
    let _ = std::fs::remove_file(&files.sock);
    lock.release();
    match &result {
        Ok(reason) => tracing::info!(reason = reason.as_str(), "daemon exiting"),
        Err(e) => tracing::error!(error = %format!("{e:#}"), "daemon failed"),
    }
    // Everything is released: skip tearing down the runtime.
    std::process::exit(i32::from(result.is_err()))
}

/// Closes every fd the spawner left open but stdio and the hold: a daemon
/// outlives its spawner and must not keep the spawner's pipes alive.
fn close_inherited_fds(keep: Option<i32>) {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => return,
    };
    for fd in fds.into_iter().filter(|&fd| fd > 2 && Some(fd) != keep) {
        let borrowed = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
        // The directory handle used above is closed already: skip fds
        // that are no longer open.
        if rustix::io::fcntl_getfd(borrowed).is_ok() {
            // SAFETY: nothing in this process owns these inherited fds.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}

fn take_hold_fd() -> Option<OwnedFd> {
    let fd: i32 = std::env::var(HOLD_FD_ENV).ok()?.parse().ok()?;
    std::env::remove_var(HOLD_FD_ENV);
    // Only trust an fd that is open: fcntl fails on a closed one.
    let borrowed = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(borrowed).ok()?;
    // SAFETY: the spawner passed this open fd to us for our sole use.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

async fn daemon_main(server: Server, files: &ServerFiles, started: String, hold: Option<OwnedFd>) -> Result<EndReason> {
    // We hold the lock: any socket file left is a dead daemon's.
    let _ = std::fs::remove_file(&files.sock);
    let listener = UnixListener::bind(&files.sock).with_context(|| format!("binding {}", files.sock.display()))?;
    let (tx, rx) = mpsc::channel::<Request>(64);
    let mut watcher = Watcher::new(Mode::Marked);
    if let Some(fd) = hold {
        let std_stream = std::os::unix::net::UnixStream::from(fd);
        std_stream.set_nonblocking(true)?;
        watcher.handle(Input::Hold);
        tokio::spawn(serve_connection(tokio::net::UnixStream::from_std(std_stream)?, tx.clone(), true));
    }
    let accept = tokio::spawn(accept_loop(listener, tx));
    let mut source = TmuxControl::new(server.clone());
    let pid = std::process::id();
    let socket = server.socket_path().display().to_string();
    let status = move |w: &Watcher| {
        json!({
            "running": true,
            "pid": pid,
            "socket": socket,
            "watched": w.watched().map(|(_, n)| lossy(n)).collect::<Vec<_>>(),
            "watched_ids": w.watched().map(|(id, _)| id.to_string()).collect::<Vec<_>>(),
            "started": started,
            "events": w.notifications(),
        })
    };
    let result = watch::run(&mut source, &mut watcher, Some(rx), status, |_| {}).await;
    accept.abort();
    result
}

async fn accept_loop(listener: UnixListener, tx: mpsc::Sender<Request>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve_connection(stream, tx.clone(), false));
    }
}

/// Answers request lines until the peer closes; the end of the hold
/// connection releases the hold.
async fn serve_connection(stream: tokio::net::UnixStream, tx: mpsc::Sender<Request>, hold: bool) {
    let (r, mut w) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = serve(&line, &tx).await;
        if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
            break;
        }
    }
    if hold {
        let _ = tx.send(Request::Release).await;
    }
}

async fn serve(line: &str, tx: &mpsc::Sender<Request>) -> Value {
    let req: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"ok": false, "error": format!("bad request: {e}")}),
    };
    match req["op"].as_str() {
        Some("watch") => {
            let Some(id) = req["session_id"].as_str().and_then(|s| s.parse::<SessionId>().ok()) else {
                return json!({"ok": false, "error": "watch needs a session_id like $3"});
            };
            let (otx, orx) = oneshot::channel();
            if tx.send(Request::Watch(id, otx)).await.is_err() {
                return json!({"ok": false, "error": "the daemon is stopping"});
            }
            match orx.await {
                Ok(Ok(())) => json!({"ok": true, "pid": std::process::id()}),
                Ok(Err(e)) => json!({"ok": false, "error": e}),
                Err(_) => json!({"ok": false, "error": "the daemon is stopping"}),
            }
        }
        Some("status") => {
            let (otx, orx) = oneshot::channel();
            let _ = tx.send(Request::Status(otx)).await;
            match orx.await {
                Ok(v) => v,
                Err(_) => json!({"ok": false, "error": "the daemon is stopping"}),
            }
        }
        Some("stop") => {
            let (otx, orx) = oneshot::channel();
            let _ = tx.send(Request::Stop(otx)).await;
            let _ = orx.await;
            json!({"ok": true, "stopping": true})
        }
        _ => json!({"ok": false, "error": "unknown op"}),
    }
}

/// Sends one request to the daemon; `None` if no daemon answers (no
/// socket, refused, or closed without a reply).
pub fn request(files: &ServerFiles, req: &Value) -> Option<Value> {
    request_within(files, req, REQUEST_DEADLINE)
}

/// [`request`] with its own answer deadline.
pub fn request_within(files: &ServerFiles, req: &Value, deadline: Duration) -> Option<Value> {
    let mut s = UnixStream::connect(&files.sock).ok()?;
    s.set_read_timeout(Some(deadline)).ok()?;
    s.set_write_timeout(Some(deadline)).ok()?;
    exchange(&mut s, req).ok().flatten()
}

/// One request line out, one reply line back (the socket protocol, on a
/// fresh connection or the hold). `Ok(None)`: the daemon closed the
/// connection; `Err`: I/O error or the read deadline passed.
fn exchange(stream: &mut UnixStream, req: &Value) -> std::io::Result<Option<Value>> {
    stream.write_all(format!("{req}\n").as_bytes())?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    // Byte-wise, so that nothing past the reply is consumed: the hold
    // stream stays usable for the next request.
    while stream.read(&mut byte)? == 1 {
        if byte[0] == b'\n' {
            return Ok(serde_json::from_slice(&line).ok());
        }
        line.push(byte[0]);
    }
    Ok(None)
}

/// Asks the running daemon to watch `session`: its pid, or `None` if no
/// daemon answered (or it is stopping). Call it while holding [`SpawnLock`].
pub fn watch_by_running(lock: &SpawnLock, session: SessionId) -> Result<Option<u32>> {
    let req = json!({"op": "watch", "session_id": session.to_string()});
    match request(&lock.files, &req) {
        None => Ok(None),
        Some(reply) => watch_reply(&reply, session),
    }
}

fn watch_reply(reply: &Value, session: SessionId) -> Result<Option<u32>> {
    if reply["ok"] == true {
        return Ok(Some(reply["pid"].as_u64().unwrap_or_default() as u32));
    }
    let err = reply["error"].as_str().unwrap_or("unknown error");
    if err.contains("stopping") {
        return Ok(None);
    }
    bail!("the daemon refused to watch {session}: {err}")
}

/// Whether a daemon's socket accepts connections (under [`SpawnLock`], a
/// daemon that accepts is attached: spawners release the lock only then).
pub fn daemon_listening(lock: &SpawnLock) -> bool {
    UnixStream::connect(&lock.files.sock).is_ok()
}

/// Serializes the `session-create`s and `daemon start`s of one server, on
/// the daemon's log file (which outlives daemons anyway): exactly one of
/// many concurrent callers starts the daemon, and none creates a session
/// while the daemon's control client is attaching (a window linked at that
/// moment crashes tmux 3.3a; see docs/tmux-3.3a-crash.md).
pub struct SpawnLock {
    files: ServerFiles,
    _log: std::fs::File,
}

impl SpawnLock {
    pub fn take(server: &Server) -> Result<SpawnLock> {
        let dir = runtime_dir()?;
        let files = ServerFiles::new(&dir, server);
        let log = open_log(&files.log)?;
        rustix::fs::flock(&log, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(SpawnLock { files, _log: log })
    }
}

/// A daemon this process spawned, held open until dropped.
pub struct Held {
    stream: UnixStream,
}

impl Held {
    /// Asks the held daemon to watch `session`.
    pub fn watch(&mut self, session: SessionId) -> Result<u32> {
        let reply = exchange(&mut self.stream, &json!({"op": "watch", "session_id": session.to_string()}))
            .ok()
            .flatten()
            .ok_or_else(|| anyhow!("the daemon exited before watching {session}"))?;
        watch_reply(&reply, session)?.ok_or_else(|| anyhow!("the daemon stopped before watching {session}"))
    }
}

fn open_log(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Starts `ctb daemon run` detached (new session, stdio to the log), holds
/// it open, and waits until it is attached. Call it under [`SpawnLock`].
pub fn spawn_daemon(server: &Server, lock: &SpawnLock) -> Result<Held> {
    let files = &lock.files;
    let exe = std::env::current_exe().context("finding the ctb binary")?;
    let (ours, theirs) = UnixStream::pair().context("creating the hold socket")?;
    // A fresh open file description: flock belongs to the description, and
    // the spawner's lock on the log must not live on in the daemon's stdio.
    let stdio = open_log(&files.log)?;
    let theirs_fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
    let mut cmd = Command::new(exe);
    cmd.args(server.args())
        .args(["daemon", "run"])
        .env(HOLD_FD_ENV, theirs_fd.to_string())
        .stdin(Stdio::null())
        .stdout(stdio.try_clone()?)
        .stderr(stdio);
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            let fd = rustix::fd::BorrowedFd::borrow_raw(theirs_fd);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the daemon")?;
    drop(theirs);
    ours.set_read_timeout(Some(READY_DEADLINE))?;
    let mut held = Held { stream: ours };
    // Answered once the daemon's control client is attached.
    let ready = exchange(&mut held.stream, &json!({"op": "status"}));
    let _ = held.stream.set_read_timeout(Some(REQUEST_DEADLINE));
    match ready {
        Ok(Some(v)) if v["running"] == true => Ok(held),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            // Ours and stuck: stop it rather than leave it behind.
            let _ = child.kill();
            let _ = child.wait();
            bail!("the daemon did not become ready within {}s; see {}", READY_DEADLINE.as_secs(), files.log.display())
        }
        _ => {
            // It exited before becoming ready: reap it, report its log.
            let _ = child.wait();
            bail!("the daemon exited while starting; see {}", files.log.display())
        }
    }
}

/// Waits until `fd` is readable or `deadline` passes (a deadline, not a
/// poll loop: one blocking `poll(2)` per wake-up).
pub fn wait_readable(fd: impl AsFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ts = rustix::time::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

/// `ctb daemon status` fields.
pub fn status(server: &Server) -> Result<Value> {
    let dir = runtime_dir()?;
    let files = ServerFiles::new(&dir, server);
    if let Some(v) = request(&files, &json!({"op": "status"})) {
        if v["running"] == true {
            return Ok(v);
        }
    }
    let owner = find_owner(&files.lock)?;
    Ok(json!({
        "running": owner.is_some(),
        "pid": owner.as_ref().map(|o| o.pid),
        "socket": server.socket_path().display().to_string(),
        "watched": [],
        "started": owner.as_ref().map(|o| o.started.clone()),
        "events": Value::Null,
        "responding": false,
    }))
}

/// How `daemon stop` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    NotRunning,
    Graceful,
    Terminated,
    Killed,
}

impl Stopped {
    pub fn as_str(self) -> &'static str {
        match self {
            Stopped::NotRunning => "not-running",
            Stopped::Graceful => "graceful",
            Stopped::Terminated => "sigterm",
            Stopped::Killed => "sigkill",
        }
    }
}

/// Stops this server's daemon: ask over the socket, then SIGTERM, then
/// SIGKILL, each with a deadline, each signal sent through a pidfd of a
/// process proven to hold the lock. Sessions are left alone.
pub fn stop(server: &Server) -> Result<(Stopped, Option<u32>)> {
    let dir = runtime_dir()?;
    let files = ServerFiles::new(&dir, server);
    let Some(owner) = find_owner(&files.lock)? else {
        cleanup_stale(&files);
        return Ok((Stopped::NotRunning, None));
    };
    let step = Duration::from_secs(3);
    let _ = request_within(&files, &json!({"op": "stop"}), step);
    if wait_readable(&owner.pidfd, Instant::now() + step) {
        return Ok((Stopped::Graceful, Some(owner.pid)));
    }
    use rustix::process::{pidfd_send_signal, Signal};
    pidfd_send_signal(&owner.pidfd, Signal::TERM)?;
    if wait_readable(&owner.pidfd, Instant::now() + step) {
        return Ok((Stopped::Terminated, Some(owner.pid)));
    }
    pidfd_send_signal(&owner.pidfd, Signal::KILL)?;
    wait_readable(&owner.pidfd, Instant::now() + step);
    cleanup_stale(&files);
    Ok((Stopped::Killed, Some(owner.pid)))
}

/// Removes a dead daemon's files (only while holding its lock).
fn cleanup_stale(files: &ServerFiles) {
    if let Ok(Some(lock)) = DaemonLock::try_acquire(&files.lock) {
        let _ = std::fs::remove_file(&files.sock);
        lock.release();
    }
}

/// `ctb daemon wait`: until this server's daemon has exited (or the
/// deadline passes). `Ok(true)` if no daemon runs afterwards.
pub fn wait_exit(server: &Server, timeout: Duration) -> Result<bool> {
    let dir = runtime_dir()?;
    let files = ServerFiles::new(&dir, server);
    match find_owner(&files.lock)? {
        None => Ok(true),
        Some(owner) => Ok(wait_readable(&owner.pidfd, Instant::now() + timeout)),
    }
}

/// `ctb daemon start`: make sure a daemon runs for this server.
pub fn start(server: &Server) -> Result<Value> {
    let lock = SpawnLock::take(server)?;
    if !daemon_listening(&lock) {
        // Released at once: with nothing marked watched it stops again.
        drop(spawn_daemon(server, &lock)?);
    }
    drop(lock);
    status(server)
}

/// The last `n` lines of this server's daemon log.
pub fn logs(server: &Server, n: usize) -> Result<Vec<String>> {
    let dir = runtime_dir()?;
    let files = ServerFiles::new(&dir, server);
    let text = match std::fs::read(&files.log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", files.log.display())),
    };
    let lines: Vec<String> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(lossy).collect();
    Ok(lines[lines.len().saturating_sub(n)..].to_vec())
}

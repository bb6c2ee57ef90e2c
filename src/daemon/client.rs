//! What other ctb processes do to a server's daemon: spawn it and hold it
//! open, send it requests, and status, stop, wait and logs.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tmux_control::SessionId;

use super::{HOLD_FD_ENV, READY_DEADLINE, REQUEST_DEADLINE, STATUS_DEADLINE, WATCH_DEADLINE};
use crate::runtime::{find_owner, open_log, runtime_dir, DaemonLock, ServerFiles, SpawnLock};
use crate::tmux::{is_anchor_name, Server};
use crate::util::lossy;

/// Sends one request to the daemon; `None` if no daemon answers (no
/// socket, refused, closed without a reply, or no reply in time).
pub fn request(files: &ServerFiles, req: &Value) -> Option<Value> {
    request_within(files, req, REQUEST_DEADLINE)
}

/// [`request`] with its own answer deadline.
pub fn request_within(files: &ServerFiles, req: &Value, deadline: Duration) -> Option<Value> {
    match ask(files, req, deadline) {
        Answer::Reply(v) => Some(v),
        Answer::NoDaemon | Answer::NoAnswer => None,
    }
}

/// What a request got.
#[derive(Debug)]
pub enum Answer {
    Reply(Value),
    /// No daemon listens (no socket, refused), or it closed the connection
    /// without a reply (it is exiting).
    NoDaemon,
    /// A daemon took the connection but did not answer within the deadline
    /// (stopped, or stuck).
    NoAnswer,
}

/// One request with an answer deadline.
pub fn ask(files: &ServerFiles, req: &Value, deadline: Duration) -> Answer {
    let Ok(mut s) = UnixStream::connect(&files.sock) else { return Answer::NoDaemon };
    if s.set_read_timeout(Some(deadline)).is_err() || s.set_write_timeout(Some(deadline)).is_err() {
        return Answer::NoDaemon;
    }
    match exchange(&mut s, req) {
        Ok(Some(v)) => Answer::Reply(v),
        Ok(None) => Answer::NoDaemon,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Answer::NoAnswer,
        Err(_) => Answer::NoDaemon,
    }
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
/// daemon runs (or it is stopping); an error if one runs and does not
/// answer in time. Call it while holding [`SpawnLock`].
pub fn watch_by_running(lock: &SpawnLock, session: SessionId) -> Result<Option<u32>> {
    let req = json!({"op": "watch", "session_id": session.to_string()});
    match ask(&lock.files, &req, WATCH_DEADLINE) {
        Answer::NoDaemon => Ok(None),
        Answer::NoAnswer => {
            let pid = find_owner(&lock.files.lock).ok().flatten().map(|o| o.pid);
            bail!(
                "the daemon{} did not answer within {}s (stopped or stuck?)",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                WATCH_DEADLINE.as_secs()
            )
        }
        Answer::Reply(reply) => watch_reply(&reply, session),
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

/// The user option a running daemon records itself in, on its anchor
/// session (set in the command that creates the anchor, so the record
/// lives and dies with it): `PID<TAB>LOCK<TAB>SOCK`. A ctb with another
/// runtime directory (another `XDG_RUNTIME_DIR`) finds the daemon there.
pub const DAEMON_OPTION: &str = "@ctb-daemon";

/// The value of [`DAEMON_OPTION`] for the daemon `pid` with these files.
pub fn daemon_record(pid: u32, files: &ServerFiles) -> String {
    format!("{pid}\t{}\t{}", files.lock.display(), files.sock.display())
}

/// The files of the daemon serving `server`: this runtime directory's,
/// unless no daemon holds its lock and another runtime directory's daemon
/// is recorded in the server and proven alive (see [`recorded_daemon`]).
pub fn locate(server: &Server) -> Result<ServerFiles> {
    let dir = runtime_dir()?;
    let own = ServerFiles::new(&dir, &server.socket_path());
    if find_owner(&own.lock)?.is_some() {
        return Ok(own);
    }
    Ok(recorded_daemon(server, &own).map(|(_, f)| f).unwrap_or(own))
}

/// A live daemon recorded in [`DAEMON_OPTION`] other than the one of
/// `own`'s files: its pid and files. Trusted only if its lock file is a
/// `.lock` in a private directory of ours, beside its socket, and the pid
/// is proven to hold that lock; anything else is ignored (never signalled).
pub fn recorded_daemon(server: &Server, own: &ServerFiles) -> Option<(u32, ServerFiles)> {
    let format = format!("#{{session_name}}\t#{{{DAEMON_OPTION}}}");
    let out = server.run(["-N", "list-sessions", "-F", format.as_str()]).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    text.lines().filter_map(|l| l.split_once('\t')).filter(|(name, _)| is_anchor_name(name.as_bytes())).find_map(
        |(_, record)| {
            let found = check_record(record, own);
            if found.is_none() && !record.is_empty() {
                tracing::debug!(record, "ignoring a daemon record that does not prove itself");
            }
            found
        },
    )
}

/// One record, proven: the lock file has this server's key (the name of
/// `own.lock`) in a private directory of ours, beside its socket, and the
/// pid holds that lock and runs `ctb daemon run` (`find_owner`).
fn check_record(record: &str, own: &ServerFiles) -> Option<(u32, ServerFiles)> {
    let mut f = record.split('\t');
    let pid: u32 = f.next()?.parse().ok()?;
    let lock = std::path::PathBuf::from(f.next()?);
    let sock = std::path::PathBuf::from(f.next()?);
    if f.next().is_some() || lock == own.lock || !lock.is_absolute() {
        return None;
    }
    let dir = lock.parent()?;
    // The key is the canonical socket's: a record copied from another
    // server (or naming any other file) is not this server's daemon.
    // (The readable part of a key is shortened to fit a socket path, so
    // only the hash part is compared.)
    let hash = |p: &std::path::Path| p.file_name()?.to_str()?.rsplit_once('-').map(|(_, h)| h.to_owned());
    if hash(&lock).is_none()
        || hash(&lock) != hash(&own.lock)
        || hash(&sock) != hash(&own.sock)
        || sock.parent()? != dir
    {
        return None;
    }
    crate::runtime::check_private_dir(dir).ok()?;
    let owner = find_owner(&lock).ok()??;
    if owner.pid != pid {
        return None;
    }
    let log = lock.with_extension("log");
    Some((pid, ServerFiles { lock, sock, log, spawn: own.spawn.clone(), attach: own.attach.clone() }))
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

/// `ctb daemon status` fields: the daemon's own answer (`responding`
/// true), or within [`STATUS_DEADLINE`] what the lock proves
/// (`responding` false).
pub fn status(server: &Server) -> Result<Value> {
    let files = locate(server)?;
    if let Some(mut v) = request_within(&files, &json!({"op": "status"}), STATUS_DEADLINE) {
        if v["running"] == true {
            v["responding"] = true.into();
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
    let files = locate(server)?;
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
/// `None`: no deadline.
pub fn wait_exit(server: &Server, timeout: Option<Duration>) -> Result<bool> {
    let files = locate(server)?;
    match find_owner(&files.lock)? {
        None => Ok(true),
        Some(owner) => Ok(match timeout {
            Some(t) => wait_readable(&owner.pidfd, Instant::now() + t),
            None => wait_readable_forever(&owner.pidfd),
        }),
    }
}

/// Blocks until `fd` is readable (one blocking `poll(2)`, no timeout).
fn wait_readable_forever(fd: impl AsFd) -> bool {
    loop {
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

/// `ctb daemon start`: make sure a daemon runs for this server if
/// something is marked watched. The same answer shape whatever the case:
/// the status, plus `started` (a daemon was started now) and, when none
/// runs, `reason` (no server, or nothing marked watched).
pub fn start(server: &Server) -> Result<Value> {
    let mut lock = SpawnLock::take(&server.socket_path())?;
    lock.files = locate(server)?;
    let mut started = false;
    let mut reason = None;
    if !daemon_listening(&lock) {
        match server.list_sessions_or_none()? {
            None => reason = Some("no tmux server is running"),
            Some(rows) if !rows.iter().any(|r| r.watched && !r.anchor) => reason = Some("no session is marked watched"),
            Some(_) => {
                drop(spawn_daemon(server, &lock)?);
                started = true;
            }
        }
    }
    drop(lock);
    let mut v = status(server)?;
    v["started"] = started.into();
    if let Some(r) = reason {
        v["reason"] = r.into();
    }
    Ok(v)
}

/// The last `n` lines of this server's daemon log.
pub fn logs(server: &Server, n: usize) -> Result<Vec<String>> {
    let files = locate(server)?;
    let text = match std::fs::read(&files.log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", files.log.display())),
    };
    let lines: Vec<String> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(lossy).collect();
    Ok(lines[lines.len().saturating_sub(n)..].to_vec())
}

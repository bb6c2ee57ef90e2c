//! The daemon process: `ctb daemon run`. Takes the lock, serves the
//! request socket and the spawner's hold, runs the watcher.

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result};
use rustix::io::Errno;
use serde_json::{json, Value};
use tmux_control::SessionId;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::HOLD_FD_ENV;
use crate::runtime::{runtime_dir, DaemonLock, ServerFiles};
use crate::tmux::{Server, TmuxControl};
use crate::util::{lossy, now_rfc3339};
use crate::watch::{self, EndReason, Input, Mode, Request, Watcher};

/// Runs the daemon in this process (`ctb daemon run`).
pub fn run_daemon(server: Server) -> Result<std::convert::Infallible> {
    let hold = take_hold_fd();
    close_inherited_fds(hold.as_ref().map(std::os::fd::AsRawFd::as_raw_fd));
    // As daemon(7) says: hold no directory (paths are absolute already).
    let _ = std::env::set_current_dir("/");
    let dir = runtime_dir()?;
    let files = ServerFiles::new(&dir, &server.socket_path());
    let mut lock = DaemonLock::acquire(&files.lock).context("taking the daemon lock")?;
    let started = now_rfc3339();
    lock.write_owner(std::process::id(), &started)?;
    cap_log(&files.log);
    tracing::info!(pid = std::process::id(), socket = %server.socket_path().display(), "daemon starting");
    super::hygiene::remove_stale_logs(&dir, &files);
    // One daemon per server, whatever runtime directory: another one
    // recorded in the server and proven alive serves it already.
    if let Some((pid, other)) = super::recorded_daemon(&server, &files) {
        let _ = std::fs::remove_file(&files.sock);
        lock.release();
        anyhow::bail!("another ctb daemon (pid {pid}, {}) already serves this tmux server", other.lock.display());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(daemon_main(server.clone(), &files, started, hold));
    // Stop answering before the lock is released: a request that races
    // with shutdown sees the socket gone (or closed) and starts a new daemon.
    let _ = std::fs::remove_file(&files.sock);
    lock.release();
    match &result {
        Ok(reason) => tracing::info!(reason = reason.as_str(), "daemon exiting"),
        Err(e) => tracing::error!(error = %format!("{e:#}"), "daemon failed"),
    }
    // Everything is released: skip tearing down the runtime. Giving up on
    // the anchor is a failure too: the sessions are no longer watched.
    std::process::exit(i32::from(!matches!(result, Ok(r) if r != EndReason::AnchorFailed)))
}

/// Past this size a starting daemon empties its log (one daemon's life
/// writes a few lines per session; this bounds a pathological one).
const LOG_CAP: u64 = 1 << 20;

fn cap_log(log: &std::path::Path) {
    if std::fs::symlink_metadata(log).is_ok_and(|m| m.is_file() && m.len() > LOG_CAP) {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(log) {
            let _ = f.set_len(0);
            tracing::info!("log emptied: it had grown past {LOG_CAP} bytes");
        }
    }
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
    let flags = rustix::io::fcntl_getfd(borrowed).ok()?;
    // SAFETY: the spawner passed this open fd to us for our sole use.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // The spawner cleared close-on-exec for us to inherit it: set it back
    // at once, or every child (the `tmux -C` client) inherits the hold too,
    // and a spawner whose daemon died waits its full deadline instead of
    // seeing EOF. If that fails, do without the hold rather than leak it.
    if let Err(e) = rustix::io::fcntl_setfd(&owned, flags | rustix::io::FdFlags::CLOEXEC) {
        tracing::warn!(error = %e, "cannot set close-on-exec on the hold; closing it");
        return None;
    }
    Some(owned)
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
    // Found by ctbs of other runtime directories: recorded on our anchor,
    // so the record lives and dies with it (daemon/client.rs).
    source.anchor_option(super::DAEMON_OPTION, &super::daemon_record(std::process::id(), files));
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

/// Longest request line read (a request is a few dozen bytes): a peer
/// sending more without a newline is refused, not buffered.
const MAX_REQUEST: usize = 64 * 1024;
/// How long a connection may take to send a complete request, and to take
/// its reply; then it is closed. (Not the time its reply takes to be ready:
/// a connection waiting for a reply is not idle.)
const IDLE_DEADLINE: Duration = Duration::from_secs(10);
/// How long to wait before accepting again after running out of
/// descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections for the daemon's life. A failure to accept must not
/// end it (a daemon that no longer answers looks alive and stuck): a lack
/// of descriptors or memory is waited out, a connection aborted before we
/// took it is skipped, and anything else stops the daemon (a new one is
/// started on demand).
async fn accept_loop(listener: UnixListener, tx: mpsc::Sender<Request>) {
    // A run of failures is logged once, when it starts.
    let mut failing = false;
    loop {
        let e = match listener.accept().await {
            Ok((stream, _)) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("accepting connections again");
                }
                tokio::spawn(serve_connection(stream, tx.clone(), false));
                continue;
            }
            Err(e) => e,
        };
        match e.raw_os_error().map(Errno::from_raw_os_error) {
            // Only that connection is lost.
            Some(Errno::CONNABORTED | Errno::PROTO | Errno::INTR) => {
                tracing::debug!(error = %e, "a connection was aborted before it was accepted");
            }
            Some(Errno::MFILE | Errno::NFILE | Errno::NOMEM | Errno::NOBUFS) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "cannot accept a connection; retrying every {:?}", ACCEPT_BACKOFF);
                }
                // A bounded backoff after an error, not a poll: the listener
                // stays readable while the connection waits, so accepting
                // again at once would spin until a descriptor is freed.
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
            _ => {
                tracing::error!(error = %e, "cannot accept connections; stopping the daemon");
                let (stopped, _) = oneshot::channel();
                let _ = tx.send(Request::Stop(stopped)).await;
                return;
            }
        }
    }
}

/// What [`read_request`] read.
enum ReadLine {
    /// A complete line (without its newline), or the last bytes before EOF.
    Line,
    /// More than [`MAX_REQUEST`] bytes without a newline.
    TooLong,
    Eof,
}

/// Reads one request line into `line`, never more than [`MAX_REQUEST`]
/// bytes (and its newline).
async fn read_request(r: &mut (impl AsyncBufRead + Unpin), line: &mut Vec<u8>) -> std::io::Result<ReadLine> {
    line.clear();
    let n = r.take(MAX_REQUEST as u64 + 1).read_until(b'\n', line).await?;
    if n == 0 {
        return Ok(ReadLine::Eof);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() > MAX_REQUEST {
        return Ok(ReadLine::TooLong);
    }
    Ok(ReadLine::Line)
}

/// Answers request lines until the peer closes, sends an overlong line, or
/// (except on the hold) stays idle past [`IDLE_DEADLINE`]; the end of the
/// hold connection releases the hold.
async fn serve_connection(stream: tokio::net::UnixStream, tx: mpsc::Sender<Request>, hold: bool) {
    let (r, mut w) = stream.into_split();
    let mut r = tokio::io::BufReader::new(r);
    let mut line = Vec::new();
    // The spawner's hold is idle while it creates its session, for as long
    // as that takes: it has no deadline (it ends when the spawner does).
    let deadline = (!hold).then_some(IDLE_DEADLINE);
    loop {
        let reply = match within(deadline, read_request(&mut r, &mut line)).await {
            Some(Ok(ReadLine::Line)) => format!("{}\n", serve(&line, &tx).await),
            Some(Ok(ReadLine::TooLong)) => {
                tracing::warn!("refusing a request longer than {MAX_REQUEST} bytes");
                let _ = within(deadline, w.write_all(b"{\"ok\":false,\"error\":\"request too long\"}\n")).await;
                break;
            }
            Some(Ok(ReadLine::Eof) | Err(_)) => break,
            None => {
                tracing::debug!("closing a connection idle for {:?}", IDLE_DEADLINE);
                break;
            }
        };
        if !matches!(within(deadline, w.write_all(reply.as_bytes())).await, Some(Ok(()))) {
            break;
        }
    }
    if hold {
        let _ = tx.send(Request::Release).await;
    }
}

/// `f`'s output, or `None` if `deadline` passed first (no deadline: waits).
async fn within<T>(deadline: Option<Duration>, f: impl std::future::Future<Output = T>) -> Option<T> {
    match deadline {
        Some(d) => tokio::time::timeout(d, f).await.ok(),
        None => Some(f.await),
    }
}

async fn serve(line: &[u8], tx: &mpsc::Sender<Request>) -> Value {
    let req: Value = match serde_json::from_slice(line) {
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

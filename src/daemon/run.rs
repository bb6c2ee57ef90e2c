//! The daemon process: `ctb daemon run`. Takes the lock, serves the
//! request socket and the spawner's hold, runs the watcher.

use std::os::fd::{FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tmux_control::SessionId;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
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
    let dir = runtime_dir()?;
    let files = ServerFiles::new(&dir, &server.socket_path());
    let mut lock = DaemonLock::acquire(&files.lock).context("taking the daemon lock")?;
    let started = now_rfc3339();
    lock.write_owner(std::process::id(), &started)?;
    tracing::info!(pid = std::process::id(), socket = %server.socket_path().display(), "daemon starting");
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

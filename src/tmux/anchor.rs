//! What runs inside a watcher's anchor session (`ctb anchor-hold`, hidden):
//! it keeps the anchor's pane open while its watcher's control client
//! lives, and removes the anchor once that client is gone, so that an
//! anchor never outlives its watcher (issue: a SIGKILLed daemon left its
//! anchor, and with it the tmux server, alive forever).
//!
//! Order matters (docs/tmux-3.3a-crash.md): a session must not be destroyed
//! while a control client is still attached to it. So the holder waits for
//! the *client's* death (its pidfd; the client dies with its watcher by its
//! parent-death signal), then asks the server, through a new tmux client
//! that connects after the dead client's socket was closed, to kill the
//! anchor's pane (by its id, `$TMUX_PANE`: never a whole session, which
//! could be a user's if the pane was moved), holding the attach gate shared
//! like every ctb mutation. While the watcher lives it is the one that
//! removes its anchor (a normal detach, through its client; or as a stale
//! anchor): the holder then only waits for its pane to close (SIGHUP) and
//! exits, touching nothing.

use std::os::fd::OwnedFd;

use rustix::process::{pidfd_open, Pid, PidfdFlags};

use super::listing::is_anchor_name;
use super::server::Server;
use crate::runtime::AttachGate;

/// Blocks until the anchor's client is gone, then removes the anchor.
pub fn hold(server: &Server, anchor: &str) -> anyhow::Result<()> {
    if !is_anchor_name(anchor.as_bytes()) {
        anyhow::bail!("{anchor:?} is not an anchor name");
    }
    // Keys typed into the anchor's pane (C-c, C-\\, C-z) must not end it
    // under its client: handled (and dropped) by tokio's signal handler,
    // installed for the rest of the process by registering. SIGHUP (the
    // pane closed: the anchor is gone) is watched below.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let watcher: i32 = anchor.split('-').nth(2).and_then(|p| p.parse().ok()).unwrap_or(0);
    let cleanup = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let _keys = [SignalKind::interrupt(), SignalKind::quit(), SignalKind::from_raw(20)]
            .into_iter()
            .map(signal)
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut hup = signal(SignalKind::hangup())?;
        // The watcher gone already: so is its client; clean up at once.
        let Some(watcher_fd) = pidfd(watcher) else { return Ok::<bool, anyhow::Error>(true) };
        // 1. Until the client is gone (or the watcher, if we could not
        //    find the client), or the anchor is (SIGHUP: nothing to do).
        let first = client_pidfd(watcher, anchor).or_else(|| watcher_fd.try_clone().ok());
        tokio::select! {
            _ = exited(first) => {}
            _ = hup.recv() => return Ok(false),
        }
        // 2. The client is gone. Its watcher alive means it let the client
        //    go (a normal detach kills the anchor through the client
        //    first: SIGHUP comes) or will find the anchor stale and remove
        //    it: wait for SIGHUP, or for the watcher's death.
        if !is_readable(&watcher_fd) {
            tokio::select! {
                _ = exited(Some(watcher_fd)) => {}
                _ = hup.recv() => return Ok(false),
            }
        }
        Ok(true)
    })?;
    if !cleanup {
        return Ok(());
    }
    // The client is gone (or its watcher is, and with it the client).
    let pane = std::env::var("TMUX_PANE").unwrap_or_default();
    if !pane.starts_with('%') {
        return Ok(());
    }
    let _gate = AttachGate::mutation(&server.socket_path());
    // Our pane, not "its session": the pane may have been moved into a
    // user's session (join-pane); killing it ends the anchor session
    // when it is the anchor's only pane.
    let _ = server.run(["-N", "kill-pane", "-t", pane.as_str()]);
    Ok(())
}

/// The watcher's `tmux -C` client that created `anchor`: a child of
/// `watcher` whose command line names the anchor.
fn client_pidfd(watcher: i32, anchor: &str) -> Option<OwnedFd> {
    let rd = std::fs::read_dir("/proc").ok()?;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `PID (COMM) STATE PPID ...`: COMM may hold spaces and parens.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid != Some(watcher) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.contains(&&b"-C"[..]) && args.contains(&anchor.as_bytes()) {
            // Opened, then re-checked: the pid cannot be recycled under us.
            let fd = pidfd(pid)?;
            let again = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            return (again == cmdline).then_some(fd);
        }
    }
    None
}

fn pidfd(pid: i32) -> Option<OwnedFd> {
    pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()
}

/// Resolves when the process of `fd` has exited (a pidfd turns readable);
/// never for `None`.
async fn exited(fd: Option<OwnedFd>) {
    use tokio::io::unix::AsyncFd;
    let Some(fd) = fd else { return std::future::pending().await };
    // SAFETY: the AsyncFd owns the pidfd, open for as long as registered.
    match unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
        Ok(afd) => {
            let _ = afd.readable().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// Whether a pidfd is readable now (its process has exited).
fn is_readable(fd: &OwnedFd) -> bool {
    let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
    let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

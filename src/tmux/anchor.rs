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
//! anchor (by its pane id, `$TMUX_PANE`), holding the attach gate shared
//! like every ctb mutation. A normal detach kills the anchor first: the
//! holder's clean-up then finds nothing left to do.

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
    // under its client, and the pane closing (SIGHUP) must not cut the
    // clean-up short: handled (and dropped) by tokio's signal handler,
    // installed for the rest of the process by registering. The process
    // ends when the client has gone, whatever came first.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let _signals = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        [SignalKind::interrupt(), SignalKind::quit(), SignalKind::from_raw(20), SignalKind::hangup()]
            .into_iter()
            .map(signal)
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    let watcher: i32 = anchor.split('-').nth(2).and_then(|p| p.parse().ok()).unwrap_or(0);
    if let Some(fd) = client_pidfd(watcher, anchor).or_else(|| pidfd(watcher)) {
        wait_readable(&fd);
    }
    // The client is gone (or its watcher is, and with it the client).
    let pane = std::env::var("TMUX_PANE").unwrap_or_default();
    if !pane.starts_with('%') {
        return Ok(());
    }
    // A daemon killed outright leaves its record in the server: remove it
    // if it is this watcher's (see daemon::client::DAEMON_OPTION).
    if let Ok(v) = server.run(["-N", "show-options", "-s", "-q", "-v", "@ctb-daemon"]) {
        if v.starts_with(format!("{watcher}\t").as_bytes()) {
            let _ = server.run(["-N", "set-option", "-s", "-u", "@ctb-daemon"]);
        }
    }
    let _gate = AttachGate::mutation(&server.socket_path());
    let _ = server.run(["-N", "kill-session", "-t", pane.as_str()]);
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

/// One blocking `poll(2)` until the process exits (no timeout: the client
/// always ends, with its anchor, its watcher or the server).
fn wait_readable(fd: &OwnedFd) {
    loop {
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            _ => return,
        }
    }
}

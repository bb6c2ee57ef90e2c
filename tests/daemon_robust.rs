//! The daemon under abuse (issue 12 item 4, issue 9 item 2): descriptor
//! exhaustion, idle and oversized requests, anchors that die at once, an fd
//! leaked into the control client, and a control client outliving its
//! parent. Each test owns a private tmux server.

mod util;

use std::time::Duration;

use rustix::process::Signal;
use util::{control_client_of, fd_targets, proc_args, signal_pid, wait_pid, TmuxServer};

const DEADLINE: Duration = Duration::from_secs(10);

/// Kills (SIGKILL, through a pidfd) the listed processes of `s` still
/// running when dropped: a failing test must not leave them behind.
struct Leftovers<'a> {
    server: &'a TmuxServer,
    pids: Vec<u32>,
}

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        for &pid in &self.pids {
            if self.server.is_ours(&proc_args(pid)) {
                signal_pid(pid, Signal::KILL);
            }
        }
    }
}

// 4. The hold fd does not leak into the control client.

#[test]
fn control_client_inherits_no_socket_from_the_daemon() {
    let s = TmuxServer::new();
    s.create("a");
    let client = control_client_of(s.daemon_pid());
    let fds = fd_targets(client);
    let sockets: Vec<&(u32, String)> = fds.iter().filter(|(_, t)| t.starts_with("socket:")).collect();
    // Its own connection to the tmux server, nothing else.
    assert_eq!(sockets.len(), 1, "sockets of the control client {client}: {fds:?}");
}

// 5. The control client dies with the process that started it.

#[test]
fn control_client_and_server_go_when_the_daemon_is_killed_after_kill_server() {
    for round in 0..20 {
        let s = TmuxServer::new();
        s.create("a");
        let daemon = s.daemon_pid();
        let server = s.server_pid();
        let client = control_client_of(daemon);
        let _leftovers = Leftovers { server: &s, pids: vec![client, server] };
        s.tmux_ok(&["kill-server"]);
        signal_pid(daemon, Signal::KILL);
        assert!(wait_pid(daemon, DEADLINE), "round {round}: daemon {daemon} survived SIGKILL");
        assert!(wait_pid(client, DEADLINE), "round {round}: control client {client} outlived its daemon");
        assert!(wait_pid(server, DEADLINE), "round {round}: tmux server {server} stayed");
    }
}

#[test]
fn control_client_and_server_go_when_ctb_watch_is_killed_after_kill_server() {
    for round in 0..20 {
        let s = TmuxServer::new();
        s.ok(&["session-create", "a", "--no-watch"]);
        let server = s.server_pid();
        let mut w = s.watch(&["a"]);
        w.wait_event("watching");
        let client = control_client_of(w.child.id());
        let _leftovers = Leftovers { server: &s, pids: vec![client, server] };
        s.tmux_ok(&["kill-server"]);
        w.child.kill().unwrap();
        assert!(wait_pid(client, DEADLINE), "round {round}: control client {client} outlived ctb watch");
        assert!(wait_pid(server, DEADLINE), "round {round}: tmux server {server} stayed");
    }
}

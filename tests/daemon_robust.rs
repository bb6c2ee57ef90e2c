//! The daemon under abuse (issue 12 item 4, issue 9 item 2): descriptor
//! exhaustion, idle and oversized requests, anchors that die at once, an fd
//! leaked into the control client, and a control client outliving its
//! parent. Each test owns a private tmux server.

mod util;

use util::{control_client_of, fd_targets, TmuxServer};

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

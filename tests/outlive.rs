//! Nothing of ctb outlives it (issue 9): a watcher killed at any moment
//! leaves no anchor, and no tmux server kept alive by ctb alone.

mod util;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use util::{all_pids, proc_args, wait_pid, TmuxServer};

const DEADLINE: Duration = Duration::from_secs(10);

fn daemon_pid(v: &Value) -> u32 {
    v["daemon_pid"].as_u64().unwrap_or_else(|| panic!("no daemon_pid in {v}")) as u32
}

fn sigkill(pid: u32) {
    let p = rustix::process::Pid::from_raw(pid as i32).unwrap();
    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
}

/// ctb processes of this test's server (daemons, watchers, anchor holders).
fn ctb_processes(s: &TmuxServer) -> Vec<(u32, Vec<String>)> {
    let ctb = util::ctb_path().to_string_lossy().into_owned();
    all_pids()
        .into_iter()
        .filter(|&p| util::proc_stat(p).is_some_and(|(st, _, _)| st != 'Z'))
        .map(|p| (p, proc_args(p)))
        .filter(|(_, a)| a.first().is_some_and(|x| *x == ctb) && a.contains(&s.label))
        .collect()
}

/// Waits (on their pidfds, with a deadline) until no ctb process of this
/// server is left but those in `keep`.
fn wait_no_ctb_left(s: &TmuxServer, keep: &[u32], what: &str) {
    for (pid, args) in ctb_processes(s) {
        if !keep.contains(&pid) {
            assert!(wait_pid(pid, DEADLINE), "{what}: ctb process {pid} {args:?} is still there");
        }
    }
}

/// Waits until every anchor's process (its pane's pid) has exited, then
/// asserts no anchor is left.
fn assert_anchors_go(s: &TmuxServer, what: &str) {
    for anchor in s.anchors() {
        let out = s.tmux().args(["list-panes", "-t", &format!("={anchor}"), "-F", "#{pane_pid}"]).output().unwrap();
        for pid in String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            assert!(wait_pid(pid, DEADLINE), "{what}: the process of anchor {anchor} stayed");
        }
    }
    assert!(s.anchors().is_empty(), "{what}: {:?}", s.anchors());
}

#[test]
fn a_sigkilled_daemons_anchor_does_not_keep_the_server_alive() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("a"));
    let server = s.server_pid();
    sigkill(pid);
    assert!(wait_pid(pid, DEADLINE));
    wait_no_ctb_left(&s, &[], "after the daemon's SIGKILL");
    assert_anchors_go(&s, "after the daemon's SIGKILL");
    // Nor its record in the server.
    assert_eq!(s.tmux_ok(&["show-options", "-s", "-q", "-v", "@ctb-daemon"]), "");
    // The user's last session closes: the server goes.
    s.tmux_ok(&["kill-session", "-t", "=a"]);
    assert!(wait_pid(server, DEADLINE), "the tmux server stayed");
}

#[test]
fn stopping_a_frozen_daemon_leaves_no_anchor() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("a"));
    let p = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(p, rustix::process::Signal::STOP).unwrap();
    let v = s.ok(&["daemon", "stop"]);
    assert_eq!(v["stopped"], "sigkill", "{v}");
    wait_no_ctb_left(&s, &[], "after stop");
    assert_anchors_go(&s, "after stop");
    assert_eq!(s.session_names(), ["a"]);
}

#[test]
fn sigkill_of_the_daemon_while_the_server_exits_frees_the_server() {
    for round in 0..10 {
        let s = TmuxServer::new();
        let pid = daemon_pid(&s.create("a"));
        let server = s.server_pid();
        let _ = s.tmux().arg("kill-server").stderr(Stdio::null()).status();
        sigkill(pid);
        assert!(wait_pid(server, DEADLINE), "round {round}: the tmux server is stuck");
        wait_no_ctb_left(&s, &[], "after kill-server");
    }
}

#[test]
fn a_watch_terminated_while_it_starts_leaves_no_anchor() {
    let s = TmuxServer::new();
    s.ok(&["session-create", "a", "--no-watch"]);
    for round in 0..20u32 {
        let mut child = s.ctb().args(["watch", "a"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Varied moments: from at once to after the attach.
        let delay = Duration::from_micros(u64::from(round) * 1500);
        std::thread::sleep(delay);
        let sig = if round % 2 == 0 { rustix::process::Signal::TERM } else { rustix::process::Signal::KILL };
        let p = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(p, sig);
        let _ = child.wait();
        wait_no_ctb_left(&s, &[], &format!("round {round}"));
        assert_anchors_go(&s, &format!("round {round}"));
        assert_eq!(s.session_names(), ["a"], "round {round}");
    }
}

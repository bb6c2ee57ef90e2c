//! The daemon under abuse (issue 12 item 4, issue 9 item 2): descriptor
//! exhaustion, idle and oversized requests, anchors that die at once, an fd
//! leaked into the control client, and a control client outliving its
//! parent. Each test owns a private tmux server.

mod util;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::json;
use util::{
    control_client_of, fd_targets, line_reader, proc_args, signal_pid, vm_rss_kib, wait_file, wait_pid, TmuxServer,
};

const DEADLINE: Duration = Duration::from_secs(10);
/// The daemon's idle-connection deadline (src/daemon/run.rs).
const IDLE: Duration = Duration::from_secs(10);
/// Consecutive anchor failures before the watcher gives up (src/watch/state.rs).
const MAX_ANCHOR_FAILURES: u32 = 8;

/// Reads one line (the daemon's reply) with a deadline; `None` on EOF,
/// reset or timeout before a newline.
fn read_line(s: &mut UnixStream, timeout: Duration) -> Option<String> {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = s.read(&mut byte) {
        if byte[0] == b'\n' {
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(byte[0]);
    }
    None
}

/// Whether the daemon answers `status` and watches exactly `names`.
fn assert_answers(s: &TmuxServer, names: &[&str]) {
    let v = s.status();
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["responding"], true, "the daemon does not answer: {v}");
    assert_eq!(v["watched"], json!(names), "{v}");
}

/// The highest anchor number `ctb-anchor-<pid>-<n>` named in `log`.
fn anchors_named(log: &str, pid: u32) -> u32 {
    let prefix = format!("ctb-anchor-{pid}-");
    log.match_indices(&prefix)
        .filter_map(|(i, _)| {
            let digits: String = log[i + prefix.len()..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

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

// 1. Descriptor exhaustion must not end the accept loop.

#[test]
fn daemon_keeps_accepting_after_running_out_of_descriptors() {
    let s = TmuxServer::new();
    s.create("a");
    let pid = s.daemon_pid();
    let st = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=64:64"])
        .status()
        .expect("prlimit");
    assert!(st.success(), "prlimit failed");
    let sock = s.daemon_socket();
    let log = s.runtime_file(".log");
    let conns: Vec<UnixStream> =
        (0..80).map(|i| UnixStream::connect(&sock).unwrap_or_else(|e| panic!("{i}: {e}"))).collect();
    // Keep them open until the daemon has run out of descriptors (it
    // logs it); without that log line, the deadline passes and the
    // checks below say what state the daemon is in.
    let warned = wait_file(&log, DEADLINE, |t| t.contains("Too many open files"));
    drop(conns);
    assert_answers(&s, &["a"]);
    let v = s.ok(&["session-create", "b"]);
    assert_eq!(v["daemon_pid"], pid, "{v}");
    assert_answers(&s, &["a", "b"]);
    assert!(warned, "no warning about the exhaustion in the log:\n{}", s.daemon_log());
    let warnings = s.daemon_log().lines().filter(|l| l.contains("WARN") && l.contains("accept")).count();
    assert_eq!(warnings, 1, "one warning per burst:\n{}", s.daemon_log());
}

#[test]
fn idle_connection_is_closed_by_the_daemon() {
    let s = TmuxServer::new();
    s.create("a");
    let mut idle = UnixStream::connect(s.daemon_socket()).unwrap();
    // A connection that asked and is answered, then says nothing more.
    let mut asked = UnixStream::connect(s.daemon_socket()).unwrap();
    asked.write_all(b"{\"op\":\"status\"}\n").unwrap();
    assert!(read_line(&mut asked, DEADLINE).is_some_and(|l| l.contains("\"running\":true")));
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    idle.set_read_timeout(Some(IDLE + DEADLINE)).unwrap();
    let r = idle.read(&mut buf);
    assert!(matches!(r, Ok(0)), "expected EOF on an idle connection, got {r:?} after {:?}", t0.elapsed());
    let waited = t0.elapsed();
    assert!(waited + Duration::from_secs(1) >= IDLE, "closed too early: {waited:?}");
    asked.set_read_timeout(Some(DEADLINE)).unwrap();
    assert!(matches!(asked.read(&mut buf), Ok(0)), "the answered connection is idle too");
    // The daemon itself goes on.
    assert_answers(&s, &["a"]);
}

// 2. A request line has a size limit.

#[test]
fn oversized_request_is_refused_without_growing_the_daemon() {
    let s = TmuxServer::new();
    s.create("a");
    let pid = s.daemon_pid();
    let before = vm_rss_kib(pid);
    let mut c = UnixStream::connect(s.daemon_socket()).unwrap();
    let mut w = c.try_clone().unwrap();
    // 10 MiB without a newline, from another thread: the daemon may
    // close while we write.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        (0..10).take_while(|_| w.write_all(&chunk).is_ok()).count()
    });
    let reply = read_line(&mut c, DEADLINE);
    assert_eq!(reply.as_deref(), Some(r#"{"ok":false,"error":"request too long"}"#));
    let mut rest = [0u8; 16];
    assert!(!matches!(c.read(&mut rest), Ok(n) if n > 0), "the daemon must close after refusing");
    let written = writer.join().unwrap();
    let after = vm_rss_kib(pid);
    eprintln!("VmRSS before {before} KiB, after {after} KiB ({written} MiB written before the close)");
    assert!(after < 30 * 1024, "VmRSS {after} KiB");
    assert!(after < before + 8 * 1024, "VmRSS grew from {before} to {after} KiB");
    assert_answers(&s, &["a"]);
}

// 3. Anchors that die at once: no tight loop, a bounded number of tries.

#[test]
fn anchor_survives_a_default_shell_that_exits_at_once() {
    let s = TmuxServer::new();
    // A server whose default shell exits at once (the reviewer's setup);
    // sessions run their command directly (several arguments: no shell).
    s.tmux_ok(&["new-session", "-d", "-s", "keep", "sleep", "600", ";", "set", "-g", "default-shell", "/bin/false"]);
    s.ok(&["session-create", "a", "--", "sleep", "600"]);
    let pid = s.daemon_pid();
    s.ok(&["session-create", "b", "--", "sleep", "600"]);
    assert_answers(&s, &["a", "b"]);
    // Still the first anchor: it never died (it does not run the shell).
    assert_eq!(s.anchors(), [format!("ctb-anchor-{pid}-1")]);
}

/// Makes every new anchor die at once: a hook kills each new session (the
/// watched sessions exist already). (A missing `cat` does not do it: tmux
/// runs a new session's command with the PATH of the client creating it.)
fn break_anchors(s: &TmuxServer) {
    s.tmux_ok(&["set-hook", "-g", "session-created", "kill-session"]);
}

#[test]
fn daemon_gives_up_on_an_anchor_that_keeps_dying() {
    let s = TmuxServer::new();
    s.create("a");
    let pid = s.daemon_pid();
    let anchors = s.anchors();
    assert_eq!(anchors, [format!("ctb-anchor-{pid}-1")]);
    break_anchors(&s);
    let t0 = Instant::now();
    // The client ends with its anchor; every new one dies at once.
    s.tmux_ok(&["kill-session", "-t", &format!("={}", anchors[0])]);
    let gone = wait_pid(pid, Duration::from_secs(30));
    let took = t0.elapsed();
    let log = s.daemon_log();
    assert!(gone, "the daemon is still re-anchoring after {took:?}:\n{}", &log[log.len().saturating_sub(3000)..]);
    let made = anchors_named(&log, pid);
    eprintln!("gave up after {took:?}, {made} anchors in all (1 healthy)");
    assert!(made <= 1 + MAX_ANCHOR_FAILURES, "{made} anchors:\n{log}");
    assert!(made >= 1 + MAX_ANCHOR_FAILURES - 1, "gave up too soon ({made} anchors):\n{log}");
    // The backoff between the tries: 50 ms doubling to 2 s, 7 waits.
    assert!(took >= Duration::from_secs(5), "no backoff: gave up after {took:?}");
    assert!(log.lines().any(|l| l.contains("ERROR") && l.contains("anchor")), "{log}");
    assert!(log.lines().any(|l| l.contains("daemon exiting") && l.contains("anchor-failed")), "{log}");
    // The watched session is left alone.
    assert_eq!(s.session_names(), ["a"]);
}

#[test]
fn daemon_exits_1_when_its_anchor_keeps_dying() {
    let s = TmuxServer::new();
    s.tmux_ok(&["new-session", "-d", "-s", "a", ";", "set-option", "@ctb-watched", "1"]);
    break_anchors(&s);
    // The daemon in the foreground (as `daemon start` runs it, minus the hold).
    let t0 = Instant::now();
    let mut child = s.ctb().args(["daemon", "run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let stderr = line_reader(child.stderr.take().unwrap());
    let _leftover = Leftovers { server: &s, pids: vec![pid] };
    let gone = wait_pid(pid, Duration::from_secs(30));
    let took = t0.elapsed();
    assert!(gone, "the daemon is still re-anchoring after {took:?}");
    let code = child.wait().unwrap().code();
    // Its stderr is closed: every line is there.
    let log = stderr.iter().collect::<Vec<_>>().join("\n");
    let made = anchors_named(&log, pid);
    eprintln!("exit {code:?} after {took:?}, {made} anchors");
    assert_eq!(code, Some(1), "{log}");
    assert!(made <= MAX_ANCHOR_FAILURES, "{made} anchors:\n{log}");
    assert!(log.contains("anchor-failed"), "{log}");
}

#[test]
fn watch_ends_with_anchor_failed() {
    let s = TmuxServer::new();
    s.ok(&["session-create", "a", "--no-watch"]);
    break_anchors(&s);
    let mut w = s.watch(&["a"]);
    let end = w.wait_for_within("watch-end", Duration::from_secs(30), |v| v["event"] == "watch-end");
    assert_eq!(end["reason"], "anchor-failed", "{end}");
    w.wait_exit();
    assert_eq!(s.session_names(), ["a"]);
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

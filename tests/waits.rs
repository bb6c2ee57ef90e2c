//! Waits and streams (issue 11) against a real tmux: every outcome, no
//! gaps, partial lines, escapes, `run` (exact statuses, clean output,
//! fake markers, back-to-back runs, dash and bash), `pane-exec
//! --wait-for`, lossless `pane-stream --raw`, `pane-tail`, nothing left
//! behind after SIGKILL, a user's `pipe-pane` kept, bad input, and many
//! waiters under session churn. Each test has its own tmux server.
//!
//! Shells in panes are `bash --norc --noprofile` or `sh` (dash): the
//! machine's login rc files are slow. Synchronisation is on conditions
//! with deadlines (ctb's own replies, `run`, tmux channels, the relay's
//! subscriber sockets in /proc), never a bare sleep.
//!
//! Typed commands never contain the pattern they make the pane print
//! (`'RE''ADY'` prints `READY`): the terminal echoes typed text, and a
//! pattern in the echo would match before the output.

mod util;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{line_reader, parse_line, proc_args, TmuxServer};

const BASH: &[&str] = &["bash", "--norc", "--noprofile"];

/// A finished ctb command: its reply, exit code and wall time.
struct Done {
    v: Value,
    code: i32,
    took: Duration,
}

fn ctb(s: &TmuxServer, args: &[&str]) -> Done {
    let t = Instant::now();
    let out = s.ctb().args(args).output().unwrap();
    let took = t.elapsed();
    Done { v: parse_line(&out), code: out.status.code().unwrap_or(-1), took }
}

/// A ctb command in the background, stdout piped.
fn spawn(s: &TmuxServer, args: &[&str]) -> Child {
    s.ctb().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits (deadline) for a spawned one-shot ctb and parses its reply.
fn finish(mut c: Child, within: Duration) -> Done {
    let t = Instant::now();
    if !util::wait_pid(c.id(), within) {
        let _ = c.kill();
        let _ = c.wait();
        panic!("ctb did not finish within {within:?}");
    }
    let took = t.elapsed();
    let out = c.wait_with_output().unwrap();
    Done { v: parse_line(&out), code: out.status.code().unwrap_or(-1), took }
}

/// A server with session `s` whose first pane (`%0`) runs bash without rc files.
fn setup() -> TmuxServer {
    let s = TmuxServer::new();
    let mut args = vec!["session-create", "--no-watch", "s", "--"];
    args.extend_from_slice(BASH);
    s.ok(&args);
    s
}

/// As [`setup`], with every relay of the server slow to start by `ms`
/// (fault injection: the server, and so the relays it starts, inherit
/// `CTB_TEST_RELAY_START_DELAY_MS`).
fn setup_slow_relays(ms: u32) -> TmuxServer {
    let s = TmuxServer::new();
    let mut c = s.ctb();
    c.env("CTB_TEST_RELAY_START_DELAY_MS", ms.to_string()).args(["session-create", "--no-watch", "s", "--"]).args(BASH);
    assert!(c.output().unwrap().status.success());
    s
}

/// A new pane in session `s` running `cmd`; its id.
fn pane(s: &TmuxServer, label: &str, cmd: &[&str]) -> String {
    let mut args = vec!["pane-create", "s", label, "--"];
    args.extend_from_slice(cmd);
    s.ok(&args)["pane_id"].as_str().unwrap().to_owned()
}

/// A new pane in session `s` running `sh -c "PRE; SIGNAL; REST"`, returned
/// once PRE has run: PRE (e.g. `stty -echo`) is in force before the test
/// types into the pane (keys that arrive first would be echoed), and its
/// output has been written to the pane. The pane signals a tmux channel.
fn pane_after(s: &TmuxServer, label: &str, pre: &str, rest: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let ch = format!("ready-{label}-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let p = pane(s, label, &["sh", "-c", &format!("{pre}; tmux wait-for -S {ch}; {rest}")]);
    s.wait_channel(&ch, Duration::from_secs(10));
    p
}

/// `run` that must succeed with exit status 0; its output.
fn run_ok(s: &TmuxServer, p: &str, cmd: &str) -> String {
    let d = ctb(s, &["run", "s", p, "--timeout", "20", "--", cmd]);
    assert_eq!(d.code, 0, "run {cmd:?}: {}", d.v);
    assert_eq!(d.v["exit_status"], 0, "run {cmd:?}: {}", d.v);
    d.v["output"].as_str().unwrap_or_default().to_owned()
}

/// Relay processes of this server (argv holds `pane-relay` and our socket).
fn relays(s: &TmuxServer) -> Vec<u32> {
    s.relays()
}

/// The relay of pane `%N`, if one runs.
fn relay_of(s: &TmuxServer, p: &str) -> Option<u32> {
    let n = p.trim_start_matches('%');
    relays(s).into_iter().find(|&r| proc_args(r).windows(2).any(|w| w[0] == "--pane" && w[1] == n))
}

/// Sockets a relay holds: its tmux pipe, its listener and tokio's internal
/// ones make 5 (seen in /proc), plus one per subscriber.
const RELAY_BASE_SOCKETS: usize = 5;

fn subscribers(relay: u32) -> usize {
    util::fd_kinds(relay).iter().filter(|k| *k == "socket").count().saturating_sub(RELAY_BASE_SOCKETS)
}

/// Bounded wait on a condition with no event to block on (small steps).
fn until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < end, "timed out ({within:?}) waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until pane `p` has a relay with at least `n` subscribers.
fn subscribed(s: &TmuxServer, p: &str, n: usize) {
    until(&format!("{n} subscriber(s) on {p}"), Duration::from_secs(10), || {
        relay_of(s, p).is_some_and(|r| subscribers(r) >= n)
    });
}

/// Spawns a waiter on pane `p` as the first subscriber of a fresh relay
/// (any earlier relay of the pane gone first: a leaving relay still has
/// its sockets and would pass for subscribed), and waits until subscribed.
fn spawn_sub(s: &TmuxServer, p: &str, args: &[&str]) -> Child {
    until(&format!("earlier relay of {p} gone"), Duration::from_secs(2), || relay_of(s, p).is_none());
    let c = spawn(s, args);
    subscribed(s, p, 1);
    c
}

fn pane_pipe(s: &TmuxServer, p: &str) -> String {
    s.tmux_ok(&["display-message", "-p", "-t", p, "#{pane_pipe}"])
}

/// Types `text` + Enter into pane `p` (plain tmux, no ctb involved).
fn type_line(s: &TmuxServer, p: &str, text: &str) {
    s.tmux_ok(&["send-keys", "-t", p, "-l", text]);
    s.tmux_ok(&["send-keys", "-t", p, "Enter"]);
}

/// Nothing of ctb is left on this server: no relay, no pipe on `panes`.
/// (After a SIGKILL the issue's promise is 1 s; after a wait that ended
/// normally the relay lingers 250 ms then runs a tmux client, which a
/// loaded machine may start late: 3 s there.)
fn nothing_left(s: &TmuxServer, panes: &[&str], within: Duration) {
    until("no relay left", within, || relays(s).is_empty());
    for p in panes {
        assert_eq!(pane_pipe(s, p), "0", "pane {p} still piped");
    }
}

fn assert_outcome(d: &Done, outcome: &str, code: i32) {
    assert_eq!(d.v["outcome"], outcome, "{}", d.v);
    assert_eq!(d.code, code, "{}", d.v);
}

// ---------------------------------------------------------------- outcomes

#[test]
fn matched_from_screen_and_from_stream() {
    let s = setup();
    run_ok(&s, "%0", "printf 'SCR''EEN-1\\n'");
    let d = ctb(&s, &["wait-for", "s", "%0", "SCREEN-1", "--timeout", "5"]);
    assert_outcome(&d, "matched", 0);
    assert_eq!(d.v["source"], "screen");
    assert_eq!(d.v["output"], "SCREEN-1");
    assert_eq!(d.v["match"], "SCREEN-1");

    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "STR[E]AM-[0-9]+", "--timeout", "10"]);
    type_line(&s, "%0", "printf 'STR''EAM-42 tail\\n'");
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "matched", 0);
    assert_eq!(d.v["source"], "stream");
    assert_eq!(d.v["output"], "STREAM-42 tail");
    assert_eq!(d.v["match"], "STREAM-42");
    assert!(d.v["elapsed_ms"].is_u64());
    // The bridge's spelling finds it too.
    let d = ctb(&s, &["pane-watch-timeout", "s", "%0", "STREAM-42", "5"]);
    assert_outcome(&d, "matched", 0);
    nothing_left(&s, &["%0"], Duration::from_secs(3));
}

#[test]
fn stop_wins_over_match_in_the_same_output() {
    let s = setup();
    // Both on one line.
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "READY", "--stop", "FAIL", "--timeout", "10"]);
    type_line(&s, "%0", "printf 'RE''ADY and FA''IL\\n'");
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "stopped", 1);
    assert_eq!(d.v["match"], "FAIL");
    assert!(d.v["error"].as_str().unwrap().contains("stop"), "{}", d.v);
    // On two lines of one write (match first, stop second). One write is
    // not enough: with `opost` the tty hands each `\n` (as `\r\n`) to the
    // pty on its own, and tmux may read "GOOD\r\n" before "BAD\r\n" under
    // load (a legitimate match). `stty -opost` makes `cat`'s one write one
    // pty write; the file already holds the `\r\n` the tty would add.
    let two = s.runtime.join("two-lines.txt");
    std::fs::write(&two, "GOOD\r\nBAD\r\n").unwrap();
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "GOOD", "--new", "--stop", "BAD", "--timeout", "10"]);
    type_line(&s, "%0", &format!("stty -opost; cat '{}'; stty opost", two.display()));
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "stopped", 1);
    assert_eq!(d.v["output"], "BAD");
    // Already on screen: both lines there, stop still wins.
    let d = ctb(&s, &["wait-for", "s", "%0", "GOOD", "--stop", "BAD", "--timeout", "5"]);
    assert_outcome(&d, "stopped", 1);
    assert_eq!(d.v["source"], "screen");
}

#[test]
fn quiet_is_timed_from_the_last_output() {
    let s = setup();
    // An idle pane: quiet after ~300 ms.
    let d = ctb(&s, &["wait-for", "s", "%0", "NEVER-SEEN", "--new", "--quiet", "300", "--timeout", "10"]);
    assert_outcome(&d, "quiet", 0);
    let ms = d.v["elapsed_ms"].as_u64().unwrap();
    // (The upper bound only tells "answered by --quiet" from "hung": a
    // loaded machine may start ctb and tmux late.)
    assert!((300..5000).contains(&ms), "{}", d.v);
    // A pane printing for ~800 ms: quiet only 300 ms after it stops.
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "NEVER-SEEN", "--new", "--quiet", "300", "--timeout", "10"]);
    let t = Instant::now();
    type_line(&s, "%0", "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.1; done");
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "quiet", 0);
    assert!(t.elapsed() >= Duration::from_millis(1000), "quiet too early: {:?} {}", t.elapsed(), d.v);
}

/// The quiet clock starts once the relay has taken the wait in: a relay
/// slow to start (fault-injected, 1.5 s) must not make a pane printing
/// every 50 ms look quiet (it did: "quiet" one --quiet span after start).
#[test]
fn quiet_waits_for_a_slow_relay() {
    let s = setup_slow_relays(1500);
    type_line(&s, "%0", "for i in $(seq 60); do echo tick; sleep 0.05; done; echo LOOP''-END");
    let d = ctb(&s, &["wait-for", "s", "%0", "NEVER-SEEN", "--new", "--quiet", "1000", "--timeout", "30"]);
    assert_outcome(&d, "quiet", 0);
    let screen = s.tmux_ok(&["capture-pane", "-p", "-t", "%0"]);
    assert!(screen.lines().any(|l| l == "LOOP-END"), "quiet while the pane still printed: {}\n{screen}", d.v);
}

/// A pane process that exits while its relay is still starting (slow,
/// fault-injected): `--quiet` does not take the dead pane for a quiet one.
#[test]
fn quiet_on_a_pane_dying_while_its_relay_starts_is_exited() {
    let s = setup_slow_relays(1500);
    let p = pane(&s, "dies", &["sh", "-c", "sleep 0.5; echo bye; exit 3"]);
    let d = ctb(&s, &["wait-for", "s", &p, "NEVER-SEEN", "--new", "--quiet", "500", "--timeout", "20"]);
    assert_outcome(&d, "exited", 1);
    assert_eq!(d.v["exit_status"], 3, "{}", d.v);
}

/// `pane-exec` that ends the pane's shell (a kept pane): the process is
/// gone, maybe reaped, before the wait watches it; the wait ends anyway.
#[test]
fn pane_exec_that_ends_a_kept_panes_shell() {
    let s = setup();
    for round in 0..5 {
        let p = pane(&s, &format!("ends{round}"), BASH);
        let d = ctb(&s, &["pane-exec", "s", &p, "exit 3", "--wait-for", "NEVER-SEEN", "--timeout", "20"]);
        assert_outcome(&d, "exited", 1);
        if !(d.v["exit_status"].is_null() && tmux_is_3_3()) {
            assert_eq!(d.v["exit_status"], 3, "round {round}: {}", d.v);
        }
        assert!(d.took < Duration::from_secs(9), "round {round}: {:?}", d.took); // not the timeout
        s.tmux_ok(&["kill-pane", "-t", &p]);
    }
}

#[test]
fn pane_wait_reports_exit_status_and_signal() {
    let s = setup();
    // Waiting while it runs.
    let p = pane(&s, "seven", &["sh", "-c", "read x; exit 7"]);
    let w = spawn_sub(&s, &p, &["pane-wait", "s", &p, "--timeout", "10"]);
    type_line(&s, &p, "go");
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "exited", 0);
    assert_eq!(d.v["exit_status"], 7, "{}", d.v);
    assert_eq!(d.v["signal"], Value::Null, "{}", d.v);
    assert_eq!(d.v["ended"], "process");
    // Already dead: what tmux recorded (tmux 3.3a loses it about one time
    // in three; the first pane-wait read it from the process itself).
    let d = ctb(&s, &["pane-wait", "s", &p]);
    assert_outcome(&d, "exited", 0);
    if !(d.v["exit_status"].is_null() && tmux_is_3_3()) {
        assert_eq!(d.v["exit_status"], 7);
    }
    // Killed by a signal: `signal`, not 128+N.
    let p = pane(&s, "killed", &["sh", "-c", "read x; kill -KILL $$"]);
    let w = spawn_sub(&s, &p, &["pane-wait", "s", &p, "--timeout", "10"]);
    type_line(&s, &p, "go");
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "exited", 0);
    assert_eq!(d.v["signal"], 9, "{}", d.v);
    assert_ne!(d.v["exit_status"], 137, "{}", d.v);
    // A shell pane: pane-wait returns when its foreground command ends.
    type_line(&s, "%0", "sleep 2");
    until("sleep in the foreground", Duration::from_secs(5), || {
        s.tmux_ok(&["display-message", "-p", "-t", "%0", "#{pane_current_command}"]) == "sleep"
    });
    let d = ctb(&s, &["pane-wait", "s", "%0", "--timeout", "10"]);
    assert_outcome(&d, "exited", 0);
    assert_eq!(d.v["ended"], "foreground", "{}", d.v);
    nothing_left(&s, &["%0"], Duration::from_secs(3));
}

/// Whether the tmux under test is 3.3 (3.3a).
fn tmux_is_3_3() -> bool {
    let v = std::process::Command::new(std::env::var_os("CTB_TMUX").unwrap_or_else(|| "tmux".into()))
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    v.starts_with("tmux 3.3")
}

#[test]
fn pane_wait_right_after_exit_has_the_status() {
    let s = setup();
    for i in 0..60 {
        let p = pane(&s, &format!("p{i}"), &["sh", "-c", "read x; exit 3"]);
        s.tmux_ok(&["send-keys", "-t", &p, "x", "Enter"]);
        let d = ctb(&s, &["pane-wait", "s", &p, "--timeout", "5"]);
        assert_outcome(&d, "exited", 0);
        if d.v["exit_status"].is_null() && tmux_is_3_3() {
            // tmux 3.3a loses a dead pane's status about one time in three
            // (3.4 and later never): nothing left to read once it reaped it.
            continue;
        }
        assert_eq!(d.v["exit_status"], 3, "round {i}: {}", d.v);
        s.tmux_ok(&["kill-pane", "-t", &p]);
    }
}

#[test]
fn timeout_exits_124() {
    let s = setup();
    let d = ctb(&s, &["wait-for", "s", "%0", "NOT-THERE", "--timeout", "0.3"]);
    assert_outcome(&d, "timeout", 124);
    assert_eq!(d.v["status"], "error");
    assert!(d.v["error"].as_str().unwrap().starts_with("timeout"), "{}", d.v);
    assert!(d.took >= Duration::from_millis(300), "{:?}", d.took);
    // (Upper bounds here and below tell an answer from a hang, with room
    // for a loaded machine.)
    assert!(d.took < Duration::from_secs(9), "{:?}", d.took);
    let d = ctb(&s, &["wait-for", "s", "%0", "NOT-THERE", "--timeout", "0"]);
    assert_outcome(&d, "timeout", 124);
    assert!(d.v["error"].as_str().unwrap().starts_with("timeout"), "{}", d.v);
    assert!(d.took < Duration::from_secs(9), "{:?}", d.took);
    let d = ctb(&s, &["pane-watch-timeout", "s", "%0", "NOT-THERE", "0.2"]);
    assert_outcome(&d, "timeout", 124);
    let d = ctb(&s, &["pane-exec", "s", "%0", "true", "--wait-for", "NOT-THERE", "--timeout", "0.2"]);
    assert_outcome(&d, "timeout", 124);
    let d = ctb(&s, &["pane-wait", "s", "%0", "--timeout", "0"]);
    // An idle shell: nothing runs, so it is not a timeout.
    assert_outcome(&d, "exited", 0);
    type_line(&s, "%0", "sleep 5");
    until("sleep in the foreground", Duration::from_secs(5), || {
        s.tmux_ok(&["display-message", "-p", "-t", "%0", "#{pane_current_command}"]) == "sleep"
    });
    let d = ctb(&s, &["pane-wait", "s", "%0", "--timeout", "0.2"]);
    assert_outcome(&d, "timeout", 124);
    s.tmux_ok(&["send-keys", "-t", "%0", "C-c"]);
    nothing_left(&s, &["%0"], Duration::from_secs(3));
}

/// Kills pane `p` (`kill-pane`) or its session (`kill-session`) during a
/// wait on it; the waiter's reply and how long after the kill command
/// returned it exited.
fn kill_during_wait(session_kill: bool) -> Done {
    let s = setup();
    let (sess, p) = if session_kill {
        let mut a = vec!["session-create", "--no-watch", "other", "--"];
        a.extend_from_slice(BASH);
        ("other", s.ok(&a)["pane_id"].as_str().unwrap().to_owned())
    } else {
        ("s", pane(&s, "victim", BASH))
    };
    let w = spawn_sub(&s, &p, &["wait-for", sess, &p, "NEVER", "--timeout", "20"]);
    if session_kill {
        s.tmux_ok(&["kill-session", "-t", "other"]);
    } else {
        s.tmux_ok(&["kill-pane", "-t", &p]);
    }
    let d = finish(w, Duration::from_secs(10));
    assert!(s.has_session("=s"));
    until("no relay left", Duration::from_secs(3), || relays(&s).is_empty());
    d
}

#[test]
fn pane_killed_during_wait_exits_1_within_100ms() {
    let d = kill_during_wait(false);
    assert_eq!(d.code, 1, "{}", d.v);
    assert_eq!(d.v["status"], "error");
    // From the kill, not from the wait's 20 s timeout. (The issue's
    // 100 ms is a speed, measured by hand and in the notes: asserted
    // here it would fail on a loaded machine.)
    eprintln!("pane killed: the wait exited {:?} after the kill", d.took);
    assert!(d.took <= Duration::from_secs(5), "{:?} after the kill: {}", d.took, d.v);
}

#[test]
fn pane_killed_during_wait_says_pane_gone() {
    let d = kill_during_wait(false);
    assert_outcome(&d, "pane_gone", 1);
    assert!(d.v["error"].as_str().unwrap().contains("pane is gone"), "{}", d.v);
}

#[test]
fn session_killed_during_wait_exits_1_within_100ms() {
    let d = kill_during_wait(true);
    assert_eq!(d.code, 1, "{}", d.v);
    assert_eq!(d.v["status"], "error");
    // From the kill, not from the wait's 20 s timeout. (The issue's
    // 100 ms is a speed, measured by hand and in the notes: asserted
    // here it would fail on a loaded machine.)
    eprintln!("session killed: the wait exited {:?} after the kill", d.took);
    assert!(d.took <= Duration::from_secs(5), "{:?} after the kill: {}", d.took, d.v);
}

#[test]
fn session_killed_during_wait_says_session_gone() {
    let d = kill_during_wait(true);
    assert_outcome(&d, "session_gone", 1);
    assert!(d.v["error"].as_str().unwrap().contains("session"), "{}", d.v);
}

#[test]
fn server_gone_when_the_server_is_killed() {
    let s = setup();
    let w = spawn(&s, &["wait-for", "s", "%0", "NEVER", "--timeout", "20"]);
    let st = spawn(&s, &["pane-stream", "s", "%0"]);
    subscribed(&s, "%0", 2);
    s.tmux_ok(&["kill-server"]);
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "server_gone", 1);
    assert!(d.took <= Duration::from_secs(5), "{:?}", d.took);
    assert!(d.v["error"].as_str().unwrap().contains("server"), "{}", d.v);
    // The stream ends too (the pane closed).
    let d = finish(st, Duration::from_secs(10));
    assert_eq!(d.code, 0, "{}", d.v);
    until("no relay left", Duration::from_secs(3), || relays(&s).is_empty());
}

// ------------------------------------------------------------------ no gaps

#[test]
fn no_gap_pattern_followed_by_5000_lines() {
    let s = setup();
    s.tmux_ok(&["set", "-g", "history-limit", "100"]);
    let p = pane(&s, "small", BASH);
    assert_eq!(s.tmux_ok(&["display-message", "-p", "-t", &p, "#{history_limit}"]), "100");
    for new in [false, true] {
        let tag = if new { "NEW" } else { "DEF" };
        let mut args = vec!["wait-for", "s", &p, "", "--timeout", "20"];
        let pat = format!("NEEDLE-{tag}-[0-9]+");
        args[3] = &pat;
        if new {
            args.push("--new");
        }
        let w = spawn_sub(&s, &p, &args);
        type_line(&s, &p, &format!("printf 'NEE''DLE-{tag}-%s\\n' 77; seq 1 5000"));
        let d = finish(w, Duration::from_secs(20));
        assert_outcome(&d, "matched", 0);
        assert_eq!(d.v["output"], format!("NEEDLE-{tag}-77"));
        assert_eq!(d.v["source"], "stream");
        // And it is gone from the screen and the history by now.
        run_ok(&s, &p, "seq 1 5000 >/dev/null");
        let cap = s.tmux_ok(&["capture-pane", "-p", "-t", &p, "-S", "-", "-E", "-"]);
        assert!(!cap.contains(&format!("NEEDLE-{tag}-77")), "still in history: the test proves nothing");
    }
}

#[test]
fn new_ignores_the_screen_default_finds_it() {
    let s = setup();
    run_ok(&s, "%0", "printf 'OLD''LINE\\n'");
    let d = ctb(&s, &["wait-for", "s", "%0", "OLDLINE", "--new", "--timeout", "0.5"]);
    assert_outcome(&d, "timeout", 124);
    let d = ctb(&s, &["wait-for", "s", "%0", "OLDLINE", "--timeout", "5"]);
    assert_outcome(&d, "matched", 0);
    assert_eq!(d.v["source"], "screen");
    // --lines: history beyond N lines is not searched.
    run_ok(&s, "%0", "seq 1 200");
    let d = ctb(&s, &["wait-for", "s", "%0", "^OLDLINE$", "--lines", "10", "--timeout", "0.3"]);
    assert_outcome(&d, "timeout", 124);
    let d = ctb(&s, &["wait-for", "s", "%0", "^OLDLINE$", "--lines", "1000", "--timeout", "5"]);
    assert_outcome(&d, "matched", 0);
}

#[test]
fn partial_line_prompt_matches() {
    let s = setup();
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "^Password: $", "--new", "--timeout", "10"]);
    type_line(&s, "%0", "printf 'Pass''word: '; read -r x");
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "matched", 0);
    assert_eq!(d.v["output"], "Password: ");
    // And from the screen (still waiting at the prompt).
    let d = ctb(&s, &["wait-for", "s", "%0", "^Password: $", "--timeout", "5"]);
    assert_outcome(&d, "matched", 0);
    type_line(&s, "%0", "x");
}

#[test]
fn escapes_are_removed_before_matching() {
    let s = setup();
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "RED done", "--new", "--timeout", "10"]);
    type_line(&s, "%0", "printf '\\033[31mRED\\033[0m done\\n'");
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "matched", 0);
    assert_eq!(d.v["output"], "RED done");
    // Screen source too, and cursor moves / titles.
    let d = ctb(&s, &["wait-for", "s", "%0", "^RED done$", "--timeout", "5"]);
    assert_outcome(&d, "matched", 0);
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "^50% ok$", "--new", "--timeout", "10"]);
    type_line(&s, "%0", "printf '\\033]0;title\\00710%%\\r50%% \\033[1mok\\033[K\\n'");
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "matched", 0);
}

// ---------------------------------------------------------------------- run

fn run(s: &TmuxServer, p: &str, cmd: &str) -> Done {
    ctb(s, &["run", "s", p, "--timeout", "20", "--", cmd])
}

#[test]
fn run_exact_statuses_and_clean_output() {
    let s = setup();
    for (cmd, st) in [("true", 0), ("false", 1), ("(exit 42)", 42), ("sh -c 'exit 255'", 255)] {
        let d = run(&s, "%0", cmd);
        assert_outcome(&d, "exited", 0);
        assert_eq!(d.v["exit_status"], st, "{cmd}: {}", d.v);
        assert_eq!(d.v["output"], "", "{cmd}: {}", d.v);
    }
    let d = run(&s, "%0", "echo hello; echo world");
    assert_eq!(d.v["output"], "hello\nworld", "{}", d.v);
    assert_eq!(d.v["total_lines"], 2);
    assert_eq!(d.v["truncated"], false);
    let out = d.v["output"].as_str().unwrap();
    assert!(!out.contains("7769") && !out.contains("printf") && !out.contains('$'), "{out:?}");
    // The bridge's spelling.
    let d = ctb(&s, &["pane-exec-timeout", "s", "%0", "10", "echo", "bridge"]);
    assert_outcome(&d, "exited", 0);
    assert_eq!(d.v["output"], "bridge");
}

#[test]
fn run_seq_100000_total_lines_and_tail_exact() {
    let s = setup();
    let d = run(&s, "%0", "seq 1 100000");
    assert_outcome(&d, "exited", 0);
    assert_eq!(d.v["exit_status"], 0);
    assert_eq!(d.v["total_lines"], 100000, "{}", d.v["total_lines"]);
    assert_eq!(d.v["truncated"], true);
    assert_eq!(d.v["dropped_bytes"], 0);
    let out = d.v["output"].as_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let first = 100001 - lines.len();
    let want: Vec<String> = (first..=100000).map(|i| i.to_string()).collect();
    assert_eq!(lines, want, "the last lines are not exact");
    assert!(lines.len() >= 1000, "only {} lines kept", lines.len());
}

#[test]
fn run_command_shapes() {
    let s = setup();
    let cases: &[(&str, &str, i32)] = &[
        ("echo a # a comment", "a", 0),
        ("echo b;", "b", 0),
        ("echo c; false;", "c", 1),
        ("cat <<EOF\nline1\n  line2\nEOF", "line1\n  line2", 0),
        ("cat <<'EOF'\n$HOME\nEOF", "$HOME", 0),
        ("echo one\necho two\n(exit 3)", "one\ntwo", 3),
        ("if true; then\n  echo yes\nfi", "yes", 0),
        ("printf 'no newline'", "no newline", 0),
        ("echo 'a}b'; echo \"{ x\"", "a}b\n{ x", 0),
    ];
    for (cmd, out, st) in cases {
        let d = run(&s, "%0", cmd);
        assert_outcome(&d, "exited", 0);
        assert_eq!(d.v["exit_status"], *st, "{cmd:?}: {}", d.v);
        assert_eq!(d.v["output"], *out, "{cmd:?}: {}", d.v);
    }
    // A trailing `&`: the run completes; the next one is clean.
    let d = run(&s, "%0", "sleep 0.2 &");
    assert_outcome(&d, "exited", 0);
    assert_eq!(d.v["exit_status"], 0, "{}", d.v);
    // (bash reports the finished job before its next prompt, after the
    // next run's end marker: not in its output.)
    // bash may print its `[1]+ Done` job notice inside the next command's
    // output (it is the shell's own output while that command runs).
    let d = run(&s, "%0", "sleep 0.4; echo next");
    assert_eq!(d.v["exit_status"], 0, "{}", d.v);
    assert_eq!(d.v["output"].as_str().unwrap().lines().last(), Some("next"), "{}", d.v);
    let d = run(&s, "%0", "echo bg & wait");
    assert_eq!(d.v["exit_status"], 0, "{}", d.v);
    // A nested ctb run (into another pane) completes.
    let p = pane(&s, "inner", BASH);
    let ctb_bin = util::ctb_path();
    let nested = format!(
        "XDG_RUNTIME_DIR={} {} -L {} run s {p} -- 'echo nested' | grep -c '\"exit_status\":0'",
        s.runtime.display(),
        ctb_bin.display(),
        s.label
    );
    let d = run(&s, "%0", &nested);
    assert_eq!(d.v["output"], "1", "{}", d.v);
}

#[test]
fn run_fake_markers_do_not_end_it() {
    let s = setup();
    let cmd = "printf '\\033]7769;ctb;E;0000;0\\007'; echo '7769;ctb;E'; \
               printf '\\033]7769;ctb;S;0000\\007'; echo after; (exit 5)";
    let d = run(&s, "%0", cmd);
    assert_outcome(&d, "exited", 0);
    assert_eq!(d.v["exit_status"], 5, "{}", d.v);
    assert_eq!(d.v["output"], "7769;ctb;E\nafter", "{}", d.v);
    // A marker with a guessed-at nonce shape and a status, echoed by the
    // command itself as text.
    let d = run(&s, "%0", "echo ']7769;ctb;E;00000000000000000000000000000000;0'; sleep 0.1; echo tail; false");
    assert_eq!(d.v["exit_status"], 1, "{}", d.v);
    assert_eq!(d.v["output"], "]7769;ctb;E;00000000000000000000000000000000;0\ntail", "{}", d.v);
}

fn back_to_back(n: usize) {
    let s = setup();
    for i in 0..n {
        let st = i % 3; // 0, 1, 2
        let cmd = if i % 10 == 0 {
            format!("printf '\\033]7769;ctb;E;x;9\\007'; echo 'r{i} 7769;ctb;E'; (exit {st})")
        } else {
            format!("echo r{i}; (exit {st})")
        };
        let d = run(&s, "%0", &cmd);
        assert_eq!(d.code, 0, "run {i}: {}", d.v);
        assert_eq!(d.v["exit_status"], st as u64, "run {i}: {}", d.v);
        let want = if i % 10 == 0 { format!("r{i} 7769;ctb;E") } else { format!("r{i}") };
        assert_eq!(d.v["output"], want, "run {i}: {}", d.v);
    }
    nothing_left(&s, &["%0"], Duration::from_secs(3));
}

#[test]
fn run_200_back_to_back() {
    back_to_back(200);
}

#[test]
#[ignore = "slow: the issue's 1000 runs (run with --ignored)"]
fn run_1000_back_to_back() {
    back_to_back(1000);
}

#[test]
fn run_in_dash_and_bash() {
    let s = setup();
    let dash = pane(&s, "dash", &["sh"]);
    let bash = pane(&s, "bash", BASH);
    for p in [&dash, &bash] {
        for (cmd, out, st) in [
            ("echo x; (exit 42)", "x", 42),
            ("cat <<EOF\nh1\nEOF", "h1", 0),
            ("echo a # c", "a", 0),
            ("echo b;", "b", 0),
            ("printf '%s\\n' 1 2 3", "1\n2\n3", 0),
        ] {
            let d = run(&s, p, cmd);
            assert_outcome(&d, "exited", 0);
            assert_eq!(d.v["exit_status"], st, "{p} {cmd:?}: {}", d.v);
            assert_eq!(d.v["output"], out, "{p} {cmd:?}: {}", d.v);
        }
    }
}

#[test]
fn run_timeout_keeps_running_interrupt_stops() {
    let s = setup();
    let d = ctb(&s, &["run", "s", "%0", "--timeout", "0.3", "--", "sleep 1; echo LA''TE"]);
    assert_outcome(&d, "timeout", 124);
    assert!(d.v["error"].as_str().unwrap().starts_with("timeout"), "{}", d.v);
    assert_eq!(d.v["interrupted"], false);
    // The command goes on and prints LATE.
    let d = ctb(&s, &["wait-for", "s", "%0", "^LATE$", "--timeout", "5"]);
    assert_outcome(&d, "matched", 0);
    let d = ctb(&s, &["run", "s", "%0", "--timeout", "0.3", "--interrupt", "--", "sleep 30; echo NO''PE"]);
    assert_outcome(&d, "timeout", 124);
    assert_eq!(d.v["interrupted"], true);
    // The sleep was interrupted: a later run works at once.
    let d = ctb(&s, &["run", "s", "%0", "--timeout", "5", "--", "echo after"]);
    assert_outcome(&d, "exited", 0);
    assert_eq!(d.v["output"], "after", "{}", d.v);
    let cap = s.tmux_ok(&["capture-pane", "-p", "-t", "%0"]);
    assert!(!cap.lines().any(|l| l == "NOPE"), "{cap}");
}

// --------------------------------------------------------------- pane-exec

#[test]
fn pane_exec_wait_for_counts_only_new_output() {
    let s = setup();
    run_ok(&s, "%0", "echo DONE");
    // The shell back at its prompt first: keys typed while it still runs
    // the command are echoed twice (README), and the pattern is in them.
    until("the prompt", Duration::from_secs(5), || {
        s.tmux_ok(&["capture-pane", "-p", "-t", "%0"]).trim_end().ends_with(['$', '#'])
    });
    let d = ctb(&s, &["pane-exec", "s", "%0", "sleep 0.3; echo DONE", "--wait-for", "DONE", "--timeout", "10"]);
    assert_outcome(&d, "matched", 0);
    assert_eq!(d.v["output"], "DONE", "{}", d.v);
    assert_eq!(d.v["source"], "stream");
    let ms = d.v["elapsed_ms"].as_u64().unwrap();
    assert!((300..5000).contains(&ms), "{}", d.v); // not the DONE already on screen
    assert!(d.took >= Duration::from_millis(300), "{:?}", d.took);
    // --stop with pane-exec.
    let d = ctb(&s, &["pane-exec", "s", "%0", "echo E''RR", "--wait-for", "OK", "--stop", "ERR", "--timeout", "10"]);
    assert_outcome(&d, "stopped", 1);
    // --quiet with pane-exec.
    let d = ctb(&s, &["pane-exec", "s", "%0", "echo hi", "--wait-for", "NEVER", "--quiet", "300", "--timeout", "10"]);
    assert_outcome(&d, "quiet", 0);
}

// ----------------------------------------------------------------- streams

#[test]
fn pane_stream_raw_is_lossless_20mb() {
    let s = setup();
    let data = s.runtime.join("data.b64");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("head -c 15000000 /dev/urandom | base64 > '{}'", data.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let want = std::fs::read(&data).unwrap();
    assert!(want.len() >= 20_000_000);
    let rest = format!("read go; cat '{}'; printf 'STREAM''END\\n'; read x", data.display());
    let p = pane_after(&s, "flood", "stty -echo -onlcr", &rest);
    let got_file = s.runtime.join("got.raw");
    let mut stream = s
        .ctb()
        .args(["pane-stream", "s", &p, "--raw"])
        .stdout(std::fs::File::create(&got_file).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    subscribed(&s, &p, 1);
    // A second subscriber tells when the end has passed through the relay.
    let w = spawn(&s, &["wait-for", "s", &p, "^STREAMEND$", "--new", "--timeout", "60"]);
    subscribed(&s, &p, 2);
    // Meanwhile another pane's wait answers quickly.
    let t0 = Instant::now();
    type_line(&s, &p, "go");
    let d = ctb(&s, &["pane-exec", "s", "%0", "echo OTH''ER", "--wait-for", "OTHER", "--timeout", "10"]);
    assert_outcome(&d, "matched", 0);
    eprintln!("other pane's pane-exec during the flood: {:?} (elapsed_ms {})", d.took, d.v["elapsed_ms"]);
    let d = finish(w, Duration::from_secs(60));
    assert_outcome(&d, "matched", 0);
    eprintln!("20 MB through the pane in {:?}", t0.elapsed());
    s.tmux_ok(&["kill-pane", "-t", &p]);
    assert!(util::wait_pid(stream.id(), Duration::from_secs(10)), "stream did not end");
    let st = stream.wait().unwrap();
    let mut err = String::new();
    stream.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(st.success(), "pane-stream: {err}");
    let got = std::fs::read(&got_file).unwrap();
    let got: Vec<u8> = strip_cr(&got);
    let end = b"STREAMEND\n";
    assert!(
        got.ends_with(end),
        "stream does not end with the trailer: {:?}",
        String::from_utf8_lossy(&got[got.len().saturating_sub(200)..])
    );
    let body = &got[..got.len() - end.len()];
    assert_eq!(body.len(), want.len(), "byte count differs");
    assert!(body == want.as_slice(), "bytes differ at {:?}", body.iter().zip(&want).position(|(a, b)| a != b));
    assert!(err.contains("pane-closed"), "{err}");
}

#[test]
fn another_panes_wait_during_a_flood() {
    let s = setup();
    let data = s.runtime.join("flood.b64");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("head -c 3000000 /dev/urandom | base64 > '{}'", data.display()))
        .status()
        .unwrap();
    assert!(st.success());
    // A flood with no end (the file again and again): the other pane's
    // wait is answered while it runs, however slow the machine.
    let rest = format!("read go; while :; do cat '{}'; done", data.display());
    let p = pane_after(&s, "flood", "stty -echo", &rest);
    let got_file = s.runtime.join("got.txt");
    let mut stream = s
        .ctb()
        .args(["pane-stream", "s", &p])
        .stdout(std::fs::File::create(&got_file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    subscribed(&s, &p, 1);
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "^OTHER$", "--new", "--timeout", "30"]);
    type_line(&s, &p, "go");
    let streamed = || std::fs::metadata(&got_file).map(|m| m.len()).unwrap_or(0);
    until("the flood under way", Duration::from_secs(10), || streamed() > 2_000_000);
    let t = Instant::now();
    s.tmux_ok(&["send-keys", "-t", "%0", "echo OTH''ER", "Enter"]);
    let sent = t.elapsed();
    let d = finish(w, Duration::from_secs(30));
    eprintln!("other pane during the flood: send-keys took {sent:?}, wait-for returned {:?} after it", d.took);
    // Answered during the flood: another pane's flood holds nothing up.
    // (How fast is measured in `make bench`, bench/waits.sh: a timed
    // assertion here would fail on a loaded machine, where tmux's own
    // send-keys took 84 ms.)
    assert_outcome(&d, "matched", 0);
    let at_answer = streamed();
    until("the flood still streaming", Duration::from_secs(10), || streamed() > at_answer + 1_000_000);
    s.tmux_ok(&["kill-pane", "-t", &p]);
    let _ = stream.kill();
    let _ = stream.wait();
}

fn strip_cr(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'\r' && b.get(i + 1) == Some(&b'\n') {
            continue;
        }
        v.push(c);
    }
    v
}

/// Reads numeric lines from a pane-tail until `last`; returns them.
fn tail_numbers(rx: &std::sync::mpsc::Receiver<String>, last: u64) -> (Vec<u64>, Vec<String>) {
    let end = Instant::now() + Duration::from_secs(20);
    let mut nums = Vec::new();
    let mut all = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let l = rx.recv_timeout(left).unwrap_or_else(|_| panic!("tail stopped; saw {all:?}"));
        all.push(l.clone());
        if let Ok(n) = l.trim().parse::<u64>() {
            nums.push(n);
            if n >= last {
                return (nums, all);
            }
        }
    }
}

#[test]
fn pane_tail_last_lines_then_follows() {
    let s = setup();
    run_ok(&s, "%0", "seq 1 30");
    let mut t = spawn(&s, &["pane-tail", "s", "%0", "5"]);
    let rx = line_reader(t.stdout.take().unwrap());
    // The first lines come after the subscription; the prompt, a line
    // still being written, comes once finished (with the typed command).
    let first: Vec<String> = (0..5).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    assert_eq!(first, ["26", "27", "28", "29", "30"], "{first:?}");
    type_line(&s, "%0", "seq 31 40");
    let (nums, all) = tail_numbers(&rx, 40);
    assert_eq!(nums, (31..=40).collect::<Vec<_>>(), "{all:?}");
    let _ = t.kill();
    let _ = t.wait();
    nothing_left(&s, &["%0"], Duration::from_secs(1));
}

/// A pane counting fast: `pane-tail` started mid-flow shows consecutive
/// numbers (no gap, no repeat between its capture and the stream).
fn tail_mid_flow(s: &TmuxServer, p: &str) {
    let mut t = spawn(s, &["pane-tail", "s", p, "3"]);
    let rx = line_reader(t.stdout.take().unwrap());
    let first: u64 = loop {
        let l = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        if let Ok(n) = l.trim().parse() {
            break n;
        }
    };
    let (nums, all) = tail_numbers(&rx, first + 3000);
    for (want, n) in (first + 1..).zip(&nums) {
        assert_eq!(*n, want, "gap or repeat after {}: {:?}", want - 1, &all[..all.len().min(40)]);
    }
    let _ = t.kill();
    let _ = t.wait();
}

#[test]
fn pane_tail_mid_flow_no_gap_no_repeat() {
    let s = setup();
    let p = pane(&s, "count", &["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; done"]);
    tail_mid_flow(&s, &p);
}

#[test]
fn pane_tail_joining_a_live_relay_no_gap_no_repeat() {
    let s = setup();
    // Joining a running relay, the tail's stream starts a moment before
    // its capture: the repeated lines are found in the capture (up to
    // 20000 lines of history, so more than tmux's default 2000 kept here:
    // this counter prints thousands of lines in that moment).
    s.tmux_ok(&["set-option", "-g", "history-limit", "50000"]);
    let p = pane(&s, "count", &["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; done"]);
    // Another waiter keeps the relay alive: the tail joins it.
    let w = spawn_sub(&s, &p, &["wait-for", "s", &p, "NEVER", "--new", "--timeout", "30"]);
    for _ in 0..5 {
        tail_mid_flow(&s, &p);
    }
    let mut w = w;
    let _ = w.kill();
    let _ = w.wait();
}

// -------------------------------------------------------- nothing outlives

#[test]
fn sigkill_of_a_waiter_or_stream_leaves_nothing() {
    let s = setup();
    for args in [
        vec!["wait-for", "s", "%0", "NEVER", "--timeout", "30"],
        vec!["pane-stream", "s", "%0"],
        vec!["pane-stream", "s", "%0", "--raw"],
        vec!["run", "s", "%0", "--", "sleep 0.5"],
    ] {
        let mut c = spawn_sub(&s, "%0", &args);
        c.kill().unwrap(); // SIGKILL
        let t = Instant::now();
        let _ = c.wait();
        until(&format!("no relay after SIGKILL of {args:?}"), Duration::from_secs(1), || relays(&s).is_empty());
        assert_eq!(pane_pipe(&s, "%0"), "0", "{args:?}");
        eprintln!("{:?}: relay gone {:?} after SIGKILL", args[0], t.elapsed());
        // Let a killed run's sleep finish before the next round.
        let d = ctb(&s, &["pane-wait", "s", "%0", "--timeout", "5"]);
        assert_eq!(d.code, 0, "{}", d.v);
    }
    // Two waiters, one killed: the relay stays for the other, then goes.
    let mut a = spawn(&s, &["wait-for", "s", "%0", "NEVER", "--timeout", "30"]);
    let b = spawn(&s, &["wait-for", "s", "%0", "FIN[I]SH", "--timeout", "30"]);
    subscribed(&s, "%0", 2);
    a.kill().unwrap();
    let _ = a.wait();
    until("one subscriber left", Duration::from_secs(1), || relay_of(&s, "%0").is_some_and(|r| subscribers(r) == 1));
    type_line(&s, "%0", "echo FIN''ISH");
    assert_outcome(&finish(b, Duration::from_secs(10)), "matched", 0);
    nothing_left(&s, &["%0"], Duration::from_secs(3));
    // No tmux client or session of ctb's.
    assert_eq!(s.tmux_ok(&["list-clients"]), "");
    assert_eq!(s.session_names(), vec!["s".to_owned()]);
    assert!(s.anchors().is_empty());
}

/// A waiter that leaves before the relay it started has said hello (a wait
/// answered from the screen, or one killed at once) leaves a starting
/// relay and its pipe: the next wait on the pane takes its place instead
/// of taking the pipe for a user's (CI caught this as "already has a
/// pipe-pane" right after a screen match).
#[test]
fn the_next_wait_takes_over_a_relay_whose_first_waiter_left() {
    // Relays slow to start (40 ms, as under load): the server, and so the
    // relays it starts, inherit the variable.
    let s = setup_slow_relays(40);
    run_ok(&s, "%0", "echo ON''SCREEN");
    for round in 0..15 {
        until("earlier relay gone", Duration::from_secs(2), || relays(&s).is_empty());
        let d = ctb(&s, &["wait-for", "s", "%0", "ONSCREEN", "--timeout", "5"]);
        assert_outcome(&d, "matched", 0);
        assert_eq!(d.v["source"], "screen", "{}", d.v);
        let d = ctb(&s, &["wait-for", "s", "%0", "NEVER", "--new", "--timeout", "0.2"]);
        assert_outcome(&d, "timeout", 124);
        // A waiter SIGKILLed while it starts the relay, at varied moments.
        until("earlier relay gone", Duration::from_secs(2), || relays(&s).is_empty());
        let mut c = spawn(&s, &["wait-for", "s", "%0", "NEVER", "--new", "--timeout", "30"]);
        std::thread::sleep(Duration::from_millis(4 * round)); // the moment of the kill, not a sync
        c.kill().unwrap();
        let _ = c.wait();
        // The next waiter listens, then types (`pane-exec --wait-for`): the
        // relay's socket count cannot tell it subscribed, the killed
        // waiter's connection may still be open in the relay.
        let cmd = format!("echo AFT''ER{round}");
        let d = ctb(&s, &["pane-exec", "s", "%0", &cmd, "--wait-for", &format!("^AFTER{round}$"), "--timeout", "10"]);
        assert_outcome(&d, "matched", 0);
    }
    nothing_left(&s, &["%0"], Duration::from_secs(3));
}

/// The path of pane `%n`'s relay lock (`/tmp/ctb-UID/LABEL-HASH.paneN.relay`,
/// HASH the FNV-1a of the socket path, as `runtime::server_key`). It
/// exists only while held: a holder creates it.
fn relay_lock_path(s: &TmuxServer, n: u32) -> std::path::PathBuf {
    let socket = s.socket_path();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in socket.as_os_str().as_encoded_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let label = socket.file_name().unwrap().to_string_lossy().into_owned();
    let uid = rustix::process::getuid().as_raw();
    std::path::PathBuf::from(format!("/tmp/ctb-{uid}/{label}-{h:016x}.pane{n}.relay"))
}

/// A waiter that joins a relay whose linger ended meanwhile: the relay
/// waits for the pane's lock to leave, so the waiter must not hold it
/// while it waits for the relay's hello (it did: a 5 s stall, then an
/// error instead of the wait's own timeout). Another process holding the
/// lock lines the two up.
#[test]
fn a_waiter_joining_a_relay_as_its_linger_ends_does_not_stall() {
    let s = setup();
    for _ in 0..4 {
        until("earlier relay gone", Duration::from_secs(2), || relays(&s).is_empty());
        let d = ctb(&s, &["wait-for", "s", "%0", "NEVER", "--new", "--timeout", "0.1"]);
        assert_outcome(&d, "timeout", 124);
        // The relay lingers 250 ms; the lock is held past that.
        let lock =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(relay_lock_path(&s, 0)).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let w = spawn(&s, &["wait-for", "s", "%0", "NEVER", "--new", "--timeout", "0.3"]);
        std::thread::sleep(Duration::from_millis(500)); // past the linger: the order the race needs
        drop(lock);
        let d = finish(w, Duration::from_secs(10));
        assert_outcome(&d, "timeout", 124);
        assert!(d.took < Duration::from_secs(4), "{:?}: {}", d.took, d.v); // not the 5 s stall
    }
    nothing_left(&s, &["%0"], Duration::from_secs(3));
}

/// A mark left by a killed relay: the first waiter gives its relay the
/// time a starting relay has, then removes the mark; the waiters queued
/// behind it fail at once (not 5 s each, not a lock timeout). The pipe
/// is never touched by ctb.
#[test]
fn a_killed_relays_mark_costs_one_wait_not_one_per_waiter() {
    let s = setup();
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "NEVER", "--new", "--timeout", "30"]);
    util::signal_pid(relay_of(&s, "%0").unwrap(), rustix::process::Signal::KILL);
    assert_eq!(finish(w, Duration::from_secs(10)).code, 1);
    let waiters: Vec<Child> =
        (0..3).map(|_| spawn(&s, &["wait-for", "s", "%0", "NEVER", "--new", "--timeout", "1"])).collect();
    for w in waiters {
        let d = finish(w, Duration::from_secs(20));
        assert_eq!(d.code, 1, "{}", d.v);
        assert!(d.v["error"].as_str().unwrap_or_default().contains("pipe-pane"), "{}", d.v);
        assert!(d.took < Duration::from_secs(9), "{:?}: {}", d.took, d.v); // not 5 s per waiter
    }
    assert_eq!(s.tmux_ok(&["display-message", "-p", "-t", "%0", "#{@ctb-relay}"]), "", "the stale mark is removed");
    // The pane prints: tmux drops the dead pipe, and waits work again.
    type_line(&s, "%0", "echo again");
    until("the dead pipe dropped", Duration::from_secs(5), || pane_pipe(&s, "%0") == "0");
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "AGA[I]N-2", "--new", "--timeout", "10"]);
    type_line(&s, "%0", "echo AGAIN-2");
    assert_outcome(&finish(w, Duration::from_secs(10)), "matched", 0);
}

/// A mark forged on a user's pipe that names another pane's starting
/// relay brings nothing of that pane: hello names say their server and
/// pane. The forged pane's wait fails at once, the other pane's works.
#[test]
fn a_forged_mark_naming_another_panes_relay_is_not_ours() {
    let s = setup_slow_relays(1500);
    let p1 = pane(&s, "other", BASH);
    run_ok(&s, &p1, "echo ON''SCREEN");
    // (run's relay gone first: the wait below starts its own slow relay.)
    until("run's relay gone", Duration::from_secs(3), || relays(&s).is_empty());
    // Answered from the screen: %1's relay is left starting, its mark set.
    let d = ctb(&s, &["wait-for", "s", &p1, "ONSCREEN", "--timeout", "5"]);
    assert_outcome(&d, "matched", 0);
    let m1 = s.tmux_ok(&["display-message", "-p", "-t", &p1, "#{@ctb-relay}"]);
    let hello = m1.split_once('/').unwrap().1.to_owned();
    let file = user_pipe(&s);
    s.tmux_ok(&["set-option", "-p", "-t", "%0", "@ctb-relay", &format!("%0/{hello}")]);
    let d = ctb(&s, &["wait-for", "s", "%0", "MARK", "--new", "--timeout", "5"]);
    assert_eq!(d.code, 1, "{}", d.v);
    assert!(d.v["error"].as_str().unwrap_or_default().contains("pipe-pane"), "{}", d.v);
    assert!(d.took < Duration::from_secs(4), "{:?}", d.took);
    let w = spawn(&s, &["wait-for", "s", &p1, "MA[R]K1", "--new", "--timeout", "10"]);
    subscribed(&s, &p1, 1);
    type_line(&s, &p1, "echo MARK1");
    assert_outcome(&finish(w, Duration::from_secs(10)), "matched", 0);
    assert_eq!(pane_pipe(&s, "%0"), "1", "the user's pipe is still there");
    type_line(&s, "%0", "echo USER''PIPE-OK");
    until("the user's pipe works", Duration::from_secs(5), || {
        std::fs::read_to_string(&file).unwrap_or_default().contains("USERPIPE-OK")
    });
}

// ----------------------------------------------------- a user's pipe-pane

/// Session `s` with a user's `pipe-pane` on `%0` writing to a file; the file.
fn user_pipe(s: &TmuxServer) -> std::path::PathBuf {
    let file = s.runtime.join("user-pipe.txt");
    s.tmux_ok(&["pipe-pane", "-t", "%0", &format!("cat > '{}'", file.display())]);
    assert_eq!(pane_pipe(s, "%0"), "1");
    file
}

#[test]
fn a_users_pipe_pane_makes_a_wait_fail() {
    let s = setup();
    user_pipe(&s);
    let d = ctb(&s, &["wait-for", "s", "%0", "X", "--timeout", "20"]);
    assert_eq!(d.code, 1, "{}", d.v);
    assert!(d.v["error"].as_str().unwrap().contains("pipe-pane"), "{}", d.v);
    assert!(d.took < Duration::from_secs(9), "{:?}", d.took); // not the timeout
    assert!(relays(&s).is_empty());
}

#[test]
fn a_users_pipe_pane_is_never_replaced() {
    let s = setup();
    let file = user_pipe(&s);
    for args in [
        vec!["wait-for", "s", "%0", "X", "--timeout", "2"],
        vec!["run", "s", "%0", "--timeout", "2", "--", "echo hi"],
        vec!["pane-stream", "s", "%0"],
        vec!["pane-wait", "s", "%0", "--timeout", "2"],
    ] {
        let d = ctb(&s, &args);
        assert_eq!(pane_pipe(&s, "%0"), "1", "the user's pipe was closed by {args:?}");
        assert_eq!(d.code, 1, "{args:?}: {}", d.v);
        assert!(d.v["error"].as_str().unwrap().contains("pipe-pane"), "{args:?}: {}", d.v);
    }
    assert!(relays(&s).is_empty());
    type_line(&s, "%0", "echo USER''PIPE");
    assert!(
        util::wait_file(Path::new(&file), Duration::from_secs(5), |t| t.contains("USERPIPE\r\n")),
        "the user's pipe no longer works"
    );
}

// --------------------------------------------------------------- bad input

#[test]
fn invalid_regex_fails_at_once_with_nothing_started() {
    let s = setup();
    for args in [
        vec!["wait-for", "s", "%0", "a(", "--timeout", "10"],
        vec!["wait-for", "s", "%0", "ok", "--stop", "[z-a]", "--timeout", "10"],
        vec!["pane-exec", "s", "%0", "echo typed", "--wait-for", "(", "--timeout", "10"],
    ] {
        let d = ctb(&s, &args);
        assert_eq!(d.code, 1, "{args:?}: {}", d.v);
        assert!(d.v["error"].as_str().unwrap().contains("invalid"), "{}", d.v);
        assert!(d.took < Duration::from_secs(5), "{:?}", d.took);
        assert!(relays(&s).is_empty(), "a relay was started");
        assert_eq!(pane_pipe(&s, "%0"), "0");
    }
    // Nothing was typed by the pane-exec with a bad pattern.
    let cap = s.tmux_ok(&["capture-pane", "-p", "-t", "%0"]);
    assert!(!cap.contains("typed"), "{cap}");
}

#[test]
fn unknown_pane_or_session_is_exit_1() {
    let s = setup();
    for args in [
        vec!["wait-for", "s", "%999", "x", "--timeout", "20"],
        vec!["wait-for", "nosuch", "%0", "x", "--timeout", "20"],
        vec!["run", "s", "%999", "--", "true"],
        vec!["run", "nosuch", "%0", "--", "true"],
        vec!["pane-wait", "s", "%999"],
        vec!["pane-stream", "s", "%999"],
        vec!["pane-tail", "nosuch", "%0"],
        vec!["pane-exec", "s", "%999", "x", "--wait-for", "x"],
    ] {
        let d = ctb(&s, &args);
        assert_eq!(d.code, 1, "{args:?}: {}", d.v);
        assert_eq!(d.v["status"], "error");
        assert!(d.took < Duration::from_secs(9), "{args:?}: {:?}", d.took); // not the timeout
    }
    assert!(relays(&s).is_empty());
}

#[test]
fn a_dead_pane_is_a_clean_error() {
    let s = setup();
    let p = pane(&s, "dead", &["sh", "-c", "echo last; exit 4"]);
    let d = ctb(&s, &["pane-wait", "s", &p, "--timeout", "20"]);
    assert_outcome(&d, "exited", 0);
    until("pane dead", Duration::from_secs(5), || {
        s.tmux_ok(&["display-message", "-p", "-t", &p, "#{pane_dead}"]) == "1"
    });
    for args in [
        vec!["wait-for", "s", &p, "NEVER", "--timeout", "20"],
        vec!["run", "s", &p, "--timeout", "20", "--", "true"],
        vec!["pane-stream", "s", &p],
        vec!["pane-exec", "s", &p, "x", "--wait-for", "x", "--timeout", "20"],
    ] {
        let d = ctb(&s, &args);
        assert_eq!(d.code, 1, "{args:?}: {}", d.v);
        assert_eq!(d.v["status"], "error", "{args:?}: {}", d.v);
        assert!(d.took < Duration::from_secs(9), "{args:?}: {:?}", d.took); // not the timeout
    }
    assert!(relays(&s).is_empty());
    assert_eq!(pane_pipe(&s, &p), "0");
}

#[test]
fn binary_flood_then_a_match() {
    let s = setup();
    // CAN (0x18) then ST end any escape sequence the random bytes left open,
    // as `reset` would on a real terminal.
    let rest = "read go; head -c 5000000 /dev/urandom; \
                printf '\\030\\033\\\\\\nAFTER-%s\\n' FLOOD; exec cat >/dev/null";
    let p = pane_after(&s, "bin", "stty -echo", rest);
    let w = spawn_sub(&s, &p, &["wait-for", "s", &p, "AFTER-FLOOD", "--new", "--timeout", "40"]);
    type_line(&s, &p, "go");
    let d = finish(w, Duration::from_secs(40));
    assert_outcome(&d, "matched", 0);
    assert_eq!(d.v["dropped_bytes"], 0);
    eprintln!("binary flood: matched after {} ms", d.v["elapsed_ms"]);
    nothing_left(&s, &[&p], Duration::from_secs(3));
}

#[test]
fn alternate_screen_app() {
    let s = setup();
    let file = s.runtime.join("page.txt");
    std::fs::write(&file, (1..=200).map(|i| format!("row {i} VISIBLE-{i}\n")).collect::<String>()).unwrap();
    // less starts once the pane has its final size (started with the pane,
    // it may paint at the first size and be cut by the layout's resize:
    // then it believes it shows the top and `g` does not redraw).
    let p = pane(&s, "less", &["sh"]);
    type_line(&s, &p, &format!("exec less '{}'", file.display()));
    until("less on screen", Duration::from_secs(5), || {
        s.tmux_ok(&["display-message", "-p", "-t", &p, "#{alternate_on}"]) == "1"
    });
    let mut shown = String::new();
    let top = Instant::now() + Duration::from_secs(5);
    while !shown.contains("VISIBLE-3") {
        assert!(Instant::now() < top, "less never showed the top: {shown:?}");
        // (Again until it shows: less may drop keys typed while it starts;
        // `r` repaints.)
        s.tmux_ok(&["send-keys", "-t", &p, "g", "r"]);
        std::thread::sleep(Duration::from_millis(50));
        shown = s.tmux_ok(&["capture-pane", "-p", "-t", &p]);
    }
    // What is visible is found (screen source).
    let d = ctb(&s, &["wait-for", "s", &p, "VISIBLE-3\\b", "--timeout", "5"]);
    assert_outcome(&d, "matched", 0);
    assert_eq!(d.v["source"], "screen");
    // Not visible: a clean timeout.
    let d = ctb(&s, &["wait-for", "s", &p, "VISIBLE-150\\b", "--timeout", "0.5"]);
    assert_outcome(&d, "timeout", 124);
    // Scrolled into view: found from the stream.
    let w = spawn_sub(&s, &p, &["wait-for", "s", &p, "VISIBLE-200\\b", "--new", "--timeout", "10"]);
    s.tmux_ok(&["send-keys", "-t", &p, "G"]);
    let d = finish(w, Duration::from_secs(10));
    eprintln!("alternate screen, scrolled to the end: {}", d.v);
    assert_outcome(&d, "matched", 0);
    s.tmux_ok(&["send-keys", "-t", &p, "q"]);
    let d = ctb(&s, &["pane-wait", "s", &p, "--timeout", "5"]);
    assert_outcome(&d, "exited", 0);
    // (exit_status may be null here: see pane_wait_right_after_exit_has_the_status.)
    eprintln!("pane-wait after less quit: {}", d.v);
}

// ------------------------------------------------------------------ safety

#[test]
fn twenty_waiters_under_session_churn() {
    let s = setup();
    let mut a = vec!["session-create", "--no-watch", "bystander", "--"];
    a.extend_from_slice(BASH);
    s.ok(&a);
    // 20 panes in session s: 4 windows of 5 panes running sh.
    let mut panes = vec!["%0".to_owned()];
    for w in 0..4 {
        if w > 0 {
            panes.push(s.tmux_ok(&["new-window", "-d", "-t", "s:", "-P", "-F", "#{pane_id}", "sh"]));
        }
        let win = s.tmux_ok(&["display-message", "-p", "-t", &panes[panes.len() - 1], "#{window_id}"]);
        while panes.len() < (w + 1) * 5 {
            panes.push(s.tmux_ok(&["split-window", "-d", "-t", &win, "-P", "-F", "#{pane_id}", "sh"]));
            s.tmux_ok(&["select-layout", "-t", &win, "tiled"]);
        }
    }
    assert_eq!(panes.len(), 20);
    let waiters: Vec<Child> = panes
        .iter()
        .enumerate()
        .map(|(i, p)| spawn(&s, &["wait-for", "s", p, &format!("^GO-{i}$"), "--new", "--timeout", "60"]))
        .collect();
    for p in &panes {
        subscribed(&s, p, 1);
    }
    // Another tmux client churns sessions and windows, 50 rounds; waiters
    // on churn panes end with a clean error.
    let mut doomed = Vec::new();
    for r in 0..50 {
        let name = format!("churn{r}");
        let p = s.tmux_ok(&["new-session", "-d", "-s", &name, "-P", "-F", "#{pane_id}", "sh"]);
        s.tmux_ok(&["new-window", "-d", "-t", &format!("{name}:"), "sh"]);
        s.tmux_ok(&["split-window", "-d", "-t", &name, "sh"]);
        let wnd = s.tmux_ok(&["new-window", "-d", "-t", "s:", "-P", "-F", "#{window_id}", "sh"]);
        if r % 10 == 0 {
            doomed.push(spawn(&s, &["wait-for", &name, &p, "NEVER", "--timeout", "60"]));
            subscribed(&s, &p, 1);
        }
        s.tmux_ok(&["kill-window", "-t", &wnd]);
        s.tmux_ok(&["kill-session", "-t", &name]);
        assert!(s.has_session("=bystander"), "server or bystander gone at round {r}");
        if r == 25 {
            for (i, p) in panes.iter().enumerate() {
                s.tmux_ok(&["send-keys", "-t", p, "-l", &format!("echo GO-{i}\n")]);
            }
        }
    }
    for (i, w) in waiters.into_iter().enumerate() {
        let d = finish(w, Duration::from_secs(30));
        assert_outcome(&d, "matched", 0);
        assert_eq!(d.v["output"], format!("GO-{i}"));
    }
    for w in doomed {
        let d = finish(w, Duration::from_secs(10));
        assert_eq!(d.code, 1, "{}", d.v);
        assert_eq!(d.v["status"], "error", "{}", d.v);
        assert!(["session_gone", "pane_gone"].contains(&d.v["outcome"].as_str().unwrap_or_default()), "{}", d.v);
    }
    assert!(s.has_session("=bystander"));
    until("no relay left", Duration::from_secs(2), || relays(&s).is_empty());
}

// ------------------------------------------------- from the break-it review

/// A relay killed with SIGKILL leaves its mark; once tmux has dropped its
/// dead pipe and a user pipes the pane, ctb must not take the user's pipe.
#[test]
fn a_killed_relays_mark_never_takes_a_users_later_pipe() {
    let s = setup();
    let w = spawn_sub(&s, "%0", &["wait-for", "s", "%0", "NEVER", "--new", "--timeout", "30"]);
    let relay = relay_of(&s, "%0").unwrap();
    util::signal_pid(relay, rustix::process::Signal::KILL);
    let d = finish(w, Duration::from_secs(10));
    assert_eq!(d.code, 1, "{}", d.v);
    // The pane prints: tmux finds the pipe dead and drops it.
    type_line(&s, "%0", "echo after-kill");
    until("the dead pipe dropped", Duration::from_secs(5), || pane_pipe(&s, "%0") == "0");
    let log = s.runtime.join("user-pipe.log");
    s.tmux_ok(&["pipe-pane", "-t", "%0", &format!("cat >> '{}'", log.display())]);
    let d = ctb(&s, &["run", "s", "%0", "--timeout", "3", "--", "echo via-ctb"]);
    assert_eq!(d.code, 1, "{}", d.v);
    assert!(d.v["error"].as_str().unwrap_or_default().contains("pipe-pane"), "{}", d.v);
    assert_eq!(pane_pipe(&s, "%0"), "1", "the user's pipe is still there");
    type_line(&s, "%0", "echo USER''PIPE-OK");
    until("the user's pipe works", Duration::from_secs(5), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("USERPIPE-OK")
    });
}

/// Runs on one pane take turns: no run's output holds another's typed line.
#[test]
fn parallel_runs_on_one_pane_keep_their_own_output() {
    let s = setup();
    let runs: Vec<(usize, Child)> = (0..12)
        .map(|i| {
            (i, spawn(&s, &["run", "s", "%0", "--timeout", "60", "--", &format!("echo out{i}; (exit {})", i % 7)]))
        })
        .collect();
    for (i, c) in runs {
        let d = finish(c, Duration::from_secs(60));
        assert_eq!(d.code, 0, "{}", d.v);
        assert_eq!(d.v["output"], format!("out{i}"), "{}", d.v);
        assert_eq!(d.v["exit_status"], (i % 7) as i64, "{}", d.v);
    }
}

/// A pane kept after its command exits (ctb's pane-create sets
/// remain-on-exit) keeps its pipe open: waits and streams end anyway, from
/// the process's exit, with its last output first.
#[test]
fn waits_end_when_a_kept_panes_command_exits() {
    let s = setup();
    let p = pane(&s, "job", &["sh", "-c", "read x; echo LAST-LINE; exit 5"]);
    let w = spawn_sub(&s, &p, &["wait-for", "s", &p, "NEVER", "--new", "--timeout", "30"]);
    let st = spawn(&s, &["pane-stream", "s", &p]);
    subscribed(&s, &p, 2);
    type_line(&s, &p, "go");
    let d = finish(w, Duration::from_secs(10));
    assert_outcome(&d, "exited", 1);
    assert_eq!(d.v["exit_status"], 5, "{}", d.v);
    let out = finish_raw(st, Duration::from_secs(10));
    assert!(out.contains("LAST-LINE"), "{out}");
}

fn finish_raw(mut c: Child, within: Duration) -> String {
    assert!(util::wait_pid(c.id(), within), "ctb did not finish within {within:?}");
    let mut o = String::new();
    use std::io::Read;
    c.stdout.take().unwrap().read_to_string(&mut o).unwrap();
    let _ = c.wait();
    o
}

/// SIGINT ends a pane-stream whose reader stopped reading.
#[test]
fn sigint_ends_a_stream_whose_reader_is_stuck() {
    let s = setup();
    // stdout a pipe nobody reads (kept open by the test).
    let mut st = spawn(&s, &["pane-stream", "s", "%0", "--raw"]);
    subscribed(&s, "%0", 1);
    type_line(&s, "%0", "head -c 3000000 /dev/zero | tr '\\0' x; echo");
    // 3 MB through a 64 kB pipe nobody reads: a thread of the stream is
    // soon stuck writing (the kernel says where it sleeps).
    until("pane-stream stuck writing", Duration::from_secs(10), || {
        std::fs::read_dir(format!("/proc/{}/task", st.id())).is_ok_and(|d| {
            d.flatten().any(|t| std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.contains("pipe_write")))
        })
    });
    util::signal_pid(st.id(), rustix::process::Signal::INT);
    assert!(util::wait_pid(st.id(), Duration::from_secs(5)), "pane-stream ignored SIGINT with its reader stuck");
    let _ = st.wait();
}

/// A reader that stops reading: the relay keeps at most its bound for it
/// (16 MiB, in bytes however small tmux's chunks), drops the rest and
/// says how much; the pane and other waiters never wait.
#[test]
fn a_stuck_reader_loses_data_past_the_bound_and_is_told() {
    let s = setup();
    let mut st = spawn(&s, &["pane-stream", "s", "%0", "--raw"]);
    subscribed(&s, "%0", 1);
    let relay = relay_of(&s, "%0").unwrap();
    // 64 MiB through the pane while nobody reads the stream; `run` (a
    // second subscriber on the same relay) is not held up by it.
    let d = ctb(&s, &["run", "s", "%0", "--timeout", "120", "--", "yes 0123456789abcdef | head -c 67108864; echo"]);
    assert_eq!(d.code, 0, "{}", d.v);
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{relay}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib < 40 * 1024, "the relay holds {rss_kib} KiB for a stuck reader");
    // The reader reads again; what the pane prints next arrives after the
    // gap, which is reported.
    let mut stdout = st.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut tail = Vec::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(64);
            tail.drain(..keep);
            if tail.windows(9).any(|w| w == b"AFTER-GAP") {
                let _ = tx.send(());
            }
        }
    });
    // (Typed again while the reader catches up: printed while the relay
    // still holds 16 MiB for it, the line itself falls in the gap.)
    let seen = (0..30).any(|_| {
        type_line(&s, "%0", "echo AFTER-G''AP");
        rx.recv_timeout(Duration::from_secs(1)).is_ok()
    });
    assert!(seen, "the stream goes on after the gap");
    util::signal_pid(st.id(), rustix::process::Signal::INT);
    assert!(util::wait_pid(st.id(), Duration::from_secs(5)), "pane-stream ignored SIGINT");
    let out = st.wait_with_output().unwrap();
    // stderr: a line per gap, then the closing JSON line.
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("bytes dropped (the reader was too slow)"), "{err}");
    let end: Value = serde_json::from_str(err.lines().last().unwrap_or_default()).unwrap();
    nothing_left(&s, &["%0"], Duration::from_secs(2));
    eprintln!("stuck reader: relay RSS {rss_kib} KiB; {end}");
    let dropped = end["dropped_bytes"].as_u64().unwrap_or_default();
    assert!(dropped > 0, "{end}");
    assert!(dropped + end["bytes"].as_u64().unwrap_or_default() >= 64 << 20, "{end}");
}

/// pane-tail and a last line still being written: shown once finished,
/// whole (also when the tail joins a running relay, whose stream may
/// begin in that line); a finished line is never glued to what follows
/// (the cursor on a blank row, or moved up by the program).
#[test]
fn pane_tail_unfinished_last_lines() {
    let s = setup();
    for (joined, script, trigger_prints, want, never) in [
        (false, "printf 'step 3 do'", "ne\\n", "step 3 done", "ne"),
        (true, "printf 'step 1 done\\nstep 2 done\\nstep 3 do'", "ne\\nstep 4 done\\n", "step 3 done", "ne"),
        (false, "printf 'hello\\n   '", "X-END\\n", "X-END", "helloX-END"),
        (false, "printf 'one\\ntwo\\n\\033[1;2H'", "X-END\\n", "X-END", "twoX-END"),
    ] {
        // (The script has printed before pane-tail starts: on the screen or,
        // not yet read by tmux, in the relay's stream.)
        let p = pane_after(
            &s,
            "tail",
            &format!("stty -echo; {script}"),
            &format!("read go; printf '{trigger_prints}'; read z"),
        );
        let keeper = joined.then(|| spawn_sub(&s, &p, &["pane-stream", "s", &p]));
        let mut t = spawn(&s, &["pane-tail", "s", &p, "5"]);
        let rx = line_reader(t.stdout.take().unwrap());
        until("pane-tail subscribed", Duration::from_secs(10), || {
            relay_of(&s, &p).is_some_and(|r| subscribers(r) > usize::from(joined))
        });
        type_line(&s, &p, "go");
        let mut seen = Vec::new();
        while !seen.iter().any(|l: &String| l == want) {
            let l = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{script}: saw {seen:?}"));
            seen.push(l.trim_end().to_owned());
        }
        assert!(!seen.iter().any(|l| l == never), "{script}: {seen:?}");
        for mut c in [Some(t), keeper].into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        s.tmux_ok(&["kill-pane", "-t", &p]);
    }
}

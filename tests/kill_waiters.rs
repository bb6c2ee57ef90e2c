//! Nothing of a waiting ctb outlives it (issue 9's rule, for the waits and
//! streams of issue 11): `wait-for`, `run`, `pane-stream` and `pane-wait`
//! SIGKILLed at varied moments (from before the relay exists to well into
//! the wait) leave, within 1 s, no relay process, no pipe on the pane and
//! no `@ctb-relay` mark, and the next wait on the pane works.
//!
//! `make kill-soak`-style long run: `CTB_KILL_WAITER_ROUNDS=200 cargo test
//! --release --test kill_waiters -- --nocapture`.

mod util;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use util::*;

/// The relays of this server: `ctb pane-relay` processes (started by tmux,
/// so their argv names the socket path, not `-L`).
fn relays(s: &TmuxServer) -> Vec<u32> {
    s.relays()
}

/// Each pane's pipe state and ctb's mark, e.g. `%3 0 []`.
fn pipes(s: &TmuxServer) -> Vec<String> {
    s.tmux_ok(&["list-panes", "-a", "-F", "#{pane_id} #{pane_pipe} [#{@ctb-relay}]"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Processes of this server other than the tmux server itself.
fn clients(s: &TmuxServer, server: u32) -> Vec<(u32, String)> {
    s.processes().into_iter().filter(|(p, _)| *p != server).collect()
}

fn spawn(s: &TmuxServer, args: &[&str]) -> Child {
    s.ctb().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// One round: a waiter of kind `kind` on a fresh pane, SIGKILLed after
/// `delay`; then everything must be gone within 1 s.
fn round(s: &TmuxServer, server: u32, kind: usize, delay: Duration) -> Result<(), String> {
    let pane = s.tmux_ok(&["split-window", "-t", "k", "-P", "-F", "#{pane_id}", "sh"]).trim().to_owned();
    s.tmux_ok(&["select-layout", "-t", "k", "tiled"]);
    let mut child = match kind {
        0 => spawn(s, &["wait-for", "k", &pane, "NEVER-PRINTED", "--timeout", "30"]),
        1 => spawn(s, &["run", "k", &pane, "--timeout", "30", "--", "echo started; sleep 0.2"]),
        2 => spawn(s, &["pane-stream", "k", &pane]),
        _ => {
            s.tmux_ok(&["send-keys", "-t", &pane, "sleep 0.3", "Enter"]);
            spawn(s, &["pane-wait", "k", &pane, "--timeout", "30"])
        }
    };
    std::thread::sleep(delay); // the moment of the kill (varied), not a wait for an event
    let _ = child.kill();
    let _ = child.wait();
    let killed_at = Instant::now();
    let deadline = killed_at + Duration::from_secs(1);
    // What the waiter had set going finishes by itself: a tmux client it
    // had started may still deliver its command, a relay may still be
    // starting (tmux forks it) and then leave. Each process seen is waited
    // for through its pidfd; the pane's state is read again after each.
    loop {
        let busy: Vec<u32> = clients(s, server).into_iter().map(|(p, _)| p).chain(relays(s)).collect();
        let piped: Vec<String> = pipes(s).into_iter().filter(|l| !l.ends_with(" 0 []")).collect();
        if busy.is_empty() && piped.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "kind {kind}, kill after {delay:?}: after {:?}: processes {:?}, pipes {piped:?}",
                killed_at.elapsed(),
                clients(s, server)
                    .into_iter()
                    .chain(relays(s).into_iter().map(|p| (p, proc_args(p).join(" "))))
                    .collect::<Vec<_>>()
            ));
        }
        for pid in &busy {
            wait_pid(*pid, deadline.saturating_duration_since(Instant::now()));
        }
        if busy.is_empty() {
            // Piped but no process seen: tmux is between forking the
            // relay and its exec (its argv not yet ctb's). Look again soon.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // The pane still works with a new waiter.
    let v = s.ok(&["run", "k", &pane, "--timeout", "10", "--", "echo ok-$((6*7))"]);
    if v["output"] != "ok-42" {
        return Err(format!("kind {kind}, kill after {delay:?}: the next run said {v}"));
    }
    s.tmux_ok(&["kill-pane", "-t", &pane]);
    Ok(())
}

#[test]
fn sigkilled_waiters_leave_nothing() {
    let rounds: usize = std::env::var("CTB_KILL_WAITER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let s = TmuxServer::new();
    s.tmux_ok(&["new-session", "-d", "-s", "k", "-x", "200", "-y", "60", "sh"]);
    let server = s.server_pid();
    let mut failures = Vec::new();
    for r in 0..rounds {
        // 0 to 45 ms in 3 ms steps, spread over the kinds.
        let delay = Duration::from_millis(((r * 7) % 16 * 3) as u64);
        if let Err(e) = round(&s, server, r % 4, delay) {
            failures.push(format!("round {r}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} of {rounds} rounds left something:\n{}", failures.len(), failures.join("\n"));
}

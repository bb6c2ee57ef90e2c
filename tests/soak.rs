//! Plan 6 of issue 4: the daemon under churn. Ignored by `make test`; run
//! with `make soak` (SOAK_SECONDS, default 60).

mod util;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{fd_count, vm_rss_kib, wait_pid, TmuxServer};

const WORKERS: usize = 20;
const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// Issue 3's close-to-exit target: p99 at most 20 ms (median 5 ms).
const EXIT_LATENCY_TARGET: Duration = Duration::from_millis(20);

fn daemon_pid(v: &Value) -> u32 {
    v["daemon_pid"].as_u64().unwrap_or_else(|| panic!("no daemon_pid in {v}")) as u32
}

/// 20 workers create and kill sessions through ctb (every fourth one
/// unwatched, each kill the worker's previous session, now and then a
/// `daemon status`) for SOAK_SECONDS while a watched `keeper` keeps one
/// daemon alive. Then: the daemon's watched set equals the watched
/// sessions that exist, its fds did not grow, and once the rest are gone it
/// exits within the latency target of the last `tmux kill-session`.
#[test]
#[ignore = "soak test: run with `make soak` (SOAK_SECONDS, default 60)"]
fn plan6_soak_under_churn() {
    let secs: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let s = TmuxServer::new();
    let daemon = daemon_pid(&s.create("keeper"));
    s.status();
    let (fd0, rss0) = (fd_count(daemon), vm_rss_kib(daemon));
    let creates = AtomicU64::new(0);
    let statuses = AtomicU64::new(0);
    let start = Instant::now();
    let stop_at = start + Duration::from_secs(secs);
    std::thread::scope(|scope| {
        for t in 0..WORKERS {
            let (s, creates, statuses) = (&s, &creates, &statuses);
            scope.spawn(move || {
                let mut last: Option<String> = None;
                let mut i = 0u64;
                while Instant::now() < stop_at {
                    let name = format!("w{t:02}-{i}");
                    if i % 4 == 3 {
                        s.ok(&["session-create", &name, "--no-watch"]);
                    } else {
                        let v = s.create(&name);
                        assert_eq!(daemon_pid(&v), daemon, "{name}: the keeper keeps one daemon");
                    }
                    creates.fetch_add(1, Ordering::Relaxed);
                    if let Some(prev) = last.replace(name) {
                        s.ok(&["session-kill", &prev]);
                    }
                    if i % 10 == 5 {
                        let st = s.status();
                        assert_eq!(st["running"], true, "{st}");
                        assert_eq!(st["pid"], daemon, "{st}");
                        statuses.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
                // Each worker leaves its last session alive.
            });
        }
    });
    let churn = start.elapsed();

    // No churn now: the daemon's view (in sync with tmux at request time)
    // must be exactly the watched sessions tmux has.
    let marked = s.marked_sessions();
    let watched = s.watched_names();
    assert_eq!(watched, marked, "the daemon's watched set differs from tmux's");
    assert!(marked.len() > WORKERS / 2 && marked.contains(&"keeper".to_owned()), "{marked:?}");
    let (mut fd1, rss1) = (fd_count(daemon), vm_rss_kib(daemon));
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd1 != fd0 && Instant::now() < deadline {
        s.status(); // a straggling request socket closes right after its reply
        fd1 = fd_count(daemon);
    }
    let n = creates.load(Ordering::Relaxed);
    eprintln!(
        "plan6: {WORKERS} workers, {churn:?}: {n} creates ({:.0}/s), {} statuses; {} watched at the end; \
         daemon {daemon} fds {fd0} -> {fd1}, VmRSS {rss0} -> {rss1} KiB; events {}",
        n as f64 / churn.as_secs_f64(),
        statuses.load(Ordering::Relaxed),
        marked.len(),
        s.status()["events"]
    );
    assert_eq!(fd1, fd0, "the daemon's fds grew");

    // Kill everything but the keeper (watched and unwatched) through ctb.
    for name in s.session_names() {
        if name != "keeper" {
            s.ok(&["session-kill", &name]);
        }
    }
    assert_eq!(s.watched_names(), ["keeper"]);
    assert!(!wait_pid(daemon, Duration::ZERO), "the keeper still keeps the daemon");
    // The last one with tmux itself, timed like the benchmark: from
    // kill-session returning to the daemon having exited (pidfd).
    s.tmux_ok(&["kill-session", "-t", "=keeper"]);
    let killed = Instant::now();
    assert!(wait_pid(daemon, EXIT_DEADLINE), "daemon still running after the last session");
    let latency = killed.elapsed();
    eprintln!("plan6: close-to-exit after the churn: {latency:?}");
    assert!(latency <= EXIT_LATENCY_TARGET, "daemon exited {latency:?} after the last kill-session");
    assert_eq!(s.status()["running"], false);
    assert!(s.runtime_files().is_empty(), "{:?}", s.runtime_files());
    s.wait_no_processes(EXIT_DEADLINE);
    assert!(s.zombies().is_empty());
}

//! Issue 4's lifecycle test plan, automated: the demos and the daemon under
//! crashes, concurrency, zombies and leaks. Each test owns a private tmux
//! server (and runtime dir) and only ever signals processes it started.
//!
//! The demos run with `CTB` (this build), `CTB_DEMO_SOCKET` (the private
//! server's label; their `ctb()` adds `-f /dev/null`) and `XDG_RUNTIME_DIR`.
//! `CTB_DEMO_GATE` makes demo-quick.sh print "holding" once its watcher is
//! watching and wait for `tmux wait-for -S GATE` before starting its job:
//! the tests use it to hold a demo at a known point instead of racing it.

mod util;

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{descendants_of, fd_count, fd_kinds, pid_alive, proc_args, vm_rss_kib, wait_pid, TmuxServer, Zombie};

const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// How long a demo may take (they take about a second alone).
const DEMO_DEADLINE: Duration = Duration::from_secs(30);

static DEMOS: AtomicU32 = AtomicU32::new(0);

fn daemon_pid(v: &Value) -> u32 {
    v["daemon_pid"].as_u64().unwrap_or_else(|| panic!("no daemon_pid in {v}")) as u32
}

/// A demo script running against a private server, its stdout read line
/// by line (a reader thread feeds a channel, so waits have deadlines).
struct Demo {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Demo {
    fn start(s: &TmuxServer, script: &str, env: &[(&str, &str)]) -> Demo {
        let n = DEMOS.fetch_add(1, Ordering::SeqCst);
        let stderr = s.runtime.join(format!("demo-{n}.stderr"));
        // SIGINT back to its default first: bash cannot trap a signal that
        // was ignored when it started (as it is under `cargo test &`).
        let mut cmd = Command::new("env");
        cmd.args(["--default-signal=INT", "bash"])
            .arg(util::repo().join("examples").join(script))
            .env("CTB", util::ctb_path())
            .env("CTB_DEMO_SOCKET", &s.label)
            .env("XDG_RUNTIME_DIR", &s.runtime)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            // Its own process group, as a shell job: `interrupt` is then
            // what Ctrl-C in a terminal does.
            .process_group(0);
        let mut child = cmd.spawn().unwrap();
        let lines = util::line_reader(child.stdout.take().unwrap());
        Demo { child, lines, seen: Vec::new(), stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT to the demo's process group (the script and its children),
    /// as Ctrl-C would. (Sent to bash alone, a SIGINT arriving while a
    /// foreground child runs is dropped when that child exits normally:
    /// bash assumes the child handled it.)
    fn interrupt(&self) {
        let pgid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process_group(pgid, rustix::process::Signal::INT).unwrap();
    }

    fn context(&self) -> String {
        format!("stdout {:#?}\nstderr {:?}", self.seen, std::fs::read_to_string(&self.stderr).unwrap_or_default())
    }

    /// Waits (deadline) for a stdout line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEMO_DEADLINE;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no line with {needle:?} ({e:?}); {}", self.context()),
            }
        }
    }

    /// The demo's session-create reply.
    fn wait_created(&mut self) -> Value {
        let line = self.wait_line(r#""command":"session-create""#);
        serde_json::from_str(&line).unwrap()
    }

    /// Waits (deadline) for the script to exit and for its stdout to end
    /// (nothing it started may keep the pipe open); its exit code and every
    /// stdout line.
    fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        assert!(wait_pid(self.pid(), DEMO_DEADLINE), "demo still running; {}", self.context());
        let code = self.child.wait().unwrap().code();
        let deadline = Instant::now() + EXIT_DEADLINE;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the demo's stdout is still open; {}", self.context()),
            }
        }
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        (code, std::mem::take(&mut self.seen), stderr)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Our own child, left running by a failed assertion: interrupt it
        // so its trap removes its session and temp file, then make sure.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.interrupt();
            wait_pid(self.pid(), EXIT_DEADLINE);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines.iter().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The events the demo's `ctb watch` printed, as (event, session) pairs.
fn watch_events(js: &[Value]) -> Vec<(String, String)> {
    js.iter()
        .filter_map(|v| {
            let e = v["event"].as_str()?;
            Some((e.to_owned(), v["session"].as_str().or(v["reason"].as_str()).unwrap_or_default().to_owned()))
        })
        .collect()
}

/// The demo-quick.sh checks that hold however many demos share the server:
/// exit 0, its session created and watched, its watcher saw it watched then
/// closed and ended, and its final status says no daemon runs.
fn check_quick_demo(code: Option<i32>, lines: &[String], stderr: &str, session: &str) -> u32 {
    assert_eq!(code, Some(0), "demo failed: {lines:#?}\nstderr {stderr}");
    let js = json_lines(lines);
    let created = js.iter().find(|v| v["command"] == "session-create").expect("a session-create line");
    assert_eq!(created["session"], session);
    assert_eq!(created["watched"], true);
    let ev = watch_events(&js);
    let want: Vec<(String, String)> =
        [("watching", session), ("session-closed", session), ("watch-end", "last-session-closed")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    assert_eq!(ev, want, "{lines:#?}");
    let last = js.iter().rev().find(|v| v["command"] == "daemon-status").unwrap();
    assert_eq!(last["running"], false, "{lines:#?}");
    daemon_pid(created)
}

/// After everything ended: the daemons exited, no daemon answers, no
/// runtime file but the log, no tmux server, no process of ours at all.
fn assert_nothing_left(s: &TmuxServer, daemons: &[u32]) {
    for &pid in daemons {
        assert!(wait_pid(pid, EXIT_DEADLINE), "daemon {pid} still running");
    }
    assert_eq!(s.status()["running"], false);
    assert!(s.runtime_files().is_empty(), "runtime files left: {:?}", s.runtime_files());
    s.wait_no_processes(EXIT_DEADLINE);
    assert!(!s.server_running(), "tmux server {} still up", s.label);
    // (tmux 3.3a leaves its socket file behind when it exits; nothing answers on it.)
    let logs: Vec<_> = std::fs::read_dir(s.ctb_dir()).unwrap().flatten().collect();
    assert_eq!(logs.len(), 1, "only the log stays");
}

/// Plan 1: one quick demo; afterwards no daemon, no runtime files, no
/// server, nothing of ours running.
#[test]
fn plan1_single_demo_leaves_nothing() {
    let s = TmuxServer::new();
    let demo = Demo::start(&s, "demo-quick.sh", &[("CTB_DEMO_SESSION", "solo")]);
    let (code, lines, stderr) = demo.finish();
    let daemon = check_quick_demo(code, &lines, &stderr, "solo");
    assert!(lines.last().unwrap().contains("gone (its last session closed)"), "{lines:#?}");
    assert_nothing_left(&s, &[daemon]);
}

/// Plan 2: two quick demos at once on one server, both held at their gate
/// (session alive, watcher watching). Kill one demo's session: the daemon
/// keeps running for the other; kill the last: the daemon is gone. Both
/// demos then finish cleanly.
#[test]
fn plan2_two_demos_one_server() {
    let s = TmuxServer::new();
    let env = |session: &'static str, gate: &'static str| {
        [("CTB_DEMO_SESSION", session), ("CTB_DEMO_GATE", gate), ("CTB_DEMO_JOB_TIMEOUT", "20")]
    };
    // Demo b starts once demo a is held with its watcher attached: a
    // `ctb watch` attaching while another client creates a session can
    // crash tmux 3.3a (see plan4_ten_demos_at_once).
    let mut a = Demo::start(&s, "demo-quick.sh", &env("demo-a", "gate-a"));
    let pa = daemon_pid(&a.wait_created());
    a.wait_line("holding");
    let mut b = Demo::start(&s, "demo-quick.sh", &env("demo-b", "gate-b"));
    let pb = daemon_pid(&b.wait_created());
    assert_eq!(pa, pb, "one daemon per server");
    b.wait_line("holding");
    assert_eq!(s.watched_names(), ["demo-a", "demo-b"]);

    s.ok(&["session-kill", "demo-a"]);
    let st = s.status();
    assert_eq!(st["running"], true, "{st}");
    assert_eq!(st["pid"], pa, "same daemon");
    assert_eq!(s.watched_names(), ["demo-b"]);
    assert!(pid_alive(pa));

    // Demo a goes on (its watcher has ended) and waits for the daemon.
    s.tmux_ok(&["wait-for", "-S", "gate-a"]);
    a.wait_line("events seen by ctb watch");

    s.ok(&["session-kill", "demo-b"]);
    assert!(wait_pid(pa, EXIT_DEADLINE), "daemon {pa} still running after the last session");
    assert_eq!(s.status()["running"], false);
    // The server went with its last session; demo b's gate wait ended
    // with it, and both scripts finish.
    for (demo, session) in [(a, "demo-a"), (b, "demo-b")] {
        let (code, lines, stderr) = demo.finish();
        check_quick_demo(code, &lines, &stderr, session);
    }
    assert_nothing_left(&s, &[pa]);
}

/// Plan 3 (SIGINT): the demo's trap runs `ctb session-kill` for its
/// session, so right after the script exits (status 130) its session is
/// gone, and the daemon, the demo's watcher and the server follow by
/// themselves. Two points: from as soon as the session exists (SIGINT to
/// bash until it stops), and while held with its watcher attached (SIGINT
/// to the demo's process group, as Ctrl-C would: the watcher gets it too).
#[test]
fn plan3_sigint_mid_run() {
    for held in [false, true] {
        let s = TmuxServer::new();
        let env: &[(&str, &str)] = if held {
            &[("CTB_DEMO_SESSION", "victim"), ("CTB_DEMO_GATE", "gate"), ("CTB_DEMO_JOB_TIMEOUT", "20")]
        } else {
            &[("CTB_DEMO_SESSION", "victim")]
        };
        let mut demo = Demo::start(&s, "demo-quick.sh", env);
        let daemon = daemon_pid(&demo.wait_created());
        let server = s.server_pid();
        let mut started = Vec::new();
        if held {
            demo.wait_line("holding");
            started = descendants_of(demo.pid());
            assert!(
                started.iter().any(|&p| proc_args(p).iter().any(|a| a == "watch")),
                "no ctb watch among the demo's processes"
            );
        }
        if held {
            // bash is in the `wait` builtin: the trap runs at once.
            demo.interrupt();
        } else {
            // bash drops a SIGINT that arrives while a foreground child
            // exits normally (it assumes the child handled it), so, as a
            // user would, press Ctrl-C again until the script stops; to
            // bash alone, so its trap's own `ctb session-kill` is never hit.
            let pid = rustix::process::Pid::from_raw(demo.pid() as i32).unwrap();
            for _ in 0..100 {
                rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
                if wait_pid(demo.pid(), Duration::from_millis(100)) {
                    break;
                }
            }
        }
        let (code, lines, stderr) = demo.finish_after_signal();
        assert_eq!(code, Some(130), "held={held}: {lines:#?}\n{stderr}");
        let gone = s.tmux().args(["has-session", "-t", "=victim"]).stderr(Stdio::null()).status().unwrap();
        assert!(!gone.success(), "held={held}: the trap did not kill the session");
        let wait = s.ok(&["daemon", "wait", "--timeout", "10"]);
        assert_eq!(wait["running"], false);
        assert!(wait_pid(daemon, EXIT_DEADLINE));
        for p in started {
            assert!(wait_pid(p, EXIT_DEADLINE), "held={held}: the demo's child {p} {:?} did not exit", proc_args(p));
        }
        assert!(wait_pid(server, EXIT_DEADLINE), "held={held}: tmux server outlived every session");
        assert_nothing_left(&s, &[daemon]);
    }
}

impl Demo {
    /// Like [`Demo::finish`], for a script ended by a signal: its
    /// background children may still hold stdout for a moment, so only
    /// the script's exit is awaited.
    fn finish_after_signal(mut self) -> (Option<i32>, Vec<String>, String) {
        assert!(wait_pid(self.pid(), DEMO_DEADLINE), "demo ignored the signal; {}", self.context());
        let code = self.child.wait().unwrap().code();
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        (code, std::mem::take(&mut self.seen), stderr)
    }
}

/// Plan 3 (SIGKILL): the trap cannot run, so nobody kills the session.
/// What ctb guarantees then: nothing kills the session (it is the user's
/// work), the daemon keeps watching it while it lives, and the moment it
/// closes (here: its job ends, bounded by CTB_DEMO_JOB_TIMEOUT = 2 s) the
/// daemon exits; the demo's orphaned `ctb watch` reports the close and
/// exits too, and the server goes with its last session.
#[test]
fn plan3_sigkill_mid_run() {
    let s = TmuxServer::new();
    let mut demo = Demo::start(
        &s,
        "demo-quick.sh",
        &[("CTB_DEMO_SESSION", "victim"), ("CTB_DEMO_GATE", "gate"), ("CTB_DEMO_JOB_TIMEOUT", "2")],
    );
    let daemon = daemon_pid(&demo.wait_created());
    demo.wait_line("holding");
    // Its descendants, found before the kill: the watcher (run in a
    // subshell) and the gate wait.
    let kids = descendants_of(demo.pid());
    let watch = *kids
        .iter()
        .find(|&&p| proc_args(p).iter().any(|a| a == "watch"))
        .unwrap_or_else(|| panic!("no ctb watch among {kids:?}"));
    let events = std::fs::read_link(format!("/proc/{watch}/fd/1")).unwrap();

    demo.child.kill().unwrap(); // SIGKILL, to our own child
    demo.child.wait().unwrap();
    let killed = Instant::now();
    // Right after: the session lives, the daemon still watches it.
    s.tmux_ok(&["has-session", "-t", "=victim"]);
    let st = s.status();
    assert_eq!(st["running"], true, "{st}");
    assert_eq!(st["pid"], daemon);
    assert_eq!(s.watched_names(), ["victim"]);
    assert!(pid_alive(watch), "the orphaned watcher is still watching");
    // Release the orphaned gate wait (it would end at its timeout anyway).
    s.tmux_ok(&["wait-for", "-S", "gate"]);

    // The job's start wait times out (2 s), its 3 steps run, the session
    // closes: the watcher exits; then the daemon.
    let bound = Duration::from_secs(2) + Duration::from_millis(900) + Duration::from_secs(5);
    assert!(wait_pid(watch, bound), "the session (job timeout 2 s) did not end within {bound:?}");
    let closed = Instant::now();
    assert!(wait_pid(daemon, EXIT_DEADLINE), "daemon outlived the session");
    eprintln!(
        "plan3_sigkill: session closed {:?} after the SIGKILL; daemon exit seen {:?} after the watcher's",
        closed - killed,
        closed.elapsed()
    );
    let text = std::fs::read_to_string(&events).unwrap();
    std::fs::remove_file(&events).unwrap(); // the demo's temp file: its trap could not remove it
    let ev = watch_events(&json_lines(&text.lines().map(str::to_owned).collect::<Vec<_>>()));
    assert_eq!(ev.last().unwrap(), &("watch-end".to_owned(), "last-session-closed".to_owned()), "{text}");
    assert!(ev.contains(&("session-closed".to_owned(), "victim".to_owned())), "{text}");
    for p in kids {
        assert!(wait_pid(p, EXIT_DEADLINE), "the demo's child {p} did not exit");
    }
    assert_nothing_left(&s, &[daemon]);
}

/// Watches /proc for zombies whose parent is one of `s`'s processes while
/// `running`; returns each one seen with how long it stayed defunct.
fn zombie_sampler(s: &TmuxServer, running: &AtomicBool) -> (HashMap<Zombie, Duration>, usize) {
    let mut seen: HashMap<Zombie, (Instant, Instant)> = HashMap::new();
    let mut samples = 0;
    while running.load(Ordering::SeqCst) {
        let now = Instant::now();
        for z in s.zombies() {
            seen.entry(z).and_modify(|e| e.1 = now).or_insert((now, now));
        }
        samples += 1;
        // A sampling period, not a wait: the observation runs alongside.
        std::thread::sleep(Duration::from_millis(20));
    }
    (seen.into_iter().map(|(z, (a, b))| (z, b - a)).collect(), samples)
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Runs `body` while sampling /proc for zombies of `s`'s processes; fails if
/// one stayed defunct for 2 s or more (a zombie reaped within a moment is
/// just the time between a child's exit and its parent's wait), or if any
/// is left afterwards.
fn without_lingering_zombies(s: &TmuxServer, what: &str, body: impl FnOnce()) {
    let running = AtomicBool::new(true);
    let (zombies, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| zombie_sampler(s, &running));
        {
            // Stops the sampler however `body` ends (a failed assertion
            // must not leave the scope waiting for it).
            let _stop = StopOnDrop(&running);
            body();
        }
        sampler.join().unwrap()
    });
    let lingering: Vec<_> = zombies.iter().filter(|(_, d)| **d >= Duration::from_secs(2)).collect();
    eprintln!("{what}: {samples} samples, {} transient zombies of ours, lingering: {lingering:?}", zombies.len());
    assert!(lingering.is_empty(), "zombies left unreaped: {lingering:?}");
    assert!(samples > 5, "the sampler ran");
    assert_eq!(s.zombies(), Vec::new());
}

/// Plan 4: ten demo-like workers at once on one server, through ctb: each
/// runs five sessions whose job ends by itself (signalling the worker
/// through `tmux wait-for`) or is killed with `ctb session-kill`; the
/// daemon ends with the last. During the run no process of
/// ours (tmux server, tmux clients, ctb daemon and one-shots) keeps a
/// defunct child; afterwards no zombie and nothing of ours is left.
/// (The same with ten real demo-quick.sh: plan4_ten_demos_at_once.)
#[test]
fn plan4_no_zombies() {
    let s = TmuxServer::new();
    let daemons = std::sync::Mutex::new(Vec::new());
    without_lingering_zombies(&s, "plan4", || {
        std::thread::scope(|scope| {
            for w in 0..10 {
                let (s, daemons) = (&s, &daemons);
                scope.spawn(move || {
                    for r in 0..5 {
                        let name = format!("z{w}-{r}");
                        let done = format!("done-{w}-{r}");
                        let job = if r % 2 == 0 {
                            format!("echo work; sleep 0.2; tmux wait-for -S {done}")
                        } else {
                            "echo work; exec sleep 30".to_owned()
                        };
                        let v = s.ok(&["session-create", &name, "--", "sh", "-c", &job]);
                        daemons.lock().unwrap().push(daemon_pid(&v));
                        if r % 2 == 0 {
                            // Its job ends by itself and says so (kept by
                            // tmux if it comes before we wait).
                            s.tmux_ok(&["wait-for", &done]);
                        } else {
                            s.ok(&["session-kill", &name]);
                        }
                    }
                });
            }
        });
        let wait = s.ok(&["daemon", "wait", "--timeout", "10"]);
        assert_eq!(wait["running"], false);
        s.wait_no_processes(EXIT_DEADLINE);
    });
    let mut daemons = daemons.into_inner().unwrap();
    daemons.sort_unstable();
    daemons.dedup();
    eprintln!("plan4: {} daemon(s) came and went", daemons.len());
    assert_nothing_left(&s, &daemons);
}

/// Plan 4 with ten real demo-quick.sh started at once on one server.
/// tmux 3.3a segfaulted here ("segfault at 20", docs/tmux-3.3a-crash.md)
/// when one demo's `ctb watch` attached its control client while another
/// demo created its session; `ctb watch` now attaches under the server's
/// spawn lock, which every `session-create` takes.
#[test]
fn plan4_ten_demos_at_once() {
    let s = TmuxServer::new();
    let mut daemons = Vec::new();
    without_lingering_zombies(&s, "plan4 (demos)", || {
        let demos: Vec<Demo> =
            (0..10).map(|i| Demo::start(&s, "demo-quick.sh", &[("CTB_DEMO_SESSION", &format!("z{i}"))])).collect();
        for (i, demo) in demos.into_iter().enumerate() {
            let (code, lines, stderr) = demo.finish();
            daemons.push(check_quick_demo(code, &lines, &stderr, &format!("z{i}")));
        }
        for &d in &daemons {
            assert!(wait_pid(d, EXIT_DEADLINE), "daemon {d} still running");
        }
        s.wait_no_processes(EXIT_DEADLINE);
    });
    daemons.sort_unstable();
    daemons.dedup();
    assert_nothing_left(&s, &daemons);
}

/// Plan 5a: 100 runs in a row of the demo's lifecycle (one watched session
/// created then killed, nothing else on the server: each run starts a
/// server and a daemon, and both must end before the next run).
/// (100 real demo runs would take ~2 minutes; plan 1 runs the real one.)
#[test]
fn plan5_leaks_100_runs() {
    let s = TmuxServer::new();
    let start = Instant::now();
    let mut last = None;
    for i in 0..100 {
        let name = format!("run{i}");
        let v = s.create(&name);
        let daemon = daemon_pid(&v);
        let server = s.server_pid();
        s.ok(&["session-kill", &name]);
        assert!(wait_pid(daemon, EXIT_DEADLINE), "run {i}: daemon {daemon} outlived the session");
        assert!(wait_pid(server, EXIT_DEADLINE), "run {i}: tmux server {server} outlived its last session");
        assert!(s.runtime_files().is_empty(), "run {i}: {:?}", s.runtime_files());
        last = Some(daemon);
    }
    eprintln!("plan5 (100 runs): {:?}", start.elapsed());
    assert_nothing_left(&s, &[last.unwrap()]);
}

/// Create-then-kill cycles through the ctb binary, `threads` at a time.
fn cycles(s: &TmuxServer, prefix: &str, threads: usize, per_thread: usize) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                for i in 0..per_thread {
                    let name = format!("{prefix}{t}-{i}");
                    s.create(&name);
                    s.ok(&["session-kill", &name]);
                }
            });
        }
    });
}

/// The daemon's fd count and RSS once it has answered a status request
/// (in sync with tmux) and watches only `keeper`.
fn daemon_figures(s: &TmuxServer, pid: u32) -> (usize, u64) {
    assert_eq!(s.watched_names(), ["keeper"]);
    (fd_count(pid), vm_rss_kib(pid))
}

/// Plan 5b: inside one long-lived daemon (a watched `keeper` session keeps
/// it), 1,000 session create/kill cycles through ctb (4 at a time): its
/// open fds do not change and its RSS does not grow (beyond 512 KiB).
#[test]
fn plan5_leaks_1000_cycles_in_one_daemon() {
    let s = TmuxServer::new();
    let daemon = daemon_pid(&s.create("keeper"));
    cycles(&s, "warm", 2, 25);
    let (fd0, rss0) = daemon_figures(&s, daemon);
    let kinds0 = fd_kinds(daemon);
    let start = Instant::now();
    cycles(&s, "c", 4, 250);
    let took = start.elapsed();
    let (mut fd1, rss1) = daemon_figures(&s, daemon);
    // An accepted request socket is closed just after the reply is
    // written: give a straggler a moment (re-syncing, with a deadline).
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd1 != fd0 && Instant::now() < deadline {
        fd1 = daemon_figures(&s, daemon).0;
    }
    eprintln!(
        "plan5 (1,000 cycles in {took:?}): daemon {daemon} fds {fd0} -> {fd1}, VmRSS {rss0} KiB -> {rss1} KiB; \
         events {}",
        s.status()["events"]
    );
    assert_eq!(fd1, fd0, "fd leak: before {kinds0:?}, after {:?}", fd_kinds(daemon));
    assert!(rss1 <= rss0 + 512, "RSS grew from {rss0} KiB to {rss1} KiB");
    assert_eq!(s.status()["pid"], daemon, "the same daemon throughout");
    s.ok(&["session-kill", "keeper"]);
    assert_nothing_left(&s, &[daemon]);
}

/// The agents demo: the daemon stays while any agent is alive (its status
/// after the first agent finished still watches the other three) and is
/// gone right after the last.
#[test]
fn demo_agents_daemon_outlives_all_but_last() {
    let s = TmuxServer::new();
    // Steps of 0.5 s: 1.5 s between the first agent's end and the
    // second's, for the mid-run `daemon status` on a loaded machine.
    let demo = Demo::start(&s, "demo-agents.sh", &[("CTB_DEMO_STEP", "0.5")]);
    let pid = demo.pid();
    let (code, lines, stderr) = demo.finish();
    assert_eq!(code, Some(0), "{lines:#?}\n{stderr}");
    let js = json_lines(&lines);
    let created: Vec<&Value> = js.iter().filter(|v| v["command"] == "session-create").collect();
    assert_eq!(created.len(), 4);
    let daemon = daemon_pid(created[0]);
    assert!(created.iter().all(|v| daemon_pid(v) == daemon), "one daemon");
    let names: Vec<String> = (1..=4).map(|i| format!("agent-{i}-{pid}")).collect();
    let ev = watch_events(&js);
    let closed: Vec<&String> = ev.iter().filter(|(e, _)| e == "session-closed").map(|(_, n)| n).collect();
    assert_eq!(closed.len(), 4, "{ev:?}");
    assert_eq!(ev.iter().filter(|(e, _)| e == "watching").count(), 4, "{ev:?}");
    assert_eq!(ev.last().unwrap().1, "last-session-closed", "{ev:?}");
    let statuses: Vec<&Value> = js.iter().filter(|v| v["command"] == "daemon-status").collect();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0]["running"], true);
    assert_eq!(statuses[0]["pid"], daemon);
    let mut mid: Vec<String> =
        statuses[0]["watched"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    mid.sort();
    let mut rest: Vec<String> = names.iter().filter(|n| *n != closed[0]).cloned().collect();
    rest.sort();
    assert_eq!(mid, rest, "after the first agent ({}) closed", closed[0]);
    assert_eq!(statuses[1]["running"], false);
    assert!(lines.last().unwrap().contains("gone"), "{lines:#?}");
    assert_nothing_left(&s, &[daemon]);
}

//! Issue 9, item 3: "nothing of ctb outlives it", tested. Every kind of
//! ctb process that talks to tmux (the daemon started by `session-create`,
//! `ctb watch NAME`, `ctb watch`, and an anchor's `ctb daemon anchor-hold`)
//! is SIGKILLed at varied moments: while it attaches, idle, during a
//! reconcile (right after a session was created or killed), during its
//! shutdown (right after its last watched session was killed) and while the
//! server exits (right after `tmux kill-server`). Within 1 s of the kill,
//! waited for on pidfds: no `tmux -C` client, no anchor, no `@ctb-daemon`
//! record of a dead daemon and no ctb process of the server is left (but
//! the watcher a round keeps on purpose: the one whose anchor-hold was
//! killed), and once the user's sessions are gone the tmux server exits
//! within 1 s.
//!
//! Round N is reproducible: its kind is N % 4, its moment (N / 4) % 5 and
//! its variant (N / 20) % 2, so rounds 0..40 try every combination once;
//! its delay after the moment's starting point is (N * 0.37 ms + (N / 40) *
//! 9.27 ms) mod 15 ms (each pass of 40 rounds shifts the delays of a
//! combination), and for an anchor-hold the watcher owning the anchor is
//! (N / 40) % 3. `make test` runs rounds 0..40 (about 7 s); `make
//! kill-soak` runs CTB_KILL_ROUNDS rounds (make's KILL_ROUNDS, default 100)
//! from round CTB_KILL_FIRST (KILL_FIRST, default 0). Every round runs, and
//! the test fails at the end listing each round's leftovers with the state
//! of the server then (CTB_KILL_VERBOSE=1: and each round's daemon log).

mod util;

use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::inotify;
use rustix::process::Signal;
use serde_json::Value;
use util::{all_pids, pid_alive, proc_args, proc_stat, signal_pid, wait_pid, TmuxServer, Watch};

/// Everything of a killed process must be gone this soon (the rule).
const DEADLINE: Duration = Duration::from_secs(1);
/// For the setup of a round (a daemon starting, a watcher attaching).
const SETUP: Duration = Duration::from_secs(10);
/// Rounds of `make test`: each kind at each moment in each variant once.
const QUICK_ROUNDS: u32 = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Daemon,
    WatchNamed,
    WatchMarked,
    AnchorHold,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moment {
    Attach,
    Idle,
    Reconcile,
    Shutdown,
    ServerExit,
}

/// A process that watches sessions through its own control client and
/// anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watcher {
    Daemon,
    WatchNamed,
    WatchMarked,
}

struct Round {
    n: u32,
    kind: Kind,
    moment: Moment,
    delay: Duration,
    /// Attach: the daemon starts on a running server (0), or (1) with the
    /// server in odd passes of 40 rounds and in even ones attaches again
    /// after its anchor's process was killed (the delay runs from that
    /// kill: it backs off 50 ms, then attaches); a watch is killed after its start (0) or after it took
    /// the attach gate (1). Reconcile: a session is created (0) or a
    /// watched one killed (1). Shutdown: the last watched session was the
    /// server's last (0) or an unwatched one stays (1).
    variant: u32,
    /// The watcher (the killed one, or the one whose anchor-hold is).
    watcher: Watcher,
}

impl Round {
    fn new(n: u32) -> Round {
        const KINDS: [Kind; 4] = [Kind::Daemon, Kind::WatchNamed, Kind::WatchMarked, Kind::AnchorHold];
        const MOMENTS: [Moment; 5] =
            [Moment::Attach, Moment::Idle, Moment::Reconcile, Moment::Shutdown, Moment::ServerExit];
        const WATCHERS: [Watcher; 3] = [Watcher::Daemon, Watcher::WatchNamed, Watcher::WatchMarked];
        let kind = KINDS[(n % 4) as usize];
        let watcher = match kind {
            Kind::Daemon => Watcher::Daemon,
            Kind::WatchNamed => Watcher::WatchNamed,
            Kind::WatchMarked => Watcher::WatchMarked,
            Kind::AnchorHold => WATCHERS[(n / 40 % 3) as usize],
        };
        Round {
            n,
            kind,
            moment: MOMENTS[(n / 4 % 5) as usize],
            delay: Duration::from_micros((u64::from(n) * 370 + u64::from(n / 40) * 9_270) % 15_000),
            variant: n / 20 % 2,
            watcher,
        }
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "round {} ({:?} killed at {:?}", self.n, self.kind, self.moment)?;
        if self.kind == Kind::AnchorHold {
            write!(f, ", the anchor of a {:?}", self.watcher)?;
        }
        write!(
            f,
            ", delay {:?}, variant {}; rerun: make kill-soak KILL_FIRST={} KILL_ROUNDS=1)",
            self.delay, self.variant, self.n
        )
    }
}

fn daemon_pid(v: &Value) -> u32 {
    v["daemon_pid"].as_u64().unwrap_or_else(|| panic!("no daemon_pid in {v}")) as u32
}

/// Changes to files of a directory (inotify), so a round starts its delay
/// at an event, not after a guess.
struct DirWatch {
    fd: OwnedFd,
    dir: PathBuf,
}

impl DirWatch {
    fn new(dir: &Path) -> DirWatch {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap();
        let flags = inotify::WatchFlags::OPEN | inotify::WatchFlags::MODIFY | inotify::WatchFlags::DELETE;
        inotify::add_watch(&fd, dir, flags).unwrap();
        DirWatch { fd, dir: dir.to_owned() }
    }

    /// Waits (deadline) for an event in `flags` on a file named `*suffix`
    /// for which `then` gives a value.
    fn wait<T>(
        &self,
        what: &str,
        flags: inotify::ReadFlags,
        suffix: &str,
        mut then: impl FnMut(&Path) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + SETUP;
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        loop {
            let mut reader = inotify::Reader::new(&self.fd, &mut buf);
            loop {
                let name = match reader.next() {
                    Ok(ev) if ev.events().intersects(flags) => {
                        ev.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                    }
                    Ok(_) => continue,
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => panic!("inotify: {e}"),
                };
                if name.ends_with(suffix) {
                    if let Some(v) = then(&self.dir.join(&name)) {
                        return v;
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            let ts = rustix::time::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
            let mut fds = [rustix::event::PollFd::new(&self.fd, rustix::event::PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => panic!("poll: {e}"),
            }
        }
    }
}

/// The pid a daemon wrote in its lock file.
fn lock_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.lines().next()?.trim().parse().ok()
}

/// The pid in this server's daemon lock file (the daemon that runs).
fn daemon_of_lock(s: &TmuxServer) -> u32 {
    lock_pid(&s.runtime_file(".lock")).unwrap_or_else(|| panic!("no pid in {}", s.runtime_file(".lock").display()))
}

/// A live (not zombie) process of this server: its pid, parent and argv.
struct Proc {
    pid: u32,
    ppid: u32,
    args: Vec<String>,
}

impl fmt::Debug for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (parent {}): {}", self.pid, self.ppid, self.args.join(" "))
    }
}

/// The ctb processes (daemons, watchers, anchor holders, one-shots, and
/// their children before they exec) and the `tmux -C` clients of this
/// server (both name its label), but not the tmux server itself.
fn ctb_and_clients(s: &TmuxServer, server: Option<u32>) -> Vec<Proc> {
    let ctb = util::ctb_path().to_string_lossy().into_owned();
    all_pids()
        .into_iter()
        .filter(|&p| p != std::process::id() && Some(p) != server)
        .filter_map(|pid| {
            let (state, ppid, _) = proc_stat(pid)?;
            let args = proc_args(pid);
            let first = args.first()?;
            let is_ctb = first.starts_with(&ctb);
            let is_client = Path::new(first).file_name().is_some_and(|n| n == "tmux") && args.iter().any(|a| a == "-C");
            (state != 'Z' && (is_ctb || is_client) && args.contains(&s.label)).then_some(Proc { pid, ppid, args })
        })
        .collect()
}

/// Anchor sessions (by name or by option) and their panes' pids.
fn anchors(s: &TmuxServer) -> Vec<(String, u32)> {
    let out = s
        .tmux()
        .args(["list-panes", "-a", "-F", "#{session_name}\t#{pane_pid}\t#{@ctb-anchor}"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (name, pid, opt) = (f.next()?, f.next()?.parse().ok()?, f.next().unwrap_or_default());
            (name.starts_with("ctb-anchor-") || !opt.is_empty()).then(|| (name.to_owned(), pid))
        })
        .collect()
}

/// The anchor of watcher `pid` and its pane's pid (the anchor-hold): as
/// tmux lists it, else (a listing under load once missed an anchor that
/// existed) the anchor-hold process naming it.
fn anchor_of(s: &TmuxServer, pid: u32) -> Option<(String, u32)> {
    let prefix = format!("ctb-anchor-{pid}-");
    anchors(s).into_iter().find(|(n, _)| n.starts_with(&prefix)).or_else(|| {
        ctb_and_clients(s, None).into_iter().find_map(|p| {
            let i = p.args.iter().position(|a| a == "anchor-hold")?;
            let name = p.args.get(i + 1).filter(|n| n.starts_with(&prefix))?;
            Some((name.clone(), p.pid))
        })
    })
}

/// The tmux server's pid, if one answers.
fn server_pid(s: &TmuxServer) -> Option<u32> {
    let out = s.tmux().args(["display-message", "-p", "#{pid}"]).stderr(Stdio::null()).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The server's `@ctb-daemon` record ("" if none or no server).
fn daemon_record(s: &TmuxServer) -> String {
    let out = s.tmux().args(["-N", "show-options", "-s", "-q", "-v", "@ctb-daemon"]).stderr(Stdio::null()).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}

/// What a round leaves to check: the killed process, the watcher kept on
/// purpose, the killed anchor-hold's anchor.
struct Killed {
    target: u32,
    at: Instant,
    keep: Option<u32>,
    dead_anchor: Option<String>,
    server: Option<u32>,
}

impl Killed {
    /// Whether a process may outlive the kill: the kept watcher, its
    /// children (its control client) and its anchors' holders, but
    /// nothing of the killed anchor.
    fn allowed(&self, p: &Proc) -> bool {
        let Some(k) = self.keep else { return false };
        if self.dead_anchor.as_ref().is_some_and(|d| p.args.contains(d)) {
            return false;
        }
        let prefix = format!("ctb-anchor-{k}-");
        p.pid == k || p.ppid == k || p.args.iter().any(|a| a.starts_with(&prefix))
    }

    fn anchor_allowed(&self, name: &str) -> bool {
        self.keep.is_some_and(|k| name.starts_with(&format!("ctb-anchor-{k}-")))
            && self.dead_anchor.as_deref() != Some(name)
    }
}

/// Waits (on pidfds, until `deadline`) for the processes `allowed` does not
/// allow to exit; the ones still there then.
fn processes_left(
    s: &TmuxServer,
    server: Option<u32>,
    deadline: Instant,
    allowed: impl Fn(&Proc) -> bool,
) -> Vec<Proc> {
    loop {
        let left: Vec<Proc> = ctb_and_clients(s, server).into_iter().filter(|p| !allowed(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        for p in &left {
            wait_pid(p.pid, deadline.saturating_duration_since(Instant::now()));
        }
    }
}

/// The last lines of this server's daemon log.
fn log_tail(s: &TmuxServer, n: usize) -> Vec<String> {
    let log = std::fs::read_dir(s.ctb_dir())
        .ok()
        .and_then(|rd| rd.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().ends_with(".log")))
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned())
        .unwrap_or_default();
    let lines: Vec<String> = log.lines().map(str::to_owned).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Everything of this server worth a look after a leftover.
fn state(s: &TmuxServer, server: Option<u32>) -> String {
    format!(
        "server {server:?} alive {}; sessions {:?}; anchors {:?}; @ctb-daemon {:?}; processes {:?}; daemon log tail {:?}",
        server.is_some_and(pid_alive),
        s.session_names(),
        anchors(s),
        daemon_record(s),
        ctb_and_clients(s, server),
        log_tail(s, 6),
    )
}

/// The checks of the rule after a kill; what was left.
fn check(s: &TmuxServer, k: &Killed) -> Vec<String> {
    let mut left = Vec::new();
    let deadline = k.at + DEADLINE;
    if !wait_pid(k.target, deadline.saturating_duration_since(Instant::now())) {
        left.push(format!("the killed process {} is still there", k.target));
    }
    // No control client, no ctb process (its anchor-hold, its one-shots).
    for p in processes_left(s, k.server, deadline, |p| k.allowed(p)) {
        left.push(format!("process left after 1 s: {p:?}"));
    }
    // No anchor: each one's process exits (an anchor-hold removes its
    // anchor before it exits; a killed one's pane closes), then none is
    // listed. A pane whose process has just died is removed by the server
    // in its next loop: each listing is one more round trip.
    for (name, pid) in anchors(s).into_iter().filter(|(n, _)| !k.anchor_allowed(n)) {
        if !wait_pid(pid, deadline.saturating_duration_since(Instant::now())) {
            left.push(format!("the process {pid} of anchor {name} is still there after 1 s"));
        }
    }
    let mut stale: Vec<(String, u32)> = Vec::new();
    for _ in 0..3 {
        stale = anchors(s).into_iter().filter(|(n, _)| !k.anchor_allowed(n)).collect();
        if stale.is_empty() {
            break;
        }
    }
    for (name, pid) in stale {
        left.push(format!("anchor {name} left (its process {pid} alive: {})", pid_alive(pid)));
    }
    // No record of a dead daemon.
    let record = daemon_record(s);
    if !record.is_empty() {
        let pid: Option<u32> = record.split('\t').next().and_then(|p| p.parse().ok());
        if pid.is_none() || pid != k.keep || !pid.is_some_and(pid_alive) {
            left.push(format!("@ctb-daemon left: {record:?} (alive: {})", pid.is_some_and(pid_alive)));
        }
    }
    if !left.is_empty() {
        left.push(format!("state then: {}", state(s, k.server)));
    }
    let found = left.len();
    // No server kept alive by ctb alone: with the user's sessions gone, it
    // exits within 1 s (after the kill if they were gone already, else
    // after they were killed now).
    let Some(server) = k.server.filter(|&p| pid_alive(p)) else { return left };
    let users = s.session_names();
    let deadline = if users.is_empty() {
        deadline
    } else {
        for name in &users {
            let _ = s.ctb().args(["session-kill", name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        Instant::now() + DEADLINE
    };
    if !wait_pid(server, deadline.saturating_duration_since(Instant::now())) {
        left.push(format!(
            "the tmux server {server} outlived the user's sessions ({}) by 1 s",
            if users.is_empty() {
                "gone before the checks".to_owned()
            } else {
                format!("{users:?} killed after the checks")
            }
        ));
    }
    for p in processes_left(s, Some(server), deadline, |_| false) {
        left.push(format!("process left after the user's sessions: {p:?}"));
    }
    if left.len() > found {
        left.push(format!("state then: {}", state(s, Some(server))));
    }
    left
}

/// The round's watcher process: its pid, and the `ctb watch` child or the
/// `session-create` that started the daemon (reaped at the end).
#[derive(Default)]
struct Started {
    pid: u32,
    watch: Option<Watch>,
    spawner: Option<Child>,
}

/// Creates `name`, watched by `w` (the daemon through `session-create`,
/// which starts it: its pid).
fn watched_session(s: &TmuxServer, name: &str, w: Watcher) -> Option<u32> {
    match w {
        Watcher::Daemon => Some(daemon_pid(&s.create(name))),
        Watcher::WatchNamed => {
            s.ok(&["session-create", name, "--no-watch"]);
            None
        }
        Watcher::WatchMarked => {
            s.tmux_ok(&["new-session", "-d", "-s", name, ";", "set-option", "@ctb-watched", "1"]);
            None
        }
    }
}

fn spawn_watch(s: &TmuxServer, w: Watcher, names: &[&str]) -> Watch {
    s.watch(if w == Watcher::WatchMarked { &[] } else { names })
}

/// `ctb session-create a` in the background: it starts the daemon.
fn spawn_create(s: &TmuxServer) -> Child {
    s.ctb().args(["session-create", "a"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// Starts the round's watcher with its sessions and brings it to the
/// round's moment; the pid to kill then (the watcher, or its anchor's
/// process), the anchor that dies with an anchor-hold, and the server's
/// pid (if it ran before the moment).
fn reach_moment(s: &TmuxServer, r: &Round, w: &mut Started) -> (u32, Option<String>, Option<u32>) {
    let hold = r.kind == Kind::AnchorHold;
    let dw = |s: &TmuxServer| DirWatch::new(&s.ctb_dir());
    // The attach gate lives in ctb's per-user lock directory, shared by
    // every test: only this server's gate file counts.
    let gw = || {
        let dir = PathBuf::from(format!("/tmp/ctb-{}", rustix::process::getuid().as_raw()));
        let _ = std::fs::create_dir(&dir);
        util::set_mode(&dir, 0o700);
        DirWatch::new(&dir)
    };
    let ours = |p: &Path| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&s.label)).then_some(());
    if r.moment == Moment::Attach {
        let server;
        // The watcher starts now; the delay runs from an event of its start.
        if r.watcher == Watcher::Daemon && !hold && r.variant == 1 && (r.n / 40).is_multiple_of(2) {
            let pid = daemon_pid(&s.create("a"));
            let (_, anchor_pid) = anchor_of(s, pid).unwrap_or_else(|| panic!("{r}: no anchor of {pid}"));
            let server = server_pid(s);
            signal_pid(anchor_pid, Signal::KILL);
            assert!(wait_pid(anchor_pid, SETUP), "{r}: the anchor's process {anchor_pid} stayed");
            w.pid = pid;
            return (pid, None, server);
        }
        if r.watcher == Watcher::Daemon {
            if r.variant == 0 || hold {
                s.ok(&["session-create", "base", "--no-watch"]);
            }
            server = server_pid(s);
            let dw = dw(s);
            let gw = gw();
            w.spawner = Some(spawn_create(s));
            if hold {
                // The daemon's first attach is done (it released the attach
                // gate): its anchor and the anchor's process exist.
                gw.wait("the daemon's attach", inotify::ReadFlags::DELETE, ".attach", ours);
                w.pid = daemon_of_lock(s);
            } else {
                // The daemon runs: it wrote its pid in its lock.
                w.pid = dw.wait("the daemon's lock", inotify::ReadFlags::MODIFY, ".lock", lock_pid);
            }
        } else {
            watched_session(s, "a", r.watcher);
            server = server_pid(s);
            let gw = gw();
            let watch = spawn_watch(s, r.watcher, &["a"]);
            w.pid = watch.child.id();
            w.watch = Some(watch);
            if hold {
                gw.wait("the watch's attach", inotify::ReadFlags::DELETE, ".attach", ours);
            } else if r.variant == 1 {
                gw.wait("the watch's attach gate", inotify::ReadFlags::OPEN, ".attach", ours);
            }
        }
        if !hold {
            return (w.pid, None, server);
        }
        let (anchor, pid) =
            anchor_of(s, w.pid).unwrap_or_else(|| panic!("{r}: no anchor of {}: {}", w.pid, state(s, None)));
        return (pid, Some(anchor), server);
    }
    // The watcher attached, idle, with its sessions.
    let names: &[&str] = if r.moment == Moment::Reconcile { &["a", "b"] } else { &["a"] };
    let mut daemon = None;
    for name in names {
        daemon = watched_session(s, name, r.watcher).or(daemon);
    }
    if r.moment == Moment::Shutdown && r.variant == 1 {
        s.ok(&["session-create", "u", "--no-watch"]);
    }
    match daemon {
        Some(pid) => w.pid = pid,
        None => {
            let mut watch = spawn_watch(s, r.watcher, names);
            watch.wait_event("watching");
            w.pid = watch.child.id();
            w.watch = Some(watch);
        }
    }
    let anchor =
        hold.then(|| anchor_of(s, w.pid).unwrap_or_else(|| panic!("{r}: no anchor of {}: {}", w.pid, state(s, None))));
    let server = server_pid(s);
    match r.moment {
        Moment::Attach | Moment::Idle => {}
        Moment::Reconcile if r.variant == 0 => {
            s.tmux_ok(&["new-session", "-d", "-s", "c", ";", "set-option", "@ctb-watched", "1"]);
        }
        Moment::Reconcile => {
            s.tmux_ok(&["kill-session", "-t", "=b"]);
        }
        Moment::Shutdown => {
            s.tmux_ok(&["kill-session", "-t", "=a"]);
        }
        Moment::ServerExit => {
            s.tmux_ok(&["kill-server"]);
        }
    }
    match anchor {
        Some((name, pid)) => (pid, Some(name), server),
        None => (w.pid, None, server),
    }
}

/// One round on a fresh server; what it left.
fn round(r: &Round) -> Vec<String> {
    let s = TmuxServer::new();
    std::fs::create_dir_all(s.ctb_dir()).unwrap();
    util::set_mode(&s.ctb_dir(), 0o700);
    let mut w = Started::default();
    let (target, dead_anchor, server) = reach_moment(&s, r, &mut w);
    std::thread::sleep(r.delay);
    signal_pid(target, Signal::KILL);
    let at = Instant::now();
    // A daemon that starts with the server: the server runs by now.
    let server = server.or_else(|| server_pid(&s));
    let keep = (r.kind == Kind::AnchorHold).then_some(w.pid);
    let left = check(&s, &Killed { target, at, keep, dead_anchor, server });
    if std::env::var_os("CTB_KILL_VERBOSE").is_some() {
        eprintln!("{r}: daemon log {:?}", log_tail(&s, 20));
    }
    // Whatever is left is ours (it names our private server): end it.
    for p in ctb_and_clients(&s, server) {
        signal_pid(p.pid, Signal::KILL);
    }
    if let Some(mut c) = w.spawner.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    left
}

/// Runs rounds `first..first + n`; panics listing every leftover.
fn run_rounds(first: u32, n: u32) {
    let start = Instant::now();
    let mut failed = Vec::new();
    for i in first..first + n {
        let r = Round::new(i);
        let t = Instant::now();
        // A round that cannot reach its moment fails too, but the others
        // still run (its server is removed while unwinding).
        let left = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| round(&r))).unwrap_or_else(|e| {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            vec![format!("the round failed before its checks: {}", msg.unwrap_or_default())]
        });
        eprintln!("{r}: {} in {:?}", if left.is_empty() { "clean" } else { "LEFTOVERS" }, t.elapsed());
        for l in &left {
            eprintln!("    {l}");
        }
        if !left.is_empty() {
            failed.push(format!("{r}:\n    {}", left.join("\n    ")));
        }
    }
    eprintln!("kill_random: {n} rounds from {first} in {:?}: {} with leftovers", start.elapsed(), failed.len());
    assert!(failed.is_empty(), "{} of {n} rounds left something:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn sigkill_at_varied_moments_leaves_nothing() {
    run_rounds(0, QUICK_ROUNDS);
}

#[test]
#[ignore = "long: run with `make kill-soak` (CTB_KILL_ROUNDS, default 100; CTB_KILL_FIRST, default 0)"]
fn sigkill_at_varied_moments_leaves_nothing_soak() {
    let env = |k: &str, d: u32| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    run_rounds(env("CTB_KILL_FIRST", 0), env("CTB_KILL_ROUNDS", 100));
}

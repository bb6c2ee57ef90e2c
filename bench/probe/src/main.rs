//! ctb-probe: the measurement helper behind `make bench` (bench/run.sh).
//!
//! Every timing here is taken around a blocking wait on the thing measured
//! (a pidfd, a pipe, a child's exit), never around a sleep loop; the only
//! sleep is `idle`, whose job is to let a fixed window of time pass.
//! Every subcommand prints one JSON object on one line.
//!
//! ```text
//! ctb-probe close-to-exit SOCKET SESSION PID
//! ctb-probe event-latency SOCKET CTB RUNS PREFIX EXPECT_WATCHING
//! ctb-probe idle PID SECONDS
//! ctb-probe rss PID
//! ctb-probe time -- CMD [ARGS...]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use serde_json::{json, Value};

/// Longest any single wait may take before the probe gives up.
const DEADLINE: Duration = Duration::from_secs(15);
/// /proc reports times in USER_HZ, which Linux fixes at 100.
const USER_HZ: u64 = 100;

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("close-to-exit") if args.len() == 4 => close_to_exit(&args[1], &args[2], &args[3]),
        Some("event-latency") if args.len() == 6 => event_latency(&args[1], &args[2], &args[3], &args[4], &args[5]),
        Some("idle") if args.len() == 3 => idle(&args[1], &args[2]),
        Some("rss") if args.len() == 2 => rss(&args[1]),
        Some("time") if args.len() >= 3 && args[1] == "--" => time_cmd(&args[2..]),
        _ => Err("usage: ctb-probe close-to-exit SOCKET SESSION PID | event-latency SOCKET CTB RUNS PREFIX \
                  EXPECT_WATCHING | idle PID SECONDS | rss PID | time -- CMD [ARGS...]"
            .into()),
    };
    match r {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ctb-probe: {e}");
            println!("{}", json!({ "error": e }));
            ExitCode::from(2)
        }
    }
}

fn tmux_bin() -> String {
    std::env::var("TMUX_BIN").unwrap_or_else(|_| "tmux".into())
}

/// A tmux client command on the private server SOCKET (same setup as ctb:
/// `-L SOCKET -f /dev/null`).
fn tmux(socket: &str) -> Command {
    let mut c = Command::new(tmux_bin());
    c.args(["-L", socket, "-f", "/dev/null"]).env_remove("TMUX");
    c
}

fn parse_pid(s: &str) -> Res<Pid> {
    let n: i32 = s.parse().map_err(|_| format!("bad pid {s:?}"))?;
    Pid::from_raw(n).ok_or_else(|| format!("bad pid {s:?}"))
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Blocks in poll() until `fd` is readable or the deadline passes.
fn wait_readable(fd: impl AsFd, deadline: Instant) -> Res<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ts = rustix::time::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as _ };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
}

/// (a) From `tmux kill-session -t =SESSION` returning to PID having exited,
/// waited for in poll() on a pidfd (readable once the process has exited).
fn close_to_exit(socket: &str, session: &str, pid: &str) -> Res<Value> {
    let pidfd = pidfd_open(parse_pid(pid)?, PidfdFlags::empty()).map_err(|e| format!("pidfd_open({pid}): {e}"))?;
    // If it already exited, the measurement would be meaningless.
    if wait_readable(&pidfd, Instant::now() + Duration::from_millis(1))? {
        return Err(format!("process {pid} exited before the session was killed"));
    }
    let start = Instant::now();
    let out = tmux(socket)
        .args(["kill-session", "-t", &format!("={session}")])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running tmux: {e}"))?;
    let t0 = Instant::now();
    if !out.status.success() {
        return Err(format!(
            "tmux kill-session -t ={session} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !wait_readable(&pidfd, t0 + DEADLINE)? {
        return Err(format!("process {pid} still running {}s after the kill", DEADLINE.as_secs()));
    }
    let t1 = Instant::now();
    Ok(json!({ "us": micros(t1 - t0), "kill_cmd_us": micros(t0 - start) }))
}

/// Reads lines from a child's stdout with a deadline (poll, then read).
struct Lines {
    child: Child,
    buf: Vec<u8>,
}

impl Lines {
    fn next_line(&mut self, deadline: Instant) -> Res<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            let out = self.child.stdout.as_mut().ok_or("no stdout")?;
            if !wait_readable(out.as_fd(), deadline)? {
                return Err("timed out waiting for a line from ctb watch".into());
            }
            let mut chunk = [0u8; 65536];
            let n = out.read(&mut chunk).map_err(|e| format!("reading ctb watch: {e}"))?;
            if n == 0 {
                return Err("ctb watch closed its output".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next event line whose "event" is `kind` (other lines skipped).
    fn wait_event(&mut self, kind: &str, session: Option<&str>, deadline: Instant) -> Res<Value> {
        loop {
            let line = self.next_line(deadline)?;
            let v: Value = serde_json::from_str(&line).map_err(|e| format!("bad line {line:?}: {e}"))?;
            if v["event"] == "watch-end" {
                return Err(format!("ctb watch ended early: {line}"));
            }
            if v["event"] == kind && session.is_none_or(|s| v["session"] == s) {
                return Ok(v);
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        // SIGTERM: ctb watch prints watch-end (reason signal) and exits.
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

/// (b) Spawns `CTB watch` (no arguments: the sessions marked watched), waits
/// for its EXPECT_WATCHING `watching` lines, then RUNS times creates a
/// watched session PREFIX-i and times from `tmux new-session` returning to
/// the matching `session-created` line. Kills the sessions it created.
fn event_latency(socket: &str, ctb: &str, runs: &str, prefix: &str, expect: &str) -> Res<Value> {
    let runs: usize = runs.parse().map_err(|_| "bad RUNS")?;
    let expect: usize = expect.parse().map_err(|_| "bad EXPECT_WATCHING")?;
    let started = Instant::now();
    let child = Command::new(ctb)
        .args(["-L", socket, "-f", "/dev/null", "watch"])
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {ctb} watch: {e}"))?;
    let mut lines = Lines { child, buf: Vec::new() };
    for _ in 0..expect {
        lines.wait_event("watching", None, started + DEADLINE)?;
    }
    let ready_us = micros(started.elapsed());
    // ctb watch prints `watching` from an out-of-band listing and attaches
    // its `tmux -C` client afterwards. tmux (up to at least 3.5a) crashes
    // if anything notifies control clients while one is half-way through
    // attaching (NULL control_state in control_write; tmux/tmux#4980), so
    // wait until that client is fully attached before creating sessions.
    let attached_us = wait_control_attached(socket, lines.child.id(), started + DEADLINE)?;
    let (mut after_return, mut from_spawn, mut cmd_us) = (Vec::new(), Vec::new(), Vec::new());
    let mut created = Vec::new();
    for i in 0..runs {
        let name = format!("{prefix}-{i}");
        let start = Instant::now();
        let out = tmux(socket)
            // `cat`, not the login shell: a shell's startup files (pyenv,
            // ...) would compete with the watcher for the CPUs.
            .args(["new-session", "-d", "-s", &name, "cat", ";", "set-option", "@ctb-watched", "1"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running tmux: {e}"))?;
        let t0 = Instant::now();
        if !out.status.success() {
            return Err(format!(
                "tmux new-session -s {name} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        created.push(name.clone());
        lines.wait_event("session-created", Some(&name), t0 + DEADLINE)?;
        let t1 = Instant::now();
        after_return.push(micros(t1 - t0));
        from_spawn.push(micros(t1 - start));
        cmd_us.push(micros(t0 - start));
    }
    drop(lines);
    kill_sessions(socket, &created)?;
    Ok(json!({
        "us": after_return,
        "from_spawn_us": from_spawn,
        "new_session_cmd_us": cmd_us,
        "watch_ready_us": ready_us,
        "watch_attached_us": attached_us,
        "watching": expect,
    }))
}

/// Readiness, not a measurement: polls `tmux list-clients` (every 2 ms)
/// until a client whose parent is `parent` is attached to a session (tmux
/// lists only clients with a session, which control clients get after
/// identification). Returns microseconds since `parent` was started.
fn wait_control_attached(socket: &str, parent: u32, deadline: Instant) -> Res<u64> {
    let start = deadline - DEADLINE;
    loop {
        let out = tmux(socket)
            .args(["list-clients", "-F", "#{client_pid}"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("running tmux: {e}"))?;
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let ppid = read(&format!("/proc/{pid}/stat"))
                .and_then(|s| stat_fields(&s).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok())));
            if ppid == Some(parent) {
                return Ok(micros(start.elapsed()));
            }
        }
        if Instant::now() >= deadline {
            return Err("ctb watch's control client never attached".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kills the named sessions, 100 per tmux invocation.
fn kill_sessions(socket: &str, names: &[String]) -> Res<()> {
    for chunk in names.chunks(100) {
        let mut c = tmux(socket);
        for (i, n) in chunk.iter().enumerate() {
            if i > 0 {
                c.arg(";");
            }
            c.args(["kill-session", "-t", &format!("={n}")]);
        }
        c.stdin(Stdio::null()).status().map_err(|e| format!("running tmux: {e}"))?;
    }
    Ok(())
}

/// One process's /proc numbers.
#[derive(Default, Clone)]
struct ProcSample {
    /// utime+stime+cutime+cstime (USER_HZ ticks): own threads plus reaped
    /// children.
    ticks: u64,
    /// Per thread: (on-CPU ns from schedstat, voluntary, nonvoluntary).
    threads: BTreeMap<u32, (u64, u64, u64)>,
    comm: String,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// (pid, ppid) of every process.
fn all_ppids() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Some(stat) = read(&format!("/proc/{pid}/stat")) else { continue };
        if let Some(ppid) = stat_fields(&stat).and_then(|f| f.get(1).and_then(|p| p.parse().ok())) {
            out.push((pid, ppid));
        }
    }
    out
}

/// The fields after `(comm)` in /proc/PID/stat: [0] is state (field 3).
fn stat_fields(s: &str) -> Option<Vec<&str>> {
    let close = s.rfind(')')?;
    Some(s[close + 1..].split_whitespace().collect())
}

/// PID and all its descendants (found through every process's ppid, as
/// /proc/PID/task/*/children is not always compiled in).
fn tree(root: u32) -> BTreeSet<u32> {
    let ppids = all_ppids();
    let mut set = BTreeSet::from([root]);
    loop {
        let before = set.len();
        for &(pid, ppid) in &ppids {
            if set.contains(&ppid) {
                set.insert(pid);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

fn status_field(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

fn sample(pid: u32) -> Option<ProcSample> {
    let stat = read(&format!("/proc/{pid}/stat"))?;
    let f = stat_fields(&stat)?;
    // Fields 14..=17 (utime stime cutime cstime) are f[11..=14].
    let ticks = f.get(11..=14)?.iter().map(|x| x.parse::<u64>().unwrap_or(0)).sum();
    let comm = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
    let mut threads = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let ns = read(&format!("/proc/{pid}/task/{tid}/schedstat"))
                .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
                .unwrap_or(0);
            let st = read(&format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
            threads.insert(
                tid,
                (ns, status_field(&st, "voluntary_ctxt_switches:"), status_field(&st, "nonvoluntary_ctxt_switches:")),
            );
        }
    }
    Some(ProcSample { ticks, threads, comm })
}

fn system_forks() -> u64 {
    read("/proc/stat")
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("processes ").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

fn sample_tree(root: u32) -> BTreeMap<u32, ProcSample> {
    tree(root).into_iter().filter_map(|p| sample(p).map(|s| (p, s))).collect()
}

/// (c) Idle cost of PID and its descendants over SECONDS.
fn idle(pid: &str, seconds: &str) -> Res<Value> {
    let root: u32 = pid.parse().map_err(|_| "bad pid")?;
    let secs: f64 = seconds.parse().map_err(|_| "bad SECONDS")?;
    let forks0 = system_forks();
    let before = sample_tree(root);
    if !before.contains_key(&root) {
        return Err(format!("no process {root}"));
    }
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let after = sample_tree(root);
    let elapsed = t0.elapsed().as_secs_f64();
    let forks1 = system_forks();
    if !after.contains_key(&root) {
        return Err(format!("process {root} exited during the idle window"));
    }
    let ticks0: u64 = before.values().map(|s| s.ticks).sum();
    let ticks1: u64 = after.values().map(|s| s.ticks).sum();
    let (mut ns, mut vol, mut nonvol) = (0u64, 0u64, 0u64);
    for (p, s) in &after {
        for (tid, &(n1, v1, nv1)) in &s.threads {
            let (n0, v0, nv0) = before.get(p).and_then(|b| b.threads.get(tid).copied()).unwrap_or((0, 0, 0));
            ns += n1.saturating_sub(n0);
            vol += v1.saturating_sub(v0);
            nonvol += nv1.saturating_sub(nv0);
        }
    }
    let names = |m: &BTreeMap<u32, ProcSample>| -> Vec<Value> {
        m.iter().map(|(p, s)| json!({"pid": p, "comm": s.comm, "threads": s.threads.len()})).collect()
    };
    let new: Vec<u32> = after.keys().filter(|p| !before.contains_key(p)).copied().collect();
    let gone: Vec<u32> = before.keys().filter(|p| !after.contains_key(p)).copied().collect();
    let threads0: BTreeSet<u32> = before.values().flat_map(|s| s.threads.keys().copied()).collect();
    let threads1: BTreeSet<u32> = after.values().flat_map(|s| s.threads.keys().copied()).collect();
    Ok(json!({
        "seconds": elapsed,
        "cpu_ms": (ticks1.saturating_sub(ticks0)) as f64 * 1000.0 / USER_HZ as f64,
        "cpu_ns_schedstat": ns,
        "voluntary_ctxt": vol,
        "nonvoluntary_ctxt": nonvol,
        "ctxt": vol + nonvol,
        "tree_before": names(&before),
        "tree_after": names(&after),
        "new_descendants": new,
        "gone_descendants": gone,
        "new_threads": threads1.difference(&threads0).count(),
        "system_forks": forks1.saturating_sub(forks0),
    }))
}

/// (d) VmRSS / VmHWM of PID, and the sum over its descendants.
fn rss(pid: &str) -> Res<Value> {
    let root: u32 = pid.parse().map_err(|_| "bad pid")?;
    let own = read(&format!("/proc/{root}/status")).ok_or_else(|| format!("no process {root}"))?;
    let mut tree_rss = 0;
    let mut members = Vec::new();
    for p in tree(root) {
        if let Some(st) = read(&format!("/proc/{p}/status")) {
            let r = status_field(&st, "VmRSS:");
            tree_rss += r;
            let comm = read(&format!("/proc/{p}/comm")).unwrap_or_default();
            members.push(json!({"pid": p, "comm": comm.trim(), "vmrss_kib": r}));
        }
    }
    Ok(json!({
        "vmrss_kib": status_field(&own, "VmRSS:"),
        "vmhwm_kib": status_field(&own, "VmHWM:"),
        "tree_vmrss_kib": tree_rss,
        "tree": members,
    }))
}

/// Wall time of one command (spawn to exit), with its stdout.
fn time_cmd(cmd: &[String]) -> Res<Value> {
    let start = Instant::now();
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", cmd[0]))?;
    let us = micros(start.elapsed());
    Ok(json!({
        "us": us,
        "status": out.status.code(),
        "stdout": String::from_utf8_lossy(&out.stdout).trim_end(),
    }))
}

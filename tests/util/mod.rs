//! Test helpers: the ctb binary, and a private tmux server (with its own
//! ctb runtime directory) that is killed and removed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn ctb_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ctb"))
}

/// The ctb binary with no server selection.
pub fn ctb_bare() -> Command {
    Command::new(ctb_path())
}

/// A private tmux server `ctb-test-<pid>-<n>` and a private runtime dir.
pub struct TmuxServer {
    pub label: String,
    pub runtime: PathBuf,
}

impl TmuxServer {
    pub fn new() -> TmuxServer {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let label = format!("ctb-test-{}-{n}", std::process::id());
        let runtime = std::env::temp_dir().join(format!("ctb-test-rt-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&runtime);
        std::fs::create_dir_all(&runtime).unwrap();
        set_mode(&runtime, 0o700);
        TmuxServer { label, runtime }
    }

    /// ctb's runtime directory for this server.
    pub fn ctb_dir(&self) -> PathBuf {
        self.runtime.join("ctb")
    }

    /// `ctb -L label -f /dev/null` with this runtime dir.
    pub fn ctb(&self) -> Command {
        let mut c = Command::new(ctb_path());
        c.args(["-L", &self.label, "-f", "/dev/null"]).env("XDG_RUNTIME_DIR", &self.runtime).stdin(Stdio::null());
        c
    }

    /// `tmux -L label -f /dev/null`.
    pub fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.label, "-f", "/dev/null"]).stdin(Stdio::null());
        c
    }

    /// Runs tmux; its trimmed stdout (panics on failure).
    pub fn tmux_ok(&self, args: &[&str]) -> String {
        let out = self.tmux().args(args).output().unwrap();
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// Runs ctb; its JSON line and whether it exited 0.
    pub fn ctb_json(&self, args: &[&str]) -> (Value, bool) {
        let out = self.ctb().args(args).output().unwrap();
        (parse_line(&out), out.status.success())
    }

    /// Runs ctb and expects success.
    pub fn ok(&self, args: &[&str]) -> Value {
        let (v, ok) = self.ctb_json(args);
        assert!(ok && v["status"] == "success", "ctb {args:?} failed: {v}");
        v
    }

    pub fn create(&self, name: &str) -> Value {
        self.ok(&["session-create", name])
    }

    pub fn status(&self) -> Value {
        self.ok(&["daemon", "status"])
    }

    /// Session names, without watchers' anchor sessions.
    pub fn session_names(&self) -> Vec<String> {
        let out = self.tmux().args(["list-sessions", "-F", "#{?@ctb-anchor,,#{session_name}}"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }

    /// The name tmux has stored for session `id` (`$N`), as it lists it.
    pub fn session_name_of(&self, id: &str) -> Option<String> {
        let out = self.tmux().args(["list-sessions", "-F", "#{session_id} #{session_name}"]).output().unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        out.lines().find_map(|l| l.split_once(' ').filter(|(i, _)| *i == id).map(|(_, n)| n.to_owned()))
    }

    /// Anchor sessions (watchers' private sessions).
    pub fn anchors(&self) -> Vec<String> {
        let out = self.tmux().args(["list-sessions", "-F", "#{?@ctb-anchor,#{session_name},}"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }

    /// Files in the runtime dir other than logs.
    pub fn runtime_files(&self) -> Vec<String> {
        match std::fs::read_dir(self.ctb_dir()) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".log"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The tmux server's pid (we started it through ctb).
    pub fn server_pid(&self) -> u32 {
        self.tmux_ok(&["display-message", "-p", "#{pid}"]).parse().unwrap()
    }

    /// Starts `ctb watch ARGS` with its stdout captured.
    pub fn watch(&self, args: &[&str]) -> Watch {
        let mut child =
            self.ctb().arg("watch").args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let lines = line_reader(child.stdout.take().unwrap());
        Watch { child, lines, seen: Vec::new() }
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        // Stop our daemon (it proves its identity through its lock), then
        // kill our server by its private socket, then remove our files.
        let _ = self.ctb().args(["daemon", "stop"]).output();
        let server = self.tmux().args(["display-message", "-p", "#{pid}"]).stderr(Stdio::null()).output();
        let server = server.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok());
        let _ = self.tmux().arg("kill-server").stderr(Stdio::null()).output();
        // Our server, by the pid it reported on our private socket: make
        // sure it is gone before its socket file is.
        if let Some(pid) = server {
            if !wait_pid(pid, Duration::from_secs(5)) {
                if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
        let uid = rustix::process::getuid().as_raw();
        let _ = std::fs::remove_file(format!("/tmp/tmux-{uid}/{}", self.label));
        let _ = std::fs::remove_dir_all(&self.runtime);
    }
}

/// The lines a child prints, read on a thread (so tests can wait on them
/// with a deadline).
pub fn line_reader(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `ctb watch`.
pub struct Watch {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<Value>,
}

impl Watch {
    /// Waits (with a deadline) for an event line matching `pred`.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_within(what, Duration::from_secs(10), pred)
    }

    pub fn wait_event(&mut self, event: &str) -> Value {
        self.wait_for(event, |v| v["event"] == event)
    }

    /// Waits for the process to exit (deadline); its status code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        assert!(wait_pid(self.child.id(), Duration::from_secs(10)), "ctb watch did not exit");
        self.child.wait().unwrap().code()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Our own child: kill and reap it if it is still there.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn parse_line(out: &Output) -> Value {
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        s.lines().count(),
        1,
        "expected one JSON line, got {s:?} (stderr {:?})",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON: {s:?}: {e}"))
}

/// Waits until process `pid` has exited (through a pidfd, with a deadline).
/// True if it is gone. Only ESRCH from `pidfd_open` means "gone (and
/// reaped)"; any other failure (EMFILE, EPERM, ENOSYS...) says nothing
/// about the process and panics, as does a failing `poll` (EINTR retries).
pub fn wait_pid(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else { panic!("wait_pid: {pid} is not a pid") };
    let fd = match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return true, // already gone (and reaped)
        Err(e) => panic!("wait_pid: pidfd_open({pid}) failed: {e}"),
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = rustix::time::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("wait_pid: poll on the pidfd of {pid} failed: {e}"),
        }
    }
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

// Helpers for the stress and soak tests: processes seen through /proc.

/// A process's state letter, parent pid and start time (clock ticks after
/// boot; with the pid it names one process), from `/proc/PID/stat`.
pub fn proc_stat(pid: u32) -> Option<(char, u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let fields: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, ppid, start))
}

/// A process's argv (empty for zombies and kernel threads).
pub fn proc_args(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Live (non-zombie) children of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    all_pids().into_iter().filter(|&p| matches!(proc_stat(p), Some((s, pp, _)) if pp == pid && s != 'Z')).collect()
}

/// How many file descriptors `pid` has open.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap_or_else(|e| panic!("fds of {pid}: {e}")).count()
}

/// What `pid`'s descriptors point to (`socket:[…]` and `pipe:[…]` lose their inode).
pub fn fd_kinds(pid: u32) -> Vec<String> {
    let mut kinds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|t| {
                    let t = t.to_string_lossy().into_owned();
                    t.split(":[").next().unwrap_or(&t).to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    kinds.sort();
    kinds
}

/// `pid`'s resident set size in KiB (VmRSS).
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("{pid}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// A defunct process and its parent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Zombie {
    pub pid: u32,
    pub start: u64,
    pub ppid: u32,
    pub parent: String,
}

impl TmuxServer {
    /// True if `args` select this server (`-L label`): our tmux server,
    /// tmux clients and every ctb process (daemon, watch, one-shots).
    pub fn is_ours(&self, args: &[String]) -> bool {
        args.windows(2).any(|w| w[0] == "-L" && w[1] == self.label)
    }

    /// Live processes of this server (see [`Self::is_ours`]), with their argv.
    pub fn processes(&self) -> Vec<(u32, String)> {
        all_pids()
            .into_iter()
            .filter(|&p| p != std::process::id())
            .filter_map(|p| {
                let args = proc_args(p);
                (self.is_ours(&args) && pid_alive(p)).then(|| (p, args.join(" ")))
            })
            .collect()
    }

    /// Waits (through pidfds, with a deadline) until no process of this
    /// server is left; panics naming the ones still there.
    pub fn wait_no_processes(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for (pid, _) in self.processes() {
            wait_pid(pid, deadline.saturating_duration_since(Instant::now()));
        }
        let left = self.processes();
        assert!(left.is_empty(), "processes of {} still running: {left:?}", self.label);
    }

    /// Zombies whose parent is a process of this server.
    pub fn zombies(&self) -> Vec<Zombie> {
        all_pids()
            .into_iter()
            .filter_map(|p| {
                let (state, ppid, start) = proc_stat(p)?;
                if state != 'Z' {
                    return None;
                }
                let args = proc_args(ppid);
                self.is_ours(&args).then(|| Zombie { pid: p, start, ppid, parent: args.join(" ") })
            })
            .collect()
    }

    /// The tmux socket (as tmux names it without TMUX_TMPDIR).
    pub fn socket_path(&self) -> PathBuf {
        let uid = rustix::process::getuid().as_raw();
        PathBuf::from(format!("/tmp/tmux-{uid}/{}", self.label))
    }

    /// Whether a tmux server answers on our socket.
    pub fn server_running(&self) -> bool {
        self.tmux().args(["list-sessions"]).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success()
    }

    /// Names of the sessions marked watched (anchors excluded), sorted.
    pub fn marked_sessions(&self) -> Vec<String> {
        let out = self
            .tmux()
            .args(["list-sessions", "-F", "#{?@ctb-anchor,,#{?@ctb-watched,#{session_name},}}"])
            .output()
            .unwrap();
        let mut v: Vec<String> =
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
        v.sort();
        v
    }

    /// The daemon's watched names, sorted (`ctb daemon status`, which is in
    /// sync with tmux at request time).
    pub fn watched_names(&self) -> Vec<String> {
        let mut w: Vec<String> = self.status()["watched"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default();
        w.sort();
        w
    }
}

// Helpers for the daemon robustness tests.

impl TmuxServer {
    /// The running daemon's pid (`ctb daemon status`).
    pub fn daemon_pid(&self) -> u32 {
        let v = self.status();
        v["pid"].as_u64().unwrap_or_else(|| panic!("no daemon pid in {v}")) as u32
    }

    /// The runtime file of this server ending with `suffix` (`.sock`, `.log`).
    pub fn runtime_file(&self, suffix: &str) -> PathBuf {
        std::fs::read_dir(self.ctb_dir())
            .unwrap_or_else(|e| panic!("{}: {e}", self.ctb_dir().display()))
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("no *{suffix} in {}", self.ctb_dir().display()))
    }

    /// The daemon's request socket (`<key>.sock`).
    pub fn daemon_socket(&self) -> PathBuf {
        self.runtime_file(".sock")
    }

    /// The daemon's log text.
    pub fn daemon_log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.runtime_file(".log")).unwrap_or_default()).into_owned()
    }
}

/// Waits (with a deadline) until the text of the file at `path` satisfies
/// `pred`: checks once, then once per change the kernel reports (inotify),
/// never on a timer. True if it did.
pub fn wait_file(path: &Path, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
    use rustix::fs::inotify;
    let deadline = Instant::now() + timeout;
    let text = || String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
    let ino = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap();
    // Watch before the first look: no change between the two is missed.
    inotify::add_watch(&ino, path, inotify::WatchFlags::MODIFY).unwrap();
    loop {
        if pred(&text()) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ts = rustix::time::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [rustix::event::PollFd::new(&ino, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return pred(&text()),
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("poll: {e}"),
        }
        // Drain the events: only "something changed" matters.
        let mut buf = [0u8; 4096];
        while matches!(rustix::io::read(&ino, &mut buf), Ok(n) if n > 0) {}
    }
}

/// The `tmux -C` control client a watcher process (`pid`) started.
pub fn control_client_of(pid: u32) -> u32 {
    let clients: Vec<u32> = children_of(pid).into_iter().filter(|&c| proc_args(c).iter().any(|a| a == "-C")).collect();
    assert_eq!(clients.len(), 1, "control clients of {pid}: {clients:?}");
    clients[0]
}

/// What each of `pid`'s descriptors points to, as `(fd, target)`.
pub fn fd_targets(pid: u32) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("fds of {pid}: {e}"))
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            Some((fd, std::fs::read_link(e.path()).ok()?.to_string_lossy().into_owned()))
        })
        .collect();
    v.sort();
    v
}

/// Sends `sig` to `pid` through a pidfd (no-op if it is gone).
pub fn signal_pid(pid: u32, sig: rustix::process::Signal) {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else { return };
    if let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        let _ = rustix::process::pidfd_send_signal(&fd, sig);
    }
}

impl Watch {
    /// [`Watch::wait_for`] with its own deadline.
    pub fn wait_for_within(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("timed out waiting for {what}; saw {:?}", self.seen),
            }
        }
    }
}

// Helpers for the hardening tests.

/// The `tmux -V` of the `tmux` on PATH as (major, minor): `tmux 3.3a` is
/// (3, 3); `None` for a version it cannot read (`tmux next-3.6`, `master`).
pub fn tmux_version() -> Option<(u32, u32)> {
    let out = Command::new("tmux").arg("-V").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.trim().strip_prefix("tmux ")?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts.next()?.chars().take_while(char::is_ascii_digit).collect();
    Some((major, minor.parse().ok()?))
}

/// Live descendants of `pid` (children first).
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut all = children_of(pid);
    let mut i = 0;
    while i < all.len() {
        let more = children_of(all[i]);
        all.extend(more);
        i += 1;
    }
    all
}

impl TmuxServer {
    /// The session name tmux prints for session `id` (`$N`), from
    /// `list-sessions -F '#{session_id} #{session_name}'`; `None` if no such
    /// session.
    pub fn name_of(&self, id: &str) -> Option<String> {
        let out = self.tmux().args(["list-sessions", "-F", "#{session_id} #{session_name}"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(id).and_then(|rest| rest.strip_prefix(' ')).map(str::to_owned))
    }

    /// Whether session `target` (`$N`, or `=name`) exists.
    pub fn has_session(&self, target: &str) -> bool {
        self.tmux().args(["has-session", "-t", target]).stderr(Stdio::null()).status().unwrap().success()
    }

    /// A user option of the session named exactly `session` (empty when
    /// unset). `display-message -t` is a pane target: `=name:` (a bare
    /// `=name` does not select the session there).
    pub fn session_option(&self, session: &str, option: &str) -> String {
        let out = self.tmux_ok(&[
            "display-message",
            "-p",
            "-t",
            &format!("={session}:"),
            &format!("#{{session_name}} #{{{option}}}"),
        ]);
        // (tmux_ok trims: an empty value loses its separator too.)
        let value = out.strip_prefix(session).filter(|v| v.is_empty() || v.starts_with(' '));
        let value = value.unwrap_or_else(|| panic!("session {session:?} not found: {out:?}"));
        value.strip_prefix(' ').unwrap_or(value).to_owned()
    }

    /// Blocks (with a deadline) until someone runs `tmux wait-for -S
    /// channel` on this server (tmux remembers a signal sent before the
    /// wait). The waiting `tmux wait-for` is our child, waited on through a
    /// pidfd and killed if the deadline passes.
    pub fn wait_channel(&self, channel: &str, timeout: Duration) {
        let mut child = self.tmux().args(["wait-for", channel]).stderr(Stdio::piped()).spawn().unwrap();
        if !wait_pid(child.id(), timeout) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nobody signalled tmux channel {channel:?} within {timeout:?}");
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "tmux wait-for {channel}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Expands `format` for `target` and returns the raw bytes tmux
    /// substituted (as text), not what tmux prints: tmux 3.4 prints `$x` as
    /// `\$x` and control bytes in octal. A `run-shell` writes the expansion
    /// through a quoted here-document (taken as is) into a file.
    pub fn raw_format(&self, target: &str, format: &str) -> String {
        static RAW: AtomicU32 = AtomicU32::new(0);
        let file = self.runtime.join(format!("raw-format-{}", RAW.fetch_add(1, Ordering::SeqCst)));
        let script = format!("cat > '{}' <<'CTB_RAW_EOF'\n{format}\nCTB_RAW_EOF", file.display());
        self.tmux_ok(&["run-shell", "-t", target, &script]);
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let _ = std::fs::remove_file(&file);
        text.strip_suffix('\n').unwrap_or(&text).to_owned()
    }
}

/// A process that is not ctb holding an exclusive `flock` on a file:
/// `flock -o FILE -c 'echo locked; exec cat'`, our child. flock(1) takes
/// the lock, keeps it while its command runs (`-o`: the command does not
/// inherit it) and prints `locked` once it holds it; closing its stdin ends
/// `cat`, then flock, which releases the lock.
pub struct LockHolder {
    child: std::process::Child,
    released: bool,
}

impl LockHolder {
    pub fn start(file: &Path) -> LockHolder {
        let mut child = Command::new("flock")
            .arg("-o")
            .arg(file)
            .args(["-c", "echo locked; exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = line_reader(child.stdout.take().unwrap());
        let line = lines.recv_timeout(Duration::from_secs(10));
        assert_eq!(line.as_deref().ok(), Some("locked"), "flock {} did not take the lock", file.display());
        LockHolder { child, released: false }
    }

    /// The pid of the flock process (the one holding the lock).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends it (its command, then flock: the lock is released) and reaps it.
    pub fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        drop(self.child.stdin.take());
        if !wait_pid(self.child.id(), Duration::from_secs(10)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        self.release();
    }
}

// What tmux stores for a session name, and prints back, per version (read
// in the sources of 3.4, 3.5a and 3.7c, tested on 3.3a, 3.4 and 3.7c).

/// `$` followed by a letter, `_` or `{`: what tmux 3.3a-3.5a escape as `\$`.
fn dollar_escaped(prev: char, next: Option<char>) -> bool {
    prev == '$' && next.is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '{')
}

/// What tmux 3.3a/3.4/3.5a store for a session name (`session_check_name`:
/// `.` and `:` become `_`, then `utf8_stravis`: `\` doubled, `$x` escaped).
fn stored_3_3(asked: &str) -> String {
    let chars: Vec<char> = asked.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '.' | ':' => out.push('_'),
            '\\' => out.push_str("\\\\"),
            '$' if dollar_escaped(c, chars.get(i + 1).copied()) => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out
}

/// How tmux 3.4/3.5a print a stored string (`$x` escaped once more;
/// backslashes left alone).
fn printed_3_4(stored: &str) -> String {
    let chars: Vec<char> = stored.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if dollar_escaped(c, chars.get(i + 1).copied()) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What tmux 3.7 stores for a session name (`clean_name`: stravis, `\`
/// doubled; `.`, `:` and `$` kept).
fn stored_3_7(asked: &str) -> String {
    asked.replace('\\', "\\\\")
}

/// The names `list-sessions` may print for a session created as `asked`
/// (a name without control or non-UTF-8 bytes): exactly one form on the
/// versions researched, any of the documented forms on others.
pub fn stored_forms(asked: &str) -> Vec<String> {
    static VERSION: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
    match *VERSION.get_or_init(tmux_version) {
        Some((3, 3)) => vec![stored_3_3(asked)],
        Some((3, 4 | 5)) => vec![printed_3_4(&stored_3_3(asked))],
        Some((3, 7..)) | Some((4.., _)) => vec![stored_3_7(asked)],
        _ => vec![asked.to_owned(), stored_3_3(asked), printed_3_4(&stored_3_3(asked)), stored_3_7(asked)],
    }
}

impl TmuxServer {
    /// ctb's pane relays on this server (`ctb pane-relay`, started by tmux
    /// through `sh -c`, so matched in the shell's command line too): their
    /// argv names the socket in hex (`--socket-hex`), not with `-L`.
    pub fn relays(&self) -> Vec<u32> {
        let hex: String =
            self.socket_path().as_os_str().as_encoded_bytes().iter().map(|b| format!("{b:02x}")).collect();
        all_pids()
            .into_iter()
            .filter(|&p| {
                let a = proc_args(p);
                a.iter().any(|x| x.contains("pane-relay")) && a.iter().any(|x| x.contains(&hex)) && pid_alive(p)
            })
            .collect()
    }
}

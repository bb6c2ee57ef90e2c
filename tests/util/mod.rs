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
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines: rx, seen: Vec::new() }
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        // Stop our daemon (it proves its identity through its lock), then
        // kill our server by its private socket, then remove our files.
        let _ = self.ctb().args(["daemon", "stop"]).output();
        let _ = self.tmux().arg("kill-server").stderr(Stdio::null()).output();
        let uid = rustix::process::getuid().as_raw();
        let _ = std::fs::remove_file(format!("/tmp/tmux-{uid}/{}", self.label));
        let _ = std::fs::remove_dir_all(&self.runtime);
    }
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
        let deadline = Instant::now() + Duration::from_secs(10);
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
/// True if it is gone.
pub fn wait_pid(pid: u32, timeout: Duration) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else { return true };
    let fd = match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(_) => return true, // already gone (and reaped)
    };
    let ts = rustix::time::Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

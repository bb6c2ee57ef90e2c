//! What an agent relies on from every command (issue 8): one daemon per
//! server whatever the spelling or runtime directory, errors as JSON with
//! true statements, closed pipes, the daemon's manners. Real tmux, each
//! test on its own server.

mod util;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{parse_line, pid_alive, set_mode, wait_pid, TmuxServer};

const DEADLINE: Duration = Duration::from_secs(10);

fn daemon_pid(v: &Value) -> u32 {
    v["daemon_pid"].as_u64().unwrap_or_else(|| panic!("no daemon_pid in {v}")) as u32
}

/// Runs `ctb -S PATH ARGS` with `runtime` as XDG_RUNTIME_DIR (no `-L`).
fn run_s(path: &std::path::Path, runtime: &std::path::Path, args: &[&str]) -> std::process::Output {
    util::ctb_bare()
        .arg("-S")
        .arg(path)
        .args(["-f", "/dev/null"])
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `ctb -S PATH ARGS`, expected to succeed: its reply.
fn ctb_s(s: &TmuxServer, path: &std::path::Path, runtime: &std::path::Path, args: &[&str]) -> Value {
    let out = run_s(path, runtime, args);
    let v = parse_line(&out);
    assert!(out.status.success() && v["status"] == "success", "{args:?} via {}: {v}", path.display());
    let _ = s;
    v
}

/// The `ctb daemon run` processes serving this test's server.
fn daemons(s: &TmuxServer) -> Vec<u32> {
    util::all_pids()
        .into_iter()
        .filter(|&p| {
            let a = util::proc_args(p);
            a.iter().any(|x| x == "run") && a.iter().any(|x| x.contains(&s.label) || x.contains("ctb-spell"))
        })
        .collect()
}

#[test]
fn one_daemon_per_server_whatever_the_spelling() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("a"));
    let sock = s.socket_path();
    let dir = sock.parent().unwrap();
    let name = sock.file_name().unwrap().to_str().unwrap();
    let link = s.runtime.join("ctb-spell-link");
    std::os::unix::fs::symlink(&sock, &link).unwrap();
    let spellings = [
        dir.join(".").join(name),
        std::path::PathBuf::from(format!("{}//{name}", dir.display())),
        dir.join("..").join(dir.file_name().unwrap()).join(name),
        link.clone(),
    ];
    for (i, p) in spellings.iter().enumerate() {
        let st = ctb_s(&s, p, &s.runtime, &["daemon", "status"]);
        assert_eq!(st["pid"], pid, "status via {}: {st}", p.display());
        let v = ctb_s(&s, p, &s.runtime, &["session-create", &format!("s{i}")]);
        assert_eq!(daemon_pid(&v), pid, "create via {}: {v}", p.display());
    }
    assert_eq!(s.anchors().len(), 1, "{:?}", s.anchors());
    assert_eq!(daemons(&s), vec![pid]);
}

#[test]
fn one_daemon_per_server_across_runtime_dirs() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("a"));
    let other = s.runtime.join("second");
    std::fs::create_dir(&other).unwrap();
    set_mode(&other, 0o700);
    let in_other = |args: &[&str]| {
        let out = s.ctb().args(args).env("XDG_RUNTIME_DIR", &other).output().unwrap();
        (parse_line(&out), out.status.success())
    };
    let (st, ok) = in_other(&["daemon", "status"]);
    assert!(ok && st["pid"] == pid && st["responding"] == true, "{st}");
    let (v, ok) = in_other(&["session-create", "b"]);
    assert!(ok && daemon_pid(&v) == pid && v["watched"] == true, "{v}");
    let (v, ok) = in_other(&["daemon", "start"]);
    assert!(ok && v["pid"] == pid && v["started"] == false, "{v}");
    assert_eq!(s.anchors().len(), 1);
    assert_eq!(daemons(&s), vec![pid]);
    // Stopping from the other directory stops the one daemon.
    let (v, ok) = in_other(&["daemon", "stop"]);
    assert!(ok && v["pid"] == pid, "{v}");
    assert!(wait_pid(pid, DEADLINE));
    // Its record is gone from the server with it.
    assert_eq!(s.tmux_ok(&["show-options", "-s", "-q", "-v", "@ctb-daemon"]), "");
}

#[test]
fn usage_errors_are_json_with_exit_status_2() {
    let s = TmuxServer::new();
    for args in [
        &["session-create", "--help-me"][..],
        &["session-create"],
        &["session-kill"],
        &["daemon", "wait", "--timeout", "nan"],
        &["daemon", "wait", "--timeout", "-3"],
        &["daemon", "bogus"],
        &["no-such-command"],
    ] {
        let out = s.ctb().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v = parse_line(&out);
        assert_eq!(v["status"], "error", "{args:?}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with("usage: "), "{v}");
        assert!(v["timestamp"].is_string());
    }
    // Nothing was created by any of them.
    assert!(!s.server_running());
    // `--help` still prints help, with status 0.
    let out = s.ctb().args(["session-create", "--help"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("after `--`"));
    // `inf` is "forever"; with no daemon it returns at once.
    let v = s.ok(&["daemon", "wait", "--timeout", "inf"]);
    assert_eq!(v["running"], false);
}

#[test]
fn a_name_starting_with_a_dash_goes_after_double_dash() {
    let s = TmuxServer::new();
    let v = s.ok(&["session-create", "--no-watch", "--", "-dash", "sh", "-c", "exec cat"]);
    assert_eq!(v["session"], "-dash");
    let v = s.ok(&["session-kill", "--", "-dash"]);
    assert_eq!(v["session"], "-dash");
}

#[test]
fn bad_directories_and_sockets_are_refused_before_anything_happens() {
    let s = TmuxServer::new();
    let (v, ok) = s.ctb_json(&["session-create", "x", "-c", "/nonexistent/ctb-dir"]);
    assert!(!ok && v["error"].as_str().unwrap().contains("/nonexistent/ctb-dir"), "{v}");
    let file = s.runtime.join("plain-file");
    std::fs::write(&file, "precious").unwrap();
    let (v, ok) = s.ctb_json(&["session-create", "x", "-c", file.to_str().unwrap()]);
    assert!(!ok && v["error"].as_str().unwrap().contains("not a directory"), "{v}");
    assert!(!s.server_running(), "a session was created");
    // -S naming a regular file: refused, the file intact.
    for args in [&["session-create", "y"][..], &["session-list"], &["daemon", "status"]] {
        let out = run_s(&file, &s.runtime, args);
        let v = parse_line(&out);
        let _ = (v, out.status);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious", "{args:?}");
    }
    let out = run_s(&file, &s.runtime, &["session-create", "y"]);
    let v = parse_line(&out);
    assert!(!out.status.success() && v["error"].as_str().unwrap().contains("not a socket"), "{v}");
    // -S naming a directory says so.
    let out = run_s(&s.runtime, &s.runtime, &["session-list"]);
    let v = parse_line(&out);
    assert!(!out.status.success() && v["error"].as_str().unwrap().contains("is a directory"), "{v}");
}

#[test]
fn replies_say_what_is_true() {
    let s = TmuxServer::new();
    let v = s.ok(&["session-create", "named", "--no-watch"]);
    let id = v["session_id"].as_str().unwrap().to_owned();
    // Listing times are RFC 3339 like every other time.
    let list = s.ok(&["session-list"]);
    let created = list["output"][0]["created"].as_str().unwrap();
    assert!(created.len() == 24 && created.ends_with('Z') && created.as_bytes()[10] == b'T', "{created}");
    // Killing by id reports the name killed.
    let v = s.ok(&["session-kill", &id]);
    assert_eq!(v["session"], "named");
    assert_eq!(v["session_id"], id.as_str());
    // No doubled causes, and the path is named.
    let (v, ok) = s.ctb_json(&["session-kill", "ghost"]);
    assert!(!ok, "{v}");
    let out = s.ctb().args(["watch", "--record", "/nonexistent/dir/rec", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "watch-end");
    assert_eq!(last["reason"], "error");
    let err = last["error"].as_str().unwrap();
    let once = |e: &str| {
        let parts: Vec<&str> = e.split(": ").collect();
        parts.windows(2).all(|w| w[0] != w[1])
    };
    assert!(once(err), "{err}");
    // A runtime dir that cannot be used: no doubled cause either.
    let bad = s.runtime.join("not-a-dir");
    std::fs::write(&bad, "").unwrap();
    let out = s.ctb().args(["daemon", "status"]).env("XDG_RUNTIME_DIR", &bad).output().unwrap();
    let v = parse_line(&out);
    let err = v["error"].as_str().unwrap();
    assert!(!out.status.success() && once(err) && err.matches("os error").count() <= 1, "{err}");
}

#[test]
fn watch_failures_end_the_stream_with_an_error_line() {
    let s = TmuxServer::new();
    let out = s.ctb().args(["watch", "nosuch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = parse_line(&out);
    assert!(v["event"] == "watch-end" && v["reason"] == "error", "{v}");
    assert!(v["error"].as_str().unwrap().contains("nosuch"), "{v}");
}

#[test]
fn a_closed_stdout_or_stderr_is_an_exit_status_never_a_crash() {
    let s = TmuxServer::new();
    s.ok(&["session-create", "a", "--no-watch"]);
    // One-shot: stdout's reader gone before the reply.
    let mut child = s.ctb().args(["session-list"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    drop(child.stdout.take());
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(1), "{st:?}");
    // A closed stderr (its reader gone): the error is still a JSON line,
    // and no abort.
    let mut child = s.ctb().args(["watch", "nosuch"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stderr.take());
    let mut text = String::new();
    child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(1), "{st:?}");
    assert!(text.contains("watch-end"), "{text}");
    let mut child =
        s.ctb().args(["replay", "/nonexistent"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

#[test]
fn watch_exits_when_its_reader_goes() {
    let s = TmuxServer::new();
    s.ok(&["session-create", "a", "--no-watch"]);
    s.ok(&["session-create", "b", "--no-watch"]);
    let mut child = s.ctb().args(["watch", "a", "b"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    // `| head -n 1`: read one line, then go.
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {}
    drop(out);
    assert!(wait_pid(child.id(), DEADLINE), "watch kept running after its reader left");
    assert_ne!(child.wait().unwrap().code(), Some(0));
    // Its anchor went with it.
    assert!(s.anchors().is_empty(), "{:?}", s.anchors());
}

#[test]
fn the_daemon_works_from_the_root_directory() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("a"));
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), std::path::Path::new("/"));
}

#[test]
fn a_stopped_daemon_gets_a_true_and_bounded_answer() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("a"));
    let p = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(p, rustix::process::Signal::STOP).unwrap();
    let t = Instant::now();
    let st = s.ok(&["daemon", "status"]);
    assert!(st["running"] == true && st["responding"] == false && st["pid"] == pid, "{st}");
    assert!(t.elapsed() < Duration::from_secs(9), "status took {:?}", t.elapsed()); // bounded, not a hang
    let t = Instant::now();
    let v = s.ok(&["session-create", "b"]);
    let took = t.elapsed();
    assert!(v["created"] == true && v["watched"] == false, "{v}");
    assert!(v["warning"].as_str().unwrap().contains("did not answer"), "{v}");
    assert!(took < Duration::from_secs(9), "create took {took:?}");
    assert!(s.session_names().contains(&"b".to_owned()));
    rustix::process::kill_process(p, rustix::process::Signal::CONT).unwrap();
    // Once running again it watches both (b is marked).
    let st = s.status();
    assert_eq!(st["watched"].as_array().unwrap().len(), 2, "{st}");
    assert!(pid_alive(pid));
}

#[test]
fn logs_of_servers_that_are_gone_are_removed() {
    let s = TmuxServer::new();
    // No daemon: no log, no other file.
    s.ok(&["session-create", "plain", "--no-watch"]);
    s.ok(&["session-kill", "plain"]);
    let files: Vec<_> = std::fs::read_dir(s.ctb_dir()).map(|rd| rd.flatten().collect()).unwrap_or_default();
    assert!(files.is_empty(), "{:?}", files.iter().map(|e| e.file_name()).collect::<Vec<_>>());
    // A log left by a daemon of a server that is gone.
    std::fs::create_dir_all(s.ctb_dir()).unwrap();
    set_mode(&s.ctb_dir(), 0o700);
    let stale = s.ctb_dir().join("gone-0123456789abcdef.log");
    std::fs::write(&stale, "2026-01-01T00:00:00Z  INFO daemon starting pid=1 socket=/nonexistent/tmux-gone\n").unwrap();
    let live = s.ctb_dir().join("live-0123456789abcdef.log");
    std::fs::write(&live, format!("x INFO daemon starting pid=1 socket={}\n", s.runtime.display())).unwrap();
    s.create("a");
    assert!(!stale.exists(), "the stale log was kept");
    assert!(live.exists(), "a log whose socket path exists was removed");
}

#[test]
fn long_runtime_paths_still_work() {
    let s = TmuxServer::new();
    // 57 characters of XDG_RUNTIME_DIR, a 47-character -L.
    let long = s.runtime.join("r".repeat(57usize.saturating_sub(s.runtime.as_os_str().len() + 1).max(1)));
    std::fs::create_dir_all(&long).unwrap();
    set_mode(&long, 0o700);
    let label = format!("{}-{}", s.label, "l".repeat(47usize.saturating_sub(s.label.len() + 1).max(1)));
    let run = |args: &[&str]| {
        let out = util::ctb_bare()
            .args(["-L", &label, "-f", "/dev/null"])
            .args(args)
            .env("XDG_RUNTIME_DIR", &long)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (parse_line(&out), out.status.success())
    };
    let (v, ok) = run(&["session-create", "a"]);
    assert!(ok && v["watched"] == true, "{v}");
    let pid = daemon_pid(&v);
    let (v, ok) = run(&["session-kill", "a"]);
    assert!(ok, "{v}");
    assert!(wait_pid(pid, DEADLINE));
    let _ = std::process::Command::new("tmux").args(["-L", &label, "kill-server"]).stderr(Stdio::null()).status();
    let uid = rustix::process::getuid().as_raw();
    let _ = std::fs::remove_file(format!("/tmp/tmux-{uid}/{label}"));
}

#[test]
fn one_shot_commands_have_diagnostics_on_request() {
    let s = TmuxServer::new();
    let quiet = s.ctb().args(["session-create", "a", "--no-watch"]).output().unwrap();
    assert!(quiet.stderr.is_empty(), "{}", String::from_utf8_lossy(&quiet.stderr));
    let out = s.ctb().args(["-v", "session-list"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("list-sessions"), "{err}");
    let out = s.ctb().args(["session-list"]).env("RUST_LOG", "ctb=debug").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("list-sessions"));
}

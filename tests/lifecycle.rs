//! The lifecycle daemon against real tmux: each test owns a private server.

mod util;

use std::time::Duration;

use serde_json::Value;
use util::{pid_alive, wait_pid, TmuxServer};

const EXIT_DEADLINE: Duration = Duration::from_secs(10);

fn daemon_pid(v: &Value) -> u32 {
    v["daemon_pid"].as_u64().unwrap_or_else(|| panic!("no daemon_pid in {v}")) as u32
}

fn watched(s: &TmuxServer) -> Vec<String> {
    let mut w: Vec<String> =
        s.status()["watched"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    w.sort();
    w
}

#[test]
fn one_session_created_then_killed_leaves_nothing() {
    let s = TmuxServer::new();
    let v = s.create("solo");
    assert_eq!(v["session"], "solo");
    assert!(v["session_id"].as_str().unwrap().starts_with('$'));
    assert!(v["pane_id"].as_str().unwrap().starts_with('%'));
    let pid = daemon_pid(&v);
    assert!(pid_alive(pid));
    assert_eq!(s.runtime_files().len(), 2, "lock and socket while running: {:?}", s.runtime_files());
    s.ok(&["session-kill", "solo"]);
    assert!(wait_pid(pid, EXIT_DEADLINE), "daemon {pid} still running");
    assert_eq!(s.runtime_files(), Vec::<String>::new());
    assert_eq!(s.status()["running"], false);
}

#[test]
fn two_sessions_daemon_stays_until_the_last() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("one"));
    assert_eq!(daemon_pid(&s.create("two")), pid, "one daemon per server");
    s.ok(&["session-kill", "one"]);
    assert_eq!(watched(&s), ["two"]);
    assert!(pid_alive(pid));
    s.ok(&["session-kill", "two"]);
    assert!(wait_pid(pid, EXIT_DEADLINE));
    assert!(s.runtime_files().is_empty());
}

#[test]
fn daemon_client_sits_on_its_own_anchor_and_survives_kills() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("first"));
    s.create("second");
    let clients = s.tmux_ok(&["list-clients", "-F", "#{client_pid} #{session_name}"]);
    let anchors = s.anchors();
    assert_eq!(anchors.len(), 1, "{anchors:?}");
    assert!(clients.ends_with(&format!(" {}", anchors[0])), "daemon client on its anchor: {clients}");
    assert_eq!(s.ok(&["session-list"])["output"].as_array().unwrap().len(), 2, "anchors are not listed");
    // Kill sessions back to back: tmux 3.3a crashed here when a control
    // client lost its session (see docs/tmux-3.3a-crash.md).
    s.ok(&["session-kill", "first"]);
    s.tmux_ok(&["new-session", "-d", "-s", "plain"]);
    s.tmux_ok(&["kill-session", "-t", "=plain"]);
    assert_eq!(watched(&s), ["second"]);
    assert_eq!(s.tmux_ok(&["list-clients", "-F", "#{client_pid} #{session_name}"]), clients, "same client");
    let server = s.server_pid();
    s.ok(&["session-kill", "second"]);
    assert!(wait_pid(pid, EXIT_DEADLINE));
    // Its anchor was the server's last session: once the daemon has
    // removed it, the server exits.
    assert!(wait_pid(server, EXIT_DEADLINE), "anchor left behind: {:?}", s.anchors());
}

#[test]
fn kill_server_ends_daemon_and_watch_with_server_exited() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("a"));
    s.create("b");
    let mut w = s.watch(&[]);
    w.wait_event("watching");
    s.tmux_ok(&["kill-server"]);
    let end = w.wait_event("watch-end");
    assert_eq!(end["reason"], "server-exited", "{:?}", w.seen);
    assert_eq!(w.wait_exit(), Some(0));
    assert!(wait_pid(pid, EXIT_DEADLINE));
    assert!(s.runtime_files().is_empty());
}

#[test]
fn sigkill_of_the_server_ends_daemon_with_server_exited() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("a"));
    let mut w = s.watch(&["a"]);
    w.wait_event("watching");
    let server = s.server_pid();
    // Our own server, found through our private socket.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert_eq!(w.wait_event("watch-end")["reason"], "server-exited");
    assert!(wait_pid(pid, EXIT_DEADLINE));
    assert!(s.runtime_files().is_empty());
}

#[test]
fn sigkill_of_the_daemon_then_session_create_recovers() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("old"));
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), rustix::process::Signal::KILL)
        .unwrap();
    assert!(wait_pid(pid, EXIT_DEADLINE));
    // Its lock and socket files are left behind; they must not matter.
    let status = s.status();
    assert_eq!(status["running"], false, "{status}");
    let pid2 = daemon_pid(&s.create("new"));
    assert_ne!(pid, pid2);
    assert_eq!(watched(&s), ["new", "old"]);
    s.ok(&["session-kill", "old"]);
    s.ok(&["session-kill", "new"]);
    assert!(wait_pid(pid2, EXIT_DEADLINE));
    assert!(s.runtime_files().is_empty());
}

#[test]
fn twenty_concurrent_creates_give_one_daemon_watching_all() {
    let s = TmuxServer::new();
    // Start the server first so the creates race on the daemon, not on
    // starting tmux.
    s.tmux_ok(&["new-session", "-d", "-s", "keepalive-unwatched"]);
    let children: Vec<_> = (0..20)
        .map(|i| {
            s.ctb().args(["session-create", &format!("c{i:02}")]).stdout(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let pids: Vec<u32> =
        children.into_iter().map(|c| daemon_pid(&util::parse_line(&c.wait_with_output().unwrap()))).collect();
    assert!(pids.iter().all(|p| *p == pids[0]), "one daemon: {pids:?}");
    let w = watched(&s);
    assert_eq!(w.len(), 20, "{w:?}");
    for i in 0..20 {
        s.ok(&["session-kill", &format!("c{i:02}")]);
    }
    assert!(wait_pid(pids[0], EXIT_DEADLINE));
    assert_eq!(s.session_names(), ["keepalive-unwatched"], "unwatched session untouched");
}

#[test]
fn create_racing_with_shutdown_is_always_watched() {
    let s = TmuxServer::new();
    s.tmux_ok(&["new-session", "-d", "-s", "keepalive-unwatched"]);
    for round in 0..15 {
        let first = format!("r{round}a");
        let second = format!("r{round}b");
        let pid = daemon_pid(&s.create(&first));
        // Kill the last watched session while another create lands.
        let kill = s.ctb().args(["session-kill", &first]).stdout(std::process::Stdio::null()).spawn().unwrap();
        let v = s.create(&second);
        let _ = kill.wait_with_output();
        let pid2 = daemon_pid(&v);
        assert!(pid_alive(pid2), "round {round}: daemon {pid2} (old {pid}) gone, {second} unwatched");
        assert_eq!(watched(&s), std::slice::from_ref(&second), "round {round}");
        s.ok(&["session-kill", &second]);
        assert!(wait_pid(pid2, EXIT_DEADLINE));
    }
}

#[test]
fn session_killed_while_being_created_and_watched() {
    // ctb attaches its daemon before it creates the session (a window made
    // while a control client attaches crashes tmux 3.3a), so a session
    // cannot die before the daemon attached; the closest is a session
    // killed between its creation and the daemon's watch answer. A user's
    // hook does it deterministically: tmux runs `after-new-session` hooks
    // right after the new-session, inside ctb's own command.
    let s = TmuxServer::new();
    s.tmux_ok(&["new-session", "-d", "-s", "keepalive-unwatched"]);
    s.tmux_ok(&["set-hook", "-g", "after-new-session", "if -F '#{m:short*,#{session_name}}' kill-session"]);
    for round in 0..3 {
        let name = format!("short{round}");
        let out = s.ctb().args(["session-create", &name]).output().unwrap();
        let v = util::parse_line(&out);
        // tmux created it (and printed its id), the hook killed it: the
        // daemon never saw it, and ctb says so.
        assert_eq!(out.status.code(), Some(1), "round {round}: {v}");
        assert_eq!(v["status"], "error", "round {round}: {v}");
        let id = v["session_id"].as_str().unwrap_or_else(|| panic!("round {round}: no session_id in {v}"));
        let err = v["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("session {id} no longer exists")) && err.contains("no daemon watches it"),
            "round {round}: {v}"
        );
        assert!(!s.has_session(id), "round {round}: {id} is alive: the hook did not run");
        // Nothing is left behind: the daemon it started exits (nothing to
        // watch), its anchor is gone, the user's session is unmarked.
        let wait = s.ok(&["daemon", "wait", "--timeout", "10"]);
        assert_eq!(wait["running"], false, "round {round}");
        assert!(s.runtime_files().is_empty(), "round {round}: {:?}", s.runtime_files());
        assert_eq!(s.session_names(), ["keepalive-unwatched"], "round {round}");
        assert!(s.anchors().is_empty(), "round {round}: {:?}", s.anchors());
        assert_eq!(s.session_option("keepalive-unwatched", "@ctb-watched"), "", "round {round}");
    }
    // Unwatched: tmux created it, so ctb reports it (no daemon involved).
    let v = s.ok(&["session-create", "short-unwatched", "--no-watch"]);
    assert!(!s.has_session(v["session_id"].as_str().unwrap()), "{v}");
    assert_eq!(s.status()["running"], false);
    assert_eq!(s.session_names(), ["keepalive-unwatched"]);
}

#[test]
fn daemon_start_with_nothing_to_watch_stops_at_once() {
    let s = TmuxServer::new();
    // One answer shape: no server, or a server with nothing watched.
    let v = s.ok(&["daemon", "start"]);
    assert!(v["running"] == false && v["started"] == false, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("no tmux server"), "{v}");
    s.tmux_ok(&["new-session", "-d", "-s", "plain"]);
    let v = s.ok(&["daemon", "start"]);
    assert!(v["running"] == false && v["started"] == false, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("no session is marked watched"), "{v}");
    assert_eq!(s.ok(&["daemon", "wait", "--timeout", "10"])["running"], false);
    assert!(s.runtime_files().is_empty(), "{:?}", s.runtime_files());
    // With something watched it starts one.
    s.tmux_ok(&["set-option", "-t", "plain", "@ctb-watched", "1"]);
    let v = s.ok(&["daemon", "start"]);
    assert!(v["running"] == true && v["started"] == true && v["watched"][0] == "plain", "{v}");
    s.ok(&["daemon", "stop"]);
}

#[test]
fn unwatched_sessions_never_keep_the_daemon_and_are_never_touched() {
    let s = TmuxServer::new();
    s.ok(&["session-create", "nowatch", "--no-watch"]);
    assert_eq!(s.status()["running"], false, "--no-watch starts no daemon");
    s.tmux_ok(&["new-session", "-d", "-s", "plain"]);
    let pid = daemon_pid(&s.create("watched"));
    assert_eq!(watched(&s), ["watched"]);
    s.ok(&["session-kill", "watched"]);
    assert!(wait_pid(pid, EXIT_DEADLINE));
    let mut names = s.session_names();
    names.sort();
    assert_eq!(names, ["nowatch", "plain"]);
}

#[test]
fn hostile_names_work_and_reach_no_shell() {
    let s = TmuxServer::new();
    let marker = s.runtime.join("pwned");
    let inject = format!("$(touch {})", marker.display());
    let backtick = format!("`touch {}`", marker.display());
    // What each name may be stored as: tmux decides, and versions differ
    // (docs/tmux-versions.md). Up to 3.6 `.`/`:` become `_`, 3.7 keeps
    // them; control bytes are escaped up to 3.6 and refused from 3.7.
    let only = |n: &str| Stored::As(vec![n.to_owned()]);
    let cases: Vec<(String, Stored)> = vec![
        ("with spaces".into(), only("with spaces")),
        ("it's \"quoted\"".into(), only("it's \"quoted\"")),
        ("semi;colon".into(), only("semi;colon")),
        ("trailing;".into(), only("trailing;")),
        (inject.clone(), only(&inject)),
        (backtick.clone(), only(&backtick)),
        ("héllo→世界".into(), only("héllo→世界")),
        ("-leading-dash".into(), only("-leading-dash")),
        ("dots.and:colons".into(), Stored::As(vec!["dots_and_colons".into(), "dots.and:colons".into()])),
        ("tab\there".into(), Stored::EscapedOrRefused("tab\\there".into())),
        ("back\\slash".into(), only("back\\\\slash")),
    ];
    let mut pid = None;
    let mut created = Vec::new();
    for (asked, may) in &cases {
        let (v, ok) = s.ctb_json(&["session-create", "--", asked]);
        if !ok {
            // Refused by tmux (not by ctb): a clear error, and no session.
            assert!(matches!(may, Stored::EscapedOrRefused(_)), "asked {asked:?}: {v}");
            assert!(v["error"].as_str().unwrap().contains("invalid session name"), "asked {asked:?}: {v}");
            assert_eq!(s.session_names().len(), created.len(), "asked {asked:?}");
            continue;
        }
        // ctb reports the name tmux stored for that session id...
        let stored = v["session"].as_str().unwrap().to_owned();
        let id = v["session_id"].as_str().unwrap();
        assert_eq!(s.session_name_of(id).as_deref(), Some(stored.as_str()), "asked {asked:?}: {v}");
        // ...and tmux stored one of the forms some version stores.
        let plausible = match may {
            Stored::As(forms) => forms.contains(&stored),
            Stored::EscapedOrRefused(escaped) => *escaped == stored,
        };
        assert!(plausible, "asked {asked:?}, tmux stored {stored:?}");
        pid = Some(daemon_pid(&v));
        created.push(stored);
    }
    assert!(!marker.exists(), "a name reached a shell");
    assert!(created.len() >= cases.len() - 1, "{created:?}");
    assert_eq!(watched(&s).len(), created.len());
    // Later commands find each session by the name tmux stored.
    for stored in &created {
        let v = s.ok(&["session-kill", "--", stored]);
        assert_eq!(v["session"], stored.as_str());
    }
    assert!(wait_pid(pid.unwrap(), EXIT_DEADLINE));
    assert!(!marker.exists());
}

/// The names tmux may store for a requested session name.
enum Stored {
    /// One of these forms.
    As(Vec<String>),
    /// This escaped form (tmux 3.3a-3.6), or refused ("invalid session name", 3.7+).
    EscapedOrRefused(String),
}

#[test]
fn names_are_never_prefix_matched() {
    let s = TmuxServer::new();
    s.ok(&["session-create", "watchdog", "--no-watch"]);
    let (v, ok) = s.ctb_json(&["session-kill", "watch"]);
    assert!(!ok && v["status"] == "error", "{v}");
    assert_eq!(s.session_names(), ["watchdog"]);
    let (v, ok) = s.ctb_json(&["session-create", "watchdog"]);
    assert!(!ok && v["error"].as_str().unwrap().contains("already exists"), "{v}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let s = TmuxServer::new();
    let (v, ok) = s.ctb_json(&["session-kill", "missing"]);
    assert!(!ok);
    assert_eq!(v["status"], "error");
    assert_eq!(v["command"], "session-kill");
    assert!(v["error"].as_str().unwrap().contains("missing"), "{v}");
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    let (v, ok) = s.ctb_json(&["session-create", ""]);
    assert!(!ok && v["error"].as_str().unwrap().contains("empty"), "{v}");
    // A dead (never started) server: listing is empty, status is "not running".
    assert_eq!(s.ok(&["session-list"])["output"], serde_json::json!([]));
    assert_eq!(s.status()["running"], false);
    let out = s.ctb().arg("watch").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""reason":"no-sessions""#));
    let out = s.ctb().args(["watch", "nosuch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));
}

#[test]
fn tmux_missing_from_path() {
    let s = TmuxServer::new();
    let out = s.ctb().env("PATH", s.runtime.as_os_str()).args(["session-create", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = util::parse_line(&out);
    assert!(v["error"].as_str().unwrap().contains("tmux is not installed"), "{v}");
}

#[test]
fn runtime_dir_with_wrong_mode_or_symlink_is_refused() {
    let s = TmuxServer::new();
    std::fs::create_dir(s.ctb_dir()).unwrap();
    util::set_mode(&s.ctb_dir(), 0o755);
    let (v, ok) = s.ctb_json(&["session-create", "x"]);
    assert!(!ok);
    assert!(v["error"].as_str().unwrap().contains("chmod 700"), "{v}");
    std::fs::remove_dir(s.ctb_dir()).unwrap();
    let elsewhere = s.runtime.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    util::set_mode(&elsewhere, 0o700);
    std::os::unix::fs::symlink(&elsewhere, s.ctb_dir()).unwrap();
    let (v, ok) = s.ctb_json(&["daemon", "status"]);
    assert!(!ok);
    assert!(v["error"].as_str().unwrap().contains("symlink"), "{v}");
    std::fs::remove_file(s.ctb_dir()).unwrap();
    if rustix::process::getuid().is_root() {
        std::fs::create_dir(s.ctb_dir()).unwrap();
        util::set_mode(&s.ctb_dir(), 0o700);
        rustix::fs::chown(s.ctb_dir(), Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        let (v, ok) = s.ctb_json(&["daemon", "status"]);
        assert!(!ok);
        assert!(v["error"].as_str().unwrap().contains("not by you"), "{v}");
    }
}

#[test]
fn stale_files_do_not_confuse_the_next_daemon() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("a"));
    let files: Vec<_> = std::fs::read_dir(s.ctb_dir()).unwrap().flatten().map(|e| e.path()).collect();
    s.ok(&["session-kill", "a"]);
    assert!(wait_pid(pid, EXIT_DEADLINE));
    // Forge a stale lock naming a live process that is not a daemon (a
    // `cat` of ours), held by another live process that is not a daemon
    // either (flock(1), our child): the lock is taken, so only the /proc
    // proof (does the named process hold the lock file?) can tell. And a
    // stale socket file.
    let mut named =
        std::process::Command::new("cat").stdin(std::process::Stdio::piped()).spawn().expect("starting cat");
    let mut lock = None;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".lock") {
            std::fs::write(f, format!("{}\n2020-01-01T00:00:00Z\n", named.id())).unwrap();
            lock = Some(f.clone());
        } else if name.ends_with(".sock") {
            std::fs::write(f, "stale").unwrap();
        }
    }
    let mut holder = util::LockHolder::start(&lock.expect("the daemon had a lock file"));
    let status = s.status();
    assert_eq!(status["running"], false, "{status}");
    assert_eq!(status["pid"], serde_json::Value::Null, "{status}");
    let stop = s.ok(&["daemon", "stop"]);
    assert_eq!(stop["stopped"], "not-running", "never signals a pid it cannot prove is its daemon");
    assert!(util::pid_alive(holder.pid()), "daemon stop signalled the lock's holder");
    assert!(util::pid_alive(named.id()), "daemon stop signalled the process the lock names");
    holder.release();
    drop(named.stdin.take());
    assert!(wait_pid(named.id(), EXIT_DEADLINE));
    named.wait().unwrap();
    let pid2 = daemon_pid(&s.create("b"));
    assert_eq!(watched(&s), ["b"]);
    s.ok(&["session-kill", "b"]);
    assert!(wait_pid(pid2, EXIT_DEADLINE));
    assert!(s.runtime_files().is_empty(), "{:?}", s.runtime_files());
}

#[test]
fn daemon_stop_is_graceful_and_leaves_sessions() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("keep"));
    let v = s.ok(&["daemon", "stop"]);
    assert_eq!(v["stopped"], "graceful", "{v}");
    assert!(wait_pid(pid, EXIT_DEADLINE));
    assert_eq!(s.session_names(), ["keep"]);
    assert!(s.runtime_files().is_empty());
    let logs = s.ok(&["daemon", "logs", "-n", "5"]);
    assert!(logs["output"].to_string().contains("stop-requested"), "{logs}");
}

#[test]
fn sigterm_to_the_daemon_is_a_clean_shutdown() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("keep"));
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), rustix::process::Signal::TERM)
        .unwrap();
    assert!(wait_pid(pid, EXIT_DEADLINE));
    assert!(s.runtime_files().is_empty());
    assert_eq!(s.session_names(), ["keep"]);
    assert!(s.ok(&["daemon", "logs"])["output"].to_string().contains("signal"));
}

#[test]
fn the_daemon_client_never_resizes_windows() {
    let s = TmuxServer::new();
    s.tmux_ok(&["new-session", "-d", "-s", "sized", "-x", "123", "-y", "45", ";", "set-option", "@ctb-watched", "1"]);
    let pid = s.ok(&["daemon", "start"])["pid"].as_u64().unwrap() as u32;
    // The daemon's control client (the tmux client it started), by pid.
    let clients =
        s.tmux_ok(&["list-clients", "-F", "#{client_pid} #{client_control_mode} #{client_session} #{client_flags}"]);
    let ours: Vec<&str> = clients
        .lines()
        .filter(|l| {
            l.split(' ').next().and_then(|p| p.parse().ok()).and_then(util::proc_stat).is_some_and(|st| st.1 == pid)
        })
        .collect();
    assert_eq!(ours.len(), 1, "one client of daemon {pid}: {clients}");
    let fields: Vec<&str> = ours[0].split(' ').collect();
    assert_eq!(fields[1], "1", "a control client: {clients}");
    assert_eq!(s.anchors(), [fields[2]], "attached to its anchor: {clients}");
    let flags: Vec<&str> = fields[3].split(',').collect();
    assert!(flags.contains(&"ignore-size"), "the daemon's client must not size windows: {clients}");
    assert!(flags.contains(&"no-output"), "{clients}");
    assert_eq!(s.tmux_ok(&["display-message", "-p", "-t", "=sized:", "#{window_width}x#{window_height}"]), "123x45");
    s.ok(&["session-kill", "sized"]);
    assert!(wait_pid(pid, EXIT_DEADLINE));
}

#[test]
fn watch_reports_created_renamed_closed() {
    let s = TmuxServer::new();
    s.create("base");
    let mut w = s.watch(&[]);
    w.wait_event("watching");
    s.create("fresh");
    let e = w.wait_event("session-created");
    assert_eq!(e["session"], "fresh");
    s.tmux_ok(&["rename-session", "-t", "=fresh", "renamed"]);
    assert_eq!(w.wait_event("session-renamed")["session"], "renamed");
    s.ok(&["session-kill", "renamed"]);
    assert_eq!(w.wait_event("session-closed")["session"], "renamed");
    s.ok(&["session-kill", "base"]);
    assert_eq!(w.wait_event("watch-end")["reason"], "last-session-closed");
    assert_eq!(w.wait_exit(), Some(0));
}

#[test]
fn watch_ends_on_sigint() {
    let s = TmuxServer::new();
    s.create("a");
    let mut w = s.watch(&["a"]);
    w.wait_event("watching");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(w.child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    assert_eq!(w.wait_event("watch-end")["reason"], "signal");
    assert_eq!(w.wait_exit(), Some(0));
    assert_eq!(s.session_names(), ["a"]);
}

#[test]
fn two_sockets_never_share_a_daemon() {
    let a = TmuxServer::new();
    let b = TmuxServer::new();
    // Same runtime directory, different servers.
    let run = |s: &TmuxServer, args: &[&str]| {
        let out = s.ctb().env("XDG_RUNTIME_DIR", &a.runtime).args(args).output().unwrap();
        util::parse_line(&out)
    };
    let pa = daemon_pid(&run(&a, &["session-create", "same-name"]));
    let pb = daemon_pid(&run(&b, &["session-create", "same-name"]));
    assert_ne!(pa, pb);
    run(&a, &["session-kill", "same-name"]);
    assert!(wait_pid(pa, EXIT_DEADLINE));
    assert!(pid_alive(pb), "killing a's session leaves b's daemon alone");
    assert_eq!(run(&b, &["daemon", "status"])["watched"], serde_json::json!(["same-name"]));
    run(&b, &["session-kill", "same-name"]);
    assert!(wait_pid(pb, EXIT_DEADLINE));
}

#[test]
fn socket_path_selects_the_server() {
    let s = TmuxServer::new();
    let path = s.runtime.join("tmux.sock");
    let ctb = |args: &[&str]| {
        let out = util::ctb_bare()
            .arg("-S")
            .arg(&path)
            .args(["-f", "/dev/null"])
            .env("XDG_RUNTIME_DIR", &s.runtime)
            .args(args)
            .output()
            .unwrap();
        util::parse_line(&out)
    };
    let v = ctb(&["session-create", "by-path"]);
    let pid = daemon_pid(&v);
    assert_eq!(ctb(&["daemon", "status"])["socket"], path.to_str().unwrap());
    let out = std::process::Command::new("tmux").arg("-S").arg(&path).args(["has-session", "-t", "=by-path"]).status();
    assert!(out.unwrap().success());
    ctb(&["session-kill", "by-path"]);
    assert!(wait_pid(pid, EXIT_DEADLINE));
    let _ = std::process::Command::new("tmux").arg("-S").arg(&path).arg("kill-server").status();
}

#[test]
fn daemon_stop_escalates_on_a_stuck_daemon() {
    let s = TmuxServer::new();
    let pid = daemon_pid(&s.create("keep"));
    let p = rustix::process::Pid::from_raw(pid as i32).unwrap();
    // Our daemon, frozen: it can answer nothing, not even SIGTERM.
    rustix::process::kill_process(p, rustix::process::Signal::STOP).unwrap();
    let v = s.ok(&["daemon", "stop"]);
    assert_eq!(v["stopped"], "sigkill", "{v}");
    assert!(wait_pid(pid, EXIT_DEADLINE));
    assert!(s.runtime_files().is_empty(), "{:?}", s.runtime_files());
    assert_eq!(s.session_names(), ["keep"], "sessions are left alone");
    // The next daemon takes over, and removes the dead one's anchor.
    let pid2 = daemon_pid(&s.create("next"));
    assert_eq!(s.anchors().len(), 1, "{:?}", s.anchors());
    s.ok(&["session-kill", "keep"]);
    s.ok(&["session-kill", "next"]);
    assert!(wait_pid(pid2, EXIT_DEADLINE));
}

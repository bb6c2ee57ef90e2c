//! The command line: argument parsing and dispatch (the binary's edge,
//! where errors become a JSON line and an exit status), one file per
//! command group, and the JSON reply they share ([`reply`]).
//!
//! The top layer: may call every other layer; nothing calls it.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod item_json;
mod pane;
mod replay;
mod reply;
mod session;
mod wait;
mod watch;

use self::reply::{fail, Outcome, Reply};
use crate::daemon;
use crate::tmux::Server;

/// Drive tmux from agents and scripts, with an event-driven lifecycle daemon.
#[derive(Debug, Parser)]
#[command(name = "ctb", version, about)]
pub struct Cli {
    /// tmux socket name, as `tmux -L`.
    #[arg(short = 'L', global = true, value_name = "NAME")]
    pub label: Option<String>,
    /// tmux socket path, as `tmux -S`.
    #[arg(short = 'S', global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// tmux configuration file for a server ctb starts, as `tmux -f`.
    #[arg(short = 'f', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More diagnostics on stderr (repeat for more); or set RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Parse a recorded control-mode stream and print its items as JSON lines.
    Replay {
        /// The recording; `-` or nothing for stdin.
        file: Option<PathBuf>,
    },
    /// Watch sessions in the foreground and print their events as JSON lines.
    Watch {
        /// Sessions to watch (exact name or $id); default: those marked watched.
        sessions: Vec<OsString>,
        /// Save the raw control-mode stream (and FILE.commands,
        /// FILE.listings) for replay.
        #[arg(long, value_name = "FILE", conflicts_with = "replay")]
        record: Option<PathBuf>,
        /// Run the watcher over a recording instead of tmux (sessions are
        /// then given as $ids).
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
    },
    /// Create a detached session, watched by this server's daemon.
    ///
    /// A NAME that starts with `-` goes after `--`:
    /// `ctb session-create -- -name [CMD ARGS...]`.
    SessionCreate {
        /// The session's name (tmux may rewrite some characters; the reply
        /// gives the name tmux stored).
        name: OsString,
        /// Do not mark it watched (no daemon is started for it).
        #[arg(long)]
        no_watch: bool,
        /// Start directory (must exist).
        #[arg(short = 'c', value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Command to run in the session, after `--` (given to tmux as
        /// separate arguments, never expanded).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// Kill exactly the named session (a NAME starting with `-` goes after `--`).
    SessionKill {
        /// Exact session name, or `$N`.
        name: OsString,
    },
    /// List sessions.
    SessionList,
    /// Split S's current window into a new pane, labelled, and apply a layout.
    ///
    /// A command for the pane goes after `--` (separate arguments, never
    /// expanded).
    PaneCreate {
        /// Session: exact name or `$N`.
        session: OsString,
        /// Label stored on the pane (any non-empty string).
        #[arg(value_name = "LABEL", allow_hyphen_values = true)]
        pane_label: Option<OsString>,
        /// tiled, even-horizontal, even-vertical, main-horizontal,
        /// main-vertical, or a layout string.
        #[arg(long, default_value = "tiled", value_name = "L")]
        layout: String,
        /// Start directory (must exist).
        #[arg(short = 'c', value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Command to run in the pane, after `--`.
        #[arg(last = true)]
        command: Vec<OsString>,
    },
    /// The bridge's spelling of `pane-create S [LABEL] --layout LAYOUT`.
    PaneCreateWithLayout {
        session: OsString,
        #[arg(value_name = "LABEL", allow_hyphen_values = true)]
        pane_label: Option<OsString>,
        #[arg(default_value = "tiled")]
        layout: String,
    },
    /// Every pane of S (all windows), with labels, metadata and status.
    #[command(alias = "pane-list-json", alias = "pane-list-detailed")]
    PaneList { session: OsString },
    /// The pane with this label (an error if none or several).
    PaneFind {
        session: OsString,
        #[arg(value_name = "LABEL", allow_hyphen_values = true)]
        pane_label: OsString,
    },
    /// How many panes S has (all windows).
    PaneCount { session: OsString },
    /// Type TEXT literally into pane P, then Enter (each line of a
    /// multi-line TEXT typed, then Enter).
    ///
    /// P is a pane id `%N`, a label, or an index in S's current window.
    PaneExec {
        session: OsString,
        pane: OsString,
        /// The text (a TEXT starting with `-` is fine: it is never a flag
        /// here; or put it after `--`).
        #[arg(allow_hyphen_values = true)]
        text: OsString,
        /// Do not press Enter after the last line.
        #[arg(long)]
        no_enter: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Send tmux key names (C-c, Enter, Escape, Up, F1, ...) to pane P;
    /// an unknown name is an error and nothing is sent.
    PaneKeys {
        session: OsString,
        pane: OsString,
        #[arg(required = true, allow_hyphen_values = true)]
        keys: Vec<OsString>,
    },
    /// The last LINES lines of pane P (history included).
    PaneCapture {
        session: OsString,
        pane: OsString,
        #[arg(default_value_t = 20)]
        lines: u32,
        /// Keep colours and attributes as escape sequences.
        #[arg(long)]
        escapes: bool,
        /// Join wrapped lines.
        #[arg(long)]
        join: bool,
    },
    /// Search the last LINES lines of pane P for a regex (one-shot).
    PaneWatch {
        session: OsString,
        pane: OsString,
        pattern: String,
        #[arg(default_value_t = 20)]
        lines: u32,
    },
    /// As pane-watch, answering in the exit status: 0 found, 1 not.
    PaneHasPattern {
        session: OsString,
        pane: OsString,
        pattern: String,
        #[arg(default_value_t = 20)]
        lines: u32,
    },
    /// What runs in pane P: pid, command, running, dead, exit status.
    PaneStatus { session: OsString, pane: OsString },
    /// The same as pane-status.
    PaneIsRunning { session: OsString, pane: OsString },
    /// Kill exactly pane P.
    PaneKill { session: OsString, pane: OsString },
    /// Set (replace) pane P's label.
    PaneLabel {
        session: OsString,
        pane: OsString,
        #[arg(value_name = "LABEL", allow_hyphen_values = true)]
        pane_label: OsString,
    },
    /// Set metadata KEY to VALUE on pane P (kept in tmux).
    PaneMetadataSet {
        session: OsString,
        pane: OsString,
        key: OsString,
        #[arg(allow_hyphen_values = true)]
        value: OsString,
    },
    /// The value of metadata KEY on pane P.
    PaneMetadataGet { session: OsString, pane: OsString, key: OsString },
    /// All metadata of pane P.
    PaneMetadataList { session: OsString, pane: OsString },
    /// What pane-list answers: ctb's state lives in tmux, not in a file.
    StateSync { session: OsString },
    /// Wait until a line of pane P's output matches REGEX (the screen and
    /// the last LINES lines of history first, then new output, no gap).
    ///
    /// Exit status 0 matched (or quiet), 1 error or stopped, 124 timeout.
    WaitFor {
        session: OsString,
        pane: OsString,
        #[arg(allow_hyphen_values = true)]
        pattern: OsString,
        /// Only output printed after the wait started.
        #[arg(long, conflicts_with = "lines")]
        new: bool,
        /// Lines of history searched first (with the screen).
        #[arg(long, default_value_t = 50)]
        lines: u32,
        /// Give up after SECS seconds (exit 124); `inf`: never.
        #[arg(long, default_value = "30", value_parser = parse_timeout)]
        timeout: Timeout,
        /// A failure pattern: if it matches first (or in the same output), outcome `stopped`.
        #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
        stop: Option<OsString>,
        /// Return once the pane has printed nothing for MS milliseconds (outcome `quiet`).
        #[arg(long, value_name = "MS")]
        quiet: Option<u64>,
    },
    /// The bridge's spelling of `wait-for S P PATTERN --timeout TIMEOUT --lines LINES`.
    PaneWatchTimeout {
        session: OsString,
        pane: OsString,
        #[arg(allow_hyphen_values = true)]
        pattern: OsString,
        #[arg(value_parser = parse_timeout)]
        timeout: Timeout,
        #[arg(default_value_t = 50)]
        lines: u32,
    },
    /// Run COMMAND in pane P's shell and wait until it finishes: its
    /// output (from the stream, not the screen) and exact exit status.
    ///
    /// On timeout (exit 124) the command keeps running, unless --interrupt.
    Run {
        session: OsString,
        pane: OsString,
        /// Give up after SECS seconds (exit 124); `inf`: never.
        #[arg(long, default_value = "30", value_parser = parse_timeout)]
        timeout: Timeout,
        /// Send C-c to the pane at the timeout.
        #[arg(long)]
        interrupt: bool,
        /// The shell command line (after `--`; several words are joined by spaces).
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
    /// The bridge's `pane-exec-timeout S P TIMEOUT CMD`: `run` in its order.
    PaneExecTimeout {
        session: OsString,
        pane: OsString,
        #[arg(value_parser = parse_timeout)]
        timeout: Timeout,
        #[arg(allow_hyphen_values = true, required = true, num_args = 1..)]
        command: Vec<OsString>,
    },
    /// Wait until pane P's foreground command has finished (a shell pane)
    /// or its process has exited (exit status or signal when tmux keeps it).
    PaneWait {
        session: OsString,
        pane: OsString,
        /// Give up after SECS seconds (exit 124); `inf`: never.
        #[arg(long, default_value = "30", value_parser = parse_timeout)]
        timeout: Timeout,
    },
    /// Follow pane P's output (text lines; --raw: the exact bytes) until the
    /// pane closes or you interrupt.
    PaneStream {
        session: OsString,
        pane: OsString,
        #[arg(long)]
        raw: bool,
    },
    /// The last LINES lines of pane P, then its new output, no gap.
    PaneTail {
        session: OsString,
        pane: OsString,
        #[arg(default_value_t = 20)]
        lines: u32,
    },
    /// Carry a pane's output to ctb's waiters (run by tmux's pipe-pane).
    #[command(hide = true)]
    PaneRelay {
        /// The tmux binary, hex-encoded.
        #[arg(long)]
        tmux_hex: String,
        /// The server's socket path, hex-encoded.
        #[arg(long)]
        socket_hex: String,
        #[arg(long)]
        pane: u32,
        #[arg(long)]
        hello: String,
    },
    /// The lifecycle daemon of this tmux server.
    Daemon {
        #[command(subcommand)]
        command: DaemonCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum DaemonCmd {
    /// Whether a daemon runs, and what it watches.
    Status,
    /// Start the daemon (it exits at once if nothing is watched).
    Start,
    /// Stop the daemon (graceful, then SIGTERM, then SIGKILL); sessions stay.
    Stop,
    /// Wait until the daemon has exited (at once if none runs).
    Wait {
        /// Give up after this many seconds (exit status 1); `inf`: never.
        #[arg(long, default_value = "10", value_parser = parse_timeout)]
        timeout: Timeout,
    },
    /// Print the daemon log's last lines.
    Logs {
        #[arg(short = 'n', default_value_t = 50)]
        n: usize,
    },
    /// Run the daemon in this process (used by ctb itself).
    #[command(hide = true)]
    Run,
    /// Run inside a watcher's anchor session (used by ctb itself).
    #[command(hide = true)]
    AnchorHold { anchor: String },
}

impl Cli {
    /// The server selection, with paths made absolute (the daemon changes
    /// its directory to `/`).
    fn server(&self) -> Server {
        Server {
            label: self.label.clone(),
            path: self.socket.as_deref().map(crate::tmux::absolute),
            config: self.config.as_deref().map(crate::tmux::absolute),
        }
    }
}

/// `pane-exec`'s wait options.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Listen first, type, then wait until a line of new output matches REGEX.
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
    wait_for: Option<OsString>,
    /// With --wait-for: a failure pattern (outcome `stopped`).
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true, requires = "wait_for")]
    stop: Option<OsString>,
    /// With --wait-for: return once the pane has been quiet MS milliseconds.
    #[arg(long, value_name = "MS", requires = "wait_for")]
    quiet: Option<u64>,
    /// With --wait-for: give up after SECS seconds (exit 124).
    #[arg(long, default_value = "30", value_parser = parse_timeout, requires = "wait_for")]
    timeout: Timeout,
}

/// A `--timeout`: a deadline, or none (`inf`).
#[derive(Debug, Clone, Copy)]
pub struct Timeout(pub Option<std::time::Duration>);

/// A `--timeout` in seconds: finite and not negative, or `inf` (no
/// deadline).
fn parse_timeout(s: &str) -> Result<Timeout, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs.is_nan() || secs < 0.0 {
        return Err(format!("{s:?} is not a number of seconds (0 or more, or inf)"));
    }
    if secs.is_infinite() || secs > 1e9 {
        return Ok(Timeout(None));
    }
    Ok(Timeout(Some(std::time::Duration::from_secs_f64(secs))))
}

/// Writes a line to stderr; a closed stderr is ignored (never a panic).
pub(crate) fn stderr_line(msg: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn init_tracing(verbose: u8, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (daemon, verbose) {
        (true, 0) => "ctb=info",
        (_, 0) => "warn",
        (_, 1) => "ctb=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Prints one JSON line; the exit status follows the reply (and is 1 if
/// the line could not be written: a closed stdout).
fn emit(r: Outcome) -> ExitCode {
    let (line, code) = match r {
        Ok(reply) => (reply.success(), ExitCode::SUCCESS),
        Err(f) => (f.reply.error(&f.error), ExitCode::FAILURE),
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    code
}

/// Prints a waiting command's JSON line (on stderr when stdout carries
/// a raw stream) and ends with its exit status.
fn emit_ended((r, code): wait::Ended, to_stderr: bool) -> ExitCode {
    let line = match r {
        Ok(reply) => reply.success(),
        Err(f) => f.reply.error(&f.error),
    };
    let written = if to_stderr {
        writeln!(std::io::stderr(), "{line}")
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush())
    };
    if written.is_err() && code == 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::from(code)
}

fn one_shot(command: &'static str, f: impl FnOnce(Reply) -> Result<Reply>) -> ExitCode {
    emit(f(Reply::new(command)).map_err(|e| fail(Reply::new(command), e)))
}

/// The command name a usage error belongs to, for its JSON reply.
fn command_name(args: &[OsString]) -> String {
    let names = [
        "replay",
        "watch",
        "session-create",
        "session-kill",
        "session-list",
        "daemon",
        "pane-create",
        "pane-create-with-layout",
        "pane-list",
        "pane-list-json",
        "pane-list-detailed",
        "pane-find",
        "pane-count",
        "pane-exec",
        "pane-keys",
        "pane-capture",
        "pane-watch",
        "pane-has-pattern",
        "pane-status",
        "pane-is-running",
        "pane-kill",
        "pane-label",
        "pane-metadata-set",
        "pane-metadata-get",
        "pane-metadata-list",
        "state-sync",
        "wait-for",
        "pane-watch-timeout",
        "run",
        "pane-exec-timeout",
        "pane-wait",
        "pane-stream",
        "pane-tail",
    ];
    let mut it = args.iter().skip(1).filter_map(|a| a.to_str());
    match it.find(|a| names.contains(a)) {
        Some("daemon") => match it.find(|a| !a.starts_with('-')) {
            Some(sub) => format!("daemon-{sub}"),
            None => "daemon".into(),
        },
        Some(c) => c.to_owned(),
        None => "ctb".into(),
    }
}

/// A usage error as the JSON envelope on stdout (the usage on stderr);
/// help and version print as clap does.
fn usage_error(e: clap::Error, args: &[OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    // The message is the paragraph before the usage and the tips.
    let para: Vec<&str> = rendered.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
    let joined = para.join(" ");
    let msg = joined.strip_prefix("error: ").unwrap_or(&joined).to_owned();
    let mut m = serde_json::Map::new();
    m.insert("status".into(), "error".into());
    m.insert("command".into(), command_name(args).into());
    m.insert("session".into(), serde_json::Value::Null);
    m.insert("pane_id".into(), serde_json::Value::Null);
    m.insert("output".into(), serde_json::Value::Null);
    m.insert("timestamp".into(), crate::util::now_rfc3339().into());
    m.insert("error".into(), format!("usage: {msg}").into());
    let _ = writeln!(std::io::stdout(), "{}", serde_json::Value::Object(m));
    let _ = write!(std::io::stderr(), "{rendered}");
    ExitCode::from(2)
}

pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, &args),
    };
    init_tracing(cli.verbose, matches!(cli.command, Cmd::Daemon { command: DaemonCmd::Run }));
    let server = cli.server();
    match cli.command {
        Cmd::Replay { file } => replay::run(file),
        Cmd::Watch { sessions, record, replay } => watch::run(server, &sessions, record.as_deref(), replay.as_deref()),
        Cmd::SessionCreate { name, no_watch, dir, command } => {
            emit(session::create_reply(&server, &name, no_watch, dir.as_ref(), &command))
        }
        Cmd::SessionKill { name } => emit(session::kill_reply(&server, &name)),
        Cmd::SessionList => one_shot("session-list", |r| Ok(r.output(session::list(&server)?))),
        Cmd::PaneCreate { session, pane_label, layout, dir, command } => {
            emit(pane::create(&server, &session, pane_label.as_deref(), &layout, dir.as_ref(), &command, "pane-create"))
        }
        Cmd::PaneCreateWithLayout { session, pane_label, layout } => {
            emit(pane::create(&server, &session, pane_label.as_deref(), &layout, None, &[], "pane-create-with-layout"))
        }
        Cmd::PaneList { session } => emit(pane::list(&server, &session, list_name(&args))),
        Cmd::PaneFind { session, pane_label } => emit(pane::find(&server, &session, &pane_label)),
        Cmd::PaneCount { session } => emit(pane::count(&server, &session)),
        Cmd::PaneExec { session, pane: p, text, no_enter, wait: w } => match w.wait_for {
            None => emit(pane::exec(&server, &session, &p, &text, !no_enter)),
            Some(pattern) => {
                let opts =
                    wait::WaitOpts { pattern: Some(pattern), stop: w.stop, quiet_ms: w.quiet, timeout: w.timeout.0 };
                emit_ended(wait::exec_wait(&server, &session, &p, &text, !no_enter, &opts), false)
            }
        },
        Cmd::WaitFor { session, pane: p, pattern, new, lines, timeout, stop, quiet } => {
            let opts = wait::WaitOpts { pattern: Some(pattern), stop, quiet_ms: quiet, timeout: timeout.0 };
            emit_ended(wait::wait_for("wait-for", &server, &session, &p, &opts, (!new).then_some(lines)), false)
        }
        Cmd::PaneWatchTimeout { session, pane: p, pattern, timeout, lines } => {
            let opts = wait::WaitOpts { pattern: Some(pattern), timeout: timeout.0, ..Default::default() };
            emit_ended(wait::wait_for("pane-watch-timeout", &server, &session, &p, &opts, Some(lines)), false)
        }
        Cmd::Run { session, pane: p, timeout, interrupt, command } => {
            emit_ended(wait::run("run", &server, &session, &p, &command, timeout.0, interrupt), false)
        }
        Cmd::PaneExecTimeout { session, pane: p, timeout, command } => {
            emit_ended(wait::run("pane-exec-timeout", &server, &session, &p, &command, timeout.0, false), false)
        }
        Cmd::PaneWait { session, pane: p, timeout } => {
            emit_ended(wait::pane_wait(&server, &session, &p, timeout.0), false)
        }
        Cmd::PaneStream { session, pane: p, raw } => {
            emit_ended(wait::stream("pane-stream", &server, &session, &p, raw, None), raw)
        }
        Cmd::PaneTail { session, pane: p, lines } => {
            emit_ended(wait::stream("pane-tail", &server, &session, &p, false, Some(lines)), false)
        }
        Cmd::PaneRelay { tmux_hex, socket_hex, pane: n, hello } => {
            use std::os::unix::ffi::OsStringExt;
            let hex = |h: &str| crate::util::hex_decode(h.as_bytes()).map(OsString::from_vec);
            let (Some(tmux), Some(socket)) = (hex(&tmux_hex), hex(&socket_hex)) else {
                stderr_line(format_args!("ctb pane-relay: --tmux-hex and --socket-hex must be hex"));
                return ExitCode::from(2);
            };
            let args = crate::agent::relay::RelayArgs { tmux, socket: PathBuf::from(socket), pane: n, hello };
            match crate::agent::relay::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    stderr_line(format_args!("ctb pane-relay: {e:#}"));
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::PaneKeys { session, pane: p, keys } => emit(pane::keys(&server, &session, &p, &keys)),
        Cmd::PaneCapture { session, pane: p, lines, escapes, join } => {
            emit(pane::capture(&server, &session, &p, lines, escapes, join))
        }
        Cmd::PaneWatch { session, pane: p, pattern, lines } => {
            emit(pane::watch(&server, &session, &p, &pattern, lines, "pane-watch").0)
        }
        Cmd::PaneHasPattern { session, pane: p, pattern, lines } => {
            let (out, found) = pane::watch(&server, &session, &p, &pattern, lines, "pane-has-pattern");
            match emit(out) {
                c if c == ExitCode::SUCCESS && !found => ExitCode::FAILURE,
                c => c,
            }
        }
        Cmd::PaneStatus { session, pane: p } => emit(pane::status(&server, &session, &p, "pane-status")),
        Cmd::PaneIsRunning { session, pane: p } => emit(pane::status(&server, &session, &p, "pane-is-running")),
        Cmd::PaneKill { session, pane: p } => emit(pane::kill(&server, &session, &p)),
        Cmd::PaneLabel { session, pane: p, pane_label } => emit(pane::label(&server, &session, &p, &pane_label)),
        Cmd::PaneMetadataSet { session, pane: p, key, value } => {
            emit(pane::metadata_set(&server, &session, &p, &key, &value))
        }
        Cmd::PaneMetadataGet { session, pane: p, key } => emit(pane::metadata_get(&server, &session, &p, &key)),
        Cmd::PaneMetadataList { session, pane: p } => emit(pane::metadata_list(&server, &session, &p)),
        Cmd::StateSync { session } => emit(pane::state_sync(&server, &session)),
        Cmd::Daemon { command } => match command {
            DaemonCmd::Status => one_shot("daemon-status", |r| Ok(merge(r, daemon::status(&server)?))),
            DaemonCmd::Start => one_shot("daemon-start", |r| Ok(merge(r, daemon::start(&server)?))),
            DaemonCmd::Stop => one_shot("daemon-stop", |r| {
                let (how, pid) = daemon::stop(&server)?;
                Ok(r.output(how.as_str()).field("stopped", how.as_str()).field("pid", pid))
            }),
            DaemonCmd::Wait { timeout } => one_shot("daemon-wait", |r| {
                if daemon::wait_exit(&server, timeout.0)? {
                    Ok(r.output("not-running").field("running", false))
                } else {
                    anyhow::bail!("the daemon was still running after {}s", timeout.0.unwrap_or_default().as_secs_f64())
                }
            }),
            DaemonCmd::Logs { n } => one_shot("daemon-logs", |r| Ok(r.output(daemon::logs(&server, n)?))),
            DaemonCmd::AnchorHold { anchor } => match crate::tmux::anchor::hold(&server, &anchor) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    stderr_line(format_args!("ctb anchor-hold: {e:#}"));
                    ExitCode::FAILURE
                }
            },
            DaemonCmd::Run => match daemon::run_daemon(server) {
                Ok(never) => match never {},
                Err(e) => {
                    stderr_line(format_args!("ctb daemon: {e:#}"));
                    ExitCode::FAILURE
                }
            },
        },
    }
}

/// The name `pane-list` was called by (its aliases are the bridge's).
fn list_name(args: &[OsString]) -> &'static str {
    ["pane-list-json", "pane-list-detailed"]
        .into_iter()
        .find(|n| args.iter().skip(1).any(|a| a == *n))
        .unwrap_or("pane-list")
}

fn merge(mut r: Reply, v: serde_json::Value) -> Reply {
    if let serde_json::Value::Object(m) = v {
        for (k, v) in m {
            if k != "ok" {
                r = r.field(&k, v);
            }
        }
    }
    r
}

pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        for args in [
            &["ctb", "daemon", "wait", "--timeout", "inf"][..],
            &["ctb", "daemon", "wait"],
            &["ctb", "session-create", "--", "-x", "sh", "-c", "true"],
            &["ctb", "session-create", "n", "-c", "/", "--", "cmd", "-x"],
            &["ctb", "pane-create", "s", "lab", "--layout", "tiled", "-c", "/", "--", "cmd", "-x"],
            &["ctb", "pane-create-with-layout", "s", "lab", "main-vertical"],
            &["ctb", "pane-find", "s", "lab"],
            &["ctb", "pane-exec", "s", "%1", "-x;"],
            &["ctb", "pane-exec", "s", "%1", "--", "--no-enter"],
            &["ctb", "pane-keys", "s", "%1", "C-c", "-", "Enter"],
            &["ctb", "pane-list-detailed", "s"],
            &["ctb", "pane-metadata-set", "s", "%1", "k", "-x"],
            &["ctb", "pane-exec", "s", "%1", "--", "-v"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
        for args in [
            &["ctb", "daemon", "wait", "--timeout", "nan"][..],
            &["ctb", "daemon", "wait", "--timeout", "-1"],
            &["ctb", "session-create", "--help-me"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}

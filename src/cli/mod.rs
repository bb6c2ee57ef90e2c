//! The command line: argument parsing and dispatch (the binary's edge,
//! where errors become a JSON line and an exit status), one file per
//! command group, and the JSON reply they share ([`reply`]).
//!
//! The top layer: may call every other layer; nothing calls it.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod item_json;
mod replay;
mod reply;
mod session;
mod watch;

use self::reply::{fail, Outcome, Reply};
use crate::daemon;
use crate::tmux::{self, Server};

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
    SessionCreate {
        #[arg(allow_hyphen_values = true)]
        name: OsString,
        /// Do not mark it watched (no daemon is started for it).
        #[arg(long)]
        no_watch: bool,
        /// Start directory.
        #[arg(short = 'c', value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Command to run in the session (after `--`).
        #[arg(last = true)]
        command: Vec<OsString>,
    },
    /// Kill exactly the named session.
    SessionKill {
        #[arg(allow_hyphen_values = true)]
        name: OsString,
    },
    /// List sessions.
    SessionList,
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
        /// Give up after this many seconds (exit status 1).
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Print the daemon log's last lines.
    Logs {
        #[arg(short = 'n', default_value_t = 50)]
        n: usize,
    },
    /// Run the daemon in this process (used by ctb itself).
    #[command(hide = true)]
    Run,
}

impl Cli {
    fn server(&self) -> Server {
        Server { label: self.label.clone(), path: self.socket.clone(), config: self.config.clone() }
    }
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

/// Prints one JSON line; the exit status follows the reply.
fn emit(r: Outcome) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match r {
        Ok(reply) => {
            let _ = writeln!(out, "{}", reply.success());
            ExitCode::SUCCESS
        }
        Err(f) => {
            let _ = writeln!(out, "{}", f.reply.error(&f.error));
            ExitCode::FAILURE
        }
    }
}

fn one_shot(command: &'static str, f: impl FnOnce(Reply) -> Result<Reply>) -> ExitCode {
    emit(f(Reply::new(command)).map_err(|e| fail(Reply::new(command), e)))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, matches!(cli.command, Cmd::Daemon { command: DaemonCmd::Run }));
    let server = cli.server();
    match cli.command {
        Cmd::Replay { file } => {
            let res = match file.filter(|f| f.as_os_str() != "-") {
                Some(f) => {
                    std::fs::File::open(&f).with_context(|| format!("cannot open {}", f.display())).and_then(|fh| {
                        replay::replay(fh, std::io::stdout().lock()).with_context(|| format!("reading {}", f.display()))
                    })
                }
                None => replay::replay(std::io::stdin().lock(), std::io::stdout().lock()).context("reading stdin"),
            };
            match res {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ctb replay: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Watch { sessions, record, replay } => match match replay {
            Some(file) => watch::replay(&file, &sessions),
            None => watch::watch(server, &sessions, record.as_deref()),
        } {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ctb watch: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::SessionCreate { name, no_watch, dir, command } => {
            emit(session::create_reply(&server, &name, no_watch, dir.as_ref(), &command))
        }
        Cmd::SessionKill { name } => {
            let reply = Reply::new("session-kill").session(name.to_string_lossy());
            emit(match tmux::kill(&server, &name) {
                Ok(id) => Ok(reply.field("session_id", id.to_string()).output("killed")),
                Err(e) => Err(fail(reply, e)),
            })
        }
        Cmd::SessionList => one_shot("session-list", |r| Ok(r.output(session::list(&server)?))),
        Cmd::Daemon { command } => match command {
            DaemonCmd::Status => one_shot("daemon-status", |r| Ok(merge(r, daemon::status(&server)?))),
            DaemonCmd::Start => one_shot("daemon-start", |r| Ok(merge(r, daemon::start(&server)?))),
            DaemonCmd::Stop => one_shot("daemon-stop", |r| {
                let (how, pid) = daemon::stop(&server)?;
                Ok(r.output(how.as_str()).field("stopped", how.as_str()).field("pid", pid))
            }),
            DaemonCmd::Wait { timeout } => one_shot("daemon-wait", |r| {
                let secs = if timeout.is_finite() && timeout >= 0.0 { timeout } else { 0.0 };
                if daemon::wait_exit(&server, std::time::Duration::from_secs_f64(secs.min(1e9)))? {
                    Ok(r.output("not-running").field("running", false))
                } else {
                    anyhow::bail!("the daemon was still running after {timeout}s")
                }
            }),
            DaemonCmd::Logs { n } => one_shot("daemon-logs", |r| Ok(r.output(daemon::logs(&server, n)?))),
            DaemonCmd::Run => match daemon::run_daemon(server) {
                Ok(never) => match never {},
                Err(e) => {
                    eprintln!("ctb daemon: {e:#}");
                    ExitCode::FAILURE
                }
            },
        },
    }
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

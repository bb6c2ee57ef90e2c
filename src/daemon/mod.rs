//! The lifecycle daemon: one per tmux server, gone with its last session.
//!
//! Owns the daemon process ([`run`]: lock, request socket, the watcher in
//! [`Mode::Marked`](crate::watch::Mode)) and what other ctb processes do to
//! it ([`client`]: spawn and hold, requests, status, stop, wait, logs).
//! May call `watch/`, `tmux/`, `runtime/`, `util/`; called by `cli/` (and
//! later `agent/`, `mcp/`), never by `tmux/` or `watch/`.
//!
//! `ctb daemon run` (spawned by `session-create` and `daemon start`, never
//! by hand) takes the server's kernel lock, binds its request socket and
//! runs the watcher until the last watched session closes. Requests are one
//! JSON line each way: `watch`, `status`, `stop`. A request line is at most
//! 64 KiB (a longer one is refused and the connection closed), and a
//! connection that sends no complete request for 10 s is closed.
//!
//! Its spawner keeps one end of a socket pair the daemon inherits (the
//! *hold*): it asks `status` on it (answered once the daemon's control
//! client is attached: readiness), then creates its session and asks
//! `watch` on it. While the hold is open the daemon does not stop for lack
//! of sessions; when it closes (done, or the spawner died) it re-decides.
//! So the session is created only after the daemon attached (a window
//! created while a control client attaches crashes tmux 3.3a).

use std::time::Duration;

pub mod client;
mod hygiene;
pub mod run;

pub use client::*;
pub use run::run_daemon;

/// The environment variable naming the inherited hold socket's fd.
const HOLD_FD_ENV: &str = "CTB_HOLD_FD";
/// How long a spawner waits for the daemon to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long one request may take to be answered.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long a running daemon may take to confirm it watches a new session
/// (a reconcile: milliseconds; longer means stopped or stuck).
const WATCH_DEADLINE: Duration = Duration::from_secs(5);
/// How long `daemon status` waits for the daemon's own answer.
const STATUS_DEADLINE: Duration = Duration::from_secs(2);

//! ctb: drive tmux from AI agents and scripts, with an event-driven
//! lifecycle daemon.
//!
//! One folder per layer; each may call only the layers listed below it:
//!
//! - [`cli`]: the command line (clap types, the JSON reply, one file per
//!   command group); calls everything below.
//! - (to come: `mcp/`, the MCP server.)
//! - [`agent`]: what agents do with panes (create, type, keys, capture,
//!   status, kill, labels, metadata); next, waits and streams. Calls
//!   `tmux/`, `runtime/`, `util/`.
//! - [`daemon`]: the per-server lifecycle daemon and its clients.
//! - [`watch`]: the lifecycle watcher, a pure state machine
//!   ([`watch::state`]) and its thin async loop.
//! - [`tmux`]: everything that talks to tmux (servers, commands, the
//!   control client, escaping, targets).
//! - [`runtime`]: ctb's private directory, per-server files and locks.
//! - [`util`]: time stamps and text, no I/O.
//!
//! [`tmux_control`] (the `parser/` crate) reads the control-mode stream.

pub mod agent;
pub mod cli;
pub mod daemon;
pub mod runtime;
pub mod tmux;
pub mod util;
pub mod watch;

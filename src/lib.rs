//! ctb: drive tmux from AI agents and scripts, with an event-driven
//! lifecycle daemon.
//!
//! - [`tmux_control`] (the `parser/` crate) reads the control-mode stream;
//! - [`watch`] is the lifecycle watcher: a pure state machine plus a thin
//!   async loop around a [`control::ControlSource`];
//! - [`daemon`] runs the watcher as the per-server daemon;
//! - [`cli`] is the command line.

pub mod cli;
pub mod control;
pub mod daemon;
pub mod item_json;
pub mod lock;
pub mod output;
pub mod replay;
pub mod runtime;
pub mod sessions;
pub mod timefmt;
pub mod tmux;
pub mod watch;
pub mod watch_cmd;

//! What agents do with panes: create them, type into them, send keys,
//! read them, find them by label, kill them, and keep labels and
//! metadata on them (pane user options: the state lives in tmux, never in
//! a file); and the waits and streams on their output, answered from the
//! bytes the pane's program writes (`relay`, `tap`, `wait`), with the
//! pure pieces apart (`frame`, `text`, `overlap`, `echo`). One target resolver
//! ([`crate::tmux::resolve_pane`]) and one tmux command layer
//! ([`crate::tmux::Server::run`]) for all of it.
//!
//! May call `tmux/`, `runtime/` (the attach gate around creating and
//! killing panes, the per-pane relay and run locks) and `util/`; called by
//! `cli/` (and later `mcp/`). Never called by `tmux/`, `watch/` or
//! `daemon/`.

pub mod echo;
pub mod frame;
pub mod keys;
pub mod overlap;
pub mod pane;
pub mod relay;
pub mod tap;
pub mod text;
pub mod wait;

pub use keys::valid_key;

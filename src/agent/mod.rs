//! What agents do with panes: create them, type into them, send keys,
//! read them, find them by label, kill them, and keep labels and
//! metadata on them (pane user options: the state lives in tmux, never in
//! a file). Next: waits on pane output and streams, reusing the same
//! target resolution ([`crate::tmux::resolve_pane`]) and tmux command
//! layer ([`crate::tmux::Server::run`]).
//!
//! May call `tmux/`, `runtime/` (the attach gate around creating and
//! killing panes) and `util/`; called by `cli/` (and later `mcp/`). Never
//! called by `tmux/`, `watch/` or `daemon/`.

pub mod frame;
pub mod keys;
pub mod overlap;
pub mod pane;
pub mod relay;
pub mod tap;
pub mod text;
pub mod wait;

pub use keys::valid_key;

//! Everything that talks to tmux: which server, one-shot commands, the
//! session listings, the control client (and recorded streams played as
//! one), the escaping of user strings, and target resolution.
//!
//! May call `runtime/` (the spawn lock around an attach) and `util/`; used
//! by `watch/`, `daemon/`, `cli/` (and later `agent/`, `mcp/`). It must not
//! call any of those.

pub mod anchor;
mod control;
mod escape;
mod listing;
mod server;
mod session;
mod target;

pub use control::{sidecar, ControlSource, Recording, TmuxControl};
pub use escape::{literal, tmux_arg};
pub use listing::{anchor_name, is_anchor_name, SessionRow, SESSION_FORMAT, WATCH_FORMAT};
pub use server::{absolute, is_no_server, spawn_error, tmux_bin, Server, TmuxError};
pub use session::{create, kill, resolve, Created};
pub use target::{
    decode_meta, encode_meta, find_pane, gone, list_panes, resolve_pane, session_panes, strip_own, PaneRow, PaneTarget,
    SessionPanes, LABEL_OPTION, META_OPTION, OWN_META, PANE_FORMAT,
};

//! A streaming, sans-IO parser for tmux control mode (`tmux -C`).
//!
//! Feed the bytes a control client prints, in chunks split anywhere, and
//! take [`Item`]s out: typed [`Notification`]s, command reply [`Block`]s and
//! [`Item::Unknown`] for any other line. The parser never panics and never
//! fails: input it does not understand becomes an `Unknown` item, following
//! the rules documented on [`Parser`].
//!
//! Memory is bounded, whatever the input: a line longer than
//! [`Limits::max_line`] (default 4 MiB) is dropped as it arrives and
//! reported as one [`Item::Overflow`]; a reply block whose output goes
//! over [`Limits::max_block`] (default 64 MiB), or holds an over-long line,
//! is dropped but still followed to its `%end`/`%error`, and reported as
//! one [`Overflow::Block`] carrying its numbers. Both are far above what
//! tmux sends; [`Parser::with_limits`] sets others.
//!
//! ```
//! use tmux_control::{Item, Notification, Parser};
//! let mut p = Parser::new();
//! p.feed(b"%sessions-changed\n%output %1 hi\\015\\012\n");
//! assert_eq!(p.next_item(), Some(Item::Notification(Notification::SessionsChanged)));
//! match p.next_item() {
//!     Some(Item::Notification(Notification::Output { pane, data })) => {
//!         assert_eq!(pane.0, 1);
//!         assert_eq!(data, b"hi\r\n");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

mod escape;
mod ids;
mod item;
mod line;
mod num;
mod stream;

pub use escape::{decode_output, decode_output_into};
pub use ids::{IdError, PaneId, SessionId, WindowId};
pub use item::{Block, Item, Notification, Overflow};
pub use line::parse_notification;
pub use stream::{parse_all, Limits, Parser};

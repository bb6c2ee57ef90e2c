//! The items a control-mode stream is made of.
//!
//! Names (of sessions, windows, clients, buffers, subscriptions) are kept as
//! the exact bytes tmux sent: tmux stores them already escaped (`a\tb` is a
//! session's real four-character name), so they are never unescaped here.

use crate::ids::{PaneId, SessionId, WindowId};

/// One thing read from a control-mode stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A `%`-notification tmux sends between command replies.
    Notification(Notification),
    /// A complete command reply: `%begin` ... `%end`/`%error`.
    Block(Block),
    /// Any other line, kept verbatim (without its `\n` and trailing `\r`).
    /// Unknown or malformed notifications land here; they are never errors.
    Unknown(Vec<u8>),
    /// A block still open when the input ended (only from [`Parser::finish`]).
    ///
    /// [`Parser::finish`]: crate::Parser::finish
    Incomplete(Block),
    /// Input dropped because it went over one of the parser's memory
    /// limits ([`Limits`]): an over-long line, or a reply block whose
    /// output was too big. Only broken or hostile input does this (the
    /// limits are far above what tmux sends); the stream goes on normally
    /// after it.
    ///
    /// [`Limits`]: crate::Limits
    Overflow(Overflow),
}

/// What an [`Item::Overflow`] dropped. Dropped bytes are counted, never
/// kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// A line outside any block longer than [`Limits::max_line`]; `bytes`
    /// is its length (without its `\n`, with a trailing `\r` if any). It
    /// is not interpreted at all: never a notification nor a `%begin`.
    ///
    /// [`Limits::max_line`]: crate::Limits::max_line
    Line { bytes: u64 },
    /// A reply block abandoned because one of its output lines was longer
    /// than [`Limits::max_line`] or its lines together went over
    /// [`Limits::max_block`]. It replaces the [`Item::Block`] (or
    /// [`Item::Incomplete`]) of that block, and comes when the block ends:
    /// at its `%end`/`%error` (`closed`), or at [`Parser::finish`] (not
    /// `closed`). `time`, `number`, `flags` and `ok` are those of
    /// [`Block`], so the reply can be matched to its command; `bytes`
    /// counts all its output lines (dropped or not), each with its `\n`.
    ///
    /// [`Limits::max_line`]: crate::Limits::max_line
    /// [`Limits::max_block`]: crate::Limits::max_block
    /// [`Parser::finish`]: crate::Parser::finish
    Block { time: u64, number: u64, flags: u32, ok: bool, closed: bool, bytes: u64 },
}

/// A command reply block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    /// `T`: the server's time (epoch seconds) when the command started.
    pub time: u64,
    /// `N`: the server's command number.
    pub number: u64,
    /// `F`: 1 when the command came from this client's stdin.
    pub flags: u32,
    /// `true` for `%end`, `false` for `%error` (and for incomplete blocks).
    pub ok: bool,
    /// The raw output lines, as bytes, without line terminators.
    pub lines: Vec<Vec<u8>>,
}

/// A control-mode notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `%output %P DATA`; `data` is decoded to the exact bytes.
    Output { pane: PaneId, data: Vec<u8> },
    /// `%extended-output %P AGE ... : DATA`.
    ExtendedOutput { pane: PaneId, age_ms: u64, data: Vec<u8> },
    /// `%pause %P`.
    Pause { pane: PaneId },
    /// `%continue %P`.
    Continue { pane: PaneId },
    /// `%exit` or `%exit REASON`.
    Exit { reason: Option<Vec<u8>> },
    /// `%sessions-changed`: some session was created or destroyed.
    SessionsChanged,
    /// `%session-changed $S NAME`: this client is now attached to `$S`.
    SessionChanged { session: SessionId, name: Vec<u8> },
    /// `%client-session-changed CLIENT $S NAME`.
    ClientSessionChanged { client: Vec<u8>, session: SessionId, name: Vec<u8> },
    /// `%client-detached CLIENT`.
    ClientDetached { client: Vec<u8> },
    /// `%session-renamed $S NAME`.
    SessionRenamed { session: SessionId, name: Vec<u8> },
    /// `%session-window-changed $S @W`.
    SessionWindowChanged { session: SessionId, window: WindowId },
    /// `%window-add @W`.
    WindowAdd { window: WindowId },
    /// `%window-close @W`.
    WindowClose { window: WindowId },
    /// `%window-renamed @W NAME`.
    WindowRenamed { window: WindowId, name: Vec<u8> },
    /// `%unlinked-window-add @W`.
    UnlinkedWindowAdd { window: WindowId },
    /// `%unlinked-window-close @W`.
    UnlinkedWindowClose { window: WindowId },
    /// `%unlinked-window-renamed @W NAME`.
    UnlinkedWindowRenamed { window: WindowId, name: Vec<u8> },
    /// `%window-pane-changed @W %P`.
    WindowPaneChanged { window: WindowId, pane: PaneId },
    /// `%layout-change @W LAYOUT [VISIBLE [FLAGS]]`.
    LayoutChange { window: WindowId, layout: Vec<u8>, visible_layout: Option<Vec<u8>>, flags: Option<Vec<u8>> },
    /// `%pane-mode-changed %P`.
    PaneModeChanged { pane: PaneId },
    /// `%subscription-changed NAME $S @W IDX %P ... : VALUE` (`-` for absent).
    SubscriptionChanged {
        name: Vec<u8>,
        session: Option<SessionId>,
        window: Option<WindowId>,
        window_index: Option<u32>,
        pane: Option<PaneId>,
        value: Vec<u8>,
    },
    /// `%paste-buffer-changed NAME`.
    PasteBufferChanged { name: Vec<u8> },
    /// `%paste-buffer-deleted NAME`.
    PasteBufferDeleted { name: Vec<u8> },
    /// `%config-error TEXT`.
    ConfigError { text: Vec<u8> },
    /// `%message TEXT`.
    Message { text: Vec<u8> },
}

impl Notification {
    /// The notification's name as tmux spells it, without the `%`.
    pub fn type_name(&self) -> &'static str {
        use Notification::*;
        match self {
            Output { .. } => "output",
            ExtendedOutput { .. } => "extended-output",
            Pause { .. } => "pause",
            Continue { .. } => "continue",
            Exit { .. } => "exit",
            SessionsChanged => "sessions-changed",
            SessionChanged { .. } => "session-changed",
            ClientSessionChanged { .. } => "client-session-changed",
            ClientDetached { .. } => "client-detached",
            SessionRenamed { .. } => "session-renamed",
            SessionWindowChanged { .. } => "session-window-changed",
            WindowAdd { .. } => "window-add",
            WindowClose { .. } => "window-close",
            WindowRenamed { .. } => "window-renamed",
            UnlinkedWindowAdd { .. } => "unlinked-window-add",
            UnlinkedWindowClose { .. } => "unlinked-window-close",
            UnlinkedWindowRenamed { .. } => "unlinked-window-renamed",
            WindowPaneChanged { .. } => "window-pane-changed",
            LayoutChange { .. } => "layout-change",
            PaneModeChanged { .. } => "pane-mode-changed",
            SubscriptionChanged { .. } => "subscription-changed",
            PasteBufferChanged { .. } => "paste-buffer-changed",
            PasteBufferDeleted { .. } => "paste-buffer-deleted",
            ConfigError { .. } => "config-error",
            Message { .. } => "message",
        }
    }
}

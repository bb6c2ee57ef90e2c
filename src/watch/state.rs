//! The watcher's pure state machine: inputs in, actions out, no I/O.
//!
//! It learns which sessions exist only from what the control client says:
//! `%sessions-changed` triggers one `list-sessions` query on the control
//! client (coalesced: at most one in flight, plus one more if something
//! changed meanwhile), `%session-renamed` renames, and the end of the control
//! client (`%exit`, EOF) triggers one out-of-band listing to decide between
//! re-attaching to a surviving watched session and stopping.
//!
//! The control client is attached to a private *anchor* session the shell
//! creates (never to a user's session), because tmux 3.3a crashes when a
//! window is linked or unlinked while a control client has no session: the
//! state a client is in after its attached session is destroyed (see
//! docs/tmux-3.3a-crash.md). So a watched session closing never ends the
//! client; the client ends only when the anchor or the server goes:
//! - `kill-server` gives one `%sessions-changed` per session, then `%exit`;
//! - SIGKILL of the server gives `%exit server exited unexpectedly`;
//! - someone killing the anchor gives `%exit`: list, then re-anchor.
//!
//! An anchor that dies at once (its `cat` cannot run on that server, or
//! something kills new sessions) must not turn this into a tight loop: a
//! client that ends before it attached, or within [`ANCHOR_LASTING`] of its
//! attach, is a failure; after one, the next attach waits (exponential
//! backoff, [`ANCHOR_BACKOFF_FIRST`] doubling up to [`ANCHOR_BACKOFF_MAX`]),
//! and after [`MAX_ANCHOR_FAILURES`] in a row the watcher gives up
//! ([`EndReason::AnchorFailed`]). A client that lasted resets the count.
//! The machine reads no clock: the shell says how long each client ran,
//! and performs the wait ([`Action::AttachAfter`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use tmux_control::{Block, Item, Notification, SessionId};

use crate::tmux::{SessionRow, WATCH_FORMAT};

/// Which sessions are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every session carrying the `@ctb-watched` option (the daemon).
    Marked,
    /// Exactly these sessions (`ctb watch NAME...`).
    Fixed(BTreeSet<SessionId>),
}

/// Why watching ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    LastSessionClosed,
    ServerExited,
    NoSessions,
    Signal,
    Requested,
    /// The control client's anchor kept dying at once: gave up after
    /// [`MAX_ANCHOR_FAILURES`] attaches in a row.
    AnchorFailed,
}

/// A control client that ran at least this long after its attach counts
/// as a success (it resets the failure count).
pub const ANCHOR_LASTING: Duration = Duration::from_secs(5);
/// The wait before the attach that follows a first failure.
pub const ANCHOR_BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// The longest wait between two attaches.
pub const ANCHOR_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Failed attaches in a row after which the watcher gives up.
pub const MAX_ANCHOR_FAILURES: u32 = 8;

/// The wait before the next attach after `failures` failures in a row (at
/// least 1): [`ANCHOR_BACKOFF_FIRST`], doubled per failure, at most
/// [`ANCHOR_BACKOFF_MAX`].
pub fn anchor_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    ANCHOR_BACKOFF_FIRST.saturating_mul(1 << doublings).min(ANCHOR_BACKOFF_MAX)
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::LastSessionClosed => "last-session-closed",
            EndReason::ServerExited => "server-exited",
            EndReason::NoSessions => "no-sessions",
            EndReason::Signal => "signal",
            EndReason::Requested => "stop-requested",
            EndReason::AnchorFailed => "anchor-failed",
        }
    }
}

/// What happened to a watched session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Watched from the start; sent once the control client is attached,
    /// so every later change is reported (a readiness signal for scripts).
    Watching,
    Created,
    Closed,
    Renamed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Watching => "watching",
            EventKind::Created => "session-created",
            EventKind::Closed => "session-closed",
            EventKind::Renamed => "session-renamed",
        }
    }
}

/// An event about one watched session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub session: SessionId,
    pub name: Vec<u8>,
}

/// What happened, fed to [`Watcher::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The answer to [`Action::ListOffline`]: `None` when no server runs.
    Listing(Option<Vec<SessionRow>>),
    /// An item from the control client.
    Item(Item),
    /// The control client's output ended (EOF), this long after the shell
    /// started it (zero if it could not be started).
    ClientClosed { ran: Duration },
    /// The wait asked for by [`Action::AttachAfter`] is over.
    AttachDue,
    /// A caller asks to be told once `session` is in the watched set.
    WatchRequest(u64, SessionId),
    /// A caller asks to be answered once the model is in sync with tmux
    /// (after a reconcile that started after this request).
    Sync(u64),
    /// A spawner holds the watcher open while it creates its session: no
    /// stop for lack of watched sessions until it releases.
    Hold,
    /// The spawner's hold ended (its connection closed).
    Release,
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
    /// A `daemon stop` request.
    StopRequest,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// List sessions with a one-shot tmux command; answer with `Listing`.
    ListOffline,
    /// Create an anchor session and attach a control client to it.
    Attach,
    /// A backoff: wait this long (still taking requests and signals, with
    /// no control client), then answer with [`Input::AttachDue`].
    AttachAfter(Duration),
    /// Write this command line to the control client's stdin.
    Send(String),
    /// Kill this session: an anchor no client is attached to, left by a
    /// watcher that was killed (anchors are ctb's own; nothing else is
    /// ever killed).
    KillStaleAnchor(SessionId),
    /// Report an event.
    Emit(Event),
    /// Answer a watch request: `Ok` if watched, else why not.
    Respond(u64, Result<(), String>),
    /// Stop watching; the shell detaches and exits.
    Stop(EndReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first listing.
    Starting,
    /// A control client runs (attaching or attached).
    Client,
    /// The client ended; waiting for a listing.
    Detached,
    /// Waiting out a backoff before the next attach (no client).
    Backoff,
    Stopped,
}

/// A query in flight on the control client; requests (`tokens`) are
/// answered when the reconcile it belongs to is complete.
#[derive(Debug)]
enum Query {
    /// The cheap listing: ids, attached counts, names.
    List { tokens: Vec<(u64, Option<SessionId>)> },
    /// The marks of sessions first seen in the listing before: one
    /// `display-message` block each, `remaining` still to come.
    Marks { remaining: usize, tokens: Vec<(u64, Option<SessionId>)> },
}

impl Query {
    fn into_tokens(self) -> Vec<(u64, Option<SessionId>)> {
        match self {
            Query::List { tokens } | Query::Marks { tokens, .. } => tokens,
        }
    }
}

/// The watcher's state.
#[derive(Debug)]
pub struct Watcher {
    mode: Mode,
    phase: Phase,
    /// Every session on the server whose marks we know (watched or not),
    /// with its name; anchors apart.
    sessions: BTreeMap<SessionId, Vec<u8>>,
    /// Watchers' anchor sessions.
    anchors: BTreeSet<SessionId>,
    watched: BTreeSet<SessionId>,
    in_flight: VecDeque<Query>,
    /// The control client's attach command succeeded.
    attached: bool,
    /// `Watching` events were sent (after the first attach).
    announced: bool,
    /// Spawners holding the watcher open.
    holds: u32,
    /// Some session was watched at some point.
    ever_watched: bool,
    /// Something changed after the in-flight query was sent.
    dirty: bool,
    /// Watch requests waiting for the next query to be sent.
    waiting: Vec<(u64, Option<SessionId>)>,
    exit_reason: Option<Vec<u8>>,
    notifications: u64,
    /// Control clients in a row that ended at once (see [`ANCHOR_LASTING`]).
    anchor_failures: u32,
}

/// The query the watcher sends on every change: no user options, which
/// cost tmux most per session (about 2 ms per 1,000 sessions for the marks).
pub const LIST_COMMAND: &str = "list-sessions -F '#{session_id} #{session_attached} #{session_name}'";

/// The follow-up for sessions seen for the first time: their marks.
pub fn marks_command(ids: &[SessionId]) -> String {
    ids.iter().map(|id| format!("display-message -p -t '{id}' '{WATCH_FORMAT}'")).collect::<Vec<_>>().join(" ; ")
}

/// Parses a [`LIST_COMMAND`] line: id, attached clients, name.
fn parse_brief(line: &[u8]) -> Option<(SessionId, u32, &[u8])> {
    let mut it = line.splitn(3, |&b| b == b' ');
    let id = SessionId::from_bytes(it.next()?)?;
    let attached = std::str::from_utf8(it.next()?).ok()?.parse().ok()?;
    Some((id, attached, it.next()?))
}

impl Watcher {
    pub fn new(mode: Mode) -> Self {
        Watcher {
            mode,
            phase: Phase::Starting,
            sessions: BTreeMap::new(),
            anchors: BTreeSet::new(),
            watched: BTreeSet::new(),
            in_flight: VecDeque::new(),
            attached: false,
            announced: false,
            holds: 0,
            ever_watched: false,
            dirty: false,
            waiting: Vec::new(),
            exit_reason: None,
            notifications: 0,
            anchor_failures: 0,
        }
    }

    /// The first action: list sessions.
    pub fn start(&mut self) -> Vec<Action> {
        vec![Action::ListOffline]
    }

    /// Watched sessions and their names.
    pub fn watched(&self) -> impl Iterator<Item = (SessionId, &[u8])> {
        self.watched.iter().map(|id| (*id, self.sessions.get(id).map_or(&[][..], Vec::as_slice)))
    }

    /// Notifications seen so far.
    pub fn notifications(&self) -> u64 {
        self.notifications
    }

    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Stopped {
            if let Input::WatchRequest(token, _) = input {
                out.push(Action::Respond(token, Err("the daemon is stopping".into())));
            }
            return out;
        }
        match input {
            Input::Listing(rows) => self.on_listing(rows, &mut out),
            Input::Item(item) => self.on_item(item, &mut out),
            Input::ClientClosed { ran } => self.on_client_closed(ran, &mut out),
            Input::AttachDue => {
                if self.phase == Phase::Backoff {
                    self.phase = Phase::Client;
                    out.push(Action::Attach);
                }
            }
            // Answered at once only when attached: a caller must not go on
            // (and, say, create windows) while our client is attaching,
            // which crashes tmux 3.3a.
            Input::WatchRequest(token, id) if self.attached && self.watched.contains(&id) => {
                out.push(Action::Respond(token, Ok(())));
            }
            Input::WatchRequest(token, id) => self.wait_for_reconcile(token, Some(id), &mut out),
            Input::Sync(token) => self.wait_for_reconcile(token, None, &mut out),
            Input::Hold => self.holds += 1,
            Input::Release => {
                self.holds = self.holds.saturating_sub(1);
                if matches!(self.phase, Phase::Client | Phase::Backoff) {
                    self.stop_if_empty(&mut out);
                }
            }
            Input::Signal => self.stop(EndReason::Signal, &mut out),
            Input::StopRequest => self.stop(EndReason::Requested, &mut out),
        }
        out
    }

    fn wait_for_reconcile(&mut self, token: u64, id: Option<SessionId>, out: &mut Vec<Action>) {
        self.waiting.push((token, id));
        if self.phase == Phase::Client {
            self.query(out);
        }
        // Otherwise the reconcile after the next attach answers it.
    }

    fn stop(&mut self, reason: EndReason, out: &mut Vec<Action>) {
        self.phase = Phase::Stopped;
        for (token, _) in self.waiting.drain(..).chain(self.in_flight.drain(..).flat_map(Query::into_tokens)) {
            out.push(Action::Respond(token, Err("the daemon is stopping".into())));
        }
        out.push(Action::Stop(reason));
    }

    /// Sends a list-sessions query, or marks one as needed after the one in
    /// flight (tokens wait for a query sent after they arrived).
    fn query(&mut self, out: &mut Vec<Action>) {
        // Nothing is asked before our client's own commands are answered:
        // tmux 3.3a may answer stdin lines first, and a request answered
        // then would let its caller create windows while we attach (the
        // 3.3a crash). The first attach reply queries anyway.
        if !self.attached {
            return;
        }
        if self.in_flight.is_empty() {
            self.in_flight.push_back(Query::List { tokens: std::mem::take(&mut self.waiting) });
            out.push(Action::Send(LIST_COMMAND.to_owned()));
        } else {
            self.dirty = true;
        }
    }

    fn on_item(&mut self, item: Item, out: &mut Vec<Action>) {
        match item {
            Item::Notification(n) => {
                self.notifications += 1;
                self.on_notification(n, out);
            }
            Item::Block(b) => self.on_block(b, out),
            // A reply too big for the parser's limits still ends its
            // query: as a failed one (no listing can be trusted from it).
            Item::Overflow(tmux_control::Overflow::Block { time, number, flags, .. }) => {
                self.on_block(Block { time, number, flags, ok: false, lines: Vec::new() }, out)
            }
            Item::Unknown(_) | Item::Incomplete(_) | Item::Overflow(_) => {}
        }
    }

    fn on_notification(&mut self, n: Notification, out: &mut Vec<Action>) {
        match n {
            Notification::SessionsChanged => {
                self.query(out);
            }
            Notification::SessionRenamed { session, name } => {
                // Only sessions already known: one seen first in a rename
                // has no marks yet, and the next reconcile must ask for
                // them (it asks for every id it does not know).
                let Some(known) = self.sessions.get_mut(&session) else { return };
                if *known != name {
                    *known = name.clone();
                    if self.watched.contains(&session) {
                        out.push(Action::Emit(Event { kind: EventKind::Renamed, session, name }));
                    }
                }
            }
            Notification::Exit { reason } => self.exit_reason = Some(reason.unwrap_or_default()),
            _ => {}
        }
    }

    fn on_block(&mut self, b: Block, out: &mut Vec<Action>) {
        if b.flags == 0 {
            // The client's own commands (creating and attaching to its
            // anchor). On the first success, reconcile what changed between
            // the listing and the attach.
            if b.ok && !self.attached {
                self.attached = true;
                if !std::mem::replace(&mut self.announced, true) {
                    // From here on every change reaches us: announce.
                    for (session, name) in self.watched() {
                        out.push(Action::Emit(Event { kind: EventKind::Watching, session, name: name.to_vec() }));
                    }
                }
                self.query(out);
            }
            return;
        }
        match self.in_flight.pop_front() {
            None => {}
            Some(Query::List { tokens }) => self.on_list(b, tokens, out),
            Some(Query::Marks { remaining, tokens }) => {
                if b.ok {
                    if let Some(r) = b.lines.first().and_then(|l| SessionRow::parse_watch(l)) {
                        self.learn(&r, true, out);
                    }
                }
                if remaining > 1 {
                    self.in_flight.push_front(Query::Marks { remaining: remaining - 1, tokens });
                } else {
                    self.finish_reconcile(tokens, out);
                }
            }
        }
    }

    /// The cheap listing: closes what is gone, renames, finds stale anchors,
    /// and asks for the marks of sessions never seen before.
    fn on_list(&mut self, b: Block, tokens: Vec<(u64, Option<SessionId>)>, out: &mut Vec<Action>) {
        if !b.ok {
            return self.finish_reconcile(tokens, out);
        }
        let rows: Vec<(SessionId, u32, &[u8])> = b.lines.iter().filter_map(|l| parse_brief(l)).collect();
        if rows.is_empty() {
            // Not even our anchor: the server is going away (kill-server
            // destroys every session, then exits).
            for (token, _) in tokens {
                out.push(Action::Respond(token, Err("the tmux server is exiting".into())));
            }
            for id in self.watched.clone() {
                self.close(id, out);
            }
            return self.stop(EndReason::ServerExited, out);
        }
        let present: BTreeSet<SessionId> = rows.iter().map(|r| r.0).collect();
        for id in self.watched.iter().copied().filter(|id| !present.contains(id)).collect::<Vec<_>>() {
            self.close(id, out);
        }
        self.sessions.retain(|id, _| present.contains(id));
        self.anchors.retain(|id| present.contains(id));
        let mut unknown = Vec::new();
        for (id, attached, name) in rows {
            if self.anchors.contains(&id) {
                if attached == 0 {
                    out.push(Action::KillStaleAnchor(id));
                }
            } else if let Some(old) = self.sessions.get_mut(&id) {
                if old.as_slice() != name {
                    *old = name.to_vec();
                    if self.watched.contains(&id) {
                        out.push(Action::Emit(Event { kind: EventKind::Renamed, session: id, name: name.to_vec() }));
                    }
                }
            } else if matches!(self.mode, Mode::Marked) {
                unknown.push(id);
            } else {
                // Fixed mode watches only ids known at start.
                self.sessions.insert(id, name.to_vec());
            }
        }
        if unknown.is_empty() {
            return self.finish_reconcile(tokens, out);
        }
        self.in_flight.push_front(Query::Marks { remaining: unknown.len(), tokens });
        out.push(Action::Send(marks_command(&unknown)));
    }

    /// A reconcile is complete: answer its requests, stop if nothing is
    /// left, or query again if something changed meanwhile.
    fn finish_reconcile(&mut self, tokens: Vec<(u64, Option<SessionId>)>, out: &mut Vec<Action>) {
        for (token, id) in tokens {
            out.push(self.answer(token, id));
        }
        if self.stop_if_empty(out) {
            return;
        }
        if std::mem::take(&mut self.dirty) || !self.waiting.is_empty() {
            self.query(out);
        }
    }

    /// Stops when nothing is watched and no spawner holds us open.
    fn stop_if_empty(&mut self, out: &mut Vec<Action>) -> bool {
        if !self.watched.is_empty() || self.holds > 0 {
            return false;
        }
        let reason = if self.ever_watched { EndReason::LastSessionClosed } else { EndReason::NoSessions };
        self.stop(reason, out);
        true
    }

    fn answer(&self, token: u64, id: Option<SessionId>) -> Action {
        let Some(id) = id else { return Action::Respond(token, Ok(())) };
        if self.watched.contains(&id) {
            Action::Respond(token, Ok(()))
        } else if self.sessions.contains_key(&id) {
            Action::Respond(token, Err(format!("session {id} is not marked watched")))
        } else {
            Action::Respond(token, Err(format!("session {id} no longer exists")))
        }
    }

    fn on_client_closed(&mut self, ran: Duration, out: &mut Vec<Action>) {
        if self.phase != Phase::Client {
            // No client runs (a stray input): nothing ended.
            return;
        }
        if self.attached && ran >= ANCHOR_LASTING {
            self.anchor_failures = 0;
        } else {
            self.anchor_failures += 1;
        }
        let reason = self.exit_reason.take();
        for q in self.in_flight.drain(..) {
            self.waiting.extend(q.into_tokens());
        }
        self.dirty = false;
        if reason.as_deref().is_some_and(|r| r.starts_with(b"server exited")) {
            for id in self.watched.clone() {
                self.close(id, out);
            }
            return self.stop(EndReason::ServerExited, out);
        }
        self.phase = Phase::Detached;
        self.attached = false;
        out.push(Action::ListOffline);
    }

    fn on_listing(&mut self, rows: Option<Vec<SessionRow>>, out: &mut Vec<Action>) {
        let initial = self.phase == Phase::Starting;
        let Some(rows) = rows else {
            let reason = if initial { EndReason::NoSessions } else { EndReason::ServerExited };
            if !initial {
                for id in self.watched.clone() {
                    self.close(id, out);
                }
            }
            return self.stop(reason, out);
        };
        self.reconcile(&rows, !initial, out);
        if self.stop_if_empty(out) {
            return;
        }
        match self.anchor_failures {
            0 => {
                self.phase = Phase::Client;
                out.push(Action::Attach);
            }
            n if n >= MAX_ANCHOR_FAILURES => self.stop(EndReason::AnchorFailed, out),
            n => {
                self.phase = Phase::Backoff;
                out.push(Action::AttachAfter(anchor_backoff(n)));
            }
        }
    }

    fn close(&mut self, id: SessionId, out: &mut Vec<Action>) {
        self.watched.remove(&id);
        let name = self.sessions.remove(&id).unwrap_or_default();
        out.push(Action::Emit(Event { kind: EventKind::Closed, session: id, name }));
    }

    /// Brings the model in line with a full listing.
    fn reconcile(&mut self, rows: &[SessionRow], report_new: bool, out: &mut Vec<Action>) {
        let present: BTreeSet<SessionId> = rows.iter().map(|r| r.id).collect();
        for id in self.watched.iter().copied().filter(|id| !present.contains(id)).collect::<Vec<_>>() {
            self.close(id, out);
        }
        self.sessions.retain(|id, _| present.contains(id));
        self.anchors.retain(|id| present.contains(id));
        for r in rows {
            self.learn(r, report_new, out);
        }
    }

    /// Takes in one full row: an anchor (ours or another watcher's; a live
    /// watcher's client is attached to its anchor from the anchor's
    /// creation on, so an unattached one is stale), or a session.
    fn learn(&mut self, r: &SessionRow, report_new: bool, out: &mut Vec<Action>) {
        if r.anchor {
            self.anchors.insert(r.id);
            if r.attached == 0 {
                out.push(Action::KillStaleAnchor(r.id));
            }
            return;
        }
        let wanted = match &self.mode {
            Mode::Marked => r.watched,
            Mode::Fixed(ids) => ids.contains(&r.id),
        };
        let old = self.sessions.insert(r.id, r.name.clone());
        if self.watched.contains(&r.id) {
            if old.as_deref().is_some_and(|o| o != r.name.as_slice()) {
                out.push(Action::Emit(Event { kind: EventKind::Renamed, session: r.id, name: r.name.clone() }));
            }
        } else if wanted {
            self.watched.insert(r.id);
            self.ever_watched = true;
            if report_new {
                out.push(Action::Emit(Event { kind: EventKind::Created, session: r.id, name: r.name.clone() }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u32, watched: bool, name: &str) -> SessionRow {
        SessionRow {
            id: SessionId(id),
            watched,
            anchor: false,
            windows: 1,
            attached: 0,
            created: 0,
            name: name.as_bytes().to_vec(),
        }
    }

    fn block(lines: Vec<String>) -> Input {
        Input::Item(Item::Block(Block {
            time: 1,
            number: 2,
            flags: 1,
            ok: true,
            lines: lines.into_iter().map(String::into_bytes).collect(),
        }))
    }

    /// Feeds the listing of `rows`, then the marks of every session the
    /// watcher asks about; returns every action.
    fn sync(w: &mut Watcher, rows: &[SessionRow]) -> Vec<Action> {
        let list =
            rows.iter().map(|r| format!("{} {} {}", r.id, r.attached, String::from_utf8_lossy(&r.name))).collect();
        let mut all = w.handle(block(list));
        let asked: Vec<SessionId> = all
            .iter()
            .filter_map(|a| match a {
                Action::Send(c) if c.starts_with("display-message") => Some(c.clone()),
                _ => None,
            })
            .flat_map(|c| {
                c.split(" ; ").map(|part| part.split('\'').nth(1).unwrap().parse().unwrap()).collect::<Vec<_>>()
            })
            .collect();
        for id in asked {
            let r = rows.iter().find(|r| r.id == id).unwrap();
            let marks = format!("{}{}", u8::from(r.watched), u8::from(r.anchor));
            let line = format!("{} {marks} {} {}", r.id, r.attached, String::from_utf8_lossy(&r.name));
            all.extend(w.handle(block(vec![line])));
        }
        all
    }

    fn attach_ok() -> Input {
        Input::Item(Item::Block(Block { time: 1, number: 1, flags: 0, ok: true, lines: vec![] }))
    }

    /// The client ended after running long enough to count as a success.
    fn lasted() -> Input {
        Input::ClientClosed { ran: ANCHOR_LASTING }
    }

    /// The client ended right after it started.
    fn died() -> Input {
        Input::ClientClosed { ran: Duration::from_millis(10) }
    }

    fn changed() -> Input {
        Input::Item(Item::Notification(Notification::SessionsChanged))
    }

    fn sends(actions: &[Action]) -> usize {
        actions.iter().filter(|a| matches!(a, Action::Send(_))).count()
    }

    /// A watcher attached with `rows` listed.
    fn attached(rows: Vec<SessionRow>) -> Watcher {
        let mut w = Watcher::new(Mode::Marked);
        assert_eq!(w.start(), vec![Action::ListOffline]);
        assert_eq!(w.handle(Input::Listing(Some(rows.clone()))), vec![Action::Attach]);
        let a = w.handle(attach_ok());
        assert_eq!(sends(&a), 1);
        sync(&mut w, &rows);
        w
    }

    #[test]
    fn nothing_to_watch_at_start() {
        let mut w = Watcher::new(Mode::Marked);
        w.start();
        assert_eq!(
            w.handle(Input::Listing(Some(vec![row(0, false, "plain")]))),
            vec![Action::Stop(EndReason::NoSessions)]
        );
        let mut w = Watcher::new(Mode::Marked);
        w.start();
        assert_eq!(w.handle(Input::Listing(None)), vec![Action::Stop(EndReason::NoSessions)]);
    }

    #[test]
    fn last_watched_session_closing_stops_even_with_unwatched_left() {
        let mut w = attached(vec![row(0, true, "a"), row(1, false, "plain")]);
        assert_eq!(sends(&w.handle(changed())), 1);
        let a = sync(&mut w, &[row(1, false, "plain")]);
        assert_eq!(a.last(), Some(&Action::Stop(EndReason::LastSessionClosed)));
        assert!(a.iter().any(|x| matches!(x, Action::Emit(Event { kind: EventKind::Closed, .. }))));
        assert!(w.is_stopped());
    }

    #[test]
    fn queries_are_coalesced_to_one_in_flight_plus_one() {
        let mut w = attached(vec![row(0, true, "a")]);
        assert_eq!(sends(&w.handle(changed())), 1);
        for _ in 0..5 {
            assert_eq!(sends(&w.handle(changed())), 0);
        }
        // The first reconcile (listing, then the marks of the new session)
        // ends with exactly one more listing.
        let a = sync(&mut w, &[row(0, true, "a"), row(2, true, "b")]);
        assert_eq!(a.iter().filter(|x| matches!(x, Action::Send(c) if c == LIST_COMMAND)).count(), 1, "{a:?}");
        assert_eq!(sends(&sync(&mut w, &[row(0, true, "a"), row(2, true, "b")])), 0);
        assert_eq!(w.watched().count(), 2);
    }

    #[test]
    fn a_new_session_in_the_same_listing_keeps_the_watcher() {
        let mut w = attached(vec![row(0, true, "a")]);
        w.handle(changed());
        // `a` is gone and `b` is new: no stop before b's marks are known.
        let list = w.handle(block(vec!["$2 0 b".into()]));
        assert!(!list.iter().any(|x| matches!(x, Action::Stop(_))), "{list:?}");
        assert!(list.contains(&Action::Send(marks_command(&[SessionId(2)]))), "{list:?}");
        let a = w.handle(block(vec!["$2 10 0 b".into()]));
        assert!(!a.iter().any(|x| matches!(x, Action::Stop(_))), "{a:?}");
        assert_eq!(w.watched().map(|(id, _)| id).collect::<Vec<_>>(), vec![SessionId(2)]);
    }

    #[test]
    fn watch_requests_wait_for_a_reconcile_after_them() {
        let mut w = attached(vec![row(0, true, "a")]);
        let a = w.handle(Input::WatchRequest(7, SessionId(3)));
        assert_eq!(sends(&a), 1);
        let a = sync(&mut w, &[row(0, true, "a"), row(3, true, "new")]);
        assert!(a.contains(&Action::Respond(7, Ok(()))), "{a:?}");
        // Already watched: answered at once.
        assert_eq!(w.handle(Input::WatchRequest(8, SessionId(3))), vec![Action::Respond(8, Ok(()))]);
        // Unknown session: an error after the reconcile.
        w.handle(Input::WatchRequest(9, SessionId(42)));
        let a = sync(&mut w, &[row(0, true, "a"), row(3, true, "new")]);
        assert!(matches!(a.as_slice(), [Action::Respond(9, Err(e))] if e.contains("no longer exists")), "{a:?}");
    }

    #[test]
    fn client_loss_relists_and_reattaches_or_ends() {
        let mut w = attached(vec![row(0, true, "a")]);
        w.handle(Input::Item(Item::Notification(Notification::Exit { reason: None })));
        assert_eq!(w.handle(lasted()), vec![Action::ListOffline]);
        assert_eq!(w.handle(Input::Listing(Some(vec![row(0, true, "a")]))), vec![Action::Attach]);
        w.handle(lasted());
        let a = w.handle(Input::Listing(None));
        assert_eq!(a.last(), Some(&Action::Stop(EndReason::ServerExited)));
    }

    #[test]
    fn server_sigkill_ends_at_once() {
        let mut w = attached(vec![row(0, true, "a")]);
        w.handle(Input::Item(Item::Notification(Notification::Exit {
            reason: Some(b"server exited unexpectedly".to_vec()),
        })));
        let a = w.handle(lasted());
        assert_eq!(a.last(), Some(&Action::Stop(EndReason::ServerExited)));
    }

    #[test]
    fn anchors_are_never_watched() {
        let mut anchor = row(5, true, "ctb-anchor-1-1");
        anchor.anchor = true;
        anchor.attached = 1;
        let w = attached(vec![row(0, true, "a"), anchor]);
        assert_eq!(w.watched().map(|(id, _)| id).collect::<Vec<_>>(), vec![SessionId(0)]);
    }

    #[test]
    fn fixed_mode_ignores_marks() {
        let mut w = Watcher::new(Mode::Fixed([SessionId(1)].into()));
        w.start();
        w.handle(Input::Listing(Some(vec![row(0, true, "marked"), row(1, false, "chosen")])));
        assert_eq!(w.watched().map(|(id, _)| id).collect::<Vec<_>>(), vec![SessionId(1)]);
    }

    #[test]
    fn a_signal_stops_and_fails_pending_requests() {
        let mut w = attached(vec![row(0, true, "a")]);
        w.handle(Input::WatchRequest(1, SessionId(9)));
        let a = w.handle(Input::Signal);
        assert!(matches!(&a[0], Action::Respond(1, Err(_))));
        assert_eq!(a.last(), Some(&Action::Stop(EndReason::Signal)));
        assert!(matches!(w.handle(Input::WatchRequest(2, SessionId(0)))[..], [Action::Respond(2, Err(_))]));
    }

    #[test]
    fn a_session_renamed_before_its_first_reconcile_is_still_watched() {
        let mut w = attached(vec![row(0, true, "a")]);
        // A hook renames the new session before our listing sees it.
        let renamed = Input::Item(Item::Notification(Notification::SessionRenamed {
            session: SessionId(4),
            name: b"proj-foo".to_vec(),
        }));
        assert_eq!(w.handle(renamed), vec![]);
        assert_eq!(sends(&w.handle(changed())), 1);
        let a = sync(&mut w, &[row(0, true, "a"), row(4, true, "proj-foo")]);
        assert!(a.iter().any(|x| matches!(x, Action::Emit(Event { kind: EventKind::Created, .. }))), "{a:?}");
        assert_eq!(w.watched().map(|(id, _)| id).collect::<Vec<_>>(), vec![SessionId(0), SessionId(4)]);
    }

    #[test]
    fn backoff_doubles_from_50_ms_to_2_s() {
        let waits: Vec<u64> = (1..=9).map(|n| anchor_backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(anchor_backoff(u32::MAX), ANCHOR_BACKOFF_MAX);
    }

    /// Feeds the end of a client and the listing after it; the actions
    /// after the listing.
    fn end_and_relist(w: &mut Watcher, end: Input, rows: &[SessionRow]) -> Vec<Action> {
        assert_eq!(w.handle(end), vec![Action::ListOffline]);
        w.handle(Input::Listing(Some(rows.to_vec())))
    }

    #[test]
    fn an_anchor_dying_at_once_backs_off_then_gives_up() {
        let rows = vec![row(0, true, "a")];
        let mut w = attached(rows.clone());
        let mut waits = Vec::new();
        let mut attaches = 0;
        loop {
            // Half of the clients attach before dying: both are failures.
            if attaches % 2 == 1 {
                w.handle(attach_ok());
            }
            let a = end_and_relist(&mut w, died(), &rows);
            match a.as_slice() {
                [Action::AttachAfter(d)] => waits.push(d.as_millis() as u64),
                [Action::Stop(EndReason::AnchorFailed)] => break,
                other => panic!("after {attaches} attaches: {other:?}"),
            }
            assert_eq!(w.handle(Input::AttachDue), vec![Action::Attach]);
            attaches += 1;
        }
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 2000]);
        assert_eq!(attaches + 1, MAX_ANCHOR_FAILURES);
        assert!(w.is_stopped());
        // The sessions are not reported closed: they still exist.
        assert_eq!(w.watched().count(), 1);
    }

    #[test]
    fn a_client_that_lasted_resets_the_backoff() {
        let rows = vec![row(0, true, "a")];
        let mut w = attached(rows.clone());
        assert_eq!(end_and_relist(&mut w, died(), &rows), vec![Action::AttachAfter(ANCHOR_BACKOFF_FIRST)]);
        w.handle(Input::AttachDue);
        assert_eq!(end_and_relist(&mut w, died(), &rows), vec![Action::AttachAfter(anchor_backoff(2))]);
        w.handle(Input::AttachDue);
        // Attached, ran long enough: the next attach is immediate.
        w.handle(attach_ok());
        assert_eq!(end_and_relist(&mut w, lasted(), &rows), vec![Action::Attach]);
        // Ran long enough but never attached: still a failure.
        assert_eq!(end_and_relist(&mut w, lasted(), &rows), vec![Action::AttachAfter(ANCHOR_BACKOFF_FIRST)]);
    }

    #[test]
    fn the_first_failure_after_a_lasting_client_waits_the_least() {
        let rows = vec![row(0, true, "a")];
        let mut w = attached(rows.clone());
        assert_eq!(end_and_relist(&mut w, lasted(), &rows), vec![Action::Attach]);
        w.handle(attach_ok());
        sync(&mut w, &rows);
        assert_eq!(end_and_relist(&mut w, died(), &rows), vec![Action::AttachAfter(ANCHOR_BACKOFF_FIRST)]);
    }

    #[test]
    fn requests_wait_through_a_backoff_and_signals_end_it() {
        let rows = vec![row(0, true, "a")];
        let mut w = attached(rows.clone());
        end_and_relist(&mut w, died(), &rows);
        // No client: nothing is sent; the requests wait for the reconcile
        // after the next attach.
        assert_eq!(w.handle(Input::WatchRequest(1, SessionId(0))), vec![]);
        assert_eq!(w.handle(Input::Sync(2)), vec![]);
        assert_eq!(w.handle(Input::AttachDue), vec![Action::Attach]);
        assert_eq!(sends(&w.handle(attach_ok())), 1);
        let a = sync(&mut w, &rows);
        assert!(a.contains(&Action::Respond(1, Ok(()))) && a.contains(&Action::Respond(2, Ok(()))), "{a:?}");
        // A signal during a backoff stops at once; a late timer is ignored.
        end_and_relist(&mut w, died(), &rows);
        w.handle(Input::WatchRequest(3, SessionId(0)));
        let a = w.handle(Input::Signal);
        assert_eq!(a, vec![Action::Respond(3, Err("the daemon is stopping".into())), Action::Stop(EndReason::Signal)]);
        assert_eq!(w.handle(Input::AttachDue), vec![]);
    }

    #[test]
    fn sessions_gone_during_the_failures_end_as_closed_not_failed() {
        let rows = vec![row(0, true, "a")];
        let mut w = attached(rows.clone());
        for _ in 1..MAX_ANCHOR_FAILURES {
            end_and_relist(&mut w, died(), &rows);
            w.handle(Input::AttachDue);
        }
        let a = end_and_relist(&mut w, died(), &[]);
        assert_eq!(a.last(), Some(&Action::Stop(EndReason::LastSessionClosed)), "{a:?}");
    }

    #[test]
    fn a_release_during_a_backoff_stops_when_nothing_is_watched() {
        let mut w = Watcher::new(Mode::Marked);
        w.start();
        w.handle(Input::Hold);
        assert_eq!(w.handle(Input::Listing(Some(vec![]))), vec![Action::Attach]);
        assert_eq!(end_and_relist(&mut w, died(), &[]), vec![Action::AttachAfter(ANCHOR_BACKOFF_FIRST)]);
        assert_eq!(w.handle(Input::Release), vec![Action::Stop(EndReason::NoSessions)]);
    }

    #[test]
    fn stray_client_ends_outside_a_client_are_ignored() {
        let rows = vec![row(0, true, "a")];
        let mut w = attached(rows.clone());
        end_and_relist(&mut w, died(), &rows);
        assert_eq!(w.handle(died()), vec![]);
        assert_eq!(w.handle(Input::AttachDue), vec![Action::Attach]);
    }
}

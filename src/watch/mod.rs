//! The watcher: a pure state machine ([`state`]) and the thin async loop
//! that connects it to a [`ControlSource`], requests and signals.
//!
//! While idle the loop is blocked on the control client's output, the
//! request channel and the signal streams: no timer, no polling. The one
//! timer is the backoff the state machine asks for after a control client
//! ended at once ([`Action::AttachAfter`]): a bounded wait after a failure.
//!
//! May call `tmux/` (only through [`ControlSource`] and its rows) and
//! `util/`; used by `daemon/` and `cli/`, never by `tmux/` or `runtime/`.

pub mod state;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tmux_control::SessionId;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

pub use state::{Action, EndReason, Event, EventKind, Input, Mode, Watcher, MAX_ANCHOR_FAILURES};

use crate::tmux::ControlSource;
use crate::util::{lossy, now_rfc3339};

/// A request to a running watcher (from the daemon's socket).
#[derive(Debug)]
pub enum Request {
    /// Answer once the session is watched (or why it cannot be).
    Watch(SessionId, oneshot::Sender<Result<(), String>>),
    /// The watcher's status as JSON fields.
    Status(oneshot::Sender<Value>),
    /// Stop gracefully.
    Stop(oneshot::Sender<()>),
    /// The spawner's hold connection closed.
    Release,
}

/// Who waits for a `Respond` action.
enum Reply {
    Watch(oneshot::Sender<Result<(), String>>),
    Status(oneshot::Sender<Value>),
}

/// An event as the JSON line `ctb watch` prints.
pub fn event_json(e: &Event) -> Value {
    json!({
        "event": e.kind.as_str(),
        "session": lossy(&e.name),
        "session_id": e.session.to_string(),
        "time": now_rfc3339(),
    })
}

/// The closing JSON line.
pub fn end_json(reason: EndReason) -> Value {
    json!({ "event": "watch-end", "reason": reason.as_str(), "time": now_rfc3339() })
}

/// Runs the watcher until it stops; returns why.
pub async fn run(
    source: &mut dyn ControlSource,
    watcher: &mut Watcher,
    mut requests: Option<mpsc::Receiver<Request>>,
    status: impl Fn(&Watcher) -> Value,
    mut on_event: impl FnMut(&Event),
) -> anyhow::Result<EndReason> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut replies: HashMap<u64, Reply> = HashMap::new();
    let mut stop_waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut next_token = 0u64;
    // When the running control client was started (for how long it ran).
    let mut started: Option<Instant> = None;
    // The end of a backoff the state machine asked for: no client runs.
    let mut attach_at: Option<tokio::time::Instant> = None;
    let mut actions = watcher.start();
    loop {
        let mut queue = std::collections::VecDeque::from(std::mem::take(&mut actions));
        while let Some(action) = queue.pop_front() {
            tracing::trace!(?action, "action");
            match action {
                Action::ListOffline => {
                    let rows = list_with_retries(source).await?;
                    queue.extend(watcher.handle(Input::Listing(rows)));
                }
                Action::Attach => match source.attach().await {
                    Ok(()) => started = Some(Instant::now()),
                    // The server went away since the listing: the next
                    // listing says so.
                    Err(crate::tmux::TmuxError::NoServer(_)) => {
                        queue.extend(watcher.handle(Input::ClientClosed { ran: Duration::ZERO }));
                    }
                    // A signal while waiting for the attach gate.
                    Err(crate::tmux::TmuxError::Interrupted) => queue.extend(watcher.handle(Input::Signal)),
                    // Anything else (no descriptor left to run tmux, the
                    // gate held too long): a failed attach, which the
                    // state machine backs off from and gives up on.
                    Err(e) => {
                        tracing::warn!(error = %e, "attaching failed");
                        queue.extend(watcher.handle(Input::ClientClosed { ran: Duration::ZERO }));
                    }
                },
                Action::Send(line) => {
                    if let Err(e) = source.send(&line).await {
                        // The client is leaving; its EOF is on the way.
                        tracing::debug!(error = %e, "control client stdin closed");
                    }
                }
                Action::Emit(event) => {
                    tracing::info!(event = event.kind.as_str(), session = %lossy(&event.name), id = %event.session);
                    on_event(&event);
                }
                Action::Respond(token, result) => match replies.remove(&token) {
                    Some(Reply::Watch(tx)) => {
                        let _ = tx.send(result);
                    }
                    Some(Reply::Status(tx)) => {
                        let _ = tx.send(status(watcher));
                    }
                    None => {}
                },
                Action::KillStaleAnchor(id) => {
                    tracing::info!(%id, "removing a stale anchor session");
                    source.kill_session(id).await;
                }
                Action::AttachAfter(wait) => {
                    tracing::warn!("the control client ended at once; attaching again in {wait:?}");
                    // A bounded backoff after a failure, not a poll: waited
                    // in the select below, so requests and signals are
                    // still served meanwhile.
                    attach_at = Some(tokio::time::Instant::now() + wait);
                }
                Action::Stop(reason) => {
                    if reason == EndReason::AnchorFailed {
                        tracing::error!(
                            "the control client's anchor session died at once {MAX_ANCHOR_FAILURES} times in a row \
                             (can the tmux server run `cat`? does something kill new sessions?); giving up"
                        );
                    }
                    source.detach().await;
                    for w in stop_waiters {
                        let _ = w.send(());
                    }
                    return Ok(reason);
                }
            }
        }
        let input = tokio::select! {
            // No client runs during a backoff: its output is not read.
            item = source.next_item(), if attach_at.is_none() => match item {
                Some(item) => Input::Item(item),
                None => Input::ClientClosed { ran: started.take().map_or(Duration::ZERO, |t| t.elapsed()) },
            },
            () = async {
                match attach_at {
                    // The backoff after a failed attach (a deadline the
                    // state machine set after an error, not a poll).
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                attach_at = None;
                Input::AttachDue
            },
            Some(req) = async { match &mut requests { Some(r) => r.recv().await, None => None } } => match req {
                Request::Watch(id, tx) => {
                    next_token += 1;
                    replies.insert(next_token, Reply::Watch(tx));
                    Input::WatchRequest(next_token, id)
                }
                Request::Status(tx) => {
                    // Answer from a model in sync with tmux at request time.
                    next_token += 1;
                    replies.insert(next_token, Reply::Status(tx));
                    Input::Sync(next_token)
                }
                Request::Stop(tx) => {
                    stop_waiters.push(tx);
                    Input::StopRequest
                }
                Request::Release => Input::Release,
            },
            _ = sigint.recv() => Input::Signal,
            _ = sigterm.recv() => Input::Signal,
            _ = sighup.recv() => Input::Signal,
        };
        actions = watcher.handle(input);
    }
}

/// The out-of-band listing, tried again after a transient failure to run
/// tmux (no descriptor or process left: EMFILE, EAGAIN): a bounded
/// backoff after an error (100 ms doubling, 6 tries), not a poll.
async fn list_with_retries(
    source: &mut dyn ControlSource,
) -> Result<Option<Vec<crate::tmux::SessionRow>>, crate::tmux::TmuxError> {
    let mut wait = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match source.list_offline().await {
            Err(crate::tmux::TmuxError::Spawn(e)) if attempt < 6 => {
                tracing::warn!(error = %e, "could not run tmux to list sessions; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

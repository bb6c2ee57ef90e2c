//! The pane relay: the one process that carries a pane's output to every
//! ctb waiter and stream on that pane (`ctb pane-relay`, started by tmux
//! itself through `pipe-pane`, never by hand).
//!
//! Why `pipe-pane` and not a control client: a control client only
//! receives `%output` for the panes of the session it is attached to, and
//! attaching one to a user's session is what crashes tmux 3.3a-3.6b
//! (docs/tmux-3.3a-crash.md) and changes the session (its sizes, its
//! `detach-on-destroy`, its attached count). `pipe-pane` hands ctb the
//! exact bytes the pane's program wrote, adds no client, and tmux keeps a
//! single pipe per pane: hence one relay per pane, shared by its
//! subscribers.
//!
//! Lifecycle (no polling; the one timer is the linger deadline below):
//! - A subscriber (`tap.rs`) takes the pane's lock, and either joins the
//!   live relay (its abstract socket) or starts one with `pipe-pane -o`;
//!   the new relay binds its socket, then connects back to the first
//!   subscriber's hello socket. Every subscriber gets a HELLO frame once it
//!   is subscribed: from then on it gets every byte.
//! - Bytes from tmux (stdin) go to every subscriber at once (one shared
//!   copy of each chunk, queued per subscriber); a subscriber more than
//!   [`BACKLOG`] bytes behind loses what arrives while it is, and is told
//!   how many bytes (DROPPED), never silently. tmux is never made to wait:
//!   the relay always reads.
//! - When its last subscriber leaves (a waiter done, or killed), the relay
//!   stays [`LINGER`] (250 ms: the next wait on the pane joins it), then
//!   takes the pane's lock (so nobody joins meanwhile), frees its socket,
//!   closes the pipe in tmux (`pipe-pane -t %N` with no command: only if
//!   the pipe is still this relay's, i.e. its stdin is still open) and
//!   exits. So nothing of ctb stays on a pane nobody waits on.
//! - When tmux closes the pipe (the pane or its server is gone, or a user
//!   replaced the pipe), every subscriber gets END and the relay exits.
//!
//! The sockets are Linux abstract sockets (no file to leave behind); every
//! connection's peer must be this user (`SO_PEERCRED`), both ways.

use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

use super::frame;
use crate::runtime::PaneLock;

/// How many bytes a subscriber may fall behind before it loses data.
/// Counted in bytes, not chunks: tmux hands a fast trickle over in chunks
/// of a few bytes, and a bound in chunks was a few KiB of it (a reader
/// descheduled for a moment lost lines). The chunks are shared, so the
/// relay holds at most this much whatever the number of subscribers.
pub const BACKLOG: usize = 16 << 20;
/// How long a relay nobody subscribes to stays (well within the second
/// in which nothing of a killed ctb may remain).
const LINGER: std::time::Duration = std::time::Duration::from_millis(250);
/// The largest read from tmux.
const CHUNK: usize = 64 * 1024;

/// Where pane `%pane`'s relay listens (abstract socket name).
pub fn relay_name(socket: &std::path::Path, pane: u32) -> Vec<u8> {
    let uid = rustix::process::getuid().as_raw();
    format!("ctb-relay/{uid}/{}/{pane}", crate::runtime::server_key(socket, 40)).into_bytes()
}

/// `ctb pane-relay` arguments.
#[derive(Debug, Clone)]
pub struct RelayArgs {
    /// The tmux binary and the server's canonical socket path.
    pub tmux: OsString,
    pub socket: PathBuf,
    /// The pane number (`%N` without `%`).
    pub pane: u32,
    /// The first subscriber's hello socket (abstract name).
    pub hello: String,
}

/// What the relay carries to its subscribers.
#[derive(Debug, Clone)]
enum Msg {
    /// Bytes at this offset of the pane's output since the relay started.
    Data(u64, Arc<[u8]>),
    /// The answer to this subscriber's sync request.
    Sync,
    End,
}

/// One subscriber's queue: the relay pushes, the subscriber's task pops.
/// Past [`BACKLOG`] bytes of data the oldest data goes, so every queue
/// covers at most the last [`BACKLOG`] bytes of the pane's output and the
/// relay (whose chunks the queues share) holds that much at most, however
/// many subscribers are stuck and wherever they stopped.
#[derive(Default)]
struct Queue {
    /// The messages, and the data bytes among them.
    inner: std::sync::Mutex<(VecDeque<Msg>, usize)>,
    notify: tokio::sync::Notify,
    /// The subscriber has gone.
    closed: AtomicBool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<Msg>, usize)> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, m: Msg) {
        {
            let mut g = self.lock();
            let (q, bytes) = &mut *g;
            if let Msg::Data(_, d) = &m {
                *bytes += d.len();
            }
            q.push_back(m);
            while *bytes > BACKLOG {
                // The oldest data (a sync or end stays, in order).
                let Some(i) = q.iter().position(|m| matches!(m, Msg::Data(..))) else { break };
                if let Some(Msg::Data(_, d)) = q.remove(i) {
                    *bytes -= d.len();
                }
            }
        }
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Msg> {
        let mut g = self.lock();
        let (q, bytes) = &mut *g;
        let m = q.pop_front()?;
        if let Msg::Data(_, d) = &m {
            *bytes -= d.len();
        }
        Some(m)
    }

    /// The next message. Cancel-safe: a message is only taken when this
    /// returns it.
    async fn next(&self) -> Msg {
        loop {
            if let Some(m) = self.pop() {
                return m;
            }
            self.notify.notified().await;
        }
    }
}

/// Every subscriber's queue, by subscriber id.
#[derive(Default)]
struct Outlets(Vec<(u64, Arc<Queue>)>);

impl Outlets {
    /// A new subscriber's queue.
    fn add(&mut self, id: u64) -> Arc<Queue> {
        let q = Arc::new(Queue::default());
        self.0.push((id, q.clone()));
        q
    }

    /// Bytes to every subscriber (one shared copy).
    fn data(&mut self, offset: u64, bytes: &[u8]) {
        let chunk: Arc<[u8]> = Arc::from(bytes);
        self.0.retain(|(_, q)| !q.closed.load(Ordering::Acquire));
        for (_, q) in &self.0 {
            q.push(Msg::Data(offset, chunk.clone()));
        }
    }

    fn sync(&mut self, id: u64) {
        if let Some((_, q)) = self.0.iter().find(|(i, _)| *i == id) {
            q.push(Msg::Sync);
        }
    }

    fn end(&mut self) {
        for (_, q) in self.0.drain(..) {
            q.push(Msg::End);
        }
    }
}

/// Runs the relay until its last subscriber leaves or tmux closes the pipe.
pub fn run(args: RelayArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(relay(args))
}

/// Whether a connected peer runs as this user.
pub fn same_user(s: &UnixStream) -> bool {
    s.peer_cred().is_ok_and(|c| c.uid() == rustix::process::getuid().as_raw())
}

/// Connects to an abstract socket.
pub fn connect_abstract(name: &[u8]) -> std::io::Result<UnixStream> {
    let addr = SocketAddr::from_abstract_name(name)?;
    let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    s.set_nonblocking(true)?;
    UnixStream::from_std(s)
}

/// Listens on an abstract socket.
pub fn listen_abstract(name: &[u8]) -> std::io::Result<UnixListener> {
    let addr = SocketAddr::from_abstract_name(name)?;
    let l = std::os::unix::net::UnixListener::bind_addr(&addr)?;
    l.set_nonblocking(true)?;
    UnixListener::from_std(l)
}

/// The pipe from tmux: our stdin, the socketpair end `pipe-pane` gave us.
fn tmux_pipe() -> Result<UnixStream> {
    use std::os::fd::{AsFd, FromRawFd};
    let st = rustix::fs::fstat(std::io::stdin().as_fd()).context("stdin")?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
        bail!("ctb pane-relay runs under tmux pipe-pane (its stdin must be tmux's pipe)");
    }
    // SAFETY: fd 0 is open (fstat succeeded) and is a socket; the relay
    // owns its stdin and nothing else in this process uses it.
    let s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(0) };
    s.set_nonblocking(true)?;
    Ok(UnixStream::from_std(s)?)
}

async fn relay(a: RelayArgs) -> Result<()> {
    let mut input = tmux_pipe()?;
    // Fault injection for tests: a relay slow to start, as on a loaded
    // machine (the race of a first subscriber that leaves before the
    // hello is then certain, not rare). Unset: no delay.
    if let Some(ms) = std::env::var("CTB_TEST_RELAY_START_DELAY_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(std::time::Duration::from_millis(ms.min(2000))).await;
    }
    let listener = bind(&a).await?;
    let mut out = Outlets::default();
    let (sync_tx, mut sync_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut next_id = 0u64;
    let mut subs = JoinSet::new();
    // The first subscriber is subscribed before the first byte is read.
    if let Ok(s) = connect_abstract(a.hello.as_bytes()) {
        if same_user(&s) {
            next_id += 1;
            let q = out.add(next_id);
            subs.spawn(subscriber(s, q, next_id, sync_tx.clone()));
        }
    }
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    let mut listener = Some(listener);
    // Since when nobody is subscribed: the relay stays LINGER more (the
    // next wait on this pane, an agent's next `run`, joins it instead of
    // starting a pipe), then leaves. A deadline, not a poll: nothing runs
    // meanwhile.
    let mut idle_since: Option<tokio::time::Instant> = None;
    loop {
        if !subs.is_empty() {
            idle_since = None;
        } else if idle_since.is_none() {
            idle_since = Some(tokio::time::Instant::now());
        }
        let linger_end = idle_since.map(|t| t + LINGER);
        let Some(l) = listener.as_ref() else { return Ok(()) };
        tokio::select! {
            () = async { tokio::time::sleep_until(linger_end.expect("checked")).await }, if linger_end.is_some() => {
                match last_one_left(&a, &mut listener, &mut input, &mut out, &mut subs, &sync_tx, &mut next_id).await {
                    Some(()) => idle_since = None,
                    None => return Ok(()),
                }
            }
            r = input.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    // tmux closed the pipe: the mark goes first (a pipe
                    // opened next is not this relay's), then everyone is
                    // told and flushed.
                    drop(listener.take());
                    unmark(&a).await;
                    out.end();
                    while subs.join_next().await.is_some() {}
                    return Ok(());
                }
                Ok(n) => {
                    out.data(offset, &buf[..n]);
                    offset += n as u64;
                }
            },
            acc = l.accept() => {
                if let Ok((s, _)) = acc {
                    if same_user(&s) {
                        next_id += 1;
                        let q = out.add(next_id);
                        subs.spawn(subscriber(s, q, next_id, sync_tx.clone()));
                    }
                }
            }
            Some(id) = sync_rx.recv() => {
                // Everything tmux has written so far goes out first.
                loop {
                    match input.try_read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            out.data(offset, &buf[..n]);
                            offset += n as u64;
                        }
                    }
                }
                out.sync(id);
            }
            Some(_) = subs.join_next() => {}
        }
    }
}

/// The last subscriber left. Under the pane's lock: anyone who connected
/// meanwhile is taken in (`Some`); else the socket is freed, the pipe is
/// closed in tmux if it is still ours, and the relay ends (`None`).
async fn last_one_left(
    a: &RelayArgs,
    listener: &mut Option<UnixListener>,
    input: &mut UnixStream,
    out: &mut Outlets,
    subs: &mut JoinSet<()>,
    sync_tx: &tokio::sync::mpsc::UnboundedSender<u64>,
    next_id: &mut u64,
) -> Option<()> {
    // While waiting for the lock, a pipe closed or replaced under us (the
    // lock's holder may be replacing it) ends this relay at once.
    let lock = tokio::select! {
        l = PaneLock::take(&a.socket, a.pane) => l.ok(),
        () = eof(input) => {
            drop(listener.take());
            unmark(a).await;
            return None;
        }
    };
    let l = listener.as_ref()?;
    loop {
        // Connections already queued (biased: checked before giving up).
        tokio::select! {
            biased;
            acc = l.accept() => {
                if let Ok((s, _)) = acc {
                    if same_user(&s) {
                        *next_id += 1;
                        let q = out.add(*next_id);
                        subs.spawn(subscriber(s, q, *next_id, sync_tx.clone()));
                    }
                }
            }
            () = std::future::ready(()) => break,
        }
    }
    if !subs.is_empty() {
        return Some(());
    }
    drop(listener.take());
    let mut probe = [0u8; 1];
    // Still open (no EOF) means tmux still pipes this pane to us.
    let still_ours = match input.try_read(&mut probe) {
        Ok(n) => n > 0,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    };
    if still_ours {
        let p = pane_id(a);
        tmux(a, &["set-option", "-p", "-u", "-t", &p, "@ctb-relay", ";", "pipe-pane", "-t", &p]).await;
    }
    drop(lock);
    None
}

fn pane_id(a: &RelayArgs) -> String {
    format!("%{}", a.pane)
}

/// The value of `@ctb-relay` on a pane piped to this relay (set by the
/// subscriber that started it, in the same tmux command as the pipe).
pub fn mark_value(pane: u32, hello: &str) -> String {
    format!("%{pane}/{hello}")
}

fn mark(a: &RelayArgs) -> String {
    mark_value(a.pane, &a.hello)
}

/// Runs one tmux command on the relay's server (its result is not needed:
/// a pane or server gone meanwhile needs nothing undone).
async fn tmux(a: &RelayArgs, args: &[&str]) {
    let _ = tokio::process::Command::new(&a.tmux)
        .arg("-S")
        .arg(&a.socket)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
}

/// The pipe is no longer ours (if the pane still exists): removes this
/// relay's mark, not a newer relay's.
async fn unmark(a: &RelayArgs) {
    let args = unmark_args(a.pane, &mark(a));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tmux(a, &args).await;
}

/// The tmux command that removes pane `%pane`'s `@ctb-relay` if it is
/// `mark` (never another relay's). `mark` is ctb's own (`%N/ctb-hello/...`:
/// no `,`, `}` or `#` the format could take for its own).
pub fn unmark_args(pane: u32, mark: &str) -> Vec<String> {
    let p = format!("%{pane}");
    let cond = format!("#{{==:#{{@ctb-relay}},{mark}}}");
    let unset = format!("set-option -p -u -t '{p}' @ctb-relay");
    ["if-shell", "-F", "-t", &p, &cond, &unset].map(String::from).to_vec()
}

/// Resolves when tmux has closed the pipe (data meanwhile is dropped:
/// nobody is subscribed).
async fn eof(input: &mut UnixStream) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        if input.readable().await.is_err() {
            return;
        }
        match input.try_read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Binds the pane's relay socket. Taken means an older relay of this pane
/// is on its way out (its pipe was replaced by ours, so it has seen EOF):
/// the bind is tried again as it leaves, for at most about a second.
async fn bind(a: &RelayArgs) -> Result<UnixListener> {
    let name = relay_name(&a.socket, a.pane);
    let mut delay = std::time::Duration::from_millis(1);
    loop {
        match listen_abstract(&name) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && delay < std::time::Duration::from_secs(1) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e).context("binding the relay socket"),
        }
    }
}

/// Carries the relay's messages to one subscriber until it leaves.
async fn subscriber(s: UnixStream, q: Arc<Queue>, id: u64, sync: tokio::sync::mpsc::UnboundedSender<u64>) {
    /// Marks the queue closed however the task ends.
    struct Closed(Arc<Queue>);
    impl Drop for Closed {
        fn drop(&mut self) {
            self.0.closed.store(true, Ordering::Release);
            self.0.lock().0.clear();
        }
    }
    let _closed = Closed(q.clone());
    let (mut rd, mut wr) = s.into_split();
    if wr.write_all(&frame::encode(frame::HELLO, &std::process::id().to_le_bytes())).await.is_err() {
        return;
    }
    let mut next: Option<u64> = None;
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            m = q.next() => match m {
                Msg::Data(off, bytes) => {
                    if let Some(want) = next.filter(|&w| off > w) {
                        if wr.write_all(&frame::encode(frame::DROPPED, &(off - want).to_le_bytes())).await.is_err() {
                            return;
                        }
                    }
                    next = Some(off + bytes.len() as u64);
                    if wr.write_all(&frame::header(frame::DATA, bytes.len())).await.is_err()
                        || wr.write_all(&bytes).await.is_err()
                    {
                        return;
                    }
                }
                Msg::Sync => {
                    if wr.write_all(&frame::encode(frame::SYNC, &[])).await.is_err() {
                        return;
                    }
                }
                Msg::End => {
                    let _ = wr.write_all(&frame::encode(frame::END, &[])).await;
                    let _ = wr.shutdown().await;
                    return;
                }
            },
            // A subscriber only asks for syncs, or closes.
            r = rd.read(&mut scratch) => match r {
                Ok(n) if n > 0 && scratch[..n].iter().all(|&b| b == frame::SYNC_REQUEST) => {
                    for _ in 0..n {
                        let _ = sync.send(id);
                    }
                }
                _ => return,
            },
        }
    }
}

//! A tap on a pane's output: joins the pane's relay (`relay.rs`), or
//! starts it through `pipe-pane`, and reads its frames (`frame.rs`).
//!
//! No gap between what was on the pane and what follows: a tap asked for
//! a capture gets it *after* it was subscribed (a byte either is in the
//! capture or arrives on the tap, maybe both, never neither). When the tap
//! starts the relay, the capture runs in the same tmux command as the
//! `pipe-pane`, so the two meet exactly.
//!
//! A tap that starts a relay may leave before the relay says hello (a
//! wait answered from the screen returns at once; a waiter may be
//! killed): the pipe and the starting relay stay, and the next tap on the
//! pane takes the first one's place (`adopt`), so it never mistakes a
//! starting relay for someone else's pipe.
//!
//! A user's own `pipe-pane` is never replaced: tmux keeps one pipe per
//! pane, and a pane piped elsewhere is an error.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::net::UnixStream;

use super::frame::{self, Frame};
use super::relay::{connect_abstract, listen_abstract, mark_value, relay_name, same_user};
use crate::runtime::PaneLock;
use crate::tmux::{tmux_bin, Server, TmuxError};
use crate::util::hex_encode;

/// How long a relay may take to start and say hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(5);

/// What a tap reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes the pane's program wrote.
    Data(Vec<u8>),
    /// This many bytes were dropped here (this reader was too slow).
    Dropped(u64),
    /// tmux closed the pipe: the pane, its session or its server is gone,
    /// or someone replaced the pipe.
    End,
    /// The relay went away without END (it was killed).
    Lost,
    /// The answer to [`Tap::sync`].
    Sync,
}

/// A subscription to one pane's output.
#[derive(Debug)]
pub struct Tap {
    conn: Option<UnixStream>,
    /// A relay being started: its hello socket, and the pane's lock held
    /// until it has said hello.
    pending: Option<(tokio::net::UnixListener, PaneLock)>,
    buf: Vec<u8>,
}

/// The error for a pane piped elsewhere.
fn not_ours(pane: &str) -> anyhow::Error {
    anyhow!(
        "pane {pane} already has a pipe-pane and no ctb relay answers for it; ctb never replaces a pipe \
         (a user's, or one left by a killed relay until the pane prints again; close it with \
         `tmux pipe-pane -t {pane}`)"
    )
}

/// A capture taken for a tap, and whether the pane's last line was still
/// being written then.
#[derive(Debug)]
pub struct Capture {
    pub text: Vec<u8>,
    /// The cursor sits after the text of its row, and that row is the last
    /// one with text: the stream goes on with that line. The number is how
    /// many blanks lie between the text and the cursor (tmux trims them).
    pub unfinished: Option<usize>,
}

/// `capture-pane -t PANE ARGS`, then (in the same command, so the same
/// moment) the visible screen as rows and the cursor's position.
fn capture_command(pane: &str, args: &[OsString], split: &str) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["capture-pane".into(), "-t".into(), pane.into()];
    a.extend(args.iter().cloned());
    a.extend(
        [";", "display-message", "-p", "-t", pane, split, ";", "capture-pane", "-p", "-t", pane].map(OsString::from),
    );
    a.extend([";", "display-message", "-p", "-t", pane, "ctb-cursor:#{cursor_x},#{cursor_y}"].map(OsString::from));
    a
}

/// A line between the two captures that neither can hold.
fn capture_split() -> String {
    let mut r = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut r, rustix::rand::GetRandomFlags::empty());
    format!("ctb-screen-{:016x}", u64::from_le_bytes(r))
}

/// The output of [`capture_command`].
fn parse_capture(out: &[u8], split: &str) -> Result<Capture> {
    let bad = || anyhow!("tmux's capture came back in an unknown shape ({} bytes)", out.len());
    let marker = format!("{split}\n");
    let at = out.windows(marker.len()).rposition(|w| w == marker.as_bytes()).ok_or_else(bad)?;
    let (text, rest) = (&out[..at], &out[at + marker.len()..]);
    let rest = String::from_utf8_lossy(rest);
    let mut rows: Vec<&str> = rest.lines().collect();
    let cursor = rows.pop().and_then(|l| l.strip_prefix("ctb-cursor:")).ok_or_else(bad)?;
    let (x, y) = cursor.split_once(',').ok_or_else(bad)?;
    let (x, y): (usize, usize) = (x.parse()?, y.parse()?);
    let unfinished = rows.get(y).and_then(|row| {
        let row = row.trim_end();
        let width = row.chars().count();
        let last = crate::agent::text::strip(text).lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned);
        (x > 0
            && !row.is_empty()
            && width <= x
            && rows[y + 1..].iter().all(|r| r.trim().is_empty())
            && last.is_some_and(|l| l.trim_end().ends_with(row)))
        .then(|| x - width)
    });
    Ok(Capture { text: text.to_vec(), unfinished })
}

/// A new tap, with the capture asked for (if any).
#[derive(Debug)]
pub struct Opened {
    pub tap: Tap,
    pub capture: Option<Capture>,
    /// The tap joined a relay already running: the capture was taken a
    /// moment after the subscription, so the stream's first lines may
    /// repeat its end (see `overlap.rs`). A tap that started the relay
    /// meets its capture exactly.
    pub joined: bool,
}

/// The pane number of a `%N` id.
fn pane_number(pane: &str) -> Result<u32> {
    pane.strip_prefix('%').and_then(|n| n.parse().ok()).ok_or_else(|| anyhow!("not a pane id: {pane:?}"))
}

/// `bytes` as a `sh` word made of printable ASCII only, with no `'` and
/// no `#`: as it is when it holds only `[A-Za-z0-9/._+-]`, else
/// `"$(printf "\057...")"` (octal escapes, which every POSIX `printf`
/// reads). So the relay's command line can sit inside a single-quoted tmux
/// command string whatever the path holds, and gives the format expander
/// `pipe-pane` runs on it nothing to expand.
fn sh_word(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(b)) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut w = String::from("\"$(printf \"");
    for b in bytes {
        w.push_str(&format!("\\{b:03o}"));
    }
    w.push_str("\")\"");
    w
}

/// The relay's command line (for `sh -c`, run by `pipe-pane`): the tmux
/// binary and socket path in hex, `hello` (`ctb-hello/UID/PID/HEX`) as it
/// is.
fn relay_command(server: &Server, pane: u32, hello: &str) -> Result<String> {
    let exe = std::env::current_exe().context("finding ctb's own executable")?;
    let tmux = tmux_bin();
    let socket = server.socket_path();
    Ok(format!(
        "exec {} pane-relay --tmux-hex {} --socket-hex {} --pane {pane} --hello {hello}",
        sh_word(exe.as_os_str().as_bytes()),
        hex_encode(tmux.as_bytes()),
        hex_encode(socket.as_os_str().as_bytes()),
    ))
}

/// The start of every hello socket name for pane `%pane` of this server:
/// a relay connects only to the hello on its command line, so a name
/// that says its server and pane can only ever bring that pane's relay
/// (a forged mark naming another pane's hello brings nothing).
fn hello_prefix(server: &Server, pane: u32) -> String {
    let key = crate::runtime::server_key(&server.socket_path(), 0);
    format!("ctb-hello/{}/s{key}/{pane}/", rustix::process::getuid().as_raw())
}

/// A fresh name for a hello socket of pane `%pane`.
fn hello_name(server: &Server, pane: u32) -> String {
    let mut r = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut r, rustix::rand::GetRandomFlags::empty());
    format!("{}{}/{:016x}", hello_prefix(server, pane), std::process::id(), u64::from_le_bytes(r))
}

impl Tap {
    /// Subscribes to pane `pane` (`%N`). `capture`: `capture-pane`
    /// arguments (without `-t`) whose output to return, taken after the
    /// subscription.
    pub async fn open(server: &Server, pane: &str, capture: Option<&[OsString]>) -> Result<Opened> {
        let n = pane_number(pane)?;
        let lock = PaneLock::take(&server.socket_path(), n).await?;
        // Queued on the live relay: it takes us in even if it was about
        // to leave (it checks its queue under the lock).
        let lock = match Tap::join(server, pane, n, capture, lock).await? {
            Ok(o) => return Ok(o),
            Err(lock) => lock,
        };
        // No live relay: start one, unless the pane is piped. One tmux
        // command decides and acts (`if-shell -F`: a format, no shell): a
        // piped pane is left alone; otherwise the pipe starts and the pane
        // is marked (`@ctb-relay`). (Not `pipe-pane -o`: tmux closes an
        // existing pipe before it looks at -o.)
        let hello = hello_name(server, n);
        let listener = listen_abstract(hello.as_bytes()).context("binding a hello socket")?;
        let mark = mark_value(n, &hello);
        // Any pipe on the pane is left alone, even one marked as ctb's:
        // with no relay answering, a mark may be stale (a relay killed
        // without cleaning up) and the pipe a user's opened since. A pipe
        // of a killed relay goes when the pane next prints (tmux then
        // finds it dead), or with `tmux pipe-pane -t %N`.
        let busy = "#{pane_pipe}".to_owned();
        let start = format!(
            // Every word quoted: tmux's parser takes a bare `%...` for a
            // directive.
            "pipe-pane -O -t '{pane}' '{}' ; set-option -p -t '{pane}' @ctb-relay '{mark}'",
            relay_command(server, n, &hello)?
        );
        // A piped pane answers with its mark (if any), to tell a relay
        // still starting from someone else's pipe.
        let piped = format!("display-message -p -t '{pane}' 'ctb-piped:#{{@ctb-relay}}'");
        let mut args: Vec<OsString> =
            ["if-shell", "-F", "-t", pane, &busy, &piped, &start].map(OsString::from).to_vec();
        args.extend([";", "display-message", "-p", "-t", pane, "ctb-pipe-#{pane_pipe}"].map(OsString::from));
        let split = capture_split();
        if let Some(c) = capture {
            args.push(";".into());
            args.extend(capture_command(pane, c, &split));
        }
        let out = server.run_async(args).await.map_err(|e| pane_error(e, pane))?;
        if let Some(rest) = out.strip_prefix(b"ctb-piped:") {
            drop(listener);
            let mark = rest.split(|&b| b == b'\n').next().unwrap_or_default();
            return adopt(server, pane, n, mark, lock, capture).await;
        }
        let Some(rest) = out.strip_prefix(b"ctb-pipe-1\n") else {
            bail!("tmux did not start the pipe of pane {pane} ({:?})", String::from_utf8_lossy(&out));
        };
        let capture = capture.map(|_| parse_capture(rest, &split)).transpose()?;
        // The relay is starting; what the pane prints from now on waits
        // in the pipe. The hello is awaited on the first read, so a
        // caller may type at once (the lock is held until then).
        let tap = Tap { conn: None, pending: Some((listener, lock)), buf: Vec::new() };
        Ok(Opened { tap, capture, joined: false })
    }

    /// Subscribes through the live relay's socket, or gives the pane's
    /// lock back (`Err`) if no relay answers. Once connected the lock is
    /// let go before the hello: the relay takes us in from its queue,
    /// and a relay whose linger just ended is waiting for that lock.
    async fn join(
        server: &Server,
        pane: &str,
        n: u32,
        capture: Option<&[OsString]>,
        lock: PaneLock,
    ) -> Result<Result<Opened, PaneLock>> {
        let Ok(conn) = connect_abstract(&relay_name(&server.socket_path(), n)) else { return Ok(Err(lock)) };
        drop(lock);
        if !same_user(&conn) {
            bail!("the relay socket of pane {pane} is not this user's");
        }
        let mut tap = Tap { conn: Some(conn), pending: None, buf: Vec::new() };
        tap.hello().await?;
        let capture = match capture {
            Some(args) => Some(capture_pane(server, pane, args).await?),
            None => None,
        };
        Ok(Ok(Opened { tap, capture, joined: true }))
    }

    /// Waits until the relay has taken this tap in (the pane's bytes from
    /// the start of the pipe on reach it). Called by the first read.
    /// Cancel-safe (a caller may give up on it for the pane's death and
    /// call it again): the hello socket and the lock stay until the hello.
    pub async fn ready(&mut self) -> Result<()> {
        let Some((listener, _)) = self.pending.as_ref() else { return Ok(()) };
        if self.conn.is_none() {
            self.conn = Some(accept(listener).await?);
        }
        self.hello().await?;
        self.pending = None; // the pane's lock goes with it
        Ok(())
    }

    /// Reads the relay's HELLO (within [`HELLO_DEADLINE`]).
    async fn hello(&mut self) -> Result<()> {
        match tokio::time::timeout(HELLO_DEADLINE, self.frame()).await {
            Ok(Ok(Some(Frame::Hello { .. }))) => Ok(()),
            Ok(Ok(Some(other))) => bail!("the pane's relay began with {other:?}, not hello"),
            Ok(Ok(None)) => bail!("the pane's relay ended before it said hello"),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("the pane's relay did not answer within {}s", HELLO_DEADLINE.as_secs()),
        }
    }

    /// Asks the relay for a sync point: an [`Event::Sync`] follows every
    /// byte tmux had written to the pipe by now (used once a pane is
    /// known dead, to have its last bytes before saying so).
    pub async fn sync(&mut self) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        self.ready().await?;
        let Some(conn) = self.conn.as_mut() else { bail!("the tap is not connected") };
        // A relay already gone cannot answer: its END (or the connection's
        // end) is what the reader gets next.
        let _ = conn.write_all(&[frame::SYNC_REQUEST]).await;
        Ok(())
    }

    /// The next frame; `None` when the relay went away. Cancel-safe: bytes
    /// read stay in the buffer until a whole frame is there.
    async fn frame(&mut self) -> Result<Option<Frame>> {
        use tokio::io::AsyncReadExt;
        loop {
            if self.buf.len() >= 5 {
                let h: [u8; 5] = self.buf[..5].try_into().unwrap_or_default();
                let (kind, len) = frame::parse_header(h).map_err(|e| anyhow!(e))?;
                if self.buf.len() >= 5 + len {
                    let payload = self.buf[5..5 + len].to_vec();
                    self.buf.drain(..5 + len);
                    return frame::decode(kind, payload).map(Some).map_err(|e| anyhow!(e));
                }
            }
            self.buf.reserve(64 * 1024);
            let Some(conn) = self.conn.as_mut() else { bail!("the tap is not connected") };
            match conn.read_buf(&mut self.buf).await {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e).context("reading the pane's relay"),
            }
        }
    }

    /// The next event if one has already arrived (no waiting): lets a
    /// caller see everything the pane printed at once before deciding.
    pub fn try_next(&mut self) -> Option<Event> {
        loop {
            if self.buf.len() >= 5 {
                let h: [u8; 5] = self.buf[..5].try_into().ok()?;
                let (kind, len) = frame::parse_header(h).ok()?;
                if self.buf.len() >= 5 + len {
                    let payload = self.buf[5..5 + len].to_vec();
                    self.buf.drain(..5 + len);
                    return match frame::decode(kind, payload).ok()? {
                        Frame::Hello { .. } => continue,
                        Frame::Data(d) => Some(Event::Data(d)),
                        Frame::Dropped(n) => Some(Event::Dropped(n)),
                        Frame::End => Some(Event::End),
                        Frame::Sync => Some(Event::Sync),
                    };
                }
            }
            let conn = self.conn.as_mut()?;
            let mut chunk = [0u8; 64 * 1024];
            match conn.try_read(&mut chunk) {
                Ok(n) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// The next event. Cancel-safe only between events (drop the tap
    /// rather than abandoning a read half-way).
    pub async fn next(&mut self) -> Result<Event> {
        self.ready().await?;
        loop {
            return Ok(match self.frame().await? {
                None => Event::Lost,
                Some(Frame::Hello { .. }) => continue,
                Some(Frame::Data(d)) => Event::Data(d),
                Some(Frame::Dropped(n)) => Event::Dropped(n),
                Some(Frame::End) => Event::End,
                Some(Frame::Sync) => Event::Sync,
            });
        }
    }
}

/// The pane is piped and no relay answered. If the pipe is a ctb relay
/// still starting whose first subscriber went away before its hello (a
/// wait answered from the screen, or a killed one), this tap takes that
/// subscriber's place: it binds the hello socket named in the mark (free:
/// its owner is gone), asks the relay's socket once more (the relay binds
/// it before it says hello, so either that answers or the relay's hello
/// comes to us), and waits for the relay. Anything else (a user's pipe,
/// or the pipe of a relay that was killed, until the pane prints again)
/// is never touched: an error, after [`HELLO_DEADLINE`] for a stale mark.
/// The pane's lock is held throughout.
async fn adopt(
    server: &Server,
    pane: &str,
    n: u32,
    mark: &[u8],
    lock: PaneLock,
    capture: Option<&[OsString]>,
) -> Result<Opened> {
    let prefix = hello_prefix(server, n);
    let hello = match mark.strip_prefix(format!("%{n}/").as_bytes()) {
        Some(h)
            if h.strip_prefix(prefix.as_bytes())
                .is_some_and(|t| !t.is_empty() && t.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'/')) =>
        {
            h
        }
        _ => return Err(not_ours(pane)),
    };
    let Ok(listener) = listen_abstract(hello) else { return Err(not_ours(pane)) };
    let lock = match Tap::join(server, pane, n, capture, lock).await? {
        Ok(o) => return Ok(o),
        Err(lock) => lock,
    };
    let mut tap = Tap { conn: None, pending: None, buf: Vec::new() };
    let hello = async {
        tap.conn = Some(accept(&listener).await?);
        tap.hello().await
    };
    if let Err(e) = hello.await {
        // A relay that never came (killed, or a forged mark): its mark
        // goes (under the lock), so the waiters queued behind this one
        // fail at once rather than each waiting as long. The pipe stays.
        let mark = String::from_utf8_lossy(mark);
        let _ = server.run_async(super::relay::unmark_args(n, &mark)).await;
        drop(lock);
        return Err(anyhow!(
            "{} (its mark named a ctb relay that did not answer: {e}; the mark is removed)",
            not_ours(pane)
        ));
    }
    drop(lock);
    let capture = match capture {
        Some(args) => Some(capture_pane(server, pane, args).await?),
        None => None,
    };
    Ok(Opened { tap, capture, joined: true })
}

/// Takes the relay's connection on a hello socket (within
/// [`HELLO_DEADLINE`]); the HELLO is read from it next.
async fn accept(listener: &tokio::net::UnixListener) -> Result<tokio::net::UnixStream> {
    match tokio::time::timeout(HELLO_DEADLINE, listener.accept()).await {
        Ok(Ok((conn, _))) if same_user(&conn) => Ok(conn),
        Ok(Ok(_)) => bail!("a process of another user answered on ctb's hello socket"),
        Ok(Err(e)) => Err(e).context("waiting for the pane's relay"),
        Err(_) => bail!("the pane relay did not start within {}s", HELLO_DEADLINE.as_secs()),
    }
}

/// `capture-pane -t PANE ARGS`, and whether its last line is unfinished.
async fn capture_pane(server: &Server, pane: &str, args: &[OsString]) -> Result<Capture> {
    let split = capture_split();
    let out = server.run_async(capture_command(pane, args, &split)).await.map_err(|e| pane_error(e, pane))?;
    parse_capture(&out, &split)
}

/// A tmux error about `pane` as a sentence.
fn pane_error(e: TmuxError, pane: &str) -> anyhow::Error {
    crate::tmux::gone(e, &format!("pane {pane}"))
}

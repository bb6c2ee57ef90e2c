//! A tap on a pane's output: joins the pane's relay (`relay.rs`), or
//! starts it through `pipe-pane`, and reads its frames (`frame.rs`).
//!
//! No gap between what was on the pane and what follows: a tap asked for
//! a capture gets it *after* it was subscribed (a byte either is in the
//! capture or arrives on the tap, maybe both, never neither). When the tap
//! starts the relay, the capture runs in the same tmux command as the
//! `pipe-pane`, so the two meet exactly.
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
use crate::tmux::{literal, tmux_bin, Server, TmuxError};

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

/// `#{pane_pipe}`, the pane's id and ctb's mark (`@ctb-relay`, see
/// [`mark_value`]: `%N/...` naming the pane itself).
const RELAY_STATE: &str = "#{pane_pipe} #{pane_id} #{@ctb-relay}";

/// The error for a pane piped elsewhere.
fn not_ours(pane: &str) -> anyhow::Error {
    anyhow!(
        "pane {pane} already has a pipe-pane that is not ctb's; ctb never replaces it \
         (close it with `tmux pipe-pane -t {pane}`)"
    )
}

/// A new tap, with the capture asked for (if any).
#[derive(Debug)]
pub struct Opened {
    pub tap: Tap,
    pub capture: Option<Vec<u8>>,
}

/// The pane number of a `%N` id.
fn pane_number(pane: &str) -> Result<u32> {
    pane.strip_prefix('%').and_then(|n| n.parse().ok()).ok_or_else(|| anyhow!("not a pane id: {pane:?}"))
}

/// Quotes `s` for `sh -c` (single quotes).
fn sh_quote(s: &[u8]) -> Vec<u8> {
    let mut q = b"'".to_vec();
    for &b in s {
        if b == b'\'' {
            q.extend_from_slice(b"'\\''");
        } else {
            q.push(b);
        }
    }
    q.push(b'\'');
    q
}

/// The `pipe-pane` command that starts the relay: a shell command line
/// (every argument quoted for `sh`), then `#` escaped for tmux's format
/// expander, which `pipe-pane` runs on its command.
fn relay_command(server: &Server, pane: u32, hello: &str) -> Result<OsString> {
    let exe = std::env::current_exe().context("finding ctb's own executable")?;
    let tmux = tmux_bin();
    let socket = server.socket_path();
    let mut cmd = b"exec ".to_vec();
    for (i, a) in [
        exe.as_os_str().as_bytes(),
        b"pane-relay",
        b"--tmux",
        tmux.as_bytes(),
        b"--socket",
        socket.as_os_str().as_bytes(),
        b"--pane",
        pane.to_string().as_bytes(),
        b"--hello",
        hello.as_bytes(),
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            cmd.push(b' ');
        }
        cmd.extend_from_slice(&sh_quote(a));
    }
    Ok(literal(std::ffi::OsStr::from_bytes(&cmd)))
}

/// A fresh name for a hello socket.
fn hello_name() -> String {
    let mut r = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut r, rustix::rand::GetRandomFlags::empty());
    format!("ctb-hello/{}/{}/{:016x}", rustix::process::getuid().as_raw(), std::process::id(), u64::from_le_bytes(r))
}

impl Tap {
    /// Subscribes to pane `pane` (`%N`). `capture`: `capture-pane`
    /// arguments (without `-t`) whose output to return, taken after the
    /// subscription.
    pub async fn open(server: &Server, pane: &str, capture: Option<&[OsString]>) -> Result<Opened> {
        let n = pane_number(pane)?;
        let socket = server.socket_path();
        let lock = PaneLock::take(&socket, n).await?;
        if let Ok(conn) = connect_abstract(&relay_name(&socket, n)) {
            // Queued on the live relay: it takes us in even if it was
            // about to leave (it checks its queue under the lock).
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
            return Ok(Opened { tap, capture });
        }
        // No live relay: start one, unless the pane is piped elsewhere.
        // Under the lock nobody else starts or stops this pane's relay, so
        // "piped, and marked as ctb's relay" can only be a relay that died
        // without cleaning up (killed): its pipe is replaced.
        let out = server
            .run_async(["display-message", "-p", "-t", pane, RELAY_STATE])
            .await
            .map_err(|e| pane_error(e, pane))?;
        let text = String::from_utf8_lossy(&out);
        let mut f = text.trim_end_matches('\n').splitn(3, ' ');
        let (piped, id, marked) = (f.next() == Some("1"), f.next().unwrap_or_default(), f.next().unwrap_or_default());
        // Only a mark naming this very pane counts (a value inherited
        // from a window, session or global option does not).
        let replace = piped && marked.starts_with(&format!("{id}/"));
        if piped && !replace {
            return Err(not_ours(pane));
        }
        let hello = hello_name();
        let listener = listen_abstract(hello.as_bytes()).context("binding a hello socket")?;
        let mark = mark_value(n, &hello);
        let mut args: Vec<OsString> =
            ["display-message", "-p", "-t", pane, "#{pane_pipe}", ";", "pipe-pane"].map(OsString::from).to_vec();
        if !replace {
            // -o: a pipe opened meanwhile (by a user) is never replaced.
            args.push("-o".into());
        }
        args.extend(["-O".into(), "-t".into(), pane.into(), relay_command(server, n, &hello)?]);
        args.extend([";", "set-option", "-p", "-t", pane, "@ctb-relay", &mark].map(OsString::from));
        if let Some(c) = capture {
            args.extend([";".into(), "capture-pane".into(), "-t".into(), pane.into()]);
            args.extend(c.iter().cloned());
        }
        let out = server.run_async(args).await.map_err(|e| pane_error(e, pane))?;
        let (first, rest) = match out.iter().position(|&b| b == b'\n') {
            Some(i) => (&out[..i], out[i + 1..].to_vec()),
            None => (&out[..], Vec::new()),
        };
        if first == b"1" && !replace {
            // A user piped the pane between the two commands: our pipe-pane
            // did nothing; take back the mark (nobody read it: the lock).
            let cond = format!("#{{==:#{{@ctb-relay}},{mark}}}");
            let unset = format!("set-option -p -u -t {pane} @ctb-relay");
            let _ = server.run_async(["if-shell", "-F", "-t", pane, &cond, &unset]).await;
            return Err(not_ours(pane));
        }
        // The relay is starting; what the pane prints from now on waits
        // in the pipe. The hello is awaited on the first read, so a
        // caller may type at once (the lock is held until then).
        let tap = Tap { conn: None, pending: Some((listener, lock)), buf: Vec::new() };
        Ok(Opened { tap, capture: capture.map(|_| rest) })
    }

    /// Waits until the relay has taken this tap in (the pane's bytes from
    /// the start of the pipe on reach it). Called by the first read.
    pub async fn ready(&mut self) -> Result<()> {
        let Some((listener, lock)) = self.pending.take() else { return Ok(()) };
        let conn = match tokio::time::timeout(HELLO_DEADLINE, listener.accept()).await {
            Ok(Ok((conn, _))) if same_user(&conn) => conn,
            Ok(Ok(_)) => bail!("a process of another user answered on ctb's hello socket"),
            Ok(Err(e)) => return Err(e).context("waiting for the pane's relay"),
            Err(_) => bail!("the pane relay did not start within {}s", HELLO_DEADLINE.as_secs()),
        };
        self.conn = Some(conn);
        self.hello().await?;
        drop(lock);
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
            });
        }
    }
}

/// `capture-pane -p ARGS -t PANE`.
pub async fn capture_pane(server: &Server, pane: &str, args: &[OsString]) -> Result<Vec<u8>> {
    let mut a: Vec<OsString> = vec!["capture-pane".into(), "-t".into(), pane.into()];
    a.extend(args.iter().cloned());
    server.run_async(a).await.map_err(|e| pane_error(e, pane))
}

/// A tmux error about `pane` as a sentence.
fn pane_error(e: TmuxError, pane: &str) -> anyhow::Error {
    crate::tmux::gone(e, &format!("pane {pane}"))
}
